"""mlstrat: machine-learning predictors inside backtrader backtests.

The names scripts need are importable from the package itself; each is loaded
on first use, so ``import mlstrat`` stays instant (no TensorFlow, no backtrader):

    from mlstrat import load_bars, build_feature_feed, run_walk_forward, run_backtest
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> module that defines it (imported lazily by __getattr__).
_EXPORTS: dict[str, str] = {
    "load_bars": "mlstrat.data",
    "gap_report": "mlstrat.data",
    "build_feature_feed": "mlstrat.features",
    "write_feature_feed": "mlstrat.features",
    "read_feature_feed": "mlstrat.features",
    "feature_columns": "mlstrat.features",
    "target_columns": "mlstrat.features",
    "FeatureFeed": "mlstrat.feed",
    "WalkForward": "mlstrat.walkforward",
    "run_walk_forward": "mlstrat.walkforward.runner",
    "Predictor": "mlstrat.predictors",
    "Prediction": "mlstrat.predictors",
    "create_predictor": "mlstrat.predictors",
    "load_predictor": "mlstrat.predictors",
    "register_predictor": "mlstrat.predictors",
    "MLStrategy": "mlstrat.strategy",
    "TieredConfidenceSizer": "mlstrat.sizing",
    "run_backtest": "mlstrat.backtest",
    "load_strategy": "mlstrat.backtest",
    "BacktestResult": "mlstrat.report.result",
    "build_report": "mlstrat.report.html",
    "build_comparison": "mlstrat.report.html",
    "load_config": "mlstrat.config",
    "RunConfig": "mlstrat.config",
    "run_experiment": "mlstrat.run",
    "replay": "mlstrat.run",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlstrat' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
