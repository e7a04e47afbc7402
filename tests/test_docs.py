"""The documentation: every proof is reachable from the table of contents and renders as a numbered theorem,
the docstring rewrites do what docs/contributing.md says, the numbers quoted in proofs/verification.md are
right, every ``kerneltheory`` command the pages show parses, and (``-m slow``) the whole site builds without a
warning.

The fast tests need no Sphinx: they use the pure helpers of docs/_ext/kt_sources.py. The build test needs the
``docs`` extra (``pip install -e '.[docs]'``) and is skipped without it.
"""

import ast
import importlib.util
import math
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PROOFS = ROOT / "proofs"
BUILD_COMMAND = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS)]


def _load_sources():
    spec = importlib.util.spec_from_file_location("kt_sources", DOCS / "_ext" / "kt_sources.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


S = _load_sources()


def _conf_value(name: str):
    tree = ast.parse((DOCS / "conf.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return ast.literal_eval(node.value)
    raise KeyError(name)


# ---------------------------------------------------------------------------------------------------
# Reachability and rendering (fast, no Sphinx)
# ---------------------------------------------------------------------------------------------------


def test_every_proof_is_reachable_from_the_toctree():
    """index.md → proofs/index (generated from proofs/README.md) → every proofs/*.md."""
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    assert "proofs/index" in S.toctree_entries(index)
    stems = S.proof_stems(PROOFS)
    assert stems, "no proofs found"
    order = S.proof_order(PROOFS)
    assert sorted(order) == stems
    landing = S.render_proofs_index((PROOFS / "README.md").read_text(encoding="utf-8"), order)
    assert S.toctree_entries(landing) == order


def test_committed_pages_are_in_the_toctree():
    """Every hand-written page is listed (or is the root); the experiment pages others write are expected."""
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    entries = set(S.toctree_entries(index))
    optional = set(_conf_value("kt_optional_pages"))
    assert optional == {"variance", "sparsity", "kernel_learning", "benchmarks"}
    assert optional <= entries
    pages = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert pages <= entries, sorted(pages - entries)


@pytest.mark.parametrize("stem", S.proof_stems(PROOFS))
def test_every_proof_renders_as_a_numbered_theorem(stem):
    rendered = S.render_proof(
        (PROOFS / f"{stem}.md").read_text(encoding="utf-8"), stem, S.proof_stems(PROOFS)
    )
    assert rendered.startswith(f"(proof-{stem})=\n")
    assert len(re.findall(r"^`{4,}\{prf:(theorem|lemma|proposition|corollary)\} ", rendered, re.M)) == 1
    assert f":label: thm-{stem}" in rendered
    assert re.search(r"^Code\n: \{py:obj\}`kerneltheory\.", rendered, re.M)
    assert re.search(r"^Verified by\n: `tests/", rendered, re.M)


def test_proof_mentions_become_links_only_outside_code_and_math():
    line = "see proofs/one_rule.md, `proofs/one_rule.md`, $proofs/one_rule.md$ and proofs/missing.md"
    out = S.link_proof_mentions(line, ["one_rule"])
    assert out.startswith("see [proofs/one_rule.md](one_rule.md), `proofs/one_rule.md`, $proofs/one_rule.md$")
    assert out.endswith("and proofs/missing.md")
    page = "[x](../proofs/one_rule.md#proof) `[y](../proofs/one_rule.md)`\n```\nproofs/one_rule.md\n```\n"
    assert S.rewrite_page(page, ["one_rule"], prefix="proofs/", repo_prefix="../proofs/") == (
        "[x](proofs/one_rule.md#proof) `[y](../proofs/one_rule.md)`\n```\nproofs/one_rule.md\n```\n"
    )


def test_missing_optional_pages_are_dropped_from_toctrees():
    text = "```{toctree}\n:maxdepth: 1\n\nvariance\nsparsity\narchitecture\n```\n"
    out, dropped = S.drop_missing_entries(text, ["variance", "sparsity"], lambda page: page == "sparsity")
    assert dropped == ["variance"]
    assert S.toctree_entries(out) == ["sparsity", "architecture"]


def test_docstring_rewrites():
    lines = [
        "Bounded: |φ(x)ᵀφ(y)| ≤ B, literal ``|a|`` and :math:`|b|` kept.",
        "",
        ".. math::",
        "    |x| = 1",
        "",
        "With n = n_A + n_B:",
        "",
        "    M₄ = a",
        "         + b",
        "",
        ">>> abs(-1) | 0",
        "1",
    ]
    out = S.sanitize_docstring(lines)
    assert out[0] == r"Bounded: \|φ(x)ᵀφ(y)\| ≤ B, literal ``|a|`` and :math:`|b|` kept."
    assert out[3] == "    |x| = 1"  # math untouched
    assert out[5] == "With n = n_A + n_B::"  # the ragged formula block became literal
    assert out[7:9] == ["    M₄ = a", "         + b"]
    assert out[-2] == ">>> abs(-1) | 0"  # doctest untouched
    # a block quote directly under a paragraph (no blank line) gets the blank line a literal block needs
    assert S.sanitize_docstring(["Sum:", "    a + b"]) == ["Sum::", "", "    a + b"]
    # a list nested in a list item without a blank line gets one; "(a)" items are list items, not formulas
    nested = ["* item, and", "  - nested", "    continued", "* next"]
    assert S.sanitize_docstring(nested) == ["* item, and", "", "  - nested", "    continued", "* next"]
    enumerated = ["(a) first", "    continued", "(b) second"]
    assert S.sanitize_docstring(enumerated) == enumerated


def test_docs_extra_pins_ranges_only():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    docs = extras["docs"]
    assert {re.split(r"[<>=!~ ]", r)[0] for r in docs} >= {"sphinx", "myst-parser", "sphinx-proof"}
    assert not any("==" in r for r in docs), docs


# ---------------------------------------------------------------------------------------------------
# Numbers quoted in proofs/verification.md
# ---------------------------------------------------------------------------------------------------


def test_verification_gamma_example():
    """The exact-variance z-test on Gamma(k) draws at the guard's limit (n = 4096): the sum of n iid Gamma(k, 1)
    is Gamma(nk, 1), so its two-sided rejection probability is exact."""
    n, k = 4096, 0.154
    assert math.sqrt((3 + 6 / k - 1) / n) == pytest.approx(0.100, abs=5e-4)  # the kurtosis guard's limit
    assert (2 / math.sqrt(k)) / math.sqrt(n) == pytest.approx(0.080, abs=5e-4)  # skewness term
    a = n * k

    def exact(z):
        return stats.gamma.sf(a + z * math.sqrt(a), a) + stats.gamma.cdf(a - z * math.sqrt(a), a)

    nominal = 2 * stats.norm.sf(5.6)
    assert exact(5.6) == pytest.approx(7.93e-8, rel=5e-3)
    assert nominal == pytest.approx(2.14e-8, rel=5e-3)
    assert exact(5.6) / nominal == pytest.approx(3.7, abs=0.05)
    assert stats.gamma.sf(a + 5.6 * math.sqrt(a), a) / stats.norm.sf(5.6) == pytest.approx(7.3, abs=0.1)
    assert exact(2.0) / (2 * stats.norm.sf(2.0)) == pytest.approx(0.998, abs=1e-3)
    # the per-pair threshold of a quick check_feature_map report: α = 1e-6 over 7 checks and 8 pairs
    assert stats.norm.isf(1e-6 / 7 / 8 / 2) == pytest.approx(5.6, abs=0.05)


# ---------------------------------------------------------------------------------------------------
# The build itself
# ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    """The documented command (python -m sphinx -E -W --keep-going -b html docs docs/_build/html) into a temporary
    folder, from a fresh doctree cache; then every proof page must be reachable from the root document."""
    for name in ("sphinx", "myst_parser", "sphinx_proof"):
        pytest.importorskip(name, reason="needs the docs extra: pip install -e '.[docs]'")
    out, doctrees = tmp_path / "html", tmp_path / "doctrees"
    proc = subprocess.run(
        [*BUILD_COMMAND, str(out), "-d", str(doctrees)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    with open(doctrees / "environment.pickle", "rb") as fh:
        env = pickle.load(fh)
    reachable, todo = set(), ["index"]
    while todo:
        doc = todo.pop()
        if doc not in reachable:
            reachable.add(doc)
            todo.extend(env.toctree_includes.get(doc, []))
    missing = sorted(f"proofs/{s}" for s in S.proof_stems(PROOFS) if f"proofs/{s}" not in reachable)
    assert not missing, missing
    from test_docs_offline import remote_references  # the mathematics is rendered offline

    assert remote_references(out) == []
    html = (out / "proofs" / "one_rule.html").read_text(encoding="utf-8")
    assert "Theorem 1" in html and "api/kerneltheory.spectral.base.html" in html


# ---------------------------------------------------------------------------------------------------
# The commands a reader types
# ---------------------------------------------------------------------------------------------------


def _shell_commands() -> list[tuple[str, str]]:
    """Every ``kerneltheory ...`` line of a code block, and every inline ``kerneltheory ...`` span that is a
    whole command (options after the subcommand; no ``...``, ``|`` or upper-case placeholder such as DIR), of
    README.md and docs/*.md: (file, command)."""
    found = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
            for line in block.splitlines():
                line = line.split("#", 1)[0].strip()
                if line.startswith("kerneltheory ") and not line.startswith("kerneltheory 0."):
                    found.append((page.name, line))
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        for span in re.findall(r"`(kerneltheory [a-z][^`]*)`", text):
            if len(span.split()) > 2 and not re.search(r"\.\.\.|\||\b[A-Z]{2,}\b|--help", span):
                found.append((page.name, span))
    return found


def test_the_shell_commands_of_the_docs_parse():
    """Each documented command names options the CLI has, with values it accepts (parse only, nothing runs);
    the files it names exist in the checkout."""
    import shlex

    from kerneltheory.cli import build_parser

    commands = _shell_commands()
    assert len(commands) >= 20 and {p for p, _ in commands} >= {"README.md", "auditing.md", "variance.md"}
    for page, line in commands:
        argv = shlex.split(line)[1:]
        try:
            args = build_parser(argv[0]).parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{page}: `{line}` does not parse (exit {exc.code})")
        named = [getattr(args, "factory", None) or "", *(getattr(args, "config", None) or [])]
        for target in named:
            path = target.split(":")[0]
            if path.endswith((".py", ".toml")):
                assert (ROOT / path).is_file(), f"{page}: `{line}` names a missing file {path}"


@pytest.mark.parametrize("page", ["README.md", "docs/index.md", "docs/kernel_learning.md", "docs/attention_theory.md"])
def test_the_python_snippets_of_the_pages_run(page, one_thread, capsys):
    """What a reader copies runs as written: each Python block of the page, in order, in one namespace
    (docs/auditing.md has its own test, tests/test_auditing_docs.py)."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(encoding="utf-8"), flags=re.S)
    assert blocks
    namespace: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{page} snippet {i}", "exec"), namespace)  # noqa: S102
    capsys.readouterr()
