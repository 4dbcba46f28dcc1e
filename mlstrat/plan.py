"""What a run will cost before it starts: folds x seconds per fold per model, and memory.

    from mlstrat.plan import plan_experiment
    plan = plan_experiment("configs/full.yaml")
    print(plan.format())          # what `mlstrat run CONFIG --plan` prints

Folds come from the walk-forward schedule over each symbol's bars (read, not
featurised). Seconds per fold come from a calibration: the first fold of the
first symbol is featurised (features are causal, so only the bars up to that
fold are needed) and trained once per configured model through the runner's
own fold code (`run_fold`), in this process:

* a model without Keras networks (XGBoost, ...) is trained on the whole fold:
  its time is the fold's time;
* Keras networks (a Keras predictor, or a hybrid's Keras members) are trained
  for 2 epochs on the last `CALIBRATION_WINDOWS` training windows of the fold
  and a fifth as many validation rows. The first epoch includes tracing the
  train step; the second is a plain epoch, whose training part is scaled by the
  fold's training rows over the calibration's and its validation part by the
  validation rows. A fold then costs setup + (epoch 1 - epoch 2) + E x that
  full-size epoch + the rest of the fold (prediction, thresholds), with E the expected number
  of epochs: early stopping ends a cold fit about `TYPICAL_BEST_EPOCH` epochs
  after its start plus `patience`, capped by `epochs` (a warm-started fold:
  `TYPICAL_BEST_EPOCH_WARM` plus `warm_patience`, capped by `warm_epochs`); the
  upper bound uses the whole epoch budget.

Wall time: folds of a cold walk-forward run `workers` at a time
(n_jobs; -1 = all cores), so a model's time on one symbol is
ceil(folds / workers) x seconds per fold; a warm-started walk-forward is one
chain, folds x seconds per fold. Calibration runs each fit with the thread
count a run's worker gets (cores // workers), so the figures carry the
machine's load at planning time.

Memory per worker: the runtime a fresh worker loads (the walk-forward runner,
and TensorFlow for Keras models), measured in a fresh interpreter because this
process may already hold libraries a worker would not load, the feature feed, the 2-D model inputs (windows are gathered
lazily, never copied out) and the networks' weights, gradients and Adam
moments; TensorFlow's own working memory during a fit (~0.4 GB measured in
benchmarks/train.py) is not in it.

The run's progress bar uses the same model (`EtaModel`): folds left x seconds
per fold, from this plan (when `mlstrat run --plan` stored it in the run
directory) until a model's own finished folds measure it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Training windows (and a fifth of them for validation) a Keras calibration fit sees.
CALIBRATION_WINDOWS = 512
#: Epochs of a Keras calibration fit: the first traces the train step, the second does not.
CALIBRATION_EPOCHS = 2
#: Epoch at which early stopping typically finds its best validation loss, cold / warm. Next-bar
#: direction labels are mostly noise: the loss bottoms out within a few epochs (the seed LSTM
#: and attention LSTM on 12 cold BTCUSDT 1h folds: epoch 5 and 8 on average; warm: 1-2).
TYPICAL_BEST_EPOCH, TYPICAL_BEST_EPOCH_WARM = 6, 1
#: Bytes per parameter kept by Adam training: weights, gradients, two moments (float32).
TRAINING_BYTES_PER_PARAM = 16
#: Name of the plan a run directory keeps (`mlstrat run CONFIG --plan --out DIR`).
PLAN_FILE = "plan.json"


@dataclass
class NetworkCost:
    """One Keras network's calibrated cost (per fold)."""

    name: str
    setup: float
    trace: float
    epoch: float  # one epoch at the full fold's size
    epochs_expected: float
    epochs_max: int
    warm_epochs_expected: float | None = None
    warm_epochs_max: int | None = None
    parameters: int = 0

    def seconds(self, *, warm: bool = False, maximum: bool = False) -> float:
        """Training seconds of one fold of this network."""
        if warm and self.warm_epochs_max is not None:
            epochs = self.warm_epochs_max if maximum else self.warm_epochs_expected
        else:
            epochs = self.epochs_max if maximum else self.epochs_expected
        return self.setup + self.trace + float(epochs) * self.epoch


