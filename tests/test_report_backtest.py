"""The report on a real backtrader run: TieredLongShort on the shipped BTC and ETH sample.

Predictions are E's causal momentum rule (tests/strategy_synth.py), so no model
is trained. Checks that the metrics of a real equity curve agree with empyrical,
that the two views of time in market (per-bar records, closed-trade intervals)
agree, and that a saved run rebuilds to the same numbers through the CLI.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

backtest = pytest.importorskip("mlstrat.backtest", reason="strategy layer not available")
ep = pytest.importorskip("empyrical", reason="reference library empyrical-reloaded (dev extra)")

from report_synth import backtrader_result  # noqa: E402

from mlstrat.cli import main  # noqa: E402
from mlstrat.report import metrics as M  # noqa: E402
from mlstrat.report.result import to_jsonable  # noqa: E402

SYMBOLS = ("BTCUSDT", "ETHUSDT")


@pytest.fixture(scope="module")
def run():
    res = backtrader_result()
    return res, M.compute_metrics(res)


def test_real_run_metrics_agree_with_empyrical(run):
    res, m = run
    assert m.annualisation.periods_per_year == 8760  # hourly crypto bars, weekends present
    r = res.equity.pct_change().dropna()
    t = m.trading
    assert t["sharpe"] == pytest.approx(ep.sharpe_ratio(r, annualization=8760), rel=1e-6)
    assert t["sortino"] == pytest.approx(ep.sortino_ratio(r, annualization=8760), rel=1e-6)
    assert t["max_drawdown"] == pytest.approx(ep.max_drawdown(r), abs=1e-9)
    assert t["cagr"] == pytest.approx(ep.annual_return(r, annualization=8760), rel=1e-6)
    assert t["n_trades"] == len(res.trades) > 20
    assert sum(row["n_trades"] for row in m.tiers) == len(res.trades)


def test_records_and_trades_agree_on_time_in_market(run):
    res, m = run
    for sym in SYMBOLS:
        rec = res.records[res.records["symbol"] == sym]
        held = rec["position"].to_numpy() != 0
        ts = rec["timestamp"].dt.tz_convert(None).to_numpy()
        inside = np.zeros(len(rec), bool)
        tr = res.trades[res.trades["symbol"] == sym]
        entry = tr["entry_time"].dt.tz_convert(None).to_numpy()
        exit_ = tr["exit_time"].dt.tz_convert(None).to_numpy()
        for a, b in zip(entry, exit_, strict=True):
            inside |= (ts >= a) & (ts < b)
        last_exit = exit_.max()
        closed = ts < last_exit  # after the last exit only an open trade remains
        assert np.array_equal(held[closed], inside[closed]), sym
        assert m.per_symbol[sym]["exposure"] == pytest.approx(held.mean())


def test_walk_forward_fold_rows_are_kept_per_symbol(run):
    _, m = run
    keyed = {(r["symbol"], r["fold"]): r for r in m.folds}
    assert set(keyed) >= {(s, f) for s in SYMBOLS for f in range(3)}
    assert keyed[("ETHUSDT", 2)]["accuracy"] == pytest.approx(0.52)  # walk-forward's own value
    assert keyed[("ETHUSDT", 2)]["train_rows"] == 1002
    assert keyed[("ETHUSDT", 2)]["auc"] is not None  # filled in from the records


@pytest.mark.slow
def test_saved_real_run_rebuilds_through_the_cli(run, tmp_path):
    res, _ = run
    res.save(tmp_path / "saved")
    assert main(["report", "--run", str(tmp_path / "saved")]) == 0
    rebuilt = json.loads((tmp_path / "saved" / "metrics.json").read_text())
    direct = to_jsonable(M.compute_metrics(res).to_dict())
    assert rebuilt["trading"] == direct["trading"]
    assert rebuilt["tiers"] == direct["tiers"] and rebuilt["folds"] == direct["folds"]
    assert (tmp_path / "saved" / "price_BTCUSDT.png").is_file()
