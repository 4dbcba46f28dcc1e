"""Selection-aware statistics of a backtest: how likely is it that this Sharpe is luck?

Conventions (the tests compare each formula with an independent implementation
and with the worked numbers published in the papers):

* **Per-bar statistics.** Every function works on simple per-bar returns and the
  per-bar Sharpe ratio ``SR = mean / std`` (sample standard deviation, ddof=1,
  as `metrics.sharpe_ratio`; no risk-free rate: pass excess returns for one).
  Benchmarks, trial Sharpe ratios and their variance are per bar too. The
  annualised Sharpe ``SR · sqrt(P)`` (P = bars per year, as in `metrics`) is
  reported separately, in fields ending in ``_annual``; a minimum track record
  length is a number of bars, and in years when P is given.
* **Moments.** Skewness γ3 and kurtosis γ4 are the population moments of the
  per-bar returns, γ4 non-excess (3 for a normal distribution), as in Bailey &
  López de Prado. With them ``1 - γ3·SR + (γ4 - 1)/4·SR²`` is never negative,
  since γ4 ≥ 1 + γ3² for any sample.
* **PSR** (Bailey & López de Prado 2012, "The Sharpe Ratio Efficient Frontier"):
  ``PSR(SR*) = Φ((SR - SR*)·sqrt(n - 1) / sqrt(1 - γ3·SR + (γ4 - 1)/4·SR²))``,
  the probability that the true Sharpe exceeds the benchmark SR*.
* **MinTRL** (same paper): ``1 + (1 - γ3·SR + (γ4 - 1)/4·SR²)·(Φ⁻¹(α)/(SR - SR*))²``
  bars, the track record PSR(SR*) needs to reach confidence α (infinite when
  SR ≤ SR*).
* **DSR** (Bailey & López de Prado 2014, "The Deflated Sharpe Ratio"): PSR
  against the Sharpe expected from the best of N unskilled trials,
  ``SR0 = sqrt(V)·((1 - γ)·Φ⁻¹(1 - 1/N) + γ·Φ⁻¹(1 - 1/(N·e)))`` with γ the
  Euler–Mascheroni constant and V the variance of the trials' Sharpe ratios
  (ddof=1 when computed from them); one trial means no selection, SR0 = 0.
* **Bootstrap** (Politis & Romano 1994): stationary bootstrap with geometric
  block lengths of mean L, wrapping around the end; percentile interval.
* **PBO** (Bailey, Borwein, López de Prado & Zhu 2017, "The Probability of
  Backtest Overfitting"): combinatorially symmetric cross-validation over a
  T × N matrix of per-bar returns of N variants; see
  `probability_of_backtest_overfitting`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from itertools import combinations
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError, DataError
from mlstrat.fileio import to_jsonable
from mlstrat.report.metrics import (
    bar_returns,
    excess_kurtosis,
    max_drawdown,
    sharpe_ratio,
    skewness,
)

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()
#: Cells (resamples × bars) drawn at once by the bootstrap: bounds its memory.
_BOOTSTRAP_CELLS = 1 << 20


# --------------------------------------------------------------------------- input checks


def _returns_array(returns: Any, name: str = "returns", *, min_rows: int = 4) -> np.ndarray:
    """A 1-d float array of finite per-bar returns, or a DataError saying where it is not."""
    values = np.asarray(returns, dtype=float)
    if values.ndim != 1:
        raise DataError(
            f"{name} must be one series of per-bar returns, got shape {values.shape}",
            fix="pass one column (a Series or a 1-d array)",
        )
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise DataError(
            f"{name} holds {len(bad)} non-finite value(s)",
            row=int(bad[0]),
            timestamp=_timestamp_at(returns, int(bad[0])),
            fix="drop or fill the missing returns first (e.g. returns.dropna())",
        )
    if len(values) < min_rows:
        raise DataError(
            f"{name} has {len(values)} bars; these statistics need at least {min_rows}",
            fix="use a longer backtest",
        )
    return values


def _timestamp_at(data: Any, row: int) -> Any:
    index = getattr(data, "index", None)
    return index[row] if isinstance(index, pd.DatetimeIndex) else None


def _check_fraction(value: float, name: str) -> float:
    if not (isinstance(value, (int, float)) and 0.0 < value < 1.0):
        raise ConfigError(f"{name}={value!r} must be a probability strictly between 0 and 1")
    return float(value)


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def _check_finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ConfigError(f"{name}={value!r} must be a number")
    if not math.isfinite(float(value)):
        raise ConfigError(f"{name}={value!r} must be finite")
    return float(value)


def _check_periods(periods_per_year: Any) -> float | None:
    """Bars per year as a positive float, or None when not given."""
    if periods_per_year is None:
        return None
    value = _check_finite(periods_per_year, "periods_per_year")
    if value <= 0:
        raise ConfigError(
            f"periods_per_year={periods_per_year!r} must be positive",
            fix="e.g. 8760 for hourly 24/7 bars or 252 for daily equity bars",
        )
    return value


def _annual(value: float | None, periods_per_year: float | None) -> float | None:
    """A per-bar Sharpe ratio annualised by sqrt(P); None without P."""
    if value is None or periods_per_year is None:
        return None
    return float(value) * math.sqrt(periods_per_year)


# --------------------------------------------------------------------------- PSR, MinTRL, DSR


@dataclass(frozen=True)
class ReturnMoments:
    """What PSR and DSR need of a return series: its length, Sharpe and higher moments."""

    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1)
    sharpe: float  # per bar
    skew: float  # population skewness γ3
    kurtosis: float  # population kurtosis γ4, non-excess (3 for a normal)


def return_moments(returns: Any) -> ReturnMoments:
    """Length, per-bar Sharpe, skewness and (non-excess) kurtosis of per-bar returns."""
    r = _returns_array(returns)
    std = float(np.std(r, ddof=1))
    if std == 0 or np.ptp(r) == 0:
        raise DataError(
            "returns are constant: the Sharpe ratio is undefined",
            fix="these statistics need a strategy that trades (returns that vary)",
        )
    mean = float(np.mean(r))
    return ReturnMoments(
        n=len(r),
        mean=mean,
        std=std,
        sharpe=mean / std,
        skew=skewness(r),
        kurtosis=excess_kurtosis(r) + 3.0,
    )


def sharpe_variance_term(sharpe: float, skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """``1 - γ3·SR + (γ4 - 1)/4·SR²``: (n - 1) times the variance of the Sharpe estimate."""
    term = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not term > 0:
        raise ConfigError(
            f"skew={skew:g} and kurtosis={kurtosis:g} leave no variance for a Sharpe of "
            f"{sharpe:g} (1 - skew*SR + (kurtosis-1)/4*SR^2 = {term:g})",
            fix="kurtosis is the non-excess kind (3 for a normal) and at least 1 + skew^2",
        )
    return term


def sharpe_standard_error(sharpe: float, n: int, skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """Standard error of a per-bar Sharpe estimated from `n` bars (Mertens 2002)."""
    n = _check_count(n, "n", 2)
    return math.sqrt(sharpe_variance_term(sharpe, skew, kurtosis) / (n - 1))


def probabilistic_sharpe_ratio(
    sharpe: float, n: int, skew: float = 0.0, kurtosis: float = 3.0, benchmark: float = 0.0
) -> float:
    """P(true Sharpe > `benchmark`) given a per-bar Sharpe from `n` bars with these moments."""
    sharpe = _check_finite(sharpe, "sharpe")
    benchmark = _check_finite(benchmark, "benchmark")
    se = sharpe_standard_error(sharpe, n, skew, kurtosis)
    return _NORMAL.cdf((sharpe - benchmark) / se)


def min_track_record_length(
    sharpe: float,
    skew: float = 0.0,
    kurtosis: float = 3.0,
    benchmark: float = 0.0,
    confidence: float = 0.95,
) -> float:
    """Bars of track record for PSR(`benchmark`) to reach `confidence` (inf if SR ≤ benchmark)."""
    sharpe = _check_finite(sharpe, "sharpe")
    benchmark = _check_finite(benchmark, "benchmark")
    confidence = _check_fraction(confidence, "confidence")
    term = sharpe_variance_term(sharpe, skew, kurtosis)
    if sharpe <= benchmark:
        return math.inf
    return 1.0 + term * (_NORMAL.inv_cdf(confidence) / (sharpe - benchmark)) ** 2


def expected_max_sharpe(n_trials: int, variance: float, mean: float = 0.0) -> float:
    """Expected best Sharpe of `n_trials` unskilled trials whose Sharpes have this variance.

    The false strategy theorem's approximation (Bailey et al. 2014); 0 + mean for
    one trial, where nothing was selected.
    """
    n_trials = _check_count(n_trials, "n_trials", 1)
    variance = _check_finite(variance, "variance")
    if variance < 0:
        raise ConfigError(f"variance={variance!r} of the trials' Sharpe ratios is negative")
    if n_trials == 1:
        return float(mean)
    z = (1.0 - EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / n_trials) + EULER_GAMMA * (
        _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    )
    return float(mean) + math.sqrt(variance) * z


def deflated_sharpe_ratio(
    sharpe: float,
    n: int,
    skew: float,
    kurtosis: float,
    n_trials: int,
    trial_variance: float,
) -> float:
    """PSR against the best Sharpe expected by luck from `n_trials` (all per bar)."""
    benchmark = expected_max_sharpe(n_trials, trial_variance)
    return probabilistic_sharpe_ratio(sharpe, n, skew, kurtosis, benchmark)


def trial_count_and_variance(trial_sharpes: Any) -> tuple[int, float]:
    """N and the sample variance (ddof=1; 0 for one trial) of every trial's per-bar Sharpe."""
    values = np.asarray(trial_sharpes, dtype=float).ravel()
    if not len(values):
        raise ConfigError("trial_sharpes is empty", fix="pass the Sharpe of every trial run")
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise DataError(
            f"trial_sharpes[{bad}] is not a finite number",
            row=bad,
            fix="record a Sharpe for every trial (a trial that never traded has Sharpe 0)",
        )
    return len(values), float(np.var(values, ddof=1)) if len(values) > 1 else 0.0


