"""The scripts under experiments/ that the docs name take their arguments through argparse, so ``--help`` prints
their usage instead of being read as an output path or starting a long run (a review found one writing a file
named ``--help``)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "experiments").rglob("*.py") if "__main__" in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_scripts_parse_their_arguments_with_argparse(script):
    source = ast.unparse(ast.parse(script.read_text(encoding="utf-8")))
    assert "ArgumentParser" in source and "parse_args" in source, script
    assert "sys.argv[" not in source, script


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_help_prints_usage_and_writes_nothing(script, tmp_path):
    out = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "usage:" in out.stdout, out.stderr
    assert not any(tmp_path.iterdir())