@dataclass
class ModelPlan:
    """One configured predictor: its folds per symbol and the cost of one fold."""

    name: str
    predictor: str
    folds: dict[str, int]
    warm_start: bool
    rest: float  # seconds of a fold outside Keras training (all of it without Keras)
    networks: list[NetworkCost] = field(default_factory=list)
    memory_mb: float = 0.0
    materialised_windows_mb: float = 0.0

    def seconds_per_fold(self, *, warm: bool = False, maximum: bool = False) -> float:
        return self.rest + sum(n.seconds(warm=warm, maximum=maximum) for n in self.networks)

    def symbol_seconds(self, n_folds: int, workers: int, *, maximum: bool = False) -> float:
        """Wall seconds of one symbol's walk-forward of `n_folds` folds."""
        if n_folds <= 0:
            return 0.0
        cold = self.seconds_per_fold(maximum=maximum)
        if self.warm_start:  # one chain: the first fold cold, the others warm
            warm = self.seconds_per_fold(warm=True, maximum=maximum)
            return cold + (n_folds - 1) * warm
        return math.ceil(n_folds / max(1, workers)) * cold

    def seconds(self, workers: int, *, maximum: bool = False) -> float:
        return sum(self.symbol_seconds(n, workers, maximum=maximum) for n in self.folds.values())


