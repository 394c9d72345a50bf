"""Section 5 of the paper as runnable mathematics: distributions on the hypercube {+1,-1}^d.

What is here, in the order of the paper:
- distributions given by a support and probabilities, their Walsh-Fourier coefficients and
  a check of Assumption 5.1 (no degree-1 and no degree-2 coefficients);
- the exact noised density p_t, the posterior mean E[x0 | x_t] and the eps-target
  y_t(x) = (x - sqrt(abar) E[x0 | x_t]) / sqrt(1 - abar): in closed form for parity, by
  enumeration (ldrkit.denoisers.oracles.posterior_mean) otherwise;
- the best affine and the best univariate approximations of one coordinate y_i of the
  target, and their losses against the exact target (the plateau levels of the stairs);
- the two-layer ReLU network with the paper's small balanced initialisation, trained by
  gradient descent on the exact target, and the off-axis weight mass (Theorem 5.2);
- the growth rate K(w, b) = E[y_i(x) relu(w.x + b)] on the unit sphere (Theorem 5.3,
  Lemmas A.4-A.5): Monte Carlo, the paper's erf expression, an exact one-line form,
  D* from the first-order condition, and projected gradient ascent.

Convention: x_t = sqrt(abar) x0 + sqrt(1 - abar) xi (the paper writes alpha_t in Section
5.2 and alpha-bar elsewhere; it is the cumulative alpha-bar throughout). Coordinates are
0-based in code: "the first coordinate" is i = 0.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import optimize, special

from ..denoisers.oracles import posterior_mean as _enumerated_posterior_mean
from ..systems.grammars import Parity

# ----------------------------------------------------------------------------- distributions


def parity_support(d: int) -> np.ndarray:
    """All x in {+1,-1}^d with prod(x) = +1 (rows, int8): the parity rule of the paper."""
    return Parity(d).enumerate()


def dyck_support(d: int) -> np.ndarray:
    """Dyck words of length d as +-1 rows: every prefix sum >= 0 and the total is 0.

    +1 is an opening and -1 a closing bracket. d must be even. Used as the counter-example
    to Assumption 5.1 (its first coordinate is always +1).
    """
    if d % 2:
        raise ValueError(f"Dyck words need an even length, got {d}")
    cube = np.array(list(itertools.product((1, -1), repeat=d)), dtype=np.int8)
    prefix = np.cumsum(cube, axis=1)
    return cube[(prefix >= 0).all(axis=1) & (prefix[:, -1] == 0)]


def _probs(support: np.ndarray, probs: np.ndarray | None) -> np.ndarray:
    if probs is None:
        return np.full(len(support), 1.0 / len(support))
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(support),) or np.any(probs < 0) or not math.isclose(probs.sum(), 1.0, rel_tol=1e-9):
        raise ValueError("probs must be non-negative, one per support row, summing to 1")
    return probs


def fourier_coefficients(support: np.ndarray, probs: np.ndarray | None = None,
                         max_degree: int | None = 2) -> dict[tuple[int, ...], float]:
    """Walsh-Fourier coefficients p0_hat(I) with p0(x) = sum_I p0_hat(I) x_I, for |I| <= max_degree.

    p0_hat(I) = 2^-d sum_x p0(x) x_I = 2^-d E_{p0}[x_I]. max_degree=None gives all 2^d of them.
    """
    support = np.asarray(support, dtype=np.float64)
    p = _probs(support, probs)
    d = support.shape[1]
    top = d if max_degree is None else min(max_degree, d)
    coef = {}
    for k in range(top + 1):
        for subset in itertools.combinations(range(d), k):
            chi = support[:, list(subset)].prod(axis=1) if subset else np.ones(len(support))
            coef[subset] = float(p @ chi) / 2**d
    return coef


def satisfies_assumption_5_1(support: np.ndarray, probs: np.ndarray | None = None, tol: float = 1e-12) -> bool:
    """Assumption 5.1: every degree-1 and every degree-2 (i != j) Fourier coefficient of p0 is zero.

    Equivalently each coordinate is a fair coin and each pair is independent.
    """
    coef = fourier_coefficients(support, probs, max_degree=2)
    return all(abs(v) <= tol * 2.0 ** -support.shape[1] for s, v in coef.items() if len(s) in (1, 2))


def is_full_parity(support: np.ndarray) -> bool:
    """True when the support is exactly the parity set {x : prod x = +1} (any row order)."""
    support = np.asarray(support)
    d = support.shape[1]
    return len(support) == 2 ** (d - 1) and bool(np.all(support.prod(axis=1) == 1)) and \
        len(np.unique(support, axis=0)) == len(support)


# ----------------------------------------------------------------------------- noised density and targets


def sample_x0(n: int, support: np.ndarray, probs: np.ndarray | None, generator: torch.Generator) -> torch.Tensor:
    """n clean samples x0 ~ p0 (float64 rows)."""
    p = torch.as_tensor(_probs(support, probs))
    idx = torch.multinomial(p, n, replacement=True, generator=generator)
    return torch.as_tensor(np.asarray(support), dtype=torch.float64)[idx]


def sample_parity_x0(n: int, d: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """n uniform parity points: d-1 fair coins and the last entry fixing prod = +1 (no enumeration)."""
    head = torch.randint(0, 2, (n, d - 1), generator=generator).to(dtype) * 2 - 1
    return torch.cat([head, head.prod(dim=1, keepdim=True)], dim=1)


def noise(x0: torch.Tensor, sqrt_alpha_bar: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, xi) with x_t = sqrt(abar) x0 + sqrt(1 - abar) xi."""
    xi = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    return sqrt_alpha_bar * x0 + math.sqrt(1 - sqrt_alpha_bar**2) * xi, xi


