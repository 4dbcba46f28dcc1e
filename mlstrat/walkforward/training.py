"""Fit one fold: the single code path shared by the batch runner and online retraining.

Both ways of producing predictions (precomputed walk-forward and retraining
inside a backtest) call `fit_fold` with the same rows, so they fit the same
model and the same thresholds by construction; the parity test checks that
the rows really are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.predictors.base import Prediction, Predictor
from mlstrat.walkforward.splits import Fold
from mlstrat.walkforward.thresholds import Thresholds, default_thresholds, fit_thresholds

PredictorFactory = Callable[[], Predictor]


@dataclass
class FittedFold:
    """A fold's fitted model, its thresholds and the validation evidence behind them."""

    fold: Fold
    model: Predictor
    thresholds: Thresholds | None
    validation_prediction: Prediction | None = None
    info: dict[str, Any] = field(default_factory=dict)


def predict_rows(model: Predictor, X: pd.DataFrame, rows: np.ndarray) -> Prediction:
    """Predict the contiguous positions `rows`, giving sequence models their past context."""
    if len(rows) == 0:
        raise ValueError("no rows to predict")
    window = max(1, int(getattr(model, "window", 1) or 1))
    lo = max(0, int(rows[0]) - window + 1)
    pred = model.predict(X.iloc[lo : int(rows[-1]) + 1])
    skip = int(rows[0]) - lo
    return _slice(pred, skip)


def _slice(pred: Prediction, start: int) -> Prediction:
    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.asarray(a)[start:]

    return Prediction(
        signal=cut(pred.signal),
        confidence=cut(pred.confidence),
        proba=cut(pred.proba),
        expected_return=cut(pred.expected_return),
        volatility=cut(pred.volatility),
        extra={k: cut(v) for k, v in pred.extra.items()},
    )


def side_scores(pred: Prediction) -> tuple[np.ndarray, np.ndarray] | None:
    """(long score, short score) for thresholding: P(up)/P(down) or P(buy)/P(sell)."""
    if pred.proba is None:
        return None
    proba = np.asarray(pred.proba, dtype=float)
    if proba.shape[1] == 2:
        return proba[:, 1], proba[:, 0]
    return proba[:, -1], proba[:, 0]


def side_outcomes(y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """1/0 outcomes per side (NaN where unknown): up/buy for long, down/sell for short."""
    y = np.asarray(y, dtype=float)
    up = np.where(np.isnan(y), np.nan, (y == n_classes - 1).astype(float))
    down = np.where(np.isnan(y), np.nan, (y == 0).astype(float))
    return up, down


def thresholded_signal(pred: Prediction, thresholds: Thresholds | None) -> np.ndarray:
    """The prediction's signal after the fold's confidence thresholds (unchanged if none)."""
    scores = side_scores(pred)
    if thresholds is None or scores is None:
        return np.asarray(pred.signal, dtype=float)
    return thresholds.apply(scores[0], scores[1])


def fit_fold(
    factory: PredictorFactory,
    X: pd.DataFrame,
    y: pd.Series,
    fold: Fold,
    *,
    symbol: str | None = None,
    threshold_params: Mapping[str, Any] | None = None,
    y_fit: pd.DataFrame | None = None,
) -> FittedFold:
    """Fit a fresh predictor on the fold's training rows, early-stopping on its validation
    tail, then fit the long/short thresholds on the validation predictions.

    `y_fit` (optional) is what the model is fitted on when it needs more than the
    scored target, e.g. a hybrid whose members learn different target columns;
    thresholds and metrics always use `y`.
    """
    labels = y if y_fit is None else y_fit
    X_train, y_train = X.iloc[fold.train], labels.iloc[fold.train]
    validation = None
    if len(fold.validation):
        validation = (X.iloc[fold.validation], labels.iloc[fold.validation])
    model = factory()
    model.fit(X_train, y_train, validation=validation)
    params = dict(threshold_params or {})
    val_pred = None
    thresholds: Thresholds | None = None
    if len(fold.validation):
        val_pred = predict_rows(model, X, fold.validation)
        scores = side_scores(val_pred)
        if scores is not None:
            n_classes = np.asarray(val_pred.proba).shape[1]
            up, down = side_outcomes(y.iloc[fold.validation].to_numpy(dtype=float), n_classes)
            thresholds = fit_thresholds(
                scores[0], up, proba_down=scores[1], y_down=down, symbol=symbol, **params
            )
    elif getattr(model, "task", None) in ("direction", "three_class"):
        thresholds = default_thresholds(params.get("fallback", 0.6))
    info = {"best_iteration": _best_iteration(model), "best_epoch": best_epoch(model)}
    return FittedFold(fold, model, thresholds, val_pred, info)


def _best_iteration(model: Predictor) -> int | None:
    value = getattr(model, "best_iteration_", None)
    return None if value is None else int(value)


def best_epoch(model: Predictor) -> int | None:
    """1-based epoch whose weights a Keras model kept: `best_epoch_`, else the epoch with the
    lowest validation (or training) loss in its history (EarlyStopping restores that one)."""
    value = getattr(model, "best_epoch_", None)
    if value is not None:
        return int(value)
    history = getattr(model, "history_", None)
    if not isinstance(history, dict):
        return None
    losses = history.get("val_loss") or history.get("loss")
    if not isinstance(losses, list) or not losses:
        return None
    return int(np.nanargmin(np.asarray(losses, dtype=float))) + 1
