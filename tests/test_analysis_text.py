"""The real-text chapter's analysis (ldrkit.analysis.real_text): reader cases, fractions, phases, verdicts,
the cached saliency rows, tables and figures, on the stored cpu runs (restored, never trained) and smoke setups."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ldrkit.analysis import real_text as tr  # noqa: E402
from ldrkit.runs.request import get_run  # noqa: E402


def record(step, invalid, hallucination, in_dataset=0.0, ldr_x0=0.9):
    return {"step": step, "categories": {"invalid": invalid, "hallucination": hallucination, "in_dataset": in_dataset,
                                         "extrapolation": 1.0 - invalid - hallucination - in_dataset},
            "ldr": {"0.2": 1.0}, "ldr_x0": {"0.2": ldr_x0}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The stored cpu runs of the chapter, restored into a temporary folder (a copy, no training)."""
    out = tmp_path_factory.mktemp("text_runs")
    return {key: get_run(name, "cpu", 0, out=out / name, progress=False) for key, name in tr.TEXT_RUNS.items()}


@pytest.fixture(scope="module")
def smoke_setups():
    return tr.text_setups("smoke", 0)


# --- pure functions and verdicts on made-up records ------------------------------------------------
class FakeRun:
    """The evaluations and sample count of a run; its chance of misspelling is patched in."""

    def __init__(self, evaluations, n=256):
        self.evaluations, self.final, self.config = evaluations, evaluations[-1], {"eval": {"num_samples": n}}


@pytest.fixture
def misspelling_chance(monkeypatch):
    from ldrkit.analysis import phases
    monkeypatch.setattr(phases, "chance_breaking", lambda run: 0.96)  # independent letters misspell this often


def test_phase_step_is_the_first_legible_evaluation_at_chance(misspelling_chance):
    ev = [record(0, 1.0, 0.0), record(10, 0.6, 0.4), record(20, 0.4, 0.58), record(30, 0.1, 0.9)]
    assert tr.phase_step(FakeRun(ev)) == 20   # step 10 is 40% legible: no reading there
    assert tr.phase_step(FakeRun(ev[:2])) == 10  # never half legible: the most legible evaluation


def test_among_legible_nan_when_nothing_legible():
    values = tr.among_legible([record(0, 1.0, 0.0), record(1, 0.5, 0.25)])
    assert math.isnan(values[0]) and values[1] == pytest.approx(0.5)


def test_hallucination_phase_verdicts(misspelling_chance):
    never = FakeRun([record(0, 1.0, 0.0), record(1, 0.99, 0.01)])
    assert tr.hallucination_phase(never) == {"verdict": "not reached", "peak": None}
    ev = [record(0, 1.0, 0.0), record(1, 0.5, 0.48), record(2, 0.2, 0.3, in_dataset=0.5)]
    phase = tr.hallucination_phase(FakeRun(ev))
    assert phase["verdict"] == "reproduced" and phase["peak"]["step"] == 1
    # legible, but mostly real words: misspelled far less often than independent letters would be
    learned = tr.hallucination_phase(FakeRun([record(0, 0.0, 0.3, in_dataset=0.7)]))
    assert learned["verdict"] == "did not reproduce: rule learned" and learned["peak"]["step"] == 0


def test_memorised_ldr_fell_independent_letters_thresholds():
    assert tr.memorised(record(0, 0.0, 0.5 - 1e-9, in_dataset=tr.MEMORISED))
    assert not tr.memorised(record(0, 0.0, 0.6, in_dataset=0.4))
    assert tr.ldr_fell(0.9, 0.9 - 2 * tr.LDR_FALL) and not tr.ldr_fell(0.9, 0.9 - tr.LDR_FALL / 2)
    assert not tr.ldr_fell(0.5, 0.6)
    assert tr.independent_letters(0.95, 0.96) and not tr.independent_letters(0.8, 0.96)


