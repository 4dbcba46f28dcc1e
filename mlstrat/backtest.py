"""run_backtest: one backtrader run of a strategy over prediction-carrying feeds → BacktestResult.

A plain library function; the CLI (`mlstrat backtest`) and the demo call it.

    from mlstrat.backtest import run_backtest
    result = run_backtest({"BTCUSDT": feed}, TieredLongShort, {"allow_short": True},
                          cash=10_000, commission=0.001, slippage=0.0005)
    result.save("reports/run1")
"""

from __future__ import annotations

import inspect
import platform
from collections.abc import Mapping, Sequence
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

import mlstrat
from mlstrat.broker import BrokerConfig, make_cerebro
from mlstrat.errors import ConfigError
from mlstrat.report.result import BacktestResult, to_jsonable
from mlstrat.sizing import TieredConfidenceSizer, symbol_of
from mlstrat.strategy import EquityRecorder, FillLog, PredictionRecorder, TradeLog


def run_backtest(
    feeds: Mapping[str, Any] | Sequence[Any] | Any,
    strategy_cls: type[bt.Strategy],
    strategy_params: Mapping[str, Any] | None = None,
    *,
    sizer: type[bt.Sizer] | None = None,
    sizer_params: Mapping[str, Any] | None = None,
    cash: float = 10_000.0,
    commission: float = 0.001,
    fixed_commission: float = 0.0,
    slippage: float = 0.0,
    fill: str = "next_open",
    cheat_on_open: bool = False,
    slippage_cap: str = "bar_range",
    folds: list[dict] | None = None,
    feature_importance: Mapping[str, float] | None = None,
    timeframe: str | None = None,
    config: Mapping[str, Any] | None = None,
    analyzers: Sequence[tuple[type[bt.Analyzer], Mapping[str, Any]]] = (),
) -> BacktestResult:
    """Run ``strategy_cls`` on ``feeds`` (one per symbol) and collect a BacktestResult.

    feeds: a mapping symbol → backtrader data feed, a sequence of feeds (named by
    their ``name``), or a single feed. sizer: a Sizer class; None uses the
    strategy class's ``default_sizer`` (and ``default_sizer_params``) if it has
    one, else `TieredConfidenceSizer`. Broker arguments: see `mlstrat.broker`
    (``slippage_cap``: "bar_range", the default, caps a slipped price at the
    bar's high/low; "none" always charges the nominal slippage).
    ``folds``, ``feature_importance`` and ``config`` are passed into the result
    (``config`` is merged over the run description built here).
    ``analyzers``: more (Analyzer class, keyword arguments) pairs added to the Cerebro, e.g.
    paper trading's journal recorder.
    """
    named = _named_feeds(feeds)
    broker = BrokerConfig(
        cash=cash,
        commission=commission,
        fixed_commission=fixed_commission,
        slippage=slippage,
        fill=fill,  # type: ignore[arg-type]
        cheat_on_open=cheat_on_open,
        slippage_cap=slippage_cap,  # type: ignore[arg-type]
    )
    if not (isinstance(strategy_cls, type) and issubclass(strategy_cls, bt.Strategy)):
        raise ConfigError(
            f"{strategy_cls!r} is not a backtrader Strategy class",
            column="strategy",
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
        versions=versions(),
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
        raise ConfigError("no data feeds given", column="feeds", fix="pass at least one feed")
    names = [n for n, _ in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(
            f"several feeds are named {dupes}",
            column="feeds",
            fix="pass a mapping symbol → feed with distinct symbols",
        )
    for name, feed in items:
        if not isinstance(feed, bt.feed.AbstractDataBase):
            raise ConfigError(
                f"feed {name!r} is a {type(feed).__name__}, not a backtrader data feed",
                column="feeds",
                fix="build it with mlstrat.feed.FeatureFeed.from_parquet / from_frame",
            )
    return dict(items)


def _check_params(cls: type, given: Mapping[str, Any], what: str) -> None:
    known = set(cls.params._getkeys()) if hasattr(cls, "params") else set()
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(
            f"{what} {cls.__name__} has no parameter(s) {unknown}",
            column=unknown[0],
            fix=f"use one of {sorted(known)}",
        )


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


def versions() -> dict[str, str]:
    """Versions recorded with every result."""
    return {
        "mlstrat": mlstrat.__version__,
        "backtrader": str(bt.__version__),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
    }


def load_strategy(spec: str, *, base: str | None = None) -> type[bt.Strategy]:
    """Resolve ``path/to/file.py:Class`` or ``package.module:Class`` to a Strategy class.

    Relative file paths are taken from ``base`` (default: the working directory).
    """
    import importlib
    import importlib.util
    import sys
    from pathlib import Path

    target, sep, attr = str(spec).rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(
            f"strategy {spec!r} is not of the form FILE.py:Class or module:Class",
            column="strategy",
            fix="e.g. strategies/tiered_long_short.py:TieredLongShort",
        )
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        if not path.is_file():
            raise ConfigError(
                "strategy file not found", file=path, column="strategy", fix="check the path"
            )
        name = f"mlstrat_user_strategy_{abs(hash(str(path.resolve()))):x}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception:
            sys.modules.pop(name, None)
            raise
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ConfigError(
                f"cannot import strategy module {target!r} ({exc})",
                column="strategy",
                fix="give a file path ending in .py or an importable module",
            ) from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, bt.Strategy)):
        raise ConfigError(
            f"{attr!r} in {target} is not a backtrader Strategy class",
            column="strategy",
            fix="name a subclass of mlstrat.strategy.MLStrategy",
        )
    return cls
