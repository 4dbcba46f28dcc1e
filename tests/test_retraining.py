"""OnlineRetraining as a mixin; MLStrategy without online state; tiers resolved explicitly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlstrat.backtest import run_backtest
from mlstrat.broker import BrokerConfig, make_cerebro
from mlstrat.errors import ConfigError
from mlstrat.feed import FeatureFeed
from mlstrat.predictors.base import Prediction, Predictor
from mlstrat.retraining import OnlineRetraining
from mlstrat.sizing import DEFAULT_TIER_NAMES, TieredConfidenceSizer
from mlstrat.strategy import MLStrategy, PredictionRecorder
from mlstrat.walkforward.online import WalkForwardStrategy
from mlstrat.walkforward.splits import WalkForward

N = 60
#: Up labels per block of 10 bars; fold k is fitted on block k, so it predicts P(up) = share / 10.
UP_PER_BLOCK = (7, 9, 3, 9, 7, 5)
ONLINE = {"feature_lines": ("bar",), "target_line": "direction_1", "target_horizon": 1}


class MeanUp(Predictor):
    """Test double: P(up) = share of up labels in training; records what it was fitted on."""

    name = "mean_up"
    fits: list[pd.DataFrame] = []

    def fit(self, X, y, *, validation=None):
        self.feature_names = list(X.columns)
        self.p_up = float(y.mean())
        MeanUp.fits.append(X.assign(y=y.to_numpy()))
        return self

    def predict(self, X):
        p = np.full(len(X), self.p_up)
        return Prediction(
            signal=np.where(p >= 0.5, 1.0, -1.0),
            confidence=np.maximum(p, 1 - p),
            proba=np.column_stack([1 - p, p]),
        )


def online_frame() -> pd.DataFrame:
    index = pd.date_range("2025-01-01", periods=N, freq="1h", tz="UTC", name="timestamp")
    close = np.linspace(100.0, 110.0, N)
    labels = np.concatenate([[1.0] * k + [0.0] * (10 - k) for k in UP_PER_BLOCK])
    return pd.DataFrame(
        {
            "open": close,
            "high": close + 0.5,
            "low": close - 0.5,
            "close": close,
            "volume": 1.0,
            "bar": np.arange(N, dtype=float),
            "direction_1": labels,
            "signal": np.nan,
            "confidence": np.nan,
            "proba_up": np.nan,
            "fold": np.nan,
        },
        index=index,
    )


def run(strategy, **params):
    columns = ["bar", "direction_1", "signal", "confidence", "proba_up", "fold"]
    feed = FeatureFeed.from_frame(online_frame(), columns=columns, name="TEST")
    return run_backtest(
        {"TEST": feed},
        strategy,
        {"predictor_factory": lambda fold: MeanUp(), **ONLINE, **params},
        sizer_params={"method": "fixed", "fixed_fraction": 0.5},
    )


class ConfidentLong(MLStrategy):
    """A user strategy with its own parameter: long only when P(up) >= min_proba."""

    params = (("min_proba", 0.75),)

    def entry_signal(self, data, pred):
        return 1 if pred.proba >= self.p.min_proba else 0


class OnlineConfidentLong(OnlineRetraining, ConfidentLong):
    """The mixin in front of an existing MLStrategy subclass."""


def test_mlstrategy_carries_no_online_retraining():
    names = set(MLStrategy.params._getkeys())
    for online in ("predictor_factory", "retrain_every", "train_window", "feature_lines"):
        assert online not in names
    with pytest.raises(ConfigError, match="has no parameter"):
        run(MLStrategy, retrain_every=10, train_window=10)


def test_the_mixin_adds_retraining_to_an_existing_strategy():
    expected = np.full(N, np.nan)
    for k in range(1, N // 10):  # fitted at bar 10k on block k - 1
        expected[10 * k : 10 * k + 10] = UP_PER_BLOCK[k - 1] / 10
    plain = run(OnlineRetraining, retrain_every=10, train_window=10)
    mixed = run(OnlineConfidentLong, retrain_every=10, train_window=10, min_proba=0.8)
    for res in (plain, mixed):
        np.testing.assert_allclose(res.records["proba_up"].to_numpy(), expected, equal_nan=True)
        folds = res.records["fold"].to_numpy()
        assert np.isnan(folds[:10]).all() and list(folds[10::10]) == [0, 1, 2, 3, 4]
    params = mixed.config["strategy"]["params"]
    assert params["min_proba"] == 0.8 and params["retrain_every"] == 10
    index = online_frame().index
    # default rule enters at P(up) 0.7 (decided on bar 10, filled on bar 11); the user's rule
    # waits for 0.9 (bar 20); both leave on the flip to 0.3 (bar 30) and re-enter at bar 40
    assert list(plain.trades["entry_time"]) == [index[11]]
    assert list(mixed.trades["entry_time"]) == [index[21]]
    for res in (plain, mixed):
        assert list(res.trades["exit_time"]) == [index[31]]
        assert res.records["position"].iloc[41] > 0


def test_schedule_checks_belong_to_each_schedule():
    with pytest.raises(ConfigError, match="retrain_every") as info:
        run(OnlineRetraining, train_window=10)
    assert info.value.param == "retrain_every"
    with pytest.raises(ConfigError, match="splits must be a WalkForward") as info:
        run(WalkForwardStrategy, splits="4mo")
    assert info.value.param == "splits"
    # the walk-forward schedule needs no retrain_every / train_window (4 months > 60 bars: no fit)
    res = run(WalkForwardStrategy, splits=WalkForward(train="4mo", test="2mo"))
    assert res.records["signal"].isna().all()


@pytest.mark.parametrize("strategy", [OnlineRetraining, WalkForwardStrategy])
def test_online_strategies_need_a_signal_line_to_write_into(strategy):
    params = {"retrain_every": 10, "train_window": 10} if strategy is OnlineRetraining else {}
    with pytest.raises(ConfigError, match="prediction lines"):
        run(strategy, signal_line=None, **params)


def test_online_retraining_uses_only_labelled_past_bars():
    n = 40
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    index = pd.date_range("2025-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    df = pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1.0},
        index=index,
    )
    df["bar"] = np.arange(n, dtype=float)
    df["direction_1"] = (
        (df["close"].shift(-1) > df["close"]).astype(float).where(df["close"].shift(-1).notna())
    )
    for col in ("signal", "confidence", "proba_up", "fold"):
        df[col] = np.nan
    cols = ["bar", "direction_1", "signal", "confidence", "proba_up", "fold"]
    feed = FeatureFeed.from_frame(df, columns=cols, name="TEST")
    MeanUp.fits = []
    params = {
        "predictor_factory": lambda fold: MeanUp(),
        "retrain_every": 10,
        "train_window": 8,
        "feature_lines": ("bar",),
        "target_line": "direction_1",
        "target_horizon": 1,
    }
    res = run_backtest({"TEST": feed}, OnlineRetraining, params, sizer_params={"method": "fixed"})
    # first fit once 8 labelled bars exist: at bar index 8 (len 9), rows 0..7; then every 10 bars
    fitted_at = [int(f["bar"].max()) + 1 for f in MeanUp.fits]
    assert fitted_at == [8, 18, 28, 38]
    for fit, t in zip(MeanUp.fits, fitted_at, strict=True):
        assert list(fit["bar"]) == list(range(t - 8, t))  # never the label of bar t itself
        assert list(fit["y"]) == list(df["direction_1"].iloc[t - 8 : t])
    rec = res.records
    assert rec["signal"].iloc[:8].isna().all()
    for fold, t in enumerate(fitted_at):
        p_up = df["direction_1"].iloc[t - 8 : t].mean()
        end = fitted_at[fold + 1] if fold + 1 < len(fitted_at) else n
        assert rec["proba_up"].iloc[t:end].to_numpy() == pytest.approx(np.full(end - t, p_up))
        assert (rec["fold"].iloc[t:end] == fold).all()
    assert rec["target"].equals(df["direction_1"].reset_index(drop=True).rename("target"))


def test_online_retraining_requires_lines():
    with pytest.raises(ConfigError, match=r"missing \['rsi_14'\]") as info:
        run(OnlineRetraining, feature_lines=("rsi_14",), retrain_every=5, train_window=5)
    assert info.value.param == "feature_lines"
    with pytest.raises(ConfigError, match=r"missing \['feature_lines'\]"):
        run(OnlineRetraining, feature_lines=None, retrain_every=5, train_window=5)


class EarlyLook(MLStrategy):
    """Reads tier_table in __init__, before backtrader attaches the sizer."""

    def __init__(self):
        super().__init__()
        self.early_names = [t.name for t in self.tier_table.tiers]
        self.tiers_seen: list[str] = []

    def on_prediction(self, data, pred):
        self.tiers_seen.append(pred.tier)


def test_tiers_resolve_from_the_sizer_even_when_read_before_it_is_attached():
    frame = online_frame()
    frame["signal"] = 1.0
    frame["confidence"] = np.where(np.arange(N) % 2 == 0, 0.9, 0.7)
    cerebro = make_cerebro(BrokerConfig(cash=10_000.0))
    cerebro.adddata(FeatureFeed.from_frame(frame, name="TEST"), name="TEST")
    cerebro.addstrategy(EarlyLook)
    cerebro.addsizer(TieredConfidenceSizer, tiers=[[0.55, 0.5], [0.85, 1.0]], tier_names=["s", "b"])
    cerebro.addanalyzer(PredictionRecorder, _name="rec")
    strategy = cerebro.run()[0]
    assert strategy.early_names == list(DEFAULT_TIER_NAMES)  # no sizer yet: the defaults
    expected = ["b" if i % 2 == 0 else "s" for i in range(N)]
    assert strategy.tiers_seen == expected  # Pred.tier: the sizer's table, fixed by start()
    assert strategy.analyzers.rec.records["tier"].tolist() == expected
