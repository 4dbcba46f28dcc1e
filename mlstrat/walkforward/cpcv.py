"""Combinatorial purged cross-validation (López de Prado, *Advances in Financial Machine
Learning*, ch. 12): many backtest paths instead of the one walk-forward gives.

The bars are cut into N contiguous groups of equal size (±1 bar). Each of the
C(N, k) ways to pick k test groups is one split (a `CPCVFold`, the same shape as a
walk-forward `Fold`, so the fold runner can train it): the model learns from the
other groups and predicts the k test groups. Each group is predicted by
C(N-1, k-1) splits, so the splits' predictions assemble into
φ = C(N, k)·k/N = C(N-1, k-1) complete backtest paths (`CPCVPath`): path j takes
each group from the j-th split (in split order) that tests it.

**Purge and embargo by label end time.** Row i's label spans [t_i, t1_i] (`t1`: the
timestamp of the bar the label is decided at; by default the bar `horizon` bars
later, clipped at the last bar). NaT, a row without a label (warm-up, not an event,
or not decided by the last bar, as `features.labels` marks them), spans only its
own bar: it has nothing to train on, and an undecided label lies in the last group,
whose window reaches the last bar anyway. A test group covers [its first bar, the latest t1 of its rows]; the
embargo extends that window by `embargo` bars or a duration. A training row is kept
only if its label window does not touch any of its split's test windows:
``t1_i < group start or t_i > window end``. This removes the rows before a test group
whose labels reach into it and the rows right after it whose features overlap the
test labels (and the embargo after them). Unlike walk-forward, training rows lie on
both sides of the test groups, and there is no validation tail (``validation`` is
empty): the folds are for out-of-sample paths, not for tuning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations
from math import comb
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError, DataError
from mlstrat.fileio import atomic_write, atomic_write_json, load_json
from mlstrat.walkforward.splits import Fold, Span, _as_index, _span_str, parse_span


@dataclass(frozen=True, eq=False)
class CPCVFold(Fold):
    """One CPCV split: train on the purged other groups, predict `test_groups`."""

    test_groups: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "test_groups": list(self.test_groups)}


@dataclass(frozen=True)
class PathSegment:
    """One group of a path and the split whose predictions fill it (bounds inclusive)."""

    group: int
    split: int
    start: pd.Timestamp
    end: pd.Timestamp
    rows: int


@dataclass(frozen=True)
class CPCVPath:
    """A complete out-of-sample path: every group once, in time order."""

    number: int
    segments: tuple[PathSegment, ...]

    @property
    def splits(self) -> tuple[int, ...]:
        """The split predicting each group, group by group."""
        return tuple(s.split for s in self.segments)


@dataclass(frozen=True)
class CombinatorialPurgedCV:
    """N groups, k test groups, purge by label end time, embargo after each test group.

    groups: N >= 2. test_groups: k, 1 <= k < N. horizon: label horizon in bars, the
    default label end (``t1 = index[i + horizon]``). embargo: bars (int) or a duration
    ("12h", "2D") added after each test group's last label end.
    """

    groups: int = 6
    test_groups: int = 2
    horizon: int = 1
    embargo: Span = 0
    _embargo: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, value, low in (("groups", self.groups, 2), ("test_groups", self.test_groups, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ConfigError(f"{name}={value!r} must be an integer >= {low}")
        if self.test_groups >= self.groups:
            raise ConfigError(
                f"test_groups={self.test_groups} must be smaller than groups={self.groups}",
                fix="e.g. groups=6, test_groups=2 (15 splits, 5 paths)",
            )
        if not isinstance(self.horizon, (int, np.integer)) or self.horizon < 1:
            raise ConfigError(
                f"horizon={self.horizon!r} must be an int >= 1 (label horizon in bars)"
            )
        object.__setattr__(self, "_embargo", parse_span(self.embargo, "embargo"))

    @property
    def n_splits(self) -> int:
        """C(N, k)."""
        return comb(self.groups, self.test_groups)

    @property
    def n_paths(self) -> int:
        """φ = C(N, k)·k/N = C(N-1, k-1)."""
        return comb(self.groups - 1, self.test_groups - 1)

    def describe(self) -> dict[str, Any]:
        """JSON-ready parameters and the split and path counts."""
        return {
            "scheme": "cpcv",
            "groups": int(self.groups),
            "test_groups": int(self.test_groups),
            "horizon": int(self.horizon),
            "embargo": _span_str(self._embargo),
            "n_splits": self.n_splits,
            "n_paths": self.n_paths,
        }

    # -- groups and label ends ---------------------------------------------
    def group_positions(self, index: Any) -> list[np.ndarray]:
        """Positions of each of the N contiguous groups (sizes differ by at most one)."""
        index = _as_index(index)
        if len(index) < self.groups:
            raise DataError(
                f"{len(index)} bars cannot be cut into {self.groups} groups",
                fix="use fewer groups or more bars",
            )
        return np.array_split(np.arange(len(index), dtype=np.int64), self.groups)

    def label_ends(self, index: Any, t1: Any = None) -> pd.DatetimeIndex:
        """Each row's label end: `t1` checked against the index, or `horizon` bars later."""
        index = _as_index(index)
        n = len(index)
        if t1 is None:
            return index[np.minimum(np.arange(n) + int(self.horizon), n - 1)]
        if isinstance(t1, pd.Series) and not t1.index.equals(index):
            raise DataError(
                "t1's index is not the bars' index",
                fix="pass t1 as a column of the same frame (labels['t1']) or a plain array",
            )
        not_times = DataError(
            "t1 must hold timestamps (each row's label end)",
            fix="pass a datetime array, e.g. labels['t1']",
        )
        if np.asarray(t1).dtype.kind in "biuf":  # numbers would pass as epoch nanoseconds
            raise not_times
        try:
            ends = pd.DatetimeIndex(np.asarray(t1) if not isinstance(t1, pd.Series) else t1)
        except (TypeError, ValueError) as exc:
            raise not_times from exc
        if len(ends) != n:
            raise DataError(
                f"t1 has {len(ends)} rows, the index {n}",
                fix="give one label end per row of the index",
            )
        if (ends.tz is None) != (index.tz is None):
            raise DataError(
                f"t1 is {'naive' if ends.tz is None else 'timezone-aware'} but the index is not",
                fix="give t1 in the index's time zone (UTC)",
            )
        early = np.flatnonzero(~ends.isna() & (ends < index))
        if len(early):
            row = int(early[0])
            raise DataError(
                f"label ends before its row starts (t1 {ends[row]})",
                row=row,
                timestamp=index[row],
                fix="t1 is the timestamp a label is decided at: at or after its own row",
            )
        return ends

    # -- splits and paths ----------------------------------------------------
    def split(self, index: Any, t1: Any = None) -> list[CPCVFold]:
        """The C(N, k) purged splits over `index` (a DatetimeIndex or a frame indexed by one)."""
        index = _as_index(index)
        groups = self.group_positions(index)
        ends = self.label_ends(index, t1)
        t = index.as_unit("ns").asi8
        t1_ns = np.where(ends.isna(), t, ends.as_unit("ns").asi8)
        windows = [self._test_window(index, t1_ns, g) for g in groups]
        folds = []
        for number, chosen in enumerate(combinations(range(self.groups), self.test_groups)):
            test = np.concatenate([groups[g] for g in chosen])
            blocked = np.zeros(len(index), dtype=bool)
            blocked[test] = True
            for g in chosen:
                start, end = windows[g]
                blocked |= (t <= end) & (t1_ns >= start)
            train = np.flatnonzero(~blocked).astype(np.int64)
            if not len(train):
                raise ConfigError(
                    f"split {number} (test groups {list(chosen)}): no training rows left "
                    "after purge and embargo",
                    fix="use more groups, fewer test groups, or a shorter horizon/embargo",
                )
            folds.append(_fold(index, number, train, test, chosen))
        return folds

    def paths(self, index: Any) -> list[CPCVPath]:
        """The φ backtest paths: path j takes each group from the j-th split testing it."""
        index = _as_index(index)
        groups = self.group_positions(index)
        testing: list[list[int]] = [[] for _ in groups]
        for number, chosen in enumerate(combinations(range(self.groups), self.test_groups)):
            for g in chosen:
                testing[g].append(number)
        return [
            CPCVPath(
                number=j,
                segments=tuple(
                    PathSegment(g, testing[g][j], index[pos[0]], index[pos[-1]], len(pos))
                    for g, pos in enumerate(groups)
                ),
            )
            for j in range(self.n_paths)
        ]

    def _test_window(
        self, index: pd.DatetimeIndex, t1_ns: np.ndarray, positions: np.ndarray
    ) -> tuple[int, int]:
        """[first bar, latest label end + embargo] of a test group, in int64 nanoseconds."""
        start = int(index.as_unit("ns").asi8[positions[0]])
        end = int(t1_ns[positions].max())
        embargo = self._embargo
        if isinstance(embargo, int):
            last = int(index.as_unit("ns").asi8.searchsorted(end, side="right")) - 1
            shifted = index[min(last + embargo, len(index) - 1)].as_unit("ns").value
            return start, max(end, int(shifted))
        return start, (pd.Timestamp(end, tz=index.tz) + embargo).as_unit("ns").value


