"""MLStrategy behaviour: bracket exits, trailing stop, cooldown, thresholds, hooks, analyzers, errors."""

from __future__ import annotations

import math

import backtrader as bt
import pandas as pd
import pytest

from mlstrat.backtest import run_backtest
from mlstrat.broker import BrokerConfig, make_cerebro
from mlstrat.errors import ConfigError
from mlstrat.feed import FeatureFeed
from mlstrat.strategy import (
    EquityRecorder,
    MLStrategy,
    Pred,
    PredictionRecorder,
    TradeLog,
    bt_times_to_utc,
)

NAN = math.nan
# bar: open, high, low, close, signal, confidence
BRACKET = [
    (100.0, 101.0, 99.0, 100.0, NAN, NAN),  # 0
    (100.0, 101.0, 99.0, 101.0, NAN, NAN),  # 1
    (101.0, 103.0, 100.0, 102.0, 1, 0.9),  # 2 entry; stop 99.96, target 105.06
    (102.0, 103.0, 101.5, 102.5, 1, 0.9),  # 3 filled at 102; bracket not live yet
    (102.5, 104.0, 101.0, 103.0, 1, 0.9),  # 4 nothing touched
    (103.0, 103.5, 99.5, 100.0, 1, 0.9),  # 5 low 99.5 hits the stop at 99.96; re-entry
    (100.5, 101.0, 100.0, 100.8, 1, 0.9),  # 6 filled at 100.5; stop 98, target 103
    (101.0, 103.5, 100.5, 103.2, 0, 0.5),  # 7 high 103.5 reaches the 103 target
    (103.0, 104.0, 102.0, 103.5, 0, 0.5),  # 8
    (103.5, 104.0, 103.0, 103.8, 0, 0.5),  # 9
]


def make_frame(rows, **extra) -> pd.DataFrame:
    index = pd.date_range("2025-03-01", periods=len(rows), freq="1h", tz="UTC", name="timestamp")
    df = pd.DataFrame(
        rows, columns=["open", "high", "low", "close", "signal", "confidence"], index=index
    )
    df.insert(4, "volume", 1.0)
    for name, values in extra.items():
        df[name] = values
    return df


def backtest(df, strategy=MLStrategy, params=None, sizer_params=None, **broker):
    broker = {"cash": 10_000.0, "commission": 0.001, **broker}
    feed = FeatureFeed.from_frame(df, name="TEST")
    sizer_params = (
        sizer_params if sizer_params is not None else {"method": "fixed", "fixed_fraction": 0.5}
    )
    return run_backtest({"TEST": feed}, strategy, params or {}, sizer_params=sizer_params, **broker)


def test_stop_loss_and_take_profit_brackets_by_hand():
    res = backtest(make_frame(BRACKET), params={"stop_loss": 0.02, "take_profit": 0.03})
    u1 = 10_000 * 0.5 / 102.0
    cash = 10_000 - u1 * 102.0 * 1.001
    stop = 102.0 * 0.98  # 99.96: bar 5 opens above it and trades through it → filled at the stop
    cash += u1 * stop * 0.999
    u2 = cash * 0.5 / 100.0  # re-entry decided on bar 5's close (value = cash, flat)
    cash -= u2 * 100.5 * 1.001
    target = 100.0 * 1.03  # 103: bar 7 opens below and trades through → filled at the limit
    cash += u2 * target * 0.999
    t = res.trades
    assert list(t["exit_reason"]) == ["stop_loss", "take_profit"]
    assert t["size"].to_numpy() == pytest.approx([u1, u2], rel=1e-12)
    assert t["entry_price"].to_numpy() == pytest.approx([102.0, 100.5])
    assert t["exit_price"].to_numpy() == pytest.approx([stop, target], rel=1e-9)
    idx = make_frame(BRACKET).index
    assert list(t["exit_time"]) == [idx[5], idx[7]]
    assert res.equity.iloc[-1] == pytest.approx(cash, rel=1e-12)
    assert (res.records["position"].iloc[8:] == 0).all()


def test_signal_exit_cancels_the_live_bracket():
    rows = [list(r) for r in BRACKET]
    rows[4][4] = -1  # flip at bar 4: exit at bar 5's open (103) before the stop could fire
    rows[4][5] = 0.7
    res = backtest(make_frame(rows), params={"stop_loss": 0.02, "take_profit": 0.03})
    t = res.trades
    assert t["exit_reason"].iloc[0] == "signal_flip"
    assert t["exit_price"].iloc[0] == pytest.approx(103.0)
    # the cancelled stop did not fire on bar 5's low: exactly one exit for the first entry,
    # and the position never went short
    assert (res.records["position"] >= 0).all()
    assert len(t) == 2 and t["exit_reason"].iloc[1] == "take_profit"


def test_trailing_stop_follows_the_close():
    rows = [list(r) for r in BRACKET]
    for i in range(3, 10):
        rows[i][4], rows[i][5] = 0, 0.5  # one entry only
    res = backtest(make_frame(rows), params={"trail_percent": 0.02})
    # created at close 102 → stop 99.96; live from bar 4: bar 4 close 103 raises it to 100.94;
    # bar 5 opens at 103 and its low 99.5 goes through 100.94 → filled at 100.94
    t = res.trades
    assert list(t["exit_reason"]) == ["trailing_stop"]
    assert t["exit_price"].iloc[0] == pytest.approx(103.0 * 0.98, rel=1e-12)


