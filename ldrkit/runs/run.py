"""One run folder, owned by one object: `Run`. Nothing else knows the folder's layout.

A run folder holds
- config.json: the spec and its hash (`spec.hashing.spec_hash`);
- metrics.jsonl: one JSON line per evaluation (rewritten atomically, never appended);
- metrics.json: the run's results (the metrics contract, see `ldrkit.runs.request`);
- finished.json: the completion record, written last (after metrics.json, or after a restore's files are all
  in place and checked): the run is finished when it is there and metrics.json still has the digest it records,
  never because metrics.json alone is there;
- model_STEP.safetensors: the evaluated weights at each evaluation, and checkpoints.json, the
  SHA-256 of each, checked whenever one is loaded (a checkpoint it does not list is refused);
- resume.safetensors: raw weights, optimizer, data RNG (and weight average) at the last evaluation;
- samples/step_STEP.npy: the generated samples of each evaluation (samples.pt for oracle runs);
- launches.jsonl: one line per start of the training loop;
- restored_from.txt: the stored run a restored folder was copied from (the store never copies it back);
- NAME.json: analysis caches (`Run.cached`), one per analysis, keyed by its parameters and by the
  digest of the checkpoint it was computed from;
- .lock: held by the process that writes the folder (`Run.lock`).

config.json is re-hashed whenever it is read: a spec edited by hand under its old hash is refused. A folder
holding provenance.json is a run in the results store: read-only here (`lock` and `cached` refuse it), only
`ldrkit.runs.store` writes there.
"""
from __future__ import annotations

import io
import json
import time
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .files import (FolderLock, RunFolderError, atomic_write, check_writable, file_digest, read_json, read_jsonl,
                    remove_orphans, write_json, write_jsonl)
from .setup import Setup
from ..spec.hashing import spec_hash

CONFIG, METRICS, RECORDS, RESUME, MANIFEST, LAUNCHES, RESTORED, FINISHED, PROVENANCE = (
    "config.json", "metrics.json", "metrics.jsonl", "resume.safetensors", "checkpoints.json", "launches.jsonl",
    "restored_from.txt", "finished.json", "provenance.json")
CONTRACT = ("experiment", "profile", "seed", "wall_seconds", "config_hash")
"""The keys every finished run's metrics.json has (sampling runs also "evaluations" and "final")."""


class ConfigMismatchError(RuntimeError):
    """A run folder (or checkpoint) was made by a different config."""


def _checkpoint_name(step: int) -> str:
    return f"model_{step:07d}.safetensors"


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    rng: torch.Generator | None, step: int, digest: str, extra: dict | None = None,
                    ema=None) -> None:
    """Model weights (and optionally optimizer state, RNG and weight average) to safetensors, written atomically."""
    atomic_write(path, checkpoint_bytes(model, optimizer, rng, step, digest, extra, ema))


