"""Net-of-cost thresholds: hand-built cases, the chosen rule's statistic and evidence,
abstention, its reason and its JSON form, and the acceptance markets (seeded, synthetic):

(a) a random walk traded on pure noise: the net-of-cost method abstains (or trades at most
    5 % as often as the precision method) and loses at most 1 % of capital to costs over
    10,000 bars of backtest at the demo's costs (0.1 % commission, 5 bp slippage);
(b) a market with a planted predictable component (a feature with rank IC ~0.1 on the
    next 4-bar return): net P&L is positive and at least 80 % of what the best constant
    thresholds chosen in hindsight earn on the same test path.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm, spearmanr

from mlstrat.errors import ConfigError
from mlstrat.features import build_feature_feed, write_feature_feed
from mlstrat.fileio import json_text
from mlstrat.predictors.base import Prediction, Predictor
from mlstrat.predictors.persistence import write_model_dir
from mlstrat.predictors.registry import register_predictor
from mlstrat.walkforward.outcomes import SideOutcomes
from mlstrat.walkforward.runner import run_walk_forward
from mlstrat.walkforward.selection import long_run_variance
from mlstrat.walkforward.splits import WalkForward
from mlstrat.walkforward.thresholds import Thresholds, fit_net_thresholds, replay_trades

COST = 0.003  # the demo's round trip: 2 x (0.1 % + 5 bp)
H = 4  # label horizon of the synthetic markets, bars


def side(ret, end) -> SideOutcomes:
    ret = np.asarray(ret, dtype=float)
    return SideOutcomes(ret, np.asarray(end, dtype=float), (ret > COST).astype(float))


# ---------------------------------------------------------------- by hand


def test_replay_takes_one_trade_at_a_time() -> None:
    score = np.array([0.7, 0.7, 0.7, 0.4, 0.7, 0.7, np.nan, 0.9])
    out = side([0.01] * 8, [2, 3, 4, 5, 7, 8, 9, 9])
    # row 0 trades until 2; rows 1, 2 are inside it; row 3 is below; row 4 opens (until 7)
    assert replay_trades(score, 0.6, out, np.arange(8)).tolist() == [0, 4]
    assert replay_trades(score, 0.8, out, np.arange(8)).tolist() == [7]
    out = side([0.01, np.nan, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01], [0, 1, 2, 3, 4, 5, 6, 7])
    assert replay_trades(score, 0.6, out, np.arange(8)).tolist() == [0, 2, 4, 5, 7]


def test_best_net_threshold_and_its_bound_by_hand() -> None:
    """60 rows: 30 at score 0.55 lose 0.4 %, 20 at 0.65 earn 1 % +- 0.1 %, 10 at 0.75 earn
    2 % +- 0.1 %; one-bar trades. Net of 0.3 %, per bar: 0.17 % trading all, 0.52 % for
    thresholds in (0.55, 0.65] (30 trades), 0.28 % above 0.65 (10 trades)."""
    wiggle = np.tile([0.001, -0.001], 30)
    ret = np.r_[np.full(30, -0.004), np.full(20, 0.01), np.full(10, 0.02)] + wiggle
    score = np.r_[np.full(30, 0.55), np.full(20, 0.65), np.full(10, 0.75)]
    rows = np.arange(60)
    out = side(ret, rows)
    none = side(np.full(60, np.nan), np.full(60, np.nan))
    th = fit_net_thresholds(score, np.zeros(60), out, none, cost=COST, min_trades=5)
    assert th.long == pytest.approx(0.56) and th.long_signals == 30 and not th.abstain_long
    net = ret[30:] - COST
    assert th.long_pnl == pytest.approx(net.sum() / 60)
    # the chosen rule's statistic: sqrt(n) x its mean per bar over its long-run sd, with
    # the stationary bootstrap's mean block of ceil(60 ** (1/3)) = 4 bars (one-bar trades)
    column = np.r_[np.zeros(30), net]
    omega = math.sqrt(long_run_variance(column[:, None], 4.0)[0])
    assert th.long_score == pytest.approx(math.sqrt(60) * column.mean() / omega, rel=1e-9)
    ev = th.evidence
    assert ev["bars"] == 60 and ev["alpha"] == pytest.approx(0.05) and ev["block"] == 4.0
    by_threshold = {c["threshold"]: c for c in ev["long"]}
    assert by_threshold[0.5]["trades"] == 60 and by_threshold[0.56]["trades"] == 30
    assert by_threshold[0.56]["mean"] == pytest.approx(net.mean())
    assert by_threshold[0.56]["accepted"] and by_threshold[0.75]["trades"] == 10
    assert 0.76 not in by_threshold and ev["short"] == []
    # the short side had no outcome: it abstains, the fold does not
    assert th.abstain_short and th.short == math.inf and not th.abstain
    assert th.reason("short") == "no threshold made 5 trades (most: 0) on 60 bars"
    assert th.reason("long") is None
    # a minimum of 31 trades leaves only 0.5-0.55, all 60 rows, which lose after costs
    th = fit_net_thresholds(score, np.zeros(60), out, none, cost=COST, min_trades=31)
    assert th.abstain and th.long == math.inf and th.long_signals == 0
    all_rows = ret - COST
    assert th.reason("long").startswith(
        f"best candidate {100 * all_rows.mean():+.2f} %/trade on 60 trades (p = "
    )
    assert "detectable ≥ " in th.reason("long")


def test_an_abstaining_fold_blocks_entries_and_survives_json() -> None:
    th = Thresholds(
        long=math.inf, short=0.62, objective="net_pnl_lcb", method="net_pnl", abstain_long=True
    )
    back = Thresholds(**json.loads(json_text(th.to_dict())))
    assert back == th and back.long == math.inf and back.to_dict()["abstain_long"]
    assert back.apply(np.array([0.99, 0.2]), np.array([0.01, 0.8])).tolist() == [0.0, -1.0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"min_trades": 1}, "min_trades"),
        ({"min_trades": 2.5}, "min_trades"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0.2}, "confidence"),
        ({"reps": 10}, "reps"),
        ({"low": 0.9, "high": 0.8}, "threshold range"),
    ],
)
def test_bad_net_options_are_config_errors(kwargs, match) -> None:
    out = side(np.zeros(3), np.arange(3))
    with pytest.raises(ConfigError, match=match):
        fit_net_thresholds(np.full(3, 0.6), np.full(3, 0.4), out, out, cost=COST, **kwargs)


# ---------------------------------------------------------------- synthetic markets


@register_predictor("feature_score")
class FeatureScore(Predictor):
    """P(up) = Φ(feature / scale): a fixed score of one feature column, nothing to fit."""

    def __init__(self, column: str = "planted", scale: float = 3.0) -> None:
        self.column = column
        self.scale = scale
        self.feature_names: list[str] = []

    def fit(self, X, y, *, validation=None):
        self.feature_names = [self.column]
        return self

    def predict(self, X) -> Prediction:
        p = norm.cdf(X[self.column].to_numpy(dtype=float) / self.scale)
        signal = np.where(p >= 0.5, 1.0, -1.0)
        return Prediction(signal, np.maximum(p, 1 - p), np.column_stack([1 - p, p]))

    def save(self, path) -> None:
        meta = {"predictor": self.name, "task": self.task, "params": self.get_params()}
        with write_model_dir(path, meta):
            pass


def synthetic_feed(path, n: int, seed: int, edge: float = 0.0):
    """Hourly random walk (1 % per bar) with two features: `planted`, which moves each of the
    next H bars by edge × planted / H when |planted| > 1.8, and independent `noise`."""
    rng = np.random.default_rng(seed)
    planted, noise = rng.normal(size=n), rng.normal(size=n)
    r = rng.normal(0, 0.01, n)
    drift = np.where(np.abs(planted) > 1.8, edge * planted / H, 0.0)
    for j in range(1, H + 1):
        r[j:] += drift[:-j]
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.r_[100.0, close[:-1]]
    wick = np.abs(rng.normal(0, 0.002, (2, n)))
    index = pd.date_range("2023-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    bars = pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close) * (1 + wick[0]),
         "low": np.minimum(open_, close) * (1 - wick[1]), "close": close, "volume": 1.0},
        index=index,
    )  # fmt: skip
    bars.attrs = {"symbol": "SYN", "timeframe": "1h"}
    feed = build_feature_feed(bars, "core", targets=(f"direction:{H}",))
    feed["planted"], feed["noise"] = planted, noise
    feed.attrs["mlstrat"]["roles"].update(planted="feature", noise="feature")
    return write_feature_feed(feed, path), bars


SPLITS = WalkForward(train=2000, test=1000, validation=0.5)  # 12,000 bars: 10 test folds


def walk_forward(feed, tmp_path, name: str, column: str, method: str):
    return run_walk_forward(
        feed, "feature_score", {"column": column}, f"direction_{H}", SPLITS, tmp_path / name,
        n_jobs=1, progress=False, thresholds={"method": method}, resume=False,
    )  # fmt: skip


def entries(signal: np.ndarray, h: int = H) -> int:
    """Trades a strategy holding each position h bars would open on these signals."""
    count, free = 0, -1
    for t, s in enumerate(signal):
        if t > free and s == s and s != 0:
            count, free = count + 1, t + h
    return count


@pytest.mark.slow
def test_a_noise_predictor_abstains_and_costs_almost_nothing(tmp_path) -> None:
    """Trades of the precision method are counted from its signals (a backtest of its
    thousands of trades takes half a minute); the net-of-cost method is backtested."""
    from mlstrat.backtest import run_backtest
    from mlstrat.feed import FeatureFeed
    from mlstrat.report.metrics import cost_attribution
    from mlstrat.strategy import MLStrategy

    feed, _ = synthetic_feed(tmp_path / "noise.parquet", 12_000, seed=11)
    precision = walk_forward(feed, tmp_path, "precision", "noise", "precision")
    precision_trades = entries(precision.predictions()["signal"].to_numpy())
    wf = walk_forward(feed, tmp_path, "net_pnl", "noise", "net_pnl")
    data = FeatureFeed.from_parquet(
        feed, start=wf.predictions()["timestamp"].iloc[0], predictions=wf.predictions_path
    )
    result = run_backtest(
        {"SYN": data}, MLStrategy, {"allow_short": True, "max_hold_bars": H},
        sizer_params={"method": "fixed", "fixed_fraction": 1.0},
        commission=0.001, slippage=0.0005, cash=10_000,
    )  # fmt: skip
    costs = cost_attribution(result)["total"]
    assert len(wf.folds) == 10 and sum(f["n_test"] for f in wf.folds) == 10_000
    assert len(result.records) == 10_000
    assert precision_trades > 1000  # the precision method trades noise all the time ...
    assert len(result.trades) <= 0.05 * precision_trades  # ... the net-of-cost method not
    assert costs["fees"] + costs["slippage"] <= 0.01 * 10_000
    assert sum(f["abstain"] for f in wf.folds) >= 8
    # an abstaining fold keeps its evidence in folds.json, and says why in words
    written = json.loads(wf.folds_path.read_text())
    fold = next(f for f in written if f["abstain"])
    ev = fold["thresholds"]["evidence"]
    assert ev["bars"] == fold["n_validation"] and 0 < ev["critical"] < 4
    tested = [c for c in ev["long"] + ev["short"] if c["stat"] is not None]
    assert tested and not any(c["accepted"] for c in tested)
    for c in tested:
        assert c["trades"] >= ev["min_trades"] and 0 <= c["pvalue"] <= 1
        assert c["detectable"] > 0 and math.isfinite(c["mean"])
    assert fold["decision"].startswith("long abstains: best candidate ")
    recorded = json.loads((wf.out / "walkforward.json").read_text())["purge_applied"]
    assert [r["fold"] for r in recorded] == [f["fold"] for f in written]
    assert all(r["purged_bars"] == 2 * H for r in recorded)  # horizon purge at two boundaries
    assert "short abstains: " in fold["decision"] and "detectable ≥ " in fold["decision"]


def replay(score, threshold, ret, h=H) -> float:
    """Net P&L of one side trading `ret` (entered at the next open, out h bars later) when
    score >= threshold, one trade at a time: the reference for (b)."""
    total, free = 0.0, -1
    for t in range(len(score)):
        if t > free and score[t] >= threshold and np.isfinite(ret[t]):
            total += ret[t] - COST
            free = t + h
    return total


@pytest.mark.slow
def test_b_a_planted_edge_is_found_and_earns_most_of_the_hindsight_best(tmp_path) -> None:
    feed, bars = synthetic_feed(tmp_path / "planted.parquet", 12_000, seed=3, edge=0.01)
    o, c = bars["open"].to_numpy(), bars["close"].to_numpy()
    gross = np.full(len(c), np.nan)
    gross[:-H] = c[H:] / np.r_[o[1:], np.nan][:-H] - 1  # long: next open to the close h later
    planted = pd.read_parquet(feed)["planted"].to_numpy()
    ic = spearmanr(planted[:-H], c[H:] / c[:-H] - 1).statistic
    assert 0.07 < ic < 0.13
    wf = walk_forward(feed, tmp_path, "planted", "planted", "net_pnl")
    preds = wf.predictions()
    rows = np.flatnonzero(bars.index.isin(preds["timestamp"]))
    up = preds["proba_up"].to_numpy()
    # ours: each fold's thresholds on its own test rows
    ours = 0.0
    for f in wf.folds:
        part = (preds["fold"] == f["fold"]).to_numpy()
        r = rows[part]
        long_th = math.inf if f["threshold_long"] is None else f["threshold_long"]
        short_th = math.inf if f["threshold_short"] is None else f["threshold_short"]
        ours += replay(up[part], long_th, gross[r]) + replay(1 - up[part], short_th, -gross[r])
    # hindsight: the best constant threshold per side over the whole test path (or none)
    grid = np.round(np.arange(0.5, 0.805, 0.01), 10)
    best_long = max(0.0, *(replay(up, t, gross[rows]) for t in grid))
    best_short = max(0.0, *(replay(1 - up, t, -gross[rows]) for t in grid))
    hindsight = best_long + best_short
    assert hindsight > 0.5  # the planted edge is worth tens of percent on this path
    assert ours > 0 and ours >= 0.8 * hindsight, (ours, hindsight)
    assert sum(f["abstain"] for f in wf.folds) <= 2
