"""RSI mean reversion on a FeatureFeed: buy when RSI(14) is oversold, exit when it recovers.

A rule strategy with no model, used by the demo to show the feature feed at
work: it reads the precomputed `rsi_14` and `sma_50_ratio` lines like any
other backtrader line.
"""

from __future__ import annotations

import math

import backtrader as bt


class RsiReversion(bt.Strategy):
    """Long-only: enter below `oversold` while price is above its 50-bar SMA, exit above `exit_level`."""

    params = (
        ("oversold", 30.0),
        ("exit_level", 55.0),
        ("trend_filter", False),
        ("stake_fraction", 0.95),
    )

    def next(self) -> None:
        rsi = self.data.rsi_14[0]
        if math.isnan(rsi):
            return
        if not self.position:
            trend_ok = not self.p.trend_filter or self.data.sma_50_ratio[0] > 0
            if rsi < self.p.oversold and trend_ok:
                size = self.broker.getvalue() * self.p.stake_fraction / self.data.close[0]
                self.buy(size=size)
        elif rsi > self.p.exit_level:
            self.close()
