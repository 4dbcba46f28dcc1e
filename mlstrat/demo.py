"""`make demo`: the whole pipeline on the shipped sample, end to end.

Bars (datasets/BTCUSDT-1h.parquet) -> causal `core` features -> Parquet
feature feed -> FeatureFeed -> a backtrader strategy -> headline statistics.
Run as `python -m mlstrat.demo [--out DIR]`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd

from mlstrat.data import load_bars
from mlstrat.features import build_feature_feed, write_feature_feed
from mlstrat.feed import FeatureFeed

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "datasets" / "BTCUSDT-1h.parquet"
HOURS_PER_YEAR = 24 * 365


class _Equity(bt.Analyzer):
    """Portfolio value at every bar (after the broker has processed the bar)."""

    def start(self) -> None:
        self.values: list[float] = []
        self.times: list = []

    def next(self) -> None:
        self.values.append(self.strategy.broker.getvalue())
        self.times.append(self.data.datetime.datetime(0))

    def get_analysis(self) -> pd.Series:
        return pd.Series(self.values, index=pd.DatetimeIndex(self.times, tz="UTC"))


def headline(equity: pd.Series, trades: dict, periods_per_year: int) -> dict[str, float]:
    """Total return, CAGR, annualised Sharpe, max drawdown and trade counts of an equity curve."""
    returns = equity.pct_change().dropna()
    years = len(returns) / periods_per_year
    total = equity.iloc[-1] / equity.iloc[0] - 1.0
    sd = returns.std(ddof=1)
    closed = trades.get("total", {}).get("closed", 0)
    won = trades.get("won", {}).get("total", 0)
    return {
        "start_value": float(equity.iloc[0]),
        "final_value": float(equity.iloc[-1]),
        "total_return": float(total),
        "cagr": float((1.0 + total) ** (1.0 / years) - 1.0) if years > 0 else float("nan"),
        "sharpe": float(returns.mean() / sd * math.sqrt(periods_per_year)) if sd > 0 else 0.0,
        "max_drawdown": float((equity / equity.cummax() - 1.0).min()),
        "trades": int(closed),
        "win_rate": float(won / closed) if closed else float("nan"),
        "buy_and_hold": float("nan"),
    }


def run(out: Path, data: Path = SAMPLE, cash: float = 10_000.0, commission: float = 0.001) -> dict:
    from strategies.rsi_reversion import RsiReversion

    t0 = time.perf_counter()
    bars = load_bars(data)
    frame = build_feature_feed(bars, "core", targets=("direction:1",))
    out.mkdir(parents=True, exist_ok=True)
    feed_path = write_feature_feed(frame, out / "features.parquet")
    print(f"features: {len(frame):,} bars x {len(frame.columns)} columns -> {feed_path}")

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(FeatureFeed.from_parquet(feed_path), name=bars.attrs.get("symbol") or "data")
    cerebro.addstrategy(RsiReversion)
    cerebro.broker.setcash(cash)
    cerebro.broker.setcommission(commission=commission)
    cerebro.addanalyzer(_Equity, _name="equity")
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    strat = cerebro.run()[0]

    equity = strat.analyzers.equity.get_analysis()
    stats = headline(equity, strat.analyzers.trades.get_analysis(), HOURS_PER_YEAR)
    close = frame["close"]
    stats["buy_and_hold"] = float(close.iloc[-1] / close.iloc[0] - 1.0)
    stats["seconds"] = time.perf_counter() - t0
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "demo")
    parser.add_argument("--data", type=Path, default=SAMPLE)
    args = parser.parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # the example strategies live beside the package
    stats = run(args.out, args.data)
    print("\nRSI reversion on BTCUSDT 1h, commission 0.1 % per side")
    for key, value in stats.items():
        text = f"{value:,.4f}" if isinstance(value, float) and not np.isnan(value) else str(value)
        print(f"  {key:<14} {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
