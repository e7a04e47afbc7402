r"""Exact kernels as Gram-matrix callables: ``kernel(x, y)`` maps ``[..., n, d]``, ``[..., n', d]`` to ``[..., n, n']``.

These are the oracles the estimators are checked against (MATH.md §1). Each works with batch dimensions,
float32 and float64, on any device, and validates its inputs.

* :func:`softmax` — SM(x, y) = exp(xᵀy).
* :func:`gaussian` — K_σ(x, y) = exp(−‖x − y‖²/(2σ²)); spectral density N(0, σ⁻² I).
* :func:`spectral_mixture` — k(τ) = Σ_q w_q exp(−½τᵀΣ_qτ) cos(μ_qᵀτ), the kernel of the symmetrised mixture
  density Σ_q w_q ½[N(μ_q, Σ_q) + N(−μ_q, Σ_q)] (Wilson & Adams 2013; proofs/mixture_kernels.md).
* :func:`arccos1` — the arc-cosine kernel of degree 1 (Cho & Saul 2009; proofs/arccos.md), the kernel of ReLU features.
* :func:`positive_feature_kernel` — h(x)h(y)·M_p(x + y) for any law p with an MGF (proofs/positive_unbiased.md).

The identity SM(x, y) = exp(‖x‖²/2)·K_1(x, y)·exp(‖y‖²/2) links the first two (proofs/trig_unbiased.md).
"""

from __future__ import annotations

import math

import torch

from ._validation import check_points, check_real, check_same_dim, pairwise, representable


def _xy(x, y):
    x = check_points(x, "x")
    y = check_points(y, "y")
    check_same_dim(x, y)
    if x.dtype != y.dtype:
        raise ValueError(f"x and y must share a dtype, got {x.dtype} and {y.dtype}")
    return x, y


