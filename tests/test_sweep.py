"""`mlstrat sweep` and the statistics a run reports over its trial log.

A tiny two-predictor run (tests/test_run.py's tiny_raw) is swept over max_hold_bars: the
sweep must backtest only (features and walk-forward come from the cache), log every trial,
rank the trials and report the PBO and the best trial's DSR exactly as a direct computation
from the trials' equity curves does, and resume without backtesting a trial twice.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss
from test_run import SAMPLE, tiny_raw, write_config
from test_stats import ref_pbo

from mlstrat.cli import main
from mlstrat.cli.sweep import grid_axes
from mlstrat.config import parse_config
from mlstrat.errors import ConfigError
from mlstrat.report import html as H
from mlstrat.report.plots import Chart
from mlstrat.report.result import BacktestResult
from mlstrat.report.stats import bootstrap_sharpe_ci
from mlstrat.run import run_experiment
from mlstrat.sweep import as_grid, combinations, run_sweep
from mlstrat.trials import read_index

P = 8760.0
GRID = {"strategy.params.max_hold_bars": [6, 12, 24]}  # the run itself uses 12


def two_predictors(data) -> dict:
    raw = tiny_raw(data)
    second = json.loads(json.dumps(raw["predictors"][0]))
    second.update(name="xgb2", params={**second["params"], "max_depth": 2})
    raw["predictors"].append(second)
    raw["report"].update(pbo_blocks=8, bootstrap_resamples=300)
    return raw


def returns_of(equity: pd.Series) -> np.ndarray:
    values = equity.to_numpy(float)
    return values[1:] / values[:-1] - 1


def sharpe(r: np.ndarray) -> float:
    return float(r.mean() / r.std(ddof=1)) if np.ptp(r) > 0 else 0.0


def ref_dsr(r: np.ndarray, sharpes: list[float]) -> float:
    n_trials, variance, g = len(sharpes), float(np.var(sharpes, ddof=1)), np.euler_gamma
    sr0 = math.sqrt(variance) * (
        (1 - g) * ss.norm.ppf(1 - 1 / n_trials) + g * ss.norm.ppf(1 - 1 / (n_trials * math.e))
    )
    sr, g3, g4 = sharpe(r), ss.skew(r), ss.kurtosis(r, fisher=False)
    z = (sr - sr0) * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return float(ss.norm.cdf(z))


def logged_sharpes(out) -> dict[str, float]:
    """Every logged trial's per-bar Sharpe, recomputed from its returns file."""
    return {
        e["id"]: sharpe(pd.read_parquet(out / e["returns"])["return"].to_numpy(float))
        for e in read_index(out)
    }


# --------------------------------------------------------------------------- grids (fast)


def test_grid_axes_read_comma_separated_yaml_values():
    axes = grid_axes(
        [
            "strategy.params.max_hold_bars=12,24,48",
            "sizing.params.tiers=[[0.55, 0.5], [0.6, 1.0]], [[0.6, 1.0]]",
            "broker.commission=0.001",
        ]
    )
    assert axes == {
        "strategy.params.max_hold_bars": [12, 24, 48],
        "sizing.params.tiers": [[[0.55, 0.5], [0.6, 1.0]], [[0.6, 1.0]]],
        "broker.commission": [0.001],
    }
    combos = combinations(as_grid(axes))
    assert len(combos) == 6
    assert combos[0] == {
        "strategy.params.max_hold_bars": 12,
        "sizing.params.tiers": [[0.55, 0.5], [0.6, 1.0]],
        "broker.commission": 0.001,
    }
    assert [c["strategy.params.max_hold_bars"] for c in combos] == [12, 12, 24, 24, 48, 48]


