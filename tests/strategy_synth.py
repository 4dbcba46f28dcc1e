"""Shared fixtures for strategy tests: shipped sample bars and causal rule-based prediction frames.

The predictions are deterministic functions of past closes only (momentum
z-score → logistic P(up)), written in the prediction-feed layout, so the
strategy layer can be tested without training a model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlstrat.feed import FeatureFeed

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "datasets"


def sample_bars(symbol: str = "BTCUSDT", start: int = 0, n: int | None = 2000) -> pd.DataFrame:
    """Bars of the shipped 1h sample: UTC index named timestamp, OHLCV float64."""
    df = pd.read_parquet(SAMPLE / f"{symbol}-1h.parquet").set_index("timestamp")
    df = df.iloc[start : None if n is None else start + n].copy()
    df.attrs = {"symbol": symbol, "timeframe": "1h"}
    return df


def momentum_predictions(
    bars: pd.DataFrame, lookback: int = 12, fold_bars: int = 500, vol_window: int = 24
) -> pd.DataFrame:
    """A prediction feed from past closes only: P(up) = logistic(momentum z-score).

    Columns: fold, signal, confidence, proba_up, volatility, threshold_long,
    threshold_short (per "fold" of ``fold_bars`` bars, alternating 0.60/0.62).
    """
    r = np.log(bars["close"]).diff()
    z = r.rolling(lookback).sum() / (r.rolling(4 * lookback).std() * np.sqrt(lookback))
    proba_up = 1.0 / (1.0 + np.exp(-z))
    fold = np.arange(len(bars)) // fold_bars
    thr = np.where(fold % 2 == 0, 0.60, 0.62)
    out = pd.DataFrame(
        {
            "fold": fold.astype(float),
            "signal": np.where(proba_up >= 0.5, 1.0, -1.0),
            "confidence": np.maximum(proba_up, 1.0 - proba_up),
            "proba_up": proba_up,
            "volatility": r.rolling(vol_window).std(),
            "threshold_long": thr,
            "threshold_short": thr,
        },
        index=bars.index,
    )
    out.loc[proba_up.isna(), ["signal", "confidence"]] = np.nan
    return out


def prediction_feed(bars: pd.DataFrame, predictions: pd.DataFrame, **kwargs) -> FeatureFeed:
    """FeatureFeed of bars with the prediction columns joined as lines."""
    return FeatureFeed.from_frame(bars, predictions=predictions, **kwargs)
