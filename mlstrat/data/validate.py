"""Check a table of candles against the Bars contract and return it in canonical form.

Bars: index `timestamp` (datetime64[ns, UTC], strictly increasing, unique); columns
exactly open, high, low, close, volume as float64, all finite, prices > 0,
low <= min(open, close) <= max(open, close) <= high, volume >= 0; attrs `symbol`,
`timeframe`, `calendar` (see `mlstrat.data.timeframe.Calendar`) and `quality` (see
`mlstrat.data.quality`). A contract violation is a DataError naming the file, the first
offending data row (0-based, header lines not counted) and timestamp, the column and
the fix. Suspect but possible bars (duplicates, placeholders, spikes, an incomplete
last bar, zero volume) are handled by the policy of their kind (`DataOptions`) and
counted. All checks are vectorised; gaps are not violations (see `gap_report`).
"""

from __future__ import annotations

from os import PathLike
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.data import quality as q
from mlstrat.data.options import DUPLICATE_POLICIES, DataOptions
from mlstrat.data.timeframe import (
    Calendar,
    alias_from_nanos,
    fixed_nanos,
    infer_calendar,
    infer_timeframe,
    normalize_timeframe,
    session_calendar,
)
from mlstrat.errors import DataError, Fix, Setting, option_fix

__all__ = ["DUPLICATE_POLICIES", "OHLCV", "PRICES", "validate_bars"]

OHLCV = ("open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")
_REPAIR = "repair or remove this row in the source data"


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None or pd.isna(ts) else ts.isoformat()


class _Located:
    """File name and original row numbers, so errors point into the source file."""

    def __init__(self, file: str | PathLike | None, rows: np.ndarray, index: pd.DatetimeIndex):
        self.file = None if file is None else str(file)
        self.rows = rows
        self.index = index

    def stamp(self, pos: int) -> str | None:
        if self.index is None or pd.isna(self.index[pos]):
            return None
        return _iso(self.index[pos])

    def stamps(self, positions: np.ndarray) -> list[str]:
        return [self.index[int(p)].isoformat() for p in positions]

    def error(self, problem: str, pos: int | None, column: str | None, fix: str | Fix) -> DataError:
        row = None if pos is None else int(self.rows[pos])
        ts = None if pos is None else self.stamp(pos)
        return DataError(problem, file=self.file, row=row, timestamp=ts, column=column, fix=fix)


def _timestamps(df: pd.DataFrame, file: str | None) -> pd.DatetimeIndex:
    if isinstance(df.index, pd.DatetimeIndex):
        return df.index
    for name in df.columns:
        if str(name).lower() == "timestamp":
            values = df[name]
            if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(
                values.dtype
            ):
                return pd.DatetimeIndex(values)
            raise DataError(
                f"column holds {values.dtype} values, not datetimes",
                file=file,
                column=str(name),
                fix="parse it first (pd.to_datetime) or load the file with mlstrat.data.load_bars",
            )
    raise DataError(
        "no timestamps: the table has neither a DatetimeIndex nor a 'timestamp' column",
        file=file,
        column="timestamp",
        fix="set a DatetimeIndex or add a 'timestamp' column",
    )


def _float_column(values: pd.Series, name: str, where: _Located) -> np.ndarray:
    numeric = pd.to_numeric(values, errors="coerce")
    out = numeric.to_numpy(dtype="float64", na_value=np.nan)
    bad = _first(np.isnan(out) & values.notna().to_numpy())
    if bad is not None:
        raise where.error(f"value {values.iloc[bad]!r} is not a number", bad, name, _REPAIR)
    return out


class _Table:
    """Index, file rows and OHLCV arrays, kept aligned while rows are sorted or removed."""

    def __init__(
        self, index: pd.DatetimeIndex, rows: np.ndarray, values: dict[str, np.ndarray], file: Any
    ):
        self.index, self.rows, self.values, self.file = index, rows, values, file
        self.where = _Located(file, rows, index)

    def take(self, keep: np.ndarray) -> None:
        self.index, self.rows = self.index[keep], self.rows[keep]
        self.values = {k: v[keep] for k, v in self.values.items()}
        self.where = _Located(self.file, self.rows, self.index)


