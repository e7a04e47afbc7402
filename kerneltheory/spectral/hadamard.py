r"""The Walsh–Hadamard transform, the fast O(d log d) building block of SORF and Fastfood.

Sylvester's construction

.. math::
    H_1 = [1], \qquad H_{2n} = \begin{pmatrix} H_n & H_n \\ H_n & -H_n \end{pmatrix},
    \qquad (H_n)_{ij} = (-1)^{\operatorname{popcount}(i \,\&\, j)},

gives a symmetric matrix with H_n H_nᵀ = n I, so H_n/√n is orthogonal. The butterfly below applies H_n to a
vector in log2(n) stages of n additions each (Fino & Algazi 1976, "Unified matrix treatment of the fast
Walsh–Hadamard transform"); the order of the outputs is Sylvester's ("natural") order, so
``fwht(x) == x @ hadamard_matrix(n).T`` (and ``.T`` is a no-op: H is symmetric).

Example:
    >>> import torch
    >>> from kerneltheory.spectral.hadamard import fwht, hadamard_matrix
    >>> x = torch.randn(3, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.allclose(fwht(x), x @ hadamard_matrix(8).T))
    True
"""

from __future__ import annotations

import math

import torch

from .._validation import check_dtype, check_int


def is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def next_power_of_two(n: int) -> int:
    """The least power of two ≥ ``n`` (``n ≥ 1``)."""
    n = check_int(n, "n", minimum=1)
    return 1 << (n - 1).bit_length()


def fwht(x: torch.Tensor, normalized: bool = False) -> torch.Tensor:
    """Batched fast Walsh–Hadamard transform over the last dimension: ``x @ H_nᵀ`` (× n^{-1/2} if normalized).

    ``x`` has shape ``[..., n]`` with n a power of two; the transform costs O(n log n) per vector, is
    differentiable, and runs on the tensor's device and dtype.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1:
        raise ValueError("x must have at least one dimension (the transformed last dimension)")
    if not (x.is_floating_point() or x.is_complex()):
        raise ValueError(f"x must be a floating-point or complex tensor, got {x.dtype}")
    n = x.shape[-1]
    if not is_power_of_two(n):
        raise ValueError(f"x must have a last dimension that is a power of two, got {n}")
    lead = x.shape[:-1]
    y = x.reshape(-1, n)
    rows = y.shape[0]
    h = 1
    while h < n:
        # Index i = (block, half, offset) with i = block·2h + half·h + offset: combine the two halves.
        y = y.reshape(rows, n // (2 * h), 2, h)
        a, b = y[:, :, 0, :], y[:, :, 1, :]
        y = torch.stack((a + b, a - b), dim=2)
        h *= 2
    y = y.reshape(*lead, n)
    return y / math.sqrt(n) if normalized else y


def hadamard_matrix(
    d: int, normalized: bool = False, dtype: torch.dtype = torch.float64, device=None
) -> torch.Tensor:
    """The dense ``d × d`` Sylvester–Hadamard matrix (d a power of two), built by Kronecker products."""
    d = check_int(d, "d", minimum=1)
    if not is_power_of_two(d):
        raise ValueError(f"d must be a power of two, got {d}")
    dtype = check_dtype(dtype)
    h = torch.ones(1, 1, dtype=dtype, device=device)
    base = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=dtype, device=device)
    while h.shape[0] < d:
        h = torch.kron(base, h)
    return h / math.sqrt(d) if normalized else h
