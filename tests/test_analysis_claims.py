"""ldrkit.analysis.figure_index: the computed paper figure index.

The verdicts defined in figure_index.py are checked on hand-made values on both sides of their thresholds; the
whole index is then built once from the stored cpu runs (restored from the results store, caches only:
nothing trains or computes a Jacobian here) and every row's verdict is checked."""
from __future__ import annotations

import math

import pytest

from ldrkit.analysis import figure_index as C
from ldrkit.analysis import oracles as O
from ldrkit.analysis import verdicts as V


# --- statuses ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("verdict, status", [
    ("reproduced: symbols learned, parity at chance", V.REPRODUCED),
    ("partly: hallucination phase, the rule partly learned", V.PARTLY),
    ("partly reproduced", V.PARTLY),
    ("not reproduced", V.NOT_REPRODUCED),
    ("not reached: in-dataset at the level of independent symbols", V.NOT_REPRODUCED),
    ("did not reproduce", V.NOT_REPRODUCED),
    ("escaped: the loss fell close to the optimum", V.REPRODUCED),
    ("partly escaped: the loss fell clearly below the univariate level but not to the optimum", V.PARTLY),
    ("stayed on the univariate plateau", V.NOT_REPRODUCED),
    ("did not reach the univariate plateau", V.NOT_REPRODUCED),
    ("supported", V.REPRODUCED), ("partly supported", V.PARTLY), ("not supported", V.NOT_REPRODUCED),
])
def test_status_of_reads_the_chapters_verdicts(verdict, status):
    assert V.status_of(verdict) == status


def test_status_of_refuses_an_unknown_verdict():
    with pytest.raises(ValueError):
        V.status_of("maybe")


# --- the LDR read against the exact denoisers ----------------------------------------------------------
def ldr_result(net: float, rule: float, product: float = 1.0, memoriser: float = 1.0, sem: float = 0.0) -> dict:
    values = {O.NETWORK: net, "rule": rule, "product": product, "memoriser": memoriser}
    return {o: {name: {"0.9": v} for name, v in values.items()} for o in ("eps", "x0")} | {
        f"{o}_sem": {name: {"0.9": sem} for name in values} for o in ("eps", "x0")}


def test_a_level_discriminates_only_when_the_oracles_differ():
    spread = O.ORACLE_SPREAD
    assert O.discriminating_levels(ldr_result(1.0, 1.0 - 0.99 * spread), "x0") == []
    assert O.discriminating_levels(ldr_result(1.0, 1.0 - 2 * spread), "x0") == ["0.9"]
    assert O.discriminating_levels(ldr_result(1.0, 1.0 - 2 * spread, product=math.nan), "x0") == ["0.9"]


def test_calibrated_ldr_status():
    rule = 0.5
    margin = O.LOCALITY_MARGIN
    assert C.calibrated_ldr_status(ldr_result(1.0, 1.0), O.NETWORK, "eps")[0] == V.NOT_DISCRIMINATING
    assert C.calibrated_ldr_status(ldr_result(rule + 2 * margin, rule), O.NETWORK, "x0")[0] == V.REPRODUCED
    assert C.calibrated_ldr_status(ldr_result(rule - 2 * margin, rule), O.NETWORK, "x0")[0] == V.NOT_REPRODUCED
    assert C.calibrated_ldr_status(ldr_result(rule + margin / 2, rule), O.NETWORK, "x0")[0] == V.NOT_DISCRIMINATING
    # a gap above the margin but within the standard errors is "as local"
    assert C.calibrated_ldr_status(ldr_result(rule + 2 * margin, rule, sem=margin), O.NETWORK, "x0")[0] == V.NOT_DISCRIMINATING


def test_product_closest_status():
    informative = {"0.5": "product", "0.7": "product", "0.9": "rule"}
    assert C.product_closest_status({"0.1": "tie", **informative}) == V.REPRODUCED
    assert C.product_closest_status({"0.5": "product", "0.7": "tie", "0.9": "rule"}) == V.PARTLY
    assert C.product_closest_status({"0.5": "rule", "0.7": "tie", "0.9": "memoriser", "0.1": "product"}) == V.NOT_REPRODUCED


