"""The LDR probe at work: the computations and figures of the chapter "The LDR probe".

- the LDR of a trained network for each output (eps, the denoiser x0, eps minus its identity term),
  cached per checkpoint in the run folder;
- the LDR of the exact denoiser of uniform parity (the truth the network should be compared with);
- exact Jacobian rows against the random-probe estimate on an untrained UNet (error against the
  number of probes K, with a tested verdict on its 1/sqrt(K) rate);
- saliency heatmap panels, and the data and figure of the interactive explorer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..denoisers.models import build_model, count_parameters
from ..denoisers.oracles import FiniteSetDenoiser
from ..denoisers.schedule import Schedule
from ..probes import ldr as L
from ..runs.run import Run
from ..systems.grammars import Parity
from .plots import plot_ldr_levels, plot_ldr_over_training

# --- verdict thresholds -------------------------------------------------------------------------------
RATE_SLOPE = -0.5          # log-log slope of the estimator's error against K for a 1/sqrt(K) rate
SLOPE_TOLERANCE = 0.2      # a fitted slope within this of RATE_SLOPE follows the rate
SE_TRACKS = (0.4, 1.5)     # mean |error| / mean reported standard error inside this range: the SE tracks the
                           # error (for a normal error the ratio is sqrt(2/pi) ~ 0.8)

# The untrained UNet of the exact-vs-estimate comparison (small images when analysis_sizes' theory_small).
UNET = {"type": "unet", "channels": [16, 32, 32], "layers_per_block": 1, "attention_head_dim": 8,
        "norm_num_groups": 8}
ESTIMATOR_SIZES = {True: {"n": 4, "image": (1, 8, 32), "side": 8, "repeats": 4},
                   False: {"n": 8, "image": (1, 16, 64), "side": 16, "repeats": 4}}


def estimator_sizes(sizes: dict) -> dict:
    """Sizes of the exact-vs-estimate demo from `ldrkit.spec.selections.analysis_sizes(profile)`: image, region side,
    inputs n and repeats by `theory_small`; probe counts K doubling from 4 to 4 x sizes["probes"]."""
    out = dict(ESTIMATOR_SIZES[bool(sizes["theory_small"])])
    top, ks = 4 * sizes["probes"], [4]
    while ks[-1] * 2 <= top:
        ks.append(ks[-1] * 2)
    out["probes"] = tuple(ks)
    return out


# --- one trained network, three outputs -----------------------------------------------------------------

def ldr_outputs(run: Run, step: int | None = None, n: int | None = None, seed: int = 0) -> dict:
    """Exact LDR of a run's network at one checkpoint (default: the last) for every output of `ldr.OUTPUTS`
    at the five levels, on n draws from p_t (default: the spec's eval.ldr_samples), cached in the run.

    Returns {"step", "position", "n", "<output>": {level: mean}, "<output>_sem": {level: sem}}.
    """
    step = run.steps()[-1] if step is None else int(step)
    n = int(n if n is not None else run.config["eval"]["ldr_samples"])
    position = run.config["eval"]["ldr_position"]
    setup = run.setup

    def compute(model, _step: int) -> dict:
        table, sems = L.ldr_levels(model, setup.schedule, setup.renderer.region(position), setup.train_data,
                                   outputs=L.OUTPUTS, n=n, seed=seed, with_sem=True)
        return {**table, **{f"{o}_sem": sems[o] for o in L.OUTPUTS}}

    row = run.cached("ldr_outputs", {"n": n, "seed": seed, "position": position}, [step], compute)[0]
    return {**row, "position": position, "n": n}


def plot_ldr_outputs(result: dict, run: Run):
    """LDR against sqrt(alpha_bar) for each output, with standard errors and the 1/L no-locality line."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for o, style in zip(L.OUTPUTS, ("o-", "s-", "x--")):  # x0 and eps_minus_identity coincide: distinct markers
        levels = list(result[o])
        ax.errorbar([float(k) for k in levels], [result[o][k] for k in levels],
                    yerr=[result[f"{o}_sem"][k] for k in levels], fmt=style, capsize=3, label=o)
    ax.set(xlabel=r"$\sqrt{\bar\alpha}$", ylabel="LDR", ylim=(0, 1.05))
    length = run.setup.renderer.signal_shape[0]
    ax.axhline(1 / length, color="grey", lw=0.8, ls=":", label="1/L (no locality)")
    ax.set_title(f"parity MLP, L={length}, step {result['step']}, position {result['position']}")
    ax.legend(fontsize=8)
    return fig


# --- the exact parity denoiser ----------------------------------------------------------------------------

def exact_parity_ldr(length: int = 8, position: int = 1, n: int = 32, seed: int = 0) -> dict:
    """LDR (eps and x0) of the exact denoiser of uniform parity on {+-1}^length (`FiniteSetDenoiser` over
    all 2^(length-1) sequences) for the coordinate `position`, at the five levels."""
    schedule = Schedule()
    support = torch.as_tensor(Parity(length).enumerate(), dtype=torch.float32)
    region = torch.zeros(length, dtype=torch.bool)
    region[position] = True
    return L.ldr_levels(FiniteSetDenoiser(support, schedule), schedule, region, support, outputs=("eps", "x0"),
                        n=n, seed=seed)


def plot_exact_parity(table: dict, length: int = 8):
    """The exact parity denoiser's LDR against sqrt(alpha_bar), with the 1/L line."""
    fig, ax = plt.subplots(figsize=(5.5, 3.0))
    plot_ldr_levels({f"exact parity denoiser, {o}": v for o, v in table.items()}, ax=ax)
    ax.axhline(1 / length, color="grey", lw=0.8, ls=":", label=f"1/{length}")
    ax.legend(fontsize=8)
    return fig


def levels_rows(tables: dict[str, dict]) -> list[dict]:
    """One row per named {level: value} dict, one column per sqrt(alpha_bar) level."""
    return [{"": name, **{f"sqrt(abar)={k}": v for k, v in values.items()}} for name, values in tables.items()]


# --- exact rows against random probes ------------------------------------------------------------------

@dataclass
class ProbeDemo:
    """An untrained UNet, a square output region, noised +-1 images and their timestep."""

    model: torch.nn.Module
    schedule: Schedule
    region: torch.Tensor
    inputs: torch.Tensor
    t: int

    def describe(self) -> dict:
        return {"parameters": count_parameters(self.model), "image": "x".join(map(str, self.region.shape)),
                "|R|": int(self.region.sum()), "inputs": len(self.inputs), "timestep": self.t}


def unet_demo(sizes: dict, seed: int = 0, sqrt_alpha_bar: float = 0.5) -> ProbeDemo:
    """The untrained UNet of `UNET` on images of sizes["image"] (estimator_sizes), region a side x side square
    in the second block of columns, sizes["n"] noised draws from a stand-in set of 64 random +-1 images."""
    torch.manual_seed(seed)
    shape, side = tuple(sizes["image"]), sizes["side"]
    model = build_model(dict(UNET), shape).eval()
    region = torch.zeros(shape, dtype=torch.bool)
    region[:, :side, side:2 * side] = True
    gen = torch.Generator().manual_seed(seed)
    images = torch.sign(torch.randn(64, *shape, generator=gen))
    schedule = Schedule()
    t = schedule.timestep_for(sqrt_alpha_bar)
    return ProbeDemo(model, schedule, region, L.noised_inputs(images, schedule, t, sizes["n"], gen), t)


def exact_vs_estimate(demo: ProbeDemo, probes=(4, 8, 16, 32, 64, 128), repeats: int = 4,
                      seed: int = 0) -> tuple[L.LDRResult, list[dict]]:
    """The exact eps-LDR of the demo and, per probe count K, the estimate's per-sample absolute error
    (mean and its standard error over inputs x repeats) and the mean standard error it reports."""
    exact = L.ldr(demo.model, demo.schedule, demo.region, inputs=demo.inputs, t=demo.t)["eps"]
    rows = []
    for k in probes:
        errs, ses = [], []
        for r in range(repeats):
            est = L.ldr(demo.model, demo.schedule, demo.region, inputs=demo.inputs, t=demo.t, method="estimate",
                        probes=k, seed=seed * 1000 + r)["eps"]
            errs.append((est.values - exact.values).abs())
            ses.append(est.estimator_se)
        errs = torch.cat(errs)
        rows.append({"probes": k, "mean |error|": float(errs.mean()),
                     "error sem": float(errs.std() / math.sqrt(len(errs))) if len(errs) > 1 else float("nan"),
                     "mean reported se": float(torch.cat(ses).mean())})
    return exact, rows


def error_slope(rows: list[dict]) -> float:
    """Least-squares slope of log(mean |error|) against log(K)."""
    ks = np.log([r["probes"] for r in rows])
    errs = np.log([r["mean |error|"] for r in rows])
    return float(np.polyfit(ks, errs, 1)[0])


def se_ratio(rows: list[dict]) -> float:
    """Mean over K of (mean |error|) / (mean reported standard error)."""
    return float(np.mean([r["mean |error|"] / r["mean reported se"] for r in rows]))


def estimator_verdict(rows: list[dict]) -> str:
    """Whether the estimate's error falls as 1/sqrt(K) (slope within SLOPE_TOLERANCE of RATE_SLOPE) and
    whether its reported standard error tracks the error (ratio inside SE_TRACKS)."""
    if len(rows) < 2:
        return "undecided: fewer than two probe counts"
    rate = abs(error_slope(rows) - RATE_SLOPE) <= SLOPE_TOLERANCE
    tracks = SE_TRACKS[0] <= se_ratio(rows) <= SE_TRACKS[1]
    first = "the error falls as 1/sqrt(K)" if rate else "the error does not fall as 1/sqrt(K)"
    second = "the reported standard error tracks it" if tracks else "the reported standard error does not track it"
    return f"{first}, and {second}"


def plot_estimator_error(rows: list[dict]):
    """Mean |estimate - exact| (with its standard error), the mean reported standard error and a 1/sqrt(K)
    guide against K, log-log."""
    ks = [r["probes"] for r in rows]
    err = [r["mean |error|"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.errorbar(ks, err, yerr=[r["error sem"] for r in rows], fmt="o-", capsize=3, label="mean |estimate - exact|")
    ax.plot(ks, [r["mean reported se"] for r in rows], "s--", label="mean reported standard error")
    ax.plot(ks, [err[0] * math.sqrt(ks[0] / k) for k in ks], ":", color="grey", label=r"$\propto 1/\sqrt{K}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set(xlabel="probes K", ylabel="per-sample error")
    ax.legend(fontsize=8)
    return fig


# --- saliency heatmaps -----------------------------------------------------------------------------------

def saliency_panels(demo: ProbeDemo, probes: int = 128, seed: int = 0) -> dict[str, L.LDRResult]:
    """Heatmaps of the demo's first input: exact eps and x0, and eps estimated with `probes` probes."""
    x = demo.inputs[:1]
    exact = L.ldr(demo.model, demo.schedule, demo.region, inputs=x, t=demo.t, outputs=("eps", "x0"),
                  return_saliency=True)
    est = L.ldr(demo.model, demo.schedule, demo.region, inputs=x, t=demo.t, method="estimate", probes=probes,
                seed=seed, return_saliency=True)["eps"]
    return {"eps, exact": exact["eps"], "x0, exact": exact["x0"], f"eps, {probes} probes": est}


def _show_heat(ax, heat: np.ndarray, region: torch.Tensor, title: str) -> None:
    im = ax.imshow(heat.sum(0), cmap="magma", aspect="auto")
    ys, xs = np.nonzero(region.numpy().any(0))
    ax.add_patch(plt.Rectangle((xs.min() - 0.5, ys.min() - 0.5), np.ptp(xs) + 1, np.ptp(ys) + 1,
                               fill=False, ec="cyan", lw=1.2))
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    plt.colorbar(im, ax=ax, fraction=0.025)


def plot_saliency_panels(panels: dict[str, L.LDRResult], region: torch.Tensor):
    """One heatmap per panel (summed over channels), the region outlined, its LDR in the title."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2 * len(panels)), squeeze=False)
    for ax, (name, res) in zip(axes[:, 0], panels.items()):
        se = f" +- {float(res.estimator_se[0]):.3f}" if res.estimator_se is not None else ""
        _show_heat(ax, res.saliency[0], region, f"{name}: LDR {res.mean:.3f}{se}")
    fig.tight_layout()
    return fig


def saliency_check(result: L.LDRResult, region: torch.Tensor) -> dict:
    """The heatmap's total, its part inside the region over the total, and the sample's LDR (equal to it)."""
    heat = result.saliency[0]
    return {"heatmap sum": float(heat.sum()), "inside R / total": float(heat[region.numpy()].sum() / heat.sum()),
            "LDR": float(result.values[0])}


# --- LDR over training and the explorer ----------------------------------------------------------------

def ldr_training_rows(rows: list[dict], outputs=("eps", "x0")) -> list[dict]:
    """`overtraining.ldr_over_training` rows flattened for a table: step, then output@level columns."""
    return [{"step": r["step"], **{f"{o}@{lv}": r[o][lv] for o in outputs for lv in r[o]}} for r in rows]


def plot_ldr_training(rows: list[dict], outputs=("eps", "x0")):
    """One panel per output: LDR against step, one line per noise level."""
    fig, axes = plt.subplots(1, len(outputs), figsize=(4.5 * len(outputs), 3), sharey=True, squeeze=False)
    for ax, o in zip(axes[0], outputs):
        plot_ldr_over_training(rows, key=o, ax=ax, title=f"{o}-LDR over training")
    axes[0, -1].legend(fontsize=7)
    return fig


def explorer_view(run: Run, step: int, level: float, position: int, sample: int = 0, seed: int = 0) -> dict:
    """One sample's saliency (eps and x0) for a checkpoint, a noise level and a region (symbol position):
    {"step", "level", "position", "sample", "region", "<output>": heat (L,), "<output>_ldr": value}."""
    setup = run.setup
    t = setup.schedule.timestep_for(level)
    x = L.noised_inputs(setup.train_data, setup.schedule, t, sample + 1, torch.Generator().manual_seed(seed))[sample:]
    region = setup.renderer.region(position)
    res = L.ldr(run.model(step), setup.schedule, region, inputs=x, t=t, outputs=("eps", "x0"), return_saliency=True)
    view = {"step": step, "level": level, "position": position, "sample": sample, "region": region.numpy()}
    for o in ("eps", "x0"):
        view[o], view[f"{o}_ldr"] = res[o].saliency[0], res[o].mean
    return view


def plot_explorer(view: dict):
    """The explorer's figure: squared Jacobian column norm per input coordinate, the region in red."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.6))
    colors = ["tab:red" if inside else "tab:blue" for inside in view["region"]]
    for ax, o in zip(axes, ("eps", "x0")):
        ax.bar(range(len(view[o])), view[o], color=colors)
        ax.set_title(f"{o}: LDR {view[f'{o}_ldr']:.3f}", fontsize=9)
        ax.set_xlabel("input coordinate")
    axes[0].set_ylabel("squared column norm")
    fig.suptitle(f"step {view['step']}, sqrt(abar) {view['level']}, position {view['position']}, "
                 f"sample {view['sample']}", fontsize=9)
    fig.tight_layout()
    return fig


def explorer(run: Run, seed: int = 0) -> Callable:
    """The explorer's callback for ipywidgets.interact: explore(step, level, position, sample) draws and shows
    the view (defaults: the last checkpoint, sqrt(abar) 0.5, the spec's LDR position, sample 0)."""
    def explore(step: int | None = None, level: float = 0.5, position: int | None = None, sample: int = 0):
        step = run.steps()[-1] if step is None else step
        position = run.config["eval"]["ldr_position"] if position is None else position
        plot_explorer(explorer_view(run, step, level, position, sample, seed))
        plt.show()
    return explore
