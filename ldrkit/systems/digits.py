"""Quarter-MNIST (section 4.2, appendix A.5, A.7.3): four handwritten digits in the four quarters of an image.

- `DigitSum`: the rule s1 + s2 = s3 + s4 over digits 0..9 (670 of the 10^4 tuples);
- the digits themselves come from `ldrkit.systems.digit_sources` (scikit-learn's 8x8 set, or MNIST);
- `QuarterDigitRenderer`: the paper's probabilistic rendering h: each digit of a tuple is drawn
  as a random handwritten instance of that digit from the source's *training* split (seeded);
  quarters 0 1 / 2 3 = top-left, top-right / bottom-left, bottom-right;
- `DigitClassifier` / `DigitOCR`: the decoder, a small CNN trained on the source's training split,
  with held-out accuracy measured on the source's test split, and a confidence threshold below
  which a quarter is unreadable. Trained classifiers are cached on disk (see `cache_dir`).

Pixel values are in [-1, 1] (background -1).
"""
from __future__ import annotations

import hashlib
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .digit_sources import NATIVE_SIZE, DigitSet, cache_dir, load_source
from .grammars import Grammar
from .render import Decoded, Renderer

# --- the rule -----------------------------------------------------------------------------------

class DigitSum(Grammar):
    """Four digits (s1, s2, s3, s4) in 0..9 with s1 + s2 = s3 + s4 (the top row's sum equals the bottom row's).

    sum_k N(k)^2 = 670 tuples, N(k) the number of digit pairs summing to k. Unlike parity, the
    digits are not pairwise independent under the uniform rule, and one digit's marginal is not
    uniform (middle digits are more frequent), see `marginals`.
    """

    name = "digit-sum"
    symbols = tuple(range(10))

    def __init__(self, length: int = 4):
        if length != 4:
            raise ValueError(f"DigitSum has four digits (one per quarter), got length {length}")
        self.length = 4

    def is_valid(self, seqs: np.ndarray) -> np.ndarray:
        seqs = self._check_shape(seqs).astype(np.int64)
        legal = np.isin(seqs, self.symbols).all(axis=1)
        return legal & (seqs[:, 0] + seqs[:, 1] == seqs[:, 2] + seqs[:, 3])

    def enumerate(self) -> np.ndarray:
        grid = np.array(list(itertools.product(range(10), repeat=4)), dtype=np.int64)
        return grid[self.is_valid(grid)]

    def marginals(self) -> np.ndarray:
        """(4, 10): P_G(s_j = d), the per-quarter digit frequencies of the uniform rule."""
        support = self.enumerate()
        return np.stack([np.bincount(support[:, j], minlength=10) / len(support) for j in range(4)])

    def __repr__(self) -> str:
        return "DigitSum(s1+s2=s3+s4)"


# --- the classifier (OCR) -----------------------------------------------------------------------

