"""Predictors: one interface over XGBoost and Keras models, a registry, safe model directories.

Importing this package is cheap: adapters (and TensorFlow) load the first
time their name is used, e.g. ``create_predictor("lstm")``.
"""

from mlstrat.predictors.base import THREE_CLASS_LABELS, Prediction, Predictor
from mlstrat.predictors.compat import align_features
from mlstrat.predictors.persistence import (
    FORMAT_VERSION,
    read_model_dir,
    verify_model_dir,
    write_model_dir,
)
from mlstrat.predictors.registry import (
    ENTRY_POINT_GROUP,
    UnknownPredictorError,
    create_predictor,
    get_predictor,
    list_predictors,
    load_predictor,
    register_predictor,
)
from mlstrat.predictors.scaling import MinMaxScaler, StandardScaler, load_scalers, save_scalers

__all__ = [
    "ENTRY_POINT_GROUP",
    "FORMAT_VERSION",
    "THREE_CLASS_LABELS",
    "MinMaxScaler",
    "Prediction",
    "Predictor",
    "StandardScaler",
    "UnknownPredictorError",
    "align_features",
    "create_predictor",
    "get_predictor",
    "list_predictors",
    "load_predictor",
    "load_scalers",
    "read_model_dir",
    "register_predictor",
    "save_scalers",
    "verify_model_dir",
    "write_model_dir",
]