def _fold(
    index: pd.DatetimeIndex,
    number: int,
    train: np.ndarray,
    test: np.ndarray,
    chosen: tuple[int, ...],
) -> CPCVFold:
    """A CPCVFold with the time bounds of its (possibly non-contiguous) rows."""
    return CPCVFold(
        number=number,
        train=train,
        validation=np.empty(0, dtype=np.int64),
        test=test,
        train_start=index[train[0]],
        train_end=index[train[-1]],
        validation_start=None,
        validation_end=None,
        test_start=index[test[0]],
        test_end=index[test[-1]],
        test_groups=tuple(int(g) for g in chosen),
    )


def assemble_path(path: CPCVPath, predictions: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """One path's prediction feed from the per-split prediction frames.

    predictions: split number → that split's prediction rows (a ``timestamp`` column,
    as the walk-forward prediction feed, or a DatetimeIndex). Each group's rows are
    taken from the split the path assigns to it; ``fold`` is set to that split and
    ``group`` and ``path`` are added. A split missing, or missing some of a group's
    rows, is a DataError.
    """
    parts = []
    for seg in path.segments:
        frame = predictions.get(seg.split)
        if frame is None:
            raise DataError(
                f"path {path.number} needs the predictions of split {seg.split} "
                f"for group {seg.group}, which are missing",
                fix="pass the prediction frame of every split the path uses",
            )
        if "timestamp" in frame.columns:
            stamps = pd.DatetimeIndex(frame["timestamp"])
            rows = frame.reset_index(drop=True)
        elif isinstance(frame.index, pd.DatetimeIndex):
            stamps = frame.index
            rows = frame.rename_axis("timestamp").reset_index()
        else:
            raise DataError(
                f"the predictions of split {seg.split} have no timestamps",
                column="timestamp",
                fix="give each prediction frame a 'timestamp' column or a DatetimeIndex",
            )
        try:
            inside = np.asarray((stamps >= seg.start) & (stamps <= seg.end))
        except TypeError as exc:
            raise DataError(
                f"the prediction timestamps of split {seg.split} cannot be compared with the "
                f"bars' ({exc})",
                column="timestamp",
                fix="give prediction timestamps in the bars' time zone (UTC)",
            ) from exc
        part = rows.loc[inside].sort_values("timestamp", kind="stable")
        if len(part) != seg.rows or part["timestamp"].duplicated().any():
            raise DataError(
                f"split {seg.split} has {len(part)} prediction rows ({part['timestamp'].nunique()} "
                f"distinct) for group {seg.group} ({seg.start} .. {seg.end}), "
                f"which has {seg.rows} bars",
                timestamp=seg.start,
                fix="predict every bar of each test group exactly once",
            )
        part = part.assign(fold=seg.split, group=seg.group, path=path.number)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


# -- a walk-forward directory's paths --------------------------------------------

#: Where a CPCV walk-forward keeps its assembled paths: ``OUT/paths/NNN.parquet`` (one
#: prediction feed per path) and ``OUT/paths.json`` (which split fills which group).
PATHS_DIR = "paths"
PATHS_FILE = "paths.json"


def path_file(out: str | Path, number: int) -> Path:
    """The prediction feed of path `number` in walk-forward directory `out`."""
    return Path(out) / PATHS_DIR / f"{number:03d}.parquet"


def write_paths(
    cv: CombinatorialPurgedCV, index: Any, predictions: Mapping[int, pd.DataFrame], out: Path
) -> pd.DataFrame:
    """Assemble every path from the splits' predictions, write ``OUT/paths/NNN.parquet`` and
    ``OUT/paths.json``, and return path 0: the prediction feed of the walk-forward (every bar
    exactly once, so the ordinary backtest trades it). Each row's ``fold`` is the split that
    predicted it; its group is in paths.json."""
    paths = cv.paths(index)
    folder = Path(out) / PATHS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for path in paths:
        # a prediction feed's columns become feed lines: `path` would shadow backtrader's own
        frame = assemble_path(path, predictions).drop(columns=["group", "path"])
        atomic_write(
            path_file(out, path.number), lambda tmp, f=frame: f.to_parquet(tmp, index=False)
        )
        frames.append(frame)
    for stale in folder.glob("*.parquet"):  # paths of an earlier run with more of them
        if stale.stem.isdigit() and int(stale.stem) >= len(paths):
            stale.unlink()
    atomic_write_json(
        Path(out) / PATHS_FILE,
        {**cv.describe(), "paths": [_path_record(p) for p in paths]},
    )
    return frames[0]


def _path_record(path: CPCVPath) -> dict[str, Any]:
    return {
        "path": path.number,
        "segments": [
            {
                "group": s.group,
                "split": s.split,
                "start": s.start.isoformat(),
                "end": s.end.isoformat(),
                "rows": s.rows,
            }
            for s in path.segments
        ],
    }


def path_numbers(out: str | Path) -> list[int] | None:
    """The path numbers a walk-forward directory holds (None: not a CPCV walk-forward)."""
    info_file = Path(out) / PATHS_FILE
    if not info_file.is_file():
        return None
    info = load_json(info_file, fix="rerun the walk-forward to rewrite it")
    numbers = [int(p["path"]) for p in info.get("paths", [])]
    for n in numbers:
        if not path_file(out, n).is_file():
            raise DataError(
                f"path {n} of the CPCV walk-forward is missing",
                file=path_file(out, n),
                fix="rerun the walk-forward to rewrite its paths",
            )
    return numbers
