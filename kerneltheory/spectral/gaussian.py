r"""iid Gaussian frequencies: ω_i ~ N(μ, Σ), the law behind Random Kitchen Sinks and Performer.

Closed forms (proofs/gaussian_transforms.md):

.. math::
    \operatorname{Re}\psi(\tau) = \cos(\mu^\top\tau)\, e^{-\tau^\top\Sigma\tau/2}, \qquad
    M(z) = e^{\mu^\top z + z^\top\Sigma z/2}.

With μ = 0, Σ = σ⁻² I the characteristic function is the Gaussian kernel K_σ(τ) (Bochner; Rahimi & Recht 2007,
"Random Features for Large-Scale Kernel Machines"); with Σ = I the MGF gives the softmax kernel through
positive features (Choromanski et al. 2021, "Rethinking Attention with Performers", Lemma 1).

For an isotropic zero-mean law, :meth:`tilted_mgf` and :meth:`tilted_char_fn` give E[exp(a‖ω‖²) exp(ωᵀz)] and
E[exp(a‖ω‖²) cos(ωᵀτ)], the quantities behind the GERF family (proofs/gerf.md).

Example:
    >>> import torch
    >>> from kerneltheory.spectral import Gaussian
    >>> law = Gaussian(4)
    >>> w = law.sample(8, torch.Generator().manual_seed(0), batch=3)
    >>> w.shape
    torch.Size([3, 8, 4])
"""

from __future__ import annotations

import torch

from .._validation import check_real
from .base import SpectralLaw


