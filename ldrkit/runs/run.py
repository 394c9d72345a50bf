"""One run folder, owned by one object: `Run`. Nothing else knows the folder's layout.

A run folder holds
- config.json: the spec and its hash (`spec.hashing.spec_hash`);
- metrics.jsonl: one JSON line per evaluation (rewritten atomically, never appended);
- metrics.json: the finished run (the metrics contract, see `ldrkit.runs.request`);
- model_STEP.safetensors: the evaluated weights at each evaluation, and checkpoints.json, the
  SHA-256 of each, checked whenever one is loaded;
- resume.safetensors: raw weights, optimizer, data RNG (and weight average) at the last evaluation;
- samples/step_STEP.npy: the generated samples of each evaluation (samples.pt for oracle runs);
- launches.jsonl: one line per start of the training loop;
- restored_from.txt: the stored run a restored folder was copied from (the store never copies it back);
- NAME.json: analysis caches (`Run.cached`), one per analysis, keyed by its parameters and by the
  digest of the checkpoint it was computed from;
- .lock: held by the process that writes the folder (`Run.lock`).
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .files import (FolderLock, RunFolderError, atomic_write, file_digest, read_json, read_jsonl, write_json,
                    write_jsonl)
from .setup import Setup
from ..spec.hashing import spec_hash

CONFIG, METRICS, RECORDS, RESUME, MANIFEST, LAUNCHES, RESTORED = (
    "config.json", "metrics.json", "metrics.jsonl", "resume.safetensors", "checkpoints.json", "launches.jsonl",
    "restored_from.txt")


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

    @cached_property
    def _stored_config(self) -> dict:
        if not self.exists():
            raise FileNotFoundError(f"{self.path} is not a run folder (no {CONFIG})")
        return read_json(self.path / CONFIG)

    @property
    def config(self) -> dict:
        return self._stored_config["config"]

    @property
    def hash(self) -> str:
        return self._stored_config["hash"]

    def holds(self, config: dict) -> bool:
        """True when the folder was made by this spec."""
        return self.exists() and self.hash == spec_hash(config)

    def prepare(self, config: dict) -> str:
        """Create the folder and its config.json, or check that it holds this spec (ConfigMismatchError if not)."""
        digest = spec_hash(config)
        self.path.mkdir(parents=True, exist_ok=True)
        if self.exists():
            stored = read_json(self.path / CONFIG)
            if stored.get("hash") != digest:
                raise ConfigMismatchError(
                    f"{self.path} holds a run of a different config (hash {stored.get('hash')}, this config {digest}); "
                    "choose another output folder or delete that one")
        else:
            write_json(self.path / CONFIG, {"hash": digest, "config": config}, indent=2)
        self.__dict__.pop("_stored_config", None)
        return digest

    def lock(self) -> FolderLock:
        """The folder's lock (a context manager); a second process gets a clear error naming the holder."""
        return self._lock

    # --- records and metrics ------------------------------------------------------------------------
    def records(self) -> list[dict]:
        """The evaluation records of metrics.jsonl (a torn last line is dropped with a warning)."""
        return read_jsonl(self.path / RECORDS)

    def write_records(self, records: list[dict]) -> None:
        write_jsonl(self.path / RECORDS, records)

    def is_finished(self) -> bool:
        """True when metrics.json exists and was made by this folder's spec."""
        path = self.path / METRICS
        return path.exists() and self.exists() and read_json(path).get("config_hash") == self.hash

    @property
    def metrics(self) -> dict:
        """metrics.json of the finished run."""
        return read_json(self.path / METRICS)

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
        """{step: SHA-256} of the checkpoints written by training (empty for folders older than the manifest)."""
        path = self.path / MANIFEST
        return read_json(path) if path.exists() else {}

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
        """The file's SHA-256, which must match the manifest's record of it (when there is one).

        `manifest`: the manifest already read by the caller (read here otherwise)."""
        digest = file_digest(path)
        expected = (self.manifest() if manifest is None else manifest).get(key)
        if isinstance(expected, list):  # a write was under way: either file is a whole one
            expected = digest if digest in expected else expected[-1]
        if expected is not None and expected != digest:
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

    def model(self, step: int | None = None) -> nn.Module:
        """The network at `step` (default: the last checkpoint) in eval mode, its file checked."""
        steps = self.steps()
        if not steps:
            raise FileNotFoundError(f"no checkpoints in {self.path}")
        step = steps[-1] if step is None else int(step)
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
        tmp = self.path / "samples" / f".step_{step:07d}.tmp.npy"
        np.save(tmp, samples.detach().cpu().numpy().astype(np.float16))
        tmp.replace(self.path / "samples" / f"step_{step:07d}.npy")

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
        tmp = self.path / ".samples.pt.tmp"
        torch.save(samples.half(), tmp)
        tmp.replace(self.path / "samples.pt")

    # --- analysis caches ------------------------------------------------------------------------------
    def cached(self, name: str, params: dict, steps: list[int] | None,
               compute: Callable[[nn.Module, int], dict]) -> list[dict]:
        """A per-checkpoint analysis, cached in RUN/NAME.json: one row {"step", **result} per step.

        The cache is keyed by the run's config hash, by `params` (whatever changes the result)
        and, per step, by the SHA-256 of the checkpoint it was computed from: a checkpoint that
        changes is recomputed. `compute(model, step)` runs only for steps missing from the cache;
        steps whose checkpoint is gone (a run restored from the results store keeps a few) are
        served from the cache. steps=None: every checkpoint and every cached step.
        """
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
        for step in wanted:
            if step in present:
                digest = self.checkpoint_digest(step, manifest)
                if str(step) in entry and digests.get(str(step)) not in (None, digest):
                    del entry[str(step)]  # computed from another file
                if str(step) not in entry:
                    entry[str(step)] = compute(self._load_model(step), step)
                    digests[str(step)] = digest
                    write_json(path, cache)
            elif str(step) not in entry:
                raise FileNotFoundError(f"{self.path} has neither the checkpoint of step {step} nor a cached "
                                        f"{name} for it; saved steps: {present}")
        return [{"step": s, **entry[str(s)]} for s in wanted]
