"""ldrkit.analysis.kappa_control: the partial correlation that separates learning the rule from training time."""
import numpy as np
import pytest
from scipy import stats

from ldrkit.analysis import kappa_control as T


def rows_from(kappa, rule, steps, seeds):
    return [{"seed": s, "step": int(t), "kappa": float(k), "se": 0.01, "rule": float(r)}
            for k, r, t, s in zip(kappa, rule, steps, seeds)]


def grid(n_seeds=5, steps=(100, 200, 400, 800, 1600, 3200)):
    steps_col = np.repeat(np.array(steps), n_seeds)
    seeds_col = np.tile(np.arange(n_seeds), len(steps))
    return steps_col, seeds_col


def test_a_measure_driven_by_training_time_alone_is_not_credited_with_the_rule():
    rng = np.random.default_rng(0)
    steps, seeds = grid()
    trend = np.log(steps)
    kappa = 0.1 * trend + 0.02 * rng.standard_normal(len(steps))   # moves with time
    rule = 0.1 * trend + 0.02 * rng.standard_normal(len(steps))    # so does learning, independently of kappa
    result = T.control(rows_from(kappa, rule, steps, seeds))
    assert result["raw"]["r"] > 0.8 and result["raw"]["p"] < 0.05
    assert result["partial"]["low"] < 0 < result["partial"]["high"]
    assert T.verdict(result) == "tracks training time only"


def test_a_measure_that_follows_each_seeds_learning_at_fixed_step_tracks_the_rule():
    rng = np.random.default_rng(1)
    steps, seeds = grid()
    rule = 0.1 * np.log(steps) + 0.05 * rng.standard_normal(len(steps))
    kappa = 2.0 * rule + 0.01 * rng.standard_normal(len(steps))
    result = T.control(rows_from(kappa, rule, steps, seeds))
    assert result["partial"]["r"] > 0.9 and result["partial"]["low"] > 0
    assert T.verdict(result) == "tracks the rule"


def test_the_partial_correlation_equals_the_regression_on_step_dummies():
    rng = np.random.default_rng(2)
    steps, seeds = grid(n_seeds=3, steps=(1, 2, 3, 4))
    kappa, rule = rng.standard_normal(len(steps)), rng.standard_normal(len(steps))
    result = T.control(rows_from(kappa, rule, steps, seeds))["partial"]
    dummies = (steps[:, None] == np.unique(steps)).astype(float)

    def residual(y):
        return y - dummies @ np.linalg.lstsq(dummies, y, rcond=None)[0]
    r = np.corrcoef(residual(kappa), residual(rule))[0, 1]
    assert result["r"] == pytest.approx(r)
    df = len(steps) - 4 - 1                         # n - (4 step means) - 1
    t = r * np.sqrt(df / (1 - r * r))
    assert result["p"] == pytest.approx(2 * stats.t.sf(abs(t), df))


def test_rule_following_is_the_valid_share_of_legible_samples():
    c = {"invalid": 0.2, "hallucination": 0.4, "in_dataset": 0.3, "extrapolation": 0.1}
    assert T.rule_following(c) == pytest.approx(0.5)
    assert np.isnan(T.rule_following({"invalid": 1.0, "hallucination": 0, "in_dataset": 0, "extrapolation": 0}))
    assert T.verdict(T.control([])) == "not measured"


class FakeRun:
    def __init__(self, evaluations):
        self.evaluations, self.path = evaluations, "fake"


def test_rows_and_level_come_from_the_recorded_evaluations():
    cats = {"invalid": 0.0, "hallucination": 0.5, "in_dataset": 0.5, "extrapolation": 0.0}

    def ev(step, k7, s7, k9, s9):
        return {"step": step, "categories": cats, "coupling": {"0.7": {"value": k7, "se": 0.1, "signal": s7},
                                                                "0.9": {"value": k9, "se": 0.1, "signal": s9}}}
    run = FakeRun([ev(0, None, 0.0, None, 0.0), ev(10, 0.2, 0.05, None, 1e-5), ev(20, 0.3, 0.04, 0.1, 0.002)])
    assert T.clearest_level({0: run}) == "0.7"
    rows = T.kappa_rows({0: run}, "0.9")
    assert [(r["step"], r["kappa"], r["rule"]) for r in rows] == [(20, 0.1, 0.5)]
    with pytest.raises(ValueError, match="coupling"):
        T.kappa_rows({0: FakeRun([{"step": 0, "categories": cats}])}, "0.7")


def test_plot_control_draws_one_series_per_seed():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps, seeds = grid(n_seeds=2, steps=(1, 2, 3))
    rows = rows_from(np.linspace(0, 1, 6), np.linspace(0, 1, 6), steps, seeds)
    fig, (a, b) = plt.subplots(1, 2)
    T.plot_control(rows, "0.7", a, b)
    assert len(b.lines) == 2 and len(a.containers) == 2
    plt.close(fig)


