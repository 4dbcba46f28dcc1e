"""Trading metrics and ML diagnostics of a BacktestResult.

Conventions (chosen to agree with `empyrical` where a metric has a standard
form, so the tests can compare to it at 1e-6):

* Returns are simple bar returns of the equity curve, ``E[t] / E[t-1] - 1``.
* Annualisation uses ``periods_per_year`` (P): inferred from the bar length
  and the calendar (24/7 markets: 365 days a year, so 8,760 hourly bars;
  markets closed at weekends: 252 sessions a year times the bars per
  session), or given by the caller.
* CAGR counts years as ``n_returns / P`` (empyrical's `annual_return`), not
  calendar time; both agree for gap-free bars.
* Volatility and Sharpe use the sample standard deviation (ddof=1) times
  ``sqrt(P)``; the risk-free rate is annual and converted per bar as
  ``(1 + rf) ** (1 / P) - 1``.
* Sortino divides ``mean * P`` by the downside deviation
  ``sqrt(mean(min(r, 0)^2)) * sqrt(P)`` taken over *all* bars (the
  Sortino–Price target semi-deviation, as empyrical and quantstats do),
  not the standard deviation of the negative returns only.
* VaR 95 % is the 5th percentile of bar returns with linear interpolation;
  CVaR 95 % is the mean of the ``floor((n - 1) * 0.05) + 1`` worst returns
  (both as empyrical). Both are returns (negative numbers mean losses).
* Skew and kurtosis are the population moments (bias not corrected, excess
  kurtosis), as `scipy.stats.skew` / `kurtosis` with their defaults.
* Alpha/beta are against the buy-and-hold of the same data: equal capital in
  every symbol at the first bar, never rebalanced. Beta is
  ``cov(r, b) / var(b)``; alpha is ``(1 + mean(r - beta * b)) ** P - 1``.
* Calmar is CAGR / |max drawdown|. Drawdown durations run from the peak to
  the bar equity first gets back to it (or to the last bar if it never does);
  "max drawdown duration" is that of the deepest episode, "longest
  underwater" the longest of all.
* Trade statistics use closed trades and their net P&L (after commission):
  win rate = share with pnl_net > 0, profit factor = gross wins / gross
  losses, expectancy = mean pnl_net. Fees paid are the commissions of closed
  trades.
* Exposure is the share of bars with any non-zero position (per-bar records;
  closed-trade intervals [entry, exit) when there are none). Turnover is the
  currency value traded (|position change| × close, summed) over mean equity,
  in total and per year.
* Costs are attributed exactly from the fills (`cost_attribution`): gross
  P&L at the raw fill prices (before slippage), minus the slippage charged,
  minus the fees, equals the net P&L; positions still open at the last bar
  are marked at its close. compute_metrics checks that identity to 1e-9 of
  the traded notional. Results without recorded fills fall back to closed
  trades (gross at executed prices; slippage not separable, reported null).
* ML diagnostics compare predictions with the realised outcome recorded for
  the bar (`forward_return` / `target` when the feed carries them, else the
  next bar's close-to-close move); see `realised_outcomes`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from mlstrat.errors import ConfigError, IntegrityError
from mlstrat.report.result import FILLS_FILE, BacktestResult

if TYPE_CHECKING:
    from mlstrat.report.stats import StatisticsOptions

TRADING_DAYS_PER_YEAR = 252
CALENDAR_DAYS_PER_YEAR = 365
_DAY = pd.Timedelta(days=1)


# --------------------------------------------------------------------------- annualisation


@dataclass(frozen=True)
class Annualisation:
    """How many bars make a year, and why we think so."""

    periods_per_year: float
    calendar: str  # "24/7", "weekdays" or "given"
    bar_seconds: float | None
    reason: str


def bar_length(index: pd.DatetimeIndex, timeframe: str | None = None) -> pd.Timedelta | None:
    """Length of one bar: from the timeframe alias when it is a fixed span, else the median gap."""
    if timeframe:
        try:
            return pd.Timedelta(to_offset(timeframe))
        except (ValueError, TypeError):
            pass  # calendar offsets (weeks, months): fall back to the data
    if len(index) < 2:
        return None
    gaps = np.diff(pd.DatetimeIndex(index).as_unit("ns").asi8)
    return pd.Timedelta(int(np.median(gaps)), unit="ns")


def span_text(td: pd.Timedelta) -> str:
    """Short human form of a bar length: 1h, 15min, 1D, 90s."""
    seconds = td.total_seconds()
    for unit, size in (("D", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return str(td)


def infer_annualisation(
    index: pd.DatetimeIndex,
    timeframe: str | None = None,
    periods_per_year: float | None = None,
) -> Annualisation:
    """Bars per year for `index`; weekends in the data mean a 24/7 market."""
    if periods_per_year is not None:
        if not (isinstance(periods_per_year, (int, float)) and periods_per_year > 0):
            raise ConfigError(
                f"periods_per_year must be a positive number, got {periods_per_year!r}",
                fix="pass e.g. 8760 for hourly 24/7 bars or 252 for daily equity bars",
            )
        return Annualisation(float(periods_per_year), "given", None, "set by the caller")
    bar = bar_length(index, timeframe)
    if bar is None or bar <= pd.Timedelta(0):
        return Annualisation(
            float(TRADING_DAYS_PER_YEAR), "weekdays", None, "one bar only: assumed daily"
        )
    seconds = bar.total_seconds()
    if bar >= pd.Timedelta(days=6):  # weekly or longer bars: the calendar no longer matters
        days = seconds / 86400
        if 27 <= days <= 32:
            ppy = 12.0
        elif 88 <= days <= 93:
            ppy = 4.0
        else:
            ppy = 52.0 * 7 / days
        return Annualisation(ppy, "24/7", seconds, f"{span_text(bar)} bars: {ppy:g} a year")
    span = index[-1] - index[0]
    weekend = bool((index.day_of_week >= 5).any())
    if weekend or span < pd.Timedelta(days=7):
        ppy = CALENDAR_DAYS_PER_YEAR * 86400 / seconds
        why = "weekend bars present" if weekend else "under a week of data, assumed"
        return Annualisation(
            ppy, "24/7", seconds, f"{why}: 24/7 market, {ppy:g} {span_text(bar)} bars a year"
        )
    if bar >= _DAY:
        ppy = TRADING_DAYS_PER_YEAR * 86400 / seconds
    else:
        per_day = pd.Series(1, index=index).groupby(index.normalize()).size()
        ppy = TRADING_DAYS_PER_YEAR * float(per_day.median())
    return Annualisation(
        ppy,
        "weekdays",
        seconds,
        f"no weekend bars: 252 sessions a year, {ppy:g} {span_text(bar)} bars a year",
    )


# --------------------------------------------------------------------------- return metrics


def bar_returns(equity: pd.Series) -> pd.Series:
    """Simple returns per bar; the first bar has none."""
    values = equity.to_numpy(float)
    return pd.Series(values[1:] / values[:-1] - 1.0, index=equity.index[1:], name="returns")


def total_return(equity: pd.Series) -> float:
    return float(equity.iloc[-1] / equity.iloc[0] - 1.0)


def cagr(returns: pd.Series | np.ndarray, periods_per_year: float) -> float:
    """Compound annual growth with years = n / P (see module docstring)."""
    r = np.asarray(returns, float)
    if len(r) < 1:
        return math.nan
    growth = float(np.prod(1.0 + r))
    if growth <= 0:
        return -1.0
    return growth ** (periods_per_year / len(r)) - 1.0


def annual_volatility(returns: pd.Series | np.ndarray, periods_per_year: float) -> float:
    r = np.asarray(returns, float)
    if len(r) < 2:
        return math.nan
    return float(np.std(r, ddof=1) * math.sqrt(periods_per_year))


def per_bar_rate(annual_rate: float, periods_per_year: float) -> float:
    """Per-bar rate compounding to `annual_rate` over a year."""
    return (1.0 + annual_rate) ** (1.0 / periods_per_year) - 1.0


def sharpe_ratio(
    returns: pd.Series | np.ndarray, periods_per_year: float, risk_free: float = 0.0
) -> float:
    """Annualised Sharpe; `risk_free` is an annual rate."""
    r = np.asarray(returns, float) - per_bar_rate(risk_free, periods_per_year)
    if len(r) < 2:
        return math.nan
    sd = float(np.std(r, ddof=1))
    if sd == 0 or not math.isfinite(sd) or np.ptp(r) == 0:
        return math.nan
    return float(np.mean(r) / sd * math.sqrt(periods_per_year))


def downside_deviation(
    returns: pd.Series | np.ndarray, periods_per_year: float, required: float = 0.0
) -> float:
    r = np.asarray(returns, float)
    if len(r) < 1:
        return math.nan
    down = np.minimum(r - required, 0.0)
    return float(math.sqrt(np.mean(down**2)) * math.sqrt(periods_per_year))


def sortino_ratio(
    returns: pd.Series | np.ndarray, periods_per_year: float, risk_free: float = 0.0
) -> float:
    """Annualised Sortino against the per-bar risk-free rate (see module docstring)."""
    req = per_bar_rate(risk_free, periods_per_year)
    r = np.asarray(returns, float)
    if len(r) < 2:
        return math.nan
    dd = downside_deviation(r, periods_per_year, req)
    if dd == 0:
        return math.nan
    return float(np.mean(r - req) * periods_per_year / dd)


def drawdown_series(equity: pd.Series) -> pd.Series:
    """Fractional distance below the running peak (0 at a new high, negative below)."""
    values = equity.to_numpy(float)
    peak = np.maximum.accumulate(values)
    return pd.Series(values / peak - 1.0, index=equity.index, name="drawdown")


def max_drawdown(equity: pd.Series) -> float:
    return float(drawdown_series(equity).min())


@dataclass(frozen=True)
class Drawdown:
    """One underwater episode: from a peak until equity first gets back to it."""

    peak: pd.Timestamp
    trough: pd.Timestamp
    recovery: pd.Timestamp | None  # None: still underwater at the end of the data
    depth: float  # most negative drawdown in the episode
    bars: int  # bars from peak to recovery (or to the last bar)
    days: float  # calendar time from peak to recovery (or to the last bar)


def drawdown_episodes(equity: pd.Series) -> list[Drawdown]:
    """Every underwater episode, in time order."""
    dd = drawdown_series(equity).to_numpy()
    idx = equity.index
    out: list[Drawdown] = []
    under = dd < 0
    i, n = 0, len(dd)
    while i < n:
        if not under[i]:
            i += 1
            continue
        start = i - 1  # the peak is the bar before going under (first bar is never under)
        j = i
        while j < n and under[j]:
            j += 1
        seg = dd[i:j]
        trough = i + int(np.argmin(seg))
        end = j if j < n else n - 1
        out.append(
            Drawdown(
                peak=idx[start],
                trough=idx[trough],
                recovery=idx[j] if j < n else None,
                depth=float(seg.min()),
                bars=end - start,
                days=(idx[end] - idx[start]) / _DAY,
            )
        )
        i = j
    return out


def value_at_risk(returns: pd.Series | np.ndarray, level: float = 0.95) -> float:
    r = np.asarray(returns, float)
    return float(np.percentile(r, 100 * (1 - level))) if len(r) else math.nan


def conditional_value_at_risk(returns: pd.Series | np.ndarray, level: float = 0.95) -> float:
    r = np.sort(np.asarray(returns, float))
    if not len(r):
        return math.nan
    k = int((len(r) - 1) * (1 - level)) + 1
    return float(r[:k].mean())


def skewness(returns: pd.Series | np.ndarray) -> float:
    r = np.asarray(returns, float)
    if len(r) < 3:
        return math.nan
    d = r - r.mean()
    m2 = np.mean(d**2)
    return float(np.mean(d**3) / m2**1.5) if m2 > 0 else math.nan


def excess_kurtosis(returns: pd.Series | np.ndarray) -> float:
    r = np.asarray(returns, float)
    if len(r) < 4:
        return math.nan
    d = r - r.mean()
    m2 = np.mean(d**2)
    return float(np.mean(d**4) / m2**2 - 3.0) if m2 > 0 else math.nan


def alpha_beta(
    returns: pd.Series | np.ndarray, bench: pd.Series | np.ndarray, periods_per_year: float
) -> tuple[float, float]:
    """Annualised alpha and beta of `returns` against benchmark returns `bench` (aligned)."""
    r = np.asarray(returns, float)
    b = np.asarray(bench, float)
    ok = np.isfinite(r) & np.isfinite(b)
    r, b = r[ok], b[ok]
    if len(r) < 2:
        return math.nan, math.nan
    var = float(np.mean((b - b.mean()) ** 2))
    if var == 0:
        return math.nan, math.nan
    beta = float(np.mean((r - r.mean()) * (b - b.mean())) / var)
    alpha = float((1.0 + np.mean(r - beta * b)) ** periods_per_year - 1.0)
    return alpha, beta


def buy_and_hold(benchmark: pd.DataFrame, index: pd.DatetimeIndex, start_value: float) -> pd.Series:
    """Value of equal capital put in every symbol at the first bar and never traded."""
    if benchmark.shape[1] == 0 or len(benchmark) == 0:
        return pd.Series(dtype=float, name="buy_and_hold")
    prices = benchmark.reindex(benchmark.index.union(index)).ffill().reindex(index)
    first = prices.bfill().iloc[0]
    growth = (prices / first).ffill().fillna(1.0)
    valid = first.notna() & (first > 0)
    if not valid.any():
        return pd.Series(dtype=float, name="buy_and_hold")
    value = growth.loc[:, valid].mean(axis=1) * start_value
    return value.rename("buy_and_hold")


# --------------------------------------------------------------------------- trade metrics


def trade_stats(trades: pd.DataFrame) -> dict[str, float]:
    """Win rate, profit factor, expectancy, average win/loss, holding time, fees."""
    n = len(trades)
    pnl = trades["pnl_net"].to_numpy(float)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    gross_win, gross_loss = float(wins.sum()), float(-losses.sum())
    no_loss_pf = math.inf if gross_win > 0 else math.nan
    pf = gross_win / gross_loss if gross_loss > 0 else no_loss_pf
    notional = (trades["entry_price"] * trades["size"]).to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        trade_ret = np.where(notional > 0, pnl / notional, np.nan)
    held = (trades["exit_time"] - trades["entry_time"]) / pd.Timedelta(hours=1)
    return {
        "n_trades": n,
        "n_long": int((trades["direction"] > 0).sum()),
        "n_short": int((trades["direction"] < 0).sum()),
        "win_rate": len(wins) / n if n else math.nan,
        "profit_factor": pf,
        "expectancy": float(pnl.mean()) if n else math.nan,
        "avg_trade_return": float(np.nanmean(trade_ret))
        if np.isfinite(trade_ret).any()
        else math.nan,
        "avg_win": float(wins.mean()) if len(wins) else math.nan,
        "avg_loss": float(losses.mean()) if len(losses) else math.nan,
        "gross_profit": gross_win,
        "gross_loss": -gross_loss,
        "net_pnl": float(pnl.sum()),
        "avg_holding_hours": float(held.mean()) if n else math.nan,
        "avg_bars_held": float(trades["bars_held"].mean()) if n else math.nan,
        "fees_paid": float(trades["commission"].sum()),
    }


def _position_frame(records: pd.DataFrame, column: str) -> pd.DataFrame:
    """Wide table timestamp × symbol of one records column."""
    if records.empty:
        return pd.DataFrame()
    wide = records.pivot_table(index="timestamp", columns="symbol", values=column, aggfunc="last")
    return wide.sort_index()


def exposure(result: BacktestResult) -> float:
    """Share of bars with any open position (records; else trade intervals)."""
    idx = result.equity.index
    if not result.records.empty:
        pos = _position_frame(result.records, "position").reindex(idx).fillna(0.0)
        return float((pos.abs() > 0).any(axis=1).mean())
    if result.trades.empty:
        return 0.0
    inside = np.zeros(len(idx), bool)
    t = idx.as_unit("ns").asi8
    for a, b in zip(result.trades["entry_time"], result.trades["exit_time"], strict=True):
        inside |= (t >= a.value) & (t < b.value)
    return float(inside.mean())


def traded_notional(result: BacktestResult) -> float:
    """Currency value bought plus sold (records' position changes; else trades)."""
    if not result.records.empty:
        pos = _position_frame(result.records, "position").fillna(0.0)
        close = _position_frame(result.records, "close").ffill()
        change = pos.diff()
        change.iloc[0] = pos.iloc[0]
        return float((change.abs() * close).sum().sum())
    t = result.trades
    return float((t["size"] * (t["entry_price"] + t["exit_price"])).sum())


# --------------------------------------------------------------------------- cost attribution

#: Relative tolerance of the identity gross − slippage − fees = net (of the traded notional).
ATTRIBUTION_TOLERANCE = 1e-9


def _mark_prices(result: BacktestResult) -> dict[str, float]:
    """Last close per symbol (records, else the benchmark) for marking open positions."""
    marks: dict[str, float] = {}
    if not result.records.empty:
        last = result.records.sort_values("timestamp", kind="stable").groupby("symbol").last()
        marks.update({str(k): float(v) for k, v in last["close"].items()})
    for sym in result.benchmark.columns:
        px = result.benchmark[sym].dropna()
        if len(px) and str(sym) not in marks:
            marks[str(sym)] = float(px.iloc[-1])
    return marks


def _attribute_fills(fills: pd.DataFrame, mark: float) -> dict[str, float]:
    """Gross at raw prices, slippage, fees and net (at executed prices) of one symbol's fills."""
    size = fills["size"].to_numpy(float)
    raw = fills["raw_price"].to_numpy(float)
    price = fills["price"].to_numpy(float)
    fees = float(fills["commission"].sum())
    position = float(size.sum())
    if abs(position) <= 1e-9 * max(1.0, float(np.abs(size).sum())):
        position = 0.0  # flat: no mark needed (and none used, even if unknown)
    held = position * mark if position else 0.0
    return {
        "gross_pnl": held - float(np.sum(size * raw)),
        "slippage": float(fills["slippage"].sum()),
        "fees": fees,
        "net_pnl": held - float(np.sum(size * price)) - fees,
        "fills": int(len(fills)),
        "open_position": position,
        "mark_price": mark if position else math.nan,
        "notional": float(np.sum(np.abs(size) * raw)),
    }


def _attribute_trades(trades: pd.DataFrame) -> dict[str, float]:
    """Closed trades only: gross at executed prices (slippage inside), fees, net."""
    return {
        "gross_pnl": float(trades["pnl"].sum()),
        "slippage": math.nan,
        "fees": float(trades["commission"].sum()),
        "net_pnl": float(trades["pnl_net"].sum()),
        "fills": 2 * int(len(trades)),
        "open_position": 0.0,
        "mark_price": math.nan,
        "notional": float((trades["size"] * (trades["entry_price"] + trades["exit_price"])).sum()),
    }


def slippage_summary(fills: pd.DataFrame, cap: str | None) -> dict[str, Any]:
    """Nominal vs charged slippage (bp, notional-weighted) over the fills the broker slipped."""
    slipped = fills[fills["nominal_slippage"] > 0]
    notional = (slipped["size"].abs() * slipped["raw_price"]).to_numpy(float)
    total = float(notional.sum())
    n, capped = int(len(slipped)), int(slipped["capped"].sum())
    return {
        "cap": cap,
        "nominal_bp": float((slipped["nominal_slippage"] * notional).sum() / total * 1e4)
        if total
        else math.nan,
        "charged_bp": float(slipped["slippage"].sum() / total * 1e4) if total else math.nan,
        "fills": int(len(fills)),
        "slipped_fills": n,
        "capped_fills": capped,
        "capped_share": capped / n if n else math.nan,
    }


def cost_attribution(result: BacktestResult) -> dict[str, Any]:
    """Gross P&L at raw fill prices, slippage charged, fees and net, per symbol and in total.

    From the fills when the result has them (``basis`` "fills"): gross =
    Σ size × (mark − raw price), slippage = Σ size × (price − raw price),
    fees = Σ commission, net = Σ size × (mark − price) − fees, where mark is
    the symbol's last close (it only matters for a position still open).
    Otherwise (``basis`` "trades") from the closed trades, with slippage
    unknown (NaN) and inside gross. An open position with no close to mark
    it at (no records, no benchmark) leaves gross and net NaN. Raises
    IntegrityError when gross − slippage − fees differs from net by more
    than `ATTRIBUTION_TOLERANCE` of the traded notional (a fills table whose
    columns disagree).
    """
    fills = result.fills
    basis = "trades" if fills is None else "fills"
    marks = _mark_prices(result)
    per_symbol: dict[str, dict[str, Any]] = {}
    if fills is None:
        for sym, grp in result.trades.groupby("symbol", sort=False):
            per_symbol[str(sym)] = _attribute_trades(grp)
    else:
        for sym, grp in fills.groupby("symbol", sort=False):
            per_symbol[str(sym)] = _attribute_fills(grp, marks.get(str(sym), math.nan))
    keys = ("gross_pnl", "slippage", "fees", "net_pnl", "fills", "notional")
    total = {k: float(sum(row[k] for row in per_symbol.values())) for k in keys}
    total["fills"] = int(total["fills"])
    for name, row in [*per_symbol.items(), ("total", total)]:
        _check_identity(row, name, result)
    cap = str((result.config.get("broker") or {}).get("slippage_cap") or "bar_range")
    return {
        "basis": basis,
        "total": total,
        "per_symbol": per_symbol,
        "slippage": slippage_summary(fills, cap) if fills is not None else {"cap": cap},
    }


def _check_identity(row: dict[str, Any], name: str, result: BacktestResult) -> None:
    if not (math.isfinite(row["gross_pnl"]) and math.isfinite(row["net_pnl"])):
        return  # an open position with no close to mark it at: both unknown, nothing to check
    slippage = row["slippage"] if math.isfinite(row["slippage"]) else 0.0
    gap = row["gross_pnl"] - slippage - row["fees"] - row["net_pnl"]
    scale = max(1.0, row["notional"])
    if not abs(gap) <= ATTRIBUTION_TOLERANCE * scale:
        raise IntegrityError(
            f"cost attribution of {name}: gross {row['gross_pnl']:.6f} - slippage "
            f"{slippage:.6f} - fees {row['fees']:.6f} differs from net {row['net_pnl']:.6f} "
            f"by {gap:.3g}; the fills' slippage column disagrees with their prices",
            file=FILLS_FILE if result.fills is not None else None,
            column="slippage",
            fix="rerun the backtest to record the fills again",
        )


# --------------------------------------------------------------------------- ML diagnostics


def realised_outcomes(records: pd.DataFrame) -> pd.DataFrame:
    """Records plus `realised_return` and `realised_up` per row.

    `realised_return` is the feed's `forward_return` when present, else the
    next bar's close-to-close return of the same symbol. `realised_up` is the
    feed's binary `target` when present, else ``realised_return > 0``;
    `realised_class` (0 sell / 1 hold / 2 buy) comes from a 3-class `target`.
    """
    out = records.sort_values("timestamp", kind="stable").reset_index(drop=True)
    if "forward_return" in out.columns:
        out["realised_return"] = out["forward_return"].astype(float)
    else:
        nxt = out.groupby("symbol", sort=False)["close"].shift(-1)
        out["realised_return"] = nxt / out["close"] - 1.0
    rr = out["realised_return"].to_numpy(float)
    up = np.where(np.isfinite(rr), (rr > 0).astype(float), np.nan)
    out["realised_class"] = np.nan
    if "target" in out.columns:
        tgt = pd.to_numeric(out["target"], errors="coerce").to_numpy(float)
        seen = set(np.unique(tgt[np.isfinite(tgt)]).tolist())
        if seen <= {0.0, 1.0}:
            up = tgt
        elif seen <= {0.0, 1.0, 2.0}:
            out["realised_class"] = tgt
            up = np.where(tgt == 2, 1.0, np.where(tgt == 0, 0.0, np.nan))
    out["realised_up"] = up
    return out


def auc_score(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann–Whitney) formula; NaN unless both classes occur."""
    y = np.asarray(y, float)
    s = np.asarray(score, float)
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if pos == 0 or neg == 0:
        return math.nan
    ranks = pd.Series(s).rank(method="average").to_numpy()
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def log_loss(y: np.ndarray, p: np.ndarray, eps: float = 1e-15) -> float:
    y = np.asarray(y, float)
    p = np.clip(np.asarray(p, float), eps, 1 - eps)
    if not len(y):
        return math.nan
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def brier_score(y: np.ndarray, p: np.ndarray) -> float:
    y, p = np.asarray(y, float), np.asarray(p, float)
    return float(np.mean((p - y) ** 2)) if len(y) else math.nan


def spearman_ic(score: np.ndarray, outcome: np.ndarray) -> float:
    """Information coefficient: Spearman rank correlation of score and realised return."""
    a = pd.Series(np.asarray(score, float)).rank().to_numpy()
    b = pd.Series(np.asarray(outcome, float)).rank().to_numpy()
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def _prediction_scores(rows: pd.DataFrame) -> dict[str, float]:
    """Accuracy, AUC, log loss, Brier and IC of the predictions in `rows`."""
    out: dict[str, float] = {"n": int(len(rows))}
    up = rows["realised_up"].to_numpy(float)
    rr = rows["realised_return"].to_numpy(float)
    proba = rows["proba_up"].to_numpy(float)
    signal = rows["signal"].to_numpy(float)
    has_p = np.isfinite(proba) & np.isfinite(up)
    if has_p.any():
        yp, pp = up[has_p], proba[has_p]
        out["accuracy"] = float(np.mean((pp >= 0.5) == (yp == 1)))
        out["auc"] = auc_score(yp, pp)
        out["log_loss"] = log_loss(yp, pp)
        out["brier"] = brier_score(yp, pp)
        score = proba - 0.5
    else:
        act = np.isfinite(signal) & (signal != 0) & np.isfinite(up)
        out["accuracy"] = (
            float(np.mean((signal[act] > 0) == (up[act] == 1))) if act.any() else math.nan
        )
        score = signal * rows["confidence"].to_numpy(float)
    ok = np.isfinite(score) & np.isfinite(rr)
    out["ic"] = spearman_ic(score[ok], rr[ok]) if ok.sum() >= 3 else math.nan
    return out


def fold_table(result: BacktestResult, outcomes: pd.DataFrame | None = None) -> list[dict]:
    """One row per fold (per symbol and fold when the run has several symbols).

    Values in `result.folds` (measured by walk-forward when it predicted) win;
    metrics recomputed here over the backtest's records (start, end, n,
    accuracy, auc, log_loss, brier, ic) fill the keys it lacks.
    """
    if outcomes is None:
        outcomes = realised_outcomes(result.records)
    outcomes = outcomes[outcomes["fold"].notna()]
    by_symbol = any(f.get("symbol") for f in result.folds) or outcomes["symbol"].nunique() > 1
    rows: dict[tuple, dict] = {}
    for f in result.folds:
        key = (str(f.get("symbol") or "") if by_symbol else "", _fold_key(f.get("fold", len(rows))))
        rows[key] = dict(f)
    groups = outcomes.groupby(["symbol", "fold"] if by_symbol else ["fold"], sort=True)
    for name, grp in groups:
        symbol, fold = name if by_symbol else ("", name[0])
        computed: dict[str, Any] = {"fold": int(fold)}
        if by_symbol:
            computed["symbol"] = symbol
        computed.update(start=grp["timestamp"].min(), end=grp["timestamp"].max())
        computed.update(_prediction_scores(grp))
        row = rows.setdefault((symbol, _fold_key(fold)), {})
        for k, v in computed.items():
            if row.get(k) is None:
                row[k] = v
    order = sorted(rows, key=lambda k: (isinstance(k[1], str), k[1], k[0]))
    return [rows[k] for k in order]


def _fold_key(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


def _active(rows: pd.DataFrame) -> pd.Series:
    """Rows with a buy or sell signal (not hold, not missing)."""
    sig = rows["signal"]
    return sig.notna() & (sig != 0)


def tier_table(result: BacktestResult, outcomes: pd.DataFrame | None = None) -> list[dict]:
    """Per confidence tier: signal hit rate and mean signed return, and the trades' P&L.

    A signal hits when its sign matches the sign of the realised return;
    `avg_return` is the mean of ``sign(signal) * realised_return``. Tiers are
    ordered by their mean confidence (lowest first); signals with no tier (below the
    lowest tier, so not traded by a tiered sizer) form the row "(none)".
    """
    if outcomes is None:
        outcomes = realised_outcomes(result.records)
    act = outcomes[_active(outcomes)]
    names = set(act["tier"]) | set(result.trades["tier"])
    rows = []
    for name in names:
        sig = act[act["tier"] == name]
        rr = sig["realised_return"].to_numpy(float)
        s = np.sign(sig["signal"].to_numpy(float))
        ok = np.isfinite(rr)
        tr = result.trades[result.trades["tier"] == name]
        pnl = tr["pnl_net"].to_numpy(float)
        rows.append(
            {
                "tier": name or "(none)",
                "mean_confidence": float(sig["confidence"].mean()) if len(sig) else math.nan,
                "n_signals": int(len(sig)),
                "hit_rate": float(np.mean(np.sign(rr[ok]) == s[ok])) if ok.any() else math.nan,
                "avg_return": float(np.mean(s[ok] * rr[ok])) if ok.any() else math.nan,
                "n_trades": int(len(tr)),
                "trade_win_rate": float(np.mean(pnl > 0)) if len(pnl) else math.nan,
                "pnl_net": float(pnl.sum()),
                "avg_pnl_net": float(pnl.mean()) if len(pnl) else math.nan,
            }
        )
    rows.sort(key=lambda r: (math.isnan(r["mean_confidence"]), r["mean_confidence"], r["tier"]))
    return rows


def calibration_table(
    result: BacktestResult, outcomes: pd.DataFrame | None = None, bins: int = 10
) -> dict:
    """Predicted probability vs realised frequency in equal-width bins.

    Uses `proba_up` against the realised up-move when the records have it;
    otherwise `confidence` against whether the (non-zero) signal was right.
    """
    if outcomes is None:
        outcomes = realised_outcomes(result.records)
    p = outcomes["proba_up"].to_numpy(float)
    y = outcomes["realised_up"].to_numpy(float)
    kind = "proba_up"
    ok = np.isfinite(p) & np.isfinite(y)
    if not ok.any():
        kind = "confidence"
        sig = outcomes["signal"].to_numpy(float)
        p = outcomes["confidence"].to_numpy(float)
        y = np.where(np.isfinite(y), ((sig > 0) == (y == 1)).astype(float), np.nan)
        ok = np.isfinite(p) & np.isfinite(y) & np.isfinite(sig) & (sig != 0)
    p, y = p[ok], y[ok]
    if not len(p):
        return {"kind": None, "bins": [], "ece": math.nan}
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    rows = []
    ece = 0.0
    for b in range(bins):
        m = which == b
        if not m.any():
            continue
        pred, real = float(p[m].mean()), float(y[m].mean())
        ece += m.sum() / len(p) * abs(pred - real)
        rows.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "predicted": pred,
                "realised": real,
                "count": int(m.sum()),
            }
        )
    return {"kind": kind, "bins": rows, "ece": float(ece)}


def confusion_matrix(result: BacktestResult, outcomes: pd.DataFrame | None = None) -> dict:
    """Counts of realised outcome (rows) by predicted signal (columns)."""
    if outcomes is None:
        outcomes = realised_outcomes(result.records)
    pred_labels = ["sell", "hold", "buy"]
    sig = np.sign(outcomes["signal"].to_numpy(float))
    cls = outcomes["realised_class"].to_numpy(float)
    if np.isfinite(cls).any():
        actual_labels, actual = ["sell", "hold", "buy"], cls
    else:
        actual_labels, actual = ["down", "up"], outcomes["realised_up"].to_numpy(float)
    ok = np.isfinite(sig) & np.isfinite(actual)
    matrix = np.zeros((len(actual_labels), 3), int)
    for a, s in zip(actual[ok].astype(int), sig[ok].astype(int) + 1, strict=True):
        matrix[a, s] += 1
    return {"actual": actual_labels, "predicted": pred_labels, "counts": matrix.tolist()}


# --------------------------------------------------------------------------- everything


@dataclass
class Metrics:
    """Everything the report shows as numbers; `to_dict()` is metrics.json."""

    trading: dict[str, Any]
    benchmark: dict[str, Any]
    per_symbol: dict[str, dict[str, Any]]
    annualisation: Annualisation
    folds: list[dict] = field(default_factory=list)
    tiers: list[dict] = field(default_factory=list)
    calibration: dict = field(default_factory=dict)
    confusion: dict = field(default_factory=dict)
    feature_importance: dict[str, float] | None = None
    costs: dict = field(default_factory=dict)
    #: PSR, DSR, MinTRL, bootstrap interval (`stats.backtest_statistics`); filled when
    #: compute_metrics is given StatisticsOptions (the bootstrap costs a second on long runs).
    statistics: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["annualisation"] = asdict(self.annualisation)
        return d


def compute_metrics(
    result: BacktestResult,
    *,
    periods_per_year: float | None = None,
    risk_free: float = 0.0,
    statistics: StatisticsOptions | None = None,
) -> Metrics:
    """All trading metrics and ML diagnostics of `result` (see module docstring); with
    `statistics`, also the selection-aware statistics of its per-bar returns."""
    eq = result.equity
    ann = infer_annualisation(eq.index, result.timeframe, periods_per_year)
    P = ann.periods_per_year
    r = bar_returns(eq)
    episodes = drawdown_episodes(eq)
    worst = min(episodes, key=lambda e: e.depth) if episodes else None
    longest = max(episodes, key=lambda e: e.bars) if episodes else None
    mdd = max_drawdown(eq)
    growth = cagr(r, P)
    years = len(r) / P
    mean_equity = float(eq.mean())
    notional = traded_notional(result)

    trading: dict[str, Any] = {
        "start": eq.index[0],
        "end": eq.index[-1],
        "bars": int(len(eq)),
        "years": years,
        "start_equity": float(eq.iloc[0]),
        "end_equity": float(eq.iloc[-1]),
        "total_return": total_return(eq),
        "cagr": growth,
        "annual_volatility": annual_volatility(r, P),
        "sharpe": sharpe_ratio(r, P, risk_free),
        "sortino": sortino_ratio(r, P, risk_free),
        "calmar": growth / abs(mdd) if mdd < 0 else math.nan,
        "max_drawdown": mdd,
        "max_drawdown_bars": worst.bars if worst else 0,
        "max_drawdown_days": worst.days if worst else 0.0,
        "max_drawdown_peak": worst.peak if worst else None,
        "max_drawdown_trough": worst.trough if worst else None,
        "max_drawdown_recovery": worst.recovery if worst else None,
        "longest_underwater_bars": longest.bars if longest else 0,
        "longest_underwater_days": longest.days if longest else 0.0,
        "var_95": value_at_risk(r, 0.95),
        "cvar_95": conditional_value_at_risk(r, 0.95),
        "skew": skewness(r),
        "kurtosis": excess_kurtosis(r),
        "best_period": float(r.max()) if len(r) else math.nan,
        "worst_period": float(r.min()) if len(r) else math.nan,
        "exposure": exposure(result),
        "turnover": notional / mean_equity if mean_equity > 0 else math.nan,
        "turnover_annual": notional / mean_equity / years
        if mean_equity > 0 and years
        else math.nan,
        "risk_free": risk_free,
    }
    trading.update(trade_stats(result.trades))
    trading["fees_pct_of_start"] = trading["fees_paid"] / float(eq.iloc[0])
    costs = cost_attribution(result)
    trading["gross_pnl_mtm"] = costs["total"]["gross_pnl"]
    trading["slippage_paid"] = costs["total"]["slippage"]
    trading["fees_total"] = costs["total"]["fees"]
    trading["net_pnl_mtm"] = costs["total"]["net_pnl"]

    bh = buy_and_hold(result.benchmark, eq.index, float(eq.iloc[0]))
    benchmark: dict[str, Any] = {}
    if len(bh) and bh.notna().all():
        br = bar_returns(bh)
        alpha, beta = alpha_beta(r, br, P)
        benchmark = {
            "total_return": total_return(bh),
            "cagr": cagr(br, P),
            "annual_volatility": annual_volatility(br, P),
            "sharpe": sharpe_ratio(br, P, risk_free),
            "max_drawdown": max_drawdown(bh),
            "alpha": alpha,
            "beta": beta,
            "correlation": float(np.corrcoef(r, br)[0, 1])
            if len(r) > 2 and np.ptp(r) > 0 and np.ptp(br) > 0
            else math.nan,
            "excess_return": total_return(eq) - total_return(bh),
        }
    trading["alpha"] = benchmark.get("alpha", math.nan)
    trading["beta"] = benchmark.get("beta", math.nan)

    outcomes = realised_outcomes(result.records)
    per_symbol = _per_symbol(result, outcomes, costs)
    fi = None
    if result.feature_importance:
        fi = dict(sorted(result.feature_importance.items(), key=lambda kv: -abs(kv[1])))
    return Metrics(
        trading=trading,
        benchmark=benchmark,
        per_symbol=per_symbol,
        annualisation=ann,
        folds=fold_table(result, outcomes),
        tiers=tier_table(result, outcomes),
        calibration=calibration_table(result, outcomes),
        confusion=confusion_matrix(result, outcomes),
        feature_importance=fi,
        costs=costs,
        statistics={}
        if statistics is None
        else _statistics(r, bh, ann, per_bar_rate(risk_free, P), statistics),
    )


def _statistics(
    returns: pd.Series,
    buy_hold: pd.Series,
    ann: Annualisation,
    risk_free: float,
    options: StatisticsOptions,
) -> dict[str, Any]:
    """`stats.backtest_statistics` of the equity's returns against buy-and-hold's."""
    from mlstrat.report.stats import backtest_statistics  # stats builds on this module

    bench = bar_returns(buy_hold) if len(buy_hold) and buy_hold.notna().all() else None
    return backtest_statistics(
        returns, bench, ann.periods_per_year, ann.reason, options, risk_free=risk_free
    )


def _per_symbol(
    result: BacktestResult, outcomes: pd.DataFrame, costs: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    symbols = list(
        dict.fromkeys(
            list(result.symbols)
            + [s for s in result.trades["symbol"] if s]
            + [s for s in outcomes["symbol"] if s]
        )
    )
    out: dict[str, dict[str, Any]] = {}
    for sym in symbols:
        tr = result.trades[result.trades["symbol"] == sym]
        stats = trade_stats(tr)
        rec = outcomes[outcomes["symbol"] == sym]
        row: dict[str, Any] = {
            "n_trades": stats["n_trades"],
            "win_rate": stats["win_rate"],
            "net_pnl": stats["net_pnl"],
            "fees_paid": stats["fees_paid"],
            "profit_factor": stats["profit_factor"],
        }
        # before costs: at the raw fill prices, an open position marked at the last close
        attributed = costs["per_symbol"].get(sym, {"gross_pnl": 0.0, "slippage": 0.0})
        row["gross_pnl_mtm"] = attributed["gross_pnl"]
        row["slippage_paid"] = attributed["slippage"]
        if len(rec):
            pos = rec["position"].to_numpy(float)
            row["exposure"] = float(np.mean(np.abs(pos) > 0))
            act = rec[_active(rec)]
            rr = act["realised_return"].to_numpy(float)
            s = np.sign(act["signal"].to_numpy(float))
            ok = np.isfinite(rr)
            row["signal_hit_rate"] = (
                float(np.mean(np.sign(rr[ok]) == s[ok])) if ok.any() else math.nan
            )
        if sym in result.benchmark.columns:
            px = result.benchmark[sym].dropna()
            row["buy_hold_return"] = float(px.iloc[-1] / px.iloc[0] - 1) if len(px) else math.nan
        out[sym] = row
    return out
