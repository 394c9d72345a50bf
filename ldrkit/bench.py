"""Benchmark of the LDR probe: naive per-element autograd loop vs the exact method vs the estimator.

For a diffusers UNet2DModel (attention at the lowest resolution) and a DiT, each on a
1 x 16 x 64 image with a 16 x 16 region (columns 18-33, off the DiT's patch grid; |R| = 256
Jacobian rows), at sqrt(alpha_bar) = 0.5 on inputs drawn from p_t of random +-1 images, one run reports
- naive_s: a Python loop of one torch.autograd.grad per output element and sample (the
  published way of computing J_R);
- exact_s: ldrkit's exact method (`jacobian="auto"`, i.e. vmap over chunks of VJPs), and
  max_diff, the largest difference of its per-sample LDR values from the loop's;
- exact_methods: the seconds of each batching strategy, the measurement behind "auto";
- estimate: for 8, 32 and 128 Rademacher probes, seconds and abs_err, the mean over
  samples of |estimate - exact| of the per-sample eps-LDR.
- backward_ms_per_row: one plain backward pass per row at batch 1 and at batch 16, the
  ceiling on what batching the exact method's |R| backward passes can gain.
Run as `python -m ldrkit bench ldr [--json]` or `run_benchmark()`; set one thread first.

The cost of training (`bench train`, `bench_training`): for each image experiment at a profile's
model sizes (default `paper`), a few hundred steps of the real training step (`train.make_step`,
through the Accelerator, on the GPU when there is one) and one evaluation sample batch (the
evaluation's sampler and number of sampler steps), reporting steps per second, the seconds of
the sample batch and peak GPU memory (torch.cuda.max_memory_allocated), and projecting the
profile's full training time. `scripts/gpu_check.sh` runs it on a CUDA machine:

    python -m ldrkit bench train [NAME ...] --profile paper --steps 300 [--device cuda] [--out DIR]
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from . import ldr as L
from .diffusion import Schedule
from .models import build_model, count_parameters

SHAPE = (1, 16, 64)
MODELS = {
    "unet": {"type": "unet", "channels": [16, 32, 32], "layers_per_block": 1, "attention_head_dim": 8,
             "norm_num_groups": 8},
    "dit": {"type": "dit", "patch_size": 4, "layers": 4, "heads": 4, "head_dim": 16},
}


def naive_rows(model, x: torch.Tensor, t: int, region: torch.Tensor) -> torch.Tensor:
    """J_R row by row: one autograd.grad per output element and sample (the reference)."""
    rows = region.reshape(-1).nonzero().squeeze(1).tolist()
    out = []
    with L.eval_mode(model), torch.enable_grad():
        for i in range(len(x)):
            xi = x[i:i + 1].detach().clone().requires_grad_(True)
            eps = model(xi, torch.full((1,), t, dtype=torch.long)).reshape(-1)
            out.append(torch.stack([torch.autograd.grad(eps[r], xi, retain_graph=True)[0].reshape(-1)
                                    for r in rows]))
    return torch.stack(out)


def backward_ms_per_row(model, x1: torch.Tensor, t: int, batches=(1, 16), repeats: int = 3) -> dict:
    """Milliseconds per row of one forward-free backward pass w.r.t. the input, at each batch size."""
    out = {}
    with L.eval_mode(model), L.frozen(model), torch.enable_grad():
        for b in batches:
            x = x1.expand(b, *x1.shape).clone().requires_grad_(True)
            eps = model(x, torch.full((b,), t, dtype=torch.long))
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                torch.autograd.grad(eps.sum(), x, retain_graph=True)
                best = min(best, time.perf_counter() - start)
            out[str(b)] = round(1e3 * best / b, 3)
    return out


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def bench_model(name: str, n: int = 8, probes=(8, 32, 128), sqrt_alpha_bar: float = 0.5, seed: int = 0,
                compare_methods: bool = True) -> dict:
    torch.manual_seed(seed)
    model = build_model(MODELS[name], SHAPE).eval()
    schedule = Schedule()
    t = schedule.timestep_for(sqrt_alpha_bar)
    region = torch.zeros(SHAPE, dtype=torch.bool)
    region[:, :, 18:34] = True  # 16 x 16, not aligned with the DiT's 4 x 4 patches
    gen = torch.Generator().manual_seed(seed)
    data = torch.sign(torch.randn(64, *SHAPE, generator=gen))
    x = L.noised_inputs(data, schedule, t, n, gen)
    # Warm up allocator and kernels on one sample so that no method pays the first call.
    L.jacobian_rows(model, x[:1], t, region)
    naive, naive_s = _timed(lambda: naive_rows(model, x, t, region))
    exact, exact_s = _timed(lambda: L.jacobian_rows(model, x, t, region))
    exact_ldr, naive_ldr = L.ratio(exact, region), L.ratio(naive, region)
    result = {
        "model": name, "spec": MODELS[name], "parameters": count_parameters(model), "signal_shape": list(SHAPE),
        "region_size": int(region.sum()), "samples": n, "sqrt_alpha_bar": sqrt_alpha_bar,
        "naive_s": round(naive_s, 3), "exact_s": round(exact_s, 3), "speedup_exact": round(naive_s / exact_s, 2),
        "max_diff": float((exact_ldr - naive_ldr).abs().max()),
        "max_row_diff": float((exact - naive).abs().max()),
        "exact_ldr": round(float(exact_ldr.mean()), 5),
    }
    if compare_methods:
        result["exact_methods"] = {"vmap": round(exact_s, 3)}
        _, s = _timed(lambda: L.jacobian_rows(model, x, t, region, jacobian="replicate"))
        result["exact_methods"]["replicate"] = round(s, 3)
    result["backward_ms_per_row"] = backward_ms_per_row(model, x[0], t)
    result["estimate"] = {}
    for k in probes:
        (rows, _), s = _timed(lambda: L.probe_rows(model, x, t, region, method="estimate", probes=k, seed=seed))
        est = L.ratio(rows, region)
        result["estimate"][str(k)] = {"seconds": round(s, 3), "speedup": round(naive_s / s, 2),
                                      "abs_err": round(float((est - exact_ldr).abs().mean()), 5),
                                      "mean_estimator_se": round(float(L.ratio_se(rows, region).mean()), 5)}
    return result


def format_results(results: dict) -> str:
    lines = [f"{'model':6s} {'params':>8s} {'|R|':>4s} {'n':>3s} {'method':>14s} {'seconds':>8s} {'speedup':>8s} {'error':>10s}"]
    for name, r in results.items():
        head = f"{name:6s} {r['parameters']:8d} {r['region_size']:4d} {r['samples']:3d}"
        lines.append(f"{head} {'naive loop':>14s} {r['naive_s']:8.2f} {1.0:8.2f} {'-':>10s}")
        lines.append(f"{head} {'exact':>14s} {r['exact_s']:8.2f} {r['speedup_exact']:8.2f} {r['max_diff']:10.1e}")
        for m, s in r.get("exact_methods", {}).items():
            if m != "vmap":
                lines.append(f"{head} {'exact/' + m:>14s} {s:8.2f} {r['naive_s'] / s:8.2f} {'':>10s}")
        for k, e in r["estimate"].items():
            lines.append(f"{head} {'estimate K=' + k:>14s} {e['seconds']:8.2f} {e['speedup']:8.2f} {e['abs_err']:10.4f}")
    lines.append("error: exact = max |LDR - loop LDR| over samples; estimate = mean |LDR - exact LDR| over samples")
    return "\n".join(lines)


def run_benchmark(json_output: bool = False, models: tuple[str, ...] = ("unet", "dit"), n: int = 8,
                  probes=(8, 32, 128), seed: int = 0, threads: int | None = 1, compare_methods: bool = True) -> dict:
    """Run the benchmark on each model; prints a table (or JSON) and returns {"unet": {...}, "dit": {...}}."""
    if threads is not None:
        torch.set_num_threads(threads)
    results = {name: bench_model(name, n=n, probes=probes, seed=seed, compare_methods=compare_methods)
               for name in models}
    print(json.dumps(results, indent=1) if json_output else format_results(results), flush=True)
    return results


# --- the cost of training at a profile's sizes -------------------------------------------------

GPU_CHECK = ("parity-parens-L16-unet", "parity-parens-L16-dit", "dyck-parens-unet", "quarter-digits-unet",
             "quarter-digits-dit", "english-words-unet", "chinese-chars-unet")
"""The image experiments `scripts/gpu_check.sh` measures (those registered)."""


def gpu_check_names() -> list[str]:
    from .experiments import EXPERIMENTS
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
    from .experiments import merge
    from .pipeline import Setup

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
    from .experiments import get_experiment
    from .train import for_evaluation, make_accelerator, make_step

    experiment = get_experiment(name)
    config = experiment.config(profile, seed)
    if experiment.runner is not None or "model" not in config:
        raise ValueError(f"{name} does not train a denoiser through ldrkit.train; nothing to time")
    config, setup, note = _setup(config, substitute_mnist)
    tc, ev = config["train"], config["eval"]
    accelerator = make_accelerator(tc, device)
    dev = accelerator.device
    model = setup.build_model(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc["lr"])
    wrapped, optimizer = accelerator.prepare(model, optimizer)
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
        from . import ldr as ldr_probe
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
    from .train import resolve_device

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
    table = format_training_table(rows, profile, steps, warmup)
    print(json.dumps(rows, indent=1) if json_output else table, flush=True)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench_train.json").write_text(json.dumps(rows, indent=1))
        (out / "bench_train.md").write_text(table + "\n")
    return rows


if __name__ == "__main__":
    import sys
    run_benchmark(json_output="--json" in sys.argv)
