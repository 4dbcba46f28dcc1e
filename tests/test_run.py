"""`mlstrat run`: run directory contents, stage caching, replay, kill-and-resume, the demo config."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from held_fits import held_env, released

from mlstrat.config import load_config
from mlstrat.errors import IntegrityError
from mlstrat.run import replay, run_experiment

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "datasets" / "BTCUSDT-1h.parquet"


def tiny_raw(data: Path, predictor: str = "xgboost") -> dict:
    """XGBoost on core features, ~3.5 months of hourly bars, 3 walk-forward folds."""
    return {
        "name": "tiny",
        "seed": 3,
        "n_jobs": 1,
        "data": {"files": [{"path": str(data)}], "start": "2025-01-01", "end": "2025-04-15"},
        "features": {"set": "core", "targets": ["direction:1", "forward_return:1"]},
        "predictors": [
            {
                "name": "xgb",
                "predictor": predictor,
                "params": {"n_estimators": 15, "max_depth": 3, "early_stopping_rounds": None},
            }
        ],
        "walkforward": {"train": "40D", "test": "20D", "validation": 0.25},
        "strategy": {
            "class": str(REPO / "strategies" / "tiered_long_short.py") + ":TieredLongShort",
            "params": {"allow_short": True, "max_hold_bars": 12},
        },
        "sizing": {"params": {"tiers": [[0.5, 0.25], [0.52, 0.5], [0.55, 1.0]]}},
        "broker": {"cash": 10_000, "commission": 0.001, "slippage": 0.0005},
        "report": {"title": "tiny"},
    }


def write_config(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    data = root / "BTCUSDT-1h.parquet"
    shutil.copyfile(SAMPLE, data)
    cfg = write_config(root / "tiny.yaml", tiny_raw(data))
    result = run_experiment(cfg, root / "out", progress=False)
    return root, cfg, result


def test_run_directory_holds_config_versions_data_hash_models_and_results(first):
    root, cfg_path, result = first
    out = result.out
    # resolved configuration: parses back to the configuration that ran
    assert load_config(out / "config.yaml").to_dict() == load_config(cfg_path).to_dict()
    env = json.loads((out / "environment.json").read_text())
    assert env["versions"]["python"] == platform.python_version()
    assert env["versions"]["backtrader"] == importlib.metadata.version("backtrader")
    for dist, key in (("xgboost-cpu", "xgboost"), ("tensorflow-cpu", "tensorflow")):
        try:
            expected = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            expected = importlib.metadata.version(key)
        assert env["versions"][key] == expected
    expected_sha = hashlib.sha256((root / "BTCUSDT-1h.parquet").read_bytes()).hexdigest()
    assert env["data"]["BTCUSDT"]["sha256"] == expected_sha
    lock = Path(__file__).resolve().parents[1] / "requirements-lock.txt"
    assert env["lock"]["file"] == lock.name
    assert env["lock"]["sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()
    assert isinstance(env["lock"]["differences"], dict)
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete" and info["data"]["BTCUSDT"]["sha256"] == expected_sha
    assert {s["stage"] for s in info["stages"]} == {
        "data",
        "features",
        "walkforward",
        "backtest",
        "report",
    }
    assert (out / "features" / "BTCUSDT.parquet").is_file()
    assert (out / "backtests" / "xgb" / "result" / "trades.csv").is_file()
    assert (out / "report" / "xgb" / "report.html").is_file()
    assert result.main_report == out / "report" / "xgb" / "report.html"
    assert len(result.trades()) > 0


def test_saved_models_reproduce_the_saved_predictions(first):
    """Each fold's model directory, loaded fresh, predicts its own test period exactly."""
    from mlstrat.features import feature_columns, read_feature_feed
    from mlstrat.predictors import load_predictor

    _, _, result = first
    out = result.out
    wf = out / "models" / "xgb" / "BTCUSDT"
    preds = pd.read_parquet(wf / "predictions.parquet")
    feed = read_feature_feed(out / "features" / "BTCUSDT.parquet")
    folds = sorted(p for p in (wf / "folds").iterdir() if p.name.isdigit())
    assert len(folds) == len(json.loads((wf / "folds.json").read_text())) >= 2
    for fold_dir in folds:
        model = load_predictor(fold_dir)
        rows = preds[preds["fold"] == int(fold_dir.name)]
        X = feed.loc[pd.DatetimeIndex(rows["timestamp"]), feature_columns(feed)]
        again = model.predict(X)
        np.testing.assert_array_equal(again.proba[:, 1], rows["proba_up"].to_numpy())
    # what was traded is what walk-forward predicted, bar for bar
    traded = pd.read_parquet(out / "backtests" / "xgb" / "predictions" / "BTCUSDT.parquet")
    pd.testing.assert_frame_equal(traded, preds)
    records = result.results["xgb"].records.set_index("timestamp")
    joined = preds.set_index("timestamp")["signal"].reindex(records.index)
    np.testing.assert_array_equal(records["signal"].to_numpy(), joined.to_numpy())


