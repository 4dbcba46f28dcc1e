"""Validation scores shared by the predictors and the walk-forward metrics.

Plain numpy functions (no model, no TensorFlow) so any layer may import them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def binary_log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-likelihood of 0/1 labels under probabilities p (clipped at 1e-15)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1 - 1e-15)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def categorical_log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of integer labels under (n, k) probabilities."""
    p = proba[np.arange(len(y)), np.asarray(y, dtype=np.int64)]
    return float(-np.mean(np.log(np.clip(p, 1e-15, 1.0))))


def roc_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """Binary ROC AUC by the rank statistic (ties averaged); None when one class is absent."""
    pos = np.asarray(y) == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = pd.Series(np.asarray(score)).rank(method="average").to_numpy()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


__all__ = ["binary_log_loss", "categorical_log_loss", "roc_auc"]
