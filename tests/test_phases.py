"""The book's one definition of a phase, and the precedence of its verdicts, each with a case that must fail."""
import pytest

from ldrkit.analysis import phases as ph
from ldrkit.analysis.verdicts import (NOT_COMPUTED, NOT_DISCRIMINATING, NOT_REPRODUCED, PARTLY, REPRODUCED, combine,
                                      verdict_text)


def record(step, invalid=0.0, hallucination=0.0, in_dataset=0.0, extrapolation=0.0):
    return {"step": step, "categories": {"invalid": invalid, "hallucination": hallucination,
                                         "in_dataset": in_dataset, "extrapolation": extrapolation}}


def test_at_chance_needs_half_legible_and_an_interval_that_reaches_chance():
    # parity (chance 0.5): 128 legible of 256, 60 breaking: 0.47 [0.38, 0.55] reaches 0.5
    assert ph.at_chance(record(1, invalid=0.5, hallucination=60 / 256, extrapolation=68 / 256), 256, 0.5)
    # 20 breaking of 128 legible: 0.16 [0.10, 0.23], below chance: the rule is partly learned
    low = record(1, invalid=0.5, hallucination=20 / 256, extrapolation=108 / 256)
    assert not ph.at_chance(low, 256, 0.5) and ph.below_chance(low, 256, 0.5)
    # all breaking but only 30 of 256 legible (the Dyck UNet's step 225 of the old index): no reading at all
    few = record(1, invalid=226 / 256, hallucination=29 / 256, extrapolation=1 / 256)
    assert not ph.at_chance(few, 256, 0.785) and not ph.below_chance(few, 256, 0.785)


def test_phase_reading_is_the_first_evaluation_at_chance_else_says_why_not():
    ev = [record(0, invalid=1.0), record(10, invalid=0.9, hallucination=0.1),
          record(20, invalid=0.4, hallucination=0.3, extrapolation=0.3), record(30, invalid=0.0, hallucination=0.5,
                                                                               in_dataset=0.5)]
    reading = ph.phase_reading(ev, 256, 0.5)
    assert reading == {"record": ev[2], "kind": ph.PHASE}
    learned = [record(0, invalid=1.0), record(10, invalid=0.2, hallucination=0.05, in_dataset=0.75)]
    assert ph.phase_reading(learned, 256, 0.5) == {"record": learned[1], "kind": ph.RULE_LEARNED}
    illegible = [record(0, invalid=1.0), record(10, invalid=0.7, hallucination=0.3)]
    assert ph.phase_reading(illegible, 256, 0.5) == {"record": illegible[1], "kind": ph.NO_SYMBOLS}


def test_rule_breaking_peak_ignores_evaluations_with_few_legible_samples():
    ev = [record(0, invalid=0.9, hallucination=0.1), record(10, invalid=0.4, hallucination=0.4, extrapolation=0.2),
          record(20, invalid=0.1, hallucination=0.3, in_dataset=0.6)]
    assert ph.rule_breaking_peak(ev, 256)["step"] == 10   # step 0 breaks 100% of its 10% legible: not read
    assert ph.rule_breaking_peak(ev[:1], 256)["step"] == 0  # none legible enough: the last evaluation


R, P, N, D, X = REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_DISCRIMINATING, NOT_COMPUTED


@pytest.mark.parametrize("parts, expected", [
    ([R, R], R),
    ([R, N], P),      # one part reproduced, one not: partly
    ([P, N], N),      # no part fully reproduced and one fails: not reproduced
    ([N, D], N),      # a failed part outranks "not discriminating" (the old index read this as D)
    ([N, N], N),
    ([R, D], P),
    ([D, D], D),
    ([R, X], R),      # a part not computed on the page does not count against the rest ...
    ([N, X], N),
    ([X], X),         # ... unless nothing else was measured
])
def test_combine_precedence(parts, expected):
    assert combine([(str(k), s) for k, s in enumerate(parts)]) == expected


def test_verdict_text_names_every_part_and_refuses_unknown_statuses():
    assert verdict_text([("a", R), ("b", N)]) == "partly (a: reproduced; b: not reproduced)"
    with pytest.raises(ValueError):
        combine([("a", "maybe")])
