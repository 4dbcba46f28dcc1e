"""Hyperparameter search inside each walk-forward fold, with Optuna (the optional ``search``
extra: ``pip install 'mlstrat[search]'``; imported only when a search runs).

Per fold, every trial fits the predictor with the parameters Optuna suggests through the
fold's own `fit_fold` (training rows, early stopping and thresholds on the validation
tail) and is scored on the fold's **purged validation rows only** (`Fold.validation`:
the rows whose labels end before the test period); the fold's test rows are never read
while choosing, so the test predictions stay out of sample. The best trial's model is
the fold's model (no refit), and the chosen parameters and every trial (parameters,
score, the per-bar Sharpe of its thresholded signal on the validation rows) go into the
fold's metadata, from where `mlstrat run` records them as trials of the run (they count
in the deflated Sharpe ratio). The sampler is Optuna's TPE seeded from the run's seed
and the fold number, so a search is deterministic.

The ``search`` key of a predictor entry::

    search:
      n_trials: 20
      metric: log_loss          # log_loss, auc, accuracy (classifiers); mse (regressors)
      space:
        max_depth: {low: 2, high: 8}                      # integers: both bounds ints
        learning_rate: {low: 0.01, high: 0.3, log: true}  # floats (log scale)
        subsample: {low: 0.5, high: 1.0, step: 0.1}
        grow_policy: [depthwise, lossguide]               # one of a list

keras-tuner stays for the volatility LSTM's own seed search space (`volatility.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstrat import sections
from mlstrat.errors import ConfigError
from mlstrat.features.targets import encode_labels
from mlstrat.sections import setting
from mlstrat.walkforward.splits import Fold
from mlstrat.walkforward.training import FittedFold, thresholded_signal

#: Validation metrics and whether a trial wants them low or high.
METRICS = {"log_loss": "minimize", "auc": "maximize", "accuracy": "maximize", "mse": "minimize"}
_BOUND_KEYS = ("low", "high", "log", "step")
_INSTALL = "pip install 'mlstrat[search]' (Optuna)"


def as_space(value: Any) -> dict[str, Any]:
    """A search space: parameter → a list of choices or {low, high, log, step}."""
    space = sections.as_mapping(value)
    if not space:
        raise ConfigError(
            "the search space is empty",
            fix="name parameters to search, e.g. space: {max_depth: {low: 2, high: 8}}",
        )
    for name, spec in space.items():
        _check_dimension(str(name), spec)
    return {str(k): v for k, v in space.items()}


def _check_dimension(name: str, spec: Any) -> None:
    """One parameter's range: a non-empty list of plain values, or numeric bounds."""
    where = f"space.{name}"
    if isinstance(spec, list):
        plain = all(v is None or isinstance(v, (bool, int, float, str)) for v in spec)
        if not spec or not plain:
            raise ConfigError(
                "choices must be a non-empty list of plain values",
                param=where,
                fix="e.g. [depthwise, lossguide] or [2, 4, 8]",
            )
        return
    if not isinstance(spec, Mapping):
        raise ConfigError(f"expected a list of choices or {{low, high}}, got {spec!r}", param=where)
    unknown = [k for k in spec if k not in _BOUND_KEYS]
    if unknown or "low" not in spec or "high" not in spec:
        raise ConfigError(
            "a range has keys low, high and optionally log or step",
            param=where,
            fix="e.g. {low: 0.01, high: 0.3, log: true}",
        )
    low, high = (sections.as_float(spec[k]) for k in ("low", "high"))
    log, step = spec.get("log", False), spec.get("step")
    if not low < high:
        raise ConfigError(f"low {low} is not below high {high}", param=where)
    if not isinstance(log, bool):
        raise ConfigError("log must be true or false", param=where)
    if log and (low <= 0 or step is not None):
        raise ConfigError("a log range needs low > 0 and no step", param=where, fix="drop step")
    if step is not None and sections.as_float(step) <= 0:
        raise ConfigError("step must be positive", param=where)


