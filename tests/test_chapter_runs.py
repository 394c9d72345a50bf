"""The papermill route: one chapter with injected parameters, and a batch over seeds with its summary."""
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.long(seconds=50)
def test_chapter_batch_injects_parameters_and_summarises_across_seeds(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ldrkit", "chapter", "batch", str(ROOT / "book" / "parity-mlp.md"),
                          "--out", str(tmp_path), "--seeds", "0", "1", "-p", "profile", "smoke"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    for seed in (0, 1):
        nb = nbformat.read(tmp_path / f"seed-{seed}" / "parity-mlp.ipynb", as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and f"seed = {seed}" in injected[0].source
        printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
        assert f"profile = smoke, seed = {seed}" in printed  # the injected values took effect
    rows = json.loads((tmp_path / "summary.json").read_text())
    assert {r["experiment"] for r in rows} == {"parity-mlp-L8", "parity-mlp-L16"}
    for r in rows:
        assert r["seeds"] == [0, 1]
        inv = r["metrics"]["categories.invalid"]
        assert inv["n"] == 2 and 0 <= inv["mean"] <= 1 and inv["std"] >= 0
    assert "| categories.hallucination |" in (tmp_path / "summary.md").read_text()


def test_chapter_run_refuses_a_missing_chapter(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ldrkit", "chapter", "run", "book/nope.md", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "no chapter" in out.stderr
