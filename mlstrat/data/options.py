"""One declaration of how a candle file is read and cleaned, shared by every entry point.

`DataOptions` is the single source of the data options: the keyword arguments of
`load_bars`, the command-line flags of every command that reads candle files
(`--on-duplicate keep_last`), the keys of a run configuration's data files
(`on_duplicate: keep_last`) and the way fix hints name them are all generated from its
fields and their metadata (help, choices, flag, config key; see `mlstrat.sections`, which
every configuration section shares). Add an option here and every interface has it.
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any

from mlstrat.errors import CliSyntax, ConfigSyntax, DataQualityWarning, fix_syntax
from mlstrat.sections import (
    add_arguments,
    check,
    flag_of,
    from_args,
    key_of,
    reject_unknown,
    setting,
)

FORMATS = ("parquet", "feather", "json", "csv", "binance", "cdd", "yahoo")
CALENDARS = ("auto", "24/7", "business", "session")
POLICIES = ("keep", "flag", "drop", "error")
SPIKE_POLICIES = (*POLICIES, "clip")
DUPLICATE_POLICIES = ("error", "keep_first", "keep_last", "drop_all")
EXACT_DUPLICATE_POLICIES = ("drop", "error")
NEGATIVE_VOLUME_POLICIES = ("error", "drop")


@dataclass(frozen=True)
class DataOptions:
    """How to read one candle file and what to do with each kind of suspect bar.

    Policies: `keep` leaves the bars in and counts them; `flag` also lists their
    timestamps in the quality report; `drop` removes them; `error` stops at the first
    one with a DataError; `clip` (spikes only) pulls the bad price back to the local
    median. Every kind found is counted in `bars.attrs["quality"]` and announced by a
    DataQualityWarning, whatever the policy.
    """

    symbol: str | None = setting(
        None, "symbol to record (default: the file's symbol column or its name)", metavar="SYM"
    )
    timeframe: str | None = setting(
        None, 'bar size, e.g. "1h" (default: the modal bar spacing)', metavar="TF"
    )
    fmt: str = setting(
        "auto", "file format; auto detects it", choices=("auto", *FORMATS), key="format"
    )
    tz: str | None = setting(
        None, 'zone of zone-less timestamps, e.g. "UTC" or "America/New_York"', metavar="ZONE"
    )
    sort: bool = setting(False, "sort out-of-order rows by time instead of refusing", kind=bool)
    calendar: str = setting(
        "auto",
        "trading calendar gaps are counted against: 24/7, business (weekdays) or session "
        "(weekdays, the file's own trading hours); auto infers it",
        choices=CALENDARS,
    )
    adjust: bool = setting(
        False,
        "Yahoo files: scale open/high/low/close by Adj Close / Close (splits and dividends) "
        "and volume by its inverse; off by default, prices stay as traded",
        kind=bool,
    )
    on_duplicate: str = setting(
        "error",
        "rows with the same timestamp but different values: keep the first or last in FILE "
        "order, drop them all (drop_all), or stop",
        choices=DUPLICATE_POLICIES,
    )
    on_exact_duplicate: str = setting(
        "drop",
        "rows repeated exactly: keep one copy (drop) or stop",
        choices=EXACT_DUPLICATE_POLICIES,
    )
    on_time_mismatch: str = setting(
        "error",
        "rows whose text date and epoch time disagree (CryptoDataDownload): the epoch is used",
        choices=POLICIES,
    )
    on_negative_volume: str = setting(
        "error", "bars with negative volume", choices=NEGATIVE_VOLUME_POLICIES
    )
    on_placeholder: str = setting(
        "flag",
        "exchange placeholder bars (open = high = low = close, volume 0) around outages",
        choices=POLICIES,
    )
    on_spike: str = setting(
        "flag",
        "single-print price spikes (a price 3x or more away from the local median close)",
        choices=SPIKE_POLICIES,
    )
    on_zero_volume: str = setting(
        "keep", "other bars with zero volume (no trades, or volume not reported)", choices=POLICIES
    )
    on_incomplete: str = setting(
        "drop",
        "a last bar with under 10%% of the recent median volume (a candle still forming)",
        choices=POLICIES,
    )

    def __post_init__(self) -> None:
        check(self)

    @classmethod
    def from_kwargs(cls, options: Mapping[str, Any]) -> DataOptions:
        """Options from keyword arguments; an unknown name is a ConfigError naming close ones."""
        reject_unknown(options, option_names(), "data option")
        return cls(**options)

    def replace(self, **changes: Any) -> DataOptions:
        """A copy with `changes` applied (and checked)."""
        return DataOptions(**{**asdict(self), **changes})

    def as_dict(self) -> dict[str, Any]:
        """Every option by its Python name (JSON-able)."""
        return asdict(self)

    def policies(self) -> dict[str, str]:
        """The anomaly policies only (`on_*` options)."""
        return {k: v for k, v in asdict(self).items() if k.startswith("on_")}


@functools.lru_cache(maxsize=1)
def option_names() -> tuple[str, ...]:
    """Python names of every data option, in declaration order."""
    return tuple(f.name for f in fields(DataOptions))


def _spec(name: str) -> Any:
    return next(f for f in fields(DataOptions) if f.name == name)


def cli_flag(name: str) -> str:
    """`--on-duplicate` for `on_duplicate` (or the flag the declaration names)."""
    return flag_of(_spec(name))


def config_key(name: str) -> str:
    """`on_duplicate` for `on_duplicate`; `format` for `fmt`."""
    return key_of(_spec(name))


def config_keys() -> dict[str, str]:
    """Config key of every option, by Python name."""
    return {name: config_key(name) for name in option_names()}


def option_from_key(key: str) -> str | None:
    """Python name of the option whose config key is `key`; None for other keys."""
    return next((name for name in option_names() if config_key(name) == key), None)


def option_help(name: str) -> tuple[str, tuple[str, ...] | None, type]:
    """(help text, choices, kind) of an option."""
    spec = _spec(name)
    return spec.metadata["help"], spec.metadata["choices"], spec.metadata["kind"]


# ---------------------------------------------------------------- command line


def add_data_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    exclude: tuple[str, ...] = (),
    title: str | None = "data options (how candle files are read and cleaned)",
) -> None:
    """Add one flag per data option (`--on-duplicate`, `--tz`, ...) to `parser`."""
    add_arguments(parser, DataOptions, exclude=exclude, title=title)


def options_from_args(args: argparse.Namespace, **overrides: Any) -> DataOptions:
    """The DataOptions a parsed command line asks for (options it lacks keep their defaults)."""
    return from_args(DataOptions, args, **overrides)


def cli_syntax() -> CliSyntax:
    """Fix hints written as this declaration's command-line flags."""
    return CliSyntax({name: cli_flag(name) for name in option_names()})


