"""Broker realism for backtests: percent + fixed commission, percent slippage, fill timing.

Fill timing (the default is the honest one):

* ``fill="next_open"`` (default): an order made in ``next()`` at bar t, after
  bar t has closed, fills at bar t+1's open. Market orders are slipped
  against the trader by ``slippage`` (capped at the bar's high/low).
* ``fill="close"`` (backtrader's cheat-on-close): the order fills at bar t's
  own close. Optimistic, because the decision used that very close; useful
  only to compare with vectorised research that assumes close-to-close fills.
  backtrader books such a fill while processing bar t+1, so trade times and
  recorded positions show it at t+1; only the price is bar t's close.
* ``cheat_on_open=True``: MLStrategy takes its decisions in ``next_open()`` of
  bar t+1 from bar t's predictions and sizes with bar t+1's open price, so the
  sizer knows the fill price exactly. Fills are still at t+1's open, as in the
  default; only the sizing reference price changes.

Sizes are floats: crypto fractional quantities work as they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import backtrader as bt

from mlstrat.errors import ConfigError

Fill = Literal["next_open", "close"]


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


@dataclass
class BrokerConfig:
    """Everything the broker needs, as plain values (also stored in the run config)."""

    cash: float = 10_000.0
    commission: float = 0.001
    fixed_commission: float = 0.0
    slippage: float = 0.0
    fill: Fill = "next_open"
    cheat_on_open: bool = False

    def __post_init__(self) -> None:
        checks = [
            ("cash", self.cash > 0, "a positive starting cash, e.g. 10000"),
            ("commission", 0 <= self.commission < 1, "a fraction such as 0.001 for 0.1 %"),
            ("fixed_commission", self.fixed_commission >= 0, "a non-negative amount per order"),
            ("slippage", 0 <= self.slippage < 1, "a fraction such as 0.0005 for 5 bp"),
        ]
        for name, ok, fix in checks:
            if not ok:
                raise ConfigError(
                    f"broker {name}={getattr(self, name)!r} is out of range", column=name, fix=fix
                )
        if self.fill not in ("next_open", "close"):
            raise ConfigError(
                f"broker fill={self.fill!r} is unknown",
                column="fill",
                fix="use 'next_open' or 'close'",
            )
        if self.fill == "close" and self.cheat_on_open:
            raise ConfigError(
                "fill='close' and cheat_on_open=True contradict each other",
                column="cheat_on_open",
                fix="choose one fill timing",
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_cerebro(config: BrokerConfig | None = None, **cerebro_kwargs: Any) -> bt.Cerebro:
    """A Cerebro without default observers, with the broker configured from ``config``."""
    config = config or BrokerConfig()
    cerebro_kwargs.setdefault("stdstats", False)
    cerebro = bt.Cerebro(cheat_on_open=config.cheat_on_open, **cerebro_kwargs)
    configure_broker(cerebro.broker, config)
    return cerebro


def configure_broker(broker: bt.brokers.BackBroker, config: BrokerConfig) -> None:
    """Apply cash, commission, slippage and fill timing to a BackBroker."""
    broker.setcash(config.cash)
    broker.addcommissioninfo(
        PercentFixedCommission(commission=config.commission, fixed=config.fixed_commission)
    )
    if config.slippage:
        # slip_open: market orders filling at the open are slipped too (bt's default is not to);
        # slip_match: a slipped price beyond the bar's range is capped at high/low.
        broker.set_slippage_perc(
            config.slippage, slip_open=True, slip_limit=True, slip_match=True, slip_out=False
        )
    broker.set_coc(config.fill == "close")
    broker.set_coo(config.cheat_on_open)
