"""Fit one fold: the single code path shared by the batch runner and online retraining.

Both ways of producing predictions (precomputed walk-forward and retraining
inside a backtest) call `fit_fold` with the same rows, so they fit the same
model and the same thresholds by construction; the parity test checks that
the rows really are the same.

A fold purged by label end times (`WalkForward.split(index, ends)`) may drop rows
inside its training window; the model still gets the contiguous rows (sequence
models need them as context) with the dropped rows' labels blanked. Event labels
(-1 / 0 / +1) reach the model as they are stored (each adapter codes them for its
task) and are coded with `encode_labels` for thresholds and metrics.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError
from mlstrat.features.labels import uniqueness_weights
from mlstrat.features.targets import encode_labels, horizon_of
from mlstrat.predictors.base import OUTCOME_COLUMNS, Prediction, Predictor
from mlstrat.predictors.keras_utils import VAL_DATA_LOSS
from mlstrat.walkforward.outcomes import (
    DEFAULT_COMMISSION,
    DEFAULT_SLIPPAGE,
    TradeOutcomes,
    round_trip_cost,
)
from mlstrat.walkforward.splits import Fold
from mlstrat.walkforward.thresholds import (
    EVIDENCE,
    METHOD_KEYS,
    METHODS,
    NET_OBJECTIVE,
    Thresholds,
    default_thresholds,
    fit_net_thresholds,
    fit_thresholds,
)

PredictorFactory = Callable[[], Predictor]
#: Trade outcomes of every row computed from the rows before a position: `source(stop)`
#: (e.g. `functools.partial(trade_outcomes, bars, target)`).
OutcomeSource = Callable[..., TradeOutcomes]
#: Sample weighting schemes `fit_fold` knows (None: unweighted).
SAMPLE_WEIGHTS = ("uniqueness",)


@dataclass
class FittedFold:
    """A fold's fitted model, its thresholds and the validation evidence behind them."""

    fold: Fold
    model: Predictor
    thresholds: Thresholds | None
    validation_prediction: Prediction | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: positions `validation_prediction` belongs to (the validation span)
    validation_rows: np.ndarray | None = None


def predict_rows(model: Predictor, X: pd.DataFrame, rows: np.ndarray) -> Prediction:
    """Predict the increasing positions `rows`, giving sequence models their past context.

    One call over the span from the first to the last row (plus the window before it);
    rows need not be contiguous (a CPCV split tests groups apart), the others are dropped.
    """
    if len(rows) == 0:
        raise ValueError("no rows to predict")
    rows = np.asarray(rows, dtype=np.int64)
    window = max(1, int(getattr(model, "window", 1) or 1))
    lo = max(0, int(rows[0]) - window + 1)
    pred = model.predict(X.iloc[lo : int(rows[-1]) + 1])
    return _take(pred, rows - lo)


def _take(pred: Prediction, positions: np.ndarray) -> Prediction:
    """The rows `positions` of every array of `pred`."""

    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.asarray(a)[positions]

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
    ends: np.ndarray | None = None,
    outcomes: OutcomeSource | None = None,
    sample_weights: str | None = None,
    weight_decay: float = 1.0,
) -> FittedFold:
    """Fit a fresh predictor on the fold's training rows, early-stopping on its validation
    tail, then fit the long/short thresholds on the validation predictions.

    `y_fit` (optional) is what the model is fitted on when it needs more than the
    scored target, e.g. a hybrid whose members learn different target columns;
    thresholds and metrics always use `y`. `ends`: each row's label end position
    (default: row + the target's horizon), for `sample_weights="uniqueness"` (AFML
    average uniqueness, times a linear time decay to `weight_decay` for the oldest
    label, normalised to mean 1). `outcomes`: trade outcomes (`mlstrat.walkforward.outcomes`)
    for ``method: net_pnl`` thresholds and for predictors that learn from them
    (`Predictor.learns_outcomes`, e.g. `meta`).
    """
    method, params, costs, _ = threshold_options(threshold_params)
    model = factory()
    learns = bool(getattr(model, "learns_outcomes", False))
    if (learns or method == "net_pnl") and outcomes is None:
        raise ConfigError(
            "this fold needs trade outcomes (net_pnl thresholds or a predictor learning "
            "from outcomes) but none were given",
            fix="run it through run_walk_forward, or pass outcomes=partial(trade_outcomes, bars, "
            "target)",
        )
    found = functools.partial(outcomes, **costs) if outcomes is not None else None
    X_train, y_train, validation = _fit_inputs(
        X, y if y_fit is None else y_fit, fold, found if learns else None
    )
    fit_kwargs, info = _weights(model, y, fold, X.index, ends, sample_weights, weight_decay)
    model.fit(X_train, y_train, validation=validation, **fit_kwargs)
    val_pred, thresholds = None, None
    rows = fold.validation_span if len(fold.validation) else None
    if rows is not None:
        val_pred = predict_rows(model, X, rows)
        coded = encode_labels(_masked(y, fold.validation, rows), model.task)
        thresholds = _validation_thresholds(
            val_pred, coded, rows, method, params, found, int(fold.test[0]), symbol
        )
    elif getattr(model, "task", None) in ("direction", "three_class"):
        thresholds = _unfitted(method, params, costs)
    info = {"best_iteration": _best_iteration(model), "best_epoch": best_epoch(model), **info}
    return FittedFold(fold, model, thresholds, val_pred, info, rows)


