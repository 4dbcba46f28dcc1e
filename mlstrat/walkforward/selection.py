"""Which candidate trading rules have a real net edge: a stationary-bootstrap stepdown test.

A fold's threshold fit tries many rules at once (each side × each grid threshold), and
the rules are nested and strongly dependent: the trades of threshold 0.61 are mostly
those of 0.60. Bonferroni treats them as independent and so demands an edge no model
has; no correction at all trades noise. This module controls the family-wise error
(the chance that *any* rule with no edge is declared to have one) at ``alpha`` and
keeps the power a dependent family allows:

* every rule is a column of per-bar net P&L (a trade's net return booked on its
  entry bar, 0 elsewhere), all columns on the same bars;
* **studentized statistics** t_j = √n · mean_j / ω_j, with ω_j² the long-run
  variance under the stationary bootstrap's kernel (Hansen 2005, eq. for ω̂²);
* **the stationary bootstrap** (Politis & Romano 1994) resamples bars in blocks of
  geometric length (mean ``block``), the same bars for every column, so both the
  serial dependence of overlapping trades and the dependence between rules are kept;
* **Hansen's (2005) consistent recentring**: a rule whose mean is far below zero
  (below −ω_j·√(2 log log n / n)) is not recentred, so hopeless rules do not raise
  the critical value;
* **Romano & Wolf's (2005) StepM**: reject every rule whose t exceeds the
  (1 − alpha) quantile of the bootstrap max over the rules not yet rejected, remove
  them, repeat until nothing more is rejected.

White's (2000) Reality Check is the first step without studentization and without
recentring; ``studentize=False`` gives the mean-based statistics of the `arch`
package's SPA/StepM, which the tests compare against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlstrat.errors import ConfigError

#: Bootstrap replications of a threshold decision: the p-values' Monte Carlo error is
#: about √(p(1−p)/reps), 0.005 at p = 0.05.
DEFAULT_REPS = 2000


@dataclass(frozen=True)
class Selection:
    """The outcome of `stepdown`: per rule its statistic, adjusted p-value and verdict."""

    mean: np.ndarray
    """Mean net P&L per bar of each rule."""
    omega: np.ndarray
    """Long-run standard deviation ω_j (per bar) used to studentize."""
    stat: np.ndarray
    """t_j = √n · mean_j / ω_j (or √n · mean_j without studentization); NaN: never trades."""
    pvalue: np.ndarray
    """Single-step p-value of each rule against the bootstrap max over all rules."""
    rejected: np.ndarray
    """True where StepM declares the rule's edge positive at family-wise level alpha."""
    critical: float
    """The first step's critical value: the statistic a rule needed to be accepted."""
    n: int
    alpha: float
    block: float
    studentized: bool = True

    def detectable_mean(self) -> np.ndarray:
        """Per rule, the smallest mean net P&L per bar this sample could have accepted:
        the first step's critical value in the rule's own units."""
        if not np.isfinite(self.critical):
            return np.full(len(self.mean), np.nan)
        scale = self.omega if self.studentized else np.ones_like(self.mean)
        return self.critical * scale / math.sqrt(self.n)


def stationary_indices(n: int, block: float, reps: int, rng: np.random.Generator) -> np.ndarray:
    """(reps, n) bar indices of Politis & Romano's stationary bootstrap (circular wrap)."""
    p = 1.0 / float(block)
    idx = np.empty((reps, n), dtype=np.int64)
    idx[:, 0] = rng.integers(0, n, size=reps)
    starts = rng.integers(0, n, size=(reps, n))
    fresh = rng.random((reps, n)) < p
    for i in range(1, n):
        idx[:, i] = np.where(fresh[:, i], starts[:, i], (idx[:, i - 1] + 1) % n)
    return idx


def long_run_variance(x: np.ndarray, block: float) -> np.ndarray:
    """ω² of each column under the stationary bootstrap's kernel (Hansen 2005, §2.2;
    Politis & Romano 1994): the bootstrap variance of √n·mean."""
    n = x.shape[0]
    d = x - x.mean(axis=0)
    p = 1.0 / float(block)
    var = np.einsum("ij,ij->j", d, d) / n
    lags = np.arange(1, n)
    kappa = (1 - lags / n) * (1 - p) ** lags + (lags / n) * (1 - p) ** (n - lags)
    keep = kappa > 1e-12
    for i, k in zip(lags[keep], kappa[keep], strict=True):
        var += 2.0 * k * np.einsum("ij,ij->j", d[: n - i], d[i:]) / n
    return np.maximum(var, 0.0)


