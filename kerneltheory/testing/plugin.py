"""pytest plugin of kerneltheory: the ``--kt-seed`` option and the ``kt_seed``/``kt_generator`` fixtures.

Installed with the package (entry point ``pytest11``), so a user's own test suite gets the same seeding:

* ``pytest`` — every test gets a fixed seed derived from its node id;
* ``pytest --kt-seed=random`` (or ``KT_SEED=random``) — fresh seeds; the base is printed in the header, in a
  "kerneltheory seed" section of every failure (with the test's own seed) and in the terminal summary;
* ``pytest --kt-seed=12345`` — replay a run that printed that base.

Under pytest-xdist the controller hands its base to every worker (:func:`pytest_configure_node`), so a random base
is drawn once per run and the one printed replays every worker's tests.
"""

from __future__ import annotations

import pytest
import torch

from .seeds import ENV_VAR, default_option, parse_base, seed_for


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
            text += f"; this test's kt_seed is {seed_of(item.config, item.nodeid)}"
        report.sections.append(("kerneltheory seed", text))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    failed = terminalreporter.stats.get("failed") or terminalreporter.stats.get("error")
    terminalreporter.write_sep("-", "kerneltheory")
    terminalreporter.write_line(_replay(base_seed(config)) + (": the failures above replay with it" if failed else ""))


@pytest.fixture
def kt_seed(request) -> int:
    """A seed for this test: CRC-32 of its node id under the run's base seed."""
    return seed_of(request.config, request.node.nodeid)


@pytest.fixture
def kt_generator(kt_seed) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`kt_seed`."""
    return torch.Generator().manual_seed(kt_seed)
