"""The coupling score kappa (ldrkit.probes.kappa): calibrated by the exact oracles on the same inputs.

Every bound below is exact mathematics: kappa(rule) = 1 and kappa(product) = 0 by construction, a mixture
a rule + (1 - a) product has kappa = a (the Jacobian is linear in the output), the optimal linear denoiser of
parity's valid sequences has no cross-region coupling (pairwise-independent symbols), the x0 output's cross
block is the eps output's times a constant, and the probe estimate is unbiased (agrees within its s.e.).
"""
import math

import pytest
import torch

from ldrkit.probes import kappa as C
from ldrkit.probes import ldr as L
from ldrkit.denoisers.oracles import build_oracle
from parity_oracles import SCHEDULE, Mix
from parity_oracles import parity_setup as setup_for

TOL = 1e-6
@pytest.fixture(scope="module")
def parity4():
    s = setup_for(4)
    return s, {w: build_oracle(s, w) for w in ("rule", "product", "memoriser")}, s.renderer.region(1)


def separable(table):
    levels = [lv for lv, r in table.items() if r["separable"]]
    assert levels, "no separable level: the test would check nothing"
    return levels


@pytest.mark.parametrize("method", ["exact", "estimate"])
def test_oracles_calibrate_and_mixture_is_linear(parity4, method):
    s, o, region = parity4
    models = {"rule": o["rule"], "product": o["product"], "mix": Mix(0.3, o["rule"], o["product"])}
    tab = C.coupling_table(models, o["rule"], o["product"], s.schedule, region, s.train_data, n=8, method=method,
                           probes=4)
    for lv in separable(tab["rule"]):
        assert abs(tab["rule"][lv]["value"] - 1) < TOL and abs(tab["rule"][lv]["explained"] - 1) < TOL
        assert abs(tab["product"][lv]["value"]) < TOL and tab["product"][lv]["energy"] < TOL
        assert abs(tab["mix"][lv]["value"] - 0.3) < TOL
    # high noise for parity: every other cell's evidence enters as a product, the oracles coincide
    assert tab["rule"]["0.1"]["value"] is None and not tab["rule"]["0.1"]["separable"]
    assert "signal" in tab["rule"]["0.1"]["reason"] and tab["rule"]["0.1"]["signal"] < C.SEPARABLE_MIN_SIGNAL


def test_product_cross_block_is_zero_and_x0_gives_the_same_kappa(parity4):
    s, o, region = parity4
    t = s.schedule.timestep_for(0.7)
    x = L.noised_inputs(s.train_data, s.schedule, t, 6, torch.Generator().manual_seed(1))
    rows = {w: L.jacobian_rows(m, x, t, region) for w, m in o.items()}
    assert rows["product"][:, :, ~region].abs().max() == 0  # the posterior factorises over cells
    eps = C.kappa_from_rows(rows["memoriser"], rows["rule"], rows["product"], region)
    a = float(s.schedule.sqrt_alpha_bar(t))
    x0 = {w: L.output_rows(r, region, a, "x0") for w, r in rows.items()}
    via_x0 = C.kappa_from_rows(x0["memoriser"], x0["rule"], x0["product"], region)
    assert eps["separable"] and via_x0["value"] == pytest.approx(eps["value"], rel=1e-4, abs=1e-6)
    assert via_x0["energy"] == pytest.approx(eps["energy"], rel=1e-4)
    single = C.coupling(o["memoriser"], o["rule"], o["product"], s.schedule, region, x, t)
    assert single["value"] == pytest.approx(eps["value"], rel=1e-6)


def test_linear_denoiser_formula_and_parity_has_no_linear_coupling():
    s = setup_for(5)
    support = s.renderer.render(s.grammar.enumerate())
    lin = C.LinearGaussianDenoiser(support, s.schedule)
    t = s.schedule.timestep_for(0.6)
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    abar = float(s.schedule.alphas_cumprod[t])
    mu, cov = support.mean(0), torch.cov(support.T, correction=0)
    gain = math.sqrt(abar) * cov @ torch.linalg.inv(abar * cov + (1 - abar) * torch.eye(5))
    x0 = mu + (gain @ (x - math.sqrt(abar) * mu).T).T
    eps = lin(x, torch.full((3,), t))
    assert torch.allclose(eps, (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar), atol=1e-5)
    rule, product = build_oracle(s, "rule"), build_oracle(s, "product")
    region = s.renderer.region(2)
    tab = C.coupling_table({"linear": lin}, rule, product, s.schedule, region, s.train_data, n=8)
    for lv in separable(tab["linear"]):
        assert abs(tab["linear"][lv]["value"]) < 1e-5  # cross covariance of parity's symbols is 0


