"""Long/flat on a direction model: in when P(up) clears a threshold, out when it fades.

The simplest model strategy. It reads ``proba_up`` (or ``signal`` and
``confidence`` when the feed has no probabilities), goes long with a fixed
fraction of the portfolio when P(up) ≥ ``long_threshold``, and goes flat when
P(up) drops below ``exit_below``. The gap between the two levels is
hysteresis: it keeps the strategy from flipping in and out around one level.

    mlstrat backtest --feed FEED --predictions PRED \\
        --strategy strategies/direction_long_flat.py:DirectionLongFlat --out reports/long_flat
"""

from __future__ import annotations

import math
from typing import Any

from mlstrat.sizing import TieredConfidenceSizer
from mlstrat.strategy import MLStrategy, Pred


class DirectionLongFlat(MLStrategy):
    """Long when P(up) ≥ long_threshold, flat when P(up) < exit_below; never short."""

    params = (
        ("long_threshold", 0.55),
        ("exit_below", 0.50),
        ("allow_short", False),
    )
    default_sizer = TieredConfidenceSizer
    default_sizer_params = {"method": "fixed", "fixed_fraction": 0.95}

    def _p_up(self, pred: Pred) -> float:
        if not math.isnan(pred.proba):
            return pred.proba
        if math.isnan(pred.confidence):
            return math.nan
        return pred.confidence if pred.signal > 0 else 1.0 - pred.confidence

    def entry_signal(self, data: Any, pred: Pred) -> int:
        return 1 if self._p_up(pred) >= self.p.long_threshold else 0

    def exit_signal(self, data: Any, pred: Pred, position: Any) -> str | None:
        return "proba_below_exit" if self._p_up(pred) < self.p.exit_below else None
