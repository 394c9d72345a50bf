"""The second act measured (issue 14): when a model starts reproducing its training set, how that moment
grows with the size of the training set, and how much hallucination is left once it has.

Onset: the first training step at which half of all samples are exact training combinations
(`ONSET_SHARE`, the Quarter chapter's "memorised"), linearly interpolated between the two evaluations
that bracket the crossing. Counting all samples (not only legible ones) keeps an early evaluation with a
handful of legible samples from calling memorisation on a few lucky copies.
"""
from __future__ import annotations

import math

import numpy as np

from ..denoisers.models import count_parameters
from ..probes.estimates import mean_sem, share
from ..runs.request import get_run
from ..runs.run import Run
from ..systems.categories import legible
from .phases import final_counts, final_record, rule_breaking_peak
from .quarter_digits import MEMORISED

ONSET_SHARE = MEMORISED  # memorisation has set in once this share of all samples are training combinations
MEMORISES = 0.5     # a run memorises when the Wilson interval of in-dataset / legible at its end lies above this
PEAK_LEGIBLE = 0.1  # the hallucination peak is read only at evaluations with at least this share legible
ONSET_LEVEL = "0.5"  # the noise level (sqrt(alpha_bar)) whose x0-LDR and memoriser distance the tables show

# What the paper reports (section 4.2, Figs. 3-5, appendix A.5): Quarter-MNIST with 470 training tuples at batch 16,
# the DiT's rule-obeying share rising with its LDR falling at 30k-50k steps, the UNet at 20.6% after 180k steps;
# parity L=8 images overfit but keep about 25% hallucinated samples.
# The sweeps (specs.SWEEPS) the paper's contrasts are read from: its UNet, its DiT (several tokens per digit) and
# its parity L=8 model.
UNET_SWEEP, DIT_SWEEP, PARENS_SWEEP = "Quarter UNet", "Quarter DiT, 4 tokens per digit", "parity parentheses L=8 UNet"
TOKEN_SWEEP = "Quarter DiT, a token per digit"
PAPER = {"quarter_size": 470, "batch": 16, "dit_onset": (30_000, 50_000), "unet_steps": 180_000,
         "parity_residual": 0.25}


def onset_step(evaluations: list[dict], share: float = ONSET_SHARE) -> float | None:
    """The first step at which the in-dataset share of samples reaches `share`, interpolated linearly between
    the two evaluations that bracket it; None when no evaluation reaches it."""
    previous = None
    for e in evaluations:
        value = e["categories"]["in_dataset"]
        if value >= share:
            if previous is None or previous["categories"]["in_dataset"] >= value:
                return float(e["step"])
            p_step, p_value = previous["step"], previous["categories"]["in_dataset"]
            return p_step + (e["step"] - p_step) * (share - p_value) / (value - p_value)
        previous = e
    return None


def counts(final: dict) -> dict:
    """Sample counts of a final evaluation: legible, in-dataset, hallucinated, out of n."""
    k, n = final_counts(final, final["n"]), final["n"]
    return {"n": n, "legible": n - k["invalid"], "in_dataset": k["in_dataset"], "hallucination": k["hallucination"]}


def share_of_legible(runs: list[Run], key: str) -> tuple[float, float, float]:
    """`key` (in_dataset or hallucination) as a share of legible samples at the runs' ends, pooled over runs:
    (share, Wilson low, Wilson high); NaNs when no sample is legible."""
    total = [counts(final_record(r)) for r in runs]
    return share(sum(t[key] for t in total), sum(t["legible"] for t in total))


def memorises(runs: list[Run]) -> bool:
    """In-dataset share of legible samples at the end above MEMORISES beyond its 95% interval (pooled)."""
    _, low, _ = share_of_legible(runs, "in_dataset")
    return not math.isnan(low) and low > MEMORISES


def _level(record: dict, key: str) -> float:
    values = record.get(key) or {}
    return float(values.get(ONSET_LEVEL, math.nan))


def _memoriser_distance(record: dict) -> float:
    return float(((record.get("oracle_distance") or {}).get("memoriser") or {}).get(ONSET_LEVEL, math.nan))


