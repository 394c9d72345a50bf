"""`bench ldr` at toy sizes: the exact rows agree with the per-element loop, and the batched bound (plain backward
passes in the same rounds) and the efficiency are what the report says they are."""
import math

import pytest
import torch

from ldrkit.bench import ldr as B
from ldrkit.spec.sizes import MODELS


@pytest.fixture
def toy(monkeypatch):
    """The smoke-profile networks on a 1 x 16 x 16 image with a 4 x 4 region: seconds, not minutes."""
    monkeypatch.setattr(B, "BENCH_MODELS", {"unet": MODELS["unet"]["smoke"], "dit": MODELS["dit"]["smoke"]})
    monkeypatch.setattr(B, "SHAPE", (1, 16, 16))
    monkeypatch.setattr(B, "REGION_COLUMNS", (6, 10))
    monkeypatch.setattr(B, "ROUNDS", 1)
    torch.set_num_threads(1)


@pytest.mark.parametrize("name", ["unet", "dit"])
def test_bench_model_reports_the_bound_beside_the_exact_rows(toy, name, tmp_path):
    r = B.bench_model(name, n=2, probes=(4,))
    assert r["region_size"] == 16 * 4 and r["max_diff"] < 1e-5  # exact rows = the per-element loop's
    assert r["bound_s"] > 0 and r["bound_efficiency"] == pytest.approx(r["bound_s"] / r["exact_s"], rel=0.1)  # seconds rounded to ms
    assert set(r["exact_methods"]) == {"graph", "vmap", "replicate", "vmap+math-attention"}
    for part in ("vmap", "bound"):
        shares = [o["share"] for o in r["profile"][part]]
        assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-6
    text = B.format_results({name: r})
    assert f"exact at {r['bound_efficiency']:.0%} of the bound" in text and f"{name} vmap: " in text


def test_batched_bound_runs_one_backward_per_chunk(monkeypatch):
    calls = []
    grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: calls.append(1) or grad(*a, **k))
    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(8, 8)

        def forward(self, x, t):
            return self.layer(x)
    fn = B.batched_bound(Linear(), torch.randn(1, 8), t=10, rows=40, chunk=16)
    fn()
    assert len(calls) == math.ceil(40 / 16)
