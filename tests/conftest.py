"""Shared test setup: one torch thread per test process, run folders under pytest's tmp dirs, and the
smoke build of the book made once (nbmake executes every chapter notebook, the site is built from its
outputs: tests/smoke_book.py), read by the chapter and the website tests."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

# One thread per process, set in the environment so that every process a test starts inherits it
# (the ldrkit CLI, papermill's kernels, nbmake's kernels in the smoke build). A subprocess with torch's
# default of two OpenMP threads beside the other pytest worker spins on both cores and slows both 20-60x:
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


def pytest_configure(config):
    config.addinivalue_line("markers", "long(seconds): a test that trains for about this long on one CI core; "
                                       "the long ones are spread over the workers and start first")
    config.addinivalue_line("markers", "slow: retrains an image model for 8-15 minutes of one core; left out of "
                                       "`make test` and CI, run by `make test-slow`")


def pytest_collection_modifyitems(config, items):
    """Order the tests so that `make test`'s two workers finish together.

    pytest-xdist's worksteal scheduler first gives worker 0 the first half of the collection and
    worker 1 the rest, then moves tests from the end of a busy worker's queue to an idle one; a long
    test at the end of a queue cannot be split and leaves the other core idle (CI measured 34 minutes
    that way). So the long tests (marked `long`) are dealt to the two halves by expected time, longest
    first, each half starting with its long tests; the tests that read the smoke build of the book
    go last, so the build has run in the background meanwhile.
    """
    def weight(item):
        marker = item.get_closest_marker("long")
        return float(marker.kwargs.get("seconds", 60)) if marker else 0.0

    book = [i for i in items if i.nodeid.startswith(("tests/test_chapters.py", "tests/test_website.py"))
            and "smoke_book" in getattr(i, "fixturenames", ())]
    long = sorted((i for i in items if weight(i) and i not in book), key=weight, reverse=True)
    rest = [i for i in items if i not in book and i not in long]
    halves, loads = ([], []), [0.0, 0.0]
    for item in long:
        k = loads.index(min(loads))
        halves[k].append(item)
        loads[k] += weight(item)
    first = max(0, len(items) // 2 - len(halves[0]))
    items[:] = halves[0] + rest[:first] + halves[1] + rest[first:] + book


def _smoke_paths(base: Path) -> tuple[Path, Path, Path]:
    """The smoke build's output folder, its result record and the marker of a background build."""
    out = base / "smoke-book"
    return out, out / "record.json", base / "smoke-book.started"


def _wants_smoke_build(config) -> bool:
    """True when this run collects the chapter or website tests (a full run, or those files named)."""
    if os.environ.get("LDRKIT_SMOKE_BUILD") or config.getoption("collectonly", False):
        return False
    if (config.getoption("markexpr", "") or "").strip() == "slow":  # `make test-slow`: no chapter test runs
        return False
    args = [str(a) for a in config.args]
    named = [a for a in args if a.endswith(".py") or "::" in a]
    if named:
        return any("test_chapters" in a or "test_website" in a for a in named)
    ignored = " ".join(str(p) for p in (config.getoption("ignore") or []))
    return not ("test_chapters" in ignored and "test_website" in ignored)


def pytest_sessionstart(session):
    """On the controller (or a run without workers), start the smoke build in the background at once.

    The build runs on one thread beside the two pytest workers, so neither worker sits idle waiting
    for it when it reaches the chapter tests; the `smoke_book` fixture waits for its record.
    """
    config = session.config
    if hasattr(config, "workerinput") or not _wants_smoke_build(config):
        return
    base = config._tmp_path_factory.getbasetemp()
    out, record, started = _smoke_paths(base)
    started.write_text(str(os.getpid()))
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import smoke_book; "
              f"from pathlib import Path; smoke_book.build(Path({str(out)!r}))")
    config._ldrkit_smoke = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, start_new_session=True)


def pytest_sessionfinish(session):
    """Every test that needed the smoke build has waited for it by now: one still running is not needed."""
    import signal

    build = getattr(session.config, "_ldrkit_smoke", None)
    if build is not None and build.poll() is None:
        os.killpg(build.pid, signal.SIGTERM)
        build.wait(timeout=60)


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """The smoke build (tests/smoke_book.py), made once per test run: nbmake executes every chapter notebook
    with the smoke profile, then the site is built from the executed notebooks without executing again.

    It goes into a fresh temporary folder (its own run folders): a smoke build must never mix with the
    cpu website. The controller starts it in the background when the session starts
    (`pytest_sessionstart`); the workers wait for its record. Without that (a run of a few test
    files), the first worker to ask builds under a file lock and the others wait and read its result.
    LDRKIT_SMOKE_BUILD=DIR reuses a finished build in DIR (the folder holding _build/html and record.json).
    """
    from filelock import FileLock

    import smoke_book as book

    reuse = os.environ.get("LDRKIT_SMOKE_BUILD")
    if reuse:
        assert (Path(reuse) / "_build" / "html").is_dir(), f"LDRKIT_SMOKE_BUILD={reuse} has no _build/html"
        assert (Path(reuse) / "record.json").is_file(), f"LDRKIT_SMOKE_BUILD={reuse} has no record.json"
        return book.SmokeBuild.load(Path(reuse))
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the folder all workers' base temps live in (the controller's base temp)
    out, record, started = _smoke_paths(shared)
    if started.exists():
        deadline = time.monotonic() + 45 * 60
        while not record.exists() and time.monotonic() < deadline:
            time.sleep(2)
    with FileLock(str(shared / "smoke-book.lock")):
        if not record.exists():
            return book.build(out)
        return book.SmokeBuild.load(out)
