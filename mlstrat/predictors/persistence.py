"""Model directories: atomic writes, sha256 manifests, format versions and strict JSON.

A model directory holds `metadata.json`, `manifest.json` and whatever files
the predictor writes (model file, `scalers.json`, member subdirectories of a
hybrid). The manifest records the size and sha256 of every file except
itself, recursively, so a tampered or truncated file anywhere in the tree is
caught on load. Directories are built in a temporary sibling and renamed into
place, so a crash never leaves a half-written model where a model was.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from mlstrat.errors import ConfigError, IntegrityError, ModelLoadError
from mlstrat.fileio import atomic_write_json as dump_json
from mlstrat.fileio import file_sha256, replace_dir, staged_dir, to_jsonable, versions
from mlstrat.fileio import load_json as _load_json

#: Version of the model-directory layout; bumped when old readers cannot read new directories.
FORMAT_VERSION = 1

METADATA_FILE = "metadata.json"
MANIFEST_FILE = "manifest.json"

_RESTORE_FIX = "retrain the model or restore the directory from a backup"

#: Versions recorded in every model's metadata (alternative distribution names in tuples).
MODEL_VERSIONS: tuple[str | tuple[str, ...], ...] = (
    "mlstrat",
    "python",
    "numpy",
    "pandas",
    "keras",
    ("tensorflow-cpu", "tensorflow"),
    ("xgboost-cpu", "xgboost"),
)


# --------------------------------------------------------------------------- JSON


def load_json(path: str | Path) -> Any:
    """Read a JSON file of a model directory; unparseable content is an IntegrityError."""
    return _load_json(path, fix=_RESTORE_FIX)


def _member_files(root: Path) -> list[str]:
    """Relative POSIX paths of every regular file under root except the top manifest."""
    files = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            rel = p.relative_to(root).as_posix()
            if rel != MANIFEST_FILE:
                files.append(rel)
    return files


def build_manifest(root: str | Path) -> dict[str, Any]:
    """Manifest dict (size and sha256 per file) for everything currently under root."""
    root = Path(root)
    entries = {}
    for rel in _member_files(root):
        p = root / rel
        entries[rel] = {"size": p.stat().st_size, "sha256": file_sha256(p)}
    return {"format_version": FORMAT_VERSION, "algorithm": "sha256", "files": entries}


# --------------------------------------------------------------------------- writing


def check_replaceable(path: Path) -> None:
    """Refuse to replace something that is not an mlstrat model directory."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir() or path.is_symlink():
        raise ConfigError(
            "output path exists and is not a directory",
            file=path,
            fix="choose a new --out path or remove the file",
        )
    if any(path.iterdir()) and not (path / METADATA_FILE).is_file():
        raise ConfigError(
            "output directory exists and is not an mlstrat model directory (no metadata.json); "
            "refusing to replace it",
            file=path,
            fix="choose a new path such as models/<name> or empty the directory",
        )


