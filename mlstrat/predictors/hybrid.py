"""Weighted ensemble of registered predictors, combined on a common probability of "up".

Each member's Prediction is mapped to P(up): binary members give proba[:, 1];
three-class members give P(buy) + P(hold) / 2 (`Prediction.proba_up`). The
hold mass is split evenly because a model that is 90% sure of "hold" is
saying "no edge", which P(up) = 0.5 expresses; the alternative
P(buy) / (P(buy) + P(sell)) would turn 2% buy vs 1% sell into a confident
0.67. Weights are normalised to sum to 1; a row where any member has no
prediction yet (warm-up) is NaN, so the hybrid's window is the longest
member window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError, ModelLoadError
from mlstrat.features.targets import task_targets
from mlstrat.predictors.base import Prediction, Predictor
from mlstrat.predictors.persistence import read_model_dir, training_data_info, write_model_dir
from mlstrat.predictors.registry import create_predictor, load_predictor, register_predictor

MEMBERS_DIR = "members"
_CLASSIFIER_TASKS = ("direction", "three_class")
_NON_WORD = re.compile(r"\W")

MemberSpec = tuple[str, dict[str, Any]] | Predictor


def combine_proba_up(probas: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted mean of per-member P(up) arrays; NaN wherever any member is NaN."""
    stacked = np.vstack([np.asarray(p, dtype=np.float64) for p in probas])
    w = np.asarray(weights, dtype=np.float64)
    return (w[:, None] * stacked).sum(axis=0) / w.sum()


def member_proba_up(pred: Prediction) -> np.ndarray:
    """P(up) of one member's Prediction (binary: proba[:, 1]; three-class: buy + hold/2)."""
    if pred.proba is None:
        raise ConfigError(
            "hybrid members must output class probabilities",
            fix="use direction or three_class predictors as members",
        )
    return np.asarray(pred.proba_up(), dtype=np.float64)