def test_changed_strategy_param_reuses_features_and_models(first, tmp_path):
    root, cfg_path, result = first
    first_trades = result.trades()
    assert (first_trades["direction"] < 0).any()  # the first run shorts
    fold_file = result.out / "models" / "xgb" / "BTCUSDT" / "folds" / "000" / "model.ubj"
    before = fold_file.stat()
    # a second run directory sharing the first run's cache
    second = run_experiment(
        cfg_path,
        tmp_path / "second",
        cache_dir=result.out / "cache",
        overrides={"strategy.params.allow_short": False, "report.enabled": False},
        progress=False,
    )
    assert second.status("features") == {"BTCUSDT": "cached"}
    assert second.status("walkforward") == {"xgb/BTCUSDT": "cached"}
    assert second.status("backtest") == {"xgb": "computed"}
    copy = second.out / "models" / "xgb" / "BTCUSDT" / "folds" / "000" / "model.ubj"
    assert copy.read_bytes() == fold_file.read_bytes()
    assert fold_file.stat().st_mtime_ns == before.st_mtime_ns  # not retrained
    trades = second.trades()
    assert len(trades) > 0 and (trades["direction"] > 0).all()
    # the same command again reuses every stage, report included
    third = run_experiment(
        cfg_path,
        tmp_path / "second",
        cache_dir=result.out / "cache",
        overrides={"strategy.params.allow_short": False, "report.enabled": False},
        progress=False,
    )
    assert {r.status for r in third.stages if r.stage != "data"} == {"cached"}
    # renaming the predictor keeps its models (the name is a label, not an input) and the
    # run directory drops what no longer belongs to the configuration
    renamed = run_experiment(
        cfg_path,
        tmp_path / "second",
        cache_dir=result.out / "cache",
        overrides={"predictors[0].name": "xgb2", "report.enabled": False},
        progress=False,
    )
    assert renamed.status("walkforward") == {"xgb2/BTCUSDT": "cached"}
    assert sorted(p.name for p in (renamed.out / "models").iterdir()) == ["xgb2"]
    assert sorted(p.name for p in (renamed.out / "backtests").iterdir()) == ["xgb2"]


@pytest.mark.slow
def test_replay_reproduces_identical_trades(first, tmp_path):
    _, _, result = first
    run_dir = tmp_path / "copy"
    shutil.copytree(result.out, run_dir, ignore=shutil.ignore_patterns("cache"))
    outcome = replay(run_dir, progress=False)
    assert outcome.ok and outcome.identical == {"xgb": True}
    original = (run_dir / "backtests" / "xgb" / "result" / "trades.csv").read_bytes()
    again = (run_dir / "replay" / "backtests" / "xgb" / "result" / "trades.csv").read_bytes()
    assert again == original and len(original.splitlines()) > 1
    # the replay retrained its own models from scratch, in its own cache
    assert (run_dir / "replay" / "cache" / "walkforward").is_dir()
    # a tampered result is caught
    trades = run_dir / "backtests" / "xgb" / "result" / "trades.csv"
    lines = trades.read_text().splitlines()
    lines[1] = lines[1].replace(",1.0,", ",-1.0,", 1) if ",1.0," in lines[1] else lines[1] + "0"
    trades.write_text("\n".join(lines) + "\n")
    with pytest.raises(IntegrityError, match="replay of xgb produced different trades"):
        replay(run_dir, mode="backtest", progress=False)


def test_replay_refuses_changed_data(first, tmp_path):
    root, _, result = first
    run_dir = tmp_path / "copy"
    shutil.copytree(result.out, run_dir, ignore=shutil.ignore_patterns("cache"))
    changed = tmp_path / "BTCUSDT-1h.parquet"
    bars = pd.read_parquet(root / "BTCUSDT-1h.parquet")
    bars.loc[bars.index[-1], "volume"] += 1.0
    bars.to_parquet(changed)
    info = json.loads((run_dir / "run.json").read_text())
    info["data"]["BTCUSDT"]["path"] = str(changed)
    (run_dir / "run.json").write_text(json.dumps(info))
    with pytest.raises(IntegrityError, match="changed since the run"):
        replay(run_dir, progress=False)


