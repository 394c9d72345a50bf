"""The results store: finished runs kept in the repository, so reading the book does not mean retraining it.

A stored run lives in results/NAME/PROFILE-seedS/ and holds a trimmed copy of its run folder:
its JSON records (metrics.json, metrics.jsonl, config.json, the checkpoint manifest), analysis
caches and arrays (.npz), the first `samples_per_step` generated samples of every evaluation, and the
model weights of the last checkpoint (plus the steps asked for, and every step the stored run
already kept), together with provenance.json: the code version (git commit, and whether the tree
had uncommitted changes), the spec hash that made it, and the SHA-256 of every stored file.

Guarantees: `store_run` refuses a run whose spec hash is not the current code's and a source
that is the store itself, and writes into a temporary folder renamed into place (an interrupted
store leaves the old stored run intact; a kill between the two renames of the swap is undone
the next time the stored run is looked up). `restore_run` checks every file against its recorded
digest and refuses a stored run that does not match, naming the file; `top_up_restored` brings a folder
restored earlier the files (caches) stored since.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from .files import RunFolderError, atomic_write, file_digest, read_json, write_json
from .run import MANIFEST, Run
from ..spec.registry import get_experiment
from ..spec.hashing import spec_hash

ROOT = Path(__file__).resolve().parents[2]  # the repository (ldrkit/runs/store.py is two folders below it)


def store_root() -> Path:
    """$LDRKIT_RESULTS, else results/ at the repository root (or in the working directory when installed elsewhere)."""
    if os.environ.get("LDRKIT_RESULTS"):
        return Path(os.environ["LDRKIT_RESULTS"])
    return ROOT / "results" if (ROOT / "_toc.yml").exists() else Path.cwd() / "results"


def stored_dir(name: str, profile: str, seed: int, root: Path | None = None) -> Path:
    """The folder of a stored run (a swap that a kill interrupted is finished first)."""
    return _finish_interrupted_swap(Path(root or store_root()) / name / f"{profile}-seed{seed}")


def _finish_interrupted_swap(dest: Path) -> Path:
    """Put back the old stored run when a kill fell between the two renames of `store_run`'s swap.

    Replacing a folder takes two renames (old aside, new in); a process killed between them leaves
    no folder at `dest` but a whole one at `.NAME.old-PID` (whole: it was the stored run), which
    is renamed back. Returns `dest`.
    """
    if not dest.exists() and dest.parent.is_dir():
        aside = [p for p in dest.parent.glob(f".{dest.name}.old-*") if (p / "provenance.json").exists()]
        if aside:
            os.replace(max(aside, key=lambda p: p.stat().st_mtime), dest)
    return dest


def code_version() -> dict:
    """The git commit of the code (and whether the working tree differs from it), or 'unknown'."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", "ldrkit"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}


