"""Causal technical indicators as pure, vectorised pandas/numpy functions.

Every function takes Series (or a DataFrame of bars) and returns Series or a small
DataFrame indexed like its input. The value at row t uses rows <= t only; rows whose
look-back window is not yet full ("warm-up") are NaN and are never back-filled.
Windows are counted in rows (bars), so gaps in the data shorten calendar spans.

Division rules (documented because zero-volume and flat bars occur in real data):
a ratio whose denominator is zero or NaN is NaN (`safe_div`), never inf; the few
exceptions where a neutral value is the textbook answer are stated per function
(RSI of a flat window is 50, close location of a bar with high == low is 0.5).

Wilder-smoothed quantities (RSI, ATR, ADX) and EMAs are seeded with the simple mean
of their first n values and then follow the recursion y_t = y_{t-1} + alpha * (x_t - y_{t-1}),
as in Wilder (1978) and TA-Lib.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LN2 = float(np.log(2.0))
ONE_MINUTE = pd.Timedelta(minutes=1)


def _values(x: pd.Series) -> np.ndarray:
    return x.to_numpy(dtype=float)


def _series(
    values: np.ndarray, like: pd.Series | pd.DataFrame, name: str | None = None
) -> pd.Series:
    return pd.Series(values, index=like.index, name=name, dtype=float)


def safe_div(num: pd.Series | np.ndarray, den: pd.Series | np.ndarray) -> np.ndarray:
    """num / den as float array, NaN where den is zero or NaN (never inf)."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    ok = np.isfinite(den) & (den != 0)
    np.divide(num, den, out=out, where=ok)
    return out


def seeded_recursive_mean(x: pd.Series, n: int, alpha: float) -> pd.Series:
    """y_t = (1 - alpha) y_{t-1} + alpha x_t, seeded at the n-th valid value by the mean of the first n.

    Rows before the seed are NaN. Used for EMA (alpha = 2/(n+1)) and Wilder
    smoothing (alpha = 1/n). Runs in pandas' compiled ewm, not a Python loop.
    """
    if n < 1:
        raise ValueError(f"window must be >= 1, got {n}")
    values = x.to_numpy(dtype=float, copy=True)
    valid = np.flatnonzero(~np.isnan(values))
    if valid.size < n:
        return _series(np.full(len(values), np.nan), x)
    seed_at = valid[n - 1]
    values[seed_at] = values[valid[:n]].mean()
    values[:seed_at] = np.nan
    out = pd.Series(values, index=x.index).ewm(alpha=alpha, adjust=False).mean()
    return out.astype(float)


# --- prices and returns -----------------------------------------------------------


def returns(close: pd.Series, periods: int = 1) -> pd.Series:
    """Simple return over `periods` bars: close_t / close_{t-periods} - 1."""
    return _series(safe_div(_values(close), _values(close.shift(periods))) - 1.0, close)


def log_returns(close: pd.Series, periods: int = 1) -> pd.Series:
    """Log return over `periods` bars: ln(close_t / close_{t-periods})."""
    logc = np.log(_values(close))
    out = np.full(len(logc), np.nan)
    if periods < len(logc):
        out[periods:] = logc[periods:] - logc[:-periods]
    return _series(out, close)


def sma(x: pd.Series, n: int) -> pd.Series:
    """Simple moving average over the last n rows (NaN until n rows exist)."""
    return x.rolling(n, min_periods=n).mean().astype(float)


def ema(x: pd.Series, n: int) -> pd.Series:
    """Exponential moving average, alpha = 2/(n+1), seeded with the SMA of the first n values."""
    return seeded_recursive_mean(x, n, 2.0 / (n + 1.0))


def wilder(x: pd.Series, n: int) -> pd.Series:
    """Wilder's smoothing (alpha = 1/n), seeded with the mean of the first n values."""
    return seeded_recursive_mean(x, n, 1.0 / n)


def rolling_zscore(x: pd.Series, n: int) -> pd.Series:
    """(x - rolling mean) / rolling std (ddof=1) over n rows; NaN where the std is zero."""
    roll = x.rolling(n, min_periods=n)
    return _series(safe_div(_values(x) - _values(roll.mean()), _values(roll.std())), x)


