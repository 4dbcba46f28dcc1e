"""Indicators against hand-worked numbers and independent plain-Python implementations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlstrat.features import indicators as ind


def _idx(n: int, start: str = "2024-01-01 00:00", freq: str = "1h") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq=freq, tz="UTC", name="timestamp")


def _walk(n: int, seed: int = 0) -> pd.DataFrame:
    """A random but valid candle series."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
    volume = rng.uniform(1, 100, n)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=_idx(n)
    )


def _wilder_loop(x: list[float], n: int) -> list[float]:
    """Wilder smoothing as in the 1978 book: first value = mean of the first n, then (prev*(n-1)+x)/n."""
    out = [math.nan] * len(x)
    valid = [i for i, v in enumerate(x) if not math.isnan(v)]
    seed = valid[n - 1]
    out[seed] = sum(x[i] for i in valid[:n]) / n
    for i in range(seed + 1, len(x)):
        out[i] = (out[i - 1] * (n - 1) + x[i]) / n
    return out


def _ema_loop(x: list[float], n: int) -> list[float]:
    out = [math.nan] * len(x)
    valid = [i for i, v in enumerate(x) if not math.isnan(v)]
    seed = valid[n - 1]
    out[seed] = sum(x[i] for i in valid[:n]) / n
    k = 2 / (n + 1)
    for i in range(seed + 1, len(x)):
        out[i] = x[i] * k + out[i - 1] * (1 - k)
    return out


def test_returns_and_log_returns_by_hand():
    close = pd.Series([100.0, 110.0, 99.0], index=_idx(3))
    np.testing.assert_allclose(ind.returns(close), [np.nan, 0.1, -0.1], equal_nan=True)
    np.testing.assert_allclose(ind.returns(close, 2), [np.nan, np.nan, -0.01], equal_nan=True)
    np.testing.assert_allclose(
        ind.log_returns(close), [np.nan, math.log(1.1), math.log(0.9)], equal_nan=True
    )


def test_sma_and_ema():
    x = pd.Series([1.0, 2, 3, 4, 5, 6], index=_idx(6))
    np.testing.assert_allclose(ind.sma(x, 3), [np.nan, np.nan, 2, 3, 4, 5], equal_nan=True)
    # EMA(3): seed 2 (SMA of 1,2,3), alpha 0.5: 3, 4, 5
    np.testing.assert_allclose(ind.ema(x, 3), [np.nan, np.nan, 2, 3, 4, 5], equal_nan=True)
    walk = _walk(200)["close"]
    np.testing.assert_allclose(ind.ema(walk, 12), _ema_loop(walk.tolist(), 12), equal_nan=True)


def test_rsi_hand_worked_and_against_loop():
    close = pd.Series([1.0, 2.0, 1.0, 2.0, 3.0], index=_idx(5))
    # gains 1,0,1,1 losses 0,1,0,0; n=2 seeds at row 2 with 0.5/0.5 -> 50, then 75, 87.5
    np.testing.assert_allclose(
        ind.rsi(close, 2), [np.nan, np.nan, 50.0, 75.0, 87.5], equal_nan=True
    )

    walk = _walk(300, seed=3)["close"].tolist()
    gains = [math.nan] + [max(b - a, 0.0) for a, b in zip(walk, walk[1:], strict=False)]
    losses = [math.nan] + [max(a - b, 0.0) for a, b in zip(walk, walk[1:], strict=False)]
    ag, al = _wilder_loop(gains, 14), _wilder_loop(losses, 14)
    expected = [
        math.nan if math.isnan(g) else 100 - 100 / (1 + g / lo)
        for g, lo in zip(ag, al, strict=True)
    ]
    got = ind.rsi(pd.Series(walk, index=_idx(300)), 14)
    np.testing.assert_allclose(got, expected, rtol=1e-10, equal_nan=True)
    assert got.iloc[:14].isna().all() and got.iloc[14:].notna().all()


def test_rsi_of_a_flat_window_is_neutral():
    flat = pd.Series([5.0] * 20, index=_idx(20))
    assert ind.rsi(flat, 14).iloc[-1] == 50.0


