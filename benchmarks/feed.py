"""FeatureFeed vs stock PandasData: bars/s of a whole ``cerebro.run()`` (preload included).

Synthetic seeded random-walk OHLCV (hourly UTC index) with 20 and with 100
feature columns; the same light strategy (reads a few lines, trades on a
threshold crossing) runs over both feeds. Prints one JSON object.

    python benchmarks/feed.py [--bars 100000] [--columns 20 100] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlstrat.feed import FeatureFeed  # noqa: E402


def synthetic_frame(bars: int, columns: int, seed: int = 7) -> pd.DataFrame:
    """Random-walk OHLCV plus ``columns`` float features f_0..f_{k-1} (some NaN warm-up)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, bars)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.004, bars)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.gamma(2.0, 50.0, bars)
    index = pd.date_range("2010-01-01", periods=bars, freq="h", tz="UTC", name="timestamp")
    data = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
    feats = rng.normal(0.0, 1.0, (bars, columns))
    # f_0 is a slow oscillator so the strategy trades now and then, not every bar
    feats[:, 0] = np.sin(np.arange(bars) * (2 * np.pi / 500)) + rng.normal(0.0, 0.05, bars)
    feats[:50] = np.nan  # warm-up, as real indicators have
    for j in range(columns):
        data[f"f_{j}"] = feats[:, j]
    return pd.DataFrame(data, index=index)


class ThresholdStrategy(bt.Strategy):
    """Reads three feature lines and the close each bar; trades when f_0 crosses 0."""

    def next(self):
        d = self.data
        now, before = d.f_0[0], d.f_0[-1]
        _ = d.f_1[0] + d.f_2[0] + d.close[0]
        if before <= 0.0 < now and not self.position:
            self.buy()
        elif before >= 0.0 > now and self.position:
            self.close()


def pandas_data_class(columns: list[str]) -> type[bt.feeds.PandasData]:
    """Stock PandasData with the extra lines declared the documented way."""
    return type(
        f"PandasData{len(columns)}",
        (bt.feeds.PandasData,),
        {"lines": tuple(columns), "params": tuple((c, -1) for c in columns)},
    )


def run(make_feed) -> tuple[float, float, int]:
    """(setup seconds, run seconds, bars seen) for one Cerebro run."""
    t0 = time.perf_counter()
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(make_feed())
    cerebro.addstrategy(ThresholdStrategy)
    t1 = time.perf_counter()
    strat = cerebro.run()[0]
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, len(strat.data)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=100_000)
    ap.add_argument("--columns", type=int, nargs="+", default=[20, 100])
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs per feed")
    args = ap.parse_args(argv)

    out = {
        "bars": args.bars,
        "columns": args.columns,
        "featurefeed_bars_per_s": [],
        "pandasdata_bars_per_s": [],
        "speedup": [],
        "featurefeed_setup_s": [],
        "featurefeed_run_s": [],
        "pandasdata_setup_s": [],
        "pandasdata_run_s": [],
    }
    for k in args.columns:
        df = synthetic_frame(args.bars, k)
        cols = [f"f_{j}" for j in range(k)]
        pd_cls = pandas_data_class(cols)
        results = {}
        for label, make in (
            ("featurefeed", lambda df=df, cols=cols: FeatureFeed.from_frame(df, columns=cols)),
            ("pandasdata", lambda df=df, pd_cls=pd_cls: pd_cls(dataname=df)),
        ):
            best = None
            for _ in range(args.repeat):
                setup, secs, seen = run(make)
                if seen != args.bars:
                    raise SystemExit(f"{label} saw {seen} bars, expected {args.bars}")
                if best is None or secs < best[1]:
                    best = (setup, secs)
            results[label] = best
        ff_rate = args.bars / results["featurefeed"][1]
        pd_rate = args.bars / results["pandasdata"][1]
        out["featurefeed_bars_per_s"].append(round(ff_rate, 1))
        out["pandasdata_bars_per_s"].append(round(pd_rate, 1))
        out["speedup"].append(round(ff_rate / pd_rate, 2))
        out["featurefeed_setup_s"].append(round(results["featurefeed"][0], 3))
        out["featurefeed_run_s"].append(round(results["featurefeed"][1], 3))
        out["pandasdata_setup_s"].append(round(results["pandasdata"][0], 3))
        out["pandasdata_run_s"].append(round(results["pandasdata"][1], 3))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
