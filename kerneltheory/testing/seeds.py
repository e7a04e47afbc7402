"""Deterministic per-test seeds (CONVENTIONS.md: "a fixed seed per test, derived from its name").

``seed_for(name, base)`` hashes a test's name with a base seed (CRC-32, stable across Python runs and
platforms, unlike ``hash``). With the default base 0 every run uses the same seeds; a random base re-runs the
whole suite on fresh seeds, and the base printed in pytest's header replays a failure.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import zlib
from collections.abc import Iterator

ENV_VAR = "KT_SEED"
#: the name under which a seed derives the seed of the global generators (:func:`seed_global_generators`)
GLOBAL_GENERATORS = "global generators"


def seed_for(name: str, base: int = 0) -> int:
    """A 31-bit seed for ``name`` under ``base``: CRC-32 of ``"{base}:{name}"``."""
    return zlib.crc32(f"{int(base)}:{name}".encode()) & 0x7FFFFFFF


def parse_base(option: str | None) -> int:
    """``"fixed"``/None → 0, ``"random"`` → fresh 31-bit integer, ``"<int>"`` → that integer."""
    if option is None or option == "" or option == "fixed":
        return 0
    if option == "random":
        return secrets.randbits(31)
    try:
        value = int(option)
    except ValueError:
        raise ValueError(
            f"--kt-seed / {ENV_VAR} must be 'fixed', 'random' or an integer >= 0, got {option!r}"
        ) from None
    if value < 0:
        raise ValueError(f"--kt-seed / {ENV_VAR} must be >= 0, got {value}")
    return value


def default_option() -> str:
    return os.environ.get(ENV_VAR, "fixed")


def seed_global_generators(seed: int, *, lazy_cuda: bool = True) -> int:
    """Seed torch's (CPU and CUDA), numpy's legacy and :mod:`random`'s global generators from ``seed`` (through
    ``seed_for("global generators", seed)``, a stream apart from a generator seeded with ``seed`` itself) and return
    that seed. What code draws from them (a default-initialised ``nn.Module``, a file that draws at import) then
    replays with ``seed``. ``lazy_cuda=False``: CUDA devices only if already initialised (``torch.manual_seed`` would
    also queue the seed for a later initialisation, which a restore cannot take back)."""
    import numpy as np
    import torch

    derived = seed_for(GLOBAL_GENERATORS, seed)
    if lazy_cuda:
        torch.manual_seed(derived)
    else:
        torch.default_generator.manual_seed(derived)
        if torch.cuda.is_initialized():
            torch.cuda.manual_seed_all(derived)
    np.random.seed(derived)  # noqa: NPY002 (the global state is the point)
    random.seed(derived)
    return derived


@contextlib.contextmanager
def seeded_global_generators(seed: int) -> Iterator[int]:
    """:func:`seed_global_generators` for the body (CUDA devices only if initialised before it: a seed queued for a
    later initialisation would outlive the body); the caller's states (torch's CPU generator and those CUDA devices,
    numpy's legacy state, :mod:`random`) restored after it, also when it raises."""
    import numpy as np
    import torch

    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        yield seed_global_generators(seed, lazy_cuda=False)
    finally:
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
