"""The cost of training (`bench train`, `bench_training`): for each image experiment at a profile's
model sizes (default `paper`), a few hundred steps of the real training step (`train.make_step`,
through the Accelerator, on the GPU when there is one) and one evaluation sample batch (the
evaluation's sampler and number of sampler steps), reporting steps per second, the seconds of
the sample batch and peak GPU memory (torch.cuda.max_memory_allocated), and projecting the
profile's full training time. `scripts/gpu_check.sh` runs it on a CUDA machine:

    python -m ldrkit bench train [NAME ...] --profile paper --steps 300 [--device cuda] [--out DIR]
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from ..denoisers.device import resolve_device
from ..denoisers.models import count_parameters
from ..probes import ldr as ldr_probe
from ..runs.setup import Setup
from ..runs.train import for_evaluation, make_accelerator, make_optimizer, make_step
from ..spec.hashing import merge
from ..spec.registry import EXPERIMENTS, get_experiment
from .report import report

GPU_CHECK = ("parity-parens-L16-unet", "parity-parens-L16-dit", "dyck-parens-unet", "quarter-digits-unet",
             "quarter-digits-dit", "english-words-unet", "chinese-chars-unet")
"""The image experiments `scripts/gpu_check.sh` measures (those registered)."""


def gpu_check_names() -> list[str]:
    return [name for name in GPU_CHECK if name in EXPERIMENTS]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def _setup(config: dict, substitute_mnist: bool):
    """The experiment's Setup; when MNIST's IDX files are missing, optionally scikit-learn's digits at the same size."""
    try:
        return config, Setup.from_config(config), None
    except FileNotFoundError as err:
        if config.get("render", {}).get("source") != "mnist":
            raise
        if not substitute_mnist:
            raise FileNotFoundError(f"skipped: {err} (or pass --substitute-mnist to time it on scikit-learn's "
                                    "digits at the same image size)") from err
        config = merge(config, {"render": {"source": "sklearn"}})
        note = (f"MNIST IDX files not found: scikit-learn's digits resized to {config['render']['size']} px stand in "
                "(same image size and model, so the same cost)")
        return config, Setup.from_config(config), note


