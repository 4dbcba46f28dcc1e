"""`mlstrat run`: a whole experiment from a YAML file, or a replay of a finished run.

mlstrat run configs/demo.yaml --out reports/demo
mlstrat run --replay reports/demo
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from mlstrat.cli.common import add_run_dir
from mlstrat.config import horizon_notes
from mlstrat.errors import ConfigError, HorizonWarning

HEADLINES = (
    ("total_return", "total return", "{:+.2%}"),
    ("cagr", "CAGR", "{:+.2%}"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("max_drawdown", "max drawdown", "{:.2%}"),
    ("n_trades", "trades", "{:d}"),
    ("win_rate", "win rate", "{:.1%}"),
    ("fees_paid", "fees", "{:,.2f}"),
)


def _print_headlines(results: dict) -> None:
    """One table row per predictor: the headline trading metrics, then buy-and-hold."""
    from mlstrat.report.metrics import compute_metrics

    rows, bench = [], None
    for name, res in results.items():
        metrics = compute_metrics(res)
        cells = []
        for key, _, fmt in HEADLINES:
            value = metrics.trading.get(key)
            try:
                cells.append(fmt.format(int(value) if fmt == "{:d}" else value))
            except (TypeError, ValueError):
                cells.append("n/a")
        rows.append((name, cells))
        bench = bench or metrics.benchmark
    header = ["run"] + [label for _, label, _ in HEADLINES]
    widths = [
        max(len(h), *(len(r[0]) if i == 0 else len(r[1][i - 1]) for r in rows))
        for i, h in enumerate(header)
    ]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for name, cells in rows:
        print("  ".join(c.rjust(w) for c, w in zip([name, *cells], widths, strict=True)))
    if bench:
        print(
            f"buy-and-hold: total return {bench.get('total_return', float('nan')):+.2%}, "
            f"Sharpe {bench.get('sharpe', float('nan')):.2f}, "
            f"max drawdown {bench.get('max_drawdown', float('nan')):.2%}"
        )


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
    add_run_dir(p)
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
    p.add_argument(
        "--verify-cache",
        action="store_true",
        help="re-hash every file of the run directory (--out or the config's default) and of "
        "its cache, report what is damaged, change nothing",
    )
    p.add_argument(
        "--plan",
        action="store_true",
        help="print the cost plan and exit: per model, folds x estimated seconds per fold (from "
        "a short calibration fit on the first fold), the total and memory per worker; kept as "
        "plan.json in the run directory, whose run then shows an ETA from it",
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
    if args.verify_cache:
        return _verify(args)
    if args.config is None:
        raise ConfigError(
            "no configuration given",
            fix="mlstrat run CONFIG.yaml [--out DIR] or mlstrat run --replay DIR",
        )
    from mlstrat.cli.common import parse_assignments

    overrides = parse_assignments(args.set, "--set")
    if args.plan:
        from mlstrat.run import plan_run

        plan, where = plan_run(args.config, args.out, overrides=overrides)
        print(plan.format())
        print(f"plan kept in {where}")
        return 0
    with warnings.catch_warnings():
        # shown after the headline as notes; a failing run keeps its one error line
        warnings.simplefilter("ignore", HorizonWarning)
        result = run_experiment(
            args.config, args.out, cache_dir=args.cache_dir, overrides=overrides, progress=progress
        )
    reused = [f"{r.stage} {r.item}" for r in result.stages if r.status == "cached"]
    _print_headlines(result.results)
    if reused:
        print(f"reused from cache: {len(reused)} stage item(s)")
    print(f"run directory: {result.out} ({result.seconds:.1f} s)")
    if result.main_report is not None:
        print(f"report: {result.main_report}")
    for note in horizon_notes(result.config):
        print(f"note: {note}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    """`--verify-cache`: every recorded file of the run directory and every cache entry."""
    from mlstrat.errors import IntegrityError
    from mlstrat.run import REPORTS_DIR, verify_run

    out = args.out
    if out is None and args.config is not None:
        from mlstrat.config import load_config

        out = REPORTS_DIR / load_config(args.config).name
    if out is None:
        raise ConfigError(
            "--verify-cache needs the run directory", fix="pass --out DIR or the run's CONFIG"
        )
    problems = verify_run(out, args.cache_dir)
    for line in problems:
        print(line)
    if problems:
        raise IntegrityError(
            f"{len(problems)} damaged or unfinished file(s)/entries",
            file=out,
            fix=f"rerun `mlstrat run CONFIG --out {out}`: damaged cache entries are rebuilt",
        )
    print(f"{out}: every recorded file and cache entry verifies")
    return 0
