"""Section 5 of the paper on the hypercube: the tables, verdicts and figures of the chapters
"The hypercube theory" and "Three stairs".

The hypercube part turns `ldrkit.hypercube` (Fourier coefficients, plateau levels, the invariant set
M of Theorem 5.2, the growth rate K(w,b) of Theorem 5.3) into rows for `tables.table` and figures.
The three-stairs part reads a Run of the experiments "three-stairs-d8" / "three-stairs-d16"
(`ldrkit.stairs.run_stairs` wrote it): its loss curve, plateaus, weight masses and the network's
output on each plateau, and says whether the third stair (the escape from the univariate plateau)
was reached.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from .. import hypercube as H
from ..runs import Run
from ..stairs import SMOOTH_WINDOW, smooth, waiting_time  # the window run_stairs reads its plateaus with

# --- verdict thresholds -------------------------------------------------------------------------------
ROUNDING_RATIO = 1e-9     # off-/on-axis mass ratio below which a run started on M is still on M (float64)
MC_AGREEMENT_SE = 4.0     # Monte Carlo K within this many standard errors of the formula: they agree
ASCENT_TOLERANCE = 1e-4   # gradient-ascent maximum of K within this of the formula: they agree
ON_AXIS_MIN = 0.999       # fraction of ||w||^2 on e_1 above which the ascent's maximiser is on the axis
ESCAPED_BELOW = 0.1       # final loss below this fraction of the univariate level: the third stair is reached
PARTLY_BELOW = 0.75       # below this fraction (but not ESCAPED_BELOW): the escape is partial

# Sizes of the theory chapter's computations, by analysis_sizes(profile)["theory_small"].
THEORY_SIZES = {
    True: {"invariance_steps": 150, "k_samples": 1 << 14, "ascent_starts": 8, "ascent_steps": 200,
           "bound_points": 200, "small_d_starts": 16},
    False: {"invariance_steps": 800, "k_samples": 1 << 18, "ascent_starts": 64, "ascent_steps": 400,
            "bound_points": 2000, "small_d_starts": 64},
}
INVARIANCE_OFFSETS = {"on M": 0.0, "1e-3 off M": 1e-3, "1e-2 off M": 1e-2}


def theory_sizes(sizes: dict) -> dict:
    """The theory chapter's step and sample counts for `ldrkit.specs.analysis_sizes(profile)`."""
    return dict(THEORY_SIZES[bool(sizes["theory_small"])])


# --- Fourier view and plateau levels -----------------------------------------------------------------

def fourier_rows(supports: dict[str, np.ndarray]) -> list[dict]:
    """Per named support (uniform on it): its size, the number of non-zero Walsh coefficients of each
    degree, and whether it satisfies Assumption 5.1 (no degree-1 or degree-2 coefficient)."""
    rows = []
    for name, support in supports.items():
        coef = H.fourier_coefficients(support, max_degree=None)
        degrees: dict[int, int] = {}
        for key, value in coef.items():
            if abs(value) > 1e-15:
                degrees[len(key)] = degrees.get(len(key), 0) + 1
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(degrees.items()))
        rows.append({"distribution": name, "support size": len(support),
                     "non-zero coefficients (degree: count)": counts,
                     "Assumption 5.1": H.satisfies_assumption_5_1(support)})
    return rows


def plateau_level_rows(ds=(8,), sqrt_alpha_bars=(0.5, 0.7, 0.8, 0.9, 0.95), n: int = 1 << 17,
                       seed: int = 0) -> list[dict]:
    """The analytic plateau levels (`hypercube.plateau_levels`) of uniform parity, one row per (d, level):
    the losses of zero, the best linear and the best univariate fit against the exact target."""
    rows = []
    for d in ds:
        for sab in sqrt_alpha_bars:
            lv = H.plateau_levels(H.parity_support(d), sab, n=n, seed=seed)
            rows.append({"d": d, "sqrt(abar)": f"{sab:g}", "zero": lv.zero, "best linear": lv.linear,
                         "best univariate": lv.univariate, "optimum": 0.0, "se (zero)": lv.zero_se})
    return rows


