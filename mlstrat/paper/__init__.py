"""Paper trading with the run's own strategy, predictors and fold models, and its reconciliation.

`run_paper` runs the configured strategy in backtrader's live mode on closed bars from a
`CandleSource` (a candle directory another tool appends to) or a `CcxtSource` (an
exchange's public OHLCV), journaling every bar into SQLite; `reconcile` backtests the
same window from the same bars and compares the two bar by bar. See docs/paper.md.
"""

from mlstrat.paper.engine import PaperResult, PaperSettings, run_paper
from mlstrat.paper.journal import Journal
from mlstrat.paper.reconcile import Difference, Reconciliation, journal_result, reconcile
from mlstrat.paper.sources import BarPolicy, CandleSource, CcxtSource, open_source

__all__ = [
    "BarPolicy",
    "CandleSource",
    "CcxtSource",
    "Difference",
    "Journal",
    "PaperResult",
    "PaperSettings",
    "Reconciliation",
    "journal_result",
    "open_source",
    "reconcile",
    "run_paper",
]
