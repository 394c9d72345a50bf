"""Renderings h: tokens -> ambient signal, and their decoders (the inverse, or "illegible").

Every renderer turns an integer array of shape (n, L) into a float tensor of shape
(n, *signal_shape) and decodes such a tensor back into `Decoded` tokens with a per-symbol
legibility flag. Image renderers (glyphs, digits, fonts) follow the same two methods.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Decoded:
    """Tokens read back from a signal; `legible[k, j]` is False where symbol j of sample k is unreadable."""

    tokens: np.ndarray
    legible: np.ndarray

    @property
    def all_legible(self) -> np.ndarray:
        return self.legible.all(axis=1)


class Renderer:
    """Maps sequences of symbols to signals and back."""

    symbols: tuple[int, ...]
    length: int

    @property
    def signal_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def render(self, seqs: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, x: torch.Tensor) -> Decoded:
        raise NotImplementedError

    def region(self, position: int) -> torch.Tensor:
        """Boolean mask over the signal covering the symbol at `position` (for LDR)."""
        raise NotImplementedError

    def _check_signal(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.signal_shape:
            raise ValueError(f"expected signals of shape (n, {', '.join(map(str, self.signal_shape))}), got {tuple(x.shape)}")
        return x.detach().float().cpu()

    def _check_tokens(self, seqs: np.ndarray) -> np.ndarray:
        seqs = np.asarray(seqs)
        if seqs.ndim != 2 or seqs.shape[1] != self.length:
            raise ValueError(f"expected token arrays of shape (n, {self.length}), got {seqs.shape}")
        if not np.isin(seqs, self.symbols).all():
            raise ValueError(f"tokens outside the alphabet {self.symbols}")
        return seqs


class ScalarRenderer(Renderer):
    """h(s) = s: each symbol is one coordinate, the sequence a point of the hypercube.

    Decoding reads coordinate j as the nearest symbol if it lies within `tolerance` of it,
    and as illegible otherwise. With symbols +-1 and the default tolerance 0.5, a value is
    legible when 0.5 <= |x| <= 1.5: closer to a vertex than to the midpoint 0 between them.
    """

    def __init__(self, length: int, symbols: tuple[int, ...] = (1, -1), tolerance: float = 0.5):
        self.length, self.symbols, self.tolerance = length, tuple(symbols), tolerance

    @property
    def signal_shape(self) -> tuple[int, ...]:
        return (self.length,)

    def render(self, seqs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(self._check_tokens(seqs), dtype=torch.float32)

    def decode(self, x: torch.Tensor) -> Decoded:
        x = self._check_signal(x).numpy()
        values = np.array(self.symbols, dtype=np.float32)
        dist = np.abs(x[..., None] - values)
        nearest = dist.argmin(axis=-1)
        return Decoded(tokens=values[nearest].astype(np.int64), legible=dist.min(axis=-1) <= self.tolerance)

    def region(self, position: int) -> torch.Tensor:
        mask = torch.zeros(self.length, dtype=torch.bool)
        mask[position] = True
        return mask


class EmbeddingRenderer(Renderer):
    """h(s) = o_s: each symbol a fixed random vector in R^k (seeded), concatenated along the sequence.

    The templates are drawn from N(0, I_k) and rescaled to norm sqrt(k), so every coordinate
    has unit scale like the scalar rendering. A block is decoded as the nearest template if
    its distance is below `tolerance` times the distance between the two closest templates,
    and as illegible otherwise.
    """

    def __init__(self, length: int, dim: int, symbols: tuple[int, ...] = (1, -1), seed: int = 0, tolerance: float = 0.5):
        self.length, self.dim, self.symbols, self.tolerance = length, dim, tuple(symbols), tolerance
        g = torch.Generator().manual_seed(seed)
        templates = torch.randn(len(self.symbols), dim, generator=g)
        self.templates = templates / templates.norm(dim=1, keepdim=True) * dim**0.5
        self._separation = torch.cdist(self.templates, self.templates).masked_fill(
            torch.eye(len(self.symbols), dtype=torch.bool), float("inf")).min().item()

    @property
    def signal_shape(self) -> tuple[int, ...]:
        return (self.length * self.dim,)

    def render(self, seqs: np.ndarray) -> torch.Tensor:
        seqs = self._check_tokens(seqs)
        index = torch.as_tensor((seqs[..., None] == np.array(self.symbols)).argmax(axis=-1))
        return self.templates[index].reshape(len(seqs), -1)

    def decode(self, x: torch.Tensor) -> Decoded:
        blocks = self._check_signal(x).reshape(-1, self.length, self.dim)
        dist = torch.cdist(blocks, self.templates.expand(len(blocks), -1, -1))
        best, nearest = dist.min(dim=-1)
        tokens = np.array(self.symbols)[nearest.numpy()]
        return Decoded(tokens=tokens.astype(np.int64), legible=(best <= self.tolerance * self._separation).numpy())

    def region(self, position: int) -> torch.Tensor:
        mask = torch.zeros(self.length, self.dim, dtype=torch.bool)
        mask[position] = True
        return mask.reshape(-1)
