"""Run chapters as notebooks with papermill, alone or as a grid of parameters, and summarise the grid.

A chapter is a jupytext MyST file; papermill reads only .ipynb, so the chapter is converted
in memory, executed with the parameters injected after its `parameters` cell, and the
executed notebook is written beside the training runs it made (LDRKIT_RUNS points there).
OUT/parameters.json records the parameters the chapter ran with: $LDRKIT_PROFILE overrides every chapter's
profile, so it is recorded as the profile, and a `-p profile` that disagrees with it is refused.
"""
from __future__ import annotations

import itertools
import json
import os
import statistics
from pathlib import Path

from .runs.files import atomic_write, writable_folder
from .spec.hashing import check_profile

RUNS_SUBDIR = "runs"
PROFILE_ENV = "LDRKIT_PROFILE"


def run_chapter(chapter: Path | str, out: Path | str, parameters: dict | None = None, progress: bool = True) -> Path:
    """Execute one chapter with papermill into OUT/CHAPTER.ipynb; its runs go to OUT/runs/. Returns the notebook path."""
    import jupytext
    import papermill

    chapter, out = Path(chapter).resolve(), Path(out).absolute()
    if not chapter.is_file():
        raise FileNotFoundError(f"no chapter at {chapter}" + (" (a folder: give a chapter file, e.g. book/parity-mlp.md)"
                                                             if chapter.is_dir() else ""))
    notebook = jupytext.read(chapter)
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in notebook.cells):
        raise ValueError(f"{chapter.name} has no cell tagged 'parameters'")
    known = chapter_parameters(notebook)
    unknown = sorted(set(parameters or {}) - set(known))
    if unknown:
        raise ValueError(f"{chapter.name} has no parameter {', '.join(map(repr, unknown))}; its parameters: "
                         f"{', '.join(known)}")
    recorded = ran_with(parameters or {})
    writable_folder(out)
    target = out / f"{chapter.stem}.ipynb"
    previous = os.environ.get("LDRKIT_RUNS")
    os.environ["LDRKIT_RUNS"] = str(out / RUNS_SUBDIR)  # the kernel inherits it
    try:
        papermill.execute_notebook(notebook, str(target), parameters=parameters or {}, kernel_name="python3",
                                   cwd=str(chapter.parent), progress_bar=progress)
    finally:
        if previous is None:
            os.environ.pop("LDRKIT_RUNS", None)
        else:
            os.environ["LDRKIT_RUNS"] = previous
    atomic_write(out / "parameters.json", json.dumps(recorded, indent=1))
    return target


def ran_with(parameters: dict) -> dict:
    """The parameters a chapter runs with: the injected ones, the profile that of $LDRKIT_PROFILE when it is set
    (every chapter resolves its profile through it). A `profile` parameter that $LDRKIT_PROFILE would override is
    refused: the record would name a profile the runs were not trained with."""
    if "profile" in parameters:
        check_profile(parameters["profile"])
    forced = os.environ.get(PROFILE_ENV)
    if not forced:
        return dict(parameters)
    check_profile(forced)
    if parameters.get("profile", forced) != forced:
        raise ValueError(f"${PROFILE_ENV}={forced} overrides the chapter's profile, so -p profile "
                         f"{parameters['profile']} would not be the profile its runs train with; unset {PROFILE_ENV} "
                         f"or pass -p profile {forced}")
    return {**parameters, "profile": forced}


def chapter_parameters(notebook) -> list[str]:
    """The names assigned in a chapter's cell tagged 'parameters' (what papermill may inject)."""
    import ast

    cell = next(c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    return [t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)]


def grid(fixed: dict, varying: dict[str, list]) -> list[dict]:
    """Every combination of the varying parameters, each merged into the fixed ones."""
    keys = list(varying)
    return [{**fixed, **dict(zip(keys, combo))} for combo in itertools.product(*(varying[k] for k in keys))]


def run_batch(chapter: Path | str, out: Path | str, fixed: dict, varying: dict[str, list],
              progress: bool = True) -> list[dict]:
    """Run the chapter once per grid point into OUT/<k1>-<v1>_<k2>-<v2>/ and write OUT/summary.md; returns the summary rows."""
    out = Path(out)
    for params in grid(fixed, varying):
        name = "_".join(f"{k}-{params[k]}" for k in varying) or "run"
        run_chapter(chapter, out / name, params, progress)
    rows = summarise(out)
    (out / "summary.md").write_text(format_summary(rows))
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    return rows


def summarise(out: Path | str) -> list[dict]:
    """Mean and spread (sample standard deviation) across runs of every final metric, per experiment and profile."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for path in sorted(Path(out).glob(f"*/{RUNS_SUBDIR}/*/*/metrics.json")):
        m = json.loads(path.read_text())
        if "final" in m:
            groups.setdefault((m["experiment"], m["profile"]), []).append(m)
    rows = []
    for (experiment, profile), runs in sorted(groups.items()):
        values: dict[str, list[float]] = {}
        for m in runs:
            for section in ("categories", "ldr", "ldr_x0"):
                for key, v in m["final"].get(section, {}).items():
                    values.setdefault(f"{section}.{key}", []).append(float(v))
        rows.append({"experiment": experiment, "profile": profile, "seeds": sorted(m["seed"] for m in runs),
                     "metrics": {k: {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0,
                                     "n": len(v)} for k, v in values.items()}})
    return rows


def format_summary(rows: list[dict]) -> str:
    """A Markdown table per experiment: metric, mean, standard deviation across seeds."""
    parts = []
    for r in rows:
        parts.append(f"### {r['experiment']} ({r['profile']}, seeds {', '.join(map(str, r['seeds']))})\n")
        parts.append("| metric | mean | std | n |\n|---|---|---|---|")
        parts += [f"| {k} | {v['mean']:.4f} | {v['std']:.4f} | {v['n']} |" for k, v in r["metrics"].items()]
        parts.append("")
    return "\n".join(parts) if parts else "(no finished runs found)\n"


def parse_parameters(pairs: list[list[str]] | None) -> dict:
    """[["profile", "cpu"], ["seed", "1"]] -> {"profile": "cpu", "seed": 1} (JSON values where they parse)."""
    params = {}
    for key, value in pairs or []:
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params
