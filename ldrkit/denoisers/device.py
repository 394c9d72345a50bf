"""Which torch device ldrkit trains on, one rule: $LDRKIT_DEVICE ("cpu" or "cuda") when set, else the
CPU under `accelerate launch --cpu`, else the GPU when there is one, else the CPU."""
from __future__ import annotations

import os

import torch


def resolve_device(requested: str | None = None) -> str:
    """"cpu" or "cuda": `requested`, else $LDRKIT_DEVICE, else "cpu" under `accelerate launch --cpu`,
    else "cuda" when torch sees a GPU, else "cpu". Asking for "cuda" without one is an error."""
    choice = (requested or os.environ.get("LDRKIT_DEVICE") or "").strip().lower()
    if not choice:
        if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
            return "cpu"
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {choice!r} (from the argument or $LDRKIT_DEVICE); choose cpu or cuda")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"CUDA was asked for but torch sees no GPU (torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda or 'none: a CPU-only build'}); run on a machine with a CUDA GPU and a CUDA "
            "build of torch, or use the CPU (LDRKIT_DEVICE=cpu / --device cpu)")
    return choice


def default_device() -> torch.device:
    return torch.device(resolve_device())


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what `platform` knows: every timing says where it ran."""
    import platform
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor() or platform.machine() or "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.machine() or "unknown CPU")


def cpu_flags() -> str:
    """The vector extensions that decide a CPU timing here: "AVX-512 with BF16", "AVX-512", "AVX2" or "no AVX2"."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return "unknown"
    if " avx512f" in info:
        return "AVX-512 with BF16" if " avx512_bf16" in info else "AVX-512"
    return "AVX2" if " avx2" in info else "no AVX2"