@dataclass(frozen=True)
class SharpeStats:
    """PSR, MinTRL and (with trials) DSR of one return series, per bar and annualised."""

    n: int
    sharpe: float
    skew: float
    kurtosis: float
    std_error: float
    confidence: float
    benchmarks: dict[str, float]  # per-bar Sharpe of each benchmark
    psr: dict[str, float]
    min_trl: dict[str, float]  # bars (inf: no length suffices)
    periods_per_year: float | None = None
    sharpe_annual: float | None = None
    min_trl_years: dict[str, float] | None = None
    n_trials: int | None = None
    trial_variance: float | None = None  # per-bar Sharpe variance across trials
    expected_max_sharpe: float | None = None  # SR0, per bar
    expected_max_sharpe_annual: float | None = None
    dsr: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (an infinite MinTRL becomes null)."""
        return to_jsonable(asdict(self))


def sharpe_stats(
    returns: Any,
    *,
    benchmarks: Mapping[str, float] | None = None,
    periods_per_year: float | None = None,
    confidence: float = 0.95,
    trial_sharpes: Any = None,
    n_trials: int | None = None,
    trial_variance: float | None = None,
) -> SharpeStats:
    """PSR and MinTRL against each benchmark (default ``{"zero": 0.0}``), and the DSR.

    benchmarks: per-bar Sharpe ratios to beat, e.g. ``{"zero": 0, "buy_and_hold":
    return_moments(bh).sharpe}``. The DSR needs either `trial_sharpes` (the per-bar
    Sharpe of every trial, this one included) or `n_trials` and `trial_variance`.
    """
    m = return_moments(returns)
    confidence = _check_fraction(confidence, "confidence")
    marks = {"zero": 0.0} if benchmarks is None else dict(benchmarks)
    psr = {
        k: probabilistic_sharpe_ratio(m.sharpe, m.n, m.skew, m.kurtosis, v)
        for k, v in marks.items()
    }
    trl = {
        k: min_track_record_length(m.sharpe, m.skew, m.kurtosis, v, confidence)
        for k, v in marks.items()
    }
    periods_per_year = _check_periods(periods_per_year)
    years = None if periods_per_year is None else {k: v / periods_per_year for k, v in trl.items()}
    if trial_sharpes is not None:
        n_trials, trial_variance = trial_count_and_variance(trial_sharpes)
    return SharpeStats(
        n=m.n,
        sharpe=m.sharpe,
        skew=m.skew,
        kurtosis=m.kurtosis,
        std_error=sharpe_standard_error(m.sharpe, m.n, m.skew, m.kurtosis),
        confidence=confidence,
        benchmarks=marks,
        psr=psr,
        min_trl=trl,
        periods_per_year=periods_per_year,
        sharpe_annual=_annual(m.sharpe, periods_per_year),
        min_trl_years=years,
        **_deflated(m, n_trials, trial_variance, periods_per_year),
    )


def _deflated(
    m: ReturnMoments, n_trials: int | None, trial_variance: float | None, periods: float | None
) -> dict[str, Any]:
    """The DSR fields of SharpeStats (none when no trials were given)."""
    if n_trials is None and trial_variance is None:
        return {}
    if n_trials is None or trial_variance is None:
        raise ConfigError(
            "the deflated Sharpe needs both n_trials and trial_variance",
            fix="pass trial_sharpes=[...] (every trial's per-bar Sharpe) instead",
        )
    sr0 = expected_max_sharpe(n_trials, trial_variance)
    return {
        "n_trials": int(n_trials),
        "trial_variance": float(trial_variance),
        "expected_max_sharpe": sr0,
        "expected_max_sharpe_annual": _annual(sr0, periods),
        "dsr": probabilistic_sharpe_ratio(m.sharpe, m.n, m.skew, m.kurtosis, sr0),
    }


# --------------------------------------------------------------------------- bootstrap


def stationary_bootstrap_indices(
    n: int, n_resamples: int, block_length: float, rng: np.random.Generator
) -> np.ndarray:
    """(n_resamples × n) positions of stationary-bootstrap resamples of a length-n series.

    Each position starts a new block with probability 1/`block_length` (so block
    lengths are geometric with that mean) at a uniform random position, and
    otherwise continues the previous block, wrapping from the last bar to the first.
    """
    pos = np.arange(n)
    new = rng.random((n_resamples, n)) < 1.0 / block_length
    new[:, 0] = True
    block = np.cumsum(new.ravel()).reshape(new.shape) - 1
    starts = rng.integers(0, n, size=int(block[-1, -1]) + 1)
    last = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    return (starts[block] + (pos - last)) % n


def _row_sharpes(samples: np.ndarray) -> np.ndarray:
    """Per-bar Sharpe of each row; a row without variance has no edge (0)."""
    mean = samples.mean(axis=1)
    std = samples.std(axis=1, ddof=1)
    out = np.zeros(len(samples))
    np.divide(mean, std, out=out, where=std > 0)
    return out


@dataclass(frozen=True)
class BootstrapCI:
    """Stationary-bootstrap percentile interval of the per-bar Sharpe ratio."""

    sharpe: float
    low: float
    high: float
    level: float
    n_resamples: int
    block_length: float
    seed: int
    periods_per_year: float | None = None
    sharpe_annual: float | None = None
    low_annual: float | None = None
    high_annual: float | None = None
    samples: np.ndarray = field(default=None, repr=False, compare=False)  # per-bar Sharpes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without the resampled Sharpes."""
        return to_jsonable(
            {f.name: getattr(self, f.name) for f in fields(self) if f.name != "samples"}
        )


