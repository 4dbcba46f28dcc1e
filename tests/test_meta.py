"""The meta predictor: what its inner model learns (the outcome of the primary's side), that
training sides are out of sample (cross-fitted with purging), its prediction layout, a
save/load round trip, its faults, and its configuration (`primary:` resolution)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstrat.config import parse_config
from mlstrat.errors import ConfigError, DataError, IntegrityError, ModelLoadError
from mlstrat.predictors.base import OUTCOME_COLUMNS, Prediction, Predictor
from mlstrat.predictors.meta import MetaPredictor
from mlstrat.predictors.registry import load_predictor, register_predictor
from mlstrat.run import walkforward_options

REPO = Path(__file__).resolve().parents[1]
XGB = {"n_estimators": 20, "max_depth": 2, "early_stopping_rounds": 5, "n_jobs": 1}


def frame(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features (a momentum-like `signal_feature`, `quality`, noise) and labels: direction_1,
    and whether a long / a short pays: when `quality` > 0 (a short also needs noise > -0.5)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    X = pd.DataFrame(
        {"signal_feature": rng.normal(size=n), "quality": rng.normal(size=n),
         "noise": rng.normal(size=n)},
        index=index,
    )  # fmt: skip
    good = X["quality"].to_numpy() > 0
    up = X["signal_feature"].to_numpy() > 0
    short_ok = good & (X["noise"].to_numpy() > -0.5)
    y = pd.DataFrame(
        {"direction_1": up.astype(float),
         "pays_long": good.astype(float), "pays_short": short_ok.astype(float)},
        index=index,
    )  # fmt: skip
    return X, y


class Recorder(Predictor):
    """A direction 'model' that records the rows it learned from and predicts P(up) from the
    sign of `signal_feature` (confidence 0.7)."""

    fits: list = []

    def __init__(self, tag: str = "r") -> None:
        self.tag = tag
        self.feature_names: list[str] = []

    def fit(self, X, y, *, validation=None, sample_weight=None):
        labels = y if isinstance(y, pd.Series) else y.iloc[:, 0]
        Recorder.fits.append(
            {"X": X, "y": labels, "labelled": np.flatnonzero(labels.notna().to_numpy()),
             "weight": sample_weight}
        )  # fmt: skip
        self.feature_names = list(X.columns)
        return self

    def predict(self, X) -> Prediction:
        p = np.where(X["signal_feature"].to_numpy() > 0, 0.7, 0.3)
        return Prediction(np.where(p > 0.5, 1.0, -1.0), np.maximum(p, 1 - p),
                          np.column_stack([1 - p, p]))  # fmt: skip


register_predictor("meta_test_recorder")(Recorder)


def test_inner_learns_whether_the_primary_side_pays_out_of_sample() -> None:
    X, y = frame()
    Recorder.fits = []
    meta = MetaPredictor(
        primary=("meta_test_recorder", {"tag": "p"}), primary_target="direction_1",
        inner=Recorder("inner"), cross_fit=3, gap=4,
    )  # fmt: skip
    weights = np.linspace(0.5, 1.5, len(X))
    meta.fit(X, y, sample_weight=weights)
    blocks, final, inner = Recorder.fits[:3], Recorder.fits[3], Recorder.fits[4]
    n = len(X)
    for block, fit in zip(np.array_split(np.arange(n), 3), blocks, strict=True):
        # each block's sides come from a primary that never saw the block or 4 rows around it
        held = np.arange(max(0, block[0] - 4), min(n, block[-1] + 5))
        assert not np.isin(fit["labelled"], held).any()
        assert set(fit["labelled"]) == set(np.setdiff1d(np.arange(n), held))
    assert len(final["labelled"]) == n  # then refitted on every row
    # the inner model: features + side + primary confidence; label = the side's outcome
    side = np.where(X["signal_feature"] > 0, 1.0, -1.0)
    assert list(inner["X"].columns) == [*X.columns, "meta_side", "meta_primary_confidence"]
    np.testing.assert_array_equal(inner["X"]["meta_side"], side)
    expected = np.where(side > 0, y["pays_long"], y["pays_short"])
    np.testing.assert_array_equal(inner["y"].to_numpy(), expected)
    np.testing.assert_array_equal(inner["weight"], weights)


def test_rule_primary_and_the_prediction_layout() -> None:
    X, y = frame()
    for rule, sign in (("rule:signal_feature", 1.0), ("rule:-signal_feature", -1.0)):
        meta = MetaPredictor(primary=rule, inner=("xgboost", XGB)).fit(X, y)
        pred = meta.predict(X)
        side = sign * np.sign(X["signal_feature"].to_numpy())
        np.testing.assert_array_equal(pred.signal, side)
        p = pred.confidence
        np.testing.assert_allclose(pred.proba[:, 2], np.where(side > 0, p, 0.0))
        np.testing.assert_allclose(pred.proba[:, 0], np.where(side < 0, p, 0.0))
        np.testing.assert_allclose(pred.proba[:, 1], 1 - p)
        np.testing.assert_array_equal(pred.extra["primary_side"], side)
        # trades pay only when `quality` > 0: the inner model learns it (in sample)
        good = X["quality"].to_numpy() > 0
        assert p[good].mean() > 0.65 > 0.3 > p[~good].mean()
    X.iloc[:5, 0] = 0.0  # the rule proposes no side: no confidence, never a trade
    pred = meta.predict(X)
    assert (pred.signal[:5] == 0).all() and np.isnan(pred.confidence[:5]).all()
    assert pred.proba[:5].tolist() == [[0.0, 1.0, 0.0]] * 5


def test_save_load_round_trip_predicts_the_same(tmp_path) -> None:
    X, y = frame(seed=1)
    meta = MetaPredictor(primary=("xgboost", XGB), primary_target="direction_1",
                         inner=("xgboost", XGB), seed=7)  # fmt: skip
    meta.fit(X.iloc[:480], y.iloc[:480], validation=(X.iloc[480:], y.iloc[480:]))
    meta.save(tmp_path / "m")
    back = load_predictor(tmp_path / "m")
    assert isinstance(back, MetaPredictor) and back.feature_names == meta.feature_names
    a, b = meta.predict(X), back.predict(X)
    np.testing.assert_array_equal(a.proba, b.proba)
    np.testing.assert_array_equal(a.signal, b.signal)
    assert back.primary_.seed == 7 == back.inner_.seed  # the seed reached both members
    assert set(MetaPredictor.param_names()) <= set(meta.get_params())
    # a member file changed after saving is caught by the manifest
    (tmp_path / "m" / "members" / "inner" / "model.ubj").write_bytes(b"garbage")
    with pytest.raises((IntegrityError, ModelLoadError)):
        load_predictor(tmp_path / "m")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"primary": "momentum"}, ConfigError, "neither a"),
        ({"primary": ("xgboost",)}, ConfigError, "not a \\(name, params\\) pair"),
        ({"primary": ("meta", {})}, ConfigError, "its own primary"),
        ({"primary": ("lstm_regressor", {})}, ConfigError, "propose sides"),
        ({"inner": ("xgboost", {"task": "three_class"})}, ConfigError, "binary"),
        ({"cross_fit": 0}, ConfigError, "cross_fit"),
        ({"gap": -1}, ConfigError, "gap"),
    ],
)
def test_bad_parameters_are_config_errors(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        MetaPredictor(**kwargs)


def test_fit_faults_name_what_is_missing() -> None:
    X, y = frame()
    meta = MetaPredictor(primary="rule:signal_feature", inner=("xgboost", XGB))
    with pytest.raises(DataError, match="DataFrame of labels and trade outcomes"):
        meta.fit(X, y["direction_1"])
    with pytest.raises(DataError, match="pays_short"):
        meta.fit(X, y.drop(columns="pays_short"))
    with pytest.raises(DataError, match="features lack") as info:
        MetaPredictor(primary="rule:absent", inner=("xgboost", XGB)).fit(X, y)
    assert info.value.column == "absent"
    with pytest.raises(DataError, match="primary's target column 'direction_4'"):
        MetaPredictor(primary=("xgboost", XGB), primary_target="direction_4").fit(X, y)
    with pytest.raises(ModelLoadError, match="not fitted"):
        meta.predict(X)
    assert OUTCOME_COLUMNS == ("pays_long", "pays_short")


# ---------------------------------------------------------------- configuration


def raw_config(**meta) -> dict:
    return {
        "name": "t",
        "data": {"files": [{"path": str(REPO / "datasets" / "BTCUSDT-1h.parquet")}]},
        "features": {"set": "core", "targets": ["direction:1", "triple_barrier:24:2:1"]},
        "predictors": [
            {"name": "base", "predictor": "xgboost", "params": {"max_depth": 3}},
            {"name": "judge", "predictor": "meta", "target": "triple_barrier_24", **meta},
        ],
        "strategy": {"class": "mlstrat.strategy:MLStrategy"},
        "broker": {"commission": 0.002, "slippage": 0.001},
    }


def parse(raw: dict):
    return parse_config(raw, base=REPO, source=REPO / "x.yaml")


def test_primary_names_another_entry_and_the_run_resolves_it() -> None:
    cfg = parse(raw_config(primary="base", thresholds={"method": "net_pnl"},
                           sample_weights="uniqueness", weight_decay=0.5))  # fmt: skip
    judge = cfg.predictor("judge")
    assert judge.fit_targets == ("direction_1",) and judge.task == "three_class"
    options = walkforward_options(cfg, judge)
    assert options["params"]["primary"] == ["xgboost", {"max_depth": 3}]
    assert options["params"]["primary_target"] == "direction_1"
    # the broker's costs judge the trades unless the thresholds give their own
    assert options["thresholds"] == {"method": "net_pnl", "commission": 0.002, "slippage": 0.001}
    assert (options["sample_weights"], options["weight_decay"]) == ("uniqueness", 0.5)
    assert parse(cfg.to_dict()).to_dict() == cfg.to_dict()  # the resolved form parses back
    rule = parse(raw_config(primary="rule:-rsi_14"))
    assert walkforward_options(rule, rule.predictor("judge"))["params"]["primary"] == (
        "rule:-rsi_14"
    )
    plain = walkforward_options(cfg, cfg.predictor("base"))
    assert plain["thresholds"] == {} and plain["params"] == {"max_depth": 3}


@pytest.mark.parametrize(
    "meta, key, match",
    [
        ({}, "predictors[1].primary", "missing"),
        ({"primary": "judge"}, "predictors[1].primary", "base"),
        ({"primary": "nothing"}, "predictors[1].primary", "base"),
        ({"primary": "base", "params": {"primary_target": "direction_1"}},
         "predictors[1].primary", "given twice"),
        ({"primary": "base", "sample_weights": "equal"}, "predictors[1].sample_weights",
         "uniqueness"),
        ({"primary": "base", "weight_decay": 2}, "predictors[1].weight_decay", "outside"),
        ({"primary": "base", "thresholds": {"method": "sharpe"}},
         "predictors[1].thresholds.method", "net_pnl"),
    ],
)  # fmt: skip
def test_meta_configuration_errors_name_their_key(meta, key, match) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        parse(raw_config(**meta))
    assert str(info.value).startswith(key) or key in str(info.value)


def test_only_a_meta_predictor_has_a_primary() -> None:
    raw = raw_config(primary="base")
    raw["predictors"][0]["primary"] = "judge"
    with pytest.raises(ConfigError, match="only a meta predictor"):
        parse(raw)
