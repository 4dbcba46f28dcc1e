"""The threshold selection test: StepM with Hansen's recentring over a stationary bootstrap.

Checked against the `arch` package's SPA/StepM (mean statistics, its own bootstrap: p-values
agree to Monte Carlo error), against a loop-by-loop reading of the studentized procedure on
the same resamples, for its false-positive rate on families of nested rules with no edge,
and for its power where the rules carry one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from mlstrat.walkforward.selection import (
    bootstrap_means,
    long_run_variance,
    stationary_indices,
    stepdown,
)

GRID = np.round(np.arange(0.5, 0.8 + 1e-9, 0.01), 10)


def nested_rules(n: int, seed: int, edge: float = 0.0, sd: float = 0.01) -> np.ndarray:
    """Per-bar net P&L of long and short rules at every grid threshold on one score.

    The score carries `edge` per bar of information about the bar's return: a rule's
    mean grows with its threshold when edge > 0 and is zero when edge = 0."""
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    ret = rng.normal(0.0, sd, n) + edge * (score - 0.5) * 2
    longs = [np.where(score >= t, ret, 0.0) for t in GRID]
    shorts = [np.where(1 - score >= t, -ret, 0.0) for t in GRID]
    return np.column_stack(longs + shorts)


def test_stationary_indices_continue_blocks_and_wrap() -> None:
    rng = np.random.default_rng(0)
    idx = stationary_indices(50, 5.0, 400, rng)
    assert idx.shape == (400, 50) and idx.min() >= 0 and idx.max() < 50
    steps = (idx[:, 1:] - idx[:, :-1]) % 50
    continued = (steps == 1).mean()
    # a new block starts with probability 1/5 (and lands on the next index 1/50 of the time)
    assert continued == pytest.approx(0.8 + 0.2 / 50, abs=0.01)


def test_bootstrap_means_equal_the_means_of_the_resampled_rows() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 3))
    means = bootstrap_means(x, 4.0, 7, seed=11)
    idx = stationary_indices(40, 4.0, 7, np.random.default_rng(11))
    np.testing.assert_allclose(means, x[idx].mean(axis=1), rtol=1e-12, atol=1e-15)


def test_long_run_variance_matches_the_kernel_formula_by_loops() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(60, 2)) + np.sin(np.arange(60))[:, None]
    n, p = 60, 1 / 6
    d = x - x.mean(axis=0)
    expected = []
    for j in range(2):
        v = sum(d[i, j] ** 2 for i in range(n)) / n
        for lag in range(1, n):
            kappa = (1 - lag / n) * (1 - p) ** lag + (lag / n) * (1 - p) ** (n - lag)
            v += 2 * kappa * sum(d[i, j] * d[i + lag, j] for i in range(n - lag)) / n
        expected.append(v)
    np.testing.assert_allclose(long_run_variance(x, 6.0), expected, rtol=1e-10)


def test_mean_statistics_agree_with_arch_spa_and_stepm() -> None:
    arch = pytest.importorskip("arch.bootstrap")
    reps = 4000
    for seed, edge in ((1, 0.0), (2, 0.0012), (3, 0.003)):
        x = nested_rules(800, seed, edge)[:, ::6]  # 11 rules, still nested and dependent
        ours = stepdown(x, reps=reps, seed=seed, block=10.0, studentize=False)
        spa = arch.SPA(np.zeros(len(x)), -x, block_size=10, reps=reps, seed=seed + 100)
        spa.compute()
        theirs = float(spa.pvalues["consistent"])
        mine = float(ours.pvalue[np.nanargmax(ours.stat)])
        mc = 4 * math.sqrt(max(theirs * (1 - theirs), 0.01) / reps) * math.sqrt(2)
        assert mine == pytest.approx(theirs, abs=mc), (seed, edge)
        step = arch.StepM(np.zeros(len(x)), -x, size=0.05, block_size=10, reps=reps,
                          seed=seed + 100)  # fmt: skip
        step.compute()
        if abs(mine - 0.05) > mc:  # away from the boundary both must decide alike
            assert set(np.flatnonzero(ours.rejected)) == set(step.superior_models)


def test_studentized_stepdown_equals_a_loop_by_loop_reading() -> None:
    x = nested_rules(300, 9, 0.004)[:, ::10]
    n, k, block, reps, alpha = len(x), x.shape[1], 8.0, 500, 0.1
    res = stepdown(x, reps=reps, seed=4, block=block, alpha=alpha)
    # independent reading: resample rows, studentize, recentre, step down
    idx = stationary_indices(n, block, reps, np.random.default_rng(4))
    m = x.mean(axis=0)
    omega = np.sqrt(long_run_variance(x, block))
    t = math.sqrt(n) * m / omega
    floor = -omega * math.sqrt(2 * math.log(math.log(n)) / n)
    centre = [0.0 if m[j] < floor[j] else m[j] for j in range(k)]
    sims = [[math.sqrt(n) * (x[idx[r], j].mean() - centre[j]) / omega[j] for j in range(k)]
            for r in range(reps)]  # fmt: skip
    sims = np.array(sims)
    rejected: set[int] = set()
    while True:
        rest = [j for j in range(k) if j not in rejected]
        if not rest:
            break
        crit = np.quantile(sims[:, rest].max(axis=1), 1 - alpha)
        new = {j for j in rest if t[j] > crit}
        if not new:
            break
        rejected |= new
    np.testing.assert_allclose(res.stat, t, rtol=1e-10)
    assert set(np.flatnonzero(res.rejected)) == rejected
    expected_p = [(sims.max(axis=1) >= t[j]).mean() for j in range(k)]
    np.testing.assert_allclose(res.pvalue, expected_p, rtol=1e-12)


def test_family_wise_false_positive_rate_on_nested_rules_without_edge() -> None:
    seeds = range(60)
    false = sum(stepdown(nested_rules(600, s), reps=400, seed=s).rejected.any() for s in seeds)
    # nominal 5 %; 60 nulls: more than 9 false decisions has probability < 1 %
    assert false <= 9


def test_bonferroni_would_refuse_what_the_stepdown_accepts() -> None:
    x = nested_rules(1500, 21, 0.0035)
    res = stepdown(x, reps=1000, seed=0)
    assert res.rejected.any()
    bonferroni = norm.ppf(1 - 0.05 / x.shape[1])
    assert res.critical < bonferroni - 0.3


def test_identical_rules_need_only_the_one_sided_critical_value() -> None:
    rng = np.random.default_rng(8)
    col = np.where(np.arange(2000) % 4 == 0, rng.normal(0.0, 0.01, 2000), 0.0)
    res = stepdown(np.column_stack([col] * 12), reps=4000, seed=1)
    assert res.critical == pytest.approx(norm.ppf(0.95), abs=0.12)


def test_rules_that_never_trade_take_no_part_and_record_why() -> None:
    x = nested_rules(500, 2, 0.006)
    x[:, 5] = 0.0
    res = stepdown(x, reps=300, seed=0)
    assert math.isnan(res.stat[5]) and not res.rejected[5] and res.pvalue[5] == 1.0
    empty = stepdown(np.zeros((500, 3)), reps=100)
    assert not empty.rejected.any() and math.isinf(empty.critical)
    assert np.isnan(empty.detectable_mean()).all()


def test_detectable_mean_is_the_critical_value_in_the_rules_units() -> None:
    x = nested_rules(900, 4)
    res = stepdown(x, reps=500, seed=2)
    det = res.detectable_mean()
    j = 10
    assert det[j] == pytest.approx(res.critical * res.omega[j] / math.sqrt(900), rel=1e-12)
    # a rule whose mean sat exactly at its detectable mean would have had t = critical
    assert math.sqrt(900) * det[j] / res.omega[j] == pytest.approx(res.critical, rel=1e-12)


def test_same_inputs_and_seed_give_the_same_decision() -> None:
    x = nested_rules(400, 6, 0.002)
    a, b = stepdown(x, reps=300, seed=5), stepdown(x, reps=300, seed=5)
    assert a.pvalue.tobytes() == b.pvalue.tobytes() and a.critical == b.critical
