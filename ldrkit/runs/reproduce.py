"""Retraining stored runs from scratch and setting their numbers beside the stored ones (`make reproduce`), and
the plan a pool of workers trains them in."""
from __future__ import annotations

from pathlib import Path

from ..probes.estimates import wilson
from ..spec.hashing import check_profile
from ..spec.registry import get_experiment
from ..systems.categories import CATEGORIES
from .files import atomic_write, read_json
from .request import run_experiment
from .store import stored_dir, stored_runs


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
    """What a reproduction of each run (at `seed`) is planned by: the least wall time recorded by a stored seed of it
    (the seed's own and the others'; a run that shared the CPU with others records more than it needs alone);
    0 when none is stored."""
    out = {}
    for name in names:
        seeds = {seed, *(int(p.name.rsplit("seed", 1)[1]) for p in stored_dir(name, profile, seed).parent.glob(
            f"{profile}-seed*") if p.name.rsplit("seed", 1)[1].isdigit())}
        times = [float(read_json(path).get("wall_seconds") or 0.0) for s in sorted(seeds)
                 if (path := stored_dir(name, profile, s) / "metrics.json").exists()]
        out[name] = min((t for t in times if t > 0), default=0.0)
    return out


def plan(seconds: dict[str, float], workers: int = 1) -> tuple[list[str], float]:
    """Longest first (the order a pool should start them in) and the projected wall time of `workers` processes
    taking the next run as each frees up (the longest-processing-time rule): (order, seconds)."""
    order = sorted(seconds, key=lambda n: -seconds[n])
    loads = [0.0] * max(1, workers)
    for name in order:
        loads[loads.index(min(loads))] += seconds[name]
    return order, max(loads)


def final_numbers(metrics: dict) -> dict[str, float]:
    """The headline numbers of a run's last evaluation: the four categories and the eps-LDR per level."""
    final = metrics.get("final") or {}
    out = {f"{k}": v for k, v in final.get("categories", {}).items()}
    out.update({f"ldr@{k}": v for k, v in final.get("ldr", {}).items()})
    return out


def agreement(key: str, stored: float, fresh: float, n: int | None) -> str:
    """Whether a fresh category share lies inside the stored one's 95% Wilson interval over the run's n samples
    ("inside", or "OUTSIDE [low, high]": a flagged miss); "identical" for other numbers equal to 6 digits, else
    "differs" (the LDR has no interval in metrics.json)."""
    if key in CATEGORIES and n:
        low, high = wilson(round(stored * n), n)
        return "inside" if low <= fresh <= high else f"OUTSIDE [{low:.3f}, {high:.3f}]"
    return "identical" if abs(fresh - stored) < 5e-7 else "differs"


def compare_table(rows: list[tuple[str, dict, dict]]) -> str:
    """A markdown table of stored against fresh final numbers, one block of lines per experiment, each number
    flagged by `agreement`."""
    lines = ["| experiment | number | stored | fresh | difference | fresh within the stored 95% interval |",
             "|---|---|---|---|---|---|"]
    for name, stored, fresh in rows:
        s, f = final_numbers(stored), final_numbers(fresh)
        n = _num_samples(stored)
        for key in sorted(set(s) | set(f)):
            a, b = s.get(key), f.get(key)
            both = a is not None and b is not None
            lines.append(f"| {name} | {key} | {'n/a' if a is None else f'{a:.3f}'} | "
                         f"{'n/a' if b is None else f'{b:.3f}'} | {f'{b - a:+.3f}' if both else 'n/a'} | "
                         f"{agreement(key, a, b, n) if both else 'n/a'} |")
        lines.append(f"| {name} | wall seconds | {stored.get('wall_seconds')} | {fresh.get('wall_seconds')} | | |")
    return "\n".join(lines) + "\n"


def _num_samples(metrics: dict) -> int | None:
    """The samples a run's category shares are fractions of (its spec's evaluation count)."""
    try:
        spec = get_experiment(metrics["experiment"]).config(metrics["profile"], metrics["seed"])
        return int(spec["eval"]["num_samples"])
    except (KeyError, TypeError, ValueError):
        return None
