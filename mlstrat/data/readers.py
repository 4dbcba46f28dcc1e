"""Read candle files in the formats quants meet, and turn them into validated Bars.

Formats (`fmt=`), detected from the extension and the first bytes when `fmt="auto"`:

- ``parquet``: a timestamp column (timestamp/date/datetime/time/open_time) or a DatetimeIndex.
- ``feather``: Arrow IPC, e.g. freqtrade's ``<PAIR>-<tf>.feather`` with a ``date`` column.
- ``json``: freqtrade JSON, a list of ``[ms, open, high, low, close, volume]`` rows
  (``.json.gz`` too).
- ``csv``: generic text table with a timestamp/date/datetime column, or separate
  ``Date`` and ``Time`` columns, plus OHLCV in any letter case; other columns ignored.
- ``binance``: Binance kline CSV, 12 unnamed columns; open time in milliseconds or
  microseconds (Binance switched spot files to microseconds in 2025), told apart per row
  by magnitude.
- ``cdd``: CryptoDataDownload CSV: URL banner line, newest row first, ``unix``/``date``/
  ``symbol`` columns and ``Volume <BASE>``/``Volume <QUOTE>``; the base-asset volume is used.
  Rows are put in time order (overlapping export formats interleave); the ``date`` text is
  checked against ``unix`` (`on_time_mismatch`).
- ``yahoo``: ``Date,Open,High,Low,Close,Adj Close,Volume``. By default Close is the traded
  close and Adj Close (back-adjusted for splits and dividends, rewritten at every
  download) is not used; `adjust=True` scales open/high/low/close by Adj Close / Close
  and volume by its inverse, so returns across splits and dividends are right. Dates are
  daily bars labelled UTC midnight unless `tz=` names their zone; the symbol is taken
  from the file name (orcl-1995-2014.txt gives ORCL) unless given.

Epoch timestamps are UTC by definition. Zone-less date strings need `tz=`.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import stat
import zlib
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstrat import fileio
from mlstrat.data.options import FORMATS, DataOptions, options_doc
from mlstrat.data.quality import QualityReport, kind_error
from mlstrat.data.validate import OHLCV, check_bars
from mlstrat.errors import ConfigError, DataError, Fix, OneOf, Setting, option_fix

_TEXT_FORMATS = ("csv", "binance", "cdd", "yahoo")
_EXTENSIONS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".parq": "parquet",
    ".feather": "feather",
    ".arrow": "feather",
    ".ipc": "feather",
    ".json": "json",
    ".csv": "text",
    ".txt": "text",
    ".tsv": "text",
}
_TIME_COLUMNS = ("timestamp", "datetime", "date_time", "date", "time", "open_time", "opentime")
_FMT = Setting("fmt", OneOf(FORMATS))  # "pass fmt= one of ...", in the caller's syntax


@dataclass
class RawTable:
    """A file's candles before validation: times, OHLCV columns, original row numbers."""

    times: pd.DatetimeIndex
    frame: pd.DataFrame
    rows: np.ndarray
    symbol: str | None = None
    default_zone: str | None = None
    time_column: str = "timestamp"
    fmt: str | None = None
    adj_close: pd.Series | None = None  # Yahoo's Adj Close, row-aligned with `frame`
    text_times: pd.DatetimeIndex | None = None  # a second, textual time column (CDD `date`)


def file_sha256(path: str | PathLike) -> str:
    """Hex sha256 of a data file (`mlstrat.fileio.file_sha256`); a missing file, directory,
    pipe or device is a DataError before anything is opened (see `regular_file`)."""
    return fileio.file_sha256(regular_file(path))


# ---------------------------------------------------------------- detection


def _sniff(path: Path) -> str:
    """Format implied by the file's first bytes: a FORMATS name, "empty" or "unknown"."""
    with open(path, "rb") as handle:
        head = handle.read(8192)
    if not head:
        return "empty"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith((b"ARROW1", b"FEA1")):
        return "feather"
    if head.startswith(b"\x1f\x8b"):
        return "json" if path.name.lower().endswith(".json.gz") else "unknown"
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        # A multi-byte character cut at the 8 KiB boundary is still text.
        try:
            text = head[:-4].decode("utf-8-sig")
        except UnicodeDecodeError:
            return "unknown"
    if "\x00" in text:
        return "unknown"
    return _sniff_text(text)


