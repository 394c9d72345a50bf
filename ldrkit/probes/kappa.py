"""Cross-region coupling calibrated by the exact oracles: is a denoiser local like the product of marginals,
or does it couple a region to the rest of the signal the way the rule's own denoiser does?

Why not the LDR. The paper's LDR (eq. 2, `ldrkit.probes.ldr`) of the eps output is close to 1 for every image
denoiser, the exact oracles included: eps = (x - sqrt(abar) x0_hat) / sqrt(1 - abar) carries the identity
I / sqrt(1 - abar), which lies inside the region and dominates the Jacobian rows. The x0-LDR removes it but
divides by the x0 rows' energy, which vanishes where the posterior concentrates (ill-conditioned). Neither
number tells a local model from the truth on the same inputs.

The construction. For a region R (a boolean mask of one signal) and a noised input x at timestep t, let

    C_f(x) = J_f(x)[R, not R],

the cross block of the Jacobian of denoiser f's eps output: rows in R, columns outside R. Since
eps = (x - sqrt(abar) x0_hat) / sqrt(1 - abar) and the identity never touches the cross block,
C_f^{x0} = -sqrt(1 - abar) / sqrt(abar) * C_f^{eps}: every quantity below is a ratio of two quadratic forms
in cross blocks and is the same for the eps and the x0 output, with no identity term to swamp or cancel.

For the product-of-cells oracle P (`ldrkit.denoisers.oracles.ProductOfCellsDenoiser`: every cell independent with its
training marginal) the posterior factorises over cells, so C_P = 0 exactly when R is one cell (it is still
subtracted below, so a region spanning several cells works too). The rule oracle G (the exact denoiser of the
valid sequences) couples R to the other cells through the rule. The coupling score of a denoiser f is the
regression coefficient of f's cross-region coupling on the rule's, pooled over the inputs x_1..x_n:

    kappa(f) = sum_i <C_f(x_i) - C_P(x_i), C_G(x_i) - C_P(x_i)>_F / sum_i ||C_G(x_i) - C_P(x_i)||_F^2.

kappa(G) = 1 and kappa(P) = 0 exactly (on any inputs); for a mixture a G + (1 - a) P of the two eps outputs,
kappa = a, since the Jacobian is linear in the output. A network's error that is uncorrelated with the rule's
coupling adds to the numerator terms of mean zero, which average out over inputs: kappa measures how much of
the rule's cross-region dependence the network reproduces, in the rule's own units, on the same inputs
(0: as local as independent symbols; 1: the rule's coupling; the memoriser and the optimal linear denoiser are
placed by the same ruler). It is a projection, not a distance, and two more numbers say what it projects:
`energy` = sum_i ||C_f - C_P||^2 / sum_i ||C_G - C_P||^2, the size of f's own cross-region coupling beyond the
product's in the rule's units (0 for any denoiser without cross-region coupling: the product, but also a
denoiser whose posterior has collapsed onto one point, whose whole Jacobian vanishes), and `explained` =
kappa^2 / energy, the fraction of that coupling which lies along the rule's (1 for the rule, near 0 when f
couples the regions in ways unrelated to the rule). Both are reported where the level is separable;
`own_signal` = sum_i ||C_f - C_P||^2 / sum_i ||J_G[R, :]||^2 (f's counterpart of the rule signal below) always.

Standard error: the delta method for the ratio estimator over inputs (per input a_i = <dC_f, dC_G>,
b_i = ||dC_G||^2; se = sqrt(sum_i (a_i - kappa b_i)^2 / (n (n - 1))) / mean_i b_i, the same form as
`ldrkit.probes.ldr.ratio_se` over probes). With method="estimate" each input has its own probes, so the spread over
inputs includes the probe noise and the same formula covers it.

Separability. The oracles must differ for kappa to mean anything. The rule signal is

    signal = sum_i ||C_G(x_i) - C_P(x_i)||_F^2 / sum_i ||J_G(x_i)[R, :]||_F^2,

the fraction of the energy of the rule's eps Jacobian rows on R that is cross-region coupling the product
lacks. At high noise for parity of length L it is of order sqrt(abar)^(2L), up to factors of order one (every
other cell's evidence enters the posterior of cell j only through the product of all of them); at low noise every posterior sits on one vertex and both cross blocks vanish: there the two oracles
are the same denoiser and kappa is a ratio of two numbers that carry no information. Below
`SEPARABLE_MIN_SIGNAL` the level is "not separable": value None, with the reason.

Methods (how the inner products are computed):
- "exact": all |R| rows of each Jacobian (`ldrkit.probes.ldr.jacobian_rows`, one-hot selectors), then the Frobenius
  inner products of the cross blocks.
- "estimate": K Rademacher probes v on R per input, shared by all denoisers (`ldrkit.probes.ldr.rademacher_probes`,
  scaled by 1/sqrt(K)); u_f = v^T J_f restricted to the columns outside R. Since E[v v^T] = I on R,
  E[sum_k <u_f^k, u_g^k>] = <C_f, C_g>_F: every term is unbiased, at K VJPs per input whatever |R|. Because
  the probes are shared, the calibration stays exact: the rule's numerator and denominator are the same
  number, the product's deviation is the same zero, and a mixture's probe rows are the same mixture.

Pure mathematics: models and tensors in, numbers out (no files, no configs).
"""
from __future__ import annotations

