"""Any diffusers denoiser and its scheduler behind ldrkit's one signature, model(x, t) -> eps.

The LDR probes (`ldrkit.probes.ldr`) speak DDPM: an integer timestep t that indexes sqrt(alpha_bar_t), inputs
x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, and a network that predicts eps. `NoiseLevels` reads those levels from a
diffusers scheduler and `DiffusersDenoiser` turns the network's own prediction into eps, so that every probe of the
book runs unchanged on UNet2DModel, UNet2DConditionModel, DiTTransformer2DModel and SD3Transformer2DModel:

- DDPM-family schedulers (every one with `alphas_cumprod`: DDPM, DDIM, PNDM, Euler, DPM-Solver, ...): t is the
  network's own timestep. prediction_type "epsilon" is eps; "v_prediction" v = sqrt(abar) eps - sqrt(1-abar) x0
  gives eps = sqrt(abar) v + sqrt(1-abar) x_t; "sample" x0 gives eps = (x_t - sqrt(abar) x0) / sqrt(1-abar).
- Flow matching (the FlowMatch* schedulers of SD3 and FLUX): z = (1 - sigma) x0 + sigma eps and the network
  predicts the velocity v = eps - x0 at timestep sigma * num_train_timesteps. z / c with c = sqrt((1-sigma)^2 +
  sigma^2) is the DDPM state of sqrt(abar) = (1 - sigma) / c, so the adapter multiplies its DDPM input by c
  (`NoiseLevels.input_scale`) and returns eps = z + (1 - sigma) v; the x0 of the probes is then z - sigma v, where
  the scheduler's Euler step to sigma = 0 lands. t indexes the scheduler's training sigmas, least noise first.

The conditioning (encoder_hidden_states, pooled_projections, class_labels, SDXL's added_cond_kwargs dict, ...) is
one batch of one, passed to every call and broadcast to the batch of copies the probes run: one prompt (or class)
per adapter. The network may sit on another device or dtype than ldrkit's CPU float32 tensors: inputs go to it and
eps comes back, through autograd, so the probes' vector-Jacobian products run where the network is.
"""
from __future__ import annotations

import torch
from torch import nn

VP_PREDICTIONS = ("epsilon", "v_prediction", "sample")
# The keyword inputs each supported network cannot run without (their values: the user's conditioning).
REQUIRED_CONDITIONING = {
    "UNet2DModel": (),
    "UNet2DConditionModel": ("encoder_hidden_states",),
    "DiTTransformer2DModel": ("class_labels",),
    "SD3Transformer2DModel": ("encoder_hidden_states", "pooled_projections"),
}


