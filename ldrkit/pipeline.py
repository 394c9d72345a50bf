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
from .render import EmbeddingRenderer, Renderer, ScalarRenderer
from .train import train


def build_renderer(spec: dict, length: int) -> Renderer:
    """A renderer from a config entry: {"type": "scalar"} or {"type": "embedding", "dim": k, "seed": s}."""
    spec = dict(spec)
    kind = spec.pop("type")
    if kind == "scalar":
        return ScalarRenderer(length, **spec)
    if kind == "embedding":
        return EmbeddingRenderer(length, **spec)
    raise ValueError(f"unknown renderer {kind!r}; known: scalar, embedding")


@dataclass
class Setup:
    """Everything an experiment's config determines before training."""

    grammar: Grammar
    split: Split
    renderer: Renderer
    schedule: Schedule
    train_data: torch.Tensor

    @classmethod
    def from_config(cls, config: dict) -> "Setup":
        g = dict(config["grammar"])
        grammar = get_grammar(g.pop("name"), **g)
        split = grammar.split(config["split"]["train_fraction"], config["split"]["seed"])
        renderer = build_renderer(config["render"], grammar.length)
        return cls(grammar, split, renderer, Schedule(**config.get("schedule", {})), renderer.render(split.train))

    def build_model(self, config: dict) -> nn.Module:
        torch.manual_seed(config["train"]["seed"])
        return build_model(config["model"], self.renderer.signal_shape)

    def generate(self, model, n: int, seed: int, num_steps: int | None = None, progress: bool = False) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return self.schedule.sample(model, n, self.renderer.signal_shape, gen, num_steps=num_steps, progress=progress)

    def categorize(self, samples: torch.Tensor) -> np.ndarray:
        return categorize(self.renderer.decode(samples), self.grammar, self.split.train)


def evaluate(setup: Setup, model, eval_config: dict, seed: int) -> tuple[dict, torch.Tensor]:
    """Categories and LDR (eps and x0 outputs) of one model; also returns the generated samples."""
    samples = setup.generate(model, eval_config["num_samples"], seed, eval_config.get("sample_steps"))
    region = setup.renderer.region(eval_config["ldr_position"])
    table = ldr_probe.ldr_levels(model, setup.schedule, region, setup.train_data,
                                 n=eval_config["ldr_samples"], seed=seed)
    record = {"categories": fractions(setup.categorize(samples)), "ldr": table["eps"], "ldr_x0": table["x0"]}
    return record, samples


def run_training(config: dict, run_dir: Path, progress: bool = True, stop_after: int | None = None) -> list[dict]:
    """Train the config's model in run_dir (resuming if possible); returns the evaluation records."""
    setup = Setup.from_config(config)
    model = setup.build_model(config)
    samples_dir = Path(run_dir) / "samples"

    def evaluate_step(model, step: int) -> dict:
        record, samples = evaluate(setup, model, config["eval"], seed=config["train"]["seed"] * 1_000_003 + step)
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
