"""Shared test setup: one torch thread per test process, run folders under pytest's tmp dirs, and the
book built once with the smoke profile (used by the chapter and the website tests)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

# One thread per process, set in the environment so that every process a test starts inherits it
# (the ldrkit CLI, papermill's kernels, the smoke build's kernels). A subprocess with torch's default
# of two OpenMP threads beside the other pytest worker spins on both cores and slows both 20-60x:
# that made a 9-second chapter run past the smoke build's 40-minute limit in CI.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import torch  # noqa: E402  (after the thread settings)

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LDRKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("LDRKIT_PROFILE", raising=False)


@dataclass
class SmokeBuild:
    """A finished `jupyter-book build` of the repository with LDRKIT_PROFILE=smoke."""

    out: Path          # --path-output: out/_build/html, out/_build/jupyter_execute/book/NAME.ipynb
    returncode: int
    log: str
    seconds: float

    @property
    def html(self) -> Path:
        return self.out / "_build" / "html"

    def executed(self, docname: str) -> Path:
        return self.out / "_build" / "jupyter_execute" / f"{docname}.ipynb"


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory) -> SmokeBuild:
    """The book built once per test run with the smoke profile, every chapter executed (-W -n --keep-going).

    The build goes into a fresh temporary --path-output (its own jupyter-cache and run folders),
    because the execution cache does not key on LDRKIT_PROFILE: a smoke build must never mix
    with the cpu website. Under pytest-xdist the workers share one build: the first to ask
    builds under a file lock, the others wait and read its result (the pattern the xdist docs
    give for session fixtures). LDRKIT_SMOKE_BUILD=DIR reuses a finished build in DIR instead.
    """
    import json

    from filelock import FileLock

    reuse = os.environ.get("LDRKIT_SMOKE_BUILD")
    if reuse:
        assert (Path(reuse) / "_build" / "html").is_dir(), f"LDRKIT_SMOKE_BUILD={reuse} has no _build/html"
        return SmokeBuild(Path(reuse), 0, "", 0.0)
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the folder all workers' base temps live in
    out, record = shared / "smoke-book", shared / "smoke-book.json"
    with FileLock(str(shared / "smoke-book.lock")):
        if record.exists():
            done = json.loads(record.read_text())
            return SmokeBuild(out, done["returncode"], done["log"], done["seconds"])
        # One thread: the other pytest worker (make test runs two) trains on the other core.
        env = dict(os.environ, LDRKIT_PROFILE="smoke", LDRKIT_RUNS=str(out / "runs"),
                   OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        jb = Path(sys.executable).with_name("jupyter-book")  # the venv's console script
        start = time.monotonic()
        try:
            build = subprocess.run([str(jb) if jb.exists() else "jupyter-book", "build", str(ROOT), "--path-output",
                                    str(out), "-W", "-n", "--keep-going"], env=env, capture_output=True, text=True,
                                   timeout=40 * 60)
            returncode, log = build.returncode, build.stdout + build.stderr
        except subprocess.TimeoutExpired as err:
            out_text = b"".join(x for x in (err.stdout, err.stderr) if isinstance(x, bytes)).decode(errors="replace")
            returncode, log = -1, f"the smoke build ran past 40 minutes\n{out_text}"
        seconds = time.monotonic() - start
        print(f"smoke build: {seconds:.0f} s into {out}")
        record.write_text(json.dumps({"returncode": returncode, "log": log, "seconds": seconds}))
        return SmokeBuild(out, returncode, log, seconds)
