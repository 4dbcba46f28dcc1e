"""The report page: one self-contained HTML file plus the numbers and charts beside it.

`build_report(result, out_dir)` writes into `out_dir`:

    report.html       headline numbers, charts (PNG embedded as base64), tables,
                      a sortable trade table, fold table, configuration and versions
    metrics.json      every number on the page (strict JSON; NaN/inf as null)
    *.png             the charts, also as files
    equity.csv, trades.csv, records.parquet, benchmark.parquet, result.json
                      the BacktestResult itself, so `mlstrat report --run DIR`
                      can rebuild the page later

`build_comparison(results, out_dir)` puts several runs side by side.

The page loads nothing from the network: CSS and the small sorting script are
inline, images are data URIs, and a Content-Security-Policy forbids any other
source. The directory is assembled in a temporary sibling and renamed into
place, so readers never see half a report.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import mlstrat
from mlstrat.errors import ConfigError
from mlstrat.fileio import json_text, staged_dir
from mlstrat.report.metrics import Metrics, compute_metrics
from mlstrat.report.paths import PathDistribution, paths_block, paths_section
from mlstrat.report.plots import Chart, make_charts, make_comparison_charts, save_charts
from mlstrat.report.result import RESULT_FILE, BacktestResult, to_jsonable
from mlstrat.report.stats import StatisticsOptions, union_index

REPORT_FILE = "report.html"
METRICS_FILE = "metrics.json"
MAX_TRADE_ROWS = 2000  # beyond this the page lists the latest trades; trades.csv has all
#: Statistics of a report built without a trial log: this backtest is the only trial known.
_STATISTICS = StatisticsOptions()

# key -> (label, kind); kind picks the formatting: pct, ratio, int, money, days, hours, num
METRIC_FORMATS: dict[str, tuple[str, str]] = {
    "total_return": ("Total return", "pct"),
    "cagr": ("CAGR", "pct"),
    "annual_volatility": ("Annual volatility", "pct"),
    "sharpe": ("Sharpe", "ratio"),
    "sortino": ("Sortino", "ratio"),
    "calmar": ("Calmar", "ratio"),
    "max_drawdown": ("Max drawdown", "pct"),
    "max_drawdown_days": ("Max drawdown duration", "days"),
    "max_drawdown_bars": ("Max drawdown duration (bars)", "int"),
    "longest_underwater_days": ("Longest underwater", "days"),
    "longest_underwater_bars": ("Longest underwater (bars)", "int"),
    "var_95": ("VaR 95% (per bar)", "pct"),
    "cvar_95": ("CVaR 95% (per bar)", "pct"),
    "skew": ("Skew", "ratio"),
    "kurtosis": ("Excess kurtosis", "ratio"),
    "best_period": ("Best bar", "pct"),
    "worst_period": ("Worst bar", "pct"),
    "exposure": ("Exposure (time in market)", "pct"),
    "turnover": ("Turnover (× mean equity)", "ratio"),
    "turnover_annual": ("Turnover a year (× mean equity)", "ratio"),
    "n_trades": ("Trades", "int"),
    "n_long": ("Long trades", "int"),
    "n_short": ("Short trades", "int"),
    "win_rate": ("Win rate", "pct"),
    "profit_factor": ("Profit factor", "ratio"),
    "expectancy": ("Expectancy (net P&L per trade)", "money"),
    "avg_trade_return": ("Average trade return", "pct"),
    "avg_win": ("Average win", "money"),
    "avg_loss": ("Average loss", "money"),
    "gross_profit": ("Gross profit", "money"),
    "gross_loss": ("Gross loss", "money"),
    "net_pnl": ("Net P&L (closed trades)", "money"),
    "avg_holding_hours": ("Average holding time", "hours"),
    "avg_bars_held": ("Average bars held", "num"),
    "fees_paid": ("Fees paid", "money"),
    "fees_pct_of_start": ("Fees / starting equity", "pct"),
    "alpha": ("Alpha vs buy-and-hold (annual)", "pct"),
    "beta": ("Beta vs buy-and-hold", "ratio"),
    "start_equity": ("Starting equity", "money"),
    "end_equity": ("Final equity", "money"),
    "years": ("Years", "num"),
    "bars": ("Bars", "int"),
    "correlation": ("Correlation", "ratio"),
    "excess_return": ("Excess return vs buy-and-hold", "pct"),
    "buy_hold_return": ("Buy-and-hold return", "pct"),
    "signal_hit_rate": ("Signal hit rate", "pct"),
    "gross_pnl_mtm": ("Mark-to-market P&L (before costs)", "money"),
    "slippage_paid": ("Slippage paid", "money"),
    "fees_total": ("Fees (all fills)", "money"),
    "net_pnl_mtm": ("Net P&L (marked to market)", "money"),
    "gross_pnl": ("Gross P&L (raw fill prices)", "money"),
    "slippage": ("Slippage", "money"),
    "fees": ("Fees", "money"),
    "fills": ("Fills", "int"),
    "hit_rate": ("Hit rate", "pct"),
    "trade_win_rate": ("Trade win rate", "pct"),
    "avg_return": ("Average signed return", "pct"),
    "mean_confidence": ("Mean confidence", "ratio"),
    "n_signals": ("Signals", "int"),
    "pnl_net": ("Net P&L", "money"),
    "avg_pnl_net": ("Average net P&L", "money"),
    "accuracy": ("Accuracy", "pct"),
    "auc": ("AUC", "ratio"),
    "log_loss": ("Log loss", "ratio"),
    "brier": ("Brier", "ratio"),
    "ic": ("IC", "ratio"),
    "n": ("Bars", "int"),
}

#: (section of metrics.json, key) shown as the headline cards, in order.
HEADLINE: tuple[tuple[str, str], ...] = (
    ("trading", "total_return"),
    ("trading", "cagr"),
    ("trading", "sharpe"),
    ("trading", "sortino"),
    ("trading", "max_drawdown"),
    ("trading", "calmar"),
    ("trading", "win_rate"),
    ("trading", "profit_factor"),
    ("trading", "n_trades"),
    ("trading", "exposure"),
    ("trading", "fees_paid"),
    ("benchmark", "total_return"),
    ("trading", "alpha"),
    ("trading", "beta"),
)

_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Returns",
        ("start_equity", "end_equity", "total_return", "cagr", "years", "bars", "best_period", "worst_period"),
    ),
    (
        "Risk",
        (
            "annual_volatility", "sharpe", "sortino", "calmar", "max_drawdown", "max_drawdown_days",
            "max_drawdown_bars", "longest_underwater_days", "longest_underwater_bars", "var_95",
            "cvar_95", "skew", "kurtosis", "alpha", "beta",
        ),
    ),
    (
        "Trading",
        (
            "n_trades", "n_long", "n_short", "win_rate", "profit_factor", "expectancy",
            "avg_trade_return", "avg_win", "avg_loss", "net_pnl", "avg_holding_hours",
            "avg_bars_held", "exposure", "turnover", "turnover_annual", "fees_paid",
            "fees_pct_of_start",
        ),
    ),
    ("Costs", ("gross_pnl_mtm", "slippage_paid", "fees_total", "net_pnl_mtm")),
)  # fmt: skip


def format_value(key: str, value: Any) -> str:
    """The text the page shows for a metric (JSON-ready value: None means undefined)."""
    kind = METRIC_FORMATS.get(key, ("", "num"))[1]
    if value is None or isinstance(value, str):
        return "n/a" if value is None else value
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "−∞"
    v = float(value)
    if kind == "pct":
        return f"{v * 100:,.2f}%"
    if kind == "int":
        return f"{int(round(v)):,}"
    if kind == "money":
        return f"{v:,.2f}"
    if kind == "days":
        return f"{v:,.1f} days"
    if kind == "hours":
        return f"{v:,.1f} h"
    if kind == "ratio":
        return f"{v:,.3f}"
    return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"


def label_of(key: str) -> str:
    return METRIC_FORMATS.get(key, (key.replace("_", " ").capitalize(), "num"))[0]


# --------------------------------------------------------------------------- page pieces

_CSS = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:#1d2330;background:#f5f6f8}
main{max-width:1120px;margin:0 auto;padding:12px}
header h1{font-size:1.5rem;margin:.4rem 0 .2rem}
header p{margin:.1rem 0;color:#4a5366;overflow-wrap:anywhere}
h2{font-size:1.2rem;margin:1.6rem 0 .6rem;border-bottom:2px solid #d9dde5;padding-bottom:.2rem}
h3{font-size:1rem;margin:1rem 0 .4rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(9.5rem,1fr));gap:8px;margin:.8rem 0}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:.5rem .65rem}
.card .label{display:block;font-size:.78rem;color:#5b6478}
.card .value{display:block;font-size:1.25rem;font-weight:600;font-variant-numeric:tabular-nums}
.pos{color:#137a3a}.neg{color:#b3261e}
figure{margin:.8rem 0;background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:6px}
figure img{display:block;width:100%;height:auto}
figcaption{font-size:.8rem;color:#5b6478;padding:.2rem .3rem}
.note{background:#fff8e1;border:1px solid #f0d98c;border-radius:6px;padding:.4rem .6rem;font-size:.88rem}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%;background:#fff;
border:1px solid #dde1e8;border-radius:8px;margin:.5rem 0}
.scroll.tall{max-height:32rem;overflow-y:auto}
table{border-collapse:collapse;width:100%;font-size:.85rem;font-variant-numeric:tabular-nums}
th,td{padding:.28rem .55rem;border-bottom:1px solid #eceef2;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
td.text,th.text{text-align:left}
thead th{background:#eef0f4;position:sticky;top:0}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th::after{content:" \\2195";color:#9aa3b5;font-size:.75em}
table.sortable th[aria-sort=ascending]::after{content:" \\2191";color:#1d2330}
table.sortable th[aria-sort=descending]::after{content:" \\2193";color:#1d2330}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,26rem),1fr));gap:12px}
pre{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:.6rem;font-size:.8rem;
white-space:pre-wrap;overflow-wrap:anywhere;margin:.5rem 0}
footer{color:#5b6478;font-size:.8rem;margin:2rem 0 1rem}
@media (max-width:600px){body{font-size:14px}main{padding:8px}.card .value{font-size:1.05rem}
header h1{font-size:1.25rem}}
"""

