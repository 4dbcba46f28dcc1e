"""Report charts as matplotlib Figures drawn on the Agg canvas.

Figures are built with `matplotlib.figure.Figure` and `FigureCanvasAgg`
directly, never through pyplot, so no GUI backend (Tk) is ever touched and the
caller's own matplotlib backend is left alone.

`make_charts(result, metrics)` returns one `Chart` per view; a view whose data
is missing (no trades, no probabilities, one symbol, ...) comes back with
`figure=None` and a `note` saying why, so the HTML can say so instead of
showing a broken image. Every figure has a title and labelled axes with units.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from mlstrat.report.metrics import Metrics, bar_returns, buy_and_hold, drawdown_series
from mlstrat.report.result import BacktestResult

CURRENCY = "account currency"
_GREEN, _RED, _BLUE, _GREY = "#1a9850", "#d73027", "#2c7bb6", "#7f7f7f"
_TIER_COLOURS = ["#e66101", "#5e3c99", "#1b7837", "#2166ac", "#b2182b", "#8c510a"]


@dataclass
class Chart:
    """One view of the report: a figure, or the reason it could not be drawn."""

    name: str  # file stem of the PNG
    title: str
    section: str  # "performance", "trades", "model" or "symbols"
    figure: Figure | None = None
    note: str | None = None
    file: str | None = None  # PNG file name once saved


class NoData(Exception):
    """The data a chart needs is absent; the message says what is missing."""


# --------------------------------------------------------------------------- helpers


def _figure(width: float = 10.0, height: float = 4.5, **kw) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained", **kw)
    FigureCanvasAgg(fig)
    return fig


def _naive(index: pd.DatetimeIndex | pd.Series) -> np.ndarray:
    """UTC timestamps as naive numpy datetimes for matplotlib's date axis."""
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.to_numpy()


def _date_axis(ax, label: str = "Date (UTC)") -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel(label)


