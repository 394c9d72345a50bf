"""ldrkit.analysis.hypercube_theory: the hypercube tables and verdicts, and the three-stairs readers and verdicts."""
import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ldrkit.theory import hypercube as H  # noqa: E402
from ldrkit.analysis import hypercube_theory as T  # noqa: E402
from ldrkit.analysis import three_stairs as S  # noqa: E402
from ldrkit.runs.run import Run  # noqa: E402
from ldrkit.spec.selections import analysis_sizes
from ldrkit.spec.stairs import stairs_spec  # noqa: E402
from ldrkit.runs.pipeline import run_stairs  # noqa: E402

torch.set_num_threads(1)


def test_theory_sizes_follow_analysis_sizes():
    small, large = T.theory_sizes(analysis_sizes("smoke")), T.theory_sizes(analysis_sizes("cpu"))
    assert set(small) == set(large)
    assert all(small[k] <= large[k] for k in small)


def test_fourier_rows_parity_and_dyck():
    rows = {r["distribution"]: r for r in T.fourier_rows(
        {"parity": H.parity_support(8), "dyck": H.dyck_support(8), "parity2": H.parity_support(2)})}
    assert rows["parity"]["non-zero coefficients (degree: count)"] == "0: 1, 8: 1"
    assert rows["parity"]["support size"] == 128 and rows["parity"]["Assumption 5.1"]
    assert not rows["dyck"]["Assumption 5.1"] and "1: " in rows["dyck"]["non-zero coefficients (degree: count)"]
    assert not rows["parity2"]["Assumption 5.1"]  # its degree-2 coefficient is the rule itself


def test_plateau_level_rows_are_ordered_and_match_the_exact_gap():
    (row,) = T.plateau_level_rows(ds=(8,), sqrt_alpha_bars=(0.9,), n=1 << 14, seed=0)
    assert row["zero"] > row["best linear"] > row["best univariate"] > row["optimum"] == 0
    # Pythagoras under Assumption 5.1: zero - linear = 1 - abar exactly (Monte Carlo on both sides).
    assert abs(row["zero"] - row["best linear"] - (1 - 0.81)) < 5 * row["se (zero)"]


def _history(ratios, on=1.0):
    """Synthetic invariance rows [step, loss, on_axis, off_axis] with the given off/on ratios."""
    return np.array([[k, 1.0, on, r * on] for k, r in enumerate(ratios)])


def test_invariance_verdict_branches():
    on = _history([0.0, 1e-17, 2e-17])
    assert T.stays_on_m(on) and not T.stays_on_m(_history([0.0, 1e-3]))
    assert T.drawn_toward_m(_history([1e-2, 5e-3])) and not T.drawn_toward_m(_history([1e-2, 2e-2]))
    assert T.invariance_verdict({"on M": on, "off": _history([1e-2, 5e-3])}).startswith("reproduced")
    assert T.invariance_verdict({"on M": on, "off": _history([1e-2, 2e-2])}).startswith("partly")
    assert T.invariance_verdict({"on M": _history([0.0, 1e-3]), "off": _history([1e-2, 5e-3])}).startswith("not")


def test_invariance_runs_theorem_5_2():
    runs = T.invariance_runs(d=8, m=16, steps=150, seed=0)
    assert T.stays_on_m(runs["on M"])  # Theorem 5.2: M is invariant, to rounding error
    assert T.invariance_verdict(runs).startswith("reproduced")
    rows = {r["start"]: r for r in T.invariance_rows(runs)}
    assert float(rows["on M"]["largest off/on"]) < T.ROUNDING_RATIO and rows["on M"]["on-axis growth"] > 1
    assert float(rows["1e-2 off M"]["off/on at end"]) < float(rows["1e-2 off M"]["off/on at start"])
    fig = T.plot_invariance(runs)
    assert len(fig.axes) == 2
    plt.close(fig)


def test_k_comparison_three_ways_agree():
    for row in T.k_comparison_rows(H.parity_support(6), sqrt_alpha_bars=(0.5, 0.9), n=1 << 14, seed=1):
        assert abs(row["Monte Carlo"] - row["exact"]) < 5 * row["MC se"]
        assert abs(row["paper erf"] - row["exact"]) < 5 * row["erf se"]


