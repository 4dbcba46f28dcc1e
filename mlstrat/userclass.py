"""The one loader of a user's class named by a ``path/to/file.py:Class`` or ``module:Class`` string.

Strategies and sizers in run configurations, ``mlstrat backtest --strategy`` and
`mlstrat.backtest.load_strategy` all come through here. A file is imported under a
name derived from its resolved path (the same file gets the same module name in every
process) and registered in ``sys.modules`` so the classes it defines behave like any
other module's. Every problem, including an exception the file raises while it runs,
is one ConfigError.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import TypeVar

from mlstrat.errors import ConfigError

T = TypeVar("T")
EXAMPLE = "e.g. strategies/tiered_long_short.py:TieredLongShort"


def split_spec(spec: str, what: str = "") -> tuple[str, str]:
    """(file or module, class name) of a spec, checked without importing anything."""
    target, sep, attr = str(spec).rpartition(":")
    if not sep or not target or not attr.isidentifier():
        lead = f"{what} " if what else ""
        raise ConfigError(
            f"{lead}{spec!r} is not of the form FILE.py:Class or module:Class", fix=EXAMPLE
        )
    return target, attr


def spec_file(target: str, base: str | Path | None = None) -> Path | None:
    """The file a spec's target names (relative to `base`, default the working directory),
    or None when the target is a module name."""
    if not target.endswith(".py"):
        return None
    path = Path(target)
    return path if path.is_absolute() or base is None else Path(base) / path


def load_class(
    spec: str,
    kind: type[T],
    *,
    base: str | Path | None = None,
    what: str,
    hint: str,
) -> type[T]:
    """The subclass of `kind` that `spec` names; `what` ("strategy", "sizer") and `hint`
    (what a valid class is) word the errors."""
    target, attr = split_spec(spec, what)
    file = spec_file(target, base)
    module = _import_file(file, spec, what) if file else _import_module(target, spec, what)
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, kind)):
        raise ConfigError(
            f"{attr!r} in {target} is not a backtrader {kind.__name__} class", fix=f"name {hint}"
        )
    return cls


def _import_failed(spec: str, exc: BaseException) -> ConfigError:
    first = (str(exc).splitlines() or [""])[0]
    return ConfigError(
        f"importing {spec!r} raised {type(exc).__name__}: {first}",
        fix="fix that file (it runs when the class is loaded)",
    )


def _import_file(file: Path, spec: str, what: str) -> ModuleType:
    if not file.is_file():
        raise ConfigError(f"{what} file not found", file=file, fix="check the path")
    resolved = file.resolve()
    stem = re.sub(r"\W", "_", resolved.stem)
    digest = hashlib.sha256(str(resolved).encode("utf-8")).hexdigest()[:12]
    name = f"mlstrat_user_{stem}_{digest}"
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot import {what} file", file=file, fix="give a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # the user's file failed while it ran
        sys.modules.pop(name, None)
        raise _import_failed(spec, exc) from exc
    return module


def _import_module(target: str, spec: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import {what} module {target!r} ({exc})",
            fix="give a file path ending in .py or an importable module",
        ) from None
    except Exception as exc:  # the user's module failed while it ran
        raise _import_failed(spec, exc) from exc