def bench_training(name: str, profile: str = "paper", steps: int = 300, warmup: int = 10, eval_batch: int = 64,
                   device: str | None = None, substitute_mnist: bool = False, seed: int = 0, ldr: bool = True) -> dict:
    """Time `steps` training steps and one evaluation sample batch of an experiment at a profile's sizes.

    The step is the training loop's own (`train.make_step`: global batch drawn on the CPU, the
    process's share moved to the device, Adam through the Accelerator, loss.item() every step).
    The sample batch has min(eval_batch, num_samples) samples and the evaluation's sampler and steps;
    a real evaluation samples all num_samples at once. With `ldr`, one of the evaluation's five LDR
    levels is timed too (its method, probes and samples at sqrt(alpha_bar) = 0.5; x5 per evaluation).
    The oracle distances of the parentheses experiments are not timed.
    Raises FileNotFoundError starting "skipped:" when quarter-digits needs MNIST and no substitute is allowed.
    """

    experiment = get_experiment(name)
    config = experiment.config(profile, seed)
    if experiment.kind != "train" or "model" not in config:
        raise ValueError(f"{name} does not train a denoiser through ldrkit.runs.train; nothing to time")
    config, setup, note = _setup(config, substitute_mnist)
    tc, ev = config["train"], config["eval"]
    accelerator = make_accelerator(tc, device)
    dev = accelerator.device
    model = setup.build_model(config)
    wrapped, optimizer = accelerator.prepare(model, make_optimizer(model, tc["lr"]))
    model = accelerator.unwrap_model(wrapped)
    step = make_step(wrapped, optimizer, accelerator, setup.schedule, setup.train_data, tc["batch_size"],
                     torch.Generator().manual_seed(seed))
    model.train()
    for _ in range(warmup):
        step().item()
    _sync(dev)
    _reset_peak(dev)
    start = time.perf_counter()
    losses = [step().item() for _ in range(steps)]
    _sync(dev)
    train_s = time.perf_counter() - start
    row = {"experiment": name, "profile": profile, "device": str(dev),
           "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
           "processes": accelerator.num_processes, "model": config["model"]["type"],
           "parameters": count_parameters(model), "signal_shape": list(setup.renderer.signal_shape),
           "train_examples": len(setup.train_data), "batch_size": tc["batch_size"],
           "mixed_precision": accelerator.mixed_precision,
           "steps": steps, "warmup": warmup, "train_seconds": round(train_s, 3),
           "steps_per_second": round(steps / train_s, 3), "peak_train_mib": _peak_mib(dev),
           "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4)}
    n = min(int(eval_batch), ev["num_samples"])
    model.eval()
    _reset_peak(dev)
    try:
        with torch.no_grad():
            start = time.perf_counter()
            setup.generate(for_evaluation(model, dev), n, seed, ev.get("sample_steps"), sampler=ev.get("sampler", "ddpm"))
            _sync(dev)
            sample_s = time.perf_counter() - start
        row.update(sample_batch=n, sampler=ev.get("sampler", "ddpm"), sample_steps=ev.get("sample_steps"),
                   sample_batch_seconds=round(sample_s, 3), peak_sample_mib=_peak_mib(dev))
    except torch.cuda.OutOfMemoryError as err:
        row.update(sample_batch=n, sample_error=f"out of memory sampling {n} at once: {str(err).splitlines()[0]}")
        sample_s = None
    # The profile's whole run, projected from these rates (the oracle distances come on top).
    evaluations = tc["steps"] // tc["eval_every"] + 1
    row.update(profile_steps=tc["steps"], profile_train_hours=round(tc["steps"] / row["steps_per_second"] / 3600, 2),
               evaluations=evaluations, eval_samples=ev["num_samples"])
    if sample_s is not None:
        per_eval = sample_s * math.ceil(ev["num_samples"] / n)
        row.update(eval_sampling_seconds=round(per_eval, 1),
                   profile_sampling_hours=round(evaluations * per_eval / 3600, 2))
    if ldr:
        _reset_peak(dev)
        try:
            start = time.perf_counter()
            ldr_probe.ldr(for_evaluation(model, dev), setup.schedule, setup.renderer.region(ev["ldr_position"]),
                          data=setup.train_data, sqrt_alpha_bar=0.5, n=ev["ldr_samples"], seed=seed,
                          method=ev.get("ldr_method", "exact"), probes=ev.get("ldr_probes", 32))
            _sync(dev)
            level_s = time.perf_counter() - start
            row.update(ldr_method=ev.get("ldr_method", "exact"), ldr_samples=ev["ldr_samples"],
                       ldr_level_seconds=round(level_s, 3), eval_ldr_seconds=round(5 * level_s, 1),
                       profile_ldr_hours=round(evaluations * 5 * level_s / 3600, 2), peak_ldr_mib=_peak_mib(dev))
        except torch.cuda.OutOfMemoryError as err:
            row["ldr_error"] = f"out of memory in the LDR probe: {str(err).splitlines()[0]}"
    if note:
        row["note"] = note
    del wrapped, model, optimizer, step
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return row


def format_training_table(rows: list[dict], profile: str = "paper", steps: int = 300, warmup: int = 10) -> str:
    """A markdown table of bench_training rows (skipped or failed experiments say why)."""
    head = ("| experiment | model | params (M) | image | batch | steps/s | peak train MiB | sample batch | "
            f"sample batch s | peak sample MiB | LDR s per eval | {profile}-profile train h | sampling h (all evals) | "
            "LDR h (all evals) |")
    lines = [head, "|" + "|".join([" --- "] * 14) + "|"]
    notes = []
    for r in rows:
        if "steps_per_second" not in r:
            lines.append(f"| {r['experiment']} | {r.get('error', r.get('skipped', ''))} |" + " |" * 12)
            continue
        fmt = lambda v: "-" if v is None else v
        lines.append(
            f"| {r['experiment']} | {r['model']} | {r['parameters'] / 1e6:.3g} | {'x'.join(map(str, r['signal_shape']))} "
            f"| {r['batch_size']} | {r['steps_per_second']:.2f} | {fmt(r['peak_train_mib'])} | "
            f"{r['sample_batch']} x {r.get('sample_steps')} {r.get('sampler', '')} | {fmt(r.get('sample_batch_seconds'))} | "
            f"{fmt(r.get('peak_sample_mib', r.get('sample_error')))} | {fmt(r.get('eval_ldr_seconds', r.get('ldr_error')))} | "
            f"{r['profile_train_hours']} | {fmt(r.get('profile_sampling_hours'))} | {fmt(r.get('profile_ldr_hours'))} |")
        if r.get("note"):
            notes.append(f"- {r['experiment']}: {r['note']}")
    devices = sorted({f"{r['device']} ({r['gpu']})" if r.get("gpu") else r["device"] for r in rows if "device" in r})
    footer = [f"Device: {', '.join(devices) or '-'}; {steps} timed steps after {warmup} warm-up steps at the "
              f"{profile} profile's sizes; its hours are projections from these "
              "rates (the oracle distances of the parentheses evaluations come on top)."]
    return "\n".join(lines + [""] + footer + notes)


def run_training_benchmark(names: list[str] | None = None, profile: str = "paper", steps: int = 300, warmup: int = 10,
                           eval_batch: int = 64, device: str | None = None, substitute_mnist: bool = False,
                           out: str | Path | None = None, json_output: bool = False) -> list[dict]:
    """bench_training for each name (default: `gpu_check_names()`); prints a table, writes OUT/bench_train.{json,md}.

    An experiment that fails (out of memory, missing data) gives a row saying why; the others still run.
    """
    resolve_device(device)  # asking for cuda without a GPU fails here, before anything is built
    rows = []
    for name in names or gpu_check_names():
        print(f"bench train: {name} ({profile}) ...", flush=True)
        try:
            rows.append(bench_training(name, profile, steps, warmup, eval_batch, device, substitute_mnist))
        except FileNotFoundError as err:
            if not str(err).startswith("skipped:"):
                raise
            rows.append({"experiment": name, "skipped": str(err)})
        except (RuntimeError, ValueError) as err:  # e.g. CUDA out of memory in training
            rows.append({"experiment": name, "error": f"{type(err).__name__}: {str(err).splitlines()[0]}"})
        if "steps_per_second" in rows[-1]:
            peak = rows[-1]["peak_train_mib"]
            print(f"  {rows[-1]['steps_per_second']} steps/s" + (f", peak {peak} MiB" if peak else ""), flush=True)
        else:
            print(f"  {rows[-1].get('skipped') or rows[-1].get('error')}", flush=True)
    return report(rows, format_training_table(rows, profile, steps, warmup), out, "bench_train", json_output)
