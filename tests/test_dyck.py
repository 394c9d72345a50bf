"""Dyck words: validity, counts (Catalan numbers) and the support against brute force."""
import itertools
from math import comb

import numpy as np
import pytest

from ldrkit.systems.grammars import Dyck
from ldrkit.systems.registry import GRAMMARS, get_grammar


def brute_force_valid(seq) -> bool:
    height = 0
    for s in seq:
        height += s
        if height < 0:
            return False
    return height == 0


@pytest.mark.parametrize("length", [2, 4, 6, 8, 10, 12])
def test_dyck_support_is_exactly_the_balanced_words(length):
    g = Dyck(length)
    cube = np.array(list(itertools.product((1, -1), repeat=length)), dtype=np.int8)
    truth = np.array([brute_force_valid(row) for row in cube])
    np.testing.assert_array_equal(g.is_valid(cube), truth)
    support = g.enumerate()
    assert {r.tobytes() for r in support} == {r.tobytes() for r in cube[truth]}
    assert len(support) == len({r.tobytes() for r in support})
    catalan = comb(length, length // 2) // (length // 2 + 1)
    assert g.count() == len(support) == catalan


def test_dyck_catalan_counts_for_longer_words():
    assert [Dyck(2 * k).count() for k in range(1, 11)] == [1, 2, 5, 14, 42, 132, 429, 1430, 4862, 16796]


def test_dyck_samples_are_valid_and_uniform():
    g = Dyck(8)
    x = g.sample(70_000, np.random.default_rng(0))
    assert g.is_valid(x).all()
    _, counts = np.unique(x, axis=0, return_counts=True)
    assert len(counts) == 14
    expected = 70_000 / 14
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 40, counts  # 13 degrees of freedom: P(chi2 > 40) < 1e-4


def test_dyck_examples_and_bad_input():
    g = Dyck(6)
    words = np.array([[1, -1, 1, 1, -1, -1],    # ()(())
                      [1, 1, 1, -1, -1, -1],    # ((()))
                      [-1, 1, 1, -1, 1, -1],    # )(()() closes first
                      [1, -1, -1, 1, 1, -1],    # ())(() prefix closes more than it opened
                      [1, 1, -1, 1, -1, 1],     # (()()( unbalanced
                      [1, 0, -1, 1, -1, -1]])   # a foreign symbol
    assert g.is_valid(words).tolist() == [True, True, False, False, False, False]
    with pytest.raises(ValueError):
        Dyck(7)
    with pytest.raises(ValueError, match=r"shape \(n, 6\)"):
        g.is_valid(np.ones((2, 4)))


def test_dyck_is_registered_and_splits_like_parity():
    assert GRAMMARS["dyck"] is Dyck
    g = get_grammar("dyck", length=12)
    a, b = g.split(0.5, seed=3), g.split(0.5, seed=3)
    np.testing.assert_array_equal(a.train, b.train)
    assert len(a.train) == 66 and len(a.held_out) == 66
    assert g.is_valid(a.train).all() and g.is_valid(a.held_out).all()
    assert not {r.tobytes() for r in a.train} & {r.tobytes() for r in a.held_out}
