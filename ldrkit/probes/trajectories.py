"""LDR along the reverse (sampling) trajectories, split by how each sample ends.

A reviewer asked: do the samples that end valid and those that end hallucinated differ in
how locally they were denoised, and at which noise levels? We sample with the trajectory
recorded, probe each sample's LDR on the states it visited at the timesteps nearest the
requested sqrt(alpha_bar) levels, and group the values by the sample's final category.
"""
from __future__ import annotations

import numpy as np
import torch

from ..spec.hashing import LDR_LEVELS
from . import ldr as ldr_probe
from .estimates import mean_sem


def trajectory_ldr(setup, model, n: int = 64, seed: int = 0, levels=LDR_LEVELS, num_steps: int | None = None,
                   position: int = 1, outputs=("eps", "x0"), sampler: str = "ddpm") -> dict:
    """Per-sample LDR along sampling trajectories.

    Returns {"labels": categories (n,), "levels": {level: {"t": t, output: values (n,)}}}.
    The sampler visits only its own timesteps, so each level uses the visited timestep
    whose sqrt(alpha_bar) is nearest.
    """
    gen = torch.Generator().manual_seed(seed)
    final, trajectory = setup.schedule.sample(model, n, setup.renderer.signal_shape, gen, num_steps=num_steps,
                                              progress=False, return_trajectory=True, sampler=sampler)
    labels = setup.categorize(final + setup.shift)  # back from the model's (possibly centred) space
    visited = np.array([t for t, _ in trajectory])
    roots = setup.schedule.alphas_cumprod.sqrt().numpy()[visited]
    region = setup.renderer.region(position)
    out = {"labels": labels, "levels": {}}
    for level in levels:
        k = int(np.abs(roots - level).argmin())
        t, states = trajectory[k]
        result = ldr_probe.ldr(model, setup.schedule, region, inputs=states, t=t, outputs=outputs)
        out["levels"][f"{level:g}"] = {"t": t, **{o: result[o].values.numpy() for o in outputs}}
    return out


def split_by_outcome(result: dict, output: str = "x0") -> dict:
    """{level: {"valid": (mean, sem, count), "hallucination": (...)}} from trajectory_ldr's result.

    "valid" pools in-dataset and extrapolation samples.
    """
    labels = result["labels"]
    groups = {"valid": np.isin(labels, ["in_dataset", "extrapolation"]), "hallucination": labels == "hallucination"}
    table = {}
    for level, entry in result["levels"].items():
        row = {}
        for name, mask in groups.items():
            v = entry[output][mask]
            row[name] = (*mean_sem(v), int(len(v)))
        table[level] = row
    return table
