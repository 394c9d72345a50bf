"""The results store: finished runs kept in the repository, so reading the book does not mean retraining it.

A stored run lives in results/NAME/PROFILE-seedS/ and holds a trimmed copy of its run folder:
its JSON records (metrics.json, metrics.jsonl, config.json, the checkpoint manifest), analysis
caches and arrays (.npz), the first `samples_per_step` generated samples of every evaluation, and the
model weights of the last checkpoint (plus the steps asked for, and every step the stored run
already kept), together with provenance.json: the code version (git commit, and whether the tree
had uncommitted changes), the spec hash that made it, and the SHA-256 of every stored file.

Guarantees: `store_run` refuses an unfinished run, a run whose spec hash is not the current code's, a
source that is the store itself and a checkpoint that fails its own digest, and writes into a temporary
folder renamed into place (an interrupted store leaves the old stored run intact; a kill between the two
renames of the swap is undone the next time the stored run is looked up). `verify_stored` checks every
file against its recorded digest and refuses a file it does not record, an empty record, weights that
checkpoints.json does not vouch for and a config.json whose spec does not hash to its hash, naming the file.
`restore_run` copies a verified stored run into a temporary sibling of the run folder, checking each copy's
digest, writes the completion record and renames the whole into place: a full disk or a kill leaves no
half-restored run. `top_up_restored` brings a folder restored earlier the files (caches) stored since.
Nothing but `store_run` (and the migration) writes into the store: `check_outside_store` refuses a run
folder inside it, and `Run` refuses to lock or cache into a stored run.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from .files import (RunFolderError, atomic_write, check_writable, copy_verified, fault_point, file_digest, read_json,
                    remove_orphans, write_error, write_json)
from .run import CONFIG, FINISHED, MANIFEST, METRICS, PROVENANCE, Run
from ..spec.registry import get_experiment
from ..spec.hashing import spec_hash

ROOT = Path(__file__).resolve().parents[2]  # the repository (ldrkit/runs/store.py is two folders below it)


def store_root() -> Path:
    """$LDRKIT_RESULTS, else results/ at the repository root (or in the working directory when installed elsewhere)."""
    if os.environ.get("LDRKIT_RESULTS"):
        return Path(os.environ["LDRKIT_RESULTS"])
    return ROOT / "results" if (ROOT / "_toc.yml").exists() else Path.cwd() / "results"


def check_outside_store(path: Path | str) -> None:
    """A RunFolderError when `path` lies inside the results store, which only `store_run` writes."""
    root = os.path.realpath(store_root())
    where = os.path.realpath(path)
    if where == root or where.startswith(root + os.sep):
        raise RunFolderError(f"{path} is inside the results store {store_root()}, which only `python -m ldrkit store` "
                             "writes; choose a run folder outside it (runs/ is the default)")


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
        aside = [p for p in dest.parent.glob(f".{dest.name}.old-*") if (p / PROVENANCE).exists()]
        if aside:
            os.replace(max(aside, key=lambda p: p.stat().st_mtime), dest)
    return dest


SHAPES_A_RUN = ("ldrkit", "requirements.txt", "pyproject.toml")  # the files whose changes can change a run


def code_version() -> dict:
    """The git commit of the code, whether the working tree differs from it in anything that shapes a run
    (SHAPES_A_RUN), and then the SHA-256 of that difference (`git diff HEAD` and the untracked files' names and
    bytes), so that a dirty run names the exact change it came from; {"commit": "unknown"} outside a repository."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    try:
        status = git("status", "--porcelain", "--", *SHAPES_A_RUN).strip()
        version = {"commit": git("rev-parse", "HEAD").strip(), "dirty": bool(status)}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}
    if status:
        h = hashlib.sha256(git("diff", "HEAD", "--", *SHAPES_A_RUN).encode())
        for name in git("ls-files", "--others", "--exclude-standard", "--", *SHAPES_A_RUN).split():
            h.update(name.encode() + (ROOT / name).read_bytes())
        version["diff_sha256"] = h.hexdigest()
    return version