def test_k_on_axis_is_k_exact_on_the_axis():
    D, sab = 0.7, 0.8
    w = np.zeros(5)
    w[0] = 1 / math.sqrt(1 + D**2)
    assert math.isclose(float(T.k_on_axis(D, sab)), H.k_exact(w, D * w[0], sab, H.parity_support(5)), rel_tol=1e-9)
    fig = T.plot_k_axis(sab, D, show=False)
    assert fig.axes[0].get_lines()
    plt.close(fig)


def _k_row(mc_off=0.0, ascent_off=0.0, on_axis=1.0):
    return {"sqrt_alpha_bar": 0.5, "D_star": 1.0, "K_max_formula": 0.5, "K_max_monte_carlo": 0.5 + mc_off,
            "K_max_monte_carlo_se": 0.01, "K_max_ascent": 0.5 + ascent_off, "bound": 0.8, "on_axis_fraction": on_axis}


def test_theorem_5_3_verdict_branches():
    assert T.theorem_5_3_verdict([_k_row()]).startswith("confirmed")
    assert "Monte Carlo" in T.theorem_5_3_verdict([_k_row(mc_off=0.01 * (T.MC_AGREEMENT_SE + 1))])
    assert "ascent" in T.theorem_5_3_verdict([_k_row(ascent_off=10 * T.ASCENT_TOLERANCE)])
    assert "on-axis" in T.theorem_5_3_verdict([_k_row(on_axis=0.9)])
    (row,) = T.k_table_rows([_k_row()])
    assert row["K_max / bound"] == pytest.approx(0.5 / 0.8)


def test_theorem_5_3_on_a_computed_k_table():
    table = H.k_table(sqrt_alpha_bars=(0.5, 0.9), d=8, n_mc=1 << 13, starts=8, steps=200, seed=0)
    assert T.theorem_5_3_verdict(table).startswith("confirmed")
    for r in T.bound_tightness_rows(table, d=8, points=100, seed=0):
        assert r["all within bound"] and r["max |K| / bound"] <= r["K_max / bound"] + 1e-9  # Lemma A.5, Thm 5.3
    for r in T.small_d_ascent_rows(ds=(3,), sqrt_alpha_bars=(0.9,), starts=8, steps=200):
        assert abs(r["ascent max"] - r["formula"]) < T.ASCENT_TOLERANCE and r["on-axis fraction"] > T.ON_AXIS_MIN


def _fake_stairs_run(path, final_fraction, plateaus=("linear", "univariate")):
    """A stairs Run whose metrics are synthetic: levels, a curve and a final loss at final_fraction x univariate."""
    config = stairs_spec(8, "smoke", 0)
    run = Run(path)
    run.prepare(config)
    levels = {"zero": 0.88, "linear": 0.69, "univariate": 0.14}
    run.write_metrics({"sqrt_alpha_bar": 0.9, "d": 8, "levels": levels, "wall_seconds": 1.0,
                       "loss_curve": [[0, 0.88], [10, 0.69], [20, 0.14]],
                       "weights": [[0, 1, 1], [10, 2, 1], [20, 3, 1]],
                       "plateaus": [{"level": p, "first_step": 0, "last_step": 10, "mean_loss": levels[p]}
                                    for p in plateaus],
                       "final_loss": final_fraction * levels["univariate"]})
    return run


def test_escape_verdict_thresholds(tmp_path):
    cases = {S.ESCAPED_BELOW / 2: "escaped", (S.ESCAPED_BELOW + S.PARTLY_BELOW) / 2: "partly escaped",
             1.0: "stayed on the univariate plateau"}
    for k, (fraction, verdict) in enumerate(cases.items()):
        run = _fake_stairs_run(tmp_path / str(k), fraction)
        assert S.final_fraction(run) == pytest.approx(fraction)
        assert S.escape_verdict(run).startswith(verdict)
    assert S.escape_verdict(_fake_stairs_run(tmp_path / "x", 0.01, ("linear",))) == \
        "did not reach the univariate plateau"
    rows = S.escape_rows({8: run})
    assert rows[0]["final / univariate"] == pytest.approx(1.0)


