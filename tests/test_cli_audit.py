"""``kerneltheory audit``: which signatures FACTORY may have (an optional generator argument, ``--global-rng`` with
``--attention``), options that would be ignored (refused, naming the option), ``--checks bias`` and ``--dtypes``.
Exit status 0 verified, 1 refuted, 2 the command could not run or could not decide."""

from __future__ import annotations

import textwrap

import pytest
import torch

from kerneltheory.cli import ATTENTION_CHECKS, main
from kerneltheory.testing import attention_audit

pytestmark = pytest.mark.usefixtures("one_thread")

USER = textwrap.dedent('''
    import math, torch

    def sample(generator=None, d=8, m=64):  # an optional generator: still sample(generator)
        w = torch.randn(m, d, generator=generator, dtype=torch.float64)
        return lambda x: torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(m)

    def frequencies(generator=None, m=16, d=8):
        return torch.randn(m, d, generator=generator, dtype=torch.float64)

    def attention(m=64, generator=None, dtype=None):
        w = torch.randn(m, 8, generator=generator, dtype=torch.float64)
        def fn(q, k, v, mask=None):
            f = w.T if dtype == "float64 only" else w.T.to(q.dtype)
            phi = lambda x: torch.exp((x * 8**-0.25) @ f - (x * x).sum(-1, keepdim=True) / 2 / 8**0.5)
            pq, pk = phi(q), phi(k)
            if mask is not None:
                pk = pk * mask[..., None]
            return (pq @ (pk.transpose(1, 2) @ v)) / (pq @ pk.sum(1).unsqueeze(-1))
        return fn

    def float64_attention(m, generator):
        return attention(m, generator, dtype="float64 only")

    def global_attention(m):  # draws from torch's global generator
        return attention(m)

    def two_inputs(x, y):
        return x

    def make(dim=8):  # a factory whose parameters all have defaults: callable as make() and as make(generator)
        return sample
''')


@pytest.fixture
def user(tmp_path):
    path = tmp_path / "user_code.py"
    path.write_text(USER, encoding="utf-8")
    return lambda name: f"{path}:{name}"


def test_check_names_are_those_of_check_attention():
    assert ATTENTION_CHECKS == attention_audit.ATTENTION_CHECKS


def test_optional_generator_is_sample_generator(user, capsys):
    """``def sample(generator=None, ...)`` has no required parameter; it is still sample(generator), not a
    zero-argument factory whose result would be called with a generator."""
    assert main(["audit", user("sample"), "--kernel", "softmax", "--dim", "8", "--claims", "finite"]) == 0
    assert main(["audit", user("frequencies"), "--sampler", "gaussian", "--draws", "256"]) == 0
    assert main(["audit", user("attention"), "--attention", "--dim", "8", "--checks", "padding", "finite"]) == 0
    capsys.readouterr()


def test_a_factory_with_optional_parameters_is_a_factory(user, capsys):
    """``def make(dim=8): return sample`` accepts one argument too; its parameter is not named like a generator, so it
    is a zero-argument factory (it was taken as sample(generator), and its sampler then called on the points)."""
    from kerneltheory._audit_args import as_factory

    assert main(["audit", user("make"), "--kernel", "softmax", "--dim", "8", "--claims", "finite"]) == 0
    capsys.readouterr()

    def sample(generator=None):
        return generator

    def make(dim=8):
        return sample

    def odd(dim=8):  # callable both ways, and what it returns is no sampler: taken as the sampler itself
        return 3

    assert as_factory(sample, 1, "sample(generator)") is sample
    assert as_factory(make, 1, "sample(generator)") is sample
    assert as_factory(odd, 1, "sample(generator)") is odd


