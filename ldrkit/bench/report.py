"""What the benchmarks share: the image experiments they time by default, where a call spends its time
(`op_shares`), and the report every benchmark prints and writes (`report`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

DEFAULT_EXPERIMENTS = ("parity-parens-L16-unet", "parity-parens-L16-dit", "quarter-digits-unet-n32",
                       "quarter-digits-dit-token-n32")


def op_shares(fn: Callable, calls: int = 3, top: int = 5) -> list[dict]:
    """The `top` operators by self CPU time over `calls` calls of fn (torch.profiler), each with its share of the
    total: what a step spends its time on, so that a speed-up target out of reach shows why."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [{"op": e.key, "share": round(e.self_cpu_time_total / total, 3)} for e in events[:top]]


def report(rows: list[dict], table: str, out: str | Path | None, stem: str, json_output: bool = False) -> list[dict]:
    """Print a benchmark's rows (JSON) or table (markdown); with `out`, write OUT/STEM.json and OUT/STEM.md."""
    print(json.dumps(rows, indent=1) if json_output else table, flush=True)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{stem}.json").write_text(json.dumps(rows, indent=1))
        (out / f"{stem}.md").write_text(table + "\n")
    return rows
