"""The chapter "Three stairs" (appendix A.8, Figs. 6 and 22): a Run of "three-stairs-d8" / "three-stairs-d16"
(`ldrkit.runs.pipeline.run_stairs` wrote it) read as its loss curve, plateaus, weight masses and the network's
output on each plateau, whether the third stair (the escape from the univariate plateau) was reached, and the
waiting time on that plateau against d and the tilted-parity runs.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from ..probes.estimates import ABOVE, BELOW, EXACT, censored_line_fit, line_prediction
from ..runs.run import Run
from ..theory.stairs import SMOOTH_WINDOW, smooth, waiting_time  # the window run_stairs reads its plateaus with

ESCAPED_BELOW = 0.1       # final loss below this fraction of the univariate level: the third stair is reached
PARTLY_BELOW = 0.75       # below this fraction (but not ESCAPED_BELOW): the escape is partial


# --- three stairs: readers of a stairs Run -------------------------------------------------------------

def stairs_record(run: Run) -> dict:
    """A three-stairs run's record as arrays: curve [[step, loss]], smooth (running mean), weights
    [[step, on_axis, off_axis]], levels, plateaus, final_loss, sqrt_alpha_bar, d, switch (the step at
    which the first optimiser phase ends) and the spec."""
    m = run.metrics
    curve = np.array(m["loss_curve"], dtype=float)
    return {"curve": curve, "smooth": smooth(curve, SMOOTH_WINDOW), "weights": np.array(m["weights"], dtype=float),
            "levels": m["levels"], "plateaus": m["plateaus"], "final_loss": m["final_loss"],
            "sqrt_alpha_bar": m["sqrt_alpha_bar"], "d": m["d"], "switch": run.config["phases"][0]["steps"],
            "config": run.config, "wall_seconds": m["wall_seconds"]}


def stairs_functions(run: Run) -> dict[str, np.ndarray]:
    """The network's output against x^(1) on fresh samples, saved by the run: x1, target (exact y_1),
    univariate (E[y_1 | x^(1)]), and per snapshot name (a plateau, or "final") s_NAME and step_NAME."""
    path = run.path / "functions.npz"
    if not path.exists():
        raise FileNotFoundError(f"{run.path} keeps no network outputs (functions.npz); rerun the experiment "
                                "with fresh=True to write them")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def recipe_rows(runs: dict[int, Run]) -> list[dict]:
    """Per run: d, width, batch, the optimiser phases and the training wall time."""
    rows = []
    for d, run in runs.items():
        c = run.config
        phases = ", then ".join(f"{p['optimizer']} lr {p['lr']:g}->{p['lr_end']:g} for {p['steps']} steps"
                                for p in c["phases"])
        rows.append({"d": d, "width": c["width"], "batch": c["batch"], "phases": phases,
                     "wall seconds": run.metrics["wall_seconds"]})
    return rows


def plateau_rows(runs: dict[int, Run]) -> list[dict]:
    """Per run and plateau found: its steps, the mean loss there and the analytic level."""
    rows = []
    for d, run in runs.items():
        rec = stairs_record(run)
        for p in rec["plateaus"]:
            rows.append({"d": d, "plateau": p["level"], "first step": p["first_step"], "last step": p["last_step"],
                         "mean loss": p["mean_loss"], "analytic level": rec["levels"][p["level"]]})
    return rows


def final_fraction(run: Run) -> float:
    """The final loss (on a large fresh batch) as a fraction of the univariate level."""
    m = run.metrics
    return m["final_loss"] / m["levels"]["univariate"]


def escape_verdict(run: Run) -> str:
    """Whether a stairs run reached the univariate plateau and how far it escaped below it."""
    if "univariate" not in {p["level"] for p in run.metrics["plateaus"]}:
        return "did not reach the univariate plateau"
    fraction = final_fraction(run)
    if fraction < ESCAPED_BELOW:
        return "escaped: the loss fell close to the optimum"
    if fraction < PARTLY_BELOW:
        return "partly escaped: the loss fell clearly below the univariate level but not to the optimum"
    return "stayed on the univariate plateau"


def escape_rows(runs: dict[int, Run]) -> list[dict]:
    """Per run: the analytic univariate level, the final loss, their ratio and the escape verdict."""
    return [{"d": d, "univariate level": run.metrics["levels"]["univariate"], "final loss": run.metrics["final_loss"],
             "final / univariate": final_fraction(run), "verdict": escape_verdict(run)} for d, run in runs.items()]


def plot_stairs_loss(runs: dict[int, Run]):
    """Loss against the exact target with the analytic levels and the optimiser switch, one panel per run."""
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4), squeeze=False)
    for ax, (d, run) in zip(axes[0], runs.items()):
        rec = stairs_record(run)
        ax.semilogy(rec["curve"][:, 0], rec["curve"][:, 1], lw=0.6, color="C0", alpha=0.5, label="loss (one batch)")
        ax.semilogy(rec["smooth"][:, 0], rec["smooth"][:, 1], color="C0", label="running mean")
        for (name, v), c in zip(rec["levels"].items(), ("k", "C1", "C2")):
            ax.axhline(v, color=c, ls="--", label=f"{name} level {v:.3f}")
        ax.axvline(rec["switch"], color="grey", ls=":", label="SGD -> Adam")
        ax.set(xlabel="step", ylabel=r"$E(s(x)-y_1(x))^2$", title=f"d = {d}, sqrt(abar) = {rec['sqrt_alpha_bar']}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def weight_ratio_rows(runs: dict[int, Run]) -> list[dict]:
    """Per run: on-/off-axis weight ratio at the end of the first (SGD) phase and at the end."""
    rows = []
    for d, run in runs.items():
        rec = stairs_record(run)
        w = rec["weights"]
        k = min(int(np.searchsorted(w[:, 0], rec["switch"])), len(w) - 1)
        rows.append({"d": d, "on/off at the optimiser switch": w[k, 1] / w[k, 2],
                     "on/off at the end": w[-1, 1] / w[-1, 2]})
    return rows


def plot_stairs_weights(runs: dict[int, Run]):
    """On-axis |a w^(1)| and off-axis ||a (w - w^(1) e_1)|| weight over training, one panel per run."""
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 3.5), squeeze=False)
    for ax, (d, run) in zip(axes[0], runs.items()):
        rec = stairs_record(run)
        w = rec["weights"]
        ax.semilogy(w[:, 0], w[:, 1], label=r"$|a w^{(1)}|$")
        ax.semilogy(w[:, 0], w[:, 2], label=r"$\|a(w - w^{(1)}e_1)\|$")
        ax.axvline(rec["switch"], color="grey", ls=":")
        ax.set(xlabel="step", title=f"d = {d}")
        ax.legend()
    fig.tight_layout()
    return fig


def _snapshot_names(fn: dict) -> list[str]:
    return [k[2:] for k in fn if k.startswith("s_")]


def function_rows(runs: dict[int, Run]) -> list[dict]:
    """Per run and snapshot: the step and the network's mean squared distance to the exact target and to
    the univariate target E[y_1 | x^(1)]."""
    rows = []
    for d, run in runs.items():
        fn = stairs_functions(run)
        for name in _snapshot_names(fn):
            s = fn[f"s_{name}"]
            rows.append({"d": d, "snapshot": name, "step": int(fn[f"step_{name}"]),
                         "loss vs exact": float(np.mean((s - fn["target"]) ** 2)),
                         "loss vs univariate": float(np.mean((s - fn["univariate"]) ** 2))})
    return rows


def plot_stairs_functions(runs: dict[int, Run]):
    """Network output against x^(1) at each snapshot (one row of panels per run), over the exact target
    (grey) and E[y_1 | x^(1)]."""
    fns = {d: stairs_functions(run) for d, run in runs.items()}
    cols = max(len(_snapshot_names(fn)) for fn in fns.values())
    fig, axes = plt.subplots(len(fns), cols, figsize=(4 * cols, 3.2 * len(fns)), squeeze=False, sharey=True)
    for row, (d, fn) in zip(axes, fns.items()):
        order = np.argsort(fn["x1"])
        for ax in row[len(_snapshot_names(fn)):]:
            ax.axis("off")
        for ax, name in zip(row, _snapshot_names(fn)):
            ax.scatter(fn["x1"], fn["target"], s=1, color="grey", alpha=0.3, label="exact $y_1$")
            ax.scatter(fn["x1"], fn[f"s_{name}"], s=1, color="C3", label="network")
            ax.plot(fn["x1"][order], fn["univariate"][order], color="C2", lw=1, label=r"$E[y_1|x^{(1)}]$")
            ax.set(xlabel="$x^{(1)}$", title=f"d={d}: {name} (step {int(fn[f'step_{name}'])})")
        row[0].legend(fontsize=7, markerscale=5)
    fig.tight_layout()
    return fig


# --- the waiting time on the univariate plateau against d -------------------------------------------------

def waiting_rows(runs: dict[tuple[int, int], Run]) -> list[dict]:
    """Per (d, seed) run, read from its smoothed loss curve by stairs.waiting_time: arrival on the univariate
    plateau, departure (the waiting steps in between), escape; `censored at` when it never departed (a lower
    bound on its waiting time)."""
    rows = []
    for (d, seed), run in sorted(runs.items()):
        rec = stairs_record(run)
        w = waiting_time(rec["smooth"], rec["levels"])
        rows.append({"d": d, "seed": seed, "arrival": w["arrival"], "departure": w["departure"], "escape": w["escape"],
                     "waiting steps": w["steps"], "censored at": w["censored_at"],
                     "resolution": rec["config"]["record_every"] * SMOOTH_WINDOW,
                     "final / univariate": rec["final_loss"] / rec["levels"]["univariate"],
                     "wall seconds": rec["wall_seconds"]})
    return rows


def waiting_fit(rows: list[dict]) -> dict:
    """Fit log(waiting steps) against d two ways, exponential (log w = a + b d) and power law (log w = a + k log d), to
    every seed's run by maximum likelihood with censoring (`estimates.censored_line_fit`): a run that never departed
    is a lower bound (its `censored at`), a wait no longer than the curve's smoothing window (`resolution`) an upper
    bound; none is dropped. Returns each fit's parameters, standard errors and its prediction for d = 16 with a 95%
    prediction interval, and how many runs were censored each way."""
    x, y, kinds = [], [], []
    for r in rows:
        if r["waiting steps"] and r["waiting steps"] > r.get("resolution", 0):
            value, kind = r["waiting steps"], EXACT
        elif r["waiting steps"]:
            value, kind = r["resolution"], BELOW
        elif r["censored at"]:
            value, kind = r["censored at"], ABOVE
        else:
            continue  # never reached the plateau: no waiting time to bound
        x.append(r["d"])
        y.append(math.log(value))
        kinds.append(kind)
    out = {"runs": kinds.count(EXACT), "censored": kinds.count(ABOVE), "below_resolution": kinds.count(BELOW),
           "ds": sorted({int(d) for d, k in zip(x, kinds) if k == EXACT})}
    for name, transform in (("exponential", lambda d: d), ("power", math.log)):
        fit = censored_line_fit([transform(d) for d in x], y, kinds)
        if fit is None:
            continue
        mean, low, high = line_prediction(fit, transform(16.0))
        out[name] = {"intercept": fit["a"], "slope": fit["b"], "slope_se": float(math.sqrt(fit["cov"][1][1])),
                     "sigma": fit["sigma"], "predicted_d16": float(math.exp(mean)),
                     "predicted_d16_low": float(math.exp(low)), "predicted_d16_high": float(math.exp(high))}
    return out


PAPER_LR = 1e-6  # appendix A.8's step size


def waiting_fit_rows(fit: dict, lr: float) -> list[dict]:
    """The two fits as table rows: slope with standard error, residual spread, the predicted waiting at d = 16 (with its
    95% prediction interval) in steps of
    this sweep's SGD (step size lr) and in steps of the paper's (PAPER_LR), both the same gradient-flow time."""
    return [{"model": {"exponential": "log w = a + b d", "power": "log w = a + k log d"}[name],
             "slope": fit[name]["slope"], "slope s.e.": fit[name]["slope_se"], "residual s.d.": fit[name]["sigma"],
             "predicted steps at d=16": fit[name]["predicted_d16"],
             "95% prediction": f"{fit[name]['predicted_d16_low']:.2g}-{fit[name]['predicted_d16_high']:.2g}",
             "gradient-flow time at d=16": fit[name]["predicted_d16"] * lr,
             "steps at the paper's step size": fit[name]["predicted_d16"] * lr / PAPER_LR}
            for name in ("exponential", "power") if name in fit] or \
        [{"model": f"no fit: measured waits at {len(fit['ds'])} value(s) of d, two are needed"}]


def plot_waiting(rows: list[dict], fit: dict, ax=None):
    """Waiting steps against d (log scale), every seed: waits shorter than the smoothing window as hollow grey
    circles at that upper bound, censored runs as upward triangles at their lower bound, both fits to d = 16."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    done = [r for r in rows if r["waiting steps"] and r["waiting steps"] > r.get("resolution", 0)]
    short = [r for r in rows if r["waiting steps"] and r not in done]
    cens = [r for r in rows if not r["waiting steps"] and r["censored at"]]
    ax.semilogy([r["d"] for r in done], [r["waiting steps"] for r in done], "o", label="departed (one seed each)")
    if short:
        ax.semilogy([r["d"] for r in short], [r["resolution"] for r in short], "o", mfc="none", color="grey",
                    label="departed within the smoothing window (at most)")
    if cens:
        ax.semilogy([r["d"] for r in cens], [r["censored at"] for r in cens], "^", color="C3",
                    label="never escaped (waited at least)")
    grid = np.linspace(min(r["d"] for r in rows), 16, 100)
    for name, style in (("exponential", "--"), ("power", ":")):
        if name in fit:
            f = fit[name]
            x = grid if name == "exponential" else np.log(grid)
            ax.semilogy(grid, np.exp(f["intercept"] + f["slope"] * x), style, label=f"{name} fit")
    ax.set(xlabel="d", ylabel="steps on the univariate plateau")
    ax.legend(fontsize=8)
    return ax.figure


