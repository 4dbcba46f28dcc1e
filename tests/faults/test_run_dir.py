"""Faults around `mlstrat run`: files it does not own, symlinks, inputs inside --out, damaged
caches, concurrent runs, stale locks, a full or read-only disk, killed parents.

Each test injects the fault and checks that nothing the user owns changed, that the error is
one line (exit 2 through the CLI) and that a rerun without the fault ends with the trades of an
undisturbed run.
"""

from __future__ import annotations

import errno
import filecmp
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_run import SAMPLE, tiny_raw, write_config

from mlstrat.cli import main
from mlstrat.errors import ConfigError, LockError, OwnershipError
from mlstrat.run import run_experiment

REPO = Path(__file__).resolve().parents[2]
RESULT_FILES = ("trades.csv", "equity.csv")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One undisturbed tiny run: its config, data and run directory (never modified)."""
    root = tmp_path_factory.mktemp("reference")
    data = root / "data" / "BTCUSDT-1h.parquet"
    data.parent.mkdir()
    shutil.copyfile(SAMPLE, data)
    cfg = write_config(root / "tiny.yaml", tiny_raw(data))
    result = run_experiment(cfg, root / "out", progress=False)
    assert len(result.trades()) > 0
    return cfg, root / "out"


def copy_run(reference, tmp_path) -> Path:
    """A private copy of the reference run directory (with its cache), no hard links shared."""
    out = tmp_path / "out"
    shutil.copytree(reference[1], out, copy_function=shutil.copyfile)
    return out


def trades(out: Path) -> bytes:
    return (out / "backtests" / "xgb" / "result" / "trades.csv").read_bytes()


def cli(*args: str, capsys) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err.strip()
    return code, err


def tree(path: Path) -> dict[str, bytes]:
    return {
        p.relative_to(path).as_posix(): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# ---------------------------------------------------------------------------- ownership


def test_existing_foreign_directory_is_refused_and_untouched(reference, tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "report").mkdir(parents=True)
    (out / "models" / "mine").mkdir(parents=True)
    (out / "report" / "summary.md").write_text("my notes")
    (out / "models" / "mine" / "weights.bin").write_bytes(b"\x00\x01weights")
    (out / "config.yaml").write_text("my: config\n")
    before = tree(out)
    with pytest.raises(OwnershipError, match="not an mlstrat run directory"):
        run_experiment(reference[0], out, progress=False)
    code, err = cli("run", str(reference[0]), "--out", str(out), "--quiet", capsys=capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "manifest.json" in err
    assert tree(out) == before


@pytest.mark.slow
def test_user_files_added_to_a_run_directory_survive_reruns(reference, tmp_path):
    out = copy_run(reference, tmp_path)
    (out / "report" / "summary.md").write_text("my notes")
    (out / "models" / "mine").mkdir()
    (out / "models" / "mine" / "weights.bin").write_bytes(b"weights")
    (out / "my-config.yaml").write_text("mine\n")
    # a config with another predictor name: the old one's files are pruned, the user's stay
    raw = tiny_raw(Path(json.loads((out / "run.json").read_text())["data"]["BTCUSDT"]["path"]))
    raw["predictors"][0]["name"] = "xgb2"
    cfg = write_config(tmp_path / "renamed.yaml", raw)
    run_experiment(cfg, out, progress=False)
    assert (out / "report" / "summary.md").read_text() == "my notes"
    assert (out / "models" / "mine" / "weights.bin").read_bytes() == b"weights"
    assert (out / "my-config.yaml").read_text() == "mine\n"
    assert not (out / "models" / "xgb").exists() and (out / "models" / "xgb2").is_dir()
    assert not (out / "report" / "xgb").exists()


@pytest.mark.slow
def test_user_file_inside_an_owned_folder_blocks_its_replacement(reference, tmp_path):
    out = copy_run(reference, tmp_path)
    mine = out / "report" / "xgb" / "notes.md"
    mine.write_text("keep me")
    raw = tiny_raw(Path(json.loads((out / "run.json").read_text())["data"]["BTCUSDT"]["path"]))
    raw["report"] = {"title": "retitled"}  # the page must be rebuilt
    cfg = write_config(tmp_path / "retitled.yaml", raw)
    with pytest.raises(OwnershipError, match="not written by mlstrat"):
        run_experiment(cfg, out, progress=False)
    assert mine.read_text() == "keep me"
    assert (out / "report" / "xgb" / "report.html").is_file()


def test_symlinked_subfolder_is_not_followed(reference, tmp_path, capsys):
    out = copy_run(reference, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("do not delete")
    (outside / "xgb").mkdir()
    (outside / "xgb" / "report.html").write_text("not mlstrat's")
    shutil.rmtree(out / "report")
    (out / "report").symlink_to(outside, target_is_directory=True)
    before = tree(outside)
    with pytest.raises(OwnershipError, match="symlink"):
        run_experiment(reference[0], out, progress=False)
    code, err = cli("run", str(reference[0]), "--out", str(out), "--quiet", capsys=capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "symlink" in err
    assert tree(outside) == before


def test_symlinked_model_folder_is_not_followed(reference, tmp_path):
    out = copy_run(reference, tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "weights.bin").write_bytes(b"w")
    shutil.rmtree(out / "models" / "xgb" / "BTCUSDT")
    (out / "models" / "xgb" / "BTCUSDT").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OwnershipError, match="symlink"):
        run_experiment(reference[0], out, progress=False)
    assert tree(outside) == {"weights.bin": b"w"}


def test_dataset_inside_the_output_directory_is_refused(reference, tmp_path, capsys):
    out = tmp_path / "out"
    data = out / "features" / "BTCUSDT.parquet"
    data.parent.mkdir(parents=True)
    shutil.copyfile(SAMPLE, data)
    cfg = write_config(tmp_path / "inside.yaml", tiny_raw(data))
    with pytest.raises(ConfigError, match="inside the run directory"):
        run_experiment(cfg, out, progress=False)
    code, err = cli("run", str(cfg), "--out", str(out), "--quiet", capsys=capsys)
    assert code == 2 and "data.files[0].path" in err
    assert data.read_bytes() == SAMPLE.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["features"]


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "..", ""])
def test_run_name_cannot_escape_reports(reference, tmp_path, name, monkeypatch):
    raw = tiny_raw(SAMPLE)
    raw["name"] = name
    cfg = write_config(tmp_path / "escape.yaml", raw)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="name"):
        run_experiment(cfg, progress=False)
    assert not (tmp_path / "reports").exists() and not (tmp_path.parent / "x").exists()


# ---------------------------------------------------------------------------- cache damage


def _entry_file(out: Path, stage: str, name: str) -> Path:
    (found,) = [p for p in (out / "cache" / stage).glob(f"*/{name}") if p.is_file()]
    return found


@pytest.mark.parametrize(
    "stage, name",
    [
        ("features", "feed.parquet"),
        ("walkforward", "folds/001/model.ubj"),
        ("walkforward", "predictions.parquet"),
        ("walkforward", "folds.json"),
        ("backtest", "result/trades.csv"),
        ("backtest", "result/equity.csv"),
    ],
)
def test_truncated_cache_file_is_detected_and_rebuilt(reference, tmp_path, stage, name, caplog):
    out = copy_run(reference, tmp_path)
    damaged = _entry_file(out, stage, name)
    size = damaged.stat().st_size
    with open(damaged, "r+b") as handle:
        handle.truncate(size // 2)
    with caplog.at_level(logging.WARNING, logger="mlstrat"):
        result = run_experiment(reference[0], out, progress=False)
    assert any("damaged" in r.getMessage() and stage in r.getMessage() for r in caplog.records)
    assert damaged.stat().st_size == size
    assert trades(out) == trades(reference[1])
    assert len(result.trades()) > 0
    assert result.status(stage) != {}
    assert "cached" not in result.status(stage).values()


def test_flipped_byte_of_same_size_is_detected(reference, tmp_path, caplog):
    out = copy_run(reference, tmp_path)
    damaged = _entry_file(out, "backtest", "result/trades.csv")
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="mlstrat"):
        run_experiment(reference[0], out, progress=False)
    assert any("sha256" in r.getMessage() for r in caplog.records)
    assert trades(out) == trades(reference[1])


def test_verify_cache_reports_damage_and_changes_nothing(reference, tmp_path, capsys):
    out = copy_run(reference, tmp_path)
    code, _ = cli("run", "--verify-cache", "--out", str(out), capsys=capsys)
    assert code == 0
    damaged = _entry_file(out, "walkforward", "folds/000/model.ubj")
    with open(damaged, "r+b") as handle:
        handle.truncate(10)
    (out / "report" / "xgb" / "report.html").write_text("edited")
    before = tree(out)
    code = main(["run", "--verify-cache", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2 and len(captured.err.strip().splitlines()) == 1
    assert "folds/000/model.ubj" in captured.out and "report/xgb/report.html" in captured.out
    assert tree(out) == before


def test_leftover_temp_files_of_a_killed_run_are_removed(reference, tmp_path):
    out = copy_run(reference, tmp_path)
    key = _entry_file(out, "features", "feed.parquet").parent.name
    stale_entry = out / "cache" / "features" / f".{key}.mlstrat-tmp-deadbeef"
    stale_entry.mkdir()
    (stale_entry / "feed.parquet").write_bytes(b"half")
    stale_file = out / "report" / "xgb" / ".report.html.mlstrat-tmp-0badf00d"
    stale_file.write_text("half")
    run_experiment(reference[0], out, progress=False)
    assert not stale_entry.exists() and not stale_file.exists()


# ---------------------------------------------------------------------------- locks


HOLD_LOCK = textwrap.dedent(
    """
    import fcntl, json, os, socket, sys
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": "now"}).encode())
    print("locked", flush=True)
    sys.stdin.read()  # hold the lock until killed (or until the test's end closes stdin)
    """
)


def test_concurrent_run_on_one_directory_is_refused(reference, tmp_path, capsys):
    out = copy_run(reference, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out / ".lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = tree(out)
        with pytest.raises(LockError, match=f"pid {holder.pid}"):
            run_experiment(reference[0], out, progress=False)
        code, err = cli("run", str(reference[0]), "--out", str(out), "--quiet", capsys=capsys)
        assert code == 2 and len(err.splitlines()) == 1 and "in use by pid" in err
        assert tree(out) == before
    finally:
        holder.kill()
        holder.wait()
    # the holder died: its lock is taken over
    run_experiment(reference[0], out, progress=False)


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_notice(reference, tmp_path, caplog):
    out = copy_run(reference, tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".lock").write_text(json.dumps({"pid": dead.pid, "host": "h", "since": "then"}))
    with caplog.at_level(logging.WARNING, logger="mlstrat"):
        run_experiment(reference[0], out, progress=False)
    assert any(f"pid {dead.pid}" in r.getMessage() for r in caplog.records)
    assert (out / ".lock").read_text() == ""  # released


# ---------------------------------------------------------------------------- environment


def _fail_with(monkeypatch, target: str, err: int) -> None:
    module, _, attr = target.rpartition(".")
    mod = __import__(module, fromlist=[attr])
    original = getattr(mod, attr)

    def failing(*args, **kwargs):
        raise OSError(err, os.strerror(err), str(args[1] if len(args) > 1 else "somefile"))

    failing.original = original  # type: ignore[attr-defined]
    monkeypatch.setattr(mod, attr, failing)


#: One write of each stage, patched to fail as a full disk would.
STAGE_WRITES = [
    "mlstrat.run._write_feed",
    "mlstrat.walkforward.runner._write_fold_dir",
    "mlstrat.report.result.BacktestResult.save",
    "mlstrat.run._Pipeline._build_page",
    "mlstrat.rundir.atomic_write_bytes",
]


@pytest.mark.slow
@pytest.mark.parametrize("target", STAGE_WRITES)
def test_disk_full_at_each_stage_is_one_line_and_a_rerun_completes(
    reference, tmp_path, target, monkeypatch, capsys
):
    raw = tiny_raw(
        Path(json.loads((reference[1] / "run.json").read_text())["data"]["BTCUSDT"]["path"])
    )
    raw["n_jobs"] = 1
    if target != "mlstrat.run._Pipeline._build_page":
        raw["report"] = {"enabled": False}  # faster; the report stage has its own case
    cfg = write_config(tmp_path / "full.yaml", raw)
    out = tmp_path / "out"
    if target == "mlstrat.report.result.BacktestResult.save":
        from mlstrat.report import result as result_module

        def failing(self, path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

        monkeypatch.setattr(result_module.BacktestResult, "save", failing)
    elif target == "mlstrat.run._Pipeline._build_page":
        from mlstrat import run as run_module

        def failing_page(self, page, members, where):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))

        monkeypatch.setattr(run_module._Pipeline, "_build_page", failing_page)
    elif target == "mlstrat.rundir.atomic_write_bytes":
        from mlstrat import rundir

        calls = {"n": 0}
        original = rundir.atomic_write_bytes

        def fail_late(path, data):
            calls["n"] += 1
            if calls["n"] > 3:  # after config.yaml and run.json went through
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            return original(path, data)

        monkeypatch.setattr(rundir, "atomic_write_bytes", fail_late)
    else:
        _fail_with(monkeypatch, target, errno.ENOSPC)
    code, err = cli("run", str(cfg), "--out", str(out), "--quiet", capsys=capsys)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "disk is full" in err and "Traceback" not in err
    if (out / "run.json").is_file():
        assert json.loads((out / "run.json").read_text())["status"] in ("failed", "running")
    monkeypatch.undo()
    run_experiment(cfg, out, progress=False)
    assert trades(out) == trades(reference[1])


@pytest.mark.parametrize("err", [errno.EROFS, errno.EACCES])
def test_read_only_or_forbidden_output_is_one_line(reference, tmp_path, err, monkeypatch, capsys):
    from mlstrat import rundir

    def refuse(path, data):
        raise OSError(err, os.strerror(err), str(path))

    monkeypatch.setattr(rundir, "atomic_write_bytes", refuse)
    code, errtext = cli(
        "run", str(reference[0]), "--out", str(tmp_path / "ro"), "--quiet", capsys=capsys
    )
    assert code == 2 and len(errtext.splitlines()) == 1
    assert ("read-only" if err == errno.EROFS else "permission denied") in errtext


@pytest.mark.slow
def test_real_small_tmpfs_fills_up(reference, tmp_path, capsys):
    """A real full disk: a 1 MiB tmpfs (needs root and mount; skipped elsewhere)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()[:120]}")
    try:
        code, err = cli(
            "run", str(reference[0]), "--out", str(mnt / "out"), "--quiet", capsys=capsys
        )
        assert code == 2 and len(err.splitlines()) == 1 and "disk is full" in err
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_internal_bug_is_exit_1_with_please_report(reference, tmp_path, monkeypatch, capsys):
    from mlstrat import run as run_module

    def bug(self):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(run_module._Pipeline, "data", bug)
    code, err = cli(
        "run", str(reference[0]), "--out", str(tmp_path / "o"), "--quiet", capsys=capsys
    )
    assert code == 1 and len(err.splitlines()) == 1
    assert "please report" in err and "ZeroDivisionError" in err
    traceback_file = Path(err.rsplit("traceback is in ", 1)[1])
    assert "Traceback" in traceback_file.read_text()
    traceback_file.unlink()