@pytest.mark.slow
def test_killed_run_resumes(tmp_path):
    data = tmp_path / "BTCUSDT-1h.parquet"
    shutil.copyfile(SAMPLE, data)
    raw = tiny_raw(data)
    raw["report"] = {"enabled": False}
    cfg = write_config(tmp_path / "slow.yaml", raw)
    out = tmp_path / "out"
    env = held_env(tmp_path, after=1)  # the second fold's fit waits until the kill
    cmd = [sys.executable, "-m", "mlstrat.cli", "run", str(cfg), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    first_fold = None
    while time.monotonic() < deadline and proc.poll() is None:
        done = list((out / "cache" / "walkforward").glob("*/folds/000/fold.json"))
        if done:
            first_fold = done[0].parent
            break
        time.sleep(0.1)
    assert first_fold is not None, proc.communicate()[1].decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    model_bytes = (first_fold / "model.ubj").read_bytes()

    env = released(env)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete"
    (wf,) = [s for s in info["stages"] if s["stage"] == "walkforward"]
    assert wf["status"] == "resumed"
    assert wf["detail"]["resumed"] == 1
    assert wf["detail"]["trained"] == wf["detail"]["folds"] - wf["detail"]["resumed"]
    assert (first_fold / "model.ubj").read_bytes() == model_bytes  # kept, not retrained
    # the resumed run equals a run from scratch
    again = subprocess.run(
        [sys.executable, "-m", "mlstrat.cli", "run", "--replay", str(out), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert "xgb: trades.csv identical" in again.stdout


@pytest.mark.slow
def test_demo_config_on_a_reduced_range_with_tiny_models(tmp_path):
    """configs/demo.yaml itself, cut to ~3.5 months (2 folds) and toy model sizes."""
    pytest.importorskip("tensorflow")
    tiny_keras = {"epochs": 1, "batch_size": 256, "patience": 1, "jit_compile": False}
    overrides = {
        "data.start": "2025-01-01",
        "data.end": "2025-04-20",
        "n_jobs": 1,
        "features.set": "core",
        "walkforward.train": "50D",
        "walkforward.test": "30D",
        "predictors[0].params.n_estimators": 10,
        "predictors[1].params.members": [
            [
                "lstm",
                {
                    "window": 6,
                    "units": [4],
                    "dropout": 0.1,
                    "batch_norm_layers": 0,
                    "dense_units": 4,
                    **tiny_keras,
                },
            ],
            [
                "transformer",
                {"window": 6, "d_model": 8, "n_heads": 2, "n_layers": 1, "ff_dim": 8, **tiny_keras},
            ],
        ],
        "predictors[2].params.inner": ["xgboost", {"n_estimators": 10, "max_depth": 3}],
        "predictors[3].params": {"memory": 6, "units": [4], **tiny_keras},
    }
    result = run_experiment(
        REPO / "configs" / "demo.yaml", tmp_path / "demo", overrides=overrides, progress=False
    )
    out = result.out
    assert set(result.results) == {"xgboost", "hybrid", "costaware"}
    assert result.main_report == out / "report" / "comparison" / "report.html"
    assert result.main_report.is_file()
    for name in ("xgboost", "hybrid"):
        assert (out / "report" / name / "report.html").is_file()
    # volatility targeting reads the volatility LSTM's forecast, per bar (÷ √24)
    vol = pd.read_parquet(out / "models" / "volatility" / "BTCUSDT" / "predictions.parquet")
    vol = vol.set_index("timestamp")["volatility"]
    for name in ("xgboost", "hybrid"):
        traded = pd.read_parquet(out / "backtests" / name / "predictions" / "BTCUSDT.parquet")
        expected = vol.reindex(pd.DatetimeIndex(traded["timestamp"])).to_numpy() / math.sqrt(24)
        np.testing.assert_allclose(traded["volatility"].to_numpy(), expected, rtol=1e-12, atol=0)
        assert np.isfinite(traded["volatility"]).mean() > 0.5
    _renders_in_chromium(result.main_report, out / "report" / "xgboost", tmp_path)
    hybrid_models = out / "models" / "hybrid" / "BTCUSDT" / "folds" / "000" / "members"
    assert sorted(p.name.split("_", 1)[1] for p in hybrid_models.iterdir()) == [
        "lstm",
        "transformer",
    ]
    learned = {
        p.name.split("_", 1)[1]: json.loads((p / "metadata.json").read_text())["training"]["target"]
        for p in hybrid_models.iterdir()
    }
    assert learned == {"lstm": "direction_1", "transformer": "three_class_1"}


def test_strategy_param_refused_at_backtest_time_names_its_key(first, tmp_path):
    from mlstrat.errors import ConfigError

    _, cfg_path, result = first
    with pytest.raises(ConfigError) as info:
        run_experiment(
            cfg_path,
            tmp_path / "bad",
            cache_dir=result.out / "cache",
            overrides={"strategy.params.min_tier": "top"},
            progress=False,
        )
    assert info.value.problem.startswith("strategy.params.min_tier: min_tier 'top' is not a tier")
    assert "'low', 'medium', 'high'" in info.value.fix


def _renders_in_chromium(comparison: Path, single: Path, tmp_path: Path) -> None:
    """The demo's pages as a person sees them: no errors, no requests, every image decoded."""
    browser = pytest.importorskip("test_report_browser")
    if browser.CHROMIUM is None:
        return  # test_report_browser's tests report the skip and its reason
    for page in (comparison, single / "report.html"):
        probe = browser.render(page, tmp_path, 1280)
        assert probe["errors"] == [] and probe["console"] == [] and probe["resources"] == []
        assert probe["images"] >= 1 and probe["broken"] == []
    metrics = json.loads((single / "metrics.json").read_text())
    shown = browser.render(single / "report.html", tmp_path, 390)["headline"]
    total = browser._parse_shown(shown["trading.total_return"])
    assert total == pytest.approx(metrics["trading"]["total_return"], abs=0.00006)
