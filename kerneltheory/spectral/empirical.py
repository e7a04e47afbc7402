"""The empirical law of drawn frequency rows: the transforms a component's target is written in, averaged over rows.

A law without closed forms (a learned Fastfood or generative law) defines its kernel as K(x, y) = E g(ω; x, y), the
component's single-row term averaged over the law (proofs/monte_carlo_reference.md). Each component writes its target
through the law's transforms — Re ψ(τ) = E cos ωᵀτ, M(z) = E exp ωᵀz, and the tilted E[e^{a‖ω‖²} e^{ωᵀz}],
E[e^{a‖ω‖²} cos ωᵀτ] — so the same formula evaluated with the *empirical* transforms of one draw's m rows is
(1/m) Σ_i g(ω_i; x, y): the estimate a correct feature map gives for that draw, computed without the features.
Its mean over draws is K, and it serves as a reference that a feature map which is wrong in every draw does not
share (:meth:`kerneltheory.estimators.RandomFeatureEstimator.reference_kernel`).

The transforms return the draw axis first: rows ``omega`` of shape ``[R, m, d]`` and an argument ``[..., d]`` give
``[R, ...]``, which broadcasts against the target formula's other factors (shaped ``[...]``).
"""

from __future__ import annotations

import math

import torch

CHUNK = 1 << 22  # elements of one [R, ..., m] block of ωᵀz evaluated at once


class EmpiricalLaw:
    """The empirical law of each of R draws of m frequency rows (``omega`` ``[R, m, d]``): the transforms the
    components' targets read, one value per draw along a leading axis."""

    name = "empirical"
    iid_rows = True
    isotropic = False

    def __init__(self, omega: torch.Tensor):
        if omega.dim() != 3 or min(omega.shape) == 0:
            raise ValueError(f"omega must have shape [R, m, d] with R, m, d >= 1, got {tuple(omega.shape)}")
        self.omega = omega
        self.dim = omega.shape[-1]
        self.reference = self

    def _rows(self, arg: torch.Tensor):
        """(projections ωᵀarg ``[R, ..., m]`` in chunks of draws, each with its slice of draws)."""
        flat = arg.reshape(-1, self.dim).to(self.omega.dtype)
        per_draw = flat.shape[0] * self.omega.shape[1]
        step = max(1, CHUNK // max(per_draw, 1))
        for r0 in range(0, self.omega.shape[0], step):
            w = self.omega[r0:r0 + step]  # [c, m, d]
            yield w, torch.einsum("nd,cmd->cnm", flat, w)

    def _reduce(self, arg: torch.Tensor, per_row) -> torch.Tensor:
        """``[R, *arg.shape[:-1]]``: per draw, the mean over its m rows of ``per_row(w, ωᵀarg)``."""
        out = [per_row(w, proj).mean(-1) for w, proj in self._rows(arg)]
        return torch.cat(out).reshape(self.omega.shape[0], *arg.shape[:-1])

    def _log_reduce(self, arg: torch.Tensor, log_per_row) -> torch.Tensor:
        """As :meth:`_reduce` for log E exp(·): log-mean-exp over the rows (no overflow before the log)."""
        m = self.omega.shape[1]
        out = [torch.logsumexp(log_per_row(w, proj), -1) - math.log(m) for w, proj in self._rows(arg)]
        return torch.cat(out).reshape(self.omega.shape[0], *arg.shape[:-1])

    def char_fn(self, tau: torch.Tensor) -> torch.Tensor:
        """Re ψ̂(τ) = (1/m) Σ_i cos ω_iᵀτ per draw."""
        return self._reduce(tau, lambda w, proj: torch.cos(proj))

    def log_mgf(self, z: torch.Tensor) -> torch.Tensor:
        """log M̂(z) = log (1/m) Σ_i exp ω_iᵀz per draw."""
        return self._log_reduce(z, lambda w, proj: proj)

    def mgf(self, z: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_mgf(z))

    def log_tilted_mgf(self, a: float, z: torch.Tensor) -> torch.Tensor:
        """log (1/m) Σ_i exp(a‖ω_i‖² + ω_iᵀz) per draw."""
        return self._log_reduce(z, lambda w, proj: proj + a * (w * w).sum(-1)[:, None, :])

    def tilted_mgf(self, a: float, z: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_tilted_mgf(a, z))

    def tilted_char_fn(self, a: float, tau: torch.Tensor) -> torch.Tensor:
        """(1/m) Σ_i exp(a‖ω_i‖²) cos ω_iᵀτ per draw."""
        return self._reduce(tau, lambda w, proj: torch.exp(a * (w * w).sum(-1))[:, None, :] * torch.cos(proj))
