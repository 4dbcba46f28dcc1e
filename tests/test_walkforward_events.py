"""Event labels through walk-forward: purging by each row's own end t1 (hand-worked and
property checks), trade outcomes and uniqueness weights against slow reference loops, what
`fit_fold` hands the model, and the variable-horizon leak test: changing the bars after a
fold's test start leaves every earlier fold model byte-identical."""

from __future__ import annotations

import dataclasses
import functools
import json
import math

import numpy as np
import pandas as pd
import pytest
from test_labels import random_bars, ref_barriers, ref_weights
from walkforward_data import XGB_PARAMS, sample_bars

from mlstrat.errors import ConfigError, DataError
from mlstrat.features import build_feature_feed, write_feature_feed
from mlstrat.features.labels import ewm_volatility
from mlstrat.features.targets import direction, triple_barrier
from mlstrat.predictors.base import Prediction, Predictor
from mlstrat.walkforward.leakage import perturb_after
from mlstrat.walkforward.outcomes import round_trip_cost, trade_outcomes
from mlstrat.walkforward.runner import FOLD_FILE, label_ends, run_walk_forward
from mlstrat.walkforward.splits import WalkForward
from mlstrat.walkforward.training import fit_fold

COST = round_trip_cost(0.001, 0.0005)


def hourly(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")


# ---------------------------------------------------------------- purging by t1


def test_purge_by_own_end_by_hand() -> None:
    """20 rows before the test start p = 20; labels end one bar later except rows 5 (ends at
    14), 17 (20: reaches the test start), 19 (undecided: falls back to 19 + horizon 3)."""
    index = hourly(30)
    ends = np.arange(30, dtype=float) + 1
    ends[5], ends[17], ends[19] = 14, 20, np.nan
    wf = WalkForward(train=20, test=5, validation=5, horizon=3)
    fold = wf.split(index, ends)[0]
    assert fold.test[0] == 20
    # test boundary 20: rows 17 and 19 dropped; validation = the last 5 bars up to row 18
    assert fold.validation.tolist() == [14, 15, 16, 18]
    # validation boundary 14: row 5 ends at 14 and row 13 at 14 -> dropped, mid-window
    assert fold.train.tolist() == [0, 1, 2, 3, 4, *range(6, 13)]
    assert fold.train_span.tolist() == list(range(13))
    assert fold.validation_span.tolist() == [14, 15, 16, 17, 18]
    # fixed horizon 3 (no ends): purge 3 bars before each boundary
    plain = wf.split(index)[0]
    assert plain.validation.tolist() == list(range(12, 17))
    assert plain.train.tolist() == list(range(9))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"train": 200, "test": 50, "validation": 0.25},
        {"train": "8D", "test": "2D", "validation": "1D", "embargo": "5h"},
        {"train": 150, "test": 60, "validation": 30, "embargo": 3, "expanding": True},
        {"train": "6D", "test": "36h", "validation": 0.2, "purge": "10h"},
    ],
)
def test_purge_by_end_obeys_its_rule_and_equals_the_horizon_rule_for_fixed_ends(kwargs) -> None:
    rng = np.random.default_rng(7)
    n, h = 700, 6
    index = hourly(n)
    wf = WalkForward(horizon=h, **kwargs)
    fixed = np.arange(n, dtype=float) + h
    for a, b in zip(wf.split(index), wf.split(index, fixed), strict=True):
        assert a.train.tolist() == b.train.tolist()
        assert a.validation.tolist() == b.validation.tolist()
    ends = np.arange(n) + rng.integers(0, h + 1, n).astype(float)
    ends[rng.random(n) < 0.05] = np.nan
    own = np.where(np.isnan(ends), np.arange(n) + h, ends)
    embargo, purge = wf._spans["embargo"], wf._spans["purge"] if "purge" in kwargs else 0

    def clears(rows: np.ndarray, boundary: int) -> np.ndarray:
        """The rule, literally: label end + embargo before the boundary, start before the purge."""
        if isinstance(embargo, int):
            ok = own[rows] + embargo < boundary
        else:
            ok = index[np.minimum(own[rows], n - 1).astype(int)] < index[boundary] - embargo
            ok &= own[rows] < boundary
        if isinstance(purge, int):
            return ok & (rows < boundary - purge)
        return ok & (index[rows] < index[boundary] - purge)

    for fold in wf.split(index, ends):
        p, v = int(fold.test[0]), int(fold.validation[0])
        assert clears(fold.validation, p).all() and clears(fold.train, v).all()
        # and nothing inside the spans that clears is dropped
        span = fold.validation_span
        assert (clears(span, p) == np.isin(span, fold.validation)).all()
        span = fold.train_span
        assert (clears(span, v) == np.isin(span, fold.train)).all()