def _sniff_text(text: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        return "json"
    first = stripped.splitlines()[0] if stripped else ""
    lowered = first.lower()
    if lowered.startswith(("http", "www.")) or "cryptodatadownload" in lowered:
        return "cdd"
    fields = [f.strip() for f in first.split(_separator(first))]
    if len(fields) == 12 and all(_is_number(f) for f in fields):
        return "binance"
    names = {f.lower() for f in fields}
    if "adj close" in names and "date" in names:
        return "yahoo"
    return "csv"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _separator(line: str) -> str:
    counts = {sep: line.count(sep) for sep in (",", ";", "\t", "|")}
    return max(counts, key=counts.get) if max(counts.values()) else ","


def detect_format(path: str | PathLike) -> str:
    """Name of the reader for `path` (one of FORMATS), from extension and content.

    An extension that contradicts the content (Parquet bytes in a .csv file, text in a
    .parquet file) is a DataError naming the `fmt=` that would read it.
    """
    path = regular_file(path)
    content = _sniff(path)
    name = path.name.lower()
    expected = "json" if name.endswith(".json.gz") else _EXTENSIONS.get(path.suffix.lower())
    if content == "empty":
        raise DataError("file is empty (0 bytes)", file=path, fix="re-export or re-download it")
    if content == "unknown":
        if expected in ("parquet", "feather"):
            raise DataError(
                f"not a readable {expected.capitalize()} file (truncated or corrupt)",
                file=path,
                fix="re-create or re-download the file",
            )
        raise DataError(
            "unrecognised content: not Parquet, Feather, JSON or CSV text",
            file=path,
            fix=Fix("{} if it is one of these", _FMT),
        )
    if expected is None:
        return content
    kind = "text" if content in _TEXT_FORMATS else content
    if kind != expected:
        raise DataError(
            f"extension '{path.suffix}' does not match the content, which looks like {content}",
            file=path,
            fix=Fix("{} or rename the file", Setting("fmt", content)),
        )
    return content


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_kind(mode: int) -> str | None:
    """What a non-regular file is ("a directory", "a named pipe (FIFO)", ...); None if regular.

    Reading a pipe or a device such as /dev/zero never ends, so such paths are refused
    from their `os.stat` mode before anything opens them.
    """
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def regular_file(path: str | PathLike) -> Path:
    """`path` if it names an existing regular file (a symlink to one is followed); else DataError.

    Only `os.stat` is called: a directory, FIFO, socket or device is refused without being
    opened, so it can neither block nor be read without end.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(
            "file not found", file=path, fix="check the path and the working directory"
        ) from None
    except (OSError, ValueError) as exc:  # permission, symlink loop, NUL byte in the name
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DataError(
            f"cannot access the file ({reason})", file=path, fix="check the path and permissions"
        ) from None
    kind = file_kind(mode)
    if kind is not None:
        raise DataError(
            f"is {kind}, not a regular file",
            file=path,
            fix="pass the path of a candle file (Parquet, Feather, JSON or CSV)",
        )
    return path


# ---------------------------------------------------------------- symbols

_TIMEFRAME_TOKEN = re.compile(
    r"\d+(s|m|min|h|d|w|mo|ms|us)|[smhdw]|min|minute|hour|daily|day|week", re.IGNORECASE
)
_NOISE = {
    "binance",
    "binanceus",
    "coinbase",
    "kraken",
    "bitstamp",
    "bitfinex",
    "bybit",
    "okx",
    "kucoin",
    "gemini",
    "klines",
    "kline",
    "candles",
    "ohlcv",
    "spot",
    "futures",
    "mark",
    "data",
}


def symbol_from_filename(path: str | PathLike) -> str | None:
    """Trading pair named by a file, e.g. BTCUSDT-1h.parquet or ADA_USDT-1h.feather; else None.

    Only upper-case tokens count, so ordinary file names (orcl-1995-2014.txt) give None.
    """
    stem = Path(path).name
    for suffix in (".gz", ".parquet", ".feather", ".json", ".csv", ".txt", ".pq", ".arrow"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    tokens = [t for t in re.split(r"[-_\s.]+", stem) if t]
    kept = [
        t
        for t in tokens
        if not t.isdigit() and not _TIMEFRAME_TOKEN.fullmatch(t) and t.lower() not in _NOISE
    ]
    if len(kept) == 3 and kept[1] == kept[2]:  # freqtrade futures: BTC_USDT_USDT
        kept = kept[:2]
    if not 1 <= len(kept) <= 2:
        return None
    if not all(t.isalnum() and t.isupper() and len(t) >= 2 for t in kept):
        return None
    return "".join(kept)


_GENERIC_NAMES = _NOISE | {
    "prices",
    "price",
    "quotes",
    "history",
    "export",
    "download",
    "sample",
    "bars",
    "table",
    "file",
    "test",
}


def symbol_for(path: str | PathLike, fmt: str | None) -> str | None:
    """Symbol named by a file: a pair (`symbol_from_filename`), or for Yahoo and plain CSV
    files a ticker as the first word of the name (orcl-1995-2014.txt gives ORCL)."""
    symbol = symbol_from_filename(path)
    if symbol or fmt not in ("yahoo", "csv"):
        return symbol
    first = re.split(r"[-_\s.]+", Path(path).name)[0]
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,9}", first) and first.lower() not in _GENERIC_NAMES:
        return first.upper()
    return None


def _compact_symbol(text: object) -> str | None:
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return None
    compact = re.sub(r"[^A-Za-z0-9]", "", str(text).split(":")[0]).upper()
    return compact or None


# ---------------------------------------------------------------- timestamps


def epoch_to_utc(values: np.ndarray | pd.Series) -> pd.DatetimeIndex:
    """Epoch numbers to UTC times; the unit (s, ms, µs, ns) is chosen per value by magnitude."""
    raw = np.asarray(values)
    nat = np.iinfo("int64").min
    if raw.dtype.kind in "iu":
        nanos = raw.astype("int64") * _scale(raw)
    else:
        raw = raw.astype("float64")
        finite = np.isfinite(raw)
        safe = np.where(finite, raw, 0.0)
        if np.all(np.mod(safe, 1) == 0):
            ints = safe.astype("int64")
            nanos = ints * _scale(ints)
        else:  # fractional epochs (seconds with decimals): microsecond precision
            micros = np.round(safe * (_scale(safe) / 1000)).astype("int64")
            nanos = micros * 1000
        nanos = np.where(finite, nanos, nat)
    stamps = nanos.astype("int64").view("datetime64[ns]")
    return pd.DatetimeIndex(stamps).tz_localize("UTC")


def _scale(values: np.ndarray) -> np.ndarray:
    """Nanoseconds per unit for each epoch value: s below 1e11, ms below 1e14, µs below 1e17."""
    magnitude = np.abs(values)
    return np.select(
        [magnitude < 1e11, magnitude < 1e14, magnitude < 1e17], [10**9, 10**6, 10**3], 1
    ).astype("int64")


_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)\s*$")


def parse_times(values: pd.Series, *, file: Path, column: str) -> pd.DatetimeIndex:
    """Parse a timestamp column: epoch numbers (UTC) or date strings (ISO 8601 preferred)."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
        return epoch_to_utc(values.to_numpy(dtype="float64", na_value=np.nan))
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(
        values.dtype
    ):
        return pd.DatetimeIndex(values).as_unit("ns")
    text = values.astype("str").str.strip()
    try:
        return pd.DatetimeIndex(pd.to_datetime(text, format="ISO8601")).as_unit("ns")
    except ValueError as exc:
        if "Mixed timezones" in str(exc):
            has_zone = text.str.contains(_OFFSET).to_numpy()
            if not has_zone.all():
                row = int(np.flatnonzero(~has_zone)[0])
                raise DataError(
                    f"timestamp {_quoted_time(text.iloc[row])} has no UTC offset while others do",
                    file=file,
                    row=row,
                    column=column,
                    fix="write every timestamp with its offset, or all in UTC",
                ) from None
            return pd.DatetimeIndex(pd.to_datetime(text, format="ISO8601", utc=True)).as_unit("ns")
    try:
        return pd.DatetimeIndex(pd.to_datetime(text)).as_unit("ns")
    except (ValueError, TypeError, OverflowError):
        parsed = pd.to_datetime(text, errors="coerce", format="mixed")
        bad = np.flatnonzero(parsed.isna().to_numpy())
        row = int(bad[0]) if bad.size else 0
        raise DataError(
            f"cannot parse timestamp {_quoted_time(text.iloc[row])}",
            file=file,
            row=row,
            column=column,
            fix="use ISO 8601 timestamps such as 2024-01-31 13:00:00+00:00",
        ) from None


_DATE_LIKE = re.compile(r"[0-9 T:+\-./,Z]{1,40}")


def _quoted_time(value: str) -> str:
    """A bad timestamp cell for a message: quoted only when it is made of date characters.

    A file that is not candles can put anything in a "date" column; its words are not
    echoed, only their length.
    """
    if _DATE_LIKE.fullmatch(value):
        return repr(value)
    return f"(a {len(value)}-character value that is not a date)"


def _to_utc(raw: RawTable, tz: str | None, file: Path) -> pd.DatetimeIndex:
    times = raw.times
    if times.tz is not None:
        return times.tz_convert("UTC")
    zone = tz or raw.default_zone
    if zone is None:
        if len(times) and not times.isna().all():
            pos = int(np.flatnonzero(~np.asarray(times.isna()))[0])
            raise DataError(
                "timestamps have no time zone",
                file=file,
                row=int(raw.rows[pos]),
                timestamp=times[pos].isoformat(),
                column=raw.time_column,
                fix=option_fix(
                    "tz",
                    "UTC",
                    note=" (or the zone the times were recorded in, e.g. Europe/Berlin)",
                ),
            )
        return times
    try:
        local = times.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    except Exception as exc:  # unknown zone names raise several exception types
        raise ConfigError(
            f"unknown time zone {zone!r} ({exc})", fix=option_fix("tz", "UTC")
        ) from None
    lost = np.flatnonzero(np.asarray(local.isna()) & ~np.asarray(times.isna()))
    if lost.size:
        pos = int(lost[0])
        raise DataError(
            f"local time does not exist or is ambiguous in {zone} (clock change)",
            file=file,
            row=int(raw.rows[pos]),
            timestamp=times[pos].isoformat(),
            column="timestamp",
            fix=Fix("{} after storing the times in UTC", Setting("tz", "UTC")),
        )
    return local.tz_convert("UTC")


# ---------------------------------------------------------------- readers


def _find(columns: list[str], names: tuple[str, ...]) -> str | None:
    lower = {str(c).strip().lower(): c for c in columns}
    for name in names:
        if name in lower:
            return lower[name]
    return None


def _ohlcv(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns open..volume picked case-insensitively; absent ones are left out for validation."""
    lower = {str(c).strip().lower(): c for c in frame.columns}
    return pd.DataFrame({n: frame[lower[n]].reset_index(drop=True) for n in OHLCV if n in lower})


def _time_column(frame: pd.DataFrame, file: Path) -> tuple[pd.Series, str]:
    columns = list(frame.columns)
    date, time = _find(columns, ("date",)), _find(columns, ("time",))
    if date is not None and time is not None and _find(columns, ("timestamp", "datetime")) is None:
        joined = frame[date].astype("str").str.strip() + " " + frame[time].astype("str").str.strip()
        return joined.reset_index(drop=True), f"{date}+{time}"
    name = _find(columns, _TIME_COLUMNS)
    if name is None:
        raise DataError(
            "no timestamp column",
            file=file,
            column="timestamp",
            fix=f"name the time column one of {', '.join(_TIME_COLUMNS)} "
            f"(found {_describe_columns(columns)})",
        )
    return frame[name].reset_index(drop=True), str(name)


_KNOWN_COLUMNS = frozenset((*OHLCV, *_TIME_COLUMNS, "adj close", "symbol", "unix"))


def _describe_columns(columns: list) -> str:
    """The columns found, for a message: known header names spelled out, the rest only counted.

    The first line of a file that is not candles (a key file, a .env) becomes the
    "header"; its text must not end up in an error message or a log.
    """
    known = [str(c).strip() for c in columns if str(c).strip().lower() in _KNOWN_COLUMNS]
    others = len(columns) - len(known)
    text = f"{len(columns)} column{'s' if len(columns) != 1 else ''}"
    if known:
        text += ": " + ", ".join(known) + (f" and {others} other(s)" if others else "")
    return text


_QUOTED = re.compile(r"b?'[^']*'|b?\"[^\"]*\"")


def _safe_reason(exc: BaseException) -> str:
    """A parser's complaint without the file content it may quote.

    Quoted fragments (often bytes or a line of the file) become '…'; an undecodable
    byte is reported by its offset only.
    """
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text at byte offset {exc.start}"
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    return _QUOTED.sub("'…'", first)[:200]


def _table(frame: pd.DataFrame, file: Path, **kw) -> RawTable:
    times, column = _time_column(frame, file)
    parsed = parse_times(times, file=file, column=column)
    return RawTable(parsed, _ohlcv(frame), np.arange(len(frame)), time_column=column, **kw)


def _read_columnar(path: Path, fmt: str) -> RawTable:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if fmt == "parquet":
            names = pq.read_schema(path).names
        else:
            with pa.memory_map(str(path)) as source:
                names = pa.ipc.open_file(source).schema.names
        wanted = [n for n in names if n.strip().lower() in (*OHLCV, *_TIME_COLUMNS)]
        if fmt == "parquet":
            frame = pd.read_parquet(path, columns=wanted or None)
        else:
            frame = pd.read_feather(path, columns=wanted or None)
    except (pa.ArrowException, OSError, ValueError) as exc:
        kind = "Parquet" if fmt == "parquet" else "Feather"
        raise DataError(
            f"not a readable {kind} file (truncated or corrupt: {_safe_reason(exc)})",
            file=path,
            fix="re-create or re-download the file",
        ) from None
    if isinstance(frame.index, pd.DatetimeIndex):
        times = frame.index.as_unit("ns")
        return RawTable(times, _ohlcv(frame), np.arange(len(frame)))
    return _table(frame, path)


def _read_json(path: Path) -> RawTable:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, EOFError, zlib.error, ValueError) as exc:  # gzip, decoding, syntax
        raise DataError(
            f"not valid JSON ({_json_reason(exc)})",
            file=path,
            fix=Fix("re-export the file, or {verb} {}", _FMT),
        ) from None
    if not isinstance(data, list):
        raise DataError(
            "expected a JSON list of [time_ms, open, high, low, close, volume] rows",
            file=path,
            fix=Fix("use freqtrade's json candle format, or {verb} {}", _FMT),
        )
    for row, item in enumerate(data):
        if not isinstance(item, list) or len(item) < 6:
            raise DataError(
                "row is not a list of at least 6 values [time_ms, open, high, low, close, volume]",
                file=path,
                row=row,
                fix="repair or remove this row",
            )
    frame = pd.DataFrame([item[:6] for item in data], columns=["timestamp", *OHLCV])
    if len(frame) == 0:
        return RawTable(pd.DatetimeIndex([], tz="UTC"), frame[list(OHLCV)], np.arange(0))
    return _table(frame, path)


def _json_reason(exc: BaseException) -> str:
    """Why JSON could not be read, by position: json's own message can quote the document."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, (gzip.BadGzipFile, EOFError, zlib.error)):
        return "not a complete gzip stream"
    return _safe_reason(exc)


def _read_text(path: Path, *, skiprows: int = 0, header: int | None = 0) -> pd.DataFrame:
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        lines = [handle.readline() for _ in range(skiprows + 1)]
    sep = _separator(lines[-1])
    try:
        return pd.read_csv(
            path,
            sep=sep,
            skiprows=skiprows,
            header=header,
            skipinitialspace=True,
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError:
        raise DataError("file holds no table", file=path, fix="re-export the file") from None
    except (pd.errors.ParserError, ValueError, OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"cannot read as {sep!r}-separated text ({_safe_reason(exc)})",
            file=path,
            fix=Fix("check the file, or {verb} {}", _FMT),
        ) from None


def _read_csv(path: Path) -> RawTable:
    return _table(_read_text(path), path)


def _read_binance(path: Path) -> RawTable:
    frame = _read_text(path, header=None)
    if frame.shape[1] < 6:
        raise DataError(
            f"Binance kline rows have 12 columns, found {frame.shape[1]}",
            file=path,
            fix=Fix("{}", _FMT),
        )
    frame = frame.iloc[:, :6]
    frame.columns = ["timestamp", *OHLCV]
    return _table(frame, path)


def _read_cdd(path: Path) -> RawTable:
    frame = _read_text(path, skiprows=1)
    columns = list(frame.columns)
    symbol_col = _find(columns, ("symbol",))
    symbol = _compact_symbol(frame[symbol_col].iloc[0]) if symbol_col and len(frame) else None
    volumes = [c for c in columns if str(c).strip().lower().startswith("volume ")]
    base = _base_volume(volumes, symbol)
    renamed = frame.rename(columns={base: "volume"}) if base is not None else frame
    unix = _find(columns, ("unix", "unix timestamp", "timestamp"))
    date = _find(columns, ("date",))
    if unix is not None:
        renamed = renamed.rename(columns={unix: "timestamp"})
    table = _table(renamed, path, symbol=symbol, default_zone="UTC")
    if unix is not None and date is not None:
        table.text_times = _cdd_dates(frame[date])
    if len(table.times) > 1 and not table.times.is_monotonic_increasing:
        # CDD ships newest first, and where two export formats overlap the blocks
        # interleave: put rows in time order; duplicates are then resolved by file row.
        order = np.argsort(np.asarray(table.times.asi8), kind="stable")
        table.times = table.times[order]
        table.frame = table.frame.iloc[order].reset_index(drop=True)
        table.rows = table.rows[order]
        if table.text_times is not None:
            table.text_times = table.text_times[order]
    return table


def _cdd_dates(values: pd.Series) -> pd.DatetimeIndex:
    """CDD `date` text as UTC times (ISO, or the older "2020-01-01 12-AM"); NaT if neither."""
    text = values.astype("str").str.strip().reset_index(drop=True)
    iso = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    hours = pd.to_datetime(text, format="%Y-%m-%d %I-%p", errors="coerce", utc=True)
    return pd.DatetimeIndex(iso.fillna(hours)).as_unit("ns")


def _base_volume(volumes: list, symbol: str | None) -> object | None:
    """`Volume <BASE>` column: the one whose currency starts the pair, else the first listed."""
    if not volumes:
        return None
    currencies = {c: str(c).strip()[len("volume ") :].strip().upper() for c in volumes}
    if symbol:
        matches = [c for c, cur in currencies.items() if cur and symbol.startswith(cur)]
        if matches:
            return max(matches, key=lambda c: len(currencies[c]))
    return volumes[0]


def _read_yahoo(path: Path) -> RawTable:
    frame = _read_text(path)
    adjusted = [c for c in frame.columns if str(c).strip().lower() == "adj close"]
    table = _table(frame.drop(columns=adjusted), path, default_zone="UTC")
    if adjusted:
        table.adj_close = frame[adjusted[0]].reset_index(drop=True)
    return table


_READERS = {
    "parquet": lambda p: _read_columnar(p, "parquet"),
    "feather": lambda p: _read_columnar(p, "feather"),
    "json": _read_json,
    "csv": _read_csv,
    "binance": _read_binance,
    "cdd": _read_cdd,
    "yahoo": _read_yahoo,
}


def read_raw(path: str | PathLike, fmt: str = "auto") -> RawTable:
    """Read a file's candles without validating them (see `load_bars`)."""
    if fmt != "auto" and fmt not in FORMATS:
        raise ConfigError(
            f"unknown fmt={fmt!r}", fix=Fix("{}", Setting("fmt", OneOf(("auto", *FORMATS))))
        )
    path = regular_file(path)
    if fmt == "auto":
        fmt = detect_format(path)
    elif path.stat().st_size == 0:
        raise DataError("file is empty (0 bytes)", file=path, fix="re-export or re-download it")
    table = _READERS[fmt](path)
    table.fmt = fmt
    return table


def load_bars(path: str | PathLike, **options: Any) -> pd.DataFrame:
    """Read a candle file into validated Bars (UTC index `timestamp`, float64 OHLCV).

    `options` are the data options (`mlstrat.data.options.DataOptions`, listed below):
    how to read the file (fmt, tz, sort, adjust, symbol, timeframe, calendar) and what
    to do with each kind of suspect bar (the `on_*` policies). `symbol` defaults to the
    file's symbol column or name (BTCUSDT-1h.parquet, ADA_USDT-1h.feather,
    orcl-1995-2014.txt), `timeframe` to the modal bar spacing, `calendar` to the one
    the bars follow. Errors are DataError naming the file, the first offending data row
    (0-based, header and banner lines not counted), the column and the fix. The result
    carries attrs `symbol`, `timeframe`, `calendar` and `quality` (anomaly counts and
    the policies applied, see `mlstrat.data.quality`). Gaps are kept as they are; see
    `gap_report`.

    Options:
    """
    opts = DataOptions.from_kwargs(options)
    path = regular_file(path)
    raw = read_raw(path, opts.fmt)
    times = _to_utc(raw, opts.tz, path)
    report = QualityReport(opts.policies(), str(path))
    report.rows_read = len(raw.frame)
    frame = raw.frame.copy()
    frame.index = times
    frame, rows = _text_times(raw, frame, raw.rows, opts, report, path)
    frame = _adjusted(raw, frame, rows, opts, report, path)
    symbol = opts.symbol or raw.symbol or symbol_for(path, raw.fmt)
    return check_bars(
        frame,
        opts.replace(symbol=symbol),
        file=path,
        row_numbers=rows,
        quality=report,
        zone=opts.tz or raw.default_zone,
    )


load_bars.__doc__ = (load_bars.__doc__ or "") + options_doc() + "\n"


def _text_times(
    raw: RawTable,
    frame: pd.DataFrame,
    rows: np.ndarray,
    opts: DataOptions,
    report: QualityReport,
    path: Path,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows whose text date disagrees with their epoch time: policy `on_time_mismatch`."""
    if raw.text_times is None:
        return frame, rows
    text = raw.text_times
    mismatch = np.asarray(text.notna() & (text != frame.index))
    if not mismatch.any():
        return frame, rows
    positions = np.flatnonzero(mismatch)
    pos = int(positions[0])
    if opts.on_time_mismatch == "error":
        problem = (
            f"the date column says {text[pos].isoformat()} but the unix column says "
            f"{frame.index[pos].isoformat()}; {positions.size} "
            f"{'row disagrees' if positions.size == 1 else 'rows disagree'}"
        )
        stamp = frame.index[pos].isoformat()
        raise kind_error("time_mismatch", problem, str(path), int(rows[pos]), stamp, "date")
    stamps = [frame.index[int(p)].isoformat() for p in positions]
    report.record("time_mismatch", rows[positions], stamps)
    if opts.on_time_mismatch == "drop":
        return frame[~mismatch], rows[~mismatch]
    return frame, rows


def _adjusted(
    raw: RawTable,
    frame: pd.DataFrame,
    rows: np.ndarray,
    opts: DataOptions,
    report: QualityReport,
    path: Path,
) -> pd.DataFrame:
    """Prices scaled by Adj Close / Close (and volume by its inverse) when `adjust=True`."""
    if raw.adj_close is not None:
        report.notes["adjust"] = {"adj_close_column": True, "applied": bool(opts.adjust)}
    if not opts.adjust:
        return frame
    if raw.adj_close is None:
        raise ConfigError(
            "adjust=True needs an 'Adj Close' column (Yahoo files); this file has none",
            file=path,
            fix=option_fix("adjust", False),
        )
    positions = _positions(raw, rows)
    adj_text = raw.adj_close.to_numpy()[positions]
    adj = pd.to_numeric(pd.Series(adj_text), errors="coerce").to_numpy(dtype="float64")
    close = pd.to_numeric(frame["close"], errors="coerce").to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = adj / close
    usable = np.isfinite(close) & (close > 0)
    bad = np.flatnonzero(usable & ~(np.isfinite(ratio) & (ratio > 0)))
    if bad.size:
        pos = int(bad[0])
        raise DataError(
            "Adj Close is missing, zero or not a number, so the prices cannot be adjusted",
            file=path,
            row=int(rows[pos]),
            timestamp=frame.index[pos].isoformat(),
            column="Adj Close",
            fix=option_fix("adjust", False, note=", or repair this row"),
        )
    out = frame.copy()
    ok = np.isfinite(ratio)
    for name in ("open", "high", "low", "close"):
        numeric = pd.to_numeric(out[name], errors="coerce")
        out[name] = out[name].mask(ok, numeric * ratio)
    out["close"] = out["close"].mask(ok, adj)
    volume = pd.to_numeric(out["volume"], errors="coerce")
    out["volume"] = out["volume"].mask(ok, volume / ratio)
    return out


def _positions(raw: RawTable, rows: np.ndarray) -> np.ndarray:
    """Positions in the raw frame of the given file rows."""
    lookup = np.empty(int(raw.rows.max()) + 1 if len(raw.rows) else 0, dtype="int64")
    lookup[raw.rows] = np.arange(len(raw.rows))
    return lookup[rows]
