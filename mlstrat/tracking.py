"""Experiment tracking with MLflow (the optional ``track`` extra: ``pip install
'mlstrat[track]'``, which installs mlflow-skinny; imported only when tracking is on).

With ``tracking: {uri: ...}`` in a run configuration, `mlstrat run` logs one MLflow run
per experiment run: the resolved configuration as parameters (dotted key paths), every
traded predictor's headline metrics (``xgb.sharpe``, ...), and as artifacts the
configuration, run.json, the report pages with their metrics.json and the walk-forward
manifests (walkforward.json, folds.json, each fold's manifest.json and fold.json). Each
walk-forward fold is a nested run (its periods, parameters, chosen search parameters and
test metrics), and `mlstrat sweep` logs the sweep with a nested run per trial.

Only parameters, numbers and files mlstrat wrote are logged: no model object is ever
pickled (MLflow's model flavours are not used; model directories are represented by their
sha256 manifests). Fold workers write their results to files and the parent process, the
only one talking to MLflow, logs them afterwards. A ``file://`` URI is MLflow's local file
store (kept in maintenance mode by MLflow 3, which refuses it unless
``MLFLOW_ALLOW_FILE_STORE`` is set: choosing a file URI in the configuration sets it).
The store is reached once when the run starts, so a wrong URI fails before any work.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstrat import sections
from mlstrat.errors import ConfigError
from mlstrat.sections import setting

_INSTALL = "pip install 'mlstrat[track]' (mlflow-skinny)"
#: MLflow's longest parameter value; longer values are cut (the whole config is an artifact).
MAX_PARAM = 6000
_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")
#: Metrics of a report's metrics.json logged per predictor.
RUN_METRICS = (
    ("trading", "total_return"),
    ("trading", "cagr"),
    ("trading", "sharpe"),
    ("trading", "sortino"),
    ("trading", "max_drawdown"),
    ("trading", "n_trades"),
    ("trading", "win_rate"),
    ("trading", "fees_paid"),
    ("benchmark", "buy_hold_return"),
    ("statistics", "psr"),
    ("statistics", "dsr"),
    ("statistics", "n_trials"),
)


def as_uri(value: Any) -> str:
    """A tracking URI: a scheme URI (file:, http(s):, sqlite:, databricks...)."""
    text = sections.as_text(value)
    if ":" not in text:
        raise ConfigError(
            f"{text!r} is not a URI", fix="e.g. file:///home/me/mlruns or http://localhost:5000"
        )
    return text


@dataclass(frozen=True)
class TrackingConfig:
    """The ``tracking`` section: where MLflow logs go (none: no tracking)."""

    uri: str | None = setting(None, "MLflow tracking URI (file:///..., http://...)", kind=as_uri)
    experiment: str | None = setting(None, "MLflow experiment name (default: the run name)")
    folds: bool = setting(True, "log each walk-forward fold as a nested run", kind=bool)
    artifacts: bool = setting(True, "log report pages and model manifests as files", kind=bool)

    def __post_init__(self) -> None:
        sections.check(self)

    @property
    def enabled(self) -> bool:
        return self.uri is not None


class Tracker:
    """An MLflow client bound to one experiment; every call goes through `MlflowClient`."""

    def __init__(self, config: TrackingConfig, default_experiment: str) -> None:
        if config.uri is None:
            raise ConfigError("tracking.uri is not set", fix="set tracking: {uri: file:///...}")
        if config.uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise ConfigError("tracking needs MLflow", fix=_INSTALL) from exc
        self.config = config
        self._error = MlflowException
        name = config.experiment or default_experiment
        self.client = self._call(lambda: MlflowClient(tracking_uri=config.uri))
        self.experiment_id = self._call(lambda: self._experiment(name))

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        return found.experiment_id if found is not None else self.client.create_experiment(name)

    def _call(self, action: Any) -> Any:
        """`action()`, with MLflow's and the network's errors as one ConfigError line."""
        try:
            return action()
        except (self._error, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"tracking.uri {self.config.uri}: MLflow refused ({first[:300]})",
                fix="check the tracking URI and that the server or directory is reachable",
            ) from None

    def start(self, name: str, tags: Mapping[str, Any], parent: str | None = None) -> str:
        """A new MLflow run (nested under `parent` when given); its id."""
        tags = {str(k): str(v) for k, v in tags.items()}
        if parent is not None:
            tags["mlflow.parentRunId"] = parent
        run = self._call(
            lambda: self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        )
        return run.info.run_id

    def log(
        self,
        run_id: str,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        files: Iterable[tuple[Path, str]] = (),
    ) -> None:
        """Parameters (flattened, stringified), finite numeric metrics and files (path, folder
        in the artifact store) of one run."""
        from mlflow.entities import Metric, Param

        plain = flatten(params or {})
        numbers = {k: float(v) for k, v in (metrics or {}).items() if _finite(v)}
        batch_params = [Param(_key(k), _value(v)) for k, v in plain.items()]
        batch_metrics = [Metric(_key(k), v, 0, 0) for k, v in numbers.items()]
        for start in range(0, max(len(batch_params), len(batch_metrics)), 100):
            self._call(
                lambda s=start: self.client.log_batch(
                    run_id,
                    metrics=batch_metrics[s : s + 100],
                    params=batch_params[s : s + 100],
                )
            )
        if self.config.artifacts:
            for path, folder in files:
                if Path(path).is_file():
                    self._call(lambda p=path, f=folder: self.client.log_artifact(run_id, str(p), f))

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        self._call(lambda: self.client.set_terminated(run_id, status))


# ---------------------------------------------------------------------------- values


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists as dotted keys (``predictors.0.params.max_depth``)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        elif (
            isinstance(value, (list, tuple))
            and value
            and all(isinstance(v, Mapping) for v in value)
        ):
            out.update(flatten({str(i): v for i, v in enumerate(value)}, name + "."))
        else:
            out[name] = value
    return out


def _key(name: str) -> str:
    return _KEY_CHARS.sub("_", name)[:250]


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:MAX_PARAM]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(record: Mapping[str, Any]) -> dict[str, float]:
    return {k: v for k, v in record.items() if _finite(v)}


# ---------------------------------------------------------------------------- what a run logs


def track_run(tracking: TrackingConfig, config: Any, out: Path, tracker: Tracker) -> str:
    """Log a finished `mlstrat run` (see the module docstring); the MLflow run id."""
    from mlstrat.fileio import load_json

    info = load_json(out / "run.json", fix="rerun `mlstrat run`")
    parent = tracker.start(
        config.name,
        {"mlstrat.kind": "run", "mlstrat.config_hash": info.get("config_hash", "")},
    )
    metrics: dict[str, Any] = {"seconds": info.get("seconds")}
    files = [(out / "config.yaml", "run"), (out / "run.json", "run")]
    for page, rel in sorted((info.get("reports") or {}).items()):
        page_dir = (out / rel).parent
        files += [(page_dir / "report.html", f"report/{page}")]
        files += [(page_dir / "metrics.json", f"report/{page}")]
        if page != "comparison" and (page_dir / "metrics.json").is_file():
            data = load_json(page_dir / "metrics.json", fix="rerun `mlstrat run`")
            for section, key in RUN_METRICS:
                metrics[f"{page}.{key}"] = _metric(data.get(section) or {}, key)
    models = out / "models"
    for wf_dir in sorted(p.parent for p in models.glob("*/*/walkforward.json")):
        rel = wf_dir.relative_to(out).as_posix()
        files += [(wf_dir / n, rel) for n in ("walkforward.json", "folds.json", "paths.json")]
        for fold_dir in sorted((wf_dir / "folds").glob("[0-9]*")):
            files += [(fold_dir / n, f"{rel}/folds/{fold_dir.name}") for n in _FOLD_FILES]
    tracker.log(parent, params=config.to_dict(), metrics=metrics, files=files)
    if tracking.folds:
        for wf_dir in sorted(p.parent for p in models.glob("*/*/walkforward.json")):
            _track_folds(tracker, parent, wf_dir, wf_dir.relative_to(models).as_posix())
    tracker.end(parent)
    return parent


_FOLD_FILES = ("manifest.json", "fold.json")


def _metric(section: Mapping[str, Any], key: str) -> Any:
    """A metric of a metrics.json section; a statistics block's PSR is its PSR against 0."""
    value = section.get(key)
    if isinstance(value, Mapping):
        value = value.get("zero")
    return value


