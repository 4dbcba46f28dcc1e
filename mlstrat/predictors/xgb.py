"""Gradient-boosted trees (XGBoost) for direction and three-class targets.

Defaults are the settings the crypto trading bot mlstrat was built to
backtest settled on in its retraining review (docs/architecture.md, "Where the
default numbers come from"): 500 trees of depth 8, learning rate 0.05,
row/column subsampling 0.8, L1 0.1 / L2 1.0, class balancing from the
training labels, and early stopping after 50 rounds without improvement on a
validation tail cut from the *end* of the training window (never from data
after it). The model is trained through XGBoost's native API (the same
booster `XGBClassifier` wraps) and saved as UBJSON (`model.ubj`), trimmed to
the best iteration so the saved model is exactly the one that predicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError, DataError, ModelLoadError
from mlstrat.features.targets import encode_labels, horizon_of
from mlstrat.predictors.base import Prediction, Predictor, Task
from mlstrat.predictors.compat import (
    align_features,
    check_gap_and_on_missing,
    check_no_targets,
    feature_matrix,
    row_weights_of,
    training_means,
)
from mlstrat.predictors.persistence import (
    decode_feature_means,
    fitted_metadata,
    read_model_dir,
    restore_fitted_metadata,
    training_data_info,
    write_model_dir,
)
from mlstrat.predictors.registry import register_predictor
from mlstrat.predictors.scoring import categorical_log_loss, roc_auc

if TYPE_CHECKING:  # imported where used: reading a configuration names this class only
    import xgboost as xgb

MODEL_FILE = "model.ubj"
_TASK_CLASSES = {"direction": 2, "three_class": 3}


def balanced_sample_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Weights n / (k * n_c) per row (scikit-learn's "balanced"); absent classes get none."""
    counts = np.bincount(y.astype(np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    per_class = np.zeros(n_classes)
    per_class[present] = len(y) / (present.sum() * counts[present])
    return per_class[y.astype(np.int64)]


@register_predictor("xgboost")
class XGBoostPredictor(Predictor):
    """XGBoost classifier behind the Predictor interface.

    Signals: binary models give +1 when P(up) >= 0.5 and -1 otherwise (no
    hold; confidence thresholds belong to sizing); three-class models give the
    arg-max class mapped sell/hold/buy → -1/0/+1. Confidence is the largest
    class probability. Rows whose features are all NaN predict NaN; other
    NaN features go down XGBoost's learned missing-value branch.

    scale_pos_weight: "auto" (binary: negatives/positives of the fitted rows;
    three-class: balanced sample weights), a number (binary only), or None.
    validation_gap: rows dropped between the fitted part and the validation
    tail so labels that look `h` bars ahead do not overlap the tail; "auto"
    reads `h` from the target name (e.g. direction_24 → 24).
    """

    name = "xgboost"

    def __init__(
        self,
        task: Task = "direction",
        n_estimators: int = 500,
        max_depth: int = 8,
        learning_rate: float = 0.05,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_alpha: float = 0.1,
        reg_lambda: float = 1.0,
        min_child_weight: float = 1.0,
        gamma: float = 0.0,
        scale_pos_weight: float | str | None = "auto",
        early_stopping_rounds: int | None = 50,
        validation_fraction: float = 0.2,
        validation_gap: int | str = "auto",
        tree_method: str = "hist",
        max_bin: int = 256,
        n_jobs: int = 1,
        seed: int = 42,
        on_missing: str = "error",
    ) -> None:
        self.task = task
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_alpha = reg_alpha
        self.reg_lambda = reg_lambda
        self.min_child_weight = min_child_weight
        self.gamma = gamma
        self.scale_pos_weight = scale_pos_weight
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.validation_gap = validation_gap
        self.tree_method = tree_method
        self.max_bin = max_bin
        self.n_jobs = n_jobs
        self.seed = seed
        self.on_missing = on_missing
        self._validate_params()
        self.window = 1
        self.feature_names: list[str] = []
        self.booster_: xgb.Booster | None = None
        self.feature_means_: dict[str, float] = {}
        self.best_iteration_: int | None = None
        self.history_: dict[str, dict[str, list[float]]] = {}
        self.validation_metrics_: dict[str, Any] = {}
        self.fit_info_: dict[str, Any] = {}

    # ------------------------------------------------------------------ params

    def _validate_params(self) -> None:
        if self.task not in _TASK_CLASSES:
            raise ConfigError(
                f"xgboost task must be one of {sorted(_TASK_CLASSES)}, got {self.task!r}",
                fix="use task='direction' (binary) or task='three_class'",
            )
        if not 0.0 <= float(self.validation_fraction) < 1.0:
            raise ConfigError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}",
                fix="e.g. validation_fraction=0.2 (the last 20% of the training window)",
            )
        spw = self.scale_pos_weight
        if isinstance(spw, str) and spw != "auto":
            raise ConfigError(
                f"scale_pos_weight must be 'auto', a number or None, got {spw!r}",
                fix="use scale_pos_weight='auto'",
            )
        if self.task == "three_class" and spw not in ("auto", None, 1, 1.0):
            raise ConfigError(
                "scale_pos_weight is a binary-only setting",
                fix="for three_class use scale_pos_weight='auto' (balanced weights) or None",
            )
        check_gap_and_on_missing(self.validation_gap, self.on_missing)

    @property
    def n_classes(self) -> int:
        return _TASK_CLASSES[self.task]

    def _booster_params(self, scale_pos_weight: float) -> dict[str, Any]:
        params: dict[str, Any] = {
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "reg_alpha": self.reg_alpha,
            "reg_lambda": self.reg_lambda,
            "min_child_weight": self.min_child_weight,
            "gamma": self.gamma,
            "tree_method": self.tree_method,
            "max_bin": self.max_bin,
            "nthread": self.n_jobs,
            "seed": self.seed,
            "verbosity": 0,
        }
        if self.task == "direction":
            # The last metric drives early stopping: log loss.
            params.update(
                objective="binary:logistic",
                eval_metric=["auc", "logloss"],
                scale_pos_weight=scale_pos_weight,
            )
        else:
            params.update(
                objective="multi:softprob", num_class=3, eval_metric=["merror", "mlogloss"]
            )
        return params

    # ------------------------------------------------------------------ data

    def _labels(self, y: pd.Series) -> np.ndarray:
        """Class labels as floats (NaN unknown); event labels (-1/0/+1) coded for the task."""
        y = encode_labels(y, self.task)
        values = pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        known = ~np.isnan(values)
        allowed = np.arange(self.n_classes, dtype=np.float64)
        bad = known & ~np.isin(values, allowed)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"label {values[i]!r} is not a {self.task} class "
                f"(expected {', '.join(str(int(a)) for a in allowed)})",
                row=i,
                timestamp=y.index[i] if len(y.index) else None,
                column=None if y.name is None else str(y.name),
                fix="train a direction_* target with task='direction' or a three_class_* "
                "target with task='three_class'",
            )
        return values

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        arr = feature_matrix(X, dtype=np.float32)
        inf = np.isinf(arr)
        if inf.any():
            row, col = (int(v[0]) for v in np.nonzero(inf))
            raise DataError(
                "feature value is infinite",
                row=row,
                timestamp=X.index[row],
                column=str(X.columns[col]),
                fix="replace inf with NaN (XGBoost routes NaN down its missing-value branch)",
            )
        return arr

    def _dmatrix(self, arr: np.ndarray, label=None, weight=None) -> xgb.DMatrix:
        import xgboost as xgb

        # Internal names f0..fN: XGBoost rejects some characters ([, ], <) in names.
        return xgb.DMatrix(
            arr,
            label=label,
            weight=weight,
            missing=np.nan,
            feature_names=[f"f{i}" for i in range(arr.shape[1])],
            nthread=self.n_jobs,
        )

    def _gap(self, y: pd.Series) -> int:
        if self.validation_gap != "auto":
            return int(self.validation_gap)
        return horizon_of(y.name, default=0)

    def _split(
        self, X: pd.DataFrame, y: pd.Series, validation: tuple[pd.DataFrame, pd.Series] | None
    ) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame | None, pd.Series | None]:
        if validation is not None:
            Xv, yv = validation
            return X, y, Xv, yv
        if not self.early_stopping_rounds or self.validation_fraction <= 0:
            return X, y, None, None
        n = len(X)
        n_val = int(round(n * self.validation_fraction))
        gap = self._gap(y)
        n_fit = n - n_val - gap
        if n_val < 2 or n_fit < 2:
            raise DataError(
                f"{n} labelled rows are too few for a validation tail of "
                f"{self.validation_fraction:.0%} plus a {gap}-row gap",
                fix="give more training rows, lower validation_fraction, or set "
                "early_stopping_rounds=None",
            )
        return X.iloc[:n_fit], y.iloc[:n_fit], X.iloc[n - n_val :], y.iloc[n - n_val :]

    # ------------------------------------------------------------------ fit / predict

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series,
        *,
        validation: tuple[pd.DataFrame, pd.Series] | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> XGBoostPredictor:
        """Fit on rows with a known label; early-stop on `validation` or the training tail.

        sample_weight: one non-negative weight per row of X (e.g. uniqueness weights of
        overlapping labels), multiplied into the class balancing; unweighted when None.
        """
        if len(X) != len(y):
            raise DataError(f"X has {len(X)} rows but y has {len(y)}", fix="align X and y")
        feature_names = [str(c) for c in X.columns]
        check_no_targets(feature_names, X)
        y = pd.Series(np.asarray(y), index=X.index, name=getattr(y, "name", None))
        labels = self._labels(y)
        keep = ~np.isnan(labels)
        row_weights = None if sample_weight is None else row_weights_of(sample_weight, len(X))[keep]
        X, y = X.loc[keep], pd.Series(labels[keep], index=X.index[keep], name=y.name)
        X_fit, y_fit, X_val, y_val = self._split(X, y, validation)
        if row_weights is not None:
            row_weights = row_weights[: len(X_fit)]

        y_fit_arr = self._labels(y_fit)
        counts = np.bincount(y_fit_arr.astype(np.int64), minlength=self.n_classes)
        if (counts > 0).sum() < 2:
            raise DataError(
                f"training labels contain a single class (counts {counts.tolist()})",
                column=None if y.name is None else str(y.name),
                fix="use a longer training window or a target with both outcomes",
            )
        spw, weights = 1.0, None
        if self.task == "direction" and self.scale_pos_weight == "auto":
            spw = float(counts[0] / counts[1]) if counts[1] else 1.0
        elif self.task == "direction" and self.scale_pos_weight is not None:
            spw = float(self.scale_pos_weight)
        elif self.task == "three_class" and self.scale_pos_weight == "auto":
            weights = balanced_sample_weights(y_fit_arr, 3)
        if row_weights is not None:
            weights = row_weights if weights is None else weights * row_weights

        self.feature_names = feature_names
        X_fit_arr = self._matrix(X_fit)
        dtrain = self._dmatrix(X_fit_arr, label=y_fit_arr, weight=weights)
        evals = [(dtrain, "train")]
        y_val_arr = None
        if X_val is not None:
            X_val = align_features(X_val, feature_names)
            name = getattr(y_val, "name", None)
            y_val_arr = self._labels(pd.Series(np.asarray(y_val), index=X_val.index, name=name))
            known = ~np.isnan(y_val_arr)
            X_val, y_val_arr = X_val.loc[known], y_val_arr[known]
            evals.append((self._dmatrix(self._matrix(X_val), label=y_val_arr), "validation"))

        history: dict[str, dict[str, list[float]]] = {}
        use_es = len(evals) > 1 and bool(self.early_stopping_rounds)
        import xgboost as xgb

        booster = xgb.train(
            self._booster_params(spw),
            dtrain,
            num_boost_round=int(self.n_estimators),
            evals=evals,
            early_stopping_rounds=int(self.early_stopping_rounds) if use_es else None,
            evals_result=history,
            verbose_eval=False,
        )
        best = booster.best_iteration if use_es else booster.num_boosted_rounds() - 1
        self.booster_ = booster[: best + 1]
        self.best_iteration_ = int(best)
        self.history_ = {
            split: {metric: [float(v) for v in values] for metric, values in metrics.items()}
            for split, metrics in history.items()
        }
        self.feature_means_ = training_means(feature_names, X_fit_arr)
        self.validation_metrics_ = {}
        if X_val is not None and len(y_val_arr):
            proba = self._proba(self._matrix(X_val))
            self.validation_metrics_ = self._metrics(y_val_arr, proba)
        self.fit_info_ = {
            **training_data_info(X, y),
            "n_fit_rows": len(X_fit),
            "n_validation_rows": 0 if X_val is None else len(X_val),
            "validation_source": "given" if validation is not None else "training tail",
            "class_counts": counts.tolist(),
            "scale_pos_weight_used": spw if self.task == "direction" else None,
        }
        return self

    def _metrics(self, y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
        metrics: dict[str, Any] = {
            "n_rows": len(y),
            "log_loss": categorical_log_loss(y, proba),
            "accuracy": float(np.mean(np.argmax(proba, axis=1) == y)),
        }
        if self.task == "direction":
            metrics["auc"] = roc_auc(y, proba[:, 1])
        return metrics

    def _check_fitted(self) -> None:
        if self.booster_ is None:
            raise ModelLoadError(
                "xgboost predictor is not fitted", fix="call fit() or load a saved model first"
            )

    def _proba(self, arr: np.ndarray) -> np.ndarray:
        raw = self.booster_.predict(self._dmatrix(arr))
        if self.task == "direction":
            raw = raw.astype(np.float64)
            return np.column_stack([1.0 - raw, raw])
        return raw.astype(np.float64)

    def predict(self, X: pd.DataFrame) -> Prediction:
        """Class probabilities, signal and confidence for every row of X."""
        self._check_fitted()
        aligned = align_features(
            X, self.feature_names, on_missing=self.on_missing, means=self.feature_means_
        )
        arr = self._matrix(aligned)
        proba = self._proba(arr)
        if self.task == "direction":
            signal = np.where(proba[:, 1] >= 0.5, 1.0, -1.0)
        else:
            signal = np.argmax(proba, axis=1).astype(np.float64) - 1.0
        confidence = proba.max(axis=1)
        empty = np.isnan(arr).all(axis=1)
        if empty.any():
            proba[empty] = np.nan
            signal[empty] = np.nan
            confidence[empty] = np.nan
        return Prediction(signal=signal, confidence=confidence, proba=proba)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n, k) class probabilities, scikit-learn style."""
        return self.predict(X).proba

    def feature_importance(self, importance_type: str = "gain") -> dict[str, float]:
        """Importance per training feature (0.0 for features no split used), largest first."""
        self._check_fitted()
        raw = self.booster_.get_score(importance_type=importance_type)
        scores = {name: float(raw.get(f"f{i}", 0.0)) for i, name in enumerate(self.feature_names)}
        return dict(sorted(scores.items(), key=lambda kv: -kv[1]))

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> None:
        """Write model.ubj + metadata.json + manifest.json atomically to directory `path`."""
        self._check_fitted()
        metadata = {
            **fitted_metadata(self, MODEL_FILE),
            "best_iteration": self.best_iteration_,
            "n_trees": self.booster_.num_boosted_rounds(),
        }
        with write_model_dir(path, metadata) as tmp:
            self.booster_.save_model(str(tmp / MODEL_FILE))

    @classmethod
    def load(cls, path: str | Path) -> XGBoostPredictor:
        """Verify the directory against its manifest and restore the predictor."""
        path = Path(path)
        meta = read_model_dir(path, predictor=cls.name)
        import xgboost as xgb

        try:
            obj = cls(**meta["params"])
            booster = xgb.Booster()
            booster.load_model(str(path / meta.get("model_file", MODEL_FILE)))
        except (KeyError, TypeError, xgb.core.XGBoostError) as exc:
            raise ModelLoadError(
                f"could not restore the xgboost model ({exc})",
                file=path,
                fix="retrain the model or restore the directory from a backup",
            ) from exc
        obj.booster_ = booster
        restore_fitted_metadata(obj, meta)
        obj.feature_means_ = decode_feature_means(meta["feature_means"])
        obj.best_iteration_ = meta.get("best_iteration")
        return obj
