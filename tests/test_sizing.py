"""TieredConfidenceSizer: every branch against sizes computed by hand in the test."""

from __future__ import annotations

import math
from statistics import NormalDist
from types import SimpleNamespace

import backtrader as bt
import numpy as np
import pytest

from mlstrat.broker import PercentFixedCommission
from mlstrat.errors import ConfigError
from mlstrat.sizing import (
    TieredConfidenceSizer,
    TierTable,
    afml_bet_size,
    average_active_bets,
    discretize,
    vol_target_scale,
)
from mlstrat.strategy import Pred

PHI = NormalDist().cdf


class Line:
    """Stand-in for a backtrader line: values oldest → newest, line[0] is the newest."""

    def __init__(self, values):
        self.values = list(values)

    def __getitem__(self, ago):
        return self.values[len(self.values) - 1 + ago]


class Data:
    def __init__(self, name, close, bars=1, **lines):
        self._name = name
        self.close = Line([close])
        self.open = Line([close])
        self.lines = SimpleNamespace(**{k: Line(v) for k, v in lines.items()})
        self._len = max([bars] + [len(v) for v in lines.values()])

    def __len__(self):
        return self._len


class Strategy:
    """Minimal MLStrategy look-alike: pred(data, ago) from a list of (signal, conf, vol)."""

    _ago = 0

    def __init__(self, preds):
        self.preds = preds  # data -> list of (signal, confidence, volatility), oldest first

    def pred(self, data, ago=0):
        sig, conf, vol = self.preds[data][len(self.preds[data]) - 1 + ago]
        return Pred(sig, conf, math.nan, "", math.nan, vol)

    def reference_price(self, data):
        return data.close[0]


class Broker:
    def __init__(self, value, positions=None, submitted=()):
        self.value = value
        self.positions = positions or {}
        self.submitted = list(submitted)

    def getvalue(self):
        return self.value


def position(size):
    return SimpleNamespace(size=size)


def sizing(
    params=None,
    *,
    conf=0.7,
    signal=1.0,
    vol=math.nan,
    history=None,
    isbuy=True,
    price=100.0,
    value=10_000.0,
    cash=10_000.0,
    positions=None,
    submitted=(),
    symbol="BTCUSDT",
    comminfo=None,
):
    history = history or [(signal, conf, vol)]
    data = Data(symbol, price, bars=len(history))
    strategy = Strategy({data: history})
    pos = {data if k == "self" else k: v for k, v in (positions or {}).items()}
    sizer = TieredConfidenceSizer(**{"price_buffer": 0.0, **(params or {})})
    sizer.set(strategy, Broker(value, pos, submitted))
    comminfo = comminfo or PercentFixedCommission(commission=0.001)
    return sizer._getsizing(comminfo, cash, data, isbuy)


# ------------------------------------------------------------------ tiers


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        (0.59, 0.0),  # below the lowest tier: no trade
        (0.60, 10_000 * 0.25 / 100),  # low tier exactly at its threshold
        (0.62, 25.0),
        (0.65, 10_000 * 0.50 / 100),  # medium
        (0.7999, 50.0),
        (math.nan, 0.0),
    ],
)
def test_tier_sizes(conf, expected):
    assert sizing(conf=conf) == pytest.approx(expected, rel=1e-12)


def test_high_tier_is_capped_by_cash_including_commission():
    # 100 % of 10 000 at 100 would be 100 units; 100 units cost 10 000 + 10 commission.
    # Most affordable: 10 000 / (100 × 1.001) = 99.9000999...
    assert sizing(conf=0.85) == pytest.approx(10_000 / 100.1, rel=1e-12)


def test_fixed_commission_reduces_affordable_units():
    comm = PercentFixedCommission(commission=0.001, fixed=5.0)
    assert sizing(conf=0.9, comminfo=comm) == pytest.approx(9_995 / 100.1, rel=1e-12)


def test_generic_commission_info_stays_affordable():
    comm = bt.CommInfoBase(
        commission=0.001, percabs=True, commtype=bt.CommInfoBase.COMM_PERC, stocklike=True
    )
    units = sizing(conf=0.9, comminfo=comm)
    # spend cash minus the commission of cash/price units: (10 000 − 10) / 100
    assert units == pytest.approx(99.9, rel=1e-12)
    assert units * 100 + comm.getcommission(units, 100) <= 10_000


