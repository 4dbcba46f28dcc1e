"""A paper-trading session: the configured strategy in backtrader's live mode on closed bars.

    from mlstrat.config import load_config
    from mlstrat.paper import CandleSource, PaperSettings, run_paper
    cfg = load_config("configs/demo.yaml")
    run_paper(cfg, CandleSource("user_data/data/binance", "BTCUSDT", "1h"), "paper.sqlite",
              run_dir="reports/demo", predictor="xgboost")

Nothing here decides a trade. The session builds the Cerebro through
`mlstrat.run.configured_backtest` (the function the backtest stage calls, so strategy, sizer,
broker, costs and fill timing are the backtest's), on one live data feed whose lines are the
backtest feed's lines. Each bar that closes is appended to the bar history, the run's
features are computed on the history (causal, so the last row equals the batch value), the
fold model of that bar predicts it, and the feed hands the row to backtrader. After the
strategy's ``next()`` the `JournalRecorder` writes the bar, prediction, decision, orders,
fills and equity to the journal in one transaction.

Restart: a session reopening its journal first replays every journaled bar through the same
strategy (so broker, positions and pending orders are rebuilt exactly) and checks each
replayed bar's rows against the journal instead of writing them; then it asks the source for
the bars after the last journaled one. Orders are therefore never placed twice, and a bar
that was in progress when the process died is fetched again.

The live feed waits inside ``_load`` until a bar is ready and never returns None: a None
makes Cerebro run a broker cycle on the previous bar again, which activates bracket orders
and matches stop/limit orders against that bar a second time — fills a backtest never has.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.config import RunConfig
from mlstrat.data import OHLCV
from mlstrat.errors import ConfigError, DataError
from mlstrat.feed import FeatureFeed, date2num_array
from mlstrat.paper.journal import BarRecord, Journal, JournalRecorder, status_line
from mlstrat.paper.models import PaperRun
from mlstrat.paper.sources import BarGate, BarPolicy, Source, utc_now

Printer = Callable[[str], None]
_NAN = math.nan


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class PaperSettings:
    """How a session runs.

    poll: seconds between source polls. history: bars kept before the first traded bar
    for the features (None: all the source has). start: trade bars from this time on even
    if the source already has them (default: only bars that close after the session
    starts). until / max_bars: stop after the bar at or after `until`, or after
    `max_bars` new bars. policy: late / duplicated / gapped bars. max_failures:
    consecutive failed polls before the session gives up (each is reported).
    """

    poll: float = 60.0
    history: int | None = None
    start: pd.Timestamp | None = None
    until: pd.Timestamp | None = None
    max_bars: int | None = None
    policy: BarPolicy = field(default_factory=BarPolicy)
    max_failures: int = 10

    def __post_init__(self) -> None:
        if not (self.poll > 0 and math.isfinite(self.poll)):
            raise ConfigError(f"poll={self.poll!r} is not a positive number of seconds")
        if self.history is not None and self.history < 1:
            raise ConfigError(f"history={self.history!r} must be at least 1 bar")
        self.start = _utc(self.start)
        self.until = _utc(self.until)


@dataclass
class PaperResult:
    """What a session did: its journal, the backtrader result of every bar it ran
    (replayed and new), how many bars were replayed and traded, and why it stopped."""

    journal: Path
    result: Any
    replayed: int
    traded: int
    stopped: str


def _utc(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def bars_frame(frame: pd.DataFrame, symbol: str, timeframe: str) -> pd.DataFrame:
    """OHLCV Bars with only the attrs features read (paper and its reconciliation agree)."""
    out = frame[list(OHLCV)].astype(float)
    out.index = pd.DatetimeIndex(frame.index, name="timestamp")
    out.attrs = {"symbol": symbol, "timeframe": timeframe}
    return out


# ---------------------------------------------------------------------------- the bar stream


class BarStream:
    """Rows for the live feed: the journaled bars first (replay), then new closed bars.

    `next_row()` blocks until a row is ready and returns None when the session is to stop.
    """

    def __init__(
        self,
        run: PaperRun,
        journal: Journal,
        source: Source | None,
        settings: PaperSettings,
        *,
        clock: Callable[[], pd.Timestamp],
        on_event: Printer,
        stop: threading.Event,
    ) -> None:
        self.run = run
        self.journal = journal
        self.source = source
        self.settings = settings
        self.clock = clock
        self.on_event = on_event
        self.stop = stop
        self.stopped = "source ended"
        self.traded = 0
        self.failures = 0
        known = journal.bars()
        self.bars = bars_frame(known, run.symbol, run.timeframe)
        live = np.flatnonzero(known["live"].to_numpy())
        self.replay = list(live)
        self.replayed = len(live)
        self._replay_features = run.features(self.bars) if len(live) else None
        last = known.index[live[-1]] if len(live) else None
        values = self.bars[list(OHLCV)].to_numpy(dtype=float)
        self.gate = BarGate(
            run.timeframe,
            {
                int(ts): tuple(map(float, row))
                for ts, row in zip(self.bars.index.as_unit("ns").asi8, values, strict=True)
            },
            last if last is not None else (self.bars.index[-1] if len(self.bars) else None),
            settings.policy,
        )
        self.pending: list[tuple[pd.Timestamp, tuple[float, ...]]] = []
        self.last_processed: pd.Timestamp | None = last
        self._next_poll = 0.0

    # -- events ---------------------------------------------------------------

    def report(self, kind: str, message: str) -> None:
        """One line on the event printer, and the same line in the journal's events."""
        self.on_event(f"paper: {kind}: {message}")
        self.journal.event(kind, message)

    def admit(self, bars: pd.DataFrame) -> None:
        """Pass a source's answer through the gate; queue the new bars, journal the rest."""
        passed, rejected = self.gate.admit(bars, self.report)
        for item in rejected:
            self.on_event(f"paper: {item.kind}: {item.message}")
            self.journal.event(item.kind, item.message, item.timestamp, item.values)
        values = passed[list(OHLCV)].to_numpy(dtype=float)
        self.pending += [
            (ts, tuple(map(float, row))) for ts, row in zip(passed.index, values, strict=True)
        ]

    # -- rows -----------------------------------------------------------------

    def next_row(self) -> dict[str, float] | None:
        """The next bar's line values (OHLCV, predictions, features), or None to stop."""
        if self.replay:
            return self._row(self._replay_features, int(self.replay.pop(0)))
        while True:
            why = self._should_stop()
            if why:
                self.stopped = why
                return None
            if self.pending:
                return self._live_row(*self.pending.pop(0))
            if self.source is None:
                self.stopped = "journal replayed"
                return None
            wait = self._next_poll - time.monotonic()
            if wait > 0:
                self.stop.wait(min(wait, 0.25))
                continue
            self._next_poll = time.monotonic() + self.settings.poll
            self._poll()

    def _should_stop(self) -> str:
        s = self.settings
        if self.stop.is_set():
            return "stop requested"
        if (
            s.until is not None
            and self.last_processed is not None
            and self.last_processed >= s.until
        ):
            return f"reached {s.until.isoformat()}"
        if s.max_bars is not None and self.traded >= s.max_bars:
            return f"traded {self.traded} bars"
        return ""

    def _poll(self) -> None:
        assert self.source is not None
        try:
            bars = self.source.poll(self.clock(), self.gate.last, self.report)
        except (DataError, OSError) as exc:
            self.failures += 1
            if self.failures >= self.settings.max_failures:
                raise
            self.report(
                "source",
                f"{exc} (failure {self.failures}/{self.settings.max_failures}; polling again "
                f"in {self.settings.poll:g} s)",
            )
            return
        self.failures = 0
        self.admit(bars)

    def _live_row(self, ts: pd.Timestamp, values: tuple[float, ...]) -> dict[str, float]:
        new = pd.DataFrame(
            [values], index=pd.DatetimeIndex([ts], name="timestamp"), columns=list(OHLCV)
        )
        self.bars = bars_frame(pd.concat([self.bars, new]), self.run.symbol, self.run.timeframe)
        self.traded += 1
        features = self.run.features(self.bars)
        return self._row(features, len(features) - 1)

    def _row(self, features: pd.DataFrame, pos: int) -> dict[str, float]:
        ts = features.index[pos]
        self.last_processed = ts
        prediction = self.run.predictions(features, np.array([pos])).iloc[0]
        row: dict[str, float] = {c: float(features[c].iloc[pos]) for c in OHLCV}
        row["datetime"] = float(date2num_array(pd.DatetimeIndex([ts]))[0])
        row["openinterest"] = _NAN
        targets = _targets(features)
        for column in self.run.columns:
            if column in prediction.index:
                row[column] = float(prediction[column])
            elif column in targets:
                row[column] = _NAN  # the future: unknown when the bar closes, also in a replay
            else:
                row[column] = float(features[column].iloc[pos])
        return row


