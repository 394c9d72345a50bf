"""Files that never come out half-written: atomic writes, strict JSON, digests, a lock per folder.

The lowest floor of the house: it knows nothing of runs, configs or models. Every file of a
run folder or of the results store is written through these functions.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import warnings
from pathlib import Path


class RunFolderError(RuntimeError):
    """A file or folder that cannot be used as it is; the message names the file and what to do."""


def json_ready(value):
    """`value` with every non-finite float (NaN, +-inf) replaced by None, so that json.dumps writes strict JSON.

    An LDR is 0/0 where the Jacobian vanishes (an exact denoiser whose posterior sits on one point):
    metrics record such an undefined value as null rather than the non-standard NaN.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def atomic_write(path: Path | str, data: str | bytes) -> None:
    """Write text or bytes to path through a temporary file renamed into place (never half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path | str, value, indent: int | None = 1) -> None:
    atomic_write(path, json.dumps(json_ready(value), indent=indent))


def read_json(path: Path | str):
    """Parsed JSON, or a RunFolderError naming the file when it is missing or not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFolderError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunFolderError(f"{path} is not valid JSON ({err}); restore it from the results store or delete the "
                             "run folder and run again") from None


def read_jsonl(path: Path | str) -> list[dict]:
    """The records of a JSON-lines file. A torn last line (a write cut short) is dropped with a warning;
    a bad line anywhere else is an error naming the file and line."""
    path = Path(path)
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                warnings.warn(f"{path}: dropped a torn last line (an interrupted write); it is recomputed", stacklevel=2)
                break
            raise RunFolderError(f"{path}, line {i + 1}, is not valid JSON; delete the run folder and run again") from None
    return records


def write_jsonl(path: Path | str, records: list[dict]) -> None:
    """The whole JSON-lines file, written atomically (an append that is interrupted cannot tear it)."""
    atomic_write(path, "".join(json.dumps(json_ready(r)) + "\n" for r in records))


def file_digest(path: Path | str) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class FolderLock:
    """An exclusive lock on a folder (an flock on FOLDER/.lock), held by one process at a time.

    A second process that asks for it gets a RunFolderError naming the holder (host and pid),
    at once rather than after waiting: two trainings of one folder must never interleave.
    The lock goes with its process, so a killed run leaves no stale lock behind.
    """

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.path = self.folder / ".lock"
        self._file = None
        self._depth = 0

    def __enter__(self) -> "FolderLock":
        import fcntl

        if self._depth:
            self._depth += 1
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "a+")
        except OSError as err:
            raise RunFolderError(f"cannot write to the run folder {self.folder} ({err.strerror}); choose a writable "
                                 "--out folder") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise RunFolderError(f"{self.folder} is in use by {holder}; wait for it to finish or use another "
                                 "--out folder") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}")
        f.flush()
        self._file, self._depth = f, 1
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        self._depth -= 1
        if self._depth == 0 and self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
