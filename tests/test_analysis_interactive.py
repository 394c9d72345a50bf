"""ldrkit.analysis.interactive and provenance: the website's figures hold the values the analysis layer computes."""
import math

import numpy as np
import pytest
import torch

from ldrkit.theory import hypercube as H
from ldrkit.analysis import interactive as I
from ldrkit.analysis import ldr_probe as probe_figs
from ldrkit.analysis.provenance import provenance_line, run_provenance
from ldrkit.probes.estimates import wilson
from ldrkit.runs.request import get_run

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    """The stored cpu run of parity-mlp-L16, restored from the results store (a copy; nothing trains)."""
    return get_run("parity-mlp-L16", "cpu", 0, progress=False, out=tmp_path_factory.mktemp("runs") / "parity")


def test_saliency_views_are_the_explorers_views(stored_run):
    data = I.saliency_views(stored_run, samples=3)
    assert data["steps"] == stored_run.steps() and len(data["positions"]) == 16
    assert len(data["views"]) == len(data["steps"]) * len(data["levels"]) * 16 * 3
    step, li, r, s = data["steps"][-1], 2, 5, 2
    view = probe_figs.explorer_view(stored_run, step, data["levels"][li], r, sample=s)
    eps, x0, ldr_eps, ldr_x0 = data["views"][f"{len(data['steps']) - 1},{li},{r},{s}"]
    np.testing.assert_allclose(eps, view["eps"], rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(x0, view["x0"], rtol=1e-3, atol=1e-9)
    # the LDR is the heatmap's share inside the region, and the views' rounding keeps 4 digits
    assert ldr_eps == pytest.approx(view["eps_ldr"], rel=1e-3) and ldr_x0 == pytest.approx(view["x0_ldr"], rel=1e-3)
    assert ldr_eps == pytest.approx(eps[r] / sum(eps), rel=2e-3)
    html = I.saliency_explorer(stored_run, samples=3).html()
    assert "plotly-graph-div" in html and "cdn" not in html.lower() and len(html) < 1_000_000


def test_category_traces_carry_wilson_intervals(stored_run):
    n = stored_run.config["eval"]["num_samples"]
    for tr in I.category_traces(stored_run):
        for v, lo, hi in zip(tr["values"], tr["low"], tr["high"]):
            assert (lo, hi) == pytest.approx(wilson(round(v * n), n)) and lo <= v <= hi
    fig = I.training_explorer({"a": stored_run, "b": stored_run}).fig
    menu = fig.layout.updatemenus[0]
    assert [b.label for b in menu.buttons] == ["a", "b"]
    assert sum(menu.buttons[1].args[0]["visible"]) == len(fig.data) // 2


def test_k_grid_is_the_closed_form():
    grid = I.k_axis_grid(levels=(0.5, 0.9), ds=np.linspace(-2, 2, 81))
    for row in grid["rows"]:
        sab = row["sqrt_alpha_bar"]
        k = math.sqrt(1 - sab**2) / 2 * H.f_on_axis(grid["D"], sab)
        np.testing.assert_allclose(row["K"], k)
        assert row["K(D*)"] >= k.max() - 1e-12 and row["K(D*)"] <= row["bound"]  # the maximiser, under Lemma A.5
    fig = I.k_explorer(levels=(0.5, 0.9), ds=np.linspace(-2, 2, 81)).fig
    assert len(fig.layout.sliders[0].steps) == 2


def test_provenance_names_profile_seed_and_stored_commit(stored_run):
    p = run_provenance(stored_run)
    assert p["source"] == "results store" and len(p["commit"]) == 40
    line = provenance_line({"L16": stored_run})
    assert "profile `cpu`" in line and "seed 0" in line and p["commit"][:7] in line
    assert "profile `smoke`" in provenance_line(profile="smoke", seed=1)


def test_a_provenance_note_names_each_commit_once_and_folds_its_runs(monkeypatch):
    from ldrkit.analysis import provenance as P
    made = {"a": ("c" * 40, False, "results store"), "b": ("c" * 40, False, "results store"),
            "d": ("d" * 40, True, "trained here")}
    monkeypatch.setattr(P, "run_provenance", lambda name: {"experiment": name, "profile": "cpu", "seed": 0,
                                                           "steps": 5000, "commit": made[name][0],
                                                           "dirty": made[name][1], "source": made[name][2]})
    one_commit = P.provenance_note(["a", "b"])
    assert one_commit.text == "**Made with** profile `cpu`, seed 0: 2 runs, ldrkit at commit `ccccccc` (results store)."
    assert one_commit.runs == ["a, seed 0: 5000 steps", "b, seed 0: 5000 steps"]
    page = one_commit._repr_html_()
    assert page.startswith('<details class="ldrkit-provenance"><summary><strong>Made with</strong> profile <code>cpu')
    assert page.count("<li>") == 2 and page.count("ccccccc") == 1
    mixed = P.provenance_note(["a", "b", "d"])
    assert "`ccccccc` (results store, 2 runs), `ddddddd+local changes` (trained here)" in mixed.text
    assert mixed.runs[2] == "d, seed 0: 5000 steps (`ddddddd+local changes`, trained here)"
    assert len(mixed.text.split()) < 25 and repr(mixed).count("\n") == 3