def noised_log_density(x: torch.Tensor, support: np.ndarray, sqrt_alpha_bar: float,
                       probs: np.ndarray | None = None) -> torch.Tensor:
    """log p_t(x) for p_t = law of sqrt(abar) x0 + sqrt(1-abar) xi: a log-sum-exp over the support."""
    s = torch.as_tensor(np.asarray(support), dtype=x.dtype)
    logw = torch.log(torch.as_tensor(_probs(support, probs), dtype=x.dtype))
    var = 1 - sqrt_alpha_bar**2
    sq = ((x[:, None, :] - sqrt_alpha_bar * s[None]) ** 2).sum(-1)
    return torch.logsumexp(logw - sq / (2 * var), dim=1) - 0.5 * x.shape[1] * math.log(2 * math.pi * var)


def parity_posterior_mean(x: torch.Tensor, sqrt_alpha_bar: float) -> torch.Tensor:
    """E[x0 | x_t = x] for x0 uniform on the parity set, in closed form and numerically stable.

    With h_j = sqrt(abar) x_j / (1 - abar) and m_j = tanh(h_j),
    E[x0_i | x] = (m_i + prod_{j!=i} m_j) / (1 + prod_j m_j) = tanh(h_i + atanh(prod_{j!=i} m_j)).
    The atanh of the leave-one-out product is computed as half the log-ratio of the two
    partition functions over the other coordinates (product +1 vs -1), each by a log-space
    prefix/suffix recursion, so no 0/0 appears when 1 + prod m -> 0 at low noise.
    """
    h = sqrt_alpha_bar * x / (1 - sqrt_alpha_bar**2)
    n, d = h.shape
    neg_inf = torch.full((n,), -torch.inf, dtype=h.dtype)
    zero = torch.zeros(n, dtype=h.dtype)

    def sweep(cols):
        lp, lm, out = zero, neg_inf, [(zero, neg_inf)]
        for k in cols:
            lp, lm = torch.logaddexp(lp + h[:, k], lm - h[:, k]), torch.logaddexp(lp - h[:, k], lm + h[:, k])
            out.append((lp, lm))
        return out

    pre = sweep(range(d))                      # pre[k]: coordinates 0..k-1
    suf = sweep(range(d - 1, -1, -1))[::-1]    # suf[k]: coordinates k..d-1
    cols = []
    for i in range(d):
        (pp, pm), (sp, sm) = pre[i], suf[i + 1]
        log_plus = torch.logaddexp(pp + sp, pm + sm)
        log_minus = torch.logaddexp(pp + sm, pm + sp)
        cols.append(torch.tanh(h[:, i] + 0.5 * (log_plus - log_minus)))
    return torch.stack(cols, dim=1)


def posterior_mean_x0(x: torch.Tensor, support: np.ndarray, sqrt_alpha_bar: float,
                      probs: np.ndarray | None = None) -> torch.Tensor:
    """E[x0 | x_t = x]: the parity closed form when the support is the uniform parity set, else enumeration."""
    if probs is None and is_full_parity(support):
        return parity_posterior_mean(x, sqrt_alpha_bar)
    logw = None if probs is None else torch.log(torch.as_tensor(_probs(support, probs), dtype=x.dtype))
    return _enumerated_posterior_mean(x, torch.as_tensor(np.asarray(support), dtype=x.dtype), sqrt_alpha_bar, logw)


