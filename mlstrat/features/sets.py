"""Named, versioned feature sets.

A feature set is a name, an integer version and a builder (bars -> DataFrame of
features indexed like the bars). Feature files record both, and reading refuses a
(name, version) this installation does not know (`KNOWN_VERSIONS`), because a
model trained on version 1 columns must not silently receive something else.
Change a set's columns or definitions -> register it under a new version.

Built-in sets (windows in bars; names documented in `mlstrat.features.catalogue`):

- `core` v1, 17 columns: the 17 inputs of the original bot's price LSTM
  (docs/architecture.md, "Where the default numbers come from"), made
  scale-free: SMA20 and SMA50 distance, RSI14, MACD line/signal/histogram (/ close),
  volume ratio (20), 1-bar return and log return, Bollinger(20, 2) upper and lower
  distance and %b, ATR14 / close, stochastic %K(14) and %D(3), 20-bar OBV change,
  24-bar realized volatility. Works on any bar timeframe.
- `lstm` v1, 46 columns: `core` plus EMA distances, more returns and volatility
  estimators, ADX, z-scores, candle shape, jump and volume-surge scores, 4h and 24h
  views (last closed candles) and calendar cycles.
- `xgb` v1, 190 columns: 1h, 4h and 24h views (returns, averages, oscillators,
  bands, volatility, regimes), trend/consolidation regimes, jump, volume-surge,
  momentum-acceleration and breakout features, and cross-indicator / cross-timeframe
  interactions.

`lstm` and `xgb` are complete on bars whose length divides 4 hours at least twice (e.g.
1h or 15min). On longer bars the 4h and 24h views they cannot form are skipped with a
warning naming the columns (on 4h bars the 4h view, on daily bars both: xgb keeps 118 of
its 190 columns there); the feed's metadata lists them under "skipped_features". A set
none of whose columns can be built (or whose builder fails) raises a ConfigError naming
the file, the set, the timeframe and the sets that can be built (`buildable_sets`).

`warmup_info` tells how many bars a set needs before every column is defined.
"""

from __future__ import annotations

import keyword
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.data.timeframe import fixed_nanos
from mlstrat.errors import ConfigError, MlstratError
from mlstrat.features.catalogue import bars_timeframe, compute_features
from mlstrat.features.targets import parse_targets
from mlstrat.sections import as_choice, as_text, check, setting

Builder = Callable[[pd.DataFrame], pd.DataFrame]

#: Versions of each registered set that this installation can read, oldest first.
KNOWN_VERSIONS: dict[str, tuple[int, ...]] = {}

RESERVED = frozenset({"open", "high", "low", "close", "volume", "openinterest", "datetime"})


