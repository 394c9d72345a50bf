"""Fault injection for issue 42: nothing lost, nothing served that was not checked.

One test (or one parametrized case) per case of the issue's ten groups. Faults are injected three ways:
a kill at a named point (`ldrkit.runs.files.fault_point`, in a child process, SIGKILL), a full disk
(os.fsync patched to fail with ENOSPC for the file being written), and files corrupted, removed or
added by hand. A few tests build the state that older code left behind (a half-done restore, a step-0
record without its checkpoint) and check that it is repaired. Runs are smoke runs of parity-mlp-L8,
trained once per module (`trained`, from tests/test_trust.py) and copied into each test's folders.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ldrkit.runs import store
from ldrkit.runs.files import KILL_ENV, RunFolderError
from ldrkit.runs.request import run_experiment
from ldrkit.runs.run import ConfigMismatchError, Run
from test_trust import NAME, PROFILE, ROOT, cli, results, run_copy, trained  # noqa: F401  (fixtures)

STEP = "smoke-seed0"


@pytest.fixture
def stored(run_copy, results, tmp_path) -> Path:
    """The smoke run in the (temporary) results store, and no copy of it in runs/: the next request restores it."""
    path = store.store_run(run_copy)
    run_copy.rename(tmp_path / "trained-copy")
    return path


def one_line_error(result, *fragments: str) -> str:
    """The stderr of a command that must fail with one line `error: ...`, exit status 2, naming `fragments`."""
    err = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, err[-2000:])
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err, err[-2000:]
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def killed_at(point: str, code: str) -> None:
    """Run `code` in a child process that kills itself at the named fault point; it must die there."""
    child = subprocess.run([sys.executable, "-c", code], env={**os.environ, KILL_ENV: point}, capture_output=True,
                           text=True)
    assert child.returncode == -9, (point, child.returncode, child.stderr[-2000:])


def request_code(**kwargs) -> str:
    """Python that requests the smoke run (in a child process; LDRKIT_RUNS and LDRKIT_RESULTS are inherited)."""
    extra = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    return (f"from ldrkit.runs.request import run_experiment\n"
            f"run_experiment({NAME!r}, {PROFILE!r}, 0, progress=False{extra})")


def disk_full(monkeypatch, fragment: str) -> None:
    """Make every fsync of a file whose path contains `fragment` fail as a full disk would (ENOSPC)."""
    real = os.fsync

    def fsync(fd):
        if fragment in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)
    monkeypatch.setattr(os, "fsync", fsync)


def read_only(monkeypatch, folder: Path) -> None:
    """Make `folder` and everything under it read-only as os.access sees it (the tests may run as root)."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if mode & os.W_OK and
                        os.path.abspath(path).startswith(str(folder)) else real(path, mode, *a, **k))


