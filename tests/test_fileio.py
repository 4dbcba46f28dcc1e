"""The one IO module: JSON conversion, atomic files and directories, versions, hashing.

Each helper is checked against values written out by hand or read from an
independent source, and the faults it handles are injected: a writer that
fails half-way, a final rename that fails, leftovers of a killed writer,
Python's per-process string hashing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from report_synth import make_result

from mlstrat import fileio
from mlstrat.errors import IntegrityError
from mlstrat.fileio import (
    TMP_MARK,
    atomic_write,
    atomic_write_bytes,
    json_text,
    load_json,
    remove_tmp_names,
    replace_dir,
    scratch_dir,
    staged_dir,
    tmp_name,
    to_jsonable,
    versions,
)
from mlstrat.report import result as report_result
from mlstrat.report.result import BacktestResult
from mlstrat.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- JSON


def test_to_jsonable_converts_numpy_paths_times_and_containers() -> None:
    obj = {
        1: np.int64(3),
        "f32": np.float32(0.5),
        "bool": np.bool_(True),
        "scalar_array": np.array(2.5),
        "matrix": np.arange(4).reshape(2, 2),
        "tuple": (1, (2, 3)),
        "set": {10, 9, 1},
        "path": Path("models") / "xgb",
        "stamp": pd.Timestamp("2024-01-02 03:04", tz="UTC"),
        "date": dt.date(2024, 1, 2),
        "span": pd.Timedelta(hours=1),
        "np_time": np.datetime64("2024-01-01T05:00:00", "s"),
        "nan": float("nan"),
        "inf": np.float64(np.inf),
    }
    assert to_jsonable(obj) == {
        "1": 3,
        "f32": 0.5,
        "bool": True,
        "scalar_array": 2.5,
        "matrix": [[0, 1], [2, 3]],
        "tuple": [1, [2, 3]],
        "set": [1, 9, 10],
        "path": os.path.join("models", "xgb"),
        "stamp": "2024-01-02T03:04:00+00:00",
        "date": "2024-01-02",
        "span": "0 days 01:00:00",
        "np_time": "2024-01-01T05:00:00",
        "nan": None,
        "inf": None,
    }
    kept = to_jsonable({"nan": np.nan, "inf": -np.inf}, allow_nan=True)
    assert math.isnan(kept["nan"]) and kept["inf"] == -math.inf


def test_to_jsonable_refuses_unknown_objects_unless_given_a_default() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    with pytest.raises(TypeError, match="cannot store Opaque"):
        to_jsonable({"x": [Opaque()]})
    assert to_jsonable({"x": [Opaque()]}, default=str) == {"x": ["opaque!"]}
    # the report's conversion never refuses a value
    assert report_result.to_jsonable({"x": Opaque()}) == {"x": "opaque!"}


def test_mixed_sets_and_zero_d_arrays_no_longer_crash() -> None:
    # the model-metadata conversion raised on a set of mixed types and the report's on a
    # 0-d array (it iterated the scalar); both are ordinary values now
    assert to_jsonable({1, "a"}) == [1, "a"]
    assert report_result.to_jsonable({"x": np.array(1.5)}) == {"x": 1.5}


def test_json_text_is_strict_sorted_and_newline_terminated() -> None:
    text = json_text({"b": np.int64(1), "a": [np.nan, 0.25]})
    assert text == '{\n  "a": [\n    null,\n    0.25\n  ],\n  "b": 1\n}\n'
    assert json_text({"b": 1, "a": 2}, sort_keys=False) == '{\n  "b": 1,\n  "a": 2\n}\n'
    assert json.loads(text) == {"a": [None, 0.25], "b": 1}


def test_load_json_names_the_file_and_the_fix(tmp_path) -> None:
    bad = tmp_path / "state.json"
    bad.write_text('{"a": 1', encoding="utf-8")
    with pytest.raises(IntegrityError, match="not valid JSON") as info:
        load_json(bad, fix="rebuild it")
    assert info.value.file == str(bad) and "rebuild it" in str(info.value)
    with pytest.raises(FileNotFoundError):
        load_json(tmp_path / "absent.json", fix="rebuild it")


# ---------------------------------------------------------------------------- atomic files


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path) -> None:
    path = tmp_path / "predictions.parquet"
    atomic_write_bytes(path, b"old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"ne")
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.parquet"]
    atomic_write(path, lambda tmp: tmp.write_bytes(b"new"))
    assert path.read_bytes() == b"new"


def test_tmp_names_carry_the_mark_and_only_marked_names_are_removed(tmp_path) -> None:
    target = tmp_path / "report"
    assert TMP_MARK in tmp_name(target).name and tmp_name(target).parent == tmp_path
    leftover_dir = tmp_name(target)
    (leftover_dir / "sub").mkdir(parents=True)
    leftover_file = tmp_name(tmp_path / "folds.json")
    leftover_file.write_text("x")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / ".hidden").write_text("mine too")
    remove_tmp_names(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "notes.txt"]


# ---------------------------------------------------------------------------- directories


def _fail_rename_onto(monkeypatch, target: Path) -> None:
    """Make the first rename of a staged sibling onto `target` fail (os.rename or os.replace)."""
    failed: list[Path] = []
    for name in ("rename", "replace"):
        original = getattr(os, name)

        def fail(src, dst, *args, _original=original, **kwargs):
            if not failed and Path(dst) == target and Path(src).name.startswith(f".{target.name}."):
                failed.append(Path(src))
                raise OSError(28, "No space left on device", str(dst))
            return _original(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, name, fail)


def test_replace_dir_puts_the_old_directory_back_when_the_rename_fails(
    tmp_path, monkeypatch
) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "a.txt").write_text("old")
    new = tmp_name(target)
    new.mkdir()
    (new / "a.txt").write_text("new")
    _fail_rename_onto(monkeypatch, target)
    with pytest.raises(OSError):
        replace_dir(new, target)
    assert (target / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([new.name, "model"])


def test_saved_result_survives_a_failed_replacement(tmp_path, monkeypatch) -> None:
    """Before: the old result was moved aside first and lost when the final rename failed."""
    target = tmp_path / "backtest"
    first = make_result(n_bars=120, seed=1)
    first.save(target)
    _fail_rename_onto(monkeypatch, target)
    with pytest.raises(OSError):
        make_result(n_bars=120, seed=2).save(target)
    monkeypatch.undo()
    again = BacktestResult.load(target)
    pd.testing.assert_series_equal(again.equity, first.equity, check_freq=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backtest"]


def test_run_directory_keeps_an_installed_folder_when_its_replacement_fails(
    tmp_path, monkeypatch
) -> None:
    """Before: the old folder was renamed aside first, so a failed final rename lost it
    (and the next run deleted it as a leftover) while the manifest still listed its files."""
    run = RunDir.claim(tmp_path / "run")
    for version in ("v1", "v2"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "model.txt").write_text(version)
    run.install(tmp_path / "v1", "models/xgb", link=False)
    _fail_rename_onto(monkeypatch, run.root / "models" / "xgb")
    with pytest.raises(OSError):
        run.install(tmp_path / "v2", "models/xgb", link=False)
    monkeypatch.undo()
    assert (run.root / "models" / "xgb" / "model.txt").read_text() == "v1"
    assert run.verify(["models/xgb/model.txt"]) == []


def test_scratch_dir_is_marked_and_always_removed(tmp_path) -> None:
    with pytest.raises(RuntimeError), scratch_dir(tmp_path / "out") as tmp:
        assert TMP_MARK in tmp.name and tmp.parent == tmp_path
        (tmp / "model" / "deep").mkdir(parents=True)
        raise RuntimeError("save failed")
    assert list(tmp_path.iterdir()) == []


def test_staged_dir_leaves_nothing_when_the_body_fails(tmp_path) -> None:
    target = tmp_path / "entry"
    with staged_dir(target) as tmp:
        (tmp / "x").write_text("1")
    assert (target / "x").read_text() == "1"
    with pytest.raises(RuntimeError), staged_dir(target) as tmp:
        (tmp / "x").write_text("2")
        raise RuntimeError("build failed")
    assert (target / "x").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


# ---------------------------------------------------------------------------- versions, hashes


def test_versions_in_order_from_modules_or_metadata() -> None:
    got = versions(["python", ("no-such-dist-mlstrat", "pandas"), "pyyaml", "no-such-dist-x"])
    assert list(got) == ["python", "pandas", "pyyaml", "no-such-dist-x"]
    assert got["python"] == platform.python_version()
    assert got["pandas"] == pd.__version__
    assert got["pyyaml"] == yaml.__version__  # "yaml" is the module; read from metadata
    assert got["no-such-dist-x"] is None


def test_file_sha256_streams_in_chunks(tmp_path) -> None:
    import hashlib

    payload = os.urandom(3 * 1024 + 7)
    (tmp_path / "blob").write_bytes(payload)
    got = fileio.file_sha256(tmp_path / "blob", chunk_size=1024)
    assert got == hashlib.sha256(payload).hexdigest()


def test_cache_keys_do_not_depend_on_the_process_string_hash() -> None:
    """Before: a set in a stage's inputs was hashed as str(set), whose order changes
    with PYTHONHASHSEED, so the same inputs gave another key in another process."""
    code = (
        "from mlstrat.cache import content_hash; "
        "print(content_hash({'columns': set('alpha beta gamma delta epsilon zeta'.split())}))"
    )
    keys = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        keys.add(out.stdout.strip())
    assert len(keys) == 1
