"""Warm-started folds: each fold starts from an earlier fold's weights without seeing the future.

The leak test perturbs the candles after fold k's training end and checks that every
fold before k (the chain fold k starts from) keeps its weights bit for bit, while a
perturbation inside fold k-1's training rows does change them (so the check can fail).
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_config import base_raw
from walkforward_data import sample_bars, write_feed

from mlstrat.errors import ConfigError, WorkerError
from mlstrat.predictors.hybrid import HybridPredictor
from mlstrat.predictors.lstm import LSTMPredictor
from mlstrat.predictors.registry import load_predictor
from mlstrat.predictors.transformer import TransformerPredictor
from mlstrat.predictors.volatility import VolatilityLSTMPredictor
from mlstrat.run import run_experiment
from mlstrat.walkforward import WalkForward, run_walk_forward, runner
from mlstrat.walkforward.leakage import perturb_after
from mlstrat.walkforward.runner import load_feed, warm_sources

pytestmark = pytest.mark.slow

TINY = {
    "window": 8,
    "units": (4,),
    "dropout": 0.0,
    "batch_norm_layers": 0,
    "dense_units": 0,
    "learning_rate": 1e-2,
    "epochs": 3,
    "patience": 2,
    "warm_epochs": 1,
    "warm_patience": 1,
    "batch_size": 64,
    "n_threads": 2,
}
SPLITS = WalkForward(train=500, test=250)  # 1250 bars: test starts 500, 750, 1000
N_BARS = 1250


def _run(feed: Path, out: Path, **kw):
    return run_walk_forward(
        feed,
        predictor="lstm",
        params=TINY,
        splits=SPLITS,
        out=out,
        n_jobs=1,
        progress=False,
        warm_start=True,
        **kw,
    )


def _weights(fold_dir: Path) -> list[np.ndarray]:
    return load_predictor(fold_dir).model_.get_weights()


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb, strict=True))


@pytest.fixture(scope="module")
def feed(tmp_path_factory) -> Path:
    return write_feed(tmp_path_factory.mktemp("warm") / "feed.parquet", sample_bars(N_BARS))


@pytest.fixture(scope="module")
def run(feed, tmp_path_factory):
    return _run(feed, tmp_path_factory.mktemp("warm-run") / "wf")


# ---------------------------------------------------------------------------- the chain


def test_warm_sources_by_hand() -> None:
    index = pd.date_range("2024-01-01", periods=N_BARS, freq="1h", tz="UTC")
    folds = SPLITS.split(index)
    assert [int(f.test[0]) for f in folds] == [500, 750, 1000]
    # fold 1 trains up to row 649 (validation from 650); fold 0's information ends at 499
    assert warm_sources(folds) == [None, 0, 1]
    # a validation tail of 80% (400 rows, after a 1-row purge) ends fold k's training at
    # its start + 98: fold 1 at 348 < 499, fold 2 at 598 >= 499 (fold 0) but < 749 (fold 1)
    wide = WalkForward(train=500, test=250, validation=0.8).split(index)
    assert [int(f.train[-1]) for f in wide] == [98, 348, 598]
    assert warm_sources(wide) == [None, None, 0]


def test_folds_start_from_the_previous_fold_with_the_warm_budget(run) -> None:
    assert [r.get("warm_start_from") for r in run.folds] == [None, 0, 1]
    for k, record in enumerate(run.folds):
        model = load_predictor(run.out / "folds" / f"{k:03d}")
        assert model.fit_info_["warm_started"] is (k > 0)
        epochs = model.fit_info_["epochs_trained"]
        assert epochs == 1 if k > 0 else 1 <= epochs <= TINY["epochs"]
        assert record["best_epoch"] is not None


def test_resume_retrains_the_chain_after_the_first_missing_fold(run, feed, tmp_path) -> None:
    copy_dir = tmp_path / "wf"
    shutil.copytree(run.out, copy_dir)
    shutil.rmtree(copy_dir / "folds" / "001")
    again = _run(feed, copy_dir)
    assert (again.n_trained, again.n_resumed) == (2, 1)  # fold 1 and every fold after it
    pd.testing.assert_frame_equal(again.predictions(), run.predictions())
    for k in range(3):  # same seed, same chain: the same weights bit for bit
        assert _same_weights(copy_dir / "folds" / f"{k:03d}", run.out / "folds" / f"{k:03d}")


def test_a_chain_split_over_fresh_processes_gives_the_same_weights(
    run, feed, tmp_path, monkeypatch
) -> None:
    """Every fold in its own worker process (the chain reads each start from disk) ends
    with the same weights bit for bit as the chain in one worker."""
    from joblib.externals.loky import process_executor

    pools = []

    class Counted(process_executor.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr(process_executor, "ProcessPoolExecutor", Counted)
    monkeypatch.setattr(runner, "CHAIN_FOLDS_PER_PROCESS", 1)
    again = _run(feed, tmp_path / "wf")
    assert len(pools) == 3  # one worker process per fold
    pd.testing.assert_frame_equal(again.predictions(), run.predictions())
    for k in range(3):
        assert _same_weights(tmp_path / "wf" / "folds" / f"{k:03d}", run.out / "folds" / f"{k:03d}")
    # and as the chain ran before it moved out of the calling process
    monkeypatch.setattr(runner, "_recycled_chain", lambda chain: map(runner.run_fold, chain))
    here = _run(feed, tmp_path / "here")
    pd.testing.assert_frame_equal(here.predictions(), run.predictions())


def _die(task) -> None:
    """Stands in for run_fold in the chain's worker: the process dies (as if killed for memory)."""
    os._exit(3)


