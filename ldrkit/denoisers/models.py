"""Denoisers, all with the one call signature model(x, t) -> eps.

Image models (UNet, DiT from diffusers) join this module through small adapters.
"""
from __future__ import annotations

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn


class MLPDenoiser(nn.Module):
    """An MLP on flat vectors with a sinusoidal timestep embedding added to every hidden layer.

    Its receptive field is global: every output coordinate can depend on every input coordinate.
    """

    def __init__(self, dim: int, hidden: int = 256, depth: int = 3, time_dim: int = 64, cond_channels: int = 0):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.dim, self.cond_channels = dim, cond_channels
        self.time_proj = Timesteps(time_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(time_dim, hidden)
        self.inp = nn.Linear(dim + cond_channels, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.time_to_block = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.out = nn.Linear(hidden, dim)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """cond: (n, cond_channels) extra inputs (a conditioning the output does not predict), if the model has any."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"MLPDenoiser expects inputs of shape (n, {self.dim}), got {tuple(x.shape)}")
        temb = self.time_embed(self.time_proj(torch.as_tensor(t).expand(len(x))).to(x.dtype))
        h = self.act(self.inp(_with_cond(x, cond, self.cond_channels)) + temb)
        for block, time_to_block in zip(self.blocks, self.time_to_block):
            h = self.act(block(h) + time_to_block(temb))
        return self.out(h)


class UNetDenoiser(nn.Module):
    """diffusers' `UNet2DModel` behind the model(x, t) -> eps signature, for images (C, H, W).

    By default self-attention sits only at the lowest resolution (the last down block, its
    mirror up block and the mid block): attention over many tokens dominates the CPU cost.
    `attention_levels` = k puts diffusers' (full softmax) attention in the k lowest-resolution
    levels instead; the mid block always has it. H and W must be divisible by
    2 ** (len(channels) - 1); any aspect ratio works.
    """

    def __init__(self, signal_shape: tuple[int, int, int], channels: tuple[int, ...] = (16, 32, 32),
                 layers_per_block: int = 1, attention_head_dim: int = 8, norm_num_groups: int = 8,
                 dropout: float = 0.0, attention_levels: int = 1, cond_channels: int = 0):
        super().__init__()
        from diffusers import UNet2DModel
        c, h, w = _image_shape(signal_shape, "unet")
        levels = len(channels)
        if h % 2 ** (levels - 1) or w % 2 ** (levels - 1):
            raise ValueError(f"unet: image {h}x{w} is not divisible by 2**{levels - 1} for {levels} levels")
        k = int(attention_levels)
        if not 0 <= k <= levels:
            raise ValueError(f"unet: attention_levels must lie in 0..{levels}, got {k}")
        self.signal_shape, self.cond_channels = (c, h, w), cond_channels
        self.net = UNet2DModel(
            sample_size=(h, w), in_channels=c + cond_channels, out_channels=c, block_out_channels=tuple(channels),
            layers_per_block=layers_per_block,
            down_block_types=("DownBlock2D",) * (levels - k) + ("AttnDownBlock2D",) * k,
            up_block_types=("AttnUpBlock2D",) * k + ("UpBlock2D",) * (levels - k),
            attention_head_dim=attention_head_dim, norm_num_groups=norm_num_groups, dropout=dropout)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """cond: (n, cond_channels, H, W) extra input channels (a conditioning map), if the model has any."""
        _check_input(x, self.signal_shape, "UNetDenoiser")
        return self.net(_with_cond(x, cond, self.cond_channels), torch.as_tensor(t).expand(len(x))).sample


def _rect_dit_class():
    from diffusers import DiTTransformer2DModel
    from diffusers.models.embeddings import get_2d_sincos_pos_embed

    class RectDiT(DiTTransformer2DModel):
        """DiTTransformer2DModel for an H x W patch grid (the parent's unpatchify assumes a square one)."""

        def set_grid(self, height: int, width: int) -> None:
            p = self.patch_size
            if height % p or width % p:
                raise ValueError(f"dit: image {height}x{width} is not divisible by the patch size {p}")
            pe = self.pos_embed
            pe.height, pe.width = height // p, width // p
            grid = get_2d_sincos_pos_embed(self.inner_dim, (height // p, width // p), base_size=pe.base_size,
                                           interpolation_scale=pe.interpolation_scale, output_type="pt")
            pe.register_buffer("pos_embed", grid.float().unsqueeze(0), persistent=False)

        def forward(self, hidden_states, timestep=None, class_labels=None, cross_attention_kwargs=None,
                    return_dict=True):
            import torch.nn.functional as F
            p = self.patch_size
            height, width = hidden_states.shape[-2] // p, hidden_states.shape[-1] // p
            h = self.pos_embed(hidden_states)
            for block in self.transformer_blocks:
                h = block(h, timestep=timestep, class_labels=class_labels,
                          cross_attention_kwargs=cross_attention_kwargs)
            conditioning = self.transformer_blocks[0].norm1.emb(timestep, class_labels, hidden_dtype=h.dtype)
            shift, scale = self.proj_out_1(F.silu(conditioning)).chunk(2, dim=1)
            h = self.proj_out_2(self.norm_out(h) * (1 + scale[:, None]) + shift[:, None])
            h = h.reshape(-1, height, width, p, p, self.out_channels)
            h = torch.einsum("nhwpqc->nchpwq", h)
            out = h.reshape(-1, self.out_channels, height * p, width * p)
            return (out,) if not return_dict else type("Out", (), {"sample": out})()

    return RectDiT


class DiTDenoiser(nn.Module):
    """diffusers' `DiTTransformer2DModel` as an unconditional model(x, t) -> eps on (C, H, W) images.

    The class-conditioning of DiT's adaLN-zero blocks is fed one constant label (0), which
    makes the model unconditional. A small subclass gives non-square patch grids their own
    2-D sin-cos position embedding and unpatchify. `labels`: rows of the class-embedding table
    (diffusers' num_embeds_ada_norm); 1000 by default (ImageNet's, what the stored runs used), 1 spends
    no parameters on classes the model never sees (1001 x width parameters otherwise). `init`:
    "default" (PyTorch's, what diffusers builds) or "adaln-zero", the DiT paper's initialisation (Peebles &
    Xie 2023, sec. 3.2): every block's adaLN modulation and the output projection start at zero, so each
    block starts as the identity and the network outputs 0.
    """

    def __init__(self, signal_shape: tuple[int, int, int], patch_size: int = 4, layers: int = 4,
                 heads: int = 4, head_dim: int = 16, dropout: float = 0.0, labels: int = 1000,
                 init: str = "default"):
        super().__init__()
        c, h, w = _image_shape(signal_shape, "dit")
        if h % patch_size or w % patch_size:
            raise ValueError(f"dit: image {h}x{w} is not divisible by the patch size {patch_size}")
        self.signal_shape = (c, h, w)
        self.net = _rect_dit_class()(
            num_attention_heads=heads, attention_head_dim=head_dim, in_channels=c, out_channels=c,
            num_layers=layers, dropout=dropout, sample_size=min(h, w), patch_size=patch_size,
            num_embeds_ada_norm=labels)
        self.net.set_grid(h, w)
        if init not in ("default", "adaln-zero"):
            raise ValueError(f"dit: init must be 'default' or 'adaln-zero', got {init!r}")
        if init == "adaln-zero":
            for layer in [b.norm1.linear for b in self.net.transformer_blocks] + [self.net.proj_out_1, self.net.proj_out_2]:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.signal_shape, "DiTDenoiser")
        t = torch.as_tensor(t).expand(len(x))
        labels = torch.zeros(len(x), dtype=torch.long, device=x.device)
        return self.net(x, t, class_labels=labels).sample


def _with_cond(x: torch.Tensor, cond: torch.Tensor | None, channels: int) -> torch.Tensor:
    """x with the conditioning appended along dimension 1; a model built with cond_channels needs exactly that."""
    if channels == 0:
        if cond is not None:
            raise ValueError("this model takes no conditioning (built with cond_channels=0)")
        return x
    if cond is None or cond.shape[0] != x.shape[0] or cond.shape[1] != channels or cond.shape[2:] != x.shape[2:]:
        raise ValueError(f"expected a conditioning of shape ({len(x)}, {channels}, {', '.join(map(str, x.shape[2:]))}), "
                         f"got {None if cond is None else tuple(cond.shape)}")
    return torch.cat([x, cond], 1)


def _image_shape(signal_shape, kind: str) -> tuple[int, int, int]:
    if len(signal_shape) != 3:
        raise ValueError(f"{kind} needs image signals (C, H, W), got signal shape {tuple(signal_shape)}")
    return tuple(int(s) for s in signal_shape)


def _check_input(x: torch.Tensor, shape: tuple[int, ...], name: str) -> None:
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"{name} expects inputs of shape (n, {', '.join(map(str, shape))}), got {tuple(x.shape)}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _mlp(signal_shape, **spec) -> nn.Module:
    dim = 1
    for s in signal_shape:
        dim *= s
    return MLPDenoiser(dim, **spec)


def _unet(signal_shape, **spec) -> nn.Module:
    if "channels" in spec:
        spec["channels"] = tuple(spec["channels"])
    return UNetDenoiser(tuple(signal_shape), **spec)


# The denoisers by the name a spec's model entry gives as "type" (the same registry pattern as ldrkit.systems.registry).
DENOISERS = {"mlp": _mlp, "unet": _unet, "dit": lambda signal_shape, **spec: DiTDenoiser(tuple(signal_shape), **spec)}


def build_model(spec: dict, signal_shape: tuple[int, ...]) -> nn.Module:
    """Build a denoiser from a spec entry.

    {"type": "mlp", "hidden": 256, "depth": 3};
    {"type": "unet", "channels": [16, 32, 32], "layers_per_block": 1, "attention_head_dim": 8, "norm_num_groups": 8};
    {"type": "dit", "patch_size": 4, "layers": 4, "heads": 4, "head_dim": 16}.
    Image models need signal_shape (C, H, W).
    """
    spec = dict(spec)
    kind = spec.pop("type")
    if kind not in DENOISERS:
        raise ValueError(f"unknown model type {kind!r}; known: {', '.join(DENOISERS)}")
    return DENOISERS[kind](signal_shape, **spec)
