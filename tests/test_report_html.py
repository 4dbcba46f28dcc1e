"""The report directory: files, self-containment, numbers, atomic writes, comparison, CLI."""

from __future__ import annotations

import base64
import html
import json
import re

import numpy as np
import pandas as pd
import pytest
from report_synth import make_result

from mlstrat.cli import main
from mlstrat.errors import ConfigError
from mlstrat.report import html as H
from mlstrat.report.metrics import compute_metrics
from mlstrat.report.result import BacktestResult, to_jsonable
from mlstrat.report.stats import StatisticsOptions


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    res = make_result(500, ("BTCUSDT", "ETHUSDT"), seed=3)
    res.config["note"] = '<script>alert("x")</script> & https://example.com/config'
    out = tmp_path_factory.mktemp("html") / "run"
    page = H.build_report(res, out, title="Test <report>")
    return res, out, page, page.read_text(encoding="utf-8")


@pytest.fixture
def no_png(monkeypatch):
    """Charts built but not rendered: for tests about the page and files, not the pictures."""
    real = H.make_charts

    def charts_without_png(*args, **kwargs):
        out = real(*args, **kwargs)
        for c in out:
            c.figure, c.note = None, c.note or "not drawn in this test"
        return out

    monkeypatch.setattr(H, "make_charts", charts_without_png)


def _no_nan_json(text):
    def bad(token):
        raise AssertionError(f"non-strict JSON constant {token}")

    return json.loads(text, parse_constant=bad)


def test_report_directory_has_page_numbers_charts_and_result(built):
    res, out, page, text = built
    names = {p.name for p in out.iterdir()}
    assert {"report.html", "metrics.json", "trades.csv", "equity.csv", "result.json"} <= names
    assert {"equity.png", "drawdown.png", "trade_pnl.png", "calibration.png"} <= names
    assert not [n for n in names if n.startswith(".")]
    data = _no_nan_json((out / "metrics.json").read_text())
    expected = compute_metrics(res, statistics=StatisticsOptions())  # the page's default
    assert data == to_jsonable({"title": "Test <report>", **expected.to_dict()})
    assert len(pd.read_csv(out / "trades.csv")) == len(res.trades)
    back = BacktestResult.load(out)  # the report directory is also a saved result
    pd.testing.assert_series_equal(back.equity, res.equity)


def test_page_is_self_contained_and_escapes_text(built):
    _, out, _, text = built
    refs = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', text, re.I)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", text, re.I)
    assert "<link" not in text.lower() and "@import" not in text
    assert 'name="viewport"' in text and "Content-Security-Policy" in text
    assert "default-src 'none'" in html.unescape(text)
    # user text is escaped, never markup
    assert "<script>alert" not in text and "&lt;script&gt;alert" in text
    assert "<title>Test &lt;report&gt;</title>" in text
    # one <script> only: the sorter
    assert text.count("<script>") == 1


def test_embedded_images_are_the_png_files_beside_the_page(built):
    _, out, _, text = built
    figures = re.findall(
        r'<figure data-chart="([^"]+)"><img src="data:image/png;base64,([^"]+)"', text
    )
    assert len(figures) == len(list(out.glob("*.png")))
    for name, data in figures:
        assert base64.b64decode(data) == (out / f"{name}.png").read_bytes()


def test_headline_cards_show_metrics_json_and_sections_are_in_order(built):
    _, out, _, text = built
    data = json.loads((out / "metrics.json").read_text())
    cards = re.findall(
        r'<div class="card" data-metric="(\w+)\.(\w+)" data-value="([^"]*)">'
        r'<span class="label">[^<]*</span><span class="value[^"]*">([^<]*)</span>',
        text,
    )
    assert len(cards) == len(H.HEADLINE)
    for section, key, raw, shown in cards:
        value = data[section][key]
        assert shown == H.format_value(key, value)
        if value is not None:
            assert float(raw) == pytest.approx(value, rel=1e-12)
    order = [text.index(s) for s in ('id="headline"', "id='performance'", "id='trades'")]
    order += [text.index(s) for s in ("id='model'", "id='config'", "<h3>Versions</h3>")]
    assert order == sorted(order)


def test_trade_fold_and_tier_tables(built):
    res, _, _, text = built
    rows = re.search(r'<table class="sortable" id="trades-table">(.*?)</table>', text, re.S)
    assert rows and rows.group(1).count("<tr>") == len(res.trades) + 1
    folds = re.search(r'<table id="folds-table">(.*?)</table>', text, re.S).group(1)
    assert "Fold" in folds and "Accuracy" in folds and "AUC" in folds
    tiers = re.search(r'<table id="tiers-table">(.*?)</table>', text, re.S).group(1)
    assert ">low<" in tiers and ">high<" in tiers


def test_format_value_by_kind():
    assert H.format_value("total_return", 0.123456) == "12.35%"
    assert H.format_value("sharpe", 1.23456) == "1.235"
    assert H.format_value("n_trades", 1234.0) == "1,234"
    assert H.format_value("fees_paid", 1234.5) == "1,234.50"
    assert H.format_value("max_drawdown_days", 3.25) == "3.2 days"
    assert H.format_value("profit_factor", None) == "n/a"
    assert H.format_value("profit_factor", float("inf")) == "∞"


