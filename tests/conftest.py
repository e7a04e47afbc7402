"""Fixtures shared by the test files (the seeding fixtures come from the package's own pytest plugin)."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Small tensors: one intra-op thread avoids the overhead and oversubscription of a shared machine (the
    results are statistical or exact and do not depend on the thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
