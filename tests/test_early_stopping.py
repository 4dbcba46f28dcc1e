"""Early stopping follows the validation loss without the L2 weight penalty.

Keras adds the weight penalty to `val_loss`; with a large L2 it keeps falling while
training only shrinks the weights. The restored weights must be those of the epoch
whose prediction loss on the validation rows was lowest, checked by recomputing
binary cross-entropy from the restored model's outputs with numpy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlstrat.predictors.keras_utils import VAL_DATA_LOSS
from mlstrat.predictors.lstm import LSTMPredictor

pytestmark = pytest.mark.slow


def _frames(n: int = 360, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    X = pd.DataFrame(rng.standard_normal((n, 3)), index=index, columns=["a", "b", "c"])
    # a weak, learnable signal so the prediction loss moves both ways across epochs
    signal = X["a"].rolling(3, min_periods=1).mean() + 0.8 * rng.standard_normal(n)
    y = pd.Series((signal > 0).astype(float), index=index, name="direction_1")
    return X, y


def test_restored_weights_are_the_epoch_with_the_lowest_unpenalised_validation_loss() -> None:
    X, y = _frames()
    cut = 260
    model = LSTMPredictor(window=5, units=(16,), dropout=0.0, batch_norm_layers=0,
                          dense_units=0, l2=0.05, learning_rate=0.02, epochs=10, patience=10,
                          lr_patience=100, batch_size=32, seed=1)  # fmt: skip
    model.fit(X.iloc[:cut], y.iloc[:cut], validation=(X.iloc[cut:], y.iloc[cut:]))

    total = np.array(model.history_["val_loss"])
    data = np.array(model.history_[VAL_DATA_LOSS])
    assert len(data) == 10
    assert (total - data > 1e-3).all()  # the penalty is in val_loss, not in the data loss
    # the two criteria pick different epochs here, so the check below can tell them apart
    assert np.argmin(total) != np.argmin(data)

    out, rows = model.predict_outputs(X)
    p = np.clip(out.ravel()[rows >= cut].astype(np.float64), 1e-7, 1 - 1e-7)
    t = y.to_numpy()[rows[rows >= cut]]
    bce = float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))
    assert bce == pytest.approx(data.min(), abs=2e-5)
    assert bce != pytest.approx(data[np.argmin(total)], abs=1e-3)
