"""Traceability both ways: every claim in the registry names an existing proof; every proof names code that
exists and test ids that pytest collects."""

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kerneltheory.estimators as E

ROOT = Path(__file__).resolve().parents[1]
PROOFS = sorted(p for p in (ROOT / "proofs").glob("*.md") if p.name != "README.md")


def _field(text: str, name: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.startswith(f"{name}:")]
    assert len(lines) == 1, f"expected exactly one '{name}:' line"
    return [item.strip() for item in lines[0][len(name) + 1 :].split(",") if item.strip()]


def _resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def test_every_claim_names_an_existing_proof():
    missing = set()
    for name in E.list():
        for claim, path in E.get(name, 4, 8).claims.proofs.items():
            if not (ROOT / path).is_file():
                missing.add((name, claim, path))
    assert not missing, sorted(missing)


def test_every_law_and_component_proof_exists():
    from kerneltheory.features import COMPONENTS
    from kerneltheory.spectral import LAWS

    paths = {law.proof for law in LAWS.values() if law.proof}
    paths |= {p for comp in COMPONENTS.values() for p in comp.proofs.values()}
    assert all((ROOT / p).is_file() for p in paths), sorted(p for p in paths if not (ROOT / p).is_file())


@pytest.mark.parametrize("proof", PROOFS, ids=[p.stem for p in PROOFS])
def test_proof_names_existing_code(proof):
    code = _field(proof.read_text(encoding="utf-8"), "Code")
    assert code
    for dotted in code:
        _resolve(dotted)


def _named_test_ids() -> set[str]:
    ids = {tid for p in PROOFS for tid in _field(p.read_text(encoding="utf-8"), "Verified by")}
    files = sorted({tid.split("::")[0] for tid in ids})
    assert all((ROOT / f).is_file() for f in files), files
    return ids


def _defined_tests(path: Path) -> set[str]:
    """The ids pytest's default rules collect from ``path``, read from its syntax tree: module-level functions
    named ``test*`` and ``test*`` methods of module-level classes named ``Test*``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    funcs = (ast.FunctionDef, ast.AsyncFunctionDef)
    out = {n.name for n in tree.body if isinstance(n, funcs) and n.name.startswith("test")}
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef) and cls.name.startswith("Test"):
            out |= {f"{cls.name}::{n.name}" for n in cls.body if isinstance(n, funcs) and n.name.startswith("test")}
    return out


def test_proofs_name_tests_that_are_defined():
    """Every test id a proof names is a test function by pytest's collection rules (fast; the collection itself
    is checked by the slow test below, and a file that fails to collect fails the whole suite)."""
    ids = _named_test_ids()
    defined = {f: _defined_tests(ROOT / f) for f in {tid.split("::")[0] for tid in ids}}
    missing = sorted(t for t in ids if t.split("::", 1)[1] not in defined[t.split("::")[0]])
    assert not missing, missing


def test_the_definition_check_rejects_names_that_are_not_tests(tmp_path):
    f = tmp_path / "test_mod.py"
    f.write_text("def test_a():\n    pass\n\ndef helper():\n    def test_inner():\n        pass\n\n"
                 "class TestC:\n    def test_m(self):\n        pass\n\nclass Other:\n    def test_n(self):\n"
                 "        pass\n", encoding="utf-8")
    assert _defined_tests(f) == {"test_a", "TestC::test_m"}


@pytest.mark.slow
def test_proofs_name_tests_that_pytest_collects():
    ids = _named_test_ids()
    files = sorted({tid.split("::")[0] for tid in ids})
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "", "-p", "no:cacheprovider", *files],
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout
    collected = set(out.split())
    # a test id may name a parametrised test by its base name
    bases = {re.sub(r"\[.*\]$", "", c) for c in collected}
    missing = sorted(t for t in ids if t not in collected and t not in bases)
    assert not missing, missing


def test_proofs_index_lists_every_proof():
    index = (ROOT / "proofs" / "README.md").read_text(encoding="utf-8")
    assert all(f"({p.name})" in index for p in PROOFS)
