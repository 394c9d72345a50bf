"""Fault injection: the results store and the run folder never lose, forge or silently misread a run.

Each test reproduces a failure a careless or hostile user met on 41d7c70 (issue "Results you can
trust") and checks that it now gives a clear error or the correct result, with no data lost. One
smoke run of parity-mlp-L8 (trained once per module) is copied into each test's folders.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ldrkit.runs import store
from ldrkit.analysis.overtraining import ldr_over_training
from ldrkit.runs.request import run_experiment
from ldrkit.runs.files import RunFolderError, read_jsonl
from ldrkit.runs.run import ConfigMismatchError, Run

NAME, PROFILE = "parity-mlp-L8", "smoke"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished smoke run of parity-mlp-L8 (trained once for this module)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    run_experiment(NAME, PROFILE, 0, out=out, progress=False, use_store=False)
    return out


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    dest = tmp_path / "runs" / NAME / f"{PROFILE}-seed0"
    shutil.copytree(trained, dest)
    return dest


@pytest.fixture
def results(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "results"
    monkeypatch.setenv("LDRKIT_RESULTS", str(root))
    return root


def cli(*args: str) -> subprocess.CompletedProcess:
    """The command line, run in this process (`python -m ldrkit` is `ldrkit.__main__.main`): exit code and stderr."""
    import contextlib
    import io

    from ldrkit.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse's own errors
                code = exit_.code
    finally:
        os.chdir(cwd)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


# --- the store -----------------------------------------------------------------------------------

def test_store_refuses_the_store_itself_and_loses_nothing(run_copy, results, monkeypatch):
    stored = store.store_run(run_copy)
    before = sorted(p.name for p in stored.iterdir())
    with pytest.raises(RunFolderError, match="stored run itself"):
        store.store_run(stored)
    assert sorted(p.name for p in stored.iterdir()) == before


def test_store_keeps_the_checkpoints_the_stored_run_kept(run_copy, results):
    stored = store.store_run(run_copy, keep_steps=(150,))
    assert (stored / "model_0000150.safetensors").exists()
    restored = run_copy.parent / "restored"
    store.restore_run(stored, restored)  # a restored run holds only the kept checkpoints
    assert Run(restored).steps() == [150, 300]
    store.store_run(restored)  # storing it again must not drop step 150
    assert json.loads((stored / "provenance.json").read_text())["checkpoint_steps"] == [150, 300]
    assert (stored / "model_0000150.safetensors").exists()


def test_store_refuses_a_run_of_another_spec(run_copy, results):
    metrics = json.loads((run_copy / "metrics.json").read_text())
    (run_copy / "metrics.json").write_text(json.dumps({**metrics, "config_hash": "0" * 16}))
    Run(run_copy).write_finished("trained")  # a finished run that an older spec made
    with pytest.raises(RunFolderError, match="rerun it before storing"):
        store.store_run(run_copy)
    assert not results.exists() or not any(results.rglob("provenance.json"))


def test_a_hand_edited_stored_file_is_never_served(run_copy, results, tmp_path):
    stored = store.store_run(run_copy)
    metrics = json.loads((stored / "metrics.json").read_text())
    metrics["final"]["categories"]["invalid"] = 0.5  # categories now sum to 1.5
    (stored / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(RunFolderError, match="metrics.json does not match"):
        store.restore_run(stored, tmp_path / "out")
    raw = bytearray((stored / "model_0000300.safetensors").read_bytes())
    raw[-100:] = bytes(100)
    (stored / "model_0000300.safetensors").write_bytes(bytes(raw))
    with pytest.raises(RunFolderError):
        store.verify_stored(stored)


def test_an_interrupted_store_leaves_the_old_stored_run_intact(run_copy, results, monkeypatch):
    stored = store.store_run(run_copy)
    before = {p.name: p.read_bytes() for p in stored.iterdir() if p.is_file()}

    def dies(*args, **kwargs):
        raise KeyboardInterrupt  # as a kill in the middle of copying would
    monkeypatch.setattr(store, "copy_verified", dies)
    with pytest.raises(KeyboardInterrupt):
        store.store_run(run_copy)
    assert {p.name: p.read_bytes() for p in stored.iterdir() if p.is_file()} == before
    store.verify_stored(stored)


def test_sigkill_during_store_leaves_a_verified_run(run_copy, results):
    stored = store.store_run(run_copy)
    code = f"from ldrkit.runs import store\nwhile True: store.store_run({str(run_copy)!r})\n"
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "LDRKIT_RESULTS": str(results)})
    time.sleep(6)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store.verify_stored(stored)  # whichever moment it died, the stored run is whole


def test_a_kill_between_the_two_renames_of_the_swap_is_undone(run_copy, results):
    stored = store.store_run(run_copy)
    os.replace(stored, stored.parent / f".{stored.name}.old-12345")  # the state a kill there leaves
    assert not stored.exists()
    assert store.verify_stored(stored)["config_hash"] == Run(run_copy).hash
    assert stored.exists() and not list(stored.parent.glob(".*.old-*"))


def test_a_stale_stored_run_is_reported_before_retraining(run_copy, results, capsys, tmp_path, monkeypatch):
    stored = store.store_run(run_copy)
    provenance = json.loads((stored / "provenance.json").read_text())
    provenance["config_hash"], provenance["wall_seconds"] = "f" * 16, 1800
    (stored / "provenance.json").write_text(json.dumps(provenance))
    monkeypatch.setenv("LDRKIT_RUNS", str(tmp_path / "fresh-runs"))
    message = store.stale_stored(NAME, PROFILE, 0, Run(run_copy).hash)
    assert "older spec" in message and "about 30 minutes" in message


def test_fresh_always_trains(run_copy, results, tmp_path, monkeypatch):
    store.store_run(run_copy)
    monkeypatch.setenv("LDRKIT_RUNS", str(tmp_path / "r"))
    restored = run_experiment(NAME, PROFILE, 0, progress=False)
    assert "restored_from" in restored
    fresh = run_experiment(NAME, PROFILE, 0, progress=False, fresh=True)
    assert "restored_from" not in fresh and fresh["wall_seconds"] < 600
    assert (tmp_path / "r" / NAME / "stale").exists()  # the restored copy was moved aside, not deleted


# --- the run folder ------------------------------------------------------------------------------

def test_a_changed_checkpoint_is_refused_and_its_cache_recomputed(run_copy):
    run = Run(run_copy)
    first = ldr_over_training(run, n=2)
    path = run.checkpoint_path(300)
    good = path.read_bytes()
    raw = bytearray(good)
    raw[-8192:] = bytes(8192)  # zero 8 KiB of weights: a plausible file with wrong numbers
    path.write_bytes(bytes(raw))
    with pytest.raises(RunFolderError, match="has changed since it was written"):
        run.model(300)
    with pytest.raises(RunFolderError):
        ldr_over_training(run, n=2)
    path.write_bytes(good)  # repaired: the cache entry computed from this file is served again
    assert ldr_over_training(run, n=2) == first


def test_a_changed_resume_file_is_refused_before_training_resumes(run_copy):
    resume = run_copy / "resume.safetensors"
    raw = bytearray(resume.read_bytes())
    raw[-8192:] = bytes(8192)
    resume.write_bytes(bytes(raw))
    for name in ("finished.json", "metrics.json"):  # unfinished: the next run resumes from resume.safetensors
        (run_copy / name).unlink()
    with pytest.raises(RunFolderError, match="resume.safetensors has changed"):
        run_experiment(NAME, PROFILE, 0, out=run_copy, progress=False, use_store=False)


def test_a_kill_while_resume_is_replaced_leaves_a_file_the_manifest_accepts(run_copy):
    run = Run(run_copy)
    manifest = run.manifest()
    old = manifest["resume"]
    (run_copy / "checkpoints.json").write_text(json.dumps({**manifest, "resume": [old, "0" * 64]}))
    assert run.check_digest("resume", run.resume_path) == old  # killed before the new file landed
    (run_copy / "checkpoints.json").write_text(json.dumps({**manifest, "resume": ["0" * 64]}))
    with pytest.raises(RunFolderError):
        run.check_digest("resume", run.resume_path)


def test_a_truncated_checkpoint_names_its_file(run_copy):
    from ldrkit.runs.run import load_checkpoint

    run = Run(run_copy)
    path = run.checkpoint_path(150)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(RunFolderError, match="model_0000150.safetensors has changed since it was written"):
        run.model(150)  # the manifest catches it first
    with pytest.raises(RunFolderError, match="model_0000150.safetensors is not a readable checkpoint"):
        load_checkpoint(path, run.setup.build_model(run.config))  # and the reader itself fails clearly


def test_a_torn_last_record_is_dropped_and_recomputed(run_copy):
    records = read_jsonl(run_copy / "metrics.jsonl")
    for name in ("finished.json", "metrics.json"):
        (run_copy / name).unlink()
    (run_copy / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"step": 3')
    with pytest.warns(UserWarning, match="torn last line"):
        metrics = run_experiment(NAME, PROFILE, 0, out=run_copy, progress=False, use_store=False)
    assert [e["step"] for e in metrics["evaluations"]] == [r["step"] for r in records]


def test_another_experiment_never_overwrites_a_run_folder(run_copy):
    for other in ("parity-mlp-L16-oracle-rule", "three-stairs-d8"):
        with pytest.raises(ConfigMismatchError):
            run_experiment(other, PROFILE, 0, out=run_copy, progress=False)
    assert json.loads((run_copy / "metrics.json").read_text())["experiment"] == NAME


def test_two_processes_never_train_one_folder(tmp_path):
    out = tmp_path / "shared"
    with Run(out).lock():
        result = cli("run", NAME, "--profile", PROFILE, "--out", str(out), "--quiet")
    assert result.returncode == 2
    assert "is in use by pid" in result.stderr and "Traceback" not in result.stderr


def test_a_model_that_returns_nan_stops_the_run_naming_the_step(tmp_path, monkeypatch):
    from ldrkit.denoisers import models

    original = models.MLPDenoiser.forward
    monkeypatch.setattr(models.MLPDenoiser, "forward", lambda self, x, t: original(self, x, t) * float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite|loss is nan"):
        run_experiment(NAME, PROFILE, 0, out=tmp_path / "nan", progress=False, use_store=False)


# --- one-line errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["run", NAME, "--profile", PROFILE, "--seed", "-1"], "seed must be an integer"),
    (["run", NAME, "--profile", PROFILE, "--seed", str(2**60)], "seed must be an integer"),
    (["run", NAME, "--profile", "bogus"], "unknown profile"),
    (["reproduce", "--profile", "bogus"], "unknown profile"),
    (["ldr", "/nonexistent-run-folder"], "not a run folder"),
    (["chapter", "run", "book", "--out", "/tmp/x"], "a folder"),
    (["chapter", "run", "book/parity-mlp.md", "--out", "/tmp/x", "-p", "profil", "smoke"], "has no parameter 'profil'"),
    (["chapter", "run", "book/parity-mlp.md", "--out", "/tmp/x", "-p", "profile", "smok"], "unknown profile"),
    (["bench", "train", "--steps", "0"], "--steps must be at least 1"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, message):
    result = cli(*args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]


def test_cli_run_folder_problems_are_one_line(run_copy, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for args, message in [(["run", NAME, "--profile", PROFILE, "--out", str(a_file)], "is a file"),
                          (["run", "parity-mlp-L16", "--profile", PROFILE, "--out", str(run_copy)], "another config"),
                          (["ldr", str(run_copy), "--probes", "1", "--method", "estimate"], "--probes must be at least 2"),
                          (["ldr", str(run_copy), "--n", "-3"], "--n must be at least 1"),
                          (["ldr", str(run_copy), "--n", "0"], "--n must be at least 1")]:
        result = cli(*args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, \
            (args, result.stderr[-2000:])
    assert not list(run_copy.glob("ldr_over_training.json"))  # nothing NaN was cached


def test_out_of_range_positions_and_timesteps_are_refused():
    from ldrkit.denoisers.schedule import Schedule
    from ldrkit.probes.ldr import ldr
    from ldrkit.systems.render import ScalarRenderer

    with pytest.raises(ValueError, match="position must be"):
        ScalarRenderer(8).region(-1)
    with pytest.raises(ValueError, match="t must be a timestep"):
        ldr(lambda x, t: x, Schedule(), torch.ones(4, dtype=torch.bool), inputs=torch.zeros(2, 4), t=-1)


def test_stored_runs_all_verify():
    """Every run in the repository's results store matches its recorded file digests and spec hash."""
    from ldrkit.spec.registry import get_experiment
    from ldrkit.spec.hashing import spec_hash

    root = ROOT / "results"
    provenances = list(root.glob("*/*/provenance.json"))
    assert provenances
    for path in provenances:
        provenance = store.verify_stored(path.parent)
        spec = get_experiment(provenance["experiment"]).config(provenance["profile"], provenance["seed"])
        assert provenance["config_hash"] == spec_hash(spec), path.parent
    assert np.all([json.loads(p.read_text()).get("files") for p in provenances])


