import json

import pytest
import torch

from ldrkit.spec.registry import get_experiment
from ldrkit.spec.hashing import merge
from ldrkit.denoisers.models import MLPDenoiser
from ldrkit.runs.pipeline import run_training
from ldrkit.runs.setup import Setup
from ldrkit.runs.run import ConfigMismatchError, Run, load_checkpoint

TINY = {"model": {"hidden": 32, "depth": 2},
        "train": {"steps": 40, "batch_size": 32, "eval_every": 10},
        "eval": {"num_samples": 32, "sample_steps": 10, "ldr_samples": 4}}


def tiny_config(seed=0):
    return merge(get_experiment("parity-mlp-L8").config("smoke", seed), TINY)


def test_run_folder_layout(tmp_path):
    records = run_training(tiny_config(), tmp_path, progress=False)
    assert [r["step"] for r in records] == [0, 10, 20, 30, 40]
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["config"] == tiny_config()
    assert Run(tmp_path).steps() == [0, 10, 20, 30, 40]
    assert Run(tmp_path).records() == records
    assert (tmp_path / "resume.safetensors").exists()
    assert sorted(p.name for p in (tmp_path / "samples").iterdir())[-1] == "step_0000040.npy"


def test_interrupted_run_resumes_to_the_same_numbers(tmp_path):
    full = run_training(tiny_config(), tmp_path / "full", progress=False)
    part = run_training(tiny_config(), tmp_path / "cut", progress=False, stop_after=20)
    assert [r["step"] for r in part] == [0, 10, 20]
    resumed = run_training(tiny_config(), tmp_path / "cut", progress=False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "elapsed_seconds"} for r in rs]
    assert strip(resumed) == strip(full)
    assert strip(Run(tmp_path / "cut").records()) == strip(full)
    a, b = MLPDenoiser(8, 32, 2), MLPDenoiser(8, 32, 2)
    load_checkpoint(tmp_path / "full" / "model_0000040.safetensors", a)
    load_checkpoint(tmp_path / "cut" / "model_0000040.safetensors", b)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_interruption_between_checkpoints_drops_the_unsaved_evaluations(tmp_path):
    run_training(tiny_config(), tmp_path, progress=False, stop_after=25)
    assert [r["step"] for r in Run(tmp_path).records()] == [0, 10, 20]
    assert [r["step"] for r in run_training(tiny_config(), tmp_path, progress=False)] == [0, 10, 20, 30, 40]


def test_a_different_config_is_refused(tmp_path):
    run_training(tiny_config(), tmp_path, progress=False, stop_after=10)
    with pytest.raises(ConfigMismatchError, match="different config"):
        run_training(tiny_config(seed=1), tmp_path, progress=False)


def test_a_checkpoint_of_another_config_is_refused(tmp_path):
    run_training(tiny_config(), tmp_path, progress=False, stop_after=10)
    setup = Setup.from_config(tiny_config())
    model = setup.build_model(tiny_config())
    with pytest.raises(ConfigMismatchError, match="made by config"):
        load_checkpoint(tmp_path / "resume.safetensors", model, digest="0" * 16)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors", model)


def ema_config(decay=0.9):
    return merge(tiny_config(), {"train": {"ema_decay": decay}})


def test_weight_average_is_what_is_evaluated_and_saved(tmp_path):
    """With train.ema_decay, model_STEP holds diffusers' EMA of the weights, resume holds the raw ones."""
    from diffusers.training_utils import EMAModel
    run_training(ema_config(), tmp_path, progress=False)
    saved, raw = MLPDenoiser(8, 32, 2), MLPDenoiser(8, 32, 2)
    load_checkpoint(tmp_path / "model_0000040.safetensors", saved)
    ema = EMAModel(raw.parameters(), decay=0.9)
    meta = load_checkpoint(tmp_path / "resume.safetensors", raw, ema=ema)
    assert int(meta["step"]) == 40 and ema.optimization_step == 40
    for p, shadow in zip(saved.parameters(), ema.shadow_params):
        assert torch.equal(p, shadow)  # the saved network is the average
    gap = max((p - q).abs().max().item() for p, q in zip(saved.parameters(), raw.parameters()))
    assert gap > 1e-4  # ... and the average is not the raw weights (lr 1e-3, 40 steps)
    plain = MLPDenoiser(8, 32, 2)
    run_training(tiny_config(), tmp_path / "plain", progress=False)
    load_checkpoint(tmp_path / "plain" / "model_0000040.safetensors", plain)
    for p, q in zip(plain.parameters(), raw.parameters()):
        assert torch.equal(p, q)  # the average does not change the optimisation itself


def test_interrupted_run_with_weight_average_resumes_to_the_same_numbers(tmp_path):
    full = run_training(ema_config(), tmp_path / "full", progress=False)
    run_training(ema_config(), tmp_path / "cut", progress=False, stop_after=20)
    resumed = run_training(ema_config(), tmp_path / "cut", progress=False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "elapsed_seconds"} for r in rs]
    assert strip(resumed) == strip(full)
    a, b = MLPDenoiser(8, 32, 2), MLPDenoiser(8, 32, 2)
    load_checkpoint(tmp_path / "full" / "model_0000040.safetensors", a)
    load_checkpoint(tmp_path / "cut" / "model_0000040.safetensors", b)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
