"""Time building the full report of a one-year hourly backtest; prints one JSON object.

A real backtrader run of strategies/tiered_long_short.py on 8,760 hourly bars of
the shipped BTCUSDT sample, with causal momentum predictions (logistic of a
12-bar momentum z-score, computed from past closes only). The report is built
(metrics, every chart, report.html) into a temporary directory. Target: < 10 s.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlstrat.backtest import load_strategy, run_backtest
from mlstrat.data import load_bars
from mlstrat.feed import FeatureFeed
from mlstrat.report.html import build_report

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "datasets" / "BTCUSDT-1h.parquet"
BARS = 8760
LIMIT_S = 10.0


def momentum_predictions(bars: pd.DataFrame, lookback: int = 12) -> pd.DataFrame:
    r = np.log(bars["close"]).diff()
    z = r.rolling(lookback).sum() / (r.rolling(4 * lookback).std() * np.sqrt(lookback))
    p_up = 1.0 / (1.0 + np.exp(-z))
    out = pd.DataFrame(
        {
            "fold": (np.arange(len(bars)) // 730).astype(float),
            "signal": np.where(p_up >= 0.5, 1.0, -1.0),
            "confidence": np.maximum(p_up, 1.0 - p_up),
            "proba_up": p_up,
        },
        index=bars.index,
    )
    out.loc[p_up.isna(), ["signal", "confidence"]] = np.nan
    return out


def main() -> None:
    bars = load_bars(SAMPLE).iloc[:BARS]
    feed = FeatureFeed.from_frame(bars, predictions=momentum_predictions(bars))
    strategy = load_strategy("strategies/tiered_long_short.py:TieredLongShort", base=REPO)
    started = time.perf_counter()
    result = run_backtest({"BTCUSDT": feed}, strategy, {"allow_short": True})
    backtest_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        page = build_report(result, Path(tmp) / "run", title="benchmark")
        report_s = time.perf_counter() - started
        size = page.stat().st_size
        pngs = len(list(page.parent.glob("*.png")))
    print(
        json.dumps(
            {
                "benchmark": "report",
                "bars": len(result.equity),
                "trades": len(result.trades),
                "charts": pngs,
                "report_html_bytes": size,
                "backtest_seconds": round(backtest_s, 3),
                "report_seconds": round(report_s, 3),
                "report_vs_backtest": round(report_s / backtest_s, 3),
                "limit_seconds": LIMIT_S,
                "within_limit": report_s < LIMIT_S,
            }
        )
    )


if __name__ == "__main__":
    main()
