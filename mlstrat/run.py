"""One reproducible experiment: data → features → walk-forward → backtest → report.

    from mlstrat.run import run_experiment, replay
    result = run_experiment("configs/demo.yaml", "reports/demo")
    replay("reports/demo")            # recomputes everything, checks trades.csv is identical

Every stage's output is cached under a key that hashes its inputs: the
config section it reads, the keys of the stages it consumes and the sha256 of
the data files (plus the strategy's source file for the backtest). A stage
whose key has a finished cache entry is skipped, so a second run that only
changes a strategy parameter reuses the features and the trained models, and
a killed run restarts where it stopped (walk-forward also resumes inside a
stage, fold by fold). The cache lives in ``OUT/cache`` unless ``cache_dir`` is
set (a shared directory several runs can reuse).

The run directory is self-contained; files are hard links into the cache
where possible (copies otherwise)::

    config.yaml         the resolved configuration (defaults filled, absolute paths)
    environment.json    Python/mlstrat/backtrader/TensorFlow/XGBoost/... versions,
                        platform, data files with sha256, the lock file's sha256
                        and every installed version that differs from it
    run.json            status, stage keys, what was computed or reused, timings
    plan.json           the cost plan of `mlstrat run CONFIG --plan` (when one was made)
    features/SYM.parquet                feature feed per symbol
    models/PRED/SYM/                    walk-forward output: folds/NNN/ model dirs,
                                        predictions.parquet, folds.json
    backtests/PRED/                     BacktestResult (trades.csv, equity.csv, ...)
                                        and predictions/SYM.parquet as traded
    paths/PRED/equity.parquet           walkforward.scheme cpcv: the equity of each CPCV
                                        path's backtest (the headline backtest is path 0)
    report/PRED/report.html             one report per traded predictor
    report/comparison/report.html       all traded predictors side by side
    trials/index.json, trials/returns/  the trial log: every backtest run into this
                                        directory, with its per-bar returns (`mlstrat.trials`;
                                        the reports' DSR and PBO count them)
    sweep/                              `mlstrat sweep`: ranking, trials, page (`mlstrat.sweep`)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import filecmp
import math
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import mlstrat
from mlstrat import sections
from mlstrat.cache import Entry, cached, content_hash, verify_cache
from mlstrat.config import (
    RULE_PREFIX,
    PredictorConfig,
    RunConfig,
    load_config,
    parse_config,
    warn_horizons,
)
from mlstrat.errors import ConfigError, DataError, IntegrityError, MlstratError
from mlstrat.features.targets import forward_return, horizon_of
from mlstrat.fileio import load_json, scratch_dir, storage_error, versions
from mlstrat.lockfile import lock_status
from mlstrat.plan import PLAN_FILE
from mlstrat.rundir import RunDir, inside
from mlstrat.sweep import SWEEP_DIR
from mlstrat.tracking import open_tracker, track_run
from mlstrat.trials import TRIALS_DIR, trials_digest
from mlstrat.walkforward.thresholds import NET_PNL_PROCEDURE

#: Bumped when a stage's output format or meaning changes, so old cache entries are not reused.
STAGE_VERSIONS = {"features": 4, "walkforward": 3, "backtest": 2, "paths": 1, "report": 4}
RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
ENV_FILE = "environment.json"
REPLAY_DIR = "replay"
#: Where the extra CPCV walk-forwards of ``walkforward.cpcv_predictors`` go: cpcv/PRED/SYM.
CPCV_DIR = "cpcv"
CACHE_DIR = "cache"
TRADES_FILE = "trades.csv"
#: Where `mlstrat run` puts a run without --out: reports/<config name>.
REPORTS_DIR = Path("reports")
#: Distributions whose versions every run records (first installed name of each group).
VERSION_PACKAGES: tuple[tuple[str, ...], ...] = (
    ("mlstrat",),
    ("backtrader",),
    ("tensorflow-cpu", "tensorflow"),
    ("keras",),
    ("xgboost-cpu", "xgboost"),
    ("numpy",),
    ("pandas",),
    ("pyarrow",),
    ("scikit-learn",),
    ("joblib",),
    ("matplotlib",),
)


# ---------------------------------------------------------------------------- records


@dataclass
class StageRecord:
    """What one stage did for one item (symbol, predictor, ...)."""

    stage: str
    item: str
    key: str
    status: str  # "hashed" (data), "computed", "cached" or "resumed"
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "item": self.item,
            "key": self.key,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            **({"detail": self.detail} if self.detail else {}),
        }


@dataclass
class RunResult:
    """A finished run: where it is, what each stage did, the backtests and the report pages."""

    out: Path
    config: RunConfig
    stages: list[StageRecord]
    results: dict[str, Any]  # predictor name -> BacktestResult
    reports: dict[str, Path]  # predictor name (or "comparison") -> report.html
    seconds: float

    def status(self, stage: str) -> dict[str, str]:
        """item -> status of every record of `stage`."""
        return {r.item: r.status for r in self.stages if r.stage == stage}

    @property
    def main_report(self) -> Path | None:
        if "comparison" in self.reports:
            return self.reports["comparison"]
        return next(iter(self.reports.values()), None)

    def trades(self, predictor: str | None = None) -> pd.DataFrame:
        name = predictor or next(iter(self.results))
        return self.results[name].trades


@dataclass
class ReplayResult:
    """Outcome of `replay`: per traded predictor, whether trades.csv came out byte-identical."""

    run_dir: Path
    out: Path
    mode: str
    identical: dict[str, bool]
    differences: dict[str, str]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(self.identical.values())


# ---------------------------------------------------------------------------- helpers


def environment(config: RunConfig, data_hashes: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "versions": versions(("python", *VERSION_PACKAGES)),
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "python_implementation": platform.python_implementation(),
            "cpu_count": os.cpu_count(),
        },
        "data": dict(data_hashes),
        "seed": config.seed,
        "lock": lock_status(),
    }


def _read_json(path: Path) -> Any:
    """A JSON file mlstrat wrote in the run directory or the cache; unparseable → IntegrityError."""
    return load_json(path, fix="run `mlstrat run` again to rewrite it")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _bar(progress: bool, total: int, desc: str, unit: str) -> Any:
    from mlstrat.progress import progress_bar

    return progress_bar(total=total, desc=desc, unit=unit, enabled=progress)


# ---------------------------------------------------------------------------- the pipeline


class _Pipeline:
    def __init__(self, config: RunConfig, run: RunDir, cache: Path, progress: bool) -> None:
        self.config = config
        self.run = run
        self.out = run.root
        self.cache = cache
        self.progress = progress
        self.records: list[StageRecord] = []
        self.data_hashes: dict[str, dict[str, Any]] = {}
        self.feature_keys: dict[str, str] = {}
        self.feature_paths: dict[str, Path] = {}
        self.wf_keys: dict[tuple[str, str], str] = {}
        self.wf_dirs: dict[tuple[str, str], Path] = {}
        self.bt_keys: dict[str, str] = {}
        self.results: dict[str, Any] = {}
        self.cpcv_keys: dict[tuple[str, str], str] = {}  # walkforward.cpcv_predictors
        self.cpcv_dirs: dict[tuple[str, str], Path] = {}
        self.path_keys: dict[str, str] = {}
        self.path_stats: dict[str, Any] = {}  # predictor -> PathStats of its CPCV paths
        self.reports: dict[str, Path] = {}
        self.trials: Any = None  # the trial log, read once for the report pages

    def _stage(
        self,
        stage: str,
        item: str,
        key: str,
        build: Callable[[Entry], tuple[str, dict[str, Any]]],
        rel: str,
        src: str = "",
        *,
        resumable: bool = False,
    ) -> tuple[Path, dict[str, Any]]:
        """One cached stage item: reuse or build the entry, install it at `rel` in the run
        directory, record what happened. Returns the installed path and the entry's info."""
        started = time.perf_counter()
        entry = Entry(self.cache, stage, key)
        status, info = cached(entry, lambda: build(entry), resumable=resumable)
        target = self.run.install(entry.path / src if src else entry.path, rel)
        detail = {k: v for k, v in info.items() if k not in ("stage", "key")}
        self.records.append(
            StageRecord(stage, item, key, status, time.perf_counter() - started, detail)
        )
        return target, info

    # -- data ---------------------------------------------------------------

    def data(self) -> None:
        from mlstrat.data import file_sha256

        files = self.config.data.files
        with _bar(self.progress, len(files), "data (sha256)", "file") as bar:
            for f in files:
                started = time.perf_counter()
                info: dict[str, Any] = {"path": str(f.path), "sha256": file_sha256(f.path)}
                if f.minute_path is not None:
                    info["minute_path"] = str(f.minute_path)
                    info["minute_sha256"] = file_sha256(f.minute_path)
                self.data_hashes[f.symbol] = info
                self.records.append(
                    StageRecord(
                        "data",
                        f.symbol,
                        info["sha256"][:16],
                        "hashed",
                        time.perf_counter() - started,
                    )
                )
                bar.update(1)

    # -- features -----------------------------------------------------------

    def features(self) -> None:
        cfg = self.config
        section = cfg.section("features")
        with _bar(self.progress, len(cfg.data.files), "features", "symbol") as bar:
            for f in cfg.data.files:
                load = f.load_options()  # every data option, so changing one rebuilds
                key = content_hash(
                    {
                        "stage": "features",
                        "stage_version": STAGE_VERSIONS["features"],
                        "mlstrat": mlstrat.__version__,
                        "data": {
                            k: v for k, v in self.data_hashes[f.symbol].items() if "sha256" in k
                        },
                        "load": load,
                        "start": cfg.data.start,
                        "end": cfg.data.end,
                        "features": section,
                    }
                )

                def build(entry: Entry, f: Any = f) -> tuple[str, dict[str, Any]]:
                    frame = self._build_features(f)
                    entry.build_staged(lambda tmp: _write_feed(frame, tmp / "feed.parquet"))
                    return "computed", {"symbol": f.symbol, "rows": len(frame)}

                path, _ = self._stage(
                    "features", f.symbol, key, build, f"features/{f.symbol}.parquet", "feed.parquet"
                )
                self.feature_keys[f.symbol] = key
                self.feature_paths[f.symbol] = path
                self.data_hashes[f.symbol].update(_feed_quality(path))
                bar.update(1)

    def _build_features(self, f: Any) -> pd.DataFrame:
        """The feature feed of one file: computed on every bar up to data.end, cut to data.start.

        Cutting at the end before computing keeps targets from looking past
        data.end; cutting at the start afterwards lets the first bars of the run
        use earlier history as warm-up (the feed's metadata "warmup" records it).
        """
        from mlstrat.features import build_feature_feed, get_feature_set
        from mlstrat.features.feed_io import cut_after_warmup

        cfg = self.config
        bars = self._slice(f.load(), f.path)  # fix hints name data.files[i] keys
        minute = f.load_minutes()
        fs = get_feature_set(cfg.features.set, cfg.features.version)
        feed = build_feature_feed(bars, fs, targets=cfg.features.targets, minute_bars=minute)
        return cut_after_warmup(feed, cfg.data.start or feed.index[0])

    def _slice(self, bars: pd.DataFrame, path: Path) -> pd.DataFrame:
        """Bars up to data.end (all earlier history kept for warm-up); ≥ 2 must lie in the run."""
        start, end = self.config.data.start, self.config.data.end
        attrs = {**bars.attrs, "source_path": str(path)}  # error messages only
        if end is not None:
            bars = bars[bars.index <= pd.Timestamp(end)]
        in_run = bars if start is None else bars[bars.index >= pd.Timestamp(start)]
        if len(in_run) < 2:
            raise DataError(
                f"no bars between data.start={start} and data.end={end}",
                file=path,
                fix="widen data.start / data.end or check the file's period",
            )
        bars = bars.copy()
        bars.attrs = attrs
        return bars

    # -- walk-forward -------------------------------------------------------

    def walkforward(self) -> None:
        """Every predictor's walk-forward per symbol, then the extra CPCV walk-forwards of
        ``walkforward.cpcv_predictors`` (their models under cpcv/PRED/SYM)."""
        cfg = self.config
        jobs = [(p, f.symbol, False) for p in cfg.predictors for f in cfg.data.files]
        extra = [cfg.predictor(n) for n in cfg.walkforward.cpcv_predictors]
        jobs += [(p, f.symbol, True) for p in extra for f in cfg.data.files]
        eta = self._eta(jobs)
        with _bar(self.progress, len(jobs), "walk-forward", "model") as bar:
            for pred, symbol, cpcv in jobs:
                label = f"{pred.name} {symbol}" + (" cpcv" if cpcv else "")
                bar.set_postfix_str(f"{label} · {eta.text()}")
                key = self.wf_key(pred, symbol, cpcv)
                model = _eta_name(pred, cpcv)

                def fold_done(path: str, model: str = model, symbol: str = symbol, label=label):
                    seconds = float(_read_json(Path(path) / "fold.json").get("fit_seconds", 0))
                    eta.finished(model, symbol, seconds)
                    bar.set_postfix_str(f"{label} · {eta.text()}")

                def build(
                    entry: Entry,
                    pred: PredictorConfig = pred,
                    symbol: str = symbol,
                    cpcv=cpcv,
                    on_fold=fold_done,
                ) -> tuple[str, dict[str, Any]]:
                    result = self._run_walk_forward(pred, symbol, entry.path, cpcv, on_fold)
                    detail = {
                        "folds": len(result.folds),
                        "trained": result.n_trained,
                        "resumed": result.n_resumed,
                    }
                    status = "resumed" if result.n_resumed else "computed"
                    return status, {"predictor": pred.name, "symbol": symbol, **detail}

                where = f"{pred.name}/{symbol}"
                target, _ = self._stage(
                    "walkforward",
                    where + ("/cpcv" if cpcv else ""),
                    key,
                    build,
                    f"{CPCV_DIR}/{where}" if cpcv else f"models/{where}",
                    resumable=True,
                )
                keys, dirs = (
                    (self.cpcv_keys, self.cpcv_dirs) if cpcv else (self.wf_keys, self.wf_dirs)
                )
                keys[(pred.name, symbol)] = key
                dirs[(pred.name, symbol)] = target
                eta.add(model, symbol, 0)  # done (trained, resumed or cached)
                bar.update(1)

    def _eta(self, jobs: Sequence[tuple[PredictorConfig, str, bool]]) -> Any:
        """The walk-forward stage's `plan.EtaModel`: every job's folds, seconds per fold from
        the plan `mlstrat run --plan` kept here for this configuration (else measured)."""
        from mlstrat.plan import EtaModel, read_plan
        from mlstrat.walkforward.runner import available_cores

        cfg = self.config
        plan = None
        if self.run.owns(PLAN_FILE) and not self.run.verify([PLAN_FILE]):
            plan = read_plan(self.out / PLAN_FILE, content_hash(cfg.to_dict()))
        cores = available_cores()
        eta = EtaModel(cores if cfg.n_jobs < 0 else max(1, cfg.n_jobs), plan)
        indexes: dict[str, pd.DatetimeIndex] = {}
        for pred, symbol, cpcv in jobs:
            if symbol not in indexes:
                stamps = pd.read_parquet(self.feature_paths[symbol], columns=["timestamp"])
                indexes[symbol] = pd.DatetimeIndex(stamps["timestamp"])
            splits = dataclasses.replace(self.schedule(cpcv), horizon=horizon_of(pred.target))
            warm = pred.warm_start and not cpcv
            eta.add(_eta_name(pred, cpcv), symbol, len(splits.split(indexes[symbol])), warm)
        return eta

    def schedule(self, cpcv: bool = False) -> Any:
        """The walk-forward schedule, or its CPCV form for the cpcv_predictors' extra run."""
        return self.config.walkforward.cpcv_schedule() if cpcv else self.config.walkforward

    def wf_key(self, pred: PredictorConfig, symbol: str, cpcv: bool = False) -> str:
        spec = next(p for p in self.config.section("predictors") if p["name"] == pred.name)
        # no search / warm start: the key of a run from before they existed (models reused)
        defaults = (("search", None), ("warm_start", False))
        spec = {k: v for k, v in spec.items() if k != "name" and (k, v) not in defaults}
        return content_hash(
            {
                "stage": "walkforward",
                "stage_version": STAGE_VERSIONS["walkforward"],
                "features": self.feature_keys[symbol],
                "predictor": spec,
                "options": walkforward_options(self.config, pred),
                "walkforward": {
                    k: v
                    for k, v in sections.to_dict(self.schedule(cpcv)).items()
                    if k != "cpcv_predictors"  # which predictors get CPCV paths as well
                },
                "seed": self.config.seed,
                **(
                    {"net_pnl_procedure": NET_PNL_PROCEDURE}
                    if pred.thresholds.get("method") == "net_pnl"
                    else {}
                ),
            }
        )

    def _run_walk_forward(
        self,
        pred: PredictorConfig,
        symbol: str,
        entry: Path,
        cpcv: bool = False,
        on_fold: Callable[[str], None] | None = None,
    ) -> Any:
        from mlstrat.walkforward.runner import run_walk_forward

        cfg = self.config
        splits = dataclasses.replace(self.schedule(cpcv), horizon=horizon_of(pred.target))
        options = walkforward_options(cfg, pred)
        return run_walk_forward(
            self.feature_paths[symbol],
            predictor=pred.predictor,
            params=options["params"],
            target=pred.target,
            fit_targets=pred.fit_targets,
            splits=splits,
            out=entry,
            n_jobs=cfg.n_jobs,
            backend=cfg.backend,
            scheduler=cfg.scheduler,
            resume=True,
            features=None if pred.features is None else list(pred.features),
            thresholds=options["thresholds"],
            seed=cfg.seed,
            progress=self.progress,
            sample_weights=options["sample_weights"],
            weight_decay=options["weight_decay"],
            search=options["search"],
            warm_start=options.get("warm_start", False) and not cpcv,  # cpcv: not time-ordered
            on_fold=on_fold,
        )

    def record_search_trials(self) -> None:
        """Log every hyperparameter-search trial of the walk-forwards as a trial of the run
        (kind ``search``: they count in the deflated Sharpe ratio)."""
        from mlstrat.trials import append_trials

        trials = []
        for (name, symbol), wf_dir in self.wf_dirs.items():
            if self.config.predictor(name).search is not None:
                key = self.wf_keys[(name, symbol)]
                trials += search_trials(wf_dir, key, f"{name}/{symbol}")
        if trials:
            append_trials(self.run, trials)

    # -- backtest -----------------------------------------------------------

    def backtest(self) -> None:
        from mlstrat.report.result import BacktestResult

        signal = self.config.signal_predictors
        with _bar(self.progress, len(signal), "backtest", "strategy") as bar:
            for pred in signal:
                bar.set_postfix_str(pred.name)
                key = self.bt_key(pred)

                def build(entry: Entry, pred: PredictorConfig = pred) -> tuple[str, dict[str, Any]]:
                    try:
                        entry.build_staged(lambda tmp: self._run_backtest(pred, tmp))
                    except ConfigError as exc:
                        raise self._locate(exc) from None
                    return "computed", {"predictor": pred.name}

                target, _ = self._stage("backtest", pred.name, key, build, f"backtests/{pred.name}")
                self.bt_keys[pred.name] = key
                self.results[pred.name] = BacktestResult.load(target / "result")
                self.records[-1].detail["trades"] = len(self.results[pred.name].trades)
                bar.update(1)

    def record_trials(self) -> None:
        """Log every traded predictor's backtest as a trial of the run (`mlstrat.trials`)."""
        from mlstrat.trials import append_trials, backtest_trial

        trials = [backtest_trial(self.bt_keys[n], "run", n, r) for n, r in self.results.items()]
        append_trials(self.run, trials)

    def statistics_options(self) -> Any:
        """How the report pages compute PSR, DSR and PBO: over the run directory's trial log,
        with the report section's confidence, resamples and blocks and the run's seed."""
        from mlstrat.report.stats import StatisticsOptions
        from mlstrat.trials import load_trials

        rep = self.config.report
        if self.trials is None:
            self.trials = load_trials(self.out)
        return StatisticsOptions(
            self.trials, rep.confidence, rep.bootstrap_resamples, self.config.seed, rep.pbo_blocks
        )

    def _locate(self, exc: ConfigError, config: RunConfig | None = None) -> ConfigError:
        """A strategy or sizer parameter refused at backtest time, named by its config key
        (``param=``; ``column=`` too, which user strategies written before it carry)."""
        cfg = config or self.config
        param = exc.param or exc.column
        if param in cfg.strategy.params:
            path = f"strategy.params.{param}"
        elif param in cfg.sizing.params:
            path = f"sizing.params.{param}"
        else:
            return exc
        return ConfigError(f"{path}: {exc.problem}", file=cfg.source, fix=exc.fix)

    def bt_key(self, pred: PredictorConfig, config: RunConfig | None = None) -> str:
        """The backtest stage's key of `pred` under `config` (default the run's: a sweep
        asks for its combinations' keys over the same features and models)."""
        cfg = config or self.config
        from mlstrat.data import file_sha256

        strategy = dict(cfg.section("strategy"))
        if cfg.strategy.file is not None and cfg.strategy.file.is_file():
            strategy["source_sha256"] = file_sha256(cfg.strategy.file)
        sizing = dict(cfg.section("sizing"))
        vol = cfg.volatility_predictor
        symbols = cfg.data.symbols
        return content_hash(
            {
                "stage": "backtest",
                "stage_version": STAGE_VERSIONS["backtest"],
                "mlstrat": mlstrat.__version__,
                "features": {s: self.feature_keys[s] for s in symbols},
                "signal": {s: self.wf_keys[(pred.name, s)] for s in symbols},
                "volatility": None
                if vol is None
                else {s: self.wf_keys[(vol.name, s)] for s in symbols},
                "strategy": strategy,
                "sizing": sizing,
                "broker": cfg.section("broker"),
                "name": cfg.name,
                "predictor": pred.name,
            }
        )

    def _run_backtest(self, pred: PredictorConfig, tmp: Path) -> None:
        result, frames = backtest_predictor(
            self.config,
            pred,
            self.feature_paths,
            {s: self.wf_dirs[(pred.name, s)] for s in self.config.data.symbols},
            None
            if self.config.volatility_predictor is None
            else {
                s: self.wf_dirs[(self.config.volatility_predictor.name, s)]
                for s in self.config.data.symbols
            },
        )
        (tmp / "predictions").mkdir()
        for symbol, frame in frames.items():
            frame.to_parquet(tmp / "predictions" / f"{symbol}.parquet", index=False)
        result.save(tmp / "result")

    # -- CPCV paths ---------------------------------------------------------

    def paths(self) -> None:
        """Backtest every CPCV path of each traded predictor (``walkforward.scheme: cpcv``;
        the headline backtest is path 0) or of each of ``walkforward.cpcv_predictors``
        (beside their walk-forward backtest), with the same strategy, sizer and broker, and
        keep the equity curves."""
        from mlstrat.report.paths import EQUITY_FILE, path_distribution, read_path_equity

        cfg = self.config
        every = cfg.walkforward.scheme == "cpcv"
        names = (
            [p.name for p in cfg.signal_predictors] if every else cfg.walkforward.cpcv_predictors
        )
        keys, dirs = (self.wf_keys, self.wf_dirs) if every else (self.cpcv_keys, self.cpcv_dirs)
        with _bar(self.progress, len(names), "CPCV paths", "strategy") as bar:
            for pred in (cfg.predictor(n) for n in names):
                bar.set_postfix_str(pred.name)
                wf_dirs = {s: dirs[(pred.name, s)] for s in cfg.data.symbols}
                key = content_hash(
                    {
                        "stage": "paths",
                        "stage_version": STAGE_VERSIONS["paths"],
                        "backtest": self.bt_keys[pred.name],
                        "cpcv": {s: keys[(pred.name, s)] for s in cfg.data.symbols},
                    }
                )

                def build(
                    entry: Entry, pred: PredictorConfig = pred, wf_dirs: Any = wf_dirs
                ) -> tuple[str, dict[str, Any]]:
                    n = entry.build_staged(lambda tmp: self._backtest_paths(pred, wf_dirs, tmp))
                    return "computed", {"predictor": pred.name, "paths": n}

                target, _ = self._stage("paths", pred.name, key, build, f"paths/{pred.name}")
                self.path_keys[pred.name] = key
                self.path_stats[pred.name] = path_distribution(
                    read_path_equity(target / EQUITY_FILE),
                    timeframe=self.results[pred.name].timeframe,
                    headline=None if every else self.results[pred.name].equity,
                )
                bar.update(1)

    def _backtest_paths(self, pred: PredictorConfig, wf_dirs: Mapping[str, Path], tmp: Path) -> int:
        """Backtest each path (all symbols together) and write their equity curves."""
        from mlstrat.report.paths import EQUITY_FILE, write_path_equity

        symbols = self.config.data.symbols
        vol = self.config.volatility_predictor
        vol_dirs = None if vol is None else {s: self.wf_dirs[(vol.name, s)] for s in symbols}
        curves = []
        for number in cpcv_path_numbers(wf_dirs):
            result, _ = backtest_predictor(
                self.config, pred, self.feature_paths, wf_dirs, vol_dirs, path=number
            )
            curves.append(result.equity)
        write_path_equity(curves, tmp / EQUITY_FILE)
        return len(curves)

    # -- report -------------------------------------------------------------

    def report(self, previous: Mapping[str, Any]) -> None:
        """Report pages are rebuilt unless the previous run made them from the same backtests
        and every file of the page still matches the run directory's manifest."""
        cfg = self.config
        if not cfg.report.enabled:
            return
        names = list(self.results)
        pages = [(n, [n]) for n in names]
        if cfg.report.comparison and len(names) > 1:
            pages.append(("comparison", names))
        old = {
            r["item"]: r["key"] for r in previous.get("stages", []) if r.get("stage") == "report"
        }
        with _bar(self.progress, len(pages), "report", "page") as bar:
            for page, members in pages:
                started = time.perf_counter()
                key = content_hash(
                    {
                        "stage": "report",
                        "stage_version": STAGE_VERSIONS["report"],
                        "mlstrat": mlstrat.__version__,
                        "backtests": {m: self.bt_keys[m] for m in members},
                        "report": cfg.section("report"),
                        "trials": trials_digest(self.out),
                        "seed": cfg.seed,
                        **self._path_key(members),
                    }
                )
                rel = f"report/{page}"
                files = [f for f in self.run.files if f.startswith(rel + "/")]
                status = "cached"
                intact = f"{rel}/report.html" in files and not self.run.verify(files)
                if not (old.get(page) == key and intact):
                    status = "computed"
                    with scratch_dir(self.cache / "report") as tmp:
                        self._build_page(page, members, tmp / page)
                        self.run.install(tmp / page, rel, link=False)
                self.reports[page] = self.out / rel / "report.html"
                self.records.append(
                    StageRecord("report", page, key, status, time.perf_counter() - started)
                )
                bar.update(1)

    def _build_page(self, page: str, members: list[str], target: Path) -> None:
        from mlstrat.report.html import build_comparison, build_report

        cfg = self.config
        title = cfg.report.title or cfg.name
        rep = cfg.report
        if page == "comparison":
            build_comparison(
                {m: self.results[m] for m in members},
                target,
                title=f"{title}: comparison",
                risk_free=rep.risk_free,
                dpi=rep.dpi,
                paths={m: self.path_stats[m] for m in members if m in self.path_stats},
                statistics=self.statistics_options(),
            )
        else:
            label = f"{title}: {page}" if len(self.results) > 1 else title
            build_report(
                self.results[page],
                target,
                title=label,
                risk_free=rep.risk_free,
                log_scale=rep.log_scale,
                dpi=rep.dpi,
                paths=self.path_stats.get(page),
                statistics=self.statistics_options(),
            )

    def _path_key(self, members: Sequence[str]) -> dict[str, Any]:
        """The CPCV path stages a report page shows (nothing without scheme cpcv)."""
        keys = {m: self.path_keys[m] for m in members if m in self.path_keys}
        return {"paths": keys} if keys else {}

    def prune(self) -> None:
        """Delete recorded files of symbols/predictors no longer in the configuration (left by
        an earlier run with another config). Files mlstrat did not write are never touched;
        the cache keeps its entries."""
        cfg = self.config
        keep = (
            {CONFIG_FILE, RUN_FILE, ENV_FILE, PLAN_FILE}
            | {f"features/{s}.parquet" for s in cfg.data.symbols}
            | {f"models/{p.name}/{s}/" for p in cfg.predictors for s in cfg.data.symbols}
            | {f"backtests/{n}/" for n in self.results}
            | {f"paths/{n}/" for n in self.path_keys}
            | {f"{CPCV_DIR}/{p}/{s}/" for p, s in self.cpcv_dirs}
            | {f"report/{n}/" for n in self.reports}
            | {f"{TRIALS_DIR}/", f"{SWEEP_DIR}/"}  # what was tried stays counted
        )
        self.run.prune(lambda rel: rel in keep or any(rel.startswith(k) for k in keep))


