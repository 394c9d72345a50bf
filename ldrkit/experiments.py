"""Named experiments, their profiles, and running one into a folder with metrics.json.

Profiles (see the book's introduction):
- smoke: seconds; proves the path runs end to end (CI);
- cpu: minutes on a 2-core laptop CPU, sized so the chapter's phenomenon appears;
- paper: the paper's settings (appendix A.5), for a GPU.

metrics.json (a contract with users, chapters and outside checks; later experiments add keys):
    {"experiment", "profile", "seed", "wall_seconds", "evaluations": [E...], "final": E, "config_hash", ...}
with E = {"step", "categories": {invalid, hallucination, in_dataset, extrapolation},
          "ldr": {"0.1".."0.9"}, "ldr_x0": {"0.1".."0.9"}} for the sampling experiments.
The file is strict JSON: a value that is undefined (an LDR of 0/0, where an exact denoiser's
Jacobian vanishes) is null, never NaN.
"""
from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .pipeline import run_training
from .train import atomic_write, config_hash, is_main_process, json_ready

PROFILES = ("smoke", "cpu", "paper")


class UnknownNameError(ValueError):
    """An experiment or profile name that does not exist; the message lists the valid ones."""


@dataclass(frozen=True)
class Experiment:
    """A named experiment: its config for each profile and the function that runs it."""

    name: str
    summary: str
    make_config: Callable[[str, int], dict]
    runner: Callable[[dict, Path, bool], dict] = field(default=None)  # type: ignore[assignment]

    def config(self, profile: str, seed: int = 0) -> dict:
        check_profile(profile)
        return self.make_config(profile, seed)

    def run(self, config: dict, run_dir: Path, progress: bool = True) -> dict:
        if self.runner is not None:
            return self.runner(config, run_dir, progress)
        records = run_training(config, run_dir, progress=progress)
        return {"evaluations": records, "final": records[-1]}


EXPERIMENTS: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise UnknownNameError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    return profile


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise UnknownNameError(f"unknown experiment {name!r}; valid experiments: {', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[name]


def resolve_profile(profile: str) -> str:
    """The profile to use: the LDRKIT_PROFILE environment variable (set by CI) wins over the argument."""
    return check_profile(os.environ.get("LDRKIT_PROFILE") or profile)


def default_runs_dir() -> Path:
    """Where run folders go: $LDRKIT_RUNS, else runs/ at the repository root (or the working directory)."""
    if os.environ.get("LDRKIT_RUNS"):
        return Path(os.environ["LDRKIT_RUNS"])
    root = Path(__file__).resolve().parent.parent
    return root / "runs" if (root / "_toc.yml").exists() else Path.cwd() / "runs"


def run_dir_for(name: str, profile: str, seed: int) -> Path:
    return default_runs_dir() / name / f"{profile}-seed{seed}"


def run_experiment(name: str, profile: str, seed: int = 0, out: Path | str | None = None,
                   progress: bool = True, overrides: dict | None = None, use_store: bool = True) -> dict:
    """Train and evaluate an experiment (or reuse a finished run with the same config) and return metrics.json.

    A finished run is reused from the run folder, or else restored from the results store
    (results/, see ldrkit.store) when its config hash matches; otherwise the experiment trains.
    With the default run folder, a run of an older config is moved aside to
    runs/NAME/stale/ rather than refused; an explicit `out` holding another config is refused
    (ConfigMismatchError). `overrides` is merged into the profile's config (nested dicts merge
    key by key), for tests and chapters that need a variant; it changes the config hash like any change.
    """
    from .store import code_version, find_stored, restore_run

    experiment = get_experiment(name)
    config = merge(experiment.config(profile, seed), overrides or {})
    default_out = out is None
    out = Path(out) if out is not None else run_dir_for(name, profile, seed)
    digest = config_hash(config)
    metrics_path = out / "metrics.json"
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text())
        if metrics.get("config_hash") == digest:
            return metrics
    if default_out and is_main_process():  # under `accelerate launch` only rank 0 touches the folder
        move_stale_run(out, digest)
    stored = find_stored(name, profile, seed, digest) if use_store and not overrides else None
    if stored is not None and not (out / "config.json").exists():
        return restore_run(stored, out)
    code = code_version()  # the code that trains it, for the results store's provenance
    start = time.perf_counter()
    body = experiment.run(config, out, progress)
    metrics = {"experiment": name, "profile": profile, "seed": seed,
               "wall_seconds": round(time.perf_counter() - start, 2), **body,
               "config_hash": digest, "run_dir": str(out), "code": code}
    if body.get("evaluations"):
        # A resumed run counts the time already spent before the interruption.
        metrics["wall_seconds"] = round(max(metrics["wall_seconds"], body["evaluations"][-1].get("elapsed_seconds", 0)), 2)
    if is_main_process():
        atomic_write(metrics_path, json.dumps(json_ready(metrics), indent=1))
    return metrics


