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
budget. A correct map is never rejected early (except with probability ≤ α) and so uses the whole budget.

Proof: proofs/verification.md (sequential α-spending). Tests: tests/test_sequential.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from .._validation import check_int, check_real
from ..montecarlo import block_seed

FIRST_LOOK = 256
EARLY_SHARE = 0.2

__all__ = ["EARLY_SHARE", "FIRST_LOOK", "alpha_spending", "looks", "sequential_draws"]


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
    a = check_real(alpha, "alpha", minimum=0.0, maximum=1.0, strict_min=True)
    k = check_int(num_looks, "num_looks", minimum=1)
    rho = check_real(early_share, "early_share", minimum=0.0, maximum=1.0, strict_max=True)
    if k == 1:
        return [a]
    return [rho * a / (k - 1)] * (k - 1) + [(1 - rho) * a]


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
    b_size = check_int(block, "block", minimum=1)
    points = looks(draws, first)
    if any(p % b_size for p in points[:-1]):
        raise ValueError(f"block must divide every look {points[:-1]}, got {b_size}")
    parts: list[torch.Tensor] = []
    have, b = 0, 0
    for k, target in enumerate(points):
        while have < target:
            r = min(b_size, target - have)
            out = estimates(torch.Generator().manual_seed(block_seed(seed, b)), r)
            if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != r:
                shape = getattr(out, "shape", type(out).__name__)
                raise ValueError(f"estimates(generator, {r}) must return a [{r}, P] tensor, got {shape}")
            parts.append(out.detach().to(torch.float64).cpu())
            have, b = have + r, b + 1
        yield k, torch.cat(parts) if len(parts) > 1 else parts[0]
