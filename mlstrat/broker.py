"""Broker realism for backtests: percent + fixed commission, percent slippage, fill timing.

Fill timing (the default is the honest one):

* ``fill="next_open"`` (default): an order made in ``next()`` at bar t, after
  bar t has closed, fills at bar t+1's open. Market orders are slipped
  against the trader by ``slippage``.
* ``fill="close"`` (backtrader's cheat-on-close): the order fills at bar t's
  own close. Optimistic, because the decision used that very close; useful
  only to compare with vectorised research that assumes close-to-close fills.
  backtrader books such a fill while processing bar t+1, so trade times and
  recorded positions show it at t+1; only the price is bar t's close.
* ``cheat_on_open=True``: MLStrategy takes its decisions in ``next_open()`` of
  bar t+1 from bar t's predictions and sizes with bar t+1's open price, so the
  sizer knows the fill price exactly. Fills are still at t+1's open, as in the
  default; only the sizing reference price changes.

Slippage cap (``slippage_cap``):

* ``"bar_range"`` (default, backtrader's ``slip_match``): a slipped price
  beyond the bar's high (buys) or low (sells) is set to that high/low, so a
  fill at a bar that opens at its high pays less than the nominal slippage
  (on hourly crypto bars about one fill in ten). The report shows the
  nominal and the charged slippage and the share of capped fills.
* ``"none"``: the nominal slippage is always charged, even when the slipped
  price lies outside the bar's range (and, for a take-profit limit filled on
  an opening gap, beyond its limit).

`raw_fill_price` gives each fill's price before slippage (what the broker
would have filled at with no slippage); `mlstrat.strategy.FillLog` records it
beside the slipped price so costs can be attributed exactly.

Sizes are floats: crypto fractional quantities work as they are.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mlstrat.errors import ConfigError
from mlstrat.sections import check, setting, to_dict

if TYPE_CHECKING:  # backtrader is imported on first use: the CLI builds its flags without it
    import backtrader as bt

Fill = Literal["next_open", "close"]
SlippageCap = Literal["bar_range", "none"]
FILLS: tuple[str, ...] = ("next_open", "close")
SLIPPAGE_CAPS: tuple[str, ...] = ("bar_range", "none")


@functools.cache
def _commission_class() -> type:
    import backtrader as bt

    class PercentFixedCommission(bt.CommInfoBase):
        """Commission = |size| × price × ``commission`` + ``fixed`` per executed order part.

        ``commission`` is a fraction (0.001 = 0.1 %). ``fixed`` is charged each
        time an order (part) opens or closes units, so keep entries and exits in
        separate orders (MLStrategy does) to be charged once per order.
        """

        params = (
            ("commission", 0.0),
            ("fixed", 0.0),
            ("stocklike", True),
            ("commtype", bt.CommInfoBase.COMM_PERC),
            ("percabs", True),
            ("leverage", 1.0),
        )

        def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
            if not size:
                return 0.0
            return abs(size) * price * self.p.commission + self.p.fixed

    PercentFixedCommission.__module__ = __name__
    PercentFixedCommission.__qualname__ = "PercentFixedCommission"
    return PercentFixedCommission


def __getattr__(name: str) -> Any:
    """`PercentFixedCommission` (a backtrader CommInfo class), made when first asked for."""
    if name == "PercentFixedCommission":
        return _commission_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class BrokerConfig:
    """Everything the broker needs, as plain values: the ``broker`` section of a run
    configuration, the broker flags of `mlstrat backtest` and the broker keywords of
    `run_backtest` all come from these fields (see `mlstrat.sections`)."""

    cash: float = setting(
        10_000.0,
        "starting cash",
        kind=float,
        valid=lambda v: v > 0,
        fix="a positive starting cash, e.g. 10000",
    )
    commission: float = setting(
        0.001,
        "commission as a fraction of each fill's value (0.001 = 0.1%%)",
        kind=float,
        valid=lambda v: 0 <= v < 1,
        fix="a fraction such as 0.001 for 0.1 %",
    )
    fixed_commission: float = setting(
        0.0,
        "fixed commission per order",
        kind=float,
        valid=lambda v: v >= 0,
        fix="a non-negative amount per order",
    )
    slippage: float = setting(
        0.0,
        "slippage as a fraction of the price, against the trader",
        kind=float,
        valid=lambda v: 0 <= v < 1,
        fix="a fraction such as 0.0005 for 5 bp",
    )
    fill: Fill = setting(
        "next_open",
        "fill timing: the next bar's open or the same bar's close (optimistic)",
        choices=FILLS,
    )
    cheat_on_open: bool = setting(
        False, "size with the fill bar's open price (fills stay at the next open)", kind=bool
    )
    slippage_cap: SlippageCap = setting(
        "bar_range",
        "bar_range: a slipped price beyond the bar's high/low fills at it; "
        "none: always charge the nominal slippage",
        choices=SLIPPAGE_CAPS,
    )

    def __post_init__(self) -> None:
        check(self)
        if self.fill == "close" and self.cheat_on_open:
            raise ConfigError(
                "fill='close' and cheat_on_open=True contradict each other",
                param="cheat_on_open",
                fix="choose one fill timing",
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values by key (the ``broker`` section as a run stores it)."""
        return to_dict(self)


