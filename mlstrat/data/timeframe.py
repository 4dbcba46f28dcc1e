"""Timeframes: parse bar-size strings, infer them from data, and place bars in periods.

A timeframe is kept as a canonical pandas offset alias string. Fixed durations are
written in the largest whole unit ("60min" -> "1h", "24h" -> "1D"); calendar periods
are "W-MON" (weeks opening Monday 00:00 UTC, as exchanges open weekly candles) or
"MS" (calendar months labelled by their first day). Exchange spellings are accepted:
"1m" is one minute and "1M" one month, as on Binance, not pandas' month end.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


# ---------------------------------------------------------------- trading calendars

CALENDAR_KINDS = ("24/7", "business", "session")
_DAY_NS = _NS["D"]
_WEEKEND_SHARE = 0.005  # stray weekend bars tolerated in weekday-only data
_REGULAR_SLOT = 0.2  # a time of day is in the session if bars open there on >= 20% of days
_FULL_DAY = 0.9  # weekday data with bars in >= 90% of a day's slots trades around the clock


@dataclass(frozen=True)
class Calendar:
    """When bars are expected: every day ("24/7"), on weekdays ("business") or on weekdays
    within the file's own trading hours ("session"), judged in local time `zone`.

    `session` holds runs of bar open times ("HH:MM", inclusive) of a session day, e.g.
    (("09:05", "17:30"),) for 5-minute bars of an exchange open 09:00-17:30.
    """

    kind: str = "24/7"
    zone: str = "UTC"
    session: tuple[tuple[str, str], ...] = ()
    inferred: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Small JSON form (kept in bars.attrs["calendar"])."""
        out: dict[str, Any] = {"kind": self.kind, "zone": self.zone, "inferred": self.inferred}
        if self.session:
            out["session"] = [list(run) for run in self.session]
        return out

    @classmethod
    def from_value(cls, value: Calendar | Mapping[str, Any] | str | None) -> Calendar:
        """A Calendar from itself, its dict form or a bare kind ("24/7", "business")."""
        if isinstance(value, Calendar):
            return value
        if value is None:
            return cls()
        if isinstance(value, str):
            return cls(kind=value, inferred=False)
        session = tuple(tuple(run) for run in value.get("session") or ())
        return cls(
            value.get("kind", "24/7"),
            value.get("zone", "UTC"),
            session,
            value.get("inferred", True),
        )

    def describe(self) -> str:
        """Text for `data inspect`, e.g. "business (weekdays, all day, UTC; inferred" (open:
        the caller closes the parenthesis after adding its own note)."""
        how = "inferred" if self.inferred else "given"
        if self.kind == "24/7":
            return f"24/7 (every day; {how}"
        if self.kind == "business":
            return f"business (weekdays, all day, {self.zone}; {how}"
        runs = ", ".join(f"{a}-{b}" if a != b else a for a, b in self.session)
        return f"session (weekdays, bars opening {runs} {self.zone}; {how}"


def _local(index: pd.DatetimeIndex, zone: str) -> pd.DatetimeIndex:
    return index.tz_convert(zone) if index.tz is not None else index.tz_localize(zone)


