r"""ReLU random features and their kernel, the arc-cosine kernel of degree 1 (Cho & Saul 2009, "Kernel Methods
for Deep Learning", eq. (1) and (6) with n = 1).

.. math::
    \varphi(x) = m^{-1/2}\,[\mathrm{relu}(\omega_1^\top x), \dots, \mathrm{relu}(\omega_m^\top x)], \qquad
    \mathbb E\,\varphi(x)^\top\varphi(y)
        = \frac{\sigma^2}{2\pi}\,\|x\|\|y\|\,(\sin\theta + (\pi - \theta)\cos\theta)

for ω ~ N(0, σ² I), θ the angle between x and y (proofs/arccos.md). Cho & Saul's k₁ carries a factor 2 (their
eq. (1) has 2∫); :func:`arccos1` is the expectation itself, 0 when x = 0 or y = 0 (θ is undefined there but
the factor ‖x‖‖y‖ vanishes). The derivation needs only (ωᵀx, ωᵀy) jointly Gaussian with zero mean and
covariance σ²[[‖x‖², xᵀy], [xᵀy, ‖y‖²]], so the component accepts laws whose reference is an isotropic
zero-mean Gaussian (any σ) or that have no closed form (Monte Carlo reference).

Features are ≥ 0 but not strictly positive (relu(u) = 0 for u ≤ 0): the positivity claim is False.

:func:`arccos1` is :func:`kerneltheory.kernels.arccos1`, re-exported here beside the map it belongs to.
"""

from __future__ import annotations

import math

import torch

from ..kernels import arccos1
from ..spectral.base import SpectralLaw
from ._laws import isotropic_gaussian_reference
from .base import Component, IncompatibleLaw, project

__all__ = ["ReLU", "arccos1"]


class ReLU(Component):
    """m^{−1/2} relu(Wx): targets std²·arccos1(x, y) for ω ~ N(0, std² I)."""

    name = "relu"
    positive = False
    proofs = {"unbiased": "proofs/arccos.md"}

    def check_law(self, law: SpectralLaw | None) -> None:
        super().check_law(law)
        if law.reference is not None and not isotropic_gaussian_reference(law):
            raise IncompatibleLaw(
                f"the {self.name} component's kernel (arc-cosine) needs frequencies whose reference law is "
                f"an isotropic zero-mean Gaussian N(0, σ²I); the {law.name} law is not"
            )

    def features(self, x, w, extra, stats, side):
        return torch.relu(project(x, w)) / math.sqrt(w.shape[-2])

    def target(self, law: SpectralLaw, x, y, stats):
        if not isotropic_gaussian_reference(law):
            raise IncompatibleLaw(f"the {self.name} target needs an isotropic zero-mean Gaussian law")
        return arccos1(x, y, std=law.reference.std)

    def target_name(self, law) -> str:
        std = getattr(getattr(law, "reference", None), "std", 1.0)
        return "arc-cosine k₁(x,y)/2" if std == 1.0 else f"{std**2:g}·arc-cosine k₁(x,y)/2"
