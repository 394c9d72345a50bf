"""The sampler check: a run's last checkpoint sampled again (cached), both samplers' counts side by side, verdicts."""
import json
import math

import pytest

from ldrkit.analysis import samplers
from ldrkit.runs.request import run_experiment
from ldrkit.runs.run import Run
from ldrkit.runs.setup import Setup


def test_resampled_counts_every_sample_once_and_is_cached(tmp_path):
    run_experiment("quarter-digits-dit-token-n2", "smoke", seed=0, out=tmp_path, progress=False)
    run = Run(tmp_path)
    first = samplers.resampled(run, n=12, sampler="ddim", num_steps=4)
    assert first["step"] == run.steps()[-1] and sum(first["counts"].values()) == 12
    assert (tmp_path / "resampled.json").exists()

    def refuse(*args, **kwargs):
        raise AssertionError("a cached resample was computed again")
    original, Setup.generate = Setup.generate, refuse
    try:
        assert samplers.resampled(Run(tmp_path), n=12, sampler="ddim", num_steps=4)["counts"] == first["counts"]
    finally:
        Setup.generate = original
    rows = samplers.sampler_rows({"tiny": [run]}, n=12, sampler="ddim", num_steps=4)
    assert [r["sampler"] for r in rows] == ["DDIM, 10 steps", "DDIM, 4 steps"]  # smoke evaluates on 10 DDIM steps
    assert rows[1]["samples"] == 12 and rows[0]["samples"] == run.config["eval"]["num_samples"]
    with pytest.raises(ValueError, match="positive"):
        samplers.resampled(run, n=-1)


def _row(invalid, hallucination, n=256):
    """A row of `sampler_rows` from counts: `invalid` and `hallucination` samples of n, the rest in-dataset."""
    from ldrkit.probes.estimates import share as _share
    legible = n - invalid
    return {"invalid": _share(invalid, n), "hallucination / legible": _share(hallucination, legible),
            "in-dataset / legible": _share(legible - hallucination, legible)}


def test_the_verdicts_read_the_wilson_intervals():
    ddim, ancestral = _row(160, 36), _row(56, 72)  # the stored token DiT n = 32 at the end (rounded counts)
    assert samplers.legibility_shift([ddim, ancestral])  # 0.62 vs 0.22 invalid: far outside both intervals
    assert samplers.rule_share_stable([ddim, ancestral])  # 0.375 vs 0.36 of legible
    assert not samplers.legibility_shift([ddim, _row(150, 36)])
    assert not samplers.rule_share_stable([_row(50, 10), _row(50, 100)])  # 0.05 vs 0.49 of legible
    assert samplers.second_act_reached(ancestral) and not samplers.second_act_reached(ddim)
    assert not samplers.second_act_reached(_row(56, 110))  # legible, but most of it hallucinated
    nothing = _row(256, 0)
    assert math.isnan(nothing["hallucination / legible"][0]) and not samplers.rule_share_stable([nothing, ancestral])


def test_the_sentence_counts_both_verdicts_over_the_models():
    ddim, ancestral = _row(160, 36), _row(56, 72)
    sentence = samplers.shift_sentence({"moved": [ddim, ancestral], "held": [ddim, _row(150, 36)],
                                        "rule moved": [_row(50, 10), _row(50, 100)]})
    assert "for 1 of 3 models (moved)" in sentence
    assert "agrees within the intervals for 2 of 3" in sentence
    assert "(none)" in samplers.shift_sentence({"held": [ddim, _row(150, 36)]})


def test_the_redrawn_runs_read_at_cpu_are_stored_with_their_redraw():
    """The second-act and real-text chapters redraw these runs at the cpu profile: the store must hold each run with
    the paper sampler's draw cached (an ancestral draw costs a UNet minutes)."""
    from ldrkit.analysis.real_text import TEXT_RUNS
    from ldrkit.runs.files import read_json
    from ldrkit.spec.selections import FIRST_ACT_SAMPLER_CHECK
    from stored import assert_stored
    for name in [*FIRST_ACT_SAMPLER_CHECK.values(), *TEXT_RUNS.values()]:
        path = assert_stored(name, 0)
        assert (path / "resampled.json").exists(), f"{name} seed 0: no stored redraw"
        keys = [json.loads(k) for k in read_json(path / "resampled.json")["entries"]]
        assert {"sampler": "ddpm", "num_steps": None} in [{k: key[k] for k in ("sampler", "num_steps")} for key in keys]
