"""Per-sample hallucination detectors (ldrkit.probes.detectors) and their ROC statistics (ldrkit.analysis.detectors).

Every bound is exact mathematics or chance: the AUROC of the label itself is 1 and of a constant 1/2, a random
score's AUROC lies within the Mann-Whitney null bound of 1/2, product-likeness is 0 for the rule's own denoiser,
1 for the product oracle and 1 - a for a mixture; the exact rule oracle never hallucinates, and its deterministic
(DDIM) trajectories have settled on one valid sequence by the last steps, so Aithal's variance there is ~0.
"""
import math

import numpy as np
import pytest
import torch

from ldrkit.probes import detectors as D
from ldrkit.analysis import detectors as A
from ldrkit.denoisers.oracles import build_oracle
from parity_oracles import parity_setup


def null_sd(n1, n0):
    """Standard deviation of the Mann-Whitney AUROC of a score unrelated to the labels."""
    return math.sqrt((n1 + n0 + 1) / (12 * n1 * n0))


@pytest.fixture(scope="module")
def parity6():
    return parity_setup(6)


def test_auroc_of_the_label_is_one_of_a_constant_one_half_and_of_noise_near_one_half():
    rng = np.random.default_rng(0)
    labels = np.array(["hallucination"] * 120 + ["in_dataset"] * 60 + ["extrapolation"] * 60 + ["invalid"] * 30)
    as_score = (labels == "hallucination").astype(float)
    pos, neg = A.classes(labels, as_score)
    assert (len(pos), len(neg)) == (120, 120)  # invalid samples are dropped
    assert A.auroc(pos, neg) == 1.0 and A.auroc(neg, pos) == 0.0
    assert A.removed_at_kept(pos, neg)[0] == 1.0
    assert A.auroc(*A.classes(labels, np.ones(len(labels)))) == 0.5
    pos, neg = A.classes(labels, rng.normal(size=len(labels)))
    assert abs(A.auroc(pos, neg) - 0.5) < 4 * null_sd(120, 120)
    low, high = A.auroc_interval(pos, neg, resamples=500)
    assert low < A.auroc(pos, neg) < high and high - low < 8 * null_sd(120, 120)
    nan_score = np.where(labels == "in_dataset", np.nan, as_score)
    assert A.classes(labels, nan_score)[1].size == 60  # undefined scores are dropped, not ranked


def test_auroc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(1)
    pos, neg = rng.integers(0, 5, 40).astype(float), rng.integers(0, 5, 30).astype(float)
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert A.auroc(pos, neg) == pytest.approx(pairs, abs=1e-12)
    fpr, tpr = A.roc_curve(pos, neg)
    assert np.trapezoid(tpr, fpr) == pytest.approx(pairs, abs=1e-12)  # the curve's area is the same number


def test_verdict_thresholds():
    assert A.verdict(0.7, 0.9) == "detects" and A.verdict(0.45, 0.6) == "chance"
    assert A.verdict(0.55, 0.7) == "weak" and A.verdict(0.2, 0.4) == "inverted"
    assert A.verdict(math.nan, math.nan) == "too few"


def test_product_likeness_is_calibrated_by_the_two_oracles():
    g, p = torch.randn(5, 7, 12), torch.randn(5, 7, 12)
    assert np.allclose(D.product_likeness(g, g, p), 0, atol=1e-12)
    assert np.allclose(D.product_likeness(p, g, p), 1, atol=1e-12)
    for a in (0.25, 0.8):
        assert np.allclose(D.product_likeness(a * g + (1 - a) * p, g, p), 1 - a, atol=1e-6)
    assert np.isnan(D.product_likeness(g, g, g)).all()  # the oracles agree: undefined, not a number


def test_x0_variance_is_the_per_pixel_variance_over_steps():
    x = torch.randn(1, 3, 10).expand(4, 3, 10)
    assert np.allclose(D.x0_variance(x), 0)
    steps = torch.tensor([0.0, 1.0, 2.0, 3.0]).reshape(4, 1, 1).expand(4, 2, 5)
    assert np.allclose(D.x0_variance(steps), np.var([0, 1, 2, 3], ddof=1))
    with pytest.raises(ValueError):
        D.x0_variance(x[:1])