class Gaussian(SpectralLaw):
    """ω ~ N(mean, cov). Give ``std`` for the isotropic law N(0, std² I), or ``mean``/``cov`` for the general one."""

    name = "gaussian"
    device_generator = True
    row_marginal = "exact"
    rows_marginally_gaussian = True
    iid_rows = True
    proof = "proofs/gaussian_transforms.md"

    def __init__(self, dim: int, *, std: float = 1.0, mean=None, cov=None, dtype=torch.float64, device=None):
        super().__init__(dim, dtype=dtype, device=device)
        self.std = check_real(std, "std", minimum=0.0, strict_min=True)
        d = self.dim
        if mean is None:
            mean_t = torch.zeros(d, dtype=self.dtype, device=self.device)
        else:
            mean_t = torch.as_tensor(mean, dtype=self.dtype, device=self.device)
            if mean_t.shape != (d,):
                raise ValueError(f"mean must have shape ({d},), got {tuple(mean_t.shape)}")
            if not bool(torch.isfinite(mean_t).all()):
                raise ValueError("mean contains NaN or infinite values")
        if cov is None:
            cov_t = torch.eye(d, dtype=self.dtype, device=self.device) * self.std**2
        else:
            if std != 1.0:
                raise ValueError("give either std or cov, not both")
            cov_t = torch.as_tensor(cov, dtype=self.dtype, device=self.device)
            if cov_t.shape != (d, d):
                raise ValueError(f"cov must have shape ({d}, {d}), got {tuple(cov_t.shape)}")
            if not bool(torch.isfinite(cov_t).all()):
                raise ValueError("cov contains NaN or infinite values")
            if not torch.allclose(cov_t, cov_t.T, rtol=1e-10, atol=1e-12):
                raise ValueError("cov must be symmetric")
        chol, info = torch.linalg.cholesky_ex(cov_t)
        if int(info) != 0:
            raise ValueError("cov must be positive definite")
        self.register_buffer("mean", mean_t)
        self.register_buffer("cov", cov_t)
        self.register_buffer("chol", chol)
        self.isotropic = cov is None and mean is None

    @property
    def reference(self) -> Gaussian:
        return self

    @property
    def centred(self) -> bool:
        """Whether the mean is 0: then ψ(τ) = e^{−τᵀΣτ/2} and M(z) = e^{zᵀΣz/2}, whose variances the components
        evaluate in closed stable forms (theory.gaussian_trig_covariance, gaussian_hyperbolic_covariance)."""
        return not bool(self.mean.any())

    def quadratic(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """uᵀΣv over the last dimension, broadcasting the others: the quadratic form of ψ, M and the stable
        variances."""
        u, v = self._check_arg(u, "u").to(self.dtype), self._check_arg(v, "v").to(self.dtype)
        u, v = torch.broadcast_tensors(u, v)
        return torch.einsum("...i,ij,...j->...", u, self.cov, v)

    def log_char_fn(self, tau: torch.Tensor) -> torch.Tensor:
        """log ψ(τ) = −τᵀΣτ/2 for a centred law (ψ > 0 there; with a mean, ψ = cos(τᵀμ)e^{−τᵀΣτ/2} changes sign)."""
        if not self.centred:
            raise ValueError("log_char_fn needs a centred law (mean 0): with a mean, ψ(τ) changes sign")
        return -0.5 * self.quadratic(tau, tau)

    def _sample(self, m, generator, r):
        eps = self._normal((r, m, self.dim), generator)
        if self.isotropic:  # chol = std·I: the product adds only zeros, so this is the same number, cheaper
            return eps if self.std == 1.0 else eps * self.std  # ε·1 is ε exactly: no pass over the draws
        return self.mean + eps @ self.chol.T

    def char_fn(self, tau):
        tau = self._check_arg(tau, "tau").to(self.dtype)
        return torch.cos(tau @ self.mean) * torch.exp(-0.5 * self.quadratic(tau, tau))

    def log_mgf(self, z):
        z = self._check_arg(z, "z").to(self.dtype)
        return z @ self.mean + 0.5 * self.quadratic(z, z)

    def mgf(self, z):
        return torch.exp(self.log_mgf(z))

    # -- tilted transforms for the GERF family ----------------------------------------------------
    def _check_tilt(self, a: float) -> float:
        if not self.isotropic:
            raise ValueError("tilted transforms are defined here for the isotropic law N(0, std² I) only")
        a = check_real(a, "a")
        if 1.0 - 2.0 * a * self.std**2 <= 0.0:
            raise ValueError(f"a must satisfy 1 - 2 a std² > 0 for the expectation to be finite, got a = {a}")
        return a

    def _log_tilted(self, a: float, sq: torch.Tensor) -> torch.Tensor:
        """−(d/2) log(1 − 2aσ²) + σ²·sq/(2(1 − 2aσ²)): log E[exp(a‖ω‖² + ωᵀz)] at sq = ‖z‖², and at sq = −‖τ‖² the
        log of E[exp(a‖ω‖²) cos ωᵀτ] (the same Gaussian integral at z = iτ)."""
        a = self._check_tilt(a)
        c = 1.0 - 2.0 * a * self.std**2
        return -0.5 * self.dim * torch.log(torch.tensor(c, dtype=self.dtype)) + self.std**2 * sq / (2 * c)

    def log_tilted_mgf(self, a: float, z: torch.Tensor) -> torch.Tensor:
        """log E[exp(a‖ω‖² + ωᵀz)] = −(d/2) log(1 − 2aσ²) + σ²‖z‖² / (2(1 − 2aσ²)), σ = std."""
        z = self._check_arg(z, "z").to(self.dtype)
        return self._log_tilted(a, (z * z).sum(-1))

    def tilted_mgf(self, a: float, z: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_tilted_mgf(a, z))

    def log_tilted_char_fn(self, a: float, tau: torch.Tensor) -> torch.Tensor:
        """log E[exp(a‖ω‖²) cos(ωᵀτ)] = −(d/2) log(1 − 2aσ²) − σ²‖τ‖² / (2(1 − 2aσ²)) (the transform is > 0)."""
        tau = self._check_arg(tau, "tau").to(self.dtype)
        return self._log_tilted(a, -(tau * tau).sum(-1))

    def tilted_char_fn(self, a: float, tau: torch.Tensor) -> torch.Tensor:
        """E[exp(a‖ω‖²) cos(ωᵀτ)] = (1 − 2aσ²)^{−d/2} exp(−σ²‖τ‖² / (2(1 − 2aσ²)))."""
        return torch.exp(self.log_tilted_char_fn(a, tau))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, std={self.std}" if self.isotropic else f"dim={self.dim}, general mean/cov"


class GaussianApproximation(SpectralLaw):
    """Base of the laws whose rows follow or approximate N(0, std² I) (orthogonal, SORF, Fastfood, QMC,
    moment-matched, Gauss–Hermite): it validates ``std`` and holds the isotropic Gaussian ``reference`` whose
    closed forms define their estimators' targets. A law whose rows are exactly marginally N(0, std² I)
    (``rows_marginally_gaussian``) shares the reference's ψ and M, since both depend on one row's law only."""

    def __init__(self, dim: int, *, std: float = 1.0, dtype=torch.float64, device=None):
        super().__init__(dim, dtype=dtype, device=device)
        self.std = check_real(std, "std", minimum=0.0, strict_min=True)
        self._reference = Gaussian(dim, std=self.std, dtype=self.dtype, device=self.device)

    @property
    def reference(self) -> Gaussian:
        return self._reference

    def char_fn(self, tau):
        return self.reference.char_fn(tau) if self.rows_marginally_gaussian else super().char_fn(tau)

    def mgf(self, z):
        return self.reference.mgf(z) if self.rows_marginally_gaussian else super().mgf(z)

    def log_mgf(self, z):
        return self.reference.log_mgf(z) if self.rows_marginally_gaussian else super().log_mgf(z)
