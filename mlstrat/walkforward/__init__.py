"""Walk-forward retraining: purged folds, per-fold models, thresholds and leakage checks.

    from mlstrat.walkforward import WalkForward, run_walk_forward
    result = run_walk_forward("feed.parquet", "xgboost", target="direction_1",
                              splits=WalkForward(train="4mo", test="2mo"), out="models/run")

Online retraining inside a backtest: `mlstrat.walkforward.online.WalkForwardStrategy`
(imported on demand, since it pulls in backtrader).
"""

from mlstrat.walkforward.cpcv import CombinatorialPurgedCV, CPCVFold, CPCVPath, assemble_path
from mlstrat.walkforward.leakage import LeakageReport, check_leakage
from mlstrat.walkforward.runner import WalkForwardResult, run_walk_forward
from mlstrat.walkforward.splits import Fold, WalkForward
from mlstrat.walkforward.thresholds import Thresholds, fit_thresholds

__all__ = [
    "CPCVFold",
    "CPCVPath",
    "CombinatorialPurgedCV",
    "Fold",
    "LeakageReport",
    "Thresholds",
    "WalkForward",
    "WalkForwardResult",
    "assemble_path",
    "check_leakage",
    "fit_thresholds",
    "run_walk_forward",
]
