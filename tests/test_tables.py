"""ldrkit.analysis.tables: what a chapter's tables and glued numbers look like."""
import pytest

from ldrkit.analysis import tables


def test_glue_all_glues_every_value_and_the_markdown_ones_as_markdown(monkeypatch):
    myst_nb = pytest.importorskip("myst_nb")
    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=False: glued.setdefault(name, value))
    values = {"a": 1, "b": "two"}
    assert tables.glue_all(values, markdown={"c": "*three*"}) is values
    assert glued["a"] == 1 and glued["b"] == "two"
    assert type(glued["c"]).__name__ == "Markdown" and glued["c"].data == "*three*"
    assert set(glued) == {"a", "b", "c"}


def test_cells_show_integers_powers_of_ten_and_no_leaked_missing_values():
    assert tables.cell(2760.0) == "2760" and tables.cell(0.5) == "0.500" and tables.cell(1 / 3, digits=4) == "0.3333"
    assert tables.cell(858.462, whole=True) == "858" and tables.cell(7) == "7"
    assert tables.cell(183899765037261.062) == "1.84&#8201;×&#8201;10<sup>14</sup>"
    assert tables.cell(999_999.0) == "999999" and "10<sup>6</sup>" in tables.cell(1_000_000)
    assert tables.cell(float("nan")) == tables.cell(None) == "n/a"
    assert tables.cell("0.993 ± nan (1)") == "0.993 ± n/a (1)"
    assert tables.cell("[nan, nan] at None") == "[n/a, n/a] at n/a"
    assert tables.cell("Nonetheless a<b") == "Nonetheless a&lt;b"          # words that contain "None" are left alone
    assert tables.cell([858.46, None], whole=True) == "[858, n/a]" and tables.cell(True) == "True"


def test_a_table_has_no_row_numbers_whole_steps_and_its_caption_above_a_scrolling_box():
    rows = [{"√ᾱ": 0.1, "onset step": 858.462, "share": 0.25, "count": 3.0},
            {"√ᾱ": 0.3, "onset step": 1200.5, "share": float("nan"), "count": 4.0}]
    t = tables.table(rows, index="√ᾱ", caption="Onsets <by level>")
    page = t._repr_html_()
    assert page.count("<table") == 1 and "<th>0.1</th>" in page and "<th>0.3</th>" in page  # the index: row headers
    assert "<td>858</td>" in page and "<td>1200</td>" in page and "<td>3</td>" in page      # steps and counts whole
    assert "<td>0.250</td>" in page and "<td>n/a</td>" in page and "nan" not in page
    assert page.index('class="ldrkit-table-caption">Onsets &lt;by level&gt;</p>') < page.index("overflow-x: auto")
    assert ">0<" not in page                                                                 # no 0..n row numbers
    plain = repr(tables.table([{"a": 1, "steps": 2.5e9}]))
    assert plain.splitlines()[1].split(maxsplit=1) == ["1", "2.50\u2009×\u200910^9"]       # plain text: 10^9
    assert list(tables.table(rows, index="count").frame.columns) == ["count", "√ᾱ", "onset step", "share"]


def test_several_label_columns_head_their_rows_and_a_turned_table_keeps_its_values():
    rows = [{"d": 8, "√ᾱ": 0.1, "loss": 0.12345}, {"d": 8, "√ᾱ": 0.3, "loss": 2.0}]
    page = tables.table(rows, index=["d", "√ᾱ"])._repr_html_()
    assert "<th>8</th><th>0.1</th><td>0.123</td>" in page and "<th>8</th><th>0.3</th><td>2</td>" in page
    turned = tables.table([{"model": "unet", "steps": 6000.0, "x": 0.5}, {"model": "dit", "steps": 300, "x": None}],
                          index="model").T
    assert list(turned.frame.columns) == ["", "unet", "dit"]
    assert turned.shown() == [["steps", "6000", "300"], ["x", "0.500", "n/a"]]
    assert "<th>steps</th><td>6000</td><td>300</td>" in turned._repr_html_()
    with pytest.raises(KeyError, match="no column 'model'"):
        tables.table([{"a": 1}], index="model")