def test_price_buffer_assumes_a_worse_fill():
    units = sizing({"price_buffer": 0.01}, conf=0.9)
    assert units == pytest.approx(10_000 / (101.0 * 1.001), rel=1e-12)


def test_default_price_buffer_is_two_tenths_of_a_percent():
    data = Data("BTCUSDT", 100.0)
    sizer = TieredConfidenceSizer()
    sizer.set(Strategy({data: [(1.0, 0.9, math.nan)]}), Broker(10_000.0))
    units = sizer._getsizing(PercentFixedCommission(commission=0.001), 10_000.0, data, True)
    assert units == pytest.approx(10_000 / (100.2 * 1.001), rel=1e-12)


def test_max_position_scales_every_tier():
    assert sizing({"max_position": 0.5}, conf=0.7) == pytest.approx(10_000 * 0.5 * 0.5 / 100)


def test_symbol_multipliers_move_thresholds_and_scale_size():
    params = {"symbol_multipliers": {"BTCUSDT": (1.1, 0.5), "ETHUSDT": {"size": 2.0}}}
    # BTC thresholds become 0.66 / 0.715 / 0.88
    assert sizing(params, conf=0.65) == 0.0
    assert sizing(params, conf=0.70) == pytest.approx(10_000 * 0.25 * 0.5 / 100)
    assert sizing(params, conf=0.72) == pytest.approx(10_000 * 0.50 * 0.5 / 100)
    # ETH: thresholds unchanged, size doubled (0.25 → 0.5); other symbols untouched
    assert sizing(params, conf=0.62, symbol="ETHUSDT") == pytest.approx(50.0)
    assert sizing(params, conf=0.62, symbol="SOLUSDT") == pytest.approx(25.0)


def test_custom_tiers_and_names():
    table = TierTable(((0.55, 0.1), (0.7, 0.6)), names=("a", "b"))
    assert table.lookup(0.54) is None
    assert table.lookup(0.6).name == "a"
    assert table.lookup(0.9).fraction == 0.6
    names = table.names(np.array([0.5, 0.55, 0.69, 0.7, np.nan]))
    assert names.tolist() == ["", "a", "a", "b", ""]
    assert sizing({"tiers": ((0.55, 0.1), (0.7, 0.6))}, conf=0.56) == pytest.approx(10.0)


@pytest.mark.parametrize(
    "params",
    [
        {"method": "kelly"},
        {"tiers": ((0.7, 0.5), (0.6, 1.0))},  # not increasing
        {"tiers": ((0.6, 0.0),)},  # zero fraction
        {"tiers": ((0.6, 0.5, 1.0),)},
        {"symbol_multipliers": {"BTCUSDT": (-1.0, 1.0)}},
        {"symbol_multipliers": {"BTCUSDT": {"thresh": 1.0}}},
        {"tier_names": ("a", "b")},
        {"max_position": 0.0},
        {"leverage": -1.0},
        {"target_vol": 0.0},
        {"step": -0.1},
    ],
)
def test_invalid_parameters_raise_config_error(params):
    with pytest.raises(ConfigError):
        TieredConfidenceSizer(**params)


# ------------------------------------------------------------------ AFML


def afml_by_hand(p, k=2):
    z = (p - 1 / k) / math.sqrt(p * (1 - p))
    return 2 * PHI(z) - 1


@pytest.mark.parametrize(("p", "k"), [(0.5, 2), (0.55, 2), (0.7, 2), (0.95, 2), (0.5, 3), (0.3, 3)])
def test_afml_bet_size_matches_normal_cdf(p, k):
    assert afml_bet_size(p, k) == pytest.approx(afml_by_hand(p, k), abs=1e-12)


def test_afml_edge_values():
    assert afml_bet_size(1.0) == 1.0
    assert afml_bet_size(math.nan) == 0.0
    assert afml_bet_size(0.5) == 0.0
    assert afml_bet_size(0.2, 3) < 0  # below 1/K: a bet against the predicted class


def test_discretize_rounds_to_step_and_clips():
    assert discretize(0.3375, 0.1) == pytest.approx(0.3)
    assert discretize(0.35001, 0.1) == pytest.approx(0.4)
    assert discretize(0.3375, 0.0) == 0.3375
    assert discretize(1.4, 0.5) == 1.0


