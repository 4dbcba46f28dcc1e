"""Where paper trading gets its bars, and what it does with bars that come late, twice or not at all.

Two sources, both returning closed candles only (a candle opening at t is closed once the
clock reads t + timeframe) as validated Bars (`mlstrat.data` contract):

* `CandleSource`: a candle file, or a directory that another tool keeps appending to
  (the layouts `mlstrat.data.load_bars` reads: Parquet, CSV, Binance klines, freqtrade
  feather/json, ...). Files are re-read only when their size or mtime changes; a text
  file whose last line has no newline yet is being written and is read on a later poll.
* `CcxtSource`: an exchange's public OHLCV endpoint through ccxt (the ``live`` extra):
  no API keys, no orders; network errors are retried with exponential back-off.

`BarGate` compares what a source returns with the bars already journaled and hands the
engine the new bars in time order. A bar that is late (older than the last traded bar),
duplicated (a journaled timestamp with other values) or gapped (bars missing before it)
is reported in one line and handled by `BarPolicy`.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from mlstrat.data import OHLCV, gap_report, load_bars, validate_bars
from mlstrat.data.readers import read_raw, symbol_from_filename
from mlstrat.data.timeframe import fixed_nanos, normalize_timeframe
from mlstrat.errors import ConfigError, DataError, DataQualityWarning

#: report(kind, message): one line about the source, shown to the user and journaled.
Report = Callable[[str, str], None]
LATE_POLICIES = ("skip", "error")
DUPLICATE_POLICIES = ("skip", "error")
GAP_POLICIES = ("wait", "continue", "error")
_TEXT_SUFFIXES = (".csv", ".txt", ".tsv")
_DUPLICATE_KINDS = ("exact_duplicate", "conflicting_duplicate")


def timeframe_delta(timeframe: str) -> pd.Timedelta:
    """The fixed length of a bar (paper trading needs one; weekly/monthly bars have none)."""
    nanos = fixed_nanos(timeframe)
    if nanos is None:
        raise ConfigError(
            f"timeframe {timeframe!r} has no fixed length, so a closed candle cannot be told",
            fix="paper-trade minute, hourly or daily bars",
        )
    return pd.Timedelta(nanos, unit="ns")


def closed_only(bars: pd.DataFrame, timeframe: str, now: pd.Timestamp) -> pd.DataFrame:
    """The bars whose candle has closed by `now` (open time + timeframe <= now)."""
    closed = bars[bars.index + timeframe_delta(timeframe) <= now]
    closed.attrs = dict(bars.attrs)
    return closed


def utc_now() -> pd.Timestamp:
    """The wall clock in UTC (the default clock of sources and the engine)."""
    return pd.Timestamp.now(tz="UTC")


class Source(Protocol):
    """A supplier of closed bars for one symbol and timeframe."""

    symbol: str
    timeframe: str

    def describe(self) -> str:
        """One line naming the source, for the journal and the status header."""
        ...

    def poll(self, now: pd.Timestamp, since: pd.Timestamp | None, report: Report) -> pd.DataFrame:
        """Closed bars as validated Bars: those after `since` at least (the source may return
        more; `BarGate` sorts them out), all it has when `since` is None."""
        ...


# ---------------------------------------------------------------------------- candle files


@dataclass
class _FileState:
    stamp: tuple[int, int]
    bars: pd.DataFrame
    counts: dict[int, int]  # rows per timestamp (UTC ns), for timestamps written more than once


class CandleSource:
    """Closed bars of `symbol` from a candle file or a directory of them, re-read when they change.

    In a directory, the files whose name carries the symbol (BTCUSDT-1h.parquet,
    BTC_USDT-1h.feather, BTCUSDT-1h-2025-01.csv ...) and whose bars have `timeframe`
    are read and put together. `options` are data options of `load_bars` (from the
    configuration); paper trading overrides four of them: the format is detected per file,
    rows out of order are sorted (so a late bar reaches `BarGate` instead of failing the
    file), of rows sharing a timestamp the last one written wins, and the last bar is
    never dropped as incomplete (the clock decides whether a candle has closed).
    """

    def __init__(
        self,
        path: str | Path,
        symbol: str,
        timeframe: str,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ConfigError(
                "candle source not found",
                file=self.path,
                fix="give a candle file or a directory another tool writes candles into",
            )
        self.symbol = symbol
        self.timeframe = normalize_timeframe(timeframe)
        opts = {k: v for k, v in dict(options or {}).items() if k not in ("symbol", "timeframe")}
        opts.update(fmt="auto", sort=True, on_duplicate="keep_last", on_incomplete="keep")
        self.options = opts
        self._files: dict[Path, _FileState] = {}
        self._skipped: set[Path] = set()

    def describe(self) -> str:
        return f"candle files {self.path} ({self.symbol} {self.timeframe})"

    def poll(self, now: pd.Timestamp, since: pd.Timestamp | None, report: Report) -> pd.DataFrame:
        repeated: list[pd.Timestamp] = []
        frames = [self._read(path, report, repeated) for path in self._candidates()]
        frames = [f for f in frames if f is not None and len(f)]
        if not frames:
            if not self._files:
                raise DataError(
                    f"no candle file of {self.symbol} {self.timeframe} in the directory",
                    file=self.path,
                    fix=f"write candles to a file named like {self.symbol}-{self.timeframe}.csv",
                )
            return _empty_bars(self.symbol, self.timeframe)
        bars = pd.concat(frames).sort_index(kind="stable")
        bars = bars[~bars.index.duplicated(keep="last")]
        bars.attrs = {"symbol": self.symbol, "timeframe": self.timeframe, "repeated": repeated}
        return closed_only(bars, self.timeframe, now)

    def _candidates(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        found = []
        for path in sorted(self.path.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            if symbol_from_filename(path) == self.symbol:
                found.append(path)
        return found

    def _read(
        self, path: Path, report: Report, repeated: list[pd.Timestamp]
    ) -> pd.DataFrame | None:
        """The file's bars: re-read when it changed and is complete, else the last reading.
        Timestamps written once more since the last reading are added to `repeated`."""
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        state = self._files.get(path)
        if state is not None and state.stamp == stamp:
            return state.bars
        if path in self._skipped and state is None:
            return None
        if path.suffix.lower() in _TEXT_SUFFIXES and not _ends_with_newline(path):
            return None if state is None else state.bars  # a line is being written
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataQualityWarning)
            bars = load_bars(path, symbol=self.symbol, **self.options)
        timeframe = bars.attrs.get("timeframe")
        if timeframe is not None and normalize_timeframe(timeframe) != self.timeframe:
            if path not in self._skipped:
                self._skipped.add(path)
                report("source", f"{path.name}: {timeframe} bars, not {self.timeframe}; ignored")
            return None
        self._skipped.discard(path)
        counts = self._repeat_counts(path) if _duplicate_rows(bars) else {}
        before = {} if state is None else state.counts
        repeated += [
            pd.Timestamp(ts, tz="UTC") for ts, n in counts.items() if n > before.get(ts, 1)
        ]
        self._files[path] = _FileState(stamp, bars, counts)
        return bars

    def _repeat_counts(self, path: Path) -> dict[int, int]:
        """Rows per timestamp, for the timestamps a file holds more than once (UTC ns)."""
        raw = read_raw(path, str(self.options.get("fmt", "auto")))
        times = pd.DatetimeIndex(raw.times)
        if times.tz is None:
            times = times.tz_localize(self.options.get("tz") or raw.default_zone or "UTC")
        counts = pd.Series(times.tz_convert("UTC").as_unit("ns").asi8).value_counts()
        return {int(ts): int(n) for ts, n in counts.items() if n > 1}


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(0, 2)
        if handle.tell() == 0:
            return False
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"


def _duplicate_rows(bars: pd.DataFrame) -> int:
    kinds = (bars.attrs.get("quality") or {}).get("anomalies") or {}
    return int(sum((kinds.get(k) or {}).get("count", 0) for k in _DUPLICATE_KINDS))


def _empty_bars(symbol: str, timeframe: str) -> pd.DataFrame:
    index = pd.DatetimeIndex([], tz="UTC", name="timestamp")
    bars = pd.DataFrame({c: pd.Series(dtype=float) for c in OHLCV}, index=index)
    bars.attrs = {"symbol": symbol, "timeframe": timeframe}
    return bars


# ---------------------------------------------------------------------------- ccxt


def ccxt_timeframe(timeframe: str) -> str:
    """ccxt's name of a fixed timeframe: "1h" → "1h", "15min" → "15m", "1D" → "1d"."""
    seconds = int(timeframe_delta(timeframe).total_seconds())
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "m")):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def import_ccxt() -> Any:
    """The ccxt module, or a ConfigError saying how to install the optional `live` extra."""
    try:
        import ccxt
    except ImportError:
        raise ConfigError(
            "the ccxt source needs the ccxt package, which is not installed",
            fix="pip install 'mlstrat[live]' (or pip install ccxt)",
        ) from None
    return ccxt


