"""`mlstrat reconcile`: backtest a paper journal's window from its bars and compare bar by bar.

mlstrat reconcile paper.sqlite --config configs/demo.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `mlstrat reconcile` on the top-level subparsers."""
    p = sub.add_parser(
        "reconcile",
        help="backtest a paper journal's window from its bars and compare bar by bar",
        description=(
            "Backtest the bars a paper session traded (features, fold-model predictions, "
            "strategy, sizer and broker as the backtest stage builds them) and compare "
            "predictions, decisions, orders, fills and equity with the journal, bar by bar. "
            "Exit 0 when they agree; otherwise the first divergence with both sides' values "
            "(exit 2)."
        ),
    )
    p.add_argument("journal", type=Path, help="SQLite journal written by `mlstrat paper`")
    p.add_argument("--config", required=True, type=Path, help="the session's configuration")
    p.add_argument("--run", type=Path, metavar="DIR", help="run directory (default: the journal's)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        metavar="REL",
        help="relative difference allowed between numbers (default 0: exact)",
    )
    p.add_argument(
        "--show", type=int, default=10, metavar="N", help="differences to list (default 10)"
    )
    p.set_defaults(func=reconcile_command)


def reconcile_command(args: argparse.Namespace) -> int:
    from mlstrat.config import load_config
    from mlstrat.paper.reconcile import reconcile

    result = reconcile(
        args.journal, load_config(args.config), run_dir=args.run, tolerance=args.tolerance
    )
    print(f"reconcile: {result.summary()}")
    for difference in result.differences[: max(0, args.show)]:
        print(f"  {difference}")
    result.check()
    return 0