def test_afml_single_bet_sizing():
    # p = 0.7: z = 0.2 / √0.21 = 0.43644, m = 2Φ(z) − 1 = 0.33747 → step 0.1 → 0.3 → 30 units
    m = afml_by_hand(0.7)
    assert round(m, 4) == 0.3375
    assert sizing({"method": "afml"}, conf=0.7) == pytest.approx(30.0)
    # without discretisation the raw size is used
    assert sizing({"method": "afml", "step": 0.0}, conf=0.7) == pytest.approx(100 * m)


def test_afml_averages_active_bets():
    history = [(-1.0, 0.6, math.nan), (1.0, 0.9, math.nan), (1.0, 0.7, math.nan)]  # oldest first
    avg = (afml_by_hand(0.7) + afml_by_hand(0.9) - afml_by_hand(0.6)) / 3
    assert avg == pytest.approx(0.3311, abs=1e-4)  # → 0.3 after the 0.1 step
    params = {"method": "afml", "active_bets": 3}
    assert sizing(params, history=history) == pytest.approx(30.0)
    # the newest two only: (0.8176 + 0.3375) / 2 = 0.5775 → 0.6 → 60 units
    assert sizing({"method": "afml", "active_bets": 2}, history=history) == pytest.approx(60.0)
    # the average points up, so a sell gets nothing
    assert sizing(params, history=history, isbuy=False) == 0.0
    # NaN and zero-signal bets are not active
    bets = [(1.0, 0.7), (math.nan, math.nan), (0.0, 0.9)]
    assert average_active_bets(bets) == pytest.approx(afml_by_hand(0.7))


def test_afml_three_classes_and_sell_side():
    # K = 3, p = 0.5: z = (0.5 − 1/3) / 0.5 = 1/3 → m = 0.2611 → 0.3
    assert afml_by_hand(0.5, 3) == pytest.approx(0.26112, abs=1e-5)
    params = {"method": "afml", "num_classes": 3}
    assert sizing(params, signal=-1.0, conf=0.5, isbuy=False) == pytest.approx(30.0)


def test_fixed_method():
    assert sizing({"method": "fixed", "fixed_fraction": 0.4}, conf=math.nan) == pytest.approx(40.0)


# ------------------------------------------------------------------ volatility targeting


def test_vol_target_scale():
    assert vol_target_scale(0.02, 0.01, 2.0) == 0.5
    assert vol_target_scale(0.002, 0.01, 2.0) == 2.0  # capped
    assert vol_target_scale(math.nan, 0.01, 2.0) == 0.0
    assert vol_target_scale(0.0, 0.01, 2.0) == 0.0
    # annual target 0.5 against a per-bar 1 % forecast on hourly bars
    assert vol_target_scale(0.01, 0.5, 5.0, 8760) == pytest.approx(0.5 / (0.01 * math.sqrt(8760)))


def test_vol_targeting_scales_the_tier_fraction():
    params = {"target_vol": 0.01}
    assert sizing(params, conf=0.7, vol=0.02) == pytest.approx(10_000 * 0.5 * 0.5 / 100)
    assert sizing(params, conf=0.62, vol=0.004) == pytest.approx(10_000 * 0.25 * 2.0 / 100)
    assert sizing(params, conf=0.7, vol=math.nan) == 0.0  # no forecast, no trade
    ann = {"target_vol": 0.5, "periods_per_year": 8760, "method": "fixed"}
    scale = 0.5 / (0.01 * math.sqrt(8760))
    assert sizing(ann, vol=0.01) == pytest.approx(100 * scale)


# ------------------------------------------------------------------ exposure, cash, lots


def test_leverage_limit_counts_other_positions():
    eth = Data("ETHUSDT", 100.0)
    # ETH long 50 units × 100 = 5 000 exposure; 1× leverage leaves 5 000 for a BTC short
    positions = {eth: position(50.0)}
    assert sizing(conf=0.9, isbuy=False, positions=positions) == pytest.approx(50.0)
    assert sizing({"leverage": 2.0}, conf=0.9, isbuy=False, positions=positions) == pytest.approx(
        100.0
    )
    # an ETH short counts by its absolute value too
    assert sizing(conf=0.9, isbuy=False, positions={eth: position(-80.0)}) == pytest.approx(20.0)


