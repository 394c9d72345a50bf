"""The results store: a stored run is reused when its config hash matches and retrained when the config changes."""
import json
from pathlib import Path

import pytest

from ldrkit.runs import store
from ldrkit.runs.reproduce import reproduce
from ldrkit.spec.registry import EXPERIMENTS, Experiment, get_experiment
from ldrkit.runs.request import run_experiment
from ldrkit.analysis.overtraining import ldr_over_training


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """A registered copy of parity-mlp-L8 at the smoke profile whose step count the test can change."""
    monkeypatch.setenv("LDRKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("LDRKIT_RESULTS", str(tmp_path / "results"))
    steps = {"n": 60}
    base = get_experiment("parity-mlp-L8")

    def make(profile, seed):
        config = base.config(profile, seed)
        config["train"].update(steps=steps["n"], eval_every=steps["n"] // 2)
        config["eval"].update(num_samples=32, sample_steps=10, ldr_samples=2)
        return config

    monkeypatch.setitem(EXPERIMENTS, "tiny-store-test", Experiment("tiny-store-test", "test", make))
    return steps


def test_stored_run_is_restored_without_training(tiny, tmp_path):
    first = run_experiment("tiny-store-test", "smoke", 0, progress=False)
    rows = ldr_over_training(first["run_dir"], n=2)
    stored = store.store_run(first["run_dir"])
    provenance = json.loads((stored / "provenance.json").read_text())
    assert provenance["config_hash"] == first["config_hash"] and provenance["checkpoint_steps"] == [60]
    assert "commit" in provenance["code"]

    # A fresh machine: empty runs folder, only the store.
    (tmp_path / "runs").rename(tmp_path / "old-runs")
    again = run_experiment("tiny-store-test", "smoke", 0, progress=False)
    assert again["restored_from"] == str(stored)
    assert again["final"] == first["final"] and again["config_hash"] == first["config_hash"]
    assert not (tmp_path / "runs" / "tiny-store-test" / "smoke-seed0" / "resume.safetensors").exists()
    # Only the last weights are stored; the LDR of the others comes from the stored cache.
    assert ldr_over_training(again["run_dir"], n=2) == rows
    # Restoring leaves metrics.json as stored, so storing the restored run again changes no stored record.
    before = (stored / "metrics.json").read_bytes()
    assert (tmp_path / "runs" / "tiny-store-test" / "smoke-seed0" / "metrics.json").read_bytes() == before
    assert run_experiment("tiny-store-test", "smoke", 0, progress=False)["restored_from"] == str(stored)  # reused
    store.store_run(again["run_dir"])
    assert (stored / "metrics.json").read_bytes() == before and not list(stored.glob("restored*"))
    store.verify_stored(stored)


def test_a_restored_folder_gains_the_caches_stored_after_it(tiny, tmp_path):
    """A folder restored before a cache was stored (a chapter reading caches only would miss it) is topped up on the
    next run_experiment; a file it already has is left as it is, and a folder of another training gets nothing."""
    trained = run_experiment("tiny-store-test", "smoke", 0, progress=False)
    stored = store.store_run(trained["run_dir"])
    (tmp_path / "runs").rename(tmp_path / "trained")
    restored = run_experiment("tiny-store-test", "smoke", 0, progress=False)["run_dir"]
    assert not (Path(restored) / "ldr_over_training.json").exists()
    rows = ldr_over_training(tmp_path / "trained" / "tiny-store-test" / "smoke-seed0", n=2)
    store.store_run(tmp_path / "trained" / "tiny-store-test" / "smoke-seed0")   # the store gains the cache
    run_experiment("tiny-store-test", "smoke", 0, progress=False)
    assert json.loads((Path(restored) / "ldr_over_training.json").read_text()) == \
        json.loads((stored / "ldr_over_training.json").read_text())
    assert ldr_over_training(restored, n=2) == rows
    (Path(restored) / "ldr_over_training.json").write_text("{}")   # a file the folder has is its own
    assert store.top_up_restored(stored, Path(restored)) == []
    assert (Path(restored) / "ldr_over_training.json").read_text() == "{}"
    other = tmp_path / "other"
    (other).mkdir()
    (other / "metrics.json").write_text("{}")
    assert store.top_up_restored(stored, other) == []


def test_changed_config_is_retrained_and_the_old_run_moved_aside(tiny, tmp_path):
    first = run_experiment("tiny-store-test", "smoke", 0, progress=False)
    store.store_run(first["run_dir"])
    tiny["n"] = 80
    second = run_experiment("tiny-store-test", "smoke", 0, progress=False)
    assert "restored_from" not in second
    assert second["config_hash"] != first["config_hash"] and second["final"]["step"] == 80
    stale = tmp_path / "runs" / "tiny-store-test" / "stale" / f"smoke-seed0-{first['config_hash']}"
    assert (stale / "metrics.json").exists()


def test_explicit_out_of_another_config_is_refused(tiny, tmp_path):
    out = tmp_path / "mine"
    run_experiment("tiny-store-test", "smoke", 0, out=out, progress=False)
    tiny["n"] = 80
    from ldrkit.runs.run import ConfigMismatchError
    with pytest.raises(ConfigMismatchError):
        run_experiment("tiny-store-test", "smoke", 0, out=out, progress=False)


def test_reproduce_sets_stored_and_fresh_numbers_side_by_side(tiny, tmp_path):
    store.store_run(run_experiment("tiny-store-test", "smoke", 0, progress=False)["run_dir"])
    table = reproduce(["tiny-store-test"], "smoke", 0, out=tmp_path / "again", progress=False)
    assert (tmp_path / "again" / "reproduce.md").read_text().endswith(table)
    # Same seed, same code: the fresh run reproduces the stored numbers exactly.
    lines = [l for l in table.splitlines() if l.startswith("| tiny-store-test |") and "wall" not in l]
    assert lines and all(l.split("|")[5].strip() in ("+0.000", "-0.000") for l in lines)


def test_store_refuses_an_unfinished_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no finished run"):
        store.store_run(tmp_path)


def _refuse_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def test_metrics_files_are_strict_json():
    """NaN/Infinity are not JSON: an undefined value (an LDR of 0/0) must be written as null."""
    from pathlib import Path

    from ldrkit.runs.files import json_ready
    assert json_ready({"a": [float("nan"), 1.0, float("inf")], "b": {"c": -float("inf")}, "d": "x"}) == \
        {"a": [None, 1.0, None], "b": {"c": None}, "d": "x"}
    files = sorted(Path(store.store_root()).glob("*/*/metrics.json*"))
    assert files, "the results store holds no metrics"
    for path in files:
        for line in ([path.read_text()] if path.suffix == ".json" else path.read_text().splitlines()):
            json.loads(line, parse_constant=_refuse_constant)


def test_the_store_and_the_run_folders_are_found_from_any_working_directory(tmp_path, monkeypatch):
    """A chapter runs with book/ (or a temporary folder) as its working directory: the results store and runs/
    are still the repository's."""
    from ldrkit.runs.request import default_runs_dir
    monkeypatch.delenv("LDRKIT_RESULTS", raising=False)
    monkeypatch.delenv("LDRKIT_RUNS", raising=False)
    monkeypatch.chdir(tmp_path)
    repo = Path(__file__).resolve().parent.parent
    assert store.store_root() == repo / "results" and (store.store_root() / "parity-mlp-L8").is_dir()
    assert default_runs_dir() == repo / "runs"


def test_a_retrained_twin_inherits_the_stored_caches_and_another_training_does_not(tiny, tmp_path):
    """The same spec trained twice gives the same tensors (one thread, CPU): its stored caches carry over, re-keyed
    to the new files' digests, and are served without recomputing; a run of another seed inherits nothing."""
    first = run_experiment("tiny-store-test", "smoke", 0, progress=False)
    ldr_over_training(first["run_dir"], n=2)
    stored = store.store_run(first["run_dir"])
    again = run_experiment("tiny-store-test", "smoke", 0, out=tmp_path / "again", progress=False, fresh=True,
                           use_store=False)
    assert store.same_training(stored, Path(again["run_dir"])) is None
    assert store.carry_caches(stored, Path(again["run_dir"])) == ["ldr_over_training.json"]

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed a carried cache")
    import ldrkit.analysis.overtraining as overtraining
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(overtraining.ldr_probe, "ldr_levels", refuse)
        assert ldr_over_training(again["run_dir"], n=2) == ldr_over_training(first["run_dir"], n=2)
    other = run_experiment("tiny-store-test", "smoke", 1, out=tmp_path / "other", progress=False)
    assert store.same_training(stored, Path(other["run_dir"])) is not None
    assert store.carry_caches(stored, Path(other["run_dir"])) == []


def test_code_version_names_the_change_a_dirty_run_came_from(tmp_path, monkeypatch):
    """A clean tree records its commit; a change to anything that shapes a run (here requirements.txt in a copy of
    the repository) makes it dirty and records the change's SHA-256, which differs for another change."""
    import shutil
    import subprocess
    repo = tmp_path / "repo"
    (repo / "ldrkit").mkdir(parents=True)
    (repo / "ldrkit" / "a.py").write_text("x = 1\n")
    (repo / "requirements.txt").write_text("torch==2.13.0\n")
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    monkeypatch.setattr(store, "ROOT", repo)
    clean = store.code_version()
    assert clean["dirty"] is False and "diff_sha256" not in clean and len(clean["commit"]) == 40
    (repo / "requirements.txt").write_text("torch==2.14.1\n")
    first = store.code_version()
    (repo / "ldrkit" / "b.py").write_text("y = 2\n")  # an untracked module counts too
    second = store.code_version()
    assert first["dirty"] and second["dirty"] and first["diff_sha256"] != second["diff_sha256"]
    shutil.rmtree(repo / ".git")
    assert store.code_version() == {"commit": "unknown", "dirty": None}
