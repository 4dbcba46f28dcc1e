"""Training time per predictor adapter on 20,000 rows of real BTCUSDT 1m candles.

One epoch for Keras adapters (wall time of `fit(..., epochs=1)`, so graph
building and compilation are included), one complete fit for XGBoost (default
500 trees with early stopping). Adapters that cannot be imported or fitted
are listed under "skipped" with the reason. Prints one JSON object.

    .venv/bin/python benchmarks/train.py [--rows 20000] [--only xgboost,lstm]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlstrat.predictors.registry import (  # noqa: E402
    UnknownPredictorError,
    create_predictor,
    get_predictor,
)

DATA = REPO / "datasets" / "BTCUSDT-1m-2025-07.parquet"
ADAPTERS = (
    "xgboost",
    "lstm",
    "lstm_attention",
    "lstm_regressor",
    "transformer",
    "volatility_lstm",
    "hybrid",
)
WARM_UP = 200  # bars dropped so every rolling feature is defined


def features(bars: pd.DataFrame) -> pd.DataFrame:
    """17 causal features (bar t uses bars <= t)."""
    close, logc = bars["close"], np.log(bars["close"])
    r = logc.diff()
    X = pd.DataFrame(index=bars.index)
    for h in (1, 3, 6, 12, 24, 48):
        X[f"ret_{h}"] = logc.diff(h)
    for w in (6, 24, 72):
        X[f"rv_{w}"] = r.rolling(w).std()
    X["range"] = np.log(bars["high"] / bars["low"])
    X["body"] = (close - bars["open"]) / close
    X["upper_wick"] = (bars["high"] - bars[["open", "close"]].max(axis=1)) / close
    X["lower_wick"] = (bars[["open", "close"]].min(axis=1) - bars["low"]) / close
    logv = np.log1p(bars["volume"])
    X["volume_z_24"] = (logv - logv.rolling(24).mean()) / logv.rolling(24).std()
    gain, loss = r.clip(lower=0), (-r).clip(lower=0)
    rs = gain.ewm(alpha=1 / 14, adjust=False).mean() / loss.ewm(alpha=1 / 14, adjust=False).mean()
    X["rsi_14"] = 100 - 100 / (1 + rs)
    for w in (20, 50):
        X[f"sma_{w}_ratio"] = close / close.rolling(w).mean() - 1
    return X


def targets(bars: pd.DataFrame, n_train: int) -> pd.DataFrame:
    logc = np.log(bars["close"])
    fwd1 = logc.shift(-1) - logc
    q = fwd1.iloc[:n_train].quantile([1 / 3, 2 / 3]).to_numpy()
    r = logc.diff()
    fwd_vol = r[::-1].rolling(24).std()[::-1].shift(-1)  # std of the next 24 returns
    return pd.DataFrame(
        {
            "direction_1": (fwd1 > 0).astype(float).where(fwd1.notna()),
            "three_class_1": pd.Series(np.digitize(fwd1, q), index=bars.index)
            .astype(float)
            .where(fwd1.notna()),
            "forward_return_1": fwd1,
            "forward_volatility_24": fwd_vol,
        }
    )


def target_for(task: str, y: pd.DataFrame) -> pd.Series | pd.DataFrame:
    return {
        "direction": y["direction_1"],
        "three_class": y["three_class_1"],
        "regression": y["forward_return_1"],
        "volatility": y["forward_volatility_24"],
    }[task]


def params_for(name: str) -> dict:
    if name == "xgboost":
        # One thread: on a loaded 2-core machine n_jobs=2 measured ~15x slower (OpenMP
        # threads spinning against other processes), and walk-forward parallelises folds.
        return {"n_jobs": 1}
    if name == "hybrid":
        one = {"epochs": 1, "seed": 0}
        return {"members": [("lstm", one), ("transformer", one)], "weights": (0.5, 0.5)}
    if name == "volatility_lstm":
        # Its input is one realized-volatility column; rv_24 is ours (std of 24 log returns).
        return {"epochs": 1, "seed": 0, "column": "rv_24"}
    return {"epochs": 1, "seed": 0}


def _timed_fit(model, X, y) -> float:
    start = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--only", help="comma-separated adapter names")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(ADAPTERS)

    bars = pd.read_parquet(DATA).set_index("timestamp").iloc[: args.rows + WARM_UP + 30]
    X_all, y_all = features(bars), targets(bars, WARM_UP + args.rows)
    X = X_all.iloc[WARM_UP : WARM_UP + args.rows]
    y = y_all.iloc[WARM_UP : WARM_UP + args.rows]

    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            cls = get_predictor(name)
            model = create_predictor(name, **params_for(name))
        except UnknownPredictorError as exc:
            skipped[name] = f"not importable: {exc.problem}"
            continue
        except Exception as exc:  # a benchmark records failures instead of stopping
            skipped[name] = f"could not be created: {type(exc).__name__}: {exc}"
            continue
        task = getattr(model, "task", getattr(cls, "task", "direction"))
        target = y if name == "hybrid" else target_for(task, y)
        # XGBoost is cheap: best of 3 fits damps noise from a shared machine; Keras runs once.
        repeats = 3 if name == "xgboost" else 1
        try:
            seconds = min(_timed_fit(model, X, target) for _ in range(repeats))
        except Exception as exc:
            skipped[name] = f"fit failed: {type(exc).__name__}: {exc}"
            continue
        entry = {
            "seconds": round(seconds, 3),
            "unit": "one fit, best of 3 (early stopping)" if name == "xgboost" else "one epoch",
            "task": task,
            "window": int(getattr(model, "window", 1)),
            "repeats": repeats,
        }
        if name == "xgboost":
            entry["best_iteration"] = model.best_iteration_
            entry["trees_built"] = len(model.history_["train"]["logloss"])
        entry["rows_per_second"] = round(len(X) / seconds, 1)
        results[name] = entry

    print(
        json.dumps(
            {
                "benchmark": "train",
                "data": DATA.relative_to(REPO).as_posix(),
                "rows": len(X),
                "features": X.shape[1],
                "adapters": results,
                "skipped": skipped,
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
