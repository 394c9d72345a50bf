"""The check behind the tests that the results store gives what a chapter reads at the cpu profile."""
from __future__ import annotations

from pathlib import Path

from ldrkit.spec.registry import get_experiment
from ldrkit.spec.hashing import spec_hash
from ldrkit.runs.store import find_stored


def assert_stored(name: str, seed: int, profile: str = "cpu") -> Path:
    """The stored run of (name, profile, seed) made by the current spec; an assertion error naming it otherwise."""
    path = find_stored(name, profile, seed, spec_hash(get_experiment(name).config(profile, seed)))
    assert path is not None, f"{name} seed {seed} is not stored"
    return path
