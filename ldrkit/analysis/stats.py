"""Intervals and standard errors for the numbers the book reports (scipy does the statistics)."""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import binomtest


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a fraction k/n (scipy's `binomtest(...).proportion_ci`)."""
    if n <= 0:
        return (math.nan, math.nan)
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def fraction_interval(fraction: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson interval of a fraction measured on n samples."""
    return wilson(round(fraction * n), n, confidence)


def sem(values) -> float:
    """Standard error of the mean (sample standard deviation / sqrt(n)); NaN for fewer than two values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan


def mean_sem(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return (float(v.mean()) if len(v) else math.nan), sem(v)