def _digests(folder: Path) -> dict[str, str]:
    """{relative path: SHA-256} of every file in a stored run except provenance.json."""
    return {str(p.relative_to(folder)): file_digest(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != PROVENANCE}


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
    the same spec already kept; each is copied only when its bytes have the digest it was recorded with.
    """
    run = Run(run_dir)
    if run.is_stored():
        raise RunFolderError(f"{run.path} is the stored run itself; store a run from runs/, not from the store")
    with run.lock():  # no storing of a folder that is being written
        problem = run.confirm_finished()
        if problem:
            raise FileNotFoundError(f"{run.path} holds no finished run ({problem})")
        return _store(run, root, samples_per_step, keep_steps, drop_kept)


def _store(run: Run, root: Path | None, samples_per_step: int, keep_steps: tuple[int, ...], drop_kept: bool) -> Path:
    metrics = run.metrics
    check_metrics(metrics, run.path / METRICS)
    name, profile, seed = metrics["experiment"], metrics["profile"], metrics["seed"]
    current = spec_hash(get_experiment(name).config(profile, seed))
    if metrics.get("config_hash") != current:
        raise RunFolderError(f"{run.path} was made by spec {metrics.get('config_hash')}, but the current code's "
                             f"{name} ({profile}, seed {seed}) is {current}; rerun it before storing")
    dest = stored_dir(name, profile, seed, root)
    if run.path.resolve() == dest.resolve() or dest.resolve() in run.path.resolve().parents:
        raise RunFolderError(f"{run.path} is the stored run itself; store a run from runs/, not from the store")
    old = read_json(dest / PROVENANCE) if (dest / PROVENANCE).exists() else {}
    previously = old.get("checkpoint_steps", []) if old.get("config_hash") == current and not drop_kept else []
    steps = run.steps()
    wanted = set(keep_steps) | set(previously) | ({max(steps)} if steps else set())
    missing = sorted(s for s in wanted if s not in steps and not (dest / Run(dest).checkpoint_path(s).name).exists())
    if missing:
        raise FileNotFoundError(f"{run.path} has no checkpoint of steps {missing}; saved steps: {steps}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(dest.parent, err) from None
    check_writable(dest.parent)
    remove_orphans(dest.parent, f".{dest.name}.storing-*")
    tmp = dest.parent / f".{dest.name}.storing-{os.getpid()}"
    try:
        _fill(tmp, run, dest, sorted(wanted), old, samples_per_step)
        provenance = {"experiment": name, "profile": profile, "seed": seed, "config_hash": metrics["config_hash"],
                      # The code that trained it (recorded in metrics.json since the store exists), else what the
                      # stored run of this spec said, else the storing code.
                      "code": metrics.get("code") or (old.get("code") if old.get("config_hash") == current else None)
                      or {**code_version(), "note": "code at storing time"},
                      "stored_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "wall_seconds": metrics.get("wall_seconds"), "checkpoint_steps": sorted(wanted),
                      "samples_per_step": samples_per_step, "files": _digests(tmp)}
        write_json(tmp / PROVENANCE, provenance)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():  # swap: the old stored run survives until the new one is complete
        trash = dest.parent / f".{dest.name}.old-{os.getpid()}"
        os.replace(dest, trash)
        os.replace(tmp, dest)
        shutil.rmtree(trash)
    else:
        os.replace(tmp, dest)
    return dest


def _fill(tmp: Path, run: Run, dest: Path, steps: list[int], old: dict, samples_per_step: int) -> None:
    """The files of a stored run, in the temporary folder `tmp`: the run's records and caches (not its completion
    record, which belongs to a run folder), its samples' first `samples_per_step`, and the checkpoints of `steps`,
    each from the run (checked against its manifest) or else from the stored run `dest` (checked against `old`)."""
    try:
        tmp.mkdir(parents=True)
    except OSError as err:
        raise write_error(tmp, err) from None
    for path in sorted(run.path.iterdir()):  # records, analysis caches, and the theory runs' arrays
        if path.is_file() and path.suffix in (".json", ".jsonl", ".npz") and not path.name.startswith(".") \
                and path.name != FINISHED:
            copy_verified(path, tmp / path.name)
    staged = Run(tmp)
    for step in run.sample_steps():
        staged.save_samples(step, run.samples(step)[:samples_per_step])
    redo = "retrain the run, or restore it from the results store, and store it again"
    for step in steps:
        if step in run.steps():
            copy_verified(run.checkpoint_path(step), tmp / run.checkpoint_path(step).name, run.checkpoint_digest(step),
                          redo)
        else:
            name = staged.checkpoint_path(step).name
            copy_verified(dest / name, tmp / name, (old.get("files") or {}).get(name), "restore it with git")
    if (run.path / "samples.pt").exists():  # oracle runs keep their samples in one file
        copy_verified(run.path / "samples.pt", tmp / "samples.pt")


def _altered(path: Path) -> RunFolderError:
    """The error for a stored file whose SHA-256 is not the one its provenance.json records."""
    return RunFolderError(f"{path} does not match the digest in its provenance.json (changed by hand or corrupted); "
                          "restore it with git or retrain and store the run")


def verify_stored(stored: Path) -> dict:
    """The provenance of a stored run after checking that every file in its folder is one it records, with the
    recorded SHA-256, that checkpoints.json vouches for every stored checkpoint, and that config.json's spec hashes
    to the stored run's hash."""
    stored = _finish_interrupted_swap(Path(stored))
    provenance = read_json(stored / PROVENANCE)
    recorded = provenance.get("files") if isinstance(provenance, dict) else None
    if not isinstance(recorded, dict) or not recorded:
        raise RunFolderError(f"{stored / PROVENANCE} records no file digests; re-store the run")
    found = _digests(stored)
    unknown = sorted(set(found) - set(recorded))
    if unknown:
        raise RunFolderError(f"{stored / unknown[0]} is not recorded in {stored / PROVENANCE} (the store did not "
                             "write it); delete it, or re-store the run")
    for rel, digest in recorded.items():
        if rel not in found:
            raise RunFolderError(f"{stored / rel} is missing from the results store; restore it with git")
        if found[rel] != digest:
            raise _altered(stored / rel)
    for required in (CONFIG, METRICS):
        if required not in recorded:
            raise RunFolderError(f"{stored / PROVENANCE} records no {required}; re-store the run")
    _check_weights(stored, recorded)
    run = Run(stored)
    if run.hash != provenance.get("config_hash"):  # run.hash re-hashes config.json's spec
        raise RunFolderError(f"{stored / CONFIG} holds spec {run.hash}, but the stored run is "
                             f"{provenance.get('config_hash')}; re-store the run")
    check_metrics(run.metrics, stored / METRICS)
    return provenance


