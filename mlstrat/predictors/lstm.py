"""Stacked-LSTM adapters: `lstm`, `lstm_attention` and `lstm_regressor`.

Their defaults are the settings of the crypto trading bot mlstrat was built
to backtest: `lstm` is its first price LSTM, `lstm_attention` the LSTM its
retraining review moved to, `lstm_regressor` its LSTM price regressor (see
docs/architecture.md, "Where the default numbers come from").

All three come from one builder, `build_lstm_network`, with different
arguments; they differ in head, loss and optimizer:

* lstm: LSTM 128/64/32, dropout .3/.3/.2, BatchNorm after the first two LSTM
  layers, L2 1e-3 on kernels, Dense(16) head with dropout .1, sigmoid;
  binary cross-entropy, Adam, accuracy + AUC, EarlyStopping,
  ReduceLROnPlateau, best checkpoint. Window 50 (that first LSTM's lookback).
* lstm_attention: LSTM 128/64/32 all returning sequences, residual
  connections between them, BatchNorm and dropout .3 after each, additive
  attention pooling, sigmoid; focal loss, AdamW with a cosine-decayed
  learning rate. Window 120.
* lstm_regressor: LSTM 64/32, dropout .2, linear output predicting the
  forward return; MSE loss, MAE metric, Adam 1e-3. Window 60.

Probabilities map to signals as in the XGBoost adapter: +1 when P(up) >= 0.5,
otherwise -1; confidence is the larger class probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError, DataError
from mlstrat.predictors.base import Prediction, Task
from mlstrat.predictors.keras_base import (
    KerasSequencePredictor,
    StandardScaler,
    binary_log_loss,
    roc_auc,
    scatter_rows,
    target_series,
    validate_dropout,
)
from mlstrat.predictors.keras_utils import import_keras
from mlstrat.predictors.registry import register_predictor


def build_lstm_network(
    window: int,
    n_features: int,
    *,
    units: Sequence[int],
    dropout: Sequence[float],
    batch_norm_layers: int = 0,
    l2: float = 0.0,
    residual: bool = False,
    attention_units: int | None = None,
    dense_units: int = 0,
    head_dropout: float = 0.0,
    n_outputs: int = 1,
    output_activation: str | None = "sigmoid",
) -> Any:
    """Uncompiled functional model: stacked LSTMs → [attention pooling] → [Dense head] → output.

    batch_norm_layers: the first k LSTM layers are followed by BatchNormalization.
    residual: from the second LSTM layer on, add the layer's input (projected by
    a bias-free Dense when widths differ); needs every layer to return sequences,
    so it requires attention pooling. attention_units: None = the last LSTM
    returns its final state; an int = all LSTMs return sequences and
    `TemporalAttention(attention_units)` pools them.
    """
    keras = import_keras()
    from mlstrat.predictors.layers import TemporalAttention

    if residual and attention_units is None:
        raise ConfigError(
            "residual connections need sequence outputs", fix="set attention_units as well"
        )
    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input(shape=(window, n_features), name="window")
    x = inputs
    for i, (n_units, rate) in enumerate(zip(units, dropout, strict=True)):
        last = i == len(units) - 1
        seq = attention_units is not None or not last
        h = keras.layers.LSTM(
            int(n_units), return_sequences=seq, kernel_regularizer=reg, name=f"lstm_{i}"
        )(x)
        if residual and i > 0:
            skip = x
            if x.shape[-1] != int(n_units):
                skip = keras.layers.Dense(int(n_units), use_bias=False, name=f"skip_{i}")(x)
            h = keras.layers.Add(name=f"residual_{i}")([h, skip])
        if i < batch_norm_layers:
            h = keras.layers.BatchNormalization(name=f"bn_{i}")(h)
        if rate > 0:
            h = keras.layers.Dropout(rate, name=f"dropout_{i}")(h)
        x = h
    if attention_units is not None:
        x = TemporalAttention(int(attention_units), name="attention")(x)
    if dense_units:
        x = keras.layers.Dense(
            int(dense_units), activation="relu", kernel_regularizer=reg, name="head"
        )(x)
        if head_dropout > 0:
            x = keras.layers.Dropout(head_dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(n_outputs, activation=output_activation, name="output")(x)
    return keras.Model(inputs, outputs, name="lstm_network")


def _units(units: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(u) for u in units)
    if not out or any(u < 1 for u in out):
        raise ConfigError(
            f"units must be positive integers, got {units!r}", fix="e.g. (128, 64, 32)"
        )
    return out


def _binary_labels(y: pd.Series) -> np.ndarray:
    values = pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isfinite(values) & ~np.isin(values, (0.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"label {values[i]!r} is not binary (expected 0 or 1)",
            row=i,
            timestamp=y.index[i] if len(y.index) else None,
            column=None if y.name is None else str(y.name),
            fix="train a direction_* (0/1) target, or use lstm_regressor for returns",
        )
    return values


class _LSTMAdapter(KerasSequencePredictor):
    """Layer parameters and network building shared by the three LSTM adapters."""

    def _init_layers(
        self,
        window: int,
        units: Sequence[int],
        dropout: float | Sequence[float],
        batch_norm_layers: int,
        l2: float,
        dense_units: int,
    ) -> None:
        self.window = window
        self.units = _units(units)
        self.dropout = validate_dropout(dropout, len(self.units))
        self.batch_norm_layers = int(batch_norm_layers)
        self.l2 = float(l2)
        self.dense_units = int(dense_units)

    def _network(self, n_features: int, **options: Any) -> Any:
        """`build_lstm_network` with this adapter's layer parameters plus head `options`."""
        return build_lstm_network(
            self.window,
            n_features,
            units=self.units,
            dropout=self.dropout,
            batch_norm_layers=self.batch_norm_layers,
            l2=self.l2,
            dense_units=self.dense_units,
            **options,
        )


