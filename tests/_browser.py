"""Headless Chromium for the report's browser checks: load a page at a given window width and
read back what a reader's browser would see (page width, broken images, script errors).

No DevTools client is needed: a copy of the page gets a probe script that records errors from
the first moment (``error`` events, including failed resource loads, and ``console.error``) and,
once the page has loaded, opens every ``<details>`` (collapsed tables must fit too), measures,
and writes its measurements as JSON into the DOM, which ``--dump-dom`` prints.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-default-apps", "--hide-scrollbars", "--mute-audio")

_EARLY = """<script>window.__bsnnErrors=[];
window.addEventListener('error',function(e){var t=e.target;window.__bsnnErrors.push(
(t&&t!==window&&(t.src||t.href))?('failed to load '+String(t.src||t.href).slice(0,80))
:String(e.message));},true);
(function(){var o=console.error;console.error=function(){window.__bsnnErrors.push(
Array.prototype.join.call(arguments,' '));o.apply(console,arguments);};})();</script>"""

_LATE = """<script>window.addEventListener('load',function(){
var firstTop=document.images.length?document.images[0].getBoundingClientRect().top:null;
Array.prototype.forEach.call(document.querySelectorAll('details'),function(x){x.open=true;});
var d=document.documentElement,imgs=Array.prototype.slice.call(document.images);
var wide=Array.prototype.slice.call(document.body.querySelectorAll('*'))
.filter(function(el){var r=el.getBoundingClientRect();return r.right>window.innerWidth+1;})
.map(function(el){return el.tagName+': '+(el.textContent||el.alt||'').slice(0,60);});
var out={innerWidth:window.innerWidth,scrollWidth:d.scrollWidth,
bodyScrollWidth:document.body.scrollWidth,images:imgs.length,
broken:imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0);})
.map(function(i){return i.alt;}),wide:wide,errors:window.__bsnnErrors,
firstFigureTop:firstTop};
var p=document.createElement('pre');p.id='bsnn-probe';p.textContent=JSON.stringify(out);
document.body.appendChild(p);});</script>"""


def find_browser() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def _run(browser: str, args: list[str], profile: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def probe(page: Path, *, width: int = 1280, height: int = 2000) -> dict[str, Any]:
    """Load a copy of ``page`` (next to it, so relative links resolve) at ``width`` and return
    the probe's measurements."""
    browser = find_browser()
    if browser is None:
        raise RuntimeError("no Chromium browser installed")
    text = page.read_text(encoding="utf-8")
    head = text.index("<head>") + len("<head>")
    body = text.rindex("</body>")
    probed = text[:head] + _EARLY + text[head:body] + _LATE + text[body:]
    copy = page.with_name(f".probe-{page.name}")
    copy.write_text(probed, encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory(prefix="bsnn-chromium-") as profile:
            proc = _run(browser, [f"--window-size={width},{height}", "--virtual-time-budget=10000",
                                  "--dump-dom", copy.resolve().as_uri()], profile)
    finally:
        copy.unlink(missing_ok=True)
    m = re.search(r'<pre id="bsnn-probe">(.*?)</pre>', proc.stdout, re.S)
    if m is None:
        raise RuntimeError(f"the probe did not run (exit {proc.returncode}): "
                           f"{proc.stderr[-1500:]}")
    import html

    return json.loads(html.unescape(m.group(1)))


def screenshot(page: Path, out: Path, *, width: int = 1280, height: int = 2000) -> Path:
    browser = find_browser()
    if browser is None:
        raise RuntimeError("no Chromium browser installed")
    with tempfile.TemporaryDirectory(prefix="bsnn-chromium-") as profile:
        proc = _run(browser, [f"--window-size={width},{height}", f"--screenshot={out}",
                              page.resolve().as_uri()], profile)
    if not out.is_file():
        raise RuntimeError(f"no screenshot (exit {proc.returncode}): {proc.stderr[-1500:]}")
    return out
