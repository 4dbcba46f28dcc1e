"""Training cost of the predictor adapters on real candles, and the issue-17 measurements.

Sections (``--sections``, default all; one JSON object holds them all):

* adapters: one epoch per Keras adapter (wall time of `fit(..., epochs=1)`, graph
  building included) and one complete XGBoost fit on 20,000 rows of BTCUSDT 1m;
  adapters that cannot be imported or fitted are listed under "skipped".
* seed_fold: the seed-sized networks (lstm 128/64/32 window 50, lstm_attention
  window 120, transformer d_model 64, window 50) on the last 4-month fold of
  the shared BTCUSDT 1h file with the `lstm` feature set (46 columns). Plain
  Keras: `model.fit` on materialised windows, Keras' default batch of 32,
  EarlyStopping(patience 10, best weights) on `val_loss`; the validation loss it
  reaches is that of the weights it gives back, measured without the L2 weight
  penalty Keras adds to `val_loss` (the model's own loss). Ours: the adapter with
  the batch size and learning rate configs/full.yaml gives it (--ours KEY=VALUE
  overrides). speedup_vs_keras_fit: plain's seconds to the epoch it gives back
  over ours to the first epoch at least as good, the smallest over the models;
  the hindsight variant targets plain's lowest loss of any epoch instead.
* warm_start: the full.yaml hybrid (lstm + lstm_attention at seed sizes) over 12
  consecutive 4-month/2-month folds of BTCUSDT 1h, cold vs warm_start, each run
  one fold at a time on all cores: wall-time ratio and mean test AUC / log loss.
* windows_memory: peak RSS (ru_maxrss) of a fit on 73,000 bars x window 120 x
  46 features, one subprocess per variant: "before" materialises the windows
  (gather_windows + model.fit on arrays, the path before issue 17), "after" is
  the adapter's lazy tf.data pipeline. Ratio before / after, of the whole
  process and of the growth over the process after TensorFlow and the data loaded;
  "after" once more with glibc's MALLOC_MMAP_THRESHOLD_ fixed at 128 KiB, to show
  how much of the lazy fit's peak is freed memory the allocator keeps.
* chain_memory: a warm-started chain of the seed LSTM (window 50, 128/64/32, one
  or two epochs a fold) over 24 consecutive folds of BTCUSDT 1h, in a fresh
  subprocess per variant: all folds in the calling process (before) or in the
  runner's worker processes replaced every CHAIN_FOLDS_PER_PROCESS folds (after);
  peak RSS of the largest process, and the caller's RSS after each fold.
* plan: `mlstrat run configs/full.yaml --plan` total hours (`mlstrat.plan`), as
  configured and with the pre-issue-17 settings (cold start, batch 32).

``--quick`` shrinks every section (tiny networks, few rows and epochs, the
shipped sample) so the script runs in well under a minute as a smoke test; the
numbers are then meaningless. The machine's 1-minute load average is recorded
at the start and end: on a shared machine every wall time is noisy.

    .venv/bin/python benchmarks/train.py [--sections seed_fold,warm_start] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
SHARED_1H = REPO.parent / "shared" / "datasets" / "binance" / "BTCUSDT-1h.parquet"
SAMPLE_1H = REPO / "datasets" / "BTCUSDT-1h.parquet"
FULL_CONFIG = REPO / "configs" / "full.yaml"
SECTIONS = ("adapters", "seed_fold", "warm_start", "windows_memory", "chain_memory", "plan")
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


def adapters_section(rows: int, only: str | None, quick: bool) -> dict[str, Any]:
    """One epoch per Keras adapter, one complete XGBoost fit, on `rows` 1m bars."""
    names = only.split(",") if only else list(ADAPTERS)
    rows = min(rows, 600) if quick else rows
    bars = pd.read_parquet(DATA).set_index("timestamp").iloc[: rows + WARM_UP + 30]
    X_all, y_all = features(bars), targets(bars, WARM_UP + rows)
    X = X_all.iloc[WARM_UP : WARM_UP + rows]
    y = y_all.iloc[WARM_UP : WARM_UP + rows]

    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for name in names:
        params = params_for(name)
        if quick and name != "xgboost":
            params = {**params, **_tiny_params(name)}
        try:
            cls = get_predictor(name)
            model = create_predictor(name, **params)
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
    return {
        "data": DATA.relative_to(REPO).as_posix(),
        "rows": len(X),
        "features": X.shape[1],
        "adapters": results,
        "skipped": skipped,
    }


def _tiny_params(name: str) -> dict[str, Any]:
    """Quick-mode sizes: the smallest networks each adapter accepts, one epoch."""
    if name == "hybrid":
        one = {"epochs": 1, "seed": 0, **_TINY_LSTM}
        return {"members": [("lstm", one), ("lstm", one)], "weights": (0.5, 0.5)}
    if name == "transformer":
        return {"window": 8, "d_model": 8, "n_heads": 2, "n_layers": 1, "ff_dim": 8}
    if name == "volatility_lstm":
        return {"memory": 8, "units": (4,)}
    return _TINY_LSTM


_TINY_LSTM = {"window": 8, "units": (4,), "dropout": 0.0, "batch_norm_layers": 0}


# ---------------------------------------------------------------------------- seed fold

#: The seed-sized networks (configs/full.yaml) and the target each learns.
SEED_MODELS: dict[str, tuple[dict[str, Any], str]] = {
    "lstm": ({"window": 50, "units": (128, 64, 32)}, "direction_1"),
    "lstm_attention": ({"window": 120, "units": (128, 64, 32)}, "direction_1"),
    "transformer": (
        {"window": 50, "d_model": 64, "n_heads": 4, "n_layers": 2, "ff_dim": 128},
        "three_class_1",
    ),
}
SEED_EPOCHS, SEED_PATIENCE = 50, 10
#: Training settings the seed sizes do not fix (batch size, learning rate): "ours" takes
#: them from configs/full.yaml, plain Keras keeps its default batch and the seeds' rate.
TRAINING_KEYS = ("batch_size", "learning_rate")


def full_config_params() -> dict[str, dict[str, Any]]:
    """Per Keras predictor name, its parameters in configs/full.yaml (hybrid members included)."""
    from mlstrat.config import load_config

    found: dict[str, dict[str, Any]] = {}
    for pred in load_config(FULL_CONFIG).predictors:
        if pred.predictor == "hybrid":
            found.update({str(n): dict(p) for n, p in pred.params["members"]})
        else:
            found[pred.predictor] = dict(pred.params)
    return found


def _one_h_bars(quick: bool) -> pd.DataFrame:
    from mlstrat.data import load_bars

    source = SAMPLE_1H if quick or not SHARED_1H.is_file() else SHARED_1H
    return load_bars(source, symbol="BTCUSDT")


def seed_fold_data(quick: bool) -> dict[str, Any]:
    """The last 4-month fold (train + 20% validation tail) of BTCUSDT 1h with the lstm set."""
    from mlstrat.features import build_feature_feed, feature_columns
    from mlstrat.walkforward.splits import WalkForward

    bars = _one_h_bars(quick)
    bars = bars.iloc[-(1500 if quick else 8000) :]
    feed = build_feature_feed(bars, "lstm", targets=["direction:1", "three_class:1:0.002"])
    splits = WalkForward(train=400, test=100) if quick else WalkForward(train="4mo", test="2mo")
    fold = splits.split(feed.index)[-1]
    names = list(feature_columns(feed))
    return {
        "X": feed[names].iloc[fold.train_span],
        "y": feed.iloc[fold.train_span],
        "X_val": feed[names].iloc[fold.validation_span],
        "y_val": feed.iloc[fold.validation_span],
        "period": [str(feed.index[fold.train_span[0]]), str(feed.index[fold.validation_span[-1]])],
    }


def _reach(losses: list[float], seconds: list[float], setup: float, target: float) -> float | None:
    """Seconds from the start until the first epoch whose validation loss is <= target."""
    for i, loss in enumerate(losses):
        if loss <= target:
            return setup + sum(seconds[: i + 1])
    return None


def _plain_fit(ours: Any, data: dict[str, Any], target: str, params: dict, quick: bool) -> dict:
    """Plain Keras on the same network, rows and scaling: materialised windows, model.fit with
    its default batch size (32) and shuffling, EarlyStopping(patience, best weights)."""
    import keras

    from mlstrat.predictors.keras_utils import (
        VAL_DATA_LOSS,
        data_loss_logger,
        epoch_timer,
        gather_windows,
        set_seed,
        window_ready,
    )
    from mlstrat.predictors.registry import create_predictor

    started = time.perf_counter()
    X, X_val = data["X"], data["X_val"]
    y, y_val = data["y"][target], data["y_val"][target]
    values = ours._inputs(X, fitting=False)
    y_enc = ours._encode_targets(y, values, X.index)
    rows = np.flatnonzero(window_ready(values, ours.steps) & np.isfinite(y_enc))
    both = pd.concat([X, X_val])
    both_values = ours._inputs(both, fitting=False)
    yb = ours._encode_targets(pd.concat([y, y_val]), both_values, both.index)
    val_rows = np.flatnonzero(window_ready(both_values, ours.steps) & np.isfinite(yb))
    val_rows = val_rows[val_rows >= len(X)]
    scaled = ours.x_scaler_.transform(values)
    scaled_both = ours.x_scaler_.transform(both_values)
    X_fit = gather_windows(scaled, ours.steps, rows)
    Xv = gather_windows(scaled_both, ours.steps, val_rows)
    y_fit, yv = ours._keras_targets(y_enc[rows]), ours._keras_targets(yb[val_rows])

    plain = create_predictor(ours.name, **params)
    plain.base_rate_ = getattr(ours, "base_rate_", None)
    set_seed(42)
    model = plain._build_model(X_fit.shape[2], int(np.ceil(len(X_fit) / 32)))
    timer = epoch_timer(keras)
    history = model.fit(
        X_fit,
        y_fit,
        validation_data=(Xv, yv),
        epochs=plain.epochs,
        callbacks=[
            data_loss_logger(keras),  # records the loss without the penalty; stops on val_loss
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=plain.patience, restore_best_weights=True
            ),
            timer,
        ],
        verbose=0,
    )
    losses = [float(v) for v in history.history["val_loss"]]
    pure = [float(v) for v in history.history[VAL_DATA_LOSS]]
    kept = int(np.argmin(losses))  # the epoch whose weights EarlyStopping gives back
    best = int(np.argmin(pure))  # hindsight: no early-stopping rule on val_loss returns this one
    setup = timer.began - started
    return {
        "batch_size": 32,
        "epochs_trained": len(losses),
        "kept_epoch": kept + 1,
        "kept_val_loss": pure[kept],
        "seconds_to_kept": round(setup + sum(timer.seconds[: kept + 1]), 2),
        "best_epoch": best + 1,
        "best_val_loss": pure[best],
        "seconds_to_best": round(setup + sum(timer.seconds[: best + 1]), 2),
        "val_losses": [round(v, 5) for v in pure],
        "val_losses_with_penalty": [round(v, 5) for v in losses],
        "setup_s": round(setup, 2),
        "epoch_s": [round(t, 2) for t in timer.seconds],
        "seconds_total": round(time.perf_counter() - started, 2),
    }


def seed_fold_section(quick: bool, only: str | None, ours: dict[str, Any]) -> dict[str, Any]:
    """Per seed model: wall time to plain Keras' best validation loss, ours vs plain."""
    from mlstrat.predictors.keras_utils import VAL_DATA_LOSS
    from mlstrat.predictors.registry import create_predictor

    data = seed_fold_data(quick)
    configured = {} if quick else full_config_params()
    models: dict[str, Any] = {}
    names = only.split(",") if only else list(SEED_MODELS)
    for name in names:
        size, target = SEED_MODELS[name]
        params = {
            **size,
            "epochs": 2 if quick else SEED_EPOCHS,
            "patience": 1 if quick else SEED_PATIENCE,
            "seed": 42,
        }
        if quick:
            params = {**params, **_tiny_params(name)}
        chosen = {k: v for k, v in configured.get(name, {}).items() if k in TRAINING_KEYS}
        mine = create_predictor(name, **{**params, **chosen, **ours})
        started = time.perf_counter()
        mine.fit(data["X"], data["y"][target], validation=(data["X_val"], data["y_val"][target]))
        total = time.perf_counter() - started
        plain = _plain_fit(mine, data, target, params, quick)
        losses = mine.history_[VAL_DATA_LOSS]
        timing = mine.fit_timing_
        reach = _reach(losses, timing["epochs"], timing["setup"], plain["kept_val_loss"])
        reach_best = _reach(losses, timing["epochs"], timing["setup"], plain["best_val_loss"])
        models[name] = {
            "target": target,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
            "ours": {
                "batch_size": mine.batch_size,
                "learning_rate": getattr(mine, "learning_rate", None),
                "epochs_trained": len(losses),
                "best_epoch": int(np.argmin(losses)) + 1,
                "best_val_loss": float(min(losses)),
                "val_losses": [round(v, 5) for v in losses],
                "val_losses_with_penalty": [round(v, 5) for v in mine.history_["val_loss"]],
                "setup_s": timing["setup"],
                "epoch_s": timing["epochs"],
                "seconds_to_plain_kept": None if reach is None else round(reach, 2),
                "seconds_to_plain_best": None if reach_best is None else round(reach_best, 2),
                "seconds_total": round(total, 2),
                "validation_metrics": mine.validation_metrics_,
            },
            "keras_fit": plain,
            "speedup_vs_keras_fit": None
            if reach is None
            else round(plain["seconds_to_kept"] / reach, 2),
            "speedup_to_hindsight_best": None
            if reach_best is None
            else round(plain["seconds_to_best"] / reach_best, 2),
        }
    speedups = [m["speedup_vs_keras_fit"] for m in models.values()]
    return {
        "data": "shipped sample" if quick or not SHARED_1H.is_file() else "shared BTCUSDT-1h",
        "period": data["period"],
        "n_fit_rows": len(data["X"]),
        "n_validation_rows": len(data["X_val"]),
        "ours_settings": ours,
        "speedup_vs_keras_fit": None if None in speedups else min(speedups),
        "val_metric": "validation loss without the weight penalty (each model's own loss: "
        "cross-entropy, focal) of the weights each fit gives back, lower is better; mean over "
        "the models",
        "val_metric_ours": float(np.mean([m["ours"]["best_val_loss"] for m in models.values()])),
        "val_metric_keras": float(
            np.mean([m["keras_fit"]["kept_val_loss"] for m in models.values()])
        ),
        "val_metric_keras_hindsight_best": float(
            np.mean([m["keras_fit"]["best_val_loss"] for m in models.values()])
        ),
        "models": models,
    }


