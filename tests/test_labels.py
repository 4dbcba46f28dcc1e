"""Event labels and uniqueness weights equal slow reference loops, a hand-worked example,
and never read a bar after their own end time t1.

The reference loops below walk the bars one at a time with barrier *prices*
(entry × (1 + width)), independently of the vectorised return comparisons in
`mlstrat.features.labels`; the random market has gaps and wide bars so that every
intrabar rule (gap at the open, both barriers in one bar) is exercised and counted.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlstrat.errors import ConfigError, DataError, SchemaError
from mlstrat.features import labels as lab
from mlstrat.features.labels import (
    concurrency,
    ewm_volatility,
    jump_labels,
    net_forward_returns,
    triple_barrier_labels,
    uniqueness_weights,
)

N = 10_000


def make_bars(o, h, l, c) -> pd.DataFrame:  # noqa: E741 (l is the low, as in OHLC)
    """Bars (UTC hourly index, volume 1) from OHLC sequences."""
    idx = pd.date_range("2024-01-01", periods=len(c), freq="1h", tz="UTC", name="timestamp")
    data = {"open": o, "high": h, "low": l, "close": c, "volume": np.ones(len(c))}
    return pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in data.items()}, index=idx)


def random_bars(n: int = N, seed: int = 11) -> pd.DataFrame:
    """Seeded random walk: opens gap from the last close (5 % of bars by ~2 %), wicks beyond
    the body (3 % of bars six times longer), low <= min(open, close) <= max(open, close) <= high."""
    rng = np.random.default_rng(seed)
    gap = rng.normal(0, 0.002, n) + (rng.random(n) < 0.05) * rng.normal(0, 0.02, n)
    body = rng.normal(0, 0.008, n)
    log_open = np.empty(n)
    log_close = np.empty(n)
    level = np.log(100.0)
    for t in range(n):
        log_open[t] = level + gap[t]
        log_close[t] = log_open[t] + body[t]
        level = log_close[t]
    o, c = np.exp(log_open), np.exp(log_close)
    wide = 1 + 5 * (rng.random(n) < 0.03)  # 3 % of bars have long wicks on both sides
    h = np.maximum(o, c) * np.exp(np.abs(rng.normal(0, 0.005, n)) * wide)
    l = np.minimum(o, c) * np.exp(-np.abs(rng.normal(0, 0.005, n)) * wide)  # noqa: E741
    return make_bars(o, h, l, c)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return random_bars()


# ---------------------------------------------------------------- reference loops


def beyond(price, barrier, s, gain):
    """Has `price` reached `barrier` (None: no barrier) for a position of side s?
    gain=True: the profit-take side (above for a long), False: the stop side."""
    if barrier is None:
        return False
    return price >= barrier if (s > 0) == gain else price <= barrier


def ref_barriers(bars, horizon, up, down, side=None, entry="close"):
    """Slow first-touch loop. up/down: barrier widths per row (inf = no barrier, NaN = no
    event). Returns barrier code, position return, t1 position and how it was decided."""
    o, h, l, c = (bars[k].to_numpy() for k in ("open", "high", "low", "close"))  # noqa: E741
    n = len(c)
    side = np.ones(n) if side is None else np.asarray(side, dtype=float)
    code, ret, t1 = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    how = np.array([""] * n, dtype=object)
    for t in range(n):
        e = c[t] if entry == "close" else (o[t + 1] if t + 1 < n else math.nan)
        s = side[t]
        if math.isnan(e) or math.isnan(s) or s == 0 or math.isnan(up[t]) or math.isnan(down[t]):
            continue
        # Barrier prices: where the position gains up[t] and loses down[t].
        take = e * (1 + s * up[t]) if up[t] != math.inf else None
        stop = e * (1 - s * down[t]) if down[t] != math.inf else None

        for j in range(t + 1, min(t + horizon, n - 1) + 1):
            best, worst = (h[j], l[j]) if s > 0 else (l[j], h[j])
            if beyond(o[j], take, s, True) or beyond(o[j], stop, s, False):
                gained = beyond(o[j], take, s, True)
                code[t], ret[t], t1[t], how[t] = (1 if gained else -1), s * (o[j] / e - 1), j, "gap"
                break
            hit_stop, hit_take = beyond(worst, stop, s, False), beyond(best, take, s, True)
            if hit_stop:  # also when both are hit: stop first
                code[t], ret[t], t1[t] = -1, -down[t], j
                how[t] = "both" if hit_take else "stop"
                break
            if hit_take:
                code[t], ret[t], t1[t], how[t] = 1, up[t], j, "take"
                break
        else:
            if t + horizon <= n - 1:
                code[t], ret[t], t1[t], how[t] = (
                    0,
                    s * (c[t + horizon] / e - 1),
                    t + horizon,
                    "vert",
                )
    return code, ret, t1, how


def ref_net_returns(bars, horizon, cost, side=None, entry="close"):
    c, o = bars["close"].to_numpy(), bars["open"].to_numpy()
    n = len(c)
    out = np.full(n, np.nan)
    for t in range(n):
        s = 1.0 if side is None else side[t]
        e = c[t] if entry == "close" else (o[t + 1] if t + 1 < n else math.nan)
        if t + horizon < n and not math.isnan(e) and not math.isnan(s) and s != 0:
            out[t] = s * (c[t + horizon] / e - 1) - cost
    return out


def ref_weights(t1_pos, n, decay=1.0):
    """Average uniqueness by counting every span bar by bar; AFML's decay, literally."""
    events = [(t, int(e)) for t, e in enumerate(t1_pos) if not math.isnan(e)]
    count = [0] * n
    for start, end in events:
        for b in range(start, end + 1):
            count[b] += 1
    weights = np.full(len(t1_pos), np.nan)
    unique = {}
    for start, end in events:
        unique[start] = sum(1 / count[b] for b in range(start, end + 1)) / (end - start + 1)
    total, running = sum(unique.values()), 0.0
    for start in sorted(unique):
        running += unique[start]
        slope = (1 - decay) / total if decay >= 0 else 1 / ((decay + 1) * total)
        factor = max(0.0, (1 - slope * total) + slope * running)
        weights[start] = unique[start] * factor
    return weights, np.array(count)