def _track_folds(tracker: Tracker, parent: str, wf_dir: Path, label: str) -> None:
    """One nested run per fold of a walk-forward: periods and parameters, test metrics."""
    from mlstrat.fileio import load_json

    for fold_dir in sorted((wf_dir / "folds").glob("[0-9]*")):
        if not (fold_dir / "fold.json").is_file():
            continue
        info = load_json(fold_dir / "fold.json", fix="rerun `mlstrat run`")
        run = tracker.start(
            f"{label} fold {info['fold']}",
            {"mlstrat.kind": "fold", "mlstrat.walkforward": label},
            parent=parent,
        )
        search = info.get("search") or {}
        params = {
            "periods": info.get("periods", {}),
            "predictor": info.get("predictor"),
            "params": info.get("params", {}),
            "target": info.get("target"),
        }
        metrics = {**_numbers(info.get("metrics", {})), "fit_seconds": info.get("fit_seconds")}
        if search:
            params["search"] = {"metric": search["metric"], "chosen": search["chosen"]}
            metrics.update(
                search_best_score=search["best_score"], search_trials=len(search["trials"])
            )
        files = [(fold_dir / n, "fold") for n in _FOLD_FILES]
        tracker.log(run, params=params, metrics=metrics, files=files)
        tracker.end(run)


def track_sweep(tracking: TrackingConfig, config: Any, sweep_dir: Path, tracker: Tracker) -> str:
    """Log a finished sweep: its grid and best trial, and a nested run per trial with its
    settings and ranking numbers (from sweep/sweep.json)."""
    from mlstrat.fileio import load_json

    info = load_json(sweep_dir / "sweep.json", fix="rerun `mlstrat sweep`")
    parent = tracker.start(f"{config.name} sweep", {"mlstrat.kind": "sweep"})
    best = info.get("best") or {}
    tracker.log(
        parent,
        params={"grid": info.get("grid", {}), "rank_by": info.get("rank_by")},
        metrics={**_numbers(info.get("pbo") or {}), **{f"best.{k}": v for k, v in best.items()}},
        files=[(sweep_dir / n, "sweep") for n in ("sweep.json", "ranking.csv")],
    )
    for trial in info.get("trials", []):
        run = tracker.start(
            str(trial.get("label") or trial.get("trial")),
            {"mlstrat.kind": "sweep_trial", "mlstrat.trial": trial.get("trial", "")},
            parent=parent,
        )
        settings = {k: v for k, v in trial.items() if not _finite(v)}
        tracker.log(run, params=settings, metrics=_numbers(trial))
        tracker.end(run)
    tracker.end(parent)
    return parent


def open_tracker(config: Any) -> Tracker | None:
    """The tracker of a run configuration's ``tracking`` section (None when it is off); the
    store is reached now, so a wrong URI stops the run before any work."""
    tracking = getattr(config, "tracking", None)
    if tracking is None or not tracking.enabled:
        return None
    return Tracker(tracking, config.name)
