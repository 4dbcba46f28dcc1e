"""Experiment tracking with MLflow (the `track` extra), against a local file store: a run,
its folds and a sweep's trials are logged as runs with parameters, metrics and files (no
pickled objects); a wrong URI or a missing MLflow stops before any work."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from test_config import base_raw, parse
from test_run import SAMPLE, tiny_raw, write_config

from mlstrat.errors import ConfigError
from mlstrat.tracking import Tracker, TrackingConfig, flatten, open_tracker, track_sweep

mlflow = pytest.importorskip("mlflow", reason="the track extra (mlflow-skinny) is not installed")


def client_of(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def runs_of(uri: str, experiment: str) -> list:
    client = client_of(uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], max_results=1000)


def artifact_files(client, run_id: str, folder: str = "") -> list[str]:
    out = []
    for item in client.list_artifacts(run_id, folder or None):
        out += artifact_files(client, run_id, item.path) if item.is_dir else [item.path]
    return out


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    from mlstrat.run import run_experiment

    root = tmp_path_factory.mktemp("tracked")
    data = root / "BTCUSDT-1h.parquet"
    shutil.copyfile(SAMPLE, data)
    raw = tiny_raw(data)
    uri = (root / "mlruns").as_uri()
    raw["tracking"] = {"uri": uri, "experiment": "tiny-experiment"}
    cfg = write_config(root / "tracked.yaml", raw)
    return uri, cfg, run_experiment(cfg, root / "out", progress=False)


@pytest.mark.slow
def test_a_run_is_logged_with_its_config_metrics_reports_and_manifests(tracked):
    uri, _, result = tracked
    out = result.out
    runs = runs_of(uri, "tiny-experiment")
    parents = [r for r in runs if r.data.tags.get("mlstrat.kind") == "run"]
    assert len(parents) == 1
    parent = parents[0]
    info = json.loads((out / "run.json").read_text())
    assert info["tracking"]["mlflow_run"] == parent.info.run_id
    assert parent.info.run_name == "tiny" and parent.info.status == "FINISHED"
    params = parent.data.params
    assert params["predictors.0.params.max_depth"] == "3"
    assert params["walkforward.train"] == "40D" and params["seed"] == "3"
    metrics = json.loads((out / "report" / "xgb" / "metrics.json").read_text())
    for key in ("sharpe", "total_return", "max_drawdown", "n_trades"):
        assert parent.data.metrics[f"xgb.{key}"] == pytest.approx(metrics["trading"][key])
    client = client_of(uri)
    files = artifact_files(client, parent.info.run_id)
    assert {"run/config.yaml", "run/run.json", "report/xgb/report.html"} <= set(files)
    assert "report/xgb/metrics.json" in files
    folds = json.loads((out / "models" / "xgb" / "BTCUSDT" / "folds.json").read_text())
    for f in folds:
        assert f"models/xgb/BTCUSDT/folds/{f['fold']:03d}/manifest.json" in files
    store = client.download_artifacts(parent.info.run_id, "report/xgb/metrics.json")
    assert json.loads(Path(store).read_text(encoding="utf-8")) == metrics


@pytest.mark.slow
def test_each_fold_is_a_nested_run_with_its_test_metrics(tracked):
    uri, _, result = tracked
    runs = runs_of(uri, "tiny-experiment")
    parent = next(r for r in runs if r.data.tags.get("mlstrat.kind") == "run")
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    folds = json.loads((result.out / "models" / "xgb" / "BTCUSDT" / "folds.json").read_text())
    assert len(nested) == len(folds) >= 3
    by_name = {r.info.run_name: r for r in nested}
    for f in folds:
        run = by_name[f"xgb/BTCUSDT fold {f['fold']}"]
        assert run.data.params["periods.test_start"] == f["test_start"]
        assert run.data.metrics["accuracy"] == pytest.approx(f["accuracy"])
        assert run.data.metrics["auc"] == pytest.approx(f["auc"])


@pytest.mark.slow
def test_nothing_pickled_reaches_the_store(tracked):
    uri, _, _ = tracked
    store = client_of(uri).tracking_uri.removeprefix("file://")
    files = [p for p in Path(store).rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert path.suffix not in (".pkl", ".pickle", ".joblib")
        assert not path.read_bytes()[:2].startswith(b"\x80")  # no pickle protocol header


@pytest.mark.slow
def test_a_sweep_logs_a_run_per_trial(tracked):
    from mlstrat.sweep import run_sweep

    uri, cfg, result = tracked
    sweep = run_sweep(
        cfg,
        result.out,
        grid={"strategy.params.max_hold_bars": [6, 12]},
        n_jobs=1,
        progress=False,
    )
    runs = runs_of(uri, "tiny-experiment")
    parents = [r for r in runs if r.data.tags.get("mlstrat.kind") == "sweep"]
    assert len(parents) == 1
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(trials) == len(sweep.ranking) == 2
    assert {r.data.tags["mlstrat.trial"] for r in trials} == set(sweep.ranking["trial"])


def test_track_sweep_reads_the_sweep_files(tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    trials = [
        {"trial": "t1", "label": "xgb max_hold_bars=6", "sharpe": 1.5, "max_hold_bars": 6},
        {"trial": "t2", "label": "xgb max_hold_bars=12", "sharpe": -0.5, "max_hold_bars": 12},
    ]
    info = {"grid": {"strategy.params.max_hold_bars": [6, 12]}, "rank_by": "sharpe"}
    info.update(trials=trials, best={"sharpe": 1.5, "trial": "t1"}, pbo={"pbo": 0.25})
    (sweep_dir / "sweep.json").write_text(json.dumps(info), encoding="utf-8")
    (sweep_dir / "ranking.csv").write_text("trial,sharpe\nt1,1.5\nt2,-0.5\n", encoding="utf-8")
    uri = (tmp_path / "mlruns").as_uri()
    config = parse({**base_raw(), "tracking": {"uri": uri}})
    parent = track_sweep(config.tracking, config, sweep_dir, open_tracker(config))
    runs = runs_of(uri, "t")
    top = next(r for r in runs if r.info.run_id == parent)
    assert top.data.metrics == {"pbo": 0.25, "best.sharpe": 1.5}
    assert top.data.params["grid.strategy.params.max_hold_bars"] == "[6, 12]"
    nested = {r.data.tags["mlstrat.trial"]: r for r in runs if r.info.run_id != parent}
    assert nested["t2"].data.metrics["sharpe"] == -0.5
    assert nested["t2"].data.params["label"] == "xgb max_hold_bars=12"
    assert sorted(artifact_files(client_of(uri), parent)) == [
        "sweep/ranking.csv",
        "sweep/sweep.json",
    ]


def test_flatten_names_nested_keys_by_path():
    values = {"a": {"b": 1, "c": [1, 2]}, "p": [{"x": 1}, {"x": 2}], "e": {}}
    assert flatten(values) == {"a.b": 1, "a.c": [1, 2], "p.0.x": 1, "p.1.x": 2, "e": {}}


@pytest.mark.parametrize(
    ("tracking", "words"),
    [
        ({"uri": "mlruns"}, "tracking.uri: 'mlruns' is not a URI"),
        ({"url": "file:///x"}, "tracking.url: unknown key"),
        ({"uri": "file:///x", "folds": "yes"}, "tracking.folds"),
    ],
)
def test_bad_tracking_sections_name_their_key(tracking, words):
    with pytest.raises(ConfigError) as info:
        parse({**base_raw(), "tracking": tracking})
    assert words in str(info.value)


def test_an_unusable_store_stops_the_run_before_any_work(tmp_path, capsys):
    from mlstrat.cli import main

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's directory should be", encoding="utf-8")
    raw = tiny_raw(SAMPLE)
    raw["tracking"] = {"uri": (blocker / "mlruns").as_uri()}
    cfg = write_config(tmp_path / "bad.yaml", raw)
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tracking.uri" in err[0] and "MLflow refused" in err[0]
    assert not (tmp_path / "out" / "features").exists()
    assert not (tmp_path / "out" / "cache").exists()


def test_without_mlflow_tracking_is_a_config_error_with_the_install_line(monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    with pytest.raises(ConfigError) as info:
        Tracker(TrackingConfig(uri=(tmp_path / "m").as_uri()), "x")
    assert "tracking needs MLflow" in str(info.value) and "mlstrat[track]" in str(info.value)


def test_tracking_off_opens_nothing():
    assert open_tracker(parse(base_raw())) is None
    assert parse(base_raw()).tracking == TrackingConfig()
