"""Exact denoisers of an experiment's data: the yardsticks a trained network is measured against.

For an experiment's Setup there are three oracles (see `ldrkit.oracle`):
- "rule": the exact denoiser of the rule distribution (its enumerated support, rendered; for the
  probabilistic Quarter-digits rendering, a mixture over the valid tuples of per-quarter instance mixtures);
- "product": each symbol cell independent with its marginal over the training set;
- "memoriser": the exact denoiser of the training set.
"""
from __future__ import annotations

import numpy as np
import torch

from . import ldr as ldr_probe
from .digits import QuarterDigitRenderer
from .oracle import FiniteSetDenoiser, ProductOfCellsDenoiser, TupleOfInstancesDenoiser, eps_distance
from .specs import ORACLES  # ("rule", "product", "memoriser")


def build_oracle(setup, which: str) -> torch.nn.Module:
    """One of the three exact denoisers for an experiment's Setup.

    The rule oracle of a deterministic renderer is the finite set of the rendered valid
    sequences; that of a probabilistic one (Quarter-digits, where every quarter is a random
    handwritten instance of its digit) is the mixture over the valid tuples of per-quarter
    instance mixtures (`quarter_digit_rule_oracle`). Product and memoriser work on the training
    images whatever the renderer.
    """
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
