"""numpy's and :mod:`random`'s global states kept over a block of draws.

:func:`~kerneltheory.testing.adapters.global_rng` seeds torch's, numpy's and :mod:`random`'s global generators for
each draw of a sampler that reads them, and restores the caller's states after it. Saving and restoring numpy's
legacy state costs about 70 µs (its 624-word key is converted both ways) and :mod:`random`'s about 11 µs, which a
module redrawn once per draw pays thousands of times per check. Inside :func:`kept_global_states` the states are
saved once, by the block's first ``global_rng`` call (as they are then, whatever code outside ``global_rng`` has
drawn from them before), and restored once, when the block ends (also when it raises); the ``global_rng`` calls
still seed every generator for each draw, so each draw is what it is alone, but leave numpy's and :mod:`random`'s
states as the draw left them until the block ends. A block without a ``global_rng`` call saves and restores
nothing: code that draws from numpy's global generator without it advances that generator as it would outside a
block (restoring it at each block's end would make such draws repeat from block to block). torch's states are
still saved and restored per draw (1 µs).
"""

from __future__ import annotations

import contextlib
import contextvars
import random
from collections.abc import Iterator

import numpy as np

# whether the code runs inside a global_rng body (a nested call restores the states around itself)
_INSIDE: contextvars.ContextVar[bool] = contextvars.ContextVar("kerneltheory_inside_global_rng", default=False)
# the enclosing block's record of the states its first global_rng call saved ([] until then); None outside a block
_KEPT: contextvars.ContextVar[list | None] = contextvars.ContextVar("kerneltheory_global_states_kept", default=None)


@contextlib.contextmanager
def inside_global_rng() -> Iterator[None]:
    """Marks the body of a ``global_rng`` call: a call nested in it saves and restores the states itself."""
    token = _INSIDE.set(True)
    try:
        yield
    finally:
        _INSIDE.reset(token)


def save_once() -> bool:
    """Inside :func:`kept_global_states` and not inside another ``global_rng`` body: save numpy's and
    :mod:`random`'s states unless this block already has, and return True (the block restores them); otherwise
    False (the caller saves and restores them itself)."""
    saved = _KEPT.get()
    if saved is None or _INSIDE.get():
        return False
    if not saved:
        saved.append((np.random.get_state(), random.getstate()))  # noqa: NPY002 (the global state is the point)
    return True


@contextlib.contextmanager
def kept_global_states() -> Iterator[None]:
    """A block of draws whose ``global_rng`` calls save numpy's and :mod:`random`'s states once (the first call)
    and have them restored once, on exit; nested blocks belong to the outermost."""
    if _KEPT.get() is not None:
        yield
        return
    saved: list = []
    token = _KEPT.set(saved)
    try:
        yield
    finally:
        _KEPT.reset(token)
        if saved:
            np_state, py_state = saved[0]
            np.random.set_state(np_state)  # noqa: NPY002
            random.setstate(py_state)
