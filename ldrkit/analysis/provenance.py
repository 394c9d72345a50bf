"""Which profile, seed and code made a chapter's figures: one short line a page shows above its results, the runs
it names folded under it.

A run restored from the results store names the commit its stored provenance.json records; a run trained
here names the commit of the code that trained it (git HEAD now, marked when ldrkit/ has local changes).
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

from ..runs.run import Run
from ..runs.store import code_version


def run_provenance(run: Run) -> dict:
    """{"experiment", "profile", "seed", "steps", "commit", "dirty", "source"} of one finished run."""
    m = run.metrics
    stored = run.restored_from
    record = Path(stored) / "provenance.json" if stored else None
    if record is not None and record.exists():
        code, source = json.loads(record.read_text()).get("code", {}), "results store"
    else:
        code, source = code_version(), "trained here"
    steps = m.get("final", {}).get("step", (run.steps() or [None])[-1])
    if steps is None and m.get("loss_curve"):  # a theory run (three stairs) records a loss curve, not checkpoints
        steps = int(m["loss_curve"][-1][0])
    return {"experiment": m.get("experiment", run.path.parent.name), "profile": m.get("profile"),
            "seed": m.get("seed"), "steps": steps, "commit": code.get("commit", "unknown"),
            "dirty": code.get("dirty"), "source": source}


def _short(commit: str, dirty) -> str:
    return (commit[:7] if commit and commit != "unknown" else "unknown") + ("+local changes" if dirty else "")


def _as_list(runs) -> list[Run]:
    return list(runs.values()) if isinstance(runs, dict) else [runs] if isinstance(runs, Run) else list(runs)


def _code_groups(rows: list[dict]) -> str:
    """Each (commit, source) once, with how many of the runs it made: "`abc1234` (results store, 3 runs)"."""
    groups: dict[tuple, int] = {}
    for r in rows:
        key = (_short(r["commit"], r["dirty"]), r["source"])
        groups[key] = groups.get(key, 0) + 1
    return ", ".join(f"`{code}` ({source}" + (f", {n} runs)" if n > 1 and len(groups) > 1 else ")")
                     for (code, source), n in groups.items())


def provenance_line(runs=None, profile: str | None = None, seed: int | None = None) -> str:
    """One short Markdown line: profile, seed and commit behind the figures, each commit named once (runs: a Run, a
    list or a {label: Run} dict); without runs, the profile, seed and the code running now."""
    if runs is None:
        code = code_version()
        return (f"**Made with** profile `{profile}`, seed {seed}, ldrkit at commit "
                f"`{_short(code['commit'], code['dirty'])}` (computed while the page was built).")
    rows = [run_provenance(r) for r in _as_list(runs)]
    profiles = sorted({str(r["profile"]) for r in rows})
    seeds = sorted({str(r["seed"]) for r in rows})
    count = f"{len(rows)} runs" if len(rows) > 1 else "1 run"
    return (f"**Made with** profile `{', '.join(profiles)}`, seed {', '.join(seeds)}: {count}, ldrkit at commit "
            f"{_code_groups(rows)}.")


def run_lines(runs) -> list[str]:
    """One line per run: experiment, steps, and its commit where the runs were not all made by one."""
    rows = [run_provenance(r) for r in _as_list(runs)]
    mixed = len({(r["commit"], r["dirty"], r["source"]) for r in rows}) > 1
    return [f"{r['experiment']}, seed {r['seed']}: {r['steps']} steps"
            + (f" (`{_short(r['commit'], r['dirty'])}`, {r['source']})" if mixed else "") for r in rows]


def _html(markdown: str) -> str:
    """The few Markdown marks these lines use (**bold**, `code`) as HTML, the rest escaped."""
    text = html.escape(markdown, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


class ProvenanceNote:
    """The note as a page shows it: the short line, folded over the list of runs it names (a <details> block)."""

    def __init__(self, text: str, runs: list[str] | None = None):
        self.text, self.runs = text, runs or []

    def _repr_html_(self) -> str:
        if not self.runs:
            return f'<p class="ldrkit-provenance">{_html(self.text)}</p>'
        items = "".join(f"<li>{_html(line)}</li>" for line in self.runs)
        return f'<details class="ldrkit-provenance"><summary>{_html(self.text)}</summary><ul>{items}</ul></details>'

    def __repr__(self) -> str:
        return "\n".join([self.text, *(f"- {line}" for line in self.runs)])


def provenance_note(runs=None, profile: str | None = None, seed: int | None = None) -> ProvenanceNote:
    """`provenance_line` with `run_lines` folded under it, for display above a chapter's results."""
    return ProvenanceNote(provenance_line(runs, profile, seed), None if runs is None else run_lines(runs))
