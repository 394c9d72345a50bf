import json
import subprocess
import sys

import pytest

from ldrkit.runs.request import run_experiment

CATEGORY_KEYS = {"invalid", "hallucination", "in_dataset", "extrapolation"}
LEVEL_KEYS = {"0.1", "0.3", "0.5", "0.7", "0.9"}


def ldrkit(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ldrkit", *args], capture_output=True, text=True, cwd=cwd)


def test_list_prints_one_name_a_line():
    out = ldrkit("list")
    assert out.returncode == 0
    names = out.stdout.split()
    assert {"parity-mlp-L8", "parity-mlp-L16"} <= set(names)
    assert names == sorted(names)


def test_unknown_names_exit_nonzero_and_list_the_valid_ones():
    out = ldrkit("run", "parity-mlp-L99", "--profile", "smoke")
    assert out.returncode != 0 and "parity-mlp-L16" in out.stderr
    out = ldrkit("run", "parity-mlp-L8", "--profile", "laptop")
    assert out.returncode != 0 and "smoke, cpu, paper" in out.stderr


def test_run_writes_metrics_json_in_the_contract_layout(tmp_path):
    out = ldrkit("run", "parity-mlp-L8", "--profile", "smoke", "--seed", "2", "--out", str(tmp_path), "--quiet")
    assert out.returncode == 0, out.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["experiment"] == "parity-mlp-L8" and metrics["profile"] == "smoke" and metrics["seed"] == 2
    assert metrics["wall_seconds"] > 0
    assert metrics["final"] == metrics["evaluations"][-1]
    for e in metrics["evaluations"]:
        assert isinstance(e["step"], int)
        assert set(e["categories"]) == CATEGORY_KEYS
        assert abs(sum(e["categories"].values()) - 1) < 1e-9
        assert set(e["ldr"]) == LEVEL_KEYS and set(e["ldr_x0"]) == LEVEL_KEYS
        assert all(0 <= v <= 1 for v in [*e["ldr"].values(), *e["ldr_x0"].values()])


def test_a_finished_run_is_reused_and_a_changed_config_retrains(tmp_path):
    first = run_experiment("parity-mlp-L8", "smoke", out=tmp_path, progress=False)
    again = run_experiment("parity-mlp-L8", "smoke", out=tmp_path, progress=False)
    assert again == first  # read back, not retrained
    other = run_experiment("parity-mlp-L8", "smoke", out=tmp_path / "other", progress=False,
                           overrides={"train": {"steps": 150}})
    assert other["config_hash"] != first["config_hash"] and other["final"]["step"] == 150


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke run of parity-mlp-L8 made by the CLI, shared by the commands that read a run folder."""
    folder = tmp_path_factory.mktemp("smoke-run")
    out = ldrkit("run", "parity-mlp-L8", "--profile", "smoke", "--out", str(folder), "--quiet")
    assert out.returncode == 0, out.stderr
    return folder


def test_ldr_command_prints_a_table_per_checkpoint_and_caches(smoke_run):
    tmp_path = smoke_run
    out = ldrkit("ldr", str(tmp_path), "--n", "8")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("LDR over training (exact") and "eps@0.1" in lines[1]
    assert [ln.split()[0] for ln in lines[3:]] == ["0", "150", "300"]
    assert (tmp_path / "ldr_over_training.json").exists()
    missing = ldrkit("ldr", str(tmp_path / "nowhere"))
    assert missing.returncode != 0 and "not a run folder" in missing.stderr


def test_resample_command_sets_the_paper_sampler_beside_the_runs_own_and_caches(smoke_run):
    tmp_path = smoke_run
    out = ldrkit("resample", str(tmp_path), "--n", "16", "--steps", "20")
    assert out.returncode == 0, out.stderr
    head, own, again = out.stdout.splitlines()
    assert head.startswith("model | seeds | sampler") and "parity-mlp-L8 (smoke, seed 0)" in own
    assert "ancestral DDPM, 20 steps | 16 |" in again and (tmp_path / "resampled.json").exists()
    for args in (["--n", "0"], ["--steps", "-3"]):
        bad = ldrkit("resample", str(tmp_path), *args)
        assert bad.returncode == 2 and bad.stderr.startswith("error:") and len(bad.stderr.splitlines()) == 1
    missing = ldrkit("resample", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no finished run" in missing.stderr


def test_fast_sets_ldrkit_fast_for_the_command_only(monkeypatch, capsys):
    """`run --fast` turns on `train.fast_training` through $LDRKIT_FAST (so sweep workers inherit it) and leaves the
    environment as it found it, whatever the command's outcome."""
    import os
    from ldrkit.runs import train
    from ldrkit.__main__ import main
    seen = []
    monkeypatch.setattr("ldrkit.runs.request.run_experiment", lambda *a, **k: seen.append(train.fast_training()) or
                        {"wall_seconds": 0.0})
    monkeypatch.delenv("LDRKIT_FAST", raising=False)
    assert main(["run", "parity-mlp-L8", "--profile", "smoke", "--fast"]) == 0
    assert main(["run", "parity-mlp-L8", "--profile", "smoke"]) == 0
    assert seen == [True, False] and "LDRKIT_FAST" not in os.environ
    assert main(["run", "no-such-experiment", "--fast"]) == 2 and "LDRKIT_FAST" not in os.environ
    capsys.readouterr()


def test_kappa_runs_any_image_experiment_with_kappa_at_every_evaluation(tmp_path):
    from ldrkit.spec.hashing import spec_hash
    from ldrkit.spec.registry import get_experiment
    name = "parity-mlp-L16-symbols"  # an image experiment with no registered -kappa variant
    out = ldrkit("run", name, "--kappa", "--profile", "smoke", "--out", str(tmp_path), "--quiet")
    assert out.returncode == 0, out.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["experiment"] == name + "-kappa"
    base, variant = (get_experiment(n).config("smoke", 0) for n in (name, name + "-kappa"))
    assert metrics["config_hash"] == spec_hash(variant) != spec_hash(base)  # base's stored runs stay valid
    for e in metrics["evaluations"]:
        assert set(e["coupling"]) == LEVEL_KEYS
        for r in e["coupling"].values():  # a value with its s.e., or None where the oracles do not differ
            assert r["value"] is None or (r["se"] >= 0 and abs(r["value"]) < 10)


def test_kappa_of_an_experiment_without_oracles_is_a_one_line_error():
    out = ldrkit("run", "stairs-tilt-0", "--kappa", "--profile", "smoke")
    assert out.returncode == 2 and "not a trained image experiment" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
