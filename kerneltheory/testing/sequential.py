r"""Sequential testing: stop as soon as a claim's verdict is clear, with α held for any stopping time.

A check of a claim looks at its draws K times, after n₁ < n₂ < … < n_K = N draws (N the budget; the looks
double from :data:`FIRST_LOOK`: 256, 512, …, N). Look k tests at level α_k, with

    α_k = ρ·α/(K − 1) for k < K,    α_K = (1 − ρ)·α,    ρ = :data:`EARLY_SHARE`,

so Σ_k α_k = α (group-sequential α-spending with Bonferroni across looks). The check *rejects* at the first
look whose p-value is ≤ α_k, and passes only if no look rejects. Its false-failure probability is at most
P(∪_k {look k rejects}) ≤ Σ_k α_k = α under H₀, whatever rule decides when to stop looking: a stopping time
that depends on the draws, on other checks, or on the user's patience cannot raise it (the union bound does
not care which looks were taken). Each look's p-value is itself valid at its own sample size (the checks of
:mod:`~kerneltheory.testing.checks`), which is all the bound needs; the looks need not be independent.

The price is small: in the normal tail a level α/…(1 − ρ) costs little power (the z threshold at α = 10⁻⁷ rises
from 5.33 to 5.37 for ρ = 0.2), while a clear defect is rejected at 256 or 512 draws instead of the whole
budget. A correct map is never rejected early (except with probability ≤ α); it runs to the budget unless its
checks accept early (below).

**Accepting early (futility).** A correct map is what most checks see, so a check may also *stop to accept* at
the early looks with n_k ≥ N/4 (:data:`FUTILITY_FROM`), once its draws exclude every effect that the full budget
would detect with power ≥ 1 − β (β = 1 − :data:`FUTILITY_POWER`): with δ*_p = (z*_p + z_β)·SE_N,p, where z*_p is
the |z| at which the last look's test rejects pair p and SE_N,p its standard error after all N draws, look k
accepts when |mean_p − target_p| + c_k·SE_k,p ≤ δ*_p at every pair, c_k = Φ̄⁻¹(γ/L) for the L futility looks
and γ = :data:`FUTILITY_MISS`. Stopping to accept only removes chances to reject, so α is untouched; at a mean
shift of one pair that the last look's normal test detects with power ≥ 1 − β, one futility look accepts with
probability ≤ γ/L (normal approximation of the mean at that look, δ* computed from the look's own variance and
skewness estimates), so the power there falls by at most γ. Only checks decided by a normal approximation take
part (bounded-only, median-of-means and refused rows run to the end), and the draws stop when every check of
every claim is decided.

What accepting early does not protect: an accepted check has seen n_k draws, not N. A defect that shows only in
rare draws (a non-finite estimate, a pair whose draws were all equal so far and would later differ, rare huge
draws that would have failed the tail guard and made the full budget refuse) is found with the probability that
n_k draws give, which can be far below that of N draws. Draws taken after the accept for other checks are tested
once the draws end, at the last look's level (a rejection, a certain failure or a dependence refusal replaces the
accept; no α beyond the union bound), but once every check has accepted no further draw is taken: a sampler
whose behaviour changes after the accepting look (a warm-up, a schedule, a cache) passes unless the audit runs with
``accept_early=False``.

Proof: proofs/verification.md (sequential α-spending, accepting early). Tests: tests/test_sequential.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from .._validation import check_int, check_real
from ..montecarlo import block_seed

FIRST_LOOK = 256
EARLY_SHARE = 0.2
FUTILITY_POWER = 0.9  # 1 − β: the full budget's power at the effects that accepting early protects
FUTILITY_MISS = 0.01  # γ: the most that accepting early may lower the power at those effects
FUTILITY_FROM = 0.25  # accepting early is tried at the looks with n_k ≥ FUTILITY_FROM · N

__all__ = [
    "EARLY_SHARE",
    "FIRST_LOOK",
    "FUTILITY_FROM",
    "FUTILITY_MISS",
    "FUTILITY_POWER",
    "power_z",
    "Futility",
    "alpha_spending",
    "futility_plan",
    "looks",
    "sequential_draws",
]


@dataclass(frozen=True)
class Futility:
    """What a check needs to decide whether it may accept at an early look: the last look's draw count
    ``final_draws`` and level ``final_alpha``, the look's margin ``margin`` (c_k, in standard errors) and the power
    ``power`` (1 − β) that the protected effects have at the full budget."""

    final_draws: int
    final_alpha: float
    margin: float
    power: float = FUTILITY_POWER

    def __post_init__(self) -> None:
        check_int(self.final_draws, "final_draws", minimum=1)
        check_real(self.final_alpha, "final_alpha", minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)
        check_real(self.margin, "margin", minimum=0.0)
        check_real(self.power, "power", minimum=0.5, maximum=1.0, strict_max=True)

    @property
    def z_power(self) -> float:
        """z_β = Φ⁻¹(1 − β)."""
        return power_z(self.power)


def power_z(power: float = FUTILITY_POWER) -> float:
    """Φ⁻¹(power), the normal quantile: with power = 1 − β, z_β, the standard errors beyond the critical value at
    which a normal test detects an effect with that power (accepting early here; a pass's resolution in
    :func:`~kerneltheory.testing.checks.mean_check` and the 1/m check)."""
    return float(torch.special.ndtri(torch.tensor(power, dtype=torch.float64)))


def futility_plan(
    points: list[int], miss: float = FUTILITY_MISS, start: float = FUTILITY_FROM
) -> dict[int, float]:
    """``{look index: c_k}`` for the early looks of ``points`` with n_k ≥ ``start``·N where a check may accept:
    c_k = Φ̄⁻¹(``miss``/L), L the number of such looks (the power lost at a protected effect is ≤ ``miss``).
    ``miss = 0`` turns accepting early off (an empty plan); ``miss`` ≤ 1/2 (above, c_k could be negative: a
    miss rate that large protects nothing)."""
    g = check_real(miss, "miss", minimum=0.0, maximum=0.5)
    f = check_real(start, "start", minimum=0.0, maximum=1.0)
    if any(b <= a for a, b in zip(points, points[1:], strict=False)) or (points and points[0] < 1):
        raise ValueError(f"points must be increasing draw counts ≥ 1, got {points}")
    if g == 0.0 or len(points) < 2:
        return {}
    early = [k for k, n in enumerate(points[:-1]) if n >= f * points[-1]]
    if not early:
        return {}
    c = -power_z(g / len(early))
    return {k: c for k in early} if math.isfinite(c) else {}


def looks(draws: int, first: int = FIRST_LOOK) -> list[int]:
    """The draw counts at which a sequential check looks: first, 2·first, 4·first, … below ``draws``, then
    ``draws`` itself (a single look when ``draws`` ≤ ``first``)."""
    n = check_int(draws, "draws", minimum=1)
    f = check_int(first, "first", minimum=1)
    out = []
    k = f
    while k < n:
        out.append(k)
        k *= 2
    return [*out, n]


def alpha_spending(alpha: float, num_looks: int, early_share: float = EARLY_SHARE) -> list[float]:
    """The level of each look: ρα/(K − 1) at each of the K − 1 early looks, (1 − ρ)α at the last; they sum to α."""
    a = check_real(alpha, "alpha", minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)
    k = check_int(num_looks, "num_looks", minimum=1)
    rho = check_real(early_share, "early_share", minimum=0.0, maximum=1.0, strict_max=True)
    if k == 1:
        return [a]
    return [rho * a / (k - 1)] * (k - 1) + [(1 - rho) * a]


def block_sizes(draws: int, block: int = FIRST_LOOK, first: int = FIRST_LOOK) -> list[int]:
    """The sizes of the RNG blocks :func:`sequential_draws` draws, in order: ``block`` each, the last one before each
    look cut at the look. ``block`` must divide every look but the last."""
    b_size = check_int(block, "block", minimum=1)
    points = looks(draws, first)
    if any(p % b_size for p in points[:-1]):
        raise ValueError(f"block must divide every look {points[:-1]}, got {b_size}")
    sizes, have = [], 0
    for target in points:
        while have < target:
            sizes.append(min(b_size, target - have))
            have += sizes[-1]
    return sizes


def sequential_draws(
    estimates: Callable[[torch.Generator, int], torch.Tensor],
    draws: int,
    *,
    seed: int,
    block: int = FIRST_LOOK,
    first: int = FIRST_LOOK,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Draw ``estimates(generator, r) → [r, P]`` in RNG blocks of ``block`` draws and yield
    ``(look index, all draws so far [n_k, P] in float64)`` at each look of :func:`looks`.

    Block b uses a CPU generator seeded with :func:`~kerneltheory.montecarlo.block_seed` (seed, b), as the
    moment engine does, so the draws of a seed are the same whether or not the caller stops early, and the first
    n_k draws are a prefix of the full run. The caller stops by leaving the loop.
    """
    check_int(seed, "seed", minimum=0)
    points, sizes = looks(draws, first), block_sizes(draws, block, first)
    parts: list[torch.Tensor] = []
    have, b = 0, 0
    for k, target in enumerate(points):
        while have < target:
            r = sizes[b]
            out = estimates(torch.Generator().manual_seed(block_seed(seed, b)), r)
            if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != r:
                shape = getattr(out, "shape", type(out).__name__)
                raise ValueError(f"estimates(generator, {r}) must return a [{r}, P] tensor, got {shape}")
            if not out.dtype.is_floating_point:  # complex estimates lost their imaginary part in the cast (a warning)
                raise ValueError(f"estimates(generator, {r}) must return real floating-point estimates, got "
                                 f"{out.dtype}")
            if parts and out.shape[1] != parts[0].shape[1]:
                raise ValueError(f"estimates(generator, {r}) returned {out.shape[1]} columns in block {b}, "
                                 f"{parts[0].shape[1]} before: the same P pairs in every block")
            parts.append(out.detach().to(torch.float64).cpu())
            have, b = have + r, b + 1
        yield k, torch.cat(parts) if len(parts) > 1 else parts[0]
