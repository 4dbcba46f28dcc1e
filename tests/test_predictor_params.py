"""Predictor.get_params / set_params / from_params: one rule (the constructor signature) for all."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstrat.errors import ConfigError, ModelLoadError
from mlstrat.predictors.base import Prediction, Predictor
from mlstrat.predictors.persistence import fitted_metadata
from mlstrat.predictors.registry import create_predictor, get_predictor

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "legacy"

#: Non-default settings per adapter, written out by hand (not read from the code under test).
NON_DEFAULT: dict[str, dict] = {
    "xgboost": {"n_estimators": 7, "max_depth": 3, "scale_pos_weight": None, "seed": 5},
    "lstm": {"window": 12, "units": [16, 8, 4], "dropout": [0.1, 0.1, 0.2], "seed": 3},
    "lstm_attention": {"window": 20, "units": [8, 8, 8], "attention_units": 4},
    "lstm_regressor": {"window": 15, "units": [8, 4], "learning_rate": 0.01},
    "transformer": {"window": 10, "n_heads": 2, "n_layers": 1},
    "volatility_lstm": {"memory": 30, "units": [8], "horizon": 2},
}

#: XGBoost's parameters as its old hand-kept list named them, in constructor order.
XGB_PARAMS = [
    "task",
    "n_estimators",
    "max_depth",
    "learning_rate",
    "subsample",
    "colsample_bytree",
    "reg_alpha",
    "reg_lambda",
    "min_child_weight",
    "gamma",
    "scale_pos_weight",
    "early_stopping_rounds",
    "validation_fraction",
    "validation_gap",
    "tree_method",
    "max_bin",
    "n_jobs",
    "seed",
    "on_missing",
]


def _tiny_frame(n: int = 300) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    index = pd.date_range("2025-01-01", periods=n, freq="1h", tz="UTC")
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)}, index=index)
    y = pd.Series((X["a"] + 0.5 * rng.normal(size=n) > 0).astype(float), name="direction_1")
    return X, y


def test_xgboost_params_are_its_constructor_arguments_in_order():
    model = create_predictor("xgboost", **NON_DEFAULT["xgboost"])
    params = model.get_params()
    assert list(params) == XGB_PARAMS
    assert params["max_depth"] == 3 and params["scale_pos_weight"] is None
    assert params["learning_rate"] == 0.05  # defaults are reported too


@pytest.mark.parametrize("name", sorted(NON_DEFAULT))
def test_params_report_what_was_given_and_rebuild_an_equal_predictor(name):
    model = create_predictor(name, **NON_DEFAULT[name])
    params = model.get_params()
    for key, value in NON_DEFAULT[name].items():
        assert params[key] == value, key
    assert not any(isinstance(v, tuple) for v in params.values())  # JSON-shaped, as saved
    json.dumps(params)
    again = type(model)(**params)
    assert again.get_params() == params


def test_hybrid_params_are_the_member_specs_given():
    members = [("xgboost", {"max_depth": 2}), ("xgboost", {"max_depth": 4, "seed": 9})]
    hybrid = create_predictor("hybrid", members=members, weights=[0.25, 0.75])
    assert hybrid.get_params() == {
        "members": members,
        "weights": [0.25, 0.75],
        "targets": None,
    }
    again = type(hybrid)(**hybrid.get_params())
    assert [m.get_params() for m in again.predictors_] == [
        m.get_params() for m in hybrid.predictors_
    ]


def test_set_params_changes_validates_and_drops_the_fitted_model():
    X, y = _tiny_frame()
    model = create_predictor("xgboost", n_estimators=5, max_depth=2, early_stopping_rounds=None)
    model.fit(X, y)
    assert model.booster_ is not None
    assert model.set_params(max_depth=3) is model
    assert model.max_depth == 3 and model.n_estimators == 5
    assert model.booster_ is None and model.feature_names == []
    with pytest.raises(ModelLoadError, match="not fitted"):
        model.predict(X)
    refit = model.fit(X, y).predict(X)
    fresh = create_predictor("xgboost", n_estimators=5, max_depth=3, early_stopping_rounds=None)
    np.testing.assert_array_equal(refit.confidence, fresh.fit(X, y).predict(X).confidence)


def test_set_params_rebuilds_derived_settings():
    lstm = create_predictor("lstm", window=12)
    lstm.set_params(window="30", units=[8, 4, 2], dropout=0.2)
    assert lstm.window == 30 and lstm.units == (8, 4, 2) and lstm.dropout == (0.2, 0.2, 0.2)
    hybrid = create_predictor("hybrid", members=[("xgboost", {}), ("xgboost", {})])
    hybrid.set_params(members=[("xgboost", {"max_depth": 2})], weights=[1.0])
    assert [m.max_depth for m in hybrid.predictors_] == [2]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"max_dpeth": 3}, r"has no parameter\(s\) max_dpeth.*valid parameters: task, "),
        ({"task": "sideways"}, "task must be one of"),
        ({"validation_fraction": 1.5}, r"validation_fraction must be in \[0, 1\)"),
        ({"max_depth": 3, "on_missing": "guess"}, "on_missing"),
    ],
)
def test_bad_set_params_is_a_config_error_and_changes_nothing(change, match):
    X, y = _tiny_frame()
    model = create_predictor("xgboost", n_estimators=5, max_depth=2, early_stopping_rounds=None)
    model.fit(X, y)
    before = model.predict(X).confidence
    with pytest.raises(ConfigError, match=match):
        model.set_params(**change)
    assert model.max_depth == 2 and model.booster_ is not None
    np.testing.assert_array_equal(model.predict(X).confidence, before)


def test_a_constructor_type_error_becomes_a_config_error():
    with pytest.raises(ConfigError, match="invalid parameters for predictor 'lstm'") as info:
        get_predictor("lstm").from_params(units=[8, "many", 2])
    assert "valid parameters: window, units, dropout" in str(info.value)


class _Forgetful(Predictor):
    """A third-party adapter that keeps `alpha` under another name."""

    name = "forgetful"

    def __init__(self, alpha: float = 1.0, **extra: float) -> None:
        self._alpha = alpha
        self.extra = extra
        self.feature_names: list[str] = []

    def predict(self, X):
        return Prediction(np.zeros(len(X)), np.full(len(X), 0.5))


def test_a_parameter_not_kept_is_named_with_the_fix():
    with pytest.raises(ConfigError, match=r"does not keep its constructor parameter 'alpha'") as e:
        _Forgetful(alpha=2.0).get_params()
    assert "self.alpha" in e.value.fix and e.value.param == "alpha"
    with pytest.raises(ConfigError, match="alpha"):  # and saving says so instead of writing
        fitted_metadata(_Forgetful(), "model.bin")


def test_keyword_catch_all_takes_any_name_but_is_not_a_parameter():
    assert _Forgetful.param_names() == ("alpha",)
    assert _Forgetful.from_params(alpha=2.0, beta=3.0).extra == {"beta": 3.0}


def test_legacy_saves_only_json_safe_params_and_keeps_trust_out(tmp_path):
    from mlstrat.predictors.legacy import LegacyKerasPredictor

    names = [f"f{i}" for i in range(5)]
    model = LegacyKerasPredictor(FIXTURES / "seq_lstm.h5", feature_names=names, symbol="BTC")
    params = model.get_params()
    assert params["trust_saved_model"] is False and params["architecture"] is None
    assert params["output"] == "proba_up"  # "auto" resolved from the last layer
    model.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "metadata.json").read_text())["params"]
    assert saved == {
        "source": str(FIXTURES / "seq_lstm.h5"),
        "feature_names": names,
        "output": "proba_up",
        "return_scale": None,
        "on_missing": "error",
        "symbol": "BTC",
    }
    again = LegacyKerasPredictor.load(tmp_path / "m")
    assert again.get_params() == params
