"""The roofline of record (`bench roofline`): this machine's peaks and how close each model comes to them.

Peaks: a 2048 x 2048 GEMM and a 3x3 convolution of the UNets' width, in float32 and bfloat16, at one thread and at
every core. Models: the FLOPs of one training step and of one sampling step (one network call on a sampler batch)
counted by `torch.utils.flop_counter.FlopCounterMode` (matrix products and convolutions, forward and backward; the
elementwise work is not counted, so the fractions are lower bounds of the work done), the milliseconds each takes
(the median of rounds after a warm-up, one thread), and the achieved GFLOP/s as a fraction of the float32 GEMM peak
at one thread: a model near that fraction is compute-bound, one far below it is overhead-bound.

    python -m ldrkit bench roofline [NAME ...] [--profile cpu] [--steps 15] [--out DIR]
"""
from __future__ import annotations

import os
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..denoisers.device import cpu_flags, cpu_name
from ..runs.setup import Setup
from ..spec.registry import get_experiment
from .report import DEFAULT_EXPERIMENTS, report
from .step import bare_step

ROUNDS = 3
ROOFLINE_EXPERIMENTS = (*DEFAULT_EXPERIMENTS, "parity-mlp-L8")


def _median_seconds(fn, calls: int, rounds: int = ROUNDS) -> float:
    """The median over `rounds` of the mean seconds per call of `calls` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def _threads(n: int):
    """A context that runs torch on n threads and restores the previous count."""
    class Threads:
        def __enter__(self):
            self.before = torch.get_num_threads()
            torch.set_num_threads(n)

        def __exit__(self, *exc):
            torch.set_num_threads(self.before)
    return Threads()


def peaks(size: int = 2048, calls: int = 5) -> list[dict]:
    """GFLOP/s of a square GEMM and of the UNets' widest 3x3 convolution, float32 and bfloat16, per thread count."""
    rows = []
    for threads in sorted({1, os.cpu_count() or 1}):
        for dtype in (torch.float32, torch.bfloat16):
            with _threads(threads), torch.no_grad():
                a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
                gemm = _median_seconds(lambda: a @ b, calls)
                conv = torch.nn.Conv2d(32, 32, 3, padding=1).to(dtype)
                x = torch.randn(64, 32, 16, 16, dtype=dtype)
                conv_s = _median_seconds(lambda: conv(x), calls * 4)
            conv_flop = 2 * 64 * 32 * 32 * 9 * 16 * 16
            rows.append({"kernel": f"GEMM {size}", "dtype": str(dtype).removeprefix("torch."), "threads": threads,
                         "GFLOP/s": round(2 * size ** 3 / gemm / 1e9, 1)})
            rows.append({"kernel": "conv 3x3, 32->32 on 64x16x16", "dtype": str(dtype).removeprefix("torch."),
                         "threads": threads, "GFLOP/s": round(conv_flop / conv_s / 1e9, 1)})
    return rows


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def model_row(name: str, profile: str, steps: int, peak: float) -> dict:
    """One model's training step and sampling step: counted GFLOP, milliseconds (one thread), GFLOP/s, share of peak."""
    config = get_experiment(name).config(profile, 0)
    setup = Setup.from_config(config)
    model = setup.build_model(config)
    tc, ev = config["train"], config["eval"]
    step = bare_step(model, setup.train_data, setup.schedule, tc["batch_size"], tc["lr"])
    batch = min(int(ev.get("sample_batch") or ev["num_samples"]), int(ev["num_samples"]))
    x = torch.randn(batch, *setup.renderer.signal_shape)
    t = torch.full((batch,), setup.schedule.num_timesteps // 2, dtype=torch.long)

    def sample_call():
        with torch.no_grad():
            model(x, t)
    with _threads(1):
        train_flop, train_s = _flops(step), _median_seconds(step, steps)
        model.eval()
        sample_flop, sample_s = _flops(sample_call), _median_seconds(sample_call, steps)
    row = {"experiment": name, "profile": profile, "parameters": sum(p.numel() for p in model.parameters()),
           "batch": tc["batch_size"], "sample batch": batch}
    for what, flop, seconds in (("train step", train_flop, train_s), ("sampling step", sample_flop, sample_s)):
        rate = flop / seconds / 1e9
        row.update({f"{what} GFLOP": round(flop / 1e9, 3), f"{what} ms": round(seconds * 1e3, 2),
                    f"{what} GFLOP/s": round(rate, 1), f"{what} of fp32 peak": round(rate / peak, 3)})
    return row


def format_table(machine: dict, peak_rows: list[dict], rows: list[dict]) -> str:
    """The report as markdown: the machine, its peaks, each model's two steps against the float32 GEMM peak."""
    lines = [f"Machine: {machine['cpu']} ({machine['cores']} cores), torch {machine['torch']}", "",
             "| kernel | dtype | threads | GFLOP/s |", "|---|---|---|---|"]
    lines += [f"| {r['kernel']} | {r['dtype']} | {r['threads']} | {r['GFLOP/s']} |" for r in peak_rows]
    lines += ["", "| experiment | parameters | batch | train GFLOP | train ms | train GFLOP/s | of peak | sampling ms | "
              "sampling GFLOP/s | of peak |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['experiment']} | {r['parameters']:,} | {r['batch']} | {r['train step GFLOP']} | "
              f"{r['train step ms']} | {r['train step GFLOP/s']} | {r['train step of fp32 peak']:.0%} | "
              f"{r['sampling step ms']} | {r['sampling step GFLOP/s']} | {r['sampling step of fp32 peak']:.0%} |"
              for r in rows]
    return "\n".join(lines)


def run_roofline(names: list[str] | None = None, profile: str = "cpu", steps: int = 15, out=None,
                 json_output: bool = False, gemm_size: int = 2048) -> dict:
    """Peaks (a GEMM of `gemm_size`), then every model's row; prints the table, writes OUT/bench_roofline.{json,md}."""
    machine = {"cpu": f"{cpu_name()}, {cpu_flags()}", "cores": os.cpu_count(), "torch": torch.__version__}
    peak_rows = peaks(gemm_size)
    peak = next(r["GFLOP/s"] for r in peak_rows if r["kernel"].startswith("GEMM") and r["dtype"] == "float32"
                and r["threads"] == 1)
    rows = [model_row(name, profile, steps, peak) for name in names or ROOFLINE_EXPERIMENTS]
    result = {"machine": machine, "peaks": peak_rows, "models": rows}
    report([result], format_table(machine, peak_rows, rows), out, "bench_roofline", json_output)
    return result
