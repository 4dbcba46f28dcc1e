"""FeatureFeed: bar-for-bar parity with stock PandasData, naming rules, roles, predictions."""

from __future__ import annotations

import datetime as dt
import math
import warnings
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstrat.errors import DataError, SchemaError
from mlstrat.feed import FeatureFeed, date2num_array, default_columns

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO / "datasets"


# ---------------------------------------------------------------------------
# fixtures: real candles + ~20 simple causal features computed here


def _load(symbol: str) -> pd.DataFrame:
    path = DATASETS / f"{symbol}-1h.parquet"
    if not path.exists():
        pytest.skip(f"{path.name} not shipped")
    bars = pd.read_parquet(path).set_index("timestamp")
    bars.attrs["symbol"] = symbol
    bars.attrs["timeframe"] = "1h"
    return bars


def _features(bars: pd.DataFrame) -> pd.DataFrame:
    c, v = bars["close"], bars["volume"]
    logret = np.log(c).diff()
    ema12 = c.ewm(span=12, adjust=False).mean()
    ema26 = c.ewm(span=26, adjust=False).mean()
    macd = ema12 - ema26
    delta = c.diff()
    gain = delta.clip(lower=0).rolling(14).mean()
    loss = (-delta.clip(upper=0)).rolling(14).mean()
    f = {
        "ret_1": c.pct_change(),
        "logret_1": logret,
        "sma_ratio_5": c / c.rolling(5).mean() - 1,
        "sma_ratio_10": c / c.rolling(10).mean() - 1,
        "sma_ratio_20": c / c.rolling(20).mean() - 1,
        "sma_ratio_50": c / c.rolling(50).mean() - 1,
        "vol_10": logret.rolling(10).std(),
        "vol_20": logret.rolling(20).std(),
        "zscore_20": (c - c.rolling(20).mean()) / c.rolling(20).std(),
        "range_hl": (bars["high"] - bars["low"]) / c,
        "body": (c - bars["open"]) / bars["open"],
        "vol_ratio_20": v / v.rolling(20).mean(),
        "ema_ratio_12": c / ema12 - 1,
        "macd": macd,
        "macd_signal": macd.ewm(span=9, adjust=False).mean(),
        "rsi_14": 100 - 100 / (1 + gain / loss),
        "dist_max_20": c / c.rolling(20).max() - 1,
        "dist_min_20": c / c.rolling(20).min() - 1,
        "hour": pd.Series(bars.index.hour, index=bars.index),  # int column
        "up_bar": c > c.shift(1),  # bool column
    }
    out = bars.copy()
    for name, series in f.items():
        out[name] = series
    # a hole in the middle, so NaN positions are not only a warm-up prefix
    out.loc[out.index[300:305], "vol_ratio_20"] = np.nan
    out["direction_1"] = (c.shift(-1) > c).astype(float).where(c.shift(-1).notna())
    out["forward_return_1"] = c.shift(-1) / c - 1
    out.attrs = dict(bars.attrs)
    return out


FEATURES = [
    "ret_1",
    "logret_1",
    "sma_ratio_5",
    "sma_ratio_10",
    "sma_ratio_20",
    "sma_ratio_50",
    "vol_10",
    "vol_20",
    "zscore_20",
    "range_hl",
    "body",
    "vol_ratio_20",
    "ema_ratio_12",
    "macd",
    "macd_signal",
    "rsi_14",
    "dist_max_20",
    "dist_min_20",
    "hour",
    "up_bar",
]
TARGETS = ["direction_1", "forward_return_1"]


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    return _features(_load("BTCUSDT").iloc[-1500:])


@pytest.fixture(scope="module")
def eth() -> pd.DataFrame:
    # starts later and ends earlier than the BTC slice: unequal lengths in one Cerebro
    return _features(_load("ETHUSDT").iloc[-1400:-50])


def _pandas_data(columns: list[str], df: pd.DataFrame, **kwargs) -> bt.feeds.PandasData:
    klass = type(
        "PandasDataX",
        (bt.feeds.PandasData,),
        {"lines": tuple(columns), "params": tuple((c, -1) for c in columns)},
    )
    return klass(dataname=df, **kwargs)


