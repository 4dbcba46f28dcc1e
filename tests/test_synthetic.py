"""Planted markets: the oracle's P&L by hand, twins that differ only by the edge, drift
calibrated to a t-statistic, and the decision layer's power and size on small versions of
benchmarks/power.py."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlstrat.errors import ConfigError
from mlstrat.features.targets import parse_target
from mlstrat.synthetic import (
    EDGES,
    calibrate_drift,
    oracle_pnl,
    per_bar_sharpe,
    planted_market,
)
from mlstrat.walkforward.pooling import pooled_decisions
from mlstrat.walkforward.splits import WalkForward


def test_oracle_trades_one_at_a_time_from_the_next_open_to_the_close_h_later() -> None:
    index = pd.date_range("2024-01-01", periods=8, freq="1h", tz="UTC")
    bars = pd.DataFrame(
        {"open": [10, 11, 12, 13, 14, 15, 16, 17.0], "close": [11, 12, 13, 14, 15, 16, 17, 18.0]},
        index=index,
    )
    state = np.array([1, 1, 0, -1, 0, 0, 0, 0.0])
    pnl = oracle_pnl(bars, state, 2, 0.01)
    # bar 0: long from open[1]=11 to close[2]=13; bar 1 is inside it; bar 3: short 14 -> 16
    expected = np.zeros(8)
    expected[0] = 13 / 11 - 1 - 0.01
    expected[3] = -(16 / 14 - 1) - 0.01
    np.testing.assert_allclose(pnl, expected, rtol=1e-12)


@pytest.mark.parametrize("edge", EDGES)
def test_twins_differ_only_by_the_edge(edge: str) -> None:
    planted = planted_market(3000, edge=edge, drift=0.002, seed=4)
    null = planted_market(3000, edge=edge, drift=0.0, seed=4)
    assert planted.bars.index.equals(null.bars.index) and null.null and not planted.null
    assert planted.bars["close"].iloc[-1] != null.bars["close"].iloc[-1]
    assert (planted.bars["high"] >= planted.bars[["open", "close"]].max(axis=1)).all()
    assert (planted.bars["low"] <= planted.bars[["open", "close"]].min(axis=1)).all()
    # the oracle earns on the planted file, and not on its twin
    assert planted.oracle().sum() > 0 and planted.oracle().sum() > null.oracle().sum()
    if edge == "regime":  # the regime is the same, only its drift is gone
        np.testing.assert_array_equal(planted.state, null.state)


def test_calibrated_drift_gives_the_oracle_the_asked_t_statistic() -> None:
    mu = calibrate_drift(3.0, 4000, edge="regime", bars=100_000)
    ts = [per_bar_sharpe(planted_market(4000, drift=mu, seed=s).oracle()) * math.sqrt(4000)
          for s in range(40)]  # fmt: skip
    # 40 files: the mean t is within about 3 standard errors of 3
    assert np.mean(ts) == pytest.approx(3.0, abs=3 * np.std(ts) / math.sqrt(40) + 0.1)
    assert calibrate_drift(4.0, 4000, edge="regime", bars=100_000) > mu


def test_bad_planted_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="edge"):
        planted_market(1000, edge="lunar")
    with pytest.raises(ConfigError, match="too short"):
        planted_market(10)


SPLITS = WalkForward(train=1500, test=1000, validation=0.4, horizon=24)
TARGET = parse_target("direction:24")
PARAMS = {"method": "net_pnl", "reps": 500}


def last_decision_trades(edge: str, drift: float, seed: int) -> bool:
    made = planted_market(1500 + 3 * 1000, edge=edge, drift=drift, seed=seed)
    folds = SPLITS.split(made.bars.index)
    up = 0.5 + 0.3 * made.state.to_numpy()

    def part(rows):
        return pd.DataFrame({"timestamp": made.bars.index[rows], "proba_up": up[rows]})

    decisions = pooled_decisions(
        made.bars, TARGET, folds, [part(f.test) for f in folds],
        [part(f.validation_span) for f in folds], PARAMS,
    )  # fmt: skip
    return not decisions[-1].abstain


@pytest.mark.slow
def test_a_perfect_score_is_traded_at_t4_and_its_null_twin_is_not() -> None:
    """The last of 3 folds decides on 2,000 bars (1,400 earlier test bars before its
    validation, 600 validation bars); the drift gives the oracle t* = 4 there."""
    mu = calibrate_drift(4.0, 2000, edge="regime", bars=100_000)
    planted = [last_decision_trades("regime", mu, s) for s in range(10)]
    nulls = [last_decision_trades("regime", 0.0, s) for s in range(10)]
    assert sum(planted) >= 8 and sum(nulls) <= 1
