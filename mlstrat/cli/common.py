"""Arguments and parsers shared by several subcommands.

Candle files as the source of a command that takes a feature feed (train,
walkforward, backtest), target specs, and KEY=VALUE options (--param, --sizer-param,
--set) read as YAML values.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from mlstrat.data.options import add_data_arguments, options_from_args
from mlstrat.errors import ConfigError


def add_data_source(parser: argparse.ArgumentParser, *, repeat: bool = False) -> None:
    """`--data FILE` (candles, instead of --feed), `--set` and every data option.

    Commands that take a feature feed (train, walkforward, backtest) can start from a
    candle file instead: the feed is built with `--set` and the data options, exactly as
    `mlstrat features` would build it.
    """
    parser.add_argument(
        "--data",
        action="append" if repeat else "store",
        metavar="FILE",
        help="candle file instead of --feed"
        + (" (repeat per symbol)" if repeat else "")
        + ": the feature feed is built from it with --set and the data options",
    )
    parser.add_argument(
        "--set",
        dest="feature_set",
        default="core",
        help="feature set built from --data (default: core)",
    )
    add_data_arguments(parser, exclude=("symbol",) if repeat else ())


def add_run_dir(parser: argparse.ArgumentParser) -> None:
    """`--out` (the run directory) and `--cache-dir` (the stage cache) of `run` and `sweep`."""
    parser.add_argument("--out", type=Path, help="run directory (default reports/<config name>)")
    parser.add_argument("--cache-dir", type=Path, help="shared stage cache (default OUT/cache)")


def one_source(args: argparse.Namespace) -> None:
    """Exactly one of --feed and --data, or a ConfigError saying so."""
    if bool(args.feed) == bool(args.data):
        raise ConfigError(
            "give either --feed (a feature feed) or --data (a candle file)",
            fix="--feed FILE from `mlstrat features`, or --data FILE with --set",
        )


def feed_from_data(
    path: str | Path,
    args: argparse.Namespace,
    targets: tuple[str, ...] = (),
    symbol: str | None = None,
) -> pd.DataFrame:
    """The feature feed of a candle file, built in memory with the command's data options."""
    from mlstrat.features import build_feature_feed
    from mlstrat.features.feed_io import load_source

    given = getattr(args, "symbol", None)
    symbol = symbol or (given if isinstance(given, str) else None)  # backtest's --symbol is a list
    bars = load_source(path, **options_from_args(args, symbol=symbol).as_dict())
    return build_feature_feed(bars, args.feature_set, targets)


def target_spec(text: str) -> str:
    """A target spec from a spec or a column name: `direction_4` gives `direction:4`."""
    from mlstrat.features.targets import Target

    target = Target.from_name(text)
    return text if target is None else f"{target.kind}:{target.horizon}"


def parse_param(text: str) -> tuple[str, Any]:
    """`key=value` with the value read as YAML (numbers, true/false, null, [lists], strings)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ConfigError(
            f"--param {text!r} is not key=value",
            fix="write e.g. --param n_estimators=200 --param learning_rate=0.05",
        )
    return key, (yaml_value(raw, f"--param {key}") if raw.strip() else "")


def parse_assignments(items: list[str], what: str) -> dict[str, Any]:
    """KEY=VALUE strings → dict with YAML-typed values (numbers, booleans, null, lists)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} {item!r} is not KEY=VALUE", fix="e.g. allow_short=true")
        out[key.strip()] = yaml_value(raw, f"{what} {key.strip()}")
    return out


def yaml_value(raw: str, where: str) -> Any:
    """One option value read like a configuration file, within its limits (size, aliases,
    depth), so a flag cannot smuggle in what a config file may not; errors start with `where`."""
    from mlstrat.config import load_yaml_text

    try:
        return load_yaml_text(raw)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.problem}", fix=exc.fix) from None
