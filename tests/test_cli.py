"""The command line: report (registry + claim matrix, atomic and resumable) and audit (exit status)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kerneltheory.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "user_feature_maps.py"


def test_report_writes_markdown_and_json_and_resumes(cli_report, tmp_path, capsys):
    status, first = cli_report  # main(["report", "--out", first, "--only", the three names, "--quiet"])
    assert status == 0
    out = tmp_path / "rep"  # a copy (file times kept): the second run below resumes from the first run's files
    shutil.copytree(first, out)
    args = ["report", "--out", str(out), "--only", "positive/gaussian", "trig/sorf", "elu", "--quiet"]
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "## Claim matrix" in text and "## Registry" in text
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert {e["estimator"] for e in data["matrix"]} == {"positive/gaussian", "trig/sorf", "elu"}
    sorf = next(e for e in data["matrix"] if e["estimator"] == "trig/sorf")
    assert {v["claim"]: v["verdict"] for v in sorf["verdicts"]}["positive"] == "refuted"
    assert data["summary"]["failed_estimators"] == []
    # a second run reuses the cached per-estimator results (resume) and gives the same report
    cached = out / "matrix" / "positive__gaussian.quick.seed-0.alpha-1e-06.json"
    before = cached.stat().st_mtime_ns
    assert main(args) == 0
    assert cached.stat().st_mtime_ns == before
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["matrix"] == data["matrix"]
    capsys.readouterr()


def test_report_registry_only(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path), "--registry-only", "--quiet"]) == 0
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert data["matrix"] is None and len(data["registry"]) >= 50
    assert "positive/orthogonal" in capsys.readouterr().out


@pytest.mark.parametrize("factory, status", [("good_prf", 0), ("broken_prf", 1)])
def test_audit_exit_status_on_documented_examples(factory, status, capsys):
    """The README's two audit commands, in-process: the status is what ``main`` returns, and
    ``python -m kerneltheory`` exits with it (test_python_dash_m_kerneltheory_is_the_command runs the process)."""
    args = ["audit", f"{EXAMPLE}:{factory}", "--kernel", "softmax", "--dim", "8", "--claims", "unbiased", "positive",
            "finite"]
    assert main(args) == status
    assert ("PASSED" if status == 0 else "FAILED") in capsys.readouterr().out


def test_audit_reports_bad_arguments(capsys):
    """A command or a map that fails to run exits 2 with a one-line message, no traceback unless asked."""
    assert main(["audit", "no_such_module:x", "--kernel", "softmax", "--dim", "8", "--claims", "finite"]) == 2
    err = capsys.readouterr().err
    assert "cannot import" in err and "Traceback" not in err
    assert main(["audit", f"{EXAMPLE}:good_prf", "--kernel", "laplace", "--dim", "8", "--claims", "finite"]) == 2
    assert "kernel must be one of" in capsys.readouterr().err
    assert main(["audit", f"{EXAMPLE}:good_prf", "--dim", "8"]) == 2  # a feature-map audit needs claims
    capsys.readouterr()
    assert main(["audit", f"{EXAMPLE}:good_prf", "--kernel", "softmax", "--dim", "5", "--claims", "finite",
                 "--traceback"]) == 2  # the map is written for d = 8: it fails to run at d = 5
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError" in err


def test_library_errors_name_the_command_line_option(tmp_path, capsys):
    """A library message naming a Python argument (``dim must be >= 1``) names the option on the command line."""
    assert main(["report", "--dim", "-3", "--registry-only", "--out", str(tmp_path)]) == 2
    assert "error: --dim must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["variance", "--draws", "-5", "--out", str(tmp_path)])
    assert exited.value.code == 2 and "error: --draws must be" in capsys.readouterr().err


ADAPTERS = ROOT / "examples" / "audit_adapters.py"


def test_audit_sampler_and_attention_exit_statuses(capsys, one_thread):
    """Sampler and attention audits in-process, on the adapters of docs/auditing.md (small budgets)."""
    sampler = ["--global-rng", "--sampler", "orthogonal", "--draws", "256"]
    assert main(["audit", f"{ADAPTERS}:orf_frequencies", *sampler]) == 0
    assert main(["audit", f"{ADAPTERS}:unfolded_frequencies", *sampler]) == 1
    assert "sign balance of every coordinate" in capsys.readouterr().out
    assert main(["audit", f"{ADAPTERS}:orf_frequencies", "--sampler", "orthogonal", "--draws", "256"]) == 2
    err = capsys.readouterr().err  # without --global-rng: a zero-argument factory, returning no sample(generator)
    assert "once as a factory, but it returned Tensor: expected sample(generator)" in err and "--global-rng" in err
    exact = ["--attention", "--dim", "8", "--checks", "padding", "causality", "finite", "--long-length", "64"]
    assert main(["audit", f"{ADAPTERS}:causal_attention", *exact, "--causal"]) == 0
    assert "causality" in capsys.readouterr().out
    assert main(["audit", f"{ADAPTERS}:masked_attention", *exact, "--causal"]) == 1  # it is not causal


def test_audit_user_kernel_and_proportional_claim(capsys, one_thread):
    kernel = f"{ADAPTERS}:attention_kernel"
    assert main(["audit", f"{EXAMPLE}:good_prf", "--kernel", kernel, "--dim", "8", "--claims", "finite"]) == 0
    assert main(["audit", f"{EXAMPLE}:good_prf", "--kernel", "softmax", "--dim", "8", "--claims", "proportional",
                 "finite"]) == 0
    assert main(["audit", f"{EXAMPLE}:good_prf", "--kernel", "softmax", "--dim", "8", "--claims", "unbiased",
                 "--no-accept-early"]) == 0
    out = capsys.readouterr().out
    assert "proportional[directions]" in out and "finite" in out
    assert main(["audit", f"{EXAMPLE}:good_prf", "--kernel", f"{ADAPTERS}:reference", "--dim", "8", "--claims",
                 "finite"]) == 2  # not a callable


@pytest.mark.parametrize("extra, message", [
    (["--kernel", "softmax", "--claims", "finite", "--dim", "0"], "--dim must be an integer >= 1, got 0"),
    (["--kernel", "softmax", "--claims", "finite", "--dim", "8", "--sigma", "2"], "does not apply to --kernel softmax"),
    (["--kernel", "gaussian", "--claims", "finite", "--dim", "8", "--sigma", "-1"], "--sigma must be a finite"),
    (["--attention", "--dim", "8", "--sigma", "0.5"], "does not apply to --kernel softmax"),
    (["--sampler", "gaussian", "--draws", "0"], "--draws must be an integer >= 1, got 0"),
    (["--sampler", "gaussian", "--no-accept-early"], "--no-accept-early applies to a feature-map audit only"),
])
def test_audit_names_the_bad_option(extra, message, capsys):
    """A bad option of audit: exit status 2, one line naming the option, not the Python parameter it feeds;
    --sigma is refused where it would be ignored."""
    assert main(["audit", f"{EXAMPLE}:good_prf", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kerneltheory audit: error: ") and message in err and len(err.splitlines()) == 1, err


def test_report_threads_are_set_for_the_run_and_restored(tmp_path, capsys, monkeypatch):
    import torch

    import kerneltheory.report as report

    seen = []
    real = report.run_report
    monkeypatch.setattr(report, "run_report", lambda *a, **k: (seen.append(torch.get_num_threads()), real(*a, **k))[1])
    before = torch.get_num_threads()
    assert main(["report", "--out", str(tmp_path), "--registry-only", "--quiet", "--threads", "1"]) == 0
    assert seen == [1] and torch.get_num_threads() == before
    assert main(["report", "--out", str(tmp_path), "--registry-only", "--quiet", "--threads", "0"]) == 2
    assert "--threads must be an integer in [1, " in capsys.readouterr().err
    assert torch.get_num_threads() == before


def test_python_dash_m_kerneltheory_is_the_command(tmp_path):
    """``python -m kerneltheory`` runs the CLI (kerneltheory/__main__.py), for a scripts folder not on PATH, and
    exits with its status: 0, and non-zero for a command that fails (a bad option, refused before torch is
    imported, so the process stays cheap)."""
    proc = subprocess.run([sys.executable, "-m", "kerneltheory", "--version"], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("kerneltheory "), proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, "-m", "kerneltheory", "report", "--registry-only", "--threads", "0",
                           "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 2 and "--threads must be an integer in [1, " in proc.stderr, proc.stderr


def _bad_config(tmp_path: Path) -> Path:
    """The shipped variance_vs_dim figure with a misspelt estimator argument in its first series."""
    from kerneltheory.experiments import default_configs, to_toml

    text = to_toml(next(c for c in default_configs() if c.name == "variance_vs_dim"))
    assert "weighted = false" in text
    path = tmp_path / "typo.toml"
    path.write_text(text.replace("weighted = false", "weigthed = false", 1), encoding="utf-8")
    return path


@pytest.mark.parametrize("argv, message", [
    (["report", "--only"], "--only: expected at least one argument"),  # not a silent run of everything
    (["report", "--registry-only", "--device", "tpu"], "--device must be cpu or cuda[:i], got 'tpu'"),
    (["report", "--registry-only", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["variance", "--only", "variance_vs_dim", "--shard-blocks", "0"], "--shard-blocks must be an integer >= 1"),
    (["variance", "--only", "variance_vs_dim", "--checkpoint-seconds", "-1"], "--checkpoint-seconds must be"),
    (["variance", "--config", "TYPO", "--quiet"], "'weigthed' is not an argument of the gaussian law"),
    (["variance", "--only", "variance_vs_dim", "--out", "FILE/sub"], "cannot create or write the directory"),
    (["turing", "--scale", "smoke", "--out", "FILE/sub"], "cannot create or write the directory"),
    (["bench", "attention", "--scale", "smoke", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["train", "--scale", "smoke", "--device", "tpu"], "--device must be cpu or cuda[:i], got 'tpu'"),
    (["sparsity", "--parts"], "--parts: expected at least one argument"),
])
def test_user_errors_exit_2_with_a_message_naming_the_problem(argv, message, tmp_path, capsys, one_thread):
    """A wrong option value, a config file with a typo or an --out that cannot be a folder: exit status 2 and
    a line naming it, no traceback."""
    afile = tmp_path / "afile"
    afile.write_text("", encoding="utf-8")
    argv = [str(afile) + a[4:] if a.startswith("FILE") else str(_bad_config(tmp_path)) if a == "TYPO" else a
            for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exc:
        status = main(argv)
        raise SystemExit(status)  # the report returns its status instead of exiting
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    last = err.strip().splitlines()[-1]  # argparse's own errors come after the usage lines
    assert "Traceback" not in err and last.startswith(f"kerneltheory {argv[0]}: error: ") and message in last, err


def test_module_paths_and_output_folders_get_errors_naming_them(tmp_path, capsys, monkeypatch):
    """A new user's trials: a MODULE:NAME that is a text file gave "AttributeError: 'NoneType' object has no attribute
    'loader'", a directory "no such file", an error raised at import only its own message; `variance --draws -5`
    left an empty output folder behind, and `variance --out` under /proc raised a bare FileNotFoundError."""
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    (tmp_path / "boom.py").write_text("raise RuntimeError('boom at import')\n", encoding="utf-8")
    audit = ["--kernel", "softmax", "--dim", "8", "--claims", "finite"]
    for target, message in ((f"{tmp_path / 'notes.txt'}:f", "is not a Python file (.py)"),
                            (f"{tmp_path}:f", "is a directory"),
                            (f"{tmp_path / 'boom.py'}:f", "boom.py failed: RuntimeError: boom at import"),
                            (":f", "expected MODULE:NAME")):
        assert main(["audit", target, *audit]) == 2
        assert message in capsys.readouterr().err, target
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["variance", "--draws", "-5", "--quiet"])
    assert exit_.value.code == 2 and "--draws must be an integer >= 2" in capsys.readouterr().err
    assert not (tmp_path / "kerneltheory-results").exists()  # nothing made before the arguments are checked
    blocked = tmp_path / "notes.txt" / "out"  # under a file: no folder can be made there
    with pytest.raises(SystemExit) as exit_:
        main(["variance", "--out", str(blocked), "--quiet"])
    assert exit_.value.code == 2 and f"--out {blocked}" in capsys.readouterr().err


def test_the_commands_warnings_are_one_line(tmp_path):
    """A new user's finding: a stale lock taken over printed Python's warning format (file, line number, the source
    line), with --quiet too. The command prints the package's own warnings as one line naming the command."""
    from kerneltheory.experiments import study

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(proc.stdout)
    (tmp_path / study.LOCK_NAME).write_text(f"{dead}\n")
    run = subprocess.run([sys.executable, "-m", "kerneltheory", "report", "--registry-only", "--out", str(tmp_path),
                          "--quiet"], capture_output=True, text=True)  # a process of its own: pytest records warnings
    err = run.stderr
    assert run.returncode == 0, err
    assert f"kerneltheory report: warning: taking over the lock {tmp_path / study.LOCK_NAME} of process {dead}" in err
    assert "UserWarning" not in err and "OutputLock" not in err, err


