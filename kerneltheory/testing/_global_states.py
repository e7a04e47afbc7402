"""numpy's and :mod:`random`'s global states kept over a block of draws.

:func:`~kerneltheory.testing.adapters.global_rng` seeds torch's, numpy's and :mod:`random`'s global generators for
each draw of a sampler that reads them, and restores the caller's states after it. Saving and restoring numpy's
legacy state costs about 70 µs (its 624-word key is converted both ways) and :mod:`random`'s about 11 µs, which a
module redrawn once per draw pays thousands of times per check. Inside :func:`kept_global_states` the caller's states
are saved once, on entry, and restored once, on exit (also when the body raises); the ``global_rng`` calls inside
still seed every generator for each draw (so each draw is what it is outside), but leave numpy's and :mod:`random`'s
states as the draw left them until the block ends. torch's states are still saved and restored per draw (1 µs).
"""

from __future__ import annotations

import contextlib
import contextvars
import random
from collections.abc import Iterator

import numpy as np

_KEPT: contextvars.ContextVar[bool] = contextvars.ContextVar("kerneltheory_global_states_kept", default=False)


def states_kept() -> bool:
    """Whether the caller's numpy and :mod:`random` states are saved by an enclosing :func:`kept_global_states`."""
    return _KEPT.get()


@contextlib.contextmanager
def kept_global_states() -> Iterator[None]:
    """Save numpy's legacy global state and :mod:`random`'s once, restore them on exit; nested uses are free."""
    if _KEPT.get():
        yield
        return
    np_state = np.random.get_state()  # noqa: NPY002 (the global state is the point)
    py_state = random.getstate()
    token = _KEPT.set(True)
    try:
        yield
    finally:
        _KEPT.reset(token)
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
