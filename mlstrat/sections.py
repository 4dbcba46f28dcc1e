"""Configuration sections: one dataclass per section, declared next to the code that uses it.

A section (`mlstrat.broker.BrokerConfig`, `mlstrat.data.options.DataOptions`,
`mlstrat.report.options.ReportConfig`, ...) is a dataclass whose keys are fields made
with `setting()`: the default, a help line, the kind of value, the allowed values or
bounds, and how each interface names the key. Everything else is derived from the fields:

* `keys` and `to_dict`: the section's keys in a run configuration and its plain form;
* `convert`: one configuration value checked and typed (`mlstrat.config` parses with it);
* `check`: an instance's values checked (sections call it from ``__post_init__``);
* `add_arguments` / `from_args`: one command-line flag per key;
* `from_options`: an instance from keyword arguments, unknown names refused.

Adding a key to a section is adding a field, and using it.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from numbers import Real
from typing import Any, TypeVar

from mlstrat.errors import ConfigError, option_fix

T = TypeVar("T")
#: A kind is `str`, `bool`, `int` or `float`, a function that takes a configuration value
#: and returns it typed (raising ConfigError(problem, fix=...) when it is not valid), or
#: `object` for a value its section's own parser reads (a nested section, a file list).
Kind = type | Callable[[Any], Any]


def setting(
    default: Any,
    help: str,
    *,
    kind: Kind = str,
    choices: tuple[Any, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    valid: Callable[[Any], bool] | None = None,
    fix: str | None = None,
    flag: str | None = None,
    key: str | None = None,
    metavar: str | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A section field: its default (or `factory`) and what each interface needs to show it.

    `minimum` / `maximum` are inclusive bounds; `valid` is any other rule on the value,
    with `fix` saying what a valid value looks like. `flag` and `key` rename the
    command-line flag (default ``--name-with-dashes``) and the configuration key
    (default the field name).
    """
    meta = {
        "help": help,
        "kind": kind,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "valid": valid,
        "fix": fix,
        "flag": flag,
        "key": key,
        "metavar": metavar,
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# ---------------------------------------------------------------- declaration


def settings(cls: Any) -> tuple[dataclasses.Field, ...]:
    """The fields of a section made with `setting()`, in declaration order."""
    return tuple(f for f in dataclasses.fields(cls) if "help" in f.metadata)


def key_of(spec: dataclasses.Field) -> str:
    """The configuration key of a field (`format` for DataOptions.fmt)."""
    return spec.metadata["key"] or spec.name


def flag_of(spec: dataclasses.Field) -> str:
    """The command-line flag of a field (`--on-duplicate` for on_duplicate)."""
    return spec.metadata["flag"] or "--" + spec.name.replace("_", "-")


def keys(cls: Any) -> tuple[str, ...]:
    """The configuration keys of a section, in declaration order."""
    return tuple(key_of(f) for f in settings(cls))


def default_of(spec: dataclasses.Field) -> Any:
    """A field's default value (calling its factory)."""
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return spec.default


def to_dict(obj: Any) -> dict[str, Any]:
    """A section instance as plain YAML/JSON values by configuration key (parses back equal).

    A value that is itself a section (or a list of them) becomes its own plain form; an
    object with a ``to_dict`` method of its own is asked for it.
    """
    return {key_of(f): _plain(getattr(obj, f.name)) for f in settings(obj)}


def _plain(value: Any) -> Any:
    from mlstrat.fileio import to_jsonable

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        own = getattr(value, "to_dict", None)
        return own() if callable(own) else to_dict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return to_jsonable(value, allow_nan=True)


# ---------------------------------------------------------------- values


def _allowed(values: Iterable[Any]) -> str:
    return ", ".join(_plain_word(v) for v in values)


def _plain_word(value: Any) -> str:
    """A value as a YAML user writes it: true/false, null, plain text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def did_you_mean(value: Any, choices: Iterable[Any]) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to `value`, or an empty string."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _matches(value: Any, choices: Sequence[Any]) -> bool:
    """Whether `value` is one of `choices` (a boolean matches only a boolean, 1 is not true)."""
    return any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in choices)


def as_choice(value: Any, choices: Sequence[Any]) -> Any:
    """`value` if it is one of `choices`."""
    if not _matches(value, choices):
        raise ConfigError(
            f"{value!r} is not allowed{did_you_mean(value, choices)}",
            fix=f"allowed values: {_allowed(choices)}",
        )
    return value


def as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"expected true or false, got {value!r}")
    return value


def as_int(value: Any, minimum: float | None = None, maximum: float | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"must be <= {maximum}, got {value}")
    return int(value)


def as_float(value: Any, minimum: float | None = None, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"expected a number, got {value!r}")
    value = float(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        lo = "-inf" if minimum is None else minimum
        hi = "inf" if maximum is None else maximum
        raise ConfigError(f"{value} is outside [{lo}, {hi}]")
    return value


def as_text(value: Any) -> str:
    """A non-empty string, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"expected a non-empty string, got {value!r}")
    return value.strip()


