"""Resampling, gap reports, timeframes and closed higher-timeframe alignment."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from python_lines import assert_lines_do_not_grow_with_rows

from mlstrat.data import (
    Gap,
    align_closed,
    closed_higher_timeframe,
    gap_report,
    infer_timeframe,
    load_bars,
    normalize_timeframe,
    resample,
)
from mlstrat.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
COLUMNS = ["open", "high", "low", "close", "volume"]

# Eight hourly bars, worked by hand below.
HAND = pd.DataFrame(
    [
        (10.0, 12.0, 9.0, 11.0, 1.0),  # 00:00
        (11.0, 15.0, 10.0, 14.0, 2.0),  # 01:00
        (14.0, 14.5, 8.0, 9.0, 3.0),  # 02:00
        (9.0, 10.0, 8.5, 9.5, 4.0),  # 03:00
        (9.5, 11.0, 9.0, 10.0, 5.0),  # 04:00
        (10.0, 10.5, 7.0, 8.0, 6.0),  # 05:00
        (8.0, 13.0, 7.5, 12.0, 7.0),  # 06:00
        (12.0, 12.5, 11.0, 11.5, 8.0),  # 07:00
    ],
    columns=COLUMNS,
    index=pd.date_range("2024-01-01", periods=8, freq="h", tz="UTC", name="timestamp").as_unit(
        "ns"
    ),
)
HAND.attrs = {"symbol": "TEST", "timeframe": "1h"}
H4_FIRST = [10.0, 15.0, 8.0, 9.5, 10.0]  # 00:00-04:00
H4_SECOND = [9.5, 13.0, 7.0, 11.5, 26.0]  # 04:00-08:00


def hand() -> pd.DataFrame:
    bars = HAND.copy()
    bars.attrs = dict(HAND.attrs)
    return bars


def btc_1h() -> pd.DataFrame:
    return load_bars(REPO / "datasets" / "BTCUSDT-1h.parquet")


def pandas_resample(bars: pd.DataFrame, rule: str, **kw) -> pd.DataFrame:
    """Reference: pandas' own resampler, empty periods dropped."""
    grouped = bars.resample(rule, closed="left", label="left", **kw)
    out = grouped.agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    return out[grouped["close"].count() > 0]


# ---------------------------------------------------------------- resample


def test_resample_hand_worked():
    out = resample(hand(), "4h")
    assert list(out.index) == [
        pd.Timestamp("2024-01-01 00:00", tz="UTC"),
        pd.Timestamp("2024-01-01 04:00", tz="UTC"),
    ]
    assert out.to_numpy().tolist() == [H4_FIRST, H4_SECOND]
    assert out.attrs == {"symbol": "TEST", "timeframe": "4h"}
    assert out.index.name == "timestamp" and (out.dtypes == "float64").all()


def test_resample_complete_only_drops_partial_periods():
    bars = hand().drop(pd.Timestamp("2024-01-01 05:00", tz="UTC"))
    partial = resample(bars, "4h")
    assert partial.to_numpy().tolist() == [H4_FIRST, [9.5, 13.0, 7.5, 11.5, 20.0]]
    complete = resample(bars, "4h", complete_only=True)
    assert complete.to_numpy().tolist() == [H4_FIRST]
    # A period cut at the start of the data is incomplete too.
    assert resample(hand().iloc[1:], "4h", complete_only=True).to_numpy().tolist() == [H4_SECOND]


@pytest.mark.parametrize("rule", ["4h", "1D", "6h", "1w", "1M"])
def test_resample_matches_pandas_on_real_bars(rule):
    bars = btc_1h()
    pandas_rule = {"1w": "W-MON", "1M": "MS"}.get(rule, rule)
    kw = {} if rule in ("1w", "1M", "1D") else {"origin": "epoch"}
    expected = pandas_resample(bars, pandas_rule, **kw)
    out = resample(bars, rule)
    pd.testing.assert_frame_equal(out, expected, check_freq=False)
    assert out.attrs["timeframe"] == normalize_timeframe(rule)


def test_resample_complete_only_matches_counts_on_real_bars():
    bars = load_bars(SHARED / "binance" / "BTCUSDT-1h.parquet") if SHARED.exists() else btc_1h()
    counts = bars["close"].resample("4h", origin="epoch").count()
    full = counts[counts == 4].index
    out = resample(bars, "4h", complete_only=True)
    assert list(out.index) == list(full)
    if SHARED.exists():
        assert len(resample(bars, "4h")) - len(out) > 0  # the outages make some incomplete


