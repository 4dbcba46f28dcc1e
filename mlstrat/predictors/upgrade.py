"""Upgrade an older Keras model (and its scaler) to a current mlstrat model directory.

The upgraded directory is only written after the re-saved model reproduces
the legacy model's outputs on random inputs and, when given, the legacy
model's known outputs on reference inputs (the only check that catches
corrupted weights: HDF5 carries no checksum). Legacy pickled scalers are read
only with an explicit ``trust_pickle=True``, and then through an unpickler
that admits nothing but scikit-learn's MinMaxScaler/StandardScaler and the
numpy pieces they are made of; a SavedModel only with ``trust_saved_model=True``.
"""

from __future__ import annotations

import io
import json
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlstrat.errors import ConfigError, IntegrityError, ModelLoadError, SchemaError
from mlstrat.fileio import scratch_dir
from mlstrat.predictors.legacy import LegacyKerasPredictor
from mlstrat.predictors.persistence import check_replaceable, swap_into_place
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

#: Default of both output checks, |got - want| <= tolerance * (1 + |want|): float32 carries
#: ~7 significant digits and another TensorFlow/CPU kernel sums in another order, which moves
#: outputs by ~1e-7..1e-6; 1e-5 leaves room for that and still catches changed weights.
DEFAULT_TOLERANCE = 1e-5


@dataclass
class UpgradeReport:
    """What an upgrade did: the loading strategy, patches, and the largest output difference."""

    source: str
    out: str
    strategy: str
    patches: list[str]
    max_abs_diff: float
    n_checked: int
    reference_max_abs_diff: float | None = None
    n_reference: int = 0


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


def load_npy(path: str | Path) -> np.ndarray:
    """A numeric .npy array, read with allow_pickle=False (object arrays are a SchemaError)."""
    try:
        array = np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise SchemaError(
            f"cannot read a numeric .npy array ({exc})",
            file=path,
            fix="save it with numpy.save from a float array",
        ) from exc
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise SchemaError(
            f"expected a numeric array, found {getattr(array, 'dtype', type(array).__name__)}",
            file=path,
            fix="save a float array with numpy.save",
        )
    return array


def _reference(value: Any) -> tuple[np.ndarray, str | None]:
    """A reference array and its file name (None for an in-memory array)."""
    if isinstance(value, (str, Path)):
        return load_npy(value), str(value)
    return np.asarray(value), None


def _within(got: np.ndarray, want: np.ndarray, tolerance: float) -> tuple[bool, float]:
    """Whether |got - want| <= tolerance * (1 + |want|) everywhere, and the largest |got - want|."""
    if got.size == 0:
        return True, 0.0
    diff = np.abs(got - want)
    ok = bool(np.all(np.isfinite(diff)) and np.all(diff <= tolerance * (1.0 + np.abs(want))))
    return ok, float(np.nanmax(diff)) if np.isfinite(diff).any() else float("inf")


def check_reference_outputs(
    legacy: LegacyKerasPredictor,
    inputs: Any,
    outputs: Any,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[float, int]:
    """Compare the loaded model's outputs on `inputs` with `outputs`; IntegrityError if they differ.

    `inputs`/`outputs` are arrays or .npy paths: model inputs (already scaled) and what
    the model gave on them where it was trained. Returns (max |difference|, rows).
    """
    x, x_file = _reference(inputs)
    y, y_file = _reference(outputs)
    source = legacy.load_record.source
    shape = tuple(legacy.load_record.input_shape or ())
    if x.ndim != len(shape) or any(
        d is not None and d != n for d, n in zip(shape[1:], x.shape[1:], strict=False)
    ):
        raise SchemaError(
            f"reference inputs have shape {x.shape}, the model takes {shape}",
            file=x_file,
            fix="pass inputs shaped like the model's input (rows first)",
        )
    got = np.asarray(legacy.raw_outputs(x.astype(np.float32)), dtype=np.float64)
    want = np.asarray(y, dtype=np.float64)
    if want.size != got.size or len(want) != len(got):
        raise SchemaError(
            f"reference outputs have shape {want.shape}, the model gives {got.shape} on "
            f"{len(x)} inputs",
            file=y_file,
            fix="pass the outputs the model produced on exactly these inputs",
        )
    ok, diff = _within(got.reshape(len(got), -1), want.reshape(len(got), -1), tolerance)
    if not ok:
        raise IntegrityError(
            f"the loaded model's outputs differ from the reference outputs by up to {diff:.3g} "
            f"(tolerance {tolerance:g} + {tolerance:g}*|reference|): weights corrupted or not "
            "the model the references came from",
            file=source,
            fix="restore the model file from a backup; nothing was written",
        )
    return diff, len(x)


def upgrade_legacy_model(
    source: str | Path,
    out: str | Path,
    *,
    feature_names: list[str] | None = None,
    scaler: MinMaxScaler | StandardScaler | None = None,
    architecture: Any = None,
    output: str = "auto",
    n_check: int = 16,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    reference_inputs: Any = None,
    reference_outputs: Any = None,
    trust_saved_model: bool = False,
) -> UpgradeReport:
    """Load `source`, save it as a current model directory at `out`, and prove they agree.

    With `reference_inputs`/`reference_outputs` (arrays or .npy paths), the loaded
    model must first reproduce the reference outputs (IntegrityError otherwise).
    Outputs of the legacy load and of the reloaded directory are then compared on
    `n_check` random inputs. Both checks use |a - b| <= tolerance * (1 + |b|); a
    failure leaves `out` untouched. A SavedModel source needs `trust_saved_model`.
    """
    out = Path(out)
    check_replaceable(out)
    if not tolerance > 0:  # also refuses NaN
        raise ConfigError(
            f"tolerance must be positive, got {tolerance!r}", fix="e.g. --tolerance 1e-4"
        )
    if (reference_inputs is None) != (reference_outputs is None):
        raise ConfigError(
            "reference inputs and reference outputs go together",
            fix="pass both --reference-inputs X.npy and --reference-outputs Y.npy, or neither",
        )
    legacy = LegacyKerasPredictor(
        source,
        architecture=architecture,
        feature_names=feature_names,
        output=output,
        trust_saved_model=trust_saved_model,
    )
    legacy.scaler = scaler
    reference_diff, n_reference = None, 0
    if reference_inputs is not None:
        reference_diff, n_reference = check_reference_outputs(
            legacy, reference_inputs, reference_outputs, tolerance=tolerance
        )
    shape = legacy.load_record.input_shape or ()
    dims = [d if d is not None else 1 for d in shape[1:]]
    x = np.random.default_rng(seed).normal(size=(n_check, *dims)).astype(np.float32)
    expected = np.asarray(legacy.raw_outputs(x), dtype=np.float64)
    with scratch_dir(out) as tmp:
        staged = tmp / "model"
        legacy.save(staged)
        again = LegacyKerasPredictor.load(staged, trust_saved_model=trust_saved_model)
        got = np.asarray(again.raw_outputs(x), dtype=np.float64)
        ok, diff = _within(got, expected, tolerance)
        if not ok:
            raise ModelLoadError(
                f"upgraded model differs from the legacy model by {diff:.3g} "
                f"(> {tolerance:g} + {tolerance:g}*|value|)",
                file=source,
                fix="report this model; keep using the legacy file meanwhile",
            )
        swap_into_place(staged, out)
    record = legacy.load_record
    return UpgradeReport(
        str(source),
        str(out),
        record.strategy,
        record.patches,
        diff,
        n_check,
        reference_diff,
        n_reference,
    )
