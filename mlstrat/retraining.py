"""Online retraining inside a backtest: a mixin that gives any MLStrategy a model to refit.

`OnlineRetraining` holds a predictor and refits it as the backtest advances,
then writes its predictions into the first feed's prediction lines, so
everything downstream (`MLStrategy`'s entries and exits, the sizer, the
recorder, the report) works as with precomputed predictions. Put it before
the strategy it extends:

    class OnlineTiered(OnlineRetraining, TieredLongShort):
        pass

    run_backtest(feed, OnlineTiered, {"predictor_factory": lambda fold: make_model(),
                                      "feature_lines": ("rsi_14",), "target_line": "direction_1",
                                      "retrain_every": 500, "train_window": 2000})

Each new bar of the first feed: `should_retrain` asks the schedule, `retrain`
fits ``predictor_factory(fold)`` (fold number → unfitted Predictor),
`on_retrain` makes it the current model, and `predict_online` /
`write_prediction` store its prediction for the bar. The default schedule
refits every ``retrain_every`` bars on the last ``train_window`` bars whose
label (``target_horizon`` bars ahead) is known;
`mlstrat.walkforward.online.WalkForwardStrategy` follows a WalkForward fold
schedule instead by overriding `setup_schedule`, `should_retrain` and `retrain`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError
from mlstrat.predictors.base import Prediction
from mlstrat.strategy import MLStrategy


class OnlineRetraining(MLStrategy):
    """MLStrategy (or mixin before an MLStrategy subclass) that refits its predictor in the backtest.

    Params: ``predictor_factory`` (fold number → unfitted Predictor; required),
    ``feature_lines`` and ``target_line`` (first-feed lines the predictor learns
    from), ``target_horizon`` (bars until a label is known) and, for the default
    schedule, ``retrain_every`` and ``train_window`` (bars). State: ``model``
    (current predictor, None before the first fit), ``fold`` (its number, −1
    before) and ``retrain_log`` (one record per refit).
    """

    params = (
        ("predictor_factory", None),
        ("feature_lines", None),
        ("target_line", None),
        ("target_horizon", 1),
        ("retrain_every", None),
        ("train_window", None),
    )

    def __init__(self) -> None:
        super().__init__()
        self.model: Any = None
        self.fold: int = -1
        self.retrain_log: list[dict[str, Any]] = []
        self._last_retrain_bar = -(10**9)
        self._online_len = 0
        self._check_online()
        self.setup_schedule()

    def _check_online(self) -> None:
        """The factory is callable and the first feed has the lines to learn from and write into."""
        p = self.p
        if not callable(p.predictor_factory):
            raise ConfigError(
                "predictor_factory must be callable (fold number → unfitted Predictor)",
                param="predictor_factory",
                fix="pass predictor_factory=lambda fold: create_predictor('xgboost', ...)",
            )
        data = self.datas[0]
        names = (p.target_line, *(p.feature_lines or ()))
        missing = [n for n in names if not n or getattr(data.lines, n, None) is None]
        if not p.feature_lines or missing:
            raise ConfigError(
                f"online retraining needs feature_lines and target_line on the first feed; "
                f"missing {missing or ['feature_lines']}",
                param="feature_lines",
                fix="build the feed with the feature and target columns the predictor learns from",
            )
        slot = self._slots.get(data)
        if slot is None or slot.signal is None or slot.confidence is None:
            raise ConfigError(
                "online retraining writes predictions into the first feed's prediction lines, "
                f"but it has no {p.signal_line!r} line",
                column=p.signal_line,
                fix="add NaN prediction columns, e.g. mlstrat.walkforward.online.with_prediction_columns",
            )

    # ------------------------------------------------------------------ the schedule (hooks)

    def setup_schedule(self) -> None:
        """Check the schedule's own params and prepare its state (once, at the end of __init__)."""
        for name in ("retrain_every", "train_window"):
            value = getattr(self.p, name)
            if value is None or int(value) < 1:
                raise ConfigError(
                    f"online retraining needs {name} ≥ 1 bars", param=name, fix=f"set {name}"
                )

    def should_retrain(self) -> bool:
        """Default schedule: every ``retrain_every`` bars once ``train_window`` labelled bars exist."""
        labelled = len(self.datas[0]) - int(self.p.target_horizon)
        if labelled < int(self.p.train_window):
            return False
        return len(self.datas[0]) - self._last_retrain_bar >= int(self.p.retrain_every)

    def training_data(self) -> tuple[pd.DataFrame, pd.Series]:
        """Features and labels of the last ``train_window`` bars whose label is already known.

        The label of bar i needs bars up to i + ``target_horizon``, so at bar t
        only bars ≤ t − horizon are used (purge).
        """
        p = self.p
        data = self.datas[0]
        horizon = int(p.target_horizon)
        size = min(int(p.train_window), len(data) - horizon)

        def column(name: str) -> np.ndarray:
            return np.asarray(getattr(data.lines, name).get(ago=-horizon, size=size), dtype=float)

        X = pd.DataFrame({name: column(name) for name in p.feature_lines})
        y = pd.Series(column(p.target_line), name=p.target_line)
        known = y.notna().to_numpy()
        return X[known].reset_index(drop=True), y[known].reset_index(drop=True)

    def retrain(self) -> tuple[int, Any]:
        """Fit a fresh predictor from ``predictor_factory(fold)`` on `training_data()`."""
        fold = self.fold + 1
        X, y = self.training_data()
        model = self.p.predictor_factory(fold)
        model.fit(X, y)
        return fold, model

    def on_retrain(self, fold: int, model: Any) -> None:
        """Called after every retrain; default: make ``model`` the current one and log it."""
        self.model = model
        self.fold = fold
        self.retrain_log.append(
            {"fold": fold, "bar": len(self.datas[0]), "time": self.datas[0].datetime.datetime(0)}
        )

    # ------------------------------------------------------------------ each bar

    def next(self) -> None:
        self._online_step()
        super().next()

    def _online_step(self) -> None:
        data = self.datas[0]
        n = len(data)
        if n == self._online_len:  # no new bar on the feed the model follows
            return
        self._online_len = n
        if self.should_retrain():
            fold, model = self.retrain()
            self._last_retrain_bar = len(data)
            self.on_retrain(fold, model)
        if self.model is not None:
            self.write_prediction(data, self.predict_online(data))

    def predict_online(self, data: Any) -> Prediction:
        """The current model's `Prediction` for the bar that just closed."""
        window = int(getattr(self.model, "window", 1) or 1)
        rows = min(window, len(data))
        x = np.column_stack(
            [
                np.asarray(getattr(data.lines, n).get(ago=0, size=rows), dtype=float)
                for n in self.p.feature_lines
            ]
        )
        return self.model.predict_one(x)

    def write_prediction(self, data: Any, prediction: Prediction) -> None:
        """Store a one-row `Prediction` in the feed's prediction lines at the current bar."""
        slot = self._slots[data]
        slot.signal[0] = float(prediction.signal[-1])
        slot.confidence[0] = float(prediction.confidence[-1])
        if slot.proba is not None and prediction.proba is not None and slot.proba_hold is None:
            slot.proba[0] = float(prediction.proba_up()[-1])
        if slot.fold is not None:
            slot.fold[0] = float(self.fold)
        for line, values in (
            (slot.expected_return, prediction.expected_return),
            (slot.volatility, prediction.volatility),
        ):
            if line is not None and values is not None:
                line[0] = float(values[-1])
