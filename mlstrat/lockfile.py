"""The committed lock file: which exact versions the suite was tested with, and drift from them.

`make demo` / `make test` install `requirements-lock.txt` (made by `make lock` with
uv); a run records the lock's sha256 and every installed version that differs from
it in `environment.json`, so a result says whether it came from the tested set.
`python -m mlstrat.lockfile [LOCK]` prints that drift (used by `make test-latest`).
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCK_NAME = "requirements-lock.txt"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?\s*$")


@dataclass(frozen=True)
class Pin:
    """One `name==version ; marker` line of the lock."""

    name: str
    version: str
    marker: str | None


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def find_lock() -> Path | None:
    """The lock beside a source checkout of mlstrat; None for an install from the index."""
    path = Path(__file__).resolve().parent.parent / LOCK_NAME
    return path if path.is_file() else None


def read_lock(path: Path) -> list[Pin]:
    """Every pin of the lock, markers kept as text (hash and comment lines skipped)."""
    pins = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            name, version, marker = match.groups()
            pins.append(Pin(normalize(name), version, marker.strip() if marker else None))
    return pins


def pins_for_this_interpreter(pins: list[Pin]) -> dict[str, str]:
    """The pins whose environment marker holds here: name → version."""
    from packaging.markers import Marker

    return {p.name: p.version for p in pins if p.marker is None or Marker(p.marker).evaluate()}


def drift(path: Path) -> dict[str, dict[str, str | None]]:
    """Locked packages whose installed version differs: name → {locked, installed}."""
    import importlib.metadata

    out: dict[str, dict[str, str | None]] = {}
    for name, locked in sorted(pins_for_this_interpreter(read_lock(path)).items()):
        try:
            installed: str | None = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != locked:
            out[name] = {"locked": locked, "installed": installed}
    return out


def lock_status(path: Path | None = None) -> dict[str, Any] | None:
    """What `environment.json` records: the lock's name, sha256 and this environment's drift."""
    path = path if path is not None else find_lock()
    if path is None:
        return None
    return {
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "differences": drift(path),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else find_lock()
    if path is None or not path.is_file():
        print(f"no lock file found ({args[0] if args else LOCK_NAME})")
        return 2
    changed = drift(path)
    if not changed:
        print(f"every package is at the version of {path.name}")
        return 0
    print(f"{len(changed)} package(s) differ from {path.name}:")
    for name, v in changed.items():
        print(f"  {name}: locked {v['locked']}, installed {v['installed'] or 'not installed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