class CcxtSource:
    """Closed bars from an exchange's public OHLCV endpoint through ccxt.

    exchange: a ccxt exchange id ("binance"); symbol: a ccxt market symbol ("BTC/USDT") or
    an exchange market id ("BTCUSDT", the form configurations use), resolved through the
    exchange's market list. `urls` and `options` are merged into the exchange's own (e.g.
    ``urls={"api": {"public": "http://127.0.0.1:8080/api/v3"}}`` for a mirror or a test
    server). No API key is ever set. A network error (timeout, 5xx, rate limit) is
    retried `retries` times, waiting `backoff`, 2·`backoff`, 4·`backoff` ... seconds (at
    most `max_wait`); each retry is reported in one line. `history` bars are fetched when
    a session starts.
    """

    page = 1000  # candles per request (Binance's maximum for spot klines)

    def __init__(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        *,
        history: int = 1000,
        urls: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        retries: int = 5,
        backoff: float = 1.0,
        max_wait: float = 60.0,
        timeout_ms: int = 10_000,
    ) -> None:
        ccxt = import_ccxt()
        if exchange not in ccxt.exchanges:
            raise ConfigError(
                f"ccxt knows no exchange {exchange!r}",
                fix="use a ccxt exchange id such as binance, kraken, bybit, okx or coinbase",
            )
        self._ccxt = ccxt
        settings: dict[str, Any] = {"enableRateLimit": True, "timeout": int(timeout_ms)}
        if urls:
            settings["urls"] = dict(urls)
        if options:
            settings["options"] = dict(options)
        self.exchange = getattr(ccxt, exchange)(settings)
        self.exchange_id = exchange
        self.symbol = symbol
        self.timeframe = normalize_timeframe(timeframe)
        self.ccxt_timeframe = ccxt_timeframe(self.timeframe)
        offered = getattr(self.exchange, "timeframes", None) or {}
        if offered and self.ccxt_timeframe not in offered:
            raise ConfigError(
                f"{exchange} has no {self.ccxt_timeframe} candles",
                fix=f"paper-trade a run on one of {', '.join(offered)}",
            )
        self.history = int(history)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_wait = float(max_wait)
        self._market: str | None = None
        self._step_ms = int(timeframe_delta(self.timeframe).total_seconds() * 1000)

    def describe(self) -> str:
        return f"ccxt {self.exchange_id} {self._market or self.symbol} {self.ccxt_timeframe}"

    def poll(self, now: pd.Timestamp, since: pd.Timestamp | None, report: Report) -> pd.DataFrame:
        market = self._resolve_market(report)
        now_ms = int(now.value // 1_000_000)
        start = now_ms - self.history * self._step_ms if since is None else _ms(since)
        rows: list[list[Any]] = []
        while True:
            page = self._call(
                report,
                self.exchange.fetch_ohlcv,
                market,
                self.ccxt_timeframe,
                since=start,
                limit=self.page,
            )
            page = [r for r in page if r and r[0] >= start]
            rows.extend(page)
            if len(page) < self.page or page[-1][0] + self._step_ms > now_ms:
                break
            start = int(page[-1][0]) + self._step_ms
        return closed_only(self._bars(rows), self.timeframe, now)

    def _bars(self, rows: list[list[Any]]) -> pd.DataFrame:
        if not rows:
            return _empty_bars(self.symbol, self.timeframe)
        table = np.asarray([r[:6] for r in rows], dtype=object)
        frame = pd.DataFrame(
            {name: pd.to_numeric(table[:, i + 1], errors="coerce") for i, name in enumerate(OHLCV)}
        )
        frame.index = pd.to_datetime(table[:, 0].astype("int64"), unit="ms", utc=True)
        twice = frame.index.duplicated(keep="last")
        repeated = list(frame.index[twice].unique())
        frame = frame[~twice]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataQualityWarning)
            bars = validate_bars(
                frame,
                file=self.describe(),
                symbol=self.symbol,
                timeframe=self.timeframe,
                sort=True,
                on_incomplete="keep",
            )
        bars.attrs["repeated"] = repeated
        return bars

    def _resolve_market(self, report: Report) -> str:
        """The ccxt symbol of `self.symbol` (markets are loaded once, with retries)."""
        if self._market is not None:
            return self._market
        markets = self._call(report, self.exchange.load_markets)
        if self.symbol in markets:
            self._market = self.symbol
        else:
            by_id = self.exchange.markets_by_id or {}
            hits = by_id.get(self.symbol) or by_id.get(self.symbol.upper()) or []
            spot = [m for m in hits if m.get("spot")] or list(hits)
            if not spot:
                raise ConfigError(
                    f"{self.exchange_id} has no market {self.symbol!r}",
                    fix=f"give the ccxt symbol in the source, e.g. ccxt:{self.exchange_id}:BTC/USDT",
                )
            self._market = str(spot[0]["symbol"])
        return self._market

    def _call(self, report: Report, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)`, retried with exponential back-off on network errors."""
        ccxt = self._ccxt
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except ccxt.NetworkError as exc:
                if attempt == self.retries:
                    raise DataError(
                        f"{self.describe()}: no answer after {self.retries + 1} tries "
                        f"({type(exc).__name__}: {_short(exc)})",
                        fix="check the network and the exchange's status; a restarted session "
                        "resumes from its journal",
                    ) from None
                wait = min(self.max_wait, self.backoff * 2**attempt)
                report(
                    "retry",
                    f"{self.describe()}: {type(exc).__name__} ({_short(exc)}); retry "
                    f"{attempt + 1}/{self.retries} in {wait:g} s",
                )
                time.sleep(wait)
            except ccxt.BaseError as exc:
                raise DataError(
                    f"{self.describe()}: the exchange refused the request ({type(exc).__name__}: "
                    f"{_short(exc)})",
                    fix="check the exchange id, the symbol and the timeframe",
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ms(ts: pd.Timestamp) -> int:
    return int(pd.Timestamp(ts).value // 1_000_000)


# ---------------------------------------------------------------------------- source specs


def open_source(
    spec: str,
    symbol: str,
    timeframe: str,
    *,
    options: Mapping[str, Any] | None = None,
    history: int | None = None,
) -> Source:
    """A source from its command-line form: ``ccxt:EXCHANGE[:SYMBOL]`` or a candle path.

    `symbol` is the configuration's (an exchange market id such as BTCUSDT for ccxt
    unless the spec names a ccxt symbol); `options` are the configuration's data options
    for candle files; `history` is how many bars a ccxt source fetches at the start.
    """
    if spec.startswith("ccxt:"):
        parts = spec.split(":", 2)
        exchange = parts[1] if len(parts) > 1 else ""
        if not exchange:
            raise ConfigError(
                f"source {spec!r} names no exchange", fix="use ccxt:EXCHANGE, e.g. ccxt:binance"
            )
        market = parts[2] if len(parts) > 2 and parts[2] else symbol
        return CcxtSource(exchange, market, timeframe, history=history or 1000)
    return CandleSource(spec, symbol, timeframe, options)


# ---------------------------------------------------------------------------- the gate


@dataclass(frozen=True)
class BarPolicy:
    """What to do with a bar that is late, duplicated or follows a gap.

    on_late: a bar older than the last traded bar (it cannot be traded any more):
        "skip" it (reported, its values kept in the journal's events) or "error".
    on_duplicate: a timestamp written twice, or a traded bar coming back with other
        values: "skip" the repeat (a traded bar keeps the values its decision was made on;
        before trading, the last row written is used; reported, kept in the events) or
        "error".
    on_gap: bars missing before a new bar: "wait" up to `gap_wait` seconds for them to
        arrive, then trade on; "continue" at once; or "error".
    """

    on_late: str = "skip"
    on_duplicate: str = "skip"
    on_gap: str = "wait"
    gap_wait: float = 300.0

    def __post_init__(self) -> None:
        for name, allowed in (
            ("on_late", LATE_POLICIES),
            ("on_duplicate", DUPLICATE_POLICIES),
            ("on_gap", GAP_POLICIES),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(
                    f"{name}={value!r} is not one of {', '.join(allowed)}",
                    fix=f"use {name}={allowed[0]!r}",
                )
        if not (self.gap_wait >= 0 and math.isfinite(self.gap_wait)):
            raise ConfigError(f"gap_wait={self.gap_wait!r} is not a number of seconds >= 0")


@dataclass(frozen=True)
class Rejected:
    """A bar the gate did not pass on, and why (kept in the journal's events)."""

    kind: str
    timestamp: pd.Timestamp
    values: tuple[float, ...]
    message: str


@dataclass
class BarGate:
    """Sorts a source's answer into new bars to trade, in order, and bars to report.

    `known` maps journaled timestamps (UTC nanoseconds) to their OHLCV values; `last` is
    the newest traded bar. Bars older than the first known bar are ignored (history the
    session did not keep). Every distinct late or duplicated bar is reported once.
    """

    timeframe: str
    known: dict[int, tuple[float, ...]]
    last: pd.Timestamp | None
    policy: BarPolicy = field(default_factory=BarPolicy)
    calendar: Any = None
    clock: Callable[[], float] = time.monotonic
    _first: int | None = None
    _reported: set[tuple[str, int, tuple[float, ...]]] = field(default_factory=set)
    _waiting: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._first = min(self.known) if self.known else None

    def admit(self, bars: pd.DataFrame, report: Report) -> tuple[pd.DataFrame, list[Rejected]]:
        """(new bars to trade now, in order; late or duplicated bars first seen on this call,
        for the caller to report and journal). Gaps are reported through `report`."""
        rejected: list[Rejected] = []
        repeated = {int(pd.Timestamp(ts).value) for ts in bars.attrs.get("repeated") or ()}
        stamps = bars.index.as_unit("ns").asi8
        values = bars[list(OHLCV)].to_numpy(dtype=float)
        last = None if self.last is None else self.last.value
        new: list[int] = []
        for i, ts in enumerate(stamps):
            ts = int(ts)
            row = tuple(float(v) for v in values[i])
            if self._first is not None and ts < self._first:
                continue
            old = self.known.get(ts)
            if old is not None:
                if not _same(old, row) or ts in repeated:
                    rejected += self._reject("duplicate", ts, row, old)
            elif last is not None and ts < last:
                rejected += self._reject("late", ts, row, None)
            else:
                if ts in repeated:
                    rejected += self._reject("duplicate", ts, row, None)
                new.append(i)
        passed = self._through_gaps(bars.iloc[new], report)
        for ts, row in zip(
            passed.index.as_unit("ns").asi8,
            passed[list(OHLCV)].to_numpy(dtype=float),
            strict=True,
        ):
            self.known[int(ts)] = tuple(float(v) for v in row)
        if len(passed):
            self.last = passed.index[-1]
            if self._first is None:
                self._first = int(passed.index[0].value)
        return passed, rejected

    def _reject(
        self,
        kind: str,
        ts: int,
        row: tuple[float, ...],
        old: tuple[float, ...] | None,
    ) -> list[Rejected]:
        key = (kind, ts, row)
        if key in self._reported:
            return []
        self._reported.add(key)
        stamp = pd.Timestamp(ts, tz="UTC")
        if kind == "late":
            what = (
                f"late bar {_iso(stamp)} arrived after {_iso(self.last)} was traded "
                f"(close {row[3]:.10g})"
            )
            policy = self.policy.on_late
            fix = "pass on_late='skip' (--on-late skip) to record it and trade on"
        elif old is None:
            what = f"duplicated bar {_iso(stamp)} written more than once before it was traded"
            policy = self.policy.on_duplicate
            fix = "pass on_duplicate='skip' (--on-duplicate skip) to trade the last row written"
        else:
            changed = ", ".join(
                f"{name} {a:.10g} -> {b:.10g}"
                for name, a, b in zip(OHLCV, old, row, strict=True)
                if not _same((a,), (b,))
            )
            what = f"duplicated bar {_iso(stamp)} came again " + (
                f"with other values ({changed})" if changed else "with the same values"
            )
            policy = self.policy.on_duplicate
            fix = "pass on_duplicate='skip' (--on-duplicate skip) to keep the traded values"
        if policy == "error":
            raise DataError(what, timestamp=_iso(stamp), fix=fix)
        if kind == "duplicate" and old is None:
            message = f"{what}; the last row written is traded (kept in the journal's events)"
        else:
            message = f"{what}; skipped, the traded bar stands (kept in the journal's events)"
        return [Rejected(kind, stamp, row, message)]

    def _through_gaps(self, bars: pd.DataFrame, report: Report) -> pd.DataFrame:
        """The leading bars that follow the last bar without a gap, or that may pass one."""
        previous = self.last
        for i, ts in enumerate(bars.index):
            if previous is not None:
                gaps = gap_report(
                    _pair(previous, ts, self.timeframe), self.timeframe, self.calendar
                )
                if gaps and not self._may_pass(gaps[0], ts, report):
                    return bars.iloc[:i]
            previous = ts
        return bars

    def _may_pass(self, gap: Any, ts: pd.Timestamp, report: Report) -> bool:
        key = int(ts.value)
        text = f"gap before {_iso(ts)}: {gap.missing} bar(s) missing from {_iso(gap.start)}"
        if self.policy.on_gap == "error":
            raise DataError(
                text,
                timestamp=_iso(ts),
                fix="pass on_gap='wait' or 'continue' (--on-gap) to trade on after a gap",
            )
        if self.policy.on_gap == "continue":
            if key not in self._waiting:
                self._waiting[key] = self.clock()
                report("gap", f"{text}; trading on without them")
            return True
        started = self._waiting.get(key)
        if started is None:
            self._waiting[key] = started = self.clock()
            report(
                "gap",
                f"{text}; waiting up to {self.policy.gap_wait:g} s for them, then trading on",
            )
        return self.clock() - started >= self.policy.gap_wait


def _pair(a: pd.Timestamp, b: pd.Timestamp, timeframe: str) -> pd.DataFrame:
    index = pd.DatetimeIndex([a, b], name="timestamp")
    frame = pd.DataFrame({c: [1.0, 1.0] for c in OHLCV}, index=index)
    frame.attrs["timeframe"] = timeframe
    return frame


def _same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x == y or (x != x and y != y) for x, y in zip(a, b, strict=True))


def _iso(ts: pd.Timestamp | None) -> str:
    if ts is None:
        return "(none)"
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
