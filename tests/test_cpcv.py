"""Combinatorial purged cross-validation: split and path counts, purge and embargo by label
end time (hand-worked cases and a hypothesis property against a row-by-row reference),
path assembly from per-split predictions."""

from __future__ import annotations

import dataclasses
from collections import Counter
from math import comb

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstrat.errors import ConfigError, DataError
from mlstrat.walkforward import CombinatorialPurgedCV, CPCVFold, Fold, assemble_path


def hourly(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="timestamp")


# --------------------------------------------------------------------------- counts and paths


@pytest.mark.parametrize(("n", "k"), [(2, 1), (5, 1), (6, 2), (7, 3), (8, 4), (10, 2)])
def test_split_and_path_counts(n, k):
    cv = CombinatorialPurgedCV(groups=n, test_groups=k)
    idx = hourly(97)
    folds = cv.split(idx)
    paths = cv.paths(idx)
    assert len(folds) == cv.n_splits == comb(n, k)
    assert len(paths) == cv.n_paths == comb(n, k) * k // n
    assert [sorted(f.test_groups) for f in folds] == [sorted(c) for c in cv_combinations(n, k)]


def cv_combinations(n: int, k: int) -> list[tuple[int, ...]]:
    from itertools import combinations

    return list(combinations(range(n), k))


@given(n=st.integers(2, 9), data=st.data(), bars=st.integers(0, 40))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_test_bar_is_in_exactly_phi_paths(n, data, bars):
    k = data.draw(st.integers(1, n - 1))
    cv = CombinatorialPurgedCV(groups=n, test_groups=k)
    idx = hourly(4 * n + bars)  # at least 4 bars a group: a 1-bar purge leaves training rows
    folds = cv.split(idx)
    groups = cv.group_positions(idx)
    paths = cv.paths(idx)
    phi = comb(n, k) * k // n
    assert len(paths) == phi
    seen = Counter()
    used = Counter()
    for path in paths:
        assert [s.group for s in path.segments] == list(range(n))  # every group once, in order
        for seg in path.segments:
            assert seg.group in folds[seg.split].test_groups  # that split predicts that group
            pos = groups[seg.group]
            assert (seg.start, seg.end, seg.rows) == (idx[pos[0]], idx[pos[-1]], len(pos))
            used[(seg.split, seg.group)] += 1
            seen.update(pos.tolist())
    assert set(seen) == set(range(len(idx))) and set(seen.values()) == {phi}
    # each (split, test group) prediction is used by exactly one path
    assert used == Counter({(f.number, g): 1 for f in folds for g in f.test_groups})


# --------------------------------------------------------------------------- purge and embargo


def test_purge_and_embargo_hand_worked():
    # 60 bars, 6 groups of 10, 2 test groups, labels 2 bars long, embargo 1 bar.
    idx = hourly(60)
    folds = CombinatorialPurgedCV(groups=6, test_groups=2, horizon=2, embargo=1).split(idx)
    first = folds[0]  # tests groups 0, 1 = rows 0..19; row 19's label ends at 21, +1 bar = 22
    assert first.test_groups == (0, 1)
    np.testing.assert_array_equal(first.test, np.arange(20))
    np.testing.assert_array_equal(first.train, np.arange(23, 60))
    second = folds[1]  # groups 0 and 2
    # group 0 (rows 0..9): labels to 11, embargo to 12 -> rows 0..12 out
    # group 2 (rows 20..29): rows 18, 19 have labels reaching 20; labels to 31, embargo 32
    assert second.test_groups == (0, 2)
    np.testing.assert_array_equal(
        second.train, np.concatenate([np.arange(13, 18), np.arange(33, 60)])
    )
    assert isinstance(second, Fold) and len(second.validation) == 0
    np.testing.assert_array_equal(second.fit_rows, second.train)
    assert second.to_dict()["test_groups"] == [0, 2]
    assert second.to_dict()["n_train"] == 32
    assert (second.test_start, second.test_end) == (idx[0], idx[29])


def test_purging_by_variable_length_label_ends():
    # 40 bars, 4 groups of 10, one test group; labels of different lengths.
    idx = hourly(40)
    ends = idx[np.minimum(np.arange(40) + 1, 39)].to_numpy().copy()
    ends[5] = idx[22]  # an early label that reaches into group 2: purged
    ends[6] = idx[7]  # its short neighbour: kept
    ends[29] = idx[33]  # the test group's last label runs 4 bars past it
    t1 = pd.Series(ends, index=idx)
    cv = CombinatorialPurgedCV(groups=4, test_groups=1)
    fold = next(f for f in cv.split(idx, t1=t1) if f.test_groups == (2,))
    kept = set(fold.train.tolist())
    assert 5 not in kept and 6 in kept
    assert 19 not in kept and 18 in kept  # row 19's label ends at bar 20, the group's first
    assert {30, 31, 32, 33}.isdisjoint(kept) and 34 in kept  # inside the last test label
    assert kept == set(range(40)) - {5, 19} - set(range(20, 34))
    # with the default 1-bar labels the same split keeps rows 5 and 31..33 (row 29's label
    # ends at bar 30, so row 30 still touches the test window)
    plain = next(f for f in cv.split(idx) if f.test_groups == (2,))
    assert set(plain.train.tolist()) == set(range(40)) - {19} - set(range(20, 31))


