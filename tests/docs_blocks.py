"""The documentation's fenced code blocks, and how each is checked (tests/test_docs_examples.py).

Every fenced block (```` ``` ```` or ``~~~``) of README.md and docs/*.md is one test,
identified by ``FILE:LINE`` of its opening fence. What a block's test does is said by a
marker, an HTML comment on the line just before the opening fence (no blank line between):

    <!-- example: VERB [OPTION ...] [(REASON)] -->

VERB:
  run           execute it. python: the block (after its ``after=`` blocks) as one script;
                shell (bash, sh, shell, or no language): each command (lines joined at a
                trailing backslash, blank and ``#`` lines skipped) through ``bash -c``;
                yaml: the block merged over the sandbox demo (below), then
                ``mlstrat run configs/example.yaml``. Exit code 0 passes.
  config        yaml: read by mlstrat's own loader (`mlstrat.config.load_yaml_text`: duplicate
                keys and size limits) and validated with `mlstrat.config.parse_config`,
                strategy and sizer classes included. A block with both ``data`` and
                ``predictors`` is a whole configuration; any other block is a snippet whose
                top-level keys replace the same keys of the shipped configs/demo.yaml.
                Relative paths are read from the sandbox's configs/ (so ``../datasets/...``
                and ``../strategies/...`` mean what they mean next to configs/demo.yaml).
  parse         syntax only: json (``json.loads``), toml (``tomllib``), python (``compile``),
                yaml (the safe loader), shell (``bash -n``).
  illustrative  not checked, and says why in (REASON), which is required: output samples,
                directory trees, commands that need an exchange, a cluster, your own model
                files, or hours.

OPTIONS:
  slow          run only: the test is marked ``slow`` (whole runs, Keras; ``make test-fast``
                skips it).
  id=NAME       names the block, for ``after=`` of later blocks of the same document.
  after=NAME[,NAME]
                python: the named blocks of the same document (each with its own ``after=``)
                run first, in the same script: a block continuing an earlier one.
  file=PATH     the block (python: with its ``after=`` blocks) is also written to PATH in the
                sandbox of every block of its document (a strategy file a YAML block names).

Defaults, for a block without a marker: python -> run, yaml -> config, json and toml ->
parse. Every other kind (bash, sh, shell, untagged, text, ...) has no default: its test
fails, naming the file and line and the marker to add. A marker that is not directly
followed by a fence fails too (test_every_marker_precedes_a_fence).

The sandbox. Blocks run (and configs resolve) in a fresh temporary directory, never in the
repository, holding what the documentation's commands refer to:
  datasets/     copies of the shipped sample files;
  strategies/, examples/, configs/full.yaml
                copies of the repository's;
  configs/demo.yaml
                the shipped demo cut to tiny sizes (`TINY_DEMO`: three and a half months,
                the core features, 40-day/20-day folds, one 10-tree XGBoost, no volatility
                model), so ``mlstrat run configs/demo.yaml``, ``--replay`` and ``mlstrat
                sweep`` run as written in seconds;
  features.parquet, models/predictions.parquet
                a small feature feed of the sample (core set, 2025-01 to 2025-10, targets
                direction_1 and forward_return_1) and its walk-forward predictions: the
                files the snippets call by those names;
  old/btc_lstm.h5, old/btc_savedmodel/, old/feature_names.json, old/scaler.json,
  old/check_inputs.npy, old/check_outputs.npy, old_model.h5, names.json
                stand-ins for "your old Keras model", made from the Keras 2 fixture
                tests/fixtures/legacy/seq_lstm (12 steps x 5 features, one sigmoid).
Commands run with the venv's bin first on PATH (``mlstrat`` is the venv's), Python blocks
with the interpreter running the tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

VERBS = ("run", "config", "parse", "illustrative")
SHELL = ("", "bash", "sh", "shell")
DEFAULTS = {"python": "run", "yaml": "config", "yml": "config", "json": "parse", "toml": "parse"}
#: verb -> the languages it applies to
ALLOWED = {
    "run": ("python", "yaml", "yml", *SHELL),
    "config": ("yaml", "yml"),
    "parse": ("python", "yaml", "yml", "json", "toml", *SHELL),
    "illustrative": None,  # any
}
VERDICT = {"run": "run", "config": "parsed", "parse": "parsed", "illustrative": "illustrative"}

MARKER = re.compile(r"^\s*<!--\s*example:(?P<body>.*?)-->\s*$")
_BODY = re.compile(
    r"^\s*(?P<verb>[\w-]+)(?P<options>(?:\s+[^\s()]+)*)\s*(?:\((?P<reason>.*)\))?\s*$"
)
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>.*)$")
_FIX = (
    "put <!-- example: run --> or <!-- example: illustrative (why it cannot run) --> "
    "on the line just before the opening fence (see docs/testing.md, Documentation examples)"
)

#: --set overrides that turn configs/demo.yaml into the sandbox's tiny demo.
TINY_DEMO: dict[str, Any] = {
    "n_jobs": 1,
    "data.start": "2025-06-01",
    "data.end": "2025-09-15",
    "features.set": "core",
    "walkforward.train": "40D",
    "walkforward.test": "20D",
    "predictors": [
        {"name": "xgboost", "predictor": "xgboost", "params": {"n_estimators": 10, "max_depth": 3}}
    ],
    "sizing.volatility": None,
    "sizing.params.target_vol": None,
    "sizing.params.tiers": [[0.5, 0.25], [0.52, 0.5], [0.55, 1.0]],
}


@dataclass
class Block:
    """One fenced block and what its marker (or its language's default) asks for."""

    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: str | None  # the marker's body as written, None without one
    verb: str | None = None
    reason: str | None = None
    slow: bool = False
    name: str | None = None
    after: tuple[str, ...] = ()
    file: str | None = None
    problem: str | None = None  # why the marker is unusable; the block's test fails with it
    siblings: list[Block] = field(default_factory=list, repr=False)

    @property
    def location(self) -> str:
        return f"{_relative(self.doc)}:{self.line}"

    @property
    def verdict(self) -> str | None:
        return VERDICT.get(self.verb or "")

    @property
    def is_shell(self) -> bool:
        return self.lang in SHELL

    def code(self) -> str:
        """Python: the blocks named by ``after=`` (recursively, each once), then this one."""
        order: list[Block] = []

        def visit(block: Block, stack: tuple[str, ...]) -> None:
            for name in block.after:
                if name in stack:
                    raise ValueError(f"{block.location}: after={name} is circular")
                found = [b for b in block.siblings if b.name == name]
                if not found:
                    raise ValueError(f"{block.location}: after={name}: no block has id={name}")
                if found[0].lang != "python":
                    raise ValueError(f"{block.location}: after={name} is not a python block")
                visit(found[0], (*stack, name))
            if block not in order:
                order.append(block)

        visit(self, (self.name or "",))
        return "\n\n".join(b.text for b in order)


def _relative(doc: Path) -> str:
    return doc.relative_to(REPO).as_posix() if doc.is_relative_to(REPO) else str(doc)


def _interpret(block: Block) -> None:
    """Fill verb and options from the marker or the default; set `problem` when unusable."""
    kind = f"```{block.lang}" if block.lang else "untagged ```"
    if block.marker is None:
        block.verb = DEFAULTS.get(block.lang)
        if block.verb is None:
            block.problem = f"{block.location}: {kind} block has no example marker. Fix: {_FIX}"
        return
    m = _BODY.match(block.marker)
    if not m:
        block.problem = f"{block.location}: unreadable marker {block.marker.strip()!r}. Fix: {_FIX}"
        return
    verb, reason = m["verb"], m["reason"]
    if verb not in VERBS:
        block.problem = (
            f"{block.location}: unknown verb {verb!r} in the example marker. "
            f"Fix: one of {', '.join(VERBS)}"
        )
        return
    block.verb, block.reason = verb, (reason or "").strip() or None
    for option in m["options"].split():
        key, _, value = option.partition("=")
        if option == "slow":
            block.slow = True
        elif key == "id" and value:
            block.name = value
        elif key == "after" and value:
            block.after = tuple(v for v in value.split(",") if v)
        elif key == "file" and value:
            block.file = value
        else:
            block.problem = (
                f"{block.location}: unknown option {option!r} in the example marker. "
                "Fix: slow, id=NAME, after=NAME[,NAME], file=PATH"
            )
            return
    allowed = ALLOWED[verb]
    if allowed is not None and block.lang not in allowed:
        block.problem = (
            f"{block.location}: {verb!r} does not apply to a {kind} block. "
            f"Fix: use it on {', '.join(repr(a) for a in allowed)} blocks, or mark it "
            "illustrative (why)"
        )
    elif verb == "illustrative" and not block.reason:
        block.problem = (
            f"{block.location}: an illustrative block must say why. "
            "Fix: <!-- example: illustrative (sample output) -->"
        )
    elif block.slow and verb != "run":
        block.problem = f"{block.location}: slow applies to blocks marked run only"
    elif block.after and block.lang != "python":
        block.problem = f"{block.location}: after= applies to python blocks only"
    elif block.file and (Path(block.file).is_absolute() or ".." in Path(block.file).parts):
        block.problem = f"{block.location}: file={block.file} must be a path inside the sandbox"


def parse_markdown(doc: Path, text: str | None = None) -> tuple[list[Block], list[str]]:
    """The fenced blocks of one Markdown file, and the orphan markers (``FILE:LINE: ...``)."""
    lines = (doc.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks: list[Block] = []
    orphans: list[str] = []
    rel = _relative(doc)
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            if MARKER.match(lines[i]) and not (i + 1 < len(lines) and _FENCE.match(lines[i + 1])):
                orphans.append(
                    f"{rel}:{i + 1}: example marker not followed by a fence on the next line. "
                    "Fix: put it on the line just before the opening fence"
                )
            i += 1
            continue
        char, width = fence["fence"][0], len(fence["fence"])
        closing = re.compile(rf"^ {{0,3}}{re.escape(char)}{{{width},}}\s*$")
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            j += 1
        indent = len(fence["indent"])
        # CommonMark: up to the fence's own indentation is removed from each line
        body = [re.sub(rf"^ {{0,{indent}}}", "", ln) for ln in lines[i + 1 : j]]
        marker = MARKER.match(lines[i - 1]) if i > 0 else None
        info = fence["info"].strip().split()
        blocks.append(
            Block(
                doc=doc,
                line=i + 1,
                lang=(info[0].lower() if info else ""),
                text="\n".join(body) + "\n",
                marker=marker["body"] if marker else None,
            )
        )
        i = j + 1
    seen: set[str] = set()
    for block in blocks:
        block.siblings = blocks
        _interpret(block)
        if block.name and block.name in seen:
            block.problem = f"{block.location}: id={block.name} is used twice in this document"
        seen.add(block.name or "")
    for block in blocks:
        if block.after and block.problem is None:
            try:
                block.code()
            except ValueError as exc:
                block.problem = f"{exc}. Fix: name an earlier python block of this page (id=NAME)"
    return blocks, orphans


def collect(docs: list[Path] = DOCS) -> tuple[list[Block], list[str]]:
    blocks: list[Block] = []
    orphans: list[str] = []
    for doc in docs:
        found, lost = parse_markdown(doc)
        blocks += found
        orphans += lost
    return blocks, orphans


def shell_commands(text: str) -> list[str]:
    """One command per logical line: backslash continuations joined; blank and # lines dropped."""
    commands: list[str] = []
    parts: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not parts and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            parts.append(line[:-1].rstrip())
            continue
        commands.append(" ".join([*parts, line]))
        parts = []
    if parts:
        commands.append(" ".join(parts))
    return commands


# --------------------------------------------------------------------------- the sandbox


def build_template(root: Path) -> Path:
    """The sandbox every block starts from (see the module docstring); built once per session."""
    import numpy as np
    import yaml

    from mlstrat import WalkForward, build_feature_feed, load_bars, run_walk_forward
    from mlstrat import write_feature_feed as write_feed
    from mlstrat.config import apply_overrides, load_yaml_text

    root.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("datasets", "strategies", "examples"):
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    (root / "configs").mkdir()
    shutil.copyfile(REPO / "configs" / "full.yaml", root / "configs" / "full.yaml")
    demo = load_yaml_text((REPO / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    header = "# configs/demo.yaml cut to tiny sizes for the documentation's examples\n"
    text = yaml.safe_dump(apply_overrides(demo, TINY_DEMO), sort_keys=False)
    (root / "configs" / "demo.yaml").write_text(header + text, encoding="utf-8")

    bars = load_bars(root / "datasets" / "BTCUSDT-1h.parquet").loc["2025-01-01":"2025-10-01"]
    frame = build_feature_feed(bars, "core", targets=["direction:1", "forward_return:1"])
    feed = write_feed(frame, root / "features.parquet")
    run_walk_forward(
        feed,
        predictor="xgboost",
        params={"n_estimators": 20, "max_depth": 3},
        splits=WalkForward(train="40D", test="20D"),
        out=root / "models",
        n_jobs=1,
        progress=False,
    )

    legacy = REPO / "tests" / "fixtures" / "legacy"
    old = root / "old"
    old.mkdir()
    names = [f"f{i}" for i in range(5)]
    for target in (old / "btc_lstm.h5", root / "old_model.h5"):
        shutil.copyfile(legacy / "seq_lstm.h5", target)
    shutil.copytree(legacy / "seq_lstm_savedmodel", old / "btc_savedmodel")
    shutil.copyfile(legacy / "seq_lstm_input.npy", old / "check_inputs.npy")
    shutil.copyfile(legacy / "seq_lstm_expected.npy", old / "check_outputs.npy")
    for target in (old / "feature_names.json", root / "names.json"):
        target.write_text(json.dumps(names), encoding="utf-8")
    scaler = {"kind": "standard", "mean_": [0.0] * 5, "scale_": np.ones(5).tolist()}
    (old / "scaler.json").write_text(json.dumps(scaler), encoding="utf-8")
    return root


def make_sandbox(template: Path, block: Block, where: Path) -> Path:
    """A fresh copy of the template plus the ``file=`` blocks of the block's document."""
    sandbox = where / "sandbox"
    shutil.copytree(template, sandbox, symlinks=False)
    for other in block.siblings:
        if other.file and other.problem is None:
            target = sandbox / other.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(other.code() if other.lang == "python" else other.text)
    return sandbox


def environment() -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        PATH=bindir + os.pathsep + env.get("PATH", ""),
        TF_CPP_MIN_LOG_LEVEL="2",
        MPLBACKEND="Agg",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


@dataclass
class Outcome:
    command: str
    returncode: int
    stdout: str
    stderr: str

    def failure(self, block: Block) -> str:
        tail = "\n".join((self.stdout + "\n" + self.stderr).strip().splitlines()[-40:])
        kind = f"```{block.lang}" if block.lang else "untagged"
        marker = f"<!-- example:{block.marker}-->" if block.marker else "no marker: the default"
        return (
            f"{block.location}: {self.command!r} exited {self.returncode} "
            f"({kind} block, {marker}):\n{tail}"
        )


def run(command: list[str], cwd: Path, timeout: float, label: str) -> Outcome:
    try:
        proc = subprocess.run(
            command,
            cwd=cwd,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return Outcome(label, -1, out, f"timed out after {timeout:.0f} s")
    return Outcome(label, proc.returncode, proc.stdout, proc.stderr)


def merged_config(block: Block, base_text: str) -> Any:
    """The snippet over `base_text` (top-level keys replace), or the block alone if whole."""
    from mlstrat.config import load_yaml_text

    snippet = load_yaml_text(block.text, block.location)
    if not isinstance(snippet, dict):
        raise AssertionError(f"{block.location}: a config block must be a YAML mapping")
    if "data" in snippet and "predictors" in snippet:
        return snippet
    return {**load_yaml_text(base_text), **snippet}
