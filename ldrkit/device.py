"""Which torch device ldrkit trains on (one rule, `train.resolve_device`): $LDRKIT_DEVICE ("cpu" or
"cuda") when set, else the CPU under `accelerate launch --cpu`, else the GPU when there is one, else the CPU."""
from __future__ import annotations

import torch


def default_device() -> torch.device:
    from .train import resolve_device

    return torch.device(resolve_device())
