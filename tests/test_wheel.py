"""The installed package, not the source checkout: build the wheel, install it (without its dependencies, which
the test environment has) into a fresh virtual environment, and run every subcommand at its smoke scale from
a folder outside the repository. Nothing may need ``experiments/`` or any other file of the checkout.

About a minute of CPU (a torch import per command); marked slow: ``python -m pytest -m slow tests/test_wheel.py``.
"""

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "user_feature_maps.py"

pytestmark = pytest.mark.slow


def _run(cmd, cwd, env, timeout=300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return proc


def _ok(proc) -> str:
    assert proc.returncode == 0, f"{proc.args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(python, kerneltheory, cwd, env)`` of a venv holding the freshly built wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # build from a copy: the build writes build/ and *.egg-info next to the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "kerneltheory", src / "kerneltheory", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
              str(tmp / "dist"), str(src)], tmp, env))
    wheel = next((tmp / "dist").glob("kerneltheory-*.whl"))
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(tmp / "venv")
    bindir = tmp / "venv" / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    _ok(_run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
             tmp, env))
    work = tmp / "work"  # a folder outside the repository: no checkout on sys.path through the cwd
    work.mkdir()
    return python, bindir / "kerneltheory", work, env


def test_the_wheel_is_what_gets_imported(installed):
    python, _, work, env = installed
    where = _ok(_run([str(python), "-c", "import kerneltheory; print(kerneltheory.__file__)"], work, env)).strip()
    assert Path(where).resolve().is_relative_to((python.parent.parent).resolve()), where
    assert not Path(where).resolve().is_relative_to(ROOT.resolve())


def test_every_subcommand_has_help(installed):
    python, kt, work, env = installed
    assert "sparsity" in _ok(_run([str(kt), "--help"], work, env))
    code = (
        "import contextlib, io\nfrom kerneltheory.cli import main\n"
        "for c in ('report', 'audit', 'bench', 'sparsity', 'train', 'turing', 'variance'):\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        try:\n            main([c, '--help'])\n"
        "        except SystemExit as e:\n            assert e.code == 0, c\n"
        "    assert 'usage: kerneltheory ' + c in out.getvalue(), c\n    print(c, 'ok')\n"
    )
    assert _ok(_run([str(python), "-c", code], work, env)).count(" ok") == 7


def test_every_subcommand_runs_at_its_smoke_scale_from_the_wheel(installed, tmp_path):
    from kerneltheory.experiments import FigureConfig, ScaleSpec, Series, to_toml

    python, kt, work, env = installed
    config = FigureConfig(
        name="smoke", title="smoke", x="norm", seed=0,
        fixed={"dim": 4, "num_features": 4, "norm": 0.5, "norm_ratio": 1.0, "angle": 60.0, "pairs": 2},
        scales={"quick": ScaleSpec((0.5,), 64, 32)}, series=(Series("trig/gaussian", "trig", "a"),),
    )
    (work / "smoke.toml").write_text(to_toml(config), encoding="utf-8")
    kt = str(kt)
    _ok(_run([kt, "variance", "--config", "smoke.toml", "--quiet"], work, env))
    assert (work / "kerneltheory-results" / "variance" / "smoke.png").is_file()
    _ok(_run([kt, "turing", "--scale", "smoke", "--quiet"], work, env))
    assert (work / "kerneltheory-results" / "turing" / "smoke" / "summary.md").is_file()
    _ok(_run([kt, "sparsity", "--scale", "smoke", "--quiet"], work, env))  # two spawned training processes
    assert (work / "kerneltheory-results" / "sparsity" / "smoke" / "retrieval.parquet").is_file()
    _ok(_run([kt, "train", "--scale", "smoke", "--kernels", "softmax", "--tasks", "retrieval", "--workers", "1",
              "--quiet"], work, env))
    assert (work / "kerneltheory-results" / "kernel_learning" / "smoke" / "results.parquet").is_file()
    _ok(_run([kt, "bench", "fastfood", "--scale", "smoke", "--repeats", "1", "--quiet"], work, env))
    assert (work / "kerneltheory-results" / "bench" / "fastfood.json").is_file()
    _ok(_run([kt, "report", "--only", "elu", "--no-variance", "--quiet", "--out", "report"], work, env))
    assert (work / "report" / "report.html").is_file()
    out = _ok(_run([kt, "audit", f"{EXAMPLE}:good_prf", "--kernel", "softmax", "--dim", "8", "--claims", "finite"],
                   work, env))
    assert "PASSED" in out
    refused = _run([kt, "turing", "--scale", "smoke", "--regenerate"], work, env)
    assert refused.returncode == 2 and "not imported from one" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
