"""Fold boundaries: hand-worked cases and hypothesis properties over random indexes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstrat.errors import ConfigError, DataError
from mlstrat.walkforward.splits import WalkForward


def hourly(n: int, start: str = "2024-01-01") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="h", tz="UTC", name="timestamp")


def test_bar_counts_hand_worked() -> None:
    # train 100, test 50, horizon 3, embargo 2 bars, 20 % validation.
    wf = WalkForward(train=100, test=50, horizon=3, embargo=2, validation=0.2)
    folds = wf.split(hourly(260))
    assert [f.test[0] for f in folds] == [100, 150, 200, 250]
    f = folds[0]
    # last usable sample: 100 - 1 - horizon 3 - embargo 2 = 94
    # validation = round(0.2 * 95) = 19 rows -> 76..94; train purged before 76: 76-1-3-2 = 70
    assert (f.train[0], f.train[-1]) == (0, 70)
    assert (f.validation[0], f.validation[-1]) == (76, 94)
    assert (f.test[0], f.test[-1]) == (100, 149)
    assert (folds[1].train[0], folds[1].validation[-1]) == (50, 144)
    # last fold is cut at the end of the data
    assert (folds[-1].test[0], folds[-1].test[-1]) == (250, 259)


def test_durations_and_months() -> None:
    idx = hourly(24 * 366)
    folds = WalkForward(train="4mo", test="2mo").split(idx)
    assert folds[0].test_start == pd.Timestamp("2024-05-01", tz="UTC")
    assert folds[1].test_start == pd.Timestamp("2024-07-01", tz="UTC")
    assert folds[0].test_end == pd.Timestamp("2024-06-30 23:00", tz="UTC")
    # rolling 4-month window: fold 1 trains from 2024-03-01
    assert folds[1].train_start == pd.Timestamp("2024-03-01", tz="UTC")
    folds = WalkForward(train="120D", test="60D", validation=0.0).split(idx)
    f = folds[0]
    assert f.test_start == idx[0] + pd.Timedelta("120D")
    assert len(f.validation) == 0 and f.validation_start is None
    assert f.train[-1] == f.test[0] - 2  # purge = horizon 1


def test_expanding_and_min_train() -> None:
    idx = hourly(400)
    folds = WalkForward(train=100, test=100, expanding=True, validation=0.0).split(idx)
    assert all(f.train[0] == 0 for f in folds)
    assert [len(f.train) for f in folds] == [99, 199, 299]
    folds = WalkForward(train=100, test=50, min_train=40, validation=0.0).split(idx)
    assert folds[0].test[0] == 40 and folds[0].train[0] == 0
    assert folds[2].train[0] == 40 and len(folds[2].train) == 99  # window full from here on


def test_duration_purge_and_embargo() -> None:
    idx = hourly(300)
    f = WalkForward(train=100, test=50, purge="5h", embargo="3h", validation=0.0).split(idx)[0]
    # purge: index[i] < T - 5h -> i <= 94; embargo: index[i+1] < T - 3h -> i + 1 <= 96
    assert f.train[-1] == 94
    f = WalkForward(train=100, test=50, purge=0, embargo="10h", validation=0.0).split(idx)[0]
    assert f.train[-1] == 100 - 10 - 1 - 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"train": 0},
        {"test": "0h"},
        {"train": 10, "test": 10, "step": 5},
        {"validation": 1.5},
        {"horizon": 0},
        {"train": "fortnight"},
        {"train": -3},
    ],
)
def test_bad_config(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        WalkForward(**kwargs)


def test_bad_index_and_too_short_window() -> None:
    idx = hourly(50)
    with pytest.raises(DataError):
        WalkForward(train=10, test=10).split(idx[::-1])
    with pytest.raises(DataError):
        WalkForward(train=10, test=10).split(np.arange(50))
    with pytest.raises(ConfigError):
        WalkForward(train=3, test=10, horizon=2, embargo=1, validation=0.0).split(idx)


# -- properties -----------------------------------------------------------


@st.composite
def index_and_splitter(draw):
    n = draw(st.integers(30, 400))
    # irregular spacing: 1h bars with occasional gaps of up to 5h
    gaps = draw(st.lists(st.sampled_from([1, 1, 1, 1, 2, 5]), min_size=n, max_size=n))
    idx = pd.DatetimeIndex(
        pd.Timestamp("2023-03-01", tz="UTC") + pd.to_timedelta(np.cumsum(gaps), unit="h")
    )
    horizon = draw(st.integers(1, 4))
    as_duration = draw(st.booleans())
    test = draw(st.integers(1, 40))
    step = test + draw(st.sampled_from([0, 0, 0, 3]))
    purge = draw(st.one_of(st.none(), st.integers(0, 6)))
    embargo = draw(st.integers(0, 4))
    validation = draw(st.sampled_from([0.0, 0.1, 0.25]))
    train = draw(st.integers(100, 160))
    expanding = draw(st.booleans())
    min_train = draw(st.one_of(st.none(), st.integers(100, 200)))

    def span(k: int):
        return f"{k}h" if as_duration else k

    wf = WalkForward(
        train=span(train),
        test=span(test),
        step=span(step),
        purge=None if purge is None else span(purge),
        embargo=span(embargo),
        expanding=expanding,
        min_train=None if min_train is None else span(min_train),
        validation=validation,
        horizon=horizon,
    )
    return idx, wf


PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
@PROPS
@given(index_and_splitter())
def test_property_no_label_reaches_test_or_validation(case) -> None:
    idx, wf = case
    spans = wf._spans
    h = wf.horizon
    for f in wf.folds(idx):
        p = f.test[0]
        for rows in (f.train, f.validation):
            if len(rows):
                last = rows[-1]
                assert last + h < p, "a label's horizon reaches the test start"
                # embargo: gap between the label's end and the test start
                emb = spans["embargo"]
                if isinstance(emb, int):
                    assert last + h + emb < p
                else:
                    assert idx[last + h] < idx[p] - emb
                pur = spans["purge"]
                if isinstance(pur, int):
                    assert last < p - pur
                else:
                    assert idx[last] < idx[p] - pur
        if len(f.validation):
            v0 = f.validation[0]
            assert f.train[-1] + h < v0, "a training label reaches into validation"
            assert f.validation[-1] < p
            assert np.array_equal(f.validation, np.arange(v0, f.validation[-1] + 1))
        assert len(f.train) > 0
        assert np.all(np.diff(f.train) == 1) and np.all(np.diff(f.test) == 1)
        assert f.test_start == idx[f.test[0]] and f.test_end == idx[f.test[-1]]
        assert f.train_start == idx[f.train[0]] and f.train_end == idx[f.train[-1]]


@pytest.mark.slow
@PROPS
@given(index_and_splitter())
def test_property_tests_tile_the_range(case) -> None:
    idx, wf = case
    folds = wf.split(idx)
    if not folds:
        return
    tested = np.concatenate([f.test for f in folds])
    assert np.all(np.diff(tested) > 0), "test periods overlap or are out of order"
    spans = wf._spans
    if spans["step"] == spans["test"] or type(spans["step"]) is not type(spans["test"]):
        # step == test: the test periods cover every bar after the first train window
        assert np.array_equal(tested, np.arange(folds[0].test[0], len(idx)))
    first = spans["min_train"]
    expected_first = first if isinstance(first, int) else idx.searchsorted(idx[0] + first)
    assert folds[0].test[0] == expected_first
    assert [f.number for f in folds] == list(range(len(folds)))


@pytest.mark.slow
@PROPS
@given(index_and_splitter(), st.integers(0, 10_000))
def test_property_folds_use_only_the_past(case, cut) -> None:
    """A fold computed from the index up to its test start equals the fold from the full index."""
    idx, wf = case
    folds = wf.split(idx)
    if not folds:
        return
    f = folds[cut % len(folds)]
    p = int(f.test[0])
    prefix = idx[: p + 1]
    assert p in wf.test_starts(prefix)
    g = wf.fold_at(prefix, p, number=f.number)
    assert np.array_equal(f.train, g.train) and np.array_equal(f.validation, g.validation)


@pytest.mark.slow
@PROPS
@given(index_and_splitter())
def test_property_bar_by_bar_schedule_matches_batch(case) -> None:
    idx, wf = case
    tracker = wf.schedule()
    online = [i for i, ts in enumerate(idx) if tracker.advance(ts)]
    assert online == wf.test_starts(idx).tolist()


def test_schedule_months() -> None:
    idx = hourly(24 * 400)
    wf = WalkForward(train="4mo", test="2mo")
    tracker = wf.schedule()
    online = [i for i, ts in enumerate(idx) if tracker.advance(ts)]
    assert online == wf.test_starts(idx).tolist()
    assert [idx[i].strftime("%m-%d") for i in online[:3]] == ["05-01", "07-01", "09-01"]
