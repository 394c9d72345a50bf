"""The parentheses chapter: parity and Dyck words drawn as glyph images, learned by a UNet and a DiT.

Run summaries per experiment (categories, rule-breaking among legible samples against what
independent symbols would give), the checkpoint of the hallucination phase (the rule-breaking
peak), galleries of decoded samples, saliency panels of the second cell at that checkpoint and
the last (the paper's Figs. 15 and 17, cached in the run folder), the distance to the exact
denoisers, and the verdicts of the chapter's "what reproduced" section.

Every verdict is a function below with its thresholds as the module constants that follow.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..denoisers.models import build_model, count_parameters
from ..probes import ldr as ldr_probe
from ..probes.estimates import fraction_interval
from ..spec.registry import ORACLES, get_experiment
from ..systems.categories import broken_among_legible, in_dataset_among_legible, legible
from ..systems.grammars import Dyck, Parity
from ..systems.registry import build_grammar, build_renderer
from .oracles import NETWORK, discriminating_levels, ldr_beside_own_oracles, locality_against_rule
from .phases import LEGIBLE_PHASE, PHASE, chance_breaking, first_legible_step, rule_breaking_peak, run_phase
from .plots import CATEGORY_COLORS, plot_categories, plot_ldr_over_training

# --- the runs -----------------------------------------------------------------------------------------
NAMES = ("parity-parens-L8-unet", "parity-parens-L16-unet", "parity-parens-L16-dit", "dyck-parens-unet",
         "dyck-parens-dit")
PARITY_RUNS = ("parity-parens-L16-unet", "parity-parens-L16-dit", "parity-parens-L8-unet")
DYCK_RUNS = ("dyck-parens-unet", "dyck-parens-dit")
MEMORISATION_RUN = "parity-parens-L8-unet"  # the paper: L=8 overfits the training set eventually
GALLERY_RUNS = ("parity-parens-L16-unet", "parity-parens-L8-unet", "dyck-parens-unet")  # Fig. 14; Figs. 15/17

# --- probes -------------------------------------------------------------------------------------------
SALIENCY_LEVEL = 0.1        # sqrt(alpha_bar) of the paper's Fig. 15
PAPER_FIG15_LDR = 0.9736    # the eps-LDR the paper's Fig. 15 reports for the second parenthesis
OCR_NOISE_LEVELS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0)
ORACLE_LEVELS = ("0.7", "0.9")  # the low-noise levels, where the exact denoisers differ

# --- verdict thresholds -------------------------------------------------------------------------------
PARITY_CHANCE = 0.5         # share of legible samples breaking parity when the symbols are independent
CLOSEST_MARGIN = 0.05       # the closest oracle is named only when the next one is at least 5% farther
DYCK_LEARNED = 0.4          # rule broken by at most this share of legible samples at the end: rule learned
DYCK_DROP = 0.15            # a fall of at least this from the peak: the rule partly learned
MEMORISED = 0.75            # in-dataset share of legible samples of a memorising model (paper: ~25% hallucinate)
MEMORISATION_MARGIN = 0.15  # above independent symbols by at least this: memorisation under way


# --- the rules and the glyphs ------------------------------------------------------------------------
def as_text(seq) -> str:
    """A sequence of +-1 as parentheses: +1 is '(' and -1 is ')'."""
    return "".join("(" if s == 1 else ")" for s in seq)


def from_text(word: str) -> np.ndarray:
    """A word of parentheses as a (1, L) array of +-1."""
    return np.array([[1 if c == "(" else -1 for c in word]])


def grammar_rows(grammars=(Parity(8), Parity(16), Dyck(8), Dyck(12), Dyck(16))) -> list[dict]:
    """One row per rule: its number of valid sequences, of all 2^L, and one example."""
    return [{"rule": repr(g), "valid sequences": g.count(), "of all": 2 ** g.length,
             "example": as_text(g.enumerate()[3])} for g in grammars]


def word_checks(words: dict) -> list[dict]:
    """{grammar: [word, ...]} -> one row per word: does it obey the rule (exact check by the grammar)?"""
    return [{"rule": repr(g), "word": w, "reading": "valid" if g.is_valid(from_text(w))[0] else "breaks the rule"}
            for g, ws in words.items() for w in ws]


def glyph_renderer(name: str, profile: str, seed: int, length: int = 8):
    """The experiment's glyph renderer (cell size and reader of its spec) for `length` symbols."""
    return build_renderer(get_experiment(name).config(profile, seed)["render"], length)