class Recorder(bt.Strategy):
    """Records, every bar and for every data, each line at [0] plus a few tick_ attributes."""

    def __init__(self):
        self.rows = []

    def next(self):
        row = []
        for d in self.datas:
            row.append(len(d))
            row.append(d.datetime.datetime(0))
            for name in d.lines.getlinealiases():
                row.append(getattr(d.lines, name)[0])
            row.extend([d.tick_close, d.tick_last, d.tick_volume])
        self.rows.append(tuple(row))


def _run(datas, **cerebro_kwargs):
    cerebro = bt.Cerebro(stdstats=False, **cerebro_kwargs)
    for d in datas:
        cerebro.adddata(d)
    cerebro.addstrategy(Recorder)
    return cerebro.run()[0]


def _same(a, b) -> bool:
    """Equality where NaN equals NaN (bitwise equal floats otherwise)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        if x != y:
            return False
    return True


MODES = {
    "runonce": {},
    "next": {"runonce": False},
    "nopreload": {"preload": False},
    "exactbars": {"exactbars": 1},
}


# ---------------------------------------------------------------------------
# parity with PandasData


@pytest.mark.parametrize("mode", list(MODES))
def test_parity_with_pandasdata_bar_by_bar(btc, mode):
    window = {
        "fromdate": btc.index[200].to_pydatetime().replace(tzinfo=None),
        "todate": btc.index[1200].to_pydatetime().replace(tzinfo=None),
    }
    ours = _run([FeatureFeed.from_frame(btc, columns=FEATURES, **window)], **MODES[mode])
    ref = _run([_pandas_data(FEATURES, btc, **window)], **MODES[mode])
    assert len(ours.rows) == len(ref.rows) == 1001
    for i, (a, b) in enumerate(zip(ours.rows, ref.rows, strict=True)):
        assert _same(a, b), f"bar {i} differs"
    # the datetime a strategy sees is the UTC bar time, independently of backtrader
    expected = btc.index[200:1201].tz_convert("UTC").tz_localize(None).to_pydatetime()
    assert [r[1] for r in ours.rows] == list(expected)
    # NaN hole and int/bool columns came through as floats, as PandasData gives them
    names = ours.data.lines.getlinealiases()
    pos = 2 + names.index("vol_ratio_20")
    assert [math.isnan(r[pos]) for r in ours.rows[100:105]] == [True] * 5
    assert ours.rows[0][2 + names.index("up_bar")] in (0.0, 1.0)


def test_preloaded_buffers_equal_pandasdata_including_nan(btc):
    window = {"fromdate": btc.index[10].to_pydatetime().replace(tzinfo=None)}
    ours = _run([FeatureFeed.from_frame(btc, columns=FEATURES, **window)]).data
    ref = _run([_pandas_data(FEATURES, btc, **window)]).data
    for name in ref.lines.getlinealiases():
        a = np.asarray(getattr(ours.lines, name).array)
        b = np.asarray(getattr(ref.lines, name).array)
        np.testing.assert_array_equal(a, b, err_msg=name)  # NaN == NaN here
    assert np.isnan(np.asarray(ours.openinterest.array)).all()


def test_multi_data_two_symbols_match_pandasdata(btc, eth):
    cols = ["rsi_14", "sma_ratio_20", "vol_ratio_20"]
    for mode in ("runonce", "next"):
        ours = _run(
            [
                FeatureFeed.from_frame(btc, columns=cols),
                FeatureFeed.from_frame(eth, columns=cols),
            ],
            **MODES[mode],
        )
        ref = _run(
            [_pandas_data(cols, btc, name="BTCUSDT"), _pandas_data(cols, eth, name="ETHUSDT")],
            **MODES[mode],
        )
        assert [d._name for d in ours.datas] == ["BTCUSDT", "ETHUSDT"]
        assert len(ours.rows) == len(ref.rows)
        for i, (a, b) in enumerate(zip(ours.rows, ref.rows, strict=True)):
            assert _same(a, b), f"{mode}: bar {i} differs"


def test_tz_param_matches_pandasdata(btc):
    class Minus5(dt.tzinfo):  # a plain tzinfo: pytz is not installed
        def utcoffset(self, d):
            return dt.timedelta(hours=-5)

        def dst(self, d):
            return dt.timedelta(0)

        def tzname(self, d):
            return "UTC-5"

    kwargs = {
        "tz": Minus5(),
        "fromdate": dt.datetime(2026, 4, 1),
        "todate": dt.datetime(2026, 4, 3),
    }
    ours = _run([FeatureFeed.from_frame(btc, columns=["rsi_14"], **kwargs)])
    ref = _run([_pandas_data(["rsi_14"], btc, **kwargs)])
    assert len(ours.rows) == len(ref.rows) > 0
    assert all(_same(a, b) for a, b in zip(ours.rows, ref.rows, strict=True))
    # displayed in UTC-5 and the window read in UTC-5: first bar is 2026-04-01 05:00 UTC
    assert ours.rows[0][1] == dt.datetime(2026, 4, 1, 0, 0)
    assert ours.data.datetime.datetime(0, tz=dt.timezone.utc).replace(tzinfo=None) == (
        ours.rows[-1][1] + dt.timedelta(hours=5)
    )


@pytest.mark.parametrize("how", ["resample", "replay"])
def test_resample_and_replay_match_pandasdata(btc, how):
    """Filters take backtrader's generic bar-by-bar path; results must not change."""
    results = []
    for make in (
        lambda: FeatureFeed.from_frame(btc, columns=["rsi_14"]),
        lambda: _pandas_data(["rsi_14"], btc, timeframe=bt.TimeFrame.Minutes, compression=60),
    ):
        cerebro = bt.Cerebro(stdstats=False)
        getattr(cerebro, f"{how}data")(make(), timeframe=bt.TimeFrame.Minutes, compression=240)
        cerebro.addstrategy(Recorder)
        results.append(cerebro.run()[0].rows)
    ours, ref = results
    assert len(ours) == len(ref) > 300
    assert all(_same(a, b) for a, b in zip(ours, ref, strict=True))


