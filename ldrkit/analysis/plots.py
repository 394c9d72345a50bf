"""Figures of the book; they draw what they are given and compute nothing beyond it."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..systems.categories import CATEGORIES

CATEGORY_COLORS = {"invalid": "#9e9e9e", "hallucination": "#e4572e", "in_dataset": "#2e86ab", "extrapolation": "#76b041"}
CATEGORY_LABELS = {"invalid": "invalid", "hallucination": "hallucination", "in_dataset": "in-dataset",
                   "extrapolation": "extrapolation"}


def plot_categories(evaluations: list[dict], ax=None, title: str | None = None):
    """Stacked area of the four category fractions over training steps (the form of the paper's Fig. 3)."""
    ax = ax or plt.gca()
    steps = [e["step"] for e in evaluations]
    stacks = [[e["categories"][c] for e in evaluations] for c in CATEGORIES]
    ax.stackplot(steps, stacks, labels=[CATEGORY_LABELS[c] for c in CATEGORIES],
                 colors=[CATEGORY_COLORS[c] for c in CATEGORIES], alpha=0.9)
    ax.set_xlim(steps[0], steps[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("training step")
    ax.set_ylabel("fraction of samples")
    if title:
        ax.set_title(title)
    return ax


def plot_ldr_over_training(evaluations: list[dict], key: str = "ldr", ax=None, title: str | None = None):
    """One line per sqrt(alpha_bar) level: LDR against training step (the form of the paper's Fig. 5)."""
    ax = ax or plt.gca()
    steps = [e["step"] for e in evaluations]
    levels = list(evaluations[0][key])
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(levels)))
    for level, color in zip(levels, colors):
        ax.plot(steps, [e[key][level] for e in evaluations], marker=".", color=color, label=f"$\\sqrt{{\\bar\\alpha}}$={level}")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("training step")
    ax.set_ylabel("LDR")
    if title:
        ax.set_title(title)
    return ax


def plot_ldr_levels(table: dict[str, dict[str, float]], ax=None, title: str | None = None, errors: dict | None = None):
    """LDR against sqrt(alpha_bar), one line per denoiser: table = {name: {"0.1": v, ...}}."""
    ax = ax or plt.gca()
    for name, values in table.items():
        xs = [float(k) for k in values]
        err = None if errors is None or name not in errors else [errors[name][k] for k in values]
        ax.errorbar(xs, list(values.values()), yerr=err, marker="o", capsize=3, label=name)
    ax.set_xlabel(r"$\sqrt{\bar\alpha_t}$")
    ax.set_ylabel("LDR")
    ax.set_ylim(0, 1.05)
    if title:
        ax.set_title(title)
    return ax


def plot_sequences(values: np.ndarray, labels: list[str] | None = None, ax=None, title: str | None = None):
    """Generated vector samples as rows of colored cells (red +1, blue -1), labelled by category."""
    ax = ax or plt.gca()
    ax.imshow(values, cmap="coolwarm_r", vmin=-1.5, vmax=1.5, aspect="auto")
    ax.set_xticks(range(values.shape[1]))
    ax.set_xticklabels([str(i + 1) for i in range(values.shape[1])])
    ax.set_yticks(range(len(values)))
    ax.set_yticklabels(labels if labels is not None else [""] * len(values))
    ax.set_xlabel("coordinate")
    if title:
        ax.set_title(title)
    return ax
