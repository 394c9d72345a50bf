"""ldrkit.analysis.ldr_probe: the LDR probe chapter's computations, verdict and figures."""
import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ldrkit.probes import ldr as L  # noqa: E402
from ldrkit.analysis import ldr_probe as P  # noqa: E402
from ldrkit.analysis.overtraining import ldr_over_training  # noqa: E402
from ldrkit.denoisers.schedule import Schedule  # noqa: E402
from ldrkit.runs.request import get_run  # noqa: E402
from ldrkit.spec.selections import analysis_sizes  # noqa: E402

torch.set_num_threads(1)


class Linear(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.register_buffer("a", a)

    def forward(self, x, t):
        return x @ self.a.T


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    """The stored cpu run of parity-mlp-L16, restored from the results store (a copy; nothing trains)."""
    return get_run("parity-mlp-L16", "cpu", 0, progress=False, out=tmp_path_factory.mktemp("runs") / "parity")


def test_estimator_sizes():
    cpu, smoke = P.estimator_sizes(analysis_sizes("cpu")), P.estimator_sizes(analysis_sizes("smoke"))
    assert cpu["probes"] == (4, 8, 16, 32, 64, 128) and cpu["image"] == (1, 16, 64)
    assert smoke["probes"] == (4, 8, 16) and smoke["n"] < cpu["n"]


def _rows(errors, ses, ks=(4, 16, 64)):
    return [{"probes": k, "mean |error|": e, "error sem": 0.0, "mean reported se": s}
            for k, e, s in zip(ks, errors, ses)]


def test_estimator_verdict_branches():
    rate = [0.1 / math.sqrt(k / 4) for k in (4, 16, 64)]
    assert P.error_slope(_rows(rate, rate)) == pytest.approx(-0.5)
    assert P.estimator_verdict(_rows(rate, [e / 0.8 for e in rate])) == \
        "the error falls as 1/sqrt(K), and the reported standard error tracks it"
    assert P.estimator_verdict(_rows([0.1, 0.1, 0.1], [0.1, 0.1, 0.1])).startswith("the error does not fall")
    assert P.estimator_verdict(_rows(rate, [10 * e for e in rate])).endswith("does not track it")
    assert P.estimator_verdict(_rows(rate[:1], rate[:1], ks=(4,))).startswith("undecided")


def _linear_demo(seed=0):
    g = torch.Generator().manual_seed(seed)
    d = 32
    a = torch.randn(d, d, generator=g) + 3 * torch.eye(d)
    region = torch.zeros(d, dtype=torch.bool)
    region[:8] = True
    return P.ProbeDemo(Linear(a), Schedule(), region, torch.randn(16, d, generator=g), 500)


def test_exact_vs_estimate_error_falls_as_one_over_sqrt_k():
    # The ratio estimator's error is O(1/sqrt(K)) and ldr reports its standard error (delta method).
    demo = _linear_demo()
    exact, rows = P.exact_vs_estimate(demo, probes=(4, 16, 64, 256), repeats=4, seed=0)
    assert 0 < exact.mean < 1
    assert P.estimator_verdict(rows) == "the error falls as 1/sqrt(K), and the reported standard error tracks it"
    plt.close(P.plot_estimator_error(rows))


def test_exact_parity_denoiser_is_local_at_high_noise():
    table = P.exact_parity_ldr(length=4, position=1, n=8, seed=0)
    assert table["x0"]["0.1"] > 0.95            # the posterior's coupling is a product of tiny terms
    assert table["x0"]["0.9"] < table["x0"]["0.1"]
    rows = P.levels_rows(table)
    assert rows[0][""] == "eps" and len(rows[0]) == 6
    plt.close(P.plot_exact_parity(table, length=4))


def test_saliency_panels_sum_to_the_ldr():
    demo = _linear_demo()
    panels = P.saliency_panels(demo, probes=16, seed=0)
    assert list(panels) == ["eps, exact", "x0, exact", "eps, 16 probes"]
    check = P.saliency_check(panels["eps, exact"], demo.region)
    assert check["inside R / total"] == pytest.approx(check["LDR"], abs=1e-5) and check["heatmap sum"] > 0


def test_saliency_figure_on_an_image_region():
    region = torch.zeros(1, 4, 8, dtype=torch.bool)
    region[:, :2, 2:4] = True
    res = L.LDRResult(torch.tensor([0.5]), saliency=np.random.rand(1, 1, 4, 8))
    plt.close(P.plot_saliency_panels({"a": res}, region))


def test_unet_demo_shapes():
    sizes = {"n": 2, "image": (1, 8, 32), "side": 8}
    demo = P.unet_demo(sizes, seed=0)
    assert demo.inputs.shape == (2, 1, 8, 32) and int(demo.region.sum()) == 64
    assert demo.describe()["|R|"] == 64


def test_ldr_outputs_on_the_stored_run_is_cached(stored_run):
    first = P.ldr_outputs(stored_run, n=4, seed=0)
    assert first["step"] == stored_run.steps()[-1] and first["position"] == 1
    for level, value in first["x0"].items():  # eps minus identity is proportional to the x0 rows
        assert 0 <= value <= 1 and first["eps_minus_identity"][level] == pytest.approx(value, abs=1e-4)
    assert P.ldr_outputs(stored_run, n=4, seed=0) == first
    plt.close(P.plot_ldr_outputs(first, stored_run))


def test_ldr_training_rows_from_the_stored_cache(stored_run):
    rows = ldr_over_training(stored_run, method="exact", seed=0)
    flat = P.ldr_training_rows(rows)
    assert [r["step"] for r in flat] == [r["step"] for r in rows] and "x0@0.1" in flat[0]
    plt.close(P.plot_ldr_training(rows))


def test_explorer_on_the_stored_run(stored_run):
    view = P.explorer_view(stored_run, stored_run.steps()[-1], 0.5, 1, sample=2, seed=0)
    assert view["eps"].shape == (16,) and view["region"].sum() == 1
    inside = view["x0"][view["region"]].sum() / view["x0"].sum()
    assert inside == pytest.approx(view["x0_ldr"], abs=1e-5)
    plt.close(P.plot_explorer(view))
    P.explorer(stored_run)()
    plt.close("all")
