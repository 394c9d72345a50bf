"""Remedy B of issue #17: sampling guided by a learned rule critic (ldrkit.denoisers.guidance).

The trained-critic tests use the Quarter-digits rule s1 + s2 = s3 + s4 with each digit rendered as
one scalar (no handwriting to learn to read), where a small critic learns the rule in 600 steps;
the exact product-of-marginals denoiser stands in for a local network that has not learned it.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from ldrkit.probes import ldr
from ldrkit.probes.estimates import wilson
from ldrkit.spec.registry import get_experiment
from ldrkit.denoisers.guidance import (CriticGuided, RuleCritic, accuracy, build_critic, critic_data, held_out_data,
                             product_negatives, train_critic)
from ldrkit.runs.setup import Setup
from ldrkit.denoisers.oracles import build_oracle

DIGIT_SUM = {"grammar": {"name": "digit-sum", "length": 4}, "split": {"train_fraction": 0.7, "seed": 0},
             "render": {"type": "scalar", "symbols": list(range(10)), "tolerance": 0.3}, "data": {"center": True},
             "schedule": {"num_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02}}
SAMPLES = 256


@pytest.fixture(scope="module")
def digit_sum():
    return Setup.from_config(DIGIT_SUM)


@pytest.fixture(scope="module")
def trained(digit_sum):
    """A critic trained for 600 steps (about 15 s on one thread)."""
    return train_critic(digit_sum, 600, batch_size=128, seed=0, progress=False, width=16, hidden=64, depth=2)


@pytest.fixture(scope="module")
def parens():
    """A small image setup (parity parentheses L8, smoke profile), its UNet and an untrained critic."""
    config = get_experiment("parity-parens-L8-unet").config("smoke", 0)
    setup = Setup.from_config(config)
    model = setup.build_model(config).eval()
    torch.manual_seed(1)
    return setup, model, build_critic(setup, width=8, depth=2, hidden=16).eval()


def test_critic_data_is_balanced_valid_against_product_negatives(digit_sum):
    data = critic_data(digit_sum, None, np.random.default_rng(0))
    n = len(digit_sum.train_data)
    assert data.x.shape == (2 * n, 4) and data.y.sum() == n and (data.y[:n] == 1).all()
    torch.testing.assert_close(data.x[:n], digit_sum.train_data)
    seqs = np.asarray(digit_sum.grammar.symbols)[data.tokens.numpy()]
    # the tokens are what the images show (the scalar renderer draws symbol s as the value s)
    torch.testing.assert_close(data.x + digit_sum.shift, torch.as_tensor(seqs, dtype=torch.float32))
    assert digit_sum.grammar.is_valid(seqs[:n]).all() and not digit_sum.grammar.is_valid(seqs[n:]).any()
    smaller = critic_data(digit_sum, 50, np.random.default_rng(0))
    assert smaller.x.shape == (100, 4) and smaller.y.sum() == 50
    with pytest.raises(ValueError, match="n_negative"):
        critic_data(digit_sum, 0, np.random.default_rng(0))


def test_product_negatives_follow_the_training_marginals(digit_sum):
    neg = product_negatives(digit_sum, 4000, np.random.default_rng(1))
    assert not digit_sum.grammar.is_valid(neg).any()
    # a digit that never appears at a position in training never appears there in a negative
    for j in range(4):
        assert set(np.unique(neg[:, j])) <= set(np.unique(digit_sum.split.train[:, j]))


@pytest.mark.long(seconds=20)
def test_trained_critic_reads_the_rule_on_held_out_sequences(digit_sum, trained):
    """Held-out valid sequences (never trained on) against fresh product negatives, clean: above chance
    by more than the binomial noise (lower 99% Wilson bound > 1/2)."""
    critic, info = trained
    held = held_out_data(digit_sum, np.random.default_rng(123))
    acc = accuracy(critic, digit_sum.schedule, held, 0, torch.Generator().manual_seed(0))
    n = len(held.x)
    assert wilson(round(acc * n), n, confidence=0.99)[0] > 0.5, (acc, info)
    assert set(info["accuracy"]) == {"clean", "0.9", "0.5", "0.2"} and info["n_held_out"] == n


@pytest.mark.long(seconds=25)
def test_guidance_raises_the_valid_share_of_the_product_oracle(digit_sum, trained):
    """The exact product-of-marginals denoiser breaks the rule; guided by the trained critic, its samples
    obey it more often, by more than the two Wilson intervals' widths (DDIM, 50 steps, 256 samples)."""
    critic, _ = trained
    product = build_oracle(digit_sum, "product")

    def valid(scale):
        samples = digit_sum.generate(CriticGuided(product, critic, digit_sum.schedule, scale), SAMPLES, 1, 50,
                                     sampler="ddim")
        labels = digit_sum.categorize(samples)
        return int(np.isin(labels, ["in_dataset", "extrapolation"]).sum())

    plain, guided = valid(0.0), valid(3.0)
    # unguided, the share is that of the product of the training marginals (computed exactly)
    train = digit_sum.split.train
    marg = np.stack([np.bincount(train[:, j], minlength=10) / len(train) for j in range(4)])
    grid = np.array(list(itertools.product(range(10), repeat=4)))
    exact = np.prod(marg[np.arange(4), grid], axis=1)[digit_sum.grammar.is_valid(grid)].sum()
    lo, hi = wilson(plain, SAMPLES, confidence=0.999)
    assert lo <= exact <= hi, (plain / SAMPLES, exact)
    assert wilson(guided, SAMPLES)[0] > wilson(plain, SAMPLES)[1], (plain, guided)


