"""CPCV through walk-forward and `mlstrat run`: `walkforward.scheme: cpcv`, per-split
predictions, assembled paths, every path backtested with the same strategy and sizer, and
the path distribution on the predictor's page and the comparison page."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from test_config import base_raw, parse
from test_run import SAMPLE, tiny_raw, write_config
from walkforward_data import sample_bars, write_feed

from mlstrat.errors import ConfigError, DataError, IntegrityError
from mlstrat.predictors.base import Prediction
from mlstrat.walkforward import CombinatorialPurgedCV, WalkForward, assemble_path
from mlstrat.walkforward.cpcv import PATHS_FILE, path_file, path_numbers
from mlstrat.walkforward.splits import end_times
from mlstrat.walkforward.training import predict_rows

#: Four groups, two test groups: 6 splits, 3 paths, each bar predicted by 3 splits.
CPCV = {"scheme": "cpcv", "groups": 4, "test_groups": 2}
TINY_XGB = {"n_estimators": 10, "max_depth": 3, "early_stopping_rounds": None, "n_jobs": 1}


def hourly(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC", name="timestamp")


# --------------------------------------------------------------------------- the scheme


@pytest.mark.parametrize("with_ends", [False, True])
def test_walkforward_cpcv_scheme_splits_as_combinatorial_purged_cv(with_ends):
    idx = hourly(240)
    ends = None
    if with_ends:  # event labels: own end positions, some undecided (NaN)
        rng = np.random.default_rng(0)
        ends = np.arange(240, dtype=float) + rng.integers(0, 9, 240)
        ends[ends > 239] = np.nan
    wf = WalkForward(scheme="cpcv", groups=5, test_groups=2, embargo=3, horizon=2)
    t1 = None
    if with_ends:  # the reference reads timestamps: NaT where undecided
        t1 = pd.DatetimeIndex([idx[int(e)] if np.isfinite(e) else pd.NaT for e in ends])
    expected = CombinatorialPurgedCV(groups=5, test_groups=2, horizon=2, embargo=3).split(idx, t1)
    got = wf.split(idx, ends)
    assert len(got) == len(expected) == 10
    for a, b in zip(got, expected, strict=True):
        assert a.test_groups == b.test_groups
        np.testing.assert_array_equal(a.train, b.train)
        np.testing.assert_array_equal(a.test, b.test)
        assert len(a.validation) == 0
    assert wf.describe() == {
        "scheme": "cpcv",
        "groups": 5,
        "test_groups": 2,
        "horizon": 2,
        "embargo": 3,
        "n_splits": 10,
        "n_paths": 4,
    }


def test_end_times_turn_positions_into_timestamps_with_nat_for_undecided():
    idx = hourly(5)
    got = end_times(idx, np.array([1.0, 3.0, np.nan, 4.0, np.nan]))
    assert list(got) == [idx[1], idx[3], pd.NaT, idx[4], pd.NaT]
    assert end_times(idx, None) is None


def test_cpcv_defaults_and_expanding_scheme():
    wf = WalkForward(scheme="cpcv")
    assert (wf.cpcv().groups, wf.cpcv().test_groups) == (6, 2)
    idx = hourly(2000)
    a = WalkForward(train=500, test=200, scheme="expanding")
    b = WalkForward(train=500, test=200, expanding=True)
    assert a == b and a.expanding and b.scheme == "expanding"
    for x, y in zip(a.split(idx), b.split(idx), strict=True):
        np.testing.assert_array_equal(x.train, y.train)
        assert x.train[0] == 0  # expanding: from the first bar


@pytest.mark.parametrize(
    ("walkforward", "key", "words"),
    [
        ({"groups": 4}, "walkforward.groups", "cpcv setting"),
        ({"scheme": "rolling", "test_groups": 2}, "walkforward.test_groups", "cpcv setting"),
        ({"scheme": "cpcv", "groups": 3, "test_groups": 3}, "walkforward.test_groups", "smaller"),
        ({"scheme": "cpcv", "expanding": True}, "walkforward.expanding", "not cpcv"),
        ({"scheme": "cpcv", "groups": 1}, "walkforward.groups", ">= 2"),
        ({"scheme": "combinatorial"}, "walkforward.scheme", "not allowed"),
        ({"cpcv_predictors": ["nope"]}, "walkforward.cpcv_predictors", "not allowed"),
        ({"cpcv_predictors": "a"}, "walkforward.cpcv_predictors", "list of names"),
        (dict(CPCV, cpcv_predictors=["a"]), "walkforward.cpcv_predictors", "scheme cpcv"),
    ],
)
def test_bad_scheme_settings_name_their_key(walkforward, key, words):
    raw = base_raw()
    raw["walkforward"] = walkforward
    with pytest.raises(ConfigError) as info:
        parse(raw)
    assert info.value.problem.startswith(f"{key}:") and words in str(info.value)


def test_cpcv_predictors_allow_the_cpcv_keys_and_refuse_a_search():
    raw = base_raw()
    raw["walkforward"] = {"cpcv_predictors": ["a"], "groups": 4, "embargo": "6h"}
    cfg = parse(raw)
    cv = cfg.walkforward.cpcv_schedule()
    assert cv.scheme == "cpcv" and cv.cpcv().n_splits == 6 and cv.cpcv_predictors == ()
    assert cfg.walkforward.scheme == "rolling" and cfg.walkforward.describe()["train"] == "4mo"
    assert parse(cfg.to_dict()).to_dict() == cfg.to_dict()
    raw["predictors"][0]["search"] = {"space": {"max_depth": [2, 3]}}
    with pytest.raises(ConfigError, match="walkforward.cpcv_predictors: 'a' has a search"):
        parse(raw)


def test_cpcv_config_round_trips():
    raw = base_raw()
    raw["walkforward"] = dict(CPCV, embargo="12h")
    cfg = parse(raw)
    assert cfg.walkforward.scheme == "cpcv" and cfg.walkforward.cpcv().n_paths == 3
    assert parse({**raw, "walkforward": cfg.section("walkforward")}).to_dict() == cfg.to_dict()


def test_online_retraining_refuses_cpcv():
    with pytest.raises(ConfigError, match="online retraining needs a walk-forward scheme"):
        WalkForward(scheme="cpcv").schedule()
    with pytest.raises(ConfigError, match="walk-forward scheme"):
        WalkForward(scheme="cpcv").test_starts(hourly(50))


class _RowModel:
    """Predicts each row from its own value and the `window - 1` rows before it."""

    def __init__(self, window: int) -> None:
        self.window = window

    def predict(self, X: pd.DataFrame) -> Prediction:
        x = X["a"].to_numpy(dtype=float)
        total = pd.Series(x).rolling(self.window).sum().to_numpy()
        p = 1 / (1 + np.exp(-total / 100))
        return Prediction(
            signal=np.sign(total), confidence=np.abs(p - 0.5) + 0.5, proba=np.c_[1 - p, p]
        )


@pytest.mark.parametrize("window", [1, 3])
def test_predict_rows_predicts_rows_apart_as_one_by_one(window):
    X = pd.DataFrame({"a": np.arange(40, dtype=float) ** 1.5}, index=hourly(40))
    rows = np.array([5, 6, 7, 20, 21, 33])
    got = predict_rows(_RowModel(window), X, rows)
    for i, row in enumerate(rows):  # the model given the context of one row only
        one = _RowModel(window).predict(X.iloc[max(0, row - window + 1) : row + 1])
        assert got.signal[i] == one.signal[-1]
        # a rolling sum's last bits depend on the rows before it: equal up to rounding
        assert got.confidence[i] == pytest.approx(one.confidence[-1], rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(got.proba[i], one.proba[-1], rtol=1e-12, atol=1e-12)
    assert len(got) == len(rows)


# --------------------------------------------------------------------------- the runner


@pytest.fixture(scope="module")
def cpcv_wf(tmp_path_factory):
    from mlstrat.walkforward import run_walk_forward

    root = tmp_path_factory.mktemp("cpcv_wf")
    feed = write_feed(root / "feed.parquet", sample_bars(700))
    result = run_walk_forward(
        feed,
        "xgboost",
        TINY_XGB,
        splits=WalkForward(**CPCV),
        out=root / "wf",
        n_jobs=1,
        progress=False,
    )
    return feed, result


def test_cpcv_walkforward_keeps_each_split_and_assembles_its_paths(cpcv_wf):
    from mlstrat.features import read_feature_feed

    feed, result = cpcv_wf
    out = result.out
    index = read_feature_feed(feed).index
    cv = CombinatorialPurgedCV(groups=4, test_groups=2)
    splits = cv.split(index)
    assert len(result.folds) == 6 and result.paths == [0, 1, 2]
    per_split = {}
    seen = pd.Series(0, index=index)
    for fold in splits:  # each split predicts exactly its own test groups, once
        frame = pd.read_parquet(out / "folds" / f"{fold.number:03d}" / "predictions.parquet")
        assert list(pd.DatetimeIndex(frame["timestamp"])) == list(index[fold.test])
        assert (frame["fold"] == fold.number).all()
        per_split[fold.number] = frame
        seen[index[fold.test]] += 1
    assert (seen == cv.n_paths).all()  # every bar predicted by φ = 3 splits
    for path in cv.paths(index):  # path files hold, group by group, the assigned split's rows
        written = pd.read_parquet(path_file(out, path.number))
        assert written["timestamp"].is_unique and len(written) == len(index)
        for seg in path.segments:
            rows = written[(written["timestamp"] >= seg.start) & (written["timestamp"] <= seg.end)]
            source = per_split[seg.split]
            source = source[(source["timestamp"] >= seg.start) & (source["timestamp"] <= seg.end)]
            pd.testing.assert_frame_equal(
                rows.reset_index(drop=True), source.reset_index(drop=True), check_dtype=False
            )
    pd.testing.assert_frame_equal(result.predictions(), pd.read_parquet(path_file(out, 0)))
    info = json.loads((out / PATHS_FILE).read_text())
    assert info["n_paths"] == 3 and [p["path"] for p in info["paths"]] == [0, 1, 2]
    assert path_numbers(out) == [0, 1, 2]


def test_cpcv_walkforward_resumes_and_a_rolling_rerun_drops_the_paths(cpcv_wf, tmp_path):
    from mlstrat.walkforward import run_walk_forward

    feed, result = cpcv_wf
    out = tmp_path / "wf"
    shutil.copytree(result.out, out)
    again = run_walk_forward(
        feed, "xgboost", TINY_XGB, splits=WalkForward(**CPCV), out=out, n_jobs=1, progress=False
    )
    assert (again.n_trained, again.n_resumed) == (0, 6)
    pd.testing.assert_frame_equal(again.predictions(), result.predictions())
    rolling = run_walk_forward(
        feed,
        "xgboost",
        TINY_XGB,
        splits=WalkForward(train=300, test=200, validation=0.2),
        out=out,
        n_jobs=1,
        progress=False,
    )
    assert rolling.paths == [] and path_numbers(out) is None
    assert not (out / "paths").exists() and rolling.predictions()["timestamp"].is_unique


def test_walkforward_command_runs_cpcv_and_refuses_cpcv_keys_without_it(cpcv_wf, tmp_path, capsys):
    from mlstrat.cli import main

    feed, _ = cpcv_wf
    args = ["walkforward", "--feed", str(feed), "--n-jobs", "1", "--quiet"]
    args += [f"--param={k}={v}" for k, v in TINY_XGB.items() if v is not None]
    args += ["--param=early_stopping_rounds=null"]
    cpcv = ["--scheme", "cpcv", "--groups", "3", "--test-groups", "1"]
    assert main([*args, *cpcv, "--out", str(tmp_path / "wf")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["folds"], summary["paths"]) == (3, 1)
    assert path_numbers(tmp_path / "wf") == [0]
    assert main([*args, "--groups", "3", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "groups is a cpcv setting" in err[0]
    assert not (tmp_path / "bad").exists()


def test_missing_or_damaged_path_files_are_named(cpcv_wf, tmp_path):
    _, result = cpcv_wf
    out = tmp_path / "wf"
    shutil.copytree(result.out, out)
    path_file(out, 1).unlink()
    with pytest.raises(DataError) as info:
        path_numbers(out)
    assert "path 1" in str(info.value) and str(path_file(out, 1)) in str(info.value)
    (out / PATHS_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        path_numbers(out)


def test_damaged_path_equity_file_is_a_data_error(tmp_path):
    from mlstrat.report.paths import read_path_equity, write_path_equity

    curves = [pd.Series([1.0, 1.1, 1.05], index=hourly(3)) for _ in range(2)]
    good = tmp_path / "equity.parquet"
    write_path_equity(curves, good)
    assert [list(c) for c in read_path_equity(good)] == [[1.0, 1.1, 1.05]] * 2
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(good.read_bytes()[:40])
    with pytest.raises(DataError) as info:
        read_path_equity(bad)
    assert str(bad) in str(info.value) and "rerun" in str(info.value)
    pd.DataFrame({"x": [1.0]}).to_parquet(bad)
    with pytest.raises(DataError, match="no timestamp or path columns"):
        read_path_equity(bad)


# --------------------------------------------------------------------------- the run


@pytest.fixture(scope="module")
def cpcv_run(tmp_path_factory):
    from mlstrat.run import run_experiment

    root = tmp_path_factory.mktemp("cpcv_run")
    data = root / "BTCUSDT-1h.parquet"
    shutil.copyfile(SAMPLE, data)
    raw = tiny_raw(data)
    raw["data"]["end"] = "2025-03-15"
    raw["walkforward"] = dict(CPCV)
    cfg = write_config(root / "cpcv.yaml", raw)
    return raw, cfg, run_experiment(cfg, root / "out", progress=False)


def _independent_sharpe(equity: pd.Series) -> float:
    r = equity.to_numpy()[1:] / equity.to_numpy()[:-1] - 1
    return float(r.mean() / r.std(ddof=1) * math.sqrt(24 * 365))


@pytest.mark.slow
def test_run_backtests_every_path_and_reports_their_distribution(cpcv_run):
    from mlstrat.report.paths import read_path_equity

    _, _, result = cpcv_run
    out = result.out
    assert result.status("paths") == {"xgb": "computed"}
    curves = read_path_equity(out / "paths" / "xgb" / "equity.parquet")
    assert len(curves) == 3
    headline = result.results["xgb"].equity
    pd.testing.assert_series_equal(curves[0], headline, check_names=False, check_freq=False)
    assert not curves[1].equals(curves[0]) or not curves[2].equals(curves[0])
    block = json.loads((out / "report" / "xgb" / "metrics.json").read_text())["cpcv_paths"]
    assert block["n_paths"] == 3 and block["periods_per_year"] == 8760
    np.testing.assert_allclose(block["sharpe"], [_independent_sharpe(c) for c in curves])
    worst = [float((c / c.cummax() - 1).min()) for c in curves]
    np.testing.assert_allclose(block["max_drawdown"], worst)
    assert block["reference"]["sharpe"] == pytest.approx(_independent_sharpe(headline))
    page = (out / "report" / "xgb" / "report.html").read_text()
    section = page[page.index("id='cpcv-paths'") :]
    assert "3 backtest paths" in section and 'data-chart="cpcv_paths"' in section
    assert "data:image/png;base64," in section
    assert (out / "report" / "xgb" / "cpcv_paths.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("number", [1, 2])
def test_a_paths_backtest_equals_a_direct_backtest_of_its_predictions(cpcv_run, number):
    """Acceptance: path `number` assembled here from the per-split prediction files and
    backtested directly with the configured strategy, sizer and broker gives the equity the
    run recorded for that path."""
    import backtrader as bt

    from mlstrat.backtest import run_backtest
    from mlstrat.features import read_feature_feed
    from mlstrat.feed import FeatureFeed
    from mlstrat.report.paths import read_path_equity
    from mlstrat.sizing import TieredConfidenceSizer
    from mlstrat.userclass import load_class

    raw, _, result = cpcv_run
    out = result.out
    feed_path = out / "features" / "BTCUSDT.parquet"
    wf = out / "models" / "xgb" / "BTCUSDT"
    index = read_feature_feed(feed_path).index
    cv = CombinatorialPurgedCV(groups=4, test_groups=2, horizon=1)
    splits = {
        int(d.name): pd.read_parquet(d / "predictions.parquet")
        for d in sorted((wf / "folds").iterdir())
    }
    frame = assemble_path(cv.paths(index)[number], splits).drop(columns=["group", "path"])
    columns = [c for c in frame.columns if c != "timestamp"] + ["direction_1", "forward_return_1"]
    feed = FeatureFeed.from_parquet(
        feed_path, columns=columns, start=frame["timestamp"].iloc[0], predictions=frame
    )
    direct = run_backtest(
        {"BTCUSDT": feed},
        load_class(raw["strategy"]["class"], bt.Strategy, what="strategy", hint="a strategy"),
        raw["strategy"]["params"],
        sizer=TieredConfidenceSizer,
        sizer_params=raw["sizing"]["params"],
        broker=raw["broker"],
    )
    recorded = read_path_equity(out / "paths" / "xgb" / "equity.parquet")[number]
    np.testing.assert_array_equal(recorded.to_numpy(), direct.equity.to_numpy())
    assert list(recorded.index) == list(direct.equity.index)


@pytest.mark.slow
def test_comparison_page_shows_one_models_path_distribution(cpcv_run, tmp_path):
    from mlstrat.report.html import build_comparison

    _, _, result = cpcv_run
    stats = result_stats(result)
    page = build_comparison(
        {"plain": result.results["xgb"], "cpcv": result.results["xgb"]},
        tmp_path / "cmp",
        paths={"cpcv": stats},
    )
    html = page.read_text()
    assert "CPCV paths of cpcv" in html and 'data-chart="cpcv_paths"' in html
    block = json.loads((tmp_path / "cmp" / "metrics.json").read_text())["cpcv_paths"]
    assert block["model"] == "cpcv" and block["sharpe"] == list(stats.stats.sharpe)


def result_stats(result):
    """The run's path statistics as the pipeline computed them for its pages."""
    from mlstrat.report.paths import path_distribution, read_path_equity

    curves = read_path_equity(result.out / "paths" / "xgb" / "equity.parquet")
    return path_distribution(curves, timeframe=result.results["xgb"].timeframe)


