"""What the chapters read: the sample counts of their own analyses (`ANALYSIS`, `analysis_sizes`), the runs each
comparison is made of (sweeps, kappa controls, sampler checks), their seeds, and the headline runs that
`make reproduce` retrains. Names only: the experiments themselves are registered by the families."""
from __future__ import annotations

from .hashing import check_profile
from .parens import PARENS_SWEEP_STEPS
from .quarter import HELD_OUT_STEPS, QUARTER_SWEEP_STEPS

# Sample counts of the chapters' own analyses (beyond what each evaluation records).
# ldr_inputs / trajectories: vectors (cheap Jacobians); image_ldr_inputs / image_trajectories: images, where
# every exact Jacobian row is a backward pass through a UNet.
ANALYSIS = {
    "smoke": {"ldr_inputs": 16, "oracle_inputs": 16, "trajectories": 16, "pair_inputs": 16, "probes": 4,
              "image_ldr_inputs": 4, "image_trajectories": 16, "stairs_samples": 1 << 15, "theory_small": True},
    "cpu": {"ldr_inputs": 256, "oracle_inputs": 128, "trajectories": 512, "pair_inputs": 128, "probes": 32,
            "image_ldr_inputs": 32, "image_trajectories": 128, "stairs_samples": 1 << 17, "theory_small": False},
    "paper": {"ldr_inputs": 256, "oracle_inputs": 128, "trajectories": 512, "pair_inputs": 128, "probes": 64,
              "image_ldr_inputs": 64, "image_trajectories": 512, "stairs_samples": 1 << 18, "theory_small": False},
}


# The detectors chapter: samples per run, enough that each class (hallucinated, valid legible) expects `min_class`
# members from the run's own final category fractions, at most `max` (ldrkit.analysis.detectors.sample_count).
for _profile, _sizes in {"smoke": {"min_class": 4, "max": 32}, "cpu": {"min_class": 50, "max": 1536},
                         "paper": {"min_class": 200, "max": 8192}}.items():
    ANALYSIS[_profile]["detector_samples"] = _sizes
# ... and the samples of each run scored under Aithal et al.'s own protocol (ancestral DDPM on all 1000 steps: a UNet
# needs 5-20 CPU-minutes for 256 at one thread, so the cpu book draws 64 and says so beside its intervals).
for _profile, _n in {"smoke": 16, "cpu": 64, "paper": 1024}.items():
    ANALYSIS[_profile]["detector_protocol_samples"] = _n


# The remedies chapter: the seeds of each comparison (three for the headline numbers; parity has the seeds the
# store holds) and the noised inputs of its coupling score;
# ema_baseline_seeds: the weight-averaged baseline, a control (does averaging alone change the rule?); parens_seeds:
# parity parentheses, one seed at cpu (its remedy run took 76 minutes at one thread beside another training).
for _profile, _sizes in {
        "smoke": {"seeds": [0], "parity_seeds": [0], "parens_seeds": [0], "ema_baseline_seeds": [0],
                  "coupling_inputs": 4},
        "cpu": {"seeds": [0, 1, 2], "parity_seeds": [0], "parens_seeds": [0], "ema_baseline_seeds": [0, 1, 2],
                "coupling_inputs": 16},
        "paper": {"seeds": [0, 1, 2], "parity_seeds": [0, 1, 2], "parens_seeds": [0, 1, 2],
                  "ema_baseline_seeds": [0, 1, 2], "coupling_inputs": 32}}.items():
    ANALYSIS[_profile]["remedy"] = _sizes

# The oracles chapter's training-time control of kappa: seeds of parity-mlp-L8-kappa (two at smoke: a fixed-step
# comparison needs at least two runs).
for _profile, _seeds in {"smoke": [0, 1], "cpu": [0, 1, 2], "paper": [0, 1, 2]}.items():
    ANALYSIS[_profile]["control_seeds"] = _seeds
