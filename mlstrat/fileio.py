"""The internal IO module: every file mlstrat writes or hashes goes through these helpers.

Every write is atomic (a temporary sibling renamed into place: `atomic_write`
for files, `staged_dir` / `replace_dir` for directories), temporary names carry
one recognisable mark (`tmp_name`) so a later run can remove what a killed one
left, and OSErrors from a full, read-only or forbidden disk become one-line
`StorageError`s naming the file. JSON is converted in one way (`to_jsonable`,
`json_text`), files are hashed in one way (`file_sha256`) and package versions
are read in one way (`versions`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import math
import os
import platform
import shutil
import socket
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mlstrat.errors import IntegrityError, LockError, StorageError

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


# --------------------------------------------------------------------------- JSON


def to_jsonable(
    obj: Any, *, default: Callable[[Any], Any] | None = None, allow_nan: bool = False
) -> Any:
    """Plain JSON values for numpy scalars/arrays, paths, timestamps, tuples and sets.

    Non-finite floats become ``null`` (strict JSON; ``np.asarray(v, dtype=float)``
    turns them back into NaN) unless `allow_nan`, which keeps them for YAML and
    hashing. An object of any other type goes to `default` (e.g. ``str``), or
    is a TypeError when there is none: a model's metadata must not lose a value.
    """
    import numpy as np  # here, not at the top: `mlstrat --help` imports this module

    def convert(value: Any) -> Any:
        return to_jsonable(value, default=default, allow_nan=allow_nan)

    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if allow_nan or math.isfinite(value) else None
    if isinstance(obj, np.ndarray):
        return convert(obj.tolist())  # a 0-d array's tolist() is a scalar
    if isinstance(obj, Mapping):
        return {str(k): convert(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [convert(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        items = [convert(v) for v in obj]
        try:
            return sorted(items)
        except TypeError:  # mixed types: order by text, still deterministic
            return sorted(items, key=str)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, _dt.timedelta):  # pandas Timedelta included: "0 days 01:00:00"
        return str(obj)
    if hasattr(obj, "isoformat"):  # datetime, date, pandas Timestamp (NaT gives "NaT")
        return obj.isoformat()
    if isinstance(obj, np.generic):
        return convert(obj.item())
    if default is not None:
        return default(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in JSON: {obj!r}")


def json_text(
    obj: Any, *, sort_keys: bool = True, default: Callable[[Any], Any] | None = None
) -> str:
    """Strict, indented JSON of `to_jsonable(obj)` (keys sorted unless told), newline-terminated."""
    text = json.dumps(
        to_jsonable(obj, default=default), indent=2, sort_keys=sort_keys, allow_nan=False
    )
    return text + "\n"


def load_json(path: str | os.PathLike, *, fix: str) -> Any:
    """Read a JSON file; unparseable content is an IntegrityError naming the file and `fix`.
    A missing file stays a FileNotFoundError for the caller to word."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"not valid JSON ({exc})", file=path, fix=fix) from exc


# --------------------------------------------------------------------------- atomic writes


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` for a fresh temporary sibling of `path`, fsync it and rename it
    into place: readers see the old file or the whole new one, never a part."""
    path = Path(path)
    tmp = tmp_name(path)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _write_new(path: Path, data: bytes) -> None:
    with open(path, "xb") as handle:  # never through a file someone placed there
        handle.write(data)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_write`)."""
    atomic_write(path, lambda tmp: _write_new(tmp, data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `json_text(obj)` to `path` atomically."""
    atomic_write_bytes(path, json_text(obj).encode("utf-8"))


def replace_dir(tmp: Path, target: Path) -> None:
    """Rename the finished directory `tmp` to its sibling `target`, swapping out (and then
    deleting) a directory there; if the rename fails the old directory is put back."""
    old = None
    if os.path.lexists(target):
        old = tmp_name(target)
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise
    _fsync_dir(target.parent)
    if old is not None:
        remove_path(old)


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary sibling of `target` to fill; on a clean exit it replaces
    `target` (`replace_dir`), on an exception it is removed and `target` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(target)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_dir(tmp)
        replace_dir(tmp, target)
    finally:
        remove_path(tmp)


@contextlib.contextmanager
def scratch_dir(beside: str | os.PathLike) -> Iterator[Path]:
    """A fresh temporary folder next to `beside` (same file system, so what is built in it
    can be renamed into place), removed with whatever is left in it on exit."""
    tmp = tmp_name(Path(beside))
    tmp.mkdir(parents=True)
    try:
        yield tmp
    finally:
        remove_path(tmp)


def remove_tmp_names(directory: Path) -> None:
    """Delete the temporary files and folders a killed writer left directly in `directory`
    (only names bearing `TMP_MARK`, which nothing but mlstrat creates)."""
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if is_tmp_name(path.name):
            remove_path(path)


def remove_path(path: Path) -> None:
    """Delete a file, a symlink (not what it points to) or a directory tree, if present."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- versions


def versions(packages: Iterable[str | tuple[str, ...]]) -> dict[str, str | None]:
    """Versions of `packages`, in the given order, without importing anything.

    Each entry is a distribution name or a tuple of alternatives (the first
    installed one counts, e.g. ("xgboost-cpu", "xgboost")), keyed by its last
    name; "python" is the interpreter. A module already imported reports its
    own ``__version__``; the rest come from installed metadata (None if absent).
    """
    out: dict[str, str | None] = {}
    for entry in packages:
        names = (entry,) if isinstance(entry, str) else tuple(entry)
        key = names[-1]
        out[key] = platform.python_version() if key == "python" else _version(key, names)
    return out


def _version(module_name: str, dists: tuple[str, ...]) -> str | None:
    import importlib.metadata  # slow to import; only runs that record versions need it

    module = sys.modules.get(module_name)
    version = getattr(module, "__version__", None) if module is not None else None
    if version is not None:
        return str(version)
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


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
