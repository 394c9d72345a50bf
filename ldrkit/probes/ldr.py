"""The Local Dependency Ratio (section 4.3, eq. 2), exact or estimated with random probes.

LDR(theta, R) = E_{x ~ p_t} [ ||J_R P_R||_F^2 / ||J_R||_F^2 ], with J_R the rows of the
Jacobian of the model's output on the region R, taken with respect to the whole input.

Three outputs are probed from one set of vector-Jacobian products of the eps-prediction:
- "eps": the paper's definition, on the network's eps output;
- "x0": the denoiser x0_hat = (x - sqrt(1-abar) eps) / sqrt(abar), whose Jacobian rows are
  (P_R^T - sqrt(1-abar) J_eps,R) / sqrt(abar);
- "eps_minus_identity": eps - x / sqrt(1-abar). A trained eps-model behaves like
  (x - sqrt(abar) x0_hat) / sqrt(1-abar); its identity term I / sqrt(1-abar) lies inside R
  and pushes the eps-LDR towards 1 at high noise whatever the network does.

Two methods (`method=`):
- "exact": all |R| rows of J_R, as vector-Jacobian products with one-hot selectors W = I.
- "estimate": K random Rademacher probes u on the output region (zero outside R), W = U / sqrt(K).
  Since E[u u^T] = I on R, E ||u^T J_R||^2 = ||J_R||_F^2 and E ||(u^T J_R) P_R||^2 =
  ||J_R P_R||_F^2: both traces of eq. 2 are estimated without bias at a cost of K VJPs,
  whatever |R|. The ratio of the two estimates is a *ratio estimator*: numerator and
  denominator come from the same probes (their errors are correlated, which helps), and
  E[A/B] != E[A]/E[B] gives a bias of order 1/K, to first order
  (r Var(b) - Cov(a, b)) / (K E[b]^2) for per-probe values a, b; it is small against the
  standard error (order 1/sqrt(K)) and vanishes as K grows. Each sample's estimator
  standard error is reported (delta method), see `LDRResult.estimator_se`.

In both cases the derived outputs' rows are W P_R^T-terms plus the eps rows (see
`output_rows`), so one set of VJPs serves all outputs, and the saliency heatmap (per input
element, the squared norm of its Jacobian column) is sum_k rows_k^2, exact or unbiased.

How the VJPs are batched (`jacobian=`), measured on CPU with 1 thread (`python -m ldrkit bench ldr`;
UNet2DModel 0.28M and DiT 0.65M parameters, 1x16x64 images, |R| = 256, 8 samples):
- "graph": one forward of a batch of c copies of each sample, then one batched backward pass per chunk of c
  cotangents through that stored graph (copy j carries cotangent j): the rows of plain batched backward passes,
  plus one forward per sample. The default ("auto") for every model type; it needs only that the copies do not
  interact (true in eval mode: no batch statistics). 1.56x (UNet) and 2.14x (DiT) faster than the per-element
  loop, at 87% and 93% of the batched-backward bound below; "vmap" reached 62% and 81% in the same rounds
  (results/bench/ldr, medians of 3 round-robin rounds).
- "vmap": one forward per sample, then `torch.func.vmap` over chunks of cotangents of the
  `torch.func.vjp` function: 1.1x (UNet) and 1.9x (DiT) faster than the per-element loop, and slower than
  "graph": under vmap the UNet's GroupNorm and SiLU backward run decomposed into elementwise ops, and CPU flash
  attention's backward has no batching rule (vmap loops over it; a plain matmul-softmax attention gained nothing).
- "replicate": the input repeated once per cotangent and one forward and backward call per chunk:
  0.84x (UNet) and 1.05x (DiT) of the loop's speed, since it repeats the forward.
- "loop": one autograd.grad per cotangent (the naive reference).
Exact rows need |R| backward passes whatever the batching; on these small models a batched
backward (batch 16) runs only about 2.8x (DiT) and 2.1x (UNet) more rows per second than a
batch-1 backward (bench key backward_ms_per_row), which bounds what any batching can gain
(bench keys bound_s, bound_efficiency). The estimator is the way to go faster.
Chunks hold at most `max_batch` cotangents (default 16; 16 was fastest, 32-64 up to 20% slower,
256 twice as slow on the UNet), lowered
further if `memory_budget` (bytes) is given, from a measurement of one forward's saved
activations.

Regions are boolean masks with the shape of one input signal (a vector, or an image with
any number of channels). Modules are put in eval mode while probed (dropout or batch
statistics would couple samples and change the function) and restored afterwards.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ..denoisers.schedule import Denoiser, Schedule
from ..spec.hashing import LDR_LEVELS

OUTPUTS = ("eps", "x0", "eps_minus_identity")
METHODS = ("exact", "estimate")
JACOBIANS = ("auto", "graph", "vmap", "replicate", "loop")


@dataclass(frozen=True)
class LDRResult:
    """Per-sample LDR values with their mean and standard error of the mean.

    For method="estimate", `estimator_se` holds each sample's probe standard error and
    `probe_sem` the part of the mean's uncertainty that comes from probing (`sem`, from the
    spread of the values, already includes it). `saliency` (n, *signal_shape), when asked for.
    """

    values: torch.Tensor
    method: str = "exact"
    probes: int | None = None
    estimator_se: torch.Tensor | None = None
    saliency: np.ndarray | None = field(default=None, repr=False)

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def sem(self) -> float:
        n = len(self.values)
        return float(self.values.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")

    @property
    def probe_sem(self) -> float:
        if self.estimator_se is None:
            return 0.0
        return float(self.estimator_se.pow(2).sum().sqrt() / len(self.values))

    def __repr__(self) -> str:
        extra = f", {self.probes} probes" if self.method == "estimate" else ""
        return f"LDR {self.mean:.4f} +- {self.sem:.4f} (n={len(self.values)}, {self.method}{extra})"


@contextlib.contextmanager
def frozen(model):
    """Parameters of an nn.Module stop requiring grad for the duration (VJPs w.r.t. inputs only)."""
    params = [p for p in model.parameters() if p.requires_grad] if hasattr(model, "parameters") else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in params:
            p.requires_grad_(True)


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


# --- vector-Jacobian products ------------------------------------------------------------------

def _per_copy_bytes(model, x1: torch.Tensor, t1: torch.Tensor) -> int:
    """Bytes of activations autograd saves in one forward of one sample."""
    total = [0]

    def pack(tensor):
        total[0] += tensor.numel() * tensor.element_size()
        return tensor

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x1.detach().clone().requires_grad_(True), t1)
    return max(total[0], 1)


def chunk_size(model, x: torch.Tensor, t: int, max_batch: int | None = None,
               memory_budget: int | None = None) -> int:
    """Cotangents per batched call: max_batch (default 16), lowered to fit memory_budget bytes."""
    size = 16 if max_batch is None else int(max_batch)
    if memory_budget is not None:
        per = _per_copy_bytes(model, x[:1], torch.full((1,), int(t), dtype=torch.long))
        size = min(size, max(1, int(memory_budget) // (2 * per)))  # forward plus backward buffers
    return max(1, size)


def vjps(model: Denoiser, x: torch.Tensor, t: int, cotangents, k: int, *, jacobian: str = "auto",
         max_batch: int | None = None, memory_budget: int | None = None) -> torch.Tensor:
    """Rows w^T d eps(x_i, t)/d x_i for k cotangents w per sample: shape (n, k, D).

    `cotangents(i, start, stop)` returns the cotangents start:stop of sample i, shape
    (stop - start, D). Samples are processed one at a time (batching them was slower).
    """
    if jacobian not in JACOBIANS:
        raise ValueError(f"unknown jacobian {jacobian!r}; choose from {JACOBIANS}")
    n, shape = len(x), tuple(x.shape[1:])
    d = int(np.prod(shape))
    out = torch.empty(n, k, d, dtype=x.dtype)
    x = x.detach()
    with eval_mode(model), frozen(model), torch.enable_grad():
        c = chunk_size(model, x, t, max_batch, memory_budget)
        mode = "graph" if jacobian == "auto" else jacobian
        for i in range(n):
            xi, ti = x[i:i + 1], torch.full((1,), int(t), dtype=torch.long)
            if mode == "graph":
                _vjps_graph(model, xi, ti, cotangents, i, k, c, shape, out[i])
            elif mode == "vmap":
                _vjps_vmap(model, xi, ti, cotangents, i, k, c, shape, out[i])
            elif mode == "replicate":
                for s in range(0, k, c):
                    w = cotangents(i, s, min(k, s + c))
                    m = len(w)
                    rep = xi.expand(m, *shape).clone().requires_grad_(True)
                    eps = model(rep, ti.expand(m))
                    (g,) = torch.autograd.grad((eps.reshape(m, -1) * w).sum(), rep)
                    out[i, s:s + m] = g.detach().reshape(m, -1)
            elif mode == "loop":
                xg = xi.clone().requires_grad_(True)
                eps = model(xg, ti).reshape(-1)
                for s in range(k):
                    (g,) = torch.autograd.grad(eps, xg, cotangents(i, s, s + 1)[0], retain_graph=True)
                    out[i, s] = g.detach().reshape(-1)
    return out


def _vjps_graph(model, xi, ti, cotangents, i, k, c, shape, out_i):
    """One forward of m = min(c, k) copies of the input, then one batched backward pass per chunk of m cotangents
    through that stored graph (copy j carries cotangent j; a short last chunk is padded with zeros)."""
    m = min(c, k)
    rep = xi.expand(m, *shape).clone().requires_grad_(True)
    eps = model(rep, ti.expand(m)).reshape(m, -1)
    for s in range(0, k, m):
        w = cotangents(i, s, min(k, s + m)).to(eps.dtype)
        e = len(w)
        if e < m:
            w = torch.cat([w, w.new_zeros(m - e, w.shape[1])])
        (g,) = torch.autograd.grad(eps, rep, w, retain_graph=s + m < k)
        out_i[s:s + e] = g.detach().reshape(m, -1)[:e]


def _vjps_vmap(model, xi, ti, cotangents, i, k, c, shape, out_i):
    eps, pullback = torch.func.vjp(lambda z: model(z, ti), xi)
    for s in range(0, k, c):
        w = cotangents(i, s, min(k, s + c))
        with warnings.catch_warnings():
            # CPU flash attention has no batching rule: vmap loops over it ("graph" has no such loop)
            warnings.filterwarnings("ignore", message=".*performance drop.*batching rule.*")
            (g,) = torch.func.vmap(pullback)(w.reshape(len(w), 1, *shape).to(eps.dtype))
        out_i[s:s + len(w)] = g.detach().reshape(len(w), -1)


def _one_hot(rows: torch.Tensor, d: int, dtype=torch.float32) -> torch.Tensor:
    sel = torch.zeros(len(rows), d, dtype=dtype)
    sel[torch.arange(len(rows)), rows] = 1.0
    return sel


def jacobian_rows(model: Denoiser, x: torch.Tensor, t: int, region: torch.Tensor,
                  max_batch: int | None = None, *, jacobian: str = "auto",
                  memory_budget: int | None = None) -> torch.Tensor:
    """Rows of d eps(x, t) / d x for the output elements in `region`: shape (n, |R|, D).

    D is the flattened input size. See the module docstring for `jacobian`, `max_batch`
    and `memory_budget`.
    """
    region = check_region(region, tuple(x.shape[1:]))
    rows = region.reshape(-1).nonzero().squeeze(1)
    d = region.numel()
    return vjps(model, x, t, lambda i, s, e: _one_hot(rows[s:e], d, x.dtype), len(rows),
                jacobian=jacobian, max_batch=max_batch, memory_budget=memory_budget)


def rademacher_probes(region: torch.Tensor, n: int, probes: int, generator: torch.Generator) -> torch.Tensor:
    """n x probes random sign vectors on the region (zero outside), scaled by 1/sqrt(probes): (n, K, D)."""
    inside = region.reshape(-1)
    u = torch.zeros(n, probes, region.numel())
    signs = torch.randint(0, 2, (n, probes, int(inside.sum())), generator=generator).float() * 2 - 1
    u[:, :, inside] = signs
    return u / math.sqrt(probes)


def probe_rows(model: Denoiser, x: torch.Tensor, t: int, region: torch.Tensor, *, method: str = "exact",
               probes: int = 32, seed: int = 0, jacobian: str = "auto", max_batch: int | None = None,
               memory_budget: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, weights): rows = W J_eps for the method's W, shape (n, K, D), and W (n or 1, K, D).

    exact: W = the |R| one-hot selectors; estimate: W = Rademacher probes / sqrt(K), so that
    sum_k of squared rows is an unbiased estimate of the exact sum in either case.
    """
    region = check_region(region, tuple(x.shape[1:]))
    if method == "exact":
        rows = region.reshape(-1).nonzero().squeeze(1)
        weights = _one_hot(rows, region.numel(), x.dtype)[None]
        return jacobian_rows(model, x, t, region, max_batch, jacobian=jacobian, memory_budget=memory_budget), weights
    if method == "estimate":
        if int(probes) < 2:
            raise ValueError(f"the estimator needs at least 2 probes, got {probes}")
        weights = rademacher_probes(region, len(x), int(probes), torch.Generator().manual_seed(seed + 7919))
        weights = weights.to(x.dtype)
        rows = vjps(model, x, t, lambda i, s, e: weights[i, s:e], int(probes), jacobian=jacobian,
                    max_batch=max_batch, memory_budget=memory_budget)
        return rows, weights
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


