"""One experiment end to end: grammar -> renderer -> dataset -> denoiser -> training run -> evaluations.

Each evaluation samples from the model, decodes, sorts the samples into the four
categories and probes the LDR of one symbol's region at the five sqrt(alpha_bar) levels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import ldr as ldr_probe
from .categorize import categorize, fractions
from .diffusion import Schedule
from .grammars import Grammar, Split, get_grammar
from .models import build_model
from .render import EmbeddingRenderer, GlyphRenderer, Renderer, ScalarRenderer
from .train import train


def build_renderer(spec: dict, length: int) -> Renderer:
    """A renderer from a config entry: {"type": "scalar"}, {"type": "embedding", "dim": k, "seed": s}
    or {"type": "glyph", "cell": 8, ...} (parenthesis images, see `render.GlyphRenderer`)."""
    spec = dict(spec)
    kind = spec.pop("type")
    if kind == "scalar":
        return ScalarRenderer(length, **spec)
    if kind == "embedding":
        return EmbeddingRenderer(length, **spec)
    if kind == "glyph":
        return GlyphRenderer(length, **spec)
    if kind == "quarter-digits":
        from .digits import QuarterDigitRenderer
        return QuarterDigitRenderer(length, **spec)
    if kind == "english":
        from .text import EnglishRenderer
        return EnglishRenderer(length, **spec)
    if kind == "hanzi":
        from .hanzi import HanziRenderer
        return HanziRenderer(length, **spec)
    raise ValueError(f"unknown renderer {kind!r}; known: scalar, embedding, glyph, quarter-digits, english, hanzi")


@dataclass
class Setup:
    """Everything an experiment's config determines before training."""

    grammar: Grammar
    split: Split
    renderer: Renderer
    schedule: Schedule
    train_data: torch.Tensor
    shift: float = 0.0

    @classmethod
    def from_config(cls, config: dict) -> "Setup":
        """config["data"] = {"center": true} (optional) subtracts the training set's mean pixel value.

        The model then works on signals shifted by that one constant (`shift`): `train_data`
        (what training and the LDR probes see) is centred, and `generate` adds the constant back
        before anything is decoded, so samples live in the renderer's space. A constant shift
        carries no information about the rule; it spares an image model with a dark
        background (mean about -0.85) from having to learn that offset exactly in its eps
        output at high noise, where an error is amplified by 1/sqrt(alpha_bar) in x0.
        """
        g = dict(config["grammar"])
        grammar = get_grammar(g.pop("name"), **g)
        split = grammar.split(config["split"]["train_fraction"], config["split"]["seed"])
        renderer = build_renderer(config["render"], grammar.length)
        # A probabilistic renderer may render its training set differently (e.g. several draws per sequence).
        data = getattr(renderer, "render_training", renderer.render)(split.train)
        shift = float(data.mean()) if config.get("data", {}).get("center", False) else 0.0
        return cls(grammar, split, renderer, Schedule(**config.get("schedule", {})), data - shift, shift)

    def build_model(self, config: dict) -> nn.Module:
        torch.manual_seed(config["train"]["seed"])
        return build_model(config["model"], self.renderer.signal_shape)

    def generate(self, model, n: int, seed: int, num_steps: int | None = None, progress: bool = False,
                 sampler: str = "ddpm", batch_size: int | None = None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        x = self.schedule.sample(model, n, self.renderer.signal_shape, gen, num_steps=num_steps, progress=progress,
                                 sampler=sampler, batch_size=batch_size)
        return x + self.shift if self.shift else x

    def categorize(self, samples: torch.Tensor) -> np.ndarray:
        return categorize(self.renderer.decode(samples), self.grammar, self.split.train)


def evaluate(setup: Setup, model, eval_config: dict, seed: int) -> tuple[dict, torch.Tensor]:
    """Categories and LDR (eps and x0 outputs) of one model; also returns the generated samples.

    eval_config: num_samples, sample_steps, ldr_position, ldr_samples; optional sampler
    ("ddpm", the default, or "ddim"), sample_batch (network calls on at most that many samples;
    default all at once), ldr_method ("exact", the default, or "estimate"),
    ldr_probes (for "estimate", default 32) and ldr_levels (the sqrt(alpha_bar) levels, default
    ldr.LEVELS). ldr_position is whatever the renderer's `region` takes (a position, or e.g. a
    list of positions or a named part for some renderers).
    """
    samples = setup.generate(model, eval_config["num_samples"], seed, eval_config.get("sample_steps"),
                             sampler=eval_config.get("sampler", "ddpm"), batch_size=eval_config.get("sample_batch"))
    region = setup.renderer.region(eval_config["ldr_position"])
    table = ldr_probe.ldr_levels(model, setup.schedule, region, setup.train_data,
                                 levels=tuple(eval_config.get("ldr_levels", ldr_probe.LEVELS)),
                                 n=eval_config["ldr_samples"], seed=seed,
                                 method=eval_config.get("ldr_method", "exact"),
                                 probes=eval_config.get("ldr_probes", 32))
    record = {"categories": fractions(setup.categorize(samples)), "ldr": table["eps"], "ldr_x0": table["x0"]}
    return record, samples


def run_training(config: dict, run_dir: Path, progress: bool = True, stop_after: int | None = None) -> list[dict]:
    """Train the config's model in run_dir (resuming if possible); returns the evaluation records.

    With config["eval"]["oracle_distance"] true, each record also holds "oracle_distance":
    {"rule"|"product"|"memoriser": {level: mean per-coordinate (eps_net - eps_oracle)^2}} on
    `oracle_samples` (default 16) noised training inputs per level (see ldrkit.oracle_runs).
    """
    setup = Setup.from_config(config)
    model = setup.build_model(config)
    samples_dir = Path(run_dir) / "samples"
    oracles = None
    if config["eval"].get("oracle_distance"):
        from .oracle_runs import ORACLES, build_oracle
        oracles = {w: build_oracle(setup, w) for w in ORACLES}

    def evaluate_step(model, step: int) -> dict:
        seed = config["train"]["seed"] * 1_000_003 + step
        record, samples = evaluate(setup, model, config["eval"], seed=seed)
        if oracles is not None:
            from .oracle_runs import oracle_distances
            record["oracle_distance"] = oracle_distances(model, setup, oracles,
                                                         n=config["eval"].get("oracle_samples", 16), seed=seed)
        samples_dir.mkdir(parents=True, exist_ok=True)
        np.save(samples_dir / f"step_{step:07d}.npy", samples.numpy().astype(np.float16))
        return record

    return train(run_dir, config, model, setup.schedule, setup.train_data, evaluate_step,
                 stop_after=stop_after, progress=progress)


def load_run(run_dir: Path, step: int | None = None) -> tuple[Setup, nn.Module, dict]:
    """Rebuild a run's setup and load its model at `step` (default: the last checkpoint)."""
    import json

    from .train import checkpoints, load_checkpoint

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json)")
    stored = json.loads((run_dir / "config.json").read_text())
    config = stored["config"]
    setup = Setup.from_config(config)
    model = setup.build_model(config)
    found = dict(checkpoints(run_dir))
    if not found:
        raise FileNotFoundError(f"no checkpoints in {run_dir}")
    step = max(found) if step is None else step
    if step not in found:
        raise FileNotFoundError(f"no checkpoint for step {step} in {run_dir}; saved steps: {sorted(found)}")
    load_checkpoint(found[step], model, digest=stored["hash"])
    model.eval()
    return setup, model, config