# --- Theorem 5.2: the invariant set M ------------------------------------------------------------------

def invariance_runs(d: int = 8, m: int = 64, steps: int = 800, seed: int = 0,
                    offsets: dict[str, float] = INVARIANCE_OFFSETS) -> dict[str, np.ndarray]:
    """`hypercube.invariance_run` started on M and at each relative offset from it: label -> rows
    [step, loss, on_axis, off_axis]."""
    return {label: np.array(H.invariance_run(d=d, m=m, steps=steps, offset=off, seed=seed))
            for label, off in offsets.items()}


def _ratio(history: np.ndarray) -> np.ndarray:
    return history[:, 3] / history[:, 2]


def invariance_rows(runs: dict[str, np.ndarray]) -> list[dict]:
    """Per run: the off/on-axis mass ratio at the start, at the end and its largest value (as text in
    scientific notation, for display), and how much the on-axis mass grew."""
    return [{"start": label, "off/on at start": f"{_ratio(h)[0]:.2e}", "off/on at end": f"{_ratio(h)[-1]:.2e}",
             "largest off/on": f"{_ratio(h).max():.2e}", "on-axis growth": float(h[-1, 2] / h[0, 2])}
            for label, h in runs.items()]


def stays_on_m(history: np.ndarray) -> bool:
    """True when a run's off/on-axis ratio never exceeds ROUNDING_RATIO (it stayed on M)."""
    return bool(_ratio(history).max() < ROUNDING_RATIO)


def drawn_toward_m(history: np.ndarray) -> bool:
    """True when a run started off M ends with a smaller off/on-axis ratio than it started with."""
    ratio = _ratio(history)
    return bool(ratio[-1] < ratio[0])


def invariance_verdict(runs: dict[str, np.ndarray]) -> str:
    """Theorem 5.2 as measured: the run started on M stays there, the others move toward it."""
    on = [h for label, h in runs.items() if h[0, 3] == 0]
    off = [h for label, h in runs.items() if h[0, 3] != 0]
    kept = all(stays_on_m(h) for h in on)
    drawn = all(drawn_toward_m(h) for h in off)
    if kept and drawn:
        return "reproduced: started on M the network stays there, started near M it moves toward M"
    if kept:
        return "partly: the network stays on M, but a run started near M moved away from it"
    return "not reproduced: a run started on M left it beyond rounding error"


def plot_invariance(runs: dict[str, np.ndarray]):
    """Distance to M (off/on-axis ratio) and the training loss of each run; returns the figure."""
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for label, h in runs.items():
        ax[0].semilogy(h[1:, 0], _ratio(h)[1:], label=label)  # step 0 on M is exactly 0
        ax[1].plot(h[:, 0], h[:, 1], label=label)
    ax[0].set(xlabel="step", ylabel="off-axis / on-axis mass", title="distance to M")
    ax[1].set(xlabel="step", ylabel="loss against exact $y_1$", title="loss on each training batch")
    ax[0].legend()
    fig.tight_layout()
    return fig


# --- Theorem 5.3: the growth rate K(w, b) --------------------------------------------------------------

def k_comparison_rows(support: np.ndarray, sqrt_alpha_bars=(0.3, 0.5, 0.7, 0.9), n: int = 1 << 18,
                      seed: int = 0) -> list[dict]:
    """K at one random point of the sphere per noise level, three ways: exact (Stein), Monte Carlo and
    the paper's erf expression (both with standard errors)."""
    rng = np.random.default_rng(seed)
    d = support.shape[1]
    rows = []
    for k, sab in enumerate(sqrt_alpha_bars):
        z = rng.normal(size=d + 1)
        z /= np.linalg.norm(z)
        mc, mc_se = H.k_monte_carlo(z[:d], z[d], sab, support, n=n, seed=k)
        erf, erf_se = H.k_paper_erf(z[:d], z[d], sab, support, n=n, seed=k)
        rows.append({"sqrt(abar)": f"{sab:g}", "exact": H.k_exact(z[:d], z[d], sab, support),
                     "Monte Carlo": mc, "MC se": mc_se, "paper erf": erf, "erf se": erf_se})
    return rows


