"""Retrain a model inside the backtest on the default walk-forward schedule.

Instead of reading precomputed predictions, this strategy holds a predictor
and refits it as the backtest advances. It builds on
`mlstrat.walkforward.online.WalkForwardStrategy`, which implements
`OnlineRetraining`'s hooks on a `WalkForward` schedule: `should_retrain`
fires on the bar where a fold's test period starts, `retrain` fits a fresh
model from ``predictor_factory(fold)`` on the bars seen so far whose labels are
already known (the same rows, validation tail and thresholds as the batch
walk-forward run, so both give the same predictions), and every bar the
current model's prediction, fold and thresholds are written into the feed's
prediction lines. Sizing, recording and the report then work as with
precomputed predictions.

The feed needs the feature lines, the target line and empty prediction lines:

    from mlstrat.feed import FeatureFeed
    from mlstrat.walkforward.online import ONLINE_PREDICTION_COLUMNS, with_prediction_columns
    frame = with_prediction_columns(features)
    feed = FeatureFeed.from_frame(
        frame, columns=[*feature_names, "direction_1", *ONLINE_PREDICTION_COLUMNS])

Defaults: XGBoost, 4-month training windows stepped by 2 months (the
retraining schedule of the crypto trading bot mlstrat was built to backtest).
"""

from __future__ import annotations

import re
from typing import Any

from mlstrat.errors import ConfigError
from mlstrat.predictors.registry import create_predictor
from mlstrat.sizing import TieredConfidenceSizer
from mlstrat.walkforward.online import ONLINE_PREDICTION_COLUMNS, WalkForwardStrategy

_NOT_FEATURES = re.compile(
    r"^(open|high|low|close|volume|openinterest|datetime|"
    r"(direction|three_class|forward_\w+)_\d+|proba_\w+|threshold_\w+|expected_return|volatility)$"
)


class OnlineRetrain(WalkForwardStrategy):
    """Long/short on a model refitted inside the backtest at every fold boundary."""

    params = (
        ("predictor", "xgboost"),
        (
            "predictor_params",
            {"n_estimators": 200, "max_depth": 4, "early_stopping_rounds": 20, "seed": 42},
        ),
        ("target_line", "direction_1"),
        ("allow_short", True),
    )
    default_sizer = TieredConfidenceSizer
    default_sizer_params = {"method": "tiered", "price_buffer": 0.002}

    def __init__(self) -> None:
        p = self.p
        if p.predictor_factory is None:
            p.predictor_factory = self.make_predictor
        if p.feature_lines is None:
            p.feature_lines = tuple(
                a
                for a in self.datas[0].lines.getlinealiases()
                if not _NOT_FEATURES.match(a) and a not in ONLINE_PREDICTION_COLUMNS
            )
            if not p.feature_lines:
                raise ConfigError(
                    "the feed has no feature lines to learn from",
                    param="feature_lines",
                    fix="build the feed from a feature frame or set feature_lines",
                )
        super().__init__()

    def make_predictor(self, fold: int) -> Any:
        """A fresh, unfitted predictor for ``fold`` (the registry name and params above)."""
        return create_predictor(self.p.predictor, **dict(self.p.predictor_params))
