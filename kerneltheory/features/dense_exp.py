r"""Dense-exponential random features beyond SADERF: SDERF and ADERF (Likhosherstov, Choromanski, Dubey, Liu,
Sarlos & Weller 2023, "Dense-Exponential Random Features: Sharp Positive Estimators of the Gaussian Kernel",
NeurIPS; first titled "FAVOR#", §3).

A DERF, ω ~ N(0, I), with a symmetric matrix A (8A ≺ I) and matrices B⁽¹⁾, B⁽²⁾:

.. math::
    f^{(k)}(\omega, x) = D\, e^{\omega^\top A\omega + \omega^\top B^{(k)}x + x^\top C^{(k)}x},\quad
    D = \det(I - 4A)^{1/4},\ C^{(k)} = -\tfrac12 B^{(k)\top}(I - 4A)^{-1}B^{(k)},

is unbiased for SM(x, y) = exp(xᵀy) whenever B⁽¹⁾ᵀ(I − 4A)⁻¹B⁽²⁾ = I (proofs/dense_exponential.md, item 1). Both
members below choose their parameters from the query and key sequences by minimising the mean over all query/key
pairs of log E(f⁽¹⁾f⁽²⁾)², as OPRF and SADERF do; both are data-dependent (bind the sequences first).

**SDERF** (symmetric: B⁽¹⁾ = B⁽²⁾ = B, one map for both sides). With M = mean_{i,j} (x_i + y_j)(x_i + y_j)ᵀ
= V diag(μ) Vᵀ, the optimum is B = V diag(√t) Vᵀ, A = V diag((1 − t)/4) Vᵀ with, per eigenvalue,

.. math::
    t(\mu) = \frac{3 + 2\mu + \sqrt{(3 + 2\mu)^2 - 8}}{4} \ \ge 1

(item 2; :func:`sderf_parameters`); C = −I/2. It reduces to OPRF's A* when M is a multiple of I.

**ADERF** (asymmetric, scalar A): B⁽¹⁾ = √(1 − 4A)Ψ, B⁽²⁾ = √(1 − 4A)Ψ⁻ᵀ, i.e. OPRF on (Ψx, Ψ⁻ᵀy), with the optimal
invertible Ψ: ΨᵀΨ = P = M₁⁻¹ # M₂, the matrix geometric mean, M₁ = mean x xᵀ, M₂ = mean y yᵀ (item 3;
:func:`aderf_scales`). SADERF is the diagonal restriction. The minimum needs M₁, M₂ invertible; a ridge
ε = 10⁻⁶ · (tr M₁ + tr M₂)/(2d) is added to both (any invertible Ψ keeps the estimator unbiased, so the ridge
changes the variance only).

Like OPRF and SADERF, the statistics are taken over the whole query and key sequences, so under a causal mask they
depend on future tokens.
"""

from __future__ import annotations

import math

import torch

from .. import kernels, theory
from ..spectral.base import SpectralLaw
from ._laws import standard_gaussian_reference
from .base import Component, IncompatibleLaw, project, sq_norm, unit_sign
from .gerf import SADERF

RIDGE = 1e-6


def _second_moment(x: torch.Tensor) -> torch.Tensor:
    """mean_i x_i x_iᵀ over the sequence dimension −2: ``[..., d, d]``."""
    return x.transpose(-1, -2) @ x / x.shape[-2]


