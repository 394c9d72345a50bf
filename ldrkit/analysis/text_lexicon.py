"""Real text with smaller lexicons: does the text UNet reach the paper's overfitting phase on a CPU, and does the
LDR of the first letters fall as it does (section 6, Fig. 7 left)?

The full lexicons (500 English words, 1000 Chinese characters at the cpu profile) stay in the hallucination
phase for the 3000 steps a CPU affords; the same model on a lexicon of a few dozen entries has seen each
training entry hundreds of times as often. Per run: when half of all samples first are training entries
(`second_act.onset_step`), the categories at the end with Wilson intervals, and the x0-LDR of R at
sqrt(alpha_bar) = 0.2 on `LDR_INPUTS` noised training inputs with its standard error (cached in the run
folder), at the hallucination peak and at the end. The LDR "fell" only when the drop exceeds `LDR_SIGMAS`
standard errors of the difference.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt

from ..denoisers.oracles import build_oracle
from ..probes import ldr as ldr_probe
from ..probes.estimates import mean_sem, seed_mean, share
from ..runs.request import get_run
from ..runs.run import Run
from ..spec.registry import get_experiment
from ..spec.text import TEXT_KAPPA_LEVEL, TEXT_LEXICON_SWEEP
from .kappa_calibration import CALIBRATION_INPUTS, oracle_calibration
from .overtraining import ldr_over_training
from .real_text import LEVEL, TEXT_RUNS, hallucination_phase
from .second_act import onset_step
from .verdicts import sign_verdict

LDR_INPUTS = {"smoke": 2, "cpu": 32, "paper": 32}  # noised training inputs per LDR value (evaluations: 8)
LDR_PROBES = 32     # random probes per input (the estimator of `ldr.ldr`)
LDR_SIGMAS = 2.0    # a change counts when it exceeds this many standard errors of the difference
SEEDED_SIZE = 20    # the smallest lexicon, trained with the profile's SEEDS (the others with seed 0)
SEEDS = {"smoke": [0], "cpu": [0, 1, 2], "paper": [0, 1, 2]}
# The full lexicons' seeds, the equal-step control's reference.
FULL_SEEDS = {"smoke": {"english": [0], "chinese": [0]}, "cpu": {"english": [0, 1, 2], "chinese": [0, 1, 2]},
              "paper": {"english": [0, 1, 2], "chinese": [0, 1, 2]}}


def lexicon_names(profile: str) -> dict[str, dict[int, str]]:
    """{language: {lexicon size: experiment}}: the smaller lexicons and the full one."""
    out = {}
    for key, base in TEXT_RUNS.items():
        full = get_experiment(base).config(profile, 0)["grammar"]["size"]
        sizes = {min(s, full): f"{base}-lex{s}" for s in TEXT_LEXICON_SWEEP.get(base, ())}
        out[key] = {**dict(sorted(sizes.items())), full: base}
    return out


def lexicon_runs(profile: str, seed: int) -> dict[str, dict[int, Run]]:
    """{language: {lexicon size: run}}, restored from the results store or trained."""
    return {key: {size: get_run(name, profile, seed, progress=False) for size, name in names.items()}
            for key, names in lexicon_names(profile).items()}


def ldr_rows(run: Run, profile: str) -> list[dict]:
    """x0-LDR of R at LEVEL per checkpoint with its standard error (cached in RUN/ldr_over_training.json)."""
    rows = ldr_over_training(run, method="estimate", probes=LDR_PROBES, n=LDR_INPUTS[profile], levels=(float(LEVEL),),
                             outputs=("x0",))
    return [{"step": r["step"], "ldr": r["x0"][LEVEL], "se": r["x0_sem"][LEVEL]} for r in rows]


def all_ldr_rows(runs: dict[str, dict[int, Run]], profile: str) -> dict[str, dict[int, list[dict]]]:
    return {key: {size: ldr_rows(run, profile) for size, run in by_size.items()} for key, by_size in runs.items()}


def _at(rows: list[dict], step: int | None) -> dict | None:
    """The LDR row at `step`, else the nearest checkpoint at or before it (restored runs keep a few)."""
    if step is None:
        return None
    before = [r for r in rows if r["step"] <= step]
    return before[-1] if before else None


def _verdict(diff: float, se: float, below: str, above: str, same: str = "no difference") -> str:
    """`verdicts.sign_verdict` at LDR_SIGMAS standard errors."""
    return sign_verdict(diff, se, below, above, same, LDR_SIGMAS)


def ldr_change(before: dict | None, after: dict | None, sigmas: float = LDR_SIGMAS) -> str:
    """"fell" / "rose" when the change exceeds `sigmas` standard errors of the difference, else "no change"."""
    if before is None or after is None or before["step"] == after["step"]:
        return "n/a"
    return sign_verdict(after["ldr"] - before["ldr"], math.hypot(before["se"], after["se"]), "fell", "rose",
                        "no change", sigmas)


def lexicon_rows(runs: dict[str, dict[int, Run]], ldr: dict[str, dict[int, list[dict]]]) -> list[dict]:
    """One row per run: lexicon and training sizes, onset step, final in-dataset share and hallucinations among
    legible with Wilson intervals, and the x0-LDR at LEVEL (± s.e.) at the hallucination peak and at the end."""
    rows = []
    for key, by_size in runs.items():
        for size, run in by_size.items():
            ev, n = run.evaluations, int(run.config["eval"]["num_samples"])
            last = ev[-1]["categories"]
            k_in, k_leg = round(last["in_dataset"] * n), round((1 - last["invalid"]) * n)
            mem, mem_lo, mem_hi = share(k_in, n)
            hal, hal_lo, hal_hi = share(round(last["hallucination"] * n), k_leg)
            peak = hallucination_phase(run)["peak"]
            before = _at(ldr[key][size], peak["step"] if peak else None)
            after = _at(ldr[key][size], ev[-1]["step"])
            onset = onset_step(ev)
            rows.append({"language": key, "lexicon": size, "training entries": len(run.setup.split.train),
                         "steps": ev[-1]["step"], "onset step": "not reached" if onset is None else round(onset),
                         "in-dataset at the end": f"{mem:.3f} [{mem_lo:.3f}, {mem_hi:.3f}]",
                         "hallucinations among legible at the end": (f"{hal:.3f} [{hal_lo:.3f}, {hal_hi:.3f}]"
                                                                     if k_leg else "none legible"),
                         f"x0-LDR {LEVEL}, peak": _fmt(before), f"x0-LDR {LEVEL}, end": _fmt(after),
                         "LDR": ldr_change(before, after)})
    return rows


def _fmt(row: dict | None) -> str:
    return "n/a" if row is None else f"{row['ldr']:.3f} ± {row['se']:.3f} (step {row['step']})"


def plot_lexicons(runs: dict[str, dict[int, Run]], ldr: dict[str, dict[int, list[dict]]], profile: str, seed: int,
                  memorisers: dict[str, dict[int, dict]] | None = None):
    """Per language: the in-dataset share over training (top) and the x0-LDR at LEVEL with 2 s.e. bars (bottom),
    one line per lexicon size; `memorisers` ({language: {size: memoriser_ldr}}) adds each lexicon's exact
    memoriser as a dashed line."""
    fig, axes = plt.subplots(2, len(runs), figsize=(5 * len(runs), 6), sharex="col", squeeze=False)
    for col, (key, by_size) in enumerate(runs.items()):
        for size, run in by_size.items():
            ev = run.evaluations
            label = f"{size} entries ({len(run.setup.split.train)} in training)"
            line, = axes[0, col].plot([e["step"] for e in ev], [e["categories"]["in_dataset"] for e in ev],
                                      marker="o", ms=3, label=label)
            rows = ldr[key][size]
            axes[1, col].errorbar([r["step"] for r in rows], [r["ldr"] for r in rows],
                                  yerr=[LDR_SIGMAS * r["se"] for r in rows], marker="o", ms=3, capsize=2,
                                  color=line.get_color(), label=label)
            if memorisers:
                axes[1, col].axhline(memorisers[key][size]["ldr"], color=line.get_color(), ls="--", lw=1,
                                     label=f"{size} entries: exact memoriser")
        axes[0, col].set_title(f"{key}: in-dataset share of all samples", fontsize=10)
        axes[0, col].set_ylim(-0.02, 1.02)
        axes[0, col].legend(fontsize=7)
        if memorisers:
            axes[1, col].legend(fontsize=7)
        axes[1, col].set_title(f"{key}: x0-LDR of R at sqrt(abar) = {LEVEL} (± {LDR_SIGMAS:g} s.e.)", fontsize=10)
        axes[1, col].set_xlabel("training step")
    fig.suptitle(f"Smaller lexicons: memorisation and the LDR ({profile} profile, seed {seed})", fontsize=10)
    fig.tight_layout()
    return fig


# --- the training-time control: the same step, a model that memorises against one that does not ----------
def seeded_runs(profile: str) -> dict[str, list[Run]]:
    """{language: the SEEDED_SIZE-entry runs of every seed in SEEDS[profile]}."""
    names = lexicon_names(profile)
    return {key: [get_run(by_size[min(by_size)], profile, s, progress=False) for s in SEEDS[profile]]
            for key, by_size in names.items() if min(by_size) == SEEDED_SIZE}


_MEMORISER_LDR: dict[tuple, dict] = {}  # (run folder, spec hash, profile) -> result: the chapter asks twice per run


def memoriser_ldr(run: Run, profile: str) -> dict:
    """The x0-LDR at LEVEL of the run's exact memoriser (its training set's denoiser) on the inputs `ldr_rows` uses:
    the value a model that has memorised would reach on this lexicon ({"ldr", "se"}); computed once per run and
    profile in a process."""
    key = (str(run.path), run.hash, profile)
    if key not in _MEMORISER_LDR:
        setup = run.setup
        region = setup.renderer.region(run.config["eval"]["ldr_position"])
        table, sems = ldr_probe.ldr_levels(build_oracle(setup, "memoriser"), setup.schedule, region, setup.train_data,
                                           levels=(float(LEVEL),), outputs=("x0",), n=LDR_INPUTS[profile], seed=0,
                                           method="estimate", probes=LDR_PROBES, with_sem=True)
        _MEMORISER_LDR[key] = {"ldr": table["x0"][LEVEL], "se": sems["x0"][LEVEL]}
    return dict(_MEMORISER_LDR[key])


def all_memoriser_ldr(runs: dict[str, dict[int, Run]], profile: str) -> dict[str, dict[int, dict]]:
    return {key: {size: memoriser_ldr(run, profile) for size, run in by_size.items()} for key, by_size in runs.items()}


def toward_memoriser(net: dict, memoriser: dict) -> tuple[float, float]:
    """How far the network's x0-LDR has gone from 1 (no cross-region dependence, the product oracle's value) toward
    the memoriser's: (1 - LDR_net) / (1 - LDR_mem), 0 at the product, 1 at the memoriser, with its delta-method
    standard error. The exact memoriser's LDR itself depends on the lexicon (fewer words, more coupling), so raw
    LDRs of two lexicons are not comparable; their positions on this ruler are."""
    gap = 1.0 - memoriser["ldr"]
    if gap <= 0:
        return math.nan, math.nan
    value = (1.0 - net["ldr"]) / gap
    return value, math.hypot(net["se"] / gap, value * memoriser["se"] / gap)


def _as_seeds(runs) -> list:
    """A run or a list of a run's seeds, as a list."""
    return list(runs) if isinstance(runs, (list, tuple)) else [runs]


