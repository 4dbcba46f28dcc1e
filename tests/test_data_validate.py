"""Bars contract checks: a corpus of bad files, through the API and through the CLI."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from python_lines import assert_lines_do_not_grow_with_rows

from mlstrat.data import gap_report, load_bars, validate_bars
from mlstrat.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]

HEADER = "timestamp,open,high,low,close,volume"
GOOD = [
    "2024-03-01 00:00:00+00:00,100,105,99,104,12.5",
    "2024-03-01 01:00:00+00:00,104,106.5,103,103.5,8",
    "2024-03-01 02:00:00+00:00,103.5,104,101.25,102,0",
    "2024-03-01 03:00:00+00:00,102,108,101.5,107.75,20",
    "2024-03-01 04:00:00+00:00,107.75,109,107,108.5,3.5",
    "2024-03-01 05:00:00+00:00,108.5,110,108,109,4",
]


def csv_with(tmp_path: Path, rows: list[str], name: str = "bad.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def replace(row: int, field: int, value: str) -> list[str]:
    rows = list(GOOD)
    cells = rows[row].split(",")
    cells[field] = value
    rows[row] = ",".join(cells)
    return rows


def good_frame() -> pd.DataFrame:
    frame = pd.read_csv(pd.io.common.StringIO("\n".join([HEADER, *GOOD])))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    return frame


def truncated_parquet(tmp_path: Path) -> Path:
    path = tmp_path / "cut.parquet"
    good_frame().to_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def parquet_as_csv(tmp_path: Path) -> Path:
    path = tmp_path / "really_parquet.csv"
    good_frame().to_parquet(path)
    return path


@dataclass
class Case:
    make: object  # tmp_path -> Path
    column: str | None
    row: int | None
    says: str  # text the message must contain (the problem or the fix)


CORPUS = {
    "duplicates": Case(
        lambda p: csv_with(p, GOOD[:3] + [GOOD[2].replace(",102,", ",102.5,")] + GOOD[3:]),
        "timestamp",
        3,
        'on_duplicate="keep_last"',
    ),
    "unsorted": Case(
        lambda p: csv_with(p, [GOOD[0], GOOD[2], GOOD[1], *GOOD[3:]]),
        "timestamp",
        2,
        "sort=True",
    ),
    "newest-first": Case(lambda p: csv_with(p, GOOD[::-1]), "timestamp", 1, "descending"),
    "nan": Case(lambda p: csv_with(p, replace(4, 4, "")), "close", 4, "NaN"),
    "inf": Case(lambda p: csv_with(p, replace(1, 2, "inf")), "high", 1, "infinite"),
    "not-a-number": Case(lambda p: csv_with(p, replace(2, 5, "12k")), "volume", 2, "'12k'"),
    "zero-price": Case(lambda p: csv_with(p, replace(2, 1, "0")), "open", 2, "not positive"),
    "negative-price": Case(lambda p: csv_with(p, replace(1, 3, "-1")), "low", 1, "not positive"),
    "high-below-low": Case(
        lambda p: csv_with(p, replace(3, 2, "100")), "high", 3, "high is below low"
    ),
    "close-above-high": Case(
        lambda p: csv_with(p, replace(5, 4, "111")), "high", 5, "max(open, close)"
    ),
    "open-below-low": Case(
        lambda p: csv_with(p, replace(0, 1, "98")), "low", 0, "min(open, close)"
    ),
    "negative-volume": Case(lambda p: csv_with(p, replace(5, 5, "-2")), "volume", 5, "negative"),
    "naive-timestamps": Case(
        lambda p: csv_with(p, [r.replace("+00:00", "") for r in GOOD]),
        "timestamp",
        0,
        'tz="UTC"',
    ),
    "bad-timestamp": Case(
        lambda p: csv_with(p, replace(2, 0, "yesterday")), "timestamp", 2, "cannot parse"
    ),
    "missing-column": Case(
        lambda p: csv_with(
            p, [r.rsplit(",", 1)[0] for r in GOOD], header="timestamp,open,high,low,close"
        ),
        "volume",
        None,
        "required column is missing",
    ),
    "missing-time-column": Case(
        lambda p: csv_with(
            p, [r.split(",", 1)[1] for r in GOOD], header="open,high,low,close,volume"
        ),
        "timestamp",
        None,
        "no timestamp column",
    ),
    "empty-file": Case(lambda p: _bytes(p, "empty.csv", b""), None, None, "empty"),
    "header-only": Case(lambda p: csv_with(p, []), None, None, "no data rows"),
    "truncated-parquet": Case(truncated_parquet, None, None, "truncated or corrupt"),
    "wrong-extension-parquet-in-csv": Case(parquet_as_csv, None, None, 'fmt="parquet"'),
    "wrong-extension-csv-in-parquet": Case(
        lambda p: csv_with(p, GOOD, name="text.parquet"), None, None, 'fmt="csv"'
    ),
    "unrecognised-content": Case(
        lambda p: _bytes(p, "blob.xlsx", b"PK\x03\x04" + bytes(range(256))), None, None, "fmt="
    ),
    "missing-file": Case(lambda p: p / "nowhere.csv", None, None, "file not found"),
}


def _bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_file_raises_located_data_error(tmp_path, name):
    case = CORPUS[name]
    path = case.make(tmp_path)
    with pytest.raises(DataError) as info:
        load_bars(path)
    message = str(info.value)
    assert path.name in message and info.value.file == str(path)
    assert case.says in message
    assert "Fix:" in message
    assert info.value.column == case.column
    assert info.value.row == case.row
    if case.row is not None:
        assert f"row {case.row}" in message
    if case.column is not None:
        assert f"column '{case.column}'" in message


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_file_through_cli_is_one_line_exit_2(tmp_path, capsys, name):
    from mlstrat.cli import main

    path = CORPUS[name].make(tmp_path)
    code = main(["data", "inspect", str(path)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip("\n").split("\n")
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("mlstrat data: error: ") and path.name in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


def test_cli_subprocess_one_line_no_traceback(tmp_path):
    path = CORPUS["duplicates"].make(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "mlstrat.cli", "data", "inspect", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    # the command line's fix is written as its flag (issue 13), not as a Python keyword
    assert "row 3" in result.stderr and "--on-duplicate keep_last" in result.stderr


def test_gaps_are_not_errors_but_reported(tmp_path, capsys):
    from mlstrat.cli import main

    path = csv_with(tmp_path, GOOD[:2] + GOOD[4:])  # 02:00 and 03:00 missing
    bars = load_bars(path)
    assert len(bars) == 4 and bars.attrs["timeframe"] == "1h"
    [gap] = gap_report(bars)
    assert gap.start == pd.Timestamp("2024-03-01 02:00", tz="UTC")
    assert gap.end == pd.Timestamp("2024-03-01 04:00", tz="UTC")
    assert gap.missing == 2
    assert main(["data", "inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "rows:      4" in out and "gaps:      1 runs, 2 bars missing" in out
    assert "2024-03-01T02:00:00+00:00 .. 2024-03-01T04:00:00+00:00 (2 bars missing)" in out


@pytest.mark.parametrize(("policy", "kept"), [("keep_first", 102.0), ("keep_last", 102.5)])
def test_duplicate_policies_keep_the_right_row(tmp_path, policy, kept):
    path = CORPUS["duplicates"].make(tmp_path)
    bars = load_bars(path, on_duplicate=policy)
    assert len(bars) == 6 and bars.index.is_unique
    assert bars.loc["2024-03-01 02:00", "close"].item() == kept


def test_sort_true_sorts(tmp_path):
    path = CORPUS["unsorted"].make(tmp_path)
    bars = load_bars(path, sort=True)
    assert bars.index.is_monotonic_increasing and len(bars) == 6
    assert bars["close"].tolist() == [104, 103.5, 102, 107.75, 108.5, 109]


def test_sort_then_duplicate_keeps_file_order(tmp_path):
    rows = [GOOD[2].replace(",102,", ",102.5,"), *GOOD]  # the later duplicate comes first in file
    bars = load_bars(csv_with(tmp_path, rows), sort=True, on_duplicate="keep_last")
    assert bars.loc["2024-03-01 02:00", "close"].item() == 102.0


def test_unknown_duplicate_policy():
    with pytest.raises(ConfigError):
        load_bars("x.csv", on_duplicate="drop")


def test_cli_prints_summary_for_good_file(tmp_path, capsys):
    from mlstrat.cli import main

    path = csv_with(tmp_path, GOOD, name="BTCUSDT-1h.csv")
    assert main(["data", "inspect", str(path), "--symbol", "XBTUSD"]) == 0
    out = capsys.readouterr().out
    for text in (
        "format:    csv",
        "symbol:    XBTUSD",
        "timeframe: 1h",
        "rows:      6",
        "first:     2024-03-01T00:00:00+00:00",
        "last:      2024-03-01T05:00:00+00:00",
        "gaps:      0 runs, 0 bars missing",
    ):
        assert text in out


def test_cli_options_fix_the_reported_problems(tmp_path, capsys):
    from mlstrat.cli import main

    dup = CORPUS["duplicates"].make(tmp_path)
    assert main(["data", "inspect", str(dup), "--on-duplicate", "keep_last"]) == 0
    naive = CORPUS["naive-timestamps"].make(tmp_path)
    assert main(["data", "inspect", str(naive), "--tz", "UTC", "--timeframe", "1h"]) == 0
    capsys.readouterr()


# ---------------------------------------------------------------- validate_bars directly


def test_validate_bars_canonicalises_a_frame():
    frame = good_frame().set_index("timestamp")
    frame.columns = [c.upper() for c in frame.columns]
    frame["EXTRA"] = 1
    frame.attrs["symbol"] = "BTCUSDT"
    bars = validate_bars(frame)
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert (bars.dtypes == "float64").all() and str(bars.index.dtype) == "datetime64[ns, UTC]"
    assert {k: bars.attrs[k] for k in ("symbol", "timeframe")} == {
        "symbol": "BTCUSDT",
        "timeframe": "1h",
    }
    assert bars["volume"].tolist() == [12.5, 8, 0, 20, 3.5, 4]


def test_validate_bars_timestamp_column_and_other_zone():
    frame = good_frame()
    frame["timestamp"] = frame["timestamp"].dt.tz_convert("Asia/Tokyo")
    bars = validate_bars(frame, timeframe="1h")
    assert bars.index[0] == pd.Timestamp("2024-03-01 00:00", tz="UTC")
    assert str(bars.index.tz) == "UTC"


def test_validate_reports_first_offending_row_among_many():
    frame = good_frame().set_index("timestamp")
    frame.iloc[[2, 4], frame.columns.get_loc("close")] = np.nan
    with pytest.raises(DataError) as info:
        validate_bars(frame, file="mem")
    assert info.value.row == 2 and info.value.column == "close"
    assert info.value.timestamp == "2024-03-01T02:00:00+00:00"


def _minute_bars(n: int) -> pd.DataFrame:
    index = pd.date_range("2000-01-01", periods=n, freq="min", tz="UTC")
    close = 100 + np.cumsum(np.random.default_rng(0).normal(0, 0.1, n))
    return pd.DataFrame(
        {"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1.0},
        index=index,
    )


def test_validate_is_vectorised_on_large_input():
    import time

    small, large = _minute_bars(50_000), _minute_bars(500_000)
    # no Python line per row (a load-independent check); ~0.5 s on 500k rows, and the
    # generous time bound still catches anything quadratic
    assert_lines_do_not_grow_with_rows(
        lambda: validate_bars(small), lambda: validate_bars(large), len(large) - len(small)
    )
    start = time.perf_counter()
    validate_bars(large)
    assert time.perf_counter() - start < 30.0
