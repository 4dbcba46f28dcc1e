"""Model files are safe to load: SavedModels only with trust, only manifest-listed files,
window-set entries pinned inside their folder by sha256, corrupted .h5 weights caught by
reference outputs, --architecture forcing the weights-only path.

A SavedModel that writes a file when its signature runs is built here with the current
TensorFlow; the marker file it writes shows whether its graph ran.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstrat.cli import main
from mlstrat.errors import ConfigError, IntegrityError, ModelLoadError, SchemaError
from mlstrat.predictors.legacy import (
    LegacyKerasPredictor,
    SavedModelTrustError,
    load_legacy_model,
)
from mlstrat.predictors.persistence import build_manifest, dump_json, verify_model_dir
from mlstrat.predictors.registry import load_predictor
from mlstrat.predictors.scaling import save_scalers, scaler_from_dict
from mlstrat.predictors.upgrade import upgrade_legacy_model
from mlstrat.predictors.window_sets import (
    INDEX_FILE,
    WindowEntry,
    WindowModelSet,
    index_from_schedule,
    write_index,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
START = pd.Timestamp("2024-01-01", tz="UTC")


# ----------------------------------------------------------------------------- helpers


def _save_file_writing_model(path: Path, marker: Path) -> None:
    """SavedModel whose serving signature writes `marker`; output = sum over features of the
    mean over time (3 features -> 3.0 on an all-ones window)."""
    import tensorflow as tf

    class FileWriter(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.ones((3, 1)))

        @tf.function(input_signature=[tf.TensorSpec([None, 4, 3], tf.float32, name="x")])
        def serve(self, x):
            tf.io.write_file(str(marker), "written by the model's graph")
            return {"y": tf.reduce_mean(x, axis=1) @ self.w}

    module = FileWriter()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, Path]:
    """(SavedModel directory, marker path it writes when its graph runs)."""
    root = tmp_path_factory.mktemp("hostile")
    marker = root / "marker.txt"
    _save_file_writing_model(root / "writer_savedmodel", marker)
    assert not marker.exists()
    return root / "writer_savedmodel", marker


@pytest.fixture
def writer(hostile) -> tuple[Path, Path]:
    """The hostile SavedModel with its marker removed (each test starts with no marker)."""
    path, marker = hostile
    marker.unlink(missing_ok=True)
    return path, marker


@pytest.fixture(scope="module")
def upgraded_writer(hostile, tmp_path_factory) -> Path:
    """A model directory made (with trust) from the hostile SavedModel."""
    out = tmp_path_factory.mktemp("upgraded") / "writer"
    upgrade_legacy_model(hostile[0], out, trust_saved_model=True)
    return out


def _ones_frame(rows: int = 6) -> pd.DataFrame:
    index = pd.date_range(START, periods=rows, freq="1h", tz="UTC")
    return pd.DataFrame(np.ones((rows, 3)), index=index, columns=["f0", "f1", "f2"])


def _cli(capsys, *argv: str) -> tuple[int, str, list[str]]:
    """Run `mlstrat ARGV` in-process: (exit code, stdout, mlstrat's stderr lines)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    return code, captured.out, lines


def _rewrite_manifest(model_dir: Path) -> None:
    """Re-sign a tampered directory, as an attacker who edits files would."""
    dump_json(model_dir / "manifest.json", build_manifest(model_dir))


def _dense_model(path: Path, value: float) -> None:
    """A tiny (4, 2) -> 1 Keras model whose output is `value` whatever the input."""
    import keras

    model = keras.Sequential([keras.Input((4, 2)), keras.layers.Flatten(), keras.layers.Dense(1)])
    kernel, _ = model.layers[-1].get_weights()
    model.layers[-1].set_weights([np.zeros_like(kernel), np.array([value])])
    model.save(path)


@pytest.fixture(scope="module")
def keras_set(tmp_path_factory) -> Path:
    """A window set of 3 models (window n outputs n), index written with hashes."""
    directory = tmp_path_factory.mktemp("keras_set")
    for n in range(3):
        _dense_model(directory / f"btceur_window_{n}.keras", float(n))
    write_index(
        directory,
        index_from_schedule(directory, start=START, train="10D", step="5D"),
        feature_names=["a", "b"],
        window=4,
    )
    return directory


def _standard_scaler(n: int, *, mean: float):
    """A fitted standard scaler subtracting `mean` from each of `n` features (unit scale)."""
    return scaler_from_dict(
        {
            "type": "standard",
            "with_mean": True,
            "with_std": True,
            "n_features_in": n,
            "mean": [mean] * n,
            "var": [1.0] * n,
            "scale": [1.0] * n,
            "n_samples_seen": 10,
        }
    )


def _copy_set(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _index(directory: Path) -> dict:
    return json.loads((directory / INDEX_FILE).read_text())


def _write_raw_index(directory: Path, body: dict) -> None:
    (directory / INDEX_FILE).write_text(json.dumps(body))


# ----------------------------------------------------------------------------- SavedModel trust


def test_saved_model_is_refused_before_tensorflow_loads_it(writer, monkeypatch):
    import tensorflow as tf

    path, marker = writer

    def no_load(*args, **kwargs):
        raise AssertionError("tf.saved_model.load was called without trust")

    monkeypatch.setattr(tf.saved_model, "load", no_load)
    with pytest.raises(SavedModelTrustError) as info:
        load_legacy_model(path)
    assert isinstance(info.value, ModelLoadError)
    message = str(info.value)
    assert "SavedModel" in message and "graph" in message and "--trust-saved-model" in message
    assert str(path) in message
    assert not marker.exists()


def test_saved_model_with_trust_runs_its_graph(writer):
    # With the flag the same model loads and its signature writes the marker: the gate,
    # and nothing else, is what stopped it above.
    path, marker = writer
    record = load_legacy_model(path, trust_saved_model=True)
    assert record.strategy == "saved_model"
    out = record.predict(np.ones((2, 4, 3)))
    np.testing.assert_allclose(out, [[3.0], [3.0]])
    assert marker.read_text() == "written by the model's graph"


def test_upgrade_cli_refuses_saved_model_without_flag(writer, tmp_path, capsys):
    path, marker = writer
    out = tmp_path / "models" / "up"
    code, _, err = _cli(capsys, "models", "upgrade", str(path), "--out", str(out))
    assert code == 2
    assert len(err) == 1 and err[0].startswith("mlstrat models: error:")
    assert "--trust-saved-model" in err[0] and "Traceback" not in err[0]
    assert not marker.exists()
    assert not out.exists()
    assert not (out.parent.exists() and any(out.parent.iterdir()))

    code, stdout, _ = _cli(
        capsys, "models", "upgrade", str(path), "--out", str(out), "--trust-saved-model"
    )
    assert code == 0 and "strategy saved_model" in stdout
    assert marker.exists()
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["requires_trust"] == ["saved_model"]


def test_model_directory_from_saved_model_needs_trust_to_load(upgraded_writer, writer, capsys):
    _, marker = writer
    for load in (load_predictor, LegacyKerasPredictor.load):
        with pytest.raises(SavedModelTrustError, match="--trust-saved-model"):
            load(upgraded_writer)
    assert not marker.exists()
    code, stdout, _ = _cli(capsys, "models", "inspect", str(upgraded_writer))
    assert code == 0 and "trust_saved_model=True" in stdout

    model = load_predictor(upgraded_writer, trust_saved_model=True)
    pred = model.predict(_ones_frame())
    np.testing.assert_allclose(pred.expected_return[3:], 3.0)  # mean 1 over time, 3 features
    assert np.isnan(pred.expected_return[:3]).all()
    assert marker.exists()


def test_trust_is_never_read_from_metadata(upgraded_writer, writer, tmp_path):
    # An edited directory that drops requires_trust and claims trust in its parameters is
    # still refused: the SavedModel folder itself is detected before it is loaded.
    _, marker = writer
    tampered = _copy_set(upgraded_writer, tmp_path / "tampered")
    meta = json.loads((tampered / "metadata.json").read_text())
    meta["requires_trust"] = []
    meta["params"]["trust_saved_model"] = True
    dump_json(tampered / "metadata.json", meta)
    _rewrite_manifest(tampered)
    with pytest.raises(SavedModelTrustError):
        LegacyKerasPredictor.load(tampered)
    assert not marker.exists()


def test_window_set_with_saved_model_entry_needs_trust(writer, tmp_path):
    path, marker = writer
    directory = tmp_path / "set"
    directory.mkdir()
    shutil.copytree(path, directory / "btceur_window_0")
    entries = index_from_schedule(
        directory, start=START - pd.Timedelta("10D"), train="5D", step="1D"
    )
    write_index(directory, entries, feature_names=["f0", "f1", "f2"], window=4)
    assert _index(directory)["models"][0]["requires_trust"] == ["saved_model"]
    with pytest.raises(SavedModelTrustError):
        WindowModelSet(directory)

    # An index that does not say so is caught when the entry is loaded.
    body = _index(directory)
    body["models"][0]["requires_trust"] = []
    _write_raw_index(directory, body)
    predictor = LegacyKerasPredictor(window_set=WindowModelSet(directory), output="return")
    with pytest.raises(SavedModelTrustError):
        predictor.predict(_ones_frame())
    assert not marker.exists()

    trusted = WindowModelSet(directory, trust_saved_model=True)
    pred = LegacyKerasPredictor(window_set=trusted, output="return").predict(_ones_frame())
    np.testing.assert_allclose(pred.expected_return[3:], 3.0)
    assert marker.exists()


# ----------------------------------------------------------------------------- manifest only


@pytest.fixture(scope="module")
def seq_lstm_dir(tmp_path_factory) -> Path:
    """seq_lstm.h5 upgraded to a model directory without a scaler."""
    out = tmp_path_factory.mktemp("seq") / "seq_lstm"
    upgrade_legacy_model(FIXTURES / "seq_lstm.h5", out)
    return out


def _last_row_proba(model, x_window: np.ndarray) -> float:
    names = [f"f{i}" for i in range(x_window.shape[1])]
    index = pd.date_range(START, periods=len(x_window), freq="1h", tz="UTC")
    pred = model.predict(pd.DataFrame(x_window, index=index, columns=names))
    return float(pred.proba[-1, 1])


def test_unlisted_scalers_json_is_ignored(seq_lstm_dir, tmp_path, capsys):
    model_dir = _copy_set(seq_lstm_dir, tmp_path / "m")
    # A scaler that would move every input by 100 standard deviations if it were read.
    save_scalers(model_dir / "scalers.json", {"x": _standard_scaler(5, mean=100.0)})
    assert verify_model_dir(model_dir).extra_files == ["scalers.json"]
    model = LegacyKerasPredictor.load(model_dir)
    assert model.scaler is None
    x = np.load(FIXTURES / "seq_lstm_input.npy", allow_pickle=False)
    expected = np.load(FIXTURES / "seq_lstm_expected.npy", allow_pickle=False)
    assert _last_row_proba(model, x[0]) == pytest.approx(float(expected[0, 0]), abs=1e-5)
    code, stdout, _ = _cli(capsys, "models", "inspect", str(model_dir))
    assert code == 0 and "not in the manifest (never read): scalers.json" in stdout


def test_tampered_listed_scalers_json_is_an_integrity_error(tmp_path):
    out = tmp_path / "scaled"
    upgrade_legacy_model(FIXTURES / "seq_lstm.h5", out, scaler=_standard_scaler(5, mean=0.0))
    assert LegacyKerasPredictor.load(out).scaler is not None
    path = out / "scalers.json"
    body = json.loads(path.read_text())
    body["scalers"]["x"]["mean"][0] = 5.0
    path.write_text(json.dumps(body))
    with pytest.raises(IntegrityError, match="scalers.json"):
        LegacyKerasPredictor.load(out)


def test_upgrade_with_a_standard_scaler_json(tmp_path, capsys):
    # A StandardScaler keeps n_samples_seen as a 0-d array; saving it must not crash.
    scaler = tmp_path / "scaler.json"
    scaler.write_text(json.dumps({"kind": "standard", "mean_": [1.0] * 5, "scale_": [2.0] * 5}))
    out = tmp_path / "up"
    code, _, err = _cli(
        capsys,
        "models",
        "upgrade",
        str(FIXTURES / "seq_lstm.h5"),
        "--out",
        str(out),
        "--scaler-json",
        str(scaler),
    )
    assert code == 0, err
    x = np.load(FIXTURES / "seq_lstm_input.npy", allow_pickle=False)[0]
    model = LegacyKerasPredictor.load(out)
    # The model sees (x - 1) / 2: feed 2x + 1 and expect the fixture's output for x.
    expected = np.load(FIXTURES / "seq_lstm_expected.npy", allow_pickle=False)[0, 0]
    assert _last_row_proba(model, 2.0 * x + 1.0) == pytest.approx(float(expected), abs=1e-5)


def test_saved_model_folder_may_hold_only_listed_files(upgraded_writer, tmp_path):
    model_dir = _copy_set(upgraded_writer, tmp_path / "m")
    # An unlisted model.keras beside the listed SavedModel is never picked instead of it.
    shutil.copy(FIXTURES / "seq_lstm.keras", model_dir / "model.keras")
    model = LegacyKerasPredictor.load(model_dir, trust_saved_model=True)
    assert model.load_record.strategy == "saved_model"
    # TensorFlow reads the SavedModel folder whole, so an unlisted file there is refused.
    (model_dir / "savedmodel" / "saved_model.pbtxt").write_text("")
    with pytest.raises(IntegrityError, match="saved_model.pbtxt"):
        LegacyKerasPredictor.load(model_dir, trust_saved_model=True)


def test_metadata_model_file_must_be_in_the_manifest(tmp_path):
    from mlstrat.predictors.persistence import write_model_dir

    with write_model_dir(tmp_path / "m", {"predictor": "xgboost", "model_file": "model.ubj"}) as d:
        (d / "model.ubj").write_bytes(b"x")
    verify_model_dir(tmp_path / "m")
    (tmp_path / "elsewhere.ubj").write_bytes(b"y")
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    meta["model_file"] = "../elsewhere.ubj"
    dump_json(tmp_path / "m" / "metadata.json", meta)
    _rewrite_manifest(tmp_path / "m")
    with pytest.raises(IntegrityError, match="model_file"):
        verify_model_dir(tmp_path / "m")


# ----------------------------------------------------------------------------- window sets


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_index_entry_outside_the_folder_is_refused(keras_set, tmp_path, kind):
    directory = _copy_set(keras_set, tmp_path / "set")
    outside = tmp_path / "outside.keras"
    _dense_model(outside, 7.0)
    if kind == "dotdot":
        file = "../outside.keras"
    elif kind == "absolute":
        file = str(outside)
    else:
        (directory / "link.keras").symlink_to(outside)
        file = "link.keras"
    body = _index(directory)
    body["models"][0]["file"] = file
    body["models"][0]["sha256"] = hashlib.sha256(outside.read_bytes()).hexdigest()
    _write_raw_index(directory, body)
    with pytest.raises(IntegrityError, match="outside the set's folder"):
        WindowModelSet(directory)
    entry = WindowEntry("BTCEUR", 0, file, START, START + pd.Timedelta("1D"))
    with pytest.raises(IntegrityError, match="outside the set's folder"):
        write_index(directory, [entry])


def test_entry_whose_hash_differs_is_refused_by_name(keras_set, tmp_path):
    directory = _copy_set(keras_set, tmp_path / "set")
    shutil.copy(directory / "btceur_window_2.keras", directory / "btceur_window_1.keras")
    models = WindowModelSet(directory)  # opening reads only the index
    record = models.get("btceur_window_0.keras")  # untouched entries still load
    assert float(np.asarray(record.predict(np.ones((1, 4, 2))))[0, 0]) == pytest.approx(0.0)
    with pytest.raises(IntegrityError) as info:
        models.get("btceur_window_1.keras")
    assert "BTCEUR window 1" in str(info.value) and "sha256" in str(info.value)
    # Predicting bars that window 1 must serve hits the same refusal.
    index = pd.date_range(START + pd.Timedelta("16D"), periods=8, freq="1h", tz="UTC")
    frame = pd.DataFrame(np.ones((8, 2)), index=index, columns=["a", "b"])
    with pytest.raises(IntegrityError, match="window 1"):
        LegacyKerasPredictor(window_set=models, output="return").predict(frame)
    with pytest.raises(ModelLoadError, match="not a model of this set"):
        models.get("../btceur_window_0.keras")


def test_index_without_hashes_is_refused(keras_set, tmp_path):
    directory = _copy_set(keras_set, tmp_path / "set")
    body = _index(directory)
    del body["models"][1]["sha256"]
    _write_raw_index(directory, body)
    with pytest.raises(IntegrityError, match="BTCEUR window 1.*no sha256"):
        WindowModelSet(directory)
    body["format"] = "mlstrat-window-set/1"
    _write_raw_index(directory, body)
    with pytest.raises(SchemaError, match="records no hashes"):
        WindowModelSet(directory)
    body = _index(keras_set)
    del body["models"][0]["train_end"]
    _write_raw_index(directory, body)
    with pytest.raises(SchemaError, match="record 0 is malformed"):
        WindowModelSet(directory)


def test_model_directory_entries_are_pinned_by_their_manifest(tmp_path):
    directory = tmp_path / "set"
    directory.mkdir()
    for n in range(2):
        _dense_model(tmp_path / f"w{n}.keras", 10.0 + n)
        LegacyKerasPredictor(tmp_path / f"w{n}.keras").save(directory / f"btceur_window_{n}")
    write_index(
        directory,
        index_from_schedule(directory, start=START, train="10D", step="5D"),
        feature_names=["a", "b"],
        window=4,
    )
    models = WindowModelSet(directory)
    out = models.get("btceur_window_1").predict(np.ones((1, 4, 2)))
    assert float(np.asarray(out)[0, 0]) == pytest.approx(11.0)
    # Re-signing an edited directory changes its manifest, so the index no longer matches.
    meta_path = directory / "btceur_window_0" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["params"]["output"] = "three_class"
    dump_json(meta_path, meta)
    _rewrite_manifest(directory / "btceur_window_0")
    with pytest.raises(IntegrityError, match="BTCEUR window 0"):
        WindowModelSet(directory).get("btceur_window_0")


def test_model_directory_entry_with_its_own_scaler_is_refused(tmp_path):
    directory = tmp_path / "set"
    directory.mkdir()
    _dense_model(tmp_path / "w.keras", 1.0)
    model = LegacyKerasPredictor(tmp_path / "w.keras")
    model.scaler = _standard_scaler(2, mean=0.0)
    model.save(directory / "btceur_window_0")
    write_index(directory, index_from_schedule(directory, start=START, train="1D", step="1D"))
    with pytest.raises(ModelLoadError, match="its own scaler"):
        WindowModelSet(directory).get("btceur_window_0")


# ----------------------------------------------------------------------------- reference outputs


def _flip_dense_weight(src: Path, dst: Path) -> tuple[float, float]:
    """Copy `src` and change one float of its dense kernel in place (HDF5 has no checksum)."""
    import h5py

    shutil.copy(src, dst)
    with h5py.File(src, "r") as f:
        names: list[str] = []
        f["model_weights"].visit(names.append)
        name = next(n for n in names if "dense" in n and n.endswith("kernel:0"))
        dataset = f["model_weights"][name]
        offset, old = dataset.id.get_offset(), np.float32(dataset[()].ravel()[0])
    new = np.float32(old + 1.0)
    with open(dst, "r+b") as fh:
        fh.seek(offset)
        assert np.frombuffer(fh.read(4), dtype="<f4")[0] == old
        fh.seek(offset)
        fh.write(new.astype("<f4").tobytes())
    with h5py.File(dst, "r") as f:
        assert np.float32(f["model_weights"][name][()].ravel()[0]) == new
    return float(old), float(new)


@pytest.mark.slow
def test_flipped_h5_weight_is_refused_with_reference_outputs(tmp_path, capsys):
    flipped = tmp_path / "seq_lstm.h5"
    _flip_dense_weight(FIXTURES / "seq_lstm.h5", flipped)
    refs = [
        "--reference-inputs",
        str(FIXTURES / "seq_lstm_input.npy"),
        "--reference-outputs",
        str(FIXTURES / "seq_lstm_expected.npy"),
    ]
    out = tmp_path / "models" / "up"
    code, _, err = _cli(capsys, "models", "upgrade", str(flipped), "--out", str(out), *refs)
    assert code == 2 and len(err) == 1
    assert "reference outputs" in err[0] and str(flipped) in err[0]
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))

    # Without references the corruption goes through, and the command says it could not tell.
    code, stdout, _ = _cli(capsys, "models", "upgrade", str(flipped), "--out", str(out))
    assert code == 0 and "HDF5 has no checksum" in stdout
    shutil.rmtree(out)

    code, stdout, _ = _cli(
        capsys, "models", "upgrade", str(FIXTURES / "seq_lstm.h5"), "--out", str(out), *refs
    )
    assert code == 0 and "reference outputs reproduced on 5 inputs" in stdout