_JS = """
(function(){
  function key(cell){var s=cell.getAttribute('data-sort');return s===null?cell.textContent.trim():s;}
  function sortBy(th){
    var table=th.closest('table'),body=table.tBodies[0],col=th.cellIndex;
    var asc=th.getAttribute('aria-sort')!=='ascending';
    var numeric=th.getAttribute('data-type')==='num';
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(h){h.removeAttribute('aria-sort');});
    th.setAttribute('aria-sort',asc?'ascending':'descending');
    var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){
      var x=key(a.cells[col]),y=key(b.cells[col]),r;
      if(numeric){x=parseFloat(x);y=parseFloat(y);
        if(isNaN(x)&&isNaN(y))r=0;else if(isNaN(x))r=1;else if(isNaN(y))r=-1;else r=x-y;
        if(isNaN(x)||isNaN(y))return r;}
      else{r=x<y?-1:x>y?1:0;}
      return asc?r:-r;});
    rows.forEach(function(r){body.appendChild(r);});
  }
  document.querySelectorAll('table.sortable th').forEach(function(th){
    th.tabIndex=0;
    th.addEventListener('click',function(){sortBy(th);});
    th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();sortBy(th);}});
  });
})();
"""

_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


_SIGNED = {
    "total_return",
    "cagr",
    "alpha",
    "net_pnl",
    "expectancy",
    "excess_return",
    "pnl_net",
    "net_pnl_mtm",
}


def _sign_class(key: str, value: Any) -> str:
    """CSS class colouring a P&L-like number green or red."""
    if key not in _SIGNED or not isinstance(value, (int, float)) or value != value:
        return ""
    return " pos" if value > 0 else " neg" if value < 0 else ""


