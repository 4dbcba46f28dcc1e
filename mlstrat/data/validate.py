"""Check a table of candles against the Bars contract and return it in canonical form.

Bars: index `timestamp` (datetime64[ns, UTC], strictly increasing, unique); columns
exactly open, high, low, close, volume as float64, all finite, prices > 0,
low <= min(open, close) <= max(open, close) <= high, volume >= 0; attrs `symbol` and
`timeframe`. Every violation is a DataError naming the file, the first offending data
row (0-based, header lines not counted) and timestamp, the column and the fix. All
checks are vectorised; gaps are not violations (see `gap_report`).
"""

from __future__ import annotations

from os import PathLike

import numpy as np
import pandas as pd

from mlstrat.data.timeframe import fixed_nanos, infer_timeframe, normalize_timeframe
from mlstrat.errors import ConfigError, DataError

OHLCV = ("open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")
DUPLICATE_POLICIES = ("error", "keep_first", "keep_last")
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

    def error(self, problem: str, pos: int | None, column: str | None, fix: str) -> DataError:
        row = None if pos is None else int(self.rows[pos])
        ts = None
        if pos is not None and self.index is not None and not pd.isna(self.index[pos]):
            ts = _iso(self.index[pos])
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


def validate_bars(
    df: pd.DataFrame,
    *,
    file: str | PathLike | None = None,
    on_duplicate: str = "error",
    sort: bool = False,
    symbol: str | None = None,
    timeframe: str | None = None,
    row_numbers: np.ndarray | None = None,
) -> pd.DataFrame:
    """Return `df` as canonical Bars, or raise DataError at the first violation.

    `df` is indexed by a DatetimeIndex (or has a `timestamp` column) and has OHLCV
    columns in any letter case; other columns are dropped. Timestamps must carry a
    time zone (converted to UTC). `on_duplicate` is "error", "keep_first" or
    "keep_last" (file order decides among equal timestamps); unsorted rows are an
    error unless `sort=True`. `timeframe` defaults to `df.attrs["timeframe"]`, else
    the modal bar spacing; a given timeframe longer than some bar spacing is an error.
    `symbol` defaults to `df.attrs["symbol"]`. `row_numbers` maps rows to the source
    file's data rows for error messages (default 0..n-1).
    """
    if on_duplicate not in DUPLICATE_POLICIES:
        raise ConfigError(
            f"on_duplicate={on_duplicate!r} is not one of {', '.join(DUPLICATE_POLICIES)}",
            fix='use on_duplicate="error", "keep_first" or "keep_last"',
        )
    file = None if file is None else str(file)
    symbol = df.attrs.get("symbol") if symbol is None else symbol
    timeframe = df.attrs.get("timeframe") if timeframe is None else timeframe
    if len(df) == 0:
        raise DataError(
            "no data rows", file=file, fix="check that the file holds candles below its header"
        )

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
            'pass tz="UTC" (or the zone the times were recorded in, e.g. tz="America/New_York")',
        )
    index = index.tz_convert("UTC").as_unit("ns")
    where.index = index
    values = {name: _float_column(df[lower[name]], name, where) for name in OHLCV}

    i8 = index.asi8
    steps = np.diff(i8)
    back = _first(steps < 0)
    if back is not None:
        if not sort:
            newest_first = bool(np.all(steps <= 0))
            problem = (
                "timestamps are in descending order (newest first)"
                if newest_first
                else f"timestamp is earlier than the row before ({_iso(index[back])})"
            )
            raise where.error(problem, back + 1, "timestamp", "pass sort=True to sort rows by time")
        order = np.argsort(i8, kind="stable")
        index, rows = index[order], rows[order]
        values = {k: v[order] for k, v in values.items()}
        i8 = index.asi8
        steps = np.diff(i8)
        where = _Located(file, rows, index)

    same = steps == 0
    dup = _first(same)
    if dup is not None:
        if on_duplicate == "error":
            raise where.error(
                f"duplicate timestamp (same as row {int(rows[dup])})",
                dup + 1,
                "timestamp",
                'pass on_duplicate="keep_last" or on_duplicate="keep_first"',
            )
        keep = np.r_[True, ~same] if on_duplicate == "keep_first" else np.r_[~same, True]
        index, rows = index[keep], rows[keep]
        values = {k: v[keep] for k, v in values.items()}
        where = _Located(file, rows, index)

    _check_values(values, where)
    index = pd.DatetimeIndex(index, name="timestamp")
    timeframe = _check_timeframe(index, timeframe, where)

    bars = pd.DataFrame(values, index=index, columns=list(OHLCV))
    bars.attrs["symbol"] = symbol
    bars.attrs["timeframe"] = timeframe
    return bars


def _check_values(values: dict[str, np.ndarray], where: _Located) -> None:
    for name in OHLCV:
        pos = _first(~np.isfinite(values[name]))
        if pos is not None:
            what = "NaN" if np.isnan(values[name][pos]) else "infinite"
            raise where.error(f"{what} value", pos, name, _REPAIR)
    for name in PRICES:
        pos = _first(values[name] <= 0)
        if pos is not None:
            raise where.error(f"price {values[name][pos]!r} is not positive", pos, name, _REPAIR)
    o, h, lo, c = (values[n] for n in PRICES)
    checks = (
        (h < lo, "high", "high is below low"),
        (lo > np.minimum(o, c), "low", "low is above min(open, close)"),
        (h < np.maximum(o, c), "high", "high is below max(open, close)"),
    )
    found = [(p, col, text) for mask, col, text in checks if (p := _first(mask)) is not None]
    if found:
        pos, column, text = min(found, key=lambda item: item[0])
        detail = f"{text} (open={o[pos]!r}, high={h[pos]!r}, low={lo[pos]!r}, close={c[pos]!r})"
        raise where.error(f"inconsistent candle: {detail}", pos, column, _REPAIR)
    pos = _first(values["volume"] < 0)
    if pos is not None:
        raise where.error(f"volume {values['volume'][pos]!r} is negative", pos, "volume", _REPAIR)


def _check_timeframe(index: pd.DatetimeIndex, timeframe: str | None, where: _Located) -> str | None:
    if timeframe is None:
        return infer_timeframe(index)
    alias = normalize_timeframe(timeframe)
    step = fixed_nanos(alias)
    if step is not None and len(index) > 1:
        pos = _first(np.diff(index.asi8) < step)
        if pos is not None:
            raise where.error(
                f"bar starts less than one timeframe ({alias}) after the previous bar",
                pos + 1,
                "timestamp",
                "pass the bars' real timeframe, or timeframe=None to infer it",
            )
    return alias
