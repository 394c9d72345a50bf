"""The remedies chapter's arithmetic and verdicts (ldrkit.analysis.fixing_it) on synthetic records at the thresholds."""
import math

import pytest

from ldrkit.analysis import fixing_it as R
from ldrkit.analysis.phases import chance_breaking


def final(hall, invalid, in_dataset, extrapolation, n=1000):
    assert math.isclose(hall + invalid + in_dataset + extrapolation, 1.0)
    return {"categories": {"hallucination": hall, "invalid": invalid, "in_dataset": in_dataset,
                           "extrapolation": extrapolation}, "n": n, "symbols": None, "step": 1}


def test_arm_row_means_over_seeds_and_pools_counts():
    row = R.arm_row("a", [final(0.4, 0.2, 0.3, 0.1), final(0.2, 0.2, 0.5, 0.1)])
    assert row["hallucination_share"] == pytest.approx((0.5 + 0.25) / 2)
    assert row["hallucination_share_se"] == pytest.approx(0.125)  # sd of (0.5, 0.25) / sqrt(2)
    assert row["hallucination_share_counts"] == (600, 1600)
    low, high = row["hallucination_share_ci"]
    assert low < 600 / 1600 < high
    assert row["extrapolation_share_counts"] == (200, 1000)


def test_halving_needs_half_the_share_and_invalid_below_the_bar():
    base = R.arm_row("b", [final(1.0, 0.0, 0.0, 0.0)])              # share 1.0
    exactly_half = R.arm_row("r", [final(0.5, 0.0, 0.5, 0.0)])      # share 0.5
    just_over = R.arm_row("r", [final(0.51, 0.0, 0.49, 0.0)])
    at_the_bar = R.arm_row("r", [final(0.4, 0.2, 0.4, 0.0)])        # share 0.5 but invalid not below 0.2
    assert R.halves(base, exactly_half)
    assert not R.halves(base, just_over)
    assert not R.halves(base, at_the_bar)


def test_generalisation_verdict_reads_the_extrapolation_interval():
    heldout = 0.3
    learner = R.arm_row("g", [final(0.0, 0.0, 0.7, 0.3)])           # share of valid 0.3, n=1000
    memoriser = R.arm_row("m", [final(0.0, 0.0, 1.0, 0.0)])
    between = R.arm_row("p", [final(0.0, 0.0, 0.9, 0.1)])
    assert R.generalisation(learner, heldout) == "generalises"
    assert R.generalisation(memoriser, heldout) == "memorises"
    assert R.generalisation(between, heldout) == "partly"
    assert R.generalisation(R.arm_row("x", [final(0.0, 1.0, 0.0, 0.0)]), heldout) == "no valid samples"


def test_comparison_marks_the_baseline_and_the_summary_names_every_arm():
    rows = R.comparison({"baseline": [final(0.8, 0.2, 0.0, 0.0)], "remedy": [final(0.05, 0.1, 0.6, 0.25)]}, 0.3)
    assert rows[0]["halves_baseline"] == "—" and rows[1]["halves_baseline"] == "yes"
    text = R.summary(rows, 0.3, "G")
    assert "*remedy*" in text and "halves it" in text
    assert [r["arm"] for r in R.display_rows(rows)] == ["baseline", "remedy"]


def test_a_model_at_chance_is_not_credited_with_extrapolating():
    at_chance = R.arm_row("c", [final(0.9, 0.0, 0.07, 0.03)])        # valid hits at chance, 30% of them held out
    assert R.generalisation(at_chance, 0.3) == "generalises"           # without the chance level
    assert R.generalisation(at_chance, 0.3, chance=0.93) == "at chance"
    follows = R.arm_row("f", [final(0.1, 0.0, 0.63, 0.27)])
    assert R.generalisation(follows, 0.3, chance=0.93) == "generalises"
    # parity, chance 0.5: 0.45 of 250 legible broken, interval [0.39, 0.51] reaches 0.8 x 0.5 = 0.4: not shown to
    # follow the rule, so its held-out valid samples are not credited as extrapolation
    near = R.arm_row("n", [final(0.45, 0.0, 0.03, 0.52, n=250)])
    assert near["hallucination_share_ci"][0] < R.AT_CHANCE * 0.5 <= near["hallucination_share_ci"][1]
    assert R.generalisation(near, 0.95, chance=0.5) == "at chance"