@pytest.mark.parametrize(
    "ends, match",
    [(np.arange(10.0)[:-1], "10 rows"), (np.arange(10.0) - 1, "ends before it starts")],
)
def test_bad_label_ends_are_data_errors(ends, match) -> None:
    with pytest.raises(DataError, match=match):
        WalkForward(train=5, test=2, validation=0.0).split(hourly(10), ends)


def test_label_ends_combine_event_and_fixed_targets() -> None:
    bars = random_bars(300, seed=2)
    feed = build_feature_feed(bars, "core", targets=("direction:3", "triple_barrier:12"))
    t1 = feed.index.get_indexer(feed["triple_barrier_12_t1"]).astype(float)
    t1[t1 < 0] = np.nan
    assert label_ends(feed, ["direction_3"]) is None
    np.testing.assert_array_equal(label_ends(feed, ["triple_barrier_12"]), t1)
    both = label_ends(feed, ["triple_barrier_12", "direction_3"])
    np.testing.assert_array_equal(both, np.maximum(t1, np.arange(300) + 3))


# ---------------------------------------------------------------- trade outcomes


@pytest.mark.parametrize("pt, sl", [(1.0, 1.0), (2.0, 0.5)])
def test_trade_outcomes_equal_reference_loops_for_both_sides(pt, sl) -> None:
    bars = random_bars(3000, seed=5)
    # the σ of 12-bar moves: per-bar EWM σ (span 100) × √12
    sigma = ewm_volatility(bars["close"], 100).to_numpy() * np.sqrt(12)
    found = trade_outcomes(bars, triple_barrier(12, pt, sl))
    assert found.cost == pytest.approx(COST)
    for side, got in ((1.0, found.long), (-1.0, found.short)):
        code, ret, t1, _ = ref_barriers(
            bars, 12, pt * sigma, sl * sigma, side=np.full(3000, side), entry="next_open"
        )
        np.testing.assert_allclose(got.ret, ret, equal_nan=True, rtol=1e-12)
        np.testing.assert_array_equal(got.end, t1)
        pays = np.where(np.isnan(code), np.nan, (code == 1) & (ret - COST > 0))
        np.testing.assert_array_equal(got.pays, pays)
    # a short's outcome is computed, not the negative of the long's
    both = np.isfinite(found.long.ret) & np.isfinite(found.short.ret)
    assert not np.allclose(found.long.ret[both], -found.short.ret[both])


def test_fixed_horizon_outcomes_and_the_stop_boundary() -> None:
    bars = random_bars(500, seed=8)
    o, c = bars["open"].to_numpy(), bars["close"].to_numpy()
    found = trade_outcomes(bars, direction(4), commission=0.002, slippage=0.0)
    for t in (0, 100, 494):
        gross = c[t + 4] / o[t + 1] - 1
        assert found.long.ret[t] == pytest.approx(gross) and found.long.end[t] == t + 4
        assert found.short.ret[t] == pytest.approx(-gross)
        assert found.long.pays[t] == float(gross > 0.004)
    assert np.isnan(found.long.ret[496:]).all()
    # stop=p reads rows < p only: decided outcomes agree, the rest are NaN
    cut = trade_outcomes(bars, triple_barrier(12), stop=300)
    full = trade_outcomes(bars, triple_barrier(12))
    changed = perturb_after(bars, 299, np.random.default_rng(1))
    again = trade_outcomes(changed, triple_barrier(12), stop=300)
    for a, b, f in ((cut.long, again.long, full.long), (cut.short, again.short, full.short)):
        np.testing.assert_array_equal(a.ret, b.ret)
        decided = f.end < 300
        np.testing.assert_array_equal(a.ret[decided], f.ret[decided])
        assert np.isnan(a.ret[~decided & (np.arange(500) < 300)]).all()
        assert np.isnan(a.ret[300:]).all()


@pytest.mark.parametrize("commission, slippage", [(-0.001, 0.0), (0.001, 1.5), ("x", 0.0)])
def test_bad_costs_are_config_errors(commission, slippage) -> None:
    with pytest.raises(ConfigError):
        round_trip_cost(commission, slippage)


