"""Exact cost attribution: gross at raw fill prices − slippage − fees = net, and the slippage cap.

The expected numbers come from the price table and the broker rules by plain
arithmetic (hand-worked example), or from the bars' opens at the trades'
entry and exit times (real candles), never from the fills table under test.
"""

from __future__ import annotations

import math

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
from strategy_synth import momentum_predictions, prediction_feed, sample_bars

from mlstrat.backtest import run_backtest
from mlstrat.broker import BrokerConfig
from mlstrat.config import load_config
from mlstrat.errors import ConfigError, IntegrityError, SchemaError
from mlstrat.feed import FeatureFeed
from mlstrat.report.html import build_report, slippage_sentence
from mlstrat.report.metrics import compute_metrics
from mlstrat.report.result import FILLS_FILE, BacktestResult
from mlstrat.strategy import MLStrategy

NAN = math.nan
STAKE, SLIP, COMM, FIXED, CASH = 10.0, 0.001, 0.001, 1.0, 10_000.0
# bar: open, high, low, close, signal, confidence. Trade 1: long decided at bar 1, filled at
# bar 2's open, flipped at bar 4, closed at bar 5's open. Trade 2: short decided at bar 5,
# filled at bar 6's open whose slipped price (105 × 0.999 = 104.895) is below the bar's
# low 104.95, so the bar-range cap fills it at 104.95; flipped at bar 7, closed at bar 8.
TABLE = [
    (100.0, 101.0, 99.0, 100.0, NAN, NAN),  # 0
    (100.0, 102.0, 99.5, 101.0, 1, 0.9),  # 1 long decided
    (101.0, 104.0, 100.5, 103.0, 1, 0.9),  # 2 long filled at 101 × 1.001 = 101.101
    (103.0, 106.0, 102.0, 105.0, 1, 0.9),  # 3
    (105.0, 107.0, 104.0, 106.0, -1, 0.5),  # 4 flip (0.5 < 0.6: no new short)
    (106.0, 106.5, 104.0, 104.5, -1, 0.9),  # 5 long closed at 106 × 0.999 = 105.894; short decided
    (105.0, 105.5, 104.95, 105.2, -1, 0.9),  # 6 short filled, capped at the low 104.95
    (104.0, 104.5, 100.0, 101.0, 1, 0.5),  # 7 flip (no new long)
    (100.0, 101.0, 99.0, 100.5, 0, 0.5),  # 8 short closed at 100 × 1.001 = 100.1
    (100.5, 101.0, 100.0, 100.8, 0, 0.5),  # 9
]


def table_frame() -> pd.DataFrame:
    index = pd.date_range("2025-01-01", periods=len(TABLE), freq="1h", tz="UTC", name="timestamp")
    df = pd.DataFrame(TABLE, columns=["open", "high", "low", "close", "signal", "confidence"])
    df.index = index
    df.insert(4, "volume", 1.0)
    return df


def run_table(**broker) -> BacktestResult:
    settings = {"cash": CASH, "commission": COMM, "fixed_commission": FIXED, "slippage": SLIP}
    settings.update(broker)
    feed = FeatureFeed.from_frame(table_frame(), name="TEST")
    return run_backtest(
        {"TEST": feed},
        MLStrategy,
        {"allow_short": True},
        sizer=bt.sizers.FixedSize,
        sizer_params={"stake": STAKE},
        **settings,
    )


def fee(price: float) -> float:
    return STAKE * price * COMM + FIXED


def assert_identity(costs: dict) -> None:
    for row in [*costs["per_symbol"].values(), costs["total"]]:
        gap = row["gross_pnl"] - row["slippage"] - row["fees"] - row["net_pnl"]
        assert abs(gap) <= 1e-9 * max(1.0, row["notional"])


