"""Selection-aware statistics: PSR, MinTRL, DSR, stationary bootstrap, PBO by CSCV.

Each formula is checked against an independent implementation written here with
scipy.stats (population skewness, non-excess kurtosis, the normal CDF and its
inverse) and against worked numbers published by the papers' authors.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from scipy import stats as ss

from mlstrat.errors import ConfigError, DataError
from mlstrat.report.metrics import max_drawdown, sharpe_ratio
from mlstrat.report.plots import NoData
from mlstrat.report.stats import (
    PathStats,
    bootstrap_sharpe_ci,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    min_track_record_length,
    path_statistics,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    return_moments,
    sharpe_stats,
    stationary_bootstrap_indices,
)
from mlstrat.report.stats_plots import plot_path_distribution, plot_pbo_logits

# --------------------------------------------------------------------------- reference formulas


def ref_moments(r: np.ndarray) -> tuple[float, float, float]:
    """Per-bar Sharpe (ddof=1), population skewness, non-excess population kurtosis."""
    return (
        float(np.mean(r) / np.std(r, ddof=1)),
        float(ss.skew(r, bias=True)),
        float(ss.kurtosis(r, fisher=False, bias=True)),
    )


def ref_psr(sr: float, n: int, g3: float, g4: float, bench: float) -> float:
    return float(
        ss.norm.cdf((sr - bench) * np.sqrt(n - 1) / np.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    )


def ref_min_trl(sr: float, g3: float, g4: float, bench: float, alpha: float) -> float:
    return 1 + (1 - g3 * sr + (g4 - 1) / 4 * sr**2) * (ss.norm.ppf(alpha) / (sr - bench)) ** 2


def ref_sr0(n_trials: int, variance: float) -> float:
    g = np.euler_gamma
    return float(
        np.sqrt(variance)
        * ((1 - g) * ss.norm.ppf(1 - 1 / n_trials) + g * ss.norm.ppf(1 - 1 / (n_trials * np.e)))
    )


def skewed_returns(seed: int, n: int = 750) -> pd.Series:
    """Left-skewed, fat-tailed hourly returns (2 % of bars crash by 3 %) with a drift."""
    rng = np.random.default_rng(seed)
    r = 0.0012 + 0.004 * rng.normal(0.0, 1.0, n) - 0.03 * (rng.random(n) < 0.02)
    return pd.Series(r, index=pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"))


# --------------------------------------------------------------------------- PSR, MinTRL, DSR


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psr_min_trl_and_dsr_equal_an_independent_implementation(seed):
    r = skewed_returns(seed)
    sr, g3, g4 = ref_moments(r.to_numpy())
    assert g3 < -2 and g4 > 10 and sr > 0  # the moments matter in this series
    trials = np.random.default_rng(seed + 10).normal(0.0, 0.03, 40)
    trials[0] = sr
    out = sharpe_stats(
        r,
        benchmarks={"zero": 0.0, "buy_and_hold": 0.01},
        periods_per_year=8760,
        trial_sharpes=trials,
    )
    assert out.n == len(r)
    assert out.sharpe == pytest.approx(sr, rel=1e-12)
    assert (out.skew, out.kurtosis) == (pytest.approx(g3, rel=1e-10), pytest.approx(g4, rel=1e-10))
    for name, bench in (("zero", 0.0), ("buy_and_hold", 0.01)):
        assert out.psr[name] == pytest.approx(ref_psr(sr, len(r), g3, g4, bench), abs=1e-12)
        assert out.min_trl[name] == pytest.approx(ref_min_trl(sr, g3, g4, bench, 0.95), rel=1e-10)
        assert out.min_trl_years[name] == pytest.approx(out.min_trl[name] / 8760, rel=1e-12)
    v = float(np.var(trials, ddof=1))
    assert (out.n_trials, out.trial_variance) == (40, pytest.approx(v, rel=1e-12))
    assert out.expected_max_sharpe == pytest.approx(ref_sr0(40, v), rel=1e-10)
    assert out.dsr == pytest.approx(ref_psr(sr, len(r), g3, g4, ref_sr0(40, v)), abs=1e-12)
    assert out.sharpe_annual == pytest.approx(sr * math.sqrt(8760), rel=1e-12)
    assert out.expected_max_sharpe_annual == pytest.approx(ref_sr0(40, v) * math.sqrt(8760))
    assert out.std_error == pytest.approx(
        math.sqrt((1 - g3 * sr + (g4 - 1) / 4 * sr**2) / (len(r) - 1)), rel=1e-12
    )


def test_deflated_sharpe_paper_example():
    """Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example:
    N = 100 trials whose annualised Sharpe ratios have variance V = 1/2; the best has
    an annualised SR of 2.5 over T = 1,250 daily bars (5 years of 250 days), skewness
    -3 and kurtosis 10. The paper reports SR0 ≈ 0.1132 (per day) and DSR ≈ 0.9004."""
    days = 250
    sr = 2.5 / math.sqrt(days)
    variance = 0.5 / days  # annualised variance → per-bar variance
    assert expected_max_sharpe(100, variance) == pytest.approx(0.1132, abs=5e-5)
    assert deflated_sharpe_ratio(sr, 1250, -3.0, 10.0, 100, variance) == pytest.approx(
        0.9004, abs=5e-5
    )


def test_expected_maximum_sharpe_and_minimum_backtest_length_paper_numbers():
    """Bailey, Borwein, López de Prado & Zhu (2014), "Pseudo-mathematics and financial
    charlatanism", Notices of the AMS: for N = 10 standard normal trials E[max] ≈ 1.57,
    and "if only 5 years of data are available, no more than 45 independent model
    configurations should be tried" to keep the expected best annualised Sharpe of
    unskilled configurations at or below 1 (E[max_N] / sqrt(5 years) ≤ 1)."""
    assert expected_max_sharpe(10, 1.0) == pytest.approx(1.57, abs=0.005)
    assert (
        expected_max_sharpe(45, 1.0) / math.sqrt(5)
        <= 1.0
        < expected_max_sharpe(46, 1.0) / math.sqrt(5)
    )


def test_min_trl_sharpe_ratio_efficient_frontier_example():
    """Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier", the sampling
    frequency example: to reject, at 95 % confidence, that an annualised Sharpe ratio of 2
    is at most 1 with Normal returns (skewness 0, kurtosis 3) takes a track record of 2.73
    years of daily returns, 2.83 of weekly and 3.24 of monthly. Per-bar figures are the
    annual ones over sqrt(bars per year), as in the paper."""
    for bars_per_year, years in ((252, 2.73), (52, 2.83), (12, 3.24)):
        root = math.sqrt(bars_per_year)
        bars = min_track_record_length(2 / root, 0.0, 3.0, 1 / root, 0.95)
        assert bars / bars_per_year == pytest.approx(years, abs=0.005)


def test_psr_at_the_minimum_track_record_length_is_the_confidence():
    # MinTRL inverts PSR: a track record exactly that long reaches the confidence.
    sr, g3, g4, bench = 0.08, -0.9, 7.5, 0.02
    for alpha in (0.9, 0.95, 0.99):
        n = min_track_record_length(sr, g3, g4, bench, alpha)
        z = (sr - bench) * math.sqrt(n - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
        assert ss.norm.cdf(z) == pytest.approx(alpha, abs=1e-12)
    assert min_track_record_length(0.01, benchmark=0.02) == math.inf
    assert probabilistic_sharpe_ratio(0.05, 500, benchmark=0.05) == pytest.approx(0.5)


def test_deflation_grows_with_the_number_of_trials():
    sr, n = 0.1, 1000
    psr0 = probabilistic_sharpe_ratio(sr, n)
    dsr = [deflated_sharpe_ratio(sr, n, 0.0, 3.0, k, 0.001) for k in (1, 10, 100, 1000)]
    assert dsr[0] == pytest.approx(psr0)  # one trial: nothing was selected
    assert np.all(np.diff(dsr) < 0)
    assert sharpe_stats(skewed_returns(3), n_trials=1, trial_variance=0.0).dsr == pytest.approx(
        sharpe_stats(skewed_returns(3)).psr["zero"]
    )


def test_to_dict_is_json_ready_with_null_for_an_infinite_track_record():
    out = sharpe_stats(skewed_returns(0), benchmarks={"zero": 0.0, "huge": 1.0}).to_dict()
    assert out["min_trl"]["huge"] is None and out["dsr"] is None
    assert out["psr"]["huge"] < 1e-6


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_indices_are_stationary_bootstrap_blocks():
    rng = np.random.default_rng(0)
    n, length = 500, 8.0
    idx = stationary_bootstrap_indices(n, 400, length, rng)
    assert idx.shape == (400, n) and idx.min() >= 0 and idx.max() < n
    follows = np.diff(idx, axis=1) % n == 1  # continuing a block (wrapping at the end)
    restarts = 1.0 - follows.mean()
    # a new block starts with probability 1/L; a restart landing on the next position
    # is invisible, which takes 1/n of them
    assert restarts == pytest.approx((1 / length) * (1 - 1 / n), abs=0.003)
    assert (idx[:, :-1][follows] == n - 1).any()  # blocks wrap from the last bar to the first


def test_bootstrap_is_deterministic_with_its_seed():
    r = skewed_returns(4)
    a = bootstrap_sharpe_ci(r, n_resamples=300, seed=7)
    b = bootstrap_sharpe_ci(r, n_resamples=300, seed=7)
    c = bootstrap_sharpe_ci(r, n_resamples=300, seed=8)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert (a.low, a.high) == (b.low, b.high)
    assert (a.low, a.high) != (c.low, c.high)
    assert a.low < a.sharpe < a.high
    assert a.block_length == round(len(r) ** (1 / 3))
    # the 2.5 % / 97.5 % quantiles (computed from `level`: (1 - 0.95) / 2 is not 0.025 exactly)
    quantiles = np.quantile(a.samples, [0.025, 0.975])
    assert (a.low, a.high) == pytest.approx(tuple(quantiles), rel=1e-12, abs=1e-15)
    annual = bootstrap_sharpe_ci(r, n_resamples=300, seed=7, periods_per_year=8760)
    assert annual.low_annual == pytest.approx(a.low * math.sqrt(8760))
    assert "samples" not in annual.to_dict()


def test_bootstrap_interval_covers_the_true_sharpe_about_as_often_as_it_says():
    # 200 series of 250 iid normal returns with true per-bar Sharpe 0.1; 90 % intervals
    rng = np.random.default_rng(123)
    hits = 0
    for k in range(200):
        ci = bootstrap_sharpe_ci(rng.normal(0.1, 1.0, 250), level=0.9, n_resamples=300, seed=k)
        hits += ci.low <= 0.1 <= ci.high
    assert 0.84 <= hits / 200 <= 0.96


def test_blocks_widen_the_interval_of_autocorrelated_returns():
    rng = np.random.default_rng(5)
    shocks = rng.normal(0, 1, 3000)
    x = np.empty_like(shocks)
    x[0] = shocks[0]
    for i in range(1, len(x)):  # AR(1), phi = 0.5: the iid bootstrap understates the error
        x[i] = 0.5 * x[i - 1] + shocks[i]
    iid = bootstrap_sharpe_ci(0.05 + x, block_length=1, n_resamples=800)
    blocks = bootstrap_sharpe_ci(0.05 + x, block_length=25, n_resamples=800)
    assert blocks.high - blocks.low > 1.3 * (iid.high - iid.low)


# --------------------------------------------------------------------------- PBO


def ref_pbo(m: np.ndarray, s: int) -> tuple[float, np.ndarray]:
    """CSCV written out split by split: slice, Sharpe (ddof=1), rank with scipy."""
    blocks = np.array_split(np.arange(len(m)), s)
    logits = []
    for pick in combinations(range(s), s // 2):
        rows_in = np.concatenate([blocks[b] for b in pick])
        rows_out = np.concatenate([blocks[b] for b in range(s) if b not in pick])
        sr_in = m[rows_in].mean(0) / m[rows_in].std(0, ddof=1)
        sr_out = m[rows_out].mean(0) / m[rows_out].std(0, ddof=1)
        best = int(np.argmax(sr_in))
        omega = ss.rankdata(sr_out)[best] / (m.shape[1] + 1)
        logits.append(math.log(omega / (1 - omega)))
    logits = np.array(logits)
    return float(np.mean(logits <= 0)), logits


@pytest.mark.parametrize(("t", "n", "s"), [(96, 5, 6), (101, 7, 4), (60, 3, 10)])
def test_pbo_equals_an_independent_split_by_split_computation(t, n, s):
    m = np.random.default_rng(t).normal(0.0003, 0.01, (t, n))
    out = probability_of_backtest_overfitting(m, s)
    pbo, logits = ref_pbo(m, s)
    assert out.n_splits == math.comb(s, s // 2) == len(logits)
    np.testing.assert_allclose(out.logits, logits, rtol=0, atol=1e-9)
    assert out.pbo == pbo


def daily_strategies(edge: bool, seed: int = 11) -> pd.DataFrame:
    """50 strategies over 10 years of daily bars (252 a year), 1 % daily volatility."""
    rng = np.random.default_rng(seed)
    m = rng.normal(0.0, 0.01, (2520, 50))
    if edge:  # strategy 7: annualised Sharpe 2 (per bar 2 / sqrt(252))
        m[:, 7] += 0.01 * 2 / math.sqrt(252)
    idx = pd.bdate_range("2014-01-01", periods=2520, tz="UTC")
    return pd.DataFrame(m, index=idx, columns=[f"s{j}" for j in range(50)])


def test_pbo_flags_noise_and_clears_a_planted_edge():
    """50 strategies, 10 years of daily bars, 12 blocks (924 splits per data set).

    Pure noise: in every split the in-sample and out-of-sample halves are disjoint
    iid bars, so the winner's out-of-sample rank is uniform and E[PBO] = 0.5; but
    the 924 splits of one data set share its bars, so one data set's PBO spreads
    widely around 0.5 (standard deviation about 0.18). The criterion "PBO >= 0.4"
    is therefore checked on the mean over 16 independent data sets (seeds 0-15).
    With an edge (strategy 7 at an annualised Sharpe of 2) PBO <= 0.1 in every one.
    """
    noise, edge = [], []
    for seed in range(16):
        noise.append(probability_of_backtest_overfitting(daily_strategies(False, seed), 12))
        edge.append(probability_of_backtest_overfitting(daily_strategies(True, seed), 12))
    assert 0.4 <= np.mean([r.pbo for r in noise]) <= 0.65
    assert max(r.pbo for r in edge) <= 0.1
    assert np.mean([np.mean(r.selected == 7) for r in edge]) > 0.9  # the edge wins in sample
    assert np.mean([r.prob_oos_loss for r in edge]) < np.mean([r.prob_oos_loss for r in noise])
    summary = edge[0].to_dict()
    assert summary["n_splits"] == math.comb(12, 6) == len(edge[0].logits)
    assert summary["times_selected"]["s7"] == int(np.sum(edge[0].selected == 7))


def test_pbo_default_uses_sixteen_blocks():
    out = probability_of_backtest_overfitting(daily_strategies(True).iloc[:640, :6])
    assert (out.n_blocks, out.n_splits, out.n_bars, out.n_variants) == (16, 12870, 640, 6)
    assert out.names == tuple(f"s{j}" for j in range(6))


# --------------------------------------------------------------------------- paths and plots


def test_path_statistics_match_the_report_metrics():
    rng = np.random.default_rng(9)
    idx = pd.date_range("2024-01-01", periods=400, freq="h", tz="UTC")
    curves = [
        pd.Series(1e4 * np.cumprod(1 + rng.normal(0, 0.01, 400)), index=idx) for _ in range(5)
    ]
    paths = path_statistics(curves, 8760)
    for k, eq in enumerate(curves):
        r = eq.pct_change().dropna()
        assert paths.sharpe[k] == pytest.approx(sharpe_ratio(r, 8760))
        assert paths.max_drawdown[k] == pytest.approx(max_drawdown(eq))
    summary = paths.to_dict()
    assert summary["n_paths"] == 5 and summary["sharpe_summary"]["median"] == pytest.approx(
        float(np.median(paths.sharpe))
    )


def _check_figure(fig, tmp_path, name):
    for ax in fig.axes:
        assert ax.get_title().strip() and ax.get_xlabel().strip() and ax.get_ylabel().strip()
    png = tmp_path / f"{name}.png"
    fig.savefig(png, format="png")
    assert imread(png).shape[0] > 100


def test_plots_of_the_logit_distribution_and_of_path_spreads(tmp_path):
    pbo = probability_of_backtest_overfitting(daily_strategies(edge=False).iloc[:600, :10], 8)
    fig = plot_pbo_logits(pbo)
    assert f"{pbo.pbo:.0%}" in fig.axes[0].get_title()
    # the red bars (λ ≤ 0) add up to the PBO as a share of splits
    red = [p.get_height() for p in fig.axes[0].patches if p.get_facecolor()[0] > 0.8]
    assert sum(red) == pytest.approx(pbo.pbo)
    _check_figure(fig, tmp_path, "pbo")
    paths = PathStats(
        np.array([0.5, 1.2, -0.3, 0.9, 2.0]), np.array([-0.1, -0.2, -0.35, -0.15, -0.05]), 8760
    )
    fig = plot_path_distribution(paths, reference={"sharpe": 1.0, "max_drawdown": -0.12})
    assert "5 backtest paths" in fig.axes[0].get_title()
    _check_figure(fig, tmp_path, "paths")
    with pytest.raises(NoData):
        plot_path_distribution(PathStats(np.array([np.nan]), np.array([-0.1]), 252))


# --------------------------------------------------------------------------- faults


def _series_with_nan() -> pd.Series:
    r = skewed_returns(0)
    r.iloc[17] = np.nan
    return r


FAULTS = [
    (lambda: return_moments(_series_with_nan()), DataError, "row 17"),
    (lambda: return_moments(np.zeros((5, 2))), DataError, "one series"),
    (lambda: return_moments([0.01, 0.02]), DataError, "at least 4"),
    (lambda: return_moments(np.full(50, 0.001)), DataError, "constant"),
    (lambda: probabilistic_sharpe_ratio(0.1, 1), ConfigError, "n=1"),
    (lambda: probabilistic_sharpe_ratio(float("nan"), 100), ConfigError, "finite"),
    (
        lambda: probabilistic_sharpe_ratio(0.1, 100, skew=20.0, kurtosis=1.0),
        ConfigError,
        "kurtosis",
    ),
    (lambda: min_track_record_length(0.1, confidence=1.0), ConfigError, "confidence"),
    (lambda: expected_max_sharpe(0, 0.01), ConfigError, "n_trials"),
    (lambda: expected_max_sharpe(10, -0.01), ConfigError, "negative"),
    (lambda: sharpe_stats(skewed_returns(0), n_trials=10), ConfigError, "both"),
    (lambda: sharpe_stats(skewed_returns(0), trial_sharpes=[]), ConfigError, "empty"),
    (
        lambda: sharpe_stats(skewed_returns(0), trial_sharpes=[0.1, np.nan]),
        DataError,
        "trial_sharpes[1]",
    ),
    (lambda: sharpe_stats(skewed_returns(0), periods_per_year=0), ConfigError, "positive"),
    (lambda: bootstrap_sharpe_ci(skewed_returns(0), block_length=0.5), ConfigError, "block_length"),
    (lambda: bootstrap_sharpe_ci(skewed_returns(0), n_resamples=3), ConfigError, "n_resamples"),
    (lambda: probability_of_backtest_overfitting(np.zeros(100)), DataError, "matrix"),
    (lambda: probability_of_backtest_overfitting(np.zeros((100, 1))), DataError, "variants"),
    (lambda: probability_of_backtest_overfitting(np.ones((100, 3)), 5), ConfigError, "even"),
    (lambda: probability_of_backtest_overfitting(np.ones((20, 3)), 16), DataError, "too few"),
    (
        lambda: probability_of_backtest_overfitting(np.ones((100, 3)), names=["a"]),
        ConfigError,
        "names",
    ),
    (lambda: path_statistics([], 252), DataError, "no path"),
    (lambda: path_statistics([pd.Series([1.0, 1.1, 1.2])], None), ConfigError, "periods_per_year"),
    (lambda: bootstrap_sharpe_ci(skewed_returns(0), periods_per_year=-1), ConfigError, "positive"),
    (lambda: path_statistics([pd.Series([1.0, np.nan, 1.1, 1.2])], 252), DataError, "path 0"),
]


@pytest.mark.parametrize(("call", "error", "text"), FAULTS)
def test_bad_input_is_a_typed_error_that_says_where(call, error, text):
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value)


def test_a_missing_return_in_a_variant_names_its_column_and_bar():
    frame = daily_strategies(edge=False).iloc[:200, :4].copy()
    frame.iloc[33, 2] = np.nan
    with pytest.raises(DataError) as info:
        probability_of_backtest_overfitting(frame, 4)
    err = info.value
    assert (err.row, err.column, err.timestamp) == (33, "s2", frame.index[33])
    assert "fill bars without a position with 0" in str(err)