def _digests(folder: Path) -> dict[str, str]:
    """{relative path: SHA-256} of every file in a stored run except provenance.json."""
    return {str(p.relative_to(folder)): file_digest(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "provenance.json"}


def check_metrics(metrics: dict, where: Path) -> None:
    """The categories of every evaluation are fractions that sum to 1: anything else is not a real run."""
    for record in metrics.get("evaluations", []):
        cats = record.get("categories")
        if cats and (abs(sum(cats.values()) - 1) > 1e-6 or min(cats.values()) < 0):
            raise RunFolderError(f"{where}: the categories of step {record.get('step')} sum to {sum(cats.values()):.3f}, "
                                 "not 1; this is not a run ldrkit wrote")


def store_run(run_dir: Path | str, root: Path | None = None, samples_per_step: int = 64,
              keep_steps: tuple[int, ...] = (), drop_kept: bool = False) -> Path:
    """Copy a finished run's records, caches, sample subsets and chosen weights into the store; returns its folder.

    The checkpoints kept are the last, `keep_steps`, and (unless `drop_kept`) those the stored run of
    the same spec already kept.
    """
    run = Run(run_dir)
    if not (run.path / "metrics.json").exists():
        raise FileNotFoundError(f"{run.path} holds no finished run (no metrics.json)")
    metrics = run.metrics
    check_metrics(metrics, run.path / "metrics.json")
    name, profile, seed = metrics["experiment"], metrics["profile"], metrics["seed"]
    current = spec_hash(get_experiment(name).config(profile, seed))
    if metrics.get("config_hash") != current:
        raise RunFolderError(f"{run.path} was made by spec {metrics.get('config_hash')}, but the current code's "
                             f"{name} ({profile}, seed {seed}) is {current}; rerun it before storing")
    dest = stored_dir(name, profile, seed, root)
    if run.path.resolve() == dest.resolve() or dest.resolve() in run.path.resolve().parents:
        raise RunFolderError(f"{run.path} is the stored run itself; store a run from runs/, not from the store")
    old = read_json(dest / "provenance.json") if (dest / "provenance.json").exists() else {}
    previously = old.get("checkpoint_steps", []) if old.get("config_hash") == current and not drop_kept else []
    steps = run.steps()
    wanted = set(keep_steps) | set(previously) | ({max(steps)} if steps else set())
    missing = sorted(s for s in wanted if s not in steps and not (dest / Run(dest).checkpoint_path(s).name).exists())
    if missing:
        raise FileNotFoundError(f"{run.path} has no checkpoint of steps {missing}; saved steps: {steps}")
    tmp = dest.parent / f".{dest.name}.storing-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for path in sorted(run.path.iterdir()):  # records, analysis caches, and the theory runs' arrays
        if path.is_file() and path.suffix in (".json", ".jsonl", ".npz") and not path.name.startswith("."):
            shutil.copy2(path, tmp / path.name)
    for step in run.sample_steps():
        (tmp / "samples").mkdir(exist_ok=True)
        np.save(tmp / "samples" / f"step_{step:07d}.npy", run.samples(step).numpy().astype(np.float16)[:samples_per_step])
    for step in sorted(wanted):
        source = run.checkpoint_path(step) if step in steps else Run(dest).checkpoint_path(step)
        shutil.copy2(source, tmp / source.name)
    if (run.path / "samples.pt").exists():  # oracle runs keep their samples in one file
        shutil.copy2(run.path / "samples.pt", tmp / "samples.pt")
    provenance = {"experiment": name, "profile": profile, "seed": seed, "config_hash": metrics["config_hash"],
                  # The code that trained it (recorded in metrics.json since the store exists), else what the
                  # stored run of this spec said, else the storing code.
                  "code": metrics.get("code") or (old.get("code") if old.get("config_hash") == current else None)
                  or {**code_version(), "note": "code at storing time"},
                  "stored_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "wall_seconds": metrics.get("wall_seconds"), "checkpoint_steps": sorted(wanted),
                  "samples_per_step": samples_per_step, "files": _digests(tmp)}
    write_json(tmp / "provenance.json", provenance)
    if dest.exists():  # swap: the old stored run survives until the new one is complete
        trash = dest.parent / f".{dest.name}.old-{os.getpid()}"
        os.replace(dest, trash)
        os.replace(tmp, dest)
        shutil.rmtree(trash)
    else:
        os.replace(tmp, dest)
    return dest


def _altered(path: Path) -> RunFolderError:
    """The error for a stored file whose SHA-256 is not the one its provenance.json records."""
    return RunFolderError(f"{path} does not match the digest in its provenance.json (changed by hand or corrupted); "
                          "restore it with git or retrain and store the run")


def verify_stored(stored: Path) -> dict:
    """The provenance of a stored run after checking every file against its recorded SHA-256."""
    provenance = read_json(_finish_interrupted_swap(Path(stored)) / "provenance.json")
    recorded = provenance.get("files")
    if recorded is None:
        raise RunFolderError(f"{stored}/provenance.json records no file digests; re-store the run")
    found = _digests(stored)
    for rel, digest in recorded.items():
        if rel not in found:
            raise RunFolderError(f"{stored / rel} is missing from the results store; restore it with git")
        if found[rel] != digest:
            raise _altered(stored / rel)
    check_metrics(read_json(stored / "metrics.json"), stored / "metrics.json")
    return provenance


def find_stored(name: str, profile: str, seed: int, digest: str, root: Path | None = None) -> Path | None:
    """The stored run of (name, profile, seed) when it was made by a spec with this hash, else None."""
    path = stored_dir(name, profile, seed, root)
    if not (path / "provenance.json").exists():
        return None
    return path if read_json(path / "provenance.json").get("config_hash") == digest else None


def stale_stored(name: str, profile: str, seed: int, digest: str, root: Path | None = None) -> str | None:
    """A message when the store holds this run made by another spec (it will be retrained), else None."""
    path = stored_dir(name, profile, seed, root)
    if not (path / "provenance.json").exists():
        return None
    provenance = read_json(path / "provenance.json")
    if provenance.get("config_hash") == digest:
        return None
    minutes = (provenance.get("wall_seconds") or 0) / 60
    return (f"{path} was made by an older spec ({provenance.get('config_hash')}, now {digest}); retraining, "
            f"about {minutes:.0f} minutes when it was stored")


def restore_run(stored: Path, out: Path) -> dict:
    """Copy a verified stored run into the run folder `out` and return its metrics, pointing at `out`."""
    verify_stored(stored)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(stored.rglob("*")):
        if path.is_file() and path.name != "provenance.json":
            target = out / path.relative_to(stored)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    run = Run(out)
    run.mark_restored(stored)  # metrics.json stays byte for byte the stored one
    return run.found_metrics()


def top_up_restored(stored: Path, out: Path) -> list[str]:
    """Copy into a restored run folder the stored files it lacks (caches stored after it was restored, which a
    chapter that only reads caches would otherwise miss), each checked against its recorded digest. Files the
    folder already has are left alone: its own caches may hold more than the store's. Nothing is copied unless the
    folder's metrics.json is the stored one (the same training, not a retrained run stored under the same spec).
    Returns what was copied."""
    recorded = read_json(stored / "provenance.json").get("files") or {}
    if recorded.get("metrics.json") != file_digest(out / "metrics.json"):
        return []
    copied = []
    for rel, digest in sorted(recorded.items()):
        target = out / rel
        if target.exists():
            continue
        if file_digest(stored / rel) != digest:
            raise _altered(stored / rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(stored / rel, target)
        copied.append(rel)
    return copied


def stored_runs(root: Path | None = None) -> list[dict]:
    """Provenance of every stored run, sorted by experiment name."""
    root = Path(root or store_root())
    return sorted((json.loads(p.read_text()) for p in root.glob("*/*/provenance.json")),
                  key=lambda p: (p["experiment"], p["profile"], p["seed"]))


def final_numbers(metrics: dict) -> dict[str, float]:
    """The headline numbers of a run's last evaluation: the four categories and the eps-LDR per level."""
    final = metrics.get("final") or {}
    out = {f"{k}": v for k, v in final.get("categories", {}).items()}
    out.update({f"ldr@{k}": v for k, v in final.get("ldr", {}).items()})
    return out


def compare_table(rows: list[tuple[str, dict, dict]]) -> str:
    """A markdown table of stored against fresh final numbers, one block of lines per experiment."""
    lines = ["| experiment | number | stored | fresh | difference |", "|---|---|---|---|---|"]
    for name, stored, fresh in rows:
        s, f = final_numbers(stored), final_numbers(fresh)
        for key in sorted(set(s) | set(f)):
            a, b = s.get(key), f.get(key)
            diff = f"{b - a:+.3f}" if a is not None and b is not None else "n/a"
            lines.append(f"| {name} | {key} | {'n/a' if a is None else f'{a:.3f}'} | "
                         f"{'n/a' if b is None else f'{b:.3f}'} | {diff} |")
        lines.append(f"| {name} | wall seconds | {stored.get('wall_seconds')} | {fresh.get('wall_seconds')} | |")
    return "\n".join(lines) + "\n"


# --- migration to normalised spec hashes ----------------------------------------------------------------

def _legacy_hash(config: dict) -> str:
    """The hash runs were named by before specs were normalised: the raw config dict."""
    import hashlib
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def migrate_stored_run(stored: Path) -> dict:
    """Rename a stored run from its legacy config hash to the normalised spec hash, without retraining.

    The proof that the stored run is the current spec's experiment: the legacy hash of the current
    spec equals the hash the run was stored under (the same config byte for byte), or else the
    stored config.json normalises to the current spec. Then config.json, metrics.json, the caches,
    the checkpoints' metadata and provenance.json are rewritten with the new hash, a checkpoint
    manifest is written and every file's digest recorded. Returns what was checked.
    """
    from safetensors.torch import load_file, save

    provenance = read_json(stored / "provenance.json")
    name, profile, seed = provenance["experiment"], provenance["profile"], provenance["seed"]
    spec = get_experiment(name).config(profile, seed)
    old, new = provenance["config_hash"], spec_hash(spec)
    if old == new:
        return {"run": str(stored), "status": "already migrated", "hash": new}
    from ..spec.hashing import same_experiment
    stored_config = read_json(stored / "config.json")["config"] if (stored / "config.json").exists() else None
    if _legacy_hash(spec) == old:
        proof = "legacy hash of the current spec equals the stored hash"
    elif stored_config is not None and same_experiment(stored_config, spec):
        proof = "stored config.json normalises to the current spec"
    else:
        raise RunFolderError(f"{stored}: stored hash {old} is not the current spec's ({_legacy_hash(spec)} legacy); "
                             "it needs retraining")
    write_json(stored / "config.json", {"hash": new, "config": spec}, indent=2)
    metrics = read_json(stored / "metrics.json")
    write_json(stored / "metrics.json", {**metrics, "config_hash": new})
    for cache in stored.glob("*.json"):
        if cache.name in ("config.json", "metrics.json", "provenance.json", MANIFEST):
            continue
        data = read_json(cache)
        if "config_hash" in data:
            data["config_hash"] = new
        elif cache.name == "oracle_distance.json":  # the older per-key layout of this cache
            data = {"config_hash": new, "entries": data, "digests": {}}
        write_json(cache, data)
    manifest = {}
    for path in sorted(stored.glob("model_*.safetensors")):
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        if meta.get("config_hash") != old:
            raise RunFolderError(f"{path} was made by config {meta.get('config_hash')}, not the stored {old}")
        atomic_write(path, save(load_file(str(path)), metadata={**meta, "config_hash": new}))
        manifest[str(int(path.stem.split("_")[1]))] = file_digest(path)
    if manifest:
        write_json(stored / MANIFEST, manifest)
    provenance.update(config_hash=new, migrated={"from": old, "proof": proof,
                                                   "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    provenance["files"] = _digests(stored)
    write_json(stored / "provenance.json", provenance)
    return {"run": str(stored), "status": "migrated", "from": old, "to": new, "proof": proof}
