"""``kerneltheory report`` as a user meets it: the exit status (0 verified, 1 a claimed property FAILED or,
with ``--fail-on refused``, refused, 2 the command could not run), the short summary on stdout, and the
command line's help (plain text, fast: no torch import)."""

import argparse
import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import kerneltheory.estimators as E
from kerneltheory.cli import build_parser, main
from kerneltheory.commands import COMMANDS
from kerneltheory.estimators import RandomFeatureEstimator
from kerneltheory.features.positive import Positive

ROOT = Path(__file__).resolve().parents[1]
matrix = importlib.import_module("kerneltheory.testing.matrix")  # the package exports a function of that name


def _report(tmp_path, *extra):
    return main(["report", "--out", str(tmp_path / "rep"), "--quiet", *extra])


class ScaledPositive(Positive):
    """Positive features times √1.1 on each side: every estimate 10% too large, the target unchanged."""

    def log_features(self, x, w, extra, stats, side):
        logs, signs = super().log_features(x, w, extra, stats, side)
        return logs + 0.5 * math.log(1.1), signs


def scaled(name: str, dim: int, m: int) -> RandomFeatureEstimator:
    law = E.get("positive/gaussian", dim, m).law
    return RandomFeatureEstimator(name, ScaledPositive(), law, dim=dim, num_features=m)


def test_a_planted_failure_exits_1_and_is_summarised(tmp_path, monkeypatch, capsys, one_thread):
    """positive/gaussian with a planted 10% scale error: its unbiasedness claim must FAIL."""
    monkeypatch.setattr(matrix, "E", SimpleNamespace(get=scaled))
    assert _report(tmp_path, "--only", "positive/gaussian") == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "positive/gaussian · unbiased: unbiased[" in out and "adj. p" in out
    assert str(tmp_path / "rep" / "report.html") in out
    assert "## Claim matrix" not in out and "| estimator |" not in out  # a summary, not the whole Markdown
    data = json.loads((tmp_path / "rep" / "report.json").read_text(encoding="utf-8"))
    failed = data["summary"]["failed"]
    assert {r["claim"] for r in failed} >= {"unbiased"} and all(r["verdict"] == "FAILED" for r in failed)
    assert all(0 <= r["p_raw"] <= r["p_adjusted"] <= 1 for r in failed)


def _refusing(real):
    """verify_estimator whose ``finite`` check is refused (as a heavy-tailed check would be at a small budget)."""

    def verify(name, **kw):
        verdicts, report = real(name, **kw)
        v = next(v for v in verdicts if v.claim == "finite")
        refusal = dict(v.checks[0], method="refused", passed=False, p_value=float("nan"),
                       detail="too few draws for a meaningful test")
        v.verdict, v.p_value, v.method, v.checks = "refused", float("nan"), "refused", [refusal]
        v.evidence = f"{refusal['name']}: {refusal['detail']}"
        return verdicts, report

    return verify


@pytest.mark.parametrize("fail_on, status", [(None, 0), ("failed", 0), ("refused", 1)])
def test_a_refused_claim_is_reported_and_fails_only_with_fail_on_refused(
    tmp_path, monkeypatch, capsys, fail_on, status, one_thread
):
    monkeypatch.setattr(matrix, "verify_estimator", _refusing(matrix.verify_estimator))
    extra = [] if fail_on is None else ["--fail-on", fail_on]
    assert _report(tmp_path, "--only", "elu", *extra) == status
    out = capsys.readouterr().out
    assert "REFUSED: 1 claimed property" in out and "elu · finite: finite[" in out
    assert "never a pass" in out and ("counted as failures" in out) == (fail_on == "refused")
    page = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert '<td class="v-refused"><a href="#elu-finite">refused</a>' in page
    summary = json.loads((tmp_path / "rep" / "report.json").read_text(encoding="utf-8"))["summary"]
    assert summary["failed_estimators"] == [] and summary["refused_estimators"] == ["elu"]  # refused is no failure


def test_a_verified_report_exits_0(tmp_path, capsys, one_thread):
    assert _report(tmp_path, "--only", "positive/gaussian") == 0
    out = capsys.readouterr().out
    assert "every claimed property was verified\n" in out and "verified: 4" in out
    # elu + 1's unbiasedness has no target but its own Gram: n/a, and the line says so (it read "verified" before)
    assert _report(tmp_path / "elu", "--only", "elu") == 0
    out = capsys.readouterr().out
    assert "verified: 3" in out and "n/a: 1" in out and "but 1 read n/a" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--only", "no-such-estimator"], "--only no-such-estimator: not a registered estimator or alias"),
        (["--only", "positive/gausian"], "did you mean positive/gaussian"),
        (["--only", "elu", "--alpha", "2"], "alpha"),
    ],
)
def test_errors_exit_2_with_a_message_and_no_traceback(tmp_path, capsys, args, message):
    assert _report(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("kerneltheory report: error:") and message in err and "Traceback" not in err


def test_an_unwritable_output_directory_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    assert main(["report", "--out", str(blocker / "sub"), "--registry-only", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"error: --out {blocker / 'sub'}: cannot create or write the directory" in err and "Traceback" not in err
    assert main(["report", "--out", str(blocker), "--registry-only", "--quiet"]) == 2
    assert "a file of that name exists" in capsys.readouterr().err
    assert main(["report", "--out", str(tmp_path / "new"), "--registry-only", "--dim", "0", "--quiet"]) == 2
    assert not (tmp_path / "new").exists()  # a bad argument leaves no directory behind
    # an empty --out wrote the whole report into the current directory (a review finding)
    assert main(["report", "--out", "", "--registry-only", "--quiet"]) == 2
    assert "--out must name a directory, got '' (for the current directory give '.')" in capsys.readouterr().err


def test_a_full_disk_names_the_file_being_written(tmp_path, capsys, monkeypatch):
    """A write that fails for want of space raised "[Errno 28] No space left on device", naming no file and no
    --out (a review finding): the atomic writer names the file it was writing."""
    import errno

    import kerneltheory.io as kio

    real = kio.fsync_path

    def full(path):
        if str(path).endswith(".tmp"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path)

    monkeypatch.setattr(kio, "fsync_path", full)
    assert main(["report", "--out", str(tmp_path / "r"), "--registry-only", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"error: --out {tmp_path / 'r'}: No space left on device ({tmp_path / 'r'}" in err, err
    assert "Traceback" not in err and not [p for p in (tmp_path / "r").rglob(".*.tmp")]


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom kerneltheory.cli import main\n"
        "for argv in (['--help'], ['report', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit as e:\n        assert e.code == 0\n"
        "print(sorted(m for m in ('torch', 'numpy', 'pandas') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout


@pytest.mark.parametrize("command", ["report", "audit", *COMMANDS])
def test_every_subcommand_has_plain_help_under_its_own_name(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: kerneltheory {command}")
    assert "``" not in text and ":mod:`" not in text and ":func:`" not in text and ":class:`" not in text


@pytest.mark.parametrize("command", ["report", "audit", *COMMANDS])
def test_every_option_has_help(command):
    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    missing = [a.option_strings or a.dest for a in sub._actions if not a.help]
    assert not missing, f"kerneltheory {command}: options without help: {missing}"


def test_top_level_help_lists_every_subcommand_in_plain_text(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("report", "audit", *COMMANDS):
        assert f"    {command}" in text
    assert "``" not in text and "exit status" in text
