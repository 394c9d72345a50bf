"""The first act over three seeds: does every seed of the book's first-act models learn the symbols and leave the
rule where independent symbols would?

For each model the evaluation its chapter reports is read in every seed: the last one for the parity models (the
rule at chance at the end of training), the hallucination phase for Dyck and Quarter-digits (`phases.run_phase`: the first evaluation with at
least half the samples legible and the rule at chance, else the first legible one, else the most legible). Its share of legible
samples that break the rule is set against the exact share for independent symbols drawn with the training set's
per-position frequencies (`categories.chance_breaking`): per seed, as the mean over seeds with its standard error
(`estimates.seed_mean`: the seeds' spread or the binomial error, whichever is larger), and pooled over the seeds' legible
samples with a Wilson interval. The verdict (`verdict`) is tested; its thresholds are the constants below.
"""
from __future__ import annotations

import math

from ..probes.estimates import seed_mean, wilson
from ..runs.request import get_run
from ..runs.run import Run
from ..systems.categories import broken_among_legible, legible
from .phases import chance_breaking, run_phase

MODELS = {"parity L=16 UNet": "parity-parens-L16-unet", "parity L=16 DiT": "parity-parens-L16-dit",
          "parity L=16 MLP": "parity-mlp-L16", "Dyck UNet": "dyck-parens-unet", "Dyck DiT": "dyck-parens-dit",
          "Quarter UNet": "quarter-digits-unet", "Quarter DiT": "quarter-digits-dit"}
"""The first-act models of the chapters (label: experiment)."""
PARENS = ("parity L=16 UNet", "parity L=16 DiT", "Dyck UNet", "Dyck DiT")  # each chapter's models
QUARTER = ("Quarter UNet", "Quarter DiT")
MLP = ("parity L=16 MLP",)
AT_THE_END = ("parity-parens-L16-unet", "parity-parens-L16-dit", "parity-mlp-L16")  # read at the last evaluation
THREE_SEEDS = (0, 1, 2)
CPU_SEEDS = {"parity L=16 UNet": THREE_SEEDS, "parity L=16 DiT": THREE_SEEDS, "parity L=16 MLP": THREE_SEEDS,
             "Dyck UNet": THREE_SEEDS, "Dyck DiT": THREE_SEEDS, "Quarter UNet": THREE_SEEDS, "Quarter DiT": THREE_SEEDS}
"""The seeds the results store holds at the cpu profile (a model not listed: seed 0)."""
LEGIBLE = 0.5   # the symbols are learned: at least this share of the samples legible (pooled over seeds)


def seeds(label: str, profile: str, seed: int = 0) -> tuple[int, ...]:
    """The seeds read for a model: smoke only the chapter's `seed` (the run it trains anyway), cpu those stored
    (CPU_SEEDS, else seed 0), paper three."""
    if profile == "smoke":
        return (seed,)
    return THREE_SEEDS if profile == "paper" else CPU_SEEDS.get(label, (0,))


def seed_runs(labels, profile: str, seed: int = 0) -> dict[str, list[Run]]:
    """{label: its run per seed of `seeds`}, restored from the results store, reused, or trained."""
    return {label: [get_run(MODELS[label], profile, s, progress=False) for s in seeds(label, profile, seed)]
            for label in labels}


def read_point(run: Run) -> dict:
    """The evaluation the chapter reports: the last for the parity models, else the hallucination phase."""
    return run.final if run.metrics["experiment"] in AT_THE_END else run_phase(run)["record"]


def seed_record(run: Run) -> dict:
    """One seed: the step read, its legible share and count, the rule-breaking share among them, and the share for
    independent symbols of this seed's training split (the split is drawn with the run's seed)."""
    point, n = read_point(run), run.config["eval"]["num_samples"]
    n_legible = round(legible(point) * n)
    broken = broken_among_legible(point)
    return {"seed": run.metrics["seed"], "step": point["step"], "legible": legible(point), "n": n,
            "n_legible": n_legible, "broken": broken, "k_broken": round(broken * n_legible) if n_legible else 0,
            "se": math.sqrt(broken * (1 - broken) / n_legible) if n_legible else math.nan,
            "chance": chance_breaking(run)}


def verdict(legible_share: float, low: float, high: float, chance: float) -> str:
    """"rule not learned" when the symbols are learned (legible share at least LEGIBLE) and the rule-breaking share
    among legible samples is not below independent symbols' (`chance` at or under the interval's top); "rule partly
    learned" when it is below; "symbols not learned" when fewer than LEGIBLE of the samples are legible."""
    if not legible_share >= LEGIBLE or math.isnan(high):
        return "symbols not learned"
    if high < chance:
        return "rule partly learned (below independent symbols)"
    return "rule not learned (at chance)" if low <= chance else "rule not learned (broken more than chance)"


def seed_verdict(record: dict) -> str:
    """`verdict` of one seed on its own samples and its own split's chance."""
    return verdict(record["legible"], *wilson(record["k_broken"], record["n_legible"]), record["chance"])


def model_row(label: str, runs: list[Run]) -> dict:
    """A model's seeds: per-seed shares, the mean over seeds, the pooled Wilson interval, chance and the verdict."""
    seeds = [seed_record(r) for r in runs]
    verdicts = [seed_verdict(s) for s in seeds]
    chance = sum(s["chance"] for s in seeds) / len(seeds)
    mean, se = seed_mean([(s["broken"], s["se"]) for s in seeds])
    k, n = sum(s["k_broken"] for s in seeds), sum(s["n_legible"] for s in seeds)
    low, high = wilson(k, n)
    legible_pooled = n / sum(s["n"] for s in seeds)
    return {"model": label, "seeds": len(seeds), "read at": "end" if runs[0].metrics["experiment"] in AT_THE_END
            else "phase",
            "steps": "/".join(str(s["step"]) for s in seeds), "legible": legible_pooled,
            "breaks rule, per seed": ", ".join(f"{s['broken']:.2f}" for s in seeds),
            "mean ± s.e.": f"{mean:.3f} ± {se:.3f}", "pooled": k / n if n else math.nan,
            "95% interval": f"[{low:.3f}, {high:.3f}]", "independent symbols": chance,
            "verdict": verdict(legible_pooled, low, high, chance),
            "seeds not learning the rule": sum(v.startswith("rule not learned") for v in verdicts),
            "seeds without the symbols": verdicts.count("symbols not learned"),
            "mean": mean, "se": se, "low": low, "high": high}


def rows(runs: dict[str, list[Run]]) -> list[dict]:
    """`model_row` per model of {label: [its runs, one per seed]}."""
    return [model_row(label, rs) for label, rs in runs.items()]


SHOWN = ("model", "seeds", "read at", "steps", "legible", "breaks rule, per seed", "mean ± s.e.", "pooled",
         "95% interval", "independent symbols", "verdict")


def table_rows(result: list[dict]) -> list[dict]:
    """The chapter's columns of `rows`."""
    return [{k: r[k] for k in SHOWN} for r in result]


def sentence(result: list[dict]) -> str:
    """One sentence for the prose: how many models leave the rule at chance in every seed."""
    whole = [f"{r['model']}, {r['seeds']} seed{'s' if r['seeds'] > 1 else ''}" for r in result
             if r["seeds not learning the rule"] == r["seeds"]]
    return (f"{len(whole)} of {len(result)} models leave the rule unlearned in every seed read"
            + (f" ({'; '.join(whole)})" if whole else ""))