def test_rerun_clone_and_direct_construction(btc):
    feed = FeatureFeed.from_frame(btc, columns=["rsi_14", "macd"])
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feed)
    cerebro.adddata(feed.clone())
    cerebro.addstrategy(Recorder)
    first = cerebro.run()[0].rows
    second = cerebro.run()[0].rows  # same feed object, started again
    assert len(first) == len(btc)
    assert all(_same(a, b) for a, b in zip(first, second, strict=True))
    # a backtrader clone carries the 7 standard lines (len, datetime, 7 lines, 3 ticks)
    assert len(first[0]) == (2 + 9 + 3) + (2 + 7 + 3)
    assert all(_same(r[:9], r[14:23]) and _same(r[11:14], r[23:26]) for r in first)
    # backtrader style: the cached class with a frame as dataname
    klass = FeatureFeed.for_columns(["rsi_14", "macd"])
    direct = _run([klass(dataname=btc, name="BTCUSDT")]).rows
    assert all(_same(a, b[:14]) for a, b in zip(direct, first, strict=True))


def test_openinterest_column_feeds_the_openinterest_line(btc):
    df = btc[["open", "high", "low", "close", "volume", "rsi_14"]].copy()
    df["openinterest"] = np.arange(len(df), dtype=float)
    ours = _run([FeatureFeed.from_frame(df)])
    ref = _run([_pandas_data(["rsi_14"], df)])
    assert ours.data.columns == ("rsi_14",)
    assert all(_same(a, b) for a, b in zip(ours.rows, ref.rows, strict=True))
    assert np.asarray(ours.data.openinterest.array).tolist() == df["openinterest"].tolist()


# ---------------------------------------------------------------------------
# strategy access, exactbars


class ReadsLines(bt.Strategy):
    def __init__(self):
        self.seen = []

    def next(self):
        d = self.data
        prev = d.rsi_14[-1] if len(d) > 1 else None
        self.seen.append((d.datetime.datetime(0), d.rsi_14[0], prev, d.close[0]))


def test_strategy_reads_current_and_previous_values(btc):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(FeatureFeed.from_frame(btc))
    cerebro.addstrategy(ReadsLines)
    seen = cerebro.run()[0].seen
    rsi = btc["rsi_14"].to_numpy()
    close = btc["close"].to_numpy()
    times = btc.index.tz_localize(None).to_pydatetime()
    assert len(seen) == len(btc)
    for i, (when, now, prev, c) in enumerate(seen):
        assert when == times[i]
        assert c == close[i]
        assert (math.isnan(now) and math.isnan(rsi[i])) or now == rsi[i]
        if i:
            assert (math.isnan(prev) and math.isnan(rsi[i - 1])) or prev == rsi[i - 1]