def test_hand_worked_two_trades_gross_slippage_fees_net():
    res = run_table()
    m = compute_metrics(res)
    costs = m.costs
    raw = {"in1": 101.0, "out1": 106.0, "in2": 105.0, "out2": 100.0}
    paid = {"in1": 101.101, "out1": 105.894, "in2": 104.95, "out2": 100.1}
    gross = STAKE * (raw["out1"] - raw["in1"]) + STAKE * (raw["in2"] - raw["out2"])  # 50 + 50
    slippage = STAKE * (
        (paid["in1"] - raw["in1"])
        + (raw["out1"] - paid["out1"])
        + (raw["in2"] - paid["in2"])
        + (paid["out2"] - raw["out2"])
    )  # 1.01 + 1.06 + 0.5 (capped, nominal 1.05) + 1.0
    fees = sum(fee(p) for p in paid.values())
    net = STAKE * (paid["out1"] - paid["in1"]) + STAKE * (paid["in2"] - paid["out2"]) - fees
    assert gross == pytest.approx(100.0)
    assert slippage == pytest.approx(3.57)
    total = costs["total"]
    assert costs["basis"] == "fills"
    assert total["gross_pnl"] == pytest.approx(gross, rel=1e-12)
    assert total["slippage"] == pytest.approx(slippage, rel=1e-12)
    assert total["fees"] == pytest.approx(fees, rel=1e-12)
    assert total["net_pnl"] == pytest.approx(net, rel=1e-12)
    assert total["gross_pnl"] - total["slippage"] - total["fees"] == pytest.approx(
        total["net_pnl"], abs=1e-9
    )
    assert_identity(costs)
    # net equals the change of the broker's value, and the closed trades' net P&L
    assert total["net_pnl"] == pytest.approx(res.equity.iloc[-1] - CASH, rel=1e-12)
    assert total["net_pnl"] == pytest.approx(res.trades["pnl_net"].sum(), rel=1e-12)
    # per fill: raw and slipped prices, one capped fill out of four
    fills = res.fills
    assert fills["raw_price"].tolist() == pytest.approx(list(raw.values()), rel=1e-15)
    assert fills["price"].tolist() == pytest.approx(list(paid.values()), rel=1e-12)
    assert fills["capped"].tolist() == [False, False, True, False]
    assert fills["size"].tolist() == [STAKE, -STAKE, -STAKE, STAKE]
    slip = costs["slippage"]
    notional = STAKE * sum(raw.values())
    assert slip["nominal_bp"] == pytest.approx(10.0)
    assert slip["charged_bp"] == pytest.approx(slippage / notional * 1e4, rel=1e-12)
    assert slip["capped_share"] == 0.25
    # the per-symbol "before costs" figure is this gross, not a lagged bar-close sum
    assert m.per_symbol["TEST"]["gross_pnl_mtm"] == pytest.approx(gross, rel=1e-12)
    assert m.trading["slippage_paid"] == pytest.approx(slippage, rel=1e-12)
    text = slippage_sentence(to_json(costs))
    assert f"charged {slippage / notional * 1e4:.1f} bp" in text
    assert "nominal 10.0 bp" in text and "25 % of fills capped" in text


def to_json(costs: dict) -> dict:
    from mlstrat.report.result import to_jsonable

    return to_jsonable(costs)


def test_slippage_cap_none_charges_the_nominal_slippage_on_every_fill():
    res = run_table(slippage_cap="none")
    fills = res.fills
    side = np.sign(fills["size"].to_numpy())
    expected = fills["raw_price"].to_numpy() * (1 + side * SLIP)
    assert fills["price"].to_numpy() == pytest.approx(expected, rel=1e-15)
    assert fills["price"].iloc[2] == pytest.approx(104.895)  # outside the bar's range
    assert not fills["capped"].any()
    m = compute_metrics(res)
    assert m.costs["slippage"]["charged_bp"] == pytest.approx(10.0, rel=1e-12)
    assert m.costs["slippage"]["cap"] == "none"
    assert res.config["broker"]["slippage_cap"] == "none"
    assert "no cap (slippage_cap: none)" in slippage_sentence(to_json(m.costs))
    assert_identity(m.costs)
    # the default keeps backtrader's bar-range cap: same raw prices, less slippage on bar 6
    capped = run_table()
    assert capped.fills["raw_price"].tolist() == fills["raw_price"].tolist()
    assert capped.fills["price"].iloc[2] == pytest.approx(104.95)


