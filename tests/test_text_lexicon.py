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


def test_smoke_lexicon_rows_end_to_end():
    runs = tl.lexicon_runs("smoke", 0)
    ldr = tl.all_ldr_rows(runs, "smoke")
    rows = tl.lexicon_rows(runs, ldr)
    assert [(r["language"], r["lexicon"]) for r in rows] == [("english", 20), ("english", 60), ("chinese", 20),
                                                             ("chinese", 60)]
    assert rows[0]["training entries"] == 18
    for key, by_size in ldr.items():
        for size, series in by_size.items():
            assert [r["step"] for r in series] == runs[key][size].steps()
            assert all(0.0 <= r["ldr"] <= 1.0 + 1e-6 and r["se"] >= 0.0 for r in series)
    fig = tl.plot_lexicons(runs, ldr, "smoke", 0)
    assert len(fig.axes) == 4