def _cards(data: Mapping[str, Any]) -> str:
    out = []
    for section, key in HEADLINE:
        values = data.get(section) or {}
        if key not in values:
            continue
        value = values[key]
        label = "Buy-and-hold return" if section == "benchmark" else label_of(key)
        raw = "" if value is None else _e(repr(value) if isinstance(value, float) else value)
        out.append(
            f'<div class="card" data-metric="{section}.{key}" data-value="{raw}">'
            f'<span class="label">{_e(label)}</span>'
            f'<span class="value{_sign_class(key, value)}">{_e(format_value(key, value))}</span></div>'
        )
    return '<section class="cards" id="headline">' + "".join(out) + "</section>"


def _table(
    columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    *,
    labels: Mapping[str, str] | None = None,
    sortable: bool = False,
    table_id: str | None = None,
    tall: bool = False,
) -> str:
    labels = labels or {}
    head = []
    for c in columns:
        numeric = any(
            isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) for r in rows
        )
        cls = "" if numeric else ' class="text"'
        head.append(
            f'<th scope="col" data-type="{"num" if numeric else "text"}"{cls}>{_e(labels.get(c, label_of(c)))}</th>'
        )
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                sort = (
                    "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else repr(v)
                )
                cells.append(f'<td data-sort="{_e(sort)}">{_e(format_value(c, v))}</td>')
            else:
                cells.append(f'<td class="text">{_e("" if v is None else v)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    attrs = ' class="sortable"' if sortable else ""
    if table_id:
        attrs += f' id="{_e(table_id)}"'
    wrap = "scroll tall" if tall else "scroll"
    return (
        f'<div class="{wrap}"><table{attrs}><thead><tr>{"".join(head)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _kv_table(pairs: Sequence[tuple[str, Any]]) -> str:
    rows = "".join(
        f'<tr><th scope="row" class="text">{_e(label_of(k))}</th><td data-metric-key="{_e(k)}">{_e(format_value(k, v))}</td></tr>'
        for k, v in pairs
    )
    return f'<div class="scroll"><table><tbody>{rows}</tbody></table></div>'


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}" loading="eager">'


def _chart_html(chart: Chart, out_dir: Path) -> str:
    if chart.file is None:
        return f'<p class="note" data-chart="{_e(chart.name)}">Chart “{_e(chart.title)}” not drawn: {_e(chart.note)}.</p>'
    return (
        f'<figure data-chart="{_e(chart.name)}">{_img(out_dir / chart.file, chart.title)}'
        f"<figcaption>{_e(chart.title)} — <span>{_e(chart.file)}</span></figcaption></figure>"
    )


def _page(title: str, subtitle_lines: Sequence[str], body: str) -> str:
    subtitle = "".join(f"<p>{_e(s)}</p>" for s in subtitle_lines)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">'
        f'<meta name="generator" content="mlstrat {_e(mlstrat.__version__)}">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        f"<header><h1>{_e(title)}</h1>{subtitle}</header>{body}"
        f"<footer>Made by mlstrat {_e(mlstrat.__version__)}. Self-contained page: "
        "it loads nothing from the network.</footer>"
        f"</main><script>{_JS}</script></body></html>\n"
    )


# --------------------------------------------------------------------------- one run


