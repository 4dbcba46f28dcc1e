"""Turnover control in MLStrategy, bar by bar on hand-written predictions: hysteresis
(``exit_threshold``: exit when the confidence in the held side falls below it, or on a
qualifying reversal) and a minimum holding period (``min_hold_bars``)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mlstrat.backtest import run_backtest
from mlstrat.errors import ConfigError
from mlstrat.feed import FeatureFeed
from mlstrat.strategy import MLStrategy

NAN = math.nan
#: P(up) per bar of a binary model; the signal is thresholded at 0.6 for both sides
#: (+1 when P(up) >= 0.6, -1 when P(down) >= 0.6, else 0), as walk-forward writes it.
P_UP = [0.65, 0.58, 0.56, 0.53, 0.50, 0.62, 0.45, 0.35, 0.36, 0.50, 0.50, 0.50]


def frame(p_up=P_UP) -> pd.DataFrame:
    n = len(p_up)
    index = pd.date_range("2025-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    up = pd.Series(p_up, index=index)
    signal = (up >= 0.6).astype(float) - ((1 - up) >= 0.6).astype(float)
    return pd.DataFrame(
        {"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.0, "volume": 1.0,
         "signal": signal, "confidence": up.where(up >= 0.5, 1 - up), "proba_up": up},
        index=index,
    )  # fmt: skip


def run(data: pd.DataFrame, **params):
    feed = FeatureFeed.from_frame(data, name="T")
    params = {"allow_short": True, "use_feed_thresholds": False, **params}
    return run_backtest(
        {"T": feed}, MLStrategy, params, sizer_params={"method": "fixed", "fixed_fraction": 0.5},
        commission=0.0, slippage=0.0,
    )  # fmt: skip


def trades(data: pd.DataFrame, **params) -> pd.DataFrame:
    """Closed trades as (side, entry bar, exit bar, exit reason)."""
    res = run(data, **params)
    index = data.index
    out = res.trades
    return pd.DataFrame(
        {"side": out["direction"].to_numpy(),
         "entry": [index.get_loc(t) for t in out["entry_time"]],
         "exit": [index.get_loc(t) for t in out["exit_time"]],
         "reason": out["exit_reason"].to_numpy()}
    )  # fmt: skip


def test_without_hysteresis_a_long_waits_for_a_flip() -> None:
    # long decided at bar 0 (fill at 1); signal 0 at bars 1-6 is no flip (P(down) 0.55 at
    # bar 6 is below 0.6); bar 7 P(down) 0.65 flips: exit at 8, reversed into a short that
    # signal 0 never closes
    res = run(frame())
    assert res.trades["exit_reason"].tolist() == ["signal_flip"]
    index = frame().index
    assert [index.get_loc(res.trades[c].iloc[0]) for c in ("entry_time", "exit_time")] == [1, 8]
    assert res.records["position"].iloc[-1] < 0


def test_hysteresis_exits_when_the_held_side_weakens() -> None:
    # exit_threshold 0.55: P(up) 0.58, 0.56 keep the long; 0.53 at bar 3 exits (fill at 4).
    # Bar 5 re-enters (0.62); bar 6 P(up) 0.45 < 0.55 exits; bar 7 shorts (P(down) 0.65);
    # the short is held while P(down) >= 0.55 (0.64 at bar 8) and leaves at bar 9 (0.50).
    got = trades(frame(), exit_threshold=0.55)
    assert got.to_dict("list") == {
        "side": [1.0, 1.0, -1.0],
        "entry": [1, 6, 8],
        "exit": [4, 7, 10],
        "reason": ["confidence_exit", "confidence_exit", "confidence_exit"],
    }


def test_hysteresis_reverses_on_a_qualifying_opposite_signal() -> None:
    # with exit_threshold 0.3 the long's confidence at bar 2 (P(up) 0.30) is not below it,
    # but P(down) 0.70 >= 0.6 qualifies a short: exit at 3 and reverse; the short stays
    data = frame([0.65, 0.62, 0.30, 0.30, 0.30, 0.5])
    got = trades(data, exit_threshold=0.3)
    assert got.values.tolist() == [[1.0, 1, 3, "signal_flip"]]
    assert run(data, exit_threshold=0.3).records["position"].iloc[3:].lt(0).all()


def test_minimum_holding_period_defers_exit_signals() -> None:
    # long filled at bar 1; the flip at bar 7 may close it (held 7 bars >= 3) as before,
    # but a flip at bar 2 waits until the position has been held 4 bars (decided at bar 4)
    p = [0.65, 0.62, 0.30, 0.30, 0.30, 0.30, 0.50, 0.50]
    assert trades(frame(p))["exit"].tolist()[0] == 3
    got = trades(frame(p), min_hold_bars=4)
    assert got[["side", "entry", "exit"]].values.tolist()[0] == [1.0, 1, 5]
    assert got["reason"].tolist()[0] == "signal_flip"
    # max_hold_bars still applies
    got = trades(frame([0.65] * 8), min_hold_bars=2, max_hold_bars=3)
    assert got[["entry", "exit"]].values.tolist()[0] == [1, 4] and got["reason"][0] == "max_hold"


def test_held_confidence_reads_three_class_and_meta_lines() -> None:
    """A meta feed (proba_sell / proba_hold / proba_buy = P(pays) on the side's column): the
    long's confidence is P(buy); when the primary's side turns it is 0, and the long exits."""
    data = frame([0.5] * 6).drop(columns="proba_up")
    pays = [0.7, 0.6, 0.58, 0.0, 0.0, 0.0]
    sell = [0.0, 0.0, 0.0, 0.3, 0.3, 0.3]
    data["proba_buy"], data["proba_sell"] = pays, sell
    data["proba_hold"] = [1 - a - b for a, b in zip(pays, sell, strict=True)]
    data["signal"] = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]  # thresholded at 0.65 / 0.65
    data["confidence"] = [0.7, 0.6, 0.58, 0.3, 0.3, 0.3]
    got = trades(data, exit_threshold=0.5, long_threshold=0.65)
    assert got[["side", "entry", "exit"]].values.tolist() == [[1.0, 1, 4]]
    assert got["reason"].tolist() == ["confidence_exit"]


@pytest.mark.parametrize(
    "params, name, match",
    [
        ({"exit_threshold": 1.2}, "exit_threshold", "must be a confidence in"),
        ({"exit_threshold": 0.0}, "exit_threshold", "must be a confidence in"),
        ({"min_hold_bars": -1}, "min_hold_bars", "must be ≥ 0"),
        ({"min_hold_bars": 5, "max_hold_bars": 3}, "min_hold_bars", "exceeds max_hold_bars"),
    ],
)
def test_bad_turnover_parameters_name_themselves(params, name, match) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        trades(frame(), **params)
    assert info.value.param == name
