"""Power of the net_pnl decision layer: does a real edge get traded and noise refused?

Planted files (`mlstrat.synthetic`, hourly bars) are cut into the demo's walk-forward
folds (4-month train, 2-month test, validation the last 20 % of training) over
`--folds` test folds; the decision measured is the **last fold's**, made on pooled
evidence: the earlier folds' test records up to its validation start plus its validation
rows (`mlstrat.walkforward.pooling`). Its evidence size N is fixed by the schedule, and
each edge's drift is calibrated (`calibrate_drift`) so that the oracle — perfect knowledge
of the planted state, trading it like the layer's outcomes after the demo's 0.3 % round
trip — has an expected t-statistic t* over those N bars. Every planted file has a null
twin (same seed, drift 0).

* ``perfect_score_trade_rate[t*]``: the layer given a perfect score (0.5 ± 0.3 on the
  oracle's side): the share of decisions that trade, for t* = 2, 3, 4, over every edge
  (regime, momentum, mean reversion) and seed.
* ``false_trade_rate``: the share of decisions that trade on the null twins (perfect
  scores of a state that carries no edge, and the model-based variant).
* ``trade_rate[t*]``: the model-based variant — XGBoost on the `core` features (which
  include 24-bar realised volatility) learning ``direction:24``, the strategy's holding
  horizon, with pooled net_pnl thresholds — on the regime edge its features can see.
* ``captured_share[t*]``: that variant's net P&L in the decided fold's test period over
  the oracle's there, summed over seeds.
* ``annual_sharpe_at["3"]``: the oracle's annual Sharpe at which t* = 3 over N bars at
  the demo's fold lengths (per-bar Sharpe 3/√N × √8760); also given for one validation
  tail alone (``..._validation_only``), what an unpooled decision could detect.

    .venv/bin/python benchmarks/power.py [--seeds 20] [--quick]

Prints one JSON object; ``meets_targets`` checks the acceptance targets.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlstrat.features import build_feature_feed, write_feature_feed  # noqa: E402
from mlstrat.features.targets import parse_target  # noqa: E402
from mlstrat.synthetic import EDGES, calibrate_drift, oracle_pnl, planted_market  # noqa: E402
from mlstrat.walkforward.pooling import pooled_decisions  # noqa: E402
from mlstrat.walkforward.runner import run_walk_forward  # noqa: E402
from mlstrat.walkforward.splits import WalkForward  # noqa: E402

HOURS_PER_YEAR = 8760
TRAIN, TEST, VALIDATION = 2920, 1460, 0.2  # the demo's 4mo / 2mo / 0.2 on 1h bars
HORIZON, COST = 24, 0.003
TARGET = parse_target(f"direction:{HORIZON}")
THRESHOLDS = {"method": "net_pnl", "commission": 0.001, "slippage": 0.0005}
XGB = {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.05, "early_stopping_rounds": 20}


def schedule(folds: int) -> tuple[WalkForward, int, int]:
    """The walk-forward, the file length and the last decision's evidence bars."""
    splits = WalkForward(train=TRAIN, test=TEST, validation=VALIDATION, horizon=HORIZON)
    n = TRAIN + folds * TEST
    index = pd.date_range("2023-01-01", periods=n, freq="1h", tz="UTC")
    last = splits.split(index)[-1]
    cut = int(last.validation_span[0])
    earlier = sum(int((f.test < cut).sum()) for f in splits.split(index)[:-1])
    return splits, n, earlier + len(last.validation_span)


def perfect_decision(edge: str, drift: float, seed: int, splits: WalkForward, n: int) -> bool:
    """Does the last fold trade when every score is the oracle's side (0.5 ± 0.3)?"""
    made = planted_market(n, edge=edge, drift=drift, horizon=HORIZON, cost=COST, seed=seed)
    frame = made.bars
    folds = splits.split(frame.index)
    up = 0.5 + 0.3 * made.state.to_numpy()

    def part(rows: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"timestamp": frame.index[rows], "proba_up": up[rows]})

    tests = [part(f.test) for f in folds]
    vals = [part(f.validation_span) for f in folds]
    last = pooled_decisions(frame, TARGET, folds, tests, vals, THRESHOLDS)[-1]
    return not last.abstain


