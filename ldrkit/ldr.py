"""The Local Dependency Ratio (section 4.3, eq. 2) from exact Jacobians.

LDR(theta, R) = E_{x ~ p_t} [ ||J_R P_R||_F^2 / ||J_R||_F^2 ], with J_R the rows of the
Jacobian of the model's output on the region R, taken with respect to the whole input.

Three outputs are probed from one Jacobian of the eps-prediction:
- "eps": the paper's definition, on the network's eps output;
- "x0": the denoiser x0_hat = (x - sqrt(1-abar) eps) / sqrt(abar), whose Jacobian rows are
  (P_R^T - sqrt(1-abar) J_eps,R) / sqrt(abar);
- "eps_minus_identity": eps - x / sqrt(1-abar). A trained eps-model behaves like
  (x - sqrt(abar) x0_hat) / sqrt(1-abar); its identity term I / sqrt(1-abar) lies inside R
  and pushes the eps-LDR towards 1 at high noise whatever the network does.

Regions are boolean masks with the shape of one input signal (a vector, or an image with
any number of channels). Jacobian rows are computed as batched vector-Jacobian products:
the input is replicated once per output element of R and one-hot selectors are
backpropagated in a single call, with no Python loop over output elements.
Modules are put in eval mode while probed (dropout or batch statistics would couple the
replicated rows) and restored afterwards.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from .diffusion import Denoiser, Schedule

LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)
"""The sqrt(alpha_bar) levels of the paper's Fig. 5."""
OUTPUTS = ("eps", "x0", "eps_minus_identity")


