"""`mlstrat data inspect FILE`: load a candle file, validate it and print a summary."""

from __future__ import annotations

import argparse
import warnings
from typing import Any

from mlstrat.data.options import add_data_arguments, cli_syntax, options_from_args
from mlstrat.errors import DataQualityWarning, fix_syntax

_FLAGGED_SHOWN = 5


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `mlstrat data ...` on the top-level subparsers."""
    data = sub.add_parser("data", help="inspect and check market data files")
    commands = data.add_subparsers(dest="data_command", required=True)
    inspect = commands.add_parser(
        "inspect",
        help="load a candle file, validate it, print rows, range, timeframe, gaps and anomalies",
    )
    inspect.add_argument("file", help="Parquet, Feather, freqtrade JSON or CSV candle file")
    inspect.add_argument(
        "--max-gaps", type=int, default=10, help="gaps to list (default 10; -1 lists all)"
    )
    add_data_arguments(inspect)
    inspect.set_defaults(func=inspect_command)


def inspect_command(args: argparse.Namespace) -> int:
    """Print the file's summary, gap report and anomaly report; errors propagate as DataError."""
    from mlstrat.data import detect_format, file_sha256, load_bars

    options = options_from_args(args)
    with fix_syntax(cli_syntax()), warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)  # the report below says it all
        bars = load_bars(args.file, **options.as_dict())
        fmt = options.fmt if options.fmt != "auto" else detect_format(args.file)
        sha = file_sha256(args.file)
    quality = bars.attrs["quality"]
    lines = [
        f"file:      {args.file}",
        f"format:    {fmt}",
        f"sha256:    {sha}",
        f"symbol:    {bars.attrs.get('symbol')}",
        f"timeframe: {bars.attrs.get('timeframe')}",
        f"calendar:  {_calendar_line(bars.attrs['calendar'])}",
    ]
    if "adjust" in quality:
        lines.append(f"adjust:    {_adjust_line(quality['adjust'])}")
    lines += [
        f"rows:      {len(bars)} ({quality['rows_read']} read)",
        f"first:     {bars.index[0].isoformat()}",
        f"last:      {bars.index[-1].isoformat()}",
    ]
    lines += _gap_lines(bars, args.max_gaps)
    lines += anomaly_lines(quality)
    print("\n".join(lines))
    return 0


def _calendar_line(calendar: dict[str, Any]) -> str:
    from mlstrat.data.timeframe import Calendar

    return Calendar.from_value(calendar).describe() + ", --calendar overrides)"


def _adjust_line(adjust: dict[str, Any]) -> str:
    if adjust["applied"]:
        return "on: open/high/low/close scaled by Adj Close / Close, volume by Close / Adj Close"
    return "off (the default): traded prices; Adj Close is not used (--adjust uses it)"


def _gap_lines(bars: Any, max_gaps: int) -> list[str]:
    from mlstrat.data import gap_report

    gaps = gap_report(bars)
    kind = bars.attrs["calendar"]["kind"]
    text = f"gaps:      {len(gaps)} runs, {sum(g.missing for g in gaps)} bars missing"
    if kind != "24/7":
        singles = sum(1 for g in gaps if g.missing == 1)
        text += f" against the {kind} calendar (weekends are not gaps)"
        if kind == "business" and singles:
            text += f"; {singles} are single weekdays (exchange holidays count as gaps)"
    lines = [text]
    shown = gaps if max_gaps < 0 else gaps[:max_gaps]
    lines += [f"  {gap}" for gap in shown]
    if len(shown) < len(gaps):
        lines.append(f"  ... {len(gaps) - len(shown)} more (--max-gaps -1 lists all)")
    return lines


def anomaly_lines(quality: dict[str, Any]) -> list[str]:
    """The anomaly table of a quality report: count, action and policy per kind."""
    found = sum(item["count"] for item in quality["anomalies"].values())
    lines = [f"anomalies: {found} found"]
    for kind, item in quality["anomalies"].items():
        name = kind.replace("_", " ")
        text = f"  {name:<22} {item['count']:>6}  policy {item['policy']}"
        if item["count"]:
            text += (
                f", {item['rows_affected']} {item['action']}; first row {item['first_row']} "
                f"({item['first_timestamp']})"
            )
        lines.append(text)
        flagged = item.get("flagged") or []
        if flagged:
            more = f" ... {len(flagged) - _FLAGGED_SHOWN} more" if len(flagged) > 5 else ""
            lines.append(f"    flagged: {', '.join(flagged[:_FLAGGED_SHOWN])}{more}")
    if quality.get("volume_reported") is False:
        lines.append("  (the file reports no volume: every bar has volume 0)")
    return lines