def _targets(features: pd.DataFrame) -> set[str]:
    roles = (features.attrs.get("mlstrat") or {}).get("roles") or {}
    return {c for c, r in roles.items() if r == "target"}


# ---------------------------------------------------------------------------- the live feed


class _LiveMixin:
    """Turns a FeatureFeed class into a live feed fed by a BarStream (set as `stream`)."""

    stream: BarStream

    def islive(self) -> bool:
        return True

    def haslivedata(self) -> bool:
        return bool(self.stream.pending or self.stream.replay)

    def _load(self) -> bool:
        row = self.stream.next_row()
        if row is None:
            return False
        for line, name in zip(self.lines.lines, self._line_names, strict=True):  # type: ignore[attr-defined]
            line[0] = row.get(name, _NAN)
        return True


def live_feed(run: PaperRun, stream: BarStream) -> FeatureFeed:
    """A live data feed with the backtest feed's lines (class, order, timeframe, name)."""
    empty = pd.DataFrame(
        {c: pd.Series(dtype=float) for c in (*OHLCV, *run.columns)},
        index=pd.DatetimeIndex([], tz="UTC", name="timestamp"),
    )
    empty.attrs = {"symbol": run.symbol, "timeframe": run.timeframe}
    proto = FeatureFeed.from_frame(empty, columns=run.columns, name=run.symbol)
    base = type(proto)
    klass = type(f"Live{base.__name__}", (_LiveMixin, base), {"__module__": __name__})
    feed = klass(
        dataname=empty,
        name=run.symbol,
        timeframe=proto.p.timeframe,
        compression=proto.p.compression,
    )
    feed.stream = stream
    feed._line_names = list(feed.lines.getlinealiases())
    return feed


