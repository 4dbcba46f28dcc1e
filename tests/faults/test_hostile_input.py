"""Hostile configuration and data paths: refused at once, in one line, without reading or running.

Each test injects one fault (an alias bomb, a 50 MB file, bytes that are not UTF-8, a
directory / FIFO / device where a candle file belongs, a key file passed as candles, a
strategy file with a side effect) and checks time, memory and the message, in-process and
through the `mlstrat` command (a subprocess with a timeout, so a hang fails the test).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from mlstrat.cli.common import parse_assignments
from mlstrat.config import (
    MAX_CONFIG_BYTES,
    MAX_YAML_EXPANDED,
    apply_overrides,
    load_config,
    parse_config,
)
from mlstrat.data import detect_format, file_sha256, load_bars
from mlstrat.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "datasets" / "BTCUSDT-1h.parquet"
MLSTRAT = [sys.executable, "-m", "mlstrat.cli"]
SECRET = "hunter2"
#: Seconds a refusal may take. It takes milliseconds, but a loaded machine, or the first
#: lazy import of a module under tracemalloc, can take a second or more; expanding an alias
#: bomb or reading a 50 MB file or a device takes far longer (or never ends).
QUICK = 10.0
#: Seconds after which a test on a special file fails as hung (opening a FIFO blocks for
#: ever); above the `mlstrat` subprocess's own timeout in `cli`.
HANG = 180


def tiny_raw(**sections: object) -> dict:
    """A valid configuration that validates in well under a second (no Keras model)."""
    raw = {
        "name": "hostile",
        "data": {"files": [{"path": str(SAMPLE)}]},
        "features": {"set": "core", "targets": ["direction:1"]},
        "predictors": [{"predictor": "xgboost", "params": {"n_estimators": 5}}],
    }
    raw.update(sections)
    return raw


def write_yaml(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def measured(call) -> tuple[BaseException | None, float, float]:
    """(exception raised or None, seconds, peak traced MiB) of `call()`."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        call()
        error = None
    except Exception as exc:  # the caller asserts on the type
        error = exc
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return error, seconds, peak


def cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """Run `mlstrat ARGS`; a hang beyond `timeout` fails the test instead of blocking it."""
    try:
        return subprocess.run(
            [*MLSTRAT, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"mlstrat {' '.join(args)} still running after {timeout} s")


def one_line_exit_2(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


# ---------------------------------------------------------------------------- YAML limits


def billion_laughs(levels: int = 9, indent: str = "      ") -> tuple[str, int]:
    """YAML list items: `levels` anchors, each ten aliases of the one before; and its leaf count."""
    lines = [f"{indent}- &a0 [{', '.join(['lol'] * 10)}]"]
    lines += [f"{indent}- &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines), 10**levels


def test_alias_bomb_in_an_accepted_value_is_refused_fast_and_small(tmp_path):
    bomb, leaves = billion_laughs()
    assert leaves > 100 * MAX_YAML_EXPANDED  # expanded, it would not fit in memory
    path = tmp_path / "bomb.yaml"
    text = yaml.safe_dump(tiny_raw(), sort_keys=False) + "sizing:\n  params:\n    tiers:\n"
    bomb_rows = range(text.count("\n") + 1, text.count("\n") + 10)  # the bomb's nine lines
    path.write_text(text + bomb + "\n", encoding="utf-8")

    error, seconds, peak_mib = measured(lambda: load_config(path))

    assert isinstance(error, ConfigError), error
    assert seconds < QUICK and peak_mib < 100, (seconds, peak_mib)
    assert "aliases are expanded" in error.problem and error.row in bomb_rows
    assert str(path) in str(error) and "\n" not in str(error)
    proc = cli("run", str(path), "--out", str(tmp_path / "out"))
    assert "aliases are expanded" in one_line_exit_2(proc)
    assert not (tmp_path / "out").exists()


def test_alias_bomb_through_set_and_python_overrides_is_refused(tmp_path):
    bomb, _ = billion_laughs()
    flow = "[" + ", ".join(line.strip()[2:] for line in bomb.splitlines()) + "]"
    error, seconds, peak_mib = measured(
        lambda: parse_assignments([f"sizing.params.tiers={flow}"], "--set")
    )
    assert isinstance(error, ConfigError), error
    assert seconds < QUICK and peak_mib < 100, (seconds, peak_mib)
    assert error.problem.startswith("--set sizing.params.tiers: YAML too large")
    # the same bomb built in Python: one list shared 2**40 times
    shared: list = ["x"]
    for _ in range(40):
        shared = [shared, shared]
    error, seconds, _ = measured(lambda: apply_overrides(tiny_raw(), {"strategy.params": shared}))
    assert isinstance(error, ConfigError) and "too large" in error.problem, error
    assert seconds < QUICK
    path = write_yaml(tmp_path / "ok.yaml", tiny_raw())
    proc = cli("run", str(path), "--out", str(tmp_path / "out"), "--set", f"report.title={flow}")
    assert "--set report.title: YAML too large" in one_line_exit_2(proc)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("sizing:\n  params: &a {tiers: [*a]}\n", "contains itself"),
        ("report:\n  title: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than"),
        ("seed: 2025-13-45\n", "cannot read this timestamp value (month must be in 1..12)"),
        ("seed: " + "9" * 5000 + "\n", "cannot read this int value"),
    ],
    ids=["recursive-alias", "deep-nesting", "impossible-date", "5000-digit-int"],
)
def test_yaml_that_breaks_the_parser_is_a_located_config_error(tmp_path, text, says):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    error, seconds, _ = measured(lambda: load_config(path))
    assert isinstance(error, ConfigError), repr(error)
    assert says in error.problem and error.row in (1, 2), str(error)
    assert seconds < QUICK and "\n" not in str(error)


def test_a_50_mb_config_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("seed: 1\nlist:\n")
        handle.write("- 1\n" * (50 * 2**20 // 4))
    assert path.stat().st_size > 50 * MAX_CONFIG_BYTES
    error, seconds, peak_mib = measured(lambda: load_config(path))
    assert isinstance(error, ConfigError), error
    assert "larger than 1024 KiB" in error.problem and error.file == str(path)
    assert seconds < QUICK and peak_mib < 5, (seconds, peak_mib)  # not even read
    # a --set value gets the same limit
    error = measured(lambda: parse_assignments(["name=" + "x" * (MAX_CONFIG_BYTES + 1)], "--set"))[
        0
    ]
    assert isinstance(error, ConfigError) and "longer than 1024 KiB" in error.problem


def test_bytes_that_are_not_utf8_name_the_file_and_offset(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: café\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problem == "not UTF-8 text (byte offset 9)"
    assert info.value.file == str(path)
    proc = cli("run", str(path))
    assert f"{path}: not UTF-8 text (byte offset 9)" in one_line_exit_2(proc)


@pytest.mark.parametrize("seed", range(3))
def test_binary_garbage_is_a_config_error(tmp_path, seed):
    data = random.Random(seed).randbytes(4096)
    path = tmp_path / "garbage.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path) and "\n" not in str(info.value)
    # text of control characters decodes as UTF-8 but is no YAML either
    path.write_bytes(bytes(random.Random(seed).choices(range(1, 9), k=64)))
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(path)
    assert info.value.row == 1


# ---------------------------------------------------------------------------- special files


def make_special(kind: str, tmp_path: Path) -> Path:
    """A path that is not a regular file: reading it would block, fail or never end."""
    if kind == "directory":
        path = tmp_path / "BTCUSDT-1h.csv"
        path.mkdir()
    elif kind == "fifo":
        path = tmp_path / "BTCUSDT-1h.csv"
        os.mkfifo(path)
    elif kind == "symlink-to-fifo":
        os.mkfifo(tmp_path / "pipe")
        path = tmp_path / "BTCUSDT-1h.parquet"
        path.symlink_to(tmp_path / "pipe")
    elif kind == "socket":
        path = tmp_path / "s.csv"
        server = socket.socket(socket.AF_UNIX)
        try:
            server.bind(str(path))
        except OSError as exc:  # path too long for AF_UNIX on this machine
            pytest.skip(f"cannot create a socket file: {exc}")
        server.close()
    else:
        path = Path("/dev/zero")
    return path


KINDS = {
    "directory": "a directory",
    "fifo": "a named pipe (FIFO)",
    "symlink-to-fifo": "a named pipe (FIFO)",
    "socket": "a socket",
    "dev-zero": "a character device",
}


@pytest.mark.timeout(HANG)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_special_file_as_candles_is_refused_without_reading(tmp_path, kind):
    path = make_special(kind, tmp_path)
    for call in (
        lambda: load_bars(path),
        lambda: load_bars(path, fmt="csv"),
        lambda: detect_format(path),
        lambda: file_sha256(path),
    ):
        error, seconds, _ = measured(call)
        assert isinstance(error, DataError), repr(error)
        assert error.problem == f"is {KINDS[kind]}, not a regular file", str(error)
        assert error.file == str(path) and seconds < QUICK and "\n" not in str(error)
    proc = cli("data", "inspect", str(path))
    assert f"{path}: is {KINDS[kind]}, not a regular file" in one_line_exit_2(proc)


@pytest.mark.timeout(HANG)
@pytest.mark.parametrize("key", ["path", "minute_path"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_special_file_in_the_config_is_refused_with_its_key(tmp_path, kind, key):
    path = make_special(kind, tmp_path)
    item = {"path": str(SAMPLE), "symbol": "BTCUSDT", key: str(path)}
    raw = tiny_raw(data={"files": [item]})
    error, seconds, _ = measured(lambda: parse_config(raw, base=tmp_path))
    assert isinstance(error, ConfigError), repr(error)
    assert error.problem == (
        f"data.files[0].{key}: is {KINDS[kind]}, not a regular file ({path.resolve()})"
    )
    assert seconds < QUICK
    if key == "minute_path":
        return  # the command line is exercised once per kind
    config = write_yaml(tmp_path / "c.yaml", raw)
    proc = cli("run", str(config), "--out", str(tmp_path / "out"))
    assert f"data.files[0].{key}: is {KINDS[kind]}" in one_line_exit_2(proc)
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(HANG)
@pytest.mark.parametrize("kind", ["directory", "fifo", "dev-zero"])
def test_special_file_as_the_config_is_refused(tmp_path, kind):
    path = make_special(kind, tmp_path)
    error, seconds, _ = measured(lambda: load_config(path))
    assert isinstance(error, ConfigError), repr(error)
    assert error.problem == f"is {KINDS[kind]}, not a regular file" and seconds < QUICK
    proc = cli("run", str(path), "--out", str(tmp_path / "out"))
    assert f"{path}: is {KINDS[kind]}, not a regular file" in one_line_exit_2(proc)


# ---------------------------------------------------------------------------- no echo


NOT_CANDLES = {
    "env.txt": f"SECRET={SECRET}\n",
    "keys.csv": f"user,password\nadmin,{SECRET}\n",
    "dated.csv": f"date,note\n{SECRET},x\n",
    "spaced.txt": f"SECRET {SECRET}\nOTHER value\n",
    "object.json": f'{{"secret": "{SECRET}"}}',
    "broken.json": f'[["{SECRET}"',
    "quoted.csv": f'"{SECRET}\n',
    "first-line.txt": f"{SECRET}\n1,2\n",
}


@pytest.mark.parametrize("fmt", ["auto", "csv", "binance", "cdd", "yahoo", "json"])
@pytest.mark.parametrize("name", sorted(NOT_CANDLES))
def test_a_file_that_is_not_candles_is_never_echoed(tmp_path, name, fmt):
    path = tmp_path / name
    path.write_text(NOT_CANDLES[name], encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_bars(path, fmt=fmt)
    message = str(info.value)
    assert SECRET not in message and "SECRET" not in message, message
    assert path.name in message and "\n" not in message


def test_no_echo_through_the_cli_but_known_headers_are_named(tmp_path):
    path = tmp_path / "env.txt"
    path.write_text(NOT_CANDLES["env.txt"], encoding="utf-8")
    err = one_line_exit_2(cli("data", "inspect", str(path)))
    assert SECRET not in err and "no timestamp column" in err and "found 1 column)" in err
    # column names we know are still spelled out, the others only counted
    path = tmp_path / "notime.csv"
    path.write_text(f"open,high,low,close,volume,{SECRET}\n1,2,1,1,5,0\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_bars(path)
    assert "found 6 columns: open, high, low, close, volume and 1 other(s)" in info.value.fix
    assert SECRET not in str(info.value)
    # a bad timestamp that looks like one is still quoted
    path = tmp_path / "bad-date.csv"
    path.write_text("timestamp,open,high,low,close,volume\n2024-13-45,1,2,1,1,5\n", "utf-8")
    with pytest.raises(DataError, match="cannot parse timestamp '2024-13-45'"):
        load_bars(path)


# ---------------------------------------------------------------------------- code in a config

SIDE_EFFECT = """
import pathlib
with open({marker!r}, "a", encoding="utf-8") as _handle:
    _handle.write("imported\\n")
{body}
"""
STRATEGY_BODY = """
from mlstrat.strategy import MLStrategy

class Marked(MLStrategy):
    params = (("level", 1),)
"""
SIZER_BODY = """
import backtrader as bt

class MarkedSizer(bt.Sizer):
    params = (("fraction", 0.5),)
"""


def side_effect_files(tmp_path: Path) -> tuple[Path, Path]:
    """strat.py and sizer.py, each appending one line to its marker file when imported."""
    for name, body in (("strat", STRATEGY_BODY), ("sizer", SIZER_BODY)):
        marker = tmp_path / f"{name}.imported"
        code = SIDE_EFFECT.format(marker=str(marker), body=body)
        (tmp_path / f"{name}.py").write_text(code, encoding="utf-8")
    return tmp_path / "strat.imported", tmp_path / "sizer.imported"


def imports(marker: Path) -> int:
    return marker.read_text(encoding="utf-8").count("imported") if marker.exists() else 0


USER_CODE = {
    "strategy": {"class": "strat.py:Marked", "params": {"level": 2}},
    "sizing": {"class": "sizer.py:MarkedSizer", "params": {"fraction": 0.25}},
}


@pytest.mark.parametrize(
    ("section", "value", "key"),
    [
        ("broker", {"cash": "lots"}, "broker.cash"),
        ("report", {"dpi": 5}, "report.dpi"),
        ("broker", {"comission": 0.1}, "broker.comission"),
        ("sizing", {"class": "sizer.py", "params": {}}, "sizing.class"),
        ("sizing", {"class": "nowhere.py:S"}, "sizing.class"),
        ("sizing", {"class": "sizer.py:MarkedSizer", "volatility": "v"}, "sizing.volatility"),
        ("strategy", {"class": "strat.py:Marked", "columns": "some"}, "strategy.columns"),
        ("strategy", {"class": "strat.py:Marked", "params": [1]}, "strategy.params"),
        ("walkforward", {"train": "30X"}, "walkforward.train"),
        ("seeds", 1, "seeds"),
    ],
)
def test_user_code_is_not_run_when_another_key_is_invalid(tmp_path, section, value, key):
    strategy_marker, sizer_marker = side_effect_files(tmp_path)
    raw = tiny_raw(**USER_CODE)
    raw[section] = value
    with pytest.raises(ConfigError) as info:
        parse_config(raw, base=tmp_path)
    assert info.value.problem.startswith(f"{key}: "), info.value.problem
    assert imports(strategy_marker) == 0 and imports(sizer_marker) == 0


def test_user_code_runs_once_on_a_valid_config(tmp_path):
    strategy_marker, sizer_marker = side_effect_files(tmp_path)
    config = parse_config(tiny_raw(**USER_CODE), base=tmp_path)
    assert config.strategy.params == {"level": 2} and config.sizing.params == {"fraction": 0.25}
    assert imports(strategy_marker) == 1 and imports(sizer_marker) == 1
    # without sizing.class the strategy's default sizer is looked up on the same import
    strategy_marker.unlink()
    parse_config(tiny_raw(strategy=USER_CODE["strategy"]), base=tmp_path)
    assert imports(strategy_marker) == 1


def test_user_code_checks_params_after_import(tmp_path):
    strategy_marker, _ = side_effect_files(tmp_path)
    raw = tiny_raw(strategy={"class": "strat.py:Marked", "params": {"levle": 2}})
    with pytest.raises(ConfigError, match=r"strategy\.params\.levle: unknown key"):
        parse_config(raw, base=tmp_path)
    assert imports(strategy_marker) == 1


@pytest.mark.parametrize(
    ("section", "spec", "raised"),
    [
        ("strategy", "boom.py:Marked", "ZeroDivisionError: division by zero"),
        ("sizing", "boom.py:MarkedSizer", "ZeroDivisionError: division by zero"),
        ("strategy", "syntax.py:Marked", "SyntaxError: "),
    ],
)
def test_user_code_that_fails_on_import_is_one_line(tmp_path, section, spec, raised):
    (tmp_path / "boom.py").write_text("1 / 0\n", encoding="utf-8")
    (tmp_path / "syntax.py").write_text("def (:\n", encoding="utf-8")
    path = write_yaml(tmp_path / "c.yaml", tiny_raw(**{section: {"class": spec}}))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problem.startswith(f"{section}.class: importing '{spec}' raised {raised}")
    if raised.startswith("SyntaxError"):  # the command line once: it imports the whole stack
        err = one_line_exit_2(cli("run", str(path), "--out", str(tmp_path / "out")))
        assert f"{section}.class: importing" in err
