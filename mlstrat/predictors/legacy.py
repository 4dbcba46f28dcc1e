"""Load models saved by older Keras/TensorFlow (Keras 2, TF <= 2.15) with the current stack.

`load_legacy_model` tries four strategies in order and stops at the first
that yields a complete model:

1. ``current``: the Keras 3 loader (``compile=False``, ``safe_mode=True``,
   mlstrat's registered custom objects);
2. ``patched_config``: the saved configuration rewritten for Keras 3 (legacy
   module paths, removed arguments such as ``time_major``, old input-shape
   forms, renamed classes and losses), then loaded by Keras from a patched
   copy of the file, weights included;
3. ``weights_only``: the weights read from the file and assigned, layer by
   layer in order, to an architecture rebuilt by a registered builder;
4. ``saved_model``: a TensorFlow SavedModel directory wrapped for inference.

Passing an ``architecture`` forces strategy 3 alone. A SavedModel is only
loaded with ``trust_saved_model=True``: loading one restores and runs its
TensorFlow graph, which can read and write files, so without that opt-in it is
refused before TensorFlow sees it (`SavedModelTrustError`).

The returned `LegacyLoad` records which strategy worked, what was patched and
why the earlier strategies failed. Nothing here unpickles anything.
"""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlstrat.errors import IntegrityError, ModelLoadError
from mlstrat.predictors.base import Prediction, Predictor
from mlstrat.predictors.registry import register_predictor

STRATEGIES = ("current", "patched_config", "weights_only", "saved_model")

#: Keras 2 module paths of model classes and where Keras 3 keeps them.
_MODEL_MODULES = {
    "Functional": "keras.src.models.functional",
    "Sequential": "keras",
    "Model": "keras",
}
#: Arguments Keras 3 layers no longer accept, dropped when patching.
_REMOVED_ARGS = {"time_major"}
#: Classes renamed between Keras 2 and 3 (old name -> new name).
_RENAMED_CLASSES = {
    "CuDNNLSTM": "LSTM",
    "CuDNNGRU": "GRU",
    "random_uniform": "RandomUniform",
    "glorot_uniform": "GlorotUniform",
    "orthogonal": "Orthogonal",
}
#: Custom losses referenced by old names; resolved to mlstrat's registered objects.
LEGACY_LOSS_NAMES = ("directional_loss", "quantile_loss", "FocalLoss", "focal_loss")

#: Value in a model directory's metadata ``requires_trust`` list (and a window-set index
#: entry's) saying that loading it runs a TensorFlow SavedModel graph.
SAVED_MODEL_TRUST = "saved_model"
_TRUST_PROBLEM = (
    "holds a TensorFlow SavedModel; loading one runs its TensorFlow graph, which can read "
    "and write files, so it is not loaded without explicit trust"
)
_TRUST_FIX = (
    "pass --trust-saved-model (Python: trust_saved_model=True) only if you trust where this "
    "model came from"
)

Builder = Callable[..., Any]
_ARCHITECTURES: dict[str, Builder] = {}


class SavedModelTrustError(ModelLoadError):
    """A SavedModel (or a model directory made from one) was not loaded: trust was not given."""


class ArchitectureMismatch(ValueError):
    """Saved weights do not fit the layers of a rebuilt architecture (message lists both)."""


def is_saved_model_dir(path: str | os.PathLike) -> bool:
    """True when `path` is a directory TensorFlow would load as a SavedModel."""
    path = Path(path)
    return path.is_dir() and any(
        (path / name).exists() for name in ("saved_model.pb", "saved_model.pbtxt")
    )


def require_saved_model_trust(path: str | os.PathLike, trust: bool) -> None:
    """Refuse (SavedModelTrustError) to go on loading the SavedModel at `path` unless `trust`."""
    if not trust:
        raise SavedModelTrustError(_TRUST_PROBLEM, file=path, fix=_TRUST_FIX)


def register_architecture(name: str) -> Callable[[Builder], Builder]:
    """Register a function that rebuilds an old architecture (for the weights-only strategy)."""

    def decorate(fn: Builder) -> Builder:
        _ARCHITECTURES[name] = fn
        return fn

    return decorate


