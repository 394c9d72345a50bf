"""The chapter "Probe your own model": a book model exported to diffusers, sampled by a plain diffusers pipeline and
probed through the public API (`ldrkit.probes.any_model.probe`); a text-conditioned UNet built on the spot and
probed under two prompts; and what the probe costs, measured here and on a UNet2DModel of the size of the DDPM
CIFAR-10 model (35.7M parameters)."""
from __future__ import annotations

import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel, UNet2DModel

from ..denoisers.device import cpu_name
from ..probes.any_model import ProbeResult, probe

# `measure_cost(cifar_size_unet(), region=(0, 0, 8, 8), n_exact=2, n_estimate=4)`, run once on one thread of the
# 2-core build machine while a training job used the other core (load about 4); not rerun by the chapter. A 16x16
# region (768 rows) took 136 s per input in the same conditions: the exact cost grows with the rows.
MEASURED_35M = {"parameters": 35_746_307, "cpu": "AMD EPYC", "threads": 1, "date": "2026-12-06",
                "forward_backward_batch16_s": 5.61, "exact_s_per_input": 31.33, "estimate_s_per_input": 7.89,
                "probes": 32}


def conditioned_unet(folder: str | Path, seed: int = 0) -> Path:
    """A tiny text-conditioned UNet2DConditionModel (cross-attention at the full 16x16 resolution, 32-dim token
    embeddings) with random weights, saved as a pipeline's unet/ and scheduler/ folders; returns unet/."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=8, norm_num_groups=8)
    folder = Path(folder)
    unet.save_pretrained(folder / "unet")
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)  # Stable Diffusion's
    scheduler.save_pretrained(folder / "scheduler")
    return folder / "unet"


def prompt_embeddings(seed: int, tokens: int = 6, width: int = 32) -> dict[str, torch.Tensor]:
    """Stand-ins for a text encoder's output (one prompt, batch 1): the conditioning a UNet2DConditionModel takes."""
    return {"encoder_hidden_states": torch.randn(1, tokens, width, generator=torch.Generator().manual_seed(seed))}


def cifar_size_unet(seed: int = 0) -> UNet2DModel:
    """A UNet2DModel with the configuration of Ho et al.'s DDPM CIFAR-10 model (35.7M parameters, 32x32x3), random
    weights: the size the chapter's cost is measured at."""
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
                       layers_per_block=2, attention_head_dim=None, flip_sin_to_cos=False, freq_shift=1,
                       downsample_padding=0, down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D",
                                                               "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D")).eval()


def timed_probe(*args, **kwargs) -> tuple[ProbeResult, float]:
    """`probe(*args, **kwargs)` and its wall time in seconds."""
    start = time.perf_counter()
    result = probe(*args, **kwargs)
    return result, time.perf_counter() - start


def measure_cost(net: torch.nn.Module, region=(0, 0, 8, 8), n_exact: int = 1, n_estimate: int = 4,
                 probes: int = 32, level: float = 0.5) -> dict:
    """For an unconditioned UNet2DModel: seconds per noised input of one exact LDR region and of the estimator with
    `probes` probes at one level, on standard-normal data of the network's shape, and of one forward and backward
    pass of a batch of 16 (the unit both are made of); with the CPU, thread count and date."""
    size = net.config.sample_size
    height, width = (size, size) if isinstance(size, int) else size
    data = torch.randn(max(n_exact, n_estimate), net.config.in_channels, height, width,
                       generator=torch.Generator().manual_seed(0))
    x = data[:1].expand(16, *data.shape[1:]).clone().requires_grad_(True)
    start = time.perf_counter()
    torch.autograd.grad(net(x, 500).sample.sum(), x)
    unit = time.perf_counter() - start
    common = dict(scheduler=DDPMScheduler(), data=data, outputs=("x0",), saliency=False)
    _, exact = timed_probe(net, region, [level], n=n_exact, **common)
    _, estimate = timed_probe(net, region, [level], n=n_estimate, method="estimate", probes=probes, **common)
    return {"parameters": sum(p.numel() for p in net.parameters()), "cpu": cpu_name(),
            "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
            "forward_backward_batch16_s": unit, "exact_s_per_input": exact / n_exact,
            "estimate_s_per_input": estimate / n_estimate, "probes": probes}


def _pm(res) -> str:
    """mean ± s.e., the mean alone where one input gives no standard error."""
    return f"{res.mean:.3f} ± {res.sem:.3f}" if res.sem == res.sem else f"{res.mean:.3f}"


def ldr_rows(result: ProbeResult, labels: list[str], key: str = "region") -> list[dict]:
    """One row per region and output of a probe: "mean ± s.e." of the LDR at each level."""
    return [{key: label, "output": o, **{f"√ᾱ={lv.level:g}": _pm(lv.ldr[r][o]) for lv in result.levels}}
            for r, label in enumerate(labels) for o in result.outputs]


def cost_rows(live: dict, measured: dict) -> list[dict]:
    """The two `measure_cost` records side by side: this build's small model and the 35.7M one measured once."""
    return [_cost_row("exported book UNet", live, f"in this build, {_machine(live)}"),
            _cost_row("UNet2DModel, DDPM CIFAR-10 size", measured, f"{measured['date']}, {_machine(measured)}")]


def _cost_row(model: str, cost: dict, measured: str) -> dict:
    return {"model": model, "parameters (M)": cost["parameters"] / 1e6,
            "1 unit (s)": cost["forward_backward_batch16_s"], "exact region (s/input)": cost["exact_s_per_input"],
            f"estimator, {cost['probes']} probes (s/input)": cost["estimate_s_per_input"], "measured": measured}


def _machine(cost: dict) -> str:
    return f"{cost['cpu']}, {cost['threads']} thread" + ("s" if cost["threads"] > 1 else "")


def plot_saliency(panels: dict[str, tuple[ProbeResult, str]]):
    """One row per (probe result, output), one column per level: the saliency map of the first region (mean over
    inputs and channels, each map scaled to its maximum), the region outlined, the output's LDR in the title."""
    levels = max(len(r.levels) for r, _ in panels.values())
    fig, axes = plt.subplots(len(panels), levels, figsize=(1.9 * levels, 2.1 * len(panels)), squeeze=False)
    for row, (label, (result, output)) in zip(axes, panels.items()):
        region = result.regions[0].any(0).numpy()
        for ax, lv in zip(row, result.levels):
            found = lv.ldr[0][output]
            heat = found.saliency.mean(axis=(0, 1))
            ax.imshow(heat / heat.max(), cmap="magma", vmin=0, vmax=1)
            ax.contour(region, levels=[0.5], colors="cyan", linewidths=1)
            ax.set_title(f"√ᾱ={lv.level:g}: {output}-LDR {found.mean:.2f}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(label, fontsize=8)
        for ax in row[len(result.levels):]:
            ax.axis("off")
    fig.tight_layout()
    return fig


def sample_rows(rows: dict[str, torch.Tensor]):
    """One row of images per label, each batch (n, 1, H, W) with values in [0, 1]."""
    n = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), n, figsize=(0.9 * n + 1.6, 1.0 * len(rows)), squeeze=False)
    for row, (label, batch) in zip(axes, rows.items()):
        for ax, image in zip(row, batch):
            ax.imshow(np.asarray(image[0]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig
