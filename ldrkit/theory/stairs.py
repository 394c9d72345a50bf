"""The three stairs (appendix A.8, Figs. 6 and 22): a two-layer ReLU network learning y_1 of parity.

The network s(x) = sum_j a_j relu(w_j.x + b_j), small balanced init, is trained on the exact
eps-target y_1(x) of uniform parity at one noise level, fresh samples x ~ p_t per step. Its loss
against the exact target passes three analytic plateaus (ldrkit.theory.hypercube.plateau_levels): the
best linear fit, the best univariate fit f(x^(1)), then falls toward the optimum 0.

Recipe (see the chapter "Three stairs"): plain SGD (a discretised gradient flow) brings the network
to the univariate plateau and keeps it there; the escape toward the optimum is started by switching
to Adam once the univariate plateau is reached. The switch of optimiser is not
gradient flow: Adam rescales each coordinate of the gradient, which amplifies the small off-axis
components that gradient flow leaves near the saddle set M for a very long time.
"""
from __future__ import annotations

import numpy as np
import torch

from . import hypercube as H

DEPARTURE_FRACTION = 0.9  # a run has left the univariate plateau once its smoothed loss is below this x that level
ESCAPE_FRACTION = 0.5     # ... and has escaped (learned most of the residual) below this x that level
SMOOTH_WINDOW = 9      # recorded losses averaged before plateaus, arrival and escape are read


class Distribution:
    """The data of a stairs run: uniform parity (closed-form target), or parity tilted by a pairwise term.

    `{"name": "tilted-parity", "pair": [i, j], "strength": lam}` keeps the parity support and weights each
    point by (1 + lam x_i x_j): the rule is unchanged, but E[x_i x_j] = lam, so Assumption 5.1 (pairwise
    independence) fails by lam. Its target is exact by enumeration of the 2^(d-1) support points.
    """

    def __init__(self, d: int, spec: dict | None):
        self.d, self.spec = d, spec or {"name": "parity"}
        self.support = H.parity_support(d)
        self.pair = None
        name = self.spec["name"]
        if name == "parity":
            self.probs = None
        elif name == "tilted-parity":
            i, j = self.spec["pair"]
            lam = float(self.spec["strength"])
            if not (0 <= i < d and 0 <= j < d and i != j) or not -1 <= lam <= 1:
                raise ValueError(f"tilted-parity needs two distinct coordinates below d={d} and |strength| <= 1")
            w = 1 + lam * self.support[:, i] * self.support[:, j]
            self.probs, self.pair = w / w.sum(), (i, j)
        else:
            raise ValueError(f"unknown stairs distribution {name!r}; valid: parity, tilted-parity")

    def sample(self, n: int, g: torch.Generator) -> torch.Tensor:
        if self.probs is None:
            return H.sample_parity_x0(n, self.d, g, torch.float64)
        return H.sample_x0(n, self.support, self.probs, g)

    def target(self, x: torch.Tensor, sab: float) -> torch.Tensor:
        if self.probs is None:
            return H.parity_target(x, sab)
        return H.eps_target(x, H.posterior_mean_x0(x, self.support, sab, self.probs), sab)


def lr_at(phase: dict, k: int) -> float:
    frac = k / max(1, phase["steps"] - 1)
    return phase["lr"] * (phase["lr_end"] / phase["lr"]) ** frac


def find_plateaus(curve: np.ndarray, levels: dict[str, float], band: float = 0.25) -> list[dict]:
    """For each level (in decreasing order), the longest run of consecutive recorded steps whose loss sits
    within band * (gap to the nearest other level, or to 0) of it: first and last step, mean loss there.

    A level the loss never comes near gets no entry. `curve` rows are [step, loss] (pass a smoothed curve:
    single-batch losses are noisy).
    """
    names = sorted(levels, key=lambda k: -levels[k])
    values = [levels[k] for k in names] + [0.0]
    out = []
    for idx, name in enumerate(names):
        v = values[idx]
        gaps = [abs(v - values[idx + 1])] + ([abs(values[idx - 1] - v)] if idx > 0 else [])
        near = np.abs(curve[:, 1] - v) <= band * min(gaps)
        best, start = None, None
        for k, flag in enumerate(np.append(near, False)):
            if flag and start is None:
                start = k
            elif not flag and start is not None:
                if best is None or k - start > best[1] - best[0]:
                    best = (start, k)
                start = None
        if best is not None:
            lo, hi = best
            out.append({"level": name, "first_step": int(curve[lo, 0]), "last_step": int(curve[hi - 1, 0]),
                        "mean_loss": float(curve[lo:hi, 1].mean())})
    return out


def waiting_time(smoothed: np.ndarray, levels: dict[str, float], band: float = 0.25) -> dict:
    """Steps spent on the univariate plateau, read on a smoothed curve [[step, loss]].

    Arrival: the first record within band x (univariate level) above the level (the network has learned the best
    function of its own coordinate). Departure: the first record after arrival below DEPARTURE_FRACTION x the level:
    no function of x^(1) alone gets there, so the network has begun to read the other coordinates; `steps` is
    departure - arrival, the waiting time. Escape: the first record below ESCAPE_FRACTION x the level (most of the
    residual learned). A missing event is None; `censored_at` (steps after arrival at the end of the curve) then
    bounds the waiting time from below.
    """
    uni = levels["univariate"]
    steps, losses = smoothed[:, 0], smoothed[:, 1]
    out = {"arrival": None, "departure": None, "escape": None, "steps": None, "censored_at": None}
    arrived = np.flatnonzero(losses <= uni * (1 + band))
    if not len(arrived):
        return out
    first = int(arrived[0])
    out["arrival"] = int(steps[first])
    for key, fraction in (("departure", DEPARTURE_FRACTION), ("escape", ESCAPE_FRACTION)):
        below = np.flatnonzero(losses[first:] < fraction * uni)
        out[key] = int(steps[first + below[0]]) if len(below) else None
    if out["departure"] is None:
        out["censored_at"] = int(steps[-1]) - out["arrival"]
    else:
        out["steps"] = out["departure"] - out["arrival"]
    return out


def smooth(curve: np.ndarray, window: int = 5) -> np.ndarray:
    """Running mean of the recorded losses (single batches are noisy), same steps."""
    if len(curve) < window:
        return curve
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window // 2, curve[0, 1]), curve[:, 1], np.full(window // 2, curve[-1, 1])])
    return np.stack([curve[:, 0], np.convolve(padded, kernel, mode="valid")[: len(curve)]], axis=1)
