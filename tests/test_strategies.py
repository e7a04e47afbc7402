"""The package's hypothesis strategies keep their documented contracts (a review of kerneltheory.testing.strategies):
every row's norm at most ``max_norm`` in the returned dtype however the norm is computed (rows rescaled onto the
sphere came out 2·10⁻¹⁵ outside it in float64, 10⁻⁶ in float32), the boundary reached at large ``max_norm`` (at 10²⁰⁰
the norm overflowed and 310 of 689 rows came out as zeros; ``max_norm`` is now bounded where ``x.norm()`` stays
finite, 10¹⁵⁰ is allowed in float64), and arguments that would make a downstream check vacuous
or non-finite refused by name (``min_rows=0`` gave [0, d] tensors, float16 gave infinities, int64 integers)."""

import pytest
import torch
from hypothesis import find, given, settings
from hypothesis import strategies as st

from kerneltheory.testing import strategies as kts

F64 = torch.float64
FIXED = settings(deadline=None, database=None, derandomize=True)  # find()'s examples, the same at every run


@settings(deadline=None, max_examples=200)
@given(data=st.data(), max_norm=st.sampled_from([1.0, 10.0, 1e-3, 1e15]), dim=st.integers(1, 5))
def test_every_row_is_inside_the_ball_in_its_dtype(data, max_norm, dim):
    x = data.draw(kts.points(dim, max_norm=max_norm))
    assert x.dtype in (torch.float32, F64) and x.shape[0] >= 1 and bool(torch.isfinite(x).all())
    assert float(x.norm(dim=-1).max()) <= max_norm and float(x.to(F64).norm(dim=-1).max()) <= max_norm


def test_a_huge_radius_still_reaches_the_boundary():
    big = kts.points(2, max_norm=1e150, min_rows=6, max_rows=6, dtype=F64)
    x = find(big, lambda x: float(x.norm(dim=-1).max()) > 0.5e150, settings=FIXED)
    assert bool(torch.isfinite(x.norm(dim=-1)).all()) and float(x.norm(dim=-1).max()) <= 1e150


def test_arguments_that_would_make_a_check_vacuous_are_refused():
    for kwargs, match in (({"min_rows": 0}, "min_rows"), ({"max_rows": 0}, "max_rows"),
                          ({"dtype": torch.float16}, "dtype"), ({"dtype": torch.int64}, "dtype"),
                          ({"max_norm": 1e20, "dtype": torch.float32}, "max_norm"), ({"max_norm": 1e20}, "max_norm"),
                          ({"max_norm": 1e200, "dtype": F64}, "max_norm")):
        with pytest.raises(ValueError, match=match):
            _any(kts.points(2, **kwargs))
    assert bool(torch.isfinite(_any(kts.points(2, max_norm=1e150, dtype=F64)).norm(dim=-1)).all())


def _any(strategy):
    """One example of ``strategy`` drawn through hypothesis's engine (``.example()`` is for interactive use)."""
    return find(strategy, lambda _: True, settings=FIXED)
