"""A grid of runs (experiments x seeds) on a pool of worker processes, one torch thread each, and its summary.

The engine is the standard library's `concurrent.futures`: each run in its own spawned one-thread
process (no torch state is forked), N at a time: on a laptop, N workers of one thread each use N cores
without fighting over them (two torch processes of two threads each on two cores slow each other
20-60x). A worker that dies (killed, out of memory) or fails costs only its own run: the others finish,
then the failures are reported together. Every run is an ordinary `run_experiment` into its ordinary
folder, so a grid that is interrupted resumes where it stopped, finished runs are reused, and `--store`
puts the results in the results store. The grid is checked (names, profile, seeds, each seed once, the
worker count) before anything trains. On a cluster the same grid goes through submitit (`launcher="submitit"`), the
launcher of Slurm job arrays: one job per run, each calling the same `run_one` into the same run
folders (a shared file system), `array_parallelism` jobs at a time; `cluster="local"` runs the jobs as
local processes (how the tests check it), and `accelerate launch` remains the route inside one run.

The summary gives, per experiment, the mean over seeds of each final category fraction with its
standard error, and the pooled rule-breaking share among legible samples with its Wilson interval.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

from ..systems.categories import legible
from ..probes.estimates import mean_sem, wilson
from ..systems.categories import CATEGORIES
from .files import RunFolderError, fault_point
from .request import check_seed, run_dir_for, run_experiment
from ..spec.registry import get_experiment
from .reproduce import plan, stored_wall_seconds
from ..spec.hashing import check_profile


LAUNCHERS = ("pool", "submitit")
WORKERS_PER_CORE = 4
"""At most this many one-thread workers per core: each is a process holding its own torch, and beyond the cores
they only share them."""


def _one_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch
    torch.set_num_threads(1)


def run_one(name: str, profile: str, seed: int, store: bool = False) -> dict:
    """One grid point: the run's metrics.json (trained, reused or restored), stored on request."""
    _one_thread()
    fault_point(f"sweep:{name}:{seed}")
    metrics = run_experiment(name, profile, seed, progress=False)
    if store and "restored_from" not in metrics:
        from .store import store_run
        store_run(metrics["run_dir"])
    return metrics


def fresh_one(name: str, profile: str, seed: int, out: str) -> dict:
    """One run retrained from scratch into `out` (never restored from the store): a reproduction's grid point."""
    _one_thread()
    return run_experiment(name, profile, seed, out=out, progress=False, use_store=False)


def check_workers(workers: int) -> int:
    """A worker count is an integer from 1 to WORKERS_PER_CORE x the machine's cores."""
    most = WORKERS_PER_CORE * (os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if workers > most:
        raise ValueError(f"--workers must be at most {most} ({WORKERS_PER_CORE} per core of this machine), "
                         f"got {workers}")
    return workers


def _alone(fn, args):
    """`fn(*args)` in a spawned one-thread process of its own, so that its death takes no other call with it."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"), initializer=_one_thread) as process:
        return process.submit(fn, *args).result()


def _pooled(fn, calls: dict, workers: int, where):
    """`fn(*args)` for each `key: args` of `calls`, each in its own process, `workers` at a time, started in the
    dict's order; yields (key, result) as each finishes. A call that fails or whose process dies costs only itself:
    the others run on, then one RunFolderError names each failure with its run folder (`where(key)`)."""
    failed = []
    with ThreadPoolExecutor(max_workers=workers) as threads:
        futures = {threads.submit(_alone, fn, args): key for key, args in calls.items()}
        for future in as_completed(futures):
            key = futures[future]
            try:
                result = future.result()
            except BrokenProcessPool:
                failed.append(f"{where(key)}: its worker process died (killed, or out of memory)")
            except Exception as error:  # the run's own error, reported with the others
                failed.append(f"{where(key)}: {str(error).splitlines()[0] if str(error) else type(error).__name__}")
            else:
                yield key, result
    if failed:
        raise RunFolderError(f"{len(failed)} of {len(calls)} runs failed ({'; '.join(failed)}); the others "
                             "finished: run again to resume the failed ones")


def pooled_fresh(profile: str, seed: int, workers: int):
    """`reproduce.reproduce`'s `fresh` on `workers` one-thread processes: the runs start longest first (by the
    stored wall times, `reproduce.plan`) and are yielded as each finishes."""
    check_workers(workers)

    def fresh(names, out):
        order, _ = plan(stored_wall_seconds(names, profile, seed), workers)
        yield from _pooled(fresh_one, {name: (name, profile, seed, str(out / name)) for name in order}, workers,
                           lambda name: out / name)
    return fresh


def run_grid(names: list[str], profile: str, seeds: list[int], workers: int = 1, store: bool = False,
             echo=print, launcher: str = "pool", cluster: dict | None = None) -> list[dict]:
    """Run every (name, seed) on `workers` processes (launcher "pool"), or as submitit jobs (launcher
    "submitit", `cluster` as for `submit_grid`); returns the metrics in grid order."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; valid: {', '.join(LAUNCHERS)}")
    check_profile(profile)
    for name in names:
        get_experiment(name)
    for seed in seeds:
        check_seed(seed)
    for what, values in (("experiment", names), ("seed", seeds)):
        twice = sorted({v for v in values if list(values).count(v) > 1}, key=str)
        if twice:
            raise ValueError(f"the grid lists {what} {twice[0]} more than once (a run counted twice would weigh "
                             "twice in the mean and shrink the standard error); give each once")
    check_workers(workers)
    grid = [(name, seed) for name in names for seed in seeds]
    if launcher == "submitit":
        return submit_grid(grid, profile, store, echo=echo, **(cluster or {}))
    results: dict[tuple[str, int], dict] = {}
    if workers == 1:
        for name, seed in grid:
            results[(name, seed)] = run_one(name, profile, seed, store)
            echo(f"done {name} seed {seed}")
    else:
        for (name, seed), metrics in _pooled(run_one, {(n, s): (n, profile, s, store) for n, s in grid}, workers,
                                             lambda key: run_dir_for(key[0], profile, key[1])):
            results[(name, seed)] = metrics
            echo(f"done {name} seed {seed} ({len(results)}/{len(grid)})")
    return [results[key] for key in grid]