def _check_weights(stored: Path, recorded: dict) -> None:
    """Every stored checkpoint has the digest checkpoints.json records for its step (the digest training wrote)."""
    weights = sorted(rel for rel in recorded if rel.startswith("model_") and rel.endswith(".safetensors"))
    if not weights:
        return
    if MANIFEST not in recorded:
        raise RunFolderError(f"{stored / MANIFEST} is missing: nothing vouches for the stored weights {weights[0]}; "
                             "re-store the run")
    manifest = read_json(stored / MANIFEST)
    for rel in weights:
        step = str(int(rel[len("model_"):-len(".safetensors")]))
        if not isinstance(manifest, dict) or manifest.get(step) != recorded[rel]:
            raise RunFolderError(f"{stored / rel} is not the checkpoint {stored / MANIFEST} records for step {step}; "
                                 "re-store the run")


def find_stored(name: str, profile: str, seed: int, digest: str, root: Path | None = None) -> Path | None:
    """The stored run of (name, profile, seed) when it was made by a spec with this hash, else None."""
    path = stored_dir(name, profile, seed, root)
    if not (path / PROVENANCE).exists():
        return None
    return path if read_json(path / PROVENANCE).get("config_hash") == digest else None


def stale_stored(name: str, profile: str, seed: int, digest: str, root: Path | None = None) -> str | None:
    """A message when the store holds this run made by another spec (it will be retrained), else None."""
    path = stored_dir(name, profile, seed, root)
    if not (path / PROVENANCE).exists():
        return None
    provenance = read_json(path / PROVENANCE)
    if provenance.get("config_hash") == digest:
        return None
    minutes = (provenance.get("wall_seconds") or 0) / 60
    return (f"{path} was made by an older spec ({provenance.get('config_hash')}, now {digest}); retraining, "
            f"about {minutes:.0f} minutes when it was stored")


def restore_run(stored: Path, out: Path | Run) -> dict:
    """Restore a verified stored run into the run folder `out` (a path, or the Run whose lock the caller holds)
    and return its metrics, pointing at `out`.

    The files are copied into a temporary sibling of `out`, each copy checked against its recorded digest; the
    completion record is written last, and the sibling is renamed onto `out` (which must hold nothing but its
    lock). A failure (a full disk) removes the sibling; one that a kill left behind is removed the next time.
    """
    run = out if isinstance(out, Run) else Run(out)
    provenance = verify_stored(stored)
    with run.lock() as lock:
        if run.exists():
            raise RunFolderError(f"{run.path} already holds a run; restore into a new folder")
        run.remove_orphans()
        remove_orphans(run.path.parent, f".{run.path.name}.restoring-*")
        tmp = run.path.parent / f".{run.path.name}.restoring-{os.getpid()}"
        try:
            tmp.mkdir()
            for rel, digest in sorted(provenance["files"].items()):
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                copy_verified(stored / rel, tmp / rel, digest, "restore it with git or retrain and store the run")
            fault_point("restore:copied")
            staged = Run(tmp)
            staged.mark_restored(stored)  # metrics.json stays byte for byte the stored one
            staged.write_finished("restored")
            lock.replace_with(tmp)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise write_error(tmp, err) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return Run(run.path).found_metrics()


