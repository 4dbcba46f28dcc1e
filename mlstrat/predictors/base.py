"""The predictor interface every adapter implements, and the Prediction it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

Task = Literal["direction", "three_class", "volatility", "regression"]

#: Class order of three-class outputs (matches the `three_class_{h}` target coding).
THREE_CLASS_LABELS: tuple[str, str, str] = ("sell", "hold", "buy")


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
    constructor arguments, and implement fit, predict, save and load.
    """

    name: ClassVar[str] = "base"
    task: Task = "direction"
    window: int = 1
    feature_names: list[str]

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

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, as scikit-learn estimators expose them."""
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        raise NotImplementedError