# ---------------------------------------------------------------- fit_fold


class Spy(Predictor):
    """Records what fit receives; predicts a constant P(up) of 0.6."""

    name = "spy"
    seen: dict = {}

    def __init__(self, weighted: bool = True) -> None:
        self.weighted = weighted
        self.feature_names = []

    def fit(self, X, y, *, validation=None, sample_weight=None):
        Spy.seen = {"X": X, "y": y, "validation": validation, "weight": sample_weight}
        self.feature_names = list(X.columns)
        return self

    def predict(self, X):
        p = np.full(len(X), 0.6)
        return Prediction(np.ones(len(X)), p, np.column_stack([1 - p, p]))


class Unweighted(Spy):
    def fit(self, X, y, *, validation=None):
        return super().fit(X, y, validation=validation)


def _event_fold():
    bars = random_bars(400, seed=9)
    # per-bar barriers: decided within a few bars, so purging drops rows mid-window
    feed = build_feature_feed(bars, "core", targets=("triple_barrier:10:2:2:bar",))
    ends = label_ends(feed, ["triple_barrier_10"])
    fold = WalkForward(train=250, test=50, validation=0.2, horizon=10).split(feed.index, ends)[0]
    X = feed[["rsi_14", "return_1"]]
    return feed, X, feed["triple_barrier_10"], ends, fold


def test_fit_fold_blanks_purged_labels_and_passes_uniqueness_weights() -> None:
    feed, X, y, ends, fold = _event_fold()
    assert len(fold.train) < len(fold.train_span)  # some rows purged mid-window
    fit_fold(Spy, X, y, fold, ends=ends, sample_weights="uniqueness")
    seen = Spy.seen
    assert seen["X"].index.equals(X.index[fold.train_span])
    dropped = ~np.isin(fold.train_span, fold.train)
    assert seen["y"].isna().to_numpy()[dropped].all()
    np.testing.assert_array_equal(
        seen["y"].to_numpy()[~dropped], y.to_numpy()[fold.train_span][~dropped]
    )
    # independent: average uniqueness over the kept, labelled rows' spans, mean 1
    rows = fold.train[np.isfinite(y.to_numpy()[fold.train])]
    t1 = np.full(len(X), np.nan)
    t1[rows] = ends[rows]
    expected, _ = ref_weights(t1, len(X))
    expected = expected[rows] / np.nanmean(expected[rows])
    got = seen["weight"]
    np.testing.assert_allclose(got[rows - fold.train_span[0]], expected, rtol=1e-12)
    assert (got[~np.isin(fold.train_span, rows)] == 0).all()
    assert got.min() < 0.99 < 1.01 < got.max()  # overlapping labels really are down-weighted


def test_fit_fold_faults_name_their_option() -> None:
    feed, X, y, ends, fold = _event_fold()
    with pytest.raises(ConfigError, match="does not take sample weights"):
        fit_fold(Unweighted, X, y, fold, ends=ends, sample_weights="uniqueness")
    with pytest.raises(ConfigError, match="unknown sample weighting"):
        fit_fold(Spy, X, y, fold, ends=ends, sample_weights="equal")
    with pytest.raises(ConfigError, match="needs trade outcomes"):
        fit_fold(Spy, X, y, fold, threshold_params={"method": "net_pnl"})
    with pytest.raises(ConfigError, match="unknown threshold method"):
        fit_fold(Spy, X, y, fold, threshold_params={"method": "sharpe"})
    with pytest.raises(ConfigError, match="belongs to method 'net_pnl'"):
        fit_fold(Spy, X, y, fold, threshold_params={"min_trades": 5})
    with pytest.raises(ConfigError, match="belongs to method 'precision'"):
        fit_fold(Spy, X, y, fold, threshold_params={"method": "net_pnl", "objective": "f1"},
                 outcomes=functools.partial(trade_outcomes, feed, triple_barrier(10, 2, 2)))  # fmt: skip