def config_syntax(prefix: str) -> ConfigSyntax:
    """Fix hints written as keys of the run-configuration mapping at `prefix`."""
    return ConfigSyntax(prefix, config_keys())


def cli_command(handler: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Run a CLI handler with fix hints in flag syntax, data-quality warnings one line each."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        with fix_syntax(cli_syntax()), quality_warnings_to_stderr(args):
            return handler(args)

    return run


@contextmanager
def quality_warnings_to_stderr(args: argparse.Namespace) -> Iterator[None]:
    """Print each DataQualityWarning raised inside as `mlstrat CMD: warning: ...` on stderr."""
    command = getattr(args, "command", None) or "mlstrat"
    records: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            records = caught
            warnings.simplefilter("always", DataQualityWarning)
            yield
    finally:
        for item in records:
            if issubclass(item.category, DataQualityWarning):
                print(f"mlstrat {command}: warning: {item.message}", file=sys.stderr)
            else:
                warnings.warn_explicit(
                    item.message, item.category, item.filename, item.lineno, source=item.source
                )


def options_doc() -> str:
    """The data options as documentation lines (appended to `load_bars.__doc__`)."""
    lines = []
    for spec in fields(DataOptions):
        meta = spec.metadata
        choices = f" One of {', '.join(meta['choices'])}." if meta["choices"] else ""
        lines.append(
            f"    {spec.name} (default {spec.default!r}): {meta['help'].replace('%%', '%')}."
            f"{choices}"
        )
    return "\n".join(lines)
