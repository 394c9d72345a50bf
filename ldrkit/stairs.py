"""The three stairs (appendix A.8, Figs. 6 and 22): a two-layer ReLU network learning y_1 of parity.

The network s(x) = sum_j a_j relu(w_j.x + b_j), small balanced init, is trained on the exact
eps-target y_1(x) of uniform parity at one noise level, fresh samples x ~ p_t per step. Its loss
against the exact target passes three analytic plateaus (ldrkit.hypercube.plateau_levels): the
best linear fit, the best univariate fit f(x^(1)), then falls toward the optimum 0.

Recipe (see the chapter "Three stairs"): plain SGD (a discretised gradient flow) brings the network
to the univariate plateau and keeps it there; the escape toward the optimum is started by switching
to Adam once the univariate plateau is reached. The switch of optimiser is not
gradient flow: Adam rescales each coordinate of the gradient, which amplifies the small off-axis
components that gradient flow leaves near the saddle set M for a very long time.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import hypercube as H
from .files import write_json
from .runs import Run

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


def _lr_at(phase: dict, k: int) -> float:
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


def run_stairs(config: dict, run: Run, progress: bool = True) -> dict:
    """Train the network of `config` on y_i of its distribution; write curve, snapshots and functions into run_dir.

    Returns the metrics body: sqrt_alpha_bar, levels {zero, linear, univariate} (losses against the
    exact target, computed without training), loss_curve [[step, loss]] (each loss the mean of the
    training losses since the previous record), plateaus (find_plateaus), weights [[step, on_axis,
    off_axis]] with on_axis = mean_j |a_j w_j^(i)|, off_axis = mean_j ||a_j (w_j - w_j^(i) e_i)||,
    axis_weights [[step, mean_j |a_j w_j^(k)| for each k]], waiting (waiting_time), final_loss, wall_seconds.
    The optional `stop_below` ends training once the smoothed loss is below that fraction of the
    univariate level (a waiting-time run need not train past its escape).
    """
    torch.set_num_threads(1)
    run.prepare(config)  # refuses a folder made by another spec
    run_dir = run.path
    start = time.time()
    d, sab, i = config["d"], config["sqrt_alpha_bar"], config["coordinate"]
    data = Distribution(d, config.get("distribution"))
    dtype = getattr(torch, config["dtype"])
    levels = H.plateau_levels(data.support, sab, i=i, probs=data.probs, n=config["level_samples"],
                              seed=config["seed"] + 1)
    level_values = levels.as_dict()
    if data.pair is not None:  # the best function of the tilted pair: a local solution that reads two coordinates
        level_values["pair"] = H.pair_level(data.support, sab, *data.pair, probs=data.probs, n=config["level_samples"],
                                            seed=config["seed"] + 1)  # the same samples as the other levels
    stop = config.get("stop_below")
    g = torch.Generator().manual_seed(config["seed"])
    params = H.init_balanced(config["width"], d, config["sigma_init"], config["r"], g, dtype=dtype)
    params = {k: v.requires_grad_(True) for k, v in params.items()}
    total = sum(p["steps"] for p in config["phases"])
    snap_every = max(1, total // config["snapshots"])
    curve, weights, axis, snapshots, since = [], [], [], [], []
    bar = tqdm(total=total, disable=not progress, desc=f"three stairs d={d}")
    step, stopped = 0, False
    for phase in config["phases"]:
        opt_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[phase["optimizer"]]
        opt = opt_cls(list(params.values()), lr=phase["lr"])
        for k in range(phase["steps"]):
            for group in opt.param_groups:
                group["lr"] = _lr_at(phase, k)
            x, _ = H.noise(data.sample(config["batch"], g), sab, g)
            y = data.target(x, sab)[:, i].to(dtype)
            loss = ((H.network(params, x.to(dtype)) - y) ** 2).mean()
            since.append(float(loss.detach()))
            if step % config["record_every"] == 0:
                curve.append([step, float(np.mean(since))])
                since = []
                weights.append([step, *H.weight_masses(params, i)])
                axis.append([step, *(params["a"].detach().abs()[:, None] * params["w"].detach().abs()).mean(0).tolist()])
                bar.set_postfix(loss=f"{curve[-1][1]:.4f}", refresh=False)
                if stop is not None and len(curve) >= SMOOTH_WINDOW and \
                        np.mean([c[1] for c in curve[-SMOOTH_WINDOW:]]) < stop * levels.univariate:
                    stopped = True
            if step % snap_every == 0:
                snapshots.append((step, {k: v.detach().clone() for k, v in params.items()}))
            if stopped:
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update(1)
        if stopped:
            break
    bar.close()
    snapshots.append((step, {k: v.detach().clone() for k, v in params.items()}))
    # The final loss on a large fresh batch (less noisy than one training batch).
    with torch.no_grad():
        x, _ = H.noise(data.sample(1 << 16, g), sab, g)
        y = data.target(x, sab)[:, i]
        final = float(((H.network(params, x.to(dtype)).double() - y) ** 2).mean())
    curve.append([step, final])
    weights.append([step, *H.weight_masses(params, i)])
    curve_np = np.array(curve)
    smoothed = smooth(curve_np, SMOOTH_WINDOW)
    plateaus = find_plateaus(smoothed, level_values)
    _write_functions(run_dir, snapshots, plateaus, curve_np, data, sab, i, dtype, g)
    metrics = {"sqrt_alpha_bar": sab, "d": d, "levels": level_values, "levels_se": levels.zero_se,
               "loss_curve": curve, "plateaus": plateaus, "weights": weights, "axis_weights": axis,
               "waiting": waiting_time(smoothed, level_values), "stopped_early": stopped,
               "final_loss": final, "wall_seconds": time.time() - start}
    write_json(run_dir / "stairs.json", {**metrics, "config": config}, indent=None)
    return metrics


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


def _write_functions(run_dir: Path, snapshots, plateaus, curve, data: Distribution, sab, i, dtype, g) -> None:
    """Save s(x) against x^(1) at the middle of each plateau and at the end (functions.npz), for Fig. 22."""
    x, _ = H.noise(data.sample(4000, g), sab, g)
    y = data.target(x, sab)[:, i]
    steps = np.array([s for s, _ in snapshots])
    picks = {p["level"]: (p["first_step"] + p["last_step"]) // 2 for p in plateaus if p["level"] != "zero"}
    picks["final"] = int(curve[-1, 0])
    out = {"x1": x[:, i].numpy(), "target": y.numpy(),
           "univariate": H.univariate_target(x[:, i], sab).numpy()}
    for name, want in picks.items():
        step, params = snapshots[int(np.argmin(np.abs(steps - want)))]
        with torch.no_grad():
            out[f"s_{name}"] = H.network(params, x.to(dtype)).double().numpy()
        out[f"step_{name}"] = np.array(step)
    np.savez(run_dir / ".functions.tmp.npz", **out)
    (run_dir / ".functions.tmp.npz").replace(run_dir / "functions.npz")