def plot_renders(renderer, examples=None):
    """Rendered rows of parentheses, parity and Dyck (default: two valid words of each at L=8)."""
    examples = examples or [(Parity(8), Parity(8).enumerate()[[5, 77]]), (Dyck(8), Dyck(8).enumerate()[[2, 9]])]
    shown = [(g, row) for g, rows in examples for row in rows]
    fig, axes = plt.subplots(len(shown), 1, figsize=(7, 0.9 * len(shown)), squeeze=False)
    for ax, (g, s) in zip(axes[:, 0], shown):
        ax.imshow(renderer.render(s[None])[0, 0], cmap="gray", vmin=-1, vmax=1)
        ax.set_title(f"{g!r}: {as_text(s)}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def ocr_noise_rows(renderer, seed: int, sigmas=OCR_NOISE_LEVELS) -> list[dict]:
    """How the reader copes with Gaussian noise added to clean renders of every valid L=8 parity word:
    per noise level, the share of cells legible, read correctly, and misread (legible but wrong)."""
    seqs = Parity(renderer.length).enumerate()
    clean = renderer.render(seqs)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for sigma in sigmas:
        r = renderer.read(clean + sigma * torch.randn(clean.shape, generator=gen))
        rows.append({"noise σ": f"{sigma:g}", "cells legible": float(r.legible.mean()),
                     "read correctly": float(((r.tokens == seqs) & r.legible).mean()),
                     "misread (legible but wrong)": float(((r.tokens != seqs) & r.legible).mean())})
    return rows


def ocr_controls(renderer, seed: int, n: int = 128) -> dict:
    """Share of cells read as legible when they are blank, or uniform noise in [-1, 1] (should be ~0)."""
    shape = (n, *renderer.signal_shape)
    gen = torch.Generator().manual_seed(seed)
    return {"blank": float(renderer.read(torch.full(shape, -1.0)).legible.mean()),
            "uniform_noise": float(renderer.read(torch.rand(shape, generator=gen) * 2 - 1).legible.mean())}


def parameter_rows(names=NAMES, seed: int = 0, profiles=("cpu", "paper")) -> list[dict]:
    """Image shape and parameter count of each experiment's model per profile (instantiated on the CPU)."""
    rows = []
    for name in names:
        row = {"experiment": name}
        for prof in profiles:
            spec = get_experiment(name).config(prof, seed)
            shape = build_renderer(spec["render"], build_grammar(spec["grammar"]).length).signal_shape
            row[f"{prof} image"] = str(tuple(shape))
            row[f"{prof} parameters"] = f"{count_parameters(build_model(spec['model'], shape)):,}"
        rows.append(row)
    return rows


# --- training and categories -------------------------------------------------------------------------
def training_rows(runs: dict) -> list[dict]:
    """How each run was trained: steps, batch, learning rate, samples per evaluation, wall time, centring shift."""
    rows = []
    for name, run in runs.items():
        train, evaluation = run.config["train"], run.config["eval"]
        rows.append({"run": name, "steps": run.final["step"], "batch": train["batch_size"], "Adam lr": train["lr"],
                     "weight average": train.get("ema_decay", "none"),
                     "samples per evaluation": evaluation["num_samples"],
                     "wall s": round(run.metrics["wall_seconds"]), "data shift": run.setup.shift})
    return rows


def plot_category_grid(runs: dict, profile: str, seed: int):
    """Categories over training, one panel per run (the paper's Figs. 3 and 16)."""
    fig, axes = plt.subplots(2, 3, figsize=(14, 6.4), sharey=True)
    for ax, (name, run) in zip(axes.flat, runs.items()):
        plot_categories(run.evaluations, ax=ax, title=name)
    axes.flat[0].legend(loc="lower left", fontsize=8)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    fig.suptitle(f"Categories of generated samples over training — profile {profile}, seed {seed}")
    fig.tight_layout()
    return fig


def independent_in_dataset(train) -> float:
    """P(an exact training sequence) for the same independent-symbols sampler (exact)."""
    train = np.asarray(train)
    freq = [{v: c / len(train) for v, c in zip(*np.unique(train[:, j], return_counts=True))}
            for j in range(train.shape[1])]
    return float(sum(np.prod([freq[j][v] for j, v in enumerate(row)]) for row in np.unique(train, axis=0)))


def broken_interval(record: dict, num_samples: int) -> tuple[float, float]:
    """95% Wilson interval of the rule-breaking share among the legible samples of an evaluation."""
    n_legible = round(legible(record) * num_samples)
    return fraction_interval(broken_among_legible(record), n_legible) if n_legible else (math.nan, math.nan)


def summary_rows(runs: dict) -> list[dict]:
    """One row per run at its last evaluation: the four categories, rule-breaking among legible samples
    with its interval, and the same share for independent symbols."""
    rows = []
    for name, run in runs.items():
        f = run.final
        low, high = broken_interval(f, run.config["eval"]["num_samples"])
        rows.append({"run": name, "steps": f["step"], "first step ≥ 50% legible": first_legible_step(run.evaluations),
                     "invalid": f["categories"]["invalid"], "hallucination": f["categories"]["hallucination"],
                     "breaks rule among legible": broken_among_legible(f), "95% interval": f"{low:.2f}–{high:.2f}",
                     "same, independent symbols": chance_breaking(run),
                     "in-dataset": f["categories"]["in_dataset"], "extrapolation": f["categories"]["extrapolation"]})
    return rows


def experiment_name(run) -> str:
    """The experiment a run belongs to (as recorded in its metrics)."""
    return run.metrics.get("experiment", run.path.parent.name)


# --- samples -------------------------------------------------------------------------------------------
GALLERY_ORDER = ("hallucination", "extrapolation", "in_dataset", "invalid")


def gallery_order(labels, k: int = 8) -> np.ndarray:
    """Indices of up to k samples taken in turn from each category (so every category present is shown),
    listed hallucinations first, then extrapolations, in-dataset and invalid ones."""
    labels = np.asarray(labels)
    pools = [list(np.flatnonzero(labels == c)) for c in GALLERY_ORDER]
    chosen: list[int] = []
    while len(chosen) < k and any(pools):
        for pool in pools:
            if pool and len(chosen) < k:
                chosen.append(int(pool.pop(0)))
    return np.array(sorted(chosen, key=lambda i: (GALLERY_ORDER.index(labels[i]), i)), dtype=int)


def readings(run, samples: torch.Tensor) -> list[str]:
    """Each sample as the reader reads it: '(' or ')' per legible cell, '?' per illegible one."""
    r = run.setup.renderer.read(samples)
    return ["".join(("(" if t == 1 else ")") if ok else "?" for t, ok in zip(tokens, ok_row))
            for tokens, ok_row in zip(r.tokens, r.legible)]


def plot_gallery(run, k: int = 8, step: int | None = None):
    """Generated images of an evaluation (default the last) as the reader reads them, labelled by category;
    hallucinations framed in red and marked with ✗, invalid samples in grey."""
    step = run.sample_steps()[-1] if step is None else step
    x = run.samples(step)
    labels = run.setup.categorize(x)
    order = gallery_order(labels, k)
    read = readings(run, x[order])
    fig, axes = plt.subplots(len(order), 1, figsize=(7, 0.55 * len(order) + 0.6), squeeze=False)
    for ax, i, text in zip(axes[:, 0], order, read):
        label = labels[i]
        ax.imshow(x[i, 0], cmap="gray", vmin=-1, vmax=1)
        mark = " ✗" if label == "hallucination" else ""
        ax.set_title(f"{label}{mark}: read {text}", fontsize=8, color=CATEGORY_COLORS[label], loc="left")
        ax.set_xticks([]), ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(CATEGORY_COLORS[label])
            spine.set_linewidth(2.5 if label == "hallucination" else 1)
    fig.suptitle(f"{experiment_name(run)}, step {step}", fontsize=10)
    fig.tight_layout()
    return fig


# --- LDR -----------------------------------------------------------------------------------------------
def plot_ldr_grid(runs: dict, profile: str, seed: int):
    """LDR of the probed cell over training per run: eps output (left) and the denoiser x0 (right)."""
    fig, axes = plt.subplots(len(runs), 2, figsize=(11, 3.0 * len(runs)), sharey=True, squeeze=False)
    for row, (name, run) in zip(axes, runs.items()):
        plot_ldr_over_training(run.evaluations, key="ldr", ax=row[0], title=f"{name}: LDR of eps")
        plot_ldr_over_training(run.evaluations, key="ldr_x0", ax=row[1], title=f"{name}: LDR of x0")
    axes[0, 1].legend(fontsize=7, loc="lower left")
    n = next(iter(runs.values())).config["eval"]["ldr_samples"]
    fig.suptitle(f"LDR of cell 2 over training ({n} noised training images per level and step) — "
                 f"profile {profile}, seed {seed}")
    fig.tight_layout()
    return fig


def ldr_rows(runs: dict) -> list[dict]:
    """The LDR at the last evaluation, per run and output (eps, x0), one column per sqrt(alpha_bar) level."""
    return [{"run": name, "output": "eps" if key == "ldr" else "x0",
             **{f"√ᾱ={lv}": v for lv, v in run.final[key].items()}}
            for name, run in runs.items() for key in ("ldr", "ldr_x0")]


def own_ldr_rows(runs: dict, n: int, seed: int = 0) -> list[dict]:
    """Per run (and, for the Dyck runs, at the phase checkpoint too): the x0-LDR of the probed cell ± s.e. beside the
    exact rule, product and memoriser denoisers of its own data on the same noised inputs
    (`oracles.ldr_beside_own_oracles`, cached), at the levels where those differ, and whether the network is more or
    less local than the rule there (`oracles.locality_against_rule`)."""
    rows = []
    for name, run in runs.items():
        steps = ([run_phase(run)["record"]["step"]] if name in DYCK_RUNS else []) + [run.steps()[-1]]
        for step in dict.fromkeys(steps):
            result = ldr_beside_own_oracles(run, n, seed, step=step)
            local = locality_against_rule(result)
            for level in discriminating_levels(result, "x0"):
                x0, se = result["x0"], result["x0_sem"]
                rows.append({"run": name, "step": step, "√ᾱ": level,
                             "network": f"{x0[NETWORK][level]:.3f} ± {se[NETWORK][level]:.3f}",
                             **{w: f"{x0[w][level]:.3f}" for w in ORACLES if w in x0},
                             "against the rule": local[level]})
    return rows


# --- saliency (Figs. 15 and 17) ------------------------------------------------------------------------
def saliency_step(run) -> int:
    """The hallucination-phase checkpoint (`phases.run_phase`: the first evaluation with half the samples legible and
    the rule at chance, else the first legible, else the most legible one)."""
    return run_phase(run)["record"]["step"]


def saliency_maps(run, seed: int, level: float = SALIENCY_LEVEL, steps: list[int] | None = None) -> list[dict]:
    """x_t, the denoised x0_hat and the saliency of the probed cell (eps and x0 outputs) for one training image
    noised to sqrt(alpha_bar) = level, at each step (default: the hallucination-phase checkpoint and the
    last). Cached in the run folder (`Run.cached`, "parens_saliency"); one row per step with
    {"step", "t", "sqrt_alpha_bar", "x_t", "x0_hat", "saliency_eps", "saliency_x0", "ldr_eps", "ldr_x0"}."""
    setup, position = run.setup, run.config["eval"]["ldr_position"]
    steps = steps if steps is not None else sorted({saliency_step(run), run.final["step"]})

    def compute(model, step: int) -> dict:
        t = setup.schedule.timestep_for(level)
        gen = torch.Generator().manual_seed(seed)
        x0 = setup.train_data[torch.randint(0, len(setup.train_data), (1,), generator=gen)]
        xt = setup.schedule.add_noise(x0, torch.randn(x0.shape, generator=gen), torch.tensor([t]))
        with torch.no_grad():
            x0_hat = setup.schedule.x0_from_eps(xt, model(xt, torch.tensor([t])), t) + setup.shift
        res = ldr_probe.ldr(model, setup.schedule, setup.renderer.region(position), inputs=xt, t=t,
                            outputs=("eps", "x0"), return_saliency=True)
        return {"t": t, "sqrt_alpha_bar": float(setup.schedule.sqrt_alpha_bar(t)), "x_t": xt[0, 0].tolist(),
                "x0_hat": x0_hat[0, 0].tolist(), "saliency_eps": res["eps"].saliency[0, 0].tolist(),
                "saliency_x0": res["x0"].saliency[0, 0].tolist(),
                "ldr_eps": res["eps"].mean, "ldr_x0": res["x0"].mean}

    return run.cached("parens_saliency", {"level": level, "seed": seed, "position": position}, steps, compute)


def plot_saliency(run, maps: list[dict]):
    """Per step: x_t, x0_hat and the saliency of the eps and x0 outputs, the probed cell boxed."""
    cell, position = run.setup.renderer.cell, run.config["eval"]["ldr_position"]
    panels = [(f"step {m['step']}: {what}", np.asarray(m[key]), kind)
              for m in maps for what, key, kind in (("x_t", "x_t", "gray"), ("x0_hat", "x0_hat", "image"),
                                                    (f"saliency, eps (LDR {m['ldr_eps']:.3f})", "saliency_eps", "heat"),
                                                    (f"saliency, x0 (LDR {m['ldr_x0']:.3f})", "saliency_x0", "heat"))]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.0 * len(panels) + 0.8), squeeze=False)
    for ax, (name, img, kind) in zip(axes[:, 0], panels):
        style = {"gray": {"cmap": "gray"}, "image": {"cmap": "gray", "vmin": -1, "vmax": 1}, "heat": {"cmap": "magma"}}
        ax.imshow(img, **style[kind])
        ax.add_patch(plt.Rectangle((position * cell - 0.5, -0.5), cell, cell, fill=False, edgecolor="cyan", lw=1.5))
        ax.set_title(name, fontsize=9, loc="left")
        ax.axis("off")
    fig.suptitle(f"{experiment_name(run)}: hallucination-phase and last checkpoint, "
                 f"√ᾱ = {maps[0]['sqrt_alpha_bar']:.3f} (t = {maps[0]['t']})", fontsize=10)
    fig.tight_layout()
    return fig