def test_rule_span_is_the_seed_mean_at_the_first_and_last_step():
    rows = [{"seed": s, "step": step, "rule": rule} for s, offset in ((0, 0.0), (1, 0.1))
            for step, rule in ((1000, 0.5 + offset), (5000, 0.7 + offset), (9000, 0.8 + offset))]
    assert T.rule_span(rows) == pytest.approx((0.55, 0.85))
    assert all(np.isnan(v) for v in T.rule_span([]))


def cross_rows_from(kappa_never, kappa_learner, rule_learner, steps):
    rows = [{"grammar": "parity", "seed": 0, "step": int(t), "kappa": float(k), "se": 0.01, "rule": 0.5,
             "above chance": 0.0} for k, t in zip(kappa_never, steps)]
    rows += [{"grammar": "dyck", "seed": 0, "step": int(t), "kappa": float(k), "se": 0.01, "rule": float(r),
              "above chance": float(r)} for k, r, t in zip(kappa_learner, rule_learner, steps)]
    return rows


def test_the_negative_control_catches_a_measure_of_training_time():
    rng = np.random.default_rng(3)
    steps = np.arange(1, 9) * 750
    time_driven = 0.05 * np.log(steps)
    result = T.cross_grammar(cross_rows_from(time_driven + 0.005 * rng.standard_normal(8),
                                             time_driven + 0.005 * rng.standard_normal(8),
                                             0.1 * np.log(steps), steps), never="parity", learner="dyck")
    assert result["trend"]["parity"]["r"] > 0.9 and result["trend"]["parity"]["p"] < 0.05
    assert T.cross_verdict(result) == "tracks training time"
    assert result["trend"]["parity"]["last"]["kappa"] > result["trend"]["parity"]["first"]["kappa"]


def test_the_negative_control_credits_a_measure_flat_where_nothing_is_learned():
    rng = np.random.default_rng(4)
    steps = np.arange(1, 9) * 750
    rule = np.array([0.0, 0.05, 0.02, 0.2, 0.15, 0.3, 0.28, 0.4])   # learning, not monotone in the step
    result = T.cross_grammar(cross_rows_from(0.01 * rng.standard_normal(8), 0.5 * rule + 0.005 * rng.standard_normal(8),
                                             rule, steps), never="parity", learner="dyck")
    assert result["trend"]["parity"]["p"] > 0.05
    assert result["learner_rule"]["r"] > 0.9
    assert T.cross_verdict(result) == "tracks the rule"
    assert [r["correlation"].split(":")[0] for r in T.cross_rows(result)] == ["parity", "dyck", "dyck", "dyck", "both"]
    assert T.cross_verdict(T.cross_grammar([], never="parity", learner="dyck")) == "not measured"


def test_rule_following_above_chance_puts_independent_symbols_at_zero(monkeypatch):
    assert T.above_chance(0.5, 0.5) == 0.0 and T.above_chance(1.0, 0.3) == pytest.approx(1.0)
    cats = {"invalid": 0.2, "hallucination": 0.4, "in_dataset": 0.3, "extrapolation": 0.1}   # rule-following 0.5
    run = FakeRun([{"step": 750, "categories": cats, "coupling": {"0.7": {"value": 0.1, "se": 0.02, "signal": 0.01}}}])
    monkeypatch.setattr(T, "chance_breaking", lambda r: 0.75)                               # chance valid 0.25
    (row,) = T.grammar_rows({"dyck": {0: run}}, "0.7")
    assert row["grammar"] == "dyck" and row["above chance"] == pytest.approx((0.5 - 0.25) / 0.75)


def test_a_trend_of_a_thousandth_of_the_learners_rise_is_not_training_time():
    steps = np.arange(1, 9) * 750
    rule = 0.05 * np.log(steps)
    tiny = 1e-4 * np.log(steps)                                       # significant, but 1/500 of the learner's rise
    result = T.cross_grammar(cross_rows_from(tiny, rule + 0.001 * np.cos(steps), rule, steps), never="parity",
                             learner="dyck")
    assert result["trend"]["parity"]["p"] < 0.05 and result["trend"]["parity"]["rise"] > 0
    assert result["trend"]["parity"]["rise"] < T.TIME_SHARE * result["trend"]["dyck"]["rise"]
    assert T.cross_verdict(result) == "tracks the rule"