def bootstrap_sharpe_ci(
    returns: Any,
    *,
    level: float = 0.95,
    n_resamples: int = 2000,
    block_length: float | None = None,
    seed: int = 0,
    periods_per_year: float | None = None,
) -> BootstrapCI:
    """Confidence interval of the Sharpe ratio by the stationary bootstrap (seeded).

    block_length: mean block length in bars (default ``n ** (1/3)`` rounded, the
    rate Politis & White's rule grows at; pass a longer one for returns with longer
    memory). 1 is the ordinary iid bootstrap. The same seed gives the same interval.
    """
    m = return_moments(returns)
    r = _returns_array(returns)
    periods_per_year = _check_periods(periods_per_year)
    level = _check_fraction(level, "level")
    n_resamples = _check_count(n_resamples, "n_resamples", 10)
    if block_length is None:
        block_length = float(max(1, round(m.n ** (1 / 3))))
    block_length = _check_finite(block_length, "block_length")
    if not 1.0 <= block_length <= m.n:
        raise ConfigError(
            f"block_length={block_length:g} must be between 1 and the {m.n} bars of returns"
        )
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CELLS // m.n)
    parts = []
    for first in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - first)
        idx = stationary_bootstrap_indices(m.n, rows, block_length, rng)
        parts.append(_row_sharpes(r[idx]))
    samples = np.concatenate(parts)
    low, high = np.quantile(samples, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return BootstrapCI(
        sharpe=m.sharpe,
        low=float(low),
        high=float(high),
        level=level,
        n_resamples=n_resamples,
        block_length=block_length,
        seed=int(seed),
        periods_per_year=periods_per_year,
        sharpe_annual=_annual(m.sharpe, periods_per_year),
        low_annual=_annual(float(low), periods_per_year),
        high_annual=_annual(float(high), periods_per_year),
        samples=samples,
    )


# --------------------------------------------------------------------------- PBO by CSCV


@dataclass(frozen=True)
class PBOResult:
    """Probability of backtest overfitting and what it was computed from, split by split.

    One entry per split in `logits`, `selected`, `is_sharpe`, `oos_sharpe` and
    `oos_rank`: the variant with the best in-sample Sharpe, its Sharpe in and out
    of sample (per bar), its relative out-of-sample rank ω in (0, 1) and the logit
    λ = ln(ω / (1 - ω)).
    """

    pbo: float
    n_bars: int
    n_variants: int
    n_blocks: int
    n_splits: int
    names: tuple[str, ...]
    logits: np.ndarray = field(repr=False)
    selected: np.ndarray = field(repr=False)
    is_sharpe: np.ndarray = field(repr=False)
    oos_sharpe: np.ndarray = field(repr=False)
    oos_rank: np.ndarray = field(repr=False)

    @property
    def prob_oos_loss(self) -> float:
        """Share of splits whose in-sample winner loses money out of sample."""
        return float(np.mean(self.oos_sharpe < 0))

    def degradation(self) -> tuple[float, float]:
        """Slope and intercept of out-of-sample on in-sample Sharpe (NaN if IS is constant)."""
        if np.ptp(self.is_sharpe) == 0:
            return math.nan, math.nan
        slope, intercept = np.polyfit(self.is_sharpe, self.oos_sharpe, 1)
        return float(slope), float(intercept)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: PBO, sizes, logit quartiles, loss probability, degradation."""
        slope, intercept = self.degradation()
        q = np.quantile(self.logits, [0.05, 0.25, 0.5, 0.75, 0.95])
        return to_jsonable(
            {
                "pbo": self.pbo,
                "n_bars": self.n_bars,
                "n_variants": self.n_variants,
                "n_blocks": self.n_blocks,
                "n_splits": self.n_splits,
                "logit_quantiles": dict(zip(("5%", "25%", "50%", "75%", "95%"), q, strict=True)),
                "prob_oos_loss": self.prob_oos_loss,
                "degradation_slope": slope,
                "degradation_intercept": intercept,
                "times_selected": {
                    name: int(count)
                    for name, count in zip(
                        self.names,
                        np.bincount(self.selected, minlength=self.n_variants),
                        strict=True,
                    )
                    if count
                },
            }
        )


def _returns_matrix(
    returns: Any, names: Sequence[str] | None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """T × N finite float matrix and the variants' names, or a DataError naming the cell."""
    if isinstance(returns, pd.DataFrame):
        names = tuple(str(c) for c in returns.columns) if names is None else tuple(names)
    values = np.asarray(returns, dtype=float)
    if values.ndim != 2:
        raise DataError(
            f"returns must be a bars × variants matrix, got shape {values.shape}",
            fix="one column of per-bar returns per variant (a DataFrame or a 2-d array)",
        )
    t, n = values.shape
    names = tuple(f"variant_{j}" for j in range(n)) if names is None else tuple(names)
    if len(names) != n:
        raise ConfigError(f"{len(names)} names for {n} variants")
    if n < 2:
        raise DataError(
            f"PBO compares variants; got {n}", fix="pass the returns of every variant tried"
        )
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        row, col = (int(v) for v in bad[0])
        raise DataError(
            f"returns hold {len(bad)} non-finite value(s)",
            row=row,
            timestamp=_timestamp_at(returns, row),
            column=names[col],
            fix="align the variants on the same bars and fill bars without a position with 0",
        )
    return values, names


def _pooled_sharpe(
    weights: np.ndarray, stats: tuple[np.ndarray, ...], means: np.ndarray
) -> np.ndarray:
    """Per-bar Sharpe of every variant over each row's union of blocks (0 without variance).

    `stats` are per-block counts, sums and sums of squares of the returns minus each
    variant's overall mean (so the variance does not cancel catastrophically).
    """
    counts, sums, squares = stats
    n = (weights @ counts)[:, None]
    s = weights @ sums
    var = (weights @ squares - s**2 / n) / (n - 1)
    mean = s / n + means
    out = np.zeros_like(mean)
    np.divide(mean, np.sqrt(np.maximum(var, 0.0)), out=out, where=var > 0)
    return out


def probability_of_backtest_overfitting(
    returns: Any, n_blocks: int = 16, *, names: Sequence[str] | None = None
) -> PBOResult:
    """PBO by combinatorially symmetric cross-validation over per-bar returns of N variants.

    The T bars are cut into `n_blocks` (S, even) contiguous blocks of equal size (±1
    bar when S does not divide T). Each of the C(S, S/2) ways to pick half of them
    is one split: the picked blocks, kept in time order, are in-sample, the others
    out-of-sample. The variant with the best in-sample Sharpe is ranked among all
    variants out of sample (rank 1 = worst, average rank on ties); ω = rank / (N + 1)
    and λ = ln(ω / (1 - ω)). PBO is the share of splits with λ ≤ 0: the in-sample
    winner did no better than the median out of sample.
    """
    values, names = _returns_matrix(returns, names)
    t, n_variants = values.shape
    s = _check_count(n_blocks, "n_blocks", 2)
    if s % 2:
        raise ConfigError(f"n_blocks={s} must be even (the halves are symmetric)")
    if t < 2 * s:
        raise DataError(
            f"{t} bars are too few for {s} blocks of at least 2 bars",
            fix=f"use n_blocks <= {max(2, (t // 2) // 2 * 2)} or a longer backtest",
        )
    means = values.mean(axis=0)
    centred = values - means
    starts = np.array([b[0] for b in np.array_split(np.arange(t), s)])
    stats = (
        np.diff(np.append(starts, t)).astype(float),
        np.add.reduceat(centred, starts, axis=0),
        np.add.reduceat(centred**2, starts, axis=0),
    )
    picks = np.array(list(combinations(range(s), s // 2)))
    inside = np.zeros((len(picks), s))
    np.put_along_axis(inside, picks, 1.0, axis=1)
    is_sr = _pooled_sharpe(inside, stats, means)
    oos_sr = _pooled_sharpe(1.0 - inside, stats, means)
    rows = np.arange(len(picks))
    best = np.argmax(is_sr, axis=1)
    chosen = oos_sr[rows, best][:, None]
    rank = (oos_sr < chosen).sum(axis=1) + ((oos_sr == chosen).sum(axis=1) + 1) / 2.0
    omega = rank / (n_variants + 1.0)
    logits = np.log(omega / (1.0 - omega))
    return PBOResult(
        pbo=float(np.mean(logits <= 0)),
        n_bars=t,
        n_variants=n_variants,
        n_blocks=s,
        n_splits=len(picks),
        names=names,
        logits=logits,
        selected=best,
        is_sharpe=is_sr[rows, best],
        oos_sharpe=chosen[:, 0],
        oos_rank=omega,
    )


# --------------------------------------------------------------------------- path distributions


@dataclass(frozen=True)
class PathStats:
    """Annualised Sharpe and maximum drawdown of each backtest path (e.g. CPCV paths)."""

    sharpe: np.ndarray  # annualised
    max_drawdown: np.ndarray  # fractions, <= 0
    periods_per_year: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready per-path values and their quantiles."""

        def summary(values: np.ndarray) -> dict[str, float]:
            finite = values[np.isfinite(values)]
            if not len(finite):
                return {}
            q = np.quantile(finite, [0.0, 0.05, 0.5, 0.95, 1.0])
            return {
                "mean": float(finite.mean()),
                **dict(zip(("min", "5%", "median", "95%", "max"), q, strict=True)),
            }

        return to_jsonable(
            {
                "n_paths": len(self.sharpe),
                "periods_per_year": self.periods_per_year,
                "sharpe": self.sharpe,
                "max_drawdown": self.max_drawdown,
                "sharpe_summary": summary(self.sharpe),
                "max_drawdown_summary": summary(self.max_drawdown),
                "share_negative_sharpe": float(np.mean(self.sharpe < 0))
                if len(self.sharpe)
                else None,
            }
        )


def path_statistics(equity_curves: Sequence[pd.Series], periods_per_year: float) -> PathStats:
    """Annualised Sharpe (as `metrics.sharpe_ratio`) and max drawdown of each path's equity."""
    periods = _check_periods(periods_per_year)
    if periods is None:
        raise ConfigError("path_statistics needs periods_per_year to annualise the Sharpe")
    if not len(equity_curves):
        raise DataError("no path equity curves", fix="backtest at least one path")
    sharpes, drawdowns = [], []
    for k, equity in enumerate(equity_curves):
        if len(equity) < 3 or not np.isfinite(np.asarray(equity, dtype=float)).all():
            raise DataError(
                f"path {k}'s equity has {len(equity)} bars or non-finite values",
                fix="pass each path's full equity curve",
            )
        sharpes.append(sharpe_ratio(bar_returns(equity), periods))
        drawdowns.append(max_drawdown(equity))
    return PathStats(np.array(sharpes), np.array(drawdowns), periods)


# --------------------------------------------------------------------------- a backtest's statistics


def trial_sharpe(returns: Any) -> float:
    """Per-bar Sharpe of one trial's returns; 0 for a trial without variance (it never traded)."""
    values = np.asarray(returns, dtype=float).ravel()
    if len(values) < 2:
        return 0.0
    return float(_row_sharpes(values[None, :])[0])


@dataclass(frozen=True)
class TrialSet:
    """Everything tried: each trial's per-bar Sharpe (the DSR's N and variance) and, where it
    was recorded, its per-bar returns (PBO); `source` says where the trials come from."""

    sharpes: Mapping[str, float]
    returns: Mapping[str, pd.Series] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    def sharpe_values(self, risk_free: float = 0.0) -> np.ndarray:
        """Every trial's per-bar Sharpe; of returns minus `risk_free` (per bar) where recorded."""
        return np.array(
            [
                trial_sharpe(self.returns[k] - risk_free) if k in self.returns else float(v)
                for k, v in self.sharpes.items()
            ]
        )


@dataclass(frozen=True)
class StatisticsOptions:
    """How a report computes its selection-aware statistics: the trials behind it (None: this
    backtest is the only one known), the confidence, the seeded bootstrap and PBO's blocks."""

    trials: TrialSet | None = None
    confidence: float = 0.95
    n_resamples: int = 2000
    seed: int = 0
    pbo_blocks: int = 16


def backtest_statistics(
    returns: pd.Series,
    benchmark: pd.Series | None,
    periods_per_year: float,
    reason: str,
    options: StatisticsOptions,
    risk_free: float = 0.0,
) -> dict[str, Any]:
    """The ``statistics`` block of a report: PSR against 0 and buy-and-hold, DSR over the
    trials, MinTRL and the bootstrap interval of the per-bar returns less `risk_free` (per bar).

    Undefined statistics (constant returns: a backtest that never traded) give the reason
    under ``undefined`` instead of numbers.
    """
    head: dict[str, Any] = {
        "returns": f"simple per-bar returns of the equity curve ({len(returns)} bars)"
        + (f" minus the risk-free rate ({risk_free:g} per bar)" if risk_free else ""),
        "annualisation": f"annualised Sharpe = per-bar Sharpe × √{periods_per_year:g} ({reason})",
        "kurtosis_kind": "non-excess (3 for normal returns)",
    }
    excess = returns - risk_free
    try:
        own = return_moments(excess).sharpe
    except DataError as exc:
        return {**head, "undefined": exc.problem}
    marks = {"zero": 0.0}
    if benchmark is not None and len(benchmark) >= 4 and np.ptp(benchmark.to_numpy(float)) > 0:
        marks["buy_and_hold"] = return_moments(benchmark - risk_free).sharpe
    trials = options.trials
    if trials is None or not trials.sharpes:
        sharpes, source = np.array([own]), "this backtest only (no trial log)"
    else:
        sharpes, source = trials.sharpe_values(risk_free), trials.source
    found = sharpe_stats(
        excess,
        benchmarks=marks,
        periods_per_year=periods_per_year,
        confidence=options.confidence,
        trial_sharpes=sharpes,
    )
    boot = bootstrap_sharpe_ci(
        excess,
        level=options.confidence,
        n_resamples=options.n_resamples,
        seed=options.seed,
        periods_per_year=periods_per_year,
    )
    return {**head, **found.to_dict(), "trials": source, "bootstrap": boot.to_dict()}


def union_index(variants: Mapping[str, pd.Series]) -> pd.DatetimeIndex:
    """Every bar of any variant, in time order."""
    indexes = [pd.DatetimeIndex(s.index) for s in variants.values()]
    out = indexes[0]
    for index in indexes[1:]:
        out = out.union(index)
    return out


def aligned_returns(
    variants: Mapping[str, pd.Series], index: pd.DatetimeIndex, min_coverage: float = 0.9
) -> pd.DataFrame:
    """Per-bar returns of every variant on the bars of `index` (0 where a variant had no bar:
    no position), keeping the variants that cover at least `min_coverage` of those bars."""
    columns = {}
    for name, series in variants.items():
        covered = series.index.isin(index).sum() / max(len(index), 1)
        if covered >= min_coverage:
            columns[name] = series.reindex(index).fillna(0.0).to_numpy(float)
    return pd.DataFrame(columns, index=index)


def variants_pbo(returns: pd.DataFrame, n_blocks: int) -> tuple[PBOResult | None, str | None]:
    """PBO over the columns of `returns`, or (None, why not) when it cannot be computed."""
    try:
        return probability_of_backtest_overfitting(returns, n_blocks), None
    except (DataError, ConfigError) as exc:
        return None, exc.problem
