"""Sweep throughput: 100 strategy-parameter trials on the demo's cached predictions, with 1
and 2 workers. Prints one JSON object.

The demo's XGBoost entry (configs/demo.yaml, its parameters unchanged) on a reduced range
of the shipped BTCUSDT 1h sample (`--start` to `--end`, 2-month training and 1-month test
folds), traded by the demo's strategy without the volatility LSTM (no Keras training here):
its walk-forward runs once into a cache, then `mlstrat sweep` backtests a 5 x 5 x 2 x 2 grid
(max_hold_bars, tiers, allow_short, min_tier = 100 trials) over those cached predictions,
first with 1 worker, then, after dropping the trials' cache entries, with 2. Each time covers
the whole sweep as a user waits for it: the cached stages, parsing every combination, the
backtests, logging the trials, the ranking and the page. The machine's load averages and
its spare parallel capacity (two busy processes vs one, `walkforward.parallel_capacity`)
are recorded at the start and the end: on a shared machine other processes cap the speed-up.

    .venv/bin/python benchmarks/sweep.py [--start 2025-01-01 --end 2025-05-01]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from walkforward import parallel_capacity  # noqa: E402

from mlstrat.config import RunConfig, load_config  # noqa: E402
from mlstrat.fileio import remove_path  # noqa: E402
from mlstrat.run import run_experiment  # noqa: E402
from mlstrat.sweep import run_sweep  # noqa: E402

DEMO = REPO / "configs" / "demo.yaml"
#: Three tiers each, so that min_tier's low / medium / high exist in every combination.
TIERS = [
    [[0.55, 0.25], [0.60, 0.5], [0.65, 1.0]],
    [[0.52, 0.25], [0.55, 0.5], [0.60, 1.0]],
    [[0.55, 0.5], [0.58, 0.75], [0.62, 1.0]],
    [[0.58, 0.25], [0.62, 0.5], [0.70, 1.0]],
    [[0.50, 0.25], [0.55, 0.5], [0.60, 0.75]],
]
GRID = {
    "strategy.params.max_hold_bars": [6, 12, 24, 48, 96],
    "sizing.params.tiers": TIERS,
    "strategy.params.allow_short": [True, False],
    "strategy.params.min_tier": ["low", "medium"],
}
SPEEDUP_TARGET = 1.6
SECONDS_TARGET = 120.0


def reduced_demo(start: str, end: str) -> RunConfig:
    """configs/demo.yaml, read once: its xgboost entry only, the reduced range, a plain
    rolling walk-forward, no volatility targeting (its source, the volatility LSTM, is not
    trained here)."""
    raw = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    xgboost = next(p for p in raw["predictors"] if p["name"] == "xgboost")
    sizing = {k: v for k, v in raw["sizing"]["params"].items() if k in ("method", "tiers")}
    validation = raw.get("walkforward", {}).get("validation", 0.2)
    overrides = {
        "data.start": start,
        "data.end": end,
        "walkforward": {"train": "2mo", "test": "1mo", "validation": validation},
        "predictors": [xgboost],
        "sizing": {"params": sizing},
    }
    return load_config(DEMO, overrides)


def timed_sweep(out: Path, cache: Path, config: RunConfig, n_jobs: int) -> tuple[float, Any]:
    """Seconds of a whole sweep with `n_jobs` workers, its trials' cache entries dropped first."""
    remove_path(cache / "sweep")  # this benchmark's own temporary cache
    started = time.perf_counter()
    result = run_sweep(config, out, grid=GRID, n_jobs=n_jobs, cache_dir=cache, progress=False)
    return time.perf_counter() - started, result


def different_trades(one: Path, two: Path, trials: list[str]) -> list[str]:
    """Trials whose trades.csv differ between the two sweeps (each must be deterministic)."""
    rel = Path("sweep") / "trials"
    return [
        t
        for t in trials
        if (one / rel / t / "result" / "trades.csv").read_bytes()
        != (two / rel / t / "result" / "trades.csv").read_bytes()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2025-01-01", help="first bar (UTC)")
    parser.add_argument("--end", default="2025-05-01", help="last bar (UTC)")
    args = parser.parse_args()
    config = reduced_demo(args.start, args.end)  # read once: the demo file may change meanwhile
    load_start, capacity_start = os.getloadavg(), parallel_capacity()
    with tempfile.TemporaryDirectory(prefix="mlstrat-bench-sweep-") as tmp:
        root = Path(tmp)
        cache = root / "cache"
        started = time.perf_counter()
        run = run_experiment(config, root / "run", cache_dir=cache, progress=False)
        walkforward_s = time.perf_counter() - started
        one_s, one = timed_sweep(root / "one", cache, config, 1)
        two_s, two = timed_sweep(root / "two", cache, config, 2)
        trials = len(two.ranking)
        same = one.ranking.equals(two.ranking)
        differing = different_trades(root / "one", root / "two", list(two.ranking["trial"]))
        bars = int(run.results["xgboost"].equity.size)
        computed = sum(s == "computed" for s in two.status("sweep").values())
    load_end, capacity_end = os.getloadavg(), parallel_capacity()
    speedup = one_s / two_s
    print(
        json.dumps(
            {
                "benchmark": "sweep",
                "trials": trials,
                "seconds": round(two_s, 2),
                "seconds_1_worker": round(one_s, 2),
                "trials_per_second_1_worker": round(trials / one_s, 3),
                "trials_per_second_2_workers": round(trials / two_s, 3),
                "speedup_2_over_1": round(speedup, 2),
                "backtested_with_2_workers": computed,
                "rankings_identical": same,
                "trials_with_different_trades": differing,
                "bars_per_trial": bars,
                "range": [args.start, args.end],
                "walkforward_and_features_seconds": round(walkforward_s, 2),
                "best": two.best["label"],
                "pbo": two.pbo.get("pbo"),
                "load_average_start": [round(v, 2) for v in load_start],
                "load_average_end": [round(v, 2) for v in load_end],
                "parallel_capacity_start": capacity_start,
                "parallel_capacity_end": capacity_end,
                "cpu_count": os.cpu_count(),
                "targets": {"speedup_2_over_1": SPEEDUP_TARGET, "seconds": SECONDS_TARGET},
                "met": {
                    "speedup_2_over_1": speedup >= SPEEDUP_TARGET,
                    "seconds": two_s <= SECONDS_TARGET,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