def ref_ewm_std(close, span):
    """Bias-corrected exponentially weighted std of log returns, from its definition."""
    r = np.diff(np.log(close))
    alpha = 2 / (span + 1)
    out = np.full(len(close), np.nan)
    for t in range(span, len(close)):  # bar t has t returns
        x = r[:t]
        w = (1 - alpha) ** np.arange(t - 1, -1, -1)
        mean = (w * x).sum() / w.sum()
        biased = (w * (x - mean) ** 2).sum() / w.sum()
        out[t] = math.sqrt(biased * w.sum() ** 2 / (w.sum() ** 2 - (w**2).sum()))
    return out


# ---------------------------------------------------------------- against the loops


def test_ewm_volatility_equals_its_definition(bars):
    close = bars["close"].iloc[:3000]
    got = ewm_volatility(close, span=50)
    np.testing.assert_allclose(got.to_numpy(), ref_ewm_std(close.to_numpy(), 50), rtol=1e-9)
    assert got.iloc[:50].isna().all() and got.iloc[50:].notna().all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"horizon": 6, "profit_take": 2.0, "stop_loss": 2.0},
        {"horizon": 12, "profit_take": 2.0, "stop_loss": 1.0, "entry": "next_open", "sides": True},
        {"horizon": 30, "profit_take": 0.0, "stop_loss": 1.5, "vertical": "sign"},
    ],
    ids=["symmetric", "sides-next-open", "no-profit-take-sign"],
)
def test_triple_barrier_equals_reference_loop(bars, kwargs):
    kwargs = dict(kwargs)
    horizon, pt, sl = kwargs.pop("horizon"), kwargs.pop("profit_take"), kwargs.pop("stop_loss")
    side = None
    if kwargs.pop("sides", False):
        draws = np.random.default_rng(3).choice(
            [-1.0, 0.0, 1.0, np.nan], N, p=[0.45, 0.05, 0.45, 0.05]
        )
        side = pd.Series(draws, index=bars.index)
    sigma = ewm_volatility(bars["close"], span=100).to_numpy()
    got = triple_barrier_labels(
        bars, horizon, profit_take=pt, stop_loss=sl, span=100, side=side, **kwargs
    )
    up = np.where(np.isnan(sigma), np.nan, pt * sigma if pt else np.inf)
    down = np.where(np.isnan(sigma), np.nan, sl * sigma)
    code, ret, t1, how = ref_barriers(
        bars,
        horizon,
        up,
        down,
        None if side is None else side.to_numpy(),
        kwargs.get("entry", "close"),
    )
    label = np.where(code == 0, np.sign(ret), code) if kwargs.get("vertical") == "sign" else code
    np.testing.assert_array_equal(got["barrier"].to_numpy(), code)
    np.testing.assert_array_equal(got["label"].to_numpy(), label)
    np.testing.assert_array_equal(got["t1_pos"].to_numpy(), t1)
    np.testing.assert_allclose(got["ret"].to_numpy(), ret, rtol=1e-12, atol=0)
    resolved = ~np.isnan(t1)
    assert (got["t1"][resolved] == bars.index[t1[resolved].astype(int)]).all()
    assert got["t1"][~resolved].isna().all()
    # Every rule was exercised, so the equality above is not vacuous.
    counts = pd.Series(how[resolved]).value_counts()
    needed = ("gap", "stop", "vert") + (("take", "both") if pt else ())
    assert all(counts.get(k, 0) >= 10 for k in needed), counts.to_dict()


