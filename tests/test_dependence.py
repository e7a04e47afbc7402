"""Dependent draws (proofs/verification.md, item 13(g)): a failed mean or variance row whose draws are dependent is
refused, not failed. The permutation moments of the serial statistic are checked by enumeration, both tests' levels
in the tail over many columns of iid heavy-tailed draws, and the review's correct-but-dependent maps (a module that
redraws an eighth of its rows, a batch sharing its directions) against a map with a biased plain path, which must
still fail."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy import stats
from torch import nn

from kerneltheory import kernels
from kerneltheory.testing import check_feature_map
from kerneltheory.testing.adapters import from_module
from kerneltheory.testing.checks import CheckResult
from kerneltheory.testing.dependence import (
    _repeated_draws,
    adjacent_tie_moments,
    between_segments_p,
    block_segments,
    serial_z,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_serial_z_uses_the_exact_permutation_moments():
    """For n = 6 values, the circular lag-1 sum over all 720 orders has exactly the mean and variance the statistic
    standardises with: z over the orders has mean 0 and variance 1. A column with ties (fewer than 90 % distinct
    values in a segment) is not tested: z = 0 (a review found rare values among equal ones far from normal)."""
    a = torch.tensor([0.31, 0.3, -1.2, 2.0, 0.7, -0.4], dtype=torch.float64)
    zs = torch.stack([serial_z(a[list(p)].unsqueeze(1), [6]) for p in itertools.permutations(range(6))])
    assert abs(float(zs.mean())) < 1e-12 and abs(float(zs.var(unbiased=False)) - 1) < 1e-12
    rare = torch.zeros(256, 1, dtype=torch.float64)
    rare[[40, 41]] = 1.0  # one adjacency of the two rare values: z ≈ √255 ≈ 16 under the normal law
    assert float(serial_z(rare, [256])) == 0.0


def test_ranks_are_scipys_average_ranks_and_the_sort_is_shared():
    """The one ranking of the dependence tests (one numpy argsort per column, ties averaged) gives scipy's
    ``rankdata(method="average")`` exactly, with ties, infinities, NaN (ranks NaN, as scipy's) and segments stacked
    along dim 1; the sorted values it returns are the columns sorted, and the rare-value rule reads them as it reads
    its own sort."""
    from kerneltheory.testing.dependence import _dominated, _sort_rank

    g = torch.Generator().manual_seed(5)
    x = torch.randn(300, 7, generator=g, dtype=torch.float64)
    x[:, 1] = torch.round(x[:, 1] * 2)  # ties
    x[:, 2] = 0.0  # one value
    x[::7, 3] = math.inf
    x[::11, 3] = -math.inf
    x[5, 4] = math.nan
    x[:290, 5] = 1.0  # 290 of 300 equal: dominated at 0.9
    for data, dim in ((x, 0), (x.reshape(3, 100, 7), 1)):
        ordered, ranks = _sort_rank(data, dim)
        want = stats.rankdata(data.numpy(), axis=dim, method="average")
        assert ranks.dtype == torch.float64
        assert torch.equal(ranks.isnan(), torch.from_numpy(want).isnan())
        ok = ~ranks.isnan()
        assert torch.equal(ranks[ok], torch.from_numpy(want)[ok])
        assert torch.equal(torch.from_numpy(ordered).nan_to_num(9.0), torch.sort(data, dim).values.nan_to_num(9.0))
    ordered, _ = _sort_rank(x)
    assert _dominated(x, 0.9, ordered).tolist() == _dominated(x, 0.9).tolist() == [False, False, True, False,
                                                                                   False, True, False]


def test_both_tests_hold_their_level_in_the_tail(kt_seed):
    """4000 columns of iid log-normal draws (heavy tails, 512 draws in 8 blocks, two paths per block as a mixed
    sampler's): the rejection rates at α′ = 10⁻³ are not significantly above α′ (one-sided binomial tests at 10⁻³),
    and both tests see a shared effect per block (the between-blocks test) and a chain (the serial one)."""
    g = torch.Generator().manual_seed(kt_seed)
    x = torch.exp(2 * torch.randn(512, 4000, generator=g, dtype=torch.float64))
    sizes, paths = block_segments(512, [64] * 8, lambda r: [r // 4, r - r // 4])
    z = serial_z(x, sizes)
    p = between_segments_p(x, sizes, paths)
    level = 1e-3
    for rejected in (int((z > stats.norm.isf(level)).sum()), int((p < level).sum())):
        assert stats.binomtest(rejected, 4000, level, alternative="greater").pvalue > 1e-3, rejected
    shared = x[:, :50] + 3 * torch.randn(8, 50, generator=g, dtype=torch.float64).repeat_interleave(64, 0)
    assert float(between_segments_p(shared, sizes, paths).max()) < 1e-6
    # estimates with few values (17, as sign features at m = 16) keep the between-blocks test, at its level
    few = torch.distributions.Binomial(16, 0.3).sample((512, 4000)).to(torch.float64)
    rejected = int((between_segments_p(few, sizes, paths) < level).sum())
    assert stats.binomtest(rejected, 4000, level, alternative="greater").pvalue > 1e-3, rejected
    assert float(serial_z(few, sizes).abs().max()) == 0.0  # too many ties for the serial test: not read
    lifted = few[:, :50] + torch.tensor([0.0, 3.0]).repeat(4).repeat_interleave(64)[:, None]  # blocks shifted
    assert float(between_segments_p(lifted, sizes, paths).max()) < 1e-6
    chain = torch.cumsum(torch.randn(512, 50, generator=g, dtype=torch.float64), 0)
    assert float(serial_z(chain, sizes).min()) > 6


class PartialRedraw(nn.Module):
    """Each redraw replaces an eighth of the rows by fresh N(0, I) ones: every draw is m iid N(0, I) rows (unbiased
    for exp(xᵀy)), consecutive draws share seven eighths of them."""

    def __init__(self, d: int, m: int):
        super().__init__()
        self.register_buffer("proj", torch.randn(m, d, dtype=torch.float64))

    @torch.no_grad()
    def redraw(self):
        idx = torch.randperm(self.proj.shape[0])[: max(1, self.proj.shape[0] // 8)]
        self.proj[idx] = torch.randn(len(idx), self.proj.shape[1], dtype=self.proj.dtype)

    def forward(self, x):
        return torch.exp(x @ self.proj.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(self.proj.shape[0])


def _serially_dependent_report(pairs, d: int, m: int, seed: int):
    """check_feature_map of a sampler whose draws from one generator each keep seven eighths of the rows of the draw
    before (every draw m iid N(0, I) rows, consecutive ones dependent), its memory kept per generator so that a
    generator seeded alike replays it (unlike a module that carries its rows from any draw to the next)."""
    memory = {}  # id(generator) -> (generator, last draw): the generator is kept so that its id is not reused

    def sample(g):
        w = torch.randn(m, d, generator=g, dtype=torch.float64)
        if id(g) in memory:
            keep = torch.randperm(m, generator=g)[: m - m // 8]
            w[keep] = memory[id(g)][1][keep]
        memory[id(g)] = (g, w)
        return lambda x: torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(m)

    return check_feature_map(sample, kernels.softmax, dim=d, claims={"unbiased"}, seed=seed, sweep=False,
                             inputs=pairs)


def test_correct_maps_with_dependent_draws_are_refused_not_failed(kt_seed):
    """Review findings: both maps draw the right law at every draw and FAILED unbiased (|z| 6–16): the partial
    redraw by its serial correlation, the batch sharing one set of orthogonal directions (fresh norms per map) by
    the spread of its blocks. Both are refused where a row fails (a module that carries its rows from draw to draw is
    not replayable from a seed and raises; the same dependence kept per generator is refused by the serial test)."""
    d, m = 4, 16
    torch.manual_seed(kt_seed)
    g = torch.Generator().manual_seed(kt_seed)
    pairs = [tuple(0.5 * torch.nn.functional.normalize(torch.randn(8, d, generator=g, dtype=torch.float64), dim=-1)
                   for _ in range(2))]
    # (since a later review the repeated-draws row replays its 24 draws from one seed, and a module that keeps seven
    # eighths of its rows from the draw before does not replay: no verdict is given)
    with pytest.raises(ValueError, match="carries state from one draw to the next"):
        check_feature_map(from_module(PartialRedraw(d, m), redraw="redraw"), kernels.softmax, dim=d,
                          claims={"unbiased"}, seed=kt_seed, sweep=False, inputs=pairs)
    # the serial test still refuses such draws where they reach it: the same estimates, read as a user's estimator.
    # The refusal reads failed rows only, and where no row fails the map passes, rightly (every draw is unbiased):
    # refused at 29 of 30 seeds, passed at 1 (a random-seed run met one such seed, failing this test on the first
    # tree of its session too, when it asserted a refusal)
    partial = _serially_dependent_report(pairs, d, m, kt_seed)
    assert partial.status in ("REFUSED", "PASSED") and not partial.failures, str(partial)
    assert partial.passed or any("not independent" in c.detail and "lag-1" in c.detail for c in partial.refusals), (
        str(partial))

    def shared_directions(g, batch=None):
        r = 1 if batch is None else batch
        q, rr = torch.linalg.qr(torch.randn(m // d, d, d, generator=g, dtype=torch.float64))
        dirs = (q * torch.sign(torch.diagonal(rr, dim1=-2, dim2=-1)).unsqueeze(-2)).transpose(-1, -2).reshape(m, d)
        w = dirs * torch.randn(r, m, d, generator=g, dtype=torch.float64).norm(dim=-1)[..., None]

        def f(x):
            out = torch.exp(torch.einsum("nd,rmd->rnm", x, w) - (x * x).sum(-1)[None, :, None] / 2) / math.sqrt(m)
            return out if batch is not None else out[0]
        return f

    shared = check_feature_map(shared_directions, kernels.softmax, dim=d, claims={"unbiased"}, seed=kt_seed,
                               sweep=False)
    assert shared.status == "REFUSED" and not shared.failures, str(shared)
    assert any("Kruskal" in c.detail for c in shared.refusals), str(shared)


def test_adjacent_tie_moments_are_the_permutation_moments():
    """Mean and variance of the number of equal adjacent values over every order of a multiset, by enumeration."""
    for seq in ([0, 0, 1, 1, 2], [0, 0, 0, 1, 1, 2], [0, 1, 2, 3], [0, 0, 0, 0, 1], [0, 0, 1, 1, 1, 2, 2],
                [0, 0, 0, 1, 1, 1, 1, 2]):
        ties = [sum(p[i] == p[i + 1] for i in range(len(p) - 1)) for p in set(itertools.permutations(seq))]
        mean = sum(ties) / len(ties)  # the distinct orders of a multiset are equally likely under a uniform order
        var = sum((t - mean) ** 2 for t in ties) / len(ties)
        got = adjacent_tie_moments(torch.tensor([seq.count(k) for k in sorted(set(seq))]))
        assert got == pytest.approx((mean, var), rel=1e-12, abs=1e-12), (seq, got, mean, var)
    with pytest.raises(ValueError, match="counts must sum to at least 4"):
        adjacent_tie_moments(torch.tensor([1, 2]))


def test_repeated_draws_are_refused_at_every_phase_and_independent_ties_are_not(kt_seed):
    """A sampler that redraws every L calls gives runs of equal draws; the refusal compared the consecutive ties with
    those n/2 apart and missed a redraw that fell late in a look of 256 draws (a review's sampler redrawing every
    200 calls FAILED unbiased once the norm-sweep pilot moved the phase of its global counter). Against the
    permutation moments it is refused at every phase of L = 2, 50, 200. Independent draws with ties (uniform on 10,
    20 or 50 values) are not: the old rule refused 0.6–4.2 % of such runs, so a biased discrete map's failure became
    a refusal; at the rule's 10⁻⁶ none of 1500 is expected (at most one allowed: the normal tail of a tie count is
    an approximation)."""
    row = CheckResult.refusal("a failed row", name="unbiased[x]", claim="unbiased", alpha=1e-6, sample_size=256,
                              seed=0)
    g = torch.Generator().manual_seed(kt_seed)
    for every in (2, 50, 200):
        for phase in range(every):
            ids = (torch.arange(256) + phase) // every
            x = torch.randn(int(ids.max()) + 1, 5, generator=g, dtype=torch.float64)[ids]
            refusal = _repeated_draws(row, x)
            assert refusal is not None and "the draws repeat" in refusal.detail, (every, phase)
    refused = sum(_repeated_draws(row, torch.randint(0, k, (256, 2), generator=g).double()) is not None
                  for k in (4, 5, 7) for _ in range(500))  # 16, 25 and 49 values of a pair of coordinates
    assert refused <= 1, refused
    one_map = torch.randn(1, 5, generator=g, dtype=torch.float64).expand(256, 5)
    assert _repeated_draws(row, one_map) is None  # a deterministic map: no order differs, it still fails
    nan_runs = torch.where(torch.arange(256)[:, None] % 64 < 32, math.nan, 1.0).expand(256, 3).clone()
    assert _repeated_draws(row, nan_runs) is not None  # NaN equals NaN: runs of NaN draws repeat


def test_a_batch_sharing_a_sixteenth_of_its_rows_is_not_failed():
    """A review's correct sampler: every map of a batch is N(0, I) row by row, but 4 of its 64 rows are shared by the
    whole batch, so two maps of one batch have estimates correlated by 4/64 and a block's mean has 1 + (B − 1)/16
    times the variance of B independent draws. With the fresh draws in 32 blocks of 32 it FAILED ``unbiased`` at 11
    of 68 seeds (Kruskal–Wallis on 31 degrees of freedom at about 2.9× inflation is not always below 10⁻⁶ over the
    pairs), among them seeds 1, 5 and 7, read here; in 32 blocks of 64 (4.9×) at 1 of 113 (a random-seed run's, at
    the zero family: the limit proofs/verification.md 13(g) states), so this test reads those fixed seeds rather than
    a random one. It is refused, or passes where no row failed."""
    d, m, k = 8, 64, 4

    def sampler(g, batch=None):
        r = 1 if batch is None else batch
        shared = torch.randn(k, d, generator=g, dtype=torch.float64)
        w = torch.cat([shared.expand(r, k, d), torch.randn(r, m - k, d, generator=g, dtype=torch.float64)], 1)

        def f(x):
            out = torch.exp(torch.einsum("nd,rmd->rnm", x, w) - (x * x).sum(-1)[None, :, None] / 2) / math.sqrt(m)
            return out if batch is not None else out[0]
        return f

    for seed in (1, 5, 7):
        report = check_feature_map(sampler, kernels.softmax, dim=d, claims={"unbiased"}, seed=seed)
        assert report.status in {"REFUSED", "PASSED"} and not report.failures, (seed, str(report))
        if report.status == "REFUSED":
            assert any("Kruskal" in c.detail for c in report.refusals), (seed, str(report))


def test_a_plain_path_tested_at_a_quarter_share_is_noted(kt_seed):
    """Review finding: a bias confined to the plain path of a sampler with a batched one is diluted to a quarter of
    the draws; the report says so and names batched=False, which tests that path alone (proofs/verification.md,
    item 13(h)). A sampler of one path gets no such note."""
    d, m = 4, 16

    def sample(g, batch=None):
        w = torch.randn(m, d, generator=g, dtype=torch.float64) if batch is None else \
            torch.randn(batch, m, d, generator=g, dtype=torch.float64)
        if batch is None:
            return lambda x: torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(m)
        return lambda x: (torch.exp(torch.einsum("nd,rmd->rnm", x, w) - (x * x).sum(-1)[None, :, None] / 2)
                          / math.sqrt(m))

    both = check_feature_map(sample, kernels.softmax, dim=d, claims={"unbiased"}, seed=kt_seed, sweep=False)
    assert both.passed and any("quarter of the draws" in n and "batched=False" in n for n in both.notes), str(both)
    one = check_feature_map(sample, kernels.softmax, dim=d, claims={"unbiased"}, seed=kt_seed, sweep=False,
                            batched=False)
    assert one.passed and not any("quarter of the draws" in n for n in one.notes), str(one)


def test_selected_columns_keep_the_levels(kt_seed):
    """The dependence tests read only the pairs that reject in a failed row. Under independence, columns chosen by
    a symmetric statistic of the draws (here the largest |mean| of each group of eight iid log-normal columns, as a
    mean row's worst pair) keep both tests' levels at α′ = 10⁻² and 10⁻³ over 2000 groups (one-sided binomial tests at
    10⁻³): the selection leaves each segment's order and the blocks' share of the pooled draws uniformly random. A
    selection that reads the order (the largest serial z of a group) breaks the level, and the same test sees it."""
    g = torch.Generator().manual_seed(kt_seed)
    x = torch.exp(torch.randn(128, 2000, 8, generator=g, dtype=torch.float64))
    pick = x.mean(0).sub(x.mean()).abs().argmax(-1)  # a symmetric function of each group's draws
    chosen = torch.gather(x, 2, pick.expand(128, -1).unsqueeze(-1)).squeeze(-1)
    sizes, paths = block_segments(128, [32] * 4, lambda r: [r // 4, r - r // 4])
    p_serial = torch.from_numpy(stats.norm.sf(serial_z(chosen, sizes).numpy()))
    p_blocks = between_segments_p(chosen, sizes, paths)
    for p in (p_serial, p_blocks):
        for level in (1e-2, 1e-3):
            rejected = int((p < level).sum())
            assert stats.binomtest(rejected, 2000, level, alternative="greater").pvalue > 1e-3, (level, rejected)
    # the control: a selection that reads the order (the largest serial z of each group) breaks the level, which
    # this test detects
    z_all = serial_z(x.reshape(128, -1), sizes).reshape(2000, 8)
    rejected = int((z_all.amax(-1) > stats.norm.isf(1e-2)).sum())
    assert stats.binomtest(rejected, 2000, 1e-2, alternative="greater").pvalue < 1e-6, rejected


def test_the_failing_pairs_get_half_the_level_and_every_pair_the_other_half(kt_seed):
    """A failed row's dependence tests give half their level to the pairs that reject (``CheckResult.pair_p``,
    P·p ≤ α) and half to every pair: dependence at the failing pair that the Bonferroni factor over 200 pairs would
    hide is seen (a moving average whose serial z is set to 5.5 by bisection: refused with the row's p-values, not
    without them), and so is dependence at another pair of the family (a review's correct map sharing one direction
    per batch FAILED when only the failing pairs were read); a rejecting pair of rare-event estimates, which no test
    reads, singles out nothing; a variance row's p-values sit among all of the caller's pairs."""
    from kerneltheory.montecarlo import Moments
    from kerneltheory.testing.checks import CheckResult, mean_check, variance_check
    from kerneltheory.testing.dependence import dependence_refusal

    g = torch.Generator().manual_seed(kt_seed)
    n, P = 2048, 200
    sizes = block_segments(n, [256] * 8)
    labels = [f"p{i}" for i in range(P)]
    e = torch.randn(n + 1, generator=g, dtype=torch.float64)
    # the thresholds: the rejecting pair alone (serial and blocks, α/2 over 2 p-values) refuses at p < 2.5e-7,
    # z > 5.03; every pair (α/2 over 400) at p < 1.25e-9, z > 5.96; no p-values kept (α over 400) at z > 5.84
    lo, hi = 0.0, 1.0  # x_t = e_t + c·e_{t−1}: serial z grows with c; bisect c to z = 5.5, between them
    for _ in range(50):
        c = (lo + hi) / 2
        lo, hi = (c, hi) if float(serial_z((e[1:] + c * e[:-1]).unsqueeze(1), sizes[0])) < 5.5 else (lo, c)
    ma = (e[1:] + lo * e[:-1]).unsqueeze(1)
    # z is a rank statistic, a step function of c: the bisection ends just below the step that crosses 5.5 (up to
    # 3.4e-3 below it over seeds 0–299, where asserting |z − 5.5| < 1e-3 failed at 17); the test needs 5.03 < z < 5.84
    assert 5.03 < float(serial_z(ma, sizes[0])) <= 5.5
    x = torch.cat([ma + 0.5, torch.randn(n, P - 1, generator=g, dtype=torch.float64)], 1)  # pair 0 biased
    target = torch.zeros(P, dtype=torch.float64)
    row = mean_check(Moments.from_samples(x), target, alpha=1e-6, name="u", seed=0, samples=x)
    assert row.status == "failed" and torch.nonzero(row.pair_p * P <= row.alpha).flatten().tolist() == [0], str(row)
    refused = dependence_refusal(row, x, sizes, labels)
    assert refused is not None and "at p0 consecutive" in refused.detail, refused
    plain = CheckResult(**row.as_dict())  # no p-values kept: Bonferroni over all 200 pairs, z = 5.5 is not enough
    assert dependence_refusal(plain, x, sizes, labels) is None
    # an AR(1) chain (ρ = 0.5) at another pair of the family: seen by the half of the level given to every pair
    chain = torch.zeros(n, 1, dtype=torch.float64)
    for t in range(n):
        chain[t] = (0.5 * chain[t - 1] if t else 0.0) + e[t] * math.sqrt(0.75)
    iid = torch.randn(n, 1, generator=g, dtype=torch.float64) + 0.5
    y = torch.cat([iid, chain], 1)
    row = mean_check(Moments.from_samples(y), torch.zeros(2, dtype=torch.float64), alpha=1e-6, name="u", seed=0,
                     samples=y)
    assert row.status == "failed" and (row.pair_p * 2 <= row.alpha).tolist() == [True, False], str(row)
    refused = dependence_refusal(row, y, sizes, ["a", "b"])
    assert refused is not None and "at b" in refused.detail
    # a rejecting pair of rare-event estimates, which no test reads: the chain at the other pair is seen
    rare = (torch.rand(n, 1, generator=g, dtype=torch.float64) < 0.08).to(torch.float64)
    w = torch.cat([rare, chain], 1)
    row = mean_check(Moments.from_samples(w), torch.tensor([-0.5, 0.0], dtype=torch.float64), alpha=1e-6,
                     name="u", seed=0, samples=w, bound=torch.tensor([1.0, 10.0], dtype=torch.float64))
    assert row.status == "failed" and (row.pair_p * 2 <= row.alpha).tolist() == [True, False], str(row)
    refused = dependence_refusal(row, w, sizes, ["a", "b"])
    assert refused is not None and "at b" in refused.detail
    # a variance row keeps its pairs' p-values among all pairs when some are settled (claimed 0 and met)
    u = 6 * torch.rand(512, 1, generator=g, dtype=torch.float64) - 3  # variance 3, light tails
    z = torch.cat([torch.zeros(512, 1, dtype=torch.float64), u], 1)
    vrow = variance_check(Moments.from_samples(z), torch.tensor([0.0, 1.0], dtype=torch.float64), alpha=1e-3,
                          name="v", seed=0, samples=z)
    assert vrow.status == "failed" and vrow.pair_p.shape == (2,) and float(vrow.pair_p[0]) == 1.0, str(vrow)
    assert float(vrow.pair_p[1]) * 2 <= vrow.alpha and "pair_p" not in vrow.as_dict()


def test_fresh_draws_at_the_rejecting_pairs_are_the_same_estimates(kt_seed):
    """The fresh blocks of a user's sampler are drawn at the pairs the dependence tests read, through the batched path
    (``_Evaluator.at_columns``, ``draw_batched``): from identically seeded generators they are the full evaluator's
    estimates at those columns, for pair and cross families alike; with a bind step (estimates tied to every point)
    there is no narrower evaluator."""
    from kerneltheory.testing.inputs import InputFamily
    from kerneltheory.testing.user_calls import _Evaluator

    d, m = 3, 8

    def sample(g, batch=None):
        w = torch.randn(1 if batch is None else batch, m, d, generator=g, dtype=torch.float64)
        f = lambda x: torch.exp(torch.einsum("nd,rmd->rnm", x, w) - (x * x).sum(-1)[None, :, None] / 2)  # noqa: E731
        return f if batch is not None else (lambda x: f(x)[0])

    g = torch.Generator().manual_seed(kt_seed)
    fams = [InputFamily("p", torch.randn(5, d, generator=g, dtype=torch.float64),
                        torch.randn(5, d, generator=g, dtype=torch.float64)),
            InputFamily("c", torch.randn(3, d, generator=g, dtype=torch.float64),
                        torch.randn(3, d, generator=g, dtype=torch.float64), cross=True)]
    ev = _Evaluator(sample, fams, None, None)
    cols = torch.tensor([1, 4, 5, 9, 13])  # two pair columns, three cross ones ((0, 0), (1, 1), (2, 2))
    full = ev.draw_batched(torch.Generator().manual_seed(7), 6)[:, cols]
    narrow = ev.at_columns(cols).draw_batched(torch.Generator().manual_seed(7), 6)
    assert narrow.shape == (6, 5) and torch.allclose(narrow, full, rtol=1e-12, atol=0)
    assert _Evaluator(sample, fams, lambda fm, x, y: fm, None).at_columns(cols) is None

