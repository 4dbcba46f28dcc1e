"""Feature/target scalers whose fitted state is plain numbers in JSON (never pickle).

Behaviour matches scikit-learn's StandardScaler and MinMaxScaler: NaN is
ignored when fitting and passed through when transforming, constant columns
get scale 1 (so they transform to 0 / feature_range[0] instead of inf), and a
column that is entirely NaN keeps NaN parameters and transforms to NaN.
Fit on training rows only; the saved state is what inference uses.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mlstrat.errors import IntegrityError, SchemaError
from mlstrat.predictors.persistence import dump_json, load_json

SCALERS_FILE = "scalers.json"
_EPS = np.finfo(np.float64).eps


def _as_2d(X: Any) -> tuple[np.ndarray, bool]:
    """Float64 2-D view of X and whether X was 1-D (treated as one column)."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim == 1:
        return arr.reshape(-1, 1), True
    if arr.ndim != 2:
        raise ValueError(f"scalers take 1-D or 2-D arrays, got {arr.ndim}-D")
    return arr, False


def _floats(values: Any) -> np.ndarray:
    """JSON list (nulls for NaN) back to a float64 array."""
    return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)


@dataclass
class _Scaler:
    """Shared plumbing: shape checks, 1-D handling, serialisation."""

    kind: ClassVar[str] = ""
    n_features_in_: int | None = field(default=None, init=False)

    def _fit_stats(self, X: np.ndarray) -> None:
        raise NotImplementedError

    def _forward(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _backward(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit(self, X: Any) -> _Scaler:
        arr, _ = _as_2d(X)
        if arr.shape[0] == 0:
            raise ValueError("cannot fit a scaler on zero rows")
        self.n_features_in_ = arr.shape[1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            self._fit_stats(arr)
        return self

    def _checked(self, X: Any) -> tuple[np.ndarray, bool]:
        if self.n_features_in_ is None:
            raise ValueError(f"{type(self).__name__} is not fitted; call fit() first")
        arr, was_1d = _as_2d(X)
        if arr.shape[1] != self.n_features_in_:
            raise SchemaError(
                f"scaler was fitted on {self.n_features_in_} columns but got {arr.shape[1]}",
                fix="pass the same feature columns, in the same order, as in training",
            )
        return arr, was_1d

    def transform(self, X: Any) -> np.ndarray:
        arr, was_1d = self._checked(X)
        out = self._forward(arr)
        return out.ravel() if was_1d else out

    def inverse_transform(self, X: Any) -> np.ndarray:
        arr, was_1d = self._checked(X)
        out = self._backward(arr)
        return out.ravel() if was_1d else out

    def fit_transform(self, X: Any) -> np.ndarray:
        return self.fit(X).transform(X)

    @property
    def is_fitted(self) -> bool:
        return self.n_features_in_ is not None

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def from_dict(data: dict[str, Any]) -> _Scaler:
        return scaler_from_dict(data)


@dataclass
class StandardScaler(_Scaler):
    """(x - mean) / std per column, population std (ddof=0) like scikit-learn."""

    with_mean: bool = True
    with_std: bool = True
    kind: ClassVar[str] = "standard"

    mean_: np.ndarray | None = field(default=None, init=False, repr=False)
    var_: np.ndarray | None = field(default=None, init=False, repr=False)
    scale_: np.ndarray | None = field(default=None, init=False, repr=False)
    n_samples_seen_: np.ndarray | None = field(default=None, init=False, repr=False)

    def _fit_stats(self, X: np.ndarray) -> None:
        n = np.sum(~np.isnan(X), axis=0)
        mean = np.nanmean(X, axis=0)
        var = np.nanvar(X, axis=0)
        # Same constant-column test as scikit-learn: variance within rounding error of zero.
        constant = var <= n * _EPS * var + (n * mean * _EPS) ** 2
        scale = np.sqrt(var)
        scale[constant] = 1.0
        self.n_samples_seen_ = n.astype(np.int64)
        self.mean_ = mean if self.with_mean else np.zeros_like(mean)
        self.var_ = var
        self.scale_ = scale if self.with_std else np.ones_like(scale)

    def _forward(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_

    def _backward(self, X: np.ndarray) -> np.ndarray:
        return X * self.scale_ + self.mean_

    def to_dict(self) -> dict[str, Any]:
        if not self.is_fitted:
            raise ValueError("StandardScaler is not fitted")
        return {
            "type": self.kind,
            "with_mean": self.with_mean,
            "with_std": self.with_std,
            "n_features_in": self.n_features_in_,
            "mean": self.mean_,
            "var": self.var_,
            "scale": self.scale_,
            "n_samples_seen": self.n_samples_seen_,
        }

    @classmethod
    def _restore(cls, d: dict[str, Any]) -> StandardScaler:
        obj = cls(with_mean=bool(d["with_mean"]), with_std=bool(d["with_std"]))
        obj.n_features_in_ = int(d["n_features_in"])
        obj.mean_ = _floats(d["mean"])
        obj.var_ = _floats(d["var"])
        obj.scale_ = _floats(d["scale"])
        obj.n_samples_seen_ = np.asarray(d["n_samples_seen"], dtype=np.int64)
        return obj


@dataclass
class MinMaxScaler(_Scaler):
    """Linear map of each column's training [min, max] onto `feature_range`."""

    feature_range: tuple[float, float] = (0.0, 1.0)
    clip: bool = False
    kind: ClassVar[str] = "minmax"

    data_min_: np.ndarray | None = field(default=None, init=False, repr=False)
    data_max_: np.ndarray | None = field(default=None, init=False, repr=False)
    data_range_: np.ndarray | None = field(default=None, init=False, repr=False)
    scale_: np.ndarray | None = field(default=None, init=False, repr=False)
    min_: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        lo, hi = self.feature_range
        if not lo < hi:
            raise ValueError(f"feature_range must be (low, high) with low < high, got {lo, hi}")
        self.feature_range = (float(lo), float(hi))

    def _fit_stats(self, X: np.ndarray) -> None:
        lo, hi = self.feature_range
        dmin = np.nanmin(X, axis=0)
        dmax = np.nanmax(X, axis=0)
        drange = dmax - dmin
        denom = drange.copy()
        denom[denom < 10 * _EPS] = 1.0  # constant column: map to `lo`, never divide by ~0
        self.data_min_, self.data_max_, self.data_range_ = dmin, dmax, drange
        self.scale_ = (hi - lo) / denom
        self.min_ = lo - dmin * self.scale_

    def _forward(self, X: np.ndarray) -> np.ndarray:
        out = X * self.scale_ + self.min_
        if self.clip:
            np.clip(out, *self.feature_range, out=out)
        return out

    def _backward(self, X: np.ndarray) -> np.ndarray:
        return (X - self.min_) / self.scale_

    def to_dict(self) -> dict[str, Any]:
        if not self.is_fitted:
            raise ValueError("MinMaxScaler is not fitted")
        return {
            "type": self.kind,
            "feature_range": list(self.feature_range),
            "clip": self.clip,
            "n_features_in": self.n_features_in_,
            "data_min": self.data_min_,
            "data_max": self.data_max_,
            "data_range": self.data_range_,
            "scale": self.scale_,
            "min": self.min_,
        }

    @classmethod
    def _restore(cls, d: dict[str, Any]) -> MinMaxScaler:
        obj = cls(feature_range=tuple(d["feature_range"]), clip=bool(d["clip"]))
        obj.n_features_in_ = int(d["n_features_in"])
        obj.data_min_ = _floats(d["data_min"])
        obj.data_max_ = _floats(d["data_max"])
        obj.data_range_ = _floats(d["data_range"])
        obj.scale_ = _floats(d["scale"])
        obj.min_ = _floats(d["min"])
        return obj


_KINDS: dict[str, type] = {StandardScaler.kind: StandardScaler, MinMaxScaler.kind: MinMaxScaler}

Scaler = StandardScaler | MinMaxScaler


def scaler_from_dict(data: dict[str, Any]) -> Scaler:
    """Rebuild a fitted scaler from `to_dict()` output."""
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in _KINDS:
        raise SchemaError(
            f"unknown scaler type {kind!r}; known: {sorted(_KINDS)}",
            fix="the file was written by a newer mlstrat or edited; retrain the model",
        )
    try:
        return _KINDS[kind]._restore(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaError(
            f"scaler entry of type {kind!r} is incomplete ({exc})",
            fix="retrain the model or restore the directory from a backup",
        ) from exc


def save_scalers(path: str | Path, scalers: dict[str, Scaler]) -> None:
    """Write named fitted scalers to a JSON file (conventionally `scalers.json`)."""
    dump_json(path, {"scalers": {name: s.to_dict() for name, s in scalers.items()}})


def load_scalers(path: str | Path) -> dict[str, Scaler]:
    """Read scalers written by `save_scalers`, keyed by the names they were saved under."""
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("scalers"), dict):
        raise IntegrityError(
            "no 'scalers' table", file=path, fix="retrain the model or restore it from a backup"
        )
    out = {}
    for name, entry in data["scalers"].items():
        try:
            out[name] = scaler_from_dict(entry)
        except SchemaError as exc:
            raise SchemaError(exc.problem, file=path, column=name, fix=exc.fix) from exc
    return out


__all__ = [
    "SCALERS_FILE",
    "MinMaxScaler",
    "Scaler",
    "StandardScaler",
    "load_scalers",
    "save_scalers",
    "scaler_from_dict",
]
