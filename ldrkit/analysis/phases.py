"""Phases over training: when a run becomes legible, its hallucination phase, rule-breaking against chance (what a
sampler that knows only each symbol's marginal would score), and category tables with intervals."""
from __future__ import annotations

import math

import numpy as np

from ..probes.estimates import fraction_interval
from ..systems.categories import CATEGORIES, broken_among_legible, legible

LEGIBLE_PHASE = 0.5  # a run "has become legible" at the first evaluation with at least this legible share


def first_legible_step(evaluations: list[dict], threshold: float = LEGIBLE_PHASE) -> int | None:
    """The first evaluated step with at least `threshold` legible samples (None if never)."""
    return next((e["step"] for e in evaluations if legible(e) >= threshold), None)


def final_record(run) -> dict:
    """The run's last evaluation with "n", the number of samples its fractions are of (from the config when the
    record does not say)."""
    final = dict(run.final)
    final.setdefault("n", int(run.config["eval"]["num_samples"]))
    return final


def rule_breaking_peak(evaluations: list[dict], start: int = 0) -> dict:
    """The evaluation (at or after step `start`) with the largest rule-breaking share among legible samples:
    the hallucination phase's checkpoint."""
    candidates = [e for e in evaluations if e["step"] >= start and not math.isnan(broken_among_legible(e))]
    return max(candidates, key=broken_among_legible) if candidates else evaluations[-1]


def category_rows(evaluations: list[dict], num_samples: int) -> list[dict]:
    """One row per evaluation: step, the four fractions, rule-breaking among legible with its Wilson interval."""
    rows = []
    for e in evaluations:
        n_legible = round(legible(e) * num_samples)
        broken = broken_among_legible(e)
        low, high = fraction_interval(broken, n_legible) if n_legible else (math.nan, math.nan)
        rows.append({"step": e["step"], **{c: e["categories"][c] for c in CATEGORIES},
                     "broken among legible": broken, "95% interval": f"{low:.2f}-{high:.2f}"})
    return rows


def independent_valid_probability(grammar, train: np.ndarray) -> float:
    """P(valid) for a sampler that draws each position on its own from the training set's per-position
    symbol frequencies (the "independent symbols" the paper says a network learns).

    Exact: the sum over the grammar's valid sequences of the product of the positions' frequencies.
    """
    train = np.asarray(train)
    support = np.asarray(grammar.enumerate())
    prob = np.ones(len(support))
    for j in range(train.shape[1]):
        values, counts = np.unique(train[:, j], return_counts=True)
        freq = dict(zip(values.tolist(), (counts / len(train)).tolist()))
        prob *= np.array([freq.get(v, 0.0) for v in support[:, j].tolist()])
    return float(prob.sum())


def chance_breaking(run) -> float:
    """The share of sequences breaking the rule when each position is drawn on its own from the training set's
    per-position frequencies: the hallucination share of a model whose symbols are independent (exact; 0.5 for
    parity, large for Dyck and Quarter-digits)."""
    return 1.0 - independent_valid_probability(run.setup.grammar, run.setup.split.train)


def final_counts(record: dict, n: int) -> dict[str, int]:
    """An evaluation's category fractions as sample counts out of the n samples they are fractions of."""
    return {c: round(record["categories"][c] * n) for c in CATEGORIES}
