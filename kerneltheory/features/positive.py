r"""Positive random features (FAVOR+; Choromanski et al. 2021, "Rethinking Attention with Performers", Lemma 1).

.. math::
    \varphi(x) = m^{-1/2}\, h(x)\, [\exp(\omega_1^\top x), \dots, \exp(\omega_m^\top x)]

For any law with moment generating function M, E[φ(x)ᵀφ(y)] = h(x)h(y) M(x + y) (proofs/positive_unbiased.md).
With h(x) = exp(−‖x‖²/2) (``h="softmax"``, the default) and ω ~ N(0, I) this is SM(x, y) = exp(xᵀy); with
h(x) = exp(−‖x‖²) (``h="gaussian"``) it is the Gaussian kernel K_1 (the form the KL-Transformer code uses
for GMM-PRF). Every feature is strictly positive (proofs/positivity.md).

The features are evaluated in log space, log φ_i = ω_iᵀx + log h(x) − ½ log m, so they are finite wherever the
true value is representable. The per-query and shared per-key stabilisers of MATH.md §5 act on these logs.
"""

from __future__ import annotations

import math

import torch

from .. import theory
from .._validation import pairwise
from ..spectral.base import SpectralLaw
from .base import Component, project, sq_norm, unit_sign

_H = {"softmax": 0.5, "gaussian": 1.0}  # h(x) = exp(−c‖x‖²)


class Positive(Component):
    """h(x)·exp(ωᵀx)/√m with h(x) = exp(−‖x‖²/2) (``h="softmax"``) or exp(−‖x‖²) (``h="gaussian"``)."""

    name = "positive"
    positive = True
    proofs = {
        "unbiased": "proofs/positive_unbiased.md",
        "positive": "proofs/positivity.md",
        "variance": "proofs/positive_variance.md",
    }

    def __init__(self, h: str = "softmax"):
        super().__init__()
        if h not in _H:
            raise ValueError(f"h must be one of {sorted(_H)}, got {h!r}")
        self.h = h

    def log_h(self, x: torch.Tensor) -> torch.Tensor:
        """log h(x), shape ``[..., n, 1]``."""
        return -_H[self.h] * sq_norm(x)

    def log_features(self, x, w, extra, stats, side):
        # one pass over the [.., n, m] projections: the per-row constant log h(x) − log √m is added in place
        logs = project(x, w).add_(self.log_h(x) - 0.5 * math.log(w.shape[-2]))
        return logs, unit_sign(logs)

    def features(self, x, w, extra, stats, side):
        return torch.exp(self.log_features(x, w, extra, stats, side)[0])

    def _log_hh(self, x, y):
        return self.log_h(x) + self.log_h(y).transpose(-1, -2)

    def target(self, law: SpectralLaw, x, y, stats):
        return torch.exp(self._log_hh(x, y) + law.log_mgf(pairwise(x, y)))

    def target_name(self, law) -> str:
        ref = law.reference if law is not None else None
        if ref is not None and getattr(ref, "isotropic", False) and ref.std == 1.0:
            return "softmax exp(xᵀy)" if self.h == "softmax" else "Gaussian exp(−‖x−y‖²/2)"
        return f"h(x)h(y)·M(x+y), h = {self.h}"

    def has_variance(self, law) -> bool:
        if law is None:
            return False
        return (law.iid_rows and law.reference is law) or (self.h == "softmax" and _is_chi_orf(law, std=1.0))

    def variance(self, law, x, y, num_features, stats):
        if not law.iid_rows:  # ORF with χ_d norms (has_variance): the exact series, proofs/orthogonal_variance.md
            return theory.orf_positive_variance(x[..., :, None, :], y[..., None, :, :], num_features)
        z = pairwise(x, y)
        log_hh = self._log_hh(x, y)
        return theory.positive_variance(log_hh, law.log_mgf(z), law.log_mgf(2.0 * z), num_features)


def _is_chi_orf(law, std: float | None = None) -> bool:
    """ORF frequencies with independent χ_d norms (the law of theory.orf_*_variance), of scale ``std`` if given."""
    from ..spectral.orthogonal import Orthogonal

    return type(law) is Orthogonal and law.scaling == "chi" and (std is None or law.std == std)
