"""The chapter "The hypercube theory" (section 5): `ldrkit.theory.hypercube` (Fourier coefficients, plateau
levels, the invariant set M of Theorem 5.2, the growth rate K(w,b) of Theorem 5.3) as rows for `tables.table`,
verdicts and figures. The chapter "Three stairs" is `ldrkit.analysis.three_stairs`.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from ..theory import hypercube as H

# --- verdict thresholds -------------------------------------------------------------------------------
ROUNDING_RATIO = 1e-9     # off-/on-axis mass ratio below which a run started on M is still on M (float64)
MC_AGREEMENT_SE = 4.0     # Monte Carlo K within this many standard errors of the formula: they agree
ASCENT_TOLERANCE = 1e-4   # gradient-ascent maximum of K within this of the formula: they agree
ON_AXIS_MIN = 0.999       # fraction of ||w||^2 on e_1 above which the ascent's maximiser is on the axis

# Sizes of the theory chapter's computations, by analysis_sizes(profile)["theory_small"].
THEORY_SIZES = {
    True: {"invariance_steps": 150, "k_samples": 1 << 14, "ascent_starts": 8, "ascent_steps": 200,
           "bound_points": 200, "small_d_starts": 16},
    False: {"invariance_steps": 800, "k_samples": 1 << 18, "ascent_starts": 64, "ascent_steps": 400,
            "bound_points": 2000, "small_d_starts": 64},
}
INVARIANCE_OFFSETS = {"on M": 0.0, "1e-3 off M": 1e-3, "1e-2 off M": 1e-2}


def theory_sizes(sizes: dict) -> dict:
    """The theory chapter's step and sample counts for `ldrkit.spec.selections.analysis_sizes(profile)`."""
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
