"""Run configuration: one YAML file describes a whole experiment, checked before anything runs.

    from mlstrat.config import load_config
    cfg = load_config("configs/demo.yaml")
    cfg.predictors[0].params["max_depth"]

Each section is one dataclass, declared next to the code that uses it; its keys, their
defaults and allowed values, its plain form (`to_dict`) and its parsing come from the
dataclass fields (`mlstrat.sections`). Every key is optional unless marked; unknown keys
are errors:

    name, seed, n_jobs, backend, scheduler, cache_dir   RunConfig (here)
    tracking:    `mlstrat.tracking.TrackingConfig` (MLflow; no effect on results)
    data:        DataConfig (here): files (required: list of {path, symbol, minute_path
                 and the data options of `mlstrat.data.options.DataOptions`} or plain
                 paths), start, end
    features:    `mlstrat.features.sets.FeaturesConfig`
    predictors:  (required) list of PredictorConfig (here); params are checked against
                 the predictor's constructor signature (`Predictor.param_names`)
    walkforward: `mlstrat.walkforward.splits.WalkForward` (all fields but horizon)
    strategy:    `mlstrat.backtest.StrategyConfig`; params checked against the class
    sizing:      `mlstrat.backtest.SizingConfig`; params checked against the class
    broker:      `mlstrat.broker.BrokerConfig`
    report:      `mlstrat.report.options.ReportConfig`
    sweep:       `mlstrat.sweep.SweepConfig` (what `mlstrat sweep` varies)

Relative paths are taken from the directory of the YAML file. A problem is a
`ConfigError` whose message starts with the key path (``predictors[1].params.max_depth``)
and whose fix lists the allowed keys or values. `RunConfig.to_dict()` is the
fully resolved form (defaults filled, absolute paths) that a run directory stores.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import inspect
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mlstrat import sections
from mlstrat.broker import BrokerConfig
from mlstrat.data.options import config_keys
from mlstrat.errors import ConfigError, DataError, MlstratError
from mlstrat.features.sets import FeaturesConfig
from mlstrat.features.targets import TASK_EXAMPLES, TASK_KINDS, task_targets
from mlstrat.report.options import ReportConfig
from mlstrat.sections import setting
from mlstrat.sweep import SweepConfig
from mlstrat.tracking import TrackingConfig
from mlstrat.userclass import spec_file, split_spec
from mlstrat.walkforward.search import SearchConfig
from mlstrat.walkforward.splits import RUN_SCHEDULE, WalkForward

if TYPE_CHECKING:
    from mlstrat.backtest import SizingConfig, StrategyConfig

__all__ = [
    "BrokerConfig",
    "DataConfig",
    "DataFile",
    "FeaturesConfig",
    "PredictorConfig",
    "ReportConfig",
    "RunConfig",
    "SizingConfig",
    "StrategyConfig",
    "WalkForward",
    "apply_overrides",
    "load_config",
    "load_yaml_text",
    "parse_config",
]

#: Sections whose module is imported on first use: `mlstrat.backtest` pulls in backtrader,
#: which reading a configuration (and every command that imports this module) does not need.
_LAZY_SECTIONS = {"StrategyConfig": "mlstrat.backtest", "SizingConfig": "mlstrat.backtest"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_SECTIONS:
        return getattr(importlib.import_module(_LAZY_SECTIONS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _lazy(name: str) -> Callable[[], Any]:
    """A default factory for lazily imported section `name` (see _LAZY_SECTIONS)."""
    return lambda: __getattr__(name)()


BACKENDS = ("loky", "dask")
SIGNAL_TASKS = ("direction", "three_class", "regression")
VOLATILITY_TASKS = ("volatility",)
#: A run name is a folder name under reports/: no separators, no "..", no hidden names.
RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
THRESHOLD_KEYS = (
    *("low", "high", "step", "objective", "min_signals", "fallback", "multipliers"),
    *("method", "min_trades", "confidence", "commission", "slippage"),  # net_pnl, outcomes
)
#: How a `meta` predictor's ``primary:`` names a side rule instead of another predictor.
RULE_PREFIX = "rule:"


# ---------------------------------------------------------------------------- typed config


@dataclass(frozen=True)
class DataFile:
    """One candle file and how to read it: `options` are its data options (a
    `mlstrat.data.options.DataOptions`, symbol left to `symbol`); `key` is where the file
    sits in the configuration, so fix hints name the key to change."""

    path: Path
    symbol: str
    minute_path: Path | None = None
    options: Any = None  # DataOptions; None means the defaults (imported lazily)
    key: str = "data.files[0]"

    def __post_init__(self) -> None:
        if self.options is None:
            from mlstrat.data.options import DataOptions

            object.__setattr__(self, "options", DataOptions())

    @property
    def timeframe(self) -> str | None:
        return self.options.timeframe

    @property
    def format(self) -> str:
        return self.options.fmt

    @property
    def on_duplicate(self) -> str:
        return self.options.on_duplicate

    @property
    def tz(self) -> str | None:
        return self.options.tz

    def load_options(self) -> dict[str, Any]:
        """Every `load_bars` keyword for this file (JSON-able: also a cache-key part)."""
        return self.options.replace(symbol=self.symbol).as_dict()

    def load(self) -> Any:
        """The file's Bars; a bad file's fix names this file's configuration keys."""
        from mlstrat.data import load_bars
        from mlstrat.data.options import config_syntax
        from mlstrat.errors import fix_syntax

        with fix_syntax(config_syntax(self.key)):
            return load_bars(self.path, **self.load_options())

    def load_minutes(self) -> Any:
        """The 1-minute Bars of `minute_path` (same options, timeframe inferred), or None."""
        if self.minute_path is None:
            return None
        from mlstrat.data import load_bars
        from mlstrat.data.options import config_syntax
        from mlstrat.errors import fix_syntax

        options = self.options.replace(symbol=self.symbol, timeframe=None).as_dict()
        with fix_syntax(config_syntax(self.key)):
            return load_bars(self.minute_path, **options)

    def to_dict(self) -> dict[str, Any]:
        """The file as configuration keys: path, symbol, minute_path and every data option."""
        out: dict[str, Any] = {"path": str(self.path), "symbol": self.symbol}
        out["minute_path"] = None if self.minute_path is None else str(self.minute_path)
        keys = config_keys()
        for name, value in self.options.as_dict().items():
            if name != "symbol":
                out[keys[name]] = value
        return out


