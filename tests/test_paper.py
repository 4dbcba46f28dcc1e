"""Paper trading: sources, journal, restart, reconciliation against the backtest, faults.

One small walk-forward run (XGBoost on the core features, three 10-day folds, a bracket
strategy) is trained once; the tests paper-trade the shipped BTCUSDT candles after it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pytest
import yaml

from mlstrat.config import load_config
from mlstrat.errors import ConfigError, DataError, IntegrityError, LockError
from mlstrat.paper import (
    BarPolicy,
    CandleSource,
    CcxtSource,
    Journal,
    PaperSettings,
    journal_result,
    reconcile,
    run_paper,
)
from mlstrat.paper.sources import BarGate
from mlstrat.run import run_experiment

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "datasets" / "BTCUSDT-1h.parquet"
HOUR = pd.Timedelta("1h")
OHLCV = ["open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return pd.read_parquet(SAMPLE).set_index("timestamp")[OHLCV]


def paper_config(data: Path, **strategy: object) -> dict:
    """XGBoost on core features, 2025-01-01..02-20, 20-day train / 10-day test folds; the
    strategy uses stop-loss and take-profit brackets (the orders a live loop could misfire)."""
    params = {"allow_short": True, "max_hold_bars": 6, "stop_loss": 0.004, "take_profit": 0.006}
    params.update(strategy)
    return {
        "name": "paper",
        "seed": 3,
        "n_jobs": 1,
        "data": {"files": [{"path": str(data)}], "start": "2025-01-01", "end": "2025-02-20"},
        "features": {"set": "core", "targets": ["direction:1", "forward_return:1"]},
        "predictors": [
            {
                "name": "xgb",
                "predictor": "xgboost",
                "params": {"n_estimators": 15, "max_depth": 3, "early_stopping_rounds": None},
            }
        ],
        "walkforward": {"train": "20D", "test": "10D", "validation": 0.25},
        "strategy": {
            "class": str(REPO / "strategies" / "tiered_long_short.py") + ":TieredLongShort",
            "params": params,
        },
        "sizing": {"params": {"tiers": [[0.5, 0.25], [0.52, 0.5], [0.55, 0.9]]}},
        "broker": {"cash": 10_000, "commission": 0.001, "slippage": 0.0005},
        "report": {"enabled": False},
    }


def write_yaml(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("paper")
    cfg_path = write_yaml(root / "paper.yaml", paper_config(SAMPLE))
    run_experiment(cfg_path, root / "run", progress=False)
    folds = json.loads((root / "run" / "models" / "xgb" / "BTCUSDT" / "folds.json").read_text())
    starts = [pd.Timestamp(f["test_start"]) for f in folds]
    assert len(starts) >= 3
    return SimpleNamespace(
        root=root,
        cfg_path=cfg_path,
        config=load_config(cfg_path),
        run_dir=root / "run",
        boundary=starts[1],  # a fold switch with a whole fold on either side
    )


# ---------------------------------------------------------------------------- helpers


def csv_lines(frame: pd.DataFrame) -> str:
    """Candles as CSV lines, floats written exactly (repr)."""
    return "".join(
        f"{ts.isoformat()}," + ",".join(repr(float(x)) for x in row) + "\n"
        for ts, row in zip(frame.index, frame[OHLCV].to_numpy(), strict=True)
    )


def start_csv(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("timestamp,open,high,low,close,volume\n" + csv_lines(frame))
    return path


def append_csv(path: Path, frame: pd.DataFrame) -> None:
    with path.open("a") as handle:  # one write per call, as a downloader appends
        handle.write(csv_lines(frame))


def read_table(journal: Path, sql: str) -> list[tuple]:
    """Rows of a query on a journal another process or thread is writing (WAL allows it)."""
    if not journal.exists():
        return []
    try:
        conn = sqlite3.connect(f"{journal.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    except sqlite3.OperationalError:  # not created yet
        return []


def live_count(journal: Path) -> int:
    rows = read_table(journal, "SELECT COUNT(*) FROM bars WHERE live = 1")
    return int(rows[0][0]) if rows else 0


def wait_for(condition: Callable[[], bool], timeout: float = 300.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def settings(**kw: object) -> PaperSettings:
    return PaperSettings(poll=kw.pop("poll", 0.02), **kw)  # type: ignore[arg-type]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}


# ---------------------------------------------------------------------------- parity


@pytest.mark.slow
def test_bars_appended_one_by_one_reconcile_with_zero_differences(run, candles, tmp_path):
    """A downloader appends 24 closed candles to a CSV while the session polls it; the
    session's predictions are the run's own walk-forward predictions (same bars, same
    models), its fold switches where the run's test periods do, and the backtest of the
    same window from the same bars agrees on every prediction, decision, order, fill and
    equity value."""
    boundary = run.boundary
    first = boundary - 12 * HOUR
    window = candles.loc[first : first + 23 * HOUR]
    path = start_csv(tmp_path / "candles" / "BTCUSDT-1h.csv", candles.loc[: first - HOUR])
    journal = tmp_path / "paper.sqlite"

    def downloader() -> None:
        wait_for(lambda: read_table(journal, "SELECT 1 FROM meta"), what="the journal")
        for i in range(len(window)):
            append_csv(path, window.iloc[i : i + 1])
            time.sleep(0.05)

    writer = threading.Thread(target=downloader)
    lines: list[str] = []
    writer.start()
    session = run_paper(
        run.config,
        CandleSource(path.parent, "BTCUSDT", "1h"),
        journal,
        run_dir=run.run_dir,
        settings=settings(until=window.index[-1]),
        on_status=lines.append,
        on_event=lines.append,
    )
    writer.join()
    assert session.traded == len(window) and session.replayed == 0
    status = [line for line in lines if not line.startswith("paper: ")]
    assert len(status) == 24 and status[0].startswith(window.index[0].strftime("%Y-%m-%d %H:%M"))

    with Journal.open(journal, readonly=True) as book:
        bars = book.bars()
        predictions = book.table("predictions")
        orders = book.table("orders")
        fills = book.table("fills")
    live = bars[bars["live"]]
    pd.testing.assert_frame_equal(live[OHLCV], window, check_freq=False, check_names=False)
    assert not bars[~bars["live"]].index.intersection(window.index).size
    # the run's walk-forward predicted these bars in batch, from its own features
    saved = pd.read_parquet(run.run_dir / "models" / "xgb" / "BTCUSDT" / "predictions.parquet")
    saved = saved.set_index("timestamp").loc[window.index]
    for column in ("fold", "signal", "confidence", "proba_up", "threshold_long"):
        np.testing.assert_array_equal(predictions[column].to_numpy(), saved[column].to_numpy())
    assert predictions["fold"].nunique() == 2  # the window straddles a fold boundary
    # the session traded, with brackets, so the comparison below is not vacuous
    assert len(fills) >= 2 and {"stop", "limit"} <= set(orders["type"])

    result = reconcile(journal, run.config)
    assert result.ok, [str(d) for d in result.differences[:5]]
    assert result.rows["equity"] == (24, 24) and result.rows["fills"][0] == len(fills)
    assert result.window == (window.index[0], window.index[-1])


@pytest.mark.slow
def test_killed_session_resumes_without_losing_bars_or_duplicating_orders(run, candles, tmp_path):
    """`mlstrat paper` is SIGKILLed after a few bars while candles keep arriving; the same
    command resumes: every bar is journaled once, order numbers run without a gap or a
    repeat, and `mlstrat reconcile` finds the paper and backtest identical."""
    first = run.boundary - 4 * HOUR
    window = candles.loc[first : first + 19 * HOUR]
    path = start_csv(tmp_path / "candles" / "BTCUSDT-1h.csv", candles.loc[: first - HOUR])
    journal = tmp_path / "paper.sqlite"
    command = [
        sys.executable, "-m", "mlstrat.cli", "paper", str(run.cfg_path),
        "--source", str(path.parent), "--journal", str(journal), "--run", str(run.run_dir),
        "--poll", "0.02", "--history", "600", "--until", window.index[-1].isoformat(),
    ]  # fmt: skip
    first_run = subprocess.Popen(
        command, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: read_table(journal, "SELECT 1 FROM meta"), what="the journal")
        for i in range(12):
            append_csv(path, window.iloc[i : i + 1])
            time.sleep(0.05)
        wait_for(lambda: live_count(journal) >= 6, what="six journaled bars")
        first_run.send_signal(signal.SIGKILL)
        first_run.wait(timeout=30)
    finally:
        if first_run.poll() is None:
            first_run.kill()
    assert first_run.returncode == -signal.SIGKILL
    journaled_at_kill = live_count(journal)
    append_csv(path, window.iloc[12:])  # the rest arrives while nothing is running

    second = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert f"replaying {journaled_at_kill} journaled bars" in second.stderr
    assert f"{len(window) - journaled_at_kill} new bar(s)" in second.stdout

    ts = [r[0] for r in read_table(journal, "SELECT ts FROM bars WHERE live = 1 ORDER BY ts")]
    assert ts == [int(t.value // 1_000_000) for t in window.index]  # none lost, none twice
    seqs = [r[0] for r in read_table(journal, "SELECT seq FROM orders ORDER BY seq")]
    assert seqs == list(range(len(seqs))) and len(seqs) >= 2
    check = subprocess.run(
        [sys.executable, "-m", "mlstrat.cli", "reconcile", str(journal), "--config", str(run.cfg_path)],
        env=env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "identical" in check.stdout and f"orders {len(seqs)}," in check.stdout


@pytest.mark.slow
def test_report_from_a_journal_is_the_paper_sessions_result(run, candles, tmp_path):
    """`mlstrat report --journal` replays the journal through the paper path; its equity is
    the journaled equity, and the HTML report is written."""
    first = run.boundary
    path = start_csv(tmp_path / "c" / "BTCUSDT-1h.csv", candles.loc[: first + 7 * HOUR])
    journal = tmp_path / "j.sqlite"
    run_paper(
        run.config, CandleSource(path, "BTCUSDT", "1h"), journal, run_dir=run.run_dir,
        settings=settings(history=500, start=first, until=first + 7 * HOUR), on_status=None,
        on_event=lambda _: None,
    )  # fmt: skip
    result = journal_result(journal, run.config)
    with Journal.open(journal, readonly=True) as book:
        equity = book.table("equity")
    np.testing.assert_array_equal(result.equity.to_numpy(), equity["value"].to_numpy())
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "mlstrat.cli", "report", "--journal", str(journal),
         "--config", str(run.cfg_path), "--out", str(out)],
        env=env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "report.html").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    "broker",
    [{"fill": "close"}, {"cheat_on_open": True}, {"slippage_cap": "none", "fixed_commission": 1.0}],
)
def test_every_fill_timing_reconciles(run, candles, tmp_path, broker):
    """The broker settings may differ from the run's (the models do not depend on them);
    whatever they are, the session and its backtest fill alike."""
    raw = paper_config(SAMPLE)
    raw["broker"].update(broker)
    config = load_config(write_yaml(tmp_path / "broker.yaml", raw))
    first = run.boundary - 6 * HOUR
    path = start_csv(tmp_path / "c" / "BTCUSDT-1h.csv", candles.loc[: first + 11 * HOUR])
    journal = tmp_path / "j.sqlite"
    run_paper(
        config, CandleSource(path, "BTCUSDT", "1h"), journal, run_dir=run.run_dir,
        settings=settings(history=400, start=first, until=first + 11 * HOUR), on_status=None,
        on_event=lambda _: None,
    )  # fmt: skip
    assert len(read_table(journal, "SELECT 1 FROM fills")) >= 2
    result = reconcile(journal, config, run_dir=run.run_dir)
    assert result.ok, [str(d) for d in result.differences[:5]]


# ---------------------------------------------------------------------------- late, duplicated, gapped


@pytest.mark.slow
def test_late_duplicated_and_gapped_bars_are_reported_in_one_line_and_handled(
    run, candles, tmp_path, monkeypatch
):
    """While the session runs: a candle written twice, a traded candle rewritten with another
    close, a gap filled within the wait, a gap that is not (the session trades on), and the
    missing candle arriving after a newer one was traded. Each is one line; the traded bars
    stand, the rejected values are kept in the journal's events, and the backtest of the
    journaled bars still agrees with the session."""
    from mlstrat.paper import engine

    first = run.boundary - 2 * HOUR
    b = candles.loc[first : first + 7 * HOUR]  # b[0] .. b[7]
    path = start_csv(tmp_path / "c" / "BTCUSDT-1h.csv", candles.loc[: first - HOUR])
    journal = tmp_path / "j.sqlite"
    lines: list[str] = []
    policy = BarPolicy(on_late="skip", on_duplicate="skip", on_gap="wait", gap_wait=3600.0)
    # the gap wait runs on a clock the downloader moves (an hour of it, never of real time):
    # a slow machine cannot end the first wait before the missing bar is written, and the
    # second ends when the test says so
    waited = [0.0]
    monkeypatch.setattr(
        engine, "BarGate", lambda *args, **kw: BarGate(*args, **kw, clock=lambda: waited[0])
    )

    def events(kind: str) -> int:
        return len(read_table(journal, f"SELECT 1 FROM events WHERE kind = '{kind}'"))

    def downloader() -> None:
        wait_for(lambda: read_table(journal, "SELECT 1 FROM meta"), what="the journal")
        append_csv(path, b.iloc[0:2])
        wait_for(lambda: live_count(journal) == 2, what="b0, b1")
        append_csv(path, b.iloc[1:2])  # b1 again, same values
        wait_for(lambda: events("duplicate") == 1, what="the first duplicate")
        changed = b.iloc[1:2].copy()
        changed["close"] += 5.0
        append_csv(path, changed)  # b1 again, another close
        wait_for(lambda: events("duplicate") == 2, what="the second duplicate")
        append_csv(path, b.iloc[3:4])  # b3 before b2: a gap
        wait_for(lambda: events("gap") == 1, what="the first gap")
        append_csv(path, b.iloc[2:3])  # b2 arrives within the wait
        wait_for(lambda: live_count(journal) == 4, what="b2, b3")
        append_csv(path, b.iloc[5:6])  # b5 with b4 missing: waited for, then traded
        wait_for(lambda: events("gap") == 2, what="the second gap")
        waited[0] += policy.gap_wait  # the wait is over
        wait_for(lambda: live_count(journal) == 5, what="b5")
        append_csv(path, b.iloc[4:5])  # b4, now late
        wait_for(lambda: events("late") == 1, what="the late bar")
        append_csv(path, b.iloc[6:8])

    writer = threading.Thread(target=downloader)
    writer.start()
    run_paper(
        run.config, CandleSource(path, "BTCUSDT", "1h"), journal, run_dir=run.run_dir,
        settings=settings(history=500, until=b.index[-1], policy=policy),
        on_status=None, on_event=lines.append,
    )  # fmt: skip
    writer.join()
    stamp = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in b.index]
    reported = [line for line in lines if ": session: " not in line]
    assert len(reported) == 5, reported
    assert f"duplicated bar {stamp[1]} came again with the same values" in reported[0]
    assert f"duplicated bar {stamp[1]} came again with other values (close " in reported[1]
    assert f"gap before {stamp[3]}: 1 bar(s) missing from {stamp[2]}; waiting" in reported[2]
    assert f"gap before {stamp[5]}: 1 bar(s) missing from {stamp[4]}; waiting" in reported[3]
    assert f"late bar {stamp[4]} arrived after {stamp[5]} was traded" in reported[4]
    assert all("\n" not in line for line in reported)

    with Journal.open(journal, readonly=True) as book:
        live = book.bars().query("live")
        kept = book.table("events").set_index("kind")
    assert list(live.index) == [b.index[i] for i in (0, 1, 2, 3, 5, 6, 7)]
    assert live.loc[b.index[1], "close"] == b["close"].iloc[1]  # the traded values stand
    late = kept.loc["late"]
    assert (late["ts"], late["close"]) == (b.index[4].value // 1_000_000, b["close"].iloc[4])
    rewritten = kept.loc["duplicate"].iloc[1]
    assert rewritten["close"] == b["close"].iloc[1] + 5.0
    assert reconcile(journal, run.config).ok


@pytest.mark.parametrize(
    ("policy", "bars", "problem"),
    [
        (BarPolicy(on_late="error"), [1], "late bar 2025-01-01T01:00:00Z arrived after"),
        (BarPolicy(on_duplicate="error"), [2, 2], "duplicated bar 2025-01-01T02:00:00Z came"),
        (BarPolicy(on_gap="error"), [4], "gap before 2025-01-01T04:00:00Z: 1 bar(s) missing"),
    ],
)
def test_error_policies_stop_with_one_line_naming_the_bar(policy, bars, problem):
    index = pd.date_range("2025-01-01", periods=5, freq="1h", tz="UTC")
    values = {i: (1.0 + i, 2.0 + i, 0.5, 1.5 + i, 10.0) for i in range(5)}
    known = {int(index[i].value): values[i] for i in (0, 2)}  # 01:00 never arrived
    gate = BarGate("1h", known, index[2], policy)
    frame = pd.DataFrame([values[i] for i in bars], index=index[bars], columns=OHLCV)
    if policy.on_duplicate == "error":
        frame["close"] += 1.0
    with pytest.raises(DataError) as err:
        gate.admit(frame, lambda kind, message: None)
    assert problem in str(err.value) and "\n" not in str(err.value) and "Fix:" in str(err.value)


# ---------------------------------------------------------------------------- ccxt


class FakeBinance:
    """A local HTTP server answering like Binance's public REST API, from recorded candles.

    /api/v3/exchangeInfo: one spot market, BTCUSDT. /api/v3/klines: the candles opening at or
    before the fake clock, in Binance's 12-field kline format, the last one still open
    (its close time lies after the clock). The first `errors` kline requests get HTTP 503.
    """

    def __init__(self, candles: pd.DataFrame, now: pd.Timestamp, errors: int = 1) -> None:
        self.candles = candles
        self.now = now
        self.errors = errors
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                fake.requests.append(self.path)
                status, body = fake.answer(self.path)
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/v3"

    def answer(self, path: str) -> tuple[int, object]:
        url = urlparse(path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path.endswith("/exchangeInfo"):
            return 200, self.exchange_info()
        if url.path.endswith("/klines"):
            if self.errors > 0:
                self.errors -= 1
                return 503, "<html><body>503 Service Temporarily Unavailable</body></html>"
            return 200, self.klines(query)
        return 404, {"code": -1, "msg": "not found"}

    def klines(self, query: dict[str, str]) -> list[list]:
        ms = self.candles.index.as_unit("ms").asi8
        now = self.now.value // 1_000_000
        keep = (ms <= now) & (ms >= int(query.get("startTime", 0)))
        if "endTime" in query:
            keep &= ms <= int(query["endTime"])
        rows = self.candles[keep].iloc[: int(query.get("limit", 500))]
        return [
            [int(t), *(repr(float(x)) for x in row), int(t) + 3_599_999, "0", 100, "0", "0", "0"]
            for t, row in zip(rows.index.as_unit("ms").asi8, rows[OHLCV].to_numpy(), strict=True)
        ]

    @staticmethod
    def exchange_info() -> dict:
        market = {
            "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
            "baseAssetPrecision": 8, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"], "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False, "filters": [], "permissions": ["SPOT"],
            "permissionSets": [["SPOT"]],
        }  # fmt: skip
        return {"timezone": "UTC", "serverTime": 0, "rateLimits": [], "symbols": [market]}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def ccxt_source(fake: FakeBinance, **kw: object) -> CcxtSource:
    return CcxtSource(
        "binance",
        "BTCUSDT",
        "1h",
        urls={"api": {"public": fake.url}},
        options={"fetchMarkets": {"types": ["spot"]}},
        backoff=0.01,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def fake_binance(candles):
    pytest.importorskip("ccxt", reason="the ccxt source needs ccxt (pip install 'mlstrat[live]')")
    now = pd.Timestamp("2025-02-15 10:30", tz="UTC")  # the 10:00 candle is still open
    fake = FakeBinance(candles, now)
    yield fake
    fake.close()


def test_ccxt_source_retries_an_error_and_ignores_the_open_candle(fake_binance, candles):
    reports: list[tuple[str, str]] = []
    source = ccxt_source(fake_binance, history=1200)
    bars = source.poll(fake_binance.now, None, lambda kind, msg: reports.append((kind, msg)))
    expected = candles.loc[fake_binance.now - 1200 * HOUR : fake_binance.now - HOUR]
    assert bars.index[-1] == pd.Timestamp("2025-02-15 09:00", tz="UTC")  # 10:00 still open
    pd.testing.assert_frame_equal(bars[OHLCV], expected, check_freq=False, check_names=False)
    assert [kind for kind, _ in reports] == ["retry"]
    assert "ExchangeNotAvailable" in reports[0][1] and "retry 1/5" in reports[0][1]
    klines = [r for r in fake_binance.requests if "/klines" in r]
    assert len(klines) == 1 + 2  # the refused request, then two pages of at most 1000
    assert source.describe() == "ccxt binance BTC/USDT 1h"
    # a later poll asks from the last bar on: one more candle has closed
    fake_binance.now += HOUR
    later = source.poll(fake_binance.now, bars.index[-1], lambda *a: None)
    assert list(later.index) == [bars.index[-1], bars.index[-1] + HOUR]


@pytest.mark.slow
def test_paper_session_on_the_exchange_reconciles(run, fake_binance, tmp_path):
    """The engine on the ccxt source: each poll the fake clock moves one hour, one more
    candle closes and is traded; the backtest of the journal agrees."""
    fake_binance.now = run.boundary + 30 * pd.Timedelta("1min")
    clock_calls = iter(range(10_000))

    def clock() -> pd.Timestamp:
        fake_binance.now = run.boundary + (30 + 60 * next(clock_calls)) * pd.Timedelta("1min")
        return fake_binance.now

    journal = tmp_path / "ccxt.sqlite"
    session = run_paper(
        run.config, ccxt_source(fake_binance, history=400), journal, run_dir=run.run_dir,
        settings=settings(max_bars=5), clock=clock, on_status=None, on_event=lambda _: None,
    )  # fmt: skip
    assert session.traded == 5
    with Journal.open(journal, readonly=True) as book:
        live = book.bars().query("live")
        assert book.meta()["source"] == "ccxt binance BTC/USDT 1h"
    assert list(live.index) == [run.boundary + i * HOUR for i in range(5)]
    assert reconcile(journal, run.config).ok


def test_ccxt_source_gives_up_after_its_retries_with_one_line(fake_binance):
    fake_binance.errors = 100
    reports: list[str] = []
    source = ccxt_source(fake_binance, retries=2)
    with pytest.raises(DataError) as err:
        source.poll(fake_binance.now, None, lambda kind, msg: reports.append(msg))
    assert len(reports) == 2 and "no answer after 3 tries" in str(err.value)
    assert "\n" not in str(err.value)


def test_ccxt_source_names_an_unknown_market(fake_binance):
    source = CcxtSource(
        "binance", "DOGEEUR", "1h", urls={"api": {"public": fake_binance.url}},
        options={"fetchMarkets": {"types": ["spot"]}},
    )  # fmt: skip
    with pytest.raises(ConfigError, match="binance has no market 'DOGEEUR'"):
        source.poll(fake_binance.now, None, lambda *a: None)


def test_ccxt_missing_is_a_config_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ccxt", None)
    with pytest.raises(ConfigError, match=r"mlstrat\[live\]"):
        CcxtSource("binance", "BTCUSDT", "1h")


def test_the_package_loads_lazily_and_reconcile_is_the_function():
    """`mlstrat --help` registers the paper commands without importing backtrader for them,
    and `mlstrat.paper.reconcile` is the function even when another name of its submodule
    was loaded first (importing the submodule binds the package attribute to the module)."""
    code = (
        "import sys, mlstrat.cli.paper, mlstrat.paper as p; "
        "assert 'mlstrat.paper.engine' not in sys.modules; "
        "from mlstrat.paper import journal_result; from mlstrat.paper import reconcile; "
        "assert callable(reconcile) and p.reconcile is reconcile, reconcile"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------- faults


@pytest.fixture
def session(run, candles, tmp_path) -> SimpleNamespace:
    """A finished three-bar session."""
    first = run.boundary
    path = start_csv(tmp_path / "c" / "BTCUSDT-1h.csv", candles.loc[: first + 2 * HOUR])
    journal = tmp_path / "j.sqlite"
    run_paper(
        run.config, CandleSource(path, "BTCUSDT", "1h"), journal, run_dir=run.run_dir,
        settings=settings(history=300, start=first, until=first + 2 * HOUR), on_status=None,
        on_event=lambda _: None,
    )  # fmt: skip
    assert read_table(journal, "SELECT COUNT(*) FROM orders")[0][0] >= 1
    return SimpleNamespace(journal=journal, csv=path, first=first)


def test_a_tampered_journal_is_a_divergence_naming_both_values(run, session):
    conn = sqlite3.connect(session.journal)
    with conn:
        conn.execute("UPDATE equity SET value = value + 1 WHERE ts = (SELECT MAX(ts) FROM equity)")
    conn.close()
    result = reconcile(session.journal, run.config)
    assert not result.ok and len(result.differences) == 1
    first = result.first
    assert first is not None and (first.table, first.column) == ("equity", "value")
    assert first.paper == first.backtest + 1.0
    with pytest.raises(IntegrityError) as err:
        result.check()
    text = str(err.value)
    assert "paper and backtest diverge at" in text and "equity.value" in text
    assert repr(first.paper) in text and repr(first.backtest) in text
    # resuming the tampered journal refuses to continue it
    with pytest.raises(IntegrityError, match="replaying the journal gives another equity.value"):
        run_paper(
            run.config, CandleSource(session.csv, "BTCUSDT", "1h"), session.journal,
            run_dir=run.run_dir, settings=settings(max_bars=0), on_status=None,
            on_event=lambda _: None,
        )  # fmt: skip


def test_a_deleted_order_is_missing_for_reconcile_and_for_a_restart(run, session):
    conn = sqlite3.connect(session.journal)
    with conn:
        (seq, ts) = conn.execute("SELECT seq, ts FROM orders ORDER BY seq DESC LIMIT 1").fetchone()
        conn.execute("DELETE FROM orders WHERE seq = ?", [seq])
    conn.close()
    result = reconcile(session.journal, run.config)
    missing = [d for d in result.differences if d.table == "orders"]
    assert [(d.key, d.column, d.paper) for d in missing] == [((seq,), "(row)", "(missing)")]
    assert missing[0].ts == ts and missing[0].backtest.startswith("{seq: " + str(seq))
    with pytest.raises(IntegrityError, match=r"gives another orders\.rows"):
        run_paper(
            run.config, CandleSource(session.csv, "BTCUSDT", "1h"), session.journal,
            run_dir=run.run_dir, settings=settings(max_bars=0), on_status=None,
            on_event=lambda _: None,
        )  # fmt: skip


@pytest.mark.slow
def test_reconcile_cli_exits_2_with_the_divergence_on_one_line(run, session):
    conn = sqlite3.connect(session.journal)
    with conn:
        conn.execute(
            "UPDATE predictions SET confidence = 0.123 WHERE ts = (SELECT MIN(ts) FROM predictions)"
        )
    conn.close()
    done = subprocess.run(
        [sys.executable, "-m", "mlstrat.cli", "reconcile", str(session.journal),
         "--config", str(run.cfg_path)],
        env=env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    error = done.stderr.strip().splitlines()
    assert len(error) == 1 and "predictions.confidence" in error[0]
    assert "paper 0.123, backtest 0." in error[0]
    assert "predictions.confidence" in done.stdout  # the listed differences


def test_a_journal_of_another_configuration_is_refused(run, session, tmp_path):
    other = write_yaml(tmp_path / "other.yaml", paper_config(SAMPLE, max_hold_bars=9))
    with pytest.raises(ConfigError, match="journal was written for another config hash"):
        reconcile(session.journal, load_config(other), run_dir=run.run_dir)


def test_a_run_trained_otherwise_is_refused(run, tmp_path):
    raw = paper_config(SAMPLE)
    raw["predictors"][0]["params"]["max_depth"] = 5
    other = load_config(write_yaml(tmp_path / "other.yaml", raw))
    with pytest.raises(ConfigError, match="trained with another 'predictors' section"):
        run_paper(other, None, tmp_path / "j.sqlite", run_dir=run.run_dir)


@pytest.mark.slow
def test_missing_or_unfinished_run_directory_is_a_config_error(run, tmp_path):
    with pytest.raises(ConfigError, match="not a run directory"):
        run_paper(run.config, None, tmp_path / "j.sqlite", run_dir=tmp_path / "nothing")
    done = subprocess.run(
        [sys.executable, "-m", "mlstrat.cli", "paper", str(run.cfg_path), "--source",
         str(tmp_path), "--journal", str(tmp_path / "j.sqlite"), "--run", str(tmp_path)],
        env=env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "not a run directory" in done.stderr and "Fix:" in done.stderr


def test_a_file_that_is_not_a_journal_is_an_integrity_error(run, tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"certainly not SQLite" * 100)
    with pytest.raises(IntegrityError, match="not a"):
        reconcile(junk, run.config, run_dir=run.run_dir)
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()  # what a crash before the first commit leaves
    empty.write_bytes(b"")
    with pytest.raises(IntegrityError, match="creation was interrupted"):
        reconcile(empty, run.config, run_dir=run.run_dir)


def test_two_sessions_cannot_write_one_journal(run, session):
    with Journal.open(session.journal), pytest.raises(LockError, match="in use by pid"):
        Journal.open(session.journal)


def test_a_source_of_another_timeframe_is_refused(run, candles, tmp_path):
    four_hourly = candles.iloc[: 4 * 200 : 4]
    path = start_csv(tmp_path / "c" / "BTCUSDT-4h.csv", four_hourly)
    with pytest.raises(ConfigError, match="gives 4h bars but the run was trained on 1h"):
        run_paper(
            run.config, CandleSource(path, "BTCUSDT", "4h"), tmp_path / "j.sqlite",
            run_dir=run.run_dir, on_status=None,
        )  # fmt: skip


def test_a_broken_candle_is_reported_per_poll_then_stops_the_session(run, candles, tmp_path):
    """A row with high below low: each poll reports the file's DataError in one line; after
    `max_failures` polls the session stops with it, the bars before it journaled."""
    first = run.boundary
    path = start_csv(tmp_path / "c" / "BTCUSDT-1h.csv", candles.loc[: first + HOUR])
    bad = candles.loc[[first + 2 * HOUR]].copy()
    bad["high"] = bad["low"] - 1.0
    append_csv(path, bad)
    lines: list[str] = []
    journal = tmp_path / "j.sqlite"
    # the first poll (history) already fails: nothing to start from
    with pytest.raises(DataError, match="high"):
        run_paper(
            run.config, CandleSource(path, "BTCUSDT", "1h"), journal, run_dir=run.run_dir,
            settings=settings(history=300, start=first), on_status=None,
            on_event=lines.append,
        )  # fmt: skip
    assert not journal.exists()
    start_csv(path, candles.loc[: first + HOUR])
    writer = threading.Thread(
        target=lambda: (
            wait_for(lambda: live_count(journal) == 2, what="two bars"),
            append_csv(path, bad),
        )
    )
    writer.start()
    with pytest.raises(DataError, match="high"):
        run_paper(
            run.config, CandleSource(path, "BTCUSDT", "1h"), journal, run_dir=run.run_dir,
            settings=settings(history=300, start=first, max_failures=3), on_status=None,
            on_event=lines.append,
        )  # fmt: skip
    writer.join()
    failures = [line for line in lines if ": source: " in line]
    assert len(failures) == 2 and all("failure" in line and "high" in line for line in failures)
    assert live_count(journal) == 2


def test_text_file_with_a_line_being_written_is_read_on_a_later_poll(candles, tmp_path):
    path = start_csv(tmp_path / "BTCUSDT-1h.csv", candles.iloc[:50])
    source = CandleSource(path, "BTCUSDT", "1h")
    now = candles.index[60]
    assert len(source.poll(now, None, lambda *a: None)) == 50
    row = csv_lines(candles.iloc[50:51])
    with path.open("a") as handle:
        handle.write(row[:20])  # half a line, as a writer is interrupted mid-line
    assert len(source.poll(now, None, lambda *a: None)) == 50
    with path.open("a") as handle:
        handle.write(row[20:])
    bars = source.poll(now, None, lambda *a: None)
    assert len(bars) == 51 and bars["close"].iloc[-1] == candles["close"].iloc[50]
    # and a candle that has not closed yet is not returned
    half_past = candles.index[50] + 30 * pd.Timedelta("1min")
    assert len(source.poll(half_past, None, lambda *a: None)) == 50