@dataclass(frozen=True)
class LDRResult:
    """Per-sample LDR values with their mean and standard error of the mean."""

    values: torch.Tensor

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def sem(self) -> float:
        n = len(self.values)
        return float(self.values.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")

    def __repr__(self) -> str:
        return f"LDR {self.mean:.4f} +- {self.sem:.4f} (n={len(self.values)})"


@contextlib.contextmanager
def eval_mode(model):
    """Put an nn.Module in eval mode for the duration; plain callables pass through."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train()


def check_region(region: torch.Tensor, signal_shape: tuple[int, ...]) -> torch.Tensor:
    region = torch.as_tensor(region)
    if region.dtype != torch.bool:
        raise TypeError(f"region must be a boolean mask, got dtype {region.dtype}")
    if tuple(region.shape) != tuple(signal_shape):
        raise ValueError(f"region mask has shape {tuple(region.shape)}, the signal {tuple(signal_shape)}")
    if not region.any():
        raise ValueError("region mask is empty: LDR needs at least one output element")
    return region


def jacobian_rows(model: Denoiser, x: torch.Tensor, t: int, region: torch.Tensor,
                  max_batch: int = 4096) -> torch.Tensor:
    """Rows of d eps(x, t) / d x for the output elements in `region`: shape (n, |R|, D).

    D is the flattened input size. Rows of all samples are stacked along the batch axis
    in chunks of at most `max_batch` replicated inputs.
    """
    region = check_region(region, tuple(x.shape[1:]))
    rows = region.reshape(-1).nonzero().squeeze(1)
    n, r = len(x), len(rows)
    flat_x = x.detach().reshape(n, -1)
    out = torch.empty(n, r, flat_x.shape[1], dtype=x.dtype)
    per_chunk = max(1, max_batch // r)
    with eval_mode(model), torch.enable_grad():
        for start in range(0, n, per_chunk):
            xs = flat_x[start:start + per_chunk]
            m = len(xs)
            rep = xs.repeat_interleave(r, dim=0).reshape(m * r, *x.shape[1:]).requires_grad_(True)
            eps = model(rep, torch.full((m * r,), int(t), dtype=torch.long)).reshape(m, r, -1)
            picked = eps[:, torch.arange(r), rows]  # (m, r): element rows[k] of copy k
            (grad,) = torch.autograd.grad(picked.sum(), rep)
            out[start:start + m] = grad.reshape(m, r, -1)
    return out


def ratio(rows: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """||J_R P_R||^2 / ||J_R||^2 per sample, for Jacobian rows of shape (n, |R|, D)."""
    inside = region.reshape(-1)
    sq = rows.pow(2)
    return sq[:, :, inside].sum((1, 2)) / sq.sum((1, 2))


def output_rows(eps_rows: torch.Tensor, region: torch.Tensor, sqrt_alpha_bar: float, output: str) -> torch.Tensor:
    """Jacobian rows of the requested output, derived from the eps rows (see module docstring)."""
    if output == "eps":
        return eps_rows
    rows = region.reshape(-1).nonzero().squeeze(1)
    selector = torch.zeros(eps_rows.shape[1:], dtype=eps_rows.dtype)
    selector[torch.arange(len(rows)), rows] = 1.0
    sigma = math.sqrt(1 - sqrt_alpha_bar**2)
    if output == "x0":
        return (selector - sigma * eps_rows) / sqrt_alpha_bar
    if output == "eps_minus_identity":
        return eps_rows - selector / sigma
    raise ValueError(f"unknown output {output!r}; choose from {OUTPUTS}")


def noised_inputs(data: torch.Tensor, schedule: Schedule, t: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """n draws from p_t: random rows of `data`, forward-noised to timestep t."""
    idx = torch.randint(0, len(data), (n,), generator=generator)
    x0 = data[idx]
    eps = torch.randn(x0.shape, generator=generator)
    return schedule.add_noise(x0, eps, torch.full((n,), t, dtype=torch.long))


def ldr(model: Denoiser, schedule: Schedule, region: torch.Tensor, *, data: torch.Tensor | None = None,
        inputs: torch.Tensor | None = None, t: int | None = None, sqrt_alpha_bar: float | None = None,
        outputs: tuple[str, ...] = ("eps", "x0"), n: int = 128, seed: int = 0) -> dict[str, LDRResult]:
    """LDR of `model` on `region` at one timestep, for each requested output.

    The timestep is given by `t` or by the nearest `sqrt_alpha_bar`. Inputs are either
    drawn from p_t (`data` forward-noised, n samples, seeded) or passed in (`inputs`,
    e.g. states along a sampling trajectory).
    """
    if (t is None) == (sqrt_alpha_bar is None):
        raise ValueError("give exactly one of t and sqrt_alpha_bar")
    if (data is None) == (inputs is None):
        raise ValueError("give exactly one of data (to draw x ~ p_t) and inputs")
    t = schedule.timestep_for(sqrt_alpha_bar) if t is None else int(t)
    if inputs is None:
        inputs = noised_inputs(data, schedule, t, n, torch.Generator().manual_seed(seed))
    eps_rows = jacobian_rows(model, inputs, t, region)
    a = float(schedule.sqrt_alpha_bar(t))
    return {o: LDRResult(ratio(output_rows(eps_rows, region, a, o), region)) for o in outputs}


def ldr_levels(model: Denoiser, schedule: Schedule, region: torch.Tensor, data: torch.Tensor,
               levels: tuple[float, ...] = LEVELS, outputs: tuple[str, ...] = ("eps", "x0"),
               n: int = 128, seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean LDR per output and sqrt(alpha_bar) level: {"eps": {"0.1": v, ...}, "x0": {...}}."""
    table: dict[str, dict[str, float]] = {o: {} for o in outputs}
    for level in levels:
        results = ldr(model, schedule, region, data=data, sqrt_alpha_bar=level, outputs=outputs, n=n, seed=seed)
        for o in outputs:
            table[o][f"{level:g}"] = results[o].mean
    return table


def saliency(rows: torch.Tensor, signal_shape: tuple[int, ...]) -> np.ndarray:
    """Per input element, the squared norm of its Jacobian column: shape (n, *signal_shape); sums to ||J_R||_F^2."""
    return rows.pow(2).sum(1).reshape(len(rows), *signal_shape).numpy()
