"""Section 5 checks: Fourier/Assumption 5.1, the exact posterior, the plateau levels, Theorem 5.2 and K."""
import math

import numpy as np
import pytest
import torch

from ldrkit.theory import hypercube as H
from ldrkit.denoisers.oracles import posterior_mean

torch.set_num_threads(1)


@pytest.mark.parametrize("d", [3, 4, 8])
def test_parity_satisfies_assumption_5_1(d):
    coef = H.fourier_coefficients(H.parity_support(d), max_degree=None)
    assert H.satisfies_assumption_5_1(H.parity_support(d))
    # the only non-zero coefficients are the constant and the full product
    nonzero = {s for s, v in coef.items() if abs(v) > 1e-15}
    assert nonzero == {(), tuple(range(d))}
    assert coef[()] == pytest.approx(2.0 ** -d) and coef[tuple(range(d))] == pytest.approx(2.0 ** -d)


def test_dyck_violates_assumption_5_1():
    support = H.dyck_support(8)
    assert len(support) == 14  # Catalan(4)
    assert not H.satisfies_assumption_5_1(support)
    coef = H.fourier_coefficients(support, max_degree=1)
    assert coef[(0,)] == pytest.approx(2.0 ** -8)  # the first bracket always opens


def test_fourier_inversion_reconstructs_p0():
    support = H.dyck_support(6)
    coef = H.fourier_coefficients(support, max_degree=None)
    cube = np.array(list(np.ndindex(*(2,) * 6))) * -2 + 1
    rebuilt = np.array([sum(v * np.prod(x[list(s)]) for s, v in coef.items()) for x in cube])
    in_support = (cube[:, None, :] == support[None]).all(-1).any(1)
    assert np.allclose(rebuilt, np.where(in_support, 1 / len(support), 0.0), atol=1e-14)


@pytest.mark.parametrize("sab", [0.2, 0.7, 0.9, 0.99])
def test_parity_posterior_mean_matches_enumeration(sab):
    d = 8
    support = H.parity_support(d)
    g = torch.Generator().manual_seed(1)
    x, _ = H.noise(H.sample_x0(2000, support, None, g), sab, g)
    closed = H.parity_posterior_mean(x, sab)
    brute = posterior_mean(x, torch.as_tensor(support, dtype=torch.float64), sab)
    assert torch.allclose(closed, brute, atol=1e-12)
    # the tanh form of the issue, where it is well conditioned
    m = torch.tanh(sab * x / (1 - sab**2))
    loo = torch.stack([torch.cat([m[:, :k], m[:, k + 1:]], 1).prod(1) for k in range(d)], 1)
    tanh_form = (m + loo) / (1 + m.prod(1, keepdim=True))
    ok = (1 + m.prod(1)) > 1e-3
    assert torch.allclose(closed[ok], tanh_form[ok], atol=1e-9)


def test_posterior_mean_is_stable_at_low_noise_off_the_support():
    # an odd vertex at tiny noise: 1 + prod m underflows to 0 in the naive form
    x = -torch.ones(1, 8, dtype=torch.float64)
    x[0, 0] = 1.0
    x[0, 3] = -0.5  # sign product -1: the nearest parity point flips the least certain coordinate
    out = H.parity_posterior_mean(x, 0.999)
    m = torch.tanh(0.999 * x / (1 - 0.999**2))
    assert float(1 + m.prod()) == 0.0  # the naive denominator is exactly zero here
    assert torch.isfinite(out).all() and out.abs().max() <= 1
    assert out[0, 3].item() > 0.99
    brute = posterior_mean(x, torch.as_tensor(H.parity_support(8), dtype=torch.float64), 0.999)
    assert torch.allclose(out, brute, atol=1e-12)


