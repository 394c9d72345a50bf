"""Running a named experiment into its run folder, reusing a finished or stored run of the same spec.

metrics.json (a contract with users, chapters and outside checks; later experiments add keys):
    {"experiment", "profile", "seed", "wall_seconds", "evaluations": [E...], "final": E, "config_hash", ...}
with E = {"step", "categories": {invalid, hallucination, in_dataset, extrapolation},
          "ldr": {"0.1".."0.9"}, "ldr_x0": {"0.1".."0.9"}} for the sampling experiments.
The file is strict JSON: a value that is undefined (an LDR of 0/0, where an exact denoiser's
Jacobian vanishes) is null, never NaN; a value that is infinite, or a NaN loss or sample, stops the
run with an error naming the step.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from ..spec.hashing import merge, spec_hash
from ..spec.registry import Experiment, get_experiment
from .files import FolderLock, writable_folder
from .pipeline import run_oracle, run_stairs, run_training
from .run import METRICS, ConfigMismatchError, Run
from .store import (
    ROOT,
    check_outside_store,
    code_version,
    find_stored,
    restore_run,
    stale_stored,
    top_up_restored,
)
from .train import is_main_process

MAX_SEED = 2**31 - 1


def default_runs_dir() -> Path:
    """Where run folders go: $LDRKIT_RUNS, else runs/ at the repository root (or the working directory)."""
    if os.environ.get("LDRKIT_RUNS"):
        return Path(os.environ["LDRKIT_RUNS"])
    return ROOT / "runs" if (ROOT / "_toc.yml").exists() else Path.cwd() / "runs"


def run_dir_for(name: str, profile: str, seed: int) -> Path:
    return default_runs_dir() / name / f"{profile}-seed{seed}"


def check_seed(seed) -> int:
    """A seed is an integer in [0, 2^31 - 1] (torch and numpy generators take it, and it names the folder)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    return seed


def _execute(experiment: Experiment, config: dict, run: Run, progress: bool) -> dict:
    """Train or sample the experiment into the run folder; returns the body of metrics.json."""
    if experiment.kind == "stairs":
        return run_stairs(config, run, progress)
    if experiment.kind == "oracle":
        return run_oracle(config, run, progress)
    records = run_training(config, run, progress=progress)
    return {"evaluations": records, "final": records[-1]}


def run_experiment(name: str, profile: str, seed: int = 0, out: Path | str | None = None,
                   progress: bool = True, overrides: dict | None = None, use_store: bool = True,
                   fresh: bool = False) -> dict:
    """Train and evaluate an experiment (or reuse a finished run with the same spec) and return metrics.json.

    A finished run (one with its completion record, `Run.is_finished`) is reused from the run folder, or
    else restored from the results store (results/, see ldrkit.runs.store) when its spec hash matches;
    otherwise the experiment trains. A stored run of an older spec is reported before retraining. With the
    default run folder, a run of an older spec is moved aside to runs/NAME/stale/; an explicit `out` holding
    another spec is refused (ConfigMismatchError), with `fresh` too. `fresh` trains from scratch whatever the
    folder or the store holds (the folder's previous contents are moved aside). Nothing is ever deleted: a
    folder moved aside goes to a new numbered stale/ folder. A folder that holds an unfinished copy of a
    stored run (a restore interrupted by older code) is moved aside and restored again. `out` may not lie inside
    the results store. `overrides` is merged into the profile's spec, for tests and chapters that need a
    variant; it changes the hash like any change.
    """
    experiment = get_experiment(name)
    check_seed(seed)
    config = merge(experiment.config(profile, seed), overrides or {})
    default_out = out is None
    out = Path(out) if out is not None else run_dir_for(name, profile, seed)
    check_outside_store(out)
    run = Run(out)
    digest = spec_hash(config)
    main = is_main_process()  # under `accelerate launch` only rank 0 touches the folder
    if not fresh and run.is_finished() and run.hash == digest:
        return _found(run, name, profile, seed, digest, use_store)
    if not main:
        return _run_and_record(experiment, name, profile, seed, config, run, progress)
    writable_folder(out)
    with run.lock():
        stored = find_stored(name, profile, seed, digest) if use_store and not overrides and not fresh else None
        if run.exists() and run.hash != digest:
            if not default_out:
                raise ConfigMismatchError(f"{out} holds a run of another config (hash {run.hash}, this config "
                                          f"{digest}, experiment {name}); choose another --out folder or delete "
                                          "that one")
            move_aside(out, run.hash)
        elif fresh and run.exists():
            move_aside(out, "fresh")
        elif run.exists():
            problem = run.confirm_finished()
            if problem is None:
                return _found(run, name, profile, seed, digest, use_store)
            if stored is not None and not run.resume_path.exists():  # nothing to resume: an interrupted restore
                print(f"{out}: not a finished run ({problem}); restoring the stored one", flush=True)
                move_aside(out, "unfinished")
            elif (out / METRICS).exists():
                print(f"{out}: not a finished run ({problem}); training resumes", flush=True)
        if stored is not None and not run.exists():
            return restore_run(stored, run)
        if use_store and not overrides and not fresh and not run.exists():
            stale = stale_stored(name, profile, seed, digest)
            if stale:
                print(stale, flush=True)
        return _run_and_record(experiment, name, profile, seed, config, run, progress)


