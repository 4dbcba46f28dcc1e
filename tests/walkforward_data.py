"""Small real feature feeds and predictor settings shared by the walk-forward tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlstrat.data import load_bars
from mlstrat.features import build_feature_feed, write_feature_feed

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "datasets" / "BTCUSDT-1h.parquet"

#: Tiny XGBoost: enough trees to learn something, fast on two busy cores.
XGB_PARAMS = {"n_estimators": 30, "max_depth": 3, "early_stopping_rounds": 8, "n_jobs": 1}


def sample_bars(n: int = 2600, start: int = 0) -> pd.DataFrame:
    bars = load_bars(SAMPLE)
    out = bars.iloc[start : start + n].copy()
    out.attrs = dict(bars.attrs)
    return out


def write_feed(path: Path, bars: pd.DataFrame | None = None, feature_set: str = "core") -> Path:
    bars = sample_bars() if bars is None else bars
    feed = build_feature_feed(bars, feature_set, targets=("direction:1", "forward_return:1"))
    return write_feature_feed(feed, path)