def test_estimate_agrees_with_exact_within_its_se():
    s = setup_for(4, {"type": "embedding", "dim": 3})  # a region of 3 elements: probes are not exact
    o = {w: build_oracle(s, w) for w in ("rule", "product", "memoriser")}
    region = s.renderer.region(1)
    kw = dict(levels=(0.9,), n=8)
    exact = C.coupling_levels(o["memoriser"], o["rule"], o["product"], s.schedule, region, s.train_data, **kw)["0.9"]
    est = C.coupling_levels(o["memoriser"], o["rule"], o["product"], s.schedule, region, s.train_data,
                            method="estimate", probes=4, **kw)["0.9"]
    assert exact["separable"] and est["separable"] and est["se"] > 0
    assert abs(est["value"] - exact["value"]) < 3 * est["se"]
    assert est["probes"] == 4 and exact["probes"] is None


def test_glyph_images_calibrate_with_shared_probes(monkeypatch):
    s = setup_for(4, {"type": "glyph", "cell": 8})
    o = {w: build_oracle(s, w) for w in ("rule", "product")}
    # small glyph images separate weakly; the calibration is exact anyway
    monkeypatch.setattr(C, "SEPARABLE_MIN_SIGNAL", 1e-6)
    models = {"rule": o["rule"], "product": o["product"], "mix": Mix(0.7, o["rule"], o["product"])}
    tab = C.coupling_table(models, o["rule"], o["product"], s.schedule, s.renderer.region(2), s.train_data,
                           levels=(0.4,), n=3, method="estimate", probes=4)
    assert tab["rule"]["0.4"]["separable"]
    assert tab["rule"]["0.4"]["value"] == pytest.approx(1, abs=TOL)
    assert tab["product"]["0.4"]["value"] == pytest.approx(0, abs=TOL)
    assert tab["mix"]["0.4"]["value"] == pytest.approx(0.7, abs=1e-5)


def test_bad_arguments(parity4):
    s, o, region = parity4
    x = L.noised_inputs(s.train_data, s.schedule, 500, 2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="method"):
        C.coupling(o["memoriser"], o["rule"], o["product"], s.schedule, region, x, 500, method="nope")
    with pytest.raises(ValueError, match="probes"):
        C.coupling(o["memoriser"], o["rule"], o["product"], s.schedule, region, x, 500, method="estimate", probes=1)
    with pytest.raises(ValueError, match="whole signal"):
        C.coupling(o["memoriser"], o["rule"], o["product"], s.schedule, torch.ones(4, dtype=torch.bool), x, 500)


