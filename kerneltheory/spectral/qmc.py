r"""Quasi-Monte Carlo frequencies: ω_i = std·Φ⁻¹(t_i) for a randomised low-discrepancy point set.

Construction (Yang, Sindhwani, Avron & Mahoney 2014, "Quasi-Monte Carlo Feature Maps for Shift-Invariant
Kernels"): t_1..t_m ∈ [0, 1)^d are the first m points of a Sobol' (default) or Halton sequence in d
dimensions, scrambled afresh on every draw (Owen scrambling with a digital shift for Sobol', random digit
permutations for Halton; scipy.stats.qmc), and Φ⁻¹ is applied coordinatewise:

.. math::
    \omega_i = \sigma\, \Phi^{-1}(t_i'), \qquad
    t' = \frac{\lfloor t\, 2^{32} \rfloor + (k + 1/2)/2^{21}}{2^{32}}, \quad k \sim \mathrm{U}\{0, \dots, 2^{21} - 1\}.

Never an infinite coordinate: the points lie on a grid of 2^32 cells (Sobol' points are generated with 32
bits); each scrambled point is moved to an independent uniformly random position inside its cell, on the
centred grid of 2^53 points. The point keeps its cell, so the net's stratification is untouched, and
t' ∈ (0, 1) strictly, with Φ⁻¹(t') evaluated exactly (:meth:`QuasiMonteCarlo.jittered_ppf`) and
|ω_l| ≤ σ·Φ⁻¹(1 − 2^{-54}) ≈ 8.29σ, where an inverse-CDF sampler fed 53-bit uniforms ends too. The truncated
tail (mass 2^{-54} ≈ 5.6·10⁻¹⁷ per side) biases the MGF by a relative amount of at most Φ̄(8.29 − σ|z_l|) per
coordinate (≤ 1.6·10⁻¹⁰ at σ|z_l| = 2, ≤ 6·10⁻⁸ at 3; proofs/qmc.md computes the exact values). Without
scrambling the point is put at its cell's centre (deterministic), |ω_l| ≤ 6.34σ.

Row law (proofs/qmc.md). With ``scramble=True`` each point of a scrambled net is marginally uniform (the
digital shift alone makes a Sobol' point uniform on the 2^32 grid; independent random digit permutations make
a Halton point uniform to double precision), so each row is, up to the grid above, marginally N(0, σ² I):
``row_marginal = "exact"``. This is a finding against the remark in MATH.md §3 ("not unbiased per draw unless
randomised"): scrambling *is* the randomisation, and the estimators are unbiased; the points of one set remain
dependent (``iid_rows = False``), which is where the variance reduction comes from. With ``scramble=False``
the set is deterministic (all draws equal) and the estimators are only consistent: ``row_marginal = "no"``.

Batching: scipy generates one point set at a time, so this law (alone) loops over the R draws in Python; each
draw's scramble is seeded by an integer drawn from the torch generator.

Example:
    >>> import torch
    >>> from kerneltheory.spectral import QuasiMonteCarlo
    >>> QuasiMonteCarlo(2).sample(8, torch.Generator().manual_seed(0), batch=3).shape
    torch.Size([3, 8, 2])
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.special import ndtri
from scipy.stats import qmc as scipy_qmc

from .gaussian import GaussianApproximation

GRID_BITS = 32
JITTER_BITS = 21  # 32 + 21 = 53: positions inside a cell on the grid float64 represents exactly
_SOBOL_MAX_DIM = 21201


class QuasiMonteCarlo(GaussianApproximation):
    """ω_i = std·Φ⁻¹(t_i') for a scrambled (default) Sobol' or Halton set, snapped to a 2^32-cell grid."""

    name = "qmc"
    row_marginal = "exact"
    rows_marginally_gaussian = False  # a grid-discretised Gaussian, truncated at ≈ 8.29σ (6.34σ unscrambled)
    iid_rows = False
    proof = "proofs/qmc.md"

    def __init__(
        self,
        dim: int,
        *,
        std: float = 1.0,
        sequence: str = "sobol",
        scramble: bool = True,
        dtype=torch.float64,
        device=None,
    ):
        super().__init__(dim, std=std, dtype=dtype, device=device)
        if sequence not in ("sobol", "halton"):
            raise ValueError(f"sequence must be 'sobol' or 'halton', got {sequence!r}")
        if sequence == "sobol" and self.dim > _SOBOL_MAX_DIM:
            raise ValueError(f"dim must be <= {_SOBOL_MAX_DIM} for sequence='sobol', got {self.dim}")
        if not isinstance(scramble, bool):
            raise TypeError(f"scramble must be a bool, got {type(scramble).__name__}")
        self.sequence = sequence
        self.scramble = scramble
        if not scramble:
            self.row_marginal = "no"

    def _points(self, m: int, seed: int | None) -> np.ndarray:
        """The first m points of the (scrambled) sequence in [0, 1)^d, as float64 ``[m, d]``."""
        if self.sequence == "sobol":
            engine = scipy_qmc.Sobol(self.dim, scramble=self.scramble, bits=GRID_BITS, rng=seed)
        else:
            engine = scipy_qmc.Halton(self.dim, scramble=self.scramble, rng=seed)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The balance properties of Sobol", category=UserWarning)
            return engine.random(m)

    @staticmethod
    def snap(t: np.ndarray, offset: np.ndarray | float = 0.5) -> np.ndarray:
        """(⌊t·2^32⌋ + offset)/2^32 ∈ (0, 1), t ∈ [0, 1] (t = 1: the last cell), offset ∈ (0, 1): the cell centre
        by default, or a random position inside t's dyadic cell."""
        cells = float(2**GRID_BITS)
        return (np.minimum(np.floor(t * cells), cells - 1.0) + offset) / cells

    @staticmethod
    def jittered_ppf(t: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Φ⁻¹((J + ½)·2^{−53}) with J = ⌊t·2^32⌋·2^21 + k ∈ {0, …, 2^53 − 1}, evaluated without rounding.

        J is formed in int64. Below ½ (J < 2^52) the argument (J + ½)·2^{−53} is an exact float64; above, the sum
        would need 54 bits (and the top node would round to 1, Φ⁻¹ = +∞), so the symmetry Φ⁻¹(1 − u) = −Φ⁻¹(u)
        is used with the exact u = (2^53 − 1 − J + ½)·2^{−53}. The result is finite, |Φ⁻¹| ≤ 8.29.
        """
        cells = np.minimum(np.floor(np.asarray(t) * 2.0**GRID_BITS), 2.0**GRID_BITS - 1).astype(np.int64)
        j = cells * 2**JITTER_BITS + np.asarray(k, dtype=np.int64)
        lower = j < 2 ** (GRID_BITS + JITTER_BITS - 1)
        u = (np.where(lower, j, 2 ** (GRID_BITS + JITTER_BITS) - 1 - j).astype(np.float64) + 0.5) * 2.0 ** -(
            GRID_BITS + JITTER_BITS
        )
        return np.where(lower, ndtri(u), -ndtri(u))

    def _sample(self, m, generator, r):
        if self.scramble:
            seeds = torch.randint(0, 2**62, (r,), generator=generator).tolist()
            t = np.stack([self._points(m, seed) for seed in seeds])
            k = torch.randint(0, 2**JITTER_BITS, (r, m, self.dim), generator=generator, dtype=torch.int64)
            omega = self.std * self.jittered_ppf(t, k.numpy())
        else:
            omega = self.std * ndtri(self.snap(np.broadcast_to(self._points(m, None), (r, m, self.dim))))
        return torch.from_numpy(np.ascontiguousarray(omega)).to(self.device, self.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, std={self.std}, sequence={self.sequence!r}, scramble={self.scramble}"
