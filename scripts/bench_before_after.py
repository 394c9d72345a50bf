"""Training step, sample batch and LDR time of an older commit against this checkout, in one run on one machine.

Training step and sample batch: both versions run their own `python -m ldrkit bench train NAMES --profile P
--steps S`, alternating (before, after, after, before, ...) for `--rounds` rounds so that a drift of the machine
hits both. The LDR probe: one call of `bench train` is too noisy to compare (a single call of 0.2-0.5 s moved
1.3-1.75x between versions whose repeated calls agree), so both versions' `ldr.ldr` are loaded side by side in
this process (the older one as package `ldrkit_before`) and called alternately `--ldr-calls` times each on the
same model, noised inputs and region (one level, sqrt(alpha_bar) = 0.5, the evaluation's method and samples).
The table gives each version's median and the ratio. Run it on an idle machine (nothing else training):

    python scripts/bench_before_after.py [--before 41d7c70] [--rounds 3] [--steps 100] [--ldr-calls 7]
        [--out DIR] [NAME ...]
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import types
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("parity-parens-L16-unet", "parity-parens-L16-dit", "dyck-parens-unet", "quarter-digits-unet",
         "quarter-digits-dit", "english-words-unet", "chinese-chars-unet")
FIELDS = (("steps_per_second", "training steps/s", "higher"), ("sample_batch_seconds", "sample batch s", "lower"),
          ("ldr_level_seconds", "LDR s per level", "lower"))


def checkout(rev: str, into: Path) -> Path:
    """The tree of commit `rev` extracted into `into` (git archive: no worktree left behind)."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    return into