def _eta_name(pred: PredictorConfig, cpcv: bool) -> str:
    """A walk-forward's model name in `mlstrat.plan` (its CPCV run: "NAME (cpcv)")."""
    return f"{pred.name} (cpcv)" if cpcv else pred.name


def plan_run(
    config: RunConfig | str | Path,
    out: str | Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Any, Path]:
    """`mlstrat run CONFIG --plan`: the cost plan (`mlstrat.plan.plan_experiment`), kept as
    plan.json in the run directory so the run's progress bar starts with its ETA."""
    from mlstrat.plan import plan_experiment

    cfg = _as_config(config, overrides)
    plan = plan_experiment(cfg)
    out = _out_dir(cfg, out)
    _refuse_inputs_inside(cfg, out)
    try:
        run = RunDir.claim(out)
        with run.lock():
            run.write_json(PLAN_FILE, plan.to_dict())
    except OSError as exc:
        error = storage_error(exc)
        if error is None:
            raise
        raise error from None
    return plan, out / PLAN_FILE


def walkforward_options(cfg: RunConfig, pred: PredictorConfig) -> dict[str, Any]:
    """What a walk-forward of `pred` runs with beyond its entry: a meta predictor's primary
    (another entry's predictor, parameters and targets, or a rule) in its parameters, and
    the broker's commission and slippage as the costs trade outcomes are judged with
    (``method: net_pnl`` thresholds, predictors that learn outcomes) unless given."""
    from mlstrat.predictors.registry import get_predictor

    params = dict(pred.params)
    if pred.primary is not None and pred.primary.startswith(RULE_PREFIX):
        params["primary"] = pred.primary
    elif pred.primary is not None:
        entry = cfg.predictor(pred.primary)
        params["primary"] = [entry.predictor, dict(entry.params)]
        targets = [entry.target, *entry.fit_targets]
        params["primary_target"] = targets[0] if len(targets) == 1 else targets
    thresholds = dict(pred.thresholds)
    if thresholds.get("method") == "net_pnl" or get_predictor(pred.predictor).learns_outcomes:
        thresholds.setdefault("commission", cfg.broker.commission)
        thresholds.setdefault("slippage", cfg.broker.slippage)
    return {
        "params": params,
        "thresholds": thresholds,
        "sample_weights": pred.sample_weights,
        "weight_decay": pred.weight_decay,
        "search": pred.search,
        **({"warm_start": True} if pred.warm_start else {}),
    }


