"""Dynamic, symbol-specific confidence thresholds, fitted on validation data.

The crypto paper trader mlstrat was built to backtest replaced its fixed 70 %
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
  falls back to ``fallback`` (0.6, the paper trader's base threshold);
* the chosen value is multiplied by the symbol's multiplier (``multipliers``,
  default 1.0; > 1 makes that symbol more conservative) and clipped to
  ``[low, high]``. Ties go to the lower threshold (more signals).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mlstrat.errors import ConfigError

OBJECTIVES = ("precision_lcb", "precision", "f1")


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
    if not 0.0 <= low <= high <= 1.0:
        raise ConfigError(f"threshold range [{low}, {high}] is not inside [0, 1]")
    if not low <= fallback <= high:
        raise ConfigError(f"fallback threshold {fallback} is outside [{low}, {high}]")
    up = np.asarray(proba_up, dtype=float)
    yu = np.asarray(y_up, dtype=float)
    down = 1.0 - up if proba_down is None else np.asarray(proba_down, dtype=float)
    yd = 1.0 - yu if y_down is None else np.asarray(y_down, dtype=float)
    mult = 1.0
    if multipliers and symbol is not None:
        mult = float(multipliers.get(symbol, 1.0))
    if mult <= 0:
        raise ConfigError(f"symbol multiplier for {symbol} must be > 0, got {mult}")
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


def default_thresholds(value: float = 0.6) -> Thresholds:
    """Unfitted thresholds (no validation data): the paper trader's base 60 % on both sides."""
    return Thresholds(long=value, short=value, objective="none", fitted=False)
