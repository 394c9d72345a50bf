"""The first act over seeds: the verdict against independent symbols, per seed and pooled (ldrkit.analysis.first_act)."""
import math

import pytest

from ldrkit.analysis import first_act as F
from ldrkit.probes.estimates import wilson


class FakeRun:
    """What first_act reads of a run: metrics (experiment, seed), evaluations and the sample count."""

    def __init__(self, experiment, seed, evaluations, n=256):
        self.metrics = {"experiment": experiment, "seed": seed}
        self.evaluations, self.final = evaluations, evaluations[-1]
        self.config = {"eval": {"num_samples": n}}


def ev(step, invalid, hallucination, n=256):
    """An evaluation with the given counts of invalid and hallucinated samples out of n (the rest in-dataset)."""
    return {"step": step, "categories": {"invalid": invalid / n, "hallucination": hallucination / n,
                                         "in_dataset": (n - invalid - hallucination) / n, "extrapolation": 0.0}}


def test_verdict_against_chance():
    assert F.verdict(0.4, 0.45, 0.55, 0.5) == "symbols not learned"
    assert F.verdict(0.9, math.nan, math.nan, 0.5) == "symbols not learned"
    assert F.verdict(0.9, 0.45, 0.55, 0.5) == "rule not learned (at chance)"
    assert F.verdict(0.9, 0.30, 0.45, 0.5).startswith("rule partly learned")
    assert F.verdict(0.9, 0.55, 0.70, 0.5) == "rule not learned (broken more than chance)"


def test_model_row_pools_the_seeds_legible_samples(monkeypatch):
    monkeypatch.setattr(F, "chance_breaking", lambda run: 0.5)
    # Parity is read at the end: 200 legible per seed, 100 / 110 / 90 break parity; the peak earlier is ignored.
    runs = [FakeRun("parity-parens-L16-unet", s, [ev(0, 56, 200), ev(100, 56, k)]) for s, k in enumerate((100, 110, 90))]
    row = F.model_row("parity", runs)
    assert row["seeds"] == 3 and row["read at"] == "end" and row["steps"] == "100/100/100"
    assert row["legible"] == pytest.approx(600 / 768) and row["pooled"] == pytest.approx(300 / 600)
    assert (row["low"], row["high"]) == pytest.approx(wilson(300, 600))
    assert row["mean"] == pytest.approx(0.5)
    # The seeds' spread (s.d. 0.05 / sqrt(3) = 0.029) is larger than the propagated binomial error (0.020).
    binomial = math.sqrt(sum(p * (1 - p) / 200 for p in (0.5, 0.55, 0.45))) / 3
    assert binomial < row["se"] == pytest.approx(0.05 / math.sqrt(3))
    assert row["verdict"] == "rule not learned (at chance)" and row["seeds not learning the rule"] == 3
    assert F.sentence([row]) == "1 of 1 models leave the rule unlearned in every seed read (parity, 3 seeds)"


def test_dyck_and_quarter_are_read_at_the_hallucination_phase(monkeypatch):
    from ldrkit.analysis import phases
    for module in (F, phases):
        monkeypatch.setattr(module, "chance_breaking", lambda run: 0.8)
    # The phase is the first evaluation half legible with the rule at chance (step 100: 160 of 200 legible break
    # it, [0.74, 0.85] reaches 0.8), not step 50, where the rule is broken less than chance would.
    run = FakeRun("dyck-parens-unet", 0, [ev(0, 250, 6), ev(50, 56, 120), ev(100, 56, 160), ev(150, 56, 40)])
    row = F.model_row("Dyck", [run])
    assert row["read at"] == "phase" and row["steps"] == "100" and row["pooled"] == pytest.approx(160 / 200)
    assert row["verdict"].startswith("rule not learned") and row["seeds not learning the rule"] == 1
    early = FakeRun("dyck-parens-unet", 0, [ev(0, 250, 6), ev(50, 56, 120), ev(150, 56, 40)])
    learned = F.model_row("Dyck", [early])   # never at chance once legible: read at the first legible evaluation
    assert learned["steps"] == "50" and learned["verdict"].startswith("rule partly learned")
    assert learned["seeds not learning the rule"] == 0
    assert row["seeds without the symbols"] == 0
    blurred = F.model_row("Quarter", [FakeRun("quarter-digits-dit", 0, [ev(0, 250, 6), ev(50, 200, 50)])])
    assert blurred["verdict"] == "symbols not learned" and blurred["seeds without the symbols"] == 1
    assert F.sentence([learned]) == "0 of 1 models leave the rule unlearned in every seed read"


def test_the_seeds_read_at_cpu_are_stored():
    """The chapters read these seeds at the cpu profile: the results store must give every one (nothing trains)."""
    from stored import assert_stored
    for label, name in F.MODELS.items():
        for seed in F.seeds(label, "cpu"):
            assert_stored(name, seed)
    assert F.seeds("Dyck UNet", "smoke", seed=3) == (3,) and F.seeds("Dyck UNet", "paper") == (0, 1, 2)
