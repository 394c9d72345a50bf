"""Every chapter in _toc.yml executes top to bottom with the smoke profile (what nbmake would do for .ipynb)."""
import os
from pathlib import Path

import jupytext
import nbclient
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


def chapters() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    paths = [ROOT / f"{f}.md" for f in toc_files(toc)]
    return [p for p in paths if "kernelspec" in p.read_text()[:400]]  # executable notebooks only


def test_every_toc_entry_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for f in toc_files(toc):
        assert (ROOT / f"{f}.md").exists(), f


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_chapter_executes_with_the_smoke_profile(chapter, monkeypatch):
    monkeypatch.setenv("LDRKIT_PROFILE", "smoke")
    nb = jupytext.read(chapter)
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells), "no parameters cell"
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(chapter.parent)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "a chapter shows at least one figure"
