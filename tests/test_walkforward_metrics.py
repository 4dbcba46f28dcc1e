"""Fold metrics against scikit-learn and scipy as independent references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn import metrics as skm

from mlstrat.predictors.base import Prediction
from mlstrat.walkforward.metrics import classification_metrics, regression_metrics


def binary_case(seed: int = 0):
    rng = np.random.default_rng(seed)
    n = 400
    y = (rng.random(n) < 0.45).astype(float)
    p = np.clip(0.5 + 0.2 * (y - 0.5) + rng.normal(0, 0.15, n), 0.01, 0.99)
    p[::37] = 0.5  # exact ties at the decision boundary
    y[-5:] = np.nan  # unknown tail
    fwd = 0.01 * (y - 0.5) + rng.normal(0, 0.01, n)
    proba = np.column_stack([1 - p, p])
    return y, Prediction(signal=np.sign(p - 0.5), confidence=proba.max(1), proba=proba), fwd


def test_binary_metrics_match_sklearn() -> None:
    y, pred, fwd = binary_case()
    signal = np.where(pred.proba[:, 1] >= 0.6, 1.0, np.where(pred.proba[:, 0] >= 0.6, -1.0, 0.0))
    m = classification_metrics(y, pred, signal=signal, forward_return=fwd)
    k = np.isfinite(y)
    yk, pk = y[k].astype(int), pred.proba[k]
    decided = (pk[:, 1] >= 0.5).astype(int)
    assert m["n_scored"] == 395
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(yk, decided))
    assert m["precision"] == pytest.approx(skm.precision_score(yk, decided))
    assert m["recall"] == pytest.approx(skm.recall_score(yk, decided))
    assert m["f1"] == pytest.approx(skm.f1_score(yk, decided))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(yk, pk[:, 1]))
    assert m["log_loss"] == pytest.approx(skm.log_loss(yk, pk))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(yk, pk[:, 1]))
    assert m["ic"] == pytest.approx(spearmanr(pk[:, 1], fwd[k]).statistic)
    longs = signal[k] == 1
    assert m["n_long"] == longs.sum()
    assert m["long_precision"] == pytest.approx(yk[longs].mean())
    assert m["short_precision"] == pytest.approx((yk[signal[k] == -1] == 0).mean())


def test_three_class_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    n = 300
    y = rng.integers(0, 3, n).astype(float)
    logits = rng.normal(0, 1, (n, 3)) + 1.5 * np.eye(3)[y.astype(int)]
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = Prediction(signal=np.argmax(proba, 1) - 1.0, confidence=proba.max(1), proba=proba)
    m = classification_metrics(y, pred)
    yi, decided = y.astype(int), np.argmax(proba, 1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(yi, decided))
    for name, fn in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        assert m[name] == pytest.approx(fn(yi, decided, average="macro"))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(yi, proba, multi_class="ovr"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(yi, proba))
    assert m["brier"] == pytest.approx(np.mean(np.sum((proba - np.eye(3)[yi]) ** 2, axis=1)))


def test_single_class_and_regression() -> None:
    y, pred, _ = binary_case()
    m = classification_metrics(np.ones_like(y), pred)
    assert m["auc"] is None and m["recall"] == pytest.approx(np.mean(pred.proba[:, 1] >= 0.5))
    truth = np.array([0.01, 0.02, 0.03, np.nan, 0.05])
    guess = np.array([0.012, 0.018, 0.035, 0.04, 0.06])
    r = regression_metrics(truth, guess)
    assert r["mae"] == pytest.approx(np.mean([0.002, 0.002, 0.005, 0.01]))
    assert r["rmse"] == pytest.approx(np.sqrt(np.mean(np.square([0.002, 0.002, 0.005, 0.01]))))
    assert r["ic"] == pytest.approx(1.0)


def test_short_precision_of_an_event_target_counts_down_moves_not_missing_up_moves() -> None:
    """A binary model of a jump target learns "up first" (1) vs "down first or none" (0).
    Coded, a short 'hits' on every 0; with the raw events it hits only on down moves."""
    events = np.array([1, 0, 0, -1, -1, 0, 1, 0], dtype=float)
    coded = (events == 1).astype(float)
    p_up = np.array([0.8, 0.3, 0.2, 0.2, 0.3, 0.2, 0.7, 0.6])
    pred = Prediction(
        np.where(p_up >= 0.5, 1.0, -1.0),
        np.maximum(p_up, 1 - p_up),
        np.column_stack([1 - p_up, p_up]),
    )
    signal = pred.signal
    plain = classification_metrics(coded, pred, signal=signal)
    named = classification_metrics(coded, pred, signal=signal, events=events)
    # shorts at rows 1-5: coded 0 everywhere (5/5), but only rows 3 and 4 fell (2/5)
    assert plain["short_precision"] == 1.0 and named["short_precision"] == 0.4
    assert named["base_rate_down"] == 0.25 and "base_rate_down" not in plain
    # longs at rows 0, 6, 7: up first at 0 and 6
    assert named["long_precision"] == plain["long_precision"] == 2 / 3