def test_triple_barrier_chunking_changes_nothing(bars, monkeypatch):
    whole = triple_barrier_labels(bars, 20)
    monkeypatch.setattr(lab, "_CHUNK_CELLS", 20 * 37)  # 37 rows a chunk
    pd.testing.assert_frame_equal(triple_barrier_labels(bars, 20), whole)


@pytest.mark.parametrize(
    "kwargs", [{"threshold": 0.02}, {"sigmas": 2.5}], ids=["percent", "sigmas"]
)
def test_jump_labels_equal_reference_loop(bars, kwargs):
    got = jump_labels(bars, 6, span=100, **kwargs)
    if "threshold" in kwargs:
        size = np.full(N, kwargs["threshold"])
    else:
        size = kwargs["sigmas"] * ewm_volatility(bars["close"], span=100).to_numpy()
    code, ret, t1, how = ref_barriers(bars, 6, size, size)
    np.testing.assert_array_equal(got["label"].to_numpy(), code)
    np.testing.assert_array_equal(got["t1_pos"].to_numpy(), t1)
    np.testing.assert_allclose(got["ret"].to_numpy(), ret, rtol=1e-12, atol=0)
    counts = pd.Series(how[~np.isnan(t1)]).value_counts()
    assert all(counts.get(k, 0) >= 10 for k in ("gap", "take", "stop", "both", "vert")), counts


@pytest.mark.parametrize("entry", ["close", "next_open"])
def test_net_forward_returns_equal_reference_loop(bars, entry):
    side = pd.Series(np.random.default_rng(5).choice([-1.0, 1.0, 0.0], N), index=bars.index)
    got = net_forward_returns(bars, 24, commission=0.001, slippage=0.0005, entry=entry, side=side)
    ref = ref_net_returns(bars, 24, 0.003, side.to_numpy(), entry)
    np.testing.assert_allclose(got["label"].to_numpy(), ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got["gross"] - got["cost"], got["label"], rtol=0, atol=0)
    expect_t1 = np.where(np.isnan(ref), np.nan, np.arange(N) + 24.0)
    np.testing.assert_array_equal(got["t1_pos"].to_numpy(), expect_t1)


@pytest.mark.parametrize("decay", [1.0, 0.5, 0.0, -0.3])
def test_uniqueness_weights_equal_reference_loop(bars, decay):
    labels = triple_barrier_labels(bars, 20, profit_take=2.0, stop_loss=2.0)
    want, count = ref_weights(labels["t1_pos"].to_numpy(), N, decay)
    got = uniqueness_weights(labels, bars.index, decay=decay)
    np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(concurrency(labels, bars.index).to_numpy(), count)
    assert got.index.equals(labels.index)
    if decay < 0:
        assert (got == 0).sum() > 0.2 * got.notna().sum()  # the oldest ~30 % weigh nothing


def test_weights_for_a_subset_of_labels_on_the_bar_grid(bars):
    """Training rows only (every 7th label): concurrency counts just those, on the bars' grid."""
    labels = triple_barrier_labels(bars, 20).iloc[::7]
    t1_pos = np.full(N, np.nan)
    t1_pos[::7] = labels["t1_pos"].to_numpy()
    want, _ = ref_weights(t1_pos, N)
    got = uniqueness_weights(labels["t1"], bars.index)
    np.testing.assert_allclose(got.to_numpy(), want[::7], rtol=1e-9)


# ---------------------------------------------------------------- hand-worked 20 bars

