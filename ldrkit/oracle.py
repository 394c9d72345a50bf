"""Exact denoisers of finite distributions: the posterior mean over an enumerated support.

For data uniform (or weighted) on a finite set {s_k}, the noised density is a Gaussian
mixture and the ideal denoiser is E[x0 | x_t] = sum_k softmax_k(log w_k - ||x_t - sqrt(abar) s_k||^2 / (2 (1 - abar))) s_k.
These oracles share the networks' signature model(x, t) -> eps, so the sampler, the
decoder and the LDR probe run on them unchanged, and they are differentiable.
"""
from __future__ import annotations

import torch
from torch import nn

from .diffusion import Schedule


def posterior_mean(x: torch.Tensor, support: torch.Tensor, sqrt_alpha_bar: torch.Tensor | float,
                   log_weights: torch.Tensor | None = None, chunk: int = 4096) -> torch.Tensor:
    """E[x0 | x_t = x] for x0 drawn from `support` (rows, flattened like x) with optional log-weights.

    `sqrt_alpha_bar` is a scalar or one value per row of x. The log-sum-exp is taken over
    the support in chunks of `chunk` rows (streaming softmax), so memory stays
    O(len(x) * chunk) whatever the support size.
    """
    flat = x.reshape(len(x), -1)
    support = support.reshape(len(support), -1).to(flat.dtype)
    if support.shape[1] != flat.shape[1]:
        raise ValueError(f"support rows have {support.shape[1]} entries, inputs {flat.shape[1]}")
    a = torch.as_tensor(sqrt_alpha_bar, dtype=flat.dtype).reshape(-1, 1)
    var = 1 - a**2
    if log_weights is None:
        log_weights = torch.zeros(len(support), dtype=flat.dtype)
    running_max = torch.full((len(flat), 1), -torch.inf, dtype=flat.dtype)
    norm = torch.zeros(len(flat), 1, dtype=flat.dtype)
    acc = torch.zeros_like(flat)
    for start in range(0, len(support), chunk):
        s = support[start:start + chunk]
        # -||x - a s||^2 / (2 var), dropping the ||x||^2 term that is constant over the support.
        logits = (a * flat @ s.T - 0.5 * a**2 * (s * s).sum(1)) / var + log_weights[start:start + chunk]
        new_max = torch.maximum(running_max, logits.max(dim=1, keepdim=True).values)
        scale = torch.exp(running_max - new_max)
        p = torch.exp(logits - new_max)
        norm = norm * scale + p.sum(dim=1, keepdim=True)
        acc = acc * scale + p @ s
        running_max = new_max
    return (acc / norm).reshape(x.shape)


class FiniteSetDenoiser(nn.Module):
    """The exact eps-predictor of the uniform (or weighted) distribution on a finite set of signals."""

    def __init__(self, support: torch.Tensor, schedule: Schedule, weights: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("support", support.float())
        log_w = None if weights is None else torch.log(torch.as_tensor(weights, dtype=torch.float32))
        self.register_buffer("log_weights", log_w if log_w is not None else torch.zeros(len(support)))
        self.schedule = schedule

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t).expand(len(x))
        abar = self.schedule.alphas_cumprod[t].to(x.dtype)
        x0 = posterior_mean(x, self.support, abar.sqrt(), self.log_weights)
        shape = (-1,) + (1,) * (x.dim() - 1)
        return (x - abar.sqrt().reshape(shape) * x0) / (1 - abar).sqrt().reshape(shape)


class ProductOfCellsDenoiser(nn.Module):
    """The exact denoiser of "independent symbols": each cell drawn independently from its own marginal.

    `regions` are disjoint boolean masks over one signal that together cover it (one per
    symbol cell). Cell j's marginal is the empirical distribution of data[:, region_j]
    (its distinct values with their frequencies). Under Gaussian noise the posterior then
    factorises over cells, so the denoiser is one small posterior mean per cell.
    """

    def __init__(self, data: torch.Tensor, regions: list[torch.Tensor], schedule: Schedule):
        super().__init__()
        masks = torch.stack([torch.as_tensor(r, dtype=torch.bool).reshape(-1) for r in regions])
        if masks.shape[1] != data[0].numel():
            raise ValueError(f"regions cover {masks.shape[1]} elements, signals have {data[0].numel()}")
        if not torch.equal(masks.sum(0), torch.ones(masks.shape[1], dtype=masks.sum(0).dtype)):
            raise ValueError("regions must be disjoint and cover the whole signal")
        flat = data.reshape(len(data), -1).float()
        self.masks = masks
        self.cells, self.cell_log_weights = [], []
        for mask in masks:
            values, counts = torch.unique(flat[:, mask], dim=0, return_counts=True)
            self.cells.append(values)
            self.cell_log_weights.append(torch.log(counts.float() / counts.sum()))
        self.schedule = schedule

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t).expand(len(x))
        abar = self.schedule.alphas_cumprod[t].to(x.dtype)
        flat = x.reshape(len(x), -1)
        x0 = torch.zeros_like(flat)
        for mask, values, log_w in zip(self.masks, self.cells, self.cell_log_weights):
            x0 = x0.index_put((torch.arange(len(x))[:, None], mask.nonzero().squeeze(1)[None]),
                              posterior_mean(flat[:, mask], values, abar.sqrt(), log_w))
        a = abar.sqrt().reshape(-1, 1)
        return ((flat - a * x0) / (1 - abar).sqrt().reshape(-1, 1)).reshape(x.shape)


@torch.no_grad()
def eps_distance(model, reference, inputs: torch.Tensor, t: int) -> float:
    """Mean over inputs and coordinates of (model(x, t) - reference(x, t))^2.

    Averaged per coordinate (the squared norm divided by the signal size) so values are
    comparable across signal sizes; 1.0 is the distance between unit-variance noises.
    """
    tt = torch.full((len(inputs),), int(t), dtype=torch.long)
    return float((model(inputs, tt) - reference(inputs, tt)).pow(2).mean())
