"""Upgrade an older Keras model (and its scaler) to a current mlstrat model directory.

The upgraded directory is only written after the re-saved model reproduces
the legacy model's outputs on random inputs. Legacy pickled scalers are read
only with an explicit ``trust_pickle=True``, and then through an unpickler
that admits nothing but scikit-learn's MinMaxScaler/StandardScaler and the
numpy pieces they are made of.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlstrat.errors import ModelLoadError, SchemaError
from mlstrat.predictors.legacy import LegacyKerasPredictor
from mlstrat.predictors.scaling import MinMaxScaler, StandardScaler, scaler_from_dict

#: Classes a legacy scaler pickle may reference; anything else is refused.
_ALLOWED_GLOBALS = {
    ("sklearn.preprocessing._data", "MinMaxScaler"),
    ("sklearn.preprocessing._data", "StandardScaler"),
    ("sklearn.preprocessing.data", "MinMaxScaler"),
    ("sklearn.preprocessing.data", "StandardScaler"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


@dataclass
class UpgradeReport:
    """What an upgrade did: the loading strategy, patches, and the largest output difference."""

    source: str
    out: str
    strategy: str
    patches: list[str]
    max_abs_diff: float
    n_checked: int


class _SklearnScalerState:
    """Stand-in that receives a scikit-learn scaler's pickled attribute dict."""

    kind = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.state = state


class _MinMaxState(_SklearnScalerState):
    kind = "minmax"


class _StandardState(_SklearnScalerState):
    kind = "standard"


class _ScalerUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a scaler pickle")
        if name in ("MinMaxScaler", "StandardScaler"):
            return _MinMaxState if name == "MinMaxScaler" else _StandardState
        return super().find_class(module, name)


def scaler_from_sklearn_state(kind: str, state: dict[str, Any]):
    """Build an mlstrat scaler from scikit-learn fitted attributes (as numbers)."""
    n = int(np.size(state.get("scale_")))
    if kind == "minmax":
        return scaler_from_dict(
            {
                "type": "minmax",
                "feature_range": list(state.get("feature_range", (0.0, 1.0))),
                "clip": bool(state.get("clip", False)),
                "n_features_in": n,
                "data_min": state["data_min_"],
                "data_max": state["data_max_"],
                "data_range": state["data_range_"],
                "scale": state["scale_"],
                "min": state["min_"],
            }
        )
    mean = state.get("mean_")
    return scaler_from_dict(
        {
            "type": "standard",
            "with_mean": bool(state.get("with_mean", True)),
            "with_std": bool(state.get("with_std", True)),
            "n_features_in": n,
            "mean": np.zeros(n) if mean is None else mean,
            "var": state.get("var_", np.square(state["scale_"])),
            "scale": state["scale_"],
            "n_samples_seen": state.get("n_samples_seen_", 0),
        }
    )


def read_pickled_scaler(path: str | Path, *, trust_pickle: bool = False):
    """Convert a legacy pickled scikit-learn scaler; refuses unless `trust_pickle` is True."""
    path = Path(path)
    if not trust_pickle:
        raise SchemaError(
            "refusing to read a pickled scaler",
            file=path,
            fix="pass --trust-pickle (trust_pickle=True) if you trust where this file came from",
        )
    warnings.warn(
        f"reading pickled scaler {path} because trust_pickle=True; only scikit-learn scaler "
        "classes are admitted",
        stacklevel=2,
    )
    raw = path.read_bytes()
    try:
        obj = _ScalerUnpickler(io.BytesIO(raw)).load()
    except Exception as exc:
        raise SchemaError(
            f"not a pickled scikit-learn MinMaxScaler/StandardScaler ({exc})",
            file=path,
            fix="export the scaler's parameters as JSON and pass --scaler-json",
        ) from exc
    if not isinstance(obj, _SklearnScalerState):
        raise SchemaError("pickle does not hold a scaler", file=path, fix="pass --scaler-json")
    return scaler_from_sklearn_state(obj.kind, obj.state)


def read_scaler_json(path: str | Path):
    """A scaler from JSON: mlstrat's own format, or scikit-learn attribute names plus "kind"."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SchemaError(
            f"cannot read scaler JSON ({exc})", file=path, fix="check the file"
        ) from exc
    if "type" in data:
        return scaler_from_dict(data)
    kind = data.get("kind")
    if kind not in ("minmax", "standard"):
        raise SchemaError(
            "scaler JSON needs 'type' (mlstrat format) or 'kind': 'minmax' | 'standard'",
            file=path,
            fix='add "kind" and the fitted attributes (data_min_, ... or mean_, scale_)',
        )
    try:
        return scaler_from_sklearn_state(kind, data)
    except KeyError as exc:
        raise SchemaError(
            f"scaler JSON lacks {exc}", file=path, fix="include every fitted attribute"
        ) from exc


def upgrade_legacy_model(
    source: str | Path,
    out: str | Path,
    *,
    feature_names: list[str] | None = None,
    scaler: MinMaxScaler | StandardScaler | None = None,
    architecture: Any = None,
    output: str = "auto",
    n_check: int = 16,
    tolerance: float = 1e-5,
    seed: int = 0,
) -> UpgradeReport:
    """Load `source`, save it as a current model directory at `out`, and prove they agree.

    Outputs of the legacy load and of the reloaded directory are compared on
    `n_check` random inputs; a difference above `tolerance` leaves `out`
    untouched and raises ModelLoadError.
    """
    legacy = LegacyKerasPredictor(
        source, architecture=architecture, feature_names=feature_names, output=output
    )
    legacy.scaler = scaler
    shape = legacy.load_record.input_shape or ()
    dims = [d if d is not None else 1 for d in shape[1:]]
    x = np.random.default_rng(seed).normal(size=(n_check, *dims)).astype(np.float32)
    expected = np.asarray(legacy.raw_outputs(x), dtype=np.float64)
    out = Path(out)
    with tempfile.TemporaryDirectory(
        prefix="mlstrat-upgrade-", dir=out.parent if out.parent.exists() else None
    ) as tmp:
        staged = Path(tmp) / "model"
        legacy.save(staged)
        again = LegacyKerasPredictor.load(staged)
        got = np.asarray(again.raw_outputs(x), dtype=np.float64)
        diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
        if not np.isfinite(diff) or diff > tolerance:
            raise ModelLoadError(
                f"upgraded model differs from the legacy model by {diff:.3g} (> {tolerance})",
                file=source,
                fix="report this model; keep using the legacy file meanwhile",
            )
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(staged), str(out))
    record = legacy.load_record
    return UpgradeReport(str(source), str(out), record.strategy, record.patches, diff, n_check)
