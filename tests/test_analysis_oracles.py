"""ldrkit.analysis.oracles: the verdicts on synthetic numbers, and on the stored cpu parity runs where the
chapters (parity-mlp, oracles) apply them, with small probe sizes (restoring a stored run is a copy)."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ldrkit.analysis import oracles as O  # noqa: E402
from ldrkit.analysis.phases import independent_valid_probability  # noqa: E402
from ldrkit.probes.estimates import fraction_interval  # noqa: E402
from ldrkit.runs.request import get_run  # noqa: E402
from ldrkit.spec.registry import ORACLES  # noqa: E402


def _result(net, rule, net_sem=0.0, rule_sem=0.0, label="net"):
    levels = [f"{0.1 * (i + 1):g}" for i in range(len(net))]
    return {"x0": {label: dict(zip(levels, net)), "rule": dict(zip(levels, rule))},
            "x0_sem": {label: {lv: net_sem for lv in levels}, "rule": {lv: rule_sem for lv in levels}}}


# --- verdicts on synthetic numbers ------------------------------------------------------------------------

def test_locality_against_rule_margin_and_standard_errors():
    m = O.LOCALITY_MARGIN
    r = _result([0.9, 0.5, 0.7, math.nan], [0.5, 0.9, 0.7 + m / 2, 0.5])
    assert list(O.locality_against_rule(r, "net").values()) == ["more local", "less local", "as local", "undefined"]
    # a gap beyond the margin but within LOCALITY_SE standard errors is "as local"
    noisy = _result([0.5 + 2 * m], [0.5], net_sem=2 * m / O.LOCALITY_SE, rule_sem=2 * m / O.LOCALITY_SE)
    assert O.locality_against_rule(noisy, "net") == {"0.1": "as local"}
    rows = O.locality_rows({"run A": r}, "net")
    assert rows[0]["run"] == "run A" and rows[0]["√ᾱ=0.1"] == "more local"


def test_ldr_rows_mark_undefined():
    r = {"x0": {"a": {"0.1": 0.5, "0.9": math.nan}}, "x0_sem": {"a": {"0.1": 0.01, "0.9": math.nan}}}
    assert O.ldr_rows(r) == [{"denoiser": "a", "√ᾱ=0.1": "0.500 ± 0.010", "√ᾱ=0.9": "undefined"}]


def test_closest_oracle_needs_a_paired_lead():
    rng = np.random.default_rng(0)
    base = rng.uniform(1, 2, 200)
    clear = {"rule": base + 0.5, "product": base, "memoriser": base + 1.0}
    verdict, lead = O.closest_oracle(clear)
    assert verdict == "product" and lead > 1e6  # a constant paired gap: (almost) no spread at all
    noisy = {"rule": base + rng.normal(0, 1, 200), "product": base, "memoriser": base + 5}
    assert O.closest_oracle(noisy)[0] == "tie"
    rows = O.closest_oracle_rows({"0.9": clear})
    assert rows[0]["closest"] == "product" and rows[0]["product"] == pytest.approx(base.mean())


def test_outcome_gap_verdicts():
    assert O.outcome_gap((0.5, 0.01, 100), (0.6, 0.01, 100))[2] == "differ"
    gap, ratio, verdict = O.outcome_gap((0.5, 0.01, 100), (0.51, 0.01, 100))
    assert verdict == "same within noise" and gap == pytest.approx(-0.01) and ratio == pytest.approx(0.01 / math.hypot(0.01, 0.01))
    assert O.outcome_gap((0.5, math.nan, 1), (0.6, 0.01, 100))[2] == "too few samples"
    split = {"x0": {"0.5": {"valid": [0.5, 0.01, 100], "hallucination": [0.0, 0.0, 0]}}}
    row = O.outcome_gap_rows(split)[0]
    assert row["hallucination (n)"] == "none (0)" and row["verdict"] == "too few samples"


# --- on the stored cpu runs the chapters use ----------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The stored cpu parity runs and oracle runs, restored once for the module."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LDRKIT_RUNS", str(tmp_path_factory.mktemp("runs")))
    names = ["parity-mlp-L8", "parity-mlp-L16", *(f"parity-mlp-L16-oracle-{w}" for w in ORACLES)]
    out = {name: get_run(name, "cpu", 0, progress=False) for name in names}
    mp.undo()
    return out


def test_ldr_beside_oracles_on_the_stored_run_is_cached_and_bounded(runs, monkeypatch):
    run = runs["parity-mlp-L8"]
    result = O.ldr_beside_oracles(run, n=8, seed=0, label="trained MLP")
    assert set(result["x0"]) == {"trained MLP", *ORACLES}
    values = [v for row in result["x0"].values() for v in row.values() if math.isfinite(v)]
    assert all(-1e-6 <= v <= 1 + 1e-6 for v in values)  # an LDR is a ratio of a part of a norm to the whole
    # the product of marginals is coordinate-wise: its denoiser-LDR is 1 wherever it is defined
    assert all(v == pytest.approx(1, abs=1e-3) for v in result["x0"]["product"].values() if math.isfinite(v))
    # pairwise-independent symbols: the rule's exact denoiser is local at high noise
    assert result["x0"]["rule"]["0.1"] == pytest.approx(1, abs=1e-3)
    # where the rule's LDR is 1 no denoiser can be more local (the verdict the parity chapter prints)
    verdicts = O.locality_against_rule(result, "trained MLP")
    assert all(verdicts[lv] != "more local" for lv, v in result["x0"]["rule"].items() if v > 1 - O.LOCALITY_MARGIN)
    monkeypatch.setattr(O, "build_oracle", lambda *a: pytest.fail("recomputed a cached table"))
    again = O.ldr_beside_oracles(run, n=8, seed=0, label="trained MLP")
    assert again["x0"]["rule"] == pytest.approx(result["x0"]["rule"], nan_ok=True)


def test_closest_oracle_of_the_hallucinating_L16_network_is_the_product_at_low_noise(runs):
    run = runs["parity-mlp-L16"]
    assert O.final_category_row(run, "x")["breaks rule among legible"] > 0.3  # it is in the hallucination phase
    paired = O.paired_oracle_distances(run, n=128, seed=0)
    assert set(paired) == {"0.1", "0.3", "0.5", "0.7", "0.9"} and len(paired["0.9"]["rule"]) == 128
    # the paper's account, at the least noisy level, where the three oracles disagree most
    assert O.closest_oracle(paired["0.9"])[0] == "product"


def test_trajectory_ldr_by_outcome_on_the_stored_run(runs):
    run = runs["parity-mlp-L16"]
    split = O.trajectory_ldr_by_outcome(run, n=32, seed=0)
    assert sum(split["counts"].values()) == 32
    for level, groups in split["x0"].items():
        assert groups["valid"][2] == split["counts"]["in_dataset"] + split["counts"]["extrapolation"]
        assert groups["hallucination"][2] == split["counts"]["hallucination"]
    rows = O.outcome_gap_rows(split)
    assert [r["√ᾱ"] for r in rows] == list(split["x0"]) and all(r["verdict"] != "differ" for r in rows)
    fig, axes = plt.subplots(1, 2)
    O.plot_trajectory_ldr(split, axes)
    plt.close(fig)


def test_oracle_runs_sample_as_computed(runs):
    network = runs["parity-mlp-L16"]
    oracle_runs = {w: runs[f"parity-mlp-L16-oracle-{w}"] for w in ORACLES}
    rows = {r["denoiser"]: r for r in O.oracle_category_rows(network, oracle_runs, "MLP")}
    assert rows["rule oracle"]["hallucination"] == 0 and rows["memoriser oracle"]["in-dataset"] == 1
    expected = 1 - independent_valid_probability(network.setup.grammar, network.setup.split.train)
    assert rows["product oracle"]["expected to break"] == pytest.approx(expected)
    n = network.config["eval"]["num_samples"]
    low, high = fraction_interval(rows["product oracle"]["breaks rule among legible"], n)
    assert low <= expected <= high
    with pytest.raises(ValueError):
        O.expected_broken_among_legible(network.setup, "oracle of delphi")


def test_rows_and_figures_of_the_stored_runs(runs):
    run = runs["parity-mlp-L16"]
    row = O.training_row(run, "L16")
    assert row["steps"] == run.final["step"] and row["parameters"] > 0
    assert O.outcome_row(run, "L16")["first step ≥ 50% legible"] in [e["step"] for e in run.evaluations]
    ax = O.sample_gallery(runs["parity-mlp-L16-oracle-memoriser"], per_category=3)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["in-dataset"] * 3
    plt.close("all")
    rows = [{"step": 0, **{w: {"0.1": 1.0, "0.9": 0.5} for w in ORACLES}}, {"step": 10, **{w: {"0.1": 0.5, "0.9": 0.1}
                                                                                          for w in ORACLES}}]
    fig, axes = plt.subplots(1, 2)
    O.plot_oracle_distances(rows, axes)
    assert axes[1].get_title() == "√ᾱ = 0.9"
    fig, axes = plt.subplots(1, 2)
    O.plot_ldr_beside_oracles({k: {"a": {"0.1": 0.5}} for k in ("eps", "x0", "eps_sem", "x0_sem")}, axes)
    plt.close("all")
