"""The package's pytest plugin prints the base seed where a failure is read: in a "kerneltheory seed" section of
every failed test (with the test's own seed) and in the terminal summary, so ``--kt-seed=random`` failures can
be replayed with ``--kt-seed=<base>`` (README, Tests)."""

import re

pytest_plugins = ["pytester"]

SUITE = """
def test_fails(kt_seed):
    assert kt_seed < 0, f"seed {kt_seed}"

def test_fails_without_a_seed():
    assert False

def test_passes(kt_generator):
    pass
"""


# the inner runs leave out pytest's unraisable-exception plugin: at the end of each run it calls gc.collect five times
# over the outer suite's whole heap (about 0.5 s of CPU a run), and these runs test the seed plugin alone
INNER = ("-p", "no:cacheprovider", "-p", "no:unraisableexception")


def _run(pytester, *args):
    pytester.makepyfile(test_suite=SUITE)
    return pytester.runpytest(*INNER, *args)


def test_a_random_base_is_printed_with_every_failure_and_replays(pytester, monkeypatch):
    monkeypatch.delenv("KT_SEED", raising=False)
    result = _run(pytester, "--kt-seed=random")
    result.assert_outcomes(failed=2, passed=1)
    text = result.stdout.str()
    base = int(re.search(r"kerneltheory: seed base (\d+) \(replay with --kt-seed=\1\)", text).group(1))
    sections = re.findall(r"-+ kerneltheory seed -+\n(.*)", text)
    assert len(sections) == 2 and all(s.startswith(f"seed base {base} (replay with --kt-seed={base})")
                                      for s in sections)
    seed = int(re.search(r"AssertionError: seed (\d+)", text).group(1))
    assert f"this test's kt_seed is {seed}" in text
    summary = text.split("short test summary info")[0].rsplit("- kerneltheory -", 1)[1]
    assert f"seed base {base} (replay with --kt-seed={base}): the failures above replay with it" in summary
    # the printed base replays the failure with the same seed
    replay = _run(pytester, f"--kt-seed={base}")
    assert re.search(r"AssertionError: seed (\d+)", replay.stdout.str()).group(1) == str(seed)


def test_a_passing_run_still_names_its_base(pytester, monkeypatch):
    monkeypatch.delenv("KT_SEED", raising=False)
    pytester.makepyfile(test_ok="def test_ok(kt_seed):\n    assert kt_seed >= 0\n")
    result = pytester.runpytest(*INNER, "--kt-seed=7")
    result.assert_outcomes(passed=1)
    assert "kerneltheory seed" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*- kerneltheory -*", "seed base 7 (replay with --kt-seed=7)"])


def test_a_bad_seed_option_is_a_usage_error(pytester, monkeypatch):
    """--kt-seed=-3 or KT_SEED=abc crashed pytest with an INTERNALERROR traceback; it is a usage error naming them."""
    monkeypatch.delenv("KT_SEED", raising=False)
    pytester.makepyfile(test_ok="def test_ok(kt_seed):\n    pass\n")
    result = pytester.runpytest(*INNER, "--kt-seed=-3")
    assert result.ret == 4 and "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(["*--kt-seed / KT_SEED must be >= 0, got -3*"])
    monkeypatch.setenv("KT_SEED", "abc")
    result = pytester.runpytest(*INNER)
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*must be 'fixed', 'random' or an integer >= 0, got 'abc'*"])


def test_xdist_workers_take_the_controllers_base():
    """Under pytest-xdist every worker parsed ``--kt-seed=random`` itself and drew a base of its own, which the
    printed base did not replay. The controller now hands its base to each worker (pytest_configure_node, an optional
    hook without xdist), and a worker's configure takes it instead of its option."""
    from types import SimpleNamespace

    from kerneltheory.testing import plugin

    controller = SimpleNamespace(_kt_seed_base=123456)
    node = SimpleNamespace(config=controller, workerinput={})
    plugin.pytest_configure_node(node)
    assert node.workerinput["kt_seed_base"] == 123456
    worker = SimpleNamespace(workerinput=node.workerinput, getoption=lambda name: "random")
    plugin.pytest_configure(worker)
    assert plugin.base_seed(worker) == 123456
    alone = SimpleNamespace(getoption=lambda name: "random")  # no controller: its own random base
    plugin.pytest_configure(alone)
    assert plugin.base_seed(alone) != 123456  # a fresh random base (equal with probability ~2⁻³¹)


