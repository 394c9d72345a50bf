"""How many noised inputs an evaluation's LDR needs (`bench samples`): counts from the standard error they must reach.

An evaluation's LDR at a level is a mean over `eval.ldr_samples` noised training inputs; its standard error is the
inputs' spread over sqrt(n). For an experiment's stored run (last kept checkpoint) this measures the spread on `n`
inputs per level with the evaluation's own probe (method, probes, region), and reports the standard error at the
spec's count and the count a target standard error needs, ceil((sd / target)^2):

    python -m ldrkit bench samples [NAME ...] [--n 32] [--target 0.01] [--out DIR]

The spread is measured on other inputs than the evaluations' (generator seed `SPREAD_SEED`), so the report does not
reuse the numbers it judges.

The estimator at equal error: on the same inputs it also times the exact method and the K-probe estimator
(`ESTIMATOR_PROBES`) level by level. A mean over inputs reaches standard error e with sd^2 / e^2 inputs, so the
time to a given error is proportional to sd^2 x (seconds per input), and the estimator's speed-up at equal error
is (sd_exact^2 c_exact) / (sd_K^2 c_K), where sd_K (the spread of the estimates) includes the probing noise. Above 1
the estimator reaches the error sooner (the spread between inputs dominates, as for the x0-LDR); below 1 the exact
rows do (the eps-LDR barely varies between inputs, so probing noise is all the error). One timing per method and
level, in one run: read the ratios, not the seconds.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from ..probes import ldr as ldr_probe
from ..runs.request import get_run
from ..spec.hashing import DEFAULTS
from .report import DEFAULT_EXPERIMENTS, report

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


ESTIMATOR_PROBES = (8, 32)
"""Probe counts of the estimator timed against the exact rows (the estimator's cpu default is 32)."""


def _spread(model, setup, region, level: float, n: int, method: str, probes: int) -> tuple[dict, dict, float]:
    """({output: mean}, {output: sd per input}, seconds per input) of one level's LDR on n inputs (seed SPREAD_SEED)."""
    start = time.perf_counter()
    results = ldr_probe.ldr(model, setup.schedule, region, data=setup.train_data, sqrt_alpha_bar=level,
                            outputs=("eps", "x0"), n=n, seed=SPREAD_SEED, method=method, probes=probes)
    seconds = (time.perf_counter() - start) / n
    return ({o: r.mean for o, r in results.items()}, {o: r.sem * math.sqrt(n) for o, r in results.items()}, seconds)


def equal_error_speedup(sd_exact: float, s_exact: float, sd_estimate: float, s_estimate: float) -> float | None:
    """How much sooner the estimator reaches any given standard error than the exact rows: (sd_exact^2 s_exact) /
    (sd_estimate^2 s_estimate), with s the seconds per input; None when the estimates do not vary at all."""
    if sd_estimate <= 0 or s_estimate <= 0:
        return None
    return sd_exact ** 2 * s_exact / (sd_estimate ** 2 * s_estimate)


def sample_count_rows(name: str, profile: str = "cpu", seed: int = 0, n: int = 32, target: float = TARGET_SE,
                      probes: tuple[int, ...] = ESTIMATOR_PROBES) -> list[dict]:
    """One row per output (eps, x0) and level of `name`'s run (restored from the store if need be) at its last kept
    checkpoint: the LDR's mean and per-input sd on `n` inputs with the evaluation's own probe, the s.e. at the spec's
    ldr_samples, the count for `target`, and the exact rows against the estimator with each of `probes` at equal
    error ("exact": sd, seconds per input; "estimate": {K: sd, seconds per input, count, speed-up})."""
    if n < 2:
        raise ValueError(f"the spread needs at least 2 noised inputs, got n={n}")
    run = get_run(name, profile, seed, progress=False)
    ev = {**DEFAULTS["eval"], **run.config["eval"]}
    step = max(run.steps())
    setup, model = run.setup, run.model(step)
    region = setup.renderer.region(ev["ldr_position"])
    rows = {}
    for level in ev["ldr_levels"]:
        exact = _spread(model, setup, region, level, n, "exact", ev["ldr_probes"])
        own = exact if ev["ldr_method"] == "exact" else _spread(model, setup, region, level, n, ev["ldr_method"],
                                                                   ev["ldr_probes"])
        estimates = {k: _spread(model, setup, region, level, n, "estimate", k) for k in probes}
        for output in ("eps", "x0"):
            sd = own[1][output]
            rows[output, level] = {
                "experiment": name, "step": step, "output": output, "level": f"{level:g}", "mean": own[0][output],
                "sd": sd, "n": n, "ldr_samples": ev["ldr_samples"], "se_at_ldr_samples": sd / math.sqrt(ev["ldr_samples"]),
                "target_se": target, "needed": needed(sd, target),
                "exact": {"sd": exact[1][output], "seconds_per_input": exact[2]},
                "estimate": {str(k): {"sd": e[1][output], "seconds_per_input": e[2], "needed": needed(e[1][output], target),
                                      "speedup_at_equal_error": equal_error_speedup(exact[1][output], exact[2],
                                                                                    e[1][output], e[2])}
                             for k, e in estimates.items()}}
    return [rows[o, level] for o in ("eps", "x0") for level in ev["ldr_levels"]]


def format_table(rows: list[dict]) -> str:
    """Markdown table of `sample_count_rows`: the counts, then each estimator's count and speed-up at equal error."""
    ks = list(rows[0]["estimate"]) if rows and rows[0].get("estimate") else []
    head = ("| experiment | step | output | √ᾱ | LDR | sd per input | s.e. at ldr_samples (n) | n for target s.e. | "
            "exact s/input |" + "".join(f" n at K={k} | K={k} × at equal error |" for k in ks))
    lines = [head, "|" + "---|" * (9 + 2 * len(ks))]
    for r in rows:
        line = (f"| {r['experiment']} | {r['step']} | {r['output']} | {r['level']} | {r['mean']:.4f} | {r['sd']:.4f} "
                f"| {r['se_at_ldr_samples']:.4f} ({r['ldr_samples']}) | {r['needed']} | {r['exact']['seconds_per_input']:.3f} |")
        for k in ks:
            e = r["estimate"][k]
            x = e["speedup_at_equal_error"]
            line += f" {e['needed']} | {'-' if x is None else f'{x:.3g}'} |"
        lines.append(line)
    return "\n".join(lines)


def run_sample_benchmark(names: list[str] | None = None, profile: str = "cpu", n: int = 32, target: float = TARGET_SE,
                         out: str | Path | None = None, json_output: bool = False) -> list[dict]:
    """`sample_count_rows` of each experiment (default: `bench step`'s four), printed; with `out`, written as
    OUT/bench_samples.json and .md."""
    rows = [r for name in (names or DEFAULT_EXPERIMENTS) for r in sample_count_rows(name, profile, 0, n, target)]
    note = (f"\n\nSpread on {n} noised training inputs per level (seed {SPREAD_SEED}), last kept checkpoint of each "
            f"stored {profile} run (seed 0); target s.e. {target:g}; n for target = ceil((sd / target)^2), at least 2. "
            "Exact s/input: seconds per noised input of the exact rows (both outputs); n at K: the count the K-probe "
            "estimator needs for the target; × at equal error: (sd_exact² s_exact) / (sd_K² s_K), above 1 the "
            "estimator reaches any error sooner.")
    return report(rows, format_table(rows) + note, out, "bench_samples", json_output)