def test_long_trade_lists_are_cut_with_a_note(tmp_path, monkeypatch, no_png):
    monkeypatch.setattr(H, "MAX_TRADE_ROWS", 5)
    res = make_result(300, seed=4)
    text = H.build_report(res, tmp_path / "r").read_text()
    assert f"Showing the latest 5 of {len(res.trades):,} trades" in text
    table = re.search(r'id="trades-table">(.*?)</table>', text, re.S).group(1)
    assert table.count("<tr>") == 6


@pytest.mark.slow
def test_rebuild_is_atomic_and_failures_leave_the_old_report(tmp_path, monkeypatch, no_png):
    res = make_result(300, seed=5)
    out = tmp_path / "run"
    H.build_report(res, out)
    (out / "stale.png").write_bytes(b"old")
    assert "not drawn in this test" in (out / "report.html").read_text()
    H.build_report(res, out)
    assert not (out / "stale.png").exists()  # a rebuild replaces the directory whole
    before = (out / "report.html").read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(H, "render_report_html", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        H.build_report(res, out)
    assert (out / "report.html").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temp dirs left


@pytest.mark.parametrize("builder", ["report", "comparison", "sweep"])
def test_a_failed_build_removes_only_its_own_staging_folder(tmp_path, monkeypatch, builder):
    # Every page builder stages in a marked temporary sibling and removes it on failure; a
    # staging folder swapped for a link to the user's folder loses the link, never their files.
    outside = tmp_path / "mine"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    moved = tmp_path / "moved"
    moved.mkdir()

    def swap_then_fail(charts, tmp, **kwargs):
        tmp.rename(moved / tmp.name)
        tmp.symlink_to(outside, target_is_directory=True)
        raise RuntimeError("disk full")

    monkeypatch.setattr(H, "save_charts", swap_then_fail)
    res, out = make_result(120, seed=3), tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        if builder == "report":
            H.build_report(res, out)
        elif builder == "comparison":
            H.build_comparison({"a": res, "b": make_result(120, seed=4)}, out)
        else:
            H.build_sweep_report(pd.DataFrame(), {}, {}, None, out)
    assert (outside / "precious.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "moved"]  # link removed


def test_refuses_to_replace_a_directory_that_is_not_a_report(tmp_path):
    other = tmp_path / "reports"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="refusing to replace"):
        H.build_report(make_result(100), other)
    assert (other / "notes.txt").read_text() == "mine"


def test_bare_result_page_notes_missing_charts(tmp_path):
    idx = pd.date_range("2024-01-01", periods=120, freq="1D", tz="UTC")
    res = BacktestResult(equity=pd.Series(np.linspace(100, 120, 120), index=idx))
    text = H.build_report(res, tmp_path / "bare").read_text()
    assert 'data-chart="trade_pnl">Chart' in text and "no closed trades" in text
    assert "No closed trades." in text
    assert '<figure data-chart="equity">' in text


def test_comparison_page_puts_runs_side_by_side(tmp_path):
    a, b = make_result(300, seed=1), make_result(300, seed=2, with_proba=False)
    page = H.build_comparison({"xgboost": a, "lstm": b}, tmp_path / "cmp", title="A vs B")
    text = page.read_text()
    data = _no_nan_json((tmp_path / "cmp" / "metrics.json").read_text())
    assert set(data["runs"]) == {"xgboost", "lstm"}
    for name, res in (("xgboost", a), ("lstm", b)):
        expected = to_jsonable(compute_metrics(res).to_dict())["trading"]["total_return"]
        cell = re.search(
            rf'<td data-run="{name}" data-metric="total_return">([^<]*)</td>', text
        ).group(1)
        assert cell == H.format_value("total_return", expected)
    assert {p.name for p in (tmp_path / "cmp").glob("*.png")} == {
        "compare_equity.png",
        "compare_drawdown.png",
        "compare_folds.png",
        "pbo_logits.png",  # the probability of backtest overfitting of the two
    }
    with pytest.raises(ConfigError, match="at least two"):
        H.build_comparison([a], tmp_path / "one")
    with pytest.raises(ConfigError, match="names"):
        H.build_comparison([a, b], tmp_path / "two", names=["x"])


def test_cli_rebuilds_from_saved_result_and_compares(tmp_path, capsys, no_png):
    a, b = make_result(300, seed=1), make_result(300, seed=2)
    a.save(tmp_path / "xgb")
    b.save(tmp_path / "lstm")
    assert main(["report", "--run", str(tmp_path / "xgb"), "--periods-per-year", "1000"]) == 0
    assert "report.html" in capsys.readouterr().out
    data = json.loads((tmp_path / "xgb" / "metrics.json").read_text())
    assert data["annualisation"]["periods_per_year"] == 1000
    direct = to_jsonable(compute_metrics(a, periods_per_year=1000).to_dict())
    assert data["trading"] == direct["trading"]
    args = ["report", "--compare", str(tmp_path / "xgb"), str(tmp_path / "lstm")]
    assert main([*args, "--out", str(tmp_path / "cmp")]) == 0
    text = (tmp_path / "cmp" / "report.html").read_text()
    assert "Comparison: xgb vs lstm" in text
    assert main(args) == 2
    assert "--compare needs --out" in capsys.readouterr().err
    assert main(["report", "--run", str(tmp_path / "missing")]) == 2
    assert "no saved backtest result" in capsys.readouterr().err
