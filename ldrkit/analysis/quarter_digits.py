"""Quarter-MNIST (section 4.2, 4.3, appendix A.5): the analyses of the chapter `quarter-digits`.

Four handwritten digits, one per quarter, with s1 + s2 = s3 + s4. Everything here reads stored
runs through `ldrkit.runs.run.Run`; every verdict the chapter prints is a function below with its
thresholds as the module constants that follow.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.metrics import mutual_info_score

from ..denoisers.models import count_parameters
from ..probes import ldr as ldr_probe
from ..probes.estimates import wilson
from ..probes.trajectories import split_by_outcome, trajectory_ldr
from ..runs.run import Run
from ..spec.hashing import LDR_LEVELS
from ..spec.registry import ORACLES
from ..systems.categories import CATEGORIES, broken_among_legible, legible
from .oracles import NETWORK, ldr_beside_own_oracles
from .overtraining import oracle_distance_over_training
from .phases import PHASE, independent_valid_probability, run_phase
from .plots import CATEGORY_COLORS, plot_categories, plot_ldr_levels, plot_ldr_over_training

# --- verdict thresholds ------------------------------------------------------------------------------
MEMORISED = 0.5              # "escaped to memorisation": more than this share of the final samples in-dataset
HALLUCINATING = 0.2          # a model hallucinates at the end: at least this share hallucinated, more than obey
CLOSEST_Z = 3.0              # an oracle is the closest when it beats the runner-up by more than this many s.e.
LESS_LOCAL_Z = 3.0           # a network is less local than rule and product by more than this many s.e. ...
LESS_LOCAL_GAP = 0.01        # ... and more than this absolute x0-LDR gap
OUTCOME_Z = 3.0              # valid and hallucinated trajectories differ by more than this many s.e. ...
OUTCOME_MIN_GROUP = 5        # ... compared only when both groups hold at least this many samples
INFORMATIVE_LEVEL = 0.5      # sqrt(alpha_bar) levels at or above this tell the three oracles apart


# --- the rule -----------------------------------------------------------------------------------------

def pair_mutual_information(a, b) -> float:
    """Mutual information (bits) of two digit columns, by scikit-learn's `mutual_info_score` (nats) / ln 2."""
    return float(mutual_info_score(np.asarray(a), np.asarray(b)) / math.log(2))


def digit_marginal_row(grammar) -> dict:
    """P(s1 = d) for d = 0..9 under the uniform rule (the middle digits are more frequent)."""
    return {"quantity": "P(s1 = d)", **{f"d={d}": float(p) for d, p in enumerate(grammar.marginals()[0])}}


def pair_information_rows(grammar) -> list[dict]:
    """Under the uniform rule: the mutual information (bits) of s1 with each other digit."""
    support = grammar.enumerate()
    return [{"pair": f"s1, s{j + 1}", "mutual information (bits)": pair_mutual_information(support[:, 0], support[:, j])}
            for j in (1, 2, 3)]


def rule_facts(setup) -> dict:
    """The valid tuples, the split, and P(rule) for independent digits (uniform, and with the training
    tuples' per-quarter frequencies)."""
    grammar, split = setup.grammar, setup.split
    return {"valid tuples": grammar.count(), "of": 10 ** grammar.length, "training tuples": len(split.train),
            "held out": len(split.held_out), "P(rule), uniform digits": grammar.count() / 10 ** grammar.length,
            "P(rule), independent training frequencies": independent_valid_probability(grammar, split.train)}


def held_out_share(setup) -> float:
    """Share of the valid tuples that are held out: where a sampler of uniformly random valid tuples lands."""
    return len(setup.split.held_out) / setup.grammar.count()


# --- the digits and their reader ------------------------------------------------------------------------

def reader_facts(setup) -> dict:
    """Digit source, image size, the classifier's held-out accuracy, and its ceiling on clean renders of
    held-out tuples with held-out digit instances (share of quarters and of images read right and legible)."""
    r, held = setup.renderer, setup.split.held_out
    clean = r.decode(r.render(held, pool="test"))
    ok = (clean.tokens == held) & clean.legible
    info = r.classifier_info
    return {"source": r.source, "image": "x".join(map(str, r.signal_shape[1:])), "classifier accuracy":
            info["held_out_accuracy"], "test digits": info["n_test"], "train digits": info["n_train"],
            "threshold": r.threshold, "training images": len(setup.train_data), "copies": r.copies,
            "clean quarters read right": float(ok.mean()), "clean images read right": float(ok.all(1).mean())}