#        open   high   low    close
HAND = [
    (100.0, 100.4, 99.6, 100.0),  # 0
    (100.0, 100.8, 99.5, 100.5),  # 1
    (100.5, 102.2, 100.3, 101.8),  # 2  high 102.2 reaches row 0's +2 % (102)
    (101.8, 102.0, 101.0, 101.5),  # 3
    (101.5, 101.9, 101.2, 101.6),  # 4
    (101.6, 101.8, 100.4, 100.6),  # 5  low 100.4 stops rows 2, 3, 4
    (100.6, 100.9, 100.2, 100.7),  # 6
    (100.7, 101.0, 100.5, 100.9),  # 7
    (100.9, 101.2, 100.6, 101.0),  # 8
    (103.5, 104.0, 103.2, 103.8),  # 9  gap up: opens above rows 6, 7, 8's profit-take
    (103.8, 104.2, 103.5, 104.0),  # 10
    (104.0, 106.2, 102.9, 105.0),  # 11 wide: both of row 10's barriers, only row 9's take
    (105.0, 105.3, 104.6, 105.1),  # 12
    (105.1, 105.4, 104.8, 105.2),  # 13
    (102.5, 103.0, 102.2, 102.6),  # 14 gap down: opens below rows 11, 12, 13's stop
    (102.6, 102.9, 102.3, 102.7),  # 15
    (102.7, 103.0, 102.4, 102.8),  # 16
    (102.8, 103.1, 102.2, 102.3),  # 17
    (102.9, 106.0, 102.8, 105.5),  # 18 high 106 takes profit for rows 15, 16, 17
    (105.5, 105.8, 105.2, 105.6),  # 19
]


@pytest.fixture()
def hand() -> pd.DataFrame:
    return make_bars(*zip(*HAND, strict=True))


def test_triple_barrier_by_hand(hand):
    """sigma = 1 % everywhere, profit-take 2 sigma, stop-loss 1 sigma, 3 bars, entry at close:
    row t's barriers are close_t × 1.02 and close_t × 0.99 over bars t+1 … t+3."""
    sigma = pd.Series(0.01, index=hand.index)
    got = triple_barrier_labels(hand, 3, profit_take=2, stop_loss=1, volatility=sigma)
    nan = np.nan
    # row: entry, take / stop price -> first touch
    expected = [
        # 0: 100, 102 / 99: bar 2 high 102.2 >= 102 -> take
        (1, 0.02, 2),
        # 1: 100.5, 102.51 / 99.495: bars 2-4 stay inside -> vertical, 101.6 / 100.5 - 1
        (0, 101.6 / 100.5 - 1, 4),
        # 2: 101.8, 103.836 / 100.782: bar 5 low 100.4 -> stop
        (-1, -0.01, 5),
        # 3: 101.5, 103.53 / 100.485: bar 5 low 100.4 -> stop
        (-1, -0.01, 5),
        # 4: 101.6, 103.632 / 100.584: bar 5 low 100.4 -> stop
        (-1, -0.01, 5),
        # 5: 100.6, 102.612 / 99.594: bars 6-8 inside -> vertical, 101.0 / 100.6 - 1
        (0, 101.0 / 100.6 - 1, 8),
        # 6: 100.7, take 102.714: bar 9 opens at 103.5 -> take at the open
        (1, 103.5 / 100.7 - 1, 9),
        # 7: 100.9, take 102.918: bar 9 opens at 103.5 -> take at the open
        (1, 103.5 / 100.9 - 1, 9),
        # 8: 101.0, take 103.02: bar 9 opens at 103.5 -> take at the open
        (1, 103.5 / 101.0 - 1, 9),
        # 9: 103.8, 105.876 / 102.762: bar 11 high 106.2 takes, low 102.9 stays above stop
        (1, 0.02, 11),
        # 10: 104.0, 106.08 / 102.96: bar 11 reaches both (106.2, 102.9) -> stop first
        (-1, -0.01, 11),
        # 11: 105.0, stop 103.95: bar 14 opens at 102.5 -> stop at the open
        (-1, 102.5 / 105.0 - 1, 14),
        # 12: 105.1, stop 104.049: bar 14 opens at 102.5 -> stop at the open
        (-1, 102.5 / 105.1 - 1, 14),
        # 13: 105.2, stop 104.148: bar 14 opens at 102.5 -> stop at the open
        (-1, 102.5 / 105.2 - 1, 14),
        # 14: 102.6, 104.652 / 101.574: bars 15-17 inside -> vertical, 102.3 / 102.6 - 1 < 0
        (0, 102.3 / 102.6 - 1, 17),
        # 15: 102.7, take 104.754: bar 18 high 106 -> take
        (1, 0.02, 18),
        # 16: 102.8, take 104.856: bar 18 -> take
        (1, 0.02, 18),
        # 17: 102.3, take 104.346: bar 18 -> take (resolved though bar 20 does not exist)
        (1, 0.02, 18),
        # 18: 105.5, 107.61 / 104.445: bar 19 inside, bars 20-21 do not exist -> unresolved
        (nan, nan, nan),
        # 19: no bar after it -> unresolved
        (nan, nan, nan),
    ]
    label, ret, t1 = (np.array(col, dtype=float) for col in zip(*expected, strict=True))
    np.testing.assert_array_equal(got["label"], label)
    np.testing.assert_array_equal(got["barrier"], label)
    np.testing.assert_allclose(got["ret"], ret, rtol=1e-12)
    np.testing.assert_array_equal(got["t1_pos"], t1)
    assert list(got["t1"].iloc[:18]) == list(hand.index[t1[:18].astype(int)])
    assert got["t1"].iloc[18:].isna().all()
    # vertical="sign": rows 1 and 5 ended up, row 14 down; everything else unchanged.
    signed = triple_barrier_labels(
        hand, 3, profit_take=2, stop_loss=1, volatility=sigma, vertical="sign"
    )
    label[[1, 5, 14]] = [1, 1, -1]
    np.testing.assert_array_equal(signed["label"], label)