def _trade_rows(result: BacktestResult) -> tuple[list[dict], str | None]:
    t = result.trades.sort_values("exit_time", kind="stable")
    note = None
    if len(t) > MAX_TRADE_ROWS:
        note = f"Showing the latest {MAX_TRADE_ROWS:,} of {len(t):,} trades; trades.csv has all of them."
        t = t.iloc[-MAX_TRADE_ROWS:]
    notional = (t["entry_price"] * t["size"]).to_numpy(float)
    pnl = t["pnl_net"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = np.where(notional > 0, pnl / notional, np.nan)
    bars = t["bars_held"].to_numpy(float)
    columns = {
        "symbol": t["symbol"].tolist(),
        "side": np.where(t["direction"].to_numpy(float) > 0, "long", "short").tolist(),
        "entry": t["entry_time"].dt.strftime("%Y-%m-%d %H:%M").tolist(),
        "exit": t["exit_time"].dt.strftime("%Y-%m-%d %H:%M").tolist(),
        "entry_price": t["entry_price"].to_numpy(float).tolist(),
        "exit_price": t["exit_price"].to_numpy(float).tolist(),
        "size": t["size"].to_numpy(float).tolist(),
        "pnl_net": pnl.tolist(),
        "trade_return": ret.tolist(),
        "commission": t["commission"].to_numpy(float).tolist(),
        "bars_held": [int(b) if b == b else None for b in bars],
        "tier": t["tier"].tolist(),
        "exit_reason": t["exit_reason"].tolist(),
    }
    rows = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    return rows, note


_TRADE_LABELS = {
    "symbol": "Symbol",
    "side": "Side",
    "entry": "Entry (UTC)",
    "exit": "Exit (UTC)",
    "entry_price": "Entry price",
    "exit_price": "Exit price",
    "size": "Size (units)",
    "pnl_net": "Net P&L",
    "trade_return": "Return",
    "commission": "Fees",
    "bars_held": "Bars",
    "tier": "Tier",
    "exit_reason": "Exit reason",
}
METRIC_FORMATS.setdefault("entry_price", ("Entry price", "money"))
METRIC_FORMATS.setdefault("exit_price", ("Exit price", "money"))
METRIC_FORMATS.setdefault("size", ("Size", "num"))
METRIC_FORMATS.setdefault("trade_return", ("Return", "pct"))
METRIC_FORMATS.setdefault("commission", ("Fees", "money"))
METRIC_FORMATS.setdefault("bars_held", ("Bars", "int"))
METRIC_FORMATS.setdefault("fold", ("Fold", "int"))
METRIC_FORMATS.setdefault("count", ("Bars", "int"))
METRIC_FORMATS.setdefault("predicted", ("Predicted", "pct"))
METRIC_FORMATS.setdefault("realised", ("Realised", "pct"))


def _subtitle(result: BacktestResult, metrics: Metrics) -> list[str]:
    t = metrics.trading
    start = pd.Timestamp(t["start"]).strftime("%Y-%m-%d %H:%M")
    end = pd.Timestamp(t["end"]).strftime("%Y-%m-%d %H:%M")
    syms = ", ".join(result.symbols) or "unknown symbols"
    tf = result.timeframe or "unknown timeframe"
    return [
        f"{syms} · {tf} bars · {start} → {end} UTC · {t['bars']:,} bars",
        f"Annualisation: {metrics.annualisation.periods_per_year:g} bars a year "
        f"({metrics.annualisation.reason}).",
    ]


def slippage_sentence(costs: Mapping[str, Any]) -> str:
    """One line on nominal vs charged slippage and the cap, from `Metrics.costs`."""
    if costs.get("basis") != "fills":
        return (
            "Fills were not recorded for this result (built by hand or by an older mlstrat): "
            "gross P&L is at the executed prices, so slippage is inside it and not shown apart."
        )
    slip = costs.get("slippage") or {}
    cap = slip.get("cap") or "bar_range"
    if not slip.get("slipped_fills"):
        return f"Slippage: none charged ({slip.get('fills', 0)} fills, no slipped ones)."
    text = (
        f"Slippage: nominal {slip['nominal_bp']:.1f} bp, charged {slip['charged_bp']:.1f} bp "
        f"on average (weighted by notional, over {slip['slipped_fills']:,} slipped fills); "
    )
    if cap == "none":
        return text + "no cap (slippage_cap: none): every slipped fill paid the nominal slippage."
    return text + (
        f"{slip['capped_share'] * 100:.0f} % of fills capped by the bar range "
        "(slippage_cap: bar_range; 'none' charges the nominal slippage on every fill)."
    )


def _costs_section(metrics: Metrics) -> str:
    """Gross − slippage − fees = net, per symbol and in total, with the slippage sentence."""
    costs = metrics.costs
    parts = [
        "<h2 id='costs'>Costs</h2>",
        f"<p class='note' id='slippage-note'>{_e(slippage_sentence(costs))}</p>",
    ]
    keys = ("gross_pnl", "slippage", "fees", "net_pnl", "fills")
    rows = [{"symbol": s, **{k: v[k] for k in keys}} for s, v in costs["per_symbol"].items()]
    rows.append({"symbol": "total", **{k: costs["total"][k] for k in keys}})
    parts.append(
        _table(
            ["symbol", *keys],
            rows,
            labels={"symbol": "Symbol", "net_pnl": "Net P&L (marked to market)"},
            table_id="costs-table",
        )
    )
    parts.append(
        "<p>Gross P&amp;L is at the raw fill prices (before slippage); a position still open at "
        "the last bar is marked at its close. Gross − slippage − fees = net.</p>"
    )
    return "".join(parts)


def _model_section(metrics: Metrics, charts: dict[str, Chart], out_dir: Path) -> str:
    parts = ["<h2 id='model'>Model diagnostics</h2>"]
    parts.append("<h3>Confidence tiers</h3>")
    if metrics.tiers:
        cols = [
            "tier",
            "mean_confidence",
            "n_signals",
            "hit_rate",
            "avg_return",
            "n_trades",
            "trade_win_rate",
            "pnl_net",
            "avg_pnl_net",
        ]
        parts.append(_table(cols, metrics.tiers, labels={"tier": "Tier"}, table_id="tiers-table"))
    parts.append(_chart_html(charts["tiers"], out_dir))
    parts.append("<h3>Calibration and confusion</h3><div class='grid2'>")
    parts.append(_chart_html(charts["calibration"], out_dir))
    parts.append(_chart_html(charts["confusion"], out_dir))
    parts.append("</div>")
    parts.append("<h3>Walk-forward folds</h3>")
    if metrics.folds:
        preferred = [
            "fold",
            "symbol",
            "start",
            "end",
            "n",
            "accuracy",
            "auc",
            "log_loss",
            "brier",
            "ic",
        ]
        # nested values (thresholds, validation metrics) stay in metrics.json only
        extra = [
            k
            for r in metrics.folds
            for k, v in r.items()
            if k not in preferred and not isinstance(v, (dict, list, tuple))
        ]
        cols = [c for c in preferred if any(c in r for r in metrics.folds)]
        cols += list(dict.fromkeys(extra))
        rows = [{k: _cell(v) for k, v in r.items()} for r in metrics.folds]
        parts.append(
            _table(
                cols,
                rows,
                labels={
                    "fold": "Fold",
                    "symbol": "Symbol",
                    "start": "Start (UTC)",
                    "end": "End (UTC)",
                },
                table_id="folds-table",
            )
        )
        parts.append(
            "<p class='note'>Fold metrics come from the walk-forward run where it reported them; "
            "the others are recomputed here from the predictions recorded during the backtest.</p>"
        )
    parts.append(_chart_html(charts["folds"], out_dir))
    parts.append("<h3>Feature importance</h3>")
    parts.append(_chart_html(charts["feature_importance"], out_dir))
    return "".join(parts)


def _cell(v: Any) -> Any:
    """Table cell value: numbers stay numbers, timestamps become short text, containers JSON."""
    if isinstance(v, (pd.Timestamp,)):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(to_jsonable(v))
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return v


# --------------------------------------------------------------------------- statistics


def _prob(value: Any) -> str:
    """A probability as the page shows it (one decimal percent), n/a when undefined."""
    return "n/a" if value is None else f"{float(value) * 100:.1f}%"


def _sr(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):,.3f}"


def _trl(bars: Any, years: Any) -> str:
    """A minimum track record: bars and years, or 'never' when no length suffices."""
    if bars is None:
        return "never: Sharpe not above it"
    text = f"{math.ceil(float(bars)):,} bars"
    return text + (f" ({float(years):,.2f} years)" if years is not None else "")


