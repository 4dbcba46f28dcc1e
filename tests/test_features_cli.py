"""`mlstrat features` end to end: files in, feature-feed Parquet out, errors as one line + exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstrat.cli import main
from mlstrat.features import feature_columns, read_feature_feed, target_columns

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "datasets"


def test_single_file_with_minute_data(tmp_path, capsys):
    out = tmp_path / "btc.parquet"
    code = main(
        [
            "features",
            "--data",
            str(DATA / "BTCUSDT-1h.parquet"),
            "--set",
            "xgb",
            "--target",
            "direction:1",
            "--target",
            "three_class:4:0.003",
            "--minute-data",
            str(DATA / "BTCUSDT-1m-2025-07.parquet"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    feed = read_feature_feed(out)
    assert len(feed) == 17_520
    assert len(feature_columns(feed)) >= 178 + 2 and "rv_1m" in feature_columns(feed)
    assert target_columns(feed) == ["direction_1", "three_class_4"]
    assert feed["rv_1m"].loc["2025-07-10"].notna().all()
    assert f"wrote {out}" in capsys.readouterr().out


def test_several_files_write_one_file_per_symbol(tmp_path):
    out = tmp_path / "feeds"
    files = [str(DATA / f"{s}USDT-1h.parquet") for s in ("BTC", "SOL")]
    assert main(["features", "--data", *files, "--set", "core", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["BTCUSDT-core.parquet", "SOLUSDT-core.parquet"]
    sol = read_feature_feed(out / "SOLUSDT-core.parquet")
    assert sol.attrs["mlstrat"]["symbol"] == "SOLUSDT" and target_columns(sol) == ["direction_1"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--set", "nope"], "unknown feature set 'nope'"),
        (["--target", "direction:4", "--target", "direction:4:0.01"], "would both be column"),
        (["--target", "sideways:3"], "unknown target"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, args, needle):
    code = main(
        [
            "features",
            "--data",
            str(DATA / "BTCUSDT-1h.parquet"),
            "--out",
            str(tmp_path / "x.parquet"),
            *args,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.parquet").exists()


def test_missing_data_file_is_exit_2(tmp_path, capsys):
    code = main(
        ["features", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x.parquet")]
    )
    assert code == 2 and "nope.csv" in capsys.readouterr().err


def test_list_sets(capsys):
    assert main(["features", "--list-sets"]) == 0
    out = capsys.readouterr().out
    assert "core" in out and "xgb" in out and " 17 features" in out