@dataclass(frozen=True)
class SearchConfig:
    """The ``search`` key of a predictor entry: Optuna trials per fold (see the module)."""

    n_trials: int = setting(20, "trials per fold", kind=int, minimum=1, maximum=10_000)
    metric: str = setting(
        "log_loss", "validation metric of a trial", choices=tuple(METRICS), key="metric"
    )
    space: dict[str, Any] = setting(
        None, "parameter → [choices] or {low, high, log, step}", kind=as_space, factory=dict
    )

    def __post_init__(self) -> None:
        sections.check(self)
        if not self.space:
            as_space(self.space)  # the message of an empty space

    @property
    def direction(self) -> str:
        return METRICS[self.metric]

    def check_params(self, accepted: Sequence[str], predictor: str) -> None:
        """Every searched name must be a constructor parameter of the predictor."""
        for name in self.space:
            if name not in accepted:
                raise ConfigError(
                    f"{predictor!r} has no parameter {name!r}"
                    f"{sections.did_you_mean(name, accepted)}",
                    param=f"space.{name}",
                    fix=f"search its parameters: {', '.join(accepted)}",
                )


def search_config(value: SearchConfig | Mapping[str, Any] | None) -> SearchConfig | None:
    """A SearchConfig from itself, a mapping of its keys, or None (no search)."""
    if value is None or isinstance(value, SearchConfig):
        return value
    return sections.from_options(SearchConfig, None, dict(value), "search option")


def fold_seed(seed: int, fold: int) -> int:
    """The sampler seed of one fold: independent streams per fold, fixed by the run's seed."""
    return int(np.random.SeedSequence([int(seed), int(fold)]).generate_state(1)[0])


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise ConfigError("a hyperparameter search needs Optuna", fix=_INSTALL) from exc
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a NaN score fails a trial quietly
    return optuna


def _suggest(trial: Any, name: str, spec: Any) -> Any:
    """The trial's value of one parameter."""
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    integers = all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high))
    if integers and (step is None or isinstance(step, int)):
        return trial.suggest_int(name, low, high, step=step or 1, log=log)
    return trial.suggest_float(name, float(low), float(high), step=step, log=log)


# ---------------------------------------------------------------------------- scoring


def validation_rows(fitted: FittedFold) -> tuple[np.ndarray, np.ndarray]:
    """(positions, offsets into the validation prediction) of the fold's purged validation
    rows: `Fold.validation`, never a test row."""
    span = fitted.validation_rows
    if fitted.validation_prediction is None or span is None or not len(fitted.fold.validation):
        raise ConfigError(
            f"fold {fitted.fold.number} has no validation rows to score a search trial on",
            param="search",
            fix="give walkforward.validation > 0 with scheme rolling or expanding "
            "(cpcv folds have no validation tail)",
        )
    rows = np.asarray(fitted.fold.validation, dtype=np.int64)
    return rows, rows - int(span[0])


def validation_score(fitted: FittedFold, y: pd.Series, metric: str) -> float:
    """The trial's `metric` on the fold's purged validation rows with a label (NaN when it
    is undefined there, e.g. AUC with one class)."""
    rows, at = validation_rows(fitted)
    pred = fitted.validation_prediction
    labels = encode_labels(y, fitted.model.task).to_numpy(dtype=float)[rows]
    known = np.isfinite(labels)
    if metric == "mse":
        point = pred.volatility if pred.volatility is not None else pred.expected_return
        if point is None:
            raise ConfigError("metric mse needs a regressor", param="metric", fix="use log_loss")
        err = np.asarray(point, dtype=float)[at] - labels
        ok = known & np.isfinite(err)
        return float(np.mean(err[ok] ** 2)) if ok.any() else math.nan
    if pred.proba is None:
        raise ConfigError(
            f"metric {metric} needs class probabilities", param="metric", fix="use mse"
        )
    proba = np.asarray(pred.proba, dtype=float)[at]
    ok = known & np.isfinite(proba).all(axis=1)
    if not ok.any():
        return math.nan
    truth, proba = labels[ok].astype(int), proba[ok]
    if metric == "log_loss":
        p = np.clip(proba[np.arange(len(truth)), truth], 1e-15, 1.0)
        return float(-np.mean(np.log(p)))
    if metric == "accuracy":
        return float(np.mean(proba.argmax(axis=1) == truth))
    return _auc(truth, proba)