# ... and of its negative controls, the two parenthesis DiTs and the two parenthesis UNets with kappa at every
# evaluation (DIT_KAPPA, UNET_KAPPA).
for _profile, _seeds in {"smoke": [0], "cpu": [0, 1, 2], "paper": [0, 1, 2]}.items():
    ANALYSIS[_profile]["dit_kappa_seeds"] = _seeds
    ANALYSIS[_profile]["unet_kappa_seeds"] = _seeds


def analysis_sizes(profile: str) -> dict:
    """The chapters' analysis sample counts for a profile (ANALYSIS)."""
    return dict(ANALYSIS[check_profile(profile)])


# The training-time control of kappa across grammars (issue 15): the two parenthesis DiTs (same network, steps and
# evaluations) with kappa recorded at every evaluation, at the one level where the rule's cross-region coupling is
# separable from the product's in both (oracle calibration of the stored runs, 4 inputs: rule signal 3.8e-3 parity,
# 1.6e-2 Dyck at sqrt(abar) = 0.7; below 1e-3 at 0.1, 0.3, 0.5 and 0.9). Parity L=16 never follows its rule (the
# negative control: a measure of training time rises here too); the Dyck DiT partly learns its rule.
DIT_KAPPA = {"parity L=16 DiT": "parity-parens-L16-dit-kappa", "Dyck DiT": "dyck-parens-dit-kappa"}
# ... and the same pair of grammars with the paper's network, the UNet (the first-act runs' configs: parity 5000 steps,
# Dyck 1800; the two runs do not share their steps, as the DiTs do).
UNET_KAPPA = {"parity L=16 UNet": "parity-parens-L16-unet-kappa", "Dyck UNet": "dyck-parens-unet-kappa"}


# The second-act chapter's sweeps (issue 14): per model, training-set size -> experiment. The parity parentheses
# sweep ends at the stored L=8 run (64 of 128 sequences).
SWEEPS = {
    "Quarter UNet": {n: f"quarter-digits-unet-n{n}" for n in QUARTER_SWEEP_STEPS["unet"]},
    # The paper's DiT-S/8 on 56x56 images puts several tokens on each 28x28 digit: this one is its analogue.
    "Quarter DiT, 4 tokens per digit": {n: f"quarter-digits-dit-patch-n{n}" for n in QUARTER_SWEEP_STEPS["dit-patch"]},
    "Quarter DiT, a token per digit": {n: f"quarter-digits-dit-token-n{n}" for n in QUARTER_SWEEP_STEPS["dit-token"]},
    "Quarter DiT, default init": {32: "quarter-digits-dit-n32"},  # the first attempt: 4x4 patches, PyTorch's init
    "parity parentheses L=8 UNet": {**{n: f"parity-parens-L8-unet-n{n}" for n in PARENS_SWEEP_STEPS},
                                    64: "parity-parens-L8-unet"},
}
# The sizes held out of the onset fits, as the second-act chapter predicts them (spec.quarter.HELD_OUT_STEPS).
HELD_OUT = {"Quarter UNet": {n: f"quarter-digits-unet-n{n}" for n in HELD_OUT_STEPS["unet"]},
            "Quarter DiT, a token per digit": {n: f"quarter-digits-dit-token-n{n}" for n in HELD_OUT_STEPS["dit-token"]}}
# Its seeds per profile; smoke trains only each sweep's smallest size (smoke runs are too short to memorise). The
# headline sizes (issue 14's bar: the DiT memorising at n >= 32 beside the UNet of its size) get three seeds at cpu.
# The sampler check redraws the last checkpoints with the paper's ancestral sampler on all T steps (None); smoke
# walks the same code on 100 strided steps.
SECOND_ACT_HEADLINE = {"Quarter UNet": [32], "Quarter DiT, a token per digit": [32]}
# kappa across the memorisation transition (issues 14, 15; the levels are in spec.quarter, spec.parens and
# spec.text), as the second-act chapter names the runs.
SECOND_ACT_KAPPA = {"Quarter UNet, n = 32": "quarter-digits-unet-n32-kappa",
                    "Quarter DiT, a token per digit, n = 32": "quarter-digits-dit-token-n32-kappa",
                    "parity parentheses L=8 UNet, n = 8": "parity-parens-L8-unet-n8-kappa"}