class _ReduceLROnPlateau:
    """Mixin: ReduceLROnPlateau(lr_factor, lr_patience, min_lr) on the monitored loss."""

    def _init_plateau(self, lr_patience: int, lr_factor: float, min_lr: float) -> None:
        self.lr_patience = lr_patience
        self.lr_factor = float(lr_factor)
        self.min_lr = float(min_lr)

    def _extra_callbacks(self, keras: Any, monitor: str) -> list[Any]:
        return [
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor,
                mode="min",
                factor=self.lr_factor,
                patience=int(self.lr_patience),
                min_lr=self.min_lr,
            )
        ]


class _BinaryLSTM(_LSTMAdapter):
    """Binary classification plumbing shared by `lstm` and `lstm_attention`."""

    task: Task = "direction"

    def _encode_targets(self, y: Any, values: np.ndarray, index: pd.Index) -> np.ndarray:
        return _binary_labels(target_series(y, index, self.task))

    def _check_labels(self, y_fit: np.ndarray, column: Any) -> None:
        counts = np.bincount(y_fit.astype(np.int64), minlength=2)
        if (counts == 0).any():
            raise DataError(
                f"training labels contain a single class (counts {counts.tolist()})",
                column=None if column is None else str(column),
                fix="use a longer training window or a target with both outcomes",
            )
        self.base_rate_ = float(counts[1] / counts.sum())

    def _outputs_to_prediction(self, out: np.ndarray, n: int, rows: np.ndarray) -> Prediction:
        p_up = scatter_rows(n, rows, out[:, 0])
        known = np.isfinite(p_up)
        signal = np.full(n, np.nan)
        signal[known] = np.where(p_up[known] >= 0.5, 1.0, -1.0)
        return Prediction(
            signal=signal,
            confidence=np.maximum(p_up, 1.0 - p_up),
            proba=np.column_stack([1.0 - p_up, p_up]),
        )

    def _metrics(self, y: np.ndarray, out: np.ndarray) -> dict[str, Any]:
        p = out[:, 0]
        return {
            "log_loss": binary_log_loss(y, p),
            "baseline_log_loss": binary_log_loss(y, np.full(len(y), self.base_rate_)),
            "accuracy": float(np.mean((p >= 0.5) == (y == 1))),
            "auc": roc_auc(y, p),
        }

    def _state(self) -> dict[str, Any]:
        return {"base_rate": self.base_rate_}

    def _restore_state(self, state: dict[str, Any]) -> None:
        self.base_rate_ = state.get("base_rate")


