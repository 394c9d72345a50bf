"""Common Chinese characters as images (section 6, appendix A.7.4): lexicon, renderer, nearest-character reader.

- `chinese_lexicon`: the `size` most frequent single Han characters of the `wordfreq` package's
  "zh" top list (a maintained frequency table of Chinese words that installs with pip and ships
  its data; its entries are words, so we keep the one-character ones, in frequency order).
- `ChineseChars`: the grammar over that finite lexicon; a sequence is one symbol, the character's
  index 0..size-1. `Grammar.split` gives the in-dataset / held-out characters.
- `HanziRenderer`: one character per `size` x `size` image (1 channel), drawn with Pillow from
  Noto Sans CJK SC, the font file that the `mplfonts` package ships (no Kai-style CJK font is
  packaged on PyPI that we found; the paper used a Kai font), located through the installed
  package's files, not the system's fonts.

Reading (`HanziRenderer.read`), per image:
- distance = root-mean-square pixel difference to the nearest lexicon character's render;
- the image *is* that character when the distance is at most `match` times the lexicon's own
  median nearest-neighbour distance (the typical gap between two distinct characters);
- otherwise, it is an *invented character* (a hallucination: legible strokes that form no lexicon
  character) when it is *sharp*, and illegible (invalid) when it is not. Sharp means its ink
  statistics look like those of real glyphs: its *grey share* (among the pixels that are not
  background, x > -0.5, the fraction that are grey, |x| < 0.5, rather than ink, x >= 0.5) at most
  the largest grey share among the lexicon's renders plus `grey_slack` (default 0.1), and its ink
  coverage (fraction of pixels > 0) within the lexicon's range widened by the factor `ink_factor`
  (default 1.5: from min / 1.5 to max * 1.5), so a blank or a blot is not a character; and its
  *roughness* (mean absolute difference of neighbouring pixels, across and down) at most
  `rough_factor` (default 1.2) times the lexicon's largest, so pixel noise (or an untrained model's
  wild values) is not one.
  Blur turns strokes into grey ramps: at 24 px the lexicon's grey shares lie in 0.17-0.67 and a
  Gaussian blur of 0.7 pixel already lifts every character above 0.83.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .english import top_matching
from .grammars import Grammar
from .render import Decoded, Renderer, box_downsample


def is_han(ch: str) -> bool:
    """A CJK unified ideograph (basic block or extension A)."""
    return len(ch) == 1 and ("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf")


def chinese_lexicon(size: int = 1000) -> list[str]:
    """The `size` most frequent single Han characters in wordfreq's "zh" list, most frequent first."""
    return top_matching("zh", size, is_han, "single Han characters")


def cjk_font_path(name: str = "NotoSansCJKsc-Regular.otf") -> Path:
    """A CJK font file shipped inside the installed `mplfonts` package."""
    from importlib.resources import files
    path = Path(str(files("mplfonts") / "fonts" / name))
    if not path.exists():
        raise FileNotFoundError(f"{name} not found in the mplfonts package ({path.parent})")
    return path