# Issue 18's sampler check beyond the sweeps: the first-act runs of the parentheses and Quarter-digits chapters (seed
# 0), their last checkpoint drawn again with the paper's ancestral sampler (cached in the runs; the real-text chapter
# redraws its two runs the same way). One ancestral draw of 256 samples cost a UNet 5-25 CPU-minutes at one thread
# beside other jobs.
FIRST_ACT_SAMPLER_CHECK = {"parity parentheses L=16 UNet": "parity-parens-L16-unet",
                           "parity parentheses L=16 DiT": "parity-parens-L16-dit", "Dyck UNet": "dyck-parens-unet",
                           "Dyck DiT": "dyck-parens-dit", "Quarter UNet, 470 tuples": "quarter-digits-unet",
                           "Quarter DiT, 470 tuples": "quarter-digits-dit"}
# Sizes beyond the headline whose three seeds are stored at cpu (the others: seed 0): the one-token DiT's whole sweep.
SECOND_ACT_SEEDED = {"Quarter DiT, a token per digit": [2, 4, 8, 16]}
for _profile, _sizes in {"smoke": {"seeds": [0], "smallest_only": True, "resample_steps": 100},
                         "cpu": {"seeds": [0], "smallest_only": False, "headline_seeds": [0, 1, 2]},
                         "paper": {"seeds": [0, 1, 2], "smallest_only": False}}.items():
    ANALYSIS[_profile]["second_act"] = {"headline_seeds": _sizes["seeds"], "headline": SECOND_ACT_HEADLINE,
                                        "seeded": SECOND_ACT_SEEDED if _profile == "cpu" else {},
                                        "resample_steps": None, "kappa_seeds": [0] if _profile == "smoke" else [0, 1, 2],
                                        "first_act_checked": {} if _profile == "smoke" else FIRST_ACT_SAMPLER_CHECK,
                                        **_sizes}


def sweep_seeds(profile: str) -> dict[str, dict[int, list[int]]]:
    """{sweep label: {size: its seeds}} for the sizes read with the headline seeds at `profile` (the headline sizes
    and SECOND_ACT_SEEDED's); every other size is read with the profile's sweep seeds."""
    sizes = ANALYSIS[profile]["second_act"]
    return {label: {n: sizes["headline_seeds"] for n in [*sizes["headline"].get(label, []),
                                                         *sizes["seeded"].get(label, [])]}
            for label in SWEEPS}

SECOND_ACT_KAPPA["English, 20 entries"] = "english-words-unet-lex20-kappa"



# `make reproduce` (issue 14's budget: under 3 hours on a 2-core machine): the runs behind each chapter's headline
# numbers, retrained on two one-thread workers. Their stored wall times (one thread each, beside another run, AMD
# EPYC AVX-512) add up to about 3.2 hours, about 1.6 hours on two workers; `make reproduce-all` retrains every
# stored run (about 14.8 hours of stored wall time: the symbol-conditioned remedy runs alone take 3.4 hours).
REPRODUCE_HEADLINE = ("parity-mlp-L16", "parity-mlp-L8", "parity-mlp-L16-oracle-rule", "parity-mlp-L16-oracle-product",
                      "parity-mlp-L16-oracle-memoriser", "parity-parens-L16-unet", "parity-parens-L16-dit",
                      "parity-parens-L8-unet-n8", "dyck-parens-unet", "dyck-parens-dit", "quarter-digits-unet",
                      "quarter-digits-dit", "quarter-digits-unet-n32", "quarter-digits-dit-token-n32",
                      "quarter-digits-unet-oracle-rule", "english-words-unet", "chinese-chars-unet",
                      "english-words-unet-lex20", "chinese-chars-unet-lex20", "three-stairs-d8", "three-stairs-d16")