def test_sweep_runs_a_grid_on_two_workers_and_summarises(tmp_path, monkeypatch):
    """Two one-thread workers, two seeds: both runs finish in their ordinary folders; a rerun reuses them."""
    from ldrkit.runs.sweep import format_summary, run_grid, summarise

    monkeypatch.setenv("LDRKIT_RUNS", str(tmp_path / "grid"))
    metrics = run_grid([NAME], PROFILE, [0, 1], workers=2, echo=lambda *a: None)
    assert [m["seed"] for m in metrics] == [0, 1]
    assert all((tmp_path / "grid" / NAME / f"{PROFILE}-seed{s}" / "metrics.json").exists() for s in (0, 1))
    rows = summarise(metrics)
    assert rows[0]["seeds"] == 2
    assert sum(rows[0][c] for c in ("invalid", "hallucination", "in_dataset", "extrapolation")) == pytest.approx(1)
    assert NAME in format_summary(rows)
    again = run_grid([NAME], PROFILE, [0, 1], workers=1, echo=lambda *a: None)
    assert [m["wall_seconds"] for m in again] == [m["wall_seconds"] for m in metrics]  # reused, not retrained


def test_sweep_submits_the_grid_as_submitit_jobs(tmp_path, monkeypatch):
    """The cluster route: one submitit job per run (here submitit's local processes, two at once), the same
    run folders and metrics as the pool."""
    from ldrkit.runs.sweep import run_grid

    monkeypatch.setenv("LDRKIT_RUNS", str(tmp_path / "grid"))
    cluster = {"folder": str(tmp_path / "jobs"), "cluster": "local", "timeout_min": 10}
    metrics = run_grid([NAME], PROFILE, [0, 1], launcher="submitit", cluster=cluster, echo=lambda *a: None)
    assert [(m["experiment"], m["seed"]) for m in metrics] == [(NAME, 0), (NAME, 1)]
    assert all((tmp_path / "grid" / NAME / f"{PROFILE}-seed{s}" / "metrics.json").exists() for s in (0, 1))
    assert list((tmp_path / "jobs").glob("*_log.err"))
    again = run_grid([NAME], PROFILE, [0, 1], workers=1, echo=lambda *a: None)  # the pool finds them finished
    assert [m["wall_seconds"] for m in again] == [m["wall_seconds"] for m in metrics]
    with pytest.raises(ValueError, match="launcher"):
        run_grid([NAME], PROFILE, [0], launcher="ray")