@register_predictor("lstm")
class LSTMPredictor(_ReduceLROnPlateau, _BinaryLSTM):
    """The original bot's first LSTM: classifies a binary target (e.g. direction_1) from a window.

    Defaults: window 50, LSTM (128, 64, 32), dropout (.3, .3, .2),
    BatchNorm after the first two LSTM layers, L2 1e-3, Dense(16) + dropout .1
    head, sigmoid; Adam(learning_rate), binary cross-entropy, accuracy + AUC;
    EarlyStopping(patience, best weights), ReduceLROnPlateau(lr_factor,
    lr_patience, min_lr) and a best-weights checkpoint in a temp directory.
    """

    name = "lstm"

    def __init__(
        self,
        window: int = 50,
        units: Sequence[int] = (128, 64, 32),
        dropout: float | Sequence[float] = (0.3, 0.3, 0.2),
        batch_norm_layers: int = 2,
        l2: float = 1e-3,
        dense_units: int = 16,
        head_dropout: float = 0.1,
        learning_rate: float = 1e-3,
        epochs: int = 50,
        batch_size: int = 32,
        patience: int = 10,
        warm_epochs: int | None = None,
        warm_patience: int | None = None,
        lr_patience: int = 5,
        lr_factor: float = 0.5,
        min_lr: float = 1e-7,
        validation_fraction: float = 0.2,
        validation_gap: int | str = "auto",
        seed: int = 42,
        n_threads: int | None = None,
        jit_compile: bool = True,
        on_missing: str = "error",
        verbose: int = 0,
    ) -> None:
        self._init_layers(window, units, dropout, batch_norm_layers, l2, dense_units)
        self.head_dropout = float(head_dropout)
        self.learning_rate = float(learning_rate)
        self._init_plateau(lr_patience, lr_factor, min_lr)
        self.base_rate_: float | None = None
        self._init_common(locals())

    def _build_model(self, n_features: int, steps_per_epoch: int) -> Any:
        keras = import_keras()
        model = self._network(n_features, head_dropout=self.head_dropout)
        model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss="binary_crossentropy",
            metrics=["accuracy", keras.metrics.AUC(name="auc")],
        )
        return model


@register_predictor("lstm_attention")
class LSTMAttentionPredictor(_BinaryLSTM):
    """The original bot's revised LSTM: residual LSTM stack, attention pooling, focal loss.

    Defaults: window 120, LSTM (128, 64, 32) with residual connections,
    BatchNorm and dropout .3 after each, `TemporalAttention(attention_units)`,
    Dense(16) head, sigmoid; FocalLoss(focal_gamma, focal_alpha) where
    focal_alpha="auto" is the share of negative labels in the fitted rows
    (so the rarer class weighs more, 0.5 when balanced); AdamW(weight_decay)
    with CosineDecay from learning_rate to cosine_alpha x learning_rate over
    all training steps of the fit's epoch budget.
    """

    name = "lstm_attention"

    def __init__(
        self,
        window: int = 120,
        units: Sequence[int] = (128, 64, 32),
        dropout: float | Sequence[float] = 0.3,
        batch_norm_layers: int = 3,
        l2: float = 0.0,
        attention_units: int = 32,
        dense_units: int = 16,
        head_dropout: float = 0.1,
        focal_gamma: float = 2.0,
        focal_alpha: float | str = "auto",
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        cosine_alpha: float = 0.01,
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
        self._init_layers(window, units, dropout, batch_norm_layers, l2, dense_units)
        self.attention_units = int(attention_units)
        self.head_dropout = float(head_dropout)
        self.focal_gamma = float(focal_gamma)
        if not (focal_alpha == "auto" or 0.0 < float(focal_alpha) < 1.0):
            raise ConfigError(
                f"focal_alpha must be 'auto' or in (0, 1), got {focal_alpha!r}",
                fix="use focal_alpha='auto' or e.g. 0.25",
            )
        self.focal_alpha = focal_alpha
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        self.cosine_alpha = float(cosine_alpha)
        self.base_rate_: float | None = None
        self._init_common(locals())

    def _build_model(self, n_features: int, steps_per_epoch: int) -> Any:
        keras = import_keras()
        from mlstrat.predictors.layers import FocalLoss

        model = self._network(
            n_features,
            residual=True,
            attention_units=self.attention_units,
            head_dropout=self.head_dropout,
        )
        alpha = 1.0 - self.base_rate_ if self.focal_alpha == "auto" else float(self.focal_alpha)
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=self.learning_rate,
            decay_steps=max(1, self.fit_budget[0] * steps_per_epoch),
            alpha=self.cosine_alpha,
        )
        model.compile(
            optimizer=keras.optimizers.AdamW(
                learning_rate=schedule, weight_decay=self.weight_decay
            ),
            loss=FocalLoss(gamma=self.focal_gamma, alpha=alpha),
            metrics=["accuracy", keras.metrics.AUC(name="auc")],
        )
        return model