def plot_training_images(setup, k: int = 8):
    """The first k training tuples, rendered, titled with their sums."""
    import matplotlib.pyplot as plt

    tuples = setup.split.train[:k]
    fig, axes = plt.subplots(1, k, figsize=(9, 1.5))
    for ax, img, tup in zip(axes, setup.renderer.render(tuples), tuples):
        ax.imshow(img[0], cmap="gray", vmin=-1, vmax=1)
        ax.set_title(f"{tup[0]}+{tup[1]}={tup[2]}+{tup[3]}", fontsize=8)
        ax.axis("off")
    fig.suptitle("training images", fontsize=9)
    return fig


# --- training --------------------------------------------------------------------------------------------

def model_rows(runs: dict[str, Run]) -> list[dict]:
    """Per model: parameters, steps, batch, learning rate and wall time of the run."""
    return [{"model": label, "parameters": count_parameters(run.model()), "steps": run.config["train"]["steps"],
             "batch": run.config["train"]["batch_size"], "lr": run.config["train"]["lr"],
             "wall time (s)": round(run.metrics["wall_seconds"])} for label, run in runs.items()]


def plot_categories_ldr(runs: dict[str, Run]):
    """Categories (top), eps-LDR (middle) and x0-LDR (bottom) of the top-left quarter over training, one column
    per model (the paper's Figs. 4 and 5)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(runs), figsize=(11, 9), sharex="col", squeeze=False)
    for col, (label, run) in enumerate(runs.items()):
        ev = run.evaluations
        plot_categories(ev, ax=axes[0, col], title=f"{label}: categories")
        plot_ldr_over_training(ev, key="ldr", ax=axes[1, col], title=f"{label}: LDR, eps output")
        plot_ldr_over_training(ev, key="ldr_x0", ax=axes[2, col], title=f"{label}: LDR, x0 output")
        for ax in axes[:2, col]:
            ax.set_xlabel("")
    for row in (0, 1):
        axes[row, -1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
    return fig


def phase_step(run: Run) -> dict:
    """The evaluation the first act is read at (`phases.run_phase`: the first with the symbols legible and the rule
    at chance, else the first legible, else the most legible)."""
    return run_phase(run)["record"]


def evaluation_rows(runs: dict[str, Run]) -> list[dict]:
    """One row per model and evaluation: the categories, rule-breaking among legible samples, and LDRs."""
    return [{"model": label, "step": e["step"], **e["categories"], "breaks rule among legible": broken_among_legible(e),
             "LDR eps @0.1": e["ldr"]["0.1"], "LDR x0 @0.1": e["ldr_x0"]["0.1"], "LDR x0 @0.5": e["ldr_x0"]["0.5"]}
            for label, run in runs.items() for e in run.evaluations]


def gallery(run: Run, step: int, label: str, k: int = 12):
    """Up to k stored samples of an evaluation, hallucinations first, titled with the OCR's reading
    ("?" for an unreadable quarter) and framed in their category's colour (Fig. 18)."""
    import matplotlib.pyplot as plt

    x = run.samples(step)
    cats = run.setup.categorize(x)
    reading = run.setup.renderer.read(x)
    order = np.concatenate([np.flatnonzero(cats == c) for c in ("hallucination", "in_dataset", "extrapolation",
                                                                  "invalid")])[:k]
    fig, axes = plt.subplots(1, len(order), figsize=(1.1 * len(order) + 0.4, 1.7), squeeze=False)
    for ax, i in zip(axes[0], order):
        ax.imshow(x[i, 0], cmap="gray", vmin=-1, vmax=1)
        d = [str(t) if ok else "?" for t, ok in zip(reading.tokens[i], reading.legible[i])]
        sign = "≠" if cats[i] == "hallucination" else "="
        ax.set_title(f"{d[0]}+{d[1]}{sign}{d[2]}+{d[3]}", fontsize=8, color=CATEGORY_COLORS[cats[i]])
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(CATEGORY_COLORS[cats[i]])
            spine.set_linewidth(2.5 if cats[i] == "hallucination" else 1)
    fig.suptitle(f"{label}, step {step}: " + ", ".join(f"{c} {np.mean(cats == c):.2f}" for c in CATEGORIES),
                 fontsize=9)
    fig.tight_layout()
    return fig


