"""The probe for any diffusers denoiser (ldrkit.probes.any_model), on tiny random models the tests build and save:
an unconditioned UNet2DModel, UNet2DConditionModels with cross-attention (one SDXL-style), SD3 transformers (flow
matching).
Every LDR is checked against a brute-force Jacobian of the network itself, the x0 predictions against the
scheduler's own step, and a model whose output patches see only their own input gives LDR 1."""
import json

import numpy as np
import pytest
import torch
from diffusers import (DDPMPipeline, DDPMScheduler, EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler,
                       SD3Transformer2DModel, UNet2DConditionModel, UNet2DModel)
from PIL import Image

from ldrkit.__main__ import main
from ldrkit.probes import any_model

LEVEL = 0.5


def tiny_unet(seed=0):
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       norm_num_groups=4, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), attention_head_dim=4)


def tiny_conditioned_unet():
    torch.manual_seed(1)
    return UNet2DConditionModel(sample_size=8, in_channels=2, out_channels=2, layers_per_block=1,
                                block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=12,
                                attention_head_dim=4, norm_num_groups=4)


def tiny_sd3(layers):
    torch.manual_seed(2)
    net = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=layers,
                                attention_head_dim=8, num_attention_heads=2, joint_attention_dim=16,
                                caption_projection_dim=16, pooled_projection_dim=8, pos_embed_max_size=8)
    for p in net.parameters():  # diffusers zero-initialises the output modulation: give it weights to probe
        p.data.normal_(0, 0.5)
    return net


SD3_CONDITIONING = {"encoder_hidden_states": torch.randn(1, 5, 16, generator=torch.Generator().manual_seed(3)),
                    "pooled_projections": torch.randn(1, 8, generator=torch.Generator().manual_seed(4))}


def data(channels, n=6, seed=5):
    return torch.randn(n, channels, 8, 8, generator=torch.Generator().manual_seed(seed)).clamp(-1, 1)


def brute_force_ldr(outputs_of, inputs, mask):
    """{output: per-sample LDR} from the full Jacobian of `outputs_of(z) -> {output: tensor}` at each input."""
    inside = mask.reshape(-1)
    found = {}
    for z in inputs:
        jac = torch.autograd.functional.jacobian(lambda v: torch.stack(list(outputs_of(v[None]).values())), z)
        jac = jac.reshape(jac.shape[0], z.numel(), z.numel())[:, inside]  # (outputs, |R|, D)
        for name, j in zip(outputs_of(z[None]), jac):
            found.setdefault(name, []).append(float(j[:, inside].pow(2).sum() / j.pow(2).sum()))
    return {k: torch.tensor(v) for k, v in found.items()}


def test_unet_pipeline_folder_ldr_is_the_brute_force_jacobians(tmp_path):
    unet, scheduler = tiny_unet(), DDPMScheduler(clip_sample=False)  # x0 unclipped, as the probe's
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(tmp_path / "pipe")
    region = (0, 0, 4, 4)
    result = any_model.probe(tmp_path / "pipe", region, [LEVEL], data=data(1), n=3, outputs=("eps", "x0", "net"))
    lv = result.levels[0]
    a = float(scheduler.alphas_cumprod[lv.timestep].sqrt())
    assert abs(lv.sqrt_alpha_bar - LEVEL) < 2e-3 and lv.timestep == lv.network_timestep

    def outputs_of(z):
        eps = unet(z, lv.timestep).sample
        return {"eps": eps, "x0": (z - (1 - a * a) ** 0.5 * eps) / a}

    exact = brute_force_ldr(outputs_of, lv.inputs, result.regions[0])
    for name in ("eps", "x0"):
        assert torch.allclose(lv.ldr[0][name].values, exact[name], atol=1e-5), name
    assert torch.equal(lv.ldr[0]["net"].values, lv.ldr[0]["eps"].values)  # an epsilon model's own output is eps
    assert torch.all(exact["eps"] < 0.9), exact  # the network reaches outside the region: not a trivial case
    with torch.no_grad():  # the eps and x0 outputs are the network's prediction and the scheduler's x0
        eps = unet(lv.inputs, lv.timestep).sample
        step = scheduler.step(eps[:1], lv.timestep, lv.inputs[:1]).pred_original_sample
    assert torch.allclose(lv.eps, eps, atol=1e-6) and torch.allclose(lv.x0[:1], step, atol=1e-5)
    saliency = lv.ldr[0]["eps"].saliency  # per input pixel, the squared norm of its Jacobian column
    assert saliency.shape == (3, 1, 8, 8) and np.all(saliency >= 0)
    loaded = any_model.probe(DDPMPipeline.from_pretrained(tmp_path / "pipe"), region, [LEVEL], data=data(1), n=3)
    assert torch.equal(loaded.levels[0].ldr[0]["x0"].values, lv.ldr[0]["x0"].values)  # a pipeline object, the same