def search_trials(wf_dir: Path, wf_key: str, label: str) -> list[Any]:
    """The search trials a walk-forward's folds ran (their fold.json), as trials of the run's
    log: each one's Sharpe is the per-bar Sharpe of its thresholded signal times the forward
    return on its fold's validation rows; the id names the walk-forward, fold and trial."""
    from mlstrat.trials import Trial
    from mlstrat.walkforward.runner import FOLD_FILE

    found = []
    for fold_dir in sorted((wf_dir / "folds").iterdir()):
        if not (fold_dir.name.isdigit() and (fold_dir / FOLD_FILE).is_file()):
            continue
        info = _read_json(fold_dir / FOLD_FILE)
        search = info.get("search") or {}
        for t in search.get("trials", []):
            found.append(
                Trial(
                    f"search-{wf_key[:16]}-{int(info['fold']):03d}-{int(t['number']):04d}",
                    "search",
                    f"{label} fold {info['fold']} trial {t['number']}",
                    float(t["sharpe"]),
                    settings=t["params"],
                    detail={
                        "fold": info["fold"],
                        "metric": search["metric"],
                        "score": t["score"],
                        "n_validation": t["n_validation"],
                    },
                )
            )
    return found


def _feed_quality(path: Path) -> dict[str, Any]:
    """The feed's data-quality report and warm-up, for run.json (see docs/data.md)."""
    from mlstrat.features import read_metadata

    meta = read_metadata(path)
    return {k: meta[k] for k in ("quality", "warmup") if k in meta}