def extrapolation_rows(runs: dict[str, Run]) -> list[dict]:
    """Extrapolations among the stored samples of the hallucination phase and the final evaluation, with the
    95% Wilson interval, and their share among the rule-obeying samples."""
    rows = []
    for label, run in runs.items():
        for which, step in (("hallucination phase", phase_step(run)["step"]), ("final", run.final["step"])):
            cats = run.setup.categorize(run.samples(step))
            k, n = int(np.sum(cats == "extrapolation")), len(cats)
            valid = int(np.sum(np.isin(cats, ["extrapolation", "in_dataset"])))
            low, high = wilson(k, n)
            rows.append({"model": label, "evaluation": which, "step": step, "extrapolations": k, "samples": n,
                         "fraction": k / n, "95% interval": f"{low:.4f}-{high:.4f}", "rule-obeying": valid,
                         "extrapolations among them": k / valid if valid else math.nan})
    return rows


def plot_saliency(runs: dict[str, Run], seed: int = 0, level: float = 0.1):
    """Per model, for one noised training image at sqrt(alpha_bar) ~ level: x_t, x0_hat, and the saliency of the
    top-left quarter for the eps and x0 outputs (Fig. 19); the quarter is outlined in cyan."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 4, figsize=(9, 2.4 * len(runs)), squeeze=False)
    for row, (label, run) in enumerate(runs.items()):
        setup, model = run.setup, run.model()
        region = setup.renderer.region(run.config["eval"]["ldr_position"])
        t = setup.schedule.timestep_for(level)
        xt = ldr_probe.noised_inputs(setup.train_data, setup.schedule, t, 1, torch.Generator().manual_seed(seed))
        res = ldr_probe.ldr(model, setup.schedule, region, inputs=xt, t=t, outputs=("eps", "x0"), return_saliency=True)
        with torch.no_grad():
            x0_hat = setup.schedule.x0_from_eps(xt, model(xt, torch.full((1,), t)), t) + setup.shift
        panels = [("x_t", xt[0, 0] + setup.shift, dict(cmap="gray")),
                  ("x0_hat", x0_hat[0, 0], dict(cmap="gray", vmin=-1, vmax=1)),
                  (f"saliency eps (LDR {res['eps'].mean:.2f})", res["eps"].saliency[0, 0], dict(cmap="magma")),
                  (f"saliency x0 (LDR {res['x0'].mean:.2f})", res["x0"].saliency[0, 0], dict(cmap="magma"))]
        for ax, (title, img, kw) in zip(axes[row], panels):
            ax.imshow(np.asarray(img), **kw)
            ax.set_title(f"{label}: {title}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            size = setup.renderer.size
            ax.add_patch(plt.Rectangle((-0.5, -0.5), size, size, fill=False, ec="cyan", lw=1))
    fig.tight_layout()
    return fig


# --- the three exact denoisers ------------------------------------------------------------------------------

def expected_oracle_categories(setup) -> dict[str, dict]:
    """What each oracle should score if every sample were read right, and how often the OCR misreads a clean
    sample of that oracle's distribution (from its accuracy on the training instances, per digit)."""
    r, split, support = setup.renderer, setup.split, setup.grammar.enumerate()
    digit, prob = r.ocr.read_digits(r.train_digits.images)
    read_ok = (digit == r.train_digits.labels) & (prob >= r.threshold)
    rate = np.array([read_ok[r.train_digits.labels == k].mean() for k in range(10)])
    freq = np.stack([np.bincount(split.train[:, j], minlength=10) / len(split.train) for j in range(4)])
    p_in = float(sum(np.prod([freq[j, t[j]] for j in range(4)]) for t in {tuple(t) for t in split.train.tolist()}))
    p_indep = independent_valid_probability(setup.grammar, split.train)
    memoriser_ok = np.mean(setup.categorize(setup.train_data + setup.shift) == "in_dataset")
    return {"rule": dict(hallucination=0.0, in_dataset=len(split.train) / len(support),
                         extrapolation=held_out_share(setup), misread=1 - float(np.mean(np.prod(rate[support], 1)))),
            "product": dict(hallucination=1 - p_indep, in_dataset=p_in, extrapolation=p_indep - p_in,
                            misread=1 - float(np.prod(freq @ rate))),
            "memoriser": dict(hallucination=0.0, in_dataset=1.0, extrapolation=0.0, misread=1 - float(memoriser_ok))}


