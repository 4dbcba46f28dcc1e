"""Run configuration: typed parsing, key-path errors with allowed values, paths, hashing, CLI exit code."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlstrat.cache import content_hash
from mlstrat.cli import main
from mlstrat.config import (
    RunConfig,
    apply_overrides,
    load_config,
    parse_config,
    warn_horizons,
)
from mlstrat.errors import ConfigError
from mlstrat.run import run_experiment

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "datasets" / "BTCUSDT-1h.parquet"


def base_raw() -> dict:
    return {
        "name": "t",
        "data": {"files": [{"path": str(SAMPLE)}], "start": "2025-01-01", "end": "2025-03-01"},
        "features": {"set": "core", "targets": ["direction:1", "forward_volatility:24"]},
        "predictors": [
            {"name": "a", "predictor": "xgboost", "params": {"n_estimators": 10, "max_depth": 3}},
            {
                "name": "h",
                "predictor": "hybrid",
                "params": {
                    "members": [
                        ["xgboost", {"n_estimators": 5}],
                        ["lstm", {"window": 8, "units": [4], "dropout": 0.1}],
                    ]
                },
            },
        ],
        "walkforward": {"train": "60D", "test": "30D"},
        "strategy": {"class": "mlstrat.strategy:MLStrategy", "params": {"allow_short": True}},
        "broker": {"cash": 5000, "commission": 0.002},
    }


def parse(raw: dict) -> RunConfig:
    return parse_config(raw, base=REPO, source=REPO / "x.yaml")


def error_of(raw: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(raw)
    return info.value


def test_valid_config_is_typed_with_defaults_filled():
    cfg = parse(base_raw())
    assert cfg.data.symbols == ["BTCUSDT"]  # from the file name
    assert cfg.data.start == "2025-01-01T00:00:00+00:00"
    assert cfg.features.targets == ("direction:1:0", "forward_volatility:24")
    assert [p.target for p in cfg.predictors] == ["direction_1", "direction_1"]
    assert cfg.predictors[0].params == {"n_estimators": 10, "max_depth": 3}
    assert cfg.broker.cash == 5000.0 and cfg.broker.commission == 0.002
    assert cfg.broker.fill == "next_open" and cfg.broker.slippage == 0.0
    assert (cfg.seed, cfg.n_jobs, cfg.backend) == (42, -1, "loky")
    assert [p.name for p in cfg.signal_predictors] == ["a", "h"]
    assert pd.Timedelta(cfg.walkforward.describe()["train"]) == pd.Timedelta(days=60)


@pytest.mark.parametrize(
    ("mutate", "path", "allowed"),
    [
        (lambda r: r.update(seeds=1), "seeds", "allowed keys: name, seed,"),
        (
            lambda r: r["data"]["files"][0].update(symbl="X"),
            "data.files[0].symbl",
            "path, symbol, timeframe",
        ),
        (
            lambda r: r["predictors"][0]["params"].update(max_dept=4),
            "predictors[0].params.max_dept",
            "max_depth",
        ),
        (
            lambda r: r["predictors"][1]["params"]["members"][1][1].update(unitz=[3]),
            "predictors[1].params.members[1][1].unitz",
            "units",
        ),
        (lambda r: r["walkforward"].update(tset="1D"), "walkforward.tset", "train, test, step"),
        (
            lambda r: r["strategy"]["params"].update(allow_shorts=True),
            "strategy.params.allow_shorts",
            "allow_short",
        ),
        (lambda r: r.update(sizing={"params": {"methd": "afml"}}), "sizing.params.methd", "method"),
        (lambda r: r["broker"].update(comission=0.1), "broker.comission", "commission"),
        (lambda r: r.update(report={"titel": "x"}), "report.titel", "enabled, title, comparison"),
    ],
)
def test_unknown_keys_name_their_path_and_the_allowed_keys(mutate, path, allowed):
    raw = base_raw()
    mutate(raw)
    err = error_of(raw)
    assert err.problem.startswith(f"{path}: unknown key")
    assert allowed in err.fix
    assert "\n" not in str(err)


@pytest.mark.parametrize(
    ("mutate", "path", "expected"),
    [
        (lambda r: r["broker"].update(fill="open"), "broker.fill", "next_open, close"),
        (lambda r: r.update(backend="spark"), "backend", "loky, dask"),
        (lambda r: r.update(report={"log_scale": "yes"}), "report.log_scale", "auto, true, false"),
        (lambda r: r["features"].update(set="cor"), "features.set", "core, lstm, xgb"),
        (
            lambda r: r["predictors"][0].update(predictor="xgb"),
            "predictors[0].predictor",
            "xgboost",
        ),
        (lambda r: r["broker"].update(commission=1.5), "broker.commission", "0.001"),
        (lambda r: r["walkforward"].update(test="30X"), "walkforward.test", "'120D'"),
        (lambda r: r.update(n_jobs=0), "n_jobs", "-1"),
        (
            lambda r: r["predictors"][0].update(target="direction_7"),
            "predictors[0].target",
            "direction_1",
        ),
        (
            lambda r: r["predictors"][0].update(features=["rsi_14", "nope"]),
            "predictors[0].features",
            "features.set",
        ),
        (lambda r: r["predictors"][1].update(name="a"), "predictors[1].name", "unique"),
        (lambda r: r.update(sizing={"volatility": "vol"}), "sizing.volatility", "a, h"),
        (
            lambda r: r["features"].update(targets=["direction:x"]),
            "features.targets[0]",
            "kind:horizon",
        ),
        (
            lambda r: r["predictors"][1]["params"]["members"][1][1].update(layers=[4]),
            "predictors[1].params.members[1][1].layers",
            "units",
        ),
        (
            lambda r: r["predictors"][1]["params"].update(members=[["xgboost"]]),
            "predictors[1].params.members[0]",
            "pair",
        ),
    ],
)
def test_bad_values_name_their_path_and_the_allowed_values(mutate, path, expected):
    raw = base_raw()
    mutate(raw)
    err = error_of(raw)
    assert err.problem.startswith(f"{path}: ")
    assert expected in (err.fix or "") or expected in err.problem
    assert "\n" not in str(err)


def test_parsing_checks_predictor_params_without_building_a_model(monkeypatch):
    import functools

    from mlstrat.predictors.registry import get_predictor

    built: list[str] = []
    for name in ("xgboost", "hybrid", "lstm"):
        cls = get_predictor(name)

        @functools.wraps(cls.__init__)  # keeps the signature the parser reads
        def refuse(self, *args, _name=name, **kwargs):
            built.append(_name)
            raise AssertionError(f"parsing built a {_name}")

        monkeypatch.setattr(cls, "__init__", refuse)
    raw = base_raw()
    raw["predictors"][0]["params"]["task"] = "three_class"  # read from the params, not a model
    raw["features"]["targets"].append("three_class:1:0.002")
    cfg = parse(raw)
    assert built == []
    assert [p.task for p in cfg.predictors] == ["three_class", "direction"]
    assert cfg.predictors[0].target == "three_class_1"
    assert cfg.predictors[1].fit_targets == ()  # both hybrid members learn direction here
    raw["predictors"][0]["params"]["max_dept"] = 4  # names are still checked, from the signature
    assert error_of(raw).problem.startswith("predictors[0].params.max_dept: unknown key")


def test_bad_parameter_values_stop_the_run_before_anything_is_written(tmp_path):
    raw = base_raw()
    raw["predictors"][1]["params"]["members"][1][1].update(dropout=[0.1, 0.2])
    cfg = parse(raw)  # the names are right; the lstm constructor refuses the value
    with pytest.raises(ConfigError) as info:
        run_experiment(cfg, tmp_path / "out", progress=False)
    err = info.value
    assert err.problem.startswith("predictors[1].params.members[1][1]: member 1 (lstm): dropout")
    assert err.file == str(REPO / "x.yaml") and "dropout=" in err.fix
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written


def test_targets_must_match_what_the_model_learns():
    # a three-class model cannot learn a direction column ...
    raw = base_raw()
    raw["predictors"][0] = {"name": "t", "predictor": "transformer", "params": {"window": 8}}
    err = error_of(raw)
    assert err.problem.startswith("predictors[0].target: features.targets has no three_class_*")
    assert "three_class:1:0.002" in err.fix
    raw["features"]["targets"].append("three_class:1:0.002")
    assert parse(raw).predictors[0].target == "three_class_1"
    # ... and a hybrid's three-class member needs a three-class target beside the direction one
    raw = base_raw()
    raw["predictors"][1]["params"]["members"][1] = ["transformer", {"window": 8}]
    err = error_of(raw)
    assert err.problem.startswith("predictors[1].params.members[1]: member 'transformer' learns")
    assert "three_class:1:0.002" in err.fix
    raw["features"]["targets"].append("three_class:1:0.002")
    hybrid = parse(raw).predictors[1]
    assert hybrid.target.startswith("direction_") and hybrid.fit_targets == ("three_class_1",)


def test_missing_data_file_and_missing_sections():
    raw = base_raw()
    raw["data"]["files"][0]["path"] = "no/such/file.parquet"
    err = error_of(raw)
    assert err.problem.startswith("data.files[0].path: file not found")
    assert str(REPO / "no" / "such" / "file.parquet") in err.problem
    raw = base_raw()
    del raw["predictors"]
    assert error_of(raw).problem.startswith("predictors: missing")


def test_volatility_source_must_have_a_volatility_task_and_sizing_target():
    raw = base_raw()
    raw["sizing"] = {"volatility": "a", "params": {"target_vol": 0.5}}
    err = error_of(raw)
    assert err.problem.startswith("predictors[0].predictor: 'xgboost' has task 'direction'")
    raw = base_raw()
    raw["predictors"].append(
        {"name": "vol", "predictor": "volatility_lstm", "params": {"memory": 8, "units": [4]}}
    )
    raw["sizing"] = {"volatility": "vol"}
    assert error_of(raw).problem.startswith("sizing.params.target_vol: missing")
    raw["sizing"]["params"] = {"target_vol": 0.4, "periods_per_year": 8760}
    cfg = parse(raw)
    assert cfg.volatility_predictor.target == "forward_volatility_24"
    assert [p.name for p in cfg.signal_predictors] == ["a", "h"]


def test_relative_paths_are_taken_from_the_config_file_directory(tmp_path, monkeypatch):
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (tmp_path / "data").mkdir()
    data = tmp_path / "data" / "ETHUSDT-1h.parquet"
    data.write_bytes(SAMPLE.read_bytes())
    (conf_dir / "strat.py").write_text(
        "from mlstrat.strategy import MLStrategy\n\n"
        "class Mine(MLStrategy):\n    params = (('extra', 3),)\n",
        encoding="utf-8",
    )
    raw = base_raw()
    raw["data"]["files"] = ["../data/ETHUSDT-1h.parquet"]
    raw["strategy"] = {"class": "strat.py:Mine", "params": {"extra": 5}}
    (conf_dir / "run.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.chdir(REPO)  # a different working directory must not matter
    cfg = load_config(conf_dir / "run.yaml")
    assert cfg.data.files[0].path == data.resolve()
    assert cfg.data.symbols == ["ETHUSDT"]
    assert cfg.strategy.file == (conf_dir / "strat.py").resolve()
    resolved = cfg.to_dict()
    assert resolved["strategy"]["class"] == f"{(conf_dir / 'strat.py').resolve()}:Mine"
    raw["strategy"]["params"] = {"extr": 5}
    (conf_dir / "run.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"strategy\.params\.extr: unknown key"):
        load_config(conf_dir / "run.yaml")


def test_resolved_config_parses_back_to_the_same_config(tmp_path):
    cfg = parse(base_raw())
    text = cfg.to_yaml()
    (tmp_path / "resolved.yaml").write_text(text, encoding="utf-8")
    again = load_config(tmp_path / "resolved.yaml")
    assert again.to_dict() == cfg.to_dict()
    assert content_hash(again.to_dict()) == content_hash(cfg.to_dict())


def test_content_hash_ignores_key_order_and_sees_values():
    a = {"x": 1, "y": {"b": [1, 2], "a": "s"}}
    b = {"y": {"a": "s", "b": (1, 2)}, "x": 1}
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash({**a, "x": 2})
    # a strategy-only change leaves the other sections' hashes alone
    raw = base_raw()
    changed = copy.deepcopy(raw)
    changed["strategy"]["params"]["allow_short"] = False
    one, two = parse(raw), parse(changed)
    for section in ("data", "features", "predictors", "walkforward", "broker"):
        assert content_hash(one.section(section)) == content_hash(two.section(section))
    assert content_hash(one.section("strategy")) != content_hash(two.section("strategy"))


def test_overrides_set_nested_keys_before_validation():
    raw = base_raw()
    out = apply_overrides(
        raw,
        {"predictors[0].params.n_estimators": 3, "data.start": "2025-02-01", "report.title": "T"},
    )
    assert out["predictors"][0]["params"]["n_estimators"] == 3
    assert out["report"] == {"title": "T"}
    assert raw["predictors"][0]["params"]["n_estimators"] == 10  # the input is not modified
    assert parse(out).data.start == "2025-02-01T00:00:00+00:00"
    with pytest.raises(ConfigError, match="no list item 5"):
        apply_overrides(raw, {"predictors[5].name": "x"})


def test_yaml_problems_are_located(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: a\nseed: 1\nseed: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(dup)
    assert "'seed' appears twice" in info.value.problem and info.value.row == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  files: [a\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_cli_typo_is_one_line_and_exit_code_2(tmp_path, capsys):
    raw = base_raw()
    raw["predictors"][0]["params"]["max_dept"] = 4
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"mlstrat run: error: {path}: predictors[0].params.max_dept: unknown key")
    assert "did you mean 'max_depth'?" in err
    assert not (tmp_path / "out").exists()  # nothing ran


@pytest.mark.slow
def test_cli_typo_exit_code_in_a_real_process(tmp_path):
    raw = base_raw()
    raw["broker"]["fill"] = "opne"
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "mlstrat.cli", "run", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},  # this checkout, not an installed copy
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "broker.fill: 'opne' is not allowed" in lines[0]
    assert "allowed values: next_open, close" in lines[0]


def test_shipped_configs_are_valid():
    demo = load_config(REPO / "configs" / "demo.yaml")
    assert demo.data.symbols == ["BTCUSDT"] and demo.features.set == "xgb"
    assert {p.predictor for p in demo.predictors} == {
        "xgboost", "hybrid", "meta", "volatility_lstm"
    }  # fmt: skip
    assert demo.predictor("costaware").primary == "xgboost"
    assert demo.volatility_predictor is not None and demo.report.comparison
    shared = REPO.parent / "shared" / "datasets" / "binance"
    if not shared.is_dir():
        pytest.skip("shared datasets not present")
    full = load_config(REPO / "configs" / "full.yaml")
    assert full.data.symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT"]


def test_a_target_horizon_that_disagrees_with_the_holding_time_warns() -> None:
    import warnings

    from mlstrat.errors import HorizonWarning

    raw = base_raw()
    raw["strategy"]["params"]["max_hold_bars"] = 24
    with pytest.warns(HorizonWarning, match=r"'a' learns direction_1 \(1-bar horizon\) .* 24"):
        warn_horizons(parse(raw))
    raw["features"]["targets"].append("direction:24")
    for entry in raw["predictors"]:
        entry["target"] = "direction_24"  # the horizon the strategy holds
    with warnings.catch_warnings():
        warnings.simplefilter("error", HorizonWarning)
        warn_horizons(parse(raw))
        del raw["strategy"]["params"]["max_hold_bars"]  # MLStrategy: no holding limit
        warn_horizons(parse(raw))
