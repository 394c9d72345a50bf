"""Book runs exported as diffusers pipeline folders (ldrkit.runs.export): the plain diffusers pipelines sample what
ldrkit's sampler samples from the same noise, the centring shift travels in ldrkit.json, and `ldrkit probe` on the
folder repeats `ldrkit ldr` on the run. The stored cpu runs are restored into the test's own runs folder."""
import json

import pytest
import torch
from diffusers import DDIMPipeline, DDPMPipeline

from ldrkit import get_run
from ldrkit.__main__ import main
from ldrkit.denoisers.diffusers_adapter import DiffusersDenoiser
from ldrkit.probes import any_model
from ldrkit.probes.ldr import ldr_levels
from ldrkit.runs.export import PixelDiTPipeline, export_run

UNET, DIT = "quarter-digits-unet-n32", "quarter-digits-dit-token-n32"


def centred_image(samples, shift):
    """ldrkit's samples as a diffusers pipeline returns them: centred, mapped to [0, 1] and clipped."""
    return ((samples - shift) / 2 + 0.5).clamp(0, 1)


def pipeline_images(pipe, n, seed, steps, **kwargs):
    pipe.set_progress_bar_config(disable=True)
    return pipe(batch_size=n, generator=torch.Generator().manual_seed(seed), num_inference_steps=steps,
                output_type="pt", **kwargs).images


@pytest.mark.parametrize("name, pipeline", [(UNET, DDPMPipeline), (DIT, PixelDiTPipeline)])
def test_the_exported_pipeline_samples_what_ldrkit_samples(name, pipeline, tmp_path):
    run = get_run(name, "cpu", 0, progress=False)
    folder = export_run(run, tmp_path / "pipe")
    setup, model = run.setup, run.model()
    info = json.loads((folder / "ldrkit.json").read_text())
    assert info["shift"] == setup.shift != 0 and info["source"]["step"] == run.steps()[-1]
    pipe = pipeline.from_pretrained(folder)
    ours = setup.generate(model, 4, seed=3, num_steps=20, sampler="ddpm")  # renderer space, the shift added back
    theirs = pipeline_images(pipe, 4, 3, 20)
    assert torch.allclose(theirs, centred_image(ours, setup.shift), atol=1e-5)
    assert ((theirs > 0) & (theirs < 1)).float().mean() > 0.5  # most pixels unclipped: the comparison is not vacuous
    net = pipe.unet if pipeline is DDPMPipeline else pipe.transformer
    adapter = DiffusersDenoiser(net, pipe.scheduler, {"class_labels": torch.zeros(1, dtype=torch.long)}
                                if pipeline is PixelDiTPipeline else None)
    unclipped = setup.schedule.sample(adapter, 4, setup.renderer.signal_shape, torch.Generator().manual_seed(3),
                                      num_steps=20, progress=False) + info["shift"]
    assert torch.allclose(unclipped, ours, atol=1e-5)  # the exported weights, sampled by ldrkit, plus the shift


def test_the_book_evaluation_sampler_is_diffusers_ddim_pipeline(tmp_path):
    run = get_run(UNET, "cpu", 0, progress=False)
    folder = export_run(run, tmp_path / "pipe")
    ours = run.setup.generate(run.model(), 4, seed=5, num_steps=50, sampler="ddim")
    theirs = pipeline_images(DDIMPipeline.from_pretrained(folder), 4, 5, 50, eta=0.0)
    assert torch.allclose(theirs, centred_image(ours, run.setup.shift), atol=1e-5)


@pytest.mark.parametrize("name", [UNET, DIT])
def test_probe_cli_on_an_export_repeats_ldr_cli_on_its_run(name, tmp_path, capsys):
    """Same inputs by construction: the export carries the run's centred training signals, its LDR region and n
    (and the DiT's class label), and the probe draws the noised inputs with probes.ldr.noised_inputs from the same
    seed and schedule."""
    run = get_run(name, "cpu", 0, progress=False)
    assert main(["export", str(run.path), str(tmp_path / "pipe")]) == 0
    assert "Pipeline.from_pretrained" in capsys.readouterr().out
    assert main(["ldr", str(run.path)]) == 0
    ldr_lines = capsys.readouterr().out.splitlines()
    assert main(["probe", str(tmp_path / "pipe")]) == 0
    probe_lines = capsys.readouterr().out.splitlines()
    assert ldr_lines[1].split()[1:] == probe_lines[1].split()[1:]  # the columns eps@0.1 ... x0@0.9
    assert len(ldr_lines) == len(probe_lines) == 4  # one checkpoint, one region
    assert ldr_lines[3].split()[1:] == probe_lines[3].split()[1:]  # every value and error bar, as printed
    region = run.setup.renderer.region(run.config["eval"]["ldr_position"])
    for method in ("exact", "estimate"):  # and to float precision at two levels, the estimator included
        kwargs = dict(levels=(0.3, 0.7), n=4, seed=1, method=method, probes=8)
        book = ldr_levels(run.model(), run.setup.schedule, region, run.setup.train_data, **kwargs)
        ours = any_model.probe(tmp_path / "pipe", **kwargs).means()
        for output in ("eps", "x0"):
            assert ours[output] == pytest.approx(book[output], abs=1e-6), (method, output)


def test_export_refuses_what_it_cannot_write(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="did not export"):
        export_run(get_run(UNET, "cpu", 0, progress=False), tmp_path / "mine")
    with pytest.raises(ValueError, match="MLPDenoiser"):
        export_run(get_run("parity-mlp-L8", "cpu", 0, progress=False), tmp_path / "mlp")
    assert main(["export", str(tmp_path / "mine"), str(tmp_path / "out")]) == 2