def _minutes(local: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(local.hour * 60 + local.minute, dtype="int64")


def _runs(minutes: np.ndarray, step_min: int) -> tuple[tuple[str, str], ...]:
    """Consecutive slots (step apart) as ("HH:MM", "HH:MM") runs."""
    if minutes.size == 0:
        return ()
    cuts = np.flatnonzero(np.diff(minutes) != step_min) + 1
    text = [f"{m // 60:02d}:{m % 60:02d}" for m in minutes]
    starts, ends = np.r_[0, cuts], np.r_[cuts - 1, minutes.size - 1]
    return tuple((text[a], text[b]) for a, b in zip(starts, ends, strict=True))


def infer_calendar(
    index: pd.DatetimeIndex, timeframe: str | None, zone: str | None = None
) -> Calendar:
    """The calendar the bars follow: 24/7 if weekends hold bars, else business or session.

    Data that does not span a whole weekend is taken as 24/7 (no evidence otherwise).
    Daily bars on weekdays only are "business". Intraday bars on weekdays only are
    "business" when they fill (nearly) every slot of the day, else "session" with the
    times of day where bars open on at least a fifth of the trading days. `zone` is the
    local zone the file was recorded in (its `tz`), UTC by default.
    """
    zone = zone or "UTC"
    step = fixed_nanos(timeframe) if timeframe else None
    if step is None or len(index) < 2 or step > _DAY_NS:
        return Calendar("24/7", zone)
    local = _local(index, zone)
    weekend = np.asarray(local.day_of_week >= 5)
    if weekend.mean() > _WEEKEND_SHARE or not _spans_a_weekend(local):
        return Calendar("24/7", zone)
    if step == _DAY_NS or _DAY_NS % step != 0:
        return Calendar("business", zone)
    regular = _regular_slots(local)
    if regular.size >= _FULL_DAY * (_DAY_NS // step):
        return Calendar("business", zone)
    return Calendar("session", zone, _runs(regular, int(step // 60_000_000_000)))


def _spans_a_weekend(local: pd.DatetimeIndex) -> bool:
    """Whether a whole Saturday and Sunday lie between the first and last bar: only then
    does the absence of weekend bars say anything about the market's calendar."""
    first, last = local[0].normalize(), local[-1].normalize()
    saturday = first + pd.Timedelta(days=(5 - first.day_of_week) % 7)
    return saturday + pd.Timedelta(days=2) <= last + pd.Timedelta(days=1)


def _regular_slots(local: pd.DatetimeIndex) -> np.ndarray:
    """Minutes of the day where bars open on at least a fifth of the days with bars."""
    minutes = _minutes(local)
    n_days = np.unique(np.asarray(local.normalize().asi8)).size
    slots, counts = np.unique(minutes, return_counts=True)
    return slots[counts >= _REGULAR_SLOT * n_days]


def session_calendar(
    index: pd.DatetimeIndex, timeframe: str | None, zone: str | None = None
) -> Calendar:
    """A "session" calendar (chosen, not inferred) with the trading hours found in the bars."""
    zone = zone or "UTC"
    step = fixed_nanos(timeframe) if timeframe else None
    if step is None or step >= _DAY_NS or len(index) < 2:
        return Calendar("business", zone, inferred=False)
    regular = _regular_slots(_local(index, zone))
    return Calendar("session", zone, _runs(regular, int(step // 60_000_000_000)), inferred=False)


def _session_minutes(calendar: Calendar, step_min: int) -> np.ndarray:
    out = []
    for start, end in calendar.session:
        a = int(start[:2]) * 60 + int(start[3:])
        b = int(end[:2]) * 60 + int(end[3:])
        out.append(np.arange(a, b + 1, step_min))
    return np.concatenate(out) if out else np.arange(0, 1440, step_min)


def expected_times(index: pd.DatetimeIndex, timeframe: str, calendar: Calendar) -> pd.DatetimeIndex:
    """Bar open times the calendar expects between the first and last bar (UTC)."""
    step = fixed_nanos(timeframe)
    first, last = index[0], index[-1]
    if step == _DAY_NS:
        # Daily bars keep their local time of day; the expected days are local weekdays.
        local = _local(index, calendar.zone)
        offset = local[0] - local[0].normalize()
        days = pd.date_range(local[0].normalize(), local[-1].normalize(), freq="D")
        days = days[np.asarray(days.day_of_week < 5)] + offset
        return days.tz_convert("UTC").as_unit("ns")
    grid = pd.date_range(first, last, freq=pd.Timedelta(step, unit="ns")).as_unit("ns")
    local = _local(grid, calendar.zone)
    keep = np.asarray(local.day_of_week < 5)
    if calendar.kind == "session":
        allowed = _session_minutes(calendar, int(step // 60_000_000_000))
        keep &= np.isin(_minutes(local), allowed)
    return grid[keep]


def calendar_gaps(
    index: pd.DatetimeIndex, timeframe: str, calendar: Calendar
) -> list[tuple[pd.Timestamp, pd.Timestamp, int]]:
    """Runs of expected bars that are absent: (first missing, where data resumes, count)."""
    if len(index) < 2 or fixed_nanos(timeframe) is None:
        return []
    expected = expected_times(index, timeframe, calendar)
    absent = ~expected.isin(index)
    edges = np.diff(np.r_[0, absent.astype("int8"), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = []
    for a, b in zip(starts, stops, strict=True):
        resume = expected[b] if b < len(expected) else index[-1]
        out.append((expected[a], resume, int(b - a)))
    return out
