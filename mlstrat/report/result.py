"""BacktestResult: everything a report needs from one backtest, and its on-disk form.

The strategy side builds a `BacktestResult` from a finished backtrader run;
the report side only reads it. `save(dir)` writes a directory that `load(dir)`
turns back into an equal object, so a report can be rebuilt without rerunning
the backtest:

    equity.csv        timestamp, equity[, cash]
    trades.csv        one row per closed trade (TRADE_COLUMNS first)
    fills.csv         one row per order execution (FILL_COLUMNS): raw and slipped
                      price, commission; absent when fills were not recorded
                      (hand-built results, older mlstrat): they load as None
    records.parquet   one row per bar per symbol (RECORD_COLUMNS first)
    benchmark.parquet close price per symbol (buy-and-hold reference)
    result.json       format version, folds, feature importance, config,
                      timeframe, symbols, versions

The directory is written in a temporary sibling and renamed into place, so a
crash never leaves half a result where a result was.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import DataError, IntegrityError, SchemaError
from mlstrat.fileio import json_text, staged_dir
from mlstrat.fileio import to_jsonable as _to_jsonable

#: Layout version of a saved result directory; bumped when old readers cannot read it.
FORMAT_VERSION = 1

EQUITY_FILE = "equity.csv"
TRADES_FILE = "trades.csv"
FILLS_FILE = "fills.csv"
RECORDS_FILE = "records.parquet"
BENCHMARK_FILE = "benchmark.parquet"
RESULT_FILE = "result.json"

#: Columns every trades table has, in this order (extra columns may follow).
TRADE_COLUMNS: tuple[str, ...] = (
    "symbol",
    "direction",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "size",
    "pnl",
    "pnl_net",
    "commission",
    "bars_held",
    "tier",
    "exit_reason",
)

#: Columns of the fills table, in this order. `size` is signed (+ buy, − sell); `raw_price` is
#: the price before slippage, `price` the executed one; `slippage` = size × (price − raw_price),
#: the currency amount slippage cost (positive = paid); `nominal_slippage` is the configured
#: fraction when the broker slips that fill (0 when it does not, e.g. a limit filled at its
#: limit); `capped` marks slipped fills that paid less than nominal (bar range or limit cap).
FILL_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "symbol",
    "size",
    "raw_price",
    "price",
    "commission",
    "slippage",
    "nominal_slippage",
    "capped",
    "order_type",
)

#: Columns every records table has, in this order (extra columns such as
#: `target` or `forward_return` may follow).
RECORD_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "symbol",
    "close",
    "signal",
    "confidence",
    "proba_up",
    "tier",
    "position",
    "position_value",
    "fold",
)

_FILL_STR_COLUMNS = ("symbol", "order_type")
_TRADE_TIME_COLUMNS = ("entry_time", "exit_time")
_TRADE_STR_COLUMNS = ("symbol", "tier", "exit_reason")
_RECORD_STR_COLUMNS = ("symbol", "tier")


def empty_trades() -> pd.DataFrame:
    """A trades table with the contract's columns and no rows."""
    return _coerce_trades(pd.DataFrame({c: [] for c in TRADE_COLUMNS}))


def empty_fills() -> pd.DataFrame:
    """A fills table with the contract's columns and no rows."""
    return _coerce_fills(pd.DataFrame({c: [] for c in FILL_COLUMNS}))


def empty_records() -> pd.DataFrame:
    """A records table with the contract's columns and no rows."""
    return _coerce_records(pd.DataFrame({c: [] for c in RECORD_COLUMNS}))