def test_a_worker_dying_mid_chain_is_a_worker_error_and_keeps_finished_folds(
    run, feed, tmp_path, monkeypatch
) -> None:
    copy_dir = tmp_path / "wf"
    shutil.copytree(run.out, copy_dir)
    shutil.rmtree(copy_dir / "folds" / "001")  # two folds to run: a chain in workers
    monkeypatch.setattr(runner, "CHAIN_FOLDS_PER_PROCESS", 1)
    real = runner.run_fold
    monkeypatch.setattr(runner, "run_fold", _die)  # pickled by reference: the worker runs it
    with pytest.raises(WorkerError, match="worker process died") as caught:
        _run(feed, copy_dir)
    assert "run again" in str(caught.value)
    monkeypatch.setattr(runner, "run_fold", real)
    again = _run(feed, copy_dir)
    assert (again.n_trained, again.n_resumed) == (2, 1)
    pd.testing.assert_frame_equal(again.predictions(), run.predictions())


def test_no_fold_of_the_chain_sees_rows_after_the_next_fold_s_training_end(
    run, feed, tmp_path
) -> None:
    """Perturb every candle after fold 2's last training row: folds 0 and 1 (fold 2's starting
    point) keep their weights; perturbing fold 1's last training rows changes fold 1."""
    frame = load_feed(feed)
    index = frame.index
    folds = SPLITS.split(index)
    bars = sample_bars(N_BARS)
    rng = np.random.default_rng(4)

    cut = int(folds[2].train[-1])
    later = write_feed(tmp_path / "later.parquet", perturb_after(bars, cut, rng))
    perturbed = _run(later, tmp_path / "later")
    for k in (0, 1):
        assert _same_weights(perturbed.out / "folds" / f"{k:03d}", run.out / "folds" / f"{k:03d}")
    assert perturbed.folds[2]["warm_start_from"] == 1

    inside = int(folds[1].train[-1]) - 20  # its last training rows
    earlier = write_feed(tmp_path / "earlier.parquet", perturb_after(bars, inside, rng))
    control = _run(earlier, tmp_path / "earlier")
    assert _same_weights(control.out / "folds" / "000", run.out / "folds" / "000")
    assert not _same_weights(control.out / "folds" / "001", run.out / "folds" / "001")