class NoiseLevels:
    """A diffusers scheduler's training noise levels in ldrkit's DDPM terms: what `probes.ldr` asks of a `Schedule`
    (`num_timesteps`, `sqrt_alpha_bar`, `timestep_for`, `add_noise`), plus the conversions of the network's output.

    `prediction` is the scheduler's prediction_type, or "flow" for a flow-matching scheduler.
    """

    def __init__(self, scheduler):
        fresh = type(scheduler).from_config(scheduler.config)  # the training table, whatever set_timesteps did
        name = type(scheduler).__name__
        if hasattr(fresh, "alphas_cumprod"):
            self.prediction = fresh.config.get("prediction_type", "epsilon")
            if self.prediction not in VP_PREDICTIONS:
                raise ValueError(f"{name} predicts {self.prediction!r}; ldrkit probes {', '.join(VP_PREDICTIONS)} "
                                 "and flow matching")
            self.alphas_cumprod = fresh.alphas_cumprod.float()
            self.network_timesteps = torch.arange(len(self.alphas_cumprod))
            self.sigmas = None
        elif name.startswith("FlowMatch"):
            self.prediction = "flow"
            self.sigmas = fresh.sigmas.float().flip(0)  # least noise first, as DDPM's t
            self.alphas_cumprod = (1 - self.sigmas) ** 2 / ((1 - self.sigmas) ** 2 + self.sigmas ** 2)
            self.network_timesteps = self.sigmas * fresh.config.num_train_timesteps
        else:
            raise ValueError(f"{name} is neither a DDPM-family scheduler (with alphas_cumprod) nor a flow-matching "
                             "one; pass the scheduler the model was trained with")
        self.num_timesteps = len(self.alphas_cumprod)

    def sqrt_alpha_bar(self, t: torch.Tensor | int) -> torch.Tensor:
        return self.alphas_cumprod[torch.as_tensor(t)].sqrt()

    def timestep_for(self, sqrt_alpha_bar: float) -> int:
        """The timestep whose sqrt(alpha_bar) is nearest the requested value."""
        if not 0.0 < sqrt_alpha_bar < 1.0:
            raise ValueError(f"sqrt(alpha_bar) must lie in (0, 1), got {sqrt_alpha_bar}")
        return int((self.alphas_cumprod.sqrt() - sqrt_alpha_bar).abs().argmin())

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The DDPM state sqrt(abar) x0 + sqrt(1-abar) eps, in DDPMScheduler.add_noise's arithmetic."""
        abar = self.alphas_cumprod.to(x0.dtype)[t]
        return _column(abar ** 0.5, x0) * x0 + _column((1 - abar) ** 0.5, x0) * eps

    def input_scale(self, t: torch.Tensor | int) -> torch.Tensor:
        """c with network input = c * DDPM state: sqrt((1-sigma)^2 + sigma^2) for flow matching, else 1."""
        if self.sigmas is None:
            return torch.ones(torch.as_tensor(t).shape)
        sigma = self.sigmas[torch.as_tensor(t)]
        return ((1 - sigma) ** 2 + sigma ** 2).sqrt()

    def eps_from_output(self, out: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps implied by the network's output `out` at the DDPM state x (see the module docstring)."""
        a, s = _column(self.sqrt_alpha_bar(t), x), _column((1 - self.alphas_cumprod[t]).sqrt(), x)
        if self.prediction == "epsilon":
            return out
        if self.prediction == "v_prediction":
            return a * out + s * x
        if self.prediction == "sample":
            return (x - a * out) / s
        c = _column(self.input_scale(t), x)
        return c * (x + a * out)  # z + (1 - sigma) v with z = c x and 1 - sigma = c sqrt(abar)

    def output_in_eps_x0(self, t: int) -> tuple[float, float]:
        """(a, b) with the network's output = a eps + b x0 at timestep t: its own prediction in the probes' terms."""
        a, s = float(self.sqrt_alpha_bar(t)), float((1 - self.alphas_cumprod[t]).sqrt())
        return {"epsilon": (1.0, 0.0), "sample": (0.0, 1.0), "v_prediction": (a, -s), "flow": (1.0, -1.0)}[
            self.prediction]


class DiffusersDenoiser(nn.Module):
    """model(x, t) -> eps for a diffusers network, its scheduler and one conditioning (keyword tensors, batch 1).

    x is the DDPM state of `NoiseLevels` (for flow matching: the network's input divided by `input_scale(t)`),
    t its integer timestep of shape (n,).
    """

    def __init__(self, net: nn.Module, scheduler, conditioning: dict | None = None):
        super().__init__()
        kind = next((base.__name__ for base in type(net).__mro__ if base.__name__ in REQUIRED_CONDITIONING), None)
        if kind is None:
            raise ValueError(f"ldrkit probes {', '.join(REQUIRED_CONDITIONING)}; got a {type(net).__name__}")
        self.conditioning = _tensors(conditioning or {})
        missing = [k for k in REQUIRED_CONDITIONING[kind] if k not in self.conditioning]
        if missing:
            raise ValueError(f"a {kind} needs the conditioning {', '.join(missing)} (keyword tensors of batch 1)")
        self.net, self.levels = net, NoiseLevels(scheduler)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t).expand(len(x))
        weight = next(self.net.parameters())
        z = (x * _column(self.levels.input_scale(t), x)).to(weight.device, weight.dtype)
        cond = _batched(self.conditioning, len(x), weight)
        out = self.net(z, timestep=self.levels.network_timesteps[t].to(weight.device), **cond).sample
        out = out[:, :x.shape[1]].to(x.device, x.dtype)  # a learned-variance network's second half is its variance
        return self.levels.eps_from_output(out, x, t)


def _tensors(conditioning: dict, where: str = "conditioning") -> dict:
    """The conditioning as tensors of batch 1 (nested dicts, such as SDXL's added_cond_kwargs, stay dicts)."""
    out = {}
    for key, value in conditioning.items():
        if isinstance(value, dict):
            out[key] = _tensors(value, f"{where} {key}")
            continue
        out[key] = torch.as_tensor(value)
        if out[key].dim() == 0 or len(out[key]) != 1:
            raise ValueError(f"{where} {key} must have batch size 1 (one prompt or class), got shape "
                             f"{tuple(out[key].shape)}; probe one conditioning at a time")
    return out


def _batched(conditioning: dict, n: int, like: torch.Tensor) -> dict:
    """Each tensor repeated to batch n on the network's device (floats in its dtype)."""
    return {k: _batched(v, n, like) if isinstance(v, dict) else
            v.to(like.device, like.dtype if v.is_floating_point() else v.dtype).expand(n, *v.shape[1:])
            for k, v in conditioning.items()}


def _column(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    values = torch.as_tensor(values).to(like.dtype)
    return values.reshape(values.shape + (1,) * (like.dim() - values.dim()))