def test_chance_breaking_is_one_half_for_parity_with_uniform_marginals():
    from types import SimpleNamespace

    from ldrkit.systems.grammars import Parity
    g = Parity(6)
    valid = g.enumerate()
    run = SimpleNamespace(setup=SimpleNamespace(grammar=g, split=SimpleNamespace(train=valid)))
    assert chance_breaking(run) == pytest.approx(0.5)
    biased = valid[valid[:, 0] == 1]                                  # first symbol always +1: the rest uniform
    run.setup.split.train = biased
    assert chance_breaking(run) == pytest.approx(0.5)


def test_a_one_seed_arm_shows_its_mean_without_a_standard_error_and_says_so():
    rows = R.comparison({"baseline": [final(0.4, 0.2, 0.3, 0.1), final(0.44, 0.2, 0.26, 0.1)],
                         "control": [final(0.45, 0.1, 0.35, 0.1)]}, heldout=0.3)
    assert R.display_rows(rows)[1]["hallucination / legible"] == "0.500"   # 0.45 / 0.9, no "± nan"
    text = R.summary(rows, 0.3, "g")
    assert "nan" not in text and "0.500 (invalid 0.100; 1 seed)" in text


def test_compare_reads_heldout_and_chance_from_the_first_symbol_run(monkeypatch):
    runs = {"baseline": ["b0"], "symbols": ["s0", "s1"]}
    arms = {"baseline": [final(0.8, 0.2, 0.0, 0.0)], "remedy": [final(0.05, 0.1, 0.6, 0.25)]}
    asked = []
    monkeypatch.setattr(R, "load_arms",
                        lambda pair, profile, seeds: asked.append((pair, profile, seeds)) or (arms, runs))
    monkeypatch.setattr(R, "heldout_share", lambda run: {"s0": 0.3}[run])
    monkeypatch.setattr(R, "chance_breaking", lambda run: {"s0": 0.9}[run])
    c = R.compare(R.QUARTER, "smoke", [0, 1])
    assert asked == [(R.QUARTER, "smoke", [0, 1])]
    assert (c.arms, c.runs, c.heldout, c.chance) == (arms, runs, 0.3, 0.9)
    assert c.rows == R.comparison(arms, 0.3, 0.9)
    arms_, runs_, heldout, chance, rows = c                              # unpacks in field order
    assert rows[1]["halves_baseline"] == "yes" and heldout == 0.3


def test_last_gallery_shows_the_last_stored_samples(monkeypatch):
    class Stored:
        def sample_steps(self):
            return [10, 20, 30]
    monkeypatch.setattr(R, "gallery", lambda run, step, label: (step, label))
    assert R.last_gallery(Stored(), "baseline") == (30, "baseline")


def test_prose_values_read_the_arms_the_prose_names():
    base, remedy = final(0.8, 0.2, 0.0, 0.0), final(0.05, 0.1, 0.6, 0.25)
    rows = R.comparison({"baseline": [base], "symbols": [remedy]}, 0.3)
    quarter = R.Comparison({}, {}, 0.30012, 0.92549, rows)
    ema_rows = R.comparison({"baseline": [base], "baseline (EMA)": [final(0.3, 0.4, 0.3, 0.0)],
                             "symbols, autoregressive prior (EMA)": [final(0.0, 0.07, 0.63, 0.3)]}, 0.3)
    faithful = {**remedy, "symbols": {"faithful": 0.97, "prior_valid": 0.51}}
    parens = R.comparison({"baseline": [base], "symbols": [faithful]}, 0.3)
    v = R.prose_values(quarter, ema_rows, parens)
    assert (v["heldout_share"], v["chance_quarter"]) == (0.3, 0.925)
    assert v["symbols_invalid"] == "0.10" and v["symbols_ema_invalid"] == "0.07"
    assert v["baseline_ema_share"] == "0.50"                               # 0.3 of the 0.6 legible
    assert (v["parens_faithful"], v["parens_prior_valid"]) == ("0.97", "0.51")
    assert v["halves_at"] == R.HALVES and v["at_chance"] == R.AT_CHANCE
