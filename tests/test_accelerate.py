"""Training goes through Hugging Face accelerate: one CPU process must give exactly the plain loop's numbers."""
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from ldrkit.spec.registry import get_experiment
from ldrkit.spec.hashing import merge
from ldrkit.runs.pipeline import run_training
from ldrkit.runs.setup import Setup
from ldrkit.denoisers.device import resolve_device
from ldrkit.runs.run import load_checkpoint
from ldrkit.runs.train import OnDevice, for_evaluation, make_step, per_process_batch

TINY = {"model": {"hidden": 32, "depth": 2},
        "train": {"steps": 100, "batch_size": 32, "eval_every": 50},
        "eval": {"num_samples": 32, "sample_steps": 10, "ldr_samples": 4}}


def tiny_config(seed=0):
    return merge(get_experiment("parity-mlp-L8").config("smoke", seed), TINY)


def plain_loop(config):
    """The textbook loop, without accelerate: seeded draws, Adam, eq. (8) through Schedule.loss."""
    setup = Setup.from_config(config)
    model = setup.build_model(config)
    tc = config["train"]
    rng = torch.Generator().manual_seed(tc["seed"])
    optimizer = torch.optim.Adam(model.parameters(), lr=tc["lr"])
    for _ in range(tc["steps"]):
        batch = setup.train_data[torch.randint(0, len(setup.train_data), (tc["batch_size"],), generator=rng)]
        loss = setup.schedule.loss(model, batch, rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return setup, model


def held_out_loss(setup, model, draws=8):
    gen = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        return sum(float(setup.schedule.loss(model, setup.train_data, gen)) for _ in range(draws)) / draws


def test_the_accelerate_path_equals_the_plain_loop_bit_for_bit_and_learns(tmp_path):
    config = tiny_config()
    run_training(config, tmp_path, progress=False)
    setup, reference = plain_loop(config)
    trained = setup.build_model(config)
    load_checkpoint(tmp_path / "model_0000100.safetensors", trained)
    for (name, p), q in zip(trained.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name
    # It learns: the eps loss on fixed noised training data falls from about 1 (the untrained network;
    # the noise has unit variance) past 0.5, over halfway to mean_t(alpha_bar_t) = 0.28, the loss of the
    # best linear denoiser of unit-variance data (eps_hat = sqrt(1 - alpha_bar) x_t).
    linear = float(setup.schedule.alphas_cumprod.mean())
    before, after = held_out_loss(setup, setup.build_model(config)), held_out_loss(setup, trained)
    assert before > 0.9 and after < (1 + linear) / 2 < 0.65, (before, after)
    (launch,) = [json.loads(line) for line in (tmp_path / "launches.jsonl").read_text().splitlines()]
    assert launch["processes"] == 1 and launch["per_process_batch"] == launch["global_batch"] == 32
    assert launch["device"] == "cpu" and launch["mixed_precision"] == "no"


def test_two_processes_share_one_global_batch(monkeypatch):
    """Each process trains on its slice of the same global draw: the averaged gradients are the full batch's."""
    config = tiny_config()
    setup = Setup.from_config(config)
    grads = []
    for processes, index in ((1, 0), (2, 0), (2, 1)):
        model = setup.build_model(config)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        fake = SimpleNamespace(num_processes=processes, process_index=index, device=torch.device("cpu"),
                               backward=lambda loss: loss.backward())
        step = make_step(model, optimizer, fake, setup.schedule, setup.train_data, 32, torch.Generator().manual_seed(0))
        step()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    full, half0, half1 = grads
    assert not torch.allclose(half0, half1)  # the two processes see different examples
    assert torch.allclose((half0 + half1) / 2, full, atol=1e-6, rtol=1e-5)


def test_the_global_batch_must_split_evenly():
    assert per_process_batch(16, 4) == 4
    with pytest.raises(ValueError, match="global batch"):
        per_process_batch(16, 3)


def test_device_resolution(monkeypatch):
    monkeypatch.setenv("LDRKIT_DEVICE", "cpu")
    assert resolve_device() == "cpu"
    assert resolve_device("CPU") == "cpu"
    with pytest.raises(ValueError, match="choose cpu or cuda"):
        resolve_device("tpu")
    monkeypatch.delenv("LDRKIT_DEVICE")
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    assert resolve_device() == "cpu"
    monkeypatch.delenv("ACCELERATE_USE_CPU")
    assert resolve_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="torch sees no GPU"):
            resolve_device("cuda")


def test_evaluation_wrapper_keeps_cpu_models_as_they_are():
    model = torch.nn.Linear(3, 3)
    assert for_evaluation(model, torch.device("cpu")) is model
    wrapped = OnDevice(lambda x, t: 2 * x, "cpu")
    x = torch.ones(2, 3, requires_grad=True)
    (g,) = torch.autograd.grad(wrapped(x, torch.zeros(2, dtype=torch.long)).sum(), x)
    assert torch.equal(g, torch.full((2, 3), 2.0))


@pytest.mark.long(seconds=15)
def test_accelerate_launch_one_cpu_process(tmp_path):
    """`accelerate launch -m ldrkit run` trains the same run as the plain loop (smoke profile, about 15 s)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("LDRKIT_DEVICE", None)
    out = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "--cpu",
                          "-m", "ldrkit", "run", "parity-mlp-L8", "--profile", "smoke", "--out", str(tmp_path), "--quiet"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    steps = get_experiment("parity-mlp-L8").config("smoke", 0)["train"]["steps"]
    assert metrics["final"]["step"] == steps and set(metrics["final"]["categories"]) == {
        "invalid", "hallucination", "in_dataset", "extrapolation"}
    setup, reference = plain_loop(get_experiment("parity-mlp-L8").config("smoke", 0))
    trained = setup.build_model(get_experiment("parity-mlp-L8").config("smoke", 0))
    load_checkpoint(tmp_path / f"model_{steps:07d}.safetensors", trained)
    for p, q in zip(trained.parameters(), reference.parameters()):
        assert torch.equal(p, q)


def test_the_fast_path_is_the_default_step_to_rounding_and_records_itself(tmp_path, monkeypatch):
    """Fused Adam and torch.compile (`train.fast_training`): interrupted fast, resumed in the default mode, the run
    ends where the plain loop does up to floating-point rounding, and launches.jsonl says which mode ran when."""
    from ldrkit.runs.train import fast_training
    config = tiny_config()
    monkeypatch.setenv("LDRKIT_FAST", "1")
    run_training(config, tmp_path, progress=False, stop_after=50)
    monkeypatch.setenv("LDRKIT_FAST", "0")
    run_training(config, tmp_path, progress=False)
    setup, reference = plain_loop(config)
    trained = setup.build_model(config)
    load_checkpoint(tmp_path / "model_0000100.safetensors", trained)
    gaps = [float((p - q).detach().abs().max()) for p, q in zip(trained.parameters(), reference.parameters())]
    assert 0 < max(gaps) < 1e-3, gaps  # not bit for bit (fused kernels sum in another order), but the same steps
    assert held_out_loss(setup, trained) == pytest.approx(held_out_loss(setup, reference), rel=1e-3)
    launches = [json.loads(line) for line in (tmp_path / "launches.jsonl").read_text().splitlines()]
    assert [(l["start_step"], l["fast"]) for l in launches] == [(0, True), (50, False)]
    monkeypatch.setenv("LDRKIT_FAST", "yes")
    with pytest.raises(ValueError, match="LDRKIT_FAST must be 0 or 1"):
        fast_training()
    assert fast_training(True) and not fast_training(False)
