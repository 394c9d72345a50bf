"""Sampling from the exact denoisers through the ordinary pipeline (issue: oracles as baselines)."""
import math

import pytest

from ldrkit.spec.registry import get_experiment
from ldrkit.runs.request import run_experiment
from ldrkit.denoisers.oracles import build_oracle
from ldrkit.probes.distances import oracle_distances
from ldrkit.runs.setup import Setup

N = 512  # samples: the binomial standard error of a fraction near 1/2 is 0.022


def run(which, tmp_path):
    return run_experiment(f"parity-mlp-L16-oracle-{which}", "smoke", out=tmp_path, progress=False,
                          overrides={"eval": {"num_samples": N, "sample_steps": 200}})["final"]["categories"]


@pytest.mark.long(seconds=50)
def test_the_rule_oracle_never_breaks_the_rule(tmp_path):
    c = run("rule", tmp_path)
    assert c["invalid"] == 0 and c["hallucination"] == 0
    # it samples the rule distribution, so training sequences appear at their share (5%)
    assert abs(c["in_dataset"] - 0.05) < 4 * math.sqrt(0.05 * 0.95 / N)


def test_the_product_oracle_breaks_parity_half_of_the_time(tmp_path):
    c = run("product", tmp_path)
    assert c["invalid"] == 0
    assert abs(c["hallucination"] - 0.5) < 4 * math.sqrt(0.25 / N)


def test_the_memoriser_only_reproduces_training_sequences(tmp_path):
    assert run("memoriser", tmp_path)["in_dataset"] == 1.0


def test_distance_to_oracles_is_zero_for_the_oracle_itself():
    config = get_experiment("parity-mlp-L16").config("smoke", 0)
    setup = Setup.from_config(config)
    oracles = {w: build_oracle(setup, w) for w in ("rule", "product", "memoriser")}
    d = oracle_distances(oracles["memoriser"], setup, oracles, n=16)
    assert all(v < 1e-10 for v in d["memoriser"].values())
    assert d["rule"]["0.9"] > 1e-3  # the memoriser differs from the rule at low noise
    with pytest.raises(ValueError, match="unknown oracle"):
        build_oracle(setup, "teacher")


@pytest.mark.parametrize("which,expected", [("rule", 0.0), ("product", 0.5)])
def test_parentheses_oracles_sample_through_the_image_pipeline(tmp_path, which, expected):
    """On glyph images with the centring shift: the rule oracle never breaks parity, the product breaks it half the time."""
    m = run_experiment(f"parity-parens-L16-unet-oracle-{which}", "smoke", out=tmp_path, progress=False,
                       overrides={"eval": {"num_samples": 256, "sample_steps": 50}})
    c = m["final"]["categories"]
    assert c["invalid"] < 0.05, c
    assert abs(c["hallucination"] - expected) <= 4 * math.sqrt(0.25 / 256) + 0.01, c


def assert_oracle_distances_recorded(metrics: dict) -> None:
    """Every evaluation holds a finite, non-negative distance to each oracle at the five levels."""
    for e in metrics["evaluations"]:
        d = e["oracle_distance"]
        assert set(d) == {"rule", "product", "memoriser"}
        for values in d.values():
            assert set(values) == {"0.1", "0.3", "0.5", "0.7", "0.9"}
            assert all(v >= 0 and math.isfinite(v) for v in values.values())


def test_image_experiments_record_the_distance_to_each_oracle_per_evaluation(tmp_path):
    m = run_experiment("parity-parens-L8-unet", "smoke", out=tmp_path, progress=False)
    assert_oracle_distances_recorded(m)


@pytest.mark.parametrize("which, expected, levels", [("rule", 1.0, None), ("product", 0.0, [0.7])])
def test_evaluations_record_the_calibrated_coupling_score_of_the_oracles_themselves(tmp_path, which, expected, levels):
    # eval.coupling_samples: kappa per evaluation, computed through the same code for oracles and networks, at
    # eval.coupling_levels (default: the LDR levels).
    m = run_experiment(f"quarter-digits-unet-oracle-{which}", "smoke", seed=0, out=tmp_path, progress=False,
                       overrides={"eval": {"coupling_samples": 4, "ldr_levels": [0.5, 0.7], "coupling_levels": levels}})
    assert set(m["final"]["coupling"]) == ({"0.5", "0.7"} if levels is None else {"0.7"})
    for level, result in m["final"]["coupling"].items():
        assert result["signal"] > 1e-3, (level, result)  # separable: the two oracles differ here
        assert result["value"] == pytest.approx(expected, abs=1e-6), (level, result)


def test_coupling_per_evaluation_needs_the_oracles():
    from ldrkit.runs.pipeline import evaluate
    config = get_experiment("quarter-digits-unet").config("smoke", 0)
    setup = Setup.from_config(config)
    with pytest.raises(ValueError, match="coupling_samples needs"):
        evaluate(setup, build_oracle(setup, "product"), {**config["eval"], "coupling_samples": 2}, seed=0)
