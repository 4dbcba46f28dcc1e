"""Sweeps over cached predictions: every combination of strategy, sizing and broker settings
backtested on the walk-forward predictions of a run, ranked, with the selection's statistics.

    from mlstrat.sweep import run_sweep
    result = run_sweep("configs/demo.yaml", grid={"strategy.params.max_hold_bars": [12, 24, 48]})
    result.ranking.head()

A sweep runs the data, features and walk-forward stages of its configuration exactly as
`mlstrat run` does (from the stage cache when they are unchanged, so nothing is retrained),
then backtests each combination of the grid for each traded predictor: the backtest stage
only, one cache entry per trial (``CACHE/sweep/KEY``), in parallel with joblib (workers take
paths and return paths). A trial whose entry verifies is not backtested again, so a killed
sweep resumes. Each trial is logged in the run directory's trial log (`mlstrat.trials`),
which is where the deflated Sharpe ratio's number of trials comes from. The run directory
receives::

    sweep/config.yaml            the configuration every trial applies its settings to
    sweep/trials/KEY/            each trial: result/ (a BacktestResult), returns.parquet,
                                 summary.json
    sweep/ranking.csv            the trials, best first
    sweep/sweep.json             grid, ranking, the best trial's statistics (PSR, DSR over the
                                 trial log, MinTRL, bootstrap interval) and the PBO of the
                                 selection (deterministic: no timings)
    sweep/status.json            what was computed or reused, timings
    sweep/report/report.html     the ranking, the selection's statistics, the PBO logit chart

Only settings that change nothing but the backtest can be swept (`SWEEP_PREFIXES`); a
grid key elsewhere would need retraining and is refused.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstrat import errors
from mlstrat.errors import ConfigError, MlstratError
from mlstrat.sections import as_text, check, setting

#: Keys a sweep may vary: they change what the backtest stage computes and nothing before it.
SWEEP_PREFIXES = ("strategy.params.", "sizing.params.", "broker.")
RANK_BY = ("sharpe", "psr", "total_return")
#: Cache stage of sweep trials, and its version (bumped when a trial's files change).
STAGE = "sweep"
STAGE_VERSION = 1
SWEEP_DIR = "sweep"
RESULT_DIR = "result"
RETURNS_FILE = "returns.parquet"
SUMMARY_FILE = "summary.json"


# ---------------------------------------------------------------------------- the section


def as_grid(value: Any) -> dict[str, tuple[Any, ...]]:
    """A sweep grid: backtest keys (`SWEEP_PREFIXES`) → a non-empty list of distinct values."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"expected a mapping of keys to lists of values, got {type(value).__name__}",
            fix="e.g. grid: {strategy.params.max_hold_bars: [12, 24, 48]}",
        )
    grid: dict[str, tuple[Any, ...]] = {}
    for key, values in value.items():
        key = str(key)
        name = next((key[len(p) :] for p in SWEEP_PREFIXES if key.startswith(p)), "")
        if not name or not all(part.isidentifier() for part in name.split(".")):
            raise ConfigError(
                f"{key!r} is not a backtest setting a sweep can vary",
                param=f"grid.{key}",
                fix="sweep keys start with "
                + ", ".join(SWEEP_PREFIXES)
                + " (anything else changes the features or the models: run it as its own run)",
            )
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(
                f"{key}: expected a non-empty list of values, got {values!r}",
                param=f"grid.{key}",
                fix=f"e.g. {key}: [12, 24, 48]",
            )
        texts = [json.dumps(v, sort_keys=True, default=str) for v in values]
        twice = next((v for v, t in zip(values, texts, strict=True) if texts.count(t) > 1), None)
        if twice is not None:
            raise ConfigError(
                f"{key}: the value {twice!r} is listed twice",
                param=f"grid.{key}",
                fix="list it once",
            )
        grid[key] = tuple(values)
    return grid