@pytest.mark.slow
def test_rerun_reuses_the_path_backtests(cpcv_run):
    from mlstrat.run import run_experiment

    _, cfg, first = cpcv_run
    again = run_experiment(cfg, first.out, progress=False)
    assert again.status("paths") == {"xgb": "cached"}
    assert again.status("walkforward") == {"xgb/BTCUSDT": "cached"}


@pytest.fixture(scope="module")
def beside_run(tmp_path_factory):
    """A rolling walk-forward run of two predictors, one of them also run as CPCV."""
    from mlstrat.run import run_experiment

    root = tmp_path_factory.mktemp("cpcv_beside")
    data = root / "BTCUSDT-1h.parquet"
    shutil.copyfile(SAMPLE, data)
    raw = tiny_raw(data)
    raw["predictors"].append(
        {"name": "small", "predictor": "xgboost", "params": dict(TINY_XGB, max_depth=2)}
    )
    raw["walkforward"] = dict(raw["walkforward"], cpcv_predictors=["xgb"], groups=4)
    cfg = write_config(root / "beside.yaml", raw)
    return run_experiment(cfg, root / "out", progress=False)


@pytest.mark.slow
def test_cpcv_predictors_get_paths_beside_their_walkforward_backtest(beside_run):
    from mlstrat.report.paths import read_path_equity

    out = beside_run.out
    assert beside_run.status("walkforward") == {
        "xgb/BTCUSDT": "computed",
        "small/BTCUSDT": "computed",
        "xgb/BTCUSDT/cpcv": "computed",
    }
    assert beside_run.status("paths") == {"xgb": "computed"}
    assert path_numbers(out / "models" / "xgb" / "BTCUSDT") is None  # the headline: rolling
    assert path_numbers(out / "cpcv" / "xgb" / "BTCUSDT") == [0, 1, 2]
    curves = read_path_equity(out / "paths" / "xgb" / "equity.parquet")
    headline = beside_run.results["xgb"].equity
    assert len(curves) == 3 and curves[0].index[0] < headline.index[0]  # CPCV covers every bar
    block = json.loads((out / "report" / "xgb" / "metrics.json").read_text())["cpcv_paths"]
    assert block["reference_path"] is None
    assert block["reference"]["sharpe"] == pytest.approx(_independent_sharpe(headline))
    np.testing.assert_allclose(block["sharpe"], [_independent_sharpe(c) for c in curves])
    assert "cpcv_paths" not in json.loads((out / "report" / "small" / "metrics.json").read_text())
    page = (out / "report" / "comparison" / "report.html").read_text()
    assert "CPCV paths of xgb" in page and "walk-forward (headline) backtest" in page
    compared = json.loads((out / "report" / "comparison" / "metrics.json").read_text())
    assert compared["cpcv_paths"]["model"] == "xgb"
