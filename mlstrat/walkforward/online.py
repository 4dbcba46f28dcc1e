"""Online walk-forward retraining inside a backtest, on the batch runner's fold schedule.

`WalkForwardStrategy` is an `OnlineRetraining` strategy (`mlstrat.retraining`)
whose retraining hooks follow a `WalkForward` schedule bar by bar:

* ``should_retrain`` feeds each new bar's timestamp to the schedule's
  tracker and fires on the bars where a fold's test period starts — the same
  bars as `WalkForward.folds` over the whole feed, found without looking ahead;
* ``retrain`` rebuilds the fold from the timestamps seen so far, reads the
  features and labels of the bars seen so far from the feed lines (labels
  whose horizon has not elapsed are blanked, so nothing unknown at this bar
  can be used), and calls `fit_fold`, the function the batch runner uses —
  same rows, same predictor parameters and seed → same model and thresholds;
* every bar the current model predicts with ``predict_one`` on the latest
  window, the fold's thresholds turn it into a signal, and the prediction,
  fold number and thresholds are written into the feed's prediction lines.

The feed therefore needs prediction lines to write into (NaN columns
``signal``, ``confidence``, ``proba_up``, ``fold``, ``threshold_long``,
``threshold_short``), the feature lines and the target line. Position 0 of the
schedule is the first bar of the feed, so start the backtest feed where the
batch run's feature feed starts to get the same folds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError
from mlstrat.features.targets import horizon_of
from mlstrat.predictors.base import Prediction
from mlstrat.retraining import OnlineRetraining
from mlstrat.strategy import bt_times_to_utc
from mlstrat.walkforward.splits import Schedule, WalkForward
from mlstrat.walkforward.training import FittedFold, fit_fold, thresholded_signal

#: Columns an online feed carries for the strategy to fill (see `prediction_columns`).
ONLINE_PREDICTION_COLUMNS = (
    "signal",
    "confidence",
    "proba_up",
    "fold",
    "threshold_long",
    "threshold_short",
)


def with_prediction_columns(frame: pd.DataFrame, columns=ONLINE_PREDICTION_COLUMNS) -> pd.DataFrame:
    """Copy of a feature frame with NaN prediction columns for online retraining to fill."""
    out = frame.copy()
    for name in columns:
        out[name] = np.nan
    meta = out.attrs.get("mlstrat")
    if isinstance(meta, dict) and isinstance(meta.get("roles"), dict):
        out.attrs["mlstrat"] = {
            **meta,
            "roles": {**meta["roles"], **dict.fromkeys(columns, "prediction")},
        }
    return out


class WalkForwardStrategy(OnlineRetraining):
    """OnlineRetraining on a WalkForward schedule (see the module docstring).

    Params: ``predictor_factory``, ``feature_lines``, ``target_line`` and
    ``target_horizon`` (as in OnlineRetraining; ``retrain_every`` and
    ``train_window`` are not used), ``splits`` (a WalkForward; default 4-month
    train / 2-month test), ``threshold_params`` (keyword arguments of
    `fit_thresholds`) and ``symbol`` (for threshold multipliers; default the
    feed's name).
    """

    params = (
        ("splits", None),
        ("threshold_params", None),
        ("symbol", None),
    )

    def setup_schedule(self) -> None:
        """Check ``splits`` and start its bar-by-bar tracker (horizon: the longest label's)."""
        p = self.p
        if p.splits is not None and not isinstance(p.splits, WalkForward):
            raise ConfigError(
                f"splits must be a WalkForward, got {type(p.splits).__name__}", param="splits"
            )
        splits = p.splits or WalkForward(train="4mo", test="2mo")
        horizon = max(splits.horizon, int(p.target_horizon), horizon_of(p.target_line))
        self.splits: WalkForward = (
            splits if splits.horizon == horizon else dataclasses.replace(splits, horizon=horizon)
        )
        self._schedule: Schedule = self.splits.schedule()
        self._times: list[float] = []
        self.fitted: FittedFold | None = None

    # -- hooks -------------------------------------------------------------
    def should_retrain(self) -> bool:
        """True on the bars where a fold's test period starts."""
        stamp = self.datas[0].datetime[0]
        self._times.append(stamp)
        return self._schedule.advance(bt_times_to_utc([stamp])[0])

    def retrain(self) -> tuple[int, Any]:
        """Fit the fold whose test period starts at this bar, exactly as the batch runner does."""
        number = self.fold + 1
        index = bt_times_to_utc(self._times)
        fold = self.splits.fold_at(index, len(index) - 1, number=number)
        X, y = self.seen_frame(index)
        symbol = self.p.symbol or getattr(self.datas[0], "_name", None) or None
        self.fitted = fit_fold(
            lambda: self.p.predictor_factory(number),
            X,
            y,
            fold,
            symbol=symbol,
            threshold_params=self.p.threshold_params,
        )
        return number, self.fitted.model

    def seen_frame(self, index: pd.DatetimeIndex) -> tuple[pd.DataFrame, pd.Series]:
        """Features and known labels of every bar so far (labels not yet realised are NaN)."""
        data = self.datas[0]
        n = len(index)
        X = pd.DataFrame(
            {
                name: np.asarray(getattr(data.lines, name).get(ago=0, size=n), dtype=float)
                for name in self.p.feature_lines
            },
            index=index,
        )
        labels = np.asarray(getattr(data.lines, self.p.target_line).get(ago=0, size=n), dtype=float)
        labels[max(0, n - self.splits.horizon) :] = np.nan  # label of bar i needs bar i + horizon
        return X, pd.Series(labels, index=index, name=self.p.target_line)

    def write_prediction(self, data: Any, prediction: Prediction) -> None:
        """Apply the fold's thresholds to the signal, then store prediction and thresholds."""
        thresholds = None if self.fitted is None else self.fitted.thresholds
        signal = thresholded_signal(prediction, thresholds)
        super().write_prediction(data, dataclasses.replace(prediction, signal=signal))
        slot = self._slots[data]
        for line, value in (
            (slot.threshold_long, None if thresholds is None else thresholds.long),
            (slot.threshold_short, None if thresholds is None else thresholds.short),
        ):
            if line is not None:
                line[0] = np.nan if value is None else float(value)