def snapshot(folder: Path) -> dict[str, str]:
    """{relative path: SHA-256} of every file under `folder`, dot files included."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def redigest(stored: Path, update=(), drop=()) -> None:
    """What a hostile user does after editing stored files: record their new digests in provenance.json."""
    provenance = json.loads((stored / "provenance.json").read_text())
    provenance["files"].update({rel: store.file_digest(stored / rel) for rel in update})
    for rel in drop:
        del provenance["files"][rel]
    (stored / "provenance.json").write_text(json.dumps(provenance))


def default_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs" / NAME / STEP


# --- 1. a partial restore never counts as finished -----------------------------------------------------------

def test_1_disk_full_during_a_restore_leaves_no_finished_run(stored, tmp_path, monkeypatch):
    out = default_dir(tmp_path)
    with monkeypatch.context() as patch:
        disk_full(patch, "model_0000300")
        one_line_error(cli("run", NAME, "--profile", PROFILE, "--quiet"), "No space left", "model_0000300",
                       "free space")
    assert not Run(out).is_finished() and not (out / "metrics.json").exists()
    assert not list(out.parent.glob(".*restoring*"))  # the temporary copy went with the error
    again = run_experiment(NAME, PROFILE, 0, progress=False)
    assert again["restored_from"] == str(stored) and Run(out).is_finished()
    weights = "model_0000300.safetensors"
    assert store.file_digest(out / weights) == store.file_digest(stored / weights)


@pytest.mark.parametrize("point", ["restore:copied", "lock:replacing"])
def test_1_a_kill_during_a_restore_leaves_nothing_half_done(stored, tmp_path, point):
    """Killed after copying every file (before the completion record) or between the lock's removal and the
    rename: the run folder holds no run, and the next request restores it whole and clears the leftovers."""
    out = default_dir(tmp_path)
    killed_at(point, request_code())
    assert not Run(out).exists() and not Run(out).is_finished()
    assert list(out.parent.glob(f".{STEP}.restoring-*"))  # the dead process's temporary copy
    metrics = run_experiment(NAME, PROFILE, 0, progress=False)
    assert metrics["restored_from"] == str(stored) and Run(out).is_finished()
    assert not list(out.parent.glob(f".{STEP}.restoring-*"))


def _half_restored(out: Path, damage: str) -> None:
    """The run folder as older code's file-by-file restore left it when a full disk or a kill cut it short."""
    run_experiment(NAME, PROFILE, 0, progress=False)
    for name in ("finished.json", "restored_from.txt"):  # older code wrote neither before the copy was done
        (out / name).unlink()
    weights = out / "model_0000300.safetensors"
    if damage == "cut checkpoint":  # disk full: metrics.json copied, the checkpoint cut short
        weights.write_bytes(weights.read_bytes()[:100_000])
    elif damage == "last checkpoint missing":  # killed before the last checkpoint was copied
        weights.unlink()
    else:  # killed right after config.json was copied
        for path in out.iterdir():
            if path.name not in ("config.json", ".lock"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()


@pytest.mark.parametrize("damage", ["cut checkpoint", "last checkpoint missing", "only config.json"])
def test_1_an_older_half_restore_is_restored_again_not_served_or_retrained(stored, tmp_path, damage, capsys):
    out = default_dir(tmp_path)
    _half_restored(out, damage)
    assert not Run(out).is_finished()  # metrics.json alone does not make a finished run
    metrics = run_experiment(NAME, PROFILE, 0, progress=False)
    assert metrics["restored_from"] == str(stored)  # restored, not retrained from scratch
    assert not (out / "resume.safetensors").exists()
    assert Run(out).steps() == [300] and Run(out).model(300) is not None  # the whole, checked checkpoint
    assert "not a finished run" in capsys.readouterr().out  # said, not silent
    assert list((out.parent / "stale").glob(f"{STEP}-unfinished*/config.json"))  # the half copy kept aside


def test_1_a_run_finished_by_older_code_is_adopted_only_when_whole(run_copy):
    """A trained folder without the completion record is checked, then given it; a damaged one is not."""
    (run_copy / "finished.json").unlink()
    run = Run(run_copy)
    assert not run.is_finished()
    good = run.checkpoint_path(150).read_bytes()
    run.checkpoint_path(150).write_bytes(good[:-8] + bytes(8))
    assert "model_0000150.safetensors does not match" in run.confirm_finished() and not run.is_finished()
    run.checkpoint_path(150).write_bytes(good)
    assert run.confirm_finished() is None and run.is_finished()
    assert json.loads((run_copy / "finished.json").read_text())["how"] == "adopted"


def test_1_the_repositorys_stored_runs_restore_and_their_store_is_untouched(tmp_path):
    """Stored runs that predate the completion record (a trained run, an oracle run, a theory run) restore as they
    are, each gaining the record in its runs/ copy; the store's files stay byte for byte."""
    for name in ("parity-mlp-L8", "parity-mlp-L16-oracle-rule", "three-stairs-d8"):
        source = ROOT / "results" / name / "cpu-seed0"
        before = snapshot(source)
        metrics = store.restore_run(source, tmp_path / name)
        assert metrics["restored_from"] == str(source) and Run(tmp_path / name).is_finished()
        assert (tmp_path / name / "metrics.json").read_bytes() == (source / "metrics.json").read_bytes()
        assert json.loads((tmp_path / name / "finished.json").read_text())["how"] == "restored"
        assert snapshot(source) == before


# --- 2. the results store is read-only to everything but `store` ---------------------------------------------

@pytest.mark.parametrize("command", [["ldr", "--n", "2"], ["coupling", "--n", "2"],
                                     ["resample", "--n", "4", "--steps", "2"]])
def test_2_analyses_refuse_a_stored_run_and_leave_it_untouched(stored, command):
    before = snapshot(stored)
    one_line_error(cli(command[0], str(stored), *command[1:]), "results store", "runs/ copy",
                   f"python -m ldrkit run {NAME} --profile {PROFILE} --seed 0")
    assert snapshot(stored) == before
    store.verify_stored(stored)


def test_2_no_writer_touches_a_stored_run(stored):
    from ldrkit.analysis.overtraining import ldr_over_training

    before = snapshot(stored)
    with pytest.raises(RunFolderError, match="results store"):
        ldr_over_training(Run(stored), n=2)
    with pytest.raises(RunFolderError, match="results store"):
        Run(stored).lock()
    assert snapshot(stored) == before


def test_2_no_run_trains_inside_the_store(stored, results):
    before = snapshot(results)
    one_line_error(cli("run", NAME, "--profile", PROFILE, "--fresh", "--out", str(stored), "--quiet"),
                   "inside the results store")
    one_line_error(cli("run", NAME, "--profile", PROFILE, "--out", str(results / "mine"), "--quiet"),
                   "inside the results store")
    assert snapshot(results) == before and not (results / "mine").exists()


# --- 3. --fresh loses nothing ----------------------------------------------------------------------------------

def test_3_fresh_refuses_a_folder_of_another_config(run_copy):
    before = snapshot(run_copy)
    with pytest.raises(ConfigMismatchError, match="another config"):
        run_experiment("parity-mlp-L16", PROFILE, 0, out=run_copy, progress=False, fresh=True)
    one_line_error(cli("run", "parity-mlp-L16", "--profile", PROFILE, "--fresh", "--out", str(run_copy), "--quiet"),
                   "another config")
    assert snapshot(run_copy) == before and not (run_copy.parent / "stale").exists()


def test_3_fresh_twice_keeps_both_earlier_copies(run_copy):
    first = json.loads((run_copy / "metrics.json").read_text())
    run_experiment(NAME, PROFILE, 0, out=run_copy, progress=False, fresh=True)
    second = json.loads((run_copy / "metrics.json").read_text())
    run_experiment(NAME, PROFILE, 0, out=run_copy, progress=False, fresh=True)
    stale = run_copy.parent / "stale"
    kept = [json.loads((stale / f"{STEP}-fresh{suffix}" / "metrics.json").read_text()) for suffix in ("", "-2")]
    assert [m["wall_seconds"] for m in kept] == [first["wall_seconds"], second["wall_seconds"]]


# --- 4. every stored or restored file is covered by a digest ---------------------------------------------------

def test_4_an_unknown_file_in_a_stored_run_is_refused_by_name(stored, tmp_path):
    extra = stored / "model_0030000.safetensors"
    extra.write_bytes(bytes((stored / "model_0000300.safetensors").stat().st_size))  # a zeroed checkpoint
    with pytest.raises(RunFolderError, match="model_0030000.safetensors is not recorded"):
        store.verify_stored(stored)
    one_line_error(cli("run", NAME, "--profile", PROFILE, "--quiet"), "model_0030000.safetensors")
    assert not Run(default_dir(tmp_path)).is_finished()


@pytest.mark.parametrize("lose", ["one entry", "the whole manifest"])
def test_4_a_checkpoint_the_manifest_does_not_list_is_refused(run_copy, lose):
    manifest = json.loads((run_copy / "checkpoints.json").read_text())
    if lose == "one entry":
        del manifest["150"]
        (run_copy / "checkpoints.json").write_text(json.dumps(manifest))
    else:
        (run_copy / "checkpoints.json").unlink()
    with pytest.raises(RunFolderError, match="is not listed in"):
        Run(run_copy).model(150)
    one_line_error(cli("ldr", str(run_copy), "--n", "2"), "is not listed in", "checkpoints.json")
    assert not (run_copy / "ldr_over_training.json").exists()


def test_4_stored_weights_need_the_manifest_to_vouch_for_them(stored):
    manifest = json.loads((stored / "checkpoints.json").read_text())
    (stored / "checkpoints.json").write_text(json.dumps({**manifest, "300": "0" * 64}))
    redigest(stored, update=["checkpoints.json"])
    with pytest.raises(RunFolderError, match="is not the checkpoint"):
        store.verify_stored(stored)
    (stored / "checkpoints.json").unlink()
    redigest(stored, drop=["checkpoints.json"])
    with pytest.raises(RunFolderError, match="checkpoints.json is missing"):
        store.verify_stored(stored)


def test_4_an_empty_digest_record_checks_nothing_so_it_is_refused(stored, tmp_path):
    metrics = json.loads((stored / "metrics.json").read_text())
    metrics["final"]["categories"] = {"invalid": 0.0, "hallucination": 0.0, "in_dataset": 1.0, "extrapolation": 0.0}
    (stored / "metrics.json").write_text(json.dumps(metrics))  # an edited metric that still sums to 1
    provenance = json.loads((stored / "provenance.json").read_text())
    (stored / "provenance.json").write_text(json.dumps({**provenance, "files": {}}))
    with pytest.raises(RunFolderError, match="records no file digests"):
        store.verify_stored(stored)
    one_line_error(cli("run", NAME, "--profile", PROFILE, "--quiet"), "records no file digests")
    assert not (default_dir(tmp_path) / "metrics.json").exists()


def test_4_store_refuses_a_checkpoint_that_fails_its_own_digest(run_copy, results):
    weights = run_copy / "model_0000300.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8192] + bytes(8192))
    with pytest.raises(RunFolderError, match="model_0000300.safetensors has changed since it was written"):
        store.store_run(run_copy)
    assert not list(results.rglob("provenance.json")) and not list(results.rglob("*.safetensors"))


# --- 5. config.json is re-hashed on every load -----------------------------------------------------------------

@pytest.mark.parametrize("edit", [("eval", "ldr_position", 3), ("split", "seed", 7)])
def test_5_an_edited_spec_under_its_old_hash_is_refused(run_copy, edit):
    section, key, value = edit
    stored = json.loads((run_copy / "config.json").read_text())
    stored["config"][section][key] = value  # the hash left as it was
    (run_copy / "config.json").write_text(json.dumps(stored))
    with pytest.raises(RunFolderError, match="hashes to"):
        Run(run_copy).config
    one_line_error(cli("ldr", str(run_copy), "--n", "2"), "config.json", "hashes to")
    assert not (run_copy / "ldr_over_training.json").exists()


def test_5_an_edited_stored_spec_is_refused_even_with_its_digest_updated(stored):
    config = json.loads((stored / "config.json").read_text())
    config["config"]["eval"]["ldr_position"] = 3
    (stored / "config.json").write_text(json.dumps(config))
    redigest(stored, update=["config.json"])
    with pytest.raises(RunFolderError, match="hashes to"):
        store.verify_stored(stored)


# --- 6. the step-0 checkpoint ----------------------------------------------------------------------------------

def _evaluations(metrics: dict) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "elapsed_seconds"} for e in metrics["evaluations"]]


