"""Fold runner: outputs checked against independent recomputation, parallel/dask equality,
determinism, resume after a kill, and the harness-never-leaks test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from held_fits import held_env
from walkforward_data import REPO, XGB_PARAMS, sample_bars, write_feed

from mlstrat.cli import main
from mlstrat.errors import ConfigError, SchemaError
from mlstrat.features import build_feature_feed, read_feature_feed, write_feature_feed
from mlstrat.fileio import tmp_name
from mlstrat.predictors.registry import load_predictor
from mlstrat.walkforward.leakage import perturb_after
from mlstrat.walkforward.runner import FOLD_FILE, run_walk_forward
from mlstrat.walkforward.splits import WalkForward
from mlstrat.walkforward.thresholds import apply_thresholds, fit_thresholds

SPLITS = WalkForward(train=700, test=300)  # 2600 bars -> test starts 700, 1000, ..., 2500


@pytest.fixture(scope="module")
def feed(tmp_path_factory) -> Path:
    return write_feed(tmp_path_factory.mktemp("feed") / "btc-core.parquet")


@pytest.fixture(scope="module")
def base_run(feed, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "base"
    return run_walk_forward(
        feed, "xgboost", XGB_PARAMS, "direction_1", SPLITS, out, n_jobs=1, progress=False
    )


def test_outputs_match_independent_recomputation(feed, base_run) -> None:
    frame = read_feature_feed(feed)
    preds = base_run.predictions()
    assert list(preds.columns) == [
        "timestamp",
        "fold",
        "signal",
        "confidence",
        "proba_up",
        "threshold_long",
        "threshold_short",
    ]
    assert str(preds["timestamp"].dt.tz) == "UTC"
    assert preds["timestamp"].tolist() == frame.index[700:].tolist()
    assert preds["fold"].tolist() == [j for j in range(7) for _ in range(300 if j < 6 else 100)]
    folds = json.loads((base_run.out / "folds.json").read_text())
    assert len(folds) == 7 and sum(f["n_test"] for f in folds) == 1900
    features = [c for c in frame.columns if frame.attrs["mlstrat"]["roles"][c] == "feature"]

    k = 3
    fold_dir = base_run.out / "folds" / "003"
    model = load_predictor(fold_dir)  # the fold dir is a verified model directory
    info = json.loads((fold_dir / FOLD_FILE).read_text())
    p = 700 + 300 * k
    # training and validation rows end before the test start, labels purged by the horizon
    assert pd.Timestamp(info["periods"]["validation_end"]) == frame.index[p - 2]
    assert pd.Timestamp(model.fit_info_["train_start"]) == frame.index[p - 700]
    # the model's test predictions, recomputed from the reloaded model
    rows = preds[preds["fold"] == k]
    again = model.predict(frame[features].iloc[p : p + 300])
    np.testing.assert_array_equal(rows["proba_up"].to_numpy(), again.proba[:, 1])
    np.testing.assert_array_equal(rows["confidence"].to_numpy(), again.confidence)
    # thresholds refitted on the validation tail only, then applied
    v = np.arange(
        pd.Index(frame.index).get_loc(pd.Timestamp(info["periods"]["validation_start"])), p - 1
    )
    val = model.predict(frame[features].iloc[v]).proba[:, 1]
    th = fit_thresholds(val, frame["direction_1"].to_numpy()[v])
    assert (th.long, th.short) == (info["thresholds"]["long"], info["thresholds"]["short"])
    assert (rows["threshold_long"] == th.long).all() and (rows["threshold_short"] == th.short).all()
    np.testing.assert_array_equal(
        rows["signal"].to_numpy(),
        apply_thresholds(again.proba[:, 1], again.proba[:, 0], th.long, th.short),
    )
    # metrics against a direct computation
    y = frame["direction_1"].to_numpy()[p : p + 300]
    assert folds[k]["accuracy"] == pytest.approx(np.mean((again.proba[:, 1] >= 0.5) == y))
    assert folds[k]["threshold_long"] == th.long
    assert folds[k]["best_iteration"] == model.best_iteration_
    fwd = frame["forward_return_1"].to_numpy()[p : p + 300]
    ic = pd.Series(again.proba[:, 1]).corr(pd.Series(fwd), method="spearman")
    assert folds[k]["ic"] == pytest.approx(ic)


@pytest.mark.slow
def test_parallel_run_is_identical(feed, base_run, tmp_path) -> None:
    run = run_walk_forward(
        feed,
        "xgboost",
        XGB_PARAMS,
        "direction_1",
        SPLITS,
        tmp_path / "par",
        n_jobs=2,
        progress=False,
    )
    assert run.n_trained == 7
    pd.testing.assert_frame_equal(run.predictions(), base_run.predictions())


@pytest.mark.slow
def test_dask_local_cluster_equals_loky(feed, base_run, tmp_path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        run = run_walk_forward(
            feed,
            "xgboost",
            XGB_PARAMS,
            "direction_1",
            SPLITS,
            tmp_path / "dask",
            n_jobs=2,
            backend="dask",
            scheduler=cluster,
            progress=False,
        )
        assert run.n_trained == 7
        pd.testing.assert_frame_equal(run.predictions(), base_run.predictions())
        assert [f["auc"] for f in run.folds] == [f["auc"] for f in base_run.folds]
        # the same cluster reached by its scheduler address
        again = run_walk_forward(
            feed,
            "xgboost",
            XGB_PARAMS,
            "direction_1",
            SPLITS,
            tmp_path / "dask-address",
            n_jobs=2,
            backend="dask",
            scheduler=cluster.scheduler_address,
            progress=False,
        )
        pd.testing.assert_frame_equal(again.predictions(), base_run.predictions())


@pytest.mark.slow
def test_resume_skips_verified_folds_and_repairs_damaged_ones(feed, base_run, tmp_path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(base_run.out, out)
    again = run_walk_forward(
        feed, "xgboost", XGB_PARAMS, "direction_1", SPLITS, out, progress=False
    )
    assert (again.n_trained, again.n_resumed) == (0, 7)
    # damage one fold: its manifest no longer verifies, so only that fold is retrained
    with open(out / "folds" / "002" / "predictions.parquet", "ab") as fh:
        fh.write(b"x")
    again = run_walk_forward(
        feed, "xgboost", XGB_PARAMS, "direction_1", SPLITS, out, progress=False
    )
    assert (again.n_trained, again.n_resumed) == (1, 6)
    pd.testing.assert_frame_equal(again.predictions(), base_run.predictions())
    # another configuration never reuses these folds
    other = {**XGB_PARAMS, "max_depth": 2}
    again = run_walk_forward(feed, "xgboost", other, "direction_1", SPLITS, out, progress=False)
    assert again.n_trained == 7


def test_rerun_removes_what_a_killed_run_was_writing(feed, base_run, tmp_path) -> None:
    """A killed run leaves temporary names (all bearing mlstrat's mark) in OUT and
    OUT/folds; the next run removes them and nothing else, and writes its configuration
    to walkforward.json (`mlstrat run` has its own run.json)."""
    out = tmp_path / "copy"
    shutil.copytree(base_run.out, out)
    (out / "run.json").unlink(missing_ok=True)
    half_file = tmp_name(out / "predictions.parquet")
    half_file.write_bytes(b"PAR1 half a file")
    half_fold = tmp_name(out / "folds" / "003")
    (half_fold / "003").mkdir(parents=True)
    (out / "notes.txt").write_text("the user's")
    again = run_walk_forward(
        feed, "xgboost", XGB_PARAMS, "direction_1", SPLITS, out, n_jobs=1, progress=False
    )
    assert (again.n_trained, again.n_resumed) == (0, 7)
    assert not half_file.exists() and not half_fold.exists()
    assert (out / "notes.txt").read_text() == "the user's"
    assert sorted(p.name for p in out.iterdir()) == [
        "folds",
        "folds.json",
        "notes.txt",
        "predictions.parquet",
        "walkforward.json",
    ]
    config = json.loads((out / "walkforward.json").read_text())
    assert config["predictor"] == "xgboost" and config["target"] == "direction_1"
    assert (
        config["run_key"] == json.loads((out / "folds" / "000" / FOLD_FILE).read_text())["run_key"]
    )


@pytest.mark.slow
def test_killed_run_resumes_to_identical_predictions(feed, tmp_path) -> None:
    splits = WalkForward(train=700, test=100)  # 19 folds
    reference = run_walk_forward(
        feed,
        "xgboost",
        XGB_PARAMS,
        "direction_1",
        splits,
        tmp_path / "ref",
        n_jobs=1,
        progress=False,
    )
    out = tmp_path / "killed"
    cmd = [
        sys.executable, "-m", "mlstrat.cli", "walkforward", "--feed", str(feed),
        "--target", "direction_1", "--train", "700", "--test", "100", "--out", str(out),
        "--n-jobs", "1", "--quiet",
        *[f"--param={k}={v}" for k, v in XGB_PARAMS.items()],
    ]  # fmt: skip
    # the fourth fold's fit waits until the kill: the run is killed mid-fold, 3 folds done
    env = held_env(tmp_path, after=3)
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    done = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        done = sorted((out / "folds").glob(f"*/{FOLD_FILE}")) if (out / "folds").exists() else []
        if len(done) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read()!r}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list((out / "folds").glob(f"*/{FOLD_FILE}")))
    assert finished == 3
    resumed = run_walk_forward(
        feed, "xgboost", XGB_PARAMS, "direction_1", splits, out, n_jobs=1, progress=False
    )
    assert resumed.n_resumed == finished and resumed.n_trained == 19 - finished
    pd.testing.assert_frame_equal(resumed.predictions(), reference.predictions())
    assert not list((out / "folds").glob(".*")), "staging directories left behind"


def test_future_bars_and_labels_never_reach_a_fold_model(feed, base_run, tmp_path) -> None:
    """Change every bar from fold k's test start on, and every label whose horizon reaches
    it: the models of folds <= k are byte-identical, predictions before the test start are
    unchanged, and fold k's predictions are its unchanged model applied to the new features."""
    k, p = 3, 700 + 300 * 3
    bars = sample_bars()
    changed = perturb_after(bars, p - 1, np.random.default_rng(5), scale=0.03)
    frame = build_feature_feed(changed, "core", targets=("direction:1", "forward_return:1"))
    labels = frame["direction_1"].to_numpy().copy()
    labels[p - 1 :] = 1.0 - labels[p - 1 :]  # label of p-1 looks at bar p: flip it and all later
    frame["direction_1"] = labels
    path = write_feature_feed(frame, tmp_path / "changed.parquet")
    run = run_walk_forward(
        path,
        "xgboost",
        XGB_PARAMS,
        "direction_1",
        SPLITS,
        tmp_path / "changed",
        n_jobs=1,
        progress=False,
    )
    for j in range(k + 1):
        a, b = base_run.out / "folds" / f"{j:03d}", run.out / "folds" / f"{j:03d}"
        assert (a / "model.ubj").read_bytes() == (b / "model.ubj").read_bytes(), f"fold {j} model"
        ta = json.loads((a / FOLD_FILE).read_text())["thresholds"]
        tb = json.loads((b / FOLD_FILE).read_text())["thresholds"]
        assert ta == tb
    before, after = base_run.predictions(), run.predictions()
    early = before["timestamp"] < bars.index[p]
    pd.testing.assert_frame_equal(before[early], after[early])
    fold_k = after[after["fold"] == k]
    model = load_predictor(base_run.out / "folds" / f"{k:03d}")
    features = [c for c in frame.columns if frame.attrs["mlstrat"]["roles"][c] == "feature"]
    redo = model.predict(frame[features].iloc[p : p + 300]).proba[:, 1]
    np.testing.assert_array_equal(fold_k["proba_up"].to_numpy(), redo)
    assert not np.array_equal(
        fold_k["proba_up"].to_numpy(), before[before["fold"] == k]["proba_up"]
    )


def test_cli_matches_library_and_reports_errors(feed, base_run, tmp_path, capsys) -> None:
    argv = [
        "walkforward", "--feed", str(feed), "--target", "direction_1", "--train", "700",
        "--test", "300", "--out", str(tmp_path / "cli"), "--n-jobs", "1", "--quiet",
        *[f"--param={k}={v}" for k, v in XGB_PARAMS.items()],
    ]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["folds"] == 7 and summary["trained"] == 7
    got = pd.read_parquet(tmp_path / "cli" / "predictions.parquet")
    pd.testing.assert_frame_equal(got, base_run.predictions())
    bad = [a if a != "direction_1" else "direction_9" for a in argv]
    assert main(bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "direction_9" in err[0]


def test_bad_arguments(feed, tmp_path) -> None:
    with pytest.raises(ConfigError, match="backend"):
        run_walk_forward(feed, backend="spark", out=tmp_path / "x")
    with pytest.raises(ConfigError, match="too short"):
        run_walk_forward(feed, splits=WalkForward(train="400D"), out=tmp_path / "x")
    with pytest.raises(SchemaError, match="forward_return_1"):
        run_walk_forward(feed, features=["rsi_14", "forward_return_1"], out=tmp_path / "x")


@pytest.mark.slow
def test_keras_predictor_runs_per_fold(tmp_path) -> None:
    """A sequence model through the same runner: context rows before each test start,
    thresholds, best epoch recorded (tiny LSTM, two folds, two epochs)."""
    pytest.importorskip("tensorflow")
    feed = write_feed(tmp_path / "feed.parquet", sample_bars(1400))
    params = {
        "window": 8,
        "units": (8,),
        "dropout": 0.0,
        "batch_norm_layers": 0,
        "dense_units": 4,
        "epochs": 2,
        "patience": 2,
        "batch_size": 64,
        "jit_compile": False,
    }
    run = run_walk_forward(
        feed,
        "lstm",
        params,
        "direction_1",
        WalkForward(train=600, test=400),
        tmp_path / "lstm",
        n_jobs=1,
        progress=False,
    )
    preds = run.predictions()
    assert len(preds) == 800 and preds["fold"].tolist() == [0] * 400 + [1] * 400
    # the window reaches back before the test start, so the first test bar is predicted
    assert np.isfinite(preds["proba_up"]).all()
    assert all(1 <= f["best_epoch"] <= 2 for f in run.folds)
    assert all(0.5 <= f["threshold_long"] <= 0.8 for f in run.folds)
    model = load_predictor(run.out / "folds" / "001")
    frame = read_feature_feed(feed)
    features = [c for c in frame.columns if frame.attrs["mlstrat"]["roles"][c] == "feature"]
    redo = model.predict(frame[features].iloc[1000 - 7 : 1400]).proba[7:, 1]
    np.testing.assert_allclose(preds["proba_up"].to_numpy()[400:], redo, rtol=1e-6)
