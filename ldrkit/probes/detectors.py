"""Per-sample hallucination detectors: a score for each sample from its own reverse trajectory (high = hallucination).

- "aithal" (Aithal et al., NeurIPS 2024, "Understanding hallucinations in diffusion models through mode
  interpolation"): the variance, over the last K reverse steps, of the model's predicted x0 (per pixel, then the
  mean over pixels). A sample whose prediction still moves when sampling ends sits between modes.
- "product_likeness" (built on locality): on the same states x_t, where the model's eps output lies on the line
  from the rule's exact denoiser G (score 0) to the product-of-marginals oracle P (score 1),

      s = 1 - sum_t <eps_f - eps_P, eps_G - eps_P> / sum_t ||eps_G - eps_P||^2   (sums over the last K states),

  the output-space counterpart of the coupling score kappa (`ldrkit.probes.kappa`) on the sample's own states:
  a mixture a G + (1 - a) P scores 1 - a exactly. A sample denoised as if its symbols were independent
  scores near 1. It needs both oracles (exact for the book's grammars, `ldrkit.probes.distances`); the pooled
  ratio weights each state by how much the two oracles differ there, and is undefined (NaN) where they never do.

The window is counted in the sampler's own steps (the run's DDIM steps, not the T=1000 training timesteps).
Pure: models and tensors in, arrays out.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import torch
from torch import nn

DETECTORS = ("aithal", "product_likeness")
WINDOWS = (3, 5, 10, 25)
"""Last K sampler steps tried for both detectors (of the runs' 50 DDIM steps: t below about 60 ... 500 of 1000)."""


class Recorder(nn.Module):
    """A denoiser that keeps the (t, x, eps) of its last `keep` calls (one call per sampler step)."""

    def __init__(self, model, keep: int):
        super().__init__()
        self.model, self.calls = model, deque(maxlen=keep)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = self.model(x, t)
        self.calls.append((int(t[0]), x.clone(), eps.clone()))
        return eps


def x0_variance(x0s: torch.Tensor) -> np.ndarray:
    """Aithal's score from predicted x0s (K, n, ...): per pixel variance over the K steps (ddof 1), mean over pixels."""
    if len(x0s) < 2:
        raise ValueError(f"the variance over steps needs at least two steps, got {len(x0s)}")
    return x0s.flatten(2).var(dim=0, unbiased=True).mean(dim=1).numpy()


def product_likeness(eps: torch.Tensor, eps_rule: torch.Tensor, eps_product: torch.Tensor) -> np.ndarray:
    """The pooled position of eps (K, n, ...) between the rule's (0) and the product's (1) eps over the K steps."""
    f, g, p = (e.flatten(2).double() for e in (eps, eps_rule, eps_product))
    num = ((f - p) * (g - p)).sum(dim=(0, 2))
    den = (g - p).pow(2).sum(dim=(0, 2))
    out = 1 - num / den
    return torch.where(den > 0, out, torch.full_like(out, float("nan"))).numpy()


@torch.no_grad()
def detector_scores(setup, model, n: int, seed: int = 0, num_steps: int | None = None, sampler: str = "ddim",
                    windows=WINDOWS, rule=None, product=None, batch: int = 256) -> dict:
    """Sample n signals (in batches, one seeded generator), label them and score them with both detectors.

    Returns {"labels": categories (n,), "timesteps": the last max(windows) visited t,
             "aithal": {K: (n,)}, "product_likeness": {K: (n,)} (only when rule and product oracles are given)}.
    """
    keep = max(windows)
    gen = torch.Generator().manual_seed(seed)
    labels, scores = [], {d: {k: [] for k in windows} for d in DETECTORS}
    timesteps = []
    for start in range(0, n, batch):
        m = min(batch, n - start)
        recorder = Recorder(model, keep)
        final = setup.schedule.sample(recorder, m, setup.renderer.signal_shape, gen, num_steps=num_steps,
                                      progress=False, sampler=sampler)
        labels.append(setup.categorize(final + setup.shift))
        ts, xs, eps = zip(*recorder.calls)
        timesteps = list(ts)
        x0 = torch.stack([setup.schedule.x0_from_eps(x, e, t) for t, x, e in zip(ts, xs, eps)])
        for k in windows:
            scores["aithal"][k].append(x0_variance(x0[-k:]))
        if rule is not None and product is not None:
            steps = [torch.full((m,), t, dtype=torch.long) for t in ts]
            eps_g = torch.stack([rule(x, s) for x, s in zip(xs, steps)])
            eps_p = torch.stack([product(x, s) for x, s in zip(xs, steps)])
            eps_f = torch.stack(eps)
            for k in windows:
                scores["product_likeness"][k].append(product_likeness(eps_f[-k:], eps_g[-k:], eps_p[-k:]))
    return {"labels": np.concatenate(labels), "timesteps": timesteps,
            **{d: {k: np.concatenate(v) for k, v in per.items()} for d, per in scores.items() if all(per.values())}}
