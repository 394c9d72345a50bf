"""Exact denoisers of the Quarter-digits data (issues 5 and 8): the rule as a mixture over tuples of
per-quarter instance mixtures, the product of the quarters' marginals, the memoriser."""
import itertools
import math

import numpy as np
import pytest
import torch

from ldrkit.denoisers.schedule import Schedule
from ldrkit.analysis.phases import independent_valid_probability
from ldrkit.systems.digits import DigitSum, QuarterDigitRenderer
from ldrkit.spec.registry import get_experiment
from ldrkit.runs.request import run_experiment
from ldrkit.denoisers.oracles import FiniteSetDenoiser, ProductOfCellsDenoiser, TupleOfInstancesDenoiser
from ldrkit.denoisers.oracles import build_oracle, quarter_digit_rule_oracle
from ldrkit.runs.setup import Setup
from test_oracle_runs import assert_oracle_distances_recorded


def explicit_support(tuples, instances, index, size, weights=None):
    """Every (tuple, instance per cell) combination as one signal, with its probability."""
    rows, probs = [], []
    weights = np.ones(len(tuples)) / len(tuples) if weights is None else np.asarray(weights) / np.sum(weights)
    for tau, w in zip(tuples, weights):
        for choice in itertools.product(*[range(len(instances[k])) for k in tau]):
            x = torch.zeros(size)
            for cell, (k, i) in enumerate(zip(tau, choice)):
                x[index[cell]] = instances[k][i]
            rows.append(x)
            probs.append(w * np.prod([1 / len(instances[k]) for k in tau]))
    return torch.stack(rows), torch.tensor(probs, dtype=torch.float32)


def test_tuple_of_instances_equals_the_brute_force_posterior_mean_and_its_jacobian():
    """Interleaved cells, unequal instance counts, weighted tuples: equal to the explicit finite set, Jacobian too."""
    s = Schedule()
    g = torch.Generator().manual_seed(0)
    cells, cell = 4, 3
    perm = torch.randperm(cells * cell, generator=g)
    regions = [torch.zeros(cells * cell, dtype=torch.bool).index_fill(0, perm[j::cells], True) for j in range(cells)]
    index = [r.nonzero().squeeze(1) for r in regions]
    instances = [torch.randn(m, cell, generator=g) for m in (2, 3, 1)]
    tuples = np.array([[0, 1, 2, 0], [1, 1, 0, 2], [2, 0, 1, 1], [1, 2, 2, 1]])
    weights = torch.tensor([1.0, 2.0, 0.5, 1.5])
    oracle = TupleOfInstancesDenoiser(tuples, instances, regions, s, weights=weights, chunk=2)
    support, probs = explicit_support(tuples, instances, index, cells * cell, weights.numpy())
    assert len(support) == 2 * 3 * 1 * 2 + 3 * 3 * 2 * 1 + 1 * 2 * 3 * 3 + 3 * 1 * 1 * 3
    brute = FiniteSetDenoiser(support, s, probs)
    x = 2 * torch.randn(7, cells * cell, generator=g)
    for t in (5, 100, 400, 900):
        tt = torch.full((7,), t)
        torch.testing.assert_close(oracle(x, tt), brute(x, tt), atol=2e-4, rtol=2e-4)
        jac = torch.autograd.functional.jacobian(lambda z: oracle(z, tt[:1]), x[:1])
        jac_brute = torch.autograd.functional.jacobian(lambda z: brute(z, tt[:1]), x[:1])
        torch.testing.assert_close(jac, jac_brute, atol=2e-3, rtol=2e-3)


def test_tuple_of_instances_refuses_bad_inputs():
    s = Schedule()
    cells = [torch.tensor([True, True, False, False]), torch.tensor([False, False, True, True])]
    with pytest.raises(ValueError, match="same size"):
        TupleOfInstancesDenoiser([[0, 0]], [torch.zeros(1, 2)], [torch.tensor([True, False, False]),
                                                                  torch.tensor([False, True, True])], s)
    with pytest.raises(ValueError, match="index"):
        TupleOfInstancesDenoiser([[0, 3]], [torch.zeros(1, 2)], cells, s)
    with pytest.raises(ValueError, match="no instances"):
        TupleOfInstancesDenoiser([[0, 1]], [torch.zeros(1, 2), torch.zeros(0, 2)], cells, s)


