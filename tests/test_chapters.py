"""Every chapter in _toc.yml executes top to bottom with the smoke profile under nbmake.

nbmake executes each committed book/NAME.ipynb once, in the smoke build (tests/smoke_book.py, the `smoke_book`
fixture in conftest.py, shared with tests/test_website.py, whose site is built from the same executed notebooks);
these tests report nbmake's verdict per chapter and check what the executed notebooks hold.
"""
from pathlib import Path

import jupytext
import pytest
import yaml

from smoke_book import chapters, toc_files  # noqa: F401  (test_colab and test_website import them from here)

ROOT = Path(__file__).resolve().parent.parent


def test_every_toc_entry_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for f in toc_files(toc):
        assert (ROOT / f"{f}.md").exists(), f


@pytest.mark.parametrize("docname", chapters(), ids=lambda d: Path(d).stem)
def test_chapter_executes_with_the_smoke_profile(docname, smoke_book):
    source = jupytext.read(ROOT / f"{docname}.md")
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in source.cells), "no parameters cell"
    assert (ROOT / f"{docname}.ipynb").exists(), f"{docname}.ipynb is missing: run `make notebooks`"
    outcome, detail = smoke_book.verdict(docname)
    assert outcome != "missing", f"nbmake did not report {docname}.ipynb; its lines in nbmake's output:\n{detail}"
    assert outcome == "passed", f"nbmake: {docname}.ipynb failed:\n{detail[-3000:]}"
    nb = jupytext.read(smoke_book.executed(docname))
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "a chapter shows at least one figure"
    ran, written = (len([c for c in book.cells if c.cell_type == "code"]) for book in (nb, source))
    assert ran == written, f"nbmake ran {ran} code cells of {docname}.ipynb, {docname}.md has {written}: `make notebooks`"


@pytest.mark.parametrize("docname", chapters(), ids=lambda d: Path(d).stem)
def test_figure_cells_show_only_their_figure(docname):
    """MyST-NB puts every display output of a figure cell inside the figure, under the figure's name: a table
    displayed there becomes a second figure with a duplicate label (a warning that fails the -W build)."""
    for cell in jupytext.read(ROOT / f"{docname}.md").cells:
        if cell.cell_type == "code" and "figure" in cell.get("metadata", {}).get("mystnb", {}):
            lines = [l.strip() for l in cell.source.splitlines() if l.strip() and not l.strip().startswith("#")]
            assert not any(l.startswith(("display(", "table(")) for l in lines), (docname, cell.source[:200])


@pytest.mark.parametrize("docname", chapters(), ids=lambda d: Path(d).stem)
def test_figure_captions_name_the_paper(docname):
    """Every numbered figure says which figure or section of the paper it makes (or that the paper has none);
    the website test checks the same on the built pages, this one without a build."""
    for cell in jupytext.read(ROOT / f"{docname}.md").cells:
        figure = cell.get("metadata", {}).get("mystnb", {}).get("figure") if cell.cell_type == "code" else None
        if figure:
            assert "paper" in figure.get("caption", "").lower(), (docname, figure.get("name"))