@register_predictor("lstm_regressor")
class LSTMRegressorPredictor(_ReduceLROnPlateau, _LSTMAdapter):
    """The original bot's LSTM regressor of a forward return (e.g. forward_return_1).

    Defaults: window 60, LSTM (64, 32), dropout .2, linear Dense(1); MSE
    loss, MAE metric, Adam 1e-3, EarlyStopping, ReduceLROnPlateau, best
    checkpoint. Inputs and the target are standardised on the fitted rows.

    Prediction: expected_return = the forecast; signal = its sign (0 when
    exactly 0); proba = [1 - p, p] with p = Phi(forecast / sigma), the chance
    that the realised return is positive if forecast errors are Gaussian with
    sigma = the residual RMSE on the validation samples (the fitted samples
    when there is no validation set, which is optimistic); confidence is
    max(p, 1 - p). Validation metrics: mse, mae, rmse and direction_accuracy
    (share of samples where sign(forecast) == sign(realised)).
    """

    name = "lstm_regressor"
    task: Task = "regression"
    needs_fit_outputs = True
    y_scaler_cls = StandardScaler

    def __init__(
        self,
        window: int = 60,
        units: Sequence[int] = (64, 32),
        dropout: float | Sequence[float] = 0.2,
        batch_norm_layers: int = 0,
        l2: float = 0.0,
        dense_units: int = 0,
        learning_rate: float = 1e-3,
        epochs: int = 50,
        batch_size: int = 32,
        patience: int = 10,
        warm_epochs: int | None = None,
        warm_patience: int | None = None,
        lr_patience: int = 5,
        lr_factor: float = 0.5,
        min_lr: float = 1e-7,
        validation_fraction: float = 0.15,
        validation_gap: int | str = "auto",
        seed: int = 42,
        n_threads: int | None = None,
        jit_compile: bool = True,
        on_missing: str = "error",
        verbose: int = 0,
    ) -> None:
        self._init_layers(window, units, dropout, batch_norm_layers, l2, dense_units)
        self.learning_rate = float(learning_rate)
        self._init_plateau(lr_patience, lr_factor, min_lr)
        self.y_scaler_: StandardScaler | None = None
        self.residual_std_: float | None = None
        self._init_common(locals())

    def _build_model(self, n_features: int, steps_per_epoch: int) -> Any:
        keras = import_keras()
        model = self._network(n_features, output_activation=None)
        model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss="mse",
            metrics=[keras.metrics.MeanAbsoluteError(name="mae")],
        )
        return model

    def _encode_targets(self, y: Any, values: np.ndarray, index: pd.Index) -> np.ndarray:
        y = target_series(y, index)
        values = pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return np.where(np.isfinite(values), values, np.nan)

    def _scale_targets(self, y: np.ndarray) -> np.ndarray:
        return self.y_scaler_.transform(y.reshape(-1, 1)).ravel()

    def _forecast(self, out: np.ndarray) -> np.ndarray:
        return self.y_scaler_.inverse_transform(out[:, :1]).ravel()

    def _after_fit(
        self,
        fit_rows: np.ndarray,
        y_fit: np.ndarray,
        out_fit: np.ndarray | None,
        val: tuple[np.ndarray, np.ndarray] | None,
    ) -> None:
        y, out = val if val is not None and len(val[0]) else (y_fit, out_fit)
        resid = y - self._forecast(out)
        self.residual_std_ = float(np.sqrt(np.mean(resid**2)))

    def _outputs_to_prediction(self, out: np.ndarray, n: int, rows: np.ndarray) -> Prediction:
        from scipy.special import ndtr

        forecast = scatter_rows(n, rows, self._forecast(out) if len(out) else np.empty(0))
        sigma = self.residual_std_ if self.residual_std_ and self.residual_std_ > 0 else np.inf
        p_up = ndtr(forecast / sigma)
        return Prediction(
            signal=np.sign(forecast),
            confidence=np.maximum(p_up, 1.0 - p_up),
            proba=np.column_stack([1.0 - p_up, p_up]),
            expected_return=forecast,
        )

    def _metrics(self, y: np.ndarray, out: np.ndarray) -> dict[str, Any]:
        err = y - self._forecast(out)
        mse = float(np.mean(err**2))
        return {
            "mse": mse,
            "mae": float(np.mean(np.abs(err))),
            "rmse": float(np.sqrt(mse)),
            "direction_accuracy": float(np.mean(np.sign(self._forecast(out)) == np.sign(y))),
        }

    def _state(self) -> dict[str, Any]:
        return {"residual_std": self.residual_std_}

    def _restore_state(self, state: dict[str, Any]) -> None:
        self.residual_std_ = state.get("residual_std")


__all__ = [
    "LSTMAttentionPredictor",
    "LSTMPredictor",
    "LSTMRegressorPredictor",
    "build_lstm_network",
]
