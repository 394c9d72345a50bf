"""Write book/second-act-predictions.json: the memorisation onset of every held-out size (spec.selections.HELD_OUT),
predicted from the onset fits of the stored sweeps (spec.selections.SWEEPS) before those sizes are trained.

    python scripts/predict_second_act.py [--profile cpu] [--out book/second-act-predictions.json]

The file records when and from which commit the prediction was made; it is committed before the held-out runs,
so their provenance names a later commit. The second-act chapter reads it and reports hit or miss.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--out", default=str(ROOT / "book" / "second-act-predictions.json"))
    args = parser.parse_args()
    os.environ.setdefault("LDRKIT_RUNS", tempfile.mkdtemp(prefix="predict-"))  # stored runs restore here, untouched
    from ldrkit.analysis import second_act as mem
    from ldrkit.runs.store import code_version
    from ldrkit.spec.selections import HELD_OUT, SWEEPS, analysis_sizes, sweep_seeds

    seeds, more = analysis_sizes(args.profile)["second_act"]["seeds"], sweep_seeds(args.profile)
    rows = [row for label in HELD_OUT for row in
            mem.sweep_rows(mem.load_sweep(SWEEPS[label], args.profile, seeds, more.get(label)), label)]
    fits = {label: mem.fit_onset([r for r in rows if r["model"] == label]) for label in HELD_OUT}
    out = {"made_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "code": code_version(),
           "profile": args.profile, "onset": "first step at which half the legible samples are training tuples",
           "interval": "95% prediction interval of one run, from the censored fit of log onset on log n",
           "predictions": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in p.items()}
                           for p in mem.predictions(fits, HELD_OUT, args.profile)]}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for p in out["predictions"]:
        print(f"{p['model']}, n = {p['training size']}: onset {p['predicted onset']:.0f} "
              f"[{p['low']:.0f}, {p['high']:.0f}] within {p['steps']} steps")


if __name__ == "__main__":
    main()
