"""The package's standard normal sampler (kerneltheory/_normal.py; proofs/normal_sampler.md).

It is the source of every built-in law's frequencies, so it is tested as a law of its own: bitwise its documented
construction, N(0, 1) by goodness-of-fit tests at a declared α (with a planted defect each test must reject), the
float64 radius's full tail, and the float32 angle's bound of the proof.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from kerneltheory._normal import MIN_TRANSFORM, box_muller, standard_normal

ALPHA = 1e-6
F64 = torch.float64


def test_the_draws_are_bitwise_the_documented_construction(kt_seed):
    """n ≥ MIN_TRANSFORM normals: ⌈n/2⌉ float64 uniforms U, then ⌈n/2⌉ float32 uniforms V; R = √(−2 log(1 − U)) in
    float64, Θ = 2πV and its cos/sin in float32; [R cos Θ, R sin Θ] with the first n kept, in C order of the shape.
    Fewer normals are ``torch.randn``'s float64 ones."""
    assert MIN_TRANSFORM == 3072
    for shape in [(3, 5, 7), (1,), (MIN_TRANSFORM - 1,)]:
        z = standard_normal(shape, torch.Generator().manual_seed(kt_seed))
        assert torch.equal(z, torch.randn(shape, generator=torch.Generator().manual_seed(kt_seed), dtype=F64))
    for shape in [(MIN_TRANSFORM,), (3, 1025), (2, (1 << 16) + 1)]:  # at the threshold; odd; a block and 1 pair more
        z = standard_normal(shape, torch.Generator().manual_seed(kt_seed))
        g = torch.Generator().manual_seed(kt_seed)
        n = math.prod(shape)
        h = (n + 1) // 2
        u = torch.rand(h, generator=g, dtype=F64)
        v = torch.rand(h, generator=g, dtype=torch.float32)
        r = torch.sqrt(-2.0 * torch.log1p(-u))
        theta = v * (2 * math.pi)
        theta[v == 0] = float(torch.tensor(2 * math.pi * 2.0**-25, dtype=torch.float32))  # the grid point 0 moved
        want = torch.cat([r * torch.cos(theta).to(F64), r * torch.sin(theta).to(F64)])[:n].reshape(shape)
        assert z.dtype == F64 and z.shape == shape and z.is_contiguous()
        assert torch.equal(z, want)
        assert torch.equal(z, standard_normal(shape, torch.Generator().manual_seed(kt_seed)))  # reproducible


def test_no_normal_is_exactly_zero_where_the_angle_grid_starts():
    """V = 0 (probability 2⁻²⁴ a pair) gave sin Θ = 0 and a normal exactly 0, an atom the exact law lacks, which the
    sampler checks' magnitude test refused (Φ⁻¹ of |z| is −∞ at 0); it is read as V = 2⁻²⁵, and only that draw
    changes. Uniforms on both grids' edge points, through the transform itself."""
    from kerneltheory._normal import box_muller

    u = torch.tensor([0.25, 0.25, 0.0, 1 - 2.0**-53], dtype=F64)
    v = torch.tensor([0.0, 2.0**-24, 0.25, 1 - 2.0**-24], dtype=torch.float32)
    z = box_muller(u.clone(), v)
    r = torch.sqrt(-2.0 * torch.log1p(-u))
    assert bool((z[[0, 1, 3, 4, 5, 7]] != 0).all())  # the radius is 0 only at U = 0 (pair 2), as for torch.randn
    moved = torch.tensor(2 * math.pi * 2.0**-25, dtype=torch.float32)
    assert z[4] == r[0] * torch.sin(moved).double() and z[0] == r[0] * torch.cos(moved).double()
    assert z[5] == r[1] * torch.sin(v[1] * (2 * math.pi)).double()  # every other point as before


def test_uniforms_lie_on_their_grids(kt_seed):
    """The proof's assumption about torch's CPU generator: float64 uniforms on {k 2⁻⁵³}, float32 ones on {k 2⁻²⁴}
    (each value times the grid's size is an integer below it), and both grids are used to their last bit."""
    g = torch.Generator().manual_seed(kt_seed)
    u = torch.rand(1 << 16, generator=g, dtype=F64) * 2.0**53
    v = torch.rand(1 << 16, generator=g, dtype=torch.float32).to(F64) * 2.0**24
    for x, top in ((u, 2.0**53), (v, 2.0**24)):
        assert torch.equal(x, x.floor()) and x.min() >= 0 and x.max() < top
        assert (x % 2 == 1).any()  # the lowest bit varies: the grid is not coarser


