"""Feature alignment between what a model was trained on and the frame it is given.

A model remembers its feature names. At prediction time the frame is reduced
to those columns in training order (extras ignored); a missing column is a
SchemaError listing every missing name, unless the caller opts into a fill
policy. Target columns (future information) can never be model inputs.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError, DataError, SchemaError
from mlstrat.features.targets import TARGET_PREFIXES, column_roles, is_target_name

OnMissing = Literal["error", "zero", "nan", "mean"]
ON_MISSING_POLICIES: tuple[str, ...] = ("error", "zero", "nan", "mean")


def check_gap_and_on_missing(validation_gap: Any, on_missing: Any) -> None:
    """ConfigError unless validation_gap is "auto" or an int >= 0 and on_missing a known policy.

    The two constructor checks every fitted adapter (XGBoost, Keras) makes.
    """
    if not (validation_gap == "auto" or (isinstance(validation_gap, int) and validation_gap >= 0)):
        raise ConfigError(
            f"validation_gap must be 'auto' or a non-negative integer, got {validation_gap!r}",
            fix="use validation_gap='auto' or e.g. validation_gap=24",
        )
    if on_missing not in ON_MISSING_POLICIES:
        raise ConfigError(
            f"on_missing must be one of {ON_MISSING_POLICIES}, got {on_missing!r}",
            fix="use on_missing='error' (default)",
        )


def check_no_targets(
    feature_names: Iterable[str], frame: pd.DataFrame | None = None, *, file: Any = None
) -> None:
    """Raise SchemaError if any feature is a target column (by name or by frame role)."""
    roles = column_roles(frame)
    bad = [n for n in feature_names if is_target_name(n) or roles.get(str(n)) == "target"]
    if bad:
        raise SchemaError(
            f"target column(s) used as model features: {', '.join(map(str, bad))} "
            "(targets look into the future)",
            file=file,
            column=str(bad[0]),
            fix="select features with mlstrat.features.feature_columns(df)",
        )


def align_features(
    X: pd.DataFrame,
    feature_names: Sequence[str],
    *,
    on_missing: OnMissing = "error",
    means: Mapping[str, float] | None = None,
    file: Any = None,
) -> pd.DataFrame:
    """Return `X[feature_names]` in training order, handling missing columns by `on_missing`.

    on_missing: "error" (default) raises SchemaError listing all missing names;
    "zero" / "nan" fill them with 0.0 / NaN; "mean" fills with the training
    means in `means` (as saved by the predictor). Extra columns are dropped.
    """
    if not isinstance(X, pd.DataFrame):
        raise SchemaError(
            f"features must be a pandas DataFrame with named columns, got {type(X).__name__}",
            file=file,
            fix="wrap arrays as pd.DataFrame(values, columns=predictor.feature_names)",
        )
    if on_missing not in ON_MISSING_POLICIES:
        raise SchemaError(
            f"unknown on_missing policy {on_missing!r}",
            fix=f"use one of {', '.join(ON_MISSING_POLICIES)}",
        )
    names = list(feature_names)
    check_no_targets(names, X, file=file)
    duplicated = X.columns[X.columns.duplicated()].unique().tolist()
    wanted_dupes = [c for c in duplicated if c in set(names)]
    if wanted_dupes:
        raise SchemaError(
            f"feature column(s) appear more than once: {', '.join(map(str, wanted_dupes))}",
            file=file,
            column=str(wanted_dupes[0]),
            fix="drop or rename the duplicated columns",
        )
    present = set(X.columns)
    missing = [n for n in names if n not in present]
    if missing and on_missing == "error":
        raise SchemaError(
            f"{len(missing)} feature(s) the model was trained on are missing: {', '.join(missing)}",
            file=file,
            column=missing[0],
            fix="build the feed with the model's feature set, or opt in to a fill policy "
            "with on_missing='zero' | 'nan' | 'mean'",
        )
    if missing and on_missing == "mean":
        lacking = [n for n in missing if means is None or n not in means]
        if lacking:
            raise SchemaError(
                f"no training mean stored for missing feature(s): {', '.join(lacking)}",
                file=file,
                column=lacking[0],
                fix="use on_missing='zero' or 'nan', or supply the feature",
            )
    fill = {"zero": 0.0, "nan": np.nan}
    columns = {}
    for n in names:
        if n in present:
            columns[n] = X[n]
        elif on_missing == "mean":
            columns[n] = pd.Series(float(means[n]), index=X.index, dtype=np.float64)
        else:
            columns[n] = pd.Series(fill[on_missing], index=X.index, dtype=np.float64)
    out = pd.DataFrame(columns, index=X.index)
    out.attrs = dict(X.attrs)
    return out


def training_means(feature_names: Sequence[str], values: np.ndarray) -> dict[str, float]:
    """Per-feature means of the training rows, NaN-aware; NaN for a column with no values.

    Stored with a model for the on_missing="mean" policy. A column that is all
    NaN in a training window (an indicator still warming up) is common and not
    worth a warning.
    """
    values = np.asarray(values, dtype=np.float64)
    present = ~np.isnan(values)
    counts = present.sum(axis=0)
    sums = np.where(present, values, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return dict(zip(feature_names, means.tolist(), strict=True))


def row_weights_of(weights: Any, n: int) -> np.ndarray:
    """Sample weights given to a predictor's `fit` as n finite values >= 0 (else a DataError
    naming the first bad row)."""
    out = np.asarray(weights, dtype=np.float64)
    if out.shape != (n,):
        raise DataError(
            f"sample_weight holds {out.shape} values for {n} rows",
            fix="give one weight per training row",
        )
    bad = np.flatnonzero(~np.isfinite(out) | (out < 0))
    if bad.size:
        raise DataError(
            f"sample_weight {out[bad[0]]!r} at row {int(bad[0])} is not a finite value >= 0",
            row=int(bad[0]),
            fix="weights must be finite and non-negative",
        )
    return out


def feature_matrix(X: pd.DataFrame, *, dtype: Any = np.float64, file: Any = None) -> np.ndarray:
    """Numeric 2-D array of an aligned frame; non-numeric columns are a SchemaError."""
    for name, col in X.items():
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise SchemaError(
                f"feature column has non-numeric dtype {col.dtype}",
                file=file,
                column=str(name),
                fix="encode the column as numbers or leave it out of the features",
            )
    return X.to_numpy(dtype=dtype, na_value=np.nan)


def align(
    frame: pd.DataFrame,
    expected: Sequence[str],
    policy: Literal["strict", "fill"] = "strict",
    *,
    fill_value: float = 0.0,
    file: Any = None,
) -> pd.DataFrame:
    """Reorder `frame` to `expected` by name, ignoring extras (the legacy-model entry point).

    policy="strict" raises SchemaError listing every missing name;
    policy="fill" fills missing columns with `fill_value` and warns, naming them.
    """
    if policy not in ("strict", "fill"):
        raise SchemaError(f"unknown alignment policy {policy!r}", fix="use 'strict' or 'fill'")
    if policy == "strict":
        return align_features(frame, expected, on_missing="error", file=file)
    missing = [n for n in expected if n not in set(frame.columns)]
    if missing:
        warnings.warn(
            f"filling {len(missing)} missing feature(s) with {fill_value}: {', '.join(missing)}",
            stacklevel=2,
        )
    means = {n: fill_value for n in missing}
    return align_features(frame, expected, on_missing="mean", means=means, file=file)


def expected_features(source: str | Path) -> list[str]:
    """A model's feature names, from its model directory's metadata or a sidecar JSON file.

    `source` may be a model directory, its metadata.json, a sidecar JSON list
    of names, or a legacy model file with a `<name>.features.json` beside it.
    """
    path = Path(source)
    candidates = [path / "metadata.json"] if path.is_dir() else [path]
    if path.suffix not in (".json",):
        candidates.append(path.with_name(path.name + ".features.json"))
        candidates.append(path.with_suffix(".features.json"))
    for candidate in candidates:
        if candidate.is_file() and candidate.suffix == ".json":
            data = json.loads(candidate.read_text())
            names = data.get("feature_names") if isinstance(data, dict) else data
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                return list(names)
    raise SchemaError(
        "no feature names found for the model",
        file=path,
        fix="write the training feature names as a JSON list in <model>.features.json",
    )


__all__ = [
    "training_means",
    "align",
    "expected_features",
    "ON_MISSING_POLICIES",
    "TARGET_PREFIXES",
    "OnMissing",
    "align_features",
    "check_gap_and_on_missing",
    "check_no_targets",
    "feature_matrix",
    "is_target_name",
]
