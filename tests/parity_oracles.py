"""Helpers shared by the tests calibrated on exact oracles (coupling, detectors): a small parity setup and a
mixture of two denoisers, whose calibrated scores are known exactly (a mixture a f + (1 - a) g)."""
from __future__ import annotations

from torch import nn

from ldrkit.runs.setup import Setup

SCHEDULE = {"num_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02}


def parity_setup(length: int, render: dict | None = None) -> Setup:
    """Parity over {+-1}^length, half of the valid sequences in training, rendered as scalars unless told."""
    return Setup.from_config({"grammar": {"name": "parity", "length": length},
                              "split": {"train_fraction": 0.5, "seed": 0},
                              "render": render or {"type": "scalar"}, "schedule": SCHEDULE})


class Mix(nn.Module):
    """The denoiser a f + (1 - a) g."""

    def __init__(self, a, f, g):
        super().__init__()
        self.a, self.f, self.g = a, f, g

    def forward(self, x, t):
        return self.a * self.f(x, t) + (1 - self.a) * self.g(x, t)