def move_stale_run(run_dir: Path, digest: str) -> None:
    """Move a run folder made by another config to RUN_DIR/../stale/NAME-HASH, so the new config can train."""
    config_path = run_dir / "config.json"
    if not config_path.exists():
        return
    old = json.loads(config_path.read_text()).get("hash")
    if old == digest:
        return
    dest = run_dir.parent / "stale" / f"{run_dir.name}-{old}"
    if dest.exists():
        import shutil
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(run_dir, dest)
    print(f"{run_dir} held a run of another config ({old}); moved it to {dest}", flush=True)


def merge(base: dict, overrides: dict) -> dict:
    """A deep copy of base with overrides merged in, nested dicts key by key."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# --- parity on the hypercube with an MLP (sections 4.1, 4.2, 5; appendix A.5) -------------------------

def _parity_mlp_config(length: int, train_fraction: float, cpu_steps: int) -> Callable[[str, int], dict]:
    def make(profile: str, seed: int) -> dict:
        sizes = {
            "smoke": dict(model={"type": "mlp", "hidden": 128, "depth": 3},
                          train={"steps": 300, "batch_size": 256, "lr": 1e-3, "eval_every": 150},
                          eval={"num_samples": 256, "sample_steps": 100, "ldr_samples": 16}),
            "cpu": dict(model={"type": "mlp", "hidden": 256, "depth": 3},
                        train={"steps": cpu_steps, "batch_size": 256, "lr": 1e-3, "eval_every": cpu_steps // 20},
                        eval={"num_samples": 1024, "sample_steps": 1000, "ldr_samples": 128}),
            # The paper gives no MLP size; it uses Adam lr 8e-5 and batch 16 for its image models (A.5).
            "paper": dict(model={"type": "mlp", "hidden": 1024, "depth": 4},
                          train={"steps": 200_000, "batch_size": 16, "lr": 8e-5, "eval_every": 10_000},
                          eval={"num_samples": 4096, "sample_steps": 1000, "ldr_samples": 256}),
        }[profile]
        return {
            "grammar": {"name": "parity", "length": length},
            "split": {"train_fraction": train_fraction, "seed": seed},
            "render": {"type": "scalar"},
            "schedule": {"num_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02},
            "model": sizes["model"],
            "train": {**sizes["train"], "seed": seed},
            "eval": {**sizes["eval"], "ldr_position": 1},
        }
    return make


register(Experiment("parity-mlp-L8", "Parity over {+-1}^8, half of the 128 valid sequences in training, MLP denoiser",
                    _parity_mlp_config(8, 0.5, cpu_steps=20_000)))
register(Experiment("parity-mlp-L16", "Parity over {+-1}^16, 5% of the 32768 valid sequences in training, MLP denoiser",
                    _parity_mlp_config(16, 0.05, cpu_steps=20_000)))


# --- the three stairs of a two-layer ReLU network on parity (section 5, appendix A.8) ----------------

def _stairs(d: int) -> Experiment:
    def make(profile: str, seed: int) -> dict:
        from .stairs import make_config
        return make_config(d, profile, seed)

    def run(config: dict, run_dir: Path, progress: bool) -> dict:
        from .stairs import run_stairs
        return run_stairs(config, Path(run_dir), progress)

    return Experiment(f"three-stairs-d{d}", f"Two-layer ReLU network learning coordinate 1 of the parity score on {{+-1}}^{d}",
                      make, run)


register(_stairs(8))
register(_stairs(16))


# --- exact denoisers (oracles) of an experiment's data, sampled like a trained model -------------------

def oracle_experiment(base: str, which: str) -> Experiment:
    """`BASE-oracle-WHICH`: the base experiment's data and evaluation, with an exact denoiser and no training."""
    def make(profile: str, seed: int) -> dict:
        return {**get_experiment(base).config(profile, seed), "oracle": which}

    def run(config: dict, run_dir: Path, progress: bool) -> dict:
        from .oracle_runs import run_oracle
        return run_oracle(config, run_dir, progress)

    return Experiment(f"{base}-oracle-{which}", f"The exact {which} denoiser on the data of {base} (sampling only)", make, run)