def test_true_range_and_atr():
    bars = pd.DataFrame(
        {"high": [10.0, 12.0, 11.0], "low": [9.0, 10.5, 8.0], "close": [9.5, 11.5, 8.5]},
        index=_idx(3),
    )
    tr = ind.true_range(bars.high, bars.low, bars.close)
    # row1: max(1.5, |12-9.5|=2.5, |10.5-9.5|=1) = 2.5; row2: max(3, |11-11.5|, |8-11.5|=3.5) = 3.5
    np.testing.assert_allclose(tr, [np.nan, 2.5, 3.5], equal_nan=True)
    np.testing.assert_allclose(
        ind.atr(bars.high, bars.low, bars.close, 2), [np.nan, np.nan, 3.0], equal_nan=True
    )

    w = _walk(200, seed=5)
    h, lo, c = w.high.tolist(), w.low.tolist(), w.close.tolist()
    trs = [math.nan] + [
        max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1])) for i in range(1, 200)
    ]
    np.testing.assert_allclose(
        ind.atr(w.high, w.low, w.close, 14), _wilder_loop(trs, 14), equal_nan=True
    )


def test_adx_against_loop():
    w = _walk(300, seed=11)
    h, lo, c = w.high.tolist(), w.low.tolist(), w.close.tolist()
    n = 14
    pdm, mdm, trs = [math.nan], [math.nan], [math.nan]
    for i in range(1, len(c)):
        up, down = h[i] - h[i - 1], lo[i - 1] - lo[i]
        pdm.append(up if up > down and up > 0 else 0.0)
        mdm.append(down if down > up and down > 0 else 0.0)
        trs.append(max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1])))
    sp, sm, st = _wilder_loop(pdm, n), _wilder_loop(mdm, n), _wilder_loop(trs, n)
    pdi = [100 * a / b for a, b in zip(sp, st, strict=True)]
    mdi = [100 * a / b for a, b in zip(sm, st, strict=True)]
    dx = [100 * abs(a - b) / (a + b) for a, b in zip(pdi, mdi, strict=True)]
    adx = _wilder_loop(dx, n)
    got = ind.adx(w.high, w.low, w.close, n)
    np.testing.assert_allclose(got["plus_di"], pdi, equal_nan=True)
    np.testing.assert_allclose(got["minus_di"], mdi, equal_nan=True)
    np.testing.assert_allclose(got["adx"], adx, equal_nan=True)
    assert got["adx"].first_valid_index() == w.index[2 * n - 1]
    regime = ind.trend_regime(w.high, w.low, w.close, n)
    strong = np.array(adx) > 25
    expected = np.where(strong, np.sign(np.array(pdi) - np.array(mdi)), 0.0)
    expected[np.isnan(adx)] = np.nan
    np.testing.assert_array_equal(regime, expected)


def test_macd_against_loop():
    close = _walk(200, seed=2)["close"]
    fast, slow = _ema_loop(close.tolist(), 12), _ema_loop(close.tolist(), 26)
    line = [a - b for a, b in zip(fast, slow, strict=True)]
    signal = _ema_loop(line, 9)
    got = ind.macd(close)
    np.testing.assert_allclose(got["macd"], line, equal_nan=True)
    np.testing.assert_allclose(got["signal"], signal, equal_nan=True)
    np.testing.assert_allclose(got["hist"], np.array(line) - np.array(signal), equal_nan=True)
    assert got["signal"].first_valid_index() == close.index[25 + 8]


def test_bollinger_by_formula():
    close = _walk(60, seed=4)["close"]
    got = ind.bollinger(close, 20, 2.0)
    window = close.iloc[30:50].to_numpy()
    mid, sd = window.mean(), window.std(ddof=0)
    row = got.iloc[49]
    assert row["mid"] == pytest.approx(mid)
    assert row["upper"] == pytest.approx(mid + 2 * sd)
    assert row["lower"] == pytest.approx(mid - 2 * sd)
    assert row["pct_b"] == pytest.approx((close.iloc[49] - (mid - 2 * sd)) / (4 * sd))
    assert row["width"] == pytest.approx(4 * sd / mid)
    assert got.iloc[:19].isna().all().all()


def test_stochastic_by_hand():
    bars = pd.DataFrame(
        {"high": [5.0, 6, 7, 8], "low": [1.0, 2, 3, 4], "close": [3.0, 5, 4, 8]}, index=_idx(4)
    )
    got = ind.stochastic(bars.high, bars.low, bars.close, k=3, d=2)
    # row2: (4-1)/(7-1) = 50; row3: (8-2)/(8-2) = 100; %D row3 = 75
    np.testing.assert_allclose(got["k"], [np.nan, np.nan, 50.0, 100.0], equal_nan=True)
    np.testing.assert_allclose(got["d"], [np.nan, np.nan, np.nan, 75.0], equal_nan=True)


