"""What a spec determines before any training: grammar, split, renderer, schedule, training data, model.

`Setup.from_config(spec)` is the one place a spec becomes objects; the training loop, the
evaluation, the oracles and the analyses all start from it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..systems.categories import categorize
from ..denoisers.schedule import Schedule
from ..systems.grammars import Grammar, Split
from ..denoisers.models import build_model
from ..systems.render import Renderer
from ..denoisers.symbol_conditioned import PRIORS, SymbolConditioned, bind, token_indices
from ..systems.registry import build_grammar, build_renderer


@dataclass
class Setup:
    """Everything an experiment's spec determines before training."""

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
        grammar = build_grammar(config["grammar"])
        split = grammar.split(config["split"]["train_fraction"], config["split"]["seed"])
        renderer = build_renderer(config["render"], grammar.length)
        # A probabilistic renderer may render its training set differently (e.g. several draws per sequence).
        data = getattr(renderer, "render_training", renderer.render)(split.train)
        shift = float(data.mean()) if config.get("data", {}).get("center", False) else 0.0
        return cls(grammar, split, renderer, Schedule(**config.get("schedule", {})), data - shift, shift)

    def build_model(self, config: dict) -> nn.Module:
        """The spec's denoiser, initialised from the training seed.

        With config["symbols"] = {"prior": "empirical" | "autoregressive", ...prior sizes} the denoiser is a
        `symbol_conditioned.SymbolConditioned` one (p(x | s), the sequence given as extra inputs) with an untrained prior
        (`ldrkit.runs.pipeline` fits it before training).
        """
        torch.manual_seed(config["train"]["seed"])
        symbols = config.get("symbols")
        if not symbols:
            return build_model(config["model"], self.renderer.signal_shape)
        length, size = self.grammar.length, len(self.grammar.symbols)
        image = len(self.renderer.signal_shape) == 3
        inner = build_model({**config["model"], "cond_channels": size if image else length * size},
                            self.renderer.signal_shape)
        options = {k: v for k, v in symbols.items() if k not in ("prior", "fit") and v is not None}
        if symbols["prior"] not in PRIORS:
            raise ValueError(f"unknown symbol prior {symbols['prior']!r}; known: {', '.join(PRIORS)}")
        if symbols["prior"] == "empirical":
            options["capacity"] = len(self.split.train)
        prior = PRIORS[symbols["prior"]](length, size, **options)
        masks = torch.stack([self.renderer.region(i) for i in range(length)])
        return SymbolConditioned(inner, masks, size, prior)

    def training_tokens(self) -> torch.Tensor:
        """The alphabet indices of the sequence drawn in each row of `train_data` (renderers that draw the
        training set several times tile the sequences, `render_training`)."""
        copies, rest = divmod(len(self.train_data), len(self.split.train))
        if rest:
            raise ValueError(f"{len(self.train_data)} training signals are not a whole number of copies of "
                             f"{len(self.split.train)} sequences")
        return token_indices(np.tile(self.split.train, (copies, 1)), tuple(self.grammar.symbols))

    def generate(self, model, n: int, seed: int, num_steps: int | None = None, progress: bool = False,
                 sampler: str = "ddpm", batch_size: int | None = None) -> torch.Tensor:
        """n samples of the model in the renderer's space (the centring shift added back).

        A symbol-conditioned model first draws n sequences from its prior (the same generator, before the
        noise), then samples each image given its sequence; `last_tokens` keeps those sequences.
        """
        gen = torch.Generator().manual_seed(seed)
        self.last_tokens = None
        if isinstance(model, SymbolConditioned):
            if batch_size is not None and batch_size < n:
                raise ValueError("a symbol-conditioned model samples all its images in one batch (sample_batch unset)")
            self.last_tokens = model.sample_tokens(n, gen)
            model = bind(model, self.last_tokens)
        x = self.schedule.sample(model, n, self.renderer.signal_shape, gen, num_steps=num_steps, progress=progress,
                                 sampler=sampler, batch_size=batch_size)
        return x + self.shift if self.shift else x

    def categorize(self, samples: torch.Tensor) -> np.ndarray:
        """invalid / hallucination / in_dataset / extrapolation of each sample (in the renderer's space)."""
        return categorize(self.renderer.decode(samples), self.grammar, self.split.train)
