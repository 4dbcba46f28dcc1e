"""FeatureFeed: a backtrader data feed over numpy arrays prepared once.

Stock ``bt.feeds.PandasData`` calls ``DataFrame.iloc`` once per line per bar,
which dominates a backtest with many feature lines. ``FeatureFeed`` converts
the frame once (datetimes to backtrader date numbers, every line to float64)
and then only copies numbers: ``preload`` fills the line buffers in bulk and
``_load`` (used when backtrader does not preload, e.g. ``exactbars``) indexes
the prepared arrays at an integer cursor. Values, NaN positions, datetimes and
date filtering are identical to ``PandasData`` on the same frame.

One feed class exists per column set (``FeatureFeed.for_columns``); its lines
are backtrader's OHLCV + openinterest + datetime followed by one line per
column, named after the column, so strategies read ``self.data.rsi_14[0]``.
"""

from __future__ import annotations

import array
import datetime as _dt
import functools
import hashlib
import json
import keyword
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd
from backtrader.linebuffer import LineBuffer

from mlstrat.errors import DataError, SchemaError
from mlstrat.features.targets import TARGET_PREFIXES, column_roles, is_target_name

__all__ = [
    "OHLCV",
    "TARGET_PREFIXES",
    "FeatureFeed",
    "PredictionJoin",
    "date2num_array",
    "default_columns",
    "join_predictions",
]

OHLCV: tuple[str, ...] = ("open", "high", "low", "close", "volume")

_US_PER_DAY = 86_400_000_000
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_REF_ORDINAL = _dt.date(2000, 1, 1).toordinal()
# Ordinals sharing the float64 exponent of _REF_ORDINAL (years ~1436..2871):
# for them bt.date2num(day + t) == day + (bt.date2num(ref + t) - ref) exactly.
_FAST_LO, _FAST_HI = 2**19, 2**20 - 1


def date2num_array(index: pd.DatetimeIndex | Sequence[Any]) -> np.ndarray:
    """``bt.date2num`` of every timestamp, bit for bit, without a Python loop per bar.

    Tz-aware stamps are converted to UTC; naive stamps are taken as UTC (as
    ``PandasData`` does). Nanoseconds are dropped, as ``to_pydatetime`` does.
    ``bt.date2num`` is a correctly rounded sum of the day ordinal and the
    time-of-day fractions; within one binade of the ordinal that rounding only
    depends on the time of day, so it is evaluated once per distinct time of day.
    """
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    us = _to_microseconds(idx)
    days = us // _US_PER_DAY
    tod = us - days * _US_PER_DAY
    ordinal = days + _EPOCH_ORDINAL
    out = np.empty(len(us), dtype=np.float64)
    fast = (ordinal >= _FAST_LO) & (ordinal < _FAST_HI)
    if fast.any():
        uniq, inverse = np.unique(tod[fast], return_inverse=True)
        ref = _dt.datetime.fromordinal(_REF_ORDINAL)
        frac = np.array(
            [bt.date2num(ref + _dt.timedelta(microseconds=int(t))) - _REF_ORDINAL for t in uniq],
            dtype=np.float64,
        )
        out[fast] = ordinal[fast].astype(np.float64) + frac[inverse.ravel()]
    for i in np.flatnonzero(~fast):
        day = _dt.datetime.fromordinal(int(ordinal[i]))
        out[i] = bt.date2num(day + _dt.timedelta(microseconds=int(tod[i])))
    return out


def _to_microseconds(idx: pd.DatetimeIndex) -> np.ndarray:
    """Naive DatetimeIndex → int64 microseconds since the epoch, floored."""
    raw = idx.asi8
    unit = idx.unit
    if unit == "ns":
        return raw // 1000
    scale = {"us": 1, "ms": 1000, "s": 1_000_000}[unit]
    return raw * scale


# ---------------------------------------------------------------------------
# column roles and names


def _selected_by_default(column: str, roles: dict[str, str]) -> bool:
    role = roles.get(column)
    if role is not None:
        return role in ("feature", "prediction")
    return column not in (*OHLCV, "openinterest") and not is_target_name(column)


def default_columns(df: pd.DataFrame) -> list[str]:
    """Columns a feed carries when none are named: features and predictions, never targets.

    Roles come from ``df.attrs["mlstrat"]["roles"]`` when present (roles
    "feature" and "prediction" are taken). Columns it does not list, and every
    column of a frame without roles, are taken unless their name starts with
    one of ``TARGET_PREFIXES``. OHLCV and openinterest are always lines of the
    feed and so are never listed.
    """
    roles = column_roles(df)
    return [
        str(c)
        for c in df.columns
        if str(c) not in (*OHLCV, "openinterest") and _selected_by_default(str(c), roles)
    ]


