"""A book run as a diffusers pipeline folder: `export_run(run, folder)`, `python -m ldrkit export RUN DIR`.

The folder holds the run's checkpoint (the last by default) and its DDPM schedule as diffusers saves them:
- a UNet run: `DDPMPipeline` (unet/, scheduler/, model_index.json), loaded with `DDPMPipeline.from_pretrained(DIR)`
  (or `DDIMPipeline.from_pretrained(DIR)`, the book's evaluation sampler: `pipe(eta=0.0, num_inference_steps=50)`);
- a DiT run (square images): `PixelDiTPipeline` below (transformer/, scheduler/), loaded with
  `PixelDiTPipeline.from_pretrained(DIR)` (DDIM: pass `scheduler=DDIMScheduler.from_pretrained(DIR,
  subfolder="scheduler")` and call it with `eta=0.0`); diffusers' DiTPipeline decodes latents with a VAE these
  pixel models lack.

The centring shift. A run with data.center trains on its signals minus one constant (`Setup.shift`, the mean
pixel); ldrkit's sampler adds it back. The exported network is the trained one, so the pipeline samples the
centred space: renderer pixels = centred sample + shift, with the shift in DIR/ldrkit.json. A pipeline's
`output_type="pt"` images are (centred / 2 + 0.5) clipped to [0, 1], so `2 * images - 1 + shift` gives the
renderer's pixels wherever the centred value lies in [-1, 1]; the unclipped samples come from
`Schedule.sample(DiffusersDenoiser(pipe.unet, pipe.scheduler), ...) + shift`, the book's own sampler. The folder
also carries the book's probe inputs (`probes.any_model.write_probe_inputs`: the centred training signals, the LDR
region, n), so `python -m ldrkit probe DIR` repeats `python -m ldrkit ldr RUN`.
"""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDPMPipeline, DDPMScheduler, DiffusionPipeline, DiTTransformer2DModel
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from ..denoisers.models import DiTDenoiser, UNetDenoiser
from ..probes.any_model import EXPORT_INFO, write_probe_inputs
from ..spec.hashing import LDR_LEVELS
from .run import Run


class PixelDiTPipeline(DiffusionPipeline):
    """DDPMPipeline's sampler for a DiTTransformer2DModel on pixels: every image gets the one class label
    (`class_label`, 0 for the book's DiTs, whose class table has one row)."""

    model_cpu_offload_seq = "transformer"

    def __init__(self, transformer: DiTTransformer2DModel, scheduler: DDPMScheduler):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler)

    @torch.no_grad()
    def __call__(self, batch_size: int = 1, generator: torch.Generator | None = None, num_inference_steps: int = 1000,
                 class_label: int = 0, output_type: str = "pil", return_dict: bool = True, **step_kwargs):
        """As DDPMPipeline.__call__; `step_kwargs` go to the scheduler's step (eta=0.0 for a DDIMScheduler)."""
        config = self.transformer.config
        shape = (batch_size, config.in_channels, config.sample_size, config.sample_size)
        image = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=self.transformer.dtype)
        labels = torch.full((batch_size,), class_label, dtype=torch.long, device=image.device)
        self.scheduler.set_timesteps(num_inference_steps)
        for t in self.progress_bar(self.scheduler.timesteps):
            out = self.transformer(image, timestep=t.expand(batch_size), class_labels=labels).sample
            image = self.scheduler.step(out, t, image, generator=generator, **step_kwargs).prev_sample
        image = (image / 2 + 0.5).clamp(0, 1)
        if output_type != "pt":
            image = image.cpu().permute(0, 2, 3, 1).numpy()
            image = self.numpy_to_pil(image) if output_type == "pil" else image
        return ImagePipelineOutput(images=image) if return_dict else (image,)


def export_run(run: Run | str | Path, folder: str | Path, step: int | None = None) -> Path:
    """Write the run's checkpoint at `step` (default: the last) and its schedule as a diffusers pipeline folder,
    with ldrkit.json (the shift, the source, the sampler, the probe's settings) and ldrkit_probe.npz beside them."""
    run = Run(run) if isinstance(run, (str, Path)) else run
    model, setup, config = run.model(step), run.setup, run.config  # FileNotFoundError without a checkpoint
    step = run.steps()[-1] if step is None else int(step)
    scheduler = DDPMScheduler(**setup.schedule.config)
    info = {"pipeline": "DDPMPipeline", "conditioning": {}}
    if isinstance(model, UNetDenoiser) and model.cond_channels == 0:
        pipe = DDPMPipeline(unet=model.net, scheduler=scheduler)
    elif isinstance(model, DiTDenoiser) and model.signal_shape[1] == model.signal_shape[2]:
        transformer = DiTTransformer2DModel(**{k: v for k, v in model.net.config.items() if not k.startswith("_")})
        transformer.load_state_dict(model.net.state_dict())
        pipe = PixelDiTPipeline(transformer=transformer.eval(), scheduler=scheduler)
        info = {"pipeline": "ldrkit.runs.export.PixelDiTPipeline", "conditioning": {"class_labels": [0]}}
    else:
        raise ValueError(f"{run.path}: export writes unconditioned UNet runs and DiT runs on square images; this run's "
                         f"model is a {type(model).__name__} on signals of shape {setup.renderer.signal_shape}")
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()) and not (folder / EXPORT_INFO).exists():
        raise ValueError(f"{folder} is a folder that ldrkit did not export; export into a new or empty folder")
    pipe.save_pretrained(folder)
    evaluation = config["eval"]
    info.update({
        "shift": setup.shift, "shift_applies": "renderer pixels = the pipeline's centred sample + shift",
        "source": {"run": str(run.path), "config_hash": run.hash, "step": step,
                   "experiment": run.metrics.get("experiment") if run.is_finished() else None},
        "sampler": {"name": evaluation.get("sampler", "ddpm"), "steps": evaluation.get("sample_steps")},
        "levels": list(LDR_LEVELS), "n": int(evaluation["ldr_samples"]), "ldr_position": evaluation["ldr_position"]})
    write_probe_inputs(folder, setup.train_data, setup.renderer.region(evaluation["ldr_position"]), info)
    return folder
