"""The paper figure index, computed: one row per figure or main claim of the paper, with what the stored
`cpu` runs of seed 0 measured and a verdict.

The page `figure-index` reads the runs restored from the results store (`stored_runs`, which refuses to
train) and only the per-checkpoint analyses their folders cache (`CacheOnly`: a cache miss is reported
as "not computed on this page", never computed). Every verdict calls the chapters' own verdict functions
(`oracles`, `parens`, `quarter`, `text_report`, `theory`) where they exist; the few new ones below have
their thresholds as the constants that follow.

A claim that rests on the LDR is called reproduced only where an exact denoiser of the same data is
measured beside the network and the network is more local than it (`calibrated_ldr_status`): the
eps-LDR is close to 1 for every eps denoiser at high noise, the exact oracles included, so a high value
alone is "measured, not discriminating".
"""
from __future__ import annotations

import math

from ..probes.estimates import seed_mean, wilson
from ..runs.request import existing_run
from ..runs.run import Run
from ..runs.store import find_stored
from ..spec.hashing import spec_hash
from ..spec.parens import KAPPA_CONTROL_LEVEL
from ..spec.registry import get_experiment
from ..spec.selections import (
    DIT_KAPPA,
    SECOND_ACT_KAPPA,
    SWEEPS,
    UNET_KAPPA,
    analysis_sizes,
)
from ..systems.categories import broken_among_legible, in_dataset_among_legible, legible
from . import first_act as F
from . import kappa_control as TC
from . import kappa_transition as TK
from . import oracles as O
from . import parentheses as P
from . import quarter_digits as Q
from . import real_text as T
from . import samplers as S
from . import second_act as M
from . import text_lexicon as TL
from . import three_stairs as TS
from .phases import final_record, rule_breaking_peak
from .verdicts import (
    NOT_ATTEMPTED,
    NOT_COMPUTED,
    NOT_DISCRIMINATING,
    NOT_REPRODUCED,
    OUR_TEST,
    PARTLY,
    REPRODUCED,
    STATUSES,
    combine,
    sign_verdict,
    status_of,
    verdict_text,
)

# --- what the page reads -------------------------------------------------------------------------------
PROFILE, SEED = "cpu", 0  # the stored runs the page reads, whatever profile the book is built with
RUN_NAMES = ("parity-mlp-L16", "parity-mlp-L8", "parity-parens-L16-unet", "parity-parens-L16-dit",
             "parity-parens-L8-unet", "dyck-parens-unet", "dyck-parens-dit", "quarter-digits-unet",
             "quarter-digits-dit", "english-words-unet", "chinese-chars-unet", "three-stairs-d8", "three-stairs-d16",
             *DIT_KAPPA.values(), *UNET_KAPPA.values(), *SECOND_ACT_KAPPA.values())
SWEEP_RUNS = tuple(name for by_size in SWEEPS.values() for name in by_size.values() if name not in RUN_NAMES)
CALIBRATION_RUN = "parity-mlp-L16"  # the parity hypercube MLP: its LDR beside its exact denoisers (parity rows only)
SEEDS = (0, 1, 2)           # the seeds a verdict reads where the store holds them (the page says how many each read)
OWN_LDR_SEED = 0            # the noised inputs of a row's LDR beside its own data's exact denoisers

# --- thresholds of the verdicts defined here ---------------------------------------------------------
ALIGNED_GROWTH = 10.0       # on/off-axis weight ratio at the end of the SGD phase at least this times its initial value ...
ALIGNED_RATIO = 1.0         # ... and above this: the on-axis weight grew much faster (Fig. 6, A.8)
UNIVARIATE_RATIO = 0.1      # on the univariate plateau, loss against E[y1|x1] below this fraction of the loss against y1
RESIDUAL_FLOOR = 0.05       # a memorising model "keeps hallucinations" when their share of legible samples is above this
PAPER_EXTRAPOLATION = 0.005  # the paper's bound on the extrapolation share (section 4.2)
FUZZY_INVALID = 0.9         # a "fuzzy" first phase: at least this share of the first evaluation's samples illegible
SALIENCY_SPREAD = 0.2       # one image's x0-LDR falling by at least this from the hallucination-phase checkpoint to the
                            # last: the saliency map spreads (Figs. 17, 21)
SALIENCY_LEVEL = 0.1        # sqrt(alpha_bar) of the saliency figures
LOW_LEVEL = "0.1"           # the level of the paper's LDR figures (Figs. 1, 5, 19)
PAPER_UNET_OBEYS = 0.206     # the paper's UNet on Quarter-MNIST after 180k iterations: rule-obeying share (section 4.2)
PRODUCT_MAJORITY = 0.5      # the product of marginals is "the" closest exact denoiser when closest at more than this
                            # share of the informative levels (quarter.INFORMATIVE_LEVEL and above)

# --- claims the book does not measure, or that this page does not compute -------------------------------
NOT_ATTEMPTED_REASONS = {
    "Fig. 2": "needs large text-to-image models (StableDiffusion, Midjourney) and their images",
    "Figs. 8-13": "needs StableDiffusion 3.5 and FLUX.1 (large text-to-image models)",
}
NOT_COMPUTED_REASONS = {
    "Thm 5.2": "the invariance of M is measured by small trainings that the chapter hypercube-theory runs when it "
               "is built (theory.invariance_verdict); no stored run holds them",
    "Thm 5.3": "K(w, b) is computed by Monte Carlo and gradient ascent in the chapter hypercube-theory "
               "(theory.theorem_5_3_verdict); no stored run holds them",
}

# --- reading the store -----------------------------------------------------------------------------------
class NotCached(RuntimeError):
    """A per-checkpoint analysis this page would have to compute: it only reads caches."""


class CacheOnly:
    """A Run whose cached per-checkpoint analyses are read and never computed: `cached` raises NotCached
    where the run folder holds no entry for the params and step. Everything else is the Run's."""

    def __init__(self, run: Run):
        self._run = run

    def __getattr__(self, name):
        return getattr(self._run, name)

    def cached(self, name: str, params: dict, steps, compute):
        def refuse(_model, step):
            raise NotCached(f"{self._run.path} caches no {name} for step {step} with {params}")
        return self._run.cached(name, params, steps, refuse)