def test_jump_labels_by_hand(hand):
    """A 1.5 % move within 3 bars of close_t: close_t × 1.015 up, × 0.985 down."""
    got = jump_labels(hand, 3, threshold=0.015)
    c = [row[3] for row in HAND]
    nan = np.nan
    expected = [
        (1, 0.015, 2),  # 0: up 101.5, bar 2 high 102.2
        (1, 0.015, 2),  # 1: up 102.0075, bar 2 high 102.2
        (0, c[5] / c[2] - 1, 5),  # 2: down 100.273, bar 5 low 100.4 stays above -> none
        (0, c[6] / c[3] - 1, 6),  # 3: down 99.9775, lows 100.4, 100.2, high 101.9 -> none
        (0, c[7] / c[4] - 1, 7),  # 4: 103.124 / 100.076 never reached -> none
        (0, c[8] / c[5] - 1, 8),  # 5: 102.109 / 99.091 never reached -> none
        (1, 103.5 / 100.7 - 1, 9),  # 6: bar 9 opens above 102.2105 -> up at the open
        (1, 103.5 / 100.9 - 1, 9),  # 7: bar 9 opens above 102.4135
        (1, 103.5 / 101.0 - 1, 9),  # 8: bar 9 opens above 102.515
        (1, 0.015, 11),  # 9: up 105.357, bar 11 high 106.2 (low 102.9 > 102.243)
        (1, 0.015, 11),  # 10: up 105.56, bar 11 high 106.2 (low 102.9 > 102.44)
        (-1, 102.5 / 105.0 - 1, 14),  # 11: bar 14 opens below 103.425 -> down at the open
        (-1, 102.5 / 105.1 - 1, 14),  # 12: bar 14 opens below 103.5235
        (-1, 102.5 / 105.2 - 1, 14),  # 13: bar 14 opens below 103.622
        (0, c[17] / c[14] - 1, 17),  # 14: 104.139 / 101.061 never reached -> none
        (1, 0.015, 18),  # 15: up 104.2405, bar 18 high 106
        (1, 0.015, 18),  # 16: up 104.342
        (1, 0.015, 18),  # 17: up 103.8345
        (nan, nan, nan),  # 18: 107.0825 / 103.9175 not reached by bar 19, data ends
        (nan, nan, nan),  # 19: no bar after it
    ]
    label, ret, t1 = (np.array(col, dtype=float) for col in zip(*expected, strict=True))
    np.testing.assert_array_equal(got["label"], label)
    np.testing.assert_allclose(got["ret"], ret, rtol=1e-12)
    np.testing.assert_array_equal(got["t1_pos"], t1)


