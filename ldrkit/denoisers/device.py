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
