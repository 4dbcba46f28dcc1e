"""check_leakage flags look-ahead features and passes causal ones (built-in sets included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstrat.errors import DataError
from mlstrat.walkforward.leakage import check_leakage, perturb_after

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    df = pd.read_parquet(REPO / "datasets" / "BTCUSDT-1h.parquet").set_index("timestamp")
    return df.iloc[:1500]


def toy_features(bars: pd.DataFrame) -> pd.DataFrame:
    close = bars["close"]
    return pd.DataFrame(
        {
            "sma_10": close.rolling(10).mean(),
            "ret_1": close.pct_change(),
            "body": (bars["close"] - bars["open"]) / bars["open"],
            "leak_next_close": close.shift(-1) / close - 1,  # reads the next bar
            "leak_centred": close.rolling(5, center=True).mean(),
            "leak_zscore": (close - close.mean()) / close.std(),  # full-sample statistics
            "leak_bfill": close.where(close.index.hour == 0).bfill(),
        },
        index=bars.index,
    )


def test_flags_exactly_the_leaky_columns(bars) -> None:
    report = check_leakage(toy_features, bars)
    assert report.leaky_columns == ["leak_bfill", "leak_centred", "leak_next_close", "leak_zscore"]
    leak = report.leaks["leak_next_close"]
    # the next-close feature changes exactly at the cut-off bar
    assert leak.timestamp == leak.cutoff
    assert not report.ok and "leak_next_close" in report.summary()
    with pytest.raises(DataError, match="read the future"):
        report.raise_if_leaky()


def test_causal_features_pass(bars) -> None:
    report = check_leakage(toy_features, bars, columns=["sma_10", "ret_1", "body"], trials=2)
    assert report.ok and len(report.cutoffs) >= 4
    report.raise_if_leaky()


def test_explicit_cutoffs_by_time_and_position(bars) -> None:
    ts = bars.index[700]
    report = check_leakage(toy_features, bars, cutoffs=[ts, 900], columns=["leak_next_close"])
    assert report.cutoffs == [bars.index[700], bars.index[900]]
    assert report.leaks["leak_next_close"].timestamp == bars.index[700]


def test_perturbation_keeps_bars_valid_and_past_intact(bars) -> None:
    out = perturb_after(bars, 999, np.random.default_rng(1))
    pd.testing.assert_frame_equal(out.iloc[:1000], bars.iloc[:1000])
    tail = out.iloc[1000:]
    assert (tail["close"] != bars["close"].iloc[1000:]).all()
    assert (tail["high"] >= tail[["open", "close"]].max(axis=1)).all()
    assert (tail["low"] <= tail[["open", "close"]].min(axis=1)).all()
    assert (tail["volume"] >= 0).all() and (tail[["open", "low"]] > 0).all().all()


@pytest.mark.slow
def test_every_builtin_feature_set_passes() -> None:
    from mlstrat.data import load_bars
    from mlstrat.features import list_feature_sets

    bars = load_bars(REPO / "datasets" / "BTCUSDT-1h.parquet").iloc[:2000]
    sets = list_feature_sets()
    assert {"core", "lstm", "xgb"} <= {fs.name for fs in sets}
    for fs in sets:
        # cut-offs at several hours of the day, so 4h and 24h views are cut mid-period too
        report = check_leakage(fs.build, bars, cutoffs=[1501, 1702, 1843, 1990], seed=1)
        assert report.ok, f"feature set {fs.name}: {report.summary()}"
        assert len(report.columns) == len(fs.build(bars.iloc[:300]).columns)


def test_leaky_feature_added_to_a_builtin_set_is_caught() -> None:
    from mlstrat.data import load_bars
    from mlstrat.features import get_feature_set

    bars = load_bars(REPO / "datasets" / "BTCUSDT-1h.parquet").iloc[:1500]
    core = get_feature_set("core")

    def with_leak(b: pd.DataFrame) -> pd.DataFrame:
        out = core.build(b)
        out["next_close_ratio"] = b["close"].shift(-1) / b["close"]
        return out

    report = check_leakage(with_leak, bars)
    assert report.leaky_columns == ["next_close_ratio"]
