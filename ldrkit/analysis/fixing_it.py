"""Remedies for local generation bias against their baseline: the comparison table, its intervals and the verdicts.

Each arm is measured at the last evaluation of its runs, one per seed: the hallucination share of legible samples
(hallucination / (1 - invalid)), invalid, in-dataset and extrapolation fractions, and the extrapolation share of
valid samples (extrapolation / (in-dataset + extrapolation)), which a model that has learned the rule from a uniform
training split puts near the held-out share of valid sequences (Quarter-digits: 200 / 670 = 0.30) and a memoriser
at 0 (the paper found < 0.5% for every model). Means over seeds with their standard errors; fractions pooled over
seeds (counts added) with Wilson intervals.

An arm is a list of runs, or a list of per-seed final records (`categories.final_record`) computed another way, e.g. the
symbol-conditioned runs resampled with the training sequences as their prior (`resampled_with_training_prior`,
cached in the run folder). The verdicts' thresholds are the constants below.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..denoisers.oracles import build_oracle
from ..denoisers.symbol_conditioned import EmpiricalPrior, SymbolConditioned, token_indices
from ..probes.estimates import mean_sem, wilson
from ..runs.pipeline import coupling_record, symbol_record
from ..runs.request import get_run
from ..runs.run import Run
from ..systems.categories import fractions
from .phases import chance_breaking, final_record
from .quarter_digits import gallery, held_out_share

HALVES = 0.5            # "halves": the remedy's mean hallucination share of legible <= HALVES x the baseline's
INVALID_MAX = 0.2       # ... with mean invalid below this (the remedy must not buy validity with illegibility)
GENERALISES = 0.5       # "generalises": the Wilson lower bound of the extrapolation share of valid samples
                        # exceeds GENERALISES x the held-out share of valid sequences
MEMORISES = 0.05        # "memorises": its Wilson upper bound lies below this (the paper: < 0.005 for every model)
AT_CHANCE = 0.8         # "at chance": the Wilson upper bound of the hallucination share reaches AT_CHANCE x the
                        # share of sequences of independent symbols (the training marginals) that break the rule:
                        # breaking near chance is not excluded, so valid samples may be the chance hits of a local
                        # model and say nothing about extrapolation (the sceptical reading: a model is credited
                        # with extrapolating only once it is shown to follow the rule)

QUARTER = {"baseline": "quarter-digits-unet", "symbols": "quarter-digits-unet-symbols"}
QUARTER_EMA = {"baseline": "quarter-digits-unet-ema", "symbols": "quarter-digits-unet-ema-symbols"}  # weights averaged
PARITY = {"baseline": "parity-mlp-L16", "symbols": "parity-mlp-L16-symbols"}
PARENS = {"baseline": "parity-parens-L16-unet", "symbols": "parity-parens-L16-unet-symbols"}


def heldout_share(run: Run) -> float:
    """The share of valid sequences held out of training (what a rule learner's extrapolation share approaches)."""
    return held_out_share(run.setup)


def resampled_with_training_prior(run: Run, n: int | None = None, seed: int = 0) -> dict:
    """A symbol-conditioned run's last checkpoint with its prior replaced by the training sequences (a memorising
    prior): the same network, a different discrete model. Cached in the run folder ("training-prior.json")."""
    ev = run.config["eval"]
    n = int(n or ev["num_samples"])
    params = {"n": n, "seed": int(seed), "sampler": ev.get("sampler", "ddpm"), "num_steps": ev.get("sample_steps")}

    def compute(model, step: int) -> dict:
        if not isinstance(model, SymbolConditioned):
            raise ValueError(f"{run.path} is not a symbol-conditioned run")
        setup = run.setup
        tokens = token_indices(setup.split.train, tuple(setup.grammar.symbols))
        model.prior = EmpiricalPrior(setup.grammar.length, model.alphabet_size, len(tokens))
        model.prior.fit(tokens)
        samples = setup.generate(model, n, 1_000_003 * seed + step, params["num_steps"], sampler=params["sampler"])
        return {"categories": fractions(setup.categorize(samples)), "n": n,
                "symbols": symbol_record(setup, setup.last_tokens, samples)}

    row = run.cached("training-prior", params, [run.steps()[-1]], compute)[0]
    return {"categories": row["categories"], "n": row["n"], "symbols": row["symbols"], "step": row["step"]}


def load_arms(pair: dict, profile: str, seeds, baseline_seeds=None, label: str = ""
              ) -> tuple[dict[str, list[dict]], dict[str, list[Run]]]:
    """The comparison's arms for a baseline/symbols pair of experiments over seeds (runs reused, restored or trained):
    the baseline (over `baseline_seeds`, default `seeds`), the symbol-conditioned runs with their autoregressive
    prior, and the same networks resampled with the training sequences as their prior. `label` is appended to
    every arm's name. Returns (arms: {label: finals}, runs: {"baseline" / "symbols": [Run per seed]})."""
    seeds_of = {"baseline": seeds if baseline_seeds is None else baseline_seeds, "symbols": seeds}
    runs = {role: [get_run(pair[role], profile, s, progress=False) for s in seeds_of[role]]
            for role in ("baseline", "symbols")}
    arms = {"baseline" + label: [final_record(r) for r in runs["baseline"]],
            "symbols, autoregressive prior" + label: [final_record(r) for r in runs["symbols"]],
            "symbols, training sequences as prior" + label: [resampled_with_training_prior(r) for r in runs["symbols"]]}
    return arms, runs


class Comparison(NamedTuple):
    """One grammar's remedy against its baseline (`compare`)."""

    arms: dict[str, list[dict]]
    runs: dict[str, list[Run]]
    heldout: float
    chance: float
    rows: list[dict]


def compare(pair: dict, profile: str, seeds) -> Comparison:
    """`load_arms` of a baseline/symbols pair and their `comparison` rows, with the held-out share and the chance of
    breaking the rule read from the first symbol-conditioned run."""
    arms, runs = load_arms(pair, profile, seeds)
    heldout, chance = heldout_share(runs["symbols"][0]), chance_breaking(runs["symbols"][0])
    return Comparison(arms, runs, heldout, chance, comparison(arms, heldout, chance))


def last_gallery(run: Run, label: str):
    """`quarter_digits.gallery` of the run's last stored samples."""
    return gallery(run, run.sample_steps()[-1], label)


def _shares(final: dict) -> dict:
    c, n = final["categories"], final["n"]
    legible = 1.0 - c["invalid"]
    valid = c["in_dataset"] + c["extrapolation"]
    return {"hallucination_share": c["hallucination"] / legible if legible > 0 else np.nan,
            "invalid": c["invalid"], "in_dataset": c["in_dataset"], "extrapolation": c["extrapolation"],
            "extrapolation_share": c["extrapolation"] / valid if valid > 0 else np.nan,
            "k_hall": round(c["hallucination"] * n), "k_legible": round(legible * n),
            "k_extra": round(c["extrapolation"] * n), "k_valid": round(valid * n)}


def arm_row(name: str, finals: list[dict]) -> dict:
    """One arm of the comparison: means and standard errors over seeds, pooled Wilson intervals."""
    shares = [_shares(f) for f in finals]
    row = {"arm": name, "seeds": len(finals)}
    for key in ("hallucination_share", "invalid", "in_dataset", "extrapolation", "extrapolation_share"):
        values = [s[key] for s in shares if np.isfinite(s[key])]
        row[key], row[key + "_se"] = mean_sem(values) if values else (np.nan, np.nan)
    for key, (k, n) in {"hallucination_share": ("k_hall", "k_legible"),
                        "extrapolation_share": ("k_extra", "k_valid")}.items():
        kk, nn = sum(s[k] for s in shares), sum(s[n] for s in shares)
        row[key + "_ci"] = wilson(kk, nn) if nn else (np.nan, np.nan)
        row[key + "_counts"] = (kk, nn)
    faithful = [f["symbols"]["faithful"] for f in finals if f.get("symbols")]
    prior_valid = [f["symbols"]["prior_valid"] for f in finals if f.get("symbols")]
    row["faithful"] = float(np.mean(faithful)) if faithful else np.nan
    row["prior_valid"] = float(np.mean(prior_valid)) if prior_valid else np.nan
    return row


def halves(baseline: dict, remedy: dict) -> bool:
    """The issue's bar: the remedy at most halves the baseline's hallucination share of legible samples, invalid < 0.2."""
    return bool(remedy["hallucination_share"] <= HALVES * baseline["hallucination_share"]
                and remedy["invalid"] < INVALID_MAX)


def generalisation(row: dict, heldout: float, chance: float | None = None) -> str:
    """"at chance" (when `chance` is given and the hallucination share sits near it), else "generalises",
    "memorises" or "partly", from the pooled extrapolation share of valid samples."""
    low, high = row["extrapolation_share_ci"]
    if not np.isfinite(low):
        return "no valid samples"
    if chance is not None and row["hallucination_share_ci"][1] >= AT_CHANCE * chance:
        return "at chance"
    if low > GENERALISES * heldout:
        return "generalises"
    if high < MEMORISES:
        return "memorises"
    return "partly"


def comparison(arms: dict[str, list[dict]], heldout: float, chance: float | None = None) -> list[dict]:
    """Rows of every arm (the first is the baseline) with both verdicts (`chance`: see `generalisation`)."""
    names = list(arms)
    rows = [arm_row(name, arms[name]) for name in names]
    for row in rows:
        row["halves_baseline"] = "—" if row is rows[0] else ("yes" if halves(rows[0], row) else "no")
        row["rule"] = generalisation(row, heldout, chance)
    return rows


def _pm(mean: float, se: float) -> str:
    """mean ± s.e.; the mean alone where there is no standard error (one seed)."""
    if not np.isfinite(mean):
        return "—"
    return f"{mean:.3f} ± {se:.3f}" if np.isfinite(se) else f"{mean:.3f}"


def _ci(ci) -> str:
    return "—" if not np.isfinite(ci[0]) else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def display_rows(rows: list[dict]) -> list[dict]:
    """The chapter's table: mean ± s.e. over seeds, pooled Wilson intervals, verdicts (one dict per arm)."""
    return [{
        "arm": r["arm"], "seeds": r["seeds"],
        "hallucination / legible": _pm(r["hallucination_share"], r["hallucination_share_se"]),
        "95% Wilson (pooled)": _ci(r["hallucination_share_ci"]),
        "invalid": _pm(r["invalid"], r["invalid_se"]),
        "in-dataset": _pm(r["in_dataset"], r["in_dataset_se"]),
        "extrapolation": _pm(r["extrapolation"], r["extrapolation_se"]),
        "extrapolation / valid": _ci(r["extrapolation_share_ci"]),
        "prior valid": "—" if not np.isfinite(r["prior_valid"]) else f"{r['prior_valid']:.3f}",
        "faithful": "—" if not np.isfinite(r["faithful"]) else f"{r['faithful']:.3f}",
        "halves baseline": r["halves_baseline"], "rule": r["rule"]} for r in rows]


def locality(runs: dict[str, Run], n: int = 16, seed: int = 0, levels=(0.3, 0.5, 0.7, 0.9)) -> dict:
    """kappa (`ldrkit.probes.kappa`: 0 the product oracle, 1 the rule's) of each run's last network on the same noised
    training inputs, calibrated by the exact oracles of p(x): {label: {level: result}}, cached per run
    ("remedy-coupling.json"). A symbol-conditioned network is bound to each input's own sequence: it denoises
    p(x | s), whose exact denoiser has no cross-region coupling at all, so a kappa near 0 is what it should have.
    """
    out = {}
    for label, run in runs.items():
        params = {"n": int(n), "seed": int(seed), "levels": [float(v) for v in levels]}

        def compute(model, step: int, run=run) -> dict:
            setup = run.setup
            region = setup.renderer.region(run.config["eval"]["ldr_position"])
            return {"kappa": coupling_record(setup, model, build_oracle(setup, "rule"), build_oracle(setup, "product"),
                                             region, params["levels"], n, seed)}

        out[label] = run.cached("remedy-coupling", params, [run.steps()[-1]], compute)[0]["kappa"]
    return out


def locality_rows(kappa: dict) -> list[dict]:
    """kappa ± s.e. per arm (one dict each) and level (keys); "not separable" where the oracles do not differ."""
    def cell(r):
        return "not separable" if r["value"] is None else f"{r['value']:.3f} ± {r['se']:.3f}"
    return [{"network": label, **{f"√ᾱ = {lv}": cell(r) for lv, r in table.items()}} for label, table in kappa.items()]


def _seed_count(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _seeds_unless(row: dict, base: dict) -> str:
    """"; N seed(s)" where an arm has a different number of seeds from the baseline's, else nothing."""
    return "" if row["seeds"] == base["seeds"] else f"; {_seed_count(row['seeds'])}"


def summary(rows: list[dict], heldout: float, grammar: str) -> str:
    """One Markdown paragraph per remedy arm: its hallucination share against the baseline's, the bar, the rule."""
    base = rows[0]
    parts = [f"On {grammar} the baseline breaks the rule in {_pm(base['hallucination_share'], base['hallucination_share_se'])}"
             f" of its legible samples (invalid {base['invalid']:.3f}; {_seed_count(base['seeds'])})."]
    for row in rows[1:]:
        bar = ("halves it with invalid below {:g}".format(INVALID_MAX) if row["halves_baseline"] == "yes"
               else "does not halve it with invalid below {:g}".format(INVALID_MAX))
        low, high = row["extrapolation_share_ci"]
        extra = ("no valid samples to judge extrapolation by" if not np.isfinite(low) else
                 "its valid samples are the chance hits of independent symbols (at chance)" if row["rule"] == "at chance"
                 else f"extrapolation share of valid samples [{low:.3f}, {high:.3f}] against a held-out share of "
                      f"{heldout:.3f}: {row['rule']}")
        parts.append(f"*{row['arm']}*: {_pm(row['hallucination_share'], row['hallucination_share_se'])} "
                     f"(invalid {row['invalid']:.3f}{_seeds_unless(row, base)}), so it {bar}; {extra}.")
    return " ".join(parts)


def prose_values(quarter: Comparison, ema_rows: list[dict], parens_rows: list[dict]) -> dict:
    """What the chapter's prose cites, by glue name: the thresholds, the Quarter-digits held-out share and chance,
    the invalid shares of the symbol-conditioned arms with and without averaging, the averaged baseline's
    hallucination share, and how faithful and valid the parity-parentheses remedy is (rows: baseline, symbols, ...)."""
    ema = {r["arm"]: r for r in ema_rows}
    return {"halves_at": HALVES, "invalid_max": INVALID_MAX, "generalises_at": GENERALISES, "memorises_at": MEMORISES,
            "at_chance": AT_CHANCE,
            "heldout_share": round(quarter.heldout, 3), "chance_quarter": round(quarter.chance, 3),
            "symbols_invalid": f"{quarter.rows[1]['invalid']:.2f}",
            "symbols_ema_invalid": f"{ema['symbols, autoregressive prior (EMA)']['invalid']:.2f}",
            "baseline_ema_share": f"{ema['baseline (EMA)']['hallucination_share']:.2f}",
            "parens_faithful": f"{parens_rows[1]['faithful']:.2f}",
            "parens_prior_valid": f"{parens_rows[1]['prior_valid']:.2f}"}