def before_onset(evaluations: list[dict]) -> dict:
    """The last evaluation after step 0 before the onset (the first after step 0 when memorisation never sets in)."""
    onset = onset_step(evaluations)
    later = [e for e in evaluations[1:] if onset is None or e["step"] < onset]
    return (later[-1] if onset is not None else later[0]) if later else evaluations[0]


def hallucination_peak(evaluations: list[dict], n: int, min_legible: float = PEAK_LEGIBLE) -> dict:
    """The first act inside a sweep run: the largest rule-breaking share of legible samples
    (`categories.rule_breaking_peak`) over the evaluations with at least `min_legible` of the n samples legible,
    with its Wilson interval and step (NaNs when none is)."""
    enough = [e for e in evaluations if round(legible(e) * n) >= max(1, min_legible * n)]
    if not enough:
        return {"share": math.nan, "low": math.nan, "high": math.nan, "step": None}
    peak = rule_breaking_peak(enough)
    value, low, high = share(round(peak["categories"]["hallucination"] * n), round(legible(peak) * n))
    return {"share": value, "low": low, "high": high, "step": peak["step"]}


def load_sweep(names_by_size: dict[int, str], profile: str, seeds, more_seeds: dict[int, list[int]] | None = None
               ) -> dict[int, list[Run]]:
    """The sweep's runs by training-set size (reused, restored from the store, or trained); `more_seeds` gives
    some sizes their own seeds (the headline sizes)."""
    more_seeds = more_seeds or {}
    return {n: [get_run(name, profile, s, progress=False) for s in more_seeds.get(n, seeds)]
            for n, name in names_by_size.items()}


def sweep_rows(runs_by_size: dict[int, list[Run]], label: str) -> list[dict]:
    """One row per size: parameters, steps, onset (mean +- s.e. over the seeds that reached it), the first act's
    peak (`hallucination_peak`, first seed), the end's
    fractions (in-dataset and hallucinated shares of legible samples with pooled Wilson intervals), the x0-LDR
    and memoriser distance at sqrt(alpha_bar) = ONSET_LEVEL before the onset (`before_onset`) and at the end."""
    rows = []
    for n, runs in sorted(runs_by_size.items()):
        onsets = [onset_step(r.evaluations) for r in runs]
        reached = [o for o in onsets if o is not None]
        mean, se = mean_sem(reached) if reached else (math.nan, math.nan)
        peak = hallucination_peak(runs[0].evaluations, runs[0].config["eval"]["num_samples"])
        ind, ind_lo, ind_hi = share_of_legible(runs, "in_dataset")
        hal, hal_lo, hal_hi = share_of_legible(runs, "hallucination")
        first = [before_onset(r.evaluations) for r in runs]
        rows.append({
            "model": label, "training size": n, "parameters": count_parameters(runs[0].model()),
            "steps": runs[0].config["train"]["steps"], "seeds": len(runs), "reached": len(reached),
            "onset step": mean, "onset s.e.": se,
            "peak hallucination / legible": peak["share"],
            "peak 95%": f"[{peak['low']:.2f}, {peak['high']:.2f}] at {peak['step']}",
            "invalid": float(np.mean([final_record(r)["categories"]["invalid"] for r in runs])),
            "in-dataset / legible": ind, "in-dataset 95%": f"[{ind_lo:.2f}, {ind_hi:.2f}]",
            "hallucination / legible": hal, "hallucination 95%": f"[{hal_lo:.2f}, {hal_hi:.2f}]",
            f"x0-LDR {ONSET_LEVEL} before": float(np.mean([_level(e, "ldr_x0") for e in first])),
            f"x0-LDR {ONSET_LEVEL} end": float(np.mean([_level(final_record(r), "ldr_x0") for r in runs])),
            f"memoriser distance {ONSET_LEVEL} before": float(np.mean([_memoriser_distance(e) for e in first])),
            f"memoriser distance {ONSET_LEVEL} end": float(np.mean([_memoriser_distance(final_record(r)) for r in runs])),
            "wall s": float(np.mean([r.metrics.get("wall_seconds", math.nan) for r in runs])),
            "memorises": memorises(runs)})
    return rows