def test_6_a_step0_record_without_its_checkpoint_is_evaluated_again(run_copy, trained):
    """Older code wrote the step-0 record before the checkpoint: a kill between them lost model_0000000."""
    first = json.loads((run_copy / "metrics.jsonl").read_text().splitlines()[0])
    for path in run_copy.iterdir():
        if path.name not in ("config.json", ".lock"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    (run_copy / "metrics.jsonl").write_text(json.dumps(first) + "\n")
    metrics = run_experiment(NAME, PROFILE, 0, out=run_copy, progress=False, use_store=False)
    assert Run(run_copy).steps() == [0, 150, 300] and metrics["evaluations"][0]["step"] == 0
    assert _evaluations(metrics) == _evaluations(json.loads((trained / "metrics.json").read_text()))


def test_6_a_kill_after_the_step0_checkpoint_resumes_to_the_same_run(tmp_path, trained):
    out = tmp_path / "killed"
    killed_at("train:checkpoint-saved", request_code(out=str(out), use_store=False))
    assert Run(out).steps() == [0] and not Run(out).records()  # the checkpoint first: nothing claims more
    metrics = run_experiment(NAME, PROFILE, 0, out=out, progress=False, use_store=False)
    assert Run(out).steps() == [0, 150, 300]
    assert _evaluations(metrics) == _evaluations(json.loads((trained / "metrics.json").read_text()))


# --- 7. a seed counted twice -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seeds", [["0", "0", "1"], ["0", "0"]])
def test_7_a_sweep_refuses_a_seed_given_twice_before_training(tmp_path, seeds):
    one_line_error(cli("sweep", NAME, "--profile", PROFILE, "--seeds", *seeds), "seed 0 more than once")
    assert not (tmp_path / "runs").exists()


# --- 8. disk full while training, orphans, sweeps ----------------------------------------------------------------

def test_8_disk_full_while_training_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / "full"
    disk_full(monkeypatch, ".resume.safetensors.")
    one_line_error(cli("run", NAME, "--profile", PROFILE, "--out", str(out), "--quiet"),
                   str(out / "resume.safetensors"), "No space left", "free space")
    assert not list(out.rglob("*.tmp"))


def test_8_temporary_files_of_dead_processes_are_removed_on_the_next_start(run_copy):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphans = [run_copy / f".resume.safetensors.{dead.pid}.tmp",
               run_copy / "samples" / f".step_0000300.npy.{dead.pid}.tmp"]
    alive = run_copy / f".ldr_over_training.json.{os.getpid()}.tmp"  # a live process's write is left alone
    for path in orphans + [alive]:
        path.write_bytes(b"x" * 1000)
    for name in ("finished.json", "metrics.json"):  # unfinished: the next request resumes it
        (run_copy / name).unlink()
    run_experiment(NAME, PROFILE, 0, out=run_copy, progress=False, use_store=False)
    assert not any(path.exists() for path in orphans) and alive.exists()


@pytest.mark.parametrize("out", ["/nonexistent-folder/summary.md", "."])
def test_8_sweep_checks_its_out_file_before_training(tmp_path, out):
    one_line_error(cli("sweep", NAME, "--profile", PROFILE, "--seeds", "0", "--out", out), "--out")
    assert not (tmp_path / "runs").exists()


@pytest.mark.long(seconds=20)
def test_8_a_dead_sweep_worker_costs_only_its_own_run(tmp_path, monkeypatch, results):
    from ldrkit.runs.sweep import run_grid

    monkeypatch.setenv(KILL_ENV, f"sweep:{NAME}:1")  # the worker of seed 1 dies as it starts
    with pytest.raises(RunFolderError, match=rf"1 of 2 runs failed .*{PROFILE}-seed1: its worker process died"):
        run_grid([NAME], PROFILE, [0, 1], workers=2, echo=lambda *a: None)
    assert Run(tmp_path / "runs" / NAME / f"{PROFILE}-seed0").is_finished()  # its sibling finished


# --- 9. the profile a chapter records is the one it ran -------------------------------------------------------

def test_9_a_chapter_profile_that_ldrkit_profile_overrides_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("LDRKIT_PROFILE", "smoke")
    one_line_error(cli("chapter", "run", "book/parity-mlp.md", "--out", str(tmp_path / "out"), "-p", "profile", "cpu"),
                   "LDRKIT_PROFILE=smoke", "-p profile smoke")
    assert not (tmp_path / "out").exists()


def test_9_a_chapter_records_the_profile_ldrkit_profile_imposed(tmp_path, monkeypatch):
    import papermill

    from ldrkit.chapters import run_chapter

    monkeypatch.setenv("LDRKIT_PROFILE", "smoke")
    monkeypatch.setattr(papermill, "execute_notebook", lambda *args, **kwargs: None)  # the bookkeeping only
    run_chapter(ROOT / "book" / "parity-mlp.md", tmp_path, {"seed": 1}, progress=False)
    assert json.loads((tmp_path / "parameters.json").read_text()) == {"seed": 1, "profile": "smoke"}


# --- 10. one line, exit status 2, no traceback ---------------------------------------------------------------

@pytest.mark.parametrize("record", ["with its completion record", "finished by older code"])
@pytest.mark.parametrize("content", ["null", "[]", "{}"])
@pytest.mark.parametrize("command", ["run", "resample", "detect"])
def test_10_a_broken_metrics_json_is_one_line(run_copy, command, content, record):
    (run_copy / "metrics.json").write_text(content)
    if record == "finished by older code":
        (run_copy / "finished.json").unlink()
    args = {"run": ["run", NAME, "--profile", PROFILE, "--quiet"], "resample": ["resample", str(run_copy)],
            "detect": ["detect", NAME, "--profile", PROFILE, "--n", "4"]}[command]
    err = one_line_error(cli(*args))
    assert "metrics.json" in err or "finished.json" in err


@pytest.mark.parametrize("command", ["resample", "detect", "ldr"])
def test_10_a_run_without_checkpoints_is_one_line(run_copy, command):
    for path in run_copy.glob("model_*.safetensors"):
        path.unlink()
    args = {"resample": ["resample", str(run_copy)], "detect": ["detect", NAME, "--profile", PROFILE, "--n", "4"],
            "ldr": ["ldr", str(run_copy)]}[command]
    one_line_error(cli(*args), "model_")


def test_10_a_read_only_run_folder_is_refused_before_computing(run_copy, monkeypatch):
    from ldrkit.probes import ldr as ldr_probe

    def computes(*args, **kwargs):
        raise AssertionError("computed before the folder was found read-only")
    monkeypatch.setattr(ldr_probe, "ldr_levels", computes)
    read_only(monkeypatch, run_copy)
    one_line_error(cli("ldr", str(run_copy), "--n", "2"), str(run_copy), "read-only")


def test_10_store_into_a_read_only_results_store_is_one_line(run_copy, results, monkeypatch):
    results.mkdir()
    read_only(monkeypatch, results)
    one_line_error(cli("store", NAME, "--profile", PROFILE), "read-only")
    assert not list(results.rglob("provenance.json"))


def test_10_chapter_out_at_a_file_or_a_read_only_place_is_one_line(tmp_path, monkeypatch):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    one_line_error(cli("chapter", "run", "book/parity-mlp.md", "--out", str(a_file)), "is a file")
    read_only(monkeypatch, tmp_path / "locked")
    (tmp_path / "locked").mkdir()
    one_line_error(cli("chapter", "run", "book/parity-mlp.md", "--out", str(tmp_path / "locked")), "read-only")
    assert not list((tmp_path / "locked").iterdir())


def test_10_a_corrupt_provenance_anywhere_in_the_store_is_named(results):
    broken = results / NAME / STEP / "provenance.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    one_line_error(cli("reproduce", "--profile", PROFILE), str(broken))


@pytest.mark.parametrize("command", [["sweep", NAME, "--seeds", "0"], ["reproduce"]])
def test_10_an_absurd_worker_count_is_one_line(tmp_path, command):
    one_line_error(cli(*command, "--profile", PROFILE, "--workers", "99999999999"), "--workers must be")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", [["run", NAME, "--profile", PROFILE, "--quiet"],
                                     ["chapter", "run", "book/parity-mlp.md"]])
def test_10_a_symlink_loop_as_out_is_one_line(tmp_path, command):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    one_line_error(cli(*command, "--out", str(loop)), "symbolic link")
