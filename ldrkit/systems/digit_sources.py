"""Where the handwritten digits of Quarter-MNIST come from: scikit-learn's 1797 8x8 digits (offline, the default)
and real MNIST read from the four standard IDX files (`load_mnist`; `download_mnist(dest)` fetches them, opt-in,
never called by the library or its tests), each split into a training and a test set and resized (`load_source`).

Pixel values are in [-1, 1] (background -1).
"""
from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class DigitSet:
    """Handwritten digit images (n, s, s) in [-1, 1] and their labels (n,)."""

    images: torch.Tensor
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
MNIST_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
               "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/")


def _open(path: Path):
    path = Path(path)
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (the MNIST format), gzipped or not (detected from its first bytes)."""
    with _open(Path(path)) as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r})")
    dtype, ndim = np.dtype(IDX_DTYPES[data[2]]), data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    count = int(np.prod(shape)) if ndim else 1
    body = data[4 + 4 * ndim:]
    if len(body) != count * dtype.itemsize:
        raise ValueError(f"{path}: header says shape {shape} ({count * dtype.itemsize} bytes), body has {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, gz: bool | None = None) -> Path:
    """Write `array` as an IDX file (uint8 or int32 or float32...); gzipped if `gz` or the name ends in .gz."""
    path = Path(path)
    array = np.asarray(array)
    code = {np.dtype(v).newbyteorder("=").str: k for k, v in IDX_DTYPES.items()}.get(array.dtype.newbyteorder("=").str)
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    big = array.astype(np.dtype(IDX_DTYPES[code]).newbyteorder(">"))
    blob = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + big.tobytes()
    if gz if gz is not None else path.suffix == ".gz":
        blob = gzip.compress(blob)
    path.write_bytes(blob)
    return path


def cache_dir() -> Path:
    """$LDRKIT_CACHE, else ~/.cache/ldrkit."""
    return Path(os.environ.get("LDRKIT_CACHE") or Path.home() / ".cache" / "ldrkit")


def default_mnist_dir() -> Path:
    """$LDRKIT_MNIST, else CACHE/mnist (see `cache_dir`)."""
    return Path(os.environ["LDRKIT_MNIST"]) if os.environ.get("LDRKIT_MNIST") else cache_dir() / "mnist"


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).exists():
            return directory / name
    return None


def load_mnist(directory: str | Path | None = None) -> tuple[DigitSet, DigitSet]:
    """MNIST's 60k training and 10k test digits (28x28, in [-1, 1]) from the four standard IDX files.

    Files may be gzipped or not. A missing file raises FileNotFoundError naming `download_mnist`.
    """
    directory = Path(directory) if directory is not None else default_mnist_dir()
    paths = {key: _find(directory, stem) for key, stem in MNIST_FILES.items()}
    missing = [MNIST_FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise FileNotFoundError(
            f"MNIST IDX files missing in {directory}: {', '.join(missing)} (gzipped or not). Put the four standard "
            f"files there, point $LDRKIT_MNIST at a folder holding them, or fetch them once with "
            f"`python -c \"from ldrkit.systems.digit_sources import download_mnist; download_mnist('{directory}')\"`.")
    out = []
    for part in ("train", "test"):
        images, labels = read_idx(paths[f"{part}_images"]), read_idx(paths[f"{part}_labels"])
        if images.ndim != 3 or len(images) != len(labels):
            raise ValueError(f"MNIST {part}: images {images.shape} and labels {labels.shape} do not match")
        out.append(DigitSet(torch.as_tensor(images.astype(np.float32) / 127.5 - 1.0), labels.astype(np.int64)))
    return out[0], out[1]


def download_mnist(dest: str | Path | None = None, mirrors: tuple[str, ...] = MNIST_MIRRORS) -> Path:
    """Fetch the four gzipped MNIST IDX files into `dest` (default `default_mnist_dir()`), e.g. on Colab.

    Opt-in: nothing in ldrkit calls it. Files already present are kept.
    """
    import urllib.request

    dest = Path(dest) if dest is not None else default_mnist_dir()
    dest.mkdir(parents=True, exist_ok=True)
    for stem in MNIST_FILES.values():
        if _find(dest, stem):
            continue
        errors = []
        for mirror in mirrors:
            try:
                urllib.request.urlretrieve(mirror + stem + ".gz", dest / (stem + ".gz.part"))
                os.replace(dest / (stem + ".gz.part"), dest / (stem + ".gz"))
                break
            except OSError as e:  # try the next mirror
                errors.append(f"{mirror}: {e}")
        else:
            raise OSError(f"could not download {stem}.gz: " + "; ".join(errors))
    load_mnist(dest)  # check
    return dest


def load_sklearn_digits(seed: int = 0, test_fraction: float = 0.2) -> tuple[DigitSet, DigitSet]:
    """scikit-learn's 1797 8x8 digits (values 0..16 scaled to [-1, 1]), split by a seeded permutation."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.as_tensor(d.images.astype(np.float32) / 8.0 - 1.0)
    order = np.random.default_rng(seed).permutation(len(d.target))
    n_test = int(round(test_fraction * len(order)))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    return (DigitSet(images[train], d.target[train].astype(np.int64)),
            DigitSet(images[test], d.target[test].astype(np.int64)))


SOURCES = ("sklearn", "mnist")
NATIVE_SIZE = {"sklearn": 8, "mnist": 28}


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(n, s, s) -> (n, size, size), bilinear (antialiased when shrinking)."""
    if images.shape[-1] == size:
        return images
    out = F.interpolate(images[:, None], size=(size, size), mode="bilinear", align_corners=False,
                        antialias=size < images.shape[-1])
    return out[:, 0].clamp(-1, 1)


_SOURCE_CACHE: dict = {}


def load_source(source: str = "sklearn", size: int | None = None, seed: int = 0,
                mnist_dir: str | Path | None = None) -> tuple[DigitSet, DigitSet]:
    """(train, test) digits of a source at `size` pixels a side (default: its native size)."""
    if source not in SOURCES:
        raise ValueError(f"unknown digit source {source!r}; known: {', '.join(SOURCES)}")
    size = int(size or NATIVE_SIZE[source])
    key = (source, size, seed, str(mnist_dir))
    if key not in _SOURCE_CACHE:
        train, test = load_sklearn_digits(seed) if source == "sklearn" else load_mnist(mnist_dir)
        _SOURCE_CACHE[key] = tuple(DigitSet(resize(s.images, size), s.labels) for s in (train, test))
    return _SOURCE_CACHE[key]