def test_global_rng_attention_is_attention_of_m(user, capsys):
    args = ["--attention", "--dim", "8", "--checks", "padding", "finite"]
    assert main(["audit", user("global_attention"), *args, "--global-rng"]) == 0
    capsys.readouterr()
    assert main(["audit", user("two_inputs"), *args, "--global-rng"]) == 2
    assert "--global-rng --attention: FACTORY must be attention(m)" in capsys.readouterr().err
    assert main(["audit", user("sample"), "--kernel", "softmax", "--dim", "8", "--claims", "finite",
                 "--global-rng"]) == 0  # its arguments are optional: it runs as draw()
    capsys.readouterr()
    assert main(["audit", user("two_inputs"), "--kernel", "softmax", "--dim", "8", "--claims", "finite",
                 "--global-rng"]) == 2
    assert "--global-rng: FACTORY must take no argument" in capsys.readouterr().err


def test_a_factory_of_the_wrong_signature_is_named(user, capsys):
    assert main(["audit", user("two_inputs"), "--kernel", "softmax", "--dim", "8", "--claims", "finite"]) == 2
    err = capsys.readouterr().err
    assert "FACTORY two_inputs(x, y) cannot be called as sample(generator)" in err, err
    assert main(["audit", user("global_attention"), "--attention", "--dim", "8"]) == 2
    err = capsys.readouterr().err
    assert "FACTORY global_attention(m) cannot be called as attention(m, generator)" in err and "--global-rng" in err


@pytest.mark.parametrize("extra, option", [
    (["--attention", "--claims", "finite"], "--claims"),
    (["--attention", "--budget", "quick"], "--budget"),
    (["--attention", "--draws", "256"], "--draws"),
    (["--sampler", "gaussian", "--claims", "finite"], "--claims"),
    (["--kernel", "softmax", "--claims", "finite", "--causal"], "--causal"),
    (["--kernel", "softmax", "--claims", "finite", "--dtypes", "float64"], "--dtypes"),
    (["--kernel", "softmax", "--claims", "finite", "--checks", "bias"], "--checks"),
])
def test_options_that_would_be_ignored_are_refused(user, capsys, extra, option):
    assert main(["audit", user("attention"), "--dim", "8", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kerneltheory audit: error: {option} applies to ") and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("extra, option", [(["--dim", "3"], "--dim"), (["--kernel", "bogus:x"], "--kernel"),
                                           (["--sigma", "2"], "--sigma")])
def test_a_sampler_audit_refuses_the_options_of_a_map(user, capsys, extra, option):
    """A sampler audit has no kernel and no inputs: --dim, --kernel and --sigma would be ignored; they are refused."""
    assert main(["audit", user("frequencies"), "--sampler", "gaussian", *extra]) == 2
    assert f"{option} applies to a feature-map or --attention audit only" in capsys.readouterr().err


def test_sampler_and_attention_together_are_refused(user, capsys):
    assert main(["audit", user("frequencies"), "--sampler", "gaussian", "--attention", "--dim", "8"]) == 2
    assert "--sampler and --attention" in capsys.readouterr().err


def test_bias_check_and_dtypes_from_the_shell(user, capsys):
    assert main(["audit", user("attention"), "--attention", "--dim", "8", "--checks", "bias"]) == 0
    assert "bias ∝ 1/m" in capsys.readouterr().out
    finite = ["--attention", "--dim", "8", "--checks", "finite"]
    assert main(["audit", user("float64_attention"), *finite]) == 3  # float32 refused: no verdict
    assert "--dtypes" in capsys.readouterr().out
    assert main(["audit", user("float64_attention"), *finite, "--dtypes", "float64"]) == 0
    assert "finite[float32]" not in capsys.readouterr().out


@pytest.mark.parametrize("value, says", [("2", "must be < 1.0, got 2.0"), ("nan", "must be finite"),
                                         ("1e-200", "must be >= 1e-100")])
def test_alpha_is_checked_as_given(user, capsys, value, says):
    """--alpha is validated before a report splits it (a proportional claim halves it: --alpha 2 was reported as
    "alpha must be < 1.0, got 1.0"); the message names the option and the value given."""
    assert main(["audit", user("sample"), "--dim", "8", "--alpha", value, "--claims", "unbiased", "proportional"]) == 2
    assert f"kerneltheory audit: error: --alpha {says}" in capsys.readouterr().err


