"""Per-window model sets: selection without look-ahead, lazy loading, bounded cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlstrat.predictors.legacy import LegacyKerasPredictor
from mlstrat.predictors.window_sets import WindowModelSet, index_from_schedule, write_index

N_MODELS = 30
START = pd.Timestamp("2024-01-01", tz="UTC")


@pytest.fixture(scope="module")
def model_set(tmp_path_factory):
    import keras

    directory = tmp_path_factory.mktemp("windows")
    for n in range(N_MODELS):
        model = keras.Sequential(
            [keras.Input((4, 2)), keras.layers.Flatten(), keras.layers.Dense(1)]
        )
        kernel, _ = model.layers[-1].get_weights()
        # Output = window number, so each prediction tells which model made it.
        model.layers[-1].set_weights([np.zeros_like(kernel), np.array([float(n)])])
        model.save(directory / f"btceur_window_{n}.keras")
    entries = index_from_schedule(directory, start=START, train="30D", step="7D")
    write_index(directory, entries, feature_names=["a", "b"], window=4)
    return directory


def test_selection_uses_the_model_trained_before_the_bar(model_set):
    models = WindowModelSet(model_set, cache_size=3)
    # Window n trains on [START + 7n days, START + 7n + 30 days).
    assert models.select(START + pd.Timedelta("29D")) is None
    first_ready = START + pd.Timedelta("30D")
    assert models.select(first_ready) is None  # the bar at train_end is not after it
    assert models.select(first_ready + pd.Timedelta("1h")).window == 0
    t = START + pd.Timedelta("100D")
    chosen = models.select(t, "BTCEUR")
    assert chosen.window == 9  # 7*9 + 30 = 93 days < 100 <= 7*10 + 30 = 100
    for stamp in pd.date_range(START, periods=400, freq="13h", tz="UTC"):
        entry = models.select(stamp)
        if entry is not None:
            assert entry.train_end < stamp and entry.train_start < stamp


def test_predictions_never_come_from_an_overlapping_window(model_set):
    models = WindowModelSet(model_set, cache_size=4)
    predictor = LegacyKerasPredictor(window_set=models, output="return")
    index = pd.date_range(START + pd.Timedelta("25D"), periods=24 * 120, freq="1h", tz="UTC")
    frame = pd.DataFrame(np.ones((len(index), 2)), index=index, columns=["a", "b"])
    pred = predictor.predict(frame)
    used = pred.expected_return
    for i in range(3, len(index), 37):
        entry = models.select(index[i])
        if entry is None:
            assert np.isnan(used[i])
        else:
            assert used[i] == pytest.approx(entry.window)
            assert entry.train_end < index[i]
    assert np.isnan(used[:3]).all()  # warm-up rows of the 4-bar window


def test_cache_is_bounded_and_lazy(model_set):
    models = WindowModelSet(model_set, cache_size=3)
    assert models.loads == 0
    for n in (0, 1, 2, 0, 3, 4):
        models.get(f"btceur_window_{n}.keras")
    assert len(models.cached) == 3
    assert models.cached == [
        "btceur_window_0.keras",
        "btceur_window_3.keras",
        "btceur_window_4.keras",
    ]
    assert models.loads == 5  # the second request for window 0 was a cache hit
