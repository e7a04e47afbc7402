r"""Hyperbolic positive random features (Choromanski et al. 2021, "Rethinking Attention with Performers",
Lemma 2, the antithetic form of FAVOR+).

.. math::
    \varphi(x) = (2m)^{-1/2}\, h(x)\, [e^{\omega_1^\top x}, \dots, e^{\omega_m^\top x},
                                       e^{-\omega_1^\top x}, \dots, e^{-\omega_m^\top x}]

so φ(x)ᵀφ(y) = h(x)h(y)·(1/m) Σ_i cosh(ω_iᵀz), z = x + y, and for any law with moment generating function M,
E[φ(x)ᵀφ(y)] = h(x)h(y)·(M(z) + M(−z))/2 (proofs/positive_unbiased.md). For a symmetric law (ω ~ −ω, e.g.
N(0, I)) this is h(x)h(y)M(z): SM with h(x) = exp(−‖x‖²/2), K_1 with h(x) = exp(−‖x‖²), exactly as for
:class:`~kerneltheory.features.positive.Positive`, whose h it shares. The variance for SM is
½(1 − exp(−‖z‖²)) times the positive one (MATH.md §4, proofs/positive_variance.md): never larger.

Every feature is strictly positive (proofs/positivity.md); features are evaluated in log space,
log φ = ±ωᵀx + log h(x) − ½ log 2m, so they are finite wherever the true value is representable.
"""

from __future__ import annotations

import math

import torch

from .. import theory
from .._validation import pairwise
from ..spectral.base import SpectralLaw
from .base import project, unit_sign
from .positive import Positive
from .trig import centred_gaussian


class Hyperbolic(Positive):
    """h(x)(2m)^{−1/2}[exp(ωᵀx), exp(−ωᵀx)]; ``h`` as for :class:`Positive` (``"softmax"``/``"gaussian"``)."""

    name = "hyperbolic"
    positive = True
    proofs = {
        "unbiased": "proofs/positive_unbiased.md",
        "positive": "proofs/positivity.md",
        "variance": "proofs/positive_variance.md",
    }

    def feature_dim(self, num_features: int) -> int:
        return 2 * num_features

    def log_features(self, x, w, extra, stats, side):
        u = project(x, w)
        logs = torch.cat([u, -u], dim=-1) + self.log_h(x) - 0.5 * math.log(2 * w.shape[-2])
        return logs, unit_sign(logs)

    def target(self, law: SpectralLaw, x, y, stats):
        z = pairwise(x, y)
        log_cosh_mean = torch.logaddexp(law.log_mgf(z), law.log_mgf(-z)) - math.log(2.0)
        return torch.exp(self._log_hh(x, y) + log_cosh_mean)

    def target_name(self, law) -> str:
        ref = law.reference if law is not None else None
        if ref is not None and getattr(ref, "isotropic", False) and ref.std == 1.0:
            return "softmax exp(xᵀy)" if self.h == "softmax" else "Gaussian exp(−‖x−y‖²/2)"
        return f"h(x)h(y)·(M(x+y) + M(−x−y))/2, h = {self.h}"

    def has_variance(self, law) -> bool:
        return law is not None and law.iid_rows and law.reference is law

    def variance(self, law, x, y, num_features, stats):
        z = pairwise(x, y)
        if centred_gaussian(law):  # the stable closed form (the general one cancels as z → 0)
            q, lhh = law.quadratic(z, z), self._log_hh(x, y)
            return theory.gaussian_hyperbolic_covariance(lhh, lhh, q, q, q, num_features)
        return theory.hyperbolic_variance(
            self._log_hh(x, y),
            law.log_mgf(z),
            law.log_mgf(-z),
            law.log_mgf(2.0 * z),
            law.log_mgf(-2.0 * z),
            num_features,
        )
