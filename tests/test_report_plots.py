"""Charts: every figure is titled and labelled, PNGs decode, missing data gives a note."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from report_synth import make_result

from mlstrat.report.metrics import compute_metrics
from mlstrat.report.plots import (
    make_charts,
    monthly_returns,
    plot_equity,
    plot_price_trades,
    position_tiers,
    save_charts,
    want_log_scale,
)
from mlstrat.report.result import BacktestResult


def _check_labelled(fig, name):
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert axes, name
    titles = [ax.get_title() for ax in axes] + [fig._suptitle.get_text() if fig._suptitle else ""]
    assert any(t.strip() for t in titles), f"{name}: no title"
    for ax in axes:
        assert ax.get_ylabel().strip(), f"{name}: an axes without a y label"
    # shared x axes label only the bottom one
    assert any(ax.get_xlabel().strip() for ax in axes), f"{name}: no x label"
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            assert ax.get_ylabel().strip(), f"{name}: colorbar without a label"


@pytest.fixture(scope="module")
def multi():
    res = make_result(600, ("BTCUSDT", "ETHUSDT"), seed=8)
    return res, compute_metrics(res)


@pytest.mark.slow
def test_every_chart_of_a_full_multi_symbol_run_is_drawn_and_labelled(multi, tmp_path):
    res, m = multi
    charts = make_charts(res, m)
    names = [c.name for c in charts]
    assert names == [
        "equity",
        "drawdown",
        "monthly_returns",
        "rolling",
        "symbol_pnl",
        "price_BTCUSDT",
        "price_ETHUSDT",
        "positions",
        "trade_pnl",
        "tiers",
        "calibration",
        "confusion",
        "folds",
        "feature_importance",
    ]
    for c in charts:
        assert c.figure is not None, (c.name, c.note)
        _check_labelled(c.figure, c.name)
    # the positions view has one panel per symbol
    assert len([a for a in charts[7].figure.axes]) == 2
    save_charts(charts, tmp_path, dpi=50)
    for c in charts:
        img = imread(tmp_path / c.file)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 200
        assert img[..., :3].std() > 0.02  # not a blank canvas
        assert c.figure is None  # released after saving


def test_price_chart_marks_every_entry_and_exit(multi):
    res, m = multi
    ax = plot_price_trades(res, "BTCUSDT").axes[0]
    tr = res.trades[res.trades["symbol"] == "BTCUSDT"]
    marks = {c.get_label(): len(c.get_offsets()) for c in ax.collections}
    assert marks["Long entry"] == int((tr["direction"] > 0).sum())
    assert marks["Short entry"] == int((tr["direction"] < 0).sum())
    assert marks.get("Exit", 0) in (0, len(tr))  # exits dropped only for crowded charts


def test_bare_equity_curve_draws_performance_charts_and_notes_the_rest():
    idx = pd.date_range("2024-01-01", periods=200, freq="1D", tz="UTC")
    eq = pd.Series(100 * np.cumprod(1 + np.random.default_rng(1).normal(0, 0.01, 200)), index=idx)
    res = BacktestResult(equity=eq)
    charts = {c.name: c for c in make_charts(res, compute_metrics(res))}
    for drawn in ("equity", "drawdown", "monthly_returns", "rolling"):
        assert charts[drawn].figure is not None, drawn
    expected_notes = {
        "trade_pnl": "no closed trades",
        "positions": "no per-bar records",
        "tiers": "no signals or trades",
        "calibration": "no predictions",
        "confusion": "no signals",
        "folds": "no per-fold metrics",
        "feature_importance": "no feature importance",
        "symbol_pnl": "single-symbol",
    }
    for name, text in expected_notes.items():
        assert charts[name].figure is None and text in charts[name].note, name


def test_log_scale_is_chosen_when_values_span_more_than_ten_times():
    idx = pd.date_range("2024-01-01", periods=300, freq="1D", tz="UTC")
    steep = BacktestResult(equity=pd.Series(np.geomspace(100, 5000, 300), index=idx))
    flat = BacktestResult(equity=pd.Series(np.linspace(100, 150, 300), index=idx))
    assert want_log_scale(steep, "auto") and not want_log_scale(flat, "auto")
    assert want_log_scale(flat, True) and not want_log_scale(steep, False)
    for res, scale in ((steep, "log"), (flat, "linear")):
        fig = make_charts(res, compute_metrics(res))[0].figure
        assert fig.axes[0].get_yscale() == scale
    forced = plot_equity(flat, compute_metrics(flat), log=True)
    assert forced.axes[0].get_yscale() == "log"
    assert "log" in forced.axes[0].get_ylabel()


def test_monthly_returns_hand_worked():
    idx = pd.DatetimeIndex(
        ["2024-01-01", "2024-01-31", "2024-02-15", "2024-02-29", "2024-03-31"], tz="UTC"
    )
    eq = pd.Series([100.0, 110.0, 90.0, 99.0, 99.0], index=idx)
    table = monthly_returns(eq)
    assert table.loc[2024, 1] == pytest.approx(0.10)  # 100 -> 110
    assert table.loc[2024, 2] == pytest.approx(99 / 110 - 1)
    assert table.loc[2024, 3] == pytest.approx(0.0)
    assert table.loc[2024, [4, 5, 12]].isna().all()


def test_position_tier_comes_from_the_trade_that_opened_it(multi):
    res, _ = multi
    tr = res.trades[res.trades["symbol"] == "ETHUSDT"].iloc[0]
    rec = res.records[res.records["symbol"] == "ETHUSDT"]
    tiers = position_tiers(res, "ETHUSDT", rec["timestamp"])
    inside = (rec["timestamp"] >= tr["entry_time"]) & (rec["timestamp"] < tr["exit_time"])
    assert inside.sum() == tr["bars_held"]
    assert set(tiers[inside.to_numpy()]) == {tr["tier"]}
