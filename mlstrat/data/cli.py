"""`mlstrat data inspect FILE`: load a candle file, validate it and print a summary."""

from __future__ import annotations

import argparse

from mlstrat.data.readers import FORMATS
from mlstrat.data.validate import DUPLICATE_POLICIES


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `mlstrat data ...` on the top-level subparsers."""
    data = sub.add_parser("data", help="inspect and check market data files")
    commands = data.add_subparsers(dest="data_command", required=True)
    inspect = commands.add_parser(
        "inspect",
        help="load a candle file, validate it, print rows, range, timeframe and gaps",
    )
    inspect.add_argument("file", help="Parquet, Feather, freqtrade JSON or CSV candle file")
    inspect.add_argument("--symbol", help="symbol to record (default: from file content or name)")
    inspect.add_argument("--timeframe", help='bar size, e.g. "1h" (default: modal bar spacing)')
    inspect.add_argument("--tz", help='zone of zone-less timestamps, e.g. "UTC"')
    inspect.add_argument(
        "--on-duplicate", choices=DUPLICATE_POLICIES, default="error", dest="on_duplicate"
    )
    inspect.add_argument("--fmt", choices=("auto", *FORMATS), default="auto")
    inspect.add_argument("--sort", action="store_true", help="sort out-of-order rows by time")
    inspect.add_argument(
        "--max-gaps", type=int, default=10, help="gaps to list (default 10; -1 lists all)"
    )
    inspect.set_defaults(func=inspect_command)


def inspect_command(args: argparse.Namespace) -> int:
    """Print the file's summary and gap report; errors propagate as DataError."""
    from mlstrat.data import detect_format, file_sha256, gap_report, load_bars

    bars = load_bars(
        args.file,
        symbol=args.symbol,
        timeframe=args.timeframe,
        fmt=args.fmt,
        on_duplicate=args.on_duplicate,
        tz=args.tz,
        sort=args.sort,
    )
    fmt = args.fmt if args.fmt != "auto" else detect_format(args.file)
    gaps = gap_report(bars)
    lines = [
        f"file:      {args.file}",
        f"format:    {fmt}",
        f"sha256:    {file_sha256(args.file)}",
        f"symbol:    {bars.attrs.get('symbol')}",
        f"timeframe: {bars.attrs.get('timeframe')}",
        f"rows:      {len(bars)}",
        f"first:     {bars.index[0].isoformat()}",
        f"last:      {bars.index[-1].isoformat()}",
        f"gaps:      {len(gaps)} runs, {sum(g.missing for g in gaps)} bars missing",
    ]
    shown = gaps if args.max_gaps < 0 else gaps[: args.max_gaps]
    lines += [f"  {gap}" for gap in shown]
    if len(shown) < len(gaps):
        lines.append(f"  ... {len(gaps) - len(shown)} more (--max-gaps -1 lists all)")
    print("\n".join(lines))
    return 0