def statistics_rows(s: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(data-stat key, label, shown text) of a report's ``statistics`` block, in page order."""
    boot = s["bootstrap"]
    level = f"{boot['level'] * 100:g}%"
    rows = [
        ("sharpe_annual", "Sharpe ratio (annualised)", _sr(s["sharpe_annual"])),
        ("sharpe", "Sharpe ratio per bar", f"{s['sharpe']:.5f}"),
        (
            "bootstrap",
            f"{level} interval of the Sharpe ratio (annualised)",
            f"{_sr(boot['low_annual'])} to {_sr(boot['high_annual'])}",
        ),
        ("psr.zero", "PSR: P(true Sharpe > 0)", _prob(s["psr"]["zero"])),
    ]
    if "buy_and_hold" in s["psr"]:
        bh = s["benchmarks"]["buy_and_hold"] * math.sqrt(s["periods_per_year"])
        rows.append(
            (
                "psr.buy_and_hold",
                f"PSR: P(true Sharpe > buy-and-hold's {bh:.3f})",
                _prob(s["psr"]["buy_and_hold"]),
            )
        )
    rows += [
        ("dsr", f"DSR: PSR against the best of {s['n_trials']:,} trial(s)", _prob(s["dsr"])),
        ("n_trials", "Trials behind it", f"{s['n_trials']:,} ({s['trials']})"),
        (
            "expected_max_sharpe_annual",
            "Best Sharpe expected from the trials by luck (annualised)",
            _sr(s["expected_max_sharpe_annual"]),
        ),
    ]
    for mark, what in (("zero", "0"), ("buy_and_hold", "buy-and-hold")):
        if mark in s["min_trl"]:
            years = (s.get("min_trl_years") or {}).get(mark)
            rows.append(
                (
                    f"min_trl.{mark}",
                    f"Minimum track record for {level} confidence of beating {what}",
                    _trl(s["min_trl"][mark], years),
                )
            )
    rows += [
        ("n", "Bars (per-bar returns)", f"{s['n']:,}"),
        ("skew", "Skewness of per-bar returns", f"{s['skew']:.3f}"),
        ("kurtosis", "Kurtosis of per-bar returns (non-excess)", f"{s['kurtosis']:.3f}"),
    ]
    return rows


def _statistics_section(
    s: Mapping[str, Any], heading: str = "<h2 id='statistics'>Is the edge real?</h2>"
) -> str:
    """Is the edge real? PSR, DSR, MinTRL and the bootstrap interval of one backtest."""
    if not s:
        return ""
    parts = [heading]
    if "undefined" in s:
        parts.append(
            f"<p class='note' id='statistics-note'>Not computed: {_e(s['undefined'])}.</p>"
        )
        return "".join(parts)
    body = "".join(
        f'<tr><th scope="row" class="text">{_e(label)}</th><td data-stat="{_e(key)}">{_e(text)}</td></tr>'
        for key, label, text in statistics_rows(s)
    )
    parts.append(
        f'<div class="scroll"><table id="statistics-table"><tbody>{body}</tbody></table></div>'
    )
    boot = s["bootstrap"]
    parts.append(
        "<p class='note' id='statistics-note'>"
        + _e(
            f"From the {s['returns']}; {s['annualisation']}. PSR is the probability that the "
            "true Sharpe ratio beats the benchmark given the track record's length, skewness "
            "and kurtosis (Bailey & López de Prado 2012); DSR is the PSR against the best "
            "Sharpe ratio the trials would show by luck, from their number and the variance "
            f"of their Sharpe ratios (2014); the interval comes from {boot['n_resamples']:,} "
            f"stationary-bootstrap resamples (mean block {boot['block_length']:g} bars, "
            f"seed {boot['seed']})."
        )
        + "</p>"
    )
    return "".join(parts)


def _pbo_section(pbo: Mapping[str, Any], chart: Chart | None, out_dir: Path) -> str:
    """The probability of backtest overfitting of a set of variants, with its logit chart."""
    parts = ["<h3 id='pbo'>Probability of backtest overfitting</h3>"]
    if "undefined" in pbo:
        parts.append(f"<p class='note' id='pbo-note'>Not computed: {_e(pbo['undefined'])}.</p>")
        return "".join(parts)
    parts.append(
        f"<p id='pbo-value' data-pbo=\"{pbo['pbo']!r}\">"
        + _e(
            f"PBO {pbo['pbo'] * 100:.1f}% over {pbo['n_variants']} variants: "
            f"in {pbo['n_splits']:,} combinatorially symmetric splits of "
            f"{pbo['n_bars']:,} bars into {pbo['n_blocks']} blocks, the variant best in "
            "sample ranked at or below the median out of sample this often "
            "(Bailey, Borwein, López de Prado & Zhu 2017). Its out-of-sample Sharpe was "
            f"negative in {pbo['prob_oos_loss'] * 100:.1f}% of the splits. "
            f"The variants: {pbo['source']}."
        )
        + "</p>"
    )
    if chart is not None:
        parts.append(_chart_html(chart, out_dir))
    return "".join(parts)


def pbo_block(
    variants: Mapping[str, pd.Series],
    index: pd.DatetimeIndex,
    n_blocks: int,
    source: str,
) -> tuple[dict[str, Any], Any]:
    """(metrics.json ``pbo`` block, the PBOResult or None) of the variants on `index`'s bars."""
    from mlstrat.report.stats import aligned_returns, variants_pbo

    matrix = aligned_returns(variants, index)
    found, why = variants_pbo(matrix, n_blocks)
    if found is None:
        return {"undefined": why, "source": source, "variants": list(matrix.columns)}, None
    return {**found.to_dict(), "source": source, "variants": list(matrix.columns)}, found


def _pbo_chart(found: Any) -> Chart:
    """The logit chart of a PBOResult as a report Chart (section 'statistics')."""
    from mlstrat.report.stats_plots import plot_pbo_logits

    return Chart(
        "pbo_logits",
        "Probability of backtest overfitting: logits of the selected variant's rank",
        "statistics",
        figure=plot_pbo_logits(found),
    )


def render_report_html(
    result: BacktestResult,
    metrics: Metrics,
    data: Mapping[str, Any],
    charts: list[Chart],
    out_dir: Path,
    title: str,
    extra: Sequence[str] = (),
) -> str:
    """The page for one run; `data` is the JSON-ready metrics, `charts` already saved in `out_dir`,
    `extra` more sections' HTML placed after the model section (e.g. the CPCV paths)."""
    by_name = {c.name: c for c in charts}
    parts = [_cards(data)]
    parts.append("<h2 id='performance'>Performance</h2>")
    for name in ("equity", "drawdown", "monthly_returns", "rolling"):
        parts.append(_chart_html(by_name[name], out_dir))
    parts.append("<h2 id='metrics'>All metrics</h2><div class='grid2'>")
    for group, keys in _GROUPS:
        parts.append(
            f"<div><h3>{_e(group)}</h3>{_kv_table([(k, data['trading'].get(k)) for k in keys if k in data['trading']])}</div>"
        )
    if data.get("benchmark"):
        parts.append(
            f"<div><h3>Buy-and-hold of the same data</h3>{_kv_table(list(data['benchmark'].items()))}</div>"
        )
    parts.append("</div>")
    parts.append(_statistics_section(data.get("statistics") or {}))
    parts.append("<h2 id='symbols'>Symbols</h2>")
    if data.get("per_symbol"):
        keys = [
            "n_trades",
            "win_rate",
            "net_pnl",
            "fees_paid",
            "profit_factor",
            "exposure",
            "gross_pnl_mtm",
            "slippage_paid",
            "signal_hit_rate",
            "buy_hold_return",
        ]
        rows = [{"symbol": s, **v} for s, v in data["per_symbol"].items()]
        cols = ["symbol"] + [k for k in keys if any(k in r for r in rows)]
        short = {
            "symbol": "Symbol",
            "net_pnl": "Net P&L",
            "exposure": "Exposure",
            "gross_pnl_mtm": "MTM P&L (gross)",
            "buy_hold_return": "Buy & hold",
        }
        parts.append(_table(cols, rows, labels=short, table_id="symbols-table"))
    for c in charts:
        if c.section == "symbols":
            parts.append(_chart_html(c, out_dir))
    parts.append(_costs_section(metrics))
    parts.append("<h2 id='trades'>Trades</h2>")
    parts.append(_chart_html(by_name["trade_pnl"], out_dir))
    trade_rows, note = _trade_rows(result)
    if trade_rows:
        if note:
            parts.append(f"<p class='note'>{_e(note)}</p>")
        parts.append("<p>Click a column heading to sort.</p>")
        parts.append(
            _table(
                list(_TRADE_LABELS),
                trade_rows,
                labels=_TRADE_LABELS,
                sortable=True,
                table_id="trades-table",
                tall=True,
            )
        )
    else:
        parts.append("<p class='note'>No closed trades.</p>")
    parts.append(_model_section(metrics, by_name, out_dir))
    parts.extend(extra)
    parts.append("<h2 id='config'>Run configuration</h2>")
    parts.append(
        f"<pre>{_e(json.dumps(to_jsonable(result.config), indent=2, sort_keys=True))}</pre>"
    )
    parts.append("<h3>Versions</h3>")
    versions = {
        "mlstrat (report)": mlstrat.__version__,
        **{str(k): v for k, v in result.versions.items()},
    }
    parts.append(
        _table(
            ["package", "version"],
            [{"package": k, "version": str(v)} for k, v in versions.items()],
            labels={"package": "Package", "version": "Version"},
        )
    )
    return _page(title, _subtitle(result, metrics), "".join(parts))


@contextlib.contextmanager
def _assembled(out: Path) -> Iterator[Path]:
    """A fresh temporary sibling of report directory `out` to fill (`fileio.staged_dir`):
    renamed into place when the block succeeds, removed when it fails, so readers never see
    half a report; a path that is not a report directory is refused first."""
    _check_report_dir(out)
    with staged_dir(out) as tmp:
        yield tmp


def _check_report_dir(out: Path) -> None:
    """Refuse to replace a path that is not a report directory (a user's folder or file)."""
    if out.exists():
        if not out.is_dir():
            raise ConfigError(
                "report path exists and is not a directory", file=out, fix="choose another --out"
            )
        known = {REPORT_FILE, RESULT_FILE, METRICS_FILE}
        names = {p.name for p in out.iterdir()}
        if names and not (names & known):
            raise ConfigError(
                "directory exists and holds no report or saved result; refusing to replace it",
                file=out,
                fix="pass a new or empty directory, or a report directory to rebuild",
            )


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json_text(data, sort_keys=False), encoding="utf-8")