# ---------------------------------------------------------------------------- determinism


@pytest.mark.slow
def test_two_identical_runs_write_identical_result_files(reference, tmp_path):
    run_experiment(reference[0], tmp_path / "again", progress=False)
    first, again = reference[1], tmp_path / "again"
    pairs = [
        *(f"backtests/xgb/result/{f}" for f in RESULT_FILES),
        "models/xgb/BTCUSDT/predictions.parquet",
        "models/xgb/BTCUSDT/folds.json",
        "report/xgb/metrics.json",
        "report/xgb/trades.csv",
        "report/xgb/equity.csv",
    ]
    for rel in pairs:
        assert filecmp.cmp(first / rel, again / rel, shallow=False), rel


# ---------------------------------------------------------------------------- workers


KILLABLE = textwrap.dedent(
    """
    import sys
    from mlstrat.walkforward import WalkForward
    from mlstrat.walkforward.runner import run_walk_forward
    # far more trees than a fold needs: each worker trains for minutes unless stopped
    params = {"n_estimators": 200000, "early_stopping_rounds": None, "max_depth": 8}
    run_walk_forward(sys.argv[1], predictor="xgboost", params=params, target="direction_1",
                     splits=WalkForward(train="40D", test="20D"), out=sys.argv[2], n_jobs=2,
                     progress=False)
    """
)


