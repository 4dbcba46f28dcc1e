"""Dynamic, symbol-specific confidence thresholds, fitted on validation data.

The crypto trading bot mlstrat was built to backtest replaced its fixed 70 %
confidence threshold with thresholds that move between 60 % and 80 % per
symbol. Here each fold fits its own pair on the fold's validation tail (never
on test data):

* the **long** threshold ``t_long`` opens longs when P(up) ≥ t_long; the
  **short** threshold ``t_short`` opens shorts when P(down) = 1 − P(up) ≥ t_short
  (three-class models: P(buy) and P(sell)). Both are confidences in
  ``[low, high]`` (default [0.5, 0.8]);
* candidates are a grid over that range; each is scored by an objective on
  the validation rows it would trade. The default, ``"precision_lcb"``, is
  the Wilson 95 % lower bound of precision: it prefers precise thresholds but
  does not reward a handful of lucky signals the way raw precision does;
  ``"precision"`` and ``"f1"`` are available too;
* a candidate must produce at least ``min_signals`` validation signals
  (default: max(10, 2 % of the validation rows)); if none does, the side
  falls back to ``fallback`` (0.6, the original bot's base threshold);
* the chosen value is multiplied by the symbol's multiplier (``multipliers``,
  default 1.0; > 1 makes that symbol more conservative) and clipped to
  ``[low, high]``. Ties go to the lower threshold (more signals).

That is ``method: precision``, the default. ``method: net_pnl`` (`fit_net_thresholds`)
knows what a trade costs. For each side and each grid threshold it replays the
validation rows in time order: a row whose score clears the threshold while no
trade of that side is open opens one, which earns the side's outcome
(`mlstrat.walkforward.outcomes`: filled at the next open, closed at the target's
barrier or horizon) minus a round trip's cost, 2 × (commission + slippage). The
threshold with the highest net P&L per validation bar wins, among those with

* at least ``min_trades`` trades (default 10), and
* a **lower confidence bound** on the mean net P&L per trade above zero: the
  one-sided Student-t bound mean − t·sd/√m at level ``confidence`` (default
  0.95), Bonferroni-corrected for the 2 × (grid size) thresholds tried, so trying
  many thresholds on noise does not manufacture an edge (trades that do not
  overlap in time are close enough to independent for the t bound).

A side with no such threshold **abstains**: its threshold is +inf (no entries on
that side in the fold); both sides abstaining is a fold that abstains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mlstrat.errors import ConfigError
from mlstrat.walkforward.outcomes import SideOutcomes

OBJECTIVES = ("precision_lcb", "precision", "f1")
#: How thresholds are chosen: precision of the direction (default) or net P&L after costs.
METHODS = ("precision", "net_pnl")
#: Threshold options of each method besides the shared low / high / step / multipliers and
#: the costs (commission, slippage) trade outcomes are judged with.
METHOD_KEYS = {
    "precision": ("objective", "min_signals", "fallback"),
    "net_pnl": ("min_trades", "confidence"),
}


@dataclass(frozen=True)
class Thresholds:
    """A fold's long/short confidence thresholds and how they were chosen."""

    long: float
    short: float
    objective: str
    long_score: float | None = None
    short_score: float | None = None
    long_signals: int = 0
    short_signals: int = 0
    multiplier: float = 1.0
    fitted: bool = True
    method: str = "precision"
    abstain_long: bool = False
    abstain_short: bool = False
    long_pnl: float | None = None
    short_pnl: float | None = None
    cost: float | None = None

    def __post_init__(self) -> None:
        # An abstaining side never trades: +inf (stored as null in JSON, read back here).
        for side in ("long", "short"):
            if getattr(self, f"abstain_{side}") or getattr(self, side) is None:
                object.__setattr__(self, side, math.inf)

    @property
    def abstain(self) -> bool:
        """True when the fold opens nothing: both sides abstain."""
        return self.abstain_long and self.abstain_short

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def apply(self, proba_up: np.ndarray, proba_down: np.ndarray | None = None) -> np.ndarray:
        """Signals (+1/−1/0, NaN where the probability is NaN) under these thresholds."""
        up = np.asarray(proba_up, dtype=float)
        down = 1.0 - up if proba_down is None else np.asarray(proba_down, dtype=float)
        return apply_thresholds(up, down, self.long, self.short)


def apply_thresholds(
    proba_up: np.ndarray, proba_down: np.ndarray, long: float, short: float
) -> np.ndarray:
    """+1 where P(up) ≥ long, −1 where P(down) ≥ short; the more probable side wins if both."""
    up = np.asarray(proba_up, dtype=float)
    down = np.asarray(proba_down, dtype=float)
    go_long = up >= long
    go_short = down >= short
    both = go_long & go_short
    signal = np.where(go_long, 1.0, 0.0) - np.where(go_short, 1.0, 0.0)
    signal = np.where(both, np.sign(up - down), signal)
    return np.where(np.isnan(up) | np.isnan(down), np.nan, signal)


