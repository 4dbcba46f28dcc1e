"""Folders of per-symbol, per-window legacy models, selected by timestamp without look-ahead.

A set is a directory of model files (e.g. ``btceur_window_34.keras``) plus an
``index.json`` that maps each (symbol, window number) to the period its model
was trained on. For a bar at time t the set uses the model whose training
period ended most recently *before* t, so no model ever predicts a bar it
could have seen. Models load lazily and an LRU cache bounds how many stay in
memory.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ModelLoadError, SchemaError

INDEX_FILE = "index.json"
INDEX_FORMAT = "mlstrat-window-set/1"
_NAME = re.compile(r"^(?P<symbol>[A-Za-z0-9]+)_window_(?P<window>\d+)\.(?:keras|h5)$")


@dataclass(frozen=True)
class WindowEntry:
    """One model of a set: which symbol and window, its file and its training period (UTC)."""

    symbol: str
    window: int
    file: str
    train_start: pd.Timestamp
    train_end: pd.Timestamp

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["train_start"] = self.train_start.isoformat()
        d["train_end"] = self.train_end.isoformat()
        return d


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
    """Write ``index.json`` for a set (feature names and window length are shared by its models)."""
    path = Path(directory) / INDEX_FILE
    body = {
        "format": INDEX_FORMAT,
        "feature_names": list(feature_names),
        "window": window,
        "models": [e.to_json() for e in entries],
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2))
    tmp.replace(path)
    return path


class WindowModelSet:
    """Per-symbol, per-window models with look-ahead-free selection and a bounded LRU cache."""

    def __init__(self, directory: str | Path, *, cache_size: int = 8, architecture: Any = None):
        self.directory = Path(directory)
        index_path = self.directory / INDEX_FILE
        if not index_path.exists():
            raise ModelLoadError(
                "window model set has no index.json",
                file=self.directory,
                fix="create it with mlstrat.predictors.window_sets.write_index(...)",
            )
        body = json.loads(index_path.read_text())
        if body.get("format") != INDEX_FORMAT:
            raise SchemaError(
                f"unknown window-set index format {body.get('format')!r}",
                file=index_path,
                fix=f"rewrite the index with format {INDEX_FORMAT}",
            )
        self.feature_names: list[str] = list(body.get("feature_names") or [])
        self.window: int = int(body.get("window") or 1)
        self.cache_size = int(cache_size)
        self.architecture = architecture
        self.entries: dict[str, list[WindowEntry]] = {}
        for raw in body["models"]:
            entry = WindowEntry(
                raw["symbol"].upper(),
                int(raw["window"]),
                raw["file"],
                _utc(raw["train_start"]),
                _utc(raw["train_end"]),
            )
            self.entries.setdefault(entry.symbol, []).append(entry)
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
        """The loaded model (a LegacyLoad) for `file`, through the LRU cache."""
        from mlstrat.predictors.legacy import load_legacy_model

        if file in self._cache:
            self._cache.move_to_end(file)
            return self._cache[file]
        record = load_legacy_model(self.directory / file, architecture=self.architecture)
        self.loads += 1
        self._cache[file] = record
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return record

    @property
    def cached(self) -> list[str]:
        return list(self._cache)