def top_up_restored(stored: Path, out: Path) -> list[str]:
    """Copy into a restored run folder the stored files it lacks (caches stored after it was restored, which a
    chapter that only reads caches would otherwise miss), each checked against its recorded digest. Files the
    folder already has are left alone: its own caches may hold more than the store's. Nothing is copied unless the
    folder's metrics.json is the stored one (the same training, not a retrained run stored under the same spec).
    Returns what was copied."""
    recorded = read_json(stored / PROVENANCE).get("files") or {}
    if recorded.get(METRICS) != file_digest(out / METRICS):
        return []
    copied = []
    for rel, digest in sorted(recorded.items()):
        target = out / rel
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_verified(stored / rel, target, digest, "restore it with git or retrain and store the run")
        copied.append(rel)
    return copied


def stored_runs(root: Path | None = None) -> list[dict]:
    """Provenance of every stored run, sorted by experiment name."""
    root = Path(root or store_root())
    return sorted((read_json(p) for p in root.glob(f"*/*/{PROVENANCE}")),
                  key=lambda p: (p["experiment"], p["profile"], p["seed"]))


# --- migration to normalised spec hashes ----------------------------------------------------------------

def _legacy_hash(config: dict) -> str:
    """The hash runs were named by before specs were normalised: the raw config dict."""
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


# --- a stored run retrained from a clean commit ----------------------------------------------------------

NOT_CACHES = {CONFIG, METRICS, "metrics.jsonl", MANIFEST, PROVENANCE, FINISHED, "launches.jsonl", "restored_from.txt"}


def same_training(stored: Path, fresh: Path) -> str | None:
    """None when the retrained run `fresh` is the stored run's training again: every checkpoint the store kept has
    the same tensors in `fresh` (the bytes may differ in their metadata), and every evaluation has the same
    categories; else the first difference."""
    import torch
    from safetensors.torch import load_file

    old, new = Run(stored), Run(fresh)
    if old.hash != new.hash:
        return f"another spec ({old.hash}, {new.hash})"
    for step in old.steps():
        if step not in new.steps():
            return f"{fresh} has no checkpoint of step {step}"
        a, b = load_file(str(old.checkpoint_path(step))), load_file(str(new.checkpoint_path(step)))
        if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):
            return f"the weights of step {step} differ"
    categories = lambda run: [(e["step"], e.get("categories")) for e in run.metrics.get("evaluations", [])]
    if categories(old) != categories(new):
        return "the evaluations' categories differ"
    return None


def carry_caches(stored: Path, fresh: Path) -> list[str]:
    """Copy the stored run's analysis caches into the retrained folder `fresh` when it is the same training
    (`same_training`), each per-step entry re-keyed from the stored checkpoint's digest to the retrained one's:
    the same tensors are the same network, so what was computed from one holds for the other. Steps the store did
    not keep the weights of are carried on the evidence that every kept checkpoint and every evaluation agree (a
    deterministic training that ends in the same tensors passed through the same ones); an entry computed from
    another file than the stored checkpoint is dropped, to be recomputed. Caches the folder already has are left
    alone. Returns the files carried (none when the trainings differ)."""
    if same_training(stored, fresh) is not None:
        return []
    old_manifest, new_manifest = Run(stored).manifest(), Run(fresh).manifest()
    carried = []
    for path in sorted(Path(stored).glob("*.json")):
        if path.name in NOT_CACHES or (Path(fresh) / path.name).exists():
            continue
        cache = read_json(path)
        if isinstance(cache, dict) and isinstance(cache.get("digests"), dict):
            for step, digest in list(cache["digests"].items()):
                if old_manifest.get(step) not in (None, digest) or step not in new_manifest:
                    del cache["digests"][step]  # computed from another file: let it be recomputed
                    for entry in cache.get("entries", {}).values():
                        entry.pop(step, None)
                else:
                    cache["digests"][step] = new_manifest[step]
        write_json(Path(fresh) / path.name, cache)
        carried.append(path.name)
    return carried