def bench(tree: Path, names: list[str], profile: str, steps: int, out: Path) -> dict[str, dict]:
    """One `bench train` of the ldrkit in `tree` (cwd first on sys.path, so its package is the one imported)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    code = "import ldrkit, sys; sys.exit(0 if ldrkit.__file__.startswith(sys.argv[1]) else 1)"
    subprocess.run([sys.executable, "-c", code, str(tree)], cwd=tree, env=env, check=True)
    subprocess.run([sys.executable, "-m", "ldrkit", "bench", "train", *names, "--profile", profile,
                    "--steps", str(steps), "--out", str(out)], cwd=tree, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return {r["experiment"]: r for r in json.loads((out / "bench_train.json").read_text())}


def load_before_ldr(tree: Path):
    """The `ldr` module of the older tree, imported as `ldrkit_before.probes.ldr` (or `ldrkit_before.ldr`, where the
    tree predates the subpackages) beside this checkout's `ldrkit` (its relative imports resolve inside
    `ldrkit_before`; its `__init__` is not run)."""
    package = types.ModuleType("ldrkit_before")
    package.__path__ = [str(tree / "ldrkit")]
    sys.modules["ldrkit_before"] = package
    layout = "probes.ldr" if (tree / "ldrkit" / "probes" / "ldr.py").exists() else "ldr"
    return importlib.import_module(f"ldrkit_before.{layout}")


def ldr_seconds(before_ldr, name: str, profile: str, calls: int, seed: int = 0) -> dict[str, list[float]]:
    """Seconds per `ldr.ldr` call of each version, called alternately on one freshly initialised model of `name`
    (same inputs, region, method and samples as the evaluation's level at sqrt(alpha_bar) = 0.5); one warm-up
    call each first."""
    import torch
    sys.path.insert(0, str(ROOT))
    from ldrkit.probes import ldr as after_ldr
    from ldrkit.bench.train import _setup
    from ldrkit.spec.registry import get_experiment

    config = get_experiment(name).config(profile, seed)
    config, setup, _ = _setup(config, substitute_mnist=True)
    ev = config["eval"]
    torch.manual_seed(seed)
    model = setup.build_model(config).eval()
    region = setup.renderer.region(ev["ldr_position"])
    kwargs = dict(data=setup.train_data, sqrt_alpha_bar=0.5, n=ev["ldr_samples"], seed=seed,
                  method=ev.get("ldr_method", "exact"), probes=ev.get("ldr_probes", 32))
    versions = {"before": before_ldr, "after": after_ldr}
    seconds: dict[str, list[float]] = {"before": [], "after": []}
    for k in range(calls + 1):
        for version in (("before", "after") if k % 2 == 0 else ("after", "before")):
            start = time.perf_counter()
            versions[version].ldr(model, setup.schedule, region, **kwargs)
            if k:  # the first round warms both up
                seconds[version].append(time.perf_counter() - start)
    return seconds


def cpu_name() -> str:
    from ldrkit.denoisers.device import cpu_flags, cpu_name as model
    return f"{model()}, {cpu_flags()}, {os.cpu_count()} cores"


def summarise(runs: dict[str, list[dict[str, dict]]], names: list[str],
              ldr_calls: dict[str, dict[str, list[float]]]) -> list[dict]:
    """Per experiment and field: each version's median (over the rounds of `bench train`; for the LDR probe, over its
    alternating calls) and after / before."""
    rows = []
    for name in names:
        row = {"experiment": name}
        for field, _, _ in FIELDS:
            if field == "ldr_level_seconds":
                values = {v: calls for v, calls in ldr_calls.get(name, {}).items()}
            else:
                values = {v: [r[name][field] for r in rounds if name in r and r[name].get(field) is not None]
                          for v, rounds in runs.items()}
            med = {v: round(statistics.median(x), 4) if x else None for v, x in values.items()}
            row[field] = {**med, "after/before": (round(med["after"] / med["before"], 3)
                                                  if med.get("after") and med.get("before") else None)}
        rows.append(row)
    return rows


def markdown(rows: list[dict], before: str, after: str, rounds: int, steps: int, profile: str, calls: int) -> str:
    head = "| experiment | " + " | ".join(f"{label} before | after | ratio" for _, label, _ in FIELDS) + " |"
    lines = [head, "|" + " --- |" * (1 + 3 * len(FIELDS))]
    for r in rows:
        cells = [f"{r[f]['before']} | {r[f]['after']} | {r[f]['after/before']}" for f, _, _ in FIELDS]
        lines.append(f"| {r['experiment']} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", f"Before: {before}; after: {after}. Medians of {rounds} alternating rounds of "
                              f"`bench train --profile {profile} --steps {steps}` on {cpu_name()}; ratio = after / "
                              "before (training: above 1 is faster; the seconds: below 1 is faster). LDR: median of "
                              f"{calls} alternating calls per version in one process on the same model and inputs."])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(NAMES))
    ap.add_argument("--before", default="41d7c70")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--ldr-calls", type=int, default=7)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "before-after"))
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.steps < 1 or args.ldr_calls < 1:
        ap.error("--rounds, --steps and --ldr-calls must be at least 1")
    after = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], check=True,
                           capture_output=True, text=True).stdout.strip()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": checkout(args.before, Path(tmp) / "before"), "after": ROOT}
        for k in range(args.rounds):
            order = ("before", "after") if k % 2 == 0 else ("after", "before")
            for version in order:
                print(f"round {k + 1}/{args.rounds}: {version}", flush=True)
                runs[version].append(bench(trees[version], args.names, args.profile, args.steps,
                                           Path(tmp) / f"{version}-{k}"))
        before_ldr = load_before_ldr(trees["before"])
        ldr_calls = {}
        for name in args.names:
            print(f"LDR: {name}", flush=True)
            ldr_calls[name] = ldr_seconds(before_ldr, name, args.profile, args.ldr_calls)
    rows = summarise(runs, args.names, ldr_calls)
    table = markdown(rows, args.before, after, args.rounds, args.steps, args.profile, args.ldr_calls)
    (out / "before_after.json").write_text(json.dumps({"before": args.before, "after": after, "cpu": cpu_name(),
                                                        "rounds": runs, "ldr_calls": ldr_calls,
                                                        "summary": rows}, indent=1))
    (out / "before_after.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
