"""The trial log of a run directory: everything backtested into it, so that the deflated
Sharpe ratio knows how many trials stand behind a result and how much their Sharpes varied.

    trials/index.json              {"format": "mlstrat-trials", "version": 1, "trials": [...]}
    trials/returns/<id>.parquet    timestamp, return: one trial's per-bar returns

A trial is one thing tried on the run's data: each traded predictor of each run into the
directory (kind ``run``), each combination of a sweep (``sweep``), each candidate a
hyperparameter search scores (``search``, recorded through `append_trials`). Its id names
what was tried (a backtest's cache key), so rerunning the same thing records nothing new,
and trials whose returns are bit-identical count once. The log only grows: a rerun with
other settings adds its trials, because they were tried too; a fresh ``--out`` starts a
fresh count. Only the process holding the run directory's lock writes the log (parallel
workers hand their trials to it).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.cache import content_hash
from mlstrat.errors import ConfigError, DataError, IntegrityError
from mlstrat.fileio import file_sha256, load_json, scratch_dir, to_jsonable
from mlstrat.report.stats import TrialSet, trial_sharpe
from mlstrat.rundir import RunDir

TRIALS_DIR = "trials"
INDEX_FILE = f"{TRIALS_DIR}/index.json"
RETURNS_DIR = f"{TRIALS_DIR}/returns"
FORMAT = "mlstrat-trials"
FORMAT_VERSION = 1
KINDS = ("run", "sweep", "search")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FIX = (
    "restore the file, or delete the run directory's trials/ folder to start a new count "
    "(the next run records its own backtests again)"
)


@dataclass(frozen=True)
class Trial:
    """One trial: what it was (`kind`, `label`, `settings`), its per-bar Sharpe and, when it
    has them, its per-bar returns (a Series on a UTC DatetimeIndex)."""

    id: str
    kind: str
    label: str
    sharpe: float
    settings: Mapping[str, Any] = field(default_factory=dict)
    returns: pd.Series | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            raise ConfigError(
                f"trial id {self.id!r} is not a plain name",
                fix="use letters, digits, '.', '_' and '-' (at most 64), e.g. a cache key",
            )
        if self.kind not in KINDS:
            raise ConfigError(
                f"trial {self.id}: kind {self.kind!r} is unknown", fix=f"one of {', '.join(KINDS)}"
            )
        if isinstance(self.sharpe, bool) or not isinstance(self.sharpe, (int, float)):
            raise DataError(f"trial {self.id}: Sharpe {self.sharpe!r} is not a number")
        if not math.isfinite(self.sharpe):
            raise DataError(
                f"trial {self.id}: Sharpe {self.sharpe!r} is not finite",
                fix="record 0 for a trial without variance (one that never traded)",
            )
        if self.returns is not None:
            _check_returns(self.id, self.returns)

    @classmethod
    def from_returns(
        cls,
        id: str,
        kind: str,
        label: str,
        returns: pd.Series,
        settings: Mapping[str, Any] | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Trial:
        """A trial whose Sharpe is that of its per-bar `returns` (0 when they never vary)."""
        _check_returns(id, returns)
        return cls(
            id,
            kind,
            label,
            trial_sharpe(returns),
            dict(settings or {}),
            returns,
            dict(detail or {}),
        )


def backtest_trial(
    id: str, kind: str, label: str, result: Any, settings: Mapping[str, Any] | None = None
) -> Trial:
    """The trial of one BacktestResult: the per-bar returns of its equity, its trade count."""
    from mlstrat.report.metrics import bar_returns, total_return

    detail = {"total_return": total_return(result.equity), "n_trades": len(result.trades)}
    return Trial.from_returns(id, kind, label, bar_returns(result.equity), settings, detail)


def _check_returns(trial_id: str, returns: Any) -> None:
    """Per-bar returns: a Series on a strictly increasing UTC DatetimeIndex, finite values."""
    what = f"trial {trial_id}: returns"
    if not isinstance(returns, pd.Series) or not isinstance(returns.index, pd.DatetimeIndex):
        raise DataError(
            f"{what} must be a pandas Series indexed by bar timestamps",
            fix="pass e.g. equity.pct_change().dropna()",
        )
    if returns.index.tz is None:
        raise DataError(f"{what} have timestamps without a time zone", fix="tz_localize('UTC')")
    if not returns.index.is_monotonic_increasing or returns.index.has_duplicates:
        raise DataError(f"{what} are not in strictly increasing time order", fix="sort_index()")
    values = returns.to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise DataError(
            f"{what} hold {len(bad)} non-finite value(s)",
            row=int(bad[0]),
            timestamp=returns.index[int(bad[0])],
            fix="fill bars without a position with 0",
        )


# ---------------------------------------------------------------------------- writing


def returns_file(trial_id: str) -> str:
    """Where a trial's per-bar returns live in the run directory."""
    return f"{RETURNS_DIR}/{trial_id}.parquet"


