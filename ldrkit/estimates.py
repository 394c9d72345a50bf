"""Standard errors of means, shared by the probes and the analysis layer (numpy only, so any layer may import it)."""
from __future__ import annotations

import math

import numpy as np


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
