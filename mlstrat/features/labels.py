"""Event labels that know where they end, and sample weights for overlapping labels.

Pure, vectorised functions of Bars (López de Prado, *Advances in Financial Machine
Learning*, ch. 3–4). Every label function returns a DataFrame indexed like the bars with
at least `label`, `t1` (the timestamp of the bar at which the label is decided) and
`t1_pos` (that bar's row position): walk-forward purges a row by its own `t1`.

- `ewm_volatility`: the causal volatility estimate the barriers are scaled by.
- `triple_barrier_labels`: profit-take / stop-loss at multiples of that volatility and a
  vertical barrier after `horizon` bars; which one is touched first.
- `jump_labels`: a move of at least `threshold` (a fraction) or `sigmas` × volatility
  within `horizon` bars, up (+1) / down (-1) / none (0).
- `net_forward_returns`: the `horizon`-bar forward return minus a round-trip cost.
- `concurrency`, `uniqueness_weights`: how many labels span each bar, and each label's
  average uniqueness with optional linear time decay.

Conventions shared by the barrier labels:

- **Path.** A label at bar t watches bars t+1 … t+horizon. Entry is at t's close
  (`entry="close"`, the default: the signal is known when bar t closes) or at the open of
  t+1 (`entry="next_open"`, what a market order sent at t's close gets); either way the
  exposure spans the same `horizon` bars and the vertical barrier is the close of t+horizon.
- **Touches.** A long's barrier returns are r(P) = P / entry - 1 (a short's: -r). A bar
  touches the profit-take barrier when its favourable extreme (high for a long, low for a
  short) reaches +width, the stop-loss barrier when its adverse extreme reaches -width.
- **Within one bar.** The open is the only price whose order is known: a bar that opens
  beyond a barrier touched it first, at the open price (the return at touch is the open's,
  a gap fills there, not at the barrier). Otherwise a bar touching both barriers counts as
  a stop-loss (the conservative choice: high/low do not say which came first).
- **Return at touch.** The barrier's return (±width) or the open's return after a gap; at
  the vertical barrier the close's return.
- **End of data.** A label is decided at the first touch, so it is known once that bar
  exists; a row with no touch whose vertical barrier lies past the last bar is unresolved:
  NaN label and return, NaT `t1`, NaN `t1_pos`. Nothing reads a bar after `t1`.
- **Not an event.** Rows whose volatility is NaN (warm-up) or whose `side` is 0 or NaN get
  the same NaN row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError, DataError, SchemaError, option_fix
from mlstrat.features.indicators import log_returns

Entry = Literal["close", "next_open"]
Vertical = Literal["zero", "sign"]

#: `barrier` codes in the triple-barrier frame.
PROFIT_TAKE = 1.0
STOP_LOSS = -1.0
VERTICAL = 0.0
ENTRIES = ("close", "next_open")
VERTICALS = ("zero", "sign")
#: Cells (rows × horizon) compared at once: bounds memory on long histories.
_CHUNK_CELLS = 1 << 20


# ---------------------------------------------------------------- volatility


def ewm_volatility(close: pd.Series, span: int = 100, min_periods: int | None = None) -> pd.Series:
    """Exponentially weighted std of one-bar log returns (per-bar scale), causal.

    The value at t uses the returns of bars <= t only (pandas' `ewm(span).std()`, bias
    corrected, the form AFML's daily volatility uses); NaN until `min_periods` returns
    (default: `span`) have been seen, so barriers are never scaled by a two-bar estimate.
    """
    span = _positive_int(span, "span")
    min_periods = span if min_periods is None else _positive_int(min_periods, "min_periods")
    vol = log_returns(close).ewm(span=span, min_periods=min_periods).std()
    return vol.astype(float).rename("volatility")


# ---------------------------------------------------------------- barrier labels


@dataclass(frozen=True)
class _Touch:
    """First-touch result per row: barrier code, position return, decision bar (NaN = open)."""

    barrier: np.ndarray
    ret: np.ndarray
    t1_pos: np.ndarray


def triple_barrier_labels(
    bars: pd.DataFrame,
    horizon: int,
    *,
    profit_take: float = 1.0,
    stop_loss: float = 1.0,
    volatility: pd.Series | None = None,
    span: int = 100,
    vertical: Vertical = "zero",
    entry: Entry = "close",
    side: pd.Series | None = None,
) -> pd.DataFrame:
    """Triple-barrier labels: +1 profit-take first, -1 stop-loss first, vertical per `vertical`.

    Barriers sit at +`profit_take` × σ_t and -`stop_loss` × σ_t of the position's return
    (σ = `volatility`, default `ewm_volatility(close, span)`; 0 disables a barrier, as in
    AFML). At the vertical barrier (close of t+horizon) the label is 0 (`vertical="zero"`,
    the default: the move was too small to count) or the sign of the return there
    (`"sign"`). `side` (+1 long / -1 short per row, default all long) turns the labels into
    outcomes of that position, the input meta-labeling needs.

    Columns: label, ret (position return at touch), barrier (1 / -1 / 0), t1, t1_pos,
    sigma. See the module docstring for the path, intrabar and end-of-data rules.
    """
    ohlc = _ohlc(bars)
    horizon = _positive_int(horizon, "horizon")
    pt = _multiple(profit_take, "profit_take")
    sl = _multiple(stop_loss, "stop_loss")
    vertical = _choice(vertical, "vertical", VERTICALS)
    sigma = _volatility(ohlc, volatility, span)
    sides = _sides(ohlc, side)
    width_up, width_down = _width(pt, sigma), _width(sl, sigma)
    entry_price = _entry_prices(ohlc, entry)
    touch = _first_touch(ohlc.prices, entry_price, sides, width_up, width_down, horizon)
    label = touch.barrier.copy()
    if vertical == "sign":
        at_vertical = touch.barrier == VERTICAL
        label[at_vertical] = np.sign(touch.ret[at_vertical])
    columns = {"label": label, "ret": touch.ret, "barrier": touch.barrier}
    return _label_frame(ohlc, columns, touch.t1_pos, sigma=sigma)


def _width(multiple: float, sigma: np.ndarray) -> np.ndarray:
    """Barrier width multiple × σ; inf (never touched) when the multiple is 0; NaN where σ is."""
    return np.where(np.isnan(sigma), np.nan, multiple * sigma if multiple > 0 else np.inf)


def jump_labels(
    bars: pd.DataFrame,
    horizon: int,
    *,
    threshold: float | None = None,
    sigmas: float | None = None,
    volatility: pd.Series | None = None,
    span: int = 100,
) -> pd.DataFrame:
    """Jump labels: +1 if the price rises, -1 if it falls, by the jump size first within
    `horizon` bars of t's close, else 0 (t1 = t+horizon).

    The jump size is a fixed fraction (`threshold=0.02` for 2 %) or `sigmas` × the causal
    volatility; give exactly one. Touches follow the triple-barrier rules seen from a long
    (high/low, a gap decides at the open, a bar touching both counts as down).

    Columns: label, ret (return at touch, or at t+horizon), t1, t1_pos, threshold.
    """
    ohlc = _ohlc(bars)
    horizon = _positive_int(horizon, "horizon")
    if (threshold is None) == (sigmas is None):
        raise ConfigError(
            "jump labels need exactly one jump size: threshold (a fraction) or sigmas",
            fix="pass threshold=0.02 for a 2 % move or sigmas=2.0 for two volatilities",
        )
    if threshold is not None:
        size = np.full(len(ohlc.index), _multiple(threshold, "threshold", positive=True))
    else:
        size = _multiple(sigmas, "sigmas", positive=True) * _volatility(ohlc, volatility, span)
    longs = np.ones(len(ohlc.index))
    entry_price = _entry_prices(ohlc, "close")
    touch = _first_touch(ohlc.prices, entry_price, longs, size, size, horizon)
    columns = {"label": touch.barrier, "ret": touch.ret}
    return _label_frame(ohlc, columns, touch.t1_pos, threshold=size)


def net_forward_returns(
    bars: pd.DataFrame,
    horizon: int,
    *,
    commission: float = 0.001,
    slippage: float = 0.0005,
    entry: Entry = "close",
    side: pd.Series | None = None,
) -> pd.DataFrame:
    """Forward return of a position over `horizon` bars minus a round-trip cost.

    gross = side × (close_{t+horizon} / entry - 1); cost = 2 × commission + 2 × slippage
    (both fractions of notional, one of each per side of the trade: the first-order cost of
    a round trip); label = gross - cost. The last rows, whose t+horizon is past the data,
    are NaN. Columns: label, gross, cost, t1 (= t+horizon), t1_pos.
    """
    ohlc = _ohlc(bars)
    horizon = _positive_int(horizon, "horizon")
    cost = 2.0 * _fraction(commission, "commission") + 2.0 * _fraction(slippage, "slippage")
    entry_price = _entry_prices(ohlc, entry)
    sides = _sides(ohlc, side)
    n = len(ohlc.index)
    t1_pos = np.arange(n, dtype=float) + horizon
    t1_pos[(t1_pos > n - 1) | np.isnan(entry_price) | np.isnan(sides)] = np.nan
    gross = np.full(n, np.nan)
    ok = ~np.isnan(t1_pos)
    gross[ok] = sides[ok] * (ohlc.prices["close"][t1_pos[ok].astype(int)] / entry_price[ok] - 1.0)
    columns = {"label": gross - cost, "gross": gross, "cost": np.where(ok, cost, np.nan)}
    return _label_frame(ohlc, columns, t1_pos)


def _first_touch(
    prices: dict[str, np.ndarray],
    entry: np.ndarray,
    side: np.ndarray,
    width_up: np.ndarray,
    width_down: np.ndarray,
    horizon: int,
) -> _Touch:
    """First barrier touched by each row's position over bars t+1 … t+horizon, in chunks."""
    n = len(entry)
    barrier = np.full(n, np.nan)
    ret = np.full(n, np.nan)
    t1_pos = np.full(n, np.nan)
    live = np.isfinite(entry) & np.isfinite(side) & ~np.isnan(width_up) & ~np.isnan(width_down)
    # NaN past the last bar (one more than needed, so even 0 bars make a window).
    pad = {k: np.concatenate([v, np.full(horizon + 1, np.nan)]) for k, v in prices.items()}
    windows = {
        k: np.lib.stride_tricks.sliding_window_view(v[1:], horizon) for k, v in pad.items()
    }  # windows[k][t] = bars t+1 … t+horizon
    step = max(1, _CHUNK_CELLS // horizon)
    for start in range(0, n, step):
        rows = np.arange(start, min(n, start + step))
        rows = rows[live[rows]]
        if rows.size:
            _touch_rows(rows, windows, entry, side, width_up, width_down, (barrier, ret, t1_pos))
    _vertical(prices["close"], entry, side, horizon, barrier, ret, t1_pos, live)
    return _Touch(barrier, ret, t1_pos)


def _touch_rows(
    rows: np.ndarray,
    windows: dict[str, np.ndarray],
    entry: np.ndarray,
    side: np.ndarray,
    width_up: np.ndarray,
    width_down: np.ndarray,
    out: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Fill `out` (barrier, ret, t1_pos) for the rows that touch a barrier in their window."""
    s = side[rows, None]
    e = entry[rows, None]
    up, down = width_up[rows, None], width_down[rows, None]
    favourable = np.where(s > 0, windows["high"][rows], windows["low"][rows])
    adverse = np.where(s > 0, windows["low"][rows], windows["high"][rows])
    pt_hit = s * (favourable / e - 1.0) >= up
    sl_hit = s * (adverse / e - 1.0) <= -down
    touched = pt_hit | sl_hit
    hit = touched.any(axis=1)
    first = touched.argmax(axis=1)[hit]
    rows, s, up, down = rows[hit], s[hit, 0], up[hit, 0], down[hit, 0]
    r_open = s * (windows["open"][rows, first] / entry[rows] - 1.0)
    gap_up, gap_down = r_open >= up, r_open <= -down
    stop = gap_down | (~gap_up & sl_hit[hit, first])
    barrier, ret, t1_pos = out
    barrier[rows] = np.where(stop, STOP_LOSS, PROFIT_TAKE)
    ret[rows] = np.where(gap_up | gap_down, r_open, np.where(stop, -down, up))
    t1_pos[rows] = rows + 1 + first


def _vertical(
    close: np.ndarray,
    entry: np.ndarray,
    side: np.ndarray,
    horizon: int,
    barrier: np.ndarray,
    ret: np.ndarray,
    t1_pos: np.ndarray,
    live: np.ndarray,
) -> None:
    """Rows untouched through t+horizon end at the vertical barrier with the close's return."""
    n = len(close)
    rows = np.flatnonzero(live & np.isnan(barrier))
    rows = rows[rows + horizon <= n - 1]
    barrier[rows] = VERTICAL
    ret[rows] = side[rows] * (close[rows + horizon] / entry[rows] - 1.0)
    t1_pos[rows] = rows + horizon


# ---------------------------------------------------------------- sample weights


def concurrency(
    labels: pd.DataFrame | pd.Series, index: pd.DatetimeIndex | None = None
) -> pd.Series:
    """c_t: how many labels span bar t (label i spans [t0_i, t1_i], both ends included).

    `labels` is a label frame (its `t1` column) or a Series of end times, indexed by start
    time; `index` is the bar grid (default: the labels' own index). Unresolved labels (NaT
    `t1`) do not count. O(n) with a difference array.
    """
    grid, t0, t1 = _spans(labels, index)
    return pd.Series(_concurrency(t0, t1, len(grid)), index=grid, name="concurrency")


def uniqueness_weights(
    labels: pd.DataFrame | pd.Series,
    index: pd.DatetimeIndex | None = None,
    *,
    decay: float = 1.0,
) -> pd.Series:
    """Sample weight of each label: its average uniqueness, times an optional time decay.

    Uniqueness of label i = mean over bars t in [t0_i, t1_i] of 1 / c_t (`concurrency`),
    from cumulative sums in O(n). `decay` follows AFML's time decay on cumulative
    uniqueness in time order: 1 (default) leaves weights as they are; 0 <= decay < 1 falls
    linearly to about `decay` for the oldest label; -1 < decay < 0 gives the oldest
    |decay| share of cumulative uniqueness weight 0. The newest label's factor is 1.
    Unresolved labels (NaT `t1`) get NaN. Weights are not rescaled (a mean of 1 keeps
    XGBoost's `min_child_weight` meaning what it says: divide by the mean to get it).
    """
    decay = _decay(decay)
    grid, t0, t1 = _spans(labels, index)
    weights = np.full(len(t0), np.nan)
    ok = ~np.isnan(t1)
    if ok.any():
        start, end = t0[ok].astype(int), t1[ok].astype(int)
        count = _concurrency(t0, t1, len(grid)).astype(float)
        inverse = np.divide(1.0, count, out=np.zeros(len(count)), where=count > 0)
        csum = np.concatenate([[0.0], np.cumsum(inverse)])
        unique = (csum[end + 1] - csum[start]) / (end - start + 1)
        weights[ok] = unique * _decay_factors(unique, start, decay)
    return pd.Series(weights, index=labels.index, name="weight")


def _concurrency(t0: np.ndarray, t1: np.ndarray, n: int) -> np.ndarray:
    """Difference array: +1 at each resolved label's start, -1 after its end, summed."""
    ok = ~np.isnan(t1)
    start, end = t0[ok].astype(int), t1[ok].astype(int)
    diff = np.bincount(start, minlength=n + 1) - np.bincount(end + 1, minlength=n + 1)
    return np.cumsum(diff)[:n]


def _decay_factors(unique: np.ndarray, start: np.ndarray, decay: float) -> np.ndarray:
    """AFML's linear decay on cumulative uniqueness, taken in order of label start."""
    if decay == 1.0:
        return np.ones(len(unique))
    order = np.argsort(start, kind="stable")
    cumulative = np.empty(len(unique))
    cumulative[order] = np.cumsum(unique[order])
    total = cumulative[order[-1]]
    slope = (1.0 - decay) / total if decay >= 0 else 1.0 / ((decay + 1.0) * total)
    return np.maximum(0.0, 1.0 - slope * total + slope * cumulative)


def _spans(
    labels: pd.DataFrame | pd.Series, index: pd.DatetimeIndex | None
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """(bar grid, start positions, end positions with NaN for unresolved) of the labels."""
    if isinstance(labels, pd.DataFrame):
        if "t1" not in labels.columns:
            raise SchemaError(
                "labels lack the column t1 (each label's end time)",
                column="t1",
                fix="pass the frame a label function returned, or a Series of end times",
            )
        labels = labels["t1"]
    if not isinstance(labels, pd.Series):
        raise SchemaError(f"labels must be a DataFrame or Series, got {type(labels).__name__}")
    grid = labels.index if index is None else index
    if not isinstance(grid, pd.DatetimeIndex) or not (
        grid.is_monotonic_increasing and grid.is_unique
    ):
        raise SchemaError(
            "the bar grid must be a strictly increasing DatetimeIndex",
            fix="pass index=bars.index of the bars the labels were computed on",
        )
    t0 = _positions(grid, pd.DatetimeIndex(labels.index), "start (index)")
    end = pd.to_datetime(labels, utc=grid.tz is not None)
    t1 = np.full(len(labels), np.nan)
    resolved = end.notna().to_numpy()
    t1[resolved] = _positions(grid, pd.DatetimeIndex(end[resolved]), "end (t1)")
    before = np.flatnonzero(t1 < t0)
    if before.size:
        i = before[0]
        raise DataError(
            f"label ends before it starts (t1 {end.iloc[i]})",
            row=int(i),
            timestamp=labels.index[i],
            column="t1",
            fix="t1 must be at or after the label's own bar",
        )
    return grid, t0.astype(float), t1


def _positions(grid: pd.DatetimeIndex, stamps: pd.DatetimeIndex, what: str) -> np.ndarray:
    """Row positions of `stamps` in the bar grid; a stamp off the grid is a DataError."""
    positions = grid.get_indexer(stamps)
    missing = np.flatnonzero(positions < 0)
    if missing.size:
        raise DataError(
            f"a label {what} is not a bar of the grid",
            row=int(missing[0]),
            timestamp=stamps[missing[0]],
            column="t1" if what.startswith("end") else None,
            fix="pass index=bars.index of the bars the labels were computed on",
        )
    return positions


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class _Bars:
    """Checked bars as arrays: the UTC index and open/high/low/close as float64."""

    index: pd.DatetimeIndex
    prices: dict[str, np.ndarray]


def _ohlc(bars: pd.DataFrame) -> _Bars:
    """The Bars contract checked (typed errors) and the price columns as arrays."""
    from mlstrat.features.feed_io import _check_bars  # lazy: feed_io imports targets

    checked = _check_bars(bars)
    prices = {c: checked[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close")}
    return _Bars(checked.index, prices)


def _entry_prices(ohlc: _Bars, entry: str) -> np.ndarray:
    """Entry price per row: t's close, or t+1's open (NaN on the last bar)."""
    entry = _choice(entry, "entry", ENTRIES)
    if entry == "close":
        return ohlc.prices["close"].copy()
    return np.append(ohlc.prices["open"][1:], np.nan)


def _aligned(ohlc: _Bars, series: pd.Series, name: str) -> np.ndarray:
    """A per-bar input Series as an array; it must carry exactly the bars' index."""
    if not isinstance(series, pd.Series) or not series.index.equals(ohlc.index):
        raise SchemaError(
            f"{name} must be a pandas Series indexed exactly like the bars",
            column=name,
            fix=f"compute {name} from the same bars, or reindex it with .reindex(bars.index)",
        )
    try:
        return series.to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise SchemaError(f"{name} must hold numbers", column=name) from None


def _volatility(ohlc: _Bars, volatility: pd.Series | None, span: int) -> np.ndarray:
    """σ per bar: the given Series (checked) or the causal EWM volatility of the closes."""
    if volatility is None:
        close = pd.Series(ohlc.prices["close"], index=ohlc.index)
        return ewm_volatility(close, span).to_numpy()
    sigma = _aligned(ohlc, volatility, "volatility")
    _first_bad(ohlc, sigma, (sigma < 0) | np.isinf(sigma), "volatility", "a finite value >= 0")
    return sigma


def _sides(ohlc: _Bars, side: pd.Series | None) -> np.ndarray:
    """+1 / -1 per row (default all long); 0 or NaN marks a row that is no event (NaN)."""
    if side is None:
        return np.ones(len(ohlc.index))
    sides = _aligned(ohlc, side, "side")
    bad = ~np.isnan(sides) & ~np.isin(sides, (-1.0, 0.0, 1.0))
    _first_bad(ohlc, sides, bad, "side", "+1 (long), -1 (short), or 0 / NaN for no event")
    return np.where(sides == 0, np.nan, sides)


def _first_bad(ohlc: _Bars, values: np.ndarray, bad: np.ndarray, name: str, want: str) -> None:
    """DataError at the first row flagged `bad`, naming the value, the row and what is wanted."""
    rows = np.flatnonzero(bad)
    if rows.size:
        i = int(rows[0])
        raise DataError(
            f"{name} is {values[i]!r}; it must be {want}",
            row=i,
            timestamp=ohlc.index[i],
            column=name,
            fix=f"give {name} as {want}",
        )


def _label_frame(
    ohlc: _Bars, columns: dict[str, np.ndarray], t1_pos: np.ndarray, **extra: np.ndarray
) -> pd.DataFrame:
    """The label frame: given columns, then t1 / t1_pos, then extras; NaN rows where t1 is."""
    open_rows = np.isnan(t1_pos)
    t1 = ohlc.index[np.where(open_rows, 0, t1_pos).astype(int)].where(~open_rows)
    data = {name: np.where(open_rows, np.nan, values) for name, values in columns.items()}
    data |= {"t1": t1, "t1_pos": t1_pos}
    data |= {name: np.asarray(values, dtype=float) for name, values in extra.items()}
    return pd.DataFrame(data, index=ohlc.index)


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive int (bars), got {value!r}")
    return int(value)


def _multiple(value: object, name: str, positive: bool = False) -> float:
    """A finite number >= 0 (> 0 when `positive`)."""
    number = _number(value, name)
    if number < 0 or (positive and number == 0):
        raise ConfigError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return number


def _fraction(value: object, name: str) -> float:
    number = _number(value, name)
    if not 0 <= number < 1:
        raise ConfigError(f"{name} must be a fraction in [0, 1) such as 0.001, got {value!r}")
    return number


def _decay(value: object) -> float:
    number = _number(value, "decay")
    if not -1 < number <= 1:
        raise ConfigError(
            f"decay must be in (-1, 1], got {value!r}",
            fix="pass decay=1 for no decay, 0.5 to halve the oldest weight, "
            "-0.2 to drop the oldest 20 %",
        )
    return number


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not np.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return float(value)


def _choice(value: object, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(
            f"{name} must be one of {', '.join(allowed)}, got {value!r}",
            fix=option_fix(name, *allowed),
        )
    return str(value)
