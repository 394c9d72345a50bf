"""ldrkit.analysis.parentheses: the parentheses chapter's summaries, checkpoint choice, figures and verdicts.

The verdicts are checked on hand-made records and on the stored cpu runs the chapter reads
(restored from the results store; nothing trains here). The saliency test computes one probe
on the smallest stored UNet (L=8) and checks that a second call is served from the cache."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from ldrkit.analysis import parentheses as parens  # noqa: E402
from ldrkit.analysis.phases import independent_valid_probability  # noqa: E402
from ldrkit.runs.request import get_run  # noqa: E402
from ldrkit.systems.grammars import Dyck, Parity  # noqa: E402


def record(step=100, invalid=0.2, hallucination=0.4, in_dataset=0.2, extrapolation=0.2, ldr_x0=0.8):
    return {"step": step, "categories": {"invalid": invalid, "hallucination": hallucination, "in_dataset": in_dataset,
                                         "extrapolation": extrapolation},
            "ldr": {"0.9": 1.0}, "ldr_x0": {"0.9": ldr_x0}}


class FakeRun:
    """Just the evaluations and sample count a Run exposes, for checkpoint choice (chance is patched in)."""

    def __init__(self, evaluations):
        self.evaluations = evaluations
        self.final = evaluations[-1]
        self.config = {"eval": {"num_samples": 256}}


@pytest.fixture
def parity_chance(monkeypatch):
    from ldrkit.analysis import phases
    monkeypatch.setattr(phases, "chance_breaking", lambda run: 0.5)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """The stored cpu runs of the chapter, restored into a module-wide runs folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LDRKIT_RUNS", str(tmp_path_factory.mktemp("runs")))
    runs = {name: get_run(name, "cpu", 0, progress=False) for name in parens.NAMES}
    yield runs
    mp.undo()


# --- rules and glyphs ----------------------------------------------------------------------------------
def test_text_round_trip_and_rule_checks():
    assert parens.as_text([1, 1, -1, -1]) == "(())"
    assert parens.from_text("(())").tolist() == [[1, 1, -1, -1]]
    rows = parens.word_checks({Parity(8): ["(())()()", "((()()()"], Dyck(12): ["(()())()(())", "(()))(()()()"]})
    assert [r["reading"] for r in rows] == ["valid", "breaks the rule", "valid", "breaks the rule"]


def test_grammar_rows_count_the_supports():
    grammars = (Parity(8), Dyck(12))
    rows = parens.grammar_rows(grammars)
    assert rows[0]["valid sequences"] == 2 ** 7
    assert rows[1]["valid sequences"] == math.comb(12, 6) // 7  # Catalan C_6 = 132
    assert all(g.is_valid(parens.from_text(r["example"]))[0] for g, r in zip(grammars, rows))


def test_renderer_reader_and_controls():
    show = parens.glyph_renderer("parity-parens-L8-unet", "cpu", 0)
    assert show.length == 8 and show.signal_shape == (1, 8, 64)
    rows = parens.ocr_noise_rows(show, seed=0, sigmas=(0.0, 1.0))
    assert rows[0]["read correctly"] == 1.0 and rows[0]["misread (legible but wrong)"] == 0.0
    assert rows[1]["cells legible"] < rows[0]["cells legible"]
    controls = parens.ocr_controls(show, seed=0, n=16)
    assert controls["blank"] == 0.0 and controls["uniform_noise"] < 0.05
    fig = parens.plot_renders(show)
    assert len(fig.axes) == 4


def test_parameter_rows_instantiate_the_models():
    rows = parens.parameter_rows(("parity-parens-L8-unet",), profiles=("cpu",))
    assert rows[0]["cpu image"] == "(1, 8, 64)"
    assert int(rows[0]["cpu parameters"].replace(",", "")) > 10_000


# --- chance levels ---------------------------------------------------------------------------------------
def test_independent_in_dataset_is_exact():
    train = np.array([[1, 1], [1, -1]])  # position 0 always +1; position 1 half and half
    assert parens.independent_in_dataset(train) == pytest.approx(1.0)
    train = np.array([[1, 1], [-1, -1]])  # each position half and half: each training row has probability 1/4
    assert parens.independent_in_dataset(train) == pytest.approx(0.5)


def test_broken_interval_contains_the_fraction():
    low, high = parens.broken_interval(record(invalid=0.5, hallucination=0.25), 200)
    assert low < 0.5 < high
    assert all(math.isnan(v) for v in parens.broken_interval(record(invalid=1.0, hallucination=0.0), 200))


# --- verdicts on hand-made records ------------------------------------------------------------------
def test_parity_verdict():
    assert parity_at(0.5).startswith("reproduced")
    assert parity_at(0.9).startswith("not reproduced: parity broken more")
    assert parity_at(0.1).startswith("not reproduced: parity kept")
    assert parens.parity_verdict(record(invalid=0.6, hallucination=0.2), 256).startswith("not reached")


