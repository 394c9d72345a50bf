"""Every chapter in _toc.yml executes top to bottom with the smoke profile (what nbmake would do for .ipynb).

The chapters are executed once, by the smoke build of the book (the `smoke_book` fixture in
conftest.py, shared with tests/test_website.py); these tests read the executed notebooks.
"""
from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def toc_files(node) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root") and isinstance(value, str):
                found.append(value)
            else:
                found += toc_files(value)
    elif isinstance(node, list):
        for item in node:
            found += toc_files(item)
    return found


def chapters() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [f for f in toc_files(toc) if "kernelspec" in (ROOT / f"{f}.md").read_text()[:400]]  # executable only


def test_every_toc_entry_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for f in toc_files(toc):
        assert (ROOT / f"{f}.md").exists(), f


@pytest.mark.parametrize("docname", chapters(), ids=lambda d: Path(d).stem)
def test_chapter_executes_with_the_smoke_profile(docname, smoke_book):
    source = jupytext.read(ROOT / f"{docname}.md")
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in source.cells), "no parameters cell"
    path = smoke_book.executed(docname)
    stem = Path(docname).stem
    assert path.exists(), (f"{docname} was not executed by the smoke build; its lines in the build log:\n"
                           + "\n".join(l for l in smoke_book.log.splitlines() if stem in l)[-3000:])
    nb = jupytext.read(path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, "\n".join("\n".join(e.get("traceback", [])) for e in errors)[-3000:]
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "a chapter shows at least one figure"
    assert len([c for c in nb.cells if c.cell_type == "code"]) == len([c for c in source.cells if c.cell_type == "code"])


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
