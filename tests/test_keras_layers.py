"""Custom losses and layers against formulas evaluated in numpy; save/load without custom_objects."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlstrat.predictors.keras_utils import import_keras

keras = import_keras()

from mlstrat.predictors import layers  # noqa: E402

Y_TRUE = np.array([[0.0], [1.0], [1.0], [0.0]], dtype=np.float32)
Y_PROB = np.array([[0.1], [0.8], [0.3], [0.6]], dtype=np.float32)


def _np(x) -> np.ndarray:
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float64)


def _focal_by_hand(y: float, p: float, gamma: float, alpha: float) -> float:
    if y == 1:
        return -alpha * (1 - p) ** gamma * math.log(p)
    return -(1 - alpha) * p**gamma * math.log(1 - p)


def test_focal_loss_matches_formula() -> None:
    gamma, alpha = 2.0, 0.25
    expected = [
        _focal_by_hand(float(y), float(p), gamma, alpha)
        for y, p in zip(Y_TRUE[:, 0], Y_PROB[:, 0], strict=True)
    ]
    # e.g. row 2: -0.25 * 0.7**2 * ln 0.3 = 0.147487...
    assert expected[2] == pytest.approx(0.25 * 0.49 * 1.2039728, rel=1e-6)
    per_sample = _np(layers.focal_loss(Y_TRUE, Y_PROB, gamma=gamma, alpha=alpha))
    np.testing.assert_allclose(per_sample, expected, rtol=1e-5)
    mean = float(_np(layers.FocalLoss(gamma=gamma, alpha=alpha)(Y_TRUE, Y_PROB)))
    assert mean == pytest.approx(np.mean(expected), rel=1e-5)


def test_focal_loss_without_focusing_is_half_cross_entropy() -> None:
    # gamma=0, alpha=0.5 reduces to 0.5 x binary cross-entropy (Keras' own implementation).
    bce = float(_np(keras.losses.BinaryCrossentropy()(Y_TRUE, Y_PROB)))
    focal = float(_np(layers.FocalLoss(gamma=0.0, alpha=0.5)(Y_TRUE, Y_PROB)))
    assert focal == pytest.approx(0.5 * bce, rel=1e-5)


def test_directional_loss_matches_formula() -> None:
    y = np.array([[0.01], [-0.02], [0.03], [0.0]], dtype=np.float32)
    p = np.array([[0.02], [0.01], [-0.01], [0.05]], dtype=np.float32)
    # squared errors 1e-4, 9e-4, 16e-4, 25e-4; rows 1 and 2 have the wrong sign (x penalty 3).
    expected = [1e-4, 3 * 9e-4, 3 * 16e-4, 25e-4]
    got = _np(layers.directional_loss(y, p, penalty=3.0))
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_quantile_loss_matches_formula() -> None:
    y = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    p = np.array([[1.5], [1.0], [3.0]], dtype=np.float32)
    # q=0.9: e=-0.5 -> 0.05, e=1 -> 0.9, e=0 -> 0.
    np.testing.assert_allclose(_np(layers.quantile_loss(y, p, q=0.9)), [0.05, 0.9, 0.0], rtol=1e-6)


def test_temporal_attention_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    h = rng.standard_normal((2, 5, 3)).astype(np.float32)
    layer = layers.TemporalAttention(units=4, return_attention=True)
    layer.build((None, 5, 3))
    w, b, v = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal((4, 1))
    layer.set_weights([w.astype(np.float32), b.astype(np.float32), v.astype(np.float32)])
    context, weights = layer(h)
    scores = np.tanh(h.astype(np.float64) @ w + b) @ v  # (2, 5, 1)
    a = np.exp(scores - scores.max(axis=1, keepdims=True))
    a /= a.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(_np(weights), a[..., 0], rtol=1e-5)
    np.testing.assert_allclose(_np(context), (a * h).sum(axis=1), rtol=1e-5, atol=1e-6)


def test_positional_encoding_matches_formula() -> None:
    x = np.zeros((2, 7, 6), dtype=np.float32)
    out = _np(layers.PositionalEncoding()(x))
    t = np.arange(7)[:, None]
    i = np.arange(3)[None, :]
    angle = t / 10000 ** (2 * i / 6)
    np.testing.assert_allclose(out[0, :, 0::2], np.sin(angle), atol=1e-6)
    np.testing.assert_allclose(out[1, :, 1::2], np.cos(angle), atol=1e-6)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_model_with_custom_objects_loads_without_custom_objects(tmp_path) -> None:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6, 4))
    x = layers.PositionalEncoding()(keras.layers.Dense(8)(inputs))
    x = keras.layers.LSTM(8, return_sequences=True)(x)
    x = layers.TemporalAttention(units=4)(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile(optimizer="adam", loss=layers.FocalLoss(gamma=1.5, alpha=0.4))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=True)
    x_in = np.random.default_rng(2).standard_normal((3, 6, 4)).astype(np.float32)
    np.testing.assert_array_equal(_np(loaded(x_in)), _np(model(x_in)))
    assert isinstance(loaded.loss, layers.FocalLoss)
    assert (loaded.loss.gamma, loaded.loss.alpha) == (1.5, 0.4)


def test_losses_registered_under_package_and_old_names() -> None:
    get = keras.saving.get_registered_object
    assert get("mlstrat>FocalLoss") is layers.FocalLoss
    assert get("mlstrat>directional_loss") is layers.directional_loss
    custom = keras.saving.get_custom_objects()
    for old in ("FocalLoss", "directional_loss", "quantile_loss", "focal_loss"):
        assert custom[old] is getattr(layers, old)
    restored = keras.losses.deserialize(
        {"class_name": "FocalLoss", "config": {"gamma": 3.0, "alpha": 0.3}, "module": None}
    )
    assert isinstance(restored, layers.FocalLoss) and restored.gamma == 3.0