def full_runs(profile: str) -> dict[str, list[Run]]:
    """{language: the full-lexicon run of every seed in FULL_SEEDS[profile]}: the equal-step control's reference."""
    return {key: [get_run(name, profile, s, progress=False) for s in FULL_SEEDS[profile][key]]
            for key, name in TEXT_RUNS.items()}


def equal_step_rows(small: dict[str, list[Run]], full: dict, profile: str = "cpu") -> list[dict]:
    """At every step where the full runs kept a checkpoint: the small-lexicon runs (mean over seeds ± s.e.) against
    the full runs (a run, or a list of seeds: mean ± s.e. likewise), trained for the same steps, so that a difference
    is not the training time's doing. Per row: the in-dataset shares; the raw x0-LDR at LEVEL and its verdict
    ("lower when memorising" beyond LDR_SIGMAS s.e.); each run's exact memoriser's LDR; the position
    `toward_memoriser` and its verdict ("closer to its memoriser when memorising"). Every run's LDR is
    `ldr_rows` (cached in the run)."""
    rows = []
    for key, runs in small.items():
        per_seed = [{r["step"]: r for r in ldr_rows(run, profile)} for run in runs]
        mems = [memoriser_ldr(run, profile) for run in runs]
        fulls = _as_seeds(full[key])
        full_per_seed = [{r["step"]: r for r in ldr_rows(run, profile)} for run in fulls]
        full_mems = [memoriser_ldr(run, profile) for run in fulls]
        for step in sorted(set.intersection(*(set(s) for s in full_per_seed))):
            if not all(step in s for s in per_seed):
                continue
            raw, raw_se = seed_mean([(s[step]["ldr"], s[step]["se"]) for s in per_seed])
            ref, ref_se = seed_mean([(s[step]["ldr"], s[step]["se"]) for s in full_per_seed])
            pos, pos_se = seed_mean([toward_memoriser(s[step], m) for s, m in zip(per_seed, mems)])
            full_pos, full_pos_se = seed_mean([toward_memoriser(s[step], m) for s, m in zip(full_per_seed, full_mems)])
            mem_small = mean_sem([m["ldr"] for m in mems])[0]
            mem_full = mean_sem([m["ldr"] for m in full_mems])[0]
            share_small = [_share_at(run, step) for run in runs]
            share_full = [_share_at(run, step) for run in fulls]
            rows.append({
                "language": key, "step": step, "seeds": len(runs), "full seeds": len(fulls),
                f"in-dataset, {SEEDED_SIZE} entries / full": f"{sum(share_small) / len(share_small):.3f} / "
                                                              f"{sum(share_full) / len(share_full):.3f}",
                f"x0-LDR {LEVEL}, {SEEDED_SIZE} entries": f"{raw:.3f} ± {raw_se:.3f}",
                f"x0-LDR {LEVEL}, full": f"{ref:.3f} ± {ref_se:.3f}",
                "raw LDR": _verdict(raw - ref, math.hypot(raw_se, ref_se), "lower when memorising",
                                    "higher when memorising"),
                "memoriser's x0-LDR, small / full": f"{mem_small:.3f} / {mem_full:.3f}",
                f"toward the memoriser, {SEEDED_SIZE} entries": f"{pos:.2f} ± {pos_se:.2f}",
                "toward the memoriser, full": f"{full_pos:.2f} ± {full_pos_se:.2f}",
                "on the memoriser ruler": _verdict(pos - full_pos, math.hypot(pos_se, full_pos_se),
                                                   "farther from its memoriser when memorising",
                                                   "closer to its memoriser when memorising")})
    return rows


