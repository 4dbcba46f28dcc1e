"""`mlstrat sweep`: backtest every combination of strategy, sizing and broker settings on a
run's cached predictions, rank them, and say how likely the best one is luck.

mlstrat sweep configs/demo.yaml --set strategy.params.max_hold_bars=12,24,48 \\
    --set 'sizing.params.tiers=[[0.55, 0.5], [0.6, 1.0]], [[0.6, 1.0]]'
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlstrat.cli.common import add_run_dir
from mlstrat.errors import ConfigError

#: Ranking rows printed (sweep/ranking.csv and the page have all of them).
SHOWN = 10


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `mlstrat sweep` on the top-level subparsers."""
    p = sub.add_parser(
        "sweep",
        help="backtest a grid of strategy/sizing/broker settings on cached predictions",
        description=(
            "Run the data, features and walk-forward stages of CONFIG (from the cache when "
            "unchanged: nothing is retrained), then backtest every combination of the grid "
            "(the config's sweep.grid and each --set) for each traded predictor, in parallel. "
            "Every trial is logged in the run directory's trial log; the ranking, the best "
            "trial's deflated Sharpe ratio and the probability of backtest overfitting go "
            "to OUT/sweep/. A trial already backtested is reused, so a killed sweep resumes."
        ),
    )
    p.add_argument("config", type=Path, help="YAML run configuration")
    add_run_dir(p)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a grid axis: a strategy.params.*, sizing.params.* or broker.* key and its "
        "values, comma-separated YAML (brackets keep a list one value: "
        "'sizing.params.tiers=[[0.55, 0.5], [0.6, 1.0]], [[0.6, 1.0]]' is two values)",
    )
    p.add_argument(
        "--predictor",
        action="append",
        metavar="NAME",
        help="sweep only this traded predictor (repeatable; default: sweep.predictors or all)",
    )
    p.add_argument("--n-jobs", type=int, help="parallel backtests (-1: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=sweep_command)


def grid_axes(items: list[str]) -> dict[str, list[Any]]:
    """``KEY=V1,V2`` flags as grid axes: the values are a YAML flow list without brackets."""
    from mlstrat.cli.common import yaml_value

    axes: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ConfigError(
                f"--set {item!r} is not KEY=V1,V2,...",
                fix="e.g. --set strategy.params.max_hold_bars=12,24,48",
            )
        if key in axes:
            raise ConfigError(f"--set {key} is given twice", fix="list all its values in one --set")
        axes[key] = yaml_value(f"[{raw}]", f"--set {key}")
    return axes


def sweep_command(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as `mlstrat run`: quiet workers
    from mlstrat.sweep import run_sweep

    result = run_sweep(
        args.config,
        args.out,
        grid=grid_axes(args.set),
        predictors=args.predictor,
        n_jobs=args.n_jobs,
        cache_dir=args.cache_dir,
        progress=not args.quiet,
    )
    _print_ranking(result.ranking)
    stats = result.best["statistics"]
    line = f"best: {result.best['label']}"
    if "dsr" in stats:
        line += (
            f": Sharpe {stats['sharpe_annual']:.2f} (annualised), PSR {stats['psr']['zero']:.1%}, "
            f"DSR {stats['dsr']:.1%} over {stats['n_trials']} trials logged"
        )
    print(line)
    pbo = result.pbo
    if "pbo" in pbo:
        print(
            f"probability of backtest overfitting: {pbo['pbo']:.1%} ({pbo['n_variants']} variants)"
        )
    else:
        print(f"probability of backtest overfitting: not computed ({pbo['undefined']})")
    reused = sum(s == "cached" for s in result.status("sweep").values())
    print(f"sweep: {len(result.ranking)} trials ({reused} reused) in {result.seconds:.1f} s")
    print(f"sweep directory: {result.out / 'sweep'}")
    if result.report is not None:
        print(f"report: {result.report}")
    return 0


def _print_ranking(ranking: Any) -> None:
    """The best trials: rank, Sharpe, PSR, total return, max drawdown, trades, label."""
    print(
        f"{'rank':>4}  {'Sharpe':>7}  {'PSR':>6}  {'return':>8}  {'max DD':>7}  {'trades':>6}  trial"
    )
    for row in ranking.head(SHOWN).to_dict(orient="records"):
        print(
            f"{row['rank']:>4}  {row['sharpe']:>7.2f}  {row['psr']:>6.1%}  "
            f"{row['total_return']:>+8.2%}  {row['max_drawdown']:>7.2%}  {row['n_trades']:>6}  "
            f"{row['label']}"
        )
    if len(ranking) > SHOWN:
        print(f"... {len(ranking) - SHOWN} more in sweep/ranking.csv")
