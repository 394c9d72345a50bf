"""Every stored run is named by the spec its experiment builds today: the hash recomputed from the registry equals
the config_hash its provenance.json records, and its config.json normalises to that spec. A refactor that changed
a spec, or a registry that lost an experiment, fails here before the book retrains anything."""
import json
from pathlib import Path

import pytest

from ldrkit.spec.hashing import same_experiment, spec_hash
from ldrkit.spec.registry import get_experiment

ROOT = Path(__file__).resolve().parent.parent
STORED = sorted((ROOT / "results").glob("*/*/provenance.json"))


def test_the_store_holds_runs():
    assert len(STORED) >= 100, f"only {len(STORED)} stored runs under results/"


@pytest.mark.parametrize("provenance", STORED, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_stored_hash_is_the_registry_hash(provenance):
    stored = json.loads(provenance.read_text())
    spec = get_experiment(stored["experiment"]).config(stored["profile"], stored["seed"])
    assert spec_hash(spec) == stored["config_hash"], f"{provenance.parent}: the registry's spec has changed"
    assert provenance.parent.name == f"{stored['profile']}-seed{stored['seed']}"
    config = provenance.parent / "config.json"
    if config.exists():
        written = json.loads(config.read_text())
        assert written["hash"] == stored["config_hash"] and same_experiment(written["config"], spec)


def test_a_changed_spec_is_caught():
    """The negative case: one edited size gives another hash, so the check above can fail."""
    spec = get_experiment("parity-mlp-L8").config("cpu", 0)
    edited = json.loads(json.dumps(spec))
    edited["train"]["steps"] += 1
    assert spec_hash(edited) != spec_hash(spec) and not same_experiment(edited, spec)
