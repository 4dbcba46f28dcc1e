"""Config sections declared once as dataclasses: keys, plain form, checks, config parsing, CLI
flags and keyword arguments all come from the fields; the one class loader; param= errors."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import backtrader as bt
import pytest
from strategy_synth import momentum_predictions, prediction_feed, sample_bars

import mlstrat.backtest
import mlstrat.config
from mlstrat.backtest import load_sizer, load_strategy, run_backtest
from mlstrat.broker import BrokerConfig
from mlstrat.config import parse_config
from mlstrat.errors import ConfigError
from mlstrat.report.options import ReportConfig
from mlstrat.sections import add_arguments, check, from_args, from_options, keys, setting, to_dict
from mlstrat.strategy import MLStrategy

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "datasets" / "BTCUSDT-1h.parquet"


@dataclass(frozen=True)
class Toy:
    """A section declared by the test: one field per kind the declarations use."""

    level: int = setting(2, "a level", kind=int, minimum=0)
    rate: float = setting(0.5, "a rate", kind=float, valid=lambda v: 0 <= v < 1, fix="a fraction")
    mode: str = setting("fast", "a mode", choices=("fast", "slow"))
    label: str | None = setting(None, "a label")
    on: bool = setting(False, "a switch", kind=bool)
    alias: str = setting("x", "a renamed key", key="other_name", flag="--alias-flag")
    internal: int = 0  # a plain field: not a key

    def __post_init__(self) -> None:
        check(self)


def parse_section(cls: type, raw: object, path: str = "toy") -> object:
    return mlstrat.config._Parser(REPO, REPO / "x.yaml").section(cls, raw, path)


def minimal_raw(**sections: object) -> dict:
    raw = {
        "name": "s",
        "data": {"files": [{"path": str(SAMPLE)}]},
        "predictors": [{"predictor": "xgboost", "params": {"n_estimators": 5}}],
    }
    raw.update(sections)
    return raw


# ---------------------------------------------------------------------------- the declaration


def test_keys_and_plain_form_come_from_the_fields():
    assert keys(Toy) == ("level", "rate", "mode", "label", "on", "other_name")
    plain = to_dict(Toy(level=3, alias="y"))
    assert plain == {
        "level": 3,
        "rate": 0.5,
        "mode": "fast",
        "label": None,
        "on": False,
        "other_name": "y",
    }
    assert parse_section(Toy, plain) == Toy(level=3, alias="y")  # the plain form parses back


@pytest.mark.parametrize(
    ("values", "param", "problem", "fix"),
    [
        ({"level": -1}, "level", "level=-1 is out of range", "use a value >= 0"),
        ({"rate": 1.0}, "rate", "rate=1.0 is out of range", "a fraction"),
        ({"rate": "high"}, "rate", "rate='high' is not a number", "a fraction"),
        ({"mode": "fats"}, "mode", "mode='fats' is not one of fast, slow", 'mode="fast"'),
        ({"on": 1}, "on", "on=1 is not true or false", "on=True"),
        ({"label": 5}, "label", "label=5 is not a string", None),
    ],
)
def test_an_instance_checks_its_values_and_names_the_parameter(values, param, problem, fix):
    with pytest.raises(ConfigError) as info:
        Toy(**values)
    err = info.value
    assert err.param == param and err.column is None
    assert err.problem.startswith(problem)
    assert f"(parameter '{param}')" in str(err)
    assert fix is None or fix in err.fix


@pytest.mark.parametrize(
    ("raw", "path", "problem", "fix"),
    [
        ({"level": "x"}, "toy.level", "expected an integer, got 'x'", None),
        ({"level": -2}, "toy.level", "must be >= 0, got -2", None),
        ({"levle": 1}, "toy.levle", "unknown key (did you mean 'level'?)", "allowed keys: level"),
        ({"rate": 1.5}, "toy.rate", "rate=1.5 is out of range", "a fraction"),
        ({"mode": "slo"}, "toy.mode", "'slo' is not allowed (did you mean 'slow'?)", "fast, slow"),
        ({"on": "yes"}, "toy.on", "expected true or false, got 'yes'", None),
        ({"alias": "z"}, "toy.alias", "unknown key", "other_name"),
        ([1], "toy", "expected a mapping, got list", "keys: level, rate"),
    ],
)
def test_config_parsing_follows_the_declaration(raw, path, problem, fix):
    with pytest.raises(ConfigError) as info:
        parse_section(Toy, raw)
    assert info.value.problem == f"{path}: {problem}"
    assert fix is None or fix in info.value.fix
    parsed = parse_section(Toy, {"level": 4, "rate": 0, "other_name": "z", "label": None})
    assert parsed == Toy(level=4, rate=0.0, alias="z")
    assert isinstance(parsed.rate, float)  # numbers are typed as declared


def test_command_line_flags_follow_the_declaration():
    parser = argparse.ArgumentParser()
    add_arguments(parser, Toy, exclude=("label",))
    flags = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert set(flags) == {"level", "rate", "mode", "on", "alias"}
    assert flags["alias"].option_strings == ["--alias-flag"]
    assert flags["mode"].choices == ("fast", "slow") and flags["level"].type is int
    assert from_args(Toy, parser.parse_args([])) == Toy()
    args = parser.parse_args(["--level", "3", "--mode", "slow", "--on", "--alias-flag", "y"])
    assert from_args(Toy, args) == Toy(level=3, mode="slow", on=True, alias="y")
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "medium"])


def test_keyword_options_refuse_unknown_names():
    assert from_options(Toy, None, {"level": 1}, "toy option") == Toy(level=1)
    assert from_options(Toy, {"mode": "slow"}, {"level": 1}, "toy option").mode == "slow"
    base = Toy(rate=0.1)
    assert from_options(Toy, base, {}, "toy option") is base
    assert from_options(Toy, base, {"on": True}, "toy option") == Toy(rate=0.1, on=True)
    with pytest.raises(ConfigError) as info:
        from_options(Toy, None, {"levl": 1}, "toy option")
    assert info.value.problem == "unknown toy option 'levl' (did you mean 'level'?)"
    with pytest.raises(ConfigError, match="expected a Toy or a mapping"):
        from_options(Toy, 3, {}, "toy option")


# ---------------------------------------------------------------------------- the sections


def test_a_broker_field_is_a_config_key_a_cli_flag_and_a_keyword(monkeypatch):
    """Adding a broker option is one field: the config, the CLI and run_backtest follow."""

    @dataclass(frozen=True)
    class WithMargin(BrokerConfig):
        margin: float = setting(1.0, "margin requirement", kind=float, valid=lambda v: v > 0)

    monkeypatch.setattr(mlstrat.config, "BrokerConfig", WithMargin)
    cfg = parse_config(minimal_raw(broker={"margin": 2, "slippage_cap": "none"}), base=REPO)
    assert cfg.broker == WithMargin(margin=2.0, slippage_cap="none")
    assert cfg.section("broker")["margin"] == 2.0
    with pytest.raises(ConfigError) as info:
        parse_config(minimal_raw(broker={"margin": 0}), base=REPO)
    assert info.value.problem == "broker.margin: margin=0.0 is out of range"
    parser = argparse.ArgumentParser()
    add_arguments(parser, WithMargin)
    assert from_args(WithMargin, parser.parse_args(["--margin", "3"])).margin == 3.0
    assert from_options(WithMargin, None, {"margin": 4.0}, "broker option").margin == 4.0


def test_every_broker_setting_reaches_each_interface():
    from mlstrat.cli import build_parser

    names = [f.name for f in dataclasses.fields(BrokerConfig)]
    assert keys(BrokerConfig) == tuple(names)
    assert list(BrokerConfig().to_dict()) == names
    argv = ["backtest", "--feed", "f", "--out", "o"]
    args = build_parser().parse_args(argv)
    assert from_args(BrokerConfig, args) == BrokerConfig()  # CLI defaults = field defaults
    args = build_parser().parse_args(
        [*argv, "--cash", "5000", "--commission", "0.002", "--fixed-commission", "1"]
        + ["--slippage", "0.001", "--fill", "next_open", "--cheat-on-open"]
        + ["--slippage-cap", "none"]
    )
    assert from_args(BrokerConfig, args) == BrokerConfig(
        cash=5000.0,
        commission=0.002,
        fixed_commission=1.0,
        slippage=0.001,
        cheat_on_open=True,
        slippage_cap="none",
    )
    with pytest.raises(ConfigError) as info:
        parse_config(minimal_raw(broker={"comission": 0.1}), base=REPO)
    assert info.value.fix == "allowed keys: " + ", ".join(names)


def test_run_backtest_takes_a_broker_section_or_its_fields_as_keywords():
    bars = sample_bars(n=300)
    feed = prediction_feed(bars, momentum_predictions(bars))
    broker = BrokerConfig(cash=5_000.0, commission=0.002, slippage=0.0005)
    by_section = run_backtest({"BTCUSDT": feed}, MLStrategy, broker=broker)
    feed = prediction_feed(bars, momentum_predictions(bars))
    by_keywords = run_backtest(
        {"BTCUSDT": feed}, MLStrategy, cash=5_000.0, commission=0.002, slippage=0.0005
    )
    assert by_section.config["broker"] == by_keywords.config["broker"] == broker.to_dict()
    assert by_section.equity.equals(by_keywords.equity) and by_section.equity.iloc[0] == 5_000.0
    with pytest.raises(ConfigError) as info:
        run_backtest({"BTCUSDT": feed}, MLStrategy, comission=0.1)
    assert info.value.problem == "unknown broker option 'comission' (did you mean 'commission'?)"
    with pytest.raises(ConfigError) as info:
        run_backtest({"BTCUSDT": feed}, MLStrategy, commission="0.1%")
    assert info.value.param == "commission" and "is not a number" in info.value.problem


def test_report_and_walkforward_sections_check_their_values():
    with pytest.raises(ConfigError) as info:
        ReportConfig(dpi=10)
    assert info.value.param == "dpi"
    with pytest.raises(ConfigError) as info:
        ReportConfig(log_scale=1)  # 1 == True, but only true/false/auto are log scales
    assert info.value.param == "log_scale"
    with pytest.raises(ConfigError) as info:
        parse_config(minimal_raw(report={"log_scale": 1}), base=REPO)
    assert info.value.problem == "report.log_scale: 1 is not allowed"
    assert info.value.fix == "allowed values: auto, true, false"
    cfg = parse_config(minimal_raw(walkforward={"validation": 48}), base=REPO)
    assert (cfg.walkforward.train, cfg.walkforward.test) == ("4mo", "2mo")  # the run's schedule
    assert cfg.walkforward.validation == 48 and cfg.walkforward.horizon == 1
    assert "horizon" not in cfg.section("walkforward")


# ---------------------------------------------------------------------------- parameters


def test_parameter_errors_name_the_parameter_not_a_column():
    bars = sample_bars(n=200)
    feed = prediction_feed(bars, momentum_predictions(bars))
    with pytest.raises(ConfigError) as info:
        run_backtest({"BTCUSDT": feed}, MLStrategy, {"stop_los": 0.02})
    assert info.value.param == "stop_los" and info.value.column is None
    assert "(parameter 'stop_los')" in str(info.value) and "column" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        run_backtest({"BTCUSDT": feed}, MLStrategy, {"stop_loss": 2.0})
    assert info.value.param == "stop_loss" and info.value.column is None
    with pytest.raises(ConfigError) as info:
        run_backtest({"BTCUSDT": feed}, MLStrategy, sizer_params={"method": "kelly"})
    assert info.value.param == "method" and info.value.column is None


# ---------------------------------------------------------------------------- the class loader


STRATEGY = """
from mlstrat.strategy import MLStrategy

