"""Trading metrics against empyrical (reference library) and hand-worked numbers; ML diagnostics
against scikit-learn / scipy and small tables worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from report_synth import make_result

from mlstrat.errors import ConfigError
from mlstrat.report import metrics as M
from mlstrat.report.result import BacktestResult

ep = pytest.importorskip("empyrical", reason="reference library empyrical-reloaded (dev extra)")
stats = pytest.importorskip("scipy.stats")
skm = pytest.importorskip("sklearn.metrics")

TOL = 1e-6


def _equity(seed: int, n: int = 2000, freq: str = "1h", vol: float = 0.01) -> pd.Series:
    rng = np.random.default_rng(seed)
    r = rng.standard_t(4, n) * vol / 1.4 + 0.0002
    idx = pd.date_range("2024-03-01", periods=n, freq=freq, tz="UTC")
    return pd.Series(5000.0 * np.cumprod(1 + r), index=idx)


@pytest.mark.parametrize("seed,ppy", [(0, 8760.0), (1, 252.0), (2, 525600.0), (3, 1764.0)])
def test_return_metrics_match_empyrical(seed, ppy):
    eq = _equity(seed)
    r = M.bar_returns(eq)
    # the reference sees the same series: returns from the equity curve
    np.testing.assert_allclose(r.to_numpy(), eq.pct_change().dropna().to_numpy(), rtol=1e-12)
    assert M.total_return(eq) == pytest.approx(ep.cum_returns_final(r), abs=TOL)
    assert M.cagr(r, ppy) == pytest.approx(ep.annual_return(r, annualization=ppy), rel=TOL)
    assert M.annual_volatility(r, ppy) == pytest.approx(
        ep.annual_volatility(r, annualization=ppy), rel=TOL
    )
    assert M.sharpe_ratio(r, ppy) == pytest.approx(ep.sharpe_ratio(r, annualization=ppy), rel=TOL)
    rf = 0.03
    rf_bar = (1 + rf) ** (1 / ppy) - 1
    assert M.sharpe_ratio(r, ppy, rf) == pytest.approx(
        ep.sharpe_ratio(r, risk_free=rf_bar, annualization=ppy), rel=TOL
    )
    assert M.sortino_ratio(r, ppy) == pytest.approx(ep.sortino_ratio(r, annualization=ppy), rel=TOL)
    assert M.sortino_ratio(r, ppy, rf) == pytest.approx(
        ep.sortino_ratio(r, required_return=rf_bar, annualization=ppy), rel=TOL
    )
    assert M.max_drawdown(eq) == pytest.approx(ep.max_drawdown(r), abs=TOL)
    mdd = M.max_drawdown(eq)
    assert M.cagr(r, ppy) / abs(mdd) == pytest.approx(
        ep.calmar_ratio(r, annualization=ppy), rel=TOL
    )
    assert M.value_at_risk(r) == pytest.approx(ep.value_at_risk(r, cutoff=0.05), abs=TOL)
    assert M.conditional_value_at_risk(r) == pytest.approx(
        ep.conditional_value_at_risk(r, cutoff=0.05), abs=TOL
    )
    # skew/kurtosis: empyrical's stat list uses scipy's defaults (population moments, excess)
    assert M.skewness(r) == pytest.approx(stats.skew(r), rel=TOL)
    assert M.excess_kurtosis(r) == pytest.approx(stats.kurtosis(r), rel=TOL)


def test_sortino_differs_from_negative_returns_std_convention():
    """Documented convention: downside deviation over all bars, not std of the losing bars."""
    r = np.array([0.02, -0.01, 0.03, -0.02, 0.01, 0.0])
    ppy = 252
    down = np.sqrt(np.mean(np.minimum(r, 0) ** 2))  # hand: sqrt((1e-4 + 4e-4) / 6)
    assert down == pytest.approx(math.sqrt(5e-4 / 6))
    expected = r.mean() / down * math.sqrt(ppy)
    assert M.sortino_ratio(r, ppy) == pytest.approx(expected, rel=1e-12)
    other = r.mean() / np.std(r[r < 0], ddof=1) * math.sqrt(ppy)
    assert abs(M.sortino_ratio(r, ppy) - other) > 0.1


def test_alpha_beta_match_empyrical_and_buy_and_hold_is_equal_weight():
    idx = pd.date_range("2024-01-01", periods=500, freq="1h", tz="UTC")
    rng = np.random.default_rng(5)
    a = 100 * np.cumprod(1 + rng.normal(0, 0.01, 500))
    b = 50 * np.cumprod(1 + rng.normal(0, 0.02, 500))
    bench = pd.DataFrame({"A": a, "B": b}, index=idx)
    bh = M.buy_and_hold(bench, idx, 1000.0)
    np.testing.assert_allclose(bh.to_numpy(), 1000 * (a / a[0] + b / b[0]) / 2, rtol=1e-12)
    br = M.bar_returns(bh)
    strat = 0.4 * br + pd.Series(rng.normal(0.0003, 0.005, len(br)), index=br.index)
    alpha, beta = M.alpha_beta(strat, br, 8760)
    ref_alpha, ref_beta = ep.alpha_beta(strat, br, annualization=8760)
    assert beta == pytest.approx(ref_beta, rel=TOL)
    assert alpha == pytest.approx(ref_alpha, rel=TOL)
    assert beta == pytest.approx(0.4, abs=0.05)


def test_compute_metrics_headlines_match_reference_on_result():
    res = make_result(1500, ("BTCUSDT", "ETHUSDT"), seed=4)
    m = M.compute_metrics(res)
    t = m.trading
    P = 8760.0
    assert m.annualisation.periods_per_year == P
    r = res.equity.pct_change().dropna()
    assert t["total_return"] == pytest.approx(ep.cum_returns_final(r), abs=TOL)
    assert t["cagr"] == pytest.approx(ep.annual_return(r, annualization=P), rel=TOL)
    assert t["sharpe"] == pytest.approx(ep.sharpe_ratio(r, annualization=P), rel=TOL)
    assert t["sortino"] == pytest.approx(ep.sortino_ratio(r, annualization=P), rel=TOL)
    assert t["calmar"] == pytest.approx(ep.calmar_ratio(r, annualization=P), rel=TOL)
    assert t["max_drawdown"] == pytest.approx(ep.max_drawdown(r), abs=TOL)
    assert t["annual_volatility"] == pytest.approx(
        ep.annual_volatility(r, annualization=P), rel=TOL
    )
    bh = res.benchmark.div(res.benchmark.iloc[0]).mean(axis=1)
    ref_alpha, ref_beta = ep.alpha_beta(r, bh.pct_change().dropna(), annualization=P)
    assert t["alpha"] == pytest.approx(ref_alpha, rel=TOL)
    assert t["beta"] == pytest.approx(ref_beta, rel=TOL)
    assert m.benchmark["total_return"] == pytest.approx(bh.iloc[-1] / bh.iloc[0] - 1, abs=TOL)
    assert t["best_period"] == pytest.approx(r.max()) and t["worst_period"] == pytest.approx(
        r.min()
    )
    assert t["n_trades"] == len(res.trades)
    assert t["fees_paid"] == pytest.approx(res.trades["commission"].sum())
    assert set(m.per_symbol) == {"BTCUSDT", "ETHUSDT"}
    # cost attribution (no fills recorded here: from the closed trades): gross − fees = net
    costs = m.costs
    assert costs["basis"] == "trades"
    for row in [*costs["per_symbol"].values(), costs["total"]]:
        assert row["gross_pnl"] - row["fees"] == pytest.approx(row["net_pnl"], abs=1e-9)
    assert costs["total"]["net_pnl"] == pytest.approx(res.trades["pnl_net"].sum())


def test_annualisation_is_inferred_from_bars_and_calendar():
    def idx(freq, n=400, start="2024-01-01"):
        return pd.date_range(start, periods=n, freq=freq, tz="UTC")

    assert M.infer_annualisation(idx("1h")).periods_per_year == 8760
    assert M.infer_annualisation(idx("1min", 20000)).periods_per_year == 525600
    assert M.infer_annualisation(idx("1D")).periods_per_year == 365
    assert M.infer_annualisation(idx("1h"), timeframe="4h").periods_per_year == 2190
    days = pd.bdate_range("2024-01-01", periods=300, tz="UTC")
    a = M.infer_annualisation(days)
    assert (a.periods_per_year, a.calendar) == (252, "weekdays")
    # equity session: 7 hourly bars a weekday -> 252 * 7
    hours = pd.DatetimeIndex([d + pd.Timedelta(hours=14 + h) for d in days[:60] for h in range(7)])
    assert M.infer_annualisation(hours).periods_per_year == 252 * 7
    assert M.infer_annualisation(idx("7D", 100)).periods_per_year == pytest.approx(52)
    assert M.infer_annualisation(idx("MS", 40)).periods_per_year == 12
    assert M.infer_annualisation(idx("1h"), periods_per_year=1000).periods_per_year == 1000
    with pytest.raises(ConfigError, match="periods_per_year"):
        M.infer_annualisation(idx("1h"), periods_per_year=-1)


def test_drawdown_episodes_durations_hand_worked():
    idx = pd.date_range("2024-01-01", periods=10, freq="1D", tz="UTC")
    # peak 100 at day 0 -> trough 80 at day 2 -> recovered day 3 (3 bars);
    # peak 110 at day 4 -> 105, 95, 100, 108, 109: never recovered (5 bars to the end)
    eq = pd.Series([100, 90, 80, 100, 110, 105, 95, 100, 108, 109], index=idx, dtype=float)
    ep_ = M.drawdown_episodes(eq)
    assert [(e.peak, e.trough, e.recovery, e.bars) for e in ep_] == [
        (idx[0], idx[2], idx[3], 3),
        (idx[4], idx[6], None, 5),
    ]
    assert ep_[0].depth == pytest.approx(-0.2)
    assert ep_[1].depth == pytest.approx(95 / 110 - 1)
    res = BacktestResult(equity=eq)
    t = M.compute_metrics(res).trading
    assert t["max_drawdown"] == pytest.approx(-0.2)
    assert (t["max_drawdown_bars"], t["max_drawdown_days"]) == (3, 3.0)
    assert (t["longest_underwater_bars"], t["longest_underwater_days"]) == (5, 5.0)
    assert t["n_trades"] == 0 and t["exposure"] == 0.0


def _trades(rows):
    cols = ["symbol", "direction", "entry_time", "exit_time", "entry_price", "exit_price", "size"]
    cols += ["pnl", "pnl_net", "commission", "bars_held", "tier", "exit_reason"]
    return pd.DataFrame(rows, columns=cols)


def test_trade_stats_exposure_turnover_hand_worked():
    idx = pd.date_range("2024-01-01", periods=10, freq="1h", tz="UTC")
    t = _trades(
        [
            ["X", 1, idx[1], idx[3], 10.0, 12.0, 5.0, 10.0, 9.0, 1.0, 2, "high", "signal"],
            ["X", -1, idx[4], idx[5], 12.0, 13.0, 2.0, -2.0, -2.5, 0.5, 1, "low", "stop"],
            ["X", 1, idx[6], idx[9], 13.0, 14.0, 1.0, 1.0, 0.5, 0.5, 3, "low", "signal"],
        ]
    )
    eq = pd.Series(np.full(10, 100.0), index=idx)
    res = BacktestResult(equity=eq, trades=t)
    s = M.trade_stats(res.trades)
    assert s["n_trades"] == 3 and (s["n_long"], s["n_short"]) == (2, 1)
    assert s["win_rate"] == pytest.approx(2 / 3)
    assert s["profit_factor"] == pytest.approx(9.5 / 2.5)
    assert s["expectancy"] == pytest.approx(7 / 3)
    assert s["avg_win"] == pytest.approx(4.75) and s["avg_loss"] == pytest.approx(-2.5)
    assert s["avg_holding_hours"] == pytest.approx(2.0)
    assert s["fees_paid"] == pytest.approx(2.0)
    assert s["avg_trade_return"] == pytest.approx((9 / 50 - 2.5 / 24 + 0.5 / 13) / 3)
    # no records: exposure from trade intervals [1,3) [4,5) [6,9) -> 6 of 10 bars
    assert M.exposure(res) == pytest.approx(0.6)
    # turnover from trades: 5*(10+12) + 2*(12+13) + 1*(13+14) = 187 over mean equity 100
    m = M.compute_metrics(res, periods_per_year=8760)
    assert m.trading["turnover"] == pytest.approx(1.87)
    assert m.trading["turnover_annual"] == pytest.approx(1.87 / (9 / 8760))
    assert M.trade_stats(t.iloc[[0]])["profit_factor"] == math.inf


def _records(close, signal, proba, tier, position, fold=None, symbol="X", **extra):
    n = len(close)
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    return pd.DataFrame(
        {
            "timestamp": idx,
            "symbol": symbol,
            "close": close,
            "signal": signal,
            "confidence": np.abs(np.asarray(proba, float) - 0.5) * 2,
            "proba_up": proba,
            "tier": tier,
            "position": position,
            "position_value": np.asarray(position, float) * np.asarray(close, float),
            "fold": np.zeros(n) if fold is None else fold,
            **extra,
        }
    )


def test_records_exposure_turnover_tiers_confusion_hand_worked():
    close = [10.0, 11.0, 10.0, 10.0, 12.0, 12.0]
    signal = [1, -1, 0, 1, 1, 0]
    proba = [0.8, 0.3, 0.5, 0.9, 0.7, 0.5]
    tier = ["high", "low", "", "high", "low", ""]
    position = [1.0, -1.0, 0.0, 2.0, 2.0, 0.0]
    rec = _records(close, signal, proba, tier, position)
    idx = rec["timestamp"]
    res = BacktestResult(equity=pd.Series(100.0, index=pd.DatetimeIndex(idx)), records=rec)
    assert M.exposure(res) == pytest.approx(4 / 6)
    # |changes| 1,2,1,2,0,2 at closes 10,11,10,10,12,12 -> 10+22+10+20+0+24 = 86
    assert M.traded_notional(res) == pytest.approx(86.0)
    out = M.realised_outcomes(res.records)
    np.testing.assert_allclose(
        out["realised_return"].to_numpy()[:5], [0.1, -1 / 11, 0.0, 0.2, 0.0], rtol=1e-12
    )
    tiers = {r["tier"]: r for r in M.tier_table(res, out)}
    # high: bars 0 (+1, +10%) hit, 3 (+1, +20%) hit
    assert tiers["high"]["hit_rate"] == 1.0
    assert tiers["high"]["avg_return"] == pytest.approx(0.15)
    # low: bar 1 (-1, -1/11) hit, bar 4 (+1, 0.0) miss
    assert tiers["low"]["hit_rate"] == 0.5
    assert tiers["low"]["avg_return"] == pytest.approx((1 / 11 + 0.0) / 2)
    assert [r["tier"] for r in M.tier_table(res, out)] == ["low", "high"]  # by mean confidence
    cm = M.confusion_matrix(res, out)
    # realised up: 1,0,0,1,0 (bar 5 unknown); predicted -1/0/+1 -> columns sell/hold/buy
    assert cm["actual"] == ["down", "up"]
    assert cm["counts"] == [[1, 1, 1], [0, 0, 2]]


def test_ml_scores_match_sklearn_and_scipy():
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 400).astype(float)
    p = np.clip(0.5 + 0.2 * (y - 0.5) + rng.normal(0, 0.2, 400), 0.01, 0.99)
    assert M.auc_score(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    p_tied = np.round(p, 1)
    assert M.auc_score(y, p_tied) == pytest.approx(skm.roc_auc_score(y, p_tied), abs=1e-12)
    assert M.log_loss(y, p) == pytest.approx(skm.log_loss(y, p), abs=1e-12)
    assert M.brier_score(y, p) == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)
    ret = rng.normal(0, 1, 400) + (p - 0.5)
    assert M.spearman_ic(p, ret) == pytest.approx(stats.spearmanr(p, ret).statistic, abs=1e-12)
    assert math.isnan(M.auc_score(np.ones(5), np.linspace(0, 1, 5)))


def test_fold_table_prefers_walk_forward_values_and_fills_from_records():
    rng = np.random.default_rng(2)
    n = 200
    close = 100 * np.cumprod(1 + rng.normal(0, 0.01, n))
    proba = rng.uniform(0.2, 0.8, n)
    fold = np.repeat([0.0, 1.0], n // 2)
    rec = _records(close, np.sign(proba - 0.5), proba, "", 0.0, fold=fold)
    idx = pd.DatetimeIndex(rec["timestamp"])
    res = BacktestResult(
        equity=pd.Series(100.0, index=idx),
        records=rec,
        folds=[{"fold": 0, "accuracy": 0.99, "train_rows": 500}],
    )
    rows = M.fold_table(res)
    assert [r["fold"] for r in rows] == [0, 1]
    assert rows[0]["accuracy"] == 0.99 and rows[0]["train_rows"] == 500
    second = M.realised_outcomes(rec).iloc[100:199]  # last bar has no realised outcome
    y, p = second["realised_up"].to_numpy(), second["proba_up"].to_numpy()
    assert rows[1]["accuracy"] == pytest.approx(np.mean((p >= 0.5) == (y == 1)))
    assert rows[1]["auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert rows[1]["brier"] == pytest.approx(skm.brier_score_loss(y, p))
    assert rows[0]["auc"] == pytest.approx(
        skm.roc_auc_score(
            *M.realised_outcomes(rec).iloc[:100][["realised_up", "proba_up"]].T.values
        )
    )


def test_calibration_bins_hand_worked_and_confidence_fallback():
    close = [10.0, 11.0, 10.0, 11.0, 12.0, 11.0]
    proba = [0.15, 0.12, 0.85, 0.81, 0.88, 0.5]
    signal = [-1, -1, 1, 1, 1, 0]
    rec = _records(close, signal, proba, "", 0.0)
    res = BacktestResult(
        equity=pd.Series(1.0, index=pd.DatetimeIndex(rec["timestamp"])), records=rec
    )
    cal = M.calibration_table(res)
    assert cal["kind"] == "proba_up"
    bins = {(b["lower"], b["upper"]): b for b in cal["bins"]}
    # up moves: 1,0,1,1,0 for the first five bars
    low = bins[(0.1, 0.2)]
    assert (low["count"], low["realised"]) == (2, 0.5)
    assert low["predicted"] == pytest.approx(0.135)
    high = bins[(0.8, 0.9)]
    assert high["count"] == 3 and high["realised"] == pytest.approx(2 / 3)
    rec2 = rec.assign(proba_up=np.nan)
    res2 = BacktestResult(equity=res.equity, records=rec2)
    cal2 = M.calibration_table(res2)
    # confidence = |p - 0.5| * 2; right when the signal sign matches the move
    assert cal2["kind"] == "confidence"
    assert sum(b["count"] for b in cal2["bins"]) == 5
    right = [0.0, 1.0, 1.0, 1.0, 0.0]
    assert sum(b["realised"] * b["count"] for b in cal2["bins"]) == pytest.approx(sum(right))


def test_three_class_target_gives_three_by_three_confusion():
    close = [10.0, 11.0, 10.0, 11.0]
    rec = _records(close, [1, 0, -1, 1], [np.nan] * 4, "", 0.0, target=[2.0, 1.0, 0.0, np.nan])
    res = BacktestResult(
        equity=pd.Series(1.0, index=pd.DatetimeIndex(rec["timestamp"])), records=rec
    )
    cm = M.confusion_matrix(res)
    assert cm["actual"] == ["sell", "hold", "buy"]
    assert cm["counts"] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