def build_report(
    result: BacktestResult,
    out_dir: str | os.PathLike,
    *,
    title: str | None = None,
    periods_per_year: float | None = None,
    risk_free: float = 0.0,
    log_scale: bool | str = "auto",
    dpi: int = 100,
    statistics: StatisticsOptions | None = _STATISTICS,
    paths: PathDistribution | None = None,
) -> Path:
    """Write the report directory for one run (see module docstring); return report.html's path.

    `log_scale` ("auto", True or False) picks the equity chart's y scale;
    "auto" uses a log scale once values span more than ten times. `statistics` says how
    the "Is the edge real?" section is computed (the trials behind the backtest, the
    bootstrap's seed); None leaves it out. `paths`: the CPCV paths' Sharpe and drawdown
    distribution (`report.paths`), shown in its own section and kept in metrics.json as
    ``cpcv_paths``.
    """
    out = Path(out_dir)
    metrics = compute_metrics(
        result, periods_per_year=periods_per_year, risk_free=risk_free, statistics=statistics
    )
    title = title or str(
        result.config.get("name") or f"Backtest report: {', '.join(result.symbols) or out.name}"
    )
    with _assembled(out) as tmp:
        result.write_files(tmp)
        data = to_jsonable({"title": title, **metrics.to_dict()})
        extra = []
        if paths is not None:
            data["cpcv_paths"] = to_jsonable(paths_block(paths))
            extra.append(paths_section(paths, tmp, dpi=dpi))
        _write_json(tmp / METRICS_FILE, data)
        charts = save_charts(make_charts(result, metrics, log_scale=log_scale), tmp, dpi=dpi)
        page = render_report_html(result, metrics, data, charts, tmp, title, extra)
        (tmp / REPORT_FILE).write_text(page, encoding="utf-8")
    return out / REPORT_FILE


