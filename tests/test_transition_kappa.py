"""ldrkit.analysis.kappa_transition: kappa before the onset of memorisation and at the end, and the kappa runs'
promise that recording kappa leaves training untouched."""
import math

import pytest

from ldrkit.analysis import kappa_transition as TK
from ldrkit.analysis.verdicts import sign_verdict
from ldrkit.runs.request import run_experiment


def seed(kb, ke, sb=0.01, se=0.01, onset=100.0):
    return {"kappa before": kb, "se before": sb, "kappa end": ke, "se end": se, "onset": onset}


def test_a_rise_beyond_two_standard_errors_is_called_a_rise_and_a_wobble_is_not():
    assert TK.transition([seed(0.1, 0.5), seed(0.12, 0.48), seed(0.09, 0.52)])["verdict"] == "rose"
    assert TK.transition([seed(0.5, 0.1), seed(0.48, 0.12), seed(0.52, 0.09)])["verdict"] == "fell"
    flat = TK.transition([seed(0.10, 0.11), seed(0.12, 0.10), seed(0.09, 0.10)])
    assert flat["verdict"] == "no change (within 2 s.e.)"


def test_the_standard_error_is_the_larger_of_the_seed_spread_and_the_measurement_error():
    # Three seeds that agree exactly: the s.e. is the measurement's, sqrt(3 * 0.03^2) / 3, not 0.
    t = TK.transition([seed(0.2, 0.2, 0.03, 0.03)] * 3)
    assert t["end"][1] == pytest.approx(math.sqrt(3 * 0.03 ** 2) / 3)
    # Seeds that disagree far more than their error bars: the spread's s.d. / sqrt(k).
    t = TK.transition([seed(0.0, 0.0, 1e-4, 1e-4), seed(0.0, 0.6, 1e-4, 1e-4), seed(0.0, 0.3, 1e-4, 1e-4)])
    assert t["end"][1] == pytest.approx(0.3 / math.sqrt(3))
    assert t["verdict"].startswith("no change")  # 0.3 +- 0.17 is within 2 s.e. of 0


def test_the_end_is_placed_against_the_memoriser_on_the_same_ruler():
    rows = [seed(0.0, 0.05, se=0.01)] * 3
    assert TK.transition(rows, memoriser=(0.04, 0.01))["against memoriser"].startswith("at the memoriser's")
    assert TK.transition(rows, memoriser=(0.9, 0.01))["against memoriser"] == "below the memoriser's"
    assert TK.transition(rows, memoriser=(-0.5, 0.01))["against memoriser"] == "above the memoriser's"
    assert "against memoriser" not in TK.transition(rows)


def test_sign_verdict_counts_only_differences_beyond_its_sigmas():
    assert sign_verdict(0.3, 0.1, "lower", "higher") == "higher"
    assert sign_verdict(-0.3, 0.1, "lower", "higher") == "lower"
    assert sign_verdict(0.3, 0.1, "lower", "higher", sigmas=4) == "no difference (within 4 s.e.)"


def test_recording_kappa_leaves_training_and_sampling_untouched(monkeypatch, tmp_path):
    """X and X-kappa trained in one process (same threads): the same categories at every evaluation, since kappa
    draws its own noised inputs. (Stored pairs trained on other days may differ: training on a CPU is not bitwise
    reproducible across thread counts, and memorising runs amplify the difference.)"""
    monkeypatch.setenv("LDRKIT_RUNS", str(tmp_path / "runs"))
    plain = run_experiment("parity-parens-L8-unet-n8", "smoke", 0, progress=False, use_store=False)["evaluations"]
    kappa = run_experiment("parity-parens-L8-unet-n8-kappa", "smoke", 0, progress=False,
                           use_store=False)["evaluations"]
    assert [e["step"] for e in kappa] == [e["step"] for e in plain] and len(plain) > 1
    assert [e["categories"] for e in kappa] == [e["categories"] for e in plain]
    assert [e["ldr"] for e in kappa] == [e["ldr"] for e in plain]
    assert all("coupling" in e for e in kappa) and not any("coupling" in e for e in plain)


def test_the_parity_label_names_a_kappa_run_of_the_specs():
    from ldrkit.spec.selections import SECOND_ACT_KAPPA
    from ldrkit.spec.registry import get_experiment
    assert TK.PARITY in SECOND_ACT_KAPPA
    for name in SECOND_ACT_KAPPA.values():
        assert get_experiment(name).config("cpu", 0)["eval"]["coupling_samples"] > 0


def test_kappa_tests_memorisation_only_where_the_memoriser_itself_couples():
    rows = [seed(0.1, 0.5)] * 3
    assert TK.memorisation_test(TK.transition(rows, memoriser=(0.03, 0.03))) == "not discriminating"
    assert TK.memorisation_test(TK.transition(rows)) == "not discriminating"
    assert TK.memorisation_test(TK.transition(rows, memoriser=(0.6, 0.05))) == "rose"
    flat = [seed(0.1, 0.1)] * 3
    assert TK.memorisation_test(TK.transition(flat, memoriser=(0.6, 0.05))).startswith("no change")


def test_the_fixed_step_reading_says_training_time_when_only_the_step_moves_kappa():
    step_only = {"raw": {"r": 0.8, "p": 0.001}, "step": {"r": 0.9, "p": 0.0001}, "partial": {"r": 0.1, "p": 0.7}}
    assert "training time cannot be ruled out" in TK.fixed_step_reading({"level": "0.4", "control": step_only})
    with_memorisation = {**step_only, "partial": {"r": 0.6, "p": 0.01}}
    assert TK.fixed_step_reading({"level": "0.4", "control": with_memorisation}) == \
        "κ moves with memorisation at a fixed step"
    nothing = {"raw": {"r": 0.1, "p": 0.6}, "step": {"r": 0.0, "p": 0.9}, "partial": {"r": -0.1, "p": 0.7}}
    assert TK.fixed_step_reading({"level": "0.4", "control": nothing}).startswith("κ moves neither")
    assert TK.fixed_step_reading({"level": None}) == "not separable"


class _Configured:
    config = {"eval": {"coupling_samples": 5}}


def _analysed(verdict_rows, memoriser):
    return {"level": "0.4", "transition": TK.transition(verdict_rows, memoriser=memoriser),
            "control": {"raw": {"r": 0.1, "p": 0.6}, "step": {"r": 0.0, "p": 0.9}, "partial": {"r": -0.1, "p": 0.7}}}


def test_prose_values_name_each_model_in_the_markdown_sentences():
    analysis = {"A": _analysed([seed(0.1, 0.5)] * 3, (0.6, 0.05)), "B": {"level": None}}
    values, markdown = TK.prose_values(analysis, {"A": {0: _Configured()}, "B": {0: _Configured()}})
    assert values == {"kappa_inputs": 5, "kappa_floor": TK.MEMORISER_FLOOR}
    assert markdown["kappa_tests"] == "A: rose; B: not separable"
    assert markdown["kappa_controls"] == f"A: {TK.fixed_step_reading(analysis['A'])}; B: not separable"
    assert markdown["kappa_transitions"] == "; ".join(TK.sentence(k, a) for k, a in analysis.items())


def test_plot_without_axes_makes_a_row_of_two_panels_per_model():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = TK.plot({"A": {"level": None}, "B": {"level": None}})
    assert len(fig.axes) == 4 and list(fig.get_size_inches()) == [10, 6.4]
    assert fig.axes[0].get_title() == "A: not separable" and fig.axes[2].get_title() == "B: not separable"
    plt.close(fig)
