"""Indicators against TA-Lib on real candles (the shipped BTCUSDT 1h sample).

Equal to 1e-9 relative (plus 1e-9 of the series' median magnitude, for values
crossing zero) from the bar given per row: the first bar TA-Lib defines when
both seed the same way, a later bar where TA-Lib's seed differs and the
difference decays away. Conventions that differ for good are checked
against TA-Lib corrected by that convention, and against a formula:

* MACD: TA-Lib seeds the fast EMA at the slow EMA's first bar (and shows the
  line only once the signal exists); we seed every EMA at its own first full
  window, so both agree once the seeds have decayed (bar 600 here).
* +DI / −DI / ADX: TA-Lib seeds Wilder's sums with n − 1 values, we with the
  mean of n; equal after the seed decays.
* OBV: TA-Lib starts at the first bar's volume, we at 0 (a constant offset;
  `obv_change` only uses differences).
* realized volatility: sample standard deviation (ddof = 1), TA-Lib's STDDEV
  is the population one: ours = STDDEV × sqrt(n / (n − 1)).
* Stochastic %K where the k-bar range is zero: TA-Lib 0, ours NaN (none in
  this sample after warm-up).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstrat.features import indicators as ind
from mlstrat.features.catalogue import compute_features

talib = pytest.importorskip("talib", exc_type=ImportError)  # missing or broken binary

SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "BTCUSDT-1h.parquet"
N_BARS = 3000
REL = 1e-9


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    frame = pd.read_parquet(SAMPLE).set_index("timestamp").iloc[:N_BARS]
    frame.attrs = {"symbol": "BTCUSDT", "timeframe": "1h"}
    return frame


def assert_matches(ours, reference, start: int | None = None) -> None:
    """Equal from `start` (default: TA-Lib's first value) to 1e-9 relative; NaN where TA-Lib is."""
    a = np.asarray(ours, dtype=float)
    t = np.asarray(reference, dtype=float)
    first = int(np.flatnonzero(np.isfinite(t))[0])
    start = first if start is None else start
    a, t = a[start:], t[start:]
    assert np.isfinite(t).all() and np.isfinite(a).all()
    scale = float(np.median(np.abs(t)))
    np.testing.assert_allclose(a, t, rtol=REL, atol=REL * scale)


def arrays(bars: pd.DataFrame):
    return (bars[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume"))


@pytest.mark.parametrize("n", [5, 20, 50])
def test_sma_ema(bars, n):
    c = bars["close"]
    assert_matches(ind.sma(c, n), talib.SMA(c.to_numpy(), n))
    assert_matches(ind.ema(c, n), talib.EMA(c.to_numpy(), n))
    # the EMA seed: the first value is the mean of the first n closes
    assert ind.ema(c, n).iloc[n - 1] == pytest.approx(c.iloc[:n].mean(), rel=1e-12)


@pytest.mark.parametrize("n", [6, 14, 28])
def test_rsi_from_its_first_value(bars, n):
    c = bars["close"]
    ours = ind.rsi(c, n)
    assert_matches(ours, talib.RSI(c.to_numpy(), n))
    assert ours.first_valid_index() == c.index[n]


def test_macd_after_the_seeds_decay(bars):
    c = bars["close"].to_numpy()
    line, signal, hist = talib.MACD(c, 12, 26, 9)
    ours = ind.macd(bars["close"])
    for col, ref in (("macd", line), ("signal", signal), ("hist", hist)):
        assert_matches(ours[col], ref, start=600)
    # early bars differ only by the fast EMA's seed
    assert not np.allclose(ours["macd"].to_numpy()[33:40], line[33:40], rtol=1e-6)


@pytest.mark.parametrize("n", [20, 50])
def test_bollinger_population_std(bars, n):
    c = bars["close"]
    upper, mid, lower = talib.BBANDS(c.to_numpy(), n, 2.0, 2.0, 0)
    ours = ind.bollinger(c, n)
    assert_matches(ours["upper"], upper)
    assert_matches(ours["mid"], mid)
    assert_matches(ours["lower"], lower)
    assert_matches(ours["pct_b"], (c.to_numpy() - lower) / (upper - lower))


@pytest.mark.parametrize("n", [7, 14, 28])
def test_true_range_and_atr(bars, n):
    _, h, lo, c, _ = arrays(bars)
    assert_matches(ind.true_range(bars["high"], bars["low"], bars["close"]), talib.TRANGE(h, lo, c))
    assert_matches(ind.atr(bars["high"], bars["low"], bars["close"], n), talib.ATR(h, lo, c, n))
    assert_matches(
        compute_features(bars, [f"atr_{n}_ratio"]).iloc[:, 0], talib.NATR(h, lo, c, n) / 100.0
    )


def test_directional_movement_after_the_seed_decays(bars):
    _, h, lo, c, _ = arrays(bars)
    ours = ind.adx(bars["high"], bars["low"], bars["close"], 14)
    assert_matches(ours["plus_di"], talib.PLUS_DI(h, lo, c, 14), start=500)
    assert_matches(ours["minus_di"], talib.MINUS_DI(h, lo, c, 14), start=500)
    assert_matches(ours["adx"], talib.ADX(h, lo, c, 14), start=500)
    assert ours["adx"].first_valid_index() == bars.index[2 * 14 - 1]


def test_obv_differs_by_the_first_bars_volume(bars):
    _, _, _, c, v = arrays(bars)
    ours = ind.obv(bars["close"], bars["volume"]).to_numpy()
    assert ours[0] == 0.0
    assert_matches(ours + v[0], talib.OBV(c, v))
    step = np.sign(np.diff(c)) * v[1:]
    np.testing.assert_allclose(ours[1:], np.cumsum(step), rtol=1e-12)


@pytest.mark.parametrize("n", [14, 28])
def test_fast_stochastic(bars, n):
    _, h, lo, c, _ = arrays(bars)
    k, d = talib.STOCHF(h, lo, c, n, 3, 0)
    ours = ind.stochastic(bars["high"], bars["low"], bars["close"], n, 3)
    assert_matches(ours["k"], k)
    assert_matches(ours["d"], d)


@pytest.mark.parametrize("n", [1, 4, 24])
def test_returns_are_rate_of_change(bars, n):
    c = bars["close"]
    assert_matches(ind.returns(c, n), talib.ROCP(c.to_numpy(), n))
    assert_matches(ind.log_returns(c, n), np.log(talib.ROCR(c.to_numpy(), n)))


@pytest.mark.parametrize("n", [6, 24, 168])
def test_realized_volatility_is_the_sample_std(bars, n):
    c = bars["close"]
    logret = np.log(c.to_numpy())
    logret = np.concatenate([[np.nan], np.diff(logret)])
    ours = ind.realized_volatility(c, n)
    assert_matches(ours, talib.STDDEV(logret, n, 1.0) * np.sqrt(n / (n - 1.0)))
    i = len(c) - 1
    window = logret[i - n + 1 : i + 1]
    assert ours.iloc[i] == pytest.approx(np.std(window, ddof=1), rel=1e-12)
    assert_matches(compute_features(bars, [f"realized_vol_{n}"]).iloc[:, 0], ours)


def test_catalogue_names_match_talib(bars):
    _, h, lo, c, _ = arrays(bars)
    names = [
        "rsi_14",
        "sma_20_ratio",
        "ema_26_ratio",
        "macd_hist_norm",
        "bb_pct_b_20",
        "stoch_k_14",
    ]
    feats = compute_features(bars, names)
    assert_matches(feats["rsi_14"], talib.RSI(c, 14))
    assert_matches(feats["sma_20_ratio"], c / talib.SMA(c, 20) - 1.0)
    assert_matches(feats["ema_26_ratio"], c / talib.EMA(c, 26) - 1.0)
    assert_matches(feats["macd_hist_norm"], talib.MACD(c, 12, 26, 9)[2] / c, start=600)
    upper, _, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    assert_matches(feats["bb_pct_b_20"], (c - lower) / (upper - lower))
    assert_matches(feats["stoch_k_14"], talib.STOCHF(h, lo, c, 14, 3, 0)[0])