def test_net_pnl_fold_abstains_without_validation_rows() -> None:
    feed, X, y, ends, _ = _event_fold()
    fold = WalkForward(train=250, test=50, validation=0.0, horizon=10).split(feed.index, ends)[0]
    outcomes = functools.partial(trade_outcomes, feed, triple_barrier(10, 2, 2))
    fitted = fit_fold(Spy, X, y, fold, threshold_params={"method": "net_pnl"}, outcomes=outcomes)
    assert fitted.thresholds.abstain and fitted.thresholds.long == math.inf
    fitted = fit_fold(Spy, X, y, fold)
    assert fitted.thresholds.long == 0.6 and not fitted.thresholds.abstain


def test_sample_weights_change_an_xgboost_fit_and_bad_weights_are_refused() -> None:
    from mlstrat.predictors.xgb import XGBoostPredictor

    feed, X, y, ends, fold = _event_fold()
    Xt, yt = X.iloc[:250], y.iloc[:250]
    params = {**XGB_PARAMS, "early_stopping_rounds": None}
    w = np.linspace(0.2, 1.8, 250)
    plain = XGBoostPredictor(**params).fit(Xt, yt).predict(X).proba
    again = XGBoostPredictor(**params).fit(Xt, yt, sample_weight=np.ones(250)).predict(X).proba
    weighted = XGBoostPredictor(**params).fit(Xt, yt, sample_weight=w).predict(X).proba
    np.testing.assert_array_equal(plain, again)
    assert not np.allclose(plain, weighted)
    for bad, match in ((w[:-1], "249"), (np.r_[w[:-1], -1.0], "not a finite value")):
        with pytest.raises(DataError, match=match):
            XGBoostPredictor(**params).fit(Xt, yt, sample_weight=bad)


# ---------------------------------------------------------------- the leak test


SPLITS = WalkForward(train=700, test=300)
TARGETS = ("direction:1", "forward_return:1", "triple_barrier:12:1:1")
RUNS = {
    "xgboost": {
        "params": XGB_PARAMS,
        "target": "triple_barrier_12",
        "kw": {"sample_weights": "uniqueness"},  # precision thresholds read the labels
        "models": ("model.ubj",),
    },
    "meta": {
        "params": {
            "primary": ["xgboost", XGB_PARAMS],
            "primary_target": "direction_1",
            "inner": ["xgboost", XGB_PARAMS],
        },
        "target": "triple_barrier_12",
        "kw": {"fit_targets": ["direction_1"], "thresholds": {"method": "net_pnl"}},
        "models": ("members/primary/model.ubj", "members/inner/model.ubj"),
    },
}
LABEL, END = "triple_barrier_12", "triple_barrier_12_t1"


def _future_changed(bars: pd.DataFrame, p: int) -> pd.DataFrame:
    """The feed of bars changed from row p on, with every label still open at p (t1 >= p)
    turned into another outcome: the future is arbitrary, and a label not decided by p is
    part of it."""
    changed = perturb_after(bars, p - 1, np.random.default_rng(5), scale=0.03)
    feed = build_feature_feed(changed, "core", targets=TARGETS)
    open_at_p = (feed.index < bars.index[p]) & (feed[END] >= bars.index[p]).to_numpy()
    label = feed[LABEL].to_numpy().copy()
    label[open_at_p] = np.where(label[open_at_p] == 0, 1.0, -label[open_at_p])
    feed[LABEL] = label
    return feed


@pytest.mark.slow
@pytest.mark.parametrize("predictor", list(RUNS))
def test_future_bars_never_reach_a_fold_model_with_triple_barrier_labels(
    predictor, tmp_path
) -> None:
    """Change every bar from fold k's test start p on, and every label still open at p:
    rows are purged by their own t1, so the models and thresholds of folds <= k are
    byte-identical, though t1 purging keeps rows a fixed 12-bar purge would drop."""
    run = RUNS[predictor]
    k, p = 3, 700 + 300 * 3
    bars = sample_bars()
    feeds = {"base": build_feature_feed(bars, "core", targets=TARGETS)}
    feeds["changed"] = _future_changed(bars, p)
    outs = {}
    for name, feed in feeds.items():
        path = write_feature_feed(feed, tmp_path / f"{name}.parquet")
        outs[name] = run_walk_forward(
            path, predictor, run["params"], run["target"], SPLITS, tmp_path / name,
            n_jobs=1, progress=False, **run["kw"],
        )  # fmt: skip
    before = feeds["base"].index < bars.index[p]
    assert (feeds["base"][LABEL][before] != feeds["changed"][LABEL][before]).sum() >= 5
    folds = json.loads((outs["base"].out / "folds.json").read_text())
    fixed = dataclasses.replace(SPLITS, horizon=12).split(feeds["base"].index)
    assert folds[k]["n_train"] > len(fixed[k].train)
    for j in range(k + 1):
        a, b = outs["base"].out / "folds" / f"{j:03d}", outs["changed"].out / "folds" / f"{j:03d}"
        for model in run["models"]:
            assert (a / model).read_bytes() == (b / model).read_bytes(), f"fold {j} {model}"
        ta = json.loads((a / FOLD_FILE).read_text())["thresholds"]
        tb = json.loads((b / FOLD_FILE).read_text())["thresholds"]
        assert ta == tb
    later = outs["base"].out / "folds" / f"{k + 1:03d}" / run["models"][-1]
    changed_later = outs["changed"].out / "folds" / f"{k + 1:03d}" / run["models"][-1]
    assert later.read_bytes() != changed_later.read_bytes()


