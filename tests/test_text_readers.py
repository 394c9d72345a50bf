"""The text readers on generated samples: the oracles' exact shares, the verdict, the Chinese distance ruler."""
import numpy as np
import pytest
import torch

from ldrkit.analysis import text_readers as rd
from ldrkit.analysis.real_text import text_setups
from ldrkit.runs.request import get_run
from ldrkit.spec.text import TEXT_ORACLES


@pytest.fixture(scope="module")
def setups():
    return text_setups("smoke", 0)


def test_exact_shares_follow_the_split(setups):
    en = setups["english"]
    lexicon, train = len(en.grammar.enumerate()), len(en.split.train)
    assert rd.exact_shares("memoriser", en) == {"in_dataset": 1.0}
    rule = rd.exact_shares("rule", en)
    assert rule["lexicon word"] == 1.0 and rule["extrapolation"] == pytest.approx(1 - train / lexicon)
    product = rd.exact_shares("product", en)["lexicon word"]
    assert 0.0 < product < 1.0
    with pytest.raises(ValueError, match="no exact shares"):
        rd.exact_shares("linear", en)


def test_count_and_verdict():
    labels = np.array(["in_dataset", "extrapolation", "hallucination", "invalid"], dtype=object)
    assert rd.count(labels, "lexicon word") == 2 and rd.count(labels, "in_dataset") == 1
    assert rd.reader_agrees(256, 256, 1.0) and not rd.reader_agrees(200, 256, 1.0)
    assert rd.reader_agrees(10, 256, 0.0374) and not rd.reader_agrees(60, 256, 0.0374)


def test_chinese_distance_ruler(setups):
    r = setups["chinese"].renderer
    assert np.allclose(rd.distance_ratio(r, r.render(np.arange(len(r.chars))[:, None])), 0.0, atol=0.01)  # cdist rounding
    made = rd.inventions(r, 64, seed=0)
    ratio = rd.distance_ratio(r, made)
    assert (ratio > 0).all()                     # never a character with itself
    groups = {rd.INVENTIONS: ratio, "same": np.zeros(5)}
    assert rd.loosest_threshold(groups) == pytest.approx(ratio.min())
    assert rd.admitted(ratio, rd.loosest_threshold(groups))[0] == 0.0
    assert rd.admitted(groups["same"], 0.5)[0] == 1.0


@pytest.mark.parametrize("base", sorted(TEXT_ORACLES))
def test_readers_reproduce_the_oracles_exact_shares(base):
    """Sampled with the evaluation's DDIM sampler, each text oracle reads as exact math says (smoke lexicons)."""
    runs = {w: get_run(f"{base}-oracle-{w}", "smoke", 0, progress=False) for w in TEXT_ORACLES[base]}
    rows = rd.reader_check_rows({base: runs})
    assert {r["oracle"] for r in rows} == set(TEXT_ORACLES[base])
    assert rd.all_agree(rows), rows
    assert all(r["samples"] >= 32 for r in rows)
