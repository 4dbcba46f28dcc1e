"""The report's selection-aware statistics: metrics.json's ``statistics`` block and the
"Is the edge real?" section of a report, PSR/DSR/PBO on the comparison page.

Each number is compared with a direct call of `mlstrat.report.stats` on the result's per-bar
returns (computed here from the equity with numpy) or with a scipy formula.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from report_synth import make_result
from scipy import stats as ss

from mlstrat.report import html as H
from mlstrat.report.plots import Chart
from mlstrat.report.result import BacktestResult
from mlstrat.report.stats import (
    StatisticsOptions,
    TrialSet,
    bootstrap_sharpe_ci,
    probability_of_backtest_overfitting,
)

P = 8760.0  # the synthetic results are hourly, 24/7
#: The report's own charts, which these tests do not look at (the PBO chart is drawn).
CHARTS = ("equity", "drawdown", "monthly_returns", "rolling", "trade_pnl", "tiers")
CHARTS += ("calibration", "confusion", "folds", "feature_importance")
COMPARE_CHARTS = ("compare_equity", "compare_drawdown", "compare_folds")


def placeholders(names: tuple[str, ...]):
    return lambda *a, **k: [Chart(n, n, "performance", note="not drawn here") for n in names]


def without_charts(patch: pytest.MonkeyPatch) -> None:
    """Pages without the charts the statistics do not need (they take seconds each)."""
    patch.setattr(H, "make_charts", placeholders(CHARTS))
    patch.setattr(H, "make_comparison_charts", placeholders(COMPARE_CHARTS))


@pytest.fixture
def quick(monkeypatch):
    without_charts(monkeypatch)


def returns_of(result: BacktestResult) -> pd.Series:
    equity = result.equity.to_numpy(float)
    return pd.Series(equity[1:] / equity[:-1] - 1, index=result.equity.index[1:])


def bh_returns(result: BacktestResult) -> pd.Series:
    close = result.benchmark.iloc[:, 0].reindex(result.equity.index).to_numpy(float)
    return pd.Series(close[1:] / close[:-1] - 1, index=result.equity.index[1:])


def ref_psr(r: np.ndarray, bench: float) -> float:
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = ss.skew(r), ss.kurtosis(r, fisher=False)
    z = (sr - bench) * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return float(ss.norm.cdf(z))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats")
    result = make_result(700, seed=5)
    options = StatisticsOptions(n_resamples=300, seed=11)
    with pytest.MonkeyPatch.context() as patch:
        without_charts(patch)
        page = H.build_report(result, root / "a", title="stats", statistics=options)
    return result, options, page


def test_statistics_block_equals_direct_calls_on_the_returns(built):
    result, options, page = built
    data = json.loads((page.parent / "metrics.json").read_text())
    s = data["statistics"]
    r, bh = returns_of(result), bh_returns(result)
    sr = r.mean() / r.std(ddof=1)
    assert s["n"] == len(r) == 699
    assert s["sharpe"] == pytest.approx(sr, rel=1e-10)
    assert s["sharpe_annual"] == pytest.approx(sr * math.sqrt(P), rel=1e-10)
    assert s["skew"] == pytest.approx(ss.skew(r), rel=1e-9)
    assert s["kurtosis"] == pytest.approx(ss.kurtosis(r, fisher=False), rel=1e-9)
    bh_sr = bh.mean() / bh.std(ddof=1)
    assert s["benchmarks"] == {"zero": 0.0, "buy_and_hold": pytest.approx(bh_sr, rel=1e-10)}
    assert s["psr"]["zero"] == pytest.approx(ref_psr(r.to_numpy(), 0.0), rel=1e-9)
    assert s["psr"]["buy_and_hold"] == pytest.approx(ref_psr(r.to_numpy(), bh_sr), rel=1e-9)
    # one backtest and no trial log: nothing was selected, the DSR is the PSR against 0
    assert s["n_trials"] == 1 and s["dsr"] == pytest.approx(s["psr"]["zero"], rel=1e-12)
    boot = bootstrap_sharpe_ci(r, n_resamples=300, seed=11, periods_per_year=P).to_dict()
    assert s["bootstrap"] == pytest.approx(boot, rel=1e-12)
    assert "8760" in s["annualisation"] and "non-excess" in s["kurtosis_kind"]


def test_the_page_shows_the_statistics_block(built):
    result, _, page = built
    text = page.read_text()
    s = json.loads((page.parent / "metrics.json").read_text())["statistics"]
    cells = dict(re.findall(r'<td data-stat="([^"]+)">([^<]*)</td>', text))
    assert cells["psr.zero"] == f"{s['psr']['zero'] * 100:.1f}%"
    assert cells["dsr"] == f"{s['dsr'] * 100:.1f}%"
    assert cells["sharpe_annual"] == f"{s['sharpe_annual']:,.3f}"
    low, high = s["bootstrap"]["low_annual"], s["bootstrap"]["high_annual"]
    assert cells["bootstrap"] == f"{low:,.3f} to {high:,.3f}"
    assert cells["n_trials"].startswith("1 (this backtest only")
    assert "<h2 id='statistics'>Is the edge real?</h2>" in text
    assert "2,000" not in text and "300 stationary-bootstrap resamples" in text


def test_metrics_json_is_byte_identical_when_rebuilt(built, tmp_path, quick):
    result, options, page = built
    again = H.build_report(result, tmp_path / "again", title="stats", statistics=options)
    assert (again.parent / "metrics.json").read_bytes() == (
        page.parent / "metrics.json"
    ).read_bytes()
    other = H.build_report(
        result, tmp_path / "seed", title="stats", statistics=StatisticsOptions(n_resamples=300)
    )
    seeded = json.loads((other.parent / "metrics.json").read_text())["statistics"]["bootstrap"]
    assert (
        seeded["seed"] == 0
        and seeded["low"]
        != json.loads((page.parent / "metrics.json").read_text())["statistics"]["bootstrap"]["low"]
    )


def test_a_backtest_that_never_traded_says_why_there_are_no_statistics(tmp_path, quick):
    idx = pd.date_range("2024-01-01", periods=200, freq="h", tz="UTC")
    flat = BacktestResult(equity=pd.Series(10_000.0, index=idx))
    page = H.build_report(flat, tmp_path / "flat")
    data = json.loads((tmp_path / "flat" / "metrics.json").read_text())
    assert data["statistics"]["undefined"].startswith("returns are constant")
    assert "Not computed: returns are constant" in page.read_text()
    # and a report can leave the section out
    page = H.build_report(make_result(200), tmp_path / "none", statistics=None)
    assert "Is the edge real?" not in page.read_text()
    assert json.loads((tmp_path / "none" / "metrics.json").read_text())["statistics"] == {}


def trial_set(results: dict[str, BacktestResult]) -> TrialSet:
    rets = {k: returns_of(v) for k, v in results.items()}
    return TrialSet(
        {k: float(r.mean() / r.std(ddof=1)) for k, r in rets.items()},
        rets,
        {k: f"variant {k}" for k in rets},
        "a test trial log",
    )


def test_comparison_page_shows_psr_dsr_and_the_pbo_of_the_trials(tmp_path, quick):
    runs = {"a": make_result(640, seed=1), "b": make_result(640, seed=2)}
    tried = {**runs, **{f"x{k}": make_result(640, seed=10 + k) for k in range(4)}}
    options = StatisticsOptions(trials=trial_set(tried), n_resamples=200, pbo_blocks=8)
    page = H.build_comparison(runs, tmp_path / "cmp", statistics=options)
    data = json.loads((tmp_path / "cmp" / "metrics.json").read_text())
    text = page.read_text()
    # PBO over all six trials, by name, on the compared bars
    matrix = pd.DataFrame({f"variant {k}": returns_of(v) for k, v in tried.items()})
    direct = probability_of_backtest_overfitting(matrix, 8)
    assert data["pbo"]["pbo"] == direct.pbo and data["pbo"]["n_variants"] == 6
    assert data["pbo"]["variants"] == list(matrix.columns)
    assert data["pbo"]["source"] == "a test trial log"
    assert f'data-pbo="{direct.pbo!r}"' in text and (tmp_path / "cmp" / "pbo_logits.png").is_file()
    for name in runs:
        s = data["runs"][name]["statistics"]
        assert s["n_trials"] == 6
        sharpes = [r.mean() / r.std(ddof=1) for r in map(returns_of, tried.values())]
        assert s["trial_variance"] == pytest.approx(np.var(sharpes, ddof=1), rel=1e-10)
        cell = re.search(rf'<td data-run="{name}" data-stat="dsr">([^<]*)</td>', text).group(1)
        assert cell == f"{s['dsr'] * 100:.1f}%"
        cell = re.search(rf'<td data-run="{name}" data-stat="n_trials">([^<]*)</td>', text)
        assert cell.group(1) == "6"


def test_without_trials_the_pbo_is_over_the_runs_compared(tmp_path, quick):
    runs = {"a": make_result(300, seed=1), "b": make_result(300, seed=2)}
    H.build_comparison(runs, tmp_path / "cmp", statistics=StatisticsOptions(n_resamples=100))
    data = json.loads((tmp_path / "cmp" / "metrics.json").read_text())
    direct = probability_of_backtest_overfitting(
        pd.DataFrame({k: returns_of(v) for k, v in runs.items()}), 16
    )
    assert data["pbo"]["pbo"] == direct.pbo and data["pbo"]["source"] == "the runs compared here"
    # too few bars for the blocks: the page says so instead of failing
    short = {"a": make_result(20, seed=1), "b": make_result(20, seed=2)}
    page = H.build_comparison(short, tmp_path / "short", statistics=StatisticsOptions())
    data = json.loads((tmp_path / "short" / "metrics.json").read_text())
    assert "too few for 16 blocks" in data["pbo"]["undefined"]
    assert "Not computed: 19 bars are too few" in page.read_text()


@pytest.mark.slow
def test_comparison_page_with_statistics_renders_in_chromium(tmp_path):
    browser = pytest.importorskip("test_report_browser")
    if browser.CHROMIUM is None:
        pytest.skip("headless Chromium not installed (Debian: apt-get install chromium)")
    runs = {"a": make_result(640, seed=1), "b": make_result(640, seed=2)}
    tried = {**runs, "x": make_result(640, seed=3)}
    options = StatisticsOptions(trials=trial_set(tried), n_resamples=200)
    page = H.build_comparison(runs, tmp_path / "cmp", statistics=options)
    for width in (1280, 390):
        probe = browser.render(page, tmp_path, width)
        assert probe["errors"] == [] and probe["csp"] == [] and probe["console"] == []
        assert probe["images"] == 4 and probe["broken"] == []  # 3 charts and the PBO logits
        assert probe["scrollWidth"] <= probe["viewport"]
