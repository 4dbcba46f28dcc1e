"""One declaration of data options, in every entry point, with fixes in each one's own syntax."""

from __future__ import annotations

import argparse
import warnings
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlstrat.cli import build_parser, main
from mlstrat.config import FILE_KEYS, load_config, parse_config
from mlstrat.data import load_bars
from mlstrat.data.options import DataOptions, cli_flag, config_key, option_names
from mlstrat.errors import (
    CliSyntax,
    ConfigError,
    ConfigSyntax,
    DataError,
    DataQualityWarning,
    Fix,
    OneOf,
    Setting,
)

REPO = Path(__file__).resolve().parents[1]
FIX = REPO / "tests" / "fixtures" / "data_quality"
ANOMALIES = FIX / "XYZUSDT-1h-anomalies.csv"
SAMPLE = REPO / "datasets" / "BTCUSDT-1h.parquet"

HEADER = "timestamp,open,high,low,close,volume"
ROWS = [
    "2024-03-01 00:00:00+00:00,100,105,99,104,12.5",
    "2024-03-01 01:00:00+00:00,104,106.5,103,103.5,8",
    "2024-03-01 02:00:00+00:00,103.5,104,101.25,102,3",
    "2024-03-01 02:00:00+00:00,103.5,104,101.25,102.5,3",  # conflicting duplicate, row 3
    "2024-03-01 03:00:00+00:00,102,108,101.5,107.75,20",
]