def test_stairs_readers_and_figures_on_a_short_real_run(tmp_path):
    config = {**stairs_spec(8, "smoke", 0), "width": 16, "batch": 64, "record_every": 5, "snapshots": 4,
              "level_samples": 1 << 12,
              "phases": [{"optimizer": "sgd", "lr": 0.1, "lr_end": 0.1, "steps": 30},
                         {"optimizer": "adam", "lr": 1e-3, "lr_end": 1e-3, "steps": 10}]}
    run = Run(tmp_path / "run")
    run.write_metrics({**run_stairs(config, run, progress=False), "wall_seconds": 1.0})
    rec = S.stairs_record(run)
    assert rec["switch"] == 30 and rec["curve"].shape[1] == 2 and len(rec["smooth"]) == len(rec["curve"])
    fn = S.stairs_functions(run)
    assert {"x1", "target", "univariate", "s_final"} <= set(fn) and len(fn["x1"]) == len(fn["s_final"])
    runs = {8: run}
    assert S.recipe_rows(runs)[0]["phases"].startswith("sgd lr 0.1")
    assert all(r["d"] == 8 for r in S.plateau_rows(runs))
    ratio = S.weight_ratio_rows(runs)[0]
    assert ratio["on/off at the end"] > 0
    final = [r for r in S.function_rows(runs) if r["snapshot"] == "final"][0]
    assert final["step"] == 40 and final["loss vs exact"] > 0
    for plot in (S.plot_stairs_loss, S.plot_stairs_weights, S.plot_stairs_functions):
        plt.close(plot(runs))
    (run.path / "functions.npz").unlink()
    with pytest.raises(FileNotFoundError, match="functions"):
        S.stairs_functions(run)


def test_waiting_fit_recovers_an_exponential_and_power_law_with_censored_runs():
    wobble = {0: 0.9, 1: 1.1}  # two seeds either side of the law
    rows = [{"d": d, "seed": s, "waiting steps": 10 * 3.0**d * wobble[s], "censored at": None, "resolution": 1}
            for d in (3, 4, 5, 6) for s in (0, 1)]
    rows.append({"d": 7, "seed": 0, "waiting steps": None, "censored at": 30000})  # never departed: a lower bound
    rows.append({"d": 2, "seed": 0, "waiting steps": 50, "censored at": None, "resolution": 450})  # an upper bound
    fit = S.waiting_fit(rows)
    assert fit["runs"] == 8 and fit["censored"] == 1 and fit["below_resolution"] == 1
    exp = fit["exponential"]
    assert exp["slope"] == pytest.approx(math.log(3.0), abs=2 * exp["slope_se"]) and exp["slope_se"] < 0.1
    assert exp["predicted_d16_low"] < 10 * 3.0**16 < exp["predicted_d16_high"]
    # the censored d=7 run raises the line: dropping it would fit d = 3-6 only, and its bound 30000 lies above
    # what those runs alone predict at d = 7 (10 * 3^7 = 21870)
    assert exp["intercept"] + 7 * exp["slope"] > math.log(21870)
    power = [{"d": d, "seed": s, "waiting steps": 2.0 * d**4 * wobble[s], "censored at": None, "resolution": 1}
             for d in (3, 4, 6, 8) for s in (0, 1)]
    assert S.waiting_fit(power)["power"]["slope"] == pytest.approx(4.0, abs=0.2)
    fit_rows = S.waiting_fit_rows(fit, lr=0.05)
    assert fit_rows[0]["steps at the paper's step size"] == pytest.approx(exp["predicted_d16"] * 0.05 / S.PAPER_LR)
    assert "exponential" not in S.waiting_fit(rows[:2])  # one d: nothing to fit


def test_tilt_verdict_branches():
    assert S.tilt_verdict(0.02, 0.015) == "local: reads x_1 only"
    assert S.tilt_verdict(0.08, 0.01) == "reads x_1 and its dependent partner x_2 only"
    assert S.tilt_verdict(0.9, 0.5) == "reads the other coordinates too"
