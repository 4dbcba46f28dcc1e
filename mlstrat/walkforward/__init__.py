"""Walk-forward retraining: purged folds, per-fold models, thresholds and leakage checks."""

from mlstrat.walkforward.leakage import LeakageReport, check_leakage
from mlstrat.walkforward.splits import Fold, WalkForward
from mlstrat.walkforward.thresholds import Thresholds, fit_thresholds

__all__ = [
    "Fold",
    "LeakageReport",
    "Thresholds",
    "WalkForward",
    "check_leakage",
    "fit_thresholds",
]
