"""Aggregate Bars to longer timeframes, report gaps, and align closed higher-timeframe bars.

Periods are left-closed and labelled by their open time, as exchanges label candles:
the 4h bar labelled 04:00 aggregates the 1h bars opening 04:00, 05:00, 06:00 and 07:00
and closes at 08:00. Fixed-length periods are aligned to the Unix epoch (so 1D periods
start at UTC midnight whatever the first bar is); "1w" periods open Monday 00:00 UTC and
"1M" periods on the first day of the month.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.data.timeframe import (
    Calendar,
    calendar_gaps,
    fixed_nanos,
    infer_timeframe,
    normalize_timeframe,
    period_end,
    period_start,
)
from mlstrat.errors import ConfigError, DataError


@dataclass(frozen=True)
class Gap:
    """A run of missing bars: `start` is the first missing open time, `end` the open time
    where data resumes (exclusive), `missing` the number of whole bars absent."""

    start: pd.Timestamp
    end: pd.Timestamp
    missing: int

    def __str__(self) -> str:
        bars = "bar" if self.missing == 1 else "bars"
        return f"{self.start.isoformat()} .. {self.end.isoformat()} ({self.missing} {bars} missing)"


def _bars_timeframe(bars: pd.DataFrame, timeframe: str | None = None) -> str | None:
    timeframe = timeframe or bars.attrs.get("timeframe") or infer_timeframe(bars.index)
    return None if timeframe is None else normalize_timeframe(timeframe)


def _require_timeframe(bars: pd.DataFrame, what: str) -> str:
    timeframe = _bars_timeframe(bars)
    if timeframe is None:
        raise DataError(
            f"{what} needs the bars' timeframe, which is unknown (fewer than two bars)",
            fix='set bars.attrs["timeframe"], e.g. "1h"',
        )
    return timeframe


def _check_rule(source: str, rule: str) -> str:
    target = normalize_timeframe(rule)
    src, dst = fixed_nanos(source), fixed_nanos(target)
    if src is None:
        raise ConfigError(
            f"cannot split {source} bars into {target} periods",
            fix="resample from fixed-length bars (minutes, hours, days)",
        )
    # Calendar periods (weeks, months) start at midnight, so day-dividing bars fit them.
    length = dst if dst is not None else 86_400_000_000_000
    if length % src != 0:
        raise ConfigError(
            f"rule {target} is not a whole multiple of the bars' timeframe {source}",
            fix=f"use a multiple of {source}",
        )
    return target


def resample(bars: pd.DataFrame, rule: str, *, complete_only: bool = False) -> pd.DataFrame:
    """Aggregate `bars` into `rule` periods: open first, high max, low min, close last,
    volume sum.

    Each output bar is labelled by its period's open time (left-closed, left-labelled).
    Periods with no source bars are dropped, never filled. With the default
    `complete_only=False` a period keeps whatever bars it has (an exchange outage, or the
    unfinished last period, gives a partial bar); `complete_only=True` keeps only periods
    that hold every source bar. Returns Bars with attrs symbol and timeframe=`rule`
    (canonical alias).
    """
    source = _require_timeframe(bars, "resample")
    target = _check_rule(source, rule)
    starts = period_start(bars.index, target)
    grouped = bars.groupby(starts, sort=False)
    out = pd.DataFrame(
        {
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(),
        }
    )
    if complete_only:
        counts = grouped["close"].size()
        ends = period_end(pd.DatetimeIndex(out.index), target)
        expected = (ends - out.index).asi8 // fixed_nanos(source)
        out = out[counts.to_numpy() == expected]
    out.index = pd.DatetimeIndex(out.index, name="timestamp").as_unit("ns")
    out = out.astype("float64")
    out.attrs = {"symbol": bars.attrs.get("symbol"), "timeframe": target}
    return out


def gap_report(bars: pd.DataFrame, timeframe: str | None = None, calendar: Any = None) -> list[Gap]:
    """Runs of missing bars between the first and last bar, given the timeframe
    (argument, else `bars.attrs["timeframe"]`, else the modal spacing).

    Bars are expected by `calendar` (argument, else `bars.attrs["calendar"]` set by
    `load_bars`, else 24/7): "business" and "session" calendars do not count weekends
    (and, for sessions, nights) as gaps. Nothing is filled.
    """
    timeframe = _bars_timeframe(bars, timeframe)
    if timeframe is None or len(bars) < 2:
        return []
    cal = Calendar.from_value(calendar if calendar is not None else bars.attrs.get("calendar"))
    if cal.kind != "24/7" and fixed_nanos(timeframe) is not None:
        return [Gap(*run) for run in calendar_gaps(bars.index.as_unit("ns"), timeframe, cal)]
    index = bars.index.as_unit("ns")
    step = fixed_nanos(timeframe)
    if step is None:
        grid = pd.date_range(index[0], index[-1], freq=timeframe).as_unit("ns")
        absent = ~grid.isin(index)
        edges = np.diff(np.r_[0, absent.astype("int8"), 0])
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        return [Gap(grid[a], grid[b], int(b - a)) for a, b in zip(starts, stops, strict=True)]
    i8 = index.asi8
    steps = np.diff(i8)
    missing = steps // step - 1
    where = np.flatnonzero(missing > 0)
    return [
        Gap(
            pd.Timestamp(i8[p] + step, tz="UTC"),
            pd.Timestamp(i8[p] + step * (int(missing[p]) + 1), tz="UTC"),
            int(missing[p]),
        )
        for p in where
    ]


def align_closed(
    frame: pd.DataFrame | pd.Series,
    index: pd.DatetimeIndex,
    *,
    rule: str,
    timeframe: str,
) -> pd.DataFrame | pd.Series:
    """Map rows of `frame` (indexed by `rule` period open times) onto bar times `index`.

    Row t of the result is the last period of `frame` whose close time is at or before the
    END of bar t (t + `timeframe`), i.e. a period that has fully closed once bar t has;
    NaN where no period has closed yet. Use it to attach anything computed on resampled
    bars (e.g. a 4h RSI) to the base bars without look-ahead.
    """
    rule = normalize_timeframe(rule)
    step = fixed_nanos(normalize_timeframe(timeframe))
    if step is None:
        raise ConfigError(f"base timeframe {timeframe} is not a fixed length", fix="use e.g. '1h'")
    labels = pd.DatetimeIndex(frame.index).tz_convert("UTC").as_unit("ns")
    if not labels.is_monotonic_increasing:
        raise DataError("higher-timeframe frame is not sorted by time", fix="sort it first")
    closes = period_end(labels, rule).asi8
    bar_ends = pd.DatetimeIndex(index).tz_convert("UTC").as_unit("ns").asi8 + step
    pos = np.searchsorted(closes, bar_ends, side="right") - 1
    valid = pos >= 0
    take = np.where(valid, pos, 0)
    if isinstance(frame, pd.Series):
        values = frame.to_numpy(dtype="float64", na_value=np.nan)[take] if len(frame) else None
        data = np.full(len(index), np.nan) if values is None else np.where(valid, values, np.nan)
        return pd.Series(data, index=index, name=frame.name)
    columns = {}
    for name in frame.columns:
        column = frame[name].to_numpy(dtype="float64", na_value=np.nan)
        picked = column[take] if len(column) else np.full(len(index), np.nan)
        columns[name] = np.where(valid, picked, np.nan)
    return pd.DataFrame(columns, index=index, columns=frame.columns)


def closed_higher_timeframe(
    bars: pd.DataFrame, rule: str, *, complete_only: bool = False
) -> pd.DataFrame:
    """OHLCV of the most recent `rule` bar that has fully closed by the end of each bar.

    Indexed like `bars`. Bar t covers [t, t + timeframe); the `rule` period [p, p + rule)
    is visible at t when p + rule <= t + timeframe. With 1h bars and rule "4h", the 03:00
    bar (ending 04:00) sees the 00:00 4h bar; the 02:00 bar still sees the previous one.
    Rows before the first closed period are NaN. `complete_only` is passed to `resample`.
    """
    timeframe = _require_timeframe(bars, "closed_higher_timeframe")
    higher = resample(bars, rule, complete_only=complete_only)
    return align_closed(higher, bars.index, rule=rule, timeframe=timeframe)
