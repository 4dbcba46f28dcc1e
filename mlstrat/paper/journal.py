"""The paper-trading journal: one SQLite file (standard library `sqlite3`, WAL) per session.

Tables (timestamps ``ts`` are bar open times in UTC milliseconds; NaN is stored as NULL):

    meta         key, value (JSON): format, configuration hash, run directory, predictor,
                 symbol, timeframe, source, history size, policies
    bars         ts, open, high, low, close, volume, live (0: history for features, 1: traded)
    predictions  ts, one column per prediction-feed column (fold, signal, confidence, ...)
    decisions    ts, position (held at the bar's close), action ("hold" or the orders placed,
                 e.g. "buy market"), orders (how many)
    orders       seq (n-th order of the session), ts (bar it was placed on), side, type,
                 size, price (limit/stop price), parent (seq of a bracket parent), tier
    fills        seq, part, ts (bar it executed on), size (signed), price, raw_price
                 (before slippage), commission
    equity       ts, value, cash, position
    events       id, at (wall clock), ts, kind (late, duplicate, gap, retry, source, ...),
                 message, and the bar's values for rejected bars

Every traded bar is written in one transaction with its prediction, decision, orders, fills
and equity, so a crash loses at most the bar in progress. `JournalRecorder` is the
backtrader analyzer that produces those rows; paper trading and `reconcile`'s backtest use
it alike, so the two journals compare table by table.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from mlstrat.data import OHLCV
from mlstrat.errors import ConfigError, IntegrityError
from mlstrat.fileio import exclusive_lock
from mlstrat.strategy import FillLog, bt_times_to_utc

FORMAT = "mlstrat-paper-journal/1"
#: Tables compared bar by bar, with their key columns (predictions' columns vary by predictor).
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "bars": ("ts",),
    "predictions": ("ts",),
    "decisions": ("ts",),
    "orders": ("seq",),
    "fills": ("seq", "part"),
    "equity": ("ts",),
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bars (ts INTEGER PRIMARY KEY, open REAL, high REAL, low REAL,
    close REAL, volume REAL, live INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (ts INTEGER PRIMARY KEY, position REAL,
    action TEXT NOT NULL, orders INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, side TEXT,
    type TEXT, size REAL, price REAL, parent INTEGER, tier TEXT);
CREATE TABLE IF NOT EXISTS fills (seq INTEGER NOT NULL, part INTEGER NOT NULL,
    ts INTEGER NOT NULL, size REAL, price REAL, raw_price REAL, commission REAL,
    PRIMARY KEY (seq, part));
CREATE TABLE IF NOT EXISTS equity (ts INTEGER PRIMARY KEY, value REAL, cash REAL,
    position REAL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,
    ts INTEGER, kind TEXT NOT NULL, message TEXT NOT NULL, open REAL, high REAL, low REAL,
    close REAL, volume REAL);
"""
_FIX_NEW = "start a new journal (another --journal path) or restore the one this session wrote"


