r"""Quasi-Monte Carlo frequencies: ω_i = std·Φ⁻¹(t_i) for a randomised low-discrepancy point set.

Construction (Yang, Sindhwani, Avron & Mahoney 2014, "Quasi-Monte Carlo Feature Maps for Shift-Invariant
Kernels"): t_1..t_m ∈ [0, 1)^d are the first m points of a Sobol' (default) or Halton sequence in d
dimensions, scrambled afresh on every draw (Matoušek's random linear matrix scramble with a digital shift for
Sobol', Owen's random digit permutations for Halton: the laws of scipy.stats.qmc's scrambles), and Φ⁻¹ is
applied coordinatewise:

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

Batching: the R draws of a call are scrambled together in a few array operations (no engine per draw): the
unscrambled points come from scipy once per (d, m) (cached), and the scrambles of all R draws are drawn from
the torch generator and applied at once (:func:`lms_shift`, :func:`halton_values`). The stream is fixed by
(generator state, m, d, R): the same seed gives the same bits.

Example:
    >>> import torch
    >>> from kerneltheory.spectral import QuasiMonteCarlo
    >>> QuasiMonteCarlo(2).sample(8, torch.Generator().manual_seed(0), batch=3).shape
    torch.Size([3, 8, 2])
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import torch
from scipy.special import ndtri
from scipy.stats import qmc as scipy_qmc

from .gaussian import GaussianApproximation

GRID_BITS = 32
JITTER_BITS = 21  # 32 + 21 = 53: positions inside a cell on the grid float64 represents exactly
_SOBOL_MAX_DIM = 21201


@functools.lru_cache(maxsize=64)
def _unscrambled(sequence: str, dim: int, m: int) -> np.ndarray:
    """The first m points of the plain sequence in [0, 1)^d, float64 ``[m, d]`` (read-only, cached)."""
    if sequence == "sobol":
        engine = scipy_qmc.Sobol(dim, scramble=False, bits=GRID_BITS)
    else:
        engine = scipy_qmc.Halton(dim, scramble=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The balance properties of Sobol", category=UserWarning)
        points = engine.random(m)
    points.setflags(write=False)
    return points


def _primes(count: int) -> list[int]:
    """The first ``count`` primes (the Halton bases)."""
    out: list[int] = []
    cand = 2
    while len(out) < count:
        if all(cand % p for p in out if p * p <= cand):
            out.append(cand)
        cand += 1
    return out


def halton_digit_count(base: int) -> int:
    """K_b = ⌈54/log₂b⌉ − 1: the digit positions permuted in base b (those with b^{−k} > 2^{−54}; Owen 2017)."""
    return math.ceil(54 / math.log2(base)) - 1


def lms_shift(
    x: torch.Tensor, columns: torch.Tensor, shift: torch.Tensor, used_bits: int = GRID_BITS
) -> torch.Tensor:
    r"""Matoušek's linear matrix scramble plus digital shift of 32-bit Sobol' words, for many draws at once.

    ``x``: int64 ``[m, d]``, the unscrambled points times 2^32. ``columns``: int64 ``[R, d, 32]``, column c
    (MSB-first digit c) of each lower-triangular unit-diagonal binary matrix L as a word: bit 31 − c set, the bits
    below it the entries L_{p,c}, p > c. ``shift``: int64 ``[R, d]``, the digital shift Δ. Returns int64
    ``[R, m, d]``: K = L(x) ⊕ Δ over GF(2), i.e. the XOR of the columns c whose digit x_c is 1, then ⊕ Δ.
    Only the top ``used_bits`` digits of x may be nonzero (the first 2^p Sobol' points use p digits).
    """
    out = shift[:, None, :].clone().expand(-1, x.shape[0], -1).contiguous()
    for c in range(used_bits):
        digit = (x >> (GRID_BITS - 1 - c)) & 1  # [m, d]
        out ^= digit[None] * columns[:, None, :, c]
    return out


def random_lms_columns(generator: torch.Generator, r: int, d: int) -> torch.Tensor:
    """Columns of R×d random matrices L: unit diagonal, iid fair bits below it (scipy's ``np.tril`` of fair bits
    with the diagonal set to 1), as words (:func:`lms_shift`)."""
    raw = torch.randint(0, 2**GRID_BITS, (r, d, GRID_BITS), generator=generator, dtype=torch.int64)
    top = torch.tensor([1 << (GRID_BITS - 1 - c) for c in range(GRID_BITS)], dtype=torch.int64)
    return top | (raw & (top - 1))


def random_permutations(
    generator: torch.Generator, rows: int, sizes: torch.Tensor, width: int
) -> torch.Tensor:
    """``[rows, width]`` int64: row i holds a uniform random permutation of 0..sizes[i]−1 (then the identity up to
    ``width``), by a Fisher–Yates shuffle run on all rows at once, each swap index exactly uniform."""
    perm = torch.arange(width, dtype=torch.int64)[:, None].repeat(1, rows)  # [width, rows]: rows contiguous
    for i in range(width - 1, 0, -1):
        j = torch.randint(0, i + 1, (1, rows), generator=generator, dtype=torch.int64)
        j = torch.where(sizes > i, j, i)
        pj = perm.gather(0, j)
        perm.scatter_(0, j, perm[i : i + 1].clone())
        perm[i] = pj[0]
    return perm.T


def halton_values(index: torch.Tensor, base: int, perms: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
    r"""Scrambled van der Corput values Σ_{k<K} π_k(a_k) b^{−k−1} of the indices ``index`` (int64 ``[m]``,
    digits a_k least significant first), for R draws; float64 ``[R, m]``.

    ``perms``: int64 ``[R, p, b]``, the permutations π_k of the first p digit positions, with every index < b^p;
    ``tail``: int64 ``[R, K − p]``, the values π_k(0) of the other positions (the indices' digits there are 0, so
    only π_k(0) enters, and for a uniform permutation it is uniform on {0..b−1}). Evaluated by Horner from the
    last digit: exact for b = 2, within a few 2^{−53} of the exact sum otherwise (proofs/qmc.md)."""
    p = perms.shape[1]
    value = torch.zeros(tail.shape[0], 1, dtype=torch.float64)
    for k in range(tail.shape[1] - 1, -1, -1):
        value = (tail[:, k : k + 1].to(torch.float64) + value) / base
    for k in range(p - 1, -1, -1):
        digit = (index // base**k) % base
        value = (perms[:, k, digit].to(torch.float64) + value) / base
    return value.expand(-1, index.shape[0])


def used_digits(m: int, base: int, count: int) -> int:
    """p = min(K_b, the fewest digits that write 0..m−1 in base b): positions ≥ p hold digit 0 for every point."""
    p = 0
    while base**p < m and p < count:
        p += 1
    return p


def cells_of(t: np.ndarray) -> np.ndarray:
    """K = min(⌊t·2^32⌋, 2^32 − 1) as int64, the 2^{−32}-cell of t ∈ [0, 1]."""
    return np.minimum(np.floor(np.asarray(t) * 2.0**GRID_BITS), 2.0**GRID_BITS - 1).astype(np.int64)


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

    def scrambled_cells(self, m: int, generator: torch.Generator, r: int) -> np.ndarray:
        """int64 ``[r, m, d]``: the 2^{−32}-cells K of the first m points of r independently scrambled sets.

        Sobol': K = L(x_i) ⊕ Δ with fresh L, Δ per draw and coordinate (:func:`lms_shift`). Halton: each
        coordinate's K_b digit positions permuted by fresh uniform permutations (:func:`halton_values`; of a
        position where every index has digit 0 only π(0) is drawn, uniform on {0..b−1}), then K = ⌊t·2^32⌋. The
        random stream: (L columns, Δ) for Sobol'; (permutations, the π(0) of the other positions) for Halton."""
        if self.sequence == "sobol":
            x = torch.from_numpy(
                np.asarray(_unscrambled("sobol", self.dim, m) * 2.0**GRID_BITS, dtype=np.int64)
            )
            columns = random_lms_columns(generator, r, self.dim)
            shift = torch.randint(0, 2**GRID_BITS, (r, self.dim), generator=generator, dtype=torch.int64)
            used = used_digits(m, 2, GRID_BITS)  # point i < 2^p has only its top p digits nonzero
            return lms_shift(x, columns, shift, used).numpy()
        bases = _primes(self.dim)
        counts = [halton_digit_count(b) for b in bases]
        used = [used_digits(m, b, c) for b, c in zip(bases, counts, strict=True)]
        sizes = torch.tensor(
            [b for b, p in zip(bases, used, strict=True) for _ in range(p)], dtype=torch.int64
        )
        perms = random_permutations(generator, r * len(sizes), sizes.repeat(r), max(bases))
        perms = perms.reshape(r, len(sizes), max(bases))
        tails = [
            torch.randint(0, b, (r, c - p), generator=generator, dtype=torch.int64)
            for b, c, p in zip(bases, counts, used, strict=True)
        ]
        index = torch.arange(m, dtype=torch.int64)
        t, start = np.empty((r, m, self.dim)), 0
        for col, (b, p) in enumerate(zip(bases, used, strict=True)):
            t[:, :, col] = halton_values(index, b, perms[:, start : start + p, :b], tails[col]).numpy()
            start += p
        return cells_of(t)

    @staticmethod
    def snap(t: np.ndarray, offset: np.ndarray | float = 0.5) -> np.ndarray:
        """(⌊t·2^32⌋ + offset)/2^32 ∈ (0, 1), t ∈ [0, 1] (t = 1: the last cell), offset ∈ (0, 1): the cell centre
        by default, or a random position inside t's dyadic cell."""
        cells = float(2**GRID_BITS)
        return (np.minimum(np.floor(t * cells), cells - 1.0) + offset) / cells

    @staticmethod
    def jittered_ppf(t: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Φ⁻¹((J + ½)·2^{−53}) with J = ⌊t·2^32⌋·2^21 + k ∈ {0, …, 2^53 − 1}, evaluated without rounding
        (:meth:`cell_ppf` on the cells of t)."""
        return QuasiMonteCarlo.cell_ppf(cells_of(t), k)

    @staticmethod
    def cell_ppf(cells: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Φ⁻¹((J + ½)·2^{−53}) with J = K·2^21 + k for int64 cells K ∈ {0, …, 2^32 − 1} and jitters k.

        J is formed in int64. Below ½ (J < 2^52) the argument (J + ½)·2^{−53} is an exact float64; above, the sum
        would need 54 bits (and the top node would round to 1, Φ⁻¹ = +∞), so the symmetry Φ⁻¹(1 − u) = −Φ⁻¹(u)
        is used with the exact u = (2^53 − 1 − J + ½)·2^{−53}. The result is finite, |Φ⁻¹| ≤ 8.29.
        """
        j = np.asarray(cells, dtype=np.int64) * 2**JITTER_BITS + np.asarray(k, dtype=np.int64)
        lower = j < 2 ** (GRID_BITS + JITTER_BITS - 1)
        u = (np.where(lower, j, 2 ** (GRID_BITS + JITTER_BITS) - 1 - j).astype(np.float64) + 0.5) * 2.0 ** -(
            GRID_BITS + JITTER_BITS
        )
        return np.where(lower, ndtri(u), -ndtri(u))

    def _sample(self, m, generator, r):
        if self.scramble:
            cells = self.scrambled_cells(m, generator, r)
            k = torch.randint(0, 2**JITTER_BITS, (r, m, self.dim), generator=generator, dtype=torch.int64)
            omega = self.std * self.cell_ppf(cells, k.numpy())
        else:
            points = _unscrambled(self.sequence, self.dim, m)
            omega = self.std * ndtri(self.snap(np.broadcast_to(points, (r, m, self.dim))))
        return torch.from_numpy(np.ascontiguousarray(omega)).to(self.device, self.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, std={self.std}, sequence={self.sequence!r}, scramble={self.scramble}"
