"""Files that never come out half-written: atomic writes and copies, strict JSON, digests, a lock per folder.

The lowest floor of the house: it knows nothing of runs, configs or models. Every file of a
run folder or of the results store is written through these functions. A write that fails (a full
disk, a read-only folder) removes its temporary file and raises a RunFolderError naming the file and
the fix; a temporary file that a killed process left behind (.NAME.PID.tmp, PID dead) is removed by
`remove_orphans` when the folder is next written.

Fault injection: `fault_point(name)` kills the process (SIGKILL, as a power cut or the OOM killer
would) when $LDRKIT_KILL_AT names that point; the tests use it to interrupt a write at a known moment.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import warnings
from pathlib import Path

KILL_ENV = "LDRKIT_KILL_AT"
"""The named point (`fault_point`) at which a process kills itself: for fault-injection tests only."""


class RunFolderError(RuntimeError):
    """A file or folder that cannot be used as it is; the message names the file and what to do."""


def fault_point(name: str) -> None:
    """Die here, at once and without cleaning up (SIGKILL), when $LDRKIT_KILL_AT is `name`."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def write_error(path: Path | str, err: OSError) -> RunFolderError:
    """The one-line error for a write to `path` that the operating system refused, with the fix for its cause."""
    if err.errno == errno.ENOSPC:
        fix = "free space on that disk and run again"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make the folder writable or choose another one"
    else:
        fix = "check the folder and run again"
    return RunFolderError(f"cannot write {path} ({err.strerror or err}); {fix}")


def check_writable(folder: Path | str) -> None:
    """A RunFolderError unless this process may create files in `folder` (checked before work that writes there)."""
    if not os.access(folder, os.W_OK):
        raise RunFolderError(f"cannot write to {folder} (read-only); make it writable or choose another folder")


def writable_folder(path: Path | str, what: str = "--out") -> Path:
    """`path` as a folder this process can write, created if need be; a RunFolderError naming the fix otherwise
    (a file, a symbolic link to nowhere or in a loop, a folder that cannot be created or is read-only)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise RunFolderError(f"{what} {path} is a symbolic link that leads nowhere (a loop or a missing target); "
                             "remove the link or choose another folder")
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"{what} {path} is a file, not a folder; choose a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(path, err) from None
    check_writable(path)
    return path


def writable_file(path: Path | str, what: str = "--out") -> Path:
    """`path` as a file this process can write (its folder exists and is writable), checked before the work that
    produces it; a RunFolderError naming the fix otherwise."""
    path = Path(path)
    if path.is_dir():
        raise RunFolderError(f"{what} {path} is a folder; give a file name")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise RunFolderError(f"{what} {path}: its folder {folder} does not exist; create it or choose another file")
    check_writable(folder)
    return path


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


def _temporary(path: Path) -> Path:
    """The temporary file a write to `path` goes through: .NAME.PID.tmp beside it (`remove_orphans` knows it)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path: Path | str, data: str | bytes) -> None:
    """Write text or bytes to path through a temporary file renamed into place (never half a file)."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise write_error(path, err) from None


def copy_verified(source: Path | str, target: Path | str, digest: str | None = None, fix: str = "") -> str:
    """Copy a file through a temporary file renamed into place, hashing the bytes as they are copied; returns
    their SHA-256. With `digest`, a copy whose bytes do not have it is refused (RunFolderError: the source was
    changed or corrupted; `fix` says what to do) and nothing lands at `target`."""
    source, target = Path(source), Path(target)
    tmp = _temporary(target)
    h = hashlib.sha256()
    try:
        with open(source, "rb") as src, open(tmp, "wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                h.update(block)
                dst.write(block)
            dst.flush()
            os.fsync(dst.fileno())
        if digest is not None and h.hexdigest() != digest:
            tmp.unlink()
            raise RunFolderError(f"{source} does not match its recorded SHA-256 (changed by hand or corrupted); {fix}")
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise write_error(target, err) from None
    return h.hexdigest()


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


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists on this machine (it may still be writing its files)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OverflowError:  # not a process id at all
        return False
    return True


def remove_orphans(folder: Path | str, pattern: str = ".*.tmp") -> list[Path]:
    """Remove what dead processes left in `folder`: the entries matching `pattern` whose name ends in the id of a
    process that no longer runs (.NAME.PID.tmp files of `atomic_write`, or folders such as .NAME.restoring-PID);
    a live process's entries are left alone. Returns what was removed."""
    removed = []
    for path in Path(folder).glob(pattern):
        found = re.search(r"[.-](\d+)(?:\.tmp)?$", path.name)
        if found and not pid_alive(int(found.group(1))):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


class FolderLock:
    """An exclusive lock on a folder (an flock on FOLDER/.lock), held by one process at a time.

    A second process that asks for it gets a RunFolderError naming the holder (host and pid),
    at once rather than after waiting: two trainings of one folder must never interleave.
    The lock goes with its process, so a killed run leaves no stale lock behind.
    """

    NAME = ".lock"

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.path = self.folder / self.NAME
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

    def replace_with(self, source: Path | str) -> None:
        """Put the folder `source` (a sibling on the same disk) in place of the locked folder in one rename.

        The caller holds the lock, and the locked folder must hold nothing but its lock file, which is removed
        first (rename(2) replaces only an empty folder); a process that locks the folder in between makes the
        rename fail, with an error. The lock stays held (on the removed file) until it is released.
        """
        others = sorted(p.name for p in self.folder.iterdir() if p.name != self.NAME)
        if others:
            raise RunFolderError(f"{self.folder} holds {others[0]}, which a restored run would replace; choose an "
                                 "empty or new --out folder")
        self.path.unlink()
        fault_point("lock:replacing")
        try:
            os.rename(source, self.folder)
        except OSError as err:
            if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise RunFolderError(f"{self.folder} was taken by another process while it was replaced; run "
                                     "again") from None
            raise write_error(self.folder, err) from None
