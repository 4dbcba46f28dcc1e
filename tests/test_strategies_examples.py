"""Every example strategy in strategies/ runs on the shipped sample and follows its own rule.

Predictions are causal rule-based columns (tests/strategy_synth.py), except for
the online example, which fits small XGBoost models inside the backtest.
Each rule is checked on the per-bar records: a position that appears at bar t
was decided on bar t−1's prediction.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from strategy_synth import REPO, momentum_predictions, prediction_feed, sample_bars

from mlstrat.backtest import load_strategy, run_backtest
from mlstrat.cli import main
from mlstrat.feed import FeatureFeed
from mlstrat.report.result import BacktestResult

# Loaded by file path, as the CLI and users load them (strategies/ is not an installed package).
DirectionLongFlat = load_strategy("strategies/direction_long_flat.py:DirectionLongFlat", base=REPO)
HybridEnsemble = load_strategy("strategies/hybrid_ensemble.py:HybridEnsemble", base=REPO)
OnlineRetrain = load_strategy("strategies/online_retrain.py:OnlineRetrain", base=REPO)
TieredLongShort = load_strategy("strategies/tiered_long_short.py:TieredLongShort", base=REPO)
VolTarget = load_strategy("strategies/vol_target.py:VolTarget", base=REPO)

N = 1500


@pytest.fixture(scope="module")
def btc():
    bars = sample_bars("BTCUSDT", 0, N)
    return bars, momentum_predictions(bars)


def transitions(records: pd.DataFrame):
    """(bar, previous position, position) wherever the position changes."""
    pos = records["position"].to_numpy()
    prev = np.concatenate([[0.0], pos[:-1]])
    changed = np.flatnonzero(~np.isclose(pos, prev))
    return [(int(i), prev[i], pos[i]) for i in changed]


def test_direction_long_flat(btc):
    bars, preds = btc
    res = run_backtest({"BTCUSDT": prediction_feed(bars, preds)}, DirectionLongFlat)
    rec = res.records
    moves = transitions(rec)
    assert len(res.trades) >= 10
    assert (rec["position"] >= 0).all()
    p_up = preds["proba_up"].to_numpy()
    for t, before, after in moves:
        if before == 0:  # entry decided on bar t-1
            assert p_up[t - 1] >= 0.55
            # fixed 95 % of the value at t-1's close, in units of that close
            value = res.equity.iloc[t - 1]
            assert after == pytest.approx(0.95 * value / bars["close"].iloc[t - 1], rel=1e-9)
        else:
            assert after == 0 and p_up[t - 1] < 0.50
    assert set(res.trades["exit_reason"]) <= {"proba_below_exit"}


def test_tiered_long_short_follows_fold_thresholds_and_tiers(btc):
    bars, preds = btc
    res = run_backtest({"BTCUSDT": prediction_feed(bars, preds)}, TieredLongShort)
    rec, trades = res.records, res.trades
    assert (trades["direction"] > 0).any() and (trades["direction"] < 0).any()
    assert set(trades["tier"]) <= {"low", "medium", "high"}
    conf = preds["confidence"].to_numpy()
    thr = preds["threshold_long"].to_numpy()
    frac = {"low": 0.25, "medium": 0.5, "high": 1.0}
    checked = 0
    for t, before, after in transitions(rec):
        if after == 0 or before * after > 0:
            continue
        d = t - 1
        assert conf[d] >= thr[d] - 1e-12  # the fold's threshold (0.60 or 0.62) was cleared
        assert np.sign(after) == preds["signal"].iloc[d]
        tier = rec["tier"].iloc[d]
        value = res.equity.iloc[d]
        if before != 0:  # a reversal: the value after closing the old side is not known here
            continue
        target = frac[tier] * value / bars["close"].iloc[d]
        if after < 0 or tier != "high":
            assert abs(after) == pytest.approx(target, rel=1e-9)
        else:  # a full long is limited by cash, commission and the 0.2 % price buffer
            assert after == pytest.approx(value / (bars["close"].iloc[d] * 1.002 * 1.001), rel=1e-9)
        checked += 1
    assert checked >= 10
    assert (trades["bars_held"] <= 48).all()


def test_tiered_long_short_enters_from_the_lowest_tier_of_any_table(btc):
    """min_tier defaults to the table's lowest tier: a two-tier table (tier1, tier2) trades
    from tier1, and a named min_tier still narrows it."""
    bars, preds = btc
    two = {"method": "tiered", "tiers": [[0.6, 0.5], [0.7, 1.0]]}
    res = run_backtest({"BTCUSDT": prediction_feed(bars, preds)}, TieredLongShort,
                       sizer_params=two)  # fmt: skip
    assert set(res.trades["tier"]) == {"tier1", "tier2"}
    top = run_backtest({"BTCUSDT": prediction_feed(bars, preds)}, TieredLongShort,
                       {"min_tier": "tier2"}, sizer_params=two)  # fmt: skip
    assert set(top.trades["tier"]) == {"tier2"} and len(top.trades) < len(res.trades)


def hybrid_predictions(bars: pd.DataFrame) -> pd.DataFrame:
    fast = momentum_predictions(bars, lookback=6)["proba_up"]
    slow = momentum_predictions(bars, lookback=24)["proba_up"]
    p_up = (fast + slow) / 2
    return pd.DataFrame(
        {
            "signal": np.where(p_up >= 0.5, 1.0, -1.0),
            "confidence": np.maximum(p_up, 1 - p_up),
            "proba_up": p_up,
            "proba_up_0_lstm": fast,
            "proba_up_1_transformer": slow,
        },
        index=bars.index,
    ).where(p_up.notna())


def test_hybrid_ensemble_veto(btc):
    bars, _ = btc
    preds = hybrid_predictions(bars)
    res = run_backtest({"BTCUSDT": prediction_feed(bars, preds)}, HybridEnsemble)
    members = preds[["proba_up_0_lstm", "proba_up_1_transformer"]].to_numpy()
    assert len(res.trades) >= 5
    for t, before, after in transitions(res.records):
        d = t - 1
        if after > 0 and before <= 0:
            assert members[d].min() >= 0.5 and preds["confidence"].iloc[d] >= 0.6
        if after < 0 and before >= 0:
            assert members[d].max() <= 0.5 and preds["confidence"].iloc[d] >= 0.6
    assert "member_veto" in set(res.trades["exit_reason"])
    # the veto matters: without it (veto=0) some entries go against a member
    loose = run_backtest({"BTCUSDT": prediction_feed(bars, preds)}, HybridEnsemble, {"veto": 0.0})
    against = [
        t
        for t, before, after in transitions(loose.records)
        if (after > 0 >= before and members[t - 1].min() < 0.5)
        or (after < 0 <= before and members[t - 1].max() > 0.5)
    ]
    assert against


def test_vol_target_trend_sizes_by_forecast_volatility(btc):
    bars, preds = btc
    feed = prediction_feed(bars, preds[["volatility"]])
    res = run_backtest({"BTCUSDT": feed}, VolTarget)
    close = bars["close"]
    fast, slow = close.rolling(24).mean(), close.rolling(96).mean()
    vol = preds["volatility"].to_numpy()
    moves = transitions(res.records)
    assert len(res.trades) >= 5
    for t, before, after in moves:
        d = t - 1
        if before == 0:
            assert fast.iloc[d] > slow.iloc[d]
            scale = min(0.5 / (vol[d] * math.sqrt(8760)), 1.0)
            value = res.equity.iloc[d]
            want = scale * value / close.iloc[d]
            cash_cap = value / (close.iloc[d] * 1.002 * 1.001)
            assert after == pytest.approx(min(want, cash_cap), rel=1e-9)
        else:
            assert after == 0 and fast.iloc[d] < slow.iloc[d]


def test_vol_target_model_signal(btc):
    bars, preds = btc
    res = run_backtest(
        {"BTCUSDT": prediction_feed(bars, preds)}, VolTarget, {"signal_source": "model"}
    )
    sig = preds["signal"].to_numpy()
    for t, _before, after in transitions(res.records):
        assert (after > 0 and sig[t - 1] > 0) or (after == 0 and sig[t - 1] < 0)


@pytest.mark.slow
def test_online_retrain_fits_xgboost_inside_the_backtest():
    from mlstrat.features import build_feature_feed, feature_columns
    from mlstrat.walkforward.online import ONLINE_PREDICTION_COLUMNS, with_prediction_columns
    from mlstrat.walkforward.splits import WalkForward

    bars = sample_bars("BTCUSDT", 0, 1200)
    features = build_feature_feed(bars, "core", targets=("direction:1",))
    names = feature_columns(features)
    feed = FeatureFeed.from_frame(
        with_prediction_columns(features),
        columns=[*names, "direction_1", *ONLINE_PREDICTION_COLUMNS],
    )
    params = {
        "splits": WalkForward(train=400, test=300),
        "predictor_params": {"n_estimators": 30, "max_depth": 3, "early_stopping_rounds": None},
    }
    res = run_backtest({"BTCUSDT": feed}, OnlineRetrain, params)
    rec = res.records
    # folds start testing at bars 400, 700, 1000
    assert rec["fold"].dropna().unique().tolist() == [0.0, 1.0, 2.0]
    assert rec["fold"].first_valid_index() == 400
    assert rec["fold"].iloc[700] == 1 and rec["fold"].iloc[1000] == 2
    assert rec["signal"].iloc[:400].isna().all()
    assert rec["signal"].iloc[400:].isin([-1.0, 0.0, 1.0]).all()
    conf = rec["confidence"].iloc[400:]
    assert ((conf >= 0.5) & (conf <= 1)).all()
    assert len(res.trades) > 0
    # entries only where the fold's fitted threshold was cleared
    for t in np.flatnonzero(np.diff(rec["position"].to_numpy()) != 0) + 1:
        if rec["position"].iloc[t - 1] == 0:
            assert rec["signal"].iloc[t - 1] != 0
    assert rec["target"].notna().sum() > 1000  # realised direction recorded beside predictions


def test_backtest_cli_end_to_end(tmp_path, capsys):
    bars = sample_bars("ETHUSDT", 0, 800)
    preds = momentum_predictions(bars)
    feed_path, pred_path = tmp_path / "eth.parquet", tmp_path / "wf" / "predictions.parquet"
    pred_path.parent.mkdir()
    bars.reset_index().to_parquet(feed_path)
    preds.reset_index().to_parquet(pred_path)
    (pred_path.parent / "folds.json").write_text('[{"fold": 0, "auc": 0.55}]')
    out = tmp_path / "run"
    code = main(
        [
            "backtest",
            "--feed", str(feed_path),
            "--predictions", str(pred_path),
            "--symbol", "ETHUSDT",
            "--strategy", str(REPO / "strategies" / "tiered_long_short.py") + ":TieredLongShort",
            "--param", "max_hold_bars=24",
            "--sizer-param", "max_position=0.5",
            "--cash", "5000",
            "--commission", "0.0005",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    assert "saved" in capsys.readouterr().out
    result = BacktestResult.load(out)
    assert result.symbols == ["ETHUSDT"]
    assert result.folds == [{"symbol": "ETHUSDT", "fold": 0, "auc": 0.55}]
    assert result.config["strategy"]["params"]["max_hold_bars"] == 24
    assert result.config["sizer"]["params"]["max_position"] == 0.5
    assert result.config["broker"]["commission"] == 0.0005
    assert result.equity.iloc[0] == 5000
    assert len(result.trades) > 0 and (result.trades["bars_held"] <= 24).all()

    bad = main(
        ["backtest", "--feed", str(feed_path), "--strategy", "nowhere.py:X", "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert bad == 2 and err.count("\n") == 1 and "strategy file not found" in err


def test_load_strategy_forms(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    cls = load_strategy("strategies.tiered_long_short:TieredLongShort")
    assert cls.__name__ == "TieredLongShort" and cls.default_sizer_params["method"] == "tiered"
    cls = load_strategy(str(REPO / "strategies" / "vol_target.py") + ":VolTarget")
    assert cls.__name__ == "VolTarget"
    from mlstrat.errors import ConfigError

    for spec in ("no_colon", "strategies.tiered_long_short:Nope", "not.a.module:X"):
        with pytest.raises(ConfigError):
            load_strategy(spec)