# ---------------------------------------------------------------------------- warm start


def hybrid_members(quick: bool) -> list[tuple[str, dict[str, Any]]]:
    """The full.yaml hybrid's members (LSTM + attention LSTM at seed sizes, both learning
    direction_1, with their warm budget); tiny ones with --quick."""
    if quick:
        tiny = {**_TINY_LSTM, "epochs": 2, "patience": 1}
        return [("lstm", tiny), ("lstm_attention", tiny)]
    from mlstrat.config import load_config

    hybrid = next(p for p in load_config(FULL_CONFIG).predictors if p.predictor == "hybrid")
    return [(str(n), dict(p)) for n, p in hybrid.params["members"]]


def _warm_feed(tmp: Path, quick: bool, n_folds: int) -> tuple[Path, Any]:
    """A feature feed (lstm set, direction_1) cut to exactly `n_folds` folds of the schedule."""
    from mlstrat.features import build_feature_feed, write_feature_feed
    from mlstrat.walkforward.splits import WalkForward

    splits = WalkForward(train=300, test=100) if quick else WalkForward(train="4mo", test="2mo")
    months = 2 * n_folds + 7  # 4 months of training, 2 per fold, and room for the warm-up
    quick_bars = 1500 + 100 * max(0, n_folds - 3)
    bars = _one_h_bars(quick).iloc[-(quick_bars if quick else 24 * 30 * months) :]
    feed = build_feature_feed(bars, "lstm", targets=["direction:1"])
    folds = splits.split(feed.index)
    if len(folds) < n_folds:
        raise SystemExit(f"only {len(folds)} folds in the data, {n_folds} wanted")
    first = folds[-n_folds]  # the last n_folds folds: the newest data
    feed = feed.loc[first.train_start : folds[-1].test_end]
    return write_feature_feed(feed, tmp / "feed.parquet"), splits


