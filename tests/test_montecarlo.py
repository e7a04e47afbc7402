"""Tests of the Monte Carlo moment engine (kerneltheory/montecarlo.py); every seed is fixed."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kerneltheory.montecarlo import (
    BlockMoments,
    Moments,
    block_seed,
    mean_test_statistic,
    moments,
    moments_of_blocks,
    num_blocks,
)

FIELDS = ("mean", "m2", "m3", "m4")
ALPHA = 1e-6


def seed_of(name: str) -> int:
    """A fixed seed per test, derived from its name."""
    return zlib.crc32(name.encode())


def skewed(generator: torch.Generator, r: int, p: int = 3) -> torch.Tensor:
    """r draws of p log-normal-ish estimates with distinct offsets (a skewed, heavy-ish law)."""
    z = torch.randn(r, p, generator=generator, dtype=torch.float64)
    return (0.7 * z).exp() + torch.arange(p, dtype=torch.float64)


def assert_bitwise(a: Moments, b: Moments) -> None:
    assert a.count == b.count
    for name in FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def assert_close_moments(a: Moments, b: Moments, data: np.ndarray, rtol: float = 1e-12) -> None:
    """Agreement to ``rtol`` relative to the natural scale of each moment, Σ|x − x̄|^k (so M₃ ≈ 0 is fair)."""
    assert a.count == b.count
    d = data - data.mean(0)
    np.testing.assert_allclose(a.mean.numpy(), b.mean.numpy(), rtol=rtol, atol=rtol * np.abs(data).max())
    for k, name in ((2, "m2"), (3, "m3"), (4, "m4")):
        scale = (np.abs(d) ** k).sum(0)
        np.testing.assert_allclose(
            getattr(a, name).numpy(),
            getattr(b, name).numpy(),
            rtol=rtol,
            atol=rtol * scale.max(),
            err_msg=name,
        )


# ---------------------------------------------------------------- Moments: from_samples and merge


def test_from_samples_matches_numpy_and_scipy():
    rng = np.random.default_rng(seed_of("from_samples"))
    data = np.exp(rng.standard_normal((500, 4))) * [1.0, 3.0, 0.1, 10.0] + [0.0, -5.0, 2.0, 100.0]
    m = Moments.from_samples(torch.from_numpy(data))
    n = data.shape[0]
    assert m.count == n and m.mean.dtype == torch.float64 and m.mean.device.type == "cpu"
    rel = {"rtol": 1e-12}
    np.testing.assert_allclose(m.mean.numpy(), data.mean(0), **rel)
    np.testing.assert_allclose(m.variance.numpy(), data.var(0, ddof=1), **rel)
    np.testing.assert_allclose(m.population_variance.numpy(), data.var(0), **rel)
    np.testing.assert_allclose(m.stderr.numpy(), np.sqrt(data.var(0, ddof=1) / n), **rel)
    for k, name in ((2, "m2"), (3, "m3"), (4, "m4")):
        np.testing.assert_allclose(getattr(m, name).numpy(), n * scipy.stats.moment(data, k, axis=0), **rel)
    np.testing.assert_allclose(m.fourth_central.numpy(), scipy.stats.moment(data, 4, axis=0), **rel)
    np.testing.assert_allclose(m.skewness.numpy(), scipy.stats.skew(data, axis=0), **rel)
    np.testing.assert_allclose(m.kurtosis.numpy(), scipy.stats.kurtosis(data, axis=0), **rel)


def test_from_samples_accumulates_float32_in_float64():
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(seed_of("f32")))
    assert_bitwise(Moments.from_samples(x), Moments.from_samples(x.double()))
    assert Moments.from_samples(x).m2.dtype == torch.float64


@settings(deadline=None, max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 80),
    cuts=st.lists(st.floats(0.0, 1.0), max_size=5),
    offset=st.floats(-10.0, 10.0),
)
def test_merge_of_random_splits_equals_moments_of_concatenation(seed, n, cuts, offset):
    rng = np.random.default_rng(seed)
    data = np.exp(rng.standard_normal((n, 3))) + offset
    points = sorted({0, n, *(int(c * n) for c in cuts)})
    pieces = [data[a:b] for a, b in zip(points, points[1:], strict=False)]
    parts = [Moments.from_samples(torch.from_numpy(piece)) for piece in pieces]
    merged = Moments.empty(3)
    for part in parts:  # includes empty pieces when two cuts coincide at the ends
        merged = merged + part
    assert_close_moments(merged, Moments.from_samples(torch.from_numpy(data)), data)


def test_empty_is_the_identity_of_merge():
    g = torch.Generator().manual_seed(seed_of("identity"))
    m = Moments.from_samples(torch.randn(10, 4, generator=g, dtype=torch.float64))
    for e in (Moments.empty(), Moments.empty(4), Moments.from_samples(torch.zeros(0, 4))):
        assert e.count == 0
        assert_bitwise(m + e, m)
        assert_bitwise(e + m, m)
    assert_bitwise(sum([m], Moments.empty()), m)
    assert_bitwise(sum([m]), m)


def test_merge_is_commutative_and_associative_up_to_rounding():
    g = torch.Generator().manual_seed(seed_of("assoc"))
    xs = [skewed(g, r) for r in (7, 30, 101)]
    a, b, c = (Moments.from_samples(x) for x in xs)
    data = torch.cat(xs).numpy()
    assert_close_moments((a + b) + c, a + (b + c), data)
    assert_close_moments(a + b, b + a, torch.cat(xs[:2]).numpy())
    assert_close_moments((a + b) + c, Moments.from_samples(torch.cat(xs)), data)


def test_to_dict_round_trips_exactly_through_json():
    m = Moments.from_samples(skewed(torch.Generator().manual_seed(seed_of("json")), 57))
    back = Moments.from_dict(json.loads(json.dumps(m.to_dict())))
    assert type(back) is Moments
    assert_bitwise(back, m)


# ---------------------------------------------------------------- the engine: reproducibility

DRAWS, BLOCK, SEED = 1000, 64, seed_of("sweep")  # 16 blocks, the last one partial (40 draws)
NB = num_blocks(DRAWS, BLOCK)
FULL = moments(skewed, DRAWS, seed=SEED, block=BLOCK)


def test_block_seeds_are_seedsequence_children():
    children = np.random.SeedSequence(SEED).spawn(4)
    assert [block_seed(SEED, b) for b in range(4)] == [
        int(c.generate_state(1, dtype=np.uint64)[0]) for c in children
    ]
    assert len({block_seed(s, b) for s in range(5) for b in range(5)}) == 25


def test_each_block_is_its_own_seeded_draw():
    assert NB == 16 and FULL.count == DRAWS and FULL.blocks == range(16)
    for b, r in ((0, BLOCK), (NB - 1, DRAWS - (NB - 1) * BLOCK)):
        x = skewed(torch.Generator().manual_seed(block_seed(SEED, b)), r)
        assert_bitwise(
            moments_of_blocks(skewed, DRAWS, seed=SEED, block=BLOCK, blocks=range(b, b + 1)),
            Moments.from_samples(x),
        )
    other = moments(skewed, DRAWS, seed=SEED + 1, block=BLOCK)
    assert not torch.equal(other.mean, FULL.mean)


@pytest.mark.parametrize("chunk", [1, BLOCK, 3 * BLOCK, 5 * BLOCK - 1, DRAWS, 10**6, None])
def test_result_is_bitwise_independent_of_chunk(chunk):
    assert_bitwise(moments(skewed, DRAWS, seed=SEED, block=BLOCK, chunk=chunk), FULL)


def test_memory_budget_and_progress_do_not_change_the_result():
    assert_bitwise(moments(skewed, DRAWS, seed=SEED, block=BLOCK, memory_budget=1), FULL)
    assert_bitwise(moments(skewed, DRAWS, seed=SEED, block=BLOCK, progress=True, chunk=4 * BLOCK), FULL)


@settings(deadline=None, max_examples=25)
@given(
    cuts=st.sets(st.integers(1, NB - 1), max_size=6),
    right_fold=st.booleans(),
    swap=st.booleans(),
    via_json=st.booleans(),
)
def test_merging_a_partition_of_blocks_is_bitwise_the_full_sweep(cuts, right_fold, swap, via_json):
    points = [0, *sorted(cuts), NB]
    parts = [
        moments_of_blocks(skewed, DRAWS, seed=SEED, block=BLOCK, blocks=range(a, b))
        for a, b in zip(points, points[1:], strict=False)
    ]
    if via_json:
        parts = [Moments.from_dict(json.loads(json.dumps(p.to_dict()))) for p in parts]
    merged = parts[-1] if right_fold else parts[0]
    rest = parts[-2::-1] if right_fold else parts[1:]
    for p in rest:  # right fold: p + (…); `swap` puts the later range first, which is also allowed
        merged = (merged + p if swap else p + merged) if right_fold else (p + merged if swap else merged + p)
    assert isinstance(merged, BlockMoments) and merged.blocks == range(NB)
    assert_bitwise(merged, FULL)


def test_checkpoint_and_resume_reproduce_the_sweep():
    snapshots = []
    assert_bitwise(
        moments(
            skewed,
            DRAWS,
            seed=SEED,
            block=BLOCK,
            chunk=3 * BLOCK,
            callback=lambda m: snapshots.append(m.to_dict()),
        ),
        FULL,
    )
    assert [s["blocks"] for s in snapshots] == [[0, 3], [0, 6], [0, 9], [0, 12], [0, 15], [0, 16]]
    saved = Moments.from_dict(json.loads(json.dumps(snapshots[2])))
    rest = moments_of_blocks(skewed, DRAWS, seed=SEED, block=BLOCK, blocks=range(9, NB))
    assert_bitwise(saved + rest, FULL)


def test_merges_outside_one_contiguous_sweep_fall_back_or_refuse():
    def part(a, b, seed=SEED):
        return moments_of_blocks(skewed, DRAWS, seed=seed, block=BLOCK, blocks=range(a, b))

    gap = part(0, 4) + part(8, 12)  # statistically valid, but no longer a block range
    assert type(gap) is Moments and gap.count == 8 * BLOCK
    two_sweeps = part(0, 4) + part(0, 4, seed=SEED + 1)
    assert type(two_sweeps) is Moments and two_sweeps.count == 8 * BLOCK
    with pytest.raises(ValueError, match="overlap"):
        part(0, 5) + part(4, 8)
    empty = part(3, 3)
    assert empty.count == 0
    assert_bitwise(empty + FULL, FULL)


def test_rng_device_cpu_is_the_default_stream_and_a_bad_one_is_named():
    assert_bitwise(moments(skewed, DRAWS, seed=SEED, block=BLOCK, rng_device="cpu"), FULL)
    with pytest.raises(ValueError, match="rng_device"):
        moments(skewed, DRAWS, seed=SEED, block=BLOCK, rng_device="meta")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rng_blocks_replay_bitwise_and_merge_like_cpu_blocks():  # pragma: no cover - GPU only
    """Block b's generator lives on the GPU, seeded by block_seed(seed, b): the sweep replays bitwise, any
    partition of its blocks merges into it, and it is another stream than the CPU's."""
    def skewed_cuda(g, r):
        assert g.device.type == "cuda"
        return torch.randn(r, 3, generator=g, dtype=torch.float64, device=g.device).exp()

    full = moments(skewed_cuda, DRAWS, seed=SEED, block=BLOCK, device="cuda", rng_device="cuda")
    assert_bitwise(moments(skewed_cuda, DRAWS, seed=SEED, block=BLOCK, device="cuda", rng_device="cuda"), full)
    cut = NB // 2
    parts = [moments_of_blocks(skewed_cuda, DRAWS, seed=SEED, block=BLOCK, blocks=rng, device="cuda",
                               rng_device="cuda") for rng in (range(0, cut), range(cut, NB))]
    assert_bitwise(parts[0] + parts[1], full)
    cpu = moments(lambda g, r: torch.randn(r, 3, generator=g, dtype=torch.float64).exp(), DRAWS, seed=SEED,
                  block=BLOCK)
    assert not torch.equal(cpu.mean, full.mean)