def _fit_inputs(
    X: pd.DataFrame,
    labels: pd.Series | pd.DataFrame,
    fold: Fold,
    outcomes: OutcomeSource | None,
) -> tuple[pd.DataFrame, Any, tuple[pd.DataFrame, Any] | None]:
    """(X, y) of the training span and the validation span, purged rows' labels blanked;
    with `outcomes`, the trade outcome columns of each span (computed from the bars before
    its next boundary: the validation start, the test start)."""
    train_stop = int(fold.validation[0]) if len(fold.validation) else int(fold.test[0])
    y_train = _masked(labels, fold.train, fold.train_span)
    if outcomes is not None:
        y_train = _with_outcomes(y_train, outcomes(stop=train_stop), fold.train_span)
    if not len(fold.validation):
        return X.iloc[fold.train_span], y_train, None
    y_val = _masked(labels, fold.validation, fold.validation_span)
    if outcomes is not None:
        y_val = _with_outcomes(y_val, outcomes(stop=int(fold.test[0])), fold.validation_span)
    return X.iloc[fold.train_span], y_train, (X.iloc[fold.validation_span], y_val)


def _weights(
    model: Predictor,
    y: pd.Series,
    fold: Fold,
    index: pd.Index,
    ends: np.ndarray | None,
    method: str | None,
    decay: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(fit keyword arguments, info) for `method` sample weights; both empty without."""
    if method is None:
        return {}, {}
    weights = _sample_weights(y, fold, index, ends, method, decay)
    used = weights[weights > 0]
    info = {
        "method": method,
        "decay": decay,
        "min": float(used.min()) if len(used) else None,
        "max": float(used.max()) if len(used) else None,
    }
    return {"sample_weight": _check_weighted(model, weights)}, {"sample_weights": info}


def _validation_thresholds(
    pred: Prediction,
    coded: pd.Series,
    rows: np.ndarray,
    method: str,
    params: Mapping[str, Any],
    outcomes: OutcomeSource | None,
    test_start: int,
    symbol: str | None,
) -> Thresholds | None:
    """The fold's thresholds from its validation predictions: precision against the coded
    labels, or net P&L of the trade outcomes (from bars before the test start)."""
    scores = side_scores(pred)
    if scores is None:
        return None
    if method == "net_pnl":
        return net_pnl_thresholds(scores, rows, outcomes, test_start, symbol, params)
    up, down = side_outcomes(coded.to_numpy(dtype=float), np.asarray(pred.proba).shape[1])
    return fit_thresholds(scores[0], up, proba_down=scores[1], y_down=down, symbol=symbol, **params)


def net_pnl_thresholds(
    scores: tuple[np.ndarray, np.ndarray],
    rows: np.ndarray,
    outcomes: OutcomeSource,
    test_start: int,
    symbol: str | None,
    params: Mapping[str, Any],
) -> Thresholds:
    """A net_pnl decision on the evidence rows `rows` (increasing positions; validation rows,
    or earlier folds' test rows followed by them) with their (long, short) scores; outcomes
    are read from the bars before `test_start` only."""
    found = outcomes(stop=test_start).take(rows)
    return fit_net_thresholds(
        scores[0], scores[1], found.long, found.short,
        rows=rows, cost=found.cost, symbol=symbol, **params,
    )  # fmt: skip


def frame_scores(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """(long score, short score) of prediction-feed rows, as `side_scores` gives them."""
    if "proba_up" in frame:
        up = frame["proba_up"].to_numpy(dtype=float)
        return up, 1.0 - up
    if "proba_buy" in frame and "proba_sell" in frame:
        return frame["proba_buy"].to_numpy(dtype=float), frame["proba_sell"].to_numpy(dtype=float)
    return None


def threshold_options(
    threshold_params: Mapping[str, Any] | None,
) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    """(method, the method's own options, costs, evidence) of a thresholds section."""
    params = dict(threshold_params or {})
    method = _threshold_method(params)
    costs = {k: params.pop(k) for k in ("commission", "slippage") if k in params}
    evidence = params.pop("evidence", EVIDENCE[0])
    if evidence not in EVIDENCE:
        raise ConfigError(
            f"unknown thresholds evidence {evidence!r}",
            param="evidence",
            fix=f"use one of {EVIDENCE}",
        )
    return method, params, costs, evidence


def _threshold_method(params: dict[str, Any]) -> str:
    """Pop ``method`` from threshold options and check the options belong to it."""
    method = params.pop("method", "precision")
    if method not in METHODS:
        raise ConfigError(
            f"unknown threshold method {method!r}", param="method", fix=f"use one of {METHODS}"
        )
    for other, keys in METHOD_KEYS.items():
        wrong = [k for k in keys if k in params and other != method]
        if wrong:
            raise ConfigError(
                f"threshold option {wrong[0]!r} belongs to method {other!r}, not {method!r}",
                param=wrong[0],
                fix=f"set method: {other}, or drop {wrong[0]}",
            )
    return method


def _unfitted(method: str, params: Mapping[str, Any], costs: Mapping[str, Any]) -> Thresholds:
    """Thresholds of a fold without validation rows: the fallback (precision), or
    abstention (net_pnl: no evidence of an edge after costs)."""
    if method == "precision":
        return default_thresholds(params.get("fallback", 0.6))
    cost = round_trip_cost(
        costs.get("commission", DEFAULT_COMMISSION), costs.get("slippage", DEFAULT_SLIPPAGE)
    )
    return Thresholds(
        long=np.inf, short=np.inf, objective=NET_OBJECTIVE, fitted=False, method="net_pnl",
        abstain_long=True, abstain_short=True, cost=cost,
    )  # fmt: skip


def _masked(
    labels: pd.Series | pd.DataFrame, kept: np.ndarray, span: np.ndarray
) -> pd.Series | pd.DataFrame:
    """Labels of the contiguous `span` with the rows not `kept` (purged) blanked."""
    out = labels.iloc[span]
    if len(kept) == len(span):
        return out
    out = out.astype(float)  # a copy; NaN needs a float column
    out.iloc[~np.isin(span, kept)] = np.nan
    return out


def _with_outcomes(
    labels: pd.Series | pd.DataFrame, found: TradeOutcomes, span: np.ndarray
) -> pd.DataFrame:
    """Labels plus whether a long / a short at each row pays (`OUTCOME_COLUMNS`); rows whose
    label is blanked get NaN outcomes too."""
    frame = labels.to_frame() if isinstance(labels, pd.Series) else labels.copy()
    blank = frame.isna().all(axis=1).to_numpy()
    for name, side in zip(OUTCOME_COLUMNS, (found.long, found.short), strict=True):
        frame[name] = np.where(blank, np.nan, side.pays[span])
    return frame


def _sample_weights(
    y: pd.Series,
    fold: Fold,
    index: pd.Index,
    ends: np.ndarray | None,
    method: str,
    decay: float,
) -> np.ndarray:
    """Weights of the training span's rows: average uniqueness of the kept, labelled rows'
    labels (`features.labels.uniqueness_weights`), mean 1 over them, 0 elsewhere."""
    if method not in SAMPLE_WEIGHTS:
        raise ConfigError(
            f"unknown sample weighting {method!r}",
            param="sample_weights",
            fix=f"use one of {SAMPLE_WEIGHTS} (or none)",
        )
    span = fold.train_span
    n = len(index)
    own = np.asarray(ends, dtype=float) if ends is not None else np.full(n, np.nan)
    default_end = np.arange(n) + horizon_of(y.name)
    own = np.where(np.isnan(own), default_end, own)
    rows = fold.train[np.isfinite(y.to_numpy(dtype=float)[fold.train])]
    rows = rows[own[rows] <= n - 1]
    weights = np.zeros(len(span))
    if not len(rows):
        return weights
    t1 = pd.Series(index[own[rows].astype(int)], index=index[rows])
    unique = uniqueness_weights(t1, index=index, decay=decay).to_numpy()
    weights[rows - span[0]] = unique / unique.mean()
    return weights


def _check_weighted(model: Predictor, weights: np.ndarray) -> np.ndarray:
    """`weights`, once the model's `fit` is known to take `sample_weight`."""
    if "sample_weight" not in inspect.signature(model.fit).parameters:
        raise ConfigError(
            f"predictor {model.name!r} does not take sample weights",
            param="sample_weights",
            fix="drop sample_weights or use xgboost / a Keras predictor",
        )
    return weights


def _best_iteration(model: Predictor) -> int | None:
    value = getattr(model, "best_iteration_", None)
    return None if value is None else int(value)


def best_epoch(model: Predictor) -> int | None:
    """1-based epoch whose weights a Keras model kept: `best_epoch_`, else the epoch with the
    lowest monitored loss in its history (EarlyStopping restores that one): the validation
    loss without the weight penalty, else `val_loss` (older histories), else the training loss."""
    value = getattr(model, "best_epoch_", None)
    if value is not None:
        return int(value)
    history = getattr(model, "history_", None)
    if not isinstance(history, dict):
        return None
    losses = history.get(VAL_DATA_LOSS) or history.get("val_loss") or history.get("loss")
    if not isinstance(losses, list) or not losses:
        return None
    return int(np.nanargmin(np.asarray(losses, dtype=float))) + 1