def checkpoint_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None, rng: torch.Generator | None,
                     step: int, digest: str, extra: dict | None = None, ema=None) -> bytes:
    """The safetensors bytes of a checkpoint (see save_checkpoint)."""
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{i}": p.detach().cpu().contiguous() for i, p in enumerate(ema.shadow_params)})
        extra = {**(extra or {}), "ema_optimization_step": ema.optimization_step}
    if optimizer is not None:
        for i, state in optimizer.state_dict()["state"].items():
            for key, value in state.items():
                tensors[f"optim.{i}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    if rng is not None:
        tensors["rng"] = rng.get_state()
    metadata = {"step": str(step), "config_hash": digest, **{k: json.dumps(v) for k, v in (extra or {}).items()}}
    return save(tensors, metadata=metadata)


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    rng: torch.Generator | None = None, digest: str | None = None, ema=None) -> dict:
    """Restore what save_checkpoint wrote; returns its metadata. Refuses a checkpoint of another config,
    and names the file when it cannot be read."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for torn or corrupt files
        raise RunFolderError(f"{path} is not a readable checkpoint ({err}); delete it (or the run folder) and "
                             "run again") from None
    if digest is not None and metadata.get("config_hash") != digest:
        raise ConfigMismatchError(f"checkpoint {path} was made by config {metadata.get('config_hash')}, not {digest}")
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    if optimizer is not None:
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, i, name = key.split(".", 2)
                state.setdefault(int(i), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    if rng is not None:
        rng.set_state(tensors["rng"])
    if ema is not None:
        for i, shadow in enumerate(ema.shadow_params):
            shadow.copy_(tensors[f"ema.{i}"])
        ema.optimization_step = int(json.loads(metadata["ema_optimization_step"]))
    return metadata


class Run:
    """A run folder: its spec, records, checkpoints, samples and analysis caches.

    `Run(path)` opens a folder (it need not exist yet). Readers use `config`, `metrics`,
    `evaluations`, `steps()`, `model(step)`, `samples(step)`, `setup` and `cached(...)`;
    writers (training, oracle runs, the store) use `prepare`, `lock`, `save_model`,
    `write_records`, `save_samples` and `write_metrics`.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = FolderLock(self.path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # --- the spec ---------------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.path / CONFIG).exists()

    def _stored_config(self) -> dict:
        """config.json, its spec re-hashed against the hash it records (read afresh on every use)."""
        if not self.exists():
            raise FileNotFoundError(f"{self.path} is not a run folder (no {CONFIG})")
        path = self.path / CONFIG
        stored = read_json(path)
        if not isinstance(stored, dict) or not isinstance(stored.get("config"), dict) or "hash" not in stored:
            raise RunFolderError(f"{path} is not a config.json ldrkit wrote; restore it from the results store or "
                                 "delete the run folder and run again")
        if spec_hash(stored["config"]) != stored["hash"]:
            raise RunFolderError(f"{path}: its spec hashes to {spec_hash(stored['config'])}, not the recorded "
                                 f"{stored['hash']} (changed by hand); restore it from the results store or delete "
                                 "the run folder and run again")
        return stored

    @property
    def config(self) -> dict:
        return self._stored_config()["config"]

    @property
    def hash(self) -> str:
        return self._stored_config()["hash"]

    def is_stored(self) -> bool:
        """True for a run in the results store (its folder holds provenance.json): nothing here may write to it."""
        return (self.path / PROVENANCE).exists()

    def refuse_stored(self) -> None:
        """A RunFolderError for a run in the results store, naming the runs/ copy to use instead."""
        if not self.is_stored():
            return
        try:
            stored = read_json(self.path / PROVENANCE)
            restore = (f"python -m ldrkit run {stored['experiment']} --profile {stored['profile']} "
                       f"--seed {stored['seed']}")
        except (RunFolderError, KeyError, TypeError):
            restore = "python -m ldrkit run NAME --profile PROFILE --seed SEED"
        raise RunFolderError(f"{self.path} is a run in the results store, which only `python -m ldrkit store` writes; "
                             f"use its runs/ copy (`{restore}` restores it there)")

    def holds(self, config: dict) -> bool:
        """True when the folder was made by this spec."""
        return self.exists() and self.hash == spec_hash(config)

    def prepare(self, config: dict) -> str:
        """Create the folder and its config.json, or check that it holds this spec (ConfigMismatchError if not)."""
        digest = spec_hash(config)
        self.refuse_stored()
        self.path.mkdir(parents=True, exist_ok=True)
        self.remove_orphans()
        if self.exists():
            if self.hash != digest:
                raise ConfigMismatchError(
                    f"{self.path} holds a run of a different config (hash {self.hash}, this config {digest}); "
                    "choose another output folder or delete that one")
        else:
            write_json(self.path / CONFIG, {"hash": digest, "config": config}, indent=2)
        return digest

    def lock(self) -> FolderLock:
        """The folder's lock (a context manager); a second process gets a clear error naming the holder. A run in
        the results store cannot be locked (nothing but `store` writes there)."""
        self.refuse_stored()
        return self._lock

    def remove_orphans(self) -> list[Path]:
        """Remove the temporary files that killed processes left in the folder (`files.remove_orphans`)."""
        return remove_orphans(self.path) + remove_orphans(self.path / "samples")

    # --- records and metrics ------------------------------------------------------------------------
    def records(self) -> list[dict]:
        """The evaluation records of metrics.jsonl (a torn last line is dropped with a warning)."""
        return read_jsonl(self.path / RECORDS)

    def write_records(self, records: list[dict]) -> None:
        write_jsonl(self.path / RECORDS, records)

    def is_finished(self) -> bool:
        """True when the completion record (finished.json) is there for this folder's spec. A finished run whose
        metrics.json changed since, or that lost a checkpoint it finished with, is an error naming the file."""
        path = self.path / FINISHED
        if not path.exists() or not self.exists():
            return False
        record = read_json(path)
        if not isinstance(record, dict) or record.get("config_hash") != self.hash:
            return False
        metrics = self.path / METRICS
        if not metrics.exists() or file_digest(metrics) != record.get("metrics_sha256"):
            raise RunFolderError(f"{metrics} has changed since the run finished (its SHA-256 is not the one "
                                 f"{FINISHED} records); restore it from the results store, or delete the run folder "
                                 "and run again")
        missing = [s for s in record.get("checkpoint_steps", []) if not self.checkpoint_path(s).exists()]
        if missing:
            raise RunFolderError(f"{self.checkpoint_path(missing[0])} is missing (the run finished with it); restore "
                                 "the run from the results store, or delete the run folder and run again")
        return True

    def write_finished(self, how: str) -> None:
        """Write the completion record: the last write of a run ("trained", "restored" or "adopted")."""
        write_json(self.path / FINISHED, {"config_hash": self.hash, "metrics_sha256": file_digest(self.path / METRICS),
                                          "checkpoint_steps": self.steps(), "how": how,
                                          "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    def confirm_finished(self) -> str | None:
        """None when the folder holds a finished run, else what it lacks.

        A run finished by older code (or killed between its metrics.json and the record) has no completion
        record: its files are checked (metrics.json of this spec with the contract's keys, every checkpoint
        listed in checkpoints.json with its digest, the last evaluation's checkpoint present) and the record
        written when they pass. The caller holds the lock.
        """
        if self.is_finished():
            return None
        if not (self.path / METRICS).exists():
            return f"no {METRICS}"
        problem = self._unfinished_because(self.metrics)
        if problem is None:
            self.write_finished("adopted")
        return problem

    def _unfinished_because(self, metrics: dict) -> str | None:
        """What keeps a folder with this metrics.json from being a whole finished run (None: nothing)."""
        wanted = CONTRACT + (("evaluations", "final") if "eval" in self.config else ())
        missing = [k for k in wanted if k not in metrics]
        if missing:
            raise RunFolderError(f"{self.path / METRICS} is not a metrics.json ldrkit wrote (no {missing[0]!r}); "
                                 "delete it and run again, or restore the run from the results store")
        if metrics["config_hash"] != self.hash:
            return f"its {METRICS} was made by spec {metrics['config_hash']}, not {self.hash}"
        manifest = self.manifest()
        for step in self.steps():
            if manifest.get(str(step)) != file_digest(self.checkpoint_path(step)):
                return f"{_checkpoint_name(step)} does not match {MANIFEST}"
        last = (metrics.get("final") or {}).get("step")
        if last is not None and any(k != "resume" for k in manifest) and not self.checkpoint_path(last).exists():
            return f"the checkpoint of its last evaluation, {_checkpoint_name(last)}, is missing"
        return None

    @property
    def metrics(self) -> dict:
        """metrics.json of the run (an error naming the file when it is not a JSON object)."""
        path = self.path / METRICS
        metrics = read_json(path)
        if not isinstance(metrics, dict):
            raise RunFolderError(f"{path} is not a metrics.json ldrkit wrote ({json.dumps(metrics)[:20]}); delete it "
                                 "and run again, or restore the run from the results store")
        return metrics

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.path / METRICS, metrics)

    @property
    def evaluations(self) -> list[dict]:
        return self.metrics["evaluations"]

    @property
    def final(self) -> dict:
        return self.metrics["final"]

    def found_metrics(self) -> dict:
        """metrics.json as a reader finds it here: run_dir is this folder, and a restored run says where from."""
        restored = self.restored_from
        return {**self.metrics, "run_dir": str(self.path), **({"restored_from": restored} if restored else {})}

    @property
    def restored_from(self) -> str | None:
        """The stored run this folder was restored from (None for a run trained here)."""
        path = self.path / RESTORED
        return path.read_text().strip() if path.exists() else None

    def mark_restored(self, stored: Path) -> None:
        """Record where a restored folder came from, beside metrics.json rather than in it (which stays as stored)."""
        atomic_write(self.path / RESTORED, f"{stored}\n")

    def log_launch(self, launch: dict) -> None:
        write_jsonl(self.path / LAUNCHES, read_jsonl(self.path / LAUNCHES) + [launch])

    # --- checkpoints --------------------------------------------------------------------------------
    def steps(self) -> list[int]:
        """Steps whose evaluated weights are in the folder, in order."""
        return sorted(int(p.stem.split("_")[1]) for p in self.path.glob("model_*.safetensors"))

    def checkpoint_path(self, step: int) -> Path:
        return self.path / _checkpoint_name(step)

    @property
    def resume_path(self) -> Path:
        return self.path / RESUME

    def manifest(self) -> dict[str, str]:
        """{step: SHA-256} of the checkpoints written by training (and "resume"); empty before the first one."""
        path = self.path / MANIFEST
        manifest = read_json(path) if path.exists() else {}
        if not isinstance(manifest, dict):
            raise RunFolderError(f"{path} is not a checkpoint manifest ldrkit wrote; restore the run from the results "
                                 "store, or delete the run folder and run again")
        return manifest

    def save_model(self, step: int, model: nn.Module) -> None:
        """Save the evaluated weights of `step` and record their digest in the manifest."""
        path = self.checkpoint_path(step)
        save_checkpoint(path, model, None, None, step, self.hash)
        self.record_digest(str(step), path)

    def record_digest(self, key: str, path: Path) -> None:
        """Record the SHA-256 of a file the run wrote (a checkpoint step, or "resume") in the manifest."""
        write_json(self.path / MANIFEST, {**self.manifest(), key: file_digest(path)})

    def save_resume(self, model, optimizer, rng, step: int, extra: dict, ema=None) -> None:
        """Write resume.safetensors and its digest so that a kill at any instant leaves a file the manifest
        accepts: the manifest lists the old and the new digest while the file is being replaced."""
        import hashlib

        data = checkpoint_bytes(model, optimizer, rng, step, self.hash, extra, ema)
        new, old = hashlib.sha256(data).hexdigest(), self.manifest().get("resume")
        write_json(self.path / MANIFEST, {**self.manifest(), "resume": [d for d in (old, new) if isinstance(d, str)]})
        atomic_write(self.resume_path, data)
        write_json(self.path / MANIFEST, {**self.manifest(), "resume": new})

    def check_digest(self, key: str, path: Path, manifest: dict | None = None) -> str:
        """The file's SHA-256, which must match the manifest's record of it: a file the manifest does not list
        (not written by training, or checkpoints.json lost) is refused too.

        `manifest`: the manifest already read by the caller (read here otherwise)."""
        digest = file_digest(path)
        expected = (self.manifest() if manifest is None else manifest).get(key)
        if expected is None:
            raise RunFolderError(f"{path} is not listed in {self.path / MANIFEST} (no digest to check it against); "
                                 "delete it, or restore the run from the results store")
        if isinstance(expected, list):  # a write was under way: either file is a whole one
            expected = digest if digest in expected else expected[-1]
        if expected != digest:
            raise RunFolderError(f"{path} has changed since it was written (SHA-256 {digest[:12]}..., recorded "
                                 f"{expected[:12]}...); restore it from the results store or retrain")
        return digest

    def checkpoint_digest(self, step: int, manifest: dict | None = None) -> str:
        """The digest of a checkpoint file, checked against the manifest: a changed file is an error."""
        path = self.checkpoint_path(step)
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint for step {step} in {self.path}; saved steps: {self.steps()}")
        return self.check_digest(str(step), path, manifest)

    @cached_property
    def setup(self) -> Setup:
        """The spec's grammar, split, renderer, schedule and training data."""
        return Setup.from_config(self.config)

    def last_step(self) -> int:
        """The step of the last checkpoint in the folder (an error naming the folder when it holds none)."""
        if not self.exists():
            raise FileNotFoundError(f"{self.path} is not a run folder (no {CONFIG})")
        steps = self.steps()
        if not steps:
            raise FileNotFoundError(f"{self.path} holds no checkpoints (model_*.safetensors); restore the run "
                                    "(python -m ldrkit run NAME ...) or delete the folder and train it again")
        return steps[-1]

    def model(self, step: int | None = None) -> nn.Module:
        """The network at `step` (default: the last checkpoint) in eval mode, its file checked."""
        step = self.last_step() if step is None else int(step)
        self.checkpoint_digest(step)
        return self._load_model(step)

    def _load_model(self, step: int) -> nn.Module:
        """The network of a checkpoint whose digest the caller has just checked."""
        model = self.setup.build_model(self.config)
        load_checkpoint(self.checkpoint_path(step), model, digest=self.hash)
        return model.eval()

    # --- samples --------------------------------------------------------------------------------------
    def sample_steps(self) -> list[int]:
        return sorted(int(p.stem.split("_")[1]) for p in (self.path / "samples").glob("step_*.npy"))

    def save_samples(self, step: int, samples: torch.Tensor) -> None:
        (self.path / "samples").mkdir(parents=True, exist_ok=True)
        data = io.BytesIO()
        np.save(data, samples.detach().cpu().numpy().astype(np.float16))
        atomic_write(self.path / "samples" / f"step_{step:07d}.npy", data.getvalue())

    def samples(self, step: int | None = None) -> torch.Tensor:
        """The generated samples of an evaluation (default: the last), in the renderer's space.

        A run restored from the results store keeps a subset of each evaluation's samples.
        Oracle runs keep their one evaluation's samples in samples.pt.
        """
        if (self.path / "samples.pt").exists() and not self.sample_steps():
            return torch.load(self.path / "samples.pt").float()
        steps = self.sample_steps()
        if not steps:
            raise FileNotFoundError(f"no samples in {self.path}")
        step = steps[-1] if step is None else int(step)
        path = self.path / "samples" / f"step_{step:07d}.npy"
        if not path.exists():
            raise FileNotFoundError(f"no samples of step {step} in {self.path}; evaluated steps: {steps}")
        return torch.as_tensor(np.load(path)).float()

    def save_oracle_samples(self, samples: torch.Tensor) -> None:
        data = io.BytesIO()
        torch.save(samples.half(), data)
        atomic_write(self.path / "samples.pt", data.getvalue())

    # --- analysis caches ------------------------------------------------------------------------------
    def cached(self, name: str, params: dict, steps: list[int] | None,
               compute: Callable[[nn.Module, int], dict]) -> list[dict]:
        """A per-checkpoint analysis, cached in RUN/NAME.json: one row {"step", **result} per step.

        The cache is keyed by the run's config hash, by `params` (whatever changes the result)
        and, per step, by the SHA-256 of the checkpoint it was computed from: a checkpoint that
        changes is recomputed. `compute(model, step)` runs only for steps missing from the cache;
        steps whose checkpoint is gone (a run restored from the results store keeps a few) are
        served from the cache. steps=None: every checkpoint and every cached step.
        A run in the results store is refused (its runs/ copy keeps the caches), and so, before anything is
        computed, is a folder this process cannot write.
        """
        self.refuse_stored()
        path = self.path / f"{name}.json"
        cache = read_json(path) if path.exists() else {}
        if cache.get("config_hash") != self.hash:
            cache = {"config_hash": self.hash, "entries": {}, "digests": {}}
        key = json.dumps(params, sort_keys=True)
        # Keys are compared as parsed JSON (older caches wrote their keys unsorted).
        merged: dict = {}
        for k, v in cache["entries"].items():
            merged.setdefault(json.dumps(json.loads(k), sort_keys=True), {}).update(v)
        cache["entries"] = merged
        entry = cache["entries"].setdefault(key, {})
        digests = cache.setdefault("digests", {})
        present = self.steps()
        manifest = self.manifest()  # read once; each checkpoint is hashed once
        wanted = sorted(set(present) | {int(s) for s in entry}) if steps is None else [int(s) for s in steps]
        todo = {}
        for step in wanted:
            if step in present:
                digest = self.checkpoint_digest(step, manifest)
                if str(step) in entry and digests.get(str(step)) not in (None, digest):
                    del entry[str(step)]  # computed from another file
                if str(step) not in entry:
                    todo[step] = digest
            elif str(step) not in entry:
                raise FileNotFoundError(f"{self.path} has neither the checkpoint of step {step} nor a cached "
                                        f"{name} for it; saved steps: {present}")
        if todo:
            check_writable(self.path)
        for step, digest in todo.items():
            entry[str(step)] = compute(self._load_model(step), step)
            digests[str(step)] = digest
            write_json(path, cache)
        return [{"step": s, **entry[str(s)]} for s in wanted]
