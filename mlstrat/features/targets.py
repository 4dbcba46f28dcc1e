"""Forward-looking targets (labels). They are the only columns allowed to look ahead.

Horizons count bars: the forward return at t over h bars is close_{t+h} / close_t - 1.
The last h rows have no future and are NaN in every target.

- `direction(h, threshold=0.0)`: 1.0 if the forward return > threshold, else 0.0.
- `three_class(h, threshold)`: 0 = SELL (r < -threshold), 2 = BUY (r > threshold), 1 = HOLD.
- `forward_return(h)`: the forward simple return itself.
- `forward_volatility(h)`: realized volatility of the next h bars,
  sqrt(sum of squared one-bar log returns t+1..t+h) (not annualised; h=1 gives |r_{t+1}|).

Event labels (`mlstrat.features.labels`, AFML ch. 3) end when they are decided, which may
be before t+h; each keeps its end time `t1`, stored in the feed as the column
`<name>_t1` with role "t1" (never a feature) so walk-forward purges every row by its own end:

- `triple_barrier(h, pt, sl)`: from a long's view, +1 if the profit-take barrier
  (+pt × σ_t) is touched first, -1 the stop-loss (-sl × σ_t), 0 at the vertical barrier
  after h bars. σ is the volatility **over the label's horizon** (`scale="horizon"`, the
  default): the causal EWM volatility of one-bar log returns times √h, with an EWM span
  of `volatility_span(h)` bars (`VOLATILITY_SPAN`, or four horizons when that is longer).
  A 1σ barrier is then a move a random walk makes about as often as not within h bars,
  so trades last most of the horizon and need to win about half the time to break even
  before costs. `scale="bar"` (spec suffix `:bar`) keeps the per-bar σ (AFML's daily σ
  applied to bars, span `VOLATILITY_SPAN`): barriers √h times narrower, touched after a
  few bars, so a trade must win (σ + cost) / 2σ of the time. Rows in the warm-up are NaN.
- `price_jump(h, size)`: +1 / -1 if the price moves up / down by `size` first within h
  bars, else 0; `size` is a fraction (0.02 = 2 %) or, with `sigmas=True`, a multiple of σ_t
  (scaled like the triple barrier's).
  (Not `jump_h`: the xgb feature set has causal `jump_*` features; the spec `jump:...`
  is accepted as an alias.)
- `net_return(h, commission, slippage)`: the h-bar forward return minus a round trip's
  cost, 2 × (commission + slippage) (default the demo's 0.1 % and 5 bp).

How tasks learn event labels (`encode_labels`, `TASK_LEARNS`): a **direction** model learns
"the up barrier came first" (+1 → 1; -1 and 0 → 0), so its P(up) is the probability of the
long's profit-take before anything else; a **three_class** model learns -1 / 0 / +1 as
SELL / HOLD / BUY (0 / 1 / 2, the `three_class_h` coding); a **regression** model learns
`net_return_h` as it is. Labels are stored as -1 / 0 / +1 and coded where a model reads them.

CLI spec strings: `direction:1`, `direction:4:0.002`, `three_class:4:0.003`,
`forward_return:24`, `forward_volatility:24`, `triple_barrier:24` (pt = sl = 1),
`triple_barrier:24:2:1` (pt 2 σ, sl 1 σ of 24-bar moves), `triple_barrier:24:1:1:bar`
(per-bar σ), `price_jump:24:0.02` (2 %), `price_jump:24:2sigma` (`:bar` likewise),
`net_return:24` or `net_return:24:0.001:0.0005` (commission, slippage per side). Column
names carry kind and horizon only (`direction_4`, `triple_barrier_24`); two specs that
would give the same column are an error.

This module is the one place that reads target names and roles: `Target.from_name`
turns a column name back into its target, `horizon_of` reads the horizon of any label
column named `<label>_<h>` (custom labels such as `big_move_4` follow the scheme too),
`is_target_name` and `column_roles` say which columns hold the future, and
`task_targets` picks the targets a predictor task learns from.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.errors import ConfigError

#: Event-label kinds: decided at their own end time t1 (stored beside the label).
EVENT_KINDS = ("triple_barrier", "price_jump", "net_return")
KINDS = ("direction", "three_class", "forward_return", "forward_volatility", *EVENT_KINDS)
#: Name prefixes of target columns: a column so named is a target even in a frame without roles.
TARGET_PREFIXES: tuple[str, ...] = tuple(f"{kind}_" for kind in KINDS)
#: Role of the end-time columns (`end_column`) in a feature feed.
END_ROLE = "t1"
#: EWM span (bars) of the volatility σ that scales triple-barrier and σ-sized jump labels.
VOLATILITY_SPAN = 100
#: How σ-scaled barriers scale: σ of the label's horizon (default) or of one bar.
SCALES = ("horizon", "bar")
#: Event kinds whose labels are -1 / 0 / +1 (coded per task by `encode_labels`).
_SIGNED_KINDS = ("triple_barrier", "price_jump")
#: The target kind each predictor task learns from.
TASK_KINDS = {
    "direction": "direction",
    "three_class": "three_class",
    "volatility": "forward_volatility",
    "regression": "forward_return",
}
#: Every target kind a task learns: its own kind first (the default target), then the event
#: labels it reads in its own coding (`encode_labels`).
TASK_LEARNS = {
    "direction": ("direction", *_SIGNED_KINDS),
    "three_class": ("three_class", *_SIGNED_KINDS),
    "volatility": ("forward_volatility",),
    "regression": ("forward_return", "net_return"),
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
    "write kind:horizon[:...], e.g. direction:1, direction:4:0.002, three_class:4:0.003, "
    "forward_return:24, forward_volatility:24, triple_barrier:24:2:1, price_jump:24:0.02, "
    "price_jump:24:2sigma, net_return:24:0.001:0.0005"
)
_SIGMA_SUFFIX = "sigma"


@dataclass(frozen=True)
class Target:
    """A target definition; call it on bars to get the labelled Series (`labels` for the
    event kinds' whole label frame with end times).

    threshold: direction / three_class move threshold; price_jump size (a fraction, or σ
    multiples when `sigmas`). profit_take / stop_loss: triple-barrier widths in σ.
    commission / slippage: net_return's cost per side (fractions of notional).
    """

    kind: str
    horizon: int
    threshold: float = 0.0
    profit_take: float = 1.0
    stop_loss: float = 1.0
    sigmas: bool = False
    commission: float = 0.001
    slippage: float = 0.0005
    scale: str = "horizon"

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ConfigError(f"unknown barrier scale {self.scale!r}", fix=f"use one of {SCALES}")
        if self.kind not in KINDS:
            raise ConfigError(f"unknown target kind {self.kind!r}", fix=_SPEC_HELP)
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or self.horizon < 1:
            raise ConfigError(f"target horizon must be a positive int, got {self.horizon!r}")
        for name in ("threshold", "profit_take", "stop_loss"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"target {name} must be finite and >= 0, got {value!r}")
        for name in ("commission", "slippage"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0 <= value < 1):
                raise ConfigError(f"target {name} must be a fraction in [0, 1), got {value!r}")
        if self.kind == "triple_barrier" and not (self.profit_take or self.stop_loss):
            raise ConfigError(
                "a triple barrier needs a profit-take or a stop-loss width > 0",
                fix="e.g. triple_barrier:24:1:1",
            )

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
    def is_event(self) -> bool:
        """True for labels decided at their own end time t1 (kept in `end_column(name)`)."""
        return self.kind in EVENT_KINDS

    @property
    def spec(self) -> str:
        """The spec string that parses back to this target (`parse_target`)."""
        head = f"{self.kind}:{self.horizon}"
        if self.kind in ("direction", "three_class"):
            return f"{head}:{self.threshold:g}"
        if self.kind == "triple_barrier":  # the scale always written: see `recorded_target`
            return f"{head}:{self.profit_take:g}:{self.stop_loss:g}:{self.scale}"
        if self.kind == "price_jump" and self.sigmas:
            return f"{head}:{self.threshold:g}{_SIGMA_SUFFIX}:{self.scale}"
        if self.kind == "price_jump":
            return f"{head}:{self.threshold:g}"
        if self.kind == "net_return":
            return f"{head}:{self.commission:g}:{self.slippage:g}"
        return head

    def labels(self, bars: pd.DataFrame) -> pd.DataFrame:
        """An event target's label frame (`mlstrat.features.labels`): label, t1, t1_pos, ...;
        a ConfigError for the fixed-horizon kinds, whose end is always t + horizon."""
        from mlstrat.features import labels as lab

        h = self.horizon
        if self.kind == "triple_barrier":
            return lab.triple_barrier_labels(
                bars, h, profit_take=self.profit_take, stop_loss=self.stop_loss,
                volatility=self.barrier_volatility(bars),
            )  # fmt: skip
        if self.kind == "price_jump" and self.sigmas:
            return lab.jump_labels(
                bars, h, sigmas=self.threshold, volatility=self.barrier_volatility(bars)
            )
        if self.kind == "price_jump":
            return lab.jump_labels(bars, h, threshold=self.threshold)
        if self.kind == "net_return":
            return lab.net_forward_returns(
                bars, h, commission=self.commission, slippage=self.slippage
            )
        raise ConfigError(
            f"target {self.name!r} has a fixed horizon: it ends at t + {h}, no label frame",
            fix="call the target itself for its values",
        )

    def barrier_volatility(self, bars: pd.DataFrame) -> pd.Series:
        """The σ that σ-scaled barriers are multiples of (module docstring): per-bar EWM
        volatility × √h over `volatility_span(h)` bars, or per bar with ``scale="bar"``."""
        from mlstrat.features.labels import ewm_volatility

        if self.scale == "bar":
            return ewm_volatility(bars["close"], VOLATILITY_SPAN)
        span = volatility_span(self.horizon)
        return ewm_volatility(bars["close"], span) * float(np.sqrt(self.horizon))

    def __call__(self, bars: pd.DataFrame) -> pd.Series:
        if self.is_event:
            label = self.labels(bars)["label"].to_numpy(dtype=float)
            return pd.Series(label, index=bars.index, name=self.name, dtype=float)
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


def volatility_span(horizon: int) -> int:
    """EWM span of a horizon-scaled σ: `VOLATILITY_SPAN`, or four horizons when longer, so
    the estimate always covers several of the moves it scales."""
    return max(VOLATILITY_SPAN, 4 * int(horizon))


def _split_label(name: Any) -> tuple[str, int] | None:
    """(label, horizon) of a name `<label>_<h>`; None for anything else (None included)."""
    match = _LABEL_NAME.fullmatch(name) if isinstance(name, str) else None
    return None if match is None else (match["label"], int(match["horizon"]))


def horizon_of(name: Any, default: int = 1) -> int:
    """Horizon in bars of a label column named `<label>_<h>` (`direction_3` → 3,
    `big_move_4` → 4); `default` when the name carries none (or is None)."""
    split = _split_label(name)
    return default if split is None else split[1]


def end_column(name: str) -> str:
    """The feed column holding the end time t1 of event target `name` (`triple_barrier_24` →
    `triple_barrier_24_t1`)."""
    return f"{name}_t1"


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
    """The target columns a predictor of `task` can learn (`TASK_LEARNS`): those of the task's
    own kind first (`direction_*` for "direction"), then event labels (`triple_barrier_*`,
    `price_jump_*`), each group in the given order; [] for other tasks."""
    learns = TASK_LEARNS.get(task, ())
    kinds = [(str(c), Target.from_name(str(c))) for c in columns]
    found = [(t.kind != learns[0], c) for c, t in kinds if t is not None and t.kind in learns]
    return [c for _, c in sorted(found, key=lambda pair: pair[0])]


def encode_labels(y: pd.Series | pd.DataFrame, task: str) -> pd.Series | pd.DataFrame:
    """Labels as a `task` model learns them: -1 / 0 / +1 event labels (`triple_barrier_*`,
    `price_jump_*`, read from the column name) become 1 for +1 and 0 otherwise for "direction",
    and 0 / 1 / 2 (SELL / HOLD / BUY) for "three_class"; NaN stays NaN, every other column
    (and task) is returned unchanged. A DataFrame is coded column by column."""
    if isinstance(y, pd.DataFrame):
        return pd.DataFrame({c: encode_labels(y[c], task) for c in y.columns}, index=y.index)
    target = Target.from_name(y.name)
    if (
        target is None
        or target.kind not in _SIGNED_KINDS
        or task not in ("direction", "three_class")
    ):
        return y
    values = pd.to_numeric(y, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    coded = (values > 0).astype(float) if task == "direction" else values + 1.0
    return pd.Series(np.where(np.isnan(values), np.nan, coded), index=y.index, name=y.name)


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


def triple_barrier(
    h: int, profit_take: float = 1.0, stop_loss: float = 1.0, scale: str = "horizon"
) -> Target:
    """+1 / -1 / 0: profit-take (+pt σ), stop-loss (-sl σ) or the vertical barrier first."""
    return Target(
        "triple_barrier", h, profit_take=float(profit_take), stop_loss=float(stop_loss),
        scale=scale,
    )  # fmt: skip


def price_jump(h: int, size: float, sigmas: bool = False, scale: str = "horizon") -> Target:
    """+1 / -1 / 0: a move up / down of `size` (fraction, or σ multiples) first within h bars."""
    return Target("price_jump", h, float(size), sigmas=bool(sigmas), scale=scale)


def net_return(h: int, commission: float = 0.001, slippage: float = 0.0005) -> Target:
    """close_{t+h} / close_t - 1 - 2 × (commission + slippage); NaN in the last h rows."""
    return Target("net_return", h, commission=float(commission), slippage=float(slippage))


#: Spec fields after kind:horizon → (required, optional) counts per kind.
_SPEC_FIELDS = {
    "direction": (0, 1),
    "three_class": (1, 0),
    "forward_return": (0, 0),
    "forward_volatility": (0, 0),
    "triple_barrier": (0, 3),
    "price_jump": (1, 1),
    "net_return": (0, 2),
}
#: Spec names accepted for a kind (the issue's spelling `jump:24:0.02`).
_ALIASES = {"jump": "price_jump"}


def parse_target(spec: str | Target) -> Target:
    """Parse a spec string (see the module docstring): `kind:horizon[:...]`."""
    if isinstance(spec, Target):
        return spec
    parts = str(spec).strip().split(":")
    kind = parts[0] = _ALIASES.get(parts[0], parts[0])
    if kind not in KINDS:
        raise ConfigError(f"unknown target {spec!r}", fix=_SPEC_HELP)
    required, optional = _SPEC_FIELDS[kind]
    if not 2 + required <= len(parts) <= 2 + required + optional:
        if kind == "three_class" and len(parts) == 2:
            raise ConfigError(
                f"target {spec!r} needs a threshold: HOLD is |return| <= threshold",
                fix="e.g. three_class:4:0.003",
            )
        if kind == "price_jump" and len(parts) == 2:
            raise ConfigError(
                f"target {spec!r} needs a jump size",
                fix="e.g. price_jump:24:0.02 or price_jump:24:2sigma",
            )
        raise ConfigError(f"malformed target {spec!r}", fix=_SPEC_HELP)
    scale = "horizon"
    if kind in ("triple_barrier", "price_jump") and len(parts) > 2 and parts[-1] in SCALES:
        scale = parts.pop()
    try:
        horizon = int(parts[1])
        extra = parts[2:]
        if kind == "price_jump":
            sigmas = extra[0].endswith(_SIGMA_SUFFIX)
            if len(extra) > 1 or (scale == "bar" and not sigmas):
                raise ValueError
            size = float(extra[0].removesuffix(_SIGMA_SUFFIX))
            return price_jump(horizon, size, sigmas, scale)
        numbers = [float(v) for v in extra]
    except ValueError:
        raise ConfigError(f"malformed target {spec!r}", fix=_SPEC_HELP) from None
    if kind == "triple_barrier":
        if len(numbers) > 2:
            raise ConfigError(f"malformed target {spec!r}", fix=_SPEC_HELP)
        pt = numbers[0] if numbers else 1.0
        return triple_barrier(horizon, pt, numbers[1] if len(numbers) > 1 else pt, scale)
    if kind == "net_return":
        return net_return(horizon, *numbers)
    return Target(kind, horizon, numbers[0] if numbers else 0.0)


def recorded_target(spec: str) -> Target:
    """The target a feed's metadata records. Specs carry their barrier scale since scales
    exist; a σ-barrier spec without one was written before, when barriers were per bar."""
    target = parse_target(spec)
    scaled = target.kind == "triple_barrier" or (target.kind == "price_jump" and target.sigmas)
    if scaled and str(spec).rsplit(":", 1)[-1] not in SCALES:
        return dataclasses.replace(target, scale="bar")
    return target


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
    return compute_targets_with_ends(bars, specs)[0]


def compute_targets_with_ends(
    bars: pd.DataFrame, specs: Iterable[str | Target]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one column per target spec, one end-time column `end_column(name)` per event target),
    both indexed like `bars`; each event label is computed once for both."""
    values: dict[str, pd.Series] = {}
    ends: dict[str, pd.Series] = {}
    for target in parse_targets(specs):
        if target.is_event:
            frame = target.labels(bars)
            values[target.name] = frame["label"].astype(float).rename(target.name)
            ends[end_column(target.name)] = frame["t1"].rename(end_column(target.name))
        else:
            values[target.name] = target(bars)
    return pd.DataFrame(values, index=bars.index), pd.DataFrame(ends, index=bars.index)
