"""The report as a person sees it: rendered by headless Chromium at laptop and phone width.

Each render loads a copy of report.html with a small probe script put first in
<head>, inside an iframe of exactly the wanted CSS width (headless Chromium
will not make its window narrower than 500 px, so a phone is an iframe). The probe records console errors, uncaught exceptions and
Content-Security-Policy violations, then after `load` checks that every image
decoded, measures horizontal overflow, reads the headline cards, lists any
non-data resource the page fetched, clicks the trade table's "Net P&L" heading
twice and reads the column back; it posts its findings as JSON to the host
page, which writes them into its DOM for Chromium's --dump-dom to print. Chromium's own console log (stderr) must be
empty of page messages. Screenshots are kept in the pytest tmp dir.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_synth import backtrader_result, make_result

from mlstrat.report.html import build_comparison, build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,  # a real browser per test
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="headless Chromium not installed (Debian: apt-get install chromium; `make test` tries)",
    ),
]

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # belt and braces: nothing can leave the machine
    "--enable-logging=stderr",
    "--v=0",
]

PROBE = r"""<script>
(function(){
  var P={errors:[],csp:[]};
  var oe=console.error;
  console.error=function(){P.errors.push('console.error: '+Array.prototype.join.call(arguments,' '));oe.apply(console,arguments);};
  window.addEventListener('error',function(e){P.errors.push('error: '+(e.message||e.target&&e.target.outerHTML));},true);
  window.addEventListener('unhandledrejection',function(e){P.errors.push('rejection: '+e.reason);});
  document.addEventListener('securitypolicyviolation',function(e){P.csp.push(e.violatedDirective+' '+e.blockedURI);});
  window.addEventListener('load',function(){
    var imgs=Array.prototype.slice.call(document.images);
    P.images=imgs.length;
    P.broken=imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0);}).map(function(i){return i.alt;});
    P.viewport=window.innerWidth;
    P.scrollWidth=document.documentElement.scrollWidth;
    P.headline={};
    document.querySelectorAll('#headline .card').forEach(function(c){
      P.headline[c.getAttribute('data-metric')]=c.querySelector('.value').textContent;});
    P.resources=performance.getEntriesByType('resource').map(function(r){return r.name;})
      .filter(function(n){return n.indexOf('data:')!==0;});
    var t=document.getElementById('trades-table');
    if(t){
      var ths=t.tHead.rows[0].cells,col=-1;
      for(var i=0;i<ths.length;i++){if(ths[i].textContent==='Net P&L')col=i;}
      var read=function(){return Array.prototype.map.call(t.tBodies[0].rows,function(r){return parseFloat(r.cells[col].getAttribute('data-sort'));});};
      P.before=read();
      ths[col].click(); P.asc=read(); P.ariaAsc=ths[col].getAttribute('aria-sort');
      ths[col].click(); P.desc=read(); P.ariaDesc=ths[col].getAttribute('aria-sort');
    }
    if(window.parent!==window){window.parent.postMessage(JSON.stringify(P),'*');}
  });
})();
</script>"""


def _chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


HOST = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:0">
<iframe src="{src}" style="width:{w}px;height:{h}px;border:0;display:block"></iframe>
<script>window.addEventListener('message',function(e){{var p=document.createElement('pre');
p.id='probe-result';p.textContent=e.data;document.body.appendChild(p);}});</script></body></html>"""


def _host(report: Path, tmp: Path, width: int, height: int, probe: bool) -> Path:
    """A page showing `report` in an iframe of width × height CSS pixels."""
    page = report.read_text(encoding="utf-8")
    inner = tmp / f"page-{width}.html"
    inner.write_text(
        page.replace("<head>", "<head>" + PROBE, 1) if probe else page, encoding="utf-8"
    )
    host = tmp / f"host-{width}.html"
    host.write_text(HOST.format(src=inner.name, w=width, h=height), encoding="utf-8")
    return host


