"""Timeframes: parse bar-size strings, infer them from data, and place bars in periods.

A timeframe is kept as a canonical pandas offset alias string. Fixed durations are
written in the largest whole unit ("60min" -> "1h", "24h" -> "1D"); calendar periods
are "W-MON" (weeks opening Monday 00:00 UTC, as exchanges open weekly candles) or
"MS" (calendar months labelled by their first day). Exchange spellings are accepted:
"1m" is one minute and "1M" one month, as on Binance, not pandas' month end.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from mlstrat.errors import ConfigError

_NS = {
    "D": 86_400_000_000_000,
    "h": 3_600_000_000_000,
    "min": 60_000_000_000,
    "s": 1_000_000_000,
    "ms": 1_000_000,
    "us": 1_000,
}
_FIXED_UNITS = {
    "s": "s",
    "sec": "s",
    "m": "min",
    "min": "min",
    "t": "min",
    "h": "h",
    "d": "D",
    "ms": "ms",
    "us": "us",
}
_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_ALLOWED = '"1min", "5min", "15min", "1h", "4h", "1D" (any whole multiple), "1w"/"W-MON", "1M"/"MS"'


def alias_from_nanos(nanos: int) -> str:
    """Canonical alias of a fixed duration, in the largest unit that divides it."""
    if nanos <= 0:
        raise ConfigError(f"timeframe must be positive, got {nanos} ns")
    for unit, size in _NS.items():
        if nanos % size == 0:
            return f"{nanos // size}{unit}"
    return f"{nanos}ns"


def normalize_timeframe(timeframe: str) -> str:
    """Return the canonical alias of `timeframe`, or raise ConfigError naming the accepted forms."""
    text = str(timeframe).strip()
    match = re.fullmatch(r"(\d*)\s*([A-Za-z]+)", text)
    if match:
        count = int(match.group(1) or 1)
        unit = match.group(2)
        if unit in ("M", "MS", "mo", "month", "MONTH"):
            if count != 1:
                raise ConfigError(
                    f"timeframe {text!r}: only single months are supported", fix="use '1M'"
                )
            return "MS"
        if unit.lower() in ("w", "week"):
            if count != 1:
                raise ConfigError(
                    f"timeframe {text!r}: only single weeks are supported", fix="use '1w'"
                )
            return "W-MON"
        fixed = _FIXED_UNITS.get(unit.lower())
        if fixed is not None and count > 0:
            return alias_from_nanos(count * _NS[fixed])
    week = re.fullmatch(r"W-(MON|TUE|WED|THU|FRI|SAT|SUN)", text.upper())
    if week:
        return f"W-{week.group(1)}"
    try:
        offset = to_offset(text)
    except ValueError:
        offset = None
    if isinstance(offset, pd.offsets.Tick):
        return alias_from_nanos(int(offset.nanos))
    raise ConfigError(f"unsupported timeframe {text!r}", fix=f"use one of {_ALLOWED}")


def fixed_nanos(timeframe: str) -> int | None:
    """Length in nanoseconds of a fixed-duration canonical timeframe; None for weeks/months."""
    alias = normalize_timeframe(timeframe)
    match = re.fullmatch(r"(\d+)(D|h|min|s|ms|us|ns)", alias)
    if not match:
        return None
    unit = match.group(2)
    return int(match.group(1)) * (1 if unit == "ns" else _NS[unit])


def infer_timeframe(index: pd.DatetimeIndex) -> str | None:
    """Modal spacing of a sorted index as a canonical alias; None with fewer than two bars."""
    if len(index) < 2:
        return None
    steps = np.diff(index.as_unit("ns").asi8)
    steps = steps[steps > 0]
    if steps.size == 0:
        return None
    values, counts = np.unique(steps, return_counts=True)
    # Ties go to the shortest spacing: with as many 1h as 2h steps the bars are 1h bars.
    return alias_from_nanos(int(values[np.argmax(counts)]))


def period_start(index: pd.DatetimeIndex, timeframe: str) -> pd.DatetimeIndex:
    """Open time of the period of `timeframe` that contains each timestamp (UTC index).

    Fixed durations are aligned to the Unix epoch (1D periods start at UTC midnight,
    4h periods at 00:00, 04:00, ...), so the bins never depend on where the data starts.
    """
    alias = normalize_timeframe(timeframe)
    utc = index.tz_convert("UTC").as_unit("ns")
    step = fixed_nanos(alias)
    if step is not None:
        i8 = utc.asi8
        return pd.DatetimeIndex((i8 // step) * step, tz="UTC").as_unit("ns")
    midnight = utc.normalize()
    if alias == "MS":
        return (midnight - pd.to_timedelta(utc.day - 1, unit="D")).as_unit("ns")
    first_day = _WEEKDAYS.index(alias.split("-")[1])
    back = (utc.day_of_week - first_day) % 7
    return (midnight - pd.to_timedelta(back, unit="D")).as_unit("ns")


def period_end(starts: pd.DatetimeIndex, timeframe: str) -> pd.DatetimeIndex:
    """Close time (exclusive) of the periods opening at `starts`."""
    alias = normalize_timeframe(timeframe)
    step = fixed_nanos(alias)
    if step is not None:
        return (starts + pd.Timedelta(step, unit="ns")).as_unit("ns")
    if alias == "MS":
        return (starts + pd.offsets.MonthBegin(1)).as_unit("ns")
    return (starts + pd.Timedelta(days=7)).as_unit("ns")