def real_run(
    slippage: float = 0.0005, n: int = 1500, **kwargs
) -> tuple[pd.DataFrame, BacktestResult]:
    bars = sample_bars(n=n)
    preds = momentum_predictions(bars)
    preds.iloc[-30:, preds.columns.get_indexer(["signal", "confidence"])] = np.nan
    params = {"allow_short": True, "max_hold_bars": 12, **kwargs.pop("strategy_params", {})}
    res = run_backtest(
        {"BTCUSDT": prediction_feed(bars, preds, name="BTCUSDT")},
        MLStrategy,
        params,
        cash=10_000.0,
        commission=0.001,
        slippage=slippage,
        **kwargs,
    )
    return bars, res


def test_gross_equals_trades_raw_price_moves_on_real_candles():
    bars, res = real_run()
    trades = res.trades
    assert len(trades) > 30
    assert res.records["position"].iloc[-1] == 0  # every trade closed (no marks involved)
    opens = bars["open"]
    raw_entry = opens.reindex(trades["entry_time"]).to_numpy()
    raw_exit = opens.reindex(trades["exit_time"]).to_numpy()
    direction, size = trades["direction"].to_numpy(float), trades["size"].to_numpy(float)
    expected_gross = float(np.sum(direction * size * (raw_exit - raw_entry)))
    m = compute_metrics(res)
    total = m.costs["total"]
    assert total["gross_pnl"] == pytest.approx(expected_gross, abs=1e-6)
    assert m.per_symbol["BTCUSDT"]["gross_pnl_mtm"] == pytest.approx(expected_gross, abs=1e-6)
    assert_identity(m.costs)
    assert total["net_pnl"] == pytest.approx(res.equity.iloc[-1] - 10_000.0, abs=1e-6)
    assert total["fees"] == pytest.approx(trades["commission"].sum(), rel=1e-12)
    # slippage: what the closed trades lost to it, from their executed prices
    executed = np.sum(
        direction * size * ((raw_exit - trades["exit_price"]) + (trades["entry_price"] - raw_entry))
    )
    assert total["slippage"] == pytest.approx(executed, abs=1e-6)
    slip = m.costs["slippage"]
    assert 0 < slip["capped_share"] < 0.5  # hourly bars opening at their high/low exist
    assert slip["charged_bp"] < slip["nominal_bp"] == pytest.approx(5.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"fill": "close"},
        {"cheat_on_open": True},
        {"strategy_params": {"stop_loss": 0.004, "take_profit": 0.006}},
        {"strategy_params": {"trail_percent": 0.005}},
    ],
    ids=["market", "close", "cheat_on_open", "stop_and_limit", "trailing_stop"],
)
def test_raw_prices_are_the_fills_of_the_same_run_without_slippage(kwargs):
    fixed = {"sizer": bt.sizers.FixedSize, "sizer_params": {"stake": 0.01}}
    _, slipped = real_run(0.002, n=800, **fixed, **kwargs)
    _, plain = real_run(0.0, n=800, **fixed, **kwargs)
    a, b = slipped.fills, plain.fills
    assert len(a) > 10
    assert a["timestamp"].tolist() == b["timestamp"].tolist()
    assert a["order_type"].tolist() == b["order_type"].tolist()
    assert a["raw_price"].to_numpy() == pytest.approx(b["price"].to_numpy(), rel=1e-15)
    assert (b["slippage"] == 0).all() and (b["nominal_slippage"] == 0).all()
    slipped_rows = a["nominal_slippage"] > 0
    paid = a.loc[slipped_rows, "slippage"]
    assert (paid >= 0).all() and (paid > 0).mean() > 0.5  # zero when the open is the high/low
    if "strategy_params" in kwargs:
        assert set(a["order_type"]) > {"market"}
    assert_identity(compute_metrics(slipped).costs)


def test_fills_survive_save_and_load(tmp_path):
    res = run_table()
    loaded = BacktestResult.load(res.save(tmp_path / "r"))
    pd.testing.assert_frame_equal(loaded.fills, res.fills)
    assert compute_metrics(loaded).costs == compute_metrics(res).costs