def _scaled_sqdist(x: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """‖(x_i − y_j)/σ‖² computed from differences (no catastrophic cancellation), ``[..., n, n']``; dividing
    before squaring keeps it free of inf/inf when ‖x − y‖² overflows but ‖x − y‖/σ does not."""
    diff = pairwise(x, y, -1.0) / sigma
    return (diff * diff).sum(-1)


def softmax(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SM(x, y) = exp(xᵀy)."""
    x, y = _xy(x, y)
    out = torch.exp(x @ y.transpose(-1, -2))
    representable(out, "the softmax kernel exp(xᵀy)", {"x": x, "y": y})
    return out


def gaussian(x: torch.Tensor, y: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """K_σ(x, y) = exp(−‖x − y‖²/(2σ²))."""
    x, y = _xy(x, y)
    fi = torch.finfo(x.dtype)
    sigma = check_real(sigma, "sigma", minimum=fi.tiny, maximum=fi.max)  # representable, and σ > 0
    return torch.exp(-0.5 * _scaled_sqdist(x, y, sigma))


def spectral_mixture_from_tau(tau: torch.Tensor, weights, means, covs) -> torch.Tensor:
    """k(τ) = Σ_q w_q exp(−½τᵀΣ_qτ) cos(μ_qᵀτ) for ``tau: [..., d]``, ``weights: [C]``, ``means: [C, d]``,
    ``covs: [C, d, d]``; returns ``[...]``. The one implementation of the formula (laws call it too)."""
    quad = torch.einsum("...i,qij,...j->...q", tau, covs, tau)
    return (weights * torch.exp(-0.5 * quad) * torch.cos(tau @ means.transpose(-1, -2))).sum(-1)


def _check_mixture(weights, means, covs, d, dtype, device):
    weights = torch.as_tensor(weights, dtype=dtype, device=device)
    means = torch.as_tensor(means, dtype=dtype, device=device)
    covs = torch.as_tensor(covs, dtype=dtype, device=device)
    if weights.dim() != 1:
        raise ValueError(f"weights must have shape [C], got {tuple(weights.shape)}")
    c = weights.shape[0]
    if means.shape != (c, d):
        raise ValueError(f"means must have shape [C, d] = [{c}, {d}], got {tuple(means.shape)}")
    if covs.shape != (c, d, d):
        raise ValueError(f"covs must have shape [C, d, d] = [{c}, {d}, {d}], got {tuple(covs.shape)}")
    if bool((weights < 0).any()) or not math.isclose(float(weights.sum()), 1.0, rel_tol=1e-9):
        raise ValueError("weights must be non-negative and sum to 1")
    if int(torch.linalg.cholesky_ex(covs)[1].abs().sum()) != 0:
        raise ValueError("every covariance in covs must be symmetric positive definite")
    return weights, means, covs


def spectral_mixture(x: torch.Tensor, y: torch.Tensor, weights, means, covs) -> torch.Tensor:
    """The spectral-mixture kernel Σ_q w_q exp(−½τᵀΣ_qτ) cos(μ_qᵀτ), τ = x − y, as a Gram matrix."""
    x, y = _xy(x, y)
    w, mu, cov = _check_mixture(weights, means, covs, x.shape[-1], x.dtype, x.device)
    out = spectral_mixture_from_tau(pairwise(x, y, -1.0), w, mu, cov)
    representable(out, "the spectral-mixture kernel", {"x": x, "y": y, "means": mu, "covs": cov})
    return out


def arccos1(x: torch.Tensor, y: torch.Tensor, std: float = 1.0) -> torch.Tensor:
    r"""Arc-cosine kernel of degree 1 for ω ~ N(0, std² I):

    k(x, y) = std² ‖x‖‖y‖ (sin θ + (π − θ) cos θ) / (2π), θ the angle between x and y (0 when x or y is 0),
    which equals E[relu(ωᵀx) relu(ωᵀy)].
    """
    x, y = _xy(x, y)
    std = check_real(std, "std", minimum=0.0, strict_min=True)
    nx = x.norm(dim=-1, keepdim=True)
    ny = y.norm(dim=-1, keepdim=True)
    prod = nx * ny.transpose(-1, -2)
    u = x / torch.where(nx > 0, nx, torch.ones_like(nx))
    w = y / torch.where(ny > 0, ny, torch.ones_like(ny))
    # δ = π − θ = 2·atan2(‖u + w‖, ‖u − w‖) from the distances themselves (not 2 ± 2cos θ): accurate to rounding
    # near θ = π, where J = sin δ − δ cos δ ≈ δ³/3 and arccos of the cosine lost every digit (824× at δ = 10⁻⁶)
    plus = torch.cdist(u, -w, compute_mode="donot_use_mm_for_euclid_dist")
    minus = torch.cdist(u, w, compute_mode="donot_use_mm_for_euclid_dist")
    # within the rounding of the normalisation (‖u + w‖ ≤ 4ε‖u − w‖) u and −w are one direction: δ = 0, as for
    # exactly opposite inputs (y = −c·x, whose kernel is 0, read ~ε³ instead, a target below every rounding floor)
    eps = torch.finfo(plus.dtype).eps
    delta = torch.where(plus <= 4 * eps * minus, torch.zeros_like(plus), 2 * torch.atan2(plus, minus))
    d2 = delta * delta
    # sin δ − δ cos δ = Σ_k (−1)^{k+1} 2k δ^{2k+1}/(2k+1)!, eight terms: below δ = 1 the first omitted one is under
    # 5·10⁻¹⁶ of the sum, where the direct form loses up to 3ε/δ² of it (proofs/arccos.md)
    series = torch.zeros_like(delta)
    for k in range(8, 0, -1):
        series = (-1) ** (k + 1) * 2 * k / math.factorial(2 * k + 1) + d2 * series
    j = torch.where(delta < 1.0, delta * d2 * series, torch.sin(delta) - delta * torch.cos(delta))
    k = std * std * prod * j / (2 * math.pi)
    out = torch.where(prod > 0, k, torch.zeros_like(k))
    representable(out, "the arc-cosine kernel std²‖x‖‖y‖J(θ)/(2π)", {"x": x, "y": y, "std": std})
    return out


def positive_feature_kernel(x: torch.Tensor, y: torch.Tensor, law, h: str = "softmax") -> torch.Tensor:
    """h(x)h(y)·M_p(x + y), the kernel of positive features h(x)exp(ωᵀx) for a law p with a closed-form MGF,
    with h(x) = exp(−‖x‖²/2) (``"softmax"``) or exp(−‖x‖²) (``"gaussian"``)."""
    from .features.positive import Positive

    x, y = _xy(x, y)
    out = Positive(h=h).target(law, x, y, {})
    representable(out, "the positive-feature kernel h(x)h(y)M_p(x + y)", {"x": x, "y": y})
    return out


KERNELS = {
    "softmax": softmax,
    "gaussian": gaussian,
    "arccos1": arccos1,
}


def get_kernel(name: str):
    """The exact kernel called ``name`` (one of :data:`KERNELS`)."""
    try:
        return KERNELS[name]
    except KeyError:
        raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {name!r}") from None


# -- polynomial kernels (Based, ReBased, TensorSketch, PolySketch; proofs/polynomial.md) ------------------------


def polynomial(x: torch.Tensor, y: torch.Tensor, degree: int = 2, c: float = 0.0) -> torch.Tensor:
    """The polynomial kernel (xᵀy + c)^p, p = ``degree`` ≥ 1, c ≥ 0 (Pham & Pagh 2013; Kacham et al. 2023,
    "PolySketchFormer", with c = 0)."""
    from ._validation import check_int

    x, y = _xy(x, y)
    p = check_int(degree, "degree", minimum=1)
    c = check_real(c, "c", minimum=0.0)
    return (x @ y.transpose(-1, -2) + c) ** p


def exp_taylor2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 + s + s²/2 with s = xᵀy, the second-order Taylor expansion of exp(s) (Arora et al. 2024, "Simple linear
    attention language models balance the recall-throughput tradeoff" (Based), §3). Equal to ((1 + s)² + 1)/2,
    so it is ≥ 1/2 for every input (proofs/polynomial.md, item 2)."""
    x, y = _xy(x, y)
    s = x @ y.transpose(-1, -2)
    return 1.0 + s + 0.5 * s * s


KERNELS.update({"polynomial": polynomial, "exp_taylor2": exp_taylor2})


# ---------------------------------------------------------------------------------------------------
# Combinators: a user's kernel built from the ones above (docs/auditing.md)
# ---------------------------------------------------------------------------------------------------


def _check_kernels(kernels, name: str) -> tuple:
    if not kernels:
        raise ValueError(f"{name} needs at least one kernel")
    for i, k in enumerate(kernels):
        if not callable(k):
            raise TypeError(f"{name}: kernel {i} must be a callable kernel(x, y), got {type(k).__name__}")
    return tuple(kernels)


def scaled(kernel, c: float):
    """c·k(x, y), c > 0 (a map that only claims proportionality estimates this for some c > 0; a multiple ≤ 0 of a
    kernel is not a kernel, and an error)."""
    (kernel,) = _check_kernels((kernel,), "scaled")
    c = check_real(c, "c", minimum=0.0, strict_min=True)
    return lambda x, y: c * kernel(x, y)


def shifted(kernel, c: float):
    """k(x, y) + c, c ≥ 0, e.g. the "+s²" of smoothed features φ̃(x) = [φ(x), s], whose products estimate k + s²
    (a constant c ≥ 0 is a kernel, and so is the sum; a negative c is an error)."""
    (kernel,) = _check_kernels((kernel,), "shifted")
    c = check_real(c, "c", minimum=0.0)
    return lambda x, y: kernel(x, y) + c


def input_scaled(kernel, s: float):
    """k(s·x, s·y), e.g. s = d^{-1/4} for the attention kernel exp(xᵀy/√d) = SM(x·d^{-1/4}, y·d^{-1/4})."""
    (kernel,) = _check_kernels((kernel,), "input_scaled")
    s = check_real(s, "s", minimum=0.0, strict_min=True)
    return lambda x, y: kernel(x * s, y * s)


def kernel_sum(*kernels):
    """Σ_i k_i(x, y) (the kernel of concatenated feature maps)."""
    ks = _check_kernels(kernels, "kernel_sum")
    return lambda x, y: sum(k(x, y) for k in ks)


def kernel_product(*kernels):
    """Π_i k_i(x, y) (the kernel of the tensor product of feature maps)."""
    ks = _check_kernels(kernels, "kernel_product")

    def product(x, y):
        out = ks[0](x, y)
        for k in ks[1:]:
            out = out * k(x, y)
        return out

    return product
