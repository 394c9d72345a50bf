"""Does the sampler change the verdict? A run's last checkpoint sampled again with the paper's sampler.

The book's image evaluations sample with DDIM on 50 steps (cheap); the paper samples with the ancestral
DDPM sampler of its eq. 7 on all T = 1000 steps. `resampled` draws the same number of samples from the last
checkpoint with another sampler (default: the paper's) and counts the categories; it is cached in the run
folder (RUN/resampled.json, kept by the results store), because 1000 network calls per sample take minutes
for a UNet. `sampler_rows` sets both samplers' final counts side by side, pooled over seeds, with Wilson
intervals; `legibility_shift` and `rule_share_stable` are the two verdicts the second-act chapter reads.
"""
from __future__ import annotations

import math

from ..probes.estimates import share
from ..runs.run import Run
from ..systems.categories import CATEGORIES
from .phases import final_counts

PAPER_SAMPLER = {"sampler": "ddpm", "num_steps": None}  # ancestral, eq. 7, every one of the T steps
SECOND_ACT = {"invalid below": 0.3, "in-dataset / legible at least": 0.5}  # issue 14's bar for a memorising DiT


def resampled(run: Run, n: int | None = None, seed: int = 0, sampler: str = PAPER_SAMPLER["sampler"],
              num_steps: int | None = PAPER_SAMPLER["num_steps"]) -> dict:
    """Category counts of n samples (default: the run's evaluation count) of the last checkpoint drawn with
    `sampler` on `num_steps` steps (None: all T); {"step", "n", "sampler", "num_steps", "counts": {category: k}}."""
    ev = run.config["eval"]
    n = int(n or ev["num_samples"])
    if n < 1:
        raise ValueError(f"n must be a positive number of samples, not {n}")
    params = {"n": n, "seed": int(seed), "sampler": sampler, "num_steps": num_steps}

    def compute(model, step: int) -> dict:
        setup = run.setup
        labels = setup.categorize(setup.generate(model, n, seed, num_steps, sampler=sampler,
                                                 batch_size=ev.get("sample_batch")))
        return {"counts": {c: int((labels == c).sum()) for c in CATEGORIES}}

    row = run.cached("resampled", params, [run.steps()[-1]], compute)[0]
    return {"step": row["step"], **params, "counts": row["counts"]}


def evaluation_counts(run: Run) -> dict:
    """The category counts of the run's own last evaluation (its sampler, its sample count)."""
    n = run.config["eval"]["num_samples"]
    return {"n": n, "counts": final_counts(run.final, n)}


def _pooled(records: list[dict]) -> dict:
    counts = {c: sum(r["counts"][c] for r in records) for c in CATEGORIES}
    return {"n": sum(r["n"] for r in records), **counts, "legible": sum(r["n"] - r["counts"]["invalid"] for r in records)}


def sampler_name(sampler: str, num_steps: int | None, T: int = 1000) -> str:
    """E.g. "ancestral DDPM, 1000 steps" or "DDIM, 50 steps" (None: every one of T steps for DDPM, 50 for DDIM)."""
    steps = num_steps or (T if sampler == "ddpm" else 50)
    return f"{'ancestral DDPM' if sampler == 'ddpm' else sampler.upper()}, {steps} steps"


def sampler_rows(groups: dict[str, list[Run]], **resample) -> list[dict]:
    """One row per labelled group of runs (seeds of one experiment), pooled: invalid share, in-dataset and
    hallucinated shares of legible samples, each (share, Wilson low, high), under the runs' evaluation sampler
    and under `resampled(**resample)` (default: the paper's sampler)."""
    rows = []
    for label, runs in groups.items():
        ev, T = runs[0].config["eval"], runs[0].setup.schedule.num_timesteps
        again = [resampled(r, **resample) for r in runs]
        for which, records in ((sampler_name(ev.get("sampler", "ddpm"), ev.get("sample_steps"), T),
                                [evaluation_counts(r) for r in runs]),
                               (sampler_name(again[0]["sampler"], again[0]["num_steps"], T), again)):
            p = _pooled(records)
            rows.append({"model": label, "seeds": len(runs), "sampler": which, "samples": p["n"],
                         "invalid": share(p["invalid"], p["n"]),
                         "in-dataset / legible": share(p["in_dataset"], p["legible"]),
                         "hallucination / legible": share(p["hallucination"], p["legible"])})
    return rows


def _disjoint(a: tuple, b: tuple) -> bool:
    return not any(math.isnan(v) for v in (*a, *b)) and (a[2] < b[1] or b[2] < a[1])


def legibility_shift(pair: list[dict]) -> bool:
    """True when the two samplers' invalid shares (rows of one model) differ beyond both 95% intervals."""
    return _disjoint(pair[0]["invalid"], pair[1]["invalid"])


def rule_share_stable(pair: list[dict]) -> bool:
    """True when the hallucinated share of legible samples agrees between the two samplers (intervals overlap)."""
    a, b = pair[0]["hallucination / legible"], pair[1]["hallucination / legible"]
    return not any(math.isnan(v) for v in (*a, *b)) and not _disjoint(a, b)


def shift_sentence(by_model: dict[str, list[dict]]) -> str:
    """The two verdicts over the models of `pairs`: whose invalid share moved beyond both intervals, and for how
    many the hallucinated share of legible samples agreed within them."""
    shifted = [m for m, pair in by_model.items() if legibility_shift(pair)]
    stable = [m for m, pair in by_model.items() if rule_share_stable(pair)]
    return (f"the invalid share moves beyond both intervals for {len(shifted)} of {len(by_model)} models "
            f"({', '.join(shifted) or 'none'}); the rule-breaking share of legible samples agrees within the "
            f"intervals for {len(stable)} of {len(by_model)}")


def second_act_reached(row: dict, bar: dict = SECOND_ACT) -> bool:
    """Issue 14's bar on one row: invalid below 0.3 and at least half the legible samples training combinations."""
    return row["invalid"][0] < bar["invalid below"] and row["in-dataset / legible"][0] >= bar["in-dataset / legible at least"]


def format_rows(rows: list[dict]) -> str:
    """A plain-text table of `sampler_rows`: shares with their 95% intervals."""
    shown = display_rows(rows)
    return "\n".join([" | ".join(shown[0])] + [" | ".join(str(v) for v in r.values()) for r in shown])


SHARES = ("invalid", "in-dataset / legible", "hallucination / legible")


def _cell(v: tuple) -> str:
    return "n/a" if math.isnan(v[0]) else f"{v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]"


def display_rows(rows: list[dict]) -> list[dict]:
    """`sampler_rows` with each share written as 'share [low, high]' (for the chapter's table)."""
    return [{**{k: r[k] for k in ("model", "seeds", "sampler", "samples")}, **{k: _cell(r[k]) for k in SHARES}}
            for r in rows]


def pairs(rows: list[dict]) -> dict[str, list[dict]]:
    """`sampler_rows` grouped by model: {model: [evaluation sampler's row, resampled row]}."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["model"], []).append(r)
    return out


def bar_sentence(pair: list[dict], model: str) -> str:
    """One model's ending against issue 14's bar, under both samplers."""
    bits = [f"{r['sampler']}: invalid {_cell(r['invalid'])}, in-dataset {_cell(r['in-dataset / legible'])} of legible "
            f"({'meets' if second_act_reached(r) else 'misses'} the bar)" for r in pair]
    return f"{model} ({pair[0]['seeds']} seeds, {pair[0]['samples']} samples pooled): " + "; ".join(bits)
