"""Model directories (manifest, atomic write, format version), JSON scalers, feature alignment."""

from __future__ import annotations

import hashlib
import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import preprocessing as skp

from mlstrat.errors import ConfigError, IntegrityError, ModelLoadError, SchemaError
from mlstrat.predictors.compat import align_features, check_no_targets, feature_matrix
from mlstrat.predictors.persistence import (
    FORMAT_VERSION,
    build_manifest,
    dump_json,
    load_json,
    read_model_dir,
    to_jsonable,
    training_data_info,
    verify_model_dir,
    write_model_dir,
)
from mlstrat.predictors.scaling import (
    MinMaxScaler,
    StandardScaler,
    load_scalers,
    save_scalers,
    scaler_from_dict,
)

# --------------------------------------------------------------------------- model directories


def _write_sample(path, payload=b"weights-v1", extra_meta=None):
    meta = {"predictor": "toy", "params": {"alpha": 0.5}}
    with write_model_dir(path, meta) as tmp:
        (tmp / "model.bin").write_bytes(payload)
        (tmp / "members" / "000_a").mkdir(parents=True)
        (tmp / "members" / "000_a" / "inner.json").write_text('{"x": 1}')
        meta.update(extra_meta or {})  # metadata is read at exit, so late additions count
    return path


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir())


