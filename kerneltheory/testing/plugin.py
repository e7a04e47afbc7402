"""pytest plugin of kerneltheory: the ``--kt-seed`` option and the ``kt_seed``/``kt_generator`` fixtures.

Installed with the package (entry point ``pytest11``), so a user's own test suite gets the same seeding:

* ``pytest`` — every test gets a fixed seed derived from its name: its node id taken from the project's root (the
  nearest directory above the test file holding a ``pyproject.toml``, ``setup.cfg``, ``setup.py``, ``tox.ini``,
  ``pytest.ini`` or ``.git``; without one, the directory above the file's outermost package), so that the seed does
  not depend on the directory pytest was started from, as
  pytest's own node ids do without a configuration file; a test that requests ``kt_seed`` (or ``kt_generator``) also
  runs with torch's, numpy's and :mod:`random`'s global generators seeded from it
  (:func:`~kerneltheory.testing.seeds.seeded_global_generators`) and restored after it, so that what the test
  builds from them (a default-initialised ``nn.Module``) replays with the seed whatever ran before it;
* ``pytest --kt-seed=random`` (or ``KT_SEED=random``) — fresh seeds; the base is printed in the header, in a
  "kerneltheory seed" section of every failure (with the test's own seed) and in the terminal summary;
* ``pytest --kt-seed=12345`` — replay a run that printed that base.

Under pytest-xdist the controller hands its base to every worker (:func:`pytest_configure_node`), so a random base
is drawn once per run and the one printed replays every worker's tests.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from .seeds import ENV_VAR, default_option, parse_base, seed_for, seeded_global_generators

#: the files whose directory is a project's root (:func:`seed_name`)
ROOT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", "tox.ini", "pytest.ini", ".git")


def pytest_addoption(parser):
    group = parser.getgroup("kerneltheory")
    group.addoption(
        "--kt-seed",
        action="store",
        default=None,
        help=f"base seed of statistical tests: 'fixed' (default), 'random', or an integer; env {ENV_VAR}",
    )


def pytest_configure(config):
    worker = getattr(config, "workerinput", None)
    _root_of.cache_clear()  # a run in the same process (pytester) may see other files than the last one saw
    if worker is not None and "kt_seed_base" in worker:  # a pytest-xdist worker: the controller's base
        config._kt_seed_base = int(worker["kt_seed_base"])
        return
    option = config.getoption("--kt-seed") or default_option()
    try:
        config._kt_seed_base = parse_base(option)
    except ValueError as exc:  # a usage error with its message, not an INTERNALERROR traceback
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist's hook on the controller, once per worker it starts: the worker gets the controller's base seed
    (each worker would otherwise parse ``--kt-seed=random`` itself and draw a base of its own, which no printed base
    replays)."""
    node.workerinput["kt_seed_base"] = base_seed(node.config)


def base_seed(config) -> int:
    """The run's base seed (0 unless ``--kt-seed``/``KT_SEED`` says otherwise)."""
    return getattr(config, "_kt_seed_base", 0)


def seed_of(config, name: str) -> int:
    """The seed of ``name`` in this run: CRC-32 of ``name`` under the base seed (the one formula of every fixture)."""
    return seed_for(name, base_seed(config))


def pytest_report_header(config):
    return f"kerneltheory: {_replay(base_seed(config))}"


def _replay(base: int) -> str:
    return f"seed base {base} (replay with --kt-seed={base})"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report gets a section with the base seed (and the test's seed when it uses one)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        text = _replay(base_seed(item.config))
        if "kt_seed" in getattr(item, "fixturenames", ()):
            text += f"; this test's kt_seed is {seed_of(item.config, seed_name(item))}"
        report.sections.append(("kerneltheory seed", text))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    failed = terminalreporter.stats.get("failed") or terminalreporter.stats.get("error")
    terminalreporter.write_sep("-", "kerneltheory")
    terminalreporter.write_line(_replay(base_seed(config)) + (": the failures above replay with it" if failed else ""))


@functools.lru_cache(maxsize=256)
def _root_of(directory: Path) -> Path:
    """The project's root above ``directory`` (the nearest with one of :data:`ROOT_MARKERS`); where there is none,
    the directory above the outermost package that holds ``directory`` (the base of the test module's import name)."""
    for parent in (directory, *directory.parents):
        if any((parent / marker).exists() for marker in ROOT_MARKERS):
            return parent
    while (directory / "__init__.py").exists() and directory.parent != directory:
        directory = directory.parent
    return directory


def seed_name(item) -> str:
    """The name a test's seed derives from: its node id with the file's path taken from the project's root (the
    nearest directory above the file holding one of :data:`ROOT_MARKERS`; without one, from the directory above the
    test file's outermost package).
    The same string as the node id when pytest's rootdir is the project's root; with no configuration file pytest's
    rootdir follows the directory it was started from, and a test run from ``tests/`` got another seed (and
    another verdict) than the same test run from the project's root."""
    nodeid = item.nodeid
    path = getattr(item, "path", None)
    if path is None or "::" not in nodeid:
        return nodeid
    root = _root_of(Path(path).resolve().parent)
    return Path(path).resolve().relative_to(root).as_posix() + "::" + nodeid.split("::", 1)[1]


@pytest.fixture
def kt_seed(request):
    """A seed for this test: CRC-32 of its name (:func:`seed_name`) under the run's base seed. For the test's duration
    torch's, numpy's and :mod:`random`'s global generators are seeded from it and restored after it
    (:func:`~kerneltheory.testing.seeds.seeded_global_generators`)."""
    seed = seed_of(request.config, seed_name(request.node))
    with seeded_global_generators(seed):
        yield seed


@pytest.fixture
def kt_generator(kt_seed) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`kt_seed`."""
    return torch.Generator().manual_seed(kt_seed)