def _money(ax, axis: str = "y") -> None:
    fmt = FuncFormatter(lambda v, _pos: f"{v:,.0f}" if abs(v) >= 100 or v == 0 else f"{v:,.2f}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def safe_name(text: str) -> str:
    """File-name-safe form of a symbol or label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _tier_colours(tiers: list[str]) -> dict[str, str]:
    return {t: _TIER_COLOURS[i % len(_TIER_COLOURS)] for i, t in enumerate(tiers)}


# --------------------------------------------------------------------------- charts


def plot_equity(result: BacktestResult, metrics: Metrics, *, log: bool = False) -> Figure:
    """Portfolio value against buy-and-hold of the same symbols (and each symbol alone)."""
    eq = result.equity
    fig = _figure()
    ax = fig.add_subplot()
    x = _naive(eq.index)
    ax.plot(x, eq.to_numpy(), color=_BLUE, lw=1.6, label="Strategy")
    bh = buy_and_hold(result.benchmark, eq.index, float(eq.iloc[0]))
    if len(bh):
        label = "Buy and hold (equal weight)" if result.benchmark.shape[1] > 1 else "Buy and hold"
        ax.plot(x, bh.to_numpy(), color=_GREY, lw=1.2, label=label)
        if result.benchmark.shape[1] > 1:
            for sym in result.benchmark.columns:
                one = buy_and_hold(result.benchmark[[sym]], eq.index, float(eq.iloc[0]))
                ax.plot(x, one.to_numpy(), lw=0.7, alpha=0.6, label=f"{sym} buy and hold")
    if log:
        ax.set_yscale("log")
    else:
        _money(ax)
    ax.set_title("Equity vs buy-and-hold" + (" (log scale)" if log else ""))
    ax.set_ylabel(f"Portfolio value ({CURRENCY}{', log scale' if log else ''})")
    _date_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def plot_drawdown(result: BacktestResult, metrics: Metrics) -> Figure:
    """Underwater curve: how far below its last peak the portfolio is."""
    eq = result.equity
    dd = drawdown_series(eq) * 100
    fig = _figure(height=3.5)
    ax = fig.add_subplot()
    x = _naive(eq.index)
    ax.fill_between(x, dd.to_numpy(), 0, color=_RED, alpha=0.35, lw=0, label="Strategy")
    ax.plot(x, dd.to_numpy(), color=_RED, lw=0.8)
    bh = buy_and_hold(result.benchmark, eq.index, float(eq.iloc[0]))
    if len(bh):
        ax.plot(x, drawdown_series(bh).to_numpy() * 100, color=_GREY, lw=0.9, label="Buy and hold")
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_title(f"Drawdown (max {metrics.trading['max_drawdown'] * 100:.1f}%)")
    ax.set_ylabel("Below previous peak (%)")
    _date_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return fig


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Return of each calendar month (UTC) as a year × month table (NaN where no data)."""
    naive = equity.copy()
    naive.index = equity.index.tz_convert("UTC").tz_localize(None)
    month_end = naive.resample("ME").last().dropna()
    prev = month_end.shift(1)
    prev.iloc[0] = float(equity.iloc[0])
    rets = month_end / prev - 1
    table = pd.DataFrame(
        {"year": rets.index.year, "month": rets.index.month, "ret": rets.to_numpy()}
    ).pivot(index="year", columns="month", values="ret")
    return table.reindex(columns=range(1, 13))


def plot_monthly_heatmap(result: BacktestResult, metrics: Metrics) -> Figure:
    """Calendar of monthly returns, green up and red down."""
    table = monthly_returns(result.equity) * 100
    years = list(table.index)
    fig = _figure(height=max(2.2, 0.55 * len(years) + 1.4))
    ax = fig.add_subplot()
    values = table.to_numpy(float)
    lim = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
    lim = lim if lim > 0 else 1.0
    im = ax.imshow(values, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(12):
            v = values[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(
        range(12),
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    )
    ax.set_yticks(range(len(years)), [str(y) for y in years])
    ax.set_xlabel("Month (UTC)")
    ax.set_ylabel("Year")
    ax.set_title("Monthly returns (%)")
    cb = fig.colorbar(im, ax=ax, shrink=0.9)
    cb.set_label("Monthly return (%)")
    return fig


def plot_rolling(result: BacktestResult, metrics: Metrics) -> Figure:
    """Rolling annualised Sharpe and volatility over about a month of bars."""
    P = metrics.annualisation.periods_per_year
    r = bar_returns(result.equity)
    window = int(max(20, round(P / 12)))
    span = "about a month" if window == round(P / 12) else "at least 20 bars"
    if len(r) < 2 * window:
        window, span = len(r) // 3, "a third of the run"
    if window < 10:
        raise NoData(f"only {len(r)} returns: too few for a rolling window")
    roll = r.rolling(window)
    sd = roll.std(ddof=1)
    sharpe = (roll.mean() / sd.where(sd > 0)) * math.sqrt(P)
    vol = sd * math.sqrt(P) * 100
    x = _naive(r.index)
    fig = _figure(height=5.0)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.plot(x, sharpe.to_numpy(), color=_BLUE, lw=1)
    ax1.axhline(0, color=_GREY, lw=0.8)
    ax1.set_ylabel("Sharpe (annualised)")
    ax1.set_title(f"Rolling Sharpe and volatility ({window}-bar window, {span})")
    ax2.plot(x, vol.to_numpy(), color=_RED, lw=1)
    ax2.set_ylabel("Volatility (% a year)")
    _date_axis(ax2)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    return fig


def plot_trade_pnl(result: BacktestResult, metrics: Metrics) -> Figure:
    """Distribution of net P&L per closed trade."""
    pnl = result.trades["pnl_net"].to_numpy(float)
    pnl = pnl[np.isfinite(pnl)]
    if not len(pnl):
        raise NoData("no closed trades")
    fig = _figure(height=3.8)
    ax = fig.add_subplot()
    n_bins = min(60, max(10, int(np.sqrt(len(pnl)))))
    width = (pnl.max() - pnl.min()) / n_bins or 1.0
    # zero is a bin edge, so no bar mixes winners and losers
    bins = np.arange(np.floor(pnl.min() / width), np.ceil(pnl.max() / width) + 1) * width
    if len(bins) < 2:
        bins = np.array([bins[0] - width, bins[0] + width])
    ax.hist(pnl[pnl > 0], bins=bins, color=_GREEN, alpha=0.8, label="Winners")
    ax.hist(pnl[pnl <= 0], bins=bins, color=_RED, alpha=0.8, label="Losers")
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(pnl.mean(), color=_BLUE, lw=1.2, ls="--", label=f"Mean {pnl.mean():,.2f}")
    ax.set_title(f"Trade P&L distribution ({len(pnl)} trades)")
    ax.set_xlabel(f"Net P&L per trade ({CURRENCY})")
    ax.set_ylabel("Number of trades")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _prices(result: BacktestResult, symbol: str) -> pd.Series:
    if symbol in result.benchmark.columns:
        return result.benchmark[symbol].dropna()
    rec = result.records[result.records["symbol"] == symbol]
    return pd.Series(rec["close"].to_numpy(float), index=pd.DatetimeIndex(rec["timestamp"]))


def plot_price_trades(result: BacktestResult, symbol: str) -> Figure:
    """Close price with trade entries (▲ long, ▼ short) and exits (×)."""
    px = _prices(result, symbol)
    if px.empty:
        raise NoData(f"no prices for {symbol}")
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(_naive(px.index), px.to_numpy(), color=_GREY, lw=0.9, label=f"{symbol} close")
    tr = result.trades[result.trades["symbol"] == symbol]
    many = len(tr) > 300  # thousands of markers hide the price: entries only, small
    size = 36 if len(tr) < 100 else 16 if not many else 5
    longs, shorts = tr[tr["direction"] > 0], tr[tr["direction"] < 0]
    marks = [
        (longs, "entry", "^", _GREEN, "Long entry"),
        (shorts, "entry", "v", _RED, "Short entry"),
    ]
    if not many:
        marks.append((tr, "exit", "x", "black", "Exit"))
    for rows, when, marker, colour, label in marks:
        if len(rows):
            ax.scatter(
                _naive(rows[f"{when}_time"]),
                rows[f"{when}_price"],
                marker=marker,
                s=size,
                color=colour,
                alpha=0.6 if many else 1.0,
                lw=0.8 if marker == "x" else None,
                label=label,
                zorder=3,
            )
    if many:
        ax.text(
            0.99,
            0.02,
            f"{len(tr)} trades: exits not marked",
            transform=ax.transAxes,
            ha="right",
            fontsize=8,
            color=_GREY,
        )
    ax.set_title(f"{symbol}: price with entries and exits ({len(tr)} trades)")
    ax.set_ylabel("Price (quote currency)")
    _money(ax)
    _date_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def position_tiers(result: BacktestResult, symbol: str, timestamps: pd.Series) -> np.ndarray:
    """Tier of the position held at each bar: the tier of the trade that opened it.

    Bars inside a closed trade [entry, exit) take its tier; others keep the
    tier recorded on the bar (a still-open position, or a run without trades).
    """
    rec = result.records
    tiers = rec.loc[rec["symbol"] == symbol, "tier"].to_numpy(object).copy()
    t = pd.DatetimeIndex(timestamps).as_unit("ns").asi8
    trades = result.trades[result.trades["symbol"] == symbol]
    entry = pd.DatetimeIndex(trades["entry_time"]).as_unit("ns").asi8
    exit_ = pd.DatetimeIndex(trades["exit_time"]).as_unit("ns").asi8
    for a, b, tier in zip(entry, exit_, trades["tier"], strict=True):
        tiers[(t >= a) & (t < b)] = tier
    return tiers


def plot_positions(result: BacktestResult, metrics: Metrics) -> Figure:
    """Value of the position held in each symbol over time, coloured by the tier that opened it."""
    rec = result.records
    if rec.empty or not np.isfinite(rec["position_value"]).any():
        raise NoData("no per-bar records of positions")
    symbols = list(dict.fromkeys(rec["symbol"]))
    tiers = [t["tier"] for t in metrics.tiers if t["tier"] != "(none)"]
    colours = _tier_colours(tiers)
    fig = _figure(height=1.2 + 2.2 * len(symbols))
    axes = np.atleast_1d(fig.subplots(len(symbols), 1, sharex=True, squeeze=False)[:, 0])
    seen: dict[str, object] = {}
    for ax, sym in zip(axes, symbols, strict=True):
        r = rec[rec["symbol"] == sym]
        x = _naive(r["timestamp"])
        v = np.nan_to_num(r["position_value"].to_numpy(float))
        held_tier = position_tiers(result, sym, r["timestamp"])
        ax.plot(x, v, color=_GREY, lw=0.5, drawstyle="steps-post")
        held = v != 0
        for tier in [*tiers, None]:
            if tier is None:
                m = held & ~np.isin(held_tier, tiers)
                colour, label = "black", "no tier"
            else:
                m = held & (held_tier == tier)
                colour, label = colours[tier], f"tier {tier}"
            if m.any():
                span = m.copy()
                span[1:] |= m[:-1]  # a step-post area needs the next bar's point too
                poly = ax.fill_between(
                    x, v, 0, where=span, step="post", color=colour, alpha=0.75, lw=0, label=label
                )
                seen.setdefault(label, poly)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_ylabel(f"{sym} ({CURRENCY})", fontsize=8)
        _money(ax)
        ax.grid(alpha=0.3)
    _date_axis(axes[-1])
    axes[0].set_title("Position value by the confidence tier that opened it (+ long, − short)")
    if seen:
        axes[0].legend(list(seen.values()), list(seen), fontsize=8, loc="upper left")
    return fig


def plot_tiers(result: BacktestResult, metrics: Metrics) -> Figure:
    """Hit rate of signals and net P&L of trades per confidence tier."""
    rows = metrics.tiers
    if not rows:
        raise NoData("no signals or trades carry a confidence tier")
    names = [r["tier"] for r in rows]
    hit = [100 * r["hit_rate"] if r["hit_rate"] == r["hit_rate"] else 0.0 for r in rows]
    pnl = [r["pnl_net"] for r in rows]
    fig = _figure(height=3.6)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.bar(names, hit, color=_BLUE)
    ax1.axhline(50, color=_GREY, ls="--", lw=0.9, label="coin flip")
    for i, r in enumerate(rows):
        ax1.text(i, hit[i], f"n={r['n_signals']}", ha="center", va="bottom", fontsize=8)
    ax1.set_ylim(0, 100)
    ax1.set_title("Signal hit rate by tier")
    ax1.set_xlabel("Confidence tier (low → high)")
    ax1.set_ylabel("Hit rate (%)")
    ax1.legend(fontsize=8)
    ax2.bar(names, pnl, color=[_GREEN if p >= 0 else _RED for p in pnl])
    ax2.axhline(0, color="black", lw=0.8)
    for i, r in enumerate(rows):
        ax2.text(
            i,
            pnl[i],
            f"{r['n_trades']} trades",
            ha="center",
            va="bottom" if pnl[i] >= 0 else "top",
            fontsize=8,
        )
    ax2.set_title("Net trade P&L by tier")
    ax2.set_xlabel("Confidence tier (low → high)")
    ax2.set_ylabel(f"Net P&L ({CURRENCY})")
    _money(ax2)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, axis="y")
    return fig


def plot_calibration(result: BacktestResult, metrics: Metrics) -> Figure:
    """Predicted probability against the realised frequency, per bin."""
    cal = metrics.calibration
    if not cal.get("bins"):
        raise NoData("no predictions with a realised outcome to calibrate against")
    b = cal["bins"]
    pred = [r["predicted"] for r in b]
    real = [r["realised"] for r in b]
    count = np.array([r["count"] for r in b], float)
    fig = _figure(7.0, 5.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color=_GREY, ls="--", lw=1, label="Perfectly calibrated")
    ax.plot(pred, real, color=_BLUE, lw=1.2)
    ax.scatter(
        pred,
        real,
        s=20 + 180 * count / count.max(),
        color=_BLUE,
        zorder=3,
        label="Bin (size = bars)",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    if cal["kind"] == "proba_up":
        ax.set_xlabel("Predicted probability of an up move (%)")
        ax.set_ylabel("Realised frequency of up moves (%)")
    else:
        ax.set_xlabel("Model confidence (%)")
        ax.set_ylabel("Share of signals that were right (%)")
    ax.set_title(f"Calibration (expected calibration error {cal['ece'] * 100:.1f} pp)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_confusion(result: BacktestResult, metrics: Metrics) -> Figure:
    """Counts of realised outcome by predicted signal."""
    cm = metrics.confusion
    counts = np.array(cm.get("counts") or [[0]], float)
    if counts.sum() == 0:
        raise NoData("no signals with a realised outcome")
    fig = _figure(6.0, 1.6 + 1.0 * counts.shape[0])
    ax = fig.add_subplot()
    im = ax.imshow(counts, cmap="Blues", aspect="auto")
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            share = counts[i, j] / counts[i].sum() if counts[i].sum() else 0
            colour = "white" if im.norm(counts[i, j]) > 0.6 else "black"
            ax.text(
                j,
                i,
                f"{int(counts[i, j])}\n{share:.0%} of row",
                ha="center",
                va="center",
                fontsize=8,
                color=colour,
            )
    ax.set_xticks(range(len(cm["predicted"])), cm["predicted"])
    ax.set_yticks(range(len(cm["actual"])), cm["actual"])
    ax.set_xlabel("Predicted signal")
    ax.set_ylabel("Realised outcome")
    ax.set_title("Confusion matrix (bars)")
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("Bars")
    return fig


_FOLD_TOP = ("accuracy", "auc")
_FOLD_BOTTOM = ("log_loss", "brier", "ic")


def plot_folds(result: BacktestResult, metrics: Metrics) -> Figure:
    """Per-fold accuracy/AUC and log loss/Brier/IC over time (mean over symbols per fold)."""
    keys = [
        k
        for k in _FOLD_TOP + _FOLD_BOTTOM
        if any(_num(r.get(k)) is not None for r in metrics.folds)
    ]
    if not metrics.folds or not keys:
        raise NoData("no per-fold metrics from walk-forward or records")
    table = pd.DataFrame(
        [
            {
                "fold": r.get("fold"),
                "start": _when(r.get("test_start") or r.get("start")),
                **{k: _num(r.get(k)) for k in keys},
            }
            for r in metrics.folds
        ]
    )
    table[keys] = table[keys].astype(float)
    n_symbols = len({r.get("symbol") for r in metrics.folds})
    per_fold = table.groupby("fold", sort=True).agg({"start": "min", **dict.fromkeys(keys, "mean")})
    dated = per_fold["start"].notna().all()
    x = _naive(pd.DatetimeIndex(per_fold["start"])) if dated else per_fold.index.to_numpy(float)
    fig = _figure(height=5.0)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for ax, group in ((ax1, _FOLD_TOP), (ax2, _FOLD_BOTTOM)):
        for k in group:
            if k in keys:
                ax.plot(x, per_fold[k].to_numpy(), marker="o", lw=1.2, label=k.replace("_", " "))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    ax1.axhline(0.5, color=_GREY, ls="--", lw=0.9)
    ax1.set_ylabel("Accuracy / AUC (fraction)")
    ax2.axhline(0, color=_GREY, lw=0.6)
    ax2.set_ylabel("Log loss / Brier / IC")
    over = f", mean of {n_symbols} symbols" if n_symbols > 1 else ""
    ax1.set_title(f"Out-of-sample metrics per walk-forward fold ({len(per_fold)} folds{over})")
    if dated:
        _date_axis(ax2, "Fold test start (UTC)")
    else:
        ax2.set_xlabel("Fold number")
    return fig


def _when(v) -> pd.Timestamp:
    """A fold's start as a UTC timestamp (NaT when absent or unreadable)."""
    try:
        t = pd.Timestamp(v)
    except (TypeError, ValueError):
        return pd.NaT
    if pd.isna(t):
        return pd.NaT
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def plot_feature_importance(result: BacktestResult, metrics: Metrics, top: int = 20) -> Figure:
    """The most important features, as a share of total importance."""
    fi = metrics.feature_importance
    if not fi:
        raise NoData("the predictor reports no feature importance")
    items = list(fi.items())[:top]
    total = sum(abs(v) for v in fi.values()) or 1.0
    names = [k for k, _ in items][::-1]
    vals = [100 * abs(v) / total for _, v in items][::-1]
    fig = _figure(8.0, 1.2 + 0.28 * len(items))
    ax = fig.add_subplot()
    ax.barh(names, vals, color=_BLUE)
    ax.set_xlabel("Share of total importance (%)")
    ax.set_ylabel("Feature")
    shown = f"top {len(items)} of {len(fi)}" if len(fi) > len(items) else f"{len(fi)} features"
    ax.set_title(f"Feature importance ({shown})")
    ax.grid(alpha=0.3, axis="x")
    return fig


def plot_symbol_pnl(result: BacktestResult, metrics: Metrics) -> Figure:
    """Cumulative mark-to-market P&L of each symbol's positions (before costs)."""
    rec = result.records
    symbols = list(dict.fromkeys(rec["symbol"])) if not rec.empty else []
    if len(symbols) < 2:
        raise NoData("single-symbol run: the portfolio view is the symbol view")
    fig = _figure()
    ax = fig.add_subplot()
    for sym in symbols:
        r = rec[rec["symbol"] == sym].sort_values("timestamp")
        pos = r["position"].to_numpy(float)
        close = r["close"].to_numpy(float)
        pnl = np.concatenate([[0.0], np.cumsum(np.nan_to_num(pos[:-1] * np.diff(close)))])
        ax.plot(_naive(r["timestamp"]), pnl, lw=1.1, label=sym)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_title("P&L contribution by symbol (mark-to-market, before costs)")
    ax.set_ylabel(f"Cumulative P&L ({CURRENCY})")
    _money(ax)
    _date_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------- all charts


def want_log_scale(result: BacktestResult, log_scale: bool | str) -> bool:
    if log_scale != "auto":
        return bool(log_scale)
    eq = result.equity
    span = eq.max() / eq.min() if eq.min() > 0 else 1.0
    bh = buy_and_hold(result.benchmark, eq.index, float(eq.iloc[0]))
    if len(bh) and bh.min() > 0:
        span = max(span, bh.max() / bh.min())
    return span > 10


def make_charts(
    result: BacktestResult, metrics: Metrics, *, log_scale: bool | str = "auto"
) -> list[Chart]:
    """Every chart of the report, in page order; missing data gives a Chart with a note."""
    specs = [
        (
            "equity",
            "Equity vs buy-and-hold",
            "performance",
            lambda: plot_equity(result, metrics, log=want_log_scale(result, log_scale)),
        ),
        ("drawdown", "Drawdown", "performance", lambda: plot_drawdown(result, metrics)),
        (
            "monthly_returns",
            "Monthly returns",
            "performance",
            lambda: plot_monthly_heatmap(result, metrics),
        ),
        (
            "rolling",
            "Rolling Sharpe and volatility",
            "performance",
            lambda: plot_rolling(result, metrics),
        ),
        ("symbol_pnl", "P&L by symbol", "symbols", lambda: plot_symbol_pnl(result, metrics)),
    ]
    symbols = list(result.symbols) or list(dict.fromkeys(result.trades["symbol"]))
    for sym in symbols:
        specs.append(
            (
                f"price_{safe_name(sym)}",
                f"{sym}: price, entries and exits",
                "symbols",
                lambda s=sym: plot_price_trades(result, s),
            )
        )
    specs += [
        ("positions", "Position size by tier", "symbols", lambda: plot_positions(result, metrics)),
        ("trade_pnl", "Trade P&L distribution", "trades", lambda: plot_trade_pnl(result, metrics)),
        (
            "tiers",
            "Confidence tiers: hit rate and P&L",
            "model",
            lambda: plot_tiers(result, metrics),
        ),
        ("calibration", "Calibration", "model", lambda: plot_calibration(result, metrics)),
        ("confusion", "Confusion matrix", "model", lambda: plot_confusion(result, metrics)),
        ("folds", "Metrics per fold", "model", lambda: plot_folds(result, metrics)),
        (
            "feature_importance",
            "Feature importance",
            "model",
            lambda: plot_feature_importance(result, metrics),
        ),
    ]
    charts = []
    for name, title, section, build in specs:
        try:
            charts.append(Chart(name, title, section, figure=build()))
        except NoData as exc:
            charts.append(Chart(name, title, section, note=str(exc)))
    return charts


def save_charts(charts: list[Chart], out_dir: str | Path, *, dpi: int = 100) -> list[Chart]:
    """Write each drawn chart as `<name>.png` in `out_dir` and release its figure."""
    out = Path(out_dir)
    for chart in charts:
        if chart.figure is None:
            continue
        chart.file = f"{chart.name}.png"
        chart.figure.savefig(out / chart.file, dpi=dpi, format="png", metadata={"Software": None})
        chart.figure = None
    return charts


# --------------------------------------------------------------------------- comparison


def plot_compare_equity(runs: list[tuple[str, BacktestResult, Metrics]]) -> Chart:
    fig = _figure()
    ax = fig.add_subplot()
    for name, result, _ in runs:
        eq = result.equity
        ax.plot(_naive(eq.index), (eq / eq.iloc[0]).to_numpy(), lw=1.3, label=name)
    name, first, _ = runs[0]
    bh = buy_and_hold(first.benchmark, first.equity.index, 1.0)
    if len(bh):
        ax.plot(
            _naive(bh.index),
            bh.to_numpy(),
            color=_GREY,
            lw=1,
            ls="--",
            label=f"Buy and hold ({name}'s data)",
        )
    ax.set_title("Growth of 1 unit: runs side by side")
    ax.set_ylabel("Value relative to start (×)")
    _date_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return Chart("compare_equity", "Equity of each run", "performance", figure=fig)


def plot_compare_drawdown(runs: list[tuple[str, BacktestResult, Metrics]]) -> Chart:
    fig = _figure(height=3.5)
    ax = fig.add_subplot()
    for name, result, _ in runs:
        dd = drawdown_series(result.equity) * 100
        ax.plot(_naive(dd.index), dd.to_numpy(), lw=1, label=name)
    ax.set_title("Drawdown of each run")
    ax.set_ylabel("Below previous peak (%)")
    _date_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return Chart("compare_drawdown", "Drawdown of each run", "performance", figure=fig)


def plot_compare_folds(runs: list[tuple[str, BacktestResult, Metrics]]) -> Chart:
    have = [
        (
            name,
            [
                f
                for f in m.folds
                if _num(f.get("accuracy")) is not None or _num(f.get("auc")) is not None
            ],
        )
        for name, _, m in runs
    ]
    if not any(rows for _, rows in have):
        return Chart(
            "compare_folds",
            "Accuracy and AUC per fold",
            "model",
            note="no run has per-fold accuracy or AUC",
        )
    fig = _figure(height=4.5)
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    for name, rows in have:
        if rows:
            folds = [r.get("fold") for r in rows]
            for ax, key in ((ax1, "accuracy"), (ax2, "auc")):
                y = [_num(r.get(key)) for r in rows]
                ax.plot(folds, [np.nan if v is None else v for v in y], marker="o", label=name)
    for ax, what in ((ax1, "Accuracy"), (ax2, "AUC")):
        ax.axhline(0.5, color=_GREY, ls="--", lw=0.9)
        ax.set_xlabel("Fold number")
        ax.set_title(f"{what} per fold")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax1.set_ylabel("Score (fraction)")
    ax2.set_ylabel("Score (fraction)")
    return Chart("compare_folds", "Accuracy and AUC per fold", "model", figure=fig)


def make_comparison_charts(runs: list[tuple[str, BacktestResult, Metrics]]) -> list[Chart]:
    """Charts of the comparison page: equity, drawdown, accuracy/AUC per fold of every run."""
    return [plot_compare_equity(runs), plot_compare_drawdown(runs), plot_compare_folds(runs)]
