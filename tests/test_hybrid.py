"""Hybrid ensemble: P(up) mapping, weighting, warm-up, nested persistence, real members."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstrat.errors import ConfigError, IntegrityError
from mlstrat.predictors import registry
from mlstrat.predictors.base import Prediction, Predictor
from mlstrat.predictors.hybrid import HybridPredictor, combine_proba_up, member_proba_up
from mlstrat.predictors.persistence import read_model_dir, write_model_dir
from mlstrat.predictors.registry import UnknownPredictorError, get_predictor, load_predictor
from mlstrat.predictors.xgb import XGBoostPredictor

REPO = Path(__file__).resolve().parents[1]
N_TRAIN = 4000


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


@pytest.fixture(scope="module")
def btc():
    """Causal features and two targets on a slice of real BTCUSDT 1h candles."""
    bars = pd.read_parquet(REPO / "datasets" / "BTCUSDT-1h.parquet").set_index("timestamp")
    bars = bars.iloc[:5000]
    r = np.log(bars["close"]).diff()
    X = pd.DataFrame({f"rv_{w}": r.rolling(w).std() for w in (6, 24, 72)})
    X["abs_ret_1"] = r.abs()
    X["ret_6"] = np.log(bars["close"]).diff(6)
    X["hour"] = bars.index.hour.astype(float)
    nxt = r.abs().shift(-1)
    big = (nxt > nxt.iloc[:N_TRAIN].median()).astype(float).where(nxt.notna())
    fwd = np.log(bars["close"]).shift(-6) - np.log(bars["close"])
    q = fwd.iloc[:N_TRAIN].quantile([1 / 3, 2 / 3]).to_numpy()
    three = pd.Series(np.digitize(fwd, q).astype(float), index=bars.index).where(fwd.notna())
    y = pd.DataFrame({"direction_1": big, "three_class_6": three})  # names drive member targets
    return X, y


def test_combine_and_mapping_hand_worked():
    p = combine_proba_up([np.array([0.8, np.nan, 0.1]), np.array([0.2, 0.5, 0.4])], [2.0, 1.0])
    np.testing.assert_allclose(p[[0, 2]], [(2 * 0.8 + 0.2) / 3, (2 * 0.1 + 0.4) / 3])
    assert np.isnan(p[1])
    three = Prediction(
        signal=np.array([0.0]),
        confidence=np.array([0.5]),
        proba=np.array([[0.2, 0.5, 0.3]]),
    )
    assert member_proba_up(three)[0] == pytest.approx(0.3 + 0.5 / 2)
    # The documented choice: a confident HOLD means "no edge", not a confident buy.
    hold = Prediction(np.array([0.0]), np.array([0.97]), proba=np.array([[0.01, 0.97, 0.02]]))
    assert member_proba_up(hold)[0] == pytest.approx(0.505)
    binary = Prediction(np.array([1.0]), np.array([0.7]), proba=np.array([[0.3, 0.7]]))
    assert member_proba_up(binary)[0] == pytest.approx(0.7)


def test_two_xgboost_members_equal_weighted_mean_of_members(btc, tmp_path):
    X, y = btc
    a = {"n_estimators": 60, "max_depth": 3, "seed": 1}
    b = {"n_estimators": 40, "max_depth": 5, "learning_rate": 0.1, "seed": 2}
    hybrid = HybridPredictor(members=[("xgboost", a), ("xgboost", b)], weights=(3.0, 1.0))
    hybrid.fit(X.iloc[:N_TRAIN], y["direction_1"].iloc[:N_TRAIN])
    np.testing.assert_allclose(hybrid.normalized_weights, [0.75, 0.25])

    # Independent: the same members fitted alone (fits are deterministic).
    solo_a = XGBoostPredictor(**a).fit(X.iloc[:N_TRAIN], y["direction_1"].iloc[:N_TRAIN])
    solo_b = XGBoostPredictor(**b).fit(X.iloc[:N_TRAIN], y["direction_1"].iloc[:N_TRAIN])
    tail = X.iloc[N_TRAIN:]
    pa, pb = solo_a.predict(tail).proba[:, 1], solo_b.predict(tail).proba[:, 1]
    assert not np.allclose(pa, pb)  # the members really differ
    pred = hybrid.predict(tail)
    expected = 0.75 * pa + 0.25 * pb
    np.testing.assert_allclose(pred.proba[:, 1], expected, rtol=1e-12)
    # the side of 0.5 (two ways of taking the mean may differ in the last bit right at 0.5)
    clear = np.abs(expected - 0.5) > 1e-12
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(pred.signal[clear], np.where(expected >= 0.5, 1.0, -1.0)[clear])
    np.testing.assert_allclose(pred.confidence, np.maximum(expected, 1 - expected))
    frame = pred.to_frame(tail.index)
    assert list(frame.columns) == [
        "signal",
        "confidence",
        "proba_up",
        "proba_up_0_xgboost",
        "proba_up_1_xgboost",
    ]
    np.testing.assert_allclose(frame["proba_up_1_xgboost"], pb)
    one = hybrid.predict_one(tail.to_numpy()[-1:])
    np.testing.assert_allclose(one.proba[0], pred.proba[-1])

    hybrid.save(tmp_path / "hyb")
    manifest = json.loads((tmp_path / "hyb" / "manifest.json").read_text())["files"]
    assert "members/000_xgboost/model.ubj" in manifest
    assert "members/001_xgboost/metadata.json" in manifest
    back = load_predictor(tmp_path / "hyb")
    assert isinstance(back, HybridPredictor)
    assert [m.max_depth for m in back.predictors_] == [3, 5]
    np.testing.assert_array_equal(back.predict(tail).proba, pred.proba)
    meta = read_model_dir(tmp_path / "hyb")
    assert meta["normalized_weights"] == [0.75, 0.25] and meta["window"] == 1


def test_tampered_member_fails_the_hybrid_load(btc, tmp_path):
    X, y = btc
    m = [("xgboost", {"n_estimators": 5, "max_depth": 2})] * 2
    hybrid = HybridPredictor(members=m, weights=(1, 1)).fit(X.iloc[:800], y["direction_1"][:800])
    hybrid.save(tmp_path / "h")
    target = tmp_path / "h" / "members" / "001_xgboost" / "model.ubj"
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(IntegrityError, match="001_xgboost/model.ubj"):
        load_predictor(tmp_path / "h")


def test_mixed_binary_and_three_class_members_pick_their_targets(btc):
    X, y = btc
    hybrid = HybridPredictor(
        members=[
            ("xgboost", {"n_estimators": 20, "max_depth": 3}),
            ("xgboost", {"task": "three_class", "n_estimators": 20, "max_depth": 3}),
        ],
        weights=(0.5, 0.5),
    ).fit(X.iloc[:N_TRAIN], y.iloc[:N_TRAIN])
    binary, three = hybrid.predictors_
    assert binary.fit_info_["target"] == "direction_1"
    assert three.fit_info_["target"] == "three_class_6"
    tail = X.iloc[N_TRAIN:]
    p3 = three.predict(tail).proba
    expected = 0.5 * binary.predict(tail).proba[:, 1] + 0.5 * (p3[:, 2] + 0.5 * p3[:, 1])
    np.testing.assert_allclose(hybrid.predict(tail).proba[:, 1], expected, rtol=1e-12)

    explicit = HybridPredictor(
        members=[("xgboost", {"n_estimators": 3})], weights=None, targets=["nope"]
    )
    with pytest.raises(ConfigError, match="'nope'"):
        explicit.fit(X.iloc[:500], y.iloc[:500])


class _RollingMean(Predictor):
    """P(up) = logistic(mean of the last `window` values of feature 0); NaN before warm-up."""

    task = "direction"

    def __init__(self, window: int = 3) -> None:
        self.window = window
        self.feature_names: list[str] = []

    def get_params(self):
        return {"window": self.window}

    def fit(self, X, y, *, validation=None):
        self.feature_names = list(X.columns)
        return self

    def predict(self, X):
        m = X.iloc[:, 0].rolling(self.window).mean().to_numpy()
        p = 1 / (1 + np.exp(-m))
        return Prediction(np.where(p >= 0.5, 1.0, -1.0), np.maximum(p, 1 - p), np.c_[1 - p, p])

    def save(self, path):
        meta = {"predictor": self.name, "params": self.get_params(), "features": self.feature_names}
        with write_model_dir(path, meta) as tmp:
            (tmp / "weights.json").write_text("{}")

    @classmethod
    def load(cls, path):
        meta = read_model_dir(path)
        obj = cls(**meta["params"])
        obj.feature_names = meta["features"]
        return obj


def test_window_is_the_longest_member_and_warm_up_is_nan(tmp_path):
    registry.register_predictor("toy_rolling_mean")(_RollingMean)
    X = pd.DataFrame({"a": [0.5, -1.0, 2.0, 1.0, -3.0, 0.0]})
    y = pd.Series([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    hybrid = HybridPredictor(
        members=[("toy_rolling_mean", {"window": 2}), ("toy_rolling_mean", {"window": 4})],
        weights=(1.0, 1.0),
    ).fit(X, y)
    assert hybrid.window == 4
    pred = hybrid.predict(X)
    assert np.isnan(pred.proba[:3]).all() and np.isnan(pred.signal[:3]).all()
    m2 = X["a"].rolling(2).mean().to_numpy()[3:]
    m4 = X["a"].rolling(4).mean().to_numpy()[3:]
    expected = 0.5 / (1 + np.exp(-m2)) + 0.5 / (1 + np.exp(-m4))
    np.testing.assert_allclose(pred.proba[3:, 1], expected)
    np.testing.assert_allclose(hybrid.predict_one(X.to_numpy()[-4:]).proba[0, 1], expected[-1])
    hybrid.save(tmp_path / "h")
    assert sorted(p.name for p in (tmp_path / "h" / "members").iterdir()) == [
        "000_toy_rolling_mean",
        "001_toy_rolling_mean",
    ]
    assert load_predictor(tmp_path / "h").window == 4


def test_configuration_errors():
    one = [("xgboost", {"n_estimators": 3})]
    with pytest.raises(ConfigError, match="1 members but 2 weights"):
        HybridPredictor(members=one, weights=(0.5, 0.5))
    with pytest.raises(ConfigError, match="non-negative"):
        HybridPredictor(members=one * 2, weights=(1.0, -0.5))
    with pytest.raises(ConfigError, match="at least one member"):
        HybridPredictor(members=[], weights=())
    with pytest.raises(ConfigError, match="no parameter"):
        HybridPredictor(members=[("xgboost", {"depth": 3})], weights=(1,))
    with pytest.raises(ConfigError, match="not a \\(name, params\\) pair"):
        HybridPredictor(members=["xgboost"], weights=(1,))


@pytest.mark.slow
def test_hybrid_with_a_tiny_lstm_member(btc, tmp_path):
    try:
        get_predictor("lstm")
    except UnknownPredictorError as exc:
        pytest.skip(f"lstm adapter not available: {exc}")
    X, y = btc
    lstm_params = {"window": 8, "units": (4,), "dropout": 0.0, "batch_norm_layers": 0}
    lstm_params.update(dense_units=4, epochs=1, batch_size=128, seed=0)
    hybrid = HybridPredictor(
        members=[("lstm", lstm_params), ("xgboost", {"n_estimators": 20, "max_depth": 3})],
        weights=(0.5, 0.5),
    )
    Xs, ys = X.iloc[200:1400], y["direction_1"].iloc[200:1400]
    hybrid.fit(Xs, ys)
    assert hybrid.window == 8
    pred = hybrid.predict(Xs)
    assert np.isnan(pred.proba[:7, 1]).all() and np.isfinite(pred.proba[7:, 1]).all()
    hybrid.save(tmp_path / "h")
    back = load_predictor(tmp_path / "h")
    np.testing.assert_array_equal(back.predict(Xs).proba, pred.proba)
