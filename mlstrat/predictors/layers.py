"""Custom Keras layers and losses, registered so saved models load without custom_objects.

Everything is registered under the package name "mlstrat" (serialised as
e.g. "mlstrat>TemporalAttention"). The losses are additionally registered
under their bare historical names (`FocalLoss`, `focal_loss`,
`directional_loss`, `quantile_loss`) so models saved by older code that
referenced them that way can be resolved by a legacy loader.

Importing this module imports Keras; only the Keras adapters import it.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

_PACKAGE = "mlstrat"
_EPS = 1e-7


# --------------------------------------------------------------------------- layers


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TemporalAttention(keras.layers.Layer):
    """Additive (Bahdanau-style) attention pooling over time.

    For hidden states h_t: score_t = v' tanh(W h_t + b), a = softmax_t(score),
    output = sum_t a_t h_t, shape (batch, features). With
    `return_attention=True` the call returns (output, weights).
    """

    def __init__(self, units: int = 32, return_attention: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.return_attention = bool(return_attention)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = int(input_shape[-1])
        self.w = self.add_weight(
            name="w", shape=(dim, self.units), initializer="glorot_uniform", trainable=True
        )
        self.b = self.add_weight(name="b", shape=(self.units,), initializer="zeros")
        self.v = self.add_weight(
            name="v", shape=(self.units, 1), initializer="glorot_uniform", trainable=True
        )
        super().build(input_shape)

    def call(self, inputs: Any) -> Any:
        scores = ops.matmul(ops.tanh(ops.matmul(inputs, self.w) + self.b), self.v)  # (B, T, 1)
        weights = ops.softmax(scores, axis=1)
        context = ops.sum(weights * inputs, axis=1)
        if self.return_attention:
            return context, ops.squeeze(weights, axis=-1)
        return context

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> Any:
        out = (input_shape[0], input_shape[-1])
        if self.return_attention:
            return out, (input_shape[0], input_shape[1])
        return out

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "return_attention": self.return_attention,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PositionalEncoding(keras.layers.Layer):
    """Adds the fixed sinusoidal position code of Vaswani et al. (2017) to (batch, time, d) inputs.

    PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(t / 10000^(2i/d)).
    No trainable weights, so it works for any sequence length.
    """

    def __init__(self, max_wavelength: float = 10000.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_wavelength = float(max_wavelength)

    def call(self, inputs: Any) -> Any:
        length = ops.shape(inputs)[1]
        dim = inputs.shape[-1]
        positions = ops.cast(ops.arange(length), "float32")[:, None]  # (T, 1)
        i = ops.arange(dim)
        even = ops.cast((i // 2) * 2, "float32")
        inv_freq = ops.exp(-math.log(self.max_wavelength) * even / float(dim))  # (d,)
        angles = positions * inv_freq[None, :]
        code = ops.where(i[None, :] % 2 == 0, ops.sin(angles), ops.cos(angles))
        return inputs + ops.cast(code, inputs.dtype)[None, :, :]

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


# --------------------------------------------------------------------------- losses


def _binary_focal(y_true: Any, y_pred: Any, gamma: float, alpha: float) -> Any:
    y_true = ops.cast(y_true, y_pred.dtype)
    y_true = ops.reshape(y_true, ops.shape(y_pred))
    p = ops.clip(y_pred, _EPS, 1.0 - _EPS)
    pos = -alpha * ops.power(1.0 - p, gamma) * y_true * ops.log(p)
    neg = -(1.0 - alpha) * ops.power(p, gamma) * (1.0 - y_true) * ops.log(1.0 - p)
    return ops.mean(pos + neg, axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
def focal_loss(y_true: Any, y_pred: Any, gamma: float = 2.0, alpha: float = 0.25) -> Any:
    """Binary focal loss (Lin et al. 2017) of sigmoid probabilities, per sample.

    -alpha (1-p)^gamma y log p - (1-alpha) p^gamma (1-y) log(1-p), with p
    clipped to [1e-7, 1-1e-7]; alpha weighs the positive class.
    """
    return _binary_focal(y_true, y_pred, gamma, alpha)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FocalLoss(keras.losses.Loss):
    """`focal_loss` as a configurable, serialisable Loss (mean over the batch)."""

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float = 0.25,
        name: str = "focal_loss",
        reduction: str = "sum_over_batch_size",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.gamma = float(gamma)
        self.alpha = float(alpha)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return _binary_focal(y_true, y_pred, self.gamma, self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package=_PACKAGE)
def directional_loss(y_true: Any, y_pred: Any, penalty: float = 2.0) -> Any:
    """Squared error, multiplied by `penalty` where the predicted sign differs from the true sign.

    For return regression where getting the direction wrong costs more than
    getting the size wrong. A zero on either side counts as agreeing.
    """
    y_true = ops.cast(y_true, y_pred.dtype)
    wrong = ops.cast(y_true * y_pred < 0, y_pred.dtype)
    weight = 1.0 + (penalty - 1.0) * wrong
    return ops.mean(weight * ops.square(y_true - y_pred), axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
def quantile_loss(y_true: Any, y_pred: Any, q: float = 0.5) -> Any:
    """Pinball loss of quantile q: mean(max(q e, (q - 1) e)) with e = y_true - y_pred."""
    y_true = ops.cast(y_true, y_pred.dtype)
    err = y_true - y_pred
    return ops.mean(ops.maximum(q * err, (q - 1.0) * err), axis=-1)


#: Bare historical names for a legacy loader (also placed in Keras' global custom objects).
LEGACY_CUSTOM_OBJECTS: dict[str, Any] = {
    "FocalLoss": FocalLoss,
    "focal_loss": focal_loss,
    "directional_loss": directional_loss,
    "quantile_loss": quantile_loss,
    "TemporalAttention": TemporalAttention,
    "PositionalEncoding": PositionalEncoding,
}

_global = keras.saving.get_custom_objects()
for _name, _obj in LEGACY_CUSTOM_OBJECTS.items():
    _global.setdefault(_name, _obj)


__all__ = [
    "LEGACY_CUSTOM_OBJECTS",
    "FocalLoss",
    "PositionalEncoding",
    "TemporalAttention",
    "directional_loss",
    "focal_loss",
    "quantile_loss",
]