def _share_at(run: Run, step: int) -> float:
    return next(e for e in run.evaluations if e["step"] == step)["categories"]["in_dataset"]


def last_verdicts(rows: list[dict], column: str = "on the memoriser ruler") -> dict[str, str]:
    """{language: the verdict in `column` at its last compared step}."""
    return {r["language"]: r[column] for r in rows}


# --- the calibrated coupling score on English (kappa, `ldrkit.probes.kappa`) ---------------------------------------
KAPPA_LEVELS = (TEXT_KAPPA_LEVEL, 0.45)   # the English oracles are separable only near here (rule signal ~1e-3)
KAPPA_SHOWN = ("network", "linear", "memoriser")


def _calibration(run: Run, profile: str) -> dict:
    """`oracle_calibration` of the run's last checkpoint at KAPPA_LEVELS (the cache the stored runs hold)."""
    return oracle_calibration(run, n=CALIBRATION_INPUTS[profile], levels=KAPPA_LEVELS, method="exact")


def kappa_rows(runs: dict[str, Run], profile: str) -> list[dict]:
    """kappa at KAPPA_LEVELS of each English run's last checkpoint beside its linear denoiser and memoriser
    (`kappa_calibration.oracle_calibration`, cached in the run), one row per run and level; "not separable" where
    the rule and the product oracle cannot be told apart on these inputs."""
    rows = []
    for label, run in runs.items():
        cal = _calibration(run, profile)
        for level in map(str, KAPPA_LEVELS):
            row = {"run": label, "step": cal["step"], "sqrt(abar)": level}
            for name in KAPPA_SHOWN:
                r = cal["kappa"][name][level]
                row[name] = "not separable" if r.get("value") is None else f"{r['value']:.3f} ± {r['se']:.3f}"
            rows.append(row)
    return rows


