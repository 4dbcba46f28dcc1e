"""Keras adapters on real BTCUSDT 1h candles: fit, predict, warm-up, save/reload, determinism.

Models are tiny (units 8/4, a few epochs) so the whole file runs in about a
minute; fitted models are shared through module-scoped fixtures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstrat.errors import DataError, IntegrityError, ModelLoadError, SchemaError
from mlstrat.predictors.keras_base import binary_log_loss
from mlstrat.predictors.lstm import (
    LSTMAttentionPredictor,
    LSTMPredictor,
    LSTMRegressorPredictor,
)
from mlstrat.predictors.registry import get_predictor, load_predictor
from mlstrat.predictors.transformer import TransformerPredictor
from mlstrat.predictors.volatility import VolatilityLSTMPredictor, realized_volatility

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "datasets" / "BTCUSDT-1h.parquet"
N_ROWS = 2000
N_TRAIN = 1400
N_SMALL = 700  # training rows for the adapters that are only checked for plumbing
TINY = {"units": (8, 4), "dropout": 0.1, "batch_size": 32, "n_threads": 2}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Causal features and targets on the last N_ROWS hours of the shipped BTC sample."""
    if not DATA.exists():
        pytest.skip(f"{DATA.name} not available")
    bars = pd.read_parquet(DATA).set_index("timestamp")
    logc = np.log(bars["close"])
    r = logc.diff()
    hour = bars.index.hour.to_numpy()
    df = pd.DataFrame(
        {
            "abs_ret": r.abs() * 100,
            "rv_24": r.rolling(24).std() * 100,
            "rv_168": r.rolling(168).std() * 100,
            "range": np.log(bars["high"] / bars["low"]) * 100,
            "hour_sin": np.sin(2 * np.pi * hour / 24),
            "hour_cos": np.cos(2 * np.pi * hour / 24),
            "weekend": (bars.index.day_of_week >= 5).astype(float),
            "close": bars["close"],
            "realized_vol_24": r.rolling(24).std(),
        },
        index=bars.index,
    )
    # Targets (future information, never features): realised variance of the next 4 bars,
    # the next bar's return and a three-class coding of the next 4 bars' return.
    next4_var = (r**2)[::-1].rolling(4).sum()[::-1].shift(-1)
    fwd4 = logc.shift(-4) - logc
    df["target_next4_var"] = next4_var
    df["target_ret_1"] = r.shift(-1)
    df["target_ret_4"] = fwd4
    three = np.where(fwd4 > 0.004, 2.0, np.where(fwd4 < -0.004, 0.0, 1.0))
    df["target_three_4"] = pd.Series(three, index=df.index).where(fwd4.notna())
    return df.iloc[-N_ROWS:]


FEATURES = ["abs_ret", "rv_24", "rv_168", "range", "hour_sin", "hour_cos", "weekend"]


@pytest.fixture(scope="module")
def vol_label(frame: pd.DataFrame) -> pd.Series:
    """1 when the next 4 hours' realised variance exceeds its median over the training rows."""
    v = frame["target_next4_var"]
    return (v > v.iloc[:N_TRAIN].median()).astype(float).where(v.notna()).rename("vol_up_4")


def _lstm(seed: int = 7) -> LSTMPredictor:
    # No BatchNorm here: its moving averages need far more steps than a tiny test fit takes.
    return LSTMPredictor(
        window=16,
        dense_units=4,
        batch_norm_layers=0,
        learning_rate=1e-2,
        epochs=6,
        patience=3,
        seed=seed,
        **{**TINY, "batch_size": 64},
    )


@pytest.fixture(scope="module")
def lstm(frame: pd.DataFrame, vol_label: pd.Series) -> LSTMPredictor:
    return _lstm().fit(frame[FEATURES].iloc[:N_TRAIN], vol_label.iloc[:N_TRAIN])


@pytest.fixture(scope="module")
def lstm_pred(lstm: LSTMPredictor, frame: pd.DataFrame):
    return lstm.predict(frame[FEATURES])


