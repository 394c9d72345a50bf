import itertools

import numpy as np
import pytest

from ldrkit.systems.grammars import Parity
from ldrkit.systems.registry import get_grammar


@pytest.mark.parametrize("length", [2, 3, 8, 12])
def test_parity_support_is_exactly_the_even_number_of_minus_ones(length):
    g = Parity(length)
    support = g.enumerate()
    assert len(support) == g.count() == 2 ** (length - 1)
    assert len({row.tobytes() for row in support}) == len(support)
    cube = np.array(list(itertools.product((1, -1), repeat=length)))
    by_count = (cube == -1).sum(1) % 2 == 0
    np.testing.assert_array_equal(g.is_valid(cube), by_count)


def test_parity_rejects_foreign_symbols_and_bad_shapes():
    g = Parity(4)
    assert not g.is_valid(np.array([[1, 1, 0, 1]]))[0]
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        g.is_valid(np.ones((3, 5)))


def test_parity_samples_are_valid_and_pairwise_independent():
    g = Parity(6)
    x = g.sample(200_000, np.random.default_rng(0)).astype(float)
    assert g.is_valid(x.astype(int)).all()
    assert np.abs(x.mean(0)).max() < 0.01  # uniform marginals
    corr = (x.T @ x) / len(x) - np.eye(6)
    assert np.abs(corr).max() < 0.01  # pairwise independent
    assert np.allclose(np.prod(x, axis=1), 1.0)  # yet the 6th-order moment is 1


@pytest.mark.parametrize("length,fraction", [(8, 0.5), (16, 0.05)])
def test_split_sizes_disjoint_and_seeded(length, fraction):
    g = Parity(length)
    split = g.split(fraction, seed=3)
    assert len(split.train) == round(fraction * g.count())
    assert len(split.train) + len(split.held_out) == g.count()
    train = {r.tobytes() for r in split.train}
    assert not train & {r.tobytes() for r in split.held_out}
    assert g.is_valid(split.train).all() and g.is_valid(split.held_out).all()
    np.testing.assert_array_equal(split.train, g.split(fraction, seed=3).train)
    assert not np.array_equal(split.train, g.split(fraction, seed=4).train)


def test_unknown_grammar_lists_the_known_ones():
    with pytest.raises(ValueError, match="known grammars: .*parity"):
        get_grammar("dick", length=4)


def test_position_marginals_count_each_symbol_per_position():
    g = Parity(4)
    seqs = np.array([[1, 1, 1, 1], [1, -1, -1, 1], [-1, -1, 1, 1]])
    m = g.position_marginals(seqs)
    assert m.shape == (4, 2) and np.allclose(m.sum(1), 1)
    assert np.allclose(m[:, list(g.symbols).index(1)], [2 / 3, 1 / 3, 2 / 3, 1])
    # over the whole support, parity's symbols are uniform at every position
    assert np.allclose(g.position_marginals(g.enumerate()), 0.5)
    with pytest.raises(ValueError):
        g.position_marginals(seqs[:, :3])
