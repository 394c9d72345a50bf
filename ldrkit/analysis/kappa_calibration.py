"""The coupling score kappa (`ldrkit.probes.kappa`) of a run's network beside its exact oracles, cached in the run.

kappa places a denoiser's cross-region coupling (the Jacobian block from the rest of the signal into the run's
`eval.ldr_position` cell) on the ruler whose 0 is the product-of-marginals oracle and whose 1 is the rule oracle,
on the same noised training inputs. Unlike the LDR it is the same for the eps and the x0 output.

- `coupling_over_training`: the network's and the memoriser's kappa per level for every checkpoint (cached in
  RUN/coupling_over_training.json);
- `oracle_calibration`: kappa of the rule (1), the product (0), the memoriser, the optimal linear denoiser of
  the training data and the network at one checkpoint (cached in RUN/coupling_calibration.json), with
  `calibrated` stating that the rule and the product came out at 1 and 0 within `CALIBRATION_TOL`;
- `format_calibration_table`: the plain-text table the CLI prints; `calibration_rows`: the same numbers as rows
  (one per level) for `ldrkit.analysis.tables.table`; `plot_calibration`: kappa +- s.e. per level on the ruler;
- `coupling_verdict`: which end of the ruler a denoiser is closer to at every separable level, and the most of the
  rule's coupling it can carry there (kappa + `VERDICT_SE` s.e.); thresholds `VERDICT_MIDPOINT`, `VERDICT_SE`.
"""
from __future__ import annotations

from os import PathLike

from ..denoisers.oracles import build_oracle
from ..probes import ldr as ldr_probe
from ..probes.kappa import SEPARABLE_MIN_SIGNAL, LinearGaussianDenoiser, coupling_table
from ..runs.run import Run
from ..spec.hashing import LDR_LEVELS

CALIBRATION_TOL = 1e-5  # |kappa(rule) - 1| and |kappa(product)| at most this (float round-off) at separable levels
NETWORK = "network"
CALIBRATION_ORDER = ("rule", "product", "memoriser", "linear", NETWORK)
VERDICT_MIDPOINT = 0.5  # kappa below (above) this, by VERDICT_SE s.e., is "closer to the product (rule)" at a level
VERDICT_SE = 2.0        # standard errors between kappa and the midpoint for a side; kappa + this many s.e. is "at most"
CALIBRATION_INPUTS = {"smoke": 2, "cpu": 16, "paper": 16}  # noised inputs per level of the calibrations the stored
#                                                          runs cache (second act, real text): part of the cache key
PLOT_ORDER = (NETWORK, "memoriser", "linear")  # the denoisers `plot_calibration` places on the ruler by default


def _setup_parts(run: Run):
    setup = run.setup
    region = setup.renderer.region(run.config["eval"]["ldr_position"])
    return setup, region


def _check(method: str, n: int, probes: int) -> None:
    if method not in ldr_probe.METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {ldr_probe.METHODS}")
    if n < 2 or (method == "estimate" and probes < 2):
        raise ValueError(f"kappa needs n >= 2 noised inputs (for its s.e.) and >= 2 probes for the estimator, "
                         f"got n={n}, probes={probes}")


def coupling_over_training(run: Run, n: int = 16, seed: int = 0, levels=LDR_LEVELS, method: str = "exact",
                           probes: int = 32) -> list[dict]:
    """kappa of every checkpoint's network and of the memoriser, per sqrt(alpha_bar) level, on the same inputs.

    One row per checkpoint (and per cached step of a restored run), in step order:
    {"step", "method", "probes", "n", "network": {level: result}, "memoriser": {level: result}}, each result
    as `ldrkit.probes.kappa.coupling` returns it (value None with a reason where the level is not separable).
    The memoriser is the same at every step (same inputs, same probes): it is the fixed control beside the
    network's trend. Cached in RUN/coupling_over_training.json under n, seed, levels, method and probes.
    """
    run = Run(run) if isinstance(run, (str, PathLike)) else run  # a Run or a claims.CacheOnly as it is
    _check(method, n, probes)
    probes = int(probes) if method == "estimate" else None
    setup, region = _setup_parts(run)
    oracles: dict = {}

    def compute(model, _step: int) -> dict:
        if not oracles:
            oracles.update({w: build_oracle(setup, w) for w in ("rule", "product", "memoriser")})
        table = coupling_table({NETWORK: model, "memoriser": oracles["memoriser"]}, oracles["rule"],
                               oracles["product"], setup.schedule, region, setup.train_data, levels, n, seed,
                               method, probes or 32)
        return table

    params = {"n": n, "seed": seed, "levels": list(levels), "method": method, "probes": probes}
    rows = run.cached("coupling_over_training", params, None, compute)
    return [{"step": r["step"], "method": method, "probes": probes, "n": n,
             **{k: v for k, v in r.items() if k != "step"}} for r in rows]


