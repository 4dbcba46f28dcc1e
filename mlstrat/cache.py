"""Stage cache: entries built once under a lock, verified on every reuse, rebuilt when damaged.

An entry is ``CACHE/STAGE/KEY/`` where KEY hashes everything the stage reads
(`content_hash`). It counts as finished only when its ``done.json`` exists and
every file listed there still has its recorded size and sha256. Files of at
least `LARGE_FILE` bytes whose size, mtime and inode are unchanged since they
were hashed are trusted without re-reading them (the cheap path; see
docs/run.md for the measurement and what it can miss); ``verify(full=True)``
(``mlstrat run --verify-cache``) always reads every byte.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstrat.fileio import (
    atomic_write_json,
    exclusive_lock,
    file_sha256,
    is_tmp_name,
    remove_path,
    staged_dir,
    to_jsonable,
)

DONE_FILE = "done.json"
#: Files this large are re-hashed only when their size, mtime or inode changed.
LARGE_FILE = 32 << 20

log = logging.getLogger("mlstrat")


def content_hash(obj: Any, length: int = 16) -> str:
    """Stable hex digest of a JSON-able object (keys sorted): the cache key of a stage.
    Values JSON cannot hold count by their str()."""
    plain = to_jsonable(obj, default=str, allow_nan=True)
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class Check:
    """State of an entry: "ok", "missing" (never finished) or "damaged" (with the reason)."""

    state: str
    reason: str = ""


@dataclass(frozen=True)
class Entry:
    """One cache entry: ``root/stage/key``."""

    root: Path
    stage: str
    key: str

    @property
    def path(self) -> Path:
        return self.root / self.stage / self.key

    @property
    def name(self) -> str:
        return f"{self.stage}/{self.key}"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive while the entry is checked and built; a second run waits for it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.path.parent / f".{self.key}.lock", self.name, wait=True):
            yield

    def remove_leftovers(self) -> None:
        """Delete temporary files and staging folders a killed build left (ours by name)."""
        for path in self.path.parent.glob(f".{self.key}*"):
            if is_tmp_name(path.name):
                remove_path(path)
        if self.path.is_dir():
            for dirpath, dirnames, filenames in os.walk(self.path, followlinks=False):
                for name in [*dirnames, *filenames]:
                    if is_tmp_name(name):
                        remove_path(Path(dirpath) / name)
                dirnames[:] = [d for d in dirnames if not is_tmp_name(d)]

    def done(self) -> dict[str, Any] | None:
        try:
            info = json.loads((self.path / DONE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        return info if isinstance(info, dict) else None

    def check(self, *, full: bool = False) -> Check:
        """Is the entry finished and intact? Every listed file is checked."""
        if not (self.path / DONE_FILE).exists():
            return Check("missing")
        info = self.done()
        files = None if info is None else info.get("files")
        if not isinstance(files, dict) or not files:
            return Check("damaged", f"{DONE_FILE} is unreadable or lists no files")
        for rel, rec in sorted(files.items()):
            problem = _check_file(self.path / rel, rec, full=full)
            if problem:
                return Check("damaged", f"{rel}: {problem}")
        return Check("ok")

    def finish(self, info: dict[str, Any]) -> None:
        """Record every file of the built entry (size, sha256, stat stamp) in done.json."""
        files = {}
        for dirpath, dirnames, filenames in os.walk(self.path, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not is_tmp_name(d))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                rel = path.relative_to(self.path).as_posix()
                if rel == DONE_FILE or is_tmp_name(name):
                    continue
                st = path.stat()
                files[rel] = {
                    "size": st.st_size,
                    "sha256": file_sha256(path),
                    "mtime_ns": st.st_mtime_ns,
                    "inode": st.st_ino,
                }
        finished = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        record = {"stage": self.stage, "key": self.key, "finished": finished, **info}
        atomic_write_json(self.path / DONE_FILE, {**record, "files": files})

    def invalidate(self) -> None:
        """Forget that the entry is finished (its files stay for a resuming build)."""
        with contextlib.suppress(FileNotFoundError):
            (self.path / DONE_FILE).unlink()

    def discard(self) -> None:
        if self.path.exists():
            remove_path(self.path)

    def build_staged(self, write: Callable[[Path], Any]) -> Any:
        """Call write(staging_dir) and rename the staging directory into place."""
        with staged_dir(self.path) as tmp:
            return write(tmp)


def _check_file(path: Path, rec: dict[str, Any], *, full: bool) -> str | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    if not os.path.isfile(path) or os.path.islink(path):
        return "not a regular file"
    if st.st_size != rec.get("size"):
        return f"{st.st_size} bytes, {rec.get('size')} recorded (truncated or changed)"
    stamp_same = st.st_mtime_ns == rec.get("mtime_ns") and st.st_ino == rec.get("inode")
    if not full and st.st_size >= LARGE_FILE and stamp_same:
        return None
    if file_sha256(path) != rec.get("sha256"):
        return "sha256 differs from the one recorded when it was built"
    return None


def cached(
    entry: Entry,
    build: Callable[[], tuple[str, dict[str, Any]]],
    *,
    resumable: bool = False,
) -> tuple[str, dict[str, Any]]:
    """Reuse `entry` when it verifies, else build it: ("cached" | build's status, info).

    build() writes the entry's files and returns (status, info); info is stored in
    done.json. A damaged entry is reported in one line and rebuilt: discarded
    first, or, when `resumable`, only marked unfinished so the build can keep
    the parts it verifies itself (walk-forward folds).
    """
    with entry.lock():
        entry.remove_leftovers()
        check = entry.check()
        if check.state == "ok":
            info = entry.done() or {}
            return "cached", {k: v for k, v in info.items() if k not in ("files", "finished")}
        if check.state == "damaged":
            log.warning(
                "mlstrat: cache entry %s is damaged (%s); rebuilding it", entry.name, check.reason
            )
            if resumable:
                entry.invalidate()
            else:
                entry.discard()
        status, info = build()
        entry.finish(info)
        return status, info


def verify_cache(root: Path) -> list[tuple[Entry, Check]]:
    """Every entry under a cache directory, fully re-hashed."""
    results = []
    if not root.is_dir():
        return results
    for stage_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        for entry_dir in sorted(stage_dir.iterdir()):
            if entry_dir.name.startswith(".") or not entry_dir.is_dir():
                continue
            entry = Entry(root, stage_dir.name, entry_dir.name)
            results.append((entry, entry.check(full=True)))
    return results