# The paper profile's evaluation of the image experiments: 1024 samples (the network called on 128 at a
# time, so paper-size images fit a GPU), the LDR estimated with 64 random probes.
_PAPER_EVAL = {"num_samples": 1024, "sample_steps": 100, "sample_batch": 128, "ldr_samples": 16,
               "ldr_method": "estimate", "ldr_probes": 64}


# --- parity and Dyck parentheses as images, UNet and DiT (section 4.2, appendix A.5, A.7.1-A.7.2) -------

# Models per profile. cpu: the measured CPU recipe (1 thread, minutes); paper: appendix A.5, where
# the image is 64 pixels high (one 64x64 cell per parenthesis, our reading of "image size 64"),
# the UNet has base width 64 and a 512-wide bottleneck, DiT-S has hidden 384 and patch 8.
_PARENS_MODELS = {
    "unet": {
        "smoke": {"type": "unet", "channels": [8, 16, 16], "layers_per_block": 1, "attention_head_dim": 8,
                  "norm_num_groups": 8},
        "cpu": {"type": "unet", "channels": [16, 32, 32], "layers_per_block": 1, "attention_head_dim": 8,
                "norm_num_groups": 8},
        # diffusers has no linear-attention block: full attention in the three lowest levels and the mid block.
        "paper": {"type": "unet", "channels": [64, 128, 256, 512], "layers_per_block": 1, "attention_head_dim": 32,
                  "norm_num_groups": 32, "attention_levels": 3},
    },
    "dit": {
        "smoke": {"type": "dit", "patch_size": 4, "layers": 1, "heads": 2, "head_dim": 8},
        "cpu": {"type": "dit", "patch_size": 4, "layers": 4, "heads": 4, "head_dim": 16},
        "paper": {"type": "dit", "patch_size": 8, "layers": 12, "heads": 6, "head_dim": 64},  # DiT-S/8
    },
}
_PARENS_CELL = {"smoke": 8, "cpu": 8, "paper": 64}


