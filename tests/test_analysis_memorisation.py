"""The second act's measures: the onset step, the onset-vs-size fit, memorisation with its interval."""
import math

import pytest

from ldrkit.analysis import second_act as mem


def _ev(step, in_dataset, invalid=0.0, hallucination=0.0):
    return {"step": step, "categories": {"invalid": invalid, "in_dataset": in_dataset, "hallucination": hallucination,
                                         "extrapolation": 1 - invalid - in_dataset - hallucination}}


def test_onset_is_read_among_legible_samples_and_interpolated():
    evs = [_ev(0, 0.0, invalid=1.0), _ev(100, 0.1, invalid=0.8), _ev(200, 0.3, invalid=0.4), _ev(300, 0.9)]
    # step 100: 20% legible, not read (0); step 200: 0.3 of 0.6 legible = 0.5 exactly: the onset is step 200
    assert mem.onset_step(evs) == pytest.approx(200.0)
    assert mem.onset_step(evs, share=0.7) == pytest.approx(200 + 100 * (0.7 - 0.5) / (0.9 - 0.5))
    assert mem.onset_step(evs[:2]) is None
    assert mem.onset_step([_ev(0, 0.7)]) == 0.0
    # counted among all samples the onset would wait for 0.5 of everything (step 250): the legible count is the book's
    assert mem.before_onset(evs)["step"] == 100  # the last evaluation before the crossing
    assert mem.before_onset(evs[:2])["step"] == 100  # never reached: the first evaluation after step 0


def _row(n, onsets, last=1000):
    return {"training size": n, "onsets": onsets, "last steps": [last] * len(onsets)}


def test_fit_recovers_a_power_law_and_keeps_censored_runs():
    rows = [_row(n, [30.0 * n ** 0.8] * 2) for n in (4, 8, 16, 32)]
    fit = mem.fit_onset(rows)
    assert fit["exponent"] == pytest.approx(0.8, abs=1e-4) and fit["a"] == pytest.approx(30.0, rel=1e-3)
    assert fit["span"] == 8 and fit["censored"] == 0
    assert float(mem.predict_onset(fit, 470)) == pytest.approx(30.0 * 470 ** 0.8, rel=1e-3)
    assert mem.fit_onset(rows[:2]) is None
    # a size whose runs never memorised within their 1000 steps is a lower bound, not dropped: it pulls the slope up
    noisy = [_row(n, [30.0 * n ** 0.8 * f for f in (0.8, 1.25)]) for n in (4, 8, 16)]
    without = mem.fit_onset(noisy)
    with_censored = mem.fit_onset(noisy + [_row(64, [None, None], last=1000)])
    assert with_censored["censored"] == 2 and with_censored["exponent"] > without["exponent"] + 0.05
    onset, low, high = mem.onset_interval(with_censored, 64)
    assert low < onset < high and onset > 1000


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


class _EvRun:
    def __init__(self, evaluations):
        self.evaluations, self.final = evaluations, evaluations[-1]


def test_a_prediction_hits_misses_or_cannot_tell():
    prediction = {"model": "m", "training size": 128, "predicted onset": 1000.0, "low": 500.0, "high": 2000.0}
    reached = lambda step: _EvRun([_ev(0, 0.0, invalid=1.0), _ev(step - 1, 0.0), _ev(step, 1.0)])
    assert mem.prediction_outcome(prediction, [reached(800), reached(1500)])["outcome"] == "hit"
    assert mem.prediction_outcome(prediction, [reached(800), reached(3000)])["outcome"] == "miss"
    never = lambda last: _EvRun([_ev(0, 0.0, invalid=1.0), _ev(last, 0.1)])
    assert mem.prediction_outcome(prediction, [never(2500)])["outcome"] == "miss"      # ran past the interval
    assert mem.prediction_outcome(prediction, [never(1500)])["outcome"] == "censored"  # stopped inside it
    assert mem.prediction_outcome(prediction, [never(400)])["outcome"] == "hit"        # stopped before it, as said
    assert mem.prediction_outcome(prediction, [reached(800)])["onsets"] == [800]