def test_coupling_over_training_cached_and_calibration(tmp_path, monkeypatch):
    from ldrkit.analysis import kappa_calibration as R
    from ldrkit.runs.pipeline import run_training
    from ldrkit.runs.run import Run
    config = {
        "grammar": {"name": "parity", "length": 4}, "split": {"train_fraction": 0.5, "seed": 0},
        "render": {"type": "scalar"}, "schedule": SCHEDULE,
        "model": {"type": "mlp", "hidden": 16, "depth": 2},
        "train": {"steps": 2, "batch_size": 8, "lr": 1e-3, "eval_every": 2, "seed": 0},
        "eval": {"num_samples": 4, "sample_steps": 2, "ldr_samples": 3, "ldr_position": 1},
    }
    run_training(config, tmp_path, progress=False)
    run = Run(tmp_path)
    rows = R.coupling_over_training(run, n=4, levels=(0.1, 0.7))
    assert [r["step"] for r in rows] == [0, 2]
    assert rows[0]["network"]["0.1"]["value"] is None and rows[0]["network"]["0.7"]["separable"]
    assert rows[0]["memoriser"] == rows[1]["memoriser"]  # the fixed control: same inputs at every step
    calls = []
    real = R.coupling_table
    monkeypatch.setattr(R, "coupling_table", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert R.coupling_over_training(run, n=4, levels=(0.1, 0.7)) == rows and not calls
    cal = R.oracle_calibration(run, n=4, levels=(0.1, 0.7))
    assert cal["calibrated"] is True and set(cal["kappa"]) == {"rule", "product", "memoriser", "linear", "network"}
    assert len(calls) == 1
    R.oracle_calibration(run, n=4, levels=(0.1, 0.7))
    assert len(calls) == 1  # cached
    table = R.format_calibration_table(cal)
    assert "n.s." in table and "1.000" in table and len(table.splitlines()) == 3 + 6 + 3
    assert R.oracle_calibration(run, n=4, levels=(0.1,))["calibrated"] is None  # nothing separable to check
    with pytest.raises(ValueError):
        R.coupling_over_training(run, n=1)


def _fake(values: dict, rule_signal=0.1) -> dict:
    """A calibration dict as `oracle_calibration` returns it: values {name: {level: (kappa, se) or None}}."""
    def res(v):
        sep = v is not None
        return {"value": v[0] if sep else None, "se": v[1] if sep else None, "signal": rule_signal if sep else 1e-6,
                "separable": sep, "energy": 0.5 if sep else None}
    return {"step": 7, "method": "exact", "probes": None, "n": 8,
            "kappa": {name: {lv: res(v) for lv, v in per.items()} for name, per in values.items()}}


def _ruler(network: dict) -> dict:
    levels = list(network)
    on = {lv: network[lv] is not None for lv in levels}
    return _fake({"rule": {lv: (1.0, 0.0) if on[lv] else None for lv in levels},
                  "product": {lv: (0.0, 0.0) if on[lv] else None for lv in levels},
                  "memoriser": {lv: (0.6, 0.1) if on[lv] else None for lv in levels}, "network": network})


def test_calibration_rows_one_per_level():
    from ldrkit.analysis import kappa_calibration as R
    rows = R.calibration_rows(_ruler({"0.5": None, "0.9": (0.1234, 0.0456)}))
    assert [r["√ᾱ"] for r in rows] == ["0.5", "0.9"]
    assert rows[0]["network"] == "n.s." and rows[0]["network energy"] is None and rows[0]["rule signal"] == "1.0e-06"
    assert rows[1]["network"] == "0.123 ± 0.046" and rows[1]["rule"] == "1.000 ± 0.000"
    assert rows[1]["memoriser energy"] == 0.5 and list(rows[1])[2:4] == ["rule", "product"]


@pytest.mark.parametrize("network, text, sides", [
    ({"0.5": None, "0.8": (0.1, 0.1), "0.9": (0.0, 0.01)}, "closer to the product than to the rule", ["product"] * 2),
    ({"0.8": (0.9, 0.1), "0.9": (0.7, 0.05)}, "closer to the rule than to the product", ["rule"] * 2),
    ({"0.8": (0.1, 0.01), "0.9": (0.4, 0.1)}, "not on one side", ["product", "undecided"]),
    ({"0.8": (0.1, 0.01), "0.9": (0.9, 0.1)}, "not on one side", ["product", "rule"]),
    ({"0.5": None, "0.7": None}, "not separable at any level", []),
])
def test_coupling_verdict(network, text, sides):
    from ldrkit.analysis import kappa_calibration as R
    v = R.coupling_verdict(_ruler(network))
    assert v["text"].startswith(text) and list(v["sides"].values()) == sides
    if sides:
        sep = [x for x in network.values() if x]
        assert v["at_most"] == pytest.approx(max(k + R.VERDICT_SE * se for k, se in sep))
        assert v["max_kappa"] == pytest.approx(max(k for k, _ in sep))
    else:
        assert math.isnan(v["at_most"]) and math.isnan(v["max_kappa"]) and v["levels"] == []
    # the threshold is the constant: kappa 0.25 +- 0.1 is on the product side at 2 s.e., undecided at 3
    one = _ruler({"0.9": (0.25, 0.1)})
    assert R.coupling_verdict(one)["sides"]["0.9"] == "product"
    assert R.coupling_verdict(one, n_se=3)["sides"]["0.9"] == "undecided"


def test_plot_calibration_draws_separable_levels_only():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ldrkit.analysis import kappa_calibration as R
    fig, ax = plt.subplots()
    R.plot_calibration(_ruler({"0.5": None, "0.8": (0.1, 0.1), "0.9": (0.0, 0.01)}), ax)
    labels = ax.get_legend_handles_labels()[1]
    assert set(labels) == {"network", "memoriser", "product oracle (0)", "rule oracle (1)"}  # no linear: not given
    assert len(ax.patches) == 1  # the one level that is not separable, shaded
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "0.8", "0.9"]
    plt.close(fig)


def test_network_is_on_the_products_side_on_the_stored_cpu_run():
    """The chapter's verdict on the stored parity-mlp-L16 cpu run (few inputs, two levels: cheap, exact rows)."""
    from ldrkit.analysis import kappa_calibration as R
    from ldrkit.runs.request import get_run
    cal = R.oracle_calibration(get_run("parity-mlp-L16", "cpu", 0, progress=False), n=8, levels=(0.85, 0.9))
    assert cal["calibrated"] is True
    v = R.coupling_verdict(cal)
    assert v["levels"] == ["0.85", "0.9"] and v["text"].startswith("closer to the product than to the rule")
    assert v["at_most"] < R.VERDICT_MIDPOINT