@pytest.mark.slow
def test_reference_arrays_are_read_safely_and_checked(tmp_path):
    source = FIXTURES / "seq_lstm.h5"
    x, y = FIXTURES / "seq_lstm_input.npy", FIXTURES / "seq_lstm_expected.npy"
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    wrong_shape = tmp_path / "wrong.npy"
    np.save(wrong_shape, np.zeros((5, 7, 5), dtype=np.float32))
    out = tmp_path / "up"
    cases = [
        (SchemaError, "numeric .npy", {"reference_inputs": pickled, "reference_outputs": y}),
        (SchemaError, "the model takes", {"reference_inputs": wrong_shape, "reference_outputs": y}),
        (SchemaError, "outputs have shape", {"reference_inputs": x, "reference_outputs": x}),
        (ConfigError, "go together", {"reference_inputs": x}),
        (ConfigError, "tolerance", {"tolerance": 0.0}),
    ]
    for error, text, kwargs in cases:
        with pytest.raises(error, match=text):
            upgrade_legacy_model(source, out, **kwargs)
        assert not out.exists()
    # In-memory arrays work as well as files; a looser tolerance admits a small offset.
    inputs = np.load(x, allow_pickle=False)
    shifted = np.load(y, allow_pickle=False) + 1e-3
    with pytest.raises(IntegrityError):
        upgrade_legacy_model(source, out, reference_inputs=inputs, reference_outputs=shifted)
    report = upgrade_legacy_model(
        source, out, reference_inputs=inputs, reference_outputs=shifted, tolerance=1e-2
    )
    assert report.n_reference == 5 and report.reference_max_abs_diff == pytest.approx(1e-3, rel=0.1)


