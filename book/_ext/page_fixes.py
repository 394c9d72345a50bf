"""Sphinx extension: what the pages need beyond Jupyter Book's defaults to read well at 1280 px and on a phone.

- One caption per figure: MyST-NB wraps every output of a captioned cell in a figure of its own, so a cell that
  draws four images showed the caption four times under four numbers; consecutive figures of one cell with the
  same caption become one figure holding all its images.
- Alt text from the caption: an image in a figure gets its caption as alt text (else the writer uses the file's
  hashed name); an image outside any figure, "output of the code cell above".
- Sample strips at a readable height: an image more than STRIP times as wide as it is tall would be squeezed to a
  strip 80 px high to fit the column; it keeps its own size and scrolls sideways in its output instead.
- A real front page: index.html is the root page (book/intro) itself, with a <base> so its links resolve, instead
  of the one-line meta refresh a headless browser's screenshot hangs on.
- Each inline script once: a script body added twice (sphinx-thebe's `const THEBE_JS_URL`) is a console error.
- The book's stylesheet, static/ldrkit.css: inline code that wraps, tables and wide outputs that scroll inside the
  text column.
"""
from __future__ import annotations

import re
import struct
from pathlib import Path

from docutils import nodes

STATIC = Path(__file__).parent / "static"
CELL_OUTPUT_ALT = "output of the code cell above"
STRIP = 4.0  # width / height from which an output image is a strip of samples


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG file's header, None for anything else."""
    try:
        head = path.read_bytes()[:24]
    except OSError:
        return None
    return struct.unpack(">II", head[16:24]) if head[:8] == b"\x89PNG\r\n\x1a\n" else None


def mark_strips(app, doctree):
    """Class `ldrkit-strip` on output images much wider than tall (static/ldrkit.css shows them at their size)."""
    for image in doctree.findall(nodes.image):
        uri = Path(image["uri"])  # MyST-NB's outputs: an absolute path; a page's own images: relative to it
        size = png_size(uri if uri.is_absolute() and uri.exists()
                        else Path(app.env.relfn2path(image["uri"], app.env.docname)[1]))
        if size and size[1] and size[0] / size[1] > STRIP:
            image["classes"].append("ldrkit-strip")


def merge_cell_figures(app, doctree):
    """One figure per captioned cell: consecutive figures of a cell with the same caption merged into the first."""
    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") != "cell_code":
            continue
        figures = list(cell.findall(nodes.figure))
        keep = None
        for figure in figures:
            caption = next(iter(figure.findall(nodes.caption)), None)
            text = caption.astext() if caption is not None else None
            if keep is not None and text == keep[1] and figure.parent is keep[0].parent:
                target = keep[0]
                at = target.index(next(iter(target.findall(nodes.caption))))
                for child in [c for c in figure.children if not isinstance(c, nodes.caption)]:
                    target.insert(at, child.deepcopy())
                    at += 1
                figure.parent.remove(figure)
            else:
                keep = (figure, text)


def caption_alt_text(app, doctree):
    """Alt text for every image: its figure's caption, else a plain description of a cell output."""
    for image in doctree.findall(nodes.image):
        if image.get("alt"):
            continue
        figure = image.parent
        while figure is not None and not isinstance(figure, nodes.figure):
            figure = figure.parent
        caption = next(iter(figure.findall(nodes.caption)), None) if figure is not None else None
        image["alt"] = caption.astext() if caption is not None else CELL_OUTPUT_ALT


def one_script_each(app, pagename, templatename, context, doctree):
    """Drop a script the page would include a second time: Sphinx 7.4 adds an inline script registered after the
    builder started twice, once named None and once "" (sphinx-thebe's `const THEBE_JS_URL`: a SyntaxError)."""
    seen, kept = set(), []
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", script) or "", tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"][:] = kept


def front_page(app, exc):
    """index.html: the root page's HTML with a <base> naming where it lives, so its relative links resolve."""
    if exc is not None or app.builder.format != "html" or app.config.root_doc == "index":
        return
    root = Path(app.outdir) / f"{app.config.root_doc}.html"
    if root.exists():
        page = root.read_text(encoding="utf8")
        page = re.sub(r"<head>", f'<head>\n<base href="{app.config.root_doc}.html">', page, count=1)
        (Path(app.outdir) / "index.html").write_text(page, encoding="utf8")


def add_static(app):
    app.config.html_static_path.append(str(STATIC))


def setup(app):
    app.connect("builder-inited", add_static)
    app.add_css_file("ldrkit.css")
    app.connect("doctree-read", merge_cell_figures, priority=400)  # before figures are numbered
    app.connect("doctree-read", caption_alt_text, priority=410)
    app.connect("doctree-read", mark_strips, priority=420)
    app.connect("html-page-context", one_script_each, priority=900)  # after every extension added its scripts
    app.connect("build-finished", front_page, priority=400)  # before sphinx-external-toc writes its redirect
    return {"parallel_read_safe": True, "parallel_write_safe": True}