def test_estimates_on_any_device_come_back_cpu_float64():
    m = moments(lambda g, r: skewed(g, r).float(), 100, seed=1, block=32, device="cpu")
    assert m.mean.dtype == torch.float64 and m.mean.device.type == "cpu"


# ---------------------------------------------------------------- correctness on a known law


MU = torch.tensor([0.0, 1.0, -3.0, 1e3, 1e-3, 7.5], dtype=torch.float64)
SIGMA = torch.tensor([1.0, 0.1, 5.0, 2.0, 1e-4, 30.0], dtype=torch.float64)
R = 20_000


def gaussian_estimates(mu, sigma):
    return lambda g, r: mu + sigma * torch.randn(r, mu.numel(), generator=g, dtype=torch.float64)


def gaussian_rejections(m: Moments) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair rejections of H₀: mean = μ (t test) and variance = σ² (χ² test), at family rate ALPHA.

    Under H₀ (Gaussian draws) the statistics are exactly t_{R−1} and χ²_{R−1}; Bonferroni over 2P tests.
    """
    level = ALPHA / (2 * 2 * MU.numel())  # two-sided, 2P tests
    t = mean_test_statistic(m, MU)
    mean_reject = t.abs() > scipy.stats.t.isf(level, m.count - 1)
    q = (m.count - 1) * m.variance / SIGMA**2
    lo, hi = scipy.stats.chi2.ppf(level, m.count - 1), scipy.stats.chi2.isf(level, m.count - 1)
    return mean_reject, (q < lo) | (q > hi)


@pytest.mark.statistical
def test_engine_recovers_mean_and_variance_of_a_known_law():
    m = moments(gaussian_estimates(MU, SIGMA), R, seed=seed_of("known law"), block=1024)
    assert m.count == R
    mean_reject, var_reject = gaussian_rejections(m)
    assert not mean_reject.any(), mean_test_statistic(m, MU)
    assert not var_reject.any(), m.variance / SIGMA**2


@pytest.mark.statistical
def test_known_law_check_rejects_planted_defects():
    """Power: a 0.1σ bias and a 10% scale error lie far outside the α = 1e-6 region at R = 2·10⁴."""
    seed = seed_of("planted")
    mean_reject, _ = gaussian_rejections(moments(gaussian_estimates(MU + 0.1 * SIGMA, SIGMA), R, seed=seed))
    assert mean_reject.all()
    _, var_reject = gaussian_rejections(moments(gaussian_estimates(MU, 1.1 * SIGMA), R, seed=seed))
    assert var_reject.all()


@pytest.mark.statistical
def test_known_law_checks_are_calibrated_over_many_sweeps():
    """At a per-test level of 5%, the t and χ² rejections over 200 seeds × P pairs are Binomial(1200, 0.05).

    Correlated blocks (e.g. a seed reused across blocks) would inflate the t test's rejection rate.
    """
    level, n_seeds = 0.05, 200
    t_crit = scipy.stats.t.isf(level / 2, 499)
    lo, hi = scipy.stats.chi2.ppf(level / 2, 499), scipy.stats.chi2.isf(level / 2, 499)
    t_rejections = q_rejections = 0
    for seed in range(n_seeds):
        m = moments(gaussian_estimates(MU, SIGMA), 500, seed=seed, block=64)
        t_rejections += int((mean_test_statistic(m, MU).abs() > t_crit).sum())
        q = 499 * m.variance / SIGMA**2
        q_rejections += int(((q < lo) | (q > hi)).sum())
    for k in (t_rejections, q_rejections):
        assert scipy.stats.binomtest(k, n_seeds * MU.numel(), level).pvalue > ALPHA / 2, k


def test_mean_test_statistic():
    x = torch.tensor([[1.0, 2.0, 5.0], [3.0, 2.0, 5.0], [5.0, 2.0, 5.0]], dtype=torch.float64)
    m = Moments.from_samples(x)
    z = mean_test_statistic(m, torch.tensor([2.0, 2.0, 4.0]))
    assert z[0].item() == pytest.approx((3.0 - 2.0) / (2.0 / 3.0**0.5), rel=1e-14)
    assert z[1].item() == 0.0 and z[2].item() == float("inf")  # zero variance: exact hit or certain miss
    assert torch.equal(mean_test_statistic(m, 2.0)[:2], z[:2])
    with pytest.raises(ValueError, match="target"):
        mean_test_statistic(m, torch.zeros(2))
    with pytest.raises(ValueError, match="target"):
        mean_test_statistic(m, torch.tensor([0.0, float("nan"), 0.0]))
    with pytest.raises(ValueError, match="count >= 2"):
        mean_test_statistic(Moments.from_samples(x[:1]), 0.0)


# ---------------------------------------------------------------- validation


def test_argument_validation():
    with pytest.raises(ValueError, match="draws"):
        moments(skewed, 0, seed=0)
    with pytest.raises(ValueError, match="block"):
        moments(skewed, 10, seed=0, block=0)
    with pytest.raises(ValueError, match="seed"):
        moments(skewed, 10, seed=-1)
    with pytest.raises(TypeError, match="seed"):
        moments(skewed, 10, seed=1.5)
    with pytest.raises(ValueError, match="chunk"):
        moments(skewed, 10, seed=0, chunk=0)
    with pytest.raises(ValueError, match="memory_budget"):
        moments(skewed, 10, seed=0, memory_budget=0)
    with pytest.raises(TypeError, match="estimates"):
        moments("not callable", 10, seed=0)
    for blocks in (range(0, 4, 2), range(0, 5), range(3, 2), (0, 1)):
        with pytest.raises(ValueError, match="blocks"):
            moments_of_blocks(skewed, 10, seed=0, block=3, blocks=blocks)


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda g, r: torch.zeros(r + 1, 2), r"estimates.*shape \[r, P\] = \[4, P\]"),
        (lambda g, r: torch.zeros(r), "estimates.*shape"),
        (lambda g, r: torch.zeros(r, 2 if r == 4 else 3), r"estimates.*\[2, 2\]"),
        (lambda g, r: torch.zeros(r, 2, dtype=torch.int64), "estimates.*floating"),
        (lambda g, r: torch.zeros(r, 2, device="meta"), "estimates.*device"),
    ],
)
def test_estimates_with_wrong_output_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        moments(bad, 10, seed=0, block=4, device="cpu")


def test_estimates_not_returning_a_tensor_is_refused():
    with pytest.raises(TypeError, match="estimates"):
        moments(lambda g, r: np.zeros((r, 2)), 10, seed=0)


def test_non_finite_estimates_are_reported_not_kept():
    def bad(g, r):
        x = torch.randn(r, 5, generator=g, dtype=torch.float64)
        x[0, 1], x[2, 1], x[3, 4] = float("nan"), float("inf"), -float("inf")
        return x

    with pytest.raises(ValueError, match=r"estimates returned 3 non-finite.*block 0.*2 pair\(s\): \[1, 4\]"):
        moments(bad, 100, seed=0, block=10)
    with pytest.raises(ValueError, match="x returned 1 non-finite"):
        Moments.from_samples(torch.tensor([[1.0, float("nan")]]))


def test_moments_validation():
    one = Moments.from_samples(torch.ones(1, 2))
    for prop in ("variance", "stderr"):
        with pytest.raises(ValueError, match="count >= 2"):
            getattr(one, prop)
    for prop in ("population_variance", "skewness", "kurtosis", "fourth_central"):
        with pytest.raises(ValueError, match="count >= 1"):
            getattr(Moments.empty(2), prop)
    with pytest.raises(ValueError, match="x must have shape"):
        Moments.from_samples(torch.ones(3))
    with pytest.raises(ValueError, match="m2"):
        Moments(2, torch.zeros(3), torch.zeros(2), torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="count"):
        Moments(-1, torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="other"):
        one + Moments.from_samples(torch.ones(2, 3))
    with pytest.raises(TypeError, match="other"):
        one.merge(1.0)
    with pytest.raises(ValueError, match="keys"):
        Moments.from_dict({"count": 1, "mean": [0.0]})


def test_from_dict_refuses_what_no_sample_has():
    """Moments read back from a file are what a resumed run builds on: values that are not finite numbers, negative
    even sums, sums for fewer than two draws, sums that break Cauchy–Schwarz, and block trees that do not cover their
    range with the draws of their blocks are errors naming what is wrong; a faithful round trip is unchanged."""
    gen = torch.Generator().manual_seed(5)
    good = Moments.from_samples(torch.randn(50, 2, generator=gen, dtype=torch.float64) ** 3).to_dict()
    assert Moments.from_dict(json.loads(json.dumps(good))).count == 50
    # review findings: what the package computes reads back; draws of 1e-82 (fourth powers underflow: M₄ = 0 beside
    # M₂ > 0) and merges of ±0.3 around 10⁸ (Cauchy–Schwarz holds with equality, rounding overshot it by 6·10⁻⁹)
    tiny = Moments.from_samples(1e-82 * torch.randn(10_000, 3, generator=gen, dtype=torch.float64))
    assert Moments.from_dict(json.loads(json.dumps(tiny.to_dict()))).count == 10_000
    for _ in range(20):
        values = (1e8 + 0.3 * (1 - 2 * (torch.arange(1024) % 2)))[torch.randperm(1024, generator=gen)].double()
        merged = sum((Moments.from_samples(values[i:i + 16, None]) for i in range(0, 1024, 16)), Moments.empty(1))
        assert Moments.from_dict(json.loads(json.dumps(merged.to_dict()))).count == 1024
    forged = [
        ({"m2": [float("nan"), 1.0]}, r"d\['m2'\] holds a value that is not a finite number"),
        ({"mean": ["1", 0.0]}, r"d\['mean'\] must be a list of numbers"),
        ({"m4": [-1.0, 1.0]}, "m2 or m4 below 0"),
        ({"m4": [good["m2"][0] ** 2 / 60, good["m4"][1]]}, r"m2² > count·m4"),
        ({"m3": [10 * (good["m2"][0] * good["m4"][0]) ** 0.5, 0.0]}, r"m3² > m2·m4"),
        ({"count": 1}, "nonzero centred sums for 1 draw"),
    ]
    for change, message in forged:
        with pytest.raises(ValueError, match=message):
            Moments.from_dict({**good, **change})
    f = lambda g, r: torch.randn(r, 2, generator=g, dtype=torch.float64)  # noqa: E731
    tree = moments_of_blocks(f, 1000, seed=1, block=100).to_dict()
    assert BlockMoments.from_dict(json.loads(json.dumps(tree))).count == 1000
    nodes = tree["nodes"]
    for change, message in [
        ({"nodes": nodes[1:]}, "do not cover blocks"),
        ({"nodes": nodes[:-1]}, "cover blocks"),
        ({"blocks": [0, 11]}, "not within the sweep's 10 blocks"),
        ({"draws": 950}, "index 4 holds 200 draws, its blocks 150"),  # the last block is short
        ({"seed": -1}, "seed"),
        ({"blocks": [0, 5, 10]}, r"must be \[start, stop\]"),
        ({"nodes": [{**nodes[0], "level": 10**9}, *nodes[1:]]}, "level must be <= 62"),
        ({"nodes": [{**nodes[0], "moments": {**nodes[0]["moments"], "count": 801}}, *nodes[1:]]}, "holds 801 draws"),
    ]:
        with pytest.raises(ValueError, match=message):
            BlockMoments.from_dict({**tree, **change})


def test_draws_that_never_vary_have_no_spread():
    """Review finding: x.mean(0) rounds, so 1000 copies of 0.1 had M₂ = 1.7e-31 and a z-score of √(n − 1) against
    their own value; a column whose draws all agree now has that value as its mean and no spread, in one block and
    merged over blocks."""
    for value in (0.1, 1 / 3, 1e8 + 0.1):
        x = torch.full((1000, 1), value, dtype=torch.float64)
        m = Moments.from_samples(x)
        assert float(m.mean[0]) == value and float(m.m2[0]) == 0 and float(m.m3[0]) == 0 and float(m.m4[0]) == 0
        blocks = moments(lambda g, r, v=value: torch.full((r, 2), v, dtype=torch.float64), 1000, seed=0, block=256)
        assert bool((blocks.m2 == 0).all()) and bool((blocks.mean == value).all())
