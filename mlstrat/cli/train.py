"""`mlstrat train` (fit one predictor on a feature feed) and `mlstrat models inspect`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mlstrat.cli.features import add_data_source
from mlstrat.data.options import cli_command
from mlstrat.errors import ConfigError, SchemaError


def parse_param(text: str) -> tuple[str, Any]:
    """`key=value` with the value read as YAML (numbers, true/false, null, [lists], strings)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ConfigError(
            f"--param {text!r} is not key=value",
            fix="write e.g. --param n_estimators=200 --param learning_rate=0.05",
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--param {key}: cannot read value {raw!r} ({exc})") from exc
    return key, value


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
    from mlstrat.cli.features import feed_from_data, one_source, target_spec
    from mlstrat.features import parse_targets, read_feature_feed

    one_source(args)
    if args.feed:
        return Path(args.feed), read_feature_feed(args.feed)
    spec = target_spec(args.target)  # direction_1 or direction:4:0.002
    args.target = parse_targets([spec])[0].name
    return Path(args.data), feed_from_data(args.data, args, (spec,))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _inspect(args: argparse.Namespace) -> int:
    from mlstrat.predictors.persistence import verify_model_dir

    report = verify_model_dir(args.dir)
    meta = report.metadata
    if args.json:
        print(json.dumps(meta, indent=2, sort_keys=True))
        return 0
    training = meta.get("training") or {}
    versions = meta.get("versions") or {}
    lines = [
        f"model        {report.path}",
        f"predictor    {meta.get('predictor')}  (task {meta.get('task')}, "
        f"window {meta.get('window')}, format {meta.get('format_version')})",
        f"created      {meta.get('created_at')}  by mlstrat {versions.get('mlstrat')}",
        "versions     " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if v),
    ]
    features = meta.get("feature_names") or []
    if features:
        shown = ", ".join(features[:8]) + (", ..." if len(features) > 8 else "")
        lines.append(f"features     {len(features)}: {shown}")
    if training:
        period = f"{training.get('train_start')} .. {training.get('train_end')}"
        lines.append(
            f"trained on   {training.get('n_rows')} rows, {period}, target {training.get('target')}"
        )
        if training.get("data_sha256"):
            lines.append(f"data sha256  {training['data_sha256']}")
    if meta.get("members"):
        lines.append(
            "members      "
            + ", ".join(
                f"{m.get('name')} (w={_fmt(w)})"
                for m, w in zip(meta["members"], meta.get("normalized_weights") or [], strict=False)
            )
        )
    if meta.get("best_iteration") is not None:
        lines.append(f"best iter    {meta['best_iteration']}")
    metrics = meta.get("validation_metrics") or {}
    if metrics:
        lines.append("validation   " + ", ".join(f"{k} {_fmt(v)}" for k, v in metrics.items()))
    if "saved_model" in (meta.get("requires_trust") or []):
        lines.append(
            "trust        holds a TensorFlow SavedModel: loading it runs its graph, so it loads "
            "only with trust_saved_model=True"
        )
    lines.append(f"manifest     OK, {len(report.files_checked)} files verified (sha256)")
    if report.extra_files:
        lines.append(
            f"note         files not in the manifest (never read): {', '.join(report.extra_files)}"
        )
    print("\n".join(lines))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `train` and `models` (with `models inspect` and `models upgrade`)."""
    from mlstrat.cli.models import add_parser as add_upgrade_parser

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

    models = sub.add_parser("models", help="inspect saved model directories")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    inspect = models_sub.add_parser(
        "inspect", help="print a model's metadata and verify its manifest"
    )
    inspect.add_argument("dir", help="model directory")
    inspect.add_argument("--json", action="store_true", help="print the full metadata as JSON")
    inspect.set_defaults(func=_inspect)
    add_upgrade_parser(models_sub)
