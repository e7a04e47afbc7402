"""Sphinx glue of the kerneltheory documentation (see docs/contributing.md, "How the docs are built").

* ``builder-inited``: writes the generated sources — one stub per proof under ``docs/proofs/`` plus its
  index, one ``automodule`` page per public module under ``docs/api/`` plus its index — and removes
  generated files whose source is gone. Files are rewritten only when their content changes, so
  incremental builds stay incremental. Both folders are ignored by git (docs/.gitignore).
* ``source-read``: a proof stub is replaced by the rendered proof (:func:`kt_sources.render_proof`), and
  the real file is recorded as a dependency so that editing ``proofs/x.md`` rebuilds its page. In other
  Markdown pages, links to the repository's ``../proofs/x.md`` and plain mentions ``proofs/x.md`` are
  pointed at the proof's page (:func:`kt_sources.rewrite_page`). Toctree
  entries naming an optional page (``kt_optional_pages``, pages other people write) that does not exist
  are dropped with an info message instead of a warning.
* ``autodoc-process-docstring``: the package's Unicode-math docstrings made valid reST without editing
  them — bars escaped, ragged indented formula blocks turned into literal blocks
  (:func:`kt_sources.sanitize_docstring`).
* a transform that finds figures: an image path that does not resolve relative to its page is tried
  relative to the repository root (``experiments/x/fig.png`` or ``/experiments/x/fig.png`` from any page
  both find ``<root>/experiments/x/fig.png``); Sphinx copies the file into ``_images/``.
"""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform
from sphinx.util import logging

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kt_sources as S  # noqa: E402

logger = logging.getLogger(__name__)

PROOFS_DIR = "proofs"  # under the Sphinx source dir: generated
API_DIR = "api"  # under the Sphinx source dir: generated


def _root(app: Sphinx) -> Path:
    return Path(app.config.kt_root).resolve()


def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _remove_stale(folder: Path, keep: set[Path], suffix: str) -> None:
    """Delete generated files in ``folder`` that are not in ``keep`` (never a file without the marker)."""
    if not folder.is_dir():
        return
    for path in folder.glob(f"*{suffix}"):
        if path in keep:
            continue
        try:
            head = path.read_text(encoding="utf-8")[:200]
        except OSError:
            continue
        if S.GENERATED_MARKER in head:
            path.unlink()


def generate_sources(app: Sphinx) -> None:
    root = _root(app)
    src = Path(app.srcdir)

    # proofs: stubs (content replaced at read time) and the index
    proofs = root / "proofs"
    out = src / PROOFS_DIR
    written: set[Path] = set()
    for stem in S.proof_stems(proofs):
        path = out / f"{stem}.md"
        _write_if_changed(path, S.stub_text(f"proofs/{stem}.md"))
        written.add(path)
    index = out / "index.md"
    _write_if_changed(index, S.stub_text("proofs/README.md"))
    written.add(index)
    _remove_stale(out, written, ".md")

    # API reference
    package = app.config.kt_api_package
    package_dir = root / package
    names = S.api_modules(package_dir, package, app.config.kt_api_exclude)
    api = src / API_DIR
    written = set()
    for name in names:
        path = api / f"{name}.rst"
        _write_if_changed(path, S.api_page(name))
        written.add(path)
    summaries = {n: S.module_summary(package_dir, package, n) for n in names}
    path = api / "index.rst"
    _write_if_changed(path, S.api_index(names, summaries))
    written.add(path)
    _remove_stale(api, written, ".rst")


def _rel_prefix(folder: Path, docdir: Path) -> str:
    return os.path.relpath(folder, docdir).replace(os.sep, "/") + "/"


def on_source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    root = _root(app)
    proofs = root / "proofs"
    if docname.startswith(f"{PROOFS_DIR}/"):
        stem = docname[len(PROOFS_DIR) + 1 :]
        real = proofs / ("README.md" if stem == "index" else f"{stem}.md")
        if real.is_file():
            app.env.note_dependency(str(real))
            text = real.read_text(encoding="utf-8")
            if stem == "index":
                source[0] = S.render_proofs_index(text, S.proof_order(proofs))
            else:
                source[0] = S.render_proof(text, stem, S.proof_stems(proofs))
            return
    srcdir = Path(app.srcdir)
    if Path(app.env.doc2path(docname)).suffix == ".md":
        docdir = (srcdir / docname).parent
        source[0] = S.rewrite_page(
            source[0],
            S.proof_stems(proofs),
            prefix=_rel_prefix(srcdir / PROOFS_DIR, docdir),
            repo_prefix=_rel_prefix(proofs, docdir),
        )
    optional = app.config.kt_optional_pages
    if optional and "{toctree}" in source[0]:

        def exists(target: str) -> bool:
            base = (
                (srcdir / Path(docname).parent / target)
                if not target.startswith("/")
                else srcdir / target[1:]
            )
            return any(base.with_name(base.name + suffix).is_file() for suffix in app.config.source_suffix)

        source[0], dropped = S.drop_missing_entries(source[0], optional, exists)
        for page in dropped:
            logger.info(
                "kt_docs: %s: optional page %r does not exist (yet); left out of the toctree", docname, page
            )


def on_process_docstring(app: Sphinx, what: str, name: str, obj, options, lines: list[str]) -> None:
    """Unicode-math docstrings as valid reST (kt_sources.sanitize_docstring); the package is not edited."""
    if app.config.kt_sanitize_docstrings:
        lines[:] = S.sanitize_docstring(lines)


class FindFigures(SphinxTransform):
    """Resolve image paths that do not exist relative to their page against the repository root."""

    default_priority = 400

    def apply(self, **kwargs) -> None:
        root = Path(self.config.kt_root).resolve()
        docdir = Path(self.env.doc2path(self.env.docname)).parent
        for node in self.document.findall(nodes.image):
            uri = node.get("uri", "")
            if not uri or "://" in uri or uri.startswith("data:") or "*" in uri:
                continue
            here = Path(self.env.srcdir) / uri.lstrip("/") if uri.startswith("/") else docdir / uri
            if here.is_file():
                continue
            rel = uri.lstrip("/")
            while rel.startswith("../"):
                rel = rel[3:]
            candidate = root / rel
            if candidate.is_file():
                node["uri"] = os.path.relpath(candidate, docdir).replace(os.sep, "/")


def setup(app: Sphinx) -> dict:
    app.add_config_value("kt_root", str(Path(__file__).resolve().parents[2]), "env")
    app.add_config_value("kt_api_package", "kerneltheory", "env")
    app.add_config_value("kt_api_exclude", [], "env")
    app.add_config_value("kt_optional_pages", [], "env")
    # -D kt_sanitize_docstrings=0 shows which docstrings need the rewrite (as warnings)
    app.add_config_value("kt_sanitize_docstrings", True, "env", types=(bool, int))
    app.connect("builder-inited", generate_sources)
    app.connect("source-read", on_source_read)
    app.connect("autodoc-process-docstring", on_process_docstring)
    app.add_transform(FindFigures)
    # A change to these helpers changes how every page reads: make Sphinx re-read everything then.
    code = b"".join((Path(__file__).parent / name).read_bytes() for name in ("kt_docs.py", "kt_sources.py"))
    return {
        "version": "1",
        "env_version": zlib.crc32(code),
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
