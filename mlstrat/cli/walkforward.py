"""`mlstrat walkforward`: per-fold models and out-of-sample predictions for a feature feed."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mlstrat.cli.common import add_data_source
from mlstrat.data.options import cli_command
from mlstrat.walkforward.splits import SCHEMES


def _span(text: str) -> int | str:
    return int(text) if text.strip().isdigit() else text


def _validation(text: str) -> float | int | str:
    try:
        value = float(text)
    except ValueError:
        return text
    return value if "." in text else int(value)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "walkforward",
        help="train one model per walk-forward fold and write the prediction feed",
        description="Walk-forward retraining with purged folds. Writes OUT/folds/NNN/ "
        "(model + fold.json), OUT/predictions.parquet and OUT/folds.json. Lengths are bars "
        "(200), durations (120D, 12h) or months (4mo). A rerun with the same options resumes.",
    )
    p.add_argument("--feed", help="feature feed Parquet (mlstrat features)")
    p.add_argument("--predictor", default="xgboost", help="registered predictor name")
    p.add_argument("--target", default=None, help="target column, e.g. direction_1")
    p.add_argument("--train", default="4mo", help="training window (default 4mo)")
    p.add_argument("--test", default="2mo", help="test period per fold (default 2mo)")
    p.add_argument("--step", default=None, help="distance between folds (default: --test)")
    p.add_argument("--purge", default=None, help="history dropped before each test start")
    p.add_argument("--embargo", default="0h", help="extra gap after the last label")
    p.add_argument(
        "--validation", default="0.2", help="validation tail: fraction, bars or duration"
    )
    p.add_argument("--min-train", default=None, help="history before the first test period")
    p.add_argument("--expanding", action="store_true", help="train from the first bar")
    p.add_argument(
        "--scheme",
        choices=SCHEMES,
        default="rolling",
        help="rolling, expanding, or cpcv: combinatorial purged CV (writes OUT/paths/)",
    )
    p.add_argument("--groups", type=int, default=None, help="cpcv: groups N (default 6)")
    p.add_argument(
        "--test-groups", type=int, default=None, help="cpcv: test groups per split k (default 2)"
    )
    p.add_argument("--features", default=None, help="comma-separated feature columns")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fit_thresholds option, e.g. objective=precision or high=0.8",
    )
    p.add_argument("--out", required=True, help="output directory, e.g. models/RUN")
    p.add_argument("--n-jobs", type=int, default=-1, help="parallel folds (-1: all cores)")
    p.add_argument("--backend", choices=("loky", "dask"), default="loky")
    p.add_argument("--scheduler", default=None, help="dask scheduler address tcp://host:port")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-resume", action="store_true", help="retrain every fold")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_data_source(p)
    p.set_defaults(func=_run)


def _pairs(items: list[str]) -> dict[str, Any]:
    from mlstrat.cli.common import parse_param

    return dict(parse_param(item) for item in items)


def _feed_path(args: argparse.Namespace) -> str:
    """--feed, or the feed built from --data (written to OUT/features.parquet, kept with the run)."""
    from pathlib import Path

    from mlstrat.cli.common import feed_from_data, one_source, target_spec
    from mlstrat.features import parse_targets, write_feature_feed

    one_source(args)
    if args.feed:
        return args.feed
    spec = target_spec(args.target or "direction:1")
    args.target = parse_targets([spec])[0].name
    feed = feed_from_data(args.data, args, (spec,))
    return str(write_feature_feed(feed, Path(args.out) / "features.parquet"))


@cli_command
def _run(args: argparse.Namespace) -> int:
    from mlstrat.walkforward.runner import run_walk_forward
    from mlstrat.walkforward.splits import WalkForward

    splits = WalkForward(
        train=_span(args.train),
        test=_span(args.test),
        step=None if args.step is None else _span(args.step),
        purge=None if args.purge is None else _span(args.purge),
        embargo=_span(args.embargo),
        expanding=args.expanding,
        min_train=None if args.min_train is None else _span(args.min_train),
        validation=_validation(args.validation),
        scheme=args.scheme,
        groups=args.groups,
        test_groups=args.test_groups,
    )
    features = None
    if args.features:
        features = [f.strip() for f in args.features.split(",") if f.strip()]
    feed_path = _feed_path(args)  # with --data, also settles args.target
    result = run_walk_forward(
        feed_path,
        predictor=args.predictor,
        params=_pairs(args.param),
        target=args.target,
        splits=splits,
        out=args.out,
        n_jobs=args.n_jobs,
        backend=args.backend,
        scheduler=args.scheduler,
        resume=not args.no_resume,
        features=features,
        thresholds=_pairs(args.threshold),
        seed=args.seed,
        progress=not args.quiet,
    )
    summary = {
        "out": str(result.out),
        "folds": len(result.folds),
        "trained": result.n_trained,
        "resumed": result.n_resumed,
        "seconds": round(result.seconds, 2),
        "predictions": str(result.predictions_path),
        **({"paths": len(result.paths)} if result.paths else {}),
    }
    for key in ("accuracy", "auc", "ic"):
        values = [f[key] for f in result.folds if f.get(key) is not None]
        if values:
            summary[f"mean_{key}"] = round(sum(values) / len(values), 4)
    print(json.dumps(summary), file=sys.stdout)
    return 0
