"""Dynamic thresholds: hand-built validation sets with known best thresholds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from mlstrat.errors import ConfigError
from mlstrat.walkforward.thresholds import apply_thresholds, default_thresholds, fit_thresholds


def validation_set() -> tuple[np.ndarray, np.ndarray]:
    # 40 rows at P(up)=0.55 (20 up), 30 at 0.65 (24 up), 10 at 0.75 (9 up)
    up = np.r_[np.full(40, 0.55), np.full(30, 0.65), np.full(10, 0.75)]
    y = np.r_[
        np.r_[np.ones(20), np.zeros(20)], np.r_[np.ones(24), np.zeros(6)], np.r_[np.ones(9), 0]
    ]
    return up, y


def test_precision_picks_lowest_threshold_of_best_group() -> None:
    up, y = validation_set()
    th = fit_thresholds(up, y, objective="precision", min_signals=10)
    # thresholds in (0.65, 0.75] trade only the 10 rows at 0.75: precision 0.9, the best
    assert th.long == pytest.approx(0.66)
    assert th.long_score == pytest.approx(0.9) and th.long_signals == 10
    # P(down) <= 0.45 everywhere: no short candidate reaches 10 signals -> fallback 0.6
    assert th.short == pytest.approx(0.6) and th.short_signals == 0 and not th.fitted
    # with min_signals 11 the 0.75 group alone is too small -> (0.55, 0.65]: 33/40
    th = fit_thresholds(up, y, objective="precision", min_signals=11)
    assert th.long == pytest.approx(0.56) and th.long_score == pytest.approx(33 / 40)


def test_wilson_lower_bound_matches_scipy() -> None:
    up, y = validation_set()
    th = fit_thresholds(up, y, min_signals=5)
    candidates = {0.5: (53, 80), 0.56: (33, 40), 0.66: (9, 10)}
    lcb = {
        t: binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson").low
        for t, (k, n) in candidates.items()
    }
    best = max(lcb, key=lcb.get)
    assert th.long == pytest.approx(best)
    assert th.long_score == pytest.approx(lcb[best], rel=1e-6)


def test_f1_prefers_coverage() -> None:
    up, y = validation_set()
    th = fit_thresholds(up, y, objective="f1", min_signals=5)
    # F1 at 0.5: p=53/80, r=1 -> 0.797; at 0.56: p=.825, r=33/53 -> 0.710; at 0.66: lower
    assert th.long == pytest.approx(0.5)


def test_symbol_multiplier_and_clipping() -> None:
    up, y = validation_set()
    base = fit_thresholds(up, y, objective="precision", min_signals=10)
    th = fit_thresholds(
        up, y, objective="precision", min_signals=10, symbol="SOLUSDT", multipliers={"SOLUSDT": 1.1}
    )
    assert th.long == pytest.approx(base.long * 1.1) and th.multiplier == 1.1
    th = fit_thresholds(
        up, y, objective="precision", min_signals=10, symbol="SOLUSDT", multipliers={"SOLUSDT": 2}
    )
    assert th.long == pytest.approx(0.8) and th.short == pytest.approx(0.8)
    other = fit_thresholds(
        up, y, objective="precision", min_signals=10, symbol="BTCUSDT", multipliers={"SOLUSDT": 2}
    )
    assert other.long == base.long


def test_short_side_and_nan_rows() -> None:
    up, y = validation_set()
    down_up = 1 - up  # mirror: the same structure on the short side
    y_mirror = 1 - y
    th = fit_thresholds(
        np.r_[down_up, np.nan], np.r_[y_mirror, 1.0], objective="precision", min_signals=10
    )
    assert th.short == pytest.approx(0.66) and th.short_signals == 10


def test_three_class_sides() -> None:
    p_buy = np.r_[np.full(20, 0.7), np.full(20, 0.2)]
    p_sell = np.r_[np.full(20, 0.1), np.full(20, 0.72)]
    y_buy = np.r_[np.ones(15), np.zeros(25)]
    y_sell = np.r_[np.zeros(20), np.ones(18), np.zeros(2)]
    th = fit_thresholds(
        p_buy, y_buy, proba_down=p_sell, y_down=y_sell, objective="precision", min_signals=10
    )
    assert th.long == pytest.approx(0.5) and th.long_score == pytest.approx(0.75)
    assert th.short == pytest.approx(0.5) and th.short_score == pytest.approx(0.9)


def test_apply_thresholds() -> None:
    up = np.array([0.9, 0.6, 0.5, 0.3, 0.1, np.nan])
    sig = apply_thresholds(up, 1 - up, 0.6, 0.7)
    np.testing.assert_array_equal(sig[:5], [1, 1, 0, -1, -1])
    assert np.isnan(sig[5])
    # both sides trigger (low thresholds): the more probable side wins
    np.testing.assert_array_equal(
        apply_thresholds(np.array([0.55]), np.array([0.6]), 0.5, 0.5), [-1]
    )
    assert default_thresholds().long == 0.6


@pytest.mark.parametrize(
    "kwargs", [{"objective": "sharpe"}, {"low": 0.9, "high": 0.8}, {"fallback": 0.95}]
)
def test_bad_threshold_config(kwargs) -> None:
    up, y = validation_set()
    with pytest.raises(ConfigError):
        fit_thresholds(up, y, **kwargs)
