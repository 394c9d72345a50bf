"""The theory runs of section 5 (appendix A.8): the three stairs of a two-layer ReLU network on parity, the
waiting time on its univariate plateau against d, and the same network on parity tilted by a pairwise term."""
from __future__ import annotations

import copy

from .hashing import UnknownNameError, check_profile, merge
from .registry import Experiment, register
from .sizes import STAIRS, STAIRS_CPU_ADAM_STEPS_D16


# The three stairs of a two-layer ReLU network on parity (section 5, appendix A.8).
def stairs_spec(d: int, profile: str, seed: int) -> dict:
    base = {"d": d, "seed": seed, "sqrt_alpha_bar": 0.9, "sigma_init": 1e-3, "r": 1.0, "coordinate": 0,
            "dtype": "float32", "level_samples": 1 << 18}
    spec = merge(base, copy.deepcopy(STAIRS[check_profile(profile)]))
    if profile == "cpu" and d > 8:
        spec["phases"][1]["steps"] = STAIRS_CPU_ADAM_STEPS_D16
    return spec


for _d in (8, 16):
    register(Experiment(f"three-stairs-d{_d}",
                        f"Two-layer ReLU network learning coordinate 1 of the parity score on {{+-1}}^{_d}",
                        lambda profile, seed, d=_d: stairs_spec(d, profile, seed), kind="stairs"))


# The waiting time on the univariate plateau against d: plain SGD only (the gradient flow of section 5, no
# optimiser switch), stopped once the smoothed loss is below 0.85 x the univariate level (just past the
# departure from the plateau at 0.9 x, stairs.DEPARTURE_FRACTION), or censored at `steps`.
STAIRS_WAIT = {"smoke": {"width": 64, "batch": 256, "record_every": 10, "snapshots": 10, "level_samples": 1 << 14,
                         "lr": 0.05, "steps": {3: 600, 4: 600, 5: 600, 6: 600, 7: 600, 8: 600}},
               "cpu": {"width": 512, "batch": 1024, "record_every": 50, "snapshots": 20, "lr": 0.05,
                       "steps": {3: 20000, 4: 30000, 5: 40000, 6: 60000, 7: 80000, 8: 80000}}}
STAIRS_WAIT["paper"] = STAIRS_WAIT["cpu"]


def stairs_wait_spec(d: int, profile: str, seed: int) -> dict:
    """The stairs network on uniform parity in {+-1}^d under plain SGD until it leaves the univariate plateau."""
    sizes = dict(STAIRS_WAIT[check_profile(profile)])
    steps, lr = sizes.pop("steps"), sizes.pop("lr")
    if d not in steps:
        raise UnknownNameError(f"no waiting-time run for d={d} at profile {profile}; valid d: {sorted(steps)}")
    base = {"d": d, "seed": seed, "sqrt_alpha_bar": 0.9, "sigma_init": 1e-3, "r": 1.0, "coordinate": 0,
            "dtype": "float32", "level_samples": 1 << 18, "stop_below": 0.85}
    return merge(base, {**sizes, "phases": [{"optimizer": "sgd", "lr": lr, "lr_end": lr, "steps": steps[d]}]})


for _d in STAIRS_WAIT["cpu"]["steps"]:
    register(Experiment(f"stairs-wait-d{_d}", f"Steps the stairs network waits on the univariate plateau of parity "
                        f"in {{+-1}}^{_d} under plain SGD", lambda profile, seed, d=_d: stairs_wait_spec(d, profile, seed),
                        kind="stairs"))

# The bias switched off? The same network and SGD phase on parity tilted by a pairwise term between the output
# coordinate and one other (stairs.Distribution "tilted-parity": E[x_1 x_2] = strength, Assumption 5.1 broken).
STAIRS_TILTS = (0.0, 0.1, 0.3, 1.0)


def stairs_tilt_spec(strength: float, profile: str, seed: int) -> dict:
    spec = stairs_spec(8, profile, seed)
    spec["phases"] = spec["phases"][:1]  # gradient descent only, twice the recipe's phase: where does it settle?
    spec["phases"][0]["steps"] *= 2
    if profile == "smoke":  # the enumerated target costs 2^(d-1) terms a sample: a smaller smoke run
        spec.update(batch=128, level_samples=1 << 12)
        spec["phases"][0]["steps"] = 600
    spec["distribution"] = {"name": "tilted-parity", "pair": [0, 1], "strength": strength}
    return spec


for _s in STAIRS_TILTS:
    register(Experiment(f"stairs-tilt-{_s:g}", f"The stairs network under SGD on parity in {{+-1}}^8 tilted so that "
                        f"E[x_1 x_2] = {_s:g}", lambda profile, seed, s=_s: stairs_tilt_spec(s, profile, seed),
                        kind="stairs"))