def saliency_rows(maps: dict) -> list[dict]:
    """{run name: saliency_maps rows} -> one row per run and checkpoint: the LDR of the probed cell on the
    one image, beside the paper's Fig. 15 value."""
    return [{"run": name, "checkpoint": "hallucination phase" if i == 0 and len(rows) > 1 else "last",
             "step": m["step"], "eps-LDR": m["ldr_eps"], "x0-LDR": m["ldr_x0"], "paper (eps, Fig. 15)": PAPER_FIG15_LDR}
            for name, rows in maps.items() for i, m in enumerate(rows)]


# --- the exact denoisers -----------------------------------------------------------------------------
def plot_oracle_distances(runs: dict, profile: str, seed: int, levels=ORACLE_LEVELS):
    """Distance of the eps prediction to the rule, product and memoriser denoisers over training, per run."""
    runs = {n: r for n, r in runs.items() if "oracle_distance" in r.final}
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.2), squeeze=False)
    for ax, (name, run) in zip(axes[0], runs.items()):
        steps = [e["step"] for e in run.evaluations]
        for oracle, style in zip(ORACLES, ("-", "--", ":")):
            for level, color in zip(levels, ("#1b9e77", "#d95f02")):
                ax.plot(steps, [e["oracle_distance"][oracle][level] for e in run.evaluations], style, color=color,
                        label=f"{oracle}, √ᾱ={level}")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_title(name, fontsize=9)
    axes[0][0].set_ylabel("mean (eps_net − eps_oracle)²")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Distance to the exact denoisers over training — profile {profile}, seed {seed}")
    fig.tight_layout()
    return fig