def test_shapes_empty_scalar_int_and_invalid():
    g = torch.Generator().manual_seed(0)
    assert standard_normal((0, 4), g).shape == (0, 4)
    assert standard_normal((), g).shape == ()
    assert standard_normal(5000, g).shape == (5000,) and standard_normal(torch.Size([2, 3]), g).shape == (2, 3)
    for bad in [(-2, -3000), (2.5,), (True, 4)]:  # negative sizes whose product passes the threshold; not integers
        with pytest.raises(ValueError, match="shape must be integers >= 0"):
            standard_normal(bad, g)


def _ks_p(x: np.ndarray, cdf) -> float:
    return float(scipy.stats.kstest(x, cdf).pvalue)


def test_goodness_of_fit_against_n01_and_a_planted_defect_each_test_rejects(kt_seed):
    """KS tests of the two halves (cosines, sines), of R² = z₁² + z₂² against χ²₂ and of the angle against uniform,
    and the correlation of the pair, each at α/5 on 2·10⁵ pairs; and the power of the same tests, each of which must
    reject a planted defect at that level: a 5 % scale error (KS distance ≈ 0.012 against a critical 0.0063), an
    angle on [0, 2π·0.98) and a correlation of 0.1 between the halves."""
    h = 200_000
    z = standard_normal((2 * h,), torch.Generator().manual_seed(kt_seed)).numpy()
    a, b = z[:h], z[h:]
    level = ALPHA / 5
    ps = {
        "cosines": _ks_p(a, scipy.stats.norm.cdf),
        "sines": _ks_p(b, scipy.stats.norm.cdf),
        "R²": _ks_p(a * a + b * b, scipy.stats.chi2(2).cdf),
        "angle": _ks_p(np.mod(np.arctan2(b, a), 2 * math.pi), scipy.stats.uniform(0, 2 * math.pi).cdf),
    }
    rho = float(np.corrcoef(a, b)[0, 1])
    ps["correlation"] = float(2 * scipy.stats.norm.sf(abs(rho) * math.sqrt(h)))
    assert min(ps.values()) > level, (ps, f"seed {kt_seed}")
    # power: each planted defect is rejected by the test meant for it
    assert _ks_p(1.05 * a, scipy.stats.norm.cdf) < level
    squeezed = np.mod(np.arctan2(b, a), 2 * math.pi) * 0.98
    assert _ks_p(squeezed, scipy.stats.uniform(0, 2 * math.pi).cdf) < level
    assert abs(float(np.corrcoef(a, 0.1 * a + b)[0, 1])) * math.sqrt(h) > scipy.stats.norm.isf(level / 2)


def test_the_radius_has_float64_s_tail_not_float32_s(kt_seed):
    """R = √(−2 log(1 − U)) at the top of U's 53-bit grid is √(106 log 2) ≈ 8.57, where float32 uniforms (24 bits, as
    ``torch.randn``'s float32 normals use) stop at √(48 log 2) ≈ 5.77; that the sampler's U are float64 uniforms is
    pinned by the bitwise test above (a tail beyond 5.8 has probability 5·10⁻⁸, too rare to test by counting). The
    radius's tail mass P(R > 4) = e^{−8} is tested by the count among 2²¹ pairs (Poisson, two-sided α), which a
    radius cut at 4 (no R > 4) would fail."""
    top = box_muller(torch.tensor([1.0 - 2.0**-53], dtype=F64), torch.zeros(1))
    moved = float(torch.sin(torch.tensor(2 * math.pi * 2.0**-25, dtype=torch.float32)))  # V = 0 is read as 2⁻²⁵
    assert top[0].item() == pytest.approx(math.sqrt(106 * math.log(2)), rel=1e-13)
    assert top[1].item() == pytest.approx(math.sqrt(106 * math.log(2)) * moved, rel=1e-15)
    f32_top = math.sqrt(-2 * math.log(2.0**-24))
    assert f32_top < 5.8 < top[0].item()
    h = 1 << 21
    g = torch.Generator().manual_seed(kt_seed)
    z = standard_normal((2 * h,), g)
    r2 = z[:h] ** 2 + z[h:] ** 2
    count = int((r2 > 16).sum())
    lam = h * math.exp(-8)
    p = 2 * min(scipy.stats.poisson.cdf(count, lam), scipy.stats.poisson.sf(count - 1, lam))
    assert p > ALPHA, (count, lam, p)
    assert 2 * scipy.stats.poisson.cdf(0, lam) < ALPHA  # a radius cut at 4 (no R > 4) would be rejected