def _write_feed(frame: pd.DataFrame, path: Path) -> None:
    from mlstrat.features import write_feature_feed

    write_feature_feed(frame, path)


# ---------------------------------------------------------------------------- backtest stage


def prediction_frame(
    config: RunConfig,
    pred: PredictorConfig,
    wf_dir: Path,
    vol_dir: Path | None,
    path: int | None = None,
) -> pd.DataFrame:
    """The prediction feed a backtest trades: the predictor's walk-forward predictions (or
    those of CPCV path `path`), with the volatility source's forecast as a per-bar
    ``volatility`` column when sizing uses one.

    The volatility predictor forecasts its target (``forward_volatility_h``: the volatility
    of the next h bars); dividing by √h turns that into a per-bar volatility, the unit the
    sizer's ``target_vol`` / ``periods_per_year`` expect.
    """
    from mlstrat.walkforward.cpcv import path_file

    source = wf_dir / "predictions.parquet" if path is None else path_file(wf_dir, path)
    frame = pd.read_parquet(source)
    if vol_dir is None:
        return frame
    path = vol_dir / "predictions.parquet"
    return attach_volatility(config, frame, pd.read_parquet(path), file=path)


def attach_volatility(
    config: RunConfig, frame: pd.DataFrame, vol: pd.DataFrame, *, file: Any = None
) -> pd.DataFrame:
    """`frame` (signal predictions) with the volatility predictor's forecasts in ``vol`` as a
    per-bar ``volatility`` column (see `prediction_frame`); paper trading shares it."""
    vol_cfg = config.volatility_predictor
    assert vol_cfg is not None
    if "volatility" not in vol.columns:
        raise DataError(
            f"volatility predictor {vol_cfg.name!r} wrote no 'volatility' column",
            file=file,
            column="volatility",
            fix="use a predictor with task 'volatility' (e.g. volatility_lstm) as sizing.volatility",
        )
    per_bar = vol.set_index("timestamp")["volatility"] / math.sqrt(horizon_of(vol_cfg.target))
    frame = frame.drop(columns=[c for c in ("volatility",) if c in frame.columns])
    frame["volatility"] = per_bar.reindex(pd.DatetimeIndex(frame["timestamp"])).to_numpy()
    return frame


