"""Sphinx configuration of the kerneltheory documentation.

Build (from the repository root, after ``pip install -e '.[docs]'``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

How proofs, the API reference and figures get in: docs/contributing.md and docs/_ext/kt_docs.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))  # the package itself, also when it is not installed

import kerneltheory  # noqa: E402

project = "kerneltheory"
author = "the kerneltheory authors"
copyright = "the kerneltheory authors"  # noqa: A001
version = release = kerneltheory.__version__

extensions = [
    "myst_parser",
    "sphinx_proof",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 served from _static/mathjax: no CDN when building or reading
    "sphinx.ext.viewcode",
    "kt_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "_ext"]
# Pages other people write. They are listed in index.md's toctree; kt_docs drops an entry whose page does
# not exist yet (with an info message) instead of failing the build.
kt_optional_pages = ["variance", "sparsity", "kernel_learning", "benchmarks"]
kt_root = str(ROOT)
kt_api_package = "kerneltheory"
kt_api_exclude: list[str] = []

# -- MyST: Markdown with dollar math -------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_dmath_double_inline = True  # $$...$$ inside a paragraph, as the proofs write it
myst_heading_anchors = 3  # [text](page.md#a-heading) links

# -- sphinx-proof: numbered theorems --------------------------------------------------------------------
numfig = True  # sphinx-proof sets it too; theorems are numbered in toctree order across the whole site
proof_minimal_theme = True
# a statement that opens with **Lemma (or Proposition, Corollary) is typeset as one, numbered with the theorems
prf_realtyp_to_countertyp = {"lemma": "theorem", "proposition": "theorem", "corollary": "theorem"}

# -- autodoc / napoleon: the API reference --------------------------------------------------------------
autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_docstring_signature = True
autodoc_inherit_docstrings = True  # an override without a docstring (Trig.target) shows the base method's
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
napoleon_use_rtype = False
nitpicky = False  # type annotations name torch types that have no target here

# -- HTML ----------------------------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"kerneltheory {release}"
html_theme_options = {
    "description": "the theory of kernelized attention, executable",
    "fixed_sidebar": True,
    "page_width": "1180px",
    "sidebar_width": "250px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
html_static_path: list[str] = []