def oracle_calibration(run: Run, n: int = 16, seed: int = 0, levels=LDR_LEVELS, method: str = "exact",
                       probes: int = 32, step: int | None = None) -> dict:
    """kappa of the rule, product, memoriser, linear (Wiener) denoiser and network on the same inputs.

    Returns {"step", "method", "probes", "n", "kappa": {name: {level: result}}, "calibrated": bool}. The rule's 1
    and the product's 0 are computed through the same code as the others, not assumed: `calibrated` is True when
    at every separable level they come out within CALIBRATION_TOL (None: no level is separable). The linear denoiser is
    `LinearGaussianDenoiser(run.setup.train_data, ...)`, the best affine denoiser of the training set: its
    coupling is that of the training covariance only. Cached in RUN/coupling_calibration.json for the
    checkpoint `step` (default the last).
    """
    run = Run(run) if isinstance(run, (str, PathLike)) else run  # a Run or a claims.CacheOnly as it is
    _check(method, n, probes)
    probes = int(probes) if method == "estimate" else None
    setup, region = _setup_parts(run)
    if step is None and not run.steps():
        raise FileNotFoundError(f"no checkpoints in {run.path}")
    step = run.steps()[-1] if step is None else int(step)

    def compute(model, _step: int) -> dict:
        rule, product = build_oracle(setup, "rule"), build_oracle(setup, "product")
        models = {"rule": rule, "product": product, "memoriser": build_oracle(setup, "memoriser"),
                  "linear": LinearGaussianDenoiser(setup.train_data, setup.schedule), NETWORK: model}
        return {"kappa": coupling_table(models, rule, product, setup.schedule, region, setup.train_data, levels, n,
                                        seed, method, probes or 32)}

    params = {"n": n, "seed": seed, "levels": list(levels), "method": method, "probes": probes}
    row = run.cached("coupling_calibration", params, [step], compute)[0]
    return {"step": step, "method": method, "probes": probes, "n": n, "kappa": row["kappa"],
            "calibrated": is_calibrated(row["kappa"])}


def is_calibrated(kappa: dict, tol: float = CALIBRATION_TOL) -> bool | None:
    """True when kappa(rule) = 1 and kappa(product) = 0 within tol at every separable level; None when no level
    is separable (nothing to check)."""
    levels = [lv for lv, r in kappa["rule"].items() if r["separable"]]
    if not levels:
        return None
    return all(abs(kappa["rule"][lv]["value"] - 1) <= tol and abs(kappa["product"][lv]["value"]) <= tol
                                for lv in levels)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.1e}"


def format_calibration_table(calibration: dict) -> str:
    """Plain text: one line per denoiser, one column per level, kappa +- s.e. or 'n.s.' (not separable).

    Below them the rule signal and each denoiser's `energy` (its cross-region coupling beyond the product's,
    in units of the rule's: near 0 for a local or collapsed denoiser, large for one with coupling of its own).
    """
    kappa = calibration["kappa"]
    names = [k for k in CALIBRATION_ORDER if k in kappa] + [k for k in kappa if k not in CALIBRATION_ORDER]
    levels = list(next(iter(kappa.values())).keys())
    lines = [["denoiser"] + [f"kappa@{lv}" for lv in levels]]
    for name in names:
        cells = [name]
        for lv in levels:
            r = kappa[name][lv]
            cells.append("n.s." if r["value"] is None else f"{r['value']:.3f}±{r['se']:.3f}")
        lines.append(cells)
    lines.append(["rule signal"] + [f"{kappa['rule'][lv]['signal']:.1e}" for lv in levels])
    for name in names:
        if name not in ("rule", "product"):
            lines.append([f"{name} energy"] + [_fmt(kappa[name][lv].get("energy")) if kappa[name][lv]["separable"]
                                               else "n.s." for lv in levels])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    title = (f"coupling kappa (0 = product oracle, 1 = rule oracle; step {calibration['step']}, {calibration['method']}"
             + (f", {calibration['probes']} probes" if calibration.get("probes") else "")
             + f", n={calibration['n']}; n.s. = not separable: rule signal below {SEPARABLE_MIN_SIGNAL:g})")
    body = ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join([title, body[0], "  ".join("-" * w for w in widths), *body[1:]])