def test_audit_threads_are_set_for_the_run_and_restored(user, capsys, monkeypatch):
    """kerneltheory audit runs with one torch thread unless --threads N (the checks' tensors are small), and gives
    an in-process caller its thread count back, after an error too."""
    import torch

    import kerneltheory.testing as testing

    seen, real = [], testing.check_feature_map
    monkeypatch.setattr(testing, "check_feature_map", lambda *a, **k: (seen.append(torch.get_num_threads()),
                                                                       real(*a, **k))[1])
    before = torch.get_num_threads()
    assert main(["audit", user("sample"), "--kernel", "softmax", "--dim", "8", "--claims", "finite"]) == 0
    assert seen == [1] and torch.get_num_threads() == before
    assert main(["audit", user("sample"), "--kernel", "softmax", "--dim", "8", "--claims", "finite", "--threads",
                 "0"]) == 2
    assert "--threads must be an integer in [1, " in capsys.readouterr().err
    assert main(["audit", user("sample"), "--kernel", "softmax", "--dim", "8", "--claims", "finite", "--threads",
                 "100000"]) == 2  # 10⁵ threads crashed the process (a segmentation fault, exit 139)
    assert "got 100000" in capsys.readouterr().err
    assert torch.get_num_threads() == before


def test_shell_audit_review_findings(tmp_path, capsys, monkeypatch):
    """A review of the command line (2026-12-06): (1) the audited code's sys.exit(0), at import or inside the map, was
    the process's exit status 0 with nothing printed, a pass of nothing; it is exit 2 naming SystemExit. (2) A
    library error named the Python argument (``seed must be >= 0``), not the option. (3) A module given by name was
    not found from the current directory by the console script (``python -m`` found it). (4) A generator parameter
    named ``torch_gen`` was read as a factory's, and correct code failed."""
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(0)\n", encoding="utf-8")
    (tmp_path / "maps.py").write_text(textwrap.dedent('''
        import sys, torch

        def exits(generator):
            w = torch.randn(64, 8, generator=generator, dtype=torch.float64)
            def features(x):
                sys.exit(0)
            return features

        def named(torch_gen=None, m=64):
            w = torch.randn(m, 8, generator=torch_gen, dtype=torch.float64)
            return lambda x: torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / m**0.5
    '''), encoding="utf-8")
    audit = ["--kernel", "softmax", "--dim", "8", "--claims", "finite"]
    for target in (f"{tmp_path / 'exits.py'}:x", f"{tmp_path / 'maps.py'}:exits"):
        assert main(["audit", target, *audit]) == 2
        assert "the audited code raised SystemExit(0)" in capsys.readouterr().err
    assert main(["audit", f"{tmp_path / 'maps.py'}:named", *audit, "--seed", "-1"]) == 2
    assert "error: --seed must be >= 0, got -1" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(__import__("sys").modules, "maps", raising=False)
    assert main(["audit", "maps:named", "--kernel", "softmax", "--dim", "8", "--claims", "unbiased", "finite"]) == 0


