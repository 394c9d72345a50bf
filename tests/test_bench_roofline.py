"""The roofline: FLOPs counted against exact arithmetic, and a smoke report with every field."""
import torch

from ldrkit.bench import roofline as R


def test_the_flop_count_of_a_linear_training_step_is_exact():
    layer = torch.nn.Linear(64, 32, bias=False)
    x = torch.randn(16, 64)

    def step():
        layer.zero_grad()
        layer(x).pow(2).sum().backward()
    # forward 2BIO, backward 2BIO for the weight's gradient (the input needs none)
    assert R._flops(step) == 4 * 16 * 64 * 32


def test_smoke_roofline_reports_peaks_and_every_model(tmp_path):
    result = R.run_roofline(["parity-mlp-L8"], "smoke", steps=2, out=tmp_path, gemm_size=256)
    assert {(p["kernel"].split()[0], p["dtype"]) for p in result["peaks"]} >= {("GEMM", "float32"), ("conv", "bfloat16")}
    assert all(p["GFLOP/s"] > 0 for p in result["peaks"])
    [row] = result["models"]
    assert row["train step GFLOP"] > 0 and row["sampling step GFLOP"] > 0
    assert 0 < row["train step of fp32 peak"] and 0 < row["sampling step of fp32 peak"]
    assert (tmp_path / "bench_roofline.md").read_text().count("parity-mlp-L8") == 1
