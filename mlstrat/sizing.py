"""Position sizing from model confidence: confidence tiers, AFML bet sizing, volatility targeting.

`TieredConfidenceSizer` is a backtrader Sizer. It turns the current prediction
of a data feed into a number of units:

1. a fraction of ``max_position`` × portfolio value, from
   * ``method="tiered"``: the highest confidence tier reached (by default
     60 % / 65 % / 80 % → 0.25 / 0.5 / 1.0, the tiers of the crypto trading
     bot mlstrat was built to backtest); below the lowest tier the size is 0,
   * ``method="afml"``: López de Prado's bet size from the predicted-class
     probability p among K classes, z = (p − 1/K)/√(p(1 − p)),
     m = 2Φ(z) − 1, averaged over the last ``active_bets`` predictions and
     rounded to a multiple of ``step``,
   * ``method="fixed"``: ``fixed_fraction`` always;
2. times the symbol's size multiplier, and with ``target_vol`` set, times
   target / forecast volatility (capped at ``vol_cap``);
3. then capped so that gross exposure stays within ``leverage`` × value,
   a long entry (with commission) fits the cash even if it fills
   ``price_buffer`` (default 0.2 %) above the reference price — orders fill
   at the next open, and an entry the cash cannot pay is rejected by the
   broker — floored to ``lot_step`` and dropped below ``min_size`` /
   ``min_notional``.

The result is never negative and never NaN; 0 means "do not trade".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import backtrader as bt
import numpy as np

from mlstrat.errors import ConfigError

_EPS = 1e-12

#: (minimum confidence, fraction of max_position): the original bot's low/medium/high tiers.
DEFAULT_TIERS: tuple[tuple[float, float], ...] = ((0.60, 0.25), (0.65, 0.50), (0.80, 1.00))
DEFAULT_TIER_NAMES: tuple[str, ...] = ("low", "medium", "high")


@dataclass(frozen=True)
class Tier:
    """One confidence tier: reached when confidence ≥ ``confidence`` (× symbol multiplier)."""

    name: str
    confidence: float
    fraction: float


class TierTable:
    """Confidence tiers plus per-symbol multipliers on the thresholds and on the size.

    ``symbol_multipliers`` maps a symbol to ``(threshold_multiplier, size_multiplier)``
    or to ``{"threshold": ..., "size": ...}``; unknown symbols use (1, 1).
    """

    def __init__(
        self,
        tiers: Sequence[Sequence[float]] = DEFAULT_TIERS,
        names: Sequence[str] | None = None,
        symbol_multipliers: Mapping[str, Any] | None = None,
    ) -> None:
        tiers = [tuple(t) for t in tiers]
        if not tiers:
            raise ConfigError("no confidence tiers given", param="tiers", fix="give at least one")
        names = list(names) if names is not None else _default_names(len(tiers))
        if len(names) != len(tiers):
            raise ConfigError(
                f"{len(tiers)} tiers but {len(names)} tier names",
                param="tier_names",
                fix="give one name per tier",
            )
        built = []
        for name, tier in zip(names, tiers, strict=True):
            if len(tier) != 2:
                raise ConfigError(
                    f"tier {tier!r} is not a (confidence, fraction) pair",
                    param="tiers",
                    fix="write tiers as ((0.60, 0.25), (0.65, 0.5), (0.80, 1.0))",
                )
            conf, frac = float(tier[0]), float(tier[1])
            if not (0.0 <= conf <= 1.0) or not (0.0 < frac <= 1.0):
                raise ConfigError(
                    f"tier {name!r} has confidence {conf} / fraction {frac}",
                    param="tiers",
                    fix="confidence in [0, 1] and fraction in (0, 1]",
                )
            built.append(Tier(str(name), conf, frac))
        confs = [t.confidence for t in built]
        if any(b <= a for a, b in zip(confs, confs[1:], strict=False)):
            raise ConfigError(
                f"tier confidences {confs} are not strictly increasing",
                param="tiers",
                fix="sort tiers from the lowest to the highest confidence",
            )
        self.tiers: tuple[Tier, ...] = tuple(built)
        self.multipliers: dict[str, tuple[float, float]] = {
            str(sym): _parse_multiplier(sym, value)
            for sym, value in (symbol_multipliers or {}).items()
        }

    def multipliers_for(self, symbol: str | None) -> tuple[float, float]:
        """(threshold multiplier, size multiplier) of a symbol."""
        return self.multipliers.get(symbol or "", (1.0, 1.0))

    def lookup(self, confidence: float, threshold_multiplier: float = 1.0) -> Tier | None:
        """The highest tier whose (scaled) threshold the confidence reaches; None below all/NaN."""
        found = None
        for tier in self.tiers:
            if confidence >= tier.confidence * threshold_multiplier - _EPS:
                found = tier
            else:
                break
        return found

    def names(self, confidence: np.ndarray, threshold_multiplier: float = 1.0) -> np.ndarray:
        """Vectorised tier names ("" below the lowest tier or where confidence is NaN)."""
        confidence = np.asarray(confidence, dtype=float)
        out = np.full(confidence.shape, "", dtype=object)
        with np.errstate(invalid="ignore"):
            for tier in self.tiers:
                out[confidence >= tier.confidence * threshold_multiplier - _EPS] = tier.name
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "tiers": [[t.name, t.confidence, t.fraction] for t in self.tiers],
            "symbol_multipliers": {k: list(v) for k, v in self.multipliers.items()},
        }


def _default_names(n: int) -> list[str]:
    if n == len(DEFAULT_TIER_NAMES):
        return list(DEFAULT_TIER_NAMES)
    return [f"tier{i + 1}" for i in range(n)]


def _parse_multiplier(symbol: Any, value: Any) -> tuple[float, float]:
    if isinstance(value, Mapping):
        unknown = set(value) - {"threshold", "size"}
        if unknown:
            raise ConfigError(
                f"symbol multiplier for {symbol!r} has unknown keys {sorted(unknown)}",
                param="symbol_multipliers",
                fix="use the keys 'threshold' and 'size'",
            )
        pair = (float(value.get("threshold", 1.0)), float(value.get("size", 1.0)))
    else:
        try:
            thr, size = value
            pair = (float(thr), float(size))
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"symbol multiplier for {symbol!r} is {value!r}",
                param="symbol_multipliers",
                fix="give (threshold_multiplier, size_multiplier), e.g. {'BTCUSDT': (1.1, 0.8)}",
            ) from exc
    if not all(math.isfinite(x) and x > 0 for x in pair):
        raise ConfigError(
            f"symbol multipliers for {symbol!r} must be positive, got {pair}",
            param="symbol_multipliers",
            fix="use positive finite multipliers",
        )
    return pair


# --- AFML bet sizing -----------------------------------------------------------------------------


def afml_bet_size(probability: float, num_classes: int = 2) -> float:
    """m = 2Φ(z) − 1 with z = (p − 1/K)/√(p(1 − p)); in [−1, 1], 0 for NaN.

    p is the probability of the predicted class. 2Φ(z) − 1 equals erf(z/√2).
    """
    p = float(probability)
    if not math.isfinite(p) or p <= 0.0:
        return 0.0 if not math.isfinite(p) else -1.0
    if p >= 1.0:
        return 1.0
    z = (p - 1.0 / num_classes) / math.sqrt(p * (1.0 - p))
    return math.erf(z / math.sqrt(2.0))


def discretize(size: float, step: float) -> float:
    """Round a bet size to a multiple of ``step`` (AFML's discretisation), clipped to [−1, 1]."""
    if step > 0:
        size = round(size / step) * step
    return max(-1.0, min(1.0, size))


def average_active_bets(bets: Iterable[tuple[float, float]], num_classes: int = 2) -> float:
    """Mean signed AFML size over (signal, probability) bets; NaN or zero-signal bets are inactive."""
    total, count = 0.0, 0
    for signal, probability in bets:
        if not (math.isfinite(signal) and math.isfinite(probability)) or signal == 0:
            continue
        total += math.copysign(afml_bet_size(probability, num_classes), signal)
        count += 1
    return total / count if count else 0.0


def vol_target_scale(
    forecast: float, target: float, cap: float, periods_per_year: float | None = None
) -> float:
    """target / forecast volatility, capped at ``cap``; 0 when the forecast is missing or ≤ 0.

    With ``periods_per_year`` the per-bar forecast is annualised (× √periods) first,
    so ``target`` is an annual volatility; otherwise both are in the forecast's units.
    """
    if not math.isfinite(forecast) or forecast <= 0.0:
        return 0.0
    if periods_per_year:
        forecast *= math.sqrt(periods_per_year)
    return min(target / forecast, cap)


def affordable_units(comminfo: bt.CommInfoBase, cash: float, price: float) -> float:
    """Most units a long entry can buy with ``cash`` at ``price`` including commission."""
    if cash <= 0 or price <= 0:
        return 0.0
    params = comminfo.p
    if hasattr(params, "fixed") and hasattr(params, "commission"):  # PercentFixedCommission
        return max(0.0, (cash - params.fixed) / (price * (1.0 + params.commission)))
    # Any monotone commission: spending the rest after the commission on cash/price units is
    # always affordable (within a commission of the optimum).
    units = cash / price
    return max(0.0, (cash - comminfo.getcommission(units, price)) / price)


def floor_to_step(units: float, step: float) -> float:
    if step <= 0:
        return units
    return math.floor(units / step + 1e-9) * step


def symbol_of(data: Any) -> str:
    """The symbol of a feed: its cerebro name, else its ``name`` param, else ''."""
    name = getattr(data, "_name", "") or getattr(getattr(data, "p", None), "name", "") or ""
    return str(name)


# --- the sizer -----------------------------------------------------------------------------------

_METHODS = ("tiered", "afml", "fixed")


class TieredConfidenceSizer(bt.Sizer):
    """Units to trade from the prediction's confidence; see the module docstring."""

    params = (
        ("method", "tiered"),
        ("max_position", 1.0),
        ("tiers", DEFAULT_TIERS),
        ("tier_names", None),
        ("symbol_multipliers", None),
        ("num_classes", 2),
        ("step", 0.1),
        ("active_bets", 1),
        ("fixed_fraction", 1.0),
        ("target_vol", None),
        ("vol_cap", 2.0),
        ("periods_per_year", None),
        ("leverage", 1.0),
        ("lot_step", 0.0),
        ("min_size", 0.0),
        ("min_notional", 0.0),
        ("price_buffer", 0.002),
        ("signal_line", "signal"),
        ("confidence_line", "confidence"),
        ("volatility_line", "volatility"),
    )

    def __init__(self) -> None:
        p = self.p
        if p.method not in _METHODS:
            raise ConfigError(
                f"sizer method {p.method!r} is unknown",
                param="method",
                fix=f"use one of {_METHODS}",
            )
        for name, ok, fix in (
            (
                "max_position",
                p.max_position > 0,
                "a positive fraction of portfolio value, e.g. 1.0",
            ),
            ("leverage", p.leverage > 0, "a positive gross-exposure limit, e.g. 1.0"),
            ("num_classes", int(p.num_classes) >= 2, "2 for binary, 3 for three-class"),
            ("step", p.step >= 0, "0 (no rounding) or a step such as 0.1"),
            ("active_bets", int(p.active_bets) >= 1, "1 or the prediction horizon in bars"),
            ("fixed_fraction", 0 < p.fixed_fraction <= 1, "a fraction in (0, 1]"),
            ("vol_cap", p.vol_cap > 0, "a positive cap on the volatility scale, e.g. 2.0"),
            ("price_buffer", 0 <= p.price_buffer < 1, "a fraction such as 0.005"),
            ("min_notional", p.min_notional >= 0, "a non-negative order value"),
        ):
            if not ok:
                raise ConfigError(
                    f"sizer {name}={getattr(p, name)!r} is invalid", param=name, fix=fix
                )
        if p.target_vol is not None and not p.target_vol > 0:
            raise ConfigError(
                f"sizer target_vol={p.target_vol!r} is invalid",
                param="target_vol",
                fix="a positive volatility, or None to switch volatility targeting off",
            )
        self.table = TierTable(p.tiers, p.tier_names, p.symbol_multipliers)
        self._specs: dict[Any, tuple[float, float, float, float]] = {}

    def _spec(self, data: Any) -> tuple[float, float, float, float]:
        """(threshold multiplier, size multiplier, lot step, minimum size) of a feed, cached."""
        spec = self._specs.get(data)
        if spec is None:
            thr_mult, size_mult = self.table.multipliers_for(symbol_of(data))
            spec = (
                thr_mult,
                size_mult,
                _per_symbol(self.p.lot_step, data),
                _per_symbol(self.p.min_size, data),
            )
            self._specs[data] = spec
        return spec

    # -- prediction access: through MLStrategy when present, else straight from the lines --

    def _current(self, data: Any) -> tuple[float, float, float]:
        """(signal, confidence, volatility) of the bar being decided on."""
        pred = getattr(self.strategy, "pred", None)
        if pred is not None:
            p = pred(data)
            return p.signal, p.confidence, p.volatility
        return (
            _line_value(data, self.p.signal_line, 0),
            _line_value(data, self.p.confidence_line, 0),
            _line_value(data, self.p.volatility_line, 0),
        )

    def _history(self, data: Any, n: int) -> list[tuple[float, float]]:
        """(signal, confidence) of the last n bars, newest first, as far back as the data goes."""
        pred = getattr(self.strategy, "pred", None)
        offset = getattr(self.strategy, "_ago", 0)
        n = max(1, min(n, len(data) + offset))
        if pred is not None:
            return [(q.signal, q.confidence) for q in (pred(data, -i) for i in range(n))]
        return [
            (
                _line_value(data, self.p.signal_line, -i),
                _line_value(data, self.p.confidence_line, -i),
            )
            for i in range(n)
        ]

    def _reference_price(self, data: Any) -> float:
        ref = getattr(self.strategy, "reference_price", None)
        return float(ref(data)) if ref is not None else float(data.close[0])

    # -- sizing --

    def fraction(self, data: Any, isbuy: bool) -> float:
        """Fraction of ``max_position`` × value for a new position (before cash/leverage caps)."""
        p = self.p
        thr_mult, size_mult = self._spec(data)[:2]
        signal, confidence, volatility = self._current(data)
        if p.method == "tiered":
            tier = self.table.lookup(confidence, thr_mult)
            frac = tier.fraction if tier is not None else 0.0
        elif p.method == "afml":
            bet = average_active_bets(self._history(data, int(p.active_bets)), int(p.num_classes))
            bet = discretize(bet, float(p.step))
            frac = bet if isbuy else -bet
        else:
            frac = float(p.fixed_fraction)
        frac *= size_mult
        if p.target_vol is not None:
            frac *= vol_target_scale(volatility, p.target_vol, p.vol_cap, p.periods_per_year)
        return frac if frac > 0.0 else 0.0

    def _getsizing(self, comminfo: bt.CommInfoBase, cash: float, data: Any, isbuy: bool) -> float:
        p = self.p
        frac = self.fraction(data, isbuy)
        if not frac > 0.0:
            return 0.0
        price = self._reference_price(data)
        value = self.broker.getvalue()
        if not (price > 0 and value > 0 and math.isfinite(price) and math.isfinite(value)):
            return 0.0
        units = value * p.max_position * frac / price

        # Orders made earlier on this bar execute first, in order, at the same fill: count
        # the positions and cash as they will be when this order's turn comes.
        sizes = {d: pos.size for d, pos in self.broker.positions.items() if pos.size}
        for order in getattr(self.broker, "submitted", ()):
            if order.parent is not None or not order.alive():
                continue  # bracket children only become live after their parent fills
            ref = price if order.data is data else float(order.data.close[0])
            cash -= order.size * ref + comminfo.getcommission(order.size, ref)
            sizes[order.data] = sizes.get(order.data, 0.0) + order.size

        side = 1.0 if isbuy else -1.0
        exposure = 0.0
        held = sizes.get(data, 0.0)
        for other, size in sizes.items():
            if other is data:
                if size * side > 0:  # adding to the same side counts; the opposite side is closed
                    exposure += abs(size) * price
            else:
                exposure += abs(size) * float(other.close[0])
        units = min(units, max(0.0, p.leverage * value - exposure) / price)

        if isbuy:
            available = cash
            if held < 0:  # buying back the short first costs cash
                available += held * price - comminfo.getcommission(abs(held), price)
            units = min(
                units, affordable_units(comminfo, available, price * (1.0 + p.price_buffer))
            )

        _, _, lot_step, min_size = self._spec(data)
        units = floor_to_step(units, lot_step)
        if units < min_size or units * price < p.min_notional:
            return 0.0
        return units if math.isfinite(units) and units > 0.0 else 0.0


def _per_symbol(value: Any, data: Any) -> float:
    if isinstance(value, Mapping):
        return float(value.get(symbol_of(data), 0.0))
    return float(value or 0.0)


def _line_value(data: Any, name: str | None, ago: int) -> float:
    if not name:
        return math.nan
    line = getattr(data.lines, name, None)
    if line is None:
        return math.nan
    return float(line[ago])
