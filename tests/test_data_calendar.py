"""Calendars: gaps are counted against the days and hours a market trades; Yahoo symbol/adjust."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_data_quality import quiet_load, shared

from mlstrat.cli import main
from mlstrat.data import gap_report, load_bars
from mlstrat.data.timeframe import Calendar, infer_calendar
from mlstrat.errors import ConfigError, DataError
from mlstrat.report.metrics import infer_annualisation

REPO = Path(__file__).resolve().parents[1]
FIX = REPO / "tests" / "fixtures" / "data_quality"
SPY = FIX / "spy-2024-03.csv"
FDAX = FIX / "FDAX-30min-session.csv"


def weekend_gaps(gaps) -> int:
    """Gaps whose missing bars all fall on Saturdays or Sundays."""
    count = 0
    for gap in gaps:
        missing = pd.date_range(gap.start, gap.end, inclusive="left", freq="D")
        if len(missing) and (missing.day_of_week >= 5).all():
            count += 1
    return count


# ---------------------------------------------------------------- daily equity (Yahoo)


def test_yahoo_fixture_business_days_symbol_and_no_weekend_gaps():
    bars = quiet_load(SPY)
    assert bars.attrs["symbol"] == "SPY"
    assert bars.attrs["calendar"] == {"kind": "business", "zone": "UTC", "inferred": True}
    assert gap_report(bars) == []
    every_day = gap_report(bars, calendar="24/7")
    assert [(g.start.day_name(), g.missing) for g in every_day] == [("Saturday", 2)] * 2
    forced = quiet_load(SPY, calendar="24/7")
    assert forced.attrs["calendar"]["kind"] == "24/7" and len(gap_report(forced)) == 2


def test_real_yahoo_daily_zero_weekend_gaps_and_holidays_counted():
    path = shared("raw", "orcl-1995-2014.txt")
    bars = quiet_load(path)
    assert bars.attrs["symbol"] == "ORCL" and bars.attrs["calendar"]["kind"] == "business"
    gaps = gap_report(bars)
    assert weekend_gaps(gaps) == 0
    # independently: weekdays between the first and last bar that hold no bar
    weekdays = pd.bdate_range(bars.index[0], bars.index[-1], tz="UTC")
    absent = weekdays.difference(bars.index)
    assert sum(g.missing for g in gaps) == len(absent)
    assert {g.start for g in gaps} <= set(absent)
    assert weekend_gaps(gap_report(bars, calendar="24/7")) > 800  # every weekend, before


def test_real_yahoo_daily_annualises_to_252_bars_a_year():
    bars = quiet_load(shared("raw", "orcl-1995-2014.txt"))
    annual = infer_annualisation(bars.index, bars.attrs["timeframe"])
    assert annual.periods_per_year == 252 and annual.calendar == "weekdays"


def test_inspect_shows_calendar_symbol_and_adjust_default(capsys):
    assert main(["data", "inspect", str(SPY)]) == 0
    out = capsys.readouterr().out
    assert "symbol:    SPY" in out
    assert "calendar:  business (weekdays, all day, UTC; inferred, --calendar overrides)" in out
    assert "adjust:    off (the default)" in out and "--adjust" in out
    assert "gaps:      0 runs, 0 bars missing against the business calendar" in out


# ---------------------------------------------------------------- adjusting by Adj Close


def test_adjust_scales_prices_by_adj_close_over_close():
    raw = pd.read_csv(SPY)
    ratio = raw["Adj Close"] / raw["Close"]
    plain = quiet_load(SPY)
    adjusted = quiet_load(SPY, adjust=True)
    np.testing.assert_array_equal(plain["close"].to_numpy(), raw["Close"].to_numpy())
    np.testing.assert_allclose(adjusted["close"].to_numpy(), raw["Adj Close"].to_numpy(), rtol=0)
    for column in ("Open", "High", "Low"):
        np.testing.assert_allclose(
            adjusted[column.lower()].to_numpy(), (raw[column] * ratio).to_numpy(), rtol=1e-12
        )
    np.testing.assert_allclose(adjusted["volume"].to_numpy(), (raw["Volume"] / ratio).to_numpy())
    assert adjusted.attrs["quality"]["adjust"] == {"adj_close_column": True, "applied": True}
    assert plain.attrs["quality"]["adjust"]["applied"] is False
    # the dividend step is gone from adjusted returns, present in traded prices
    step = raw.index[raw["Date"] == "2024-03-15"][0]
    assert ratio[step - 1] != ratio[step]


def test_adjust_needs_adj_close_and_a_usable_value(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_bars(FDAX, tz="Europe/Berlin", adjust=True)
    assert "Adj Close" in str(info.value) and info.value.fix == "pass adjust=False"
    text = SPY.read_text().splitlines()
    cells = text[4].split(",")
    cells[5] = ""
    text[4] = ",".join(cells)
    bad = tmp_path / "spy.csv"
    bad.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError) as info:
        load_bars(bad, adjust=True)
    assert (info.value.row, info.value.column) == (3, "Adj Close")
    assert "adjust=False" in info.value.fix
    assert len(quiet_load(bad)) == 15  # unadjusted, the column is not needed


# ---------------------------------------------------------------- exchange sessions


def test_session_calendar_counts_only_missing_session_bars():
    bars = quiet_load(FDAX, tz="Europe/Berlin")
    calendar = Calendar.from_value(bars.attrs["calendar"])
    assert (calendar.kind, calendar.zone, calendar.session) == (
        "session",
        "Europe/Berlin",
        (("09:00", "17:00"),),
    )
    gaps = gap_report(bars)
    # independently: every 30-minute slot 09:00..17:00 Berlin on every weekday, minus the bars
    days = pd.bdate_range("2024-01-08", "2024-01-19")
    slots = pd.timedelta_range("09:00:00", "17:00:00", freq="30min")
    expected = pd.DatetimeIndex([d + s for d in days for s in slots]).tz_localize("Europe/Berlin")
    absent = expected.tz_convert("UTC").difference(bars.index)
    assert sum(g.missing for g in gaps) == len(absent) == 1 + 17
    assert [(g.start, g.missing) for g in gaps] == [
        (pd.Timestamp("2024-01-10 11:30", tz="UTC"), 1),
        (pd.Timestamp("2024-01-17 08:00", tz="UTC"), 17),
    ]
    nights = gap_report(bars, calendar="24/7")  # every night and weekend counts
    grid = pd.date_range(bars.index[0], bars.index[-1], freq="30min")
    assert sum(g.missing for g in nights) == len(grid.difference(bars.index)) > 300


def test_real_exchange_minutes_session_without_gaps():
    bars = quiet_load(shared("raw", "2006-min-005.txt"), tz="Europe/Berlin")
    calendar = bars.attrs["calendar"]
    assert calendar["kind"] == "session" and calendar["session"] == [["09:05", "17:30"]]
    assert gap_report(bars) == []
    assert bars.attrs["quality"]["volume_reported"] is False


def test_explicit_calendar_overrides_inference():
    crypto = quiet_load(REPO / "datasets" / "BTCUSDT-1h.parquet")
    assert crypto.attrs["calendar"]["kind"] == "24/7"
    business = quiet_load(REPO / "datasets" / "BTCUSDT-1h.parquet", calendar="business")
    assert business.attrs["calendar"] == {"kind": "business", "zone": "UTC", "inferred": False}
    assert len(business) == len(crypto)  # a calendar never removes bars
    session = quiet_load(FDAX, tz="Europe/Berlin", calendar="session")
    assert session.attrs["calendar"]["inferred"] is False
    assert session.attrs["calendar"]["session"] == [["09:00", "17:00"]]


def test_too_little_data_is_not_evidence_against_weekends():
    index = pd.date_range("2024-03-04", periods=5, freq="D", tz="UTC")  # Monday..Friday
    assert infer_calendar(index, "1D").kind == "24/7"
    longer = pd.bdate_range("2024-03-04", periods=10, tz="UTC")
    assert infer_calendar(longer, "1D").kind == "business"
    hourly = pd.date_range("2024-03-01", periods=24 * 14, freq="h", tz="UTC")
    assert infer_calendar(hourly[hourly.day_of_week < 5], "1h").kind == "business"
