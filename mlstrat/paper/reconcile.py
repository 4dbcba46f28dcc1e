"""Reconciliation: backtest a paper session's window from its journaled bars, compare bar by bar.

The backtest side is built the way the backtest stage builds one: features computed in one
batch over every journaled bar (history and traded), each traded bar predicted by its fold
model in one batch per fold, a `FeatureFeed` over the traded window joined with those
predictions, and `mlstrat.run.configured_backtest` with the configured strategy, sizer and
broker. The same `JournalRecorder` writes that run into an in-memory journal, so the two
journals compare table by table: bars, predictions, decisions, orders, fills and equity.
Any difference is listed with both sides' values; the earliest one is the divergence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.config import RunConfig
from mlstrat.errors import IntegrityError
from mlstrat.feed import FeatureFeed
from mlstrat.paper.engine import PaperSettings, bars_frame, check_journal, run_paper
from mlstrat.paper.journal import TABLE_KEYS, Journal, JournalRecorder, ms_ts, same_value
from mlstrat.paper.models import PaperRun


@dataclass(frozen=True)
class Difference:
    """One value (or row) on which paper and backtest disagree."""

    table: str
    ts: int  # the bar it belongs to (UTC ms)
    key: tuple[Any, ...]
    column: str
    paper: Any
    backtest: Any

    def __str__(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in zip(TABLE_KEYS[self.table], self.key, strict=True))
        when = ms_ts(self.ts).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"{when} {self.table}.{self.column} ({where}): paper {_show(self.paper)}, "
            f"backtest {_show(self.backtest)}"
        )


@dataclass
class Reconciliation:
    """The outcome: traded window, rows per table on each side, every difference found."""

    journal: Path
    window: tuple[pd.Timestamp, pd.Timestamp] | None
    rows: dict[str, tuple[int, int]]
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def first(self) -> Difference | None:
        """The divergence: the earliest difference (by bar, then table order)."""
        return self.differences[0] if self.differences else None

    def summary(self) -> str:
        """One line: the window and the rows compared per table, and how many differ."""
        if self.window is None:
            span = "no traded bars"
        else:
            span = f"{self.window[0].isoformat()} .. {self.window[1].isoformat()}"
        counts = ", ".join(
            f"{t} {p}" + ("" if p == b else f"/{b}") for t, (p, b) in self.rows.items()
        )
        verdict = "identical" if self.ok else f"{len(self.differences)} differences"
        return f"{self.journal}: {span}; rows {counts}: {verdict}"

    def check(self) -> Reconciliation:
        """Self if paper and backtest agree, else an IntegrityError naming the divergence."""
        if self.ok:
            return self
        tables = sorted({d.table for d in self.differences})
        raise IntegrityError(
            f"paper and backtest diverge at {self.first} ({len(self.differences)} differences "
            f"in {', '.join(tables)})",
            file=self.journal,
            fix="the journal was written by other code, models or bars than the backtest uses; "
            "`mlstrat reconcile --show 20` lists more differences",
        )


def reconcile(
    journal: str | Path,
    config: RunConfig,
    *,
    run_dir: str | Path | None = None,
    tolerance: float = 0.0,
) -> Reconciliation:
    """Backtest the journal's traded window from its bars and compare it with the paper session.

    tolerance: relative difference allowed between numbers (0: exact, the default; float
    differences between a model's one-row and batch predictions, e.g. of Keras kernels, may
    need 1e-6).
    """
    journal = Path(journal)
    with Journal.open(journal, readonly=True) as paper:
        run = _run_of(paper, config, run_dir)
        backtest = backtest_journal(paper, run)
        rows, differences = compare(paper, backtest, tolerance)
        window = _window(paper)
    return Reconciliation(journal, window, rows, differences)


def _run_of(paper: Journal, config: RunConfig, run_dir: str | Path | None) -> PaperRun:
    meta = paper.meta()
    run = PaperRun.open(
        config,
        run_dir if run_dir is not None else meta.get("run_dir"),
        predictor=meta.get("predictor"),
        symbol=meta.get("symbol"),
    )
    check_journal(paper, run)
    return run


def backtest_journal(paper: Journal, run: PaperRun) -> Journal:
    """The backtest of the journal's traded bars, recorded into an in-memory journal."""
    from mlstrat.run import configured_backtest

    known = paper.bars()
    bars = bars_frame(known, run.symbol, run.timeframe)
    live = np.flatnonzero(known["live"].to_numpy())
    memory = Journal.memory(paper.meta(), run.prediction_columns)
    if not len(live):
        return memory
    features = run.features(bars)
    predictions = run.predictions(features, live)
    window = features.iloc[live]
    feed = FeatureFeed.from_frame(
        window, columns=run.columns, name=run.symbol, predictions=predictions
    )
    configured_backtest(
        run.config,
        run.predictor,
        {run.symbol: feed},
        analyzers=[
            (
                JournalRecorder,
                {
                    "_name": "mlstrat_journal",
                    "sink": memory.record,
                    "columns": run.prediction_columns,
                },
            )
        ],
    )
    return memory


def compare(
    paper: Journal, backtest: Journal, tolerance: float = 0.0
) -> tuple[dict[str, tuple[int, int]], list[Difference]]:
    """(rows per table on each side, every difference ordered by bar then table)."""
    rows: dict[str, tuple[int, int]] = {}
    found: list[Difference] = []
    for table in TABLE_KEYS:
        mine = dict(_keyed(paper, table))
        theirs = dict(_keyed(backtest, table))
        rows[table] = (len(mine), len(theirs))
        for key in sorted(set(mine) | set(theirs)):
            a, b = mine.get(key), theirs.get(key)
            ts = int((a or b)["ts"])
            if a is None or b is None:
                found.append(Difference(table, ts, key, "(row)", _row(a), _row(b)))
                continue
            for column in a:
                if not same_value(a[column], b.get(column), tolerance):
                    found.append(Difference(table, ts, key, column, a[column], b.get(column)))
    table_order = list(TABLE_KEYS)
    found.sort(key=lambda d: (d.ts, table_order.index(d.table), d.key))
    return rows, found


def _keyed(journal: Journal, table: str) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    keys = TABLE_KEYS[table]
    where = " WHERE live = 1" if table == "bars" else ""
    cursor = journal.conn.execute(f"SELECT * FROM {table}{where}")
    names = [d[0] for d in cursor.description]
    for values in cursor:
        row = dict(zip(names, values, strict=True))
        yield tuple(row[k] for k in keys), row


def _window(journal: Journal) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    low, high = journal.conn.execute("SELECT MIN(ts), MAX(ts) FROM bars WHERE live = 1").fetchone()
    return None if low is None else (ms_ts(low), ms_ts(high))


def _row(row: dict[str, Any] | None) -> str:
    if row is None:
        return "(missing)"
    return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in row.items()) + "}"


def _show(value: Any) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def journal_result(
    journal: str | Path, config: RunConfig, *, run_dir: str | Path | None = None
) -> Any:
    """The paper session's BacktestResult, rebuilt by replaying its journal through the paper
    path (every bar checked against the journal), for `mlstrat report --journal`."""
    with Journal.open(journal, readonly=True) as paper:
        meta = paper.meta()
    session = run_paper(
        config,
        None,
        journal,
        run_dir=run_dir if run_dir is not None else meta.get("run_dir"),
        predictor=meta.get("predictor"),
        symbol=meta.get("symbol"),
        settings=PaperSettings(),
        on_status=None,
        on_event=lambda line: None,
    )
    return session.result
