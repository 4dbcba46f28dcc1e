"""Meta-labeling (López de Prado, *Advances in Financial Machine Learning*, 3.6): a second
model decides whether acting on a primary model's side pays.

The **primary** proposes a side per bar: a registered classifier (`(name, params)`; its
signal's sign, +1 long / -1 short, 0 hold) or a rule ``"rule:COLUMN"`` (the sign of a
feature column, ``"rule:-COLUMN"`` for the opposite sign; e.g. a momentum feature for a
trend rule). The **inner** model (default XGBoost) learns, from the features plus the
primary's side and confidence, the probability that a trade on that side *pays*: the
outcome columns `OUTCOME_COLUMNS` the walk-forward adds to the labels (profit-take
barrier first and beating a round trip's cost, `mlstrat.walkforward.outcomes`).

The inner model must learn from sides the primary did not fit: on its training rows the
primary's sides come from **cross-fitting** (`cross_fit` chronological blocks; each
block's sides from a primary fitted on the other blocks, with the rows whose labels
overlap the block purged, `gap` bars on each side). The primary is then refitted on all
training rows and gives the sides of the validation rows and of every prediction.

Output (three-class layout, sell / hold / buy): ``signal`` is the primary's side,
``confidence`` the inner model's P(pays) — what the sizer's tiers read — and ``proba`` is
[P(pays) on short rows, 1 - P(pays), P(pays) on long rows], so a fold's long and short
thresholds apply to P(pays) of the side proposed (`walkforward.training.side_scores`).
``extra`` carries the ``primary_side`` and the ``primary_confidence``. Rows where the primary
holds (side 0) have NaN confidence and never trade.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError, DataError, ModelLoadError
from mlstrat.features.targets import horizon_of, task_targets
from mlstrat.predictors.base import OUTCOME_COLUMNS, Prediction, Predictor
from mlstrat.predictors.persistence import read_model_dir, training_data_info, write_model_dir
from mlstrat.predictors.registry import create_predictor, load_predictor, register_predictor

RULE_PREFIX = "rule:"
MEMBERS = {"primary": "members/primary", "inner": "members/inner"}
#: Columns the inner model sees besides the features.
SIDE_COLUMN, CONFIDENCE_COLUMN = "meta_side", "meta_primary_confidence"
_CLASSIFIER_TASKS = ("direction", "three_class")
_THREAD_PARAMS = ("n_jobs", "n_threads")

MemberSpec = Sequence[Any] | Predictor


@register_predictor("meta")
class MetaPredictor(Predictor):
    """Inner model's P(a trade on the primary's side pays); see the module docstring.

    primary: ``(name, params)`` of a classifier, ``"rule:COLUMN"`` / ``"rule:-COLUMN"``, or
    a Predictor. primary_target: the y column(s) the primary learns (default: the first of
    its task in y). inner: ``(name, params)`` of the binary classifier (default XGBoost).
    cross_fit: blocks for out-of-sample training sides (1: in-sample sides, biased).
    gap: bars purged around each block ("auto": the primary target's horizon).
    seed / n_jobs: given to members that take them and were not set (None: leave).
    """

    name = "meta"
    task = "three_class"
    learns_outcomes = True

    def __init__(
        self,
        primary: MemberSpec | str = ("xgboost", {}),
        primary_target: str | Sequence[str] | None = None,
        inner: MemberSpec = ("xgboost", {}),
        cross_fit: int = 2,
        gap: int | str = "auto",
        seed: int | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.primary = primary
        self.primary_target = primary_target
        self.inner = inner
        self.cross_fit = cross_fit
        self.gap = gap
        self.seed = seed
        self.n_jobs = n_jobs
        if isinstance(cross_fit, bool) or not isinstance(cross_fit, int) or cross_fit < 1:
            raise ConfigError(f"cross_fit={cross_fit!r} must be an int >= 1", param="cross_fit")
        if gap != "auto" and (isinstance(gap, bool) or not isinstance(gap, int) or gap < 0):
            raise ConfigError(f"gap={gap!r} must be 'auto' or an int >= 0", param="gap")
        self.rule = _rule(primary)
        self.primary_ = None if self.rule else self._member(primary, "primary")
        self.inner_ = self._member(inner, "inner")
        if self.inner_.task != "direction":
            raise ConfigError(
                f"the inner model must be a binary (direction) classifier, "
                f"got {self.inner_.name!r} with task {self.inner_.task!r}",
                param="inner",
                fix="e.g. inner: [xgboost, {max_depth: 3}]",
            )
        self.window = max(1, int(getattr(self.primary_, "window", 1)), self.inner_.window)
        self.feature_names: list[str] = []
        self.fit_info_: dict[str, Any] = {}

    # ------------------------------------------------------------------ members

    def _member(self, spec: MemberSpec, role: str) -> Predictor:
        """A member predictor from `(name, params)` (seed / threads filled in) or an instance."""
        if isinstance(spec, Predictor):
            member = spec
        else:
            try:
                name, params = spec
                params = dict(params or {})
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{role} {spec!r} is not a (name, params) pair",
                    param=role,
                    fix=f"write {role}: [xgboost, {{max_depth: 3}}]"
                    + (" or primary: rule:COLUMN" if role == "primary" else ""),
                ) from None
            if name == self.name:
                raise ConfigError(f"a meta predictor cannot be its own {role}", param=role)
            member = create_predictor(str(name), **self._fill(str(name), params))
        if role == "primary" and getattr(member, "task", None) not in _CLASSIFIER_TASKS:
            raise ConfigError(
                f"primary {member.name!r} has task {getattr(member, 'task', None)!r}",
                param="primary",
                fix="the primary must propose sides: a direction or three_class classifier",
            )
        return member

    def _fill(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """`params` plus this predictor's seed / thread count where the member takes them."""
        from mlstrat.predictors.registry import get_predictor

        accepted = get_predictor(name).param_names()
        out = dict(params)
        if self.seed is not None and "seed" in accepted:
            out.setdefault("seed", self.seed)
        for key in _THREAD_PARAMS:
            if self.n_jobs is not None and key in accepted:
                out.setdefault(key, self.n_jobs)
        return out

    @staticmethod
    def _fresh(model: Predictor) -> Predictor:
        """An unfitted copy configured like `model`."""
        return type(model).from_params(**model.get_params())

    # ------------------------------------------------------------------ sides

    def _sides(self, model: Predictor | None, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(side +1/-1/0 with NaN unknown, primary confidence) for every row of X."""
        if self.rule:
            column, sign = self.rule
            if column not in X.columns:
                raise DataError(
                    f"the primary rule reads column {column!r}, which the features lack",
                    column=column,
                    fix="add the column to the predictor's features or change the rule",
                )
            value = X[column].to_numpy(dtype=float)
            return sign * np.sign(value), np.where(np.isnan(value), np.nan, 1.0)
        pred = model.predict(X)
        return np.sign(np.asarray(pred.signal, dtype=float)), np.asarray(pred.confidence, float)

    def _primary_y(self, y: pd.DataFrame) -> pd.Series | pd.DataFrame:
        """The primary's label column(s) in y."""
        names = self.primary_target
        if names is None:
            found = task_targets([c for c in y.columns if c not in OUTCOME_COLUMNS],
                                 self.primary_.task)  # fmt: skip
            if not found:
                raise DataError(
                    f"y holds no {self.primary_.task} target for the primary "
                    f"(columns: {list(map(str, y.columns))})",
                    fix="pass primary_target=... naming its column",
                )
            return y[found[0]]
        wanted = [names] if isinstance(names, str) else list(names)
        missing = [c for c in wanted if c not in y.columns]
        if missing:
            raise DataError(
                f"y lacks the primary's target column {missing[0]!r}",
                column=missing[0],
                fix="fit through walk-forward with the primary's target in fit_targets",
            )
        return y[names] if isinstance(names, str) else y[wanted]

    def _gap(self) -> int:
        if self.gap != "auto":
            return int(self.gap)
        names = self.primary_target
        first = names if isinstance(names, str) or names is None else list(names)[0]
        return horizon_of(first, default=0)

    def _cross_fitted_sides(
        self, X: pd.DataFrame, y_primary: pd.Series | pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray]:
        """Out-of-sample sides of the training rows: each block from a primary fitted on
        the other blocks, rows within `gap` of the block purged."""
        n = len(X)
        side, conf = np.full(n, np.nan), np.full(n, np.nan)
        gap = self._gap()
        for block in np.array_split(np.arange(n), self.cross_fit):
            if not len(block):
                continue
            lo, hi = int(block[0]), int(block[-1])
            held = (np.arange(n) >= lo - gap) & (np.arange(n) <= hi + gap)
            labels = y_primary.astype(float).copy()
            labels.iloc[held] = np.nan
            model = self._fresh(self.primary_)
            model.fit(X, labels)
            s, c = self._sides(model, X)
            side[block], conf[block] = s[block], c[block]
        return side, conf

    # ------------------------------------------------------------------ fit / predict

    def _inputs(self, X: pd.DataFrame, side: np.ndarray, conf: np.ndarray) -> pd.DataFrame:
        return X.assign(**{SIDE_COLUMN: side, CONFIDENCE_COLUMN: conf})

    @staticmethod
    def _labels(y: pd.DataFrame, side: np.ndarray) -> pd.Series:
        """1 / 0: the trade on the row's side pays; NaN where there is no side or outcome."""
        missing = [c for c in OUTCOME_COLUMNS if c not in y.columns]
        if missing:
            raise DataError(
                f"meta-labeling needs the trade outcomes {', '.join(OUTCOME_COLUMNS)} in y "
                f"(missing {missing[0]!r})",
                column=missing[0],
                fix="fit it through run_walk_forward, which adds them from the bars",
            )
        long, short = (y[c].to_numpy(dtype=float) for c in OUTCOME_COLUMNS)
        pays = np.where(side > 0, long, np.where(side < 0, short, np.nan))
        return pd.Series(pays, index=y.index, name="meta_label")

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.DataFrame,
        *,
        validation: tuple[pd.DataFrame, pd.DataFrame] | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> MetaPredictor:
        """Fit the primary (cross-fitted sides, then on all rows) and the inner model on
        whether each side's trade paid; see the module docstring."""
        if not isinstance(y, pd.DataFrame):
            raise DataError(
                "meta-labeling needs y as a DataFrame of labels and trade outcomes",
                fix=f"pass y with the columns {', '.join(OUTCOME_COLUMNS)} (walk-forward adds "
                "them)",
            )
        if len(X) != len(y):
            raise DataError(f"X has {len(X)} rows but y has {len(y)}", fix="align X and y")
        self.feature_names = [str(c) for c in X.columns]
        if self.rule:
            side, conf = self._sides(None, X)
        else:
            y_primary = self._primary_y(y)
            side, conf = self._cross_fitted_sides(X, y_primary)
            val = None if validation is None else (validation[0], self._primary_y(validation[1]))
            self.primary_.fit(X, y_primary, validation=val)
        inner_val = None
        if validation is not None:
            Xv, yv = validation
            v_side, v_conf = self._sides(self.primary_, Xv)
            inner_val = (self._inputs(Xv, v_side, v_conf), self._labels(yv, v_side))
        labels = self._labels(y, side)
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        self.inner_.fit(self._inputs(X, side, conf), labels, validation=inner_val, **kwargs)
        known = labels.dropna()
        self.fit_info_ = {
            **training_data_info(X),
            "n_meta_rows": int(len(known)),
            "pays_rate": float(known.mean()) if len(known) else None,
            "long_share": float(np.mean(side[np.isfinite(side)] > 0)) if len(known) else None,
        }
        return self

    def predict(self, X: pd.DataFrame) -> Prediction:
        """P(pays) of the primary's side per row (module docstring for the layout)."""
        if not self.feature_names:
            raise ModelLoadError("meta predictor is not fitted", fix="call fit() or load one")
        side, conf = self._sides(self.primary_, X)
        p = self.inner_.predict(self._inputs(X, side, conf)).proba[:, 1].astype(float)
        p = np.where(np.isnan(side) | (side == 0), np.nan, p)
        q = np.nan_to_num(p)
        proba = np.column_stack([q * (side < 0), 1.0 - q, q * (side > 0)])
        proba[np.isnan(side)] = np.nan
        return Prediction(
            signal=side, confidence=p, proba=proba,
            extra={"primary_side": side, "primary_confidence": conf},
        )  # fmt: skip

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> None:
        """Save the fitted primary and inner models under members/ in one verified directory."""
        if not self.feature_names:
            raise ModelLoadError("meta predictor is not fitted", fix="call fit() first")
        members = {"inner": self.inner_} | ({} if self.rule else {"primary": self.primary_})
        metadata = {
            "predictor": self.name,
            "task": self.task,
            "params": {
                "primary": self.primary if isinstance(self.primary, str) else None,
                "primary_target": self.primary_target,
                "cross_fit": self.cross_fit,
                "gap": self.gap,
                "seed": self.seed,
                "n_jobs": self.n_jobs,
            },
            "members": {role: MEMBERS[role] for role in members},
            "feature_names": self.feature_names,
            "window": self.window,
            "training": self.fit_info_,
        }
        with write_model_dir(path, metadata) as tmp:
            for role, member in members.items():
                member.save(tmp / MEMBERS[role])

    @classmethod
    def load(cls, path: str | Path) -> MetaPredictor:
        """Verify the whole tree and load the members by their own classes."""
        path = Path(path)
        meta = read_model_dir(path, predictor=cls.name)
        loaded = {}
        for role, rel in (meta.get("members") or {}).items():
            rel_path = PurePosixPath(str(rel))
            if role not in MEMBERS or rel_path.is_absolute() or ".." in rel_path.parts:
                raise ModelLoadError(
                    f"member {role!r} at {str(rel)!r} is not a member directory of this model",
                    file=path / "metadata.json",
                    fix="retrain the model or restore the directory from a backup",
                )
            loaded[role] = load_predictor(path / rel_path)
        params = dict(meta.get("params") or {})
        primary = params.pop("primary", None) or loaded.get("primary")
        if primary is None or "inner" not in loaded:
            raise ModelLoadError(
                "the meta model lacks its primary or inner member",
                file=path / "metadata.json",
                fix="retrain the model or restore the directory from a backup",
            )
        obj = cls(primary=primary, inner=loaded["inner"], **params)
        obj.feature_names = list(meta.get("feature_names", []))
        obj.fit_info_ = meta.get("training", {})
        return obj


def _rule(primary: Any) -> tuple[str, float] | None:
    """(column, sign) of a ``rule:COLUMN`` / ``rule:-COLUMN`` primary; None for a model."""
    if not isinstance(primary, str):
        return None
    if not primary.startswith(RULE_PREFIX) or len(primary) <= len(RULE_PREFIX):
        raise ConfigError(
            f"primary {primary!r} is neither a (name, params) pair nor a rule",
            param="primary",
            fix="write primary: rule:COLUMN (the sign of a feature) or [xgboost, {}]",
        )
    column = primary[len(RULE_PREFIX) :]
    sign = -1.0 if column.startswith("-") else 1.0
    return column.lstrip("-"), sign
