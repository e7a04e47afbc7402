r"""Random sketches of the polynomial kernel: TensorSketch and PolySketch.

**TensorSketch** (Pham & Pagh 2013, "Fast and Scalable Polynomial Kernels via Explicit Feature Maps", §3;
law: :class:`~kerneltheory.spectral.CountSketch`). With x' = [x, √c] and p independent count sketches
C_1, …, C_p ∈ R^{m×(d+1)},

.. math::
    \varphi(x) = \mathcal F^{-1}\Big(\prod_{j=1}^p \mathcal F(C_jx')\Big) \in \mathbb R^m

(the circular convolution of the p count sketches, through the FFT), and E φ(x)ᵀφ(y) = (x'ᵀy')^p = (xᵀy + c)^p
exactly (proofs/polynomial.md, item 3). C_1 restricted to x's coordinates is the law's draw W; the other p − 1
sketches and the column of the constant coordinate of every sketch are the component's extra randomness.

**PolySketch** with the non-negativity trick (Kacham, Mirrokni & Zhong 2023, "PolySketchFormer: Fast
Transformers via Sketching Polynomial Kernels", Algorithms 1–2; law: iid N(0, I)). An inner sketch of degree
q = p/2,

.. math::
    z(x) = m^{-1/2} Wx \quad (q = 1),\qquad z(x) = m^{-1/2}\,(Wx)\odot(Gx) \quad (q = 2),

with W, G independent Gaussian m×d matrices, is unbiased for (xᵀy)^q; the features φ(x) = vec(z(x)z(x)ᵀ) ∈ R^{m²}
give φ(x)ᵀφ(y) = (z(x)ᵀz(y))² ≥ 0. So the estimate is non-negative but *biased* for (xᵀy)^p: its mean is
(xᵀy)^p + Var(z(x)ᵀz(y)) with (:func:`polysketch_mean`, proofs/polynomial.md, item 4)

.. math::
    \operatorname{Var} = \frac{\|x\|^2\|y\|^2 + (x^\top y)^2}{m}\ (q = 1),\qquad
    \operatorname{Var} = \frac{(\|x\|^2\|y\|^2 + 2(x^\top y)^2)^2 - (x^\top y)^4}{m}\ (q = 2),

a bias of order 1/m (so the claim is ``"asymptotic"``).
"""

from __future__ import annotations

import math

import torch

from .. import kernels
from .._normal import standard_normal
from .._validation import check_int, check_real
from ..spectral.base import SpectralLaw
from ..spectral.countsketch import CountSketch, count_sketch_matrices
from ._laws import standard_gaussian_reference
from .base import Component, IncompatibleLaw, project, sq_norm
from .taylor import outer_features


class TensorSketch(Component):
    """FFT product of p count sketches of [x, √c]; D = m; unbiased for (xᵀy + c)^p."""

    name = "tensorsketch"
    positive = False
    proofs = {"unbiased": "proofs/polynomial.md"}

    def __init__(self, dim: int, *, degree: int = 2, c: float = 1.0):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=1)
        self.degree = check_int(degree, "degree", minimum=1)
        self.c = check_real(c, "c", minimum=0.0)

    def check_law(self, law: SpectralLaw | None) -> None:
        super().check_law(law)
        if not isinstance(law, CountSketch):
            raise IncompatibleLaw(f"the {self.name} component needs the countsketch law, not {law.name}")

    def draw_extra(self, num_features, generator, batch, dtype, device):
        """The other p − 1 sketches ``[(batch,) p − 1, m, d]`` and the constant's columns ``[(batch,) p, m]``."""
        lead = () if batch is None else (batch,)
        sketches = count_sketch_matrices((*lead, self.degree - 1), num_features, self.dim, generator)
        const = count_sketch_matrices((*lead, self.degree), num_features, 1, generator)[..., 0]
        device = device if device is not None else "cpu"
        return {"sketches": sketches.to(device, dtype), "const": const.to(device, dtype)}

    def features(self, x, w, extra, stats, side):
        root_c = math.sqrt(self.c)
        const = extra["const"]
        spectra = None
        for j in range(self.degree):
            cj = w if j == 0 else extra["sketches"][..., j - 1, :, :]
            u = project(x, cj) + root_c * const[..., j, :].unsqueeze(-2)
            f = torch.fft.rfft(u, dim=-1)
            spectra = f if spectra is None else spectra * f
        return torch.fft.irfft(spectra, n=w.shape[-2], dim=-1)

    def target(self, law, x, y, stats):
        return kernels.polynomial(x, y, degree=self.degree, c=self.c)

    def target_name(self, law) -> str:
        return f"(xᵀy + {self.c:g})^{self.degree}"


