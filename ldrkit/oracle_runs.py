"""Exact denoisers of an experiment's data, run like any experiment (sampling only) and used as yardsticks.

For an experiment's Setup there are three oracles (see `ldrkit.oracle`):
- "rule": the exact denoiser of the rule distribution (its enumerated support, rendered; for the
  probabilistic Quarter-digits rendering, a mixture over the valid tuples of per-quarter instance mixtures);
- "product": each symbol cell independent with its marginal over the training set;
- "memoriser": the exact denoiser of the training set.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import ldr as ldr_probe
from .categorize import fractions
from .oracle import FiniteSetDenoiser, ProductOfCellsDenoiser, TupleOfInstancesDenoiser, eps_distance

ORACLES = ("rule", "product", "memoriser")


def build_oracle(setup, which: str) -> torch.nn.Module:
    """One of the three exact denoisers for an experiment's Setup.

    The rule oracle of a deterministic renderer is the finite set of the rendered valid
    sequences; that of a probabilistic one (Quarter-digits, where every quarter is a random
    handwritten instance of its digit) is the mixture over the valid tuples of per-quarter
    instance mixtures (`quarter_digit_rule_oracle`). Product and memoriser work on the training
    images whatever the renderer.
    """
    from .digits import QuarterDigitRenderer

    if which == "rule" and isinstance(setup.renderer, QuarterDigitRenderer):
        return quarter_digit_rule_oracle(setup.renderer, setup.grammar.enumerate(), setup.schedule, setup.shift)
    if which == "rule":
        # In the model's space: the same constant shift as the training data (see Setup.from_config).
        return FiniteSetDenoiser(setup.renderer.render(setup.grammar.enumerate()) - setup.shift, setup.schedule)
    if which == "product":
        regions = [setup.renderer.region(j) for j in range(setup.grammar.length)]
        return ProductOfCellsDenoiser(setup.train_data, regions, setup.schedule)
    if which == "memoriser":
        return FiniteSetDenoiser(setup.train_data, setup.schedule)
    raise ValueError(f"unknown oracle {which!r}; choose from {ORACLES}")


def quarter_digit_rule_oracle(renderer, tuples, schedule, shift: float = 0.0,
                              max_instances: int | None = None) -> TupleOfInstancesDenoiser:
    """The exact denoiser of what `renderer.render(tuples)` draws: a uniform tuple of `tuples`, each quarter a
    uniform random instance of its digit from the renderer's training pool (the first `max_instances`
    of each digit if given, for small checks), minus the data-centring `shift`."""
    images, labels = renderer.train_digits.images, renderer.train_digits.labels
    instances = []
    for k in range(10):
        idx = torch.as_tensor(np.flatnonzero(labels == k)[:max_instances])
        instances.append(images[idx].reshape(len(idx), -1) - shift)
    regions = [renderer.region(j) for j in range(4)]
    return TupleOfInstancesDenoiser(np.asarray(tuples), instances, regions, schedule)


def oracle_distances(model, setup, oracles: dict, levels=ldr_probe.LEVELS, n: int = 64, seed: int = 0) -> dict:
    """{oracle: {level: mean per-coordinate (eps_model - eps_oracle)^2}} on noised training inputs."""
    out: dict[str, dict[str, float]] = {name: {} for name in oracles}
    for level in levels:
        t = setup.schedule.timestep_for(level)
        inputs = ldr_probe.noised_inputs(setup.train_data, setup.schedule, t, n, torch.Generator().manual_seed(seed))
        for name, oracle in oracles.items():
            out[name][f"{level:g}"] = eps_distance(model, oracle, inputs, t)
    return out


def run_oracle(config: dict, run_dir: Path, progress: bool = True) -> dict:
    """Sample from config["oracle"] through the ordinary pipeline; one evaluation at step 0, no training."""
    from .pipeline import Setup

    setup = Setup.from_config(config)
    oracle = build_oracle(setup, config["oracle"])
    ev = config["eval"]
    seed = config["train"]["seed"]
    samples = setup.generate(oracle, ev["num_samples"], seed, ev.get("sample_steps"), progress=progress,
                             sampler=ev.get("sampler", "ddpm"))
    region = setup.renderer.region(ev["ldr_position"])
    table = ldr_probe.ldr_levels(oracle, setup.schedule, region, setup.train_data, n=ev["ldr_samples"], seed=seed)
    record = {"step": 0, "categories": fractions(setup.categorize(samples)), "ldr": table["eps"], "ldr_x0": table["x0"]}
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    torch.save(samples.half(), Path(run_dir) / "samples.pt")
    return {"oracle": config["oracle"], "evaluations": [record], "final": record}


def oracle_distance_over_training(run_dir: Path, n: int = 64, seed: int = 0, levels=ldr_probe.LEVELS) -> list[dict]:
    """Distance of every checkpoint of a run to the three oracles, cached in RUN_DIR/oracle_distance.json.

    Returns one row per checkpoint: {"step", "rule": {level: d}, "product": {...}, "memoriser": {...}}.
    Only checkpoints missing from the cache are computed.
    """
    import json

    from .pipeline import load_run
    from .train import atomic_write, checkpoints, load_checkpoint

    run_dir = Path(run_dir)
    cache_path = run_dir / "oracle_distance.json"
    key = json.dumps({"n": n, "seed": seed, "levels": list(levels)})
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    entry = cache.setdefault(key, {})
    found = checkpoints(run_dir)
    todo = [(s, p) for s, p in found if str(s) not in entry]
    if todo:
        setup, model, _ = load_run(run_dir)
        oracles = {w: build_oracle(setup, w) for w in ORACLES}
        for step, path in todo:
            load_checkpoint(path, model)
            model.eval()
            entry[str(step)] = oracle_distances(model, setup, oracles, levels, n, seed)
            atomic_write(cache_path, json.dumps(cache))
    # A run restored from the results store keeps only its last weights; its cache holds the rest.
    steps = sorted({s for s, _ in found} | {int(s) for s in entry})
    return [{"step": s, **entry[str(s)]} for s in steps]
