"""The training-cost benchmark behind scripts/gpu_check.sh, exercised on the CPU with a handful of steps."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ldrkit.bench.train import _setup, bench_training, gpu_check_names
from ldrkit.spec.registry import get_experiment
from ldrkit.spec.hashing import merge

ROOT = Path(__file__).resolve().parent.parent


def test_bench_training_times_the_real_step_and_a_sample_batch():
    row = bench_training("quarter-digits-dit", "smoke", steps=3, warmup=1, eval_batch=4, device="cpu")
    config = get_experiment("quarter-digits-dit").config("smoke", 0)
    assert row["device"] == "cpu" and row["processes"] == 1 and row["peak_train_mib"] is None
    assert row["signal_shape"] == [1, 16, 16] and row["batch_size"] == config["train"]["batch_size"]
    assert row["parameters"] > 0 and row["steps"] == 3
    assert row["steps_per_second"] == pytest.approx(3 / row["train_seconds"], rel=0.05)  # both rounded
    assert all(math.isfinite(row[k]) and row[k] > 0 for k in ("first_loss", "last_loss", "sample_batch_seconds"))
    assert row["sample_batch"] == 4 and row["sample_steps"] == config["eval"]["sample_steps"]
    # projections: the profile's steps at the measured rate, and every evaluation's samples at the measured cost
    assert row["profile_train_hours"] == pytest.approx(config["train"]["steps"] / row["steps_per_second"] / 3600, abs=0.01)
    evals = config["train"]["steps"] // config["train"]["eval_every"] + 1
    per_eval = row["sample_batch_seconds"] * math.ceil(config["eval"]["num_samples"] / 4)
    assert row["eval_sampling_seconds"] == pytest.approx(per_eval, abs=0.1)
    assert row["profile_sampling_hours"] == pytest.approx(evals * per_eval / 3600, abs=0.01)
    # one LDR level with the evaluation's own method and samples, five per evaluation
    assert row["ldr_method"] == config["eval"].get("ldr_method", "exact") and row["ldr_level_seconds"] > 0
    assert row["eval_ldr_seconds"] == pytest.approx(5 * row["ldr_level_seconds"], abs=0.1)


def test_missing_mnist_is_skipped_with_a_clear_message_or_substituted(tmp_path, monkeypatch):
    monkeypatch.setenv("LDRKIT_MNIST", str(tmp_path))  # an empty folder: no IDX files
    paper = get_experiment("quarter-digits-unet").config("paper", 0)
    with pytest.raises(FileNotFoundError, match="skipped: MNIST IDX files missing.*--substitute-mnist"):
        _setup(paper, substitute_mnist=False)
    # The substitute keeps the image size (here the smoke size, whose digit classifier is cheap).
    smoke = get_experiment("quarter-digits-unet").config("smoke", 0)
    as_mnist = merge(smoke, {"render": {"source": "mnist"}})
    config, setup, note = _setup(as_mnist, substitute_mnist=True)
    assert config["render"]["source"] == "sklearn" and "stand in" in note
    assert setup.renderer.signal_shape == (1, 2 * smoke["render"]["size"], 2 * smoke["render"]["size"])


def test_gpu_check_covers_the_registered_image_experiments():
    names = gpu_check_names()
    assert {"parity-parens-L16-unet", "parity-parens-L16-dit", "dyck-parens-unet", "quarter-digits-unet",
            "quarter-digits-dit"} <= set(names)
    for name in names:
        assert get_experiment(name).config("paper", 0)["model"]["type"] in ("unet", "dit")


def _script(out, **env):
    full = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(out)], capture_output=True, text=True,
                          env=full, timeout=600)


def test_gpu_check_script_runs_on_the_cpu_and_writes_its_table(tmp_path):
    out = _script(tmp_path / "check", DEVICE="cpu", STEPS="2", PROFILE="smoke", EVAL_BATCH="4",
                  NAMES="parity-parens-L16-dit quarter-digits-dit")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.loads((tmp_path / "check" / "bench_train.json").read_text())
    assert [r["experiment"] for r in rows] == ["parity-parens-L16-dit", "quarter-digits-dit"]
    assert all(r["steps"] == 2 and r["steps_per_second"] > 0 for r in rows)
    table = (tmp_path / "check" / "bench_train.md").read_text()
    assert "| parity-parens-L16-dit | dit |" in table and "steps/s" in table
    assert "torch" in (tmp_path / "check" / "environment.txt").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_cuda_without_a_gpu_fails_clearly(tmp_path):
    out = _script(tmp_path / "check")
    assert out.returncode == 2 and "no CUDA GPU visible" in out.stderr
    cli = subprocess.run([sys.executable, "-m", "ldrkit", "bench", "train", "parity-parens-L16-dit", "--device", "cuda",
                          "--steps", "1"], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert cli.returncode == 2 and "torch sees no GPU" in cli.stderr


def _before_after():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_before_after", ROOT / "scripts" / "bench_before_after.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_before_after_medians_and_ratios():
    ba = _before_after()
    row = lambda sps, s: {"x": {"steps_per_second": sps, "sample_batch_seconds": s}}
    runs = {"before": [row(2.0, 10.0), row(4.0, 30.0), row(3.0, None)],
            "after": [row(6.0, 10.0), row(6.0, 10.0), row(5.0, 5.0)]}
    ldr_calls = {"x": {"before": [5.0, 4.0, 6.0], "after": [2.5, 2.0, 9.0]}}
    [summary] = ba.summarise(runs, ["x"], ldr_calls)
    assert summary["steps_per_second"] == {"before": 3.0, "after": 6.0, "after/before": 2.0}
    assert summary["sample_batch_seconds"] == {"before": 20.0, "after": 10.0, "after/before": 0.5}   # None skipped
    assert summary["ldr_level_seconds"] == {"before": 5.0, "after": 2.5, "after/before": 0.5}   # medians of the calls
    table = ba.markdown([summary], "old", "new", 3, 100, "cpu", 3)
    assert "| x | 3.0 | 6.0 | 2.0 |" in table and "Medians of 3 alternating rounds" in table
    assert "median of 3 alternating calls" in table


def test_before_after_times_both_ldr_probes_in_one_process(tmp_path):
    """The older tree's ldr module loads as ldrkit_before beside this checkout's and both are timed on one model."""
    ba = _before_after()
    before = ba.load_before_ldr(ba.checkout("HEAD", tmp_path / "tree"))
    from ldrkit.probes import ldr as after
    assert before.__name__ == "ldrkit_before.probes.ldr" and before.__file__.startswith(str(tmp_path))
    assert before.ldr is not after.ldr
    seconds = ba.ldr_seconds(before, "parity-parens-L16-dit", "smoke", calls=2)
    assert {k: len(v) for k, v in seconds.items()} == {"before": 2, "after": 2}
    assert all(s > 0 for v in seconds.values() for s in v)


def test_before_after_checks_out_the_old_tree(tmp_path):
    ba = _before_after()
    tree = ba.checkout("HEAD", tmp_path / "tree")
    assert (tree / "ldrkit" / "__init__.py").exists() and (tree / "scripts" / "bench_before_after.py").exists()
    with pytest.raises(SystemExit):
        ba.main(["--rounds", "0"])
