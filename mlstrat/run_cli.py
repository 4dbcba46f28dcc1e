"""`mlstrat run`: a whole experiment from a YAML file, or a replay of a finished run.

mlstrat run configs/demo.yaml --out reports/demo
mlstrat run --replay reports/demo
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlstrat.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `mlstrat run` on the top-level subparsers."""
    p = sub.add_parser(
        "run",
        help="run an experiment from a YAML config (data → features → walk-forward → backtest → report)",
        description=(
            "Run every stage of the experiment described by CONFIG into --out (default "
            "reports/<name>). Each stage is cached by a hash of its inputs, so rerunning after a "
            "change recomputes only what the change affects, and a killed run resumes. "
            "--replay DIR re-runs a finished run from its saved configuration and checks that "
            "every trades.csv comes out identical."
        ),
    )
    p.add_argument("config", nargs="?", type=Path, help="YAML run configuration")
    p.add_argument("--out", type=Path, help="run directory (default reports/<config name>)")
    p.add_argument("--cache-dir", type=Path, help="shared stage cache (default OUT/cache)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (YAML), e.g. --set data.start=2025-01-01 "
        "--set predictors[0].params.n_estimators=50",
    )
    p.add_argument("--replay", type=Path, metavar="RUN_DIR", help="replay a finished run")
    p.add_argument(
        "--replay-from",
        choices=("full", "backtest"),
        default="full",
        help="full: recompute features and retrain every model (default); "
        "backtest: reuse the saved features and predictions",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    import os

    # TensorFlow's C++ log lines (oneDNN notices, absl warnings and a harmless graph
    # "NodeDef mentions attribute" error per worker) would bury the progress bars; real
    # failures still raise Python exceptions. Workers started later inherit this; set
    # TF_CPP_MIN_LOG_LEVEL=0 to see everything.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from mlstrat.run import replay, run_experiment

    progress = not args.quiet
    if args.replay is not None:
        if args.config is not None or args.out is not None or args.set:
            raise ConfigError(
                "--replay takes only the run directory",
                fix="mlstrat run --replay reports/NAME (drop CONFIG, --out and --set)",
            )
        result = replay(args.replay, mode=args.replay_from, progress=progress)
        for name in result.identical:
            print(f"{name}: trades.csv identical")
        print(f"replay ({result.mode}, {result.seconds:.1f} s): {result.out}")
        return 0
    if args.config is None:
        raise ConfigError(
            "no configuration given",
            fix="mlstrat run CONFIG.yaml [--out DIR] or mlstrat run --replay DIR",
        )
    from mlstrat.backtest_cli import parse_assignments

    overrides = parse_assignments(args.set, "--set")
    result = run_experiment(
        args.config, args.out, cache_dir=args.cache_dir, overrides=overrides, progress=progress
    )
    reused = [f"{r.stage} {r.item}" for r in result.stages if r.status == "cached"]
    for name, res in result.results.items():
        equity = res.equity
        total = float(equity.iloc[-1] / equity.iloc[0] - 1.0) if len(equity) else float("nan")
        print(f"{name}: {len(res.trades)} trades, total return {total:+.2%}", file=sys.stdout)
    if reused:
        print(f"reused from cache: {len(reused)} stage item(s)")
    print(f"run directory: {result.out} ({result.seconds:.1f} s)")
    if result.main_report is not None:
        print(f"report: {result.main_report}")
    return 0
