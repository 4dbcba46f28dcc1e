"""Evidence that accumulates: a fold's net_pnl decision from every earlier out-of-sample record.

One fold's validation tail (a few hundred bars) cannot tell a realistic edge from noise:
an annual Sharpe of 2 on 1h bars has an expected t of about 0.5 over 580 bars. So with
``thresholds: {method: net_pnl, evidence: pooled}`` (the default) the decision for fold k
is made, after every fold is trained, on

* the test periods of folds 1 .. k−1, scored by *their* models (genuine out-of-sample
  records of the rule "trade when the score clears t"), up to the start of fold k's
  validation rows, then
* fold k's own validation rows, scored by fold k's model,

never anything later: every outcome is read from the bars before fold k's test start
(`trade_outcomes(stop=...)`), so a trade still open at the boundary is no evidence. The
rows of the rule family are then tested as in `fit_net_thresholds`. ``evidence:
validation`` keeps each fold's validation-only decision (what the fold directory
records in either case).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.features.targets import Target
from mlstrat.walkforward.outcomes import trade_outcomes
from mlstrat.walkforward.splits import Fold
from mlstrat.walkforward.thresholds import Thresholds
from mlstrat.walkforward.training import frame_scores, net_pnl_thresholds, threshold_options


def pooled_decisions(
    frame: pd.DataFrame,
    target: Target,
    folds: Sequence[Fold],
    tests: Sequence[pd.DataFrame],
    validations: Sequence[pd.DataFrame | None],
    threshold_params: Mapping[str, Any] | None,
    symbol: str | None = None,
) -> list[Thresholds]:
    """Fold by fold (in order), the net_pnl decision on pooled evidence (module docstring).

    frame: the feature feed (its OHLCV columns give the outcomes); tests / validations: each
    fold's test-period and validation predictions (prediction-feed rows with a timestamp)."""
    _, params, costs, _ = threshold_options(threshold_params)
    bars = frame[["open", "high", "low", "close", "volume"]]
    outcomes = functools.partial(trade_outcomes, bars, target, **costs)
    scored = [_positions(frame.index, part) for part in tests]
    decisions = []
    for k, fold in enumerate(folds):
        test_start = int(fold.test[0])
        own = _positions(frame.index, validations[k]) if validations[k] is not None else None
        cut = int(own[0][0]) if own is not None and len(own[0]) else test_start
        pieces = [(rows[rows < cut], s[0][rows < cut], s[1][rows < cut])
                  for rows, s in scored[:k]]  # fmt: skip
        if own is not None:
            pieces.append((own[0], *own[1]))
        rows = np.concatenate([p[0] for p in pieces]) if pieces else np.zeros(0, np.int64)
        order = np.argsort(rows, kind="stable")
        long = np.concatenate([p[1] for p in pieces])[order] if pieces else np.zeros(0)
        short = np.concatenate([p[2] for p in pieces])[order] if pieces else np.zeros(0)
        th = net_pnl_thresholds((long, short), rows[order], outcomes, test_start, symbol, params)
        evidence = dict(th.evidence or {})
        evidence["pooled"] = {
            "earlier_folds": [int(f.number) for f in folds[:k]],
            "earlier_bars": int(sum(len(p[0]) for p in pieces[:k])),
            "validation_bars": int(len(own[0])) if own is not None else 0,
        }
        decisions.append(_with_evidence(th, evidence))
    return decisions


def apply_decision(part: pd.DataFrame, th: Thresholds) -> pd.DataFrame:
    """A fold's test predictions with their signal and threshold columns from `th`."""
    scores = frame_scores(part)
    out = part.copy()
    if scores is not None:
        out["signal"] = th.apply(scores[0], scores[1])
    out["threshold_long"] = float(th.long)
    out["threshold_short"] = float(th.short)
    return out


def _positions(
    index: pd.Index, part: pd.DataFrame
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(positions in the feed, (long, short) scores) of prediction rows."""
    rows = index.get_indexer(pd.DatetimeIndex(part["timestamp"]))
    scores = frame_scores(part)
    if scores is None:
        nan = np.full(len(part), np.nan)
        scores = (nan, nan)
    keep = rows >= 0
    return rows[keep].astype(np.int64), (scores[0][keep], scores[1][keep])


def _with_evidence(th: Thresholds, evidence: dict[str, Any]) -> Thresholds:
    return dataclasses.replace(th, evidence=evidence)
