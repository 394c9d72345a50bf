"""How far a denoiser is from the exact oracles of its data (`ldrkit.denoisers.oracles`): the mean squared
difference of their eps outputs on noised training inputs, per sqrt(alpha_bar) level."""
from __future__ import annotations

import torch

from ..spec.hashing import LDR_LEVELS
from . import ldr as ldr_probe


def oracle_distances(model, setup, oracles: dict, levels=LDR_LEVELS, n: int = 64, seed: int = 0) -> dict:
    """{oracle: {level: mean per-coordinate (eps_model - eps_oracle)^2}} on noised training inputs."""
    out: dict[str, dict[str, float]] = {name: {} for name in oracles}
    for level in levels:
        t = setup.schedule.timestep_for(level)
        inputs = ldr_probe.noised_inputs(setup.train_data, setup.schedule, t, n, torch.Generator().manual_seed(seed))
        for name, oracle in oracles.items():
            out[name][f"{level:g}"] = eps_distance(model, oracle, inputs, t)
    return out


def eps_distance(model, reference, inputs: torch.Tensor, t: int) -> float:
    """Mean over inputs and coordinates of (model(x, t) - reference(x, t))^2.

    Averaged per coordinate (the squared norm divided by the signal size) so values are
    comparable across signal sizes; 1.0 is the distance between unit-variance noises.
    """
    tt = torch.full((len(inputs),), int(t), dtype=torch.long)
    return float((model(inputs, tt) - reference(inputs, tt)).pow(2).mean())
