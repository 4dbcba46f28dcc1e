"""Walk-forward fold throughput and fold-parallel speed-up, on real BTCUSDT 1h candles.

XGBoost (its defaults: 500 trees, depth 8, early stopping 50) on the
`xgb` feature set over the full shared BTCUSDT 1h file (the shipped two-year
sample when the shared data is absent), the default 4-month train / 2-month
step, run with n_jobs=1 and n_jobs=2. Each run uses the runner's thread
policy: every worker gets cores // n_jobs XGBoost threads, so n_jobs=1 is one
fold at a time on all cores and n_jobs=2 is two single-threaded folds at once.
The speed-up is n_jobs=1 wall time / n_jobs=2 wall time, both measured here;
a third run, n_jobs=1 with one thread per fit, gives the speed-up of fold
parallelism alone. All runs must give identical predictions. The machine's
load average and its spare parallel capacity (two busy processes vs one,
before and after) are recorded: on a shared machine other processes cap
every speed-up, and these figures say by how much. The same is recorded for the
`lstm` predictor on a one-year slice with a few epochs. Prints one JSON object.

``--dask`` runs the same XGBoost walk-forward (and the lstm one unless
--skip-lstm) through joblib's dask backend instead: on a `LocalCluster` of 2
single-threaded worker processes that the runner starts, and through a
scheduler address (a `dask scheduler` and `dask worker --nworkers 2 --nthreads 1`
started here as separate processes, as on a real cluster), beside the loky
n_jobs=2 run; all must give the predictions of the loky run.

    .venv/bin/python benchmarks/walkforward.py [--skip-lstm] [--lstm-epochs 2] [--dask]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlstrat.data import load_bars  # noqa: E402
from mlstrat.features import build_feature_feed, write_feature_feed  # noqa: E402
from mlstrat.walkforward.runner import available_cores, run_walk_forward  # noqa: E402
from mlstrat.walkforward.splits import WalkForward  # noqa: E402

SHARED = REPO.parent / "shared" / "datasets" / "binance" / "BTCUSDT-1h.parquet"
SAMPLE = REPO / "datasets" / "BTCUSDT-1h.parquet"
SPLITS = WalkForward(train="4mo", test="2mo")


_SPIN = "x = 0\nfor i in range(15_000_000):\n    x += i"


def parallel_capacity() -> float:
    """How many cores' worth of CPU two busy processes get right now (2.0 on an idle 2-core
    machine, ~1.0 when other work already fills it): the ceiling of any 2-job speed-up."""
    import subprocess

    def spin(n: int) -> float:
        started = time.perf_counter()
        procs = [
            subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.DEVNULL)
            for _ in range(n)
        ]
        for p in procs:
            p.wait()
        return time.perf_counter() - started

    one = spin(1)
    return round(2 * one / spin(2), 2)


def _mean(folds: list[dict], key: str) -> float | None:
    values = [f[key] for f in folds if f.get(key) is not None]
    return round(sum(values) / len(values), 4) if values else None


def measure(feed: Path, predictor: str, params: dict, thread_param: str, work: Path) -> dict:
    """Wall time with n_jobs=1 and 2 under the runner's thread policy, plus n_jobs=1 with
    one thread per fit (the fold-parallel efficiency baseline)."""
    runs = {}
    predictions = {}
    configs = {
        "n_jobs_1": (1, params),
        "n_jobs_2": (2, params),
        "n_jobs_1_single_thread": (1, {**params, thread_param: 1}),
    }
    for name, (n_jobs, run_params) in configs.items():
        started = time.perf_counter()
        result = run_walk_forward(
            feed,
            predictor,
            run_params,
            "direction_1",
            SPLITS,
            work / f"{predictor}-{name}",
            n_jobs=n_jobs,
            resume=False,
            progress=False,
        )
        seconds = time.perf_counter() - started
        n = len(result.folds)
        runs[name] = {
            "seconds": round(seconds, 2),
            "seconds_per_fold": round(seconds / n, 3),
            "threads_per_fit": run_params.get(thread_param, max(1, available_cores() // n_jobs)),
        }
        predictions[name] = result.predictions()
        folds = result.folds
    first = predictions["n_jobs_1"]
    return {
        "folds": len(folds),
        "test_bars": int(sum(f["n_test"] for f in folds)),
        **runs,
        "seconds": runs["n_jobs_2"]["seconds"],
        "seconds_per_fold": runs["n_jobs_2"]["seconds_per_fold"],
        "speedup_n_jobs_2_over_1": round(
            runs["n_jobs_1"]["seconds"] / runs["n_jobs_2"]["seconds"], 3
        ),
        "speedup_n_jobs_2_over_1_single_thread": round(
            runs["n_jobs_1_single_thread"]["seconds"] / runs["n_jobs_2"]["seconds"], 3
        ),
        "identical_predictions": all(first.equals(p) for p in predictions.values()),
        "mean_auc": _mean(folds, "auc"),
        "mean_ic": _mean(folds, "ic"),
        "mean_best_iteration": _mean(folds, "best_iteration"),
        "mean_best_epoch": _mean(folds, "best_epoch"),
    }


class LocalScheduler:
    """A `dask scheduler` and `dask worker` processes on this machine, reached by address."""

    def __init__(self, work: Path, workers: int = 2) -> None:
        import subprocess

        dask = str(Path(sys.executable).with_name("dask"))
        self.file = work / "scheduler.json"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.procs = [
            subprocess.Popen(
                [dask, "scheduler", "--scheduler-file", str(self.file), "--port", "0",
                 "--no-dashboard"], **quiet,
            )
        ]  # fmt: skip
        deadline = time.monotonic() + 60
        while not self.file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.address = json.loads(self.file.read_text())["address"]
        self.procs.append(
            subprocess.Popen(
                [dask, "worker", self.address, "--nworkers", str(workers), "--nthreads", "1",
                 "--no-dashboard", "--memory-limit", "0"], **quiet,
            )
        )  # fmt: skip
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=120)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            proc.wait(timeout=60)


def measure_dask(feed: Path, predictor: str, params: dict, work: Path) -> dict:
    """The walk-forward with loky n_jobs=2, on a LocalCluster of 2 workers the runner starts,
    and through the address of a scheduler with 2 worker processes."""
    runs, predictions = {}, {}
    scheduler = LocalScheduler(work)
    try:
        for name, backend, address in (
            ("loky_n_jobs_2", "loky", None),
            ("dask_local_cluster_2", "dask", None),
            ("dask_scheduler_address_2", "dask", scheduler.address),
        ):
            started = time.perf_counter()
            result = run_walk_forward(
                feed, predictor, params, "direction_1", SPLITS, work / f"{predictor}-{name}",
                n_jobs=2, backend=backend, scheduler=address, resume=False, progress=False,
            )  # fmt: skip
            runs[name] = {"seconds": round(time.perf_counter() - started, 2)}
            predictions[name] = result.predictions()
            runs[name]["seconds_per_fold"] = round(runs[name]["seconds"] / len(result.folds), 3)
    finally:
        scheduler.close()
    first = predictions["loky_n_jobs_2"]
    return {
        "folds": len(result.folds),
        **runs,
        "identical_predictions": all(first.equals(p) for p in predictions.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-lstm", action="store_true")
    parser.add_argument("--lstm-epochs", type=int, default=2)
    parser.add_argument("--dask", action="store_true", help="loky vs LocalCluster vs address")
    args = parser.parse_args()
    if args.dask:
        measure_all = measure_dask
    else:

        def measure_all(feed: Path, predictor: str, params: dict, work: Path) -> dict:
            thread = "n_jobs" if predictor == "xgboost" else "n_threads"
            return measure(feed, predictor, params, thread, work)

    source = SHARED if SHARED.is_file() else SAMPLE
    bars = load_bars(source, symbol="BTCUSDT")
    out: dict = {
        "benchmark": "walkforward" + (" (dask)" if args.dask else ""),
        "data": str(source.relative_to(REPO.parent)),
        "splits": SPLITS.describe(),
        "cores": available_cores(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "parallel_capacity_start": parallel_capacity(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        feed = build_feature_feed(bars, "xgb", targets=("direction:1", "forward_return:1"))
        path = write_feature_feed(feed, work / "xgb.parquet")
        out["xgboost"] = {
            "feature_set": "xgb",
            "bars": len(feed),
            "features": int(sum(r == "feature" for r in feed.attrs["mlstrat"]["roles"].values())),
            **measure_all(path, "xgboost", {}, work),
        }
        if not args.skip_lstm:
            end = bars.index[-1]
            year = bars[bars.index > end - pd.DateOffset(years=1)]
            feed = build_feature_feed(year, "lstm", targets=("direction:1", "forward_return:1"))
            path = write_feature_feed(feed, work / "lstm.parquet")
            params = {"epochs": args.lstm_epochs, "patience": args.lstm_epochs}
            out["lstm"] = {
                "feature_set": "lstm",
                "bars": len(feed),
                "params": params,
                **measure_all(path, "lstm", params, work),
            }
    out["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    out["parallel_capacity_end"] = parallel_capacity()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