def warm_start_section(quick: bool) -> dict[str, Any]:
    """The hybrid over consecutive folds, cold then warm-started, one fold at a time."""
    from mlstrat.walkforward.runner import run_walk_forward

    n_folds = 3 if quick else 12
    members = hybrid_members(quick)
    runs: dict[str, Any] = {}
    elapsed: dict[str, float] = {}  # unrounded, for the ratio
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        feed, splits = _warm_feed(Path(tmp), quick, n_folds)
        for name, warm in (("cold", False), ("warm", True)):
            load = os.getloadavg()[0]
            started = time.perf_counter()
            result = run_walk_forward(
                feed,
                predictor="hybrid",
                params={"members": members, "weights": (0.5, 0.5)},
                target="direction_1",
                splits=splits,
                out=Path(tmp) / name,
                n_jobs=1,
                seed=42,
                progress=False,
                warm_start=warm,
            )
            seconds = time.perf_counter() - started
            elapsed[name] = seconds
            folds = result.folds
            runs[name] = {
                "seconds": round(seconds, 1),
                "fit_seconds": round(
                    sum(_fold_info(result.out, f)["fit_seconds"] for f in range(len(folds))), 1
                ),
                "mean_auc": float(np.mean([f["auc"] for f in folds])),
                "mean_log_loss": float(np.mean([f["log_loss"] for f in folds])),
                "epochs_trained": [_epochs(result.out, f) for f in range(len(folds))],
                "load_average_1min_start": round(load, 2),
            }
    cold, warm = runs["cold"], runs["warm"]
    return {
        "folds": n_folds,
        "splits": splits.describe(),
        "members": [
            [n, {k: list(v) if isinstance(v, tuple) else v for k, v in p.items()}]
            for n, p in members
        ],  # fmt: skip
        **runs,
        "time_ratio_cold_over_warm": round(elapsed["cold"] / elapsed["warm"], 2),
        "auc_delta": round(warm["mean_auc"] - cold["mean_auc"], 4),
        "log_loss_delta": round(warm["mean_log_loss"] - cold["mean_log_loss"], 4),
    }