import torch
from torch import nn

from ..denoisers.schedule import Schedule
from ..spec.hashing import LDR_LEVELS
from . import ldr as ldr_probe

SEPARABLE_MIN_SIGNAL = 1e-3
"""Smallest rule signal (see module docstring) at which kappa is reported.

A trained eps-network fits the Jacobian rows of its target only approximately: a relative RMS error of a few
percent (3% is already a good fit) has an energy of 1e-3 of the rows. When the rule's extra cross-region
coupling carries less than that fraction, a fit error of that size could be as large as the whole difference
between the oracles, and the 'fraction of the rule's coupling' the network reproduces is not a measurement
of locality. It is also far above float32 round-off (relative 1e-7 per entry, 1e-14 in energy), so the exact
0 and 1 of the oracles are never an artefact of precision."""

METHODS = ldr_probe.METHODS


# --- the optimal linear denoiser ------------------------------------------------------------------------

class LinearGaussianDenoiser(nn.Module):
    """The optimal linear (Wiener) denoiser of a data set, as an eps-predictor `model(x, t) -> eps`.

    With mu, Sigma the data's mean and (population) covariance and a = sqrt(abar):
        x0_hat = mu + a Sigma (a^2 Sigma + (1 - a^2) I)^{-1} (x - a mu),
    the exact denoiser of the Gaussian N(mu, Sigma), and the best affine one for any data with those moments.
    Its eps Jacobian is the constant sqrt(1 - a^2) (a^2 Sigma + (1 - a^2) I)^{-1}: the cross-region coupling
    it can express is only that of the covariance. For pairwise-independent symbols (parity's valid
    sequences, L >= 3) the cross covariance of different cells is 0, so this denoiser is as local as the
    product oracle. Computed through Sigma's eigendecomposition (done once, in float64).
    """

    def __init__(self, data: torch.Tensor, schedule: Schedule):
        super().__init__()
        flat = data.reshape(len(data), -1).double()
        mu = flat.mean(0)
        centred = flat - mu
        cov = centred.T @ centred / len(flat)
        evals, evecs = torch.linalg.eigh(cov)
        self.register_buffer("mu", mu.float())
        self.register_buffer("evals", evals.clamp_min(0).float())
        self.register_buffer("evecs", evecs.float())
        self.schedule = schedule

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t).expand(len(x))
        abar = self.schedule.alphas_cumprod[t].to(x.dtype).reshape(-1, 1)
        a, var = abar.sqrt(), 1 - abar
        flat = x.reshape(len(x), -1)
        coef = (flat - a * self.mu) @ self.evecs                     # (n, D) in the eigenbasis
        gain = a * self.evals / (abar * self.evals + var)            # (n, D)
        x0 = self.mu + (gain * coef) @ self.evecs.T
        return ((flat - a * x0) / var.sqrt()).reshape(x.shape)


