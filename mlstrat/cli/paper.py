"""`mlstrat paper`: paper-trade a run's strategy on closed bars (`mlstrat reconcile` checks it).

mlstrat paper configs/demo.yaml --source user_data/data/binance --journal paper.sqlite
mlstrat paper configs/demo.yaml --source ccxt:binance --journal paper.sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from mlstrat.paper.sources import DUPLICATE_POLICIES, GAP_POLICIES, LATE_POLICIES


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `mlstrat paper` on the top-level subparsers."""
    _add_paper(sub)


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--run",
        type=Path,
        metavar="DIR",
        help="run directory whose fold models are used (default reports/<config name>)",
    )
    p.add_argument("--predictor", help="signal predictor to trade (needed when there are several)")
    p.add_argument("--symbol", help="symbol to trade (needed when the run has several)")


def _add_paper(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "paper",
        help="paper-trade a run's strategy on closed bars from a candle directory or an exchange",
        description=(
            "Run the configured strategy in backtrader's live mode with the run's fold models, "
            "the same simulated broker and costs as the backtest, on bars as they close. Every "
            "bar, prediction, decision, order, fill and equity value goes into the SQLite "
            "journal, one transaction per bar; rerunning the command resumes the journal. "
            "Prints one line per bar; stop with Ctrl-C (the bar in progress is finished)."
        ),
    )
    p.add_argument("config", type=Path, help="YAML run configuration (of a finished run)")
    p.add_argument(
        "--source",
        required=True,
        help="a candle file or directory another tool appends to, or ccxt:EXCHANGE[:SYMBOL] "
        "(public OHLCV through ccxt; the symbol defaults to the configuration's)",
    )
    p.add_argument(
        "--journal", required=True, type=Path, help="SQLite journal (created or resumed)"
    )
    _run_options(p)
    p.add_argument(
        "--poll", type=float, default=60.0, metavar="SECONDS", help="seconds between polls (60)"
    )
    p.add_argument(
        "--history",
        type=int,
        metavar="BARS",
        help="bars of history kept for the features (default: all the candle files hold; "
        "1000 from an exchange)",
    )
    p.add_argument(
        "--start",
        metavar="TIME",
        help="trade bars from this UTC time on, even those the source has already "
        "(default: only bars closing after the session starts)",
    )
    p.add_argument("--until", metavar="TIME", help="stop after the bar at or after this UTC time")
    p.add_argument("--max-bars", type=int, metavar="N", help="stop after N new bars")
    p.add_argument("--on-late", choices=LATE_POLICIES, default="skip", help="late bars (skip)")
    p.add_argument(
        "--on-duplicate",
        choices=DUPLICATE_POLICIES,
        default="skip",
        help="a traded bar coming again with other values (skip)",
    )
    p.add_argument(
        "--on-gap",
        choices=GAP_POLICIES,
        default="wait",
        help="bars missing before a new bar (wait)",
    )
    p.add_argument(
        "--gap-wait",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="with --on-gap wait: how long to wait for missing bars (300)",
    )
    p.add_argument("--quiet", action="store_true", help="no line per bar")
    p.set_defaults(func=paper_command)


def paper_command(args: argparse.Namespace) -> int:
    import pandas as pd

    from mlstrat.config import load_config
    from mlstrat.paper.engine import PaperSettings, run_paper
    from mlstrat.paper.models import PaperRun
    from mlstrat.paper.sources import BarPolicy, open_source

    config = load_config(args.config)
    run = PaperRun.open(config, args.run, predictor=args.predictor, symbol=args.symbol)
    source = open_source(
        args.source,
        run.symbol,
        run.timeframe,
        options=run.data_file.load_options(),
        history=args.history,
    )
    settings = PaperSettings(
        poll=args.poll,
        history=args.history,
        start=None if args.start is None else pd.Timestamp(args.start),
        until=None if args.until is None else pd.Timestamp(args.until),
        max_bars=args.max_bars,
        policy=BarPolicy(args.on_late, args.on_duplicate, args.on_gap, args.gap_wait),
    )
    stop = threading.Event()
    print(
        f"paper: {config.name} {run.predictor.name} {run.symbol} {run.timeframe} from "
        f"{source.describe()} into {args.journal}",
        flush=True,
    )
    with _stop_on_signals(stop):
        session = run_paper(
            config,
            source,
            args.journal,
            run_dir=run.run_dir,
            predictor=run.predictor.name,
            symbol=run.symbol,
            settings=settings,
            on_status=None if args.quiet else _print_flush,
            stop=stop,
        )
    print(
        f"paper: stopped ({session.stopped}): {session.traded} new bar(s), "
        f"{session.replayed} replayed; journal {session.journal}",
        flush=True,
    )
    return 0


def _print_flush(line: str) -> None:
    print(line, flush=True)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT / SIGTERM end the session after the bar in progress (not in the middle of it)."""

    def handler(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