def _parens_config(grammar: str, length: int, train_fraction: float, model: str,
                   cpu_steps: int, cpu_evals: int = 8, cpu_overrides: dict | None = None) -> Callable[[str, int], dict]:
    """`cpu_overrides` is merged into the cpu profile's config only (a per-experiment CPU recipe)."""
    def make(profile: str, seed: int) -> dict:
        sizes = {
            "smoke": dict(train={"steps": 40, "batch_size": 32, "lr": 1e-3, "eval_every": 20},
                          eval={"num_samples": 32, "sample_steps": 10, "ldr_samples": 2}),
            "cpu": dict(train={"steps": cpu_steps, "batch_size": 64, "lr": 1e-3, "eval_every": cpu_steps // cpu_evals},
                        eval={"num_samples": 256, "sample_steps": 50, "ldr_samples": 4}),
            "paper": dict(train={"steps": 1_100_000, "batch_size": 16, "lr": 8e-5, "eval_every": 50_000},
                          eval=dict(_PAPER_EVAL)),
        }[profile]
        config = {
            "grammar": {"name": grammar, "length": length},
            "split": {"train_fraction": train_fraction, "seed": seed},
            "render": {"type": "glyph", "cell": _PARENS_CELL[profile]},
            # smoke/cpu: the model works on the images minus their mean pixel value (one constant,
            # see pipeline.Setup), which made an L=8 UNet legible in about half the steps; paper: as is.
            "data": {"center": profile != "paper"},
            "schedule": {"num_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02},
            "model": dict(_PARENS_MODELS[model][profile]),
            "train": {**sizes["train"], "seed": seed},
            # Distance to the exact rule / product / memoriser denoisers at every evaluation.
            "eval": {**sizes["eval"], "sampler": "ddim", "ldr_position": 1, "oracle_distance": True},
        }
        return merge(config, cpu_overrides) if profile == "cpu" and cpu_overrides else config
    return make


register(Experiment("parity-parens-L8-unet",
                    "Parity, L=8, as parenthesis images; half of the 128 valid sequences in training; UNet",
                    _parens_config("parity", 8, 0.5, "unet", cpu_steps=2400)))
register(Experiment("parity-parens-L16-unet",
                    "Parity, L=16, as parenthesis images; 5% of the 32768 valid sequences in training; UNet",
                    # Measured (seed 0, 1 thread): raw weights, invalid 0.30 after 3000 steps, 0.56 after
                    # 4000, 0.03 after 5000 (lr 1e-3 makes them swing); weight average (evaluated every 500
                    # steps): 0.36, 0.24, 0.11 after 3000, 4000, 5000 and 0.07 after 5500. Five evaluations
                    # (LDR and oracle distances cost ~20 s each) keep the run within 15 minutes.
                    _parens_config("parity", 16, 0.05, "unet", cpu_steps=5000, cpu_evals=5,
                                   cpu_overrides={"train": {"ema_decay": 0.995}})))
# The cpu DiT of the parenthesis images: one token per 8x8 cell (patch 8) of width 128, weights averaged.
# Measured (parity L=16, seed 0): patch 4 (two by two tokens per cell, width 64) stayed 100% invalid for
# 2400 steps, strokes broken at the patch edges; patch 2 with two layers was still 100% invalid after
# 900 steps and 2.7x as slow per step; patch 8 at width 64 drew glyphs but blew up in some cells
# (values of +-200: 64 pixels through a 64-wide token). Patch 8 at width 128: legible from ~1500 steps.
_CELL_TOKEN_DIT = {"model": {"patch_size": 8, "head_dim": 32}, "train": {"ema_decay": 0.995}}

register(Experiment("parity-parens-L16-dit",
                    "Parity, L=16, as parenthesis images; 5% of the 32768 valid sequences in training; DiT",
                    _parens_config("parity", 16, 0.05, "dit", cpu_steps=6000, cpu_overrides=_CELL_TOKEN_DIT)))
register(Experiment("dyck-parens-unet",
                    "Dyck words, L=12, as parenthesis images; half of the 132 words in training; UNet",
                    _parens_config("dyck", 12, 0.5, "unet", cpu_steps=1800)))
register(Experiment("dyck-parens-dit",
                    "Dyck words, L=12, as parenthesis images; half of the 132 words in training; DiT",
                    _parens_config("dyck", 12, 0.5, "dit", cpu_steps=6000, cpu_overrides=_CELL_TOKEN_DIT)))


# --- Quarter-MNIST: four handwritten digits, s1 + s2 = s3 + s4 (section 4.2, appendix A.5, A.7.3) ----

# smoke/cpu: scikit-learn's 8x8 digits (offline), 16x16 images; paper: MNIST 28x28 quarters (56x56
# images, local IDX files, see ldrkit.digits.load_mnist), UNet base width 64, DiT-S with patch 8.
_QUARTER_MODELS = {
    "unet": _PARENS_MODELS["unet"],  # the same UNets as the parentheses
    "dit": {
        "smoke": {"type": "dit", "patch_size": 4, "layers": 1, "heads": 2, "head_dim": 8},
        "cpu": {"type": "dit", "patch_size": 2, "layers": 4, "heads": 4, "head_dim": 16},
        "paper": {"type": "dit", "patch_size": 8, "layers": 12, "heads": 6, "head_dim": 64},  # DiT-S/8, 56 = 7 * 8
    },
}
# A quarter is legible when the classifier gives its top digit probability >= 0.5 (see ldrkit.digits).
_QUARTER_RENDER = {
    "smoke": {"type": "quarter-digits", "source": "sklearn", "size": 8, "copies": 1, "threshold": 0.5},
    "cpu": {"type": "quarter-digits", "source": "sklearn", "size": 8, "copies": 8, "threshold": 0.5},
    "paper": {"type": "quarter-digits", "source": "mnist", "size": 28, "copies": 64, "threshold": 0.5},
}
_QUARTER_CPU_STEPS = {"unet": 6000, "dit": 5000}


def _quarter_config(model: str) -> Callable[[str, int], dict]:
    def make(profile: str, seed: int) -> dict:
        steps = _QUARTER_CPU_STEPS[model]
        sizes = {
            "smoke": dict(train={"steps": 30, "batch_size": 32, "lr": 1e-3, "eval_every": 15},
                          eval={"num_samples": 32, "sample_steps": 10, "ldr_samples": 1}),
            "cpu": dict(train={"steps": steps, "batch_size": 64, "lr": 1e-3, "eval_every": steps // 10},
                        eval={"num_samples": 256, "sample_steps": 50, "ldr_samples": 4}),
            "paper": dict(train={"steps": 180_000, "batch_size": 16, "lr": 8e-5, "eval_every": 10_000},
                          eval=dict(_PAPER_EVAL)),
        }[profile]
        return {
            "grammar": {"name": "digit-sum", "length": 4},
            # 470 of the 670 valid tuples for training, 200 held out (section 4.2).
            "split": {"train_fraction": 470 / 670, "seed": seed},
            "render": {**_QUARTER_RENDER[profile], "seed": seed},
            "data": {"center": profile != "paper"},
            "schedule": {"num_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02},
            "model": dict(_QUARTER_MODELS[model][profile]),
            "train": {**sizes["train"], "seed": seed},
            # Distance to the exact rule / product / memoriser denoisers at every evaluation (ldrkit.oracle_runs).
            "eval": {**sizes["eval"], "sampler": "ddim", "ldr_position": 0, "oracle_distance": True},
        }
    return make


register(Experiment("quarter-digits-unet",
                    "Quarter-MNIST: four handwritten digits with s1+s2=s3+s4, 470 of 670 tuples in training; UNet",
                    _quarter_config("unet")))
register(Experiment("quarter-digits-dit",
                    "Quarter-MNIST: four handwritten digits with s1+s2=s3+s4, 470 of 670 tuples in training; DiT",
                    _quarter_config("dit")))


for _base in ("parity-mlp-L16", "parity-parens-L16-unet", "quarter-digits-unet"):
    for _which in ("rule", "product", "memoriser"):
        register(oracle_experiment(_base, _which))


# --- real text: common English words and Chinese characters (section 6, appendix A.7.4, Figs. 7, 20, 21) ---

# The paper's levels plus 0.2, where section 6 reads the LDR of real text (Fig. 7 left).
_TEXT_LDR_LEVELS = [0.1, 0.2, 0.3, 0.5, 0.7, 0.9]
# English: the most frequent words of wordfreq's top list (letters a-z only), one cell per letter,
# padded with blank cells to the longest length. cpu: 3-4 letter words in 12x12 cells (12x48 images;
# 8- and 10-pixel letters are too close to read reliably, see ldrkit.text); paper: 1000 words of up
# to 10 letters in 32-pixel cells (the paper gives neither the rendering nor the image size for words).
_ENGLISH = {
    "smoke": {"lexicon": {"size": 60, "min_length": 3, "max_length": 4}, "cell": 12},
    "cpu": {"lexicon": {"size": 500, "min_length": 3, "max_length": 4}, "cell": 12},
    "paper": {"lexicon": {"size": 1000, "min_length": 1, "max_length": 10}, "cell": 32},
}
# Chinese: the most frequent single characters of wordfreq's "zh" list in Noto Sans CJK SC (mplfonts).
_CHINESE = {"smoke": {"size": 60, "pixels": 24}, "cpu": {"size": 1000, "pixels": 24},
            "paper": {"size": 1000, "pixels": 64}}
_TEXT_CPU_STEPS = {"english": 3000, "chinese": 3000}


def _text_sizes(profile: str, steps: int) -> dict:
    return {
        "smoke": dict(train={"steps": 30, "batch_size": 32, "lr": 1e-3, "eval_every": 15},
                      eval={"num_samples": 32, "sample_steps": 10, "ldr_samples": 1, "ldr_method": "estimate",
                            "ldr_probes": 8}),
        # cpu: the LDR estimated with 32 random probes per noised input (exact rows cost 288 VJPs each).
        "cpu": dict(train={"steps": steps, "batch_size": 64, "lr": 1e-3, "eval_every": steps // 10},
                    eval={"num_samples": 256, "sample_steps": 50, "ldr_samples": 8, "ldr_method": "estimate",
                          "ldr_probes": 32}),
        "paper": dict(train={"steps": 200_000, "batch_size": 16, "lr": 8e-5, "eval_every": 10_000},
                      eval=dict(_PAPER_EVAL)),
    }[profile]


def _english_config(profile: str, seed: int) -> dict:
    e, sizes = _ENGLISH[profile], _text_sizes(profile, _TEXT_CPU_STEPS["english"])
    lex = e["lexicon"]
    return {
        "grammar": {"name": "english-words", **lex},
        # 90% of the lexicon in training, the rest held out (valid words the model never saw).
        "split": {"train_fraction": 0.9, "seed": seed},
        "render": {"type": "english", "cell": e["cell"]},
        "data": {"center": profile != "paper"},
        "schedule": {"num_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02},
        "model": dict(_PARENS_MODELS["unet"][profile]),
        "train": {**sizes["train"], "seed": seed},
        # R = the first and second letter (Figs. 7, 21).
        "eval": {**sizes["eval"], "sampler": "ddim", "ldr_position": [0, 1], "ldr_levels": _TEXT_LDR_LEVELS},
    }


def _chinese_config(profile: str, seed: int) -> dict:
    c, sizes = _CHINESE[profile], _text_sizes(profile, _TEXT_CPU_STEPS["chinese"])
    return {
        "grammar": {"name": "chinese-chars", "size": c["size"]},
        "split": {"train_fraction": 0.9, "seed": seed},
        "render": {"type": "hanzi", "size": c["pixels"], "lexicon_size": c["size"]},
        "data": {"center": profile != "paper"},
        "schedule": {"num_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02},
        "model": dict(_PARENS_MODELS["unet"][profile]),
        "train": {**sizes["train"], "seed": seed},
        # R = the left half of the character, where the left-hand component (radical) sits.
        "eval": {**sizes["eval"], "sampler": "ddim", "ldr_position": "left", "ldr_levels": _TEXT_LDR_LEVELS},
    }


register(Experiment("english-words-unet",
                    "The most common English words (wordfreq) as images, one letter cell each; 90% in training; UNet",
                    _english_config))
register(Experiment("chinese-chars-unet",
                    "The most common Chinese characters (wordfreq) as Noto Sans CJK images; 90% in training; UNet",
                    _chinese_config))