def _as_names(value: Any) -> tuple[str, ...]:
    """A non-empty list of names."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"expected a non-empty list of names, got {value!r}")
    return tuple(as_text(v) for v in value)


@dataclass(frozen=True)
class SweepConfig:
    """The ``sweep`` section: the grid `mlstrat sweep` backtests and how it ranks the trials."""

    grid: dict[str, tuple[Any, ...]] = setting(
        None,
        "backtest keys (strategy.params.*, sizing.params.*, broker.*) and the values to try",
        kind=as_grid,
        factory=dict,
    )
    predictors: tuple[str, ...] | None = setting(
        None, "traded predictors to sweep (default: every one)", kind=_as_names
    )
    n_jobs: int | None = setting(
        None,
        "parallel backtests (-1: all cores; default: the run's n_jobs)",
        kind=int,
        valid=lambda v: v == -1 or v >= 1,
        fix="-1 (all cores) or a count >= 1",
    )
    rank_by: str = setting("sharpe", "what ranks the trials", choices=RANK_BY)
    max_trials: int = setting(
        1000, "largest number of trials (combinations x predictors) run", kind=int, minimum=1
    )

    def __post_init__(self) -> None:
        check(self)


def combinations(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values (the first key varies slowest)."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def trial_label(predictor: str, settings: Mapping[str, Any]) -> str:
    """What a person reads for a trial: ``xgboost max_hold_bars=12 tiers=[[0.6, 1.0]]``."""
    parts = [f"{key.rsplit('.', 1)[-1]}={json.dumps(v)}" for key, v in settings.items()]
    return " ".join([predictor, *parts])


# ---------------------------------------------------------------------------- results


@dataclass
class SweepResult:
    """A finished sweep: where it is, what each stage did, the ranking and the statistics."""

    out: Path
    stages: list[Any]  # mlstrat.run.StageRecord: data, features, walk-forward, one per trial
    ranking: Any  # pandas DataFrame, best first
    best: dict[str, Any]
    pbo: dict[str, Any]
    report: Path | None
    seconds: float

    def status(self, stage: str) -> dict[str, str]:
        """item -> status of every record of `stage` (``sweep``: one per trial label)."""
        return {r.item: r.status for r in self.stages if r.stage == stage}


@dataclass(frozen=True)
class TrialTask:
    """One sweep trial for a worker: plain paths and values only. `trial` is its id in the
    trial log (its backtest key: the same settings as a run's are the same trial), `key`
    its cache entry's."""

    trial: str
    key: str
    cache: str
    config: str
    settings: dict[str, Any]
    predictor: str
    features: dict[str, str]
    wf_dirs: dict[str, str]
    vol_dirs: dict[str, str] | None


# ---------------------------------------------------------------------------- sweeping


def run_sweep(
    config: Any,
    out: str | Path | None = None,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    predictors: Sequence[str] | None = None,
    n_jobs: int | None = None,
    cache_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> SweepResult:
    """Backtest every combination of the sweep grid on the cached predictions of `config`.

    grid: axes added to (or replacing) the config's ``sweep.grid``; predictors, n_jobs:
    override ``sweep.predictors`` / ``sweep.n_jobs``. `out`, `cache_dir` and `overrides`
    are those of `mlstrat.run.run_experiment` (a sweep may share a run's directory).
    """
    from mlstrat.run import _as_config, in_run_dir

    started = time.perf_counter()
    cfg = _as_config(config, overrides)
    section = cfg.sweep
    changes: dict[str, Any] = {}
    if grid:
        changes["grid"] = {**section.grid, **_located(as_grid, grid, "grid")}
    if predictors is not None:
        changes["predictors"] = tuple(predictors)
    if n_jobs is not None:
        changes["n_jobs"] = n_jobs
    if changes:
        section = _located(lambda c: dataclasses.replace(section, **c), changes, "")
    names = _swept_predictors(cfg, section)
    combos = _combinations(cfg, section, len(names))
    warm = _warm_workers(section.n_jobs or cfg.n_jobs, len(combos) * len(names))
    try:
        trials = _trial_configs(cfg, combos, names)
        return in_run_dir(
            cfg,
            out,
            lambda run: _sweep(cfg, section, trials, run, cache_dir, progress, started, warm),
        )
    finally:
        _stop_warming(warm)


def _located(convert: Any, value: Any, key: str) -> Any:
    """`convert(value)`, its ConfigError named by the ``sweep.`` key it concerns."""
    try:
        return convert(value)
    except ConfigError as exc:
        where = ".".join(p for p in ("sweep", exc.param or key) if p)
        raise ConfigError(f"{where}: {exc.problem}", fix=exc.fix) from None


def _swept_predictors(cfg: Any, section: SweepConfig) -> list[str]:
    """The traded predictors the sweep backtests (``sweep.predictors``, default all)."""
    traded = [p.name for p in cfg.signal_predictors]
    if section.predictors is None:
        return traded
    for i, name in enumerate(section.predictors):
        if name not in traded:
            raise ConfigError(
                f"sweep.predictors[{i}]: {name!r} is not a traded predictor of the run",
                file=cfg.source,
                fix=f"one of {', '.join(traded)}",
            )
    return list(dict.fromkeys(section.predictors))


def _combinations(cfg: Any, section: SweepConfig, n_predictors: int) -> list[dict[str, Any]]:
    """The grid's combinations, or a ConfigError when there are none or too many trials."""
    if not section.grid:
        raise ConfigError(
            "nothing to sweep: the grid is empty",
            file=cfg.source,
            fix="mlstrat sweep CONFIG --set strategy.params.max_hold_bars=12,24,48, or a "
            "sweep: {grid: {...}} section",
        )
    combos = combinations(section.grid)
    if len(combos) * n_predictors > section.max_trials:
        raise ConfigError(
            f"the grid makes {len(combos)} combinations x {n_predictors} predictor(s) = "
            f"{len(combos) * n_predictors} trials, more than sweep.max_trials="
            f"{section.max_trials}",
            file=cfg.source,
            fix="shorten the value lists or raise sweep.max_trials",
        )
    return combos


def _trial_configs(
    cfg: Any, combos: list[dict[str, Any]], names: list[str]
) -> list[tuple[str, dict[str, Any], Any]]:
    """(predictor, settings, configuration) of every trial, each configuration parsed and
    checked before anything runs; a refused value names its combination."""
    from mlstrat.config import apply_overrides, parse_config

    base = cfg.to_dict()
    where = cfg.source.resolve().parent if cfg.source else Path.cwd()
    trials = []
    for k, combo in enumerate(combos):
        try:
            trial_cfg = parse_config(apply_overrides(base, combo), base=where, source=cfg.source)
        except ConfigError as exc:
            raise ConfigError(
                f"sweep combination {k + 1} ({trial_label('', combo).strip()}): {exc.problem}",
                file=cfg.source,
                fix=exc.fix,
            ) from None
        trials += [(name, combo, trial_cfg) for name in names]
    return trials


def _sweep(
    cfg: Any,
    section: SweepConfig,
    trials: list[tuple[str, dict[str, Any], Any]],
    run: Any,
    cache_dir: str | Path | None,
    progress: bool,
    started: float,
    warm: Any,
) -> SweepResult:
    """In the locked run directory: the cached stages, the trials (workers), the results."""
    from mlstrat.run import _Pipeline, _set_seeds, stage_cache

    cache = stage_cache(cfg, run, cache_dir)
    _set_seeds(cfg.seed)
    pipe = _Pipeline(cfg, run, cache, progress)
    pipe.data()
    pipe.features()
    pipe.walkforward()
    config_path = run.write_text(f"{SWEEP_DIR}/config.yaml", cfg.to_yaml())
    tasks = [_task(pipe, config_path, name, combo, trial_cfg) for name, combo, trial_cfg in trials]
    outcomes = _execute(tasks, section.n_jobs or cfg.n_jobs, progress, warm)
    for task, (name, combo, trial_cfg) in zip(tasks, trials, strict=True):
        _raise_failure(outcomes[task.key], pipe, trial_cfg, trial_label(name, combo))
    return _finish(cfg, section, trials, tasks, outcomes, pipe, started)


def _task(pipe: Any, config_path: Path, name: str, combo: dict[str, Any], trial_cfg: Any) -> Any:
    """A worker's task for one trial: its ids (backtest key, cache key) and input paths."""
    from mlstrat.cache import content_hash

    symbols = trial_cfg.data.symbols
    vol = trial_cfg.volatility_predictor
    bt_key = pipe.bt_key(trial_cfg.predictor(name), trial_cfg)
    return TrialTask(
        trial=bt_key,
        key=content_hash({"stage": STAGE, "stage_version": STAGE_VERSION, "backtest": bt_key}),
        cache=str(pipe.cache),
        config=str(config_path),
        settings=combo,
        predictor=name,
        features={s: str(pipe.feature_paths[s]) for s in symbols},
        wf_dirs={s: str(pipe.wf_dirs[(name, s)]) for s in symbols},
        vol_dirs=None if vol is None else {s: str(pipe.wf_dirs[(vol.name, s)]) for s in symbols},
    )


def _workers(n_jobs: int, n_tasks: int) -> int:
    """Worker processes for `n_tasks` trials (-1: every core)."""
    from mlstrat.walkforward.runner import available_cores

    return max(1, min(available_cores() if n_jobs == -1 else n_jobs, n_tasks))


def _warm_workers(n_jobs: int, n_tasks: int) -> Any:
    """Start the worker processes (and their imports, seconds each) while this process parses
    the combinations and checks the cached stages; the returned generator is drained before
    the trials go to the same workers. None when the trials run in this process."""
    workers = _workers(n_jobs, n_tasks)
    if workers < 2:
        return None
    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend="loky", n_jobs=workers, inner_max_num_threads=1):
        return Parallel(return_as="generator_unordered")(delayed(_warm)() for _ in range(workers))


def _warm() -> None:
    """What every trial imports (pandas, pyarrow, backtrader, the pipeline)."""
    import mlstrat.feed
    import mlstrat.report.metrics
    import mlstrat.run  # noqa: F401


def _stop_warming(warm: Any) -> None:
    """Close the warm-up when the sweep stopped before its trials ran (a refused combination):
    quietly, so the error stays the one line the user sees."""
    if warm is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # joblib: "tasks ... cancelled"
            warm.close()


def _execute(
    tasks: list[TrialTask], n_jobs: int, progress: bool, warm: Any = None
) -> dict[str, dict[str, Any]]:
    """Run the tasks whose cache entry does not verify, in parallel; key → outcome."""
    from joblib import Parallel, delayed, parallel_config

    from mlstrat.cache import Entry
    from mlstrat.progress import progress_bar

    outcomes: dict[str, dict[str, Any]] = {}
    todo: dict[str, TrialTask] = {}
    for task in tasks:
        entry = Entry(Path(task.cache), STAGE, task.key)
        if task.key in outcomes or task.key in todo:
            continue
        if entry.check().state == "ok":
            outcomes[task.key] = {"status": "cached", "path": str(entry.path), "seconds": 0.0}
        else:
            todo[task.key] = task
    unique = len(outcomes) + len(todo)
    workers = _workers(n_jobs, len(todo))
    for _ in warm or ():
        pass
    with progress_bar(
        total=unique, initial=len(outcomes), desc="sweep", unit="trial", enabled=progress
    ) as bar:
        if todo:
            with parallel_config(backend="loky", n_jobs=workers, inner_max_num_threads=1):
                for outcome in Parallel(return_as="generator_unordered")(
                    delayed(run_trial)(t) for t in todo.values()
                ):
                    outcomes[outcome["key"]] = outcome
                    bar.update(1)
    return outcomes


def run_trial(task: TrialTask) -> dict[str, Any]:
    """A worker: backtest one trial into its cache entry (reused when it verifies); returns
    its key, status and entry path, or the error (its type and fields) it ran into."""
    from mlstrat.cache import Entry, cached
    from mlstrat.run import _set_seeds, backtest_predictor

    started = time.perf_counter()
    entry = Entry(Path(task.cache), STAGE, task.key)

    def build() -> tuple[str, dict[str, Any]]:
        cfg = _trial_config(task.config, task.settings)
        _set_seeds(cfg.seed)
        result, _ = backtest_predictor(
            cfg,
            cfg.predictor(task.predictor),
            {s: Path(p) for s, p in task.features.items()},
            {s: Path(p) for s, p in task.wf_dirs.items()},
            None if task.vol_dirs is None else {s: Path(p) for s, p in task.vol_dirs.items()},
            with_importance=False,
        )
        entry.build_staged(lambda tmp: _write_trial(result, tmp))
        return "computed", {"predictor": task.predictor, "settings": task.settings}

    try:
        status, _ = cached(entry, build)
    except MlstratError as exc:
        fields = ("problem", "file", "row", "timestamp", "column", "fix", "param")
        error = {f: getattr(exc, f, None) for f in fields}
        error["problem"] = error["problem"] or str(exc)
        return {"key": task.key, "error": {"type": type(exc).__name__, **error}}
    seconds = time.perf_counter() - started
    return {"key": task.key, "status": status, "path": str(entry.path), "seconds": seconds}


def _trial_config(path: str, settings: Mapping[str, Any]) -> Any:
    """The sweep's configuration file with a trial's settings applied (the file is read once
    per worker process)."""
    import os

    from mlstrat.config import apply_overrides, parse_config

    stat = os.stat(path)
    raw = _config_yaml(path, stat.st_mtime_ns, stat.st_size)
    return parse_config(apply_overrides(raw, settings), base=Path(path).parent, source=path)


@functools.lru_cache(maxsize=4)
def _config_yaml(path: str, mtime_ns: int, size: int) -> Any:
    """The parsed YAML of the sweep's configuration file (keyed by its stat: never stale)."""
    from mlstrat.config import load_yaml_text

    return load_yaml_text(Path(path).read_text(encoding="utf-8"), file=path)


def _write_trial(result: Any, tmp: Path) -> None:
    """A trial's cache entry: the BacktestResult, its per-bar returns and a summary."""
    from mlstrat.fileio import json_text
    from mlstrat.report.metrics import (
        bar_returns,
        infer_annualisation,
        max_drawdown,
        total_return,
    )
    from mlstrat.report.stats import trial_sharpe

    result.save(tmp / RESULT_DIR)
    returns = bar_returns(result.equity)
    frame = returns.rename("return").rename_axis("timestamp").reset_index()
    frame.to_parquet(tmp / RETURNS_FILE, index=False)
    periods = infer_annualisation(result.equity.index, result.timeframe).periods_per_year
    summary = {
        "sharpe": trial_sharpe(returns),  # per bar
        "periods_per_year": periods,
        "bars": len(returns),
        "total_return": total_return(result.equity),
        "max_drawdown": max_drawdown(result.equity),
        "n_trades": len(result.trades),
    }
    (tmp / SUMMARY_FILE).write_text(json_text(summary), encoding="utf-8")


def _raise_failure(outcome: dict[str, Any], pipe: Any, trial_cfg: Any, label: str) -> None:
    """Re-raise a worker's error in this process, named by the trial and its config key."""
    error = outcome.get("error")
    if error is None:
        return
    kind = getattr(errors, error.pop("type"), None)
    if not (isinstance(kind, type) and issubclass(kind, errors._LocatedError)):
        kind = errors.DataError
    exc = kind(error.pop("problem"), **error)
    if isinstance(exc, ConfigError):
        exc = pipe._locate(exc, trial_cfg)
    raise type(exc)(
        f"sweep trial {label}: {exc.problem}",
        file=exc.file,
        row=exc.row,
        timestamp=exc.timestamp,
        column=exc.column,
        fix=exc.fix,
        param=exc.param,
    )


# ---------------------------------------------------------------------------- ranking


def _finish(
    cfg: Any,
    section: SweepConfig,
    trials: list[tuple[str, dict[str, Any], Any]],
    tasks: list[TrialTask],
    outcomes: dict[str, dict[str, Any]],
    pipe: Any,
    started: float,
) -> SweepResult:
    """Install the trials, log them, rank them, and write the statistics and the page."""
    import pandas as pd

    from mlstrat.run import StageRecord
    from mlstrat.trials import Trial, append_trials

    run = pipe.run
    installed = _install_trials(run, tasks, outcomes, pipe.cache)
    rows, logged, variants = [], [], {}
    for k, (task, (name, combo, _)) in enumerate(zip(tasks, trials, strict=True)):
        outcome = outcomes[task.key]
        target = installed / task.trial
        summary = json.loads((target / SUMMARY_FILE).read_text(encoding="utf-8"))
        frame = pd.read_parquet(target / RETURNS_FILE)
        returns = pd.Series(frame["return"].to_numpy(float), index=frame["timestamp"])
        label = trial_label(name, combo)
        variants[label] = returns
        detail = {k2: summary[k2] for k2 in ("total_return", "n_trades")}
        logged.append(Trial.from_returns(task.trial, "sweep", label, returns, combo, detail))
        rows.append(_ranking_row(k, task, label, name, combo, summary, returns))
        pipe.records.append(
            StageRecord(STAGE, label, task.key, outcome["status"], outcome["seconds"])
        )
    append_trials(run, logged)
    ranking = _rank(rows, section.rank_by)
    best_path = run.root / SWEEP_DIR / "trials" / ranking.iloc[0]["trial"] / RESULT_DIR
    best, pbo, page = _selection(cfg, ranking, best_path, variants, pipe)
    run.write_text(f"{SWEEP_DIR}/ranking.csv", ranking.to_csv(index=False, float_format="%.10g"))
    run.write_json(
        f"{SWEEP_DIR}/sweep.json",
        {
            "name": cfg.name,
            "grid": section.grid,
            "predictors": list(dict.fromkeys(t.predictor for t in tasks)),
            "rank_by": section.rank_by,
            "trials": ranking.to_dict(orient="records"),
            "best": best,
            "pbo": pbo,
        },
    )
    seconds = time.perf_counter() - started
    run.write_json(
        f"{SWEEP_DIR}/status.json",
        {"seconds": round(seconds, 2), "stages": [r.to_dict() for r in pipe.records]},
    )
    _track(cfg, run.root / SWEEP_DIR)
    return SweepResult(run.root, pipe.records, ranking, best, pbo, page, seconds)


def _track(cfg: Any, sweep_dir: Path) -> None:
    """Log the finished sweep to MLflow when the configuration has ``tracking`` (part 3)."""
    from mlstrat.tracking import open_tracker, track_sweep

    tracker = open_tracker(cfg)
    if tracker is not None:
        track_sweep(cfg.tracking, cfg, sweep_dir, tracker)


def _install_trials(
    run: Any, tasks: list[TrialTask], outcomes: dict[str, dict[str, Any]], cache: Path
) -> Path:
    """Every trial's entry at ``sweep/trials/TRIAL`` (hard links), installed in one step that
    also drops the trials of an earlier sweep (they stay in the cache and the trial log)."""
    import os
    import shutil

    from mlstrat.cache import DONE_FILE
    from mlstrat.fileio import scratch_dir

    with scratch_dir(cache / STAGE) as tmp:
        for task in tasks:
            shutil.copytree(
                outcomes[task.key]["path"],
                tmp / task.trial,
                copy_function=os.link,
                ignore=shutil.ignore_patterns(DONE_FILE),
                dirs_exist_ok=True,
            )
        return run.install(tmp, f"{SWEEP_DIR}/trials")


def _ranking_row(
    k: int,
    task: TrialTask,
    label: str,
    name: str,
    combo: Mapping[str, Any],
    summary: Mapping[str, Any],
    returns: Any,
) -> dict[str, Any]:
    """One row of the ranking: the trial, its settings, Sharpe (annualised), PSR and more."""
    import math

    from mlstrat.errors import DataError
    from mlstrat.report.stats import sharpe_stats

    try:
        psr = sharpe_stats(returns).psr["zero"]
    except DataError:  # constant returns: never traded, no edge to test
        psr = math.nan
    row = {"rank": 0, "order": k, "trial": task.trial, "label": label, "predictor": name}
    row.update({key: json.dumps(value) for key, value in combo.items()})
    row.update(
        sharpe=summary["sharpe"] * math.sqrt(summary["periods_per_year"]),
        psr=psr,
        total_return=summary["total_return"],
        max_drawdown=summary["max_drawdown"],
        n_trades=summary["n_trades"],
    )
    return row


def _rank(rows: list[dict[str, Any]], rank_by: str) -> Any:
    """The trials best first by `rank_by` (undefined values last, ties in grid order)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame = frame.sort_values([rank_by, "order"], ascending=[False, True], na_position="last")
    frame["rank"] = range(1, len(frame) + 1)
    return frame.drop(columns="order").reset_index(drop=True)


def _selection(
    cfg: Any, ranking: Any, best_path: Path, variants: dict[str, Any], pipe: Any
) -> tuple[dict[str, Any], dict[str, Any], Path | None]:
    """The best trial's statistics over the whole trial log, the PBO of the selection and
    the sweep's page (built unless report.enabled is false)."""

    from mlstrat.report.html import build_sweep_report, pbo_block
    from mlstrat.report.metrics import compute_metrics
    from mlstrat.report.result import BacktestResult
    from mlstrat.report.stats import union_index

    rep = cfg.report
    options = pipe.statistics_options()
    metrics = compute_metrics(
        BacktestResult.load(best_path), risk_free=rep.risk_free, statistics=options
    )
    top = ranking.iloc[0]
    best = {"trial": top["trial"], "label": top["label"], "statistics": metrics.statistics}
    index = union_index(variants)
    pbo, found = pbo_block(variants, index, rep.pbo_blocks, "the trials of this sweep")
    page = None
    if rep.enabled:
        from mlstrat.fileio import scratch_dir

        with scratch_dir(pipe.cache / "report") as tmp:
            build_sweep_report(
                ranking,
                best,
                pbo,
                found,
                tmp / "report",
                title=f"{rep.title or cfg.name}: sweep",
                dpi=rep.dpi,
            )
            page = pipe.run.install(tmp / "report", f"{SWEEP_DIR}/report", link=False)
        page = page / "report.html"
    return best, pbo, page
