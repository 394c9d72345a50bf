"""The registry of sizes, keyed like DiT's `DiT_models` dict: `MODELS[family][profile]`, `TRAIN[profile]`,
`EVAL[profile]`, `STAIRS[profile]`, and `image_spec`, the one builder that assembles them into an image
experiment's spec. The experiment families (`ldrkit.spec.parity`, ...) and the benchmarks read sizes from here;
the chapters' own sample counts are in `ldrkit.spec.selections`.
"""
from __future__ import annotations

# Denoisers per family and profile. cpu: small enough for minutes on a 2-core CPU; paper: appendix A.5,
# where an image is 64 pixels high (one 64x64 cell per parenthesis, our reading of "image size 64"),
# the UNet has base width 64 and a 512-wide bottleneck, DiT-S has hidden 384 and patch 8.
MODELS = {
    "mlp": {"smoke": {"type": "mlp", "hidden": 128, "depth": 3},
            "cpu": {"type": "mlp", "hidden": 256, "depth": 3},
            # The paper gives no MLP size.
            "paper": {"type": "mlp", "hidden": 1024, "depth": 4}},
    "unet": {"smoke": {"type": "unet", "channels": [8, 16, 16], "layers_per_block": 1, "attention_head_dim": 8,
                       "norm_num_groups": 8},
             "cpu": {"type": "unet", "channels": [16, 32, 32], "layers_per_block": 1, "attention_head_dim": 8,
                     "norm_num_groups": 8},
             # diffusers has no linear-attention block: full attention in the three lowest levels and the mid block.
             "paper": {"type": "unet", "channels": [64, 128, 256, 512], "layers_per_block": 1,
                       "attention_head_dim": 32, "norm_num_groups": 32, "attention_levels": 3}},
    # Patches of 4x4 pixels: several tokens per 8x8 glyph cell.
    "dit": {"smoke": {"type": "dit", "patch_size": 4, "layers": 1, "heads": 2, "head_dim": 8},
            "cpu": {"type": "dit", "patch_size": 4, "layers": 4, "heads": 4, "head_dim": 16},
            "paper": {"type": "dit", "patch_size": 8, "layers": 12, "heads": 6, "head_dim": 64}},  # DiT-S/8
    # One 128-wide token per 8x8 glyph cell (the parenthesis DiTs of the book's cpu profile).
    "dit-cell": {"smoke": {"type": "dit", "patch_size": 4, "layers": 1, "heads": 2, "head_dim": 8},
                 "cpu": {"type": "dit", "patch_size": 8, "layers": 4, "heads": 4, "head_dim": 32},
                 "paper": {"type": "dit", "patch_size": 8, "layers": 12, "heads": 6, "head_dim": 64}},
    # Quarter-digits: 2x2-pixel patches of a 16x16 image at cpu; DiT-S/8 on 56x56 at paper (56 = 7 * 8).
    "dit-quarter": {"smoke": {"type": "dit", "patch_size": 4, "layers": 1, "heads": 2, "head_dim": 8},
                    "cpu": {"type": "dit", "patch_size": 2, "layers": 4, "heads": 4, "head_dim": 16},
                    "paper": {"type": "dit", "patch_size": 8, "layers": 12, "heads": 6, "head_dim": 64}},
}

# Training of the image experiments (steps set per experiment at cpu, per family at paper).
TRAIN = {"smoke": {"batch_size": 32, "lr": 1e-3},
         "cpu": {"batch_size": 64, "lr": 1e-3},
         "paper": {"batch_size": 16, "lr": 8e-5}}  # appendix A.5: Adam 8e-5, batch 16

# Evaluation of the image experiments. paper: 1024 samples (the network called on 128 at a time, so
# paper-size images fit a GPU), the LDR estimated with 64 random probes.
EVAL = {"smoke": {"num_samples": 32, "sample_steps": 10},
        "cpu": {"num_samples": 256, "sample_steps": 50},
        "paper": {"num_samples": 1024, "sample_steps": 100, "sample_batch": 128, "ldr_samples": 16,
                  "ldr_method": "estimate", "ldr_probes": 64}}