def k_on_axis(D, sqrt_alpha_bar: float):
    """K at the axis direction (e_1, D)/sqrt(1+D^2): sqrt(1-abar)/2 f(D)."""
    return math.sqrt(1 - sqrt_alpha_bar**2) / 2 * H.f_on_axis(D, sqrt_alpha_bar)


def plot_k_axis(sqrt_alpha_bar: float = 0.9, D: float = 1.0, show: bool = True):
    """The K(w,b) explorer's view: K on the axis against D, the maximiser D*, the bound of Lemma A.5
    and the point at D. With `show` the figure is shown (as an ipywidgets callback needs)."""
    Ds = np.linspace(-3, 3, 601)
    ds = H.d_star(sqrt_alpha_bar)
    bound = math.sqrt(1 - sqrt_alpha_bar**2)
    k_here = float(k_on_axis(D, sqrt_alpha_bar))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(Ds, k_on_axis(Ds, sqrt_alpha_bar), label=r"$K$ on the axis, $(e_1, D)/\sqrt{1+D^2}$")
    ax.axhline(bound, color="grey", ls="--", label=r"bound $\sqrt{1-\bar\alpha}$")
    ax.axvline(ds, color="C2", ls=":", label=f"$D^*$ = {ds:.3f}")
    ax.plot([D], [k_here], "o", color="C3", label=f"K(D={D:.2f}) = {k_here:.4f}")
    ax.set(xlabel="D = b / w_1", ylabel="K", title=rf"$\sqrt{{\bar\alpha}}$ = {sqrt_alpha_bar:.2f}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    if show:
        plt.show()
    return fig


def k_table_rows(table: list[dict]) -> list[dict]:
    """`hypercube.k_table` rows for display, with the maximum as a fraction of the bound."""
    return [{"sqrt(abar)": f"{r['sqrt_alpha_bar']:g}", "D*": r["D_star"], "K_max formula": r["K_max_formula"],
             "K_max Monte Carlo": r["K_max_monte_carlo"], "MC se": r["K_max_monte_carlo_se"],
             "K_max ascent": r["K_max_ascent"], "bound": r["bound"], "K_max / bound": r["K_max_formula"] / r["bound"],
             "on-axis fraction": r["on_axis_fraction"]} for r in table]


def k_table_summary(table: list[dict]) -> dict:
    """The worst disagreements of a k_table: Monte Carlo against the formula (in standard errors),
    ascent against the formula, and the smallest on-axis fraction of the ascent's maximiser."""
    return {"worst_mc_se": max(abs(r["K_max_monte_carlo"] - r["K_max_formula"]) / r["K_max_monte_carlo_se"]
                               for r in table),
            "ascent_gap": max(abs(r["K_max_ascent"] - r["K_max_formula"]) for r in table),
            "min_on_axis": min(r["on_axis_fraction"] for r in table)}


def theorem_5_3_verdict(table: list[dict]) -> str:
    """Whether Monte Carlo and ascent confirm the formula for max K and its on-axis maximiser."""
    s = k_table_summary(table)
    checks = {"Monte Carlo": s["worst_mc_se"] <= MC_AGREEMENT_SE, "ascent": s["ascent_gap"] <= ASCENT_TOLERANCE,
              "on-axis maximiser": s["min_on_axis"] >= ON_AXIS_MIN}
    failed = [name for name, ok in checks.items() if not ok]
    if not failed:
        return "confirmed: Monte Carlo and ascent agree with the formula, and the maximiser lies on the axis"
    return "not confirmed: " + ", ".join(failed) + " disagree with the formula"


def bound_tightness_rows(table: list[dict], d: int = 8, points: int = 2000, seed: int = 0) -> list[dict]:
    """Lemma A.5 on random points of the sphere, per noise level of a k_table: the largest exact |K| as a
    fraction of the bound, the maximum's fraction, and whether every point is within the bound."""
    rng = np.random.default_rng(seed)
    support = H.parity_support(d)
    rows = []
    for r in table:
        sab = r["sqrt_alpha_bar"]
        zs = rng.normal(size=(points, d + 1))
        zs /= np.linalg.norm(zs, axis=1, keepdims=True)
        ks = np.abs([H.k_exact(z[:d], z[d], sab, support) for z in zs])
        rows.append({"sqrt(abar)": f"{sab:g}", "points": points, "max |K| / bound": ks.max() / r["bound"],
                     "K_max / bound": r["K_max_formula"] / r["bound"],
                     "all within bound": bool(np.all(ks <= r["bound"]))})
    return rows


def small_d_ascent_rows(ds=(3, 4), sqrt_alpha_bars=(0.5, 0.9), starts: int = 64, steps: int = 300,
                        seed: int = 0) -> list[dict]:
    """Ascent of the exact K for small d (where Assumption 5.1 alone does not make C, D independent of
    x_0^(i)) against the formula's maximum, with the on-axis fraction of the maximiser."""
    rows = []
    for d in ds:
        for sab in sqrt_alpha_bars:
            a = H.k_ascent(sab, H.parity_support(d), starts=starts, steps=steps, seed=seed)
            rows.append({"d": d, "sqrt(abar)": f"{sab:g}", "ascent max": a["value"], "formula": H.k_max_formula(sab),
                         "on-axis fraction": a["on_axis_fraction"]})
    return rows


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
    """Fit log(waiting steps) against d two ways over the runs that departed after a measurable wait:
    exponential (log w = a + b d) and power law (log w = a + k log d), by least squares on every seed's value.
    A wait no longer than the curve's smoothing window (`resolution`) is not measured and left out. Returns each
    fit's parameters, standard errors, R^2 and its prediction for d = 16, and the runs left out and why."""
    done = [r for r in rows if r["waiting steps"] and r["waiting steps"] > r.get("resolution", 0)]
    d = np.array([r["d"] for r in done], dtype=float)
    y = np.log([r["waiting steps"] for r in done])
    out = {"runs": len(done), "censored": sum(1 for r in rows if not r["waiting steps"]),
           "below_resolution": sum(1 for r in rows if r["waiting steps"] and r not in done),
           "ds": sorted(set(int(v) for v in d))}
    if len(set(d)) < 2:
        return out
    for name, x in (("exponential", d), ("power", np.log(d))):
        fit = stats.linregress(x, y)
        x16 = 16.0 if name == "exponential" else math.log(16.0)
        out[name] = {"intercept": float(fit.intercept), "slope": float(fit.slope), "slope_se": float(fit.stderr),
                     "r2": float(fit.rvalue ** 2), "predicted_d16": float(math.exp(fit.intercept + fit.slope * x16))}
    return out


PAPER_LR = 1e-6  # appendix A.8's step size


def waiting_fit_rows(fit: dict, lr: float) -> list[dict]:
    """The two fits as table rows: slope with standard error, R^2, the predicted waiting at d = 16 in steps of
    this sweep's SGD (step size lr) and in steps of the paper's (PAPER_LR), both the same gradient-flow time."""
    return [{"model": {"exponential": "log w = a + b d", "power": "log w = a + k log d"}[name],
             "slope": fit[name]["slope"], "slope s.e.": fit[name]["slope_se"], "R^2": fit[name]["r2"],
             "predicted steps at d=16": fit[name]["predicted_d16"],
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
    from ..experiments import get_run
    from ..specs import STAIRS_WAIT
    return {(d, s): get_run(f"stairs-wait-d{d}", profile, s, progress=False)
            for d in STAIRS_WAIT["cpu"]["steps"] for s in seeds}


def waiting_lr(profile: str) -> float:
    """The SGD step size of the waiting-time runs of a profile."""
    from ..specs import STAIRS_WAIT
    return STAIRS_WAIT[profile]["lr"]


def tilt_runs(profile: str, seed: int = 0) -> dict[float, Run]:
    """The stairs-tilt-* runs of a profile, keyed by the tilt E[x1 x2]."""
    from ..experiments import get_run
    from ..specs import STAIRS_TILTS
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