def test_cooldown_skips_entries_after_an_exit_fill():
    res = backtest(
        make_frame(BRACKET), params={"stop_loss": 0.02, "take_profit": 0.03, "cooldown_bars": 1}
    )
    # stop filled on bar 5 → no entry decided on bar 5; bar 6 decides (ref close 100.8) → fill bar 7
    t = res.trades
    idx = make_frame(BRACKET).index
    assert list(t["entry_time"]) == [idx[3], idx[7]]
    assert t["entry_price"].iloc[1] == pytest.approx(101.0)
    assert t["exit_price"].iloc[1] == pytest.approx(100.8 * 1.03, rel=1e-12)  # bar 8's high 104
    res2 = backtest(make_frame(BRACKET), params={"stop_loss": 0.02, "cooldown_bars": 3})
    assert len(res2.trades) == 1


def test_cooldown_blocks_same_bar_reversal():
    rows = [list(r) for r in BRACKET]
    rows[5][4], rows[5][5] = -1, 0.9
    rows[6][4], rows[6][5] = -1, 0.9
    rows[7][4], rows[7][5] = -1, 0.9
    params = {"allow_short": True}
    reversed_ = backtest(make_frame(rows), params=params)
    idx = make_frame(rows).index
    assert list(reversed_.trades["exit_time"])[:1] == [idx[6]]
    assert reversed_.records["position"].iloc[6] < 0  # reversed on bar 6's open
    waited = backtest(make_frame(rows), params={**params, "cooldown_bars": 1})
    # exit fills on bar 6; bar 6's decision is skipped; bar 7 decides the short → bar 8
    assert waited.records["position"].iloc[6] == 0
    assert waited.records["position"].iloc[7] == 0
    assert waited.records["position"].iloc[8] < 0


def test_feed_thresholds_override_the_fixed_ones():
    thr = [0.95] * 5 + [NAN] * 5  # per-fold threshold 0.95 for bars 0-4, none afterwards
    df = make_frame(BRACKET, threshold_long=thr)
    pos = backtest(df).records["position"]
    # 0.9 < 0.95 on bars 2-4; bar 5 has no feed threshold → the 0.60 param applies → in on bar 6
    assert (pos.iloc[:6] == 0).all() and pos.iloc[6] > 0
    off = backtest(df, params={"use_feed_thresholds": False}).records["position"]
    assert off.iloc[2] == 0 and off.iloc[3] > 0


def test_symbol_threshold_multiplier_applies_to_entries_and_tiers():
    rows = [list(r) for r in BRACKET]
    for i, conf in zip(range(2, 10), (0.62, 0.62, 0.67, 0.67, 0.5, 0.5, 0.5, 0.5), strict=True):
        rows[i][4], rows[i][5] = (1 if conf > 0.5 else 0), conf
    sizer = {"symbol_multipliers": {"TEST": (1.1, 1.0)}}
    res = backtest(make_frame(rows), sizer_params=sizer)
    idx = make_frame(rows).index
    # thresholds become 0.66 (entry and low tier), 0.715, 0.88: bar 2's 0.62 is too low
    assert res.trades.empty or res.trades["entry_time"].iloc[0] == idx[5]
    assert res.records["position"].iloc[5] > 0 and res.records["position"].iloc[4] == 0
    assert list(res.records["tier"].iloc[2:6]) == ["", "", "low", "low"]
    # low tier 0.25 of value at bar 4's close (flat: 10 000) / close 103
    assert res.records["position"].iloc[5] == pytest.approx(10_000 * 0.25 / 103.0)


class Scripted(MLStrategy):
    """Long when P(up) > 0.6, out after two bars; records every Pred it sees."""

    params = (("hold", 2),)

    def start(self):
        super().start()
        self.seen: list[Pred] = []
        self.entered_at = None

    def on_prediction(self, data, pred):
        self.seen.append(pred)

    def entry_signal(self, data, pred):
        return 1 if pred.proba > 0.6 else 0

    def exit_signal(self, data, pred, position):
        return len(data) - self.entry_len >= self.p.hold

    def notify_order(self, order):  # no super(): bookkeeping must not depend on it
        if order.status == order.Completed and order.isbuy():
            self.entry_len = len(order.data)


