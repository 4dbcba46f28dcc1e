"""Targets look ahead by design, are computed as documented, and are never features."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlstrat.errors import ConfigError
from mlstrat.features import (
    build_feature_feed,
    direction,
    feature_columns,
    forward_return,
    forward_volatility,
    parse_target,
    parse_targets,
    target_columns,
    three_class,
)
from mlstrat.features.targets import (
    KINDS,
    TARGET_PREFIXES,
    Target,
    column_roles,
    horizon_of,
    is_target_name,
    task_targets,
)

CLOSE = [100.0, 101.0, 100.5, 100.0, 103.0, 102.0]


def _bars(close=CLOSE) -> pd.DataFrame:
    close = np.asarray(close, dtype=float)
    idx = pd.date_range("2024-01-01", periods=len(close), freq="1h", tz="UTC", name="timestamp")
    bars = pd.DataFrame(
        {"open": close, "high": close * 1.001, "low": close * 0.999, "close": close, "volume": 1.0},
        index=idx,
    )
    bars.attrs = {"symbol": "TEST", "timeframe": "1h"}
    return bars


def test_forward_return_and_direction_by_hand():
    bars = _bars()
    fr = forward_return(1)(bars)
    expected = [0.01, 100.5 / 101 - 1, 100 / 100.5 - 1, 0.03, 102 / 103 - 1, np.nan]
    np.testing.assert_allclose(fr, expected, equal_nan=True)
    np.testing.assert_array_equal(direction(1)(bars), [1, 0, 0, 1, 0, np.nan])
    # 2-bar horizon, 0.6% threshold: r = +0.5%, -0.990%, +2.488%, +2.0%, NaN, NaN
    np.testing.assert_array_equal(direction(2, 0.006)(bars), [0, 0, 1, 1, np.nan, np.nan])
    np.testing.assert_array_equal(direction(2, 0.004)(bars), [1, 0, 1, 1, np.nan, np.nan])
    assert direction(2)(bars).name == "direction_2"


def test_three_class_by_hand():
    bars = _bars()
    got = three_class(1, 0.006)(bars)
    # r = +1.0% BUY, -0.495% HOLD, -0.4975% HOLD, +3% BUY, -0.97% SELL, NaN
    np.testing.assert_array_equal(got, [2, 1, 1, 2, 0, np.nan])
    assert got.name == "three_class_1"


def test_forward_volatility_by_hand():
    bars = _bars()
    lr = np.diff(np.log(CLOSE))
    got = forward_volatility(2)(bars)
    for t in range(4):
        assert got.iloc[t] == pytest.approx(math.sqrt(lr[t] ** 2 + lr[t + 1] ** 2))
    assert got.iloc[4:].isna().all()
    assert forward_volatility(1)(bars).iloc[0] == pytest.approx(abs(lr[0]))


def test_spec_parsing_and_collisions():
    assert parse_target("direction:1") == direction(1)
    assert parse_target("direction:4:0.002") == direction(4, 0.002)
    assert parse_target("three_class:4:0.003") == three_class(4, 0.003)
    assert parse_target("forward_return:24").name == "forward_return_24"
    assert parse_target("forward_volatility:24").name == "forward_volatility_24"
    for bad in (
        "direction",
        "direction:x",
        "direction:0",
        "up:1",
        "forward_return:4:0.1",
        "three_class:4",
    ):
        with pytest.raises(ConfigError):
            parse_target(bad)
    with pytest.raises(ConfigError, match="both be column 'direction_4'"):
        parse_targets(["direction:4", "direction:4:0.002"])


def test_targets_are_forward_looking_and_marked_as_targets():
    bars = _bars(100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 300))))
    feed = build_feature_feed(bars, "core", targets=("direction:1", "three_class:4:0.003"))
    assert target_columns(feed) == ["direction_1", "three_class_4"]
    assert not {"direction_1", "three_class_4"} & set(feature_columns(feed))
    roles = feed.attrs["mlstrat"]["roles"]
    assert (
        roles["direction_1"] == "target"
        and roles["rsi_14"] == "feature"
        and roles["close"] == "ohlcv"
    )
    # the label at t is the sign of the NEXT bar's move
    up_next = (
        (bars["close"].shift(-1) > bars["close"])
        .astype(float)
        .where(bars["close"].shift(-1).notna())
    )
    np.testing.assert_array_equal(feed["direction_1"], up_next)
    assert (
        feed["three_class_4"].iloc[-4:].isna().all()
        and feed["three_class_4"].iloc[:-4].notna().all()
    )


def test_target_names_parse_back_to_their_targets():
    for kind in KINDS:
        for h in (1, 4, 24):
            assert Target.from_name(f"{kind}_{h}") == Target(kind, h)
    spec = parse_target("three_class:4:0.003")
    assert Target.from_name(spec.name) == Target("three_class", 4)  # names carry no threshold
    for other in ("rsi_14", "direction", "direction_0", "direction_x", "big_move_4", "", None, 7):
        assert Target.from_name(other) is None


def test_horizon_of_reads_any_label_named_label_h():
    assert horizon_of("direction_3") == 3
    assert horizon_of("forward_volatility_24") == 24
    assert horizon_of("big_move_4") == 4  # a custom label following the scheme
    assert horizon_of("close") == 1 and horizon_of("close", default=0) == 0
    assert horizon_of(None, default=0) == 0


def test_target_prefixes_are_the_kinds():
    assert TARGET_PREFIXES == (
        "direction_",
        "three_class_",
        "forward_return_",
        "forward_volatility_",
        "triple_barrier_",
        "price_jump_",
        "net_return_",
    )
    for name in ("direction_1", "three_class_4", "forward_return_24", "forward_volatility_24",
                 "triple_barrier_24", "triple_barrier_24_t1", "price_jump_4", "net_return_1"):  # fmt: skip
        assert is_target_name(name)
    for name in ("rsi_14", "close", "h4_direction_1", "forward_fill_close"):
        assert not is_target_name(name)


def test_task_targets_and_roles():
    columns = ["direction_1", "three_class_4", "forward_return_1", "forward_volatility_24",
               "direction_4", "rsi_14", "big_move_1"]  # fmt: skip
    assert task_targets(columns, "direction") == ["direction_1", "direction_4"]
    assert task_targets(columns, "three_class") == ["three_class_4"]
    assert task_targets(columns, "volatility") == ["forward_volatility_24"]
    assert task_targets(columns, "regression") == ["forward_return_1"]
    assert task_targets(columns, "clustering") == []
    feed = build_feature_feed(_bars(np.linspace(100, 130, 300)), "core", targets=("direction:1",))
    roles = column_roles(feed)
    assert roles["direction_1"] == "target" and roles["close"] == "ohlcv"
    assert roles == feed.attrs["mlstrat"]["roles"]
    assert column_roles(pd.DataFrame({"a": [1]})) == {} and column_roles(None) == {}


# ---------------------------------------------------------------- event targets


def test_event_specs_parse_back_and_carry_their_parameters():
    from mlstrat.features.targets import net_return, price_jump, triple_barrier

    cases = {
        "triple_barrier:24": triple_barrier(24, 1.0, 1.0),
        "triple_barrier:24:2": triple_barrier(24, 2.0, 2.0),  # sl defaults to pt
        "triple_barrier:24:2:1": triple_barrier(24, 2.0, 1.0),
        "price_jump:12:0.02": price_jump(12, 0.02),
        "price_jump:12:2sigma": price_jump(12, 2.0, sigmas=True),
        "triple_barrier:24:1:1:bar": triple_barrier(24, 1.0, 1.0, scale="bar"),
        "triple_barrier:24:2:bar": triple_barrier(24, 2.0, 2.0, scale="bar"),
        "triple_barrier:24:horizon": triple_barrier(24, 1.0, 1.0),
        "price_jump:12:2sigma:bar": price_jump(12, 2.0, sigmas=True, scale="bar"),
        "net_return:4": net_return(4, 0.001, 0.0005),
        "net_return:4:0.002:0.001": net_return(4, 0.002, 0.001),
    }
    for spec, target in cases.items():
        parsed = parse_target(spec)
        assert parsed == target and parse_target(parsed.spec) == parsed, spec
        assert parsed.is_event and parsed.name == f"{spec.split(':')[0]}_{spec.split(':')[1]}"
    assert parse_target("jump:12:0.02") == price_jump(12, 0.02)  # the spelling
    for bad in ("jump:12", "price_jump:12:x", "price_jump:12:0.02:1", "triple_barrier:24:1:1:1",
                "triple_barrier:24:-1", "triple_barrier:24:0:0", "net_return:4:1.5",
                "net_return:4:0.001:0.001:0", "price_jump:12:0.02:bar",
                "triple_barrier:24:1:1:1:bar", "triple_barrier:24:1:1:day"):  # fmt: skip
        with pytest.raises(ConfigError):
            parse_target(bad)
    with pytest.raises(ConfigError, match="needs a jump size"):
        parse_target("jump:12")
    with pytest.raises(ConfigError, match="fixed horizon"):
        direction(1).labels(_bars())


def test_event_targets_equal_the_label_functions_and_keep_their_end():
    from mlstrat.features.labels import (
        ewm_volatility,
        jump_labels,
        net_forward_returns,
        triple_barrier_labels,
    )

    rng = np.random.default_rng(3)
    bars = _bars(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400))))
    feed = build_feature_feed(
        bars, "core", targets=("triple_barrier:12:2:1", "price_jump:6:0.01", "net_return:3")
    )
    # barriers are multiples of the σ of 12-bar moves: per-bar EWM σ (span 100) × √12
    sigma_12 = ewm_volatility(bars["close"], 100) * np.sqrt(12)
    expected = {
        "triple_barrier_12": triple_barrier_labels(
            bars, 12, profit_take=2, stop_loss=1, volatility=sigma_12
        ),
        "price_jump_6": jump_labels(bars, 6, threshold=0.01),
        "net_return_3": net_forward_returns(bars, 3, commission=0.001, slippage=0.0005),
    }
    roles = column_roles(feed)
    for name, frame in expected.items():
        np.testing.assert_array_equal(feed[name].to_numpy(), frame["label"].to_numpy())
        pd.testing.assert_series_equal(
            feed[f"{name}_t1"], frame["t1"], check_names=False, check_freq=False
        )
        assert roles[name] == "target" and roles[f"{name}_t1"] == "t1"
        assert f"{name}_t1" not in feature_columns(feed) + target_columns(feed)
    # a label decided at t1 is known there: t1 >= t, and never after the horizon
    t1 = feed.index.get_indexer(feed["triple_barrier_12_t1"].dropna())
    rows = np.flatnonzero(feed["triple_barrier_12_t1"].notna())
    assert ((t1 >= rows) & (t1 <= rows + 12)).all() and (t1 < rows + 12).any()


def test_barrier_scales_per_bar_keeps_the_old_labels_and_horizon_widens_them():
    from mlstrat.features.labels import ewm_volatility, jump_labels, triple_barrier_labels
    from mlstrat.features.targets import price_jump, triple_barrier, volatility_span

    rng = np.random.default_rng(6)
    bars = _bars(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 3000))))
    per_bar = triple_barrier(24, 1, 1, scale="bar").labels(bars)
    old = triple_barrier_labels(bars, 24, profit_take=1, stop_loss=1, span=100)
    pd.testing.assert_frame_equal(per_bar, old)
    jump = price_jump(24, 2, sigmas=True, scale="bar").labels(bars)
    pd.testing.assert_frame_equal(jump, jump_labels(bars, 24, sigmas=2, span=100))
    # the horizon's σ: √h wider barriers over a span of at least four horizons
    assert volatility_span(24) == 100 and volatility_span(48) == 192
    wide = triple_barrier(48, 1, 1).labels(bars)
    sigma = ewm_volatility(bars["close"], 192) * np.sqrt(48)
    np.testing.assert_allclose(wide["sigma"], sigma, rtol=1e-12)
    # on a random walk a per-bar 1σ barrier is touched within a few bars and almost never
    # reaches the vertical barrier; a horizon 1σ barrier lasts most of the horizon
    horizon = triple_barrier(24, 1, 1).labels(bars)
    rows = np.arange(len(bars))

    def held(frame):
        ok = frame["t1_pos"].notna().to_numpy()
        return np.median(frame["t1_pos"].to_numpy()[ok] - rows[ok])

    assert held(per_bar) <= 3 and held(horizon) >= 8
    assert (per_bar["barrier"] == 0).mean() < 0.02 < 0.15 < (horizon["barrier"] == 0).mean()


def test_event_end_columns_survive_the_parquet_round_trip(tmp_path):
    from mlstrat.features import read_feature_feed, write_feature_feed
    from mlstrat.features.feed_io import end_columns

    rng = np.random.default_rng(4)
    bars = _bars(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300))))
    feed = build_feature_feed(bars, "core", targets=("direction:1", "triple_barrier:8"))
    back = read_feature_feed(write_feature_feed(feed, tmp_path / "f.parquet"))
    assert end_columns(back) == ["triple_barrier_8_t1"]
    pd.testing.assert_series_equal(
        back["triple_barrier_8_t1"], feed["triple_barrier_8_t1"], check_freq=False
    )
    assert back["triple_barrier_8_t1"].isna().sum() == feed["triple_barrier_8_t1"].isna().sum()


def test_tasks_learn_event_labels_in_their_own_coding():
    from mlstrat.features.targets import encode_labels

    columns = ["price_jump_4", "direction_1", "triple_barrier_24", "three_class_1",
               "net_return_4", "forward_return_1", "triple_barrier_24_t1", "jump_score_24"]  # fmt: skip
    # the task's own kind first (the default target), then event labels in given order
    assert task_targets(columns, "direction") == [
        "direction_1", "price_jump_4", "triple_barrier_24"
    ]  # fmt: skip
    assert task_targets(columns, "three_class") == [
        "three_class_1", "price_jump_4", "triple_barrier_24"
    ]  # fmt: skip
    assert task_targets(columns, "regression") == ["forward_return_1", "net_return_4"]
    y = pd.Series([-1.0, 0.0, 1.0, np.nan], name="triple_barrier_24")
    np.testing.assert_array_equal(encode_labels(y, "direction"), [0, 0, 1, np.nan])
    np.testing.assert_array_equal(encode_labels(y, "three_class"), [0, 1, 2, np.nan])
    assert encode_labels(y, "regression") is y
    plain = pd.Series([1.0, 0.0], name="direction_1")
    assert encode_labels(plain, "direction") is plain
    frame = pd.DataFrame({"price_jump_4": [1.0, -1.0], "direction_1": [0.0, 1.0]})
    both = encode_labels(frame, "three_class")
    assert both["price_jump_4"].tolist() == [2.0, 0.0]
    assert both["direction_1"].tolist() == [0.0, 1.0]
    # causal features that merely start like a kind are no targets (xgb's jump_score_24)
    assert not is_target_name("jump_score_24") and is_target_name("price_jump_4")


def test_feeds_written_before_barrier_scales_read_as_per_bar():
    from mlstrat.features.targets import price_jump, recorded_target, triple_barrier

    # specs are written with their scale ...
    assert triple_barrier(24, 1, 1).spec == "triple_barrier:24:1:1:horizon"
    assert price_jump(24, 2, sigmas=True, scale="bar").spec == "price_jump:24:2sigma:bar"
    assert price_jump(24, 0.02).spec == "price_jump:24:0.02"
    for target in (triple_barrier(24, 2, 1), triple_barrier(8, 1, 1, scale="bar")):
        assert recorded_target(target.spec) == target
    # ... so a recorded spec without one comes from a feed made when barriers were per bar
    assert recorded_target("triple_barrier:24:1:1") == triple_barrier(24, 1, 1, scale="bar")
    assert recorded_target("price_jump:24:2sigma").scale == "bar"
    assert recorded_target("price_jump:24:0.02") == price_jump(24, 0.02)
