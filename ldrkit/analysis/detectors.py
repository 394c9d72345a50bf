"""Per-sample hallucination detectors head to head (`ldrkit.probes.detectors`): ROC curves, AUROC with bootstrap intervals,
the filter's operating point, and a computed verdict, from the stored runs.

Positive class: samples that end "hallucination" (every symbol legible, the rule broken); negative: valid legible
samples (in-dataset and extrapolation); "invalid" samples are dropped. AUROC is the Mann-Whitney statistic
(the probability that a random hallucination scores above a random valid sample, ties counting one half), with a
95% percentile bootstrap over samples, each class resampled on its own. The operating point is Aithal et al.'s:
the fraction of hallucinations removed when the threshold keeps 95% of the valid samples (Wilson interval on the
count, the threshold held fixed). Scores are cached in the run folder (`Run.cached("detectors", ...)`).
The verdict's thresholds are the constants below.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import bootstrap, mannwhitneyu, rankdata

from ..denoisers.oracles import build_oracle
from ..probes.detectors import DETECTORS, WINDOWS, detector_scores
from ..probes.estimates import wilson
from ..runs.run import Run

DETECTS_ABOVE = 0.6     # "detects": the whole AUROC interval lies above this
CONFIDENCE = 0.95       # of the bootstrap intervals
RESAMPLES = 2000        # bootstrap resamples
KEEP_VALID = 0.95       # the operating point keeps this fraction of the valid samples (Aithal et al.)
MIN_CLASS = 5           # members of each class needed to report an AUROC at all
MARGIN = 1.3            # sample_count asks for this many times the samples the expected class sizes need
EXPERIMENTS = {"parity parentheses": "parity-parens-L16-unet", "Dyck parentheses": "dyck-parens-unet",
               "Quarter-digits": "quarter-digits-unet", "English words": "english-words-unet"}
"""The grammars of the chapter and the runs that stand for them (the first picks each detector's window)."""
LABELS = {"aithal": "x0 variance (Aithal et al.)", "product_likeness": "product-likeness (locality)"}
VALID = ("in_dataset", "extrapolation")


def sample_count(run: Run, sizes: dict) -> int:
    """Samples to score: enough that the rarer class of the run's last evaluation expects sizes["min_class"] members
    (times MARGIN), at most sizes["max"], rounded up to a multiple of 32."""
    cats = run.final.get("categories", {})
    rarer = min(cats.get("hallucination", 0.0), sum(cats.get(c, 0.0) for c in VALID))
    wanted = sizes["max"] if rarer <= 0 else math.ceil(sizes["min_class"] * MARGIN / rarer)
    return int(min(sizes["max"], 32 * math.ceil(wanted / 32)))


def cached_scores(run: Run, n: int, seed: int = 0, windows=WINDOWS, sampler: str | None = None,
                  num_steps: int | None = -1) -> dict:
    """Both detectors' scores of n samples of the run's last checkpoint, cached in the run folder; by default with
    the run's own evaluation sampler (`sampler`, `num_steps`: another one, None steps meaning all T).

    Returns {"labels": (n,), "timesteps": [...], detector: {K: (n,)}} (see `ldrkit.probes.detectors.detector_scores`).
    """
    ev = run.config["eval"]
    params = {"n": int(n), "seed": int(seed), "windows": [int(k) for k in windows],
              "sampler": sampler or ev.get("sampler", "ddpm"),
              "num_steps": ev.get("sample_steps") if num_steps == -1 else num_steps}

    def compute(model, step: int) -> dict:
        setup = run.setup
        res = detector_scores(setup, model, n, seed, params["num_steps"], params["sampler"], windows,
                              rule=build_oracle(setup, "rule"), product=build_oracle(setup, "product"))
        return {"labels": [str(c) for c in res["labels"]], "timesteps": res["timesteps"],
                **{d: {str(k): [None if not np.isfinite(v) else float(v) for v in res[d][k]] for k in windows}
                   for d in DETECTORS}}

    row = run.cached("detectors", params, [run.steps()[-1]], compute)[0]
    return {"labels": np.array(row["labels"]), "timesteps": row["timesteps"],
            **{d: {int(k): np.array([np.nan if v is None else v for v in vals], dtype=float)
                   for k, vals in row[d].items()} for d in DETECTORS}}


# --- ROC, AUROC, operating point -------------------------------------------------------------------------------

def classes(labels, score) -> tuple[np.ndarray, np.ndarray]:
    """(scores of the hallucinated samples, scores of the valid legible ones), samples with an undefined score dropped."""
    labels, score = np.asarray(labels), np.asarray(score, dtype=float)
    ok = np.isfinite(score)
    return score[ok & (labels == "hallucination")], score[ok & np.isin(labels, VALID)]


def auroc(pos, neg) -> float:
    """P(a positive scores above a negative) + P(tie) / 2: the Mann-Whitney U of the positives over n1 n0."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if not len(pos) or not len(neg):
        return math.nan
    return float(mannwhitneyu(pos, neg, alternative="two-sided").statistic / (len(pos) * len(neg)))


def auroc_interval(pos, neg, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                   seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUROC, each class resampled with replacement on its own."""
    if min(len(pos), len(neg)) < 2:
        return (math.nan, math.nan)
    res = bootstrap((np.asarray(pos, float), np.asarray(neg, float)), _auroc_along, vectorized=True, paired=False,
                    n_resamples=resamples, confidence_level=confidence, method="percentile",
                    random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _auroc_along(pos, neg, axis=-1):
    """auroc of many resamples at once (the bootstrap's vectorized statistic): ranks of the pooled scores, ties
    averaged, U = rank sum of the positives - n1 (n1 + 1) / 2."""
    pos, neg = np.moveaxis(pos, axis, -1), np.moveaxis(neg, axis, -1)
    n1, n0 = pos.shape[-1], neg.shape[-1]
    ranks = rankdata(np.concatenate([pos, neg], axis=-1), axis=-1)
    return (ranks[..., :n1].sum(-1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def roc_curve(pos, neg) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) over every threshold, from (0, 0) to (1, 1)."""
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    fpr = [0.0] + [float(np.mean(neg >= c)) for c in thresholds]
    tpr = [0.0] + [float(np.mean(pos >= c)) for c in thresholds]
    return np.array(fpr), np.array(tpr)


def removed_at_kept(pos, neg, keep: float = KEEP_VALID) -> tuple[float, float, float]:
    """Fraction of hallucinations removed (score above the threshold that keeps `keep` of the valid samples),
    with its Wilson interval."""
    if not len(pos) or not len(neg):
        return (math.nan, math.nan, math.nan)
    threshold = np.quantile(neg, keep, method="higher")
    k = int(np.sum(pos > threshold))
    return (k / len(pos), *wilson(k, len(pos)))


def verdict(low: float, high: float) -> str:
    """'detects' when the AUROC interval lies above DETECTS_ABOVE, 'chance' when it contains 0.5, 'inverted' when
    it lies below 0.5, 'weak' otherwise (above 0.5 but not clear of DETECTS_ABOVE); 'too few' without an interval."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "too few"
    if low > DETECTS_ABOVE:
        return "detects"
    if low <= 0.5 <= high:
        return "chance"
    return "inverted" if high < 0.5 else "weak"


def detection_rows(scores: dict, grammar: str, windows=None) -> list[dict]:
    """One row per detector and window: class counts, AUROC with interval, removed at 95% kept, verdict."""
    rows = []
    for detector in DETECTORS:
        for k in windows or sorted(scores[detector]):
            pos, neg = classes(scores["labels"], scores[detector][k])
            enough = min(len(pos), len(neg)) >= MIN_CLASS
            low, high = auroc_interval(pos, neg) if enough else (math.nan, math.nan)
            removed, r_low, r_high = removed_at_kept(pos, neg) if enough else (math.nan,) * 3
            rows.append({"grammar": grammar, "detector": LABELS[detector], "window K": int(k),
                         "hallucinated": len(pos), "valid": len(neg),
                         "AUROC": auroc(pos, neg) if enough else math.nan, "low": low, "high": high,
                         f"removed at {KEEP_VALID:.0%} kept": removed, "removed low": r_low, "removed high": r_high,
                         "verdict": verdict(low, high)})
    return rows


def pick_windows(rows: list[dict]) -> dict[str, int]:
    """Per detector, the window K with the highest AUROC among the rows (the chapter picks on one run)."""
    best: dict[str, tuple[float, int]] = {}
    for row in rows:
        auc = row["AUROC"] if np.isfinite(row["AUROC"]) else -1.0
        if row["detector"] not in best or auc > best[row["detector"]][0]:
            best[row["detector"]] = (auc, row["window K"])
    return {next(d for d, label in LABELS.items() if label == name): k for name, (_, k) in best.items()}


def chosen_rows(rows: list[dict], windows: dict[str, int]) -> list[dict]:
    """The rows of the chosen window of each detector."""
    return [r for r in rows if windows.get(next(d for d, lab in LABELS.items() if lab == r["detector"])) == r["window K"]]


def format_table(rows: list[dict]) -> str:
    """A plain-text table of detection_rows (for the command line)."""
    lines = [f"{'grammar':<24} {'detector':<30} {'K':>3} {'hall':>5} {'valid':>5} {'AUROC':>6} "
             f"{'95% interval':>15} {'removed@95%':>11}  verdict"]
    for r in rows:
        lines.append(f"{r['grammar']:<24} {r['detector']:<30} {r['window K']:>3} {r['hallucinated']:>5} {r['valid']:>5} "
                     f"{r['AUROC']:>6.3f} [{r['low']:.3f}, {r['high']:.3f}] "
                     f"{r[f'removed at {KEEP_VALID:.0%} kept']:>11.3f}  {r['verdict']}")
    return "\n".join(lines)


def plot_rocs(results: dict[str, dict], windows: dict[str, int]):
    """One panel per grammar: the ROC curve of each detector at its chosen window, with the chance diagonal."""
    fig, axes = plt.subplots(1, len(results), figsize=(3.4 * len(results), 3.4), squeeze=False)
    for ax, (grammar, scores) in zip(axes[0], results.items()):
        for detector, k in windows.items():
            pos, neg = classes(scores["labels"], scores[detector][k])
            if len(pos) and len(neg):
                fpr, tpr = roc_curve(pos, neg)
                ax.plot(fpr, tpr, label=f"{LABELS[detector]}, K={k} (AUROC {auroc(pos, neg):.2f})")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set(title=grammar, xlabel="valid samples flagged", ylabel="hallucinations flagged", xlim=(0, 1), ylim=(0, 1))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="lower right")
        else:
            ax.text(0.5, 0.3, "too few samples\nof a class", ha="center", fontsize=8)
    fig.tight_layout()
    return fig


# --- Aithal et al.'s own protocol --------------------------------------------------------------------------

PAPER_PROTOCOL = {"sampler": "ddpm", "num_steps": None, "window": 10}
"""Aithal et al.'s detector as they run it: ancestral DDPM on all T steps, the variance of the predicted x0 over the
last 10 of them."""


def protocol_scores(run: Run, n: int, seed: int = 0) -> dict:
    """`cached_scores` under PAPER_PROTOCOL (one window)."""
    return cached_scores(run, n, seed, windows=(PAPER_PROTOCOL["window"],), sampler=PAPER_PROTOCOL["sampler"],
                         num_steps=PAPER_PROTOCOL["num_steps"])


def protocol_rows(results: dict[str, dict]) -> list[dict]:
    """Per grammar, Aithal et al.'s x0 variance under their protocol: against hallucinations (hallucinated vs valid
    legible samples) and its positive control, the failure it was built for (illegible vs valid legible samples),
    each with its AUROC, bootstrap interval and verdict; a detector that misses its own control says nothing."""
    rows, k = [], PAPER_PROTOCOL["window"]
    for grammar, scores in results.items():
        labels, score = np.asarray(scores["labels"]), np.asarray(scores["aithal"][k], dtype=float)
        ok = np.isfinite(score)
        valid = score[ok & np.isin(labels, VALID)]
        for task, positive in (("hallucinated vs valid", "hallucination"), ("illegible vs valid (control)", "invalid")):
            pos = score[ok & (labels == positive)]
            enough = min(len(pos), len(valid)) >= MIN_CLASS
            low, high = auroc_interval(pos, valid) if enough else (math.nan, math.nan)
            rows.append({"grammar": grammar, "task": task, "positives": len(pos), "valid": len(valid),
                         "AUROC": auroc(pos, valid) if enough else math.nan, "low": low, "high": high,
                         "verdict": verdict(low, high)})
    return rows


# --- the chapter's comparison --------------------------------------------------------------------------------

def score_runs(runs: dict[str, Run], sizes: dict, seed: int = 0) -> dict[str, dict]:
    """{grammar: cached_scores} for each run, with `sample_count(run, sizes)` samples."""
    return {grammar: cached_scores(run, sample_count(run, sizes), seed) for grammar, run in runs.items()}


def all_rows(results: dict[str, dict]) -> list[dict]:
    """detection_rows of every grammar, every detector and every window."""
    return [row for grammar, scores in results.items() for row in detection_rows(scores, grammar)]


def head_to_head(rows: list[dict]) -> tuple[dict[str, int], list[dict]]:
    """From all_rows: each detector's window picked on the first grammar's run (highest AUROC there), and the rows
    of that window for every grammar."""
    first = rows[0]["grammar"]
    windows = pick_windows([r for r in rows if r["grammar"] == first])
    return windows, chosen_rows(rows, windows)


def answer(rows: list[dict]) -> str:
    """The open question answered from the chosen rows: per detector, the grammars it detects and its AUROC range."""
    parts = []
    for detector in DETECTORS:
        mine = [r for r in rows if r["detector"] == LABELS[detector] and np.isfinite(r["AUROC"])]
        if not mine:
            parts.append(f"{LABELS[detector]}: too few samples of each class to say")
            continue
        found = [r["grammar"] for r in mine if r["verdict"] == "detects"]
        aucs = [r["AUROC"] for r in mine]
        removed = max(r[f"removed at {KEEP_VALID:.0%} kept"] for r in mine)
        parts.append(f"{LABELS[detector]} detects hallucinations on {len(found)} of {len(mine)} grammars"
                     f"{' (' + ', '.join(found) + ')' if found else ''}, AUROC {min(aucs):.2f} to {max(aucs):.2f}, "
                     f"and as a filter keeping {KEEP_VALID:.0%} of valid samples removes at most {removed:.0%} "
                     "of the hallucinations")
    return "; ".join(parts) + "."
