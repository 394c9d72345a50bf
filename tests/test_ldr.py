import json
import math

import pytest
import torch
from torch import nn

from ldrkit.probes import ldr as L
from ldrkit.analysis.overtraining import ldr_over_training
from ldrkit.bench.ldr import naive_rows
from ldrkit.denoisers.schedule import Schedule
from ldrkit.denoisers.models import build_model

torch.set_num_threads(1)
SCHEDULE = Schedule()


class Linear(nn.Module):
    """eps(x) = A x on flattened signals: its Jacobian is A everywhere."""

    def __init__(self, a: torch.Tensor, shape):
        super().__init__()
        self.register_buffer("a", a)
        self.shape = tuple(shape)

    def forward(self, x, t):
        return (x.reshape(len(x), -1) @ self.a.T).reshape(len(x), *self.shape)


def exact_ratio(a, region):
    inside = region.reshape(-1)
    block = a[inside]
    return float(block[:, inside].pow(2).sum() / block.pow(2).sum())


@pytest.mark.parametrize("shape", [(6,), (2, 4, 6)])
def test_block_diagonal_map_gives_one(shape):
    d = math.prod(shape)
    region = torch.zeros(d, dtype=torch.bool)
    region[: d // 3] = True
    region = region.reshape(shape)
    a = torch.randn(d, d)
    inside = region.reshape(-1)
    a[inside[:, None] & ~inside[None, :]] = 0  # rows of R see only R
    res = L.ldr(Linear(a, shape), SCHEDULE, region, inputs=torch.randn(3, *shape), t=100)
    assert torch.allclose(res["eps"].values, torch.ones(3), atol=1e-6)


@pytest.mark.parametrize("shape", [(8,), (3, 4, 4)])
def test_known_off_block_mass(shape):
    d = math.prod(shape)
    region = torch.zeros(shape, dtype=torch.bool).reshape(-1)
    region[1:4] = True
    region = region.reshape(shape)
    inside = region.reshape(-1)
    # each row of R: weight 1 on its own element, 0.5 on every element outside R
    a = torch.zeros(d, d)
    rows = inside.nonzero().squeeze(1)
    a[rows, rows] = 1.0
    a[rows[:, None], (~inside).nonzero().squeeze(1)[None, :]] = 0.5
    expected = 1.0 / (1.0 + 0.25 * (d - 3))
    out = L.ldr(Linear(a, shape), SCHEDULE, region, inputs=torch.randn(2, *shape), sqrt_alpha_bar=0.5,
                outputs=L.OUTPUTS)
    assert out["eps"].values == pytest.approx([expected] * 2, abs=1e-6)
    # x0 rows are (P_R^T - sigma A_R) / sqrt(abar), by hand
    abar_sqrt = float(SCHEDULE.sqrt_alpha_bar(SCHEDULE.timestep_for(0.5)))
    sigma = math.sqrt(1 - abar_sqrt**2)
    x0 = -sigma * a[rows]
    x0[torch.arange(3), rows] += 1
    assert out["x0"].mean == pytest.approx(exact_ratio_rows(x0, inside), abs=1e-6)
    # eps minus its identity term is proportional to the x0 rows: the same ratio
    assert out["eps_minus_identity"].mean == pytest.approx(out["x0"].mean, abs=1e-6)


def exact_ratio_rows(rows, inside):
    return float(rows[:, inside].pow(2).sum() / rows.pow(2).sum())


def tiny(kind, shape):
    torch.manual_seed(0)
    spec = {"unet": {"type": "unet", "channels": [8, 16], "norm_num_groups": 4, "attention_head_dim": 8},
            "dit": {"type": "dit", "patch_size": 4, "layers": 1, "heads": 2, "head_dim": 8}}[kind]
    return build_model(spec, shape).eval()


@pytest.mark.parametrize("kind", ["unet", "dit"])
def test_exact_equals_per_element_loop(kind):
    shape = (1, 8, 16)
    model = tiny(kind, shape)
    region = torch.zeros(shape, dtype=torch.bool)
    region[:, 2:6, 4:8] = True
    x = torch.randn(2, *shape)
    ref = naive_rows(model, x, 300, region)
    for jac in L.JACOBIANS:
        rows = L.jacobian_rows(model, x, 300, region, max_batch=5, jacobian=jac)
        assert torch.allclose(rows, ref, atol=1e-5), jac
    res = L.ldr(model, SCHEDULE, region, inputs=x, t=300)
    assert torch.allclose(res["eps"].values, L.ratio(ref, region), atol=1e-5)


def test_memory_budget_limits_chunk():
    shape = (1, 8, 16)
    model = tiny("unet", shape)
    x = torch.randn(1, *shape)
    assert L.chunk_size(model, x, 10, memory_budget=1) == 1
    assert L.chunk_size(model, x, 10, max_batch=7, memory_budget=10**12) == 7
    region = torch.zeros(shape, dtype=torch.bool)
    region[:, :2, :2] = True
    a = L.jacobian_rows(model, x, 10, region, memory_budget=1)
    b = L.jacobian_rows(model, x, 10, region)
    assert torch.allclose(a, b, atol=1e-6)


def test_estimator_converges_like_inverse_sqrt_probes():
    torch.manual_seed(1)
    d, shape = 24, (24,)
    region = torch.zeros(d, dtype=torch.bool)
    region[4:12] = True
    a = torch.randn(d, d)
    truth = exact_ratio(a, region)
    model = Linear(a, shape)
    x = torch.randn(64, d)  # 64 independent probe sets (the map is linear: inputs do not matter)
    errors, ses = {}, {}
    for k in (4, 64):
        res = L.ldr(model, SCHEDULE, region, inputs=x, t=10, method="estimate", probes=k, seed=3)["eps"]
        errors[k] = float((res.values - truth).pow(2).mean().sqrt())
        ses[k] = float(res.estimator_se.mean())
        # unbiased up to O(1/K): the mean over 64 draws is within a few standard errors
        assert abs(res.mean - truth) < 4 * res.sem + 2.0 / k
    # 16x more probes: error ~4x smaller; demand at least 2x with margin
    assert errors[64] < errors[4] / 2
    assert 0.5 < errors[64] / ses[64] < 2.0  # reported standard errors are calibrated


def test_estimator_traces_unbiased():
    torch.manual_seed(2)
    d = 10
    region = torch.zeros(d, dtype=torch.bool)
    region[:5] = True
    a = torch.randn(d, d)
    rows, _ = L.probe_rows(Linear(a, (d,)), torch.randn(400, d), 1, region, method="estimate", probes=4)
    frob = rows.pow(2).sum((1, 2))
    truth = float(a[:5].pow(2).sum())
    assert abs(float(frob.mean()) - truth) < 4 * float(frob.std()) / 20


def test_heatmap_sums_to_frobenius_norm():
    shape = (1, 8, 16)
    model = tiny("dit", shape)
    region = torch.zeros(shape, dtype=torch.bool)
    region[:, 0:4, 0:4] = True
    x = torch.randn(2, *shape)
    rows = L.jacobian_rows(model, x, 500, region)
    heat = L.heatmap(model, SCHEDULE, region, x, t=500)
    assert heat.shape == (2, *shape)
    assert heat.sum((1, 2, 3)) == pytest.approx(rows.pow(2).sum((1, 2)).numpy(), rel=1e-5)
    est = L.ldr(model, SCHEDULE, region, inputs=x, t=500, method="estimate", probes=16, return_saliency=True)["eps"]
    erow, _ = L.probe_rows(model, x, 500, region, method="estimate", probes=16)
    assert est.saliency.sum((1, 2, 3)) == pytest.approx(erow.pow(2).sum((1, 2)).numpy(), rel=1e-5)
    # the in-region part of the heatmap over its total is the LDR
    inside = region.numpy()
    assert (heat[:, inside].sum(1) / heat.reshape(2, -1).sum(1)) == pytest.approx(L.ratio(rows, region).numpy(), rel=1e-5)


def test_region_errors():
    model = Linear(torch.eye(4), (4,))
    x = torch.randn(2, 4)
    with pytest.raises(ValueError, match="empty"):
        L.ldr(model, SCHEDULE, torch.zeros(4, dtype=torch.bool), inputs=x, t=1)
    with pytest.raises(ValueError, match="shape"):
        L.ldr(model, SCHEDULE, torch.ones(5, dtype=torch.bool), inputs=x, t=1)
    with pytest.raises(TypeError, match="boolean"):
        L.ldr(model, SCHEDULE, torch.ones(4), inputs=x, t=1)
    with pytest.raises(ValueError, match="method"):
        L.ldr(model, SCHEDULE, torch.ones(4, dtype=torch.bool), inputs=x, t=1, method="magic")
    with pytest.raises(ValueError, match="exactly one"):
        L.ldr(model, SCHEDULE, torch.ones(4, dtype=torch.bool), inputs=x)


def test_dropout_model_probed_in_eval_mode_and_restored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.Dropout(0.5), nn.Linear(32, 6))
    def f(x, t):  # a plain callable around the module
        return model(x)

    model.train()
    region = torch.zeros(6, dtype=torch.bool)
    region[:2] = True
    x = torch.randn(3, 6)
    first = L.ldr(model_wrap := Wrap(model), SCHEDULE, region, inputs=x, t=5)["eps"].values
    assert model_wrap.training and model.training  # restored
    second = L.ldr(model_wrap, SCHEDULE, region, inputs=x, t=5)["eps"].values
    assert torch.equal(first, second)  # no dropout noise
    model.eval()
    rows = L.jacobian_rows(f, x, 5, region)  # plain callable, module already in eval
    assert torch.allclose(L.ratio(rows, region), first, atol=1e-6)
    assert all(p.requires_grad for p in model.parameters())  # parameters unfrozen after probing


