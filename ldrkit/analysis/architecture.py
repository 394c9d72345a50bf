"""The appendix "How ldrkit is built": the package's own import graph, read from its source with `ast`, grouped by
room (subpackage), drawn floor by floor, and checked against the rule that a room imports only from the floors
below it."""
from __future__ import annotations

import ast
from pathlib import Path

import matplotlib.pyplot as plt

PACKAGE = Path(__file__).resolve().parent.parent
# The floors, bottom to top; a room may import from its own floor and those below.
FLOORS = (("spec",), ("systems",), ("denoisers",), ("probes", "theory"), ("runs",), ("analysis", "bench"),
          ("chapters", "__main__", "__init__"))
ROOMS = {
    "spec": "what an experiment is: the normal form and hash of a spec, sizes per profile, the registry and its "
            "variants, one module per experiment family, what the chapters read (pure Python, no torch)",
    "systems": "symbol systems: each rule P_G (sample, validate, enumerate, split), its renderer h and reader "
               "h^-1, the four categories of a sample; `registry` builds them by name",
    "denoisers": "the schedule and samplers, the networks (MLP, diffusers UNet and DiT), the exact oracles, the "
                 "symbol-conditioned remedy and the critic guidance; every one `model(x, t) -> eps`",
    "probes": "measurements of a denoiser: LDR, kappa, distances to the oracles, trajectories, detectors, and "
              "the estimates (means, standard errors, Wilson intervals) every layer above reports",
    "theory": "section 5: the hypercube's closed forms and the three-stairs mathematics",
    "runs": "a run folder (`Run`), a spec's objects (`Setup`), training, the evaluation pipeline, the results "
            "store, the run request (`get_run`), reproductions and sweeps",
    "analysis": "what the chapters show, one module per chapter named after it, and the verdicts, phases, plots and "
                "tables they share",
    "bench": "benchmarks of the probes and of training, with the report they share",
    "chapters": "the command line (`python -m ldrkit`), running chapters with papermill, the public API",
}
WHERE_TO_ADD = [
    {"to add": "a grammar or symbol system", "where": "a Grammar and a Renderer in systems/, one line each in "
     "systems/registry.py"},
    {"to add": "a denoiser", "where": "denoisers/models.py (a `model(x, t) -> eps` class and a DENOISERS entry), "
     "its sizes in spec/sizes.py"},
    {"to add": "a probe", "where": "a pure function of a model and tensors in probes/"},
    {"to add": "an experiment", "where": "a register(...) in its family's module of spec/ (a variant: "
     "registry.derive)"},
    {"to add": "a chapter", "where": "book/NAME.md (short cells), its analysis in analysis/NAME.py, an entry in "
     "_toc.yml, `make notebooks`"},
]


def room_of(module: str) -> str:
    """'ldrkit.runs.store' -> 'runs'; the root modules are the chapters' floor."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else "chapters"


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """{dotted name: file} of every module of the package."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(package: Path = PACKAGE) -> dict[str, set[str]]:
    """{module: the package's modules it imports}, at module level and inside functions alike."""
    mods = modules(package)
    edges = {m: set() for m in mods}
    for name, path in mods.items():
        here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            edges[name] |= {t for t in targets if t in mods and t != name}
    return edges


def floor(room: str) -> int:
    return next(i for i, rooms in enumerate(FLOORS) if room in rooms or (room == "chapters" and i == len(FLOORS) - 1))


def room_edges(edges: dict[str, set[str]]) -> dict[tuple[str, str], int]:
    """{(room, room it imports from): number of module-to-module imports}, between different rooms."""
    out: dict[tuple[str, str], int] = {}
    for a, targets in edges.items():
        for b in targets:
            pair = (room_of(a), room_of(b))
            if pair[0] != pair[1]:
                out[pair] = out.get(pair, 0) + 1
    return out


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """The imports that reach a higher floor (the rule says none)."""
    return sorted((a, b) for a, targets in edges.items() for b in targets
                  if floor(room_of(b)) > floor(room_of(a)))


def room_rows(package: Path = PACKAGE) -> list[dict]:
    """Per room: its floor, modules, lines, largest module, and what it owns."""
    rows = {}
    for name, path in modules(package).items():
        room = room_of(name)
        lines = len(path.read_text().splitlines())
        row = rows.setdefault(room, {"floor": floor(room), "room": room, "modules": 0, "lines": 0,
                                     "largest module": ("", 0), "owns": ROOMS[room]})
        row["modules"] += 1
        row["lines"] += lines
        if lines > row["largest module"][1]:
            row["largest module"] = (name.split(".")[-1], lines)
    for row in rows.values():
        row["largest module"] = f"{row['largest module'][0]} ({row['largest module'][1]} lines)"
    return sorted(rows.values(), key=lambda r: (r["floor"], r["room"]))


def plot_floors(edges: dict[str, set[str]]):
    """The rooms as boxes, floor above floor, and an arrow for every room that imports from another (its width the
    number of module imports)."""
    pairs = room_edges(edges)
    rooms = [r for rooms in FLOORS for r in rooms if r not in ("__main__", "__init__")]
    where = {}
    for i, floor_rooms in enumerate(FLOORS):
        shown = [r for r in floor_rooms if r in rooms]
        for j, r in enumerate(shown):
            where[r] = ((j + 1) / (len(shown) + 1), i)
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for (a, b), count in sorted(pairs.items()):
        (xa, ya), (xb, yb) = where[a], where[b]
        ax.annotate("", xy=(xb, yb + 0.18), xytext=(xa, ya - 0.18),
                    arrowprops={"arrowstyle": "->", "lw": 0.4 + 0.25 * count ** 0.5, "alpha": 0.45,
                                "color": "tab:red" if floor(b) > floor(a) else "tab:blue"})
    for r, (x, y) in where.items():
        ax.text(x, y, r, ha="center", va="center", fontsize=10,
                bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.3"})
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(FLOORS) - 0.4)
    ax.set_yticks(range(len(FLOORS)), [f"floor {i}" for i in range(len(FLOORS))])
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    return fig
