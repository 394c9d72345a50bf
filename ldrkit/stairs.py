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
    """Train the network of `config` on y_1 of parity; write curve, snapshots and functions into run_dir.

    Returns the metrics body: sqrt_alpha_bar, levels {zero, linear, univariate} (losses against the
    exact target, computed without training), loss_curve [[step, loss]], plateaus (find_plateaus),
    weights [[step, on_axis, off_axis]] with on_axis = mean_j |a_j w_j^(1)|, off_axis =
    mean_j ||a_j (w_j - w_j^(1) e_1)||, plus final_loss and wall_seconds.
    """
    torch.set_num_threads(1)
    run.prepare(config)  # refuses a folder made by another spec
    run_dir = run.path
    start = time.time()
    d, sab, i = config["d"], config["sqrt_alpha_bar"], config["coordinate"]
    dtype = getattr(torch, config["dtype"])
    levels = H.plateau_levels(H.parity_support(d), sab, i=i, n=config["level_samples"], seed=config["seed"] + 1)
    g = torch.Generator().manual_seed(config["seed"])
    params = H.init_balanced(config["width"], d, config["sigma_init"], config["r"], g, dtype=dtype)
    params = {k: v.requires_grad_(True) for k, v in params.items()}
    total = sum(p["steps"] for p in config["phases"])
    snap_every = max(1, total // config["snapshots"])
    curve, weights, snapshots = [], [], []
    bar = tqdm(total=total, disable=not progress, desc=f"three stairs d={d}")
    step = 0
    for phase in config["phases"]:
        opt_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[phase["optimizer"]]
        opt = opt_cls(list(params.values()), lr=phase["lr"])
        for k in range(phase["steps"]):
            for group in opt.param_groups:
                group["lr"] = _lr_at(phase, k)
            x0 = H.sample_parity_x0(config["batch"], d, g, torch.float64)
            x, _ = H.noise(x0, sab, g)
            y = H.parity_target(x, sab)[:, i].to(dtype)
            x = x.to(dtype)
            loss = ((H.network(params, x) - y) ** 2).mean()
            if step % config["record_every"] == 0:
                curve.append([step, float(loss.detach())])
                weights.append([step, *H.weight_masses(params, i)])
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)
            if step % snap_every == 0:
                snapshots.append((step, {k: v.detach().clone() for k, v in params.items()}))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update(1)
    bar.close()
    snapshots.append((step, {k: v.detach().clone() for k, v in params.items()}))
    # The final loss on a large fresh batch (less noisy than one training batch).
    with torch.no_grad():
        x0 = H.sample_parity_x0(1 << 16, d, g, torch.float64)
        x, _ = H.noise(x0, sab, g)
        y = H.parity_target(x, sab)[:, i]
        final = float(((H.network(params, x.to(dtype)).double() - y) ** 2).mean())
    curve.append([step, final])
    weights.append([step, *H.weight_masses(params, i)])
    curve_np = np.array(curve)
    plateaus = find_plateaus(smooth(curve_np, 9), levels.as_dict())
    _write_functions(run_dir, snapshots, plateaus, curve_np, d, sab, i, dtype, g)
    metrics = {"sqrt_alpha_bar": sab, "d": d, "levels": levels.as_dict(), "levels_se": levels.zero_se,
               "loss_curve": curve, "plateaus": plateaus, "weights": weights, "final_loss": final,
               "wall_seconds": time.time() - start}
    write_json(run_dir / "stairs.json", {**metrics, "config": config}, indent=None)
    return metrics


def smooth(curve: np.ndarray, window: int = 5) -> np.ndarray:
    """Running mean of the recorded losses (single batches are noisy), same steps."""
    if len(curve) < window:
        return curve
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window // 2, curve[0, 1]), curve[:, 1], np.full(window // 2, curve[-1, 1])])
    return np.stack([curve[:, 0], np.convolve(padded, kernel, mode="valid")[: len(curve)]], axis=1)


def _write_functions(run_dir: Path, snapshots, plateaus, curve, d, sab, i, dtype, g) -> None:
    """Save s(x) against x^(1) at the middle of each plateau and at the end (functions.npz), for Fig. 22."""
    x0 = H.sample_parity_x0(4000, d, g, torch.float64)
    x, _ = H.noise(x0, sab, g)
    y = H.parity_target(x, sab)[:, i]
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