def closest_oracle(distances: dict, level: str, margin: float = CLOSEST_MARGIN) -> str:
    """The exact denoiser nearest the network at a level, or "tie (a, b)" when the runner-up is within
    `margin` (relative) of it. `distances`: {oracle: {level: distance}}."""
    ranked = sorted(distances, key=lambda o: distances[o][level])
    near = [o for o in ranked if distances[o][level] < (1 + margin) * distances[ranked[0]][level]]
    return ranked[0] if len(near) == 1 else "tie (" + ", ".join(near) + ")"


def oracle_rows(runs: dict, levels=ORACLE_LEVELS) -> list[dict]:
    """Distance to each exact denoiser at the last evaluation, per run and level, and which is closest."""
    rows = []
    for name, run in runs.items():
        d = run.final.get("oracle_distance")
        rows += [{"run": name, "√ᾱ": lv, **{o: d[o][lv] for o in ORACLES}, "closest": closest_oracle(d, lv)}
                 for lv in levels] if d else []
    return rows


# --- what reproduced -----------------------------------------------------------------------------------
def parity_verdict(record: dict, num_samples: int) -> str:
    """The paper (Fig. 3): the symbols are learned and the rule is not, half of the legible samples break
    parity. Reproduced when at least LEGIBLE_PHASE of the samples are legible and PARITY_CHANCE lies in the
    Wilson interval of the rule-breaking share among them."""
    if legible(record) < LEGIBLE_PHASE:
        return "not reached: fewer than half the samples legible"
    low, high = broken_interval(record, num_samples)
    if low <= PARITY_CHANCE <= high:
        return "reproduced: symbols learned, parity at chance"
    return ("not reproduced: parity kept more often than chance" if high < PARITY_CHANCE
            else "not reproduced: parity broken more often than chance")


