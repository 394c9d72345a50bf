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

    def position_marginals(self, seqs: np.ndarray) -> np.ndarray:
        """(length, len(symbols)): the share of `seqs` holding each symbol at each position (independent symbols)."""
        seqs = self._check_shape(seqs)
        return (seqs[:, :, None] == np.asarray(self.symbols)).mean(0)

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


class Dyck(Grammar):
    """Dyck words of length L over +1 = '(' (push) and -1 = ')' (pop), appendix A.5.

    A sequence is valid when every prefix sum is >= 0 (no prefix closes more than it
    opened: the stack never pops when empty) and the total sum is 0 (the stack is empty
    at the end). L must be even; there are Catalan(L/2) = C(L, L/2) / (L/2 + 1) valid words.
    Sampling is exactly uniform over them, by walking a table of completion counts
    (no enumeration needed, so long words work too).
    """

    name = "dyck"
    symbols = (1, -1)

    def __init__(self, length: int):
        if length < 2 or length % 2:
            raise ValueError(f"Dyck needs an even length >= 2, got {length}")
        self.length = length
        # ways[i][h]: number of valid completions of the last L - i symbols from height h.
        ways = [[0] * (length + 2) for _ in range(length + 1)]
        ways[length][0] = 1
        for i in range(length - 1, -1, -1):
            for h in range(length + 1):
                ways[i][h] = ways[i + 1][h + 1] + (ways[i + 1][h - 1] if h > 0 else 0)
        self._ways = ways

    def is_valid(self, seqs: np.ndarray) -> np.ndarray:
        seqs = self._check_shape(seqs)
        legal = np.isin(seqs, self.symbols).all(axis=1)
        heights = np.cumsum(np.where(legal[:, None], seqs, 0), axis=1)
        return legal & (heights >= 0).all(axis=1) & (heights[:, -1] == 0)

    def count(self) -> int:
        return self._ways[0][0]

    def enumerate(self) -> np.ndarray:
        """Every Dyck word, in lexicographic order with '(' (+1) before ')' (-1)."""
        out: list[list[int]] = []

        def extend(prefix: list[int], h: int) -> None:
            i = len(prefix)
            if i == self.length:
                out.append(list(prefix))
                return
            for s in (1, -1):
                if h + s >= 0 and self._ways[i + 1][h + s] > 0:
                    prefix.append(s)
                    extend(prefix, h + s)
                    prefix.pop()

        extend([], 0)
        return np.array(out, dtype=np.int8).reshape(-1, self.length)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        out = np.empty((n, self.length), dtype=np.int8)
        h = np.zeros(n, dtype=np.int64)
        ways = np.array(self._ways, dtype=np.float64)
        for i in range(self.length):
            up = ways[i + 1][h + 1]
            down = np.where(h > 0, ways[i + 1][np.maximum(h - 1, 0)], 0.0)
            step = np.where(rng.random(n) * (up + down) < up, 1, -1)
            out[:, i] = step
            h = h + step
        return out

    def __repr__(self) -> str:
        return f"Dyck(L={self.length})"