def _parquet_bytes(returns: pd.Series) -> bytes:
    frame = pd.DataFrame(
        {
            "timestamp": returns.index.tz_convert("UTC"),
            "return": returns.to_numpy(dtype=float),
        }
    )
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def append_trials(run: RunDir, trials: Iterable[Trial]) -> list[str]:
    """Record `trials` in the log of `run`; the ids they are recorded under, in order.

    A trial already in the log (same id), or one whose returns equal a logged trial's
    byte for byte, keeps the existing record and returns its id. The caller holds the run
    directory's lock.
    """
    entries = read_index(run.root)
    by_id = {e["id"]: e for e in entries}
    by_returns = {e["returns_sha256"]: e["id"] for e in entries if e.get("returns_sha256")}
    ids, new = [], {}
    for trial in trials:
        if trial.id in by_id:
            ids.append(trial.id)
            continue
        entry = _entry(trial)
        if trial.returns is not None:
            data = _parquet_bytes(trial.returns)
            digest = hashlib.sha256(data).hexdigest()
            if digest in by_returns:
                ids.append(by_returns[digest])
                continue
            new[trial.id] = data
            entry.update(returns=returns_file(trial.id), returns_sha256=digest)
            by_returns[digest] = trial.id
        entries.append(entry)
        by_id[trial.id] = entry
        ids.append(trial.id)
    _write_returns(run, new)
    run.write_json(INDEX_FILE, {"format": FORMAT, "version": FORMAT_VERSION, "trials": entries})
    return ids


def _write_returns(run: RunDir, new: Mapping[str, bytes]) -> None:
    """The new returns files installed with the logged ones as one folder: one update of the
    run directory's manifest however many trials a sweep adds (not two per file)."""
    if not new:
        return
    with scratch_dir(run.root / TRIALS_DIR) as tmp:
        for rel in run.files:
            if rel.startswith(RETURNS_DIR + "/"):
                if not (run.root / rel).is_file():
                    raise IntegrityError(
                        "a trial's returns file is missing", file=run.root / rel, fix=_FIX
                    )
                os.link(run.root / rel, tmp / rel.rsplit("/", 1)[1])
        for trial_id, data in new.items():
            (tmp / Path(returns_file(trial_id)).name).write_bytes(data)
        run.install(tmp, RETURNS_DIR)


def _entry(trial: Trial) -> dict[str, Any]:
    r = trial.returns
    return to_jsonable(
        {
            "id": trial.id,
            "kind": trial.kind,
            "label": trial.label,
            "sharpe": float(trial.sharpe),
            "settings": dict(trial.settings),
            "detail": dict(trial.detail),
            "bars": None if r is None else len(r),
            "start": None if r is None or not len(r) else r.index[0],
            "end": None if r is None or not len(r) else r.index[-1],
            "returns": None,
            "returns_sha256": None,
        },
        default=str,
    )


# ---------------------------------------------------------------------------- reading


def read_index(root: Path) -> list[dict[str, Any]]:
    """The log's entries (empty when the directory has none); a damaged index is an
    IntegrityError naming it."""
    path = Path(root) / INDEX_FILE
    if not path.is_file():
        return []
    data = load_json(path, fix=_FIX)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IntegrityError("not a trial log written by mlstrat", file=path, fix=_FIX)
    if int(data.get("version", 0)) > FORMAT_VERSION:
        raise IntegrityError(
            f"the trial log was written by a newer mlstrat (version {data['version']})",
            file=path,
            fix="upgrade mlstrat",
        )
    entries = data.get("trials")
    if not isinstance(entries, list) or not all(_valid_entry(e) for e in entries):
        raise IntegrityError("the trial log's entries are malformed", file=path, fix=_FIX)
    return entries


def _valid_entry(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("id"), str)
        and bool(_ID.fullmatch(entry["id"]))
        and entry.get("kind") in KINDS
        and isinstance(entry.get("sharpe"), (int, float))
        and (entry.get("returns") in (None, returns_file(entry["id"])))
    )


def load_trials(root: Path) -> TrialSet:
    """Every logged trial's Sharpe and returns (each file checked against its sha256)."""
    root = Path(root)
    entries = read_index(root)
    sharpes, returns, labels = {}, {}, {}
    for entry in entries:
        sharpes[entry["id"]] = float(entry["sharpe"])
        labels[entry["id"]] = str(entry.get("label") or entry["id"])
        if entry.get("returns"):
            returns[entry["id"]] = _read_returns(root / entry["returns"], entry["returns_sha256"])
    return TrialSet(sharpes, returns, labels, describe(entries))


#: How `describe` names the trials of each kind.
_KIND_WORDS = {"run": "run backtest", "sweep": "sweep trial", "search": "search trial"}


def describe(entries: list[dict[str, Any]]) -> str:
    """``the run directory's trial log: 7 trials (2 run backtests, 5 sweep trials)``."""
    counts = {k: sum(e["kind"] == k for e in entries) for k in KINDS}
    parts = [f"{n} {_KIND_WORDS[k]}{'s' * (n != 1)}" for k, n in counts.items() if n]
    total = f"{len(entries)} trial{'s' * (len(entries) != 1)}"
    return f"the run directory's trial log: {total}" + (f" ({', '.join(parts)})" if parts else "")


def _read_returns(path: Path, sha256: str) -> pd.Series:
    if not path.is_file():
        raise IntegrityError("a trial's returns file is missing", file=path, fix=_FIX)
    if file_sha256(path) != sha256:
        raise IntegrityError(
            "a trial's returns differ from the sha256 in the trial log", file=path, fix=_FIX
        )
    frame = pd.read_parquet(path)
    return pd.Series(
        frame["return"].to_numpy(float), index=pd.DatetimeIndex(frame["timestamp"]), name="return"
    )


def trials_digest(root: Path) -> str:
    """A short hash of what the log holds (a report built from it depends on it)."""
    return content_hash(
        [(e["id"], e["sharpe"], e.get("returns_sha256")) for e in read_index(Path(root))]
    )
