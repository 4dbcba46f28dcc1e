"""`mlstrat backtest`: feature feed(s) + prediction feed(s) + a strategy class → saved BacktestResult."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mlstrat.broker import BrokerConfig
from mlstrat.cli.common import add_data_source
from mlstrat.data.options import cli_command
from mlstrat.errors import ConfigError, DataError
from mlstrat.sections import add_arguments, from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `mlstrat backtest` on the top-level subparsers."""
    p = sub.add_parser(
        "backtest",
        help="backtest a strategy on feature feeds with walk-forward predictions",
        description=(
            "Run a strategy class over one feature feed per symbol, with predictions joined "
            "as feed lines, and save the result (equity, trades, per-bar records) to --out. "
            "Orders made at a bar's close fill at the next bar's open unless --fill close."
        ),
    )
    p.add_argument(
        "--feed",
        action="append",
        metavar="FEED",
        help="feature-feed Parquet file; repeat for several symbols",
    )
    p.add_argument(
        "--predictions",
        action="append",
        metavar="PRED",
        help="prediction-feed Parquet file, one per --feed in the same order",
    )
    p.add_argument(
        "--symbol",
        action="append",
        metavar="SYM",
        help="symbol name per --feed (default: the feed's symbol metadata, else the file stem)",
    )
    p.add_argument(
        "--columns",
        metavar="COL,COL",
        help="feed columns to load as lines (default: all features and predictions)",
    )
    p.add_argument("--start", help="first timestamp (UTC), e.g. 2025-01-01")
    p.add_argument("--end", help="last timestamp (UTC)")
    p.add_argument(
        "--strategy",
        metavar="FILE.py:Class",
        help="strategy class, FILE.py:Class or module:Class (default: mlstrat's MLStrategy)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="strategy parameter (YAML value), repeatable: --param allow_short=true",
    )
    p.add_argument(
        "--sizer",
        choices=("tiered", "afml", "fixed"),
        help="TieredConfidenceSizer method (default: the strategy's default sizer)",
    )
    p.add_argument(
        "--sizer-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="sizer parameter (YAML value), repeatable: --sizer-param max_position=0.5",
    )
    add_arguments(p, BrokerConfig, title="broker (see mlstrat.broker)")
    p.add_argument("--out", required=True, metavar="DIR", help="result directory, e.g. reports/RUN")
    add_data_source(p, repeat=True)
    p.set_defaults(func=backtest_command)


@cli_command
def backtest_command(args: argparse.Namespace) -> int:
    from mlstrat.backtest import DEFAULT_STRATEGY, load_strategy, run_backtest
    from mlstrat.cli.common import one_source, parse_assignments

    one_source(args)
    source = "--feed" if args.feed else "--data"
    feeds_paths = [Path(f) for f in args.feed or args.data]
    preds = args.predictions or []
    if preds and len(preds) != len(feeds_paths):
        raise ConfigError(
            f"{len(feeds_paths)} {source} but {len(preds)} --predictions",
            fix=f"give one --predictions per {source}, in the same order",
        )
    symbols = args.symbol or []
    if symbols and len(symbols) != len(feeds_paths):
        raise ConfigError(
            f"{len(feeds_paths)} {source} but {len(symbols)} --symbol",
            fix=f"one --symbol per {source}",
        )
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    spec = args.strategy or DEFAULT_STRATEGY
    strategy_cls = load_strategy(spec)
    broker = from_args(BrokerConfig, args)
    strategy_params = parse_assignments(args.param, "--param")
    sizer_params = parse_assignments(args.sizer_param, "--sizer-param")
    if args.sizer:
        sizer_params["method"] = args.sizer

    feeds: dict[str, Any] = {}
    folds: list[dict] = []
    for i, path in enumerate(feeds_paths):
        pred = preds[i] if preds else None
        feed = _feature_feed(args, path, columns, pred, symbols[i] if symbols else None)
        name = symbols[i] if symbols else (getattr(feed, "_name", "") or feed.p.name or path.stem)
        feeds[str(name)] = feed
        if pred is not None:
            folds += _folds_beside(Path(pred), str(name))

    result = run_backtest(
        feeds,
        strategy_cls,
        strategy_params,
        sizer_params=sizer_params,
        broker=broker,
        folds=folds,
        config={
            "command": "backtest",
            "feeds": [str(p) for p in feeds_paths],
            "predictions": [str(p) for p in preds],
            "strategy_spec": spec,
        },
    )
    out = result.save(args.out)
    start, end = float(result.equity.iloc[0]), float(result.equity.iloc[-1])
    print(
        f"{', '.join(result.symbols)}: {len(result.equity)} bars, {len(result.trades)} closed trades, "
        f"final value {end:,.2f} ({(end / args.cash - 1) * 100:+.2f}% on {args.cash:,.2f} cash; "
        f"first bar {start:,.2f})"
    )
    print(f"saved {out}")
    return 0


def _feature_feed(
    args: argparse.Namespace, path: Path, columns: Any, pred: Any, symbol: str | None
) -> Any:
    """A FeatureFeed over a --feed file, or over the feed built from a --data candle file
    (features computed on every bar, then cut to --start/--end)."""
    from mlstrat.feed import FeatureFeed

    if args.feed:
        return FeatureFeed.from_parquet(
            path, columns=columns, start=args.start, end=args.end, predictions=pred
        )
    from mlstrat.cli.common import feed_from_data
    from mlstrat.feed import _utc_or_none

    frame = feed_from_data(path, args, symbol=symbol)
    if args.start is not None:
        frame = frame[frame.index >= _utc_or_none(args.start)]
    if args.end is not None:
        frame = frame[frame.index <= _utc_or_none(args.end)]
    return FeatureFeed.from_frame(frame, columns=columns, predictions=pred)


def _folds_beside(predictions: Path, symbol: str) -> list[dict]:
    """Per-fold metrics from a walk-forward run's folds.json next to its predictions, if any."""
    path = predictions.parent / "folds.json"
    if not path.is_file():
        return []
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(
            f"unreadable folds.json ({exc})", file=path, fix="rerun walk-forward"
        ) from None
    if not isinstance(records, list):
        raise DataError(
            "folds.json is not a list of fold records", file=path, fix="rerun walk-forward"
        )
    return [{"symbol": symbol, **r} if isinstance(r, dict) else r for r in records]