def as_mapping(value: Any) -> dict[str, Any]:
    """A mapping (None for an empty one), as a plain dict."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected a mapping, got {type(value).__name__}")
    return dict(value)


def convert(spec: dataclasses.Field, value: Any) -> Any:
    """One configuration value of field `spec`, checked and typed; a ConfigError says why not.

    None is accepted where the default is None. The error names no key: the caller knows
    where the value sits and prefixes it.
    """
    meta = spec.metadata
    kind = meta["kind"]
    if value is None and spec.default is None:
        return None
    if meta["choices"] is not None:
        return as_choice(value, meta["choices"])
    if kind is bool:
        return as_bool(value)
    if kind is int:
        return as_int(value, meta["minimum"], meta["maximum"])
    if kind is float:
        return as_float(value, meta["minimum"], meta["maximum"])
    if kind is str:
        return as_text(value)
    if kind is object:
        return value
    return kind(value)


def check(obj: Any) -> None:
    """Check every setting of a section instance; the first bad one is a ConfigError naming it
    (``param=``) with a fix in the syntax of the interface in use. Call from ``__post_init__``."""
    for spec in settings(obj):
        value = getattr(obj, spec.name)
        if not isinstance(spec.metadata["kind"], type) and value is not None:
            try:
                spec.metadata["kind"](value)
            except ConfigError as exc:  # a converter may name the item (targets[2])
                raise ConfigError(
                    f"{spec.name}: {exc.problem}", param=exc.param or spec.name, fix=exc.fix
                ) from None
        problem, fix = _problem(spec, value)
        if problem is not None:
            raise ConfigError(problem, param=spec.name, fix=fix)


def _problem(spec: dataclasses.Field, value: Any) -> tuple[str | None, Any]:
    """(what is wrong with `value` for field `spec`, a fix), or (None, None) when it is fine."""
    meta, name = spec.metadata, spec.name
    kind, choices = meta["kind"], meta["choices"]
    if value is None and spec.default is None:
        return None, None
    if choices is not None:
        if _matches(value, choices):
            return None, None
        return (
            f"{name}={value!r} is not one of {_allowed(choices)}{did_you_mean(value, choices)}",
            option_fix(name, *choices[:3]),
        )
    if kind is bool and not isinstance(value, bool):
        return f"{name}={value!r} is not true or false", option_fix(name, True)
    if kind is str and not isinstance(value, str):
        return f"{name}={value!r} is not a string", None
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, Real):
            return f"{name}={value!r} is not a number", meta["fix"]
        lo, hi = meta["minimum"], meta["maximum"]
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return f"{name}={value!r} is out of range", meta["fix"] or _range_fix(lo, hi)
    if meta["valid"] is not None and not meta["valid"](value):
        return f"{name}={value!r} is out of range", meta["fix"]
    return None, None


def _range_fix(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"use a value from {lo} to {hi}"
    return f"use a value >= {lo}" if lo is not None else f"use a value <= {hi}"


def reject_unknown(names: Iterable[str], known: Sequence[str], what: str) -> None:
    """A ConfigError for the first of `names` not in `known`, naming a close one."""
    for name in names:
        if name not in known:
            raise ConfigError(
                f"unknown {what} {name!r}{did_you_mean(name, known)}",
                param=name,
                fix=f"use one of {', '.join(known)}",
            )


def from_options(
    cls: type[T], base: T | Mapping[str, Any] | None, options: Mapping[str, Any], what: str
) -> T:
    """An instance of section `cls`: `base` (an instance, a mapping of field values or None
    for the defaults) with `options` (keyword arguments by field name) applied on top."""
    names = tuple(f.name for f in settings(cls))
    if base is None:
        values: dict[str, Any] = {}
    elif isinstance(base, cls):
        values = {n: getattr(base, n) for n in names}
    elif isinstance(base, Mapping):
        values = dict(base)
    else:
        raise ConfigError(
            f"{what}: expected a {cls.__name__} or a mapping, got {type(base).__name__}",
            fix=f"pass {cls.__name__}(...) or keyword arguments ({', '.join(names)})",
        )
    reject_unknown([*values, *options], names, what)
    if not options and isinstance(base, cls):
        return base
    return cls(**{**values, **options})


# ---------------------------------------------------------------- command line


def add_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: Any,
    *,
    exclude: tuple[str, ...] = (),
    title: str | None = None,
) -> None:
    """Add one flag per setting of section `cls` to `parser` (in a group when `title`)."""
    group = parser.add_argument_group(title) if title else parser
    for spec in settings(cls):
        if spec.name in exclude:
            continue
        meta = spec.metadata
        default = default_of(spec)
        if meta["kind"] is bool:
            action = argparse.BooleanOptionalAction if default else "store_true"
            group.add_argument(flag_of(spec), dest=spec.name, action=action, help=meta["help"])
            continue
        help_text = meta["help"]
        if default is not None:
            help_text += f" (default: {default})"
        group.add_argument(
            flag_of(spec),
            dest=spec.name,
            default=default,
            type=meta["kind"] if meta["kind"] in (int, float) else None,
            choices=meta["choices"],
            metavar=meta["metavar"],
            help=help_text,
        )


def from_args(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """The section instance a parsed command line asks for (settings it lacks keep defaults)."""
    values = {f.name: getattr(args, f.name) for f in settings(cls) if hasattr(args, f.name)}
    values.update(overrides)
    return cls(**values)
