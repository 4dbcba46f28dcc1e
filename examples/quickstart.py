"""Quick start: bars → features → walk-forward XGBoost → your strategy → report, in plain Python.

    python examples/quickstart.py                        # the shipped BTCUSDT sample, ~1 min
    python examples/quickstart.py --start 2025-01-01 --n-estimators 20 --train 40D --test 20D

Writes OUT/features.parquet, OUT/models/ (one XGBoost model per fold and the
out-of-sample prediction feed) and OUT/report/report.html.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlstrat import (
    FeatureFeed,
    MLStrategy,
    WalkForward,
    build_feature_feed,
    build_report,
    load_bars,
    run_backtest,
    run_walk_forward,
    write_feature_feed,
)

SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "BTCUSDT-1h.parquet"


class ConfidentLongShort(MLStrategy):
    """Follow the model's side, but only when it is at least `min_confidence` sure."""

    params = (("allow_short", True), ("min_confidence", 0.55), ("max_hold_bars", 24))

    def entry_signal(self, data, pred):
        if pred.confidence < self.p.min_confidence:
            return 0
        return super().entry_signal(data, pred)


def main(out, start=None, end=None, n_estimators=300, train="4mo", test="2mo"):
    out = Path(out)
    bars = load_bars(SAMPLE).loc[start:end]
    frame = build_feature_feed(bars, "xgb", targets=["direction:1", "forward_return:1"])
    feed = write_feature_feed(frame, out / "features.parquet")
    wf = run_walk_forward(
        feed,
        predictor="xgboost",
        params={"n_estimators": n_estimators, "max_depth": 4, "learning_rate": 0.05},
        splits=WalkForward(train=train, test=test),
        out=out / "models",
    )
    first = wf.predictions()["timestamp"].iloc[0]  # trade the out-of-sample period only
    data = FeatureFeed.from_parquet(feed, start=first, predictions=wf.predictions_path)
    result = run_backtest(
        {"BTCUSDT": data},
        ConfidentLongShort,
        sizer_params={"tiers": [[0.55, 0.25], [0.60, 0.5], [0.65, 1.0]]},
        cash=10_000,
        commission=0.001,
        slippage=0.0005,
        folds=wf.folds,
    )
    page = build_report(result, out / "report", title="Quick start: XGBoost on BTCUSDT 1h")
    print(f"{len(result.trades)} trades; report: {page}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/quickstart")
    parser.add_argument("--start", default=None, help="first bar (UTC), e.g. 2025-01-01")
    parser.add_argument("--end", default=None)
    parser.add_argument("--n-estimators", type=int, default=300)
    parser.add_argument("--train", default="4mo")
    parser.add_argument("--test", default="2mo")
    a = parser.parse_args()
    main(a.out, a.start, a.end, a.n_estimators, a.train, a.test)
