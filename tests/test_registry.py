"""Predictor registry: lazy built-ins, decorator, entry-point plugins, load_predictor dispatch."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstrat.errors import ConfigError, ModelLoadError
from mlstrat.predictors import registry
from mlstrat.predictors.base import Predictor
from mlstrat.predictors.persistence import write_model_dir
from mlstrat.predictors.registry import (
    UnknownPredictorError,
    create_predictor,
    get_predictor,
    list_predictors,
    load_predictor,
    register_predictor,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch):
    """Each test sees a copy of the registry, so test registrations do not leak."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_listing_and_importing_the_registry_loads_no_ml_library():
    code = (
        "import sys, mlstrat.predictors as p; names = p.list_predictors(); "
        "print(names); print('tensorflow' in sys.modules, 'keras' in sys.modules, "
        "'xgboost' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.splitlines()
    names = eval(out[0])  # a printed list of str
    for builtin in (
        "xgboost",
        "lstm",
        "lstm_attention",
        "lstm_regressor",
        "transformer",
        "volatility_lstm",
        "hybrid",
        "legacy_keras",
    ):
        assert builtin in names
    assert out[1] == "False False False"


def test_builtin_resolves_lazily_to_its_class():
    from mlstrat.predictors.xgb import XGBoostPredictor

    assert get_predictor("xgboost") is XGBoostPredictor
    model = create_predictor("xgboost", max_depth=3, n_estimators=7)
    assert isinstance(model, XGBoostPredictor)
    assert model.get_params()["max_depth"] == 3 and model.n_estimators == 7


def test_unknown_name_lists_the_choices():
    with pytest.raises(UnknownPredictorError) as info:
        get_predictor("randomforest")
    assert isinstance(info.value, ConfigError)
    assert "unknown predictor 'randomforest'" in str(info.value)
    assert "xgboost" in info.value.fix and "lstm" in info.value.fix


def test_unimportable_builtin_module_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(registry.BUILTIN_MODULES, "ghost", "mlstrat.predictors._no_such_module")
    with pytest.raises(UnknownPredictorError, match="'ghost' is not available.*_no_such_module"):
        get_predictor("ghost")


def test_bad_constructor_parameter_is_a_config_error():
    with pytest.raises(ConfigError, match="no parameter.*max_dept") as info:
        create_predictor("xgboost", max_dept=3)
    assert "max_depth" in info.value.fix
    with pytest.raises(ConfigError, match="task"):
        create_predictor("xgboost", task="volatility")


class _Constant(Predictor):
    """Predicts the training base rate for every row (used as a plugin in these tests)."""

    task = "direction"

    def __init__(self, shrink: float = 0.0) -> None:
        self.shrink = shrink
        self.window = 1
        self.feature_names: list[str] = []
        self.p_: float | None = None

    def get_params(self):
        return {"shrink": self.shrink}

    def fit(self, X, y, *, validation=None):
        self.feature_names = list(X.columns)
        self.p_ = float(np.nanmean(y)) * (1 - self.shrink) + 0.5 * self.shrink
        return self

    def predict(self, X):
        from mlstrat.predictors.base import Prediction

        p = np.full(len(X), self.p_)
        return Prediction(
            signal=np.where(p >= 0.5, 1.0, -1.0),
            confidence=np.maximum(p, 1 - p),
            proba=np.column_stack([1 - p, p]),
        )

    def save(self, path):
        meta = {"predictor": self.name, "params": self.get_params(), "p": self.p_}
        with write_model_dir(path, meta) as tmp:
            (tmp / "p.json").write_text(json.dumps({"p": self.p_}))

    @classmethod
    def load(cls, path):
        from mlstrat.predictors.persistence import read_model_dir

        meta = read_model_dir(path)
        obj = cls(**meta["params"])
        obj.p_ = json.loads((Path(path) / "p.json").read_text())["p"]
        return obj


def test_decorator_registers_and_refuses_to_hijack_names():
    cls = register_predictor("toy_constant")(type("ToyConstant", (_Constant,), {}))
    assert get_predictor("toy_constant") is cls and cls.name == "toy_constant"
    assert "toy_constant" in list_predictors()
    register_predictor("toy_constant")(cls)  # same class again: harmless
    with pytest.raises(ValueError, match="reserved for the built-in"):
        register_predictor("xgboost")(type("Impostor", (_Constant,), {}))
    with pytest.raises(ValueError, match="already taken"):
        register_predictor("toy_constant")(type("Other", (_Constant,), {}))
    with pytest.raises(TypeError):
        register_predictor("not_a_predictor")(dict)


PLUGIN_SOURCE = textwrap.dedent(
    """
    import numpy as np
    from mlstrat.predictors.base import Prediction, Predictor

    class MeanReverter(Predictor):
        task = "direction"

        def __init__(self, lookback=3):
            self.lookback = lookback
            self.window = 1
            self.feature_names = []

        def get_params(self):
            return {"lookback": self.lookback}

        def fit(self, X, y, *, validation=None):
            self.feature_names = list(X.columns)
            return self

        def predict(self, X):
            p = 1.0 / (1.0 + np.exp(X.iloc[:, 0].to_numpy() * self.lookback))
            return Prediction(
                signal=np.where(p >= 0.5, 1.0, -1.0),
                confidence=np.maximum(p, 1 - p),
                proba=np.column_stack([1 - p, p]),
            )

    NotAPredictor = object
    """
)


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """A tiny installed distribution (module + dist-info with entry points) on sys.path."""
    (tmp_path / "toy_mlstrat_plugin.py").write_text(PLUGIN_SOURCE)
    info = tmp_path / "toy_mlstrat_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: toy-mlstrat-plugin\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[mlstrat.predictors]\n"
        "mean_reverter = toy_mlstrat_plugin:MeanReverter\n"
        "broken_plugin = toy_mlstrat_plugin:NotAPredictor\n"
        "missing_plugin = toy_mlstrat_no_such_module:Thing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield tmp_path
    sys.modules.pop("toy_mlstrat_plugin", None)


def test_entry_point_plugin_is_created_by_name(plugin_dist):
    assert "mean_reverter" in list_predictors()
    model = create_predictor("mean_reverter", lookback=2)
    assert type(model).__module__ == "toy_mlstrat_plugin" and model.name == "mean_reverter"
    X = pd.DataFrame({"ret": [-1.0, 0.0, 0.5]})
    model.fit(X, pd.Series([1.0, 0.0, 0.0]))
    proba_up = model.predict(X).proba[:, 1]
    np.testing.assert_allclose(proba_up, 1 / (1 + np.exp(np.array([-2.0, 0.0, 1.0]))))


def test_broken_entry_points_raise_typed_errors(plugin_dist):
    with pytest.raises(UnknownPredictorError, match="not a Predictor subclass"):
        get_predictor("broken_plugin")
    with pytest.raises(UnknownPredictorError, match="could not be imported"):
        get_predictor("missing_plugin")


def test_load_predictor_dispatches_on_metadata(tmp_path):
    register_predictor("toy_constant")(_Constant)
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=40)})
    y = pd.Series((rng.random(40) < 0.25).astype(float))
    model = _Constant(shrink=0.5).fit(X, y)
    model.save(tmp_path / "m")
    back = load_predictor(tmp_path / "m")
    assert isinstance(back, _Constant) and back.shrink == 0.5
    assert back.p_ == pytest.approx(y.mean() * 0.5 + 0.25)
    np.testing.assert_array_equal(back.predict(X).proba, model.predict(X).proba)


def test_load_predictor_for_an_unavailable_predictor(tmp_path):
    with write_model_dir(tmp_path / "m", {"predictor": "someone_elses_model"}) as tmp:
        (tmp / "w.bin").write_bytes(b"\0")
    with pytest.raises(ModelLoadError, match="'someone_elses_model', which is not available"):
        load_predictor(tmp_path / "m")
