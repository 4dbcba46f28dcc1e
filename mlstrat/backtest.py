"""run_backtest: one backtrader run of a strategy over prediction-carrying feeds → BacktestResult.

A plain library function; the CLI (`mlstrat backtest`) and the demo call it.

    from mlstrat.backtest import run_backtest
    result = run_backtest({"BTCUSDT": feed}, TieredLongShort, {"allow_short": True},
                          cash=10_000, commission=0.001, slippage=0.0005)
    result.save("reports/run1")
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import backtrader as bt
import pandas as pd

from mlstrat.broker import BrokerConfig, make_cerebro
from mlstrat.errors import ConfigError
from mlstrat.fileio import versions
from mlstrat.report.result import BacktestResult, to_jsonable
from mlstrat.sections import as_choice, as_mapping, as_text, from_options, setting
from mlstrat.sizing import TieredConfidenceSizer, symbol_of
from mlstrat.strategy import EquityRecorder, FillLog, PredictionRecorder, TradeLog
from mlstrat.userclass import load_class

#: Versions recorded with every result.
RESULT_VERSIONS = ("mlstrat", "backtrader", "numpy", "pandas", "python")
DEFAULT_STRATEGY = "mlstrat.strategy:MLStrategy"
COLUMN_CHOICES = ("predictions", "all")


def columns_value(value: Any) -> str | tuple[str, ...]:
    """Feed columns a backtest loads as lines: "predictions", "all" or a list of names."""
    if isinstance(value, str):
        return as_choice(value, COLUMN_CHOICES)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(
            f"expected {', '.join(COLUMN_CHOICES)} or a list of columns, got {value!r}"
        )
    names = []
    for i, name in enumerate(value):
        try:
            names.append(as_text(name))
        except ConfigError as exc:
            raise ConfigError(exc.problem, param=f"columns[{i}]") from None
    return tuple(names)


@dataclass(frozen=True)
class StrategyConfig:
    """The ``strategy`` section of a run configuration: the strategy class (a
    ``FILE.py:Class`` spec with an absolute path once parsed, or ``module:Class``), its
    parameters and which feed columns become lines. `loaded` keeps the class the
    configuration imported, so a run does not import the user's file again."""

    cls: str = setting(
        DEFAULT_STRATEGY, "strategy class: FILE.py:Class or module:Class", key="class"
    )
    params: dict[str, Any] = setting(
        None, "strategy parameters (checked against the class)", kind=as_mapping, factory=dict
    )
    columns: str | tuple[str, ...] = setting(
        "predictions",
        "feed columns loaded as lines: predictions, all, or a list of columns",
        kind=columns_value,
    )
    file: Path | None = None  # the strategy's source file when given as a path
    loaded: type | None = field(default=None, compare=False, repr=False)

    def strategy_class(self) -> type[bt.Strategy]:
        """The strategy class (imported when the configuration was read, else now)."""
        return self.loaded or load_strategy(self.cls)


@dataclass(frozen=True)
class SizingConfig:
    """The ``sizing`` section: the sizer class (None: the strategy's default sizer), its
    parameters, and the predictor whose volatility forecast scales positions."""

    cls: str | None = setting(
        None,
        "sizer class: FILE.py:Class or module:Class (default: the strategy's default sizer)",
        key="class",
    )
    params: dict[str, Any] = setting(
        None, "sizer parameters (checked against the class)", kind=as_mapping, factory=dict
    )
    volatility: str | None = setting(
        None, "name of the predictor whose volatility forecast scales positions"
    )
    loaded: type | None = field(default=None, compare=False, repr=False)

    def sizer_class(self) -> type[bt.Sizer] | None:
        """The sizer class, or None for the strategy's default sizer."""
        if self.cls is None:
            return None
        return self.loaded or load_sizer(self.cls)