# ---------------------------------------------------------------------------- the session


def run_paper(
    config: RunConfig,
    source: Source | None,
    journal: str | Path,
    *,
    run_dir: str | Path | None = None,
    predictor: str | None = None,
    symbol: str | None = None,
    settings: PaperSettings | None = None,
    clock: Callable[[], pd.Timestamp] = utc_now,
    on_status: Printer | None = print,
    on_event: Printer = _stderr,
    stop: threading.Event | None = None,
) -> PaperResult:
    """Paper-trade `config`'s strategy on `source`'s bars, journaling into `journal`.

    A new journal starts from the bars the source has now (the last `settings.history` as
    feature history; with `settings.start`, bars from then on are traded at once); an
    existing one is replayed and continued. `source=None` only replays the journal (what
    `mlstrat report --journal` does). `on_status` gets one line per traded bar, `on_event`
    one line per late, duplicated or gapped bar and per source problem. `stop` (set from a
    signal handler, say) ends the session after the bar in progress.
    """
    from mlstrat.walkforward.runner import prefer_passive_openmp

    prefer_passive_openmp()  # before XGBoost loads: spinning OpenMP threads cost 0.1 s a bar
    settings = settings or PaperSettings()
    stop = stop or threading.Event()
    journal = Path(journal)
    run = PaperRun.open(config, run_dir, predictor=predictor, symbol=symbol)
    book = _open_journal(journal, run, source, settings, clock, on_event)
    try:
        stream = BarStream(run, book, source, settings, clock=clock, on_event=on_event, stop=stop)
        if book.created_now:
            stream.admit(book.start_bars)
        last_journaled = book.last_live()
        if stream.replayed:
            on_event(f"paper: replaying {stream.replayed} journaled bars")

        def sink(record: BarRecord) -> None:
            if last_journaled is not None and record.ts <= last_journaled:
                book.verify(record)
                return
            book.record(record)
            if on_status is not None:
                on_status(status_line(record, run.symbol))

        from mlstrat.run import configured_backtest

        feed = live_feed(run, stream)
        result = configured_backtest(
            run.config,
            run.predictor,
            {run.symbol: feed},
            analyzers=[
                (
                    JournalRecorder,
                    {"_name": "mlstrat_journal", "sink": sink, "columns": run.prediction_columns},
                )
            ],
        )
        return PaperResult(journal, result, stream.replayed, stream.traded, stream.stopped)
    finally:
        book.close()


