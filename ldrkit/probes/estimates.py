"""Means, standard errors and intervals of the numbers the book reports (numpy and scipy), for every layer above."""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import binomtest


def sem(values) -> float:
    """Standard error of the mean (sample standard deviation / sqrt(n)) of the finite values; NaN for fewer than two."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan


def mean_sem(values) -> tuple[float, float]:
    """The mean of the finite values (NaN when there are none) and its standard error."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return (float(v.mean()) if len(v) else math.nan), sem(v)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a fraction k/n (scipy's `binomtest(...).proportion_ci`)."""
    if n <= 0:
        return (math.nan, math.nan)
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def fraction_interval(fraction: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson interval of a fraction measured on n samples."""
    return wilson(round(fraction * n), n, confidence)


def share(k: int, n: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """k/n with its Wilson interval: (share, low, high); NaNs when n is 0."""
    if n <= 0:
        return math.nan, math.nan, math.nan
    low, high = wilson(k, n, confidence)
    return k / n, low, high


def seed_mean(pairs) -> tuple[float, float]:
    """The mean over seeds of (value, s.e.) pairs, with the larger of two standard errors: the seeds' spread
    (s.d. / sqrt(k)) and the propagated measurement error (sqrt(sum se^2) / k), so that two or three seeds that
    happen to agree are not reported as exact; one seed keeps its own s.e. Non-finite pairs are left out."""
    v = np.array([p[0] for p in pairs], dtype=float)
    s = np.array([p[1] for p in pairs], dtype=float)
    ok = np.isfinite(v) & np.isfinite(s)
    v, s = v[ok], s[ok]
    if not len(v):
        return math.nan, math.nan
    spread = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
    return float(v.mean()), max(spread, float(math.sqrt((s ** 2).sum()) / len(v)))