def test_obv_and_zero_volume():
    close = pd.Series([10.0, 11, 11, 10, 12], index=_idx(5))
    volume = pd.Series([5.0, 6, 7, 8, 9], index=_idx(5))
    np.testing.assert_allclose(ind.obv(close, volume), [0, 6, 6, -2, 7])
    # OBV change over 2 bars / volume of those bars: row4: (7 - 6) / (8 + 9)
    np.testing.assert_allclose(ind.obv_change(close, volume, 2).iloc[4], 1 / 17)
    dead = pd.Series([0.0] * 5, index=_idx(5))
    assert ind.obv_change(close, dead, 2).iloc[2:].isna().all()
    assert ind.volume_ratio(dead, 3).iloc[2:].isna().all()
    assert ind.volume_surge(dead, 2).iloc[2:].isna().all()
    some = pd.Series([1.0, 0, 3, 0, 0, 0], index=_idx(6))
    np.testing.assert_allclose(
        ind.volume_ratio(some, 2), [np.nan, 0, 2, 0, np.nan, np.nan], equal_nan=True
    )
    np.testing.assert_allclose(
        ind.volume_surge(some, 2), [np.nan, np.nan, 6, 0, 0, np.nan], equal_nan=True
    )


def test_zscore_percentile_and_realized_vol():
    x = _walk(80, seed=6)["close"]
    w = x.iloc[40:60].to_numpy()
    assert ind.rolling_zscore(x, 20).iloc[59] == pytest.approx((w[-1] - w.mean()) / w.std(ddof=1))
    pct = ind.rolling_percentile(x, 20).iloc[59]
    below, ties = (w < w[-1]).sum(), (w == w[-1]).sum()
    assert pct == pytest.approx((below + (ties + 1) / 2) / 20)
    r = np.diff(np.log(x.to_numpy()))
    assert ind.realized_volatility(x, 24).iloc[60] == pytest.approx(np.std(r[36:60], ddof=1))
    assert ind.realized_volatility(x, 24).iloc[:24].isna().all()


def test_rolling_skew_kurt_match_the_textbook_estimators():
    x = pd.Series(np.random.default_rng(9).standard_t(4, 500) * 0.01, index=_idx(500))
    window = x.iloc[300:400].to_numpy()
    n = len(window)
    m = window.mean()
    m2, m3, m4 = (((window - m) ** k).mean() for k in (2, 3, 4))
    g1 = m3 / m2**1.5
    skew = math.sqrt(n * (n - 1)) / (n - 2) * g1
    kurt = ((n + 1) * (m4 / m2**2 - 3) + 6) * (n - 1) / ((n - 2) * (n - 3))
    assert ind.rolling_skew(x, 100).iloc[399] == pytest.approx(skew, rel=1e-8)
    assert ind.rolling_kurt(x, 100).iloc[399] == pytest.approx(kurt, rel=1e-8)


def test_parkinson_and_garman_klass_by_formula():
    w = _walk(40, seed=8)
    sl = w.iloc[10:30]
    park = math.sqrt(
        sum(math.log(h / lo) ** 2 for h, lo in zip(sl.high, sl.low, strict=True))
        / (20 * 4 * math.log(2))
    )
    gk = math.sqrt(
        sum(
            0.5 * math.log(h / lo) ** 2 - (2 * math.log(2) - 1) * math.log(c / o) ** 2
            for o, h, lo, c in zip(sl.open, sl.high, sl.low, sl.close, strict=True)
        )
        / 20
    )
    assert ind.parkinson_volatility(w.high, w.low, 20).iloc[29] == pytest.approx(park)
    assert ind.garman_klass_volatility(w.open, w.high, w.low, w.close, 20).iloc[
        29
    ] == pytest.approx(gk)


def test_jump_flag_uses_sigma_before_the_bar():
    rng = np.random.default_rng(1)
    r = rng.normal(0, 0.001, 60)
    r[50] = 0.05
    close = pd.Series(100 * np.exp(np.cumsum(r)), index=_idx(60))
    lr = np.diff(np.log(close.to_numpy()))  # lr[i] is the return of row i + 1
    sigma = np.std(lr[25:49], ddof=1)  # returns of rows 26..49
    assert ind.jump_score(close, 24).iloc[50] == pytest.approx(lr[49] / sigma)
    flags = ind.jump_flag(close, 24, 3.0)
    assert flags.iloc[50] == 1.0
    assert flags.iloc[:25].isna().all()
    assert (flags.iloc[25:50] == 0).all()


