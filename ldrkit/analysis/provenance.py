"""Which profile, seed and code made a chapter's figures: one line a page shows above its results.

A run restored from the results store names the commit its stored provenance.json records; a run trained
here names the commit of the code that trained it (git HEAD now, marked when ldrkit/ has local changes).
"""
from __future__ import annotations

import json
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


def provenance_line(runs=None, profile: str | None = None, seed: int | None = None) -> str:
    """One Markdown line: profile, seed and commit behind the figures, per run when runs are given
    (a Run, a list or a {label: Run} dict); else the profile, seed and the code running now."""
    if runs is None:
        code = code_version()
        return (f"**Made with** profile `{profile}`, seed {seed}, ldrkit at commit "
                f"`{_short(code['commit'], code['dirty'])}` (computed while the page was built).")
    runs = list(runs.values()) if isinstance(runs, dict) else [runs] if isinstance(runs, Run) else list(runs)
    rows = [run_provenance(r) for r in runs]
    profiles = sorted({str(r["profile"]) for r in rows})
    seeds = sorted({str(r["seed"]) for r in rows})
    parts = [f"{r['experiment']} ({r['steps']} steps, commit `{_short(r['commit'], r['dirty'])}`, {r['source']})"
             for r in rows]
    return (f"**Made with** profile `{', '.join(profiles)}`, seed {', '.join(seeds)}: " + "; ".join(parts) + ".")


class ProvenanceNote:
    """The line as a displayable object (Markdown in Jupyter and on the website)."""

    def __init__(self, text: str):
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def provenance_note(runs=None, profile: str | None = None, seed: int | None = None) -> ProvenanceNote:
    return ProvenanceNote(provenance_line(runs, profile, seed))