class ReadsDelayed(ReadsLines):
    """Declares the one-bar delay it uses, as exactbars=1 requires (buffers shrink to need)."""

    def __init__(self):
        super().__init__()
        self.rsi_prev = self.data.rsi_14(-1)


def test_exactbars_keeps_buffers_bounded_and_values_right(btc):
    cerebro = bt.Cerebro(stdstats=False, exactbars=1)
    cerebro.adddata(FeatureFeed.from_frame(btc, columns=["rsi_14", "macd"]))
    cerebro.addstrategy(ReadsDelayed)
    strat = cerebro.run()[0]
    assert len(strat.data.rsi_14.array) < 10  # a bounded deque, not the whole history
    rsi = btc["rsi_14"].to_numpy()
    assert len(strat.seen) == len(btc) - 1  # the delay needs one bar of history
    np.testing.assert_array_equal([s[1] for s in strat.seen], rsi[1:])
    np.testing.assert_array_equal([s[2] for s in strat.seen], rsi[:-1])
    assert [s[0] for s in strat.seen] == list(btc.index[1:].tz_localize(None).to_pydatetime())


# ---------------------------------------------------------------------------
# columns: defaults, targets, names


def test_default_columns_exclude_targets_by_name(btc):
    feed = FeatureFeed.from_frame(btc)
    assert feed.columns == tuple(FEATURES)
    assert not {"direction_1", "forward_return_1"} & set(feed.lines.getlinealiases())


def test_default_columns_follow_roles_metadata(btc):
    df = btc.copy()
    df["hidden_future"] = df["close"].shift(-3)  # a target whose name gives nothing away
    roles = {c: "ohlcv" for c in ("open", "high", "low", "close", "volume")}
    roles |= {c: "feature" for c in FEATURES}
    roles |= {"direction_1": "target", "forward_return_1": "target", "hidden_future": "target"}
    df.attrs = {"symbol": "BTCUSDT", "mlstrat": {"roles": roles}}
    assert default_columns(df) == FEATURES


def test_targets_only_when_named(btc):
    feed = FeatureFeed.from_frame(btc, columns=["rsi_14", "direction_1"])
    assert feed.columns == ("rsi_14", "direction_1")


@pytest.mark.parametrize(
    "bad",
    [
        "1st",
        "rsi 14",
        "rsi-14",
        "class",
        "lines",
        "params",
        "datetime",
        "size",
        "forward",
        "tick_close",
        "line0",
        "line_2",
        "_private",
        "p",
        "fromdate",
        "from_frame",
    ],
)
def test_bad_column_names_raise_schema_error(btc, bad):
    df = btc[["open", "high", "low", "close", "volume"]].copy()
    df[bad] = 1.0
    with pytest.raises(SchemaError) as err:
        FeatureFeed.from_frame(df, columns=[bad])
    assert err.value.column == bad
    assert "rename" in str(err.value)


def test_ohlcv_cannot_be_listed_as_columns(btc):
    with pytest.raises(SchemaError, match="always lines"):
        FeatureFeed.from_frame(btc, columns=["close"])


def test_missing_column_and_non_numeric_column(btc):
    with pytest.raises(SchemaError) as err:
        FeatureFeed.from_frame(btc, columns=["nope"])
    assert err.value.column == "nope"
    df = btc.copy()
    df["label"] = "x"
    with pytest.raises(SchemaError, match="not numeric") as err:
        FeatureFeed.from_frame(df, columns=["label"])
    assert err.value.column == "label"


def test_frame_contract_errors(btc):
    with pytest.raises(SchemaError, match="OHLCV"):
        FeatureFeed.from_frame(btc.drop(columns=["volume"]))
    shuffled = btc.iloc[[0, 2, 1, 3]]
    with pytest.raises(SchemaError, match="strictly increasing") as err:
        FeatureFeed.from_frame(shuffled)
    assert err.value.row == 2
    with pytest.raises(SchemaError, match="DatetimeIndex"):
        FeatureFeed.from_frame(btc.reset_index())


def test_class_is_cached_per_column_tuple():
    a = FeatureFeed.for_columns(["x_a", "x_b"])
    assert FeatureFeed.for_columns(("x_a", "x_b")) is a
    assert FeatureFeed.for_columns(["x_b", "x_a"]) is not a
    assert a.lines.getlinealiases()[-2:] == ("x_a", "x_b")