def test_oracle_references_read_the_calibration_at_the_level_and_skip_the_inseparable():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cal = {"kappa": {"memoriser": {"0.7": {"value": 0.25, "se": 0.2}}, "linear": {"0.7": {"value": None, "se": None}}}}
    refs = T.oracle_references({"dyck": cal}, "0.7")
    assert refs == {"dyck": {"memoriser": (0.25, 0.2)}}
    assert T.reference_rows(refs) == [{"grammar": "dyck", "memoriser": "0.250 ± 0.200"}]
    steps = np.arange(1, 4) * 750
    fig, (a, b) = plt.subplots(1, 2)
    T.plot_cross(cross_rows_from(np.zeros(3), np.ones(3), np.ones(3), steps), "0.7", a, b, references=refs)
    assert 0.25 in [line.get_ydata()[0] for line in a.lines]
    plt.close(fig)


def test_the_store_gives_every_kappa_control_seed_the_oracles_chapter_reads():
    """The oracles chapter reads both negative controls (DiTs, UNets) at cpu from the store, never trains them."""
    from stored import assert_stored
    from ldrkit.spec.selections import DIT_KAPPA, UNET_KAPPA, analysis_sizes
    sizes = analysis_sizes("cpu")
    for name in DIT_KAPPA.values():
        for seed in sizes["dit_kappa_seeds"]:
            assert_stored(name, seed)
    for name in UNET_KAPPA.values():
        for seed in sizes["unet_kappa_seeds"]:
            assert_stored(name, seed)


def test_seed_runs_asks_for_every_experiment_at_every_seed(monkeypatch):
    monkeypatch.setattr(T, "get_run", lambda name, profile, seed, progress: (name, profile, seed))
    runs = T.seed_runs({"parity": "p-kappa", "dyck": "d-kappa"}, "smoke", [0, 2])
    assert runs == {"parity": {0: ("p-kappa", "smoke", 0), 2: ("p-kappa", "smoke", 2)},
                    "dyck": {0: ("d-kappa", "smoke", 0), 2: ("d-kappa", "smoke", 2)}}


class ConfigRun:
    config = {"eval": {"coupling_samples": 7}}


def test_the_values_the_prose_cites_come_from_the_control_and_its_runs():
    steps, seeds = grid(n_seeds=3, steps=(100, 200))
    rows = rows_from(np.linspace(0, 1, 6), [0.5, 0.6, 0.7, 0.8, 0.9, 1.0], steps, seeds)
    result = T.control(rows)
    values = T.control_values({0: ConfigRun(), 1: ConfigRun(), 2: ConfigRun()}, rows, result, "0.7")
    assert values["control_inputs"] == 7 and values["control_seeds"] == "0, 1, 2" and values["control_level"] == "0.7"
    assert values["control_rule_first"] == "0.60" and values["control_rule_last"] == "0.90"   # seed means per step
    assert values["control_verdict"] == T.verdict(result)
    assert values["control_fixed_interval"] == f"[{result['partial']['low']:.2f}, {result['partial']['high']:.2f}]"
    assert T.control_values({0: ConfigRun()}, [], T.control([]), None)["control_level"] == "none"


def test_the_negative_controls_values_carry_their_prefix_and_each_runs_rise():
    steps = np.arange(1, 9) * 750
    rows = cross_rows_from(0.05 * np.log(steps), 0.05 * np.log(steps), 0.1 * np.log(steps), steps)
    result = T.cross_grammar(rows, never="parity", learner="dyck")
    runs = {"parity": {0: ConfigRun()}, "dyck": {0: ConfigRun()}}
    values = T.cross_values("unet", runs, rows, result, "0.7")
    assert all(k.startswith("unet_") for k in values)
    assert values["unet_verdict"] == "tracks training time" and values["unet_evaluations"] == 16
    assert values["unet_rise_never"] == f"{result['trend']['parity']['rise']:.3g}"
    assert float(values["unet_rise_never"]) == pytest.approx(0.05 * np.log(8), rel=1e-3)
    assert values["unet_rule_last_learner"] == f"{0.1 * np.log(6000):.2f}"
    assert values["unet_inputs"] == 7 and values["unet_level"] == "0.7" and values["unet_seeds"] == "0"


def test_the_control_plots_make_their_own_two_panel_figure_without_axes():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps, seeds = grid(n_seeds=2, steps=(1, 2, 3))
    fig = T.plot_control(rows_from(np.linspace(0, 1, 6), np.linspace(0, 1, 6), steps, seeds), "0.7")
    assert len(fig.axes) == 2 and list(fig.get_size_inches()) == [9, 3.4] and len(fig.axes[1].lines) == 2
    cross = T.plot_cross(cross_rows_from(np.zeros(3), np.ones(3), np.ones(3), np.arange(1, 4) * 750), "0.7")
    assert len(cross.axes) == 2 and cross.axes[1].get_title() == "rule-following above chance"
    _, (a, b) = plt.subplots(1, 2)
    assert T.plot_control(rows_from(np.zeros(6), np.zeros(6), steps, seeds), "0.7", a, b) is None
    plt.close("all")
