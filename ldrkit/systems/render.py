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

    def _check_position(self, position) -> int:
        """A symbol position in [0, length): negative indices are refused, not wrapped to the end."""
        if isinstance(position, bool) or not isinstance(position, (int, np.integer)) or not 0 <= position < self.length:
            raise ValueError(f"position must be an integer from 0 to {self.length - 1}, got {position!r}")
        return int(position)

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
        mask[self._check_position(position)] = True
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
        mask[self._check_position(position)] = True
        return mask.reshape(-1)


def box_downsample(drawn: np.ndarray, cell: int) -> np.ndarray:
    """(..., D, D) coverage -> (..., cell, cell) pixels in [-1, 1] (background -1), by box averaging."""
    f = drawn.shape[-1] // cell
    box = drawn.reshape(*drawn.shape[:-2], cell, f, cell, f).mean(axis=(-3, -1))
    return 2.0 * box - 1.0


def cells_to_row(cells: torch.Tensor) -> torch.Tensor:
    """(n, L, c, c) symbol cells -> (n, 1, c, c * L) images, the cells side by side."""
    n, length, c, _ = cells.shape
    return cells.permute(0, 2, 1, 3).reshape(n, 1, c, c * length).contiguous()


def cell_region(signal_shape: tuple[int, ...], cell: int, length: int, position) -> torch.Tensor:
    """The LDR region of a row of cells: cell `position`, or the union of the cells of a list of positions."""
    positions = [position] if np.isscalar(position) else list(position)
    mask = torch.zeros(signal_shape, dtype=torch.bool)
    for p in positions:
        if not 0 <= int(p) < length:
            raise ValueError(f"position {p} outside 0..{length - 1}")
        mask[:, :, int(p) * cell:(int(p) + 1) * cell] = True
    return mask


def draw_glyph(char: str, draw_size: int = 32, font: str = "DejaVu Sans", fill: float = 0.9) -> np.ndarray:
    """One character rasterised by FreeType (matplotlib's ft2font) into a draw_size square, coverage in [0, 1].

    The font file is the one matplotlib ships (found by name, no fallback). The glyph is
    scaled so that its ink is `fill` of the square's height and centred on its ink bounding
    box, so '(' and ')' are mirror images of each other. Deterministic: no hinting.
    """
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font, LoadFlags

    path = font_manager.findfont(font, fallback_to_default=False)
    face = FT2Font(path)

    def raster(size: float) -> np.ndarray:
        face.clear()
        face.set_size(size, 72)
        face.set_text(char, 0.0, flags=LoadFlags.NO_HINTING)
        face.draw_glyphs_to_bitmap(antialiased=True)
        img = np.asarray(face.get_image(), dtype=np.float64) / 255.0
        rows, cols = np.flatnonzero(img.max(1) > 0), np.flatnonzero(img.max(0) > 0)
        if len(rows) == 0:
            raise ValueError(f"character {char!r} has no ink in font {path}")
        return img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]

    ink = raster(draw_size)
    ink = raster(draw_size * fill * draw_size / ink.shape[0])  # one rescale brings the ink height to `fill`
    h, w = ink.shape
    if h > draw_size or w > draw_size:
        ink = ink[:draw_size, :draw_size]
        h, w = ink.shape
    canvas = np.zeros((draw_size, draw_size))
    top, left = (draw_size - h) // 2, (draw_size - w) // 2
    canvas[top:top + h, left:left + w] = ink
    return canvas


class GlyphRenderer(Renderer):
    """Parenthesis images: one `cell` x `cell` glyph per symbol, side by side (1 channel, cell x cell*L).

    Symbol +1 is drawn as '(' and -1 as ')' (the paper's Parity and Dyck renderings). Each
    glyph is rasterised from DejaVu Sans at `draw_size` pixels (default 4 * cell), its ink
    `fill` (default 0.9) of the cell's height, and box-downsampled to the cell; pixels are -1 (background) to +1 (ink). With `jitter` = j > 0
    every glyph is shifted by a random whole number of draw pixels in [-j, j] in each direction
    before downsampling (seeded per render call by `seed`); the default 0 keeps the data a
    finite set of images, one per sequence.

    Decoding reads cell by cell with `ocr.TemplateOCR` against the unshifted templates;
    `ocr` passes its thresholds. The LDR region of a position is its cell.
    """

    def __init__(self, length: int, cell: int = 8, draw_size: int | None = None, symbols: tuple[int, ...] = (1, -1),
                 glyphs: tuple[str, ...] = ("(", ")"), font: str = "DejaVu Sans", fill: float = 0.9,
                 jitter: int = 0, seed: int = 0, ocr: dict | None = None):
        from .ocr import TemplateOCR

        self.length, self.cell, self.symbols, self.glyphs = length, cell, tuple(symbols), tuple(glyphs)
        if len(self.glyphs) != len(self.symbols):
            raise ValueError(f"{len(self.glyphs)} glyphs for {len(self.symbols)} symbols")
        self.draw_size = int(draw_size or 4 * cell)
        if self.draw_size % cell:
            raise ValueError(f"draw_size {self.draw_size} must be a multiple of the cell size {cell}")
        self.jitter, self.seed, self.font = int(jitter), seed, font
        self.fill = fill
        self._drawn = [draw_glyph(g, self.draw_size, font, fill) for g in self.glyphs]
        self.templates = torch.stack([self._downsample(d) for d in self._drawn])  # (K, cell, cell)
        self.ocr = TemplateOCR(self.templates, self.symbols, **(ocr or {}))

    def _downsample(self, drawn: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(box_downsample(drawn, self.cell), dtype=torch.float32)

    @property
    def signal_shape(self) -> tuple[int, ...]:
        return (1, self.cell, self.cell * self.length)

    def render(self, seqs: np.ndarray) -> torch.Tensor:
        seqs = self._check_tokens(seqs)
        index = torch.as_tensor((seqs[..., None] == np.array(self.symbols)).argmax(axis=-1))  # (n, L)
        if self.jitter:
            rng = np.random.default_rng(self.seed)
            cells = torch.empty(*index.shape, self.cell, self.cell)
            shifts = rng.integers(-self.jitter, self.jitter + 1, size=(*index.shape, 2))
            for k in range(index.shape[0]):
                for j in range(index.shape[1]):
                    drawn = np.roll(self._drawn[int(index[k, j])], tuple(shifts[k, j]), axis=(0, 1))
                    cells[k, j] = self._downsample(drawn)
        else:
            cells = self.templates[index]                                # (n, L, cell, cell)
        return cells_to_row(cells)

    def read(self, x: torch.Tensor):
        """The OCR's full reading (scores included), see `ocr.Reading`."""
        return self.ocr.read(self._check_signal(x), self.length)

    def decode(self, x: torch.Tensor) -> Decoded:
        r = self.read(x)
        return Decoded(tokens=r.tokens, legible=r.legible)

    def region(self, position) -> torch.Tensor:
        return cell_region(self.signal_shape, self.cell, self.length, position)
