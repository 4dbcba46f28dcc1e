"""Every script in examples/ runs end to end (as a user would run it) on tiny sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
TINY = ["--start", "2025-01-01", "--end", "2025-04-15", "--train", "40D", "--test", "20D"]


def run_script(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_every_example_is_covered():
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == ["custom_predictor.py", "quickstart.py", "run_config.py"]


@pytest.mark.slow
def test_quickstart(tmp_path):
    out = tmp_path / "qs"
    proc = run_script(
        "quickstart.py", "--out", str(out), "--n-estimators", "10", *TINY, cwd=tmp_path
    )
    assert (out / "report" / "report.html").is_file()
    trades = pd.read_csv(out / "report" / "trades.csv")
    assert f"{len(trades)} trades; report: {out / 'report' / 'report.html'}" in proc.stdout
    preds = pd.read_parquet(out / "models" / "predictions.parquet")
    folds = json.loads((out / "models" / "folds.json").read_text())
    assert sorted(preds["fold"].unique()) == [f["fold"] for f in folds]
    # it trades, and only inside the out-of-sample period
    assert len(trades) > 0
    entries = pd.to_datetime(trades["entry_time"])
    assert entries.min() > pd.Timestamp(folds[0]["test_start"])
    assert entries.max() <= pd.Timestamp(folds[-1]["test_end"])


@pytest.mark.slow
def test_custom_predictor_round_trips_its_models(tmp_path):
    from mlstrat.features import feature_columns, read_feature_feed
    from mlstrat.predictors import verify_model_dir

    out = tmp_path / "cp"
    proc = run_script("custom_predictor.py", "--out", str(out), *TINY, cwd=tmp_path)
    assert "trades, final value" in proc.stdout
    fold = out / "models" / "folds" / "000"
    meta = json.loads((fold / "metadata.json").read_text())
    assert meta["predictor"] == "logistic" and verify_model_dir(fold).metadata == meta
    # the saved coefficients reproduce the saved fold-0 probabilities (computed here by hand)
    state = json.loads((fold / "coefficients.json").read_text())
    feed = read_feature_feed(out / "features.parquet")
    preds = pd.read_parquet(out / "models" / "predictions.parquet")
    rows = preds[preds["fold"] == 0]
    X = feed.loc[pd.DatetimeIndex(rows["timestamp"]), feature_columns(feed)].to_numpy(float)
    import numpy as np

    z = ((X - state["mean"]) / np.asarray(state["scale"])) @ np.asarray(state["coef"])
    up = 1.0 / (1.0 + np.exp(-(z + state["intercept"])))
    np.testing.assert_allclose(rows["proba_up"].to_numpy(), up, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_run_config(tmp_path):
    out = tmp_path / "rc"
    sets = {
        "n_jobs": "1",
        "data.start": "2025-01-01",
        "data.end": "2025-04-15",
        "features.set": "core",
        "walkforward.train": "40D",
        "walkforward.test": "20D",
        "predictors": "[{name: xgboost, predictor: xgboost, params: {n_estimators: 10}}]",
        "sizing.volatility": "null",
        "sizing.params.target_vol": "null",
        "sizing.params.tiers": "[[0.5, 0.25], [0.52, 0.5], [0.55, 1.0]]",
        "report.enabled": "false",
    }
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    proc = run_script("run_config.py", "--out", str(out), *args, cwd=tmp_path)
    lines = proc.stdout.splitlines()
    statuses = {tuple(line.split()[:2]): line.split()[2] for line in lines if line.startswith("  ")}
    assert statuses[("features", "BTCUSDT")] == "cached"
    assert statuses[("walkforward", "xgboost/BTCUSDT")] == "cached"
    assert statuses[("backtest", "xgboost")] == "computed"
    assert "replay identical: {'xgboost': True}" in proc.stdout
    assert json.loads((out / "replay" / "replay.json").read_text())["identical"] == {
        "xgboost": True
    }
