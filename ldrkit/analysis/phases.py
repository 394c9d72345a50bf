"""Phases over training, defined once for every chapter and the figure index: when a run's symbols are learned,
its hallucination phase (the symbols learned, the rule at chance), rule-breaking against chance (what a sampler that
knows only each symbol's marginal would score), and category tables with intervals.

The phase (`phase_reading`): the first evaluation with at least LEGIBLE_PHASE of its samples legible whose share of
legible samples breaking the rule is at chance: its 95% Wilson interval reaches the share for independent symbols
(`chance_breaking`). A model that learned the rule breaks it significantly less (the interval lies below chance);
one whose symbols are never legible has no phase. Reading a phase from an evaluation with few legible samples (a
maximum over noisy evaluations) is what the floor prevents.
"""
from __future__ import annotations

import math

import numpy as np

from ..probes.estimates import fraction_interval, wilson
from ..systems.categories import CATEGORIES, broken_among_legible, legible

LEGIBLE_PHASE = 0.5  # the symbols are learned at an evaluation with at least this legible share
PHASE = "phase"                      # kinds of a `phase_reading`: the hallucination phase ...
RULE_LEARNED = "rule learned"        # ... the symbols learned with the rule already below chance ...
NO_SYMBOLS = "symbols not learned"   # ... never LEGIBLE_PHASE legible: the most legible evaluation is read


def breaking_counts(record: dict, n: int) -> tuple[int, int]:
    """(legible samples breaking the rule, legible samples) of an evaluation of n samples."""
    n_legible = round(legible(record) * n)
    return round(record["categories"]["hallucination"] * n), n_legible


def at_chance(record: dict, n: int, chance: float) -> bool:
    """The symbols are learned (at least LEGIBLE_PHASE legible) and the rule is not: the Wilson interval of the
    legible samples' rule-breaking share reaches `chance`."""
    k, m = breaking_counts(record, n)
    return legible(record) >= LEGIBLE_PHASE and m > 0 and wilson(k, m)[1] >= chance


def below_chance(record: dict, n: int, chance: float) -> bool:
    """The symbols are learned and the rule partly: the Wilson interval of rule-breaking lies below `chance`."""
    k, m = breaking_counts(record, n)
    return legible(record) >= LEGIBLE_PHASE and m > 0 and wilson(k, m)[1] < chance


def phase_reading(evaluations: list[dict], n: int, chance: float) -> dict:
    """The evaluation a run's first act is read at, and what it is: {"record", "kind"}: the first evaluation at
    chance (`at_chance`, kind PHASE); else the first with the symbols learned (RULE_LEARNED); else the evaluation
    with the most legible samples, the latest of equals (NO_SYMBOLS)."""
    for kind, test in ((PHASE, lambda e: at_chance(e, n, chance)), (RULE_LEARNED, lambda e: legible(e) >= LEGIBLE_PHASE)):
        found = next((e for e in evaluations if test(e)), None)
        if found is not None:
            return {"record": found, "kind": kind}
    return {"record": max(evaluations, key=lambda e: (legible(e), e["step"])), "kind": NO_SYMBOLS}


def run_phase(run) -> dict:
    """`phase_reading` of a run: its evaluations, its sample count and its training split's chance."""
    return phase_reading(run.evaluations, int(run.config["eval"]["num_samples"]), chance_breaking(run))


def first_legible_step(evaluations: list[dict], threshold: float = LEGIBLE_PHASE) -> int | None:
    """The first evaluated step with at least `threshold` legible samples (None if never)."""
    return next((e["step"] for e in evaluations if legible(e) >= threshold), None)


def final_record(run) -> dict:
    """The run's last evaluation with "n", the number of samples its fractions are of (from the config when the
    record does not say)."""
    final = dict(run.final)
    final.setdefault("n", int(run.config["eval"]["num_samples"]))
    return final


def rule_breaking_peak(evaluations: list[dict], n: int, start: int = 0) -> dict:
    """The evaluation (at or after step `start`, with at least LEGIBLE_PHASE of its n samples legible) with the largest
    rule-breaking share among legible samples; the last evaluation when none is legible enough."""
    candidates = [e for e in evaluations if e["step"] >= start and legible(e) >= LEGIBLE_PHASE
                  and breaking_counts(e, n)[1] > 0]
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
