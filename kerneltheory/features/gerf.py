r"""Generalized exponential random features and their data-adaptive members (Likhosherstov et al. 2022,
"Chefs' Random Tables: Non-Trigonometric Random Features", §3 eq. (7), Theorem 3.1, Theorem 4.1; Likhosherstov
et al. 2023, "Dense-Exponential Random Features: Sharp Positive Estimators of the Gaussian Kernel", SADERF).

GERF(A, s), ω ~ N(0, I), queries and keys:

.. math::
    f_1(\omega, x) = D e^{A\|\omega\|^2 + B\omega^\top x + C\|x\|^2}, \quad
    f_2(\omega, y) = D e^{A\|\omega\|^2 + sB\omega^\top y + C\|y\|^2}, \quad
    B = \sqrt{s(1-4A)},\ D = (1-4A)^{d/4},

C = −s/2 for the softmax target SM(x, y) = exp(xᵀy), C = −(s+1)/2 for K_1(x, y) = exp(−‖x−y‖²/2); A real
with 1 − 8A > 0 (finite variance). Unbiasedness is the tilted-MGF identity
E e^{a‖ω‖² + ωᵀu} = (1−2a)^{−d/2} e^{‖u‖²/(2(1−2a))} at a = 2A, u = B(x + sy): the D² and B² = s(1−4A) make
E f₁f₂ = e^{C(‖x‖²+‖y‖²) + s‖x+sy‖²/2}, which is SM or K_1 (proofs/gerf.md). So the target is *derived*
from the reference law's ``tilted_mgf``/``tilted_char_fn``, and it does not depend on A.

s = −1 makes B = iβ, β = √(1−4A), imaginary; the real part of f₁f₂ is estimated by the paired real map
D e^{A‖ω‖² + C‖x‖²}[cos βωᵀx, sin βωᵀx] (the same for keys: cos·cos + sin·sin = cos βωᵀ(x − y)), 2m
features in all (m for s = +1); both sides use one map, so GERF is symmetric. A = 0, s = +1 is FAVOR+
(:class:`Positive`); A = 0, s = −1 is the weighted trig map (:class:`Trig`); each feature is divided by √m.

OPRF (FAVOR++) is GERF(A*, +1) for SM with A* minimising the mean log second moment over the query/key pairs
of the sequence (:func:`kerneltheory.theory.oprf_optimal_a`, proofs/oprf.md). SADERF (FAVOR#) is OPRF on
(Ψx, Ψ⁻¹y) with the diagonal Ψ* of :func:`kerneltheory.theory.saderf_optimal_scales` (proofs/saderf.md);
(Ψx)ᵀ(Ψ⁻¹y) = xᵀy keeps the target SM. Both are data-dependent: bind the sequences first (``fm.bind(q, k)``).

For A < 0 (OPRF/SADERF whenever φ̄ > 0) the estimate is bounded, 0 < φ(x)ᵀφ(y) ≤ (1−4A)^{d/2}
exp(C(‖x‖²+‖y‖²) + (1−4A)‖x+y‖²/(8|A|)) (complete the square in ω; :meth:`GERF.estimate_bound`, proofs/oprf.md
item 5), so their means get the exact finite-sample (Hoeffding / empirical-Bernstein) tests.

Features are evaluated in log space (A ≤ 0 for OPRF/SADERF), finite wherever the true value is
representable; for s = +1 they are strictly positive in exact arithmetic (proofs/positivity.md), and in
floating point wherever log φ exceeds the log of the smallest subnormal (≈ −103.3 in float32, −744.4 in
float64). OPRF's A* is very negative for long input norms (A* ≈ −φ̄/(4d) for φ̄ ≫ d), so float32 features
of norm-10 inputs can underflow to 0 while log φ stays finite.
"""

from __future__ import annotations

import math

import torch

from .. import theory
from .._validation import pairwise
from ..spectral.base import ClosedFormUnavailable, SpectralLaw
from ._laws import standard_gaussian_reference
from .base import Component, IncompatibleLaw, project, sq_norm, unit_sign

_C = {"softmax": lambda s: -s / 2.0, "gaussian": lambda s: -(s + 1) / 2.0}