def _loky_children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid and b"loky" in cmdline:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the workers")
def test_workers_exit_when_the_run_is_killed(tmp_path):
    from mlstrat.data import load_bars
    from mlstrat.features import build_feature_feed, get_feature_set, write_feature_feed

    bars = load_bars(SAMPLE)
    bars = bars[(bars.index >= "2025-01-01") & (bars.index < "2025-04-15")]
    feed = build_feature_feed(bars, get_feature_set("core"), targets=["direction:1"])
    write_feature_feed(feed, tmp_path / "feed.parquet")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLABLE, str(tmp_path / "feed.parquet"), str(tmp_path / "wf")],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    workers: set[int] = set()
    deadline = time.monotonic() + 300
    while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
        workers = _loky_children(proc.pid)
        time.sleep(0.2)
    time.sleep(3)  # inside their fits
    assert len(workers) >= 2 and proc.pid not in workers  # the workers (+ resource tracker)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60  # they exit within a second; generous for a loaded machine
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [w for w in workers if _alive(w)]
    for w in survivors:
        os.kill(w, signal.SIGKILL)
    assert not survivors, "workers kept training after their run was killed"


def test_run_json_records_each_symbols_data_quality_and_warmup(reference):
    info = json.loads((reference[1] / "run.json").read_text())
    data = info["data"]["BTCUSDT"]
    assert data["quality"]["rows_read"] >= data["quality"]["rows_kept"] > 0
    assert "placeholder" in data["quality"]["anomalies"]
    assert data["warmup"]["first_complete"] and data["warmup"]["lookback_bars"] > 0
