"""Performance reports: the backtest result contract, metrics, charts and the HTML page."""

from mlstrat.report.result import BacktestResult

__all__ = ["BacktestResult"]