def test_the_float32_angle_is_within_the_proved_bound_of_an_exact_one():
    """proofs/normal_sampler.md: with Θ = fl32(2π·V) and cos/sin in float32, |cos Θ − cos 2πV| and
    |sin Θ − sin 2πV| are at most 2·2⁻²⁴·2π + 2⁻²⁴ (≈ 8·10⁻⁷), for every V on float32's grid of [0, 1): checked at
    2²⁰ grid points spread over it and at its ends."""
    k = torch.cat([torch.arange(0, 1 << 24, 16), torch.tensor([(1 << 24) - 1, 1, 2])])
    v = (k.to(F64) * 2.0**-24).to(torch.float32)
    assert torch.equal(v.to(F64), k.to(F64) * 2.0**-24)  # exactly the grid points
    theta32 = v * (2 * math.pi)
    exact = v.to(F64) * (2 * math.pi)
    bound = 2 * 2.0**-24 * 2 * math.pi + 2.0**-24
    for f in (torch.cos, torch.sin):
        err = (f(theta32).to(F64) - f(exact)).abs().max().item()
        assert err <= bound, (f.__name__, err, bound)


def test_float32_cos_and_sin_are_within_one_ulp():
    """ε_f of proofs/normal_sampler.md alone: torch's float32 cos and sin against float64 cos and sin of the same
    float32 arguments, on 2²⁰ angles 2π·k·2⁻²⁴ spread over [0, 2π), within 2⁻²⁴ (one unit in the last place of a
    result in [1/2, 1), the most any result in [−1, 1] has)."""
    k = torch.cat([torch.arange(0, 1 << 24, 16), torch.tensor([(1 << 24) - 1, 1, 2])])
    theta = (k.to(torch.float32) * 2.0**-24) * (2 * math.pi)
    for f in (torch.cos, torch.sin):
        err = (f(theta).to(F64) - f(theta.to(F64))).abs().max().item()
        assert err <= 2.0**-24, (f.__name__, err)


def test_no_builtin_estimator_draws_its_normals_through_torch_randn(monkeypatch):
    """Every registered estimator's draws at d = 8, m = 64, 64 draws (32768 normals for a Gaussian law) go through
    the sampler: ``torch.randn`` asked for MIN_TRANSFORM or more float64 normals raises, so a law or component that
    still drew its frequencies with it would fail here (its draws would be another stream, at the old speed)."""
    import kerneltheory.estimators as E

    randn = torch.randn

    def guarded(*args, **kwargs):
        out = randn(*args, **kwargs)
        if out.dtype == F64 and out.numel() >= MIN_TRANSFORM:
            raise AssertionError(f"torch.randn drew {out.numel()} float64 normals")
        return out

    x = 0.3 * torch.randn(4, 8, generator=torch.Generator().manual_seed(0), dtype=F64)
    monkeypatch.setattr(torch, "randn", guarded)
    with pytest.raises(AssertionError, match="torch.randn drew"):  # the guard works
        torch.randn(4096, dtype=F64)
    names = E.list()
    assert len(names) > 50
    for name in names:
        E.get(name, 8, 64).sample_estimates(x, x, torch.Generator().manual_seed(0), 64)


def test_box_muller_refuses_wrong_dtypes_and_shapes():
    u, v = torch.rand(4, dtype=F64), torch.rand(4)
    with pytest.raises(TypeError, match="u must be float64 and v float32"):
        box_muller(u.float(), v)
    with pytest.raises(TypeError, match="u must be float64 and v float32"):
        box_muller(u, v.double())
    with pytest.raises(ValueError, match="1-d of one length"):
        box_muller(u, torch.rand(3))
    with pytest.raises(ValueError, match="out must be float64 of shape"):
        box_muller(u, v, out=torch.empty(7, dtype=F64))


def test_every_builtin_law_draws_through_it():
    """The laws' frequencies come from this sampler (the speed-up reaches the report); a law built on
    ``torch.randn`` directly would draw another stream: Gaussian(d) is bitwise the sampler's stream times its std."""
    from kerneltheory.spectral import Gaussian

    w = Gaussian(3, std=0.5).sample(1024, torch.Generator().manual_seed(7))
    assert torch.equal(w, 0.5 * standard_normal((1, 1024, 3), torch.Generator().manual_seed(7))[0])
    assert not torch.equal(w, 0.5 * torch.randn((1024, 3), generator=torch.Generator().manual_seed(7), dtype=F64))
