"""Older Keras models (made by TensorFlow 2.15, see fixtures/legacy/make_fixtures.py) load and match."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstrat.errors import ModelLoadError, SchemaError
from mlstrat.predictors import legacy
from mlstrat.predictors.legacy import LegacyKerasPredictor, load_legacy_model, patch_config
from mlstrat.predictors.upgrade import read_pickled_scaler, read_scaler_json, upgrade_legacy_model

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "legacy"
META = json.loads((FIXTURES / "fixtures.json").read_text())
NAMES = sorted(META["models"])
SUFFIXES = [".h5", ".keras", "_savedmodel"]


def _io(name):
    x = np.load(FIXTURES / f"{name}_input.npy", allow_pickle=False)
    return x, np.load(FIXTURES / f"{name}_expected.npy", allow_pickle=False)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("name", NAMES)
def test_every_fixture_loads_and_matches_tf215(name, suffix):
    x, expected = _io(name)
    # SavedModels run their graph when loaded: only with explicit trust (test_model_trust.py).
    record = load_legacy_model(FIXTURES / f"{name}{suffix}", trust_saved_model=True)
    assert np.max(np.abs(record.predict(x) - expected)) < 1e-5
    # The current loader cannot read Keras 2 files: a later strategy did the work and said so.
    assert record.strategy != "current"
    assert record.attempts[0][0] == "current"
    assert record.patches


@pytest.mark.slow
def test_keras2_files_fail_the_plain_loader_with_the_seed_error():
    record = load_legacy_model(FIXTURES / "seed000.keras")
    reason = dict(record.attempts)["current"]
    assert "keras.src.engine.functional" in reason
    assert any("time_major" in p for p in record.patches)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_weights_only_into_registered_seed000_architecture(suffix, monkeypatch):
    # Force the first two strategies to fail, as they would for an unpatchable config.
    monkeypatch.setattr(legacy, "_try_current", _fail)
    monkeypatch.setattr(legacy, "_try_patched", _fail)
    builder = META["models"]["seed000"]["builder"]
    x, expected = _io("seed000")
    record = load_legacy_model(
        FIXTURES / f"seed000{suffix}", architecture=(builder["name"], builder["params"])
    )
    assert record.strategy == "weights_only"
    assert np.max(np.abs(record.predict(x) - expected)) < 1e-5


def _fail(*args, **kwargs):
    raise ValueError("disabled for this test")


def test_weights_only_rejects_a_mismatched_architecture(monkeypatch):
    monkeypatch.setattr(legacy, "_try_current", _fail)
    monkeypatch.setattr(legacy, "_try_patched", _fail)
    with pytest.raises(ModelLoadError) as info:
        load_legacy_model(
            FIXTURES / "seed000.h5", architecture=("seed000", {"lstm_units": [16, 8, 6]})
        )
    # An architecture forces weights_only; its mismatch is reported in full, not as an attempt.
    assert "weights do not fit the architecture" in str(info.value)


def test_patch_config_rewrites_keras2_forms():
    patches: list[str] = []
    config = {
        "class_name": "Sequential",
        "config": {
            "layers": [
                {
                    "class_name": "CuDNNLSTM",
                    "config": {"units": 4, "batch_input_shape": [None, 5, 3]},
                },
                {"class_name": "GRU", "config": {"units": 2, "time_major": False}},
            ]
        },
    }
    out = patch_config(config, patches)
    first, lstm, gru = out["config"]["layers"]
    assert first == {
        "class_name": "InputLayer",
        "config": {"batch_shape": [None, 5, 3], "dtype": "float32"},
    }
    assert lstm["class_name"] == "LSTM" and "batch_input_shape" not in lstm["config"]
    assert "time_major" not in gru["config"]
    assert config["config"]["layers"][1]["config"]["time_major"] is False  # input untouched
    assert len(patches) == 4


def test_corrupted_file_lists_every_strategy(tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes((FIXTURES / "seq_lstm.keras").read_bytes()[:500])
    with pytest.raises(ModelLoadError) as info:
        load_legacy_model(bad)
    message = str(info.value)
    for strategy in legacy.STRATEGIES:
        assert f"{strategy}:" in message
    assert "broken.keras" in message


def test_predictor_windows_and_output_mapping():
    names = [f"f{i}" for i in range(5)]
    model = LegacyKerasPredictor(FIXTURES / "seq_lstm.h5", feature_names=names)
    assert model.window == 12 and model.output == "proba_up"
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(40, 5)), columns=names[::-1])  # order restored by name
    frame.iloc[20, 2] = np.nan
    pred = model.predict(frame)
    assert np.isnan(pred.signal[:11]).all() and np.isfinite(pred.signal[11:20]).all()
    assert np.isnan(pred.signal[20:32]).all() and np.isfinite(pred.signal[32:]).all()
    windows = frame[names].to_numpy(dtype=np.float32)[28:40][None]
    p_up = float(np.asarray(model.raw_outputs(windows))[0, 0])
    assert pred.proba[-1, 1] == pytest.approx(p_up, abs=1e-6)
    # the side of 0.5, unless p_up is within the two computations' difference of it
    assert pred.signal[-1] == (1.0 if p_up >= 0.5 else -1.0) or abs(p_up - 0.5) < 1e-6
    with pytest.raises(SchemaError):
        model.predict(frame.drop(columns=["f3"]))


@pytest.mark.slow
def test_upgrade_round_trip_every_fixture(tmp_path):
    for name in NAMES:
        for suffix in SUFFIXES:
            out = tmp_path / f"{name}{suffix}-upgraded"
            trust = suffix == "_savedmodel"
            report = upgrade_legacy_model(
                FIXTURES / f"{name}{suffix}", out, trust_saved_model=trust
            )
            assert report.max_abs_diff <= 1e-5
            x, expected = _io(name)
            again = LegacyKerasPredictor.load(out, trust_saved_model=trust)
            assert again.load_record.strategy in ("current", "saved_model")
            assert np.max(np.abs(np.asarray(again.raw_outputs(x)) - expected)) < 1e-5


@pytest.mark.slow
def test_upgrade_cli_and_corrupt_file_exit_code(tmp_path):
    names = tmp_path / "names.json"
    names.write_text(json.dumps([f"f{i}" for i in range(5)]))
    out = tmp_path / "up"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlstrat.cli",
            "models",
            "upgrade",
            str(FIXTURES / "seq_lstm.h5"),
            "--out",
            str(out),
            "--features",
            str(names),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads((out / "metadata.json").read_text())["feature_names"][0] == "f0"
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlstrat.cli",
            "models",
            "upgrade",
            str(bad),
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("mlstrat")]
    assert len(lines) == 1 and "patched_config:" in lines[0] and "Traceback" not in run.stderr
    assert not (tmp_path / "x").exists()


def test_pickled_scaler_needs_explicit_trust(tmp_path):
    sk = pytest.importorskip("sklearn.preprocessing")
    data = np.random.default_rng(2).normal(size=(50, 3))
    fitted = sk.MinMaxScaler().fit(data)
    path = tmp_path / "volatility_scaler.pkl"
    path.write_bytes(pickle.dumps(fitted))
    with pytest.raises(SchemaError, match="trust-pickle"):
        read_pickled_scaler(path)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        ours = read_pickled_scaler(path, trust_pickle=True)
    np.testing.assert_allclose(ours.transform(data), fitted.transform(data), atol=1e-12)


def test_pickle_with_other_classes_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(pd.Timestamp("2024-01-01")))
    with pytest.raises(SchemaError, match="refusing"):
        read_pickled_scaler(path, trust_pickle=True)


def test_scaler_json_in_sklearn_terms(tmp_path):
    path = tmp_path / "scaler.json"
    path.write_text(json.dumps({"kind": "standard", "mean_": [1.0, 2.0], "scale_": [2.0, 4.0]}))
    scaler = read_scaler_json(path)
    np.testing.assert_allclose(scaler.transform(np.array([[3.0, 6.0]])), [[1.0, 1.0]])


def test_align_strict_and_fill_policies(tmp_path):
    from mlstrat.predictors.compat import align, expected_features

    frame = pd.DataFrame({"b": [1.0, 2.0], "a": [3.0, 4.0], "extra": [0.0, 0.0]})
    out = align(frame, ["a", "b"])
    assert list(out.columns) == ["a", "b"] and out["a"].tolist() == [3.0, 4.0]
    with pytest.raises(SchemaError, match="c, d"):
        align(frame, ["a", "c", "d"])
    with pytest.warns(UserWarning, match="c"):
        filled = align(frame, ["c", "a"], policy="fill", fill_value=-1.0)
    assert filled["c"].tolist() == [-1.0, -1.0]
    sidecar = tmp_path / "model.h5.features.json"
    sidecar.write_text(json.dumps(["a", "b"]))
    assert expected_features(tmp_path / "model.h5") == ["a", "b"]
