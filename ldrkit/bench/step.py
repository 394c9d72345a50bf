"""Where a run's time goes (`bench step`): the training step against a bare PyTorch step and its speed-ups, and one
evaluation split into its parts, at a profile's sizes on this machine.

The training step is timed on the same model, batch and data: ldrkit's own step (`train.make_step`: the global
batch drawn from a seeded generator, Adam through the Accelerator, loss.item() every step), the bare step (the same
arithmetic in a plain PyTorch loop: the framework's overhead is the difference), and the bare step with each
speed-up (`SPEEDUPS`: each on its own, fused Adam and compile together, and bf16 autocast, which changes the
arithmetic and is timed only to show what a change of precision would buy). The evaluation is timed part by part as
`pipeline.evaluate` runs it: sampling, decoding the samples into categories, the LDR at every level, the oracle
distances and the coupling score where the experiment records them; the evaluation's share of the run is projected
from the two:

    python -m ldrkit bench step [NAME ...] --profile cpu [--steps 40] [--threads N] [--out DIR]

The variants are timed round-robin (median of 3 rounds); the bare step is profiled (its top operators by self CPU
time). Numbers from one process, on whatever else the machine is doing: benchmark an idle machine.
"""
from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from ..denoisers.models import count_parameters
from ..runs.setup import Setup
from ..runs.train import for_evaluation, make_accelerator, make_optimizer, make_step
from ..spec.registry import get_experiment
from .report import DEFAULT_EXPERIMENTS, op_shares, report

SPEEDUPS = {
    "bare": {},
    "fused-adam": {"fused": True},              # one kernel for the whole parameter update (torch >= 2.4 on CPU)
    "channels-last": {"channels_last": True},  # NHWC convolutions (images only)
    "compile": {"compile": True},              # torch.compile (inductor; the first steps pay the compilation)
    "fused+compile": {"fused": True, "compile": True},  # the two that each helped, together: the best same-arithmetic step
    "bf16": {"bf16": True},                    # bf16 autocast of the forward pass: different arithmetic, timed to show
}                                              # what only a change of precision (a science change) would buy
"""The bare step's variants: keyword arguments of `bare_step`."""
FAST = "ldrkit-fast"
VARIANTS = (FAST, *SPEEDUPS)
"""What `bench step` can time beside ldrkit's default step: ldrkit's fast step (`train.fast_training`) and SPEEDUPS."""