def validate_bars(
    df: pd.DataFrame,
    *,
    file: str | PathLike | None = None,
    row_numbers: np.ndarray | None = None,
    quality: q.QualityReport | None = None,
    zone: str | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Return `df` as canonical Bars, or raise DataError at the first violation.

    `df` is indexed by a DatetimeIndex (or has a `timestamp` column) and has OHLCV
    columns in any letter case; other columns are dropped. Timestamps must carry a
    time zone (converted to UTC). `options` are data options (`DataOptions`: symbol,
    timeframe, sort, calendar and the `on_*` anomaly policies; reading options such as
    fmt are ignored here). Unsorted rows are an error unless `sort=True`; among rows
    sharing a timestamp, `keep_first` / `keep_last` go by position in the source file.
    `timeframe` defaults to `df.attrs["timeframe"]`, else the modal bar spacing; a given
    timeframe longer than some bar spacing is an error. `symbol` defaults to
    `df.attrs["symbol"]`. `row_numbers` maps rows to the source file's data rows for
    messages (default 0..n-1); `quality` holds what a reader already found; `zone` is
    the local zone calendars are judged in (default UTC).
    """
    opts = DataOptions.from_kwargs(options)
    return check_bars(df, opts, file=file, row_numbers=row_numbers, quality=quality, zone=zone)


def check_bars(
    df: pd.DataFrame,
    opts: DataOptions,
    *,
    file: str | PathLike | None = None,
    row_numbers: np.ndarray | None = None,
    quality: q.QualityReport | None = None,
    zone: str | None = None,
) -> pd.DataFrame:
    """`validate_bars` with the options already checked (what `load_bars` calls)."""
    file = None if file is None else str(file)
    symbol = df.attrs.get("symbol") if opts.symbol is None else opts.symbol
    timeframe = df.attrs.get("timeframe") if opts.timeframe is None else opts.timeframe
    report = quality or q.QualityReport(opts.policies(), file)
    if report.rows_read is None:
        report.rows_read = len(df)
    if len(df) == 0:
        raise DataError(
            "no data rows", file=file, fix="check that the file holds candles below its header"
        )
    table = _canonical(df, file, row_numbers)
    _order(table, opts)
    _duplicates(table, opts, report)
    _check_values(table.values, table.where)
    index = pd.DatetimeIndex(table.index, name="timestamp")
    table.index = index
    timeframe = _check_timeframe(index, timeframe, table.where)
    _anomalies(table, report)
    index = pd.DatetimeIndex(table.index, name="timestamp")
    calendar = _calendar(index, timeframe, opts.calendar, zone)

    bars = pd.DataFrame(table.values, index=index, columns=list(OHLCV))
    report.rows_kept = len(bars)
    bars.attrs["symbol"] = symbol
    bars.attrs["timeframe"] = timeframe
    bars.attrs["calendar"] = calendar.to_dict()
    bars.attrs["quality"] = report.to_dict()
    report.warn()
    return bars


def _canonical(df: pd.DataFrame, file: str | None, row_numbers: np.ndarray | None) -> _Table:
    """UTC index and float64 OHLCV arrays, or the first missing/unparsable item as an error."""
    index = _timestamps(df, file)
    rows = np.arange(len(df)) if row_numbers is None else np.asarray(row_numbers)
    where = _Located(file, rows, index)
    lower = {str(c).lower(): c for c in df.columns}
    for name in OHLCV:
        if name not in lower:
            raise DataError(
                "required column is missing",
                file=file,
                column=name,
                fix=f"provide columns {', '.join(OHLCV)} (any letter case); found {list(map(str, df.columns))}",
            )
    missing_ts = _first(np.asarray(index.isna()))
    if missing_ts is not None:
        raise where.error(
            "timestamp is missing or could not be parsed",
            missing_ts,
            "timestamp",
            "use ISO 8601 timestamps such as 2024-01-31 13:00:00+00:00",
        )
    if index.tz is None:
        raise where.error(
            "timestamps have no time zone",
            0,
            "timestamp",
            option_fix(
                "tz",
                "UTC",
                note=" (or the zone the times were recorded in, e.g. America/New_York)",
            ),
        )
    index = index.tz_convert("UTC").as_unit("ns")
    where.index = index
    values = {name: _float_column(df[lower[name]], name, where) for name in OHLCV}
    return _Table(index, rows, values, file)


def _order(table: _Table, opts: DataOptions) -> None:
    """Refuse out-of-order rows, or sort them (stable, so file order survives among ties)."""
    steps = np.diff(table.index.asi8)
    back = _first(steps < 0)
    if back is None:
        return
    if not opts.sort:
        newest_first = bool(np.all(steps <= 0))
        problem = (
            "timestamps are in descending order (newest first)"
            if newest_first
            else f"timestamp is earlier than the row before ({_iso(table.index[back])})"
        )
        fix = option_fix("sort", True, note=" to sort rows by time")
        raise table.where.error(problem, back + 1, "timestamp", fix)
    table.take(np.argsort(table.index.asi8, kind="stable"))


def _row_values(values: dict[str, np.ndarray], pos: int) -> str:
    return ", ".join(f"{k}={float(values[k][pos])!r}" for k in OHLCV)


def _duplicates(table: _Table, opts: DataOptions, report: q.QualityReport) -> None:
    """Resolve rows sharing a timestamp: exact repeats and conflicting rows, by file order."""
    same = np.diff(table.index.asi8) == 0
    if not same.any():
        return
    group = np.cumsum(np.r_[True, ~same])  # group id per row, equal timestamps share one
    starts = np.flatnonzero(np.r_[True, ~same])
    stacked = np.column_stack([table.values[k] for k in OHLCV])
    leader = stacked[starts[group - 1]]
    differs = ~((stacked == leader) | (np.isnan(stacked) & np.isnan(leader))).all(axis=1)
    conflicting = np.zeros(group[-1] + 1, dtype=bool)
    np.logical_or.at(conflicting, group, differs)
    sizes = np.bincount(group)
    in_dup = sizes[group] > 1
    # Within each group, the row that comes first (and last) in the FILE.
    order = np.lexsort((table.rows, group))
    first_in_file = np.zeros(len(group), dtype=bool)
    last_in_file = np.zeros(len(group), dtype=bool)
    ordered_groups = group[order]
    first_in_file[order[np.r_[True, ordered_groups[1:] != ordered_groups[:-1]]]] = True
    last_in_file[order[np.r_[ordered_groups[1:] != ordered_groups[:-1], True]]] = True

    exact_rows = in_dup & ~conflicting[group]
    conflict_rows = in_dup & conflicting[group]
    keep = np.ones(len(group), dtype=bool)
    if exact_rows.any():
        repeats = exact_rows & ~first_in_file
        if opts.on_exact_duplicate == "error":
            pos = int(np.flatnonzero(repeats)[0])
            raise table.where.error(
                f"duplicate timestamp: row {int(table.rows[pos])} repeats an earlier row exactly "
                f"({_row_values(table.values, pos)})",
                pos,
                "timestamp",
                option_fix("on_exact_duplicate", "drop", note=" to keep one copy"),
            )
        keep &= ~repeats
        _record(report, "exact_duplicate", table, repeats)
    if conflict_rows.any():
        policy = opts.on_duplicate
        if policy == "error":
            raise _conflict_error(table, conflict_rows & ~first_in_file, first_in_file, group)
        if policy == "drop_all":
            removed = conflict_rows
        else:
            chosen = first_in_file if policy == "keep_first" else last_in_file
            removed = conflict_rows & ~chosen
        extra = conflict_rows & ~first_in_file  # one count per surplus row (a pair counts once)
        keep &= ~removed
        _record(report, "conflicting_duplicate", table, extra, affected=int(removed.sum()))
    table.take(keep)


def _conflict_error(
    table: _Table, later: np.ndarray, first_in_file: np.ndarray, group: np.ndarray
) -> DataError:
    pos = int(np.flatnonzero(later)[0])
    earlier = int(np.flatnonzero(first_in_file & (group == group[pos]))[0])
    columns = [k for k in OHLCV if table.values[k][pos] != table.values[k][earlier]]
    n = int(later.sum())
    problem = (
        f"conflicting duplicate timestamp: row {int(table.rows[pos])} "
        f"({_row_values(table.values, pos)}) differs from row {int(table.rows[earlier])} "
        f"({_row_values(table.values, earlier)}) in {', '.join(columns)}"
        f"; {n} such {'row' if n == 1 else 'rows'} in the file"
    )
    fix = option_fix("on_duplicate", "keep_last", "keep_first", note=" (file order)")
    return table.where.error(problem, pos, "timestamp", fix)


def _record(
    report: q.QualityReport,
    kind: str,
    table: _Table,
    mask: np.ndarray,
    affected: int | None = None,
) -> None:
    positions = np.flatnonzero(mask)
    report.record(kind, table.rows[positions], table.where.stamps(positions), affected)


def _check_values(values: dict[str, np.ndarray], where: _Located) -> None:
    for name in OHLCV:
        pos = _first(~np.isfinite(values[name]))
        if pos is not None:
            what = "NaN" if np.isnan(values[name][pos]) else "infinite"
            raise where.error(f"{what} value", pos, name, _REPAIR)
    for name in PRICES:
        pos = _first(values[name] <= 0)
        if pos is not None:
            raise where.error(
                f"price {float(values[name][pos])!r} is not positive", pos, name, _REPAIR
            )
    o, h, lo, c = (values[n] for n in PRICES)
    checks = (
        (h < lo, "high", "high is below low"),
        (lo > np.minimum(o, c), "low", "low is above min(open, close)"),
        (h < np.maximum(o, c), "high", "high is below max(open, close)"),
    )
    found = [(p, col, text) for mask, col, text in checks if (p := _first(mask)) is not None]
    if found:
        pos, column, text = min(found, key=lambda item: item[0])
        shown = ", ".join(f"{k}={float(values[k][pos])!r}" for k in PRICES)
        detail = f"{text} ({shown})"
        raise where.error(f"inconsistent candle: {detail}", pos, column, _REPAIR)


def _check_timeframe(index: pd.DatetimeIndex, timeframe: str | None, where: _Located) -> str | None:
    if timeframe is None:
        return infer_timeframe(index)
    alias = normalize_timeframe(timeframe)
    step = fixed_nanos(alias)
    if step is not None and len(index) > 1:
        pos = _first(np.diff(index.asi8) < step)
        if pos is not None:
            modal = infer_timeframe(index) or alias_from_nanos(int(np.diff(index.asi8)[pos]))
            raise where.error(
                f"bar starts less than one timeframe ({alias}) after the previous bar",
                pos + 1,
                "timestamp",
                Fix(
                    "the bars' real timeframe ({}), or leave it out to infer it",
                    Setting("timeframe", modal),
                ),
            )
    return alias


# ---------------------------------------------------------------- anomalies


def _anomalies(table: _Table, report: q.QualityReport) -> None:
    """Find every anomaly kind on the same rows, then apply the policies: error, drop, clip."""
    values, n = table.values, len(table.index)
    policies = report.policies
    masks: dict[str, np.ndarray] = {"negative_volume": values["volume"] < 0}
    masks["placeholder"] = q.placeholder_mask(values)
    masks["zero_volume"] = (values["volume"] == 0) & ~masks["placeholder"]
    if n and not np.any(values["volume"] > 0):
        report.notes["volume_reported"] = False
    spikes, reference = q.spike_mask(values)
    masks["spike"] = np.logical_or.reduce([spikes[k] for k in PRICES])
    masks["incomplete"] = q.incomplete_mask(values["volume"])

    errors = [(_first(m), k) for k, m in masks.items() if policies[k] == "error" and m.any()]
    if errors:
        pos, kind = min(errors)
        raise _kind_error(kind, pos, table, spikes, reference)

    drop = np.zeros(n, dtype=bool)
    for kind, mask in masks.items():
        if mask.any():
            _record(report, kind, table, mask)
            if policies[kind] == "drop":
                drop |= mask
    if policies["spike"] == "clip" and masks["spike"].any():
        _clip(values, spikes, reference)
    if drop.any():
        table.take(~drop)


def _kind_error(
    kind: str, pos: int, table: _Table, spikes: dict[str, np.ndarray], reference: np.ndarray
) -> DataError:
    values = table.values
    column = "volume"
    extra: dict[str, Any] = {}
    if kind == "spike":
        column = next(k for k in PRICES if spikes[k][pos])
        extra = {"column": column, "reference": float(reference[pos])}
    if kind == "incomplete":
        history = values["volume"][-1 - q.INCOMPLETE_LOOKBACK : -1]
        extra = {"median": float(np.median(history))}
    problem = q.problem_text(kind, values, pos, **extra)
    return q.kind_error(
        kind, problem, table.where.file, int(table.rows[pos]), table.where.stamp(pos), column
    )


def _clip(
    values: dict[str, np.ndarray], spikes: dict[str, np.ndarray], reference: np.ndarray
) -> None:
    """Pull each spiking price back to the local median close; keep low <= open, close <= high."""
    bars = np.logical_or.reduce([spikes[k] for k in PRICES])
    for k in PRICES:
        values[k] = np.where(spikes[k], reference, values[k])
    stacked = np.vstack([values[k] for k in PRICES])
    values["high"] = np.where(bars, stacked.max(axis=0), values["high"])
    values["low"] = np.where(bars, stacked.min(axis=0), values["low"])


def _calendar(
    index: pd.DatetimeIndex, timeframe: str | None, choice: str, zone: str | None
) -> Calendar:
    """The calendar chosen (`calendar=`), or the one the bars follow when it is "auto"."""
    if choice == "auto":
        return infer_calendar(index, timeframe, zone)
    if choice == "session":
        return session_calendar(index, timeframe, zone)
    return Calendar(choice, zone or "UTC", inferred=False)