# --- the other verdicts defined here -----------------------------------------------------------------------
def test_on_axis_status():
    assert C.on_axis_status(0.2, C.ALIGNED_GROWTH * 0.2 * 1.01 + C.ALIGNED_RATIO) == V.REPRODUCED
    assert C.on_axis_status(0.2, C.ALIGNED_GROWTH * 0.2 * 0.99) == V.NOT_REPRODUCED
    assert C.on_axis_status(0.01, C.ALIGNED_RATIO * 0.99) == V.NOT_REPRODUCED  # grew, but still off the axis


def test_univariate_status():
    assert C.univariate_status(C.UNIVARIATE_RATIO * 0.99, 1.0) == V.REPRODUCED
    assert C.univariate_status(C.UNIVARIATE_RATIO * 1.01, 1.0) == V.NOT_REPRODUCED


def test_extrapolation_status():
    assert C.extrapolation_status(0, 5000) == V.REPRODUCED   # interval entirely below the paper's bound
    assert C.extrapolation_status(20, 256) == V.NOT_REPRODUCED  # entirely above
    assert C.extrapolation_status(1, 256) == V.PARTLY         # straddles it


def test_residual_and_sooner_statuses():
    assert C.residual_status(None) == V.NOT_REPRODUCED
    assert C.residual_status({"hallucination 95%": "[0.18, 0.30]"}) == V.REPRODUCED
    assert C.residual_status({"hallucination 95%": "[0.08, 0.15]"}) == V.PARTLY
    assert C.residual_status({"hallucination 95%": "[0.00, 0.03]"}) == V.NOT_REPRODUCED
    rows = [{"memorises first": "DiT"}, {"memorises first": "UNet"}, {"memorises first": "neither memorises"}]
    assert C.sooner_status(rows[:1], "DiT") == V.REPRODUCED
    assert C.sooner_status(rows, "DiT") == V.PARTLY
    assert C.sooner_status(rows[1:], "DiT") == V.NOT_REPRODUCED
    assert C.sooner_status(rows[2:], "DiT") == V.NOT_REPRODUCED


def test_fuzzy_and_saliency_spread():
    first = {"categories": {"invalid": C.FUZZY_INVALID}}
    assert C.fuzzy_status(first) == V.REPRODUCED
    assert C.fuzzy_status({"categories": {"invalid": C.FUZZY_INVALID - 0.01}}) == V.NOT_REPRODUCED
    assert C.saliency_spread_status(0.9, 0.9 - C.SALIENCY_SPREAD - 1e-9) == V.PARTLY
    assert C.saliency_spread_status(0.9, 0.9 - C.SALIENCY_SPREAD / 2) == V.NOT_REPRODUCED


# --- reading the store ---------------------------------------------------------------------------------------
class Counting:
    def __init__(self):
        self.path = "fake"

    def cached(self, name, params, steps, compute):
        return [{"step": s, **compute(None, s)} for s in steps]


def test_cache_only_never_computes():
    with pytest.raises(C.NotCached):
        C.CacheOnly(Counting()).cached("x", {}, [1], lambda model, step: {"v": 1})
    assert C.CacheOnly(Counting()).path == "fake"


def test_stored_run_refuses_to_train():
    with pytest.raises(FileNotFoundError):
        C.stored_run("parity-mlp-L16", profile="cpu", seed=12345)


