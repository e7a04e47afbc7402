r"""Draws that depend on each other, seen where a mean or variance row fails (proofs/verification.md, item 13(g)).

Every check of :func:`~kerneltheory.testing.verify.check_feature_map` assumes independent draws: its standard errors
are those of n independent estimates. A map whose draws are dependent without ever repeating exactly (a module that
redraws only some of its rows each time, a batched path that shares directions across its batch) still draws the
right law at every draw, but with positive correlation between draws the standard error is too small and a correct
map FAILED ``unbiased`` (a redraw of 1/8 of the rows: lag-1 correlation 0.875, the standard error 3.6× too small).

:func:`serial_z` tests the draw order for positive serial dependence with a rank statistic whose null moments are
exact under independence whatever the law of the estimates (its normal law is the large-sample one): within each
stretch of draws that are identically distributed under the claim (one RNG block's draws through one path), the
ranks of one pair's estimates are a uniformly random permutation, and the circular lag-1 sum of the centred ranks
has the permutation mean and variance of Wald and Wolfowitz (1943); the stretches are independent, so their
standardised sum is a z-score (normal by the permutation central limit theorem). Draws that share something within a
block (a batch expanding one set of directions) are exchangeable inside it, so no order shows them;
:func:`between_segments_p` compares the blocks of each path instead (Kruskal–Wallis), on the row's draws and, since
a failure at an early look has seen only two or three blocks, on fresh draws in 32 blocks of 64
(:func:`fresh_blocks`, for maps with a batched path). :func:`dependence_refusal` turns a failed row into a refusal
when its draws are dependent by any of the tests (Bonferroni over the tests and the pairs read, at
:data:`DEPENDENCE_ALPHA`): a failure that could come from the dependence alone is no verdict. It never turns a pass
into anything else, so it cannot make a defect pass; under independence it takes a true failure away with
probability about :data:`DEPENDENCE_ALPHA` (the tests' large-sample laws).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from .checks import CheckResult
from .seeds import seed_for

DEPENDENCE_ALPHA = 1e-6  # the chance, under independent draws, that a failed row is refused as dependent
DISTINCT = 0.9  # the serial test reads a column only where at least this share of its draws in a segment are distinct
MODE_MAX = 0.9  # the between-blocks tests read a column only where no single value takes more than this share of draws


def _dominated(x: torch.Tensor, share: float, ordered: np.ndarray | None = None) -> torch.Tensor:
    """``[P]``: whether one value takes more than ``share`` of the draws of each column of ``[n, P]``: at least
    k + 1 equal values, k = ⌊share·n⌋, which in sorted order means s_i = s_{i+k} for some i. ``ordered``: the
    columns already sorted (:func:`_sort_rank`)."""
    n = x.shape[0]
    k = math.floor(share * n)  # more than share·n equal values span k + 1 positions: s_i = s_{i+k}
    if k >= n:
        return torch.zeros(x.shape[1], dtype=torch.bool)
    s = np.sort(x.numpy(), axis=0) if ordered is None else ordered
    return torch.from_numpy((s[: n - k] == s[k:]).any(0))


def _sort_rank(x: torch.Tensor, dim: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    """The float64 values ``x`` (``[n, P]``, or ``[k, n, P]`` with ``dim=1``) sorted along ``dim`` (a numpy array)
    and their ranks along ``dim``, ties averaged (1 … n; scipy's ``rankdata(method="average")``), from one argsort:
    a run of equal values at sorted positions i … j (from 0) has rank (i + j)/2 + 1. numpy's sort is 2–3× torch's
    on these shapes. Columns holding a NaN, which has no rank, go through scipy (NaN ranks)."""
    a = np.moveaxis(x.numpy(), dim, -1)
    if np.isnan(a).any():
        ranks = stats.rankdata(a, axis=-1, method="average")
        return np.moveaxis(np.sort(a, axis=-1), -1, dim), torch.from_numpy(np.moveaxis(ranks, -1, dim))
    order = np.argsort(a, axis=-1)
    s = np.take_along_axis(a, order, -1)
    n = s.shape[-1]
    start = np.ones(s.shape, dtype=bool)
    start[..., 1:] = s[..., 1:] != s[..., :-1]
    stop = np.ones(s.shape, dtype=bool)
    stop[..., :-1] = start[..., 1:]
    pos = np.arange(n)
    first = np.maximum.accumulate(np.where(start, pos, 0), axis=-1)
    last = np.minimum.accumulate(np.where(stop, pos, n)[..., ::-1], axis=-1)[..., ::-1]
    ranks = np.empty(s.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, -1)
    return np.moveaxis(s, -1, dim), torch.from_numpy(np.moveaxis(ranks, -1, dim))


def serial_z(samples: torch.Tensor, segments: list[int]) -> torch.Tensor:
    """``[P]`` z-scores of positive lag-1 dependence of the ``[n, P]`` draws, in draw order, split into the
    consecutive ``segments`` (their sizes sum to n), each of draws exchangeable under the claim. Per segment of
    n_s ≥ 4 draws and column, a = ranks − mean rank, R = Σ_t a_t·a_{t+1} (circular), whose permutation moments are,
    with S₂ = Σa², S₄ = Σa⁴ (S₁ = 0): E = −S₂/(n_s − 1), Var = (S₂² − S₄)/(n_s − 1) + (S₂² − 2S₄)/((n_s − 1)(n_s − 2))
    − E²; z = Σ(R − E)/√ΣVar, 0 where every segment is constant (no order to read) and where some segment of four or
    more draws has fewer than :data:`DISTINCT` of them distinct: with ties the centred ranks sit on a few entries and
    the permutation law is far from normal (k rare values among n equal ones give z ≈ √((n − 1)/(k(k − 1))) from one
    adjacency, which happens with probability about k(k − 1)/n; a review measured 10⁻³ to 10⁻² rejections at a
    nominal 4·10⁻⁸ on Bernoulli columns)."""
    if sum(segments) != samples.shape[0]:
        raise ValueError(f"segments must sum to the number of draws {samples.shape[0]}, got {sum(segments)}")
    num = torch.zeros(samples.shape[1], dtype=torch.float64)
    var = torch.zeros_like(num)
    tied = torch.zeros(samples.shape[1], dtype=torch.bool)
    starts = [sum(segments[:i]) for i in range(len(segments))]
    for n in sorted(set(segments)):  # the segments of one size at once: [k, n, P], one sort and one ranking
        if n < 4:
            continue
        parts = torch.stack([samples[s : s + n] for s, size in zip(starts, segments, strict=True) if size == n])
        srt, a = _sort_rank(parts.to(torch.float64).contiguous(), dim=1)
        tied |= torch.from_numpy(((1 + (srt[:, 1:] != srt[:, :-1]).sum(1)) / n < DISTINCT).any(0))
        a = a - a.mean(1, keepdim=True)
        r = (a * torch.roll(a, -1, 1)).sum(1)
        s2, s4 = (a * a).sum(1), (a**4).sum(1)
        e = -s2 / (n - 1)
        num += (r - e).sum(0)
        var += ((s2 * s2 - s4) / (n - 1) + (s2 * s2 - 2 * s4) / ((n - 1) * (n - 2)) - e * e).sum(0)
    return torch.where((var > 0) & ~tied, num / var.clamp_min(1e-300).sqrt(), torch.zeros_like(num))


def between_segments_p(samples: torch.Tensor, segments: list[int], paths: list[int]) -> torch.Tensor:
    """``[P]`` p-values of the Kruskal–Wallis test that the segments of one path (``paths[i]`` for segment i) draw
    one law: draws shared within an RNG block (a batch that expands one set of directions) are exchangeable inside
    the block, so no order shows them, but the blocks' ranks drift apart. H = (N − 1)·Σ nᵢ(R̄ᵢ − R̄)²/Σ(R − R̄)² over
    the pooled ranks of each path's segments (ties averaged), summed over the paths with their degrees of freedom,
    against χ² (its large-sample law under exchangeability); 1 where no path has two segments, and where one value
    takes more than :data:`MODE_MAX` of a path's pooled draws (rare values among equal ones: the scores sit on a few
    entries, as for :func:`serial_z`). Ties are otherwise allowed: a map with few values (sign features, 17 values at
    m = 16) keeps the test, whose scores spread over the groups (a review found its dependence hidden by a stricter
    rule)."""
    h = torch.zeros(samples.shape[1], dtype=torch.float64)
    df = 0
    starts = [sum(segments[:i]) for i in range(len(segments))]
    for path in sorted(set(paths)):
        mine = [i for i, p in enumerate(paths) if p == path and segments[i] > 0]
        if len(mine) < 2:
            continue
        pooled = torch.cat([samples[starts[i] : starts[i] + segments[i]] for i in mine]).to(torch.float64)
        ordered, ranks = _sort_rank(pooled)
        tied = _dominated(pooled, MODE_MAX, ordered)
        centred = ranks - ranks.mean(0)
        total = (centred * centred).sum(0)
        between = torch.zeros_like(h)
        at = 0
        for i in mine:
            part = centred[at : at + segments[i]]
            between += segments[i] * part.mean(0) ** 2
            at += segments[i]
        h += torch.where((total > 0) & ~tied, (pooled.shape[0] - 1) * between / total.clamp_min(1e-300),
                         torch.zeros_like(h))
        df += len(mine) - 1
    if df == 0:
        return torch.ones_like(h)
    return torch.from_numpy(stats.chi2.sf(h.numpy(), df)).to(torch.float64)


def block_segments(n: int, blocks: list[int], split=None) -> tuple[list[int], list[int]]:
    """The segments of the first ``n`` draws and the path of each: each RNG block of ``blocks`` (sizes in order),
    cut by ``split(r)`` (the sizes of its stretches through each path, in the same order for every block; the whole
    block when None)."""
    out, paths, have = [], [], 0
    for r in blocks:
        if have >= n:
            break
        r = min(r, n - have)
        for path, size in enumerate(split(r) if split is not None else [r]):
            if size > 0:
                out.append(size)
                paths.append(path)
        have += r
    if have < n:
        raise ValueError(f"blocks cover {have} draws, fewer than the {n} given")
    return out, paths


FRESH_BLOCKS, FRESH_SIZE = 32, 64  # the fresh draws of a failed row: 32 RNG blocks of 64 draws


def fresh_blocks(estimates, seed: int, split=None) -> tuple[torch.Tensor, tuple[list[int], list[int]]]:
    """:data:`FRESH_BLOCKS` new RNG blocks of :data:`FRESH_SIZE` draws each, ``estimates(generator, r)`` from
    generators seeded apart from the checks' (``seed_for("dependence", seed)`` + block), and their segments: draws the
    failed row never saw, in blocks small enough that there are many (a failure at an early look has seen only two or
    three blocks, too few to tell a block that shares its draws' directions; 16 blocks of 16 were too few for a batch
    sharing the directions of half its rows, and 32 blocks of 32 for a batch sharing 4 of its 64 rows, which FAILED
    at 11 of 68 seeds: a share ρ of a batch's rows inflates the variance of a block's mean by 1 + (B − 1)ρ, so larger
    blocks B show it, 1 of 113 seeds failing at B = 64). A user's sampler is drawn at the pairs
    :func:`dependence_refusal` reads, through its batched path (``_Evaluator.at_columns``, ``draw_batched``); other
    estimates once per run, for every pair."""
    base = seed_for("dependence", seed)
    parts = [estimates(torch.Generator().manual_seed(base + b), FRESH_SIZE).to(torch.float64).cpu()
             for b in range(FRESH_BLOCKS)]
    return torch.cat(parts), block_segments(FRESH_BLOCKS * FRESH_SIZE, [FRESH_SIZE] * FRESH_BLOCKS, split)


FRESH_EXTRA = 8  # the fresh draws also read the row's pairs of the 8 smallest p-values


TIES_MIN = 6  # consecutive draws with every estimate equal, from which draws may repeat (replay.REPEAT_TIES)
def adjacent_tie_moments(counts: torch.Tensor) -> tuple[float, float]:
    """The mean and variance, over the n! orders of a sequence holding the values ``counts`` times each (n = sum),
    of the number of adjacent positions i, i + 1 with equal values. With (c)_j the falling factorial,
    S_j = Σ_k (c_k)_j and N_j = (n)_j, one position ties with probability p₁ = S₂/N₂, two overlapping ones (three
    equal values in a row) with p₂ = S₃/N₃, two disjoint ones with p₃ = (S₄ + S₂² − Σ_k (c_k)₂²)/N₄, and over the
    n − 1 positions (2(n − 2) ordered overlapping pairs, (n − 2)(n − 3) disjoint ones)
    Var = (n − 1)p₁(1 − p₁) + 2(n − 2)(p₂ − p₁²) + (n − 2)(n − 3)(p₃ − p₁²)
    (checked by enumeration in tests/test_dependence.py)."""
    c = counts.to(torch.float64)
    n = float(c.sum())
    if n < 4:
        raise ValueError(f"counts must sum to at least 4, got {n:g}")
    f2, f3, f4 = c * (c - 1), c * (c - 1) * (c - 2), c * (c - 1) * (c - 2) * (c - 3)
    p1 = float(f2.sum()) / (n * (n - 1))
    p2 = float(f3.sum()) / (n * (n - 1) * (n - 2))
    p3 = (float(f4.sum()) + float(f2.sum()) ** 2 - float((f2 * f2).sum())) / (n * (n - 1) * (n - 2) * (n - 3))
    mean = (n - 1) * p1
    var = (n - 1) * p1 * (1 - p1) + 2 * (n - 2) * (p2 - p1 * p1) + (n - 2) * (n - 3) * (p3 - p1 * p1)
    return mean, max(var, 0.0)


def _repeated_draws(row: CheckResult, samples: torch.Tensor) -> CheckResult | None:
    """The refusal of a failed row whose consecutive draws repeat: T_c, the number of draws r whose estimates at
    every pair equal draw r − 1's, is at least :data:`TIES_MIN` and significantly above what the same draws give in
    a random order. Under independent draws the sequence is exchangeable: given the multiset of the draws (how many
    times each estimate vector occurs), every order is equally likely, so T_c has the permutation mean and variance
    of :func:`adjacent_tie_moments`; the row is refused when z = (T_c − mean)/sd has a one-sided normal p-value below
    :data:`DEPENDENCE_ALPHA` and T_c has one under a Poisson law of mean max(mean, var) (where ties are sparse the
    normal tail alone is far too light). A sampler that redraws every N calls (its maps are right, its standard
    errors √N too small) is refused; a map whose draws all agree is no repeat (a deterministic map: one value,
    variance 0, every order the same). The earlier rule compared T_c with the ties between draws n/2 apart and missed
    a redraw every 200 calls whose redraw fell late in a look of 256 draws (72 ties of 128 at that lag against 254
    consecutive ones: FAILED); the permutation moments read every pair of draws (there z ≈ 17). Read on every pair
    of the run (``samples`` of all families): a family whose estimates agree over the whole window (one map's
    estimate at a pair where two maps round alike) looks deterministic on its own. NaN equals NaN here (a map that
    returns NaN at a pair in every draw repeats there)."""
    x = samples.to(torch.float64)
    n = x.shape[0]
    same = lambda a, b: ((a == b) | (torch.isnan(a) & torch.isnan(b))).all(-1)  # noqa: E731
    consecutive = int(same(x[1:], x[:-1]).sum())
    if consecutive < TIES_MIN or n < 4:
        return None
    nan = torch.isnan(x)
    key = torch.cat([torch.where(nan, 0.0, x), nan.to(torch.float64)], -1)  # equal rows ⇔ equal draws, NaN = NaN
    counts = torch.unique(key, dim=0, return_counts=True)[1]
    mean, var = adjacent_tie_moments(counts)
    if var <= 0:
        return None
    z = (consecutive - mean) / math.sqrt(var)
    # where ties are sparse T_c is nearly Poisson and the normal tail far too light (a review: 4.4e-4 refused at a
    # nominal 1e-6 with 256 draws on 256 values); the Poisson tail of mean max(mean, var) guards it
    p = max(float(stats.norm.sf(z)), float(stats.poisson.sf(consecutive - 1, max(mean, var))))
    if not p < DEPENDENCE_ALPHA:
        return None
    return CheckResult.refusal(
        f"the draws repeat: {consecutive} of {n - 1} consecutive draws give exactly the estimates of the draw before "
        f"at every pair, against {mean:.3g} ± {math.sqrt(var):.3g} in a random order of the same draws (z = {z:.3g}; "
        "a sampler that keeps its frequencies for several calls, a cache keyed on a counter); the standard errors "
        "assume independent draws, so no failure can be read from them; each call sample(generator) must draw afresh "
        f"(without that: {row.detail})",
        name=row.name, claim=row.claim, alpha=row.alpha, sample_size=row.sample_size, seed=row.seed)


def dependence_refusal(row: CheckResult, samples: torch.Tensor, segments: tuple[list[int], list[int]],
                       labels: list[str], fresh=None, whole: torch.Tensor | None = None) -> CheckResult | None:
    """The refusal of a failed ``row`` whose draws ``[n, P]`` (in draw order; ``segments`` from
    :func:`block_segments`) are dependent, or None. The tests: :func:`serial_z` (one-sided, positive dependence) and
    :func:`between_segments_p` on these draws at every pair, and, when ``fresh(columns)`` gives new draws of those
    pairs and their segments (:func:`fresh_blocks`), :func:`between_segments_p` on those. Where the row keeps its
    pairs' p-values (``row.pair_p``, from the checks whose statistic is a symmetric function of the draws), the
    fresh draws are read at the rejecting pairs (P·p ≤ α) and at the :data:`FRESH_EXTRA` pairs of smallest p (where
    dependence that inflates the spread shows first), and half of :data:`DEPENDENCE_ALPHA` goes to the rejecting
    pairs alone (all three tests, Bonferroni over them: more power where the failure's own pair carries the
    dependence), half to every test at every pair read (Bonferroni over all of them: dependence that shows at another
    pair of the family, which the failure's pair hides). Without p-values, or where a rejecting pair holds rare-event
    estimates (one value in more than :data:`MODE_MAX` of them, which no test reads), all of it goes to every test at
    every pair. A symmetric statistic leaves each segment's order, and the blocks' share of the pooled draws, as
    random as under independence, so the selections keep the tests' laws (proofs/verification.md, item 13(g))."""
    if row.status != "failed" or row.method == "exhaustive" or samples.shape[0] < 8:
        return None
    # repeated draws first: they also make a pair look deterministic (every draw one estimate up to rounding), whose
    # comparison with the target (z = ±∞) is otherwise final; ``whole``: every pair of the run's draws
    repeated = _repeated_draws(row, samples if whole is None else whole)
    if repeated is not None:
        return repeated
    if not math.isfinite(row.statistic):  # a certain failure (a bound broken, a claim not a number) needs no SE
        return None
    sizes, paths = segments
    x = samples.to(torch.float64)
    count = x.shape[1]
    every = torch.arange(count)
    z = serial_z(x, sizes)
    own = {"serial": torch.from_numpy(stats.norm.sf(z.numpy())).to(torch.float64),
           "blocks": between_segments_p(x, sizes, paths)}
    chosen, read = None, every
    pair_p = row.pair_p
    if pair_p is not None and tuple(pair_p.shape) == (count,):
        rejecting = torch.nonzero(pair_p * count <= row.alpha).flatten()
        # a rejecting pair of rare-event estimates is read by no test (MODE_MAX): no pair is singled out then
        if len(rejecting) and not bool(_dominated(x[:, rejecting], MODE_MAX).any()):
            chosen = rejecting
        smallest = torch.argsort(pair_p)[:FRESH_EXTRA]
        read = torch.unique(torch.cat([rejecting, smallest]))
    tests = dict(own)
    more_sizes: list[int] = []
    if fresh is not None:
        more, (more_sizes, more_paths) = fresh(read)
        tests["fresh"] = torch.ones(count, dtype=torch.float64).index_put_((read,), between_segments_p(
            more, more_sizes, more_paths))
    # (test, pairs, number of p-values sharing the part's level, the part's share of DEPENDENCE_ALPHA)
    parts = [[(name, every if name != "fresh" else read) for name in tests]]
    shares = [1.0]
    if chosen is not None:
        parts.insert(0, [(name, chosen) for name in tests])
        shares = [0.5, 0.5]
    best = None
    for part, share in zip(parts, shares, strict=True):
        n_p = sum(len(c) for _, c in part)
        for name, cols in part:
            ratio = tests[name][cols] * n_p / (share * DEPENDENCE_ALPHA)
            at = int(torch.argmin(ratio))
            if best is None or float(ratio[at]) < best[0]:
                best = (float(ratio[at]), name, int(cols[at]))
    if best is None or not best[0] < 1.0:
        return None
    _, which, worst = best
    if which == "serial":
        r = float(z[worst]) / samples.shape[0] ** 0.5
        how = (f"consecutive draws' estimates are correlated (rank lag-1 correlation ≈ {r:.2f}, "
               f"z = {float(z[worst]):.1f})")
    else:
        stretches = len(sizes) if which == "blocks" else len(more_sizes)
        how = (f"the RNG blocks' estimates differ beyond their spread within a block (Kruskal–Wallis p = "
               f"{float(tests[which][worst]):.2g} over {stretches} stretches, one per RNG block and path"
               f"{', of fresh draws' if which == 'fresh' else ''}: the draws of a block share something)")
    return CheckResult.refusal(
        f"the draws are not independent: at {labels[worst]} {how}, so the standard errors, which assume independent "
        "draws, are too small and the failure could come from the dependence alone; each call sample(generator) "
        "(each redraw of a module, each map of a batch) must draw all of its frequencies afresh (without the "
        f"dependence the row reads: {row.detail})",
        name=row.name, claim=row.claim, alpha=row.alpha, sample_size=row.sample_size, seed=row.seed)