def test_predictors_that_cannot_warm_start_are_refused(feed, tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot warm-start") as info:
        run_walk_forward(
            feed,
            predictor="xgboost",
            params={"n_estimators": 5},
            splits=SPLITS,
            out=tmp_path / "x",
            warm_start=True,
            progress=False,
        )
    assert info.value.param == "warm_start"
    assert not (tmp_path / "x" / "folds").exists() or not any((tmp_path / "x" / "folds").iterdir())
    with pytest.raises(ConfigError, match="cpcv"):
        run_walk_forward(
            feed,
            predictor="lstm",
            params=TINY,
            splits=WalkForward(scheme="cpcv", groups=4, test_groups=1),
            out=tmp_path / "y",
            warm_start=True,
            progress=False,
        )


def test_config_refuses_warm_start_for_xgboost(tmp_path) -> None:
    raw = copy.deepcopy(base_raw())
    raw["predictors"][0]["warm_start"] = True
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"predictors\[0\]\.warm_start"):
        run_experiment(config, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- one predictor


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    bars = sample_bars(900)
    close = bars["close"]
    r = np.log(close).diff()
    X = pd.DataFrame(
        {"r1": r * 100, "r4": r.rolling(4).sum() * 100, "rv": r.rolling(12).std() * 100},
        index=bars.index,
    )
    y = (close.shift(-1) > close).astype(float).where(close.shift(-1).notna())
    return X.assign(direction_1=y).iloc[20:]


def _xy(frame: pd.DataFrame, rows: slice) -> tuple[pd.DataFrame, pd.Series]:
    part = frame.iloc[rows]
    return part[["r1", "r4", "rv"]], part["direction_1"]


def test_warm_fit_starts_from_the_previous_weights_once(frame) -> None:
    first = LSTMPredictor(**TINY, seed=1).fit(*_xy(frame, slice(0, 500)))
    # a learning rate of 1e-9 leaves the weights where the fit started them
    warm = LSTMPredictor(**{**TINY, "learning_rate": 1e-9}, seed=2)
    warm.warm_start_from(first)
    assert warm.fit_budget == (1, 1)
    warm.fit(*_xy(frame, slice(200, 700)))
    for a, b in zip(warm.model_.get_weights(), first.model_.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert warm.fit_info_["warm_started"] and warm.fit_info_["epochs_trained"] == 1
    cold = LSTMPredictor(**{**TINY, "learning_rate": 1e-9}, seed=2).fit(*_xy(frame, slice(0, 500)))
    assert np.abs(cold.model_.get_weights()[0] - first.model_.get_weights()[0]).max() > 1e-2
    # one-shot: the next fit starts cold with the full budget
    assert warm.fit_budget == (TINY["epochs"], TINY["patience"])
    warm.fit(*_xy(frame, slice(200, 700)))
    assert not warm.fit_info_["warm_started"]


def test_default_warm_budget_is_a_fifth_of_the_epochs_and_a_third_of_the_patience(frame) -> None:
    first = LSTMPredictor(**TINY).fit(*_xy(frame, slice(0, 400)))
    model = LSTMPredictor(**{**TINY, "epochs": 50, "patience": 10, "warm_epochs": None,
                             "warm_patience": None})  # fmt: skip
    assert model.fit_budget == (50, 10)
    model.warm_start_from(first)
    assert model.fit_budget == (10, 3)


def test_warm_start_refuses_other_models_and_shapes(frame) -> None:
    first = LSTMPredictor(**TINY).fit(*_xy(frame, slice(0, 400)))
    with pytest.raises(ConfigError, match="another class"):
        TransformerPredictor(window=8, d_model=8, n_heads=2, n_layers=1, ff_dim=8).warm_start_from(
            first
        )
    with pytest.raises(ConfigError, match="unfitted"):
        LSTMPredictor(**TINY).warm_start_from(LSTMPredictor(**TINY))
    wider = LSTMPredictor(**{**TINY, "units": (6,)})
    wider.warm_start_from(first)
    with pytest.raises(ConfigError, match="other shapes") as info:
        wider.fit(*_xy(frame, slice(0, 400)))
    assert info.value.param == "warm_start" and wider.model_ is None
    X, y = _xy(frame, slice(0, 400))
    fewer = LSTMPredictor(**TINY)
    fewer.warm_start_from(first)
    with pytest.raises(ConfigError, match="other shapes"):
        fewer.fit(X[["r1", "r4"]], y)
    with pytest.raises(ConfigError, match="tune"):
        VolatilityLSTMPredictor(tune=True).warm_start_from(first)


def test_hybrid_warm_starts_its_keras_members(frame) -> None:
    members = [("lstm", {**TINY, "seed": 3}), ("xgboost", {"n_estimators": 5})]
    first = HybridPredictor(members=members).fit(*_xy(frame, slice(0, 500)))
    assert HybridPredictor(members=members).can_warm_start
    assert not HybridPredictor(members=[("xgboost", {})], weights=None).can_warm_start
    slow = [("lstm", {**TINY, "seed": 3, "learning_rate": 1e-9}), members[1]]
    warm = HybridPredictor(members=slow)
    warm.warm_start_from(first)
    warm.fit(*_xy(frame, slice(200, 700)))
    lstm, before = warm.predictors_[0], first.predictors_[0]
    assert lstm.fit_info_["warm_started"]
    for a, b in zip(lstm.model_.get_weights(), before.model_.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ConfigError, match="cannot warm-start a hybrid"):
        HybridPredictor(members=[members[1], members[0]]).warm_start_from(first)