class GERF(Component):
    """GERF(A, s) for the softmax (``target="softmax"``) or Gaussian K_1 (``target="gaussian"``) kernel."""

    name = "gerf"
    proofs = {"unbiased": "proofs/gerf.md", "positive": "proofs/positivity.md", "variance": "proofs/gerf.md"}

    def __init__(self, a: float = 0.0, s: int = 1, target: str = "softmax"):
        super().__init__()
        if isinstance(s, bool) or s not in (1, -1):
            raise ValueError(f"s must be +1 or -1, got {s!r}")
        if target not in _C:
            raise ValueError(f"target must be one of {sorted(_C)}, got {target!r}")
        self.a = theory.check_gerf_a(a, "a")
        self.s = int(s)
        self.kernel = target
        self.c = _C[target](self.s)

    @property
    def positive(self) -> bool:  # an instance property: only s = +1 gives real positive features
        return self.s == 1

    def feature_dim(self, num_features: int) -> int:
        return num_features if self.s == 1 else 2 * num_features

    def check_law(self, law: SpectralLaw | None) -> None:
        super().check_law(law)
        if law.reference is not None and not standard_gaussian_reference(law):
            raise IncompatibleLaw(
                f"the {self.name} component needs frequencies whose reference law is the standard Gaussian "
                f"N(0, I) (its target comes from the tilted transforms of N(0, I)); the {law.name} law is not"
            )

    # -- hooks for the data-dependent members -------------------------------------------------------
    def _a(self, stats, like: torch.Tensor) -> torch.Tensor:
        """A as a tensor in the dtype of ``like``: a number for GERF, ``[..., 1, 1]`` for OPRF/SADERF."""
        return torch.as_tensor(self.a, dtype=like.dtype, device=like.device)

    def _transform(self, x: torch.Tensor, stats, side) -> torch.Tensor:
        """The input the map actually sees (identity; SADERF scales by Ψ or Ψ⁻¹)."""
        return x

    # -- features -----------------------------------------------------------------------------------
    def _log_parts(self, x, w, stats, side):
        x = self._transform(x, stats, side)
        a = self._a(stats, x)
        d, m = x.shape[-1], w.shape[-2]
        base = 0.25 * d * torch.log1p(-4 * a) + a * sq_norm(w).transpose(-1, -2) + self.c * sq_norm(x)
        # log(D e^{A‖ω‖²+C‖x‖²}/√m) and |B|ωᵀx
        return base - 0.5 * math.log(m), torch.sqrt(1 - 4 * a) * project(x, w)

    def log_features(self, x, w, extra, stats, side):
        base, u = self._log_parts(x, w, stats, side)
        if self.s == 1:
            logs = base + u
            return logs, unit_sign(logs)
        trig = torch.cat([torch.cos(u), torch.sin(u)], dim=-1)
        return torch.cat([base, base], dim=-1) + torch.log(trig.abs()), torch.sign(trig)

    def features(self, x, w, extra, stats, side):
        base, u = self._log_parts(x, w, stats, side)
        if self.s == 1:
            return torch.exp(base + u)
        return torch.exp(torch.cat([base, base], dim=-1)) * torch.cat([torch.cos(u), torch.sin(u)], dim=-1)

    # -- boundedness (proofs/oprf.md, item 5) ---------------------------------------------------------
    def estimate_bound(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        r"""B_p ≥ |φ(x_p)ᵀφ(y_p)| for every draw, for pairs ``x``, ``y`` ``[P, d]`` (for OPRF/SADERF A* and Ψ* are
        the statistics of the sequences x and y, as in ``sample_estimates``); float64 ``[P]``, or None where
        the estimate is unbounded (s = +1 with A ≥ 0 and some z ≠ 0) or the bound overflows.

        s = +1, A < 0 (complete the square in ω): each product f₁f₂ = D²e^{2A‖ω‖² + Bωᵀz + C(‖x‖²+‖y‖²)},
        z = x + y, is at most D² exp(C(‖x‖²+‖y‖²) + (1−4A)‖z‖²/(8|A|)), D² = (1−4A)^{d/2}; the estimate is their
        mean over the m frequencies, so the same bound holds (at A = 0, z = 0 it is the constant D²e^{C(…)}).
        s = −1, A ≤ 0: |D²e^{2A‖ω‖²+C(‖x‖²+‖y‖²)} cos βωᵀ(x − y)| ≤ D²e^{C(‖x‖²+‖y‖²)}. Proof: proofs/oprf.md.
        """
        stats = self.statistics(x, y)  # {} unless data-dependent
        xt = self._transform(x, stats, "query").to(torch.float64)
        yt = self._transform(y, stats, "key").to(torch.float64)
        a = self._a(stats, xt).reshape(-1)[0]  # one sequence: A* is [1, 1]
        log_d2 = 0.5 * x.shape[-1] * torch.log1p(-4 * a)
        log_bound = log_d2 + self.c * (sq_norm(xt) + sq_norm(yt))[..., 0]
        if self.s == 1:
            z2 = sq_norm(xt + yt)[..., 0]
            if float(a) < 0:
                log_bound = log_bound + (1 - 4 * a) * z2 / (-8 * a)
            elif float(a) > 0 or bool((z2 > 0).any()):
                return None
        elif float(a) > 0:
            return None
        bound = torch.exp(log_bound)
        return bound if bool(torch.isfinite(bound).all()) else None

    # -- theory -------------------------------------------------------------------------------------
    def _target_a(self, stats) -> float:
        return self.a

    def target(self, law: SpectralLaw, x, y, stats):
        """D² e^{C(‖x‖²+‖y‖²)} times E[e^{2A‖ω‖²} e^{Bωᵀ(x+y)}] (s = +1) or E[e^{2A‖ω‖²} cos βωᵀ(x−y)]
        (s = −1), from the reference law's tilted transforms."""
        if not hasattr(law, "log_tilted_mgf"):
            raise ClosedFormUnavailable(f"the {self.name} target needs the tilted transforms of N(0, I)")
        x, y = self._transform(x, stats, "query"), self._transform(y, stats, "key")
        a = self._target_a(stats)
        log_d2 = 0.5 * x.shape[-1] * math.log1p(-4 * a)
        log_pre = log_d2 + self.c * (sq_norm(x) + sq_norm(y).transpose(-1, -2))
        scale = math.sqrt(1 - 4 * a)
        if self.s == 1:
            return torch.exp(log_pre + law.log_tilted_mgf(2 * a, scale * pairwise(x, y)))
        if hasattr(law, "log_tilted_char_fn"):  # in logs: the two factors under- and overflowed in float32
            return torch.exp(log_pre + law.log_tilted_char_fn(2 * a, scale * pairwise(x, y, -1.0)))
        return torch.exp(log_pre) * law.tilted_char_fn(2 * a, scale * pairwise(x, y, -1.0))

    def target_name(self, law) -> str:
        return "softmax exp(xᵀy)" if self.kernel == "softmax" else "Gaussian exp(−‖x−y‖²/2)"

    def has_variance(self, law) -> bool:
        return law is not None and law.iid_rows and law.reference is law and standard_gaussian_reference(law)

    def variance(self, law, x, y, num_features, stats):
        x, y = self._transform(x, stats, "query"), self._transform(y, stats, "key")
        xp, yp = x.unsqueeze(-2), y.unsqueeze(-3)
        log_k = (xp * yp).sum(-1) if self.kernel == "softmax" else -0.5 * ((xp - yp) ** 2).sum(-1)
        return theory.gerf_variance(xp, yp, self._a(stats, x), self.s, self.c, num_features, log_k)


class OPRF(GERF):
    """FAVOR++: GERF(A*, +1) for SM, A* from the bound query and key sequences (shared by both sides)."""

    name = "oprf"
    data_dependent = True
    pairwise_statistics = True  # A* [1, 1], SADERF's ψ* [1, d]: both broadcast along the inputs
    proofs = {"unbiased": "proofs/gerf.md", "positive": "proofs/positivity.md", "variance": "proofs/oprf.md"}

    def __init__(self):
        super().__init__(a=0.0, s=1, target="softmax")

    def statistics(self, x, y):
        """{"a": A*} of shape ``[..., 1, 1]`` (float64) from φ̄ over the sequence dimension −2 of x and y."""
        return {"a": theory.oprf_optimal_a(theory.oprf_phi_bar(x.double(), y.double()), x.shape[-1])}

    def _a(self, stats, like):
        if "a" not in stats:
            raise ValueError(f"the {self.name} map is data-dependent: bind the query and key sequences first")
        return stats["a"].to(device=like.device, dtype=like.dtype)

    def _target_a(self, stats) -> float:
        # E f₁f₂ does not depend on A (the tilted-MGF identity in the module docstring, proofs/gerf.md), so
        # the target is the GERF target at A = 0 for every per-sequence A*.
        return 0.0


class SADERF(OPRF):
    """FAVOR#: OPRF on (Ψx, Ψ⁻¹y), Ψ* = diag((mean y_l² / mean x_l²)^{1/4}); queries and keys differ."""

    name = "saderf"
    symmetric = False
    proofs = {
        "unbiased": "proofs/saderf.md",
        "positive": "proofs/positivity.md",
        "variance": "proofs/saderf.md",
    }

    def statistics(self, x, y):
        """{"a": A* of (Ψ*x, Ψ*⁻¹y), "scale_query": ψ*, "scale_key": 1/ψ*} (float64; 0 on zero columns)."""
        sq, sk = theory.saderf_optimal_scales(x, y)
        phi_bar = theory.oprf_phi_bar(x.double() * sq, y.double() * sk)
        return {"a": theory.oprf_optimal_a(phi_bar, x.shape[-1]), "scale_query": sq, "scale_key": sk}

    def _transform(self, x, stats, side):
        key = "scale_query" if side == "query" else "scale_key"
        if key not in stats:
            raise ValueError(f"the {self.name} map is data-dependent: bind the query and key sequences first")
        scale = stats[key].to(x.device)
        return (x.to(scale.dtype) * scale).to(x.dtype)  # |ψ_l x_l| ≤ √n (a_l b_l)^{1/4}: representable