#: Keys of one data file: its path, symbol and minute data, then one per data option
#: (`mlstrat.data.options.DataOptions`, the declaration every interface shares).
FILE_KEYS = (
    "path",
    "symbol",
    *(key for key in config_keys().values() if key != "symbol"),
    "minute_path",
)


@dataclass(frozen=True)
class DataConfig:
    """Input files (one per symbol) and the UTC date range cut from each."""

    files: tuple[DataFile, ...] = setting(
        dataclasses.MISSING, "candle files, one per symbol", kind=object
    )
    start: str | None = setting(None, "first timestamp of the run (UTC)")
    end: str | None = setting(None, "last timestamp of the run (UTC)")

    @property
    def symbols(self) -> list[str]:
        return [f.symbol for f in self.files]


@dataclass(frozen=True)
class PredictorConfig:
    """One walk-forward model: registry name, constructor params, target and input columns.

    `task` (what the predictor learns) and `fit_targets` (extra target columns a hybrid's
    members learn) are derived when the configuration is parsed; they are not keys.
    """

    name: str = setting(dataclasses.MISSING, "unique name (default: the predictor's)")
    predictor: str = setting(dataclasses.MISSING, "registered predictor (mlstrat models list)")
    params: dict[str, Any] = setting(
        None, "constructor parameters", kind=sections.as_mapping, factory=dict
    )
    target: str = setting("direction_1", "target column learned (default: the first fitting)")
    features: tuple[str, ...] | None = setting(
        None, "input columns: a feature-set name or a list (default: every feature)", kind=object
    )
    thresholds: dict[str, Any] = setting(
        None, "fit_thresholds options", kind=sections.as_mapping, factory=dict
    )
    primary: str | None = setting(
        None, "meta: the predictor (its name here) or rule:COLUMN whose side it judges"
    )
    sample_weights: str | None = setting(
        None, "uniqueness: weight rows by label uniqueness", choices=("uniqueness",)
    )
    weight_decay: float = setting(
        1.0, "sample weights' time decay (1: none)", kind=float, minimum=-0.999, maximum=1.0
    )
    search: SearchConfig | None = setting(
        None, "Optuna search of params in every fold (walkforward.search)", kind=object
    )
    warm_start: bool = setting(
        False, "Keras models: each fold starts from the previous fold's weights", kind=bool
    )
    task: str = "direction"
    fit_targets: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """A whole experiment; build it with `load_config` / `parse_config`."""

    name: str = setting(dataclasses.MISSING, "run name: the folder reports/<name>")
    seed: int = setting(42, "random seed of the whole run", kind=int, minimum=0)
    n_jobs: int = setting(-1, "parallel walk-forward folds (-1: all cores)", kind=int)
    backend: str = setting("loky", "fold parallelism: loky or dask", choices=BACKENDS)
    scheduler: str | None = setting(None, "dask scheduler address (backend: dask)")
    cache_dir: Path | None = setting(None, "shared stage cache (default OUT/cache)", kind=object)
    tracking: TrackingConfig = setting(
        None, "MLflow experiment tracking (track extra)", kind=object, factory=TrackingConfig
    )
    data: DataConfig = setting(dataclasses.MISSING, "candle files and date range", kind=object)
    features: FeaturesConfig = setting(
        None, "feature set and targets", kind=object, factory=FeaturesConfig
    )
    predictors: tuple[PredictorConfig, ...] = setting(
        dataclasses.MISSING, "walk-forward models", kind=object
    )
    walkforward: WalkForward = setting(
        None, "fold schedule", kind=object, factory=lambda: WalkForward(**RUN_SCHEDULE)
    )
    strategy: StrategyConfig = setting(
        None, "strategy class and parameters", kind=object, factory=_lazy("StrategyConfig")
    )
    sizing: SizingConfig = setting(
        None, "sizer and volatility source", kind=object, factory=_lazy("SizingConfig")
    )
    broker: BrokerConfig = setting(None, "broker settings", kind=object, factory=BrokerConfig)
    report: ReportConfig = setting(None, "report pages", kind=object, factory=ReportConfig)
    sweep: SweepConfig = setting(
        None, "parameter sweep over cached predictions", kind=object, factory=SweepConfig
    )
    source: Path | None = None

    @property
    def signal_predictors(self) -> list[PredictorConfig]:
        """Predictors that get a backtest (all but the sizing volatility source)."""
        return [p for p in self.predictors if p.name != self.sizing.volatility]

    @property
    def volatility_predictor(self) -> PredictorConfig | None:
        name = self.sizing.volatility
        return next((p for p in self.predictors if p.name == name), None)

    def predictor(self, name: str) -> PredictorConfig:
        return next(p for p in self.predictors if p.name == name)

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain YAML/JSON values (parses back to an equal config)."""
        return sections.to_dict(self)

    def section(self, name: str) -> Any:
        """One top-level section of `to_dict()`."""
        return self.to_dict()[name]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


TOP_KEYS = sections.keys(RunConfig)
#: Top-level keys with plain values (checked by their declaration alone).
PLAIN_TOP_KEYS = ("seed", "n_jobs", "backend", "scheduler")


# ---------------------------------------------------------------------------- loading

#: Largest configuration file (and ``--set`` value) read. Configs are a few KiB, so a
#: bigger file is refused before a byte of it is parsed.
MAX_CONFIG_BYTES = 1 << 20
#: Alias uses (``*name``) allowed in one YAML document.
MAX_YAML_ALIASES = 1_000
#: Nesting depth of mappings and lists, counted with aliases expanded.
MAX_YAML_DEPTH = 64
#: Size of a document with every alias expanded: one per node plus one per character of
#: each scalar. Twice the file limit, so a file without aliases never reaches it.
MAX_YAML_EXPANDED = 2 * MAX_CONFIG_BYTES
_SMALL_FIX = "a run configuration is a few KiB of plain values: no deep nesting, few aliases"


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loader that refuses a key written twice in one mapping (usually a typo)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                f"key {key!r} appears twice in one mapping (lines {seen[key] + 1} and "
                f"{key_node.start_mark.line + 1})",
                row=key_node.start_mark.line + 1,
                fix="keep one of them",
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


class _BoundedLoader(_UniqueKeyLoader):
    """The config loader: unique keys, and limits that make alias bombs and deep nesting fail fast.

    An alias shares its anchor's node, so a few lines can stand for billions of values
    that anything walking the result (hashing, copying, dumping) would expand. Aliases and
    depth are counted while composing; the document is measured with aliases expanded
    before a single value is constructed.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise _limit_error(
                    f"more than {MAX_YAML_ALIASES} aliases (*name)", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise _limit_error(
                    f"nested deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        # The scanner looks up to 1024 characters ahead per open bracket; stopping at the
        # depth limit here keeps "[[[[..." from costing a second before the composer sees it.
        super().fetch_flow_collection_start(token_class)
        if self.flow_level > MAX_YAML_DEPTH:
            raise _limit_error(f"nested deeper than {MAX_YAML_DEPTH} levels", self.get_mark())

    def compose_document(self) -> Any:
        node = super().compose_document()
        found = _oversize(node, _node_children, _node_weight)
        if found is not None:
            raise _limit_error(found[0], found[1].start_mark)
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except ConfigError:
            raise
        except (ValueError, OverflowError) as exc:  # a date 2025-13-45, a 5000-digit integer
            kind = node.tag.rsplit(":", 1)[-1]
            raise ConfigError(
                f"cannot read this {kind} value ({str(exc).split(';')[0]})",
                row=node.start_mark.line + 1,
                fix="correct it, or quote it to keep it as text",
            ) from None


def _limit_error(problem: str, mark: Any) -> ConfigError:
    return ConfigError(f"YAML {problem}", row=mark.line + 1, fix=_SMALL_FIX)


def _oversize(
    root: Any, children: Callable[[Any], list[Any]], weight: Callable[[Any], int]
) -> tuple[str, Any] | None:
    """Why a structure is unsafe to walk, and the innermost part at fault; None if it is fine.

    Shared parts (YAML aliases, one Python list placed twice) count every time they
    appear, as they do for anything that hashes, copies or dumps the structure; a part
    that contains itself is refused. Iterative, memoised per object: linear in the
    number of distinct parts however large the expansion.
    """
    measured: dict[int, tuple[int, int]] = {}  # id → (expanded size, depth)
    opened: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        item, closing = stack.pop()
        key = id(item)
        if closing:
            opened.discard(key)
            parts = [measured[id(c)] for c in children(item)]
            size = weight(item) + sum(p[0] for p in parts)
            depth = 1 + max((p[1] for p in parts), default=0)
            if size > MAX_YAML_EXPANDED:
                return f"too large once aliases are expanded (over {MAX_YAML_EXPANDED:,})", item
            if depth > MAX_YAML_DEPTH:
                return f"nested deeper than {MAX_YAML_DEPTH} levels once aliases expand", item
            measured[key] = (size, depth)
        elif key in opened:
            return "contains itself (an alias inside its own anchor)", item
        elif key not in measured:
            opened.add(key)
            stack.append((item, True))
            stack.extend((c, False) for c in children(item))
    return None


def _node_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _node_weight(node: yaml.Node) -> int:
    return 1 + len(node.value) if isinstance(node, yaml.ScalarNode) else 1


def _value_children(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return [*value.keys(), *value.values()]
    return list(value) if isinstance(value, (list, tuple, set, frozenset)) else []


def _value_weight(value: Any) -> int:
    return 1 + len(value) if isinstance(value, (str, bytes)) else 1


def load_yaml_text(text: str, file: str | Path | None = None) -> Any:
    """Parse configuration YAML within the limits above; a problem is a ConfigError naming the line.

    Configuration files and each ``--set`` value go through here, so both are bounded
    alike: at most MAX_CONFIG_BYTES of text, MAX_YAML_ALIASES aliases, MAX_YAML_DEPTH
    levels and MAX_YAML_EXPANDED once aliases are expanded.
    """
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"YAML text longer than {MAX_CONFIG_BYTES // 1024} KiB", file=file, fix=_SMALL_FIX
        )
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(exc.problem, file=file, row=exc.row, fix=exc.fix) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        row = None if mark is None else mark.line + 1
        if isinstance(exc, yaml.reader.ReaderError):  # a control character: located by offset
            row = text.count("\n", 0, exc.position) + 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"not valid YAML: {problem}",
            file=file,
            row=row,
            fix="check indentation and quoting around that line",
        ) from None


def _read_config_text(path: Path) -> str:
    """The text of a configuration file: a regular file of at most MAX_CONFIG_BYTES of UTF-8.

    The file is opened without blocking and checked with fstat before a byte is read, so
    a directory, FIFO or device (/dev/zero) is refused at once.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError("configuration file not found", file=path, fix="check the path") from None
    except (OSError, ValueError) as exc:  # permission, symlink loop, socket, NUL in the name
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"cannot open the configuration file ({reason})",
            file=path,
            fix="pass the path of a readable YAML file",
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            from mlstrat.data.readers import file_kind

            raise ConfigError(
                f"is {file_kind(info.st_mode)}, not a regular file",
                file=path,
                fix="pass the path of a YAML file",
            )
        with open(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1) if info.st_size <= MAX_CONFIG_BYTES else b""
    finally:
        os.close(fd)
    if info.st_size > MAX_CONFIG_BYTES or len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"configuration file is larger than {MAX_CONFIG_BYTES // 1024} KiB",
            file=path,
            fix="a run configuration is a few KiB: check that this is the right file",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte offset {exc.start})", file=path, fix="save the file as UTF-8"
        ) from None


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Read and validate a YAML run configuration (relative paths: from the file's directory).

    ``overrides`` maps dotted key paths to values applied before validation,
    e.g. ``{"data.start": "2025-01-01", "predictors[0].params.n_estimators": 20}``.
    """
    path = Path(path)
    raw = load_yaml_text(_read_config_text(path), file=path)
    if overrides:
        raw = apply_overrides(raw, overrides)
    return parse_config(raw, base=path.resolve().parent, source=path)


def apply_overrides(raw: Any, overrides: Mapping[str, Any]) -> Any:
    """A deep copy of ``raw`` with each dotted/indexed key path set to its value.

    Each value is held to the limits of a configuration file (size with shared parts
    expanded, depth, no cycles), whether it came from ``--set`` or from Python.
    """
    import copy

    for key, value in overrides.items():
        found = _oversize(value, _value_children, _value_weight)
        if found is not None:
            raise ConfigError(f"override {key!r}: value {found[0]}", fix=_SMALL_FIX)
    out = copy.deepcopy(raw) if raw is not None else {}
    for key, value in overrides.items():
        parts = _split_path(key)
        node = out
        for part, nxt in zip(parts, parts[1:], strict=False):
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    raise ConfigError(f"override {key!r}: no list item {part}")
                node = node[part]
            else:
                if not isinstance(node, dict):
                    raise ConfigError(f"override {key!r}: {part!r} is not inside a mapping")
                node = node.setdefault(part, [] if isinstance(nxt, int) else {})
        last = parts[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last >= len(node):
                raise ConfigError(f"override {key!r}: no list item {last}")
            node[last] = value
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r}: {last!r} is not inside a mapping")
            node[last] = value
    return out


def _split_path(key: str) -> list[str | int]:
    parts: list[str | int] = []
    for chunk in key.split("."):
        name, *indices = chunk.split("[")
        if name:
            parts.append(name)
        for index in indices:
            number = index.rstrip("]")
            if not number.isdigit():
                raise ConfigError(
                    f"override {key!r}: list index [{number}] is not a number",
                    fix="e.g. predictors[0].params.max_depth=4",
                )
            parts.append(int(number))
    if not parts:
        raise ConfigError(f"empty override key {key!r}")
    return parts


def parse_config(
    raw: Any, *, base: str | Path | None = None, source: str | Path | None = None
) -> RunConfig:
    """Validate a mapping (parsed YAML) into a `RunConfig`; relative paths from ``base``."""
    return _Parser(Path(base or ".").resolve(), None if source is None else Path(source)).run(raw)


# ---------------------------------------------------------------------------- validation


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _allowed(values: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in values)


class _Parser:
    def __init__(self, base: Path, source: Path | None) -> None:
        self.base = base
        self.source = source

    # -- error helpers --------------------------------------------------------

    def error(self, path: str, problem: str, fix: str | None = None) -> ConfigError:
        return ConfigError(f"{path}: {problem}" if path else problem, file=self.source, fix=fix)

    def wrap(self, path: str, exc: MlstratError) -> ConfigError:
        problem = getattr(exc, "problem", None) or str(exc)
        return self.error(path, problem, getattr(exc, "fix", None))

    def mapping(self, value: Any, path: str, keys: Sequence[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(
                path, f"expected a mapping, got {type(value).__name__}", f"keys: {_allowed(keys)}"
            )
        for key in value:
            if key not in keys:
                raise self.unknown(_join(path, str(key)), str(key), keys)
        return dict(value)

    def unknown(self, path: str, key: str, allowed: Sequence[str]) -> ConfigError:
        hint = sections.did_you_mean(key, allowed)
        return self.error(path, f"unknown key{hint}", f"allowed keys: {_allowed(allowed)}")

    def checked(self, path: str, convert: Callable[..., Any], value: Any, *args: Any) -> Any:
        """``convert(value, *args)`` (a `mlstrat.sections` converter); its ConfigError is
        located at `path` (or at ``path``'s item the error names in ``param``)."""
        try:
            return convert(value, *args)
        except ConfigError as exc:
            where = path
            if exc.param:  # "targets[1]" inside the key "targets"
                where = _join(path.rpartition(".")[0], exc.param)
            raise self.wrap(where, exc) from None

    def integer(self, value: Any, path: str, minimum: int | None = None) -> int:
        return self.checked(path, sections.as_int, value, minimum)

    def number(
        self, value: Any, path: str, lo: float | None = None, hi: float | None = None
    ) -> float:
        return self.checked(path, sections.as_float, value, lo, hi)

    def boolean(self, value: Any, path: str) -> bool:
        return self.checked(path, sections.as_bool, value)

    def string(self, value: Any, path: str, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        return self.checked(path, sections.as_text, value)

    def choice(self, value: Any, path: str, choices: Sequence[str]) -> str:
        return self.checked(path, sections.as_choice, value, choices)

    def section(
        self, cls: type, raw: Any, path: str, defaults: Mapping[str, Any] | None = None
    ) -> Any:
        """A section mapping as an instance of its dataclass `cls`: keys, kinds and allowed
        values come from the fields (`mlstrat.sections`), then the constructor checks the
        values together; any error is located at the key it names. `defaults` replace the
        fields' own defaults (the run's walk-forward schedule)."""
        specs = sections.settings(cls)
        given = self.mapping(raw, path, [sections.key_of(f) for f in specs])
        values = dict(defaults or {})
        for spec in specs:
            key = sections.key_of(spec)
            if key in given:
                values[spec.name] = self.checked(
                    _join(path, key), sections.convert, spec, given[key]
                )
        try:
            return cls(**values)
        except ConfigError as exc:
            names = {f.name: sections.key_of(f) for f in specs}
            param = exc.param
            where = _join(path, names.get(param, param)) if param else path
            raise self.wrap(where, exc) from None

    def path(self, value: Any, path: str, must_exist: bool = True) -> Path:
        text = self.string(value, path)
        try:
            resolved = Path(text).expanduser()
            if not resolved.is_absolute():
                resolved = self.base / resolved
            resolved = resolved.resolve()
            exists = resolved.exists()
        except (OSError, RuntimeError, ValueError) as exc:  # symlink loop, NUL byte, no access
            raise self.error(
                path, f"unusable path ({exc})", "check the path and its permissions"
            ) from None
        if must_exist and not exists:
            raise self.error(
                path,
                f"file not found: {resolved}",
                "paths are relative to the configuration file's directory",
            )
        return resolved

    def regular_path(self, value: Any, path: str, fix: str | None = None) -> Path:
        """An existing regular file: a directory, FIFO or device is refused without opening it."""
        from mlstrat.data.readers import regular_file

        file = self.path(value, path)
        try:
            regular_file(file)
        except DataError as exc:
            raise self.error(path, f"{exc.problem} ({file})", fix or exc.fix) from None
        return file

    def timestamp(self, value: Any, path: str) -> str | None:
        if value is None:
            return None
        import pandas as pd

        if isinstance(value, (_dt.date, _dt.datetime)):
            value = value.isoformat()
        if not isinstance(value, str):
            raise self.error(path, f"expected a date such as 2025-01-01, got {value!r}")
        try:
            ts = pd.Timestamp(value)
        except (ValueError, TypeError):
            raise self.error(
                path, f"{value!r} is not a date", "write e.g. 2025-01-01 or 2025-01-01T12:00"
            ) from None
        ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
        return ts.isoformat()

    # -- sections -------------------------------------------------------------

    def run(self, raw: Any) -> RunConfig:
        from mlstrat.backtest import SizingConfig, StrategyConfig

        if raw is None:
            raise self.error(
                "", "the configuration is empty", "see configs/demo.yaml for an example"
            )
        top = self.mapping(raw, "", TOP_KEYS)
        for required in ("data", "predictors"):
            if required not in top:
                raise self.error(required, "missing (required)", f"sections: {_allowed(TOP_KEYS)}")
        name = self.string(top.get("name", self.source.stem if self.source else "run"), "name")
        if not RUN_NAME.fullmatch(name or ""):
            raise self.error(
                "name",
                f"{name!r} is not a plain run name (it names the folder reports/<name>)",
                "use letters, digits, '.', '_' and '-', not starting with '.'",
            )
        run = {key: self.setting(RunConfig, key, top, "") for key in PLAIN_TOP_KEYS}
        if run["n_jobs"] == 0 or run["n_jobs"] < -1:
            raise self.error(
                "n_jobs", f"{run['n_jobs']} is not allowed", "-1 (all cores) or a count >= 1"
            )
        if run["scheduler"] is not None and run["backend"] != "dask":
            raise self.error(
                "scheduler", "only used with backend: dask", "set backend: dask or drop scheduler"
            )
        run["cache_dir"] = None
        if top.get("cache_dir") is not None:
            run["cache_dir"] = self.path(top["cache_dir"], "cache_dir", must_exist=False)
        run["tracking"] = self.section(TrackingConfig, top.get("tracking"), "tracking")

        data = self.data(top["data"])
        features = self.section(FeaturesConfig, top.get("features"), "features")
        walkforward = self.section(WalkForward, top.get("walkforward"), "walkforward", RUN_SCHEDULE)
        sizing_raw = self.mapping(top.get("sizing"), "sizing", sections.keys(SizingConfig))
        vol_name = self.setting(SizingConfig, "volatility", sizing_raw, "sizing")
        predictors = self.predictors(top["predictors"], features, vol_name)
        self.cpcv_names(walkforward, predictors, vol_name)
        if all(p.name == vol_name for p in predictors):
            raise self.error(
                "predictors",
                "no predictor left to trade (the only one is the volatility source)",
                "add a direction, three_class or regression predictor",
            )
        strategy_raw = self.mapping(top.get("strategy"), "strategy", sections.keys(StrategyConfig))
        strategy_spec = self.code_spec(
            strategy_raw.get("class", StrategyConfig.cls), "strategy.class"
        )
        columns = self.strategy_columns(strategy_raw, features)
        self.setting(StrategyConfig, "params", strategy_raw, "strategy")
        sizer_spec = self.code_spec(sizing_raw.get("class"), "sizing.class", optional=True)
        sizer_params = self.setting(SizingConfig, "params", sizing_raw, "sizing")
        if vol_name is not None and "target_vol" not in sizer_params:
            raise self.error(
                "sizing.params.target_vol",
                "missing: sizing.volatility is set but volatility targeting is off",
                "set target_vol (e.g. 0.5 annualised with periods_per_year: 8760)",
            )
        broker = self.section(BrokerConfig, top.get("broker"), "broker")
        report = self.section(ReportConfig, top.get("report"), "report")
        sweep = self.section(SweepConfig, top.get("sweep"), "sweep")
        # Strategy and sizer files are code that runs: import them only now that every
        # other key is valid, and once each.
        strategy = self.strategy(strategy_raw, strategy_spec, columns)
        sizing = self.sizing(sizing_raw, sizer_spec, strategy.loaded, vol_name)
        parts = {"data": data, "features": features, "predictors": tuple(predictors)}
        parts.update(walkforward=walkforward, strategy=strategy, sizing=sizing)
        return RunConfig(
            name=name, **run, **parts, broker=broker, report=report, sweep=sweep, source=self.source
        )

    def cpcv_names(
        self, walkforward: WalkForward, predictors: list[PredictorConfig], vol_name: str | None
    ) -> None:
        """walkforward.cpcv_predictors names traded predictors without a search (a search
        scores trials on validation rows, which CPCV splits do not have)."""
        key = "walkforward.cpcv_predictors"
        traded = [p.name for p in predictors if p.name != vol_name]
        for name in walkforward.cpcv_predictors:
            self.choice(name, key, traded)
            if next(p for p in predictors if p.name == name).search is not None:
                raise self.error(
                    key,
                    f"{name!r} has a search, which needs validation rows; CPCV splits have none",
                    "drop its search, or leave it out of cpcv_predictors",
                )

    def setting(self, cls: type, name: str, raw: Mapping[str, Any], path: str) -> Any:
        """Setting `name` of section `cls` from the section mapping `raw` (its default when
        absent), checked and typed by its declaration."""
        spec = next(f for f in sections.settings(cls) if f.name == name)
        key = sections.key_of(spec)
        if key not in raw:
            return sections.default_of(spec)
        return self.checked(_join(path, key), sections.convert, spec, raw[key])

    def data(self, raw: Any) -> DataConfig:
        section = self.mapping(raw, "data", sections.keys(DataConfig))
        files_raw = section.get("files")
        if not isinstance(files_raw, list) or not files_raw:
            raise self.error(
                "data.files",
                "expected a non-empty list of files",
                "e.g. files: [{path: ../datasets/BTCUSDT-1h.parquet}]",
            )
        files = [self.data_file(item, f"data.files[{i}]") for i, item in enumerate(files_raw)]
        symbols = [f.symbol for f in files]
        for i, symbol in enumerate(symbols):
            if symbols.index(symbol) != i:
                raise self.error(
                    f"data.files[{i}].symbol",
                    f"symbol {symbol!r} is used twice",
                    "give each file its own symbol",
                )
        start = self.timestamp(section.get("start"), "data.start")
        end = self.timestamp(section.get("end"), "data.end")
        if start is not None and end is not None and start >= end:
            raise self.error("data.end", f"{end} is not after data.start {start}")
        return DataConfig(tuple(files), start, end)

    def data_file(self, raw: Any, path: str) -> DataFile:
        from mlstrat.data.options import DataOptions

        if isinstance(raw, str):
            raw = {"path": raw}
        item = self.mapping(raw, path, FILE_KEYS)
        if "path" not in item:
            raise self.error(_join(path, "path"), "missing (required)")
        file = self.regular_path(item["path"], _join(path, "path"))
        values = self.data_options(item, path)
        try:
            options = DataOptions(**values)
        except ConfigError as exc:
            raise self.wrap(path, exc) from None
        symbol = self.string(item.get("symbol"), _join(path, "symbol"), optional=True)
        symbol = symbol or self.file_symbol(file, options.fmt)
        if not symbol:
            raise self.error(
                _join(path, "symbol"),
                f"cannot tell the symbol from {file.name}",
                "set symbol: BTCUSDT",
            )
        if not symbol.isidentifier():
            raise self.error(
                _join(path, "symbol"), f"{symbol!r} must be letters, digits and _ only"
            )
        minute = None
        if item.get("minute_path") is not None:
            minute = self.regular_path(item["minute_path"], _join(path, "minute_path"))
        return DataFile(file, symbol, minute, options, path)

    def data_options(self, item: Mapping[str, Any], path: str) -> dict[str, Any]:
        """The data options a file's mapping sets, checked against their declaration."""
        from mlstrat.data.options import DataOptions

        values: dict[str, Any] = {}
        for spec in sections.settings(DataOptions):
            key = sections.key_of(spec)
            if key in item and spec.name != "symbol":
                values[spec.name] = self.checked(
                    _join(path, key), sections.convert, spec, item[key]
                )
        if values.get("timeframe") is not None:
            from mlstrat.data import normalize_timeframe

            try:
                values["timeframe"] = normalize_timeframe(values["timeframe"])
            except ConfigError as exc:
                raise self.wrap(_join(path, "timeframe"), exc) from None
        return values

    def file_symbol(self, file: Path, fmt: str) -> str | None:
        """The symbol a file's name (or, for Yahoo/CSV, its first word) gives; None if none."""
        from mlstrat.data.readers import detect_format, symbol_for

        if fmt == "auto":
            try:
                fmt = detect_format(file)
            except MlstratError:
                return symbol_for(file, None)
        return symbol_for(file, fmt)

    def predictors(
        self, raw: Any, features: FeaturesConfig, vol_name: str | None
    ) -> list[PredictorConfig]:
        if not isinstance(raw, list) or not raw:
            raise self.error(
                "predictors",
                "expected a non-empty list of predictors",
                "e.g. [{predictor: xgboost}]",
            )
        out: list[PredictorConfig] = []
        for i, item in enumerate(raw):
            out.append(self.predictor(item, f"predictors[{i}]", features, vol_name, out))
        out = [self.primary_of(p, f"predictors[{i}]", out) for i, p in enumerate(out)]
        if vol_name is not None and not any(p.name == vol_name for p in out):
            raise self.error(
                "sizing.volatility",
                f"no predictor is named {vol_name!r}",
                f"allowed values: {_allowed([p.name for p in out])}",
            )
        return out

    def predictor(
        self,
        raw: Any,
        path: str,
        features: FeaturesConfig,
        vol_name: str | None,
        earlier: list[PredictorConfig],
    ) -> PredictorConfig:
        """One predictor entry, checked against its class without building it: parameter
        names against the constructor's signature, the task from the class (or its `task`
        parameter). The constructor checks the values when the run builds the model."""
        from mlstrat.predictors.registry import list_predictors

        item = self.mapping(raw, path, sections.keys(PredictorConfig))
        if "predictor" not in item:
            raise self.error(
                _join(path, "predictor"),
                "missing (required)",
                f"allowed values: {_allowed(list_predictors())}",
            )
        kind = self.choice(item["predictor"], _join(path, "predictor"), list_predictors())
        name = self.string(item.get("name", kind), _join(path, "name"))
        if not name.isidentifier():
            raise self.error(_join(path, "name"), f"{name!r} must be letters, digits and _ only")
        if any(p.name == name for p in earlier):
            raise self.error(
                _join(path, "name"),
                f"{name!r} is used by an earlier predictor",
                "give each predictor a unique name",
            )
        cls = self.predictor_class(kind, _join(path, "predictor"))
        params = self.params(cls, item.get("params"), _join(path, "params"))
        task = predictor_task(cls, params)
        is_vol = name == vol_name
        wanted = VOLATILITY_TASKS if is_vol else SIGNAL_TASKS
        if task not in wanted:
            role = "the sizing volatility source" if is_vol else "a trading signal"
            raise self.error(
                _join(path, "predictor"),
                f"{kind!r} has task {task!r}, which cannot serve as {role}",
                f"use a predictor with task {' or '.join(wanted)}",
            )
        fit_targets = ()
        if kind == "hybrid":
            members = params.get("members", _default_param(cls, "members"))
            member_tasks = self.hybrid_members(members, _join(path, "params.members"))
            fit_targets = self.member_targets(
                member_tasks, task, features.target_columns, _join(path, "params.members")
            )
        fitting = task_targets(features.target_columns, task)
        if not fitting:
            raise self.error(
                _join(path, "target"),
                f"features.targets has no {TASK_KINDS[task]}_* target for the "
                f"{task} model {kind!r}",
                f"add one to features.targets, e.g. {TASK_EXAMPLES[task]}",
            )
        target = fitting[0]
        if "target" in item:
            target = self.choice(item["target"], _join(path, "target"), fitting)
        cols = self.predictor_features(item.get("features"), _join(path, "features"), features)
        thresholds = self.mapping(item.get("thresholds"), _join(path, "thresholds"), THRESHOLD_KEYS)
        if thresholds:
            from mlstrat.walkforward.thresholds import METHODS, OBJECTIVES

            for key, allowed in (("objective", OBJECTIVES), ("method", METHODS)):
                if key in thresholds:
                    self.choice(thresholds[key], _join(path, f"thresholds.{key}"), allowed)
        extra = {
            key: self.setting(PredictorConfig, key, item, path)
            for key in ("primary", "sample_weights", "weight_decay", "warm_start")
        }
        if extra["primary"] is not None and kind != "meta":
            raise self.error(_join(path, "primary"), "only a meta predictor has a primary")
        extra["search"] = self.search(item.get("search"), _join(path, "search"), cls, kind)
        return PredictorConfig(
            name, kind, params, target, cols, thresholds, **extra, task=task,
            fit_targets=fit_targets,
        )  # fmt: skip

    def search(self, raw: Any, path: str, cls: type, kind: str) -> SearchConfig | None:
        """A predictor's ``search`` section, its space naming the class's parameters."""
        if raw is None:
            return None
        found = self.section(SearchConfig, raw, path)
        try:
            found.check_params(cls.param_names(), kind)
        except ConfigError as exc:
            raise self.wrap(_join(path, exc.param), exc) from None
        return found

    def primary_of(
        self, pred: PredictorConfig, path: str, entries: list[PredictorConfig]
    ) -> PredictorConfig:
        """A meta entry with the targets its primary learns among its fit targets: the
        primary is another entry (by name, not a meta) or a ``rule:COLUMN`` of the features."""
        if pred.predictor != "meta":
            return pred
        key = _join(path, "primary")
        if pred.primary is None:
            if "primary" in pred.params and "primary_target" in pred.params:
                return pred  # a (name, params) primary given in params, with its target
            raise self.error(
                key,
                "missing: a meta predictor judges another predictor's sides",
                "name one: primary: xgboost (another entry) or primary: rule:COLUMN",
            )
        if "primary" in pred.params or "primary_target" in pred.params:
            raise self.error(key, "given twice: as primary and in params", "keep primary:")
        if pred.primary.startswith(RULE_PREFIX):
            return pred
        names = [p.name for p in entries if p.name != pred.name and p.predictor != "meta"]
        source = self.choice(pred.primary, key, names)
        primary = next(p for p in entries if p.name == source)
        if primary.task not in ("direction", "three_class"):
            raise self.error(key, f"{source!r} has task {primary.task!r}: it proposes no side")
        extra = tuple(t for t in (primary.target, *primary.fit_targets) if t != pred.target)
        return dataclasses.replace(pred, fit_targets=tuple(dict.fromkeys(extra)))

    def member_targets(
        self,
        member_tasks: Sequence[tuple[str, str]],
        task: str,
        targets: Sequence[str],
        members_path: str,
    ) -> tuple[str, ...]:
        """Extra target columns a hybrid's members learn besides the hybrid's own.

        A member whose task differs from the hybrid's (e.g. a three-class
        transformer in a direction hybrid) learns the first feature target of its
        kind; walk-forward fits the hybrid on all of them and scores its own.
        """
        extra: list[str] = []
        for j, (kind, member_task) in enumerate(member_tasks):
            if member_task == task:
                continue
            found = task_targets(targets, member_task)
            if not found:
                raise self.error(
                    f"{members_path}[{j}]",
                    f"member {kind!r} learns {member_task} labels but features.targets "
                    f"has no {TASK_KINDS.get(member_task, member_task)}_* target",
                    f"add one to features.targets, e.g. {TASK_EXAMPLES.get(member_task)}",
                )
            if found[0] not in extra:
                extra.append(found[0])
        return tuple(extra)

    def predictor_class(self, kind: str, path: str) -> type:
        from mlstrat.predictors.registry import get_predictor

        try:
            return get_predictor(kind)
        except MlstratError as exc:
            raise self.wrap(path, exc) from None

    def params(self, cls: type, raw: Any, path: str) -> dict[str, Any]:
        """Constructor parameters of predictor class `cls`, checked against its signature
        (names, and every required one given) without calling it."""
        params = self.mapping(raw, path, cls.param_names())
        try:
            inspect.signature(cls).bind(**params)
        except TypeError as exc:
            raise self.error(path, str(exc), f"parameters: {_allowed(cls.param_names())}") from None
        return params

    def hybrid_members(self, members: Any, path: str) -> list[tuple[str, str]]:
        """(predictor, task) of each [predictor, {params}] member of a hybrid, checked."""
        from mlstrat.predictors.registry import list_predictors

        if not isinstance(members, (list, tuple)) or not members:
            raise self.error(
                path,
                "expected a list of [predictor, {params}] pairs",
                "e.g. members: [[lstm, {window: 24}], [transformer, {}]]",
            )
        out = []
        for j, member in enumerate(members):
            mp = f"{path}[{j}]"
            if not isinstance(member, (list, tuple)) or len(member) != 2:
                raise self.error(mp, f"expected a [predictor, {{params}}] pair, got {member!r}")
            kind = self.choice(
                member[0], f"{mp}[0]", [n for n in list_predictors() if n != "hybrid"]
            )
            cls = self.predictor_class(kind, f"{mp}[0]")
            out.append((kind, predictor_task(cls, self.params(cls, member[1], f"{mp}[1]"))))
        return out

    def predictor_features(
        self, raw: Any, path: str, features: FeaturesConfig
    ) -> tuple[str, ...] | None:
        from mlstrat.features import get_feature_set, list_feature_sets

        if raw is None:
            return None
        main = get_feature_set(features.set, features.version).feature_names
        if isinstance(raw, str):
            self.choice(raw, path, [fs.name for fs in list_feature_sets()])
            names = get_feature_set(raw).feature_names
            if names is None:
                raise self.error(
                    path,
                    f"feature set {raw!r} has no fixed column list",
                    "list the columns instead",
                )
        elif isinstance(raw, list) and raw:
            names = tuple(self.string(n, f"{path}[{i}]") for i, n in enumerate(raw))
        else:
            raise self.error(path, f"expected a feature-set name or a list of columns, got {raw!r}")
        if main is not None:
            known = set(main) | {"rv_1m", "rv_1m_24"}
            missing = [n for n in names if n not in known]
            if missing:
                raise self.error(
                    path,
                    f"not in feature set {features.set!r}: {_allowed(missing[:5])}"
                    + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""),
                    f"pick columns of features.set {features.set!r} (mlstrat features list)",
                )
        return tuple(names)

    def code_spec(self, value: Any, key: str, optional: bool = False) -> str | None:
        """A class spec ``FILE.py:Class`` or ``module:Class``, checked without running any code."""
        spec = self.string(value, key, optional=optional)
        if spec is None:
            return None
        target, _ = self.checked(key, split_spec, spec)
        if target.endswith(".py"):
            self.regular_path(target, key, "give the path of a Python file")
        return spec

    def absolute_spec(self, spec: str) -> tuple[str, Path | None]:
        """(the spec with its file's absolute path, that file or None for a module spec)."""
        target, attr = split_spec(spec)
        file = spec_file(target, self.base)
        if file is None:
            return spec, None
        file = file.resolve()
        return f"{file}:{attr}", file

    def user_class(self, load: Callable[..., type], spec: str, key: str) -> type:
        """The class `spec` names, imported once (this runs the user's file)."""
        try:
            return load(spec, base=self.base)
        except ConfigError as exc:
            raise self.wrap(key, exc) from None

    def strategy_columns(
        self, raw: Mapping[str, Any], features: FeaturesConfig
    ) -> str | tuple[str, ...]:
        from mlstrat.backtest import StrategyConfig

        columns = self.setting(StrategyConfig, "columns", raw, "strategy")
        if isinstance(columns, str):
            return columns
        main = features.feature_set().feature_names
        if main is not None:
            for i, c in enumerate(columns):
                if c not in main and c not in features.target_columns:
                    raise self.error(
                        f"strategy.columns[{i}]", f"{c!r} is not a column of the feature feed"
                    )
        return columns

    def strategy(
        self, raw: Mapping[str, Any], spec: str, columns: str | tuple[str, ...]
    ) -> StrategyConfig:
        """The strategy section, importing the class and checking its params against it."""
        from mlstrat.backtest import StrategyConfig, bt_params, load_strategy

        cls = self.user_class(load_strategy, spec, "strategy.class")
        params = self.mapping(raw.get("params"), "strategy.params", bt_params(cls))
        absolute, file = self.absolute_spec(spec)
        return StrategyConfig(absolute, params, columns, file, cls)

    def sizing(
        self, raw: Mapping[str, Any], spec: str | None, strategy_cls: type, volatility: str | None
    ) -> SizingConfig:
        """The sizing section; a sizer file is imported here (the strategy's is not re-run)."""
        from mlstrat.backtest import SizingConfig, bt_params, load_sizer
        from mlstrat.sizing import TieredConfidenceSizer

        if spec is None:
            cls = getattr(strategy_cls, "default_sizer", None) or TieredConfidenceSizer
            params = self.mapping(raw.get("params"), "sizing.params", bt_params(cls))
            return SizingConfig(None, params, volatility)
        cls = self.user_class(load_sizer, spec, "sizing.class")
        params = self.mapping(raw.get("params"), "sizing.params", bt_params(cls))
        return SizingConfig(self.absolute_spec(spec)[0], params, volatility, cls)


def predictor_task(cls: type, params: Mapping[str, Any]) -> str:
    """What predictor class `cls` learns with constructor `params`, without building it: its
    `task` parameter when the constructor takes one (xgboost), else the class's `task`."""
    if "task" in cls.param_names():
        return str(params.get("task", _default_param(cls, "task")))
    return str(getattr(cls, "task", "direction"))


def _default_param(cls: type, name: str) -> Any:
    """The default of constructor parameter `name` of `cls`."""
    return inspect.signature(cls).parameters[name].default


def horizon_notes(config: RunConfig) -> list[str]:
    """One sentence per traded predictor whose target horizon h disagrees with the
    strategy's ``max_hold_bars`` H (H > 2h or H < h/2): a next-bar model held for a day
    is judged on moves it never learned."""
    from mlstrat.features.targets import horizon_of

    strategy = config.strategy
    default = getattr(strategy.loaded.params, "max_hold_bars", None)
    hold = strategy.params.get("max_hold_bars", default)
    if hold is None:
        return []
    notes = []
    for pred in config.signal_predictors:
        h = horizon_of(pred.target) if pred.target is not None else None
        if h is not None and (hold > 2 * h or 2 * hold < h):
            notes.append(
                f"predictor {pred.name!r} learns {pred.target} ({h}-bar horizon) but the "
                f"strategy holds up to {hold} bars (strategy.params.max_hold_bars). "
                f"Fix: a target of horizon {hold} (e.g. direction:{hold}) or "
                f"max_hold_bars: {h}"
            )
    return notes


def warn_horizons(config: RunConfig) -> None:
    """A `HorizonWarning` for each of `horizon_notes`; `run_experiment` calls it once a run."""
    import warnings

    from mlstrat.errors import HorizonWarning

    for note in horizon_notes(config):
        warnings.warn(HorizonWarning(note), stacklevel=3)