def test_the_estimator_brackets_the_exact_ldr_with_its_error_bar(tmp_path):
    DDPMPipeline(unet=tiny_unet(), scheduler=DDPMScheduler()).save_pretrained(tmp_path / "pipe")
    kwargs = dict(data=data(1), n=4, outputs=("x0",), seed=1)
    exact = any_model.probe(tmp_path / "pipe", (2, 2, 6, 6), [LEVEL], **kwargs).levels[0].ldr[0]["x0"]
    guess = any_model.probe(tmp_path / "pipe", (2, 2, 6, 6), [LEVEL], method="estimate", probes=64,
                            **kwargs).levels[0].ldr[0]["x0"]
    assert guess.method == "estimate" and guess.probes == 64 and torch.all(guess.estimator_se > 0)
    assert torch.all((guess.values - exact.values).abs() < 4 * guess.estimator_se)
    assert guess.probe_sem > 0 and exact.probe_sem == 0


def test_v_prediction_x0_is_the_schedulers_and_net_is_v(tmp_path):
    unet, scheduler = tiny_unet(seed=3), DDPMScheduler(prediction_type="v_prediction", clip_sample=False)
    result = any_model.probe(unet, (0, 4, 8, 8), [0.3], data=data(1), scheduler=scheduler, n=2,
                             outputs=("eps", "x0", "net"))
    lv = result.levels[0]
    with torch.no_grad():
        v = unet(lv.inputs, lv.timestep).sample
    step = scheduler.step(v[:1], lv.timestep, lv.inputs[:1]).pred_original_sample
    assert result.prediction == "v_prediction" and torch.allclose(lv.x0[:1], step, atol=1e-5)
    a, s = lv.sqrt_alpha_bar, (1 - lv.sqrt_alpha_bar ** 2) ** 0.5
    assert torch.allclose(a * lv.eps - s * lv.x0, v, atol=1e-5)  # v = sqrt(abar) eps - sqrt(1-abar) x0

    def outputs_of(z):
        v = unet(z, lv.timestep).sample
        return {"net": v, "x0": a * z - s * v}

    exact = brute_force_ldr(outputs_of, lv.inputs, result.regions[0])
    for name in ("net", "x0"):
        assert torch.allclose(lv.ldr[0][name].values, exact[name], atol=1e-5), name


def test_conditioned_unet_is_probed_with_the_conditioning_passed(tmp_path):
    unet, scheduler = tiny_conditioned_unet(), DDPMScheduler()
    unet.save_pretrained(tmp_path / "unet")
    scheduler.save_pretrained(tmp_path / "scheduler")
    prompts = [torch.randn(1, 3, 12, generator=torch.Generator().manual_seed(s)) for s in (6, 7)]
    found = [any_model.probe(tmp_path / "unet", (4, 4, 8, 8), [LEVEL], data=data(2), n=2,
                             conditioning={"encoder_hidden_states": p}) for p in prompts]
    lv = found[0].levels[0]
    assert not torch.allclose(lv.eps, found[1].levels[0].eps)  # cross-attention reads the prompt

    def outputs_of(z):
        eps = unet(z, lv.timestep, encoder_hidden_states=prompts[0].expand(len(z), -1, -1)).sample
        return {"eps": eps, "x0": (z - (1 - lv.sqrt_alpha_bar ** 2) ** 0.5 * eps) / lv.sqrt_alpha_bar}

    exact = brute_force_ldr(outputs_of, lv.inputs, found[0].regions[0])
    assert torch.allclose(lv.ldr[0]["eps"].values, exact["eps"], atol=1e-5)
    assert torch.allclose(lv.ldr[0]["x0"].values, exact["x0"], atol=1e-4)
    with pytest.raises(ValueError, match="encoder_hidden_states"):
        any_model.probe(tmp_path / "unet", (4, 4, 8, 8), [LEVEL], data=data(2), n=2)
    with pytest.raises(ValueError, match="batch size 1"):
        any_model.probe(tmp_path / "unet", (4, 4, 8, 8), [LEVEL], data=data(2), n=2,
                        conditioning={"encoder_hidden_states": prompts[0].expand(2, -1, -1)})


