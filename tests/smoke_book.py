"""The smoke build of the book: nbmake executes every chapter notebook once, the website is built from its outputs.

nbmake runs over copies of the committed book/NAME.ipynb (the Colab copies, kept in sync with book/NAME.md by
`make notebooks`; tests/test_colab.py checks) with LDRKIT_PROFILE=smoke and writes each executed notebook over
its copy (--overwrite). Jupyter Book then builds the site from those notebooks with execution off, so every
chapter runs once and the chapter tests, the website tests and the pages all read the same outputs.

Layout of OUT: src/ (the book's sources, chapters as executed notebooks), runs/ (LDRKIT_RUNS, shared by the
chapters), nbmake.xml (nbmake's verdict per notebook, JUnit XML), _build/html (the site), record.json.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 40 * 60  # nbmake and the site build together
SITE_MIN_S = 5 * 60  # kept for the site build however long nbmake took


def toc_files(node) -> list[str]:
    """Every file and root entry of a parsed _toc.yml, in order."""
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


def chapters(root: Path | None = None) -> list[str]:
    """The executable chapters of _toc.yml (a kernelspec in the MyST header), e.g. 'book/parity-mlp'."""
    root = root or ROOT
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    return [f for f in toc_files(toc) if "kernelspec" in (root / f"{f}.md").read_text()[:400]]


@dataclass
class SmokeBuild:
    """A finished smoke build in `out` (see the module docstring)."""

    out: Path
    returncode: int       # the site build's (-W -n --keep-going)
    log: str              # the site build's output
    nbmake_log: str       # nbmake's pytest output
    seconds: float

    @property
    def html(self) -> Path:
        return self.out / "_build" / "html"

    def executed(self, docname: str) -> Path:
        """The notebook nbmake executed (its outputs written over the copy of book/NAME.ipynb)."""
        return self.out / "src" / f"{docname}.ipynb"

    def verdict(self, docname: str) -> tuple[str, str]:
        """nbmake's outcome for one chapter: ("passed" | "failed" | "missing", the error or the log's lines on it)."""
        results = nbmake_results(self.out / "nbmake.xml")
        stem = Path(docname).stem
        if stem in results:
            error = results[stem]
            return ("passed", "") if error is None else ("failed", error)
        lines = [line for line in self.nbmake_log.splitlines() if stem in line]
        return "missing", ("\n".join(lines) or self.nbmake_log)[-3000:]

    @classmethod
    def load(cls, out: Path) -> "SmokeBuild":
        done = json.loads((out / "record.json").read_text())
        return cls(out, done["returncode"], done["log"], done["nbmake_log"], done["seconds"])


ANSI = re.compile(r"(?:\x1b|#x1B)\[[0-9;]*[A-Za-z]")  # colours in kernel tracebacks (JUnit XML writes ESC as #x1B)


def nbmake_results(xml: Path) -> dict[str, str | None]:
    """{notebook stem: None when it passed, else nbmake's error (the failing cell and its traceback)}."""
    if not xml.exists():
        return {}
    results = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        bad = [e for e in case if e.tag in ("failure", "error")]
        text = "\n".join(f"{e.get('message', '')}\n{e.text or ''}" for e in bad)
        results[Path(case.get("name", "")).stem] = ANSI.sub("", text) if bad else None
    return results


def _run(cmd: list[str], env: dict, timeout: float) -> tuple[int, str]:
    """Run a command; past `timeout` kill it and everything it started (kernels included). The output starts
    with its exit status, wall and CPU seconds (its own and its children's: the kernels' too)."""
    import resource

    import psutil

    start, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        out, _ = proc.communicate()
        out += f"\n{' '.join(cmd[:4])} ran past {timeout / 60:.0f} minutes"
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    head = f"{Path(cmd[0]).name} {cmd[1]} {cmd[2]}: exit status {proc.returncode}, " \
           f"{time.monotonic() - start:.0f} s, {seconds:.0f} CPU s"
    return (proc.returncode if proc.returncode >= 0 else -1), f"{head}\n{out}"


def prepare_sources(src: Path) -> list[Path]:
    """Copy the book into `src` with each chapter's committed .ipynb in place of its .md, and a _config.yml
    that executes nothing; return the chapter notebooks to execute, in the order Sphinx reads them (sorted)."""
    docs = chapters()
    skip = {f"{d}.md" for d in docs}
    src.mkdir(parents=True)
    shutil.copy2(ROOT / "_toc.yml", src / "_toc.yml")
    shutil.copytree(ROOT / "book", src / "book", ignore=lambda folder, names: [
        n for n in names if n in (".ipynb_checkpoints", "__pycache__", "_build")
        or str((Path(folder) / n).relative_to(ROOT)) in skip])
    _link_to_notebooks(src / "book", [Path(d).name for d in docs])
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"  # nbmake executed them
    config["exclude_patterns"] = [p for p in config.get("exclude_patterns", []) if p != "book/*.ipynb"]
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return [src / f"{d}.ipynb" for d in sorted(docs) if (src / f"{d}.ipynb").exists()]


def _link_to_notebooks(book: Path, stems: list[str]) -> None:
    """Point the links between pages, [text](NAME.md#anchor), at NAME.ipynb, the chapter's source in this copy
    (a link to a missing NAME.md is a warning that fails the -W build); nothing else in the text changes."""
    import nbformat

    link = re.compile(r"(\]\((?:[\w./-]*/)?(?:" + "|".join(map(re.escape, stems)) + r"))\.md(?=[#)])")
    for page in book.glob("*.md"):
        page.write_text(link.sub(r"\1.ipynb", page.read_text()))
    for path in book.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = link.sub(r"\1.ipynb", cell.source)
        nbformat.write(nb, path)


def build(out: Path) -> SmokeBuild:
    """Execute every chapter notebook with nbmake (smoke profile, one thread), then build the site from them;
    write out/record.json in any case (the tests wait for it)."""
    start = time.monotonic()
    try:
        return _build(out, start)
    except Exception:  # a record that says why, rather than tests waiting for one that never comes
        import traceback

        done = SmokeBuild(out, -1, traceback.format_exc(), "the smoke build failed before nbmake reported",
                          time.monotonic() - start)
        _record(done)
        return done


def _record(done: SmokeBuild) -> None:
    done.out.mkdir(parents=True, exist_ok=True)
    tmp = done.out / "record.tmp"
    tmp.write_text(json.dumps({"returncode": done.returncode, "log": done.log, "nbmake_log": done.nbmake_log,
                               "seconds": done.seconds}))
    tmp.replace(done.out / "record.json")


def _build(out: Path, start: float) -> SmokeBuild:
    if out.exists():  # a build interrupted earlier
        shutil.rmtree(out)
    notebooks = prepare_sources(out / "src")
    # One thread: the pytest workers (make test runs two) train beside it. No progress bars: a widget update
    # per training step floods the kernel's IOPub channel for nothing. No PYTEST_* variables from the outer run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(LDRKIT_PROFILE="smoke", LDRKIT_RUNS=str(out / "runs"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               TQDM_DISABLE="1")
    ini = out / "nbmake.ini"  # its own rootdir and settings: the repository's conftest and pytest options stay out
    ini.write_text("[pytest]\n")
    # nbmake runs each notebook with its folder, src/book, as working directory, as Jupyter Book does with book/.
    # A smoke cell takes seconds: ten minutes per cell turns a kernel that stops answering (seen with ipykernel 7
    # on a loaded machine) into one failed chapter instead of the whole build's time.
    rc, nbmake_log = _run([sys.executable, "-m", "pytest", "--nbmake", "--overwrite", "--nbmake-timeout=600",
                           "-c", str(ini), "--rootdir", str(out / "src"), "-p", "no:cacheprovider", "-v",
                           "--junitxml", str(out / "nbmake.xml"), *map(str, notebooks)],
                          env, LIMIT_S - SITE_MIN_S)
    jb = Path(sys.executable).with_name("jupyter-book")  # the venv's console script
    left = LIMIT_S - (time.monotonic() - start)
    returncode, log = _run([str(jb) if jb.exists() else "jupyter-book", "build", str(out / "src"), "--path-output",
                            str(out), "-W", "-n", "--keep-going"], env, max(left, SITE_MIN_S))
    done = SmokeBuild(out, returncode, log, nbmake_log, time.monotonic() - start)
    _record(done)
    return done