def oracle_category_rows(oracle_runs: dict[str, Run], expected: dict, runs: dict[str, Run]) -> list[dict]:
    """The oracles' sampled categories beside their expected values, then the networks' at their hallucination
    phase and at the end."""
    rows = []
    for w, run in oracle_runs.items():
        c, e = run.final["categories"], expected[w]
        rows.append({"denoiser": f"{w} oracle", **c, **{f"{k} expected": e[k] for k in
                     ("hallucination", "in_dataset", "extrapolation")}, "OCR misreads of the clean support": e["misread"]})
    for label, run in runs.items():
        for which, e in (("hallucination phase", phase_step(run)), ("final", run.final)):
            rows.append({"denoiser": f"{label}, {which} (step {e['step']})", **e["categories"]})
    return rows


def distance_rows(run: Run, n: int, seed: int = 0) -> list[dict]:
    """{"step", "rule": {level: d}, "product": ..., "memoriser": ...} per evaluation: the distances the run recorded,
    or (for runs that did not record them) measured from the checkpoints and cached."""
    if all("oracle_distance" in e for e in run.evaluations):
        return [{"step": e["step"], **e["oracle_distance"]} for e in run.evaluations]
    return oracle_distance_over_training(run, n=n, seed=seed)


def plot_oracle_distances(dist: dict[str, list[dict]], title: str | None = None):
    """Distance to the rule, product and memoriser denoisers over training (step 0 left out), a row per model and a
    column per noise level, log scale."""
    import matplotlib.pyplot as plt

    levels = list(next(iter(dist.values()))[0]["rule"])
    fig, axes = plt.subplots(len(dist), len(levels), figsize=(15, 5.8), sharex="row", squeeze=False)
    for row, (label, rows) in enumerate(dist.items()):
        steps = [r["step"] for r in rows][1:]
        for ax, level in zip(axes[row], levels):
            for w, style in zip(ORACLES, ("-", "--", ":")):
                ax.plot(steps, [r[w][level] for r in rows][1:], style, marker=".", label=w)
            ax.set_yscale("log")
            ax.set_title(f"{label}, √ᾱ = {level}", fontsize=9)
        axes[row][0].set_ylabel("mean (eps_net − eps_oracle)²")
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@torch.no_grad()
def paired_distances(model, setup, oracles: dict, level, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Per noised training input at sqrt(alpha_bar) = level (the same n inputs for every oracle): the mean
    per-pixel (eps_model - eps_oracle)^2, {oracle: (n,)}."""
    t = setup.schedule.timestep_for(float(level))
    x = ldr_probe.noised_inputs(setup.train_data, setup.schedule, t, n, torch.Generator().manual_seed(seed + 1))
    tt = torch.full((len(x),), t)
    e = model(x, tt)
    return {w: (e - o(x, tt)).pow(2).flatten(1).mean(1).numpy() for w, o in oracles.items()}


def closest_oracle(distances: dict[str, np.ndarray], z: float = CLOSEST_Z) -> dict:
    """The oracle with the smallest mean paired distance, called closest only when its lead over the runner-up
    exceeds z paired standard errors ("tie" otherwise): {"nearest", "lead", "z", "verdict"}."""
    order = sorted(distances, key=lambda w: distances[w].mean())
    diff = distances[order[1]] - distances[order[0]]
    se = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else math.nan
    score = float(diff.mean() / se) if se > 0 else (math.inf if diff.mean() > 0 else math.nan)
    return {"nearest": order[0], "lead": float(diff.mean()), "z": score, "verdict": order[0] if score > z else "tie"}


def paired_rows(runs: dict[str, Run], oracles: dict, levels, n: int, seed: int = 0) -> list[dict]:
    """Per model (final checkpoint) and level: the mean paired distance to each oracle and the closest_oracle verdict."""
    rows = []
    for label, run in runs.items():
        model = run.model()
        for level in levels:
            d = paired_distances(model, run.setup, oracles, level, n, seed)
            rows.append({"model": label, "√ᾱ": level, **{w: float(d[w].mean()) for w in oracles},
                         **closest_oracle(d)})
    return rows


# --- the LDR of the truth -------------------------------------------------------------------------------------

def denoiser_ldr(networks: dict[str, Run], n: int, seed: int = 0):
    """LDR of the top-left quarter, eps and x0 outputs, per level, for the networks' last checkpoints beside the exact
    denoisers of their data, on the same n noised training inputs per level (`oracles.ldr_beside_own_oracles`,
    cached in each run folder; the oracles are shown once, from the first network's inputs).

    Returns (tables, sems): {"eps"|"x0": {name: {level: value}}}.
    """
    tables, sems = {"eps": {}, "x0": {}}, {"eps": {}, "x0": {}}
    for k, (label, run) in enumerate(networks.items()):
        result = ldr_beside_own_oracles(run, n, seed)
        for name in result["x0"]:
            if name == NETWORK or k == 0:
                shown = label if name == NETWORK else f"{name} oracle"
                for o in tables:
                    tables[o][shown], sems[o][shown] = result[o][name], result[f"{o}_sem"][name]
    return tables, sems


def plot_denoiser_ldr(tables: dict, sems: dict, title: str | None = None):
    """LDR against sqrt(alpha_bar), one line per denoiser with standard errors: eps output (left), x0 (right)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    plot_ldr_levels(tables["eps"], ax=axes[0], title="eps output (the paper's LDR)", errors=sems["eps"])
    plot_ldr_levels(tables["x0"], ax=axes[1], title="denoiser x0", errors=sems["x0"])
    axes[1].legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def ldr_rows(table: dict, sems: dict) -> list[dict]:
    """One row per level, one column per denoiser: "mean ± s.e." ("undefined" where the ratio is 0/0)."""
    levels = list(next(iter(table.values())))
    return [{"√ᾱ": level, **{name: (f"{v[level]:.3f} ± {sems[name][level]:.3f}" if np.isfinite(v[level])
                                    else "undefined") for name, v in table.items()}} for level in levels]


def nearest_oracle_ldr(x0: dict, label: str, level: str) -> str:
    """The oracle whose x0-LDR at the level is nearest the network's ("undefined" if none can be compared)."""
    v = x0[label][level]
    finite = {w: x0[f"{w} oracle"][level] for w in ORACLES if np.isfinite(x0[f"{w} oracle"][level])}
    return min(finite, key=lambda w: abs(finite[w] - v)) if finite and np.isfinite(v) else "undefined"


def less_local_levels(x0: dict, sems: dict, label: str) -> list[str]:
    """Levels where the network's x0-LDR is below both the rule's and the product's by more than LESS_LOCAL_Z
    standard errors and LESS_LOCAL_GAP: where it couples the quarter to the rest more than the truth does."""
    def below(level, w):
        gap = x0[f"{w} oracle"][level] - x0[label][level]
        return gap > max(LESS_LOCAL_GAP, LESS_LOCAL_Z * math.hypot(sems[label][level], sems[f"{w} oracle"][level]))
    return [lv for lv in x0[label] if np.isfinite(x0[label][lv]) and all(below(lv, w) for w in ("rule", "product"))]


def ldr_verdict_rows(x0: dict, sems: dict, labels) -> list[dict]:
    """Per network: the nearest oracle by x0-LDR at each level, and the levels where it is less local than both
    the rule and the product."""
    return [{"model": label, **{f"nearest @{lv}": nearest_oracle_ldr(x0, label, lv) for lv in x0[label]},
             "less local than rule and product at": ", ".join(less_local_levels(x0, sems, label)) or "no level"}
            for label in labels]


# --- along the sampling trajectories ----------------------------------------------------------------------------


def cached_trajectory_ldr(run: Run, n: int, seed: int = 0, levels=LDR_LEVELS) -> dict:
    """Per-sample LDR of the top-left quarter along n sampling trajectories of the run's last checkpoint.

    Cached in the run folder (`Run.cached("trajectory_ldr", ...)`, keyed by n, seed, levels, sampler and
    the checkpoint's digest). Returns trajectory_ldr's layout:
    {"labels": categories (n,), "levels": {level: {"t": t, "eps": (n,), "x0": (n,)}}}.
    """
    ev = run.config["eval"]
    params = {"n": int(n), "seed": int(seed), "levels": [float(v) for v in levels], "position": ev["ldr_position"],
              "sampler": ev.get("sampler", "ddpm"), "num_steps": ev.get("sample_steps")}

    def compute(model, step: int) -> dict:
        res = trajectory_ldr(run.setup, model, n=n, seed=seed, levels=levels, num_steps=params["num_steps"],
                             position=params["position"], sampler=params["sampler"])
        return {"labels": [str(c) for c in res["labels"]],
                "levels": {lv: {k: (int(v) if k == "t" else np.asarray(v).tolist()) for k, v in e.items()}
                           for lv, e in res["levels"].items()}}

    row = run.cached("trajectory_ldr", params, [run.steps()[-1]], compute)[0]
    return {"labels": np.array(row["labels"]),
            "levels": {lv: {k: (v if k == "t" else np.array(v, dtype=float)) for k, v in e.items()}
                       for lv, e in row["levels"].items()}}


def outcome_counts(traj: dict) -> dict[str, int]:
    """How the sampled trajectories ended: count per category."""
    return {c: int(np.sum(traj["labels"] == c)) for c in CATEGORIES}


def outcome_rows(traj: dict[str, dict], output: str = "x0") -> list[dict]:
    """Per model and level: the mean per-sample LDR of the samples that end valid and of those that end
    hallucinated (± s.e., count), their difference and the difference in standard errors."""
    rows = []
    for label, result in traj.items():
        for level, g in split_by_outcome(result, output).items():
            (vm, vs, vn), (hm, hs, hn) = g["valid"], g["hallucination"]
            se = math.hypot(vs, hs)
            rows.append({"model": label, "√ᾱ": level, "valid": f"{vm:.3f} ± {vs:.3f} ({vn})",
                         "hallucinated": f"{hm:.3f} ± {hs:.3f} ({hn})", "difference": vm - hm,
                         "difference / s.e.": abs(vm - hm) / se if se > 0 else math.nan})
    return rows


def outcome_verdict(traj: dict, output: str = "x0") -> str:
    """Whether valid and hallucinated trajectories differ: the levels where they differ by more than OUTCOME_Z
    standard errors, or why they cannot be compared (fewer than OUTCOME_MIN_GROUP samples in a group)."""
    counts = outcome_counts(traj)
    if min(counts["hallucination"], counts["in_dataset"] + counts["extrapolation"]) < OUTCOME_MIN_GROUP:
        return f"too few samples in one of the groups (under {OUTCOME_MIN_GROUP}) to compare"
    rows = outcome_rows({"": traj}, output)
    differ = [r["√ᾱ"] for r in rows if np.isfinite(r["difference / s.e."]) and r["difference / s.e."] > OUTCOME_Z]
    return (f"differ by more than {OUTCOME_Z:g} s.e. at √ᾱ = {', '.join(differ)}" if differ else
            f"no level where the groups differ by more than {OUTCOME_Z:g} s.e.")


def plot_trajectories(traj: dict[str, dict], output: str = "x0", title: str | None = None):
    """Per model: the per-sample LDR along the reverse trajectories against the visited sqrt(alpha_bar), samples that
    end valid against those that end hallucinated (mean ± s.e.)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(traj), figsize=(11, 3.6), sharey=True, squeeze=False)
    for ax, (label, result) in zip(axes[0], traj.items()):
        table = split_by_outcome(result, output)
        xs = [float(lv) for lv in table]
        for group, color in (("valid", "#2e86ab"), ("hallucination", "#e4572e")):
            ax.errorbar(xs, [table[lv][group][0] for lv in table], yerr=[table[lv][group][1] for lv in table],
                        marker="o", capsize=3, color=color, label=group)
        ax.set_title(f"{label}: " + ", ".join(f"{k} {v}" for k, v in outcome_counts(result).items()), fontsize=8)
        ax.set_xlabel(r"$\sqrt{\bar\alpha_t}$ of the visited state")
    axes[0, 0].set_ylabel(f"per-sample LDR, {output} output")
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --- verdicts ---------------------------------------------------------------------------------------------------

def hallucinates_at_end(final: dict) -> bool:
    """A model is in a hallucination phase at its final evaluation: at least HALLUCINATING of its samples are
    hallucinations, and more than obey the rule."""
    c = final["categories"]
    return c["hallucination"] >= HALLUCINATING and c["hallucination"] > c["in_dataset"] + c["extrapolation"]


def informative_levels(levels) -> list[str]:
    """The levels (sqrt(alpha_bar) >= INFORMATIVE_LEVEL) at which the three oracles differ."""
    return [lv for lv in levels if float(lv) >= INFORMATIVE_LEVEL]


def recorded_closest(rows: list[dict], step: int, levels) -> dict[str, str]:
    """At a recorded evaluation: per level, the oracle with the smallest mean recorded distance (no test)."""
    row = next((r for r in rows if r["step"] == step), None)
    return {lv: (min(ORACLES, key=lambda w: row[w][lv]) if row else "not recorded") for lv in levels}


def product_account(closest: dict[tuple[str, str], str], runs: dict[str, Run]) -> dict:
    """The paper's account (a hallucinating network has learnt the product of the marginals) tested on the final
    checkpoints of the models in a hallucination phase, at the informative levels.

    closest: {(model, level): closest_oracle verdict}. "supported" when the product is closest at more than half
    of the (model, level) pairs, "not supported" when at none, "partly supported" otherwise, and "cannot be tested"
    when no model hallucinates at the end. Returns the verdict, the models and the counts per oracle and tie.
    """
    models = [label for label, run in runs.items() if hallucinates_at_end(run.final)]
    counts = {w: 0 for w in (*ORACLES, "tie")}
    for (label, level), verdict in closest.items():
        if label in models and float(level) >= INFORMATIVE_LEVEL:
            counts[verdict] += 1
    pairs = sum(counts.values())
    verdict = ("cannot be tested" if not models else "supported" if counts["product"] > pairs / 2 else
               "not supported" if counts["product"] == 0 else "partly supported")
    return {"verdict": verdict, "models": ", ".join(models) or "none", "pairs": pairs, **counts}


def phase_verdict(reading: dict) -> str:
    """Whether the hallucination phase reproduced (`phases.phase_reading`): "reproduced" at a phase (the symbols
    legible, the rule at chance), else "not reproduced" with the reason."""
    kind = reading["kind"]
    return "reproduced" if kind == PHASE else f"not reproduced: {kind}"


def memorised(final: dict) -> bool:
    """The escape to memorisation (DiT in Fig. 4): more than MEMORISED of the final samples are training tuples."""
    return final["categories"]["in_dataset"] > MEMORISED


def summary_rows(runs: dict[str, Run]) -> list[dict]:
    """Per model: the hallucination phase and its verdict, the end of training, and the x0-LDR of the top-left
    quarter at sqrt(alpha_bar) = 0.1 at the first evaluation after step 0 and at the end."""
    rows = []
    for label, run in runs.items():
        reading = run_phase(run)
        phase, final, ev = reading["record"], run.final, run.evaluations
        c = final["categories"]
        obey = c["in_dataset"] + c["extrapolation"]
        rows.append({"model": label, "phase step": phase["step"], "legible": legible(phase),
                     "hallucination": phase["categories"]["hallucination"],
                     "breaks among legible": broken_among_legible(phase), "phase": phase_verdict(reading),
                     "final step": final["step"], "final hallucination": c["hallucination"], "final rule-obeying": obey,
                     "final extrapolation": c["extrapolation"],
                     "extrapolation among rule-obeying": c["extrapolation"] / obey if obey else math.nan,
                     "memorised": memorised(final), "LDR eps @0.1 final": final["ldr"]["0.1"],
                     "LDR x0 @0.1 first": ev[1]["ldr_x0"]["0.1"] if len(ev) > 1 else math.nan,
                     "LDR x0 @0.1 final": final["ldr_x0"]["0.1"]})
    return rows