def test_rows_without_a_label_span_only_their_own_bar():
    # labels.py marks warm-up rows and rows that are not events with NaT t1
    idx = hourly(40)
    t1 = pd.Series(idx[np.minimum(np.arange(40) + 3, 39)], index=idx)
    t1.iloc[:8] = pd.NaT  # warm-up inside test group 0: the group's window ends at row 12
    t1.iloc[18] = pd.NaT  # just before test group 2: its label no longer reaches it
    t1.iloc[37:] = pd.NaT  # undecided at the end of the data
    folds = {
        f.test_groups: f for f in CombinatorialPurgedCV(groups=4, test_groups=1).split(idx, t1=t1)
    }
    assert folds[(0,)].train.tolist() == list(range(13, 40))
    assert folds[(2,)].train.tolist() == [*range(17), 18, *range(33, 40)]
    assert folds[(1,)].train.tolist() == [*range(8), *range(23, 40)]  # rows 8, 9 reach row 10
    assert folds[(3,)].train.tolist() == list(range(27))


def test_duration_embargo():
    idx = hourly(60)
    by_bars = CombinatorialPurgedCV(groups=6, test_groups=1, embargo=3).split(idx)
    by_time = CombinatorialPurgedCV(groups=6, test_groups=1, embargo="3h").split(idx)
    for a, b in zip(by_bars, by_time, strict=True):
        np.testing.assert_array_equal(a.train, b.train)
    # group 1 = rows 10..19, labels to 20, embargo 3 h -> rows up to 23 out
    assert by_time[1].train.tolist() == list(range(0, 9)) + list(range(24, 60))
    assert CombinatorialPurgedCV(embargo="3h").describe()["embargo"] == "3h"


def reference_blocked(
    t: np.ndarray, t1: np.ndarray, groups: list[np.ndarray], chosen, embargo: int
) -> np.ndarray:
    """Rows a split may not train on, decided row by row (int ns; t1 of an unlabelled row = t)."""
    n = len(t)
    blocked = np.zeros(n, dtype=bool)
    for g in chosen:
        start = t[groups[g][0]]
        end = max(t1[groups[g]])
        q = max(p for p in range(n) if t[p] <= end)  # last bar at or before the label end
        end = max(end, t[min(q + embargo, n - 1)])
        for i in range(n):
            if i in set(groups[g].tolist()) or (t1[i] >= start and t[i] <= end):
                blocked[i] = True
    return blocked


@given(
    n=st.integers(12, 90),
    groups=st.integers(2, 6),
    data=st.data(),
    embargo=st.integers(0, 4),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_training_label_touches_its_test_groups(n, groups, data, embargo):
    k = data.draw(st.integers(1, groups - 1))
    gaps = data.draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))
    idx = pd.DatetimeIndex(
        pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.cumsum(gaps), unit="h")
    )
    lengths = data.draw(st.lists(st.integers(-1, 8), min_size=n, max_size=n))
    ends = [pd.NaT if h < 0 else idx[min(i + h, n - 1)] for i, h in enumerate(lengths)]
    t1 = pd.Series(pd.DatetimeIndex(ends), index=idx)
    cv = CombinatorialPurgedCV(groups=groups, test_groups=k, embargo=embargo)
    t = idx.as_unit("ns").asi8
    t1_ns = np.where(t1.isna(), t, pd.DatetimeIndex(t1).as_unit("ns").asi8)
    pos = cv.group_positions(idx)
    expected = [
        np.flatnonzero(~reference_blocked(t, t1_ns, pos, c, embargo))
        for c in cv_combinations(groups, k)
    ]
    if any(len(e) == 0 for e in expected):
        with pytest.raises(ConfigError, match="no training rows"):
            cv.split(idx, t1=t1)
        return
    folds = cv.split(idx, t1=t1)
    for fold, keep in zip(folds, expected, strict=True):
        np.testing.assert_array_equal(fold.train, keep)  # purged exactly as much as needed
        assert not set(fold.train.tolist()) & set(fold.test.tolist())
        for g in fold.test_groups:  # the property itself, stated plainly
            start = t[pos[g][0]]
            window_end = max(t1_ns[pos[g]])
            assert all(t1_ns[i] < start or t[i] > window_end for i in fold.train)


# --------------------------------------------------------------------------- path assembly


def split_predictions(cv: CombinatorialPurgedCV, idx: pd.DatetimeIndex) -> dict[int, pd.DataFrame]:
    """Prediction frames as the fold runner writes them: timestamp, fold, a value per row."""
    return {
        f.number: pd.DataFrame(
            {"timestamp": idx[f.test], "fold": f.number, "signal": f.number * 1000.0 + f.test}
        )
        for f in cv.split(idx)
    }


