"""Cost of the strategy layer: MLStrategy + TieredConfidenceSizer + PredictionRecorder vs bare backtrader.

The same precomputed signal series (momentum P(up) of a seeded random walk,
thresholded at 0.6 / 0.4 as walk-forward signals are) is traded over the same
bars by

  (a) a bare ``bt.Strategy`` (long on +1, short on −1, exit on a flip) with
      ``FixedSize`` on a minimal numpy-backed feed (bulk preload, nothing else);
  (b) ``MLStrategy`` (allow_short) + ``TieredConfidenceSizer`` + ``PredictionRecorder``
      on ``FeatureFeed``;
  (c) the bare strategy of (a) on ``FeatureFeed``, so (b)/(c) isolates the
      strategy layer from the feed.

Both strategies make the same decisions (checked: equal closed-trade counts).
Each whole ``cerebro.run()`` (preload included) is timed ``--repeat`` times,
the three set-ups interleaved, and the fastest run of each kept. Times are
process CPU seconds, because the machine is shared and wall time measures the
neighbours too; wall-clock bars/s are reported beside them. Prints one JSON
object; ``ratio`` = time(b) / time(a), target ≤ 1.3.

    python benchmarks/overhead.py [--bars 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlstrat.feed import FeatureFeed, date2num_array  # noqa: E402
from mlstrat.sizing import TieredConfidenceSizer  # noqa: E402
from mlstrat.strategy import MLStrategy, PredictionRecorder  # noqa: E402


def frame(bars: int, seed: int = 11) -> pd.DataFrame:
    """Random-walk OHLCV with a causal momentum prediction feed joined as columns."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.005, bars)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.002, bars)) * close
    index = pd.date_range("2012-01-01", periods=bars, freq="h", tz="UTC", name="timestamp")
    df = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.gamma(2.0, 50.0, bars),
        },
        index=index,
    )
    r = np.log(df["close"]).diff()
    z = r.rolling(12).sum() / (r.rolling(48).std() * np.sqrt(12))
    p_up = 1.0 / (1.0 + np.exp(-z))
    df["proba_up"] = p_up
    df["confidence"] = np.maximum(p_up, 1 - p_up)
    df["signal"] = np.where(p_up >= 0.6, 1.0, np.where(p_up <= 0.4, -1.0, 0.0))
    df.loc[p_up.isna(), ["signal", "confidence"]] = np.nan
    return df


class NumpyFeed(bt.feed.DataBase):
    """The least a feed can do: OHLCV + signal arrays copied into the line buffers at preload."""

    lines = ("signal",)
    params = (("arrays", None),)

    def start(self) -> None:
        super().start()
        self._done = False

    def _load(self) -> bool:
        return False  # everything arrives through preload

    def preload(self) -> None:
        for name, values in self.p.arrays.items():
            getattr(self.lines, name).array.frombytes(np.ascontiguousarray(values).tobytes())
        self._last()
        self.home()


def numpy_feed(df: pd.DataFrame) -> NumpyFeed:
    arrays = {c: df[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")}
    arrays["openinterest"] = np.zeros(len(df))
    arrays["signal"] = df["signal"].to_numpy(dtype=float)
    arrays["datetime"] = date2num_array(df.index)
    return NumpyFeed(arrays=arrays)


class Bare(bt.Strategy):
    """Long on +1, short on −1, exit on the opposite signal; 0 and NaN hold."""

    def next(self) -> None:
        s = self.data.signal[0]
        pos = self.position.size
        if s > 0 and pos <= 0:
            if pos < 0:
                self.close()
            self.buy()
        elif s < 0 and pos >= 0:
            if pos > 0:
                self.close()
            self.sell()


class ClosedTrades(bt.Analyzer):
    """Counts closed trades (backtrader's TradeAnalyzer costs more than the strategies)."""

    def start(self) -> None:
        self.count = 0

    def notify_trade(self, trade) -> None:
        self.count += trade.isclosed


def run(feed, strategy, sizer, sizer_kwargs, analyzer=None, params=None):
    """(cpu seconds, wall seconds, closed trades) of one cerebro.run()."""
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(1e7)
    cerebro.broker.setcommission(commission=0.001)
    cerebro.adddata(feed)
    cerebro.addstrategy(strategy, **(params or {}))
    cerebro.addsizer(sizer, **sizer_kwargs)
    if analyzer is not None:
        cerebro.addanalyzer(analyzer)
    cerebro.addanalyzer(ClosedTrades, _name="closed")
    c0, w0 = time.process_time(), time.perf_counter()
    strat = cerebro.run()[0]
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return cpu, wall, strat.analyzers.closed.count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    df = frame(args.bars)
    pred_cols = ["signal", "confidence", "proba_up"]

    setups = {
        "bare": lambda: run(numpy_feed(df), Bare, bt.sizers.FixedSize, {"stake": 1}),
        "mlstrat": lambda: run(
            FeatureFeed.from_frame(df, columns=pred_cols),
            MLStrategy,
            TieredConfidenceSizer,
            {},
            PredictionRecorder,
            {"allow_short": True},
        ),
        "bare_featurefeed": lambda: run(
            FeatureFeed.from_frame(df, columns=pred_cols), Bare, bt.sizers.FixedSize, {"stake": 1}
        ),
    }
    runs: dict[str, list] = {name: [] for name in setups}
    for _ in range(args.repeat):
        for name, fn in setups.items():
            runs[name].append(fn())
    cpu = {name: min(r[0] for r in rs) for name, rs in runs.items()}
    wall = {name: min(r[1] for r in rs) for name, rs in runs.items()}
    trades = {name: rs[0][2] for name, rs in runs.items()}
    if len(set(trades.values())) != 1:
        raise SystemExit(f"strategies disagree on the closed trades: {trades}")
    result = {
        "bars": args.bars,
        "trades": trades["mlstrat"],
        "bare_bars_per_s": round(args.bars / cpu["bare"]),
        "mlstrat_bars_per_s": round(args.bars / cpu["mlstrat"]),
        "ratio": round(cpu["mlstrat"] / cpu["bare"], 3),
        "target_ratio": 1.3,
        "bare_on_featurefeed_bars_per_s": round(args.bars / cpu["bare_featurefeed"]),
        "ratio_same_feed": round(cpu["mlstrat"] / cpu["bare_featurefeed"], 3),
        "wall_bars_per_s": {name: round(args.bars / t) for name, t in wall.items()},
        "timing": "process CPU time, fastest of the repeats",
        "repeat": args.repeat,
        "python": platform.python_version(),
        "backtrader": bt.__version__,
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cpus",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