# --- cross blocks ---------------------------------------------------------------------------------------

def _weights(region: torch.Tensor, n: int, method: str, probes: int, generator: torch.Generator | None,
             dtype) -> torch.Tensor:
    """Cotangents W (n or 1, K, D): one-hot selectors of R (exact) or shared Rademacher probes / sqrt(K)."""
    if method == "exact":
        rows = region.reshape(-1).nonzero().squeeze(1)
        return ldr_probe._one_hot(rows, region.numel(), dtype)[None]
    if method == "estimate":
        if int(probes) < 2:
            raise ValueError(f"the estimator needs at least 2 probes, got {probes}")
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        return ldr_probe.rademacher_probes(region, n, int(probes), gen).to(dtype)
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def probe_cross_rows(model, inputs: torch.Tensor, t: int, region: torch.Tensor, weights: torch.Tensor,
                     **vjp_kwargs) -> torch.Tensor:
    """Rows W J_eps of `model` at the inputs for the cotangents W (n or 1, K, D): shape (n, K, D)."""
    k = weights.shape[1]
    pick = (lambda i, s, e: weights[0, s:e]) if len(weights) == 1 else (lambda i, s, e: weights[i, s:e])
    return ldr_probe.vjps(model, inputs, int(t), pick, k, **vjp_kwargs)


def exact_cross_rows(model, inputs: torch.Tensor, t: int, region: torch.Tensor, **vjp_kwargs) -> torch.Tensor:
    """All |R| Jacobian rows of `model` on R at each input (n, |R|, D), for `kappa_from_rows`: a caller that must
    call a different denoiser per input (a symbol-conditioned one bound to each input's sequence) pools them."""
    region = ldr_probe.check_region(region, tuple(inputs.shape[1:]))
    return probe_cross_rows(model, inputs, t, region, _weights(region, len(inputs), "exact", 0, None, inputs.dtype),
                            **vjp_kwargs)


def kappa_from_rows(rows: torch.Tensor, rule_rows: torch.Tensor, product_rows: torch.Tensor,
                    region: torch.Tensor) -> dict:
    """kappa, its delta-method s.e., the rule signal and f's coupling energy from rows W J of f, the rule and the
    product (n, K, D): {"value", "se", "signal", "own_signal", "separable", "reason", "explained", "energy", "n"}.

    The rows may be exact (one-hot W) or shared-probe rows (Rademacher W / sqrt(K)); see the module docstring.
    """
    inside = region.reshape(-1)
    d_f = (rows - product_rows)[:, :, ~inside].double()
    d_g = (rule_rows - product_rows)[:, :, ~inside].double()
    a = (d_f * d_g).sum((1, 2))                                   # per input <dC_f, dC_G>
    b = d_g.pow(2).sum((1, 2))                                    # per input ||dC_G||^2
    own = d_f.pow(2).sum((1, 2))                                  # per input ||dC_f||^2
    scale = rule_rows.double().pow(2).sum((1, 2))                 # per input ||J_G[R, :]||^2
    n = len(a)
    signal = float(b.sum() / scale.sum()) if float(scale.sum()) > 0 else 0.0
    own_signal = float(own.sum() / scale.sum()) if float(scale.sum()) > 0 else 0.0
    out = {"value": None, "se": None, "signal": signal, "own_signal": own_signal, "separable": False,
           "reason": None, "explained": None, "energy": None, "n": n}  # None, not NaN: results go to JSON
    if not signal >= SEPARABLE_MIN_SIGNAL:
        out["reason"] = (f"rule signal {signal:.2e} < {SEPARABLE_MIN_SIGNAL:g}: the rule's cross-region coupling "
                         "beyond the product oracle's is too small a part of its Jacobian rows on R for the "
                         "oracles to be told apart here")
        return out
    kappa = float(a.sum() / b.sum())
    se = float((a - kappa * b).pow(2).sum().div(n * (n - 1)).sqrt() / b.mean()) if n > 1 else None
    explained = float(kappa**2 * b.sum() / own.sum()) if float(own.sum()) > 0 else None
    out.update(value=kappa, se=se, separable=True, explained=explained, energy=float(own.sum() / b.sum()))
    return out