def test_review_findings_of_the_audit_command(tmp_path, capsys):
    """(1) `--claims proportional` alone called proportional_check directly, skipping the replay and row-wise checks:
    a map that ignores its generator, and one whose rows read the batch, passed. (2) `--variance` without the variance
    claim was ignored. (3) A file with a dataclass under `from __future__ import annotations`, or importing a
    neighbour inside a function, failed to load. (4) `--global-rng --attention` left a module in training mode
    (its dropout failed the slope rows)."""
    path = tmp_path / "user_maps.py"
    (tmp_path / "neighbour.py").write_text("SCALE = 8\n", encoding="utf-8")
    path.write_text(textwrap.dedent('''
        from __future__ import annotations
        import dataclasses, torch

        @dataclasses.dataclass
        class Spec:
            m: int = 64

        def unwrapped(generator):  # ignores its generator
            w = torch.randn(Spec().m, 8, dtype=torch.float64)
            return lambda x: torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2)

        def batch_shift(generator):  # each row shifted by a statistic of the batch
            w = torch.randn(64, 8, generator=generator, dtype=torch.float64)
            def f(x):
                z = x @ w.T - (x * x).sum(-1, keepdim=True) / 2
                return torch.exp(z - z[:1].mean()) / 8
            return f

        def good(generator):
            from neighbour import SCALE  # a neighbour imported when the map runs
            w = torch.randn(64, 8, generator=generator, dtype=torch.float64)
            return lambda x: torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / SCALE
    '''), encoding="utf-8")
    audit = ["audit", "--kernel", "softmax", "--dim", "8", "--claims", "proportional"]
    assert main([*audit[:1], f"{path}:unwrapped", *audit[1:]]) == 2
    assert "identically seeded generators" in capsys.readouterr().err
    assert main([*audit[:1], f"{path}:batch_shift", *audit[1:]]) == 1
    assert "rows depend on the other rows of the batch" in capsys.readouterr().out
    assert main([*audit[:1], f"{path}:good", *audit[1:]]) == 0
    capsys.readouterr()
    assert main(["audit", f"{path}:good", "--kernel", "softmax", "--dim", "8", "--claims", "unbiased",
                 "--variance", f"{path}:good"]) == 2
    assert "--variance is the claimed variance of --claims variance" in capsys.readouterr().err


def test_global_rng_attention_modules_are_audited_in_eval_mode():
    import torch

    from kerneltheory._audit_args import global_rng_factory

    built = []

    def attention(m):
        module = torch.nn.Dropout(0.1)
        built.append(module)
        return module

    global_rng_factory(attention, True)(16, torch.Generator().manual_seed(0))
    assert built and not built[0].training


def test_a_file_that_draws_at_import_gives_one_verdict_per_seed(tmp_path, capsys):
    """Review finding: a module built when its file is imported (from torch's global generator, which starts from a
    fresh seed in every process) made one command with one printed seed give different verdicts. The audited file is
    imported with the global generators seeded from --seed: the same report at every run, another at another seed."""
    path = tmp_path / "drawn_at_import.py"
    path.write_text(textwrap.dedent('''
        import math, torch
        scale = 1 + 0.01 * torch.randn(()).item()  # drawn at import
        def sample(generator):
            w = torch.randn(64, 8, generator=generator, dtype=torch.float64)
            return lambda x: torch.exp(scale * x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(64)
        print(f"scale {scale!r}")
    '''), encoding="utf-8")

    def run(seed):
        torch.rand(3)  # the caller's global generator moves between runs
        main(["audit", f"{path}:sample", "--kernel", "softmax", "--dim", "8", "--claims", "finite", "--seed", seed])
        return capsys.readouterr().out

    first = run("0")
    assert "scale" in first and run("0") == first
    assert run("1").split("\n")[0] != first.split("\n")[0]  # another seed, another draw at import


def test_a_reader_that_closes_the_pipe_gets_the_unix_status_and_no_error(user):
    """A helper's trial: `kerneltheory audit ... | head` ended with "error: BrokenPipeError" and exit status 2, as if
    the audit could not run (or 120 after Python's last flush). A closed pipe now stops the command as it stops other
    Unix tools: status 141 (128 + SIGPIPE), nothing on stderr."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "kerneltheory", "audit", user("frequencies"), "--sampler",
                             "gaussian", "--draws", "256"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader goes away before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err
    # a stdout closed before the start (`>&-`: sys.stdout is None) has nothing to flush: the verdict's status stays
    closed = subprocess.run(["sh", "-c", 'exec "$0" -m kerneltheory audit "$1" --sampler gaussian --draws 256 >&-',
                             sys.executable, user("frequencies")], capture_output=True, text=True, timeout=120)
    assert closed.returncode == 0 and closed.stderr == "", closed.stderr
