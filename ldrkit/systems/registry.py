"""The registry of symbol systems: every rule P_G and every renderer h (with its reader h^-1) by name.

One pattern for every system: a grammar class (rule: sample, validate, enumerate, split) and a
renderer class (render, decode, region), each registered here under the name a spec uses.
Parity and Dyck words are rules over the two symbols +-1, drawn as points of the hypercube
(`render.ScalarRenderer`, `render.EmbeddingRenderer`) or as parenthesis glyphs
(`render.GlyphRenderer`, read by template matching in `ocr`); digit sums, English words and
Chinese characters each come with the renderer and reader of their own symbols
(`digits`, `text`, `hanzi`). Adding a system means adding its classes to the two dicts below.
"""
from __future__ import annotations

from .chinese import ChineseChars, HanziRenderer
from .digits import DigitSum, QuarterDigitRenderer
from .english import EnglishRenderer, EnglishWords
from .grammars import Dyck, Grammar, Parity
from .render import EmbeddingRenderer, GlyphRenderer, Renderer, ScalarRenderer

GRAMMARS: dict[str, type[Grammar]] = {"parity": Parity, "dyck": Dyck, "digit-sum": DigitSum,
                                      "english-words": EnglishWords, "chinese-chars": ChineseChars}
RENDERERS: dict[str, type[Renderer]] = {"scalar": ScalarRenderer, "embedding": EmbeddingRenderer,
                                        "glyph": GlyphRenderer, "quarter-digits": QuarterDigitRenderer,
                                        "english": EnglishRenderer, "hanzi": HanziRenderer}


def get_grammar(name: str, **kwargs) -> Grammar:
    """Build a grammar by name; an unknown name lists the known ones."""
    if name not in GRAMMARS:
        raise ValueError(f"unknown grammar {name!r}; known grammars: {', '.join(sorted(GRAMMARS))}")
    return GRAMMARS[name](**kwargs)


def build_grammar(spec: dict) -> Grammar:
    """A grammar from a spec entry {"name": ..., **arguments}."""
    spec = dict(spec)
    return get_grammar(spec.pop("name"), **spec)


def build_renderer(spec: dict, length: int) -> Renderer:
    """A renderer from a spec entry {"type": ..., **arguments}, e.g. {"type": "glyph", "cell": 8}."""
    spec = dict(spec)
    kind = spec.pop("type")
    if kind not in RENDERERS:
        raise ValueError(f"unknown renderer {kind!r}; known: {', '.join(RENDERERS)}")
    return RENDERERS[kind](length, **spec)
