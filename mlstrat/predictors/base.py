"""The predictor interface every adapter implements, and the Prediction it returns."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError

Task = Literal["direction", "three_class", "volatility", "regression"]
PredictorT = TypeVar("PredictorT", bound="Predictor")

#: Class order of three-class outputs (matches the `three_class_{h}` target coding).
THREE_CLASS_LABELS: tuple[str, str, str] = ("sell", "hold", "buy")
#: Label columns a predictor that `learns_outcomes` finds beside its targets: 1 where a
#: long / a short entered at the row pays after costs, 0 where not, NaN where unknown
#: (walk-forward adds them, see `mlstrat.walkforward.outcomes`).
OUTCOME_COLUMNS: tuple[str, str] = ("pays_long", "pays_short")


@dataclass
class Prediction:
    """Row-aligned model outputs; rows before a model's warm-up are NaN.

    signal: +1 buy, -1 sell, 0 hold. confidence: probability of the predicted
    side in [0, 1]. proba: (n, k) class probabilities (k=2: [down, up];
    k=3: [sell, hold, buy]); None for pure regressors.
    """

    signal: np.ndarray
    confidence: np.ndarray
    proba: np.ndarray | None = None
    expected_return: np.ndarray | None = None
    volatility: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.signal)

    def proba_up(self) -> np.ndarray:
        """Probability that price rises: P(up) for binary, P(buy) + P(hold)/2 for three-class."""
        if self.proba is None:
            raise ValueError("this prediction carries no class probabilities")
        if self.proba.shape[1] == 2:
            return self.proba[:, 1]
        return self.proba[:, 2] + 0.5 * self.proba[:, 1]

    def to_frame(self, index: pd.Index) -> pd.DataFrame:
        """Prediction-feed columns (signal, confidence, proba_*, expected_return, volatility)."""
        cols: dict[str, np.ndarray] = {
            "signal": np.asarray(self.signal, dtype=float),
            "confidence": np.asarray(self.confidence, dtype=float),
        }
        if self.proba is not None:
            if self.proba.shape[1] == 2:
                cols["proba_up"] = self.proba[:, 1]
            else:
                for i, label in enumerate(THREE_CLASS_LABELS):
                    cols[f"proba_{label}"] = self.proba[:, i]
        if self.expected_return is not None:
            cols["expected_return"] = np.asarray(self.expected_return, dtype=float)
        if self.volatility is not None:
            cols["volatility"] = np.asarray(self.volatility, dtype=float)
        for name, values in self.extra.items():
            cols[name] = np.asarray(values, dtype=float)
        return pd.DataFrame(cols, index=index)


class Predictor:
    """Base class of all adapters: scikit-learn shaped fit/predict plus directory persistence.

    Subclasses set `name` and `task`, take their hyperparameters as plain
    constructor arguments stored under the same attribute names (scikit-learn's
    rule, which `get_params` / `set_params` rely on), and implement fit,
    predict, save and load.
    """

    name: ClassVar[str] = "base"
    task: Task = "direction"
    window: int = 1
    feature_names: list[str]
    #: True for predictors whose `fit` needs `OUTCOME_COLUMNS` in y (meta-labeling).
    learns_outcomes: ClassVar[bool] = False

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series,
        *,
        validation: tuple[pd.DataFrame, pd.Series] | None = None,
    ) -> Predictor:
        raise NotImplementedError

    def predict(self, X: pd.DataFrame) -> Prediction:
        raise NotImplementedError

    def predict_one(self, window: np.ndarray) -> Prediction:
        """Predict from one (window, n_features) array; online use inside `next()`."""
        frame = pd.DataFrame(np.atleast_2d(window)[-self.window :], columns=self.feature_names)
        pred = self.predict(frame)
        return Prediction(
            signal=pred.signal[-1:],
            confidence=pred.confidence[-1:],
            proba=None if pred.proba is None else pred.proba[-1:],
            expected_return=None if pred.expected_return is None else pred.expected_return[-1:],
            volatility=None if pred.volatility is None else pred.volatility[-1:],
        )

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """The constructor's named parameters in signature order (not self, *args, **kwargs)."""
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        return tuple(p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters read from the attributes of the same name, as scikit-learn does.

        Tuples come back as lists (as metadata.json holds them), so
        ``type(p)(**p.get_params())`` builds an equally configured, unfitted predictor.
        """
        params: dict[str, Any] = {}
        for name in self.param_names():
            if not hasattr(self, name):
                raise ConfigError(
                    f"{type(self).__name__} does not keep its constructor parameter {name!r}",
                    param=name,
                    fix=f"store it in __init__ as self.{name} (or override get_params)",
                )
            value = getattr(self, name)
            params[name] = list(value) if isinstance(value, tuple) else value
        return params

    @classmethod
    def from_params(cls: type[PredictorT], **params: Any) -> PredictorT:
        """A new predictor from constructor parameters; unknown names or invalid values are a
        ConfigError naming the valid parameters (a constructor taking **kwargs takes any name)."""
        names = cls.param_names()
        signature = inspect.signature(cls.__init__).parameters.values()
        takes_any = any(p.kind is p.VAR_KEYWORD for p in signature)
        unknown = sorted(set(params) - set(names))
        fix = f"valid parameters: {', '.join(names)}"
        if unknown and not takes_any:
            raise ConfigError(
                f"predictor {cls.name!r} has no parameter(s) {', '.join(unknown)}",
                param=unknown[0],
                fix=fix,
            )
        try:
            return cls(**params)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"invalid parameters for predictor {cls.name!r}: {exc}", fix=fix
            ) from exc

    def set_params(self: PredictorT, **params: Any) -> PredictorT:
        """Change constructor parameters; the constructor validates them and fitted state is dropped.

        The predictor is rebuilt (`from_params`) from ``get_params()`` updated with `params`,
        so derived settings follow and a model fitted under other parameters does not
        survive. On a ConfigError (unknown name, invalid value) the predictor is unchanged.
        """
        rebuilt = type(self).from_params(**{**self.get_params(), **params})
        self.__dict__.clear()
        self.__dict__.update(rebuilt.__dict__)
        return self

    def save(self, path: str | Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        raise NotImplementedError