def _fold_info(out: Path, number: int) -> dict[str, Any]:
    return json.loads((out / "folds" / f"{number:03d}" / "fold.json").read_text())


def _epochs(out: Path, number: int) -> list[int]:
    """Epochs each hybrid member trained in fold `number` (from its saved metadata)."""
    members = sorted((out / "folds" / f"{number:03d}" / "members").iterdir())
    meta = [json.loads((m / "metadata.json").read_text()) for m in members]
    return [m["training"]["epochs_trained"] for m in meta]


# ---------------------------------------------------------------------------- windows memory

MEMORY_SHAPE = (73_000, 120, 46)  # bars, window, features
QUICK_MEMORY_SHAPE = (3_000, 20, 8)


def memory_child(variant: str, quick: bool) -> dict[str, Any]:
    """In a fresh process: fit a one-unit LSTM for one epoch on (bars, window, features) and
    report peak RSS; "before" materialises the windows as mlstrat did before issue 17."""
    from mlstrat.predictors.keras_utils import gather_windows, import_tf, set_seed, window_ready
    from mlstrat.predictors.lstm import LSTMPredictor
    from mlstrat.predictors.scaling import StandardScaler

    n, window, n_features = QUICK_MEMORY_SHAPE if quick else MEMORY_SHAPE
    import_tf()
    rng = np.random.default_rng(0)
    index = pd.date_range("2018-01-01", periods=n, freq="1h", tz="UTC")
    X = pd.DataFrame(rng.standard_normal((n, n_features)), index=index,
                     columns=[f"f{i}" for i in range(n_features)])  # fmt: skip
    y = pd.Series((rng.random(n) > 0.5).astype(float), index=index, name="direction_1")
    model = LSTMPredictor(window=window, units=(1,), dropout=0.0, batch_norm_layers=0,
                          dense_units=0, epochs=1, batch_size=1024, seed=0)  # fmt: skip
    baseline = _maxrss_mb()
    started = time.perf_counter()
    if variant == "after":
        model.fit(X, y)
    else:
        values = model._inputs(X, fitting=True)
        samples = np.flatnonzero(window_ready(values, window) & np.isfinite(y.to_numpy()))
        n_val = int(round(len(samples) * 0.2))
        fit_rows, val_rows = samples[: len(samples) - n_val - 1], samples[len(samples) - n_val :]
        scaled = StandardScaler().fit(values[: fit_rows[-1] + 1]).transform(values)
        X_fit, X_val = (
            gather_windows(scaled, window, fit_rows),
            gather_windows(scaled, window, val_rows),
        )
        target = y.to_numpy(dtype=np.float32)
        set_seed(0)
        net = model._build_model(n_features, 1)
        net.fit(X_fit, target[fit_rows], validation_data=(X_val, target[val_rows]), epochs=1,
                batch_size=1024, shuffle=True, verbose=0)  # fmt: skip
    return {
        "variant": variant,
        "peak_rss_mb": round(_maxrss_mb(), 1),
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_after_tensorflow_and_data_mb": round(baseline, 1),
        "fit_seconds": round(time.perf_counter() - started, 1),
    }