def test_write_model_dir_writes_metadata_and_recursive_manifest(tmp_path):
    path = _write_sample(tmp_path / "m", extra_meta={"validation_metrics": {"auc": 0.6}})
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["predictor"] == "toy"
    assert meta["format_version"] == FORMAT_VERSION == 1
    assert meta["validation_metrics"] == {"auc": 0.6}
    assert meta["versions"]["mlstrat"] and meta["versions"]["numpy"] == np.__version__
    assert pd.Timestamp(meta["created_at"]).tzinfo is not None

    manifest = json.loads((path / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.bin", "members/000_a/inner.json", "metadata.json"}
    for rel, entry in manifest["files"].items():
        data = (path / rel).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert _siblings(path) == ["m"]  # no temporary directory left behind
    assert read_model_dir(path)["params"] == {"alpha": 0.5}


def test_exception_inside_block_leaves_no_partial_directory(tmp_path):
    path = tmp_path / "m"
    with (
        pytest.raises(RuntimeError, match="boom"),
        write_model_dir(path, {"predictor": "toy"}) as t,
    ):
        (t / "model.bin").write_bytes(b"half")
        raise RuntimeError("boom")
    assert not path.exists()
    assert _siblings(path) == []


def test_exception_keeps_existing_model_untouched(tmp_path):
    path = _write_sample(tmp_path / "m", payload=b"old")
    before = {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
    with pytest.raises(RuntimeError), write_model_dir(path, {"predictor": "toy"}) as tmp:
        (tmp / "model.bin").write_bytes(b"new")
        raise RuntimeError("crash mid-save")
    assert {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()} == before
    assert _siblings(path) == ["m"]


def test_overwrite_replaces_model_and_removes_old_copy(tmp_path):
    path = _write_sample(tmp_path / "m", payload=b"old")
    _write_sample(path, payload=b"new-weights")
    assert (path / "model.bin").read_bytes() == b"new-weights"
    assert _siblings(path) == ["m"]
    read_model_dir(path)


def test_refuses_to_replace_a_directory_that_is_not_a_model(tmp_path):
    path = tmp_path / "models"
    path.mkdir()
    (path / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not an mlstrat model directory"):  # noqa: SIM117
        with write_model_dir(path, {"predictor": "toy"}):
            pass
    assert (path / "precious.txt").read_text() == "keep me"


def test_caller_may_not_write_reserved_files(tmp_path):
    with pytest.raises(ValueError, match="manifest.json"):  # noqa: SIM117
        with write_model_dir(tmp_path / "m", {"predictor": "toy"}) as tmp:
            (tmp / "manifest.json").write_text("{}")
    assert not (tmp_path / "m").exists()


def test_tampered_file_is_an_integrity_error(tmp_path):
    path = _write_sample(tmp_path / "m", payload=b"weights-v1")
    (path / "model.bin").write_bytes(b"weights-v2")  # same size, different content
    with pytest.raises(IntegrityError) as info:
        read_model_dir(path)
    msg = str(info.value)
    assert "model.bin" in msg and "sha256" in msg and "retrain" in msg


def test_truncated_file_is_an_integrity_error(tmp_path):
    path = _write_sample(tmp_path / "m")
    (path / "members" / "000_a" / "inner.json").write_text('{"x"')
    with pytest.raises(IntegrityError, match=r"inner\.json.*size 4 bytes differs.*manifest.s 8"):
        read_model_dir(path)


def test_missing_file_and_missing_manifest(tmp_path):
    path = _write_sample(tmp_path / "m")
    (path / "model.bin").unlink()
    with pytest.raises(IntegrityError, match=r"model\.bin.*missing"):
        read_model_dir(path)
    (path / "manifest.json").unlink()
    with pytest.raises(IntegrityError, match="manifest.json is missing"):
        read_model_dir(path)
    with pytest.raises(ModelLoadError, match="no model directory"):
        read_model_dir(tmp_path / "nowhere")


def test_edited_metadata_is_detected(tmp_path):
    path = _write_sample(tmp_path / "m")
    meta = json.loads((path / "metadata.json").read_text())
    meta["params"]["alpha"] = 9.0
    (path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(IntegrityError, match="metadata.json"):
        read_model_dir(path)


def test_extra_files_are_tolerated_and_reported(tmp_path):
    path = _write_sample(tmp_path / "m")
    (path / "NOTES.txt").write_text("trained for the demo")
    report = verify_model_dir(path)
    assert report.extra_files == ["NOTES.txt"]
    assert sorted(report.files_checked) == [
        "members/000_a/inner.json",
        "metadata.json",
        "model.bin",
    ]


def test_newer_format_version_names_the_upgrade(tmp_path):
    path = _write_sample(tmp_path / "m")
    meta = json.loads((path / "metadata.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    dump_json(path / "metadata.json", meta)
    dump_json(path / "manifest.json", build_manifest(path))  # consistent manifest: only format
    with pytest.raises(IntegrityError) as info:
        read_model_dir(path)
    msg = str(info.value)
    assert f"model format {FORMAT_VERSION + 1}" in msg and "upgrade mlstrat" in msg


def test_manifest_paths_cannot_escape_the_directory(tmp_path):
    path = _write_sample(tmp_path / "m")
    (tmp_path / "outside").write_text("x")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["../outside"] = {"size": 1, "sha256": hashlib.sha256(b"x").hexdigest()}
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="unsafe path"):
        read_model_dir(path)


def test_garbage_json_is_an_integrity_error(tmp_path):
    path = _write_sample(tmp_path / "m")
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        read_model_dir(path)


def test_json_helpers_handle_numpy_nan_and_timestamps(tmp_path):
    obj = {
        "i": np.int64(3),
        "f": np.float32(0.5),
        "nan": float("nan"),
        "inf": np.inf,
        "arr": np.array([1.0, np.nan, 2.5]),
        "b": np.bool_(True),
        "ts": pd.Timestamp("2025-01-02 03:00", tz="UTC"),
        "t": (1, 2),
    }
    dump_json(tmp_path / "x.json", obj)
    text = (tmp_path / "x.json").read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    back = load_json(tmp_path / "x.json")
    assert back == {
        "i": 3,
        "f": 0.5,
        "nan": None,
        "inf": None,
        "arr": [1.0, None, 2.5],
        "b": True,
        "ts": "2025-01-02T03:00:00+00:00",
        "t": [1, 2],
    }
    assert np.isnan(np.asarray(back["arr"], dtype=float)[1])
    with pytest.raises(TypeError):
        to_jsonable(object())


def test_training_data_info_hash_tracks_content():
    idx = pd.date_range("2025-01-01", periods=4, freq="h", tz="UTC")
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]}, index=idx)
    y = pd.Series([0.0, 1.0, 1.0, np.nan], index=idx, name="direction_1")
    info = training_data_info(X, y)
    assert info["n_rows"] == 4 and info["target"] == "direction_1"
    assert info["train_start"] == idx[0] and info["train_end"] == idx[-1]
    X2 = X.copy()
    X2.iloc[2, 0] = 3.5
    assert training_data_info(X2, y)["data_sha256"] != info["data_sha256"]
    assert training_data_info(X.copy(), y.copy())["data_sha256"] == info["data_sha256"]


# --------------------------------------------------------------------------- scalers


@pytest.fixture
def messy():
    rng = np.random.default_rng(7)
    X = rng.normal(3.0, 2.0, size=(300, 5))
    X[::7, 0] = np.nan  # scattered NaN
    X[:, 2] = 4.2  # constant column
    X[:, 3] = np.nan  # all-NaN column
    X[:, 4] *= 1e6
    return X


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (StandardScaler(), skp.StandardScaler()),
        (StandardScaler(with_mean=False), skp.StandardScaler(with_mean=False)),
        (MinMaxScaler(), skp.MinMaxScaler()),
        (MinMaxScaler(feature_range=(-1.0, 2.0)), skp.MinMaxScaler(feature_range=(-1.0, 2.0))),
    ],
)
def test_scalers_match_scikit_learn(messy, ours, theirs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.fit(messy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the all-NaN column must not warn in ours
        ours.fit(messy)
    new = messy[:50] * 1.3 + 0.1
    np.testing.assert_allclose(ours.transform(new), theirs.transform(new), rtol=1e-12)
    np.testing.assert_allclose(
        ours.inverse_transform(ours.transform(new)), new, rtol=1e-12, atol=1e-9
    )
    assert np.all(np.isnan(ours.transform(new)[:, 3]))
    assert np.all(np.isfinite(ours.transform(new)[:, 2]))


def test_standard_scaler_hand_numbers():
    s = StandardScaler().fit(np.array([[1.0], [2.0], [3.0], [4.0], [np.nan]]))
    assert s.mean_[0] == 2.5
    assert math.isclose(s.scale_[0], math.sqrt(1.25))  # population std of 1..4
    assert math.isclose(s.transform(np.array([[5.0]]))[0, 0], 2.5 / math.sqrt(1.25))
    m = MinMaxScaler().fit(np.array([[10.0], [20.0], [30.0]]))
    assert m.transform(np.array([[25.0]]))[0, 0] == 0.75


def test_constant_column_maps_to_zero_and_range_start():
    X = np.array([[5.0, 1.0], [5.0, 2.0]])
    assert StandardScaler().fit(X).transform(X)[:, 0].tolist() == [0.0, 0.0]
    assert MinMaxScaler(feature_range=(-1, 1)).fit(X).transform(X)[:, 0].tolist() == [-1.0, -1.0]


def test_one_dimensional_targets_round_trip():
    y = np.array([0.1, 0.3, 0.2])
    s = MinMaxScaler().fit(y)
    out = s.transform(y)
    assert out.shape == (3,)
    np.testing.assert_allclose(out, [0.0, 1.0, 0.5])
    np.testing.assert_allclose(s.inverse_transform(out), y)


def test_scalers_json_round_trip_is_exact(tmp_path, messy):
    sx = StandardScaler().fit(messy)
    sy = MinMaxScaler(feature_range=(0, 2), clip=True).fit(messy[:, :1])
    save_scalers(tmp_path / "scalers.json", {"x": sx, "y": sy})
    raw = json.loads((tmp_path / "scalers.json").read_text())  # plain JSON, no pickle
    assert raw["scalers"]["x"]["type"] == "standard" and raw["scalers"]["x"]["mean"][3] is None
    back = load_scalers(tmp_path / "scalers.json")
    assert isinstance(back["x"], StandardScaler) and isinstance(back["y"], MinMaxScaler)
    np.testing.assert_array_equal(back["x"].transform(messy), sx.transform(messy))
    np.testing.assert_array_equal(back["y"].transform(messy[:, :1]), sy.transform(messy[:, :1]))
    assert back["y"].clip and back["y"].feature_range == (0.0, 2.0)


def test_scaler_errors():
    s = StandardScaler().fit(np.zeros((4, 3)))
    with pytest.raises(SchemaError, match="fitted on 3 columns but got 2"):
        s.transform(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="not fitted"):
        StandardScaler().transform(np.zeros((1, 2)))
    with pytest.raises(SchemaError, match="unknown scaler type 'robust'"):
        scaler_from_dict({"type": "robust"})
    with pytest.raises(SchemaError, match="incomplete"):
        scaler_from_dict({"type": "minmax", "feature_range": [0, 1]})
    with pytest.raises(ValueError, match="low < high"):
        MinMaxScaler(feature_range=(1, 0))


# --------------------------------------------------------------------------- feature alignment


@pytest.fixture
def frame():
    idx = pd.date_range("2025-01-01", periods=3, freq="h", tz="UTC")
    return pd.DataFrame({"b": [1.0, 2.0, 3.0], "extra": [9.0] * 3, "a": [4.0, 5.0, 6.0]}, index=idx)


def test_align_restores_order_and_ignores_extras(frame):
    out = align_features(frame, ["a", "b"])
    assert list(out.columns) == ["a", "b"]
    assert out["a"].tolist() == [4.0, 5.0, 6.0]
    assert out.index.equals(frame.index)


def test_missing_features_listed_all_at_once(frame):
    with pytest.raises(SchemaError) as info:
        align_features(frame, ["a", "rsi_14", "b", "macd"])
    msg = str(info.value)
    assert "2 feature(s)" in msg and "rsi_14, macd" in msg
    assert "on_missing='zero'" in msg


def test_fill_policies(frame):
    zero = align_features(frame, ["a", "z"], on_missing="zero")
    assert zero["z"].tolist() == [0.0, 0.0, 0.0]
    nan = align_features(frame, ["z", "a"], on_missing="nan")
    assert list(nan.columns) == ["z", "a"] and nan["z"].isna().all()
    mean = align_features(frame, ["a", "z"], on_missing="mean", means={"z": 1.5})
    assert mean["z"].tolist() == [1.5, 1.5, 1.5]
    with pytest.raises(SchemaError, match="no training mean"):
        align_features(frame, ["a", "z"], on_missing="mean", means={})
    with pytest.raises(SchemaError, match="unknown on_missing"):
        align_features(frame, ["a"], on_missing="guess")


def test_targets_can_never_be_features(frame):
    for name in ("direction_1", "three_class_4", "forward_return_24", "forward_volatility_24"):
        with pytest.raises(SchemaError, match="target column"):
            check_no_targets(["a", name])
    tagged = frame.copy()
    tagged.attrs["mlstrat"] = {"roles": {"b": "target", "a": "feature"}}
    with pytest.raises(SchemaError, match="target column.*: b"):
        align_features(tagged, ["a", "b"])


def test_alignment_input_errors(frame):
    with pytest.raises(SchemaError, match="DataFrame"):
        align_features(frame.to_numpy(), ["a"])
    dup = pd.concat([frame[["a"]], frame[["a"]]], axis=1)
    with pytest.raises(SchemaError, match="more than once"):
        align_features(dup, ["a"])
    text = frame.assign(s=["x", "y", "z"])
    with pytest.raises(SchemaError, match="non-numeric") as info:
        feature_matrix(text[["a", "s"]])
    assert info.value.column == "s"


def test_training_means_equal_nanmean_and_stay_quiet_on_empty_columns():
    import warnings

    from mlstrat.predictors.compat import training_means

    values = np.array([[1.0, np.nan, 3.0], [2.0, np.nan, np.nan], [4.5, np.nan, 5.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        means = training_means(["a", "b", "c"], values)
    assert means["a"] == np.mean([1.0, 2.0, 4.5]) and means["c"] == 4.0
    assert np.isnan(means["b"])