GLOBAL_DRAWS = """
import random

import numpy as np
import torch


def test_a_consumer():
    torch.rand(7), np.random.rand(3), random.random()


def test_b_uses_the_global_generators(kt_seed):
    print(f"draws {torch.rand(1).item()!r} {np.random.rand()!r} {random.random()!r}")
"""


def test_kt_seed_seeds_the_global_generators_whatever_ran_before(pytester, monkeypatch):
    """Review finding: a module a test builds from torch's global generator (a default-initialised nn.Module) depended
    on the tests that ran before it (and, in a torch that starts its generator from a fresh seed in every process, on
    the process), so a failure did not replay from the printed base. A test that requests kt_seed runs with torch's,
    numpy's and random's global generators seeded from it; alone or after another test, it draws the same."""
    monkeypatch.delenv("KT_SEED", raising=False)
    pytester.makepyfile(test_global=GLOBAL_DRAWS)

    def draws(*args):
        result = pytester.runpytest(*INNER, "-s", "--kt-seed=5", *args)
        return re.search(r"draws (\S+ \S+ \S+)", result.stdout.str()).group(1)

    assert draws() == draws("-k", "test_b") == draws("test_global.py::test_b_uses_the_global_generators")


def test_the_global_generators_are_restored_after_the_test():
    import random

    import numpy as np
    import torch

    from kerneltheory.testing.seeds import seeded_global_generators

    torch.manual_seed(11)
    np.random.seed(11)  # noqa: NPY002
    random.seed(11)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002
    with seeded_global_generators(3):
        inside = torch.rand(2), np.random.rand(2), random.random()  # noqa: NPY002
    assert torch.equal(torch.get_rng_state(), states[0]) and (np.random.get_state()[1] == states[1]).all()  # noqa: NPY002
    assert random.getstate() == states[2]
    with seeded_global_generators(3):
        again = torch.rand(2), np.random.rand(2), random.random()  # noqa: NPY002
    assert torch.equal(inside[0], again[0]) and (inside[1] == again[1]).all() and inside[2] == again[2]
    with seeded_global_generators(4):
        assert not torch.equal(torch.rand(2), inside[0])


def test_a_tests_seed_does_not_depend_on_the_directory_pytest_starts_from(pytester, monkeypatch):
    """Review finding: without a configuration file pytest's node ids are relative to a rootdir that follows the
    directory it is started from, so the same test got another kt_seed (and verdict) run from tests/ than from the
    project's root, under the same printed base. The seed's name is taken from the project's root (a pyproject.toml,
    setup.cfg, …, .git above the file; without one, the directory above the file's outermost package)."""
    monkeypatch.delenv("KT_SEED", raising=False)
    pytester.mkdir("tests")
    (pytester.path / "tests" / "test_where.py").write_text("def test_seed(kt_seed):\n    print(f'seed {kt_seed}')\n")

    def seed(*args):
        return re.search(r"seed (\d+)", pytester.runpytest(*INNER, "-s", *args).stdout.str()).group(1)

    from_root = seed("tests/test_where.py")
    monkeypatch.chdir(pytester.path / "tests")
    assert seed("test_where.py") == from_root
    (pytester.path / "pyproject.toml").write_text("")  # a marked project root: the node id from it
    monkeypatch.chdir(pytester.path)
    marked = seed("tests/test_where.py")
    assert marked != from_root  # the marker is read afresh (a cached root made this half assert nothing)
    monkeypatch.chdir(pytester.path / "tests")
    assert seed("test_where.py") == marked