def test_name_and_timeframe_from_attrs(btc):
    feed = FeatureFeed.from_frame(btc, columns=["rsi_14"])
    assert feed._name == "BTCUSDT"
    assert (feed.p.timeframe, feed.p.compression) == (bt.TimeFrame.Minutes, 60)
    other = FeatureFeed.from_frame(btc, columns=["rsi_14"], name="X", timeframe=bt.TimeFrame.Days)
    assert other._name == "X" and other.p.timeframe == bt.TimeFrame.Days


# ---------------------------------------------------------------------------
# datetime conversion


def test_date2num_array_equals_bt_date2num_on_real_index(btc):
    got = date2num_array(btc.index)
    want = [bt.date2num(t.to_pydatetime()) for t in btc.index]
    assert got.tolist() == want


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(3000, 12, 31)),
        min_size=1,
        max_size=20,
    )
)
def test_date2num_array_bit_exact(stamps):
    stamps = sorted(stamps)
    got = date2num_array(pd.DatetimeIndex(stamps).as_unit("us"))
    assert got.tolist() == [bt.date2num(s) for s in stamps]


def test_date2num_array_edges():
    stamps = [
        dt.datetime(2024, 1, 1, 23, 59, 59, 999999),
        dt.datetime(2024, 1, 1, 0, 0, 0, 1),
        dt.datetime(1435, 12, 31, 23, 59, 59, 999999),  # below the fast binade
        dt.datetime(2871, 12, 31, 23, 59, 59, 999999),  # at its top
        dt.datetime(1970, 1, 1),
    ]
    got = date2num_array(pd.DatetimeIndex(stamps).as_unit("us"))
    assert got.tolist() == [bt.date2num(s) for s in stamps]
    # tz-aware input is converted to UTC first; nanoseconds are dropped like to_pydatetime
    aware = pd.DatetimeIndex(["2025-03-01 12:00:00.000001999+02:00"])
    assert date2num_array(aware)[0] == bt.date2num(dt.datetime(2025, 3, 1, 10, 0, 0, 1))


# ---------------------------------------------------------------------------
# Parquet and predictions


def _write_plain(df: pd.DataFrame, path: Path) -> Path:
    plain = df.reset_index()
    plain.attrs = {}
    plain.to_parquet(path, index=False)
    return path