def feed_columns(
    config: RunConfig, pred: PredictorConfig, feed_path: Path, predictions: pd.DataFrame
) -> list[str]:
    """Lines of a backtest feed: predictions, chosen features, the traded target and its return."""
    from mlstrat.features import read_metadata

    roles = read_metadata(feed_path).get("roles", {})
    features = [c for c, r in roles.items() if r == "feature"]
    targets = [c for c, r in roles.items() if r == "target"]
    cols = [c for c in predictions.columns if c != "timestamp"]
    chosen = config.strategy.columns
    if chosen == "all":
        cols += features
    elif not isinstance(chosen, str):
        cols += [c for c in chosen if c not in cols]
    for extra in (pred.target, forward_return(horizon_of(pred.target)).name):
        if extra in targets and extra not in cols:
            cols.append(extra)
    return cols


def _first_timestamp(frame: pd.DataFrame) -> pd.Timestamp:
    valid = frame.loc[frame["signal"].notna(), "timestamp"]
    ts = valid.iloc[0] if len(valid) else frame["timestamp"].iloc[0]
    return pd.Timestamp(ts)


def _folds(wf_dir: Path, symbol: str) -> list[dict[str, Any]]:
    path = wf_dir / "folds.json"
    if not path.is_file():
        return []
    return [{"symbol": symbol, **r} for r in _read_json(path)]


