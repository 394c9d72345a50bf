"""A network measured against the exact denoisers of its data (`ldrkit.probes.distances`): the rule, the product of
the training marginals ("independent symbols") and the memoriser of the training set.

- `ldr_beside_oracles`: the LDR of a checkpoint and of the three oracles on the same noised inputs (cached);
  `locality_against_rule`: per noise level, is the network more or less local than the rule's own denoiser;
- `paired_oracle_distances` (cached) and `closest_oracle`: which oracle a checkpoint's eps is nearest,
  called only when it beats the runner-up on the same inputs by more than `CLOSEST_SE` standard errors;
- `trajectory_ldr_by_outcome` (cached) and `outcome_gap_rows`: per-sample LDR along the reverse trajectories,
  samples that end valid against those that end hallucinated;
- `oracle_category_rows`, `final_category_row`, `sample_gallery`: what the runs (oracle runs included) sample.

Each verdict's thresholds are the constants below; the chapters print the verdicts, never type them.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..denoisers.models import count_parameters
from ..denoisers.oracles import build_oracle
from ..probes import ldr as ldr_probe
from ..probes.trajectories import split_by_outcome, trajectory_ldr
from ..runs.run import Run
from ..spec.hashing import LDR_LEVELS
from ..spec.registry import ORACLES
from ..systems.categories import CATEGORIES, broken_among_legible
from .phases import first_legible_step, independent_valid_probability
from .plots import CATEGORY_LABELS, plot_ldr_levels, plot_sequences

LOCALITY_MARGIN = 0.05  # an x0-LDR this far above (below) the rule's, at least, is "more (less) local than the rule"
LOCALITY_SE = 3.0       # ... and the gap must also exceed this many standard errors of the difference
CLOSEST_SE = 3.0        # an oracle is "closest" when it beats the runner-up by this many s.e. of the paired difference
OUTCOME_GAP_SE = 3.0    # valid and hallucinated samples "differ" at a level when their LDRs differ by this many s.e.
OUTCOME_MIN_COUNT = 2   # samples needed in each group to compare them at all
NETWORK = "network"     # the network's key in the tables of this module (the chapters pass their own label)


def _final_step(run: Run, step: int | None) -> int:
    return run.steps()[-1] if step is None else int(step)


def _nan(value):
    """JSON caches store an undefined value (NaN) as null: read it back as NaN."""
    if isinstance(value, dict):
        return {k: _nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan(v) for v in value]
    return math.nan if value is None else value


# --- LDR beside the oracles ------------------------------------------------------------------------------

def ldr_beside_oracles(run: Run, n: int, seed: int = 0, step: int | None = None, label: str = NETWORK,
                       levels=LDR_LEVELS, oracles=ORACLES, method: str = "exact", probes: int = 32) -> dict:
    """The LDR of the run's checkpoint (the last by default) and of its exact denoisers on the same noised inputs.

    The region is the run's `eval.ldr_position` cell; inputs are n noised training signals per level (seeded).
    Returns {"eps": {name: {level: mean}}, "x0": {...}, "eps_sem": {...}, "x0_sem": {...}}, the network
    under `label` and each oracle under its name. An LDR is NaN where it is 0/0 (an exact denoiser whose
    posterior sits on one point at low noise). `method="estimate"` uses `probes` random probes per input (the
    estimator's error is in the s.e.). Cached in RUN/ldr_beside_oracles.json.
    """
    setup = run.setup
    region = setup.renderer.region(run.config["eval"]["ldr_position"])

    def compute(model, _step):
        out = {"eps": {}, "x0": {}, "eps_sem": {}, "x0_sem": {}}
        for name in (NETWORK, *oracles):
            den = model if name == NETWORK else build_oracle(setup, name)
            table, sems = ldr_probe.ldr_levels(den, setup.schedule, region, setup.train_data, levels=levels,
                                               n=n, seed=seed, with_sem=True, method=method, probes=probes)
            for o in ("eps", "x0"):
                out[o][name], out[f"{o}_sem"][name] = table[o], sems[o]
        return out

    params = {"n": n, "seed": seed, "levels": list(levels), "oracles": list(oracles),
              **({} if method == "exact" else {"method": method, "probes": probes})}
    row = _nan(run.cached("ldr_beside_oracles", params, [_final_step(run, step)], compute)[0])
    return {k: {(label if name == NETWORK else name): v for name, v in row[k].items()}
            for k in ("eps", "x0", "eps_sem", "x0_sem")}


def own_oracles(run: Run) -> tuple[str, ...]:
    """The exact denoisers of a run's own data (a Chinese character is one cell: no product of marginals)."""
    return ("rule", "memoriser") if run.config["grammar"]["name"] == "chinese-chars" else ORACLES


def ldr_beside_own_oracles(run: Run, n: int, seed: int = 0, step: int | None = None) -> dict:
    """`ldr_beside_oracles` at the run's own LDR levels and with its own LDR method (exact rows, or the estimator
    where the region is large), beside the exact denoisers of its own data: the reference every chapter and the
    figure index read a network's locality against (one cache per run and checkpoint)."""
    ev = run.config["eval"]
    return ldr_beside_oracles(run, n, seed, step=step, levels=tuple(ev.get("ldr_levels", LDR_LEVELS)),
                              oracles=own_oracles(run), method=ev.get("ldr_method", "exact"),
                              probes=ev.get("ldr_probes", 32))


ORACLE_SPREAD = 0.05  # the exact denoisers' LDRs at a level must span more than this for the level to tell them apart


def discriminating_levels(result: dict, output: str, oracles=ORACLES) -> list[str]:
    """Levels of an `ldr_beside_oracles` result where the exact denoisers' (finite) LDRs span more than
    ORACLE_SPREAD: only there can a network's LDR be read as more or less local than the truth."""
    names = [w for w in oracles if w in result[output]]
    levels = []
    for level in result[output][names[0]]:
        values = [result[output][w][level] for w in names if math.isfinite(result[output][w][level])]
        if len(values) > 1 and max(values) - min(values) > ORACLE_SPREAD:
            levels.append(level)
    return levels


def locality_against_rule(result: dict, label: str = NETWORK, rule: str = "rule", output: str = "x0",
                          margin: float = LOCALITY_MARGIN, z: float = LOCALITY_SE) -> dict:
    """Per level: "more local", "less local" or "as local" than the rule's exact denoiser ("undefined" if NaN).

    The network's LDR (of `output`) is more local when it exceeds the rule's by more than both `margin` and
    `z` standard errors of the difference; less local when it falls short by as much.
    """
    net, ref = result[output][label], result[output][rule]
    net_sem, ref_sem = result[f"{output}_sem"][label], result[f"{output}_sem"][rule]
    verdicts = {}
    for level in net:
        gap = net[level] - ref[level]
        se = math.hypot(np.nan_to_num(net_sem[level]), np.nan_to_num(ref_sem[level]))
        bound = max(margin, z * se)
        verdicts[level] = ("undefined" if not math.isfinite(gap) else "more local" if gap > bound
                           else "less local" if gap < -bound else "as local")
    return verdicts


def locality_rows(results: dict, label: str = NETWORK, **kwargs) -> list[dict]:
    """One row per run of {run name: `ldr_beside_oracles` result}: `locality_against_rule` at each level."""
    return [{"run": name, **{f"√ᾱ={lv}": v for lv, v in locality_against_rule(result, label, **kwargs).items()}}
            for name, result in results.items()]


def ldr_rows(result: dict, output: str = "x0") -> list[dict]:
    """One row per denoiser of `ldr_beside_oracles`' result: "mean ± s.e." per level ("undefined" for NaN)."""
    values, sems = result[output], result[f"{output}_sem"]
    return [{"denoiser": name, **{f"√ᾱ={lv}": (f"{v:.3f} ± {sems[name][lv]:.3f}" if math.isfinite(v) else "undefined")
                                  for lv, v in row.items()}} for name, row in values.items()]


def plot_ldr_beside_oracles(result: dict, axes, title: str = "") -> None:
    """Two panels: the eps LDR (the paper's definition) and the denoiser x0 LDR, one line per denoiser."""
    for ax, o, name in zip(axes, ("eps", "x0"), ("the eps output (the paper's LDR)", "the denoiser x0")):
        plot_ldr_levels(result[o], ax=ax, title=f"{title}LDR of {name}", errors=result[f"{o}_sem"])


# --- closest oracle ------------------------------------------------------------------------------------

def paired_oracle_distances(run: Run, n: int, seed: int = 0, step: int | None = None,
                            levels=LDR_LEVELS) -> dict:
    """Per input, the per-coordinate mean (eps_net - eps_oracle)^2 for each oracle, on the same noised inputs.

    The inputs are those of `distances.oracle_distances` (same n and seed), so the means are the points of
    `oracle_distance_over_training`. Returns {level: {oracle: [n distances]}}; cached in
    RUN/oracle_distance_paired.json.
    """
    setup = run.setup

    @torch.no_grad()
    def compute(model, _step):
        oracles = {w: build_oracle(setup, w) for w in ORACLES}
        out = {}
        for level in levels:
            t = setup.schedule.timestep_for(level)
            x = ldr_probe.noised_inputs(setup.train_data, setup.schedule, t, n, torch.Generator().manual_seed(seed))
            tt = torch.full((len(x),), t, dtype=torch.long)
            e = model(x, tt)
            out[f"{level:g}"] = {w: (e - o(x, tt)).pow(2).flatten(1).mean(1).tolist() for w, o in oracles.items()}
        return out

    params = {"n": n, "seed": seed, "levels": list(levels)}
    row = run.cached("oracle_distance_paired", params, [_final_step(run, step)], compute)[0]
    return {k: v for k, v in row.items() if k != "step"}


def closest_oracle(distances: dict, z: float = CLOSEST_SE) -> tuple[str, float]:
    """(verdict, lead in standard errors) from {oracle: per-input distances} on the same inputs.

    The verdict is the oracle with the smallest mean distance when its lead over the runner-up (the mean of
    the paired differences) exceeds `z` standard errors of that mean, else "tie".
    """
    d = {w: np.asarray(v, dtype=float) for w, v in distances.items()}
    first, second = sorted(d, key=lambda w: d[w].mean())[:2]
    diff = d[second] - d[first]
    se = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else math.nan
    lead = diff.mean() / se if se > 0 else (math.inf if diff.mean() > 0 else 0.0)
    return (first if lead > z else "tie"), float(lead)


def closest_oracle_rows(paired: dict, z: float = CLOSEST_SE) -> list[dict]:
    """One row per level of `paired_oracle_distances`: the mean distance to each oracle and the verdict."""
    rows = []
    for level, dist in paired.items():
        verdict, lead = closest_oracle(dist, z)
        rows.append({"√ᾱ": level, **{w: float(np.mean(v)) for w, v in dist.items()},
                     "lead (s.e.)": lead, "closest": verdict})
    return rows


def plot_oracle_distances(rows: list[dict], axes) -> None:
    """One panel per level: distance of every checkpoint to each oracle (rows of oracle_distance_over_training)."""
    steps = [r["step"] for r in rows]
    for ax, level in zip(axes, rows[0][ORACLES[0]]):
        for w in ORACLES:
            ax.plot(steps, [r[w][level] for r in rows], marker=".", label=w)
        ax.set_yscale("log")
        ax.set_title(f"√ᾱ = {level}")
        ax.set_xlabel("training step")
    axes[0].set_ylabel("mean (eps_net − eps_oracle)²")
    axes[0].legend()


# --- along the sampling trajectories ----------------------------------------------------------------------

def trajectory_ldr_by_outcome(run: Run, n: int, seed: int = 0, step: int | None = None,
                              levels=LDR_LEVELS) -> dict:
    """Per-sample LDR along n reverse trajectories of the checkpoint, split by how each sample ends.

    Sampled with the run's evaluation sampler and steps; the region is the run's `eval.ldr_position` cell.
    Returns {"counts": {category: n}, "eps": {level: {"valid": [mean, sem, count], "hallucination": [...]}},
    "x0": {...}} (see `trajectories.split_by_outcome`). Cached in RUN/trajectory_ldr.json.
    """
    setup, ev = run.setup, run.config["eval"]

    def compute(model, _step):
        result = trajectory_ldr(setup, model, n=n, seed=seed, levels=levels, num_steps=ev.get("sample_steps"),
                                position=ev["ldr_position"], sampler=ev.get("sampler", "ddpm"))
        return {"counts": {c: int(np.sum(result["labels"] == c)) for c in CATEGORIES},
                **{o: split_by_outcome(result, o) for o in ("eps", "x0")}}

    params = {"n": n, "seed": seed, "levels": list(levels)}
    row = _nan(run.cached("trajectory_ldr", params, [_final_step(run, step)], compute)[0])
    return {k: v for k, v in row.items() if k != "step"}


def outcome_gap(valid, hallucinated, z: float = OUTCOME_GAP_SE) -> tuple[float, float, str]:
    """(difference, difference / s.e., verdict) of two (mean, sem, count) groups.

    The verdict is "differ" when the gap exceeds `z` standard errors, "same within noise" when not, and
    "too few samples" when a group has fewer than OUTCOME_MIN_COUNT samples.
    """
    (mv, sv, cv), (mh, sh, ch) = valid, hallucinated
    if min(cv, ch) < OUTCOME_MIN_COUNT:
        return math.nan, math.nan, "too few samples"
    gap, se = mv - mh, math.hypot(sv, sh)
    ratio = abs(gap) / se if se > 0 else (math.inf if gap else 0.0)
    return gap, ratio, "differ" if ratio > z else "same within noise"


def outcome_gap_rows(split: dict, output: str = "x0", z: float = OUTCOME_GAP_SE) -> list[dict]:
    """One row per level of `trajectory_ldr_by_outcome`: each group's LDR, their gap and the verdict."""
    rows = []
    for level, groups in split[output].items():
        gap, ratio, verdict = outcome_gap(groups["valid"], groups["hallucination"], z)
        rows.append({"√ᾱ": level, **{f"{g} (n)": f"{m:.3f} ± {s:.3f} ({c})" if c else "none (0)" for g, (m, s, c) in groups.items()},
                     "difference": gap, "difference / s.e.": ratio, "verdict": verdict})
    return rows


def plot_trajectory_ldr(split: dict, axes) -> None:
    """Per output, the mean per-sample LDR (± s.e.) of valid and hallucinated samples against the level."""
    for ax, o in zip(axes, ("eps", "x0")):
        for group, color in (("valid", "#2e86ab"), ("hallucination", "#e4572e")):
            xs = [float(lv) for lv in split[o]]
            ax.errorbar(xs, [g[group][0] for g in split[o].values()], yerr=[g[group][1] for g in split[o].values()],
                        marker="o", capsize=3, color=color, label=group)
        ax.set_xlabel(r"$\sqrt{\bar\alpha_t}$ of the visited state")
        ax.set_ylabel("LDR")
        ax.set_title(f"{o} output")
    axes[0].legend()


# --- what the runs sample -------------------------------------------------------------------------------

def expected_broken_among_legible(setup, which: str) -> float:
    """The share of legible samples that break the rule for an exact oracle's distribution: 0 for the rule and
    the memoriser, 1 - P(valid) under independent per-position training frequencies for the product."""
    if which == "product":
        return 1.0 - independent_valid_probability(setup.grammar, setup.split.train)
    if which in ("rule", "memoriser"):
        return 0.0
    raise ValueError(f"unknown oracle {which!r}; choose from {ORACLES}")


def final_category_row(run: Run, label: str) -> dict:
    """The last evaluation of a run: its four category fractions and the share of legible samples breaking the rule."""
    final = run.final
    return {"denoiser": label, **{CATEGORY_LABELS[c]: final["categories"][c] for c in CATEGORIES},
            "breaks rule among legible": broken_among_legible(final)}


def oracle_category_rows(network: Run, oracle_runs: dict, label: str = NETWORK) -> list[dict]:
    """The network's final categories beside each oracle run's, with what each oracle should break."""
    rows = [{**final_category_row(network, f"{label} (final)"), "expected to break": math.nan}]
    return rows + [{**final_category_row(r, f"{w} oracle"), "expected to break": expected_broken_among_legible(r.setup, w)}
                   for w, r in oracle_runs.items()]


def training_row(run: Run, name: str) -> dict:
    """A trained run at a glance: size, steps, optimisation, evaluation sample count and training time."""
    config = run.config
    return {"run": name, "parameters": count_parameters(run.model()), "steps": run.final["step"],
            "batch": config["train"]["batch_size"], "Adam lr": config["train"]["lr"],
            "samples per evaluation": config["eval"]["num_samples"],
            "training s": run.metrics.get("wall_seconds", math.nan)}


def outcome_row(run: Run, name: str) -> dict:
    """What a trained run ended with: its steps, the first step with half its samples legible, its final
    categories and the share of legible samples breaking the rule."""
    return {"run": name, "steps": run.final["step"], "first step ≥ 50% legible": first_legible_step(run.evaluations),
            **{k: v for k, v in final_category_row(run, name).items() if k != "denoiser"}}


def sample_gallery(run: Run, per_category: int = 4, step: int | None = None, ax=None, title: str | None = None):
    """Up to `per_category` stored samples of each category (hallucination, extrapolation, in-dataset, invalid)
    of a run's evaluation (an oracle run's one evaluation), drawn as labelled rows (vector samples)."""
    samples = run.samples(step)
    labels = run.setup.categorize(samples)
    order = ("hallucination", "extrapolation", "in_dataset", "invalid")
    pick = np.concatenate([np.flatnonzero(labels == c)[:per_category] for c in order]).astype(int)
    ax = ax or plt.subplots(figsize=(8, 0.35 * len(pick) + 1))[1]
    return plot_sequences(samples[pick].reshape(len(pick), -1).numpy(), [CATEGORY_LABELS[labels[i]] for i in pick],
                          ax=ax, title=title)
