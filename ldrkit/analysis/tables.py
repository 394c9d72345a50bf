"""One way to show a computed table or number in a chapter: a DataFrame (an HTML table on the website
and in Jupyter) and `glue` (MyST-NB's, so prose can cite a number from the run that made it)."""
from __future__ import annotations

import pandas as pd


def table(rows: list[dict], index: str | None = None, digits: int = 3, caption: str | None = None):
    """A table of dicts (one row each, keys as columns) ready to display: floats rounded to `digits`.

    Returns a pandas Styler (with a caption) or a DataFrame; either renders as an HTML table.
    """
    frame = pd.DataFrame(rows)
    if index is not None:
        frame = frame.set_index(index)
    frame = frame.round(digits)
    if caption:
        return frame.style.format(precision=digits, na_rep="n/a").set_caption(caption)
    return frame


def glue(name: str, value, display: bool = False):
    """Glue a value for `{glue:}` references in the prose (MyST-NB); a no-op outside a book build
    (Colab, plain Jupyter) where myst_nb is not installed. Returns the value."""
    try:
        from myst_nb import glue as _glue
    except ImportError:
        return value
    _glue(name, value, display=display)
    return value


def glue_md(name: str, text: str) -> str:
    """Glue a sentence for `{glue:md}` references (rendered as Markdown, not as a quoted string)."""
    try:
        from IPython.display import Markdown
        from myst_nb import glue as _glue
    except ImportError:
        return text
    _glue(name, Markdown(text), display=False)
    return text