# --- the bias switched off? pairwise dependence (stairs-tilt-*) -------------------------------------------

PARTNER_OVER_REST = 3.0  # mean |a w^(2)| at least this many times the largest untilted coordinate's: reads x_2
READS_REST = 0.2         # the largest untilted coordinate's weight above this fraction of the on-axis one: reads the rest


def tilt_row(run: Run) -> dict:
    """One tilted run at its end: the tilt, its levels, the final loss, the share of the gap between the univariate
    and the pair level that training closed, and how much the weights read the output coordinate, its tilted
    partner and the untilted rest (mean |a_j w_j^(k)|, as fractions of the on-axis one; the rest is the control
    inside the run: coordinates with no pairwise dependence on x_1)."""
    m, c = run.metrics, run.config
    i, j = c["distribution"]["pair"]
    axis = np.array(m["axis_weights"][-1][1:])
    rest = float(np.delete(axis, [i, j]).max() / axis[i])
    partner = float(axis[j] / axis[i])
    uni, pair = m["levels"]["univariate"], m["levels"]["pair"]
    gap = uni - pair
    return {"E[x1 x2]": c["distribution"]["strength"], "univariate level": uni, "pair level": pair,
            "final loss": m["final_loss"], "gap closed": (uni - m["final_loss"]) / gap if gap > m["levels_se"] else math.nan,
            "partner / on-axis": partner, "rest / on-axis": rest, "verdict": tilt_verdict(partner, rest)}


