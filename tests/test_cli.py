"""The `mlstrat` command's structure: one module per subcommand, registered from one table."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlstrat
from mlstrat.cli import COMMANDS, build_parser

REPO = Path(__file__).resolve().parents[1]
CLI_DIR = REPO / "mlstrat" / "cli"
NOT_COMMANDS = {"__init__", "__main__", "common"}  # the entry point and shared helpers
HEAVY = ("backtrader", "tensorflow", "keras", "xgboost", "matplotlib", "sklearn", "dask")


def _choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def _leaves(
    parser: argparse.ArgumentParser, path: str
) -> list[tuple[str, argparse.ArgumentParser]]:
    children = _choices(parser)
    if not children:
        return [(path, parser)]
    return [leaf for name, p in children.items() for leaf in _leaves(p, f"{path} {name}")]


def test_the_table_lists_every_command_module_and_nothing_else():
    modules = sorted(p.stem for p in CLI_DIR.glob("*.py") if p.stem not in NOT_COMMANDS)
    assert sorted(COMMANDS) == modules
    assert len(set(COMMANDS)) == len(COMMANDS)
    assert list(_choices(build_parser())) == list(COMMANDS)  # help lists them in table order


def test_each_module_registers_only_its_own_command_and_every_leaf_has_a_handler():
    for name in COMMANDS:
        sub = argparse.ArgumentParser().add_subparsers(dest="command")
        importlib.import_module(f"mlstrat.cli.{name}").add_parser(sub)
        assert list(sub.choices) == [name], name
        for path, leaf in _leaves(sub.choices[name], name):
            assert callable(leaf.get_default("func")), f"`mlstrat {path}` has no handler"


def test_models_holds_inspect_and_upgrade():
    assert list(_choices(_choices(build_parser())["models"])) == ["inspect", "upgrade"]


def test_python_m_mlstrat_cli_runs_this_checkout_and_builds_without_heavy_libraries():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "mlstrat.cli", "--version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"mlstrat {mlstrat.__version__}"
    code = (
        "import sys; from mlstrat.cli import build_parser; build_parser(); "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def _alias_bomb(levels: int = 9) -> str:
    """A YAML flow list of `levels` anchors, each ten aliases of the one before (10**9 leaves)."""
    items = ["&a0 [" + ", ".join(["lol"] * 10) + "]"]
    items += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


def test_param_values_are_read_within_the_config_limits():
    """`--param` (train, walkforward) reads values like `--set` and config files: bounded."""
    from mlstrat.cli.common import parse_assignments, parse_param
    from mlstrat.errors import ConfigError

    bomb = _alias_bomb()
    for call, where in (
        (lambda: parse_param(f"members={bomb}"), "--param members"),
        (lambda: parse_assignments([f"tiers={bomb}"], "--sizer-param"), "--sizer-param tiers"),
    ):
        with pytest.raises(ConfigError) as info:
            call()
        assert info.value.problem.startswith(f"{where}: YAML too large"), info.value.problem
    with pytest.raises(ConfigError, match=r"--param depth: not valid YAML"):
        parse_param("depth=[1, 2")
    assert parse_param("max_depth=4") == ("max_depth", 4)
    assert parse_param("tiers=[[0.6, 0.25]]") == ("tiers", [[0.6, 0.25]])
    assert parse_param("name=") == ("name", "")
    with pytest.raises(ConfigError, match="is not key=value"):
        parse_param("sizing.tiers=1")  # --param names a constructor argument, never a path
