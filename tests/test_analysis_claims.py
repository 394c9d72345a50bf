"""ldrkit.analysis.figure_index: the computed paper figure index.

The verdicts defined in claims.py are checked on hand-made values on both sides of their thresholds; the
whole index is then built once from the stored cpu runs (restored from the results store, caches only:
nothing trains or computes a Jacobian here) and every row's verdict is checked."""
from __future__ import annotations

import math

import pytest

from ldrkit.analysis import figure_index as C
from ldrkit.analysis import oracles as O


# --- statuses ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("verdict, status", [
    ("reproduced: symbols learned, parity at chance", C.REPRODUCED),
    ("partly: hallucination phase, the rule partly learned", C.PARTLY),
    ("partly reproduced", C.PARTLY),
    ("not reproduced", C.NOT_REPRODUCED),
    ("not reached: in-dataset at the level of independent symbols", C.NOT_REPRODUCED),
    ("did not reproduce", C.NOT_REPRODUCED),
    ("escaped: the loss fell close to the optimum", C.REPRODUCED),
    ("partly escaped: the loss fell clearly below the univariate level but not to the optimum", C.PARTLY),
    ("stayed on the univariate plateau", C.NOT_REPRODUCED),
    ("did not reach the univariate plateau", C.NOT_REPRODUCED),
    ("supported", C.REPRODUCED), ("partly supported", C.PARTLY), ("not supported", C.NOT_REPRODUCED),
])
def test_status_of_reads_the_chapters_verdicts(verdict, status):
    assert C.status_of(verdict) == status


def test_status_of_refuses_an_unknown_verdict():
    with pytest.raises(ValueError):
        C.status_of("maybe")


def test_combine():
    R, P, N, D, X = C.REPRODUCED, C.PARTLY, C.NOT_REPRODUCED, C.NOT_DISCRIMINATING, C.NOT_COMPUTED
    assert C.combine([("a", R), ("b", R)]) == R
    assert C.combine([("a", R), ("b", N)]) == P
    assert C.combine([("a", R), ("b", D)]) == P
    assert C.combine([("a", N), ("b", D)]) == D
    assert C.combine([("a", N), ("b", N)]) == N
    assert C.combine([("a", R), ("b", X)]) == R  # a part not computed here does not count against the rest
    assert C.combine([("a", X)]) == X
    assert C.verdict_text([("a", R)]) == R
    assert C.verdict_text([("a", R), ("b", N)]) == "partly (a: reproduced; b: not reproduced)"


# --- the LDR read against the exact denoisers ----------------------------------------------------------
def ldr_result(net: float, rule: float, product: float = 1.0, memoriser: float = 1.0, sem: float = 0.0) -> dict:
    values = {O.NETWORK: net, "rule": rule, "product": product, "memoriser": memoriser}
    return {o: {name: {"0.9": v} for name, v in values.items()} for o in ("eps", "x0")} | {
        f"{o}_sem": {name: {"0.9": sem} for name in values} for o in ("eps", "x0")}


def test_a_level_discriminates_only_when_the_oracles_differ():
    spread = C.ORACLE_SPREAD
    assert C.discriminating_levels(ldr_result(1.0, 1.0 - 0.99 * spread), "x0") == []
    assert C.discriminating_levels(ldr_result(1.0, 1.0 - 2 * spread), "x0") == ["0.9"]
    assert C.discriminating_levels(ldr_result(1.0, 1.0 - 2 * spread, product=math.nan), "x0") == ["0.9"]


def test_calibrated_ldr_status():
    rule = 0.5
    margin = O.LOCALITY_MARGIN
    assert C.calibrated_ldr_status(ldr_result(1.0, 1.0), O.NETWORK, "eps")[0] == C.NOT_DISCRIMINATING
    assert C.calibrated_ldr_status(ldr_result(rule + 2 * margin, rule), O.NETWORK, "x0")[0] == C.REPRODUCED
    assert C.calibrated_ldr_status(ldr_result(rule - 2 * margin, rule), O.NETWORK, "x0")[0] == C.NOT_REPRODUCED
    assert C.calibrated_ldr_status(ldr_result(rule + margin / 2, rule), O.NETWORK, "x0")[0] == C.NOT_DISCRIMINATING
    # a gap above the margin but within the standard errors is "as local"
    assert C.calibrated_ldr_status(ldr_result(rule + 2 * margin, rule, sem=margin), O.NETWORK, "x0")[0] == C.NOT_DISCRIMINATING