def test_sweep_summary_pools_seeds_with_a_wilson_interval():
    from ldrkit.probes.estimates import wilson
    from ldrkit.runs.sweep import summarise

    def metrics(seed, invalid, hallucination):
        cats = {"invalid": invalid, "hallucination": hallucination, "in_dataset": 0.0,
                "extrapolation": 1 - invalid - hallucination}
        return {"experiment": NAME, "profile": PROFILE, "seed": seed, "final": {"step": 1, "categories": cats}}
    row = summarise([metrics(0, 0.5, 0.25), metrics(1, 0.0, 0.5)])[0]  # 256 samples each at smoke
    assert row["invalid"] == pytest.approx(0.25) and row["invalid se"] == pytest.approx(0.25)
    assert row["broken among legible"] == pytest.approx((64 + 128) / (128 + 256))
    assert (row["interval low"], row["interval high"]) == pytest.approx(wilson(192, 384))


def test_a_cached_analysis_hashes_each_checkpoint_and_reads_the_manifest_once(run_copy, monkeypatch):
    import ldrkit.runs.run as runs

    hashed, read = [], []
    digest, manifest = runs.file_digest, runs.Run.manifest
    monkeypatch.setattr(runs, "file_digest", lambda path: hashed.append(Path(path).name) or digest(path))
    monkeypatch.setattr(runs.Run, "manifest", lambda self: read.append(1) or manifest(self))
    run = Run(run_copy)
    rows = run.cached("count_test", {}, None, lambda model, step: {"n": sum(p.numel() for p in model.parameters())})
    assert len(rows) == len(run.steps()) > 1
    assert sorted(hashed) == sorted(run.checkpoint_path(s).name for s in run.steps()) and len(read) == 1