@pytest.fixture(scope="module")
def stored_rows(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LDRKIT_RUNS", str(tmp_path_factory.mktemp("runs")))
        return C.claim_rows(C.stored_runs())


def by_claim(rows, paper, start=""):
    found = [r for r in rows if r["paper"] == paper and r["claim"].startswith(start)]
    assert len(found) == 1, (paper, start, [r["claim"] for r in rows if r["paper"] == paper])
    return found[0]


EXPECTED = {  # the verdict of every row on the stored cpu runs of seed 0
    ("Fig. 1", ""): V.PARTLY, ("Fig. 2", ""): V.NOT_ATTEMPTED, ("Fig. 3", ""): V.PARTLY, ("Fig. 4", ""): V.PARTLY,
    ("Fig. 5", ""): V.NOT_REPRODUCED, ("Fig. 6", ""): V.REPRODUCED, ("Fig. 7", ""): V.PARTLY,
    ("Figs. 8-13", ""): V.NOT_ATTEMPTED, ("Fig. 14", ""): V.PARTLY, ("Fig. 15", ""): V.NOT_REPRODUCED,
    ("Fig. 16", ""): V.PARTLY, ("Fig. 17", ""): V.NOT_REPRODUCED, ("Fig. 18", ""): V.NOT_REPRODUCED,
    ("Fig. 19", ""): V.NOT_DISCRIMINATING, ("Fig. 20", ""): V.REPRODUCED, ("Fig. 21", ""): V.NOT_REPRODUCED,
    ("Fig. 22", ""): V.PARTLY, ("Fig. 23", ""): V.REPRODUCED,
    ("§4.2", "Models learn"): V.PARTLY, ("§4.2", "DiT memorises"): V.NOT_REPRODUCED,
    ("§4.2", "The second act"): V.PARTLY,
    ("§4.2", "Extrapolation"): V.NOT_REPRODUCED, ("§4.3", "The LDR is high"): V.NOT_REPRODUCED,
    ("§4.3", "A high LDR"): V.PARTLY, ("§4.3", "Valid and hallucinated"): V.OUR_TEST,
    ("Thm 5.2", ""): V.NOT_COMPUTED, ("Thm 5.3", ""): V.NOT_COMPUTED, ("§6", ""): V.PARTLY,
    ("A.8", "Three stairs"): V.PARTLY, ("A.8", "Weights align"): V.REPRODUCED,
}


def test_every_row_has_its_verdict_on_the_stored_runs(stored_rows):
    assert len(stored_rows) == len(EXPECTED)
    for (paper, start), status in EXPECTED.items():
        r = by_claim(stored_rows, paper, start)
        assert r["status"] == status, (paper, start, r["verdict"], r["measured (cpu)"])
        assert r["verdict"].startswith(status)


def test_the_ldr_claims_are_never_reproduced_on_the_eps_ldr_alone(stored_rows):
    for paper, start in (("Fig. 5", ""), ("Fig. 15", ""), ("Fig. 19", ""), ("§4.3", "The LDR is high")):
        assert by_claim(stored_rows, paper, start)["status"] != V.REPRODUCED
    fig16 = by_claim(stored_rows, "Fig. 16")["verdict"]
    # the fall of the x0-LDR is read beside the exact Dyck denoisers of the same data, never from the LDR alone
    assert "x0-LDR falls from the phase to the end, beside the exact Dyck denoisers" in fig16
    # the calibrated coupling beside its negative control (the parity DiT that never learns its rule) is what
    # reproduces the direction of the claim
    assert f"not in a run that never learns (DiTs): {V.REPRODUCED}" in fig16
    assert f"not in a run that never learns (UNets): {V.REPRODUCED}" in fig16


def test_the_caches_the_page_needs_are_in_the_store(stored_rows):
    for r in stored_rows:
        if r["paper"] not in C.NOT_COMPUTED_REASONS:
            assert V.NOT_COMPUTED not in r["verdict"], r
            assert ": not cached" not in r["measured (cpu)"], r  # what a row says for a missing cache


def test_index_table_drops_the_status_column(stored_rows):
    table = C.index_table(stored_rows)
    assert all("status" not in r and {"paper", "claim", "verdict"} <= set(r) for r in table)
    assert set(C.status_counts(stored_rows)) == set(V.STATUSES)
