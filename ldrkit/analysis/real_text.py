"""The real-text chapter's analysis: English words and Chinese characters (section 6, Figs. 7, 20, 21).

What the reader decides on hand-made and perturbed images, the category fractions over training,
the hallucination phase and its verdicts, the galleries of misspellings and invented characters,
and the saliency of the x0 output on R early and late (cached in the run folder).
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from ..runs.run import Run
from ..runs.setup import Setup
from ..spec.registry import get_experiment
from ..systems.categories import CATEGORIES, broken_among_legible, fractions, legible
from .phases import NO_SYMBOLS, PHASE, independent_valid_probability, run_phase
from .plots import CATEGORY_COLORS, plot_categories

# --- thresholds of the chapter's verdicts ----------------------------------------------------------
MIN_LEGIBLE = 0.05          # the last legible evaluation: the last with at least this share of legible samples
MEMORISED = 0.5             # memorisation reached: at least this share of samples in the training set
LDR_FALL = 0.02             # the x0-LDR "fell" when the last value is below the peak's by more than this
INDEPENDENT_WITHIN = 0.05   # misspelled share within this of an independent-letters sampler's: "as if independent"

TEXT_RUNS = {"english": "english-words-unet", "chinese": "chinese-chars-unet"}
THINGS = {"english": "misspellings", "chinese": "invented characters"}
PERTURBATIONS = (("noise", 0.05), ("noise", 0.1), ("noise", 0.2), ("noise", 0.3),
                 ("blur", 0.5), ("blur", 0.7), ("blur", 1.0))
LEVEL = "0.2"               # the sqrt(alpha_bar) level of section 6's LDR


# --- setups, fonts -----------------------------------------------------------------------------------
def text_setups(profile: str, seed: int) -> dict[str, Setup]:
    """The English and Chinese Setups of a profile (grammar, split, renderer), built without training."""
    return {k: Setup.from_config(get_experiment(name).config(profile, seed)) for k, name in TEXT_RUNS.items()}


def use_cjk_font() -> None:
    """Let matplotlib draw Chinese labels: the packaged Noto Sans CJK font as a fallback after DejaVu Sans."""
    from matplotlib import font_manager

    from ..systems.chinese import cjk_font_path
    font_manager.fontManager.addfont(str(cjk_font_path()))
    plt.rcParams["font.family"] = ["DejaVu Sans", font_manager.FontProperties(fname=str(cjk_font_path())).get_name()]


def lexicon_rows(setups: dict[str, Setup]) -> list[dict]:
    """One row per lexicon: its grammar, lengths, training and held-out sizes, most frequent entries, font."""
    from ..systems.chinese import cjk_font_path
    from ..systems.english import mono_font_path
    en, zh = setups["english"], setups["chinese"]
    return [{"lexicon": "English", "grammar": repr(en.grammar),
             "lengths": f"{min(map(len, en.grammar.words))}-{max(map(len, en.grammar.words))} letters",
             "training": len(en.split.train), "held out": len(en.split.held_out),
             "most frequent": " ".join(en.grammar.words[:25]), "font": mono_font_path().name},
            {"lexicon": "Chinese", "grammar": repr(zh.grammar), "lengths": "1 character",
             "training": len(zh.split.train), "held out": len(zh.split.held_out),
             "most frequent": "".join(zh.grammar.chars[:40]), "font": cjk_font_path().name}]


# --- the reader on hand-made and perturbed images ----------------------------------------------------
def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of (n, c, h, w) images over the two image axes, the outside read as background (-1)."""
    out = gaussian_filter(np.asarray(x, dtype=np.float32), sigma=(0, 0, sigma, sigma), mode="constant", cval=-1.0)
    return torch.as_tensor(out)


