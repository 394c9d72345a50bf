"""`bench samples`: the count of noised inputs an LDR level needs for a target standard error."""
import math

import pytest

from ldrkit.bench import samples as B


def test_needed_is_the_smallest_count_whose_standard_error_reaches_the_target():
    for sd, target in ((0.2, 0.01), (0.0846, 0.01), (0.05, 0.02), (1e-4, 0.01)):
        n = B.needed(sd, target)
        assert sd / math.sqrt(n) <= target + 1e-12 and n >= 2
        if n > 2:
            assert sd / math.sqrt(n - 1) > target
    with pytest.raises(ValueError, match="positive"):
        B.needed(0.1, 0.0)


def test_equal_error_speedup_is_the_ratio_of_time_to_a_given_error():
    # exact: sd 0.1 at 1 s per input; estimator: sd 0.2 (probing noise) at 0.1 s: 4x the inputs at a tenth the cost
    assert B.equal_error_speedup(0.1, 1.0, 0.2, 0.1) == pytest.approx(2.5)
    for e in (0.01, 0.001):  # whatever the target error: inputs needed x seconds per input
        exact, estimate = (0.1 / e) ** 2 * 1.0, (0.2 / e) ** 2 * 0.1
        assert exact / estimate == pytest.approx(2.5)
    assert B.equal_error_speedup(0.1, 1.0, 0.0, 0.1) is None


def test_rows_of_a_smoke_run(tmp_path, monkeypatch):
    monkeypatch.setenv("LDRKIT_RUNS", str(tmp_path))
    rows = B.sample_count_rows("parity-mlp-L8", "smoke", 0, n=6, target=0.01)
    levels = {r["level"] for r in rows}
    assert {(r["output"], r["level"]) for r in rows} == {(o, lv) for o in ("eps", "x0") for lv in levels}
    for r in rows:
        assert r["sd"] >= 0 and r["n"] == 6
        assert r["se_at_ldr_samples"] == pytest.approx(r["sd"] / math.sqrt(r["ldr_samples"]))
        assert r["needed"] == B.needed(r["sd"], 0.01)
    for r in rows:  # the exact rows against the estimator on the same inputs
        assert r["exact"]["seconds_per_input"] > 0 and set(r["estimate"]) == {str(k) for k in B.ESTIMATOR_PROBES}
        for e in r["estimate"].values():
            assert e["needed"] == B.needed(e["sd"], 0.01)
            assert e["speedup_at_equal_error"] == pytest.approx(B.equal_error_speedup(
                r["exact"]["sd"], r["exact"]["seconds_per_input"], e["sd"], e["seconds_per_input"]))
    text = B.format_table(rows)
    assert text.count("\n") == len(rows) + 1 and "parity-mlp-L8" in text and "K=8 × at equal error" in text
    with pytest.raises(ValueError, match="at least 2"):
        B.sample_count_rows("parity-mlp-L8", "smoke", 0, n=1)
