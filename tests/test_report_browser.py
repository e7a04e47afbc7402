"""report.html in a real browser: headless Chromium loads the page, and a probe script run on its ``load`` event
reports every image's natural width and every in-page link that does not resolve to an element.

The browser is Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it), or the program
named by ``KT_BROWSER``; nothing is downloaded at run time. Without a browser the test is skipped with that
reason, except under CI (``CI`` set), where a missing browser fails it: CI must not pass without the check.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map((i) => ({alt: i.alt, width: i.naturalWidth}));
  const links = [...document.querySelectorAll('a[href^="#"]')].map((a) => a.getAttribute("href").slice(1));
  const missing = links.filter((id) => !document.getElementById(decodeURIComponent(id)));
  const toc = [...document.querySelectorAll("nav.toc a")].map((a) => a.getAttribute("href"));
  const out = document.createElement("pre");
  out.id = "kt-probe";
  out.textContent = JSON.stringify({images, links: links.length, missing, toc});
  document.body.appendChild(out);
});
</script>"""


def find_browser() -> str | None:
    named = os.environ.get("KT_BROWSER")
    if named:
        return shutil.which(named) or named
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        message = "no headless Chromium found (apt-get install chromium, or set KT_BROWSER)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI installs it in .ci/run and must not skip this check")
        pytest.skip(message)
    return path


def probe(browser: str, page: Path, tmp_path: Path, *, script: str = PROBE, where: Path | None = None) -> dict:
    """Load ``page`` in headless Chromium with ``script`` appended (a copy of it, written to ``where``, default
    ``tmp_path``: the page's folder when it loads relative files); return the JSON the script left in
    ``<pre id="kt-probe">``."""
    probed = (where or tmp_path) / f"kt-probe-{page.name}"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
           probed.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    match = re.search(r'<pre id="kt-probe">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"the probe did not run (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(html.unescape(match.group(1)))


def test_the_probe_sees_a_broken_image_and_a_dangling_link(browser, tmp_path):
    """The check can fail: an undecodable image has natural width 0, a link to a missing id is reported."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img alt="bad" src="data:image/png;base64,AAAA">'
                    '<a href="#nowhere">x</a><h2 id="here">h</h2><a href="#here">y</a></body></html>',
                    encoding="utf-8")
    seen = probe(browser, page, tmp_path)
    assert seen["images"] == [{"alt": "bad", "width": 0}]
    assert seen["links"] == 2 and seen["missing"] == ["nowhere"]


def test_report_figures_load_and_contents_links_resolve(browser, small_report, tmp_path):
    res, out = small_report  # the report tests/test_report.py checks (conftest.small_report)
    figures = json.loads(Path(res["json"]).read_text(encoding="utf-8"))["variance"]["figures"]
    seen = probe(browser, out / "report.html", tmp_path)
    assert len(seen["images"]) == len(figures) == 1
    assert all(img["width"] > 0 for img in seen["images"]), seen["images"]
    assert seen["toc"] and {"#claim-matrix", "#variance-sweeps", "#details", "#registry"} <= set(seen["toc"])
    assert seen["links"] > len(seen["toc"]) and seen["missing"] == []