@pytest.mark.parametrize(
    ("grid", "text"),
    [
        ({"predictors[0].params.max_depth": [2, 3]}, "not a backtest setting"),
        ({"strategy.class": ["a.py:A"]}, "not a backtest setting"),
        ({"strategy.params.": [1]}, "not a backtest setting"),
        ({"strategy.params.max_hold_bars": []}, "non-empty list"),
        ({"strategy.params.max_hold_bars": 12}, "non-empty list"),
        ({"strategy.params.max_hold_bars": [12, 24, 12]}, "12 is listed twice"),
    ],
)
def test_a_grid_that_is_not_a_backtest_sweep_is_refused(grid, text):
    with pytest.raises(ConfigError, match=text):
        as_grid(grid)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    data = root / "BTCUSDT-1h.parquet"
    shutil.copyfile(SAMPLE, data)
    return root, write_config(root / "tiny.yaml", two_predictors(data))


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"grid": {"walkforward.train": ["10D"]}}, "sweep.grid.walkforward.train: "),
        ({"grid": {}}, "nothing to sweep: the grid is empty"),
        ({"grid": GRID, "predictors": ["nope"]}, "sweep.predictors[0]: 'nope' is not a traded"),
        ({"grid": GRID, "n_jobs": 0}, "sweep.n_jobs: n_jobs=0 is out of range"),
        (
            {"grid": {"strategy.params.no_such": [1, 2]}},
            "sweep combination 1 (no_such=1): strategy.params.no_such: unknown key",
        ),
        (
            {"grid": GRID, "overrides": {"sweep.max_trials": 5}},
            "3 combinations x 2 predictor(s) = 6 trials, more than sweep.max_trials=5",
        ),
    ],
)
def test_a_bad_sweep_is_refused_before_anything_is_written(config, kwargs, text):
    root, cfg = config
    out = root / "never"
    with pytest.raises(ConfigError) as info:
        run_sweep(cfg, out, progress=False, **kwargs)
    assert text in str(info.value)
    assert not out.exists()


def test_the_sweep_section_is_read_and_checked_like_any_other(config):
    root, cfg = config
    raw = two_predictors(root / "BTCUSDT-1h.parquet")
    raw["sweep"] = {"grid": GRID, "rank_by": "psr", "predictors": ["xgb"]}
    parsed = parse_config(raw, base=root)
    assert parsed.sweep.grid == {"strategy.params.max_hold_bars": (6, 12, 24)}
    assert parse_config(parsed.to_dict(), base=root).to_dict() == parsed.to_dict()
    for bad, text in (
        ({"rank_by": "luck"}, "sweep.rank_by: 'luck' is not allowed"),
        ({"grid": {"features.set": ["core"]}}, "sweep.grid.features.set: "),
        ({"max_trials": 0}, "sweep.max_trials: must be >= 1"),
        ({"grids": {}}, "sweep.grids: unknown key (did you mean 'grid'?)"),
    ):
        raw["sweep"] = bad
        with pytest.raises(ConfigError) as info:
            parse_config(raw, base=root)
        assert text in str(info.value)


