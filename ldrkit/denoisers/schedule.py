"""The DDPM noise schedule, forward noising, the epsilon loss (eq. 8) and the samplers (ancestral DDPM, DDIM).

Betas, alpha_bar, `add_noise` and the reverse step come from diffusers' `DDPMScheduler`
rather than being re-derived here; this module adds the pieces the book needs around them.
"""
from __future__ import annotations

from typing import Callable

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from tqdm.auto import tqdm

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""Every model in ldrkit: model(x, t) -> predicted noise eps, t an integer tensor of shape (n,)."""


class Schedule:
    """A DDPM schedule (default: the paper's T=1000 linear betas 1e-4..0.02)."""

    def __init__(self, num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                 beta_schedule: str = "linear"):
        self.config = dict(num_train_timesteps=num_timesteps, beta_start=beta_start, beta_end=beta_end,
                           beta_schedule=beta_schedule, clip_sample=False, variance_type="fixed_small")
        self.scheduler = DDPMScheduler(**self.config)
        self.num_timesteps = num_timesteps
        self.alphas_cumprod = self.scheduler.alphas_cumprod.float()

    def sqrt_alpha_bar(self, t: torch.Tensor | int) -> torch.Tensor:
        return self.alphas_cumprod[torch.as_tensor(t)].sqrt()

    def timestep_for(self, sqrt_alpha_bar: float) -> int:
        """The timestep whose sqrt(alpha_bar) is nearest the requested value."""
        if not 0.0 < sqrt_alpha_bar < 1.0:
            raise ValueError(f"sqrt(alpha_bar) must lie in (0, 1), got {sqrt_alpha_bar}")
        return int((self.alphas_cumprod.sqrt() - sqrt_alpha_bar).abs().argmin())

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps."""
        return self.scheduler.add_noise(x0, eps, t)

    def x0_from_eps(self, x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """The denoiser's estimate of x0 implied by an eps prediction: (x - sqrt(1-abar) eps) / sqrt(abar)."""
        abar = _broadcast(self.alphas_cumprod[torch.as_tensor(t)], x)
        return (x - (1 - abar).sqrt() * eps) / abar.sqrt()

    def random_timesteps(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, self.num_timesteps, (n,), generator=generator)

    def loss(self, model: Denoiser, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Eq. (8) with equal weights: E_t E_eps ||model(x_t, t) - eps||^2, t uniform over the schedule."""
        t = self.random_timesteps(len(x0), generator)
        eps = torch.randn(x0.shape, generator=generator)
        return self.eps_loss(model, x0, eps, t)

    def eps_loss(self, model: Denoiser, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Eq. (8) for given noise and timesteps: mean of (model(x_t, t) - eps)^2 (the training loop draws them)."""
        return (model(self.add_noise(x0, eps, t), t) - eps).pow(2).mean()

    @torch.no_grad()
    def sample(self, model: Denoiser, n: int, shape: tuple[int, ...], generator: torch.Generator,
               num_steps: int | None = None, progress: bool = True, return_trajectory: bool = False,
               sampler: str = "ddpm", batch_size: int | None = None):
        """Sample n signals from pure noise with the reverse process of diffusers' schedulers.

        sampler "ddpm" (default): ancestral DDPM; `num_steps` < T uses diffusers' strided DDPM
        timesteps. sampler "ddim": deterministic DDIM (eta = 0, `clip_sample=False`) on
        `num_steps` timesteps (default 50), the cheap choice for image models. With
        `return_trajectory`, also returns the list of (t, x_t) visited. `batch_size` calls the
        network on at most that many signals at a time (the noise is still drawn for all n at
        once, so the samples do not depend on it): 1024 paper-size images at once do not fit a GPU.
        """
        if sampler == "ddpm":
            scheduler = DDPMScheduler(**self.config)
            scheduler.set_timesteps(num_steps or self.num_timesteps)
        elif sampler == "ddim":
            config = {k: v for k, v in self.config.items() if k != "variance_type"}
            scheduler = DDIMScheduler(**config, set_alpha_to_one=True)
            scheduler.set_timesteps(num_steps or 50)
        else:
            raise ValueError(f"unknown sampler {sampler!r}; known: ddpm, ddim")
        x = torch.randn((n, *shape), generator=generator)
        trajectory = []
        for t in tqdm(scheduler.timesteps, desc="sampling", disable=not progress, leave=False):
            if return_trajectory:
                trajectory.append((int(t), x.clone()))
            timestep = torch.full((n,), int(t), dtype=torch.long)
            chunk = batch_size or n
            eps = torch.cat([model(x[i:i + chunk], timestep[i:i + chunk]) for i in range(0, n, chunk)])
            if sampler == "ddpm":
                x = scheduler.step(eps, t, x, generator=generator).prev_sample
            else:
                x = scheduler.step(eps, t, x, eta=0.0).prev_sample
        return (x, trajectory) if return_trajectory else x


def _broadcast(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    values = values.to(like.dtype)
    return values.reshape(values.shape + (1,) * (like.dim() - values.dim()))