def test_upgrade_refuses_to_replace_a_directory_that_is_not_a_model(tmp_path, capsys):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = _cli(
        capsys, "models", "upgrade", str(FIXTURES / "seq_lstm.h5"), "--out", str(out)
    )
    assert code == 2 and len(err) == 1 and "not an mlstrat model directory" in err[0]
    assert (out / "keep.txt").read_text() == "mine"


# ----------------------------------------------------------------------------- --architecture


def _seed000_params() -> dict:
    return json.loads((FIXTURES / "fixtures.json").read_text())["models"]["seed000"]["builder"][
        "params"
    ]


def _upgrade_seed000(capsys, out: Path, params: str, *extra: str) -> tuple[int, str, list[str]]:
    """`mlstrat models upgrade seed000.h5 --out OUT --architecture seed000 --architecture-params`."""
    source = str(FIXTURES / "seed000.h5")
    flags = ["--architecture", "seed000", "--architecture-params", params, *extra]
    return _cli(capsys, "models", "upgrade", source, "--out", str(out), *flags)


@pytest.mark.slow
def test_architecture_forces_the_weights_only_path(tmp_path, capsys):
    out = tmp_path / "forced"
    code, stdout, err = _upgrade_seed000(
        capsys,
        out,
        json.dumps(_seed000_params()),
        "--reference-inputs",
        str(FIXTURES / "seed000_input.npy"),
        "--reference-outputs",
        str(FIXTURES / "seed000_expected.npy"),
    )
    assert code == 0, err
    assert "strategy weights_only" in stdout
    legacy = json.loads((out / "metadata.json").read_text())["legacy"]
    assert legacy["strategy"] == "weights_only"
    assert [name for name, _ in legacy["attempts"]] == ["current", "patched_config"]
    assert all("skipped" in reason for _, reason in legacy["attempts"])


