"""`mlstrat report`: rebuild a run's HTML report from its saved result, or compare runs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mlstrat.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report",
        help="build the HTML report of a saved backtest, or put several runs side by side",
        description=(
            "Build report.html (self-contained), metrics.json and PNG charts from a saved "
            "BacktestResult directory (`mlstrat backtest --out DIR`), or compare runs."
        ),
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--run",
        metavar="DIR",
        help="saved result directory; the report is (re)built inside it unless --out is given",
    )
    what.add_argument(
        "--compare", nargs="+", metavar="DIR", help="two or more saved result directories"
    )
    what.add_argument(
        "--journal",
        type=Path,
        metavar="J.sqlite",
        help="a paper session's journal (with --config and --out): report the paper period",
    )
    p.add_argument("--config", type=Path, help="the paper session's configuration (--journal)")
    p.add_argument("--out", metavar="DIR", help="output directory (required with --compare)")
    p.add_argument("--title", help="page title")
    p.add_argument(
        "--names",
        nargs="+",
        metavar="NAME",
        help="run names for --compare (default: directory names)",
    )
    p.add_argument(
        "--periods-per-year",
        type=float,
        metavar="N",
        help="bars per year for annualisation (default: inferred, e.g. 8760 for 24/7 hourly)",
    )
    p.add_argument(
        "--risk-free", type=float, default=0.0, metavar="RATE", help="annual risk-free rate"
    )
    p.add_argument(
        "--log-scale",
        choices=("auto", "on", "off"),
        default="auto",
        help="equity chart y scale (auto: log when values span more than 10x)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from mlstrat.report.html import build_comparison, build_report
    from mlstrat.report.result import BacktestResult

    started = time.perf_counter()
    common = {"periods_per_year": args.periods_per_year, "risk_free": args.risk_free}
    if args.compare:
        if args.out is None:
            raise ConfigError(
                "--compare needs --out", fix="add --out DIR for the comparison report"
            )
        if len(args.compare) < 2:
            raise ConfigError(
                f"--compare needs at least two runs, got {len(args.compare)}",
                fix="list two or more result directories",
            )
        results = [BacktestResult.load(d) for d in args.compare]
        names = args.names or _unique_names(args.compare)
        page = build_comparison(
            results,
            args.out,
            title=args.title or "Comparison: " + " vs ".join(names),
            names=names,
            **common,
        )
    elif args.journal:
        page = _journal_report(args, common)
    else:
        if args.names:
            raise ConfigError("--names only applies to --compare", fix="drop --names")
        result = BacktestResult.load(args.run)
        log = {"auto": "auto", "on": True, "off": False}[args.log_scale]
        page = build_report(result, args.out or args.run, title=args.title, log_scale=log, **common)
    print(f"report: {page} ({time.perf_counter() - started:.1f} s)")
    return 0


def _journal_report(args: argparse.Namespace, common: dict) -> Path:
    """The report of a paper session, rebuilt by replaying its journal (`mlstrat.paper`)."""
    from mlstrat.config import load_config
    from mlstrat.paper import journal_result
    from mlstrat.report.html import build_report

    if args.config is None or args.out is None:
        raise ConfigError("--journal needs --config and --out", fix="add --config C --out DIR")
    result = journal_result(args.journal, load_config(args.config))
    log = {"auto": "auto", "on": True, "off": False}[args.log_scale]
    title = args.title or f"paper: {args.journal.name}"
    return build_report(result, args.out, title=title, log_scale=log, **common)


def _unique_names(dirs: list[str]) -> list[str]:
    """Directory names, with parent names added where two runs share a name."""
    paths = [Path(d).resolve() for d in dirs]
    names = [p.name for p in paths]
    if len(set(names)) < len(names):
        names = [f"{p.parent.name}/{p.name}" for p in paths]
    return names