def test_net_forward_returns_by_hand(hand):
    """3 bars, commission 0.1 % and slippage 0.05 % a side: cost 0.3 % a round trip."""
    got = net_forward_returns(hand, 3, commission=0.001, slippage=0.0005)
    assert got["label"].iloc[0] == pytest.approx(101.5 / 100.0 - 1 - 0.003)  # 1.2 %
    assert got["label"].iloc[5] == pytest.approx(101.0 / 100.6 - 1 - 0.003)
    assert got["label"].iloc[16] == pytest.approx(105.6 / 102.8 - 1 - 0.003)
    assert got["label"].iloc[17:].isna().all() and got["t1"].iloc[17:].isna().all()
    assert got["t1_pos"].iloc[16] == 19
    nxt = net_forward_returns(hand, 3, commission=0.001, slippage=0.0005, entry="next_open")
    assert nxt["label"].iloc[8] == pytest.approx(105.0 / 103.5 - 1 - 0.003)  # open 9 -> close 11
    short = pd.Series(-1.0, index=hand.index)
    shorted = net_forward_returns(hand, 3, commission=0.001, slippage=0.0005, side=short)
    assert shorted["label"].iloc[0] == pytest.approx(-(101.5 / 100.0 - 1) - 0.003)


def test_uniqueness_weights_by_hand(hand):
    """The spans [t, t1] of the triple-barrier example above (rows 18, 19 unresolved).

    Concurrency per bar 0..19 (labels spanning it):
      1 2 3 3 4 4 2 3 4 4 2 3 2 3 4 2 3 4 3 0
    e.g. bar 4 is inside [1,4], [2,5], [3,5], [4,5]; bar 19 inside none.
    Uniqueness = mean of 1/c over the span, e.g. row 0: (1 + 1/2 + 1/3) / 3 = 11/18,
    row 1: (1/2 + 1/3 + 1/3 + 1/4) / 4 = 17/48, row 10: (1/2 + 1/3) / 2 = 5/12.
    """
    sigma = pd.Series(0.01, index=hand.index)
    labels = triple_barrier_labels(hand, 3, profit_take=2, stop_loss=1, volatility=sigma)
    np.testing.assert_array_equal(
        concurrency(labels), [1, 2, 3, 3, 4, 4, 2, 3, 4, 4, 2, 3, 2, 3, 4, 2, 3, 4, 3, 0]
    )
    unique = [
        11 / 18,  # 0: bars 0-2: 1, 1/2, 1/3
        17 / 48,  # 1: bars 1-4: 1/2, 1/3, 1/3, 1/4
        7 / 24,  # 2: bars 2-5: 1/3, 1/3, 1/4, 1/4
        5 / 18,  # 3: bars 3-5: 1/3, 1/4, 1/4
        1 / 4,  # 4: bars 4-5: 1/4, 1/4
        1 / 3,  # 5: bars 5-8: 1/4, 1/2, 1/3, 1/4
        1 / 3,  # 6: bars 6-9: 1/2, 1/3, 1/4, 1/4
        5 / 18,  # 7: bars 7-9: 1/3, 1/4, 1/4
        1 / 4,  # 8: bars 8-9: 1/4, 1/4
        13 / 36,  # 9: bars 9-11: 1/4, 1/2, 1/3
        5 / 12,  # 10: bars 10-11: 1/2, 1/3
        17 / 48,  # 11: bars 11-14: 1/3, 1/2, 1/3, 1/4
        13 / 36,  # 12: bars 12-14: 1/2, 1/3, 1/4
        7 / 24,  # 13: bars 13-14: 1/3, 1/4
        1 / 3,  # 14: bars 14-17: 1/4, 1/2, 1/3, 1/4
        17 / 48,  # 15: bars 15-18: 1/2, 1/3, 1/4, 1/3
        11 / 36,  # 16: bars 16-18: 1/3, 1/4, 1/3
        7 / 24,  # 17: bars 17-18: 1/4, 1/3
    ]
    got = uniqueness_weights(labels)
    np.testing.assert_allclose(got.iloc[:18], unique, rtol=1e-12)
    assert got.iloc[18:].isna().all()
    # Decay 0.5: factor = 1 - 0.5 × (uniqueness still to come after the row) / total, so the
    # newest row keeps 1 and the oldest gets 1 - 0.5 × (total - 11/18) / total.
    total = sum(unique)
    later = total - np.cumsum(unique)
    decayed = uniqueness_weights(labels, decay=0.5)
    np.testing.assert_allclose(decayed.iloc[:18], np.array(unique) * (1 - 0.5 * later / total))
    assert decayed.iloc[17] == pytest.approx(7 / 24)
    # Decay -0.5: slope 2 / total, factor = max(0, 1 - 2 × later / total): rows with more
    # than half the total still to come weigh 0.
    zeroed = uniqueness_weights(labels, decay=-0.5)
    np.testing.assert_allclose(
        zeroed.iloc[:18], np.array(unique) * np.maximum(0, 1 - 2 * later / total)
    )
    assert (zeroed.iloc[:18][later > total / 2] == 0).all()