def fit_onset(rows: list[dict]) -> dict | None:
    """Least-squares line through log(onset) against log(size) over the sizes that reached memorisation:
    onset = a * size ** b. None with fewer than three such sizes (two points always fit a line)."""
    points = [(r["training size"], r["onset step"]) for r in rows if r["reached"] and not math.isnan(r["onset step"])]
    if len(points) < 3:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    design = np.stack([np.ones_like(x), x], axis=1)
    coef, residual, *_ = np.linalg.lstsq(design, y, rcond=None)
    dof = len(x) - 2
    sigma2 = float(residual[0]) / dof if dof > 0 and len(residual) else 0.0
    cov = sigma2 * np.linalg.inv(design.T @ design)
    return {"a": float(math.exp(coef[0])), "exponent": float(coef[1]), "exponent se": float(math.sqrt(cov[1, 1])),
            "sizes": [int(p[0]) for p in points], "span": max(p[0] for p in points) / min(p[0] for p in points)}


def predict_onset(fit: dict, size: float) -> float:
    """The fit's onset step at `size` training combinations."""
    return fit["a"] * size ** fit["exponent"]


def plot_onsets(rows: list[dict], fits: dict[str, dict | None], paper_sizes: dict[str, int] | None = None, ax=None):
    """Onset step against training-set size (log-log), one series per model with its s.e. bars and fit line;
    a dotted extension to the paper's training-set size where given."""
    import matplotlib.pyplot as plt
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    for label in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == label and r["reached"]]
        if not mine:
            continue
        line = ax.errorbar([r["training size"] for r in mine], [r["onset step"] for r in mine],
                           yerr=[0 if math.isnan(r["onset s.e."]) else r["onset s.e."] for r in mine],
                           fmt="o", capsize=3, label=label)
        fit = fits.get(label)
        if fit:
            top = max(fit["sizes"] + ([paper_sizes[label]] if paper_sizes and label in paper_sizes else []))
            grid = np.geomspace(min(fit["sizes"]), top, 50)
            ax.plot(grid, predict_onset(fit, grid), ":", color=line[0].get_color(),
                    label=f"{label}: onset ~ n^{fit['exponent']:.2f}")
    ax.set(xscale="log", yscale="log", xlabel="training combinations n", ylabel="memorisation onset (step)")
    ax.legend(fontsize=8)
    return ax