def test_breakouts_and_momentum():
    bars = pd.DataFrame(
        {"high": [10.0, 11, 10, 14], "low": [9.0, 9.5, 9, 12], "close": [9.5, 10, 9.5, 13.5]},
        index=_idx(4),
    )
    # prior 3-bar channel at row 3: high 11, low 9 -> close 13.5 is 2.5 above; ATR(2) at row 2:
    # TR1 = max(1.5, 1.5, 0) = 1.5, TR2 = max(1, 0, 1) = 1 -> 1.25
    got = ind.channel_breakout(bars.high, bars.low, bars.close, n=3, atr_n=2)
    assert got.iloc[3] == pytest.approx(2.5 / 1.25)
    assert got.iloc[:3].isna().all()
    # range expansion at row 3: TR3 = max(2, 4.5, 2.5) = 4.5 over ATR(2) at row 2
    assert ind.range_expansion(bars.high, bars.low, bars.close, 2).iloc[3] == pytest.approx(
        4.5 / 1.25
    )
    close = pd.Series([1.0, 2, 4, 4, 2], index=_idx(5))
    # n=1: ln(c_t/c_{t-1}) - ln(c_{t-1}/c_{t-2})
    np.testing.assert_allclose(
        ind.momentum_acceleration(close, 1),
        [np.nan, np.nan, 0.0, -math.log(2), -math.log(2)],
        equal_nan=True,
    )


def test_close_location_and_calendar():
    bars = pd.DataFrame(
        {"high": [2.0, 3.0], "low": [1.0, 3.0], "close": [1.25, 3.0]}, index=_idx(2)
    )
    np.testing.assert_allclose(ind.close_location(bars.high, bars.low, bars.close), [0.25, 0.5])
    idx = pd.DatetimeIndex(["2024-01-01 06:00", "2024-01-03 18:00"], tz="UTC")  # Monday, Wednesday
    cal = ind.calendar_features(idx)
    np.testing.assert_allclose(cal["hour_sin"], [1.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(cal["hour_cos"], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(cal["dow_sin"], [0.0, math.sin(4 * math.pi / 7)], atol=1e-12)


def test_consolidation_regime_flags_the_narrowest_bands():
    w = _walk(300, seed=12)
    width = ind.bollinger(w.close, 20)["width"]
    flags = ind.consolidation_regime(w.close, 20, lookback=100, quantile=0.2)
    t = 250
    window = width.iloc[t - 99 : t + 1].to_numpy()
    rank = ((window < window[-1]).sum() + ((window == window[-1]).sum() + 1) / 2) / 100
    assert flags.iloc[t] == (1.0 if rank <= 0.2 else 0.0)
    assert flags.iloc[: 19 + 99].isna().all()
    assert set(flags.dropna().unique()) == {0.0, 1.0}


def test_minute_realized_volatility_by_hand():
    hours = _idx(3)  # 00:00, 01:00, 02:00
    minutes = pd.date_range("2024-01-01 00:00", "2024-01-01 01:59", freq="1min", tz="UTC")
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, len(minutes))))
    open_ = np.r_[100.0, close[:-1]] * 1.0001
    m = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close),
            "low": np.minimum(open_, close),
            "close": close,
            "volume": 1.0,
        },
        index=minutes,
    )
    got = ind.minute_realized_volatility(m, hours, pd.Timedelta(hours=1))
    for h in range(2):
        c, o = close[h * 60 : (h + 1) * 60], open_[h * 60 : (h + 1) * 60]
        r = [math.log(c[0] / o[0])] + [math.log(c[i] / c[i - 1]) for i in range(1, 60)]
        assert got.iloc[h] == pytest.approx(math.sqrt(sum(x * x for x in r)))
    assert math.isnan(got.iloc[2])  # no minutes inside the 02:00 bar
    # a bar with too few minutes is NaN, not a biased number
    thin = ind.minute_realized_volatility(m.iloc[:30], hours, pd.Timedelta(hours=1))
    assert thin.isna().all()
