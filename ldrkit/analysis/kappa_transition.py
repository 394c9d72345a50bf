"""Does the coupling score move when a model starts to memorise? (issues 14 and 15)

Reads the headline memorising runs that record kappa at every evaluation (`spec.selections.SECOND_ACT_KAPPA`): per seed,
kappa at the last evaluation before the onset of memorisation (`second_act.before_onset`) and at the end, the
change with its standard error, and where the end sits against the exact memoriser of the same training set on
the same ruler (0 the product of marginals, 1 the rule; `kappa_calibration.oracle_calibration`). The fixed-step
control of the oracles chapter (`kappa_control.control`) asks whether seeds that memorise more at the same step
couple more. Thresholds: `SIGMAS` (`verdicts.sign_verdict`).
"""
from __future__ import annotations

import math

from ..probes.estimates import seed_mean
from ..runs.run import Run
from .kappa_calibration import CALIBRATION_INPUTS, oracle_calibration
from .kappa_control import clearest_level, control, kappa_rows, oracle_references, plot_control, reference_line, verdict
from .second_act import before_onset, onset_step
from .verdicts import sign_verdict

SIGMAS = 2.0          # a change (or a distance from the memoriser) counts beyond this many standard errors
MEMORISER_FLOOR = 0.1  # kappa can test "memorising couples the symbols" only where the exact memoriser's kappa
                       # exceeds this by SIGMAS s.e.; below, a perfect memoriser would read as local too
PARITY = "parity parentheses L=8 UNet, n = 8"  # the model whose seeds also give the parity residual


def _kappa(evaluation: dict, level: str) -> tuple[float, float]:
    result = (evaluation.get("coupling") or {}).get(level) or {}
    if result.get("value") is None:
        return math.nan, math.nan
    return float(result["value"]), float(result["se"])


def seed_rows(runs: dict[int, Run], level: str) -> list[dict]:
    """One row per seed: the onset step (None if memorisation never set in) and kappa ± s.e. at the last evaluation
    before the onset and at the end."""
    rows = []
    for seed, run in runs.items():
        ev = run.evaluations
        (kb, sb), (ke, se) = _kappa(before_onset(ev), level), _kappa(ev[-1], level)
        rows.append({"seed": seed, "onset": onset_step(ev), "kappa before": kb, "se before": sb,
                     "kappa end": ke, "se end": se})
    return rows


def transition(rows: list[dict], memoriser: tuple[float, float] | None = None, sigmas: float = SIGMAS) -> dict:
    """kappa before the onset and at the end (mean ± s.e. over seeds), their change per seed averaged, and the
    verdicts: "rose" / "fell" / "no change (within N s.e.)", and the end against the memoriser's kappa."""
    before = seed_mean([(r["kappa before"], r["se before"]) for r in rows])
    end = seed_mean([(r["kappa end"], r["se end"]) for r in rows])
    change = seed_mean([(r["kappa end"] - r["kappa before"], math.hypot(r["se end"], r["se before"])) for r in rows])
    out = {"before": before, "end": end, "change": change, "memoriser": memoriser,
           "memorised seeds": sum(r["onset"] is not None for r in rows), "seeds": len(rows),
           "verdict": ("not measured" if not math.isfinite(change[0]) else
                       sign_verdict(change[0], change[1], "fell", "rose", "no change", sigmas))}
    if memoriser is not None and math.isfinite(end[0]):
        out["against memoriser"] = sign_verdict(end[0] - memoriser[0], math.hypot(end[1], memoriser[1]),
                                                "below the memoriser's", "above the memoriser's",
                                                "at the memoriser's", sigmas)
    return out


def memorisation_test(t: dict, floor: float = MEMORISER_FLOOR, sigmas: float = SIGMAS) -> str:
    """Does kappa show memorisation coupling the symbols? "not discriminating" when the exact memoriser of the
    training set is not above `floor` by `sigmas` s.e. (or was not measured): then memorising needs none of the
    rule's coupling at this level and kappa cannot tell a memorising network from a local one; else "rose" (the
    network took on coupling as it memorised), or the transition's verdict."""
    mem = t.get("memoriser")
    if mem is None or not mem[0] - sigmas * mem[1] > floor:
        return "not discriminating"
    return t["verdict"]


FIXED_STEP_READINGS = {"tracks the rule": "κ moves with memorisation at a fixed step",
                       "tracks training time only": "κ moves over training but not with memorisation at a fixed step "
                                                    "(training time cannot be ruled out)",
                       "no relation": "κ moves neither with memorisation nor over training",
                       "not measured": "not measured"}


def fixed_step_reading(a: dict) -> str:
    """Is a change of kappa memorisation or training time? The oracles chapter's control (`kappa_control.verdict`)
    on the in-dataset share of legible samples, in words."""
    if a["level"] is None:
        return "not separable"
    return FIXED_STEP_READINGS[verdict(a["control"])]