class DigitClassifier(nn.Module):
    """A small CNN: three 3x3 conv layers (32, 64, 64 channels), one 2x2 max-pool, global average pool, linear.

    Eleven outputs: digits 0..9 and class 10, "not a digit" (trained on noise, blank or flat
    images, blends of two different digits and heavily noised digits), so that garbage does
    not get a confident digit label.
    """

    def __init__(self, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(2 * width, 11)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x[:, None]
        return self.head(self.features(x).mean(dim=(2, 3)))


CLASSIFIER_VERSION = 2
CLASSIFIER_RECIPE = {"width": 32, "epochs": {"sklearn": 120, "mnist": 4}, "batch_size": 64, "lr": 2e-3,
                     "shift": 1, "noise": 0.1}


def _augment(x: torch.Tensor, shift: int, noise: float, g: torch.Generator) -> torch.Tensor:
    """Random whole-pixel shifts in [-shift, shift] (background-filled) and Gaussian pixel noise."""
    if shift:
        pad = F.pad(x, (shift,) * 4, value=-1.0)
        dx, dy = torch.randint(0, 2 * shift + 1, (2,), generator=g).tolist()
        x = pad[:, dy:dy + x.shape[1], dx:dx + x.shape[2]]
    return x + noise * torch.rand(len(x), 1, 1, generator=g) * torch.randn(x.shape, generator=g)


REJECT = 10


def _garbage(images: torch.Tensor, labels: torch.Tensor, m: int, g: torch.Generator) -> torch.Tensor:
    """m non-digits: clamped noise, flat images, 50/50 blends of two different digits, heavily noised digits."""
    s = images.shape[-1]
    kind = torch.randint(0, 4, (m,), generator=g)
    i = torch.randint(0, len(images), (m,), generator=g)
    j = torch.randint(0, len(images), (m,), generator=g)
    j = torch.where(labels[j] == labels[i], torch.roll(j, 1), j)
    noise = torch.randn(m, s, s, generator=g)
    flat = (torch.rand(m, 1, 1, generator=g) * 2 - 1).expand(m, s, s)
    blend = 0.5 * (images[i] + images[j])
    noised = images[i] + (0.6 + 0.6 * torch.rand(m, 1, 1, generator=g)) * noise
    out = torch.where((kind == 0)[:, None, None], (noise * torch.rand(m, 1, 1, generator=g) * 1.5 - 0.3).clamp(-1, 1),
          torch.where((kind == 1)[:, None, None], flat,
          torch.where((kind == 2)[:, None, None], blend, noised)))
    return out


def train_classifier(train: DigitSet, test: DigitSet, seed: int = 0, epochs: int = 40, batch_size: int = 64,
                     lr: float = 2e-3, width: int = 32, shift: int = 1, noise: float = 0.1,
                     progress: bool = False) -> tuple[DigitClassifier, float]:
    """Train on `train` (with small shifts and noise), return the model and its accuracy on `test`."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitClassifier(width)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * ((len(train) + batch_size - 1) // batch_size))
    labels = torch.as_tensor(train.labels)
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(train), generator=g).split(batch_size):
            x = _augment(train.images[idx], shift, noise, g)
            junk = _garbage(train.images, labels, max(1, len(idx) // 4), g)
            loss = F.cross_entropy(model(torch.cat([x, junk])),
                                   torch.cat([labels[idx], torch.full((len(junk),), REJECT, dtype=torch.long)]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if progress:
            print(f"classifier epoch {epoch + 1}/{epochs}: loss {loss.item():.4f}")
    model.eval()
    return model, accuracy(model, test)


@torch.no_grad()
def accuracy(model: nn.Module, digits: DigitSet) -> float:
    preds = torch.cat([model(x)[:, :10].argmax(1) for x in digits.images.split(1024)])
    return float((preds.numpy() == digits.labels).mean())


_CLASSIFIERS: dict = {}


def get_classifier(source: str = "sklearn", size: int | None = None, seed: int = 0,
                   mnist_dir: str | Path | None = None, cache: bool = True,
                   progress: bool = False) -> tuple[DigitClassifier, dict]:
    """The source's classifier (trained once, then read from the disk cache) and its info:
    {"held_out_accuracy", "n_train", "n_test", "train_seconds", "path"}.

    Cache key: source, size, seed, the training recipe and a fingerprint of the data (a file in
    `cache_dir()`/classifiers).
    """
    from safetensors.torch import load_file, save_file

    size = int(size or NATIVE_SIZE[source])
    recipe = dict(CLASSIFIER_RECIPE, epochs=CLASSIFIER_RECIPE["epochs"][source])
    train, test = load_source(source, size, seed, mnist_dir)
    # The key fingerprints the data too (sizes and labels), so other local files never reuse a classifier.
    fingerprint = (len(train), len(test), hashlib.sha256(train.labels.tobytes() + test.labels.tobytes()).hexdigest())
    tag = hashlib.sha256(repr((CLASSIFIER_VERSION, sorted(recipe.items()), fingerprint)).encode()).hexdigest()[:8]
    name = f"digits-{source}-{size}px-seed{seed}-{tag}"
    if cache and name in _CLASSIFIERS:
        return _CLASSIFIERS[name]
    path = cache_dir() / "classifiers" / f"{name}.safetensors"
    model = DigitClassifier(recipe["width"])
    if cache and path.exists():
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        model.load_state_dict(load_file(str(path)))
        info = {"held_out_accuracy": float(meta["held_out_accuracy"]), "n_train": int(meta["n_train"]),
                "n_test": int(meta["n_test"]), "train_seconds": float(meta["train_seconds"]), "path": str(path)}
    else:
        start = time.perf_counter()
        model, acc = train_classifier(train, test, seed=seed, epochs=recipe["epochs"], batch_size=recipe["batch_size"],
                                      lr=recipe["lr"], width=recipe["width"], shift=recipe["shift"],
                                      noise=recipe["noise"], progress=progress)
        info = {"held_out_accuracy": acc, "n_train": len(train), "n_test": len(test),
                "train_seconds": round(time.perf_counter() - start, 2), "path": str(path) if cache else None}
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp),
                      metadata={k: str(v) for k, v in info.items() if k != "path"})
            os.replace(tmp, path)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if cache:
        _CLASSIFIERS[name] = (model, info)
    return model, info


@dataclass(frozen=True)
class DigitReading:
    """Per sample and quarter: the most likely digit, its softmax probability, and whether it clears the threshold."""

    tokens: np.ndarray
    confidence: np.ndarray
    legible: np.ndarray


class DigitOCR:
    """Reads digit images with a classifier; a digit is legible when its softmax probability >= `threshold`."""

    def __init__(self, model: nn.Module, threshold: float = 0.5):
        self.model, self.threshold = model, float(threshold)

    @torch.no_grad()
    def read_digits(self, digits: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(m, s, s) -> (digit, probability), each (m,): the most likely of the ten digits and its softmax
        probability (over the eleven classes, so mass on "not a digit" lowers it)."""
        probs = torch.cat([self.model(x.float()).softmax(1) for x in digits.split(2048)]) if len(digits) else \
            torch.zeros(0, 11)
        best, digit = probs[:, :10].max(1)
        return digit.numpy().astype(np.int64), best.numpy()


# --- the quarter-image renderer -------------------------------------------------------------------

class QuarterDigitRenderer(Renderer):
    """Four digits in the quarters of a (1, 2s, 2s) image: position 0 1 top-left, top-right; 2 3 bottom-left, bottom-right.

    `render(seqs)` draws, for every digit of every row, a random instance of that digit from
    the source's training split (numpy generator seeded by `seed`, fresh on each call: the same
    rows give the same images). `render_training(seqs)` renders every row `copies` times (each copy
    with its own instances) for the training set: the pipeline trains on it, so the dataset is
    `copies * len(train tuples)` fixed images. `render(seqs, pool="test")` draws from the
    source's test split (digits the classifier never saw).

    Decoding classifies each quarter with the source's `DigitClassifier`; a quarter whose top
    softmax probability (over the ten digits and "not a digit") is below `threshold` is illegible.
    The default 0.5 (the top digit holds most of the mass) keeps 97% of clean held-out scikit-learn
    digits legible, rejects all Gaussian-noise and flat quarters and ~3% of 50/50 blends of two
    digits (measured on the seed-0 classifier, 0.7 kept only 96% / 0.8 only 94% of the clean digits).
    """

    symbols = tuple(range(10))

    def __init__(self, length: int = 4, source: str = "sklearn", size: int | None = None, copies: int = 1,
                 seed: int = 0, threshold: float = 0.5, source_seed: int = 0, mnist_dir: str | None = None):
        if length != 4:
            raise ValueError(f"quarter images hold four digits, got length {length}")
        self.length, self.source = 4, source
        self.size = int(size or NATIVE_SIZE[source])
        self.copies, self.seed, self.threshold = int(copies), int(seed), float(threshold)
        self.train_digits, self.test_digits = load_source(source, self.size, source_seed, mnist_dir)
        self.classifier, self.classifier_info = get_classifier(source, self.size, source_seed, mnist_dir)
        self.ocr = DigitOCR(self.classifier, threshold)
        self._by_digit = {pool: [np.flatnonzero(d.labels == k) for k in range(10)]
                          for pool, d in (("train", self.train_digits), ("test", self.test_digits))}

    @property
    def signal_shape(self) -> tuple[int, ...]:
        return (1, 2 * self.size, 2 * self.size)

    def render(self, seqs: np.ndarray, pool: str = "train", seed: int | None = None) -> torch.Tensor:
        seqs = self._check_tokens(seqs).astype(np.int64)
        digits = self.train_digits if pool == "train" else self.test_digits
        by_digit = self._by_digit[pool]
        rng = np.random.default_rng(self.seed if seed is None else seed)
        index = np.empty(seqs.shape, dtype=np.int64)
        for k in range(10):
            where = seqs == k
            index[where] = by_digit[k][rng.integers(0, len(by_digit[k]), size=int(where.sum()))]
        quarters = digits.images[torch.as_tensor(index)]  # (n, 4, s, s)
        n, s = len(seqs), self.size
        return quarters.reshape(n, 2, 2, s, s).permute(0, 1, 3, 2, 4).reshape(n, 1, 2 * s, 2 * s).contiguous()

    def render_training(self, seqs: np.ndarray) -> torch.Tensor:
        """The training set: every row `copies` times, each copy with its own random instances."""
        seqs = self._check_tokens(seqs)
        return self.render(np.tile(seqs, (self.copies, 1)))

    def quarters(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 1, 2s, 2s) -> (n, 4, s, s) in position order."""
        x = self._check_signal(x)
        n, s = len(x), self.size
        return x.reshape(n, 2, s, 2, s).permute(0, 1, 3, 2, 4).reshape(n, 4, s, s)

    def read(self, x: torch.Tensor) -> DigitReading:
        q = self.quarters(x)
        digit, prob = self.ocr.read_digits(q.reshape(-1, self.size, self.size))
        shape = (len(q), 4)
        return DigitReading(digit.reshape(shape), prob.reshape(shape), (prob >= self.threshold).reshape(shape))

    def decode(self, x: torch.Tensor) -> Decoded:
        r = self.read(x)
        return Decoded(tokens=r.tokens, legible=r.legible)

    def region(self, position: int) -> torch.Tensor:
        if not 0 <= position < 4:
            raise ValueError(f"position {position} outside 0..3")
        mask = torch.zeros(self.signal_shape, dtype=torch.bool)
        r, c, s = position // 2, position % 2, self.size
        mask[:, r * s:(r + 1) * s, c * s:(c + 1) * s] = True
        return mask