def _feature_importance(
    pred: PredictorConfig, wf_dirs: Mapping[str, Path]
) -> dict[str, float] | None:
    """Mean importance over every fold model, when the predictor can report it."""
    from mlstrat.predictors.registry import get_predictor, load_predictor

    if not hasattr(get_predictor(pred.predictor), "feature_importance"):
        return None
    totals: dict[str, float] = {}
    n = 0
    for wf_dir in wf_dirs.values():
        for fold in sorted((wf_dir / "folds").iterdir()):
            if not fold.is_dir() or not fold.name.isdigit():
                continue
            model = load_predictor(fold)
            for name, value in model.feature_importance().items():
                totals[name] = totals.get(name, 0.0) + float(value)
            n += 1
    if not n:
        return None
    return {k: v / n for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def backtest_predictor(
    config: RunConfig,
    pred: PredictorConfig,
    feature_paths: Mapping[str, Path],
    wf_dirs: Mapping[str, Path],
    vol_dirs: Mapping[str, Path] | None,
    *,
    path: int | None = None,
    with_importance: bool = True,
) -> tuple[Any, dict[str, pd.DataFrame]]:
    """Backtest the configured strategy on one predictor's walk-forward predictions, or on
    CPCV path `path` of each symbol (then without the feature importance of the folds, as
    with `with_importance` False: a sweep's trials skip loading every fold model).

    One feed per symbol starts at the symbol's first prediction (the bars before
    the first test period have no out-of-sample prediction). Returns the
    BacktestResult and the prediction frames that were traded.
    """
    from mlstrat.feed import FeatureFeed

    feeds: dict[str, Any] = {}
    frames: dict[str, pd.DataFrame] = {}
    folds: list[dict[str, Any]] = []
    for symbol in config.data.symbols:
        frame = prediction_frame(
            config, pred, wf_dirs[symbol], None if vol_dirs is None else vol_dirs[symbol], path
        )
        frames[symbol] = frame
        cols = feed_columns(config, pred, feature_paths[symbol], frame)
        feeds[symbol] = FeatureFeed.from_parquet(
            feature_paths[symbol], columns=cols, start=_first_timestamp(frame), predictions=frame
        )
        folds += _folds(wf_dirs[symbol], symbol)
    importance = _feature_importance(pred, wf_dirs) if path is None and with_importance else None
    result = configured_backtest(config, pred, feeds, folds=folds, feature_importance=importance)
    return result, frames


def cpcv_path_numbers(wf_dirs: Mapping[str, Path]) -> list[int]:
    """The CPCV path numbers every symbol's walk-forward wrote (the same for all)."""
    from mlstrat.walkforward.cpcv import PATHS_FILE, path_numbers

    found = {symbol: path_numbers(d) for symbol, d in wf_dirs.items()}
    first = next(iter(found.values()))
    for symbol, numbers in found.items():
        if not numbers or numbers != first:
            raise DataError(
                f"the CPCV walk-forward of {symbol} holds paths {numbers}, expected {first}",
                file=wf_dirs[symbol] / PATHS_FILE,
                fix="rerun `mlstrat run` (its walk-forward stage rebuilds the paths)",
            )
    return list(first or [])


def configured_backtest(
    config: RunConfig,
    pred: PredictorConfig,
    feeds: Mapping[str, Any],
    *,
    folds: list[dict[str, Any]] | None = None,
    feature_importance: Mapping[str, float] | None = None,
    analyzers: Sequence[tuple[type, Mapping[str, Any]]] = (),
) -> Any:
    """`run_backtest` of the configured strategy, sizer and broker on `feeds` (symbol → feed):
    the one place a configuration becomes a Cerebro, so the backtest stage and paper trading
    (`mlstrat.paper`, live feeds and a journal analyzer) cannot drift apart."""
    from mlstrat.backtest import run_backtest

    resolved = config.to_dict()
    return run_backtest(
        feeds,
        config.strategy.strategy_class(),  # imported once, when the configuration was read
        config.strategy.params,
        sizer=config.sizing.sizer_class(),
        sizer_params=config.sizing.params,
        broker=config.broker,
        folds=folds,
        feature_importance=feature_importance,
        analyzers=analyzers,
        config={
            "name": f"{config.name}: {pred.name}",
            "predictor": resolved["predictors"][
                [p.name for p in config.predictors].index(pred.name)
            ],
            "volatility_predictor": None
            if config.volatility_predictor is None
            else config.volatility_predictor.name,
            "run": {
                k: resolved[k]
                for k in ("name", "seed", "features", "walkforward", "strategy", "sizing", "broker")
            },
            "data_files": [str(f.path) for f in config.data.files],
            "seed": config.seed,
        },
    )


# ---------------------------------------------------------------------------- entry points


def _as_config(config: RunConfig | str | Path, overrides: Mapping[str, Any] | None) -> RunConfig:
    if isinstance(config, RunConfig):
        if overrides:
            from mlstrat.config import apply_overrides

            base = config.source.resolve().parent if config.source else Path.cwd()
            return parse_config(
                apply_overrides(config.to_dict(), overrides), base=base, source=config.source
            )
        return config
    return load_config(config, overrides)


def run_experiment(
    config: RunConfig | str | Path,
    out: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> RunResult:
    """Run (or resume) the whole experiment of ``config`` into the run directory ``out``.

    out: default ``reports/<config name>``; it must be new, empty or a run directory
    mlstrat made (see `mlstrat.rundir`), and no input file may lie inside it.
    cache_dir: overrides the config's ``cache_dir`` (default ``OUT/cache``).
    overrides: dotted key paths → values applied to the YAML before validation (see
    `mlstrat.config.load_config`). A full disk, a read-only or forbidden directory
    end in a one-line `StorageError`; run.json then says "failed".
    """
    started = time.perf_counter()
    cfg = _as_config(config, overrides)
    warn_horizons(cfg)
    return in_run_dir(cfg, out, lambda run: _run(cfg, run, cache_dir, progress, started))


def in_run_dir(cfg: RunConfig, out: str | Path | None, body: Callable[[RunDir], Any]) -> Any:
    """`body(run)` with the run directory `out` (default reports/<name>) claimed and locked,
    once every predictor of `cfg` builds and no input file lies inside it. A full disk, a
    read-only or forbidden directory end in a one-line `StorageError`."""
    _build_predictors(cfg)
    out = _out_dir(cfg, out)
    _refuse_inputs_inside(cfg, out)
    try:
        run = RunDir.claim(out)
        with run.lock():
            return body(run)
    except OSError as exc:
        error = storage_error(exc)
        if error is None:
            raise
        raise error from None


def _build_predictors(cfg: RunConfig) -> None:
    """Build every configured predictor once, unfitted, before anything runs or is written.

    Parsing checked the parameter names against each constructor's signature without
    building anything; the constructors check the values. A refused value stops the run
    here, named by its configuration key (``predictors[1].params.dropout``)."""
    from mlstrat.predictors.registry import create_predictor

    for i, pred in enumerate(cfg.predictors):
        try:
            built = create_predictor(pred.predictor, **walkforward_options(cfg, pred)["params"])
        except ConfigError as exc:
            key = f"predictors[{i}].params" + (f".{exc.param}" if exc.param else "")
            raise ConfigError(f"{key}: {exc.problem}", file=cfg.source, fix=exc.fix) from None
        if pred.warm_start and not getattr(built, "can_warm_start", False):
            raise ConfigError(
                f"predictors[{i}].warm_start: {pred.predictor!r} cannot start from an earlier "
                "fold's weights",
                file=cfg.source,
                fix="use warm_start with Keras predictors (or a hybrid of them), or drop it",
            )


def _out_dir(cfg: RunConfig, out: str | Path | None) -> Path:
    if out is not None:
        return Path(out)
    path = REPORTS_DIR / cfg.name
    if not inside(path, REPORTS_DIR):
        raise ConfigError(
            f"run name {cfg.name!r} would leave {REPORTS_DIR}/", file=cfg.source, fix="rename it"
        )
    return path


def _inputs(cfg: RunConfig) -> list[tuple[str, Path]]:
    """Every file a run reads, by the config key that names it."""
    found = []
    for i, f in enumerate(cfg.data.files):
        found.append((f"data.files[{i}].path", f.path))
        if f.minute_path is not None:
            found.append((f"data.files[{i}].minute_path", f.minute_path))
    if cfg.strategy.file is not None:
        found.append(("strategy.class", cfg.strategy.file))
    return found


def _refuse_inputs_inside(cfg: RunConfig, out: Path) -> None:
    for key, path in _inputs(cfg):
        if inside(path, out):
            raise ConfigError(
                f"{key}: the input {path} lies inside the run directory {out}, where a run "
                "could overwrite it",
                file=cfg.source,
                fix="keep inputs outside --out (copy the file elsewhere or choose another --out)",
            )


def _run(
    cfg: RunConfig, run: RunDir, cache_dir: str | Path | None, progress: bool, started: float
) -> RunResult:
    out = run.root
    tracker = open_tracker(cfg)  # reaches the MLflow store before any work
    cache = stage_cache(cfg, run, cache_dir)
    _set_seeds(cfg.seed)
    previous: dict[str, Any] = {}
    if run.owns(RUN_FILE) and not run.verify([RUN_FILE]):
        with contextlib.suppress(IntegrityError, OSError):
            previous = _read_json(out / RUN_FILE)

    run.write_text(CONFIG_FILE, cfg.to_yaml())
    run_info: dict[str, Any] = {
        "name": cfg.name,
        "status": "running",
        "started": _now(),
        "config_hash": content_hash(cfg.to_dict()),
        "cache_dir": _relative_to(cache, out),
        "source": None if cfg.source is None else str(cfg.source.resolve()),
        "argv": sys.argv,
        "pid": os.getpid(),
    }
    run.write_json(RUN_FILE, run_info)
    pipe = _Pipeline(cfg, run, cache, progress)
    try:
        pipe.data()
        run.write_json(ENV_FILE, environment(cfg, pipe.data_hashes))
        pipe.features()
        pipe.walkforward()
        pipe.record_search_trials()
        pipe.backtest()
        pipe.record_trials()
        pipe.paths()
        pipe.report(previous)
        pipe.prune()
    except (MlstratError, OSError) as exc:
        failed = {**run_info, "status": "failed", "finished": _now()}
        failed["error"] = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError, MlstratError):
            run.write_json(RUN_FILE, failed)
        raise
    seconds = time.perf_counter() - started
    run_info.update(
        {
            "status": "complete",
            "finished": _now(),
            "seconds": round(seconds, 2),
            "data": pipe.data_hashes,
            "stages": [r.to_dict() for r in pipe.records],
            "backtests": {n: f"backtests/{n}/result" for n in pipe.results},
            "reports": {n: str(p.relative_to(out)) for n, p in pipe.reports.items()},
        }
    )
    run.write_json(RUN_FILE, run_info)
    if tracker is not None:  # after run.json is complete: MLflow gets the finished run
        tracked = track_run(cfg.tracking, cfg, out, tracker)
        run.write_json(RUN_FILE, {**run_info, "tracking": {"mlflow_run": tracked}})
    return RunResult(out, cfg, pipe.records, pipe.results, pipe.reports, seconds)


def stage_cache(cfg: RunConfig, run: RunDir, cache_dir: str | Path | None) -> Path:
    """The stage cache a run uses (created): `cache_dir`, the config's, or ``OUT/cache``."""
    if cache_dir is not None:
        cache = Path(cache_dir)
    elif cfg.cache_dir is not None:
        cache = cfg.cache_dir
    else:
        cache = run.path(f"{CACHE_DIR}/x").parent  # refuses a symlinked OUT/cache
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def _relative_to(path: Path, root: Path) -> str:
    """`path` relative to `root` when inside it (a copied run directory stays whole), else
    absolute."""
    return (
        path.resolve().relative_to(root.resolve()).as_posix()
        if inside(path, root)
        else str(path.resolve())
    )


def verify_run(out: str | Path, cache_dir: str | Path | None = None) -> list[str]:
    """Re-hash every file of a run directory and of its cache; the problems found (one line
    each, empty when everything is intact). Nothing is changed or rebuilt."""
    run = RunDir.claim(out, create=False)
    problems = [f"{run.root}/{p}" for p in run.verify()]
    if cache_dir is None:
        cache_dir = run.root / CACHE_DIR
        if run.owns(RUN_FILE):
            with contextlib.suppress(IntegrityError, OSError):
                recorded = _read_json(run.root / RUN_FILE).get("cache_dir")
                cache_dir = run.root / recorded if recorded else cache_dir
    for entry, check in verify_cache(Path(cache_dir)):
        if check.state == "damaged":
            problems.append(f"cache {entry.name}: {check.reason}")
        elif check.state == "missing":
            problems.append(f"cache {entry.name}: unfinished (a later run resumes or rebuilds it)")
    return problems


def _set_seeds(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))


