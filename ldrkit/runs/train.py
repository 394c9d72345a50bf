"""The training loop: seeded, with a progress bar, periodic evaluation and a resumable run folder.

The run folder (its layout belongs to `ldrkit.runs.run.Run`) holds the spec, one record per evaluation,
the evaluated weights of each evaluation and a resume file.

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

Fast mode (opt-in: `run --fast`, $LDRKIT_FAST=1, `fast_training`). Fused Adam and torch.compile of the training
forward pass; the same spec and hash, not bit for bit the default loop (launches.jsonl records the mode per launch).
On the 2-core CPU it pays only where a step is overhead-bound (results/bench/step: the small token DiT 1.4-1.7x, the
convolution-bound UNets 1.0-1.2x).

Weight averaging. With config["train"]["ema_decay"] (for example 0.995) the loop keeps an exponential
moving average of the weights (diffusers' `EMAModel`, the one its training scripts use) and evaluates
and saves the averaged network: model_STEP.safetensors then holds the averaged weights, while
resume.safetensors holds the raw weights, the optimizer and the average. Without the key the
evaluated network is the raw one, as before (and the config hash is unchanged).
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
from datetime import timedelta
from functools import partial
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from ..denoisers.device import resolve_device
from ..denoisers.schedule import Schedule
from .files import fault_point, json_ready
from .run import Run, load_checkpoint


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


FAST_ENV = "LDRKIT_FAST"
"""Set to 1 to train with the opt-in speed-ups (`fast_training`)."""


def fast_training(fast: bool | None = None) -> bool:
    """Whether a run trains with the opt-in speed-ups: fused Adam and torch.compile of the training forward pass.

    `fast`, else $LDRKIT_FAST ("1" on, "0" or unset off). Off by default: they change the last bits of the
    arithmetic, so a fast run is not bit for bit the default one (like a GPU run, it is the same experiment: the
    config and its hash do not change; launches.jsonl records the mode). `bench step` times them ("ldrkit-fast").
    """
    if fast is not None:
        return bool(fast)
    value = os.environ.get(FAST_ENV, "0")
    if value not in ("0", "1"):
        raise ValueError(f"${FAST_ENV} must be 0 or 1, got {value!r}")
    return value == "1"


def make_optimizer(model: nn.Module, lr: float, fast: bool = False) -> torch.optim.Optimizer:
    """Adam at `lr`; with `fast`, its fused kernel (one kernel for the whole update; the same state, so a run can
    resume in either mode)."""
    return torch.optim.Adam(model.parameters(), lr=lr, **({"fused": True} if fast else {}))


def make_step(model: nn.Module, optimizer, accelerator, schedule: Schedule, data: torch.Tensor,
              batch_size: int, rng: torch.Generator, ema=None, tokens: torch.Tensor | None = None,
              compile: bool = False) -> Callable[[], torch.Tensor]:
    """One optimisation step as a function returning the loss (of this process's share of the batch).

    With `ema` (a diffusers EMAModel of the model's parameters) the average is updated after the step.
    With `tokens` (one row per row of `data`), the model is symbol-conditioned and is called as
    model(x_t, t, tokens) on each example's own sequence (`ldrkit.denoisers.symbol_conditioned`). With `compile`, the forward pass runs
    through torch.compile (the first steps pay the compilation; evaluation calls the plain model).

    The global batch (examples, then timesteps, then noises) is drawn from `rng` in every process,
    the same order as `Schedule.loss`; process i keeps slice i (see the module docstring).
    """
    share = per_process_batch(batch_size, accelerator.num_processes)
    part = slice(accelerator.process_index * share, (accelerator.process_index + 1) * share)
    device = accelerator.device
    forward = torch.compile(model) if compile else model

    def step() -> torch.Tensor:
        rows = torch.randint(0, len(data), (batch_size,), generator=rng)
        x0 = data[rows]
        t = schedule.random_timesteps(batch_size, rng)
        eps = torch.randn(x0.shape, generator=rng)
        denoiser = forward if tokens is None else partial(forward, tokens=tokens[rows][part].to(device))
        loss = schedule.eps_loss(denoiser, x0[part].to(device), eps[part].to(device), t[part].to(device))
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        if ema is not None:
            ema.step(accelerator.unwrap_model(model).parameters())
        return loss

    return step


def train(run: Run, config: dict, model: nn.Module, schedule: Schedule, data: torch.Tensor,
          evaluate: Callable[[nn.Module, int], dict], *, stop_after: int | None = None,
          progress: bool = True, device: str | None = None, tokens: torch.Tensor | None = None,
          fast: bool | None = None) -> list[dict]:
    """Train `model` on `data` with config["train"] = {steps, batch_size, lr, eval_every, seed[, mixed_precision,
    ema_decay, warmup_steps]}.

    Evaluates (and checkpoints) at step 0, every eval_every steps and at the last step.
    `stop_after` ends the loop early at that step, as an interruption would (for tests).
    `device`: see `resolve_device`. batch_size is the global batch (module docstring). `tokens`: the sequence
    of each row of `data` for a symbol-conditioned model (`make_step`). `fast`: see `fast_training`.
    Returns the evaluation records in metrics.jsonl (in every process). The caller holds the run's lock.
    """
    tc = config["train"]
    if not math.isfinite(tc["lr"]) or tc["lr"] <= 0 or tc["steps"] < 0 or tc["eval_every"] < 1:
        raise ValueError(f"train needs lr > 0, steps >= 0 and eval_every >= 1, got {tc}")
    accelerator = make_accelerator(tc, device)
    main = accelerator.is_main_process
    if main:
        run.prepare(config)
    accelerator.wait_for_everyone()
    digest = run.hash
    rng = torch.Generator().manual_seed(tc["seed"])
    fast = fast_training(fast)
    optimizer = make_optimizer(model, tc["lr"], fast)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    model = accelerator.unwrap_model(wrapped)
    ema, averaged = None, model  # `averaged`: the network that is evaluated and saved as model_STEP
    if tc.get("ema_decay"):
        from diffusers.training_utils import EMAModel
        ema = EMAModel(model.parameters(), decay=tc["ema_decay"], foreach=True)
        averaged = copy.deepcopy(model)
    evaluated = for_evaluation(averaged, accelerator.device)
    step_once = make_step(wrapped, optimizer, accelerator, schedule, data, tc["batch_size"], rng, ema, tokens,
                          compile=fast)
    step, elapsed = 0, 0.0
    resume = run.resume_path
    if resume.exists():
        run.check_digest("resume", resume)
        meta = load_checkpoint(resume, model, optimizer, rng, digest, ema)
        step, elapsed = int(meta["step"]), float(json.loads(meta.get("elapsed_seconds", "0")))
    # An evaluation is done once its checkpoint is saved (the first write of `checkpoint_and_evaluate`) and the
    # resume file has reached it; a record without them is recomputed.
    records = [r for r in run.records() if r["step"] <= step and run.checkpoint_path(r["step"]).exists()]
    accelerator.wait_for_everyone()
    if main:
        run.write_records(records)
        launch = {"start_step": step, "processes": accelerator.num_processes, "global_batch": tc["batch_size"],
                  "per_process_batch": tc["batch_size"] // accelerator.num_processes,
                  "device": str(accelerator.device), "mixed_precision": accelerator.mixed_precision,
                  "gpu": torch.cuda.get_device_name(accelerator.device) if accelerator.device.type == "cuda" else None,
                  "torch": torch.__version__, "fast": fast}
        run.log_launch(launch)

    def checkpoint_and_evaluate(step: int) -> None:
        if main:
            if ema is not None:
                ema.copy_to(averaged.parameters())
            averaged.eval()
            record = json_ready({"step": step, **evaluate(evaluated, step),
                                 "elapsed_seconds": elapsed + time.perf_counter() - start})
            model.train()
            run.save_model(step, averaged)  # first: a record or resume file never announces a missing checkpoint
            fault_point("train:checkpoint-saved")
            records.append(record)
            run.write_records(records)
            run.save_resume(model, optimizer, rng, step, {"elapsed_seconds": record["elapsed_seconds"]}, ema=ema)
        accelerator.wait_for_everyone()

    start = time.perf_counter()
    model.train()
    if step == 0 and not records:
        checkpoint_and_evaluate(0)
    end = tc["steps"] if stop_after is None else min(stop_after, tc["steps"])
    bar = tqdm(total=tc["steps"], initial=step, desc="training", disable=not (progress and main), dynamic_ncols=True)
    smoothed = None
    warmup = int(tc.get("warmup_steps", 0))
    while step < end:
        if warmup:  # linear warm-up of the learning rate over the first `warmup_steps` (a function of the step: resumes)
            for group in optimizer.param_groups:
                group["lr"] = tc["lr"] * min(1.0, (step + 1) / warmup)
        loss = step_once().item()  # the main process's share of the batch
        if not math.isfinite(loss):
            raise FloatingPointError(f"{run.path}: the training loss is {loss} at step {step + 1}; lower the "
                                     "learning rate or check the data")
        step += 1
        smoothed = loss if smoothed is None else 0.98 * smoothed + 0.02 * loss
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{smoothed:.4f}")
        if step % tc["eval_every"] == 0 or step == tc["steps"]:
            checkpoint_and_evaluate(step)
    bar.close()
    accelerator.wait_for_everyone()
    return records if main else [r for r in run.records() if r["step"] <= step]