# The three-stairs networks of section 5 (appendix A.8); phases: consecutive optimiser phases whose
# learning rate decays geometrically from lr to lr_end.
STAIRS = {
    "smoke": {"width": 128, "batch": 512, "record_every": 10, "snapshots": 20, "level_samples": 1 << 15,
              "phases": [{"optimizer": "sgd", "lr": 0.1, "lr_end": 0.1, "steps": 1500},
                         {"optimizer": "adam", "lr": 2e-3, "lr_end": 2e-4, "steps": 300}]},
    "cpu": {"width": 512, "batch": 1024, "record_every": 25, "snapshots": 60,
            "phases": [{"optimizer": "sgd", "lr": 0.05, "lr_end": 0.05, "steps": 2500},
                       {"optimizer": "adam", "lr": 1e-3, "lr_end": 1e-3, "steps": 20000}]},
    # appendix A.8's width 2000 and sigma_init 1e-3, long enough on a GPU for the third stair.
    "paper": {"width": 2000, "batch": 4096, "record_every": 100, "snapshots": 100, "dtype": "float64",
              "phases": [{"optimizer": "sgd", "lr": 0.05, "lr_end": 0.05, "steps": 5000},
                         {"optimizer": "adam", "lr": 1e-3, "lr_end": 1e-5, "steps": 200000}]},
}
STAIRS_CPU_ADAM_STEPS_D16 = 8000  # the d=16 third stair is out of a CPU budget: a shorter Adam phase

# The Quarter-digits memorisation sweeps (issue 14): a DiT of about the UNet's parameter count (270k vs 280k at
# cpu; 4x4-pixel patches, four tokens per 8x8 digit).
MODELS["dit-quarter-small"] = {"smoke": dict(MODELS["dit-quarter"]["smoke"]),
                               "cpu": {"type": "dit", "patch_size": 4, "layers": 2, "heads": 4, "head_dim": 14},
                               "paper": dict(MODELS["dit-quarter"]["paper"])}


# The DiT as its paper initialises it (adaLN-zero: every block starts as the identity) and without the 1001-row
# class table diffusers keeps in each block (41% of the 270k parameters above, unused by an unconditional model):
# the same budget goes into width (76). "token": 8x8 patches, one token per digit (locality built into the
# architecture); "patch": 4x4 patches, four tokens per digit. Both within 1.7% of the UNet's 280,177 parameters.
# Fit on the n = 32 training images (scratch runs, 3000 steps, eps error at t = 200): the default-initialised DiT
# 0.16-0.21, adaLN-zero 4x4 0.11, adaLN-zero 8x8 0.075, the UNet 0.012 after 1500 steps.
MODELS["dit-quarter-token"] = {"smoke": dict(MODELS["dit-quarter"]["smoke"]),
                               "cpu": {"type": "dit", "patch_size": 8, "layers": 2, "heads": 4, "head_dim": 19,
                                       "labels": 1, "init": "adaln-zero"},
                               "paper": dict(MODELS["dit-quarter"]["paper"])}
MODELS["dit-quarter-patch"] = {"smoke": dict(MODELS["dit-quarter"]["smoke"]),
                               "cpu": {**MODELS["dit-quarter-token"]["cpu"], "patch_size": 4},
                               "paper": dict(MODELS["dit-quarter"]["paper"])}

SCHEDULE = {"num_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02}  # DDPM, the paper's T=1000

# Noised training inputs per level of the coupling score kappa when an experiment records it at every evaluation.
COUPLING_SAMPLES = {"smoke": 8, "cpu": 64, "paper": 128}


def image_spec(profile: str, seed: int, *, grammar: dict, train_fraction: float, render: dict, model: str,
               cpu_steps: int, cpu_evals: int, paper_steps: int, paper_eval_every: int, eval: dict,
               ldr_samples: dict, ema_decay: float | None = None) -> dict:
    """The spec of an image experiment: shared schedule, centring, seeds, training and evaluation sizes.

    smoke and cpu train on the images minus their mean pixel value (`data.center`, one constant
    undone before decoding); paper trains on them as they are. `ldr_samples`: per profile.
    `ema_decay`: a weight average evaluated instead of the raw weights, at the cpu profile only.
    """
    steps, every = {"smoke": (40, 20), "cpu": (cpu_steps, cpu_steps // cpu_evals),
                    "paper": (paper_steps, paper_eval_every)}[profile]
    train = {"steps": steps, **TRAIN[profile], "eval_every": every, "seed": seed}
    if ema_decay is not None and profile == "cpu":
        train["ema_decay"] = ema_decay
    evaluation = {**EVAL[profile], **({} if profile == "paper" else {"ldr_samples": ldr_samples[profile]}), **eval}
    if profile == "paper":
        evaluation = {**eval, **EVAL["paper"]}
    return {"grammar": grammar, "split": {"train_fraction": train_fraction, "seed": seed}, "render": render,
            "data": {"center": profile != "paper"}, "schedule": dict(SCHEDULE),
            "model": dict(MODELS[model][profile]), "train": train, "eval": evaluation}

