"""The self-contained HTML page of ``kerneltheory report``, rendered from its Markdown with markdown-it-py.

CommonMark plus tables (markdown-it-py) with heading ids (mdit-py-plugins' anchors with GitHub's ids,
:func:`kerneltheory.report_matrix.heading_id`, so the matrix cells' links land on their detail sections in report.html
and in report.md on GitHub); raw HTML in the Markdown is escaped. On top of the rendering: images read from the
report directory and embedded as base64 data URIs, a table of contents from the h2/h3 headings, table cells coloured
by verdict, and a print stylesheet.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

from markdown_it import MarkdownIt
from mdit_py_plugins.anchors import anchors_plugin

from .report_matrix import VERDICTS, heading_id, slug

#: CSS class of a table cell whose text starts with a verdict.
VERDICT_CLASS = {v: "v-" + slug(v) for v in VERDICTS}
_VERDICT_START = re.compile(r"^\[?(" + "|".join(re.escape(v) for v in sorted(VERDICTS, key=len, reverse=True))
                            + r")(\]|\b|$)")

CSS = """
body{font-family:system-ui,sans-serif;max-width:80rem;margin:2rem auto;padding:0 1rem;line-height:1.45;color:#111}
table{border-collapse:collapse;font-size:.82rem;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.2rem .45rem;vertical-align:top;text-align:left}
th{background:#f0f0f0}code{background:#f4f4f4;padding:0 .2rem}img{max-width:100%}
a{color:#0645ad}h2{border-bottom:1px solid #ddd;margin-top:2.2rem}h4{margin-bottom:.3rem}
nav.toc{border:1px solid #ddd;background:#fafafa;padding:.4rem 1rem;font-size:.9rem;columns:2}
nav.toc ul{margin:.1rem 0;padding-left:1.1rem}nav.toc>ul{padding-left:0;list-style:none}
td.v-verified{background:#e3f4e3}td.v-failed{background:#f9c9c9;font-weight:600}
td.v-refused{background:#fde7b0;font-weight:600}td.v-refuted{background:#e2e9f7}
td.v-not-refuted{background:#f1f1f1}td.v-n-a{color:#777}
@media print{
 body{max-width:none;margin:0;font-size:9pt}nav.toc{columns:3;break-after:page}
 h2,h3,h4{break-after:avoid}tr,img,figure{break-inside:avoid}table{font-size:7.5pt}
 a{color:inherit;text-decoration:none}
 td[class^="v-"]{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    return md.use(anchors_plugin, min_level=1, max_level=4, slug_func=heading_id)


def _embed_images(tokens, base: Path) -> None:
    for tok in tokens:
        for child in tok.children or ():
            if child.type != "image":
                continue
            src = str(child.attrs.get("src", ""))
            path = base / src
            if not path.is_file():
                raise ValueError(f"report image {src!r} not found under {base}")
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            child.attrs["src"] = f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _colour_verdicts(tokens) -> None:
    for i, tok in enumerate(tokens[:-1]):
        if tok.type == "td_open" and tokens[i + 1].type == "inline":
            m = _VERDICT_START.match(tokens[i + 1].content)
            if m:
                tok.attrSet("class", VERDICT_CLASS[m.group(1)])


def _toc(tokens) -> str:
    """Nested list of links to the h2 and h3 headings (the h1 is the page title)."""
    groups: list[tuple[str, list[str]]] = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.tag in ("h2", "h3"):
            text = "".join(c.content for c in tokens[i + 1].children or () if c.type in ("text", "code_inline"))
            link = f'<a href="#{html.escape(str(tok.attrs["id"]))}">{html.escape(text)}</a>'
            if tok.tag == "h2" or not groups:
                groups.append((link if tok.tag == "h2" else "", []))
            if tok.tag == "h3":
                groups[-1][1].append(link)
    items = "".join(
        f"<li>{top}" + ("<ul>" + "".join(f"<li>{s}</li>" for s in subs) + "</ul>" if subs else "") + "</li>"
        for top, subs in groups
    )
    return f'<nav class="toc" aria-label="Contents"><strong>Contents</strong><ul>{items}</ul></nav>'


def markdown_to_html(text: str, base_dir: str | Path, *, title: str = "report") -> str:
    """A self-contained HTML page from the report's Markdown: the h1, a table of contents, then the rest.

    Images ``![alt](path)`` are read from ``base_dir`` and embedded (a missing one is a ``ValueError``)."""
    md = _parser()
    tokens = md.parse(text)
    _embed_images(tokens, Path(base_dir))
    _colour_verdicts(tokens)
    body = md.renderer.render(tokens, md.options, {})
    toc = _toc(tokens)
    head, sep, rest = body.partition("</h1>\n")
    body = head + sep + toc + "\n" + rest if sep else toc + "\n" + body
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n{body}</body></html>\n")