def tilt_verdict(partner: float, rest: float) -> str:
    """Which coordinates the trained network reads, from weight fractions of the on-axis weight."""
    if rest >= READS_REST:
        return "reads the other coordinates too"
    if partner >= PARTNER_OVER_REST * rest:
        return "reads x_1 and its dependent partner x_2 only"
    return "local: reads x_1 only"


def tilt_rows(runs: dict[float, Run]) -> list[dict]:
    return [tilt_row(run) for _, run in sorted(runs.items())]


def plot_tilt(runs: dict[float, Run]):
    """Loss over training of each tilted run as a fraction of its own univariate level, with its pair level."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (lam, run) in enumerate(sorted(runs.items())):
        rec = stairs_record(run)
        uni = rec["levels"]["univariate"]
        ax.semilogy(rec["smooth"][:, 0], rec["smooth"][:, 1] / uni, color=f"C{k}", label=f"E[x1 x2] = {lam:g}")
        ax.axhline(max(rec["levels"]["pair"] / uni, 1e-3), color=f"C{k}", ls=":", lw=1)
    ax.axhline(1.0, color="k", ls="--", lw=1, label="univariate level")
    ax.set(xlabel="step (plain SGD)", ylabel="loss / univariate level", ylim=(1e-2, 10))
    ax.legend(fontsize=8)
    return fig


# --- the stored runs of the two sweeps, and a plain-text table for the command line -------------------------

WAIT_SEEDS = (0, 1, 2)


def waiting_runs(profile: str, seeds=WAIT_SEEDS) -> dict[tuple[int, int], Run]:
    """The finished (or restored) stairs-wait-d* runs of a profile, keyed (d, seed)."""
    from ..runs.request import get_run
    from ..spec.stairs import STAIRS_WAIT
    return {(d, s): get_run(f"stairs-wait-d{d}", profile, s, progress=False)
            for d in STAIRS_WAIT["cpu"]["steps"] for s in seeds}


def waiting_lr(profile: str) -> float:
    """The SGD step size of the waiting-time runs of a profile."""
    from ..spec.stairs import STAIRS_WAIT
    return STAIRS_WAIT[profile]["lr"]


def tilt_runs(profile: str, seed: int = 0) -> dict[float, Run]:
    """The stairs-tilt-* runs of a profile, keyed by the tilt E[x1 x2]."""
    from ..runs.request import get_run
    from ..spec.stairs import STAIRS_TILTS
    return {s: get_run(f"stairs-tilt-{s:g}", profile, seed, progress=False) for s in STAIRS_TILTS}


def format_rows(out: dict) -> str:
    """The command line's text: the runs' rows, then the fit's rows when there are any, as pandas tables."""
    import pandas as pd
    return "\n\n".join(pd.DataFrame(out[key]).to_string(index=False, float_format=lambda v: f"{v:.4g}")
                       for key in ("runs", "fit_rows") if key in out)


def tilt_summary(rows: list[dict]) -> str:
    """One sentence from tilt_rows' verdicts: which tilts made the network read x_2, and whether any read the rest."""
    reads = [r["E[x1 x2]"] for r in rows if r["verdict"] != "local: reads x_1 only"]
    rest = [r["E[x1 x2]"] for r in rows if r["verdict"] == "reads the other coordinates too"]
    local = [r["E[x1 x2]"] for r in rows if r["verdict"] == "local: reads x_1 only"]
    text = (f"Plain SGD stayed local (weights on $e_1$ only) for E[x1 x2] in {{{', '.join(f'{v:g}' for v in local)}}}"
            if local else "No run stayed on the $e_1$ axis")
    text += (f"; it read the dependent partner $x_2$ for E[x1 x2] in {{{', '.join(f'{v:g}' for v in reads)}}}"
             if reads else "; no tilt made it read $x_2$")
    text += (f", and the other coordinates for {{{', '.join(f'{v:g}' for v in rest)}}}." if rest else
             ", and in no run did it read the other coordinates, which carry the rest of the rule.")
    return text
