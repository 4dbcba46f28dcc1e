"""Lazy windows: training batches gathered from the 2-D feature array, never an N x window x F copy.

Checked against numpy (`gather_windows`, the materialised windows): batch content
and order, the same weights bit for bit as training on materialised windows in the
same order, seeded determinism, and the memory the fit allocates.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from mlstrat.predictors import keras_utils as ku
from mlstrat.predictors.lstm import LSTMPredictor, build_lstm_network

pytestmark = pytest.mark.slow


def _data(n: int = 300, n_features: int = 3, window: int = 7, seed: int = 0):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((n, n_features)).astype(np.float32)
    rows = np.arange(window - 1, n, 2)  # every other window end, as purging leaves gaps
    y = (rng.random(len(rows)) > 0.5).astype(np.float32)
    w = rng.random(len(rows)).astype(np.float32)
    return values, rows, y, w


def _batches(dataset) -> list[tuple[np.ndarray, ...]]:
    return [tuple(np.asarray(part) for part in batch) for batch in dataset]


def test_unshuffled_batches_equal_the_materialised_windows() -> None:
    values, rows, y, w = _data()
    batches = _batches(ku.window_dataset(values, rows, 7, y, w, batch_size=16))
    assert [len(b[0]) for b in batches] == [16] * (len(rows) // 16) + [len(rows) % 16]
    X = np.concatenate([b[0] for b in batches])
    np.testing.assert_array_equal(X, ku.gather_windows(values, 7, rows))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    np.testing.assert_array_equal(np.concatenate([b[2] for b in batches]), w)
    # by hand: the window of sample 3 ends at row rows[3] and spans the 7 rows up to it
    np.testing.assert_array_equal(X[3], values[rows[3] - 6 : rows[3] + 1])


def test_shuffled_epochs_are_permutations_keeping_targets_with_their_windows() -> None:
    values, rows, y, w = _data()
    reference = ku.gather_windows(values, 7, rows)
    dataset = ku.window_dataset(values, rows, 7, y, w, batch_size=32, seed=5)
    orders = []
    for _ in range(2):  # two epochs
        X, yy, ww = (np.concatenate(p) for p in zip(*_batches(dataset), strict=True))
        # each sample's position in the reference, found from its window alone
        flat = reference.reshape(len(rows), -1)
        order = np.array([np.flatnonzero((flat == x.ravel()).all(axis=1))[0] for x in X])
        assert sorted(order) == list(range(len(rows)))
        np.testing.assert_array_equal(yy, y[order])
        np.testing.assert_array_equal(ww, w[order])
        orders.append(order)
    assert not np.array_equal(orders[0], orders[1])  # reshuffled every epoch
    assert not np.array_equal(orders[0], np.arange(len(rows)))
    again = ku.window_dataset(values, rows, 7, y, w, batch_size=32, seed=5)
    first = np.concatenate([b[1] for b in _batches(again)])
    np.testing.assert_array_equal(first, y[orders[0]])  # same seed, same first epoch


def _fit_weights(make_dataset, window: int, n_features: int) -> list[np.ndarray]:
    """Weights after 3 epochs on `make_dataset()`, built after seeding (as `_train` does)."""
    import keras

    ku.set_seed(3)
    dataset = make_dataset()
    model = build_lstm_network(window, n_features, units=(4,), dropout=(0.0,))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    model.fit(dataset, epochs=3, verbose=0, shuffle=False)
    return model.get_weights()


def test_training_on_lazy_windows_equals_training_on_materialised_ones() -> None:
    """Same batches in the same order from a materialised N x window x F array: same weights."""
    tf = ku.import_tf()
    values, rows, y, w = _data(n=400)
    lazy = _fit_weights(
        lambda: ku.window_dataset(values, rows, 7, y, w, batch_size=32, seed=9), 7, 3
    )

    X = tf.constant(ku.gather_windows(values, 7, rows))
    yt, wt = tf.constant(y), tf.constant(w)

    def materialised():
        positions = tf.data.Dataset.range(len(rows)).shuffle(
            len(rows), seed=9, reshuffle_each_iteration=True
        )
        return positions.batch(32).map(
            lambda p: (tf.gather(X, p), tf.gather(yt, p), tf.gather(wt, p))
        )

    eager = _fit_weights(materialised, 7, 3)
    assert len(lazy) == len(eager)
    for a, b in zip(lazy, eager, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 900
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    X = pd.DataFrame(rng.standard_normal((n, 4)), index=index, columns=list("abcd"))
    signal = X["a"].rolling(3).mean().shift(-1)  # next rows' mean of a: learnable
    y = (signal > 0).astype(float).where(signal.notna()).rename("direction_1")
    return X.assign(direction_1=y)


def _tiny(**kw) -> LSTMPredictor:
    params = {
        "window": 8,
        "units": (4,),
        "dropout": 0.0,
        "batch_norm_layers": 0,
        "dense_units": 0,
        "epochs": 3,
        "batch_size": 64,
        "n_threads": 2,
        "seed": 11,
    }
    return LSTMPredictor(**{**params, **kw})


def test_seeded_fits_have_identical_weights_and_predictions(frame) -> None:
    X, y = frame[list("abcd")], frame["direction_1"]
    one, two = _tiny().fit(X, y), _tiny().fit(X, y)
    for a, b in zip(one.model_.get_weights(), two.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one.predict(X).proba, two.predict(X).proba)
    other = _tiny(seed=12).fit(X, y)
    assert not np.array_equal(other.model_.get_weights()[0], one.model_.get_weights()[0])


def test_batched_prediction_equals_the_model_on_materialised_windows(frame) -> None:
    X, y = frame[list("abcd")], frame["direction_1"]
    model = _tiny(jit_compile=False).fit(X, y)
    out, rows = model.predict_outputs(X)
    scaled = model.x_scaler_.transform(X.to_numpy()).astype(np.float32)
    direct = model.model_(ku.gather_windows(scaled, 8, rows), training=False).numpy()
    np.testing.assert_allclose(out[:, 0], direct[:, 0], rtol=1e-6, atol=1e-7)
    assert len(rows) == len(X) - 7


def _fit_peak(n: int, window: int, n_features: int) -> int:
    """Peak numpy allocation (bytes) of one fit on n rows."""
    rng = np.random.default_rng(2)
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    columns = [f"f{i}" for i in range(n_features)]
    X = pd.DataFrame(rng.standard_normal((n, n_features)), index=index, columns=columns)
    y = pd.Series((rng.random(n) > 0.5).astype(float), index=index, name="direction_1")
    # without XLA, validation outputs are computed one 512-window chunk at a time (XLA runs
    # up to 2 x threads chunks at once: more with more rows, until that bound)
    model = _tiny(window=window, units=(2,), epochs=1, batch_size=512, jit_compile=False)
    tracemalloc.start()
    try:
        model.fit(X, y)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_fit_allocates_no_window_copy() -> None:
    """5,000 more rows add far less numpy memory than their N x window x F float32 windows
    would take materialised (the old path allocated them for training and validation);
    what does not grow with N (prediction chunks of 512 windows) cancels out."""
    ku.import_tf()
    window, n_features = 120, 46
    _fit_peak(1000, window, n_features)  # warm-up: first-call allocations of TF and Keras
    small, large = _fit_peak(5000, window, n_features), _fit_peak(10000, window, n_features)
    extra_windows_bytes = 5000 * window * n_features * 4  # 110 MB
    # 2-D copies of the frame (float64 inputs, masks, scaled float32) grow too, ~10 x 1.8 MB
    assert large - small < extra_windows_bytes / 4, f"{(large - small) / 1e6:.1f} MB more"