def rolling_percentile(x: pd.Series, n: int) -> pd.Series:
    """Share of the last n values (current included) that are <= the current one, in (0, 1].

    Ties count half (average rank). A rolling window only: nothing after t is seen.
    """
    return x.rolling(n, min_periods=n).rank(pct=True).astype(float)


def _rolling_central_moments(x: pd.Series, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rolling 2nd, 3rd and 4th central moments (divided by n) from rolling power sums."""
    roll = [x.pow(p).rolling(n, min_periods=n).mean().to_numpy(dtype=float) for p in (1, 2, 3, 4)]
    m, e2, e3, e4 = roll
    m2 = e2 - m * m
    m3 = e3 - 3 * m * e2 + 2 * m**3
    m4 = e4 - 4 * m * e3 + 6 * m * m * e2 - 3 * m**4
    return m2, m3, m4


def rolling_skew(x: pd.Series, n: int) -> pd.Series:
    """Bias-corrected sample skewness over n rows (as pandas/scipy with bias=False).

    Built from rolling power sums so the value at t depends on rows <= t only (pandas'
    own rolling skew first centres the whole column by its global mean). Meant for
    series centred near zero such as returns. NaN for a constant window.
    """
    m2, m3, _ = _rolling_central_moments(x, n)
    g1 = safe_div(m3, np.where(m2 > 0, m2, np.nan) ** 1.5)
    return _series(np.sqrt(n * (n - 1.0)) / (n - 2.0) * g1, x)


def rolling_kurt(x: pd.Series, n: int) -> pd.Series:
    """Bias-corrected excess kurtosis over n rows (as pandas/scipy Fisher, bias=False); see rolling_skew."""
    m2, _, m4 = _rolling_central_moments(x, n)
    g2 = safe_div(m4, np.where(m2 > 0, m2, np.nan) ** 2) - 3.0
    return _series(((n + 1.0) * g2 + 6.0) * (n - 1.0) / ((n - 2.0) * (n - 3.0)), x)


# --- momentum ----------------------------------------------------------------------


def rsi(close: pd.Series, n: int = 14) -> pd.Series:
    """Wilder's RSI in [0, 100]. First value at row n; a window with no price change gives 50."""
    delta = close.diff()
    gain = delta.clip(lower=0.0)
    loss = (-delta).clip(lower=0.0)
    avg_gain = _values(wilder(gain, n))
    avg_loss = _values(wilder(loss, n))
    total = avg_gain + avg_loss
    out = 100.0 * safe_div(avg_gain, total)
    out[(total == 0) & ~np.isnan(total)] = 50.0
    return _series(out, close)


def macd(close: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9) -> pd.DataFrame:
    """MACD line (EMA fast - EMA slow), its signal line (EMA of the line) and histogram."""
    line = ema(close, fast) - ema(close, slow)
    sig = ema(line, signal)
    return pd.DataFrame({"macd": line, "signal": sig, "hist": line - sig}, index=close.index)


def stochastic(
    high: pd.Series, low: pd.Series, close: pd.Series, k: int = 14, d: int = 3
) -> pd.DataFrame:
    """Stochastic oscillator: %K = 100 (close - lowest low) / (highest high - lowest low), %D = SMA(%K, d).

    %K is NaN where the k-bar range is zero.
    """
    hh = high.rolling(k, min_periods=k).max()
    ll = low.rolling(k, min_periods=k).min()
    pct_k = _series(
        100.0 * safe_div(_values(close) - _values(ll), _values(hh) - _values(ll)), close
    )
    return pd.DataFrame({"k": pct_k, "d": sma(pct_k, d)}, index=close.index)


def momentum_acceleration(close: pd.Series, n: int) -> pd.Series:
    """Change of n-bar log momentum: ln(c_t/c_{t-n}) - ln(c_{t-n}/c_{t-2n})."""
    mom = log_returns(close, n)
    return mom - mom.shift(n)


# --- trend -------------------------------------------------------------------------


def true_range(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    """max(high - low, |high - prev close|, |low - prev close|); NaN on the first row (no prev close)."""
    prev = _values(close.shift(1))
    h, lo = _values(high), _values(low)
    tr = np.fmax(h - lo, np.fmax(np.abs(h - prev), np.abs(lo - prev)))
    tr[np.isnan(prev)] = np.nan
    return _series(tr, close)


def atr(high: pd.Series, low: pd.Series, close: pd.Series, n: int = 14) -> pd.Series:
    """Wilder's average true range; first value at row n (mean of true ranges 1..n)."""
    return wilder(true_range(high, low, close), n)


def adx(high: pd.Series, low: pd.Series, close: pd.Series, n: int = 14) -> pd.DataFrame:
    """Wilder's directional movement: +DI, -DI and ADX (all 0..100).

    ADX first appears at row 2n - 1 (n rows for the DIs, n more to seed its own smoothing).
    """
    up = _values(high.diff())
    down = -_values(low.diff())
    plus_dm = np.where((up > down) & (up > 0), up, 0.0)
    minus_dm = np.where((down > up) & (down > 0), down, 0.0)
    plus_dm[:1] = np.nan
    minus_dm[:1] = np.nan
    tr = wilder(true_range(high, low, close), n)
    plus_di = 100.0 * safe_div(_values(wilder(_series(plus_dm, close), n)), _values(tr))
    minus_di = 100.0 * safe_div(_values(wilder(_series(minus_dm, close), n)), _values(tr))
    dx = 100.0 * safe_div(np.abs(plus_di - minus_di), plus_di + minus_di)
    dx[(plus_di + minus_di == 0)] = 0.0
    out = pd.DataFrame({"plus_di": plus_di, "minus_di": minus_di}, index=close.index)
    out["adx"] = wilder(_series(dx, close), n)
    return out


def sma_slope(close: pd.Series, n: int) -> pd.Series:
    """One-bar relative change of SMA(n): sma_t / sma_{t-1} - 1."""
    avg = sma(close, n)
    return _series(safe_div(_values(avg), _values(avg.shift(1))) - 1.0, close)


def trend_regime(
    high: pd.Series, low: pd.Series, close: pd.Series, n: int = 14, threshold: float = 25.0
) -> pd.Series:
    """+1 strong up-trend, -1 strong down-trend, 0 no trend: ADX(n) > threshold, side by +DI vs -DI."""
    return trend_regime_from_adx(adx(high, low, close, n), threshold)


def trend_regime_from_adx(directional: pd.DataFrame, threshold: float = 25.0) -> pd.Series:
    """`trend_regime` from an `adx` table already computed (plus_di, minus_di, adx columns)."""
    side = np.sign(_values(directional["plus_di"]) - _values(directional["minus_di"]))
    a = _values(directional["adx"])
    out = np.where(a > threshold, side, 0.0)
    out[np.isnan(a)] = np.nan
    return _series(out, directional)


# --- bands and volatility ----------------------------------------------------------


def bollinger(close: pd.Series, n: int = 20, k: float = 2.0) -> pd.DataFrame:
    """Bollinger bands with population std (ddof=0): mid, upper, lower, %b and width.

    %b = (close - lower) / (upper - lower) (NaN when the bands touch);
    width = (upper - lower) / mid.
    """
    roll = close.rolling(n, min_periods=n)
    mid = _values(roll.mean())
    sd = _values(roll.std(ddof=0))
    upper, lower = mid + k * sd, mid - k * sd
    c = _values(close)
    return pd.DataFrame(
        {
            "mid": mid,
            "upper": upper,
            "lower": lower,
            "pct_b": safe_div(c - lower, upper - lower),
            "width": safe_div(upper - lower, mid),
        },
        index=close.index,
    )


def realized_volatility(close: pd.Series, n: int) -> pd.Series:
    """Rolling standard deviation (ddof=1) of one-bar log returns over n bars (per-bar scale)."""
    return log_returns(close).rolling(n, min_periods=n).std().astype(float)


def parkinson_volatility(high: pd.Series, low: pd.Series, n: int) -> pd.Series:
    """Parkinson (1980) range estimator: sqrt(mean(ln(H/L)^2) / (4 ln 2)) over n bars."""
    hl2 = _series(np.log(_values(high) / _values(low)) ** 2, high)
    return np.sqrt(sma(hl2, n) / (4.0 * LN2))


def garman_klass_volatility(
    open_: pd.Series, high: pd.Series, low: pd.Series, close: pd.Series, n: int
) -> pd.Series:
    """Garman-Klass (1980): sqrt(mean(0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2)) over n bars."""
    hl = np.log(_values(high) / _values(low))
    co = np.log(_values(close) / _values(open_))
    per_bar = _series(0.5 * hl**2 - (2.0 * LN2 - 1.0) * co**2, close)
    return np.sqrt(sma(per_bar, n).clip(lower=0.0))


def minute_realized_volatility(
    minute_bars: pd.DataFrame,
    bar_index: pd.DatetimeIndex,
    bar_length: pd.Timedelta,
    *,
    minute_length: pd.Timedelta = ONE_MINUTE,
    min_coverage: float = 0.9,
) -> pd.Series:
    """Realized volatility of each bar from the 1-minute bars inside it: sqrt(sum r_m^2).

    A minute belongs to the bar whose interval [open, open + bar_length) contains the
    minute's open time, so a bar only uses minutes that have closed by its own close.
    The first minute of a bar contributes ln(close/open) of that minute, later minutes
    ln(close_m / close_{m-1}) within the bar; the returns of a bar therefore sum to its
    open-to-close log return and never reach into the previous bar. Bars with fewer than
    `min_coverage` of their expected minutes (or none) are NaN.
    """
    n_bars = len(bar_index)
    if n_bars == 0 or len(minute_bars) == 0:
        return pd.Series(np.full(n_bars, np.nan), index=bar_index, dtype=float)
    bar_ns = bar_index.as_unit("ns").asi8
    min_ns = minute_bars.index.as_unit("ns").asi8
    pos = np.searchsorted(bar_ns, min_ns, side="right") - 1
    inside = pos >= 0
    inside[inside] &= min_ns[inside] < bar_ns[pos[inside]] + bar_length.value
    pos = pos[inside]
    logc = np.log(minute_bars["close"].to_numpy(dtype=float)[inside])
    logo = np.log(minute_bars["open"].to_numpy(dtype=float)[inside])
    r = np.empty(len(pos))
    if len(pos):
        r[0] = logc[0] - logo[0]
        r[1:] = logc[1:] - logc[:-1]
        first_in_bar = np.ones(len(pos), dtype=bool)
        first_in_bar[1:] = pos[1:] != pos[:-1]
        r[first_in_bar] = logc[first_in_bar] - logo[first_in_bar]
    sum_sq = np.bincount(pos, weights=r * r, minlength=n_bars)
    count = np.bincount(pos, minlength=n_bars)
    expected = bar_length / minute_length
    out = np.sqrt(sum_sq)
    out[count < min_coverage * expected] = np.nan
    return pd.Series(out, index=bar_index, dtype=float)


# --- volume ------------------------------------------------------------------------


def obv(close: pd.Series, volume: pd.Series) -> pd.Series:
    """On-balance volume, starting at 0 on the first row (a definition, not a fill)."""
    step = np.sign(_values(close.diff())) * _values(volume)
    step[:1] = 0.0
    return _series(np.cumsum(step), close)


def obv_change(close: pd.Series, volume: pd.Series, n: int) -> pd.Series:
    """n-bar OBV change divided by the volume traded in those n bars, in [-1, 1].

    NaN when those n bars traded no volume.
    """
    change = obv(close, volume).diff(n)
    traded = volume.rolling(n, min_periods=n).sum()
    return _series(safe_div(_values(change), _values(traded)), close)


def volume_ratio(volume: pd.Series, n: int = 20) -> pd.Series:
    """volume_t / SMA(volume, n) (current bar included); NaN when the n bars traded nothing."""
    return _series(safe_div(_values(volume), _values(sma(volume, n))), volume)


def volume_surge(volume: pd.Series, n: int = 24) -> pd.Series:
    """volume_t / mean volume of the n bars before t; NaN when those bars traded nothing."""
    prior = volume.shift(1).rolling(n, min_periods=n).mean()
    return _series(safe_div(_values(volume), _values(prior)), volume)


# --- jumps and breakouts -----------------------------------------------------------


def jump_score(close: pd.Series, n: int = 24) -> pd.Series:
    """One-bar log return divided by the std of the n log returns before it (sigma excludes t)."""
    r = log_returns(close)
    sigma = r.shift(1).rolling(n, min_periods=n).std()
    return _series(safe_div(_values(r), _values(sigma)), close)


def jump_flag(close: pd.Series, n: int = 24, k: float = 3.0) -> pd.Series:
    """+1 / -1 when the bar's return is beyond k rolling sigmas up / down, else 0 (NaN in warm-up)."""
    score = _values(jump_score(close, n))
    out = np.where(np.abs(score) > k, np.sign(score), 0.0)
    out[np.isnan(score)] = np.nan
    return _series(out, close)


def range_expansion(high: pd.Series, low: pd.Series, close: pd.Series, n: int = 14) -> pd.Series:
    """Volatility breakout: true range of bar t over ATR(n) at t-1."""
    tr = true_range(high, low, close)
    return _series(safe_div(_values(tr), _values(atr(high, low, close, n).shift(1))), close)


def channel_breakout(
    high: pd.Series, low: pd.Series, close: pd.Series, n: int = 24, atr_n: int = 14
) -> pd.Series:
    """Distance of the close beyond the previous n-bar high/low channel, in ATRs (0 inside it).

    Positive above the prior n-bar high, negative below the prior n-bar low; the ATR is
    the one of bar t-1, so the breakout bar does not dampen its own signal.
    """
    prior_high = _values(high.shift(1).rolling(n, min_periods=n).max())
    prior_low = _values(low.shift(1).rolling(n, min_periods=n).min())
    scale = _values(atr(high, low, close, atr_n).shift(1))
    c = _values(close)
    excess = np.where(c > prior_high, c - prior_high, np.where(c < prior_low, c - prior_low, 0.0))
    excess[np.isnan(prior_high) | np.isnan(prior_low)] = np.nan
    return _series(safe_div(excess, scale), close)


# --- regimes -----------------------------------------------------------------------


def consolidation_regime(
    close: pd.Series, n: int = 20, lookback: int = 100, quantile: float = 0.2
) -> pd.Series:
    """1 when Bollinger width(n) is in the lowest `quantile` of its last `lookback` values, else 0."""
    return at_most(rolling_percentile(bollinger(close, n)["width"], lookback), quantile)


def at_most(x: pd.Series, level: float) -> pd.Series:
    """1.0 where x <= level, 0.0 where above, NaN where x is NaN."""
    values = _values(x)
    out = (values <= level).astype(float)
    out[np.isnan(values)] = np.nan
    return _series(out, x)


# --- candles and calendar ----------------------------------------------------------


def close_location(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    """(close - low) / (high - low) in [0, 1]; 0.5 for a bar with high == low."""
    rng = _values(high) - _values(low)
    out = safe_div(_values(close) - _values(low), rng)
    out[rng == 0] = 0.5
    return _series(out, close)


def calendar_features(index: pd.DatetimeIndex) -> pd.DataFrame:
    """Hour of day and day of week of each bar's open time (UTC) on the unit circle."""
    utc = index.tz_convert("UTC") if index.tz is not None else index
    hour = (utc.hour + utc.minute / 60.0).to_numpy(dtype=float)
    dow = utc.day_of_week.to_numpy(dtype=float)
    return pd.DataFrame(
        {
            "hour_sin": np.sin(2 * np.pi * hour / 24.0),
            "hour_cos": np.cos(2 * np.pi * hour / 24.0),
            "dow_sin": np.sin(2 * np.pi * dow / 7.0),
            "dow_cos": np.cos(2 * np.pi * dow / 7.0),
        },
        index=index,
    )
