"""The scripts under experiments/ that the docs name take their arguments through argparse, so ``--help`` prints
their usage instead of being read as an output path or starting a long run (a review found one writing a file
named ``--help``)."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
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


def _load_script(name: str, monkeypatch):
    """experiments/<name>.py as a module (registered for the test's duration, so that its functions pickle for a
    process pool)."""
    spec = importlib.util.spec_from_file_location(f"_experiment_{name}", ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def _study_run(job):
    """A stand-in for matrix_false_verdicts.run (no verify_estimator): stamped as the real one. A job named
    "dies|PATH" exits its worker abruptly at seed 2 while the file PATH exists, as a killed or out-of-memory worker
    does (a file, not the environment: a forkserver's workers do not inherit the test's environment); one named
    "raises" raises outside run's own guard."""
    from kerneltheory.report import source_digest

    name, seed = job
    if name.startswith("dies|") and seed == 2 and os.path.exists(name.split("|", 1)[1]):
        os._exit(3)
    if name == "raises" and seed == 1:
        raise RuntimeError("outside run's guard")
    return {"name": name, "seed": seed, "source": source_digest(), "unbiased": "verified", "positive": "n/a",
            "variance": "n/a", "finite": "verified"}


def test_the_false_verdict_study_resumes_and_keeps_what_finished(tmp_path, monkeypatch, capsys):
    """experiments/matrix_false_verdicts.py keeps every finished run: a line cut short is dropped and the file
    rewritten whole, a foreign line kept, runs of this source at the asked seeds are not rerun (a run of another
    source is, and so is one that ended in an error), a worker that raises is recorded with its error, and a worker
    that dies ends the run with status 1 after writing the summary of what finished; the same command then runs only
    what is missing (before, a dead worker ended the run before its summary)."""
    import kerneltheory.estimators as E
    from kerneltheory.report import source_digest

    study = _load_script("matrix_false_verdicts", monkeypatch)
    source = source_digest()
    verdicts = {"unbiased": "verified", "positive": "n/a", "variance": "n/a", "finite": "verified"}
    out = tmp_path / "runs.jsonl"
    out.write_text("\n".join([json.dumps({"name": "a", "seed": 1, "source": source, **verdicts}),
                              json.dumps({"name": "a", "seed": 2, "source": "another source", **verdicts}),
                              json.dumps({"note": "not a run"}), '{"name": "b", "se']) + "\n")
    marker = tmp_path / "die"
    marker.touch()
    dies = f"dies|{marker}"
    monkeypatch.setattr(E, "list", lambda: ["a", "b", "raises", dies])
    monkeypatch.setattr(study, "run", _study_run)
    monkeypatch.setattr(sys, "argv", ["matrix_false_verdicts.py", str(out), "--seeds", "1", "3", "--workers", "1"])
    with pytest.raises(SystemExit) as stop:
        study.main()
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "a worker died" in err and "6 of 7 runs finished and were kept" in err and "resumes" in err, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]  # every line parses: the cut one is gone
    assert {"note": "not a run"} in rows and len(rows) == 3 + 6, rows
    ran = sorted((r["name"], r["seed"]) for r in rows if r.get("source") == source)
    assert ran == sorted([("a", 1), ("a", 2), ("b", 1), ("b", 2), ("raises", 1), ("raises", 2), (dies, 1)]), ran
    assert [r["error"] for r in rows if "error" in r] == ["RuntimeError: outside run's guard"], rows
    summary = json.loads((tmp_path / "runs.jsonl.summary.json").read_text())
    assert summary["runs"] == 6 and summary["verdicts"]["unbiased"] == {"verified": 6}, summary
    assert summary["errors"] == [{"name": "raises", "seed": 1, "error": "RuntimeError: outside run's guard"}]
    marker.unlink()
    study.main()  # the same command: the lost run and the one that ended in an error (which raises again)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    ran = sorted((r["name"], r["seed"]) for r in rows if r.get("source") == source)
    assert ran == sorted([("a", 1), ("a", 2), ("b", 1), ("b", 2), ("raises", 1), ("raises", 1), ("raises", 2),
                          (dies, 1), (dies, 2)]), ran
    assert json.loads((tmp_path / "runs.jsonl.summary.json").read_text())["runs"] == 7
