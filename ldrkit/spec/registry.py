"""The registry of named experiments: `Experiment`, `register`, `get_experiment`, and `derive`, the one way to
make a variant of a registered experiment (kappa at every evaluation, an exact oracle in place of the network,
the symbol-conditioned remedy, a smaller lexicon, a weight average).

The families that register experiments are `ldrkit.spec.parity`, `stairs`, `parens`, `quarter`, `remedies` and
`text`; importing any module of `ldrkit.spec` loads them all (the package's `__init__`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

from .hashing import UnknownNameError, check_profile
from .sizes import COUPLING_SAMPLES


@dataclass(frozen=True)
class Experiment:
    """A named experiment: its spec for each profile and its kind ("train", "oracle" or "stairs")."""

    name: str
    summary: str
    make_config: Callable[[str, int], dict]
    kind: str = "train"

    def config(self, profile: str, seed: int = 0) -> dict:
        check_profile(profile)
        return self.make_config(profile, seed)


EXPERIMENTS: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def get_experiment(name: str) -> Experiment:
    """The registered experiment `name`; NAME-kappa is NAME with kappa at every evaluation for any image experiment."""
    if name not in EXPERIMENTS and name.endswith(KAPPA_SUFFIX) and name.removesuffix(KAPPA_SUFFIX) in EXPERIMENTS:
        base = name.removesuffix(KAPPA_SUFFIX)
        if not records_kappa(base):
            raise UnknownNameError(f"unknown experiment {name!r}: {base} is not a trained image experiment "
                                   "(no rule and product oracles to calibrate kappa) or already records kappa")
        register(kappa_experiment(base))
    if name not in EXPERIMENTS:
        raise UnknownNameError(f"unknown experiment {name!r}; valid experiments: {', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[name]


def derive(base: str, edit: Callable[[dict, str, int], dict | None]) -> Callable[[str, int], dict]:
    """The spec maker of a variant of the registered experiment `base`: its spec at (profile, seed), a deep copy
    passed to `edit(spec, profile, seed)`, which changes it in place (or returns a new dict)."""
    def make(profile: str, seed: int) -> dict:
        spec = copy.deepcopy(get_experiment(base).config(profile, seed))
        edited = edit(spec, profile, seed)
        return spec if edited is None else edited
    return make


# --- kappa at every evaluation ------------------------------------------------------------------------

KAPPA_SUFFIX = "-kappa"
"""NAME-kappa: the experiment NAME with kappa recorded at every evaluation (registered on first use for any image
experiment, at its LDR levels; a distinct spec and hash, so NAME's stored runs stay valid)."""


def kappa_experiment(base: str, levels: list[float] | None = None) -> Experiment:
    """The experiment BASE-kappa: `base` with kappa recorded at every evaluation (eval.coupling_samples noised
    training inputs per level), at `levels` (default: its LDR levels)."""
    def edit(spec: dict, profile: str, seed: int) -> None:
        spec["eval"]["coupling_samples"] = COUPLING_SAMPLES[profile]
        spec["eval"]["coupling_levels"] = levels
    at = f" (sqrt(alpha_bar) = {', '.join(map(str, levels))})" if levels else ""
    return Experiment(base + KAPPA_SUFFIX, f"{base} with the coupling score kappa recorded at every evaluation{at}",
                      derive(base, edit))


def records_kappa(name: str) -> bool:
    """True when `name` is a trained image experiment (it has evaluations and a grammar, so a rule and a product
    oracle) that does not already record kappa."""
    experiment = EXPERIMENTS.get(name)
    if experiment is None or experiment.kind != "train":
        return False
    config = experiment.config("smoke", 0)
    return "grammar" in config and "oracle" not in config and not config.get("eval", {}).get("coupling_samples")


# --- exact denoisers in place of the network ----------------------------------------------------------

ORACLES = ("rule", "product", "memoriser")  # the exact denoisers of an experiment's data (ldrkit.denoisers.oracles)


def oracle_experiment(base: str, which: str) -> Experiment:
    """`BASE-oracle-WHICH`: the base experiment's data and evaluation, with an exact denoiser and no training."""
    return Experiment(f"{base}-oracle-{which}", f"The exact {which} denoiser on the data of {base} (sampling only)",
                      derive(base, lambda spec, profile, seed: {**spec, "oracle": which}), kind="oracle")


def register_oracles(base: str, whiches: tuple[str, ...] = ORACLES) -> None:
    """Register BASE-oracle-WHICH for each exact denoiser."""
    for which in whiches:
        register(oracle_experiment(base, which))