@register_predictor("hybrid")
class HybridPredictor(Predictor):
    """Ensemble of any registered classifiers; members are (name, params) pairs or instances.

    fit(X, y): y may be one Series used by every member, or a DataFrame of
    targets from which each member takes `targets[i]` or, when `targets` is
    None, the single column named for its task (direction_* / three_class_*).
    """

    name = "hybrid"

    def __init__(
        self,
        members: Sequence[MemberSpec] = (("lstm", {}), ("transformer", {})),
        weights: Sequence[float] | None = (0.5, 0.5),
        targets: Sequence[str | None] | None = None,
    ) -> None:
        self.members = tuple(members)
        if not self.members:
            raise ConfigError("a hybrid needs at least one member", fix="pass members=[...]")
        self.weights = tuple(weights) if weights is not None else (1.0,) * len(self.members)
        self.targets = None if targets is None else tuple(targets)
        w = np.asarray(self.weights, dtype=np.float64)
        if len(w) != len(self.members):
            raise ConfigError(
                f"{len(self.members)} members but {len(w)} weights",
                fix="give one weight per member (or weights=None for equal weights)",
            )
        if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise ConfigError(
                f"weights must be non-negative with a positive sum, got {list(self.weights)}",
                fix="e.g. weights=(0.5, 0.5)",
            )
        if self.targets is not None and len(self.targets) != len(self.members):
            raise ConfigError(
                f"{len(self.members)} members but {len(self.targets)} targets",
                fix="give one target column per member, or targets=None",
            )
        self.task = "direction"
        self.predictors_: list[Predictor] = [
            self._build(spec, i) for i, spec in enumerate(self.members)
        ]
        self.window = max(int(getattr(p, "window", 1)) for p in self.predictors_)
        self.feature_names: list[str] = []
        self.fit_info_: dict[str, Any] = {}

    @staticmethod
    def _build(spec: MemberSpec, i: int) -> Predictor:
        """Member `i`; a parameter it refuses is named as ``members[i][1]``."""
        if isinstance(spec, Predictor):
            member = spec
        else:
            try:
                name, params = spec
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"hybrid member {spec!r} is not a (name, params) pair",
                    fix='write members as [("xgboost", {"max_depth": 4}), ...]',
                ) from exc
            try:
                member = create_predictor(str(name), **dict(params or {}))
            except ConfigError as exc:
                raise ConfigError(
                    f"member {i} ({name}): {exc.problem}", param=f"members[{i}][1]", fix=exc.fix
                ) from exc
        if getattr(member, "task", None) not in _CLASSIFIER_TASKS:
            raise ConfigError(
                f"hybrid member {member.name!r} has task {getattr(member, 'task', None)!r}",
                fix="hybrid members must be direction or three_class classifiers",
            )
        return member

    @property
    def normalized_weights(self) -> np.ndarray:
        w = np.asarray(self.weights, dtype=np.float64)
        return w / w.sum()

    def member_labels(self) -> list[str]:
        """Identifier-safe labels ``{i}_{name}`` used for per-member output columns."""
        return [f"{i}_{_NON_WORD.sub('_', p.name)}" for i, p in enumerate(self.predictors_)]

    # ------------------------------------------------------------------ fit / predict

    def _member_target(self, i: int, member: Predictor, y: pd.Series | pd.DataFrame) -> pd.Series:
        if isinstance(y, pd.Series):
            return y
        if self.targets is not None and self.targets[i] is not None:
            column = self.targets[i]
            if column not in y.columns:
                raise ConfigError(
                    f"target column {column!r} for member {i} ({member.name}) is not in y",
                    column=column,
                    fix=f"y has: {', '.join(map(str, y.columns))}",
                )
            return y[column]
        matches = task_targets(y.columns, member.task)
        if len(matches) != 1:
            raise ConfigError(
                f"cannot choose a {member.task} target for member {i} ({member.name}) "
                f"among {list(map(str, y.columns))}",
                fix="pass targets=(...) naming one y column per member",
            )
        return y[matches[0]]

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series | pd.DataFrame,
        *,
        validation: tuple[pd.DataFrame, pd.Series | pd.DataFrame] | None = None,
    ) -> HybridPredictor:
        """Fit every member on the same rows (each on its own target column if y is a frame)."""
        for i, member in enumerate(self.predictors_):
            member_val = None
            if validation is not None:
                member_val = (validation[0], self._member_target(i, member, validation[1]))
            member.fit(X, self._member_target(i, member, y), validation=member_val)
        names: list[str] = []
        for member in self.predictors_:
            names.extend(n for n in member.feature_names if n not in names)
        self.feature_names = names
        self.window = max(int(p.window) for p in self.predictors_)
        target = y if isinstance(y, pd.Series) else None
        self.fit_info_ = training_data_info(X, target)
        return self

    @property
    def can_warm_start(self) -> bool:
        """True when at least one member can start from an earlier fold's weights."""
        return any(getattr(m, "can_warm_start", False) for m in self.predictors_)

    def warm_start_from(self, previous: Predictor) -> None:
        """Start each member that can (`can_warm_start`) from the same member of `previous`, an
        earlier fold's hybrid of the same members, on its next fit; the others train cold."""
        names = [m.name for m in self.predictors_]
        if (
            not isinstance(previous, HybridPredictor)
            or [m.name for m in previous.predictors_] != names
        ):
            raise ConfigError(
                f"cannot warm-start a hybrid of {names} from {type(previous).__name__}",
                param="warm_start",
                fix="warm-start from an earlier fold of the same hybrid, or set warm_start: false",
            )
        for member, before in zip(self.predictors_, previous.predictors_, strict=True):
            if getattr(member, "can_warm_start", False):
                member.warm_start_from(before)

    def _combine(self, preds: list[Prediction]) -> Prediction:
        ups = [member_proba_up(p) for p in preds]
        p_up = combine_proba_up(ups, self.normalized_weights)
        known = ~np.isnan(p_up)
        signal = np.full(len(p_up), np.nan)
        signal[known] = np.where(p_up[known] >= 0.5, 1.0, -1.0)
        confidence = np.maximum(p_up, 1.0 - p_up)
        extra = {
            f"proba_up_{label}": up for label, up in zip(self.member_labels(), ups, strict=True)
        }
        return Prediction(
            signal=signal,
            confidence=confidence,
            proba=np.column_stack([1.0 - p_up, p_up]),
            extra=extra,
        )

    def predict(self, X: pd.DataFrame) -> Prediction:
        """Combined P(up) per row; `extra` carries each member's P(up) as proba_up_{i}_{name}."""
        preds = [member.predict(X) for member in self.predictors_]
        for member, pred in zip(self.predictors_, preds, strict=True):
            if len(pred) != len(X):
                raise ModelLoadError(
                    f"member {member.name!r} returned {len(pred)} rows for {len(X)} inputs",
                    fix="members must return one prediction per input row",
                )
        return self._combine(preds)

    def predict_one(self, window: np.ndarray) -> Prediction:
        """One combined prediction from the latest `window` rows, through each member's own path."""
        frame = pd.DataFrame(np.atleast_2d(window), columns=self.feature_names)
        preds = []
        for member in self.predictors_:
            cols = frame[member.feature_names].to_numpy()[-member.window :]
            preds.append(member.predict_one(cols))
        return self._combine(preds)

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> None:
        """Save members into members/NNN_<name>/ inside one atomically written directory."""
        entries = []
        for i, member in enumerate(self.predictors_):
            entries.append({"name": member.name, "dir": f"{MEMBERS_DIR}/{i:03d}_{member.name}"})
        metadata = {
            "predictor": self.name,
            "task": self.task,
            "params": {"weights": list(self.weights), "targets": self.targets},
            "normalized_weights": self.normalized_weights,
            "members": entries,
            "feature_names": self.feature_names,
            "window": self.window,
            "training": self.fit_info_,
        }
        with write_model_dir(path, metadata) as tmp:
            for member, entry in zip(self.predictors_, entries, strict=True):
                member.save(tmp / entry["dir"])

    @classmethod
    def load(cls, path: str | Path) -> HybridPredictor:
        """Verify the whole tree (members included) and load each member by its own class."""
        path = Path(path)
        meta = read_model_dir(path, predictor=cls.name)
        members = []
        for entry in meta.get("members", []):
            rel = PurePosixPath(str(entry.get("dir", "")))
            if rel.is_absolute() or ".." in rel.parts or not rel.parts:
                raise ModelLoadError(
                    f"member directory {str(rel)!r} is outside the model directory",
                    file=path / "metadata.json",
                    fix="retrain the model or restore the directory from a backup",
                )
            members.append(load_predictor(path / rel))
        params = meta.get("params", {})
        obj = cls(members=members, weights=params.get("weights"), targets=params.get("targets"))
        obj.feature_names = list(meta.get("feature_names", []))
        obj.fit_info_ = meta.get("training", {})
        return obj
