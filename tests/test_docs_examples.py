"""Every documented example runs: each fenced block of README.md and docs/*.md is one test.

The marker syntax, the defaults per language and the sandbox the blocks run in are
described in tests/docs_blocks.py and docs/testing.md ("Documentation examples"). A block
whose kind has no default and that carries no marker fails, naming its file, line and fix.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from docs_blocks import (
    DOCS,
    REPO,
    Block,
    build_template,
    collect,
    make_sandbox,
    merged_config,
    parse_markdown,
    run,
    shell_commands,
)

BLOCKS, ORPHANS = collect()


def _param(block: Block):
    marks = [pytest.mark.slow] if block.slow and block.verb == "run" else []
    return pytest.param(block, id=block.location, marks=marks)


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    return build_template(tmp_path_factory.mktemp("docs") / "template")


def _sandbox(request, block: Block, tmp_path: Path) -> Path:
    return make_sandbox(request.getfixturevalue("template"), block, tmp_path)


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_documented_example(block: Block, request, tmp_path):
    if block.problem:
        pytest.fail(block.problem, pytrace=False)
    if block.verb == "illustrative":
        return  # the marker says why it is not run; nothing else to check
    if block.verb == "parse":
        _check_syntax(block, tmp_path)
    elif block.verb == "config":
        _check_config(block, _sandbox(request, block, tmp_path))
    elif block.lang == "python":
        _run_python(block, _sandbox(request, block, tmp_path), tmp_path)
    elif block.is_shell:
        _run_shell(block, _sandbox(request, block, tmp_path))
    else:  # a yaml block marked run
        _run_yaml(block, _sandbox(request, block, tmp_path))


def _timeout(block: Block) -> float:
    return 1200.0 if block.slow else 300.0


def _passed(outcome, block: Block) -> None:
    if outcome.returncode != 0:
        pytest.fail(outcome.failure(block), pytrace=False)


def _check_syntax(block: Block, tmp_path: Path) -> None:
    from mlstrat.errors import MlstratError

    where = block.location
    try:
        if block.lang == "json":
            json.loads(block.text)
        elif block.lang == "toml":
            tomllib = pytest.importorskip("tomllib")
            tomllib.loads(block.text)
        elif block.lang == "python":
            compile(block.code(), where, "exec")
        elif block.lang in ("yaml", "yml"):
            from mlstrat.config import load_yaml_text

            load_yaml_text(block.text, where)
        else:
            outcome = run(["bash", "-n", "-c", block.text], tmp_path, 60, "bash -n")
            _passed(outcome, block)
    except (ValueError, SyntaxError, MlstratError) as exc:  # JSON/TOML decode, ConfigError
        pytest.fail(f"{where}: ```{block.lang} block does not parse: {exc}", pytrace=False)


def _check_config(block: Block, sandbox: Path) -> None:
    from mlstrat.config import RunConfig, parse_config
    from mlstrat.errors import MlstratError

    base = (REPO / "configs" / "demo.yaml").read_text(encoding="utf-8")
    try:
        raw = merged_config(block, base)
        cfg = parse_config(raw, base=sandbox / "configs", source=block.location)
    except MlstratError as exc:
        pytest.fail(f"{block.location}: not a valid run configuration: {exc}", pytrace=False)
    assert isinstance(cfg, RunConfig)


def _run_python(block: Block, sandbox: Path, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(f"# {block.location}\n{block.code()}", encoding="utf-8")
    outcome = run([sys.executable, str(script)], sandbox, _timeout(block), "python")
    _passed(outcome, block)


def _run_shell(block: Block, sandbox: Path) -> None:
    commands = shell_commands(block.text)
    assert commands, f"{block.location}: a shell block marked run holds no command"
    for command in commands:
        outcome = run(["bash", "-o", "pipefail", "-c", command], sandbox, _timeout(block), command)
        _passed(outcome, block)


def _run_yaml(block: Block, sandbox: Path) -> None:
    import yaml

    from mlstrat.errors import MlstratError

    tiny = (sandbox / "configs" / "demo.yaml").read_text(encoding="utf-8")
    try:
        raw = merged_config(block, tiny)
    except MlstratError as exc:
        pytest.fail(f"{block.location}: not a valid run configuration: {exc}", pytrace=False)
    config = sandbox / "configs" / "example.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    command = "mlstrat run configs/example.yaml --out reports/example"
    outcome = run(["bash", "-c", command], sandbox, _timeout(block), command)
    _passed(outcome, block)


# --------------------------------------------------------------------------- the collector


def test_every_document_is_collected():
    names = {d.relative_to(REPO).as_posix() for d in DOCS}
    assert "README.md" in names and "docs/run.md" in names
    assert {b.doc for b in BLOCKS} <= set(DOCS)
    assert len(BLOCKS) >= 40


def test_every_marker_precedes_a_fence():
    assert not ORPHANS, "\n".join(ORPHANS)


def test_the_sandbox_is_a_copy_with_a_tiny_demo(template):
    """Blocks write inside their sandbox: nothing in it links back into the repository."""
    for path in template.rglob("*"):
        assert not path.is_symlink(), path
    from mlstrat.config import load_config

    tiny = load_config(template / "configs" / "demo.yaml")  # TINY_DEMO still fits the demo
    assert [p.name for p in tiny.predictors] == ["xgboost"]  # the name the docs trade
    assert (tiny.data.start, tiny.data.end) != (None, None)


def _one(text: str, tmp_path: Path) -> list[Block]:
    doc = tmp_path / "doc.md"
    doc.write_text(text, encoding="utf-8")
    return parse_markdown(doc)[0]


@pytest.mark.parametrize(
    ("text", "verb", "problem"),
    [
        ("```python\nx = 1\n```\n", "run", None),
        ("```yaml\nseed: 1\n```\n", "config", None),
        ("```json\n{}\n```\n", "parse", None),
        ("```toml\na = 1\n```\n", "parse", None),
        ("```bash\nls\n```\n", None, "```bash block has no example marker. Fix: put"),
        ("```\nls\n```\n", None, "untagged ``` block has no example marker"),
        ("<!-- example: run -->\n```\nls\n```\n", "run", None),
        ("<!-- example: illustrative -->\n```\nls\n```\n", "illustrative", "must say why"),
        ("<!-- example: illustrative (output) -->\n```\nok\n```\n", "illustrative", None),
        ("<!-- example: execute -->\n```\nls\n```\n", None, "unknown verb 'execute'"),
        ("<!-- example: run fast -->\n```\nls\n```\n", "run", "unknown option 'fast'"),
        ("<!-- example: run -->\n```json\n{}\n```\n", "run", "'run' does not apply"),
        ("<!-- example: config -->\n```python\nx\n```\n", "config", "'config' does not apply"),
    ],
)
def test_markers_and_defaults(text, verb, problem, tmp_path):
    (block,) = _one(text, tmp_path)
    assert block.verb == verb
    if problem is None:
        assert block.problem is None
    else:
        assert problem in block.problem and block.problem.startswith(f"{tmp_path}/doc.md:")


def test_marker_options_after_and_file(tmp_path):
    text = (
        "<!-- example: run id=a -->\n```python\nx = 1\n```\n\n"
        "<!-- example: run slow id=b after=a file=pkg/b.py (continues a) -->\n"
        "```python\ny = x + 1\n```\n\n"
        "<!-- example: run after=b -->\n```python\nprint(y)\n```\n\n"
        "<!-- example: run after=nope -->\n```python\npass\n```\n"
    )
    a, b, c, d = _one(text, tmp_path)
    assert (b.slow, b.name, b.after, b.file, b.reason) == (
        True,
        "b",
        ("a",),
        "pkg/b.py",
        "continues a",
    )
    assert c.code() == "x = 1\n\n\ny = x + 1\n\n\nprint(y)\n" and b.line == 7
    assert "after=nope: no block has id=nope" in d.problem
    assert not a.slow and a.problem is b.problem is c.problem is None


def test_a_marker_away_from_its_fence_is_reported(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- example: run -->\n\n```bash\nls\n```\n", encoding="utf-8")
    blocks, orphans = parse_markdown(doc)
    assert blocks[0].marker is None and "no example marker" in blocks[0].problem
    assert orphans == [
        f"{doc}:1: example marker not followed by a fence on the next line. "
        "Fix: put it on the line just before the opening fence"
    ]


def test_fences_nest_and_markers_inside_them_are_text(tmp_path):
    text = (
        "<!-- example: illustrative (shows the syntax) -->\n````markdown\n"
        "<!-- example: run -->\n```bash\nls\n```\n````\n"
    )
    (block,) = _one(text, tmp_path)
    assert block.lang == "markdown" and "```bash" in block.text and block.problem is None


def test_shell_lines_join_continuations_and_skip_comments():
    text = "# setup\nmlstrat run a.yaml \\\n    --out x   # run\n\nmlstrat report --run x\n"
    assert shell_commands(text) == [
        "mlstrat run a.yaml --out x   # run",
        "mlstrat report --run x",
    ]


def test_a_failing_shell_block_names_its_location(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- example: run -->\n```bash\ntrue\nfalse\n```\n", encoding="utf-8")
    (block,) = parse_markdown(doc)[0]
    with pytest.raises(pytest.fail.Exception, match=rf"{doc}:2: 'false' exited 1"):
        _run_shell(block, tmp_path)


def test_readme_quick_start_is_examples_quickstart():
    """README's quick start and examples/quickstart.py make the same pipeline (README's block
    itself runs above, the script in tests/test_examples.py)."""
    readme = next(b for b in BLOCKS if b.doc.name == "README.md" and b.lang == "python")
    script = (REPO / "examples" / "quickstart.py").read_text(encoding="utf-8")
    same = [
        'build_feature_feed(bars, "xgb", targets=["direction:1", "forward_return:1"])',
        '("allow_short", True), ("min_confidence", 0.55), ("max_hold_bars", 24)',
        'sizer_params={"tiers": [[0.55, 0.25], [0.60, 0.5], [0.65, 1.0]]}',
        "commission=0.001",
        "slippage=0.0005",
    ]
    for call in same:
        assert call in readme.text and call in script, call
    assert 'WalkForward(train="4mo", test="2mo")' in readme.text
    assert 'train="4mo", test="2mo"' in script  # the script's defaults
    assert readme.verb == "run"
