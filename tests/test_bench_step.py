"""`bench step`: where a run's time goes, exercised at the smoke sizes with a couple of steps."""
import copy
import json

import pytest
import torch

from ldrkit.bench.step import SPEEDUPS, bare_step, bench_step, format_table
from ldrkit.spec.registry import get_experiment
from ldrkit.runs.setup import Setup


def test_the_bare_step_is_the_eps_loss_and_trains():
    config = get_experiment("parity-parens-L8-unet").config("smoke", 0)
    setup = Setup.from_config(config)
    torch.manual_seed(0)
    model = setup.build_model(config)
    before = [p.detach().clone() for p in model.parameters()]
    step = bare_step(model, setup.train_data, setup.schedule, 8, 1e-3, fused=True)
    losses = [step() for _ in range(2)]
    assert all(0 < v < 10 for v in losses)  # eps is standard normal: a fresh network's MSE is of order 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_the_bf16_step_computes_the_same_loss_to_bf16_precision():
    config = get_experiment("parity-parens-L8-unet").config("smoke", 0)
    setup = Setup.from_config(config)
    torch.manual_seed(0)
    model = setup.build_model(config)
    exact = bare_step(copy.deepcopy(model), setup.train_data, setup.schedule, 8, 1e-3)()
    rounded = bare_step(copy.deepcopy(model), setup.train_data, setup.schedule, 8, 1e-3, bf16=True)()
    assert rounded != exact and abs(rounded - exact) < 0.05 * exact  # same draws; bf16 keeps ~3 significant digits


def test_bench_step_times_every_variant_and_every_part_of_an_evaluation():
    row = bench_step("parity-parens-L8-unet", "smoke", steps=1, warmup=0, variants=("bare", "fused-adam"), repeats=2)
    assert set(row["ms_per_step"]) == {"ldrkit", "bare", "fused-adam"}
    assert row["speedup"]["ldrkit"] == 1.0 and all(v > 0 for v in row["ms_per_step"].values())
    assert set(row["eval_seconds"]) == {"sampling", "decoding", "LDR", "oracle distances"}  # this run's evaluation
    assert 0 < row["eval_share"] < 1
    assert row["top_ops"] and all(0 < o["share"] <= 1 for o in row["top_ops"])
    assert sum(o["share"] for o in row["top_ops"]) <= 1.001
    table = format_table([row])
    assert "fused-adam ms" in table and "oracle distances s" in table and "self CPU time" in table
    with pytest.raises(ValueError, match="unknown variant"):
        bench_step("parity-parens-L8-unet", "smoke", steps=1, variants=("warp",), evaluation=False)
    assert set(SPEEDUPS) >= {"bare", "fused-adam", "channels-last", "compile", "fused+compile", "bf16"}


def test_bench_step_command_writes_json_and_rejects_unknown_names(tmp_path, capsys):
    from ldrkit.__main__ import main
    threads = torch.get_num_threads()
    try:
        assert main(["bench", "step", "parity-parens-L8-unet", "--profile", "smoke", "--steps", "1", "--threads", "1",
                     "--no-eval", "--variants", "bare", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    rows = json.loads((tmp_path / "bench_step.json").read_text())
    assert rows[0]["experiment"] == "parity-parens-L8-unet" and rows[0]["threads"] == 1
    assert set(rows[0]["ms_per_step"]) == {"ldrkit", "bare"}
    assert main(["bench", "step", "no-such-run"]) == 2
    assert capsys.readouterr().err.startswith("error:")
