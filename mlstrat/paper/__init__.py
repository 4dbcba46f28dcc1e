"""Paper trading with the run's own strategy, predictors and fold models, and its reconciliation.

`run_paper` runs the configured strategy in backtrader's live mode on closed bars from a
`CandleSource` (a candle directory another tool appends to) or a `CcxtSource` (an
exchange's public OHLCV), journaling every bar into SQLite; `reconcile` backtests the
same window from the same bars and compares the two bar by bar. See docs/paper.md.

Names are imported on first use, so `mlstrat --help` does not load backtrader for them.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "PaperResult": "engine",
    "PaperSettings": "engine",
    "run_paper": "engine",
    "Journal": "journal",
    "Difference": "reconcile",
    "Reconciliation": "reconcile",
    "journal_result": "reconcile",
    "reconcile": "reconcile",
    "BarPolicy": "sources",
    "CandleSource": "sources",
    "CcxtSource": "sources",
    "open_source": "sources",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mlstrat.paper' has no attribute {name!r}")
    loaded = importlib.import_module(f"mlstrat.paper.{module}")
    # Bind every name of that submodule now: importing `mlstrat.paper.reconcile` sets the
    # package attribute `reconcile` to the module, and the function must win.
    globals().update({n: getattr(loaded, n) for n, m in _WHERE.items() if m == module})
    return globals()[name]