@contextlib.contextmanager
def write_model_dir(path: str | Path, metadata: dict[str, Any]) -> Iterator[Path]:
    """Build a model directory in a temporary sibling and move it to `path` atomically.

    Yields the temporary directory; the caller writes its files there.
    `metadata` must contain ``"predictor"`` (the registry name). It is read when
    the block exits cleanly, so the caller may still add entries (training
    history, metrics) inside the block. On clean exit `metadata.json` and
    `manifest.json` are written and the directory replaces `path` (an existing
    model directory there is swapped out and deleted). On an exception the
    temporary directory is removed and `path` is left as it was.
    """
    path = Path(path)
    if "predictor" not in metadata:
        raise ValueError("model metadata needs a 'predictor' entry (the registry name)")
    check_replaceable(path)
    with staged_dir(path) as tmp:
        yield tmp
        for reserved in (METADATA_FILE, MANIFEST_FILE):
            if (tmp / reserved).exists():
                raise ValueError(f"{reserved} is written by write_model_dir, not by the caller")
        meta = dict(metadata)
        meta["format_version"] = FORMAT_VERSION
        meta["created_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        meta["versions"] = versions(MODEL_VERSIONS)
        dump_json(tmp / METADATA_FILE, meta)
        dump_json(tmp / MANIFEST_FILE, build_manifest(tmp))
        check_replaceable(path)  # re-check: something may have appeared meanwhile


def swap_into_place(tmp: Path, path: Path) -> None:
    """Rename the finished directory `tmp` to `path` (a sibling), swapping out a model there."""
    check_replaceable(path)  # re-check: something may have appeared meanwhile
    replace_dir(tmp, path)


# --------------------------------------------------------------------------- reading


@dataclass
class VerifyReport:
    """What `verify_model_dir` checked: files verified and files the manifest does not list."""

    path: Path
    metadata: dict[str, Any]
    files_checked: list[str] = field(default_factory=list)
    extra_files: list[str] = field(default_factory=list)


def _safe_relpath(rel: str, manifest_path: Path) -> str:
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or rel in ("", "."):
        raise IntegrityError(
            f"manifest lists an unsafe path {rel!r}", file=manifest_path, fix=_RESTORE_FIX
        )
    return rel


def verify_model_dir(path: str | Path) -> VerifyReport:
    """Check format version and every manifest entry; return a report or raise IntegrityError.

    Files present but not listed in the manifest are tolerated (loaders never
    read them) and reported in `extra_files`.
    """
    path = Path(path)
    if not path.is_dir():
        raise ModelLoadError(
            "no model directory here",
            file=path,
            fix="pass the directory written by `mlstrat train` or Predictor.save()",
        )
    meta_path = path / METADATA_FILE
    manifest_path = path / MANIFEST_FILE
    for required in (meta_path, manifest_path):
        if not required.is_file():
            raise IntegrityError(
                f"{required.name} is missing from the model directory",
                file=required,
                fix=_RESTORE_FIX,
            )
    metadata = load_json(meta_path)
    manifest = load_json(manifest_path)
    if not isinstance(metadata, dict) or not isinstance(manifest, dict):
        raise IntegrityError("metadata/manifest is not a JSON object", file=path, fix=_RESTORE_FIX)
    _check_format_version(metadata.get("format_version"), meta_path)
    _check_format_version(manifest.get("format_version"), manifest_path)
    entries = manifest.get("files")
    if not isinstance(entries, dict):
        raise IntegrityError("manifest has no 'files' table", file=manifest_path, fix=_RESTORE_FIX)

    checked = []
    for rel, entry in sorted(entries.items()):
        if not isinstance(entry, dict):
            raise IntegrityError(
                f"manifest entry {rel!r} is not an object", file=manifest_path, fix=_RESTORE_FIX
            )
        rel = _safe_relpath(rel, manifest_path)
        target = path / rel
        if not target.is_file():
            raise IntegrityError(
                "file listed in the manifest is missing", file=target, fix=_RESTORE_FIX
            )
        size = target.stat().st_size
        if size != entry.get("size"):
            raise IntegrityError(
                f"size {size} bytes differs from the manifest's {entry.get('size')} "
                "(truncated or modified)",
                file=target,
                fix=_RESTORE_FIX,
            )
        if file_sha256(target) != entry.get("sha256"):
            raise IntegrityError(
                "sha256 differs from the manifest (file modified)", file=target, fix=_RESTORE_FIX
            )
        checked.append(rel)
    _check_model_file_listed(metadata, entries, meta_path)
    extra = [rel for rel in _member_files(path) if rel not in entries]
    return VerifyReport(path=path, metadata=metadata, files_checked=checked, extra_files=extra)


def _check_model_file_listed(metadata: dict[str, Any], entries: dict, meta_path: Path) -> None:
    """metadata's `model_file` (read by the adapters' loaders) must be a file the manifest lists."""
    model_file = metadata.get("model_file")
    if model_file is not None and (not isinstance(model_file, str) or model_file not in entries):
        raise IntegrityError(
            f"metadata names model_file {model_file!r}, which the manifest does not list",
            file=meta_path,
            fix=_RESTORE_FIX,
        )


def _check_format_version(version: Any, file: Path) -> None:
    if not isinstance(version, int) or isinstance(version, bool):
        raise IntegrityError(
            f"format_version is {version!r}, expected an integer", file=file, fix=_RESTORE_FIX
        )
    if version > FORMAT_VERSION:
        from mlstrat import __version__

        raise IntegrityError(
            f"written in model format {version}, but mlstrat {__version__} reads formats "
            f"up to {FORMAT_VERSION}",
            file=file,
            fix=f"upgrade mlstrat to a release that reads model format {version} "
            "(pip install -U mlstrat), or retrain with this version",
        )


def open_model_dir(path: str | Path, *, predictor: str | None = None) -> VerifyReport:
    """Verify a model directory (see `verify_model_dir`) and return the report.

    Loaders open only `files_checked`: a file the manifest does not list is never
    read. With `predictor` (a registry name), a directory saved by another
    predictor is a ModelLoadError pointing at `load_predictor`.
    """
    report = verify_model_dir(path)
    meta = report.metadata
    if predictor is not None and meta.get("predictor") != predictor:
        raise ModelLoadError(
            f"directory holds a {meta.get('predictor')!r} model, not {predictor!r}",
            file=Path(path),
            fix="load it with mlstrat.predictors.load_predictor(path)",
        )
    return report


def read_model_dir(path: str | Path, *, predictor: str | None = None) -> dict[str, Any]:
    """Verify a model directory (see `open_model_dir`) and return its metadata."""
    return open_model_dir(path, predictor=predictor).metadata


# --------------------------------------------------------------------------- fitted state


def fitted_metadata(predictor: Any, model_file: str) -> dict[str, Any]:
    """metadata.json entries every single-model adapter (XGBoost, Keras) writes.

    Reads the adapter's name, task, get_params(), feature_names,
    feature_means_, window, history_, validation_metrics_ and fit_info_.
    """
    return {
        "predictor": predictor.name,
        "task": predictor.task,
        "params": predictor.get_params(),
        "feature_names": predictor.feature_names,
        "feature_means": predictor.feature_means_,
        "window": predictor.window,
        "model_file": model_file,
        "training_history": predictor.history_,
        "validation_metrics": predictor.validation_metrics_,
        "training": predictor.fit_info_,
    }


def restore_fitted_metadata(predictor: Any, meta: Mapping[str, Any]) -> None:
    """Set feature_names, history_, validation_metrics_ and fit_info_ from `fitted_metadata`."""
    predictor.feature_names = list(meta["feature_names"])
    predictor.history_ = meta.get("training_history", {})
    predictor.validation_metrics_ = meta.get("validation_metrics", {})
    predictor.fit_info_ = meta.get("training", {})


def decode_feature_means(means: Mapping[str, Any]) -> dict[str, float]:
    """Stored feature means as floats; null (a NaN that `to_jsonable` wrote) is NaN again."""
    return {k: (np.nan if v is None else float(v)) for k, v in means.items()}


def training_data_info(X: Any, y: Any = None) -> dict[str, Any]:
    """Metadata describing a training set: period, rows, target, content hash, feed provenance.

    `data_sha256` hashes index, column names and values of X (and y), so two
    models can be checked for having seen identical data.
    """
    import pandas as pd

    info: dict[str, Any] = {"n_rows": len(X)}
    digest = hashlib.sha256()
    if isinstance(X, pd.DataFrame):
        digest.update(json.dumps([str(c) for c in X.columns]).encode())
        digest.update(pd.util.hash_pandas_object(X, index=True).to_numpy().tobytes())
        if isinstance(X.index, pd.DatetimeIndex) and len(X):
            info["train_start"] = X.index[0]
            info["train_end"] = X.index[-1]
        feed_meta = X.attrs.get("mlstrat")
        if isinstance(feed_meta, dict):
            for key in ("feature_set", "set_version", "symbol", "timeframe", "source_sha256"):
                if key in feed_meta:
                    info[key] = feed_meta[key]
    else:
        digest.update(np.ascontiguousarray(X).tobytes())
    if y is not None:
        if isinstance(y, pd.Series):
            info["target"] = None if y.name is None else str(y.name)
            digest.update(pd.util.hash_pandas_object(y, index=True).to_numpy().tobytes())
        else:
            digest.update(np.ascontiguousarray(y).tobytes())
    info["data_sha256"] = digest.hexdigest()
    return info


__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "METADATA_FILE",
    "VerifyReport",
    "build_manifest",
    "check_replaceable",
    "decode_feature_means",
    "dump_json",
    "file_sha256",
    "fitted_metadata",
    "load_json",
    "open_model_dir",
    "read_model_dir",
    "restore_fitted_metadata",
    "swap_into_place",
    "to_jsonable",
    "training_data_info",
    "verify_model_dir",
    "write_model_dir",
]