# ---------------------------------------------------------------- causality


def perturb_after(bars: pd.DataFrame, cut: int, seed: int) -> pd.DataFrame:
    """Random noise on every bar after row `cut`; candles stay valid."""
    rng = np.random.default_rng(seed)
    out = bars.copy()
    k = len(bars) - cut - 1
    if k > 0:
        o = out["open"].to_numpy()[cut + 1 :] * np.exp(rng.normal(0, 0.05, k))
        c = out["close"].to_numpy()[cut + 1 :] * np.exp(rng.normal(0, 0.05, k))
        out.iloc[cut + 1 :, out.columns.get_loc("open")] = o
        out.iloc[cut + 1 :, out.columns.get_loc("close")] = c
        out.iloc[cut + 1 :, out.columns.get_loc("high")] = np.maximum(o, c) * 1.01
        out.iloc[cut + 1 :, out.columns.get_loc("low")] = np.minimum(o, c) * 0.99
    return out


CUTS = (150, 777, 1500, 2998)


@pytest.mark.parametrize("cut", CUTS)
def test_volatility_at_t_uses_bars_up_to_t(bars, cut):
    small = bars.iloc[:3000]
    before = ewm_volatility(small["close"], span=40)
    after = ewm_volatility(perturb_after(small, cut, seed=cut)["close"], span=40)
    np.testing.assert_array_equal(after.iloc[: cut + 1], before.iloc[: cut + 1])
    assert (after.iloc[cut + 1 :] != before.iloc[cut + 1 :]).all()  # and it sees them


LABELLERS = {
    "triple": lambda b: triple_barrier_labels(b, 24, profit_take=1.5, stop_loss=1.0, span=40),
    "triple-next-open": lambda b: triple_barrier_labels(
        b, 10, profit_take=2.0, stop_loss=2.0, span=40, entry="next_open", vertical="sign"
    ),
    "jump-sigma": lambda b: jump_labels(b, 12, sigmas=3.0, span=40),
    "net": lambda b: net_forward_returns(b, 8, entry="next_open"),
}


@pytest.mark.parametrize("name", LABELLERS)
@pytest.mark.parametrize("cut", CUTS)
def test_labels_never_read_past_their_t1(bars, name, cut):
    """Bars after `cut` changed (or cut off): every label with t1 <= cut is unchanged, and
    on the cut data every label that the full data resolves later is NaN, not a guess."""
    small = bars.iloc[:3000]
    label = LABELLERS[name]
    full = label(small)
    done = (full["t1_pos"] <= cut).to_numpy()
    assert done.sum() > 0.9 * cut - 100  # most rows up to the cut are decided by then
    changed = label(perturb_after(small, cut, seed=cut + 1))
    pd.testing.assert_frame_equal(changed[done], full[done])
    truncated = label(small.iloc[: cut + 1])
    pd.testing.assert_frame_equal(truncated[done[: cut + 1]], full[done])
    assert truncated["label"][~done[: cut + 1]].isna().all()
    assert truncated["t1"][~done[: cut + 1]].isna().all()
    assert (full["t1"].dropna() >= full["t1"].dropna().index).all()


# ---------------------------------------------------------------- bad input


def test_bars_lacking_a_column_name_it(hand):
    with pytest.raises(SchemaError, match="high") as err:
        triple_barrier_labels(hand.drop(columns="high"), 3)
    assert err.value.column == "high" and err.value.fix


def test_unsorted_bars_are_refused(hand):
    with pytest.raises(SchemaError, match="strictly increasing"):
        jump_labels(hand.iloc[::-1], 3, threshold=0.01)