def _auc(truth: np.ndarray, proba: np.ndarray) -> float:
    """ROC AUC (one-vs-rest macro for three classes); NaN when a class is missing."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(truth)) < proba.shape[1]:
        return math.nan
    if proba.shape[1] == 2:
        return float(roc_auc_score(truth, proba[:, 1]))
    return float(roc_auc_score(truth, proba, multi_class="ovr"))


def validation_sharpe(fitted: FittedFold, forward: np.ndarray) -> float:
    """Per-bar Sharpe of the trial's thresholded signal times the realised forward return on
    the purged validation rows (0 when it never varies): the trial's Sharpe for the DSR."""
    rows, at = validation_rows(fitted)
    signal = thresholded_signal(fitted.validation_prediction, fitted.thresholds)
    gains = np.asarray(signal, dtype=float)[at] * np.asarray(forward, dtype=float)[rows]
    gains = gains[np.isfinite(gains)]
    if len(gains) < 2 or not np.std(gains, ddof=1) > 0:
        return 0.0
    return float(np.mean(gains) / np.std(gains, ddof=1))


# ---------------------------------------------------------------------------- the search


def search_fold(
    fit: Callable[[dict[str, Any]], FittedFold],
    params: Mapping[str, Any],
    search: SearchConfig,
    y: pd.Series,
    forward: np.ndarray,
    *,
    fold: Fold,
    seed: int,
) -> tuple[FittedFold, dict[str, Any]]:
    """Run `search.n_trials` Optuna trials of ``fit(params | suggested)`` on one fold; return
    the best trial's fitted fold and the record of the search (chosen parameters, trials).

    y: the target column (all rows; only the fold's validation rows are read). forward:
    realised forward returns per row, for each trial's validation Sharpe.
    """
    optuna = _optuna()
    best: dict[str, Any] = {}
    trials: list[dict[str, Any]] = []
    sign = 1.0 if search.direction == "minimize" else -1.0

    def objective(trial: Any) -> float:
        chosen = {name: _suggest(trial, name, spec) for name, spec in search.space.items()}
        fitted = fit({**params, **chosen})
        score = validation_score(fitted, y, search.metric)
        trials.append(
            {
                "number": trial.number,
                "params": chosen,
                "score": None if math.isnan(score) else score,
                "sharpe": validation_sharpe(fitted, forward),
                "n_validation": int(len(fitted.fold.validation)),
            }
        )
        if not math.isnan(score) and ("score" not in best or sign * score < sign * best["score"]):
            best.update(score=score, fitted=fitted, number=trial.number, params=chosen)
        return score

    study = optuna.create_study(
        direction=search.direction, sampler=optuna.samplers.TPESampler(seed=seed)
    )
    study.optimize(objective, n_trials=search.n_trials, catch=())
    if "fitted" not in best:
        raise ConfigError(
            f"fold {fold.number}: no search trial has a defined {search.metric} on the "
            "validation rows",
            param="metric",
            fix="use metric log_loss, or a longer validation tail",
        )
    record = {
        "metric": search.metric,
        "direction": search.direction,
        "n_trials": search.n_trials,
        "seed": seed,
        "chosen": best["params"],
        "best_trial": best["number"],
        "best_score": best["score"],
        "trials": trials,
    }
    return best["fitted"], record
