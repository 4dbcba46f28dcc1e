"""Feature sets on any timeframe: views the bars cannot form are skipped and named, or a clear error.

The daily file is backtrader's Yahoo sample in ../shared/datasets/raw (skipped
when absent); the 4h bars are the shipped 1h sample resampled.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlstrat.data import resample
from mlstrat.errors import ConfigError
from mlstrat.features import (
    SkippedFeaturesWarning,
    build_feature_feed,
    feature_columns,
    read_metadata,
    write_feature_feed,
)
from mlstrat.features.catalogue import compute_features
from mlstrat.features.feed_io import load_source
from mlstrat.features.sets import (
    CORE_FEATURES,
    HIGHER_TIMEFRAME_BLOCK,
    XGB_FEATURES,
    FeatureSet,
    names_builder,
)

REPO = Path(__file__).resolve().parents[1]
YAHOO = REPO.parent / "shared" / "datasets" / "raw" / "orcl-1995-2014.txt"
SAMPLE = REPO / "datasets" / "BTCUSDT-1h.parquet"
needs_yahoo = pytest.mark.skipif(not YAHOO.is_file(), reason=f"{YAHOO} not present")

# Interactions of the xgb set built on a 4h or 24h view (read off their definitions).
VIEW_INTERACTIONS = {
    "h4_close_gap",
    "h24_close_gap",
    "close_to_h4_sma_20",
    "close_to_h24_sma_20",
    "rsi_14_h4_diff",
    "rsi_14_h24_diff",
    "rsi_h4_h24_diff",
    "vol_ratio_h1_h4",
    "atr_ratio_h1_h24",
    "trend_agreement",
    "momentum_agreement",
    "macd_agreement",
    "volume_to_h4_mean",
    "volume_to_h24_mean",
}


def sample_1h() -> pd.DataFrame:
    bars = pd.read_parquet(SAMPLE).set_index("timestamp")
    bars = bars[bars.index >= "2024-05-17"].iloc[:3000]  # starts at a 4h and a day boundary
    bars.attrs = {"symbol": "BTCUSDT", "timeframe": "1h"}
    return bars


@needs_yahoo
def test_xgb_on_yahoo_daily_bars_skips_the_views_and_names_them(tmp_path):
    bars = load_source(YAHOO)
    with pytest.warns(SkippedFeaturesWarning, match=r"72 features skipped: 1D bars") as caught:
        feed = build_feature_feed(bars, "xgb")
    text = str(caught[0].message)
    assert caught[0].filename == __file__  # points at the caller, not inside mlstrat
    expected_skipped = {n for n in XGB_FEATURES if n.startswith(("h4_", "h24_"))}
    expected_skipped |= VIEW_INTERACTIONS
    assert all(name in text for name in expected_skipped)
    kept = feature_columns(feed)
    assert kept == [n for n in XGB_FEATURES if n not in expected_skipped]
    assert len(kept) == 118
    meta = feed.attrs["mlstrat"]
    listed = {n for names in meta["skipped_features"].values() for n in names}
    assert listed == expected_skipped
    assert set(meta["skipped_features"]) == {"4h", "24h"}
    # the columns kept are the plain catalogue values on those bars
    plain = compute_features(bars, CORE_FEATURES)
    pd.testing.assert_frame_equal(feed[list(CORE_FEATURES)], plain, check_freq=False)
    # and the file records what was skipped
    path = write_feature_feed(feed, tmp_path / "orcl.parquet")
    assert read_metadata(path)["skipped_features"] == meta["skipped_features"]


def test_4h_bars_keep_the_24h_view_equal_to_the_hourly_one():
    hourly = sample_1h()
    four = resample(hourly, "4h")
    with pytest.warns(UserWarning, match="4h view") as caught:
        feed = build_feature_feed(four, "xgb")
    assert "24h view" not in str(caught[0].message)
    cols = feature_columns(feed)
    assert not any(c.startswith("h4_") for c in cols)
    h24 = [f"h24_{n}" for n in HIGHER_TIMEFRAME_BLOCK]
    assert set(h24) <= set(cols)
    # the last closed day at the 4h bar opening t is the one at the hourly bar opening t + 3h
    base = build_feature_feed(hourly, "xgb")
    at = four.index + pd.Timedelta(hours=3)
    left = feed[h24].to_numpy()
    right = base.loc[at, h24].to_numpy()
    assert np.isfinite(left).sum() > 0.8 * left.size
    np.testing.assert_allclose(left, right, rtol=1e-9, atol=1e-12, equal_nan=True)


@needs_yahoo
def test_a_set_that_cannot_be_built_names_file_set_timeframe_and_alternatives():
    views_only = FeatureSet(
        "views_only",
        1,
        names_builder(("h4_rsi_14", "h24_rsi_14")),
        feature_names=("h4_rsi_14", "h24_rsi_14"),
    )
    bars = load_source(YAHOO)
    with pytest.warns(UserWarning), pytest.raises(ConfigError) as err:
        build_feature_feed(bars, views_only)
    message = str(err.value)
    assert message.startswith(str(YAHOO))
    assert "'views_only' v1 cannot be built on 1D bars" in message
    assert "core (17 of 17 features)" in message and "xgb (118 of 190 features)" in message
    assert "lstm (35 of 46 features)" in message


def test_a_builder_error_is_reported_with_the_set_and_timeframe():
    def broken(bars: pd.DataFrame) -> pd.DataFrame:
        raise ConfigError("needs minute bars")

    bars = sample_1h()
    bars.attrs["source_path"] = "data/BTC.parquet"
    with pytest.raises(ConfigError) as err:
        build_feature_feed(bars, FeatureSet("broken", 2, broken))
    message = str(err.value)
    assert message.startswith("data/BTC.parquet: feature set 'broken' v2 cannot be built on 1h")
    assert "needs minute bars" in message and "xgb (190 of 190 features)" in message


@pytest.mark.slow
@needs_yahoo
def test_yahoo_daily_file_runs_end_to_end_with_the_xgb_set(tmp_path):
    from mlstrat.run import run_experiment

    data = tmp_path / "orcl-1995-2014.txt"
    shutil.copyfile(YAHOO, data)
    raw = {
        "name": "orcl",
        "seed": 1,
        "n_jobs": 1,
        "data": {
            "files": [{"path": data.name, "symbol": "ORCL"}],
            "start": "2011-01-01",
            "end": "2012-12-31",
        },
        "features": {"set": "xgb", "targets": ["direction:1", "forward_return:1"]},
        "predictors": [
            {
                "name": "xgb",
                "predictor": "xgboost",
                "params": {"n_estimators": 10, "max_depth": 2, "early_stopping_rounds": None},
            }
        ],
        "walkforward": {"train": "12mo", "test": "6mo", "validation": 0.2},
        "strategy": {
            "class": str(REPO / "strategies" / "tiered_long_short.py") + ":TieredLongShort",
            "params": {"allow_short": True, "max_hold_bars": 5},
        },
        "sizing": {"params": {"tiers": [[0.5, 0.25], [0.52, 0.5], [0.55, 1.0]]}},
        "broker": {"cash": 10_000, "commission": 0.001, "slippage": 0.0005},
    }
    cfg = tmp_path / "orcl.yaml"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    with pytest.warns(UserWarning, match="72 features skipped"):
        result = run_experiment(cfg, tmp_path / "out", progress=False)
    feed_path = result.out / "features" / "ORCL.parquet"
    meta = read_metadata(feed_path)
    assert sum(r == "feature" for r in meta["roles"].values()) == 118
    # warm-up from the file's earlier years: every feature is defined on the first run bar
    assert meta["warmup"]["history_bars"] > 3000 and meta["warmup"]["warmup_bars"] == 0
    assert meta["warmup"]["first_complete"].startswith("2011-01-03")
    assert result.main_report is not None and result.main_report.is_file()
    assert len(result.trades()) > 0
