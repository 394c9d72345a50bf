"""Probes of every checkpoint of a run (LDR, distance to the oracles), cached in the run folder."""
from __future__ import annotations

from os import PathLike

from ..denoisers.oracles import build_oracle
from ..probes import ldr as ldr_probe
from ..probes.distances import oracle_distances
from ..runs.run import Run
from ..spec.hashing import LDR_LEVELS
from ..spec.registry import ORACLES


def ldr_over_training(run: Run, method: str = "exact", probes: int = 32, n: int | None = None, seed: int = 0,
                      levels: tuple[float, ...] = LDR_LEVELS, outputs: tuple[str, ...] = ("eps", "x0"),
                      progress: bool = False) -> list[dict]:
    """LDR at the levels for every checkpoint of a run (and every cached step of a restored run).

    Cached in RUN/ldr_over_training.json under the method, probes, n, seed, levels and outputs;
    one row per checkpoint, in step order:
    {"step", "method", "probes", "n", "<output>": {level: mean}, "<output>_sem": {level: sem}}.
    """
    if method not in ldr_probe.METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {ldr_probe.METHODS}")
    run = Run(run) if isinstance(run, (str, PathLike)) else run  # a Run or a claims.CacheOnly as it is
    n = int(n if n is not None else run.config["eval"]["ldr_samples"])
    if n < 1 or (method == "estimate" and probes < 2):
        raise ValueError(f"the LDR needs n >= 1 noised inputs (and >= 2 probes for the estimator), got n={n}, "
                         f"probes={probes}")
    probes = int(probes) if method == "estimate" else None
    params = {"method": method, "probes": probes, "n": n, "seed": seed, "levels": list(levels), "outputs": list(outputs)}
    setup = run.setup
    region = setup.renderer.region(run.config["eval"]["ldr_position"])

    def compute(model, step: int) -> dict:
        table, sems = ldr_probe.ldr_levels(model, setup.schedule, region, setup.train_data, levels=levels,
                                           outputs=outputs, n=n, seed=seed, method=method, probes=probes or 32,
                                           with_sem=True)
        if progress:
            print(f"step {step}: " + ", ".join(f"{o} {table[o]}" for o in outputs), flush=True)
        return {**table, **{f"{o}_sem": sems[o] for o in outputs}}

    rows = run.cached("ldr_over_training", params, None, compute)
    return [{"step": r["step"], "method": method, "probes": probes, "n": n,
             **{k: v for k, v in r.items() if k != "step"}} for r in rows]


def oracle_distance_over_training(run: Run, n: int = 64, seed: int = 0, levels=LDR_LEVELS) -> list[dict]:
    """Distance of every checkpoint to the rule, product and memoriser denoisers, cached in RUN/oracle_distance.json.

    One row per checkpoint: {"step", "rule": {level: d}, "product": {...}, "memoriser": {...}}.
    """
    run = Run(run) if isinstance(run, (str, PathLike)) else run  # a Run or a claims.CacheOnly as it is
    oracles: dict = {}

    def compute(model, step: int) -> dict:
        if not oracles:
            oracles.update({w: build_oracle(run.setup, w) for w in ORACLES})
        return oracle_distances(model, run.setup, oracles, levels, n, seed)

    return run.cached("oracle_distance", {"n": n, "seed": seed, "levels": list(levels)}, None, compute)


def format_ldr_table(rows: list[dict]) -> str:
    """A plain-text table of ldr_over_training rows: one line per checkpoint, one column per output and level."""
    if not rows:
        return "(no checkpoints)"
    outputs = [k for k in rows[0] if isinstance(rows[0][k], dict) and not k.endswith("_sem")]
    levels = list(rows[0][outputs[0]].keys())
    head = ["step"] + [f"{o}@{lv}" for o in outputs for lv in levels]
    lines = [head]
    for r in rows:
        cells = [str(r["step"])]
        for o in outputs:
            for lv in levels:
                sem = r.get(f"{o}_sem", {}).get(lv)
                value = r[o][lv]
                cells.append(("n/a" if value is None else f"{value:.3f}")
                             + (f"±{sem:.3f}" if sem is not None and sem == sem else ""))
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    title = f"LDR over training ({rows[0]['method']}" + (f", {rows[0]['probes']} probes" if rows[0].get("probes") else "") \
        + f", n={rows[0]['n']}; columns output@sqrt(alpha_bar))"
    body = ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join([title, body[0], "  ".join("-" * w for w in widths), *body[1:]])
