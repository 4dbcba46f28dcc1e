"""The ``report`` section of a run configuration: which pages `mlstrat run` builds and how.

`ReportConfig`'s fields are the section's keys (see `mlstrat.sections`); `mlstrat.run`
passes them to `mlstrat.report.html.build_report` / `build_comparison` (the statistics
keys through `mlstrat.report.stats.StatisticsOptions`, with the run's seed).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlstrat.sections import check, setting


@dataclass(frozen=True)
class ReportConfig:
    """Whether to build the HTML report(s), their title, and the comparison page."""

    enabled: bool = setting(True, "build one HTML report per traded predictor", kind=bool)
    title: str | None = setting(None, "page title (default: the run name)")
    comparison: bool = setting(
        True,
        "also build a page comparing the traded predictors (when there are two or more)",
        kind=bool,
    )
    log_scale: bool | str = setting(
        "auto", "equity chart y scale: auto, true (log) or false", choices=("auto", True, False)
    )
    risk_free: float = setting(
        0.0, "annual risk-free rate for Sharpe and Sortino", kind=float, minimum=-1.0, maximum=1.0
    )
    dpi: int = setting(100, "chart resolution in dots per inch", kind=int, minimum=30)
    confidence: float = setting(
        0.95,
        "confidence of the Sharpe ratio's bootstrap interval and minimum track record",
        kind=float,
        valid=lambda v: 0.0 < v < 1.0,
        fix="a probability strictly between 0 and 1, e.g. 0.95",
    )
    bootstrap_resamples: int = setting(
        2000, "stationary-bootstrap resamples of the Sharpe ratio", kind=int, minimum=10
    )
    pbo_blocks: int = setting(
        16,
        "blocks the bars are cut into for the probability of backtest overfitting (even)",
        kind=int,
        minimum=2,
        valid=lambda v: v % 2 == 0,
        fix="an even number of blocks, e.g. 16",
    )

    def __post_init__(self) -> None:
        check(self)
