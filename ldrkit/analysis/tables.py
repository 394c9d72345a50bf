"""One way to show a computed table or number in a chapter: `table` (an HTML table on the website and in Jupyter)
and `glue` (MyST-NB's, so prose can cite a number from the run that made it)."""
from __future__ import annotations

import html
import math
import re
from numbers import Integral, Real

import pandas as pd

# A column of training steps: "step", "steps", "DDIM steps", "first step ...", "onset", "onset s.e.", "DiT onset"
# (not "steps/s", a rate, nor "κ before onset", a coupling score); tests/test_website.py reads pages with the same.
STEP_COLUMN = re.compile(r"^(?!κ)((\w+ )?(time)?steps?\b(?!\s*/)|onsets?\b|.*\bonsets?$)", re.I)
POWER_FROM = 1e6  # numbers this large or larger are shown as powers of ten
MISSING = "n/a"
_LEAK = re.compile(r"\b(nan|NaN|None)\b")  # a missing value printed into a string by the code that made the row


def cell(value, digits: int = 3, whole: bool = False) -> str:
    """One value as the page shows it (HTML): "n/a" for a missing one, integers for whole numbers (and for every
    number when `whole`), a power of ten from a million on, else `digits` decimals, a list item by item; text
    with "nan" or "None" printed into it reads "n/a"."""
    if value is None or (isinstance(value, Real) and not isinstance(value, Integral) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(cell(v, digits, whole) for v in value) + "]"
    if isinstance(value, Real):
        if math.isinf(value) or abs(value) < POWER_FROM:
            return (f"{value:.0f}" if math.isinf(value) or whole or float(value).is_integer()
                    else f"{value:.{digits}f}")
        exponent = math.floor(math.log10(abs(value)))
        return f"{value / 10 ** exponent:.{min(digits, 2)}f}&#8201;×&#8201;10<sup>{exponent}</sup>"
    return html.escape(_LEAK.sub(MISSING, str(value)))


def _whole_column(name, values) -> bool:
    """Steps are integers; so is a column whose numbers are all whole (counts stored as floats)."""
    numbers = [v for v in values if isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)]
    return bool(STEP_COLUMN.search(str(name))) or (bool(numbers) and all(float(v).is_integer() for v in numbers))


class Table:
    """A computed table as a page shows it: the caption above a box that scrolls sideways when the table is wider
    than the text column (so the caption stays left-aligned and whole), the `index` column as row headers and no
    0..n row numbers, numbers formatted by `cell`. `frame` holds the values."""

    def __init__(self, frame: pd.DataFrame, index, digits: int, caption: str | None):
        self.frame, self.digits, self.caption = frame, digits, caption
        self.index = [] if index is None else [index] if isinstance(index, str) else list(index)

    @property
    def T(self) -> "Table":
        """The table turned: one column per row (headed by its `index` labels), the columns as labelled rows."""
        labels = self.frame[self.index].astype(str).agg(", ".join, axis=1) if self.index else self.frame.index.astype(str)
        turned = self.frame.drop(columns=self.index).T
        turned.columns = list(labels)
        turned.insert(0, "", [str(c) for c in turned.index])
        return Table(turned.reset_index(drop=True), "", self.digits, self.caption)

    def shown(self) -> list[list[str]]:
        """The formatted cells, row by row, in the frame's column order."""
        whole = {c: _whole_column(c, self.frame[c].tolist()) for c in self.frame.columns}

        def show(column, value):
            if column in self.index and isinstance(value, float) and math.isfinite(value) and abs(value) < POWER_FROM:
                return f"{value:g}"  # a row label (a noise level, a size) as it was given: 0.1, not 0.100
            return cell(value, self.digits, whole[column])
        return [[show(c, v) for c, v in zip(self.frame.columns, row)] for row in self.frame.itertuples(index=False)]

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in self.frame.columns)
        heads = {j for j, c in enumerate(self.frame.columns) if c in self.index}
        body = "".join("<tr>" + "".join(f"<th>{v}</th>" if j in heads else f"<td>{v}</td>" for j, v in enumerate(row))
                       + "</tr>" for row in self.shown())
        caption = f'<p class="ldrkit-table-caption">{html.escape(self.caption)}</p>' if self.caption else ""
        return (f'<div class="ldrkit-table">{caption}<div class="ldrkit-table-scroll" style="overflow-x: auto">'
                f'<table class="dataframe"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></div>')

    def __repr__(self) -> str:
        def text(v: str) -> str:  # the HTML of `cell` as plain text: 10<sup>14</sup> -> 10^14
            return re.sub(r"<[^>]+>", "", html.unescape(v.replace("<sup>", "^")))
        plain = pd.DataFrame([[text(v) for v in row] for row in self.shown()], columns=self.frame.columns)
        return (self.caption + "\n" if self.caption else "") + plain.to_string(index=False)


def table(rows: list[dict], index: str | list[str] | None = None, digits: int = 3, caption: str | None = None) -> Table:
    """A table of dicts (one row each, keys as columns) ready to display (`Table`): `index` names the column (or
    columns) that label the rows, put first; floats get `digits` decimals. `.T` turns it."""
    frame = pd.DataFrame(rows)
    keys = [] if index is None else [index] if isinstance(index, str) else list(index)
    missing = [k for k in keys if k not in frame.columns]
    if missing and len(frame):
        raise KeyError(f"table: no column {missing[0]!r} to label the rows with (columns: {list(frame.columns)})")
    keys = [k for k in keys if k in frame.columns]
    frame = frame[[*keys, *[c for c in frame.columns if c not in keys]]]
    return Table(frame, keys, digits, caption)


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


def glue_all(values: dict, markdown: dict | None = None) -> dict:
    """Glue every value of `values` under its key, and every one of `markdown` as Markdown (`glue_md`): the numbers
    and sentences a passage of prose cites, computed by one analysis function, in one call. Returns `values`."""
    for name, value in values.items():
        glue(name, value)
    for name, text in (markdown or {}).items():
        glue_md(name, text)
    return values