def polysketch_mean(x: torch.Tensor, y: torch.Tensor, degree: int, num_features: int) -> torch.Tensor:
    """E[φ(x)ᵀφ(y)] = (xᵀy)^p + Var(z(x)ᵀz(y)) of PolySketch, pairwise ``[..., n, n']`` (proofs/polynomial.md)."""
    p = _check_degree(degree)
    m = check_int(num_features, "num_features", minimum=1)
    s = x @ y.transpose(-1, -2)
    nn_ = sq_norm(x) * sq_norm(y).transpose(-1, -2)
    if p == 2:
        var = (nn_ + s * s) / m
    else:
        var = ((nn_ + 2 * s * s) ** 2 - s**4) / m
    return s**p + var


def _check_degree(degree) -> int:
    p = check_int(degree, "degree", minimum=2)
    if p not in (2, 4):
        raise ValueError(f"degree must be 2 or 4 (an inner sketch of degree 1 or 2, squared), got {p}")
    return p


class PolySketch(Component):
    """vec(zzᵀ) of a degree-p/2 Gaussian sketch z; D = m²; estimate (z(x)ᵀz(y))² ≥ 0, mean (xᵀy)^p + O(1/m)."""

    name = "polysketch"
    positive = False
    bias = "asymptotic"
    proofs = {"unbiased": "proofs/polynomial.md"}
    claim_notes = {
        "unbiased": "the square of an unbiased sketch: mean (xᵀy)^p + Var(z(x)ᵀz(y)), a bias of order 1/m "
        "(polysketch_mean, proofs/polynomial.md, item 4)",
        "positive": "single features can be negative; every estimate (z(x)ᵀz(y))² is ≥ 0",
    }

    def __init__(self, dim: int, *, degree: int = 4):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=1)
        self.degree = _check_degree(degree)

    def feature_dim(self, num_features: int) -> int:
        return num_features**2

    def check_law(self, law: SpectralLaw | None) -> None:
        super().check_law(law)
        if not (law.iid_rows and law.reference is law and standard_gaussian_reference(law)):
            raise IncompatibleLaw(f"the {self.name} component needs iid N(0, I) frequencies, not the {law.name} law")

    def draw_extra(self, num_features, generator, batch, dtype, device):
        """G, the second Gaussian matrix of the degree-2 inner sketch (none for degree 2)."""
        if self.degree == 2:
            return {}
        shape = (num_features, self.dim) if batch is None else (batch, num_features, self.dim)
        g = standard_normal(shape, generator)
        return {"second": g.to(device if device is not None else "cpu", dtype)}

    def inner(self, x, w, extra) -> torch.Tensor:
        """z(x) ``[..., n, m]``: the inner sketch of degree p/2."""
        z = project(x, w)
        if self.degree == 4:
            z = z * project(x, extra["second"])
        return z / math.sqrt(w.shape[-2])

    def features(self, x, w, extra, stats, side):
        return outer_features(self.inner(x, w, extra))

    def pair_width(self, num_features: int) -> int:
        """The values :meth:`pair_estimates` holds per (draw, pair): the m sketch coordinates."""
        return num_features

    def pair_estimates(self, x, y, w, extra, stats):
        """(z(x)ᵀz(y))², the dot product of the m² features vec(zzᵀ) in O(m) work per pair; equal to it up to
        float64 rounding (tests/test_pair_estimates.py). A subclass that changes :meth:`features` gets the dot
        product of its features."""
        if type(self).features is not PolySketch.features:
            return super().pair_estimates(x, y, w, extra, stats)
        return torch.linalg.vecdot(self.inner(x, w, extra), self.inner(y, w, extra)).square()

    def target(self, law, x, y, stats):
        return kernels.polynomial(x, y, degree=self.degree)

    def target_name(self, law) -> str:
        return f"(xᵀy)^{self.degree}"