class Mine(MLStrategy):
    params = (("extra", 3),)
"""


def test_one_loader_for_files_and_modules(tmp_path, monkeypatch):
    (tmp_path / "strat.py").write_text(STRATEGY, encoding="utf-8")
    cls = load_strategy("strat.py:Mine", base=tmp_path)
    again = load_strategy(str(tmp_path / "strat.py") + ":Mine")
    digest = hashlib.sha256(str((tmp_path / "strat.py").resolve()).encode()).hexdigest()[:12]
    assert cls.__module__ == again.__module__ == f"mlstrat_user_strat_{digest}"
    assert sys.modules[cls.__module__].Mine is again
    monkeypatch.syspath_prepend(str(REPO))
    assert load_sizer("mlstrat.sizing:TieredConfidenceSizer").__name__ == "TieredConfidenceSizer"
    with pytest.raises(ConfigError) as info:
        load_sizer("strat.py:Mine", base=tmp_path)
    assert info.value.problem == "'Mine' in strat.py is not a backtrader Sizer class"
    with pytest.raises(ConfigError, match="sizer file not found"):
        load_sizer("nowhere.py:S", base=tmp_path)
    with pytest.raises(ConfigError, match="cannot import sizer module 'no_such_module'"):
        load_sizer("no_such_module:S")


def test_a_file_that_fails_while_it_runs_is_one_config_error(tmp_path):
    (tmp_path / "boom.py").write_text("import math\nmath.log(0)\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_strategy("boom.py:S", base=tmp_path)
    err = info.value
    assert err.problem == "importing 'boom.py:S' raised ValueError: math domain error"
    assert isinstance(err.__cause__, ValueError)  # the traceback stays reachable in Python
    assert not any(name.startswith("mlstrat_user_boom_") for name in sys.modules)


@pytest.mark.slow
def test_user_module_names_do_not_depend_on_the_hash_seed(tmp_path):
    (tmp_path / "strat.py").write_text(STRATEGY, encoding="utf-8")
    code = (
        "from mlstrat.backtest import load_strategy; "
        f"print(load_strategy({str(tmp_path / 'strat.py') + ':Mine'!r}).__module__)"
    )
    names = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)},
            check=True,
            timeout=120,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(names) == 1 and names.pop().startswith("mlstrat_user_strat_")


def test_the_run_reuses_the_classes_the_configuration_imported(tmp_path):
    marker = tmp_path / "imports.txt"
    (tmp_path / "strat.py").write_text(
        f"open({str(marker)!r}, 'a').write('strategy\\n')\n" + STRATEGY, encoding="utf-8"
    )
    (tmp_path / "sizer.py").write_text(
        f"open({str(marker)!r}, 'a').write('sizer\\n')\n"
        "import backtrader as bt\n\nclass Half(bt.Sizer):\n    params = (('part', 0.5),)\n",
        encoding="utf-8",
    )
    raw = minimal_raw(
        strategy={"class": "strat.py:Mine", "params": {"extra": 4}},
        sizing={"class": "sizer.py:Half", "params": {"part": 0.25}},
    )
    cfg = parse_config(raw, base=tmp_path)
    assert marker.read_text().split() == ["strategy", "sizer"]
    assert cfg.strategy.strategy_class() is cfg.strategy.loaded
    assert issubclass(cfg.sizing.sizer_class(), bt.Sizer)
    assert marker.read_text().split() == ["strategy", "sizer"]  # not imported again
    assert cfg.section("strategy")["class"] == f"{(tmp_path / 'strat.py').resolve()}:Mine"
    assert cfg.section("sizing")["class"] == f"{(tmp_path / 'sizer.py').resolve()}:Half"
    assert mlstrat.backtest.StrategyConfig.__dataclass_fields__["loaded"].compare is False