def _equal(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return a is None and b is None or np.array_equal(a, b, equal_nan=True)


def _assert_same_prediction(p, q) -> None:
    for field in ("signal", "confidence", "proba", "expected_return", "volatility"):
        assert _equal(getattr(p, field), getattr(q, field)), field
    assert p.extra.keys() == q.extra.keys()
    for key in p.extra:
        assert _equal(p.extra[key], q.extra[key]), key


def _reload(model, tmp_path_factory, name: str):
    path = tmp_path_factory.mktemp(name) / "model"
    model.save(path)
    return path, load_predictor(path)


# --------------------------------------------------------------------------- lstm


def test_lstm_beats_constant_on_held_out_tail(lstm_pred, vol_label: pd.Series) -> None:
    # Held-out: rows after the training slice, skipping the 4 rows whose labels overlap it.
    tail = slice(N_TRAIN + 4, None)
    y = vol_label.iloc[tail].to_numpy()
    p = lstm_pred.proba[tail, 1]
    ok = np.isfinite(y) & np.isfinite(p)
    assert ok.sum() > 500
    base_rate = float(np.nanmean(vol_label.iloc[:N_TRAIN]))
    model_loss = binary_log_loss(y[ok], p[ok])
    constant_loss = binary_log_loss(y[ok], np.full(ok.sum(), base_rate))
    assert model_loss < constant_loss - 0.02, (model_loss, constant_loss)


def test_lstm_prediction_structure_and_warm_up(lstm, lstm_pred, frame) -> None:
    n = len(frame)
    assert len(lstm_pred) == n and lstm_pred.proba.shape == (n, 2)
    # rv_168 needs 168 returns: the first complete window ends 15 rows after it is defined.
    first_feature_row = int(np.flatnonzero(frame[FEATURES].notna().all(axis=1).to_numpy())[0])
    first = first_feature_row + lstm.window - 1
    assert np.isnan(lstm_pred.proba[:first]).all()
    assert np.isfinite(lstm_pred.proba[first:]).all()
    p_up = lstm_pred.proba[first:, 1]
    np.testing.assert_allclose(lstm_pred.proba[first:].sum(axis=1), 1.0)
    np.testing.assert_array_equal(lstm_pred.signal[first:], np.where(p_up >= 0.5, 1.0, -1.0))
    np.testing.assert_allclose(lstm_pred.confidence[first:], np.maximum(p_up, 1 - p_up))
    assert set(lstm.validation_metrics_) >= {"log_loss", "accuracy", "auc", "n_rows"}
    assert {"loss", "val_loss", "auc", "learning_rate"} <= set(lstm.history_)


def test_lstm_nan_inside_window_gives_nan_rows_only_there(lstm, lstm_pred, frame) -> None:
    X = frame[FEATURES].copy()
    X.iloc[1500, 2] = np.nan
    pred = lstm.predict(X)
    hit = np.zeros(len(X), dtype=bool)
    hit[1500 : 1500 + lstm.window] = True
    assert np.isnan(pred.proba[hit]).all()
    np.testing.assert_allclose(pred.proba[~hit], lstm_pred.proba[~hit], rtol=1e-6, atol=1e-7)


def test_lstm_scaler_fitted_on_training_rows_only(lstm, frame, vol_label) -> None:
    X = frame[FEATURES].iloc[:N_TRAIN]
    y = vol_label.iloc[:N_TRAIN]
    ready = X.notna().all(axis=1).rolling(lstm.window).sum().eq(lstm.window).to_numpy()
    samples = np.flatnonzero(ready & y.notna().to_numpy())
    n_val = round(len(samples) * 0.2)
    gap = 4  # read from the target name vol_up_4
    last_fitted = samples[len(samples) - n_val - gap - 1]
    expected_mean = X.iloc[: last_fitted + 1].mean().to_numpy()
    np.testing.assert_allclose(lstm.x_scaler_.mean_, expected_mean, rtol=1e-12)
    assert lstm.fit_info_["n_validation_samples"] == n_val


def test_lstm_predict_one_equals_predict_last_row(lstm, lstm_pred, frame) -> None:
    values = frame[FEATURES].to_numpy()
    one = lstm.predict_one(values[-lstm.window :])
    np.testing.assert_allclose(one.proba[0], lstm_pred.proba[-1], rtol=1e-5, atol=1e-6)
    # the same side, unless P(up) is within the two computations' difference of 0.5
    near_half = abs(lstm_pred.proba[-1, 1] - 0.5) < 1e-5
    assert one.signal[0] == lstm_pred.signal[-1] or near_half
    longer = lstm.predict_one(values[-3 * lstm.window :])  # only the last `window` rows count
    np.testing.assert_array_equal(longer.proba, one.proba)
    gap = values[-lstm.window :].copy()
    gap[3, 0] = np.nan
    assert np.isnan(lstm.predict_one(gap).proba).all()
    with pytest.raises(DataError, match="predict_one needs"):
        lstm.predict_one(values[-5:])


@pytest.mark.slow
def test_lstm_is_deterministic_with_seed(lstm_pred, frame, vol_label) -> None:
    again = _lstm().fit(frame[FEATURES].iloc[:N_TRAIN], vol_label.iloc[:N_TRAIN])
    _assert_same_prediction(again.predict(frame[FEATURES]), lstm_pred)


def test_lstm_save_reload_reproduces_predictions(lstm, lstm_pred, frame, tmp_path_factory) -> None:
    path, loaded = _reload(lstm, tmp_path_factory, "lstm")
    assert type(loaded) is LSTMPredictor and loaded.get_params() == lstm.get_params()
    # Extra columns are ignored and order is restored by name.
    shuffled = frame[list(reversed(FEATURES)) + ["close"]]
    _assert_same_prediction(loaded.predict(shuffled), lstm_pred)
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["predictor"] == "lstm" and meta["window"] == 16
    assert meta["feature_names"] == FEATURES
    assert meta["training_history"]["loss"] == lstm.history_["loss"]
    assert {"model.keras", "scalers.json"} <= set(
        json.loads((path / "manifest.json").read_text())["files"]
    )


def test_lstm_load_errors(lstm, frame, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("tamper") / "model"
    lstm.save(path)
    with pytest.raises(ModelLoadError, match="not 'transformer'"):
        TransformerPredictor.load(path)
    with pytest.raises(SchemaError, match="rv_24"):
        lstm.predict(frame[FEATURES].drop(columns=["rv_24"]))
    blob = bytearray((path / "model.keras").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (path / "model.keras").write_bytes(bytes(blob))
    with pytest.raises(IntegrityError, match="model.keras"):
        LSTMPredictor.load(path)


def test_lstm_rejects_bad_labels_and_target_features(frame, vol_label) -> None:
    X = frame[FEATURES].iloc[:300]
    with pytest.raises(DataError, match="not binary"):
        _lstm().fit(X, vol_label.iloc[:300] * 2)
    with pytest.raises(DataError, match="rv_24"):
        _lstm().fit(X.assign(rv_24=np.nan), vol_label.iloc[:300])
    with pytest.raises(SchemaError, match="target"):
        _lstm().fit(
            frame[[*FEATURES, "target_ret_1"]]
            .iloc[:300]
            .rename(columns={"target_ret_1": "forward_return_1"}),
            vol_label.iloc[:300],
        )


def test_registry_resolves_keras_adapters() -> None:
    assert get_predictor("lstm") is LSTMPredictor
    assert get_predictor("lstm_attention") is LSTMAttentionPredictor
    assert get_predictor("lstm_regressor") is LSTMRegressorPredictor
    assert get_predictor("transformer") is TransformerPredictor
    assert get_predictor("volatility_lstm") is VolatilityLSTMPredictor


# --------------------------------------------------------------------------- lstm_attention


@pytest.mark.slow
def test_lstm_attention_fits_saves_and_reloads(frame, vol_label, tmp_path_factory) -> None:
    model = LSTMAttentionPredictor(
        window=16, attention_units=4, dense_units=4, epochs=2, seed=3, jit_compile=False, **TINY
    ).fit(frame[FEATURES].iloc[:N_SMALL], vol_label.iloc[:N_SMALL])
    pred = model.predict(frame[FEATURES])
    first = int(np.flatnonzero(np.isfinite(pred.proba[:, 1]))[0])
    assert np.isfinite(pred.proba[first:]).all() and np.isnan(pred.proba[:first]).all()
    path, loaded = _reload(model, tmp_path_factory, "attention")
    _assert_same_prediction(loaded.predict(frame[FEATURES]), pred)
    one = loaded.predict_one(frame[FEATURES].to_numpy()[-16:])
    np.testing.assert_allclose(one.proba[0], pred.proba[-1], rtol=1e-5, atol=1e-6)
    # The saved Keras file carries the focal loss (alpha from the training labels) and the
    # attention layer, and loads with compile=True without custom_objects.
    import keras

    from mlstrat.predictors.layers import FocalLoss, TemporalAttention

    full = keras.saving.load_model(path / "model.keras", safe_mode=True, compile=True)
    assert isinstance(full.loss, FocalLoss)
    assert full.loss.alpha == pytest.approx(1 - model.base_rate_)
    assert any(isinstance(layer, TemporalAttention) for layer in full.layers)


# --------------------------------------------------------------------------- lstm_regressor


@pytest.mark.slow
def test_lstm_regressor_forecast_calibration_and_reload(frame, tmp_path_factory) -> None:
    y = frame["target_ret_1"].rename("forward_return_1")
    model = LSTMRegressorPredictor(window=16, epochs=2, seed=5, jit_compile=False, **TINY).fit(
        frame[FEATURES].iloc[:N_SMALL], y.iloc[:N_SMALL]
    )
    m = model.validation_metrics_
    assert set(m) >= {"mse", "mae", "rmse", "direction_accuracy"}
    assert m["rmse"] == pytest.approx(math.sqrt(m["mse"]))
    assert 0.0 <= m["direction_accuracy"] <= 1.0
    pred = model.predict(frame[FEATURES])
    known = np.isfinite(pred.expected_return)
    er = pred.expected_return[known]
    np.testing.assert_array_equal(pred.signal[known], np.sign(er))
    sigma = model.residual_std_
    p_up = np.array([0.5 * (1 + math.erf(v / (sigma * math.sqrt(2)))) for v in er])
    np.testing.assert_allclose(pred.proba[known, 1], p_up, rtol=1e-9)
    np.testing.assert_allclose(pred.confidence[known], np.maximum(p_up, 1 - p_up), rtol=1e-9)
    # Forecasts are in return units (target scaler inverted), not standardised units.
    assert np.nanstd(er) < 0.05
    _, loaded = _reload(model, tmp_path_factory, "regressor")
    _assert_same_prediction(loaded.predict(frame[FEATURES]), pred)


# --------------------------------------------------------------------------- transformer


@pytest.mark.slow
def test_transformer_three_class_with_expected_return(frame, tmp_path_factory) -> None:
    y = frame["target_three_4"].rename("three_class_4")
    returns = frame["target_ret_4"]
    X = frame[FEATURES]
    model = TransformerPredictor(
        window=12,
        d_model=8,
        n_heads=2,
        n_layers=1,
        ff_dim=16,
        epochs=2,
        batch_size=64,
        validation_fraction=0.0,
        seed=11,
        n_threads=2,
    ).fit(X.iloc[:N_SMALL], y.iloc[:N_SMALL], returns=returns.iloc[:N_SMALL])
    # With no validation tail the fitted rows are all complete windows with a label.
    Xt, yt, rt = X.iloc[:N_SMALL], y.iloc[:N_SMALL], returns.iloc[:N_SMALL]
    ready = Xt.notna().all(axis=1).rolling(12).sum().eq(12) & yt.notna()
    means = [rt[ready & (yt == c)].mean() for c in (0, 1, 2)]
    np.testing.assert_allclose(model.class_mean_returns_, means, rtol=1e-12)
    assert means[0] < 0 < means[2]

    pred = model.predict(X)
    known = np.isfinite(pred.proba).all(axis=1)
    np.testing.assert_allclose(pred.proba[known].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(pred.signal[known], pred.proba[known].argmax(axis=1) - 1.0)
    np.testing.assert_allclose(pred.confidence[known], pred.proba[known].max(axis=1))
    np.testing.assert_allclose(pred.expected_return[known], pred.proba[known] @ np.array(means))
    cols = pred.to_frame(X.index).columns
    assert {"proba_sell", "proba_hold", "proba_buy", "expected_return"} <= set(cols)

    _, loaded = _reload(model, tmp_path_factory, "transformer")
    _assert_same_prediction(loaded.predict(X), pred)
    one = loaded.predict_one(X.to_numpy()[-12:])
    np.testing.assert_allclose(one.proba[0], pred.proba[-1], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- volatility_lstm


def test_realized_volatility_matches_feature_definition(frame) -> None:
    close = frame["close"].to_numpy()
    expected = np.log(frame["close"]).diff().rolling(24).std().to_numpy()
    np.testing.assert_allclose(realized_volatility(close, 24), expected, rtol=1e-10)
    np.testing.assert_allclose(expected[-100:], frame["realized_vol_24"].to_numpy()[-100:])


def test_volatility_targets_are_the_next_values() -> None:
    model = VolatilityLSTMPredictor(memory=3, horizon=2)
    v = np.array([[1.0], [2.0], [3.0], [4.0]])
    got = model._encode_targets(None, v, pd.RangeIndex(4))
    np.testing.assert_array_equal(got, [[2, 3], [3, 4], [4, np.nan], [np.nan, np.nan]])


@pytest.mark.slow
def test_volatility_lstm_from_column(frame, tmp_path_factory) -> None:
    X = frame[["realized_vol_24"]]
    model = VolatilityLSTMPredictor(
        memory=20, units=(8,), dropout=0.0, epochs=2, seed=2, n_threads=2, jit_compile=False
    ).fit(X.iloc[:N_SMALL], None)
    assert model.window == 20 and model.feature_names == ["realized_vol_24"]
    pred = model.predict(X)
    first = int(np.flatnonzero(X["realized_vol_24"].notna().to_numpy())[0]) + 20 - 1
    assert np.isnan(pred.volatility[:first]).all() and np.isfinite(pred.volatility[first:]).all()
    assert np.all(pred.signal[first:] == 0) and np.all(pred.confidence[first:] == 0)
    # Forecasts are in volatility units: same order of magnitude as the input series.
    ratio = np.nanmedian(pred.volatility) / np.nanmedian(X["realized_vol_24"])
    assert 0.3 < ratio < 3.0
    assert set(model.validation_metrics_) >= {"mse", "rmse", "mae"}
    path, loaded = _reload(model, tmp_path_factory, "vol")
    _assert_same_prediction(loaded.predict(X), pred)
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["state"]["config"]["units"] == [8] and meta["state"]["config"]["memory"] == 20


@pytest.mark.slow
def test_volatility_lstm_from_close_multi_step(frame, tmp_path_factory) -> None:
    X = frame[["close"]]
    model = VolatilityLSTMPredictor(
        memory=12, horizon=3, column="missing_vol", units=(8,), dropout=0.0, epochs=1, n_threads=2
    ).fit(X.iloc[:N_SMALL], None)
    assert model.source_ == "close" and model.window == 12 + 24
    pred = model.predict(X)
    assert np.isnan(pred.volatility[: model.window - 1]).all()
    assert np.isfinite(pred.volatility[model.window - 1 :]).all()
    assert list(pred.extra) == ["volatility_step_1", "volatility_step_2", "volatility_step_3"]
    np.testing.assert_array_equal(pred.extra["volatility_step_1"], pred.volatility)
    one = model.predict_one(X.to_numpy()[-model.window :])
    np.testing.assert_allclose(one.volatility[0], pred.volatility[-1], rtol=1e-5)
    _, loaded = _reload(model, tmp_path_factory, "volclose")
    _assert_same_prediction(loaded.predict(X), pred)
    with pytest.raises(SchemaError, match="close"):
        VolatilityLSTMPredictor().fit(frame[["abs_ret"]], None)


@pytest.mark.slow
def test_volatility_lstm_tuning(frame, tmp_path_factory) -> None:
    pytest.importorskip("keras_tuner")
    X = frame[["realized_vol_24"]].iloc[-300:]
    model = VolatilityLSTMPredictor(
        memory=8,
        tune=True,
        tune_trials=1,
        tune_epochs=1,
        epochs=1,
        seed=4,
        n_threads=2,
        jit_compile=False,
    ).fit(X, None)
    cfg = model.config_
    assert cfg["n_layers"] in (1, 2) and len(cfg["units"]) == cfg["n_layers"]
    assert all(u in (16, 32, 48, 64) for u in cfg["units"])
    assert all(round(d * 10) in (0, 1, 2, 3) for d in cfg["dropout"])
    assert 1e-3 <= cfg["learning_rate"] <= 1e-2
    path, _ = _reload(model, tmp_path_factory, "voltune")
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["state"]["config"] == json.loads(json.dumps(cfg))
    assert len(meta["state"]["tuning"]["trials"]) == 1
    assert meta["training_history"]["loss"]