# --------------------------------------------------------------------------- comparison


@dataclass
class _Run:
    name: str
    result: BacktestResult
    metrics: Metrics


def _runs(
    results: Sequence[BacktestResult] | Mapping[str, BacktestResult],
    names: Sequence[str] | None,
    periods_per_year: float | None,
    risk_free: float,
    statistics: StatisticsOptions | None = None,
) -> list[_Run]:
    if isinstance(results, Mapping):
        items = [(str(k), v) for k, v in results.items()]
    else:
        items = [(str(r.config.get("name") or f"run {i + 1}"), r) for i, r in enumerate(results)]
    if names is not None:
        if len(names) != len(items):
            raise ConfigError(
                f"{len(names)} names for {len(items)} runs", fix="give one name per run"
            )
        items = [(str(n), r) for n, (_, r) in zip(names, items, strict=True)]
    if len(items) < 2:
        raise ConfigError(
            f"comparison needs at least two runs, got {len(items)}", fix="pass two or more results"
        )
    seen: dict[str, int] = {}
    runs = []
    for name, res in items:
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f"{name} ({seen[name]})"
        runs.append(
            _Run(
                label,
                res,
                compute_metrics(
                    res,
                    periods_per_year=periods_per_year,
                    risk_free=risk_free,
                    statistics=statistics,
                ),
            )
        )
    return runs


_COMPARE_KEYS: tuple[tuple[str, str], ...] = HEADLINE + (
    ("trading", "annual_volatility"),
    ("trading", "max_drawdown_days"),
    ("trading", "longest_underwater_days"),
    ("trading", "var_95"),
    ("trading", "cvar_95"),
    ("trading", "expectancy"),
    ("trading", "avg_holding_hours"),
    ("trading", "turnover_annual"),
)


def build_comparison(
    results: Sequence[BacktestResult] | Mapping[str, BacktestResult],
    out_dir: str | os.PathLike,
    *,
    title: str = "Comparison of runs",
    names: Sequence[str] | None = None,
    periods_per_year: float | None = None,
    risk_free: float = 0.0,
    dpi: int = 100,
    statistics: StatisticsOptions | None = _STATISTICS,
    paths: Mapping[str, PathDistribution] | None = None,
) -> Path:
    """Write a page putting two or more runs side by side; return report.html's path.

    Runs are named by the mapping keys, `names`, their config's "name", or
    "run N". metrics.json holds every run's full metrics under its name, and the
    probability of backtest overfitting (``pbo``) over the trials `statistics` holds
    (or, without recorded trial returns, over the runs compared). `paths`: run name →
    its CPCV path distribution; the first run that has one gets a section (metrics.json:
    ``cpcv_paths`` with ``model``).
    """
    runs = _runs(results, names, periods_per_year, risk_free, statistics)
    out = Path(out_dir)
    with _assembled(out) as tmp:
        data = to_jsonable({"title": title, "runs": {r.name: r.metrics.to_dict() for r in runs}})
        shown = next((r.name for r in runs if r.name in (paths or {})), None)
        if shown is not None:
            data["cpcv_paths"] = to_jsonable({"model": shown, **paths_block(paths[shown])})
        extra = []
        if statistics is not None:
            block, found = _comparison_pbo(runs, statistics)
            data["pbo"] = to_jsonable(block)
            extra = [] if found is None else [_pbo_chart(found)]
        _write_json(tmp / METRICS_FILE, data)
        charts = save_charts(
            make_comparison_charts([(r.name, r.result, r.metrics) for r in runs]) + extra,
            tmp,
            dpi=dpi,
        )
        rows = []
        for section, key in _COMPARE_KEYS:
            label = "Buy-and-hold return" if section == "benchmark" else label_of(key)
            row: dict[str, Any] = {"metric": label}
            for r in runs:
                row[r.name] = data["runs"][r.name][section].get(key)
            rows.append((key, row))
        head = "".join(f'<th scope="col">{_e(r.name)}</th>' for r in runs)
        body = []
        for key, row in rows:
            vals = [row[r.name] for r in runs]
            cells = "".join(
                f'<td data-run="{_e(r.name)}" data-metric="{_e(key)}">{_e(format_value(key, v))}</td>'
                for r, v in zip(runs, vals, strict=True)
            )
            body.append(f'<tr><th scope="row" class="text">{_e(row["metric"])}</th>{cells}</tr>')
        table = f'<div class="scroll"><table id="compare-table"><thead><tr><th class="text">Metric</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
        notes = []
        spans = {(str(r.metrics.trading["start"]), str(r.metrics.trading["end"])) for r in runs}
        if len(spans) > 1:
            notes.append(
                "<p class='note'>The runs cover different periods; compare ratios rather than totals.</p>"
            )
        symbols = {tuple(r.result.symbols) for r in runs}
        if len(symbols) > 1:
            notes.append("<p class='note'>The runs trade different symbols.</p>")
        by = {c.name: c for c in charts}
        parts = [
            "<h2 id='summary'>Side by side</h2>",
            *notes,
            table,
            "<h2 id='performance'>Performance</h2>",
        ]
        parts += [_chart_html(by["compare_equity"], tmp), _chart_html(by["compare_drawdown"], tmp)]
        if statistics is not None:
            parts.append(_compare_statistics(runs, data))
            parts.append(_pbo_section(data["pbo"], by.get("pbo_logits"), tmp))
        parts += ["<h2 id='model'>Model</h2>", _chart_html(by["compare_folds"], tmp)]
        for r in runs:
            if r.metrics.tiers:
                parts.append(f"<h3>Tiers: {_e(r.name)}</h3>")
                cols = ["tier", "n_signals", "hit_rate", "avg_return", "n_trades", "pnl_net"]
                parts.append(_table(cols, r.metrics.tiers, labels={"tier": "Tier"}))
        if shown is not None:
            parts.append(paths_section(paths[shown], tmp, model=shown, dpi=dpi))
        parts.append("<h2 id='config'>Runs</h2>")
        for r in runs:
            parts.append(
                f"<h3>{_e(r.name)}</h3><p>{_e(' · '.join(_subtitle(r.result, r.metrics)))}</p>"
            )
            parts.append(
                f"<pre>{_e(json.dumps(to_jsonable(r.result.config), indent=2, sort_keys=True))}</pre>"
            )
        subtitle = [f"{len(runs)} runs: " + ", ".join(r.name for r in runs)]
        (tmp / REPORT_FILE).write_text(_page(title, subtitle, "".join(parts)), encoding="utf-8")
    return out / REPORT_FILE