# --- from rows to ratios ----------------------------------------------------------------------

def ratio(rows: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """||J_R P_R||^2 / ||J_R||^2 per sample, for rows of shape (n, K, D) (exact or probe rows)."""
    inside = region.reshape(-1)
    sq = rows.pow(2)
    return sq[:, :, inside].sum((1, 2)) / sq.sum((1, 2))


def ratio_se(rows: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Delta-method standard error of the probe ratio estimator, per sample."""
    inside = region.reshape(-1)
    sq = rows.pow(2)
    a, b = sq[:, :, inside].sum(2), sq.sum(2)  # (n, K) per-probe numerators and denominators
    k = a.shape[1]
    r = a.sum(1, keepdim=True) / b.sum(1, keepdim=True)
    resid = a - r * b
    return (resid.pow(2).sum(1) / (k * (k - 1))).sqrt() / b.mean(1)


def output_rows(eps_rows: torch.Tensor, region: torch.Tensor, sqrt_alpha_bar: float, output: str,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """Rows W J of the requested output, derived from the eps rows W J_eps (see module docstring).

    `weights` W (n or 1, K, D) defaults to the exact method's one-hot selectors.
    """
    if output == "eps":
        return eps_rows
    if weights is None:
        rows = region.reshape(-1).nonzero().squeeze(1)
        weights = _one_hot(rows, region.numel(), eps_rows.dtype)
    sigma = math.sqrt(1 - sqrt_alpha_bar**2)
    if output == "x0":
        return (weights - sigma * eps_rows) / sqrt_alpha_bar
    if output == "eps_minus_identity":
        return eps_rows - weights / sigma
    raise ValueError(f"unknown output {output!r}; choose from {OUTPUTS}")


def noised_rows(data: torch.Tensor, schedule: Schedule, t: int, n: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """n draws from p_t and the rows of `data` they were drawn from: (rows, inputs)."""
    idx = torch.randint(0, len(data), (n,), generator=generator)
    x0 = data[idx]
    eps = torch.randn(x0.shape, generator=generator)
    return idx, schedule.add_noise(x0, eps, torch.full((n,), t, dtype=torch.long))


def noised_inputs(data: torch.Tensor, schedule: Schedule, t: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """n draws from p_t: random rows of `data`, forward-noised to timestep t."""
    return noised_rows(data, schedule, t, n, generator)[1]


def _timestep(schedule: Schedule, t, sqrt_alpha_bar) -> int:
    if (t is None) == (sqrt_alpha_bar is None):
        raise ValueError("give exactly one of t and sqrt_alpha_bar")
    if t is None:
        return schedule.timestep_for(sqrt_alpha_bar)
    if not 0 <= int(t) < schedule.num_timesteps:
        raise ValueError(f"t must be a timestep from 0 to {schedule.num_timesteps - 1}, got {t}")
    return int(t)


def ldr(model: Denoiser, schedule: Schedule, region: torch.Tensor, *, data: torch.Tensor | None = None,
        inputs: torch.Tensor | None = None, t: int | None = None, sqrt_alpha_bar: float | None = None,
        outputs: tuple[str, ...] = ("eps", "x0"), n: int = 128, seed: int = 0, method: str = "exact",
        probes: int = 32, jacobian: str = "auto", max_batch: int | None = None,
        memory_budget: int | None = None, return_saliency: bool = False) -> dict[str, LDRResult]:
    """LDR of `model` on `region` at one timestep, for each requested output.

    The timestep is given by `t` or by the nearest `sqrt_alpha_bar`. Inputs are either
    drawn from p_t (`data` forward-noised, n samples, seeded) or passed in (`inputs`,
    e.g. states along a sampling trajectory). `method` "exact" (all |R| Jacobian rows) or
    "estimate" (`probes` Rademacher probes); with `return_saliency`, each result carries
    the per-input-element heatmap of its output.
    """
    t = _timestep(schedule, t, sqrt_alpha_bar)
    if (data is None) == (inputs is None):
        raise ValueError("give exactly one of data (to draw x ~ p_t) and inputs")
    for o in outputs:
        if o not in OUTPUTS:
            raise ValueError(f"unknown output {o!r}; choose from {OUTPUTS}")
    if inputs is None:
        inputs = noised_inputs(data, schedule, t, n, torch.Generator().manual_seed(seed))
    region = check_region(region, tuple(inputs.shape[1:]))
    eps_rows, weights = probe_rows(model, inputs, t, region, method=method, probes=probes, seed=seed,
                                   jacobian=jacobian, max_batch=max_batch, memory_budget=memory_budget)
    a = float(schedule.sqrt_alpha_bar(t))
    results = {}
    for o in outputs:
        rows = output_rows(eps_rows, region, a, o, weights)
        results[o] = LDRResult(ratio(rows, region), method=method,
                               probes=int(probes) if method == "estimate" else None,
                               estimator_se=ratio_se(rows, region) if method == "estimate" else None,
                               saliency=saliency(rows, tuple(inputs.shape[1:])) if return_saliency else None)
    return results


def heatmap(model: Denoiser, schedule: Schedule, region: torch.Tensor, inputs: torch.Tensor, *,
            t: int | None = None, sqrt_alpha_bar: float | None = None, output: str = "eps",
            method: str = "exact", probes: int = 32, seed: int = 0, **kwargs) -> np.ndarray:
    """Saliency heatmap (n, *signal_shape) of `output` on `region`: squared Jacobian-column norms."""
    res = ldr(model, schedule, region, inputs=inputs, t=t, sqrt_alpha_bar=sqrt_alpha_bar, outputs=(output,),
              method=method, probes=probes, seed=seed, return_saliency=True, **kwargs)
    return res[output].saliency


def ldr_levels(model: Denoiser, schedule: Schedule, region: torch.Tensor, data: torch.Tensor,
               levels: tuple[float, ...] = LDR_LEVELS, outputs: tuple[str, ...] = ("eps", "x0"),
               n: int = 128, seed: int = 0, method: str = "exact", probes: int = 32,
               with_sem: bool = False, **kwargs):
    """Mean LDR per output and sqrt(alpha_bar) level: {"eps": {"0.1": v, ...}, "x0": {...}}.

    With `with_sem`, returns (table, sems) with the same layout for the standard errors.
    """
    table: dict[str, dict[str, float]] = {o: {} for o in outputs}
    sems: dict[str, dict[str, float]] = {o: {} for o in outputs}
    for level in levels:
        results = ldr(model, schedule, region, data=data, sqrt_alpha_bar=level, outputs=outputs, n=n, seed=seed,
                      method=method, probes=probes, **kwargs)
        for o in outputs:
            table[o][f"{level:g}"] = results[o].mean
            sems[o][f"{level:g}"] = results[o].sem
    return (table, sems) if with_sem else table


def saliency(rows: torch.Tensor, signal_shape: tuple[int, ...]) -> np.ndarray:
    """Per input element, the squared norm of its Jacobian column: shape (n, *signal_shape); sums to ||J_R||_F^2.

    For probe rows (scaled by 1/sqrt(K)) the same sum is an unbiased estimate.
    """
    return rows.pow(2).sum(1).reshape(len(rows), *signal_shape).detach().numpy()
