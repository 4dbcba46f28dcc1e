"""Retrain a model inside the backtest: every month, on the last four months (seed 003's schedule).

Instead of reading precomputed walk-forward predictions, this strategy holds
a predictor and refits it as the backtest advances, through MLStrategy's
online hooks: `should_retrain` decides when (every ``retrain_every`` bars,
once ``train_window`` labelled bars exist), `retrain` fits a fresh model from
``predictor_factory(fold)`` on the last ``train_window`` bars whose label is
already known at that bar (a label ``target_horizon`` bars ahead is only
known ``target_horizon`` bars later), and `on_retrain` installs it. Every bar
the current model predicts from the feature lines and the prediction is
written into the feed's ``signal`` / ``confidence`` / ``proba_up`` / ``fold``
lines, so sizing, recording and the report work as with precomputed
predictions. Build the feed with those lines empty:

    from mlstrat.feed import FeatureFeed
    from mlstrat.strategy import with_prediction_columns
    frame = with_prediction_columns(features)            # adds NaN prediction columns
    feed = FeatureFeed.from_frame(frame, columns=[*feature_names, "direction_1",
                                                  "signal", "confidence", "proba_up", "fold"])

Defaults are for hourly bars: 720 bars ≈ 1 month, 2880 bars ≈ 4 months.
"""

from __future__ import annotations

import re
from typing import Any

from mlstrat.errors import ConfigError
from mlstrat.predictors.registry import create_predictor
from mlstrat.sizing import TieredConfidenceSizer
from mlstrat.strategy import PREDICTION_PLACEHOLDERS, MLStrategy

_NOT_FEATURES = re.compile(
    r"^(open|high|low|close|volume|openinterest|datetime|"
    r"(direction|three_class|forward_\w+)_\d+|proba_\w+|threshold_\w+|expected_return|volatility)$"
)


class OnlineRetrain(MLStrategy):
    """Long/short on a model refitted inside the backtest (XGBoost by default)."""

    params = (
        ("predictor", "xgboost"),
        (
            "predictor_params",
            {"n_estimators": 200, "max_depth": 4, "early_stopping_rounds": None, "seed": 42},
        ),
        ("retrain_every", 720),
        ("train_window", 2880),
        ("target_line", "direction_1"),
        ("target_horizon", 1),
        ("allow_short", True),
    )
    default_sizer = TieredConfidenceSizer
    default_sizer_params = {"method": "tiered", "price_buffer": 0.002}

    def __init__(self) -> None:
        p = self.p
        if p.predictor_factory is None:
            p.predictor_factory = self.make_predictor
        if p.feature_lines is None:
            data = self.datas[0]
            p.feature_lines = tuple(
                a
                for a in data.lines.getlinealiases()
                if not _NOT_FEATURES.match(a) and a not in PREDICTION_PLACEHOLDERS
            )
            if not p.feature_lines:
                raise ConfigError(
                    "the feed has no feature lines to learn from",
                    column="feature_lines",
                    fix="build the feed from a feature frame or set feature_lines",
                )
        super().__init__()

    def make_predictor(self, fold: int) -> Any:
        """A fresh, unfitted predictor for ``fold`` (the registry name and params above)."""
        return create_predictor(self.p.predictor, **dict(self.p.predictor_params))
