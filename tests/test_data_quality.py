"""Anomaly report: every kind found at its row, every policy applied, counts in the quality block.

Expected rows and values are recomputed here from the raw files with plain pandas, not
taken from mlstrat. Fixtures: tests/fixtures/data_quality/ (see make_fixtures.py there).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstrat.data import load_bars
from mlstrat.data.quality import spike_mask
from mlstrat.errors import DataError, DataQualityWarning

HERE = Path(__file__).resolve().parent
FIX = HERE / "fixtures" / "data_quality"
CDD = FIX / "Binance_XYZUSDT_1h.csv"
ANOMALIES = FIX / "XYZUSDT-1h-anomalies.csv"
OPEN_SPIKE = FIX / "ETHUSDT-1h-open-spike.csv"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
PRICES = ["open", "high", "low", "close"]


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared dataset {path.name} not present")
    return path


def quiet_load(path: Path, **options) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return load_bars(path, **options)


def raw_cdd() -> pd.DataFrame:
    """The CDD fixture as plain pandas reads it: one row per file data row, in file order."""
    frame = pd.read_csv(CDD, skiprows=1)
    seconds = np.where(frame["unix"] > 1e11, frame["unix"] // 1000, frame["unix"])
    frame["time"] = pd.to_datetime(seconds, unit="s", utc=True)
    return frame


def raw_csv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def anomalies(bars: pd.DataFrame, kind: str) -> dict:
    return bars.attrs["quality"]["anomalies"][kind]


# ---------------------------------------------------------------- duplicates


def conflicting_rows() -> tuple[int, int, pd.Timestamp]:
    """(earlier file row, later file row, time) of the first conflicting timestamp."""
    frame = raw_cdd()
    values = ["open", "high", "low", "close", "Volume XYZ"]
    groups = frame.groupby("time")
    for time, group in sorted(groups, key=lambda item: item[0]):
        if len(group) > 1 and len(group[values].drop_duplicates()) > 1:
            return int(group.index[0]), int(group.index[1]), time
    raise AssertionError("fixture has no conflicting duplicates")


def test_conflicting_duplicates_name_both_rows_and_their_values():
    first, later, time = conflicting_rows()
    frame = raw_cdd()
    with pytest.raises(DataError) as info:
        load_bars(CDD, on_time_mismatch="keep")
    err = info.value
    message = str(err)
    assert err.file == str(CDD) and err.row == later and err.column == "timestamp"
    assert err.timestamp == time.isoformat()
    assert "conflicting duplicate" in message
    assert f"row {later} (open={float(frame.loc[later, 'open'])!r}" in message
    assert f"differs from row {first} (open={float(frame.loc[first, 'open'])!r}" in message
    n_pairs = int(frame.duplicated("time").sum()) - 1  # one of them is an exact repeat
    assert f"{n_pairs} such rows" in message
    assert 'on_duplicate="keep_last"' in message and 'on_duplicate="keep_first"' in message


@pytest.mark.parametrize("policy", ["keep_first", "keep_last"])
def test_first_and_last_mean_file_order_in_a_newest_first_file(policy):
    frame = raw_cdd()
    bars = quiet_load(CDD, on_time_mismatch="keep", on_duplicate=policy)
    for time, group in frame.groupby("time"):
        row = group.iloc[0] if policy == "keep_first" else group.iloc[-1]
        got = bars.loc[time, ["open", "high", "low", "close", "volume"]].tolist()
        assert got == [row.open, row.high, row.low, row.close, row["Volume XYZ"]], time
    assert bars.index.is_monotonic_increasing and bars.index.is_unique
    conflicts = anomalies(bars, "conflicting_duplicate")
    assert conflicts["count"] == 6 and conflicts["rows_affected"] == 6
    assert conflicts["policy"] == policy and conflicts["action"] == "dropped"


def test_drop_all_removes_every_row_of_a_conflicting_timestamp():
    frame = raw_cdd()
    bars = quiet_load(CDD, on_time_mismatch="keep", on_duplicate="drop_all")
    values = ["open", "high", "low", "close", "Volume XYZ"]
    conflicted = {t for t, g in frame.groupby("time") if len(g[values].drop_duplicates()) > 1}
    assert len(conflicted) == 6
    assert not conflicted & set(bars.index)
    assert len(bars) == frame["time"].nunique() - 6
    assert anomalies(bars, "conflicting_duplicate")["rows_affected"] == 12


def test_exact_repeats_are_dropped_by_default_and_an_error_on_request():
    frame = raw_cdd()
    repeated = frame[frame.duplicated(keep=False)]
    assert len(repeated) == 2
    first, second = (int(i) for i in repeated.index)
    bars = quiet_load(CDD, on_time_mismatch="keep", on_duplicate="keep_first")
    exact = anomalies(bars, "exact_duplicate")
    assert (exact["count"], exact["action"], exact["first_row"]) == (1, "dropped", second)
    with pytest.raises(DataError) as info:
        load_bars(CDD, on_time_mismatch="keep", on_exact_duplicate="error")
    assert info.value.row == second and f"row {second} repeats an earlier row" in str(info.value)
    assert 'on_exact_duplicate="drop"' in info.value.fix
    assert first < second


# ---------------------------------------------------------------- text vs epoch times


def mismatched_row() -> tuple[int, pd.Timestamp, pd.Timestamp]:
    frame = raw_cdd()
    text = pd.to_datetime(frame["date"], format="ISO8601", errors="coerce", utc=True)
    bad = frame.index[text.notna() & (text != frame["time"])]
    assert len(bad) == 1
    row = int(bad[0])
    return row, frame.loc[row, "time"], text[row]


def test_text_and_epoch_time_disagreeing_is_an_error_naming_both():
    row, epoch, text = mismatched_row()
    with pytest.raises(DataError) as info:
        load_bars(CDD)
    err = info.value
    assert (err.row, err.column, err.timestamp) == (row, "date", epoch.isoformat())
    assert text.isoformat() in str(err) and epoch.isoformat() in str(err)
    assert 'on_time_mismatch="keep"' in err.fix


@pytest.mark.parametrize("policy", ["keep", "flag", "drop"])
def test_time_mismatch_policies(policy):
    row, epoch, _ = mismatched_row()
    bars = quiet_load(CDD, on_time_mismatch=policy, on_duplicate="keep_first")
    item = anomalies(bars, "time_mismatch")
    assert (item["count"], item["first_row"], item["policy"]) == (1, row, policy)
    assert (epoch in bars.index) == (policy != "drop")
    assert item.get("flagged", []) == ([epoch.isoformat()] if policy == "flag" else [])


# ---------------------------------------------------------------- placeholders, spikes, volume


def expected_rows(path: Path) -> dict[str, list[int]]:
    """Rows of each kind by the documented rules, computed with pandas only."""
    f = raw_csv(path)
    flat = (f.open == f.high) & (f.high == f.low) & (f.low == f.close)
    placeholder = flat & (f.volume == 0)
    zero = (f.volume == 0) & ~placeholder
    ref = np.log(f.close).rolling(25, center=True, min_periods=1).median()
    moves = np.log(f.close).diff().abs().rolling(49, center=True, min_periods=1).median()
    limit = np.maximum(np.log(3), 25 * 1.4826 * moves.fillna(0))
    spike = np.zeros(len(f), dtype=bool)
    for col in PRICES:
        spike |= (np.log(f[col]) - ref).abs() > limit
    history = f.volume.iloc[-49:-1]
    incomplete = [len(f) - 1] if f.volume.iloc[-1] < 0.1 * history.median() else []
    return {
        "placeholder": list(f.index[placeholder]),
        "zero_volume": list(f.index[zero]),
        "spike": list(f.index[spike]),
        "incomplete": incomplete,
    }


def test_defaults_flag_placeholders_and_spikes_keep_zero_volume_drop_incomplete_bar():
    rows = expected_rows(ANOMALIES)
    assert rows == {"placeholder": [30], "zero_volume": [20], "spike": [50], "incomplete": [79]}
    raw = raw_csv(ANOMALIES)
    with pytest.warns(DataQualityWarning) as caught:
        bars = load_bars(ANOMALIES)
    text = str(caught[0].message)
    assert ANOMALIES.name in text
    for words in ("1 placeholder row flagged", "1 spike row flagged", "1 zero volume row kept"):
        assert words in text
    assert "1 incomplete row dropped (first: row 79" in text
    assert len(bars) == len(raw) - 1 and bars.index[-1] == raw.timestamp.iloc[-2]
    for kind, action in [
        ("placeholder", "flagged"),
        ("spike", "flagged"),
        ("zero_volume", "kept"),
        ("incomplete", "dropped"),
    ]:
        item = anomalies(bars, kind)
        [row] = rows[kind]
        assert (item["count"], item["action"], item["first_row"]) == (1, action, row)
        assert item["first_timestamp"] == raw.timestamp[row].isoformat()
    assert anomalies(bars, "spike")["flagged"] == [raw.timestamp[50].isoformat()]
    assert bars.loc[raw.timestamp[50], "low"] == 0.0001  # flagged, not changed


@pytest.mark.parametrize(
    ("kind", "option", "row", "column", "says"),
    [
        ("placeholder", "on_placeholder", 30, "volume", "placeholder bar"),
        ("zero_volume", "on_zero_volume", 20, "volume", "zero volume"),
        ("spike", "on_spike", 50, "low", "price spike: low=0.0001"),
        ("incomplete", "on_incomplete", 79, "volume", "last bar looks incomplete"),
    ],
)
def test_error_policy_stops_at_the_row_with_a_fix(kind, option, row, column, says):
    raw = raw_csv(ANOMALIES)
    with pytest.raises(DataError) as info:
        load_bars(ANOMALIES, **{option: "error"})
    err = info.value
    assert (err.file, err.row, err.column) == (str(ANOMALIES), row, column)
    assert err.timestamp == raw.timestamp[row].isoformat()
    assert says in str(err) and f"{option}=" in err.fix


@pytest.mark.parametrize("kind", ["placeholder", "zero_volume", "spike", "incomplete"])
def test_drop_keep_and_flag_policies(kind):
    option = {"zero_volume": "on_zero_volume"}.get(kind, f"on_{kind}")
    raw = raw_csv(ANOMALIES)
    [row] = expected_rows(ANOMALIES)[kind]
    stamp = raw.timestamp[row]
    others = {"on_incomplete": "keep"} if kind != "incomplete" else {}
    dropped = quiet_load(ANOMALIES, **{option: "drop"}, **others)
    assert stamp not in dropped.index and anomalies(dropped, kind)["action"] == "dropped"
    for policy in ("keep", "flag"):
        bars = quiet_load(ANOMALIES, **{option: policy}, **others)
        assert stamp in bars.index
        assert (
            bars.loc[stamp].tolist()
            == raw.loc[row, ["open", "high", "low", "close", "volume"]].tolist()
        )
        item = anomalies(bars, kind)
        assert item["policy"] == policy and item["count"] == 1
        assert item.get("flagged", []) == ([stamp.isoformat()] if policy == "flag" else [])


@pytest.mark.parametrize(
    ("path", "row", "column"), [(ANOMALIES, 50, "low"), (OPEN_SPIKE, 40, "open")]
)
def test_clip_pulls_the_spiking_price_to_the_local_median_close(path, row, column):
    raw = raw_csv(path)
    reference = float(
        np.exp(np.log(raw.close).rolling(25, center=True, min_periods=1).median()[row])
    )
    bars = quiet_load(path, on_spike="clip", on_incomplete="keep")
    bar = bars.loc[raw.timestamp[row]]
    assert bar[column] == pytest.approx(reference, rel=1e-12)
    others = [c for c in PRICES if c != column and c not in ("high", "low")]
    for c in others:
        assert bar[c] == raw.loc[row, c]
    assert bar["low"] <= min(bar["open"], bar["close"]) and bar["high"] >= max(
        bar["open"], bar["close"]
    )
    assert bar["high"] < 2 * reference and bar["low"] > reference / 2
    item = anomalies(bars, "spike")
    assert (item["action"], item["first_row"]) == ("clipped", row)
    untouched = raw.drop(index=row).set_index("timestamp")[PRICES]
    untouched.index = untouched.index.as_unit("ns")
    pd.testing.assert_frame_equal(
        bars.drop(index=raw.timestamp[row])[PRICES], untouched, check_names=False, check_freq=False
    )


def test_open_spike_is_found_on_its_column():
    with pytest.raises(DataError) as info:
        load_bars(OPEN_SPIKE, on_spike="error")
    assert (info.value.row, info.value.column) == (40, "open")
    raw = raw_csv(OPEN_SPIKE)
    reference = np.exp(np.log(raw.close).rolling(25, center=True, min_periods=1).median()[40])
    assert f"open=16199.0 is {16199.0 / reference:.3g}x the local median close" in str(info.value)
    assert expected_rows(OPEN_SPIKE)["spike"] == [40]


def test_negative_volume_drop_policy(tmp_path):
    raw = raw_csv(ANOMALIES).iloc[:40].copy()
    raw.loc[12, "volume"] = -5.0
    path = tmp_path / "neg.csv"
    raw.to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        load_bars(path)
    assert (info.value.row, info.value.column) == (12, "volume")
    assert 'on_negative_volume="drop"' in info.value.fix
    bars = quiet_load(path, on_negative_volume="drop")
    assert raw.timestamp[12] not in bars.index and len(bars) == 39
    assert anomalies(bars, "negative_volume")["rows_affected"] == 1


def test_clean_file_gives_no_warning_and_zero_counts(tmp_path):
    raw = raw_csv(ANOMALIES).iloc[:20]  # before every planted anomaly
    path = tmp_path / "clean.csv"
    raw.to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        bars = load_bars(path)
    quality = bars.attrs["quality"]
    assert all(item["count"] == 0 for item in quality["anomalies"].values())
    assert quality["rows_read"] == quality["rows_kept"] == 20


# ---------------------------------------------------------------- quality block in feature feeds


def test_quality_block_rides_into_the_feature_feed_metadata(tmp_path):
    import pyarrow.parquet as pq

    from mlstrat.features import build_feature_feed, read_feature_feed, write_feature_feed

    bars = quiet_load(ANOMALIES)
    feed = build_feature_feed(bars, "core", ["direction:1"])
    first = write_feature_feed(feed, tmp_path / "a.parquet")
    second = write_feature_feed(
        build_feature_feed(quiet_load(ANOMALIES), "core"), tmp_path / "b.parquet"
    )
    meta = json.loads(pq.read_schema(first).metadata[b"mlstrat"])
    assert meta["quality"] == bars.attrs["quality"]
    assert meta["quality"]["anomalies"]["placeholder"]["flagged"] == ["2024-05-02T06:00:00+00:00"]
    again = json.loads(pq.read_schema(second).metadata[b"mlstrat"])["quality"]
    assert json.dumps(again, sort_keys=True) == json.dumps(meta["quality"], sort_keys=True)
    assert len(json.dumps(meta["quality"])) < 2000  # small
    assert read_feature_feed(first).attrs["mlstrat"]["quality"] == bars.attrs["quality"]


# ---------------------------------------------------------------- the spike rule on real data


@pytest.mark.parametrize("name", ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT"])
def test_no_false_spikes_on_real_hourly_crypto(name):
    bars = quiet_load(shared("binance", f"{name}-1h.parquet"))
    quality = bars.attrs["quality"]["anomalies"]
    placeholders = {"SOLUSDT": 2}.get(name, 3)  # README: flat zero-volume bars at outages
    assert quality["spike"]["count"] == 0
    assert quality["placeholder"]["count"] == placeholders
    assert quality["incomplete"]["count"] == 0 and quality["zero_volume"]["count"] == 0
    assert quality["placeholder"]["flagged"][-1] == "2023-03-24T12:00:00+00:00"


def test_spike_rule_margin_on_the_real_flash_crash():
    """ADA's October 2025 flash crash wick (2.6x) stays under the 3x floor; 3x of it would not."""
    bars = quiet_load(shared("binance", "ADAUSDT-1h.parquet"))
    at = bars.index.get_loc(pd.Timestamp("2025-10-10 21:00", tz="UTC"))
    window = bars.iloc[at - 30 : at + 30]
    values = {c: window[c].to_numpy() for c in PRICES}
    masks, reference = spike_mask(values)
    assert not any(m.any() for m in masks.values())
    ratio = reference[30] / values["low"][30]
    assert 2.4 < ratio < 3.0
    values["low"] = values["low"].copy()
    values["low"][30] = reference[30] / 3.5
    masks, _ = spike_mask(values)
    assert masks["low"][30] and masks["low"].sum() == 1


def test_minute_data_has_no_spikes_or_placeholders():
    bars = quiet_load(shared("binance", "BTCUSDT-1m.parquet"))
    found = {k: v["count"] for k, v in bars.attrs["quality"]["anomalies"].items() if v["count"]}
    assert found == {}