def _verify_data(run_dir: Path, info: Mapping[str, Any]) -> None:
    from mlstrat.data import file_sha256

    for symbol, rec in (info.get("data") or {}).items():
        for path_key, sha_key in (("path", "sha256"), ("minute_path", "minute_sha256")):
            if path_key not in rec:
                continue
            path = Path(rec[path_key])
            if not path.is_file():
                raise DataError(
                    f"data file of {symbol} recorded by the run is missing",
                    file=path,
                    fix="restore the file (its sha256 is in run.json) and replay again",
                )
            if file_sha256(path) != rec[sha_key]:
                raise IntegrityError(
                    f"data file of {symbol} changed since the run (sha256 differs from run.json)",
                    file=path,
                    fix=f"restore the original file (sha256 {rec[sha_key]}) to reproduce {run_dir}",
                )


def _fresh_replay_dir(parent: RunDir) -> Path:
    """RUN_DIR/replay emptied of an earlier replay (a run directory of its own, with its own
    cache; only files that replay recorded are removed)."""
    out = parent.path(REPLAY_DIR)
    if out.exists():
        previous = RunDir.claim(out)
        with previous.lock():
            previous.remove(list(previous.files))
            cache = out / CACHE_DIR
            if cache.is_dir() and not cache.is_symlink():
                shutil.rmtree(cache)
        for name in ("manifest.json", ".lock"):
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
    return out