def parity_summary(run) -> dict:
    """Symbols first, then the rule at chance: legibility, rule-breaking among legible samples (last, and the
    range over evaluations with legible samples), the last categories, and the verdict."""
    ev, f = run.evaluations, run.final
    broken = [b for b in map(broken_among_legible, ev) if not math.isnan(b)]
    return {"legible_first": legible(ev[0]), "legible_last": legible(f), "first_legible_step": first_legible_step(ev),
            "broken_last": broken_among_legible(f), "broken_min": min(broken, default=math.nan),
            "broken_max": max(broken, default=math.nan), "in_dataset": f["categories"]["in_dataset"],
            "extrapolation": f["categories"]["extrapolation"],
            "verdict": parity_verdict(f, run.config["eval"]["num_samples"])}


def memorisation_verdict(in_dataset_share: float, independent: float) -> str:
    """The paper: at L=8 the model eventually reproduces training sequences (about a quarter still
    hallucinate). `in_dataset_share`: in-dataset among legible samples; `independent`: the same for
    independent symbols (NaN when no sample is legible)."""
    if math.isnan(in_dataset_share):
        return "not reached: no legible samples"
    if in_dataset_share >= MEMORISED:
        return "reproduced: the model reproduces its training set"
    if in_dataset_share >= independent + MEMORISATION_MARGIN:
        return "partly: memorisation under way"
    return "not reached: in-dataset at the level of independent symbols"


