r"""The count-sketch law: the random matrix of TensorSketch (Charikar, Chen & Farach-Colton 2002; Pham & Pagh
2013, "Fast and Scalable Polynomial Kernels via Explicit Feature Maps", §2).

C ∈ {−1, 0, 1}^{m×d} has exactly one non-zero entry per column: C[h(l), l] = σ(l), with h(l) uniform on
{0, …, m − 1} and σ(l) a Rademacher sign, all independent. Cx is the count sketch of x and

.. math::
    \mathbb E[(Cx)^\top(Cy)] = \sum_{l, l'} x_l y_{l'}\, \mathbb E[\sigma(l)\sigma(l')\,1\{h(l) = h(l')\}]
    = x^\top y,

since the signs of two different columns are independent with mean 0 (proofs/polynomial.md, item 3).

The law has no ψ or MGF the components use (they depend on m, which the law does not fix; :meth:`char_fn` and
:meth:`mgf` validate their argument, then raise :class:`~kerneltheory.spectral.base.ClosedFormUnavailable`). The
TensorSketch component's target is the polynomial kernel itself (:func:`kerneltheory.kernels.polynomial`), which
the proof derives from the law. Rows are dependent (each column has one entry), so ``iid_rows`` is False.

Example:
    >>> import torch
    >>> from kerneltheory.spectral import CountSketch
    >>> c = CountSketch(5).sample(3, torch.Generator().manual_seed(0))
    >>> c.abs().sum(0).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import torch

from .._validation import check_generator, check_int
from .base import SpectralLaw


def count_sketch_matrices(shape: tuple[int, ...], m: int, d: int, generator: torch.Generator) -> torch.Tensor:
    """Independent count-sketch matrices ``[*shape, m, d]`` (float64, CPU): one ±1 per column at a uniform row."""
    m = check_int(m, "m", minimum=1)
    d = check_int(d, "d", minimum=1)
    check_generator(generator)
    rows = torch.randint(0, m, (*shape, d), generator=generator)
    signs = torch.randint(0, 2, (*shape, d), generator=generator).to(torch.float64) * 2.0 - 1.0
    onehot = torch.nn.functional.one_hot(rows, m).to(torch.float64)  # [*shape, d, m]
    return (onehot * signs.unsqueeze(-1)).transpose(-1, -2)


class CountSketch(SpectralLaw):
    """Count-sketch matrices: one Rademacher sign per column, at a uniformly random row."""

    name = "countsketch"
    row_marginal = "exact"
    rows_marginally_gaussian = False
    iid_rows = False
    proof = "proofs/polynomial.md"

    @property
    def reference(self) -> CountSketch:
        return self

    def char_fn(self, tau):
        self._check_arg(tau, "tau")
        return super().char_fn(tau)

    def mgf(self, z):
        self._check_arg(z, "z")
        return super().mgf(z)

    def _sample(self, m, generator, r):
        return count_sketch_matrices((r,), m, self.dim, generator).to(self.device, self.dtype)