def sderf_parameters(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SDERF's optimal (V, t): M = V diag(μ) Vᵀ, M = Cov(x) + Cov(y) + (x̄ + ȳ)(x̄ + ȳ)ᵀ = mean_{i,j} z_ij z_ijᵀ,
    t = (3 + 2μ + √((3 + 2μ)² − 8))/4. Returns ``[..., d, d]`` and ``[..., d]`` (float64).
    Proof: proofs/dense_exponential.md, item 2."""
    x, y = x.double(), y.double()
    mx, my = x.mean(-2, keepdim=True), y.mean(-2, keepdim=True)
    s = mx + my
    m = _second_moment(x - mx) + _second_moment(y - my) + s.transpose(-1, -2) @ s
    mu, v = torch.linalg.eigh(0.5 * (m + m.transpose(-1, -2)))
    b = 3.0 + 2.0 * mu
    return v, (b + torch.sqrt(b * b - 8.0)) / 4.0


def sderf_log_second_moment(x, y, v, t) -> torch.Tensor:
    """log E(f(x)f(y))² of one SDERF feature pair, pairwise ``[..., n, n']`` (proofs/dense_exponential.md):
    Σ log t − ½ Σ log(2t − 1) + 2 Σ_l t_l/(2t_l − 1) (v_lᵀ(x + y))² − ‖x‖² − ‖y‖², the cross moment
    :func:`kerneltheory.theory.sderf_cross_moment_log` at y' = y."""
    xp, yp, vp, tp = _pairwise(x, y, v, t)
    return theory.sderf_cross_moment_log(xp, yp, yp, vp, tp)


def _pairwise(x, y, v, t):
    """x ``[..., n, d]``, y ``[..., n', d]``, v ``[..., d, d]``, t ``[..., d]`` shaped to broadcast pairwise."""
    return x.unsqueeze(-2), y.unsqueeze(-3), v[..., None, None, :, :], t[..., None, None, :]


class SDERF(Component):
    """Symmetric DERF: D e^{ωᵀAω + ωᵀBx − ‖x‖²/2}/√m with A, B from the eigenvectors of mean (x + y)(x + y)ᵀ."""

    name = "sderf"
    positive = True
    data_dependent = True
    proofs = {
        "unbiased": "proofs/dense_exponential.md",
        "positive": "proofs/dense_exponential.md",
        "variance": "proofs/dense_exponential.md",
    }

    def check_law(self, law: SpectralLaw | None) -> None:
        super().check_law(law)
        if not standard_gaussian_reference(law):
            raise IncompatibleLaw(f"the {self.name} component needs rows marginally N(0, I), not the {law.name} law")

    def statistics(self, x, y):
        v, t = sderf_parameters(x, y)
        return {"v": v, "t": t}

    def _params(self, stats, like):
        v = _bound(stats, "v", self.name)
        return v.to(like.device, like.dtype), stats["t"].to(like.device, like.dtype)

    def log_features(self, x, w, extra, stats, side):
        v, t = self._params(stats, x)
        wv = w @ v  # row i: (v_lᵀω_i)_l
        quad = ((1 - t).unsqueeze(-2) / 4 * wv * wv).sum(-1).unsqueeze(-2)  # ωᵀAω, [..., 1, m]
        log_d = 0.25 * torch.log(t).sum(-1)[..., None, None]
        lin = project((x @ v) * torch.sqrt(t).unsqueeze(-2), wv)  # ωᵀBx
        logs = log_d + quad + lin - 0.5 * sq_norm(x) - 0.5 * math.log(w.shape[-2])
        return logs, unit_sign(logs)

    def features(self, x, w, extra, stats, side):
        return torch.exp(self.log_features(x, w, extra, stats, side)[0])

    def target(self, law, x, y, stats):
        # E f(x)f(y) = SM(x, y) for every admissible (A, B) (item 1), the positive-feature kernel of N(0, I)
        return kernels.positive_feature_kernel(x, y, law.reference)

    def target_name(self, law) -> str:
        return "softmax exp(xᵀy)"

    def has_variance(self, law) -> bool:
        return law is not None and law.iid_rows and law.reference is law and standard_gaussian_reference(law)

    def variance(self, law, x, y, num_features, stats):
        xp, yp, vp, tp = _pairwise(x, y, *self._params(stats, x))
        return theory.sderf_covariance(xp, yp, yp, vp, tp, num_features)


def _sym_power(m: torch.Tensor, power: float) -> torch.Tensor:
    """M^power for symmetric positive definite ``m`` ``[..., d, d]`` through its eigendecomposition."""
    lam, v = torch.linalg.eigh(0.5 * (m + m.transpose(-1, -2)))
    if bool((lam <= 0).any()):
        raise ValueError("matrix must be positive definite (an eigenvalue is <= 0)")
    return (v * lam.unsqueeze(-2) ** power) @ v.transpose(-1, -2)


def aderf_scales(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ADERF's (Ψ, Ψ⁻¹), Ψ = P^{1/2}, P = M₁⁻¹ # M₂ = M₁^{-1/2}(M₁^{1/2}M₂M₁^{1/2})^{1/2}M₁^{-1/2} (float64,
    ``[..., d, d]``, symmetric), with the ridge of the module docstring. Proof: proofs/dense_exponential.md, item 3."""
    m1, m2 = _second_moment(x.double()), _second_moment(y.double())
    d = x.shape[-1]
    trace = (torch.diagonal(m1, dim1=-2, dim2=-1).sum(-1) + torch.diagonal(m2, dim1=-2, dim2=-1).sum(-1)) / (2 * d)
    eps = torch.where(trace > 0, RIDGE * trace, torch.ones_like(trace))[..., None, None]
    eye = torch.eye(d, dtype=torch.float64, device=m1.device)
    m1, m2 = m1 + eps * eye, m2 + eps * eye
    r1, r1_inv = _sym_power(m1, 0.5), _sym_power(m1, -0.5)
    p = r1_inv @ _sym_power(r1 @ m2 @ r1, 0.5) @ r1_inv
    return _sym_power(p, 0.5), _sym_power(p, -0.5)


class ADERF(SADERF):
    """Asymmetric DERF: OPRF on (Ψx, Ψ⁻¹y) with the optimal dense symmetric Ψ (SADERF's Ψ is diagonal)."""

    name = "aderf"
    pairwise_statistics = False  # Ψ is a [d, d] matrix
    proofs = {
        "unbiased": "proofs/dense_exponential.md",
        "positive": "proofs/dense_exponential.md",
        "variance": "proofs/dense_exponential.md",
    }

    def statistics(self, x, y):
        """{"psi": Ψ, "psi_inv": Ψ⁻¹, "a": A* of (Ψx, Ψ⁻¹y)} (float64)."""
        psi, psi_inv = aderf_scales(x, y)
        stats = {"psi": psi, "psi_inv": psi_inv}
        moved = [self._transform(t.double(), stats, side) for t, side in ((x, "query"), (y, "key"))]
        stats["a"] = theory.oprf_optimal_a(theory.oprf_phi_bar(*moved), x.shape[-1])
        return stats

    def _transform(self, x, stats, side):
        """Ψx for queries, Ψ⁻¹y for keys (Ψ symmetric, so (Ψx)ᵀ = xᵀΨ)."""
        psi = _bound(stats, "psi" if side == "query" else "psi_inv", self.name)
        return (x.to(psi.dtype) @ psi.to(x.device)).to(x.dtype)


def _bound(stats, key: str, name: str) -> torch.Tensor:
    if key not in stats:
        raise ValueError(f"the {name} map is data-dependent: bind the query and key sequences first")
    return stats[key]
