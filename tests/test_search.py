"""Hyperparameter search inside walk-forward folds (Optuna, the `search` extra): trials are
scored on the fold's purged validation rows only, the search is deterministic with the
seed, the chosen parameters and every trial land in the fold metadata and in the run's
trial log (where they count for the DSR)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
from test_config import base_raw, parse
from test_run import SAMPLE, tiny_raw, write_config
from walkforward_data import sample_bars, write_feed

from mlstrat.errors import ConfigError
from mlstrat.walkforward import WalkForward, run_walk_forward
from mlstrat.walkforward.search import SearchConfig, search_fold, validation_score
from mlstrat.walkforward.training import fit_fold

optuna = pytest.importorskip("optuna", reason="the search extra (Optuna) is not installed")

PARAMS = {"n_estimators": 8, "early_stopping_rounds": None, "n_jobs": 1, "seed": 0}
SPACE = {
    "max_depth": {"low": 1, "high": 5},
    "learning_rate": {"low": 0.02, "high": 0.5, "log": True},
    "min_child_weight": [1, 5, 20],
}
SEARCH = {"n_trials": 5, "metric": "log_loss", "space": SPACE}


@pytest.fixture(scope="module")
def fold_data(tmp_path_factory):
    """A real feature frame and the second fold of a walk-forward over it."""
    from mlstrat.features import feature_columns, read_feature_feed

    feed = write_feed(tmp_path_factory.mktemp("search") / "feed.parquet", sample_bars(900))
    frame = read_feature_feed(feed)
    fold = WalkForward(train=300, test=200, validation=0.3).split(frame.index)[1]
    return feed, frame[list(feature_columns(frame))], frame["direction_1"], fold


def _search(X, y, fold, seed=7, search=SEARCH):
    from mlstrat.predictors.registry import create_predictor

    def fit(params):
        return fit_fold(lambda: create_predictor("xgboost", **params), X, y, fold)

    forward = np.zeros(len(X))
    return search_fold(fit, PARAMS, SearchConfig(**search), y, forward, fold=fold, seed=seed)


def test_perturbing_the_test_rows_does_not_change_the_chosen_parameters(fold_data):
    _, X, y, fold = fold_data
    fitted, record = _search(X, y, fold)
    rng = np.random.default_rng(1)
    X2, y2 = X.copy(), y.copy()
    test = fold.test
    X2.iloc[test] = rng.normal(size=(len(test), X.shape[1])) * 1e3  # nonsense features
    y2.iloc[test] = 1.0 - y.iloc[test]  # every test label flipped
    _, again = _search(X2, y2, fold)
    assert again["chosen"] == record["chosen"]
    assert [t["score"] for t in again["trials"]] == [t["score"] for t in record["trials"]]
    # ... while the validation rows are what the scores are made of
    y3 = y.copy()
    y3.iloc[fold.validation] = 1.0 - y.iloc[fold.validation]
    _, flipped = _search(X, y3, fold)
    assert [t["score"] for t in flipped["trials"]] != [t["score"] for t in record["trials"]]


def test_scores_are_the_log_loss_of_the_purged_validation_rows(fold_data):
    from sklearn.metrics import log_loss

    from mlstrat.walkforward.training import predict_rows

    _, X, y, fold = fold_data
    fitted, record = _search(X, y, fold)
    assert record["best_score"] == min(t["score"] for t in record["trials"])
    assert fitted.model.get_params()["max_depth"] == record["chosen"]["max_depth"]
    rows = fold.validation  # purged: the rows whose labels end before the test start
    assert rows[-1] < fold.test[0] - 1
    proba = predict_rows(fitted.model, X, rows).proba
    expected = log_loss(y.to_numpy()[rows].astype(int), proba, labels=[0, 1])
    assert record["best_score"] == pytest.approx(expected, rel=1e-9)
    assert validation_score(fitted, y, "log_loss") == pytest.approx(expected, rel=1e-9)


def test_search_is_deterministic_with_the_seed(fold_data):
    _, X, y, fold = fold_data
    _, a = _search(X, y, fold, seed=11)
    _, b = _search(X, y, fold, seed=11)
    _, c = _search(X, y, fold, seed=12)
    assert a == b
    assert [t["params"] for t in a["trials"]] != [t["params"] for t in c["trials"]]
    assert len(a["trials"]) == 5 and a["seed"] == 11


@pytest.mark.parametrize("metric", ["auc", "accuracy"])
def test_metrics_that_grow_are_maximised(fold_data, metric):
    _, X, y, fold = fold_data
    _, record = _search(X, y, fold, search={**SEARCH, "metric": metric, "n_trials": 3})
    scores = [t["score"] for t in record["trials"]]
    assert record["direction"] == "maximize" and record["best_score"] == max(scores)


def test_walkforward_writes_the_chosen_parameters_and_every_trial(fold_data, tmp_path):
    from mlstrat.predictors import load_predictor

    feed, _, _, _ = fold_data
    kwargs = dict(
        splits=WalkForward(train=300, test=200, validation=0.3),
        n_jobs=1,
        progress=False,
        seed=5,
        search={**SEARCH, "n_trials": 3},
    )
    result = run_walk_forward(feed, "xgboost", PARAMS, out=tmp_path / "a", **kwargs)
    assert len(result.folds) == 3
    for record in result.folds:
        fold_dir = tmp_path / "a" / "folds" / f"{record['fold']:03d}"
        info = json.loads((fold_dir / "fold.json").read_text())
        search = info["search"]
        assert len(search["trials"]) == 3 and search["metric"] == "log_loss"
        best = min(search["trials"], key=lambda t: t["score"])
        assert search["chosen"] == best["params"] == record["search"]["chosen"]
        model = load_predictor(fold_dir)
        for name, value in search["chosen"].items():
            assert model.get_params()[name] == value == info["params"][name]
    again = run_walk_forward(feed, "xgboost", PARAMS, out=tmp_path / "b", **kwargs)
    pd.testing.assert_frame_equal(again.predictions(), result.predictions())


@pytest.mark.parametrize(
    ("search", "words"),
    [
        ({"space": {"max_dept": {"low": 1, "high": 3}}}, "predictors[0].search.space.max_dept"),
        ({"space": {"max_depth": {"low": 3, "high": 3}}}, "not below high"),
        ({"space": {"max_depth": {"low": 0, "high": 3, "log": True}}}, "log range needs low > 0"),
        ({"space": {"max_depth": []}}, "non-empty list"),
        ({"space": {}}, "search space is empty"),
        ({"space": SPACE, "metric": "sharpe"}, "predictors[0].search.metric"),
        ({"space": SPACE, "trials": 3}, "predictors[0].search.trials: unknown key"),
    ],
)
def test_bad_search_sections_name_their_key(search, words):
    raw = base_raw()
    raw["predictors"][0]["search"] = search
    with pytest.raises(ConfigError) as info:
        parse(raw)
    assert words in str(info.value)


def test_search_config_round_trips_and_keeps_old_cache_keys():
    raw = base_raw()
    cfg = parse(raw)
    assert cfg.predictors[0].search is None
    raw["predictors"][0]["search"] = SEARCH
    searched = parse(raw)
    assert searched.predictors[0].search == SearchConfig(**SEARCH)
    assert parse(searched.to_dict()).to_dict() == searched.to_dict()


def test_a_search_needs_validation_rows_before_anything_is_written(fold_data, tmp_path):
    feed, _, _, _ = fold_data
    for splits in (
        WalkForward(scheme="cpcv", groups=3, test_groups=1),
        WalkForward(train=300, test=200, validation=0.0),
    ):
        with pytest.raises(ConfigError, match="no validation rows") as info:
            run_walk_forward(
                feed, "xgboost", PARAMS, splits=splits, out=tmp_path / "x", search=SEARCH
            )
        assert info.value.param == "search"
    assert not (tmp_path / "x").exists()


def test_without_optuna_a_search_is_a_config_error_with_the_install_line(
    fold_data, monkeypatch, tmp_path
):
    feed, _, _, _ = fold_data
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(ConfigError) as info:
        run_walk_forward(
            feed,
            "xgboost",
            PARAMS,
            splits=WalkForward(train=300, test=200, validation=0.3),
            out=tmp_path / "wf",
            n_jobs=1,
            progress=False,
            search=SEARCH,
        )
    assert "needs Optuna" in str(info.value) and "mlstrat[search]" in str(info.value)


@pytest.mark.slow
def test_run_records_every_search_trial_in_the_trial_log(tmp_path):
    from mlstrat.run import run_experiment
    from mlstrat.trials import load_trials, read_index

    data = tmp_path / "BTCUSDT-1h.parquet"
    shutil.copyfile(SAMPLE, data)
    raw = tiny_raw(data)
    raw["predictors"][0]["search"] = {"n_trials": 2, "space": {"max_depth": {"low": 1, "high": 4}}}
    cfg = write_config(tmp_path / "search.yaml", raw)
    result = run_experiment(cfg, tmp_path / "out", progress=False)
    wf = result.out / "models" / "xgb" / "BTCUSDT"
    folds = json.loads((wf / "folds.json").read_text())
    entries = read_index(result.out)
    searched = [e for e in entries if e["kind"] == "search"]
    assert len(searched) == 2 * len(folds)
    by_fold = {}
    for f in folds:
        info = json.loads((wf / "folds" / f"{f['fold']:03d}" / "fold.json").read_text())
        by_fold[f["fold"]] = info["search"]["trials"]
    for e in searched:
        trial = by_fold[e["detail"]["fold"]][int(e["id"].rsplit("-", 1)[1])]
        assert e["sharpe"] == trial["sharpe"] and e["settings"] == trial["params"]
    trials = load_trials(result.out)
    assert len(trials.sharpes) == len(entries)
    stats = json.loads((result.out / "report" / "xgb" / "metrics.json").read_text())
    assert stats["statistics"]["n_trials"] == len(entries)
    again = run_experiment(cfg, tmp_path / "out", progress=False)
    assert len(read_index(again.out)) == len(entries)  # the same trials count once
