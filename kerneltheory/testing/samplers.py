r"""Distribution checks on a frequency law's rows (CONVENTIONS.md, "Distribution checks on samplers").

A law's sampler is tested against what the law declares (:func:`sampler_claims`), on R independent draws
W⁽¹⁾..W⁽ᴿ⁾ ∈ R^{m×d}, after standardising by the Gaussian reference N(μ, Σ = LLᵀ): z = L⁻¹(ω − μ), so that a
correct row is z ~ N(0, I_d) (for an isotropic reference, z = ω/std).

* **coordinates** (rows or coordinates marginally Gaussian): z_{il} ~ N(0, 1), Kolmogorov–Smirnov.
* **projections** (rows marginally Gaussian): uᵀz_i ~ N(0, 1) for a few fixed random unit vectors u, KS.
* **norms** (rows marginally Gaussian): ‖z_i‖ ~ χ_d, KS — rejects rows of fixed norm √d (Orthogonal with
  ``scaling="fixed"`` claimed as Gaussian); at the tested rows and, with the default rows, at every row (the first
  :data:`NORM_VALUES` / draws rows where more would not fit), each family at half the row's level: rows 9–30 of
  fixed norm √d among 32 passed every row while only the default rows were read (a review finding).
* **rows / blocks independent** (rows marginally Gaussian, claimed independent: iid rows, or rows of different
  blocks of ORF, Fastfood, SimRF): for every pair of tested rows i < j that the claim makes independent, the exact
  regression F tests of :mod:`~kerneltheory.testing.row_independence` on the coordinates, on the normal
  scores of |z| and of row j on functions of row i's signs (proofs/sampler_independence.md) — rejects one row
  repeated, rows with a shared component or a shared norm, row j's signs set by row i's, and one orthogonal block
  reused for every block, which pass every per-row check.
* **every pair** (the same claims, d ≥ 2, rows standardised entrywise): for every pair of the first k rows that the
  claim makes independent (k = m while draws·m²·(d + 16) ≤ :data:`PAIR_WORK` and m ≤ :data:`MAX_PAIR_ROWS`), the
  mean over the draws of cos²(z_i, z_j) against 1/d (Beta(1/2, (d − 1)/2) under the claim), Bernstein's exact
  two-sided bound less a rounding margin, Bonferroni over the pairs; for independent rows also Σ_{i<j} cos² over all
  m rows per draw (O(m·d²), its exact variance) (proofs/sampler_independence.md, item 9) — rejects rows repeated or
  negated (one pair among the first k rows, many anywhere), tiled rows, and orthogonal rows claimed independent.
* **sign balance** (laws symmetric about their mean): for every row index i of the first block, the signs of
  z_{i1}, of the "diagonal" coordinate z_{i, i mod d} and of u₀ᵀz_i are fair coins across draws: two-sided
  exact binomial (sign) test, zeros dropped. A QR factorisation without the sign fold Q ← Q·diag(sign R_jj)
  fails here: LAPACK's Householder QR makes R_11 = −sign(G_11)‖g_1‖, so Q_11 = G_11/R_11 < 0 on every draw,
  and the other diagonal entries of Q are biased too (Mezzadri 2007, §5).
* **norms independent within a block** (Gaussian rows with independent χ_d norms: ORF, the ``"orthogonal"``
  preset): the exact regression F test of each row norm of the first block against the later rows' norms
  (normal scores of the χ_d CDF; :func:`~kerneltheory.testing.row_independence.norm_independence_tests`) —
  rejects one norm shared by a block, which changes no row's law and no cross-block pair.
* **orthogonality** (Orthogonal; SORF): exact, a deterministic property of every draw: the largest |cos|
  between distinct rows of a block (between columns of a full SORF block when d < d', where only the columns
  stay orthogonal) is at most the rounding floor of the precision the draw carries
  (:mod:`~kerneltheory.testing.sampler_rounding`: 64·ε·b, b the block size, in float32/64; the float32 bound plus
  the rounding of every entry for float16/bfloat16 values). A draw whose floor is ≥ 1 or that has a zero vector
  is not tested: with no violation elsewhere the row is refused.
* **scale** (coordinates marginally N(0, 1)): E‖z‖² = d. Rows of one draw may be dependent, so each draw is
  reduced to its mean a_r = (1/m) Σ_i ‖z_i‖² first and the R independent a_r are tested (CLT with the sample
  variance under the fourth-moment guard of :func:`~kerneltheory.testing.checks.clt_guard`; otherwise median
  of means with the bound Var a_r ≤ 2d, valid for any dependence between Gaussian rows — 2d² for laws that
  only claim Gaussian coordinates), within the rounding the draws carry
  (:func:`~kerneltheory.testing.sampler_rounding.scale_floors`).
* **largest |coordinate|** (Gaussian rows, standardised entrywise): the largest |z_il| over every entry of every draw
  against the union bound N·m·d·2Φ̄(t) (proofs/sampler_independence.md, item 10): a few huge entries, which the
  median of means and the KS tests barely see, fail it.

Extended checks (``extended=True``; the default of :func:`callable_sampler_checks`, which takes any callable
``sample(generator) → [m, d]``, e.g. a global-RNG sampler or a module's redraws, through
:mod:`kerneltheory.testing.adapters`):

* **sign balance of every coordinate**: the sign test for every coordinate of every row of the first block (a
  QR factor whose diagonal signs were not folded is biased at every diagonal entry, not only the first);
* **every coordinate of a block ~ N(0, 1)**: the KS test for every coordinate of every row of the first block;
* **norms independent of directions**: for Gaussian rows ‖z‖ ~ χ_d is independent of z/‖z‖; Kendall's τ between
  ‖z_i‖ and ẑ_il and ẑ_il² (asymptotic normal p-values), Bonferroni;
* **norms change between redraws** (``redraws=True``; Gaussian rows): over disjoint pairs of draws, the number
  of pairs in which a row keeps its norm (up to the rounding of the precision the draws carry) against the
  binomial bound on a correct sampler's chance tie (:func:`~kerneltheory.testing.sampler_rounding.tie_bound`),
  Bonferroni over the rows; refused where even a norm kept in every pair could not reject.

A draw with a non-finite entry fails every check (rows of the claimed law are finite), naming the draw and row.

Independence: KS and binomial tests need independent samples, and the rows of one draw are dependent
(orthogonal blocks, shared Fastfood diagonals, one QMC point set), so every test pools one row index across
the R independent draws; several row indices (0, 1, the last of the first block, the first of the second,
m − 1) are tested and Bonferroni-adjusted. Each check is one :class:`CheckResult` whose p-value is Bonferroni
over its tests; the budget α is split evenly over the statistical checks that run, so a correct law fails the
whole list with probability at most α. A test whose statistic is undefined (no nonzero sign, τ of a constant)
never rejects: its family fails if another of its tests rejects, and is refused otherwise.

Example:
    >>> from kerneltheory.spectral import Orthogonal
    >>> rows = sampler_checks(Orthogonal(8), num_features=16, draws=512, seed=0)
    >>> [r.name.split(": ")[1] for r in rows]  # doctest: +NORMALIZE_WHITESPACE
    ['coordinates ~ N(0, 1)', 'projections ~ N(0, 1)', 'norms ~ χ_d', 'blocks independent',
     'blocks independent, every pair (cos²)', 'norms independent within a block', 'sign balance',
     'orthogonal blocks', 'scale E‖z‖² = d', 'largest |coordinate|']
    >>> all(r.passed for r in rows)
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from scipy import special, stats

from .._validation import check_alpha, check_fits_memory, check_int, check_real
from ..montecarlo import Moments, block_seed, num_blocks
from ..spectral.base import SpectralLaw
from ..spectral.gaussian import Gaussian, GaussianApproximation
from ..spectral.orthogonal import Orthogonal
from ..spectral.sorf import SORF
from ._global_states import kept_global_states
from .checks import MIN_DRAWS, CheckResult, clt_guard, mean_check, pair_rounding_floor
from .replay import REPEAT_DRAWS, repeated_ties, tie_positions
from .row_independence import cross_row_tests, independent_pairs, norm_independence_tests
from .sampler_rounding import (
    FORMATS,
    carried_format,
    coarsest_unit_roundoff,
    non_finite_rows,
    orthogonality_row,
    redraw_row,
    scale_floors,
)
from .user_calls import _one_number, _same_values, generator_misuse_message, generator_misused

__all__ = ["SamplerClaims", "callable_sampler_checks", "claims_preset", "sampler_checks", "sampler_claims"]

Orthogonality = Literal["rows", "columns"] | None
_F64 = torch.float64


@dataclass(frozen=True)
class SamplerClaims:
    """What a law claims about its rows, which decides the checks that run.

    Attributes:
        gaussian_rows: every row is marginally N(μ, Σ) (projections, norms, coordinates, scale).
        gaussian_coordinates: every coordinate is marginally Gaussian (coordinates, scale).
        symmetric: every row is symmetric about μ in law (sign balance).
        block: rows per block (d for ORF, d' for SORF and Fastfood, d for iid laws): sign balance is tested
            for every row index below min(m, block).
        orthogonal: ``"rows"`` (distinct rows of a block orthogonal), ``"columns"`` (columns of a full block
            orthogonal) or None.
        independent: ``"rows"`` (the rows of a draw are independent), ``"blocks"`` (rows of different blocks are
            independent) or None; tested with Gaussian rows (:mod:`~kerneltheory.testing.row_independence`).
        independent_norms: the norms of the rows of a block are independent χ_d draws (ORF); tested with
            Gaussian rows on the first block (:func:`~kerneltheory.testing.row_independence.norm_independence_tests`).
    """

    gaussian_rows: bool
    gaussian_coordinates: bool
    symmetric: bool
    block: int
    orthogonal: Orthogonality = None
    independent: Literal["rows", "blocks"] | None = None
    independent_norms: bool = False

    def __post_init__(self):
        if isinstance(self.block, bool) or not isinstance(self.block, int) or self.block < 1:
            raise ValueError(f"SamplerClaims.block must be an integer >= 1 (rows per block), got {self.block!r}")


def sampler_claims(law: SpectralLaw) -> SamplerClaims:
    """The claims a law declares: ``rows_marginally_gaussian``; ``row_marginal == "exact"`` with an isotropic
    Gaussian reference (coordinates: QMC); symmetry of the Gaussian approximations; ORF and SORF blocks;
    independent rows (``iid_rows``) or independent blocks (ORF, SORF, Fastfood, SimRF); independent χ_d norms
    within a block (ORF with Gaussian rows)."""
    if not isinstance(law, SpectralLaw):
        raise TypeError(f"law must be a SpectralLaw, got {type(law).__name__}")
    ref = law.reference
    gaussian_ref = isinstance(ref, Gaussian)
    rows = gaussian_ref and bool(law.rows_marginally_gaussian)
    coords = rows or (gaussian_ref and law.row_marginal == "exact" and bool(getattr(ref, "isotropic", False)))
    symmetric = gaussian_ref and (rows or isinstance(law, GaussianApproximation))
    block = int(getattr(law, "padded_dim", law.dim))
    orthogonal: Orthogonality = None
    if isinstance(law, Orthogonal):
        orthogonal = "rows"
    elif isinstance(law, SORF):
        orthogonal = "rows" if law.dim == law.padded_dim else "columns"
    independent = "rows" if law.iid_rows else "blocks" if law.independent_blocks else None
    return SamplerClaims(rows, coords, symmetric, block, orthogonal, independent, law.independent_norms)


def _repeated_draws(draw, c: SamplerClaims, label: str, seed: int) -> CheckResult | None:
    """The refused row ``independent draws`` where :data:`~kerneltheory.testing.replay.REPEAT_DRAWS` consecutive draws
    ``draw(g, REPEAT_DRAWS)`` from one generator have at least :data:`~kerneltheory.testing.replay.REPEAT_TIES`
    identical consecutive pairs while they are not all one matrix (a cache served every other call, a redraw every
    few calls); else None. The checks treat the draws as independent, so the row says their verdicts rest on
    repeats: a sampler whose draws repeated every other call failed "rows independent" only, whose detail blamed two
    rows of one draw (a helper's trial). Read for claims of Gaussian rows or coordinates only: under them a draw is
    continuous, and ≥ 6 of 23 consecutive pairs tie with probability at most C(23, 6)·p⁶, p the probability of the
    most likely draw (proofs/verification.md, item 13(f)); a law with few outcomes ties by chance."""
    if not (c.gaussian_rows or c.gaussian_coordinates):
        return None
    drawn = draw(_aux_generator(seed, 2), REPEAT_DRAWS)
    found = repeated_ties([("sample(generator)", list(drawn))], coarsest_unit_roundoff(carried_format(drawn)))
    if found is None:
        return None
    ties = found[1]
    return CheckResult.refusal(
        f"{sum(ties)} of {REPEAT_DRAWS - 1} consecutive draws sample(generator) from one generator were identical "
        f"(draws {tie_positions(ties)}) while others differ: the sampler's draws repeat (a cache, a redraw only every "
        "few calls, state kept between calls; or draws that take few values, which Gaussian rows exclude), so they "
        "are not independent, and the other rows, which treat draws as independent, decide nothing of it; each call "
        "sample(generator) must draw afresh", name=f"{label}: independent draws",
        claim="sampler", alpha=0.0, sample_size=REPEAT_DRAWS, seed=seed)


def _aux_generator(seed: int, tag: int) -> torch.Generator:
    """A generator independent of the RNG blocks of the draws (its own spawn key)."""
    state = np.random.SeedSequence(seed, spawn_key=(0x5A3D, tag)).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


def _standardise(law: SpectralLaw, w: torch.Tensor) -> torch.Tensor:
    ref = law.reference
    if not isinstance(ref, Gaussian):
        return w
    mean, chol = ref.mean.to(_F64).cpu(), ref.chol.to(_F64).cpu()
    if getattr(ref, "isotropic", False):
        return w / ref.std
    return torch.linalg.solve_triangular(chol, (w - mean).unsqueeze(-1), upper=False).squeeze(-1)


def _entrywise(law: SpectralLaw) -> bool:
    """Whether :func:`_standardise` divides each entry by one number: an isotropic Gaussian reference of mean 0."""
    ref = law.reference
    return isinstance(ref, Gaussian) and bool(getattr(ref, "isotropic", False)) and not bool(ref.mean.ne(0).any())


def _max_offdiag_cos(v: torch.Tensor) -> torch.Tensor:
    """max_{i≠j} |cos(v_i, v_j)| over the last two dims [..., k, d] → [...]."""
    u = _unit_rows(v)
    g = u @ u.transpose(-1, -2)
    k = g.shape[-1]
    g = g - torch.eye(k, dtype=_F64)
    return g.abs().flatten(-2).amax(-1)


def _orthogonality_errors(w: torch.Tensor, block: int, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """[r] worst |cos| per draw over the law's blocks (rows of every block with ≥ 2 rows; columns of full
    blocks) and [r] the smallest norm of a compared vector (0 for a zero vector, whose cosines are undefined)."""
    r, m, _ = w.shape
    worst = torch.zeros(r, dtype=_F64)
    rho = torch.full((r,), math.inf, dtype=_F64)
    for start in range(0, m, block):
        b = w[:, start : start + block]
        if kind == "rows" and b.shape[1] >= 2:
            v = b
        elif kind == "columns" and b.shape[1] == block:
            v = b.transpose(-1, -2)
        else:
            continue
        worst = torch.maximum(worst, _max_offdiag_cos(v))
        rho = torch.minimum(rho, torch.linalg.vector_norm(v, dim=-1).amin(-1))
    return worst, rho


def _ks(samples: np.ndarray, cdf) -> tuple[np.ndarray, np.ndarray]:
    """One-sample two-sided KS statistics D and exact p-values (``scipy.stats.kstwo``) for each column of
    ``samples`` [n, K] against ``cdf``, vectorised (the statistic of ``scipy.stats.kstest``)."""
    n = samples.shape[0]
    f = cdf(np.sort(samples, axis=0))
    i = np.arange(1, n + 1)[:, None]
    d = np.maximum((i / n - f).max(0), (f - (i - 1) / n).max(0))
    return d, stats.kstwo.sf(d, n)


def _row(name, alpha, seed, n, *, statistic, p_value, effect, method, detail) -> CheckResult:
    return CheckResult(
        name=name,
        claim="sampler",
        statistic=statistic,
        p_value=p_value,
        alpha=alpha,
        effect_size=effect,
        sample_size=n,
        seed=seed,
        method=method,
        passed=p_value > alpha,
        detail=detail,
    )


def _ks_family(name, labels, samples, cdf, alpha, seed) -> CheckResult:
    """Bonferroni over the KS tests of the columns of ``samples`` [n, K] (``labels`` [K]); the statistic is the
    worst test's D, the effect the largest D (the sup-distance between the empirical and the claimed CDF)."""
    d, p = _ks(samples, cdf)
    k = int(np.argmin(p))
    return _row(
        name,
        alpha,
        seed,
        samples.shape[0],
        statistic=float(d[k]),
        p_value=min(1.0, float(p[k]) * len(labels)),
        effect=float(d.max()),
        method=f"kolmogorov-smirnov ×{len(labels)} (bonferroni)",
        detail=f"worst: {labels[k]}: D = {float(d[k]):.4g}, p = {float(p[k]):.3g}",
    )


def _norms_row(name, labels, cols, every, m: int, d: int, alpha, seed) -> CheckResult:
    """‖z_i‖ ~ χ_d: the KS family of the tested rows (``cols``), and where ``every`` [n, k] holds the norms of the
    first k rows, the family of those too; p = 2·min of the two Bonferroni p-values (a union bound at α/2 each), so
    one wrong row among thousands is read at α/(2k) while the tested rows keep α/2."""
    row = _ks_family(name, labels, cols, stats.chi(d).cdf, alpha, seed)
    if every is None:
        return row
    wide = _ks_family(name, [f"row {i} norm" for i in range(every.shape[1])], every, stats.chi(d).cdf, alpha, seed)
    pick = min((row, wide), key=lambda r: r.p_value)
    scope = f"every row of {m}" if every.shape[1] == m else f"the first {every.shape[1]} rows of {m} (memory)"
    return replace(pick, p_value=min(1.0, 2.0 * pick.p_value), passed=min(1.0, 2.0 * pick.p_value) > alpha,
                   effect_size=max(row.effect_size, wide.effect_size),
                   method=f"{row.method} at the tested rows, {wide.method} at {scope}: 2·min",
                   detail=f"{pick.detail}; read at the tested rows and at {scope}")


def _sign_family(name, labels, values, alpha, seed) -> CheckResult:
    """Bonferroni over two-sided exact sign tests of H₀: P(v > 0) = 1/2 for the columns of ``values`` [n, K]
    (zeros dropped): p = min(1, 2 P(Bin(n', ½) ≥ max(k, n' − k))), n' the nonzero count. A column that is 0 on
    every draw has no sign to test: it never rejects, so the family fails when a tested column rejects at α/K
    (K counting every column) and is refused when none does (:func:`_family_row`)."""
    pos, neg = (values > 0).sum(0), (values < 0).sum(0)
    n = pos + neg
    tested = n > 0
    p = np.where(tested, np.minimum(1.0, 2 * stats.binom.sf(np.maximum(pos, neg) - 1, np.maximum(n, 1), 0.5)), np.nan)
    frac = np.where(tested, pos / np.maximum(n, 1), 0.5)
    z = np.where(tested, (pos - n / 2) / np.sqrt(np.maximum(n, 1) / 4), 0.0)
    return _family_row(
        name, alpha, seed, values.shape[0], labels, p, untested=f"0 on all {values.shape[0]} draws: no sign to test",
        method=f"binomial sign test ×{len(labels)} (bonferroni)",
        describe=lambda k: (float(z[k]), float(np.abs(frac - 0.5).max()), f"worst: {labels[k]}: {float(frac[k]):.4f} "
                            f"positive of {int(n[k])} nonzero, p = {float(p[k]):.3g}"),
    )


def _family_row(name, alpha, seed, n, labels, p, *, untested: str, method: str, describe) -> CheckResult:
    """The row of a Bonferroni family of K = len(labels) tests with p-values ``p`` (NaN where a test's statistic is
    undefined, e.g. a constant sample): min(1, K·min p) over the defined tests, K counting every test. An undefined
    test never rejects, so a rejection among the defined ones is a valid failure (proofs/verification.md, item 6(c));
    with no rejection and some test undefined the row is refused (a NaN p-value must not read as a pass).
    ``describe(k)`` gives (statistic, effect, detail) from the index k of the smallest defined p-value."""
    p = np.asarray(p, dtype=np.float64)
    undefined = np.isnan(p)
    k = int(np.argmin(np.where(undefined, np.inf, p)))
    p_adj = 1.0 if bool(undefined.all()) else min(1.0, float(p[k]) * len(labels))
    if bool(undefined.any()) and p_adj > alpha:
        where = [lab for lab, u in zip(labels, undefined, strict=True) if u]
        more = f" and {len(where) - 1} more" if len(where) > 1 else ""
        rest = "" if bool(undefined.all()) else "; the other tests do not reject"
        return CheckResult.refusal(f"{where[0]}{more}: {untested}{rest}", name=name, claim="sampler", alpha=alpha,
                                   sample_size=n, seed=seed)
    statistic, effect, detail = describe(k)
    return _row(name, alpha, seed, n, statistic=statistic, p_value=p_adj, effect=effect, method=method, detail=detail)


def _default_rows(m: int, block: int) -> list[int]:
    b = min(block, m)
    return sorted({i for i in (0, 1, b - 1, b, m - 1) if 0 <= i < m})


def sampler_checks(
    law: SpectralLaw,
    *,
    num_features: int,
    draws: int,
    seed: int,
    alpha: float = 1e-6,
    claims: SamplerClaims | None = None,
    rows: list[int] | None = None,
    projections: int = 3,
    block: int = 1024,
    extended: bool = False,
) -> list[CheckResult]:
    """Check ``law``'s sampler on ``draws`` independent draws of m = ``num_features`` rows.

    Args:
        law: the frequency law (its ``sample(m, generator, batch=r)`` is called in RNG blocks of ``block``
            draws, block b seeded by :func:`~kerneltheory.montecarlo.block_seed` (seed, b)).
        claims: what to test; default :func:`sampler_claims` (law). Pass a modified copy to test a law
            against claims it does not declare (a planted defect that claims Gaussian rows, say).
        rows: row indices for the KS tests (default: 0, 1, the last row of the first block, the first of the
            second, m − 1).
        projections: number of fixed random unit vectors u (drawn from ``seed``, independently of W).
        alpha: the false-failure rate of the whole list, split evenly (Bonferroni) over its statistical
            checks; the orthogonality row is exhaustive (it fails only on a violation).
        extended: add the checks of :func:`callable_sampler_checks` (signs and KS of every coordinate of every
            row of a block, independence of norms and directions).

    Returns:
        One :class:`CheckResult` per check that the claims call for (see the module docstring). Refused rows
        (method ``"refused"``, not passed) when ``draws`` < 64, and wherever a row cannot resolve what it tests: the
        scale row, decided by a median of means under the variance bound 2d (2d² without Gaussian rows) where its guard
        fails, resolves no deviation of E‖z‖² as large as d at a few hundred draws and is refused there
        (proofs/verification.md, item 3(b)). Raises ``ValueError`` when the claims call for
        no check at all (a law with nothing checkable must not pass silently).
    """
    if not isinstance(law, SpectralLaw):
        raise TypeError(f"law must be a SpectralLaw, got {type(law).__name__}")
    m = check_int(num_features, "num_features", minimum=1)
    c = sampler_claims(law) if claims is None else claims

    def draw(generator: torch.Generator, r: int) -> torch.Tensor:
        return law.sample(m, generator, batch=r)

    # a law's draws are computed in its dtype: the floors take that format, never one guessed from the values (exact
    # discrete draws such as SORF's at d = 4ᵏ are bfloat16 numbers, whose floor would miss a non-orthogonality)
    return _run(draw, lambda w: _standardise(law, w), f"{law.name} m={m}", law.dim, m, c, draws=draws, seed=seed,
                alpha=alpha, rows=rows, projections=projections, block=block, extended=extended, redraws=False,
                known_format=law.dtype, entrywise=_entrywise(law))


REPLAY_DRAWS = 24  # consecutive draws compared between two identically seeded generators before a sampler is checked
MAX_PROJECTIONS = 1024  # the most random projections a sampler check takes (KS tests per tested row)
NORM_VALUES = 2**24  # the row norms the norms row keeps, draws × rows (128 MiB); beyond, the first rows that fit


def _run(draw, standardise, label, d, m, c, *, draws, seed, alpha, rows, projections, block, extended, redraws,
         std: float = 1.0, known_format: torch.dtype | None = None, entrywise: bool = True):
    """The checks of :func:`sampler_checks` on ``draw(generator, r) → [r, m, d]`` (see there); the rounding floors
    take ε from ``known_format``, the dtype the draws are computed in when the caller knows it (a law), else from the
    precision each draw carries (:mod:`~kerneltheory.testing.sampler_rounding`); ``std`` is the claimed scale of the
    rows (the redraw check's tie bound); ``entrywise``: ``standardise`` scales each entry by one number (the every-pair
    test's rounding margin assumes it, proofs/sampler_independence.md item 9; it is left out otherwise)."""
    n = check_int(draws, "draws", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    alpha = check_alpha(alpha)
    k_proj = check_int(projections, "projections", minimum=1)
    if k_proj > MAX_PROJECTIONS:  # each is a KS test per tested row over every draw; more only splits α thinner
        raise ValueError(f"projections must be at most {MAX_PROJECTIONS}, got {k_proj}")
    block = check_int(block, "block", minimum=1)
    for flag, flag_name in ((extended, "extended"), (redraws, "redraws")):
        if not isinstance(flag, bool):
            raise TypeError(f"{flag_name} must be a bool, got {type(flag).__name__}")
    if rows is not None and len(rows) == 0:
        raise ValueError("rows must name at least one row index (None: the default rows)")
    if not isinstance(c, SamplerClaims):
        raise TypeError(f"claims must be a SamplerClaims, got {type(c).__name__}")
    ks_rows = (
        _default_rows(m, c.block) if rows is None else [check_int(i, "rows[i]", minimum=0) for i in rows]
    )
    if any(i >= m for i in ks_rows):
        raise ValueError(f"rows must lie in [0, {m - 1}] (num_features = {m}), got {ks_rows}")
    sign_rows = list(range(min(m, c.block)))
    # independence across blocks: besides the tested rows, the first row of every block (a sampler that reuses
    # any one block, not only the first, then has a pair of equal rows among the tested ones)
    cross_rows = ks_rows
    if rows is None and c.gaussian_rows and c.independent == "blocks":
        cross_rows = sorted(set(ks_rows) | set(range(0, m, c.block)))
    kept = sorted(set(ks_rows) | set(sign_rows) | set(cross_rows))
    where = {i: j for j, i in enumerate(kept)}
    # the norms row reads every row as well where the rows are the default ones (a user's rows= are what it tests)
    norm_rows = min(m, max(1, NORM_VALUES // n)) if rows is None and c.gaussian_rows else 0

    plan = []  # (name, kind) in report order
    if c.gaussian_coordinates:
        plan.append((f"{label}: coordinates ~ N(0, 1)", "coordinates"))
        if extended:
            plan.append((f"{label}: every coordinate of a block ~ N(0, 1)", "block coordinates"))
    if c.gaussian_rows:
        plan.append((f"{label}: projections ~ N(0, 1)", "projections"))
        plan.append((f"{label}: norms ~ χ_d", "norms"))
        if extended:
            plan.append((f"{label}: norms independent of directions", "independence"))
    pairs = independent_pairs(cross_rows, c.block, c.independent) if c.gaussian_rows else []
    if pairs:
        plan.append((f"{label}: {c.independent} independent", "cross"))
    aligned = alignment_rows(m, d, n, c) if c.gaussian_rows and entrywise else 0
    if aligned:
        plan.append((f"{label}: {c.independent} independent, every pair (cos²)", "alignment"))
    if c.gaussian_rows and c.independent_norms and len(sign_rows) >= 2:
        plan.append((f"{label}: norms independent within a block", "block norms"))
    if c.symmetric:
        plan.append((f"{label}: sign balance", "signs"))
        if extended:
            plan.append((f"{label}: sign balance of every coordinate", "coordinate signs"))
    if c.orthogonal is not None:
        plan.append((f"{label}: orthogonal blocks", "orthogonality"))
    if c.gaussian_coordinates:
        plan.append((f"{label}: scale E‖z‖² = d", "scale"))
    if c.gaussian_rows and entrywise:  # coordinates N(0, 1) of a continuous law (not a QMC grid), rounded once
        plan.append((f"{label}: largest |coordinate|", "extreme"))
    if redraws:
        plan.append((f"{label}: norms change between redraws", "redraws"))
    if not plan:
        raise ValueError(
            f"{label} declares nothing these checks test (no Gaussian rows or coordinates, no "
            "symmetry, no orthogonal blocks): pass claims=SamplerClaims(...) to say what to test"
        )
    num_stat = sum(kind != "orthogonality" for _, kind in plan)
    a = alpha / max(num_stat, 1)
    if n < MIN_DRAWS:
        return [
            CheckResult.refusal(
                f"{n} draws < {MIN_DRAWS}: too few for a distribution test",
                name=nm, claim="sampler", alpha=a, sample_size=n, seed=seed,
            )
            for nm, _ in plan
        ]

    # -- draw: keep the tested rows, each draw's mean ‖z‖², each draw's worst |cos| and row norms ------------
    sel, mean_sq, orth, rho, norms, fmt, row_norms, floors = [], [], [], [], [], [], [], []
    # rows standardised entrywise (an isotropic law of mean 0): z = scale·w, whose rounding the scale row allows
    # (item 12); other standardisations mix the coordinates' scales, and the row keeps the float64 floor alone
    scale = float(standardise(torch.ones(1, 1, 1, dtype=_F64))[0, 0, 0]) if entrywise else None
    cos2 = torch.zeros(aligned, aligned, dtype=_F64)  # Σ over draws of cos²(z_i, z_j), the first `aligned` rows
    sums = []  # per draw, Σ_{i<j} cos²(z_i, z_j) over all m rows ("rows" claims)
    closest = []  # per draw, the least 1 − cos²(z_i, z_j) over the independent pairs of the first `aligned` rows
    pair_mask = _independent_mask(aligned, c) if aligned else None
    largest = 0.0  # max |z_il| over every entry of every draw
    with torch.no_grad():
        for b in range(num_blocks(n, block)):
            r = min(block, n - b * block)
            w = draw(torch.Generator().manual_seed(block_seed(seed, b)), r).to("cpu", _F64)
            if tuple(w.shape) != (r, m, d):
                raise ValueError(f"{label}: a block of {r} draws must have shape {(r, m, d)}, got {tuple(w.shape)}")
            if not bool(torch.isfinite(w).all()):
                return non_finite_rows([nm for nm, _ in plan], w, b * block, a, seed, n)
            z = standardise(w)
            sel.append(z[:, kept])
            if norm_rows:
                row_norms.append(torch.linalg.vector_norm(z[:, :norm_rows], dim=-1))
            mean_sq.append((z * z).sum(-1).mean(-1))
            if aligned:
                total, least = _squared_cosines(z[:, :aligned], pair_mask)
                cos2 += total
                closest.append(least)
                if c.independent == "rows":
                    sums.append(_pair_sums(z))
            largest = max(largest, float(z.abs().max()))
            norms.append(torch.linalg.vector_norm(w, dim=-1))
            fmt.append(carried_format(w) if known_format not in FORMATS else
                       torch.full((r,), FORMATS.index(known_format), dtype=torch.long))
            if scale is not None:
                floors.append(scale_floors(z, fmt[-1], scale))
            if c.orthogonal is not None:
                worst, smallest = _orthogonality_errors(w, c.block, c.orthogonal)
                orth.append(worst)
                rho.append(smallest)
    zs = torch.cat(sel).numpy()  # [n, len(kept), d]
    mean_sq_t = torch.cat(mean_sq)
    units = torch.randn(k_proj, d, generator=_aux_generator(seed, 0), dtype=_F64)
    units = (units / torch.linalg.vector_norm(units, dim=-1, keepdim=True)).numpy()

    out = []
    for nm, kind in plan:
        if kind == "coordinates":
            labels = [f"row {i} coordinate {j}" for i in ks_rows for j in range(d)]
            cols = np.concatenate([zs[:, where[i]] for i in ks_rows], axis=1)
            out.append(_ks_family(nm, labels, cols, stats.norm.cdf, a, seed))
        elif kind == "block coordinates":
            labels = [f"row {i} coordinate {j}" for i in sign_rows for j in range(d)]
            cols = np.concatenate([zs[:, where[i]] for i in sign_rows], axis=1)
            out.append(_ks_family(nm, labels, cols, stats.norm.cdf, a, seed))
        elif kind == "projections":
            labels = [f"row {i} projection u{k}" for i in ks_rows for k in range(k_proj)]
            cols = np.concatenate([zs[:, where[i]] @ units.T for i in ks_rows], axis=1)
            out.append(_ks_family(nm, labels, cols, stats.norm.cdf, a, seed))
        elif kind == "norms":
            labels = [f"row {i} norm" for i in ks_rows]
            cols = np.stack([np.linalg.norm(zs[:, where[i]], axis=-1) for i in ks_rows], axis=1)
            every = torch.cat(row_norms).numpy() if norm_rows else None
            out.append(_norms_row(nm, labels, cols, every, m, d, a, seed))
        elif kind == "independence":
            out.append(_independence(nm, {i: zs[:, where[i]] for i in ks_rows}, a, seed))
        elif kind == "cross":
            out.append(_cross_rows(nm, {i: zs[:, where[i]] for i in cross_rows}, pairs, a, seed))
        elif kind == "extreme":
            out.append(_extreme(nm, largest, n, m * d, torch.cat(fmt), a, seed))
        elif kind == "alignment":
            out.append(_alignment(nm, cos2 / n, torch.cat(sums) if sums else None, m, d, n, c, torch.cat(fmt), a,
                                  seed, torch.cat(closest)))
        elif kind == "signs":
            labels, cols = [], []
            for i in sign_rows:
                zi = zs[:, where[i]]
                labels.append(f"row {i} coordinate 0")
                cols.append(zi[:, 0])
                if i % d != 0:
                    labels.append(f"row {i} coordinate {i % d}")
                    cols.append(zi[:, i % d])
                labels.append(f"row {i} projection u0")
                cols.append(zi @ units[0])
            out.append(_sign_family(nm, labels, np.stack(cols, axis=1), a, seed))
        elif kind == "coordinate signs":
            labels = [f"row {i} coordinate {j}" for i in sign_rows for j in range(d)]
            cols = np.concatenate([zs[:, where[i]] for i in sign_rows], axis=1)
            out.append(_sign_family(nm, labels, cols, a, seed))
        elif kind == "block norms":
            out.append(_block_norms(nm, {i: zs[:, where[i]] for i in sign_rows}, d, a, seed))
        elif kind == "orthogonality":
            out.append(orthogonality_row(nm, c.orthogonal, c.block, torch.cat(orth), torch.cat(rho), torch.cat(fmt), d,
                                         a, seed))
        elif kind == "redraws":
            out.append(redraw_row(nm, torch.cat(norms), torch.cat(fmt), c.gaussian_rows, d, std, a, seed))
        elif not bool(torch.isfinite(mean_sq_t).all()):  # scale, rows too long to square in float64
            out.append(_row(nm, a, seed, n, statistic=math.inf, p_value=0.0, effect=math.inf, method="overflow",
                            detail="‖z‖² overflows float64 (rows of norm > 1e154 are not N(0, I))"))
        else:  # scale
            s = mean_sq_t[:, None]
            mom = Moments.from_samples(s)
            ok, _ = clt_guard(mom)
            bound = torch.tensor([2.0 * d if c.gaussian_rows else 2.0 * d * d], dtype=_F64)
            target = torch.tensor([float(d)], dtype=_F64)
            # the draws' own rounding (item 12) beside the float64 floor of the mean: rows of norm √d in float32
            # failed on it alone
            drawn = torch.cat(floors).mean() if floors else torch.zeros((), dtype=_F64)
            if not bool(torch.isfinite(drawn)):  # rows so small that 1/std overflows the subnormal term
                out.append(CheckResult.refusal(
                    f"the rounding floor of ‖z‖² is not finite (standardised by 1/std = {scale:.3g}): the rows' "
                    "subnormal rounding, magnified, bounds nothing", name=nm, claim="sampler", alpha=a,
                    sample_size=n, seed=seed))
                continue
            atol = pair_rounding_floor(target, mom.mean, s) + drawn
            # under the claim the rows' coordinates are continuous, so draws of (1/m)Σ‖z_i‖² that agree are no rare
            # event's: agreement off d is a bias (atoms=False; proofs/verification.md, item 3a)
            out.append(mean_check(mom, target, alpha=a, name=nm, seed=seed, variance=None if ok else bound, samples=s,
                                  atol=atol, claim="sampler", atoms=False))
    return out


PAIR_WORK = 2 * 10**9  # elementwise work of the every-pair test, draws·k²·(d + 16) over its k rows, beyond which k < m
MAX_PAIR_ROWS = 2048  # and at most this many rows (its [k, k] arrays)


def alignment_rows(m: int, d: int, draws: int, c: SamplerClaims) -> int:
    """How many rows, the first k, the every-pair test reads pair by pair (:func:`_alignment`): all m while
    draws·m²·(d + 16) ≤ :data:`PAIR_WORK` and m ≤ :data:`MAX_PAIR_ROWS`, else the most that fit; 0 where it does not
    apply (d = 1, where every cos² is 1; no independence claimed; no pair of the first k rows that the claim makes
    independent)."""
    if c.independent not in ("rows", "blocks") or d < 2 or m < 2:
        return 0
    k = min(m, MAX_PAIR_ROWS, max(2, math.isqrt(PAIR_WORK // max(1, draws * (d + 16)))))
    if c.independent == "blocks" and k <= c.block:  # no two of the first k rows in different blocks
        return 0
    return k


def _unit_rows(z: torch.Tensor) -> torch.Tensor:
    """z / ‖z‖ row by row (a zero row stays 0, so its cos² with any row is 0)."""
    norm = torch.linalg.vector_norm(z, dim=-1, keepdim=True)
    return z / torch.where(norm > 0, norm, 1.0)


def _squared_cosines(z: torch.Tensor, mask: torch.Tensor | None = None):
    """Σ over the draws of ``z`` [r, k, d] of cos²(z_i, z_j) [k, k] (a zero row counts cos² = 0), in slices of
    draws whose [r', k, k] Gram stays below 4·10⁶ entries; with ``mask`` [k, k], also [r] each draw's least
    1 − cos² over the pairs it marks, from the same Grams (:func:`_least_sines`' values): ``(total, least)``."""
    u = _unit_rows(z)
    k = u.shape[1]
    step = max(1, 4_000_000 // (k * k))
    total, least = torch.zeros(k, k, dtype=_F64), []
    for s in range(0, u.shape[0], step):
        g = u[s : s + step] @ u[s : s + step].transpose(1, 2)
        g = g * g
        total += g.sum(0)
        if mask is not None:
            least.append(torch.where(mask, 1.0 - g, math.inf).flatten(1).amin(1))
    return total if mask is None else (total, torch.cat(least))


def _independent_mask(k: int, c: SamplerClaims) -> torch.Tensor:
    """[k, k] True at the pairs i < j of the first k rows that the claim makes independent (every pair for
    ``"rows"``, pairs in different blocks for ``"blocks"``)."""
    i, j = torch.arange(k)[:, None], torch.arange(k)[None, :]
    mask = i < j
    return mask & (i // c.block != j // c.block) if c.independent == "blocks" else mask


def _least_sines(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[r] the least 1 − cos²(z_i, z_j) over the pairs of ``mask`` in each draw of ``z`` [r, k, d] (a zero row counts
    cos² = 0): the second value of :func:`_squared_cosines` with ``mask``, which computes both from one Gram."""
    return _squared_cosines(z, mask)[1]


PARALLEL = 1e-6  # 1 − cos² at or below which two rows count as parallel (or the rounding of a cos², if larger)


def _pair_sums(z: torch.Tensor) -> torch.Tensor:
    """[r] Σ_{i<j} cos²(z_i, z_j) over all m rows of each draw of ``z`` [r, m, d], as (‖ÛᵀÛ‖_F² − Σ_i ‖û_i‖⁴)/2
    with Û the unit rows: O(m·d²) per draw, whatever m."""
    u = _unit_rows(z)
    g = u.transpose(1, 2) @ u  # [r, d, d]
    return ((g * g).sum((1, 2)) - ((u * u).sum(-1) ** 2).sum(-1)) / 2


def _margin(u: float, mean_cos2: torch.Tensor, d: int) -> torch.Tensor:
    """The most the rounding of carried values (unit roundoff u ≤ 2⁻⁸) and of the float64 cosines can move a mean
    of cos² whose computed value is ``mean_cos2``: 10u·√mean + 25u² + 2(d + 2)·2⁻⁵³
    (proofs/sampler_independence.md, item 9)."""
    return 10 * u * mean_cos2.clamp_min(0).sqrt() + 25 * u * u + 2 * (d + 2) * 2.0**-53


def _extreme(name, largest: float, n: int, per_draw: int, fmt: torch.Tensor, alpha, seed) -> CheckResult:
    """The largest |z_il| over the n·``per_draw`` coordinates of the n draws against the union bound: where each
    coordinate is N(0, 1) (rows of a Gaussian law, standardised entrywise), P(max |z_il| ≥ t) ≤ entries·2Φ̄(t)
    whatever their dependence, at t the largest value divided by 1 + u + 2⁻⁵² (u of the coarsest format a draw
    carries: the rounding of the carried value and of the division by the std can only have enlarged it by that
    factor). An entry of 1e8 among 10⁵ correct ones fails; the scale check's median of means, the KS and sign tests
    hardly see a few such entries (proofs/sampler_independence.md, item 10)."""
    entries = n * per_draw
    u = coarsest_unit_roundoff(fmt)
    t = largest / (1 + u + 2.0**-52)
    log_p = min(0.0, math.log(entries) + math.log(2.0) + float(stats.norm.logsf(t)))
    return _row(name, alpha, seed, n, statistic=largest, p_value=math.exp(log_p), effect=largest,
                method="union bound", detail=(f"largest |z| {largest:.4g} over {entries} coordinates: "
                                              f"P(max ≥ {t:.4g}) ≤ {math.exp(log_p):.3g} for N(0, 1) coordinates"))


def _alignment(name, mean_cos2: torch.Tensor, sums: torch.Tensor, m: int, d: int, n: int, c: SamplerClaims,
               fmt: torch.Tensor, alpha, seed, closest: torch.Tensor) -> CheckResult:
    """Up to three tests, Bonferroni over them. (1) Every pair (i, j), i < j, of the first k rows that the claim makes
    independent (all pairs for ``"rows"``, pairs in different blocks for ``"blocks"``): the mean over the n draws of
    cos²(z_i, z_j) against 1/d. Under the claim z_i, z_j are independent N(0, I_d), so cos² ~ Beta(1/2, (d − 1)/2)
    (mean 1/d, variance σ² = 2(d − 1)/(d²(d + 2)), values in [0, 1]), iid over the draws: Bernstein's inequality
    bounds the two-sided tail of the mean exactly, after the rounding margin of :func:`_margin`; Bonferroni over the
    pairs. (2) For ``"rows"``, all m rows at once: S = Σ_{i<j} (cos² − 1/d) per draw (``sums``, the Σ cos²), whose
    P = m(m − 1)/2 terms are pairwise uncorrelated under the claim, so Var S = P·σ² exactly: the mean test of
    :func:`~kerneltheory.testing.checks.mean_check` as the scale check runs it (the CLT under the fourth-moment guard,
    else median of means with that exact variance), the rounding margin as its floor (proofs/sampler_independence.md,
    item 9). (3) Parallel pairs: the draws in which some pair of (1) has 1 − cos² ≤ ε (``closest``, each draw's
    least; ε = :data:`PARALLEL`, or the rounding δ of one cos², 10u + 25u² + 2(d + 2)·2⁻⁵³, if larger). Under the
    claim 1 − cos² ~ Beta((d − 1)/2, 1/2), so a draw has such a pair with probability at most p₀ = P·I_{2ε}((d − 1)/2,
    1/2) (a union bound over its P pairs; a computed value ≤ ε has an exact one ≤ ε + δ ≤ 2ε), independently over the
    draws: the count is at most Binomial(n, p₀), its upper tail the p-value (exact; no power where p₀ is near 1).
    (1) fails one pair repeated, negated or orthogonal among the first k rows; (2) fails such pairs by the
    dozen anywhere (half the rows repeated, negated, tiled; orthogonal blocks claimed iid); (3) fails a block whose
    rows are another block's, permuted (with random signs or not), which keeps every pair's mean cos² at 1/d
    (proofs/sampler_independence.md, item 11)."""
    k = mean_cos2.shape[0]
    i, j = torch.triu_indices(k, k, 1)
    if c.independent == "blocks":
        keep = (i // c.block) != (j // c.block)
        i, j = i[keep], j[keep]
    mu, var, bound = 1.0 / d, 2.0 * (d - 1) / (d * d * (d + 2)), 1.0 - 1.0 / d
    u = coarsest_unit_roundoff(fmt)
    means = mean_cos2[i, j]
    dev = ((means - mu).abs() - _margin(u, means, d)).clamp_min(0.0)
    log_p = math.log(2.0) - n * dev * dev / (2 * var + 2 * bound * dev / 3)
    w = int(torch.argmin(log_p))
    pairs = int(i.numel())
    p_pairs = min(1.0, math.exp(min(0.0, float(log_p[w]) + math.log(pairs))))
    among = f"all {m} rows" if k == m else f"the first {k} of the {m} rows (the most that fit the work cap)"
    detail = (f"worst pair: rows {int(i[w])} and {int(j[w])}: mean cos² {float(means[w]):.4g} over {n} draws against "
              f"1/d = {mu:.4g} ({pairs} pairs of {among})")
    eps = max(PARALLEL, float(_margin(u, torch.tensor(1.0, dtype=_F64), d)))
    parallel = int((closest <= eps).sum())
    p0 = min(1.0, pairs * float(special.betainc((d - 1) / 2, 0.5, min(1.0, 2 * eps))))
    p_parallel = float(stats.binom.sf(parallel - 1, n, p0)) if parallel else 1.0
    detail += (f"; parallel pairs (1 − cos² ≤ {eps:.3g}): in {parallel} of {n} draws, against at most {p0:.3g} of a "
               f"draw's chance under the claim (p = {p_parallel:.3g})")
    tests, p_sum = 2, None  # None: the all-rows part does not apply; NaN: it could not test
    if c.independent == "rows" and sums is not None:
        tests, big = 3, m * (m - 1) // 2
        centred = (sums - big * mu)[:, None]
        # per draw, Σ_{i<j} |c̃ − c| ≤ 10u·Σ|cos̃| + 25u²P ≤ P·(10u·√(Σ cos̃²/P) + 25u²) (Cauchy–Schwarz), plus float64's
        floor = float((big * _margin(u, sums / big, d)).mean())
        mom = Moments.from_samples(centred)
        light, _ = clt_guard(mom)  # as the scale check: the CLT where the guard allows it, else median of means
        row = mean_check(mom, torch.zeros(1, dtype=_F64), alpha=alpha / tests, name=name, seed=seed,
                         variance=None if light else torch.tensor([big * var], dtype=_F64), samples=centred,
                         atol=floor, claim="sampler", atoms=False)  # continuous rows under the claim, as above
        p_sum = row.p_value if row.p_value == row.p_value and not row.refused else math.nan
        detail += (f"; all {m} rows: mean Σ_i<j cos² {float(sums.mean()):.6g} against P/d = {big * mu:.6g} "
                   + (f"({row.method}, p = {p_sum:.3g})" if p_sum == p_sum else f"(not tested: {row.detail})"))
    p = min(1.0, tests * min(p_pairs, p_parallel, 1.0 if p_sum is None or p_sum != p_sum else p_sum))
    if p_sum is not None and p_sum != p_sum and p > alpha:  # an untested part hides no failure, but passes nothing
        return CheckResult.refusal(detail, name=name, claim="sampler", alpha=alpha, sample_size=n, seed=seed)
    return _row(name, alpha, seed, n, statistic=float(dev[w]), p_value=p, effect=float(means[w] - mu),
                method=f"bernstein ×{pairs} + parallel pairs" + (" + all-rows mean" if tests == 3 else "")
                + " (bonferroni)",
                detail=detail)


def _independence(name, rows: dict[int, np.ndarray], alpha, seed) -> CheckResult:
    """Bonferroni over Kendall's τ tests of H₀: ‖z_i‖ independent of ẑ_il and of ẑ_il² (ẑ = z/‖z‖), for every
    tested row i and coordinate l (Gaussian rows: the norm is χ_d and independent of the uniform direction); at
    d = 1 of the sign ẑ_i0 alone (ẑ_i0² is 1).
    p-values from τ's asymptotic normality under independence (``scipy.stats.kendalltau``)."""
    labels, taus, ps = [], [], []
    for i, z in rows.items():
        r = np.linalg.norm(z, axis=-1)
        u = z / np.where(r > 0, r, 1.0)[:, None]
        for j in range(z.shape[1]):
            # at d = 1, ẑ_0 = ±1 and ẑ_0² = 1 in every draw: its τ is undefined, and the row would be refused always
            for what, f in ((f"ẑ_{j}", u[:, j]), (f"ẑ_{j}²", u[:, j] ** 2))[: 2 if z.shape[1] > 1 else 1]:
                res = stats.kendalltau(r, f, method="asymptotic")
                labels.append(f"row {i}: ‖z‖ vs {what}")
                taus.append(float(res.statistic))
                ps.append(float(res.pvalue))
    n = next(iter(rows.values())).shape[0]
    return _family_row(name, alpha, seed, n, labels, ps, untested=f"Kendall's τ undefined (a constant across the {n} "
                       "draws)", method=f"kendall τ ×{len(ps)} (bonferroni)",
                       describe=lambda k: (taus[k], float(np.nanmax(np.abs(taus))), f"worst: {labels[k]}: τ = "
                                           f"{taus[k]:.4g}, p = {ps[k]:.3g}"))


def _f_family(name, tests, n: int, alpha, seed, untested: str) -> CheckResult:
    """Bonferroni over exact regression F tests given as (labels, F, degrees of freedom, p-values, explained shares)
    (:mod:`~kerneltheory.testing.row_independence`); an undefined test (NaN p-value) never rejects."""
    labels, ts, dfs, ps, shares = tests
    largest = max((x for x in shares if x == x), default=math.nan)

    def describe(k):
        return ts[k], largest, (f"worst: {labels[k]}: F{dfs[k]} = {ts[k]:.4g} (explained share {shares[k]:.3g}), "
                                f"p = {ps[k]:.3g}; the rows are read standardised by the claimed law, so rows of "
                                "another scale or law fail this row too, and the per-row rows then name it")

    return _family_row(name, alpha, seed, n, labels, ps, untested=f"the F statistic is undefined ({untested})",
                       method=f"regression F ×{len(ps)} (bonferroni)", describe=describe)


def _block_norms(name, rows: dict[int, np.ndarray], d: int, alpha, seed) -> CheckResult:
    """The exact F tests of :func:`~kerneltheory.testing.row_independence.norm_independence_tests` (each row norm
    of the first block against the later rows' norms; proofs/sampler_independence.md, item 7)."""
    tests = norm_independence_tests({i: np.linalg.norm(z, axis=-1) for i, z in rows.items()}, d)
    return _f_family(name, tests, next(iter(rows.values())).shape[0], alpha, seed,
                     "a non-finite score or a regressor of rank 0")


def _cross_rows(name, rows: dict[int, np.ndarray], pairs, alpha, seed) -> CheckResult:
    """The exact F tests of :func:`~kerneltheory.testing.row_independence.cross_row_tests` (coordinates and
    magnitudes of every independent pair of tested rows; proofs/sampler_independence.md)."""
    return _f_family(name, cross_row_tests(rows, pairs), next(iter(rows.values())).shape[0], alpha, seed,
                     "a non-finite score, a regressor of rank 0 or a zero row")




def claims_preset(preset: str, dim: int) -> SamplerClaims:
    """``"gaussian"`` (iid N(0, std²I) rows) or ``"orthogonal"`` (ORF: independent blocks of d orthogonal rows,
    each row marginally N(0, std²I)) as :class:`SamplerClaims`."""
    presets = {"gaussian": SamplerClaims(True, True, True, dim, None, "rows"),
               "orthogonal": SamplerClaims(True, True, True, dim, "rows", "blocks", True)}
    if preset not in presets:
        raise ValueError(f"claims must be a SamplerClaims or one of {sorted(presets)}, got {preset!r}")
    return presets[preset]


def _replays(first: torch.Tensor, again: torch.Tensor) -> bool:
    """Whether two draws of W from identically seeded generators are one draw: equal (NaN equal only to NaN), or, NaN
    at the same places, every entry within 2·(F_a + F_b) of its row, F the rounding floor of that row's largest entry
    in W's dtype (:func:`~kerneltheory.testing.checks.pair_rounding_floor`): reassociated sums (a QR or a reduction
    whose order varies between calls) change a draw by no more; a sampler reading another source of randomness does."""
    if _same_values(first, again):
        return True
    eps = torch.finfo(first.dtype).eps
    fa, fb = (pair_rounding_floor(w.detach().to(torch.float64).cpu().T, feature_eps=eps)[:, None]
              for w in (first, again))
    return _one_number(first.detach().cpu(), again.detach().cpu(), fa, fb)


def _as_matrix(w, label: str) -> torch.Tensor:
    """A copy of the draw as a tensor in its own floating dtype (a list of rows, e.g. from :mod:`random`, as
    float64), taken before the sampler is called again."""
    if isinstance(w, list):
        try:
            w = np.asarray(w, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{label}: sample(generator) returned a list that is not an [m, d] matrix of numbers: "
                             f"{exc}") from exc
    if isinstance(w, np.ndarray):
        if w.dtype.kind not in "fiub":  # object, complex, strings: torch.from_numpy would fail without naming the draw
            raise ValueError(f"{label}: sample(generator) must return a floating [m, d] frequency matrix, got a numpy "
                             f"array of dtype {w.dtype}")
        w = torch.from_numpy(w)
    if not isinstance(w, torch.Tensor) or w.dim() != 2 or not w.is_floating_point():
        shape = getattr(w, "shape", type(w).__name__)
        raise ValueError(f"{label}: sample(generator) must return a floating [m, d] frequency matrix, got {shape}")
    if w.numel() == 0:  # no row (or no column) to test: every check would pass on nothing
        raise ValueError(f"{label}: sample(generator) returned an empty frequency matrix {tuple(w.shape)}: m, d ≥ 1")
    return w.detach().cpu().clone()  # a copy: a sampler may redraw one buffer in place and return it every call


def callable_sampler_checks(
    sample,
    *,
    claims: SamplerClaims | str,
    draws: int,
    seed: int,
    alpha: float = 1e-6,
    std: float = 1.0,
    name: str = "sampler",
    rows: list[int] | None = None,
    projections: int = 3,
    block: int = 1024,
    redraws: bool = False,
    extended: bool = True,
) -> list[CheckResult]:
    """The sampler checks on any callable ``sample(generator) → [m, d]`` frequency matrix (torch or numpy).

    A sampler that draws from the global generators goes through
    :func:`~kerneltheory.testing.adapters.global_rng_sampler`, one that a module redraws through
    :func:`~kerneltheory.testing.adapters.module_frequencies`. Rows are standardised by ``std`` (the claimed
    N(0, std²I)); ``claims`` is a :class:`SamplerClaims` or a preset (:func:`claims_preset`). With
    ``extended`` (default) the list adds: the sign of *every* coordinate of every row of a block (the diagonal of
    a QR factor whose signs were not folded is caught at every coordinate, not only the first); KS of every
    coordinate of every row of a block; the independence of row norms and directions (Kendall's τ). With
    ``redraws``, a row checks that row norms change from one draw to the next: the ties within rounding over
    disjoint pairs of draws are counted against the chance a correct sampler has of one
    (:func:`~kerneltheory.testing.sampler_rounding.tie_bound`; a module that redraws directions but keeps its norms
    fails it, and fails "norms ~ χ_d" across redraws). Every draw is copied before the next call (a sampler may
    refill one buffer in place); a draw with a non-finite entry fails every check. The other
    arguments are those of :func:`sampler_checks`; m and d are read from one draw on a generator of its own,
    and :data:`REPLAY_DRAWS` consecutive draws are drawn twice: a sampler whose draws from identically seeded
    generators differ (one that ignores its generator, or reads the global generator now and then; NaN equals only
    NaN) raises ``ValueError``, since its verdict could not be replayed from the seed. Before that, for claims of
    Gaussian rows or coordinates, :data:`~kerneltheory.testing.replay.REPEAT_DRAWS` consecutive draws from one
    generator are compared: a sampler whose draws repeat (a cache, or draws of few values) gets the refused row
    ``independent draws`` (:func:`_repeated_draws`) before the checks' rows, which run without the replay (their
    standard errors assume independent draws, so they decide nothing of the cache; the report is never PASSED).
    """
    if not callable(sample):
        raise TypeError(f"sample must be a callable sample(generator) -> [m, d], got {type(sample).__name__}")
    std = check_real(std, "std", minimum=0.0, strict_min=True)
    seed = check_int(seed, "seed", minimum=0)
    try:
        ga = _aux_generator(seed, 1)
        first = _as_matrix(sample(ga), name)
    except Exception as exc:
        if not generator_misused(exc):
            raise
        raise TypeError(f"{name}: " + generator_misuse_message(exc, "its frequencies", "code that draws from the "
                                                                "global generators")) from exc
    m, d = first.shape
    check_fits_memory(8.0 * draws * m * d, f"draws = {draws} of {m}×{d} frequencies in float64",
                      "use fewer draws (kerneltheory audit: --draws)")
    c = claims_preset(claims, d) if isinstance(claims, str) else claims

    def one(generator: torch.Generator) -> torch.Tensor:
        w = _as_matrix(sample(generator), name)
        if tuple(w.shape) != (m, d):
            raise ValueError(f"{name}: every draw of sample(generator) must have the shape of the first, "
                             f"{(m, d)}, got {tuple(w.shape)}")
        return w.to(_F64)

    def draw(generator: torch.Generator, r: int) -> torch.Tensor:
        with kept_global_states():  # numpy's and random's states restored once per block (_global_states)
            return torch.stack([one(generator) for _ in range(r)])

    # consecutive draws from one generator first: a cache (every few calls) is named as such, where the replay
    # below, which alternates two generators' calls, would see another draw than it asked for; the checks still run
    # beside the refused row (a sampler of few values that claims Gaussian rows fails them, a review)
    def checks() -> list[CheckResult]:
        return _run(draw, lambda w: w / std, f"{name} m={m}", d, m, c, draws=draws, seed=seed, alpha=alpha,
                    rows=rows, projections=projections, block=block, extended=extended, redraws=redraws, std=std)

    repeated = _repeated_draws(draw, c, f"{name} m={m}", seed)
    if repeated is not None:
        return [repeated, *checks()]
    # REPLAY_DRAWS consecutive draws from two identically seeded generators (one pair passed a sampler that reads the
    # global generator now and then, a rejection branch without generator=g, at 1 of 4 seeds, its rows moving with
    # the caller's global seed)
    gb = _aux_generator(seed, 1)
    for i in range(REPLAY_DRAWS):
        a = first if i == 0 else _as_matrix(sample(ga), name)
        if not _replays(a, _as_matrix(sample(gb), name)):
            raise ValueError(f"{name}: draw {i + 1} from one generator and from an identically seeded one differ "
                             "beyond rounding: sample(generator) must draw only from the generator it is given "
                             "(torch.randn(..., generator=generator); a rejection or fallback branch without it reads "
                             "the global generator only now and then); code that draws from the global generators "
                             "goes through adapters.global_rng_sampler. Code already wrapped (global_rng_sampler, "
                             "module_frequencies) draws from a source they do not seed: a torch.Generator of its own "
                             "(an attribute of the module, whose state survives the copy and keeps advancing), "
                             "numpy.random.default_rng(), or random's generator; or it keeps state between calls (a "
                             "cache or a counter: the identically seeded run finds it where the first run left it)")
    return checks()
