import itertools

import torch

from ldrkit.denoisers.schedule import Schedule
from ldrkit.systems.grammars import Parity
from ldrkit.denoisers.oracles import FiniteSetDenoiser, posterior_mean


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


def test_product_of_cells_equals_the_brute_force_product_distribution():
    from ldrkit.denoisers.oracles import ProductOfCellsDenoiser
    s = Schedule()
    g = torch.Generator().manual_seed(1)
    # 3 cells of 2 elements; non-uniform cell marginals from a small data set
    data = torch.tensor([[1.0, 0.0, 2.0, 2.0, -1.0, 1.0],
                         [1.0, 0.0, -2.0, 0.5, -1.0, 1.0],
                         [0.0, 1.0, 2.0, 2.0, 3.0, 3.0]])
    regions = [torch.tensor([i // 2 == j for i in range(6)]) for j in range(3)]
    product = ProductOfCellsDenoiser(data, regions, s)
    cells = [torch.unique(data[:, r], dim=0, return_counts=True) for r in regions]
    support, weights = [], []
    for combo in itertools.product(*[range(len(v)) for v, _ in cells]):
        support.append(torch.cat([cells[j][0][k] for j, k in enumerate(combo)]))
        weights.append(float(torch.prod(torch.tensor([cells[j][1][k] / len(data) for j, k in enumerate(combo)]))))
    brute = FiniteSetDenoiser(torch.stack(support), s, torch.tensor(weights))
    x = 2 * torch.randn(9, 6, generator=g)
    for t in (50, 400, 900):
        tt = torch.full((9,), t)
        torch.testing.assert_close(product(x, tt), brute(x, tt), atol=1e-4, rtol=1e-4)


def test_product_of_cells_refuses_overlapping_regions():
    import pytest
    from ldrkit.denoisers.oracles import ProductOfCellsDenoiser
    with pytest.raises(ValueError, match="disjoint"):
        ProductOfCellsDenoiser(torch.zeros(2, 3), [torch.tensor([True, True, False]), torch.tensor([False, True, True])],
                               Schedule())
