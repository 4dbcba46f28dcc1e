"""Windowing (numpy, checked against a row loop), thread settings, lazy import, compiled inference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlstrat.errors import ConfigError
from mlstrat.predictors import keras_utils as ku

REPO = Path(__file__).resolve().parents[1]


def _reference_ready(values: np.ndarray, window: int) -> np.ndarray:
    """Row-by-row definition: a full window of finite rows ends here."""
    out = np.zeros(len(values), dtype=bool)
    for t in range(len(values)):
        if t >= window - 1:
            out[t] = np.isfinite(values[t - window + 1 : t + 1]).all()
    return out


def test_window_ready_matches_row_loop() -> None:
    rng = np.random.default_rng(3)
    values = rng.standard_normal((200, 4))
    values[rng.random((200, 4)) < 0.02] = np.nan
    values[57, 1] = np.inf
    for window in (1, 2, 7, 30):
        np.testing.assert_array_equal(
            ku.window_ready(values, window), _reference_ready(values, window)
        )


def test_window_ready_hand_example() -> None:
    values = np.array([[1.0], [2.0], [np.nan], [4.0], [5.0], [6.0]])
    # window 2: rows 0 (warm-up), 2 and 3 (touch the NaN) are not ready.
    assert ku.window_ready(values, 2).tolist() == [False, True, False, False, True, True]
    assert not ku.window_ready(values[:2], 3).any()
    assert ku.window_ready(np.empty((0, 3)), 3).shape == (0,)


def test_sliding_windows_content_and_order() -> None:
    values = np.arange(30, dtype=float).reshape(10, 3)
    view = ku.sliding_windows(values, 4)
    assert view.shape == (7, 4, 3)
    for i in range(7):
        np.testing.assert_array_equal(view[i], values[i : i + 4])
    assert ku.sliding_windows(values[:2], 4).shape == (0, 4, 3)


def test_make_samples_aligns_window_end_with_target() -> None:
    values = np.arange(20, dtype=float).reshape(10, 2)
    values[3, 0] = np.nan
    targets = np.array([0, 1, 0, 1, 0, 1, np.nan, 1, 0, 1], dtype=float)
    s = ku.make_samples(values, targets, 3)
    # Full windows end at rows 2..9; those touching row 3 (rows 3, 4, 5) drop, row 6 has no target.
    assert s.rows.tolist() == [2, 7, 8, 9]
    np.testing.assert_array_equal(s.X[1], values[5:8].astype(np.float32))
    np.testing.assert_array_equal(s.y, np.float32([0, 1, 0, 1]))


def test_thread_setting_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ku.THREADS_ENV, "3")
    assert ku._requested_threads(None) == 3
    assert ku._requested_threads(1) == 1
    monkeypatch.setenv(ku.THREADS_ENV, "many")
    with pytest.raises(ConfigError, match=ku.THREADS_ENV):
        ku._requested_threads(None)
    monkeypatch.delenv(ku.THREADS_ENV)
    assert ku._requested_threads(None) is None


def test_adapter_modules_do_not_import_tensorflow() -> None:
    code = (
        "import sys, mlstrat.predictors.lstm, mlstrat.predictors.transformer, "
        "mlstrat.predictors.volatility; print('tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("jit", [True, False])
def test_compiled_inference_matches_eager_model(jit: bool) -> None:
    keras = ku.import_keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 3))
    x = keras.layers.LSTM(4)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    rng = np.random.default_rng(1)
    values = rng.standard_normal((40, 3))
    rows = np.arange(4, 40)
    compiled = ku.CompiledInference(model, 5, 3, chunk_size=16, jit=jit)
    got = compiled.predict_rows(values, rows)  # 36 rows: two full chunks and a padded one
    windows = ku.gather_windows(values, 5, rows)
    expected = model(windows, training=False).numpy()
    assert got.shape == (36, 2) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(compiled(windows), got, rtol=0, atol=0)
    np.testing.assert_allclose(compiled.one(windows[-1]), got[-1], rtol=1e-5, atol=1e-6)
    assert compiled.predict_rows(values, np.array([], dtype=int)).shape == (0, 2)


def test_running_tensorflow_with_the_same_limit_from_the_environment_is_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import warnings

    tf = ku.import_tf()

    def refuse(n: int) -> None:
        raise RuntimeError("Intra op parallelism cannot be modified after initialization.")

    monkeypatch.setattr(tf.config.threading, "set_intra_op_parallelism_threads", refuse)
    monkeypatch.setattr(ku, "_threads_applied", None)
    monkeypatch.setattr(ku, "_threads_warned", False)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ku.import_tf(1)
    assert ku._threads_applied == 1
    monkeypatch.setattr(ku, "_threads_applied", None)
    with pytest.warns(RuntimeWarning, match="cannot change its thread count to 2"):
        ku.import_tf(2)
