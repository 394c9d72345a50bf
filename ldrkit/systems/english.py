"""Common English words as images (section 6, appendix A.7.4): lexicon, renderer, per-letter reader.

- `english_lexicon`: the most frequent English words from the `wordfreq` package (its "en" top
  list, a maintained frequency table that installs with pip and ships its data), keeping words of
  lowercase letters a-z only, `min_length` to `max_length` letters, the first `size` of them in
  frequency order.
- `EnglishWords`: the grammar over that finite lexicon. A sequence is `length` symbols, 0..25 for
  'a'..'z' and 26 for the padding (a blank cell after the word). `is_valid` = the row is a lexicon
  word; `enumerate` = the lexicon, so `Grammar.split` gives the in-dataset / held-out words.
- `EnglishRenderer`: one square `cell` per letter, drawn with Pillow from DejaVu Sans Mono (the
  monospace font matplotlib ships) on a common baseline, so a letter's size and height (x-height,
  ascenders, descenders) are the font's; read back cell by cell: a blank cell is the padding, any
  other cell goes through `ocr.TemplateOCR` against the 26 letter templates.

A legible string that is a lexicon word is in-dataset (or extrapolation if held out); a legible
string that is not a word is a hallucination (a misspelling); an illegible cell makes the sample
invalid (see `categorize`).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .grammars import Grammar
from .ocr import TemplateOCR, split_cells
from .render import Decoded, Renderer, box_downsample, cell_region, cells_to_row

LETTERS = "abcdefghijklmnopqrstuvwxyz"
PAD = 26


@lru_cache(maxsize=None)
def _top_words(language: str, n: int) -> tuple[str, ...]:
    import wordfreq
    return tuple(wordfreq.top_n_list(language, n))


def top_matching(language: str, size: int, keep, what: str) -> list[str]:
    """The first `size` entries of wordfreq's `language` top list for which keep(entry) holds, in frequency order.

    The top list is read in growing prefixes (a longer list starts with the shorter one), so the
    result does not depend on how far it had to read.
    """
    n = 4 * size
    while True:
        found = [w for w in _top_words(language, n) if keep(w)]
        if len(found) >= size or n >= 1_000_000:
            break
        n *= 4
    if len(found) < size:
        raise ValueError(f"wordfreq has only {len(found)} {what}, asked for {size}")
    return found[:size]


def english_lexicon(size: int = 1000, min_length: int = 1, max_length: int = 4) -> list[str]:
    """The `size` most frequent English words of `min_length`..`max_length` letters a-z (wordfreq's "en" list)."""
    pattern = re.compile(f"[a-z]{{{min_length},{max_length}}}")
    return top_matching("en", size, pattern.fullmatch, f"words of {min_length}-{max_length} letters")


def encode(words: list[str], length: int) -> np.ndarray:
    """Words -> (n, length) symbols, padded on the right with PAD."""
    out = np.full((len(words), length), PAD, dtype=np.int64)
    for i, w in enumerate(words):
        if len(w) > length:
            raise ValueError(f"{w!r} is longer than {length} letters")
        out[i, :len(w)] = [LETTERS.index(c) for c in w]
    return out


def decode_strings(tokens: np.ndarray, legible: np.ndarray | None = None) -> list[str]:
    """(n, L) symbols -> strings: letters, '_' for padding, '?' for an illegible cell."""
    legible = np.ones(tokens.shape, dtype=bool) if legible is None else legible
    return ["".join(("?" if not ok else "_" if t == PAD else LETTERS[t]) for t, ok in zip(row, oks))
            for row, oks in zip(tokens, legible)]


class EnglishWords(Grammar):
    """Strings of `length` cells that spell one of the lexicon's words (then padding)."""

    name = "english-words"
    symbols = tuple(range(27))

    def __init__(self, size: int = 1000, min_length: int = 1, max_length: int = 4, length: int | None = None):
        self.words = english_lexicon(size, min_length, max_length)
        self.length = int(length or max_length)
        self._support = encode(self.words, self.length)
        self._index = {row.tobytes(): i for i, row in enumerate(self._support)}

    def enumerate(self) -> np.ndarray:
        return self._support.copy()

    def is_valid(self, seqs: np.ndarray) -> np.ndarray:
        seqs = self._check_shape(seqs).astype(np.int64)
        return np.array([row.tobytes() in self._index for row in seqs], dtype=bool)

    def __repr__(self) -> str:
        return f"EnglishWords({len(self.words)} words, L={self.length})"


def mono_font_path() -> Path:
    """DejaVu Sans Mono, the monospace font inside matplotlib's own data (no system fonts)."""
    import matplotlib
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSansMono.ttf"
    if not path.exists():
        raise FileNotFoundError(f"matplotlib's DejaVu Sans Mono not found at {path}")
    return path


def draw_letters(chars: str, draw_size: int, font_path: str | Path, fill: float = 0.9) -> np.ndarray:
    """Each character into its own draw_size square, coverage in [0, 1], all on one baseline.

    One font size for all characters: the union of their ink boxes (ascenders to descenders)
    takes `fill` of the square's height; each glyph is centred on its advance width.
    """
    from PIL import Image, ImageDraw, ImageFont

    def boxes(size: float):
        font = ImageFont.truetype(str(font_path), size=size)
        return font, [font.getbbox(c, anchor="ls") for c in chars]

    _, b = boxes(100)
    height = max(x[3] for x in b) - min(x[1] for x in b)
    font, b = boxes(100 * fill * draw_size / height)
    top, bottom = min(x[1] for x in b), max(x[3] for x in b)
    baseline = (draw_size - (bottom - top)) / 2 - top
    out = []
    for c in chars:
        img = Image.new("L", (draw_size, draw_size), 0)
        ImageDraw.Draw(img).text((draw_size / 2, baseline), c, fill=255, font=font, anchor="ms")
        out.append(np.asarray(img, dtype=np.float64) / 255.0)
    return np.stack(out)


class EnglishRenderer(Renderer):
    """A word as a row of `length` letter cells (1 channel, cell x cell*length), padding drawn blank.

    Reading: a cell whose pixel standard deviation is below `blank_std` and whose mean lies within
    0.5 of the background (-1) is the padding. Every other cell is read as its nearest letter
    template (Euclidean distance, cell and templates each minus their mean pixel value, so an
    overall brightness shift, bounded by TemplateOCR's brightness check, does not count) and is
    legible when (a) its root-mean-square pixel distance to that template is at most `max_rms`
    (default 0.3, on the [-1, 1] scale), (b) it is unambiguous:
    its distance to the nearest template is at most `ratio` (default 0.8) times its distance to the
    second nearest, and (c) it passes `ocr.TemplateOCR`'s correlation, contrast and brightness
    checks against that template (thresholds in `ocr`; the correlation *margin* is not used:
    letters such as 'h' and 'n' correlate 0.92 at 12 px, so a margin rule rejects clean renders).
    The LDR region of a position is its cell; a list of positions gives the union of their cells
    (the paper's R = the first and second letter is [0, 1]).
    """

    symbols = tuple(range(27))

    def __init__(self, length: int, cell: int = 12, draw_size: int | None = None, fill: float = 0.9,
                 blank_std: float = 0.15, max_rms: float = 0.3, ratio: float = 0.8, ocr: dict | None = None):
        self.length, self.cell = int(length), int(cell)
        self.draw_size = int(draw_size or 4 * cell)
        if self.draw_size % self.cell:
            raise ValueError(f"draw_size {self.draw_size} must be a multiple of the cell size {cell}")
        self.blank_std, self.fill, self.max_rms, self.ratio = float(blank_std), fill, float(max_rms), float(ratio)
        drawn = draw_letters(LETTERS, self.draw_size, mono_font_path(), fill)
        self.templates = torch.as_tensor(box_downsample(drawn, self.cell), dtype=torch.float32)   # (26, c, c)
        blank = torch.full((1, self.cell, self.cell), -1.0)
        self._cells = torch.cat([self.templates, blank])                                         # (27, c, c)
        self.ocr = TemplateOCR(self.templates, tuple(range(26)), **{**(ocr or {}), "min_margin": 0.0})

    @property
    def signal_shape(self) -> tuple[int, ...]:
        return (1, self.cell, self.cell * self.length)

    def render(self, seqs: np.ndarray) -> torch.Tensor:
        seqs = self._check_tokens(seqs)
        return cells_to_row(self._cells[torch.as_tensor(seqs, dtype=torch.long)])

    def render_words(self, words: list[str]) -> torch.Tensor:
        return self.render(encode(words, self.length))

    def decode(self, x: torch.Tensor) -> Decoded:
        x = self._check_signal(x)
        cells = split_cells(x, self.length, self.cell)                                         # (n, L, P)
        flat = self.templates.reshape(26, -1)
        centred = cells - cells.mean(-1, keepdim=True)
        dist = torch.cdist(centred, (flat - flat.mean(-1, keepdim=True)).expand(len(cells), -1, -1))
        top = dist.topk(2, dim=-1, largest=False)
        best, second, nearest = top.values[..., 0], top.values[..., 1], top.indices[..., 0]
        unambiguous = (best <= self.max_rms * cells.shape[-1] ** 0.5) & (best <= self.ratio * second)
        r = self.ocr.read(x, self.length)
        # TemplateOCR's checks (correlation, contrast, brightness) against the nearest template.
        same = torch.as_tensor(r.tokens) == nearest
        letter = (unambiguous & same).numpy() & r.legible
        blank = ((cells.std(-1) < self.blank_std) & ((cells.mean(-1) + 1).abs() <= 0.5)).numpy()
        tokens = np.where(blank, PAD, nearest.numpy())
        return Decoded(tokens=tokens.astype(np.int64), legible=blank | letter)

    def read_strings(self, x: torch.Tensor) -> list[str]:
        d = self.decode(x)
        return decode_strings(d.tokens, d.legible)

    def region(self, position) -> torch.Tensor:
        return cell_region(self.signal_shape, self.cell, self.length, position)
