"""Charts of the selection-aware statistics: the PBO logit distribution and the spread of
backtest paths (CPCV path Sharpes and drawdowns).

Drawn like `plots.py`: `Figure` on the Agg canvas, never pyplot; a title and
labelled axes with units; `NoData` when there is nothing to draw.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from mlstrat.report.plots import _BLUE, _GREEN, _GREY, _RED, NoData, _figure
from mlstrat.report.stats import PathStats, PBOResult


def _bins(values: np.ndarray, edge: float | None = None) -> np.ndarray:
    """Histogram bin edges over `values`; `edge` (e.g. 0) is one of the edges when given."""
    n_bins = min(40, max(8, int(np.sqrt(len(values)))))
    low, high = float(values.min()), float(values.max())
    width = (high - low) / n_bins or max(abs(low), 1.0) * 0.05
    anchor = low if edge is None else edge
    first = np.floor((low - anchor) / width) * width + anchor
    last = np.ceil((high - anchor) / width) * width + anchor
    return np.arange(first, last + width * 1.5, width)


def plot_pbo_logits(result: PBOResult) -> Figure:
    """Histogram of the logits λ of the in-sample winner's out-of-sample rank; λ ≤ 0 in red.

    The red mass (as a share of splits) is the probability of backtest overfitting.
    """
    logits = np.asarray(result.logits, dtype=float)
    if not len(logits):
        raise NoData("no CSCV splits")
    bins = _bins(logits, edge=0.0)
    weights = np.full(len(logits), 1.0 / len(logits))
    fig = _figure(height=3.8)
    ax = fig.add_subplot()
    low = logits <= 0
    ax.hist(
        logits[low],
        bins=bins,
        weights=weights[low],
        color=_RED,
        alpha=0.8,
        label="λ ≤ 0: winner at or below the median out of sample",
    )
    ax.hist(
        logits[~low],
        bins=bins,
        weights=weights[~low],
        color=_GREEN,
        alpha=0.8,
        label="λ > 0: winner above the median out of sample",
    )
    ax.axvline(0, color="black", lw=0.8)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(
        f"Probability of backtest overfitting: {result.pbo:.0%} "
        f"({result.n_variants} variants, {result.n_splits} CSCV splits)"
    )
    ax.set_xlabel("Logit of the in-sample winner's out-of-sample rank, λ = ln(ω / (1 − ω))")
    ax.set_ylabel("Share of splits (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_path_distribution(
    paths: PathStats, *, reference: dict[str, float] | None = None
) -> Figure:
    """Histograms of the paths' annualised Sharpe and maximum drawdown.

    reference: optional single-path values to mark, e.g. the walk-forward backtest's
    ``{"sharpe": 1.2, "max_drawdown": -0.18}``.
    """
    sharpe = np.asarray(paths.sharpe, dtype=float)
    drawdown = np.asarray(paths.max_drawdown, dtype=float) * 100
    ok = np.isfinite(sharpe)
    if not ok.any():
        raise NoData("no path with a defined Sharpe ratio")
    fig = _figure(height=3.8)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.hist(sharpe[ok], bins=_bins(sharpe[ok], edge=0.0), color=_BLUE, alpha=0.85)
    ax1.axvline(0, color="black", lw=0.8)
    ax1.axvline(
        np.median(sharpe[ok]),
        color=_GREY,
        ls="--",
        lw=1.2,
        label=f"median {np.median(sharpe[ok]):.2f}",
    )
    ax1.set_title(f"Sharpe ratio of {len(sharpe)} backtest paths")
    ax1.set_xlabel("Sharpe ratio (annualised)")
    ax1.set_ylabel("Number of paths")
    ax2.hist(drawdown, bins=_bins(drawdown), color=_RED, alpha=0.75)
    ax2.axvline(
        np.median(drawdown),
        color=_GREY,
        ls="--",
        lw=1.2,
        label=f"median {np.median(drawdown):.1f}%",
    )
    ax2.xaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax2.set_title("Maximum drawdown of each path")
    ax2.set_xlabel("Maximum drawdown (% below previous peak)")
    ax2.set_ylabel("Number of paths")
    marks = reference or {}
    if "sharpe" in marks:
        ax1.axvline(
            marks["sharpe"], color="black", lw=1.4, label=f"reference {marks['sharpe']:.2f}"
        )
    if "max_drawdown" in marks:
        value = marks["max_drawdown"] * 100
        ax2.axvline(value, color="black", lw=1.4, label=f"reference {value:.1f}%")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig
