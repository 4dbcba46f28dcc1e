"""Walk-forward fold execution: one model per fold, in parallel, resumable.

``run_walk_forward(feed_path, ...)`` splits the feature feed with a
`WalkForward` schedule, and for every fold fits a fresh predictor on the
fold's training rows (early stopping and thresholds on its validation tail),
predicts the fold's test period and writes

* ``OUT/folds/NNN/`` — the fold's model directory (loadable with
  `mlstrat.predictors.load_predictor`) plus ``fold.json`` (periods, sizes,
  thresholds, test metrics) and ``predictions.parquet``; its manifest covers
  every file, so a half-written or tampered fold is detected;
* ``OUT/predictions.parquet`` — the prediction feed of all folds (timestamp,
  fold, signal, confidence, proba_*, expected_return/volatility,
  threshold_long, threshold_short); ``signal`` is the model's decision after
  the fold's thresholds (0 = below threshold);
* ``OUT/folds.json`` — one flat record of periods and metrics per fold (with
  ``abstain``: true when the fold's net-of-cost thresholds found no edge on
  either side, so it opens no position);
* ``OUT/walkforward.json`` — the walk-forward configuration and its key;
* with ``scheme: cpcv`` (combinatorial purged CV, `cpcv.py`): the splits predict every
  bar several times, so each split keeps its own predictions in its fold directory,
  ``OUT/paths/NNN.parquet`` holds the φ assembled backtest paths, ``OUT/paths.json``
  which split fills which group, and ``OUT/predictions.parquet`` is path 0.

Folds run as independent tasks that take and return paths (the feed file in,
the fold directory out), through joblib: ``backend="loky"`` on this machine or
``backend="dask"`` on a dask.distributed cluster. Each worker limits its
math-library and TensorFlow threads to ``cores // n_jobs`` so parallel folds
do not oversubscribe the CPU. A fold whose directory verifies against its
manifest and was made by the same configuration is skipped, so a killed run
restarts where it stopped and ends with the same predictions.

With ``warm_start=True`` (Keras predictors) the folds form one chain instead:
each starts from the previous fold's final weights (`warm_sources` picks the
latest earlier fold that saw only rows before its training end) with a
smaller epoch budget, and they run one after another with all cores' threads.
Locally the chain runs in a worker process replaced every
`CHAIN_FOLDS_PER_PROCESS` folds: the next fold reads its start from the saved
fold directory, so nothing is lost, and what TensorFlow keeps from every
model it built (about 57 MB a fold for the seed LSTM) is released with the
process. As for parallel folds, a predictor class must then be importable by
the worker (defined in a module, not in a notebook or `__main__`).

Event targets (`triple_barrier_h`, `price_jump_h`, `net_return_h`) carry their end
times in the feed (`<target>_t1`); when the model learns one, every row is
purged by its own end (`WalkForward.split(index, ends)`), and trade outcomes
(`mlstrat.walkforward.outcomes`) are read from the feed's bars for
``method: net_pnl`` thresholds and predictors that learn from outcomes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError, IntegrityError, ModelLoadError, SchemaError, WorkerError
from mlstrat.features.targets import (
    Target,
    encode_labels,
    end_column,
    forward_return,
    horizon_of,
    recorded_target,
)
from mlstrat.fileio import (
    atomic_write,
    atomic_write_json,
    file_sha256,
    remove_tmp_names,
    replace_dir,
    scratch_dir,
    to_jsonable,
)
from mlstrat.predictors.base import Prediction
from mlstrat.predictors.persistence import (
    MANIFEST_FILE,
    build_manifest,
    load_json,
    verify_model_dir,
)
from mlstrat.sections import to_dict as sections_dict
from mlstrat.walkforward.cpcv import PATHS_DIR, PATHS_FILE, write_paths
from mlstrat.walkforward.metrics import classification_metrics, regression_metrics
from mlstrat.walkforward.outcomes import trade_outcomes
from mlstrat.walkforward.pooling import apply_decision, pooled_decisions
from mlstrat.walkforward.search import SearchConfig, fold_seed, search_config, search_fold
from mlstrat.walkforward.splits import Fold, WalkForward
from mlstrat.walkforward.thresholds import NET_PNL_PROCEDURE, decision_text
from mlstrat.walkforward.training import (
    SAMPLE_WEIGHTS,
    FittedFold,
    fit_fold,
    predict_rows,
    thresholded_signal,
)

FOLD_FILE = "fold.json"
FOLD_PREDICTIONS = "predictions.parquet"
#: net_pnl folds: the validation rows' predictions, evidence for pooled decisions.
FOLD_VALIDATION = "validation.parquet"
#: The walk-forward configuration and its key (not `mlstrat run`'s run.json).
WALKFORWARD_FILE = "walkforward.json"
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
#: Folds of a local warm-start chain one worker process runs before a fresh one takes over.
CHAIN_FOLDS_PER_PROCESS = 8
#: Target kinds a walk-forward run picks by default (the first such target of the feed).
_DEFAULT_TARGET_KINDS = ("direction", "three_class")


@dataclass
class WalkForwardResult:
    """Where a run wrote its outputs, and what it did."""

    out: Path
    predictions_path: Path
    folds_path: Path
    folds: list[dict[str, Any]]
    n_trained: int
    n_resumed: int
    seconds: float
    #: numbers of the CPCV paths written (``OUT/paths/NNN.parquet``); empty for walk-forward
    paths: list[int] = dataclasses.field(default_factory=list)

    def predictions(self) -> pd.DataFrame:
        return pd.read_parquet(self.predictions_path)


@dataclass(frozen=True)
class FoldTask:
    """Everything a worker needs to train one fold; paths in, a path out."""

    feed_path: str
    fold_dir: str
    fold: Fold
    predictor: str
    params: dict[str, Any]
    target: str
    features: tuple[str, ...]
    forward_return: str | None
    fit_targets: tuple[str, ...]
    horizon: int
    symbol: str | None
    threshold_params: dict[str, Any]
    run_key: str
    threads: int
    parent_pid: int
    sample_weights: str | None = None
    weight_decay: float = 1.0
    #: a `SearchConfig` as a mapping (None: fit `params` as given) and the run's seed
    search: dict[str, Any] | None = None
    seed: int = 0
    #: warm start: the directory and number of the earlier fold whose weights this one starts from
    warm_from: str | None = None
    warm_from_fold: int | None = None


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def limit_threads(n: int) -> None:
    """Cap math-library and TensorFlow threads in this process (before TF is imported)."""
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    prefer_passive_openmp()


def prefer_passive_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spin (unless the user chose otherwise).

    Read once, when an OpenMP runtime (XGBoost's) loads. On a shared machine,
    spinning threads of several processes starve each other: a 2-thread
    XGBoost fit measured 6x slower with the default policy than with PASSIVE.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# ---------------------------------------------------------------------------- feed


@functools.lru_cache(maxsize=2)
def _read_feed_cached(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    from mlstrat.features import read_feature_feed

    return read_feature_feed(path)


def load_feed(path: str | Path) -> pd.DataFrame:
    """The feature feed at `path`, read once per process (keyed on path, mtime and size)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            "feature feed not found", file=path, fix="build one with `mlstrat features`"
        )
    st = path.stat()
    return _read_feed_cached(str(path.resolve()), st.st_mtime_ns, st.st_size)


def _feed_symbol(frame: pd.DataFrame) -> str | None:
    meta = frame.attrs.get("mlstrat")
    if isinstance(meta, dict) and meta.get("symbol"):
        return str(meta["symbol"])
    symbol = frame.attrs.get("symbol")
    return None if symbol is None else str(symbol)


def _resolve_columns(
    frame: pd.DataFrame, path: Path, target: str | None, features: Sequence[str] | None
) -> tuple[str, list[str]]:
    from mlstrat.features import feature_columns, target_columns

    targets = list(target_columns(frame))
    if target is None:
        kinds = [(t, Target.from_name(t)) for t in targets]
        choices = [t for t, kind in kinds if kind and kind.kind in _DEFAULT_TARGET_KINDS]
        if not choices:
            raise SchemaError(
                "feed has no direction_* or three_class_* target",
                file=path,
                fix="pass target=... or rebuild the feed with --target direction:1",
            )
        target = choices[0]
    if target not in frame.columns:
        raise SchemaError(
            f"target column {target!r} is not in the feed (targets: {targets})",
            file=path,
            column=target,
            fix="pick one of the feed's targets or rebuild it with that target",
        )
    if features is None:
        names = list(feature_columns(frame))
    else:
        names = list(features)
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise SchemaError(
                f"feed lacks feature column(s) {', '.join(missing)}",
                file=path,
                column=missing[0],
                fix="use names from mlstrat.features.feature_columns(feed)",
            )
        leaked = [c for c in names if c in targets]
        if leaked:
            raise SchemaError(
                f"target column(s) {', '.join(leaked)} cannot be model inputs (they hold the future)",
                file=path,
                column=leaked[0],
                fix="select features with mlstrat.features.feature_columns(feed)",
            )
    if not names:
        raise SchemaError("feed has no feature columns", file=path, fix="rebuild the feed")
    return target, names


def label_ends(frame: pd.DataFrame, targets: Sequence[str]) -> np.ndarray | None:
    """Each row's label end position over `targets`: the latest of the event targets' end
    times (`<target>_t1`, NaN where undecided) and row + horizon for the others; None when
    no target is an event label (fixed-horizon purging then applies)."""
    events = [t for t in targets if end_column(t) in frame.columns]
    if not events:
        return None
    n = len(frame)
    plain = [horizon_of(t) for t in targets if t not in events]
    ends = np.arange(n, dtype=float) + max(plain) if plain else np.full(n, -np.inf)
    for name in events:
        found = frame.index.get_indexer(pd.DatetimeIndex(frame[end_column(name)])).astype(float)
        found[found < 0] = np.nan  # NaT: not decided within the data
        ends = np.maximum(ends, found)  # NaN (undecided) wins
    return ends


def target_of(frame: pd.DataFrame, name: str) -> Target:
    """The target behind column `name`, with the parameters its spec in the feed records."""
    spec = (frame.attrs.get("mlstrat") or {}).get("targets", {}).get(name)
    target = recorded_target(spec) if spec else Target.from_name(name)
    if target is None:
        raise SchemaError(
            f"column {name!r} is not a target mlstrat can read",
            column=name,
            fix="rebuild the feed with a --target spec",
        )
    return target


def realised_forward_return(frame: pd.DataFrame, horizon: int, column: str | None) -> np.ndarray:
    """Realised forward return over the label horizon, for the IC (evaluation only)."""
    if column is not None:
        return frame[column].to_numpy(dtype=float)
    close = frame["close"].to_numpy(dtype=float)
    out = np.full(len(close), np.nan)
    out[:-horizon] = close[horizon:] / close[:-horizon] - 1.0
    return out


# ---------------------------------------------------------------------------- one fold


def fold_dir_name(number: int) -> str:
    return f"{number:03d}"


_WATCHED_PARENT: list[int] = []


def exit_with_parent(parent_pid: int, interval: float = 1.0) -> None:
    """In a local worker process, exit as soon as the run that started it dies.

    A killed run's loky workers would otherwise train for minutes, holding cores
    and writing into the cache. Only loky workers (direct children of the run) watch;
    a Dask worker belongs to its cluster. Idempotent per process.
    """
    import multiprocessing

    if _WATCHED_PARENT or not multiprocessing.current_process().name.startswith("Loky"):
        return
    if os.getppid() != parent_pid:  # the run died before this worker got to its task
        os._exit(1)
    _WATCHED_PARENT.append(parent_pid)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    import threading

    threading.Thread(target=watch, name="mlstrat-exit-with-parent", daemon=True).start()


def fold_is_done(fold_dir: Path, run_key: str, fold: Fold) -> bool:
    """True if `fold_dir` verifies against its manifest and was made by this run's config."""
    if not (fold_dir / FOLD_FILE).is_file():
        return False
    try:
        report = verify_model_dir(fold_dir)
        info = load_json(fold_dir / FOLD_FILE)
    except (IntegrityError, ModelLoadError, OSError):
        return False
    covered = {FOLD_FILE, FOLD_PREDICTIONS} <= set(report.files_checked)
    return covered and info.get("run_key") == run_key and info.get("periods") == fold.to_dict()


def run_fold(task: FoldTask) -> str:
    """Train, threshold, predict and save one fold; returns the fold directory."""
    if os.getpid() != task.parent_pid:
        limit_threads(task.threads)
        exit_with_parent(task.parent_pid)

    started = time.perf_counter()
    frame = load_feed(task.feed_path)
    X = frame[list(task.features)]
    # keep provenance for the model's metadata, but not the per-column role table:
    # pandas deep-copies attrs on every slice
    meta = frame.attrs.get("mlstrat")
    X.attrs = {"mlstrat": {k: v for k, v in meta.items() if k != "roles"}} if meta else {}
    y = frame[task.target]
    y_fit = frame[[task.target, *task.fit_targets]] if task.fit_targets else None
    fold = task.fold
    bars = frame[["open", "high", "low", "close", "volume"]]

    fwd_all = realised_forward_return(frame, task.horizon, task.forward_return)

    def fit(params: Mapping[str, Any]) -> FittedFold:
        return fit_fold(
            functools.partial(_fold_predictor, task, params),
            X,
            y,
            fold,
            symbol=task.symbol,
            threshold_params=task.threshold_params,
            y_fit=y_fit,
            ends=label_ends(frame, [task.target, *task.fit_targets]),
            outcomes=functools.partial(trade_outcomes, bars, target_of(frame, task.target)),
            sample_weights=task.sample_weights,
            weight_decay=task.weight_decay,
        )

    params, searched = dict(task.params), None
    if task.search is None:
        fitted = fit(params)
    else:
        fitted, searched = search_fold(
            fit,
            params,
            SearchConfig(**task.search),
            y,
            fwd_all,
            fold=fold,
            seed=fold_seed(task.seed, fold.number),
        )
        params.update(searched["chosen"])
    y = encode_labels(y, fitted.model.task)
    pred = predict_rows(fitted.model, X, fold.test)
    signal = thresholded_signal(pred, fitted.thresholds)
    index = X.index[fold.test]
    out = prediction_frame(pred, signal, index, fold.number, fitted.thresholds)

    y_test = y.to_numpy(dtype=float)[fold.test]
    fwd = fwd_all[fold.test]
    val_metrics: dict[str, Any] = {}
    if getattr(fitted.model, "learns_outcomes", False):
        metrics, val_metrics = outcome_metrics(frame, task, fitted, pred, signal, fwd)
    elif pred.proba is not None:
        events = _event_sides(frame, task.target, np.asarray(pred.proba).shape[1], fold.test)
        metrics = classification_metrics(
            y_test, pred, signal=signal, forward_return=fwd, events=events
        )
    else:
        point = pred.volatility if pred.volatility is not None else pred.expected_return
        metrics = regression_metrics(y_test, point, forward_return=fwd)
    validation = fitted.validation_prediction
    if not val_metrics and validation is not None and validation.proba is not None:
        y_val = np.full(len(y), np.nan)
        y_val[fold.validation] = y.to_numpy(dtype=float)[fold.validation]  # purged rows: NaN
        val_metrics = classification_metrics(y_val[fitted.validation_rows], validation)
    info = {
        "fold": fold.number,
        "run_key": task.run_key,
        "periods": fold.to_dict(),
        "predictor": task.predictor,
        "params": params,
        "target": task.target,
        "symbol": task.symbol,
        "n_features": len(task.features),
        "thresholds": None if fitted.thresholds is None else fitted.thresholds.to_dict(),
        "metrics": metrics,
        "validation_metrics": val_metrics,
        **fitted.info,
        **({"search": searched} if searched else {}),
        **({"warm_start_from": task.warm_from_fold} if task.warm_from is not None else {}),
        **({"timing": timing} if (timing := training_timing(fitted.model)) else {}),
        "fit_seconds": round(time.perf_counter() - started, 3),
    }
    validation_frame = None
    if validation is not None and _net_pnl(task.threshold_params):
        validation_frame = prediction_frame(
            validation, np.asarray(validation.signal, dtype=float),
            X.index[fitted.validation_rows], fold.number, None,
        )  # fmt: skip
    _write_fold_dir(Path(task.fold_dir), fitted.model, info, out, validation_frame)
    return task.fold_dir


def _net_pnl(threshold_params: Mapping[str, Any] | None) -> bool:
    return (threshold_params or {}).get("method") == "net_pnl"


def _event_sides(frame: pd.DataFrame, target: str, classes: int, rows: np.ndarray) -> Any:
    """The raw −1 / 0 / +1 labels of a barrier or jump target a binary model learns as
    "up first or not" (so short precision counts down moves), else None."""
    kind = target_of(frame, target).kind
    if classes != 2 or kind not in ("triple_barrier", "price_jump"):
        return None
    return frame[target].to_numpy(dtype=float)[rows]


def training_timing(model: Any) -> list[dict[str, Any]]:
    """Per Keras network the fold trained (the model, or a hybrid's members in order): its
    setup and epoch seconds (`fit_timing_`) and parameter count; empty without Keras."""
    nets = [model, *getattr(model, "predictors_", [])]
    return [
        {"network": n.name, **n.fit_timing_, "parameters": int(n.model_.count_params())}
        for n in nets
        if getattr(n, "fit_timing_", None)
    ]


def _fold_predictor(task: FoldTask, params: Mapping[str, Any]) -> Any:
    """A fresh predictor for the fold; warm-started from the earlier fold `task.warm_from`."""
    from mlstrat.predictors.registry import create_predictor, load_predictor

    model = create_predictor(task.predictor, **params)
    if task.warm_from is not None:
        model.warm_start_from(load_predictor(task.warm_from))
    return model


def warm_sources(folds: Sequence[Fold]) -> list[int | None]:
    """Per fold, the index of the fold it warm-starts from: the latest earlier fold whose
    information ends by this fold's training end, else None (a cold start).

    Purging ends every label a fold learns before its test start, so a fold's model
    depends only on rows before `test[0]`; fold k may start from fold j < k when
    `test_j[0] - 1 <= train_k[-1]` (the usual case: j = k - 1). Causality then holds
    along the chain, since each link saw only rows fold k may train on.
    """
    out: list[int | None] = []
    for k, fold in enumerate(folds):
        last_train = int(fold.train[-1]) if len(fold.train) else -1
        found = [j for j in range(k) if int(folds[j].test[0]) - 1 <= last_train]
        out.append(found[-1] if found else None)
    return out


def _check_warm_start(
    predictor: str, params: Mapping[str, Any], splits: WalkForward, search: Any
) -> None:
    """Warm start needs a predictor that supports it, time-ordered folds and fixed parameters."""
    from mlstrat.predictors.registry import create_predictor

    if not getattr(create_predictor(predictor, **params), "can_warm_start", False):
        raise ConfigError(
            f"predictor {predictor!r} cannot warm-start from an earlier fold",
            param="warm_start",
            fix="use warm_start with a Keras predictor (lstm, lstm_attention, transformer, "
            "volatility_lstm, ...) or a hybrid of them, or drop it",
        )
    if splits.scheme == "cpcv":
        raise ConfigError(
            "warm start needs folds in time order; cpcv folds train on data after their tests",
            param="warm_start",
            fix="use walkforward.scheme rolling or expanding, or drop warm_start",
        )
    if search is not None:
        raise ConfigError(
            "warm start needs the same layer sizes in every fold; a search changes them",
            param="warm_start",
            fix="drop warm_start or the search",
        )


def outcome_metrics(
    frame: pd.DataFrame,
    task: FoldTask,
    fitted: Any,
    pred: Prediction,
    signal: np.ndarray,
    fwd: np.ndarray,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Test and validation metrics of a predictor that learns trade outcomes (`meta`): its
    confidence as P(the trade on its side pays) against whether it paid (binary metrics;
    validation outcomes from the bars before the test start, test outcomes from all bars,
    for evaluation only)."""
    costs = {k: v for k, v in task.threshold_params.items() if k in ("commission", "slippage")}
    target = target_of(frame, task.target)
    bars = frame[["open", "high", "low", "close", "volume"]]
    fold = task.fold

    def scored(p: Prediction, rows: np.ndarray, stop: int | None) -> tuple[np.ndarray, Prediction]:
        found = trade_outcomes(bars, target, stop=stop, **costs)
        side = np.sign(np.asarray(p.signal, dtype=float))
        paid = np.where(side > 0, found.long.pays[rows], found.short.pays[rows])
        paid = np.where(np.isnan(side) | (side == 0), np.nan, paid)
        q = np.asarray(p.confidence, dtype=float)
        return paid, Prediction(p.signal, q, np.column_stack([1 - q, q]))

    paid, binary = scored(pred, fold.test, None)
    metrics = classification_metrics(paid, binary, signal=signal, forward_return=fwd)
    val_metrics: dict[str, Any] = {}
    if fitted.validation_prediction is not None:
        rows = fitted.validation_rows
        paid, binary = scored(fitted.validation_prediction, rows, int(fold.test[0]))
        paid[~np.isin(rows, fold.validation)] = np.nan  # purged rows
        val_metrics = classification_metrics(paid, binary)
    return metrics, val_metrics


def prediction_frame(
    pred: Prediction, signal: np.ndarray, index: pd.Index, fold: int, thresholds: Any
) -> pd.DataFrame:
    """Prediction-feed rows: timestamp, fold, signal, confidence, proba_*, ..., thresholds."""
    body = pred.to_frame(pd.RangeIndex(len(index)))
    body["signal"] = np.asarray(signal, dtype=float)
    out = pd.DataFrame({"timestamp": index, "fold": np.full(len(index), fold, dtype=np.int64)})
    out = pd.concat([out, body], axis=1)
    out["threshold_long"] = np.nan if thresholds is None else float(thresholds.long)
    out["threshold_short"] = np.nan if thresholds is None else float(thresholds.short)
    return out


def _write_fold_dir(
    final: Path,
    model: Any,
    info: dict[str, Any],
    preds: pd.DataFrame,
    validation: pd.DataFrame | None = None,
) -> None:
    """Save model + fold.json + predictions in a staging dir, re-manifest, rename into place.

    The model is saved to a path that does not exist yet (inside a temporary
    folder), as `Predictor.save` expects.
    """
    with scratch_dir(final) as staging:
        built = staging / final.name
        model.save(built)
        atomic_write_json(built / FOLD_FILE, info)
        preds.to_parquet(built / FOLD_PREDICTIONS, index=False)
        if validation is not None:
            validation.to_parquet(built / FOLD_VALIDATION, index=False)
        atomic_write_json(built / MANIFEST_FILE, build_manifest(built))
        replace_dir(built, final)


# ---------------------------------------------------------------------------- the run


#: Constructor parameters through which predictors take a thread count.
THREAD_PARAMS = ("n_jobs", "n_threads")


def _params_for(name: str, params: Mapping[str, Any], seed: int) -> tuple[dict, list[str]]:
    """User params plus `seed` when the predictor takes one; its unset thread parameters."""
    from mlstrat.predictors.registry import get_predictor

    accepted = get_predictor(name).param_names()
    out = dict(params)
    if "seed" in accepted and "seed" not in out:
        out["seed"] = seed
    return out, [p for p in THREAD_PARAMS if p in accepted and p not in params]


def run_key(config: Mapping[str, Any]) -> str:
    text = json.dumps(to_jsonable(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_walk_forward(
    feed_path: str | Path,
    predictor: str = "xgboost",
    params: Mapping[str, Any] | None = None,
    target: str | None = None,
    splits: WalkForward | None = None,
    out: str | Path = "models/walkforward",
    *,
    n_jobs: int = -1,
    backend: str = "loky",
    scheduler: Any = None,
    resume: bool = True,
    features: Sequence[str] | None = None,
    thresholds: Mapping[str, Any] | None = None,
    seed: int = 0,
    progress: bool = True,
    fit_targets: Sequence[str] = (),
    sample_weights: str | None = None,
    weight_decay: float = 1.0,
    search: Any = None,
    warm_start: bool = False,
    on_fold: Callable[[str], None] | None = None,
) -> WalkForwardResult:
    """Train one `predictor` per walk-forward fold of the feed and write the prediction feed.

    params: predictor constructor parameters (`seed` is added when the predictor
        takes one; `n_jobs`/`n_threads` are set to the per-worker thread budget,
        cores // workers, unless given; XGBoost results do not depend on it).
    target: target column (default: the feed's first direction_*/three_class_*).
    splits: the fold schedule (default 4-month train / 2-month test and step, the
        retraining schedule of the crypto trading bot mlstrat was built to backtest);
        its horizon is raised to the target's so labels are always purged.
    thresholds: keyword arguments of `fit_thresholds` (range, objective, multipliers...).
    n_jobs: parallel folds (-1: all cores). backend: "loky" or "dask"; scheduler:
        for dask, a "tcp://host:port" address, a distributed Client or LocalCluster,
        or None for a LocalCluster of `n_jobs` single-threaded workers.
    resume: skip folds already written by the same configuration.
    fit_targets: more target columns the model is fitted on besides `target` (a
        hybrid's members pick theirs by task, e.g. a transformer's three_class_h);
        their horizons count for the purge. Scoring and thresholds use `target`.
    sample_weights: "uniqueness" weights each training row by the average uniqueness of
        its label among the overlapping ones (AFML ch. 4), with a linear time decay to
        `weight_decay` for the oldest (1: none); None (default) fits unweighted.
    search: a `walkforward.search.SearchConfig` (or a mapping of its keys): an Optuna search
        of the predictor's parameters in every fold, each trial scored on the fold's purged
        validation rows; the chosen parameters and all trials go into fold.json.
    warm_start: continual learning for Keras predictors (and hybrids of them): each fold
        starts from the final weights of the latest earlier fold that saw only rows before
        its training end (`warm_sources`; normally the previous fold) and trains with the
        predictor's smaller warm_epochs / warm_patience budget; scalers are refitted per
        fold. The folds then form one chain and run one after another, each with all
        cores' threads (`n_jobs` does not parallelise them); resuming retrains every fold
        after the first missing one.
    on_fold: called with each finished fold's directory (e.g. to update an ETA).
    """
    started = time.perf_counter()
    prefer_passive_openmp()  # before this process loads XGBoost (n_jobs=1 runs folds here)
    feed_path = Path(feed_path)
    if backend not in ("loky", "dask"):
        raise ConfigError(f"unknown backend {backend!r}", fix="use backend='loky' or 'dask'")
    frame = load_feed(feed_path)
    target, feature_names = _resolve_columns(frame, feed_path, target, features)
    fit_targets = tuple(t for t in fit_targets if t != target)
    for extra in fit_targets:
        _resolve_columns(frame, feed_path, extra, feature_names)
    if sample_weights is not None and sample_weights not in SAMPLE_WEIGHTS:
        raise ConfigError(
            f"unknown sample weighting {sample_weights!r}",
            param="sample_weights",
            fix=f"use one of {SAMPLE_WEIGHTS} or None",
        )
    search = search_config(search)
    horizon = max(horizon_of(t) for t in (target, *fit_targets))
    splits = splits or WalkForward(train="4mo", test="2mo")
    if splits.horizon < horizon:
        splits = dataclasses.replace(splits, horizon=horizon)
    ends = label_ends(frame, [target, *fit_targets])
    folds = splits.split(frame.index, ends)
    if not folds:
        raise ConfigError(
            f"the feed ({frame.index[0]} .. {frame.index[-1]}) is too short for one fold of "
            f"{splits.describe()}",
            file=feed_path,
            fix="use a longer feed or a shorter train window",
        )
    _check_search(search, predictor, folds)
    if warm_start:
        _check_warm_start(predictor, params or {}, splits, search)
    fwd_col = forward_return(horizon_of(target)).name
    fwd_col = fwd_col if fwd_col in frame.columns else None
    symbol = _feed_symbol(frame)
    params, thread_params = _params_for(predictor, params or {}, seed)
    threshold_params = dict(thresholds or {})
    config = {
        "feed": feed_path.name,
        "feed_sha256": file_sha256(feed_path),
        "predictor": predictor,
        "params": params,
        "target": target,
        **({"fit_targets": list(fit_targets)} if fit_targets else {}),
        "features": feature_names,
        "splits": splits.describe(),
        "thresholds": threshold_params,
        "seed": seed,
        "symbol": symbol,
        **({"purge_by": "t1"} if ends is not None else {}),
        **(
            {"sample_weights": sample_weights, "weight_decay": weight_decay}
            if sample_weights
            else {}
        ),
        **({"search": sections_dict(search)} if search else {}),
        **({"warm_start": True} if warm_start else {}),
        **({"net_pnl_procedure": NET_PNL_PROCEDURE} if _net_pnl(threshold_params) else {}),
    }
    key = run_key(config)

    out = Path(out)
    folds_dir = out / "folds"
    folds_dir.mkdir(parents=True, exist_ok=True)
    for directory in (out, folds_dir):  # what a killed run was writing
        remove_tmp_names(directory)
    atomic_write_json(
        out / WALKFORWARD_FILE, {**config, "run_key": key, "purge_applied": purge_applied(folds)}
    )

    pending = [
        i
        for i, f in enumerate(folds)
        if not (resume and fold_is_done(folds_dir / fold_dir_name(f.number), key, f))
    ]
    sources = warm_sources(folds) if warm_start else [None] * len(folds)
    if warm_start and pending:  # a chain: every fold after a retrained one is retrained
        pending = list(range(pending[0], len(folds)))
    cores = available_cores()
    workers = cores if n_jobs is None or n_jobs < 0 else max(1, int(n_jobs))
    workers = 1 if warm_start else workers
    workers = max(1, min(workers, len(pending))) if pending else 1
    threads = max(1, cores // workers)
    task_params = {**params, **dict.fromkeys(thread_params, threads)}
    tasks = [
        FoldTask(
            feed_path=str(feed_path.resolve()),
            fold_dir=str((folds_dir / fold_dir_name(folds[i].number)).resolve()),
            fold=folds[i],
            predictor=predictor,
            params=task_params,
            target=target,
            features=tuple(feature_names),
            forward_return=fwd_col,
            fit_targets=fit_targets,
            horizon=horizon_of(target),
            symbol=symbol,
            threshold_params=threshold_params,
            run_key=key,
            threads=threads,
            parent_pid=os.getpid(),
            sample_weights=sample_weights,
            weight_decay=float(weight_decay),
            search=None if search is None else sections_dict(search),
            seed=int(seed),
            warm_from=_fold_path(folds_dir, folds, sources[i]),
            warm_from_fold=_fold_number(folds, sources[i]),
        )
        for i in pending
    ]
    chains = [tasks] if warm_start else [[t] for t in tasks]
    _execute(chains, workers, threads, backend, scheduler, progress, len(folds), on_fold)
    infos = [load_json(folds_dir / fold_dir_name(f.number) / FOLD_FILE) for f in folds]
    parts = [pd.read_parquet(folds_dir / fold_dir_name(f.number) / FOLD_PREDICTIONS) for f in folds]
    if pools_evidence(threshold_params, splits):
        validations = [_read_optional(folds_dir / fold_dir_name(f.number) / FOLD_VALIDATION)
                       for f in folds]  # fmt: skip
        decisions = pooled_decisions(
            frame, target_of(frame, target), folds, parts, validations, threshold_params, symbol
        )
        parts = [apply_decision(part, th) for part, th in zip(parts, decisions, strict=True)]
        infos = [
            {**info, "thresholds": th.to_dict()} for info, th in zip(infos, decisions, strict=True)
        ]
    records = [flat_record(info) for info in infos]
    for extra in folds_dir.iterdir():
        # folds of an earlier, longer run in the same directory no longer belong here
        if extra.is_dir() and extra.name.isdigit() and int(extra.name) >= len(folds):
            shutil.rmtree(extra)
    if splits.scheme == "cpcv":
        predictions = write_paths(splits.cpcv(), frame.index, dict(enumerate(parts)), out)
        n_paths = splits.cpcv().n_paths
    else:
        predictions = pd.concat(parts, ignore_index=True)
        n_paths = _drop_paths(out)
    predictions_path = out / "predictions.parquet"
    atomic_write(predictions_path, lambda tmp: predictions.to_parquet(tmp, index=False))
    folds_path = out / "folds.json"
    atomic_write_json(folds_path, records)
    return WalkForwardResult(
        out=out,
        predictions_path=predictions_path,
        folds_path=folds_path,
        folds=records,
        n_trained=len(tasks),
        n_resumed=len(folds) - len(tasks),
        seconds=time.perf_counter() - started,
        paths=list(range(n_paths)),
    )


def _fold_path(folds_dir: Path, folds: Sequence[Fold], index: int | None) -> str | None:
    if index is None:
        return None
    return str((folds_dir / fold_dir_name(folds[index].number)).resolve())


def _fold_number(folds: Sequence[Fold], index: int | None) -> int | None:
    return None if index is None else folds[index].number


def _drop_paths(out: Path) -> int:
    """Remove the CPCV paths an earlier run with scheme cpcv left in `out`; 0 paths remain."""
    (out / PATHS_FILE).unlink(missing_ok=True)
    if (out / PATHS_DIR).is_dir():
        shutil.rmtree(out / PATHS_DIR)
    return 0


def _check_search(search: SearchConfig | None, predictor: str, folds: Sequence[Fold]) -> None:
    """A search names the predictor's parameters and every fold has validation rows."""
    from mlstrat.predictors.registry import get_predictor

    if search is None:
        return
    search.check_params(get_predictor(predictor).param_names(), predictor)
    bare = [f.number for f in folds if not len(f.validation)]
    if bare:
        raise ConfigError(
            f"search: fold {bare[0]} has no validation rows to score trials on "
            "(trials never read the test rows)",
            param="search",
            fix="give walkforward.validation > 0 with scheme rolling or expanding "
            "(cpcv splits have no validation tail)",
        )


def purge_applied(folds: Sequence[Fold]) -> list[dict[str, Any]]:
    """Per fold, the bars actually left out between its first training row and its last test
    row (purged by each label's own end, or by the horizon, plus any embargo): what the
    schedule did, not the horizon it was given."""
    out = []
    for f in folds:
        used = np.concatenate([f.train, f.validation, f.test])
        spanned = int(used.max() - used.min() + 1) if len(used) else 0
        out.append({"fold": int(f.number), "purged_bars": spanned - len(np.unique(used))})
    return out


def pools_evidence(threshold_params: Mapping[str, Any] | None, splits: WalkForward) -> bool:
    """True when net_pnl decisions pool earlier folds' out-of-sample records
    (`mlstrat.walkforward.pooling`): rolling and expanding schedules, unless
    ``evidence: validation``. CPCV splits are not in time order, so they keep their own."""
    params = threshold_params or {}
    return (
        _net_pnl(params)
        and params.get("evidence", "pooled") == "pooled"
        and (splits.scheme != "cpcv")
    )


def _read_optional(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.is_file() else None


def flat_record(info: Mapping[str, Any]) -> dict[str, Any]:
    """One folds.json row: periods, sizes, test metrics, best iteration/epoch, thresholds."""
    th = info.get("thresholds") or {}
    record = {
        **info["periods"],
        "predictor": info.get("predictor"),
        "target": info.get("target"),
        "symbol": info.get("symbol"),
        **info.get("metrics", {}),
        "best_iteration": info.get("best_iteration"),
        "best_epoch": info.get("best_epoch"),
        "threshold_long": th.get("long"),
        "threshold_short": th.get("short"),
        "threshold_method": th.get("method", "precision") if th else None,
        "abstain": bool(th.get("abstain_long") and th.get("abstain_short")) if th else None,
        "decision": decision_text(th) if th else None,
        "thresholds": th or None,
        "validation_metrics": info.get("validation_metrics", {}),
    }
    if "warm_start_from" in info:
        record["warm_start_from"] = info["warm_start_from"]
    if info.get("search"):
        found = info["search"]
        record["search"] = {k: found[k] for k in ("metric", "chosen", "best_score", "n_trials")}
    return record


def run_chain(tasks: Sequence[FoldTask]) -> list[str]:
    """Run folds one after another (a warm-start chain); returns their directories."""
    return [run_fold(t) for t in tasks]


def _execute(
    chains: list[list[FoldTask]],
    workers: int,
    threads: int,
    backend: str,
    scheduler: Any,
    progress: bool,
    total: int,
    on_fold: Callable[[str], None] | None = None,
) -> None:
    """Run every chain (a list of folds run in order) on `workers` loky (`_run_local`) or
    Dask workers; the bar moves with every fold of a single chain."""
    from joblib import Parallel, delayed, parallel_config

    from mlstrat.progress import progress_bar

    done = on_fold or (lambda _path: None)
    bar = progress_bar(
        total=total,
        initial=total - sum(len(c) for c in chains),
        desc="walk-forward folds",
        unit="fold",
        enabled=progress,
    )

    def finished(paths: Sequence[str]) -> None:
        for path in paths:
            done(path)
            bar.update(1)

    try:
        if not chains:
            return
        if backend == "loky":
            _run_local(chains, workers, threads, finished)
            return
        client, cluster, close_client = _dask_client(scheduler, workers)
        try:
            with parallel_config(backend="dask", n_jobs=workers):
                for paths in Parallel(return_as="generator_unordered")(
                    delayed(run_chain)(c) for c in chains
                ):
                    finished(paths)
        finally:
            if close_client:
                client.close()
            if cluster is not None:
                cluster.close()
    finally:
        bar.close()


def _run_local(
    chains: list[list[FoldTask]],
    workers: int,
    threads: int,
    finished: Callable[[Sequence[str]], None],
) -> None:
    """Run chains on this machine: one fold here (as n_jobs=1 runs folds), one longer chain
    in recycled worker processes, several chains in parallel on `workers` loky workers."""
    from joblib import Parallel, delayed, parallel_config

    if len(chains) == 1 and len(chains[0]) == 1:
        finished([run_fold(chains[0][0])])
        return
    with _worker_deaths_named():
        if len(chains) == 1:
            for path in _recycled_chain(chains[0]):
                finished([path])
            return
        with parallel_config(backend="loky", n_jobs=workers, inner_max_num_threads=threads):
            for paths in Parallel(return_as="generator_unordered")(
                delayed(run_chain)(c) for c in chains
            ):
                finished(paths)


@contextlib.contextmanager
def _worker_deaths_named() -> Iterator[None]:
    """Turn loky's TerminatedWorkerError (a worker killed, e.g. for memory) into a WorkerError."""
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    try:
        yield
    except TerminatedWorkerError as exc:
        raise WorkerError(
            f"a walk-forward worker process died before its fold finished ({exc})",
            fix="if it was killed for memory, lower n_jobs or free memory (`mlstrat run "
            "CONFIG --plan` estimates memory per worker); run again: finished folds are kept",
        ) from None


def _recycled_chain(chain: Sequence[FoldTask]) -> Iterator[str]:
    """Run a chain's folds in order, each batch of `CHAIN_FOLDS_PER_PROCESS` in a fresh loky
    worker process; yields each fold's directory as it finishes."""
    from joblib.externals.loky.process_executor import ProcessPoolExecutor

    for start in range(0, len(chain), CHAIN_FOLDS_PER_PROCESS):
        pool = ProcessPoolExecutor(max_workers=1)
        finished = False
        try:
            for task in chain[start : start + CHAIN_FOLDS_PER_PROCESS]:
                yield pool.submit(run_fold, task).result()
            finished = True
        finally:
            # on an error or interrupt the worker is killed, and gone before this returns
            pool.shutdown(wait=True, kill_workers=not finished)


def _dask_client(scheduler: Any, workers: int) -> tuple[Any, Any, bool]:
    """(client, cluster this run started or None, whether to close the client)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ConfigError(
            "backend='dask' needs dask.distributed",
            fix="pip install 'mlstrat[dask]'",
        ) from exc
    if isinstance(scheduler, Client):
        return scheduler, None, False
    if isinstance(scheduler, LocalCluster):
        return Client(scheduler), None, True
    if isinstance(scheduler, str):
        try:
            return Client(scheduler, timeout="10s"), None, True
        except OSError as exc:
            raise ConfigError(
                f"cannot reach the dask scheduler at {scheduler} ({exc})",
                fix="start one with `dask scheduler` or omit --scheduler for a local cluster",
            ) from exc
    if scheduler is not None:
        raise ConfigError(
            f"scheduler must be an address, Client or LocalCluster, got {scheduler!r}"
        )
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    return Client(cluster), cluster, True
