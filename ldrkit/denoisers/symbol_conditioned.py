"""Explicit symbol knowledge (a remedy for local generation bias): a discrete prior over symbol sequences and a
denoiser conditioned on the sequence it must draw.

Why it can work. A local denoiser builds each region from that region's own pixels, so the samples of an
unconditional image model combine symbols with (close to) independent marginals and break any rule that needs
the other regions (the paper's hallucination). Given the sequence s, the images of the symbols are independent
across regions (every renderer draws each symbol on its own), so the score of p(x | s) *is* local: the local bias
becomes the right inductive bias instead of the cause of the error. The rule then lives in a discrete prior
p(s), where it can be learned (or memorised) over tokens: generation is s ~ prior, then x ~ p(x | s).

Two priors, two families of outcome:
- `EmpiricalPrior`: the training sequences, uniformly. Never breaks the rule, never extrapolates (a memoriser).
- `AutoregressivePrior`: p(s_1) p(s_2 | s_1) ... p(s_L | s_<L), one small MLP over the one-hot prefix. Whether it
  generalises the rule to held-out sequences is a measurement, not an assumption.

`SymbolConditioned` wraps an image (or vector) denoiser that takes the conditioning as extra input channels
(`cond_channels` of `ldrkit.denoisers.models`) and keeps the book's call `model(x, t) -> eps` through `bind`, so the
sampler, the reader and the Jacobian probes work on it unchanged once the sequence is fixed.

Pure modelling: tensors and modules in, tensors out (no files, no configs).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm


def token_indices(seqs: np.ndarray, alphabet: tuple[int, ...]) -> torch.Tensor:
    """(n, L) symbols -> (n, L) long indices into `alphabet`; a symbol outside it is an error."""
    seqs = np.asarray(seqs)
    lookup = {s: i for i, s in enumerate(alphabet)}
    if not np.isin(seqs, list(alphabet)).all():
        raise ValueError(f"symbols outside the alphabet {alphabet}")
    return torch.as_tensor(np.vectorize(lookup.__getitem__)(seqs), dtype=torch.long).reshape(seqs.shape)


def token_symbols(indices: torch.Tensor, alphabet: tuple[int, ...]) -> np.ndarray:
    """The inverse of `token_indices`."""
    return np.asarray(alphabet)[indices.cpu().numpy()]


class EmpiricalPrior(nn.Module):
    """The training sequences, drawn uniformly: the prior of a memoriser."""

    def __init__(self, length: int, alphabet_size: int, capacity: int):
        super().__init__()
        self.length, self.alphabet_size = length, alphabet_size
        self.register_buffer("table", torch.zeros(capacity, length, dtype=torch.long))

    def fit(self, tokens: torch.Tensor, **_) -> dict:
        if tokens.shape != self.table.shape:
            raise ValueError(f"expected {tuple(self.table.shape)} training tokens, got {tuple(tokens.shape)}")
        self.table.copy_(tokens)
        return {"sequences": len(tokens)}

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.table[torch.randint(0, len(self.table), (n,), generator=generator)]


class AutoregressivePrior(nn.Module):
    """p(s) = prod_j p(s_j | s_<j): one MLP reads the one-hot prefix (later positions zeroed) and the position."""

    def __init__(self, length: int, alphabet_size: int, hidden: int = 256, depth: int = 2):
        super().__init__()
        self.length, self.alphabet_size = length, alphabet_size
        layers, width = [], length * alphabet_size + length
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, alphabet_size))

    def logits(self, tokens: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """Logits of s_position given tokens[:, :position] (the rest of `tokens` is ignored)."""
        n = len(tokens)
        seen = torch.arange(self.length)[None] < position[:, None]
        prefix = F.one_hot(tokens, self.alphabet_size).float() * seen[..., None]
        where = F.one_hot(position, self.length).float()
        return self.net(torch.cat([prefix.reshape(n, -1), where], 1))

    def fit(self, tokens: torch.Tensor, steps: int = 3000, batch_size: int = 256, lr: float = 1e-3,
            weight_decay: float = 1e-4, seed: int = 0, progress: bool = False) -> dict:
        """Maximum likelihood on the training sequences (Adam, seeded); returns the final mean loss in nats."""
        gen = torch.Generator().manual_seed(seed)
        self.requires_grad_(True)  # a prior inside SymbolConditioned is frozen except while it is fitted
        optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=weight_decay)
        smoothed = None
        for _ in tqdm(range(steps), desc="symbol prior", disable=not progress, leave=False):
            rows = tokens[torch.randint(0, len(tokens), (batch_size,), generator=gen)]
            position = torch.randint(0, self.length, (batch_size,), generator=gen)
            loss = F.cross_entropy(self.logits(rows, position), rows[torch.arange(batch_size), position])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = loss.item()
            smoothed = value if smoothed is None else 0.98 * smoothed + 0.02 * value
        self.requires_grad_(False)
        return {"loss_nats": smoothed, "steps": steps}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        tokens = torch.zeros(n, self.length, dtype=torch.long)
        for j in range(self.length):
            probs = self.logits(tokens, torch.full((n,), j, dtype=torch.long)).softmax(1)
            tokens[:, j] = torch.multinomial(probs, 1, generator=generator)[:, 0]
        return tokens


PRIORS = {"empirical": EmpiricalPrior, "autoregressive": AutoregressivePrior}


class SymbolConditioned(nn.Module):
    """A denoiser of p(x | s): `inner(x, t, cond)` with cond the sequence drawn where its symbols go.

    Images (C, H, W): cond has one channel per symbol of the alphabet, 1 on the pixels of each position's region
    (`masks`, one boolean mask of the signal's shape per position) holding that symbol, 0 elsewhere. Vectors:
    cond is the flat one-hot sequence (n, L * A). `prior` draws the sequences at sampling time; its weights are
    part of this module's state, so a checkpoint holds both.
    """

    def __init__(self, inner: nn.Module, masks: torch.Tensor, alphabet_size: int, prior: nn.Module):
        super().__init__()
        self.inner, self.prior, self.alphabet_size = inner, prior, alphabet_size
        self.register_buffer("masks", masks.float(), persistent=False)  # (L, *signal_shape)
        for p in prior.parameters():
            p.requires_grad_(False)

    def condition(self, tokens: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(tokens, self.alphabet_size).float()  # (n, L, A)
        if self.masks.dim() == 4:  # images: (L, C, H, W) -> maps (n, A, H, W)
            return torch.einsum("nla,lhw->nahw", one_hot, self.masks[:, 0])
        return one_hot.reshape(len(tokens), -1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or len(tokens) not in (1, len(x)):
            raise ValueError(f"tokens must have shape (1 or {len(x)}, L), got {tuple(tokens.shape)}")
        cond = self.condition(tokens.to(x.device))
        return self.inner(x, t, cond.expand(len(x), *cond.shape[1:]).to(x.dtype))

    def sample_tokens(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.prior.sample(n, generator)


class Bound(nn.Module):
    """A symbol-conditioned denoiser with its sequences fixed: the book's plain `model(x, t) -> eps`."""

    def __init__(self, model: SymbolConditioned, tokens: torch.Tensor):
        super().__init__()
        self.model, self.tokens = model, tokens

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.model(x, t, self.tokens)


def bind(model: SymbolConditioned, tokens: torch.Tensor) -> Bound:
    """`model` conditioned on `tokens` (n rows, one per input, or one row for every input)."""
    return Bound(model, tokens)