def run_backtest(
    feeds: Mapping[str, Any] | Sequence[Any] | Any,
    strategy_cls: type[bt.Strategy],
    strategy_params: Mapping[str, Any] | None = None,
    *,
    sizer: type[bt.Sizer] | None = None,
    sizer_params: Mapping[str, Any] | None = None,
    broker: BrokerConfig | Mapping[str, Any] | None = None,
    folds: list[dict] | None = None,
    feature_importance: Mapping[str, float] | None = None,
    timeframe: str | None = None,
    config: Mapping[str, Any] | None = None,
    analyzers: Sequence[tuple[type[bt.Analyzer], Mapping[str, Any]]] = (),
    **broker_options: Any,
) -> BacktestResult:
    """Run ``strategy_cls`` on ``feeds`` (one per symbol) and collect a BacktestResult.

    feeds: a mapping symbol → backtrader data feed, a sequence of feeds (named by
    their ``name``), or a single feed. sizer: a Sizer class; None uses the
    strategy class's ``default_sizer`` (and ``default_sizer_params``) if it has
    one, else `TieredConfidenceSizer`. broker: a `mlstrat.broker.BrokerConfig`
    (or a mapping of its fields); its fields can also be given as keywords
    (``cash=``, ``commission=``, ``slippage=``, ``fill=``, ``slippage_cap=``, ...),
    which override `broker`'s.
    ``folds``, ``feature_importance`` and ``config`` are passed into the result
    (``config`` is merged over the run description built here).
    ``analyzers``: more (Analyzer class, keyword arguments) pairs added to the Cerebro, e.g.
    paper trading's journal recorder.
    """
    named = _named_feeds(feeds)
    broker = from_options(BrokerConfig, broker, broker_options, "broker option")
    if not (isinstance(strategy_cls, type) and issubclass(strategy_cls, bt.Strategy)):
        raise ConfigError(
            f"{strategy_cls!r} is not a backtrader Strategy class",
            param="strategy_cls",
            fix="pass a subclass of mlstrat.strategy.MLStrategy (or bt.Strategy)",
        )
    if sizer is None:
        sizer = getattr(strategy_cls, "default_sizer", None) or TieredConfidenceSizer
        merged = dict(getattr(strategy_cls, "default_sizer_params", None) or {})
        merged.update(sizer_params or {})
        sizer_params = merged
    strategy_params = dict(strategy_params or {})
    sizer_params = dict(sizer_params or {})
    _check_params(strategy_cls, strategy_params, "strategy")
    _check_params(sizer, sizer_params, "sizer")

    cerebro = make_cerebro(broker)
    for name, feed in named.items():
        cerebro.adddata(feed, name=name)
    cerebro.addstrategy(strategy_cls, **strategy_params)
    cerebro.addsizer(sizer, **sizer_params)
    cerebro.addanalyzer(PredictionRecorder, _name="mlstrat_records")
    cerebro.addanalyzer(TradeLog, _name="mlstrat_trades")
    cerebro.addanalyzer(FillLog, _name="mlstrat_fills")
    cerebro.addanalyzer(EquityRecorder, _name="mlstrat_equity")
    for analyzer, kwargs in analyzers:
        cerebro.addanalyzer(analyzer, **kwargs)
    strategy = cerebro.run()[0]

    records = strategy.analyzers.mlstrat_records.records
    trades = strategy.analyzers.mlstrat_trades.trades
    equity = strategy.analyzers.mlstrat_equity.get_analysis()
    benchmark = records.pivot(index="timestamp", columns="symbol", values="close")
    benchmark = benchmark[[s for s in named if s in benchmark.columns]]
    benchmark.columns.name = None

    run_config: dict[str, Any] = {
        "strategy": {
            "class": f"{strategy_cls.__module__}:{strategy_cls.__qualname__}",
            "params": _params_dict(strategy),
        },
        "sizer": {
            "class": f"{sizer.__module__}:{sizer.__qualname__}",
            "params": _params_dict(strategy.getsizer()),
        },
        "broker": broker.to_dict(),
        "data": {name: _describe_feed(feed) for name, feed in named.items()},
        "bars": int(len(equity["equity"])),
    }
    run_config.update(dict(config or {}))
    return BacktestResult(
        equity=equity["equity"],
        cash=equity["cash"],
        benchmark=benchmark,
        trades=trades,
        records=records,
        fills=strategy.analyzers.mlstrat_fills.fills,
        folds=list(folds or []),
        feature_importance=dict(feature_importance) if feature_importance else None,
        config=to_jsonable(run_config),
        timeframe=timeframe or infer_timeframe(equity["equity"].index),
        symbols=list(named),
        versions=versions(RESULT_VERSIONS),
    )