def plot_curves(sweeps: dict[str, dict[int, list[Run]]], share: float = ONSET_SHARE):
    """One panel per sweep: the in-dataset share of samples over training for each size (first seed), the
    invalid share dashed, the onset threshold dotted."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(sweeps), figsize=(4 * len(sweeps), 3.4), squeeze=False)
    for ax, (label, by_size) in zip(axes[0], sweeps.items()):
        colours = plt.cm.viridis(np.linspace(0, 0.9, len(by_size)))
        for colour, (n, runs) in zip(colours, sorted(by_size.items())):
            ev = runs[0].evaluations
            steps = [e["step"] for e in ev]
            ax.plot(steps, [e["categories"]["in_dataset"] for e in ev], color=colour, label=f"n={n}")
            ax.plot(steps, [e["categories"]["invalid"] for e in ev], "--", color=colour, alpha=0.5)
        ax.axhline(share, color="grey", linestyle=":", linewidth=1)
        ax.set(title=label, xlabel="training step", ylabel="share of samples", ylim=(-0.02, 1.02))
        ax.legend(fontsize=7, title="in-dataset (solid), invalid (dashed)", title_fontsize=7)
    fig.tight_layout()
    return fig


def contrast(rows: list[dict], first: str, second: str) -> list[dict]:
    """Onsets of two models at the sizes both were run at: who leaves the hallucination phase sooner."""
    by = {(r["model"], r["training size"]): r for r in rows}
    out = []
    for n in sorted({r["training size"] for r in rows}):
        a, b = by.get((first, n)), by.get((second, n))
        if a is None or b is None:
            continue
        oa = a["onset step"] if a["reached"] else math.nan
        ob = b["onset step"] if b["reached"] else math.nan
        if math.isnan(oa) and math.isnan(ob):
            sooner = "neither memorises"
        elif math.isnan(ob):
            sooner = first
        elif math.isnan(oa):
            sooner = second
        else:
            sooner = first if oa < ob else second
        out.append({"training size": n, f"{first} onset": oa, f"{second} onset": ob,
                    f"{first} parameters": a["parameters"], f"{second} parameters": b["parameters"],
                    "memorises first": sooner})
    return out


def fit_sentence(label: str, fit: dict | None, size: int, batch: int) -> str:
    """The fit of one model in words, with its prediction at the paper's training-set size `size` in steps of
    `batch` examples and in examples seen."""
    if fit is None:
        return f"{label}: fewer than three sizes reached memorisation, no fit"
    onset = predict_onset(fit, size)
    return (f"{label}: onset ~ n^{fit['exponent']:.2f} (s.e. {fit['exponent se']:.2f}) over n = "
            f"{min(fit['sizes'])}-{max(fit['sizes'])} (a factor {fit['span']:.0f}); at the paper's n = {size}: "
            f"{onset:,.0f} steps of {batch} ({onset * batch:,.0f} examples seen)")


def residual(rows: list[dict], label: str) -> dict | None:
    """The largest memorising size of a sweep: its hallucinated share of legible samples with the interval."""
    mine = [r for r in rows if r["model"] == label and r["memorises"]]
    return max(mine, key=lambda r: r["training size"]) if mine else None


def residual_sentence(rows: list[dict], label: str, paper_share: float | None = None) -> str:
    """`residual` in words; with `paper_share`, beside the paper's residual for parity L=8."""
    row = residual(rows, label)
    if row is None:
        return f"{label}: no size memorised (in-dataset share of legible samples above {MEMORISES} beyond its interval)"
    text = (f"{label} at n = {row['training size']}: {row['in-dataset / legible']:.2f} of legible samples are "
            f"training combinations (95% {row['in-dataset 95%']}) and {row['hallucination / legible']:.2f} still "
            f"break the rule (95% {row['hallucination 95%']})")
    if paper_share is not None:
        text += f"; the paper reports about {paper_share:.0%} hallucinated samples after overfitting at L=8"
    return text


def paper_sentence(fit: dict | None, batch: int, paper: dict = PAPER) -> str:
    """The DiT fit's prediction at the paper's size against the paper's onset, in examples seen (the paper trains
    at batch 16, the cpu runs at `batch`)."""
    if fit is None:
        return "no DiT fit: the paper's 30k-50k steps cannot be compared"
    seen = predict_onset(fit, paper["quarter_size"]) * batch
    low, high = (s * paper["batch"] for s in paper["dit_onset"])
    where = "inside" if low <= seen <= high else ("below" if seen < low else "above")
    return (f"predicted {seen:,.0f} examples seen at n = {paper['quarter_size']}, {where} the paper's "
            f"{low:,}-{high:,} ({paper['dit_onset'][0]:,}-{paper['dit_onset'][1]:,} steps of {paper['batch']})")


def first_act_sentence(rows: list[dict], label: str, chance: float) -> str:
    """A sweep's hallucination phase in words: its peak rule-breaking share of legible samples per size, against
    `chance` (independent symbols at the sweep's largest size)."""
    mine = [r for r in rows if r["model"] == label and not math.isnan(r["peak hallucination / legible"])]
    if not mine:
        return f"{label}: never a tenth of its samples legible"
    peaks = [r["peak hallucination / legible"] for r in mine]
    sizes = ", ".join(f"n={r['training size']}: {r['peak hallucination / legible']:.2f} {r['peak 95%']}" for r in mine)
    return (f"{label}: at most {max(peaks):.2f} of legible samples break the rule at any evaluation ({sizes}; "
            f"independent symbols: {chance:.2f})")
