"""Feature sets: counts, names, warm-up, higher-timeframe alignment, registry behaviour."""

from __future__ import annotations

import keyword
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstrat.data import closed_higher_timeframe, load_bars
from mlstrat.errors import ConfigError
from mlstrat.features import (
    KNOWN_VERSIONS,
    build_feature_feed,
    feature_columns,
    get_feature_set,
    list_feature_sets,
    register_feature_set,
)
from mlstrat.features.catalogue import compute_features

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    full = load_bars(REPO / "datasets" / "BTCUSDT-1h.parquet")
    out = full.iloc[:3400].copy()  # long enough for the slowest warm-up (~2860 rows)
    out.attrs = dict(full.attrs)
    return out


@pytest.fixture(scope="module")
def xgb(bars) -> pd.DataFrame:
    return build_feature_feed(bars, "xgb")


def test_feature_counts():
    assert len(get_feature_set("core").feature_names) == 17
    assert len(get_feature_set("lstm").feature_names) >= 38
    assert len(get_feature_set("xgb").feature_names) >= 178
    assert KNOWN_VERSIONS["core"] == (1,) and KNOWN_VERSIONS["xgb"] == (1,)


@pytest.mark.parametrize("name", ["core", "lstm", "xgb"])
def test_built_columns_match_declared_names_and_are_identifiers(bars, name):
    fs = get_feature_set(name)
    feed = build_feature_feed(bars, name)
    cols = feature_columns(feed)
    assert cols == list(fs.feature_names)
    assert all(c.isidentifier() and not keyword.iskeyword(c) for c in cols)
    assert list(feed.columns[:5]) == ["open", "high", "low", "close", "volume"]
    values = feed[cols].to_numpy()
    assert not np.isinf(values).any()
    assert (feed[cols].dtypes == "float64").all()
    # every feature becomes available within the slice (no all-NaN column)
    assert feed[cols].iloc[-1].notna().all()


def test_xgb_has_the_required_families(xgb):
    cols = feature_columns(xgb)
    assert sum(c.startswith("h4_") for c in cols) >= 20
    assert sum(c.startswith("h24_") for c in cols) >= 20
    for needed in (
        "trend_regime_14",
        "consolidation_regime_20",
        "jump_flag_24",
        "volume_surge_24",
        "momentum_accel_24",
        "channel_breakout_24",
        "rsi_x_volume",
        "h4_close_gap",
    ):
        assert needed in cols


def test_warm_up_rows_are_nan_not_back_filled(xgb, bars):
    def first_valid(col: str) -> int:
        return int(np.flatnonzero(xgb[col].notna().to_numpy())[0])

    assert first_valid("sma_50_ratio") == 49
    assert first_valid("rsi_14") == 14
    assert first_valid("atr_14_ratio") == 14
    assert first_valid("macd_signal_norm") == 25 + 8
    assert first_valid("realized_vol_24") == 24
    assert first_valid("return_168") == 168
    assert first_valid("adx_14") == 27
    # once valid, these stay valid (no holes from the construction)
    for col in ("sma_50_ratio", "rsi_14", "macd_signal_norm", "adx_14"):
        assert xgb[col].iloc[first_valid(col) :].notna().all()
    # 4h: the data starts at 19:00 inside the 16:00 candle, which is dropped as partial;
    # the 20:00 candle closes at 00:00, i.e. at the end of the 23:00 bar (row 4).
    assert bars.index[0].hour == 19
    assert first_valid("h4_return_1") == 4 + 4  # needs two closed candles: 20:00 and 00:00
    h4_close = compute_features(bars, ["h4__close"])["h4__close"]
    assert np.isnan(h4_close.iloc[3]) and h4_close.iloc[4] == bars["close"].iloc[4]
    # 24h: first full day is the day after the start; RSI(14) of days needs 15 closed days
    first_midnight = int(np.flatnonzero(bars.index.hour == 0)[0])
    assert first_valid("h24_rsi_14") == first_midnight + 15 * 24 - 1


