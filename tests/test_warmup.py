"""Warm-up from history: features computed on every bar up to data.end, then cut at data.start.

The reference is the feature set computed on the whole file, read at the same
timestamps; targets near data.end must not use bars after it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlstrat.errors import DataError
from mlstrat.features import build_feature_feed, feature_columns, read_feature_feed, target_columns
from mlstrat.features.feed_io import cut_after_warmup, write_feature_feed

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "datasets" / "BTCUSDT-1h.parquet"
START, END = pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2025-03-01", tz="UTC")
TARGETS = ("direction:1", "forward_return:4")


def sample() -> pd.DataFrame:
    bars = pd.read_parquet(SAMPLE).set_index("timestamp")
    bars.attrs = {"symbol": "BTCUSDT", "timeframe": "1h"}
    return bars


def first_complete_row(frame: pd.DataFrame) -> int:
    """Independent count: rows before the first row without NaN."""
    ok = ~np.isnan(frame.to_numpy()).any(axis=1)
    return int(np.flatnonzero(ok)[0])


@pytest.fixture(scope="module")
def feeds():
    bars = sample()
    full = build_feature_feed(bars, "xgb", TARGETS)
    to_end = bars[bars.index <= END].copy()
    to_end.attrs = dict(bars.attrs)
    run = cut_after_warmup(build_feature_feed(to_end, "xgb", TARGETS), START)
    return bars, full, run


def test_features_at_data_start_equal_the_whole_file_computation(feeds):
    bars, full, run = feeds
    cols = feature_columns(full)
    assert run.index[0] == START and run.index[-1] == END
    assert not run.loc[START, cols].isna().any()  # complete from the first run bar on
    pd.testing.assert_series_equal(run.loc[START, cols], full.loc[START, cols])
    # every row of the run, not only the first, is the whole-file value
    pd.testing.assert_frame_equal(run[cols], full.loc[START:END, cols], check_freq=False)
    # what the old order (cut at data.start, then compute) gave: NaN for weeks
    late = bars[(bars.index >= START) & (bars.index <= END)].copy()
    late.attrs = dict(bars.attrs)
    cold = build_feature_feed(late, "xgb", TARGETS)
    assert cold.loc[START, cols].isna().sum() > 50
    assert np.isnan(cold[cols].to_numpy()[: 24 * 30]).any(axis=1).all()


def test_targets_never_use_bars_after_data_end(feeds):
    _, full, run = feeds
    targets = target_columns(run)
    tail = run[targets].iloc[-4:]
    assert tail["forward_return_4"].isna().all()  # needs bars after data.end
    assert full.loc[tail.index, "forward_return_4"].notna().all()
    head = run.index[:-4]
    pd.testing.assert_frame_equal(run.loc[head, targets], full.loc[head, targets])


def test_warmup_metadata_counts_history_and_lookback(feeds, tmp_path):
    bars, full, run = feeds
    info = run.attrs["mlstrat"]["warmup"]
    cols = feature_columns(full)
    assert info["history_bars"] == int((bars.index < START).sum())
    assert info["lookback_bars"] == first_complete_row(full[cols])
    assert info["warmup_bars"] == 0 and info["first_complete"] == START.isoformat()
    assert info["never_defined"] == []
    # the whole-file feed says how long the set needs before every column is defined
    whole = full.attrs["mlstrat"]["warmup"]
    assert whole["warmup_bars"] == info["lookback_bars"]
    assert whole["first_complete"] == full.index[info["lookback_bars"]].isoformat()
    path = write_feature_feed(run, tmp_path / "f.parquet")
    assert read_feature_feed(path).attrs["mlstrat"]["warmup"] == info
    # a zone-less start means UTC
    naive = cut_after_warmup(full, "2025-01-01")
    assert naive.index[0] == START
    assert naive.attrs["mlstrat"]["warmup"]["history_bars"] == info["history_bars"]


def test_short_history_leaves_a_warmup_inside_the_run():
    bars = sample()
    start = bars.index[100]  # less history than the 24h views need
    run = cut_after_warmup(build_feature_feed(bars.iloc[:4000], "xgb"), start)
    info = run.attrs["mlstrat"]["warmup"]
    assert info["history_bars"] == 100
    assert info["warmup_bars"] == info["lookback_bars"] - 100 > 0
    assert info["first_complete"] == run.index[info["warmup_bars"]].isoformat()


def run_config(tmp_path: Path, start: str, end: str) -> Path:
    data = tmp_path / "BTCUSDT-1h.parquet"
    shutil.copyfile(SAMPLE, data)
    raw = {
        "name": "warm",
        "seed": 3,
        "n_jobs": 1,
        "data": {"files": [{"path": data.name}], "start": start, "end": end},
        "features": {"set": "core", "targets": ["direction:1", "forward_return:1"]},
        "predictors": [
            {
                "name": "xgb",
                "predictor": "xgboost",
                "params": {"n_estimators": 10, "max_depth": 2, "early_stopping_rounds": None},
            }
        ],
        "walkforward": {"train": "30D", "test": "15D", "validation": 0.25},
        "strategy": {
            "class": str(REPO / "strategies" / "tiered_long_short.py") + ":TieredLongShort",
            "params": {"allow_short": True, "max_hold_bars": 12},
        },
        "sizing": {"params": {"tiers": [[0.5, 0.25], [0.52, 0.5], [0.55, 1.0]]}},
        "report": {"enabled": False},
    }
    cfg = tmp_path / "warm.yaml"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return cfg


@pytest.mark.slow
def test_run_features_start_warm_at_data_start(tmp_path):
    from mlstrat.run import run_experiment

    result = run_experiment(
        run_config(tmp_path, "2025-01-01", "2025-03-01"), tmp_path / "out", progress=False
    )
    feed = read_feature_feed(result.out / "features" / "BTCUSDT.parquet")
    full = build_feature_feed(sample(), "core", ("direction:1", "forward_return:1"))
    cols = feature_columns(full)
    assert feed.index[0] == START
    pd.testing.assert_series_equal(feed.loc[START, cols], full.loc[START, cols])
    info = feed.attrs["mlstrat"]["warmup"]
    assert info["first_complete"] == START.isoformat() and info["history_bars"] > 0
    assert np.isnan(feed["forward_return_1"].iloc[-1])


def test_data_start_after_the_file_is_a_data_error_naming_the_file(tmp_path):
    from mlstrat.run import run_experiment

    cfg = run_config(tmp_path, "2030-01-01", "2030-06-01")
    with pytest.raises(DataError) as err:
        run_experiment(cfg, tmp_path / "out", progress=False)
    assert "BTCUSDT-1h.parquet" in str(err.value) and "data.start=2030-01-01" in str(err.value)