def test_from_parquet_reads_needed_columns_and_filters(btc, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    path = _write_plain(btc, tmp_path / "feed.parquet")
    asked = []
    real = pq.read_table
    monkeypatch.setattr(
        pq,
        "read_table",
        lambda p, columns=None, **k: (asked.append(columns), real(p, columns=columns, **k))[1],
    )
    start, end = btc.index[100], btc.index[199]
    feed = FeatureFeed.from_parquet(path, columns=["rsi_14", "macd"], start=start, end=end)
    assert asked == [["timestamp", "open", "high", "low", "close", "volume", "rsi_14", "macd"]]
    strat = _run([feed])
    ref = _run([_pandas_data(["rsi_14", "macd"], btc.iloc[100:200])])
    assert len(strat.rows) == 100
    assert all(_same(a, b) for a, b in zip(strat.rows, ref.rows, strict=True))


def test_from_parquet_default_columns_exclude_targets(btc, tmp_path):
    path = _write_plain(btc, tmp_path / "feed.parquet")
    assert FeatureFeed.from_parquet(path).columns == tuple(FEATURES)
    # roles stored in the file's metadata win over names
    df = btc.copy()
    df["fwd_secret"] = df["close"].shift(-1)
    roles = {c: "feature" for c in FEATURES} | {c: "target" for c in [*TARGETS, "fwd_secret"]}
    df.attrs = {"mlstrat": {"roles": roles}}
    df.to_parquet(tmp_path / "meta.parquet")
    assert FeatureFeed.from_parquet(tmp_path / "meta.parquet").columns == tuple(FEATURES)


def test_from_parquet_bad_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        FeatureFeed.from_parquet(tmp_path / "missing.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError):
        FeatureFeed.from_parquet(bad)
    pd.DataFrame({"open": [1.0]}).to_parquet(tmp_path / "nots.parquet")
    with pytest.raises(SchemaError, match="timestamp"):
        FeatureFeed.from_parquet(tmp_path / "nots.parquet")


def _predictions(index: pd.DatetimeIndex) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = len(index)
    proba = rng.uniform(0, 1, n)
    return pd.DataFrame(
        {
            "timestamp": index,
            "fold": np.arange(n) // 50,
            "signal": np.where(proba > 0.5, 1.0, -1.0),
            "confidence": np.abs(proba - 0.5) * 2,
            "proba_up": proba,
        }
    )


def test_predictions_join(btc, tmp_path):
    feed_path = _write_plain(btc, tmp_path / "feed.parquet")
    # predictions for bars 500..899, 3 at times between bars, 10 before the feed's window
    pred = _predictions(btc.index[500:900])
    stray = _predictions(btc.index[600:603] + pd.Timedelta(minutes=30))
    early = _predictions(btc.index[10:20])
    pred_path = tmp_path / "pred.parquet"
    pd.concat([early, pred, stray]).sort_values("timestamp").to_parquet(pred_path, index=False)
    with pytest.warns(UserWarning, match="3 predictions"):
        feed = FeatureFeed.from_parquet(
            feed_path,
            columns=["rsi_14", "signal", "proba_up", "fold"],
            start=btc.index[400],
            end=btc.index[999],
            predictions=pred_path,
        )
    assert feed.prediction_join.matched == 400
    assert feed.prediction_join.unmatched == 3
    assert feed.prediction_join.outside == 10
    assert feed.prediction_join.bars_without == 200
    rows = _run([feed]).rows
    names = feed.lines.getlinealiases()
    sig = [r[2 + names.index("signal")] for r in rows]
    assert len(rows) == 600
    assert all(math.isnan(s) for s in sig[:100] + sig[500:])
    assert sig[100:500] == pred["signal"].tolist()
    assert [r[2 + names.index("fold")] for r in rows[100:500]] == pred["fold"].astype(
        float
    ).tolist()


def test_predictions_default_columns_and_frame_input(btc):
    pred = _predictions(btc.index[:300]).set_index("timestamp")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # predictions beyond the slice are no cause for alarm
        feed = FeatureFeed.from_frame(btc.iloc[100:], predictions=pred)
    assert feed.columns == (*FEATURES, "fold", "signal", "confidence", "proba_up")
    assert (feed.prediction_join.matched, feed.prediction_join.outside) == (200, 100)
    assert feed.prediction_join.unmatched == 0


def test_prediction_errors(btc):
    pred = _predictions(btc.index[:10])
    dup = pd.concat([pred, pred.iloc[[3]]])
    with pytest.raises(SchemaError, match="duplicate") as err:
        FeatureFeed.from_frame(btc, predictions=dup)
    assert err.value.column == "timestamp"
    clash = pred.rename(columns={"proba_up": "rsi_14"})
    with pytest.raises(SchemaError, match="also exist") as err:
        FeatureFeed.from_frame(btc, predictions=clash)
    assert err.value.column == "rsi_14"


def test_feature_feed_file_from_mlstrat_features(tmp_path):
    """A file written by mlstrat.features: roles, symbol and timeframe come from its metadata."""
    features = pytest.importorskip("mlstrat.features")
    bars = _load("BTCUSDT").iloc[-400:]
    df = features.build_feature_feed(bars, "core", targets=("direction:1", "forward_return:2"))
    path = features.write_feature_feed(df, tmp_path / "core.parquet")
    feed = FeatureFeed.from_parquet(path, start=df.index[100])
    assert feed.columns == tuple(features.feature_columns(df))
    assert not set(features.target_columns(df)) & set(feed.columns)
    assert feed._name == "BTCUSDT"
    assert (feed.p.timeframe, feed.p.compression) == (bt.TimeFrame.Minutes, 60)
    cols = list(feed.columns)
    ours = _run([feed])
    ref = _run(
        [_pandas_data(cols, df.iloc[100:][["open", "high", "low", "close", "volume", *cols]])]
    )
    assert len(ours.rows) == 300
    assert all(_same(a, b) for a, b in zip(ours.rows, ref.rows, strict=True))


def test_feed_pickles_for_multiprocess_optimisation(btc):
    """cerebro.optstrategy with maxcpus > 1 pickles the datas; the dynamic class must resolve."""
    import pickle

    feed = FeatureFeed.from_frame(btc, columns=["rsi_14", "sma_ratio_20"])
    again = pickle.loads(pickle.dumps(feed))
    assert type(again) is type(feed)
    a, b = _run([feed]).rows, _run([again]).rows
    assert len(a) == len(btc)
    assert all(_same(x, y) for x, y in zip(a, b, strict=True))
