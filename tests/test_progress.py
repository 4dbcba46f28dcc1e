"""Progress output: tqdm on a terminal, plain lines (no carriage returns, no escapes) elsewhere."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlstrat import progress
from mlstrat.progress import PlainProgress, progress_bar

REPO = Path(__file__).resolve().parents[1]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def no_timed_lines(monkeypatch):
    """Only the counts write lines: a stalled machine (30 s between two steps) adds none."""
    monkeypatch.setattr(progress, "PLAIN_INTERVAL", float("inf"))


def test_plain_lines_at_each_tenth_and_at_the_end(no_timed_lines):
    out = io.StringIO()
    with progress_bar(total=1000, desc="walk-forward folds", unit="fold", stream=out) as bar:
        assert isinstance(bar, PlainProgress)
        for _ in range(995):
            bar.update(1)
        bar.set_postfix_str("xgb BTCUSDT")
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert len(lines) == 10  # 10 %, 20 %, ... 90 %, then the final count on close
    assert lines[0].startswith("walk-forward folds: 100/1000 fold (10%) ")
    assert lines[-1].startswith("walk-forward folds: 995/1000 fold (100%) ")
    assert lines[-1].endswith(" s, xgb BTCUSDT")


def test_short_loops_write_one_line_per_step_and_no_duplicate_at_close(no_timed_lines):
    out = io.StringIO()
    items = list(progress_bar(["a", "b", "c"], desc="features", unit="symbol", stream=out))
    assert items == ["a", "b", "c"]
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "features: 1/3 symbol",
        "features: 2/3 symbol",
        "features: 3/3 symbol",
    ]


def test_disabled_writes_nothing_and_terminals_get_tqdm():
    quiet = io.StringIO()
    with progress_bar(total=3, desc="x", enabled=False, stream=quiet) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""
    tty = FakeTerminal()
    bar = progress_bar(total=3, desc="x", unit="step", stream=tty)
    from tqdm import tqdm

    assert isinstance(bar, tqdm)
    bar.update(3)
    bar.close()
    assert "\r" in tty.getvalue()  # tqdm redraws in place on a terminal


def test_cli_progress_in_a_log_file_has_no_escape_codes(tmp_path):
    sample = pd.read_parquet(REPO / "datasets" / "BTCUSDT-1h.parquet").iloc[:300]
    paths = []
    for symbol in ("AAA", "BBB"):
        path = tmp_path / f"{symbol}-1h.parquet"
        sample.to_parquet(path)
        paths.append(str(path))
    log = tmp_path / "stderr.log"
    with open(log, "w") as err:
        done = subprocess.run(
            [sys.executable, "-m", "mlstrat.cli", "features", "--data", *paths, "--set", "core",
             "--out", str(tmp_path / "feeds")],
            stderr=err,
            stdout=subprocess.PIPE,
            cwd=tmp_path,
            check=False,
        )  # fmt: skip
    text = log.read_text()
    assert done.returncode == 0, text
    assert "\r" not in text and "\x1b" not in text
    assert "features: 2/2 symbol (100%)" in text
