"""Volatility LSTM adapter `volatility_lstm`: realised volatility from its own history.

Defaults come from the volatility notebook of the crypto trading bot mlstrat
was built to backtest (docs/architecture.md, "Where the default numbers come
from").

Input: one column of realised volatility, `column` (default
"realized_vol_24", the feature set's rolling standard deviation of 1-bar log
returns over 24 bars). If the frame lacks that column but has "close", the
same quantity is computed from the closes: std (ddof=1) of the last
`vol_window` log returns; the model then needs `memory + vol_window` rows of
closes, which is its `window`.

Target: `horizon` steps, step k (1-based) being the target series at row
t + k - 1. The target series is `y` when given (e.g. forward_volatility_24,
or the input column itself shifted by -1); with `y=None` it is the input
series shifted one row ahead, so the model forecasts the next `horizon`
values of its own input, as the notebook did. A DataFrame `y` with `horizon`
columns is used as is.

Model: 1-2 LSTM layers (`units`, `dropout` per layer), Dense(horizon), MSE,
Adam(learning_rate), batch size 16. Inputs and targets are each MinMax-scaled
to [0, 1] on the fitted rows only. `tune=True` searches the notebook's space with
keras-tuner (n_layers 1-2, units 16-64 step 16, dropout 0-0.3 step 0.1,
learning rate 1e-3..1e-2 log) for `tune_trials` trials of `tune_epochs`
epochs on the validation tail, then trains the best configuration; the chosen
configuration and the trials are saved in metadata.json.

Prediction: `volatility` = the step-1 forecast; with horizon > 1, `extra`
holds `volatility_step_{k}` for every step. signal is 0 and confidence 0 (a
volatility forecast takes no side); both are NaN before warm-up.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError, DataError, SchemaError
from mlstrat.predictors.base import Prediction, Task
from mlstrat.predictors.compat import check_no_targets
from mlstrat.predictors.keras_base import (
    VALIDATION_BATCH,
    KerasSequencePredictor,
    MinMaxScaler,
    scatter_rows,
    validate_dropout,
)
from mlstrat.predictors.keras_utils import WindowSet, import_keras, set_seed
from mlstrat.predictors.registry import register_predictor

#: The volatility notebook's keras-tuner search space.
TUNE_SPACE: dict[str, Any] = {
    "n_layers": (1, 2),
    "units": (16, 64, 16),
    "dropout": (0.0, 0.3, 0.1),
    "learning_rate": (1e-3, 1e-2, "log"),
}


def realized_volatility(close: np.ndarray, window: int) -> np.ndarray:
    """Rolling std (ddof=1) of 1-bar log returns over `window` bars; NaN until enough bars."""
    log_ret = np.diff(np.log(np.asarray(close, dtype=np.float64)), prepend=np.nan)
    return pd.Series(log_ret).rolling(window, min_periods=window).std().to_numpy()


def build_volatility_network(
    memory: int,
    *,
    units: Sequence[int],
    dropout: Sequence[float],
    horizon: int = 1,
    n_inputs: int = 1,
) -> Any:
    """Uncompiled model: LSTM layers (each followed by Dropout) → Dense(horizon), linear."""
    keras = import_keras()
    inputs = keras.Input(shape=(memory, n_inputs), name="window")
    x = inputs
    for i, (n_units, rate) in enumerate(zip(units, dropout, strict=True)):
        x = keras.layers.LSTM(int(n_units), return_sequences=i < len(units) - 1, name=f"lstm_{i}")(
            x
        )
        x = keras.layers.Dropout(float(rate), name=f"dropout_{i}")(x)
    outputs = keras.layers.Dense(int(horizon), name="output")(x)
    return keras.Model(inputs, outputs, name="volatility_network")


@register_predictor("volatility_lstm")
class VolatilityLSTMPredictor(KerasSequencePredictor):
    """Realised-volatility forecaster (see the module docstring for inputs and targets).

    Defaults: memory 60, horizon 1, column "realized_vol_24" (vol_window 24
    when computed from closes), LSTM (64, 32) with dropout (0.1, 0.1),
    Adam 1e-3, MSE, batch 16, 50 epochs with EarlyStopping(patience 10).
    """

    name = "volatility_lstm"
    task: Task = "volatility"
    x_scaler_cls = MinMaxScaler
    y_scaler_cls = MinMaxScaler

    def __init__(
        self,
        memory: int = 60,
        horizon: int = 1,
        column: str = "realized_vol_24",
        vol_window: int = 24,
        units: Sequence[int] = (64, 32),
        dropout: float | Sequence[float] = 0.1,
        learning_rate: float = 1e-3,
        epochs: int = 50,
        batch_size: int = 16,
        patience: int = 10,
        warm_epochs: int | None = None,
        warm_patience: int | None = None,
        validation_fraction: float = 0.2,
        validation_gap: int | str = "auto",
        tune: bool = False,
        tune_trials: int = 10,
        tune_epochs: int = 10,
        seed: int = 42,
        n_threads: int | None = None,
        jit_compile: bool = True,
        on_missing: str = "error",
        verbose: int = 0,
    ) -> None:
        self.memory = int(memory)
        self.horizon = int(horizon)
        self.column = str(column)
        self.vol_window = int(vol_window)
        self.units = tuple(int(u) for u in units)
        if not 1 <= len(self.units) <= 2 or any(u < 1 for u in self.units):
            raise ConfigError(
                f"units must list 1 or 2 positive layer sizes, got {units!r}",
                fix="e.g. units=(64, 32) or units=(32,)",
            )
        self.dropout = validate_dropout(dropout, len(self.units))
        if self.horizon < 1 or self.vol_window < 2:
            raise ConfigError(
                f"horizon must be >= 1 and vol_window >= 2, got {horizon}, {vol_window}",
                fix="e.g. horizon=1, vol_window=24",
            )
        self.learning_rate = float(learning_rate)
        self.tune = bool(tune)
        self.tune_trials = int(tune_trials)
        self.tune_epochs = int(tune_epochs)
        self.window = self.memory
        self.n_outputs = self.horizon
        self.source_: str = "column"
        self.y_scaler_: MinMaxScaler | None = None
        self.config_: dict[str, Any] = self._default_config()
        self.tuning_: dict[str, Any] | None = None
        self._init_common(locals())

    def _default_config(self) -> dict[str, Any]:
        return {
            "n_layers": len(self.units),
            "units": list(self.units),
            "dropout": list(self.dropout),
            "learning_rate": self.learning_rate,
            "memory": self.memory,
            "horizon": self.horizon,
            "input_shape": [self.memory, 1],
        }

    @property
    def steps(self) -> int:
        return self.memory

    # ------------------------------------------------------------------ inputs and targets

    def _inputs(self, X: pd.DataFrame, *, fitting: bool) -> np.ndarray:
        if not isinstance(X, pd.DataFrame):
            raise DataError(
                f"features must be a pandas DataFrame, got {type(X).__name__}",
                fix=f"pass a DataFrame with a '{self.column}' (or 'close') column",
            )
        if fitting:
            if self.column in X.columns:
                self.source_ = "column"
                self.feature_names = [self.column]
            elif "close" in X.columns:
                self.source_ = "close"
                self.feature_names = ["close"]
            else:
                raise SchemaError(
                    f"volatility input column '{self.column}' is missing and there is no 'close' "
                    "to compute it from",
                    column=self.column,
                    fix=f"add '{self.column}' (feature set with realized volatility) or 'close', "
                    "or pass column=<your volatility column>",
                )
            check_no_targets(self.feature_names, X)
            self.window = self.memory + (self.vol_window if self.source_ == "close" else 0)
        name = self.feature_names[0]
        if name not in X.columns:
            raise SchemaError(
                f"the model was trained on column '{name}', which is missing",
                column=name,
                fix=f"pass a frame with '{name}'",
            )
        raw = pd.to_numeric(X[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        raw = np.where(np.isfinite(raw), raw, np.nan)
        if self.source_ == "close":
            raw = realized_volatility(np.where(raw > 0, raw, np.nan), self.vol_window)
        return raw.reshape(-1, 1)

    def _one_inputs(self, rows: np.ndarray) -> np.ndarray:
        if self.source_ == "close":
            closes = rows[:, 0]
            return realized_volatility(np.where(closes > 0, closes, np.nan), self.vol_window)[
                -self.memory :
            ].reshape(-1, 1)
        return rows

    def _encode_targets(self, y: Any, values: np.ndarray, index: pd.Index) -> np.ndarray:
        if isinstance(y, pd.DataFrame):
            if y.shape[1] != self.horizon:
                raise DataError(
                    f"y has {y.shape[1]} columns but horizon is {self.horizon}",
                    fix="pass one target column per forecast step, or a single Series",
                )
            arr = y.apply(pd.to_numeric, errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            return np.where(np.isfinite(arr), arr, np.nan)
        if y is None:
            series = np.concatenate([values[1:, 0], [np.nan]])
        else:
            if np.ndim(y) != 1:
                raise DataError("y must be a Series, a DataFrame or None", fix="see the docstring")
            series = pd.to_numeric(pd.Series(np.asarray(y)), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        series = np.where(np.isfinite(series), series, np.nan)
        n = len(series)
        steps = [np.concatenate([series[k:], np.full(k, np.nan)]) for k in range(self.horizon)]
        return np.column_stack(steps)[:n]

    def _gap(self, y: Any) -> int:
        if self.validation_gap != "auto":
            return int(self.validation_gap)
        if y is None:
            return self.horizon
        return super()._gap(y) + self.horizon - 1

    def _scale_targets(self, y: np.ndarray) -> np.ndarray:
        return self.y_scaler_.transform(y.reshape(-1, 1)).reshape(y.shape)

    def _forecast(self, out: np.ndarray) -> np.ndarray:
        return self.y_scaler_.inverse_transform(out.reshape(-1, 1)).reshape(out.shape)

    # ------------------------------------------------------------------ model

    def _build_model(self, n_features: int, steps_per_epoch: int) -> Any:
        keras = import_keras()
        cfg = self.config_
        model = build_volatility_network(
            self.memory,
            units=cfg["units"],
            dropout=cfg["dropout"],
            horizon=self.horizon,
            n_inputs=n_features,
        )
        model.compile(optimizer=keras.optimizers.Adam(cfg["learning_rate"]), loss="mse")
        return model

    def _train(self, train: WindowSet, val: WindowSet | None) -> Any:
        self.config_ = self._default_config()
        self.tuning_ = None
        if self.tune:
            self._search(train, val)
        return super()._train(train, val)

    def warm_start_from(self, previous: Any) -> None:
        """As `KerasSequencePredictor.warm_start_from`; not with `tune`, whose search may pick
        other layer sizes in every fold."""
        if self.tune:
            raise ConfigError(
                "volatility_lstm with tune=True cannot be warm-started",
                param="warm_start",
                fix="set warm_start: false, or tune: false",
            )
        super().warm_start_from(previous)

    def _search(self, train: WindowSet, val: WindowSet | None) -> None:
        """keras-tuner RandomSearch over TUNE_SPACE; stores the best configuration in config_."""
        try:
            import keras_tuner as kt
        except ImportError as exc:
            raise ConfigError(
                "tune=True needs keras-tuner, which is not installed",
                fix="pip install 'mlstrat[tune]' (or keras-tuner), or use tune=False",
            ) from exc
        if val is None:
            raise ConfigError(
                "tuning needs a validation set",
                fix="set validation_fraction > 0 or pass validation=(X_val, y_val)",
            )
        keras = import_keras(self.n_threads)
        lo_u, hi_u, step_u = TUNE_SPACE["units"]
        lo_d, hi_d, step_d = TUNE_SPACE["dropout"]
        lo_lr, hi_lr, sampling = TUNE_SPACE["learning_rate"]
        n_inputs = train.n_features

        def build(hp: Any) -> Any:
            n_layers = hp.Int("n_layers", *TUNE_SPACE["n_layers"])
            units = [hp.Int(f"units_{i}", lo_u, hi_u, step=step_u) for i in range(n_layers)]
            rates = [hp.Float(f"dropout_{i}", lo_d, hi_d, step=step_d) for i in range(n_layers)]
            lr = hp.Float("lr", lo_lr, hi_lr, sampling=sampling)
            model = build_volatility_network(
                self.memory, units=units, dropout=rates, horizon=self.horizon, n_inputs=n_inputs
            )
            model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
            return model

        set_seed(self.seed)
        with tempfile.TemporaryDirectory(prefix="mlstrat-tune-") as tmp:
            tuner = kt.RandomSearch(
                build,
                objective="val_loss",
                max_trials=self.tune_trials,
                seed=int(self.seed),
                directory=tmp,
                project_name="volatility_lstm",
                overwrite=True,
            )
            tuner.search(
                train.dataset(self.steps, int(self.batch_size), seed=int(self.seed)),
                validation_data=val.dataset(
                    self.steps, max(int(self.batch_size), VALIDATION_BATCH)
                ),
                epochs=self.tune_epochs,
                verbose=self.verbose,
            )
            trials = []
            for trial in tuner.oracle.get_best_trials(num_trials=self.tune_trials):
                trials.append(
                    {"hyperparameters": dict(trial.hyperparameters.values), "score": trial.score}
                )
            best = tuner.get_best_hyperparameters(num_trials=1)[0]
        n_layers = int(best.get("n_layers"))
        self.config_ = {
            **self._default_config(),
            "n_layers": n_layers,
            "units": [int(best.get(f"units_{i}")) for i in range(n_layers)],
            "dropout": [round(float(best.get(f"dropout_{i}")), 10) for i in range(n_layers)],
            "learning_rate": float(best.get("lr")),
        }
        self.tuning_ = {
            "space": TUNE_SPACE,
            "max_trials": self.tune_trials,
            "epochs_per_trial": self.tune_epochs,
            "trials": trials,
        }

    # ------------------------------------------------------------------ outputs

    def _outputs_to_prediction(self, out: np.ndarray, n: int, rows: np.ndarray) -> Prediction:
        forecast = self._forecast(out.reshape(-1, self.horizon)) if len(out) else out
        vol = scatter_rows(n, rows, forecast.reshape(-1, self.horizon))
        known = np.isfinite(vol[:, 0])
        flat = np.where(known, 0.0, np.nan)
        extra = {}
        if self.horizon > 1:
            extra = {f"volatility_step_{k + 1}": vol[:, k] for k in range(self.horizon)}
        return Prediction(signal=flat, confidence=flat.copy(), volatility=vol[:, 0], extra=extra)

    def predict_volatility(self, X: pd.DataFrame) -> np.ndarray:
        """(n, horizon) volatility forecasts, NaN before warm-up."""
        out, rows = self.predict_outputs(X)
        return scatter_rows(len(X), rows, self._forecast(out) if len(out) else out)

    def _metrics(self, y: np.ndarray, out: np.ndarray) -> dict[str, Any]:
        y = y.reshape(len(y), -1)
        err = y - self._forecast(out)
        mse = float(np.mean(err**2))
        return {
            "mse": mse,
            "rmse": float(np.sqrt(mse)),
            "mae": float(np.mean(np.abs(err))),
            "mse_per_step": np.mean(err**2, axis=0).tolist(),
        }

    # ------------------------------------------------------------------ persistence

    def _state(self) -> dict[str, Any]:
        return {"source": self.source_, "config": self.config_, "tuning": self.tuning_}

    def _restore_state(self, state: dict[str, Any]) -> None:
        self.source_ = state.get("source", "column")
        self.config_ = state.get("config") or self._default_config()
        self.tuning_ = state.get("tuning")


__all__ = [
    "TUNE_SPACE",
    "VolatilityLSTMPredictor",
    "build_volatility_network",
    "realized_volatility",
]
