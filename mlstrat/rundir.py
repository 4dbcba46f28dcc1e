"""Run directories that mlstrat owns: every file it writes is recorded, nothing else is touched.

A run directory's ``manifest.json`` lists every file a run wrote there (path,
size, sha256). A run only ever overwrites or deletes files listed in it; a
directory that exists, is not empty and has no such manifest is refused; no
symlink inside the directory is followed; a path is recorded *before* its file
is renamed into place, so a run killed in between still owns what it wrote.
One run at a time holds the directory's lock (``.lock``: pid and host).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from mlstrat.errors import IntegrityError, OwnershipError
from mlstrat.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    exclusive_lock,
    file_sha256,
    is_tmp_name,
    json_text,
    replace_dir,
    tmp_name,
)

MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
FORMAT = "mlstrat-run"
FORMAT_VERSION = 1
#: Files of the directory's own bookkeeping: owned by definition, never listed.
BOOKKEEPING = frozenset({MANIFEST_FILE, LOCK_FILE})

log = logging.getLogger("mlstrat")


def _fix_out(root: Path) -> str:
    return f"choose a new or empty --out directory, or move the files out of {root}"


class RunDir:
    """An owned run directory; create with `RunDir.claim(path)`."""

    def __init__(self, root: Path, files: dict[str, dict[str, Any]]) -> None:
        self.root = root
        self.files = files

    # -- claiming -------------------------------------------------------------

    @classmethod
    def claim(cls, path: str | Path, *, create: bool = True) -> RunDir:
        """Open `path` as a run directory: create it, or adopt an empty or mlstrat-made one.
        create=False: only an existing run directory is accepted (nothing is written)."""
        root = Path(path).resolve()
        if root.exists() and not root.is_dir():
            raise OwnershipError(
                "the run directory is a file", file=root, fix="choose a directory for --out"
            )
        if not create and not (root / MANIFEST_FILE).is_file():
            raise OwnershipError(
                f"not an mlstrat run directory (no {MANIFEST_FILE})",
                file=root,
                fix="pass a directory written by `mlstrat run CONFIG --out DIR`",
            )
        root.mkdir(parents=True, exist_ok=True)
        manifest = root / MANIFEST_FILE
        if manifest.is_symlink() or (manifest.exists() and not manifest.is_file()):
            raise OwnershipError(
                f"{MANIFEST_FILE} is not a regular file", file=root, fix=_fix_out(root)
            )
        if manifest.is_file():
            return cls(root, cls._read_manifest(manifest))
        others = [p.name for p in root.iterdir() if p.name != LOCK_FILE]
        if others:
            raise OwnershipError(
                f"the directory exists, is not empty ({len(others)} entries, e.g. "
                f"{sorted(others)[0]!r}) and is not an mlstrat run directory (no {MANIFEST_FILE})",
                file=root,
                fix=_fix_out(root),
            )
        run = cls(root, {})
        run.save()
        return run

    @staticmethod
    def _read_manifest(path: Path) -> dict[str, dict[str, Any]]:
        import json

        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError(
                f"the run directory's manifest cannot be read ({type(exc).__name__})",
                file=path,
                fix=f"delete {path.parent} and run again (only mlstrat's own files are in it)",
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise OwnershipError(
                f"{MANIFEST_FILE} was not written by an mlstrat run",
                file=path.parent,
                fix=_fix_out(path.parent),
            )
        if int(data.get("version", 0)) > FORMAT_VERSION:
            raise IntegrityError(
                f"the run directory was written by a newer mlstrat (format {data['version']})",
                file=path,
                fix="upgrade mlstrat or choose another --out",
            )
        files = data.get("files", {})
        return {str(k): dict(v) for k, v in files.items() if _valid_rel(str(k))}

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the directory for this run; a second run gets a LockError naming the holder."""
        with exclusive_lock(
            self.root / LOCK_FILE, f"run directory {self.root}", wait=False
        ) as stale:
            if stale:
                log.warning(
                    "mlstrat: taking over the lock of %s left by pid %s on %s (no longer running)",
                    self.root,
                    stale.get("pid"),
                    stale.get("host"),
                )
            self.refuse_symlinks()
            self.remove_leftovers()
            yield

    def save(self) -> None:
        atomic_write_json(
            self.root / MANIFEST_FILE,
            {"format": FORMAT, "version": FORMAT_VERSION, "files": self.files},
        )

    # -- paths ----------------------------------------------------------------

    def path(self, rel: str | PurePosixPath, *, create_parents: bool = True) -> Path:
        """Absolute path of `rel`, refusing `..`, absolute paths and symlinks on the way."""
        rel = str(rel)
        if not _valid_rel(rel) or rel in BOOKKEEPING:
            raise OwnershipError(f"{rel!r} is not a path inside the run directory", file=self.root)
        current = self.root
        parts = PurePosixPath(rel).parts
        for part in parts[:-1]:
            current = current / part
            self._no_symlink(current)
            if not current.exists():
                if not create_parents:
                    return self.root / rel
                current.mkdir()
            elif not current.is_dir():
                raise OwnershipError(
                    "a file stands where mlstrat needs a folder",
                    file=current,
                    fix=_fix_out(current),
                )
        target = self.root / rel
        self._no_symlink(target)
        return target

    def _no_symlink(self, path: Path) -> None:
        if path.is_symlink():
            raise OwnershipError(
                "is a symlink; mlstrat never follows symlinks inside a run directory",
                file=path,
                fix="remove the link (the files it points to are untouched) or choose another --out",
            )

    def owns(self, rel: str) -> bool:
        return rel in self.files

    def _claim_file(self, rel: str) -> Path:
        """The path of `rel`, checked to be absent or already ours."""
        target = self.path(rel)
        if os.path.lexists(target) and not self.owns(rel):
            raise OwnershipError(
                "was not written by mlstrat, so it is not overwritten",
                file=target,
                fix=_fix_out(self.root),
            )
        return target

    # -- writing --------------------------------------------------------------

    def write_bytes(self, rel: str, data: bytes) -> Path:
        target = self._claim_file(rel)
        self._record_pending([rel])
        atomic_write_bytes(target, data)
        self._record([rel])
        return target

    def write_text(self, rel: str, text: str) -> Path:
        return self.write_bytes(rel, text.encode("utf-8"))

    def write_json(self, rel: str, obj: Any) -> Path:
        return self.write_text(rel, json_text(obj))

    def install(self, src: Path, rel: str, *, link: bool = True) -> Path:
        """Put a copy of file or directory `src` at `rel` (hard links when `link`), replacing
        what this run directory recorded there before; foreign files there are refused."""
        if not src.is_dir():
            target = self._claim_file(rel)
            tmp = tmp_name(target)
            _link_or_copy(str(src), str(tmp), link)
            self._record_pending([rel])
            os.replace(tmp, target)
            self._record([rel])
            return target
        target = self.path(rel)
        old_files = self._owned_tree(target, rel) if os.path.lexists(target) else []
        tmp = tmp_name(target)
        shutil.copytree(
            src,
            tmp,
            symlinks=True,
            copy_function=lambda s, d: _link_or_copy(s, d, link),
            ignore=lambda _d, names: [n for n in names if is_tmp_name(n)],
        )
        new_files = [f"{rel}/{p}" for p in _tree_files(tmp)]
        self._record_pending(new_files)
        replace_dir(tmp, target)
        for gone in set(old_files) - set(new_files):
            self.files.pop(gone, None)
        self._record(new_files)
        return target

    def _owned_tree(self, target: Path, rel: str) -> list[str]:
        """Every file under `target` (a real directory), each of which must be ours."""
        if not target.is_dir() or target.is_symlink():
            self._no_symlink(target)
            raise OwnershipError(
                "a file stands where mlstrat needs a folder", file=target, fix=_fix_out(self.root)
            )
        found = []
        for dirpath, dirnames, filenames in os.walk(target, followlinks=False):
            for name in [*dirnames, *filenames]:
                path = Path(dirpath) / name
                if path.is_symlink():
                    self._no_symlink(path)
            for name in filenames:
                sub = f"{rel}/{(Path(dirpath) / name).relative_to(target).as_posix()}"
                if not self.owns(sub):
                    raise OwnershipError(
                        "was not written by mlstrat, so its folder is not replaced",
                        file=Path(dirpath) / name,
                        fix=_fix_out(self.root),
                    )
                found.append(sub)
        return found

    def _record_pending(self, rels: Iterable[str]) -> None:
        for rel in rels:
            self.files.setdefault(rel, {"size": None, "sha256": None})
        self.save()

    def _record(self, rels: Iterable[str]) -> None:
        for rel in rels:
            path = self.root / rel
            self.files[rel] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
        self.save()

    # -- removing -------------------------------------------------------------

    def remove(self, rels: Iterable[str]) -> None:
        """Delete recorded files (never anything else), then the folders they leave empty."""
        rels = [r for r in rels if self.owns(r)]
        for rel in rels:
            path = self.path(rel, create_parents=False)
            if path.is_file() and not path.is_symlink():
                path.unlink()
            self.files.pop(rel, None)
        self.save()
        for rel in rels:
            self._remove_empty_parents(PurePosixPath(rel).parent)

    def prune(self, keep: Callable[[str], bool]) -> None:
        """Delete every recorded file for which `keep(rel)` is False."""
        self.remove([r for r in list(self.files) if not keep(r)])

    def _remove_empty_parents(self, rel: PurePosixPath) -> None:
        while str(rel) not in ("", "."):
            path = self.root / rel
            if path.is_symlink() or not path.is_dir() or any(path.iterdir()):
                return
            path.rmdir()
            rel = rel.parent

    def refuse_symlinks(self) -> None:
        """Refuse at once (before any work) when a recorded file or a folder on its way
        has been replaced by a symlink."""
        seen: set[Path] = set()
        for rel in self.files:
            current = self.root
            for part in PurePosixPath(rel).parts:
                current = current / part
                if current in seen:
                    continue
                seen.add(current)
                self._no_symlink(current)

    def remove_leftovers(self) -> None:
        """Remove temporary files a killed run left (only names carrying mlstrat's mark)."""
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            for name in list(dirnames):
                path = Path(dirpath) / name
                if is_tmp_name(name) and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                    dirnames.remove(name)
            for name in filenames:
                if is_tmp_name(name):
                    with contextlib.suppress(FileNotFoundError):
                        (Path(dirpath) / name).unlink()

    # -- checking -------------------------------------------------------------

    def verify(self, rels: Iterable[str] | None = None) -> list[str]:
        """Problems with recorded files (missing, size or sha256 differs); empty when intact."""
        problems = []
        for rel in self.files if rels is None else rels:
            rec = self.files.get(rel)
            path = self.root / rel
            if rec is None or rec.get("sha256") is None:
                problems.append(f"{rel}: not completely written")
                continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                problems.append(f"{rel}: missing")
                continue
            if not stat.S_ISREG(st.st_mode):
                problems.append(f"{rel}: not a regular file")
            elif st.st_size != rec["size"]:
                problems.append(f"{rel}: {st.st_size} bytes, {rec['size']} recorded")
            elif file_sha256(path) != rec["sha256"]:
                problems.append(f"{rel}: sha256 differs from the manifest")
        return problems


def _valid_rel(rel: str) -> bool:
    p = PurePosixPath(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts and "\\" not in rel


def _tree_files(root: Path) -> list[str]:
    out = []
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            out.append((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(out)


def _link_or_copy(src: str, dst: str, link: bool = True) -> None:
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def inside(path: Path, root: Path) -> bool:
    """True if `path` (resolved) is `root` or lies below it."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True
