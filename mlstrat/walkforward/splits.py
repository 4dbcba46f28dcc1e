"""Walk-forward folds with purging and embargo, over a time index.

A fold is a training window that ends strictly before its test period, with a
validation tail (for early stopping and thresholds) cut from the end of the
training window. Two rules keep every label out of the future:

* **label rule** (always on): a kept sample at position ``i`` has its label
  horizon end before the boundary, ``i + horizon + embargo < p`` for a bar
  count embargo, ``index[i + horizon] < index[p] - embargo`` for a duration;
* **purge**: the last ``purge`` of history before the boundary is dropped as
  well (bars: ``i < p - purge``; duration: ``index[i] < index[p] - purge``).
  It defaults to the horizon in bars, so by default it coincides with the
  label rule; a longer purge adds room for labels of uncertain length.

Both rules apply at the test start and, again, at the start of the
validation tail, so no training label reaches into validation either.

**Labels with their own end** (event labels, `mlstrat.features.targets`): given
``ends`` (each row's label end position t1), the label rule reads each row's
own end instead of ``i + horizon``: a row is kept when ``t1_i + embargo < p``
(bars) or ``index[t1_i] < index[p] - embargo`` (duration), and ``purge``
defaults to 0. Rows in the middle of a window may then be dropped while later
ones stay (a long label before a short one); `Fold.train` / `Fold.validation`
list the kept positions, and models that read windows of rows take the
contiguous span `Fold.train_span` / `validation_span` with the dropped rows'
labels blanked. Rows whose end is unknown (NaN) fall back to ``i + horizon``.

Window lengths are bar counts (int), durations (``"120D"``, ``"12h"``,
``pd.Timedelta``) or calendar months (``"4mo"``). Test periods never overlap:
each ends where the next fold's begins; with ``step == test`` (the default)
they tile the whole range after the first training window.

Folds depend only on the index up to their test start, never on later bars,
so the same schedule can be followed online bar by bar (see ``online.py``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError, DataError
from mlstrat.sections import as_float, setting

Span = int | str | pd.Timedelta | pd.DateOffset
_MONTHS = re.compile(r"^\s*(\d+)\s*(mo|mon|month|months)\s*$", re.IGNORECASE)


def parse_span(value: Any, name: str) -> int | pd.Timedelta | pd.DateOffset:
    """A window length as bars (int), a Timedelta, or a calendar-month DateOffset."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} is not a length", fix="give bars (int) or '120D'")
    if isinstance(value, (int, np.integer)):
        if value < 0:
            raise ConfigError(f"{name}={value} is negative", fix="give a length >= 0")
        return int(value)
    if isinstance(value, pd.DateOffset):
        return value
    if isinstance(value, pd.Timedelta):
        td = value
    elif isinstance(value, str):
        months = _MONTHS.match(value)
        if months:
            return pd.DateOffset(months=int(months.group(1)))
        if value.strip().lstrip("-").isdigit():
            return parse_span(int(value), name)
        try:
            td = pd.Timedelta(value)
        except ValueError as exc:
            raise ConfigError(
                f"{name}={value!r} is neither a bar count nor a duration",
                fix="use an int (bars), a duration like '120D' or '12h', or months like '4mo'",
            ) from exc
    else:
        raise ConfigError(f"{name}={value!r} has an unsupported type {type(value).__name__}")
    if td < pd.Timedelta(0):
        raise ConfigError(f"{name}={value!r} is negative", fix="give a length >= 0")
    return td


