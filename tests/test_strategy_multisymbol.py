"""BTC, ETH and SOL traded together in one Cerebro: books, positions and trades agree."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from strategy_synth import REPO, momentum_predictions, prediction_feed

from mlstrat.backtest import run_backtest
from mlstrat.strategy import MLStrategy

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
SHARED = REPO.parent / "shared" / "datasets" / "binance"


def feeds_from(directory, slices):
    """slices: per symbol a (start, stop) pair of row positions or of UTC date strings."""
    feeds, bars = {}, {}
    for symbol, (start, stop) in zip(SYMBOLS, slices, strict=True):
        path = directory / f"{symbol}-1h.parquet"
        if not path.exists():
            pytest.skip(f"{path} is not available")
        df = pd.read_parquet(path).set_index("timestamp")
        df = (df.iloc[start:stop] if isinstance(start, int) else df.loc[start:stop]).copy()
        df.attrs = {"symbol": symbol, "timeframe": "1h"}
        bars[symbol] = df
        feeds[symbol] = prediction_feed(df, momentum_predictions(df))
    return feeds, bars


def check_books(res, bars, leverage=1.0):
    rec = res.records
    assert set(rec["symbol"]) == set(SYMBOLS)
    for symbol, df in bars.items():
        part = rec[rec["symbol"] == symbol]
        assert len(part) == len(df)
        assert (part["timestamp"].to_numpy() == df.index.to_numpy()).all()
        assert part["close"].to_numpy() == pytest.approx(df["close"].to_numpy())

    # broker value at every bar = cash + the market value of each symbol's recorded position
    # (a symbol whose data has ended keeps its last position, valued at its last close)
    pos_value = rec.pivot(index="timestamp", columns="symbol", values="position_value")
    pos_value = pos_value.reindex(res.equity.index).ffill().fillna(0.0)
    np.testing.assert_allclose(
        res.equity.to_numpy(), res.cash.to_numpy() + pos_value.sum(axis=1).to_numpy(), rtol=1e-9
    )
    # gross exposure stays within the leverage limit (sizes are set on the decision bar's
    # close; fills at the next open move it a little)
    gross = pos_value.abs().sum(axis=1)
    assert (gross <= leverage * res.equity * 1.03).all()

    trades = res.trades
    for symbol in SYMBOLS:
        assert (trades["symbol"] == symbol).sum() >= 5
    for row in trades.itertuples():
        part = rec[rec["symbol"] == row.symbol].set_index("timestamp")["position"]
        held = part[(part.index >= row.entry_time) & (part.index < row.exit_time)]
        assert len(held) == row.bars_held
        assert held.to_numpy() == pytest.approx(np.full(len(held), row.direction * row.size))
        assert row.pnl == pytest.approx(
            row.direction * row.size * (row.exit_price - row.entry_price)
        )


def test_three_symbols_in_one_cerebro_on_the_sample():
    # different ranges: ETH starts later, SOL ends earlier than BTC
    feeds, bars = feeds_from(REPO / "datasets", [(0, 1500), (200, 1500), (0, 1200)])
    params = {"allow_short": True, "max_hold_bars": 24}
    res = run_backtest(feeds, MLStrategy, params, sizer_params={"max_position": 0.33})
    assert res.symbols == list(SYMBOLS)
    assert list(res.benchmark.columns) == list(SYMBOLS)
    assert len(res.equity) == 1500
    check_books(res, bars)


def test_simultaneous_entries_share_the_cash_without_rejections():
    # full-size entries on three symbols at once: each must fit the cash left by the others
    feeds, bars = feeds_from(REPO / "datasets", [(0, 1000)] * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # MLStrategy warns when the broker rejected orders
        res = run_backtest(
            feeds, MLStrategy, {}, sizer_params={"max_position": 1.0, "leverage": 3.0}
        )
    rec = res.records
    longs = rec[rec["position"] > 0].groupby("timestamp")["symbol"].nunique()
    assert (longs >= 2).any()  # entries did compete for the same cash
    assert (res.cash / res.equity < 0.01).any()  # ... and used nearly all of it
    assert (res.cash >= -1e-6).all()  # longs are paid in cash: it never goes negative
    check_books(res, bars, leverage=3.0)


@pytest.mark.slow
def test_three_symbols_from_the_shared_data_with_leverage():
    # three months of 2022's bear market from the full shared history, when it is present
    feeds, bars = feeds_from(SHARED, [("2022-04-01", "2022-06-30 23:00")] * 3)
    res = run_backtest(
        feeds,
        MLStrategy,
        {"allow_short": True},
        sizer_params={"max_position": 0.8, "leverage": 2.0},
        commission=0.00075,
        slippage=0.0002,
    )
    check_books(res, bars, leverage=2.0)
