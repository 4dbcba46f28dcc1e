"""Shared fit / predict / save / load of the window-based Keras adapters.

An adapter supplies its network builder and the mapping from targets to
model outputs and from outputs to a Prediction; this class does the rest the
same way for all of them:

* windows are read from the 2-D feature frame, never copied out as an
  N x window x features array: training gathers each batch's windows inside a
  `tf.data` pipeline (`keras_utils.window_dataset`, reshuffled every epoch from
  `seed`), prediction chunk by chunk; the sample for row t is the `window` rows
  ending at t and the target at t; rows before the first full window, or whose
  window holds a NaN/inf, get NaN;
* the validation set is `validation` when given, else the time-ordered tail
  (`validation_fraction` of the samples) after a `validation_gap` so labels
  that look ahead do not overlap it; scalers see the fitted rows only;
* training is seeded (`seed`, op determinism) with EarlyStopping (best
  weights restored) and a best-weights checkpoint in a temporary directory,
  both following the validation loss without the L2 weight penalty
  (`keras_utils.VAL_DATA_LOSS`; the training loss when there is no validation);
  `warm_start_from(previous)` starts the next fit from an earlier fold's
  weights with the smaller `warm_epochs` / `warm_patience` budget;
* `predict` runs the compiled batched function, `predict_one` the fixed-shape
  (XLA) one, never `model.predict`;
* `save` writes model.keras + scalers.json + metadata.json + manifest.json
  atomically; `load` verifies the manifest and loads with safe_mode=True.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError, DataError, ModelLoadError
from mlstrat.features.targets import encode_labels, horizon_of
from mlstrat.predictors.base import Prediction, Predictor
from mlstrat.predictors.compat import (
    align_features,
    check_gap_and_on_missing,
    check_no_targets,
    feature_matrix,
    row_weights_of,
    training_means,
)
from mlstrat.predictors.keras_utils import (
    VAL_DATA_LOSS,
    CompiledInference,
    WindowSet,
    data_loss_logger,
    epoch_timer,
    import_keras,
    import_tf,
    set_seed,
    window_ready,
)
from mlstrat.predictors.persistence import (
    decode_feature_means,
    fitted_metadata,
    open_model_dir,
    restore_fitted_metadata,
    training_data_info,
    write_model_dir,
)
from mlstrat.predictors.scaling import (
    SCALERS_FILE,
    MinMaxScaler,
    StandardScaler,
    load_scalers,
    save_scalers,
)
from mlstrat.predictors.scoring import binary_log_loss, categorical_log_loss, roc_auc

MODEL_FILE = "model.keras"
#: Batch size of the validation pass (forward only, so larger batches only save time).
VALIDATION_BATCH = 1024
_RESTORE_FIX = "retrain the model or restore the directory from a backup"
#: Constructor parameters every adapter takes and `_init_common` stores unchanged.
TRAINING_PARAMS: tuple[str, ...] = (
    "epochs",
    "batch_size",
    "patience",
    "validation_fraction",
    "validation_gap",
    "warm_epochs",
    "warm_patience",
    "seed",
    "n_threads",
    "jit_compile",
    "on_missing",
    "verbose",
)


# --------------------------------------------------------------------------- helpers


def scatter_rows(n: int, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Length-n float array (or n x k) holding `values` at `rows` and NaN elsewhere."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full((n, *values.shape[1:]), np.nan)
    out[rows] = values
    return out


# --------------------------------------------------------------------------- base class


class KerasSequencePredictor(Predictor):
    """Base of the Keras adapters; subclasses set hyperparameters and the hooks below.

    Constructor parameters shared by every subclass (stored under these names):
    window, epochs, batch_size, learning_rate, patience, validation_fraction,
    validation_gap ("auto" = horizon read from the target name, e.g.
    direction_24 -> 24), warm_epochs / warm_patience (the budget of a fit
    started by `warm_start_from`; None = a fifth of epochs, a third of
    patience), seed, n_threads (TensorFlow threads; None = env
    MLSTRAT_TF_THREADS or all cores), jit_compile (XLA for predict and
    predict_one; training runs without XLA, which measured 2-3x slower for
    these recurrent models on CPU), on_missing (feature alignment policy), verbose.
    """

    name: ClassVar[str] = "keras_sequence"
    #: Number of model outputs per sample.
    n_outputs: ClassVar[int] = 1
    #: Scaler class for the inputs.
    x_scaler_cls: ClassVar[type] = StandardScaler
    #: Scaler class for the targets (regressors), fitted on the fitted samples; None = unscaled.
    y_scaler_cls: ClassVar[type | None] = None
    #: Whether `_after_fit` needs the model's outputs on the fitted samples (one extra pass).
    needs_fit_outputs: ClassVar[bool] = False

    window: int
    epochs: int
    batch_size: int
    patience: int
    validation_fraction: float
    validation_gap: int | str
    seed: int
    n_threads: int | None
    jit_compile: bool
    on_missing: str
    verbose: int

    # ------------------------------------------------------------------ params

    def _init_common(self, params: Mapping[str, Any]) -> None:
        """Store, validate the shared parameters and reset fitted state (end of __init__).

        `params` is the subclass __init__'s `locals()`; the TRAINING_PARAMS are
        taken from it as given. `window` must already be set.
        """
        for key in TRAINING_PARAMS:
            setattr(self, key, params[key])
        if int(self.window) < 1:
            raise ConfigError(f"window must be >= 1, got {self.window}", fix="e.g. window=50")
        if not 0.0 <= float(self.validation_fraction) < 1.0:
            raise ConfigError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}",
                fix="e.g. validation_fraction=0.2 (the last 20% of the training samples)",
            )
        check_gap_and_on_missing(self.validation_gap, self.on_missing)
        for key in ("epochs", "batch_size", "warm_epochs", "warm_patience"):
            value = getattr(self, key)
            if value is not None and int(value) < 1:
                raise ConfigError(f"{key} must be >= 1, got {value}", param=key)
        self.window = int(self.window)
        self.feature_names: list[str] = []
        self.model_: Any = None
        self.x_scaler_: Any = None
        self.feature_means_: dict[str, float] = {}
        self.history_: dict[str, list[float]] = {}
        self.validation_metrics_: dict[str, Any] = {}
        self.fit_info_: dict[str, Any] = {}
        #: wall seconds of the last fit: "setup" (inputs, scalers, datasets) before the first
        #: epoch, each epoch (the first includes tracing) and its validation part; not saved
        self.fit_timing_: dict[str, Any] = {}
        self._warm_weights: list[np.ndarray] | None = None
        self._inference: CompiledInference | None = None

    # ------------------------------------------------------------------ subclass hooks

    def _build_model(self, n_features: int, steps_per_epoch: int) -> Any:
        """Return a compiled Keras model taking (window, n_features) inputs."""
        raise NotImplementedError

    def _encode_targets(self, y: Any, values: np.ndarray, index: pd.Index) -> np.ndarray:
        """Targets as float (n,) or (n, k) before target scaling, NaN = unknown.

        `y` is what the caller passed to fit (aligned with the rows of `values`,
        the raw model inputs, indexed by `index`).
        """
        raise NotImplementedError

    def _fit_target_scaler(self, y_fit: np.ndarray) -> None:
        """Fit `y_scaler_cls` on the fitted samples' targets (regressors only)."""
        if self.y_scaler_cls is not None:
            self.y_scaler_ = self.y_scaler_cls().fit(y_fit.reshape(-1, 1))

    def _scale_targets(self, y: np.ndarray) -> np.ndarray:
        return y

    def _keras_targets(self, y: np.ndarray) -> np.ndarray:
        """Model-ready float32 targets from encoded, scaled targets (e.g. one-hot)."""
        return y.astype(np.float32)

    def _extra_callbacks(self, keras: Any, monitor: str) -> list[Any]:
        return []

    def _outputs_to_prediction(self, out: np.ndarray, n: int, rows: np.ndarray) -> Prediction:
        """Turn raw model outputs for `rows` into a length-n Prediction (NaN elsewhere)."""
        raise NotImplementedError

    def _metrics(self, y: np.ndarray, out: np.ndarray) -> dict[str, Any]:
        """Validation metrics from encoded targets and raw outputs."""
        return {}

    def _after_fit(
        self,
        fit_rows: np.ndarray,
        y_fit: np.ndarray,
        out_fit: np.ndarray | None,
        val: tuple[np.ndarray, np.ndarray] | None,
    ) -> None:
        """Learn post-fit state (calibration etc.) from the fitted samples (row positions, encoded
        targets, outputs when `needs_fit_outputs`) and the validation (targets, outputs) if any."""

    def _state(self) -> dict[str, Any]:
        """Extra fitted state stored in metadata.json."""
        return {}

    def _restore_state(self, state: dict[str, Any]) -> None:
        pass

    @property
    def steps(self) -> int:
        """Time steps of one model input (equals `window` unless inputs are derived from more rows)."""
        return self.window

    def _one_inputs(self, rows: np.ndarray) -> np.ndarray:
        """Model inputs (steps, n_inputs) from the last `window` raw feature rows (predict_one)."""
        return rows

    def _scalers(self) -> dict[str, Any]:
        if self.y_scaler_cls is None:
            return {"x": self.x_scaler_}
        return {"x": self.x_scaler_, "y": self.y_scaler_}

    def _restore_scalers(self, scalers: dict[str, Any]) -> None:
        self.x_scaler_ = scalers["x"]
        if self.y_scaler_cls is not None:
            self.y_scaler_ = scalers["y"]

    # ------------------------------------------------------------------ inputs

    def _inputs(self, X: pd.DataFrame, *, fitting: bool) -> np.ndarray:
        """Raw float64 (n, n_features) model inputs; inf becomes NaN (so those rows predict NaN)."""
        if fitting:
            if not isinstance(X, pd.DataFrame):
                raise DataError(
                    f"features must be a pandas DataFrame, got {type(X).__name__}",
                    fix="pass a DataFrame of feature columns",
                )
            names = [str(c) for c in X.columns]
            check_no_targets(names, X)
            values = feature_matrix(X)
            self.feature_names = names
        else:
            aligned = align_features(
                X, self.feature_names, on_missing=self.on_missing, means=self.feature_means_
            )
            values = feature_matrix(aligned)
        values = np.array(values, dtype=np.float64)
        values[~np.isfinite(values)] = np.nan
        return values

    def _gap(self, y: Any) -> int:
        if self.validation_gap != "auto":
            return int(self.validation_gap)
        return horizon_of(getattr(y, "name", None), default=0)

    @staticmethod
    def _follows(X: pd.DataFrame, Xv: pd.DataFrame) -> bool:
        """True when Xv starts strictly after X ends (so X's tail can give Xv's windows context)."""
        try:
            return len(X) > 0 and len(Xv) > 0 and Xv.index[0] > X.index[-1]
        except TypeError:
            return False

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        X: pd.DataFrame,
        y: Any,
        *,
        validation: tuple[pd.DataFrame, Any] | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> KerasSequencePredictor:
        """Fit on every row whose window and target are known (see the module docstring).

        sample_weight: one non-negative weight per row of X, given to Keras for the fitted
        samples (e.g. uniqueness weights of overlapping labels); unweighted when None.
        """
        started = time.perf_counter()
        import_tf(self.n_threads)
        if y is not None and len(X) != len(y):
            raise DataError(f"X has {len(X)} rows but y has {len(y)}", fix="align X and y")
        weights = None if sample_weight is None else row_weights_of(sample_weight, len(X))
        values = self._inputs(X, fitting=True)
        empty = np.flatnonzero(np.isnan(values).all(axis=0)) if len(values) else []
        if len(empty):
            name = self.feature_names[empty[0]] if len(self.feature_names) > empty[0] else None
            raise DataError(
                "model input has no finite value in the training rows",
                column=name,
                fix="drop the column or train on rows where it is defined",
            )
        y_enc = self._encode_targets(y, values, X.index)
        y2 = y_enc.reshape(len(y_enc), -1)
        samples = np.flatnonzero(window_ready(values, self.steps) & np.isfinite(y2).all(axis=1))

        val_values = val_rows = yv_enc = None
        if validation is not None:
            Xv, yv = validation
            if yv is not None and len(Xv) != len(yv):
                raise DataError(
                    f"validation X has {len(Xv)} rows but its y has {len(yv)}",
                    fix="align the validation features and target",
                )
            if self._follows(X, Xv):
                both = pd.concat([X, Xv.reindex(columns=X.columns)])
                val_values = self._inputs(both, fitting=False)
                y_both = None
                if y is not None and yv is not None:
                    y_both = pd.concat([_as_pandas(y, X.index), _as_pandas(yv, Xv.index)])
                yv_enc = self._encode_targets(y_both, val_values, both.index)
                offset = len(X)
            else:
                val_values = self._inputs(Xv, fitting=False)
                yv_enc = self._encode_targets(yv, val_values, Xv.index)
                offset = 0
            yv2 = yv_enc.reshape(len(yv_enc), -1)
            ok = window_ready(val_values, self.steps) & np.isfinite(yv2).all(axis=1)
            val_rows = np.flatnonzero(ok)
            val_rows = val_rows[val_rows >= offset]
            fit_rows = samples
        elif self.validation_fraction > 0:
            n_val = int(round(len(samples) * self.validation_fraction))
            n_fit = len(samples) - n_val - self._gap(y)
            if n_val < 1 or n_fit < 1:
                raise DataError(
                    f"{len(samples)} complete windows with known targets are too few for a "
                    f"{self.validation_fraction:.0%} validation tail plus a {self._gap(y)}-row gap",
                    fix="give more rows, use a shorter window, or set validation_fraction=0",
                )
            fit_rows, val_rows = samples[:n_fit], samples[len(samples) - n_val :]
            val_values, yv_enc = values, y_enc
        else:
            fit_rows = samples
        if len(fit_rows) < 2:
            raise DataError(
                f"only {len(fit_rows)} training windows of {self.window} rows with finite features "
                "and a known target",
                fix="give more rows, use a shorter window, or drop features that are mostly NaN",
            )
        self._check_labels(y_enc[fit_rows], getattr(y, "name", None))

        # Scalers see only the rows up to the last fitted window's end.
        fitted_part = values[: fit_rows[-1] + 1]
        self.x_scaler_ = self.x_scaler_cls().fit(fitted_part)
        self.feature_means_ = training_means(self.feature_names, fitted_part)
        self._fit_target_scaler(y_enc[fit_rows])
        scaled = self.x_scaler_.transform(values).astype(np.float32)
        train = WindowSet(
            scaled,
            fit_rows,
            self._keras_targets(self._scale_targets(y_enc[fit_rows])),
            None if weights is None else weights[fit_rows].astype(np.float32),
        )
        val_set = None
        if val_rows is not None and len(val_rows):
            val_scaled = (
                scaled
                if val_values is values
                else self.x_scaler_.transform(val_values).astype(np.float32)
            )
            val_set = WindowSet(
                val_scaled, val_rows, self._keras_targets(self._scale_targets(yv_enc[val_rows]))
            )

        warm = self._warm_weights is not None
        try:
            self.model_ = self._train(train, val_set)
        finally:
            self._warm_weights = None
        self.fit_timing_["setup"] = round(self.fit_timing_.pop("began") - started, 3)
        self._inference = None
        out_fit = (
            self._compiled().predict_rows(scaled, fit_rows) if self.needs_fit_outputs else None
        )
        val = None
        if val_set is not None:
            val = (yv_enc[val_rows], self._compiled().predict_rows(val_set.values, val_rows))
        self._after_fit(fit_rows, y_enc[fit_rows], out_fit, val)
        self.validation_metrics_ = {}
        if val is not None:
            self.validation_metrics_ = {"n_rows": len(val_rows), **self._metrics(*val)}
        self.fit_info_ = {
            **training_data_info(X, y),
            "n_fit_samples": len(fit_rows),
            "n_validation_samples": 0 if val_rows is None else len(val_rows),
            "validation_source": "given" if validation is not None else "training tail",
            "epochs_trained": len(self.history_.get("loss", [])),
            "warm_started": warm,
        }
        return self

    def _check_labels(self, y_fit: np.ndarray, column: Any) -> None:
        """Subclass hook: reject labels outside the task's classes."""

    @property
    def fit_budget(self) -> tuple[int, int]:
        """(epochs, patience) of the next fit: `warm_epochs`/`warm_patience` when warm-started
        (None: a fifth of `epochs`, a third of `patience`, at least 1), else `epochs`/`patience`."""
        if self._warm_weights is None:
            return int(self.epochs), int(self.patience)
        epochs = self.warm_epochs if self.warm_epochs is not None else int(self.epochs) // 5
        patience = self.warm_patience if self.warm_patience is not None else self.patience // 3
        return max(1, int(epochs)), max(1, int(patience))

    #: `warm_start_from` is supported (walk-forward's `warm_start` checks this).
    can_warm_start: ClassVar[bool] = True

    def warm_start_from(self, previous: Predictor) -> None:
        """Start the next `fit` from `previous`'s fitted weights with the warm epoch budget.

        Continual learning across walk-forward folds: `previous` is the model of an
        earlier fold (same class, features and layer sizes); scalers are still
        refitted on the new fold's rows and the optimizer starts fresh. One-shot:
        the fit after that one starts cold again unless this is called again.
        """
        if type(previous) is not type(self) or getattr(previous, "model_", None) is None:
            raise ConfigError(
                f"cannot warm-start {self.name} from {type(previous).__name__} "
                f"({'unfitted' if getattr(previous, 'model_', None) is None else 'another class'})",
                param="warm_start",
                fix="warm-start from a fitted model of the same predictor, or set warm_start: false",
            )
        self._warm_weights = [np.array(w) for w in previous.model_.get_weights()]

    def _set_warm_weights(self, model: Any) -> None:
        """Copy the warm-start weights into the freshly built `model` (shapes must match)."""
        shapes = [tuple(w.shape) for w in model.get_weights()]
        given = [tuple(w.shape) for w in self._warm_weights]
        if shapes != given:
            raise ConfigError(
                f"the previous fold's {self.name} has weights of other shapes than this one "
                "(different features or layer sizes)",
                param="warm_start",
                fix="keep the features and layer sizes fixed across folds, or set warm_start: false",
            )
        model.set_weights(self._warm_weights)

    def _train(self, train: WindowSet, val: WindowSet | None) -> Any:
        """Build (or warm-start) and fit the network on lazily gathered windows; best weights kept."""
        keras = import_keras(self.n_threads)
        set_seed(self.seed)
        epochs, patience = self.fit_budget
        steps = int(np.ceil(len(train) / int(self.batch_size)))
        model = self._build_model(train.n_features, steps)
        if self._warm_weights is not None:
            self._set_warm_weights(model)
        monitor = VAL_DATA_LOSS if val is not None else "loss"
        timer = epoch_timer(keras)
        with tempfile.TemporaryDirectory(prefix="mlstrat-ckpt-") as tmp:
            ckpt = Path(tmp) / "best.weights.h5"
            callbacks = [
                data_loss_logger(keras),
                keras.callbacks.EarlyStopping(
                    monitor=monitor, mode="min", patience=patience, restore_best_weights=True
                ),
                keras.callbacks.ModelCheckpoint(
                    str(ckpt),
                    monitor=monitor,
                    mode="min",
                    save_best_only=True,
                    save_weights_only=True,
                ),
                *self._extra_callbacks(keras, monitor),
                timer,
            ]
            history = model.fit(
                train.dataset(self.steps, int(self.batch_size), seed=int(self.seed)),
                validation_data=None
                if val is None
                else val.dataset(self.steps, max(int(self.batch_size), VALIDATION_BATCH)),
                epochs=epochs,
                shuffle=False,  # the dataset reshuffles itself, from the seed
                callbacks=callbacks,
                verbose=self.verbose,
            )
            if ckpt.exists():
                model.load_weights(str(ckpt))
        self.history_ = {
            k: [float(v) for v in np.asarray(vals, dtype=np.float64).ravel()]
            for k, vals in history.history.items()
        }
        self.fit_timing_ = {
            "began": timer.began,
            "epochs": [round(t, 3) for t in timer.seconds],
            "validation": [round(t, 3) for t in timer.validation],
        }
        return model

    # ------------------------------------------------------------------ predict

    def _check_fitted(self) -> None:
        if self.model_ is None:
            raise ModelLoadError(
                f"{self.name} predictor is not fitted", fix="call fit() or load a saved model first"
            )

    def _compiled(self) -> CompiledInference:
        if self._inference is None:
            self._inference = CompiledInference(
                self.model_,
                self.steps,
                int(self.x_scaler_.n_features_in_),
                jit=bool(self.jit_compile),
                n_threads=self.n_threads,
            )
        return self._inference

    def predict_outputs(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Raw model outputs and the row positions they belong to (rows with a complete window)."""
        self._check_fitted()
        values = self._inputs(X, fitting=False)
        rows = np.flatnonzero(window_ready(values, self.steps))
        scaled = self.x_scaler_.transform(values)
        return self._compiled().predict_rows(scaled, rows), rows

    def predict(self, X: pd.DataFrame) -> Prediction:
        """Prediction for every row of X (NaN before the first full window and around NaNs)."""
        out, rows = self.predict_outputs(X)
        return self._outputs_to_prediction(out, len(X), rows)

    def predict_one(self, window: np.ndarray) -> Prediction:
        """Prediction from the last `window` rows of a raw (rows, n_features) array in feature order.

        Uses the fixed-shape compiled function; a window with NaN/inf predicts NaN.
        """
        self._check_fitted()
        arr = np.asarray(window, dtype=np.float64)
        if arr.ndim == 1 and len(self.feature_names) == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2 or arr.shape[1] != len(self.feature_names) or len(arr) < self.window:
            raise DataError(
                f"predict_one needs a ({self.window}, {len(self.feature_names)}) array of the "
                f"features {self.feature_names}, got shape {arr.shape}",
                fix="pass the latest `window` rows of the model's features, in feature_names order",
            )
        arr = self._one_inputs(arr[-self.window :])
        if not np.isfinite(arr).all():
            return self._outputs_to_prediction(np.empty((0, self.n_outputs)), 1, np.array([], int))
        out = self._compiled().one(self.x_scaler_.transform(arr))
        return self._outputs_to_prediction(out[None, :], 1, np.array([0]))

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> None:
        """Write model.keras, scalers.json, metadata.json and manifest.json atomically."""
        self._check_fitted()
        metadata = {**fitted_metadata(self, MODEL_FILE), "state": self._state()}
        with write_model_dir(path, metadata) as tmp:
            self.model_.save(tmp / MODEL_FILE)
            save_scalers(tmp / SCALERS_FILE, self._scalers())

    @classmethod
    def load(cls, path: str | Path) -> KerasSequencePredictor:
        """Verify the directory against its manifest and restore the predictor (safe_mode=True)."""
        path = Path(path)
        report = open_model_dir(path, predictor=cls.name)
        meta = report.metadata
        if SCALERS_FILE not in report.files_checked:
            raise ModelLoadError(
                f"{SCALERS_FILE} is not listed in the manifest, so it is not trusted",
                file=path / "manifest.json",
                fix=_RESTORE_FIX,
            )
        try:
            obj = cls(**meta["params"])
        except (KeyError, TypeError, ConfigError) as exc:
            raise ModelLoadError(
                f"metadata parameters do not fit {cls.__name__} ({exc})",
                file=path / "metadata.json",
                fix=_RESTORE_FIX,
            ) from exc
        keras = import_keras(obj.n_threads)
        from mlstrat.predictors import layers  # noqa: F401  (registers custom objects)

        model_file = path / meta.get("model_file", MODEL_FILE)
        try:
            obj.model_ = keras.saving.load_model(model_file, compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises ValueError/TypeError/OSError variously
            raise ModelLoadError(
                f"Keras could not load the model ({type(exc).__name__}: {exc})",
                file=model_file,
                fix=_RESTORE_FIX,
            ) from exc
        obj._restore_scalers(load_scalers(path / SCALERS_FILE))
        restore_fitted_metadata(obj, meta)
        obj.feature_means_ = decode_feature_means(meta.get("feature_means", {}))
        obj.window = int(meta["window"])
        obj._restore_state(meta.get("state") or {})
        return obj


def _as_pandas(y: Any, index: pd.Index) -> pd.Series | pd.DataFrame:
    """y as a Series/DataFrame on `index` (arrays are wrapped, pandas objects re-indexed by position)."""
    if isinstance(y, pd.DataFrame):
        return y.set_axis(index, axis=0)
    return pd.Series(np.asarray(y), index=index, name=getattr(y, "name", None))


def target_series(y: Any, index: pd.Index, task: str | None = None) -> pd.Series:
    """A 1-D target as a Series on `index` (name kept); other shapes are a DataError. With a
    `task`, event labels (-1/0/+1) come coded for it (`features.targets.encode_labels`)."""
    if y is None or isinstance(y, pd.DataFrame) or np.ndim(y) != 1:
        raise DataError(
            "this predictor needs one target column (a Series)",
            fix="pass y=frame['<target column>']",
        )
    series = pd.Series(np.asarray(y), index=index, name=getattr(y, "name", None))
    return series if task is None else encode_labels(series, task)


def validate_dropout(dropout: float | tuple[float, ...], n_layers: int) -> tuple[float, ...]:
    """Per-layer dropout rates from one rate or a sequence of `n_layers` rates in [0, 1)."""
    rates = (
        (float(dropout),) * n_layers
        if isinstance(dropout, (int, float))
        else tuple(float(d) for d in dropout)
    )
    if len(rates) != n_layers or any(not 0.0 <= r < 1.0 for r in rates):
        raise ConfigError(
            f"dropout must be one rate or {n_layers} rates in [0, 1), got {dropout!r}",
            fix="e.g. dropout=0.3 or dropout=(0.3, 0.3, 0.2)",
        )
    return rates


__all__ = [
    "MODEL_FILE",
    "TRAINING_PARAMS",
    "KerasSequencePredictor",
    "MinMaxScaler",
    "StandardScaler",
    "binary_log_loss",
    "categorical_log_loss",
    "roc_auc",
    "scatter_rows",
    "target_series",
    "validate_dropout",
]