def _status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB; None where it is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _maxrss_mb() -> float:
    """Peak RSS of this process image in MiB: VmHWM, which exec resets; ru_maxrss (the same
    where VmHWM is missing) keeps the parent's peak at fork on Linux."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_fresh_process(flag: str, variant: str, quick: bool, **env: str) -> dict[str, Any]:
    """The JSON this script prints with `flag variant`, run in a new process (with `env`)."""
    cmd = [sys.executable, __file__, flag, variant] + (["--quick"] if quick else [])
    done = subprocess.run(
        cmd, capture_output=True, text=True, check=True, env={**os.environ, **env}
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _in_fresh_processes(flag: str, quick: bool) -> dict[str, dict[str, Any]]:
    """`flag before` and `flag after`, each in a new process."""
    return {v: _in_fresh_process(flag, v, quick) for v in ("before", "after")}


def windows_memory_section(quick: bool) -> dict[str, Any]:
    """Peak RSS of the materialised and the lazy fit, one subprocess each."""
    found = _in_fresh_processes("--memory-variant", quick)
    before, after = found["before"], found["after"]
    growth = {
        v: found[v]["peak_rss_mb"] - found[v]["rss_after_tensorflow_and_data_mb"] for v in found
    }
    # glibc keeps freed batch-sized blocks in its arenas once its mmap threshold has risen
    # to their size; a fixed threshold returns them (at a cost in time), shown for scale
    fixed = _in_fresh_process("--memory-variant", "after", quick, MALLOC_MMAP_THRESHOLD_="131072")
    n, window, n_features = QUICK_MEMORY_SHAPE if quick else MEMORY_SHAPE
    return {
        "bars": n,
        "window": window,
        "features": n_features,
        "materialised_windows_mb": round(n * window * n_features * 4 / 2**20, 1),
        "before": before,
        "after": after,
        "peak_rss_ratio_before_over_after": round(before["peak_rss_mb"] / after["peak_rss_mb"], 2),
        "growth_ratio_before_over_after": round(growth["before"] / max(growth["after"], 1.0), 2),
        "after_with_malloc_mmap_threshold_128k": fixed,
        "peak_rss_ratio_before_over_after_with_threshold": round(
            before["peak_rss_mb"] / fixed["peak_rss_mb"], 2
        ),
    }


# ---------------------------------------------------------------------------- chain memory

CHAIN_FOLDS = 24


def chain_memory_child(variant: str, quick: bool) -> dict[str, Any]:
    """In a fresh process: the seed LSTM warm-started over consecutive folds, every fold in
    this process ("before") or in the runner's recycled worker processes ("after")."""
    from mlstrat.walkforward import runner

    if variant == "before":
        runner._recycled_chain = lambda chain: map(runner.run_fold, chain)
    n_folds = 4 if quick else CHAIN_FOLDS
    params = (
        {**_TINY_LSTM, "epochs": 1}
        if quick
        else {"window": 50, "units": (128, 64, 32), "batch_size": 256, "learning_rate": 0.003}
    )
    params = {**params, "epochs": 2, "patience": 1, "warm_epochs": 1, "warm_patience": 1}
    rss: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
        feed, splits = _warm_feed(Path(tmp), quick, n_folds)
        started = time.perf_counter()
        runner.run_walk_forward(
            feed,
            predictor="lstm",
            params=params,
            target="direction_1",
            splits=splits,
            out=Path(tmp) / "wf",
            n_jobs=1,
            seed=42,
            progress=False,
            warm_start=True,
            on_fold=lambda _path: rss.append(round(_status_mb("VmRSS") or 0.0, 1)),
        )
        seconds = time.perf_counter() - started
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "variant": variant,
        "folds": n_folds,
        "seconds": round(seconds, 3),  # the parent divides these: not to 0.1 s
        "peak_rss_mb_caller": round(_maxrss_mb(), 1),
        "peak_rss_mb_workers": round(workers, 1),
        "rss_mb_caller_after_each_fold": rss,
    }


def chain_memory_section(quick: bool) -> dict[str, Any]:
    """Peak RSS of a warm chain run in one process and in recycled workers."""
    found = _in_fresh_processes("--chain-variant", quick)
    peak = {v: max(r["peak_rss_mb_caller"], r["peak_rss_mb_workers"]) for v, r in found.items()}
    series = found["before"]["rss_mb_caller_after_each_fold"]
    slope = float(np.polyfit(np.arange(len(series)), series, 1)[0]) if len(series) > 2 else None
    from mlstrat.walkforward.runner import CHAIN_FOLDS_PER_PROCESS

    return {
        "folds_per_process": CHAIN_FOLDS_PER_PROCESS,
        **found,
        "rss_growth_mb_per_fold_in_one_process": None if slope is None else round(slope, 1),
        "peak_rss_mb": {v: round(p, 1) for v, p in peak.items()},
        "peak_rss_ratio_before_over_after": round(peak["before"] / peak["after"], 2),
        "time_ratio_after_over_before": round(
            found["after"]["seconds"] / found["before"]["seconds"], 2
        ),
    }


# ---------------------------------------------------------------------------- plan


def plan_section(quick: bool) -> dict[str, Any]:
    """`mlstrat run configs/full.yaml --plan` as configured and with pre-issue-17 settings."""
    from mlstrat.config import load_config
    from mlstrat.plan import plan_experiment

    if quick:
        config, before = _quick_config(), {}
    else:
        config, before = load_config(FULL_CONFIG), _pre_issue_17(load_config(FULL_CONFIG))
    started = time.perf_counter()
    plan = plan_experiment(config)
    out: dict[str, Any] = {
        "full_plan_hours": _hours(plan.total_seconds),
        "full_plan": plan.to_dict(),
        "plan_seconds": round(time.perf_counter() - started, 1),
    }
    if before:
        old = plan_experiment(load_config(FULL_CONFIG, before))
        out["full_plan_hours_before"] = _hours(old.total_seconds)
        out["full_plan_before_overrides"] = before
    return out