def _score(hits: np.ndarray, signals: np.ndarray, positives: int, objective: str) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = hits / signals
        if objective == "precision":
            return precision
        if objective == "f1":
            recall = hits / positives if positives else np.zeros_like(precision)
            return 2 * precision * recall / (precision + recall)
        z = 1.959963984540054
        n = signals
        centre = precision + z * z / (2 * n)
        margin = z * np.sqrt(precision * (1 - precision) / n + z * z / (4 * n * n))
        return (centre - margin) / (1 + z * z / n)


def _fit_side(
    score: np.ndarray, target: np.ndarray, grid: np.ndarray, min_signals: int, objective: str
) -> tuple[float | None, float | None, int]:
    order = np.sort(score)
    # signals at t = count(score >= t); hits likewise among positives
    signals = len(order) - np.searchsorted(order, grid, side="left")
    pos = np.sort(score[target == 1])
    hits = len(pos) - np.searchsorted(pos, grid, side="left")
    values = _score(hits.astype(float), signals.astype(float), len(pos), objective)
    ok = (signals >= min_signals) & np.isfinite(values)
    if not ok.any():
        return None, None, 0
    best = np.flatnonzero(ok & (values == values[ok].max()))[0]
    return float(grid[best]), float(values[best]), int(signals[best])


def fit_thresholds(
    proba_up: np.ndarray,
    y_up: np.ndarray,
    *,
    proba_down: np.ndarray | None = None,
    y_down: np.ndarray | None = None,
    symbol: str | None = None,
    multipliers: Mapping[str, float] | None = None,
    low: float = 0.5,
    high: float = 0.8,
    step: float = 0.01,
    min_signals: int | None = None,
    objective: str = "precision_lcb",
    fallback: float = 0.6,
) -> Thresholds:
    """Fit long/short thresholds on validation probabilities and realised outcomes.

    proba_up / y_up: P(up) (or P(buy)) and 1 where the move was up (buy), else 0.
    proba_down / y_down: the short side; default 1 − P(up) and 1 − y_up (binary).
    Rows where a probability or an outcome is NaN are ignored.
    """
    if objective not in OBJECTIVES:
        raise ConfigError(
            f"unknown threshold objective {objective!r}", fix=f"use one of {OBJECTIVES}"
        )
    _check_range(low, high)
    if not low <= fallback <= high:
        raise ConfigError(f"fallback threshold {fallback} is outside [{low}, {high}]")
    up = np.asarray(proba_up, dtype=float)
    yu = np.asarray(y_up, dtype=float)
    down = 1.0 - up if proba_down is None else np.asarray(proba_down, dtype=float)
    yd = 1.0 - yu if y_down is None else np.asarray(y_down, dtype=float)
    mult = _multiplier(symbol, multipliers)
    grid = np.round(np.arange(low, high + step / 2, step), 10)

    def side(score: np.ndarray, target: np.ndarray) -> tuple[float, float | None, int, bool]:
        keep = np.isfinite(score) & np.isfinite(target)
        score, target = score[keep], target[keep]
        need = max(10, int(np.ceil(0.02 * len(score)))) if min_signals is None else min_signals
        t, value, count = _fit_side(score, target, grid, need, objective)
        if t is None:
            return fallback, None, 0, False
        return t, value, count, True

    t_long, s_long, n_long, ok_long = side(up, yu)
    t_short, s_short, n_short, ok_short = side(down, yd)
    return Thresholds(
        long=float(np.clip(t_long * mult, low, high)),
        short=float(np.clip(t_short * mult, low, high)),
        objective=objective,
        long_score=s_long,
        short_score=s_short,
        long_signals=n_long,
        short_signals=n_short,
        multiplier=mult,
        fitted=ok_long and ok_short,
    )


