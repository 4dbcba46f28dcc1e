"""Run configuration: one YAML file describes a whole experiment, checked before anything runs.

    from mlstrat.config import load_config
    cfg = load_config("configs/demo.yaml")
    cfg.predictors[0].params["max_depth"]

Sections (every key is optional unless marked; unknown keys are errors):

    name, seed, n_jobs, backend (loky | dask), scheduler, cache_dir
    data:        files (required: list of {path, symbol, minute_path and the data
                 options of mlstrat.data.options: timeframe, format, tz, sort,
                 calendar, adjust, on_duplicate, on_spike, ...} or plain paths),
                 start, end
    features:    set, version, targets
    predictors:  (required) list of {name, predictor, params, target, features, thresholds}
    walkforward: train, test, step, purge, embargo, validation, expanding, min_train
    strategy:    class ("path/file.py:Class" or "module:Class"), params, columns
    sizing:      class, params, volatility (name of a volatility predictor)
    broker:      cash, commission, fixed_commission, slippage, fill, cheat_on_open,
                 slippage_cap (bar_range | none)
    report:      enabled, title, comparison, log_scale, risk_free (annual), dpi

Relative paths are taken from the directory of the YAML file. A problem is a
`ConfigError` whose message starts with the key path (``predictors[1].params.max_depth``)
and whose fix lists the allowed keys or values. `RunConfig.to_dict()` is the
fully resolved form (defaults filled, absolute paths) that a run directory stores.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import inspect
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlstrat.data.options import config_keys
from mlstrat.errors import ConfigError, DataError, MlstratError
from mlstrat.features.targets import TASK_EXAMPLES, TASK_KINDS, task_targets
from mlstrat.fileio import to_jsonable

BACKENDS = ("loky", "dask")
FILLS = ("next_open", "close")
COLUMN_CHOICES = ("predictions", "all")
SIGNAL_TASKS = ("direction", "three_class", "regression")
VOLATILITY_TASKS = ("volatility",)

TOP_KEYS = (
    "name",
    "seed",
    "n_jobs",
    "backend",
    "scheduler",
    "cache_dir",
    "data",
    "features",
    "predictors",
    "walkforward",
    "strategy",
    "sizing",
    "broker",
    "report",
)
DATA_KEYS = ("files", "start", "end")
#: Keys of one data file: its path, symbol and minute data, then one per data option
#: (`mlstrat.data.options.DataOptions`, the declaration every interface shares).
FILE_KEYS = (
    "path",
    "symbol",
    *(key for key in config_keys().values() if key != "symbol"),
    "minute_path",
)
FEATURE_KEYS = ("set", "version", "targets")
#: A run name is a folder name under reports/: no separators, no "..", no hidden names.
RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
PREDICTOR_KEYS = ("name", "predictor", "params", "target", "features", "thresholds")
WALKFORWARD_KEYS = (
    "train",
    "test",
    "step",
    "purge",
    "embargo",
    "validation",
    "expanding",
    "min_train",
)
STRATEGY_KEYS = ("class", "params", "columns")
SIZING_KEYS = ("class", "params", "volatility")
BROKER_KEYS = (
    "cash",
    "commission",
    "fixed_commission",
    "slippage",
    "fill",
    "cheat_on_open",
    "slippage_cap",
)
REPORT_KEYS = ("enabled", "title", "comparison", "log_scale", "risk_free", "dpi")
THRESHOLD_KEYS = ("low", "high", "step", "objective", "min_signals", "fallback", "multipliers")


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


@dataclass(frozen=True)
class DataConfig:
    """Input files (one per symbol) and the UTC date range cut from each."""

    files: tuple[DataFile, ...]
    start: str | None = None
    end: str | None = None

    @property
    def symbols(self) -> list[str]:
        return [f.symbol for f in self.files]


@dataclass(frozen=True)
class FeaturesConfig:
    """Feature set (name and version) and the target specs computed beside it."""

    set: str = "core"
    version: int = 1
    targets: tuple[str, ...] = ("direction:1",)

    @property
    def target_columns(self) -> list[str]:
        from mlstrat.features import parse_targets

        return [t.name for t in parse_targets(self.targets)]


@dataclass(frozen=True)
class PredictorConfig:
    """One walk-forward model: registry name, constructor params, target and input columns."""

    name: str
    predictor: str
    params: dict[str, Any] = field(default_factory=dict)
    target: str = "direction_1"
    features: tuple[str, ...] | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)
    task: str = "direction"
    fit_targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class WalkForwardConfig:
    """The fold schedule (see `mlstrat.walkforward.WalkForward`)."""

    train: int | str = "4mo"
    test: int | str = "2mo"
    step: int | str | None = None
    purge: int | str | None = None
    embargo: int | str = "0h"
    validation: float | int | str = 0.2
    expanding: bool = False
    min_train: int | str | None = None

    def splits(self, horizon: int = 1) -> Any:
        from mlstrat.walkforward import WalkForward

        return WalkForward(
            train=self.train,
            test=self.test,
            step=self.step,
            purge=self.purge,
            embargo=self.embargo,
            validation=self.validation,
            expanding=self.expanding,
            min_train=self.min_train,
            horizon=horizon,
        )


@dataclass(frozen=True)
class StrategyConfig:
    """Strategy class spec, its params, and which feed columns become lines."""

    cls: str = "mlstrat.strategy:MLStrategy"
    params: dict[str, Any] = field(default_factory=dict)
    columns: str | tuple[str, ...] = "predictions"
    base: Path | None = None  # directory relative file specs are taken from
    file: Path | None = None  # the strategy's source file when given as a path


@dataclass(frozen=True)
class SizingConfig:
    """Sizer class (None: the strategy's default sizer), params, volatility source."""

    cls: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    volatility: str | None = None


@dataclass(frozen=True)
class BrokerSection:
    """Broker settings (see `mlstrat.broker.BrokerConfig`)."""

    cash: float = 10_000.0
    commission: float = 0.001
    fixed_commission: float = 0.0
    slippage: float = 0.0
    fill: str = "next_open"
    cheat_on_open: bool = False
    slippage_cap: str = "bar_range"


@dataclass(frozen=True)
class ReportConfig:
    """Whether to build the HTML report(s), their title, and the comparison page."""

    enabled: bool = True
    title: str | None = None
    comparison: bool = True
    log_scale: bool | str = "auto"
    risk_free: float = 0.0
    dpi: int = 100


@dataclass(frozen=True)
class RunConfig:
    """A whole experiment; build it with `load_config` / `parse_config`."""

    name: str
    data: DataConfig
    features: FeaturesConfig
    predictors: tuple[PredictorConfig, ...]
    walkforward: WalkForwardConfig = WalkForwardConfig()
    strategy: StrategyConfig = StrategyConfig()
    sizing: SizingConfig = SizingConfig()
    broker: BrokerSection = BrokerSection()
    report: ReportConfig = ReportConfig()
    seed: int = 42
    n_jobs: int = -1
    backend: str = "loky"
    scheduler: str | None = None
    cache_dir: Path | None = None
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
        return {
            "name": self.name,
            "seed": self.seed,
            "n_jobs": self.n_jobs,
            "backend": self.backend,
            "scheduler": self.scheduler,
            "cache_dir": None if self.cache_dir is None else str(self.cache_dir),
            "data": {
                "files": [_data_file_dict(f) for f in self.data.files],
                "start": self.data.start,
                "end": self.data.end,
            },
            "features": {
                "set": self.features.set,
                "version": self.features.version,
                "targets": list(self.features.targets),
            },
            "predictors": [
                {
                    "name": p.name,
                    "predictor": p.predictor,
                    "params": to_jsonable(p.params, allow_nan=True),
                    "target": p.target,
                    "features": None if p.features is None else list(p.features),
                    "thresholds": to_jsonable(p.thresholds, allow_nan=True),
                }
                for p in self.predictors
            ],
            "walkforward": {
                "train": self.walkforward.train,
                "test": self.walkforward.test,
                "step": self.walkforward.step,
                "purge": self.walkforward.purge,
                "embargo": self.walkforward.embargo,
                "validation": self.walkforward.validation,
                "expanding": self.walkforward.expanding,
                "min_train": self.walkforward.min_train,
            },
            "strategy": {
                "class": self._absolute_spec(self.strategy.cls),
                "params": to_jsonable(self.strategy.params, allow_nan=True),
                "columns": self.strategy.columns
                if isinstance(self.strategy.columns, str)
                else list(self.strategy.columns),
            },
            "sizing": {
                "class": None if self.sizing.cls is None else self._absolute_spec(self.sizing.cls),
                "params": to_jsonable(self.sizing.params, allow_nan=True),
                "volatility": self.sizing.volatility,
            },
            "broker": {
                "cash": self.broker.cash,
                "commission": self.broker.commission,
                "fixed_commission": self.broker.fixed_commission,
                "slippage": self.broker.slippage,
                "fill": self.broker.fill,
                "cheat_on_open": self.broker.cheat_on_open,
                "slippage_cap": self.broker.slippage_cap,
            },
            "report": {
                "enabled": self.report.enabled,
                "title": self.report.title,
                "comparison": self.report.comparison,
                "log_scale": self.report.log_scale,
                "risk_free": self.report.risk_free,
                "dpi": self.report.dpi,
            },
        }

    def _absolute_spec(self, spec: str) -> str:
        target, _, attr = spec.rpartition(":")
        if target.endswith(".py") and self.strategy.base is not None:
            path = Path(target)
            if not path.is_absolute():
                path = (self.strategy.base / path).resolve()
            return f"{path}:{attr}"
        return spec

    def section(self, name: str) -> Any:
        """One top-level section of `to_dict()`."""
        return self.to_dict()[name]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def _data_file_dict(f: DataFile) -> dict[str, Any]:
    """A data file as configuration keys: path, symbol, minute_path and every data option."""
    from mlstrat.data.options import config_key

    out: dict[str, Any] = {"path": str(f.path), "symbol": f.symbol}
    out["minute_path"] = None if f.minute_path is None else str(f.minute_path)
    for name, value in f.options.as_dict().items():
        if name != "symbol":
            out[config_key(name)] = value
    return out


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
        close = difflib.get_close_matches(key, [str(a) for a in allowed], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return self.error(path, f"unknown key{hint}", f"allowed keys: {_allowed(allowed)}")

    def integer(self, value: Any, path: str, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(path, f"expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.error(path, f"must be >= {minimum}, got {value}")
        return int(value)

    def number(
        self, value: Any, path: str, lo: float | None = None, hi: float | None = None
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(path, f"expected a number, got {value!r}")
        value = float(value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            span = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
            raise self.error(path, f"{value} is outside {span}")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"expected true or false, got {value!r}")
        return value

    def string(self, value: Any, path: str, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(path, f"expected a non-empty string, got {value!r}")
        return value.strip()

    def choice(self, value: Any, path: str, choices: Sequence[str]) -> str:
        if value not in choices:
            close = difflib.get_close_matches(str(value), list(choices), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.error(
                path, f"{value!r} is not allowed{hint}", f"allowed values: {_allowed(choices)}"
            )
        return str(value)

    def span(self, value: Any, path: str, optional: bool = False) -> int | str | None:
        """A window length: bars (int) or a duration/month string ('120D', '4mo')."""
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.error(
                path, f"expected bars (int) or a duration such as '120D' or '4mo', got {value!r}"
            )
        from mlstrat.walkforward.splits import parse_span

        try:
            parse_span(value, "value")
        except ConfigError as exc:
            raise self.wrap(path, exc) from None
        return value

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
        seed = self.integer(top.get("seed", 42), "seed", minimum=0)
        n_jobs = self.integer(top.get("n_jobs", -1), "n_jobs")
        if n_jobs == 0 or n_jobs < -1:
            raise self.error("n_jobs", f"{n_jobs} is not allowed", "-1 (all cores) or a count >= 1")
        backend = self.choice(top.get("backend", "loky"), "backend", BACKENDS)
        scheduler = self.string(top.get("scheduler"), "scheduler", optional=True)
        if scheduler is not None and backend != "dask":
            raise self.error(
                "scheduler", "only used with backend: dask", "set backend: dask or drop scheduler"
            )
        cache_dir = None
        if top.get("cache_dir") is not None:
            cache_dir = self.path(top["cache_dir"], "cache_dir", must_exist=False)

        data = self.data(top["data"])
        features = self.features(top.get("features"), data)
        walkforward = self.walkforward(top.get("walkforward"))
        sizing_raw = self.mapping(top.get("sizing"), "sizing", SIZING_KEYS)
        vol_name = self.string(sizing_raw.get("volatility"), "sizing.volatility", optional=True)
        predictors = self.predictors(top["predictors"], features, vol_name)
        if all(p.name == vol_name for p in predictors):
            raise self.error(
                "predictors",
                "no predictor left to trade (the only one is the volatility source)",
                "add a direction, three_class or regression predictor",
            )
        strategy_raw = self.mapping(top.get("strategy"), "strategy", STRATEGY_KEYS)
        strategy_spec = self.code_spec(
            strategy_raw.get("class", StrategyConfig.cls), "strategy.class"
        )
        columns = self.strategy_columns(strategy_raw.get("columns", "predictions"), features)
        self.loose_mapping(strategy_raw.get("params"), "strategy.params")
        sizer_spec = self.code_spec(sizing_raw.get("class"), "sizing.class", optional=True)
        sizer_params = self.loose_mapping(sizing_raw.get("params"), "sizing.params")
        if vol_name is not None and "target_vol" not in sizer_params:
            raise self.error(
                "sizing.params.target_vol",
                "missing: sizing.volatility is set but volatility targeting is off",
                "set target_vol (e.g. 0.5 annualised with periods_per_year: 8760)",
            )
        broker = self.broker(top.get("broker"))
        report = self.report(top.get("report"))
        # Strategy and sizer files are code that runs: import them only now that every
        # other key is valid, and once each.
        strategy, strategy_cls = self.strategy(strategy_raw, strategy_spec, columns)
        sizing = self.sizing(sizing_raw, sizer_spec, strategy_cls, vol_name)
        config = RunConfig(
            name=name,
            data=data,
            features=features,
            predictors=tuple(predictors),
            walkforward=walkforward,
            strategy=strategy,
            sizing=sizing,
            broker=broker,
            report=report,
            seed=seed,
            n_jobs=n_jobs,
            backend=backend,
            scheduler=scheduler,
            cache_dir=cache_dir,
            source=self.source,
        )
        return config

    def data(self, raw: Any) -> DataConfig:
        section = self.mapping(raw, "data", DATA_KEYS)
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
        from mlstrat.data.options import option_from_key, option_help

        values: dict[str, Any] = {}
        for key, value in item.items():
            name = option_from_key(key)
            if name is None or name == "symbol":
                continue
            where = _join(path, key)
            _, choices, kind = option_help(name)
            if kind is bool:
                values[name] = self.boolean(value, where)
            elif choices:
                values[name] = self.choice(value, where, choices)
            else:
                values[name] = self.string(value, where, optional=True)
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

    def features(self, raw: Any, data: DataConfig) -> FeaturesConfig:
        from mlstrat.features import get_feature_set, list_feature_sets, parse_targets

        section = self.mapping(raw, "features", FEATURE_KEYS)
        names = [fs.name for fs in list_feature_sets()]
        set_name = self.choice(section.get("set", "core"), "features.set", names)
        version = section.get("version")
        if version is not None:
            version = self.integer(version, "features.version", minimum=1)
        try:
            fs = get_feature_set(set_name, version)
        except ConfigError as exc:
            raise self.wrap("features.version", exc) from None
        targets_raw = section.get("targets", ["direction:1"])
        if isinstance(targets_raw, str):
            targets_raw = [targets_raw]
        if not isinstance(targets_raw, list) or not targets_raw:
            raise self.error(
                "features.targets",
                "expected a list of target specs",
                "e.g. [direction:1, forward_volatility:24]",
            )
        specs = []
        for i, spec in enumerate(targets_raw):
            p = f"features.targets[{i}]"
            self.string(spec, p)
            try:
                specs.append(parse_targets([spec])[0].spec)
            except ConfigError as exc:
                raise self.wrap(p, exc) from None
        try:
            parse_targets(specs)
        except ConfigError as exc:
            raise self.wrap("features.targets", exc) from None
        return FeaturesConfig(fs.name, fs.version, tuple(specs))

    def walkforward(self, raw: Any) -> WalkForwardConfig:
        s = self.mapping(raw, "walkforward", WALKFORWARD_KEYS)
        d = WalkForwardConfig()
        validation = s.get("validation", d.validation)
        if isinstance(validation, float):
            self.number(validation, "walkforward.validation", 0.0, 0.999999)
        else:
            validation = self.span(validation, "walkforward.validation")
        cfg = WalkForwardConfig(
            train=self.span(s.get("train", d.train), "walkforward.train"),
            test=self.span(s.get("test", d.test), "walkforward.test"),
            step=self.span(s.get("step"), "walkforward.step", optional=True),
            purge=self.span(s.get("purge"), "walkforward.purge", optional=True),
            embargo=self.span(s.get("embargo", d.embargo), "walkforward.embargo"),
            validation=validation,
            expanding=self.boolean(s.get("expanding", False), "walkforward.expanding"),
            min_train=self.span(s.get("min_train"), "walkforward.min_train", optional=True),
        )
        try:
            cfg.splits()
        except ConfigError as exc:
            raise self.wrap("walkforward", exc) from None
        return cfg

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
        from mlstrat.predictors.registry import list_predictors

        item = self.mapping(raw, path, PREDICTOR_KEYS)
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
        params = self.mapping(
            item.get("params"),
            _join(path, "params"),
            self.predictor_keys(kind, _join(path, "params")),
        )
        if kind == "hybrid" and "members" in params:
            self.hybrid_members(params["members"], _join(path, "params.members"))
        model = self.instantiate(kind, params, _join(path, "params"))
        task = str(getattr(model, "task", "direction"))
        is_vol = name == vol_name
        wanted = VOLATILITY_TASKS if is_vol else SIGNAL_TASKS
        if task not in wanted:
            role = "the sizing volatility source" if is_vol else "a trading signal"
            raise self.error(
                _join(path, "predictor"),
                f"{kind!r} has task {task!r}, which cannot serve as {role}",
                f"use a predictor with task {' or '.join(wanted)}",
            )
        label_task = task
        fit_targets = self.member_targets(
            kind, model, task, features.target_columns, _join(path, "params.members")
        )
        fitting = task_targets(features.target_columns, label_task)
        if not fitting:
            raise self.error(
                _join(path, "target"),
                f"features.targets has no {TASK_KINDS[label_task]}_* target for the "
                f"{label_task} model {kind!r}",
                f"add one to features.targets, e.g. {TASK_EXAMPLES[label_task]}",
            )
        target = fitting[0]
        if "target" in item:
            target = self.choice(item["target"], _join(path, "target"), fitting)
        cols = self.predictor_features(item.get("features"), _join(path, "features"), features)
        thresholds = self.mapping(item.get("thresholds"), _join(path, "thresholds"), THRESHOLD_KEYS)
        if thresholds:
            from mlstrat.walkforward.thresholds import OBJECTIVES

            if "objective" in thresholds:
                self.choice(
                    thresholds["objective"], _join(path, "thresholds.objective"), OBJECTIVES
                )
        return PredictorConfig(name, kind, params, target, cols, thresholds, task, fit_targets)

    def member_targets(
        self, kind: str, model: Any, task: str, targets: Sequence[str], members_path: str
    ) -> tuple[str, ...]:
        """Extra target columns a hybrid's members learn besides the hybrid's own.

        A member whose task differs from the hybrid's (e.g. a three-class
        transformer in a direction hybrid) learns the first feature target of its
        kind; walk-forward fits the hybrid on all of them and scores its own.
        """
        if kind != "hybrid":
            return ()
        extra: list[str] = []
        for j, member in enumerate(getattr(model, "predictors_", [])):
            member_task = str(getattr(member, "task", task))
            if member_task == task:
                continue
            found = task_targets(targets, member_task)
            if not found:
                raise self.error(
                    f"{members_path}[{j}]",
                    f"member {member.name!r} learns {member_task} labels but features.targets "
                    f"has no {TASK_KINDS.get(member_task, member_task)}_* target",
                    f"add one to features.targets, e.g. {TASK_EXAMPLES.get(member_task)}",
                )
            if found[0] not in extra:
                extra.append(found[0])
        return tuple(extra)

    def predictor_keys(self, kind: str, path: str) -> list[str]:
        from mlstrat.predictors.registry import get_predictor

        try:
            cls = get_predictor(kind)
        except MlstratError as exc:
            raise self.wrap(path, exc) from None
        sig = inspect.signature(cls.__init__)
        return [
            n
            for n, p in sig.parameters.items()
            if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]

    def hybrid_members(self, members: Any, path: str) -> None:
        from mlstrat.predictors.registry import list_predictors

        if not isinstance(members, list) or not members:
            raise self.error(
                path,
                "expected a list of [predictor, {params}] pairs",
                "e.g. members: [[lstm, {window: 24}], [transformer, {}]]",
            )
        for j, member in enumerate(members):
            mp = f"{path}[{j}]"
            if not isinstance(member, list) or len(member) != 2:
                raise self.error(mp, f"expected a [predictor, {{params}}] pair, got {member!r}")
            kind = self.choice(
                member[0], f"{mp}[0]", [n for n in list_predictors() if n != "hybrid"]
            )
            params = self.mapping(member[1], f"{mp}[1]", self.predictor_keys(kind, f"{mp}[1]"))
            self.instantiate(kind, params, f"{mp}[1]")

    def instantiate(self, kind: str, params: Mapping[str, Any], path: str) -> Any:
        from mlstrat.predictors.registry import create_predictor

        try:
            return create_predictor(kind, **dict(params))
        except MlstratError as exc:
            raise self.wrap(path, exc) from None
        except (TypeError, ValueError) as exc:
            raise self.error(path, f"invalid value: {exc}") from None

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
        target, sep, attr = spec.rpartition(":")
        if not sep or not target or not attr.isidentifier():
            raise self.error(
                key,
                f"{spec!r} is not of the form FILE.py:Class or module:Class",
                "e.g. strategies/tiered_long_short.py:TieredLongShort",
            )
        if target.endswith(".py"):
            self.regular_path(target, key, "give the path of a Python file")
        return spec

    def loose_mapping(self, value: Any, path: str) -> dict[str, Any]:
        """A mapping whose keys are checked later, against a class not imported yet."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(path, f"expected a mapping, got {type(value).__name__}")
        return dict(value)

    def strategy_columns(self, columns: Any, features: FeaturesConfig) -> str | tuple[str, ...]:
        if isinstance(columns, str):
            return self.choice(columns, "strategy.columns", COLUMN_CHOICES)
        if not isinstance(columns, list):
            raise self.error(
                "strategy.columns",
                f"expected {_allowed(COLUMN_CHOICES)} or a list of columns, got {columns!r}",
            )
        columns = tuple(self.string(c, f"strategy.columns[{i}]") for i, c in enumerate(columns))
        from mlstrat.features import get_feature_set

        main = get_feature_set(features.set, features.version).feature_names
        if main is not None:
            for i, c in enumerate(columns):
                if c not in main and c not in features.target_columns:
                    raise self.error(
                        f"strategy.columns[{i}]", f"{c!r} is not a column of the feature feed"
                    )
        return columns

    def strategy(
        self, s: dict[str, Any], spec: str, columns: str | tuple[str, ...]
    ) -> tuple[StrategyConfig, type]:
        """The strategy section, importing the class (this runs the user's file)."""
        from mlstrat.backtest import load_strategy

        try:
            cls = load_strategy(spec, base=str(self.base))
        except ConfigError as exc:
            raise self.wrap("strategy.class", exc) from None
        except Exception as exc:  # the user's module failed while it ran
            raise self.import_failed("strategy.class", spec, exc) from None
        params = self.mapping(s.get("params"), "strategy.params", _bt_params(cls))
        target, _, _ = spec.rpartition(":")
        file = None
        if target.endswith(".py"):
            file = Path(target) if Path(target).is_absolute() else (self.base / target).resolve()
        return StrategyConfig(spec, params, columns, self.base, file), cls

    def sizing(
        self, s: dict[str, Any], spec: str | None, strategy_cls: type, volatility: str | None
    ) -> SizingConfig:
        """The sizing section; a sizer file is imported here (the strategy's is not re-run)."""
        from mlstrat.sizing import TieredConfidenceSizer

        if spec is not None:
            cls = self.sizer_class(spec)
        else:
            cls = getattr(strategy_cls, "default_sizer", None) or TieredConfidenceSizer
        params = self.mapping(s.get("params"), "sizing.params", _bt_params(cls))
        return SizingConfig(spec, params, volatility)

    def import_failed(self, key: str, spec: str, exc: Exception) -> ConfigError:
        first = (str(exc).splitlines() or [""])[0]
        return self.error(
            key,
            f"importing {spec!r} raised {type(exc).__name__}: {first}",
            "fix that file (it runs when the configuration is loaded)",
        )

    def sizer_class(self, spec: str) -> type:
        import importlib
        import importlib.util

        import backtrader as bt

        target, sep, attr = spec.rpartition(":")
        if not sep or not target or not attr:
            raise self.error(
                "sizing.class", f"{spec!r} is not of the form FILE.py:Class or module:Class"
            )
        try:
            if target.endswith(".py"):
                file = Path(target) if Path(target).is_absolute() else self.base / target
                if not file.is_file():
                    raise self.error("sizing.class", f"file not found: {file}")
                mod_spec = importlib.util.spec_from_file_location(
                    f"mlstrat_user_sizer_{file.stem}", file
                )
                module = importlib.util.module_from_spec(mod_spec)
                mod_spec.loader.exec_module(module)
            else:
                module = importlib.import_module(target)
        except ConfigError:
            raise
        except ImportError as exc:
            raise self.error("sizing.class", f"cannot import {target!r} ({exc})") from None
        except Exception as exc:  # the user's module failed while it ran
            raise self.import_failed("sizing.class", spec, exc) from None
        cls = getattr(module, attr, None)
        if not (isinstance(cls, type) and issubclass(cls, bt.Sizer)):
            raise self.error(
                "sizing.class", f"{attr!r} in {target} is not a backtrader Sizer class"
            )
        return cls

    def broker(self, raw: Any) -> BrokerSection:
        from mlstrat.broker import SLIPPAGE_CAPS, BrokerConfig

        s = self.mapping(raw, "broker", BROKER_KEYS)
        d = BrokerSection()
        section = BrokerSection(
            cash=self.number(s.get("cash", d.cash), "broker.cash"),
            commission=self.number(s.get("commission", d.commission), "broker.commission"),
            fixed_commission=self.number(
                s.get("fixed_commission", d.fixed_commission), "broker.fixed_commission"
            ),
            slippage=self.number(s.get("slippage", d.slippage), "broker.slippage"),
            fill=self.choice(s.get("fill", d.fill), "broker.fill", FILLS),
            cheat_on_open=self.boolean(
                s.get("cheat_on_open", d.cheat_on_open), "broker.cheat_on_open"
            ),
            slippage_cap=self.choice(
                s.get("slippage_cap", d.slippage_cap), "broker.slippage_cap", SLIPPAGE_CAPS
            ),
        )
        try:
            BrokerConfig(**section.__dict__)
        except ConfigError as exc:
            raise self.wrap(f"broker.{exc.column}" if exc.column else "broker", exc) from None
        return section

    def report(self, raw: Any) -> ReportConfig:
        s = self.mapping(raw, "report", REPORT_KEYS)
        log_scale = s.get("log_scale", "auto")
        if log_scale != "auto" and not isinstance(log_scale, bool):
            raise self.error(
                "report.log_scale",
                f"{log_scale!r} is not allowed",
                "allowed values: auto, true, false",
            )
        return ReportConfig(
            enabled=self.boolean(s.get("enabled", True), "report.enabled"),
            title=self.string(s.get("title"), "report.title", optional=True),
            comparison=self.boolean(s.get("comparison", True), "report.comparison"),
            log_scale=log_scale,
            risk_free=self.number(s.get("risk_free", 0.0), "report.risk_free", -1.0, 1.0),
            dpi=self.integer(s.get("dpi", 100), "report.dpi", minimum=30),
        )


def _bt_params(cls: type) -> list[str]:
    params = getattr(cls, "params", None)
    return list(params._getkeys()) if params is not None and hasattr(params, "_getkeys") else []
