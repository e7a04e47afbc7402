"""pytest plugin of kerneltheory: the ``--kt-seed`` option and the ``kt_seed``/``kt_generator`` fixtures.

Installed with the package (entry point ``pytest11``), so a user's own test suite gets the same seeding:

* ``pytest`` — every test gets a fixed seed derived from its node id;
* ``pytest --kt-seed=random`` (or ``KT_SEED=random``) — fresh seeds, base printed in the header;
* ``pytest --kt-seed=12345`` — replay a run whose header printed that base.
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
    option = config.getoption("--kt-seed") or default_option()
    config._kt_seed_base = parse_base(option)


def pytest_report_header(config):
    base = getattr(config, "_kt_seed_base", 0)
    return f"kerneltheory: seed base {base} (replay with --kt-seed={base})"


@pytest.fixture
def kt_seed(request) -> int:
    """A seed for this test: CRC-32 of its node id under the run's base seed."""
    return seed_for(request.node.nodeid, getattr(request.config, "_kt_seed_base", 0))


@pytest.fixture
def kt_generator(kt_seed) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`kt_seed`."""
    return torch.Generator().manual_seed(kt_seed)
