"""The trial log of a run directory (`mlstrat.trials`) and the statistics built on it.

The deflated Sharpe ratio must take its number of trials N and the variance of the trials'
Sharpe ratios from the log; both are recomputed here from the logged returns with numpy and
the DSR with scipy, independently of `mlstrat.report.stats`.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss

from mlstrat.errors import ConfigError, DataError, IntegrityError
from mlstrat.report.stats import StatisticsOptions, backtest_statistics
from mlstrat.rundir import RunDir
from mlstrat.trials import (
    INDEX_FILE,
    Trial,
    append_trials,
    load_trials,
    read_index,
    returns_file,
    trials_digest,
)


def returns(seed: int, n: int = 500, drift: float = 0.0002) -> pd.Series:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC")
    return pd.Series(drift + 0.01 * rng.standard_t(5, n), index=idx)


def ref_dsr(r: np.ndarray, sharpes: np.ndarray) -> tuple[float, float, float]:
    """(DSR, N, V) written out: population moments, ddof=1 variance, Euler-Mascheroni SR0."""
    n_trials, variance = len(sharpes), float(np.var(sharpes, ddof=1))
    g = np.euler_gamma
    sr0 = math.sqrt(variance) * (
        (1 - g) * ss.norm.ppf(1 - 1 / n_trials) + g * ss.norm.ppf(1 - 1 / (n_trials * math.e))
    )
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = ss.skew(r), ss.kurtosis(r, fisher=False)
    z = (sr - sr0) * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return float(ss.norm.cdf(z)), n_trials, variance


@pytest.fixture
def run(tmp_path):
    return RunDir.claim(tmp_path / "run")


def logged(run: RunDir, n: int = 6) -> list[pd.Series]:
    series = [returns(seed, drift=0.0001 * seed) for seed in range(n)]
    kinds = ["run", "run"] + ["sweep"] * (n - 2)
    append_trials(
        run,
        [
            Trial.from_returns(f"t{k}", kinds[k], f"variant {k}", s, {"k": k})
            for k, s in enumerate(series)
        ],
    )
    return series


def test_deflated_sharpe_takes_n_and_the_variance_from_the_log(run):
    series = logged(run)
    # a search trial without returns counts with its recorded Sharpe
    append_trials(run, [Trial("search1", "search", "fold 0 trial 1", 0.021)])
    trials = load_trials(run.root)
    assert list(trials.sharpes) == ["t0", "t1", "t2", "t3", "t4", "t5", "search1"]
    assert "7 trials (2 run backtests, 4 sweep trials, 1 search trial)" in trials.source
    own = series[3]
    stats = backtest_statistics(
        own, None, 8760.0, "hourly", StatisticsOptions(trials=trials, n_resamples=200)
    )
    sharpes = np.array([s.mean() / s.std(ddof=1) for s in series] + [0.021])
    dsr, n_trials, variance = ref_dsr(own.to_numpy(), sharpes)
    assert stats["n_trials"] == n_trials == 7
    assert stats["trial_variance"] == pytest.approx(variance, rel=1e-12)
    assert stats["dsr"] == pytest.approx(dsr, rel=1e-9)
    assert stats["trials"] == trials.source
    # more trials with the same spread of Sharpes: a stricter benchmark, a lower DSR
    more = logged(RunDir.claim(run.root.parent / "more"), 20)
    wider = backtest_statistics(
        own,
        None,
        8760.0,
        "hourly",
        StatisticsOptions(trials=load_trials(run.root.parent / "more"), n_resamples=200),
    )
    assert wider["n_trials"] == len(more) == 20
    assert wider["expected_max_sharpe"] > stats["expected_max_sharpe"] > 0


def test_returns_round_trip_and_the_log_is_plain_json(run):
    series = logged(run, 3)
    trials = load_trials(run.root)
    for k, s in enumerate(series):
        pd.testing.assert_series_equal(
            trials.returns[f"t{k}"], s, check_names=False, check_freq=False
        )
        assert trials.sharpes[f"t{k}"] == pytest.approx(s.mean() / s.std(ddof=1), rel=1e-12)
    index = json.loads((run.root / INDEX_FILE).read_text())
    entry = index["trials"][1]
    assert entry["settings"] == {"k": 1} and entry["bars"] == 500
    assert entry["start"] == "2025-01-01T00:00:00+00:00" and entry["returns"] == returns_file("t1")
    assert not run.verify()  # every file went through the run directory's manifest


def test_the_same_trial_twice_counts_once(run):
    series = logged(run, 3)
    digest = trials_digest(run.root)
    ids = append_trials(
        run,
        [
            Trial.from_returns("t1", "run", "again", series[1]),  # same id
            Trial.from_returns("other", "sweep", "same returns", series[2]),  # same returns
            Trial.from_returns("new", "sweep", "new", returns(99)),
        ],
    )
    assert ids == ["t1", "t2", "new"]
    assert [e["id"] for e in read_index(run.root)] == ["t0", "t1", "t2", "new"]
    assert trials_digest(run.root) != digest


def test_a_trial_that_never_traded_has_sharpe_zero(run):
    flat = pd.Series(0.0, index=returns(0).index)
    append_trials(run, [Trial.from_returns("flat", "sweep", "never traded", flat)])
    assert load_trials(run.root).sharpes == {"flat": 0.0}
    stats = backtest_statistics(flat, None, 8760.0, "hourly", StatisticsOptions())
    assert stats["undefined"].startswith("returns are constant")


def test_without_a_log_the_backtest_is_its_only_trial(run):
    r = returns(4, drift=0.001)
    stats = backtest_statistics(r, None, 8760.0, "hourly", StatisticsOptions(n_resamples=200))
    assert stats["n_trials"] == 1 and stats["expected_max_sharpe"] == 0.0
    assert stats["dsr"] == pytest.approx(stats["psr"]["zero"], rel=1e-12)
    assert stats["trials"] == "this backtest only (no trial log)"
    assert load_trials(run.root).sharpes == {}


# --------------------------------------------------------------------------- faults


def test_a_damaged_index_is_named(run):
    logged(run, 2)
    (run.root / INDEX_FILE).write_text('{"format": "mlstrat-trials", "trials": [', "utf-8")
    with pytest.raises(IntegrityError, match="not valid JSON") as info:
        load_trials(run.root)
    assert info.value.file.endswith(INDEX_FILE) and "trials/ folder" in info.value.fix
    (run.root / INDEX_FILE).write_text('{"format": "mlstrat-trials", "trials": [{"id": "../x"}]}')
    with pytest.raises(IntegrityError, match="entries are malformed"):
        read_index(run.root)
    (run.root / INDEX_FILE).write_text('{"format": "other"}')
    with pytest.raises(IntegrityError, match="not a trial log"):
        read_index(run.root)
    (run.root / INDEX_FILE).write_text('{"format": "mlstrat-trials", "version": 9, "trials": []}')
    with pytest.raises(IntegrityError, match="newer mlstrat"):
        read_index(run.root)


def test_tampered_or_missing_returns_are_named(run):
    logged(run, 2)
    path = run.root / returns_file("t1")
    other = run.root / returns_file("t0")
    path.write_bytes(other.read_bytes())
    with pytest.raises(IntegrityError, match="differ from the sha256") as info:
        load_trials(run.root)
    assert info.value.file == str(path)
    path.unlink()
    with pytest.raises(IntegrityError, match="returns file is missing"):
        load_trials(run.root)


@pytest.mark.parametrize(
    ("make", "error", "text"),
    [
        (lambda r: Trial.from_returns("a/b", "run", "x", r), ConfigError, "not a plain name"),
        (lambda r: Trial.from_returns("a", "grid", "x", r), ConfigError, "kind 'grid'"),
        (lambda r: Trial("a", "search", "x", float("nan")), DataError, "not finite"),
        (lambda r: Trial("a", "search", "x", "1.2"), DataError, "not a number"),
        (lambda r: Trial.from_returns("a", "run", "x", r.to_numpy()), DataError, "a pandas Series"),
        (
            lambda r: Trial.from_returns("a", "run", "x", r.tz_localize(None)),
            DataError,
            "without a time zone",
        ),
        (lambda r: Trial.from_returns("a", "run", "x", r[::-1]), DataError, "time order"),
    ],
)
def test_bad_trials_are_refused_before_anything_is_written(run, make, error, text):
    with pytest.raises(error, match=text):
        append_trials(run, [make(returns(1))])
    assert not (run.root / INDEX_FILE).exists()


def test_a_missing_return_names_its_bar(run):
    r = returns(2)
    r.iloc[17] = np.nan
    with pytest.raises(DataError, match="1 non-finite") as info:
        Trial.from_returns("a", "run", "x", r)
    assert info.value.row == 17 and info.value.timestamp == r.index[17]


def test_a_sweep_of_many_trials_updates_the_manifest_a_fixed_number_of_times(run, monkeypatch):
    logged(run, 2)
    saves = []
    real = RunDir.save
    monkeypatch.setattr(RunDir, "save", lambda self: (saves.append(1), real(self)))
    many = [Trial.from_returns(f"s{k}", "sweep", "x", returns(100 + k)) for k in range(40)]
    append_trials(run, many)
    assert len(saves) <= 4  # the returns folder once, the index once (pending + recorded)
    assert len(load_trials(run.root).returns) == 42 and not run.verify()


def test_appending_names_a_logged_returns_file_that_went_missing(run):
    logged(run, 2)
    (run.root / returns_file("t0")).unlink()
    with pytest.raises(IntegrityError, match="returns file is missing") as info:
        append_trials(run, [Trial.from_returns("new", "sweep", "x", returns(50))])
    assert info.value.file == str(run.root / returns_file("t0"))
    assert [e["id"] for e in read_index(run.root)] == ["t0", "t1"]  # nothing half-written