@pytest.fixture(scope="module")
def smoke_setup():
    return Setup.from_config(get_experiment("quarter-digits-unet").config("smoke", 0))


def test_quarter_rule_oracle_equals_brute_force_on_real_digits(smoke_setup):
    """Two real instances per digit and six valid tuples: the factorised oracle equals the posterior mean
    over the 6 * 2^4 explicit quarter images, composed like the renderer composes them (with the centring shift)."""
    setup = smoke_setup
    r = setup.renderer
    tuples = DigitSum().enumerate()[::111][:6]
    oracle = quarter_digit_rule_oracle(r, tuples, setup.schedule, setup.shift, max_instances=2)
    labels = r.train_digits.labels
    instances = [r.train_digits.images[np.flatnonzero(labels == k)[:2]].reshape(2, -1) - setup.shift
                 for k in range(10)]
    index = [r.region(j).reshape(-1).nonzero().squeeze(1) for j in range(4)]
    support, probs = explicit_support(tuples, instances, index, int(np.prod(r.signal_shape)))
    # the layout is the renderer's: its own quarters() reads the composed images back
    quarters = r.quarters(support.reshape(-1, *r.signal_shape) + setup.shift)
    first = [r.train_digits.images[np.flatnonzero(labels == k)[0]] for k in tuples[0]]
    torch.testing.assert_close(quarters[0], torch.stack(first))
    brute = FiniteSetDenoiser(support.reshape(-1, *r.signal_shape), setup.schedule, probs)
    x = torch.randn(5, *r.signal_shape, generator=torch.Generator().manual_seed(3))
    for t in (20, 300, 800):
        tt = torch.full((5,), t)
        torch.testing.assert_close(oracle(x, tt), brute(x, tt), atol=3e-4, rtol=3e-4)


def test_build_oracle_dispatches_on_the_quarter_renderer(smoke_setup):
    setup = smoke_setup
    assert isinstance(setup.renderer, QuarterDigitRenderer) and setup.shift != 0
    rule = build_oracle(setup, "rule")
    assert isinstance(rule, TupleOfInstancesDenoiser) and len(rule.tuples) == 670
    assert sum(len(v) for v in rule.instances) == len(setup.renderer.train_digits)
    assert isinstance(build_oracle(setup, "product"), ProductOfCellsDenoiser)
    memo = build_oracle(setup, "memoriser")
    assert isinstance(memo, FiniteSetDenoiser) and torch.equal(memo.support, setup.train_data)
    # At tiny noise each oracle returns a clean training image (in the model's centred space) as itself.
    x0 = setup.train_data[:4]
    t = 2
    xt = setup.schedule.sqrt_alpha_bar(t) * x0 + (1 - setup.schedule.sqrt_alpha_bar(t) ** 2) ** 0.5 * \
        0.01 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    for which in ("rule", "product", "memoriser"):
        oracle = build_oracle(setup, which)
        tt = torch.full((4,), t)
        torch.testing.assert_close(setup.schedule.x0_from_eps(xt, oracle(xt, tt), tt), x0, atol=1e-3, rtol=1e-3)


# --- sampling through the ordinary pipeline (smoke profile data: 470 training images, 16x16) ---------

N = 1024  # samples per oracle: the binomial s.e. of the product oracle's hallucination rate (~0.93) is 0.008


def sample(which, tmp_path):
    m = run_experiment(f"quarter-digits-unet-oracle-{which}", "smoke", out=tmp_path, progress=False,
                       overrides={"eval": {"num_samples": N, "sample_steps": 50}})
    return m["final"]["categories"]