#: Rows of the comparison page's statistics table: (data-stat key, label).
_COMPARE_STATS: tuple[tuple[str, str], ...] = (
    ("sharpe_annual", "Sharpe ratio (annualised)"),
    ("bootstrap", "Bootstrap interval of the Sharpe ratio (annualised)"),
    ("psr.zero", "PSR: P(true Sharpe > 0)"),
    ("psr.buy_and_hold", "PSR: P(true Sharpe > buy-and-hold's)"),
    ("dsr", "DSR: PSR against the best of the trials by luck"),
    ("n_trials", "Trials behind the DSR"),
    ("min_trl.zero", "Minimum track record to beat 0"),
)


def _compare_statistics(runs: list[_Run], data: Mapping[str, Any]) -> str:
    """PSR, DSR (with its trial count) and the bootstrap interval of every run side by side."""
    shown = {}
    for r in runs:
        block = data["runs"][r.name].get("statistics") or {}
        texts = {} if "undefined" in block else {k: t for k, _, t in statistics_rows(block)}
        if "n_trials" in block:
            texts["n_trials"] = f"{block['n_trials']:,}"
        shown[r.name] = texts
    head = "".join(f'<th scope="col">{_e(r.name)}</th>' for r in runs)
    body = []
    for key, label in _COMPARE_STATS:
        cells = "".join(
            f'<td data-run="{_e(r.name)}" data-stat="{_e(key)}">'
            f"{_e(shown[r.name].get(key, 'n/a'))}</td>"
            for r in runs
        )
        body.append(f'<tr><th scope="row" class="text">{_e(label)}</th>{cells}</tr>')
    sources = {(data["runs"][r.name].get("statistics") or {}).get("trials") for r in runs} - {None}
    note = "The DSR counts " + "; ".join(sorted(sources)) + "." if sources else ""
    return (
        "<h2 id='statistics'>Is the edge real?</h2>"
        f'<div class="scroll"><table id="statistics-compare"><thead><tr><th class="text">'
        f"Statistic</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        + (f"<p class='note'>{_e(note)}</p>" if note else "")
    )


def _comparison_pbo(runs: list[_Run], options: StatisticsOptions) -> tuple[dict[str, Any], Any]:
    """PBO over the recorded trials' returns on the compared bars, or over the runs' own."""
    from mlstrat.report.metrics import bar_returns

    own = {r.name: bar_returns(r.result.equity) for r in runs}
    index = union_index(own)
    trials = options.trials
    if trials is not None and len(trials.returns) >= 2:
        names = [trials.labels.get(k, k) for k in trials.returns]
        if len(set(names)) < len(names):
            names = list(trials.returns)
        variants = dict(zip(names, trials.returns.values(), strict=True))
        return pbo_block(variants, index, options.pbo_blocks, trials.source)
    return pbo_block(own, index, options.pbo_blocks, "the runs compared here")


# --------------------------------------------------------------------------- sweep

METRIC_FORMATS.setdefault("rank", ("Rank", "int"))
METRIC_FORMATS.setdefault("psr", ("PSR: P(Sharpe > 0)", "pct"))


def build_sweep_report(
    ranking: pd.DataFrame,
    best: Mapping[str, Any],
    pbo: Mapping[str, Any],
    found: Any,
    out_dir: str | os.PathLike,
    *,
    title: str = "Sweep",
    dpi: int = 100,
) -> Path:
    """Write the page of a parameter sweep (`mlstrat.sweep`): the best trial's statistics over
    every trial logged, the PBO of the selection with its logit chart, and the ranking.

    ranking: one row per trial, best first (rank, trial, label, predictor, one column per
    swept key, sharpe annualised, psr, total_return, max_drawdown, n_trades); best:
    ``{"trial", "label", "statistics"}``; pbo / found: `pbo_block`'s output.
    """
    out = Path(out_dir)
    with _assembled(out) as tmp:
        charts = save_charts([] if found is None else [_pbo_chart(found)], tmp, dpi=dpi)
        _write_json(
            tmp / METRICS_FILE,
            to_jsonable({"title": title, "best": best, "pbo": pbo}),
        )
        keys = [c for c in ranking.columns if "." in c]
        cols = ["rank", "label", *keys, "sharpe", "psr", "total_return", "max_drawdown", "n_trades"]
        rows = [{c: _cell(r[c]) for c in cols} for r in ranking.to_dict(orient="records")]
        labels = {"label": "Trial", **{k: k.rsplit(".", 1)[-1] for k in keys}}
        labels["sharpe"] = "Sharpe (annualised)"
        parts = [
            "<h2 id='selection'>The best trial</h2>",
            f"<p id='best-trial'>{_e(best['label'])} (trial {_e(best['trial'])})</p>",
            _statistics_section(best.get("statistics") or {}, heading=""),
            "<h2 id='overfitting'>Is the selection real?</h2>",
            _pbo_section(pbo, charts[0] if charts else None, tmp),
            "<h2 id='ranking'>Ranking</h2><p>Click a column heading to sort.</p>",
            _table(cols, rows, labels=labels, sortable=True, table_id="ranking-table", tall=True),
        ]
        subtitle = [f"{len(ranking)} trials of {', '.join(dict.fromkeys(ranking['predictor']))}"]
        (tmp / REPORT_FILE).write_text(_page(title, subtitle, "".join(parts)), encoding="utf-8")
    return out / REPORT_FILE
