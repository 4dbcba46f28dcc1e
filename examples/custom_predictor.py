"""Bring your own model: a logistic-regression Predictor, walk-forward trained and backtested.

    python examples/custom_predictor.py --start 2025-01-01

A predictor is a class with scikit-learn style `fit` / `predict` and a model
directory `save` / `load` (JSON here: no pickle). `register_predictor` makes
its name usable everywhere a built-in name is: `create_predictor`,
`run_walk_forward`, YAML configs. Registered in a script it exists in this
process only, so walk-forward runs with n_jobs=1 here; publish it through the
`mlstrat.predictors` entry-point group (docs/predictors.md) to use it from
`mlstrat run`, in parallel workers or on a Dask cluster.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from mlstrat import (
    FeatureFeed,
    Prediction,
    Predictor,
    WalkForward,
    build_feature_feed,
    load_bars,
    register_predictor,
    run_backtest,
    run_walk_forward,
    write_feature_feed,
)
from mlstrat.predictors.persistence import read_model_dir, write_model_dir

SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "BTCUSDT-1h.parquet"


@register_predictor("logistic")
class LogisticPredictor(Predictor):
    """L2 logistic regression on standardised features; P(up) with NaN where inputs are missing."""

    task = "direction"
    window = 1

    def __init__(self, C: float = 0.1, max_iter: int = 500) -> None:
        self.C = C  # parameters under their own names: Predictor.get_params() reads them back
        self.max_iter = max_iter
        self.feature_names: list[str] = []

    def fit(self, X: pd.DataFrame, y: pd.Series, *, validation=None) -> LogisticPredictor:
        self.feature_names = list(X.columns)
        rows = X.notna().all(axis=1).to_numpy() & y.notna().to_numpy()
        x = X.to_numpy(dtype=float)[rows]
        self.mean_, self.scale_ = x.mean(axis=0), x.std(axis=0) + 1e-12  # training rows only
        model = LogisticRegression(C=self.C, max_iter=self.max_iter)
        model.fit((x - self.mean_) / self.scale_, y.to_numpy()[rows].astype(int))
        self.coef_, self.intercept_ = model.coef_[0], float(model.intercept_[0])
        return self

    def predict(self, X: pd.DataFrame) -> Prediction:
        x = (X[self.feature_names].to_numpy(dtype=float) - self.mean_) / self.scale_
        up = 1.0 / (1.0 + np.exp(-(x @ self.coef_ + self.intercept_)))  # NaN rows stay NaN
        proba = np.column_stack([1.0 - up, up])
        signal = np.where(np.isnan(up), np.nan, np.where(up >= 0.5, 1.0, -1.0))
        return Prediction(signal=signal, confidence=np.maximum(up, 1.0 - up), proba=proba)

    def save(self, path) -> None:
        meta = {
            "predictor": self.name,
            "params": self.get_params(),
            "task": self.task,
            "feature_names": self.feature_names,
            "window": 1,
        }
        with write_model_dir(path, meta) as tmp:
            state = {
                "mean": self.mean_.tolist(),
                "scale": self.scale_.tolist(),
                "coef": self.coef_.tolist(),
                "intercept": self.intercept_,
            }
            (tmp / "coefficients.json").write_text(json.dumps(state), encoding="utf-8")

    @classmethod
    def load(cls, path) -> LogisticPredictor:
        meta = read_model_dir(path)  # verifies every file against the manifest first
        model = cls(**meta["params"])
        model.feature_names = list(meta["feature_names"])
        state = json.loads((Path(path) / "coefficients.json").read_text(encoding="utf-8"))
        model.mean_, model.scale_ = np.asarray(state["mean"]), np.asarray(state["scale"])
        model.coef_, model.intercept_ = np.asarray(state["coef"]), float(state["intercept"])
        return model


def main(out, start=None, end=None, train="4mo", test="2mo"):
    from mlstrat.strategy import MLStrategy

    out = Path(out)
    bars = load_bars(SAMPLE).loc[start:end]
    frame = build_feature_feed(bars, "core", targets=["direction:1", "forward_return:1"])
    feed = write_feature_feed(frame, out / "features.parquet")
    wf = run_walk_forward(
        feed,
        predictor="logistic",
        params={"C": 0.05},
        n_jobs=1,
        splits=WalkForward(train=train, test=test),
        out=out / "models",
    )
    print(pd.DataFrame(wf.folds)[["fold", "test_start", "accuracy", "auc"]].to_string(index=False))
    first = wf.predictions()["timestamp"].iloc[0]
    data = FeatureFeed.from_parquet(feed, start=first, predictions=wf.predictions_path)
    result = run_backtest(
        {"BTCUSDT": data},
        MLStrategy,
        {"allow_short": True},
        sizer_params={"tiers": [[0.52, 0.5], [0.55, 1.0]]},
        commission=0.001,
    )
    result.save(out / "result")
    print(f"{len(result.trades)} trades, final value {result.equity.iloc[-1]:,.2f}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/custom_predictor")
    parser.add_argument("--start", default=None)
    parser.add_argument("--end", default=None)
    parser.add_argument("--train", default="4mo")
    parser.add_argument("--test", default="2mo")
    a = parser.parse_args()
    main(a.out, a.start, a.end, a.train, a.test)