@dataclass
class BacktestResult:
    """Outcome of one backtest (see the module docstring for the saved layout).

    `equity` is the portfolio value per bar after commissions, on a tz-aware
    UTC index; every table is normalised on construction (UTC timestamps,
    float numbers, plain strings) so consumers need not re-check types.
    `fills` (one row per order execution, `FILL_COLUMNS`) is None when the
    executions were not recorded; costs are then attributed from the trades.
    """

    equity: pd.Series
    cash: pd.Series | None = None
    benchmark: pd.DataFrame = field(default_factory=pd.DataFrame)
    trades: pd.DataFrame = field(default_factory=empty_trades)
    records: pd.DataFrame = field(default_factory=empty_records)
    folds: list[dict] = field(default_factory=list)
    feature_importance: dict[str, float] | None = None
    config: dict = field(default_factory=dict)
    timeframe: str | None = None
    symbols: list[str] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    fills: pd.DataFrame | None = None  # None: not recorded (hand-built or older results)

    def __post_init__(self) -> None:
        self.equity = _coerce_series(self.equity, "equity")
        if len(self.equity) == 0:
            raise DataError(
                "equity curve is empty",
                column="equity",
                fix="run the backtest over at least one bar",
            )
        if self.cash is not None:
            self.cash = _coerce_series(self.cash, "cash")
        self.benchmark = _coerce_benchmark(self.benchmark)
        self.trades = _coerce_trades(self.trades)
        self.records = _coerce_records(self.records)
        if self.fills is not None:
            self.fills = _coerce_fills(self.fills)
        self.folds = [dict(f) for f in (self.folds or [])]
        if self.feature_importance is not None:
            self.feature_importance = {
                str(k): float(v) for k, v in dict(self.feature_importance).items()
            }
        self.config = dict(self.config or {})
        self.versions = dict(self.versions or {})
        self.symbols = [str(s) for s in (self.symbols or [])]
        if not self.symbols:
            found = list(self.benchmark.columns) or _unique(self.records["symbol"])
            self.symbols = [str(s) for s in found]
        self.timeframe = None if self.timeframe is None else str(self.timeframe)

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result directory atomically (replacing an existing one); return its path."""
        target = Path(path)
        with staged_dir(target) as tmp:
            self.write_files(tmp)
        return target

    def write_files(self, directory: str | os.PathLike) -> None:
        """Write the result files into an existing directory (no atomicity; see `save`)."""
        out = Path(directory)
        frame = pd.DataFrame({"equity": self.equity})
        if self.cash is not None:
            frame["cash"] = self.cash.reindex(self.equity.index)
        frame.index.name = "timestamp"
        _write_csv(frame.reset_index(), out / EQUITY_FILE)
        _write_csv(self.trades, out / TRADES_FILE)
        if self.fills is not None:
            _write_csv(self.fills, out / FILLS_FILE)
        self.records.to_parquet(out / RECORDS_FILE, index=False)
        bench = self.benchmark.copy()
        bench.columns = [str(c) for c in bench.columns]
        bench.index.name = "timestamp"
        bench.reset_index().to_parquet(out / BENCHMARK_FILE, index=False)
        meta = {
            "format_version": FORMAT_VERSION,
            "timeframe": self.timeframe,
            "symbols": self.symbols,
            "folds": self.folds,
            "feature_importance": self.feature_importance,
            "config": self.config,
            "versions": self.versions,
        }
        text = json_text(meta, sort_keys=False, default=str)
        (out / RESULT_FILE).write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> BacktestResult:
        """Read a directory written by `save`; missing or corrupt files raise DataError."""
        root = Path(path)
        if not root.is_dir():
            raise DataError(
                "no saved backtest result here",
                file=root,
                fix="pass a directory written by BacktestResult.save (it holds result.json)",
            )
        meta = _read_json(root / RESULT_FILE)
        version = meta.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise IntegrityError(
                f"result format version {version!r} is not readable by this mlstrat "
                f"(reads up to {FORMAT_VERSION})",
                file=root / RESULT_FILE,
                fix="upgrade mlstrat or rerun the backtest",
            )
        eq = _read_csv(root / EQUITY_FILE, time_columns=("timestamp",))
        for col in ("timestamp", "equity"):
            if col not in eq.columns:
                raise SchemaError(
                    "equity file lacks a column",
                    file=root / EQUITY_FILE,
                    column=col,
                    fix="rerun the backtest to rewrite the result",
                )
        eq = eq.set_index("timestamp")
        trades = _read_csv(
            root / TRADES_FILE, time_columns=_TRADE_TIME_COLUMNS, str_columns=_TRADE_STR_COLUMNS
        )
        records = _read_parquet(root / RECORDS_FILE)
        fills = None
        if (root / FILLS_FILE).is_file():
            fills = _read_csv(
                root / FILLS_FILE, time_columns=("timestamp",), str_columns=_FILL_STR_COLUMNS
            )
        bench = _read_parquet(root / BENCHMARK_FILE)
        if "timestamp" in bench.columns:
            bench = bench.set_index("timestamp")
        try:
            return cls(
                equity=eq["equity"],
                cash=eq["cash"] if "cash" in eq.columns else None,
                benchmark=bench,
                trades=trades,
                records=records,
                fills=fills,
                folds=list(meta.get("folds") or []),
                feature_importance=meta.get("feature_importance"),
                config=dict(meta.get("config") or {}),
                timeframe=meta.get("timeframe"),
                symbols=list(meta.get("symbols") or []),
                versions=dict(meta.get("versions") or {}),
            )
        except (DataError, SchemaError) as exc:
            if exc.file is None:
                exc.where.file = str(root)
                exc.file = str(root)
                exc.args = (exc.where.render(),)
            raise


# --------------------------------------------------------------------------- helpers


def to_jsonable(obj: Any) -> Any:
    """`mlstrat.fileio.to_jsonable` for report values, which are never refused: an object
    JSON cannot hold is written as its str()."""
    return _to_jsonable(obj, default=str)


def _unique(values: pd.Series) -> list:
    return list(dict.fromkeys(v for v in values.tolist() if isinstance(v, str) and v))


def _utc_index(index: pd.Index, what: str) -> pd.DatetimeIndex:
    try:
        idx = pd.DatetimeIndex(index)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{what} index is not made of timestamps ({exc})",
            column=what,
            fix="index by the bar timestamps (UTC)",
        ) from None
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    idx = pd.DatetimeIndex(idx.as_unit("ns"), freq=None)
    if not idx.is_monotonic_increasing or idx.has_duplicates:
        bad = int(np.argmax(~(idx[1:] > idx[:-1]))) + 1 if len(idx) > 1 else 0
        raise DataError(
            f"{what} timestamps are not strictly increasing",
            row=bad,
            timestamp=idx[bad],
            column=what,
            fix="sort and de-duplicate the index",
        )
    idx.name = "timestamp"
    return idx


def _coerce_series(values: pd.Series, name: str) -> pd.Series:
    if not isinstance(values, pd.Series):
        raise SchemaError(
            f"{name} must be a pandas Series, got {type(values).__name__}",
            column=name,
            fix=f"pass {name} as a Series indexed by UTC timestamps",
        )
    idx = _utc_index(values.index, name)
    out = pd.Series(pd.to_numeric(values, errors="coerce").to_numpy(float), index=idx, name=name)
    bad = ~np.isfinite(out.to_numpy())
    if name == "equity" and bad.any():
        row = int(np.argmax(bad))
        raise DataError(
            "equity is not finite",
            row=row,
            timestamp=idx[row],
            column=name,
            fix="check the broker value recorded for that bar",
        )
    return out


def _coerce_benchmark(frame: pd.DataFrame) -> pd.DataFrame:
    if frame is None:
        return pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
    if isinstance(frame, pd.Series):
        frame = frame.to_frame(frame.name or "close")
    if frame.shape[1] == 0 and len(frame) == 0:
        return pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
    idx = _utc_index(frame.index, "benchmark")
    out = pd.DataFrame(
        {str(c): pd.to_numeric(frame[c], errors="coerce").to_numpy(float) for c in frame.columns},
        index=idx,
    )
    return out


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"{what} table lacks columns {missing}",
            column=missing[0],
            fix=f"build {what} with columns {list(columns)}",
        )


def _to_utc(values: pd.Series) -> pd.Series:
    out = pd.to_datetime(values, utc=True)
    return out.astype("datetime64[ns, UTC]")


def _plain_str(values: pd.Series) -> pd.Series:
    return pd.Series(
        ["" if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v) for v in values],
        index=values.index,
        dtype=object,
    )


def _ordered(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    extra = [c for c in frame.columns if c not in columns]
    return frame[list(columns) + extra].reset_index(drop=True)


def _coerce_trades(frame: pd.DataFrame | None) -> pd.DataFrame:
    if frame is None or (frame.shape[1] == 0 and len(frame) == 0):
        frame = pd.DataFrame({c: [] for c in TRADE_COLUMNS})
    _require(frame, TRADE_COLUMNS, "trades")
    out = frame.copy()
    for col in TRADE_COLUMNS:
        if col in _TRADE_TIME_COLUMNS:
            out[col] = _to_utc(out[col])
        elif col in _TRADE_STR_COLUMNS:
            out[col] = _plain_str(out[col])
        else:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    direction = out["direction"].to_numpy(float)
    bad = ~np.isin(direction, (1.0, -1.0))
    if bad.any():
        row = int(np.argmax(bad))
        raise SchemaError(
            f"trade direction must be +1 (long) or -1 (short), got {direction[row]!r}",
            row=row,
            column="direction",
            fix="record the side of each closed trade as +1 or -1",
        )
    out["direction"] = direction.astype(np.int64)
    held = out["bars_held"].to_numpy(float)
    if np.isfinite(held).all():
        out["bars_held"] = held.astype(np.int64)
    return _ordered(out, TRADE_COLUMNS)


def _coerce_fills(frame: pd.DataFrame | None) -> pd.DataFrame:
    if frame is None or (frame.shape[1] == 0 and len(frame) == 0):
        frame = pd.DataFrame({c: [] for c in FILL_COLUMNS})
    _require(frame, FILL_COLUMNS, "fills")
    out = frame.copy()
    out["timestamp"] = _to_utc(out["timestamp"])
    for col in FILL_COLUMNS:
        if col in _FILL_STR_COLUMNS:
            out[col] = _plain_str(out[col])
        elif col == "capped":
            out[col] = _booleans(out[col])
        elif col != "timestamp":
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    return _ordered(out, FILL_COLUMNS)


def _booleans(values: pd.Series) -> pd.Series:
    """True/False from bools, 0/1 or the strings CSV gives back; anything else is a SchemaError."""
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    out = []
    for row, v in enumerate(values.tolist()):
        key = str(v).strip().lower()
        if key not in mapping:
            raise SchemaError(
                f"fill 'capped' must be true or false, got {v!r}",
                row=row,
                column="capped",
                fix="record capped as a boolean",
            )
        out.append(mapping[key])
    return pd.Series(out, index=values.index, dtype=bool)


def _coerce_records(frame: pd.DataFrame | None) -> pd.DataFrame:
    if frame is None or (frame.shape[1] == 0 and len(frame) == 0):
        frame = pd.DataFrame({c: [] for c in RECORD_COLUMNS})
    _require(frame, RECORD_COLUMNS, "records")
    out = frame.copy()
    out["timestamp"] = _to_utc(out["timestamp"])
    for col in out.columns:
        if col == "timestamp":
            continue
        if col in _RECORD_STR_COLUMNS:
            out[col] = _plain_str(out[col])
        elif col in RECORD_COLUMNS or pd.api.types.is_numeric_dtype(out[col]):
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    return _ordered(out, RECORD_COLUMNS)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].astype(str).where(out[col].notna(), "")
    out.to_csv(path, index=False, lineterminator="\n")


def _read_csv(
    path: Path, *, time_columns: tuple[str, ...] = (), str_columns: tuple[str, ...] = ()
) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(
            "file missing from saved result", file=path, fix="rerun the backtest to rewrite it"
        )
    try:
        frame = pd.read_csv(
            path,
            dtype={c: str for c in str_columns},
            keep_default_na=True,
            na_values={c: [] for c in str_columns},
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(
            f"unreadable CSV ({exc})", file=path, fix="rerun the backtest to rewrite it"
        ) from None
    for col in str_columns:
        if col in frame.columns:
            frame[col] = frame[col].fillna("")
    for col in time_columns:
        if col in frame.columns:
            try:
                frame[col] = _to_utc(frame[col])
            except (ValueError, TypeError) as exc:
                raise DataError(
                    f"bad timestamp ({exc})", file=path, column=col, fix="rerun the backtest"
                ) from None
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(
            "file missing from saved result", file=path, fix="rerun the backtest to rewrite it"
        )
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
        raise DataError(
            f"unreadable Parquet ({type(exc).__name__}: {exc})",
            file=path,
            fix="rerun the backtest to rewrite it",
        ) from None


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(
            "file missing from saved result", file=path, fix="rerun the backtest to rewrite it"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(
            f"unreadable JSON ({exc})", file=path, fix="rerun the backtest to rewrite it"
        ) from None
    if not isinstance(data, dict):
        raise DataError("expected a JSON object", file=path, fix="rerun the backtest")
    return data
