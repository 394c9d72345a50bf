"""ldrkit.analysis.quarter_digits: the Quarter-MNIST chapter's analyses and verdicts.

Synthetic checks of every function, and the verdicts on the stored cpu runs (seed 0) where the chapter
applies them. Nothing here trains a cpu run; the Jacobians are of one or two inputs.
"""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ldrkit.analysis import quarter_digits as qd  # noqa: E402
from ldrkit.analysis.phases import independent_valid_probability, phase_reading, run_phase  # noqa: E402
from ldrkit.denoisers.oracles import build_oracle  # noqa: E402
from ldrkit.runs.request import get_run  # noqa: E402
from ldrkit.spec.registry import ORACLES  # noqa: E402
from ldrkit.systems.digits import DigitSum  # noqa: E402

LEVELS = ["0.1", "0.3", "0.5", "0.7", "0.9"]


def record(step=0, invalid=0.0, hallucination=0.0, in_dataset=0.0, extrapolation=0.0):
    return {"step": step, "categories": {"invalid": invalid, "hallucination": hallucination, "in_dataset": in_dataset,
                                         "extrapolation": extrapolation}}


@pytest.fixture(scope="module")
def cpu_runs(tmp_path_factory):
    """The stored cpu runs (restored by copy from the results store into a temporary folder)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LDRKIT_RUNS", str(tmp_path_factory.mktemp("runs")))
    runs = {"UNet": get_run("quarter-digits-unet", "cpu", 0, progress=False),
            "DiT": get_run("quarter-digits-dit", "cpu", 0, progress=False)}
    yield runs
    mp.undo()


@pytest.fixture(scope="module")
def oracles(cpu_runs):
    return {w: build_oracle(cpu_runs["UNet"].setup, w) for w in ORACLES}


# --- the rule ----------------------------------------------------------------------------------------

def test_mutual_information_in_bits():
    rng = np.random.default_rng(0)
    a = np.arange(10).repeat(100)
    assert qd.pair_mutual_information(a, a) == pytest.approx(math.log2(10))
    assert qd.pair_mutual_information(a, np.tile(np.arange(10), 100)) == pytest.approx(0.0, abs=1e-12)
    assert qd.pair_mutual_information(rng.integers(0, 10, 50000), rng.integers(0, 10, 50000)) < 0.01


def test_digits_of_the_rule_are_dependent_but_weakly():
    grammar = DigitSum()
    row = qd.digit_marginal_row(grammar)
    p = np.array([row[f"d={d}"] for d in range(10)])
    assert p.sum() == pytest.approx(1.0) and np.allclose(p, p[::-1]) and p[4] == p.max()
    info = [r["mutual information (bits)"] for r in qd.pair_information_rows(grammar)]
    assert len(info) == 3 and all(0 < v < 0.5 * math.log2(10) for v in info)


def test_rule_facts_and_the_held_out_share(cpu_runs):
    setup = cpu_runs["UNet"].setup
    facts = qd.rule_facts(setup)
    assert (facts["valid tuples"], facts["training tuples"], facts["held out"]) == (670, 470, 200)
    assert facts["P(rule), uniform digits"] == pytest.approx(0.067)
    p = facts["P(rule), independent training frequencies"]
    assert p == pytest.approx(independent_valid_probability(setup.grammar, setup.split.train))
    freq = [np.bincount(setup.split.train[:, j], minlength=10) / 470 for j in range(4)]
    assert p == pytest.approx(np.convolve(freq[0], freq[1]) @ np.convolve(freq[2], freq[3]))  # P(s1+s2 = s3+s4)
    assert qd.held_out_share(setup) == pytest.approx(200 / 670)


def test_reader_facts_and_training_images(cpu_runs):
    setup = cpu_runs["UNet"].setup
    facts = qd.reader_facts(setup)
    assert 0.9 < facts["classifier accuracy"] <= 1
    assert 0 < facts["clean images read right"] <= facts["clean quarters read right"] <= 1
    assert facts["training images"] == facts["copies"] * 470
    fig = qd.plot_training_images(setup, k=4)
    assert len(fig.axes) == 4
    plt.close(fig)


# --- training ------------------------------------------------------------------------------------------

def test_model_rows_and_evaluation_rows(cpu_runs):
    rows = qd.model_rows(cpu_runs)
    assert [r["model"] for r in rows] == ["UNet", "DiT"] and all(r["parameters"] > 1000 for r in rows)
    assert rows[0]["steps"] == cpu_runs["UNet"].config["train"]["steps"]
    ev = qd.evaluation_rows(cpu_runs)
    assert len(ev) == sum(len(r.evaluations) for r in cpu_runs.values())
    assert all(0 <= r["LDR x0 @0.1"] <= 1.0001 for r in ev)
    fig = qd.plot_categories_ldr(cpu_runs)
    assert len(fig.axes) == 6
    plt.close(fig)


def test_phase_step_is_the_book_phase(cpu_runs):
    """The chapter reads the one phase of `phases.run_phase`, legible and at chance, not a maximum over evaluations."""
    run = cpu_runs["UNet"]
    assert qd.phase_step(run) == run_phase(run)["record"]


def test_gallery_and_extrapolation_rows(cpu_runs):
    run = cpu_runs["UNet"]
    step = qd.phase_step(run)["step"]
    fig = qd.gallery(run, step, "UNet", k=6)
    assert len(fig.axes) == 6
    plt.close(fig)
    rows = qd.extrapolation_rows({"UNet": run})
    assert [r["evaluation"] for r in rows] == ["hallucination phase", "final"]
    for r in rows:
        low, high = map(float, r["95% interval"].split("-"))
        assert low <= r["fraction"] <= high and r["extrapolations"] <= r["rule-obeying"] <= r["samples"]


def test_saliency_figure(cpu_runs):
    fig = qd.plot_saliency({"DiT": cpu_runs["DiT"]}, seed=0)
    assert len(fig.axes) == 4
    plt.close(fig)


# --- the oracles ----------------------------------------------------------------------------------------

def test_expected_oracle_categories_are_distributions(cpu_runs):
    setup = cpu_runs["UNet"].setup
    expected = qd.expected_oracle_categories(setup)
    for w in ORACLES:
        e = expected[w]
        assert e["hallucination"] + e["in_dataset"] + e["extrapolation"] == pytest.approx(1.0)
        assert 0 <= e["misread"] < 0.5
    assert expected["rule"]["extrapolation"] == pytest.approx(200 / 670)
    p = independent_valid_probability(setup.grammar, setup.split.train)
    assert expected["product"]["hallucination"] == pytest.approx(1 - p)


def test_oracle_rows_and_distance_rows(cpu_runs, tmp_path):
    rows = qd.oracle_category_rows({}, {}, cpu_runs)
    assert len(rows) == 4 and rows[0]["denoiser"].startswith("UNet, hallucination phase")
    dist = {label: qd.distance_rows(run, n=4, seed=0) for label, run in cpu_runs.items()}
    assert [r["step"] for r in dist["UNet"]] == [e["step"] for e in cpu_runs["UNet"].evaluations]
    assert set(dist["UNet"][0]) == {"step", *ORACLES}
    fig = qd.plot_oracle_distances(dist)
    assert len(fig.axes) == 10
    plt.close(fig)


def test_closest_oracle_needs_a_lead_of_three_standard_errors():
    rng = np.random.default_rng(0)
    base = rng.normal(1.0, 0.1, 64)
    clear = {"rule": base + 0.5, "product": base, "memoriser": base + 1.0}
    assert qd.closest_oracle(clear)["verdict"] == "product"
    noisy = {"rule": base + rng.normal(0, 0.1, 64), "product": base, "memoriser": base + 1.0}
    verdict = qd.closest_oracle(noisy)
    assert verdict["z"] < qd.CLOSEST_Z and verdict["verdict"] == "tie"


def test_paired_distances_of_an_oracle_to_itself_vanish(cpu_runs, oracles):
    d = qd.paired_distances(oracles["product"], cpu_runs["UNet"].setup, oracles, "0.7", n=8, seed=0)
    assert d["product"].max() == pytest.approx(0.0, abs=1e-10) and d["memoriser"].mean() > 0


def test_product_account_verdicts():
    runs = {"A": type("R", (), {"final": record(hallucination=0.6, in_dataset=0.1)})(),
            "B": type("R", (), {"final": record(invalid=0.9, hallucination=0.1)})()}
    closest = {("A", "0.5"): "product", ("A", "0.7"): "product", ("A", "0.9"): "tie", ("A", "0.1"): "rule",
               ("B", "0.5"): "rule"}
    account = qd.product_account(closest, runs)
    assert (account["verdict"], account["models"], account["pairs"], account["product"]) == ("supported", "A", 3, 2)
    assert qd.product_account({("A", "0.5"): "rule", ("A", "0.7"): "tie"}, runs)["verdict"] == "not supported"
    assert qd.product_account({("A", "0.5"): "rule", ("A", "0.7"): "product"}, runs)["verdict"] == "partly supported"
    assert qd.product_account(closest, {"B": runs["B"]})["verdict"] == "cannot be tested"


def test_the_paper_account_on_the_stored_runs(cpu_runs, oracles):
    """The chapter's test of the paper's account, at its sizes: the hallucinating UNet's final checkpoint is closest
    to the product of the marginals at the low-noise levels."""
    low = qd.informative_levels(LEVELS)
    rows = qd.paired_rows({"UNet": cpu_runs["UNet"]}, oracles, low, n=128, seed=0)
    closest = {(r["model"], r["√ᾱ"]): r["verdict"] for r in rows}
    account = qd.product_account(closest, cpu_runs)
    assert account["models"] == "UNet" and account["verdict"] == "supported", rows


def test_informative_and_recorded_closest():
    assert qd.informative_levels(LEVELS) == ["0.5", "0.7", "0.9"]
    rows = [{"step": 5, "rule": {"0.5": 2.0}, "product": {"0.5": 1.0}, "memoriser": {"0.5": 3.0}}]
    assert qd.recorded_closest(rows, 5, ["0.5"]) == {"0.5": "product"}
    assert qd.recorded_closest(rows, 6, ["0.5"]) == {"0.5": "not recorded"}


# --- the LDR of the truth ---------------------------------------------------------------------------------

def test_denoiser_ldr_of_the_product_is_one(cpu_runs):
    tables, sems = qd.denoiser_ldr({"UNet": cpu_runs["UNet"]}, n=1, seed=0)
    assert all(abs(v - 1) < 1e-5 for v in tables["x0"]["product oracle"].values())
    assert set(tables["x0"]) == {"UNet", "rule oracle", "product oracle", "memoriser oracle"}
    rows = qd.ldr_rows(tables["x0"], sems["x0"])
    assert [r["√ᾱ"] for r in rows] == LEVELS
    fig = qd.plot_denoiser_ldr(tables, sems)
    assert len(fig.axes) == 2
    plt.close(fig)


def _ldr_table(net):
    x0 = {"net": dict(zip(LEVELS, net)), "rule oracle": dict(zip(LEVELS, [0.99, 0.95, 0.9, 0.9, 1.0])),
          "product oracle": dict.fromkeys(LEVELS, 1.0),
          "memoriser oracle": dict(zip(LEVELS, [0.87, 0.4, 0.3, 0.3, math.nan]))}
    sems = {name: dict.fromkeys(LEVELS, 0.001) for name in x0}
    return x0, sems


def test_nearest_oracle_and_less_local_levels():
    x0, sems = _ldr_table([0.7, 0.96, 0.31, 0.95, math.nan])
    assert [qd.nearest_oracle_ldr(x0, "net", lv) for lv in LEVELS] == ["memoriser", "rule", "memoriser", "rule",
                                                                          "undefined"]
    assert qd.less_local_levels(x0, sems, "net") == ["0.1", "0.5"]
    x0, sems = _ldr_table([0.985, 0.948, 0.9, 0.9, 1.0])  # within 0.01 of the rule: not less local
    assert qd.less_local_levels(x0, sems, "net") == []
    row = qd.ldr_verdict_rows(x0, sems, ["net"])[0]
    assert row["less local than rule and product at"] == "no level" and row["nearest @0.9"] in ("rule", "product")
    assert qd.ldr_rows(x0, sems)[-1]["memoriser oracle"] == "undefined"


# --- the trajectories -------------------------------------------------------------------------------------

def _trajectories(n_valid, n_hall, shift):
    labels = np.array(["in_dataset"] * n_valid + ["hallucination"] * n_hall + ["invalid"] * 2)
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.9, 0.01, n_valid), rng.normal(0.9 - shift, 0.01, n_hall), [0.5, 0.5]])
    return {"labels": labels, "levels": {"0.1": {"t": 900, "x0": values}, "0.9": {"t": 100, "x0": values}}}


def test_outcome_rows_and_verdicts():
    same, apart = _trajectories(20, 20, 0.0), _trajectories(20, 20, 0.1)
    assert qd.outcome_counts(apart) == {"invalid": 2, "hallucination": 20, "in_dataset": 20, "extrapolation": 0}
    rows = qd.outcome_rows({"m": apart})
    assert len(rows) == 2 and rows[0]["difference"] == pytest.approx(0.1, abs=0.02)
    assert qd.outcome_verdict(apart).startswith("differ by more than 3 s.e. at √ᾱ = 0.1, 0.9")
    assert qd.outcome_verdict(same).startswith("no level")
    assert qd.outcome_verdict(_trajectories(4, 20, 0.1)).startswith("too few samples")
    fig = qd.plot_trajectories({"m": apart})
    assert len(fig.axes) == 1
    plt.close(fig)


def test_trajectory_ldr_is_cached_in_the_run_folder(cpu_runs, monkeypatch):
    run = cpu_runs["DiT"]
    first = qd.cached_trajectory_ldr(run, n=2, seed=0, levels=(0.5,))
    assert len(first["labels"]) == 2 and set(first["levels"]) == {"0.5"} and len(first["levels"]["0.5"]["x0"]) == 2

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached trajectory LDR")

    monkeypatch.setattr(qd, "trajectory_ldr", fail)
    again = qd.cached_trajectory_ldr(run, n=2, seed=0, levels=(0.5,))
    assert (again["labels"] == first["labels"]).all()
    assert np.allclose(again["levels"]["0.5"]["x0"], first["levels"]["0.5"]["x0"])


# --- the verdicts on the stored runs ------------------------------------------------------------------------

def test_verdict_thresholds():
    chance = 0.93  # Quarter-digits: independent digits break s1 + s2 = s3 + s4 this often
    at = [record(0, invalid=1.0), record(10, invalid=0.4, hallucination=0.56, in_dataset=0.04)]
    assert qd.phase_verdict(phase_reading(at, 256, chance)) == "reproduced"
    learned = [record(0, invalid=1.0), record(10, invalid=0.2, hallucination=0.3, in_dataset=0.5)]
    assert qd.phase_verdict(phase_reading(learned, 256, chance)) == "not reproduced: rule learned"
    illegible = [record(0, invalid=1.0), record(10, invalid=0.8, hallucination=0.2)]  # 20% legible, all breaking
    assert qd.phase_verdict(phase_reading(illegible, 256, chance)) == "not reproduced: symbols not learned"
    assert qd.hallucinates_at_end(record(hallucination=0.3, in_dataset=0.2))
    assert not qd.hallucinates_at_end(record(hallucination=0.3, in_dataset=0.4))
    assert not qd.hallucinates_at_end(record(hallucination=0.1))
    assert qd.memorised(record(in_dataset=0.9)) and not qd.memorised(record(in_dataset=0.4))


def test_verdicts_on_the_stored_runs(cpu_runs):
    """The cpu budget: the UNet passes through a hallucination phase (the paper's section 4.2) and is still in it at
    the end; the DiT's samples are never half legible (no phase); neither memorises (the paper's DiT
    does at 30k-50k steps of batch 16)."""
    unet, dit = cpu_runs["UNet"], cpu_runs["DiT"]
    assert qd.phase_verdict(run_phase(unet)) == "reproduced"
    assert qd.phase_verdict(run_phase(dit)) == "not reproduced: symbols not learned"
    assert qd.hallucinates_at_end(unet.final) and not qd.hallucinates_at_end(dit.final)
    assert not qd.memorised(unet.final) and not qd.memorised(dit.final)
    rows = {r["model"]: r for r in qd.summary_rows(cpu_runs)}
    assert rows["UNet"]["phase"] == "reproduced" and rows["UNet"]["breaks among legible"] > 0.5
    assert rows["UNet"]["final rule-obeying"] == pytest.approx(
        unet.final["categories"]["in_dataset"] + unet.final["categories"]["extrapolation"])