def stored_run(name: str, profile: str = PROFILE, seed: int = SEED) -> Run:
    """A run restored from the results store (or its finished run folder), never trained: raises
    FileNotFoundError when neither holds a run of the current spec."""
    run = existing_run(name, profile, seed)
    if run is None:
        raise FileNotFoundError(f"the results store holds no {profile} run of {name} (seed {seed}) with the current spec")
    return CacheOnly(run)


def stored_runs(names=RUN_NAMES + SWEEP_RUNS) -> dict[str, Run]:
    """{name: cache-only stored run} for the runs the index reads."""
    return {name: stored_run(name) for name in names}


def row(figure: str, claim: str, chapter: str, measured: str, parts: list[tuple[str, str]]) -> dict:
    """One row of the index table."""
    return {"paper": figure, "claim": claim, "chapter": chapter, "measured (cpu)": measured,
            "verdict": verdict_text(parts), "status": combine(parts)}


def _f(value, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


# --- verdicts defined here ------------------------------------------------------------------------------
def calibrated_ldr_status(result: dict, label: str, output: str, levels=None) -> tuple[str, str]:
    """(status, detail) of "the network's LDR shows a locality bias", read against the exact rule denoiser of the
    same data with `oracles.locality_against_rule` at the discriminating levels only (of `levels`, default all):
    reproduced when the network is more local at all of them, partly at some, not reproduced when it is less local
    at one and more local at none, and "measured, not discriminating" when no level discriminates or it is as local
    everywhere."""
    levels = [lv for lv in O.discriminating_levels(result, output) if levels is None or lv in levels]
    if not levels:
        return NOT_DISCRIMINATING, f"{output}-LDR: the exact denoisers agree at every level"
    local = O.locality_against_rule(result, label, output=output)
    verdicts = [local[lv] for lv in levels]
    detail = f"{output}-LDR against the rule at √ᾱ=" + ", ".join(f"{lv}: {local[lv]}" for lv in levels)
    if all(v == "more local" for v in verdicts):
        return REPRODUCED, detail
    if "more local" in verdicts:
        return PARTLY, detail
    if "less local" in verdicts:
        return NOT_REPRODUCED, detail
    return NOT_DISCRIMINATING, detail


def product_closest_status(closest: dict[str, str]) -> str:
    """Independent generation read from the distances: {level: closest-oracle verdict ("tie" allowed)}.
    Reproduced when the product is closest at more than PRODUCT_MAJORITY of the informative levels
    (`quarter_digits.informative_levels`), partly at some, not reproduced at none."""
    levels = Q.informative_levels(closest)
    share = sum(closest[lv] == "product" for lv in levels) / len(levels) if levels else 0.0
    return REPRODUCED if share > PRODUCT_MAJORITY else PARTLY if share > 0 else NOT_REPRODUCED


def on_axis_status(start_ratio: float, switch_ratio: float) -> str:
    """Figs. 6 and A.8: the on-axis weight grows much faster than the off-axis weight during the SGD phase
    (its on/off ratio grows ALIGNED_GROWTH times or more and ends above ALIGNED_RATIO)."""
    grew = switch_ratio >= ALIGNED_GROWTH * start_ratio and switch_ratio > ALIGNED_RATIO
    return REPRODUCED if grew else NOT_REPRODUCED


def univariate_status(loss_vs_univariate: float, loss_vs_exact: float) -> str:
    """Fig. 23: on the univariate plateau the network computes E[y1 | x1] (its loss against it below
    UNIVARIATE_RATIO times its loss against the exact target)."""
    return REPRODUCED if loss_vs_univariate < UNIVARIATE_RATIO * loss_vs_exact else NOT_REPRODUCED


def extrapolation_status(k: int, n: int) -> str:
    """Section 4.2: extrapolations stay below PAPER_EXTRAPOLATION. Reproduced when the Wilson interval of k/n
    lies below it, not reproduced when it lies above, partly (consistent) when it straddles it."""
    low, high = wilson(k, n)
    return REPRODUCED if high < PAPER_EXTRAPOLATION else NOT_REPRODUCED if low > PAPER_EXTRAPOLATION else PARTLY


def fuzzy_status(first: dict) -> str:
    """Section 6: a fuzzy first phase (at least FUZZY_INVALID of the first evaluation's samples illegible)."""
    return REPRODUCED if first["categories"]["invalid"] >= FUZZY_INVALID else NOT_REPRODUCED


def saliency_spread_status(x0_early: float, x0_late: float) -> str:
    """Figs. 17, 21: the saliency map of one image goes from local to global between the hallucination-phase
    checkpoint and the last (its x0-LDR falls by at least SALIENCY_SPREAD); one image and no exact
    denoiser beside it, so a fall is at most "partly"."""
    return PARTLY if x0_early - x0_late >= SALIENCY_SPREAD else NOT_REPRODUCED


def calibration(runs: dict[str, Run]) -> dict | None:
    """The cached LDR of CALIBRATION_RUN beside its exact denoisers (`oracles.ldr_beside_oracles`, cpu sizes),
    or None when the run folder does not cache it. It calibrates the parity hypercube rows only."""
    try:
        return O.ldr_beside_oracles(runs[CALIBRATION_RUN], analysis_sizes(PROFILE)["ldr_inputs"], SEED)
    except NotCached:
        return None


# --- seeds, the paper's sampler, a row's own oracles ------------------------------------------------------
def stored_seeds(name: str) -> list[int]:
    """The SEEDS the results store holds a run of `name` (current spec) for."""
    return [s for s in SEEDS if find_stored(name, PROFILE, s, spec_hash(get_experiment(name).config(PROFILE, s)))]


def seed_runs(name: str) -> list[Run]:
    """The cache-only stored runs of `name`, one per stored seed."""
    return [stored_run(name, seed=s) for s in stored_seeds(name)]


def paper_final(run: Run) -> tuple[dict, str]:
    """The last checkpoint's categories under the paper's sampler (the cached ancestral DDPM redraw on all T steps,
    `samplers.resampled`), else the run's own last evaluation; with the sampler's name. The record holds "n"."""
    try:
        again = S.resampled(run)
    except NotCached:
        return final_record(run), "DDIM-50 (no ancestral redraw stored)"
    n = again["n"]
    return ({"step": again["step"], "n": n, "categories": {c: k / n for c, k in again["counts"].items()}},
            "ancestral DDPM-1000")


def own_ldr(run: Run, step: int | None = None) -> dict:
    """The run's LDR beside its own data's exact denoisers (`oracles.ldr_beside_own_oracles`, cpu sizes, cached by the
    chapters; NotCached on this page when it is not)."""
    return O.ldr_beside_own_oracles(run, analysis_sizes(PROFILE)["image_ldr_inputs"], OWN_LDR_SEED, step=step)


def own_ldr_part(name: str, label: str, output: str = "x0", levels=None) -> tuple[tuple[str, str], str]:
    """((part, status), measured text) of "the network's LDR is more local than its own data's rule": per stored
    seed `calibrated_ldr_status` against that run's own exact denoisers, combined over the seeds (`combine`);
    NOT_COMPUTED when no seed's folder caches it."""
    part = f"{label}'s {output}-LDR against its data's exact denoisers"
    results = []
    for run in seed_runs(name):
        try:
            results.append(own_ldr(run))
        except NotCached:
            pass
    if not results:
        return (part, NOT_COMPUTED), f"{label}: its LDR beside its own oracles is not cached"
    statuses = [calibrated_ldr_status(r, O.NETWORK, output, levels) for r in results]
    status = combine([(str(k), s) for k, (s, _) in enumerate(statuses)])
    shown = [lv for lv in O.discriminating_levels(results[0], output) if levels is None or lv in levels]
    bits = []
    for lv in shown:
        net = seed_mean([(r[output][O.NETWORK][lv], r[f"{output}_sem"][O.NETWORK][lv]) for r in results])
        refs = ", ".join(f"{w} {_f(results[0][output][w][lv], 3)}" for w in results[0][output] if w != O.NETWORK)
        bits.append(f"√ᾱ={lv}: {_f(net[0], 3)} ± {_f(net[1], 3)} ({refs})")
    text = (f"{label}, {len(results)} seed{'s' if len(results) > 1 else ''}, {output}-LDR beside its own data's exact "
            f"denoisers: " + ("; ".join(bits) if bits else "no level where they differ"))
    return (part, status), text


# --- the rows ------------------------------------------------------------------------------------------
def _last_ldr(run: Run, key: str = "ldr", level: str = LOW_LEVEL) -> float:
    return run.final[key][level]


def fig1(runs, cal) -> dict:
    parts, texts = first_act_parts(("Quarter UNet",))
    ldr_part, ldr_text = own_ldr_part("quarter-digits-unet", "UNet")
    return row("Fig. 1", "Quarter-MNIST: data, x_t, saliency of the top-left quarter, hallucinated x0",
               "quarter-digits", "; ".join(texts + [ldr_text]),
               [("hallucinated x0 (d): " + parts[0][0], parts[0][1]), ("saliency (c): " + ldr_part[0], ldr_part[1])])


def not_attempted(figure: str, claim: str) -> dict:
    return row(figure, claim, "—", NOT_ATTEMPTED_REASONS[figure], [("", NOT_ATTEMPTED)])


def first_act_parts(labels) -> tuple[list[tuple[str, str]], list[str]]:
    """(parts, texts) of the first act in every stored seed (`first_act`): per model, reproduced when every seed
    leaves the rule unlearned, partly when some do, not reproduced when none does."""
    result = F.rows({label: [stored_run(F.MODELS[label], seed=s) for s in F.seeds(label, PROFILE)] for label in labels})
    parts, texts = [], []
    for r in result:
        k, n = r["seeds not learning the rule"], r["seeds"]
        illegible = f", symbols not learned in {r['seeds without the symbols']}" if r["seeds without the symbols"] else ""
        parts.append((f"{r['model']} (read at the {r['read at']}): rule unlearned in {k} of {n} seeds{illegible}",
                      REPRODUCED if k == n else PARTLY if k else NOT_REPRODUCED))
        texts.append(f"{r['model']} over {n} seeds: {_f(r['pooled'])} {r['95% interval']} of legible break the rule "
                     f"(independent symbols {_f(r['independent symbols'])})")
    return parts, texts


def fig3(runs, cal) -> dict:
    parts, bits = first_act_parts(F.PARENS[:2] + F.MLP)  # the rule at chance, in every stored seed
    for name in ("parity-parens-L8-unet", "parity-mlp-L8"):
        final, sampler = paper_final(runs[name])
        share = in_dataset_among_legible(final)
        verdict = P.memorisation_verdict(share, P.independent_in_dataset(runs[name].setup.split.train))
        parts.append((f"{name} memorises", status_of(verdict)))
        bits.append(f"{name}, seed 0 ({sampler}): in-dataset {_f(share)} of legible")
    return row("Fig. 3", "Parity parentheses, L=16 and L=8: symbols before the rule; L=8 memorises",
               "parentheses, parity-mlp", "; ".join(bits), parts)


def fig4(runs, cal) -> dict:
    parts, bits = first_act_parts(F.QUARTER)  # the hallucination phase, in every stored seed
    memorised, texts = dit_memorises()
    return row("Fig. 4", "Quarter-MNIST categories over training, UNet and DiT (DiT memorises)", "quarter-digits",
               "; ".join(bits + texts), parts + [("DiT memorises", memorised)])


def dit_memorises() -> tuple[str, list[str]]:
    """The DiT's escape by memorisation at 470 tuples (Figs. 4, 5): per stored seed, more than half the last
    checkpoint's samples are training tuples under the paper's sampler (`quarter_digits.memorised`)."""
    texts, statuses = [], []
    for run in seed_runs("quarter-digits-dit"):
        final, sampler = paper_final(run)
        statuses.append(REPRODUCED if Q.memorised(final) else NOT_REPRODUCED)
        texts.append(f"DiT seed {run.metrics['seed']} ({sampler}): in-dataset {_f(final['categories']['in_dataset'])}, "
                     f"legible {_f(legible(final))} at step {final['step']}")
    return combine([(str(k), s) for k, s in enumerate(statuses)]), texts


def fig5(runs, cal) -> dict:
    parts, bits = [], []
    for label, name in (("UNet", "quarter-digits-unet"), ("DiT", "quarter-digits-dit")):
        part, text = own_ldr_part(name, label)
        parts.append(part)
        bits.append(text)
    memorised, texts = dit_memorises()
    kappa_part, kappa_bit = memorisation_coupling(runs, TK_DIT)
    return row("Fig. 5", "LDR of the top-left quarter high over training; DiT's falls as it memorises",
               "quarter-digits", "; ".join(bits + texts + [kappa_bit]),
               parts + [("DiT's fall with memorisation: the DiT memorises", memorised), kappa_part])


TK_DIT = "Quarter DiT, a token per digit, n = 32"  # the memorising DiT whose kappa Fig. 5's calibrated part reads
TK_STATUS = {"rose": REPRODUCED, "not discriminating": NOT_DISCRIMINATING}


def memorisation_coupling(runs, label: str) -> tuple[tuple[str, str], str]:
    """Fig. 5's calibrated part: does the memorising DiT take on the rule's coupling (kappa rises) as it memorises
    (`kappa_transition.memorisation_test` on the seeds of its kappa run)? ((part, status), measured text)."""
    try:
        seeds = analysis_sizes(PROFILE)["second_act"]["kappa_seeds"]  # the level is chosen over all of them
        analysis = TK.analyse({label: {s: stored_run(SECOND_ACT_KAPPA[label], seed=s) for s in seeds}}, PROFILE)[label]
    except NotCached:
        return ("κ rises as the DiT memorises", NOT_COMPUTED), "κ: the oracle calibration is not cached"
    if analysis["level"] is None:
        return ("κ rises as the DiT memorises", NOT_DISCRIMINATING), "κ: no separable level"
    test = TK.memorisation_test(analysis["transition"])
    return (("κ rises as the DiT memorises", TK_STATUS.get(test, NOT_REPRODUCED)),
            TK.sentence(f"κ of the {label}", analysis) + f" ({test})")


def fig6(runs, cal) -> dict:
    parts, bits = [], []
    for d in (8, 16):
        run = runs[f"three-stairs-d{d}"]
        w = TS.stairs_record(run)["weights"]
        switch = next(r for r in TS.weight_ratio_rows({d: run}))["on/off at the optimiser switch"]
        parts.append((f"d={d}", on_axis_status(w[0, 1] / w[0, 2], switch)))
        bits.append(f"d={d}: on/off-axis weight {_f(w[0, 1] / w[0, 2])} at step 0, {_f(switch, 1)} at the end of SGD")
    return row("Fig. 6", "Two-layer MLP: the on-axis weight grows much faster than the off-axis", "three-stairs",
               "; ".join(bits), parts)


def _text_parts(runs) -> tuple[list, list]:
    parts, bits = [], []
    for key, name in T.TEXT_RUNS.items():
        phase = T.hallucination_phase(runs[name])
        peak = phase["peak"]
        parts.append((f"{key} {T.THINGS[key]}", status_of(phase["verdict"])))
        if peak:
            bits.append(f"{key}: {_f(broken_among_legible(peak))} of legible samples are {T.THINGS[key]} at step {peak['step']}")
    return parts, bits


def _lexicon_parts(runs) -> tuple[list[tuple[str, str]], list[str]]:
    """Section 6's second act from the smaller lexicons (`text_lexicon`): memorisation reached, and the x0-LDR of a
    memorising model against the full runs (their seeds, `text_lexicon.FULL_SEEDS`) at the same steps, raw and on
    the memoriser ruler."""
    small = {key: [stored_run(f"{base}-lex{TL.SEEDED_SIZE}", seed=s) for s in TL.SEEDS[PROFILE]]
             for key, base in T.TEXT_RUNS.items()}
    full = {key: [stored_run(name, seed=s) for s in TL.FULL_SEEDS[PROFILE][key]] for key, name in T.TEXT_RUNS.items()}
    rows = TL.equal_step_rows(small, full, profile=PROFILE)
    memorised = [key for key, rs in small.items() if all(T.memorised(r.final) for r in rs)]
    raw, ruler = TL.last_verdicts(rows, "raw LDR"), TL.last_verdicts(rows)
    count = lambda verdicts, word: sum(v.startswith(word) for v in verdicts.values())
    status = lambda k: REPRODUCED if k == len(T.TEXT_RUNS) else PARTLY if k else NOT_REPRODUCED
    parts = [(f"memorisation with {TL.SEEDED_SIZE}-entry lexicons", status(len(memorised))),
             ("x0-LDR lower when memorising, same step", status(count(raw, "lower"))),
             ("closer to its memoriser, same step", status(count(ruler, "closer")))]
    bits = [f"{TL.SEEDED_SIZE}-entry lexicons, {len(TL.SEEDS[PROFILE])} seeds, against the full lexicons' seeds: " + ", ".join(
        f"{key} {raw[key]} (raw), {ruler[key]} (memoriser ruler)" for key in raw)]
    return parts, bits


def fig7(runs, cal) -> dict:
    parts, bits = _text_parts(runs)
    en = runs["english-words-unet"]
    indep = T.independence_row(en, T.chance_word(en.setup))
    parts.append(("misspells like independent letters", REPRODUCED if indep["verdict"].startswith("within") else NOT_REPRODUCED))
    bits.append(f"English misspells {_f(indep['model misspells'])} of legible, independent letters {_f(indep['independent letters misspell'])}")
    for key, name in T.TEXT_RUNS.items():
        part, text = own_ldr_part(name, key)
        parts.append(part)
        bits.append(text)
    lexicon, lexicon_bits = _lexicon_parts(runs)
    parts.append(("LDR falls with memorisation: " + lexicon[1][0], lexicon[1][1]))
    return row("Fig. 7", "UNet on English words and Chinese characters: misspellings, invented characters, high LDR",
               "real-text", "; ".join(bits + lexicon_bits), parts)


def fig14(runs, cal) -> dict:
    parts, bits = first_act_parts(F.PARENS[:2])  # half break parity, in every stored seed
    for label, name in (("parity L=16 UNet", "parity-parens-L16-unet"), ("parity L=16 DiT", "parity-parens-L16-dit")):
        part, text = own_ldr_part(name, label)
        parts.append((part[0] + " (last checkpoint)", part[1]))
        bits.append(text)
    return row("Fig. 14", "Parity-parenthesis samples: half break parity; LDR high throughout", "parentheses",
               "; ".join(bits), parts)


def _saliency(runs, name: str) -> list[dict] | None:
    try:
        return P.saliency_maps(runs[name], SEED, level=SALIENCY_LEVEL)
    except (NotCached, FileNotFoundError):  # not cached, or the phase checkpoint's weights are not stored
        return None


def fig15(runs, cal) -> dict:
    bits, parts = [], []
    for name in P.GALLERY_RUNS:
        maps = _saliency(runs, name)
        bits.append(f"{name}, one image at √ᾱ={SALIENCY_LEVEL}, last checkpoint: " + (
            f"eps-LDR {_f(maps[-1]['ldr_eps'], 3)}, x0-LDR {_f(maps[-1]['ldr_x0'], 3)}" if maps else "not cached"))
        part, text = own_ldr_part(name, name, levels=[LOW_LEVEL])
        parts.append(part)
        bits.append(text)
    return row("Fig. 15", f"x_t, x0 and saliency of the second parenthesis; LDR {P.PAPER_FIG15_LDR}", "parentheses",
               "; ".join(bits), parts)


def fig16(runs, cal) -> dict:
    parts, bits = [], []
    for name in P.DYCK_RUNS:
        run = runs[name]
        s = P.dyck_summary(run)
        parts.append((f"{name} rule learned after a hallucination phase", status_of(s["verdict"])))
        peak = rule_breaking_peak(run.evaluations, run.config["eval"]["num_samples"])
        near = {when: P.closest_oracle(r["oracle_distance"], P.ORACLE_LEVELS[0])
                for when, r in (("peak", peak), ("end", run.final)) if "oracle_distance" in r}
        bits.append(f"{name}, seed 0: phase at step {s['phase_step']} ({s['verdict']}), rule broken by "
                    f"{_f(s['peak_broken'])} of legible at its peak (step {s['peak_step']}; independent symbols "
                    f"{_f(s['chance'])}), {_f(s['broken_last'])} at the end; recorded x0-LDR at √ᾱ=0.9 "
                    f"{_f(s['ldr_x0_first'])} → {_f(s['ldr_x0_last'])}; closest exact denoiser at "
                    f"√ᾱ={P.ORACLE_LEVELS[0]}: " + ", ".join(f"{k} {v}" for k, v in near.items()))
        fall, fall_text = ldr_fall_status(run, s["phase_step"])
        parts.append((f"{name}: x0-LDR falls from the phase to the end, beside the exact Dyck denoisers", fall))
        bits.append(fall_text)
    details = []
    for network, pair in (("DiTs", DIT_KAPPA), ("UNets", UNET_KAPPA)):
        status, detail = coupling_control_status(runs, pair)
        parts.append((f"calibrated coupling κ rises as the rule is learned, not in a run that never learns ({network})",
                      status))
        details.append(f"{network}: {detail}")
    return row("Fig. 16", "Dyck: a hallucination phase, then the rule is learned as the LDR falls", "parentheses",
               "; ".join(bits + details), parts)


def ldr_fall_status(run: Run, phase_step: int) -> tuple[str, str]:
    """Does the x0-LDR fall from the phase checkpoint to the last (`own_ldr` at both, with the exact denoisers of the
    run's data beside it)? Reproduced when it falls by more than two standard errors at every discriminating level
    of the last checkpoint, partly at some, not reproduced at none; NOT_COMPUTED when either is not cached."""
    try:
        early, late = own_ldr(run, phase_step), own_ldr(run)
    except (NotCached, FileNotFoundError):
        return NOT_COMPUTED, f"{run.metrics['experiment']}: its LDR beside its oracles at the phase (step {phase_step}) is not cached"
    levels = O.discriminating_levels(late, "x0")
    falls = [sign_verdict(late["x0"][O.NETWORK][lv] - early["x0"][O.NETWORK][lv],
                          math.hypot(late["x0_sem"][O.NETWORK][lv], early["x0_sem"][O.NETWORK][lv]), "fell", "rose")
             for lv in levels]
    status = (NOT_DISCRIMINATING if not levels else REPRODUCED if all(f == "fell" for f in falls)
              else PARTLY if "fell" in falls else NOT_REPRODUCED)
    text = f"{run.metrics['experiment']}: x0-LDR phase → end " + ", ".join(
        f"√ᾱ={lv} {_f(early['x0'][O.NETWORK][lv], 3)} → {_f(late['x0'][O.NETWORK][lv], 3)} ({f})" for lv, f in zip(levels, falls))
    return status, text


CONTROL_STATUS = {"tracks the rule": REPRODUCED, "tracks training time": NOT_REPRODUCED,
                  "no relation": NOT_REPRODUCED, "not measured": NOT_COMPUTED}


def coupling_control_status(runs, pair: dict[str, str] = DIT_KAPPA) -> tuple[str, str]:
    """(status, detail) of the negative control (`kappa_control.cross_grammar`, the oracles chapter) on a pair of
    parenthesis runs with kappa at every evaluation ({grammar: name}, the one that never learns first; default the
    DiTs): reproduced when kappa tracks the rule, not training time."""
    (never, learner), level = pair, f"{KAPPA_CONTROL_LEVEL:g}"
    rows = TC.grammar_rows({g: {SEED: runs[name]} for g, name in pair.items()}, level)
    result = TC.cross_grammar(rows, never=never, learner=learner)
    verdict = TC.cross_verdict(result)
    return CONTROL_STATUS[verdict], (f"κ at √ᾱ={level}: {verdict} (fitted rise {never} {result['trend'][never]['rise']:.1e}, "
                                     f"{learner} {result['trend'][learner]['rise']:.2f}; {learner} κ with "
                                     f"rule-following above chance r = {result['learner_rule']['r']:.2f})")


def _spread_row(figure, claim, chapter, early_late: dict[str, tuple], note: str) -> dict:
    parts = [(name, saliency_spread_status(e["x0"], l["x0"]) if e else NOT_COMPUTED) for name, (e, l) in early_late.items()]
    bits = [f"{name}: x0-LDR {_f(e['x0'], 3)} at step {e['step']} → {_f(l['x0'], 3)} at step {l['step']}, eps-LDR "
            f"{_f(e['eps'], 3)} → {_f(l['eps'], 3)}" if e else f"{name}: not cached" for name, (e, l) in early_late.items()]
    return row(figure, claim, chapter, f"one image at √ᾱ={SALIENCY_LEVEL}: " + "; ".join(bits) + note, parts)


def fig17(runs, cal) -> dict:
    maps = _saliency(runs, "dyck-parens-unet")
    pair = ({"step": maps[0]["step"], "x0": maps[0]["ldr_x0"], "eps": maps[0]["ldr_eps"]},
            {"step": maps[-1]["step"], "x0": maps[-1]["ldr_x0"], "eps": maps[-1]["ldr_eps"]}) if maps else (None, None)
    return _spread_row("Fig. 17", "Dyck saliency: local at 20k steps, global at 170k", "parentheses",
                       {"dyck-parens-unet": pair}, " (the paper's late map is at 170k steps)")


def fig18(runs, cal) -> dict:
    parts, texts = first_act_parts(("Quarter DiT",))
    return row("Fig. 18", "DiT's hallucinated Quarter-MNIST samples", "quarter-digits", "; ".join(texts),
               [("DiT hallucinates: " + parts[0][0], parts[0][1])])


def fig19(runs, cal) -> dict:
    parts, bits = [], []
    for label, name in (("UNet", "quarter-digits-unet"), ("DiT", "quarter-digits-dit")):
        part, text = own_ldr_part(name, label, levels=[LOW_LEVEL])
        parts.append(part)
        bits.append(text)
    return row("Fig. 19", f"Saliency of the top-left quarter, UNet and DiT, √ᾱ={LOW_LEVEL}", "quarter-digits",
               "; ".join(bits), parts)


def fig20(runs, cal) -> dict:
    parts, bits = _text_parts(runs)
    en = runs["english-words-unet"]
    examples = T.misspellings(en, T.phase_step(en), limit=4)
    return row("Fig. 20", "Samples trained on English words and Chinese characters", "real-text",
               "; ".join(bits) + "; misspellings such as " + ", ".join(f'"{w}"' for w in examples), parts)


def fig21(runs, cal) -> dict:
    pairs = {}
    for key in ("english",):
        run = runs[T.TEXT_RUNS[key]]
        try:
            heat = T.heat_rows(run, [T.phase_step(run), run.final["step"]], level=SALIENCY_LEVEL, seed=SEED)
            pairs[T.TEXT_RUNS[key]] = (heat[0], heat[-1])
        except NotCached:
            pairs[T.TEXT_RUNS[key]] = (None, None)
    return _spread_row("Fig. 21", "English words: saliency local at 20k steps, global at 200k", "real-text", pairs,
                       " (the paper's late map is at 200k steps)")


def _stairs_bits(runs) -> tuple[list, list]:
    parts, bits = [], []
    for d in (8, 16):
        run = runs[f"three-stairs-d{d}"]
        found = [p["level"] for p in run.metrics["plateaus"]]
        parts.append((f"d={d} plateaus", REPRODUCED if {"linear", "univariate"} <= set(found) else NOT_REPRODUCED))
        parts.append((f"d={d} third stair", status_of(TS.escape_verdict(run))))
        bits.append(f"d={d}: plateaus found {', '.join(found)}; final loss {_f(TS.final_fraction(run))} of the univariate level")
    return parts, bits


def fig22(runs, cal) -> dict:
    parts, bits = _stairs_bits(runs)
    return row("Fig. 22", "Three stairs of the loss: best linear, best univariate, optimum", "three-stairs",
               "; ".join(bits), parts)


def fig23(runs, cal) -> dict:
    rows = [r for r in TS.function_rows({d: runs[f"three-stairs-d{d}"] for d in (8, 16)}) if r["snapshot"] == "univariate"]
    parts = [(f"d={r['d']}", univariate_status(r["loss vs univariate"], r["loss vs exact"])) for r in rows]
    bits = [f"d={r['d']}, step {r['step']}: loss against E[y1|x1] {_f(r['loss vs univariate'], 4)}, against y1 "
            f"{_f(r['loss vs exact'], 3)}" for r in rows]
    return row("Fig. 23", "On the univariate plateau the MLP computes a function of x1 alone", "three-stairs",
               "; ".join(bits), parts)


def claim_phases(runs, cal) -> dict:
    parts, texts = first_act_parts(F.MLP + F.PARENS + F.QUARTER)  # every first-act model, in every stored seed
    text_parts, text_bits = _text_parts(runs)
    return row("§4.2", "Models learn the symbols before the rule and pass through a hallucination phase",
               "parity-mlp, parentheses, quarter-digits, real-text", "; ".join(texts + text_bits), parts + text_parts)


def claim_dit_memorises(runs, cal) -> dict:
    memorised, texts = dit_memorises()
    statuses = []
    for run in seed_runs("quarter-digits-unet"):
        final, sampler = paper_final(run)
        k = round((final["categories"]["in_dataset"] + final["categories"]["extrapolation"]) * final["n"])
        low, high = wilson(k, final["n"])
        statuses.append(REPRODUCED if low <= PAPER_UNET_OBEYS <= high else NOT_REPRODUCED)
        texts.append(f"UNet seed {run.metrics['seed']} ({sampler}): rule-obeying {_f(k / final['n'])} "
                     f"[{_f(low)}, {_f(high)}] at step {final['step']}")
    return row("§4.2", "DiT memorises Quarter-MNIST (~90% rule-obeying); the UNet stays at 20.6%", "quarter-digits",
               "; ".join(texts), [("DiT memorises", memorised),
                                  (f"UNet rule-obeying share consistent with {PAPER_UNET_OBEYS}",
                                   combine([(str(k), s) for k, s in enumerate(statuses)]))])


def sweep_rows(runs) -> list[dict]:
    """The second-act chapter's sweep rows, from the stored runs of seed 0."""
    return [row for label, by_size in SWEEPS.items()
            for row in M.sweep_rows({n: [runs[name]] for n, name in by_size.items()}, label)]


def residual_status(row: dict | None, paper: float = M.PAPER["parity_residual"]) -> str:
    """Parity L=8 keeps hallucinations once it memorises: reproduced when the hallucinated share of legible samples
    at the largest memorising size has an interval that contains the paper's ~25%, partly when it is above
    RESIDUAL_FLOOR but away from 25%, not reproduced when nothing memorised or the residual is ~0."""
    if row is None:
        return NOT_REPRODUCED
    low, high = (float(v) for v in row["hallucination 95%"].strip("[]").split(","))
    if low <= paper <= high:
        return REPRODUCED
    return PARTLY if low > RESIDUAL_FLOOR else NOT_REPRODUCED


def sooner_status(contrast: list[dict], dit: str) -> str:
    """The DiT leaves the hallucination phase sooner than the UNet: reproduced when it memorises first at every
    size where either memorises, partly at some of them, not reproduced at none (or where neither memorises)."""
    decided = [c for c in contrast if c["memorises first"] != "neither memorises"]
    wins = sum(c["memorises first"] == dit for c in decided)
    return REPRODUCED if decided and wins == len(decided) else PARTLY if wins else NOT_REPRODUCED


def claim_second_act(runs, cal) -> dict:
    rows = sweep_rows(runs)
    unet, dit, parens = M.UNET_SWEEP, M.DIT_SWEEP, M.PARENS_SWEEP
    contrast = M.contrast(rows, unet, dit)
    # The paper's claim is the contrast (the DiT escapes by memorising, the UNet stays hallucinating), not that some
    # model memorises at some size: the sizes where each memorises are in the measured text.
    memorising = {label: [r["training size"] for r in rows if r["model"] == label and r["memorises"]] for label in (unet, dit)}
    parts = [("the DiT memorises sooner than the UNet", sooner_status(contrast, dit))]
    parts.append(("parity L=8 keeps ~25% hallucinated once memorised", residual_status(M.residual(rows, parens))))
    bar = "a DiT memorises at n = 32 with the paper's sampler (invalid < 0.3, in-dataset >= 0.5 of legible)"
    try:
        ancestral = S.sampler_rows({"DiT n = 32": [runs[SWEEPS[M.TOKEN_SWEEP][32]]]})[1]
        parts.append((bar, REPRODUCED if S.second_act_reached(ancestral) else NOT_REPRODUCED))
    except NotCached:
        ancestral = None
        parts.append((bar, NOT_COMPUTED))
    onsets = ", ".join(f"n={c['training size']}: UNet {_f(c[unet + ' onset'], 0)}, DiT {_f(c[dit + ' onset'], 0)}"
                       for c in contrast)
    res = M.residual(rows, parens)
    measured = ("memorising sizes: " + "; ".join(f"{label} n = {', '.join(map(str, sizes)) or 'none'}"
                                           for label, sizes in memorising.items())
                + f"; onset steps ({onsets}); parity L=8 "
                + (f"n={res['training size']}: {_f(res['hallucination / legible'])} of legible hallucinated "
                   f"{res['hallucination 95%']}" if res else "memorises at no size"))
    if ancestral:
        measured += (f"; one-token DiT n=32, ancestral DDPM 1000 steps: invalid {_f(ancestral['invalid'][0])}, "
                     f"in-dataset {_f(ancestral['in-dataset / legible'][0])} of legible")
    return row("§4.2", "The second act at small training sets: models memorise, the DiT sooner than the UNet, "
               "parity L=8 keeps ~25% hallucinated", "second-act", measured, parts)


def claim_extrapolation(runs, cal) -> dict:
    parts, bits = [], []
    for label, name in (("UNet", "quarter-digits-unet"), ("DiT", "quarter-digits-dit")):
        finals = [paper_final(run) for run in seed_runs(name)]
        n = sum(f["n"] for f, _ in finals)
        k = sum(round(f["categories"]["extrapolation"] * f["n"]) for f, _ in finals)
        low, high = wilson(k, n)
        parts.append((label, extrapolation_status(k, n)))
        samplers = ", ".join(sorted({s for _, s in finals}))
        bits.append(f"{label}, {len(finals)} seeds pooled ({samplers}): {k}/{n} = {_f(k / n, 4)} "
                    f"(95% {_f(low, 4)}–{_f(high, 4)})")
    return row("§4.2", f"Extrapolation (valid, held out) stays below {PAPER_EXTRAPOLATION:.1%}", "quarter-digits",
               "; ".join(bits), parts)


def claim_ldr_high(runs, cal) -> dict:
    bits, parts = [], []
    for name in ("parity-mlp-L16", "parity-parens-L16-unet", "dyck-parens-unet", "quarter-digits-unet",
                 "english-words-unet"):
        ev = [e for e in runs[name].evaluations if e["step"] > 0]
        bits.append(f"{name} ≥ {_f(min(e['ldr'][LOW_LEVEL] for e in ev), 3)}")
    measured = [f"recorded eps-LDR at √ᾱ={LOW_LEVEL} after step 0: " + ", ".join(bits)]
    if cal is None:
        parts.append(("parity MLP L=16 against its exact denoisers", NOT_COMPUTED))
    else:
        for output in ("eps", "x0"):
            status, detail = calibrated_ldr_status(cal, O.NETWORK, output)
            parts.append((f"parity MLP L=16 {output}-LDR against its exact denoisers", status))
            measured.append(f"parity MLP L=16: {detail}")
    for label, name in (("parity L=16 UNet", "parity-parens-L16-unet"), ("Dyck UNet", "dyck-parens-unet"),
                        ("Quarter UNet", "quarter-digits-unet"), ("English UNet", "english-words-unet")):
        part, text = own_ldr_part(name, label)
        parts.append(part)
        measured.append(text)
    return row("§4.3", "The LDR is high early and stays high while the model hallucinates", "parity-mlp, ldr-probe",
               "; ".join(measured), parts)


def claim_independent(runs, cal) -> dict:
    run = runs["parity-mlp-L16"]
    try:
        paired = O.paired_oracle_distances(run, analysis_sizes(PROFILE)["oracle_inputs"], SEED)
    except NotCached:
        paired = None
    parts, bits = [], []
    if paired:
        closest = {lv: O.closest_oracle(d)[0] for lv, d in paired.items()}
        parts.append(("MLP L=16 closest to the product (paired distances)", product_closest_status(closest)))
        bits.append("MLP L=16, closest exact denoiser (paired, last checkpoint): "
                    + ", ".join(f"√ᾱ={lv} {v}" for lv, v in closest.items()))
    else:
        parts.append(("MLP L=16 closest to the product", NOT_COMPUTED))
    rows = P.oracle_rows({n: runs[n] for n in ("parity-parens-L16-unet", "parity-parens-L16-dit", "dyck-parens-unet")},
                         levels=P.ORACLE_LEVELS[:1])
    bits.append("parentheses, recorded distances at √ᾱ=" + P.ORACLE_LEVELS[0] + ": "
                + ", ".join(f"{r['run']} {r['closest']}" for r in rows))
    if cal is not None:
        status, detail = calibrated_ldr_status(cal, O.NETWORK, "x0")
        parts.append(("the LDR shows it (MLP L=16)", status))
        bits.append(detail)
    return row("§4.3", "A high LDR means the network generates each symbol independently (local generation bias)",
               "parity-mlp, oracles, parentheses", "; ".join(bits), parts)


def claim_outcomes(runs, cal) -> dict:
    bits, parts = [], []
    try:
        split = O.trajectory_ldr_by_outcome(runs["parity-mlp-L16"], analysis_sizes(PROFILE)["trajectories"], SEED)
        verdicts = [r["verdict"] for r in O.outcome_gap_rows(split, "x0")]
        bits.append("parity MLP L=16 (x0-LDR): " + ", ".join(sorted(set(verdicts))))
    except NotCached:
        bits.append("parity MLP L=16: not cached")
    for label, name in (("UNet", "quarter-digits-unet"), ("DiT", "quarter-digits-dit")):
        try:
            traj = Q.cached_trajectory_ldr(runs[name], n=analysis_sizes(PROFILE)["image_trajectories"], seed=SEED)
            bits.append(f"Quarter-MNIST {label}: {Q.outcome_verdict(traj)}")
        except NotCached:
            bits.append(f"Quarter-MNIST {label}: not cached")
    parts.append(("", OUR_TEST))
    return row("§4.3", "Valid and hallucinated samples are denoised the same way", "oracles, quarter-digits",
               "; ".join(bits), parts)


def not_computed(figure: str, claim: str, chapter: str) -> dict:
    return row(figure, claim, chapter, NOT_COMPUTED_REASONS[figure], [("", NOT_COMPUTED)])


def claim_text(runs, cal) -> dict:
    parts, bits = [], []
    for key, name in T.TEXT_RUNS.items():
        run = runs[name]
        ev = run.evaluations
        phase, last = T.hallucination_phase(run), ev[-1]
        parts += [(f"{key} fuzzy", fuzzy_status(ev[0])), (f"{key} hallucination", status_of(phase["verdict"])),
                  (f"{key} overfitting", REPRODUCED if T.memorised(last) else NOT_REPRODUCED)]
        peak = phase["peak"]
        fell = T.ldr_fell(peak["ldr_x0"][T.LEVEL], last["ldr_x0"][T.LEVEL]) if peak else False
        parts.append((f"{key} LDR falls", REPRODUCED if fell else NOT_REPRODUCED))
        bits.append(f"{key}: invalid {_f(ev[0]['categories']['invalid'])} at step 0, {_f(last['categories']['invalid'])} "
                    f"at step {last['step']}; in-dataset {_f(last['categories']['in_dataset'])}")
    lex_parts, lex_bits = _lexicon_parts(runs)
    return row("§6", "Real text: fuzzy, hallucination and overfitting phases; the LDR falls with overfitting", "real-text",
               "; ".join(bits + lex_bits), parts + lex_parts)


def claim_stairs(runs, cal) -> dict:
    parts, bits = _stairs_bits(runs)
    return row("A.8", "Three stairs: best linear, best univariate, optimal approximator", "three-stairs",
               "; ".join(bits), parts)


def claim_aligned(runs, cal) -> dict:
    r = fig6(runs, cal)
    return {**r, "paper": "A.8", "claim": "Weights align with e1 and stay there through the first two stages"}


def claim_rows(runs: dict[str, Run]) -> list[dict]:
    """Every row of the index, in the paper's order: figures, then main claims."""
    cal = calibration(runs)
    rows = [fig1(runs, cal),
            not_attempted("Fig. 2", "Deformed hands and text in StableDiffusion / Midjourney images"),
            fig3(runs, cal), fig4(runs, cal), fig5(runs, cal), fig6(runs, cal), fig7(runs, cal),
            not_attempted("Figs. 8-13", "StableDiffusion 3.5 and FLUX.1 on blackboards, calligraphy, newspapers"),
            fig14(runs, cal), fig15(runs, cal), fig16(runs, cal), fig17(runs, cal), fig18(runs, cal),
            fig19(runs, cal), fig20(runs, cal), fig21(runs, cal), fig22(runs, cal), fig23(runs, cal),
            claim_phases(runs, cal), claim_dit_memorises(runs, cal), claim_second_act(runs, cal),
            claim_extrapolation(runs, cal),
            claim_ldr_high(runs, cal), claim_independent(runs, cal), claim_outcomes(runs, cal),
            not_computed("Thm 5.2", "Sparse (on-axis) weights form an invariant saddle set M", "hypercube-theory"),
            not_computed("Thm 5.3", "Early training grows the on-axis weight fastest; K(w,b) peaks on the axis",
                         "hypercube-theory"),
            claim_text(runs, cal), claim_stairs(runs, cal), claim_aligned(runs, cal)]
    return rows


def status_counts(rows: list[dict]) -> dict[str, int]:
    """How many rows carry each status."""
    return {s: sum(r["status"] == s for r in rows) for s in STATUSES}


def index_table(rows: list[dict]) -> list[dict]:
    """The rows as the page shows them (the status is already the verdict's first words)."""
    return [{k: v for k, v in r.items() if k != "status"} for r in rows]


STATUS_COLORS = {REPRODUCED: "#1b9e77", PARTLY: "#e6ab02", NOT_REPRODUCED: "#d95f02", NOT_DISCRIMINATING: "#7570b3",
                 NOT_COMPUTED: "#bdbdbd", NOT_ATTEMPTED: "#f0f0f0", OUR_TEST: "#66a61e"}


def plot_status(rows: list[dict]):
    """One coloured bar per row of the index (paper figure or claim), coloured by its status; returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(9, 0.28 * len(rows) + 1.2))
    for i, r in enumerate(rows):
        ax.barh(i, 1, color=STATUS_COLORS[r["status"]], edgecolor="grey", lw=0.5)
        ax.text(0.02, i, r["status"], va="center", fontsize=7)
    short = [r["claim"] if len(r["claim"]) <= 58 else r["claim"][:57].rsplit(" ", 1)[0] + " …" for r in rows]
    ax.set_yticks(range(len(rows)), [f"{r['paper']}: {c}" for r, c in zip(rows, short)], fontsize=7)
    ax.invert_yaxis()
    ax.set_xticks([])
    ax.set_xlim(0, 1)
    ax.legend(handles=[Patch(color=c, label=s) for s, c in STATUS_COLORS.items()], fontsize=7,
              loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