def _names(kappa: dict) -> list[str]:
    return [k for k in CALIBRATION_ORDER if k in kappa] + [k for k in kappa if k not in CALIBRATION_ORDER]


def _cell(result: dict, digits: int) -> str:
    if result["value"] is None:
        return "n.s."
    return f"{result['value']:.{digits}f} ± {result['se']:.{digits}f}"


def calibration_rows(calibration: dict, digits: int = 3, energies=("memoriser", NETWORK)) -> list[dict]:
    """The calibration as table rows, one per sqrt(alpha_bar) level (for `ldrkit.analysis.tables.table`).

    Columns: "√ᾱ", "rule signal" (a string in scientific notation: it spans many decades), then per denoiser kappa
    as "value ± s.e." ("n.s." where the level is not separable), then "NAME energy" for each of `energies` present
    (its own cross-region coupling beyond the product's, in the rule's units; None where not separable).
    """
    kappa = calibration["kappa"]
    rows = []
    for lv in kappa["rule"]:
        row = {"√ᾱ": lv, "rule signal": f"{kappa['rule'][lv]['signal']:.1e}"}
        row.update({name: _cell(kappa[name][lv], digits) for name in _names(kappa)})
        for name in (e for e in energies if e in kappa):
            row[f"{name} energy"] = kappa[name][lv]["energy"] if kappa[name][lv]["separable"] else None
        rows.append(row)
    return rows


def coupling_verdict(calibration: dict, name: str = NETWORK, midpoint: float = VERDICT_MIDPOINT,
                     n_se: float = VERDICT_SE) -> dict:
    """Which end of the ruler `name` is closer to at the separable levels, and how much coupling it can carry.

    Per separable level the side is "product" when kappa + n_se s.e. < midpoint, "rule" when kappa - n_se s.e. >
    midpoint, else "undecided". Returns {"levels": separable levels, "sides": {level: side}, "at_most": the largest
    kappa + n_se s.e. over those levels (NaN when none), "max_kappa" (NaN when none), "text": a phrase}, the phrase
    "closer to the product than to the rule at every separable level" (or the rule's mirror), "not on one side
    of the ruler's midpoint at every separable level" when the sides differ or are undecided, or "not separable
    at any level".
    """
    results = calibration["kappa"][name]
    levels = [lv for lv, r in results.items() if r["separable"]]
    sides = {}
    for lv in levels:
        value, se = results[lv]["value"], results[lv]["se"] or 0.0
        sides[lv] = ("product" if value + n_se * se < midpoint else "rule" if value - n_se * se > midpoint
                     else "undecided")
    nan = float("nan")
    at_most = max((results[lv]["value"] + n_se * (results[lv]["se"] or 0.0) for lv in levels), default=nan)
    max_kappa = max((results[lv]["value"] for lv in levels), default=nan)
    if not levels:
        text = "not separable at any level"
    elif set(sides.values()) == {"product"}:
        text = "closer to the product than to the rule at every separable level"
    elif set(sides.values()) == {"rule"}:
        text = "closer to the rule than to the product at every separable level"
    else:
        text = "not on one side of the ruler's midpoint at every separable level"
    return {"levels": levels, "sides": sides, "at_most": at_most, "max_kappa": max_kappa, "text": text}


def plot_calibration(calibration: dict, ax, names=PLOT_ORDER) -> None:
    """kappa +- s.e. per separable level for `names` on the ruler, with grey lines at 0 (product, dotted) and 1
    (rule, dashed); levels that are not separable are shaded grey and carry no point."""
    kappa = calibration["kappa"]
    levels = list(kappa["rule"])
    x = range(len(levels))
    for i, lv in enumerate(levels):
        if not kappa["rule"][lv]["separable"]:
            ax.axvspan(i - 0.5, i + 0.5, color="0.9", zorder=0)
    for j, name in enumerate(n for n in names if n in kappa):
        pts = [(i + 0.08 * (j - 1), kappa[name][lv]["value"], kappa[name][lv]["se"])
               for i, lv in zip(x, levels) if kappa[name][lv]["separable"]]
        if pts:
            xs, ys, es = zip(*pts)
            ax.errorbar(xs, ys, yerr=es, fmt="o-", capsize=3, label=name)
    ax.axhline(0, color="0.3", ls=":", lw=1.2, label="product oracle (0)")
    ax.axhline(1, color="0.3", ls="--", lw=1.2, label="rule oracle (1)")
    ax.set_xticks(list(x), levels)
    ax.set_xlim(-0.5, len(levels) - 0.5)
    ax.set_xlabel("√ᾱ (grey: not separable)")
    ax.set_ylabel("coupling score κ")
