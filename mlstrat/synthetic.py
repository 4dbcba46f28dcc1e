"""Candle files with a planted, observable edge of known size, and their null twins.

A decision rule is judged by its power as well as its false positives: on a file with no
edge it must not trade, on a file whose edge it could have seen it must. This module
makes both kinds of file from the same random numbers, so the twins differ only by the
edge:

* ``regime``: a hidden two-state Markov regime (mean spell `spell` bars). In the active
  state the volatility is 1.6 times higher *and* the price drifts up by `drift` per bar:
  a model that sees realised volatility can see the edge; the oracle is long while the
  regime is active.
* ``momentum``: the drift of the next bar has the sign of the last `lookback` bars'
  return; the oracle follows that sign.
* ``mean_reversion``: the price carries a stationary deviation (an AR(1) of half-life
  about 0.7 × `lookback` bars, standard deviation drift × √lookback) that decays back;
  the oracle fades it while it is more than half a standard deviation away.

Bars are hourly (UTC), with log returns N(drift·state, σ²) per bar, opens at the previous
close plus a small gap, and highs/lows beyond the body.

**The oracle** knows the planted state at each bar's close and trades it the way the
decision layer's fixed-horizon outcomes do: at most one trade at a time, entered at the
next bar's open and closed at the close `horizon` bars later, net of a round trip's
`cost`. `oracle_pnl` books each trade's net return on its entry bar, the per-bar series
whose t-statistic the threshold test computes. `calibrate_drift` finds the drift at which
that t-statistic is expected to be `t_star` over `evidence_bars` bars, measured by
simulation on a long calibration path (the null twin: drift 0, same noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError

EDGES = ("regime", "momentum", "mean_reversion")
#: Calibration bars: the oracle's per-bar Sharpe is measured on this many bars.
CALIBRATION_BARS = 200_000


@dataclass(frozen=True)
class Planted:
    """A planted file: bars, the oracle's side at each bar's close, and how it was made."""

    bars: pd.DataFrame
    state: pd.Series
    edge: str
    drift: float
    horizon: int
    cost: float
    seed: int

    @property
    def null(self) -> bool:
        return self.drift == 0.0

    def oracle(self) -> np.ndarray:
        """The oracle's net P&L per bar (a trade's net return on its entry bar, else 0)."""
        return oracle_pnl(self.bars, self.state.to_numpy(), self.horizon, self.cost)


def planted_market(
    n_bars: int,
    *,
    edge: str = "regime",
    drift: float = 0.0,
    horizon: int = 24,
    cost: float = 0.003,
    sigma: float = 0.006,
    spell: int = 96,
    lookback: int = 24,
    seed: int = 0,
    start: str = "2023-01-01",
    symbol: str = "PLANTED",
) -> Planted:
    """A file of `n_bars` hourly bars with the planted `edge` of size `drift` per bar
    (0: the null twin of the same seed). See the module docstring."""
    if edge not in EDGES:
        raise ConfigError(f"unknown planted edge {edge!r}", param="edge", fix=f"one of {EDGES}")
    n = int(n_bars)
    if n < 2 * max(horizon, lookback, 2):
        raise ConfigError(f"n_bars={n_bars!r} is too short", param="n_bars")
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(n)
    wicks = np.abs(rng.standard_normal((3, n)))
    if edge == "regime":
        active = _regime(n, spell, rng)
        vol = np.where(active, 1.6 * sigma, sigma)
        state = active.astype(float)
        ret = vol * noise + drift * state
    elif edge == "momentum":
        ret, state = _feedback(noise * sigma, drift, lookback)
    else:
        unit = _ornstein_uhlenbeck(rng.standard_normal(n), lookback)
        state = np.where(np.abs(unit) > 0.5, -np.sign(unit), 0.0)
        deviation = drift * np.sqrt(lookback) * unit
        ret = sigma * noise + np.diff(deviation, prepend=0.0)
    close = 100.0 * np.exp(np.cumsum(ret))
    gap = 0.05 * sigma * wicks[0] * np.sign(noise)
    open_ = np.r_[100.0, close[:-1]] * np.exp(gap)
    high = np.maximum(open_, close) * np.exp(0.3 * sigma * wicks[1])
    low = np.minimum(open_, close) * np.exp(-0.3 * sigma * wicks[2])
    index = pd.date_range(start, periods=n, freq="1h", tz="UTC", name="timestamp")
    bars = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": 1000.0 + 0 * close},
        index=index,
    )
    bars.attrs = {"symbol": symbol, "timeframe": "1h"}
    return Planted(
        bars, pd.Series(state, index=index, name="state"), edge, float(drift), int(horizon),
        float(cost), int(seed),
    )  # fmt: skip


def oracle_pnl(bars: pd.DataFrame, state: np.ndarray, horizon: int, cost: float) -> np.ndarray:
    """Net P&L per bar of trading `state` (+1 / −1 / 0 at each bar's close) one trade at a
    time: entry at the next open, exit at the close `horizon` bars later, minus `cost`."""
    o = bars["open"].to_numpy(dtype=float)
    c = bars["close"].to_numpy(dtype=float)
    n = len(c)
    out = np.zeros(n)
    t = 0
    side = np.asarray(state, dtype=float)
    while t < n - horizon:
        if side[t] != 0 and np.isfinite(side[t]):
            gross = side[t] * (c[t + horizon] / o[t + 1] - 1.0)
            out[t] = gross - cost
            t += horizon
        else:
            t += 1
    return out


def per_bar_sharpe(pnl: np.ndarray) -> float:
    """Mean over standard deviation of a per-bar P&L series (0 for a constant series)."""
    sd = float(np.std(pnl))
    return float(np.mean(pnl)) / sd if sd > 0 else 0.0


def calibrate_drift(
    t_star: float,
    evidence_bars: int,
    *,
    edge: str = "regime",
    horizon: int = 24,
    cost: float = 0.003,
    sigma: float = 0.006,
    spell: int = 96,
    lookback: int = 24,
    bars: int = CALIBRATION_BARS,
    seed: int = 12345,
) -> float:
    """The drift at which the oracle's expected t-statistic over `evidence_bars` bars is
    `t_star` (its per-bar Sharpe times √evidence_bars), by bisection on the same
    calibration paths (`bars` bars in files of 20,000, seeds from `seed`)."""
    target = float(t_star) / math.sqrt(int(evidence_bars))
    chunk = 20_000
    seeds = range(seed, seed + max(1, int(bars) // chunk))

    def sharpe(mu: float) -> float:
        pnl = [
            planted_market(chunk, edge=edge, drift=mu, horizon=horizon, cost=cost, sigma=sigma,
                           spell=spell, lookback=lookback, seed=s).oracle()
            for s in seeds
        ]  # fmt: skip
        return per_bar_sharpe(np.concatenate(pnl))

    lo, hi = 0.0, sigma / 8
    while sharpe(hi) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1e-3 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sharpe(mid) < target else (lo, mid)
    return (lo + hi) / 2


def _regime(n: int, spell: int, rng: np.random.Generator) -> np.ndarray:
    """A two-state Markov chain, each state lasting `spell` bars on average."""
    switch = rng.random(n) < 1.0 / float(spell)
    flips = np.cumsum(switch)
    first = rng.random() < 0.5
    return ((flips % 2) == 0) == first


def _feedback(shocks: np.ndarray, drift: float, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns whose drift follows the sign of the last `lookback` bars' return, and that
    sign per bar (the oracle's side at the bar's close)."""
    n = len(shocks)
    ret = np.empty(n)
    state = np.zeros(n)
    window = 0.0
    for t in range(n):
        side = math.copysign(1.0, window) if window else 0.0
        ret[t] = shocks[t] + drift * side
        window += ret[t] - (ret[t - lookback] if t >= lookback else 0.0)
        state[t] = math.copysign(1.0, window) if window else 0.0
    return ret, state


def _ornstein_uhlenbeck(shocks: np.ndarray, lookback: int) -> np.ndarray:
    """A unit-variance AR(1) with coefficient 1 − 1/lookback (half-life ≈ 0.7 lookback)."""
    phi = 1.0 - 1.0 / float(lookback)
    scale = math.sqrt(1.0 - phi * phi)
    out = np.empty(len(shocks))
    level = shocks[0]
    for t, e in enumerate(shocks):
        level = phi * level + scale * e if t else level
        out[t] = level
    return out
