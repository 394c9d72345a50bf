"""The results store: finished runs kept in the repository, so reading the book does not mean retraining it.

A stored run lives in results/NAME/PROFILE-seedS/ and holds a trimmed copy of its run folder:
its JSON records (metrics.json, metrics.jsonl, config.json) and analysis caches (LDR and oracle
distance over training, trajectory LDR), the first `samples_per_step` generated samples of every
evaluation, and the model weights of the last checkpoint (plus any steps asked for: a chapter
that loads an earlier checkpoint needs it stored), together with provenance.json:
the code version (git commit, and whether the tree had uncommitted changes) and config hash
that made it.

`run_experiment` restores a stored run into the run folder when its config hash equals the
config's, and trains otherwise: a changed config is retrained, an unchanged one is reused.
`reproduce` retrains stored runs from scratch and sets the stored and fresh numbers side by side.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from .train import atomic_write, json_ready, checkpoints

ROOT = Path(__file__).resolve().parent.parent


def store_root() -> Path:
    """$LDRKIT_RESULTS, else results/ at the repository root (or in the working directory when installed elsewhere)."""
    if os.environ.get("LDRKIT_RESULTS"):
        return Path(os.environ["LDRKIT_RESULTS"])
    return ROOT / "results" if (ROOT / "_toc.yml").exists() else Path.cwd() / "results"


def stored_dir(name: str, profile: str, seed: int, root: Path | None = None) -> Path:
    return Path(root or store_root()) / name / f"{profile}-seed{seed}"


def code_version() -> dict:
    """The git commit of the code (and whether the working tree differs from it), or 'unknown'."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", "ldrkit"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}


def store_run(run_dir: Path | str, root: Path | None = None, samples_per_step: int = 64,
              keep_steps: tuple[int, ...] = ()) -> Path:
    """Copy a finished run's records, caches, sample subsets and last weights into the store; returns its folder."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.exists():
        raise FileNotFoundError(f"{run_dir} holds no finished run (no metrics.json)")
    metrics = json.loads(metrics_path.read_text())
    dest = stored_dir(metrics["experiment"], metrics["profile"], metrics["seed"], root)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for path in sorted(run_dir.iterdir()):  # records and analysis caches (LDR, oracle distances, trajectories)
        if path.is_file() and path.suffix in (".json", ".jsonl"):
            shutil.copy2(path, dest / path.name)
    for path in sorted((run_dir / "samples").glob("step_*.npy")):
        (dest / "samples").mkdir(exist_ok=True)
        np.save(dest / "samples" / path.name, np.load(path)[:samples_per_step])
    found = dict(checkpoints(run_dir))
    kept = sorted({max(found)} | set(keep_steps)) if found else []
    for step in kept:
        shutil.copy2(found[step], dest / found[step].name)
    for extra in ("samples.pt",):  # oracle runs keep their samples in one file
        if (run_dir / extra).exists():
            shutil.copy2(run_dir / extra, dest / extra)
    provenance = {"experiment": metrics["experiment"], "profile": metrics["profile"], "seed": metrics["seed"],
                  "config_hash": metrics["config_hash"],
                  # The code that trained it (recorded in metrics.json since the store exists), else the storing code.
                  "code": metrics.get("code") or {**code_version(), "note": "code at storing time"},
                  "stored_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "wall_seconds": metrics.get("wall_seconds"), "checkpoint_steps": kept,
                  "samples_per_step": samples_per_step}
    atomic_write(dest / "provenance.json", json.dumps(provenance, indent=1))
    return dest


def find_stored(name: str, profile: str, seed: int, digest: str, root: Path | None = None) -> Path | None:
    """The stored run of (name, profile, seed) when it was made by a config with this hash, else None."""
    path = stored_dir(name, profile, seed, root)
    if not (path / "metrics.json").exists():
        return None
    return path if json.loads((path / "metrics.json").read_text()).get("config_hash") == digest else None


def restore_run(stored: Path, out: Path) -> dict:
    """Copy a stored run into the run folder `out` and return its metrics, pointing at `out`."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(stored, out, dirs_exist_ok=True)
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["run_dir"] = str(out)
    metrics["restored_from"] = str(stored)
    atomic_write(out / "metrics.json", json.dumps(json_ready(metrics), indent=1))
    return metrics


def stored_runs(root: Path | None = None) -> list[dict]:
    """Provenance of every stored run, sorted by experiment name."""
    root = Path(root or store_root())
    return sorted((json.loads(p.read_text()) for p in root.glob("*/*/provenance.json")),
                  key=lambda p: (p["experiment"], p["profile"], p["seed"]))


def final_numbers(metrics: dict) -> dict[str, float]:
    """The headline numbers of a run's last evaluation: the four categories and the eps-LDR per level."""
    final = metrics.get("final") or {}
    out = {f"{k}": v for k, v in final.get("categories", {}).items()}
    out.update({f"ldr@{k}": v for k, v in final.get("ldr", {}).items()})
    return out


def compare_table(rows: list[tuple[str, dict, dict]]) -> str:
    """A markdown table of stored against fresh final numbers, one block of lines per experiment."""
    lines = ["| experiment | number | stored | fresh | difference |", "|---|---|---|---|---|"]
    for name, stored, fresh in rows:
        s, f = final_numbers(stored), final_numbers(fresh)
        for key in sorted(set(s) | set(f)):
            a, b = s.get(key), f.get(key)
            diff = f"{b - a:+.3f}" if a is not None and b is not None else "n/a"
            lines.append(f"| {name} | {key} | {'n/a' if a is None else f'{a:.3f}'} | "
                         f"{'n/a' if b is None else f'{b:.3f}'} | {diff} |")
        lines.append(f"| {name} | wall seconds | {stored.get('wall_seconds')} | {fresh.get('wall_seconds')} | |")
    return "\n".join(lines) + "\n"


def reproduce(names: list[str] | None = None, profile: str = "cpu", seed: int = 0, out: Path | str = "reproduce",
              progress: bool = True) -> str:
    """Retrain stored runs from scratch into OUT/NAME and write OUT/reproduce.md comparing stored and fresh numbers."""
    from .experiments import get_experiment, run_experiment

    out = Path(out)
    stored = {p["experiment"]: p for p in stored_runs() if p["profile"] == profile and p["seed"] == seed}
    names = names or sorted(stored)
    rows = []
    for name in names:
        get_experiment(name)  # a clear error for an unknown name
        path = stored_dir(name, profile, seed)
        if not (path / "metrics.json").exists():
            raise FileNotFoundError(f"no stored run of {name} ({profile}, seed {seed}) in {path.parent}")
        before = json.loads((path / "metrics.json").read_text())
        fresh = run_experiment(name, profile, seed, out=out / name, progress=progress, use_store=False)
        rows.append((name, before, fresh))
        table = compare_table(rows)
        atomic_write(out / "reproduce.md", f"# Stored against fresh runs ({profile}, seed {seed})\n\n{table}")
    return compare_table(rows)