def _hours(seconds: float) -> float:
    """Seconds as hours to 2 decimals, or to 3 significant digits below an hour: a plan of a
    few seconds (--quick) is a few thousandths of an hour, not 0."""
    hours = seconds / 3600
    return round(hours, 2) if hours >= 1 else float(f"{hours:.3g}")


def _pre_issue_17(config: Any) -> dict[str, Any]:
    """Overrides giving full.yaml the training settings it had before issue 17: cold folds and
    the seeds' batch sizes (32, the volatility LSTM 16) and learning rates (the defaults)."""
    dropped = ("learning_rate", "warm_epochs", "warm_patience")

    def before(name: str, params: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in params.items() if k not in dropped}
        return {**kept, "batch_size": 16 if name == "volatility_lstm" else 32}

    overrides: dict[str, Any] = {}
    for i, pred in enumerate(config.predictors):
        if pred.warm_start:
            overrides[f"predictors[{i}].warm_start"] = False
        if pred.predictor == "hybrid":
            members = [[n, before(n, dict(p))] for n, p in pred.params["members"]]
            overrides[f"predictors[{i}].params.members"] = members
        elif pred.predictor != "xgboost":
            overrides[f"predictors[{i}].params"] = before(pred.predictor, dict(pred.params))
    return overrides