def parity_at(broken: float) -> str:
    return parens.parity_verdict(record(invalid=0.0, hallucination=broken, in_dataset=0.0,
                                        extrapolation=1 - broken), 1000)


def test_dyck_verdict():
    assert parens.dyck_verdict(True, 0.95, 0.3, 0.8, 0.65).startswith("reproduced")
    assert parens.dyck_verdict(True, 0.95, 0.3, 0.6, 0.65) == "partly: hallucination phase, the rule partly learned"
    assert parens.dyck_verdict(True, 0.90, 0.63, 0.98, 0.79) == "partly: hallucination phase, the rule partly learned"
    assert parens.dyck_verdict(True, 0.90, 0.85, 0.98, 0.79) == "partly: hallucination phase, the rule not learned"
    # no evaluation half legible with the rule at chance: no phase, whatever the rest says
    assert parens.dyck_verdict(False, 0.95, 0.2, 0.9, 0.6).startswith("not reproduced")


def test_memorisation_verdict():
    assert parens.memorisation_verdict(0.8, 0.25).startswith("reproduced")
    assert parens.memorisation_verdict(0.5, 0.25).startswith("partly")
    assert parens.memorisation_verdict(0.3, 0.25).startswith("not reached: in-dataset")
    assert parens.memorisation_verdict(math.nan, 0.25) == "not reached: no legible samples"


def test_closest_oracle_names_a_clear_winner_and_reports_ties():
    d = {"rule": {"0.7": 2.0}, "product": {"0.7": 1.0}, "memoriser": {"0.7": 3.0}}
    assert parens.closest_oracle(d, "0.7") == "product"
    d = {"rule": {"0.9": 1.01}, "product": {"0.9": 1.0}, "memoriser": {"0.9": 2.0}}
    assert parens.closest_oracle(d, "0.9") == "tie (product, rule)"


# --- checkpoint choice ---------------------------------------------------------------------------------
def test_saliency_step_is_the_phase(parity_chance):
    ev = [record(0, invalid=1.0, hallucination=0.0, in_dataset=0, extrapolation=0),
          record(10, invalid=0.5, hallucination=0.1, in_dataset=0.2, extrapolation=0.2),
          record(20, invalid=0.5, hallucination=0.4, in_dataset=0.05, extrapolation=0.05),
          record(30, invalid=0.5, hallucination=0.2, in_dataset=0.15, extrapolation=0.15)]
    assert parens.saliency_step(FakeRun(ev)) == 20


def test_saliency_step_without_legible_samples_is_the_last_evaluation(parity_chance):
    blank = dict(invalid=1.0, hallucination=0.0, in_dataset=0.0, extrapolation=0.0)
    assert parens.saliency_step(FakeRun([record(s, **blank) for s in (0, 20, 40)])) == 40


def test_gallery_order_takes_every_category_present():
    labels = np.array(["hallucination"] * 6 + ["invalid", "extrapolation"], dtype=object)
    order = parens.gallery_order(labels, k=4)
    assert [labels[i] for i in order] == ["hallucination", "hallucination", "extrapolation", "invalid"]
    assert len(parens.gallery_order(labels, k=20)) == 8


def test_summary_table_rows_and_glue():
    rows = parens.summary_table_rows({"a": {"peak_step": 3, "verdict": "x"}})
    assert rows == [{"quantity": "peak step", "a": "3"}, {"quantity": "verdict", "a": "x"}]
    glued = {}
    parens.glue_summary(lambda k, v: glued.__setitem__(k, v), "p", {"n": 2, "f": 0.5, "verdict": "x"})
    assert glued == {"p_n": 2, "p_f": 0.5}


# --- on the stored cpu runs -----------------------------------------------------------------------------
def test_stored_rule_breaking_checkpoints_are_kept(stored):
    for name in parens.GALLERY_RUNS:
        assert parens.saliency_step(stored[name]) in stored[name].steps(), name


def test_stored_parity_runs_break_the_rule_at_chance(stored):
    for name in parens.PARITY_RUNS:
        s = parens.parity_summary(stored[name])
        assert s["verdict"].startswith("reproduced"), (name, s)
        assert s["legible_last"] > s["legible_first"]


def test_stored_l8_unet_has_not_memorised(stored):
    s = parens.memorisation_summary(stored[parens.MEMORISATION_RUN])
    assert s["train_size"] == 64
    # independent symbols with near-uniform training marginals: about 64 of 256 sequences
    assert s["independent_in_dataset"] == pytest.approx(0.25, abs=0.05)
    assert s["verdict"].startswith("not reached")