def test_a_path_is_assembled_from_the_splits_it_names():
    idx = hourly(70)
    cv = CombinatorialPurgedCV(groups=7, test_groups=3)
    preds = split_predictions(cv, idx)
    groups = cv.group_positions(idx)
    for path in cv.paths(idx):
        out = assemble_path(path, preds)
        assert pd.DatetimeIndex(out["timestamp"]).equals(pd.DatetimeIndex(idx))
        expected_split = np.concatenate(
            [np.full(len(groups[g]), s) for g, s in enumerate(path.splits)]
        )
        np.testing.assert_array_equal(out["fold"], expected_split)
        np.testing.assert_array_equal(out["signal"], expected_split * 1000.0 + np.arange(70))
        assert (out["path"] == path.number).all()
        np.testing.assert_array_equal(out["group"], np.repeat(np.arange(7), 10))
    # frames indexed by timestamp work the same
    indexed = {k: v.set_index("timestamp") for k, v in preds.items()}
    path = cv.paths(idx)[2]
    pd.testing.assert_frame_equal(assemble_path(path, indexed), assemble_path(path, preds))


def test_runner_compatible_shape():
    cv = CombinatorialPurgedCV(groups=5, test_groups=2, horizon=1)
    longer = dataclasses.replace(cv, horizon=4)  # what run_walk_forward does for longer labels
    assert longer.horizon == 4 and longer.describe()["n_paths"] == 4
    folds = longer.split(hourly(100))
    assert all(isinstance(f, CPCVFold) for f in folds)
    assert folds[0].train[0] == 40 + 4 + 1 - 1  # groups 0, 1 = rows 0..39; labels to 43


# --------------------------------------------------------------------------- faults


def _path_and_predictions():
    idx = hourly(30)
    cv = CombinatorialPurgedCV(groups=3, test_groups=1)
    return cv.paths(idx)[0], split_predictions(cv, idx), idx


def _missing_split():
    path, preds, _ = _path_and_predictions()
    del preds[1]
    return assemble_path(path, preds)


def _missing_row():
    path, preds, _ = _path_and_predictions()
    preds[1] = preds[1].drop(index=3)
    return assemble_path(path, preds)


def _duplicate_row():
    path, preds, _ = _path_and_predictions()
    preds[1] = pd.concat([preds[1].iloc[:-1], preds[1].iloc[[0]]])
    return assemble_path(path, preds)


def _naive_timestamps():
    path, preds, _ = _path_and_predictions()
    preds[0]["timestamp"] = preds[0]["timestamp"].dt.tz_localize(None)
    return assemble_path(path, preds)


def _no_timestamps():
    path, preds, _ = _path_and_predictions()
    preds[0] = preds[0].drop(columns="timestamp")
    return assemble_path(path, preds)


IDX = hourly(40)
CV = CombinatorialPurgedCV(groups=4, test_groups=1)

FAULTS = [
    (lambda: CombinatorialPurgedCV(groups=1), ConfigError, "groups=1"),
    (lambda: CombinatorialPurgedCV(groups=4, test_groups=4), ConfigError, "smaller than"),
    (lambda: CombinatorialPurgedCV(test_groups=0), ConfigError, "test_groups=0"),
    (lambda: CombinatorialPurgedCV(horizon=0), ConfigError, "horizon"),
    (lambda: CombinatorialPurgedCV(embargo="soon"), ConfigError, "embargo"),
    (lambda: CV.split(hourly(3)), DataError, "cannot be cut"),
    (lambda: CV.split(IDX[::-1]), DataError, "strictly increasing"),
    (lambda: CV.split(IDX, t1=IDX[:-1]), DataError, "t1 has 39 rows"),
    (lambda: CV.split(IDX, t1=np.arange(40.0)), DataError, "must hold timestamps"),
    (lambda: CV.split(IDX, t1=["x"] * 40), DataError, "timestamps"),
    (lambda: CV.split(IDX, t1=IDX.tz_localize(None)), DataError, "naive"),
    (lambda: CV.split(IDX, t1=pd.Series(IDX, index=hourly(41)[1:])), DataError, "index"),
    (
        lambda: CV.split(IDX, t1=np.r_[IDX[:7], IDX[5:6], IDX[8:]]),
        DataError,
        "starts (t1 2024-01-01 05:00:00+00:00) (row 7",
    ),
    (
        lambda: CombinatorialPurgedCV(groups=2, test_groups=1, horizon=30).split(IDX),
        ConfigError,
        "no training rows",
    ),
    (_missing_split, DataError, "split 1"),
    (_missing_row, DataError, "9 prediction rows"),
    (_duplicate_row, DataError, "9 distinct"),
    (_naive_timestamps, DataError, "time zone"),
    (_no_timestamps, DataError, "no timestamps"),
]


@pytest.mark.parametrize(("call", "error", "text"), FAULTS)
def test_bad_input_is_a_typed_error_that_says_where(call, error, text):
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value)
