"""Typed exceptions: every failure a user can fix names the file, the place and the fix."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


class MlstratError(Exception):
    """Base class of every error mlstrat raises on purpose."""


class DataQualityWarning(UserWarning):
    """Candles were loaded but some of them are suspect (kept, flagged, clipped or dropped)."""


class HorizonWarning(UserWarning):
    """A traded predictor's target looks at another horizon than the strategy holds for."""


# ---------------------------------------------------------------- fixes in the user's syntax


@dataclass(frozen=True)
class Setting:
    """One option set to one value (`on_duplicate` = "keep_last"), written per interface."""

    name: str
    value: Any


@dataclass(frozen=True)
class OneOf:
    """A Setting value meaning "any of these": `fmt= one of "csv", "cdd"` / `--fmt {csv,cdd}`."""

    values: tuple[str, ...]


class FixSyntax:
    """How a Setting is written in Python calls: `on_duplicate="keep_last"` (the default)."""

    verb = "pass"

    def setting(self, item: Setting) -> str:
        if isinstance(item.value, OneOf):
            return f"{item.name}= one of " + ", ".join(f'"{v}"' for v in item.value.values)
        value = f'"{item.value}"' if isinstance(item.value, str) else repr(item.value)
        return f"{item.name}={value}"


class CliSyntax(FixSyntax):
    """Command-line flags: `--on-duplicate keep_last`, `--sort`; `flags` maps names to flags."""

    def __init__(self, flags: Mapping[str, str] | None = None) -> None:
        self.flags = dict(flags or {})

    def setting(self, item: Setting) -> str:
        flag = self.flags.get(item.name, "--" + item.name.replace("_", "-"))
        if isinstance(item.value, OneOf):
            return f"{flag} {{{','.join(item.value.values)}}}"
        if item.value is True:
            return flag
        if item.value is None or item.value is False:
            return f"without {flag}"
        return f"{flag} {shlex.quote(str(item.value))}"


class ConfigSyntax(FixSyntax):
    """YAML keys under `prefix`: `data.files[0].on_duplicate: keep_last`; `keys` renames options."""

    verb = "set"

    def __init__(self, prefix: str, keys: Mapping[str, str] | None = None) -> None:
        self.prefix = prefix
        self.keys = dict(keys or {})

    def setting(self, item: Setting) -> str:
        key = self.keys.get(item.name, item.name)
        path = f"{self.prefix}.{key}" if self.prefix else key
        if isinstance(item.value, OneOf):
            return f"{path}: one of {', '.join(item.value.values)}"
        return f"{path}: {_yaml_scalar(item.value)}"


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_/.+-]*", value):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, str) and value.lower() in ("yes", "no", "on", "off", "true", "false"):
        return f'"{value}"'
    return str(value)


_PYTHON = FixSyntax()
_SYNTAX: ContextVar[FixSyntax | None] = ContextVar("mlstrat_fix_syntax", default=None)


@contextmanager
def fix_syntax(syntax: FixSyntax) -> Iterator[FixSyntax]:
    """Write the option settings of fix hints raised inside the block in `syntax`."""
    token = _SYNTAX.set(syntax)
    try:
        yield syntax
    finally:
        _SYNTAX.reset(token)


def current_syntax() -> FixSyntax:
    """The syntax fix hints are written in here (Python unless a CLI or config set another)."""
    return _SYNTAX.get() or _PYTHON


class Fix:
    """A fix hint whose option settings follow the interface that raised the error.

    `Fix("{} or {}", Setting("on_duplicate", "keep_last"), Setting("on_duplicate",
    "keep_first"))` reads `pass on_duplicate="keep_last" or on_duplicate="keep_first"` in
    Python, `pass --on-duplicate keep_last or --on-duplicate keep_first` on the command
    line and `set data.files[0].on_duplicate: keep_last or ...` in a run configuration.
    """

    def __init__(self, template: str, *settings: Setting) -> None:
        self.template = template
        self.settings = settings

    def render(self, syntax: FixSyntax | None = None) -> str:
        """The hint in `syntax` (default: the current one); "pass"/"set" leads unless the
        template places it itself with `{verb}`."""
        syntax = syntax or current_syntax()
        settings = (syntax.setting(s) for s in self.settings)
        body = self.template.format(*settings, verb=syntax.verb)
        return body if "{verb}" in self.template else f"{syntax.verb} {body}"

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"Fix({self.template!r}, *{self.settings!r})"


def option_fix(name: str, *values: Any, note: str = "") -> Fix:
    """`pass name=v1 or name=v2` (+ note) in the syntax of the current interface."""
    template = " or ".join("{}" for _ in values) + note
    return Fix(template, *(Setting(name, v) for v in values))


@dataclass
class _Located:
    """Where a problem was found and what would fix it; rendered as one line."""

    problem: str
    file: str | None = None
    row: int | None = None
    timestamp: Any = None
    column: str | None = None
    fix: str | None = None
    param: str | None = None

    def render(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.timestamp is not None:
            where.append(f"timestamp {self.timestamp}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        if self.param is not None:
            where.append(f"parameter '{self.param}'")
        text = f"{self.file}: " if self.file else ""
        text += self.problem
        if where:
            text += " (" + ", ".join(where) + ")"
        if self.fix:
            text += f". Fix: {self.fix}"
        return text


class _LocatedError(MlstratError):
    """A problem with where it is: `column` names a data column, `param` a parameter of a
    strategy, sizer, predictor or config section (so the CLI and config can name its key)."""

    def __init__(
        self,
        problem: str,
        *,
        file: Any = None,
        row: int | None = None,
        timestamp: Any = None,
        column: str | None = None,
        fix: str | Fix | None = None,
        param: str | None = None,
    ) -> None:
        # A Fix is written now, in the syntax of the interface the error is raised in.
        text = fix.render() if isinstance(fix, Fix) else fix
        self.where = _Located(
            problem,
            None if file is None else str(file),
            row,
            timestamp,
            column,
            text,
            param,
        )
        self.problem = problem
        self.file = self.where.file
        self.row = row
        self.timestamp = timestamp
        self.column = column
        self.param = param
        self.fix = text
        self.fix_hint = fix if isinstance(fix, Fix) else None
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


class StorageError(_LocatedError):
    """The file system refused a read or write (disk full, read-only, permission denied)."""


class OwnershipError(_LocatedError):
    """mlstrat refused to write, overwrite or delete a path it does not own."""


class LockError(_LocatedError):
    """Another process holds the lock on a run directory or cache entry."""


class WorkerError(_LocatedError):
    """A worker process running folds died (killed for memory, or a crash in native code)."""