def test_user_hooks_drive_entries_and_exits():
    rows = [list(r) for r in BRACKET]
    proba = [NAN, NAN, 0.7, 0.5, 0.5, 0.5, 0.55, 0.65, 0.5, 0.5]
    for i, p in enumerate(proba):
        rows[i][4], rows[i][5] = (NAN, NAN) if math.isnan(p) else (1.0, max(p, 1 - p))
    df = make_frame(rows, proba_up=proba, volatility=0.01)
    feed = FeatureFeed.from_frame(df, name="TEST")
    cerebro = make_cerebro(BrokerConfig(cash=10_000, commission=0.0))
    cerebro.adddata(feed, name="TEST")
    cerebro.addstrategy(Scripted)
    cerebro.addsizer(bt.sizers.FixedSize, stake=3)
    cerebro.addanalyzer(PredictionRecorder, _name="rec")
    strat = cerebro.run()[0]
    assert len(strat.seen) == 10
    assert strat.seen[2].proba == 0.7 and strat.seen[2].tier == "medium"
    assert strat.seen[2].volatility == 0.01 and math.isnan(strat.seen[2].expected_return)
    assert not strat.seen[0].valid and strat.seen[2].valid
    pos = strat.analyzers.rec.records["position"].tolist()
    # filled on bar 3 (len 4, fixed 3 units); exit once len − 4 ≥ 2, i.e. decided on bar 5,
    # out on bar 6; P(up) 0.65 on bar 7 → in on bar 8
    assert pos == [0, 0, 0, 3, 3, 3, 0, 0, 3, 3]


class PlainLongShort(bt.Strategy):
    """A plain backtrader strategy: the analyzers must not depend on MLStrategy."""

    def next(self):
        sig = self.data.signal[0]
        if sig > 0 and self.position.size <= 0:
            self.order_target_size(target=2)
        elif sig < 0 and self.position.size >= 0:
            self.order_target_size(target=-1)


def test_analyzers_work_on_any_strategy():
    rows = [list(r) for r in BRACKET]
    rows[5][4] = -1  # long from bar 3; one order reverses it at bar 6, another at bar 7
    cerebro = make_cerebro(BrokerConfig(cash=10_000, commission=0.0))
    cerebro.adddata(FeatureFeed.from_frame(make_frame(rows), name="TEST"), name="TEST")
    cerebro.addstrategy(PlainLongShort)
    cerebro.addanalyzer(PredictionRecorder, _name="rec")
    cerebro.addanalyzer(TradeLog, _name="trades")
    cerebro.addanalyzer(EquityRecorder, _name="eq")
    strat = cerebro.run()[0]
    rec = strat.analyzers.rec.records
    assert rec["position"].tolist() == [0, 0, 0, 2, 2, 2, -1, 2, 2, 2]
    assert list(rec["tier"])[2:4] == ["high", "high"]  # default tiers when no MLStrategy
    trades = strat.analyzers.trades.trades
    assert list(trades["direction"]) == [1.0, -1.0]
    assert list(trades["exit_price"]) == pytest.approx([100.5, 101.0])  # bar 6 and bar 7 opens
    assert list(trades["tier"]) == ["", ""] and list(trades["exit_reason"]) == ["", ""]
    equity = strat.analyzers.eq.get_analysis()["equity"]
    # 2 units bought at 102, sold at 100.5; short 1 at 100.5 covered at 101; 2 more at 101
    final = 10_000 + 2 * (100.5 - 102) + (100.5 - 101) + 2 * (103.8 - 101)
    assert equity.iloc[-1] == pytest.approx(final)


def test_three_class_feed_gives_p_up_from_buy_and_hold():
    rows = [list(r) for r in BRACKET]
    df = make_frame(rows, proba_sell=0.2, proba_hold=0.3, proba_buy=0.5)
    res = backtest(df)
    assert res.records["proba_up"].iloc[3] == pytest.approx(0.5 + 0.15)


def test_bt_times_to_utc_round_trips_backtrader_dates():
    stamps = pd.date_range("2018-01-01", periods=500, freq="37min", tz="UTC")
    nums = [bt.date2num(t.to_pydatetime()) for t in stamps]
    assert (bt_times_to_utc(nums) == stamps).all()


# ------------------------------------------------------------------ errors


def test_configuration_errors():
    df = make_frame(BRACKET)
    with pytest.raises(ConfigError, match="trail_percent"):
        backtest(df, params={"stop_loss": 0.02, "trail_percent": 0.01})
    with pytest.raises(ConfigError, match="stop_loss"):
        backtest(df, params={"stop_loss": 2.0})
    with pytest.raises(ConfigError, match="no parameter"):
        backtest(df, params={"long_treshold": 0.7})
    with pytest.raises(ConfigError, match="prediction line"):
        backtest(df.drop(columns=["signal", "confidence"]))
    with pytest.raises(ConfigError, match="confidence"):
        backtest(df.drop(columns=["confidence"]))
    with pytest.raises(ConfigError, match="fill"):
        backtest(df, fill="vwap")
    with pytest.raises(ConfigError, match="several feeds"):
        feed = FeatureFeed.from_frame(df, name="X")
        run_backtest([feed, FeatureFeed.from_frame(df, name="X")], MLStrategy)


def test_recorder_refuses_exactbars():
    cerebro = bt.Cerebro(exactbars=1, stdstats=False)
    cerebro.adddata(FeatureFeed.from_frame(make_frame(BRACKET), name="TEST"))
    cerebro.addstrategy(MLStrategy)
    cerebro.addanalyzer(PredictionRecorder)
    with pytest.raises(ConfigError, match="exactbars"):
        cerebro.run()
