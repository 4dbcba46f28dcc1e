"""The cost plan before a run (`mlstrat run CONFIG --plan`) and the run's ETA from it.

The arithmetic of the cost model is checked by hand; the calibration on a small
real configuration is checked against the fold counts the walk-forward schedule
gives and against what the CLI prints and stores.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import yaml

from mlstrat.cli import main
from mlstrat.config import parse_config
from mlstrat.data import load_bars
from mlstrat.plan import (
    TYPICAL_BEST_EPOCH,
    EtaModel,
    ModelPlan,
    NetworkCost,
    Plan,
    _network_cost,
    calibration_params,
    plan_experiment,
    read_plan,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "datasets" / "BTCUSDT-1h.parquet"
TINY_LSTM = {"window": 8, "units": [4], "dropout": 0.0, "batch_norm_layers": 0, "epochs": 3}


def _raw(**extra) -> dict:
    raw = {
        "name": "plan",
        "n_jobs": 2,
        "data": {"files": [{"path": str(SAMPLE)}], "start": "2025-01-01", "end": "2025-04-15"},
        "features": {"set": "core", "targets": ["direction:1"]},
        "predictors": [
            {"predictor": "xgboost", "params": {"n_estimators": 5, "max_depth": 2}},
            {"predictor": "lstm", "params": TINY_LSTM, "warm_start": True},
        ],
        "walkforward": {"train": "30D", "test": "15D"},
        "strategy": {"class": "mlstrat.strategy:MLStrategy"},
    }
    raw.update(extra)
    return raw


def _network(**kw) -> NetworkCost:
    base = {"name": "lstm", "setup": 1.0, "trace": 3.0, "epoch": 2.0, "epochs_expected": 13,
            "epochs_max": 50, "warm_epochs_expected": 4, "warm_epochs_max": 10}  # fmt: skip
    return NetworkCost(**{**base, **kw})


# ---------------------------------------------------------------------------- the cost model


def test_network_cost_from_calibration_timing_by_hand() -> None:
    timing = {"setup": 0.5, "epochs": [5.0, 2.0], "validation": [0.6, 0.5], "parameters": 99}
    cost = _network_cost(("lstm", {"epochs": 50, "patience": 10}), timing, (4.0, 2.0))
    # tracing: 5 - 2; a full epoch: training part (2 - 0.5) x 4 + validation 0.5 x 2
    assert (cost.setup, cost.trace, cost.epoch) == (0.5, 3.0, 7.0)
    # early stopping: the typical best epoch + patience 10; warm: 50 // 5 = 10 epochs,
    # patience 10 // 3
    expected = TYPICAL_BEST_EPOCH + 10
    assert (cost.epochs_expected, cost.epochs_max) == (expected, 50)
    assert (cost.warm_epochs_expected, cost.warm_epochs_max) == (4, 10)
    assert cost.parameters == 99
    assert cost.seconds() == 0.5 + 3.0 + expected * 7.0
    assert cost.seconds(warm=True, maximum=True) == 0.5 + 3.0 + 10 * 7.0
    short = _network_cost(("lstm", {"epochs": 5, "patience": 2}), timing, (1.0, 1.0))
    assert short.epochs_expected == 5  # capped by the budget


def test_model_seconds_cold_in_parallel_warm_as_one_chain() -> None:
    cold = ModelPlan("m", "lstm", {"A": 5, "B": 4}, False, rest=2.0, networks=[_network()])
    per_fold = 2.0 + 1.0 + 3.0 + 13 * 2.0  # 32
    assert cold.seconds_per_fold() == per_fold
    # 2 workers: ceil(5 / 2) + ceil(4 / 2) rounds of one fold each
    assert cold.seconds(2) == (3 + 2) * per_fold
    warm = ModelPlan("m", "lstm", {"A": 5}, True, rest=2.0, networks=[_network()])
    warm_fold = 2.0 + 1.0 + 3.0 + 4 * 2.0  # 14
    assert warm.seconds(2) == per_fold + 4 * warm_fold  # the first fold cold, then warm
    assert warm.seconds(2, maximum=True) == (2 + 4 + 50 * 2) + 4 * (2 + 4 + 10 * 2)
    plan = Plan("c.yaml", "h", [cold, warm], 2, 1, 2, "A", 10.0, (1.0, 1.0))
    assert plan.total_seconds == cold.seconds(2) + warm.seconds(2)
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again.total_seconds == plan.total_seconds and again.models[1].warm_start


def test_eta_model_by_hand() -> None:
    plan = Plan("c.yaml", "h", [ModelPlan("a", "xgboost", {"X": 5}, False, rest=10.0)], 2, 1, 2,
                "X", 1.0, (0.0, 0.0))  # fmt: skip
    eta = EtaModel(2, plan)
    eta.add("a", "X", 5)
    assert eta.remaining() == math.ceil(5 / 2) * 10.0
    eta.add("b", "X", 3, warm=True)
    assert eta.remaining() is None and eta.text() == "ETA ?"  # b not timed yet
    eta.finished("b", "X", 20.0)  # measured: 20 s per fold, 2 left in one chain
    assert eta.remaining() == 30.0 + 2 * 20.0
    eta.finished("a", "X", 4.0)  # a's own folds replace the plan's 10 s
    eta.finished("a", "X", 6.0)
    assert eta.remaining() == math.ceil(3 / 2) * 5.0 + 40.0
    eta.add("a", "X", 0)
    assert eta.text() == "ETA 40 s"


def test_calibration_params_shorten_keras_networks_only() -> None:
    assert calibration_params("xgboost", {"n_estimators": 7}) == {"n_estimators": 7}
    lstm = calibration_params("lstm", {"epochs": 50, "patience": 10, "window": 9})
    assert lstm == {"epochs": 2, "patience": 2, "window": 9}
    hybrid = calibration_params(
        "hybrid", {"members": [["lstm", {"epochs": 50}], ["xgboost", {"n_estimators": 3}]]}
    )
    assert hybrid["members"] == [
        ["lstm", {"epochs": 2, "patience": 2}],
        ["xgboost", {"n_estimators": 3}],
    ]
    assert calibration_params("volatility_lstm", {"tune": True})["tune"] is False


# ---------------------------------------------------------------------------- calibration


@pytest.fixture(scope="module")
def plan() -> Plan:
    cfg = parse_config(_raw(), base=REPO, source=REPO / "plan.yaml")
    return plan_experiment(cfg)


@pytest.mark.slow
def test_plan_counts_the_schedule_s_folds_and_calibrates_every_model(plan) -> None:
    from mlstrat.walkforward import WalkForward

    bars = load_bars(SAMPLE)
    index = bars.index[(bars.index >= "2025-01-01") & (bars.index <= "2025-04-15")]
    expected = len(WalkForward(train="30D", test="15D", horizon=1).split(index))
    assert expected >= 4
    xgb, lstm = plan.models
    assert xgb.folds == {"BTCUSDT": expected} and lstm.folds == {"BTCUSDT": expected}
    assert xgb.networks == [] and xgb.rest > 0
    (net,) = lstm.networks
    assert net.name == "lstm" and net.epoch > 0 and net.parameters > 0
    assert (net.epochs_max, net.warm_epochs_max) == (3, 1)  # 3 // 5 -> at least 1
    assert lstm.warm_start and not xgb.warm_start
    assert plan.workers == 2 and plan.total_seconds > 0
    assert plan.total_seconds <= plan.max_seconds
    text = plan.format()
    assert "xgboost" in text and "lstm [warm]" in text and "total:" in text
    assert lstm.memory_mb > xgb.memory_mb > 0


@pytest.mark.slow
def test_cli_plan_prints_and_keeps_the_plan_the_run_then_shows_an_eta(tmp_path, capsys) -> None:
    raw = copy.deepcopy(_raw())
    raw["predictors"] = raw["predictors"][:1]
    config = tmp_path / "plan.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert main(["run", str(config), "--plan", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "s/fold" in printed and "plan kept in" in printed
    from mlstrat.cache import content_hash
    from mlstrat.config import load_config

    stored = read_plan(out / "plan.json", content_hash(load_config(config).to_dict()))
    assert stored is not None and stored.models[0].name == "xgboost"
    assert read_plan(out / "plan.json", "another config") is None

    assert main(["run", str(config), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("walk-forward:")]
    assert lines and all("ETA" in line for line in lines), err
    assert (out / "plan.json").is_file()  # kept by the run's pruning


def test_plan_of_a_bad_configuration_is_one_line_and_exit_2(tmp_path, capsys) -> None:
    raw = _raw()
    raw["predictors"][0]["warm_start"] = True  # xgboost cannot warm-start
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["run", str(config), "--plan", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "predictors[0].warm_start" in err[0]
    assert not (tmp_path / "o").exists()

    raw = _raw()
    raw["data"]["end"] = "2025-01-20"  # shorter than one 30-day training window
    config.write_text(yaml.safe_dump(raw))
    assert main(["run", str(config), "--plan", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "too short for one fold" in err[0]
    assert not (tmp_path / "o").exists()