def test_existing_same_side_position_counts_opposite_is_ignored():
    # adding to a 60-unit long: exposure 6 000, room 4 000 → 40 units (cash 4 000 → 39.96)
    assert sizing(conf=0.9, positions={"self": position(60.0)}, cash=4_000.0) == pytest.approx(
        4_000 / 100.1
    )
    # a long being reversed into a short does not count against the short
    assert sizing(conf=0.9, isbuy=False, positions={"self": position(60.0)}) == pytest.approx(100.0)


def test_reversal_from_short_pays_the_buy_back_first():
    # short 20 at 100; cash 12 000 (short proceeds), value 10 000.
    # buying back costs 2 000 + 2 commission → 9 998 left → 9 998 / 100.1 units
    units = sizing(conf=0.9, positions={"self": position(-20.0)}, cash=12_000.0)
    assert units == pytest.approx(9_998 / 100.1, rel=1e-12)


def order(data, size, parent=None):
    return SimpleNamespace(data=data, size=size, parent=parent, alive=lambda: True)


def test_orders_made_earlier_on_the_bar_are_counted():
    eth = Data("ETHUSDT", 100.0)
    # an ETH buy of 50 at 100 already submitted: 5 005 of cash and 5 000 of exposure are taken
    buy = [order(eth, 50.0)]
    assert sizing(conf=0.9, submitted=buy) == pytest.approx(4_995 / 100.1, rel=1e-12)
    # a submitted close of a 50-unit ETH long frees both: the full 100 units fit again
    close = [order(eth, -50.0)]
    assert sizing(conf=0.9, positions={eth: position(50.0)}, submitted=close) == pytest.approx(
        100.0
    )
    # bracket children (they have a parent) are not live yet and change nothing
    child = [order(eth, -50.0, parent=object())]
    held = {eth: position(50.0)}
    assert sizing(conf=0.9, positions=held, submitted=child, cash=5_000.0) == pytest.approx(
        5_000 / 100.1, rel=1e-12
    )


def test_lot_step_and_minimums():
    # medium tier on value 9 997.3 at 100 → 49.9865 units
    assert sizing({"lot_step": 0.01}, conf=0.7, value=9_997.3) == pytest.approx(49.98)
    assert sizing({"lot_step": {"BTCUSDT": 5.0}}, conf=0.7, value=9_997.3) == pytest.approx(45.0)
    assert sizing({"lot_step": 1.0}, conf=0.62, value=9_999.0) == pytest.approx(24.0)
    assert sizing({"min_size": 30.0}, conf=0.62) == 0.0
    assert sizing({"min_size": 25.0}, conf=0.62) == pytest.approx(25.0)
    assert sizing({"min_notional": 3_000.0}, conf=0.62) == 0.0  # 25 × 100 = 2 500


@pytest.mark.parametrize(
    "kwargs",
    [
        {"value": 0.0},
        {"value": -5.0},
        {"price": math.nan},
        {"cash": -100.0},
        {"conf": 0.9, "positions": {"self": position(-200.0)}, "cash": 1_000.0},
    ],
)
def test_never_negative_or_nan(kwargs):
    units = sizing(**kwargs)
    assert units == 0.0 and not math.isnan(units)


def test_reads_lines_when_the_strategy_is_not_an_mlstrategy():
    data = Data(
        "BTCUSDT", 100.0, signal=[1.0, 1.0], confidence=[0.5, 0.66], volatility=[0.01, 0.02]
    )
    sizer = TieredConfidenceSizer(target_vol=0.01)
    sizer.set(SimpleNamespace(), Broker(10_000.0))
    units = sizer._getsizing(PercentFixedCommission(commission=0.0), 10_000.0, data, True)
    assert units == pytest.approx(10_000 * 0.5 * 0.5 / 100)  # medium tier × vol scale 0.5
    afml = TieredConfidenceSizer(method="afml", active_bets=2, step=0.0)
    afml.set(SimpleNamespace(), Broker(10_000.0))
    got = afml._getsizing(PercentFixedCommission(commission=0.0), 10_000.0, data, True)
    assert got == pytest.approx(100 * (afml_by_hand(0.66) + afml_by_hand(0.5)) / 2)