def _quick_config() -> Any:
    from mlstrat.config import parse_config

    raw = {
        "name": "quick",
        "data": {"files": [{"path": str(SAMPLE_1H)}], "start": "2025-01-01", "end": "2025-05-01"},
        "features": {"set": "core", "targets": ["direction:1"]},
        "predictors": [
            {"predictor": "xgboost", "params": {"n_estimators": 5, "max_depth": 2}},
            {"predictor": "lstm", "params": {**_TINY_LSTM, "epochs": 2}, "warm_start": True},
        ],
        "walkforward": {"train": "30D", "test": "15D"},
    }
    return parse_config(raw, base=REPO, source=REPO / "quick.yaml")


# ---------------------------------------------------------------------------- the script


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="adapters: 1m rows")
    parser.add_argument("--only", help="adapters / seed_fold: comma-separated adapter names")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument(
        "--ours", action="append", default=[], metavar="KEY=VALUE", help="seed_fold: our settings"
    )
    parser.add_argument("--memory-variant", choices=("before", "after"), help=argparse.SUPPRESS)
    parser.add_argument("--chain-variant", choices=("before", "after"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_variant:
        print(json.dumps(memory_child(args.memory_variant, args.quick)))
        return
    if args.chain_variant:
        print(json.dumps(chain_memory_child(args.chain_variant, args.quick)))
        return
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    ours = {k: _parse_value(v) for k, v in (a.split("=", 1) for a in args.ours)}
    out: dict[str, Any] = {
        "benchmark": "train",
        "quick": args.quick,
        "load_average_1min": {"start": round(os.getloadavg()[0], 2)},
    }
    if "windows_memory" in sections:  # first: children inherit this process's ru_maxrss
        out["windows_memory"] = windows_memory_section(args.quick)
    if "adapters" in sections:
        out.update(adapters_section(args.rows, args.only, args.quick))
    if "seed_fold" in sections:
        out["seed_fold"] = seed_fold_section(args.quick, args.only, ours)
    if "warm_start" in sections:
        out["warm_start"] = warm_start_section(args.quick)
    if "chain_memory" in sections:
        out["chain_memory"] = chain_memory_section(args.quick)
    if "plan" in sections:
        out.update(plan_section(args.quick))
    out["load_average_1min"]["end"] = round(os.getloadavg()[0], 2)
    out["cpu_count"] = os.cpu_count()
    out["python"] = platform.python_version()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
