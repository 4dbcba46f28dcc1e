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
evidence rows in time order: a row whose score clears the threshold while no trade of
that side is open opens one, which earns the side's outcome
(`mlstrat.walkforward.outcomes`: filled at the next open, closed at the target's
barrier or horizon) minus a round trip's cost, 2 × (commission + slippage). Every
(side, threshold) with at least ``min_trades`` trades is a candidate rule, and the rules
are tested together (`mlstrat.walkforward.selection`): Romano & Wolf's StepM with
Hansen's recentring over a stationary bootstrap of the evidence bars, at a family-wise
false-positive rate of 1 − ``confidence`` (default 5 %). Unlike a Bonferroni bound it
knows that the rules are nested and dependent, so a real edge is not refused for
having been looked at through many thresholds. Among a side's accepted rules the
one with the highest net P&L per evidence bar wins (ties: the lower threshold).

A side with no accepted rule **abstains**: its threshold is +inf (no entries on that
side in the fold); both sides abstaining is a fold that abstains. Either way the fold
keeps its evidence (`Thresholds.evidence`): per candidate its trades, mean net P&L
per trade, statistic, p-value and the smallest mean net edge per trade its sample
could have accepted, so an abstention says whether an edge was absent or undetectable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mlstrat.errors import ConfigError
from mlstrat.walkforward.outcomes import SideOutcomes
from mlstrat.walkforward.selection import DEFAULT_REPS, default_block, stepdown

OBJECTIVES = ("precision_lcb", "precision", "f1")
#: How thresholds are chosen: precision of the direction (default) or net P&L after costs.
METHODS = ("precision", "net_pnl")
#: Threshold options of each method besides the shared low / high / step / multipliers and
#: the costs (commission, slippage) trade outcomes are judged with.
METHOD_KEYS = {
    "precision": ("objective", "min_signals", "fallback"),
    "net_pnl": ("min_trades", "confidence", "reps", "evidence"),
}
#: The objective name `fit_net_thresholds` records.
NET_OBJECTIVE = "net_pnl_stepm"
#: What a net_pnl decision may use: earlier folds' out-of-sample records plus the fold's
#: validation rows (default), or the validation rows alone.
EVIDENCE = ("pooled", "validation")
#: Changes whenever a net_pnl decision changes for the same inputs (keys of cached folds).
NET_PNL_PROCEDURE = "stepm-pooled-1"


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
    evidence: dict[str, Any] | None = None

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

    def reason(self, side: str) -> str | None:
        """Why `side` abstains, in words (None when it trades or there is no evidence):
        the best candidate's mean net P&L per trade and the edge its sample could detect."""
        if not getattr(self, f"abstain_{side}") or not self.evidence:
            return None
        return abstention_reason(self.evidence, side)

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
    reps: int = DEFAULT_REPS,
    seed: int = 0,
) -> Thresholds:
    """Long/short thresholds whose net edge survives the family-wise test (module docstring).

    proba_long / proba_short: the scores thresholded for each side (P(up) / P(down), or
    P(buy) / P(sell)); long / short: each row's trade outcomes; rows: the rows' positions
    in the frame the outcomes' exit rows refer to, increasing (default 0 .. n-1; evidence
    from several periods is their rows concatenated); cost: a round trip's cost as a
    fraction of notional. Rows with a NaN score or outcome are no trade.
    """
    _check_range(low, high)
    if isinstance(min_trades, bool) or not isinstance(min_trades, int) or min_trades < 2:
        raise ConfigError(f"min_trades={min_trades!r} must be an int >= 2", param="min_trades")
    if not 0.5 <= float(confidence) < 1.0:
        raise ConfigError(
            f"confidence={confidence!r} must be in [0.5, 1)", param="confidence", fix="e.g. 0.95"
        )
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 100:
        raise ConfigError(f"reps={reps!r} must be an int >= 100", param="reps", fix="e.g. 2000")
    up, down = np.asarray(proba_long, dtype=float), np.asarray(proba_short, dtype=float)
    rows = np.arange(len(up)) if rows is None else np.asarray(rows)
    grid = np.round(np.arange(low, high + step / 2, step), 10)
    mult = _multiplier(symbol, multipliers)
    bars = np.isfinite(up) | np.isfinite(down)
    n_bars = int(bars.sum())
    position = np.cumsum(bars) - 1  # each row's place among the evidence bars
    columns, names, holds = [], [], []
    raw: dict[str, list[tuple[np.ndarray, int]]] = {"long": [], "short": []}
    for name, score, outcome in (("long", up, long), ("short", down, short)):
        for threshold in grid:
            taken = replay_trades(score, threshold, outcome, rows)
            column = np.zeros(n_bars)
            column[position[taken]] = outcome.ret[taken] - cost
            raw[name].append((column, len(taken)))
            if len(taken) >= min_trades:
                holds.extend(outcome.end[taken] - rows[taken])
            columns.append(column if len(taken) >= min_trades else np.zeros(n_bars))
            names.append((name, float(threshold), len(taken)))
    for i, threshold in enumerate(grid):  # both sides at one threshold: one rule
        (up_col, up_n), (down_col, down_n) = raw["long"][i], raw["short"][i]
        trades = up_n + down_n if up_n and down_n else 0
        columns.append(up_col + down_col if trades >= min_trades else np.zeros(n_bars))
        names.append(("both", float(threshold), trades))
    matrix = np.column_stack(columns) if n_bars else np.zeros((0, len(columns)))
    horizon = int(np.median(holds)) if holds else 1
    found = stepdown(
        matrix, alpha=1.0 - float(confidence), block=default_block(n_bars, horizon),
        reps=reps, seed=seed,
    )  # fmt: skip
    evidence = _evidence(found, names, matrix, n_bars, min_trades, reps)
    chosen = {side: _best(evidence[side]) for side in ("long", "short")}
    both = _best(evidence["both"])
    apart = sum(c["per_bar"] for c in chosen.values() if c is not None)
    if both is not None and both["per_bar"] > apart:
        chosen = {"long": both, "short": both}
    evidence["chosen"] = {
        side: None if c is None else {"rule": "both" if c is both else side,
                                      "threshold": c["threshold"], "pvalue": c["pvalue"]}
        for side, c in chosen.items()
    }  # fmt: skip

    def threshold(side: str) -> float:
        pick = chosen[side]
        return math.inf if pick is None else float(np.clip(pick["threshold"] * mult, low, high))

    def field(side: str, key: str) -> Any:
        return None if chosen[side] is None else chosen[side][key]

    return Thresholds(
        long=threshold("long"),
        short=threshold("short"),
        objective=NET_OBJECTIVE,
        long_score=field("long", "stat"),
        short_score=field("short", "stat"),
        long_signals=field("long", "trades") or 0,
        short_signals=field("short", "trades") or 0,
        multiplier=mult,
        fitted=True,
        method="net_pnl",
        abstain_long=chosen["long"] is None,
        abstain_short=chosen["short"] is None,
        long_pnl=field("long", "per_bar"),
        short_pnl=field("short", "per_bar"),
        cost=float(cost),
        evidence=evidence,
    )