def test_scale_zero_is_the_wrapped_model_exactly(parens):
    setup, model, critic = parens
    x = torch.randn(3, *setup.renderer.signal_shape, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([10, 400, 900])
    with torch.no_grad():
        assert torch.equal(CriticGuided(model, critic, setup.schedule, 0.0)(x, t), model(x, t))
        assert not torch.equal(CriticGuided(model, critic, setup.schedule, 5.0)(x, t), model(x, t))


def test_guided_eps_is_the_critic_gradient_term_with_and_without_grad(parens):
    setup, model, critic = parens
    scale, t = 2.0, torch.tensor([300, 700])
    x = torch.randn(2, *setup.renderer.signal_shape, generator=torch.Generator().manual_seed(2))
    xg = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(torch.nn.functional.logsigmoid(critic(xg, t)).sum(), xg)
    sigma = (1 - setup.schedule.alphas_cumprod[t]).sqrt().reshape(-1, 1, 1, 1)
    guided = CriticGuided(model, critic, setup.schedule, scale)
    with torch.no_grad():
        expected = model(x, t) - scale * sigma * grad
        torch.testing.assert_close(guided(x, t), expected)
    torch.testing.assert_close(guided(x, t), expected)


def test_jacobian_probes_see_the_guidance_term(parens):
    """vmap-of-vjp rows equal plain autograd rows and the batched graph's (double backward through the critic), and
    differ from the unguided network's rows: the probes measure the guided denoiser, guidance included."""
    setup, model, critic = parens
    guided = CriticGuided(model, critic, setup.schedule, 5.0)
    x = setup.train_data[:2]
    region = setup.renderer.region(1)
    rows = ldr.jacobian_rows(guided, x, 500, region, jacobian="vmap")
    for other in ("loop", "graph"):
        torch.testing.assert_close(rows, ldr.jacobian_rows(guided, x, 500, region, jacobian=other), atol=1e-5,
                                   rtol=1e-4)
    plain = ldr.jacobian_rows(model, x, 500, region, jacobian="vmap")
    assert (rows - plain).abs().max() > 1e-4
    assert all(p.requires_grad for p in guided.parameters())  # the probe restores the parameters


def test_bad_inputs_are_refused(parens, digit_sum):
    setup, model, critic = parens
    with pytest.raises(ValueError, match="scale"):
        CriticGuided(model, critic, setup.schedule, -1.0)
    with pytest.raises(ValueError, match="RuleCritic expects"):
        critic(torch.zeros(1, 4), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="region"):
        RuleCritic((4,), [torch.zeros(5, dtype=torch.bool)], 10)
    with pytest.raises(ValueError, match="empty"):
        RuleCritic((4,), [torch.zeros(4, dtype=torch.bool)], 10)
    with pytest.raises(ValueError, match="steps"):
        train_critic(digit_sum, 0)

