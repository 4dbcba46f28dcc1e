"""Look-ahead check for feature functions: perturb the future, watch the past.

``check_leakage(feature_fn, bars)`` computes the features once on the real
bars, then for each cut-off replaces every bar *after* the cut-off with
randomly perturbed but valid OHLCV (open, close, high, low and volume moved
independently, so ratios inside a bar change too) and computes the features
again. A causal feature has identical values at and before the cut-off; any
column whose past values change is reported with the first cut-off and
timestamp where it happened. Users run it on their own feature functions;
the test suite runs it on every built-in feature set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError, DataError

FeatureFn = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class Leak:
    """First evidence of look-ahead in one column."""

    column: str
    cutoff: pd.Timestamp
    timestamp: pd.Timestamp
    original: float
    perturbed: float


@dataclass
class LeakageReport:
    """Columns checked, cut-offs used, and the leaks found (empty when causal)."""

    columns: list[str]
    cutoffs: list[pd.Timestamp]
    leaks: dict[str, Leak] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.leaks

    @property
    def leaky_columns(self) -> list[str]:
        return sorted(self.leaks)

    def summary(self) -> str:
        if self.ok:
            return f"no look-ahead in {len(self.columns)} columns over {len(self.cutoffs)} cut-offs"
        lines = [f"{len(self.leaks)} of {len(self.columns)} columns read the future:"]
        for name in self.leaky_columns:
            leak = self.leaks[name]
            lines.append(
                f"  {name}: value at {leak.timestamp} changed ({leak.original!r} -> "
                f"{leak.perturbed!r}) when bars after {leak.cutoff} changed"
            )
        return "\n".join(lines)

    def raise_if_leaky(self) -> None:
        if not self.ok:
            first = self.leaks[self.leaky_columns[0]]
            raise DataError(
                self.summary().splitlines()[0] + " " + ", ".join(self.leaky_columns),
                column=first.column,
                timestamp=first.timestamp,
                fix="compute each value from bars at or before its own timestamp "
                "(shift(-k), centred windows and full-sample statistics read the future)",
            )


def perturb_after(bars: pd.DataFrame, cutoff: int, rng: np.random.Generator, scale: float = 0.05):
    """Copy of `bars` with rows after position `cutoff` replaced by valid random OHLCV."""
    out = bars.copy()
    n = len(bars) - cutoff - 1
    if n <= 0:
        return out
    tail = slice(cutoff + 1, None)
    o = bars["open"].to_numpy()[tail] * np.exp(rng.normal(0, scale, n))
    c = bars["close"].to_numpy()[tail] * np.exp(rng.normal(0, scale, n))
    h = np.maximum(
        bars["high"].to_numpy()[tail] * np.exp(rng.normal(0, scale, n)), np.maximum(o, c)
    )
    lo = np.minimum(
        bars["low"].to_numpy()[tail] * np.exp(rng.normal(0, scale, n)), np.minimum(o, c)
    )
    v = bars["volume"].to_numpy()[tail] * np.exp(rng.normal(0, 0.5, n))
    cols = list(out.columns)
    for name, values in (("open", o), ("high", h), ("low", lo), ("close", c), ("volume", v)):
        out.iloc[cutoff + 1 :, cols.index(name)] = values
    return out


def _differs(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    both_nan = np.isnan(a) & np.isnan(b)
    close = np.isclose(a, b, rtol=rtol, atol=atol)
    return ~(both_nan | close)


def check_leakage(
    feature_fn: FeatureFn,
    bars: pd.DataFrame,
    *,
    cutoffs: Sequence[Any] | None = None,
    n_cutoffs: int = 4,
    trials: int = 1,
    columns: Sequence[str] | None = None,
    seed: int = 0,
    rtol: float = 1e-9,
    atol: float = 1e-12,
) -> LeakageReport:
    """Report feature columns whose values at or before a cut-off depend on later bars.

    feature_fn: bars -> DataFrame indexed like bars (extra OHLCV columns are ignored).
    cutoffs: timestamps or integer positions; default `n_cutoffs` positions spread over
        the second half of the data (after typical warm-ups), plus one a few bars from
        the end. trials: independent perturbations per cut-off.
    """
    for col in ("open", "high", "low", "close", "volume"):
        if col not in bars.columns:
            raise DataError("bars lack an OHLCV column", column=col, fix="pass Bars from load_bars")
    n = len(bars)
    if n < 3:
        raise DataError(f"need at least 3 bars to check leakage, got {n}")
    if cutoffs is None:
        positions = sorted(
            {int(x) for x in np.linspace(n // 2, n - 2, max(1, n_cutoffs))} | {max(0, n - 4)}
        )
    else:
        positions = []
        for c in cutoffs:
            if isinstance(c, (int, np.integer)):
                pos = int(c)
            else:
                pos = int(bars.index.searchsorted(pd.Timestamp(c), side="right")) - 1
            if not 0 <= pos < n - 1:
                raise ConfigError(f"cut-off {c!r} leaves no bars after it to perturb")
            positions.append(pos)
    base = feature_fn(bars)
    if not isinstance(base, pd.DataFrame) or len(base) != n:
        raise ConfigError("feature_fn must return a DataFrame with one row per bar")
    ohlcv = {"open", "high", "low", "close", "volume"}
    names = list(columns) if columns is not None else [c for c in base.columns if c not in ohlcv]
    missing = [c for c in names if c not in base.columns]
    if missing:
        raise ConfigError(f"feature_fn did not return columns {missing}")
    base_values = base[names].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    report = LeakageReport(columns=names, cutoffs=[bars.index[p] for p in positions])
    for pos in positions:
        for _ in range(trials):
            values = feature_fn(perturb_after(bars, pos, rng))[names].to_numpy(dtype=float)
            bad = _differs(base_values[: pos + 1], values[: pos + 1], rtol, atol)
            for j in np.flatnonzero(bad.any(axis=0)):
                name = names[j]
                row = int(np.argmax(bad[:, j]))
                known = report.leaks.get(name)
                if known is None or bars.index[row] < known.timestamp:
                    report.leaks[name] = Leak(
                        column=name,
                        cutoff=bars.index[pos],
                        timestamp=bars.index[row],
                        original=float(base_values[row, j]),
                        perturbed=float(values[row, j]),
                    )
    return report