def conflicting_csv(tmp_path: Path, name: str = "dup.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *ROWS]) + "\n")
    return path


def naive_csv(tmp_path: Path) -> Path:
    path = tmp_path / "naive.csv"
    rows = [r.replace("+00:00", "") for r in ROWS[:3]]
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def subparser(command: str, *sub: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in (command, *sub):
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def flags_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: a for a in parser._actions for flag in a.option_strings}


# ---------------------------------------------------------------- one declaration


@pytest.mark.parametrize(
    "command",
    [("data", "inspect"), ("features",), ("train",), ("walkforward",), ("backtest",)],
    ids=lambda c: " ".join(c),
)
def test_every_command_that_reads_candles_has_every_data_flag(command):
    flags = flags_of(subparser(*command))
    for spec in fields(DataOptions):
        if command == ("backtest",) and spec.name == "symbol":
            assert flags["--symbol"].dest == "symbol"  # backtest's own per-feed --symbol
            continue
        action = flags[cli_flag(spec.name)]
        assert action.dest == spec.name
        assert action.default == spec.default
        if spec.metadata["choices"]:
            assert tuple(action.choices) == spec.metadata["choices"]


def test_config_keys_and_python_kwargs_come_from_the_same_declaration():
    names = option_names()
    assert {config_key(n) for n in names} - {"symbol"} <= set(FILE_KEYS)
    assert config_key("fmt") == "format" and cli_flag("on_duplicate") == "--on-duplicate"
    assert "on_spike" in FILE_KEYS and "calendar" in FILE_KEYS and "adjust" in FILE_KEYS
    for name in names:
        assert f"    {name} (default " in load_bars.__doc__


def test_unknown_or_bad_python_option_is_a_config_error_with_the_choices():
    with pytest.raises(ConfigError) as info:
        load_bars(SAMPLE, on_spikes="drop")
    assert "did you mean 'on_spike'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_bars(SAMPLE, on_spike="drop_it")
    assert "on_spike='drop_it' is not one of keep, flag, drop, error, clip" in str(info.value)
    assert 'on_spike="keep"' in info.value.fix


def test_cli_refuses_a_bad_choice(capsys):
    with pytest.raises(SystemExit) as info:
        main(["data", "inspect", str(SAMPLE), "--on-spike", "drop_it"])
    assert info.value.code == 2
    assert "invalid choice: 'drop_it'" in capsys.readouterr().err


def test_run_config_validates_every_option_and_round_trips(tmp_path):
    raw = {
        "data": {
            "files": [
                {"path": str(SAMPLE), "on_spike": "clip", "calendar": "24/7", "sort": True},
            ]
        },
        "predictors": [{"name": "a", "predictor": "xgboost"}],
    }
    config = parse_config(raw, base=REPO, source=REPO / "x.yaml")
    file = config.data.files[0]
    assert file.options.on_spike == "clip" and file.options.sort is True
    assert file.load_options()["on_spike"] == "clip" and file.load_options()["symbol"] == "BTCUSDT"
    again = parse_config(config.to_dict(), base=REPO, source=REPO / "x.yaml")
    assert again.data.files == config.data.files
    raw["data"]["files"][0]["on_spike"] = "drop_it"
    with pytest.raises(ConfigError) as info:
        parse_config(raw, base=REPO, source=REPO / "x.yaml")
    assert str(info.value).count("data.files[0].on_spike") == 1
    assert "allowed values: keep, flag, drop, error, clip" in info.value.fix
    raw["data"]["files"][0]["on_spike"] = "flag"
    raw["data"]["files"][0]["adjust"] = "yes"
    with pytest.raises(ConfigError, match=r"data.files\[0\].adjust: expected true or false"):
        parse_config(raw, base=REPO, source=REPO / "x.yaml")


# ---------------------------------------------------------------- fixes in the caller's syntax


def test_fix_renders_per_syntax():
    fix = Fix("{} or {}", Setting("on_duplicate", "keep_last"), Setting("sort", True))
    assert fix.render() == 'pass on_duplicate="keep_last" or sort=True'
    assert fix.render(CliSyntax()) == "pass --on-duplicate keep_last or --sort"
    assert (
        fix.render(ConfigSyntax("data.files[2]"))
        == "set data.files[2].on_duplicate: keep_last or data.files[2].sort: true"
    )
    assert Fix("{}", Setting("fmt", "csv")).render(ConfigSyntax("data", {"fmt": "format"})) == (
        "set data.format: csv"
    )
    assert Fix("{}", Setting("tz", "America/New_York")).render(CliSyntax()) == (
        "pass --tz America/New_York"
    )
    any_format = Fix("check the file, or {verb} {}", Setting("fmt", OneOf(("csv", "cdd"))))
    assert any_format.render() == 'check the file, or pass fmt= one of "csv", "cdd"'
    assert any_format.render(CliSyntax()) == "check the file, or pass --fmt {csv,cdd}"
    assert any_format.render(ConfigSyntax("data.files[0]", {"fmt": "format"})) == (
        "check the file, or set data.files[0].format: one of csv, cdd"
    )


def test_unreadable_file_names_the_format_flag_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "prices.json"
    path.write_text("[1, 2,")
    assert main(["data", "inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        "Fix: re-export the file, or pass --fmt {parquet,feather,json,csv,binance,cdd,yahoo}" in err
    )
    with pytest.raises(DataError, match='or pass fmt= one of "parquet", "feather"'):
        load_bars(path)


def test_same_fault_python_fix(tmp_path):
    with pytest.raises(DataError) as info:
        load_bars(conflicting_csv(tmp_path))
    assert (
        info.value.fix == 'pass on_duplicate="keep_last" or on_duplicate="keep_first" (file order)'
    )
    with pytest.raises(DataError) as info:
        load_bars(naive_csv(tmp_path))
    assert info.value.fix.startswith('pass tz="UTC" (or the zone')


@pytest.mark.parametrize(
    "command",
    [
        ["data", "inspect", "{path}"],
        ["features", "--data", "{path}", "--out", "{out}"],
        ["train", "--data", "{path}", "--predictor", "xgboost", "--target", "direction_1"]
        + ["--out", "{out}"],
        ["walkforward", "--data", "{path}", "--out", "{out}"],
        ["backtest", "--data", "{path}", "--out", "{out}"],
    ],
    ids=lambda c: c[0],
)
def test_same_fault_cli_fix_is_written_as_flags(tmp_path, capsys, command):
    for path, fix in [
        (
            conflicting_csv(tmp_path),
            "Fix: pass --on-duplicate keep_last or --on-duplicate keep_first",
        ),
        (naive_csv(tmp_path), "Fix: pass --tz UTC (or the zone"),
    ]:
        argv = [a.format(path=path, out=tmp_path / "out") for a in command]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith(f"mlstrat {command[0]}: error: ")
        assert path.name in err and fix in err
        assert "on_duplicate=" not in err and 'tz="' not in err
    assert not (tmp_path / "out").exists()


def test_same_fault_config_fix_names_the_file_key(tmp_path):
    good, bad, naive = SAMPLE, conflicting_csv(tmp_path, "BAD.csv"), naive_csv(tmp_path)
    raw = {
        "data": {"files": [{"path": str(good)}, {"path": str(bad)}, {"path": str(naive)}]},
        "predictors": [{"name": "a", "predictor": "xgboost"}],
    }
    raw["data"]["files"][2]["symbol"] = "NAIVE"
    config = parse_config(raw, base=tmp_path, source=tmp_path / "run.yaml")
    with pytest.raises(DataError) as info:
        config.data.files[1].load()
    assert info.value.fix == (
        "set data.files[1].on_duplicate: keep_last or data.files[1].on_duplicate: keep_first "
        "(file order)"
    )
    with pytest.raises(DataError) as info:
        config.data.files[2].load()
    assert info.value.fix.startswith("set data.files[2].tz: UTC (or the zone")
    # outside the config's context the same fault is written for Python again
    with pytest.raises(DataError, match='on_duplicate="keep_last"'):
        load_bars(bad)


def test_mlstrat_run_reports_the_config_key_to_change(tmp_path, capsys):
    bad = conflicting_csv(tmp_path, "BAD.csv")
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "t",
                "data": {"files": [{"path": bad.name}]},
                "predictors": [{"name": "a", "predictor": "xgboost"}],
            }
        )
    )
    load_config(config)  # the configuration itself is fine; the data file is not
    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "BAD.csv" in err and "data.files[0].on_duplicate: keep_last" in err
    assert "on_duplicate=" not in err


