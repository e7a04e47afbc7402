"""The documentation renders its mathematics offline: MathJax is served from the site's own ``_static/``
(sphinx-mathjax-offline, in the ``docs`` extra), never from a CDN, when it is built or read.

A small site built with docs/conf.py's math settings (myst dollar math, sphinx.ext.mathjax and the offline
MathJax) must reference no remote script or stylesheet, and headless Chromium must typeset its formulas from
the local copy. The full site gets the same check in ``test_docs.py``'s slow build test.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_docs import _conf_value
from test_report_browser import browser, probe  # noqa: F401  (browser is a fixture)

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = "sphinx-mathjax-offline"
_REF = re.compile(r"<(script|link)\b[^>]*?\b(?:src|href)=[\"']([^\"']+)[\"']", re.I)
_CSS_URL = re.compile(r"(?:@import\s+|url\()\s*[\"']?((?:https?:)?//[^\"')\s]+)", re.I)


def remote_references(site: Path) -> list[str]:
    """Every script/link tag of an HTML page, and every @import/url() of a stylesheet, that leaves the site
    (http:, https: or a protocol-relative //host URL): ``["file: url", ...]``."""
    found = []
    for page in sorted(site.rglob("*.html")):
        for _, url in _REF.findall(page.read_text(encoding="utf-8", errors="replace")):
            if re.match(r"(?:https?:)?//", url):
                found.append(f"{page.relative_to(site)}: {url}")
    for sheet in sorted(site.rglob("*.css")):
        found += [f"{sheet.relative_to(site)}: {u}" for u in _CSS_URL.findall(sheet.read_text(errors="replace"))]
    return found


def test_remote_references_finds_cdn_scripts_and_styles(tmp_path):
    """The check can fail: a CDN script, a protocol-relative stylesheet and a remote @import are all found."""
    (tmp_path / "a.html").write_text('<script src="https://cdn.example/x.js"></script><link rel="stylesheet" '
                                     'href="//fonts.example/f.css"><script src="_static/local.js"></script>')
    (tmp_path / "s.css").write_text('@import url("https://fonts.example/g.css"); body{background:url(img.png)}')
    assert remote_references(tmp_path) == ["a.html: https://cdn.example/x.js", "a.html: //fonts.example/f.css",
                                           "s.css: https://fonts.example/g.css"]


def test_conf_serves_mathjax_locally():
    extensions = _conf_value("extensions")
    assert "sphinx.ext.mathjax" in extensions and OFFLINE in extensions
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^docs = \[.*"sphinx-mathjax-offline', pyproject, re.M)


@pytest.fixture(scope="module")
def math_site(tmp_path_factory) -> Path:
    """A two-formula site built with the math settings of docs/conf.py."""
    for name in ("sphinx", "myst_parser", OFFLINE):
        pytest.importorskip(name, reason="needs the docs extra: pip install -e '.[docs]'")
    src = tmp_path_factory.mktemp("math_src")
    settings = {k: _conf_value(k) for k in ("myst_enable_extensions", "myst_dmath_double_inline")}
    extensions = [e for e in _conf_value("extensions") if e in ("myst_parser", "sphinx.ext.mathjax", OFFLINE)]
    (src / "conf.py").write_text(f"extensions = {extensions!r}\n" + "".join(f"{k} = {v!r}\n" for k, v in
                                 settings.items()) + "html_theme = 'alabaster'\n", encoding="utf-8")
    (src / "index.md").write_text(textwrap.dedent(r"""
        # Math

        Inline $\varphi(x)^\top \varphi(y)$ and displayed:

        $$
        \mathbb{E}\,\varphi(x)^\top\varphi(y) = e^{x^\top y}
        $$
        """), encoding="utf-8")
    out = src.parent / (src.name + "_html")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-E", "-W", "-q", "-b", "html", str(src), str(out)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_built_math_references_nothing_remote(math_site):
    page = (math_site / "index.html").read_text(encoding="utf-8")
    assert "_static/mathjax/tex-chtml.js" in page and (math_site / "_static/mathjax/tex-chtml.js").is_file()
    assert remote_references(math_site) == []


MATH_PROBE = """<script>
window.addEventListener("load", () => {
  const done = (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
  done.then(() => {
    const out = document.createElement("pre");
    out.id = "kt-probe";
    out.textContent = JSON.stringify({typeset: document.querySelectorAll("mjx-container").length,
                                      mathjax: !!(window.MathJax && MathJax.version)});
    document.body.appendChild(out);
  });
});
</script>"""


def test_formulas_are_typeset_from_the_local_mathjax(browser, math_site, tmp_path):  # noqa: F811
    seen = probe(browser, math_site / "index.html", tmp_path, script=MATH_PROBE, where=math_site)
    assert seen == {"typeset": 2, "mathjax": True}
