"""How many noised inputs an evaluation's LDR needs (`bench samples`): counts from the standard error they must reach.

An evaluation's LDR at a level is a mean over `eval.ldr_samples` noised training inputs; its standard error is the
inputs' spread over sqrt(n). For an experiment's stored run (last kept checkpoint) this measures the spread on `n`
inputs per level with the evaluation's own probe (method, probes, region), and reports the standard error at the
spec's count and the count a target standard error needs, ceil((sd / target)^2):

    python -m ldrkit bench samples [NAME ...] [--n 32] [--target 0.01] [--out DIR]

The spread is measured on other inputs than the evaluations' (generator seed `SPREAD_SEED`), so the report does not
reuse the numbers it judges.
"""
from __future__ import annotations

import math
from pathlib import Path

from . import ldr as ldr_probe
from .bench_step import DEFAULT_EXPERIMENTS
from .bench_train import report
from .experiments import get_run
from .specs import DEFAULTS

TARGET_SE = 0.01
"""Default target: a level's LDR known to +-0.02 (95%), a tenth of the x0-LDR's fall over training in the parity
and Dyck runs (0.12-0.19), the smallest change the chapters read."""
SPREAD_SEED = 7
"""Generator seed of the inputs the spread is measured on (evaluations use the run's (seed, step) seeds)."""


def needed(sd: float, target: float) -> int:
    """Noised inputs for a mean of values with standard deviation `sd` to reach standard error `target` (at least 2,
    so that a standard error can be computed at all)."""
    if target <= 0:
        raise ValueError(f"the target standard error must be positive, got {target}")
    return max(2, math.ceil((sd / target) ** 2))


def sample_count_rows(name: str, profile: str = "cpu", seed: int = 0, n: int = 32, target: float = TARGET_SE) -> list[dict]:
    """One row per output (eps, x0) and level of `name`'s run (restored from the store if need be) at its last kept
    checkpoint: the LDR's mean and per-input sd on `n` inputs, the s.e. at the spec's ldr_samples, and the count for
    `target`."""
    if n < 2:
        raise ValueError(f"the spread needs at least 2 noised inputs, got n={n}")
    run = get_run(name, profile, seed, progress=False)
    ev = {**DEFAULTS["eval"], **run.config["eval"]}
    step = max(run.steps())
    setup = run.setup
    table, sems = ldr_probe.ldr_levels(run.model(step), setup.schedule, setup.renderer.region(ev["ldr_position"]),
                                       setup.train_data, levels=tuple(ev["ldr_levels"]), n=n, seed=SPREAD_SEED,
                                       method=ev["ldr_method"], probes=ev["ldr_probes"], with_sem=True)
    rows = []
    for output in ("eps", "x0"):
        for level, sem in sems[output].items():
            sd = sem * math.sqrt(n)
            rows.append({"experiment": name, "step": step, "output": output, "level": level,
                         "mean": table[output][level], "sd": sd, "n": n,
                         "ldr_samples": ev["ldr_samples"], "se_at_ldr_samples": sd / math.sqrt(ev["ldr_samples"]),
                         "target_se": target, "needed": needed(sd, target)})
    return rows


def format_table(rows: list[dict]) -> str:
    """Markdown table of `sample_count_rows`."""
    head = "| experiment | step | output | √ᾱ | LDR | sd per input | s.e. at ldr_samples (n) | n for target s.e. |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r['experiment']} | {r['step']} | {r['output']} | {r['level']} | {r['mean']:.4f} | {r['sd']:.4f} "
                     f"| {r['se_at_ldr_samples']:.4f} ({r['ldr_samples']}) | {r['needed']} |")
    return "\n".join(lines)


def run_sample_benchmark(names: list[str] | None = None, profile: str = "cpu", n: int = 32, target: float = TARGET_SE,
                         out: str | Path | None = None, json_output: bool = False) -> list[dict]:
    """`sample_count_rows` of each experiment (default: `bench step`'s four), printed; with `out`, written as
    OUT/bench_samples.json and .md."""
    rows = [r for name in (names or DEFAULT_EXPERIMENTS) for r in sample_count_rows(name, profile, 0, n, target)]
    note = (f"\n\nSpread on {n} noised training inputs per level (seed {SPREAD_SEED}), last kept checkpoint of each "
            f"stored {profile} run (seed 0); target s.e. {target:g}; n for target = ceil((sd / target)^2), at least 2.")
    return report(rows, format_table(rows) + note, out, "bench_samples", json_output)