_RESERVED_PATTERN = re.compile(r"^(line_?\d+|tick_.*|_.*)$")


@functools.cache
def _reserved_names() -> frozenset[str]:
    """Names a column may not take: anything backtrader already puts on a feed."""
    names = set(dir(FeatureFeed)) | set(dir(FeatureFeed.lines))
    # instance attributes backtrader sets on every data feed
    names |= {"l", "line", "p", "notifs", "fromdate", "todate", "sessionstart", "sessionend"}
    names |= {"datetime", "openinterest", *OHLCV}
    return frozenset(names)


def _check_column_name(column: Any, file: Any = None) -> str:
    if not isinstance(column, str):
        raise SchemaError(
            f"column name {column!r} is not a string",
            file=file,
            column=str(column),
            fix="rename the column to a Python identifier such as 'f_1'",
        )
    if not column.isidentifier() or keyword.iskeyword(column):
        fixed = re.sub(r"\W", "_", column)
        if not fixed or fixed[0].isdigit() or keyword.iskeyword(fixed):
            fixed = "f_" + fixed
        raise SchemaError(
            "column name is not a valid Python identifier, so it cannot name a backtrader line",
            file=file,
            column=column,
            fix=f"rename it (e.g. df.rename(columns={{{column!r}: {fixed!r}}}))",
        )
    if column in _reserved_names() or _RESERVED_PATTERN.match(column):
        raise SchemaError(
            "column name clashes with a backtrader line or data-feed attribute",
            file=file,
            column=column,
            fix=f"rename it (e.g. df.rename(columns={{{column!r}: {'x_' + column.lstrip('_')!r}}}))",
        )
    return column


# ---------------------------------------------------------------------------
# prepared arrays


@dataclass(frozen=True, eq=False)
class _FeedArrays:
    """The feed's data in line order: ``values[j]`` is line j, datetime included."""

    values: np.ndarray  # (n_lines, n_bars) float64, C-contiguous
    source: str | None = None  # the file it came from, if any

    def __len__(self) -> int:
        return self.values.shape[1]

    def __repr__(self) -> str:  # shown by backtrader writers as the dataname
        where = f" from {self.source}" if self.source else ""
        return f"<FeatureFeed arrays: {self.values.shape[0]} lines x {len(self)} bars{where}>"


def _float_column(df: pd.DataFrame, column: str, file: Any) -> np.ndarray:
    series = df[column]
    try:
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise SchemaError(
            f"column is not numeric ({series.dtype}): {exc}",
            file=file,
            column=column,
            fix="convert it to numbers or leave it out of `columns`",
        ) from None


def _utc_index(df: pd.DataFrame, file: Any) -> pd.DatetimeIndex:
    index = df.index
    if not isinstance(index, pd.DatetimeIndex):
        raise SchemaError(
            f"feature frame index must be a DatetimeIndex, got {type(index).__name__}",
            file=file,
            fix="df.set_index('timestamp') with UTC timestamps",
        )
    naive = index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index
    if len(naive) > 1:
        steps = np.diff(naive.asi8)
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            row = int(bad[0]) + 1
            raise SchemaError(
                "timestamps must be strictly increasing (found a duplicate or out-of-order bar)",
                file=file,
                row=row,
                timestamp=index[row],
                fix="sort the frame and drop duplicate timestamps (mlstrat.data.load_bars does both checks)",
            )
    return naive


def _prepare(df: pd.DataFrame, line_names: Sequence[str], file: Any = None) -> _FeedArrays:
    missing = [c for c in OHLCV if c not in df.columns]
    if missing:
        raise SchemaError(
            f"feature frame lacks OHLCV columns {missing}",
            file=file,
            column=missing[0],
            fix="build it with mlstrat.features.build_feature_feed or add the columns",
        )
    index = _utc_index(df, file)
    values = np.empty((len(line_names), len(df)), dtype=np.float64)
    for j, name in enumerate(line_names):
        if name == "datetime":
            values[j] = date2num_array(index)
        elif name == "openinterest" and name not in df.columns:
            values[j] = np.nan  # as PandasData: a line without a column stays NaN
        else:
            values[j] = _float_column(df, name, file)
    return _FeedArrays(values, None if file is None else str(file))


