"""docs/auditing.md runs as written: its Python snippets, executed in order in one namespace, and its shell
lines, each with the exit status its comment states (``-m slow``: the snippets run full checks). The fast test
checks that every snippet compiles and every object the shell lines name exists.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kerneltheory.cli import load_object

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "auditing.md").read_text(encoding="utf-8")
PYTHON = re.findall(r"```python\n(.*?)```", PAGE, flags=re.S)
SHELL = [line for block in re.findall(r"```bash\n(.*?)```", PAGE, flags=re.S) for line in block.splitlines()
         if line.startswith("kerneltheory audit")]


def _command(line: str) -> tuple[list[str], int]:
    command, _, status = line.partition("# exit ")
    return [sys.executable, "-m", "kerneltheory.cli", *command.split()[1:]], int(status)


def test_snippets_compile_and_shell_targets_exist(monkeypatch):
    assert len(PYTHON) >= 6 and len(SHELL) >= 8
    for i, code in enumerate(PYTHON):
        compile(code, f"auditing.md snippet {i}", "exec")
    monkeypatch.chdir(ROOT)
    for line in SHELL:
        args, status = _command(line)
        target = args[4]
        if status == 2:
            with pytest.raises(ValueError, match="no attribute"):
                load_object(target)
        else:
            assert load_object(target) is not None
        kernel = args[args.index("--kernel") + 1] if "--kernel" in args else ""
        if ":" in kernel:
            assert callable(load_object(kernel))


@pytest.mark.slow
def test_python_snippets_run(monkeypatch, one_thread):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", list(sys.path))
    namespace: dict = {}
    for i, code in enumerate(PYTHON):
        exec(compile(code, f"auditing.md snippet {i}", "exec"), namespace)  # noqa: S102


@pytest.mark.slow
@pytest.mark.parametrize("line", SHELL, ids=[line.split()[2].split(":")[1] for line in SHELL])
def test_shell_lines_exit_as_documented(line):
    args, status = _command(line)
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == status, proc.stdout + proc.stderr