def test_eps_level_status():
    assert C.eps_level_status(None)[0] == C.NOT_DISCRIMINATING
    flat = ldr_result(1.0, 1.0)
    flat = {k: {n: {"0.1": v["0.9"]} for n, v in d.items()} for k, d in flat.items()}
    assert C.eps_level_status(flat, "0.1")[0] == C.NOT_DISCRIMINATING
    apart = {k: {n: {"0.1": v["0.9"]} for n, v in d.items()} for k, d in ldr_result(1.0, 0.5).items()}
    assert C.eps_level_status(apart, "0.1")[0] == C.NOT_COMPUTED  # the truth differs there: needs this data's oracles


def test_product_closest_status():
    informative = {"0.5": "product", "0.7": "product", "0.9": "rule"}
    assert C.product_closest_status({"0.1": "tie", **informative}) == C.REPRODUCED
    assert C.product_closest_status({"0.5": "product", "0.7": "tie", "0.9": "rule"}) == C.PARTLY
    assert C.product_closest_status({"0.5": "rule", "0.7": "tie", "0.9": "memoriser", "0.1": "product"}) == C.NOT_REPRODUCED


# --- the other verdicts defined here -----------------------------------------------------------------------
def test_on_axis_status():
    assert C.on_axis_status(0.2, C.ALIGNED_GROWTH * 0.2 * 1.01 + C.ALIGNED_RATIO) == C.REPRODUCED
    assert C.on_axis_status(0.2, C.ALIGNED_GROWTH * 0.2 * 0.99) == C.NOT_REPRODUCED
    assert C.on_axis_status(0.01, C.ALIGNED_RATIO * 0.99) == C.NOT_REPRODUCED  # grew, but still off the axis


def test_univariate_status():
    assert C.univariate_status(C.UNIVARIATE_RATIO * 0.99, 1.0) == C.REPRODUCED
    assert C.univariate_status(C.UNIVARIATE_RATIO * 1.01, 1.0) == C.NOT_REPRODUCED


def test_extrapolation_status():
    assert C.extrapolation_status(0, 5000) == C.REPRODUCED   # interval entirely below the paper's bound
    assert C.extrapolation_status(20, 256) == C.NOT_REPRODUCED  # entirely above
    assert C.extrapolation_status(1, 256) == C.PARTLY         # straddles it


def test_residual_and_sooner_statuses():
    assert C.residual_status(None) == C.NOT_REPRODUCED
    assert C.residual_status({"hallucination 95%": "[0.18, 0.30]"}) == C.REPRODUCED
    assert C.residual_status({"hallucination 95%": "[0.08, 0.15]"}) == C.PARTLY
    assert C.residual_status({"hallucination 95%": "[0.00, 0.03]"}) == C.NOT_REPRODUCED
    rows = [{"memorises first": "DiT"}, {"memorises first": "UNet"}, {"memorises first": "neither memorises"}]
    assert C.sooner_status(rows[:1], "DiT") == C.REPRODUCED
    assert C.sooner_status(rows, "DiT") == C.PARTLY
    assert C.sooner_status(rows[1:], "DiT") == C.NOT_REPRODUCED
    assert C.sooner_status(rows[2:], "DiT") == C.NOT_REPRODUCED