def draw_chars(chars: list[str], draw_size: int, font_path: str | Path, fill: float = 0.9) -> np.ndarray:
    """Each character centred in its own draw_size square at one font size (em = `fill` of the square); coverage in [0, 1]."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path), size=max(1, int(round(fill * draw_size))))
    out = np.empty((len(chars), draw_size, draw_size))
    for i, c in enumerate(chars):
        img = Image.new("L", (draw_size, draw_size), 0)
        ImageDraw.Draw(img).text((draw_size / 2, draw_size / 2), c, fill=255, font=font, anchor="mm")
        out[i] = np.asarray(img, dtype=np.float64) / 255.0
    return out


class ChineseChars(Grammar):
    """One symbol, the index of a lexicon character; every index is valid."""

    name = "chinese-chars"
    length = 1

    def __init__(self, size: int = 1000, length: int = 1):
        if length != 1:
            raise ValueError(f"a Chinese character is one symbol, got length {length}")
        self.chars = chinese_lexicon(size)
        self.symbols = tuple(range(len(self.chars)))

    def enumerate(self) -> np.ndarray:
        return np.arange(len(self.chars), dtype=np.int64)[:, None]

    def is_valid(self, seqs: np.ndarray) -> np.ndarray:
        seqs = self._check_shape(seqs)
        return (seqs[:, 0] >= 0) & (seqs[:, 0] < len(self.chars))

    def __repr__(self) -> str:
        return f"ChineseChars({len(self.chars)} characters)"


@dataclass(frozen=True)
class HanziReading:
    """Per image: nearest lexicon index, its RMS distance, sharpness statistics and the decision."""

    nearest: np.ndarray
    distance: np.ndarray
    grey: np.ndarray       # grey share: |x| < 0.5 among the pixels with x > -0.5
    ink: np.ndarray        # fraction of pixels > 0
    roughness: np.ndarray  # mean |neighbour difference|, across plus down
    is_char: np.ndarray    # close to a lexicon character
    sharp: np.ndarray

    @property
    def decision(self) -> np.ndarray:
        """"character", "invented" (sharp, far from all) or "illegible" per image."""
        return np.where(self.is_char, "character", np.where(self.sharp, "invented", "illegible")).astype(object)


class HanziRenderer(Renderer):
    """Chinese characters as (1, size, size) images in [-1, 1] (background -1); see the module docstring for reading.

    Tokens: lexicon indices 0..n-1; a decoded invented character gets the token n (legible, not
    in the lexicon, so `categorize` calls it a hallucination). LDR regions: "left" / "right" /
    "top" / "bottom" half of the image, or "all".
    """

    def __init__(self, length: int = 1, size: int = 24, lexicon_size: int = 1000, draw_size: int | None = None,
                 fill: float = 0.9, font: str = "NotoSansCJKsc-Regular.otf", match: float = 0.5,
                 grey_slack: float = 0.1, ink_factor: float = 1.5, rough_factor: float = 1.2):
        if length != 1:
            raise ValueError(f"one character per image, got length {length}")
        self.length, self.size = 1, int(size)
        self.chars = chinese_lexicon(lexicon_size)
        self.symbols = tuple(range(len(self.chars)))
        self.draw_size = int(draw_size or 4 * self.size)
        if self.draw_size % self.size:
            raise ValueError(f"draw_size {self.draw_size} must be a multiple of the image size {size}")
        self.font = font
        drawn = draw_chars(self.chars, self.draw_size, cjk_font_path(font), fill)
        self.templates = torch.as_tensor(box_downsample(drawn, self.size), dtype=torch.float32)   # (n, s, s)
        flat = self.templates.reshape(len(self.chars), -1)
        self._flat = flat
        self.match, self.grey_slack, self.ink_factor = float(match), float(grey_slack), float(ink_factor)
        self.rough_factor = float(rough_factor)
        nn_dist = self._rms(flat, flat).fill_diagonal_(float("inf")).min(1).values
        self.nearest_gap = float(nn_dist.median())        # typical distance between two distinct characters
        grey, ink, rough = self._stats(flat, self.size)
        self.grey_max, self.rough_max = float(grey.max()), float(rough.max())
        self.ink_range = (float(ink.min()) / self.ink_factor, float(ink.max()) * self.ink_factor)

    @staticmethod
    def _rms(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cdist(a, b) / a.shape[-1] ** 0.5

    @staticmethod
    def _stats(flat: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Grey share, ink coverage and roughness of (n, size*size) images."""
        grey, ink = (flat.abs() < 0.5).float().sum(-1), (flat >= 0.5).float().sum(-1)
        img = flat.reshape(-1, size, size)
        rough = (img[:, 1:] - img[:, :-1]).abs().mean((1, 2)) + (img[:, :, 1:] - img[:, :, :-1]).abs().mean((1, 2))
        return grey / (grey + ink).clamp(min=1.0), (flat > 0).float().mean(-1), rough

    @property
    def signal_shape(self) -> tuple[int, ...]:
        return (1, self.size, self.size)

    def render(self, seqs: np.ndarray) -> torch.Tensor:
        seqs = self._check_tokens(seqs)
        return self.templates[torch.as_tensor(seqs[:, 0], dtype=torch.long)][:, None].contiguous()

    def render_chars(self, chars: str | list[str]) -> torch.Tensor:
        return self.render(np.array([[self.chars.index(c)] for c in chars]))

    def read(self, x: torch.Tensor) -> HanziReading:
        flat = self._check_signal(x).reshape(len(x), -1)
        dist = torch.cat([self._rms(chunk, self._flat) for chunk in flat.split(512)]) if len(flat) else \
            torch.zeros(0, len(self.chars))
        best, nearest = dist.min(1) if len(flat) else (torch.zeros(0), torch.zeros(0, dtype=torch.long))
        grey, ink, rough = self._stats(flat, self.size)
        sharp = ((grey <= self.grey_max + self.grey_slack) & (ink >= self.ink_range[0]) & (ink <= self.ink_range[1])
                 & (rough <= self.rough_factor * self.rough_max))
        return HanziReading(nearest=nearest.numpy(), distance=best.numpy(), grey=grey.numpy(), ink=ink.numpy(),
                            roughness=rough.numpy(),
                            is_char=(best <= self.match * self.nearest_gap).numpy(), sharp=sharp.numpy())

    def decode(self, x: torch.Tensor) -> Decoded:
        r = self.read(x)
        tokens = np.where(r.is_char, r.nearest, len(self.chars)).astype(np.int64)[:, None]
        return Decoded(tokens=tokens, legible=(r.is_char | r.sharp)[:, None])

    def region(self, position) -> torch.Tensor:
        """A half of the image by name ("left", "right", "top", "bottom") or "all"; 0 means "all"."""
        s, h = self.size, self.size // 2
        mask = torch.zeros(self.signal_shape, dtype=torch.bool)
        where = {"left": (slice(None), slice(0, h)), "right": (slice(None), slice(h, s)),
                 "top": (slice(0, h), slice(None)), "bottom": (slice(h, s), slice(None)),
                 "all": (slice(None), slice(None)), 0: (slice(None), slice(None))}
        if position not in where:
            raise ValueError(f"unknown region {position!r}; known: left, right, top, bottom, all")
        mask[(0, *where[position])] = True
        return mask