def test_held_out_rows_score_the_committed_predictions_on_the_runs_that_exist(monkeypatch):
    record = {"made_at": "2026-12-07T01:00:00Z", "code": {"commit": "abcdef1234", "dirty": False}, "profile": "cpu",
              "predictions": [{"model": "m", "training size": n, "experiment": f"e{n}", "steps": 3000,
                               "predicted onset": 1000.0, "low": 500.0, "high": 2000.0} for n in (128, 470)]}
    reached = _EvRun([_ev(0, 0.0, invalid=1.0), _ev(2999, 0.0), _ev(3000, 1.0)])  # memorises after the interval
    monkeypatch.setattr(mem, "existing_run", lambda name, profile, seed: reached if name == "e128" else None)
    rows = mem.held_out_rows("cpu", [0, 1], record)
    assert [r["outcome"] for r in rows] == ["miss", "not run yet"] and rows[0]["seeds"] == 2
    assert mem.held_out_sentence(record, rows).endswith("of 1 tested, 0 hit, 1 missed and 0 could not tell "
                                                        "(a seed stopped inside the interval without memorising)")
    assert [r["outcome"] for r in mem.held_out_rows("smoke", [0], record)] == ["predicted for the cpu profile"] * 2
    assert "no held-out run has been trained yet" in mem.held_out_sentence(record, mem.held_out_rows("smoke", [0], record))
    shown = mem.held_out_display(rows)
    assert shown[0]["predicted onset (95% interval)"] == "1,000 [500, 2,000]" and shown[0]["measured onsets"] == "3,000, 3,000"
    with pytest.raises(FileNotFoundError, match="predict_second_act.py"):
        mem.load_predictions("/nonexistent/predictions.json")


def test_predictions_come_from_the_fit_with_their_interval():
    rows = [_row(n, [30.0 * n ** 0.8 * f for f in (0.8, 1.25)]) for n in (4, 8, 16, 32)]
    fit = mem.fit_onset(rows)
    [p] = mem.predictions({"Quarter UNet": fit}, {"Quarter UNet": {128: "quarter-digits-unet-n128"}}, "cpu")
    assert p["low"] < 30.0 * 128 ** 0.8 < p["high"] and p["steps"] == 3600 and p["fit"]["sizes"] == [4, 8, 16, 32]
    [none] = mem.predictions({}, {"Quarter UNet": {128: "quarter-digits-unet-n128"}}, "cpu")
    assert math.isnan(none["predicted onset"]) and none["fit"] is None


class _Sized:
    def __init__(self, n):
        self.n = n


def test_checked_runs_take_the_largest_headline_and_residual_sizes_then_the_first_acts(monkeypatch):
    sweeps = {"S": {4: [_Sized(4)], 8: [_Sized(8)], 16: [_Sized(16)], 32: [_Sized(32)]}, "T": {2: [_Sized(2)]}}
    rows = [{"model": "S", "training size": 8, "memorises": True}, {"model": "S", "training size": 16,
                                                                    "memorises": False}]
    monkeypatch.setattr(mem, "get_run", lambda name, profile, seed, progress: (name, profile, seed))
    sizes = {"headline": {"S": [4, 64]}, "first_act_checked": {"first act": "x"}}
    checked = mem.checked_runs(sweeps, rows, sizes, "smoke")
    assert list(checked) == ["S, n = 4", "S, n = 8", "S, n = 32", "T, n = 2", "first act"]   # 64: not in the sweep
    assert checked["S, n = 8"][0].n == 8 and checked["first act"] == [("x", "smoke", 0)]


def test_retrained_parity_values_read_the_first_seed_and_the_stored_run(monkeypatch):
    seeds = [_Run(64, invalid=0.0, in_dataset=0.812, hallucination=0.188, extrapolation=0.0)]
    stored = _Run(64, invalid=0.0, in_dataset=0.5, hallucination=0.5, extrapolation=0.0)
    monkeypatch.setattr(mem, "sweep_rows", lambda by_size, label: [{"by_size": by_size, "model": label}])
    monkeypatch.setattr(mem, "residual_sentence", lambda rows, label, paper: f"{rows[0]['by_size'][8][0].final['n']} "
                                                                             f"{label} {paper}")
    values, markdown = mem.retrained_parity_values(seeds, stored)
    assert values == {"parity_retrained": "0.81", "parity_stored": "0.50"}
    assert markdown == {"residual_parity_seeds": f"64 {mem.PARENS_SWEEP} {mem.PAPER['parity_residual']}"}


def test_residual_rows_name_each_sweeps_largest_memorising_size():
    rows = [{"model": "S", "training size": n, "memorises": n <= 8, "in-dataset / legible": 0.9 - n / 100,
             "in-dataset 95%": "[0.80, 0.95]", "hallucination / legible": n / 100, "hallucination 95%": "[0.01, 0.2]"}
            for n in (4, 8, 16)]
    out = mem.residual_rows(rows, ["S", "T"])
    assert out[0] == {"sweep": "S", "n": 8, "in-dataset / legible": pytest.approx(0.82),
                      "in-dataset 95%": "[0.80, 0.95]", "hallucination / legible": pytest.approx(0.08),
                      "hallucination 95%": "[0.01, 0.2]"}
    assert out[1] == {"sweep": "T", "n": "none memorised"}


def test_the_onset_plot_says_so_when_no_run_reached_the_onset():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ax = mem.plot_onsets([{"model": "S", "reached": 0}], {"S": None})
    assert ax.get_legend() is None and [t.get_text() for t in ax.texts] == ["no run reached the onset"]
    plt.close("all")
