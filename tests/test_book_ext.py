"""book/_ext/page_fixes.py on small doctrees and files: what the website test then checks on the built pages."""
import struct
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

from docutils import nodes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "book" / "_ext"))
import page_fixes  # noqa: E402


def cell_with_figures(*captions):
    cell = nodes.container(nb_element="cell_code")
    output = nodes.container(classes=["cell_output"])
    for i, text in enumerate(captions):
        output += nodes.figure("", nodes.container("", nodes.image(uri=f"/out/{i}.png")), nodes.caption(text=text))
    cell += output
    doc = nodes.document(None, None)
    doc += cell
    return doc


def test_a_cells_figures_with_one_caption_become_one_figure_holding_every_image():
    doc = cell_with_figures("Samples, seed 0.", "Samples, seed 0.", "Samples, seed 0.", "Another figure.")
    page_fixes.merge_cell_figures(None, doc)
    figures = list(doc.findall(nodes.figure))
    assert [f.next_node(nodes.caption).astext() for f in figures] == ["Samples, seed 0.", "Another figure."]
    assert [i["uri"] for i in figures[0].findall(nodes.image)] == ["/out/0.png", "/out/1.png", "/out/2.png"]
    assert isinstance(figures[0].children[-1], nodes.caption)                 # the caption stays under the images


def test_images_take_their_figures_caption_as_alt_text():
    doc = cell_with_figures("Samples of the baseline.")
    doc += nodes.image(uri="/out/loose.png")
    page_fixes.caption_alt_text(None, doc)
    assert [i["alt"] for i in doc.findall(nodes.image)] == ["Samples of the baseline.", page_fixes.CELL_OUTPUT_ALT]


def png(path: Path, width: int, height: int) -> Path:
    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)))
    return path


def test_only_images_far_wider_than_tall_are_strips(tmp_path):
    wide, square = png(tmp_path / "wide.png", 1360, 170), png(tmp_path / "square.png", 600, 400)
    assert page_fixes.png_size(wide) == (1360, 170) and page_fixes.png_size(tmp_path / "missing.png") is None
    doc = nodes.document(None, None)
    doc += [nodes.image(uri=str(wide)), nodes.image(uri=str(square))]
    page_fixes.mark_strips(SimpleNamespace(env=SimpleNamespace(relfn2path=None, docname="x")), doc)
    assert [i["classes"] for i in doc.findall(nodes.image)] == [["ldrkit-strip"], []]


def test_an_inline_script_added_twice_is_kept_once():
    from sphinx.builders.html._assets import _JavaScript
    thebe = {"body": 'const THEBE_JS_URL = "x"'}
    context = {"script_files": [_JavaScript(None, **thebe), _JavaScript("a.js"), _JavaScript("", **thebe)]}
    page_fixes.one_script_each(None, "p", "page.html", context, None)
    assert [(s.filename, s.attributes) for s in context["script_files"]] == [(None, thebe), ("a.js", {})]
