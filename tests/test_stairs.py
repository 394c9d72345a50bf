"""The three-stairs training: the loss passes the analytic plateaus in order (real training, no recorded curve)."""
import json

import numpy as np
import pytest
import torch

from ldrkit.theory import hypercube as H, stairs
from ldrkit.spec import stairs as specs
from ldrkit.runs.pipeline import run_stairs
from ldrkit.runs.run import Run

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
    metrics = run_stairs(cfg, Run(tmp_path), progress=False)
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


# --- the tilted distribution, the pair level and the waiting time -------------------------------------------

def test_tilted_parity_keeps_the_rule_and_has_the_asked_pairwise_dependence():
    lam, n = 0.3, 1 << 16
    data = stairs.Distribution(6, {"name": "tilted-parity", "pair": [0, 1], "strength": lam})
    x0 = data.sample(n, torch.Generator().manual_seed(0))
    assert torch.all(x0.prod(dim=1) == 1)                       # still on the parity set: the rule is unchanged
    corr = float((x0[:, 0] * x0[:, 1]).mean())
    assert abs(corr - lam) < 4 / n**0.5                          # E[x1 x2] = lam (s.e. <= 1/sqrt(n))
    assert abs(float(x0[:, 0].mean())) < 4 / n**0.5              # marginals stay fair coins
    with pytest.raises(ValueError, match="strength"):
        stairs.Distribution(6, {"name": "tilted-parity", "pair": [0, 1], "strength": 1.5})
    with pytest.raises(ValueError, match="valid"):
        stairs.Distribution(6, {"name": "ising"})


def test_untilted_target_is_the_parity_closed_form():
    g = torch.Generator().manual_seed(1)
    flat = stairs.Distribution(5, {"name": "tilted-parity", "pair": [0, 1], "strength": 0.0})
    x, _ = H.noise(flat.sample(256, g), 0.9, g)
    assert torch.allclose(flat.target(x, 0.9), H.parity_target(x, 0.9), atol=1e-10)


def test_pair_target_is_univariate_under_independence_and_exact_when_the_pair_decides():
    support = H.parity_support(5)
    g = torch.Generator().manual_seed(2)
    x, _ = H.noise(H.sample_x0(512, support, None, g), 0.9, g)
    assert torch.allclose(H.pair_target(x, support, 0.9, 0, 1), H.univariate_target(x[:, 0], 0.9), atol=1e-12)
    tied = stairs.Distribution(5, {"name": "tilted-parity", "pair": [0, 1], "strength": 1.0})
    # x1 = x2 always and the other coordinates are independent of x1: the pair holds all there is to know
    assert H.pair_level(support, 0.9, 0, 1, probs=tied.probs, n=1 << 12) < 1e-20


def test_waiting_time_on_synthetic_curves():
    levels = {"zero": 1.0, "linear": 0.7, "univariate": 0.2}
    steps = np.arange(0, 1000, 10)
    loss = np.where(steps < 200, 0.7, np.where(steps < 600, 0.2, 0.05))
    assert stairs.waiting_time(np.stack([steps, loss], 1), levels) == \
        {"arrival": 200, "departure": 600, "escape": 600, "steps": 400, "censored_at": None}
    slow = np.where(steps < 200, 0.7, np.where(steps < 500, 0.2, np.where(steps < 800, 0.15, 0.05)))
    assert stairs.waiting_time(np.stack([steps, slow], 1), levels) == \
        {"arrival": 200, "departure": 500, "escape": 800, "steps": 300, "censored_at": None}
    stuck = np.where(steps < 200, 0.7, 0.2)
    assert stairs.waiting_time(np.stack([steps, stuck], 1), levels) == \
        {"arrival": 200, "departure": None, "escape": None, "steps": None, "censored_at": 990 - 200}


def test_plain_sgd_leaves_the_univariate_plateau_at_d3(tmp_path):
    cfg = specs.stairs_wait_spec(3, "smoke", 0)
    cfg["phases"][0]["steps"] = 4000
    m = run_stairs(cfg, Run(tmp_path), progress=False)
    wait, uni = m["waiting"], m["levels"]["univariate"]
    assert wait["steps"] is not None and wait["departure"] > wait["arrival"] > 0
    # it stops once below stop_below x the level, which no function of x^(1) alone reaches (and the final loss is
    # measured on a fresh batch of 65536 samples)
    assert m["stopped_early"] and m["final_loss"] < stairs.DEPARTURE_FRACTION * uni


def test_pairwise_dependence_pulls_the_weights_off_the_axis(tmp_path):
    """Section 5's condition at work: with x_1 = x_2 (E[x_1 x_2] = 1) plain SGD puts as much weight on e_2 as on
    e_1, none on the four untilted coordinates (the control inside the same run), and the loss falls below the
    univariate level toward the pair level (0 here). Untilted, the weights stay on e_1
    (test_loss_passes_the_analytic_plateaus_in_order)."""
    cfg = specs.stairs_tilt_spec(1.0, "smoke", 0)
    cfg.update(d=6, batch=256)
    cfg["phases"][0]["steps"] = 2000
    m = run_stairs(cfg, Run(tmp_path), progress=False)
    on, partner, *rest = np.array(m["axis_weights"])[-1, 1:]
    assert partner > 0.8 * on and max(rest) < 0.1 * on
    assert m["final_loss"] < 0.5 * m["levels"]["univariate"] and m["levels"]["pair"] < 1e-20