def english_kappa_runs(small: list[Run], full) -> dict[str, Run]:
    """{label: run}: the full English run (or each of its seeds) and each seed of the smallest lexicon."""
    fulls = _as_seeds(full)
    named = ({"full lexicon": fulls[0]} if len(fulls) == 1 else
             {f"full lexicon, seed {run.config['train']['seed']}": run for run in fulls})
    return {**named, **{f"{SEEDED_SIZE} entries, seed {run.config['train']['seed']}": run for run in small}}


def kappa_contrast(small: list[Run], full: Run, profile: str, level: float = KAPPA_LEVELS[0]) -> dict:
    """The network's kappa at `level`: mean over the small-lexicon seeds where separable (± s.e. across seeds, or
    the run's own for one) against the full run's (or its seeds' mean, likewise), and the verdict beyond LDR_SIGMAS
    s.e. of the difference."""
    def value(run):
        r = _calibration(run, profile)["kappa"]["network"][str(level)]
        return None if r.get("value") is None else (r["value"], r["se"])

    values = [v for v in map(value, small) if v is not None]
    refs = [v for v in map(value, _as_seeds(full)) if v is not None]
    if not values or not refs:
        return {"level": level, "seeds": len(values), "verdict": "not separable"}
    mean, se = seed_mean(values)
    ref, ref_se = seed_mean(refs)
    return {"level": level, "seeds": len(values), "full seeds": len(refs), "small": mean, "small_se": se,
            "full": ref, "full_se": ref_se,
            "verdict": _verdict(mean - ref, math.hypot(se, ref_se), "lower when memorising", "higher when memorising")}
