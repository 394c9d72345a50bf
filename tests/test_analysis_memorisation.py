"""The second act's measures: the onset step, the onset-vs-size fit, memorisation with its interval."""
import math

import pytest

from ldrkit.analysis import second_act as mem


def _ev(step, in_dataset, invalid=0.0, hallucination=0.0):
    return {"step": step, "categories": {"invalid": invalid, "in_dataset": in_dataset, "hallucination": hallucination,
                                         "extrapolation": 1 - invalid - in_dataset - hallucination}}


def test_onset_interpolates_between_the_bracketing_evaluations():
    evs = [_ev(0, 0.0, invalid=1.0), _ev(100, 0.2, invalid=0.8), _ev(200, 0.6, invalid=0.4), _ev(300, 0.9)]
    assert mem.onset_step(evs) == pytest.approx(175.0)  # 0.5 is 3/4 of the way from 0.2 to 0.6
    assert mem.onset_step(evs, share=0.9) == pytest.approx(300.0)
    assert mem.onset_step(evs[:2]) is None
    assert mem.onset_step([_ev(0, 0.7)]) == 0.0
    assert mem.before_onset(evs)["step"] == 100  # the last evaluation before the crossing at 175
    assert mem.before_onset(evs[:2])["step"] == 100  # never reached: the first evaluation after step 0


def test_fit_recovers_a_power_law_and_needs_three_sizes():
    rows = [{"training size": n, "onset step": 30.0 * n ** 0.8, "reached": 1} for n in (4, 8, 16, 32)]
    fit = mem.fit_onset(rows)
    assert fit["exponent"] == pytest.approx(0.8) and fit["a"] == pytest.approx(30.0)
    assert fit["span"] == 8 and fit["exponent se"] == pytest.approx(0.0, abs=1e-9)
    assert mem.predict_onset(fit, 470) == pytest.approx(30.0 * 470 ** 0.8)
    assert mem.fit_onset(rows[:2]) is None
    assert mem.fit_onset(rows[:2] + [{"training size": 64, "onset step": math.nan, "reached": 0}]) is None


class _Run:
    def __init__(self, n, **categories):
        self.final = {"n": n, "categories": categories}
        self.config = {"eval": {"num_samples": n}}


def test_memorises_needs_the_interval_above_one_half():
    strong = _Run(256, invalid=0.0, in_dataset=0.7, hallucination=0.25, extrapolation=0.05)
    weak = _Run(256, invalid=0.0, in_dataset=0.53, hallucination=0.45, extrapolation=0.02)
    assert mem.memorises([strong]) and not mem.memorises([weak])
    share, low, high = mem.share_of_legible([strong, strong], "hallucination")
    assert share == pytest.approx(0.25, abs=0.003) and low < 0.25 < high
    assert math.isnan(mem.share_of_legible([_Run(64, invalid=1.0, in_dataset=0.0, hallucination=0.0,
                                                 extrapolation=0.0)], "in_dataset")[0])


def test_hallucination_peak_ignores_evaluations_with_few_legible_samples():
    evs = [_ev(0, 0.0, invalid=1.0), _ev(100, 0.0, invalid=0.98, hallucination=0.02),
           _ev(200, 0.1, invalid=0.5, hallucination=0.3), _ev(300, 0.8, invalid=0.1, hallucination=0.1)]
    peak = mem.hallucination_peak(evs, n=100)
    assert peak["step"] == 200 and peak["share"] == pytest.approx(0.6) and peak["low"] < 0.6 < peak["high"]
    assert math.isnan(mem.hallucination_peak(evs[:2], n=100)["share"])
