"""`python -m ldrkit reproduce`: stored runs retrained from scratch, on one process or a pool, planned by their
stored wall times."""
import json

import pytest

from ldrkit.runs import reproduce as R, store
from ldrkit.runs.request import run_experiment
from ldrkit.__main__ import main
from ldrkit.spec.selections import REPRODUCE_HEADLINE
from ldrkit.spec.registry import get_experiment
from ldrkit.runs.sweep import pooled_fresh


def test_the_plan_starts_the_longest_first_and_projects_the_busiest_worker():
    seconds = {"a": 10.0, "b": 60.0, "c": 30.0, "d": 30.0}
    order, total = R.plan(seconds, workers=2)
    assert order[0] == "b" and total == 70.0            # b | c + d + a
    assert R.plan(seconds, workers=1)[1] == 130.0
    assert R.plan(seconds, workers=8)[1] == 60.0   # never below the longest run


def test_the_headline_set_names_experiments_and_fits_the_budget_on_two_workers():
    for name in REPRODUCE_HEADLINE:
        get_experiment(name)
    seconds = R.stored_wall_seconds(list(REPRODUCE_HEADLINE), "cpu", 0)
    assert all(s > 0 for s in seconds.values()), "every headline run is stored at cpu, seed 0"
    # issue 14's budget, with a third to spare for a slower machine than the one the times were recorded on
    assert R.plan(seconds, workers=2)[1] < 2 / 3 * 3 * 3600


@pytest.fixture
def smoke_store(monkeypatch, tmp_path):
    monkeypatch.setenv("LDRKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("LDRKIT_RESULTS", str(tmp_path / "results"))
    names = ["parity-mlp-L8", "parity-mlp-L16"]
    for name in names:
        store.store_run(run_experiment(name, "smoke", 0, progress=False)["run_dir"])
    return names


def test_two_workers_retrain_the_stored_runs_to_the_same_numbers(smoke_store, tmp_path):
    out = tmp_path / "again"
    table = R.reproduce(smoke_store, "smoke", 0, out, fresh=pooled_fresh("smoke", 0, 2))
    diffs = [line.split("|")[5].strip() for line in table.splitlines()[2:] if "wall seconds" not in line]
    assert diffs and all(float(d) == 0.0 for d in diffs)  # the same seed on the same machine: the same numbers
    assert all((out / name / "metrics.json").exists() for name in smoke_store)
    written = (out / "reproduce.md").read_text()
    assert all(f"| {name} | wall seconds |" in written for name in smoke_store)


def test_the_command_refuses_names_with_headline_and_bad_worker_counts(capsys):
    assert main(["reproduce", "parity-mlp-L8", "--headline"]) == 2
    assert "either experiment names or --headline" in capsys.readouterr().err
    assert main(["reproduce", "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_a_fresh_number_outside_the_stored_interval_is_flagged():
    assert R.agreement("hallucination", 0.50, 0.53, 256) == "inside"       # 0.5 of 256: [0.44, 0.56]
    assert R.agreement("hallucination", 0.50, 0.60, 256).startswith("OUTSIDE [0.439")
    assert R.agreement("ldr@0.1", 0.9991, 0.9991, 256) == "identical"
    assert R.agreement("ldr@0.1", 0.9991, 0.98, 256) == "differs"
    stored = {"experiment": "parity-mlp-L8", "profile": "smoke", "seed": 0, "wall_seconds": 1.0,
              "final": {"categories": {"invalid": 0.1, "hallucination": 0.5, "in_dataset": 0.3, "extrapolation": 0.1}}}
    fresh = {**stored, "final": {"categories": {"invalid": 0.1, "hallucination": 0.9, "in_dataset": 0.0,
                                                "extrapolation": 0.0}}}
    table = R.compare_table([("parity-mlp-L8", stored, fresh)])
    assert table.count("OUTSIDE") == 3 and table.count("| inside |") == 1


def test_a_reproduction_is_planned_by_the_least_time_a_stored_seed_took(monkeypatch, tmp_path):
    monkeypatch.setenv("LDRKIT_RESULTS", str(tmp_path))
    for seed, seconds in ((0, 4300.0), (1, 900.0), (2, 3000.0)):  # seed 0 shared the CPU with three other runs
        folder = tmp_path / "x" / f"cpu-seed{seed}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"wall_seconds": seconds}))
    assert R.stored_wall_seconds(["x", "missing"], "cpu", 0) == {"x": 900.0, "missing": 0.0}
