"""Feature feeds: bars + causal features + forward targets in one table, and its Parquet form.

A feature feed is a DataFrame indexed like the bars whose columns are OHLCV, then
features, then targets, then the end times of event targets (`<target>_t1`, UTC
timestamps, NaT while undecided). `df.attrs["mlstrat"]` records each column's role
("ohlcv" | "feature" | "target" | "t1"), the feature set and version, the symbol, the
timeframe and the sha256 of the source data, so that targets can never be picked up
as model inputs (`feature_columns`) and a file can be traced to its data.

On disk it is Parquet with a `timestamp` column and the same record as JSON under
the schema metadata key `mlstrat`. Writing goes to a temporary file renamed into
place; reading refuses files without that record or with a set version this
installation does not know.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstrat import __version__
from mlstrat.data.timeframe import fixed_nanos
from mlstrat.errors import ConfigError, DataError, SchemaError
from mlstrat.features.catalogue import bars_timeframe
from mlstrat.features.indicators import minute_realized_volatility
from mlstrat.features.sets import KNOWN_VERSIONS, FeatureSet, get_feature_set, warmup_info
from mlstrat.features.targets import END_ROLE, Target, compute_targets_with_ends, parse_targets
from mlstrat.fileio import atomic_write

OHLCV = ("open", "high", "low", "close", "volume")
META_KEY = b"mlstrat"
FORMAT_VERSION = 1
MINUTE_RV_WINDOW = 24
MINUTE_FEATURES = ("rv_1m", f"rv_1m_{MINUTE_RV_WINDOW}")


def _check_bars(bars: pd.DataFrame, what: str = "bars") -> pd.DataFrame:
    """The parts of the Bars contract features depend on; returns the OHLCV columns as float64."""
    if not isinstance(bars, pd.DataFrame):
        raise SchemaError(f"{what} must be a pandas DataFrame, got {type(bars).__name__}")
    missing = [c for c in OHLCV if c not in bars.columns]
    if missing:
        raise SchemaError(
            f"{what} lack column(s) {', '.join(missing)}",
            column=missing[0],
            fix="load bars with mlstrat.data.load_bars (columns open, high, low, close, volume)",
        )
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise SchemaError(
            f"{what} need a time-zone aware DatetimeIndex",
            fix="load bars with mlstrat.data.load_bars (index 'timestamp' in UTC)",
        )
    if len(index) > 1 and not (index.is_monotonic_increasing and index.is_unique):
        raise SchemaError(
            f"{what} index is not strictly increasing",
            fix="load bars with mlstrat.data.load_bars, which sorts and checks duplicates",
        )
    out = bars.loc[:, list(OHLCV)].astype(float)
    out.index = index.tz_convert("UTC")
    out.index.name = "timestamp"
    out.attrs = dict(bars.attrs)
    return out


def source_sha256(bars: pd.DataFrame) -> str:
    """sha256 recorded by the loader (attrs["source_sha256"]), else of the timestamps + OHLCV bytes."""
    recorded = bars.attrs.get("source_sha256")
    if recorded:
        return str(recorded)
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(bars.index.as_unit("ns").asi8, dtype="<i8").tobytes())
    for col in OHLCV:
        digest.update(np.ascontiguousarray(bars[col].to_numpy(dtype=float), dtype="<f8").tobytes())
    return digest.hexdigest()


def _fixed(bars: pd.DataFrame, what: str) -> int:
    nanos = fixed_nanos(bars_timeframe(bars))
    if nanos is None:
        raise ConfigError(f"{what} must have a fixed-length timeframe (minutes, hours, days)")
    return nanos


def minute_volatility_features(bars: pd.DataFrame, minute_bars: pd.DataFrame) -> pd.DataFrame:
    """Realized volatility from 1-minute bars: per bar (`rv_1m`) and over 24 bars (`rv_1m_24`).

    `rv_1m` = sqrt(sum of squared 1m log returns inside the bar); `rv_1m_24` =
    sqrt(sum of rv_1m^2 over the last 24 bars). Bars not covered by the minute data are NaN.
    """
    minutes = _check_bars(minute_bars, "minute bars")
    bar_ns, minute_ns = _fixed(bars, "bars"), _fixed(minutes, "minute bars")
    bar_td, minute_td = pd.Timedelta(bar_ns, unit="ns"), pd.Timedelta(minute_ns, unit="ns")
    if minute_td >= bar_td:
        raise ConfigError(
            f"minute bars ({minute_td}) must be shorter than the bars ({bar_td})",
            fix="pass 1-minute data as minute_bars / --minute-data",
        )
    rv = minute_realized_volatility(minutes, bars.index, bar_td, minute_length=minute_td)
    if len(bars) and rv.isna().all():
        raise ConfigError(
            f"minute bars ({minutes.index.min()} .. {minutes.index.max()}) cover none of the "
            f"bars ({bars.index.min()} .. {bars.index.max()})",
            fix="pass minute data of the same symbol and period",
        )
    rolling = np.sqrt((rv**2).rolling(MINUTE_RV_WINDOW, min_periods=MINUTE_RV_WINDOW).sum())
    return pd.DataFrame({MINUTE_FEATURES[0]: rv, MINUTE_FEATURES[1]: rolling}, index=bars.index)


def build_feature_feed(
    bars: pd.DataFrame,
    feature_set: str | FeatureSet = "core",
    targets: Iterable[str | Target] | str = ("direction:1",),
    minute_bars: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """OHLCV + features of `feature_set` (+ rv_1m, rv_1m_24 if minute bars are given) + targets
    (+ the end time `<target>_t1` of every event target, role "t1")."""
    clean = _check_bars(bars)
    fs = feature_set if isinstance(feature_set, FeatureSet) else get_feature_set(feature_set)
    features = fs.build(clean)
    skipped = features.attrs.get("skipped_features")
    if minute_bars is not None:
        features = pd.concat([features, minute_volatility_features(clean, minute_bars)], axis=1)
    if isinstance(targets, (str, Target)):
        targets = (targets,)
    parsed = parse_targets(targets)
    target_frame, ends = compute_targets_with_ends(clean, parsed)
    clash = set(features.columns) & (set(target_frame.columns) | set(ends.columns))
    if clash:
        raise ConfigError(f"feature and target columns collide: {sorted(clash)}")
    bad = [c for c in features.columns if np.isinf(features[c].to_numpy()).any()]
    if bad:
        raise SchemaError(
            f"feature set {fs.name!r} produced infinite values",
            column=bad[0],
            fix="fix the builder",
        )
    out = pd.concat([clean, features, target_frame, ends], axis=1)
    roles = {c: "ohlcv" for c in OHLCV}
    roles.update({c: "feature" for c in features.columns})
    roles.update({c: "target" for c in target_frame.columns})
    roles.update({c: END_ROLE for c in ends.columns})
    tf = bars_timeframe(clean) if clean.attrs.get("timeframe") or len(clean) > 1 else None
    out.attrs = {
        "symbol": clean.attrs.get("symbol"),
        "timeframe": tf,
        "mlstrat": {
            "format": FORMAT_VERSION,
            "mlstrat_version": __version__,
            "feature_set": fs.name,
            "set_version": fs.version,
            "roles": roles,
            "targets": {t.name: t.spec for t in parsed},
            "source_sha256": source_sha256(clean),
            "symbol": clean.attrs.get("symbol"),
            "timeframe": tf,
            "warmup": warmup_info(features),
        },
    }
    if skipped:
        out.attrs["mlstrat"]["skipped_features"] = skipped
    quality = clean.attrs.get("quality")
    if quality:  # anomaly counts and policies from load_bars (mlstrat.data.quality)
        out.attrs["mlstrat"]["quality"] = quality
    return out


def cut_after_warmup(feed: pd.DataFrame, start: Any) -> pd.DataFrame:
    """Rows of `feed` from `start` (UTC if zone-less) on, features computed on all earlier bars.

    Build the feed on every bar of the file up to the run's end, then cut here, so
    the first rows of the run carry features warmed up on earlier history instead
    of NaN. (Cut at the end *before* building: targets at the last bars must not
    look past the end.) The metadata's "warmup" records `history_bars` (bars
    before `start` used as history), `lookback_bars` (bars the set needed before
    every column was defined, on the whole feed) and, for the rows kept,
    `warmup_bars` and `first_complete` (see `mlstrat.features.sets.warmup_info`).
    """
    meta = dict(feed.attrs.get("mlstrat") or {})
    first = pd.Timestamp(start)
    first = first.tz_localize("UTC") if first.tzinfo is None else first.tz_convert("UTC")
    kept = feed[feed.index >= first]
    whole = dict(meta.get("warmup") or warmup_info(feed[feature_columns(feed)]))
    info = warmup_info(kept[feature_columns(feed)])
    info["history_bars"] = int(len(feed) - len(kept))
    info["lookback_bars"] = int(whole["warmup_bars"])
    kept = kept.copy()
    kept.attrs = {**feed.attrs, "mlstrat": {**meta, "warmup": info}}
    return kept


def _meta(df: pd.DataFrame) -> dict[str, Any]:
    meta = df.attrs.get("mlstrat")
    if not isinstance(meta, dict) or "roles" not in meta:
        raise SchemaError(
            "frame carries no mlstrat column roles (df.attrs['mlstrat'])",
            fix="build it with build_feature_feed or read it with read_feature_feed",
        )
    return meta


def _columns_with_role(df: pd.DataFrame, role: str) -> list[str]:
    roles = _meta(df)["roles"]
    return [c for c in df.columns if roles.get(c) == role]


def feature_columns(df: pd.DataFrame) -> list[str]:
    """Columns whose role is "feature", in frame order (never OHLCV or targets)."""
    return _columns_with_role(df, "feature")


def target_columns(df: pd.DataFrame) -> list[str]:
    """Columns whose role is "target", in frame order."""
    return _columns_with_role(df, "target")


def end_columns(df: pd.DataFrame) -> list[str]:
    """Columns holding event targets' end times t1 (role "t1"), in frame order."""
    return _columns_with_role(df, END_ROLE)


