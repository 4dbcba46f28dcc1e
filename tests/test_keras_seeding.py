"""Seeded Keras fits do not depend on other threads of the process.

Keras draws the seeds of layers built without one from the process-wide
`random` module. A Dask worker's event loop draws from it too, so the same
fold trained on Dask got other initial weights than on loky (measured in
benchmarks/walkforward.py --dask). `set_seed` now gives the fitting thread
its own generator; this test injects the interfering thread.
"""

from __future__ import annotations

import random
import threading

import numpy as np
import pandas as pd
import pytest

from mlstrat.predictors.lstm import LSTMPredictor


def _fit_outputs(X: pd.DataFrame, y: pd.Series) -> np.ndarray:
    model = LSTMPredictor(window=6, units=(8, 4), dropout=0.2, epochs=1, patience=1, seed=7)
    model.fit(X.iloc[:300], y.iloc[:300])
    return model.predict_outputs(X)[0]


@pytest.mark.slow
def test_a_thread_drawing_from_random_does_not_change_a_seeded_fit() -> None:
    rng = np.random.default_rng(0)
    index = pd.date_range("2024-01-01", periods=400, freq="1h", tz="UTC")
    X = pd.DataFrame(rng.standard_normal((400, 5)), index=index, columns=list("abcde"))
    y = pd.Series((rng.random(400) > 0.5).astype(float), index=index, name="direction_1")
    alone = _fit_outputs(X, y)

    stop = threading.Event()
    draws = [0]

    def draw() -> None:
        while not stop.wait(0.0005):  # a few draws every half millisecond, as an event loop
            random.random()
            draws[0] += 1

    noise = threading.Thread(target=draw, daemon=True)
    found: list[np.ndarray] = []
    fitter = threading.Thread(target=lambda: found.append(_fit_outputs(X, y)))
    noise.start()
    try:
        fitter.start()
        fitter.join()
    finally:
        stop.set()
        noise.join()
    assert draws[0] > 100  # the other thread really drew while the network was built
    np.testing.assert_array_equal(found[0], alone)