# ---------------------------------------------------------------------------
# predictions


@dataclass(frozen=True)
class PredictionJoin:
    """How a prediction feed lined up with the bars it was joined to.

    matched: predictions placed on a bar. unmatched: predictions inside the
    bars' time span whose timestamp is not a bar (ignored; usually a prediction
    feed made from other bars). outside: predictions before the first or after
    the last bar (ignored; expected when the feed is a slice). bars_without:
    bars that got NaN.
    """

    matched: int
    unmatched: int
    outside: int
    bars_without: int


def _read_predictions(predictions: str | Path | pd.DataFrame) -> tuple[pd.DataFrame, Any]:
    if isinstance(predictions, pd.DataFrame):
        pred, file = predictions, None
    else:
        file = Path(predictions)
        pred = _read_parquet_table(file, None).to_pandas()
    if "timestamp" in pred.columns:
        pred = pred.set_index("timestamp")
    if not isinstance(pred.index, pd.DatetimeIndex):
        raise SchemaError(
            "prediction feed needs a 'timestamp' column or DatetimeIndex",
            file=file,
            column="timestamp",
            fix="write predictions with Prediction.to_frame(index) and a UTC timestamp index",
        )
    if pred.index.tz is None:
        pred.index = pred.index.tz_localize("UTC")
    else:
        pred.index = pred.index.tz_convert("UTC")
    dup = pred.index.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise SchemaError(
            "prediction feed has duplicate timestamps",
            file=file,
            row=row,
            timestamp=pred.index[row],
            column="timestamp",
            fix="keep one prediction per bar (e.g. the latest fold)",
        )
    return pred, file


def join_predictions(
    df: pd.DataFrame, predictions: str | Path | pd.DataFrame
) -> tuple[pd.DataFrame, PredictionJoin]:
    """Left-join a prediction feed onto a feature frame by timestamp.

    Bars without a prediction get NaN. Predictions whose timestamp is not a bar
    are ignored and counted (see ``PredictionJoin``); a warning says how many
    fell inside the bars' span without matching a bar. Prediction columns get
    role "prediction" in ``attrs["mlstrat"]["roles"]``.
    """
    pred, file = _read_predictions(predictions)
    clash = [c for c in pred.columns if c in df.columns]
    if clash:
        raise SchemaError(
            f"prediction columns {clash} also exist in the feature frame",
            file=file,
            column=clash[0],
            fix="rename the prediction or the feature column before joining",
        )
    _utc_index(df, None)
    bar_index = df.index.tz_localize("UTC") if df.index.tz is None else df.index.tz_convert("UTC")
    hit = pred.index.isin(bar_index)
    if len(bar_index):
        inside = (pred.index >= bar_index[0]) & (pred.index <= bar_index[-1])
    else:
        inside = np.zeros(len(pred), dtype=bool)
    aligned = pred.reindex(bar_index)
    aligned.index = df.index
    joined = pd.concat([df, aligned], axis=1)
    joined.attrs = _copy_attrs(df)
    roles = joined.attrs.setdefault("mlstrat", {}).setdefault("roles", {})
    roles.update({str(c): "prediction" for c in pred.columns})
    report = PredictionJoin(
        matched=int(hit.sum()),
        unmatched=int((inside & ~hit).sum()),
        outside=int((~inside).sum()),
        bars_without=int(len(df) - hit.sum()),
    )
    if report.unmatched:
        warnings.warn(
            f"{report.unmatched} predictions fall between bars (no bar has their timestamp) "
            "and were ignored",
            stacklevel=3,
        )
    return joined, report


def _copy_attrs(df: pd.DataFrame) -> dict[str, Any]:
    attrs = dict(df.attrs)
    meta = attrs.get("mlstrat")
    if isinstance(meta, dict):
        meta = dict(meta)
        if isinstance(meta.get("roles"), dict):
            meta["roles"] = dict(meta["roles"])
        attrs["mlstrat"] = meta
    return attrs


