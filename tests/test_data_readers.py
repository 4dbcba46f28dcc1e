"""Format readers: every format on small written fixtures and on the real shared files."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from python_lines import assert_lines_do_not_grow_with_rows

from mlstrat.data import detect_format, file_sha256, gap_report, load_bars
from mlstrat.data.readers import epoch_to_utc, symbol_from_filename
from mlstrat.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"

# Five hourly candles written by hand; every reader must give back exactly these.
TIMES = pd.DatetimeIndex(
    [
        "2024-03-01 00:00",
        "2024-03-01 01:00",
        "2024-03-01 02:00",
        "2024-03-01 03:00",
        "2024-03-01 04:00",
    ],
    tz="UTC",
    name="timestamp",
).as_unit("ns")
ROWS = [
    # open, high, low, close, volume
    (100.0, 105.0, 99.0, 104.0, 12.5),
    (104.0, 106.5, 103.0, 103.5, 8.0),
    (103.5, 104.0, 101.25, 102.0, 0.0),
    (102.0, 108.0, 101.5, 107.75, 20.125),
    (107.75, 109.0, 107.0, 108.5, 3.5),
]
EXPECTED = pd.DataFrame(ROWS, index=TIMES, columns=["open", "high", "low", "close", "volume"])
MS = [int(t.value // 1_000_000) for t in TIMES]


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared dataset {path.name} not present")
    return path


def assert_bars(bars: pd.DataFrame, expected: pd.DataFrame = EXPECTED) -> None:
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert (bars.dtypes == "float64").all()
    assert bars.index.name == "timestamp"
    assert str(bars.index.dtype) == "datetime64[ns, UTC]"
    pd.testing.assert_frame_equal(bars, expected, check_freq=False)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def binance_lines(times_ms: list[int], unit: int = 1) -> str:
    lines = []
    for t, (o, h, lo, c, v) in zip(times_ms, ROWS, strict=True):
        close_time = t + 3_599_999
        lines.append(
            f"{t * unit},{o},{h},{lo},{c},{v},{close_time * unit},{v * c},42,{v / 2},{v * c / 2},0"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- fixtures per format


def test_binance_kline_milliseconds(tmp_path):
    path = write(tmp_path / "BTCUSDT-1h-2024-03.csv", binance_lines(MS))
    assert detect_format(path) == "binance"
    bars = load_bars(path)
    assert_bars(bars)
    assert {k: bars.attrs[k] for k in ("symbol", "timeframe")} == {
        "symbol": "BTCUSDT",
        "timeframe": "1h",
    }


def test_binance_kline_microseconds(tmp_path):
    path = write(tmp_path / "ETHUSDT-1h-2025-01.csv", binance_lines(MS, unit=1000))
    assert_bars(load_bars(path))


def test_binance_kline_mixed_units_per_row(tmp_path):
    # Concatenated monthly files from before and after Binance's 2025 switch to µs.
    text = binance_lines(MS).splitlines()
    micro = binance_lines(MS, unit=1000).splitlines()
    path = write(tmp_path / "klines.csv", "\n".join(text[:2] + micro[2:]) + "\n")
    assert_bars(load_bars(path))


def test_cdd_banner_newest_first_base_volume(tmp_path):
    lines = [
        "https://www.CryptoDataDownload.com",
        "unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT,tradecount",
    ]
    for t, ts, (o, h, lo, c, v) in reversed(list(zip(MS, TIMES, ROWS, strict=True))):
        lines.append(
            f"{t},{ts.strftime('%Y-%m-%d %H:%M:%S')},BTC/USDT,{o},{h},{lo},{c},{v},{v * c},7"
        )
    path = write(tmp_path / "Binance_BTCUSDT_1h.csv", "\n".join(lines) + "\n")
    assert detect_format(path) == "cdd"
    bars = load_bars(path)
    assert_bars(bars)  # ascending, base volume (BTC), not quote volume
    assert bars.attrs["symbol"] == "BTCUSDT"


def test_cdd_volume_columns_quote_first_and_date_only(tmp_path):
    # Older CDD layout: no unix column, quote volume listed first; dates are UTC.
    lines = [
        "https://www.CryptoDataDownload.com",
        "Date,Symbol,Open,High,Low,Close,Volume USDT,Volume ETH",
    ]
    for ts, (o, h, lo, c, v) in reversed(list(zip(TIMES, ROWS, strict=True))):
        lines.append(f"{ts.strftime('%Y-%m-%d %H:%M:%S')},ETHUSDT,{o},{h},{lo},{c},{v * c},{v}")
    bars = load_bars(write(tmp_path / "cdd.csv", "\n".join(lines) + "\n"))
    assert_bars(bars)
    assert bars.attrs["symbol"] == "ETHUSDT"


def test_cdd_errors_point_at_file_rows(tmp_path):
    lines = [
        "https://www.CryptoDataDownload.com",
        "unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT",
    ]
    for t, (o, h, lo, c, v) in reversed(list(zip(MS, ROWS, strict=True))):
        lines.append(f"{t},x,BTC/USDT,{o},{h},{lo},{c},{v},{v * c}")
    # Data row 1 in the file is the 03:00 candle; blank its close.
    fields = lines[3].split(",")
    fields[6] = ""
    lines[3] = ",".join(fields)
    path = write(tmp_path / "cdd.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        load_bars(path)
    assert info.value.row == 1 and info.value.column == "close"
    assert info.value.timestamp == "2024-03-01T03:00:00+00:00"


def test_freqtrade_json(tmp_path):
    rows = [[t, *row] for t, row in zip(MS, ROWS, strict=True)]
    path = write(tmp_path / "BTC_USDT-1h.json", json.dumps(rows))
    assert detect_format(path) == "json"
    bars = load_bars(path)
    assert_bars(bars)
    assert bars.attrs["symbol"] == "BTCUSDT"


def test_freqtrade_json_gz(tmp_path):
    rows = [[t, *row] for t, row in zip(MS, ROWS, strict=True)]
    path = tmp_path / "SOL_USDT-1h.json.gz"
    with gzip.open(path, "wt") as handle:
        json.dump(rows, handle)
    assert_bars(load_bars(path))


def test_freqtrade_feather(tmp_path):
    frame = EXPECTED.reset_index().rename(columns={"timestamp": "date"})
    frame.to_feather(tmp_path / "ADA_USDT-1h.feather")
    bars = load_bars(tmp_path / "ADA_USDT-1h.feather")
    assert_bars(bars)
    assert {k: bars.attrs[k] for k in ("symbol", "timeframe")} == {
        "symbol": "ADAUSDT",
        "timeframe": "1h",
    }


def test_yahoo_uses_close_not_adjusted_close(tmp_path):
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    days = pd.date_range("2024-03-04", periods=5, freq="D", tz="UTC", name="timestamp")
    for day, (o, h, lo, c, v) in zip(days, ROWS, strict=True):
        lines.append(f"{day.date()},{o},{h},{lo},{c},{c * 0.5},{int(v * 8)}")
    path = write(tmp_path / "spy.csv", "\n".join(lines) + "\n")
    assert detect_format(path) == "yahoo"
    bars = load_bars(path)
    expected = EXPECTED.set_axis(days.as_unit("ns")).assign(volume=[100.0, 64.0, 0.0, 161.0, 28.0])
    assert_bars(bars, expected)
    # the ticker comes from the file name (issue 13)
    assert {k: bars.attrs[k] for k in ("symbol", "timeframe")} == {
        "symbol": "SPY",
        "timeframe": "1D",
    }


@pytest.mark.parametrize(
    ("header", "stamp", "kwargs"),
    [
        ("timestamp,open,high,low,close,volume", "%Y-%m-%d %H:%M:%S+00:00", {}),
        ("Date,Open,High,Low,Close,Volume,OpenInterest", "%Y-%m-%dT%H:%M:%SZ", {}),
        ("DATETIME,OPEN,HIGH,LOW,CLOSE,VOLUME", "%Y-%m-%d %H:%M", {"tz": "UTC"}),
        (",timestamp,open,high,low,close,volume,note", "%Y-%m-%d %H:%M:%S+00:00", {}),
    ],
    ids=["lower-iso-offset", "Date-Z-extra-col", "upper-naive-tz", "index-col-and-text"],
)
def test_generic_csv_variants(tmp_path, header, stamp, kwargs):
    names = header.split(",")
    lines = [header]
    for i, (ts, row) in enumerate(zip(TIMES, ROWS, strict=True)):
        cells = [ts.strftime(stamp), *map(str, row)]
        if names[0] == "":
            cells = [str(i), *cells, "hello"]
        elif len(names) == 7:
            cells.append("0")
        lines.append(",".join(cells))
    path = write(tmp_path / "data.csv", "\n".join(lines) + "\n")
    assert detect_format(path) == "csv"
    assert_bars(load_bars(path, **kwargs))


def test_generic_csv_semicolon_epoch_seconds(tmp_path):
    lines = ["time;open;high;low;close;volume"]
    for ts, row in zip(TIMES, ROWS, strict=True):
        lines.append(";".join([str(ts.value // 1_000_000_000), *map(str, row)]))
    assert_bars(load_bars(write(tmp_path / "data.txt", "\n".join(lines) + "\n")))


def test_generic_csv_separate_date_time_columns_local_zone(tmp_path):
    # 09:30 in New York in March before the DST switch is 14:30 UTC.
    text = (
        "Date,Time,Open,High,Low,Close,Volume,OpenInterest\n"
        "2024-03-01,09:30:00,10,11,9,10.5,100,0\n"
        "2024-03-01,09:35:00,10.5,10.75,10.25,10.5,50,0\n"
    )
    path = write(tmp_path / "es.txt", text)
    with pytest.raises(DataError) as info:
        load_bars(path)
    assert "tz=" in str(info.value) and info.value.column == "Date+Time"
    bars = load_bars(path, tz="America/New_York")
    assert list(bars.index) == [
        pd.Timestamp("2024-03-01 14:30", tz="UTC"),
        pd.Timestamp("2024-03-01 14:35", tz="UTC"),
    ]
    assert bars.attrs["timeframe"] == "5min"
    assert bars["close"].tolist() == [10.5, 10.5]


def test_generic_csv_offsets_across_dst(tmp_path):
    text = (
        "timestamp,open,high,low,close,volume\n"
        "2024-03-30T10:00:00+01:00,1,2,1,2,1\n"
        "2024-04-01T10:00:00+02:00,2,3,2,3,1\n"
    )
    bars = load_bars(write(tmp_path / "x.csv", text))
    assert list(bars.index) == [
        pd.Timestamp("2024-03-30 09:00", tz="UTC"),
        pd.Timestamp("2024-04-01 08:00", tz="UTC"),
    ]


def test_nonexistent_local_time_is_reported(tmp_path):
    text = "datetime,open,high,low,close,volume\n2024-03-31 02:30,1,2,1,2,1\n"
    with pytest.raises(DataError) as info:
        load_bars(write(tmp_path / "x.csv", text), tz="Europe/Berlin")
    assert info.value.row == 0 and "clock change" in str(info.value)


def test_parquet_timestamp_column_and_datetime_index(tmp_path):
    EXPECTED.reset_index().to_parquet(tmp_path / "a.parquet")
    assert_bars(load_bars(tmp_path / "a.parquet"))
    indexed = EXPECTED.astype("float32").assign(rsi_14=1.0)
    indexed.index = indexed.index.as_unit("ms")
    indexed.to_parquet(tmp_path / "b.parquet")
    assert_bars(load_bars(tmp_path / "b.parquet"))


def test_parquet_naive_needs_tz(tmp_path):
    naive = EXPECTED.copy()
    naive.index = naive.index.tz_localize(None)
    naive.to_parquet(tmp_path / "naive.parquet")
    with pytest.raises(DataError, match='tz="UTC"'):
        load_bars(tmp_path / "naive.parquet")
    assert_bars(load_bars(tmp_path / "naive.parquet", tz="UTC"))


def test_fmt_forces_reader(tmp_path):
    path = write(tmp_path / "klines.dat", binance_lines(MS))
    assert_bars(load_bars(path, fmt="binance"))
    with pytest.raises(ConfigError):
        load_bars(path, fmt="excel")


def test_explicit_symbol_and_timeframe(tmp_path):
    path = write(tmp_path / "klines.csv", binance_lines(MS))
    bars = load_bars(path, symbol="XBT", timeframe="60min")
    assert {k: bars.attrs[k] for k in ("symbol", "timeframe")} == {
        "symbol": "XBT",
        "timeframe": "1h",
    }
    with pytest.raises(DataError, match="timeframe"):
        load_bars(path, timeframe="2h")


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("BTCUSDT-1h.parquet", "BTCUSDT"),
        ("ADA_USDT-1h.feather", "ADAUSDT"),
        ("BTCUSDT-1m-2025-07.parquet", "BTCUSDT"),
        ("ETHUSDT-1h-2024-01.csv", "ETHUSDT"),
        ("Binance_BTCUSDT_1h.csv", "BTCUSDT"),
        ("BTC_USDT_USDT-4h-futures.feather", "BTCUSDT"),
        ("BTC_USDT-1h.json.gz", "BTCUSDT"),
        ("orcl-1995-2014.txt", None),
        ("2006-min-005.txt", None),
        ("data.csv", None),
    ],
)
def test_symbol_from_filename(name, symbol):
    assert symbol_from_filename(name) == symbol


def test_epoch_units_by_magnitude():
    t = pd.Timestamp("2025-01-02 03:04:05", tz="UTC")
    seconds = t.value // 10**9
    values = np.array([seconds, seconds * 10**3, seconds * 10**6, seconds * 10**9])
    assert list(epoch_to_utc(values)) == [t] * 4
    assert list(epoch_to_utc(values.astype("float64"))) == [t] * 4


def test_file_sha256_matches_hashlib(tmp_path):
    import hashlib

    path = tmp_path / "blob.bin"
    payload = bytes(range(256)) * 5000
    path.write_bytes(payload)
    assert file_sha256(path) == hashlib.sha256(payload).hexdigest()


# ---------------------------------------------------------------- real shared files


def test_real_binance_parquet_and_its_gaps():
    bars = load_bars(shared("binance", "BTCUSDT-1h.parquet"))
    assert len(bars) == 73_265
    assert {k: bars.attrs[k] for k in ("symbol", "timeframe")} == {
        "symbol": "BTCUSDT",
        "timeframe": "1h",
    }
    assert bars.index[0] == pd.Timestamp("2018-01-01 00:00", tz="UTC")
    assert bars.index[-1] == pd.Timestamp("2026-05-16 18:00", tz="UTC")
    gaps = gap_report(bars)
    assert (len(gaps), sum(g.missing for g in gaps)) == (27, 122)  # figures from the README


def test_real_parquet_loads_fast(tmp_path):
    import pyarrow.parquet as pq

    path = shared("binance", "BTCUSDT-1h.parquet")
    table = pq.read_table(path)
    small, large = tmp_path / "small.parquet", tmp_path / "large.parquet"
    pq.write_table(table.slice(0, 7_000), small)
    pq.write_table(table, large)
    # no Python line per row (a load-independent check), then a generous bound on the real
    # file (~0.15 s on two busy cores) that still catches a slow path
    assert_lines_do_not_grow_with_rows(
        lambda: load_bars(small), lambda: load_bars(large), table.num_rows - 7_000
    )
    load_bars(path)
    best = min(_timed(lambda: load_bars(path)) for _ in range(3))
    assert best < 5.0, f"73k-row Parquet took {best:.3f}s"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_real_freqtrade_feather_equals_canonical_parquet():
    feather = load_bars(shared("raw", "ADA_USDT-1h.feather"))
    canonical = load_bars(shared("binance", "ADAUSDT-1h.parquet"))
    assert {k: feather.attrs[k] for k in ("symbol", "timeframe")} == {
        "symbol": "ADAUSDT",
        "timeframe": "1h",
    }
    assert len(feather) == 70_751
    pd.testing.assert_frame_equal(feather, canonical)
    gaps = gap_report(feather)
    assert (len(gaps), sum(g.missing for g in gaps)) == (25, 88)


def test_real_yahoo_daily():
    path = shared("raw", "orcl-1995-2014.txt")
    assert detect_format(path) == "yahoo"
    bars = load_bars(path)
    assert len(bars) == 5_036 and bars.attrs["timeframe"] == "1D"
    first = bars.iloc[0]
    # File line 2: 1995-01-03,2.179012,2.191358,2.117284,2.117284,1.883304,36301200
    assert bars.index[0] == pd.Timestamp("1995-01-03", tz="UTC")
    assert first.tolist() == [2.179012, 2.191358, 2.117284, 2.117284, 36301200.0]
    assert bars.index[-1] == pd.Timestamp("2014-12-31", tz="UTC")
    assert bars["close"].iloc[-1] == 44.970001


def test_real_date_time_columns_need_tz():
    path = shared("raw", "2006-min-005.txt")
    with pytest.raises(DataError) as info:
        load_bars(path)
    assert "tz=" in str(info.value) and "2006-min-005.txt" in str(info.value)
    bars = load_bars(path, tz="Europe/Berlin")
    assert len(bars) == 2_142 and bars.attrs["timeframe"] == "5min"
    # First line: 2006-01-02,09:05:00 local (CET, UTC+1) -> 08:05 UTC.
    assert bars.index[0] == pd.Timestamp("2006-01-02 08:05", tz="UTC")
    assert bars.iloc[0].tolist() == [3578.73, 3587.88, 3578.73, 3582.99, 0.0]
    assert bars.index[-1] == pd.Timestamp("2006-01-30 16:30", tz="UTC")


@pytest.mark.parametrize("fmt", ["binance", "json", "cdd", "csv", "feather"])
def test_real_candles_round_trip_through_each_text_format(tmp_path, fmt):
    """Real BTCUSDT candles written in each layout read back identical to the Parquet."""
    source = load_bars(shared("binance", "BTCUSDT-1h.parquet")).iloc[-500:]
    ms = source.index.asi8 // 1_000_000
    o, h, lo, c, v = (source[k].map(repr).to_numpy() for k in source.columns)
    if fmt == "binance":
        text = "".join(
            f"{t * 1000},{a},{b},{d},{e},{f},{t * 1000 + 3_599_999_999},0,0,0,0,0\n"
            for t, a, b, d, e, f in zip(ms, o, h, lo, c, v, strict=True)
        )
        path = write(tmp_path / "BTCUSDT-1h-2026.csv", text)
    elif fmt == "json":
        rows = [[int(t), *map(float, r)] for t, r in zip(ms, source.to_numpy(), strict=True)]
        path = write(tmp_path / "BTC_USDT-1h.json", json.dumps(rows))
    elif fmt == "cdd":
        body = [
            f"{t},x,BTC/USDT,{a},{b},{d},{e},{f},0"
            for t, a, b, d, e, f in zip(ms, o, h, lo, c, v, strict=True)
        ][::-1]
        head = [
            "https://www.CryptoDataDownload.com",
            "unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT",
        ]
        path = write(tmp_path / "Binance_BTCUSDT_1h.csv", "\n".join(head + body) + "\n")
    elif fmt == "csv":
        path = tmp_path / "BTCUSDT-1h.csv"
        source.to_csv(path)
    else:
        path = tmp_path / "BTC_USDT-1h.feather"
        source.reset_index().rename(columns={"timestamp": "date"}).to_feather(path)
    assert detect_format(path) == fmt
    bars = load_bars(path)
    pd.testing.assert_frame_equal(bars, source)
    assert {k: bars.attrs[k] for k in ("symbol", "timeframe")} == {
        "symbol": "BTCUSDT",
        "timeframe": "1h",
    }