def half_and_half(renderer, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Images whose left half comes from `left` and right half from `right` (Chinese invented characters)."""
    out = left.clone()
    out[..., renderer.size // 2:] = right[..., renderer.size // 2:]
    return out


def reader_cases(en: Setup, zh: Setup, sigma: float = 1.0) -> dict[str, list[dict]]:
    """The reader's decisions on hand-made cases: a real, a swapped, a held-out and a blurred English word;
    a real, a half-and-half and a blurred Chinese character. Per case: title, image, label and reading."""
    from ..systems.english import decode_strings
    train_words = {w.rstrip("_") for w in decode_strings(en.split.train)}
    word = next(w for w in en.grammar.words if w in train_words and len(w) == en.grammar.length)
    held = next(w for w in en.grammar.words if w not in train_words)
    xe = en.renderer.render_words([word, word[1] + word[0] + word[2:], held, word])
    xe[3:] = blur(xe[3:], sigma)
    a, b = zh.grammar.chars[10], zh.grammar.chars[3]
    xz = zh.renderer.render_chars([a, a, a])
    xz[1] = half_and_half(zh.renderer, xz[1], zh.renderer.render_chars([b])[0])
    xz[2:] = blur(xz[2:], sigma)
    reading = zh.renderer.read(xz)
    english = [{"title": t, "image": img, "label": lab, "read": f"read '{s}'"}
               for t, img, lab, s in zip(["real word", "swapped letters", "held-out word", "blurred"], xe,
                                         en.categorize(xe), en.renderer.read_strings(xe))]
    chinese = [{"title": t, "image": img, "label": lab, "read": f"distance {d:.2f}"}
               for t, img, lab, d in zip(["real character", f"left of {a} + right of {b}", "blurred"], xz,
                                         zh.categorize(xz), reading.distance)]
    return {"english": english, "chinese": chinese}


def plot_reader_cases(cases: dict[str, list[dict]], profile: str):
    """Two rows of panels (English, Chinese), each titled with the reading and coloured by its category."""
    fig, axes = plt.subplots(2, 4, figsize=(10, 3.2))
    for row, key in enumerate(("english", "chinese")):
        for ax in axes[row]:
            ax.axis("off")
        for ax, c in zip(axes[row], cases[key]):
            ax.imshow(c["image"][0], cmap="gray", vmin=-1, vmax=1)
            ax.set_title(f"{c['title']}\n{c['read']}: {c['label']}", fontsize=8, color=CATEGORY_COLORS[c["label"]])
    fig.suptitle(f"The reader's decisions on hand-made cases ({profile} profile image sizes)", fontsize=10)
    fig.tight_layout()
    return fig


def chinese_thresholds(renderer) -> list[dict]:
    """The Chinese reader's thresholds as table rows: match distance and the three sharpness checks."""
    r = renderer
    return [{"check": "is that character", "rule": f"distance <= {r.match * r.nearest_gap:.3f} "
                                                   f"({r.match} x the median gap {r.nearest_gap:.3f})"},
            {"check": "sharp: grey share", "rule": f"<= {r.grey_max + r.grey_slack:.2f}"},
            {"check": "sharp: ink coverage", "rule": f"in [{r.ink_range[0]:.3f}, {r.ink_range[1]:.3f}]"},
            {"check": "sharp: roughness", "rule": f"<= {r.rough_factor * r.rough_max:.2f}"}]


def distinct_pairs(size: int, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n index pairs (i, j) into `size` items with j != i, uniform over such pairs: the two halves of an invented
    character are never the same character."""
    i = torch.randint(0, size, (n,), generator=gen)
    return i, (i + torch.randint(1, size, (n,), generator=gen)) % size


def reader_robustness(en: Setup, zh: Setup, seed: int, perturbations=PERTURBATIONS,
                      combinations: int = 300) -> tuple[list[dict], dict]:
    """The reader on every lexicon entry under pixel noise (std sigma) and blur (sigma pixels), and on
    `combinations` random half-and-half Chinese characters.

    Returns (one row per perturbation: legible and misread shares per language,
    {pairs drawn, then the invented, read-as-a-lexicon-character and invalid shares of the half-and-half
    characters, two different characters each (`distinct_pairs`)}).
    """
    gen = torch.Generator().manual_seed(seed)
    xe, xz = en.renderer.render(en.grammar.enumerate()), zh.renderer.render(zh.grammar.enumerate())
    rows = []
    for kind, sigma in perturbations:
        pe, pz = [x + sigma * torch.randn(x.shape, generator=gen) if kind == "noise" else blur(x, sigma)
                  for x in (xe, xz)]
        fe, fz = fractions(en.categorize(pe)), fractions(zh.categorize(pz))
        rows.append({"perturbation": f"{kind} {sigma}", "English legible": 1 - fe["invalid"],
                     "English misread as another string": fe["hallucination"],
                     "Chinese legible": 1 - fz["invalid"], "Chinese read as invented": fz["hallucination"]})
    i, j = distinct_pairs(len(xz), combinations, gen)
    fc = fractions(zh.categorize(half_and_half(zh.renderer, xz[i], xz[j])))
    return rows, {"pairs drawn": combinations, "invented": fc["hallucination"],
                  "read as a lexicon character": fc["in_dataset"] + fc["extrapolation"], "invalid": fc["invalid"]}


# --- runs: settings, fractions, phases ----------------------------------------------------------------
def training_rows(runs: dict[str, Run]) -> list[dict]:
    """One row per run: image shape, steps, batch, learning rate, samples and LDR settings, wall time."""
    rows = []
    for key, run in runs.items():
        c, ev = run.config, run.config["eval"]
        rows.append({"run": TEXT_RUNS[key], "image": str(tuple(run.setup.renderer.signal_shape)),
                     "steps": run.final["step"], "batch": c["train"]["batch_size"], "Adam lr": c["train"]["lr"],
                     "samples per evaluation": ev["num_samples"], "DDIM steps": ev["sample_steps"],
                     "LDR": f"{ev.get('ldr_method', 'exact')} on {ev['ldr_samples']} noised training images",
                     "wall seconds": round(run.metrics["wall_seconds"])})
    return rows


def among_legible(evaluations: list[dict]) -> list[float]:
    """Hallucinations among legible samples per evaluation (NaN where nothing is legible)."""
    return [broken_among_legible(e) for e in evaluations]


def category_table(runs: dict[str, Run]) -> list[dict]:
    """One row per run and evaluation: the four fractions, hallucinations among legible, x0-LDR at LEVEL."""
    return [{"run": TEXT_RUNS[key], "step": e["step"], **{c: e["categories"][c] for c in CATEGORIES},
             "hallucination among legible": broken_among_legible(e), f"x0-LDR at {LEVEL}": e["ldr_x0"][LEVEL]}
            for key, run in runs.items() for e in run.evaluations]


def chance_word(setup: Setup) -> float:
    """P(a lexicon word) for letters drawn independently per position with the training words' frequencies."""
    return independent_valid_probability(setup.grammar, setup.split.train)


def phase_step(run: Run) -> int:
    """The hallucination-phase checkpoint (`phases.run_phase`, the book's one definition)."""
    return run_phase(run)["record"]["step"]


def labelled_samples(run: Run, step: int) -> tuple[torch.Tensor, np.ndarray]:
    """The stored samples of one evaluation and the reader's category for each."""
    x = run.samples(step)
    return x, run.setup.categorize(x)


def pick(labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the first k hallucinations and of the first k samples read as lexicon entries."""
    return (np.flatnonzero(labels == "hallucination")[:k],
            np.flatnonzero(np.isin(labels, ["in_dataset", "extrapolation"]))[:k])


def misspellings(run: Run, step: int, limit: int = 60) -> list[str]:
    """The distinct misspelled strings of one English evaluation, sorted (at most `limit`)."""
    x, labels = labelled_samples(run, step)
    strings = run.setup.renderer.read_strings(x)
    return sorted({strings[i].rstrip("_") for i in np.flatnonzero(labels == "hallucination")})[:limit]


# --- figures of the runs ---------------------------------------------------------------------------
def plot_text_categories(runs: dict[str, Run], profile: str, seed: int):
    """Stacked categories of each run and the hallucinations among legible samples of both."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for ax, (key, run) in zip(axes, runs.items()):
        plot_categories(run.evaluations, ax=ax, title=TEXT_RUNS[key])
        ev = run.evaluations
        axes[2].plot([e["step"] for e in ev], among_legible(ev), "-o" if key == "english" else "-s",
                     label=TEXT_RUNS[key])
    axes[2].set(ylim=(0, 1.02), xlabel="training step", ylabel="hallucination / legible",
                title="hallucinations among legible samples")
    axes[0].legend(loc="lower left", fontsize=7)
    axes[2].legend(fontsize=7)
    fig.suptitle(f"Categories over training — profile {profile}, seed {seed}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_gallery(run: Run, step: int, key: str, profile: str, seed: int, k: int = 12):
    """Hallucinations (top row) beside samples read as lexicon entries (bottom row) of one evaluation.

    English panels are titled with the string read; Chinese invented characters with the nearest
    lexicon character and its distance, real ones with the character.
    """
    x, labels = labelled_samples(run, step)
    renderer, bad_good = run.setup.renderer, pick(labels, k)
    if key == "english":
        strings = [s.rstrip("_") for s in renderer.read_strings(x)]
        titles = [strings, strings]
    else:
        reading = renderer.read(x)
        near = [run.setup.grammar.chars[i] for i in reading.nearest]
        titles = [[f"≈{c} {d:.2f}" for c, d in zip(near, reading.distance)], near]
    names = ("misspellings", "real words") if key == "english" else ("invented", "real")
    fig, axes = plt.subplots(2, k, figsize=(15, 2.4 if key == "english" else 2.8), squeeze=False)
    for row, idx in enumerate(bad_good):
        for ax in axes[row]:
            ax.axis("off")
        for ax, i in zip(axes[row], idx):
            ax.imshow(x[i, 0], cmap="gray", vmin=-1, vmax=1)
            ax.set_title(titles[row][i], fontsize=9, color=CATEGORY_COLORS[labels[i]])
        axes[row, 0].text(-0.1, 0.5, names[row], transform=axes[row, 0].transAxes, ha="right", va="center",
                          fontsize=9)
    fig.suptitle(f"{TEXT_RUNS[key]} at step {step} — profile {profile}, seed {seed} ({len(bad_good[0])} of "
                 f"{int((labels == 'hallucination').sum())} {THINGS[key]} shown)", fontsize=10)
    return fig


def plot_text_ldr(runs: dict[str, Run], profile: str, seed: int):
    """LDR of R at LEVEL over training, eps output (left) and x0 output (right), both runs."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharey=True)
    for ax, out in zip(axes, ("ldr", "ldr_x0")):
        for key, run in runs.items():
            ev = run.evaluations
            ax.plot([e["step"] for e in ev], [e[out][LEVEL] for e in ev], "-o" if key == "english" else "-s",
                    label=TEXT_RUNS[key])
        ax.set(xlabel="training step", ylim=(0, 1.02))
        ax.set_title(f"LDR of {'eps' if out == 'ldr' else 'x0'} at √ᾱ = {LEVEL}", fontsize=10)
    axes[0].set_ylabel("LDR")
    axes[0].legend(fontsize=8)
    n = next(iter(runs.values())).config["eval"]["ldr_samples"]
    fig.suptitle(f"LDR over training ({n} noised training images per evaluation) — profile {profile}, seed {seed}",
                 fontsize=10)
    fig.tight_layout()
    return fig


# --- saliency early and late (Fig. 21) ---------------------------------------------------------------
def heat_rows(run: Run, steps: list[int], level: float = 0.1, seed: int = 0) -> list[dict]:
    """One training image noised to sqrt(alpha_bar) = level, the model's x0 estimate and the saliency of the
    x0 output on R, at each step; cached in the run folder (`Run.cached`, name "text_saliency").

    Per step: {"step", "x_t", "x0_hat" (renderer space), "saliency" (2-D lists), "x0", "eps" (LDR means)}.
    """
    from ..probes import ldr as ldr_probe
    setup = run.setup
    region = setup.renderer.region(run.config["eval"]["ldr_position"])
    t = setup.schedule.timestep_for(level)

    def compute(model, step: int) -> dict:
        g = torch.Generator().manual_seed(seed)
        x0 = setup.train_data[torch.randint(0, len(setup.train_data), (1,), generator=g)]
        xt = setup.schedule.add_noise(x0, torch.randn(x0.shape, generator=g), torch.tensor([t]))
        with torch.no_grad():
            x0_hat = setup.schedule.x0_from_eps(xt, model(xt, torch.tensor([t])), t) + setup.shift
        res = ldr_probe.ldr(model, setup.schedule, region, inputs=xt, t=t, outputs=("eps", "x0"),
                            return_saliency=True)
        return {"x_t": xt[0, 0].tolist(), "x0_hat": x0_hat[0, 0].tolist(),
                "saliency": np.asarray(res["x0"].saliency)[0, 0].tolist(),
                "x0": res["x0"].mean, "eps": res["eps"].mean}

    return run.cached("text_saliency", {"level": level, "seed": seed}, list(steps), compute)


def plot_heat(runs: dict[str, Run], heat: dict[str, list[dict]], profile: str, seed: int, level: float = 0.1):
    """Per run and checkpoint (rows): x_t, x0_hat and the x0 saliency on R, with R boxed."""
    fig, axes = plt.subplots(sum(len(heat[k]) for k in runs), 3, figsize=(10, 7.5), squeeze=False)
    row = 0
    for key, run in runs.items():
        ys, xs = np.nonzero(run.setup.renderer.region(run.config["eval"]["ldr_position"])[0].numpy())
        for h in heat[key]:
            panels = [("x_t", h["x_t"], {"cmap": "gray"}),
                      ("x0_hat", h["x0_hat"], {"cmap": "gray", "vmin": -1, "vmax": 1}),
                      (f"saliency of x0 (LDR {h['x0']:.3f})", h["saliency"], {"cmap": "magma"})]
            for ax, (title, img, kw) in zip(axes[row], panels):
                ax.imshow(np.asarray(img), **kw)
                ax.add_patch(plt.Rectangle((xs.min() - 0.5, ys.min() - 0.5), xs.max() - xs.min() + 1,
                                           ys.max() - ys.min() + 1, fill=False, edgecolor="cyan", lw=1.5))
                ax.set_title(f"{TEXT_RUNS[key]} step {h['step']}: {title}", fontsize=8, loc="left")
                ax.axis("off")
            row += 1
    fig.suptitle(f"Saliency on R at √ᾱ = {level}, early vs late — profile {profile}, seed {seed}", fontsize=10)
    fig.tight_layout()
    return fig


def heat_table(heat: dict[str, list[dict]]) -> list[dict]:
    """One row per run and checkpoint of `heat_rows`: the one image's x0- and eps-LDR of R."""
    return [{"run": TEXT_RUNS[key], "step": h["step"], "x0-LDR": h["x0"], "eps-LDR": h["eps"]}
            for key, rows in heat.items() for h in rows]


# --- verdicts --------------------------------------------------------------------------------------
def hallucination_phase(run: Run) -> dict:
    """The hallucination phase of a run and its verdict (`phases.run_phase`): "reproduced" at an evaluation with half
    the samples legible and misspellings (invented characters) at the rate of independent letters (components),
    "did not reproduce: the rule learned" when legible samples break it significantly less, "not reached" when
    the symbols never are legible. Returns {"verdict", "peak" (the evaluation read, or None)}."""
    reading = run_phase(run)
    if reading["kind"] == NO_SYMBOLS:
        return {"verdict": "not reached", "peak": None}
    return {"verdict": "reproduced" if reading["kind"] == PHASE else f"did not reproduce: {reading['kind']}",
            "peak": reading["record"]}


def memorised(record: dict) -> bool:
    """Memorisation reached: at least MEMORISED of the samples are training-set entries."""
    return record["categories"]["in_dataset"] >= MEMORISED


def ldr_fell(before: float, after: float) -> bool:
    """The x0-LDR fell: `after` is below `before` by more than LDR_FALL."""
    return after < before - LDR_FALL


def independent_letters(misspelled: float, chance_misspelled: float) -> bool:
    """The model misspells like letters drawn independently: within INDEPENDENT_WITHIN of that sampler's share."""
    return abs(misspelled - chance_misspelled) <= INDEPENDENT_WITHIN


def last_legible(evaluations: list[dict]) -> dict | None:
    """The last evaluation with at least MIN_LEGIBLE legible samples (None if none)."""
    return next((e for e in reversed(evaluations) if legible(e) >= MIN_LEGIBLE), None)


def summary_rows(runs: dict[str, Run]) -> list[dict]:
    """What reproduced, one row per quantity and one column per run: the hallucination phase (verdict, peak,
    shares), the last evaluation, memorisation, and the x0-LDR at LEVEL at the peak and at the end with its
    verdict. Floats are rounded to 3 digits."""
    columns = {}
    for key, run in runs.items():
        ev = run.evaluations
        phase, last = hallucination_phase(run), ev[-1]
        peak = phase["peak"] or {}
        before, after = (peak["ldr_x0"][LEVEL], last["ldr_x0"][LEVEL]) if peak else (math.nan, math.nan)
        columns[TEXT_RUNS[key]] = {
            "hallucination phase": phase["verdict"], "peak step": peak.get("step", "n/a"),
            "hallucinations at the peak (all samples)": peak["categories"]["hallucination"] if peak else math.nan,
            "hallucinations at the peak (among legible)": broken_among_legible(peak) if peak else math.nan,
            "legible at the peak": legible(peak) if peak else math.nan,
            "last step": last["step"], **{f"{c} at the last step": last["categories"][c] for c in CATEGORIES},
            f"memorised (in_dataset >= {MEMORISED})": "yes" if memorised(last) else "not reached",
            f"x0-LDR at {LEVEL}, peak": before, f"x0-LDR at {LEVEL}, last": after,
            "x0-LDR fell": "n/a" if not peak else "yes" if ldr_fell(before, after) else f"no (by at most {LDR_FALL})"}
    names = list(next(iter(columns.values())))
    return [{"quantity": q, **{run: _rounded(col[q]) for run, col in columns.items()}} for q in names]


def _rounded(value, digits: int = 3):
    return round(value, digits) if isinstance(value, float) else value


def independence_row(run: Run, chance: float) -> dict:
    """The English run's misspelled share of legible samples at its last legible evaluation against the
    independent-letters sampler's (1 - chance), with the verdict."""
    last = last_legible(run.evaluations)
    if last is None:
        return {"step": None, "model misspells": math.nan, "independent letters misspell": 1 - chance,
                "verdict": "no legible evaluation"}
    share = broken_among_legible(last)
    return {"step": last["step"], "model misspells": share, "independent letters misspell": 1 - chance,
            "verdict": (f"within {INDEPENDENT_WITHIN}: as if the letters were drawn independently"
                        if independent_letters(share, 1 - chance) else f"more than {INDEPENDENT_WITHIN} away")}
