"""A trend or direction signal, sized so the position's volatility meets a target.

The side comes from a moving-average trend (``signal_source="trend"``: long
when the fast SMA of the close is above the slow one, short below if
``allow_short``) or from the direction model (``signal_source="model"``).
The size comes from the volatility forecast on the feed's ``volatility``
line, e.g. the volatility LSTM's predicted next-bars return standard
deviation: the sizer scales a full position by target / forecast volatility,
capped, so calm markets get larger positions and turbulent ones smaller.
Without a forecast for a bar there is no new position.

    mlstrat backtest --feed FEED --predictions vol_predictions.parquet \\
        --strategy strategies/vol_target.py:VolTarget --out reports/vol_target
"""

from __future__ import annotations

import math
from typing import Any

import backtrader as bt

from mlstrat.errors import ConfigError
from mlstrat.sizing import TieredConfidenceSizer
from mlstrat.strategy import MLStrategy, Pred


class VolTarget(MLStrategy):
    """Trend/direction side, volatility-targeted size (0.5 annualised by default on hourly bars)."""

    params = (
        ("signal_source", "trend"),  # "trend" or "model"
        ("fast", 24),
        ("slow", 96),
        ("allow_short", False),
    )
    default_sizer = TieredConfidenceSizer
    default_sizer_params = {
        "method": "fixed",
        "fixed_fraction": 1.0,
        "target_vol": 0.5,
        "periods_per_year": 8760,
        "vol_cap": 1.0,
        "price_buffer": 0.002,
    }

    def __init__(self) -> None:
        if self.p.signal_source not in ("trend", "model"):
            raise ConfigError(
                f"signal_source {self.p.signal_source!r} is unknown",
                param="signal_source",
                fix="use 'trend' or 'model'",
            )
        if self.p.signal_source == "trend":
            self.p.signal_line = None  # the side comes from the moving averages, not a model
        super().__init__()
        self._trend = {}
        if self.p.signal_source == "trend":
            for data in self._slots:
                fast = bt.indicators.SMA(data.close, period=self.p.fast)
                slow = bt.indicators.SMA(data.close, period=self.p.slow)
                self._trend[data] = (fast, slow)

    def side(self, data: Any, pred: Pred) -> int:
        """+1 / −1 / 0 from the chosen signal source (0 while it is undefined)."""
        if self.p.signal_source == "model":
            if math.isnan(pred.signal):
                return 0
            return int(math.copysign(1, pred.signal)) if pred.signal else 0
        fast, slow = self._trend[data]
        if len(fast) < 1 or len(slow) < 1:
            return 0
        f, s = fast[self._ago], slow[self._ago]
        if math.isnan(f) or math.isnan(s) or f == s:
            return 0
        return 1 if f > s else -1

    def entry_signal(self, data: Any, pred: Pred) -> int:
        side = self.side(data, pred)
        return side if side > 0 or self.p.allow_short else 0

    def exit_signal(self, data: Any, pred: Pred, position: Any) -> str | None:
        side = self.side(data, pred)
        if side * position.size < 0:
            return "trend_flip" if self.p.signal_source == "trend" else "signal_flip"
        return None