def _evidence(
    found: Any,
    names: list[tuple[str, float, int]],
    matrix: np.ndarray,
    n_bars: int,
    min_trades: int,
    reps: int,
) -> dict[str, Any]:
    """The fold's evidence record: the test's settings and, per side, every threshold that
    traded at all with its trades, mean net per trade, statistic, p-value, verdict and the
    smallest mean net edge per trade its sample could have accepted."""
    detectable = found.detectable_mean()
    out: dict[str, Any] = {
        "procedure": "stepm_spa_stationary_bootstrap",
        "alpha": found.alpha,
        "critical": _finite(found.critical),
        "bars": n_bars,
        "block": found.block,
        "reps": reps,
        "min_trades": min_trades,
        "long": [],
        "short": [],
        "both": [],
    }
    for j, (side, threshold, trades) in enumerate(names):
        if trades == 0:
            continue
        tested = trades >= min_trades
        total = float(matrix[:, j].sum()) if tested else None
        out[side].append({
            "threshold": threshold,
            "trades": trades,
            "mean": total / trades if tested else None,
            "per_bar": total / n_bars if tested and n_bars else None,
            "stat": _finite(found.stat[j]) if tested else None,
            "pvalue": float(found.pvalue[j]) if tested else None,
            "accepted": bool(found.rejected[j]),
            "detectable": _finite(detectable[j] * n_bars / trades) if tested else None,
        })  # fmt: skip
    return out


def _best(candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The accepted candidate with the highest net P&L per bar (ties: lower threshold)."""
    accepted = [c for c in candidates if c["accepted"]]
    if not accepted:
        return None
    return max(accepted, key=lambda c: (c["per_bar"], -c["threshold"]))


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def abstention_reason(evidence: Mapping[str, Any], side: str) -> str:
    """One sentence on why a side abstained, e.g. "best candidate +0.03 %/trade on 41 trades
    (p = 0.41); detectable ≥ 0.21 %/trade at 5 %"."""
    tested = [c for c in evidence.get(side) or [] if c.get("stat") is not None]
    if not tested:
        most = max((c["trades"] for c in evidence.get(side) or []), default=0)
        return (
            f"no threshold made {evidence.get('min_trades')} trades "
            f"(most: {most}) on {evidence.get('bars')} bars"
        )
    best = max(tested, key=lambda c: (c["stat"], -c["threshold"]))
    alpha = 100 * float(evidence["alpha"])
    detect = best.get("detectable")
    need = f"; detectable ≥ {100 * detect:.2f} %/trade at {alpha:g} %" if detect else ""
    return (
        f"best candidate {100 * best['mean']:+.2f} %/trade on {best['trades']} trades "
        f"(p = {best['pvalue']:.2f}){need}"
    )


def decision_text(thresholds: Mapping[str, Any]) -> str | None:
    """A net_pnl fold's decision in words for the report's fold table, e.g. "long ≥ 0.62
    (p = 0.010); short abstains: best candidate ..."; None for other methods."""
    if thresholds.get("method") != "net_pnl" or not thresholds.get("evidence"):
        return None
    parts = []
    chosen = thresholds["evidence"].get("chosen") or {}
    for side in ("long", "short"):
        if thresholds.get(f"abstain_{side}"):
            parts.append(f"{side} abstains: {abstention_reason(thresholds['evidence'], side)}")
            continue
        pick = chosen.get(side) or {}
        rule = " (both sides' rule" if pick.get("rule") == "both" else " ("
        p = f"{rule}{', ' if rule != ' (' else ''}p = {pick['pvalue']:.3f})" if pick else ""
        parts.append(f"{side} ≥ {thresholds.get(side):.2f}{p}")
    return "; ".join(parts)


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