def eps_target(x: torch.Tensor, x0_mean: torch.Tensor, sqrt_alpha_bar: float) -> torch.Tensor:
    """y_t(x) = (x - sqrt(abar) E[x0|x]) / sqrt(1 - abar) = E[xi | x_t = x]: the exact eps-prediction target."""
    return (x - sqrt_alpha_bar * x0_mean) / math.sqrt(1 - sqrt_alpha_bar**2)


def parity_target(x: torch.Tensor, sqrt_alpha_bar: float) -> torch.Tensor:
    """The exact eps-target y_t(x) of uniform parity."""
    return eps_target(x, parity_posterior_mean(x, sqrt_alpha_bar), sqrt_alpha_bar)


def univariate_target(xi: torch.Tensor, sqrt_alpha_bar: float, marginal_mean: float = 0.0) -> torch.Tensor:
    """E[y_i | x^(i)]: the best function of x^(i) alone, which needs only the marginal of x0_i.

    E[x0_i | x^(i)] = tanh(sqrt(abar) x^(i)/(1-abar) + atanh(mu_i)), mu_i = E[x0_i]. For parity
    (d >= 2) mu_i = 0 and this is the eps-target of the uniform hypercube (the other coordinates
    are fair coins independent of x0_i).
    """
    h = sqrt_alpha_bar * xi / (1 - sqrt_alpha_bar**2) + math.atanh(marginal_mean)
    return (xi - sqrt_alpha_bar * torch.tanh(h)) / math.sqrt(1 - sqrt_alpha_bar**2)