def test_an_interrupted_experiment_says_how_to_resume(monkeypatch, capsys):
    """Ctrl-C in an experiment command: exit status 130 and a line saying a rerun resumes, no traceback."""
    import kerneltheory.commands.turing as turing

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(turing, "run", interrupted)
    with pytest.raises(SystemExit) as exc:
        main(["turing", "--scale", "smoke"])
    err = capsys.readouterr().err
    assert exc.value.code == 130 and "run it again to resume" in err and "Traceback" not in err


def test_audit_refusal_names_the_first_undecided_check(tmp_path, capsys, one_thread):
    """A map whose query side has a fair-coin sign per draw has E φ(x)ᵀφ(y) = 0·k: proportionality holds with
    c = 0, and the row "c > 0" cannot tell c from 0, so the audit is refused (exit 3, apart from 2, the status of a
    command or code that could not run) and says which check could not decide."""
    module = tmp_path / "coin_sign.py"
    module.write_text(
        "import math, torch\n"
        "def coin_prf(g, d=8, m=64):\n"
        "    w = torch.randn(m, d, generator=g, dtype=torch.float64)\n"
        "    s = 1.0 if torch.rand((), generator=g) < 0.5 else -1.0\n"
        "    phi = lambda x: torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(m)\n"
        "    return (lambda x: s * phi(x)), phi\n",  # the coin on one side only: on both it would cancel
        encoding="utf-8",
    )
    code = main(["audit", f"{module}:coin_prf", "--kernel", "softmax", "--dim", "8", "--claims", "proportional"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "refused: no check failed, but some could not decide" in err and "proportional[c > 0]" in err


@pytest.mark.parametrize("address", ["bogus", "local:0", "local:two", "local:"])
def test_a_bad_scheduler_is_refused_before_any_work(tmp_path, capsys, address):
    """Also when the sweeps it would run are skipped (--only)."""
    assert main(["report", "--out", str(tmp_path / "r"), "--only", "elu", "--scheduler", address, "--quiet"]) == 2
    assert "scheduler must be local:N" in capsys.readouterr().err
    assert not (tmp_path / "r" / "matrix").exists()
