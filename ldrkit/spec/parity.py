"""Parity on the hypercube with an MLP (sections 4.1, 4.2, 5; appendix A.5), its exact oracles, and the
training-time control of kappa (issue 15): both lengths with kappa at every evaluation. Same network, data,
steps and evaluations: L=8 memorises its training half, L=16 never follows the rule, so the two separate
learning from training time."""
from __future__ import annotations

from typing import Callable

from .registry import Experiment, kappa_experiment, register, register_oracles
from .sizes import MODELS, SCHEDULE, TRAIN


def _parity_mlp(length: int, train_fraction: float) -> Callable[[str, int], dict]:
    sizes = {"smoke": ({"steps": 300, "batch_size": 256, "lr": 1e-3, "eval_every": 150},
                       {"num_samples": 256, "sample_steps": 100, "ldr_samples": 16}),
             "cpu": ({"steps": 20_000, "batch_size": 256, "lr": 1e-3, "eval_every": 1000},
                     {"num_samples": 1024, "sample_steps": 1000, "ldr_samples": 128}),
             "paper": ({"steps": 200_000, **TRAIN["paper"], "eval_every": 10_000},
                       {"num_samples": 4096, "sample_steps": 1000, "ldr_samples": 256})}

    def make(profile: str, seed: int) -> dict:
        train, evaluation = sizes[profile]
        return {"grammar": {"name": "parity", "length": length},
                "split": {"train_fraction": train_fraction, "seed": seed},
                "render": {"type": "scalar"}, "schedule": dict(SCHEDULE),
                "model": dict(MODELS["mlp"][profile]), "train": {**train, "seed": seed},
                "eval": {**evaluation, "ldr_position": 1}}
    return make


register(Experiment("parity-mlp-L8", "Parity over {+-1}^8, half of the 128 valid sequences in training, MLP denoiser",
                    _parity_mlp(8, 0.5)))
register(Experiment("parity-mlp-L16", "Parity over {+-1}^16, 5% of the 32768 valid sequences in training, MLP denoiser",
                    _parity_mlp(16, 0.05)))
for _length in (8, 16):
    register(kappa_experiment(f"parity-mlp-L{_length}"))
register_oracles("parity-mlp-L16")