def test_last_legible():
    ev = [record(0, 1.0, 0.0), record(1, 0.5, 0.5), record(2, 0.99, 0.01)]
    assert tr.last_legible(ev)["step"] == 1
    assert tr.last_legible(ev[:1]) is None


def test_pick_first_k_of_each_kind():
    labels = np.array(["invalid", "hallucination", "in_dataset", "hallucination", "extrapolation", "hallucination"],
                      dtype=object)
    bad, good = tr.pick(labels, 2)
    assert bad.tolist() == [1, 3] and good.tolist() == [2, 4]


# --- the reader ----------------------------------------------------------------------------------
def test_blur_keeps_background_and_smooths():
    x = -torch.ones(2, 1, 12, 24)
    assert torch.allclose(tr.blur(x, 1.0), x)
    x[:, :, 6, 6] = 1.0
    y = tr.blur(x, 1.0)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert y[0, 0, 6, 6] < 1.0 and y[0, 0, 6, 7] > -1.0
    assert float(y.sum()) == pytest.approx(float(x.sum()), abs=1e-3)  # mass kept away from the border


def test_half_and_half(smoke_setups):
    r = smoke_setups["chinese"].renderer
    a, b = r.render(np.array([[0], [1]]))
    mixed = tr.half_and_half(r, a[None], b[None])[0]
    assert torch.equal(mixed[..., : r.size // 2], a[..., : r.size // 2])
    assert torch.equal(mixed[..., r.size // 2:], b[..., r.size // 2:])


def test_reader_cases_decide_as_designed(smoke_setups):
    tr.use_cjk_font()
    cases = tr.reader_cases(smoke_setups["english"], smoke_setups["chinese"])
    assert [c["label"] for c in cases["english"]] == ["in_dataset", "hallucination", "extrapolation", "invalid"]
    assert [c["label"] for c in cases["chinese"]] == ["in_dataset", "hallucination", "invalid"]
    fig = tr.plot_reader_cases(cases, "smoke")
    assert len(fig.axes) == 8
    plt.close(fig)


def test_reader_robustness_clean_legible_blur_not(smoke_setups):
    rows, combos = tr.reader_robustness(smoke_setups["english"], smoke_setups["chinese"], 0,
                                        perturbations=(("noise", 0.05), ("blur", 1.0)), combinations=40)
    small, blurred = rows
    assert small["English legible"] == 1.0 and small["Chinese legible"] == 1.0
    assert small["English misread as another string"] == 0.0
    assert blurred["English legible"] < 0.5 and blurred["Chinese legible"] < 0.5
    assert combos["pairs drawn"] == 40
    assert combos["invented"] + combos["read as a lexicon character"] + combos["invalid"] == pytest.approx(1.0)


def test_chinese_thresholds_and_lexicon_rows(smoke_setups):
    assert [r["check"] for r in tr.chinese_thresholds(smoke_setups["chinese"].renderer)][0] == "is that character"
    rows = tr.lexicon_rows(smoke_setups)
    en = smoke_setups["english"]
    assert rows[0]["training"] == len(en.split.train) and rows[0]["held out"] == len(en.split.held_out)
    assert rows[1]["most frequent"].startswith(smoke_setups["chinese"].grammar.chars[0])


def test_chance_word_matches_independent_sampling(smoke_setups):
    """The exact P(lexicon word) of independent per-position letters against a Monte Carlo draw of them."""
    setup = smoke_setups["english"]
    p = tr.chance_word(setup)
    train = setup.split.train
    rng = np.random.default_rng(0)
    n = 20000
    draws = np.stack([rng.choice(train[:, j], size=n) for j in range(train.shape[1])], axis=1)
    lexicon = {row.tobytes() for row in np.asarray(setup.grammar.enumerate(), dtype=train.dtype)}
    hits = np.mean([row.tobytes() in lexicon for row in draws])
    assert 0 < p < 1
    assert abs(hits - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-3


# --- the stored cpu runs --------------------------------------------------------------------------
def test_tables_of_the_stored_runs(runs):
    rows = tr.training_rows(runs)
    assert [r["run"] for r in rows] == list(tr.TEXT_RUNS.values())
    table = tr.category_table(runs)
    assert len(table) == sum(len(r.evaluations) for r in runs.values())
    assert all(abs(sum(row[c] for c in ("invalid", "hallucination", "in_dataset", "extrapolation")) - 1) < 1e-6
               for row in table)


def test_verdicts_on_the_stored_runs(runs):
    """At the cpu profile both runs reach the hallucination phase and neither memorises (3000 steps)."""
    for run in runs.values():
        phase = tr.hallucination_phase(run)
        assert phase["verdict"] == "reproduced"
        assert phase["peak"]["categories"]["hallucination"] >= 0.5 * (1 - phase["peak"]["categories"]["invalid"])
        assert not tr.memorised(run.evaluations[-1])
    summary = {r["quantity"]: r for r in tr.summary_rows(runs)}
    assert summary["hallucination phase"]["english-words-unet"] == "reproduced"
    assert summary[f"memorised (in_dataset >= {tr.MEMORISED})"]["chinese-chars-unet"] == "not reached"
    en = runs["english"]
    chance = tr.chance_word(en.setup)
    row = tr.independence_row(en, chance)
    assert row["independent letters misspell"] == pytest.approx(1 - chance)
    assert tr.independent_letters(row["model misspells"], 1 - chance) == row["verdict"].startswith("within")


def test_phase_checkpoint_is_stored(runs):
    """The galleries' and the saliency's early checkpoint has its samples and weights in the stored run."""
    for run in runs.values():
        step = tr.phase_step(run)
        assert step in run.steps() and step in run.sample_steps()
        x, labels = tr.labelled_samples(run, step)
        assert len(x) == len(labels) and (labels == "hallucination").any()


def test_misspellings_and_galleries(runs):
    en = runs["english"]
    step = tr.phase_step(en)
    words = set(en.setup.grammar.words)
    found = tr.misspellings(en, step)
    assert found and not words & set(found)
    for key, run in runs.items():
        fig = tr.plot_gallery(run, tr.phase_step(run), key, "cpu", 0, k=4)
        assert len(fig.axes) == 8
        plt.close(fig)
    for fig in (tr.plot_text_categories(runs, "cpu", 0), tr.plot_text_ldr(runs, "cpu", 0)):
        plt.close(fig)


def test_heat_rows_cached(runs, monkeypatch):
    """The saliency rows go through Run.cached: computed once per checkpoint, then read back (the Jacobian
    probe is replaced by a stand-in here; the chapter runs the real one)."""
    from ldrkit.probes import ldr as ldr_probe
    calls = []

    class Fake:
        def __init__(self, shape):
            self.mean, self.saliency = 0.5, np.ones(shape)

    def fake_ldr(model, schedule, region, inputs, **kwargs):
        calls.append(1)
        return {o: Fake(tuple(inputs.shape)) for o in kwargs["outputs"]}

    monkeypatch.setattr(ldr_probe, "ldr", fake_ldr)
    run = runs["chinese"]
    steps = [tr.phase_step(run), run.final["step"]]
    first = tr.heat_rows(run, steps, level=0.1, seed=123)
    again = tr.heat_rows(run, steps, level=0.1, seed=123)
    assert len(calls) == 2 and first == again
    size = run.setup.renderer.size
    assert [h["step"] for h in first] == steps
    assert np.asarray(first[0]["x_t"]).shape == (size, size) and first[0]["x0"] == 0.5
    assert first[0]["x_t"] == first[1]["x_t"]  # the same noised image at both checkpoints
    assert tr.heat_table({"chinese": first})[0]["x0-LDR"] == 0.5
    fig = tr.plot_heat({"chinese": run}, {"chinese": first}, "cpu", 0)
    assert len(fig.axes) == 6
    plt.close(fig)
