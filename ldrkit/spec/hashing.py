"""A spec's normal form and its hash: the name of a run (pure Python: computing it loads no torch).

A spec (the "config" of a run) is a JSON dict. `spec_hash` hashes the *normalised* spec
(optional keys filled with their defaults, None dropped, key order ignored), so a refactor that
changes no behaviour changes no hash, and writing a default out changes nothing.

Profiles (see the book's introduction):
- smoke: seconds; proves the path runs end to end (CI);
- cpu: minutes on a 2-core laptop CPU, sized so the chapter's phenomenon appears;
- paper: the paper's settings (appendix A.5), for a GPU.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os

PROFILES = ("smoke", "cpu", "paper")
LDR_LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)  # sqrt(alpha_bar) of the paper's Fig. 5, where the LDR is read by default


class UnknownNameError(ValueError):
    """An experiment or profile name that does not exist; the message lists the valid ones."""


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise UnknownNameError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    return profile


def resolve_profile(profile: str) -> str:
    """The profile to use: the LDRKIT_PROFILE environment variable (set by CI) wins over the argument."""
    return check_profile(os.environ.get("LDRKIT_PROFILE") or profile)


def merge(base: dict, overrides: dict) -> dict:
    """A deep copy of base with overrides merged in, nested dicts key by key."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# --- normalised specs and their hash ----------------------------------------------------------------

# Optional keys of a sampling experiment's spec and the value the code uses when a spec omits them.
DEFAULTS = {
    "data": {"center": False},
    "schedule": {"num_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear"},
    "train": {"ema_decay": None, "mixed_precision": "no"},
    "eval": {"sampler": "ddpm", "sample_steps": None, "sample_batch": None, "ldr_method": "exact",
             "ldr_probes": 32, "ldr_levels": list(LDR_LEVELS), "oracle_distance": False, "oracle_samples": 16,
             "coupling_samples": None, "coupling_levels": None},  # coupling_levels None: the ldr_levels
}


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value]
    return value


def normalise(spec: dict) -> dict:
    """The spec with its optional keys filled with their defaults and None values dropped.

    Two specs that make the same experiment normalise to the same dict. Theory specs (no
    "grammar") have no optional keys and only lose their None values.
    """
    if "grammar" in spec and "train" in spec:
        spec = merge(DEFAULTS, spec)
        if spec["eval"].get("ldr_method") != "estimate":
            spec["eval"].pop("ldr_probes", None)  # probes only matter to the estimator
    return _drop_none(spec)


def spec_hash(spec: dict) -> str:
    """A short stable hash of the normalised spec: the name of a run."""
    text = json.dumps(normalise(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def same_experiment(a: dict, b: dict) -> bool:
    """True when two specs build the same experiment (equal once normalised)."""
    return normalise(a) == normalise(b)

