"""The text readers checked on generated samples: what they decide on the samples of the exact denoisers.

A reader tested only on rendered words could still fail on what a sampler produces. The exact
denoisers of the text data give generated samples whose categories are known in advance: the
memoriser samples training entries only, the rule oracle samples the whole lexicon uniformly (its
held-out tenth is extrapolation), and the English product oracle draws every letter cell on its own
from the training words' per-position frequencies, so it spells a lexicon word with the probability
that independence predicts. The reader passes when each exact share lies in the Wilson interval of
the share it reads. For Chinese, the distance to the nearest lexicon character, in units of the
reader's threshold, shows where the network's samples fall beside the oracles' and beside
half-and-half inventions: a reader too strict for generated images would put the memoriser's
samples above the threshold.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..probes.estimates import share
from ..runs.request import get_run
from ..runs.run import Run
from ..spec.text import TEXT_ORACLES
from .phases import independent_valid_probability
from .quarter_digits import held_out_share
from .real_text import TEXT_RUNS, distinct_pairs, half_and_half

CONFIDENCE = 0.95
FLOOR = 0.01   # the distance-ratio histogram starts here (exact oracle samples sit at ~0)
INVENTIONS = "half-and-half inventions"


def oracle_runs(profile: str, seed: int) -> dict[str, dict[str, Run]]:
    """{language: {oracle: its sampling run}} for the text oracles of `spec.text.TEXT_ORACLES`."""
    return {key: {w: get_run(f"{base}-oracle-{w}", profile, seed, progress=False) for w in TEXT_ORACLES[base]}
            for key, base in TEXT_RUNS.items()}


def exact_shares(which: str, setup) -> dict[str, float]:
    """What an oracle's samples must read as, exactly: {quantity: share of all samples}.

    "lexicon word" is in_dataset + extrapolation (any word of the lexicon)."""
    if which == "memoriser":
        return {"in_dataset": 1.0}
    if which == "rule":
        return {"lexicon word": 1.0, "extrapolation": held_out_share(setup)}
    if which == "product":
        return {"lexicon word": independent_valid_probability(setup.grammar, setup.split.train)}
    raise ValueError(f"no exact shares for the {which!r} oracle; choose from memoriser, rule, product")


def count(labels: np.ndarray, quantity: str) -> int:
    """Samples of a quantity of `exact_shares` among the reader's labels."""
    wanted = ("in_dataset", "extrapolation") if quantity == "lexicon word" else (quantity,)
    return int(np.isin(labels, wanted).sum())


def reader_agrees(k: int, n: int, exact: float, confidence: float = CONFIDENCE) -> bool:
    """The reader reproduces an exact share: `exact` lies in the Wilson interval of k/n."""
    _, low, high = share(k, n, confidence)
    return low <= exact <= high


def reader_check_rows(runs: dict[str, dict[str, Run]]) -> list[dict]:
    """One row per language, oracle and checked quantity: samples, the share read with its Wilson interval, the
    exact share and the verdict."""
    rows = []
    for key, by_oracle in runs.items():
        for which, run in by_oracle.items():
            labels = run.setup.categorize(run.samples())
            for quantity, exact in exact_shares(which, run.setup).items():
                k, n = count(labels, quantity), len(labels)
                value, low, high = share(k, n)
                rows.append({"language": key, "oracle": which, "quantity": quantity, "samples": n,
                             "read": round(value, 3), "95% interval": f"{low:.3f}-{high:.3f}",
                             "exact": round(exact, 4),
                             "verdict": "agrees" if reader_agrees(k, n, exact) else "disagrees"})
    return rows


def all_agree(rows: list[dict]) -> bool:
    return all(r["verdict"] == "agrees" for r in rows)


# --- Chinese: distances to the lexicon ---------------------------------------------------------------------
def distance_ratio(renderer, x: torch.Tensor) -> np.ndarray:
    """Per image, the RMS distance to the nearest lexicon character over the reader's match threshold
    (below 1: read as that character)."""
    return renderer.read(x).distance / (renderer.match * renderer.nearest_gap)


def inventions(renderer, n: int, seed: int) -> torch.Tensor:
    """n half-and-half characters (left half of one lexicon character, right half of another, never the same)."""
    x = renderer.render(np.arange(len(renderer.chars))[:, None])
    i, j = distinct_pairs(len(x), n, torch.Generator().manual_seed(seed))
    return half_and_half(renderer, x[i], x[j])


def distance_groups(oracles: dict[str, Run], models: dict[str, tuple[Run, int]], seed: int,
                    n_inventions: int = 256) -> dict[str, np.ndarray]:
    """{label: distance ratios} for the oracles' samples, half-and-half inventions and each model's samples at
    its step (`models`: {label: (run, step)}), each read with its own run's reader (its own lexicon)."""
    base = next(iter(oracles.values())).setup.renderer
    groups = {f"{w} oracle": distance_ratio(run.setup.renderer, run.samples()) for w, run in oracles.items()}
    groups[INVENTIONS] = distance_ratio(base, inventions(base, n_inventions, seed))
    for label, (run, step) in models.items():
        groups[label] = distance_ratio(run.setup.renderer, run.samples(step))
    return groups


def distance_rows(groups: dict[str, np.ndarray]) -> list[dict]:
    """Per group: samples, median ratio and the share read as a lexicon character (ratio <= 1) with its interval."""
    rows = []
    for label, ratio in groups.items():
        value, low, high = share(int((ratio <= 1).sum()), len(ratio))
        rows.append({"samples": label, "n": len(ratio),
                     "median distance / threshold": round(float(np.median(ratio)), 2),
                     "read as a character": round(value, 3), "95% interval": f"{low:.3f}-{high:.3f}"})
    return rows


def loosest_threshold(groups: dict[str, np.ndarray]) -> float:
    """The largest threshold (in units of the reader's) that still reads no half-and-half invention as a
    character: the closest invention's distance ratio."""
    return float(np.min(groups[INVENTIONS]))


def admitted(ratio: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """Share of samples a reader with `threshold` (in units of the reader's) would read as characters, with its
    Wilson interval."""
    return share(int((ratio < threshold).sum()), len(ratio))


def plot_distances(groups: dict[str, np.ndarray], profile: str):
    """Histograms of the distance ratio per group on a log axis, the reader's threshold at 1."""
    fig, ax = plt.subplots(figsize=(8, 3.4))
    top = max(FLOOR * 10, max(float(np.max(r)) for r in groups.values()) * 1.05)
    bins = np.geomspace(FLOOR, top, 50)
    for label, ratio in groups.items():
        ax.hist(np.clip(ratio, FLOOR, None), bins=bins, histtype="step", lw=1.6, label=f"{label} (n={len(ratio)})")
    ax.axvline(1.0, color="k", ls="--", lw=1)
    ax.text(1.03, 0.95, "reader's threshold", transform=ax.get_xaxis_transform(), fontsize=8, va="top")
    ax.set_xscale("log")
    ax.set_xlabel("distance to the nearest lexicon character / the reader's threshold "
                  f"(at most {FLOOR} drawn at {FLOOR})")
    ax.set_ylabel("samples")
    ax.set_title(f"Where generated Chinese characters fall ({profile} profile)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
