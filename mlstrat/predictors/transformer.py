"""Transformer-encoder adapter `transformer`: three-class SELL/HOLD/BUY from a window.

Defaults are those of the three-class transformer in the crypto trading bot
mlstrat was built to backtest (docs/architecture.md, "Where the default
numbers come from").

Network: Dense(d_model) projection of each time step, sinusoidal
`PositionalEncoding`, `n_layers` encoder blocks (multi-head self-attention
with `n_heads` heads, dropout, skip connection, LayerNorm; feed-forward
Dense(ff_dim, relu) → Dense(d_model), dropout, skip connection, LayerNorm),
global average pooling over time, dropout, softmax over the classes
(0 = sell, 1 = hold, 2 = buy, the `three_class_{h}` coding). Categorical
cross-entropy, Adam, EarlyStopping and a best-weights checkpoint.

Prediction: proba (n x 3), signal = arg-max mapped to -1/0/+1, confidence =
the largest probability, expected_return = sum_c P(c) x mean forward return
of class c over the fitted samples. The class means need the forward
returns: pass them as `fit(X, y, returns=frame["forward_return_1"])`; without
them expected_return is left out (None).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError, DataError
from mlstrat.predictors.base import Prediction, Task
from mlstrat.predictors.keras_base import (
    KerasSequencePredictor,
    categorical_log_loss,
    scatter_rows,
    target_series,
)
from mlstrat.predictors.keras_utils import import_keras
from mlstrat.predictors.registry import register_predictor

N_CLASSES = 3


def build_transformer_network(
    window: int,
    n_features: int,
    *,
    d_model: int = 64,
    n_heads: int = 4,
    n_layers: int = 2,
    ff_dim: int = 128,
    dropout: float = 0.1,
    n_classes: int = N_CLASSES,
) -> Any:
    """Uncompiled functional encoder-only transformer ending in a softmax over `n_classes`."""
    keras = import_keras()
    from mlstrat.predictors.layers import PositionalEncoding

    inputs = keras.Input(shape=(window, n_features), name="window")
    x = keras.layers.Dense(d_model, name="projection")(inputs)
    x = PositionalEncoding(name="positional_encoding")(x)
    for i in range(n_layers):
        attn = keras.layers.MultiHeadAttention(
            num_heads=n_heads, key_dim=max(1, d_model // n_heads), dropout=dropout, name=f"mha_{i}"
        )(x, x)
        attn = keras.layers.Dropout(dropout, name=f"attn_dropout_{i}")(attn)
        x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"attn_norm_{i}")(
            keras.layers.Add(name=f"attn_skip_{i}")([x, attn])
        )
        ff = keras.layers.Dense(ff_dim, activation="relu", name=f"ffn_in_{i}")(x)
        ff = keras.layers.Dense(d_model, name=f"ffn_out_{i}")(ff)
        ff = keras.layers.Dropout(dropout, name=f"ffn_dropout_{i}")(ff)
        x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"ffn_norm_{i}")(
            keras.layers.Add(name=f"ffn_skip_{i}")([x, ff])
        )
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name="transformer_network")


@register_predictor("transformer")
class TransformerPredictor(KerasSequencePredictor):
    """Transformer classifier of a three_class_{h} target (0 sell, 1 hold, 2 buy).

    Defaults: window 50, d_model 64, 4 heads, 2 encoder layers, ff_dim 128,
    dropout 0.1, Adam(learning_rate 1e-3), categorical cross-entropy,
    EarlyStopping(patience 10) and a best-weights checkpoint.
    """

    name = "transformer"
    task: Task = "three_class"
    n_outputs = N_CLASSES

    def __init__(
        self,
        window: int = 50,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        ff_dim: int = 128,
        dropout: float = 0.1,
        learning_rate: float = 1e-3,
        epochs: int = 50,
        batch_size: int = 32,
        patience: int = 10,
        warm_epochs: int | None = None,
        warm_patience: int | None = None,
        validation_fraction: float = 0.2,
        validation_gap: int | str = "auto",
        seed: int = 42,
        n_threads: int | None = None,
        jit_compile: bool = True,
        on_missing: str = "error",
        verbose: int = 0,
    ) -> None:
        self.window = window
        self.d_model = int(d_model)
        self.n_heads = int(n_heads)
        self.n_layers = int(n_layers)
        self.ff_dim = int(ff_dim)
        self.dropout = float(dropout)
        if min(self.d_model, self.n_heads, self.n_layers, self.ff_dim) < 1:
            raise ConfigError(
                "d_model, n_heads, n_layers and ff_dim must be positive",
                fix="e.g. d_model=64, n_heads=4, n_layers=2, ff_dim=128",
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}", fix="e.g. dropout=0.1")
        self.learning_rate = float(learning_rate)
        self.class_counts_: list[int] = []
        self.class_mean_returns_: np.ndarray | None = None
        self._fit_returns: np.ndarray | None = None
        self._init_common(locals())

    def _build_model(self, n_features: int, steps_per_epoch: int) -> Any:
        keras = import_keras()
        model = build_transformer_network(
            self.window,
            n_features,
            d_model=self.d_model,
            n_heads=self.n_heads,
            n_layers=self.n_layers,
            ff_dim=self.ff_dim,
            dropout=self.dropout,
        )
        model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series,
        *,
        validation: tuple[pd.DataFrame, pd.Series] | None = None,
        returns: pd.Series | np.ndarray | None = None,
    ) -> TransformerPredictor:
        """Fit on three-class labels; `returns` (forward returns aligned with X) enables expected_return."""
        if returns is not None:
            arr = np.asarray(pd.to_numeric(pd.Series(np.asarray(returns)), errors="coerce"))
            if len(arr) != len(X):
                raise DataError(
                    f"returns has {len(arr)} rows but X has {len(X)}",
                    fix="pass the forward-return column of the same frame",
                )
            self._fit_returns = arr.astype(np.float64)
        else:
            self._fit_returns = None
        try:
            return super().fit(X, y, validation=validation)
        finally:
            self._fit_returns = None

    def _encode_targets(self, y: Any, values: np.ndarray, index: pd.Index) -> np.ndarray:
        y = target_series(y, index, self.task)
        values = pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isfinite(values) & ~np.isin(values, (0.0, 1.0, 2.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"label {values[i]!r} is not a three-class label (expected 0 sell, 1 hold, 2 buy)",
                row=i,
                timestamp=y.index[i] if len(y.index) else None,
                column=None if y.name is None else str(y.name),
                fix="train on a three_class_* target",
            )
        return np.where(np.isfinite(values), values, np.nan)

    def _check_labels(self, y_fit: np.ndarray, column: Any) -> None:
        counts = np.bincount(y_fit.astype(np.int64), minlength=N_CLASSES)
        if (counts > 0).sum() < 2:
            raise DataError(
                f"training labels contain a single class (counts {counts.tolist()})",
                column=None if column is None else str(column),
                fix="use a longer training window or a target with several outcomes",
            )
        self.class_counts_ = counts.tolist()

    def _keras_targets(self, y: np.ndarray) -> np.ndarray:
        return np.eye(N_CLASSES, dtype=np.float32)[y.astype(np.int64)]

    def _after_fit(
        self,
        fit_rows: np.ndarray,
        y_fit: np.ndarray,
        out_fit: np.ndarray | None,
        val: tuple[np.ndarray, np.ndarray] | None,
    ) -> None:
        self.class_mean_returns_ = None
        if self._fit_returns is None:
            return
        r = self._fit_returns[fit_rows]
        means = np.zeros(N_CLASSES)
        for c in range(N_CLASSES):
            sel = (y_fit == c) & np.isfinite(r)
            # A class never seen in training contributes no expected move.
            means[c] = float(np.mean(r[sel])) if sel.any() else 0.0
        self.class_mean_returns_ = means

    def _outputs_to_prediction(self, out: np.ndarray, n: int, rows: np.ndarray) -> Prediction:
        proba = scatter_rows(n, rows, out.reshape(-1, N_CLASSES))
        known = np.isfinite(proba).all(axis=1)
        signal = np.full(n, np.nan)
        signal[known] = np.argmax(proba[known], axis=1) - 1.0
        expected = None
        if self.class_mean_returns_ is not None:
            expected = proba @ self.class_mean_returns_
        return Prediction(
            signal=signal,
            confidence=proba.max(axis=1),
            proba=proba,
            expected_return=expected,
        )

    def _metrics(self, y: np.ndarray, out: np.ndarray) -> dict[str, Any]:
        counts = np.asarray(self.class_counts_, dtype=np.float64)
        prior = np.tile(counts / counts.sum(), (len(y), 1))
        return {
            "log_loss": categorical_log_loss(y, out),
            "baseline_log_loss": categorical_log_loss(y, prior),
            "accuracy": float(np.mean(np.argmax(out, axis=1) == y)),
        }

    def _state(self) -> dict[str, Any]:
        return {"class_counts": self.class_counts_, "class_mean_returns": self.class_mean_returns_}

    def _restore_state(self, state: dict[str, Any]) -> None:
        self.class_counts_ = list(state.get("class_counts") or [])
        means = state.get("class_mean_returns")
        self.class_mean_returns_ = None if means is None else np.asarray(means, dtype=np.float64)


__all__ = ["TransformerPredictor", "build_transformer_network"]
