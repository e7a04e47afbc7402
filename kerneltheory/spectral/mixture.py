r"""Learnable Gaussian-mixture frequencies (spectral mixture; GMM-RKS / GMM-PRF).

Law (Wilson & Adams 2013, "Gaussian Process Kernels for Pattern Discovery and Extrapolation"; Chowdhury et
al. 2022, "Learning the Transformer Kernel", GMM-RKS/PRF): C components with weights w = softmax(logits),
means μ_q and covariances Σ_q = L_q L_qᵀ (L_q lower-triangular, positive diagonal exp(raw)),

.. math::
    \omega = \mu_q + L_q \varepsilon, \qquad q \sim \mathrm{Categorical}(w),\ \varepsilon \sim N(0, I_d).

Closed forms (proofs/mixture_kernels.md):

.. math::
    \operatorname{Re}\psi(\tau) = \sum_q w_q\, e^{-\tau^\top\Sigma_q\tau/2} \cos(\mu_q^\top\tau), \qquad
    M(z) = \sum_q w_q\, e^{\mu_q^\top z + z^\top\Sigma_q z/2},

the first being exactly the spectral-mixture kernel of MATH.md §1.

Antithetic option: draws come in pairs (rows 2i, 2i+1) sharing q and ε, ω = ±μ_q + L_q ε, so m must be even.
A uniformly chosen row then has the symmetrised density Σ_q w_q ½[N(μ_q, Σ_q) + N(−μ_q, Σ_q)]: Re ψ is
unchanged (cos is even) and M(z) = Σ_q w_q cosh(μ_qᵀz) e^{zᵀΣ_q z/2}. Every estimator that averages a
single-row term over all m rows is unbiased for these transforms (``row_marginal = "exact"`` in that sense:
row 2i alone has the unsymmetrised law); the rows are not independent (``iid_rows = False``).

Gradients (reparameterisation): W is differentiable in μ and L through ε; the categorical choice q is not,
so the weights (logits) receive gradients only through the closed-form kernel (:meth:`char_fn`, :meth:`mgf`).

Example:
    >>> import torch
    >>> from kerneltheory.spectral import GaussianMixture
    >>> law = GaussianMixture(2, components=3, generator=torch.Generator().manual_seed(0))
    >>> law.sample(4, torch.Generator().manual_seed(1), batch=5).shape
    torch.Size([5, 4, 2])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validation import check_generator, check_int, check_real
from ..kernels import spectral_mixture_from_tau
from .base import SpectralLaw


class GaussianMixture(SpectralLaw):
    """ω = μ_q + L_q ε (optionally antithetic ±μ_q pairs); weights, means, Cholesky factors are parameters."""

    name = "mixture"
    device_generator = True
    row_marginal = "exact"
    rows_marginally_gaussian = False
    iid_rows = True
    learnable = True
    proof = "proofs/mixture_kernels.md"

    def __init__(
        self,
        dim: int,
        components: int = 1,
        *,
        generator: torch.Generator | None = None,
        means=None,
        covs=None,
        weights=None,
        init_std: float = 1.0,
        antithetic: bool = False,
        dtype=torch.float64,
        device=None,
    ):
        super().__init__(dim, dtype=dtype, device=device)
        c, d = check_int(components, "components", minimum=1), self.dim
        self.components = c
        init_std = check_real(init_std, "init_std", minimum=0.0, strict_min=True)
        if not isinstance(antithetic, bool):
            raise TypeError(f"antithetic must be a bool, got {type(antithetic).__name__}")
        self.antithetic = antithetic
        if antithetic:
            self.iid_rows = False
        if generator is not None:
            check_generator(generator)
        kw = {"dtype": self.dtype, "device": self.device}
        if means is None:
            # Zero means, or small random means 0.1·init_std·N(0, I) that break the components' symmetry.
            if generator is None:
                means_t = torch.zeros(c, d, **kw)
            else:
                means_t = 0.1 * init_std * torch.randn((c, d), generator=generator, dtype=torch.float64)
        else:
            means_t = self._tensor(means, "means", (c, d))
        if covs is None:
            chol = init_std * torch.eye(d, **kw).expand(c, d, d)
        else:
            covs_t = self._tensor(covs, "covs", (c, d, d))
            if not torch.allclose(covs_t, covs_t.transpose(-1, -2), rtol=1e-10, atol=1e-12):
                raise ValueError("covs must be symmetric")
            chol, info = torch.linalg.cholesky_ex(covs_t)
            if bool((info != 0).any()):
                raise ValueError("covs must be positive definite")
        if weights is None:
            logits = torch.zeros(c, **kw)
        else:
            w = self._tensor(weights, "weights", (c,))
            if bool((w <= 0).any()) or abs(float(w.sum()) - 1.0) > 1e-6:
                raise ValueError(f"weights must be positive and sum to 1, got {w.tolist()}")
            logits = torch.log(w)
        self.logits = nn.Parameter(logits.to(**kw))
        self.means = nn.Parameter(means_t.to(**kw))
        self.chol_lower = nn.Parameter(torch.tril(chol, diagonal=-1).to(**kw).clone())
        self.chol_log_diag = nn.Parameter(torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).to(**kw).clone())

    def _tensor(self, value, name: str, shape: tuple) -> torch.Tensor:
        t = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        if t.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (C, d = components, dim), got {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
        return t

    # -- derived quantities -----------------------------------------------------------------------
    @property
    def weights(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=0)

    @property
    def chol(self) -> torch.Tensor:
        """L_q = strict lower part + diag(exp(raw)): ``[C, d, d]``."""
        return torch.tril(self.chol_lower, diagonal=-1) + torch.diag_embed(torch.exp(self.chol_log_diag))

    @property
    def covs(self) -> torch.Tensor:
        chol = self.chol
        return chol @ chol.transpose(-1, -2)

    @property
    def reference(self) -> GaussianMixture:
        return self

    # -- sampling ---------------------------------------------------------------------------------
    def _sample(self, m, generator, r):
        if self.antithetic and m % 2:
            raise ValueError(f"num_features must be even for an antithetic mixture (pairs ±μ_q), got {m}")
        n = m // 2 if self.antithetic else m
        dev = generator.device
        cdf_inner = torch.cumsum(self.weights.detach().to(dev, torch.float64), 0)[:-1]
        q = torch.searchsorted(
            cdf_inner, torch.rand((r, n), generator=generator, dtype=torch.float64, device=dev), right=True
        )
        q = q.to(self.device)
        eps = self._normal((r, n, self.dim), generator)
        all_noise = torch.einsum("cij,rnj->rnci", self.chol, eps)  # L_c ε for every component c
        noise = torch.gather(all_noise, 2, q[:, :, None, None].expand(r, n, 1, self.dim)).squeeze(2)
        mu = self.means[q]
        if not self.antithetic:
            return mu + noise
        return torch.stack((mu + noise, -mu + noise), dim=2).reshape(r, m, self.dim)

    # -- closed forms -----------------------------------------------------------------------------
    def _quad(self, t: torch.Tensor) -> torch.Tensor:
        """tᵀ Σ_q t = ‖L_qᵀ t‖² for every component: ``[..., C]``."""
        return torch.einsum("cji,...j->...ci", self.chol, t).pow(2).sum(-1)

    def char_fn(self, tau):
        tau = self._check_arg(tau, "tau").to(self.dtype)
        return spectral_mixture_from_tau(tau, self.weights, self.means, self.covs)  # the one implementation

    def log_mgf(self, z):
        z = self._check_arg(z, "z").to(self.dtype)
        a = z @ self.means.T
        if self.antithetic:
            a = torch.logaddexp(a, -a) - math.log(2.0)  # log cosh(a)
        return torch.logsumexp(torch.log_softmax(self.logits, 0) + a + 0.5 * self._quad(z), dim=-1)

    def mgf(self, z):
        return torch.exp(self.log_mgf(z))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, components={self.components}, antithetic={self.antithetic}"