def test_nested_conditioning_of_an_sdxl_style_unet_with_an_euler_scheduler():
    """SDXL's UNet also takes added_cond_kwargs (pooled text embeddings, size and crop ids), a dict of tensors;
    its EulerDiscreteScheduler is a DDPM-family one (alphas_cumprod)."""
    torch.manual_seed(8)
    unet = UNet2DConditionModel(sample_size=8, in_channels=2, out_channels=2, layers_per_block=1,
                                block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=12,
                                attention_head_dim=4, norm_num_groups=4, addition_embed_type="text_time",
                                addition_time_embed_dim=4, projection_class_embeddings_input_dim=10 + 6 * 4)
    prompt = torch.randn(1, 3, 12, generator=torch.Generator().manual_seed(9))
    added = {"text_embeds": torch.randn(1, 10, generator=torch.Generator().manual_seed(10)),
             "time_ids": torch.tensor([[8.0, 8.0, 0.0, 0.0, 8.0, 8.0]])}
    kwargs = dict(data=data(2), scheduler=EulerDiscreteScheduler(), n=2, outputs=("eps",))
    result = any_model.probe(unet, (0, 0, 4, 4), [LEVEL], conditioning={"encoder_hidden_states": prompt,
                                                                        "added_cond_kwargs": added}, **kwargs)
    lv = result.levels[0]

    def outputs_of(z):
        return {"eps": unet(z, lv.timestep, encoder_hidden_states=prompt.expand(len(z), -1, -1),
                            added_cond_kwargs={k: v.expand(len(z), -1) for k, v in added.items()}).sample}

    exact = brute_force_ldr(outputs_of, lv.inputs, result.regions[0])
    assert torch.allclose(lv.ldr[0]["eps"].values, exact["eps"], atol=1e-5)
    cropped = {**added, "time_ids": torch.tensor([[8.0, 8.0, 4.0, 4.0, 8.0, 8.0]])}
    other = any_model.probe(unet, (0, 0, 4, 4), [LEVEL], conditioning={"encoder_hidden_states": prompt,
                                                                       "added_cond_kwargs": cropped}, **kwargs)
    assert not torch.allclose(other.levels[0].eps, lv.eps)  # the nested conditioning reaches the network


def test_flow_matching_x0_is_the_euler_step_to_zero_and_ldr_the_brute_force(tmp_path):
    net, scheduler = tiny_sd3(layers=1), FlowMatchEulerDiscreteScheduler(shift=3.0)
    result = any_model.probe(net, (0, 0, 4, 4), [LEVEL], data=data(4), scheduler=scheduler, n=2,
                             conditioning=SD3_CONDITIONING, outputs=("eps", "x0", "net"))
    lv = result.levels[0]
    sigma = lv.network_timestep / 1000
    assert result.prediction == "flow" and abs((1 - sigma) / ((1 - sigma) ** 2 + sigma ** 2) ** 0.5 - LEVEL) < 2e-3
    cond = {k: v.expand(2, *v.shape[1:]) for k, v in SD3_CONDITIONING.items()}
    euler = FlowMatchEulerDiscreteScheduler()
    euler.set_timesteps(sigmas=[sigma])
    with torch.no_grad():
        v = net(lv.inputs, timestep=euler.timesteps.expand(2), **cond).sample
    assert torch.allclose(lv.x0, euler.step(v, euler.timesteps[0], lv.inputs).prev_sample, atol=1e-5)
    assert torch.allclose(lv.eps - lv.x0, v, atol=1e-5)  # the velocity

    def outputs_of(z):
        timestep = torch.full((len(z),), lv.network_timestep)
        v = net(z, timestep=timestep, **{k: c[:len(z)] for k, c in cond.items()}).sample
        return {"eps": z + (1 - sigma) * v, "x0": z - sigma * v, "net": v}

    exact = brute_force_ldr(outputs_of, lv.inputs, result.regions[0])
    for name in ("eps", "x0", "net"):  # float32 rounding of batch-1 against batched attention: about 1e-4 here
        assert torch.allclose(lv.ldr[0][name].values, exact[name], atol=3e-4), name
    assert torch.all(exact["net"] < 0.9)  # the attention block reaches outside the region


def test_a_transformer_without_blocks_is_local_per_patch():
    """SD3 with no blocks maps each 2x2 patch's tokens to that patch alone: LDR 1 on whole patches, less on a
    region that cuts them."""
    kwargs = dict(levels=[0.3, 0.7], data=data(4), scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), n=2,
                  conditioning=SD3_CONDITIONING, outputs=("eps", "x0", "net"))
    result = any_model.probe(tiny_sd3(layers=0), [(2, 2, 6, 6), (1, 1, 5, 5)], **kwargs)
    for lv in result.levels:
        for name in ("eps", "x0", "net"):
            assert torch.allclose(lv.ldr[0][name].values, torch.ones(2), atol=1e-6), name
            assert torch.all(lv.ldr[1][name].values < 0.999), name