def default_block(n: int, horizon: int = 1) -> float:
    """Mean block length: the trades' horizon (overlapping trades share bars) or n^(1/3),
    whichever is longer."""
    return float(max(int(horizon), math.ceil(n ** (1.0 / 3.0)), 1))


def stepdown(
    pnl: np.ndarray,
    *,
    alpha: float = 0.05,
    block: float | None = None,
    reps: int = DEFAULT_REPS,
    seed: int = 0,
    studentize: bool = True,
) -> Selection:
    """Romano–Wolf StepM with Hansen's recentring over the columns of `pnl` (n bars × k rules).

    Columns that never trade (all zero) are never rejected and take no part in the max.
    Same inputs and seed, same result.
    """
    x = np.asarray(pnl, dtype=float)
    if x.ndim != 2:
        raise ConfigError(f"pnl must be a 2-D (bars × rules) array, got shape {x.shape}")
    if not 0.0 < float(alpha) < 0.5:
        raise ConfigError(f"alpha={alpha!r} must be in (0, 0.5)", param="alpha", fix="e.g. 0.05")
    n, k = x.shape
    block = default_block(n) if block is None else float(block)
    active = np.any(x != 0.0, axis=0) & np.all(np.isfinite(x), axis=0)
    mean = np.where(active, np.nan_to_num(x).mean(axis=0) if n else 0.0, 0.0)
    if n < 2 or not active.any():
        nan = np.full(k, np.nan)
        return Selection(mean, np.ones(k), nan, np.ones(k), np.zeros(k, bool), math.inf, n,
                         float(alpha), block, studentize)  # fmt: skip
    xa = x[:, active]
    omega_a = np.sqrt(long_run_variance(xa, block)) if studentize else np.ones(xa.shape[1])
    live = omega_a > 0
    omega = np.ones(k)
    omega[np.flatnonzero(active)] = np.where(live, omega_a, 1.0)
    cols = np.flatnonzero(active)[live]
    xa, omega_a = xa[:, live], omega_a[live]
    m = xa.mean(axis=0)
    root_n = math.sqrt(n)
    t_obs = root_n * m / omega_a
    # Hansen's consistent recentring: rules far below zero keep their (negative) mean
    lrv = long_run_variance(xa, block) if not studentize else omega_a**2
    poor = m < -np.sqrt(lrv / n * 2.0 * math.log(math.log(max(n, 3))))
    centre = np.where(poor, 0.0, m)
    sims = root_n * (bootstrap_means(xa, block, reps, seed) - centre) / omega_a
    rejected_a = np.zeros(len(cols), dtype=bool)
    critical = math.inf
    while not rejected_a.all():
        remaining = ~rejected_a
        cut = float(np.quantile(sims[:, remaining].max(axis=1), 1.0 - float(alpha)))
        if not math.isfinite(critical):
            critical = cut
        new = remaining & (t_obs > cut)
        if not new.any():
            break
        rejected_a |= new
    max_sim = sims.max(axis=1)
    stat = np.full(k, np.nan)
    stat[cols] = t_obs
    pvalue = np.ones(k)
    pvalue[cols] = (max_sim[:, None] >= t_obs[None, :]).mean(axis=0)
    rejected = np.zeros(k, dtype=bool)
    rejected[cols] = rejected_a
    return Selection(
        mean, omega, stat, pvalue, rejected, critical, n, float(alpha), block, studentize
    )


def bootstrap_means(x: np.ndarray, block: float, reps: int, seed: int) -> np.ndarray:
    """(reps, k) column means of `x` over stationary-bootstrap resamples of its rows:
    each resample's row counts times `x` (one matrix product per chunk of resamples)."""
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    out = np.empty((reps, x.shape[1]))
    chunk = max(1, 8_000_000 // n)
    for start in range(0, reps, chunk):
        size = min(chunk, reps - start)
        idx = stationary_indices(n, block, size, rng)
        flat = (idx + (np.arange(size) * n)[:, None]).ravel()
        counts = np.bincount(flat, minlength=size * n).reshape(size, n)
        out[start : start + size] = counts @ x / n
    return out