def make_cerebro(config: BrokerConfig | None = None, **cerebro_kwargs: Any) -> bt.Cerebro:
    """A Cerebro without default observers, with the broker configured from ``config``."""
    import backtrader as bt

    config = config or BrokerConfig()
    cerebro_kwargs.setdefault("stdstats", False)
    cerebro = bt.Cerebro(cheat_on_open=config.cheat_on_open, **cerebro_kwargs)
    configure_broker(cerebro.broker, config)
    return cerebro


def configure_broker(broker: bt.brokers.BackBroker, config: BrokerConfig) -> None:
    """Apply cash, commission, slippage and fill timing to a BackBroker."""
    broker.setcash(config.cash)
    broker.addcommissioninfo(
        _commission_class()(commission=config.commission, fixed=config.fixed_commission)
    )
    if config.slippage:
        # slip_open: market orders filling at the open are slipped too (bt's default is not to);
        # slip_match: a slipped price beyond the bar's range still fills, at high/low unless
        # slip_out lets it lie outside the range (slippage_cap="none").
        broker.set_slippage_perc(
            config.slippage,
            slip_open=True,
            slip_limit=True,
            slip_match=True,
            slip_out=config.slippage_cap == "none",
        )
    broker.set_coc(config.fill == "close")
    broker.set_coo(config.cheat_on_open)


def _bar_price(data: Any, name: str) -> float:
    """The current bar's price as the broker reads it (tick value when replaying)."""
    tick = getattr(data, f"tick_{name}", None)
    return float(getattr(data, name)[0] if tick is None else tick)


def raw_fill_price(order: bt.Order, broker: bt.brokers.BackBroker) -> tuple[float, bool]:
    """(price before slippage, whether the broker slips it) of ``order`` executing on this bar.

    Mirrors backtrader 1.9.78's BackBroker matching with zero slippage, so
    call it while the bar the order executed on is current (an analyzer's
    ``notify_order``). Market orders fill at the open (at the order bar's close
    with ``fill="close"``), stops at the open when it gaps through the trigger
    else at the trigger, limits at the open when it is better than the limit
    else at the limit (not slipped), Close orders at the close (not slipped).
    Stop-limit orders are not attributed: their executed price is returned.
    """
    import backtrader as bt

    data, kind = order.data, order.exectype
    buy = order.isbuy()
    popen = _bar_price(data, "open")
    if kind == bt.Order.Market:
        if broker.p.coc and order.info.get("coc", True):
            return float(order.created.pclose), True
        return popen, True
    if kind == bt.Order.Close:
        return float(order.executed.price), False
    if kind == bt.Order.Limit:
        limit = float(order.created.price)
        gapped = limit >= popen if buy else limit <= popen
        return (popen, True) if gapped else (limit, False)
    if kind in (bt.Order.Stop, bt.Order.StopTrail):
        trigger = float(order.created.price)
        gapped = popen >= trigger if buy else popen <= trigger
        return (popen if gapped else trigger), True
    return float(order.executed.price), False