def test_regions_from_rectangles_masks_and_mask_images(tmp_path):
    shape = (2, 8, 8)
    rect = any_model.region_masks((1, 2, 3, 6), shape)[0]
    assert rect.shape == shape and int(rect.sum()) == 2 * 2 * 4 and rect[:, 1:3, 2:6].all()
    pixels = np.zeros((32, 32), dtype=np.uint8)  # a pixel-space mask four times the grid (a latent model's VAE)
    pixels[4:12, 8:24] = 255
    Image.fromarray(pixels).save(tmp_path / "mask.png")
    masks = any_model.region_masks([tmp_path / "mask.png", rect[0].numpy()], shape)
    assert torch.equal(masks[0], rect) and torch.equal(masks[1], rect)
    with pytest.raises(ValueError, match="outside the 8x8 input grid"):
        any_model.region_masks((0, 0, 8, 9), shape)
    Image.fromarray(pixels[:30]).save(tmp_path / "odd.png")
    with pytest.raises(ValueError, match="integer multiple"):
        any_model.region_masks(tmp_path / "odd.png", shape)
    with pytest.raises(ValueError, match="does not fit"):
        any_model.region_masks(np.ones((3, 8, 8), dtype=bool), shape)


def test_folders_that_are_no_diffusers_model_and_models_too_large_fail_clearly(tmp_path, monkeypatch):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "config.json").write_text(json.dumps({"lr": 0.1}))
    with pytest.raises(ValueError, match="not a diffusers model or pipeline folder"):
        any_model.probe(tmp_path / "notes", (0, 0, 2, 2), data=data(1))
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        any_model.probe(tmp_path / "missing", (0, 0, 2, 2), data=data(1))
    unet = tiny_unet()
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(tmp_path / "pipe")
    params = sum(p.numel() for p in unet.parameters())  # the size estimate reads the safetensors header only
    assert any_model.weights_bytes(tmp_path / "pipe" / "unet") == 4 * params
    assert any_model.weights_bytes(tmp_path / "pipe" / "unet", torch.bfloat16) == 2 * params
    monkeypatch.setattr(UNet2DModel, "from_pretrained", lambda *a, **k: pytest.fail("loaded before the size check"))
    with pytest.raises(ValueError, match=r"needs about .* GiB .* more than the .* GiB free on cpu"):
        any_model.probe(tmp_path / "pipe", (0, 0, 2, 2), data=data(1), memory_limit=4 * params)
    unet.save_pretrained(tmp_path / "alone" / "unet")
    with pytest.raises(ValueError, match="without its scheduler"):
        any_model.probe(tmp_path / "alone" / "unet", (0, 0, 2, 2), data=data(1))


def test_cli_probes_a_saved_sd3_pipeline_and_reports_errors_in_one_line(tmp_path, capsys):
    folder = tmp_path / "sd3"
    folder.mkdir()
    tiny_sd3(layers=1).save_pretrained(folder / "transformer")
    FlowMatchEulerDiscreteScheduler(shift=3.0).save_pretrained(folder / "scheduler")
    index = {"_class_name": "StableDiffusion3Pipeline", "transformer": ["diffusers", "SD3Transformer2DModel"],
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"], "vae": [None, None]}
    (folder / "model_index.json").write_text(json.dumps(index))
    torch.save(SD3_CONDITIONING, tmp_path / "prompt.pt")
    np.save(tmp_path / "latents.npy", data(4).numpy())
    args = ["probe", str(folder), "--region", "0", "0", "4", "4", "--levels", "0.3", "0.7", "--data",
            str(tmp_path / "latents.npy"), "--conditioning", str(tmp_path / "prompt.pt"), "--n", "2", "--json"]
    assert main(args + ["--save", str(tmp_path / "out.npz")]) == 0
    rows = json.loads(capsys.readouterr().out)
    api = any_model.probe(folder, (0, 0, 4, 4), [0.3, 0.7], data=data(4), conditioning=SD3_CONDITIONING, n=2)
    assert [r["ldr"] for r in rows] == pytest.approx([r["ldr"] for r in api.rows()], abs=1e-6)
    saved = np.load(tmp_path / "out.npz")
    assert saved["saliency/r0/x0@0.3"].shape == (2, 4, 8, 8) and saved["regions"].shape == (1, 4, 8, 8)
    assert main(["probe", str(tmp_path), "--region", "0", "0", "4", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a diffusers model" in err and err.count("\n") == 1


def test_the_chapters_ldr_rows_show_a_standard_error_only_where_there_is_one():
    from types import SimpleNamespace as NS

    from ldrkit.analysis.probe_your_model import ldr_rows
    level = NS(level=0.5, ldr=[{"eps": NS(mean=0.95612, sem=0.0123), "x0": NS(mean=0.88, sem=float("nan"))}])
    rows = ldr_rows(NS(levels=[level], outputs=("eps", "x0")), ["R"])
    assert rows == [{"region": "R", "output": "eps", "√ᾱ=0.5": "0.956 ± 0.012"},
                    {"region": "R", "output": "x0", "√ᾱ=0.5": "0.880"}]