def test_fuzzy_and_saliency_spread():
    first = {"categories": {"invalid": C.FUZZY_INVALID}}
    assert C.fuzzy_status(first) == C.REPRODUCED
    assert C.fuzzy_status({"categories": {"invalid": C.FUZZY_INVALID - 0.01}}) == C.NOT_REPRODUCED
    assert C.saliency_spread_status(0.9, 0.9 - C.SALIENCY_SPREAD - 1e-9) == C.PARTLY
    assert C.saliency_spread_status(0.9, 0.9 - C.SALIENCY_SPREAD / 2) == C.NOT_REPRODUCED


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
    ("Fig. 1", ""): C.PARTLY, ("Fig. 2", ""): C.NOT_ATTEMPTED, ("Fig. 3", ""): C.PARTLY, ("Fig. 4", ""): C.PARTLY,
    ("Fig. 5", ""): C.NOT_DISCRIMINATING, ("Fig. 6", ""): C.REPRODUCED, ("Fig. 7", ""): C.PARTLY,
    ("Figs. 8-13", ""): C.NOT_ATTEMPTED, ("Fig. 14", ""): C.PARTLY, ("Fig. 15", ""): C.NOT_DISCRIMINATING,
    ("Fig. 16", ""): C.PARTLY, ("Fig. 17", ""): C.NOT_REPRODUCED, ("Fig. 18", ""): C.PARTLY,
    ("Fig. 19", ""): C.NOT_DISCRIMINATING, ("Fig. 20", ""): C.REPRODUCED, ("Fig. 21", ""): C.NOT_REPRODUCED,
    ("Fig. 22", ""): C.PARTLY, ("Fig. 23", ""): C.REPRODUCED,
    ("§4.2", "Models learn"): C.REPRODUCED, ("§4.2", "DiT memorises"): C.NOT_REPRODUCED,
    ("§4.2", "The second act"): C.PARTLY,
    ("§4.2", "Extrapolation"): C.PARTLY, ("§4.3", "The LDR is high"): C.NOT_DISCRIMINATING,
    ("§4.3", "A high LDR"): C.PARTLY, ("§4.3", "Valid and hallucinated"): C.OUR_TEST,
    ("Thm 5.2", ""): C.NOT_COMPUTED, ("Thm 5.3", ""): C.NOT_COMPUTED, ("§6", ""): C.PARTLY,
    ("A.8", "Three stairs"): C.PARTLY, ("A.8", "Weights align"): C.REPRODUCED,
}


def test_every_row_has_its_verdict_on_the_stored_runs(stored_rows):
    assert len(stored_rows) == len(EXPECTED)
    for (paper, start), status in EXPECTED.items():
        r = by_claim(stored_rows, paper, start)
        assert r["status"] == status, (paper, start, r["verdict"], r["measured (cpu, seed 0)"])
        assert r["verdict"].startswith(status)


def test_the_ldr_claims_are_never_reproduced_on_the_eps_ldr_alone(stored_rows):
    for paper, start in (("Fig. 5", ""), ("Fig. 15", ""), ("Fig. 19", ""), ("§4.3", "The LDR is high")):
        assert by_claim(stored_rows, paper, start)["status"] != C.REPRODUCED
    fig16 = by_claim(stored_rows, "Fig. 16")["verdict"]
    assert f"LDR falls as the rule is learned: {C.NOT_DISCRIMINATING}" in fig16
    # the calibrated coupling beside its negative control (the parity DiT that never learns its rule) is what
    # reproduces the direction of the claim
    assert f"not in a run that never learns (DiTs): {C.REPRODUCED}" in fig16
    assert f"not in a run that never learns (UNets): {C.REPRODUCED}" in fig16


def test_the_caches_the_page_needs_are_in_the_store(stored_rows):
    for r in stored_rows:
        if r["paper"] not in C.NOT_COMPUTED_REASONS:
            assert C.NOT_COMPUTED not in r["verdict"], r
            assert ": not cached" not in r["measured (cpu, seed 0)"], r  # what a row says for a missing cache


def test_index_table_drops_the_status_column(stored_rows):
    table = C.index_table(stored_rows)
    assert all("status" not in r and {"paper", "claim", "verdict"} <= set(r) for r in table)
    assert set(C.status_counts(stored_rows)) == set(C.STATUSES)