def fit_net_thresholds(
    proba_long: np.ndarray,
    proba_short: np.ndarray,
    long: SideOutcomes,
    short: SideOutcomes,
    *,
    rows: np.ndarray | None = None,
    cost: float,
    symbol: str | None = None,
    multipliers: Mapping[str, float] | None = None,
    low: float = 0.5,
    high: float = 0.8,
    step: float = 0.01,
    min_trades: int = 10,
    confidence: float = 0.95,
) -> Thresholds:
    """Long/short thresholds maximising net P&L per validation bar (module docstring).

    proba_long / proba_short: the scores thresholded for each side (P(up) / P(down), or
    P(buy) / P(sell)); long / short: each row's trade outcomes; rows: the rows' positions
    in the frame the outcomes' exit rows refer to (default 0 .. n-1); cost: a round trip's
    cost as a fraction of notional. Rows with a NaN score or outcome are no trade.
    """
    _check_range(low, high)
    if isinstance(min_trades, bool) or not isinstance(min_trades, int) or min_trades < 2:
        raise ConfigError(f"min_trades={min_trades!r} must be an int >= 2", param="min_trades")
    if not 0.5 <= float(confidence) < 1.0:
        raise ConfigError(
            f"confidence={confidence!r} must be in [0.5, 1)", param="confidence", fix="e.g. 0.95"
        )
    up, down = np.asarray(proba_long, dtype=float), np.asarray(proba_short, dtype=float)
    rows = np.arange(len(up)) if rows is None else np.asarray(rows)
    grid = np.round(np.arange(low, high + step / 2, step), 10)
    # Bonferroni over every threshold tried on both sides, one-sided
    level = 1.0 - (1.0 - float(confidence)) / (2 * len(grid))
    mult = _multiplier(symbol, multipliers)
    sides = {}
    for name, score, outcome in (("long", up, long), ("short", down, short)):
        sides[name] = _net_side(score, outcome, rows, grid, cost, min_trades, level)
    chosen = {name: side[0] for name, side in sides.items()}
    return Thresholds(
        long=float(np.clip(chosen["long"] * mult, low, high)) if chosen["long"] else math.inf,
        short=float(np.clip(chosen["short"] * mult, low, high)) if chosen["short"] else math.inf,
        objective="net_pnl_lcb",
        long_score=sides["long"][2],
        short_score=sides["short"][2],
        long_signals=sides["long"][3],
        short_signals=sides["short"][3],
        multiplier=mult,
        fitted=True,
        method="net_pnl",
        abstain_long=chosen["long"] is None,
        abstain_short=chosen["short"] is None,
        long_pnl=sides["long"][1],
        short_pnl=sides["short"][1],
        cost=float(cost),
    )


def replay_trades(
    score: np.ndarray, threshold: float, outcome: SideOutcomes, rows: np.ndarray
) -> np.ndarray:
    """Indices of the rows that open a trade: score >= threshold, an outcome known, and the
    previous trade of this side closed (its exit row is before the row)."""
    ok = np.flatnonzero((score >= threshold) & np.isfinite(outcome.ret) & np.isfinite(outcome.end))
    taken: list[int] = []
    free = -math.inf
    for i in ok:
        if rows[i] > free:
            taken.append(int(i))
            free = outcome.end[i]
    return np.asarray(taken, dtype=np.int64)


def _net_side(
    score: np.ndarray,
    outcome: SideOutcomes,
    rows: np.ndarray,
    grid: np.ndarray,
    cost: float,
    min_trades: int,
    level: float,
) -> tuple[float | None, float | None, float | None, int]:
    """(threshold or None, net P&L per bar, its lower bound per bar, trades) of one side."""
    from scipy.stats import t as student_t

    n_bars = int(np.isfinite(score).sum())
    best: tuple[float | None, float | None, float | None, int] = (None, None, None, 0)
    if n_bars == 0:
        return best
    for threshold in grid:
        net = outcome.ret[replay_trades(score, threshold, outcome, rows)] - cost
        m = len(net)
        if m < min_trades:
            continue
        sd = float(np.std(net, ddof=1))
        lower = float(net.mean()) - float(student_t.ppf(level, m - 1)) * sd / math.sqrt(m)
        per_bar = float(net.sum()) / n_bars
        if lower > 0 and (best[1] is None or per_bar > best[1]):
            best = (float(threshold), per_bar, lower * m / n_bars, m)
    return best


def _check_range(low: float, high: float) -> None:
    if not 0.0 <= low <= high <= 1.0:
        raise ConfigError(f"threshold range [{low}, {high}] is not inside [0, 1]")


def _multiplier(symbol: str | None, multipliers: Mapping[str, float] | None) -> float:
    """The symbol's threshold multiplier (1.0 when none is given); must be > 0."""
    mult = 1.0
    if multipliers and symbol is not None:
        mult = float(multipliers.get(symbol, 1.0))
    if mult <= 0:
        raise ConfigError(f"symbol multiplier for {symbol} must be > 0, got {mult}")
    return mult


def default_thresholds(value: float = 0.6) -> Thresholds:
    """Unfitted thresholds (no validation data): the original bot's base 60 % on both sides."""
    return Thresholds(long=value, short=value, objective="none", fitted=False)
