"""`mlstrat train`: fit one predictor on a feature feed and save its model directory."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from mlstrat.cli.common import add_data_source, parse_param
from mlstrat.data.options import cli_command
from mlstrat.errors import ConfigError, SchemaError


def _timestamp(text: str | None, flag: str) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        ts = pd.Timestamp(text)
    except ValueError as exc:
        raise ConfigError(
            f"{flag} {text!r} is not a date/time", fix=f"write e.g. {flag} 2025-01-01"
        ) from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@cli_command
def _train(args: argparse.Namespace) -> int:
    from mlstrat.features import feature_columns, target_columns
    from mlstrat.predictors.registry import create_predictor

    feed_path, df = _training_feed(args)
    targets = list(target_columns(df))
    if args.target not in df.columns or args.target not in targets:
        raise SchemaError(
            f"target {args.target!r} is not a target column of the feed",
            file=feed_path,
            column=args.target,
            fix=f"choose one of: {', '.join(targets) or '(none: rebuild the feed with targets)'}",
        )
    available = list(feature_columns(df))
    if args.features:
        features = [f.strip() for f in args.features.split(",") if f.strip()]
        unknown = [f for f in features if f not in available]
        if unknown:
            raise SchemaError(
                f"not feature columns of the feed: {', '.join(unknown)}",
                file=feed_path,
                column=unknown[0],
                fix=f"choose among: {', '.join(available)}",
            )
    else:
        features = available
    if not features:
        raise SchemaError(
            "the feed has no feature columns",
            file=feed_path,
            fix="build it with `mlstrat features`",
        )

    start, end = _timestamp(args.start, "--start"), _timestamp(args.end, "--end")
    if start is not None or end is not None:
        df = df.loc[start:end]
    if df.empty:
        raise ConfigError(
            "no rows between --start and --end", file=feed_path, fix="widen the date range"
        )

    params = dict(parse_param(p) for p in args.param or [])
    predictor = create_predictor(args.predictor, **params)
    X, y = df[features], df[args.target]
    print(
        f"training {args.predictor} on {y.notna().sum()} labelled rows "
        f"({df.index[0]} .. {df.index[-1]}), {len(features)} features, target {args.target}",
        file=sys.stderr,
    )
    predictor.fit(X, y)
    predictor.save(args.out)
    summary = {
        "model": str(args.out),
        "predictor": predictor.name,
        "target": args.target,
        "features": len(features),
        "rows": len(df),
        "validation_metrics": getattr(predictor, "validation_metrics_", None) or None,
    }
    print(json.dumps(summary, default=str))
    return 0


def _training_feed(args: argparse.Namespace) -> tuple[Path, pd.DataFrame]:
    """The feed to train on: --feed as written, or built from --data with the data options."""
    from mlstrat.cli.common import feed_from_data, one_source, target_spec
    from mlstrat.features import parse_targets, read_feature_feed

    one_source(args)
    if args.feed:
        return Path(args.feed), read_feature_feed(args.feed)
    spec = target_spec(args.target)  # direction_1 or direction:4:0.002
    args.target = parse_targets([spec])[0].name
    return Path(args.data), feed_from_data(args.data, args, (spec,))


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `mlstrat train`."""
    train = sub.add_parser(
        "train",
        help="fit one predictor on a feature feed and save its model directory",
        description="Fit a predictor on the whole (optionally --start/--end limited) range of a "
        "feature feed. Walk-forward retraining is `mlstrat walkforward`.",
    )
    train.add_argument("--feed", help="feature feed Parquet (mlstrat features)")
    train.add_argument("--predictor", required=True, help="registered predictor name")
    train.add_argument(
        "--target",
        required=True,
        help="target column, e.g. direction_1 (with --data also a spec: direction:4:0.002)",
    )
    train.add_argument("--out", required=True, help="model directory to write, e.g. models/NAME")
    train.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="predictor parameter (repeatable); value parsed as YAML",
    )
    train.add_argument(
        "--features",
        help="comma-separated subset of the feed's feature columns (default: all of them)",
    )
    train.add_argument("--start", help="first timestamp to train on (UTC)")
    train.add_argument("--end", help="last timestamp to train on (UTC, inclusive)")
    add_data_source(train)
    train.set_defaults(func=_train)