def memorisation_summary(run) -> dict:
    """In-dataset share at the first evaluation after step 0 and at the last, against a memoriser (no
    hallucinations) and independent symbols, and the memorisation verdict."""
    ev, f = run.evaluations, run.final
    first = next(e for e in ev if e["step"] > 0)
    independent = independent_in_dataset(run.setup.split.train)
    share = in_dataset_among_legible(f)
    return {"first_step": first["step"], "in_dataset_first": first["categories"]["in_dataset"],
            "in_dataset_last": f["categories"]["in_dataset"], "in_dataset_among_legible": share,
            "hallucination_last": f["categories"]["hallucination"], "independent_in_dataset": independent,
            "train_size": len(run.setup.split.train), "verdict": memorisation_verdict(share, independent)}


def dyck_verdict(phase: bool, peak_broken: float, last_broken: float, ldr_first: float, ldr_last: float) -> str:
    """The paper (Fig. 16): a hallucination phase (`phase`: an evaluation with half the samples legible and the
    rule at chance, `phases.at_chance`), then the rule is learned (at most DYCK_LEARNED of legible samples break
    it) while the x0-LDR falls from the phase to the end. Partly: a phase, and rule-breaking falling by at least
    DYCK_DROP from its peak (`peak_broken`, read at evaluations with half the samples legible)."""
    if not phase:
        return "not reproduced: no hallucination phase"
    if last_broken <= DYCK_LEARNED and ldr_last < ldr_first:
        return "reproduced: hallucination phase, then the rule learned as the LDR falls"
    if peak_broken - last_broken >= DYCK_DROP:
        return "partly: hallucination phase, the rule partly learned"
    return "partly: hallucination phase, the rule not learned"


