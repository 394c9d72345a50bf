"""Denoisers, all with the one call signature model(x, t) -> eps.

Image models (UNet, DiT from diffusers) join this module through small adapters.
"""
from __future__ import annotations

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn


class MLPDenoiser(nn.Module):
    """An MLP on flat vectors with a sinusoidal timestep embedding added to every hidden layer.

    Its receptive field is global: every output coordinate can depend on every input coordinate.
    """

    def __init__(self, dim: int, hidden: int = 256, depth: int = 3, time_dim: int = 64):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.dim = dim
        self.time_proj = Timesteps(time_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(time_dim, hidden)
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.time_to_block = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.out = nn.Linear(hidden, dim)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"MLPDenoiser expects inputs of shape (n, {self.dim}), got {tuple(x.shape)}")
        temb = self.time_embed(self.time_proj(torch.as_tensor(t).expand(len(x))).to(x.dtype))
        h = self.act(self.inp(x) + temb)
        for block, time_to_block in zip(self.blocks, self.time_to_block):
            h = self.act(block(h) + time_to_block(temb))
        return self.out(h)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(spec: dict, signal_shape: tuple[int, ...]) -> nn.Module:
    """Build a denoiser from a config entry such as {"type": "mlp", "hidden": 256, "depth": 3}."""
    spec = dict(spec)
    kind = spec.pop("type")
    if kind == "mlp":
        dim = 1
        for s in signal_shape:
            dim *= s
        return MLPDenoiser(dim, **spec)
    raise ValueError(f"unknown model type {kind!r}; known: mlp")