def test_stored_dyck_runs(stored):
    unet, dit = (parens.dyck_summary(stored[n]) for n in parens.DYCK_RUNS)
    # the Dyck UNet breaks the rule less than independent symbols from its first legible evaluation on (0.52 of
    # legible, chance 0.79): no phase by the book's definition; the DiT has one, then partly learns the rule
    assert unet["verdict"] == "not reproduced: no hallucination phase"
    assert dit["verdict"] == "partly: hallucination phase, the rule partly learned"
    chance = 1 - independent_valid_probability(stored["dyck-parens-unet"].setup.grammar,
                                               stored["dyck-parens-unet"].setup.split.train)
    assert unet["chance"] == pytest.approx(chance)


def test_stored_tables_and_closest_oracle(stored):
    rows = parens.summary_rows(stored)
    assert [r["run"] for r in rows] == list(parens.NAMES)
    parity = [r for r in rows if r["run"].startswith("parity")]
    assert all(r["same, independent symbols"] == pytest.approx(0.5, abs=0.02) for r in parity)
    oracle = parens.oracle_rows(stored)
    assert {r["closest"] for r in oracle if r["√ᾱ"] == "0.7"} == {"product"}
    assert all(r["closest"].startswith("tie") for r in oracle if r["√ᾱ"] == "0.9")
    assert len(parens.ldr_rows(stored)) == 2 * len(parens.NAMES)
    assert parens.training_rows(stored)[0]["samples per evaluation"] == 256


def test_stored_figures(stored):
    import matplotlib.pyplot as plt

    two = {name: stored[name] for name in parens.DYCK_RUNS}
    for fig in (parens.plot_category_grid(two, "cpu", 0), parens.plot_ldr_grid(two, "cpu", 0),
                parens.plot_oracle_distances(two, "cpu", 0), parens.plot_gallery(stored["dyck-parens-unet"], k=4)):
        assert fig.axes
        plt.close(fig)
    read = parens.readings(stored["dyck-parens-unet"], stored["dyck-parens-unet"].samples()[:3])
    assert len(read) == 3 and all(len(r) == 12 for r in read)


def test_saliency_maps_are_cached(stored):
    run = stored["parity-parens-L8-unet"]
    last = run.final["step"]
    rows = parens.saliency_maps(run, seed=0, steps=[last])
    m = rows[0]
    saliency = np.asarray(m["saliency_eps"])
    assert saliency.shape == (8, 64) and np.asarray(m["x0_hat"]).shape == (8, 64)
    cell = saliency[:, 8:16].sum() / saliency.sum()  # the LDR is the probed cell's share of the saliency
    assert cell == pytest.approx(m["ldr_eps"], rel=1e-4)
    assert 0.0 < m["ldr_x0"] <= 1.0
    assert m["ldr_eps"] > 0.9  # at sqrt(alpha_bar)=0.1 the identity term of the eps Jacobian dominates
    again = parens.saliency_maps(run, seed=0, steps=[last])  # served from the cache: no model call
    assert again == rows
    table = parens.saliency_rows({"parity-parens-L8-unet": rows})
    assert table[0]["paper (eps, Fig. 15)"] == parens.PAPER_FIG15_LDR
    fig = parens.plot_saliency(run, rows)
    assert len(fig.axes) == 4


def test_own_ldr_rows_read_the_network_against_its_own_oracles(monkeypatch):
    """Only levels where the exact denoisers differ are shown, with the network more or less local than the rule;
    a Dyck run is read at its phase checkpoint and at its last."""
    def result(net):
        values = {"network": {"0.1": net, "0.9": 1.0}, "rule": {"0.1": 0.6, "0.9": 1.0}, "product": {"0.1": 1.0, "0.9": 1.0},
                  "memoriser": {"0.1": 0.9, "0.9": 1.0}}
        return {"x0": values, "x0_sem": {k: {"0.1": 0.01, "0.9": 0.0} for k in values}, "eps": values,
                "eps_sem": {k: {"0.1": 0.01, "0.9": 0.0} for k in values}}

    asked = []
    monkeypatch.setattr(parens, "ldr_beside_own_oracles",
                        lambda run, n, seed, step: asked.append((run.name, step)) or result(run.net))
    monkeypatch.setattr(parens, "run_phase", lambda run: {"record": {"step": 10}, "kind": "phase"})

    class Stub:
        def __init__(self, name, net):
            self.name, self.net = name, net

        def steps(self):
            return [0, 10, 20]

    rows = parens.own_ldr_rows({"parity-parens-L16-unet": Stub("p", 0.95), "dyck-parens-unet": Stub("d", 0.3)}, 4)
    assert asked == [("p", 20), ("d", 10), ("d", 20)]
    assert [r["√ᾱ"] for r in rows] == ["0.1"] * 3   # 0.9: the oracles agree, no reading
    assert rows[0]["against the rule"] == "more local" and rows[1]["against the rule"] == "less local"