def test_higher_timeframe_uses_the_last_closed_candle(bars):
    got = compute_features(bars, ["h4__close", "h24__close", "h4__open", "h24__volume"])
    idx = bars.index
    for t in (500, 777, 1003, 1500):
        ts = idx[t]
        end = ts + pd.Timedelta(hours=1)
        for col, hours in (("h4__close", 4), ("h24__close", 24)):
            period = pd.Timedelta(hours=hours)
            # the candle that closed last by the end of bar t: [end - period_len, end) floored
            closes_by = end.floor(f"{hours}h")
            start = closes_by - period
            inside = bars.loc[(idx >= start) & (idx < closes_by)]
            assert got[col].iloc[t] == inside["close"].iloc[-1]
            if hours == 4:
                assert got["h4__open"].iloc[t] == inside["open"].iloc[0]
            else:
                assert got["h24__volume"].iloc[t] == pytest.approx(inside["volume"].sum())


def test_agrees_with_mlstrat_data_closed_higher_timeframe(bars):
    """Same semantics as the data layer's helper (which keeps the leading partial candle)."""
    for hours in (4, 24):
        ours = compute_features(
            bars, [f"h{hours}__{c}" for c in ("open", "high", "low", "close", "volume")]
        )
        theirs = closed_higher_timeframe(bars, f"{hours}h")
        start = int(np.flatnonzero(ours.notna().all(axis=1).to_numpy())[0])
        np.testing.assert_allclose(ours.iloc[start:].to_numpy(), theirs.iloc[start:].to_numpy())


def test_zero_volume_bars_give_nan_not_inf(bars):
    dead = bars.copy()
    dead.iloc[300:330, dead.columns.get_loc("volume")] = 0.0
    dead.attrs = dict(bars.attrs)
    feed = build_feature_feed(dead, "xgb")
    cols = feature_columns(feed)
    assert not np.isinf(feed[cols].to_numpy()).any()
    assert np.isnan(feed["volume_ratio_20"].iloc[320])  # 20 bars with no volume
    assert feed["volume_ratio_20"].iloc[305] == 0.0  # a zero bar among traded ones


@pytest.fixture
def scratch_registry():
    """Registrations made by a test are removed afterwards (the registry is process-wide)."""
    from mlstrat.features import sets

    before = {name: dict(versions) for name, versions in sets._REGISTRY.items()}
    known = dict(KNOWN_VERSIONS)
    yield
    sets._REGISTRY.clear()
    sets._REGISTRY.update(before)
    KNOWN_VERSIONS.clear()
    KNOWN_VERSIONS.update(known)


def test_registry_custom_sets_and_errors(bars, scratch_registry):
    fs = register_feature_set("test_custom_pair", 1, ["rsi_14", "h4_rsi_14"], description="x")
    assert get_feature_set("test_custom_pair") is fs
    assert KNOWN_VERSIONS["test_custom_pair"] == (1,)
    two = register_feature_set("test_custom_pair", 2, lambda b: compute_features(b, ["rsi_6"]))
    assert get_feature_set("test_custom_pair") is two
    assert get_feature_set("test_custom_pair", 1) is fs
    assert KNOWN_VERSIONS["test_custom_pair"] == (1, 2)
    assert "test_custom_pair" in {f.name for f in list_feature_sets()}
    feed = build_feature_feed(bars, "test_custom_pair")
    assert feature_columns(feed) == ["rsi_6"]
    with pytest.raises(ConfigError, match="already registered"):
        register_feature_set("test_custom_pair", 1, ["rsi_14"])
    with pytest.raises(ConfigError, match="not a valid Python identifier"):
        register_feature_set("test_bad_names", 1, ["rsi 14"])
    with pytest.raises(ConfigError, match="unknown feature set"):
        get_feature_set("no_such_set")
    with pytest.raises(ConfigError, match="unknown feature name"):
        compute_features(bars, ["rsi_fourteen"])


def test_views_longer_bars_cannot_form_are_skipped_with_a_warning(bars):
    daily = bars.iloc[:0]
    daily = pd.DataFrame(
        {c: np.linspace(100, 120, 60) for c in ("open", "high", "low", "close")} | {"volume": 1.0},
        index=pd.date_range("2024-01-01", periods=60, freq="1D", tz="UTC", name="timestamp"),
    )
    daily.attrs = {"symbol": "X", "timeframe": "1D"}
    assert len(feature_columns(build_feature_feed(daily, "core"))) == 17
    with pytest.warns(UserWarning, match="11 features skipped: 1D bars"):
        cols = feature_columns(build_feature_feed(daily, "lstm"))
    assert len(cols) == 35 and not any(c.startswith(("h4_", "h24_")) for c in cols)
