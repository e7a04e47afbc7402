"""Hypothesis strategies for inputs of feature maps (CONVENTIONS.md: bounded finite floats, shrinkable seeds).

>>> from hypothesis import given, settings
>>> from kerneltheory.testing import strategies as kts
>>> @settings(deadline=None, max_examples=20)
... @given(x=kts.points(dim=4, max_norm=10.0), seed=kts.seeds())
... def test_finite(x, seed): ...
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from .._validation import check_int, check_real

_NP = {torch.float32: np.float32, torch.float64: np.float64}


def seeds() -> st.SearchStrategy[int]:
    """Seeds drawn by hypothesis, so a failure shrinks and replays."""
    return st.integers(min_value=0, max_value=2**31 - 1)


def dtypes() -> st.SearchStrategy[torch.dtype]:
    return st.sampled_from([torch.float32, torch.float64])


@st.composite
def points(
    draw,
    dim: int,
    *,
    max_norm: float = 10.0,
    min_rows: int = 1,
    max_rows: int = 6,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """A ``[n, dim]`` tensor of finite points with every row's norm ≤ ``max_norm``.

    Coordinates are bounded floats; rows longer than ``max_norm`` are rescaled onto the sphere of that radius,
    so the strategy covers the zero vector, axes, tiny norms and the boundary.
    """
    d = check_int(dim, "dim", minimum=1)
    r = check_real(max_norm, "max_norm", minimum=0.0)
    n = draw(st.integers(min_value=min_rows, max_value=max_rows))
    dt = dtype if dtype is not None else draw(dtypes())
    elems = st.floats(min_value=-r, max_value=r, allow_nan=False, allow_infinity=False, width=64)
    a = draw(arrays(np.float64, (n, d), elements=elems))
    x = torch.from_numpy(a)
    norms = x.norm(dim=-1, keepdim=True)
    x = torch.where(norms > r, x * (r / torch.where(norms > 0, norms, torch.ones_like(norms))), x)
    return x.to(dt)


@st.composite
def pairs(draw, dim: int, *, max_norm: float = 1.0, size: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """An ``(x, y)`` pair of float64 ``[size, dim]`` tensors with norms ≤ ``max_norm``."""
    x = draw(points(dim, max_norm=max_norm, min_rows=size, max_rows=size, dtype=torch.float64))
    y = draw(points(dim, max_norm=max_norm, min_rows=size, max_rows=size, dtype=torch.float64))
    return x, y