class Wrap(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, t):
        return self.net(x)


def test_ldr_over_training_cached(tmp_path, monkeypatch):
    from ldrkit.runs.pipeline import run_training
    config = {
        "grammar": {"name": "parity", "length": 4}, "split": {"train_fraction": 0.5, "seed": 0},
        "render": {"type": "scalar"}, "schedule": {"num_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02},
        "model": {"type": "mlp", "hidden": 16, "depth": 2},
        "train": {"steps": 4, "batch_size": 8, "lr": 1e-3, "eval_every": 2, "seed": 0},
        "eval": {"num_samples": 4, "sample_steps": 2, "ldr_samples": 3, "ldr_position": 1},
    }
    run_training(config, tmp_path, progress=False)
    rows = ldr_over_training(tmp_path, method="exact", n=3)
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert set(rows[0]["eps"]) == {"0.1", "0.3", "0.5", "0.7", "0.9"}
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= v <= 1 for r in rows for v in r["x0"].values())
    assert len(metrics) == 3
    cache = json.loads((tmp_path / "ldr_over_training.json").read_text())
    assert len(cache["entries"]) == 1

    calls = []
    real = L.ldr_levels
    monkeypatch.setattr(L, "ldr_levels", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = ldr_over_training(tmp_path, method="exact", n=3)
    assert again == rows and not calls  # nothing recomputed
    from ldrkit.runs.run import Run
    later = tmp_path / "model_0000006.safetensors"  # a later checkpoint, as continued training would record it
    later.write_bytes((tmp_path / "model_0000004.safetensors").read_bytes())
    Run(tmp_path).record_digest("6", later)
    more = ldr_over_training(tmp_path, method="exact", n=3)
    assert len(calls) == 1 and [r["step"] for r in more] == [0, 2, 4, 6]
    est = ldr_over_training(tmp_path, method="estimate", probes=4, n=3)
    assert est[0]["probes"] == 4
    from ldrkit.analysis.overtraining import format_ldr_table
    table = format_ldr_table(more)
    assert "eps@0.1" in table and len(table.splitlines()) == 3 + 4