@pytest.mark.slow
def test_meta_folds_are_scored_against_whether_their_trades_paid(tmp_path) -> None:
    """A meta model's fold metrics grade P(pays) against the outcome of the side it took
    (not the three-class coding of the target)."""
    bars = sample_bars(1700)
    feed = build_feature_feed(bars, "core", targets=TARGETS)
    path = write_feature_feed(feed, tmp_path / "f.parquet")
    params = {"primary": "rule:return_1", "inner": ["xgboost", XGB_PARAMS]}
    run = run_walk_forward(
        path, "meta", params, "triple_barrier_12", SPLITS, tmp_path / "meta", n_jobs=1,
        progress=False, thresholds={"method": "net_pnl", "commission": 0.001, "slippage": 0.0},
    )  # fmt: skip
    preds = run.predictions()
    found = trade_outcomes(feed, triple_barrier(12, 1.0, 1.0), commission=0.001, slippage=0.0)
    for record in run.folds:
        part = preds[preds["fold"] == record["fold"]]
        rows = feed.index.get_indexer(part["timestamp"])
        side = part["primary_side"].to_numpy()
        paid = np.where(side > 0, found.long.pays[rows], found.short.pays[rows])
        p = part["confidence"].to_numpy()
        known = np.isfinite(paid) & np.isfinite(p) & (side != 0)
        assert record["n_scored"] == known.sum() > 50
        assert record["accuracy"] == pytest.approx(np.mean((p[known] >= 0.5) == paid[known]))
        assert record["base_rate_up"] == pytest.approx(paid[known].mean())


@pytest.mark.slow
def test_keras_adapters_take_sample_weights_and_event_labels() -> None:
    """A tiny LSTM learns a triple-barrier label (coded "up barrier first") with weights that
    reach Keras: unequal weights change the fit, bad ones are refused."""
    pytest.importorskip("tensorflow")
    from mlstrat.predictors.lstm import LSTMPredictor

    feed, X, y, ends, fold = _event_fold()
    params = {"window": 4, "units": (4,), "dropout": 0.0, "batch_norm_layers": 0,
              "dense_units": 2, "epochs": 1, "patience": 1, "batch_size": 64,
              "jit_compile": False, "validation_fraction": 0.0, "seed": 3}  # fmt: skip
    Xt, yt = X.iloc[120:300], y.iloc[120:300]
    assert set(np.unique(yt.dropna())) == {-1.0, 0.0, 1.0}

    def proba(**kwargs) -> np.ndarray:
        return LSTMPredictor(**params).fit(Xt, yt, **kwargs).predict(X.iloc[100:]).proba

    plain = proba()
    assert not np.allclose(proba(sample_weight=np.linspace(0.1, 3.0, len(Xt))), plain)
    with pytest.raises(DataError, match="sample_weight"):
        proba(sample_weight=np.ones(len(Xt) - 1))


def test_walkforward_records_the_purge_it_applied_not_the_horizon() -> None:
    from mlstrat.walkforward.runner import purge_applied

    index = hourly(400)
    wf = WalkForward(train=200, test=50, validation=0.2, horizon=10)
    # by the horizon: 10 bars before the validation rows and 10 before the test rows
    assert {r["purged_bars"] for r in purge_applied(wf.split(index))} == {20}
    # labels that end 2 bars later: 2 bars at each of the two boundaries
    ends = np.minimum(np.arange(400) + 2.0, 399)
    assert {r["purged_bars"] for r in purge_applied(wf.split(index, ends))} == {4}
