"""Performance reports: the backtest result contract, metrics, charts and the HTML page.

`BacktestResult` is imported eagerly (the strategy layer builds it); the rest
loads on first use so importing the result type never pulls in matplotlib.
"""

from __future__ import annotations

from typing import Any

from mlstrat.report.result import BacktestResult

_LAZY = {
    "build_report": "mlstrat.report.html",
    "build_comparison": "mlstrat.report.html",
    "compute_metrics": "mlstrat.report.metrics",
    "Metrics": "mlstrat.report.metrics",
    "sharpe_stats": "mlstrat.report.stats",
    "bootstrap_sharpe_ci": "mlstrat.report.stats",
    "probability_of_backtest_overfitting": "mlstrat.report.stats",
    "path_statistics": "mlstrat.report.stats",
}

__all__ = ["BacktestResult", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlstrat.report' has no attribute {name!r}")
