"""BacktestResult: normalisation on construction, exact save/load round trip, typed errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlstrat.errors import DataError, IntegrityError, SchemaError
from mlstrat.report.result import RECORD_COLUMNS, TRADE_COLUMNS, BacktestResult


def _result() -> BacktestResult:
    rng = np.random.default_rng(3)
    idx = pd.date_range("2024-01-01", periods=50, freq="1h", tz="UTC")
    equity = pd.Series(10_000 * np.exp(np.cumsum(rng.normal(0, 0.01, 50))), index=idx)
    close = pd.DataFrame({"BTCUSDT": 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 50)))}, index=idx)
    trades = pd.DataFrame(
        {
            "symbol": ["BTCUSDT", "BTCUSDT"],
            "direction": [1, -1],
            "entry_time": [idx[2], idx[10]],
            "exit_time": [idx[5], idx[20]],
            "entry_price": [100.0, 101.5],
            "exit_price": [101.0, 99.0],
            "size": [0.5, 0.25],
            "pnl": [0.5, 0.625],
            "pnl_net": [0.4, 0.5],
            "commission": [0.1, 0.125],
            "bars_held": [3, 10],
            "tier": ["high", ""],
            "exit_reason": ["signal", "stop"],
        }
    )
    records = pd.DataFrame(
        {
            "timestamp": idx,
            "symbol": "BTCUSDT",
            "close": close["BTCUSDT"].to_numpy(),
            "signal": rng.choice([-1.0, 0.0, 1.0], 50),
            "confidence": rng.uniform(0, 1, 50),
            "proba_up": np.nan,
            "tier": rng.choice(["low", "high", ""], 50),
            "position": 0.0,
            "position_value": 0.0,
            "fold": np.where(np.arange(50) < 25, 0.0, 1.0),
            "target": rng.choice([0.0, 1.0], 50),
        }
    )
    return BacktestResult(
        equity=equity,
        cash=equity * 0.5,
        benchmark=close,
        trades=trades,
        records=records,
        folds=[{"fold": 0, "accuracy": 0.51, "auc": float("nan")}, {"fold": 1, "accuracy": 0.55}],
        feature_importance={"rsi_14": 0.7, "ret_1": 0.3},
        config={"seed": 7, "sizer": {"tiers": [0.55, 0.65]}},
        timeframe="1h",
        versions={"mlstrat": "0.1.0"},
    )


def test_save_load_round_trip_is_exact(tmp_path):
    res = _result()
    res.save(tmp_path / "run")
    back = BacktestResult.load(tmp_path / "run")
    pd.testing.assert_series_equal(back.equity, res.equity)
    pd.testing.assert_series_equal(back.cash, res.cash)
    pd.testing.assert_frame_equal(back.benchmark, res.benchmark)
    pd.testing.assert_frame_equal(back.trades, res.trades)
    pd.testing.assert_frame_equal(back.records, res.records)
    assert back.trades["tier"].tolist() == ["high", ""]
    assert back.symbols == ["BTCUSDT"]
    assert back.timeframe == "1h"
    assert back.feature_importance == {"rsi_14": 0.7, "ret_1": 0.3}
    assert back.config == {"seed": 7, "sizer": {"tiers": [0.55, 0.65]}}
    assert back.folds[0]["auc"] is None  # NaN is stored as strict-JSON null
    assert back.folds[1] == {"fold": 1, "accuracy": 0.55}


def test_save_replaces_old_directory_without_leftovers(tmp_path):
    res = _result()
    res.save(tmp_path / "run")
    (tmp_path / "run" / "stale.txt").write_text("x")
    res.save(tmp_path / "run")
    assert not (tmp_path / "run" / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_defaults_have_contract_columns_and_naive_index_becomes_utc():
    idx = pd.date_range("2024-01-01", periods=3, freq="1D")
    res = BacktestResult(equity=pd.Series([1.0, 2.0, 3.0], index=idx))
    assert tuple(res.trades.columns) == TRADE_COLUMNS
    assert tuple(res.records.columns) == RECORD_COLUMNS
    assert str(res.equity.index.tz) == "UTC"
    assert res.symbols == []


def test_bad_inputs_raise_typed_errors(tmp_path):
    idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    with pytest.raises(DataError, match="strictly increasing"):
        BacktestResult(equity=pd.Series([1.0, 2.0, 3.0], index=idx[[0, 2, 1]]))
    with pytest.raises(DataError, match="not finite"):
        BacktestResult(equity=pd.Series([1.0, np.nan, 3.0], index=idx))
    with pytest.raises(SchemaError, match="pnl_net"):
        BacktestResult(
            equity=pd.Series([1.0, 2.0, 3.0], index=idx),
            trades=pd.DataFrame({"symbol": ["X"], "pnl": [1.0]}),
        )
    with pytest.raises(DataError, match="no saved backtest result"):
        BacktestResult.load(tmp_path / "nope")
    _result().save(tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "result.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "run" / "result.json").write_text(json.dumps(meta))
    with pytest.raises(IntegrityError, match="format version"):
        BacktestResult.load(tmp_path / "run")
    _result().save(tmp_path / "run")
    (tmp_path / "run" / "trades.csv").unlink()
    with pytest.raises(DataError, match="trades.csv"):
        BacktestResult.load(tmp_path / "run")