def test_resample_minutes_to_hours():
    bars = load_bars(REPO / "datasets" / "BTCUSDT-1m-2025-07.parquet")
    out = resample(bars, "1h")
    pd.testing.assert_frame_equal(out, pandas_resample(bars, "1h"), check_freq=False)
    assert len(out) == 31 * 24


@pytest.mark.parametrize("rule", ["90min", "30min", "banana"])
def test_resample_rejects_rules_that_do_not_tile_the_bars(rule):
    with pytest.raises(ConfigError):
        resample(hand(), rule)


def test_resample_needs_known_timeframe():
    one = hand().iloc[:1]
    one.attrs = {"symbol": None, "timeframe": None}
    with pytest.raises(DataError, match="timeframe"):
        resample(one, "4h")


# ---------------------------------------------------------------- closed higher timeframe


def test_closed_higher_timeframe_hand_worked():
    out = closed_higher_timeframe(hand(), "4h")
    assert out.index.equals(HAND.index) and list(out.columns) == COLUMNS
    assert out.iloc[:3].isna().all().all()  # 00:00-02:00: no 4h bar has closed yet
    for hour in (3, 4, 5, 6):  # the 03:00 bar ends at 04:00, when 00:00-04:00 closes
        assert out.iloc[hour].tolist() == H4_FIRST
    assert out.iloc[7].tolist() == H4_SECOND


def test_closed_higher_timeframe_uses_previous_period_before_close():
    bars = pd.concat([hand(), hand().set_axis(HAND.index + pd.Timedelta(hours=8))])
    bars.attrs = dict(HAND.attrs)
    out = closed_higher_timeframe(bars, "4h")
    at = out.loc[pd.Timestamp("2024-01-01 10:00", tz="UTC")]
    assert at.tolist() == H4_SECOND  # 08:00-12:00 still open at 10:00 -> 04:00 bar
    assert out.loc[pd.Timestamp("2024-01-01 11:00", tz="UTC")].tolist() == H4_FIRST


def test_closed_higher_timeframe_complete_only_skips_outage_period():
    bars = hand().drop(pd.Timestamp("2024-01-01 05:00", tz="UTC"))
    out = closed_higher_timeframe(bars, "4h", complete_only=True)
    assert out.iloc[-1].tolist() == H4_FIRST


def reference_closed(bars: pd.DataFrame, rule: str, positions) -> pd.DataFrame:
    """Loop reference: aggregate, by hand, the last period closed by each bar's end."""
    step = pd.Timedelta(rule)
    tf = pd.Timedelta(bars.attrs["timeframe"])
    floors = bars.index.floor(rule)
    rows = []
    for i in positions:
        end = bars.index[i] + tf
        closed = floors[(floors + step <= end)]
        if len(closed) == 0:
            rows.append([np.nan] * 5)
            continue
        chunk = bars[floors == closed.max()]
        rows.append(
            [
                chunk["open"].iloc[0],
                chunk["high"].max(),
                chunk["low"].min(),
                chunk["close"].iloc[-1],
                chunk["volume"].sum(),
            ]
        )
    return pd.DataFrame(rows, index=bars.index[positions], columns=COLUMNS)


@pytest.mark.parametrize("rule", ["4h", "1D"])
def test_closed_higher_timeframe_matches_loop_reference(rule):
    bars = btc_1h().iloc[:3000]
    positions = np.sort(np.random.default_rng(1).choice(len(bars), 150, replace=False))
    out = closed_higher_timeframe(bars, rule).iloc[positions]
    pd.testing.assert_frame_equal(out, reference_closed(bars, rule, positions), check_freq=False)


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["4h", "1D"])
@pytest.mark.parametrize("complete_only", [False, True])
def test_closed_higher_timeframe_is_causal(rule, complete_only):
    """Changing or deleting bars after t never changes rows at or before t."""
    bars = btc_1h().iloc[:2000]
    base = closed_higher_timeframe(bars, rule, complete_only=complete_only)
    rng = np.random.default_rng(7)
    for cut in [*rng.integers(50, 1950, 4), *range(1000, 1024)]:  # every hour of a day
        changed = bars.copy()
        changed.iloc[cut + 1 :] = changed.iloc[cut + 1 :].to_numpy() * rng.uniform(
            0.5, 2.0, (len(bars) - cut - 1, 1)
        )
        dropped = changed.drop(changed.index[cut + 1 :: 3])
        for variant in (changed, dropped):
            variant.attrs = dict(bars.attrs)
            after = closed_higher_timeframe(variant, rule, complete_only=complete_only)
            pd.testing.assert_frame_equal(after.iloc[: cut + 1], base.iloc[: cut + 1])
        assert (
            not closed_higher_timeframe(changed, rule)
            .iloc[cut + 1 :]
            .equals(closed_higher_timeframe(bars, rule).iloc[cut + 1 :])
        )