# ---------------------------------------------------------------- the flags do what they say


def test_features_takes_tz_and_on_duplicate_its_own_error_asked_for(tmp_path, capsys):
    path = tmp_path / "XYZUSDT-1h.csv"
    frame = pd.read_csv(ANOMALIES).iloc[:60]
    frame["timestamp"] = frame["timestamp"].str.replace("Z", "")  # no zone
    changed = frame.iloc[[10]].assign(volume=frame.volume[10] + 1)  # same hour, other volume
    pd.concat([frame.iloc[:11], changed, frame.iloc[11:]]).to_csv(path, index=False)
    out = tmp_path / "f.parquet"
    assert main(["features", "--data", str(path), "--out", str(out)]) == 2
    assert "--tz UTC" in capsys.readouterr().err
    assert main(["features", "--data", str(path), "--out", str(out), "--tz", "UTC"]) == 2
    assert "--on-duplicate keep_last" in capsys.readouterr().err
    argv = ["--tz", "UTC", "--on-duplicate", "keep_last", "--on-placeholder", "drop"]
    assert main(["features", "--data", str(path), "--out", str(out), *argv]) == 0
    captured = capsys.readouterr()
    from mlstrat.features import read_feature_feed

    feed = read_feature_feed(out)
    quality = feed.attrs["mlstrat"]["quality"]["anomalies"]
    assert quality["conflicting_duplicate"]["policy"] == "keep_last"
    assert quality["placeholder"]["action"] == "dropped" and len(feed) == 59
    assert feed.loc[feed.index[10], "volume"] == frame.volume[10] + 1  # the later row
    # what was found is said on stderr, one line per file, not as a Python warning dump
    warning = [line for line in captured.err.splitlines() if "data quality" in line]
    assert len(warning) == 1 and warning[0].startswith("mlstrat features: warning: ")
    assert (
        "Fix: pass --on-spike drop to remove them; `mlstrat data inspect` lists them" in warning[0]
    )


def test_data_inspect_applies_policies(capsys):
    assert (
        main(["data", "inspect", str(ANOMALIES), "--on-spike", "clip", "--on-incomplete", "keep"])
        == 0
    )
    out = capsys.readouterr().out
    assert "rows:      80 (80 read)" in out
    assert "spike                       1  policy clip, 1 clipped; first row 50" in out
    assert "placeholder                 1  policy flag, 1 flagged; first row 30" in out
    assert "    flagged: 2024-05-02T06:00:00+00:00" in out


@pytest.mark.slow
def test_train_walkforward_backtest_from_a_candle_file_with_data_flags(tmp_path, capsys):
    import json

    slice_path = tmp_path / "BTCUSDT-1h.parquet"
    bars = load_bars(SAMPLE).iloc[:3000]
    bars.reset_index().to_parquet(slice_path)
    common = ["--on-incomplete", "error", "--calendar", "24/7"]
    model = tmp_path / "model"
    argv = ["train", "--data", str(slice_path), "--predictor", "xgboost", "--target", "direction_1"]
    assert main([*argv, "--param", "n_estimators=5", "--out", str(model), *common]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["features"] == 17 and summary["target"] == "direction_1"
    wf = tmp_path / "wf"
    argv = ["walkforward", "--data", str(slice_path), "--train", "1500", "--test", "1000"]
    argv += ["--param", "n_estimators=5", "--n-jobs", "1", "--quiet", "--out", str(wf), *common]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["folds"] >= 1
    from mlstrat.features import read_metadata

    assert read_metadata(wf / "features.parquet")["quality"]["anomalies"]["incomplete"] == {
        "count": 0,
        "policy": "error",
    }
    argv = ["backtest", "--data", str(slice_path), "--predictions", str(wf / "predictions.parquet")]
    assert main([*argv, "--out", str(tmp_path / "bt"), "--start", "2024-06-01", *common]) == 0
    in_range = int((bars.index >= pd.Timestamp("2024-06-01", tz="UTC")).sum())
    assert f"BTCUSDT: {in_range} bars" in capsys.readouterr().out and in_range < 3000


def test_options_object_round_trip():
    options = DataOptions(on_spike="clip", tz="UTC")
    assert DataOptions(**options.as_dict()) == options
    assert options.replace(on_spike="drop").on_spike == "drop" and options.on_spike == "clip"
    assert set(options.policies()) == {n for n in option_names() if n.startswith("on_")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        bars = load_bars(ANOMALIES, **options.as_dict())
    assert bars.attrs["quality"]["anomalies"]["spike"]["action"] == "clipped"