def best_affine(support: np.ndarray, sqrt_alpha_bar: float, i: int = 0,
                probs: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """(beta, c) of the least-squares affine fit beta.x + c to y_i, in closed form.

    E[y_i x] = E[xi_i x] = sqrt(1-abar) e_i and E[y_i] = 0, so beta = Sigma^-1 sqrt(1-abar) e_i
    with Sigma = Cov(x_t) = abar Cov(x0) + (1-abar) I, and c = -beta.E[x_t]. Under Assumption 5.1
    Sigma = I and the fit is sqrt(1-abar) x^(i).
    """
    s = np.asarray(support, dtype=np.float64)
    p = _probs(s, probs)
    mu = p @ s
    cov0 = (s - mu).T @ ((s - mu) * p[:, None])
    a2 = sqrt_alpha_bar**2
    sigma = a2 * cov0 + (1 - a2) * np.eye(s.shape[1])
    e = np.zeros(s.shape[1])
    e[i] = math.sqrt(1 - a2)
    beta = np.linalg.solve(sigma, e)
    return beta, float(-beta @ (sqrt_alpha_bar * mu))


def _univariate_second_moment(sqrt_alpha_bar: float, marginal_mean: float = 0.0, nodes: int = 200) -> float:
    """E[u(x^(i))^2] for u = univariate_target, by Gauss-Hermite quadrature on both mixture components."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    sd = math.sqrt(1 - sqrt_alpha_bar**2)
    total = 0.0
    for sign, prob in ((1.0, (1 + marginal_mean) / 2), (-1.0, (1 - marginal_mean) / 2)):
        xi = torch.as_tensor(sign * sqrt_alpha_bar + sd * z)
        total += prob * float((univariate_target(xi, sqrt_alpha_bar, marginal_mean).numpy() ** 2) @ w)
    return total


def pair_target(x: torch.Tensor, support: np.ndarray, sqrt_alpha_bar: float, i: int, j: int,
                probs: np.ndarray | None = None) -> torch.Tensor:
    """E[y_i | x^(i), x^(j)]: the best function of two coordinates, from the joint law of (x0_i, x0_j) alone.

    The noise is independent per coordinate, so the posterior of (x0_i, x0_j) given (x^(i), x^(j)) weighs
    each of the four sign pairs by its probability times two Gaussian likelihoods. Under Assumption 5.1
    x0_j is independent of x0_i and this equals univariate_target: it differs only when the pair is dependent.
    """
    s = np.asarray(support, dtype=np.float64)
    p = _probs(s, probs)
    var = 1 - sqrt_alpha_bar**2
    num = torch.zeros(len(x), dtype=x.dtype)
    den = torch.zeros(len(x), dtype=x.dtype)
    for a in (-1.0, 1.0):
        for b in (-1.0, 1.0):
            prob = float(p[(s[:, i] == a) & (s[:, j] == b)].sum())
            if prob == 0:
                continue
            like = prob * torch.exp(-((x[:, i] - sqrt_alpha_bar * a) ** 2 + (x[:, j] - sqrt_alpha_bar * b) ** 2
                                      - x[:, i] ** 2 - x[:, j] ** 2) / (2 * var))
            num += a * like
            den += like
    return (x[:, i] - sqrt_alpha_bar * num / den) / math.sqrt(var)


def pair_level(support: np.ndarray, sqrt_alpha_bar: float, i: int, j: int, probs: np.ndarray | None = None,
               n: int = 1 << 17, seed: int = 0) -> float:
    """The loss E[(E[y_i | x^(i), x^(j)] - y_i)^2] of the best function of coordinates i and j (Monte Carlo;
    with probs given, the same samples as plateau_levels with the same n and seed)."""
    g = torch.Generator().manual_seed(seed)
    x, _ = noise(sample_x0(n, support, probs, g), sqrt_alpha_bar, g)
    y = eps_target(x, posterior_mean_x0(x, support, sqrt_alpha_bar, probs), sqrt_alpha_bar)[:, i]
    return float(((pair_target(x, support, sqrt_alpha_bar, i, j, probs) - y) ** 2).mean())


@dataclass
class Levels:
    """Losses E[(f(x) - y_i(x))^2] of four predictors f against the exact target y_i.

    zero: f = 0 (the network at a small init); linear: the best affine f; univariate: the best
    f(x^(i)); the optimum f = y_i has loss 0. The predictors are closed-form; the expectations
    are Monte Carlo averages over exact samples, `zero_se` the standard error of the largest one.
    """

    zero: float
    linear: float
    univariate: float
    zero_se: float
    sqrt_alpha_bar: float
    d: int

    def as_dict(self) -> dict[str, float]:
        return {"zero": self.zero, "linear": self.linear, "univariate": self.univariate}


def plateau_levels(support: np.ndarray, sqrt_alpha_bar: float, i: int = 0, probs: np.ndarray | None = None,
                   n: int = 1 << 19, seed: int = 0) -> Levels:
    """The analytic plateau levels of the loss of output coordinate i, independent of any training.

    Each level is E[(f(x) - y_i(x))^2] for f = 0, the closed-form best affine fit (`best_affine`)
    and the closed-form best univariate fit (`univariate_target`), averaged over n exact samples
    x ~ p_t with the exact target y_i; only this average is Monte Carlo (standard error `zero_se`
    for the first; the others are smaller). `check_levels` verifies the identities between them.
    """
    support = np.asarray(support)
    g = torch.Generator().manual_seed(seed)
    if probs is None and is_full_parity(support):
        x0 = sample_parity_x0(n, support.shape[1], g)
    else:
        x0 = sample_x0(n, support, probs, g)
    x, _ = noise(x0, sqrt_alpha_bar, g)
    y = eps_target(x, posterior_mean_x0(x, support, sqrt_alpha_bar, probs), sqrt_alpha_bar)[:, i]
    beta, c = best_affine(support, sqrt_alpha_bar, i, probs)
    mu_i = float(_probs(support, probs) @ np.asarray(support, dtype=np.float64)[:, i])
    lin = x @ torch.as_tensor(beta) + c
    uni = univariate_target(x[:, i], sqrt_alpha_bar, mu_i)
    zero_sq = y**2
    return Levels(zero=float(zero_sq.mean()), linear=float(((lin - y) ** 2).mean()),
                  univariate=float(((uni - y) ** 2).mean()), zero_se=float(zero_sq.std() / math.sqrt(n)),
                  sqrt_alpha_bar=sqrt_alpha_bar, d=support.shape[1])


def check_levels(sqrt_alpha_bar: float, levels: Levels, marginal_mean: float = 0.0) -> dict[str, float]:
    """Identities the levels must satisfy under Assumption 5.1 (Pythagoras for projections):
    zero - linear = (1 - abar) and zero - univariate = E[u(x^(i))^2] (quadrature). Returns both gaps
    as (measured, exact) pairs flattened into a dict.
    """
    return {"zero_minus_linear": levels.zero - levels.linear, "exact_zero_minus_linear": 1 - sqrt_alpha_bar**2,
            "zero_minus_univariate": levels.zero - levels.univariate,
            "exact_zero_minus_univariate": _univariate_second_moment(sqrt_alpha_bar, marginal_mean)}


# ----------------------------------------------------------------------------- the two-layer network


def init_balanced(m: int, d: int, sigma_init: float, r: float, generator: torch.Generator,
                  dtype=torch.float64) -> dict[str, torch.Tensor]:
    """The paper's small balanced initialisation (Section 5.4) of s(x) = sum_j a_j relu(w_j.x + b_j).

    w_j ~ N(0, sigma^2 I), b_j ~ N(0, sigma^2 r^2), a_j = +-sqrt(||w_j||^2 + b_j^2) (random sign):
    balanced, so a_j^2 - ||w_j||^2 - b_j^2 = 0 is conserved by gradient flow (Lemma A.3).
    """
    w = sigma_init * torch.randn(m, d, generator=generator, dtype=dtype)
    b = sigma_init * r * torch.randn(m, generator=generator, dtype=dtype)
    sign = torch.randint(0, 2, (m,), generator=generator).to(dtype) * 2 - 1
    a = sign * torch.sqrt((w**2).sum(1) + b**2)
    return {"a": a, "w": w, "b": b}


def network(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """s(x) = sum_j a_j relu(w_j.x + b_j), one output per row of x."""
    return torch.relu(x @ params["w"].T + params["b"]) @ params["a"]


def weight_masses(params: dict[str, torch.Tensor], i: int = 0) -> tuple[float, float]:
    """(mean_j |a_j w_j^(i)|, mean_j ||a_j (w_j - w_j^(i) e_i)||): on-axis and off-axis weight (Fig. 6)."""
    a, w = params["a"].detach(), params["w"].detach()
    on = (a * w[:, i]).abs().mean()
    off_w = w.clone()
    off_w[:, i] = 0
    off = (a.abs() * off_w.norm(dim=1)).mean()
    return float(on), float(off)


def project_to_axis(params: dict[str, torch.Tensor], i: int = 0) -> dict[str, torch.Tensor]:
    """The point of M nearest in w: every w_j keeps only its e_i component (a, b unchanged)."""
    w = torch.zeros_like(params["w"])
    w[:, i] = params["w"][:, i]
    return {"a": params["a"].clone(), "w": w, "b": params["b"].clone()}


def parity_orbit(d: int, i: int = 0, dtype=torch.float64) -> torch.Tensor:
    """Sign flips s (rows) with s_i = +1 and prod s = +1, generated by flipping pairs of other coordinates.

    x0 -> s*x0, xi -> s*xi maps the parity law to itself and leaves x^(i), y_i unchanged while each
    other coordinate changes sign in half of the flips. A batch closed under these flips makes the
    sample gradient obey Lemmas A.1-A.2 exactly (not only in expectation), so Theorem 5.2 can be
    checked to machine precision with finite batches.
    """
    others = [k for k in range(d) if k != i]
    gens = []
    for start in range(0, len(others), 2):
        pair = others[start:start + 2] if start + 1 < len(others) else [others[start - 1], others[start]]
        s = torch.ones(d, dtype=dtype)
        s[pair] = -1
        gens.append(s)
    group = torch.ones(1, d, dtype=dtype)
    for s in gens:
        group = torch.cat([group, group * s], dim=0)
    return group


def train_exact_target(params: dict[str, torch.Tensor], d: int, sqrt_alpha_bar: float, steps: int, lr: float,
                       batch: int, generator: torch.Generator, i: int = 0, symmetric: bool = False,
                       record_every: int = 10) -> tuple[dict[str, torch.Tensor], list[list[float]]]:
    """Plain gradient descent on E[(s(x) - y_i(x))^2], x ~ p_t of parity, fresh samples per step.

    symmetric=True closes each batch under `parity_orbit` (batch rounded to a multiple of its size).
    Returns the trained parameters and rows [step, loss, on_axis, off_axis].
    """
    params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    dtype = params["w"].dtype
    orbit = parity_orbit(d, i, dtype) if symmetric else torch.ones(1, d, dtype=dtype)
    base = max(1, batch // len(orbit))
    history = []
    for step in range(steps + 1):
        x0 = sample_parity_x0(base, d, generator, dtype)
        x, _ = noise(x0, sqrt_alpha_bar, generator)
        y = parity_target(x, sqrt_alpha_bar)[:, i]
        # y_i is invariant under the orbit: compute it once per base sample, then copy.
        x = (x[:, None, :] * orbit[None]).reshape(-1, d)
        y = y.repeat_interleave(len(orbit))
        loss = ((network(params, x) - y) ** 2).mean()
        if step % record_every == 0 or step == steps:
            history.append([step, float(loss.detach()), *weight_masses(params, i)])
        if step == steps:
            break
        grads = torch.autograd.grad(loss, list(params.values()))
        with torch.no_grad():
            for p, g in zip(params.values(), grads):
                p -= lr * g
    return {k: v.detach() for k, v in params.items()}, history


def invariance_run(d: int = 8, m: int = 64, sqrt_alpha_bar: float = 0.9, steps: int = 300, lr: float = 0.05,
                   batch: int = 1024, sigma_init: float = 0.1, offset: float = 0.0, seed: int = 0,
                   symmetric: bool = True) -> list[list[float]]:
    """Theorem 5.2 in action: start on M (offset=0) or a relative distance `offset` off M, train, and
    return rows [step, loss, on_axis, off_axis] (off_axis stays at rounding level when started on M).
    """
    g = torch.Generator().manual_seed(seed)
    params = project_to_axis(init_balanced(m, d, sigma_init, 1.0, g))
    if offset:
        bump = torch.randn(m, d, generator=g, dtype=torch.float64)
        bump[:, 0] = 0
        params["w"] = params["w"] + offset * params["w"][:, :1].abs() * bump
    _, history = train_exact_target(params, d, sqrt_alpha_bar, steps, lr, batch, g, symmetric=symmetric)
    return history


# ----------------------------------------------------------------------------- the growth rate K (Thm 5.3)


def _phi(z):
    return 0.5 * (1 + special.erf(np.asarray(z) / math.sqrt(2)))


def k_exact(w: np.ndarray, b: float, sqrt_alpha_bar: float, support: np.ndarray, i: int = 0,
            probs: np.ndarray | None = None) -> float:
    """K(w,b) = E[y_i(x) relu(w.x+b)] exactly: sqrt(1-abar) w_i P(w.x_t + b > 0).

    By E[y_i f(x)] = E[xi_i f(x)] and Stein's lemma on xi_i, K = sqrt(1-abar) w_i E[relu'(w.x_t+b)],
    and given x0, w.x_t + b ~ N(sqrt(abar) w.x0 + b, (1-abar)||w||^2), so
    K = sqrt(1-abar) w_i E_{x0} Phi((sqrt(abar) w.x0 + b) / (sqrt(1-abar) ||w||)), summed over the support.
    """
    w = np.asarray(w, dtype=np.float64)
    s = np.asarray(support, dtype=np.float64)
    p = _probs(s, probs)
    sd = math.sqrt(1 - sqrt_alpha_bar**2)
    return float(sd * w[i] * (p @ _phi((sqrt_alpha_bar * s @ w + b) / (sd * np.linalg.norm(w)))))


def k_monte_carlo(w: np.ndarray, b: float, sqrt_alpha_bar: float, support: np.ndarray, n: int = 1 << 18,
                  seed: int = 0, i: int = 0, probs: np.ndarray | None = None) -> tuple[float, float]:
    """(mean, standard error) of y_i(x) relu(w.x + b) over n samples x ~ p_t, with the exact target y_i."""
    g = torch.Generator().manual_seed(seed)
    x0 = sample_x0(n, support, probs, g)
    x, _ = noise(x0, sqrt_alpha_bar, g)
    y = eps_target(x, posterior_mean_x0(x, support, sqrt_alpha_bar, probs), sqrt_alpha_bar)[:, i]
    v = y * torch.relu(x @ torch.as_tensor(w, dtype=x.dtype) + b)
    return float(v.mean()), float(v.std() / math.sqrt(n))


def k_paper_erf(w: np.ndarray, b: float, sqrt_alpha_bar: float, support: np.ndarray, n: int = 1 << 18,
                seed: int = 0, i: int = 0, probs: np.ndarray | None = None) -> tuple[float, float]:
    """The paper's erf expression for K (Lemma A.4's proof), with C, D averaged by Monte Carlo.

    K = sqrt(1-abar)/2 E[ sqrt(C/(1+D^2)) (sgn(w_i) + erf(D/sqrt(2(1-abar)) + x0_i sqrt(abar/(2(1-abar))))) ]
    with C = N^2 + w_i^2, D = N / w_i, N = sqrt(abar) w.P_i x0 + sqrt(1-abar) w.P_i xi + b. The two
    erf terms of the paper are the x0_i = +1 and x0_i = -1 halves of this expectation (each carrying
    its probability 1/2, which the paper writes as the factor 1/2 in front of each erf).
    Returns (mean, standard error).
    """
    w = np.asarray(w, dtype=np.float64)
    g = torch.Generator().manual_seed(seed)
    x0 = sample_x0(n, support, probs, g).numpy()
    xi = torch.randn(x0.shape, generator=g, dtype=torch.float64).numpy()
    a2 = sqrt_alpha_bar**2
    wp = w.copy()
    wp[i] = 0
    num = sqrt_alpha_bar * x0 @ wp + math.sqrt(1 - a2) * xi @ wp + b
    c, dd = num**2 + w[i] ** 2, num / w[i]
    arg = dd / math.sqrt(2 * (1 - a2)) + x0[:, i] * math.sqrt(a2 / (2 * (1 - a2)))
    v = math.sqrt(1 - a2) / 2 * np.sqrt(c / (1 + dd**2)) * (np.sign(w[i]) + special.erf(arg))
    return float(v.mean()), float(v.std() / math.sqrt(n))


def f_on_axis(D: np.ndarray | float, sqrt_alpha_bar: float) -> np.ndarray:
    """The paper's f(D) = (1 + erf(u+)/2 + erf(u-)/2) / sqrt(1 + D^2), u+- = (D +- sqrt(abar)) / sqrt(2(1-abar)).

    K on the axis direction (w, b) = (e_i, D)/sqrt(1+D^2) equals sqrt(1-abar)/2 * f(D).
    """
    D = np.asarray(D, dtype=np.float64)
    s = math.sqrt(2 * (1 - sqrt_alpha_bar**2))
    return (1 + 0.5 * special.erf((D + sqrt_alpha_bar) / s) + 0.5 * special.erf((D - sqrt_alpha_bar) / s)) \
        / np.sqrt(1 + D**2)


def first_order_residual(D: float, sqrt_alpha_bar: float) -> float:
    """The paper's first-order condition for D*, written as LHS - RHS (zero at D*).

    LHS = (1+D^2)/(D sqrt(2 pi (1-abar))) (exp(-u+^2) + exp(-u-^2)), RHS = 1 + erf(u+)/2 + erf(u-)/2.
    """
    one_m = 1 - sqrt_alpha_bar**2
    s = math.sqrt(2 * one_m)
    up, um = (D + sqrt_alpha_bar) / s, (D - sqrt_alpha_bar) / s
    lhs = (1 + D**2) / (D * math.sqrt(2 * math.pi * one_m)) * (math.exp(-up**2) + math.exp(-um**2))
    return lhs - (1 + 0.5 * special.erf(up) + 0.5 * special.erf(um))


def d_star(sqrt_alpha_bar: float) -> float:
    """D* = the bias/weight ratio of the fastest-growing neuron: the root of the first-order condition.

    f'(D) = 0 needs D > 0 (the numerator of f is increasing), and the residual goes from +inf at D -> 0+
    to negative for large D; brentq brackets the root, which is checked against a direct maximisation of f.
    """
    # At D = sqrt(abar) the residual is positive; near D -> 0+ it is positive only while the noise is not too
    # small (at sqrt(abar) = 0.99 it is negative there), so the bracket starts at sqrt(abar) when it can.
    lo = sqrt_alpha_bar if first_order_residual(sqrt_alpha_bar, sqrt_alpha_bar) > 0 else 1e-9
    hi = max(1.0, 2 * lo)
    while first_order_residual(hi, sqrt_alpha_bar) > 0:
        hi *= 2
    root = optimize.brentq(first_order_residual, lo, hi, args=(sqrt_alpha_bar,), xtol=1e-14)
    direct = optimize.minimize_scalar(lambda D: -f_on_axis(D, sqrt_alpha_bar), bounds=(0, hi), method="bounded",
                                      options={"xatol": 1e-10}).x
    if abs(direct - root) > 1e-4 * max(1.0, root):
        raise RuntimeError(f"first-order root {root} disagrees with the maximiser of f {direct}")
    return float(root)


def k_max_formula(sqrt_alpha_bar: float) -> float:
    """max K over the sphere according to Theorem 5.3: sqrt(1-abar)/2 * f(D*)."""
    return float(math.sqrt(1 - sqrt_alpha_bar**2) / 2 * f_on_axis(d_star(sqrt_alpha_bar), sqrt_alpha_bar))


def k_ascent(sqrt_alpha_bar: float, support: np.ndarray, starts: int = 64, steps: int = 400, lr: float = 0.5,
             seed: int = 0, i: int = 0) -> dict:
    """Projected gradient ascent of the exact K on the sphere ||w||^2 + b^2 = 1 from random starts.

    Starts have w_i > 0 (the branch Theorem 5.3 maximises). Returns the best value, its (w, b), the
    fraction of ||w||^2 on e_i and every start's final value.
    """
    s = torch.as_tensor(np.asarray(support), dtype=torch.float64)
    d = s.shape[1]
    sd = math.sqrt(1 - sqrt_alpha_bar**2)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(starts, d + 1, generator=g, dtype=torch.float64)
    z[:, i] = z[:, i].abs()
    z = z / z.norm(dim=1, keepdim=True)

    def k_of(z):
        w, b = z[:, :d], z[:, d]
        arg = (sqrt_alpha_bar * w @ s.T + b[:, None]) / (sd * w.norm(dim=1, keepdim=True))
        return sd * w[:, i] * (0.5 * (1 + torch.erf(arg / math.sqrt(2)))).mean(dim=1)

    for _ in range(steps):
        z = z.detach().requires_grad_(True)
        val = k_of(z)
        (grad,) = torch.autograd.grad(val.sum(), z)
        with torch.no_grad():
            grad = grad - (grad * z).sum(1, keepdim=True) * z   # tangent component
            z = z + lr * grad
            z = z / z.norm(dim=1, keepdim=True)
    with torch.no_grad():
        val = k_of(z)
    best = int(val.argmax())
    zb = z[best].numpy()
    w = zb[:d]
    return {"value": float(val[best]), "w": w, "b": float(zb[d]),
            "on_axis_fraction": float(w[i] ** 2 / (w**2).sum()), "values": val.numpy()}


def k_table(sqrt_alpha_bars=(0.1, 0.3, 0.5, 0.7, 0.9), d: int = 8, n_mc: int = 1 << 18, starts: int = 32,
            steps: int = 400, seed: int = 0) -> list[dict]:
    """Theorem 5.3 checked per noise level on uniform parity in dimension d.

    K_max_formula = sqrt(1-abar)/2 f(D*); K_max_monte_carlo (and its _se) = the Monte Carlo mean of
    y_1 relu(w.x+b) at (e_1, D*)/sqrt(1+D*^2); K_max_ascent = the best of projected gradient ascent from
    random starts; bound = sqrt(1-abar) (Lemma A.5); on_axis_fraction = |w_1|^2/||w||^2 at the ascent's best.
    """
    support = parity_support(d)
    rows = []
    for k, sab in enumerate(sqrt_alpha_bars):
        ds = d_star(sab)
        w = np.zeros(d)
        w[0] = 1 / math.sqrt(1 + ds**2)
        mc, se = k_monte_carlo(w, ds * w[0], sab, support, n=n_mc, seed=seed + k)
        asc = k_ascent(sab, support, starts=starts, steps=steps, seed=seed + k)
        rows.append({"sqrt_alpha_bar": sab, "D_star": ds, "K_max_formula": k_max_formula(sab),
                     "K_max_monte_carlo": mc, "K_max_monte_carlo_se": se, "K_max_ascent": asc["value"],
                     "bound": math.sqrt(1 - sab**2), "on_axis_fraction": asc["on_axis_fraction"]})
    return rows


def format_k_table(rows: list[dict]) -> str:
    """The k-table as aligned text for the command line."""
    head = ["sqrt_abar", "D*", "K_max formula", "K_max MC (se)", "K_max ascent", "bound", "K/bound", "on-axis"]
    lines = ["  ".join(f"{h:>16}" for h in head)]
    for r in rows:
        cells = [f"{r['sqrt_alpha_bar']:.2f}", f"{r['D_star']:.5f}", f"{r['K_max_formula']:.6f}",
                 f"{r['K_max_monte_carlo']:.5f} ({r['K_max_monte_carlo_se']:.5f})", f"{r['K_max_ascent']:.6f}",
                 f"{r['bound']:.6f}", f"{r['K_max_formula'] / r['bound']:.4f}", f"{r['on_axis_fraction']:.6f}"]
        lines.append("  ".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)
