"""Parenthesis glyph images and their OCR: round trip, noise, blank and garbage cells."""
import numpy as np
import pytest
import torch

from ldrkit.systems.grammars import Dyck, Parity
from ldrkit.systems.ocr import split_cells
from ldrkit.systems.registry import build_renderer
from ldrkit.systems.render import GlyphRenderer, draw_glyph


@pytest.fixture(scope="module")
def r8():
    return GlyphRenderer(8)


def test_glyphs_are_deterministic_distinct_and_in_range(r8):
    again = GlyphRenderer(8)
    torch.testing.assert_close(r8.templates, again.templates, rtol=0, atol=0)
    assert r8.templates.min() >= -1 and r8.templates.max() <= 1
    assert r8.templates.max() > 0  # ink is visible after downsampling
    corr = r8.ocr.template_correlation()[0, 1]
    print(f"template correlation '(' vs ')': {corr:.3f}")
    assert corr < 0.4
    big = draw_glyph("(", 32)
    np.testing.assert_allclose(big[:, ::-1], draw_glyph(")", 32), atol=0.35)  # near mirror images


def test_render_shapes_regions_and_exact_round_trip(r8):
    seqs = Parity(8).enumerate()
    x = r8.render(seqs)
    assert x.shape == (128, 1, 8, 64) and r8.signal_shape == (1, 8, 64)
    d = r8.decode(x)
    assert d.all_legible.all()
    np.testing.assert_array_equal(d.tokens, seqs)
    # the cell of position j is exactly the template of symbol j
    cells = split_cells(x, 8, 8).reshape(128, 8, 8, 8)
    np.testing.assert_array_equal(cells[:, 2].numpy(), r8.templates[(seqs[:, 2] == -1).astype(int)].numpy())
    mask = r8.region(1)
    assert mask.shape == (1, 8, 64) and mask.sum() == 64 and mask[0, :, 8:16].all()
    dyck = GlyphRenderer(12, cell=16)
    words = Dyck(12).enumerate()
    np.testing.assert_array_equal(dyck.decode(dyck.render(words)).tokens, words)


def test_ocr_under_noise_never_misreads_and_degrades_gracefully(r8):
    seqs = Parity(8).sample(512, np.random.default_rng(0))
    x = r8.render(seqs)
    g = torch.Generator().manual_seed(0)
    legible_at = {}
    for sigma in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0):
        rd = r8.read(x + sigma * torch.randn(x.shape, generator=g))
        legible_at[sigma] = rd.legible.mean()
        wrong = ((rd.tokens != seqs) & rd.legible).mean()
        print(f"noise sigma {sigma}: legible cells {legible_at[sigma]:.3f}, misread {wrong:.4f}")
        assert wrong == 0.0  # a confident reading is a correct one
    assert legible_at[0.05] == 1.0 and legible_at[0.1] == 1.0 and legible_at[0.2] > 0.99
    assert legible_at[1.0] == 0.0  # pure-noise-like cells are not read


def test_blank_garbage_and_ambiguous_cells_are_invalid(r8):
    seqs = np.array([[1, -1, 1, -1, 1, 1, -1, -1]])
    x = r8.render(seqs)
    blank = x.clone()
    blank[..., 0:8] = -1.0           # an empty cell
    blank[..., 8:16] = 0.0           # a grey cell
    d = r8.decode(blank)
    assert d.legible[0].tolist() == [False, False] + [True] * 6
    g = torch.Generator().manual_seed(1)
    garbage = r8.decode(torch.rand(200, 1, 8, 64, generator=g) * 2 - 1)
    assert not garbage.legible.any()
    both = r8.decode((r8.render(seqs) + r8.render(-seqs)) / 2)  # '(' and ')' superposed
    assert not both.legible.any()
    faint = r8.decode(-1 + 0.2 * (x + 1))  # a ghost of the right glyphs on a dark background
    assert not faint.legible.any()
    bright = r8.decode(x + 0.8)  # right shapes, wrong background brightness
    assert not bright.legible.any()


def test_jitter_is_off_by_default_and_seeded():
    seqs = Parity(4).enumerate()
    plain = GlyphRenderer(4)
    assert len(torch.unique(plain.render(np.repeat(seqs, 3, 0)), dim=0)) == len(seqs)
    a, b = GlyphRenderer(4, jitter=2, seed=5).render(seqs), GlyphRenderer(4, jitter=2, seed=5).render(seqs)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, plain.render(seqs))


def test_pipeline_builds_the_glyph_renderer():
    r = build_renderer({"type": "glyph", "cell": 8, "ocr": {"min_corr": 0.8}}, 16)
    assert r.signal_shape == (1, 8, 128) and r.ocr.min_corr == 0.8
    with pytest.raises(ValueError, match="known: scalar, embedding, glyph"):
        build_renderer({"type": "nope"}, 4)