class _Book(Journal):
    """A journal opened for a session, with the bars a new session starts from."""

    created_now: bool = False
    start_bars: pd.DataFrame


def _open_journal(
    path: Path,
    run: PaperRun,
    source: Source | None,
    settings: PaperSettings,
    clock: Callable[[], pd.Timestamp],
    on_event: Printer,
) -> _Book:
    """Reopen the session's journal (checking it belongs to this run) or start a new one."""
    if source is not None and source.timeframe != run.timeframe:
        raise ConfigError(
            f"the source gives {source.timeframe} bars but the run was trained on {run.timeframe}",
            fix=f"use a source of {run.timeframe} candles",
        )
    if path.exists():
        book = _Book.open(path, readonly=source is None)
        check_journal(book, run)
        if source is not None:
            _session_event(book, on_event, f"resumed with {source.describe()}")
        return book
    if source is None:
        raise ConfigError("journal not found", file=path, fix="give the journal a session wrote")
    bars = source.poll(clock(), None, lambda kind, msg: on_event(f"paper: {kind}: {msg}"))
    history = bars if settings.start is None else bars[bars.index < settings.start]
    if settings.history is not None:
        history = history.iloc[-settings.history :]
    if not len(history):
        raise DataError(
            f"the source has no closed bar before the session starts ({source.describe()})",
            fix="give a source with history (the features need it), or a later --start",
        )
    meta = {
        **run.describe(),
        "source": source.describe(),
        "history_bars": len(history),
        "policy": vars(settings.policy),
        "created": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    }
    book = _Book.create(
        path, meta, run.prediction_columns, bars_frame(history, run.symbol, run.timeframe)
    )
    book.created_now = True
    book.start_bars = bars[bars.index > history.index[-1]]
    _session_event(
        book,
        on_event,
        f"new journal {path}: {len(history)} bars of history up to "
        f"{history.index[-1].isoformat()} from {source.describe()}",
    )
    return book


def _session_event(book: Journal, on_event: Printer, message: str) -> None:
    on_event(f"paper: session: {message}")
    book.event("session", message)


def check_journal(book: Journal, run: PaperRun) -> None:
    """The journal was written for this configuration, run, predictor and symbol."""
    meta = book.meta()
    mine = run.describe()
    for key in ("config_hash", "predictor", "symbol", "timeframe", "columns"):
        if meta.get(key) != mine[key]:
            book.close()
            raise ConfigError(
                f"the journal was written for another {key.replace('_', ' ')} "
                f"({meta.get(key)!r}, now {mine[key]!r})",
                file=book.path,
                fix="use the configuration and run the journal was started with, or start a "
                "new journal",
            )
