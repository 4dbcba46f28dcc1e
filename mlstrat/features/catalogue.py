"""Feature names that compute themselves: the name says the indicator and its window.

`compute_features(bars, names)` evaluates a list of names such as `rsi_14`,
`sma_20_ratio`, `h4_rsi_14` or `rsi_x_volume` on a table of bars. Windows are in
bars of the table the name refers to: `return_24` on 1h bars is a 24-hour return,
`h4_return_6` is the return over the last six closed 4-hour candles. A prefix `h<N>_`
evaluates the rest of the name on N-hour candles (`mlstrat.data.resample`, epoch-aligned,
so 24h candles are UTC days) and attaches, at each bar, the value of the last candle that
has closed by the end of that bar (`mlstrat.data.align_closed`): `h24_rsi_14` at the
13:00 bar is the 14-day RSI as of yesterday's close. A leading candle that opened before
the first bar is dropped as partial.

A view exists when its span is a whole multiple of at least two bars (`view_multiple`):
4h and 24h on 1h or 15min bars, 24h on 4h bars, none on daily bars. Names needing a view
the bars cannot form (`h4_...` on 4h or daily bars, and the interactions built on them)
are skipped by `compute_features` with one warning naming them, and listed in the
result's ``attrs["skipped_features"]``.

Names are scale-free where the quantity allows it: price levels are expressed as
ratios to the close (`sma_20_ratio` = close / SMA20 - 1, `macd_norm` = MACD / close,
`atr_14_ratio` = ATR14 / close), volatilities are in log-return units, oscillators
(RSI, stochastic, ADX) keep their textbook 0..100 scale. Names starting with an
underscore (`_close`, `_sma_20`, `h4__close`) are raw levels for building
interactions; they are not scale-free and no registered set uses them directly.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from mlstrat.data import align_closed, infer_timeframe, normalize_timeframe, resample
from mlstrat.data.timeframe import fixed_nanos
from mlstrat.errors import ConfigError
from mlstrat.features import indicators as ind

OHLCV = ("open", "high", "low", "close", "volume")
JUMP_SIGMAS = 3.0  # jump_flag: |return| beyond this many rolling sigmas
SURGE_MULTIPLE = 2.0  # volume_surge_flag: volume beyond this multiple of its prior mean
TREND_ADX = 25.0  # trend_regime: ADX level above which a trend counts
CONSOLIDATION_LOOKBACK = 100  # consolidation_regime: bars over which width is ranked
CONSOLIDATION_QUANTILE = 0.2  # consolidation_regime: width percentile at or below = 1
MIN_VIEW_MULTIPLE = 2  # a higher-timeframe view spans at least this many bars
_HOUR_NS = 3_600_000_000_000


def _s(values: np.ndarray, like: pd.Series) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=like.index)


def _ratio(a: pd.Series, b: pd.Series) -> pd.Series:
    """a / b - 1, NaN where b is zero or NaN."""
    return _s(ind.safe_div(a, b) - 1.0, a)


def _div(a: pd.Series, b) -> pd.Series:
    """a / b, NaN where b is zero or NaN."""
    return _s(ind.safe_div(a, b), a)


class View:
    """Lazy, memoised indicators of one OHLCV table (the bars or one higher timeframe)."""

    def __init__(self, bars: pd.DataFrame) -> None:
        self.index = bars.index
        self.open, self.high, self.low, self.close, self.volume = (
            pd.Series(bars[c].to_numpy(dtype=float), index=bars.index) for c in OHLCV
        )
        self._memo: dict[object, object] = {}

    def memo(self, key: object, fn: Callable[[], object]):
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    # shared intermediates
    def sma(self, n: int) -> pd.Series:
        return self.memo(("sma", n), lambda: ind.sma(self.close, n))

    def ema(self, n: int) -> pd.Series:
        return self.memo(("ema", n), lambda: ind.ema(self.close, n))

    def macd(self) -> pd.DataFrame:
        return self.memo("macd", lambda: ind.macd(self.close))

    def bollinger(self, n: int) -> pd.DataFrame:
        return self.memo(("bb", n), lambda: ind.bollinger(self.close, n))

    def atr(self, n: int) -> pd.Series:
        return self.memo(("atr", n), lambda: ind.atr(self.high, self.low, self.close, n))

    def adx(self, n: int) -> pd.DataFrame:
        return self.memo(("adx", n), lambda: ind.adx(self.high, self.low, self.close, n))

    def stochastic(self, n: int) -> pd.DataFrame:
        return self.memo(
            ("stoch", n), lambda: ind.stochastic(self.high, self.low, self.close, n, 3)
        )

    def log_ret(self) -> pd.Series:
        return self.memo("logret", lambda: ind.log_returns(self.close))

    def feature(self, name: str) -> pd.Series:
        """Evaluate one catalogue name on this table."""
        return self.memo(("feature", name), lambda: _evaluate(self, name))


def _rolling_log_ret(v: View, n: int):
    return v.log_ret().rolling(n, min_periods=n)


def _jump_flag(v: View, n: int) -> pd.Series:
    return v.memo(("jump_flag", n), lambda: ind.jump_flag(v.close, n, JUMP_SIGMAS))


def _width_rank(v: View, n: int, lookback: int) -> pd.Series:
    """Causal percentile of Bollinger width(n) among its last `lookback` values."""
    return v.memo(
        ("bb_width_rank", n, lookback),
        lambda: ind.rolling_percentile(v.bollinger(n)["width"], lookback),
    )


def _consolidation(v: View, n: int) -> pd.Series:
    return ind.at_most(_width_rank(v, n, CONSOLIDATION_LOOKBACK), CONSOLIDATION_QUANTILE)


def _trend(v: View, n: int) -> pd.Series:
    return ind.trend_regime_from_adx(v.adx(n), TREND_ADX)


def _surge_flag(v: View, n: int) -> pd.Series:
    surge = v.feature(f"volume_surge_{n}").to_numpy()
    out = (surge > SURGE_MULTIPLE).astype(float)
    out[np.isnan(surge)] = np.nan
    return _s(out, v.close)


def _sharpe(v: View, n: int) -> pd.Series:
    scale = v.feature(f"realized_vol_{n}") * np.sqrt(n)
    return _s(ind.safe_div(ind.log_returns(v.close, n), scale), v.close)


def _channel_to(v: View, side: str, n: int) -> pd.Series:
    if side == "high":
        return _ratio(v.close, v.high.rolling(n, min_periods=n).max())
    return _ratio(v.close, v.low.rolling(n, min_periods=n).min())


_CAL = ("hour_sin", "hour_cos", "dow_sin", "dow_cos")

# (regex, function(view, *int-or-str groups)); names must match in full.
_PATTERNS: list[tuple[str, Callable[..., pd.Series]]] = [
    # raw levels (for interactions only)
    (r"_(open|high|low|close|volume)", lambda v, c: getattr(v, c)),
    (r"_sma_(\d+)", lambda v, n: v.sma(n)),
    # returns
    (r"return_(\d+)", lambda v, n: ind.returns(v.close, n)),
    (r"log_return_(\d+)", lambda v, n: ind.log_returns(v.close, n)),
    (r"momentum_accel_(\d+)", lambda v, n: ind.momentum_acceleration(v.close, n)),
    (r"sharpe_(\d+)", _sharpe),
    # moving averages
    (r"sma_(\d+)_ratio", lambda v, n: _ratio(v.close, v.sma(n))),
    (r"ema_(\d+)_ratio", lambda v, n: _ratio(v.close, v.ema(n))),
    (r"sma_(\d+)_(\d+)_cross", lambda v, a, b: _ratio(v.sma(a), v.sma(b))),
    (r"ema_(\d+)_(\d+)_cross", lambda v, a, b: _ratio(v.ema(a), v.ema(b))),
    (r"sma_slope_(\d+)", lambda v, n: ind.sma_slope(v.close, n)),
    # oscillators
    (r"rsi_(\d+)", lambda v, n: ind.rsi(v.close, n)),
    (r"macd_norm", lambda v: _s(ind.safe_div(v.macd()["macd"], v.close), v.close)),
    (r"macd_signal_norm", lambda v: _s(ind.safe_div(v.macd()["signal"], v.close), v.close)),
    (r"macd_hist_norm", lambda v: _s(ind.safe_div(v.macd()["hist"], v.close), v.close)),
    (r"stoch_k_(\d+)", lambda v, n: v.stochastic(n)["k"]),
    (r"stoch_d_(\d+)", lambda v, n: v.stochastic(n)["d"]),
    # bands and ranges
    (r"bb_upper_ratio_(\d+)", lambda v, n: _ratio(v.bollinger(n)["upper"], v.close)),
    (r"bb_lower_ratio_(\d+)", lambda v, n: _ratio(v.bollinger(n)["lower"], v.close)),
    (r"bb_pct_b_(\d+)", lambda v, n: v.bollinger(n)["pct_b"]),
    (r"bb_width_(\d+)", lambda v, n: v.bollinger(n)["width"]),
    (r"bb_width_rank_(\d+)", lambda v, n: _width_rank(v, 20, n)),
    (r"atr_(\d+)_ratio", lambda v, n: _s(ind.safe_div(v.atr(n), v.close), v.close)),
    (r"close_to_(high|low)_(\d+)", lambda v, side, n: _channel_to(v, side, n)),
    (r"hl_range", lambda v: _s(ind.safe_div(v.high - v.low, v.close), v.close)),
    (r"close_location", lambda v: ind.close_location(v.high, v.low, v.close)),
    (r"body_ratio", lambda v: _ratio(v.close, v.open)),
    (
        r"upper_shadow_ratio",
        lambda v: _s(ind.safe_div(v.high - np.fmax(v.open, v.close), v.close), v.close),
    ),
    (
        r"lower_shadow_ratio",
        lambda v: _s(ind.safe_div(np.fmin(v.open, v.close) - v.low, v.close), v.close),
    ),
    # volatility
    (r"realized_vol_(\d+)", lambda v, n: _rolling_log_ret(v, n).std()),
    (r"parkinson_vol_(\d+)", lambda v, n: ind.parkinson_volatility(v.high, v.low, n)),
    (
        r"garman_klass_vol_(\d+)",
        lambda v, n: ind.garman_klass_volatility(v.open, v.high, v.low, v.close, n),
    ),
    (
        r"vol_ratio_(\d+)_(\d+)",
        lambda v, a, b: _s(
            ind.safe_div(v.feature(f"realized_vol_{a}"), v.feature(f"realized_vol_{b}")), v.close
        ),
    ),
    (r"rv_rank_(\d+)", lambda v, n: ind.rolling_percentile(v.feature("realized_vol_24"), n)),
    (r"close_zscore_(\d+)", lambda v, n: ind.rolling_zscore(v.close, n)),
    (r"return_zscore_(\d+)", lambda v, n: ind.rolling_zscore(v.log_ret(), n)),
    (r"return_skew_(\d+)", lambda v, n: ind.rolling_skew(v.log_ret(), n)),
    (r"return_kurt_(\d+)", lambda v, n: ind.rolling_kurt(v.log_ret(), n)),
    # trend and regimes
    (r"adx_(\d+)", lambda v, n: v.adx(n)["adx"]),
    (r"plus_di_(\d+)", lambda v, n: v.adx(n)["plus_di"]),
    (r"minus_di_(\d+)", lambda v, n: v.adx(n)["minus_di"]),
    (r"trend_regime_(\d+)", _trend),
    (r"consolidation_regime_(\d+)", _consolidation),
    # jumps and breakouts
    (r"jump_score_(\d+)", lambda v, n: ind.jump_score(v.close, n)),
    (r"jump_flag_(\d+)", _jump_flag),
    (
        r"jump_count_(\d+)",
        lambda v, n: _jump_flag(v, n).abs().rolling(n, min_periods=n).sum(),
    ),
    (r"range_expansion_(\d+)", lambda v, n: ind.range_expansion(v.high, v.low, v.close, n)),
    (r"channel_breakout_(\d+)", lambda v, n: ind.channel_breakout(v.high, v.low, v.close, n)),
    # volume
    (r"volume_ratio_(\d+)", lambda v, n: ind.volume_ratio(v.volume, n)),
    (r"volume_zscore_(\d+)", lambda v, n: ind.rolling_zscore(v.volume, n)),
    (r"volume_surge_(\d+)", lambda v, n: ind.volume_surge(v.volume, n)),
    (r"volume_surge_flag_(\d+)", _surge_flag),
    (r"obv_change_(\d+)", lambda v, n: ind.obv_change(v.close, v.volume, n)),
    # calendar (from each bar's open time)
    (
        r"(hour_sin|hour_cos|dow_sin|dow_cos)",
        lambda v, c: v.memo("calendar", lambda: ind.calendar_features(v.index))[c],
    ),
]
_COMPILED = [(re.compile(p), fn) for p, fn in _PATTERNS]


def _evaluate(view: View, name: str) -> pd.Series:
    for pattern, fn in _COMPILED:
        match = pattern.fullmatch(name)
        if match:
            args = [int(g) if g.isdigit() else g for g in match.groups()]
            if any(isinstance(a, int) and a < 1 for a in args):
                break
            out = fn(view, *args)
            return pd.Series(np.asarray(out, dtype=float), index=view.index)
    raise ConfigError(
        f"unknown feature name {name!r}",
        fix="use a catalogue name (see mlstrat.features.catalogue) or register a builder function",
    )


def _sign(x: pd.Series) -> pd.Series:
    return np.sign(x)


# Interactions across indicators and timeframes: name -> function(get) -> Series.
INTERACTIONS: dict[str, Callable[[Callable[[str], pd.Series]], pd.Series]] = {
    "h4_close_gap": lambda g: _ratio(g("_close"), g("h4__close")),
    "h24_close_gap": lambda g: _ratio(g("_close"), g("h24__close")),
    "close_to_h4_sma_20": lambda g: _ratio(g("_close"), g("h4__sma_20")),
    "close_to_h24_sma_20": lambda g: _ratio(g("_close"), g("h24__sma_20")),
    "rsi_14_h4_diff": lambda g: g("rsi_14") - g("h4_rsi_14"),
    "rsi_14_h24_diff": lambda g: g("rsi_14") - g("h24_rsi_14"),
    "rsi_h4_h24_diff": lambda g: g("h4_rsi_14") - g("h24_rsi_14"),
    "rsi_x_volume": lambda g: (g("rsi_14") / 100.0 - 0.5) * g("volume_ratio_20"),
    "macd_hist_x_volume": lambda g: g("macd_hist_norm") * g("volume_ratio_20"),
    "return_x_volume": lambda g: g("return_1") * g("volume_ratio_20"),
    "jump_x_volume_surge": lambda g: g("jump_score_24") * g("volume_surge_24"),
    "vol_ratio_h1_h4": lambda g: _div(g("realized_vol_24"), g("h4_realized_vol_20")),
    "atr_ratio_h1_h24": lambda g: _div(g("atr_14_ratio"), g("h24_atr_14_ratio")),
    "trend_agreement": lambda g: (
        g("trend_regime_14") + g("h4_trend_regime_14") + g("h24_trend_regime_14")
    ),
    "momentum_agreement": lambda g: (
        _sign(g("return_24")) + _sign(g("h4_return_6")) + _sign(g("h24_return_3"))
    ),
    "macd_agreement": lambda g: _sign(g("macd_hist_norm")) * _sign(g("h4_macd_hist_norm")),
    "adx_x_slope": lambda g: g("adx_14") / 100.0 * g("sma_slope_20"),
    "bb_pct_b_x_rsi": lambda g: (g("bb_pct_b_20") - 0.5) * (g("rsi_14") / 100.0 - 0.5),
    "momentum_x_trend": lambda g: g("return_24") * g("trend_regime_14"),
    "breakout_x_volume": lambda g: g("range_expansion_14") * g("volume_ratio_20"),
    "consolidation_x_breakout": lambda g: g("consolidation_regime_20") * g("channel_breakout_24"),
    "rsi_14_sq": lambda g: ((g("rsi_14") - 50.0) / 50.0) ** 2,
    "return_1_sq": lambda g: g("return_1") ** 2,
    "stoch_k_minus_d": lambda g: g("stoch_k_14") - g("stoch_d_14"),
    "volume_to_h4_mean": lambda g: _div(g("_volume"), g("h4__volume") / g("@bars_per_h4")),
    "volume_to_h24_mean": lambda g: _div(g("_volume"), g("h24__volume") / g("@bars_per_h24")),
}

_HTF = re.compile(r"h(\d+)_(.+)")
_BARS_PER = re.compile(r"@bars_per_h(\d+)")


def bars_timeframe(bars: pd.DataFrame) -> str:
    """Canonical timeframe of bars: attrs["timeframe"], else the modal spacing of the index."""
    tf = bars.attrs.get("timeframe") or infer_timeframe(bars.index)
    if tf is None:
        raise ConfigError(
            "cannot tell the bars' timeframe (fewer than two bars)",
            fix='set bars.attrs["timeframe"], e.g. "1h"',
        )
    return normalize_timeframe(tf)


class ViewUnavailable(ConfigError):
    """A feature needs an `hours`-hour view that bars of `timeframe` cannot form."""

    def __init__(self, hours: int, timeframe: str) -> None:
        super().__init__(
            f"the {hours}h view is not a whole multiple of at least {MIN_VIEW_MULTIPLE} "
            f"{timeframe} bars",
            fix="use bars whose length divides the view (e.g. 1h for 4h and 24h views)",
        )
        self.hours = hours
        self.timeframe = timeframe


def view_multiple(timeframe: str, hours: int) -> int | None:
    """Bars per `hours`-hour candle when that is a whole number >= MIN_VIEW_MULTIPLE, else None."""
    bar_ns = fixed_nanos(timeframe)
    view_ns = hours * _HOUR_NS
    if not bar_ns or view_ns % bar_ns or view_ns // bar_ns < MIN_VIEW_MULTIPLE:
        return None
    return view_ns // bar_ns


def closed_higher(bars: pd.DataFrame, rule: str) -> tuple[pd.DataFrame, np.ndarray]:
    """`rule` candles of `bars` and, per bar, the row of the last candle closed by its end (-1: none)."""
    timeframe = bars_timeframe(bars)
    framed = bars.copy(deep=False)
    framed.attrs = {**bars.attrs, "timeframe": timeframe}
    higher = resample(framed, rule)
    if len(higher) and len(bars) and higher.index[0] < bars.index[0]:
        higher = higher.iloc[1:]  # the data starts inside this candle: it is partial
    rows = pd.Series(np.arange(len(higher), dtype=float), index=higher.index)
    aligned = align_closed(rows, bars.index, rule=rule, timeframe=timeframe).to_numpy()
    return higher, np.where(np.isnan(aligned), -1, aligned).astype(np.int64)


def take_rows(values: pd.Series, positions: np.ndarray, index: pd.Index) -> pd.Series:
    """values[positions] re-indexed to `index`, NaN where the position is -1."""
    arr = values.to_numpy(dtype=float)
    out = np.full(len(positions), np.nan)
    ok = positions >= 0
    out[ok] = arr[positions[ok]]
    return pd.Series(out, index=index)


class FeatureBuilder:
    """Evaluates catalogue names on bars, sharing intermediates and higher-timeframe views."""

    def __init__(self, bars: pd.DataFrame) -> None:
        self.bars = bars
        self.base = View(bars)
        self._htf: dict[int, tuple[View, np.ndarray]] = {}

    def _higher(self, hours: int) -> tuple[View, np.ndarray]:
        if hours not in self._htf:
            timeframe = bars_timeframe(self.bars)
            if view_multiple(timeframe, hours) is None:
                raise ViewUnavailable(hours, timeframe)
            higher, positions = closed_higher(self.bars, f"{hours}h")
            self._htf[hours] = (View(higher), positions)
        return self._htf[hours]

    def get(self, name: str) -> pd.Series:
        """One feature (or raw helper) as a float Series indexed like the bars."""
        if name in INTERACTIONS:
            return self.base.memo(("interaction", name), lambda: INTERACTIONS[name](self.get))
        match = _BARS_PER.fullmatch(name)
        if match:
            hours, timeframe = int(match.group(1)), bars_timeframe(self.bars)
            multiple = view_multiple(timeframe, hours)
            if multiple is None:
                raise ViewUnavailable(hours, timeframe)
            return float(multiple)
        match = _HTF.fullmatch(name)
        if match:
            hours, rest = int(match.group(1)), match.group(2)
            if hours < 1:
                raise ConfigError(f"unknown feature name {name!r}", fix="use h4_..., h24_...")
            view, positions = self._higher(hours)
            return self.base.memo(
                ("htf", name), lambda: take_rows(view.feature(rest), positions, self.bars.index)
            )
        return self.base.feature(name)

    def frame(self, names: Iterable[str]) -> pd.DataFrame:
        """Columns for `names`, without those needing a view the bars cannot form (see module)."""
        data: dict[str, np.ndarray] = {}
        skipped: dict[str, list[str]] = {}
        for name in names:
            try:
                data[name] = self.get(name).to_numpy(dtype=float)
            except ViewUnavailable as exc:
                skipped.setdefault(f"{exc.hours}h", []).append(name)
        out = pd.DataFrame(data, index=self.bars.index, columns=list(data))
        if skipped:
            _warn_skipped(skipped, bars_timeframe(self.bars))
            out.attrs["skipped_features"] = skipped
        return out


def _warn_skipped(skipped: dict[str, list[str]], timeframe: str) -> None:
    views = "; ".join(
        f"{view} view ({len(names)}): {', '.join(names)}" for view, names in skipped.items()
    )
    count = sum(len(names) for names in skipped.values())
    warnings.warn(
        f"{count} features skipped: {timeframe} bars cannot form the views they need "
        f"(a view must span a whole number of at least {MIN_VIEW_MULTIPLE} bars). {views}",
        SkippedFeaturesWarning,
        stacklevel=_outside_package(),
    )


class SkippedFeaturesWarning(UserWarning):
    """Columns of a feature set were left out because the bars cannot form their view."""


def _outside_package() -> int:
    """warnings stacklevel of the nearest caller outside mlstrat (the user's line, not ours)."""
    package = str(Path(__file__).resolve().parents[1])
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def compute_features(bars: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    """Evaluate catalogue feature names on bars; one float64 column per name, indexed like bars.

    Names needing a higher-timeframe view the bars cannot form are left out with a
    warning and listed in ``attrs["skipped_features"]`` (view -> names).
    """
    return FeatureBuilder(bars).frame(names)
