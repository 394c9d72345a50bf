import itertools

import torch

from ldrkit.diffusion import Schedule
from ldrkit.grammars import Parity
from ldrkit.oracle import FiniteSetDenoiser, posterior_mean


def brute_force_posterior_mean(x, support, a, weights):
    logp = torch.log(weights) - ((x[:, None, :] - a * support[None]) ** 2).sum(-1) / (2 * (1 - a**2))
    return torch.softmax(logp, dim=1) @ support


def test_posterior_mean_equals_brute_force_in_chunks_and_weighted():
    g = torch.Generator().manual_seed(0)
    support = torch.randn(37, 5, generator=g, dtype=torch.float64)
    weights = torch.rand(37, generator=g, dtype=torch.float64) + 0.1
    x = 3 * torch.randn(11, 5, generator=g, dtype=torch.float64)
    for a in (0.05, 0.5, 0.99):
        expected = brute_force_posterior_mean(x, support, a, weights)
        got = posterior_mean(x, support, a, torch.log(weights), chunk=8)
        torch.testing.assert_close(got, expected)


def test_posterior_mean_is_stable_at_tiny_noise():
    support = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    out = posterior_mean(torch.tensor([[0.9, 1.1]]), support, 0.99999)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.tensor([[1.0, 1.0]]))


def test_uniform_hypercube_posterior_is_tanh():
    cube = torch.tensor(list(itertools.product((1.0, -1.0), repeat=6)))
    x = torch.randn(20, 6)
    a = 0.4
    torch.testing.assert_close(posterior_mean(x, cube, a), torch.tanh(a * x / (1 - a * a)), atol=1e-5, rtol=1e-5)


def test_oracle_eps_is_consistent_with_posterior_mean_and_differentiable():
    s = Schedule()
    support = torch.tensor(Parity(4).enumerate(), dtype=torch.float32)
    oracle = FiniteSetDenoiser(support, s)
    x = torch.randn(5, 4, requires_grad=True)
    t = torch.full((5,), 300)
    eps = oracle(x, t)
    torch.testing.assert_close(s.x0_from_eps(x, eps, t), posterior_mean(x, support, s.sqrt_alpha_bar(300)),
                               atol=1e-5, rtol=1e-5)
    eps.sum().backward()
    assert torch.isfinite(x.grad).all()