def test_align_closed_maps_values_computed_on_higher_bars():
    bars = btc_1h()
    higher = resample(bars, "4h")
    momentum = higher["close"].pct_change().rename("mom_4h")
    aligned = align_closed(momentum, bars.index, rule="4h", timeframe="1h")
    expected = closed_higher_timeframe(bars, "4h")["close"]
    previous = align_closed(higher["close"].shift(1), bars.index, rule="4h", timeframe="1h")
    pd.testing.assert_series_equal(aligned, (expected / previous - 1).rename("mom_4h"))


def test_closed_higher_timeframe_is_fast():
    bars = btc_1h()
    big = pd.concat([bars] * 4)
    big.index = pd.date_range("2010-01-01", periods=len(big), freq="h", tz="UTC", name="timestamp")
    big.attrs = dict(bars.attrs)

    def both(frame: pd.DataFrame) -> None:
        closed_higher_timeframe(frame, "4h")
        closed_higher_timeframe(frame, "1D")

    # no Python line per bar or period (a load-independent check)
    assert_lines_do_not_grow_with_rows(lambda: both(bars), lambda: both(big), len(big) - len(bars))
    start = time.perf_counter()
    both(big)
    assert time.perf_counter() - start < 10.0  # ~0.05 s: generous for a loaded machine


# ---------------------------------------------------------------- gaps


def test_gap_report_hand_worked():
    bars = hand().drop(hand().index[[2, 3, 6]])
    assert gap_report(bars) == [
        Gap(
            pd.Timestamp("2024-01-01 02:00", tz="UTC"),
            pd.Timestamp("2024-01-01 04:00", tz="UTC"),
            2,
        ),
        Gap(
            pd.Timestamp("2024-01-01 06:00", tz="UTC"),
            pd.Timestamp("2024-01-01 07:00", tz="UTC"),
            1,
        ),
    ]
    assert gap_report(hand()) == []
    assert str(gap_report(bars)[1]).endswith("(1 bar missing)")


def test_gap_report_real_btc_matches_readme_and_date_range():
    path = SHARED / "binance" / "BTCUSDT-1h.parquet"
    if not path.exists():
        pytest.skip("shared dataset not present")
    bars = load_bars(path)
    gaps = gap_report(bars)
    assert len(gaps) == 27 and sum(g.missing for g in gaps) == 122  # README figures
    full = pd.date_range(bars.index[0], bars.index[-1], freq="h")
    missing = full.difference(bars.index)
    listed = pd.DatetimeIndex(
        np.concatenate([pd.date_range(g.start, g.end, freq="h", inclusive="left") for g in gaps])
    )
    assert listed.equals(missing)


def test_gap_report_calendar_months():
    months = pd.DatetimeIndex(["2024-01-01", "2024-02-01", "2024-05-01"], tz="UTC")
    bars = pd.DataFrame(1.0, index=months, columns=COLUMNS)
    [gap] = gap_report(bars, "1M")
    assert (gap.start, gap.end, gap.missing) == (
        pd.Timestamp("2024-03-01", tz="UTC"),
        pd.Timestamp("2024-05-01", tz="UTC"),
        2,
    )


# ---------------------------------------------------------------- timeframes


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("1h", "1h"),
        ("60min", "1h"),
        ("4H", "4h"),
        ("1m", "1min"),
        ("15T", "15min"),
        ("24h", "1D"),
        ("1d", "1D"),
        ("1w", "W-MON"),
        ("1M", "MS"),
        ("1ms", "1ms"),
    ],
)
def test_normalize_timeframe(given, canonical):
    assert normalize_timeframe(given) == canonical


def test_infer_timeframe_uses_modal_spacing():
    index = pd.DatetimeIndex(
        ["2024-01-01 00:00", "2024-01-01 00:05", "2024-01-01 00:10", "2024-01-01 01:00"],
        tz="UTC",
    )
    assert infer_timeframe(index) == "5min"
    assert infer_timeframe(index[:1]) is None
