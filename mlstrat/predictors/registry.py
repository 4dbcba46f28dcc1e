"""Predictor names → classes: built-ins (imported lazily), decorators and entry points.

Built-in adapters are known by module path only, so importing the registry
(or listing names) never imports TensorFlow; a Keras adapter's module is
imported the first time its name is asked for. Third-party packages add
predictors through the ``mlstrat.predictors`` entry-point group::

    [project.entry-points."mlstrat.predictors"]
    my_model = "my_pkg.models:MyPredictor"
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mlstrat.errors import ConfigError, ModelLoadError
from mlstrat.predictors.base import Predictor

ENTRY_POINT_GROUP = "mlstrat.predictors"

#: Built-in predictor name → module that defines (and registers) it.
BUILTIN_MODULES: dict[str, str] = {
    "xgboost": "mlstrat.predictors.xgb",
    "lstm": "mlstrat.predictors.lstm",
    "lstm_attention": "mlstrat.predictors.lstm",
    "lstm_regressor": "mlstrat.predictors.lstm",
    "transformer": "mlstrat.predictors.transformer",
    "volatility_lstm": "mlstrat.predictors.volatility",
    "hybrid": "mlstrat.predictors.hybrid",
    "meta": "mlstrat.predictors.meta",
    "legacy_keras": "mlstrat.predictors.legacy",
}

_REGISTRY: dict[str, type[Predictor]] = {}

P = TypeVar("P", bound=type[Predictor])


class UnknownPredictorError(ConfigError):
    """A predictor name that nothing registers, or whose module cannot be imported."""


def register_predictor(name: str) -> Callable[[P], P]:
    """Class decorator: make `cls` available as `name` (and set ``cls.name``).

    Re-registering the same class is harmless; a different class under a taken
    name is refused, so a plugin cannot silently replace a built-in.
    """
    if not name.isidentifier():
        raise ValueError(f"predictor name must be an identifier, got {name!r}")

    def decorate(cls: P) -> P:
        if not (isinstance(cls, type) and issubclass(cls, Predictor)):
            raise TypeError(f"{cls!r} is not a Predictor subclass")
        builtin_module = BUILTIN_MODULES.get(name)
        if builtin_module is not None and cls.__module__ != builtin_module:
            raise ValueError(
                f"predictor name {name!r} is reserved for the built-in in {builtin_module}; "
                f"cannot register {_qualname(cls)}"
            )
        existing = _REGISTRY.get(name)
        if existing is not None and _qualname(existing) != _qualname(cls):
            raise ValueError(
                f"predictor name {name!r} is already taken by {_qualname(existing)}; "
                f"cannot register {_qualname(cls)}"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def list_predictors() -> list[str]:
    """Every name that `get_predictor` may resolve (without importing any adapter)."""
    return sorted(set(BUILTIN_MODULES) | set(_REGISTRY) | set(_entry_points()))


def _unknown(name: str, problem: str, fix: str | None = None) -> UnknownPredictorError:
    return UnknownPredictorError(
        problem,
        fix=fix or f"use one of: {', '.join(list_predictors())}",
    )


def _find_in_module(module: Any, name: str) -> type[Predictor] | None:
    """A module's Predictor subclass whose `name` is `name` (for modules not using the decorator)."""
    for obj in vars(module).values():
        if (
            isinstance(obj, type)
            and issubclass(obj, Predictor)
            and obj is not Predictor
            and getattr(obj, "name", None) == name
        ):
            return obj
    return None


def _import_builtin(name: str) -> type[Predictor]:
    module_path = BUILTIN_MODULES[name]
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise _unknown(
            name,
            f"predictor {name!r} is not available: importing {module_path} failed ({exc})",
            fix="install mlstrat's dependencies (pip install mlstrat) or choose another predictor",
        ) from exc
    cls = _REGISTRY.get(name) or _find_in_module(module, name)
    if cls is None:
        raise _unknown(name, f"module {module_path} does not define predictor {name!r}")
    _REGISTRY[name] = cls
    return cls


def _load_entry_point(name: str, ep: importlib.metadata.EntryPoint) -> type[Predictor]:
    try:
        obj = ep.load()
    except Exception as exc:
        raise _unknown(
            name,
            f"predictor {name!r} from entry point {ep.value!r} could not be imported ({exc})",
            fix=f"reinstall the package that provides it ({ep.value.split(':')[0]})",
        ) from exc
    if not (isinstance(obj, type) and issubclass(obj, Predictor)):
        raise _unknown(
            name,
            f"entry point {ep.value!r} for predictor {name!r} is not a Predictor subclass",
            fix="the providing package must point its entry point at a Predictor subclass",
        )
    _REGISTRY.setdefault(name, obj)
    if getattr(obj, "name", None) != name:
        obj.name = name
    return _REGISTRY[name]


def get_predictor(name: str) -> type[Predictor]:
    """The class registered as `name`; imports its module on first use."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in BUILTIN_MODULES:
        return _import_builtin(name)
    eps = _entry_points()
    if name in eps:
        return _load_entry_point(name, eps[name])
    raise _unknown(name, f"unknown predictor {name!r}")


def create_predictor(name: str, **params: Any) -> Predictor:
    """Instantiate predictor `name` with constructor parameters `params` (`Predictor.from_params`)."""
    return get_predictor(name).from_params(**params)


def load_predictor(path: str | Path, *, trust_saved_model: bool = False) -> Predictor:
    """Load any saved model directory: verify it, read its predictor name, dispatch to `load`.

    `trust_saved_model` reaches loaders that take it (a legacy_keras directory made from
    a TensorFlow SavedModel is refused without it).
    """
    from mlstrat.predictors.persistence import read_model_dir

    path = Path(path)
    metadata = read_model_dir(path)
    name = metadata.get("predictor")
    if not isinstance(name, str):
        raise ModelLoadError(
            "metadata.json names no predictor",
            file=path / "metadata.json",
            fix="retrain the model with mlstrat",
        )
    try:
        cls = get_predictor(name)
    except UnknownPredictorError as exc:
        raise ModelLoadError(
            f"model was saved by predictor {name!r}, which is not available here: {exc.problem}",
            file=path,
            fix=exc.fix,
        ) from exc
    if trust_saved_model and "trust_saved_model" in inspect.signature(cls.load).parameters:
        return cls.load(path, trust_saved_model=True)
    return cls.load(path)


__all__ = [
    "BUILTIN_MODULES",
    "ENTRY_POINT_GROUP",
    "UnknownPredictorError",
    "create_predictor",
    "get_predictor",
    "list_predictors",
    "load_predictor",
    "register_predictor",
]
