"""`mlstrat features`: candle files -> feature-feed Parquet files."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlstrat.data.options import add_data_arguments, cli_command, options_from_args
from mlstrat.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `mlstrat features` on the top-level subparsers."""
    p = sub.add_parser(
        "features",
        help="build a feature set and targets from candle files into Parquet feature feeds",
        description=(
            "Build causal features and forward targets. One --data file writes --out FILE; "
            "several write <SYMBOL>-<set>.parquet into the directory --out."
        ),
    )
    p.add_argument(
        "--data", nargs="+", metavar="FILE", help="candle file(s) (any format load_bars reads)"
    )
    p.add_argument("--set", dest="feature_set", default="core", help="feature set (default: core)")
    p.add_argument(
        "--target",
        dest="targets",
        action="append",
        metavar="SPEC",
        help="target spec, repeatable: direction:1, direction:4:0.002, three_class:4:0.003, "
        "forward_return:24, forward_volatility:24 (default: direction:1)",
    )
    p.add_argument(
        "--minute-data",
        nargs="+",
        metavar="FILE",
        help="1-minute candles for realized-volatility features rv_1m, rv_1m_24 (matched by symbol)",
    )
    p.add_argument("--out", help="output .parquet file (one --data) or directory (several)")
    p.add_argument("--list-sets", action="store_true", help="list registered feature sets and exit")
    add_data_arguments(p)
    p.set_defaults(func=features_command)


@cli_command
def features_command(args: argparse.Namespace) -> int:
    """Build and write the feature feed(s); data options apply to every --data file."""
    from mlstrat.features import build_feature_feed, list_feature_sets, write_feature_feed
    from mlstrat.features.feed_io import build_feature_feeds, feature_columns, load_source

    if args.list_sets:
        for fs in list_feature_sets():
            count = "?" if fs.feature_names is None else len(fs.feature_names)
            print(f"{fs.name:<10} v{fs.version}  {count:>4} features  {fs.description}")
        return 0
    if not args.data or not args.out:
        raise ConfigError(
            "mlstrat features needs --data FILE [FILE ...] and --out", fix="see --help"
        )
    targets = tuple(args.targets or ("direction:1",))
    out = Path(args.out)
    options = options_from_args(args)
    if options.symbol and len(args.data) > 1:
        raise ConfigError(
            "--symbol names one file, but several --data files are given",
            fix="leave --symbol out: each file's symbol comes from its content or name",
        )
    minute_options = options.replace(symbol=None, timeframe=None).as_dict()
    minutes = [load_source(path, **minute_options) for path in args.minute_data or ()]

    if len(args.data) == 1:
        if len(minutes) > 1:
            raise ConfigError("one --data file takes at most one --minute-data file")
        bars = load_source(args.data[0], **options.as_dict())
        feed = build_feature_feed(bars, args.feature_set, targets, minutes[0] if minutes else None)
        print(_summary(write_feature_feed(feed, out), feed, feature_columns))
        return 0
    if out.suffix == ".parquet" or out.is_file():
        raise ConfigError(
            f"--out {out} must be a directory when several --data files are given",
            fix="pass a directory; each symbol is written as <SYMBOL>-<set>.parquet",
        )
    by_symbol = {}
    for frame in minutes:
        symbol = frame.attrs.get("symbol")
        if not symbol:
            raise ConfigError("cannot tell the symbol of a --minute-data file")
        by_symbol[str(symbol)] = frame
    lines = []
    feeds = build_feature_feeds(
        args.data, args.feature_set, targets, by_symbol, load_options=options.as_dict()
    )
    for symbol, feed in feeds:
        path = write_feature_feed(feed, out / f"{symbol}-{args.feature_set}.parquet")
        lines.append(_summary(path, feed, feature_columns))
    print("\n".join(lines))
    return 0


def _summary(path: Path, feed, feature_columns) -> str:
    meta = feed.attrs["mlstrat"]
    return (
        f"wrote {path}: {len(feed)} rows, {len(feature_columns(feed))} features "
        f"({meta['feature_set']} v{meta['set_version']}), targets {', '.join(meta['targets'])}"
    )
