import numpy as np

from ldrkit.spec.registry import get_experiment
from ldrkit.denoisers.oracles import build_oracle
from ldrkit.runs.setup import Setup
from ldrkit.probes.trajectories import split_by_outcome, trajectory_ldr


def test_trajectory_ldr_of_the_product_oracle_is_one_for_every_outcome():
    setup = Setup.from_config(get_experiment("parity-mlp-L8").config("smoke", 0))
    product = build_oracle(setup, "product")
    result = trajectory_ldr(setup, product, n=48, seed=0, num_steps=50)
    assert len(result["labels"]) == 48
    table = split_by_outcome(result, "x0")
    for level, row in table.items():
        assert row["valid"][2] + row["hallucination"][2] == 48  # the product oracle's samples are all legible
        for group in ("valid", "hallucination"):
            if row[group][2]:
                assert abs(row[group][0] - 1) < 1e-5, (level, group, row)
    # the visited timesteps run from high to low noise
    ts = [result["levels"][l]["t"] for l in result["levels"]]
    assert ts == sorted(ts, reverse=True)
    assert set(np.unique(result["labels"])) <= {"hallucination", "in_dataset", "extrapolation"}
