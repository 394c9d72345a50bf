"""Remedy 1 (issue 17): explicit symbol knowledge (`ldrkit.denoisers.symbol_conditioned`). The base experiment's
data, network, steps and evaluation, with the network conditioned on the sequence it draws (one extra input
channel per symbol, 1 on that symbol's cells: +1.4k parameters on the 280k UNet) and an autoregressive prior over
the symbols drawing the sequences. The prior's size (hidden 64, depth 2, 3000 Adam steps) was chosen by its
likelihood on a fifth of the Quarter-digits *training* tuples held out from its fit (among 7 sizes; the test
tuples were not used). The oracle distances compare p(x) denoisers, so they are off (a conditioned network
denoises p(x | s))."""
from __future__ import annotations

import copy
from typing import Callable

from .registry import Experiment, derive, register

SYMBOL_PRIOR = {"prior": "autoregressive", "hidden": 64, "depth": 2, "fit": {"steps": 3000}}


def with_symbols(base: str, prior: dict = SYMBOL_PRIOR) -> Callable[[str, int], dict]:
    """The spec maker of `base` with its network conditioned on the drawn sequence and `prior` over sequences."""
    def edit(spec: dict, profile: str, seed: int) -> None:
        spec["symbols"] = copy.deepcopy(prior)
        spec["eval"]["oracle_distance"] = False
        if profile == "smoke":
            spec["symbols"]["fit"] = {"steps": 200}
    return derive(base, edit)


_SYMBOLS = "Remedy, explicit symbol knowledge: {} conditioned on the sequence, an autoregressive prior over symbols"
register(Experiment("quarter-digits-unet-symbols", _SYMBOLS.format("the Quarter-digits UNet"),
                    with_symbols("quarter-digits-unet")))
register(Experiment("quarter-digits-unet-ema-symbols", _SYMBOLS.format("the Quarter-digits UNet (EMA 0.995)"),
                    with_symbols("quarter-digits-unet-ema")))
register(Experiment("parity-mlp-L16-symbols", _SYMBOLS.format("the parity L=16 hypercube MLP"),
                    with_symbols("parity-mlp-L16")))
register(Experiment("parity-parens-L16-unet-symbols", _SYMBOLS.format("the parity L=16 parenthesis UNet"),
                    with_symbols("parity-parens-L16-unet")))