def render(report: Path, tmp: Path, width: int, height: int = 900) -> dict:
    """Probe findings for `report` in a viewport of width × height CSS pixels."""
    host = _host(report, tmp, width, height, probe=True)
    out = _chromium(
        [
            f"--window-size={max(width, 500) + 20},{height + 20}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            host.as_uri(),
        ],
        tmp,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', out.stdout, re.S)
    assert found, "probe did not report: page failed to load\n" + out.stderr[-2000:]
    text = found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    result = json.loads(text)
    # Chromium logs every page console message (and load failures) to stderr as CONSOLE lines
    result["console"] = [ln for ln in out.stderr.splitlines() if ":CONSOLE" in ln]
    return result


def screenshot(report: Path, tmp: Path, width: int, height: int, name: str) -> Path:
    """PNG of the top width × height CSS pixels of the page (window may be wider)."""
    host = _host(report, tmp, width, height, probe=False)
    shot = tmp / name
    out = _chromium(
        [f"--window-size={max(width, 500)},{height}", f"--screenshot={shot}", host.as_uri()], tmp
    )
    assert out.returncode == 0 and shot.is_file(), out.stderr[-2000:]
    return shot


def _parse_shown(text: str) -> float | None:
    """The number a person reads off a card: '12.34%' -> 0.1234, '1,234.50' -> 1234.5."""
    t = text.replace(",", "").replace("−", "-").strip()
    if t == "n/a":
        return None
    if t == "∞":
        return math.inf
    if t.endswith("%"):
        return float(t[:-1]) / 100
    return float(t)


def _decimals(text: str) -> int:
    t = text.rstrip("%")
    return len(t.split(".")[1]) if "." in t else 0


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    """Report of a real backtrader run (synthetic result if the strategy layer is absent)."""
    out = tmp_path_factory.mktemp("browser") / "run"
    try:
        result = backtrader_result()
    except ImportError:
        result = make_result(900, ("BTCUSDT", "ETHUSDT"), seed=21)
    build_report(result, out, title="Browser check: BTC + ETH")
    return out


@pytest.fixture(scope="module")
def laptop(report_dir, tmp_path_factory) -> dict:
    return render(report_dir / "report.html", tmp_path_factory.mktemp("laptop"), 1280)


def test_laptop_render_has_no_errors_no_requests_and_every_image_decodes(report_dir, laptop):
    probe = laptop
    assert probe["errors"] == [] and probe["csp"] == [], probe
    assert probe["console"] == [], probe["console"]
    assert probe["resources"] == []
    pngs = sorted(p.name for p in report_dir.glob("*.png"))
    assert probe["images"] == len(pngs) >= 10
    assert probe["broken"] == []
    assert probe["scrollWidth"] <= probe["viewport"]


def test_headline_numbers_on_the_page_equal_metrics_json(report_dir, laptop):
    probe = laptop
    metrics = json.loads((report_dir / "metrics.json").read_text())
    shown = probe["headline"]
    assert {
        "trading.total_return",
        "trading.sharpe",
        "trading.max_drawdown",
        "trading.n_trades",
    } <= set(shown)
    for key, text in shown.items():
        section, name = key.split(".")
        expected = metrics[section][name]
        value = _parse_shown(text)
        if expected is None:
            assert value is None, (key, text)
            continue
        # equal to the precision the page shows (half a unit in the last shown digit)
        scale = 100 if text.endswith("%") else 1
        tol = 0.5 * 10 ** (-_decimals(text)) / scale + 1e-12
        assert value == pytest.approx(expected, abs=tol), (key, text, expected)


def test_trade_table_sorts_when_a_heading_is_clicked(laptop):
    probe = laptop
    before = probe["before"]
    assert len(before) > 10 and before != sorted(before)
    assert probe["asc"] == sorted(before) and probe["ariaAsc"] == "ascending"
    assert probe["desc"] == sorted(before, reverse=True) and probe["ariaDesc"] == "descending"


def test_phone_width_has_no_horizontal_overflow(report_dir, tmp_path):
    probe = render(report_dir / "report.html", tmp_path, 390, 844)
    assert probe["errors"] == [] and probe["broken"] == []
    assert probe["viewport"] == 390
    assert probe["scrollWidth"] <= probe["viewport"], probe["scrollWidth"]


def test_screenshots_at_laptop_and_phone_width_are_real_pictures(report_dir, tmp_path):
    from matplotlib.image import imread

    for width, height in ((1280, 1800), (390, 1600)):
        shot = screenshot(report_dir / "report.html", tmp_path, width, height, f"shot-{width}.png")
        img = imread(shot)
        assert img.shape[0] == height and img.shape[1] >= width
        page = img[:, :width, :3]
        # a blank or error page is almost one colour; the report has cards, text and charts
        assert page.std() > 0.05


def test_comparison_page_renders_cleanly(tmp_path):
    runs = {
        "xgboost": make_result(400, seed=1),
        "lstm": make_result(400, seed=2, with_proba=False),
    }
    page = build_comparison(runs, tmp_path / "cmp", title="XGBoost vs LSTM")
    probe = render(page, tmp_path, 390, 844)
    assert probe["errors"] == [] and probe["csp"] == [] and probe["console"] == []
    assert probe["images"] == 4 and probe["broken"] == []  # 3 charts and the PBO logits
    assert probe["scrollWidth"] <= probe["viewport"]


def test_probe_catches_what_it_looks_for(report_dir, tmp_path):
    """The harness itself: a spoiled copy of the report must fail every check."""
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    spoiled = page.replace(
        "</main>",
        '<div style="width:2000px">wide</div><img src="data:image/png;base64,AAAA" alt="bad">'
        '<img src="https://example.invalid/x.png" alt="remote"></main>',
    ).replace("</body>", "<script>console.error('spoiled');undefinedCall();</script></body>")
    bad = tmp_path / "spoiled.html"
    bad.write_text(spoiled, encoding="utf-8")
    probe = render(bad, tmp_path, 1280)
    assert any("spoiled" in e for e in probe["errors"])
    assert any("undefinedCall" in e for e in probe["errors"])
    assert any("example.invalid" in v for v in probe["csp"])
    assert {"bad", "remote"} <= set(probe["broken"])
    assert probe["scrollWidth"] > probe["viewport"]
    assert any("undefinedCall" in ln for ln in probe["console"])