def _named_feeds(feeds: Any) -> dict[str, Any]:
    if isinstance(feeds, Mapping):
        items = [(str(k), v) for k, v in feeds.items()]
    else:
        if isinstance(feeds, bt.feed.AbstractDataBase):
            feeds = [feeds]
        items = []
        for i, feed in enumerate(feeds):
            items.append((symbol_of(feed) or f"data{i}", feed))
    if not items:
        raise ConfigError("no data feeds given", param="feeds", fix="pass at least one feed")
    names = [n for n, _ in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(
            f"several feeds are named {dupes}",
            param="feeds",
            fix="pass a mapping symbol → feed with distinct symbols",
        )
    for name, feed in items:
        if not isinstance(feed, bt.feed.AbstractDataBase):
            raise ConfigError(
                f"feed {name!r} is a {type(feed).__name__}, not a backtrader data feed",
                param="feeds",
                fix="build it with mlstrat.feed.FeatureFeed.from_parquet / from_frame",
            )
    return dict(items)


def _check_params(cls: type, given: Mapping[str, Any], what: str) -> None:
    known = set(bt_params(cls))
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(
            f"{what} {cls.__name__} has no parameter(s) {unknown}",
            param=unknown[0],
            fix=f"use one of {sorted(known)}",
        )


def bt_params(cls: type) -> list[str]:
    """Parameter names of a backtrader Strategy or Sizer class, in declaration order."""
    params = getattr(cls, "params", None)
    return list(params._getkeys()) if params is not None and hasattr(params, "_getkeys") else []


def _params_dict(obj: Any) -> dict[str, Any]:
    out = {}
    for key in obj.params._getkeys():
        value = getattr(obj.params, key)
        if callable(value) and not isinstance(value, type):
            value = getattr(value, "__qualname__", None) or repr(value)
        elif inspect.isclass(value):
            value = f"{value.__module__}:{value.__qualname__}"
        out[key] = value
    return out


def _describe_feed(feed: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"class": type(feed).__name__}
    for attr in ("path", "source", "dataname"):
        value = getattr(feed, attr, None) or getattr(getattr(feed, "p", None), attr, None)
        if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
            info["source"] = str(value)
            break
    info["lines"] = [
        a for a in feed.lines.getlinealiases() if a not in ("datetime", "openinterest")
    ]
    return info


def infer_timeframe(index: pd.DatetimeIndex) -> str | None:
    """Pandas-style alias of the median bar spacing ("1h", "1min", "1D", "30s"); None if unknown."""
    if len(index) < 2:
        return None
    step = pd.Series(index).diff().median()
    seconds = int(round(step.total_seconds())) if pd.notna(step) else 0
    if seconds <= 0:
        return None
    for unit, alias in ((86_400, "D"), (3_600, "h"), (60, "min"), (1, "s")):
        if seconds % unit == 0:
            return f"{seconds // unit}{alias}"
    return None


def load_strategy(spec: str, *, base: str | Path | None = None) -> type[bt.Strategy]:
    """Resolve ``path/to/file.py:Class`` or ``package.module:Class`` to a Strategy class.

    Relative file paths are taken from ``base`` (default: the working directory).
    """
    return load_class(
        spec,
        bt.Strategy,
        base=base,
        what="strategy",
        hint="a subclass of mlstrat.strategy.MLStrategy",
    )


def load_sizer(spec: str, *, base: str | Path | None = None) -> type[bt.Sizer]:
    """Resolve ``path/to/file.py:Class`` or ``package.module:Class`` to a Sizer class."""
    return load_class(
        spec,
        bt.Sizer,
        base=base,
        what="sizer",
        hint="a subclass of backtrader.Sizer, e.g. of mlstrat.sizing.TieredConfidenceSizer",
    )
