"""The notebooks (notebooks/*.py, jupytext py:percent) execute end to end in smoke mode (KT_SMOKE=1).

By default each notebook's cells run in order in the test process (the py:percent file is the notebook's code,
so this executes the same cells without starting a kernel and importing torch again: a failing cell fails the
test with its traceback). The slow tier (``-m slow``) converts each with jupytext and executes it by nbclient in a
real Jupyter kernel (ipykernel's ``python3``); without a kernel it runs the file as a plain script.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
TIMEOUT = 300

jupytext = pytest.importorskip("jupytext")


def _kernel_available() -> bool:
    try:
        import nbclient  # noqa: F401
        from jupyter_client.kernelspec import KernelSpecManager

        return "python3" in KernelSpecManager().find_kernel_specs()
    except Exception:  # noqa: BLE001 - any failure means: no usable kernel
        return False


def test_every_topic_has_a_notebook():
    names = {p.stem for p in NOTEBOOKS}
    assert {"01_unbiasedness", "02_variance_formulas", "03_turing_construction", "04_sparsity"} <= names


def _read_notebook(path: Path):
    nb = jupytext.read(path)
    assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "percent"
    kinds = [c.cell_type for c in nb.cells]
    assert kinds.count("markdown") >= 2 and kinds.count("code") >= 3
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_py_percent_and_its_cells_run_in_smoke_mode(path, monkeypatch):
    _read_notebook(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("KT_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(path.parent)
    monkeypatch.setattr(plt, "show", lambda *a, **k: None)
    before = set(sys.modules)
    try:
        runpy.run_path(os.fspath(path), run_name="__main__")
    finally:
        plt.close("all")
        for name in set(sys.modules) - before:  # helper modules a notebook imports from its folder
            if getattr(sys.modules[name], "__file__", "") and str(path.parent) in str(sys.modules[name].__file__):
                del sys.modules[name]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_py_percent_and_runs_in_smoke_mode(path, monkeypatch, tmp_path):
    nb = _read_notebook(path)
    monkeypatch.setenv("KT_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if _kernel_available():
        from nbclient import NotebookClient

        client = NotebookClient(
            nb, timeout=TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        )
        client.execute()
        errors = [
            o
            for c in nb.cells
            if c.cell_type == "code"
            for o in c.get("outputs", [])
            if o.get("output_type") == "error"
        ]
        assert not errors
    else:  # pragma: no cover - environments without ipykernel
        proc = subprocess.run(
            [sys.executable, str(path)], cwd=path.parent, capture_output=True, text=True, timeout=TIMEOUT
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
