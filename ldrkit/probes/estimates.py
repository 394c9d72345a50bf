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


EXACT, ABOVE, BELOW = "exact", "above", "below"  # a censored point: the value, a lower bound, an upper bound


def censored_line_fit(x, y, kinds) -> dict | None:
    """The maximum-likelihood line y = a + b x + N(0, sigma^2) when some y are censored (a Tobit fit): kinds[i] is
    EXACT, ABOVE (y[i] is a lower bound: the event had not happened when the run stopped) or BELOW (an upper bound).
    A run that never reached the event thereby pulls the line up instead of being dropped. With only exact points
    it is ordinary least squares. Returns {"a", "b", "sigma", "cov" (of a, b), "n", "censored"}, or None with fewer
    than two distinct x among the exact points or fewer than three points."""
    from scipy.optimize import minimize
    from scipy.stats import norm

    x, y, kinds = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(kinds)
    exact = kinds == EXACT
    if len(x) < 3 or len(set(x[exact])) < 2:
        return None

    def nll(theta):
        a, b, log_s = theta
        z = (y - a - b * x) / math.exp(log_s)
        return -(np.sum(norm.logpdf(z[exact]) - log_s) + np.sum(norm.logsf(z[kinds == ABOVE]))
                 + np.sum(norm.logcdf(z[kinds == BELOW])))

    b0, a0 = np.polyfit(x[exact], y[exact], 1)
    s0 = max(float(np.std(y[exact] - a0 - b0 * x[exact])), 1e-3)
    best = minimize(nll, [a0, b0, math.log(s0)], method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12,
                                                                             "maxiter": 20000})
    theta = best.x
    hessian = np.zeros((3, 3))
    steps = 1e-4 * np.maximum(1.0, np.abs(theta))
    for i in range(3):
        for j in range(3):
            def shifted(di, dj):
                t = theta.copy()
                t[i] += di * steps[i]
                t[j] += dj * steps[j]
                return nll(t)
            hessian[i, j] = (shifted(1, 1) - shifted(1, -1) - shifted(-1, 1) + shifted(-1, -1)) / (4 * steps[i] * steps[j])
    cov = np.linalg.pinv(hessian)
    return {"a": float(theta[0]), "b": float(theta[1]), "sigma": float(math.exp(theta[2])),
            "cov": cov[:2, :2].tolist(), "n": int(len(x)), "censored": int((~exact).sum())}


def line_prediction(fit: dict, x0: float, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the fitted line at x0 and the prediction interval of a new observation there (the
    parameters' uncertainty and the residual spread)."""
    from scipy.stats import norm

    v = np.array([1.0, x0])
    var = float(v @ np.asarray(fit["cov"]) @ v) + fit["sigma"] ** 2
    half = norm.ppf(0.5 + confidence / 2) * math.sqrt(max(var, 0.0))
    mean = fit["a"] + fit["b"] * x0
    return mean, mean - half, mean + half