def test_open_position_without_a_close_to_mark_it_is_unknown_not_an_error():
    fills = run_table().fills.iloc[:1]  # long still open; no records or benchmark
    res = BacktestResult(equity=pd.Series(CASH, index=table_frame().index), fills=fills)
    costs = compute_metrics(res).costs
    assert math.isnan(costs["total"]["gross_pnl"]) and math.isnan(costs["total"]["net_pnl"])
    assert costs["total"]["slippage"] == pytest.approx(STAKE * 101.0 * SLIP)


def test_tampered_fills_break_the_identity_and_raise(tmp_path):
    res = run_table()
    path = res.save(tmp_path / "r") / FILLS_FILE
    fills = pd.read_csv(path)
    fills.loc[1, "slippage"] = 0.0  # slippage no longer matches the prices
    fills.to_csv(path, index=False)
    with pytest.raises(IntegrityError) as err:
        compute_metrics(BacktestResult.load(tmp_path / "r"))
    assert "fills.csv" in str(err.value) and "slippage" in str(err.value)


def test_unreadable_capped_flag_is_a_schema_error(tmp_path):
    res = run_table()
    path = res.save(tmp_path / "r") / FILLS_FILE
    fills = pd.read_csv(path)
    fills["capped"] = fills["capped"].astype(str)
    fills.loc[0, "capped"] = "maybe"
    fills.to_csv(path, index=False)
    with pytest.raises(SchemaError) as err:
        BacktestResult.load(tmp_path / "r")
    assert "capped" in str(err.value)


@pytest.mark.slow
def test_results_without_fills_attribute_from_trades_and_say_so(tmp_path):
    res = run_table()
    saved = res.save(tmp_path / "r")
    (saved / FILLS_FILE).unlink()  # as saved by an mlstrat that did not record fills
    old = BacktestResult.load(saved)
    assert old.fills is None
    m = compute_metrics(old)
    assert m.costs["basis"] == "trades"
    assert m.costs["total"]["gross_pnl"] == pytest.approx(res.trades["pnl"].sum())
    assert math.isnan(m.costs["total"]["slippage"])
    assert m.costs["total"]["net_pnl"] == pytest.approx(res.trades["pnl_net"].sum())
    page = build_report(old, tmp_path / "page").read_text()
    assert "Fills were not recorded" in page


@pytest.mark.slow
def test_report_shows_the_costs_table_and_slippage_line(tmp_path):
    res = run_table()
    page = build_report(res, tmp_path / "page").read_text()
    assert 'id="costs-table"' in page and "slippage-note" in page
    table = page[page.index('id="costs-table"') :]
    table = table[: table.index("</table>")]
    assert "Net P&amp;L (marked to market)" in table and "closed trades" not in table
    assert "nominal 10.0 bp" in page and "25 % of fills capped by the bar range" in page
    assert (tmp_path / "page" / FILLS_FILE).is_file()


def test_slippage_cap_is_checked_in_config_broker_and_cli(tmp_path):
    with pytest.raises(ConfigError) as err:
        BrokerConfig(slippage_cap="high_low")
    assert "slippage_cap" in str(err.value)
    text = (
        "data: {files: [{path: x.parquet, symbol: X}]}\n"
        "predictors: [{name: m, predictor: xgboost}]\n"
        "broker: {slippage: 0.001, slippage_cap: %s}\n"
    )
    (tmp_path / "x.parquet").write_bytes(b"")
    (tmp_path / "ok.yaml").write_text(text % "none")
    assert load_config(tmp_path / "ok.yaml").broker.slippage_cap == "none"
    (tmp_path / "bad.yaml").write_text(text % "bar")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "bad.yaml")
    assert "broker.slippage_cap" in str(err.value)
    from mlstrat.cli import build_parser

    args = build_parser().parse_args(
        ["backtest", "--feed", "f", "--predictions", "p", "--strategy", "s.py:S", "--out", "o"]
    )
    assert args.slippage_cap == "bar_range"
