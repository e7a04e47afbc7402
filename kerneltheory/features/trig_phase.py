r"""Trigonometric features with a random phase (Rahimi & Recht 2007, "Random Features for Large-Scale Kernel
Machines", the map z_ω(x) = √2 cos(ωᵀx + b) of §3).

.. math::
    \varphi(x) = \sqrt{2/m}\,[\cos(\omega_1^\top x + b_1), \dots, \cos(\omega_m^\top x + b_m)],
    \qquad b_i \sim U[0, 2\pi) \text{ iid, independent of } W.

Since 2 cos(u + b) cos(v + b) = cos(u − v) + cos(u + v + 2b) and E_b cos(c + 2b) = 0 for every c,
E[φ(x)ᵀφ(y)] = Re ψ(x − y) for any law with characteristic function ψ (proofs/trig_unbiased.md): the
stationary kernel itself, with no softmax weight (K_σ for ω ~ N(0, σ⁻² I)). One feature per frequency
(D = m), against two for the paired map; its variance (1 + Re ψ(2τ)/2 − Re ψ(τ)²)/D (proofs/trig_variance.md)
is never smaller than the paired map's for the Gaussian kernel at equal D (MATH.md §4).

Features are bounded, |φ(x)ᵀφ(y)| ≤ 2, and not positive.

Example:
    >>> import torch
    >>> from kerneltheory.features import TrigPhase, draw_feature_map
    >>> from kerneltheory.spectral import Gaussian
    >>> fm = draw_feature_map(TrigPhase(), Gaussian(3), 16, torch.Generator().manual_seed(0), dim=3)
    >>> fm(torch.zeros(2, 3)).shape
    torch.Size([2, 16])
"""

from __future__ import annotations

import math

import torch

from .. import theory
from .._validation import pairwise
from ..spectral.base import SpectralLaw
from .base import Component, project


class TrigPhase(Component):
    """√(2/m) cos(ωᵀx + b), b ~ U[0, 2π): targets the stationary kernel Re ψ(x − y)."""

    name = "trig_phase"
    device_generator = True
    positive = False
    proofs = {"unbiased": "proofs/trig_unbiased.md", "variance": "proofs/trig_variance.md"}

    def draw_extra(self, num_features, generator, batch, dtype, device):
        """The phases b, ``[m]`` (or ``[batch, m]``), drawn on ``generator``'s device and then moved."""
        shape = (num_features,) if batch is None else (batch, num_features)
        b = 2.0 * math.pi * torch.rand(shape, generator=generator, dtype=torch.float64, device=generator.device)
        return {"phase": b.to(device=device if device is not None else "cpu", dtype=dtype)}

    def estimate_bound(self, x, y):
        """|φ(x)ᵀφ(y)| = (2/m)|Σ cos(ω_iᵀx + b_i) cos(ω_iᵀy + b_i)| ≤ 2."""
        return torch.full(x.shape[:-1], 2.0, dtype=x.dtype, device=x.device)

    def features(self, x, w, extra, stats, side):
        return torch.cos(project(x, w, extra["phase"])).mul_(math.sqrt(2.0 / w.shape[-2]))

    def log_features(self, x, w, extra, stats, side):
        c = torch.cos(project(x, w, extra["phase"]))
        return 0.5 * math.log(2.0 / w.shape[-2]) + torch.log(c.abs()), torch.sign(c)

    def target(self, law: SpectralLaw, x, y, stats):
        return law.char_fn(pairwise(x, y, -1.0))

    def target_name(self, law) -> str:
        ref = getattr(law, "reference", None)
        if ref is not None and getattr(ref, "isotropic", False):
            return f"Gaussian exp(−‖x−y‖²·{ref.std**2:g}/2)"
        return "Re ψ(x−y)"

    def has_variance(self, law) -> bool:
        return law is not None and law.iid_rows and law.reference is law

    def variance(self, law, x, y, num_features, stats):
        tau = pairwise(x, y, -1.0)
        return theory.trig_phase_variance(law.char_fn(tau), law.char_fn(2.0 * tau), num_features)
