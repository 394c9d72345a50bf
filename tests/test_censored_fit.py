"""The censored line fit: it is least squares on exact points, and it recovers a known line where dropping the
runs that never reached the event would bias it."""
import math

import numpy as np
import pytest

from ldrkit.probes.estimates import ABOVE, EXACT, censored_line_fit, line_prediction


def test_exact_points_give_least_squares():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([2.1, 3.9, 6.2, 7.8])
    fit = censored_line_fit(x, y, [EXACT] * 4)
    b, a = np.polyfit(x, y, 1)
    assert fit["a"] == pytest.approx(a, abs=1e-4) and fit["b"] == pytest.approx(b, abs=1e-4)
    resid = y - a - b * x
    assert fit["sigma"] == pytest.approx(math.sqrt(np.mean(resid ** 2)), rel=1e-3)  # the ML spread (divides by n)


def test_censored_points_pull_the_line_where_dropping_them_biases_it():
    rng = np.random.default_rng(0)
    x = np.repeat(np.arange(1.0, 9.0), 8)
    y = 1.0 + 0.8 * x + rng.normal(0, 1.0, len(x))
    stop = 5.0  # the runs stopped here: every larger value is only known to lie above it (29 of 64)
    kinds = np.where(y > stop, ABOVE, EXACT)
    seen = np.minimum(y, stop)
    fit = censored_line_fit(x, seen, kinds)
    dropped = np.polyfit(x[kinds == EXACT], y[kinds == EXACT], 1)[0]
    se = math.sqrt(fit["cov"][1][1])
    assert abs(fit["b"] - 0.8) < 3 * se and se < 0.1 and fit["censored"] == 29  # the truth, within its error
    assert dropped < 0.8 - 1.5 * se and dropped < fit["b"] - 0.15  # the negative case: dropping the censored runs
    mean, low, high = line_prediction(fit, 12.0)
    assert low < 1.0 + 0.8 * 12.0 < high and high - low > 2 * 1.96 * 0.7


def test_too_few_points_give_no_fit():
    assert censored_line_fit([1, 2], [1, 2], [EXACT, EXACT]) is None
    assert censored_line_fit([1, 1, 2], [1, 2, 3], [EXACT, EXACT, ABOVE]) is None