def test_noised_density_integrates_to_one_in_2d():
    support = H.parity_support(2)
    grid = torch.linspace(-5, 5, 401, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    logp = H.noised_log_density(torch.stack([xx.ravel(), yy.ravel()], 1), support, 0.6)
    assert float(logp.exp().sum() * (grid[1] - grid[0]) ** 2) == pytest.approx(1.0, abs=1e-6)


def test_univariate_target_is_the_conditional_mean_of_y():
    # E[y_1 | x_1] by binning the exact target agrees with the closed form (other coordinates are fair coins)
    sab, d = 0.9, 6
    g = torch.Generator().manual_seed(2)
    x, _ = H.noise(H.sample_parity_x0(400_000, d, g), sab, g)
    y = H.parity_target(x, sab)[:, 0]
    u = H.univariate_target(x[:, 0], sab)
    bins = torch.linspace(-1.5, 1.5, 13, dtype=torch.float64)
    idx = torch.bucketize(x[:, 0].contiguous(), bins)
    for b in range(1, len(bins)):
        sel = idx == b
        resid = (y[sel] - u[sel])
        assert abs(float(resid.mean())) < 4 * float(resid.std()) / math.sqrt(int(sel.sum())) + 1e-3
    # and it is the eps-target of the uniform hypercube in one dimension
    cube1 = np.array([[1], [-1]])
    x1 = x[:500, :1]
    assert torch.allclose(u[:500], H.eps_target(x1, posterior_mean(x1, torch.tensor(cube1, dtype=torch.float64), sab), sab)[:, 0])


def test_levels_are_ordered_and_match_their_identities():
    sab = 0.9
    lv = H.plateau_levels(H.parity_support(8), sab, n=1 << 17)
    assert lv.zero > lv.linear > lv.univariate > 0
    chk = H.check_levels(sab, lv)
    # zero - linear = 1 - abar and zero - univariate = E[u^2], up to Monte Carlo error
    assert chk["zero_minus_linear"] == pytest.approx(chk["exact_zero_minus_linear"], abs=5 * lv.zero_se)
    assert chk["zero_minus_univariate"] == pytest.approx(chk["exact_zero_minus_univariate"], abs=5 * lv.zero_se)
    beta, c = H.best_affine(H.parity_support(8), sab)
    assert np.allclose(beta, np.eye(8)[0] * math.sqrt(1 - sab**2)) and c == 0


def test_best_affine_for_dyck_uses_other_coordinates():
    beta, _ = H.best_affine(H.dyck_support(8), 0.9, i=1)
    assert np.count_nonzero(np.abs(beta) > 1e-9) > 1  # correlations make other coordinates useful


def test_invariant_set_is_preserved_to_machine_precision():
    hist = np.array(H.invariance_run(d=8, m=32, steps=150, batch=512))
    on, off = hist[:, 2], hist[:, 3]
    assert on[-1] > 2 * on[0]          # the network learns ...
    assert hist[-1, 1] < hist[0, 1]    # ... and the loss falls
    assert np.all(off <= 1e-12 * on)   # ... but never leaves M beyond rounding


def test_off_invariant_set_start_stays_near_it():
    hist = np.array(H.invariance_run(d=8, m=32, steps=150, batch=512, offset=1e-3))
    on, off = hist[:, 2], hist[:, 3]
    assert off[0] > 1e-6 * on[0]
    assert np.all(off / on < 2 * off[0] / on[0])  # relative distance to M does not grow
    assert (off / on)[-1] < (off / on)[0]


def test_k_monte_carlo_agrees_with_erf_and_exact_forms():
    support = H.parity_support(8)
    rng = np.random.default_rng(3)
    for k in range(3):
        z = rng.normal(size=9)
        z /= np.linalg.norm(z)
        w, b = z[:8], z[8]
        exact = H.k_exact(w, b, 0.7, support)
        mc, se = H.k_monte_carlo(w, b, 0.7, support, n=1 << 16, seed=k)
        erf, se2 = H.k_paper_erf(w, b, 0.7, support, n=1 << 16, seed=k)
        assert abs(mc - exact) < 4 * se
        assert abs(erf - exact) < 4 * se2


def test_d_star_and_ascent_argmax_on_axis():
    support = H.parity_support(8)
    for sab in (0.3, 0.9):
        ds = H.d_star(sab)
        assert abs(H.first_order_residual(ds, sab)) < 1e-9
        asc = H.k_ascent(sab, support, starts=16, steps=300, seed=1)
        target = np.concatenate([np.eye(8)[0], [ds]]) / math.sqrt(1 + ds**2)
        assert np.allclose(np.concatenate([asc["w"], [asc["b"]]]), target, atol=1e-4)
        assert asc["value"] == pytest.approx(H.k_max_formula(sab), rel=1e-8)
        assert asc["on_axis_fraction"] > 1 - 1e-8
        assert np.all(asc["values"] <= asc["value"] + 1e-12)


def test_k_bound_lemma_a5_on_random_points():
    support = H.parity_support(6)
    rng = np.random.default_rng(4)
    for sab in (0.1, 0.5, 0.9):
        ratios = []
        for _ in range(200):
            z = rng.normal(size=7)
            z /= np.linalg.norm(z)
            k = H.k_exact(z[:6], z[6], sab, support)
            assert np.sign(k) == np.sign(z[0])  # sign of K is the sign of w_i (Theorem 5.3)
            ratios.append(abs(k) / math.sqrt(1 - sab**2))
        assert max(ratios) <= 1
        assert max(ratios) <= H.k_max_formula(sab) / math.sqrt(1 - sab**2) + 1e-12


def test_k_table_rows():
    rows = H.k_table((0.3, 0.9), n_mc=1 << 15, starts=8, steps=200)
    assert [r["sqrt_alpha_bar"] for r in rows] == [0.3, 0.9]
    for r in rows:
        assert abs(r["K_max_monte_carlo"] - r["K_max_formula"]) < 4 * r["K_max_monte_carlo_se"]
        assert r["K_max_ascent"] == pytest.approx(r["K_max_formula"], rel=1e-6)
        assert r["K_max_formula"] < r["bound"]
    assert "D*" in H.format_k_table(rows)


def test_d_star_at_low_noise_maximises_f():
    """At sqrt(abar) = 0.99 the first-order residual is negative near D = 0+: the root is still found, and it is
    the maximiser of f (d_star checks that itself and raises otherwise)."""
    for sab in (0.98, 0.99, 0.995):
        ds = H.d_star(sab)
        assert ds > sab and H.f_on_axis(ds, sab) >= H.f_on_axis(np.array([0.5 * ds, 1.5 * ds]), sab).max()