# The decoder is a classifier, and it misreads (or finds illegible) a few of the very training instances the
# oracles' samples collapse onto (8 of the 1438 scikit-learn training digits with the seed-0 classifier). So
# each check allows the fraction of misread samples the classifier predicts for that oracle's distribution,
# computed from its per-digit reading of the instance pool, plus 4 binomial standard errors.

def digit_read_rates(setup) -> np.ndarray:
    """(10,): per digit, the fraction of its training instances the OCR reads right and legibly."""
    r = setup.renderer
    digit, prob = r.ocr.read_digits(r.train_digits.images)
    ok = (digit == r.train_digits.labels) & (prob >= r.threshold)
    return np.array([ok[r.train_digits.labels == k].mean() for k in range(10)])


def margin(f: float) -> float:
    return f + 4 * math.sqrt(max(f, 1 / N) * (1 - f) / N)


def test_quarter_rule_oracle_never_breaks_the_rule(tmp_path, smoke_setup):
    rates = digit_read_rates(smoke_setup)
    misread = 1 - float(np.mean(np.prod(rates[DigitSum().enumerate()], axis=1)))  # uniform over the 670 tuples
    c = sample("rule", tmp_path)
    assert c["invalid"] + c["hallucination"] <= margin(misread), (c, misread)
    # It samples all 670 valid tuples, so about 200/670 of its samples are held-out tuples (extrapolation).
    share = len(smoke_setup.split.held_out) / 670
    assert abs(c["extrapolation"] - share) < 4 * math.sqrt(share * (1 - share) / N) + margin(misread), c


def test_quarter_product_oracle_breaks_the_rule_at_the_rate_of_independent_digits(tmp_path, smoke_setup):
    train = smoke_setup.split.train
    p_valid = independent_valid_probability(smoke_setup.grammar, train)  # P(s1+s2 = s3+s4), digits independent with training marginals
    marg = np.stack([np.bincount(train[:, j], minlength=10) / len(train) for j in range(4)])
    misread = 1 - float(np.prod(marg @ digit_read_rates(smoke_setup)))
    c = sample("product", tmp_path)
    assert c["invalid"] <= margin(misread), (c, misread)
    # Read right, a sample hallucinates with probability 1 - p_valid; a misread one may land anywhere, so
    # (1 - p_valid)(1 - misread) <= E[hallucination] <= 1 - p_valid + p_valid * misread.
    se = 4 * math.sqrt(p_valid * (1 - p_valid) / N)
    low, high = (1 - p_valid) * (1 - margin(misread)), 1 - p_valid + p_valid * margin(misread)
    assert low - se <= c["hallucination"] <= high + se, (c, p_valid, misread)


def test_quarter_memoriser_only_reproduces_training_tuples(tmp_path, smoke_setup):
    clean = smoke_setup.categorize(smoke_setup.train_data + smoke_setup.shift)
    misread = 1 - float(np.mean(clean == "in_dataset"))  # the training images themselves, read by the OCR
    c = sample("memoriser", tmp_path)
    assert c["in_dataset"] >= 1 - margin(misread) and c["extrapolation"] <= margin(misread), (c, misread)


def test_quarter_digit_runs_record_the_distance_to_each_oracle(tmp_path):
    """A smoke run records E(eps_net - eps_oracle)^2 per evaluation; recomputing from its checkpoints agrees."""
    from ldrkit.analysis.overtraining import oracle_distance_over_training
    m = run_experiment("quarter-digits-unet", "smoke", out=tmp_path, progress=False)
    assert_oracle_distances_recorded(m)
    rows = oracle_distance_over_training(tmp_path, n=8, seed=0)
    assert [r["step"] for r in rows] == [e["step"] for e in m["evaluations"]]
    # at the highest noise the three exact denoisers nearly coincide, so the distances to them do too
    last = rows[-1]
    assert max(last[w]["0.1"] for w in ("rule", "product", "memoriser")) < 1.01 * min(
        last[w]["0.1"] for w in ("rule", "product", "memoriser"))
