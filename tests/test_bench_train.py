"""benchmarks/train.py --quick runs every issue-17 section and prints the acceptance keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_quick_benchmark_prints_the_acceptance_keys() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "train.py"),
            "--quick",
            "--sections",
            "windows_memory,seed_fold,warm_start,chain_memory,plan",
            "--only",
            "lstm",
        ],
        capture_output=True,
        text=True,
        timeout=1800,  # a hang guard: ~3 minutes on 2 busy cores, more under heavier load
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    seed = out["seed_fold"]
    assert set(seed["models"]) == {"lstm"}
    for key in ("speedup_vs_keras_fit", "val_metric_ours", "val_metric_keras"):
        assert key in seed
    assert seed["val_metric_ours"] > 0 and seed["val_metric_keras"] > 0
    keras_fit = seed["models"]["lstm"]["keras_fit"]
    assert keras_fit["best_val_loss"] == pytest.approx(min(keras_fit["val_losses"]), abs=1e-5)
    # plain's target: the epoch its EarlyStopping on val_loss (penalty included) gives back
    with_penalty = keras_fit["val_losses_with_penalty"]
    kept = keras_fit["kept_epoch"] - 1
    assert with_penalty[kept] == min(with_penalty)
    assert keras_fit["kept_val_loss"] == pytest.approx(keras_fit["val_losses"][kept], abs=1e-5)
    warm = out["warm_start"]
    assert warm["folds"] == 3 and warm["time_ratio_cold_over_warm"] > 0
    assert isinstance(warm["auc_delta"], float)
    # the warm run's later folds trained the warm budget (1 epoch per member)
    assert all(e == [1, 1] for e in warm["warm"]["epochs_trained"][1:])
    memory = out["windows_memory"]
    assert memory["peak_rss_ratio_before_over_after"] > 0
    assert memory["before"]["variant"] == "before" and memory["after"]["variant"] == "after"
    chain = out["chain_memory"]
    assert len(chain["before"]["rss_mb_caller_after_each_fold"]) == chain["before"]["folds"] == 4
    assert chain["after"]["peak_rss_mb_workers"] > 0  # the folds ran in worker processes
    assert chain["peak_rss_ratio_before_over_after"] > 0
    # a quick plan takes seconds: its hours keep 3 significant digits instead of rounding to 0
    plan_seconds = out["full_plan"]["total_seconds"]  # rounded to 0.1 s
    assert plan_seconds > 0 and out["full_plan_hours"] > 0
    assert out["full_plan_hours"] == pytest.approx(plan_seconds / 3600, rel=0.01, abs=2e-5)
    assert {"start", "end"} <= set(out["load_average_1min"])
