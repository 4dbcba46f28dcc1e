"""Feature feeds on disk: Parquet round trip with metadata, refusals, multi-symbol builds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlstrat import __version__
from mlstrat.data import file_sha256, load_bars
from mlstrat.errors import ConfigError, DataError, SchemaError
from mlstrat.features import (
    build_feature_feed,
    build_feature_feeds,
    feature_columns,
    read_feature_feed,
    source_sha256,
    target_columns,
    write_feature_feed,
)
from mlstrat.features.feed_io import load_source

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "datasets" / "BTCUSDT-1h.parquet"


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    full = load_source(SAMPLE)
    out = full.iloc[:600].copy()
    out.attrs = dict(full.attrs)
    return out


@pytest.fixture(scope="module")
def feed(bars) -> pd.DataFrame:
    return build_feature_feed(bars, "lstm", targets=("direction:1", "three_class:4:0.003"))


def test_frame_layout_and_metadata(feed, bars):
    meta = feed.attrs["mlstrat"]
    assert feed.index.equals(bars.index)
    assert list(feed.columns[:5]) == ["open", "high", "low", "close", "volume"]
    assert list(feed.columns[-2:]) == ["direction_1", "three_class_4"]
    assert meta["feature_set"] == "lstm" and meta["set_version"] == 1
    assert meta["symbol"] == "BTCUSDT" and meta["timeframe"] == "1h"
    assert meta["mlstrat_version"] == __version__
    # load_source records the sha256 of the file the bars came from
    assert meta["source_sha256"] == file_sha256(SAMPLE)
    assert meta["targets"] == {
        "direction_1": "direction:1:0",
        "three_class_4": "three_class:4:0.003",
    }


def test_parquet_round_trip_keeps_values_and_metadata(tmp_path, feed):
    path = write_feature_feed(feed, tmp_path / "sub" / "btc.parquet")
    assert [p.name for p in path.parent.iterdir()] == ["btc.parquet"]  # no temp file left
    back = read_feature_feed(path)
    pd.testing.assert_frame_equal(back, feed, check_freq=False)
    assert back.index.tz is not None and str(back.index.tz) == "UTC"
    assert back.attrs["mlstrat"] == feed.attrs["mlstrat"]
    assert feature_columns(back) == feature_columns(feed)
    assert target_columns(back) == ["direction_1", "three_class_4"]
    raw = json.loads(pq.read_schema(path).metadata[b"mlstrat"])
    assert (
        raw["roles"]["rsi_14"] == "feature"
        and raw["source_sha256"] == feed.attrs["mlstrat"]["source_sha256"]
    )


def test_read_selected_columns(tmp_path, feed):
    path = write_feature_feed(feed, tmp_path / "f.parquet")
    part = read_feature_feed(path, columns=["rsi_14", "direction_1"])
    assert list(part.columns) == ["open", "high", "low", "close", "volume", "rsi_14", "direction_1"]
    assert feature_columns(part) == ["rsi_14"] and target_columns(part) == ["direction_1"]
    with pytest.raises(SchemaError, match="not_a_column"):
        read_feature_feed(path, columns=["not_a_column"])


def test_unknown_set_version_is_refused(tmp_path, feed):
    future = feed.copy()
    future.attrs = {**feed.attrs, "mlstrat": {**feed.attrs["mlstrat"], "set_version": 99}}
    path = write_feature_feed(future, tmp_path / "future.parquet")
    with pytest.raises(SchemaError) as err:
        read_feature_feed(path)
    text = str(err.value)
    assert "future.parquet" in text and "version 99" in text and "known versions: [1]" in text
    unknown = feed.copy()
    unknown.attrs = {**feed.attrs, "mlstrat": {**feed.attrs["mlstrat"], "feature_set": "mystery"}}
    with pytest.raises(SchemaError, match="'mystery'"):
        read_feature_feed(write_feature_feed(unknown, tmp_path / "mystery.parquet"))


def test_files_without_metadata_or_damaged_are_refused(tmp_path, feed):
    plain = tmp_path / "plain.parquet"
    feed.reset_index().to_parquet(plain)
    with pytest.raises(SchemaError, match="no mlstrat metadata") as err:
        read_feature_feed(plain)
    assert "plain.parquet" in str(err.value)
    good = write_feature_feed(feed, tmp_path / "good.parquet")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="broken.parquet"):
        read_feature_feed(broken)
    with pytest.raises(DataError, match="no such"):
        read_feature_feed(tmp_path / "missing.parquet")


def test_write_refuses_columns_without_a_role(tmp_path, feed):
    extra = feed.copy()
    extra["my_col"] = 1.0
    with pytest.raises(SchemaError, match="my_col"):
        write_feature_feed(extra, tmp_path / "x.parquet")
    with pytest.raises(SchemaError, match="no mlstrat column roles"):
        feature_columns(pd.DataFrame({"a": [1.0]}))


def test_source_sha256_without_a_recorded_file(bars):
    loose = bars.copy()
    loose.attrs = {"symbol": "BTCUSDT", "timeframe": "1h"}
    first = source_sha256(loose)
    assert first == source_sha256(loose.copy()) and len(first) == 64
    moved = loose.copy()
    moved.iloc[5, 3] *= 1.0001
    assert source_sha256(moved) != first


def test_bad_bars_are_schema_errors(bars):
    with pytest.raises(SchemaError, match="volume"):
        build_feature_feed(bars.drop(columns="volume"))
    with pytest.raises(SchemaError, match="time-zone aware"):
        build_feature_feed(bars.reset_index())
    with pytest.raises(SchemaError, match="strictly increasing"):
        build_feature_feed(bars.iloc[::-1])


def test_build_feature_feeds_over_several_symbols():
    paths = [REPO / "datasets" / f"{s}USDT-1h.parquet" for s in ("BTC", "ETH")]
    got = dict(build_feature_feeds(paths, "core", ("direction:1",), progress=False))
    assert list(got) == ["BTCUSDT", "ETHUSDT"]
    assert got["ETHUSDT"].attrs["mlstrat"]["source_sha256"] == file_sha256(paths[1])
    assert not np.allclose(got["BTCUSDT"]["close"].iloc[:10], got["ETHUSDT"]["close"].iloc[:10])
    with pytest.raises(ConfigError, match="appears twice"):
        list(build_feature_feeds([paths[0], paths[0]], "core", progress=False))


def test_minute_data_must_overlap_the_bars(bars):
    minutes = load_bars(REPO / "datasets" / "BTCUSDT-1m-2025-07.parquet").iloc[:500]
    with pytest.raises(ConfigError, match="cover none of the bars"):
        build_feature_feed(bars, "core", minute_bars=minutes)
    with pytest.raises(ConfigError, match="shorter"):
        build_feature_feed(minutes, "core", minute_bars=bars)