def references(run: Run, level: str, profile: str) -> dict[str, tuple[float, float]]:
    """kappa ± s.e. of the exact memoriser and the optimal linear denoiser of the run's training set at `level`,
    on the oracle calibration's inputs (cached in the run: coupling_calibration.json); absent where not separable."""
    cal = oracle_calibration(run, n=CALIBRATION_INPUTS[profile], levels=(float(level),), method="exact")
    return oracle_references({"run": cal}, level)["run"]


def analyse(runs_by_model: dict[str, dict[int, Run]], profile: str) -> dict[str, dict]:
    """Per model: its clearest level (chosen from the oracles' signal), the rows of every evaluation
    (`kappa_control.kappa_rows`), the seed rows, the oracle references, the transition and the fixed-step
    control of kappa against the in-dataset share of legible samples."""
    out = {}
    for label, runs in runs_by_model.items():
        level = clearest_level(runs)
        if level is None:
            out[label] = {"level": None}
            continue
        refs = references(runs[min(runs)], level, profile)
        seeds, rows = seed_rows(runs, level), kappa_rows(runs, level)
        out[label] = {"level": level, "rows": rows, "seeds": seeds, "references": refs,
                      "transition": transition(seeds, refs.get("memoriser")),
                      "control": control(rows, rule_key="in_dataset")}
    return out


def _pm(pair) -> str:
    return "n/a" if pair is None or not math.isfinite(pair[0]) else f"{pair[0]:.3f} ± {pair[1]:.3f}"


def summary_rows(analysis: dict[str, dict]) -> list[dict]:
    """The chapter's table: one row per model."""
    rows = []
    for label, a in analysis.items():
        if a["level"] is None:
            rows.append({"model": label, "√ᾱ": "not separable"})
            continue
        t, partial = a["transition"], a["control"]["partial"]
        rows.append({"model": label, "√ᾱ": a["level"], "memorised seeds": f"{t['memorised seeds']} of {t['seeds']}",
                     "κ before onset": _pm(t["before"]), "κ at end": _pm(t["end"]), "change": _pm(t["change"]),
                     "verdict": t["verdict"], "memoriser κ": _pm(t["memoriser"]),
                     "linear κ": _pm(a["references"].get("linear")),
                     "end vs memoriser": t.get("against memoriser", "n/a"),
                     "κ with in-dataset at a fixed step": (f"r = {partial['r']:.2f} [{partial['low']:.2f}, "
                                                          f"{partial['high']:.2f}], p = {partial['p']:.2g}"
                                                          if math.isfinite(partial["r"]) else "not measured")})
    return rows


def sentence(label: str, a: dict) -> str:
    """One model's transition in words."""
    if a["level"] is None:
        return f"{label}: no level where the rule's coupling is separable from the product's"
    t = a["transition"]
    text = (f"{label} (√ᾱ = {a['level']}, {t['memorised seeds']} of {t['seeds']} seeds memorised): κ "
            f"{_pm(t['before'])} before the onset, {_pm(t['end'])} at the end, {t['verdict']}")
    if "against memoriser" in t:
        text += f"; the exact memoriser of its training set {_pm(t['memoriser'])}, the end {t['against memoriser']}"
    return text


def prose_values(analysis: dict[str, dict], runs_by_model: dict[str, dict[int, Run]]) -> tuple[dict, dict]:
    """What the chapter's prose cites about the transitions, by glue name: (values: noised inputs per evaluation,
    the memoriser floor; Markdown: each model's transition, memorisation test and fixed-step reading)."""
    first = next(iter(next(iter(runs_by_model.values())).values()))
    values = {"kappa_inputs": first.config["eval"]["coupling_samples"], "kappa_floor": MEMORISER_FLOOR}
    tests = (f"{label}: {memorisation_test(a['transition'])}" if a["level"] else f"{label}: not separable"
             for label, a in analysis.items())
    markdown = {"kappa_transitions": "; ".join(sentence(label, a) for label, a in analysis.items()),
                "kappa_tests": "; ".join(tests),
                "kappa_controls": "; ".join(f"{label}: {fixed_step_reading(a)}" for label, a in analysis.items())}
    return values, markdown


def plot(analysis: dict[str, dict], axes=None):
    """One row of axes per model: kappa ± s.e. per seed over training with the memoriser (dotted) and the linear
    denoiser (dash-dot) as levels, and the in-dataset share of legible samples. Without axes, on a new figure of
    3.2 in per model (returned)."""
    fig = None
    if axes is None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(analysis), 2, figsize=(10, 3.2 * len(analysis)), constrained_layout=True,
                                 squeeze=False)
    for (label, a), (ax_k, ax_r) in zip(analysis.items(), axes):
        if a["level"] is None:
            ax_k.set_title(f"{label}: not separable")
            continue
        for name, (value, _se) in a["references"].items():
            reference_line(ax_k, name, value, label=f"{name} (exact)")
        plot_control(a["rows"], a["level"], ax_k, ax_r, rule_key="in_dataset")
        ax_k.set_title(f"{label}: κ (0 product, 1 rule)", fontsize=9)
        ax_r.set_title(f"{label}: memorisation", fontsize=9)
        ax_k.legend(fontsize=7)
    return fig