@dataclass
class Plan:
    """The cost plan of a run configuration (see the module docstring)."""

    config: str
    config_hash: str
    models: list[ModelPlan]
    workers: int
    threads: int
    cores: int
    calibration_symbol: str
    calibration_seconds: float
    load_average: tuple[float, float]

    @property
    def total_seconds(self) -> float:
        """Expected wall seconds of every walk-forward of the run."""
        return sum(m.seconds(self.workers) for m in self.models)

    @property
    def max_seconds(self) -> float:
        """Wall seconds when every fit uses its whole epoch budget."""
        return sum(m.seconds(self.workers, maximum=True) for m in self.models)

    def per_fold(self) -> dict[str, float]:
        """Expected seconds of one fold per model name (warm-started folds where configured)."""
        return {m.name: m.seconds_per_fold(warm=m.warm_start) for m in self.models}

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["total_seconds"] = round(self.total_seconds, 1)
        out["max_seconds"] = round(self.max_seconds, 1)
        out["seconds_per_fold"] = {k: round(v, 2) for k, v in self.per_fold().items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        models = [
            ModelPlan(**{**m, "networks": [NetworkCost(**n) for n in m["networks"]]})
            for m in data["models"]
        ]
        keys = {f.name for f in dataclasses.fields(cls)} - {"models"}
        plan = cls(models=models, **{k: data[k] for k in keys})
        plan.load_average = tuple(plan.load_average)  # type: ignore[assignment]
        return plan

    def format(self) -> str:
        """The table `mlstrat run CONFIG --plan` prints."""
        symbols = sorted({s for m in self.models for s in m.folds})
        lines = [
            f"plan for {self.config}: {len(symbols)} symbol(s), {len(self.models)} model(s); "
            f"{self.workers} fold(s) at a time on {self.cores} cores, {self.threads} thread(s) "
            f"each; load average {self.load_average[0]:.1f} -> {self.load_average[1]:.1f}",
            f"{'model':<22}{'folds':>16}{'s/fold':>8}{'(max)':>7}{'hours':>7}{'(max)':>7}"
            f"{'memory/worker':>15}",
        ]
        for m in self.models:
            label = m.name + (" [warm]" if m.warm_start else "")
            lines.append(
                f"{label:<22}{_folds_text(m.folds):>16}"
                f"{m.seconds_per_fold(warm=m.warm_start):>8.0f}"
                f"{m.seconds_per_fold(warm=m.warm_start, maximum=True):>7.0f}"
                f"{m.seconds(self.workers) / 3600:>7.2f}"
                f"{m.seconds(self.workers, maximum=True) / 3600:>7.2f}"
                f"{m.memory_mb / 1024:>12.1f} GB"
            )
        peak = max((m.memory_mb for m in self.models), default=0.0) * self.workers
        lines.append(
            f"total: {_duration(self.total_seconds)} expected, {_duration(self.max_seconds)} if "
            f"every fit uses its whole epoch budget; memory up to {peak / 1024:.1f} GB "
            f"({self.workers} worker(s))"
        )
        lines.append(
            f"calibrated on {self.calibration_symbol}'s first fold in "
            f"{self.calibration_seconds:.0f} s (see mlstrat.plan for the cost model)"
        )
        return "\n".join(lines)


def _folds_text(folds: Mapping[str, int]) -> str:
    """Folds per symbol: "5 x 45", or the total with the range ("203 (34-45 x 5)")."""
    low, high = min(folds.values(), default=0), max(folds.values(), default=0)
    if low == high:
        return f"{len(folds)} x {low}"
    return f"{sum(folds.values())} ({low}-{high} x {len(folds)})"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------------- planning


def plan_experiment(config: Any, overrides: Mapping[str, Any] | None = None) -> Plan:
    """Folds and calibrated seconds per fold of every walk-forward `config` would run."""
    from mlstrat.cache import content_hash
    from mlstrat.run import _as_config, _build_predictors
    from mlstrat.walkforward.runner import available_cores

    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    cfg = _as_config(config, overrides)
    _build_predictors(cfg)
    cores = available_cores()
    workers = cores if cfg.n_jobs is None or cfg.n_jobs < 0 else max(1, int(cfg.n_jobs))
    threads = max(1, cores // workers)
    if all(p.warm_start for p in cfg.predictors):
        threads = cores  # warm chains run one fold at a time on every core
    keras = any(_network_specs(p.predictor, p.params) for p in cfg.predictors)
    runtime = worker_runtime_mb(keras=keras)
    if keras:
        from mlstrat.predictors.keras_utils import import_tf

        import_tf(threads)  # once, as a worker does before its first fold
    bars = {f.symbol: _run_bars(cfg, f) for f in cfg.data.files}
    first = cfg.data.files[0]
    with tempfile.TemporaryDirectory(prefix="mlstrat-plan-") as tmp:
        feed_path, feed = _calibration_feed(cfg, first, bars[first.symbol], Path(tmp))
        models = [
            _plan_model(cfg, pred, bars, (feed_path, feed), Path(tmp), threads, runtime)
            for pred in cfg.predictors
        ]
    models += [
        _cpcv_extra(cfg, m, bars) for m in models if m.name in cfg.walkforward.cpcv_predictors
    ]
    return Plan(
        config=str(cfg.source.name if cfg.source else cfg.name),
        config_hash=content_hash(cfg.to_dict()),
        models=models,
        workers=workers,
        threads=threads,
        cores=cores,
        calibration_symbol=first.symbol,
        calibration_seconds=round(time.perf_counter() - started, 1),
        load_average=(round(load_start, 2), round(os.getloadavg()[0], 2)),
    )


def _run_bars(cfg: Any, f: Any) -> pd.DataFrame:
    """The file's bars up to data.end (history before data.start kept for warm-up)."""
    bars = f.load()
    if cfg.data.end is not None:
        bars = bars[bars.index <= pd.Timestamp(cfg.data.end)]
    return bars


def _run_index(cfg: Any, bars: pd.DataFrame) -> pd.DatetimeIndex:
    """The index of the run's feature feed: the bars from data.start on."""
    if cfg.data.start is None:
        return bars.index
    start = pd.Timestamp(cfg.data.start)
    start = start.tz_localize("UTC") if start.tzinfo is None else start
    return bars.index[bars.index >= start]


def _schedule(cfg: Any, pred: Any) -> Any:
    from mlstrat.features.targets import horizon_of

    horizon = max(horizon_of(t) for t in (pred.target, *pred.fit_targets))
    return dataclasses.replace(cfg.walkforward, horizon=max(cfg.walkforward.horizon, horizon))


def _calibration_feed(cfg: Any, f: Any, bars: pd.DataFrame, tmp: Path) -> tuple[Path, Any]:
    """The feature feed of the first symbol up to the end of its first fold (with a margin for
    targets), written to `tmp`; causal features make those rows equal to the full run's."""
    from mlstrat.features import build_feature_feed, get_feature_set, write_feature_feed
    from mlstrat.features.feed_io import cut_after_warmup

    index = _run_index(cfg, bars)
    folds = [cfg.walkforward.split(index)]
    if not folds[0]:
        from mlstrat.errors import ConfigError

        raise ConfigError(
            f"{f.symbol}: the data is too short for one fold of {cfg.walkforward.describe()}",
            file=cfg.source,
            fix="use a longer data range or a shorter walkforward.train",
        )
    end = folds[0][0].test_end
    position = int(bars.index.searchsorted(end, side="right")) + 200  # target look-ahead
    if cfg.walkforward.scheme == "cpcv":  # its splits train on bars after their tests
        position = len(bars)
    cut = bars.iloc[:position].copy()
    cut.attrs = dict(bars.attrs)
    fs = get_feature_set(cfg.features.set, cfg.features.version)
    minute = f.load_minutes()
    if minute is not None:
        minute = minute[minute.index <= cut.index[-1]]
    feed = build_feature_feed(cut, fs, targets=cfg.features.targets, minute_bars=minute)
    feed = cut_after_warmup(feed, cfg.data.start or feed.index[0])
    return write_feature_feed(feed, tmp / "feed.parquet"), feed


def _plan_model(
    cfg: Any,
    pred: Any,
    bars: Mapping[str, pd.DataFrame],
    calibration_feed: tuple[Path, pd.DataFrame],
    tmp: Path,
    threads: int,
    runtime: Mapping[str, float],
) -> ModelPlan:
    """Fold counts per symbol and one calibration fold of `pred`."""
    from mlstrat.run import walkforward_options

    feed_path, feed = calibration_feed
    schedule = _schedule(cfg, pred)
    folds = {s: len(schedule.split(_run_index(cfg, b))) for s, b in bars.items()}
    options = walkforward_options(cfg, pred)
    fold = schedule.split(feed.index)[0]
    params = _with_threads(pred.predictor, options["params"], threads, cfg.seed)
    specs = _network_specs(pred.predictor, params)
    cal_fold = _shrink(fold, feed.index) if specs else fold
    calibration = calibration_params(pred.predictor, params)
    info = _calibrate(cfg, pred, options, calibration, cal_fold, feed_path, tmp, threads)
    scale = (
        len(fold.train) / max(1, len(cal_fold.train)),
        len(fold.validation) / max(1, len(cal_fold.validation)),
    )
    networks = [
        _network_cost(spec, t, scale) for spec, t in zip(specs, info["timing"], strict=True)
    ]
    spent = sum(float(t["setup"]) + sum(float(e) for e in t["epochs"]) for t in info["timing"])
    width = len(pred.features) if pred.features is not None else _n_features(feed)
    rows = len(fold.train) + len(fold.validation)
    window = max((int(p.get("window", p.get("memory", 1))) for _, p in specs), default=1)
    base = runtime["keras"] if specs else runtime["python"]
    return ModelPlan(
        name=pred.name,
        predictor=pred.predictor,
        folds=folds,
        warm_start=bool(pred.warm_start),
        rest=round(max(0.0, float(info["fit_seconds"]) - spent), 3),
        networks=networks,
        memory_mb=round(base + _data_mb(feed, bars, networks, width, rows), 1),
        materialised_windows_mb=round(rows * window * width * 4 / 2**20, 1),
    )


def _cpcv_extra(cfg: Any, model: ModelPlan, bars: Mapping[str, pd.DataFrame]) -> ModelPlan:
    """The extra CPCV walk-forward of a `walkforward.cpcv_predictors` entry: its splits, each
    costing the calibrated fold scaled by its training rows (a CPCV split trains on all groups
    but its test groups)."""
    schedule = cfg.walkforward.cpcv_schedule()
    rolling = cfg.walkforward
    folds, scale = {}, []
    for symbol, b in bars.items():
        index = _run_index(cfg, b)
        splits = schedule.split(index)
        folds[symbol] = len(splits)
        first = rolling.split(index)
        if splits and first:
            scale.append(np.mean([len(f.train) for f in splits]) / max(1, len(first[0].train)))
    factor = float(np.mean(scale)) if scale else 1.0
    networks = [dataclasses.replace(n, epoch=round(n.epoch * factor, 3)) for n in model.networks]
    return dataclasses.replace(
        model,
        name=f"{model.name} (cpcv)",
        folds=folds,
        warm_start=False,
        rest=round(model.rest * factor, 3),
        networks=networks,
    )


def _n_features(feed: pd.DataFrame) -> int:
    from mlstrat.features import feature_columns

    return len(feature_columns(feed))


def _with_threads(name: str, params: Mapping[str, Any], threads: int, seed: int) -> dict:
    """The parameters a run's worker gives the predictor (`runner._params_for` + threads)."""
    from mlstrat.walkforward.runner import _params_for

    out, thread_params = _params_for(name, params, seed)
    return {**out, **dict.fromkeys(thread_params, threads)}


def _is_keras(name: str) -> bool:
    from mlstrat.predictors.keras_base import KerasSequencePredictor
    from mlstrat.predictors.registry import get_predictor

    return issubclass(get_predictor(name), KerasSequencePredictor)


def _network_specs(name: str, params: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(predictor name, resolved parameters) of every Keras network the predictor trains."""
    from mlstrat.predictors.registry import create_predictor

    if _is_keras(name):
        return [(name, create_predictor(name, **params).get_params())]
    if name == "hybrid":
        members = params.get("members", (("lstm", {}), ("transformer", {})))
        return [spec for n, p in members for spec in _network_specs(str(n), dict(p or {}))]
    return []


def calibration_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` with every Keras network set to `CALIBRATION_EPOCHS` epochs and no early stop
    (a hybrid's Keras members alike; tuning off); other predictors' params unchanged."""
    params = dict(params)
    if _is_keras(name):
        params.update(epochs=CALIBRATION_EPOCHS, patience=CALIBRATION_EPOCHS)
        if params.get("tune"):
            params["tune"] = False
        return params
    if name == "hybrid" and "members" in params:
        params["members"] = [
            [n, calibration_params(str(n), dict(p or {}))] for n, p in params["members"]
        ]
    elif name == "hybrid":
        params["members"] = [[n, calibration_params(n, {})] for n in ("lstm", "transformer")]
    return params


def _shrink(fold: Any, index: pd.Index) -> Any:
    """The fold cut to its last `CALIBRATION_WINDOWS` training rows (plus a window's context is
    read from the rows before) and a proportional head of its validation rows."""
    train = fold.train[-CALIBRATION_WINDOWS:]
    validation = (
        fold.validation[: max(1, CALIBRATION_WINDOWS // 5)]
        if len(fold.validation)
        else fold.validation
    )
    return dataclasses.replace(
        fold,
        train=train,
        validation=validation,
        train_start=index[train[0]],
        train_end=index[train[-1]],
        validation_start=index[validation[0]] if len(validation) else None,
        validation_end=index[validation[-1]] if len(validation) else None,
    )


def _calibrate(
    cfg: Any,
    pred: Any,
    options: Mapping[str, Any],
    params: Mapping[str, Any],
    fold: Any,
    feed_path: Path,
    tmp: Path,
    threads: int,
) -> dict[str, Any]:
    """Run one fold through `runner.run_fold` here and return its fold.json."""
    from mlstrat.features.targets import forward_return, horizon_of
    from mlstrat.walkforward.runner import (
        FOLD_FILE,
        FoldTask,
        _resolve_columns,
        load_feed,
        run_fold,
    )

    frame = load_feed(feed_path)
    target, names = _resolve_columns(
        frame, feed_path, pred.target, None if pred.features is None else list(pred.features)
    )
    fwd = forward_return(horizon_of(target)).name
    out = tmp / pred.name
    task = FoldTask(
        feed_path=str(feed_path),
        fold_dir=str(out),
        fold=fold,
        predictor=pred.predictor,
        params=dict(params),
        target=target,
        features=tuple(names),
        forward_return=fwd if fwd in frame.columns else None,
        fit_targets=tuple(t for t in pred.fit_targets if t != target),
        horizon=horizon_of(target),
        symbol=cfg.data.files[0].symbol,
        threshold_params=dict(options["thresholds"]),
        run_key="plan",
        threads=threads,
        parent_pid=os.getpid(),
        sample_weights=options["sample_weights"],
        weight_decay=float(options["weight_decay"]),
        seed=int(cfg.seed),
    )
    run_fold(task)
    info = json.loads((out / FOLD_FILE).read_text())
    info.setdefault("timing", [])
    return info


def _network_cost(
    spec: tuple[str, dict[str, Any]], timing: Mapping[str, Any], scale: tuple[float, float]
) -> NetworkCost:
    """A network's per-fold cost from its calibration timing (see the module docstring): the
    last epoch's training part scaled by the fold's training rows over the calibration's, its
    validation part by the validation rows; tracing = first epoch - last epoch."""
    name, params = spec
    epochs = [float(t) for t in timing["epochs"]]
    validation = [float(t) for t in timing.get("validation") or [0.0] * len(epochs)]
    steady = epochs[-1] if epochs else 0.0
    trace = max(0.0, epochs[0] - steady) if len(epochs) > 1 else 0.0
    checked = validation[-1] if validation else 0.0
    full_epoch = (steady - checked) * scale[0] + checked * scale[1]
    budget, patience = int(params["epochs"]), int(params["patience"])
    warm_budget = params.get("warm_epochs") or max(1, budget // 5)
    warm_patience = params.get("warm_patience") or max(1, patience // 3)
    return NetworkCost(
        name=name,
        setup=round(float(timing["setup"]), 3),
        trace=round(trace, 3),
        epoch=round(full_epoch, 3),
        epochs_expected=min(budget, TYPICAL_BEST_EPOCH + patience),
        epochs_max=budget,
        warm_epochs_expected=min(warm_budget, TYPICAL_BEST_EPOCH_WARM + warm_patience),
        warm_epochs_max=int(warm_budget),
        parameters=int(timing.get("parameters", 0)),
    )


def _data_mb(
    feed: pd.DataFrame,
    bars: Mapping[str, pd.DataFrame],
    networks: Sequence[NetworkCost],
    width: int,
    rows: int,
) -> float:
    """Memory of one worker's fold data and networks (see the module docstring), in MiB."""
    longest = max(len(b) for b in bars.values())
    feed_bytes = longest * feed.shape[1] * 8 * 2  # the feed and the slices a fold takes
    inputs = rows * width * (8 * 4 + 4 * 2) * max(1, len(networks))  # float64 copies, float32
    weights = sum(n.parameters for n in networks) * TRAINING_BYTES_PER_PARAM
    return (feed_bytes + inputs + weights) / 2**20


_RUNTIME_PROBE = """
import json, os, sys
def rss():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
import mlstrat.walkforward.runner, xgboost
found = {"python": rss()}
if sys.argv[1] == "keras":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras, tensorflow
    found["keras"] = rss()
print(json.dumps(found))
"""


def worker_runtime_mb(*, keras: bool) -> dict[str, float]:
    """Resident MiB of a fresh worker after importing the runner (`python`) and, with `keras`,
    TensorFlow and Keras (`keras`); 0 where /proc is missing (the plan then omits them)."""
    import subprocess
    import sys

    package_root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", _RUNTIME_PROBE, "keras" if keras else "plain"],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    try:
        found = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        found = {}
    python = float(found.get("python", 0.0))
    return {"python": python, "keras": float(found.get("keras", python))}


# ---------------------------------------------------------------------------- the run's ETA


class EtaModel:
    """Seconds left in a run's walk-forward stage: per model and symbol, folds left x seconds
    per fold (the plan's, until the model's own finished folds measure it)."""

    def __init__(self, workers: int, plan: Plan | None = None) -> None:
        self.workers = max(1, int(workers))
        self.planned = plan.per_fold() if plan is not None else {}
        self.warm = {m.name: m.warm_start for m in plan.models} if plan is not None else {}
        self.left: dict[tuple[str, str], int] = {}
        self.measured: dict[str, list[float]] = {}

    def add(self, model: str, symbol: str, folds: int, warm: bool = False) -> None:
        """Folds still to train for `model` on `symbol`."""
        self.left[(model, symbol)] = int(folds)
        self.warm.setdefault(model, warm)

    def finished(self, model: str, symbol: str, seconds: float) -> None:
        """One fold of `model` finished in `seconds`."""
        key = (model, symbol)
        self.left[key] = max(0, self.left.get(key, 0) - 1)
        self.measured.setdefault(model, []).append(float(seconds))

    def per_fold(self, model: str) -> float | None:
        times = self.measured.get(model)
        return float(np.mean(times)) if times else self.planned.get(model)

    def remaining(self) -> float | None:
        """Expected seconds left; None while a model with folds left has no estimate yet."""
        total = 0.0
        for (model, _), n in self.left.items():
            if n == 0:
                continue
            each = self.per_fold(model)
            if each is None:
                return None
            parallel = 1 if self.warm.get(model) else self.workers
            total += math.ceil(n / parallel) * each
        return total

    def text(self) -> str:
        left = self.remaining()
        return "ETA ?" if left is None else f"ETA {_duration(left)}"


def read_plan(path: Path, config_hash: str) -> Plan | None:
    """The plan stored at `path` if it was made for the configuration `config_hash`."""
    try:
        data = json.loads(path.read_text())
        plan = Plan.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return plan if plan.config_hash == config_hash else None


__all__ = [
    "CALIBRATION_WINDOWS",
    "PLAN_FILE",
    "EtaModel",
    "ModelPlan",
    "NetworkCost",
    "Plan",
    "calibration_params",
    "plan_experiment",
    "read_plan",
]
