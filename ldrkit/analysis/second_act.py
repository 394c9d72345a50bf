"""The second act measured (issue 14): when a model starts reproducing its training set, how that moment
grows with the size of the training set, and how much hallucination is left once it has.

Onset: the first training step at which half of the legible samples are exact training combinations
(`ONSET_SHARE`, the Quarter chapter's "memorised"), linearly interpolated between the two evaluations that
bracket the crossing; an evaluation with fewer than half its samples legible is not read (`memorised_share`),
so a handful of legible copies early on cannot call memorisation. A run that never gets there is censored at
its last step. The held-out sizes are predicted from the fits before they are trained (book/
second-act-predictions.json, written by scripts/predict_second_act.py) and scored here (`held_out_rows`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..denoisers.models import count_parameters
from ..probes.estimates import ABOVE, EXACT, censored_line_fit, line_prediction, mean_sem, share
from ..runs.request import existing_run, get_run
from ..runs.run import Run
from ..spec.registry import get_experiment
from ..systems.categories import in_dataset_among_legible, legible
from .phases import LEGIBLE_PHASE, final_counts, final_record, rule_breaking_peak
from .quarter_digits import MEMORISED

ONSET_SHARE = MEMORISED  # memorisation has set in once this share of all samples are training combinations
MEMORISES = 0.5     # a run memorises when the Wilson interval of in-dataset / legible at its end lies above this
ONSET_LEVEL = "0.5"  # the noise level (sqrt(alpha_bar)) whose x0-LDR and memoriser distance the tables show

# What the paper reports (section 4.2, Figs. 3-5, appendix A.5): Quarter-MNIST with 470 training tuples at batch 16,
# the DiT's rule-obeying share rising with its LDR falling at 30k-50k steps, the UNet at 20.6% after 180k steps;
# parity L=8 images overfit but keep about 25% hallucinated samples.
# The sweeps (specs.SWEEPS) the paper's contrasts are read from: its UNet, its DiT (several tokens per digit) and
# its parity L=8 model.
UNET_SWEEP, DIT_SWEEP, PARENS_SWEEP = "Quarter UNet", "Quarter DiT, 4 tokens per digit", "parity parentheses L=8 UNet"
TOKEN_SWEEP = "Quarter DiT, a token per digit"
PREDICTIONS = Path(__file__).resolve().parents[2] / "book" / "second-act-predictions.json"  # committed before its runs
PAPER = {"quarter_size": 470, "batch": 16, "dit_onset": (30_000, 50_000), "unet_steps": 180_000,
         "parity_residual": 0.25}


def memorised_share(record: dict) -> float:
    """The share of legible samples that are training combinations, 0 while fewer than half the samples are
    legible (the book's floor for reading any share of legible samples, `phases.LEGIBLE_PHASE`)."""
    return in_dataset_among_legible(record) if legible(record) >= LEGIBLE_PHASE else 0.0


def onset_step(evaluations: list[dict], share: float = ONSET_SHARE) -> float | None:
    """The onset: the first step at which memorisation passes `share` of the legible samples (`memorised_share`),
    interpolated linearly between the two evaluations that bracket it; None when no evaluation reaches it (the run
    is then censored at its last step)."""
    previous = None
    for e in evaluations:
        value = memorised_share(e)
        if value >= share:
            if previous is None or memorised_share(previous) >= value:
                return float(e["step"])
            p_step, p_value = previous["step"], memorised_share(previous)
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


def hallucination_peak(evaluations: list[dict], n: int) -> dict:
    """The first act inside a sweep run: the largest rule-breaking share of legible samples
    (`phases.rule_breaking_peak`) over the evaluations with at least half of the n samples legible, with its Wilson
    interval and step (NaNs when none is)."""
    if not any(legible(e) >= LEGIBLE_PHASE for e in evaluations):
        return {"share": math.nan, "low": math.nan, "high": math.nan, "step": None}
    peak = rule_breaking_peak(evaluations, n)
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
            "onsets": [o if o is not None else None for o in onsets], "last steps": [r.final["step"] for r in runs],
            "peak hallucination / legible": peak["share"],
            "peak 95%": (f"[{peak['low']:.2f}, {peak['high']:.2f}] at {peak['step']}" if peak["step"] is not None
                         else "n/a (never half legible)"),
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
    """onset = a * size ** b, fitted to every seed's onset (log onset against log size, `estimates.censored_line_fit`):
    a seed that never memorised is a censored point (its onset lies beyond its last step), never dropped. None
    without onsets at three sizes."""
    x, y, kinds = [], [], []
    for r in rows:
        for onset, last in zip(r["onsets"], r["last steps"]):
            x.append(math.log(r["training size"]))
            y.append(math.log(onset if onset is not None else max(last, 1)))
            kinds.append(EXACT if onset is not None else ABOVE)
    sizes = sorted({r["training size"] for r in rows if any(o is not None for o in r["onsets"])})
    fit = censored_line_fit(x, y, kinds) if len(sizes) >= 3 else None
    if fit is None:
        return None
    return {"a": float(math.exp(fit["a"])), "exponent": fit["b"], "exponent se": float(math.sqrt(fit["cov"][1][1])),
            "sizes": sizes, "span": max(sizes) / min(sizes), "censored": fit["censored"], "line": fit}


def predict_onset(fit: dict, size):
    """The fit's onset step at `size` training combinations."""
    return fit["a"] * np.asarray(size, dtype=float) ** fit["exponent"]


def onset_interval(fit: dict, size: float) -> tuple[float, float, float]:
    """(onset, low, high): the fit's onset at `size` with the 95% prediction interval of one new run there."""
    mean, low, high = line_prediction(fit["line"], math.log(size))
    return math.exp(mean), math.exp(low), math.exp(high)


def plot_onsets(rows: list[dict], fits: dict[str, dict | None], paper_sizes: dict[str, int] | None = None, ax=None):
    """Onset step against training-set size (log-log), one series per model with its s.e. bars and fit line;
    a dotted extension to the paper's training-set size where given; a note where no run reached the onset."""
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
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:  # no run reached the onset (a short profile): say so rather than draw an empty legend
        ax.text(0.5, 0.5, "no run reached the onset", transform=ax.transAxes, ha="center", va="center")
    return ax


def plot_curves(sweeps: dict[str, dict[int, list[Run]]], share: float = ONSET_SHARE):
    """One panel per sweep: the in-dataset share of legible samples over training for each size (first seed; 0 while
    fewer than half are legible), the invalid share dashed, the onset threshold dotted."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(sweeps), figsize=(4 * len(sweeps), 3.4), squeeze=False)
    for ax, (label, by_size) in zip(axes[0], sweeps.items()):
        colours = plt.cm.viridis(np.linspace(0, 0.9, len(by_size)))
        for colour, (n, runs) in zip(colours, sorted(by_size.items())):
            ev = runs[0].evaluations
            steps = [e["step"] for e in ev]
            ax.plot(steps, [memorised_share(e) for e in ev], color=colour, label=f"n={n}")
            ax.plot(steps, [e["categories"]["invalid"] for e in ev], "--", color=colour, alpha=0.5)
        ax.axhline(share, color="grey", linestyle=":", linewidth=1)
        ax.set(title=label, xlabel="training step", ylabel="share", ylim=(-0.02, 1.02))
        ax.legend(fontsize=7, title="in-dataset of legible (solid), invalid (dashed)", title_fontsize=7)
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
    onset, low, high = onset_interval(fit, size)
    censored = f", {fit['censored']} censored run(s) as lower bounds" if fit["censored"] else ""
    return (f"{label}: onset ~ n^{fit['exponent']:.2f} (s.e. {fit['exponent se']:.2f}) over n = "
            f"{min(fit['sizes'])}-{max(fit['sizes'])} (a factor {fit['span']:.0f}{censored}); at the paper's n = "
            f"{size}: {onset:.2g} steps of {batch} (95% prediction {low:.2g}-{high:.2g}; {onset * batch:.2g} "
            "examples seen)")


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


def residual_rows(rows: list[dict], labels) -> list[dict]:
    """`residual` of each sweep as a table row: its largest memorising size and the in-dataset and hallucinated
    shares of legible samples there with their intervals ("none memorised" where no size did)."""
    out = []
    for label in labels:
        row = residual(rows, label)
        out.append({"sweep": label, "n": "none memorised"} if row is None else
                   {"sweep": label, "n": row["training size"], "in-dataset / legible": row["in-dataset / legible"],
                    "in-dataset 95%": row["in-dataset 95%"], "hallucination / legible": row["hallucination / legible"],
                    "hallucination 95%": row["hallucination 95%"]})
    return out


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


def checked_runs(sweeps: dict[str, dict[int, list[Run]]], rows: list[dict], sizes: dict, profile: str
                 ) -> dict[str, list[Run]]:
    """The runs whose last checkpoint is resampled with the paper's sampler, by label: each sweep's largest size, its
    headline sizes (`sizes["headline"]`) and its `residual` size, then the first-act runs of
    `sizes["first_act_checked"]` (seed 0)."""
    checked = {}
    for label, by_size in sweeps.items():
        residual_size = (residual(rows, label) or {}).get("training size")
        for n in sorted({max(by_size), *sizes["headline"].get(label, []), *([residual_size] if residual_size else [])}):
            if n in by_size:
                checked[f"{label}, n = {n}"] = by_size[n]
    for label, name in sizes["first_act_checked"].items():
        checked[label] = [get_run(name, profile, 0, progress=False)]
    return checked


def retrained_parity_values(seeds: list[Run], stored: Run, size: int = 8) -> tuple[dict, dict]:
    """The parity model retrained over `seeds` beside its stored sweep run, by glue name: (the in-dataset share of
    the first seed's and of the stored run's samples; Markdown: the residual over the seeds, beside the paper's)."""
    values = {"parity_retrained": f"{seeds[0].final['categories']['in_dataset']:.2f}",
              "parity_stored": f"{stored.final['categories']['in_dataset']:.2f}"}
    rows = sweep_rows({size: seeds}, PARENS_SWEEP)
    return values, {"residual_parity_seeds": residual_sentence(rows, PARENS_SWEEP, PAPER["parity_residual"])}


# --- predictions before measurements (issue 39) -----------------------------------------------------------

def predictions(fits: dict[str, dict | None], held_out: dict[str, dict[int, str]], profile: str) -> list[dict]:
    """Per held-out (model, size): the onset step `fit_onset` of the model's sweep predicts, with the 95% prediction
    interval of one run (`onset_interval`), and the held-out run's step budget."""
    rows = []
    for label, by_size in held_out.items():
        fit = fits.get(label)
        for n, name in sorted(by_size.items()):
            onset, low, high = onset_interval(fit, n) if fit else (math.nan,) * 3
            rows.append({"model": label, "training size": n, "experiment": name,
                         "steps": get_experiment(name).config(profile, 0)["train"]["steps"],
                         "predicted onset": onset, "low": low, "high": high,
                         "fit": {"exponent": fit["exponent"], "exponent se": fit["exponent se"], "sizes": fit["sizes"],
                                 "censored": fit["censored"]} if fit else None})
    return rows


def _stated(prediction: dict) -> dict:
    """What a prediction said: the model, the size, the onset and its interval."""
    return {k: prediction[k] for k in ("model", "training size", "predicted onset", "low", "high")}


def prediction_outcome(prediction: dict, runs: list[Run]) -> dict:
    """Hit or miss of one prediction on the runs that test it: "hit" when every seed's onset lies inside the
    predicted interval, or every seed stopped before the interval began without memorising (as predicted); "miss"
    when an onset lies outside it or a seed never memorised although it trained past the interval's top;
    "censored" when a seed stopped inside the interval without memorising (it cannot tell)."""
    onsets = [onset_step(r.evaluations) for r in runs]
    verdicts = []
    for onset, run in zip(onsets, runs):
        last = run.final["step"]
        if onset is not None:
            verdicts.append("hit" if prediction["low"] <= onset <= prediction["high"] else "miss")
        else:
            verdicts.append("miss" if last >= prediction["high"] else "hit" if last < prediction["low"] else "censored")
    outcome = "miss" if "miss" in verdicts else "censored" if "censored" in verdicts else "hit"
    return {**_stated(prediction),
            "onsets": [None if o is None else round(o) for o in onsets], "seeds": len(runs), "outcome": outcome}


def load_predictions(path: Path | str = PREDICTIONS) -> dict:
    """The committed predictions file (scripts/predict_second_act.py), or a clear error naming how to make it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python scripts/predict_second_act.py` (before training "
                                "the held-out sizes)")
    return json.loads(path.read_text())


def held_out_rows(profile: str, seeds, record: dict | None = None) -> list[dict]:
    """One row per committed prediction: its interval and its outcome (`prediction_outcome`) on the held-out runs of
    `seeds` that exist (finished here or in the results store; none is trained here). "not run yet" where none
    exists, "not this profile" where the predictions were made for another profile."""
    record = load_predictions() if record is None else record
    rows = []
    for p in record["predictions"]:
        base = _stated(p)
        if record["profile"] != profile:
            rows.append({**base, "onsets": [], "seeds": 0, "outcome": f"predicted for the {record['profile']} profile"})
            continue
        runs = [r for r in (existing_run(p["experiment"], profile, s) for s in seeds) if r is not None]
        rows.append(prediction_outcome(p, runs) if runs else {**base, "onsets": [], "seeds": 0,
                                                                "outcome": "not run yet"})
    return rows


def held_out_display(rows: list[dict]) -> list[dict]:
    """`held_out_rows` as the chapter's table shows them."""
    def onset(o):
        return "not reached" if o is None else f"{o:,}"
    return [{"model": r["model"], "n": r["training size"],
             "predicted onset (95% interval)": f"{r['predicted onset']:,.0f} [{r['low']:,.0f}, {r['high']:,.0f}]",
             "seeds run": r["seeds"], "measured onsets": ", ".join(map(onset, r["onsets"])) or "-",
             "outcome": r["outcome"]} for r in rows]


def held_out_sentence(record: dict, rows: list[dict]) -> str:
    """Where and when the predictions were made, and how many of them hit."""
    code = record["code"]
    tested = [r for r in rows if r["outcome"] in ("hit", "miss", "censored")]
    counts = {k: sum(r["outcome"] == k for r in tested) for k in ("hit", "miss", "censored")}
    made = f"made {record['made_at'][:10]} at commit `{code['commit'][:7]}`" + (" (with local changes)" if code.get("dirty") else "")
    if not tested:
        return f"predictions {made}; no held-out run has been trained yet"
    return (f"predictions {made}; of {len(tested)} tested, {counts['hit']} hit, {counts['miss']} missed and "
            f"{counts['censored']} could not tell (a seed stopped inside the interval without memorising)")