def test_detectors_on_the_exact_oracles(parity6):
    rule, product = build_oracle(parity6, "rule"), build_oracle(parity6, "product")
    res = D.detector_scores(parity6, rule, 96, seed=0, num_steps=50, sampler="ddim", windows=(3, 10),
                            rule=rule, product=product, batch=64)
    assert len(res["labels"]) == 96 and "hallucination" not in res["labels"] and "invalid" not in res["labels"]
    assert np.allclose(res["product_likeness"][10], 0, atol=1e-9)  # the rule is the rule
    assert res["aithal"][3].max() < 1e-6 < res["aithal"][10].max()  # settled at the end, still moving before
    assert res["timesteps"][-1] == 0 and res["timesteps"] == sorted(res["timesteps"], reverse=True)

    # The product oracle breaks parity about half the time; its product-likeness is 1 on every sample.
    res = D.detector_scores(parity6, product, 192, seed=1, num_steps=50, sampler="ddim", windows=(3, 10),
                            rule=rule, product=product, batch=96)
    assert np.allclose(res["product_likeness"][10], 1, atol=1e-9)
    pos, neg = A.classes(res["labels"], res["aithal"][10])
    assert min(len(pos), len(neg)) > 60
    # Whether the product's sample keeps parity is decided by the sign of one more cell, which the oracle
    # treats like any other: the x0 variance cannot tell the classes apart beyond chance.
    assert abs(A.auroc(pos, neg) - 0.5) < 4 * null_sd(len(pos), len(neg))
    rows = A.detection_rows(res, "product oracle", windows=(10,))
    assert {r["verdict"] for r in rows if r["detector"].startswith("product")} == {"chance"}  # a constant score


def test_detect_command_refuses_what_it_cannot_score(capsys):
    from ldrkit.__main__ import main

    assert main(["detect", "no-such-run"]) == 2
    assert main(["detect", "three-stairs-d8"]) == 2
    assert main(["detect", "parity-parens-L16-unet", "--n", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)


def test_sample_count_asks_for_enough_of_the_rarer_class():
    from types import SimpleNamespace

    run = SimpleNamespace(final={"categories": {"hallucination": 0.5, "in_dataset": 0.05, "extrapolation": 0.05,
                                                "invalid": 0.4}})
    n = A.sample_count(run, {"min_class": 50, "max": 4096})
    assert n % 32 == 0 and 50 * A.MARGIN <= 0.1 * n < 50 * A.MARGIN + 0.1 * 32  # >= 50 valid expected, no more
    assert A.sample_count(run, {"min_class": 50, "max": 256}) == 256
    run.final["categories"]["hallucination"] = 0.0
    assert A.sample_count(run, {"min_class": 50, "max": 256}) == 256  # a class the run never made: the cap


def test_the_vectorized_bootstrap_statistic_is_the_auroc():
    rng = np.random.default_rng(2)
    pos, neg = rng.integers(0, 6, (3, 25)).astype(float), rng.integers(0, 6, (3, 17)).astype(float)
    assert np.allclose(A._auroc_along(pos, neg), [A.auroc(p, n) for p, n in zip(pos, neg)], atol=1e-12)


def test_protocol_rows_score_hallucinations_beside_the_positive_control():
    """Aithal et al.'s x0 variance under their protocol: a detector that flags illegible samples (its control) but
    scores hallucinations like valid ones reads "detects" on the control and "chance" on hallucinations."""
    from ldrkit.analysis import detectors as A
    rng = np.random.default_rng(0)
    labels = np.array(["invalid"] * 60 + ["hallucination"] * 60 + ["in_dataset"] * 60, dtype=object)
    score = np.concatenate([rng.normal(3, 1, 60), rng.normal(0, 1, 60), rng.normal(0, 1, 60)])
    rows = A.protocol_rows({"toy": {"labels": labels, "aithal": {A.PAPER_PROTOCOL["window"]: score}}})
    by = {r["task"]: r for r in rows}
    assert by["illegible vs valid (control)"]["verdict"] == "detects" and by["illegible vs valid (control)"]["positives"] == 60
    assert by["hallucinated vs valid"]["verdict"] == "chance"
