"""Small file helpers shared by the run directory, the stage cache and the locks.

Every write is atomic (a temporary sibling renamed into place), temporary names
carry one recognisable mark so a later run can remove what a killed one left,
and OSErrors from a full, read-only or forbidden disk become one-line
`StorageError`s naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlstrat.errors import LockError, StorageError

#: Part of every temporary name mlstrat creates; files bearing it are never trusted.
TMP_MARK = ".mlstrat-tmp-"

#: errno values that mean "the environment refused", not "mlstrat has a bug".
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: ("the disk is full", "free some space and run again"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space and run again"),
    errno.EROFS: ("the file system is read-only", "choose a writable directory"),
    errno.EACCES: ("permission denied", "fix the permissions or choose another directory"),
    errno.EPERM: ("operation not permitted", "fix the permissions or choose another directory"),
    errno.EIO: ("input/output error", "check the disk"),
    errno.EMFILE: ("too many open files", "raise the open-file limit (ulimit -n)"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter path"),
}


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tmp_name(path: Path) -> Path:
    """A fresh temporary sibling of `path`, marked with `TMP_MARK`."""
    return path.with_name(f".{path.name}{TMP_MARK}{uuid.uuid4().hex[:8]}")


def is_tmp_name(name: str) -> bool:
    return TMP_MARK in name


def json_text(obj: Any) -> str:
    """Strict, indented, key-sorted JSON (numpy and paths converted), newline-terminated."""
    from mlstrat.predictors.persistence import to_jsonable

    return json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary sibling, fsynced and renamed into place."""
    tmp = tmp_name(path)
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json_text(obj).encode("utf-8"))


def storage_error(exc: OSError, action: str = "write") -> StorageError | None:
    """The one-line StorageError for an environmental OSError, or None for anything else."""
    known = ENVIRONMENT_ERRNOS.get(exc.errno or -1)
    if known is None:
        return None
    problem, fix = known
    return StorageError(f"cannot {action}: {problem}", file=exc.filename, fix=fix)


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str, *, wait: bool) -> Iterator[dict[str, Any] | None]:
    """Hold an flock on `path`, recording this process's pid and host in it.

    wait=False: a lock held by a live process is a LockError naming the holder.
    A lock file left by a killed process (flock released, holder text still
    there) is taken over; the stale holder is yielded so the caller can say so.
    The lock dies with its process, so nothing has to be cleaned up by hand.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield None
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = _read_holder(fd) or {}
            raise LockError(
                f"{what} is in use by pid {holder.get('pid', '?')} on host "
                f"{holder.get('host', '?')} since {holder.get('since', '?')}",
                file=path.parent,
                fix="wait for that run to finish or stop it; a dead holder's lock is taken over",
            ) from None
        stale = _read_holder(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder()).encode(), 0)
        try:
            yield stale
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def _holder() -> dict[str, Any]:
    import datetime as dt

    since = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": since}


def _read_holder(fd: int) -> dict[str, Any] | None:
    raw = os.pread(fd, 4096, 0)
    if not raw.strip():
        return None
    try:
        holder = json.loads(raw)
    except ValueError:
        return {"pid": "?", "host": "?", "since": "?"}
    return holder if isinstance(holder, dict) else None
