"""The Colab route: every chapter starts with a setup cell that installs ldrkit from the book's repository
only inside Colab, and book/NAME.ipynb (what the Colab button opens) matches book/NAME.md."""
import subprocess
import sys
import types
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_chapters import chapters as docnames  # noqa: E402  (the executable chapters of _toc.yml)


def chapters() -> list[Path]:
    return [ROOT / f"{d}.md" for d in docnames()]

REPO_URL = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def setup_cell(chapter):
    nb = jupytext.read(chapter)
    code = [c for c in nb.cells if c.cell_type == "code"]
    return code[0], nb


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_setup_cell_comes_first_and_installs_from_the_repository(chapter):
    cell, nb = setup_cell(chapter)
    assert '"google.colab" in sys.modules' in cell.source, "the first code cell is not the Colab setup cell"
    assert f"git+{REPO_URL}" in cell.source, f"the setup cell does not install from repository.url {REPO_URL}"
    tags = [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in tags[1], "the parameters cell follows the setup cell (papermill injects after it)"


def _run_setup(source, colab: bool, monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda cmd, *a, **k: calls.append(cmd) or 0)
    printed = []
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(source, "<setup cell>", "exec"), {"print": lambda *a, **k: printed.append(a)})
    return calls, printed


def test_setup_cell_is_a_no_op_outside_colab_and_installs_inside(monkeypatch):
    cell, _ = setup_cell(chapters()[0])
    calls, printed = _run_setup(cell.source, colab=False, monkeypatch=monkeypatch)
    assert calls == [] and printed == []
    calls, printed = _run_setup(cell.source, colab=True, monkeypatch=monkeypatch)
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", f"git+{REPO_URL}"]] and printed == []


def test_setup_cells_are_identical():
    sources = {setup_cell(c)[0].source for c in chapters()}
    assert len(sources) == 1, "chapters disagree on the setup cell"


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_colab_notebook_matches_its_chapter(chapter):
    ipynb = chapter.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} is missing: run `make notebooks` (Colab opens it)"
    text = jupytext.read(chapter)
    nb = nbformat.read(ipynb, as_version=4)
    def cells(book):
        return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in book.cells]
    assert cells(nb) == cells(text), f"{ipynb.name} is out of date with {chapter.name}: run `make notebooks`"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    assert nb.metadata.kernelspec.name == "python3"


def test_default_device_follows_the_environment(monkeypatch):
    from ldrkit.denoisers.device import default_device
    monkeypatch.setenv("LDRKIT_DEVICE", "cpu")
    assert str(default_device()) == "cpu"
    monkeypatch.delenv("LDRKIT_DEVICE")
    import torch
    assert default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_one_setting_turns_the_repository_links_on_and_off():
    """book/_ext/repository.py: `repository.public` in _config.yml switches the repository and Colab buttons and
    the intro's install line; while it is false the pages name no repository address."""
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import repository

    assert isinstance(yaml.safe_load((ROOT / "_config.yml").read_text())["repository"].get("public"), bool)
    options = {"use_repository_button": True, "launch_buttons": {"colab_url": "https://colab.research.google.com"}}
    assert repository.theme_options(options, public=True) == options
    off = repository.theme_options(options, public=False)
    assert off["use_repository_button"] is False and off["launch_buttons"] == {} and options["launch_buttons"]
    assert f"git+{REPO_URL}" in repository.colab_text({"url": REPO_URL, "public": True})
    assert REPO_URL not in repository.colab_text({"url": REPO_URL, "public": False})