@pytest.mark.parametrize(
    "call",
    [
        lambda b: triple_barrier_labels(b, 0),
        lambda b: triple_barrier_labels(b, 2.5),
        lambda b: triple_barrier_labels(b, True),
        lambda b: triple_barrier_labels(b, 3, profit_take=-1),
        lambda b: triple_barrier_labels(b, 3, stop_loss=float("nan")),
        lambda b: triple_barrier_labels(b, 3, vertical="maybe"),
        lambda b: triple_barrier_labels(b, 3, entry="open"),
        lambda b: triple_barrier_labels(b, 3, span=0),
        lambda b: jump_labels(b, 3),
        lambda b: jump_labels(b, 3, threshold=0.01, sigmas=2.0),
        lambda b: jump_labels(b, 3, threshold=0.0),
        lambda b: jump_labels(b, 3, sigmas="2"),
        lambda b: net_forward_returns(b, 3, commission=1.5),
        lambda b: net_forward_returns(b, 3, slippage=-0.001),
    ],
)
def test_bad_parameters_are_config_errors(hand, call):
    with pytest.raises(ConfigError):
        call(hand)


def test_choice_errors_say_what_to_pass(hand):
    with pytest.raises(ConfigError, match='entry="close" or entry="next_open"'):
        triple_barrier_labels(hand, 3, entry="open")


def test_misaligned_volatility_or_side_is_a_schema_error(hand):
    with pytest.raises(SchemaError, match="volatility") as err:
        triple_barrier_labels(hand, 3, volatility=pd.Series(0.01, index=hand.index[:-1]))
    assert err.value.column == "volatility"
    with pytest.raises(SchemaError, match="side"):
        net_forward_returns(hand, 3, side=np.ones(len(hand)))


def test_bad_volatility_or_side_values_name_the_row(hand):
    sigma = pd.Series(0.01, index=hand.index)
    sigma.iloc[7] = -0.01
    with pytest.raises(DataError, match="volatility") as err:
        triple_barrier_labels(hand, 3, volatility=sigma)
    assert err.value.row == 7 and err.value.timestamp == hand.index[7]
    sigma.iloc[7] = np.inf
    with pytest.raises(DataError, match="volatility"):
        jump_labels(hand, 3, sigmas=2.0, volatility=sigma)
    side = pd.Series(1.0, index=hand.index)
    side.iloc[4] = 2.0
    with pytest.raises(DataError, match="side") as err:
        triple_barrier_labels(hand, 3, side=side)
    assert err.value.row == 4 and err.value.column == "side"


def test_weights_refuse_labels_they_cannot_place(hand):
    labels = triple_barrier_labels(hand, 3, volatility=pd.Series(0.01, index=hand.index))
    with pytest.raises(SchemaError, match="t1"):
        uniqueness_weights(labels.drop(columns="t1"))
    backwards = labels["t1"].copy()
    backwards.iloc[6] = hand.index[2]
    with pytest.raises(DataError, match="ends before it starts") as err:
        uniqueness_weights(backwards)
    assert err.value.row == 6
    off_grid = labels["t1"].copy()
    off_grid.iloc[3] = hand.index[3] + pd.Timedelta(minutes=30)
    with pytest.raises(DataError, match="not a bar") as err:
        uniqueness_weights(off_grid)
    assert err.value.row == 3 and err.value.column == "t1"
    with pytest.raises(DataError, match="not a bar"):
        uniqueness_weights(labels, hand.index[5:])
    with pytest.raises(SchemaError, match="strictly increasing"):
        uniqueness_weights(labels, hand.index[::-1])
    for decay in (-1.0, 1.5, float("nan"), "1"):
        with pytest.raises(ConfigError, match="decay"):
            uniqueness_weights(labels, decay=decay)


@pytest.mark.parametrize("rows", [0, 1, 2])
def test_fewer_bars_than_the_horizon_give_unresolved_rows(hand, rows):
    short = hand.iloc[:rows]
    frames = [
        triple_barrier_labels(short, 3, volatility=pd.Series(0.01, index=short.index)),
        jump_labels(short, 3, threshold=0.01),
        net_forward_returns(short, 3),
    ]
    for frame in frames:
        assert len(frame) == rows and frame["label"].isna().all() and frame["t1"].isna().all()
    assert uniqueness_weights(frames[0]).isna().all()


def test_no_resolved_label_gives_nan_weights(hand):
    labels = triple_barrier_labels(hand.iloc[:2], 3)  # warm-up only: nothing resolved
    assert uniqueness_weights(labels, decay=0.5).isna().all()
    assert (concurrency(labels) == 0).all()
