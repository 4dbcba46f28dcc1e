"""Out-of-sample metrics of one fold: classification quality, calibration and rank IC.

Classification metrics use the model's own class decision (arg-max; P(up) ≥ 0.5
for binary models); the ``long_*``/``short_*`` entries measure the signals after
the fold's confidence thresholds. IC is the Spearman rank correlation between
the model's score (expected return if it predicts one, else P(up)) and the
realised forward return. Rows whose label is unknown (the feed's tail) are left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlstrat.predictors.base import Prediction
from mlstrat.predictors.scoring import categorical_log_loss, roc_auc


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation over rows where both are finite; None if undefined."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3:
        return None
    ra = pd.Series(a[keep]).rank().to_numpy()
    rb = pd.Series(b[keep]).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _prf(y: np.ndarray, decided: np.ndarray, cls: int) -> tuple[float, float, float]:
    tp = float(np.sum((decided == cls) & (y == cls)))
    predicted = float(np.sum(decided == cls))
    actual = float(np.sum(y == cls))
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def classification_metrics(
    y: np.ndarray,
    pred: Prediction,
    *,
    signal: np.ndarray | None = None,
    forward_return: np.ndarray | None = None,
    events: np.ndarray | None = None,
) -> dict[str, Any]:
    """Metrics for binary ({0,1}) or three-class ({0,1,2}) labels and class probabilities.

    Binary precision/recall/F1 are for the "up" class; three-class ones are
    macro averages. Brier: mean (P(up) − y)² for binary, mean squared distance
    to the one-hot outcome for three classes. AUC: three-class one-vs-rest macro.
    `long_precision` / `short_precision`: the share of long / short signals whose label
    was the up / down class. With `events` (the uncoded −1 / 0 / +1 labels of a barrier or
    jump target, which a binary model learns as "up first or not") they are the share
    whose event was up-first / **down-first**, beside `base_rate_down`: a short of such a
    model bets on "no up move", and this says how often a down move actually came.
    """
    y = np.asarray(y, dtype=float)
    proba = np.asarray(pred.proba, dtype=float)
    known = np.isfinite(y) & np.isfinite(proba).all(axis=1)
    k = proba.shape[1]
    out: dict[str, Any] = {"n_scored": int(known.sum())}
    score = pred.expected_return if pred.expected_return is not None else pred.proba_up()
    if forward_return is not None:
        out["ic"] = spearman(np.asarray(score)[known], np.asarray(forward_return)[known])
    if not known.any():
        return out
    yk = y[known].astype(int)
    pk = proba[known]
    decided = np.argmax(pk, axis=1) if k > 2 else (pk[:, 1] >= 0.5).astype(int)
    out["accuracy"] = float(np.mean(decided == yk))
    if k == 2:
        out["precision"], out["recall"], out["f1"] = _prf(yk, decided, 1)
    else:
        per_class = np.array([_prf(yk, decided, c) for c in range(k)])
        out["precision"], out["recall"], out["f1"] = (float(v) for v in per_class.mean(axis=0))
    out["log_loss"] = categorical_log_loss(yk, pk)
    onehot = np.eye(k)[yk]
    out["brier"] = (
        float(np.mean((pk[:, 1] - yk) ** 2))
        if k == 2
        else float(np.mean(np.sum((pk - onehot) ** 2, axis=1)))
    )
    if k == 2:
        out["auc"] = roc_auc(yk, pk[:, 1])
    else:
        aucs = [roc_auc((yk == c).astype(int), pk[:, c]) for c in range(k)]
        out["auc"] = None if any(a is None for a in aucs) else float(np.mean(aucs))
    out["base_rate_up"] = float(np.mean(yk == k - 1))
    outcome, up, down = yk, k - 1, 0
    if events is not None:
        outcome, up, down = np.asarray(events, dtype=float)[known], 1.0, -1.0
        out["base_rate_down"] = float(np.mean(outcome == down))
    if signal is not None:
        s = np.asarray(signal, dtype=float)[known]
        for name, side, cls in (("long", 1.0, up), ("short", -1.0, down)):
            hits = s == side
            out[f"n_{name}"] = int(hits.sum())
            out[f"{name}_precision"] = float(np.mean(outcome[hits] == cls)) if hits.any() else None
    return out


def regression_metrics(
    y: np.ndarray, predicted: np.ndarray, *, forward_return: np.ndarray | None = None
) -> dict[str, Any]:
    """MAE, RMSE and rank IC for a regression target (e.g. forward volatility)."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(predicted, dtype=float)
    known = np.isfinite(y) & np.isfinite(p)
    out: dict[str, Any] = {"n_scored": int(known.sum())}
    if known.any():
        err = p[known] - y[known]
        out["mae"] = float(np.mean(np.abs(err)))
        out["rmse"] = float(np.sqrt(np.mean(err**2)))
        out["ic"] = spearman(p[known], y[known])
    if forward_return is not None:
        out["ic_forward_return"] = spearman(p, forward_return)
    return out
