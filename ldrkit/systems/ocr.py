"""Reading glyph images back into symbols: per-cell template matching with a confidence rule.

An image of L symbols is a row of L square cells (see `render.GlyphRenderer`). Each cell is
compared with every symbol's template by the Pearson correlation of their pixels (so a
uniform change of brightness or contrast does not change the score), and read as the best
template only when the match is confident:

- the best correlation is at least `min_corr` (default 0.7): the cell looks like a glyph;
- it beats the runner-up by at least `min_margin` (default 0.3): the cell is not ambiguous
  (a blurred cell, or a superposition of '(' and ')', correlates with both);
- its contrast against the best template, the least-squares slope a in cell ~ a * template + b,
  lies in [`min_contrast`, `max_contrast`] (default [0.5, 2]): a faint ghost of a glyph, or a
  glyph drowned in an overall brightness change, is not a legible glyph even though
  correlation alone, being invariant to affine changes, would accept it;
- the cell's mean lies within `max_offset` (default 0.5, on the [-1, 1] pixel scale) of the
  template's mean: the background has the right brightness.

Blank (constant) cells have no correlation with anything and are illegible. With the
default glyphs (DejaVu Sans '(' and ')' drawn at 32 px, 8x8 cells) the two templates
correlate about 0.16, so clean renders are read 100% correctly with a wide margin.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Reading:
    """Per sample and cell: the best symbol, whether it is legible, and the scores behind that."""

    tokens: np.ndarray      # (n, L) symbols of the best template
    legible: np.ndarray     # (n, L) bool
    best: np.ndarray        # (n, L) best correlation
    margin: np.ndarray      # (n, L) best minus second-best correlation
    contrast: np.ndarray    # (n, L) least-squares slope against the best template
    offset: np.ndarray      # (n, L) cell mean minus template mean


def split_cells(x: torch.Tensor, length: int, cell: int) -> torch.Tensor:
    """(n, 1, cell, cell * length) images -> (n, length, cell * cell) flattened cells, left to right."""
    x = torch.as_tensor(x).detach().float().cpu()
    if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != cell or x.shape[3] != cell * length:
        raise ValueError(f"expected images of shape (n, 1, {cell}, {cell * length}), got {tuple(x.shape)}")
    n = len(x)
    return x[:, 0].reshape(n, cell, length, cell).permute(0, 2, 1, 3).reshape(n, length, cell * cell)


class TemplateOCR:
    """Template-matching reader for a row of glyph cells (see the module docstring for the rule)."""

    def __init__(self, templates: torch.Tensor, symbols: tuple[int, ...], min_corr: float = 0.7,
                 min_margin: float = 0.3, min_contrast: float = 0.5, max_contrast: float = 2.0,
                 max_offset: float = 0.5):
        templates = torch.as_tensor(templates, dtype=torch.float32)
        if templates.dim() != 3 or templates.shape[1] != templates.shape[2]:
            raise ValueError(f"templates must have shape (K, cell, cell), got {tuple(templates.shape)}")
        if len(symbols) != len(templates):
            raise ValueError(f"{len(templates)} templates for {len(symbols)} symbols")
        self.symbols = np.array(symbols)
        self.cell = templates.shape[1]
        flat = templates.reshape(len(templates), -1)
        self.means = flat.mean(1)
        centred = flat - self.means[:, None]
        self.centred = centred
        self.unit = centred / centred.norm(dim=1, keepdim=True)
        self.min_corr, self.min_margin = min_corr, min_margin
        self.min_contrast, self.max_contrast, self.max_offset = min_contrast, max_contrast, max_offset

    def template_correlation(self) -> np.ndarray:
        """The K x K correlation matrix of the templates themselves."""
        return (self.unit @ self.unit.T).numpy()

    def read(self, x: torch.Tensor, length: int) -> Reading:
        cells = split_cells(x, length, self.cell)                       # (n, L, P)
        mean = cells.mean(-1)
        centred = cells - mean[..., None]
        norm = centred.norm(dim=-1)
        safe = torch.where(norm > 1e-6, norm, torch.ones_like(norm))
        corr = torch.einsum("nlp,kp->nlk", centred, self.unit) / safe[..., None]
        corr = torch.where((norm > 1e-6)[..., None], corr, torch.zeros_like(corr))
        top = corr.topk(min(2, corr.shape[-1]), dim=-1)
        best, index = top.values[..., 0], top.indices[..., 0]
        second = top.values[..., 1] if corr.shape[-1] > 1 else torch.full_like(best, -1.0)
        tpl = self.centred[index]                                      # (n, L, P)
        contrast = (centred * tpl).sum(-1) / tpl.pow(2).sum(-1)
        offset = mean - self.means[index]
        legible = ((best >= self.min_corr) & (best - second >= self.min_margin)
                   & (contrast >= self.min_contrast) & (contrast <= self.max_contrast)
                   & (offset.abs() <= self.max_offset))
        return Reading(tokens=self.symbols[index.numpy()].astype(np.int64), legible=legible.numpy(),
                       best=best.numpy(), margin=(best - second).numpy(), contrast=contrast.numpy(),
                       offset=offset.numpy())