def test_cli_refuses_a_bad_axis_in_one_line(config, capsys):
    _, cfg = config
    assert main(["sweep", str(cfg), "--set", "strategy.params.max_hold_bars"]) == 2
    assert main(["sweep", str(cfg), "--set", "walkforward.test=10D,20D"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "--set 'strategy.params.max_hold_bars' is not KEY=V1,V2" in err[0]
    assert "sweep.grid.walkforward.test" in err[1] and "not a backtest setting" in err[1]


def test_a_combination_refused_while_workers_start_is_one_line(config):
    """Two workers are already importing when the combinations are parsed: stopping them
    must not add joblib's "tasks cancelled" warning to the one line (a real process: pytest
    would swallow the warning)."""
    _, cfg = config
    out = cfg.parent / "not-written"
    args = ["--set", "strategy.params.no_such=1,2", "--n-jobs", "2", "--out", str(out)]
    cmd = [sys.executable, "-m", "mlstrat.cli", "sweep", str(cfg), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert (
        done.stderr.strip().splitlines() == [done.stderr.strip().splitlines()[0]]
        and "sweep combination 1 (no_such=1): strategy.params.no_such: unknown key" in done.stderr
    )
    assert not out.exists()


# --------------------------------------------------------------------------- a run and its sweep


def without_charts(patch: pytest.MonkeyPatch) -> None:
    """Report pages without their PNG charts (seconds each); the PBO chart is still drawn."""
    real = H.make_charts

    def placeholders(*args, **kwargs):
        return [Chart(c.name, c.title, c.section, note="not drawn here") for c in real(*args)]

    patch.setattr(H, "make_charts", placeholders)


@pytest.fixture(scope="module")
def swept(config):
    root, cfg = config
    out = root / "out"
    with pytest.MonkeyPatch.context() as patch:
        without_charts(patch)
        run = run_experiment(cfg, out, progress=False)
        report = json.loads((out / "report" / "xgb" / "metrics.json").read_text())
        comparison = json.loads((out / "report" / "comparison" / "metrics.json").read_text())
        sweep = run_sweep(cfg, out, grid=GRID, predictors=["xgb"], n_jobs=2, progress=False)
    return root, cfg, run, report, comparison, sweep


@pytest.mark.slow
def test_run_logs_its_backtests_and_its_reports_count_them(swept):
    root, cfg, run, report, comparison, _ = swept
    out = run.out
    info = json.loads((out / "run.json").read_text())
    keys = {s["item"]: s["key"] for s in info["stages"] if s["stage"] == "backtest"}
    entries = {e["id"]: e for e in read_index(out)}
    assert {e["label"] for e in entries.values() if e["kind"] == "run"} == {"xgb", "xgb2"}
    assert {keys["xgb"], keys["xgb2"]} <= set(entries)
    # the xgb page's statistics are direct report.stats calls on the run's returns
    result = BacktestResult.load(out / "backtests" / "xgb" / "result")
    r = returns_of(result.equity)
    s = report["statistics"]
    run_sharpes = [
        sharpe(returns_of(BacktestResult.load(out / "backtests" / n / "result").equity))
        for n in ("xgb", "xgb2")
    ]
    assert s["n_trials"] == 2  # the run's two backtests: the sweep came later
    assert s["trial_variance"] == pytest.approx(np.var(run_sharpes, ddof=1), rel=1e-9)
    assert s["dsr"] == pytest.approx(ref_dsr(r, run_sharpes), rel=1e-9)
    assert s["sharpe_annual"] == pytest.approx(sharpe(r) * math.sqrt(P), rel=1e-10)
    boot = bootstrap_sharpe_ci(r, n_resamples=300, seed=3, periods_per_year=P)
    assert s["bootstrap"] == pytest.approx(boot.to_dict(), rel=1e-12)
    # the comparison page's PBO is over the two logged trials, 8 blocks (report.pbo_blocks)
    matrix = np.column_stack(
        [returns_of(BacktestResult.load(out / "backtests" / n / "result").equity) for n in keys]
    )
    pbo, logits = ref_pbo(matrix, 8)
    assert comparison["pbo"]["pbo"] == pbo and comparison["pbo"]["n_splits"] == len(logits) == 70
    assert comparison["pbo"]["source"].startswith("the run directory's trial log: 2 trials")
    assert {comparison["runs"][n]["statistics"]["n_trials"] for n in ("xgb", "xgb2")} == {2}


@pytest.mark.slow
def test_a_sweep_reruns_only_the_backtest_stage(swept):
    root, cfg, run, _, _, sweep = swept
    assert sweep.status("features") == {"BTCUSDT": "cached"}
    assert sweep.status("walkforward") == {"xgb/BTCUSDT": "cached", "xgb2/BTCUSDT": "cached"}
    assert set(sweep.status("sweep").values()) == {"computed"}
    assert len(sweep.status("sweep")) == 3
    assert not [r for r in sweep.stages if r.stage in ("backtest", "report")]
    # its combination max_hold_bars=12 is the run's own backtest: the same trial, same trades
    run_key = next(
        s["key"]
        for s in json.loads((run.out / "run.json").read_text())["stages"]
        if s["stage"] == "backtest" and s["item"] == "xgb"
    )
    row = sweep.ranking.set_index("trial").loc[run_key]
    assert row["strategy.params.max_hold_bars"] == "12"
    same = run.out / "sweep" / "trials" / run_key / "result" / "trades.csv"
    assert (
        same.read_bytes() == (run.out / "backtests" / "xgb" / "result" / "trades.csv").read_bytes()
    )


@pytest.mark.slow
def test_ranking_pbo_and_dsr_equal_a_direct_computation(swept):
    _, _, run, _, _, sweep = swept
    out = run.out
    data = json.loads((out / "sweep" / "sweep.json").read_text())
    returns = {}
    for trial in data["trials"]:
        equity = BacktestResult.load(out / "sweep" / "trials" / trial["trial"] / "result").equity
        returns[trial["trial"]] = returns_of(equity)
    direct = sorted(returns, key=lambda k: -sharpe(returns[k]))
    assert [t["trial"] for t in data["trials"]] == direct == list(sweep.ranking["trial"])
    for trial in data["trials"]:
        expected = sharpe(returns[trial["trial"]]) * math.sqrt(P)
        assert trial["sharpe"] == pytest.approx(expected, rel=1e-10)
    assert [t["rank"] for t in data["trials"]] == [1, 2, 3]
    # PBO over the three trials in grid order (6, 12, 24), report.pbo_blocks = 8
    order = [t["trial"] for t in sorted(data["trials"], key=lambda t: int(t[next(iter(GRID))]))]
    pbo, logits = ref_pbo(np.column_stack([returns[k] for k in order]), 8)
    assert data["pbo"]["pbo"] == pbo == sweep.pbo["pbo"]
    assert data["pbo"]["n_variants"] == 3 and data["pbo"]["n_splits"] == len(logits)
    # the best trial's DSR counts every logged trial: 2 run backtests + 2 new sweep trials
    sharpes = logged_sharpes(out)
    assert len(sharpes) == 4
    best = data["best"]["statistics"]
    assert data["best"]["trial"] == direct[0] and best["n_trials"] == 4
    assert best["trial_variance"] == pytest.approx(np.var(list(sharpes.values()), ddof=1))
    assert best["dsr"] == pytest.approx(ref_dsr(returns[direct[0]], list(sharpes.values())))
    page = (out / "sweep" / "report" / "report.html").read_text()
    assert f'data-pbo="{pbo!r}"' in page and '<table class="sortable" id="ranking-table">' in page
    assert (out / "sweep" / "report" / "pbo_logits.png").is_file()


@pytest.mark.slow
def test_a_rerun_after_the_sweep_reports_over_every_trial(swept):
    _, cfg, run, _, _, _ = swept
    with pytest.MonkeyPatch.context() as patch:
        without_charts(patch)
        again = run_experiment(cfg, run.out, progress=False)
        assert set(again.status("report").values()) == {"computed"}  # the log grew
        report = json.loads((run.out / "report" / "xgb" / "metrics.json").read_text())
        assert report["statistics"]["n_trials"] == 4
        assert len(read_index(run.out)) == 4  # rerunning the same backtests adds nothing
        third = run_experiment(cfg, run.out, progress=False)
    assert set(third.status("report").values()) == {"cached"}


@pytest.mark.slow
def test_a_sweep_resumes_and_writes_the_same_bytes(swept, capsys):
    root, cfg, run, _, _, _ = swept
    out = run.out
    before = {n: (out / "sweep" / n).read_bytes() for n in ("sweep.json", "ranking.csv")}
    entries = sorted((out / "cache" / "sweep").glob("*/done.json"))
    assert len(entries) == 3
    entries[1].unlink()  # as if killed before this trial finished
    summary = entries[2].parent / "summary.json"  # and this one damaged since
    summary.write_bytes(summary.read_bytes().replace(b'"n_trades": ', b'"n_trades": 1'))
    with pytest.MonkeyPatch.context() as patch:
        without_charts(patch)
        code = main(
            ["sweep", str(cfg), "--out", str(out), "--predictor", "xgb", "--quiet"]
            + ["--set", "strategy.params.max_hold_bars=6,12,24", "--n-jobs", "1"]
        )
    assert code == 0
    printed = capsys.readouterr().out
    assert "sweep: 3 trials (1 reused)" in printed and "best: xgb max_hold_bars=" in printed
    assert "probability of backtest overfitting: " in printed
    for name, data in before.items():
        assert (out / "sweep" / name).read_bytes() == data, name
    status = json.loads((out / "sweep" / "status.json").read_text())
    sweeps = [s["status"] for s in status["stages"] if s["stage"] == "sweep"]
    assert sorted(sweeps) == ["cached", "computed", "computed"]


@pytest.mark.slow
def test_a_value_refused_at_backtest_time_names_its_trial_and_key(swept):
    _, cfg, run, _, _, _ = swept
    logged = read_index(run.out)
    with pytest.raises(ConfigError) as info:
        run_sweep(
            cfg,
            run.out,
            grid={"strategy.params.min_tier": ["low", "top"]},
            predictors=["xgb"],
            n_jobs=1,
            progress=False,
        )
    assert info.value.problem.startswith(
        "sweep trial xgb min_tier=\"top\": strategy.params.min_tier: min_tier 'top' is not a tier"
    )
    assert read_index(run.out) == logged  # a failed sweep logs nothing