@dataclass(frozen=True)
class FeatureSet:
    """A registered feature set; `feature_names` is known up front for name-list sets."""

    name: str
    version: int
    builder: Builder = field(repr=False)
    description: str = ""
    feature_names: tuple[str, ...] | None = None

    def build(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Features for `bars`, checked: same index, float64, identifier names, no inf.

        Columns needing views the bars cannot form are skipped (listed in
        ``attrs["skipped_features"]``); a set left with no column, or whose
        builder raises an mlstrat error, is a ConfigError naming the file, the
        set, the timeframe and the sets that can be built.
        """
        try:
            out = self.builder(bars)
        except MlstratError as exc:
            raise self._cannot_build(bars, getattr(exc, "problem", str(exc))) from None
        if not isinstance(out, pd.DataFrame) or not out.index.equals(bars.index):
            raise ConfigError(
                f"feature set {self.name!r} v{self.version}: builder must return a DataFrame "
                "indexed exactly like the bars"
            )
        if out.shape[1] == 0 and out.attrs.get("skipped_features"):
            views = ", ".join(out.attrs["skipped_features"])
            raise self._cannot_build(bars, f"every column needs a view they cannot form ({views})")
        check_feature_names(list(out.columns), f"feature set {self.name!r}")
        skipped = out.attrs.get("skipped_features")
        out = out.astype(float)
        if skipped:
            out.attrs["skipped_features"] = skipped
        return out

    def _cannot_build(self, bars: pd.DataFrame, reason: str) -> ConfigError:
        try:
            timeframe = bars_timeframe(bars)
        except MlstratError:
            timeframe = "?"
        usable = [s for s in buildable_sets(timeframe) if not s.startswith(f"{self.name} ")]
        return ConfigError(
            f"feature set {self.name!r} v{self.version} cannot be built on {timeframe} bars: "
            f"{reason}",
            file=source_path(bars),
            fix=f"use a set that can be built on {timeframe} bars: "
            f"{', '.join(usable) or 'none registered'}; or load bars of a timeframe that "
            "divides 4h (e.g. 1h)",
        )


def source_path(bars: pd.DataFrame) -> str | None:
    """The file the bars came from, when the loader recorded it (attrs["source_path"])."""
    path = bars.attrs.get("source_path")
    return None if path is None else str(path)


def buildable_sets(timeframe: str) -> list[str]:
    """Registered sets that can be built on `timeframe` bars, as "name (k of n features)".

    Each name-list set is evaluated on a few synthetic bars of that timeframe, so
    the count is exactly what skipping leaves; builder-function sets are listed
    as not checked.
    """
    nanos = fixed_nanos(timeframe) if timeframe != "?" else None
    try:
        freq = pd.Timedelta(nanos, unit="ns") if nanos else timeframe
        index = pd.date_range("2024-01-01", periods=8, freq=freq, tz="UTC", name="timestamp")
    except (ValueError, TypeError):
        return []
    flat = np.linspace(100.0, 101.0, len(index))
    bars = pd.DataFrame(
        {"open": flat, "high": flat + 1, "low": flat - 1, "close": flat, "volume": 1.0},
        index=index,
    )
    bars.attrs = {"timeframe": timeframe}
    out = []
    for fs in list_feature_sets():
        if fs.feature_names is None:
            out.append(f"{fs.name} (builder function, not checked)")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kept = compute_features(bars, fs.feature_names).shape[1]
        except MlstratError:
            continue
        if kept:
            out.append(f"{fs.name} ({kept} of {len(fs.feature_names)} features)")
    return out


def warmup_info(features: pd.DataFrame) -> dict[str, Any]:
    """How long the features take to be defined: bars before the first complete row, its time.

    ``warmup_bars`` counts the rows before the first row with every column
    defined (all rows when there is none); ``first_complete`` is that row's
    timestamp (ISO text, None if no row is complete); ``never_defined`` lists
    columns NaN on every row (e.g. volume ratios of zero-volume data).
    """
    defined = features.notna().to_numpy()
    complete = defined.all(axis=1) if features.shape[1] else np.ones(len(features), bool)
    first = int(np.argmax(complete)) if complete.any() else None
    return {
        "warmup_bars": len(features) if first is None else first,
        "first_complete": None if first is None else features.index[first].isoformat(),
        "never_defined": [
            c for c, ok in zip(features.columns, defined.any(axis=0), strict=True) if not ok
        ],
    }


def check_feature_names(names: Sequence[str], owner: str) -> None:
    """Column names must be unique Python identifiers that do not shadow OHLCV lines."""
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ConfigError(
                f"{owner}: column name {name!r} is not a valid Python identifier",
                fix="use names like rsi_14 or h4_sma_20_ratio (backtrader lines need identifiers)",
            )
        if name in RESERVED:
            raise ConfigError(f"{owner}: column name {name!r} is reserved for the bar data")
        if name in seen:
            raise ConfigError(f"{owner}: column name {name!r} appears twice")
        seen.add(name)


_REGISTRY: dict[str, dict[int, FeatureSet]] = {}


def names_builder(names: Sequence[str]) -> Builder:
    """A builder that evaluates catalogue names (see `mlstrat.features.catalogue`)."""
    frozen = tuple(names)

    def build(bars: pd.DataFrame) -> pd.DataFrame:
        return compute_features(bars, frozen)

    return build


def register_feature_set(
    name: str,
    version: int,
    builder: Builder | Sequence[str],
    *,
    description: str = "",
    replace: bool = False,
) -> FeatureSet:
    """Register `builder` (a function or a list of catalogue names) as set `name`, version `version`."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"feature set name {name!r} must be an identifier")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"feature set {name!r}: version must be a positive int, got {version!r}")
    versions = _REGISTRY.setdefault(name, {})
    if version in versions and not replace:
        raise ConfigError(
            f"feature set {name!r} version {version} is already registered",
            fix="register a new version number (or pass replace=True)",
        )
    names: tuple[str, ...] | None = None
    if not callable(builder):
        names = tuple(builder)
        check_feature_names(names, f"feature set {name!r}")
        builder = names_builder(names)
    fs = FeatureSet(name, version, builder, description, names)
    versions[version] = fs
    KNOWN_VERSIONS[name] = tuple(sorted(versions))
    return fs


def get_feature_set(name: str, version: int | None = None) -> FeatureSet:
    """The registered set `name` (its newest version unless `version` is given)."""
    versions = _REGISTRY.get(name)
    if not versions:
        raise ConfigError(
            f"unknown feature set {name!r}",
            fix=f"use one of {', '.join(sorted(_REGISTRY))} or register_feature_set(...)",
        )
    if version is None:
        return versions[max(versions)]
    if version not in versions:
        raise ConfigError(
            f"feature set {name!r} has no version {version}",
            fix=f"known versions: {list(KNOWN_VERSIONS[name])}",
        )
    return versions[version]


def list_feature_sets() -> list[FeatureSet]:
    """Newest version of every registered set, sorted by name."""
    return [get_feature_set(n) for n in sorted(_REGISTRY)]


def feature_set_name(value: Any) -> str:
    """A registered feature set's name, as a configuration gives it."""
    return as_choice(as_text(value), sorted(_REGISTRY))


def target_specs(value: Any) -> tuple[str, ...]:
    """Target specs in canonical form (``direction:1`` → ``direction:1:0``); one spec may be
    given as a plain string. A bad item is a ConfigError whose ``param`` is ``targets[i]``."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(
            "expected a list of target specs", fix="e.g. [direction:1, forward_volatility:24]"
        )
    specs = []
    for i, spec in enumerate(items):
        try:
            specs.append(parse_targets([as_text(spec)])[0].spec)
        except ConfigError as exc:
            raise ConfigError(exc.problem, param=f"targets[{i}]", fix=exc.fix) from None
    parse_targets(specs)  # two specs naming one column
    return tuple(specs)


@dataclass(frozen=True)
class FeaturesConfig:
    """The ``features`` section of a run configuration: the feature set (name and version;
    the newest when none is given) and the target specs computed beside it."""

    set: str = setting("core", "feature set (mlstrat features list)", kind=feature_set_name)
    version: int | None = setting(
        None, "feature set version (default: the newest)", kind=int, minimum=1
    )
    targets: tuple[str, ...] = setting(
        ("direction:1",), "target specs computed beside the features", kind=target_specs
    )

    def __post_init__(self) -> None:
        check(self)
        try:
            fs = get_feature_set(self.set, self.version)
        except ConfigError as exc:
            raise ConfigError(exc.problem, param="version", fix=exc.fix) from None
        object.__setattr__(self, "set", fs.name)
        object.__setattr__(self, "version", fs.version)
        object.__setattr__(self, "targets", target_specs(self.targets))

    def feature_set(self) -> FeatureSet:
        return get_feature_set(self.set, self.version)

    @property
    def target_columns(self) -> list[str]:
        """Column names of the targets (``direction_1``, ...)."""
        return [t.name for t in parse_targets(self.targets)]


# --- built-in sets -------------------------------------------------------------------

CORE_FEATURES: tuple[str, ...] = (
    "sma_20_ratio",
    "sma_50_ratio",
    "rsi_14",
    "macd_norm",
    "macd_signal_norm",
    "macd_hist_norm",
    "volume_ratio_20",
    "return_1",
    "log_return_1",
    "bb_upper_ratio_20",
    "bb_lower_ratio_20",
    "bb_pct_b_20",
    "atr_14_ratio",
    "stoch_k_14",
    "stoch_d_14",
    "obv_change_20",
    "realized_vol_24",
)

_CALENDAR = ("hour_sin", "hour_cos", "dow_sin", "dow_cos")

LSTM_FEATURES: tuple[str, ...] = (
    *CORE_FEATURES,
    "ema_12_ratio",
    "ema_26_ratio",
    "bb_width_20",
    "return_4",
    "return_24",
    "parkinson_vol_24",
    "garman_klass_vol_24",
    "adx_14",
    "close_zscore_50",
    "volume_zscore_24",
    "hl_range",
    "close_location",
    "jump_score_24",
    "volume_surge_24",
    "h4_return_1",
    "h4_rsi_14",
    "h4_sma_20_ratio",
    "h4_atr_14_ratio",
    "h4_macd_hist_norm",
    "h4_bb_pct_b_20",
    "h24_return_1",
    "h24_rsi_14",
    "h24_sma_20_ratio",
    "h24_atr_14_ratio",
    "h24_realized_vol_20",
    *_CALENDAR,
)

# The block evaluated on each higher timeframe (prefixed h4_ / h24_ in the xgb set).
HIGHER_TIMEFRAME_BLOCK: tuple[str, ...] = (
    "return_1",
    "return_3",
    "return_6",
    "sma_10_ratio",
    "sma_20_ratio",
    "sma_50_ratio",
    "ema_12_ratio",
    "ema_26_ratio",
    "rsi_6",
    "rsi_14",
    "macd_norm",
    "macd_signal_norm",
    "macd_hist_norm",
    "bb_pct_b_20",
    "bb_width_20",
    "atr_14_ratio",
    "stoch_k_14",
    "stoch_d_14",
    "realized_vol_20",
    "parkinson_vol_20",
    "garman_klass_vol_20",
    "volume_ratio_20",
    "adx_14",
    "trend_regime_14",
    "consolidation_regime_20",
    "close_zscore_20",
    "jump_score_20",
    "hl_range",
    "close_location",
)

XGB_BASE_EXTRA: tuple[str, ...] = (
    # returns and momentum
    *(f"return_{n}" for n in (2, 3, 4, 6, 8, 12, 24, 48, 72, 168)),
    "momentum_accel_4",
    "momentum_accel_12",
    "momentum_accel_24",
    "sharpe_24",
    "sharpe_168",
    # moving averages
    *(f"sma_{n}_ratio" for n in (5, 10, 100, 200)),
    *(f"ema_{n}_ratio" for n in (5, 12, 26, 50, 100, 200)),
    "sma_5_20_cross",
    "sma_20_50_cross",
    "sma_50_200_cross",
    "ema_12_26_cross",
    "sma_slope_20",
    "sma_slope_50",
    # oscillators
    "rsi_6",
    "rsi_28",
    "stoch_k_28",
    "stoch_d_28",
    # bands, ranges, candles
    "bb_width_20",
    "bb_pct_b_50",
    "bb_width_50",
    "atr_7_ratio",
    "atr_28_ratio",
    "hl_range",
    "close_location",
    "body_ratio",
    "upper_shadow_ratio",
    "lower_shadow_ratio",
    "close_to_high_24",
    "close_to_low_24",
    "close_to_high_168",
    "close_to_low_168",
    # volatility
    *(f"realized_vol_{n}" for n in (6, 12, 48, 168)),
    "parkinson_vol_24",
    "parkinson_vol_168",
    "garman_klass_vol_24",
    "garman_klass_vol_168",
    "vol_ratio_24_168",
    "close_zscore_20",
    "close_zscore_50",
    "close_zscore_168",
    "return_zscore_24",
    "return_skew_168",
    "return_kurt_168",
    # trend and regimes
    "adx_14",
    "plus_di_14",
    "minus_di_14",
    "trend_regime_14",
    "consolidation_regime_20",
    "bb_width_rank_100",
    "rv_rank_168",
    # jumps, surges, breakouts
    "jump_score_24",
    "jump_flag_24",
    "jump_count_24",
    "jump_flag_168",
    "volume_surge_24",
    "volume_surge_flag_24",
    "range_expansion_14",
    "channel_breakout_24",
    "channel_breakout_168",
    # volume
    "obv_change_50",
    "volume_ratio_5",
    "volume_ratio_50",
    "volume_zscore_24",
    "volume_zscore_168",
    *_CALENDAR,
)

XGB_INTERACTIONS: tuple[str, ...] = (
    "h4_close_gap",
    "h24_close_gap",
    "close_to_h4_sma_20",
    "close_to_h24_sma_20",
    "rsi_14_h4_diff",
    "rsi_14_h24_diff",
    "rsi_h4_h24_diff",
    "rsi_x_volume",
    "macd_hist_x_volume",
    "return_x_volume",
    "jump_x_volume_surge",
    "vol_ratio_h1_h4",
    "atr_ratio_h1_h24",
    "trend_agreement",
    "momentum_agreement",
    "macd_agreement",
    "adx_x_slope",
    "bb_pct_b_x_rsi",
    "momentum_x_trend",
    "breakout_x_volume",
    "consolidation_x_breakout",
    "rsi_14_sq",
    "return_1_sq",
    "stoch_k_minus_d",
    "volume_to_h4_mean",
    "volume_to_h24_mean",
)

XGB_FEATURES: tuple[str, ...] = (
    *CORE_FEATURES,
    *XGB_BASE_EXTRA,
    *(f"h4_{n}" for n in HIGHER_TIMEFRAME_BLOCK),
    *(f"h24_{n}" for n in HIGHER_TIMEFRAME_BLOCK),
    *XGB_INTERACTIONS,
)

register_feature_set(
    "core",
    1,
    CORE_FEATURES,
    description="17 inputs of the original bot's price LSTM (any timeframe)",
)
register_feature_set(
    "lstm", 1, LSTM_FEATURES, description="multi-timeframe set for sequence models (1h + 4h + 24h)"
)
register_feature_set(
    "xgb",
    1,
    XGB_FEATURES,
    description="1h/4h/24h views, regimes, jumps and interactions for tree models",
)
