"""Parity: precomputed walk-forward predictions vs retraining inside the backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from walkforward_data import XGB_PARAMS, write_feed

from mlstrat.backtest import run_backtest
from mlstrat.errors import ConfigError
from mlstrat.features import feature_columns, read_feature_feed
from mlstrat.feed import FeatureFeed
from mlstrat.predictors.xgb import XGBoostPredictor
from mlstrat.strategy import MLStrategy
from mlstrat.walkforward.online import (
    ONLINE_PREDICTION_COLUMNS,
    WalkForwardStrategy,
    with_prediction_columns,
)
from mlstrat.walkforward.runner import run_walk_forward
from mlstrat.walkforward.splits import WalkForward

SEED = 3


class SpyXGB(XGBoostPredictor):
    """The same XGBoost, remembering which rows each fit saw."""

    fits: list[dict] = []

    def fit(self, X, y, *, validation=None):
        SpyXGB.fits.append(
            {
                "last_train": X.index[-1],
                "last_validation": validation[0].index[-1],
                "labels_known": bool(np.isfinite(y).all() and np.isfinite(validation[1]).all()),
            }
        )
        return super().fit(X, y, validation=validation)


@pytest.mark.slow
def test_online_retraining_matches_precomputed(tmp_path) -> None:
    feed_path = write_feed(tmp_path / "feed.parquet")
    splits = WalkForward(train="30D", test="12D")  # duration schedule, 7 folds on 2600 bars
    run = run_walk_forward(
        feed_path,
        "xgboost",
        XGB_PARAMS,
        "direction_1",
        splits,
        tmp_path / "run",
        n_jobs=1,
        seed=SEED,
        progress=False,
    )
    assert len(run.folds) == 7
    common = {"allow_short": True, "short_threshold": 0.6, "long_threshold": 0.6}
    sizer = {"tiers": ((0.5, 0.5), (0.55, 1.0))}  # trade the fold thresholds' whole range
    pre = run_backtest(
        FeatureFeed.from_parquet(feed_path, predictions=run.predictions_path),
        MLStrategy,
        common,
        sizer_params=sizer,
    )

    frame = read_feature_feed(feed_path)
    features = feature_columns(frame)
    online_feed = FeatureFeed.from_frame(
        with_prediction_columns(frame),
        columns=[*features, "direction_1", *ONLINE_PREDICTION_COLUMNS],
    )
    SpyXGB.fits = []
    online = run_backtest(
        online_feed,
        WalkForwardStrategy,
        {
            **common,
            "predictor_factory": lambda fold: SpyXGB(**XGB_PARAMS, seed=SEED),
            "feature_lines": features,
            "target_line": "direction_1",
            "splits": splits,
        },
        sizer_params=sizer,
    )
    # identical predictions, bar by bar
    cols = ["timestamp", "signal", "confidence", "proba_up", "fold"]
    pd.testing.assert_frame_equal(pre.records[cols], online.records[cols])
    preds = run.predictions()
    tested = pre.records.set_index("timestamp").loc[preds["timestamp"]]
    np.testing.assert_array_equal(tested["proba_up"].to_numpy(), preds["proba_up"].to_numpy())
    assert np.isnan(pre.records["signal"].to_numpy()[: 30 * 24]).all()
    # identical trades and equity
    assert len(pre.trades) >= 10
    pd.testing.assert_frame_equal(pre.trades, online.trades)
    pd.testing.assert_series_equal(pre.equity, online.equity)
    # each online fit saw only rows whose labels were realised before its test start
    starts = [pd.Timestamp(f["test_start"]) for f in run.folds]
    assert len(SpyXGB.fits) == len(starts)
    for fit, start in zip(SpyXGB.fits, starts, strict=True):
        assert fit["labels_known"]
        assert fit["last_train"] < fit["last_validation"] < start - pd.Timedelta("1h")


def test_online_strategy_needs_lines(tmp_path) -> None:
    feed_path = write_feed(tmp_path / "feed.parquet")
    frame = read_feature_feed(feed_path)
    feed = FeatureFeed.from_frame(
        with_prediction_columns(frame), columns=["rsi_14", *ONLINE_PREDICTION_COLUMNS]
    )
    with pytest.raises(ConfigError, match="direction_1"):
        run_backtest(
            feed,
            WalkForwardStrategy,
            {
                "predictor_factory": lambda fold: XGBoostPredictor(**XGB_PARAMS),
                "feature_lines": ["rsi_14"],
                "target_line": "direction_1",
            },
        )