def submit_grid(grid: list[tuple[str, int]], profile: str, store: bool = False, folder: str = "submitit",
                cluster: str | None = None, partition: str | None = None, timeout_min: int = 60,
                array_parallelism: int | None = None, gpus_per_node: int = 0, echo=print) -> list[dict]:
    """The grid as a submitit job array (Slurm where `sbatch` exists, else local processes; `cluster` forces
    "slurm", "local" or "debug"): one job per run with one CPU (and `gpus_per_node` GPUs), logs in `folder`.
    Waits for every job and returns the metrics in grid order; a failed job raises with its log's path."""
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params = {"timeout_min": int(timeout_min), "cpus_per_task": 1, "gpus_per_node": int(gpus_per_node),
              "name": "ldrkit-sweep"}
    if partition:
        params["slurm_partition"] = partition
    if array_parallelism:
        params["slurm_array_parallelism"] = int(array_parallelism)
    executor.update_parameters(**params)
    names, seeds = [n for n, _ in grid], [s for _, s in grid]
    jobs = executor.map_array(run_one, names, [profile] * len(grid), seeds, [store] * len(grid))
    echo(f"submitted {len(jobs)} jobs to {executor.cluster} (logs in {folder})")
    results = []
    for job, (name, seed) in zip(jobs, grid):
        try:
            results.append(job.result())
        except Exception as error:  # submitit re-raises the job's failure; name the run and its log
            raise RuntimeError(f"{name} seed {seed} failed in job {job.job_id}: see {job.paths.stderr}") from error
        echo(f"done {name} seed {seed} ({len(results)}/{len(grid)})")
    return results


def summarise(metrics: list[dict]) -> list[dict]:
    """Per experiment: seeds, each final category's mean and standard error over seeds, and the pooled
    rule-breaking share among legible samples with its Wilson interval (counts from num_samples)."""
    rows = []
    for name in dict.fromkeys(m["experiment"] for m in metrics):
        group = [m for m in metrics if m["experiment"] == name and m.get("final", {}).get("categories")]
        if not group:
            continue
        row = {"experiment": name, "seeds": len(group)}
        for c in CATEGORIES:
            mean, se = mean_sem([m["final"]["categories"][c] for m in group])
            row[c] = mean
            row[f"{c} se"] = se
        broken = legible_n = 0
        for m in group:
            n = get_experiment(name).config(m["profile"], m["seed"])["eval"]["num_samples"]
            n_legible = round(legible(m["final"]) * n)
            legible_n += n_legible
            broken += round(m["final"]["categories"]["hallucination"] * n)
        low, high = wilson(broken, legible_n) if legible_n else (math.nan, math.nan)
        row.update({"broken among legible": broken / legible_n if legible_n else math.nan,
                    "interval low": low, "interval high": high})
        rows.append(row)
    return rows


def format_summary(rows: list[dict]) -> str:
    """A markdown table of `summarise` rows (a sentence when the grid sampled nothing, e.g. theory runs)."""
    if not rows:
        return "no sampling runs in this grid: nothing to summarise (theory runs: python -m ldrkit theory ...)\n"
    lines = ["| experiment | seeds | invalid | hallucination | in-dataset | extrapolation | broken among legible (95%) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[c]:.3f} ± {r[c + ' se']:.3f}" if r["seeds"] > 1 else f"{r[c]:.3f}" for c in CATEGORIES]
        lines.append(f"| {r['experiment']} | {r['seeds']} | " + " | ".join(cells) +
                     f" | {r['broken among legible']:.3f} ({r['interval low']:.3f}-{r['interval high']:.3f}) |")
    return "\n".join(lines) + "\n"
