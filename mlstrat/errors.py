"""Typed exceptions: every failure a user can fix names the file, the place and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class MlstratError(Exception):
    """Base class of every error mlstrat raises on purpose."""


@dataclass
class _Located:
    """Where a problem was found and what would fix it; rendered as one line."""

    problem: str
    file: str | None = None
    row: int | None = None
    timestamp: Any = None
    column: str | None = None
    fix: str | None = None

    def render(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.timestamp is not None:
            where.append(f"timestamp {self.timestamp}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        text = f"{self.file}: " if self.file else ""
        text += self.problem
        if where:
            text += " (" + ", ".join(where) + ")"
        if self.fix:
            text += f". Fix: {self.fix}"
        return text


class _LocatedError(MlstratError):
    def __init__(
        self,
        problem: str,
        *,
        file: Any = None,
        row: int | None = None,
        timestamp: Any = None,
        column: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.where = _Located(
            problem,
            None if file is None else str(file),
            row,
            timestamp,
            column,
            fix,
        )
        self.problem = problem
        self.file = self.where.file
        self.row = row
        self.timestamp = timestamp
        self.column = column
        self.fix = fix
        super().__init__(self.where.render())


class DataError(_LocatedError, ValueError):
    """Input market data is unreadable or breaks the Bars contract."""


class SchemaError(_LocatedError, ValueError):
    """A table lacks columns a consumer needs, or carries metadata we do not understand."""


class ModelLoadError(_LocatedError):
    """A saved model could not be loaded by any strategy we know."""


class IntegrityError(_LocatedError):
    """A stored file does not match its manifest (tampered, truncated or newer format)."""


class ConfigError(_LocatedError, ValueError):
    """A run configuration has an unknown key or a value outside the allowed set."""