def _span_str(span: int | pd.Timedelta | pd.DateOffset) -> str | int:
    if isinstance(span, int):
        return span
    if isinstance(span, pd.DateOffset):
        return f"{span.months}mo"
    seconds = span.total_seconds()
    if seconds == 0:
        return "0h"
    if seconds != int(seconds):
        return str(span)
    for unit, size in (("D", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{int(seconds) // size}{unit}"
    return f"{int(seconds)}s"


@dataclass(frozen=True, eq=False)
class Fold:
    """One walk-forward fold: integer positions into the index and their time bounds.

    Ends are inclusive (the last bar's timestamp). ``validation`` may be empty,
    in which case its bounds are None.
    """

    number: int
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    validation_start: pd.Timestamp | None
    validation_end: pd.Timestamp | None
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    @property
    def fit_rows(self) -> np.ndarray:
        """Every position the fold may learn from (train then validation)."""
        return np.concatenate([self.train, self.validation])

    @property
    def train_span(self) -> np.ndarray:
        """Every position from the first to the last training row (purged rows included)."""
        return _span(self.train)

    @property
    def validation_span(self) -> np.ndarray:
        """Every position from the first to the last validation row (purged rows included)."""
        return _span(self.validation)

    def to_dict(self) -> dict[str, Any]:
        def iso(ts: pd.Timestamp | None) -> str | None:
            return None if ts is None else ts.isoformat()

        return {
            "fold": self.number,
            "train_start": iso(self.train_start),
            "train_end": iso(self.train_end),
            "validation_start": iso(self.validation_start),
            "validation_end": iso(self.validation_end),
            "test_start": iso(self.test_start),
            "test_end": iso(self.test_end),
            "n_train": int(len(self.train)),
            "n_validation": int(len(self.validation)),
            "n_test": int(len(self.test)),
        }


def _as_index(index: Any) -> pd.DatetimeIndex:
    if isinstance(index, pd.DataFrame | pd.Series):
        index = index.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(
            f"walk-forward needs a DatetimeIndex, got {type(index).__name__}",
            fix="pass the feature frame or its timestamp index",
        )
    if not index.is_monotonic_increasing or not index.is_unique:
        bad = int(np.argmax(np.diff(index.asi8) <= 0)) + 1 if len(index) > 1 else 0
        raise DataError(
            "timestamps must be strictly increasing and unique",
            row=bad,
            timestamp=index[bad] if len(index) else None,
            fix="sort the bars and drop duplicates (load_bars(..., on_duplicate='keep_last'))",
        )
    return index


def span_value(value: Any) -> int | str:
    """A window length as a configuration holds it: bars (int) or a duration/month string."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(
            f"expected bars (int) or a duration such as '120D' or '4mo', got {value!r}"
        )
    parse_span(value, "value")
    return value


def names_value(value: Any) -> tuple[str, ...]:
    """A list of names (predictor entries) as a configuration holds it."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"expected a list of names, got {value!r}", fix="e.g. [xgboost]")
    names = tuple(str(v).strip() for v in value)
    if not all(names) or len(set(names)) < len(names):
        raise ConfigError(f"{list(value)!r} holds an empty or repeated name")
    return names


def validation_value(value: Any) -> float | int | str:
    """A validation tail as a configuration holds it: a fraction in [0, 1), bars or a duration."""
    if isinstance(value, float):
        return as_float(value, 0.0, 0.999999)
    return span_value(value)


#: Fold schemes: a rolling or expanding walk-forward, or combinatorial purged CV (`cpcv.py`).
SCHEMES = ("rolling", "expanding", "cpcv")
#: CPCV's groups N and test groups k when the configuration gives none: 15 splits, 5 paths.
CPCV_DEFAULTS = {"groups": 6, "test_groups": 2}

#: Train and test lengths of the schedule `mlstrat run` uses when a configuration gives
#: none: four-month training windows and two-month test periods (`WalkForward()` keeps
#: 120 and 60 days).
RUN_SCHEDULE = {"train": "4mo", "test": "2mo"}


@dataclass(frozen=True)
class WalkForward:
    """Rolling (or expanding) walk-forward schedule with purge, embargo and validation tail,
    or combinatorial purged cross-validation (``scheme="cpcv"``).

    train: training window length (bars or duration); also the history needed
        before the first test period unless ``min_train`` is given.
    test: test period length. step: distance between test starts (default
        ``test``); ``step < test`` is refused since test periods would overlap.
    purge: history dropped before each boundary (default: ``horizon`` bars).
    embargo: extra gap between the last label's end and the boundary.
    expanding: train from the first bar instead of a rolling window.
    min_train: history before the first test period (default ``train``); with
        a rolling window shorter than ``train`` the early folds grow until full.
    validation: tail of each training window held out (fraction in [0, 1),
        bars, or duration). horizon: label horizon in bars (``direction_3`` → 3).
    scheme: "rolling", "expanding" (the same as ``expanding=True``) or "cpcv":
        `split` then returns the C(groups, test_groups) purged splits of
        `CombinatorialPurgedCV` (embargo applies; train, test, step, purge, min_train and
        validation do not), predicting every bar several times (see `cpcv.py`).

    The fields but `horizon` are the ``walkforward`` section of a run configuration
    (see `mlstrat.sections`); the run sets the horizon from each predictor's target.
    """

    train: Span = setting("120D", "training window", kind=span_value)
    test: Span = setting("60D", "test period per fold", kind=span_value)
    step: Span | None = setting(
        None, "distance between test starts (default: test)", kind=span_value
    )
    purge: Span | None = setting(
        None, "history dropped before each boundary (default: the horizon)", kind=span_value
    )
    embargo: Span = setting("0h", "extra gap after the last label", kind=span_value)
    expanding: bool = setting(False, "train from the first bar", kind=bool)
    min_train: Span | None = setting(
        None, "history before the first test period (default: train)", kind=span_value
    )
    validation: float | Span = setting(
        0.2, "validation tail: fraction, bars or duration", kind=validation_value
    )
    scheme: str = setting(
        "rolling", "fold scheme: rolling, expanding or cpcv (combinatorial purged CV)",
        choices=SCHEMES,
    )  # fmt: skip
    groups: int | None = setting(
        None, f"cpcv: number of groups N (default {CPCV_DEFAULTS['groups']})", kind=int, minimum=2
    )
    test_groups: int | None = setting(
        None,
        f"cpcv: test groups per split k (default {CPCV_DEFAULTS['test_groups']})",
        kind=int,
        minimum=1,
    )
    cpcv_predictors: tuple[str, ...] = setting(
        None,
        "predictors that also get a CPCV walk-forward whose paths are backtested",
        kind=names_value,
        factory=tuple,
    )
    horizon: int = 1
    _spans: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._settle_scheme()
        if not isinstance(self.horizon, (int, np.integer)) or self.horizon < 1:
            raise ConfigError(
                f"horizon={self.horizon!r} must be an int >= 1 (label horizon in bars)"
            )
        spans = {
            "train": parse_span(self.train, "train"),
            "test": parse_span(self.test, "test"),
            "embargo": parse_span(self.embargo, "embargo"),
        }
        spans["step"] = spans["test"] if self.step is None else parse_span(self.step, "step")
        spans["purge"] = (
            int(self.horizon) if self.purge is None else parse_span(self.purge, "purge")
        )
        spans["min_train"] = (
            spans["train"] if self.min_train is None else parse_span(self.min_train, "min_train")
        )
        if isinstance(self.validation, float):
            if not 0.0 <= self.validation < 1.0:
                raise ConfigError(
                    f"validation={self.validation} must be a fraction in [0, 1)",
                    fix="e.g. validation=0.2 holds out the last 20% of each training window",
                )
            spans["validation"] = float(self.validation)
        else:
            spans["validation"] = parse_span(self.validation, "validation")
        for name in ("train", "test", "step"):
            if _is_zero(spans[name]):
                raise ConfigError(f"{name} must be longer than zero")
        step, test = spans["step"], spans["test"]
        if type(step) is type(test) and not isinstance(step, pd.DateOffset) and step < test:
            raise ConfigError(
                f"step={_span_str(step)} is shorter than test={_span_str(test)}: "
                "test periods would overlap",
                fix="use step >= test (step defaults to test)",
            )
        object.__setattr__(self, "_spans", spans)
        if self.scheme == "cpcv":
            self.cpcv()  # its own checks (k < N, embargo)

    def _settle_scheme(self) -> None:
        """``expanding`` and ``scheme`` agree; cpcv's keys appear only with scheme cpcv."""
        if self.scheme not in SCHEMES:
            raise ConfigError(
                f"scheme={self.scheme!r} is unknown", param="scheme", fix=f"use one of {SCHEMES}"
            )
        if self.scheme == "expanding" or (self.expanding and self.scheme == "rolling"):
            object.__setattr__(self, "scheme", "expanding")
            object.__setattr__(self, "expanding", True)
        if self.scheme == "cpcv" and self.cpcv_predictors:
            raise ConfigError(
                "cpcv_predictors adds CPCV paths beside a walk-forward; scheme cpcv gives "
                "every predictor its paths already",
                param="cpcv_predictors",
                fix="drop cpcv_predictors, or use scheme: rolling",
            )
        if self.scheme == "cpcv" and self.expanding:
            raise ConfigError(
                "expanding applies to walk-forward schemes, not cpcv",
                param="expanding",
                fix="drop expanding, or use scheme: expanding",
            )
        for name in CPCV_DEFAULTS:
            unused = self.scheme != "cpcv" and not self.cpcv_predictors
            if getattr(self, name) is not None and unused:
                raise ConfigError(
                    f"{name} is a cpcv setting but scheme is {self.scheme}",
                    param=name,
                    fix=f"set scheme: cpcv (or cpcv_predictors), or drop {name}",
                )

    def cpcv(self) -> Any:
        """The `CombinatorialPurgedCV` of a cpcv scheme (groups, test groups, horizon, embargo)."""
        from mlstrat.walkforward.cpcv import CombinatorialPurgedCV

        if self.scheme != "cpcv" and not self.cpcv_predictors:
            raise ConfigError(f"scheme {self.scheme} is not cpcv", param="scheme")
        groups = CPCV_DEFAULTS["groups"] if self.groups is None else self.groups
        tests = CPCV_DEFAULTS["test_groups"] if self.test_groups is None else self.test_groups
        try:
            return CombinatorialPurgedCV(
                groups=groups, test_groups=tests, horizon=int(self.horizon), embargo=self.embargo
            )
        except ConfigError as exc:
            raise ConfigError(exc.problem, param="test_groups", fix=exc.fix) from None

    def cpcv_schedule(self) -> WalkForward:
        """This configuration as a cpcv scheme (for the `cpcv_predictors`' extra walk-forward)."""
        return dataclasses.replace(self, scheme="cpcv", expanding=False, cpcv_predictors=())

    def _forward_only(self, what: str) -> None:
        """Refuse `what` (a bar-by-bar schedule) for cpcv, whose splits train on later bars."""
        if self.scheme == "cpcv":
            raise ConfigError(
                f"{what} needs a walk-forward scheme; cpcv trains on bars after its test groups",
                param="scheme",
                fix="use scheme: rolling or expanding",
            )

    def describe(self) -> dict[str, Any]:
        """JSON-ready parameters (resolved defaults included)."""
        if self.scheme == "cpcv":
            return self.cpcv().describe()
        s = self._spans
        return {
            "train": _span_str(s["train"]),
            "test": _span_str(s["test"]),
            "step": _span_str(s["step"]),
            "purge": _span_str(s["purge"]),
            "embargo": _span_str(s["embargo"]),
            "expanding": self.expanding,
            "min_train": _span_str(s["min_train"]),
            "validation": s["validation"]
            if isinstance(s["validation"], float)
            else _span_str(s["validation"]),
            "horizon": int(self.horizon),
        }

    # -- schedule ---------------------------------------------------------
    def test_starts(self, index: pd.DatetimeIndex) -> np.ndarray:
        """Positions where test periods begin (each uses the index up to itself only)."""
        self._forward_only("a test-start schedule")
        index = _as_index(index)
        n = len(index)
        if n == 0:
            return np.empty(0, dtype=np.int64)
        s = self._spans
        first = s["min_train"]
        p0 = first if isinstance(first, int) else _first_at_or_after(index, index[0] + first)
        if p0 >= n:
            return np.empty(0, dtype=np.int64)
        step = s["step"]
        if isinstance(step, int):
            return np.arange(p0, n, step, dtype=np.int64)
        starts = [p0]
        t0 = index[p0]
        k = 1
        while True:
            nominal = t0 + step * k
            if nominal > index[-1]:
                break
            p = _first_at_or_after(index, nominal)
            if p > starts[-1]:
                starts.append(p)
            k += 1
        return np.asarray(starts, dtype=np.int64)

    def folds(self, index: Any, ends: np.ndarray | None = None) -> Iterator[Fold]:
        """Yield the folds over `index` (a DatetimeIndex or a frame indexed by one); `ends`:
        each row's label end position, to purge by it (see the module docstring). With
        scheme cpcv: the combinatorial purged splits (`CPCVFold`), purged by those ends."""
        index = _as_index(index)
        n = len(index)
        ends = _check_ends(ends, n)
        if self.scheme == "cpcv":
            yield from self.cpcv().split(index, end_times(index, ends))
            return
        starts = self.test_starts(index)
        for k, p in enumerate(starts):
            nxt = int(starts[k + 1]) if k + 1 < len(starts) else n
            end = min(self._test_end(index, int(p)), nxt)
            yield self.fold_at(index, int(p), number=k, test_stop=end, ends=ends)

    def split(self, index: Any, ends: np.ndarray | None = None) -> list[Fold]:
        return list(self.folds(index, ends))

    def schedule(self) -> Schedule:
        """A bar-by-bar tracker of test starts, for use inside a running backtest."""
        self._forward_only("online retraining")
        return Schedule(self)

    def fold_at(
        self,
        index: pd.DatetimeIndex,
        p: int,
        *,
        number: int,
        test_stop: int | None = None,
        ends: np.ndarray | None = None,
    ) -> Fold:
        """The fold whose test period starts at position `p`; reads `index[: p + 1]` and
        `ends[:p]` only (plus ``index[:test_stop]`` for the test bounds when given)."""
        s = self._spans
        ends = _check_ends(ends, len(index))
        start = 0 if self.expanding else self._window_start(index, p, s["train"])
        kept = self._kept(index, p, start, ends)
        if not len(kept):
            raise ConfigError(
                f"fold {number}: no training rows left before test start {index[p]} "
                "after purge/embargo",
                fix="lengthen train or shorten purge/embargo",
            )
        last = int(kept[-1])
        v0 = self._validation_start(index, start, last)
        if v0 <= last:
            train = self._kept(index, v0, start, ends)
            validation = kept[kept >= v0]
        else:
            train = kept
            validation = np.empty(0, dtype=np.int64)
        if not len(train):
            raise ConfigError(
                f"fold {number}: training window before {index[p]} is too short to hold "
                "a validation tail and a purged training part",
                fix="lengthen train, or shorten validation/purge/embargo",
            )
        stop = p + 1 if test_stop is None else test_stop
        test = np.arange(p, stop, dtype=np.int64)
        return Fold(
            number=number,
            train=train,
            validation=validation,
            test=test,
            train_start=index[train[0]],
            train_end=index[train[-1]],
            validation_start=index[validation[0]] if len(validation) else None,
            validation_end=index[validation[-1]] if len(validation) else None,
            test_start=index[p],
            test_end=index[test[-1]],
        )

    # -- helpers ----------------------------------------------------------
    def _test_end(self, index: pd.DatetimeIndex, p: int) -> int:
        test = self._spans["test"]
        if isinstance(test, int):
            return min(p + test, len(index))
        return _first_at_or_after(index, index[p] + test)

    @staticmethod
    def _window_start(index: pd.DatetimeIndex, p: int, span: Any) -> int:
        if isinstance(span, int):
            return max(0, p - span)
        return _first_at_or_after(index, index[p] - span)

    def _kept(
        self, index: pd.DatetimeIndex, p: int, start: int, ends: np.ndarray | None
    ) -> np.ndarray:
        """Positions in [start, p) whose sample and label may be used for a boundary at `p`."""
        if ends is None:
            return np.arange(start, self._last_allowed(index, p) + 1, dtype=np.int64)
        rows = np.arange(start, min(p, self._purge_limit(index, p, default=0) + 1))
        own = ends[rows]
        own = np.where(np.isnan(own), rows + int(self.horizon), own)
        return rows[own <= self._end_limit(index, p)].astype(np.int64)

    def _end_limit(self, index: pd.DatetimeIndex, p: int) -> int:
        """Last position a kept label may end at for a boundary at `p` (embargo applied):
        ``end + embargo < p`` in bars, ``index[end] < index[p] - embargo`` for a duration."""
        embargo = self._spans["embargo"]
        if isinstance(embargo, int):
            return p - 1 - embargo
        # index[end] < index[p] - embargo  <=>  end < first position >= that time
        return min(_first_at_or_after(index, index[p] - embargo), p) - 1

    def _purge_limit(self, index: pd.DatetimeIndex, p: int, default: int | None = None) -> int:
        """Last sample position the purge keeps before a boundary at `p`; `default` replaces
        the horizon when no purge is configured."""
        purge = self._spans["purge"]
        if self.purge is None and default is not None:
            purge = default
        if isinstance(purge, int):
            return p - 1 - purge
        return _first_at_or_after(index, index[p] - purge) - 1

    def _last_allowed(self, index: pd.DatetimeIndex, p: int) -> int:
        """Last position whose sample and label (`horizon` bars long) may be used for a
        boundary at `p`."""
        last = self._end_limit(index, p) - int(self.horizon)
        return min(last, self._purge_limit(index, p))

    def _validation_start(self, index: pd.DatetimeIndex, start: int, last: int) -> int:
        v = self._spans["validation"]
        size = last - start + 1
        if isinstance(v, float):
            return last + 1 - int(round(v * size))
        if isinstance(v, int):
            return max(start, last + 1 - v)
        return max(start, _first_after(index, index[last] - v))


class Schedule:
    """Feed timestamps one bar at a time; `advance` says whether that bar starts a test period.

    Gives exactly the positions of `WalkForward.test_starts` without ever
    looking ahead (property-tested), so online retraining follows the batch
    schedule.
    """

    def __init__(self, wf: WalkForward) -> None:
        self._spans = wf._spans
        self.n = 0
        self._first: pd.Timestamp | None = None
        self._p0: int | None = None
        self._t0: pd.Timestamp | None = None
        self._k = 1

    def advance(self, ts: pd.Timestamp) -> bool:
        p = self.n
        self.n += 1
        if p == 0:
            self._first = ts
        if self._p0 is None:
            first = self._spans["min_train"]
            hit = p == first if isinstance(first, int) else ts >= self._first + first
            if hit:
                self._p0, self._t0 = p, ts
            return hit
        step = self._spans["step"]
        if isinstance(step, int):
            return (p - self._p0) % step == 0
        if ts < self._t0 + step * self._k:
            return False
        while self._t0 + step * self._k <= ts:
            self._k += 1
        return True


def _span(rows: np.ndarray) -> np.ndarray:
    """Every position from rows[0] to rows[-1] (empty for no rows)."""
    if not len(rows):
        return np.empty(0, dtype=np.int64)
    return np.arange(int(rows[0]), int(rows[-1]) + 1, dtype=np.int64)


def _check_ends(ends: np.ndarray | None, n: int) -> np.ndarray | None:
    """Label end positions as float (NaN = unknown), one per row, never before their row."""
    if ends is None:
        return None
    out = np.asarray(ends, dtype=float)
    if out.shape != (n,):
        raise DataError(
            f"label ends hold {out.shape} values for {n} rows",
            fix="give one end position (or NaN) per row of the index",
        )
    early = np.flatnonzero(out < np.arange(n))
    if early.size:
        raise DataError(
            f"the label of row {int(early[0])} ends before it starts (at row {out[early[0]]:g})",
            row=int(early[0]),
            column="t1",
            fix="end positions come from the feed's <target>_t1 column (t1 >= the row itself)",
        )
    return out


def end_times(index: pd.DatetimeIndex, ends: np.ndarray | None) -> pd.DatetimeIndex | None:
    """Label end positions (NaN: undecided) as timestamps (NaT), as `cpcv` reads them."""
    if ends is None:
        return None
    known = ~np.isnan(ends)
    stamps = index[np.where(known, ends, 0).astype(np.int64)]
    return stamps.where(known, pd.NaT)


def _is_zero(span: Any) -> bool:
    if isinstance(span, int):
        return span == 0
    if isinstance(span, pd.DateOffset):
        anchor = pd.Timestamp("2000-01-01", tz="UTC")
        return anchor + span <= anchor
    return span <= pd.Timedelta(0)


def _first_at_or_after(index: pd.DatetimeIndex, ts: pd.Timestamp) -> int:
    return int(index.searchsorted(ts, side="left"))


def _first_after(index: pd.DatetimeIndex, ts: pd.Timestamp) -> int:
    return int(index.searchsorted(ts, side="right"))
