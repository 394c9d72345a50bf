"""Symbol rules P_G (section 4.1): sample, validate, enumerate the support, split.

A sequence is a row of integer symbols. Parity uses the paper's symbols +1 and -1.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """A seeded partition of the rule's support into training and held-out sequences."""

    train: np.ndarray
    held_out: np.ndarray


class Grammar:
    """A rule over sequences of fixed length `length` drawn from `symbols`."""

    name: str = "grammar"
    length: int
    symbols: tuple[int, ...]

    def is_valid(self, seqs: np.ndarray) -> np.ndarray:
        """Boolean per row: does the sequence obey the rule?"""
        raise NotImplementedError

    def enumerate(self) -> np.ndarray:
        """Every valid sequence, one per row, in a fixed order."""
        raise NotImplementedError

    def count(self) -> int:
        """Size of the support."""
        return len(self.enumerate())

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n sequences drawn uniformly from the support."""
        support = self.enumerate()
        return support[rng.integers(0, len(support), size=n)]

    def split(self, train_fraction: float, seed: int) -> Split:
        """Seeded split of the support: round(train_fraction * count) sequences for training."""
        if not 0.0 < train_fraction <= 1.0:
            raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
        support = self.enumerate()
        order = np.random.default_rng(seed).permutation(len(support))
        n_train = max(1, int(round(train_fraction * len(support))))
        return Split(train=support[np.sort(order[:n_train])], held_out=support[np.sort(order[n_train:])])

    def _check_shape(self, seqs: np.ndarray) -> np.ndarray:
        seqs = np.asarray(seqs)
        if seqs.ndim != 2 or seqs.shape[1] != self.length:
            raise ValueError(f"{self.name}: expected sequences of shape (n, {self.length}), got {seqs.shape}")
        return seqs


class Parity(Grammar):
    """Parity rule over {+1, -1}^L: the product of the entries is +1.

    Equivalently the number of -1 entries is even. (Appendix A.5 phrases it as "an even
    number of symbol s_1"; for even L, an even count of +1 and an even count of -1 are the
    same condition, and for odd L only the product form is unambiguous, so we use it.)
    Any L-1 entries of a uniform parity sequence are independent fair coins: the rule
    lives only in the L-th order interaction.
    """

    name = "parity"
    symbols = (1, -1)

    def __init__(self, length: int):
        if length < 2:
            raise ValueError(f"Parity needs length >= 2, got {length}")
        self.length = length

    def is_valid(self, seqs: np.ndarray) -> np.ndarray:
        seqs = self._check_shape(seqs)
        legal = np.isin(seqs, self.symbols).all(axis=1)
        return legal & (np.prod(np.where(seqs == -1, -1, 1), axis=1) == 1)

    def enumerate(self) -> np.ndarray:
        cube = np.array(list(itertools.product((1, -1), repeat=self.length)), dtype=np.int8)
        return cube[self.is_valid(cube)]

    def count(self) -> int:
        return 2 ** (self.length - 1)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        free = rng.choice(np.array(self.symbols, dtype=np.int8), size=(n, self.length - 1))
        last = np.prod(free, axis=1, dtype=np.int8)[:, None]
        return np.concatenate([free, last], axis=1)

    def __repr__(self) -> str:
        return f"Parity(L={self.length})"


GRAMMARS = {"parity": Parity}


def get_grammar(name: str, **kwargs) -> Grammar:
    """Build a grammar by name; an unknown name lists the known ones."""
    if name not in GRAMMARS:
        raise ValueError(f"unknown grammar {name!r}; known grammars: {', '.join(sorted(GRAMMARS))}")
    return GRAMMARS[name](**kwargs)
