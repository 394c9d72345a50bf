"""Real text: common English words and Chinese characters (section 6, appendix A.7.4, Figs. 7, 20, 21), smaller
lexicons of each (issue 14: the overfitting phase on a CPU), kappa across the English onset, and the exact
denoisers the readers are checked with."""
from __future__ import annotations

from typing import Callable

from .registry import ORACLES, Experiment, derive, kappa_experiment, register, register_oracles
from .sizes import image_spec

# The paper's levels plus 0.2, where section 6 reads the LDR of real text (Fig. 7 left).
TEXT_LDR_LEVELS = [0.1, 0.2, 0.3, 0.5, 0.7, 0.9]
# English: the most frequent words of wordfreq's top list (letters a-z only), one cell per letter, padded
# with blank cells to the longest length. cpu: 3-4 letter words in 12x12 cells; paper: 1000 words of up to
# 10 letters in 32-pixel cells (the paper gives neither the rendering nor the image size for words).
_ENGLISH = {"smoke": ({"size": 60, "min_length": 3, "max_length": 4}, 12),
            "cpu": ({"size": 500, "min_length": 3, "max_length": 4}, 12),
            "paper": ({"size": 1000, "min_length": 1, "max_length": 10}, 32)}
# Chinese: the most frequent single characters of wordfreq's "zh" list in Noto Sans CJK SC (mplfonts).
_CHINESE = {"smoke": (60, 24), "cpu": (1000, 24), "paper": (1000, 64)}
# The text LDR is estimated with random probes (exact rows cost 288 VJPs each at cpu).
_TEXT_EVAL = {"smoke": {"ldr_samples": 1, "ldr_method": "estimate", "ldr_probes": 8},
              "cpu": {"ldr_samples": 8, "ldr_method": "estimate", "ldr_probes": 32}}


def _text(grammar: Callable[[str], dict], render: Callable[[str], dict], position) -> Callable[[str, int], dict]:
    def make(profile: str, seed: int) -> dict:
        spec = image_spec(profile, seed, grammar=grammar(profile), train_fraction=0.9, render=render(profile),
                          model="unet", cpu_steps=3000, cpu_evals=10, paper_steps=200_000, paper_eval_every=10_000,
                          eval={"sampler": "ddim", "ldr_position": position, "ldr_levels": TEXT_LDR_LEVELS,
                                **_TEXT_EVAL.get(profile, {})},
                          ldr_samples={"smoke": 1, "cpu": 8})
        if profile == "smoke":
            spec["train"].update(steps=30, eval_every=15)
        return spec
    return make


register(Experiment("english-words-unet",
                    "The most common English words (wordfreq) as images, one letter cell each; 90% in training; UNet",
                    # R = the first and second letter (Figs. 7, 21).
                    _text(lambda p: {"name": "english-words", **_ENGLISH[p][0]},
                          lambda p: {"type": "english", "cell": _ENGLISH[p][1]}, [0, 1])))
register(Experiment("chinese-chars-unet",
                    "The most common Chinese characters (wordfreq) as Noto Sans CJK images; 90% in training; UNet",
                    # R = the left half of the character, where the left-hand component (radical) sits.
                    _text(lambda p: {"name": "chinese-chars", "size": _CHINESE[p][0]},
                          lambda p: {"type": "hanzi", "size": _CHINESE[p][1], "lexicon_size": _CHINESE[p][0]}, "left")))

# Smaller lexicons (issue 14): does the text UNet reach the paper's overfitting phase, and its LDR fall, on a CPU?
# TEXT_LEXICON_SWEEP[language] = lexicon sizes (90% of each in training), trained like the full runs.
TEXT_LEXICON_SWEEP = {"english-words-unet": (20, 80), "chinese-chars-unet": (20,)}


def with_lexicon(base: str, size: int) -> Callable[[str, int], dict]:
    """The text experiment `base` on its `size` most frequent entries (the smoke lexicon if that is smaller)."""
    def edit(spec: dict, profile: str, seed: int) -> None:
        size_here = min(size, spec["grammar"]["size"])
        spec["grammar"]["size"] = size_here
        if "lexicon_size" in spec["render"]:
            spec["render"]["lexicon_size"] = size_here   # the Chinese reader compares with this lexicon
    return derive(base, edit)


for _base, _sizes in TEXT_LEXICON_SWEEP.items():
    for _size in _sizes:
        register(Experiment(f"{_base}-lex{_size}", f"{_base} on its {_size} most frequent entries (90% in training)",
                            with_lexicon(_base, _size)))

# kappa across the onset on real text: the English 20-entry lexicon (memorises on a CPU) with kappa at every
# evaluation, at the level where the English oracles separate (rule signal 1.2e-3 at sqrt(abar) = 0.4 on the stored
# seed 0's 16 calibration inputs, below the 1e-3 threshold at 0.45; the real-text chapter's KAPPA_LEVELS). Its
# memoriser sits near kappa 1 there (0.88-1.01 over the three stored seeds), so memorising moves kappa up.
TEXT_KAPPA_LEVEL = 0.4
register(kappa_experiment("english-words-unet-lex20", [TEXT_KAPPA_LEVEL]))

# The readers checked on generated samples: the exact denoisers of the text data sampled like a model.
# English: the lexicon (rule), letters drawn independently per cell (product), the training words
# (memoriser); Chinese: the lexicon and the training characters (a character has no cells to mix).
TEXT_ORACLES = {"english-words-unet": ORACLES, "chinese-chars-unet": ("rule", "memoriser")}
for _base, _whiches in TEXT_ORACLES.items():
    register_oracles(_base, _whiches)
