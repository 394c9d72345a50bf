"""The paper's four categories of generated samples (section 4.2).

- invalid: the decoder cannot read at least one symbol;
- hallucination: every symbol legible, the rule broken;
- in_dataset: an exact training sequence;
- extrapolation: obeys the rule but is not a training sequence (a held-out combination).
"""
from __future__ import annotations

import math

import numpy as np

from .grammars import Grammar
from .render import Decoded

CATEGORIES = ("invalid", "hallucination", "in_dataset", "extrapolation")


def categorize(decoded: Decoded, grammar: Grammar, train_set: np.ndarray) -> np.ndarray:
    """One category name per sample."""
    legible = decoded.all_legible
    valid = np.zeros(len(legible), dtype=bool)
    if legible.any():
        valid[legible] = grammar.is_valid(decoded.tokens[legible])
    seen = {row.tobytes() for row in np.asarray(train_set, dtype=np.int64)}
    in_train = np.array([row.tobytes() in seen for row in decoded.tokens.astype(np.int64)], dtype=bool)
    labels = np.where(~legible, "invalid",
                      np.where(~valid, "hallucination", np.where(in_train, "in_dataset", "extrapolation")))
    return labels.astype(object)


def fractions(labels: np.ndarray) -> dict[str, float]:
    """Fraction of samples in each category (the four sum to 1)."""
    n = max(len(labels), 1)
    return {c: float(np.sum(labels == c)) / n for c in CATEGORIES}


# --- shares of an evaluation record {"categories": {name: fraction}} --------------------------------

def legible(record: dict) -> float:
    """Share of samples whose every symbol is legible."""
    return 1.0 - record["categories"]["invalid"]


def broken_among_legible(record: dict) -> float:
    """Share of legible samples that break the rule (hallucinations / legible); NaN when none is legible."""
    share = legible(record)
    return record["categories"]["hallucination"] / share if share > 0 else math.nan


def in_dataset_among_legible(record: dict) -> float:
    share = legible(record)
    return record["categories"]["in_dataset"] / share if share > 0 else math.nan
