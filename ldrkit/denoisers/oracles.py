"""Exact denoisers of finite distributions: the posterior mean over an enumerated support.

For data uniform (or weighted) on a finite set {s_k}, the noised density is a Gaussian
mixture and the ideal denoiser is E[x0 | x_t] = sum_k softmax_k(log w_k - ||x_t - sqrt(abar) s_k||^2 / (2 (1 - abar))) s_k.
These oracles share the networks' signature model(x, t) -> eps, so the sampler, the
decoder and the LDR probe run on them unchanged, and they are differentiable.

For an experiment's Setup there are three (`build_oracle`):
- "rule": the exact denoiser of the rule distribution (its enumerated support, rendered; for the
  probabilistic Quarter-digits rendering, a mixture over the valid tuples of per-quarter instance mixtures);
- "product": each symbol cell independent with its marginal over the training set;
- "memoriser": the exact denoiser of the training set.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..spec.registry import ORACLES
from ..systems.digits import QuarterDigitRenderer
from .schedule import Schedule


def posterior_mean(x: torch.Tensor, support: torch.Tensor, sqrt_alpha_bar: torch.Tensor | float,
                   log_weights: torch.Tensor | None = None, chunk: int = 4096) -> torch.Tensor:
    """E[x0 | x_t = x] for x0 drawn from `support` (rows, flattened like x) with optional log-weights.

    `sqrt_alpha_bar` is a scalar or one value per row of x. The log-sum-exp is taken over
    the support in chunks of `chunk` rows (streaming softmax), so memory stays
    O(len(x) * chunk) whatever the support size.
    """
    return log_evidence_and_mean(x, support, sqrt_alpha_bar, log_weights, chunk)[1]


def log_evidence_and_mean(x: torch.Tensor, support: torch.Tensor, sqrt_alpha_bar: torch.Tensor | float,
                          log_weights: torch.Tensor | None = None,
                          chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(x_t = x) + c(x), E[x0 | x_t = x]) for x0 drawn from `support` with weights exp(log_weights).

    The first output is the log-likelihood of x under the Gaussian mixture sum_k w_k N(a s_k, (1 - a^2) I)
    up to a term c(x) = -||x||^2 / (2 (1 - a^2)) - d/2 log(2 pi (1 - a^2)) that depends on x and a
    only, not on the support or its weights: so log-likelihoods of the same x under different
    supports (e.g. the instances of different digits) can be compared and added. Shape (len(x),).
    The weights need not sum to one (their total scales the likelihood).
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
    return (running_max + norm.log()).squeeze(1), (acc / norm).reshape(x.shape)


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


class TupleOfInstancesDenoiser(nn.Module):
    """The exact denoiser of a probabilistic rendering: a symbol tuple, then a random instance per cell.

    The distribution: draw a tuple tau from `tuples` (rows of symbol ids, one per cell; uniform
    or with `weights`), then fill cell j with an instance of symbol tau_j drawn uniformly from
    `instances[tau_j]` (rows flattened like one cell), independently across cells. For the
    Quarter-digits rule this is the mixture over the 670 valid tuples of products over the four
    quarters of uniform mixtures over each digit's handwritten instances.

    The posterior factorises: per cell j and symbol k, the log-evidence L[j, k] of x_t's cell under
    k's instance mixture and the conditional mean M[j, k] (one streaming log-sum-exp over the
    instances of k, all cells at once); a tuple's log-weight is log w_tau + sum_j L[j, tau_j]; and
    E[x0 | x_t] on cell j = sum_k P(tau_j = k | x_t) M[j, k]. The cost is
    O(n * cells * total instances * cell size + n * tuples * cells), never the size of the
    explicit support (the product of the instance counts, summed over tuples).

    `regions` are disjoint boolean masks over one signal that cover it, all of one size (the cell
    size); cell j's elements are taken in the mask's flattened order, like the instances.
    """

    def __init__(self, tuples, instances: list[torch.Tensor], regions: list[torch.Tensor], schedule: Schedule,
                 weights: torch.Tensor | None = None, chunk: int = 4096):
        super().__init__()
        masks = torch.stack([torch.as_tensor(r, dtype=torch.bool).reshape(-1) for r in regions])
        if not torch.equal(masks.sum(0), torch.ones(masks.shape[1], dtype=masks.sum(0).dtype)):
            raise ValueError("regions must be disjoint and cover the whole signal")
        sizes = masks.sum(1)
        if not (sizes == sizes[0]).all():
            raise ValueError(f"cells must all have the same size, got {sizes.tolist()}")
        tuples = torch.as_tensor(tuples, dtype=torch.long)
        if tuples.dim() != 2 or tuples.shape[1] != len(masks):
            raise ValueError(f"tuples must be (count, {len(masks)}), got {tuple(tuples.shape)}")
        if tuples.min() < 0 or tuples.max() >= len(instances):
            raise ValueError(f"tuple symbols must index the {len(instances)} instance sets")
        cell = int(sizes[0])
        flat = [torch.as_tensor(v, dtype=torch.float32).reshape(len(v), cell) if len(v) == 0 else
                torch.as_tensor(v, dtype=torch.float32).reshape(len(v), -1) for v in instances]
        for k, v in enumerate(flat):
            if v.shape[1] != cell:
                raise ValueError(f"instances of symbol {k} have {v.shape[1]} elements, cells {cell}")
            if len(v) == 0 and (tuples == k).any():
                raise ValueError(f"symbol {k} appears in a tuple but has no instances")
        self.register_buffer("tuples", tuples)
        self.register_buffer("index", torch.stack([m.nonzero().squeeze(1) for m in masks]))  # (cells, cell)
        for k, v in enumerate(flat):
            self.register_buffer(f"instances_{k}", v)
        self.num_symbols = len(flat)
        log_w = torch.zeros(len(tuples)) if weights is None else torch.log(torch.as_tensor(weights, dtype=torch.float32))
        self.register_buffer("log_weights", log_w)
        self.schedule, self.chunk = schedule, chunk

    @property
    def instances(self) -> list[torch.Tensor]:
        return [getattr(self, f"instances_{k}") for k in range(self.num_symbols)]

    def posterior_mean(self, x: torch.Tensor, sqrt_alpha_bar: torch.Tensor) -> torch.Tensor:
        """E[x0 | x_t = x], flattened (n, signal size); `sqrt_alpha_bar` has one value per row of x."""
        flat = x.reshape(len(x), -1)
        n, (c, size) = len(flat), self.index.shape
        cells = flat[:, self.index].reshape(n * c, size)               # (n * cells, cell)
        a = sqrt_alpha_bar.reshape(n, 1).expand(n, c).reshape(-1)
        evid, means = [], []
        instances = self.instances
        for v in instances:
            if len(v) == 0:
                evid.append(torch.full((n * c,), -torch.inf, dtype=flat.dtype))
                means.append(torch.zeros_like(cells))
                continue
            # A uniform mixture over the symbol's instances: weights 1/m, so symbols with more instances are not favoured.
            lw = torch.full((len(v),), -float(torch.log(torch.tensor(float(len(v))))), dtype=flat.dtype)
            e, m = log_evidence_and_mean(cells, v.to(flat.dtype), a, lw, self.chunk)
            evid.append(e)
            means.append(m)
        evid = torch.stack(evid, 1).reshape(n, c, -1)                  # (n, cells, symbols)
        means = torch.stack(means, 1).reshape(n, c, len(instances), size)
        # log w_tau + sum_j L[j, tau_j], for every tuple: (n, tuples)
        logits = self.log_weights.to(flat.dtype) + evid[:, torch.arange(c), self.tuples].sum(-1)
        post = torch.softmax(logits, dim=1)
        onehot = torch.nn.functional.one_hot(self.tuples, len(instances)).to(flat.dtype)  # (tuples, cells, symbols)
        p_cell = torch.einsum("nt,tcs->ncs", post, onehot)             # P(tau_j = k | x_t)
        x0_cells = torch.einsum("ncs,ncsd->ncd", p_cell, means)
        return torch.zeros_like(flat).index_copy(1, self.index.reshape(-1), x0_cells.reshape(n, -1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t).expand(len(x))
        abar = self.schedule.alphas_cumprod[t].to(x.dtype)
        x0 = self.posterior_mean(x, abar.sqrt())
        a = abar.sqrt().reshape(-1, 1)
        return ((x.reshape(len(x), -1) - a * x0) / (1 - abar).sqrt().reshape(-1, 1)).reshape(x.shape)


@torch.no_grad()


# --- the three oracles of an experiment's data ------------------------------------------------------

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
