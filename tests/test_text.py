"""Real text (section 6, A.7.4): lexicons, rendering/reading round trips, the decision rules, smoke runs."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ldrkit.systems.categories import categorize
from ldrkit.systems.registry import get_grammar
from ldrkit.systems.chinese import ChineseChars, HanziRenderer, chinese_lexicon, cjk_font_path, is_han
from ldrkit.systems.english import (LETTERS, PAD, EnglishRenderer, EnglishWords, decode_strings, english_lexicon,
                         mono_font_path)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = torch.arange(-3, 4, dtype=torch.float32)
    w = torch.exp(-k ** 2 / (2 * sigma ** 2))
    w = w / w.sum()
    return F.conv2d(F.pad(x, (3, 3, 3, 3), value=-1.0), (w[:, None] * w[None, :])[None, None])


# --- English -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def english():
    g = EnglishWords(size=500, min_length=3, max_length=4)
    return g, EnglishRenderer(g.length, cell=12)


def test_english_lexicon_sizes_and_order():
    words = english_lexicon(1000, 3, 4)
    assert len(words) == 1000 and len(set(words)) == 1000
    assert all(3 <= len(w) <= 4 and set(w) <= set(LETTERS) for w in words)
    assert words[:3] == ["the", "and", "for"]          # wordfreq's most frequent words come first
    assert english_lexicon(200, 3, 4) == words[:200]  # a smaller lexicon is a prefix
    g = get_grammar("english-words", size=300, min_length=2, max_length=5)
    assert g.count() == 300 and g.length == 5
    split = g.split(0.9, seed=0)
    assert len(split.train) == 270 and len(split.held_out) == 30
    assert mono_font_path().name == "DejaVuSansMono.ttf"


def test_english_round_trip_every_word(english):
    g, r = english
    seqs = g.enumerate()
    d = r.decode(r.render(seqs))
    assert d.all_legible.all()
    assert (d.tokens == seqs).all()
    assert r.read_strings(r.render_words(["the", "that"])) == ["the_", "that"]


def test_english_decisions(english):
    g, r = english
    split = g.split(0.9, seed=0)
    train_words = {w.rstrip("_") for w in decode_strings(split.train)}
    seen = next(w for w in g.words if w in train_words and len(w) == 4)
    held = next(w for w in g.words if w not in train_words)
    swapped = seen[1] + seen[0] + seen[2:]          # a swapped-letter non-word
    assert swapped not in g.words
    x = r.render_words([seen, swapped, held, seen])
    x[3:] = blur(x[3:], 1.0)                        # a blurred word
    labels = categorize(r.decode(x), g, split.train)
    assert list(labels) == ["in_dataset", "hallucination", "extrapolation", "invalid"]
    # A blank (padding) cell in the middle is legible but spells no word: a hallucination too.
    assert r.read_strings(r.render(np.array([[19, PAD, 4, PAD]]))) == ["t_e_"]


def test_english_letters_survive_mild_noise_but_not_heavy(english):
    g, r = english
    x = r.render(g.enumerate())
    gen = torch.Generator().manual_seed(0)
    mild = r.decode(x + 0.05 * torch.randn(x.shape, generator=gen))
    heavy = r.decode(x + 0.5 * torch.randn(x.shape, generator=gen))
    assert mild.all_legible.mean() > 0.99 and (mild.tokens == g.enumerate()).mean() > 0.99
    assert heavy.all_legible.mean() < 0.01


def test_english_region_spans_two_cells(english):
    _, r = english
    mask = r.region([0, 1])
    assert mask.shape == r.signal_shape and mask.sum() == 2 * r.cell ** 2
    assert mask[..., :2 * r.cell].all() and not mask[..., 2 * r.cell:].any()
    assert (r.region(2) == r.region([2])).all()


# --- Chinese -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chinese():
    g = ChineseChars(size=1000)
    return g, HanziRenderer(size=24, lexicon_size=1000)


def test_chinese_lexicon_sizes():
    chars = chinese_lexicon(1000)
    assert len(chars) == 1000 and len(set(chars)) == 1000 and all(is_han(c) for c in chars)
    assert chars[0] == "的"
    assert chinese_lexicon(3000)[:1000] == chars          # the appendix's 3000 are there too
    g = get_grammar("chinese-chars", size=100)
    assert g.count() == 100 and len(g.split(0.9, 0).held_out) == 10
    assert cjk_font_path().name == "NotoSansCJKsc-Regular.otf"


def test_chinese_round_trip_every_character(chinese):
    g, r = chinese
    seqs = g.enumerate()
    d = r.decode(r.render(seqs))
    assert d.all_legible.all() and (d.tokens == seqs).all()


def test_chinese_decisions(chinese):
    g, r = chinese
    real = r.render_chars("你")
    # An invented character: the left half of 你 (亻) joined to the right half of 的 (勺).
    a, b = r.render_chars("你"), r.render_chars("的")
    invented = a.clone()
    invented[..., r.size // 2:] = b[..., r.size // 2:]
    x = torch.cat([real, invented, blur(real, 1.0), torch.full_like(real, -1.0),
                   torch.rand(real.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1])
    reading = r.read(x)
    assert list(reading.decision) == ["character", "invented", "illegible", "illegible", "illegible"]
    labels = categorize(r.decode(x), g, g.enumerate())
    assert list(labels) == ["in_dataset", "hallucination", "invalid", "invalid", "invalid"]


def test_chinese_thresholds_on_many_cases(chinese):
    """Half-and-half combinations are invented, Gaussian blur of one pixel is illegible, mild noise keeps the character."""
    g, r = chinese
    x = r.render(g.enumerate())
    gen = torch.Generator().manual_seed(1)
    i, j = torch.randint(0, 1000, (200,), generator=gen), torch.randint(0, 1000, (200,), generator=gen)
    keep = i != j
    combo = x[i[keep]].clone()
    combo[..., r.size // 2:] = x[j[keep]][..., r.size // 2:]
    assert (r.read(combo).decision == "invented").mean() > 0.95
    assert (r.read(blur(x, 1.0)).decision == "illegible").mean() > 0.95
    noisy = r.read(x + 0.1 * torch.randn(x.shape, generator=gen))
    assert (noisy.is_char & (noisy.nearest == np.arange(1000))).mean() > 0.99
    left = r.region("left")
    assert left.sum() == r.size * r.size // 2 and left[..., : r.size // 2].all()


# --- smoke runs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["english-words-unet", "chinese-chars-unet"])
def test_smoke_run(name, tmp_path):
    from ldrkit.runs.request import run_experiment
    torch.set_num_threads(1)
    metrics = run_experiment(name, "smoke", out=tmp_path, progress=False)
    assert json.loads((tmp_path / "metrics.json").read_text())["config_hash"] == metrics["config_hash"]
    ev = metrics["evaluations"]
    assert [e["step"] for e in ev] == [0, 15, 30]
    for e in ev:
        assert abs(sum(e["categories"].values()) - 1) < 1e-9
        assert set(e["ldr"]) == {"0.1", "0.2", "0.3", "0.5", "0.7", "0.9"}
        assert all(0 <= v <= 1 for v in e["ldr_x0"].values())
    assert len(list((tmp_path / "samples").glob("step_*.npy"))) == 3
