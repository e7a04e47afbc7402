r"""Trigonometric (Random Kitchen Sinks) features, paired cos/sin.

.. math::
    \varphi(x) = m^{-1/2}\, w(x)\,[\cos\omega_1^\top x, \dots, \cos\omega_m^\top x,
                                   \sin\omega_1^\top x, \dots, \sin\omega_m^\top x]

so that φ(x)ᵀφ(y) = w(x)w(y)·(1/m) Σ_i cos(ω_iᵀ(x − y)), whose expectation is w(x)w(y)·Re ψ(x − y) for any
law with characteristic function ψ (Bochner; Rahimi & Recht 2007, "Random Features for Large-Scale Kernel
Machines", eq. 2; proofs/trig_unbiased.md). With ``weighted=True``, w(x) = exp(‖x‖²/2) and ω ~ N(0, I), the
target is the softmax kernel SM(x, y) = exp(xᵀy) (MATH.md §1, the identity SM = e^{‖x‖²/2} K_1 e^{‖y‖²/2});
with ``weighted=False``, the target is the stationary kernel Re ψ(τ) itself (K_σ for N(0, σ⁻² I)).

The features are bounded: |φ(x)ᵀφ(y)| ≤ w(x)w(y), which the Hoeffding checks use. They are not positive.

Example:
    >>> import torch
    >>> from kerneltheory.estimators import get
    >>> est = get("trig/gaussian", dim=4, num_features=256)
    >>> fm = est.draw(torch.Generator().manual_seed(0))
    >>> fm(torch.zeros(2, 4)).shape
    torch.Size([2, 512])
"""

from __future__ import annotations

import math

import torch

from .. import theory
from .._validation import pairwise
from ..spectral.base import SpectralLaw
from .base import Component, project, sq_norm
from .positive import _is_chi_orf


class Trig(Component):
    """Paired trigonometric features; ``weighted=True`` targets softmax, ``False`` the stationary kernel."""

    name = "trig"
    positive = False
    proofs = {"unbiased": "proofs/trig_unbiased.md", "variance": "proofs/trig_variance.md"}

    def __init__(self, weighted: bool = True):
        super().__init__()
        if not isinstance(weighted, bool):
            raise TypeError(f"weighted must be a bool, got {type(weighted).__name__}")
        self.weighted = weighted

    def feature_dim(self, num_features: int) -> int:
        return 2 * num_features

    def log_weight(self, x: torch.Tensor) -> torch.Tensor:
        """log w(x): ‖x‖²/2 when weighted, else 0; shape ``[..., n, 1]``."""
        return 0.5 * sq_norm(x) if self.weighted else torch.zeros_like(x[..., :1])

    def features(self, x, w, extra, stats, side):
        u = project(x, w)
        scale = torch.exp(self.log_weight(x) - 0.5 * math.log(w.shape[-2]))
        return torch.cat([torch.cos(u), torch.sin(u)], dim=-1).mul_(scale)  # in place on a fresh tensor

    def log_features(self, x, w, extra, stats, side):
        u = project(x, w)
        trig = torch.cat([torch.cos(u), torch.sin(u)], dim=-1)
        log_scale = self.log_weight(x) - 0.5 * math.log(w.shape[-2])
        return log_scale + torch.log(trig.abs()), torch.sign(trig)

    def estimate_bound(self, x, y):
        """|φ(x)ᵀφ(y)| = w(x)w(y)·|(1/m) Σ cos ω_iᵀ(x − y)| ≤ w(x)w(y)."""
        return torch.exp(self.log_weight(x) + self.log_weight(y))[..., 0]

    def _log_weights(self, x, y):
        return self.log_weight(x) + self.log_weight(y).transpose(-1, -2)

    def target(self, law: SpectralLaw, x, y, stats):
        tau = pairwise(x, y, -1.0)
        if centred_gaussian(law):  # in logs: e^{‖x‖²/2} overflowed, or ψ underflowed, where SM is a float32 number
            return torch.exp(self._log_weights(x, y) + law.log_char_fn(tau))
        return torch.exp(self._log_weights(x, y)) * law.char_fn(tau)

    def target_name(self, law) -> str:
        if self.weighted and _is_standard_gaussian(law):
            return "softmax exp(xᵀy)"
        core = "Re ψ(x−y)"
        return f"exp((‖x‖²+‖y‖²)/2)·{core}" if self.weighted else core

    def has_variance(self, law) -> bool:
        return law is not None and ((law.iid_rows and law.reference is law) or _is_chi_orf(law))

    def variance(self, law, x, y, num_features, stats):
        if not law.iid_rows:  # ORF with χ_d norms (has_variance): the exact series, proofs/orthogonal_variance.md
            core = theory.orf_trig_variance(x[..., :, None, :], y[..., None, :, :], num_features, std=law.std)
            return core * torch.exp(2 * self._log_weights(x, y))
        tau = pairwise(x, y, -1.0)
        if centred_gaussian(law):  # the stable closed form (the general one cancels as x → y)
            q = law.quadratic(tau, tau)
            return theory.gaussian_trig_covariance(q, q, q, num_features, log_weight=self._log_weights(x, y))
        return theory.trig_paired_variance(
            law.char_fn(tau), law.char_fn(2.0 * tau), num_features, log_weight=self._log_weights(x, y)
        )


def centred_gaussian(law) -> bool:
    """Whether ``law`` is itself a centred Gaussian N(0, Σ) (not a law approximating one)."""
    from ..spectral.gaussian import Gaussian

    return isinstance(law, Gaussian) and law.centred


def _is_standard_gaussian(law) -> bool:
    ref = getattr(law, "reference", None)
    return ref is not None and getattr(ref, "isotropic", False) and getattr(ref, "std", None) == 1.0
