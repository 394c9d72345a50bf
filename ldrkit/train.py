"""The training loop: seeded, with a progress bar, periodic evaluation and a resumable run folder.

A run folder holds
- config.json: the full config and its hash;
- metrics.jsonl: one JSON line per evaluation;
- model_STEP.safetensors: the model weights at each evaluation;
- resume.safetensors: model, optimizer state and the data RNG at the last evaluation.

An interrupted run restarts from resume.safetensors and, because evaluation draws its
randomness from (seed, step) rather than from the training stream, reaches exactly the
numbers of an uninterrupted run. A folder made by a different config is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from .diffusion import Schedule


class ConfigMismatchError(RuntimeError):
    """A run folder (or checkpoint) was made by a different config."""


def config_hash(config: dict) -> str:
    """A short stable hash of a JSON-serialisable config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def prepare_run_dir(run_dir: Path, config: dict) -> str:
    """Create the folder and its config.json, or check that an existing one holds the same config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    digest = config_hash(config)
    path = run_dir / "config.json"
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("hash") != digest:
            raise ConfigMismatchError(
                f"{run_dir} holds a run of a different config (hash {stored.get('hash')}, this config {digest}); "
                "choose another output folder or delete that one")
    else:
        atomic_write(path, json.dumps({"hash": digest, "config": config}, indent=2))
    return digest


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    rng: torch.Generator | None, step: int, digest: str, extra: dict | None = None) -> None:
    """Model weights (and optionally optimizer state and RNG) to safetensors, written atomically."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    if optimizer is not None:
        for i, state in optimizer.state_dict()["state"].items():
            for key, value in state.items():
                tensors[f"optim.{i}.{key}"] = torch.as_tensor(value).contiguous()
    if rng is not None:
        tensors["rng"] = rng.get_state()
    metadata = {"step": str(step), "config_hash": digest, **{k: json.dumps(v) for k, v in (extra or {}).items()}}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    rng: torch.Generator | None = None, digest: str | None = None) -> dict:
    """Restore what save_checkpoint wrote; returns its metadata. Refuses a checkpoint of another config."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if digest is not None and metadata.get("config_hash") != digest:
        raise ConfigMismatchError(f"checkpoint {path} was made by config {metadata.get('config_hash')}, not {digest}")
    tensors = load_file(str(path))
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
    return metadata


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train(run_dir: Path, config: dict, model: nn.Module, schedule: Schedule, data: torch.Tensor,
          evaluate: Callable[[nn.Module, int], dict], *, stop_after: int | None = None,
          progress: bool = True) -> list[dict]:
    """Train `model` on `data` with config["train"] = {steps, batch_size, lr, eval_every, seed}.

    Evaluates (and checkpoints) at step 0, every eval_every steps and at the last step.
    `stop_after` ends the loop early at that step, as an interruption would (for tests).
    Returns the evaluation records in metrics.jsonl.
    """
    run_dir = Path(run_dir)
    digest = prepare_run_dir(run_dir, config)
    tc = config["train"]
    rng = torch.Generator().manual_seed(tc["seed"])
    optimizer = torch.optim.Adam(model.parameters(), lr=tc["lr"])
    step, elapsed = 0, 0.0
    resume = run_dir / "resume.safetensors"
    if resume.exists():
        meta = load_checkpoint(resume, model, optimizer, rng, digest)
        step, elapsed = int(meta["step"]), float(json.loads(meta.get("elapsed_seconds", "0")))
    records = [r for r in read_metrics(run_dir) if r["step"] <= step]
    atomic_write(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records))

    def checkpoint_and_evaluate(step: int) -> None:
        model.eval()
        record = {"step": step, **evaluate(model, step), "elapsed_seconds": elapsed + time.perf_counter() - start}
        model.train()
        records.append(record)
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        save_checkpoint(run_dir / f"model_{step:07d}.safetensors", model, None, None, step, digest)
        save_checkpoint(resume, model, optimizer, rng, step, digest, {"elapsed_seconds": record["elapsed_seconds"]})

    start = time.perf_counter()
    model.train()
    if step == 0 and not records:
        checkpoint_and_evaluate(0)
    end = tc["steps"] if stop_after is None else min(stop_after, tc["steps"])
    bar = tqdm(total=tc["steps"], initial=step, desc="training", disable=not progress, dynamic_ncols=True)
    smoothed = None
    while step < end:
        batch = data[torch.randint(0, len(data), (tc["batch_size"],), generator=rng)]
        loss = schedule.loss(model, batch, rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        smoothed = loss.item() if smoothed is None else 0.98 * smoothed + 0.02 * loss.item()
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{smoothed:.4f}")
        if step % tc["eval_every"] == 0 or step == tc["steps"]:
            checkpoint_and_evaluate(step)
    bar.close()
    return records


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every saved model checkpoint, in step order."""
    found = sorted(Path(run_dir).glob("model_*.safetensors"))
    return [(int(p.stem.split("_")[1]), p) for p in found]


def atomic_write(path: Path, text: str) -> None:
    """Write text to path through a temporary file, so an interrupted write never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
