"""Forward-looking targets (labels). They are the only columns allowed to look ahead.

Horizons count bars: the forward return at t over h bars is close_{t+h} / close_t - 1.
The last h rows have no future and are NaN in every target.

- `direction(h, threshold=0.0)`: 1.0 if the forward return > threshold, else 0.0.
- `three_class(h, threshold)`: 0 = SELL (r < -threshold), 2 = BUY (r > threshold), 1 = HOLD.
- `forward_return(h)`: the forward simple return itself.
- `forward_volatility(h)`: realized volatility of the next h bars,
  sqrt(sum of squared one-bar log returns t+1..t+h) (not annualised; h=1 gives |r_{t+1}|).

CLI spec strings: `direction:1`, `direction:4:0.002`, `three_class:4:0.003`,
`forward_return:24`, `forward_volatility:24`. Column names carry kind and horizon only
(`direction_4`); two specs that would give the same column are an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError

KINDS = ("direction", "three_class", "forward_return", "forward_volatility")
_SPEC_HELP = (
    "write kind:horizon[:threshold], e.g. direction:1, direction:4:0.002, three_class:4:0.003, "
    "forward_return:24, forward_volatility:24"
)


@dataclass(frozen=True)
class Target:
    """A target definition; call it on bars to get the labelled Series."""

    kind: str
    horizon: int
    threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown target kind {self.kind!r}", fix=_SPEC_HELP)
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or self.horizon < 1:
            raise ConfigError(f"target horizon must be a positive int, got {self.horizon!r}")
        if not np.isfinite(self.threshold) or self.threshold < 0:
            raise ConfigError(f"target threshold must be finite and >= 0, got {self.threshold!r}")

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.horizon}"

    @property
    def spec(self) -> str:
        if self.kind in ("direction", "three_class"):
            return f"{self.kind}:{self.horizon}:{self.threshold:g}"
        return f"{self.kind}:{self.horizon}"

    def __call__(self, bars: pd.DataFrame) -> pd.Series:
        close = bars["close"].to_numpy(dtype=float)
        h = self.horizon
        if self.kind == "forward_volatility":
            values = _forward_volatility(close, h)
        else:
            fwd = _forward_return(close, h)
            if self.kind == "forward_return":
                values = fwd
            elif self.kind == "direction":
                values = np.where(fwd > self.threshold, 1.0, 0.0)
            else:
                values = np.where(
                    fwd > self.threshold, 2.0, np.where(fwd < -self.threshold, 0.0, 1.0)
                )
            values[np.isnan(fwd)] = np.nan
        return pd.Series(values, index=bars.index, name=self.name, dtype=float)


def _forward_return(close: np.ndarray, h: int) -> np.ndarray:
    out = np.full(len(close), np.nan)
    if h < len(close):
        out[:-h] = close[h:] / close[:-h] - 1.0
    return out


def _forward_volatility(close: np.ndarray, h: int) -> np.ndarray:
    out = np.full(len(close), np.nan)
    if h < len(close):
        r2 = np.diff(np.log(close)) ** 2  # r2[i] is the squared return from bar i to i+1
        csum = np.concatenate([[0.0], np.cumsum(r2)])
        # bar t: sum of r2[t .. t+h-1]
        out[:-h] = np.sqrt(np.maximum(csum[h:] - csum[:-h], 0.0))
    return out


def direction(h: int, threshold: float = 0.0) -> Target:
    """1.0 if close_{t+h} / close_t - 1 > threshold, else 0.0; NaN in the last h rows."""
    return Target("direction", h, float(threshold))


def three_class(h: int, threshold: float) -> Target:
    """0 = SELL (r < -threshold), 1 = HOLD, 2 = BUY (r > threshold); NaN in the last h rows."""
    return Target("three_class", h, float(threshold))


def forward_return(h: int) -> Target:
    """close_{t+h} / close_t - 1; NaN in the last h rows."""
    return Target("forward_return", h)


def forward_volatility(h: int) -> Target:
    """sqrt(sum of squared log returns of bars t+1..t+h); NaN in the last h rows."""
    return Target("forward_volatility", h)


def parse_target(spec: str | Target) -> Target:
    """Parse `kind:horizon[:threshold]` (thresholds only for direction and three_class)."""
    if isinstance(spec, Target):
        return spec
    parts = str(spec).strip().split(":")
    kind = parts[0]
    if kind not in KINDS:
        raise ConfigError(f"unknown target {spec!r}", fix=_SPEC_HELP)
    takes_threshold = kind in ("direction", "three_class")
    if len(parts) < 2 or len(parts) > (3 if takes_threshold else 2):
        raise ConfigError(f"malformed target {spec!r}", fix=_SPEC_HELP)
    try:
        horizon = int(parts[1])
        threshold = float(parts[2]) if len(parts) == 3 else None
    except ValueError:
        raise ConfigError(f"malformed target {spec!r}", fix=_SPEC_HELP) from None
    if kind == "three_class" and threshold is None:
        raise ConfigError(
            f"target {spec!r} needs a threshold: HOLD is |return| <= threshold",
            fix="e.g. three_class:4:0.003",
        )
    return Target(kind, horizon, threshold or 0.0)


def parse_targets(specs: Iterable[str | Target]) -> list[Target]:
    """Parse several specs; two specs mapping to the same column name are a ConfigError."""
    out: list[Target] = []
    seen: dict[str, Target] = {}
    for spec in specs:
        target = parse_target(spec)
        if target.name in seen:
            raise ConfigError(
                f"targets {seen[target.name].spec!r} and {target.spec!r} would both be "
                f"column {target.name!r}",
                fix="keep one threshold per kind and horizon",
            )
        seen[target.name] = target
        out.append(target)
    return out


def compute_targets(bars: pd.DataFrame, specs: Iterable[str | Target]) -> pd.DataFrame:
    """One column per target spec, indexed like `bars`."""
    targets = parse_targets(specs)
    return pd.DataFrame({t.name: t(bars) for t in targets}, index=bars.index)
