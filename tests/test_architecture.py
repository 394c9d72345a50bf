"""The house's rules, read from its source: every import points down a floor (or stays on its floor), at most five
modules at the package root, no module outside analysis/ over 600 lines, no command of the CLI over 60 lines."""
import ast
from pathlib import Path

from ldrkit.analysis import architecture as A

PACKAGE = Path(A.__file__).resolve().parent.parent


def test_no_import_reaches_up_a_floor():
    edges = A.imports()
    assert len(edges) > 50 and sum(map(len, edges.values())) > 100
    assert A.upward(edges) == []


def test_an_upward_import_is_caught(tmp_path):
    """The negative case: a spec module that imports the runs floor is reported."""
    for room in ("spec", "runs"):
        (tmp_path / "ldrkit" / room).mkdir(parents=True)
        (tmp_path / "ldrkit" / room / "__init__.py").write_text("")
    (tmp_path / "ldrkit" / "__init__.py").write_text("")
    (tmp_path / "ldrkit" / "runs" / "store.py").write_text("X = 1\n")
    (tmp_path / "ldrkit" / "spec" / "hashing.py").write_text("from ..runs.store import X\n")
    assert A.upward(A.imports(tmp_path / "ldrkit")) == [("ldrkit.spec.hashing", "ldrkit.runs.store")]


def test_every_room_is_on_a_floor_and_described():
    rooms = {A.room_of(m) for m in A.modules()}
    assert rooms <= set(A.ROOMS)
    assert {r["room"] for r in A.room_rows()} == rooms


def test_the_root_holds_few_modules_and_modules_stay_small():
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= 5, root
    big = [(str(p.relative_to(PACKAGE)), n) for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 600 and p.parent.name != "analysis"]
    assert big == []


def test_cli_commands_are_short():
    tree = ast.parse((PACKAGE / "__main__.py").read_text())
    long = [(f.name, f.end_lineno - f.lineno + 1) for f in ast.walk(tree)
            if isinstance(f, ast.FunctionDef) and f.end_lineno - f.lineno + 1 > 60]
    assert long == []