def coupling_many(models: dict, rule, product, schedule: Schedule, region: torch.Tensor, inputs: torch.Tensor,
                  t: int, method: str = "exact", probes: int = 32, generator: torch.Generator | None = None,
                  **vjp_kwargs) -> dict:
    """kappa of several denoisers on the same inputs, the rule's and the product's rows computed once.

    Returns {name: result} with the result of `coupling` for each; with method="estimate" all share the probes.
    """
    region = ldr_probe.check_region(region, tuple(inputs.shape[1:]))
    if (~region).sum() == 0:
        raise ValueError("the region covers the whole signal: there is no cross block")
    weights = _weights(region, len(inputs), method, probes, generator, inputs.dtype)
    rule_rows = probe_cross_rows(rule, inputs, t, region, weights, **vjp_kwargs)
    product_rows = probe_cross_rows(product, inputs, t, region, weights, **vjp_kwargs)
    out = {}
    for name, model in models.items():
        if model is rule:
            rows = rule_rows
        elif model is product:
            rows = product_rows
        else:
            rows = probe_cross_rows(model, inputs, t, region, weights, **vjp_kwargs)
        out[name] = {**kappa_from_rows(rows, rule_rows, product_rows, region), "method": method,
                     "probes": int(probes) if method == "estimate" else None}
    return out


def coupling(model, rule, product, schedule: Schedule, region: torch.Tensor, inputs: torch.Tensor, t: int,
             method: str = "exact", probes: int = 32, generator: torch.Generator | None = None,
             **vjp_kwargs) -> dict:
    """kappa(model) on the given noised inputs at timestep t, calibrated by the rule and product oracles.

    Returns {"value", "se", "signal", "separable", "reason", "explained", "n", "method", "probes"}; value and se
    are None (with the reason) where the level is not separable. See the module docstring.
    """
    return coupling_many({"model": model}, rule, product, schedule, region, inputs, t, method, probes, generator,
                         **vjp_kwargs)["model"]


def coupling_table(models: dict, rule, product, schedule: Schedule, region: torch.Tensor, data: torch.Tensor,
                   levels=LDR_LEVELS, n: int = 16, seed: int = 0, method: str = "exact", probes: int = 32,
                   **vjp_kwargs) -> dict:
    """{name: {level: result}} for several denoisers on n noised data rows per sqrt(alpha_bar) level.

    The inputs of a level are `ldrkit.probes.ldr.noised_inputs(data, ...)` seeded by `seed` (the inputs the LDR
    probe draws with the same seed); the probes are seeded by seed + 7919 (as in `ldrkit.probes.ldr.probe_rows`).
    """
    out: dict = {name: {} for name in models}
    for level in levels:
        t = schedule.timestep_for(level)
        inputs = ldr_probe.noised_inputs(data, schedule, t, n, torch.Generator().manual_seed(seed))
        res = coupling_many(models, rule, product, schedule, region, inputs, t, method, probes,
                            torch.Generator().manual_seed(seed + 7919), **vjp_kwargs)
        for name in models:
            out[name][f"{level:g}"] = res[name]
    return out


def coupling_levels(model, rule, product, schedule: Schedule, region: torch.Tensor, data: torch.Tensor,
                    levels=LDR_LEVELS, n: int = 16, seed: int = 0, method: str = "exact", probes: int = 32,
                    **vjp_kwargs) -> dict:
    """{level: result} of `coupling` for one denoiser (see `coupling_table`)."""
    return coupling_table({"model": model}, rule, product, schedule, region, data, levels, n, seed, method,
                          probes, **vjp_kwargs)["model"]
