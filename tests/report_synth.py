"""Synthetic BacktestResults for the report tests: random walks, a noisy model, a toy broker.

The toy broker holds `size` units in the signal's direction while the signal
stays the same, charges `fee` of traded notional, and books one closed trade
per run of constant position; equity is cash plus marked positions. It is a
test fixture only: the numbers are self-consistent, which is all the report
tests need.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlstrat.report.result import BacktestResult


def make_result(
    n_bars: int = 600,
    symbols: tuple[str, ...] = ("BTCUSDT",),
    *,
    freq: str = "1h",
    seed: int = 0,
    with_proba: bool = True,
    n_folds: int = 3,
    start: str = "2024-01-01",
    fee: float = 0.001,
    start_cash: float = 10_000.0,
    weekdays_only: bool = False,
) -> BacktestResult:
    rng = np.random.default_rng(seed)
    if weekdays_only:
        idx = pd.bdate_range(start, periods=n_bars, freq="B", tz="UTC")
    else:
        idx = pd.date_range(start, periods=n_bars, freq=freq, tz="UTC")
    closes, recs, trades = {}, [], []
    position_values = np.zeros(n_bars)
    cash = np.full(n_bars, start_cash)
    fold = np.minimum(np.arange(n_bars) * n_folds // n_bars, n_folds - 1).astype(float)
    spent = np.zeros(n_bars)
    for k, sym in enumerate(symbols):
        ret = rng.normal(0.0002, 0.01, n_bars)
        close = 100.0 * (k + 1) * np.exp(np.cumsum(ret))
        closes[sym] = close
        fwd = np.append(close[1:] / close[:-1] - 1, np.nan)
        z = np.nan_to_num(fwd / 0.01) * 0.15 + rng.normal(0, 1.0, n_bars)
        p_up = 1 / (1 + np.exp(-z))
        signal = np.where(p_up > 0.6, 1.0, np.where(p_up < 0.4, -1.0, 0.0))
        conf = np.abs(p_up - 0.5) * 2
        tier = np.where(signal == 0, "", np.where(conf > 0.6, "high", "low"))
        units = np.where(tier == "high", 2.0, 1.0) * start_cash / len(symbols) / close[0] * 0.5
        pos = signal * units
        pos[-1] = 0.0  # flat at the end so every trade closes
        prev = np.concatenate([[0.0], pos[:-1]])
        traded = np.abs(pos - prev) * close
        spent += traded * fee
        cash_flow = -(pos - prev) * close - traded * fee
        cash += np.cumsum(cash_flow)
        position_values += pos * close
        # trades: runs of constant non-zero position
        t = 0
        while t < n_bars:
            if pos[t] == 0:
                t += 1
                continue
            e = t
            while e + 1 < n_bars and pos[e + 1] == pos[t]:
                e += 1
            x = e + 1  # closed at bar x's close
            size, d = abs(pos[t]), np.sign(pos[t])
            pnl = d * size * (close[x] - close[t])
            comm = fee * size * (close[t] + close[x])
            trades.append(
                {
                    "symbol": sym,
                    "direction": int(d),
                    "entry_time": idx[t],
                    "exit_time": idx[x],
                    "entry_price": close[t],
                    "exit_price": close[x],
                    "size": size,
                    "pnl": pnl,
                    "pnl_net": pnl - comm,
                    "commission": comm,
                    "bars_held": x - t,
                    "tier": str(tier[t]),
                    "exit_reason": "signal",
                }
            )
            t = x
        rec = pd.DataFrame(
            {
                "timestamp": idx,
                "symbol": sym,
                "close": close,
                "signal": signal,
                "confidence": conf,
                "proba_up": p_up if with_proba else np.nan,
                "tier": tier,
                "position": pos,
                "position_value": pos * close,
                "fold": fold,
                "forward_return": fwd,
            }
        )
        recs.append(rec)
    equity = pd.Series(cash + position_values, index=idx)
    records = pd.concat(recs).sort_values(["timestamp", "symbol"], kind="stable")
    trades_df = pd.DataFrame(trades).sort_values("exit_time", kind="stable")
    folds = [
        {
            "fold": f,
            "test_start": str(idx[np.argmax(fold == f)]),
            "accuracy": 0.5 + 0.01 * f,
            "auc": 0.52 + 0.01 * f,
            "log_loss": 0.69 - 0.001 * f,
            "brier": 0.25 - 0.001 * f,
            "ic": 0.02 * (f + 1),
        }
        for f in range(n_folds)
    ]
    return BacktestResult(
        equity=equity,
        cash=pd.Series(cash, index=idx),
        benchmark=pd.DataFrame(closes, index=idx),
        trades=trades_df,
        records=records,
        folds=folds,
        feature_importance={
            f"feat_{i}": float(v) for i, v in enumerate(rng.dirichlet(np.ones(12)))
        },
        config={
            "strategy": "MLStrategy",
            "seed": seed,
            "sizer": {"tiers": {"low": 0.1, "high": 0.6}},
        },
        timeframe=None if weekdays_only else freq,
        symbols=list(symbols),
        versions={"mlstrat": "0.1.0", "backtrader": "1.9.78.123"},
    )


def backtrader_result(n: int = 1500, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")):
    """A real backtrader run: TieredLongShort on the shipped sample with causal momentum
    predictions (tests/strategy_synth.py), plus walk-forward-style fold records."""
    from strategy_synth import REPO, momentum_predictions, prediction_feed, sample_bars

    from mlstrat import backtest

    strategy = backtest.load_strategy("strategies/tiered_long_short.py:TieredLongShort", base=REPO)
    feeds = {}
    for s in symbols:
        bars = sample_bars(s, 0, n)
        feeds[s] = prediction_feed(bars, momentum_predictions(bars))
    folds = [
        {"fold": f, "symbol": s, "accuracy": 0.5 + 0.01 * f, "train_rows": 1000 + f}
        for s in symbols
        for f in range(3)
    ]
    return backtest.run_backtest(
        feeds, strategy, {"allow_short": True}, folds=folds, feature_importance={"mom_12": 1.0}
    )
