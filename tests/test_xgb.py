"""XGBoost adapter on real BTCUSDT 1h candles: learning, determinism, persistence, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.utils.class_weight import compute_sample_weight

from mlstrat import cli as mlstrat_cli
from mlstrat.errors import DataError, IntegrityError, ModelLoadError, SchemaError
from mlstrat.predictors.registry import load_predictor
from mlstrat.predictors.xgb import XGBoostPredictor, balanced_sample_weights

REPO = Path(__file__).resolve().parents[1]
BTC_1H = REPO / "datasets" / "BTCUSDT-1h.parquet"
N_TRAIN = 9000
FAST = {"n_estimators": 120, "max_depth": 4, "n_jobs": 1}


def causal_features(bars: pd.DataFrame) -> pd.DataFrame:
    """A few features at bar t from bars <= t: realized vols, returns, volume change, hour."""
    r = np.log(bars["close"]).diff()
    X = pd.DataFrame({f"rv_{w}": r.rolling(w).std() for w in (6, 24, 72, 168)})
    X["abs_ret_1"] = r.abs()
    X["ret_24"] = np.log(bars["close"]).diff(24)
    X["range_1"] = np.log(bars["high"] / bars["low"])
    X["dvol_1"] = np.log(bars["volume"]).diff()
    X["hour"] = bars.index.hour.astype(float)
    return X


@pytest.fixture(scope="module")
def btc():
    bars = pd.read_parquet(BTC_1H).set_index("timestamp").iloc[:12000]
    X = causal_features(bars)
    r = np.log(bars["close"]).diff()
    nxt = r.abs().shift(-1)  # |return| of the NEXT hour: a target, never a feature
    threshold = nxt.iloc[:N_TRAIN].median()  # fitted on the training window only
    big_move = (nxt > threshold).astype(float).where(nxt.notna()).rename("big_move_1")
    fwd24 = np.log(bars["close"]).shift(-24) - np.log(bars["close"])
    direction = (fwd24 > 0).astype(float).where(fwd24.notna()).rename("direction_24")
    q = fwd24.iloc[:N_TRAIN].quantile([1 / 3, 2 / 3]).to_numpy()
    three = pd.Series(np.digitize(fwd24, q).astype(float), index=bars.index)
    three = three.where(fwd24.notna()).rename("three_class_24")
    return bars, X, big_move, direction, three


@pytest.fixture(scope="module")
def fitted(btc):
    _, X, y, _, _ = btc
    return XGBoostPredictor(seed=3, **FAST).fit(X.iloc[:N_TRAIN], y.iloc[:N_TRAIN])


def _binary_log_loss(y, p):
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_beats_constant_predictor_on_held_out_tail(btc, fitted):
    """Next-hour move size is learnable (vol clustering, hour of day): honest, not profit."""
    _, X, y, _, _ = btc
    test = slice(N_TRAIN + 1, None)  # one-bar gap: the last training label looks 1h ahead
    y_test = y.iloc[test].to_numpy()
    known = ~np.isnan(y_test)
    p = fitted.predict(X.iloc[test]).proba[known, 1]
    y_test = y_test[known]
    model_ll = _binary_log_loss(y_test, p)
    train_rate = np.nanmean(y.iloc[:N_TRAIN])
    constant_ll = _binary_log_loss(y_test, np.full(len(y_test), train_rate))
    oracle_ll = _binary_log_loss(y_test, np.full(len(y_test), y_test.mean()))  # hindsight rate
    assert len(y_test) > 2900
    # Measured: model 0.622, oracle constant 0.643, training-rate constant 0.693.
    assert model_ll < min(constant_ll, oracle_ll) - 0.01, (model_ll, constant_ll, oracle_ll)
    assert roc_auc_score(y_test, p) > 0.6


def test_bit_for_bit_deterministic_and_seed_matters(btc, fitted):
    _, X, y, _, _ = btc
    again = XGBoostPredictor(seed=3, **FAST).fit(X.iloc[:N_TRAIN], y.iloc[:N_TRAIN])
    other = XGBoostPredictor(seed=4, **FAST).fit(X.iloc[:N_TRAIN], y.iloc[:N_TRAIN])
    tail = X.iloc[N_TRAIN:]
    np.testing.assert_array_equal(again.predict(tail).proba, fitted.predict(tail).proba)
    assert not np.array_equal(other.predict(tail).proba, fitted.predict(tail).proba)


def test_validation_tail_is_the_end_of_the_training_window(btc, fitted):
    """Default early stopping == explicit validation on the last 20% after a 1-row gap."""
    _, X, y, _, _ = btc
    n = int(y.iloc[:N_TRAIN].notna().sum())
    n_val = round(0.2 * n)
    n_fit = n - n_val - 1  # gap 1 read from the target name big_move_1
    assert fitted.fit_info_["n_fit_rows"] == n_fit
    assert fitted.fit_info_["n_validation_rows"] == n_val
    Xk, yk = X.iloc[:N_TRAIN], y.iloc[:N_TRAIN]
    explicit = XGBoostPredictor(seed=3, **FAST).fit(
        Xk.iloc[:n_fit], yk.iloc[:n_fit], validation=(Xk.iloc[n - n_val :], yk.iloc[n - n_val :])
    )
    assert explicit.best_iteration_ == fitted.best_iteration_
    np.testing.assert_array_equal(
        explicit.predict(X.iloc[N_TRAIN:]).proba, fitted.predict(X.iloc[N_TRAIN:]).proba
    )
    # The recorded validation metrics agree with scikit-learn on that tail.
    proba = fitted.predict(Xk.iloc[n - n_val :]).proba
    y_val = yk.iloc[n - n_val :].to_numpy()
    metrics = fitted.validation_metrics_
    assert metrics["n_rows"] == n_val
    assert metrics["log_loss"] == pytest.approx(log_loss(y_val, proba), rel=1e-9)
    assert metrics["auc"] == pytest.approx(roc_auc_score(y_val, proba[:, 1]), rel=1e-9)
    assert metrics["accuracy"] == pytest.approx(np.mean((proba[:, 1] >= 0.5) == y_val))
    # Early stopping happened and the kept booster ends at the best iteration.
    history = fitted.history_["validation"]["logloss"]
    assert fitted.best_iteration_ == int(np.argmin(history))
    assert fitted.booster_.num_boosted_rounds() == fitted.best_iteration_ + 1


def test_save_load_reproduces_predictions_and_records_metadata(btc, fitted, tmp_path):
    _, X, _, _, _ = btc
    fitted.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "manifest.json",
        "metadata.json",
        "model.ubj",
    ]
    back = load_predictor(tmp_path / "model")
    assert isinstance(back, XGBoostPredictor)
    tail = X.iloc[N_TRAIN:]
    np.testing.assert_array_equal(back.predict(tail).proba, fitted.predict(tail).proba)
    np.testing.assert_array_equal(back.predict(tail).signal, fitted.predict(tail).signal)
    meta = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert meta["predictor"] == "xgboost" and meta["task"] == "direction"
    assert meta["params"]["max_depth"] == 4 and meta["params"]["learning_rate"] == 0.05
    assert meta["feature_names"] == list(X.columns)
    assert meta["best_iteration"] == fitted.best_iteration_
    assert meta["versions"]["xgboost"]
    assert len(meta["training_history"]["validation"]["logloss"]) >= meta["best_iteration"] + 1
    assert meta["validation_metrics"]["log_loss"] == pytest.approx(
        fitted.validation_metrics_["log_loss"]
    )
    assert meta["training"]["train_start"].startswith("2024-05-16T19:00")
    assert meta["training"]["target"] == "big_move_1"


def test_tampered_or_truncated_model_file_is_rejected(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    model = tmp_path / "m" / "model.ubj"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model.ubj.*sha256"):
        XGBoostPredictor.load(tmp_path / "m")
    fitted.save(tmp_path / "m")
    model.write_bytes(model.read_bytes()[:100])
    with pytest.raises(IntegrityError, match="model.ubj.*size 100 bytes"):
        load_predictor(tmp_path / "m")


def test_predictions_follow_documented_rules(btc, fitted):
    _, X, _, _, _ = btc
    pred = fitted.predict(X.iloc[N_TRAIN : N_TRAIN + 500])
    p_up = pred.proba[:, 1]
    np.testing.assert_allclose(pred.proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(pred.signal, np.where(p_up >= 0.5, 1.0, -1.0))
    np.testing.assert_array_equal(pred.confidence, np.maximum(p_up, 1 - p_up))
    frame = pred.to_frame(X.index[N_TRAIN : N_TRAIN + 500])
    assert list(frame.columns) == ["signal", "confidence", "proba_up"]


def test_nan_labels_dropped_and_nan_features_handled(btc):
    _, X, y, _, _ = btc
    Xs, ys = X.iloc[200:1400], y.iloc[200:1400].copy()
    params = {**FAST, "n_estimators": 30, "seed": 1}
    ys_nan = ys.copy()
    ys_nan.iloc[-50:] = np.nan
    with_nan = XGBoostPredictor(**params).fit(Xs, ys_nan)
    truncated = XGBoostPredictor(**params).fit(Xs.iloc[:-50], ys.iloc[:-50])
    np.testing.assert_array_equal(with_nan.predict(Xs).proba, truncated.predict(Xs).proba)

    # Warm-up rows (rolling windows not yet full) carry NaN features: fine for XGBoost.
    early = XGBoostPredictor(**params).fit(X.iloc[:1200], y.iloc[:1200])
    pred = early.predict(X.iloc[:200])
    assert np.isfinite(pred.proba[1:]).all()
    blank = X.iloc[:3].copy()
    blank.iloc[1] = np.nan
    out = early.predict(blank)
    assert np.isnan(out.proba[1]).all() and np.isnan(out.signal[1]) and np.isnan(out.confidence[1])
    assert np.isfinite(out.proba[[0, 2]]).all()


def test_scale_pos_weight_auto_is_negatives_over_positives():
    rng = np.random.default_rng(5)
    X = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    y = pd.Series([1.0] * 30 + [0.0] * 70).sample(frac=1.0, random_state=0).reset_index(drop=True)
    model = XGBoostPredictor(n_estimators=5, early_stopping_rounds=None).fit(X, y)
    assert model.fit_info_["scale_pos_weight_used"] == pytest.approx(70 / 30)
    assert model.fit_info_["class_counts"] == [70, 30]
    config = json.loads(model.booster_.save_config())
    obj = config["learner"]["objective"]
    assert float(obj["reg_loss_param"]["scale_pos_weight"]) == pytest.approx(70 / 30)
    fixed = XGBoostPredictor(n_estimators=5, early_stopping_rounds=None, scale_pos_weight=None)
    assert fixed.fit(X, y).fit_info_["scale_pos_weight_used"] == 1.0


def test_balanced_weights_hand_check():
    y = np.array([0, 0, 0, 1, 2, 2])
    # n / (k * n_c): 6/(3*3), 6/(3*1), 6/(3*2)
    np.testing.assert_allclose(balanced_sample_weights(y, 3), [2 / 3] * 3 + [2.0] + [1.0] * 2)
    np.testing.assert_allclose(balanced_sample_weights(y, 3), compute_sample_weight("balanced", y))


def test_three_class_task(btc, tmp_path):
    _, X, _, _, three = btc
    model = XGBoostPredictor(task="three_class", seed=2, **{**FAST, "n_estimators": 40})
    model.fit(X.iloc[:N_TRAIN], three.iloc[:N_TRAIN])
    # Gap of 24 rows (read from "three_class_24") between fitted rows and the 20% tail.
    assert model.fit_info_["n_fit_rows"] == N_TRAIN - round(0.2 * N_TRAIN) - 24
    pred = model.predict(X.iloc[N_TRAIN:])
    assert pred.proba.shape == (len(X) - N_TRAIN, 3)
    np.testing.assert_allclose(pred.proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(pred.signal, np.argmax(pred.proba, axis=1) - 1.0)
    assert set(np.unique(pred.signal)) <= {-1.0, 0.0, 1.0}
    assert list(pred.to_frame(X.index[N_TRAIN:]).columns) == [
        "signal",
        "confidence",
        "proba_sell",
        "proba_hold",
        "proba_buy",
    ]
    model.save(tmp_path / "m3")
    np.testing.assert_array_equal(
        load_predictor(tmp_path / "m3").predict(X.iloc[N_TRAIN:]).proba, pred.proba
    )


def test_feature_importance_prefers_the_informative_feature():
    rng = np.random.default_rng(11)
    X = pd.DataFrame({"noise": rng.normal(size=2000), "signal": rng.normal(size=2000)})
    y = pd.Series((X["signal"] + 0.3 * rng.normal(size=2000) > 0).astype(float))
    model = XGBoostPredictor(n_estimators=30, max_depth=3).fit(X, y)
    imp = model.feature_importance()
    assert list(imp) == ["signal", "noise"]
    assert imp["signal"] > 5 * imp["noise"] >= 0


def test_input_errors(btc, fitted):
    _, X, y, direction, _ = btc
    with pytest.raises(SchemaError, match="target column.*direction_24"):
        XGBoostPredictor(**FAST).fit(X.assign(direction_24=direction).iloc[:500], y.iloc[:500])
    with pytest.raises(SchemaError, match="missing: rv_24, hour"):
        fitted.predict(X.drop(columns=["rv_24", "hour"]).iloc[-10:])
    bad = y.iloc[:500].copy()
    bad.iloc[7] = 2.0
    with pytest.raises(DataError, match="not a direction class") as info:
        XGBoostPredictor(**FAST).fit(X.iloc[:500], bad)
    assert info.value.row == 7 and info.value.column == "big_move_1"
    inf = X.iloc[200:700].copy()
    inf.iloc[3, 1] = np.inf
    with pytest.raises(DataError, match="infinite") as info:
        XGBoostPredictor(**FAST).fit(inf, y.iloc[200:700])
    assert info.value.column == "rv_24"
    with pytest.raises(DataError, match="single class"):
        XGBoostPredictor(**FAST).fit(X.iloc[:300], pd.Series(1.0, index=X.index[:300]))
    with pytest.raises(ModelLoadError, match="not fitted"):
        XGBoostPredictor().predict(X.iloc[:3])


def test_opt_in_mean_fill_uses_training_means(btc, fitted):
    _, X, _, _, _ = btc
    model = XGBoostPredictor(seed=3, on_missing="mean", **FAST)
    model.booster_, model.feature_names = fitted.booster_, fitted.feature_names
    model.feature_means_ = fitted.feature_means_
    tail = X.iloc[N_TRAIN : N_TRAIN + 50]
    filled = tail.assign(hour=fitted.feature_means_["hour"])
    np.testing.assert_array_equal(
        model.predict(tail.drop(columns=["hour"])).proba, fitted.predict(filled).proba
    )
    assert fitted.feature_means_["hour"] == pytest.approx(
        X["hour"].iloc[: fitted.fit_info_["n_fit_rows"]].mean()
    )


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def only_predictor_cli(monkeypatch):
    """mlstrat.cli with just the subcommands this file tests."""
    monkeypatch.setattr(mlstrat_cli, "COMMANDS", ("train", "models"))


def test_models_inspect_ok_and_tampered(fitted, tmp_path, capsys, only_predictor_cli):
    fitted.save(tmp_path / "m")
    assert mlstrat_cli.main(["models", "inspect", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "predictor    xgboost" in out and "manifest     OK, 2 files verified" in out
    assert "auc 0.6" in out and "n_rows 1800" in out
    (tmp_path / "m" / "model.ubj").write_bytes(b"garbage")
    assert mlstrat_cli.main(["models", "inspect", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.ubj" in err[0] and "retrain" in err[0]


def test_train_cli_on_a_feature_feed(btc, tmp_path, capsys, only_predictor_cli):
    features = pytest.importorskip("mlstrat.features")
    if not hasattr(features, "write_feature_feed"):
        pytest.skip("mlstrat.features.write_feature_feed not available yet")
    bars = btc[0].iloc[:3000]
    bars.attrs.update(symbol="BTCUSDT", timeframe="1h")
    feed = features.build_feature_feed(bars, targets=("direction:24",))
    features.write_feature_feed(feed, tmp_path / "feed.parquet")
    out_dir = tmp_path / "models" / "btc_xgb"
    code = mlstrat_cli.main(
        [
            "train",
            "--feed",
            str(tmp_path / "feed.parquet"),
            "--predictor",
            "xgboost",
            "--target",
            "direction_24",
            "--param",
            "n_estimators=20",
            "--param",
            "max_depth=3",
            "--end",
            "2024-08-31",
            "--out",
            str(out_dir),
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["predictor"] == "xgboost" and summary["target"] == "direction_24"
    model = load_predictor(out_dir)
    assert model.n_estimators == 20 and model.max_depth == 3
    read_back = features.read_feature_feed(tmp_path / "feed.parquet")
    assert model.feature_names == list(features.feature_columns(read_back))
    assert set(model.feature_names) == set(features.feature_columns(feed))
    assert pd.Timestamp(model.fit_info_["train_end"]) <= pd.Timestamp("2024-08-31", tz="UTC")
    bad = ["train", "--feed", str(tmp_path / "feed.parquet"), "--predictor", "xgboost"]
    assert mlstrat_cli.main([*bad, "--target", "close", "--out", str(tmp_path / "x")]) == 2
    assert "not a target column" in capsys.readouterr().err
