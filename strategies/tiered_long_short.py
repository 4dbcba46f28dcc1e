"""Long/short with the default confidence tiers and the walk-forward's per-fold thresholds.

Entries follow the model's signal when its confidence clears the fold's
threshold (the ``threshold_long`` / ``threshold_short`` columns the
walk-forward writes; the fixed 0.60 where a fold has none). The size comes
from the confidence tier: 60 % → a quarter, 65 % → half, 80 % → the whole of
``max_position`` × portfolio value. A position is closed when the signal
flips (and reversed when the new side qualifies), after ``max_hold_bars``, or
by the optional bracket stop / take-profit. Symbol-specific multipliers
(threshold factor, size factor) raise or lower a symbol's thresholds and size:

    mlstrat backtest --feed btc.parquet --predictions wf/predictions.parquet \\
        --strategy strategies/tiered_long_short.py:TieredLongShort \\
        --sizer-param 'symbol_multipliers={BTCUSDT: [1.05, 0.8]}' --out reports/tiered
"""

from __future__ import annotations

from typing import Any

from mlstrat.errors import ConfigError
from mlstrat.sizing import TieredConfidenceSizer
from mlstrat.strategy import MLStrategy, Pred


class TieredLongShort(MLStrategy):
    """Trade both sides; the confidence tier sets the size; exits on flips and max holding time."""

    params = (
        ("allow_short", True),
        ("use_feed_thresholds", True),
        ("max_hold_bars", 48),
        ("min_tier", None),  # the lowest tier that trades; None: the table's lowest
    )
    default_sizer = TieredConfidenceSizer
    default_sizer_params = {"method": "tiered", "max_position": 1.0, "price_buffer": 0.002}

    def start(self) -> None:
        super().start()
        names = [t.name for t in self.tier_table.tiers]
        lowest = names[0] if self.p.min_tier is None and names else self.p.min_tier
        if lowest not in names:
            raise ConfigError(
                f"min_tier {self.p.min_tier!r} is not a tier",
                param="min_tier",
                fix=f"one of {names}",
            )
        self._allowed = set(names[names.index(lowest) :])

    def entry_signal(self, data: Any, pred: Pred) -> int:
        if pred.tier not in self._allowed:
            return 0
        return super().entry_signal(data, pred)
