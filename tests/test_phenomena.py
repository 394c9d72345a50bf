"""The paper's effects, measured by training at a CI-sized budget (no recorded outcomes).

Bounds come from the paper and from exact counting, not from earlier runs:
- a model that samples each coordinate independently and uniformly breaks parity with
  probability exactly 1/2, and lands on a given training sequence with probability 2^-L;
- the paper (Fig. 3, L=16): the fraction of hallucinations stays near one half.
"""
import pytest

from ldrkit.runs.request import run_experiment

CI_BUDGET = {"train": {"eval_every": 2000}, "eval": {"num_samples": 1024, "sample_steps": 1000, "ldr_samples": 32}}


@pytest.mark.long(seconds=160)
def test_parity_L16_mlp_hallucinates_about_half_of_its_samples(tmp_path):
    m = run_experiment("parity-mlp-L16", "cpu", seed=0, out=tmp_path, progress=False,
                       overrides={**CI_BUDGET, "train": {"steps": 8000, "eval_every": 4000}})
    final = m["final"]["categories"]
    assert final["invalid"] < 0.3, final  # the symbols are learned
    assert 0.35 <= final["hallucination"] <= 0.65, final
    legible = 1 - final["invalid"]
    assert 0.4 <= final["hallucination"] / legible <= 0.6, final  # chance level among legible samples


@pytest.mark.long(seconds=135)
def test_parity_L8_mlp_memorises_its_training_set(tmp_path):
    m = run_experiment("parity-mlp-L8", "cpu", seed=0, out=tmp_path, progress=False,
                       overrides={**CI_BUDGET, "train": {"steps": 6000, "eval_every": 2000}})
    ev = m["evaluations"]
    in_dataset = [e["categories"]["in_dataset"] for e in ev]
    # An independent-coordinates sampler hits the 64 training sequences with probability 64/256.
    assert in_dataset[-1] > 0.5, in_dataset
    assert in_dataset[-1] > in_dataset[1], in_dataset  # rising with training
    assert ev[-1]["categories"]["extrapolation"] < 0.1  # held-out sequences are not produced