def bare_step(model: torch.nn.Module, data: torch.Tensor, schedule, batch_size: int, lr: float, seed: int = 0,
              fused: bool = False, channels_last: bool = False, compile: bool = False, bf16: bool = False
              ) -> Callable[[], float]:
    """The eps-loss step (eq. 8) in a plain PyTorch loop: random rows, timesteps and noise, x_t, MSE, Adam (the
    forward pass under bf16 autocast with `bf16`; the loss in float32)."""
    images = data.dim() == 4
    if channels_last and images:
        model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile else model
    optimizer = make_optimizer(model, lr, fast=fused)
    abar = schedule.alphas_cumprod
    g = torch.Generator().manual_seed(seed)

    def step() -> float:
        x0 = data[torch.randint(0, len(data), (batch_size,), generator=g)]
        t = torch.randint(0, len(abar), (batch_size,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        a = abar[t].view(-1, *[1] * (x0.dim() - 1))
        x = a.sqrt() * x0 + (1 - a).sqrt() * eps
        if channels_last and images:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = forward(x, t)
        loss = (out.float() - eps).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def _seconds_per_call(fn: Callable, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def _timed(fn: Callable):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def time_steps(config: dict, setup: Setup, steps: int, warmup: int, variants=VARIANTS, repeats: int = 3
               ) -> tuple[dict, list[dict]]:
    """Milliseconds per training step of ldrkit's step (default, and fast: `train.fast_training`) and of each named
    variant of the bare step, on copies of one freshly built model, and the bare step's `op_shares`. The variants
    are timed round-robin `repeats` times and the median kept: timed one after another once, the first one measured
    pays for a cold machine (a 1.4x "overhead" that vanished when interleaved)."""
    tc = config["train"]
    torch.manual_seed(tc.get("seed", 0))
    base = setup.build_model(config)
    accelerator = make_accelerator(tc, "cpu")

    def ldrkit_step(fast: bool) -> Callable[[], float]:
        model = copy.deepcopy(base).train()
        wrapped, optimizer = accelerator.prepare(model, make_optimizer(model, tc["lr"], fast))
        step = make_step(wrapped, optimizer, accelerator, setup.schedule, setup.train_data, tc["batch_size"],
                         torch.Generator().manual_seed(0), compile=fast)
        return lambda: step().item()
    fns = {"ldrkit": ldrkit_step(False)}
    for name in variants:
        if name not in VARIANTS:
            raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        if name == FAST:
            fns[name] = ldrkit_step(True)
            continue
        if SPEEDUPS[name].get("channels_last") and setup.train_data.dim() != 4:
            continue
        fns[name] = bare_step(copy.deepcopy(base).train(), setup.train_data, setup.schedule, tc["batch_size"],
                              tc["lr"], **SPEEDUPS[name])
    for name, fn in fns.items():  # compilation and first-call allocations happen here, untimed
        for _ in range(warmup + (5 if name == FAST or SPEEDUPS.get(name, {}).get("compile") else 0)):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(1000 * _seconds_per_call(fn, steps))
    ms = {name: statistics.median(values) for name, values in times.items()}
    return ms, op_shares(fns["bare"]) if "bare" in fns else []


def time_evaluation(config: dict, setup: Setup, seed: int = 0) -> dict:
    """Seconds of each part of one evaluation of a freshly built model, as `pipeline.evaluate` runs it (the
    oracles are built once per run, so building them is not counted)."""
    from ..probes import ldr as ldr_probe
    from ..probes.distances import oracle_distances
    from ..runs.pipeline import coupling_record, evaluation_oracles
    from ..spec.hashing import DEFAULTS

    ev = {**DEFAULTS["eval"], **config["eval"]}
    model = for_evaluation(setup.build_model(config).eval(), torch.device("cpu"))
    out = {}
    with torch.no_grad():
        samples, out["sampling"] = _timed(lambda: setup.generate(model, ev["num_samples"], seed, ev["sample_steps"],
                                                                 sampler=ev["sampler"], batch_size=ev["sample_batch"]))
        _, out["decoding"] = _timed(lambda: setup.categorize(samples))
    region = setup.renderer.region(ev["ldr_position"])
    _, out["LDR"] = _timed(lambda: ldr_probe.ldr_levels(model, setup.schedule, region, setup.train_data,
                                                         levels=tuple(ev["ldr_levels"]), n=ev["ldr_samples"],
                                                         seed=seed, method=ev["ldr_method"], probes=ev["ldr_probes"]))
    oracles = evaluation_oracles(setup, ev)
    if ev["oracle_distance"]:
        _, out["oracle distances"] = _timed(lambda: oracle_distances(model, setup, oracles, n=ev["oracle_samples"],
                                                                     seed=seed))
    if ev["coupling_samples"]:
        _, out["coupling"] = _timed(lambda: coupling_record(setup, model, oracles["rule"], oracles["product"], region,
                                                            ev["coupling_levels"] or ev["ldr_levels"],
                                                            ev["coupling_samples"], seed))
    return out


def bench_step(name: str, profile: str = "cpu", steps: int = 40, warmup: int = 5, variants=VARIANTS,
               evaluation: bool = True, seed: int = 0, repeats: int = 3) -> dict:
    """One experiment's row: median ms per step (ldrkit, bare, each speed-up; `steps` steps, `repeats` rounds), the
    speed-up of each over ldrkit's step,
    the evaluation's parts in seconds and its projected share of the run's wall time."""
    config = get_experiment(name).config(profile, seed)
    if "model" not in config or "train" not in config:
        raise ValueError(f"{name} does not train a denoiser through ldrkit.runs.train; nothing to time")
    setup = Setup.from_config(config)
    tc = config["train"]
    ms, ops = time_steps(config, setup, steps, warmup, variants, repeats)
    row = {"experiment": name, "profile": profile, "model": config["model"]["type"],
           "parameters": count_parameters(setup.build_model(config)), "batch_size": tc["batch_size"],
           "signal_shape": list(setup.renderer.signal_shape), "threads": torch.get_num_threads(),
           "steps": steps, "repeats": repeats, "ms_per_step": {k: round(v, 2) for k, v in ms.items()},
           "speedup": {k: round(ms["ldrkit"] / v, 3) for k, v in ms.items()}, "top_ops": ops}
    if evaluation:
        parts = time_evaluation(config, setup, seed)
        evaluations = tc["steps"] // tc["eval_every"] + 1
        train_s, eval_s = tc["steps"] * ms["ldrkit"] / 1000, evaluations * sum(parts.values())
        row.update(eval_seconds={k: round(v, 2) for k, v in parts.items()}, evaluations=evaluations,
                   projected_train_seconds=round(train_s), projected_eval_seconds=round(eval_s),
                   eval_share=round(eval_s / (train_s + eval_s), 3))
    return row


def format_table(rows: list[dict]) -> str:
    """Markdown: one line per experiment (ms per step of each variant with its speed-up), then the evaluations."""
    variants = list(dict.fromkeys(k for r in rows for k in r["ms_per_step"]))
    lines = ["| experiment | params | threads | " + " | ".join(f"{v} ms (x)" for v in variants) + " |",
             "|" + "---|" * (3 + len(variants))]
    for r in rows:
        cells = [f"{r['ms_per_step'][v]:.1f} ({r['speedup'][v]:.2f})" if v in r["ms_per_step"] else "-"
                 for v in variants]
        lines.append(f"| {r['experiment']} | {r['parameters']:,} | {r['threads']} | " + " | ".join(cells) + " |")
    lines += ["", "Where the bare step's time goes (self CPU time, torch.profiler): " + "; ".join(
        f"{r['experiment']}: " + ", ".join(f"{o['op'].removeprefix('aten::')} {o['share']:.0%}" for o in r["top_ops"][:3])
        for r in rows if r.get("top_ops"))]
    parts = list(dict.fromkeys(k for r in rows for k in r.get("eval_seconds", {})))
    if parts:
        lines += ["", "| experiment | " + " | ".join(f"{p} s" for p in parts) + " | evaluations | eval share of run |",
                  "|" + "---|" * (3 + len(parts))]
        for r in rows:
            if "eval_seconds" in r:
                cells = [f"{r['eval_seconds'][p]:.1f}" if p in r["eval_seconds"] else "-" for p in parts]
                lines.append(f"| {r['experiment']} | " + " | ".join(cells) +
                             f" | {r['evaluations']} | {r['eval_share']:.0%} |")
    return "\n".join(lines)


def run_step_benchmark(names: list[str] | None = None, profile: str = "cpu", steps: int = 40, warmup: int = 5,
                       variants=VARIANTS, evaluation: bool = True, out: str | Path | None = None,
                       json_output: bool = False) -> list[dict]:
    """bench_step for each name (default DEFAULT_EXPERIMENTS); prints a table; writes OUT/bench_step.{json,md}."""
    rows = []
    for name in names or DEFAULT_EXPERIMENTS:
        print(f"bench step: {name} ({profile}, {torch.get_num_threads()} threads) ...", flush=True)
        rows.append(bench_step(name, profile, steps, warmup, variants, evaluation))
    return report(rows, format_table(rows), out, "bench_step", json_output)
