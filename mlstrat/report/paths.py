"""CPCV backtest paths in the report: their equity curves on disk and the distribution of
their Sharpe ratios and drawdowns, as a metrics block and a page section.

A walk-forward with ``scheme: cpcv`` yields φ complete out-of-sample prediction paths
(`mlstrat.walkforward.cpcv`); `mlstrat run` backtests each with the same strategy,
sizer and broker and keeps the equity curves in one Parquet file (a column per path).
`path_distribution` turns them into a `PathDistribution` (`report.stats.PathStats`
annualised like the page's metrics, and the headline backtest's Sharpe and drawdown as
the reference: path 0 itself under ``scheme: cpcv``, the walk-forward backtest when CPCV
runs beside it for ``walkforward.cpcv_predictors``), `paths_block` into the
``cpcv_paths`` block of metrics.json and `paths_section` into HTML: a table of
quantiles and `stats_plots.plot_path_distribution`. The comparison page calls
`paths_section` for one model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import DataError
from mlstrat.report.metrics import bar_returns, infer_annualisation, max_drawdown, sharpe_ratio
from mlstrat.report.stats import PathStats, path_statistics

#: The equity curves of a run's CPCV paths: timestamp + one ``path_NNN`` column per path.
EQUITY_FILE = "equity.parquet"
_PREFIX = "path_"


def write_path_equity(curves: Sequence[pd.Series], path: str | Path) -> None:
    """Write the paths' equity curves (same bars, path order) as one Parquet file."""
    frame = pd.DataFrame({f"{_PREFIX}{i:03d}": c for i, c in enumerate(curves)})
    frame.index.name = "timestamp"
    frame.reset_index().to_parquet(path, index=False)


def read_path_equity(path: str | Path) -> list[pd.Series]:
    """The equity curves `write_path_equity` wrote, in path order; a damaged file is a
    DataError naming it."""
    path = Path(path)
    fix = "rerun `mlstrat run` to rebuild the CPCV path backtests"
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the CPCV path equity ({exc})", file=path, fix=fix) from exc
    columns = sorted(c for c in frame.columns if str(c).startswith(_PREFIX))
    if "timestamp" not in frame.columns or not columns:
        raise DataError(
            "the CPCV path equity file has no timestamp or path columns", file=path, fix=fix
        )
    index = pd.DatetimeIndex(frame["timestamp"])
    return [pd.Series(frame[c].to_numpy(dtype=float), index=index, name=c) for c in columns]


@dataclass(frozen=True)
class PathDistribution:
    """The paths' statistics and the headline backtest they are compared with."""

    stats: PathStats
    reference: dict[str, float]  # the headline backtest's annualised Sharpe and drawdown
    reference_path: int | None  # 0 when the headline backtest is path 0, else None


def path_distribution(
    curves: Sequence[pd.Series],
    *,
    timeframe: str | None = None,
    periods_per_year: float | None = None,
    headline: pd.Series | None = None,
) -> PathDistribution:
    """Annualised Sharpe and maximum drawdown of each path, with the bars per year the
    report infers for these bars (`metrics.infer_annualisation`) unless given; the
    reference is `headline` (the walk-forward backtest's equity), or path 0 without it."""
    if not len(curves):
        raise DataError("no CPCV path equity curves", fix="backtest at least one path")
    ann = infer_annualisation(pd.DatetimeIndex(curves[0].index), timeframe, periods_per_year)
    stats = path_statistics(list(curves), ann.periods_per_year)
    if headline is None:
        reference = {"sharpe": float(stats.sharpe[0]), "max_drawdown": float(stats.max_drawdown[0])}
        return PathDistribution(stats, reference, 0)
    reference = {
        "sharpe": sharpe_ratio(bar_returns(headline), ann.periods_per_year),
        "max_drawdown": max_drawdown(headline),
    }
    return PathDistribution(stats, reference, None)


def paths_block(found: PathDistribution) -> dict[str, Any]:
    """The ``cpcv_paths`` block of metrics.json: per-path values, their quantiles, and the
    headline backtest's (path 0's, or the walk-forward's when reference_path is null)."""
    return {
        **found.stats.to_dict(),
        "reference_path": found.reference_path,
        "reference": found.reference,
    }


def paths_section(
    found: PathDistribution,
    out_dir: Path,
    *,
    model: str | None = None,
    dpi: int = 100,
    section_id: str = "cpcv-paths",
) -> str:
    """HTML of the path distribution: a heading, a sentence, the quantile table and the
    figure (saved as ``cpcv_paths.png`` in `out_dir`, embedded in the page)."""
    from mlstrat.report.html import _chart_html, _e, _table
    from mlstrat.report.plots import Chart, NoData, save_charts
    from mlstrat.report.stats_plots import plot_path_distribution

    stats = found.stats
    title = "Distribution of CPCV path Sharpe ratios and drawdowns"
    try:
        figure = plot_path_distribution(stats, reference=found.reference)
        chart = Chart("cpcv_paths", title, "model", figure=figure)
    except NoData as exc:
        chart = Chart("cpcv_paths", title, "model", note=str(exc))
    save_charts([chart], out_dir, dpi=dpi)
    block = stats.to_dict()
    rows = [
        {"statistic": label, **_quantiles(block[key], scale)}
        for label, key, scale in (
            ("Sharpe ratio (annualised)", "sharpe_summary", 1.0),
            ("Maximum drawdown (%)", "max_drawdown_summary", 100.0),
        )
    ]
    columns = ["statistic", "mean", "min", "5%", "median", "95%", "max"]
    labels = {"statistic": "Statistic", "median": "Median", "mean": "Mean"}
    labels.update({"min": "Min", "max": "Max"})
    negative = block.get("share_negative_sharpe")
    whose = f" of {_e(model)}" if model else ""
    text = (
        f"<p>{len(stats.sharpe)} backtest paths{whose} from combinatorial purged "
        "cross-validation: each is a complete out-of-sample history of the same strategy, "
        "sizer and broker, its groups predicted by different splits. "
        + (
            "Path 0 is the headline backtest (marked as the reference). "
            if found.reference_path == 0
            else "The reference line marks the walk-forward (headline) backtest. "
        )
        + (
            f"{negative:.0%} of the paths have a negative Sharpe ratio."
            if negative is not None
            else ""
        )
        + "</p>"
    )
    return (
        f"<h2 id='{_e(section_id)}'>CPCV paths{whose}</h2>{text}"
        f"{_table(columns, rows, labels=labels, table_id=section_id + '-table')}"
        f"{_chart_html(chart, out_dir)}"
    )


def _quantiles(summary: Mapping[str, float], scale: float) -> dict[str, float]:
    """A summary's values times `scale` (NaN where absent)."""
    keys = ("mean", "min", "5%", "median", "95%", "max")
    return {k: float(summary[k]) * scale if k in summary else np.nan for k in keys}
