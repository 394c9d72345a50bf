"""The three-stairs training: the loss passes the analytic plateaus in order (real training, no recorded curve)."""
import json

import numpy as np
import pytest
import torch

from ldrkit import specs, stairs
from ldrkit.runs import Run

torch.set_num_threads(1)


def test_configs_exist_for_all_profiles():
    for profile in ("smoke", "cpu", "paper"):
        cfg = specs.stairs_spec(8, profile, 0)
        assert cfg["d"] == 8 and cfg["sigma_init"] == 1e-3 and cfg["phases"]
    assert specs.stairs_spec(16, "paper", 0)["width"] == 2000
    with pytest.raises(ValueError):
        specs.stairs_spec(8, "huge", 0)


def test_find_plateaus_on_a_synthetic_curve():
    levels = {"zero": 1.0, "linear": 0.7, "univariate": 0.1}
    steps = np.arange(0, 100)
    loss = np.where(steps < 20, 1.0, np.where(steps < 50, 0.7, np.where(steps < 80, 0.1, 0.01)))
    found = stairs.find_plateaus(np.stack([steps, loss], 1), levels)
    assert [(p["level"], p["first_step"], p["last_step"]) for p in found] == \
        [("zero", 0, 19), ("linear", 20, 49), ("univariate", 50, 79)]


def test_loss_passes_the_analytic_plateaus_in_order(tmp_path):
    cfg = specs.stairs_spec(8, "smoke", seed=0)
    metrics = stairs.run_stairs(cfg, Run(tmp_path), progress=False)
    levels = metrics["levels"]
    assert levels["zero"] > levels["linear"] > levels["univariate"] > 0
    found = {p["level"]: p for p in metrics["plateaus"]}
    assert "linear" in found and "univariate" in found
    assert found["linear"]["first_step"] < found["univariate"]["first_step"]
    for name in ("linear", "univariate"):
        assert found[name]["mean_loss"] == pytest.approx(levels[name], rel=0.15)
    # the linear plateau lasts: the loss stays there for a while before the second drop
    assert found["linear"]["last_step"] - found["linear"]["first_step"] >= 3 * cfg["record_every"]
    # during the first two stairs the weights grow along e_1 far more than off it (Fig. 6)
    w = np.array(metrics["weights"])
    at = np.searchsorted(w[:, 0], found["univariate"]["first_step"])
    assert w[at, 1] > 5 * w[at, 2]
    assert (tmp_path / "functions.npz").exists()
    saved = json.loads((tmp_path / "stairs.json").read_text())
    assert saved["levels"] == levels and saved["config"] == cfg
