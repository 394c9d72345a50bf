import math

import numpy as np
import pytest
import torch

from ldrkit.denoisers.schedule import Schedule
from ldrkit.denoisers.models import MLPDenoiser


def test_schedule_matches_closed_form_linear_betas():
    s = Schedule()
    betas = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), np.cumprod(1 - betas), rtol=1e-5)


def test_add_noise_and_x0_from_eps_are_inverse():
    s = Schedule()
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    t = torch.tensor([0, 10, 200, 500, 800, 999])
    xt = s.add_noise(x0, eps, t)
    a = s.alphas_cumprod[t][:, None]
    torch.testing.assert_close(xt, a.sqrt() * x0 + (1 - a).sqrt() * eps)
    torch.testing.assert_close(s.x0_from_eps(xt, eps, t), x0, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("level", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_timestep_for_finds_the_nearest_level(level):
    s = Schedule()
    t = s.timestep_for(level)
    roots = s.alphas_cumprod.sqrt()
    assert abs(float(roots[t]) - level) == pytest.approx(float((roots - level).abs().min()), abs=1e-6)
    assert abs(float(roots[t]) - level) < 0.01
    with pytest.raises(ValueError):
        s.timestep_for(1.5)


def test_loss_of_the_exact_noise_is_zero_and_of_zero_is_one():
    s = Schedule()
    x0 = torch.randn(4096, 3)

    def cheat(x, t):  # recovers eps exactly from x_t, knowing x0
        a = s.alphas_cumprod[t][:, None]
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    assert s.loss(cheat, x0, torch.Generator().manual_seed(0)).item() < 1e-6
    zero = s.loss(lambda x, t: torch.zeros_like(x), x0, torch.Generator().manual_seed(0)).item()
    assert zero == pytest.approx(1.0, abs=0.05)


def test_sampler_shapes_trajectory_and_seed():
    s = Schedule()
    model = MLPDenoiser(4, hidden=16, depth=2)
    out, traj = s.sample(model, 7, (4,), torch.Generator().manual_seed(1), num_steps=20,
                         progress=False, return_trajectory=True)
    assert out.shape == (7, 4) and torch.isfinite(out).all()
    assert len(traj) == 20 and traj[0][0] > traj[-1][0]
    again = s.sample(model, 7, (4,), torch.Generator().manual_seed(1), num_steps=20, progress=False)
    torch.testing.assert_close(out, again)


def test_sampling_with_the_exact_denoiser_of_a_point_lands_on_it():
    s = Schedule()
    target = torch.tensor([1.0, -1.0, 0.5])

    def exact(x, t):
        a = s.alphas_cumprod[t][:, None]
        return (x - a.sqrt() * target) / (1 - a).sqrt()

    out = s.sample(exact, 16, (3,), torch.Generator().manual_seed(0), progress=False)
    torch.testing.assert_close(out, target.expand(16, 3), atol=0.05, rtol=0)


def test_mlp_checks_its_input_shape():
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        MLPDenoiser(4)(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_sampling_in_network_batches_gives_the_same_samples(sampler):
    """batch_size only splits the network calls (paper-size images do not fit a GPU 1024 at a time)."""
    torch.manual_seed(0)
    model, schedule = MLPDenoiser(6, 16, 2).eval(), Schedule()
    with torch.no_grad():
        whole = schedule.sample(model, 10, (6,), torch.Generator().manual_seed(3), num_steps=8, progress=False,
                                sampler=sampler)
        split = schedule.sample(model, 10, (6,), torch.Generator().manual_seed(3), num_steps=8, progress=False,
                                sampler=sampler, batch_size=4)
    assert torch.allclose(whole, split, atol=1e-6)
