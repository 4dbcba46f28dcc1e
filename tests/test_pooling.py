"""Pooled net_pnl evidence: a fold's decision reads earlier folds' test records and its own
validation rows, never a bar at or after its test start; weak edges that one validation
tail cannot see are traded once the evidence has accumulated, noise still is not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_thresholds_net import SPLITS, H, synthetic_feed

from mlstrat.errors import ConfigError
from mlstrat.features.targets import parse_target
from mlstrat.walkforward.pooling import apply_decision, pooled_decisions
from mlstrat.walkforward.runner import run_walk_forward
from mlstrat.walkforward.splits import WalkForward

TARGET = parse_target(f"direction:{H}")
PARAMS = {"method": "net_pnl", "reps": 300}


def market(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]]
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    return pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close) * 1.001,
         "low": np.minimum(open_, close) * 0.999, "close": close, "volume": 1.0},
        index=index,
    )  # fmt: skip


def predictions(index: pd.Index, rows: np.ndarray, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"timestamp": index[rows], "proba_up": rng.random(len(rows))})


def setting(frame: pd.DataFrame, seed: int = 1):
    folds = WalkForward(train=1000, test=500, validation=0.4, horizon=H).split(frame.index)
    tests = [predictions(frame.index, f.test, seed + 10 * f.number) for f in folds]
    vals = [predictions(frame.index, f.validation_span, seed + 10 * f.number + 5) for f in folds]
    return folds, tests, vals


def test_a_decision_never_reads_a_bar_at_or_after_its_test_start() -> None:
    frame = market()
    folds, tests, vals = setting(frame)
    k = 3
    base = pooled_decisions(frame, TARGET, folds, tests, vals, PARAMS)
    # everything from fold k's test start on is replaced: later bars, later predictions
    start = int(folds[k].test[0])
    other = frame.copy()
    other.iloc[start:, :4] *= np.exp(
        np.random.default_rng(9).normal(0, 0.05, (len(other) - start, 1))
    )
    tests2 = [t if i < k else t.assign(proba_up=1 - t["proba_up"]) for i, t in enumerate(tests)]
    vals2 = [v if i <= k else v.assign(proba_up=0.99) for i, v in enumerate(vals)]
    moved = pooled_decisions(other, TARGET, folds, tests2, vals2, PARAMS)
    for i in range(k + 1):
        assert moved[i].to_dict() == base[i].to_dict()
    # control: the same change one bar earlier reaches fold k's evidence
    earlier = frame.copy()
    earlier.iloc[start - 60 : start, :4] *= 1.3
    assert pooled_decisions(earlier, TARGET, folds, tests, vals, PARAMS)[k].evidence != (
        base[k].evidence
    )


def test_the_evidence_says_what_was_pooled() -> None:
    frame = market()
    folds, tests, vals = setting(frame)
    decisions = pooled_decisions(frame, TARGET, folds, tests, vals, PARAMS)
    for k, (fold, th) in enumerate(zip(folds, decisions, strict=True)):
        pooled = th.evidence["pooled"]
        cut = int(fold.validation_span[0])
        earlier = sum(int((f.test < cut).sum()) for f in folds[:k])
        assert pooled == {
            "earlier_folds": [f.number for f in folds[:k]],
            "earlier_bars": earlier,
            "validation_bars": len(fold.validation_span),
        }
        assert th.evidence["bars"] == earlier + len(fold.validation_span)
    assert decisions[-1].evidence["bars"] > 3 * decisions[0].evidence["bars"]


def test_apply_decision_rewrites_signal_and_thresholds() -> None:
    frame = market(3000)
    folds, tests, vals = setting(frame)
    th = pooled_decisions(frame, TARGET, folds, tests, vals, PARAMS)[0]
    part = tests[0].assign(signal=5.0, threshold_long=0.1, threshold_short=0.1)
    out = apply_decision(part, th)
    up = part["proba_up"].to_numpy()
    np.testing.assert_array_equal(out["signal"].to_numpy(), th.apply(up, 1 - up))
    assert (out["threshold_long"] == th.long).all() and part["signal"].eq(5.0).all()


def test_unknown_evidence_is_a_config_error() -> None:
    frame = market(3000)
    folds, tests, vals = setting(frame)
    with pytest.raises(ConfigError, match="evidence"):
        pooled_decisions(frame, TARGET, folds, tests, vals, {**PARAMS, "evidence": "all"})


@pytest.mark.slow
def test_pooling_trades_a_weak_edge_that_one_validation_tail_cannot_see(tmp_path) -> None:
    """10 folds of 1,000 test bars: with validation-only evidence the weak planted edge is
    traded in few folds; pooled, in almost every fold once two earlier folds are in. On the
    null twin both abstain everywhere."""
    counts = {}
    for edge in (0.0, 0.004):
        feed, _ = synthetic_feed(tmp_path / f"{edge}.parquet", 12_000, seed=5, edge=edge)
        for evidence in ("validation", "pooled"):
            wf = run_walk_forward(
                feed, "feature_score", {"column": "planted"}, f"direction_{H}", SPLITS,
                tmp_path / f"{edge}-{evidence}", n_jobs=1, progress=False, resume=False,
                thresholds={"method": "net_pnl", "evidence": evidence},
            )  # fmt: skip
            counts[edge, evidence] = sum(not f["abstain"] for f in wf.folds)
            written = json.loads(wf.folds_path.read_text())
            # folds.json and the prediction feed carry the pooled decision
            preds = wf.predictions()
            for f in written:
                part = preds[preds["fold"] == f["fold"]]
                expected = np.inf if f["threshold_long"] is None else f["threshold_long"]
                assert (part["threshold_long"] == expected).all()
    assert counts[0.0, "validation"] == 0 and counts[0.0, "pooled"] == 0
    assert counts[0.004, "validation"] <= 4
    assert counts[0.004, "pooled"] >= 7