def model_decision(drift: float, seed: int, splits: WalkForward, n: int) -> dict[str, Any]:
    """The model-based variant on a regime file: does its last fold trade, and its net P&L
    against the oracle's in that fold's test period."""
    made = planted_market(n, edge="regime", drift=drift, horizon=HORIZON, cost=COST, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        feed = build_feature_feed(made.bars, "core", targets=(TARGET.spec,))
        path = write_feature_feed(feed, Path(tmp) / "feed.parquet")
        wf = run_walk_forward(
            path, "xgboost", XGB, TARGET.name, splits, Path(tmp) / "wf", n_jobs=1,
            progress=False, resume=False, thresholds=THRESHOLDS, seed=seed,
        )  # fmt: skip
        preds = wf.predictions()
    last = wf.folds[-1]
    part = preds[preds["fold"] == last["fold"]]
    rows = made.bars.index.get_indexer(pd.DatetimeIndex(part["timestamp"]))
    signal = np.zeros(n)
    signal[rows] = np.nan_to_num(part["signal"].to_numpy(dtype=float))
    model = oracle_pnl(made.bars, signal, HORIZON, COST)
    oracle = made.oracle()
    window = np.zeros(n, dtype=bool)
    window[rows] = True
    return {
        "trades": not last["abstain"],
        "model_pnl": float(model[window].sum()),
        "oracle_pnl": float(oracle[window].sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--folds", type=int, default=4, help="test folds per file")
    parser.add_argument("--quick", action="store_true", help="2 seeds, for the test suite")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    seeds = range(2 if args.quick else args.seeds)
    started = time.perf_counter()
    splits, n, evidence = schedule(args.folds)
    calib = 40_000 if args.quick else 200_000
    sizes = {"2": 2.0, "3": 3.0, "4": 4.0, "6": 6.0}
    drifts = {
        (edge, k): calibrate_drift(t, evidence, edge=edge, horizon=HORIZON, cost=COST, bars=calib)
        for edge in EDGES
        for k, t in sizes.items()
    }
    run = Parallel(n_jobs=args.jobs)
    perfect_keys = [(e, k, s) for e in EDGES for k in ("2", "3", "4") for s in seeds]
    perfect = run(
        delayed(perfect_decision)(e, drifts[e, k], s, splits, n) for e, k, s in perfect_keys
    )
    null_perfect = run(
        delayed(perfect_decision)(e, 0.0, s, splits, n) for e in EDGES for s in seeds
    )
    model_keys = [(k, s) for k in sizes for s in seeds]
    models = run(delayed(model_decision)(drifts["regime", k], s, splits, n) for k, s in model_keys)
    null_models = run(delayed(model_decision)(0.0, s, splits, n) for s in seeds)

    def rate(flags: list[bool]) -> float:
        return round(float(np.mean(flags)), 3) if flags else math.nan

    perfect_rate = {k: rate([ok for (e, kk, s), ok in zip(perfect_keys, perfect, strict=True)
                             if kk == k]) for k in ("2", "3", "4")}  # fmt: skip
    trade_rate = {k: rate([m["trades"] for (kk, s), m in zip(model_keys, models, strict=True)
                           if kk == k]) for k in sizes}  # fmt: skip
    captured = {}
    for k in ("4", "6"):
        picked = [m for (kk, s), m in zip(model_keys, models, strict=True) if kk == k]
        oracle = sum(m["oracle_pnl"] for m in picked)
        captured[k] = round(sum(m["model_pnl"] for m in picked) / oracle, 3) if oracle else None
    nulls = list(null_perfect) + [m["trades"] for m in null_models]
    val_bars = int(round(VALIDATION * TRAIN))
    out = {
        "false_trade_rate": rate(nulls),
        "perfect_score_trade_rate": perfect_rate,
        "trade_rate": trade_rate,
        "captured_share": captured,
        "annual_sharpe_at": {"3": round(3 / math.sqrt(evidence) * math.sqrt(HOURS_PER_YEAR), 2)},
        "annual_sharpe_at_validation_only": {
            "3": round(3 / math.sqrt(val_bars) * math.sqrt(HOURS_PER_YEAR), 2)
        },
        "evidence_bars": evidence,
        "null_decisions": len(nulls),
        "drift_per_bar": {f"{e}:{k}": round(v, 6) for (e, k), v in drifts.items()},
        "seeds": len(seeds),
        "seconds": round(time.perf_counter() - started, 1),
    }
    out["meets_targets"] = bool(
        out["false_trade_rate"] <= 0.05
        and perfect_rate["3"] >= 0.85
        and trade_rate["4"] >= 0.8
        and (captured["4"] or 0) >= 0.5
        and len(seeds) >= 20
        and out["seconds"] < 600
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