def get_architecture(name: str) -> Builder:
    if name not in _ARCHITECTURES:
        raise ModelLoadError(
            f"unknown architecture '{name}'",
            fix=f"use one of {sorted(_ARCHITECTURES)} or register_architecture() your builder",
        )
    return _ARCHITECTURES[name]


@register_architecture("seed000")
def build_seed000(
    timesteps: int = 96,
    n_features: int = 17,
    conv_filters: int = 64,
    kernel_size: int = 3,
    lstm_units: tuple[int, ...] | list[int] = (256, 128, 64),
    dense_units: int = 64,
    dropout: float = 0.2,
    outputs: int = 1,
):
    """The older saved price model of the crypto trading bot mlstrat was built to backtest.

    Conv1D, stacked LSTM with batch norm, dot attention, dense head; the defaults
    (96 bars × 17 features, LSTM 256-128-64) are the shape of its saved models.
    "seed000" is only the name this builder is registered under.
    """
    import keras
    from keras import layers

    inp = keras.Input(shape=(timesteps, n_features), name="window")
    x = layers.Conv1D(conv_filters, kernel_size, padding="same", activation="relu")(inp)
    for units in lstm_units:
        x = layers.LSTM(units, return_sequences=True)(x)
        x = layers.BatchNormalization()(x)
    x = layers.Attention()([x, x])
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dense(dense_units, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    x = layers.BatchNormalization()(x)
    out = layers.Dense(outputs)(x)
    return keras.Model(inp, out, name="seed000")


@dataclass
class LegacyLoad:
    """A loaded legacy model and the record of how it was loaded."""

    model: Any
    strategy: str
    source: str
    patches: list[str] = field(default_factory=list)
    attempts: list[tuple[str, str]] = field(default_factory=list)
    input_shape: tuple[int | None, ...] | None = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Run the model on a batch (inference mode) and return a numpy array."""
        x = np.asarray(x, dtype=np.float32)
        if self.strategy == "saved_model":
            return self.model(x)
        return np.asarray(self.model(x, training=False))


# ---------------------------------------------------------------- config patching


def patch_config(config: Any, patches: list[str]) -> Any:
    """Return a Keras-3 loadable copy of a Keras 2 model config; record each change in `patches`."""
    config = copy.deepcopy(config)
    _patch_node(config, patches, top=True)
    return config


def _patch_node(node: Any, patches: list[str], top: bool = False) -> None:
    if isinstance(node, list):
        for item in node:
            _patch_node(item, patches)
        return
    if not isinstance(node, dict):
        return
    cls = node.get("class_name")
    if isinstance(cls, str):
        if cls in _RENAMED_CLASSES:
            patches.append(f"class {cls} -> {_RENAMED_CLASSES[cls]}")
            node["class_name"] = cls = _RENAMED_CLASSES[cls]
        module = node.get("module")
        if cls in _MODEL_MODULES and isinstance(module, str) and "engine" in module:
            patches.append(f"module {module} -> {_MODEL_MODULES[cls]}")
            node["module"] = _MODEL_MODULES[cls]
        cfg = node.get("config")
        if isinstance(cfg, dict):
            _patch_layer_config(cls, cfg, patches)
            if cls in ("Functional", "Model"):
                _unwrap_single_io(cfg, patches)
            if cls == "Sequential":
                _ensure_sequential_input(cfg, patches)
    for value in node.values():
        _patch_node(value, patches)


def _patch_layer_config(cls: str, cfg: dict, patches: list[str]) -> None:
    for arg in _REMOVED_ARGS & cfg.keys():
        del cfg[arg]
        patches.append(f"{cls}.{arg} removed")
    if "batch_input_shape" in cfg:
        shape = cfg.pop("batch_input_shape")
        if cls == "InputLayer":
            cfg["batch_shape"] = shape
            patches.append("InputLayer.batch_input_shape -> batch_shape")
        else:
            patches.append(f"{cls}.batch_input_shape removed")
    axis = cfg.get("axis")
    if cls == "BatchNormalization" and isinstance(axis, list) and len(axis) == 1:
        cfg["axis"] = axis[0]
        patches.append("BatchNormalization.axis list -> int")
    if cls == "InputLayer" and "input_shape" in cfg:
        cfg["batch_shape"] = [None, *cfg.pop("input_shape")]
        patches.append("InputLayer.input_shape -> batch_shape")


def _unwrap_single_io(cfg: dict, patches: list[str]) -> None:
    # Keras 2 wrote a single input as [[name, 0, 0]]; Keras 3 expects [name, 0, 0].
    for key in ("input_layers", "output_layers"):
        value = cfg.get(key)
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
            cfg[key] = value[0]
            patches.append(f"Functional.{key} unwrapped")


def _ensure_sequential_input(cfg: dict, patches: list[str]) -> None:
    layers = cfg.get("layers") or []
    if layers and layers[0].get("class_name") != "InputLayer":
        first = layers[0].get("config", {})
        shape = first.get("batch_input_shape") or (
            [None, *first["input_shape"]] if "input_shape" in first else None
        )
        if shape is not None:
            layers.insert(
                0,
                {"class_name": "InputLayer", "config": {"batch_shape": shape, "dtype": "float32"}},
            )
            patches.append("Sequential: explicit InputLayer added")


def _to_new_style(node: Any, module: str = "keras.layers") -> Any:
    """Give a Keras 2 (.h5) config the explicit `module` keys the Keras 3 deserializer expects.

    Keras 3's legacy h5 path turns any string equal to a layer-module function
    name into that function (e.g. Attention's score_mode "dot" -> layers.dot),
    so h5 configs are converted and deserialized by the current loader instead.
    """
    if isinstance(node, list):
        return [_to_new_style(item, module) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key.endswith("_initializer"):
            out[key] = _to_new_style(value, "keras.initializers")
        elif key.endswith("_regularizer"):
            out[key] = _to_new_style(value, "keras.regularizers")
        elif key.endswith("_constraint"):
            out[key] = _to_new_style(value, "keras.constraints")
        elif key == "layers":
            out[key] = _to_new_style(value, "keras.layers")
        elif key == "config" and isinstance(value, dict):
            out[key] = _to_new_style(value, module)
        else:
            out[key] = value
    cls = out.get("class_name")
    if isinstance(cls, str) and "config" in out and "module" not in out:
        out["module"] = _MODEL_MODULES.get(cls, module)
        out.setdefault("registered_name", None)
    return out


def _load_patched(path: Path, custom: dict, patches: list[str]):
    """Build the model from its patched config with the Keras 3 loader; weights included."""
    import h5py
    import keras

    if path.suffix == ".h5":
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
        if raw is None:
            raise ValueError("file holds weights only (no model_config)")
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        config = _to_new_style(patch_config(config, patches), "keras")
        with keras.saving.custom_object_scope(custom):
            model = keras.saving.deserialize_keras_object(config, safe_mode=True)
        assign_weights(model, read_layer_weights(path))
        patches.append("weights assigned by layer order from the .h5 file")
        return model
    with tempfile.TemporaryDirectory(prefix="mlstrat-legacy-") as tmp:
        target = Path(tmp) / path.name
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w") as dst:
            for item in src.infolist():
                data = src.read(item.filename)
                if item.filename == "config.json":
                    patched = patch_config(json.loads(data), patches)
                    if patched.get("compile_config") is not None:
                        patched["compile_config"] = None
                        patches.append("compile_config dropped (custom losses need not resolve)")
                    data = json.dumps(patched).encode()
                dst.writestr(item, data)
        return keras.models.load_model(target, compile=False, safe_mode=True, custom_objects=custom)


# ---------------------------------------------------------------- weight reading


def read_layer_weights(path: Path) -> list[tuple[str, list[np.ndarray]]]:
    """Weights of every layer that has any, in saved layer order, from a Keras 2 .h5 or .keras file."""
    import h5py

    if path.suffix == ".h5":
        with h5py.File(path, "r") as f:
            group = f.get("model_weights", f)
            out = []
            for name in _attr_names(group, "layer_names"):
                layer = group[name]
                arrays = [np.asarray(layer[w]) for w in _attr_names(layer, "weight_names")]
                if arrays:
                    out.append((name, arrays))
            return out
    from keras.src.utils.naming import to_snake_case

    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
        blob = io.BytesIO(z.read("model.weights.h5"))
    # The .keras weights file names layers by class and order of appearance
    # ("lstm", "lstm_1", ...), not by layer name.
    seen: dict[str, int] = {}
    keys = []
    for layer in config["config"]["layers"]:
        base = to_snake_case(layer["class_name"])
        count = seen.get(base, 0)
        seen[base] = count + 1
        keys.append((layer["config"]["name"], base if count == 0 else f"{base}_{count}"))
    with h5py.File(blob, "r") as f:
        group = f["layers"]
        out = []
        for name, key in keys:
            if key not in group:
                continue
            arrays = [np.asarray(group[key][var]) for var in _sorted_var_paths(group[key])]
            if arrays:
                out.append((name, arrays))
        return out


def _attr_names(group, attr: str) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get(attr, [])]


def _sorted_var_paths(group) -> list[str]:
    import h5py

    paths: list[str] = []
    group.visititems(lambda key, obj: paths.append(key) if isinstance(obj, h5py.Dataset) else None)

    def key(p: str) -> tuple:
        parts = p.split("/")
        return tuple(int(x) if x.isdigit() else x for x in parts)

    return sorted(paths, key=key)


def assign_weights(model, layer_weights: list[tuple[str, list[np.ndarray]]]) -> None:
    """Assign saved per-layer weights to `model`'s weighted layers in order, checking every shape.

    A mismatch raises ArchitectureMismatch listing the file's and the architecture's weighted
    layers with their weight shapes, so the user can see what differs.
    """
    targets = [layer for layer in model.layers if layer.weights]
    built = [(layer.name, [tuple(w.shape) for w in layer.weights]) for layer in targets]
    saved = [(name, [tuple(a.shape) for a in arrays]) for name, arrays in layer_weights]
    if [shapes for _, shapes in built] != [shapes for _, shapes in saved]:
        raise ArchitectureMismatch(_mismatch_message(built, saved))
    for layer, (_, arrays) in zip(targets, layer_weights, strict=True):
        layer.set_weights(arrays)


def _mismatch_message(
    built: list[tuple[str, list[tuple]]], saved: list[tuple[str, list[tuple]]]
) -> str:
    """One line: the first difference, then every weighted layer of the file and the architecture."""
    if len(built) != len(saved):
        first = f"architecture has {len(built)} weighted layers, file has {len(saved)}"
    else:
        (b_name, b_shapes), (s_name, s_shapes) = next(
            (b, s) for b, s in zip(built, saved, strict=True) if b[1] != s[1]
        )
        first = f"layer '{b_name}' expects shapes {b_shapes}, saved layer '{s_name}' has {s_shapes}"
    return f"{first}; file layers: {_layer_list(saved)}; architecture layers: {_layer_list(built)}"


def _layer_list(layers: list[tuple[str, list[tuple]]]) -> str:
    def shape(s: tuple) -> str:
        return str(tuple(int(d) for d in s)).replace(" ", "")

    return ", ".join(f"{name} {'+'.join(shape(s) for s in shapes)}" for name, shapes in layers)


# ---------------------------------------------------------------- strategies


def _custom_objects(extra: dict | None) -> dict:
    objects: dict[str, Any] = {}
    try:
        from mlstrat.predictors import layers as mlayers  # registers mlstrat serializables

        for name in LEGACY_LOSS_NAMES:
            if hasattr(mlayers, name):
                objects[name] = getattr(mlayers, name)
    except ImportError:
        pass
    objects.update(extra or {})
    return objects


def _check_complete(model) -> None:
    shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if shape is None or any(d is None for d in shape):
        return
    out = np.asarray(model(np.zeros((1, *shape), dtype=np.float32), training=False))
    if not np.all(np.isfinite(out)):
        raise ValueError("model produces non-finite output on a zero input")


def _try_current(path: Path, custom: dict, patches: list[str]):
    import keras

    if path.is_dir():
        raise ValueError("a directory is not a Keras model file")
    model = keras.models.load_model(path, compile=False, safe_mode=True, custom_objects=custom)
    _check_complete(model)
    return model


def _try_patched(path: Path, custom: dict, patches: list[str]):
    if path.is_dir() or path.suffix not in (".h5", ".keras"):
        raise ValueError("not an .h5 or .keras file")
    model = _load_patched(path, custom, patches)
    _check_complete(model)
    return model


def _try_weights_only(path: Path, architecture, patches: list[str]):
    if architecture is None:
        raise ValueError("no architecture given (pass architecture=('seed000', {...}))")
    if path.is_dir():
        raise ValueError("a directory holds no Keras weights file")
    if isinstance(architecture, str):
        name, params = architecture, {}
    elif callable(architecture):
        name, params = getattr(architecture, "__name__", "builder"), {}
    else:
        name, params = architecture
    builder = architecture if callable(architecture) else get_architecture(name)
    model = builder(**params)
    assign_weights(model, read_layer_weights(path))
    patches.append(f"weights assigned into rebuilt architecture '{name}'")
    _check_complete(model)
    return model


class _SavedModelFunction:
    """Inference-only wrapper of a SavedModel's serving signature."""

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        self._tf = tf
        self._loaded = tf.saved_model.load(str(path))
        sigs = getattr(self._loaded, "signatures", {})
        if "serving_default" not in sigs:
            raise ValueError("SavedModel has no serving_default signature")
        self._fn = sigs["serving_default"]
        inputs = self._fn.structured_input_signature[1]
        if len(inputs) != 1:
            raise ValueError(f"expected one input, signature has {sorted(inputs)}")
        ((self._input_name, spec),) = inputs.items()
        self.input_shape = tuple(spec.shape.as_list())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self._fn(**{self._input_name: self._tf.constant(np.asarray(x, dtype=np.float32))})
        return next(iter(out.values())).numpy()


def _try_saved_model(path: Path, patches: list[str], trust: bool):
    if not is_saved_model_dir(path):
        raise ValueError("not a SavedModel directory (no saved_model.pb)")
    require_saved_model_trust(path, trust)  # load_legacy_model checked already; never skip it
    fn = _SavedModelFunction(path)
    patches.append("inference-only SavedModel signature")
    return fn


def load_legacy_model(
    path: str | os.PathLike,
    *,
    custom_objects: dict | None = None,
    architecture: str | tuple[str, dict] | Callable | None = None,
    trust_saved_model: bool = False,
) -> LegacyLoad:
    """Load an old Keras model, trying each strategy in turn; `ModelLoadError` lists every reason.

    A SavedModel directory is refused before TensorFlow reads it unless `trust_saved_model`;
    an `architecture` forces the weights-only strategy into that builder.
    """
    path = Path(path)
    if not path.exists():
        raise ModelLoadError("model file not found", file=path, fix="check the path")
    if is_saved_model_dir(path):
        require_saved_model_trust(path, trust_saved_model)
    if architecture is not None:
        return _load_into_architecture(path, architecture)
    custom = _custom_objects(custom_objects)
    attempts: list[tuple[str, str]] = []
    runners = {
        "current": lambda p: _try_current(path, custom, p),
        "patched_config": lambda p: _try_patched(path, custom, p),
        "weights_only": lambda p: _try_weights_only(path, architecture, p),
        "saved_model": lambda p: _try_saved_model(path, p, trust_saved_model),
    }
    for name in STRATEGIES:
        patches: list[str] = []
        try:
            model = runners[name](patches)
        except Exception as exc:  # each strategy's failure is reported, not raised
            attempts.append((name, f"{type(exc).__name__}: {_first_line(exc)}"))
            continue
        return _record(model, name, path, patches, attempts)
    reasons = "; ".join(f"{n}: {r}" for n, r in attempts)
    raise ModelLoadError(
        f"could not load the model with any strategy ({reasons})",
        file=path,
        fix="pass architecture=(name, params) for a weights-only load, or custom_objects",
    )


def _record(
    model: Any, strategy: str, path: Path, patches: list[str], attempts: list[tuple[str, str]]
) -> LegacyLoad:
    shape = getattr(model, "input_shape", None)
    return LegacyLoad(
        model=model,
        strategy=strategy,
        source=str(path),
        patches=patches,
        attempts=attempts,
        input_shape=tuple(shape) if isinstance(shape, (tuple, list)) else None,
    )


def _load_into_architecture(path: Path, architecture: Any) -> LegacyLoad:
    """The weights-only strategy alone (the caller named the architecture); errors in full."""
    patches: list[str] = []
    fix = (
        "pass architecture parameters (--architecture-params) that rebuild the saved layers' "
        "shapes, or another registered builder"
    )
    try:
        model = _try_weights_only(path, architecture, patches)
    except ModelLoadError:
        raise
    except ArchitectureMismatch as exc:
        raise ModelLoadError(
            f"weights do not fit the architecture: {exc}", file=path, fix=fix
        ) from exc
    except Exception as exc:
        raise ModelLoadError(
            f"weights-only load failed ({type(exc).__name__}: {_first_line(exc)})",
            file=path,
            fix=fix,
        ) from exc
    skipped = [(name, "skipped: an architecture was given") for name in STRATEGIES[:2]]
    return _record(model, "weights_only", path, patches, skipped)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:300]


# ---------------------------------------------------------------- predictor adapter


def _outputs_to_prediction(out: np.ndarray, output: str, return_scale: float | None):
    """Map raw model outputs to a Prediction (see LegacyKerasPredictor for the conventions)."""
    out = np.asarray(out, dtype=np.float64).reshape(len(out), -1)
    if output == "proba_up":
        p = np.clip(out[:, 0], 0.0, 1.0)
        signal = np.where(np.isnan(p), np.nan, np.where(p >= 0.5, 1.0, -1.0))
        return Prediction(signal, np.maximum(p, 1.0 - p), proba=np.column_stack([1.0 - p, p]))
    if output == "three_class":
        proba = out[:, :3]
        best = np.argmax(np.nan_to_num(proba, nan=-1.0), axis=1)
        signal = np.array([-1.0, 0.0, 1.0])[best]
        signal[np.isnan(proba).any(axis=1)] = np.nan
        return Prediction(signal, proba.max(axis=1), proba=proba)
    r = out[:, 0]
    signal = np.sign(r)
    if return_scale:
        from math import erf, sqrt

        confidence = 0.5 * (1.0 + np.vectorize(erf)(np.abs(r) / (return_scale * sqrt(2.0))))
    else:
        confidence = np.where(np.isnan(r), np.nan, 0.5)
    return Prediction(signal, confidence, expected_return=r)


def _infer_output(model: Any) -> str:
    shape = getattr(model, "output_shape", None)
    width = shape[-1] if isinstance(shape, tuple) else None
    last = model.layers[-1] if hasattr(model, "layers") and model.layers else None
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    if width == 3 and activation == "softmax":
        return "three_class"
    if width == 1 and activation == "sigmoid":
        return "proba_up"
    return "return"


@register_predictor("legacy_keras")
class LegacyKerasPredictor(Predictor):
    """A pre-trained older Keras model (or a per-window model set) behind the Predictor interface.

    `output` says what the model's last layer means: "proba_up" (one sigmoid
    unit), "three_class" (softmax over sell/hold/buy), "return" (expected
    return; confidence is Phi(|r| / return_scale) when `return_scale` is
    given, else 0.5) or "auto" (decided from the last layer). Legacy models
    are not retrained here: `fit` refuses, walk-forward uses trainable adapters.
    `trust_saved_model` lets a SavedModel `source` load (its graph runs); it is
    never saved, so a saved directory needs it again on every load.
    """

    task = "direction"
    #: Constructor parameters written to metadata.json (trust and code-bearing ones never);
    #: `load` passes them back except `source`, which only records where the model came from.
    _SAVED_PARAMS = ("source", "feature_names", "output", "return_scale", "on_missing", "symbol")

    def __init__(
        self,
        source: str | os.PathLike | None = None,
        *,
        architecture: Any = None,
        custom_objects: dict | None = None,
        feature_names: list[str] | None = None,
        output: str = "auto",
        return_scale: float | None = None,
        on_missing: str = "error",
        window_set: Any = None,
        symbol: str | None = None,
        trust_saved_model: bool = False,
    ) -> None:
        self.source = None if source is None else str(source)
        self.architecture = architecture
        self.custom_objects = custom_objects
        self.output = output
        self.return_scale = return_scale
        self.on_missing = on_missing
        self.window_set = window_set
        self.symbol = symbol
        self.trust_saved_model = trust_saved_model
        self.scaler = None
        self.load_record: LegacyLoad | None = None
        self._model = None
        self.feature_names = list(feature_names) if feature_names else []
        self.window = 1
        if source is not None:
            self._attach(
                load_legacy_model(
                    source,
                    custom_objects=custom_objects,
                    architecture=architecture,
                    trust_saved_model=trust_saved_model,
                )
            )
        elif window_set is not None:
            self.window = window_set.window
            self.feature_names = self.feature_names or list(window_set.feature_names)

    def _attach(self, record: LegacyLoad) -> None:
        self.load_record = record
        self._model = record.model
        shape = record.input_shape or ()
        self.window = int(shape[1]) if len(shape) == 3 and shape[1] else 1
        n_features = int(shape[-1]) if shape and shape[-1] else len(self.feature_names)
        if not self.feature_names:
            self.feature_names = [f"f{i}" for i in range(n_features)]
        if len(self.feature_names) != n_features:
            raise ModelLoadError(
                f"model expects {n_features} features, {len(self.feature_names)} names given",
                file=record.source,
                fix="pass the feature names the model was trained with (--features NAMES.json)",
            )
        if self.output == "auto":
            self.output = (
                "return" if record.strategy == "saved_model" else _infer_output(self._model)
            )

    def fit(self, X, y, *, validation=None):
        raise ModelLoadError(
            "legacy_keras models are pre-trained and cannot be fitted here",
            fix="retrain with a trainable predictor (lstm, xgboost, ...) or use the model as is",
        )

    def raw_outputs(self, windows: np.ndarray) -> np.ndarray:
        """Model outputs for a (n, window, n_features) float32 array, in chunks of 4,096."""
        outs = [np.asarray(self._call(windows[i : i + 4096])) for i in range(0, len(windows), 4096)]
        return np.concatenate(outs) if outs else np.empty((0, 1))

    def _call(self, x: np.ndarray):
        if self.load_record is not None and self.load_record.strategy == "saved_model":
            return self._model(x)
        return self._model(np.asarray(x, dtype=np.float32), training=False)

    def _values(self, X) -> np.ndarray:
        from mlstrat.predictors.compat import align_features, feature_matrix

        values = feature_matrix(align_features(X, self.feature_names, on_missing=self.on_missing))
        if self.scaler is not None:
            values = self.scaler.transform(values)
        return values

    def predict(self, X):
        from mlstrat.predictors.keras_utils import gather_windows, window_ready

        values = self._values(X)
        n = len(values)
        out = np.full((n, 3 if self.output == "three_class" else 1), np.nan)
        ready = np.flatnonzero(window_ready(values, self.window))
        if self.window_set is not None:
            for model_key, rows in self.window_set.assign(X.index[ready], ready, self.symbol):
                record = self.window_set.get(model_key)
                windows = gather_windows(values, self.window, rows)
                out[rows] = np.asarray(record.predict(windows)).reshape(len(rows), -1)
        elif len(ready):
            out[ready] = self.raw_outputs(gather_windows(values, self.window, ready)).reshape(
                len(ready), -1
            )
        pred = _outputs_to_prediction(out, self.output, self.return_scale)
        return Prediction(pred.signal, pred.confidence, pred.proba, pred.expected_return)

    def save(self, path) -> None:
        """Write a model directory; one made from a SavedModel records that it needs trust."""
        from mlstrat.predictors.persistence import write_model_dir
        from mlstrat.predictors.scaling import save_scalers

        if self._model is None:
            raise ModelLoadError("only a single loaded model can be saved", fix="save each model")
        record = self.load_record
        from_saved_model = record.strategy == "saved_model"
        meta = {
            "predictor": "legacy_keras",
            "params": {k: v for k, v in self.get_params().items() if k in self._SAVED_PARAMS},
            "feature_names": self.feature_names,
            "window": self.window,
            "task": self.task,
            "requires_trust": [SAVED_MODEL_TRUST] if from_saved_model else [],
            "legacy": {
                "source": record.source,
                "strategy": record.strategy,
                "model": _SAVED_MODEL_DIR if from_saved_model else _KERAS_FILE,
                "patches": record.patches,
                "attempts": record.attempts,
                "input_shape": list(record.input_shape or ()),
            },
        }
        with write_model_dir(path, meta) as tmp:
            if from_saved_model:
                shutil.copytree(record.source, tmp / _SAVED_MODEL_DIR)
            else:
                self._model.save(tmp / _KERAS_FILE)
            if self.scaler is not None:
                save_scalers(tmp / _SCALERS_FILE, {"x": self.scaler})

    @classmethod
    def load(cls, path, *, trust_saved_model: bool = False) -> LegacyKerasPredictor:
        """Load a saved directory, reading only files its manifest lists.

        Unlisted files are ignored (never opened), except inside a SavedModel folder, which
        TensorFlow reads whole: an unlisted file there is an IntegrityError. A directory
        made from a SavedModel needs `trust_saved_model`.
        """
        from mlstrat.predictors.persistence import open_model_dir
        from mlstrat.predictors.scaling import load_scalers

        path = Path(path)
        report = open_model_dir(path, predictor="legacy_keras")
        meta = report.metadata
        if SAVED_MODEL_TRUST in (meta.get("requires_trust") or []):
            require_saved_model_trust(path, trust_saved_model)
        params = meta.get("params") or {}
        obj = cls(**{k: params[k] for k in cls._SAVED_PARAMS if k in params and k != "source"})
        model_file = path / _listed_model(report)
        obj._attach(load_legacy_model(model_file, trust_saved_model=trust_saved_model))
        obj.source = (meta.get("legacy") or {}).get("source")
        if _SCALERS_FILE in report.files_checked:
            obj.scaler = load_scalers(path / _SCALERS_FILE).get("x")
        return obj


_KERAS_FILE = "model.keras"
_SAVED_MODEL_DIR = "savedmodel"
_SCALERS_FILE = "scalers.json"


def _listed_model(report: Any) -> str:
    """The model (file or SavedModel folder) a legacy_keras directory's manifest vouches for."""
    listed = set(report.files_checked)
    named = (report.metadata.get("legacy") or {}).get("model")
    candidates = [named] if named else [_KERAS_FILE, _SAVED_MODEL_DIR]
    for rel in candidates:
        if rel == _KERAS_FILE and rel in listed:
            return rel
        if rel == _SAVED_MODEL_DIR and f"{rel}/saved_model.pb" in listed:
            unlisted = [f for f in report.extra_files if f.startswith(f"{rel}/")]
            if unlisted:
                raise IntegrityError(
                    f"files in the SavedModel folder are not in the manifest: {unlisted}",
                    file=report.path / rel,
                    fix="remove them, or restore the directory from a backup",
                )
            return rel
    raise IntegrityError(
        f"the manifest lists no model ({' or '.join(map(str, candidates))})",
        file=report.path / "manifest.json",
        fix="restore the directory from a backup or upgrade the legacy model again",
    )
