"""Retraining stored runs from scratch and setting their numbers beside the stored ones (`make reproduce`), and
the plan a pool of workers trains them in."""
from __future__ import annotations

from pathlib import Path

from .files import atomic_write, read_json
from .request import run_experiment
from ..spec.hashing import check_profile
from ..spec.registry import get_experiment
from .store import compare_table, stored_dir, stored_runs


def reproduce(names: list[str] | None = None, profile: str = "cpu", seed: int = 0, out: Path | str = "reproduce",
              progress: bool = True, fresh=None) -> str:
    """Retrain stored runs from scratch into OUT/NAME and write OUT/reproduce.md comparing stored and fresh numbers.

    `fresh(names, out)` yields (name, metrics) of the retrained runs as each finishes (default: one after another
    in this process; `sweep.pooled_fresh` trains them on worker processes). OUT/reproduce.md is rewritten after
    every run, in the order of `names`, so an interrupted reproduction keeps what it finished (and resumes it:
    finished fresh runs in OUT are reused)."""
    check_profile(profile)
    out = Path(out)
    names = names or stored_names(profile, seed)
    if not names:
        raise FileNotFoundError(f"the results store holds no {profile} run of seed {seed}")
    before = {}
    for name in names:
        get_experiment(name)  # a clear error for an unknown name
        path = stored_dir(name, profile, seed)
        if not (path / "metrics.json").exists():
            raise FileNotFoundError(f"no stored run of {name} ({profile}, seed {seed}) in {path.parent}")
        before[name] = read_json(path / "metrics.json")
    if fresh is None:
        def fresh(todo, folder):
            for name in todo:
                yield name, run_experiment(name, profile, seed, out=folder / name, progress=progress, use_store=False)
    done = {}
    for name, metrics in fresh(names, out):
        done[name] = metrics
        out.mkdir(parents=True, exist_ok=True)
        table = compare_table([(n, before[n], done[n]) for n in names if n in done])
        atomic_write(out / "reproduce.md", f"# Stored against fresh runs ({profile}, seed {seed})\n\n{table}")
    return compare_table([(n, before[n], done[n]) for n in names])


def stored_names(profile: str, seed: int = 0) -> list[str]:
    """The experiments the results store holds a run of at `profile` and `seed`, sorted."""
    return sorted({p["experiment"] for p in stored_runs() if p["profile"] == profile and p["seed"] == seed})


def stored_wall_seconds(names: list[str], profile: str = "cpu", seed: int = 0) -> dict[str, float]:
    """Each stored run's recorded wall time (what a reproduction of it is planned by); 0 when none is stored."""
    out = {}
    for name in names:
        path = stored_dir(name, profile, seed) / "metrics.json"
        out[name] = float(read_json(path).get("wall_seconds") or 0.0) if path.exists() else 0.0
    return out


def plan(seconds: dict[str, float], workers: int = 1) -> tuple[list[str], float]:
    """Longest first (the order a pool should start them in) and the projected wall time of `workers` processes
    taking the next run as each frees up (the longest-processing-time rule): (order, seconds)."""
    order = sorted(seconds, key=lambda n: -seconds[n])
    loads = [0.0] * max(1, workers)
    for name in order:
        loads[loads.index(min(loads))] += seconds[name]
    return order, max(loads)
