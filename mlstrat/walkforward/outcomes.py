"""What a long and a short entered at each bar would have made: the evidence behind
net-of-cost thresholds and meta-labels.

A trade decided at bar t's close fills at t+1's open (what a market order gets, see
`mlstrat.broker`) and exits where the fold's target says the bet ends:

* barrier targets (`triple_barrier_h`, `price_jump_h`): at the first barrier the *position*
  touches (its own profit-take / stop-loss, so a short's outcome is computed, not taken
  as the negative of the long's), else at the close of t+h (`features.labels` rules);
* every other target (`direction_h`, `three_class_h`, `net_return_h`, ...): at the close
  of t+h.

Each side has its gross return at exit, the exit row and whether it *pays*: for barrier
targets the profit-take was touched first and the return beats a round trip's cost
(2 × (commission + slippage)), for the others the return beats that cost. Outcomes are
computed from the bars before a boundary only (`trade_outcomes(bars, ..., stop=p)` reads
rows < p), so a fold's validation evidence never reads its test period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError
from mlstrat.features.labels import PROFIT_TAKE, net_forward_returns, triple_barrier_labels
from mlstrat.features.targets import Target

#: The broker's costs the demo uses (0.1 % commission, 5 bp slippage per side).
DEFAULT_COMMISSION = 0.001
DEFAULT_SLIPPAGE = 0.0005


def round_trip_cost(commission: float, slippage: float) -> float:
    """First-order cost of a round trip as a fraction of notional: one commission and one
    slippage per side, 2 × (commission + slippage)."""
    for name, value in (("commission", commission), ("slippage", slippage)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}", param=name)
        if not (np.isfinite(value) and 0 <= value < 1):
            raise ConfigError(
                f"{name}={value!r} must be a fraction in [0, 1)",
                param=name,
                fix="e.g. commission 0.001 (0.1 %) and slippage 0.0005 (5 bp)",
            )
    return 2.0 * (float(commission) + float(slippage))


@dataclass(frozen=True)
class SideOutcomes:
    """One side's trade per row: gross return at exit, exit row (NaN: undecided before the
    boundary, or no trade) and whether it pays net of costs (NaN where undecided)."""

    ret: np.ndarray
    end: np.ndarray
    pays: np.ndarray

    def take(self, rows: np.ndarray) -> SideOutcomes:
        """The outcomes of `rows` (positions), exit rows kept as absolute positions."""
        return SideOutcomes(self.ret[rows], self.end[rows], self.pays[rows])


@dataclass(frozen=True)
class TradeOutcomes:
    """Long and short outcomes per row and the round-trip cost they were judged against."""

    long: SideOutcomes
    short: SideOutcomes
    cost: float

    def take(self, rows: np.ndarray) -> TradeOutcomes:
        return TradeOutcomes(self.long.take(rows), self.short.take(rows), self.cost)


def trade_outcomes(
    bars: pd.DataFrame,
    target: Target,
    *,
    stop: int | None = None,
    commission: float = DEFAULT_COMMISSION,
    slippage: float = DEFAULT_SLIPPAGE,
) -> TradeOutcomes:
    """Outcomes of a long and a short at every row of `bars[:stop]` (see the module
    docstring); rows past `stop` are NaN. `target` sets the exit rule and horizon."""
    cost = round_trip_cost(commission, slippage)
    n = len(bars)
    stop = n if stop is None else max(0, min(int(stop), n))
    seen = bars.iloc[:stop]
    sides = [_side(seen, target, side, cost) for side in (1.0, -1.0)]
    return TradeOutcomes(*(_padded(s, n) for s in sides), cost)


def _side(bars: pd.DataFrame, target: Target, side: float, cost: float) -> SideOutcomes:
    """One side's outcomes on `bars` (every row a trade of that side)."""
    h = target.horizon
    sides = pd.Series(side, index=bars.index)
    if target.kind in ("triple_barrier", "price_jump"):
        frame = triple_barrier_labels(
            bars, h, side=sides, entry="next_open", **_barriers(bars, target)
        )
        ret = frame["ret"].to_numpy(dtype=float)
        pays = (frame["barrier"].to_numpy() == PROFIT_TAKE) & (ret - cost > 0)
    else:
        frame = net_forward_returns(
            bars, h, commission=0.0, slippage=0.0, entry="next_open", side=sides
        )
        ret = frame["gross"].to_numpy(dtype=float)
        pays = ret - cost > 0
    end = frame["t1_pos"].to_numpy(dtype=float)
    return SideOutcomes(ret, end, np.where(np.isnan(end), np.nan, pays.astype(float)))


def _barriers(bars: pd.DataFrame, target: Target) -> dict[str, object]:
    """Barrier widths of a barrier target: σ multiples (the target's σ), or a fixed fraction
    for a jump."""
    if target.kind == "triple_barrier":
        return {
            "profit_take": target.profit_take,
            "stop_loss": target.stop_loss,
            "volatility": target.barrier_volatility(bars),
        }
    if target.sigmas:
        return {"profit_take": target.threshold, "stop_loss": target.threshold,
                "volatility": target.barrier_volatility(bars)}  # fmt: skip
    size = pd.Series(target.threshold, index=bars.index, dtype=float)
    return {"profit_take": 1.0, "stop_loss": 1.0, "volatility": size}


def _padded(side: SideOutcomes, n: int) -> SideOutcomes:
    """`side` extended with NaN rows up to length n."""

    def pad(values: np.ndarray) -> np.ndarray:
        return np.concatenate([values, np.full(n - len(values), np.nan)])

    return SideOutcomes(pad(side.ret), pad(side.end), pad(side.pays))
