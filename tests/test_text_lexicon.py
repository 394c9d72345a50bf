"""Smaller text lexicons: which runs, the LDR change against its standard error, a smoke run end to end."""
import pytest

from ldrkit.analysis import text_lexicon as tl


def test_lexicon_names_put_the_full_run_last():
    names = tl.lexicon_names("cpu")
    assert names["english"] == {20: "english-words-unet-lex20", 80: "english-words-unet-lex80",
                                500: "english-words-unet"}
    assert names["chinese"] == {20: "chinese-chars-unet-lex20", 1000: "chinese-chars-unet"}
    smoke = tl.lexicon_names("smoke")            # a lexicon as large as the smoke one is the full run
    assert smoke["english"] == {20: "english-words-unet-lex20", 60: "english-words-unet"}


def test_ldr_change_counts_only_beyond_the_standard_errors():
    a = {"step": 100, "ldr": 0.80, "se": 0.01}
    assert tl.ldr_change(a, {"step": 900, "ldr": 0.70, "se": 0.01}) == "fell"        # 0.10 > 2 * 0.014
    assert tl.ldr_change(a, {"step": 900, "ldr": 0.90, "se": 0.01}) == "rose"
    assert tl.ldr_change(a, {"step": 900, "ldr": 0.78, "se": 0.01}).startswith("no change")
    assert tl.ldr_change(a, dict(a)) == "n/a" and tl.ldr_change(None, a) == "n/a"


def test_ldr_is_read_at_the_nearest_checkpoint_before():
    rows = [{"step": s, "ldr": 0.5, "se": 0.1} for s in (0, 1200, 3000)]
    assert tl._at(rows, 2100)["step"] == 1200 and tl._at(rows, 3000)["step"] == 3000
    assert tl._at(rows, None) is None


def test_toward_memoriser_is_zero_at_the_product_and_one_at_the_memoriser():
    mem = {"ldr": 0.7, "se": 0.01}
    assert tl.toward_memoriser({"ldr": 1.0, "se": 0.0}, mem)[0] == pytest.approx(0.0)
    value, se = tl.toward_memoriser({"ldr": 0.7, "se": 0.01}, mem)
    assert value == pytest.approx(1.0) and se == pytest.approx(0.01 / 0.3 * 2 ** 0.5)
    assert tl.toward_memoriser({"ldr": 0.85, "se": 0.0}, mem)[0] == pytest.approx(0.5)
    assert all(map(lambda v: v != v, tl.toward_memoriser({"ldr": 0.9, "se": 0.0}, {"ldr": 1.0, "se": 0.0})))


def test_seed_mean_uses_the_spread_across_seeds_or_the_measurement_error_whichever_is_larger():
    assert tl.seed_mean([(0.5, 0.1)]) == (0.5, 0.1)
    mean, se = tl.seed_mean([(0.4, 0.0), (0.6, 0.0)])
    assert mean == pytest.approx(0.5) and se == pytest.approx(0.1)
    # two seeds that agree: the propagated error sqrt(0.03^2 + 0.04^2) / 2, not 0
    assert tl.seed_mean([(0.5, 0.03), (0.5, 0.04)])[1] == pytest.approx(0.025)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke lexicon runs, trained once for the module (their own runs folder)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LDRKIT_RUNS", str(tmp_path_factory.mktemp("runs")))
        runs = tl.lexicon_runs("smoke", 0)
        return {"runs": runs, "ldr": tl.all_ldr_rows(runs, "smoke"), "small": tl.seeded_runs("smoke")}


def test_smoke_lexicon_rows_end_to_end(smoke):
    runs, ldr = smoke["runs"], smoke["ldr"]
    rows = tl.lexicon_rows(runs, ldr)
    assert [(r["language"], r["lexicon"]) for r in rows] == [("english", 20), ("english", 60), ("chinese", 20),
                                                             ("chinese", 60)]
    assert rows[0]["training entries"] == 18
    for key, by_size in ldr.items():
        for size, series in by_size.items():
            assert [r["step"] for r in series] == runs[key][size].steps()
            assert all(0.0 <= r["ldr"] <= 1.0 + 1e-6 and r["se"] >= 0.0 for r in series)
    mems = tl.all_memoriser_ldr(runs, "smoke")
    fig = tl.plot_lexicons(runs, ldr, "smoke", 0, memorisers=mems)
    assert len(fig.axes) == 4


def test_the_memoriser_sits_at_one_on_its_own_ruler(smoke):
    mem = tl.memoriser_ldr(smoke["runs"]["chinese"][20], "smoke")
    assert 0.0 < mem["ldr"] < 1.0 and mem["se"] >= 0.0
    assert tl.toward_memoriser(mem, mem)[0] == pytest.approx(1.0)


def test_smoke_equal_step_rows(smoke):
    runs = smoke["runs"]
    full = {key: by_size[max(by_size)] for key, by_size in runs.items()}
    rows = tl.equal_step_rows(smoke["small"], full, "smoke")
    assert [(r["language"], r["step"]) for r in rows] == [(k, s) for k in ("english", "chinese") for s in (0, 15, 30)]
    assert set(tl.last_verdicts(rows)) == {"english", "chinese"}
    assert all(r["raw LDR"].startswith(("lower", "higher", "no difference")) for r in rows)


def test_english_kappa_rows_and_contrast(smoke):
    full = smoke["runs"]["english"][max(smoke["runs"]["english"])]
    runs = tl.english_kappa_runs(smoke["small"]["english"], full)
    rows = tl.kappa_rows(runs, "smoke")
    assert [(r["run"], r["sqrt(abar)"]) for r in rows] == [(label, str(lv)) for label in runs
                                                           for lv in tl.KAPPA_LEVELS]
    assert all(r[name] == "not separable" or "±" in r[name] for r in rows for name in tl.KAPPA_SHOWN)
    contrast = tl.kappa_contrast(smoke["small"]["english"], full, "smoke")
    assert contrast["verdict"] in ("not separable", "lower when memorising", "higher when memorising",
                                   f"no difference (within {tl.LDR_SIGMAS:g} s.e.)")


def test_kappa_contrast_verdicts(monkeypatch):
    values = {"a": (0.5, 0.05), "b": (0.5, 0.05), "full": (0.0, 0.01)}

    def fake(run, **_):
        v, se = values[run]
        return {"kappa": {"network": {str(tl.KAPPA_LEVELS[0]): {"value": v, "se": se}}}}

    monkeypatch.setattr(tl, "oracle_calibration", fake)
    c = tl.kappa_contrast(["a", "b"], "full", "cpu")
    assert c["seeds"] == 2 and c["small"] == pytest.approx(0.5) and c["verdict"] == "higher when memorising"
    values["full"] = (0.5, 0.01)
    assert tl.kappa_contrast(["a", "b"], "full", "cpu")["verdict"].startswith("no difference")
    # The full lexicon's seeds: their mean, with the spread across them as its standard error.
    values.update(f0=(0.0, 0.01), f1=(0.2, 0.01), f2=(0.4, 0.01))
    c = tl.kappa_contrast(["a", "b"], ["f0", "f1", "f2"], "cpu")
    assert c["full seeds"] == 3 and c["full"] == pytest.approx(0.2) and c["full_se"] == pytest.approx(0.2 / 3 ** 0.5)
    assert c["verdict"] == "higher when memorising"  # 0.5 - 0.2 = 0.3 > 2 * hypot(0, 0.115)
