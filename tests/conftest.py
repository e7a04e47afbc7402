"""Fixtures shared by the test files (the seeding fixtures come from the package's own pytest plugin)."""

import pytest
import torch

from kerneltheory.testing.seeds import seed_for


@pytest.fixture
def one_thread():
    """Small tensors: one intra-op thread avoids the overhead and oversubscription of a shared machine (the
    results are statistical or exact and do not depend on the thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_seed(request):
    """``shared_seed(name)``: the seed of a computation shared by several tests through a module- or session-scoped
    fixture (kt_seed is per test): CRC-32 of ``name`` under the run's base seed, so ``--kt-seed`` draws it afresh
    and replays it as it does every kt_seed."""
    base = getattr(request.config, "_kt_seed_base", 0)
    return lambda name: seed_for(name, base)