def _first_lstm_kernel_shape(h5_path: Path) -> tuple[int, ...]:
    """Shape of the first LSTM layer's input kernel, read from the .h5 file with h5py."""
    import h5py

    with h5py.File(h5_path, "r") as f:
        group = f["model_weights"]
        layers = [
            n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["layer_names"]
        ]
        first_lstm = group[next(n for n in layers if n.startswith("lstm"))]
        paths: list[str] = []
        first_lstm.visit(paths.append)
        return first_lstm[next(p for p in paths if p.endswith("cell/kernel:0"))].shape


def test_architecture_mismatch_lists_the_layers_of_both(tmp_path, capsys):
    from mlstrat.predictors.legacy import build_seed000

    params = {**_seed000_params(), "lstm_units": [16, 8, 6]}
    out = tmp_path / "x"
    code, _, err = _upgrade_seed000(capsys, out, json.dumps(params))
    assert code == 2 and len(err) == 1 and not out.exists()
    file_part, _, built_part = err[0].partition("architecture layers:")
    assert "file layers:" in file_part and built_part
    # The file's first LSTM kernel (8 conv filters -> 4*12 gates) and the builder's (4*16).
    saved = _first_lstm_kernel_shape(FIXTURES / "seed000.h5")
    built = tuple(build_seed000(**params).get_layer(index=2).weights[0].shape)
    assert saved != built
    assert f"({saved[0]},{saved[1]})" in file_part.split("file layers:")[1]
    assert f"({built[0]},{built[1]})" in built_part

    code, _, err = _upgrade_seed000(capsys, out, "{not json")
    assert code == 2 and len(err) == 1 and "--architecture-params" in err[0]


@pytest.mark.slow
def test_keras_adapter_refuses_scalers_json_missing_from_its_manifest(tmp_path):
    """A Keras adapter's scalers.json is read only when the manifest lists it."""
    from mlstrat.predictors.persistence import load_json
    from mlstrat.predictors.registry import create_predictor

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    y = pd.Series((rng.random(80) > 0.5).astype(float))
    model = create_predictor(
        "lstm",
        window=4,
        units=(4,),
        dropout=0.1,
        batch_norm_layers=1,
        dense_units=4,
        epochs=1,
        batch_size=32,
        seed=0,
    )
    model.fit(X, y)
    model.save(tmp_path / "m")
    load_predictor(tmp_path / "m")  # intact: loads
    manifest = load_json(tmp_path / "m" / "manifest.json")
    del manifest["files"]["scalers.json"]
    dump_json(tmp_path / "m" / "manifest.json", manifest)
    with pytest.raises(ModelLoadError, match="scalers.json is not listed"):
        load_predictor(tmp_path / "m")
