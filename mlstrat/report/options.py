"""The ``report`` section of a run configuration: which pages `mlstrat run` builds and how.

`ReportConfig`'s fields are the section's keys (see `mlstrat.sections`); `mlstrat.run`
passes them to `mlstrat.report.html.build_report` / `build_comparison`.
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

    def __post_init__(self) -> None:
        check(self)