def _found(run: Run, name: str, profile: str, seed: int, digest: str, use_store: bool) -> dict:
    """The metrics of a finished run as found, a restored one first topped up with what was stored since."""
    stored = find_stored(name, profile, seed, digest) if use_store and run.restored_from else None
    if stored is not None and is_main_process():
        top_up_restored(stored, run.path)
    return run.found_metrics()


def _run_and_record(experiment, name, profile, seed, config, run: Run, progress: bool) -> dict:
    code = code_version()  # the code that trains it, for the results store's provenance
    start = time.perf_counter()
    body = _execute(experiment, config, run, progress)
    metrics = {"experiment": name, "profile": profile, "seed": seed,
               "wall_seconds": round(time.perf_counter() - start, 2), **body,
               "config_hash": spec_hash(config), "run_dir": str(run.path), "code": code}
    if body.get("evaluations"):
        # A resumed run counts the time already spent before the interruption.
        metrics["wall_seconds"] = round(max(metrics["wall_seconds"], body["evaluations"][-1].get("elapsed_seconds", 0)), 2)
    if is_main_process():
        run.write_metrics(metrics)
        run.write_finished("trained")  # last: only now is the run finished
    return metrics


def move_aside(run_dir: Path, why: str) -> Path:
    """Move a run folder's contents to RUN_DIR/../stale/NAME-WHY, or NAME-WHY-2, -3, ... when that is taken: an
    older copy there is never replaced."""
    base = run_dir.parent / "stale" / f"{run_dir.name}-{why}"
    dest, copies = base, 1
    while dest.exists():
        copies += 1
        dest = base.with_name(f"{base.name}-{copies}")
    dest.mkdir(parents=True)
    for path in run_dir.iterdir():
        if path.name != FolderLock.NAME:
            os.replace(path, dest / path.name)
    print(f"{run_dir}: moved its previous contents to {dest}", flush=True)
    return dest


def get_run(name: str, profile: str, seed: int = 0, **kwargs) -> Run:
    """The Run of a named experiment: reused, restored from the store, or trained (see `run_experiment`)."""
    return Run(run_experiment(name, profile, seed, **kwargs)["run_dir"])


def existing_run(name: str, profile: str, seed: int = 0) -> Run | None:
    """The Run of a named experiment when its finished run folder or the results store holds one of the current spec
    (restored then), else None: for pages that read what was run and never train."""
    digest = spec_hash(get_experiment(name).config(profile, seed))
    folder = Run(run_dir_for(name, profile, seed))
    if not (folder.is_finished() and folder.hash == digest) and find_stored(name, profile, seed, digest) is None:
        return None
    return get_run(name, profile, seed, progress=False)