def ts_ms(ts: Any) -> int:
    """A timestamp as UTC milliseconds (the journal's key)."""
    return int(pd.Timestamp(ts).value // 1_000_000)


def ms_ts(ms: int) -> pd.Timestamp:
    """UTC milliseconds back to a tz-aware timestamp."""
    return pd.Timestamp(int(ms), unit="ms", tz="UTC")


def _float(value: Any) -> float | None:
    """A number for SQLite (NaN → NULL)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


@dataclass
class BarRecord:
    """Everything one traded bar adds to the journal (rows as column → value)."""

    ts: int
    bar: dict[str, Any]
    prediction: dict[str, Any]
    decision: dict[str, Any]
    orders: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    equity: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> dict[str, list[dict[str, Any]]]:
        """Rows per table, in table order."""
        return {
            "bars": [self.bar],
            "predictions": [self.prediction],
            "decisions": [self.decision],
            "orders": self.orders,
            "fills": self.fills,
            "equity": [self.equity],
        }


class Journal:
    """An open journal file (or an in-memory one for a reconciliation's backtest side).

    `Journal.create` makes a new file with the session's metadata and prediction columns;
    `Journal.open` reopens one (read-only with ``readonly=True``). A writer holds an
    exclusive lock next to the file (``J.sqlite.lock``) so two sessions cannot write one
    journal; readers (reconcile, report) need no lock thanks to WAL.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self.conn = conn
        self.path = path
        self._lock: contextlib.ExitStack | None = None
        self._last_live: int | None = None

    # -- opening -------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | Path,
        meta: Mapping[str, Any],
        prediction_columns: Sequence[str],
        history: pd.DataFrame,
    ) -> Journal:
        """A new journal at `path` (refused if the file exists): tables, `meta`, the prediction
        columns and the `history` bars, all in one transaction (a crash leaves no half-made
        journal behind, only an empty file a new session refuses to resume)."""
        path = Path(path)
        if path.exists():
            raise ConfigError("journal already exists", file=path, fix=_FIX_NEW)
        path.parent.mkdir(parents=True, exist_ok=True)
        journal = cls(_connect(path), path)
        journal._hold_lock()
        journal._setup(meta, prediction_columns, history)
        return journal

    @classmethod
    def memory(cls, meta: Mapping[str, Any], prediction_columns: Sequence[str]) -> Journal:
        """A journal in memory (the backtest side of a reconciliation)."""
        journal = cls(sqlite3.connect(":memory:"), None)
        journal._setup(meta, prediction_columns, None)
        return journal

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> Journal:
        """An existing journal; IntegrityError if the file is not one (or of another format)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                "journal not found",
                file=path,
                fix="give the --journal file a paper session wrote",
            )
        if readonly:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        else:
            conn = _connect(path)
        journal = cls(conn, path)
        try:
            fmt = journal.meta().get("format")
        except sqlite3.OperationalError as exc:  # no meta table: a crash while creating it
            conn.close()
            raise IntegrityError(
                f"not a paper journal, or one whose creation was interrupted ({exc})",
                file=path,
                fix="delete it and start the session again (nothing was traded into it)",
            ) from None
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise IntegrityError(
                f"not a paper journal ({exc})",
                file=path,
                fix="give the --journal file a paper session wrote",
            ) from None
        if fmt != FORMAT:
            conn.close()
            raise IntegrityError(
                f"journal format {fmt!r} is not {FORMAT!r}",
                file=path,
                fix="read it with the mlstrat version that wrote it, or " + _FIX_NEW,
            )
        if not readonly:
            journal._hold_lock()
        return journal

    def _hold_lock(self) -> None:
        assert self.path is not None
        stack = contextlib.ExitStack()
        lock = self.path.with_name(self.path.name + ".lock")
        try:
            stack.enter_context(exclusive_lock(lock, f"journal {self.path}", wait=False))
        except BaseException:
            self.conn.close()
            raise
        self._lock = stack

    def _setup(
        self,
        meta: Mapping[str, Any],
        prediction_columns: Sequence[str],
        history: pd.DataFrame | None,
    ) -> None:
        columns = "".join(f', "{c}" REAL' for c in prediction_columns)
        statements = [s for s in _SCHEMA.split(";") if s.strip()]
        statements.append(f"CREATE TABLE predictions (ts INTEGER PRIMARY KEY{columns})")
        items = {"format": FORMAT, **dict(meta)}
        conn = self.conn
        conn.isolation_level = None  # one explicit transaction, DDL included
        try:
            conn.execute("BEGIN")
            for statement in statements:
                conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [(k, json.dumps(v, sort_keys=True)) for k, v in items.items()],
            )
            if history is not None:
                conn.executemany(
                    "INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, 0)", _bar_rows(history)
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.isolation_level = ""

    def close(self) -> None:
        """Close the connection and release the writer's lock."""
        self.conn.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- reading -------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """The session's metadata."""
        rows = self.conn.execute("SELECT key, value FROM meta").fetchall()
        return {k: json.loads(v) for k, v in rows}

    def table(self, name: str) -> pd.DataFrame:
        """A table as a DataFrame ordered by its key (NULL read back as NaN in number columns)."""
        order = ", ".join(TABLE_KEYS.get(name, ("id",)))
        frame = pd.read_sql_query(f"SELECT * FROM {name} ORDER BY {order}", self.conn)
        return frame

    def bars(self) -> pd.DataFrame:
        """Every journaled bar (history and live) as Bars with a boolean ``live`` column."""
        frame = self.table("bars")
        stamps = pd.to_datetime(frame["ts"].to_numpy(dtype="int64"), unit="ms", utc=True)
        index = pd.DatetimeIndex(stamps, name="timestamp").as_unit("ns")
        out = frame[["open", "high", "low", "close", "volume"]].astype(float)
        out.index = index
        out["live"] = frame["live"].to_numpy(dtype=bool)
        return out

    def last_live(self) -> int | None:
        """The newest traded bar's ts (None before the first one)."""
        if self._last_live is None:
            row = self.conn.execute("SELECT MAX(ts) FROM bars WHERE live = 1").fetchone()
            self._last_live = None if row[0] is None else int(row[0])
        return self._last_live

    # -- writing -------------------------------------------------------------

    def record(self, record: BarRecord) -> None:
        """Write a traded bar's rows in one transaction."""
        with self.conn:
            for table, rows in record.rows().items():
                for row in rows:
                    names = ", ".join(f'"{k}"' for k in row)
                    marks = ", ".join("?" for _ in row)
                    self.conn.execute(
                        f"INSERT INTO {table} ({names}) VALUES ({marks})",
                        [_db_value(v) for v in row.values()],
                    )
        self._last_live = record.ts

    def verify(self, record: BarRecord) -> None:
        """Check a recomputed bar against its journaled rows (a restart replays the journal):
        IntegrityError at the first value that differs, or a row too many or too few."""
        for table, rows in record.rows().items():
            keys = TABLE_KEYS[table]
            (count,) = self.conn.execute(
                f"SELECT COUNT(*) FROM {table} WHERE ts = ?", [record.ts]
            ).fetchone()
            if count != len(rows):
                raise _replay_error(table, record.ts, f"{count} rows", "rows", len(rows), self.path)
            for row in rows:
                where = " AND ".join(f'"{k}" = ?' for k in keys)
                stored = self.conn.execute(
                    f"SELECT * FROM {table} WHERE {where}", [row[k] for k in keys]
                )
                names = [d[0] for d in stored.description]
                found = stored.fetchone()
                if found is None:
                    raise _replay_error(table, record.ts, "(no row)", "row", row, self.path)
                saved = dict(zip(names, found, strict=True))
                for column, value in row.items():
                    if not same_value(saved.get(column), _db_value(value)):
                        raise _replay_error(
                            table, record.ts, saved.get(column), column, value, self.path
                        )

    def event(
        self,
        kind: str,
        message: str,
        ts: Any = None,
        values: Sequence[float] | None = None,
    ) -> None:
        """One reported event (late, duplicated or gapped bar, retry ...), committed at once."""
        at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        vals = list(values) if values is not None else [None] * 5
        with self.conn:
            self.conn.execute(
                "INSERT INTO events (at, ts, kind, message, open, high, low, close, volume) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [at, None if ts is None else ts_ms(ts), kind, message, *map(_float, vals)],
            )


def _bar_rows(bars: pd.DataFrame) -> list[tuple[Any, ...]]:
    values = bars[list(OHLCV)].to_numpy(dtype=float)
    return [
        (ts_ms(ts), *(_float(v) for v in row)) for ts, row in zip(bars.index, values, strict=True)
    ]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise IntegrityError(
            f"not a SQLite journal ({exc})",
            file=path,
            fix="give the --journal file a paper session wrote, or a new path",
        ) from None
    return conn


def _db_value(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return _float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def same_value(a: Any, b: Any, tolerance: float = 0.0) -> bool:
    """Equal journal values: NULL/NaN equal each other; numbers within `tolerance` (relative)."""
    a = None if isinstance(a, float) and math.isnan(a) else a
    b = None if isinstance(b, float) and math.isnan(b) else b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if a == b:
            return True
        return tolerance > 0 and abs(a - b) <= tolerance * max(abs(a), abs(b))
    return a == b


def _replay_error(
    table: str, ts: int, stored: Any, column: str, value: Any, path: Path | None
) -> IntegrityError:
    return IntegrityError(
        f"replaying the journal gives another {table}.{column} at {ms_ts(ts).isoformat()}: "
        f"journal {stored!r}, now {value!r}",
        file=path,
        timestamp=ms_ts(ts).isoformat(),
        fix="the configuration, run or code changed since this journal was written; " + _FIX_NEW,
    )


# ---------------------------------------------------------------------------- the analyzer


_SIDES = {True: "buy", False: "sell"}


class JournalRecorder(FillLog):
    """Turns each bar of a backtrader run into a `BarRecord` and hands it to `sink`.

    Runs after the strategy's ``next()``: the bar's OHLCV and prediction lines, the orders
    placed on it (the broker's order list only grows, so its n-th entry is order seq n), the
    fills executed on it (`FillLog`'s rows: raw and slipped price), the position and the
    broker's value and cash. Params: ``sink`` (BarRecord → None), ``columns`` (prediction
    lines to record).
    """

    params = (("sink", None), ("columns", ()))

    def start(self) -> None:
        super().start()
        if len(self.strategy.datas) != 1:
            raise ConfigError(
                "paper trading journals one symbol; the strategy has "
                f"{len(self.strategy.datas)} data feeds",
                fix="paper-trade one symbol per session",
            )
        self.data = self.strategy.datas[0]
        self._seq: dict[int, int] = {}
        self._orders_seen = 0
        self._fills_taken = 0
        self._new_orders: list[dict[str, Any]] = []
        self._parts: dict[int, int] = {}

    def _sync_orders(self) -> None:
        orders = self.strategy.broker.orders
        for order in orders[self._orders_seen :]:
            seq = self._orders_seen
            self._seq[order.ref] = seq
            self._orders_seen += 1
            parent = getattr(order, "parent", None)
            self._new_orders.append(
                {
                    "seq": seq,
                    "ts": ts_ms(bt_times_to_utc([order.created.dt])[0]),
                    "side": _SIDES[order.isbuy()],
                    "type": bt.Order.ExecTypes[order.exectype].lower(),
                    "size": float(order.created.size),
                    "price": _float(order.created.price)
                    if order.exectype != bt.Order.Market
                    else None,
                    "parent": None
                    if parent is None or parent is order
                    else self._seq.get(parent.ref),
                    "tier": str(order.info.get("mlstrat_tier", "") or ""),
                }
            )

    def notify_order(self, order: bt.Order) -> None:
        self._sync_orders()
        before = len(self._rows)
        super().notify_order(order)
        seq = self._seq[order.ref]
        for row in self._rows[before:]:
            row["seq"] = seq
            row["part"] = self._parts.get(seq, 0)
            self._parts[seq] = row["part"] + 1

    def next(self) -> None:
        self._sync_orders()
        ts = ts_ms(bt_times_to_utc([self.data.datetime[0]])[0])
        position = float(self.strategy.broker.getposition(self.data).size)
        placed, self._new_orders = self._new_orders, []
        action = "; ".join(f"{o['side']} {o['type']}" for o in placed) or "hold"
        record = BarRecord(
            ts=ts,
            bar={"ts": ts, **{k: float(getattr(self.data, k)[0]) for k in OHLCV}, "live": 1},
            prediction=self._prediction(ts),
            decision={"ts": ts, "position": position, "action": action, "orders": len(placed)},
            orders=placed,
            fills=self._take_fills(),
            equity=self._equity(ts, position),
        )
        self.p.sink(record)

    def _prediction(self, ts: int) -> dict[str, Any]:
        row: dict[str, Any] = {"ts": ts}
        for name in self.p.columns:
            line = getattr(self.data.lines, name, None)
            row[name] = math.nan if line is None else float(line[0])
        return row

    def _take_fills(self) -> list[dict[str, Any]]:
        """`FillLog` rows added since the last bar, as fills-table rows."""
        rows = self._rows[self._fills_taken :]
        self._fills_taken = len(self._rows)
        keep = ("seq", "part", "size", "price", "raw_price", "commission")
        return [
            {"ts": ts_ms(bt_times_to_utc([row["timestamp"]])[0]), **{k: row[k] for k in keep}}
            for row in rows
        ]

    def _equity(self, ts: int, position: float) -> dict[str, Any]:
        broker = self.strategy.broker
        value, cash = float(broker.getvalue()), float(broker.getcash())
        return {"ts": ts, "value": value, "cash": cash, "position": position}


def status_line(record: BarRecord, symbol: str) -> str:
    """The one line `mlstrat paper` prints per bar: time, signal, confidence, position, equity."""
    stamp = ms_ts(record.ts).strftime("%Y-%m-%d %H:%M")
    signal = record.prediction.get("signal", float("nan"))
    conf = record.prediction.get("confidence", float("nan"))
    sig = "  nan" if signal != signal else f"{signal:+.0f}"
    action = record.decision["action"]
    return (
        f"{stamp} UTC {symbol} signal {sig} confidence {conf:.3f} "
        f"position {record.equity['position']:+.6g} equity {record.equity['value']:.2f}"
        + ("" if action == "hold" else f" ({action})")
    )