def _first_difference(a: Path, b: Path) -> str:
    left = a.read_text(encoding="utf-8").splitlines()
    right = b.read_text(encoding="utf-8").splitlines()
    for i, (x, y) in enumerate(zip(left, right, strict=False)):
        if x != y:
            return f"line {i + 1}: {x!r} != {y!r}"
    return f"{len(left)} lines vs {len(right)} lines"


def replay(run_dir: str | Path, *, mode: str = "full", progress: bool = True) -> ReplayResult:
    """Re-run a finished run from what it saved and check every trades.csv is byte-identical.

    mode="full": from the saved configuration and the (sha256-verified) data
    files, recompute features, retrain every walk-forward model in a fresh cache
    and backtest again. mode="backtest": reuse the saved feature feeds and
    predictions, backtest again. Output goes to ``RUN_DIR/replay/`` with
    ``replay.json``; a difference raises IntegrityError naming the first changed line.
    """
    if mode not in ("full", "backtest"):
        raise ConfigError(f"replay mode {mode!r} is unknown", fix="use 'full' or 'backtest'")
    started = time.perf_counter()
    run_dir = Path(run_dir)
    info_path = run_dir / RUN_FILE
    if not info_path.is_file() or not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(
            "not a run directory (no run.json / config.yaml)",
            file=run_dir,
            fix="pass a directory written by `mlstrat run CONFIG --out DIR`",
        )
    info = _read_json(info_path)
    if info.get("status") != "complete":
        raise ConfigError(
            "the run did not finish, so there is nothing to replay",
            file=run_dir,
            fix=f"finish it first: mlstrat run {run_dir / CONFIG_FILE} --out {run_dir}",
        )
    _verify_data(run_dir, info)
    cfg = load_config(run_dir / CONFIG_FILE)
    parent = RunDir.claim(run_dir)
    with parent.lock():
        out = _fresh_replay_dir(parent)
        if mode == "full":
            cfg = parse_config(
                {
                    **cfg.to_dict(),
                    "cache_dir": None,
                    "report": {**cfg.section("report"), "enabled": False},
                },
                base=run_dir,
                source=run_dir / CONFIG_FILE,
            )
            run_experiment(cfg, out, progress=progress)
        else:
            replay_run = RunDir.claim(out)
            features = {s: run_dir / "features" / f"{s}.parquet" for s in cfg.data.symbols}
            vol = cfg.volatility_predictor
            for pred in cfg.signal_predictors:
                wf = {s: run_dir / "models" / pred.name / s for s in cfg.data.symbols}
                vol_dirs = (
                    None
                    if vol is None
                    else {s: run_dir / "models" / vol.name / s for s in cfg.data.symbols}
                )
                result, _ = backtest_predictor(cfg, pred, features, wf, vol_dirs)
                with scratch_dir(out / "backtest") as tmp:
                    result.save(tmp / "result")
                    replay_run.install(tmp, f"backtests/{pred.name}", link=False)
    identical: dict[str, bool] = {}
    differences: dict[str, str] = {}
    for pred in cfg.signal_predictors:
        a = run_dir / "backtests" / pred.name / "result" / TRADES_FILE
        b = out / "backtests" / pred.name / "result" / TRADES_FILE
        same = a.is_file() and b.is_file() and filecmp.cmp(a, b, shallow=False)
        identical[pred.name] = same
        if not same:
            differences[pred.name] = (
                _first_difference(a, b) if a.is_file() and b.is_file() else "missing trades.csv"
            )
    seconds = time.perf_counter() - started
    RunDir.claim(out).write_json(
        "replay.json",
        {
            "mode": mode,
            "identical": identical,
            "differences": differences,
            "seconds": round(seconds, 2),
            "finished": _now(),
        },
    )
    result = ReplayResult(run_dir, out, mode, identical, differences, seconds)
    if not result.ok:
        name, diff = next(iter(differences.items()))
        raise IntegrityError(
            f"replay of {name} produced different trades ({diff})",
            file=out / "backtests" / name / "result" / TRADES_FILE,
            fix="compare environment.json versions with this machine's; see replay/replay.json",
        )
    return result