def _utc_or_none(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


# ---------------------------------------------------------------------------
# Parquet


def _read_parquet_table(path: Path, columns: list[str] | None) -> Any:
    import pyarrow.parquet as pq

    if not path.exists():
        raise DataError("file not found", file=path, fix="check the path")
    try:
        return pq.read_table(path, columns=columns)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise DataError(
            f"cannot read Parquet: {exc}",
            file=path,
            fix="rewrite it with mlstrat.features.write_feature_feed",
        ) from None


_FEATURE_META_KEY = b"mlstrat"  # schema metadata written by mlstrat.features.write_feature_feed


def _parquet_roles(schema: Any) -> dict[str, str]:
    """Column roles from the schema metadata (mlstrat key or pandas attrs)."""
    meta = schema.metadata or {}
    for key in (_FEATURE_META_KEY, b"pandas"):
        raw = meta.get(key)
        if raw is None:
            continue
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        if key == b"pandas":
            doc = (doc.get("attributes") or {}).get("mlstrat") or {}
        roles = doc.get("roles") if isinstance(doc, dict) else None
        if isinstance(roles, dict):
            return {str(k): str(v) for k, v in roles.items()}
    return {}


def _read_feed_parquet(path: Path, columns: Sequence[str] | None) -> pd.DataFrame:
    """Timestamp-indexed OHLCV + the wanted columns of a feature-feed file, nothing else.

    Files written by ``mlstrat.features.write_feature_feed`` (schema metadata key
    ``mlstrat``) go through ``read_feature_feed``, which checks their set version
    and restores roles, symbol and timeframe; plain Parquet with a ``timestamp``
    column is read as is. ``columns`` not in the file are left for the caller
    (they may come from a prediction feed).
    """
    import pyarrow.parquet as pq

    if not path.exists():
        raise DataError("file not found", file=path, fix="check the path")
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise DataError(f"cannot read Parquet schema: {exc}", file=path) from None
    available = list(schema.names)
    roles = _parquet_roles(schema)
    if columns is None:
        probe = pd.DataFrame(columns=[c for c in available if c != "timestamp"])
        probe.attrs["mlstrat"] = {"roles": roles}
        wanted = default_columns(probe)
    else:
        wanted = [c for c in columns if c in available]
    if _FEATURE_META_KEY in (schema.metadata or {}):
        from mlstrat.features import read_feature_feed

        return read_feature_feed(path, columns=wanted)

    if "timestamp" not in available:
        raise SchemaError(
            "feature feed has no 'timestamp' column",
            file=path,
            column="timestamp",
            fix="write it with mlstrat.features.write_feature_feed",
        )
    needed = ["timestamp", *OHLCV]
    if "openinterest" in available:
        needed.append("openinterest")
    needed += [c for c in wanted if c not in needed]
    missing = [c for c in needed if c not in available]
    if missing:
        raise SchemaError(
            f"feature feed lacks columns {missing}",
            file=path,
            column=missing[0],
            fix="rebuild the feature feed or choose other columns",
        )
    df = _read_parquet_table(path, needed).to_pandas()
    if "timestamp" in df.columns:  # else pandas metadata already made it the index
        df = df.set_index("timestamp")
    if not isinstance(df.index, pd.DatetimeIndex) or df.index.tz is None:
        raise SchemaError(
            "'timestamp' must hold tz-aware UTC datetimes",
            file=path,
            column="timestamp",
            fix="store tz-aware UTC timestamps",
        )
    if roles:
        meta = df.attrs.get("mlstrat") if isinstance(df.attrs.get("mlstrat"), dict) else {}
        df.attrs["mlstrat"] = {**meta, "roles": roles}
    return df


# ---------------------------------------------------------------------------
# the feed


_CLASS_CACHE: dict[tuple[str, ...], type[FeatureFeed]] = {}


def _timeframe_kwargs(timeframe: Any) -> dict[str, int]:
    """backtrader timeframe/compression for a pandas offset alias like "1h"."""
    if not isinstance(timeframe, str) or not timeframe:
        return {}
    try:
        offset = pd.tseries.frequencies.to_offset(timeframe)
    except ValueError:
        return {}
    if isinstance(offset, pd.offsets.Week):
        return {"timeframe": bt.TimeFrame.Weeks, "compression": offset.n}
    if isinstance(offset, (pd.offsets.MonthEnd, pd.offsets.MonthBegin)):
        return {"timeframe": bt.TimeFrame.Months, "compression": offset.n}
    try:
        seconds = pd.Timedelta(offset).total_seconds()
    except (TypeError, ValueError):
        return {}
    if seconds <= 0 or seconds != int(seconds):
        return {}
    seconds = int(seconds)
    for unit, size in ((bt.TimeFrame.Days, 86400), (bt.TimeFrame.Minutes, 60)):
        if seconds % size == 0:
            return {"timeframe": unit, "compression": seconds // size}
    return {"timeframe": bt.TimeFrame.Seconds, "compression": seconds}


class FeatureFeed(bt.feed.DataBase):
    """backtrader feed over prepared float64 arrays; build with ``from_frame``/``from_parquet``.

    ``dataname`` is either the prepared arrays (what the constructors pass) or a
    feature frame, which is converted for this class's columns. Every other
    parameter is a standard ``DataBase`` parameter (fromdate, todate, tz,
    timeframe, compression, ...) and behaves as for any backtrader feed.
    """

    #: Feature/prediction columns of this class, in line order after the OHLCV lines.
    columns: tuple[str, ...] = ()
    #: Set by from_frame/from_parquet when predictions were joined.
    prediction_join: PredictionJoin | None = None

    @classmethod
    def for_columns(cls, columns: Iterable[str]) -> type[FeatureFeed]:
        """The FeatureFeed subclass with one extra line per column (created once, cached)."""
        cols = tuple(columns)
        for c in cols:
            _check_column_name(c)
        if len(set(cols)) != len(cols):
            dup = next(c for c in cols if cols.count(c) > 1)
            raise SchemaError("column listed twice", column=dup, fix="list each column once")
        if not cols:
            return FeatureFeed
        klass = _CLASS_CACHE.get(cols)
        if klass is None:
            digest = hashlib.sha1("\0".join(cols).encode(), usedforsecurity=False).hexdigest()
            klass = type(
                f"FeatureFeed_{digest[:16]}",
                (FeatureFeed,),
                {"lines": cols, "columns": cols, "__module__": __name__},
            )
            # importable by name, so pickling works (cerebro optimisation with maxcpus > 1)
            globals()[klass.__name__] = klass
            _CLASS_CACHE[cols] = klass
        return klass

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        columns: Sequence[str] | None = None,
        name: str | None = None,
        predictions: str | Path | pd.DataFrame | None = None,
        **kwargs: Any,
    ) -> FeatureFeed:
        """A feed over a feature frame (UTC DatetimeIndex, OHLCV + features/targets).

        columns=None takes every feature (and prediction) column but never a
        target; targets only ride along when named. ``predictions`` (a
        prediction-feed Parquet path or DataFrame) is left-joined on timestamp
        as in ``from_parquet``. ``name`` defaults to
        ``df.attrs["symbol"]``; timeframe/compression default to
        ``df.attrs["timeframe"]`` when it is set. Other keyword arguments are
        backtrader data parameters (fromdate, todate, tz, ...).
        """
        return cls._build(df, columns, name, predictions, None, kwargs)

    @classmethod
    def from_parquet(
        cls,
        path: str | Path,
        columns: Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
        predictions: str | Path | pd.DataFrame | None = None,
        **kwargs: Any,
    ) -> FeatureFeed:
        """A feed over a feature-feed Parquet file, reading only the columns it needs.

        Rows are kept when ``start <= timestamp <= end`` (UTC; naive = UTC).
        ``predictions`` (a prediction-feed Parquet path or DataFrame) is
        left-joined on timestamp: bars without a prediction get NaN, predictions
        without a bar are ignored and counted in ``feed.prediction_join``.
        """
        path = Path(path)
        df = _read_feed_parquet(path, columns)
        lo, hi = _utc_or_none(start), _utc_or_none(end)
        if lo is not None:
            df = df[df.index >= lo]
        if hi is not None:
            df = df[df.index <= hi]
        return cls._build(df, columns, None, predictions, path, kwargs)

    @classmethod
    def _build(
        cls,
        df: pd.DataFrame,
        columns: Sequence[str] | None,
        name: str | None,
        predictions: Any,
        file: Any,
        kwargs: dict[str, Any],
    ) -> FeatureFeed:
        if not isinstance(df, pd.DataFrame):
            raise SchemaError(f"expected a pandas DataFrame, got {type(df).__name__}", file=file)
        report = None
        if predictions is not None:
            df, report = join_predictions(df, predictions)
        if columns is None:
            cols = default_columns(df)
        else:
            cols = list(columns)
            missing = [c for c in cols if c not in df.columns]
            if missing:
                raise SchemaError(
                    f"columns {missing} not in the frame (it has {[str(c) for c in df.columns]})",
                    file=file,
                    column=str(missing[0]),
                    fix="choose existing columns or join the prediction feed",
                )
            always = [c for c in cols if c in {*OHLCV, "openinterest"}]
            if always:
                raise SchemaError(
                    "OHLCV and openinterest are always lines of the feed; do not list them",
                    file=file,
                    column=always[0],
                    fix="drop them from `columns`",
                )
        for c in cols:
            _check_column_name(c, file)
        klass = cls.for_columns(cols)
        arrays = _prepare(df, klass.lines.getlinealiases(), file)
        params = dict(_timeframe_kwargs(df.attrs.get("timeframe")))
        params.update(kwargs)
        symbol = df.attrs.get("symbol")
        if name is None and isinstance(symbol, str) and symbol:
            name = symbol
        if name is not None:
            params["name"] = name
        feed = klass(dataname=arrays, **params)
        feed.prediction_join = report
        return feed

    # -- backtrader hooks -------------------------------------------------

    def __init__(self) -> None:
        super().__init__()
        src = self.p.dataname
        if isinstance(src, pd.DataFrame):
            src = _prepare(src, self.lines.getlinealiases())
        if not isinstance(src, _FeedArrays):
            raise SchemaError(
                f"FeatureFeed dataname must be a feature frame, got {type(src).__name__}",
                fix="use FeatureFeed.from_frame(df) or FeatureFeed.from_parquet(path)",
            )
        self._arrays = src
        self._nbars = len(src)
        self._cursor = 0
        aliases = [a for a in self.lines.getlinealiases() if a != "datetime"]
        self._tick_names = ["tick_" + a for a in aliases]
        self._tick_lines = [getattr(self.lines, a) for a in aliases]
        first = self.lines.getlinealiases()[0]
        self._tick_first = "tick_" + first
        self._tick_last_pos = aliases.index(first)
        self._tick_blank = dict.fromkeys([*self._tick_names, "tick_last"])

    def start(self) -> None:
        super().start()
        self._cursor = 0

    def _load(self) -> bool:
        i = self._cursor
        if i >= self._nbars:
            return False
        self._cursor = i + 1
        for line, value in zip(self.lines.lines, self._arrays.values[:, i].tolist(), strict=True):
            line[0] = value
        return True

    def preload(self) -> None:
        """Fill the line buffers in bulk; same result as backtrader's bar-by-bar preload.

        Falls back to the generic loop whenever filters, input time zones or
        bounded buffers are involved.
        """
        bulk = (
            self._cursor == 0
            and not self._filters
            and not self._ffilters
            and not self._barstack
            and not self._barstash
            and not self._tzinput
            and all(
                isinstance(line.array, array.array) and line.array.typecode == "d"
                for line in self.lines.lines
            )
        )
        if not bulk:
            super().preload()
            return
        values = self._arrays.values
        dt = values[self.lines.getlinealiases().index("datetime")]
        # load(): bars before fromdate are skipped, the first bar after todate ends the feed
        after = np.flatnonzero(dt > self.todate)
        stop = int(after[0]) if after.size else self._nbars
        keep = np.flatnonzero(dt[:stop] >= self.fromdate)
        rows = values[:, :stop] if keep.size == stop else values[:, keep]
        for line, row in zip(self.lines.lines, rows, strict=True):
            line.array.frombytes(np.ascontiguousarray(row).tobytes())
        self._cursor = self._nbars
        self._last()
        self.home()

    # The per-bar bookkeeping below is backtrader's, with the per-line Python
    # overhead removed: with ~100 lines it would otherwise cost more than the data.

    def advance(self, size: int = 1, datamaster: Any = None, ticks: bool = True) -> None:
        """``AbstractDataBase.advance`` with the line pointers moved in one loop."""
        if ticks:
            self._tick_nullify()
        lines = self.lines.lines
        if lines[0].mode == LineBuffer.UnBounded:
            for line in lines:  # LineBuffer.advance without the idx property
                line._idx += size
                line.lencount += size
        else:
            self.lines.advance(size)
        if datamaster is not None:
            if len(self) > self.buflen():
                self.rewind()
                self.lines.forward()
                return
            if self.lines.datetime[0] > datamaster.lines.datetime[0]:
                self.lines.rewind()
            elif ticks:
                self._tick_fill()
        elif len(self) < self.buflen() and ticks:
            self._tick_fill()

    def _tick_nullify(self) -> None:
        self.__dict__.update(self._tick_blank)

    def _tick_fill(self, force: bool = False) -> None:
        if force or self.__dict__.get(self._tick_first) is None:
            values = [line.array[line._idx] for line in self._tick_lines]
            self.__dict__.update(zip(self._tick_names, values, strict=True))
            self.tick_last = values[self._tick_last_pos]
