"""MLStrategy: a backtrader Strategy that trades model predictions riding along as feed lines.

A user strategy is a subclass that overrides a hook or two:

    class LongOnlyConfident(MLStrategy):
        params = (("long_threshold", 0.7),)

        def entry_signal(self, data, pred):
            return 1 if pred.signal > 0 and pred.confidence >= 0.7 else 0

Each bar, for every data feed that carries a ``signal`` line (one feed per
symbol; any number of them in one Cerebro; with ``signal_line=None`` every
feed, for strategies whose own rule replaces the model signal), MLStrategy reads the prediction
(`pred(data)` → `Pred`), calls `on_prediction`, then asks `exit_signal` (when
in a position) or `entry_signal` (when flat) and places orders sized by the
strategy's sizer. Orders placed at bar t's close fill at bar t+1's open
(see `mlstrat.broker` for the other fill timings). NaN predictions never
trade with the default hooks (and the tiered sizer gives them size 0).

Exits: a signal flip (``exit_on_flip``), ``max_hold_bars``, and
``stop_loss`` / ``take_profit`` / ``trail_percent`` as backtrader bracket
orders whose prices are fractions away from the reference price (the close
the decision was made on). Bracket exits are live from the bar after the
entry fill (backtrader activates bracket children once the parent has filled).
With ``cooldown_bars`` = N, no entry is decided at the N bars starting with
the bar an exit filled on (N = 0 allows reversing in one decision).

Turnover control: with ``exit_threshold`` set (hysteresis), a position is no
longer closed because the signal dropped below its entry threshold or flipped
weakly; it is closed when the model's confidence in the *held* side
(`held_confidence`: P(up) for a long and 1 − P(up) for a short from a binary
model, P(buy) / P(sell) from a three-class or meta model) falls below
``exit_threshold`` ("confidence_exit"), or when the opposite side qualifies for
an entry ("signal_flip", reversed when allowed). ``min_hold_bars`` = N keeps
exit signals (flip, confidence) from closing a position before it has been held
N bars (the fill bar counts as one); bracket stops and ``max_hold_bars`` still
apply.

Tiers: `resolve_tiers` (called by `start`, once the sizer is attached) fixes
the confidence tier table and each feed's tier thresholds; `tier_table` reads it.
Online retraining (a model refitted inside the backtest, writing into the
prediction lines) is the `mlstrat.retraining.OnlineRetraining` mixin.
Subclasses overriding ``start`` or ``stop`` should call ``super()``.

Analyzers for the report: `PredictionRecorder` (per bar per symbol:
prediction, tier, position), `TradeLog` (closed trades with tier and exit
reason), `FillLog` (every execution at its raw and slipped price) and
`EquityRecorder` (value and cash per bar). They work with any
strategy; MLStrategy adds tier and exit-reason tags.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from mlstrat.broker import raw_fill_price
from mlstrat.errors import ConfigError
from mlstrat.features.targets import Target
from mlstrat.report.result import FILL_COLUMNS, TRADE_COLUMNS
from mlstrat.sizing import TierTable, symbol_of

NAN = math.nan
_EPS = 1e-12
_FINAL = frozenset(
    (
        bt.Order.Completed,
        bt.Order.Canceled,
        bt.Order.Expired,
        bt.Order.Margin,
        bt.Order.Rejected,
    )
)
# Days from backtrader's float day numbers (0001-01-01 is day 1) to 1970-01-01.
_EPOCH_DAYS = 719163.0


@dataclass(slots=True)
class Pred:
    """The prediction of one bar for one data feed.

    signal: +1 / −1 / 0 (NaN before the model's warm-up); confidence: probability
    of the predicted side; proba: P(up) (NaN when the feed has no probabilities);
    tier: confidence tier name ("" below the lowest tier).
    """

    signal: float
    confidence: float
    proba: float
    tier: str
    expected_return: float = NAN
    volatility: float = NAN

    @property
    def valid(self) -> bool:
        """True when signal and confidence are both numbers."""
        return self.signal == self.signal and self.confidence == self.confidence


class _Slot:
    """Per-data state: cached line objects and position bookkeeping."""

    __slots__ = (
        "data",
        "symbol",
        "signal",
        "confidence",
        "proba",
        "proba_hold",
        "proba_up",
        "proba_buy",
        "proba_sell",
        "expected_return",
        "volatility",
        "threshold_long",
        "threshold_short",
        "fold",
        "clock",
        "position",
        "tier_steps",
        "thr_mult",
        "last_len",
        "entry_bar",
        "exit_bar",
        "pending",
        "children",
        "open_tier",
        "closed_tier",
        "closed_reason",
    )

    def __init__(self, data: Any) -> None:
        self.data = data
        self.symbol = symbol_of(data)
        self.clock = data.lines.lines[0]  # its lencount is len(data), without the call chain
        self.position: Any = None
        self.tier_steps: tuple[tuple[float, str], ...] = ()
        self.thr_mult = 1.0
        self.last_len = 0
        self.entry_bar = -1
        self.exit_bar = -(10**9)
        self.pending: set[int] = set()
        self.children: tuple = ()
        self.open_tier = ""
        self.closed_tier = ""
        self.closed_reason = ""


def _line(data: Any, name: str | None) -> Any:
    return getattr(data.lines, name, None) if name else None


# Per-bar reads go straight to a line's buffer: line.array[line._idx + ago] is exactly what
# LineBuffer.__getitem__ returns, minus two Python calls per read.


class MLStrategy(bt.Strategy):
    """Trades predictions carried by data feed lines; subclass and override the hooks."""

    params = (
        # names of the prediction lines on each data feed
        ("signal_line", "signal"),
        ("confidence_line", "confidence"),
        ("proba_line", "proba_up"),
        ("expected_return_line", "expected_return"),
        ("volatility_line", "volatility"),
        ("threshold_long_line", "threshold_long"),
        ("threshold_short_line", "threshold_short"),
        ("fold_line", "fold"),
        # entries
        ("long_threshold", 0.60),
        ("short_threshold", 0.60),
        ("use_feed_thresholds", True),
        ("allow_short", False),
        # exits
        ("exit_on_flip", True),
        ("max_hold_bars", None),
        ("stop_loss", None),
        ("take_profit", None),
        ("trail_percent", None),
        ("cooldown_bars", 0),
        # turnover control: exit below this confidence in the held side; hold at least N bars
        ("exit_threshold", None),
        ("min_hold_bars", 0),
        # confidence tiers for Pred.tier; None: the sizer's table, else sizing.DEFAULT_TIERS
        ("tiers", None),
    )

    def __init__(self) -> None:
        p = self.p
        self._check_params()
        self._ago = 0
        self._table: TierTable | None = None
        self._slots: dict[Any, _Slot] = {}
        self._ml_orders: dict[int, tuple[_Slot, str]] = {}
        for data in self.datas:
            signal = _line(data, p.signal_line)
            if signal is None and p.signal_line:
                continue  # e.g. an index or reference feed without predictions
            slot = _Slot(data)
            slot.signal = signal
            slot.confidence = _line(data, p.confidence_line)
            slot.proba = _line(data, p.proba_line)
            slot.proba_hold = None
            slot.proba_up = _line(data, p.proba_line)
            slot.proba_buy = _line(data, "proba_buy")
            slot.proba_sell = _line(data, "proba_sell")
            if slot.proba is None and _line(data, "proba_buy") is not None:
                slot.proba = _line(data, "proba_buy")  # three-class: P(up) = P(buy) + P(hold)/2
                slot.proba_hold = _line(data, "proba_hold")
            slot.expected_return = _line(data, p.expected_return_line)
            slot.volatility = _line(data, p.volatility_line)
            slot.threshold_long = _line(data, p.threshold_long_line)
            slot.threshold_short = _line(data, p.threshold_short_line)
            slot.fold = _line(data, p.fold_line)
            self._slots[data] = slot
        if not self._slots:
            names = list(self.datas[0].lines.getlinealiases()) if self.datas else []
            raise ConfigError(
                f"no data feed has a prediction line named {p.signal_line!r}",
                column=p.signal_line,
                fix=f"join predictions onto the feed or set signal_line to one of {names}",
            )
        for slot in self._slots.values():
            if slot.confidence is None and slot.signal is not None:
                raise ConfigError(
                    f"feed {slot.symbol or '?'} has a signal line but no {p.confidence_line!r} line",
                    column=p.confidence_line,
                    fix="add a confidence column to the predictions or set confidence_line",
                )
        self._slot_list = tuple(self._slots.values())
        self._coo = False
        self._bracket = bool(p.stop_loss or p.take_profit or p.trail_percent)
        self.rejected_orders = 0  # margin/rejected orders, warned about at the end

    def _check_params(self) -> None:
        p = self.p
        for name in ("stop_loss", "take_profit", "trail_percent"):
            value = getattr(p, name)
            if value is not None and not (0 < value < 1):
                raise ConfigError(
                    f"{name}={value!r} must be a fraction in (0, 1)",
                    param=name,
                    fix="e.g. 0.02 for 2 % away from the entry reference price",
                )
        if p.stop_loss and p.trail_percent:
            raise ConfigError(
                "stop_loss and trail_percent both set",
                param="trail_percent",
                fix="choose a fixed stop or a trailing stop",
            )
        if p.max_hold_bars is not None and int(p.max_hold_bars) < 1:
            raise ConfigError(
                f"max_hold_bars={p.max_hold_bars!r} must be ≥ 1", param="max_hold_bars"
            )
        if int(p.cooldown_bars) < 0:
            raise ConfigError(
                f"cooldown_bars={p.cooldown_bars!r} must be ≥ 0", param="cooldown_bars"
            )
        if p.exit_threshold is not None and not (0 < p.exit_threshold < 1):
            raise ConfigError(
                f"exit_threshold={p.exit_threshold!r} must be a confidence in (0, 1)",
                param="exit_threshold",
                fix="e.g. 0.5: keep a position while the held side's confidence is >= 0.5",
            )
        if int(p.min_hold_bars) < 0:
            raise ConfigError(
                f"min_hold_bars={p.min_hold_bars!r} must be ≥ 0", param="min_hold_bars"
            )
        if p.max_hold_bars is not None and int(p.min_hold_bars) > int(p.max_hold_bars):
            raise ConfigError(
                f"min_hold_bars={p.min_hold_bars!r} exceeds max_hold_bars={p.max_hold_bars!r}",
                param="min_hold_bars",
                fix="use min_hold_bars <= max_hold_bars",
            )

    # ------------------------------------------------------------------ setup

    def _choose_tiers(self) -> TierTable:
        """The ``tiers`` param, else the attached sizer's table, else the defaults (no state set)."""
        table = self.p.tiers
        if table is None:
            table = getattr(getattr(self, "_sizer", None), "table", None)
        if table is None:
            return TierTable()
        return table if isinstance(table, TierTable) else TierTable(table)

    def resolve_tiers(self) -> TierTable:
        """Fix the tier table used for Pred.tier and each feed's tier thresholds (symbol multiplier
        applied); `start` calls it once the sizer is attached."""
        table = self._table = self._choose_tiers()
        for slot in self._slot_list:
            slot.thr_mult = table.multipliers_for(slot.symbol)[0]
            slot.tier_steps = tuple(
                (t.confidence * slot.thr_mult - _EPS, t.name) for t in table.tiers
            )
        return table

    @property
    def tier_table(self) -> TierTable:
        """The tier table in force (`resolve_tiers`); before `start`, the one it would choose."""
        return self._table if self._table is not None else self._choose_tiers()

    def start(self) -> None:
        self.resolve_tiers()
        self._coo = bool(getattr(self.cerebro.p, "cheat_on_open", False))

    def stop(self) -> None:
        if self.rejected_orders:
            warnings.warn(
                f"{self.rejected_orders} orders were rejected by the broker (not enough cash at "
                "the fill price); raise the sizer's price_buffer or lower max_position",
                stacklevel=2,
            )

    # ------------------------------------------------------------------ prediction access

    def pred(self, data: Any = None, ago: int = 0) -> Pred:
        """The prediction for ``data`` at ``ago`` bars back (0: the bar being decided on)."""
        slot = self._slots[data if data is not None else self.datas[0]]
        if self._table is None:
            self.resolve_tiers()
        return self._pred(slot, self._ago + ago)

    def _pred(self, slot: _Slot, a: int) -> Pred:
        line = slot.confidence
        conf = NAN if line is None else line.array[line._idx + a]
        tier = ""
        for threshold, name in slot.tier_steps:
            if conf >= threshold:
                tier = name
            else:
                break
        line = slot.proba
        if line is None:
            proba = NAN
        else:
            proba = line.array[line._idx + a]
            if slot.proba_hold is not None:
                proba += 0.5 * slot.proba_hold[a]
        line = slot.signal
        signal = NAN if line is None else line.array[line._idx + a]
        line = slot.expected_return
        er = NAN if line is None else line.array[line._idx + a]
        line = slot.volatility
        vol = NAN if line is None else line.array[line._idx + a]
        return Pred(signal, conf, proba, tier, er, vol)

    def thresholds(self, data: Any) -> tuple[float, float]:
        """(long, short) confidence thresholds in force for ``data`` at the decision bar.

        Per-fold thresholds from the feed's threshold lines when present and
        finite (already symbol-specific); otherwise the fixed params times the
        symbol's threshold multiplier.
        """
        slot = self._slots[data]
        long = short = NAN
        if self.p.use_feed_thresholds:
            if slot.threshold_long is not None:
                long = slot.threshold_long[self._ago]
            if slot.threshold_short is not None:
                short = slot.threshold_short[self._ago]
        if long != long:
            long = self.p.long_threshold * slot.thr_mult
        if short != short:
            short = self.p.short_threshold * slot.thr_mult
        return long, short

    def reference_price(self, data: Any) -> float:
        """Price sizes and bracket levels are computed from: the close, or the open with cheat-on-open."""
        return data.open[0] if self._coo else data.close[0]

    def current_fold(self, data: Any = None) -> float:
        slot = self._slots[data if data is not None else self.datas[0]]
        return NAN if slot.fold is None else slot.fold[self._ago]

    # ------------------------------------------------------------------ hooks to override

    def on_prediction(self, data: Any, pred: Pred) -> None:
        """Called every bar for every traded feed before any decision; default: nothing."""

    def entry_signal(self, data: Any, pred: Pred) -> int:
        """+1 to go long, −1 to go short, 0 to stay flat (called only when flat)."""
        conf = pred.confidence
        if not conf >= 0.0:  # NaN
            return 0
        signal = pred.signal
        if signal > 0:
            return 1 if conf >= self.thresholds(data)[0] - _EPS else 0
        if signal < 0 and self.p.allow_short:
            return -1 if conf >= self.thresholds(data)[1] - _EPS else 0
        return 0

    def exit_signal(self, data: Any, pred: Pred, position: bt.Position) -> str | bool | None:
        """A reason string (or True) to close the position now; default: the signal flipped,
        or with ``exit_threshold`` the hysteresis rule of the module docstring."""
        side = 1 if position.size > 0 else -1
        if self.p.exit_threshold is not None:
            if self.held_confidence(data, side) < self.p.exit_threshold - _EPS:
                return "confidence_exit"
            if self.p.exit_on_flip and self.entry_signal(data, pred) == -side:
                return "signal_flip"
            return None
        if not self.p.exit_on_flip:
            return None
        signal = pred.signal
        if (side > 0 and signal < 0) or (side < 0 and signal > 0):
            return "signal_flip"
        return None

    def held_confidence(self, data: Any, side: int) -> float:
        """The model's confidence in `side` (+1 long, -1 short) at the decision bar: P(up) or
        1 − P(up) with a ``proba_up`` line, else P(buy) or P(sell) with three-class lines,
        else the confidence when the signal agrees with `side` (0 when it opposes it)."""
        slot = self._slots[data]
        a = self._ago
        if slot.proba_up is not None:
            up = slot.proba_up.array[slot.proba_up._idx + a]
            return up if side > 0 else 1.0 - up
        line = slot.proba_buy if side > 0 else slot.proba_sell
        if line is not None:
            return line.array[line._idx + a]
        pred = self._pred(slot, a)
        return 0.0 if pred.signal * side < 0 else pred.confidence

    # ------------------------------------------------------------------ the bar loop

    def prenext(self) -> None:
        # Feeds with different start dates: trade those that have bars already.
        self.next()

    def next(self) -> None:
        if self._table is None:
            self.resolve_tiers()  # start() was overridden without super()
        if self._coo:
            return
        for slot in self._slot_list:
            n = slot.clock.lencount
            if n != slot.last_len:  # a new bar for this feed
                slot.last_len = n
                self._decide(slot, n)

    def prenext_open(self) -> None:
        self.next_open()

    def next_open(self) -> None:
        if not self._coo:
            return
        self._ago = -1  # decide on the bar that just closed, at this bar's open
        try:
            for slot in self._slot_list:
                n = slot.clock.lencount
                if n != slot.last_len and n >= 2:
                    slot.last_len = n
                    self._decide(slot, n - 1)
        finally:
            self._ago = 0

    def _decide(self, slot: _Slot, bar: int) -> None:
        data = slot.data
        pred = self._pred(slot, self._ago)
        self.on_prediction(data, pred)
        if slot.pending:
            return
        position = slot.position
        if position is None:
            position = slot.position = self.broker.getposition(data)
        if position.size:
            p = self.p
            reason: Any = None
            held_bars = bar - slot.entry_bar + 1
            if p.max_hold_bars and held_bars >= p.max_hold_bars:
                reason = "max_hold"
            elif held_bars >= p.min_hold_bars:
                reason = self.exit_signal(data, pred, position)
            if not reason:
                return
            held = position.size
            self.exit(data, "exit_signal" if reason is True else str(reason))
            if p.cooldown_bars == 0:
                side = self.entry_signal(data, pred)
                if side * held < 0:  # reversal into the opposite side
                    self.enter(data, side, pred)
            return
        if bar - slot.exit_bar < self.p.cooldown_bars:
            return
        side = self.entry_signal(data, pred)
        if side:
            self.enter(data, side, pred)

    # ------------------------------------------------------------------ orders

    def enter(self, data: Any, side: int, pred: Pred | None = None) -> bt.Order | None:
        """Open a position of the sizer's size on ``side``; returns the main order (None: size 0)."""
        slot = self._slots[data]
        size = self.getsizing(data, isbuy=side > 0)
        if not size > 0.0:
            return None
        pred = pred if pred is not None else self.pred(data)
        p = self.p
        if not self._bracket:
            order = self.buy(data=data, size=size) if side > 0 else self.sell(data=data, size=size)
            self._track(order, slot, "entry", pred.tier)
            return order
        ref = self.reference_price(data)
        stop_kind = "trailing_stop" if p.trail_percent else "stop_loss"
        kwargs: dict[str, Any] = {"data": data, "size": size, "exectype": bt.Order.Market}
        if p.stop_loss:
            kwargs["stopprice"] = ref * (1 - side * p.stop_loss)
        elif p.trail_percent:
            kwargs["stopexec"] = bt.Order.StopTrail
            kwargs["stopargs"] = {"trailpercent": p.trail_percent}
        else:
            kwargs["stopexec"] = None
        if p.take_profit:
            kwargs["limitprice"] = ref * (1 + side * p.take_profit)
        else:
            kwargs["limitexec"] = None
        main, stop, limit = (self.buy_bracket if side > 0 else self.sell_bracket)(**kwargs)
        self._track(main, slot, "entry", pred.tier)
        children = []
        for order, kind in ((stop, stop_kind), (limit, "take_profit")):
            if order is not None:
                self._ml_orders[order.ref] = (slot, kind)
                children.append(order)
        slot.children = tuple(children)
        return main

    def exit(self, data: Any, reason: str = "exit_signal") -> bt.Order | None:
        """Close the position in ``data`` at the next fill, cancelling live bracket exits."""
        slot = self._slots[data]
        for child in slot.children:
            if child.alive():
                self.cancel(child)
        slot.children = ()
        order = self.close(data=data)
        if order is not None:
            self._track(order, slot, reason, "")
        return order

    def _track(self, order: bt.Order | None, slot: _Slot, kind: str, tier: str) -> None:
        if order is None:
            return
        self._ml_orders[order.ref] = (slot, kind)
        slot.pending.add(order.ref)
        if kind == "entry":
            order.addinfo(mlstrat_tier=tier)

    def _addnotification(self, order: bt.Order, quicknotify: bool = False) -> None:
        # Bookkeeping here rather than in notify_order, so user subclasses that override
        # notify_order (to log, say) cannot break position tracking by forgetting super().
        info = self._ml_orders.get(order.ref)
        if info is not None and order.status in _FINAL:
            slot, kind = info
            del self._ml_orders[order.ref]
            slot.pending.discard(order.ref)
            if order.status in (bt.Order.Margin, bt.Order.Rejected):
                self.rejected_orders += 1
            if order.status == bt.Order.Completed:
                bar = len(slot.data)
                if kind == "entry":
                    slot.entry_bar = bar
                    slot.open_tier = order.info.get("mlstrat_tier", "") or ""
                else:
                    slot.exit_bar = bar
                    slot.closed_tier = slot.open_tier
                    slot.closed_reason = kind
                    if kind in ("stop_loss", "take_profit", "trailing_stop"):
                        slot.children = ()
        super()._addnotification(order, quicknotify=quicknotify)

    def trade_tags(self, data: Any) -> tuple[str, str]:
        """(tier at entry, exit reason) of the trade that just closed in ``data``."""
        slot = self._slots.get(data)
        if slot is None:
            return "", ""
        return slot.closed_tier, slot.closed_reason


# ---------------------------------------------------------------------- analyzers


def bt_times_to_utc(values: Any) -> pd.DatetimeIndex:
    """backtrader float day numbers → tz-aware UTC timestamps (rounded to the millisecond)."""
    arr = np.asarray(values, dtype=float)
    ms = np.rint((arr - _EPOCH_DAYS) * 86_400_000.0).astype("int64")
    return pd.DatetimeIndex(pd.to_datetime(ms, unit="ms", utc=True).as_unit("ns"), name="timestamp")


#: Record column → the target kinds whose first feed line fills it when not named.
_RECORDED_TARGETS = (
    ("target", ("direction", "three_class")),
    ("forward_return", ("forward_return",)),
)


class PredictionRecorder(bt.Analyzer):
    """One record per bar per data feed: prediction, tier, position (for the report).

    It does no work per bar. Positions are marked from order fills (the
    broker's position size after each execution, on the bar it executed);
    predictions, prices, folds and realised targets are read from the feed
    lines once at the end. The position of a bar is the one held from its open
    to its close. Needs full line buffers (Cerebro ``exactbars=0``).
    ``get_analysis()["records"]`` is a DataFrame with the BacktestResult columns.
    """

    params = (
        ("signal_line", "signal"),
        ("confidence_line", "confidence"),
        ("proba_line", "proba_up"),
        ("fold_line", "fold"),
        ("target_line", None),
        ("forward_return_line", None),
        ("tiers", None),
    )

    def start(self) -> None:
        if getattr(self.strategy.cerebro.p, "exactbars", 0):
            raise ConfigError(
                "PredictionRecorder needs the full line buffers but exactbars is set",
                column="exactbars",
                fix="run Cerebro with exactbars=0 or drop the recorder",
            )
        self._marks: dict[Any, list[tuple[int, float]]] = {d: [] for d in self.strategy.datas}

    def notify_order(self, order: bt.Order) -> None:
        if order.status in (bt.Order.Completed, bt.Order.Partial) and order.executed.size:
            marks = self._marks.get(order.data)
            if marks is not None:
                marks.append((len(order.data) - 1, float(order.executed.psize)))

    def _table(self) -> TierTable:
        tiers = self.p.tiers
        if isinstance(tiers, TierTable):
            return tiers
        if tiers is not None:
            return TierTable(tiers)
        strategy_table = getattr(self.strategy, "tier_table", None)
        if isinstance(strategy_table, TierTable):
            return strategy_table
        return getattr(getattr(self.strategy, "_sizer", None), "table", None) or TierTable()

    def stop(self) -> None:
        table = self._table()
        frames = [self._frame(data, marks, table) for data, marks in self._marks.items()]
        records = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if len(frames) > 1:
            records = records.sort_values(["timestamp", "symbol"], kind="stable").reset_index(
                drop=True
            )
        self.rets["records"] = records

    @property
    def records(self) -> pd.DataFrame:
        return self.rets["records"]

    def _frame(self, data: Any, marks: list[tuple[int, float]], table: TierTable) -> pd.DataFrame:
        n = len(data)

        def values(name: str | None) -> np.ndarray:
            line = _line(data, name)
            if line is None:
                return np.full(n, np.nan)
            arr = np.asarray(line.array[:n], dtype=float)
            if len(arr) < n:
                raise ConfigError(
                    f"line {name!r} of feed {symbol_of(data)!r} holds fewer bars than were run",
                    column=name,
                    fix="run Cerebro with exactbars=0",
                )
            return arr

        symbol = symbol_of(data)
        close = values("close")
        confidence = values(self.p.confidence_line)
        proba_up = values(self.p.proba_line)
        if _line(data, self.p.proba_line) is None and _line(data, "proba_buy") is not None:
            proba_up = values("proba_buy") + 0.5 * values("proba_hold")
        position = np.full(n, np.nan)
        for i, size in marks:  # in execution order: the last fill of a bar wins
            if 0 <= i < n:
                position[i] = size
        position = pd.Series(position).ffill().fillna(0.0).to_numpy()
        frame = pd.DataFrame(
            {
                "timestamp": bt_times_to_utc(values("datetime")),
                "symbol": symbol,
                "close": close,
                "signal": values(self.p.signal_line),
                "confidence": confidence,
                "proba_up": proba_up,
                "tier": table.names(confidence, table.multipliers_for(symbol)[0]),
                "position": position,
                "position_value": position * close,
                "fold": values(self.p.fold_line),
            }
        )
        aliases = data.lines.getlinealiases()
        for column, kinds in _RECORDED_TARGETS:
            name = getattr(self.p, f"{column}_line")
            if name is None:
                name = next((a for a in aliases if _target_kind(a) in kinds), None)
            if name is not None and _line(data, name) is not None:
                frame[column] = values(name)
        return frame


def _target_kind(name: str) -> str | None:
    """Kind of the target a feed line holds (`direction_1` → "direction"); None otherwise."""
    target = Target.from_name(name)
    return None if target is None else target.kind


class TradeLog(bt.Analyzer):
    """Closed trades, one row each, with the columns of BacktestResult.trades.

    The exit price is recovered from the trade's P&L (exact for one entry and
    one exit order, which is how MLStrategy trades). Tier and exit reason come
    from MLStrategy's tags ("" for other strategies).
    """

    def start(self) -> None:
        self._opened: dict[tuple[int, int], float] = {}
        self._rows: list[dict[str, Any]] = []

    def notify_trade(self, trade: bt.Trade) -> None:
        key = (id(trade.data), trade.tradeid)
        if trade.justopened:
            self._opened[key] = trade.size
            return
        if not trade.isclosed:
            return
        size = self._opened.pop(key, NAN)
        direction = 1.0 if size > 0 else -1.0
        tags = getattr(self.strategy, "trade_tags", None)
        tier, reason = tags(trade.data) if tags is not None else ("", "")
        self._rows.append(
            {
                "symbol": symbol_of(trade.data),
                "direction": direction,
                "entry_time": trade.dtopen,
                "exit_time": trade.dtclose,
                "entry_price": trade.price,
                "exit_price": trade.price + trade.pnl / size,
                "size": abs(size),
                "pnl": trade.pnl,
                "pnl_net": trade.pnlcomm,
                "commission": trade.commission,
                "bars_held": trade.barlen,
                "tier": tier,
                "exit_reason": reason,
            }
        )

    def stop(self) -> None:
        frame = pd.DataFrame(self._rows, columns=list(TRADE_COLUMNS))
        for col in ("entry_time", "exit_time"):
            frame[col] = bt_times_to_utc(frame[col].to_numpy(dtype=float))
        self.rets["trades"] = frame

    @property
    def trades(self) -> pd.DataFrame:
        return self.rets["trades"]


_ORDER_TYPES = {
    bt.Order.Market: "market",
    bt.Order.Close: "close",
    bt.Order.Limit: "limit",
    bt.Order.Stop: "stop",
    bt.Order.StopTrail: "stop_trail",
    bt.Order.StopLimit: "stop_limit",
    bt.Order.StopTrailLimit: "stop_trail_limit",
}
_CAP_TOLERANCE = 1e-9  # relative: a slipped fill short of nominal by more than this is capped


class FillLog(bt.Analyzer):
    """Every order execution: signed size, raw price (before slippage), executed price, commission.

    The raw price comes from `mlstrat.broker.raw_fill_price` on the bar the
    order executes, so ``size × (price − raw_price)`` is exactly the slippage
    paid. ``get_analysis()["fills"]`` is a DataFrame with `FILL_COLUMNS`.
    """

    def start(self) -> None:
        self._rows: list[dict[str, Any]] = []

    def notify_order(self, order: bt.Order) -> None:
        if order.status not in (bt.Order.Completed, bt.Order.Partial):
            return
        raw, slipped = raw_fill_price(order, self.strategy.broker)
        nominal = float(self.strategy.broker.p.slip_perc or 0.0) if slipped else 0.0
        for bit in order.executed.iterpending():
            if not bit.size:
                continue
            price = float(bit.price)
            charged = abs(price - raw)
            self._rows.append(
                {
                    "timestamp": bit.dt,
                    "symbol": symbol_of(order.data),
                    "size": float(bit.size),
                    "raw_price": raw,
                    "price": price,
                    "commission": float(bit.closedcomm + bit.openedcomm),
                    "slippage": float(bit.size) * (price - raw),
                    "nominal_slippage": nominal,
                    "capped": bool(nominal and charged < nominal * raw * (1 - _CAP_TOLERANCE)),
                    "order_type": _ORDER_TYPES.get(order.exectype, str(order.exectype)),
                }
            )

    def stop(self) -> None:
        frame = pd.DataFrame(self._rows, columns=list(FILL_COLUMNS))
        frame["timestamp"] = bt_times_to_utc(frame["timestamp"].to_numpy(dtype=float))
        self.rets["fills"] = frame

    @property
    def fills(self) -> pd.DataFrame:
        return self.rets["fills"]


class EquityRecorder(bt.Analyzer):
    """Portfolio value and cash at every bar's close (after that bar's fills and commissions)."""

    def start(self) -> None:
        self._times: list[float] = []
        self._value: list[float] = []
        self._cash: list[float] = []

    def next(self) -> None:
        broker = self.strategy.broker
        self._times.append(self.strategy.datetime[0])
        self._value.append(broker.getvalue())
        self._cash.append(broker.getcash())

    def stop(self) -> None:
        index = bt_times_to_utc(self._times)
        self.rets["equity"] = pd.Series(self._value, index=index, name="equity", dtype=float)
        self.rets["cash"] = pd.Series(self._cash, index=index, name="cash", dtype=float)
