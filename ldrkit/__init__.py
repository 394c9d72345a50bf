"""ldrkit: diffusion models on text-like grammars, their hallucinations, and the Local Dependency Ratio.

The executable companion to "Towards Understanding Text Hallucination of Diffusion Models via Local
Generation Bias". The package is built in floors, each importing only from those below it:
`spec` (what an experiment is, pure Python) < `systems` (rules, renderers, readers) < `denoisers`
(schedule, networks, exact oracles, remedies) < `probes`, `theory` (LDR, kappa, detectors; section 5)
< `runs` (run folders, training, the results store) < `analysis`, `bench` (what the chapters and the
benchmarks show) < the chapters and the command line (`python -m ldrkit`).

The public API, one way in (each name loaded from its home on first use, so `import ldrkit` stays light):
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

PUBLIC = {
    "get_run": "ldrkit.runs.request", "run_experiment": "ldrkit.runs.request", "Run": "ldrkit.runs.run",
    "Setup": "ldrkit.runs.setup", "get_experiment": "ldrkit.spec.registry", "EXPERIMENTS": "ldrkit.spec.registry",
    "spec_hash": "ldrkit.spec.hashing", "resolve_profile": "ldrkit.spec.hashing",
    "analysis_sizes": "ldrkit.spec.selections", "default_device": "ldrkit.denoisers.device",
    "build_oracle": "ldrkit.denoisers.oracles", "ldr": "ldrkit.probes.ldr", "ldr_levels": "ldrkit.probes.ldr",
    "probe": "ldrkit.probes.any_model", "export_run": "ldrkit.runs.export",
    # what every chapter shows its numbers with
    "table": "ldrkit.analysis.tables", "glue": "ldrkit.analysis.tables", "glue_md": "ldrkit.analysis.tables",
    "provenance_note": "ldrkit.analysis.provenance",
}
__doc__ += "\n".join(f"    {name:<16}{module}.{name}" for name, module in PUBLIC.items()) + "\n"
__all__ = sorted(PUBLIC)


def __getattr__(name: str):
    if name in PUBLIC:
        return getattr(importlib.import_module(PUBLIC[name]), name)
    raise AttributeError(f"module 'ldrkit' has no attribute {name!r}")
