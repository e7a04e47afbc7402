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
    """A ``[n, dim]`` tensor of finite points with every row's norm ≤ ``max_norm`` (in the returned dtype).

    Coordinates are bounded floats; rows longer than ``max_norm`` are rescaled onto the sphere of that radius (a few
    ulps inside it, so that the returned row's norm does not exceed it after rounding), so the strategy covers the
    zero vector, axes, tiny norms and the boundary. ``min_rows`` ≥ 1; ``dtype`` float32, float64 or None (either);
    ``max_norm`` at most the square root of the dtype's largest number over √dim (float32's where the dtype is drawn),
    so that every point and its norm, computed as ``x.norm()`` in that dtype, are finite.
    """
    d = check_int(dim, "dim", minimum=1)
    lo = check_int(min_rows, "min_rows", minimum=1)  # [0, d] inputs would make a check over them vacuous
    hi = check_int(max_rows, "max_rows", minimum=lo)
    if dtype not in (None, torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32, torch.float64 or None, got {dtype!r}")
    limit = float(torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32).max) ** 0.5 / d**0.5
    r = check_real(max_norm, "max_norm", minimum=0.0, maximum=limit)
    n = draw(st.integers(min_value=lo, max_value=hi))
    dt = dtype if dtype is not None else draw(dtypes())
    elems = st.floats(min_value=-r, max_value=r, allow_nan=False, allow_infinity=False, width=64)
    x = torch.from_numpy(draw(arrays(np.float64, (n, d), elements=elems)))
    x = x.to(dt) if r == 0 else _within(x, r).to(dt)
    over = _outside(x, r)  # rounding in the cast or in a norm: pull such rows a few ulps inside the sphere
    while bool(over.any()):
        x = torch.where(over, (x.to(torch.float64) * (1 - 4 * torch.finfo(dt).eps)).to(dt), x)
        over = _outside(x, r)
    return x


def _outside(x: torch.Tensor, r: float) -> torch.Tensor:
    """``[n, 1]``: rows whose norm exceeds ``r`` however it is computed (``x.norm()`` in x's dtype or in float64, or
    scaled by the largest entry)."""
    wide = x.to(torch.float64)
    own = x.norm(dim=-1, keepdim=True).to(torch.float64)  # compared as float64: 1e-3 rounds up in float32
    return (_norms(wide) > r) | (wide.norm(dim=-1, keepdim=True) > r) | (own > r)


def _norms(x: torch.Tensor) -> torch.Tensor:
    """Row norms ``[n, 1]`` computed on rows scaled by their largest entry (no overflow before the square root)."""
    top = x.abs().amax(-1, keepdim=True)
    unit = torch.where(top > 0, top, torch.ones_like(top))
    return top * (x / unit).norm(dim=-1, keepdim=True)


def _within(x: torch.Tensor, r: float) -> torch.Tensor:
    """Rows longer than ``r`` rescaled onto the sphere of radius ``r`` (float64)."""
    norms = _norms(x)
    return torch.where(norms > r, x / torch.where(norms > 0, norms, torch.ones_like(norms)) * r, x)


@st.composite
def pairs(draw, dim: int, *, max_norm: float = 1.0, size: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """An ``(x, y)`` pair of float64 ``[size, dim]`` tensors with norms ≤ ``max_norm``."""
    x = draw(points(dim, max_norm=max_norm, min_rows=size, max_rows=size, dtype=torch.float64))
    y = draw(points(dim, max_norm=max_norm, min_rows=size, max_rows=size, dtype=torch.float64))
    return x, y
