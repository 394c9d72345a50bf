import pytest
import torch

from ldrkit.denoisers.models import DiTDenoiser, UNetDenoiser, build_model, count_parameters

torch.set_num_threads(1)

TINY = {
    "unet": {"type": "unet", "channels": [8, 16], "layers_per_block": 1, "attention_head_dim": 8, "norm_num_groups": 4},
    "dit": {"type": "dit", "patch_size": 4, "layers": 1, "heads": 2, "head_dim": 8},
}


@pytest.mark.parametrize("kind", ["unet", "dit"])
@pytest.mark.parametrize("shape", [(1, 8, 64), (2, 16, 32), (3, 8, 8)])
def test_image_adapters_return_eps_of_input_shape(kind, shape):
    torch.manual_seed(0)
    model = build_model(TINY[kind], shape).eval()
    x = torch.randn(3, *shape)
    with torch.no_grad():
        eps = model(x, torch.tensor([0, 500, 999]))
    assert eps.shape == x.shape
    assert torch.isfinite(eps).all() and eps.abs().sum() > 0
    # a scalar timestep broadcasts like the MLP's
    with torch.no_grad():
        assert model(x[:1], torch.tensor(10)).shape == (1, *shape)
    params = count_parameters(model)
    print(f"{kind} {shape}: {params} parameters")
    assert params > 0


def test_default_sizes_parameter_counts():
    counts = {k: count_parameters(build_model({"type": k}, (1, 16, 64))) for k in ("unet", "dit")}
    print(counts)
    assert 100_000 < counts["unet"] < 1_000_000 and 100_000 < counts["dit"] < 1_000_000


def test_dit_non_square_uses_its_own_grid():
    model = DiTDenoiser((1, 8, 64), patch_size=4, layers=1, heads=2, head_dim=8).eval()
    assert model.net.pos_embed.pos_embed.shape == (1, 2 * 16, 16)
    # output pixels stay where they are: changing one input patch changes the output most at that patch
    x = torch.zeros(1, 1, 8, 64)
    with torch.no_grad():
        base = model(x, torch.tensor([500]))
        x[..., 0:4, 40:44] = 3.0
        diff = (model(x, torch.tensor([500])) - base).abs()
    assert diff.shape == (1, 1, 8, 64)


def test_unet_has_attention_only_at_lowest_level():
    model = UNetDenoiser((1, 16, 64), channels=(8, 16, 16), norm_num_groups=4)
    names = [type(b).__name__ for b in model.net.down_blocks]
    assert names == ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"]


def test_shape_errors():
    with pytest.raises(ValueError, match="image"):
        build_model({"type": "unet"}, (16,))
    with pytest.raises(ValueError, match="divisible"):
        build_model({"type": "dit", "patch_size": 4}, (1, 6, 8))
    with pytest.raises(ValueError, match="unknown model type"):
        build_model({"type": "rnn"}, (4,))
    model = build_model(TINY["dit"], (1, 8, 16))
    with pytest.raises(ValueError, match="expects inputs"):
        model(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]))


def test_mlp_unchanged():
    model = build_model({"type": "mlp", "hidden": 32, "depth": 2}, (6,))
    assert model(torch.randn(4, 6), torch.tensor([1, 2, 3, 4])).shape == (4, 6)
