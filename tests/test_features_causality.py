"""Every feature of every registered set is causal: changing bars after t leaves features at <= t unchanged.

Bars after a cut-off get random multiplicative noise on open/high/low/close (then
high/low are re-derived so each bar stays a valid candle) and on volume (some volumes
set to zero, as real data has); the features are rebuilt and compared row by row.
Cut-offs include bars that close a 4h or 24h period (03:00, 23:00), bars just before
(02:00, 22:00) and after (00:00, 04:00) such a close, an hour in the middle of a
period, and an early row inside every warm-up (a back-filled warm-up would fail there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstrat.data import load_bars
from mlstrat.features import build_feature_feed, feature_columns, list_feature_sets, target_columns

REPO = Path(__file__).resolve().parents[1]
ROWS = 3400  # the slowest warm-up (24h consolidation regime: 119 days) ends near row 2860
LATE = 2950


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    full = load_bars(REPO / "datasets" / "BTCUSDT-1h.parquet")
    out = full.iloc[:ROWS].copy()
    out.attrs = dict(full.attrs)
    return out


def perturb_after(bars: pd.DataFrame, cut: int, seed: int = 7) -> pd.DataFrame:
    """Noise on every bar after row `cut`; candles stay consistent (low <= open, close <= high)."""
    rng = np.random.default_rng(seed)
    out = bars.copy()
    k = len(bars) - cut - 1
    ohlc = out[["open", "high", "low", "close"]].to_numpy().copy()
    ohlc[cut + 1 :] *= 1.0 + rng.uniform(-0.03, 0.03, size=(k, 4))
    tail = ohlc[cut + 1 :]
    tail[:, 1] = tail.max(axis=1)
    tail[:, 2] = tail.min(axis=1)
    out[["open", "high", "low", "close"]] = ohlc
    volume = out["volume"].to_numpy().copy()
    volume[cut + 1 :] *= rng.uniform(0.2, 3.0, size=k)
    volume[cut + 1 :][rng.random(k) < 0.02] = 0.0
    out["volume"] = volume
    out.attrs = dict(bars.attrs)
    return out


def _cut_rows(index: pd.DatetimeIndex) -> list[tuple[str, int]]:
    late = np.arange(len(index)) >= LATE
    rows = [("early_warmup", 40), ("mid", 700)]
    for hour in (22, 23, 0, 2, 3, 4, 13):
        pos = int(np.flatnonzero(late & (index.hour == hour))[0])
        rows.append((f"{hour:02d}h00", pos))
    return rows


CUT_LABELS = ["early_warmup", "mid", "22h00", "23h00", "00h00", "02h00", "03h00", "04h00", "13h00"]
SET_NAMES = [fs.name for fs in list_feature_sets()]


def assert_prefix_equal(before: pd.DataFrame, after: pd.DataFrame, cut: int) -> None:
    a = before.iloc[: cut + 1].to_numpy()
    b = after.iloc[: cut + 1].to_numpy()
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    bad_nan = np.flatnonzero((nan_a != nan_b).any(axis=0))
    assert not len(bad_nan), (
        f"NaN pattern changed at/before cut-off: {list(before.columns[bad_nan])}"
    )
    close = np.isclose(np.where(nan_a, 0, a), np.where(nan_b, 0, b), rtol=1e-9, atol=1e-12)
    bad = np.flatnonzero(~close.all(axis=0))
    assert not len(bad), f"features changed at/before the cut-off: {list(before.columns[bad])}"


@pytest.fixture(scope="module")
def baselines(bars):
    return {name: build_feature_feed(bars, name, targets=("direction:1",)) for name in SET_NAMES}


def test_registered_sets_include_the_builtins():
    assert {"core", "lstm", "xgb"} <= set(SET_NAMES)


@pytest.mark.parametrize("label", CUT_LABELS)
@pytest.mark.parametrize("set_name", SET_NAMES)
def test_features_do_not_see_the_future(bars, baselines, set_name, label):
    cut = dict(_cut_rows(bars.index))[label]
    base = baselines[set_name]
    feats = feature_columns(base)
    assert feats, "no features to check"
    rebuilt = build_feature_feed(perturb_after(bars, cut), set_name, targets=("direction:1",))
    assert_prefix_equal(base[feats], rebuilt[feats], cut)
    if cut >= LATE:  # every feature has real values at or before the cut-off, so each is tested
        warm = base[feats].iloc[: cut + 1].notna().any()
        assert warm.all(), f"still warming up at the cut-off: {list(warm.index[~warm])}"
    # The perturbation is real: later rows of the 1h, 4h and 24h views do change.
    changed = ~np.isclose(
        base[feats].iloc[cut + 1 :].to_numpy(),
        rebuilt[feats].iloc[cut + 1 :].to_numpy(),
        equal_nan=True,
    ).all(axis=0)
    changed_names = {f for f, c in zip(feats, changed, strict=True) if c}
    assert "rsi_14" not in feats or "rsi_14" in changed_names
    if label != "early_warmup":
        for prefix in ("h4_", "h24_"):
            group = [f for f in feats if f.startswith(prefix)]
            if group:
                assert set(group) & changed_names, f"perturbation left all {prefix} features equal"


def test_targets_do_see_the_future(bars):
    """Sanity check of the harness: targets at the cut-off depend on the bars after it."""
    cut = 1000
    specs = ("direction:1", "forward_return:4", "forward_volatility:24")
    base = build_feature_feed(bars, "core", targets=specs)
    rebuilt = build_feature_feed(perturb_after(bars, cut), "core", targets=specs)
    for col in ("forward_return_4", "forward_volatility_24"):
        assert base[col].iloc[cut] != rebuilt[col].iloc[cut]
    assert set(target_columns(base)) == {"direction_1", "forward_return_4", "forward_volatility_24"}
    assert not set(target_columns(base)) & set(feature_columns(base))


def test_minute_volatility_features_are_causal():
    hourly = load_bars(REPO / "datasets" / "BTCUSDT-1h.parquet")
    minutes = load_bars(REPO / "datasets" / "BTCUSDT-1m-2025-07.parquet")
    bars = hourly.loc["2025-06-25":"2025-07-20"].copy()
    bars.attrs = dict(hourly.attrs)
    minutes = minutes.loc[:"2025-07-20"].copy()
    minutes.attrs = {"symbol": "BTCUSDT", "timeframe": "1min"}
    cut = int(np.flatnonzero(bars.index == pd.Timestamp("2025-07-10 13:00", tz="UTC"))[0])
    base = build_feature_feed(bars, "core", minute_bars=minutes)
    # Perturb hourly bars after the cut-off and every minute from the cut-off bar's close on.
    cut_close = bars.index[cut] + pd.Timedelta(hours=1)
    m_cut = int(np.searchsorted(minutes.index, cut_close)) - 1
    moved = build_feature_feed(
        perturb_after(bars, cut), "core", minute_bars=perturb_after(minutes, m_cut)
    )
    cols = ["rv_1m", "rv_1m_24"]
    assert base[cols].iloc[: cut + 1].notna().any().all()
    assert_prefix_equal(base[cols], moved[cols], cut)
    assert not np.allclose(
        base["rv_1m"].iloc[cut + 1 :], moved["rv_1m"].iloc[cut + 1 :], equal_nan=True
    )


@pytest.mark.parametrize(
    "label, leak",
    [
        ("mid", lambda b: (b["close"].shift(-1) / b["close"]).rename("next_close")),
        ("early_warmup", lambda b: b["close"].rolling(50).mean().bfill().rename("sma_bfill")),
        (
            "22h00",
            lambda b: b["close"].groupby(b.index.floor("1D")).transform("last").rename("day_close"),
        ),
        (
            "02h00",
            lambda b: b["close"].groupby(b.index.floor("4h")).transform("last").rename("h4_close"),
        ),
    ],
)
def test_harness_catches_leaks(bars, label, leak):
    """The comparison fails for a look-ahead, a back-filled warm-up and a forming 4h/24h candle."""
    from mlstrat.features.sets import FeatureSet

    leaky = FeatureSet("leaky", 1, lambda b: leak(b).to_frame())
    cut = dict(_cut_rows(bars.index))[label]
    base = build_feature_feed(bars, leaky)
    rebuilt = build_feature_feed(perturb_after(bars, cut), leaky)
    cols = feature_columns(base)
    with pytest.raises(AssertionError, match="changed at/before"):
        assert_prefix_equal(base[cols], rebuilt[cols], cut)
