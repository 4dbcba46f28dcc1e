"""Folders of per-symbol, per-window legacy models, selected by timestamp without look-ahead.

A set is a directory of models (files such as ``btceur_window_34.keras``,
SavedModel folders, or model directories written by ``mlstrat models upgrade``)
plus an ``index.json`` that maps each (symbol, window number) to the period its
model was trained on and the sha256 of what will be loaded. For a bar at time t
the set uses the model whose training period ended most recently *before* t, so
no model ever predicts a bar it could have seen. Models load lazily (each
entry's path is checked to stay inside the set's folder and its hash verified
on every load) and an LRU cache bounds how many stay in memory.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import IntegrityError, ModelLoadError, SchemaError
from mlstrat.predictors.persistence import (
    MANIFEST_FILE,
    METADATA_FILE,
    build_manifest,
    file_sha256,
    load_json,
)

INDEX_FILE = "index.json"
#: Version 2 added a sha256 (and requires_trust) per entry; version 1 indexes must be rewritten.
INDEX_FORMAT = "mlstrat-window-set/2"
_NAME = re.compile(r"^(?P<symbol>[A-Za-z0-9]+)_window_(?P<window>\d+)(?:\.(?:keras|h5))?$")
_REINDEX_FIX = "rewrite the index with mlstrat.predictors.window_sets.write_index(...)"


@dataclass(frozen=True)
class WindowEntry:
    """One model of a set: symbol and window, its path in the set, training period (UTC), hash.

    `sha256` is of the file, of a model directory's manifest.json, or of a SavedModel
    folder's file listing (see `entry_sha256`); `write_index` fills it in.
    `requires_trust` holds "saved_model" when loading the entry runs a TensorFlow graph.
    """

    symbol: str
    window: int
    file: str
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    sha256: str = ""
    requires_trust: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["train_start"] = self.train_start.isoformat()
        d["train_end"] = self.train_end.isoformat()
        d["requires_trust"] = list(self.requires_trust)
        return d

    def label(self) -> str:
        """How errors name the entry: symbol, window and path."""
        return f"entry {self.symbol} window {self.window} ({self.file!r})"


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST_FILE).is_file() and (path / METADATA_FILE).is_file()


def entry_sha256(path: str | Path) -> str:
    """sha256 pinning what loading `path` reads.

    A file: its bytes. A model directory: its manifest.json (loading verifies every
    file against it). Any other folder (a SavedModel): the sorted list of every
    file's path, size and sha256, so an added, removed or changed file changes it.
    """
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    if _is_model_dir(path):
        return file_sha256(path / MANIFEST_FILE)
    listing = json.dumps(build_manifest(path)["files"], sort_keys=True).encode()
    return hashlib.sha256(listing).hexdigest()


def _requires_trust(path: Path) -> tuple[str, ...]:
    from mlstrat.predictors.legacy import SAVED_MODEL_TRUST, is_saved_model_dir

    if is_saved_model_dir(path):
        return (SAVED_MODEL_TRUST,)
    if _is_model_dir(path):
        meta = load_json(path / METADATA_FILE)
        return tuple(meta.get("requires_trust") or ()) if isinstance(meta, dict) else ()
    return ()


def resolve_entry(directory: str | Path, file: str, *, where: Any = None) -> Path:
    """The path of an index entry, refused (IntegrityError) unless it stays inside `directory`.

    Absolute paths and `..` are refused as written; the path is then resolved
    (symlinks followed) and must still lie inside the resolved folder.
    """
    directory = Path(directory)
    where = where if where is not None else directory / INDEX_FILE
    pure, windows = PurePosixPath(file), PureWindowsPath(file)
    if (
        not file
        or pure.is_absolute()
        or windows.is_absolute()
        or windows.drive
        or ".." in pure.parts
        or ".." in windows.parts
    ):
        raise IntegrityError(
            f"model path {file!r} is outside the set's folder (absolute or '..')",
            file=where,
            fix="list models by their path inside the set's folder, e.g. btc_window_3.keras",
        )
    target = directory / file
    if not target.resolve().is_relative_to(directory.resolve()):
        raise IntegrityError(
            f"model path {file!r} resolves outside the set's folder (symlink)",
            file=where,
            fix="copy the model into the set's folder instead of linking to it",
        )
    return target


def _utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def index_from_schedule(
    directory: str | Path, *, start: Any, train: str, step: str
) -> list[WindowEntry]:
    """Index for files named ``<symbol>_window_<n>``: window n trained on [start + n*step, +train)."""
    directory = Path(directory)
    entries = []
    for path in sorted(directory.iterdir()):
        match = _NAME.match(path.name)
        if not match:
            continue
        n = int(match["window"])
        begin = _utc(start) + n * pd.Timedelta(step)
        entries.append(
            WindowEntry(match["symbol"].upper(), n, path.name, begin, begin + pd.Timedelta(train))
        )
    return entries


def write_index(
    directory: str | Path,
    entries: Sequence[WindowEntry],
    *,
    feature_names: Sequence[str] = (),
    window: int | None = None,
) -> Path:
    """Write ``index.json`` for a set (feature names and window length are shared by its models).

    Each entry's sha256 and trust requirement are taken from the model as it is now on
    disk; an entry whose path leaves the folder is refused.
    """
    directory = Path(directory)
    path = directory / INDEX_FILE
    stamped = []
    for entry in entries:
        target = resolve_entry(directory, entry.file, where=path)
        if not target.exists():
            raise ModelLoadError(
                f"{entry.label()}: model not found", file=target, fix="check the entry's file"
            )
        stamped.append(
            replace(entry, sha256=entry_sha256(target), requires_trust=_requires_trust(target))
        )
    body = {
        "format": INDEX_FORMAT,
        "feature_names": list(feature_names),
        "window": window,
        "models": [e.to_json() for e in stamped],
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2))
    tmp.replace(path)
    return path


def _parse_entry(raw: Any, number: int, index_path: Path) -> WindowEntry:
    """One index.json model record as a WindowEntry (SchemaError naming the record if malformed)."""
    try:
        entry = WindowEntry(
            str(raw["symbol"]).upper(),
            int(raw["window"]),
            str(raw["file"]),
            _utc(raw["train_start"]),
            _utc(raw["train_end"]),
            str(raw.get("sha256") or ""),
            tuple(str(t) for t in raw.get("requires_trust") or ()),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SchemaError(
            f"model record {number} is malformed ({type(exc).__name__}: {exc})",
            file=index_path,
            fix="each record needs symbol, window, file, train_start, train_end, sha256",
        ) from exc
    if not re.fullmatch(r"[0-9a-f]{64}", entry.sha256):
        raise IntegrityError(
            f"{entry.label()} has no sha256, so it cannot be verified",
            file=index_path,
            fix=_REINDEX_FIX,
        )
    return entry


def _read_index(index_path: Path) -> dict[str, Any]:
    body = load_json(index_path)
    fmt = body.get("format") if isinstance(body, dict) else None
    if fmt != INDEX_FORMAT:
        raise SchemaError(
            f"window-set index format {fmt!r} is not {INDEX_FORMAT!r}"
            + (" (version 1 records no hashes)" if fmt == "mlstrat-window-set/1" else ""),
            file=index_path,
            fix=_REINDEX_FIX,
        )
    if not isinstance(body.get("models"), list):
        raise SchemaError("index has no 'models' list", file=index_path, fix=_REINDEX_FIX)
    return body


class WindowModelSet:
    """Per-symbol, per-window models with look-ahead-free selection and a bounded LRU cache.

    Entries that are SavedModels (or directories made from one) load only with
    `trust_saved_model=True`; without it the set is refused when it is opened.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        cache_size: int = 8,
        architecture: Any = None,
        trust_saved_model: bool = False,
    ):
        from mlstrat.predictors.legacy import SAVED_MODEL_TRUST, require_saved_model_trust

        self.directory = Path(directory)
        index_path = self.directory / INDEX_FILE
        if not index_path.exists():
            raise ModelLoadError(
                "window model set has no index.json",
                file=self.directory,
                fix="create it with mlstrat.predictors.window_sets.write_index(...)",
            )
        body = _read_index(index_path)
        self.feature_names: list[str] = list(body.get("feature_names") or [])
        self.window: int = int(body.get("window") or 1)
        self.cache_size = int(cache_size)
        self.architecture = architecture
        self.trust_saved_model = trust_saved_model
        self.entries: dict[str, list[WindowEntry]] = {}
        self._by_file: dict[str, WindowEntry] = {}
        for number, raw in enumerate(body["models"]):
            entry = _parse_entry(raw, number, index_path)
            resolve_entry(self.directory, entry.file, where=index_path)
            if SAVED_MODEL_TRUST in entry.requires_trust:
                require_saved_model_trust(self.directory / entry.file, trust_saved_model)
            self.entries.setdefault(entry.symbol, []).append(entry)
            self._by_file[entry.file] = entry
        for items in self.entries.values():
            items.sort(key=lambda e: e.train_end)
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self.loads = 0

    @property
    def symbols(self) -> list[str]:
        return sorted(self.entries)

    def _symbol_entries(self, symbol: str | None) -> list[WindowEntry]:
        if symbol is None and len(self.entries) == 1:
            symbol = next(iter(self.entries))
        key = (symbol or "").upper()
        if key not in self.entries:
            raise SchemaError(
                f"no models for symbol {symbol!r} in the set",
                file=self.directory,
                fix=f"use one of {self.symbols}",
            )
        return self.entries[key]

    def select(self, timestamp: Any, symbol: str | None = None) -> WindowEntry | None:
        """The model trained most recently before `timestamp` (None before the first one is ready)."""
        items = self._symbol_entries(symbol)
        ends = pd.DatetimeIndex([e.train_end for e in items])
        pos = ends.searchsorted(_utc(timestamp), side="left") - 1
        return items[pos] if pos >= 0 else None

    def assign(
        self, timestamps: pd.DatetimeIndex, rows: np.ndarray, symbol: str | None = None
    ) -> Iterator[tuple[str, np.ndarray]]:
        """Group row positions by the model file that must predict them (rows with no model skipped)."""
        items = self._symbol_entries(symbol)
        ends = pd.DatetimeIndex([e.train_end for e in items])
        stamps = pd.DatetimeIndex(timestamps)
        stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
        pos = ends.searchsorted(stamps, side="left") - 1
        rows = np.asarray(rows)
        for p in np.unique(pos[pos >= 0]):
            yield items[p].file, rows[pos == p]

    def get(self, file: str):
        """The loaded model (a LegacyLoad) for index entry `file`, through the LRU cache.

        A load first checks the entry's path and sha256 (IntegrityError naming the entry).
        """
        if file in self._cache:
            self._cache.move_to_end(file)
            return self._cache[file]
        entry = self._by_file.get(file)
        if entry is None:
            raise ModelLoadError(
                f"{file!r} is not a model of this set's index",
                file=self.directory / INDEX_FILE,
                fix=f"use one of the indexed files, e.g. {next(iter(self._by_file), '(none)')}",
            )
        record = self._load(entry)
        self.loads += 1
        self._cache[file] = record
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return record

    def _load(self, entry: WindowEntry):
        """Verify `entry` against its sha256, then load it (a file, SavedModel or model dir)."""
        from mlstrat.predictors.legacy import LegacyKerasPredictor, load_legacy_model

        path = resolve_entry(self.directory, entry.file)
        if not path.exists():
            raise ModelLoadError(
                f"{entry.label()}: model not found", file=path, fix="restore it or re-index"
            )
        if entry_sha256(path) != entry.sha256:
            raise IntegrityError(
                f"{entry.label()}: sha256 differs from index.json (model modified or replaced)",
                file=path,
                fix="restore the model from a backup, or re-index if you changed it on purpose",
            )
        if not _is_model_dir(path):
            return load_legacy_model(
                path, architecture=self.architecture, trust_saved_model=self.trust_saved_model
            )
        model = LegacyKerasPredictor.load(path, trust_saved_model=self.trust_saved_model)
        if model.scaler is not None:
            raise ModelLoadError(
                f"{entry.label()}: the model directory has its own scaler; a set's models share "
                "the scaler of the LegacyKerasPredictor that uses the set",
                file=path,
                fix="upgrade the window models without --scaler-json and set the predictor's "
                "scaler",
            )
        return model.load_record

    @property
    def cached(self) -> list[str]:
        return list(self._cache)
