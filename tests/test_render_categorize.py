import numpy as np
import pytest
import torch

from ldrkit.systems.categories import categorize, fractions
from ldrkit.systems.grammars import Parity
from ldrkit.systems.render import EmbeddingRenderer, ScalarRenderer


@pytest.mark.parametrize("renderer", [ScalarRenderer(8), EmbeddingRenderer(8, dim=5, seed=1)])
def test_render_decode_round_trip_and_noise_tolerance(renderer):
    seqs = Parity(8).sample(500, np.random.default_rng(0))
    x = renderer.render(seqs)
    assert x.shape == (500, *renderer.signal_shape)
    d = renderer.decode(x)
    assert d.all_legible.all()
    np.testing.assert_array_equal(d.tokens, seqs)
    noisy = renderer.decode(x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
    np.testing.assert_array_equal(noisy.tokens, seqs)


def test_scalar_threshold_is_half_way_to_zero():
    d = ScalarRenderer(4).decode(torch.tensor([[0.49, 0.51, -1.5, -1.51]]))
    np.testing.assert_array_equal(d.legible[0], [False, True, True, False])


def test_embedding_blocks_far_from_templates_are_illegible():
    r = EmbeddingRenderer(3, dim=6, seed=0)
    x = r.render(np.array([[1, -1, 1]]))
    x[0, :6] = 0.0  # a blank block is half-way between nothing and everything
    assert r.decode(x).legible[0].tolist() == [False, True, True]


def test_renderers_refuse_wrong_shapes_and_symbols():
    r = ScalarRenderer(4)
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        r.decode(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="alphabet"):
        r.render(np.array([[1, 2, 1, 1]]))


def test_region_masks_cover_one_symbol():
    assert ScalarRenderer(5).region(2).nonzero().tolist() == [[2]]
    mask = EmbeddingRenderer(4, dim=3).region(1)
    assert mask.nonzero().squeeze(1).tolist() == [3, 4, 5]


def test_categories_of_hand_made_samples():
    g = Parity(4)
    train = np.array([[1, 1, 1, 1], [-1, -1, 1, 1]])
    samples = torch.tensor([
        [1.0, 1, 1, 1],      # in the training set
        [-1, -1, 1, 1],      # in the training set
        [1, 1, -1, -1],      # valid, held out: extrapolation
        [1, 1, 1, -1],       # legible, odd number of -1: hallucination
        [1, 0.1, 1, 1],      # an illegible coordinate: invalid
    ])
    labels = categorize(ScalarRenderer(4).decode(samples), g, train)
    assert labels.tolist() == ["in_dataset", "in_dataset", "extrapolation", "hallucination", "invalid"]
    f = fractions(labels)
    assert f == {"invalid": 0.2, "hallucination": 0.2, "in_dataset": 0.4, "extrapolation": 0.2}
    assert abs(sum(f.values()) - 1) < 1e-12