def write_feature_feed(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a feature feed to Parquet (atomically) with its mlstrat metadata; returns the path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    meta = dict(_meta(df))
    roles = meta["roles"]
    unknown = [c for c in df.columns if c not in roles]
    if unknown:
        raise SchemaError(
            f"column(s) {unknown} have no role in df.attrs['mlstrat']['roles']",
            column=unknown[0],
            fix="give each added column a role ('feature' or 'target') before writing",
        )
    meta["roles"] = {c: roles[c] for c in df.columns}
    table = pa.Table.from_pandas(df.rename_axis("timestamp").reset_index(), preserve_index=False)
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[META_KEY] = json.dumps(meta).encode()
    table = table.replace_schema_metadata(schema_meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The checked mlstrat record of a feature-feed file (no data read)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataError("no such feature file", file=path, fix="check the path")
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise DataError(
            f"not a readable Parquet file ({type(exc).__name__}: {exc})",
            file=path,
            fix="rebuild it with `mlstrat features`",
        ) from None
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise SchemaError(
            "Parquet file has no mlstrat metadata (not a feature feed)",
            file=path,
            fix="build it with `mlstrat features` or write_feature_feed",
        )
    try:
        meta = json.loads(raw)
        name, version, roles = meta["feature_set"], meta["set_version"], meta["roles"]
    except (ValueError, KeyError, TypeError):
        raise SchemaError("mlstrat metadata is unreadable", file=path) from None
    if meta.get("format", 1) > FORMAT_VERSION:
        raise SchemaError(
            f"feature file format {meta.get('format')} is newer than this mlstrat "
            f"(reads format {FORMAT_VERSION})",
            file=path,
            fix="upgrade mlstrat",
        )
    known = KNOWN_VERSIONS.get(name)
    if not known or version not in known:
        raise SchemaError(
            f"feature set {name!r} version {version} is unknown to this mlstrat "
            f"(known versions: {list(known) if known else 'none'})",
            file=path,
            fix="rebuild the file with `mlstrat features` or upgrade mlstrat",
        )
    missing = [c for c in ("timestamp", *roles) if c not in schema.names]
    if missing:
        raise SchemaError(
            f"column(s) {missing} listed in the metadata are absent", file=path, column=missing[0]
        )
    meta["roles"] = {c: roles[c] for c in schema.names if c in roles}  # file column order
    return meta


def read_feature_feed(
    path: str | os.PathLike, columns: Iterable[str] | None = None
) -> pd.DataFrame:
    """Read a feature feed (OHLCV always, plus `columns` or every feature and target)."""
    import pyarrow.parquet as pq

    path = Path(path)
    meta = read_metadata(path)
    roles: dict[str, str] = meta["roles"]
    if columns is None:
        wanted = list(roles)
    else:
        requested = list(columns)
        absent = [c for c in requested if c not in roles]
        if absent:
            raise SchemaError(
                f"column(s) {absent} are not in this feature file",
                file=path,
                column=absent[0],
                fix=f"available: {', '.join(c for c in roles if roles[c] != 'ohlcv')}",
            )
        wanted = [*OHLCV, *(c for c in requested if c not in OHLCV)]
    try:
        table = pq.read_table(path, columns=["timestamp", *wanted])
    except Exception as exc:
        raise DataError(
            f"cannot read Parquet data ({type(exc).__name__}: {exc})", file=path
        ) from None
    df = table.to_pandas()
    df = df.set_index(pd.DatetimeIndex(df.pop("timestamp"), name="timestamp"))
    if df.index.tz is None:
        df.index = df.index.tz_localize("UTC")
    meta = {**meta, "roles": {c: roles[c] for c in df.columns}}
    df.attrs = {"symbol": meta.get("symbol"), "timeframe": meta.get("timeframe"), "mlstrat": meta}
    return df


def _symbol_of(bars: pd.DataFrame, fallback: str) -> str:
    symbol = bars.attrs.get("symbol")
    return str(symbol) if symbol else fallback


def load_source(source: str | os.PathLike | pd.DataFrame, **load_options: Any) -> pd.DataFrame:
    """Bars from a path (mlstrat.data.load_bars, recording the file's sha256) or a loaded frame."""
    if isinstance(source, pd.DataFrame):
        return source
    from mlstrat.data import file_sha256, load_bars

    bars = load_bars(source, **load_options)
    bars.attrs["source_sha256"] = file_sha256(source)
    bars.attrs["source_path"] = str(source)  # for error messages only, never written out
    return bars


def build_feature_feeds(
    sources: Iterable[str | os.PathLike | pd.DataFrame],
    feature_set: str | FeatureSet = "core",
    targets: Iterable[str | Target] | str = ("direction:1",),
    minute_bars: Mapping[str, pd.DataFrame] | None = None,
    *,
    progress: bool = True,
    load_options: Mapping[str, Any] | None = None,
) -> Iterator[tuple[str, pd.DataFrame]]:
    """Yield (symbol, feature feed) per source, with a progress bar; one symbol in memory at a time.

    `minute_bars` maps a symbol to its 1-minute bars; `load_options` are data options for
    `load_bars` (DataOptions). The symbol is bars.attrs["symbol"],
    else the file name up to its first '-' or '_' (or `series<i>` for frames).
    """
    from mlstrat.progress import progress_bar

    sources = list(sources)
    minute_bars = dict(minute_bars or {})
    seen: set[str] = set()
    for i, source in enumerate(
        progress_bar(sources, desc="features", unit="symbol", enabled=progress)
    ):
        bars = load_source(source, **(load_options or {}))
        if isinstance(source, pd.DataFrame):
            fallback = f"series{i}"
        else:
            fallback = Path(source).stem.replace("_", "-").split("-")[0] or f"series{i}"
        symbol = _symbol_of(bars, fallback)
        if symbol in seen:
            raise ConfigError(f"symbol {symbol!r} appears twice in the inputs")
        seen.add(symbol)
        yield symbol, build_feature_feed(bars, feature_set, targets, minute_bars.pop(symbol, None))
    if minute_bars:
        raise ConfigError(
            f"minute data for {sorted(minute_bars)} matches no input symbol",
            fix=f"input symbols: {sorted(seen)}",
        )
