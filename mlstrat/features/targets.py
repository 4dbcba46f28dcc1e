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

This module is the one place that reads target names and roles: `Target.from_name`
turns a column name back into its target, `horizon_of` reads the horizon of any label
column named `<label>_<h>` (custom labels such as `big_move_4` follow the scheme too),
`is_target_name` and `column_roles` say which columns hold the future, and
`task_targets` picks the targets a predictor task learns from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError

KINDS = ("direction", "three_class", "forward_return", "forward_volatility")
#: Name prefixes of target columns: a column so named is a target even in a frame without roles.
TARGET_PREFIXES: tuple[str, ...] = tuple(f"{kind}_" for kind in KINDS)
#: The target kind each predictor task learns from.
TASK_KINDS = {
    "direction": "direction",
    "three_class": "three_class",
    "volatility": "forward_volatility",
    "regression": "forward_return",
}
#: A target spec to suggest when a task finds no target of its kind.
TASK_EXAMPLES = {
    "direction": "direction:1",
    "three_class": "three_class:1:0.002",
    "volatility": "forward_volatility:24",
    "regression": "forward_return:1",
}
#: A label column's name: `<label>_<horizon in bars>` (`Target.name` writes it).
_LABEL_NAME = re.compile(r"(?P<label>.*)_(?P<horizon>\d+)")
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

    @classmethod
    def from_name(cls, name: Any) -> Target | None:
        """The target a column name stands for (`direction_4` → direction over 4 bars), or None.

        Names carry kind and horizon only, so the threshold comes back as 0.0.
        """
        split = _split_label(name)
        if split is None or split[0] not in KINDS or split[1] < 1:
            return None
        return cls(split[0], split[1])

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


def _split_label(name: Any) -> tuple[str, int] | None:
    """(label, horizon) of a name `<label>_<h>`; None for anything else (None included)."""
    match = _LABEL_NAME.fullmatch(name) if isinstance(name, str) else None
    return None if match is None else (match["label"], int(match["horizon"]))


def horizon_of(name: Any, default: int = 1) -> int:
    """Horizon in bars of a label column named `<label>_<h>` (`direction_3` → 3,
    `big_move_4` → 4); `default` when the name carries none (or is None)."""
    split = _split_label(name)
    return default if split is None else split[1]


def is_target_name(name: Any) -> bool:
    """True for names in the target scheme (`direction_1`, `forward_return_24`, ...)."""
    return str(name).startswith(TARGET_PREFIXES)


def column_roles(frame: Any) -> dict[str, str]:
    """Column → role ("ohlcv", "feature", "target", ...) recorded in a frame's
    `attrs["mlstrat"]["roles"]`; empty when the frame (or None) records none."""
    meta = getattr(frame, "attrs", {}).get("mlstrat")
    roles = meta.get("roles") if isinstance(meta, dict) else None
    if not isinstance(roles, dict):
        return {}
    return {str(k): str(v) for k, v in roles.items()}


def task_targets(columns: Iterable[Any], task: str) -> list[str]:
    """The target columns a predictor of `task` learns from (`direction_*` for "direction",
    `forward_volatility_*` for "volatility", ...), in the given order; [] for other tasks."""
    kind = TASK_KINDS.get(task)
    kinds = [(str(c), Target.from_name(str(c))) for c in columns]
    return [c for c, target in kinds if kind is not None and target and target.kind == kind]


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
