"""Does the coupling score track learning the rule, or only training time? (issue 15's control)

A locality measure that falls (or rises) over training in every run says nothing about the rule: training time
moves it whether or not the network learns. The control reads runs that record kappa at every evaluation
(`eval.coupling_samples`) over several seeds and asks whether, *at the same step*, the seeds that follow the rule
more (or memorise more) also couple their symbols more. Holding the step fixed is done by centring kappa and the
rule measure within each step (the seeds' deviations from that step's mean), then correlating the deviations:
a partial correlation with the step as a categorical covariate, so no shape of the step's effect is assumed.

The second control sets a run that learns its rule beside one that never does (`cross_grammar`): the same network,
steps and evaluations on two grammars, kappa in each grammar's own calibrated units and rule-following rescaled
so that independent symbols score 0 (`above_chance`). A measure of training time rises in both; a measure of the
rule stays flat where nothing is learned and rises with rule-following where something is (`cross_verdict`).

Pure arithmetic on recorded metrics (scipy for the statistics); the runs come from `ldrkit.runs.request`
(`seed_runs`).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ..runs.request import get_run
from ..runs.run import Run
from .phases import chance_breaking

SIGNIFICANCE = 0.05  # a correlation "holds" when its two-sided p-value is below this (its 95% interval excludes 0)
TIME_SHARE = 0.25    # the negative control: a rise of kappa over training in the run that never learns its rule counts
                     # as training time when it is at least this share of the rise in the run that learns (a measure
                     # of training time rises alike in both; a trend of a thousandth of the learner's is not one)


def seed_runs(names: dict[str, str], profile: str, seeds) -> dict[str, dict[int, Run]]:
    """{label: {seed: Run}} for every {label: experiment name} at every seed (reused, restored or trained), the shape
    `grammar_rows` and `kappa_transition.analyse` read."""
    return {label: {s: get_run(name, profile, s, progress=False) for s in seeds} for label, name in names.items()}


def rule_following(categories: dict) -> float:
    """The share of legible samples that obey the rule (1 - hallucination / legible); NaN if none is legible."""
    legible = 1.0 - categories["invalid"]
    return (categories["in_dataset"] + categories["extrapolation"]) / legible if legible > 0 else math.nan


def clearest_level(runs: dict[int, Run]) -> str | None:
    """The level where the rule's coupling is most measurable in these runs: separable in the most evaluations
    after step 0, ties broken by the larger median rule signal (chosen from the oracles' signal, never from the
    network's kappa); None if no level is separable anywhere."""
    count: dict[str, int] = {}
    signals: dict[str, list[float]] = {}
    for run in runs.values():
        for ev in run.evaluations:
            if ev["step"] == 0:
                continue
            for level, result in (ev.get("coupling") or {}).items():
                signals.setdefault(level, []).append(float(result["signal"]))
                count[level] = count.get(level, 0) + (result["value"] is not None)
    ranked = [lv for lv in signals if count[lv] > 0]
    return max(ranked, key=lambda lv: (count[lv], float(np.median(signals[lv])))) if ranked else None


def kappa_rows(runs: dict[int, Run], level: str) -> list[dict]:
    """One row per evaluation of each run (keyed by seed) where kappa at `level` was separable: seed, step, kappa,
    its s.e., the rule-following and in-dataset shares of legible samples."""
    rows = []
    for seed, run in runs.items():
        for ev in run.evaluations:
            result = (ev.get("coupling") or {}).get(level)
            if result is None:
                raise ValueError(f"{run.path} recorded no coupling score at √ᾱ={level} (eval.coupling_samples unset?)")
            if result["value"] is None or ev["step"] == 0:
                continue
            c = ev["categories"]
            legible = 1.0 - c["invalid"]
            rows.append({"seed": seed, "step": int(ev["step"]), "kappa": float(result["value"]),
                         "se": float(result["se"]) if result["se"] is not None else math.nan,
                         "rule": rule_following(c),
                         "in_dataset": c["in_dataset"] / legible if legible > 0 else math.nan})
    return rows


def rule_span(rows: list[dict], rule_key: str = "rule") -> tuple[float, float]:
    """Mean over seeds of the rule measure at the first and at the last evaluated step: how much was learned over
    the runs the control looks at. NaN for both when there are no rows."""
    if not rows:
        return float("nan"), float("nan")
    steps = [r["step"] for r in rows]
    return tuple(float(np.mean([r[rule_key] for r in rows if r["step"] == s])) for s in (min(steps), max(steps)))


def _correlation(x: np.ndarray, y: np.ndarray, dof_lost: int = 0) -> dict:
    """Pearson r with its Fisher-z 95% interval and two-sided p-value (t test); `dof_lost`: covariates partialled
    out (the step means less one), so that the t test has n - dof_lost - 2 degrees of freedom."""
    n = len(x)
    eff = n - dof_lost
    if eff < 4 or np.std(x) == 0 or np.std(y) == 0:
        return {"r": math.nan, "low": math.nan, "high": math.nan, "p": math.nan, "n": n}
    r = float(np.corrcoef(x, y)[0, 1])
    half = 1.96 / math.sqrt(eff - 3)
    z = math.atanh(max(min(r, 1 - 1e-12), -1 + 1e-12))
    t = r * math.sqrt((eff - 2) / max(1e-300, 1 - r * r))
    return {"r": r, "low": math.tanh(z - half), "high": math.tanh(z + half),
            "p": float(2 * stats.t.sf(abs(t), eff - 2)), "n": n}


def within_step(rows: list[dict], key: str) -> np.ndarray:
    """`key` of each row minus the mean of `key` over the rows of the same step."""
    steps = np.array([r["step"] for r in rows])
    values = np.array([r[key] for r in rows], dtype=float)
    out = values.copy()
    for s in np.unique(steps):
        out[steps == s] -= values[steps == s].mean()
    return out


def control(rows: list[dict], rule_key: str = "rule") -> dict:
    """The three correlations of the control: kappa with the rule measure (raw), kappa with the step (training
    time), and kappa with the rule measure at a fixed step (partial, within-step deviations); each {r, low, high,
    p, n}. Steps with a single row carry no within-step information and are left out of the partial one."""
    rows = [r for r in rows if np.isfinite(r[rule_key]) and np.isfinite(r["kappa"])]
    counts = {s: sum(r["step"] == s for r in rows) for s in {r["step"] for r in rows}}
    shared = [r for r in rows if counts[r["step"]] > 1]
    kappa = np.array([r["kappa"] for r in rows])
    return {"raw": _correlation(kappa, np.array([r[rule_key] for r in rows])),
            "step": _correlation(kappa, np.log(np.array([r["step"] for r in rows], dtype=float))),
            "partial": _correlation(within_step(shared, "kappa"), within_step(shared, rule_key),
                                    dof_lost=len({r["step"] for r in shared}) - 1),
            "rule_key": rule_key}


def verdict(result: dict, alpha: float = SIGNIFICANCE) -> str:
    """"tracks the rule": kappa moves with the rule measure at a fixed step (partial p < alpha, r > 0);
    "tracks training time only": it moves with the rule measure or the step, but not at a fixed step;
    "no relation"; "not measured" when the partial correlation could not be computed."""
    raw, step, partial = result["raw"], result["step"], result["partial"]
    if not np.isfinite(partial["r"]):
        return "not measured"
    if partial["p"] < alpha and partial["r"] > 0:
        return "tracks the rule"
    if raw["p"] < alpha or step["p"] < alpha:
        return "tracks training time only"
    return "no relation"


def control_rows(result: dict) -> list[dict]:
    """The chapter's table: one dict per correlation."""
    names = {"raw": f"κ with {result['rule_key']} (all evaluations)", "step": "κ with log(step)",
             "partial": f"κ with {result['rule_key']} at a fixed step"}
    return [{"correlation": names[k], "r": f"{result[k]['r']:.3f}",
             "95% interval": f"[{result[k]['low']:.3f}, {result[k]['high']:.3f}]",
             "p": f"{result[k]['p']:.3g}", "evaluations": result[k]["n"]} for k in ("raw", "step", "partial")]


RULE_AXES = {"rule": ("valid / legible", "rule-following"), "in_dataset": ("in-dataset / legible", "memorisation")}


def _panels(ax_kappa, ax_rule):
    """(None, the axes given), or (a new 9 x 3.4 in figure of two panels, its axes) when none are given."""
    if ax_kappa is not None:
        return None, ax_kappa, ax_rule
    import matplotlib.pyplot as plt

    fig, (ax_kappa, ax_rule) = plt.subplots(1, 2, figsize=(9, 3.4))
    return fig, ax_kappa, ax_rule


def _finish(fig):
    if fig is not None:
        fig.tight_layout()
    return fig


def plot_control(rows: list[dict], level: str | None, ax_kappa=None, ax_rule=None, rule_key: str = "rule"):
    """kappa (± s.e.) per seed over training on `ax_kappa` (the ruler's 0 and 1 drawn), `rule_key` (rule-following
    or the in-dataset share of legible samples) on `ax_rule`; without axes, on a new two-panel figure (returned)."""
    fig, ax_kappa, ax_rule = _panels(ax_kappa, ax_rule)
    _plot_series(rows, lambda r: f"seed {r['seed']}", rule_key, level, ax_kappa, ax_rule)
    ylabel, title = RULE_AXES[rule_key]
    ax_rule.set(ylabel=ylabel, title=title)
    return _finish(fig)


def _plot_series(rows: list[dict], label, rule_key: str, level: str | None, ax_kappa, ax_rule,
                 ruled=("kappa",)) -> None:
    """One series per label(row): kappa ± s.e. on `ax_kappa`, `rule_key` on `ax_rule`; the ruler's 0 and 1 on the
    axes named in `ruled` ("kappa", "rule")."""
    for name in dict.fromkeys(label(r) for r in rows):
        mine = [r for r in rows if label(r) == name]
        steps = [r["step"] for r in mine]
        ax_kappa.errorbar(steps, [r["kappa"] for r in mine], yerr=[r["se"] for r in mine], marker="o", ms=3,
                          capsize=2, label=name)
        ax_rule.plot(steps, [r[rule_key] for r in mine], marker="o", ms=3, label=name)
    for ax in [{"kappa": ax_kappa, "rule": ax_rule}[k] for k in ruled]:
        ax.axhline(0, color="grey", lw=0.8)
        ax.axhline(1, color="grey", lw=0.8, ls="--")
    ax_kappa.set(xlabel="step", ylabel=f"κ at √ᾱ={level}", title="coupling score (0 product, 1 rule)")
    ax_rule.set(xlabel="step")
    if rows:
        ax_kappa.legend(fontsize=8)


# --- the negative control: a run that never learns its rule beside one that does -----------------------------------

def above_chance(rule: float, chance_valid: float) -> float:
    """Rule-following rescaled so that independent symbols (valid with probability `chance_valid`) score 0 and the
    rule 1: (rule - chance) / (1 - chance)."""
    return (rule - chance_valid) / (1.0 - chance_valid)


def grammar_rows(runs_by_grammar: dict[str, dict[int, Run]], level: str) -> list[dict]:
    """`kappa_rows` of each grammar's runs (keyed by seed) with "grammar" and "above chance" (`above_chance` with
    the run's own chance of a valid sequence from independent symbols) added."""
    rows = []
    for grammar, runs in runs_by_grammar.items():
        for seed, run in runs.items():
            chance_valid = 1.0 - chance_breaking(run)
            for row in kappa_rows({seed: run}, level):
                rows.append({**row, "grammar": grammar, "above chance": above_chance(row["rule"], chance_valid)})
    return rows


def trend(rows: list[dict]) -> dict:
    """kappa against log(step) over one grammar's rows ({r, low, high, p, n}), its fitted rise from the first to
    the last step ("rise"), and kappa's mean (and the mean s.e.) at the first and at the last evaluated step."""
    log_step = np.log(np.array([r["step"] for r in rows], dtype=float))
    kappa = np.array([r["kappa"] for r in rows])
    out = _correlation(kappa, log_step)
    # The fitted rise of kappa from the first to the last step (least squares on log(step)).
    out["rise"] = (float(np.polyfit(log_step, kappa, 1)[0] * (log_step.max() - log_step.min()))
                   if len(set(log_step.tolist())) > 1 else math.nan)
    if rows:
        steps = [r["step"] for r in rows]
        for name, step in (("first", min(steps)), ("last", max(steps))):
            at = [r for r in rows if r["step"] == step]
            out[name] = {"step": step, "kappa": float(np.mean([r["kappa"] for r in at])),
                         "se": float(np.mean([r["se"] for r in at])) / math.sqrt(len(at))}
    return out


def cross_grammar(rows: list[dict], never: str, learner: str) -> dict:
    """The negative control: kappa's trend over training in the run that never follows its rule (`never`) and in
    the one that learns (`learner`), the learner's kappa against its rule-following above chance (over all its
    evaluations, and between its seeds at a fixed step), and the partial correlation at a fixed step over both
    grammars pooled (`control` on "above chance")."""
    mine = {g: [r for r in rows if r["grammar"] == g] for g in (never, learner)}
    learner_rows = [r for r in mine[learner] if np.isfinite(r["above chance"])]
    return {"never": never, "learner": learner, "trend": {g: trend(mine[g]) for g in mine},
            "learner_rule": _correlation(np.array([r["kappa"] for r in learner_rows]),
                                         np.array([r["above chance"] for r in learner_rows])),
            "learner_partial": control(learner_rows, rule_key="above chance")["partial"],
            "pooled": control([r for g in mine for r in mine[g]], rule_key="above chance"),
            "rule_span": {g: rule_span(mine[g], "above chance") for g in mine}}


def cross_verdict(result: dict, alpha: float = SIGNIFICANCE, time_share: float = TIME_SHARE) -> str:
    """"tracks training time": kappa rises with log(step) (p < alpha) in the run that never learns its rule, by at
    least `time_share` of its rise in the run that learns; "tracks the rule": it does not, and kappa rises with
    rule-following in the run that learns (p < alpha); "no relation": neither; "not measured" when either
    correlation could not be computed."""
    never, learned = result["trend"][result["never"]], result["learner_rule"]
    if not (np.isfinite(never["r"]) and np.isfinite(learned["r"])):
        return "not measured"
    if never["p"] < alpha and never["r"] > 0 and never["rise"] >= time_share * result["trend"][result["learner"]]["rise"]:
        return "tracks training time"
    if learned["p"] < alpha and learned["r"] > 0:
        return "tracks the rule"
    return "no relation"


def cross_rows(result: dict) -> list[dict]:
    """The chapter's table of the negative control: one row per correlation."""
    def row(name: str, c: dict) -> dict:
        return {"correlation": name, "r": f"{c['r']:.3f}", "95% interval": f"[{c['low']:.3f}, {c['high']:.3f}]",
                "p": f"{c['p']:.3g}", "evaluations": c["n"]}
    never, learner = result["never"], result["learner"]
    return [row(f"{never}: κ with log(step)", result["trend"][never]),
            row(f"{learner}: κ with log(step)", result["trend"][learner]),
            row(f"{learner}: κ with rule-following above chance", result["learner_rule"]),
            row(f"{learner}: the same between seeds at a fixed step", result["learner_partial"]),
            row("both: κ with rule-following above chance at a fixed step", result["pooled"]["partial"])]


def control_values(runs: dict[int, Run], rows: list[dict], result: dict, level: str | None) -> dict:
    """What the prose cites about a seed control (`control` of `kappa_rows` at `level`), by glue name: noised inputs
    per level, seeds, level, verdict, rule-following at the first and last step, the fixed-step interval."""
    first, last = rule_span(rows)
    partial = result["partial"]
    return {"control_inputs": next(iter(runs.values())).config["eval"]["coupling_samples"],
            "control_seeds": ", ".join(map(str, runs)), "control_level": level or "none",
            "control_verdict": verdict(result),
            "control_rule_first": f"{first:.2f}", "control_rule_last": f"{last:.2f}",
            "control_fixed_interval": f"[{partial['low']:.2f}, {partial['high']:.2f}]"}


def cross_values(prefix: str, runs: dict[str, dict[int, Run]], rows: list[dict], result: dict, level: str) -> dict:
    """What the prose cites about a negative control (`cross_grammar` of `grammar_rows` of `runs`), by glue name
    PREFIX_KEY: noised inputs, level, seeds, verdict, separable evaluations, kappa's fitted rise and the last
    rule-following above chance of each run (_never, _learner), the learner's fixed-step correlation (_fixed_r, _p)."""
    seeds = next(iter(runs.values()))
    partial = result["learner_partial"]
    values = {"inputs": next(iter(seeds.values())).config["eval"]["coupling_samples"], "level": level,
              "seeds": ", ".join(map(str, seeds)), "verdict": cross_verdict(result), "evaluations": len(rows),
              "fixed_r": f"{partial['r']:.2f}", "fixed_p": f"{partial['p']:.2g}"}
    for key in ("never", "learner"):
        values[f"rise_{key}"] = f"{result['trend'][result[key]]['rise']:.3g}"
        values[f"rule_last_{key}"] = f"{result['rule_span'][result[key]][1]:.2f}"
    return {f"{prefix}_{key}": value for key, value in values.items()}


REFERENCES = ("memoriser", "linear")  # the exact denoisers placed on each grammar's ruler beside the network
LABEL_MIN = 0.02  # plot_cross labels a reference level only this far from 0


def oracle_references(calibrations: dict[str, dict], level: str, names=REFERENCES) -> dict[str, dict[str, tuple]]:
    """{grammar: {oracle: (kappa, s.e.)}} at `level` from each grammar's `kappa_calibration.oracle_calibration` (the
    same noised inputs for the network and every exact denoiser); oracles not separable there are left out."""
    out = {}
    for grammar, cal in calibrations.items():
        found = {name: cal["kappa"][name].get(level) for name in names}
        out[grammar] = {name: (r["value"], r["se"]) for name, r in found.items() if r and r["value"] is not None}
    return out


def reference_rows(references: dict[str, dict[str, tuple]]) -> list[dict]:
    """The chapter's table of `oracle_references`: one row per grammar, kappa ± s.e. per oracle."""
    return [{"grammar": g, **{name: f"{v:.3f} ± {se:.3f}" for name, (v, se) in refs.items()}}
            for g, refs in references.items()]


REFERENCE_STYLES = {"memoriser": ":", "linear": "-."}  # line styles of the exact references' kappa levels


def reference_line(ax, name: str, value: float, label: str | None = None) -> None:
    """An exact reference denoiser's kappa as a grey horizontal level (memoriser dotted, linear dash-dot)."""
    ax.axhline(value, color="grey", lw=0.9, ls=REFERENCE_STYLES.get(name, ":"), label=label)


def plot_cross(rows: list[dict], level: str | None, ax_kappa=None, ax_rule=None, references: dict | None = None):
    """kappa (± s.e.) and rule-following above chance over training, one series per grammar and seed; with
    `references` (`oracle_references`), each grammar's memoriser and linear denoiser as dotted levels. Without axes,
    on a new two-panel figure (returned)."""
    fig, ax_kappa, ax_rule = _panels(ax_kappa, ax_rule)
    for grammar, refs in (references or {}).items():
        for name, (value, _se) in refs.items():
            reference_line(ax_kappa, name, value)
            if abs(value) < LABEL_MIN:  # on the product's 0 line: drawn, not labelled (the labels would overprint)
                continue
            ax_kappa.annotate(f"{grammar}: {name}", (0.02, value), xycoords=("axes fraction", "data"), fontsize=7,
                              color="grey", va="bottom")
    _plot_series(rows, lambda r: f"{r['grammar']}, seed {r['seed']}", "above chance", level, ax_kappa, ax_rule,
                 ruled=("kappa", "rule"))
    ax_rule.set(ylabel="(valid/legible − chance) / (1 − chance)", title="rule-following above chance")
    return _finish(fig)