def dyck_summary(run, level: str = "0.9") -> dict:
    """The rule-breaking peak and the end, the x0-LDR at `level` from the first evaluation with legible samples
    to the last, its correlation with the rule-breaking share over evaluations, and the verdict."""
    ev, f, n = run.evaluations, run.final, run.config["eval"]["num_samples"]
    ok = [e for e in ev if not math.isnan(broken_among_legible(e))]
    reading, peak, chance = run_phase(run), rule_breaking_peak(ev, n), chance_breaking(run)
    broken, x0 = [broken_among_legible(e) for e in ok], [e["ldr_x0"][level] for e in ok]
    corr = float(np.corrcoef(broken, x0)[0, 1]) if len(ok) > 2 else math.nan
    summary = {"phase_step": reading["record"]["step"], "peak_step": peak["step"],
               "peak_broken": broken_among_legible(peak), "chance": chance,
               "broken_last": broken_among_legible(f), "valid_last": f["categories"]["in_dataset"]
               + f["categories"]["extrapolation"], "in_dataset": f["categories"]["in_dataset"],
               "extrapolation": f["categories"]["extrapolation"], "ldr_x0_first": reading["record"]["ldr_x0"][level],
               "ldr_x0_last": f["ldr_x0"][level], "correlation": corr}
    summary["verdict"] = dyck_verdict(reading["kind"] == PHASE, summary["peak_broken"], summary["broken_last"],
                                      summary["ldr_x0_first"], summary["ldr_x0_last"])
    return summary


LABELS = {"legible_first": "legible, first", "legible_last": "legible, last",
          "first_legible_step": "≥ 50% legible from", "broken_last": "breaks rule (legible), last",
          "broken_min": "min over training", "broken_max": "max over training",
          "in_dataset": "in-dataset", "extrapolation": "extrapolation", "verdict": "verdict",
          "first_step": "first step", "in_dataset_first": "in-dataset, first", "in_dataset_last": "in-dataset, last",
          "in_dataset_among_legible": "in-dataset among legible", "hallucination_last": "hallucination, last",
          "independent_in_dataset": "same, independent symbols", "train_size": "training sequences",
          "peak_step": "peak step", "peak_broken": "breaks rule (legible), peak", "chance": "independent symbols",
          "valid_last": "valid, last", "ldr_x0_first": "x0-LDR √ᾱ=0.9, phase", "phase_step": "phase step",
          "ldr_x0_last": "x0-LDR √ᾱ=0.9, last", "correlation": "corr(breaks rule, x0-LDR)"}


def summary_table_rows(summaries: dict) -> list[dict]:
    """{run name: summary dict} -> one row per quantity (readable name under "quantity"), one column per run.
    Whole numbers (steps, counts) are given as text, so a column of fractions does not print them as 225.000."""
    keys = list(next(iter(summaries.values())))
    shown = lambda v: str(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else v  # noqa: E731
    return [{"quantity": LABELS.get(k, k), **{name: shown(s[k]) for name, s in summaries.items()}} for k in keys]


def glue_summary(glue, prefix: str, summary: dict) -> None:
    """Glue every number of a summary as PREFIX_KEY for `{glue:text}` in the prose."""
    for key, value in summary.items():
        if isinstance(value, (int, float, np.floating, np.integer)):
            glue(f"{prefix}_{key}", value)
