"""The training loop: seeded, with a progress bar, periodic evaluation and a resumable run folder.

A run folder holds
- config.json: the full config and its hash;
- metrics.jsonl: one JSON line per evaluation;
- model_STEP.safetensors: the model weights at each evaluation;
- resume.safetensors: model, optimizer state and the data RNG at the last evaluation.

- launches.jsonl: one line per start of the loop (processes, batch split, device, versions).

An interrupted run restarts from resume.safetensors and, because evaluation draws its
randomness from (seed, step) rather than from the training stream, reaches exactly the
numbers of an uninterrupted run. A folder made by a different config is refused.

Devices and processes. Training always runs through Hugging Face `accelerate`'s Accelerator,
so the same command trains on one CPU, one GPU, or several GPUs under
`accelerate launch -m ldrkit run NAME --profile paper`. With one process on the CPU the
Accelerator changes nothing (no wrapper, `loss / 1`, the model stays put): the numbers are
bit for bit those of a plain PyTorch loop (tests/test_accelerate.py checks it). The device is
`resolve_device()`: $LDRKIT_DEVICE ("cpu" or "cuda"), else CUDA when torch sees a GPU, else the CPU.
(The bit-for-bit resume holds on the CPU; on a GPU, nondeterministic cuDNN kernels can make a resumed
run drift from an uninterrupted one in the last bits.)

config["train"]["batch_size"] is the *global* batch: each step draws batch_size examples, timesteps
and noises from the one seeded generator (identically in every process), and process i of N
trains on slice i of it, batch_size / N examples (N must divide batch_size). Gradients are
averaged across processes, so a step is the same step whatever N (up to floating-point
summation order), the config hash names the experiment whatever the hardware, and the generator
state is the same everywhere, so one resume file serves all processes. More GPUs make a step
faster; they do not change the batch (override batch_size for that: a new config, a new hash).
Only the main process evaluates and writes files; the others wait at a barrier (evaluation is
not split across processes). The network runs on the device; evaluation code keeps its tensors
on the CPU and calls the network through `OnDevice`. config["train"]["mixed_precision"]
("no", the default, "fp16" or "bf16") is passed to the Accelerator, so precision is part of
the config (the environment of `accelerate launch` cannot change it silently).

Weight averaging. With config["train"]["ema_decay"] (for example 0.995) the loop keeps an exponential
moving average of the weights (diffusers' `EMAModel`, the one its training scripts use) and evaluates
and saves the averaged network: model_STEP.safetensors then holds the averaged weights, while
resume.safetensors holds the raw weights, the optimizer and the average. Without the key the
evaluated network is the raw one, as before (and the config hash is unchanged).
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from .diffusion import Schedule


class ConfigMismatchError(RuntimeError):
    """A run folder (or checkpoint) was made by a different config."""


def config_hash(config: dict) -> str:
    """A short stable hash of a JSON-serialisable config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def prepare_run_dir(run_dir: Path, config: dict) -> str:
    """Create the folder and its config.json, or check that an existing one holds the same config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    digest = config_hash(config)
    path = run_dir / "config.json"
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("hash") != digest:
            raise ConfigMismatchError(
                f"{run_dir} holds a run of a different config (hash {stored.get('hash')}, this config {digest}); "
                "choose another output folder or delete that one")
    else:
        atomic_write(path, json.dumps({"hash": digest, "config": config}, indent=2))
    return digest


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    rng: torch.Generator | None, step: int, digest: str, extra: dict | None = None,
                    ema=None) -> None:
    """Model weights (and optionally optimizer state, RNG and weight average) to safetensors, written atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{i}": p.detach().cpu().contiguous() for i, p in enumerate(ema.shadow_params)})
        extra = {**(extra or {}), "ema_optimization_step": ema.optimization_step}
    if optimizer is not None:
        for i, state in optimizer.state_dict()["state"].items():
            for key, value in state.items():
                tensors[f"optim.{i}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    if rng is not None:
        tensors["rng"] = rng.get_state()
    metadata = {"step": str(step), "config_hash": digest, **{k: json.dumps(v) for k, v in (extra or {}).items()}}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    rng: torch.Generator | None = None, digest: str | None = None, ema=None) -> dict:
    """Restore what save_checkpoint wrote; returns its metadata. Refuses a checkpoint of another config."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if digest is not None and metadata.get("config_hash") != digest:
        raise ConfigMismatchError(f"checkpoint {path} was made by config {metadata.get('config_hash')}, not {digest}")
    tensors = load_file(str(path))
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    if optimizer is not None:
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, i, name = key.split(".", 2)
                state.setdefault(int(i), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    if rng is not None:
        rng.set_state(tensors["rng"])
    if ema is not None:
        for i, shadow in enumerate(ema.shadow_params):
            shadow.copy_(tensors[f"ema.{i}"])
        ema.optimization_step = int(json.loads(metadata["ema_optimization_step"]))
    return metadata


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def resolve_device(requested: str | None = None) -> str:
    """"cpu" or "cuda": `requested`, else $LDRKIT_DEVICE, else "cpu" under `accelerate launch --cpu`,
    else "cuda" when torch sees a GPU, else "cpu". Asking for "cuda" without one is an error."""
    choice = (requested or os.environ.get("LDRKIT_DEVICE") or "").strip().lower()
    if not choice:
        if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
            return "cpu"
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {choice!r} (from the argument or $LDRKIT_DEVICE); choose cpu or cuda")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"CUDA was asked for but torch sees no GPU (torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda or 'none: a CPU-only build'}); run on a machine with a CUDA GPU and a CUDA "
            "build of torch, or use the CPU (LDRKIT_DEVICE=cpu / --device cpu)")
    return choice


def make_accelerator(train_config: dict, device: str | None = None):
    """The Accelerator of a run: on `resolve_device(device)`, with the config's mixed precision (default "no").

    Under `accelerate launch` it joins the launched process group (a long timeout: the other
    processes wait while the main one evaluates).
    """
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    return Accelerator(cpu=resolve_device(device) == "cpu", mixed_precision=train_config.get("mixed_precision", "no"),
                       kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(hours=6))])


def is_main_process() -> bool:
    """True except in the non-zero ranks of a multi-process launch (they must not write run files)."""
    return os.environ.get("RANK", "0") == "0"


def per_process_batch(batch_size: int, processes: int) -> int:
    """The share of the global batch that each of `processes` processes trains on."""
    if batch_size % processes:
        raise ValueError(f"train.batch_size {batch_size} is the global batch and must be divisible by the "
                         f"{processes} processes; choose a batch size or a process count that divides it")
    return batch_size // processes


class OnDevice(nn.Module):
    """A network on an accelerator called with CPU tensors: inputs go to its device, outputs come back.

    Sampling, the LDR probe and the oracle distances keep their tensors (and generators) on the
    CPU; wrapping the network lets them run unchanged while the network itself runs on the GPU.
    Gradients flow through the copies, so Jacobian probes work too.
    """

    def __init__(self, module: nn.Module, device: torch.device):
        super().__init__()
        self.module, self.device = module, torch.device(device)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.module(x.to(self.device), torch.as_tensor(t).to(self.device)).to(x.device)


def for_evaluation(model: nn.Module, device: torch.device) -> nn.Module:
    """The network itself on the CPU, else wrapped in OnDevice."""
    return model if torch.device(device).type == "cpu" else OnDevice(model, device)


def make_step(model: nn.Module, optimizer, accelerator, schedule: Schedule, data: torch.Tensor,
              batch_size: int, rng: torch.Generator, ema=None) -> Callable[[], torch.Tensor]:
    """One optimisation step as a function returning the loss (of this process's share of the batch).

    With `ema` (a diffusers EMAModel of the model's parameters) the average is updated after the step.

    The global batch (examples, then timesteps, then noises) is drawn from `rng` in every process,
    the same order as `Schedule.loss`; process i keeps slice i (see the module docstring).
    """
    share = per_process_batch(batch_size, accelerator.num_processes)
    part = slice(accelerator.process_index * share, (accelerator.process_index + 1) * share)
    device = accelerator.device

    def step() -> torch.Tensor:
        x0 = data[torch.randint(0, len(data), (batch_size,), generator=rng)]
        t = schedule.random_timesteps(batch_size, rng)
        eps = torch.randn(x0.shape, generator=rng)
        loss = schedule.eps_loss(model, x0[part].to(device), eps[part].to(device), t[part].to(device))
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        if ema is not None:
            ema.step(accelerator.unwrap_model(model).parameters())
        return loss

    return step


def train(run_dir: Path, config: dict, model: nn.Module, schedule: Schedule, data: torch.Tensor,
          evaluate: Callable[[nn.Module, int], dict], *, stop_after: int | None = None,
          progress: bool = True, device: str | None = None) -> list[dict]:
    """Train `model` on `data` with config["train"] = {steps, batch_size, lr, eval_every, seed[, mixed_precision, ema_decay]}.

    Evaluates (and checkpoints) at step 0, every eval_every steps and at the last step.
    `stop_after` ends the loop early at that step, as an interruption would (for tests).
    `device`: see `resolve_device`. batch_size is the global batch (module docstring).
    Returns the evaluation records in metrics.jsonl (in every process).
    """
    run_dir = Path(run_dir)
    tc = config["train"]
    accelerator = make_accelerator(tc, device)
    main = accelerator.is_main_process
    if main:
        digest = prepare_run_dir(run_dir, config)
    accelerator.wait_for_everyone()
    if not main:
        digest = config_hash(config)
    rng = torch.Generator().manual_seed(tc["seed"])
    optimizer = torch.optim.Adam(model.parameters(), lr=tc["lr"])
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    model = accelerator.unwrap_model(wrapped)
    ema, averaged = None, model  # `averaged`: the network that is evaluated and saved as model_STEP
    if tc.get("ema_decay"):
        from diffusers.training_utils import EMAModel
        ema = EMAModel(model.parameters(), decay=tc["ema_decay"], foreach=True)
        averaged = copy.deepcopy(model)
    evaluated = for_evaluation(averaged, accelerator.device)
    step_once = make_step(wrapped, optimizer, accelerator, schedule, data, tc["batch_size"], rng, ema)
    step, elapsed = 0, 0.0
    resume = run_dir / "resume.safetensors"
    if resume.exists():
        meta = load_checkpoint(resume, model, optimizer, rng, digest, ema)
        step, elapsed = int(meta["step"]), float(json.loads(meta.get("elapsed_seconds", "0")))
    records = [r for r in read_metrics(run_dir) if r["step"] <= step]
    accelerator.wait_for_everyone()
    if main:
        atomic_write(run_dir / "metrics.jsonl", "".join(json.dumps(json_ready(r)) + "\n" for r in records))
        launch = {"start_step": step, "processes": accelerator.num_processes, "global_batch": tc["batch_size"],
                  "per_process_batch": tc["batch_size"] // accelerator.num_processes,
                  "device": str(accelerator.device), "mixed_precision": accelerator.mixed_precision,
                  "gpu": torch.cuda.get_device_name(accelerator.device) if accelerator.device.type == "cuda" else None,
                  "torch": torch.__version__}
        with open(run_dir / "launches.jsonl", "a") as f:
            f.write(json.dumps(launch) + "\n")

    def checkpoint_and_evaluate(step: int) -> None:
        if main:
            if ema is not None:
                ema.copy_to(averaged.parameters())
            averaged.eval()
            record = json_ready({"step": step, **evaluate(evaluated, step),
                                 "elapsed_seconds": elapsed + time.perf_counter() - start})
            model.train()
            records.append(record)
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            save_checkpoint(run_dir / f"model_{step:07d}.safetensors", averaged, None, None, step, digest)
            save_checkpoint(resume, model, optimizer, rng, step, digest, {"elapsed_seconds": record["elapsed_seconds"]},
                            ema=ema)
        accelerator.wait_for_everyone()

    start = time.perf_counter()
    model.train()
    if step == 0 and not records:
        checkpoint_and_evaluate(0)
    end = tc["steps"] if stop_after is None else min(stop_after, tc["steps"])
    bar = tqdm(total=tc["steps"], initial=step, desc="training", disable=not (progress and main), dynamic_ncols=True)
    smoothed = None
    while step < end:
        loss = step_once().item()  # the main process's share of the batch
        step += 1
        smoothed = loss if smoothed is None else 0.98 * smoothed + 0.02 * loss
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{smoothed:.4f}")
        if step % tc["eval_every"] == 0 or step == tc["steps"]:
            checkpoint_and_evaluate(step)
    bar.close()
    accelerator.wait_for_everyone()
    return records if main else [r for r in read_metrics(run_dir) if r["step"] <= step]


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every saved model checkpoint, in step order."""
    found = sorted(Path(run_dir).glob("model_*.safetensors"))
    return [(int(p.stem.split("_")[1]), p) for p in found]


def json_ready(value):
    """`value` with every non-finite float (NaN, +-inf) replaced by None, so that json.dumps writes strict JSON.

    An LDR is 0/0 where the Jacobian vanishes (an exact denoiser whose posterior sits on one point):
    metrics record such an undefined value as null rather than the non-standard NaN.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def atomic_write(path: Path, text: str) -> None:
    """Write text to path through a temporary file, so an interrupted write never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
