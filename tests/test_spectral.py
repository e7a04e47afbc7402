"""Frequency laws (kerneltheory.spectral, MATH.md §3): shapes, exact algebra, row laws, closed forms, errors.

Statistical checks are calibrated tests at a declared false-failure rate α = 1e-6 per test (Bonferroni
across the checks of one test); seeds come from the ``kt_seed`` fixture when the kerneltheory plugin is active
(``--kt-seed=random`` re-runs on fresh seeds), else from the CRC-32 of the test id.
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
import zlib

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
from scipy.special import ndtri

from kerneltheory._normal import standard_normal
from kerneltheory.spectral import (
    LAWS,
    SORF,
    ClosedFormUnavailable,
    Fastfood,
    GaussHermite,
    Gaussian,
    GaussianMixture,
    Generative,
    GeometricLaw,
    LearnableFastfood,
    MomentMatched,
    Orthogonal,
    PoissonLaw,
    QuasiMonteCarlo,
    SpectralLaw,
    fwht,
    hadamard_matrix,
    next_power_of_two,
)
from kerneltheory.spectral.fastfood import fastfood_project

ALPHA = 1e-6
Z_CRIT = scipy.stats.norm.isf(ALPHA / 2)  # two-sided CLT bound at α
F64 = torch.float64


@pytest.fixture
def seed(request) -> int:
    try:
        return int(request.getfixturevalue("kt_seed"))
    except pytest.FixtureLookupError:  # plugin not active: the same scheme, base from $KT_SEED (default 0)
        base = os.environ.get("KT_SEED", "0")
        return zlib.crc32(f"{base}:{request.node.nodeid}".encode()) & 0x7FFFFFFF


def gen(seed: int, offset: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed((seed + offset) % 2**63)


def make_law(name: str, dim: int, seed: int = 0, *, m: int = 12, **kw) -> SpectralLaw:
    cls = LAWS[name]
    if name == "fastfood_learnable":
        return cls(dim, m, generator=gen(seed, 1), **kw)
    if name in ("generative", "mixture"):
        return cls(dim, generator=gen(seed, 1), **kw)
    return cls(dim, **kw)


def assert_ks(samples, cdf, alpha: float, seed: int, what: str) -> None:
    samples = np.asarray(samples, dtype=np.float64).ravel()
    res = scipy.stats.kstest(samples, cdf)
    assert res.pvalue > alpha, (
        f"{what}: KS D = {res.statistic:.4g}, p = {res.pvalue:.3g} <= α = {alpha:g} "
        f"(n = {samples.size}, seed = {seed})"
    )


def assert_z(mean: float, target: float, sd_of_mean: float, alpha: float, seed: int, what: str) -> None:
    z = (mean - target) / sd_of_mean
    crit = scipy.stats.norm.isf(alpha / 2)
    assert abs(z) < crit, (
        f"{what}: mean {mean:.6g} vs {target:.6g}, z = {z:.3g}, |z| >= {crit:.3g} (seed = {seed})"
    )


# ---------------------------------------------------------------------------------------------------------
# Shapes, dtypes, devices, registry
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(LAWS))
def test_shapes_dtypes_device(name, dtype, seed):
    d, m, r = 5, 12, 3  # m not a multiple of d; d not a power of two (sorf, fastfood pad to 8)
    law = make_law(name, d, seed, m=m, dtype=dtype, device="cpu")
    w = law.sample(m, gen(seed), batch=r)
    w1 = law.sample(m, gen(seed, 2))
    assert w.shape == (r, m, d) and w1.shape == (m, d)
    for t in (w, w1):
        assert t.dtype == dtype and t.device == torch.device("cpu")
        assert bool(torch.isfinite(t).all())
    assert torch.equal(law.sample(m, gen(seed), batch=r), w), "same generator state must give the same draw"
    if name not in ("moment_matched", "fastfood_learnable"):  # these need m > d / m fixed at construction
        assert law.sample(1, gen(seed), batch=2).shape == (2, 1, d)


def test_registry_and_class_attributes():
    assert set(LAWS) == {
        "gaussian",
        "orthogonal",
        "sorf",
        "fastfood",
        "fastfood_learnable",
        "qmc",
        "moment_matched",
        "gauss_hermite",
        "mixture",
        "generative",
        "poisson",
        "geometric",
        "simplex",
        "simplex_plus",
        "countsketch",
    }
    for name, cls in LAWS.items():
        assert cls.name == name and issubclass(cls, SpectralLaw)
        assert cls.row_marginal in ("exact", "asymptotic", "no")
        assert isinstance(cls.proof, str) and cls.proof.startswith("proofs/") and cls.proof.endswith(".md")
    assert LAWS["fastfood"].proof == LAWS["fastfood_learnable"].proof == "proofs/fastfood_rows.md"
    assert LAWS["poisson"].proof == LAWS["geometric"].proof == "proofs/dirf.md"
    assert {n for n, c in LAWS.items() if c.learnable} == {"fastfood_learnable", "mixture", "generative"}


def test_references_and_closed_forms(seed):
    d = 3
    tau = torch.randn(4, d, generator=gen(seed), dtype=F64)
    gauss = Gaussian(d, std=0.7)
    for law in (Orthogonal(d, std=0.7), Fastfood(d, std=0.7)):
        assert isinstance(law.reference, Gaussian) and law.reference.std == 0.7
        torch.testing.assert_close(law.char_fn(tau), gauss.char_fn(tau), rtol=0, atol=0)
        torch.testing.assert_close(law.mgf(tau), gauss.mgf(tau), rtol=0, atol=0)
    for law in (
        SORF(d, std=0.7),
        QuasiMonteCarlo(d, std=0.7),
        MomentMatched(d, std=0.7),
        Orthogonal(d, scaling="fixed"),
    ):
        assert isinstance(law.reference, Gaussian) and law.reference.std == law.std
        with pytest.raises(ClosedFormUnavailable):
            law.char_fn(tau)
        with pytest.raises(ClosedFormUnavailable):
            law.mgf(tau)
    assert isinstance(GaussHermite(d, std=0.7).reference, Gaussian)
    assert LearnableFastfood(d, 4, generator=gen(seed)).reference is None
    assert Generative(d, generator=gen(seed)).reference is None
    for law in (GaussianMixture(d), PoissonLaw(d), GeometricLaw(d)):
        assert law.reference is law


def test_instance_overrides_of_class_attributes():
    fixed = Orthogonal(4, scaling="fixed")
    assert fixed.row_marginal == "no" and not fixed.rows_marginally_gaussian
    assert Orthogonal.row_marginal == "exact" and Orthogonal(4).row_marginal == "exact"
    assert (
        QuasiMonteCarlo(2, scramble=False).row_marginal == "no" and QuasiMonteCarlo(2).row_marginal == "exact"
    )
    assert GaussianMixture(2, antithetic=True).iid_rows is False and GaussianMixture(2).iid_rows is True


# ---------------------------------------------------------------------------------------------------------
# Walsh–Hadamard transform
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 8, 64])
def test_fwht_equals_dense_hadamard(d, seed):
    x = torch.randn(3, 2, d, generator=gen(seed), dtype=F64)
    h = hadamard_matrix(d)
    torch.testing.assert_close(fwht(x), x @ h.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        fwht(x, normalized=True), x @ hadamard_matrix(d, normalized=True).T, rtol=0, atol=1e-12
    )
    torch.testing.assert_close(h @ h.T, d * torch.eye(d, dtype=F64), rtol=0, atol=0)
    torch.testing.assert_close(fwht(fwht(x, normalized=True), normalized=True), x, rtol=0, atol=1e-12)
    assert fwht(x[0, 0]).shape == (d,)


def test_hadamard_helpers():
    assert [next_power_of_two(n) for n in (1, 2, 3, 5, 8, 9, 1000)] == [1, 2, 4, 8, 8, 16, 1024]
    parity = torch.tensor([[bin(a & b).count("1") % 2 for b in range(16)] for a in range(16)])
    assert torch.equal(hadamard_matrix(16), (1 - 2 * parity).to(F64))  # Sylvester order: (−1)^popcount(i & j)
    with pytest.raises(ValueError, match="x"):
        fwht(torch.ones(3, 6))
    with pytest.raises(ValueError, match="d"):
        hadamard_matrix(6)
    with pytest.raises(ValueError, match="n"):
        next_power_of_two(0)


# ---------------------------------------------------------------------------------------------------------
# Orthogonal random features
# ---------------------------------------------------------------------------------------------------------


def test_orthogonal_blocks_are_orthogonal(seed):
    d, m, r = 6, 15, 4  # two full blocks and a partial one
    w = Orthogonal(d, std=2.0).sample(m, gen(seed), batch=r)
    for start in range(0, m, d):
        block = w[:, start : start + d]
        u = block / block.norm(dim=-1, keepdim=True)
        k = block.shape[1]
        torch.testing.assert_close(
            u @ u.transpose(-1, -2), torch.eye(k, dtype=F64).expand(r, k, k), rtol=0, atol=1e-12
        )
    fixed = Orthogonal(d, std=2.0, scaling="fixed").sample(m, gen(seed))
    torch.testing.assert_close(
        fixed.norm(dim=-1), torch.full((m,), 2.0 * math.sqrt(d), dtype=F64), rtol=1e-12, atol=0
    )


@pytest.mark.statistical
def test_orthogonal_rows_are_gaussian(seed):
    d, m, r, std = 4, 6, 3000, 1.5  # row 5 lies in the partial second block
    w = Orthogonal(d, std=std).sample(m, gen(seed), batch=r).numpy()
    u = np.ones(d) / math.sqrt(d)
    checks = [
        (np.linalg.norm(w[:, 0], axis=-1), scipy.stats.chi(d, scale=std).cdf, "norm of row 0 vs χ_d"),
        (np.linalg.norm(w[:, 5], axis=-1), scipy.stats.chi(d, scale=std).cdf, "norm of row 5 vs χ_d"),
        (w[:, 1, 2], scipy.stats.norm(scale=std).cdf, "coordinate (1, 2) vs N(0, σ²)"),
        (w[:, 4, 0], scipy.stats.norm(scale=std).cdf, "coordinate (4, 0) vs N(0, σ²)"),
        (w[:, 3] @ u, scipy.stats.norm(scale=std).cdf, "projection uᵀω_3 vs N(0, σ²)"),
    ]
    for samples, cdf, what in checks:
        assert_ks(samples, cdf, ALPHA / len(checks), seed, what)
    # Power: the fixed-norm variant is rejected by the same χ_d check.
    fixed = Orthogonal(d, std=std, scaling="fixed").sample(m, gen(seed), batch=r).numpy()
    assert (
        scipy.stats.kstest(np.linalg.norm(fixed[:, 0], axis=-1), scipy.stats.chi(d, scale=std).cdf).pvalue
        < ALPHA
    )


# ---------------------------------------------------------------------------------------------------------
# SORF
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [8, 5])
def test_sorf_exact_structure(d, seed):
    """√d'·(HD₁)(HD₂)(HD₃) is √d' times an orthogonal matrix: block columns orthogonal, norm √d'·σ."""
    std, m, r = 0.5, 19, 3
    law = SORF(d, std=std)
    dp = law.padded_dim
    assert dp == next_power_of_two(d)
    w = law.sample(m, gen(seed), batch=r)
    full_blocks = m // dp
    for b in range(full_blocks):
        block = w[:, b * dp : (b + 1) * dp]  # [r, d', d]
        torch.testing.assert_close(
            block.transpose(-1, -2) @ block,
            dp * std**2 * torch.eye(d, dtype=F64).expand(r, d, d),
            rtol=0,
            atol=1e-12,
        )
        if d == dp:  # square blocks: rows orthogonal too, each of norm exactly √d·σ
            torch.testing.assert_close(
                block @ block.transpose(-1, -2),
                d * std**2 * torch.eye(d, dtype=F64).expand(r, d, d),
                rtol=0,
                atol=1e-12,
            )
    # Every entry of (HD₁)(HD₂)(HD₃)·√d'^3 is an integer: the law is discrete, never Gaussian.
    scaled = w / std * dp
    torch.testing.assert_close(scaled, scaled.round(), rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------------------------------------
# Fastfood
# ---------------------------------------------------------------------------------------------------------


def dense_fastfood(params: dict, d: int) -> torch.Tensor:
    """(1/√d') S H G Π H B per block from dense matrices, first d columns, first m rows (no fwht)."""
    s, g, b, perm = params["S"], params["G"], params["B"], params["perm"]
    dp = s.shape[-1]
    h = hadamard_matrix(dp)
    p = torch.eye(dp, dtype=F64)[perm]  # (P v)_k = v_{perm[k]}
    v = torch.diag_embed(s) @ h @ torch.diag_embed(g) @ p @ h @ torch.diag_embed(b) / math.sqrt(dp)
    v = v[..., :d]
    return v.reshape(*v.shape[:-3], -1, d)[..., : params["num_features"], :]


def test_fastfood_structured_projection_equals_dense(seed):
    d, m, r = 5, 20, 3  # d' = 8, three blocks, the last one partial
    law = Fastfood(d, std=1.3)
    params = law.sample_structured(m, gen(seed), batch=r)
    assert params["S"].shape == (r, 3, 8) and params["perm"].dtype == torch.int64
    w_dense = dense_fastfood(params, d)
    x = torch.randn(4, d, generator=gen(seed, 1), dtype=F64)
    torch.testing.assert_close(law.project(x, params), x @ w_dense.transpose(-1, -2), rtol=0, atol=1e-10)
    xb = torch.randn(r, 4, d, generator=gen(seed, 2), dtype=F64)
    torch.testing.assert_close(law.project(xb, params), xb @ w_dense.transpose(-1, -2), rtol=0, atol=1e-10)
    # sample() with the same generator state builds the same W densely.
    torch.testing.assert_close(law.sample(m, gen(seed), batch=r), w_dense, rtol=0, atol=1e-10)
    single = law.sample_structured(m, gen(seed))
    torch.testing.assert_close(law.project(x, single), x @ dense_fastfood(single, d).T, rtol=0, atol=1e-10)


@pytest.mark.statistical
def test_fastfood_rows_are_gaussian(seed):
    r = 3000
    w8 = Fastfood(8).sample(12, gen(seed), batch=r).numpy()  # d = d' = 8; row 9 in the second block
    w5 = Fastfood(5, std=0.5).sample(8, gen(seed, 1), batch=r).numpy()  # d' = 8, W keeps 5 columns
    checks = [
        (np.linalg.norm(w8[:, 0], axis=-1), scipy.stats.chi(8).cdf, "d=8: norm of row 0 vs χ_8"),
        (np.linalg.norm(w8[:, 9], axis=-1), scipy.stats.chi(8).cdf, "d=8: norm of row 9 vs χ_8"),
        (w8[:, 3, 5], scipy.stats.norm.cdf, "d=8: coordinate (3, 5) vs N(0, 1)"),
        (w8[:, 2].sum(-1) / math.sqrt(8), scipy.stats.norm.cdf, "d=8: projection uᵀω_2 vs N(0, 1)"),
        (np.linalg.norm(w5[:, 6], axis=-1), scipy.stats.chi(5, scale=0.5).cdf, "d=5: norm of row 6 vs χ_5"),
        (w5[:, 1, 4], scipy.stats.norm(scale=0.5).cdf, "d=5: coordinate (1, 4) vs N(0, σ²)"),
    ]
    for samples, cdf, what in checks:
        assert_ks(samples, cdf, ALPHA / len(checks), seed, what)


# ---------------------------------------------------------------------------------------------------------
# Learnable Fastfood
# ---------------------------------------------------------------------------------------------------------


def test_learnable_fastfood_gradients_state_and_projection(seed):
    d, m = 5, 12
    law = LearnableFastfood(d, m, generator=gen(seed), std=0.8)
    assert {n for n, _ in law.named_parameters()} == {"S", "G", "B"}
    assert law.S.shape == law.G.shape == law.B.shape == (2, 8)
    assert torch.equal(law.B.detach().abs(), torch.ones(2, 8, dtype=F64))
    w = law.sample(m, gen(seed, 1), batch=4)
    (w**2).sum().backward()
    for name, p in law.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()) and float(p.grad.abs().sum()) > 0, (
            name
        )
    # Π is redrawn per draw while S, G, B are shared.
    assert not torch.equal(w[0], w[1])
    # The structured path agrees with the dense W of the same draw.
    params = law.sample_structured(m, gen(seed, 1), batch=4)
    x = torch.randn(3, d, generator=gen(seed, 2), dtype=F64)
    torch.testing.assert_close(law.project(x, params), x @ w.detach().transpose(-1, -2), rtol=0, atol=1e-10)
    torch.testing.assert_close(
        fastfood_project(x, params), x @ dense_fastfood(params, d).transpose(-1, -2), rtol=0, atol=1e-10
    )
    # state_dict round trip.
    other = LearnableFastfood(d, m, generator=gen(seed, 99))
    other.load_state_dict(law.state_dict())
    torch.testing.assert_close(other.sample(m, gen(seed, 3)), law.sample(m, gen(seed, 3)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="num_features"):
        law.sample(m + 1, gen(seed))


# ---------------------------------------------------------------------------------------------------------
# Quasi-Monte Carlo
# ---------------------------------------------------------------------------------------------------------


def test_qmc_never_infinite():
    # Scrambled points sit on the centred 2^-53 grid (|ω| ≤ σΦ⁻¹(1 − 2^-54) ≈ 8.29σ), unscrambled ones at the
    # centres of the 2^-32 cells (|ω| ≤ σΦ⁻¹(1 − 2^-33) ≈ 6.34σ); proofs/qmc.md.
    bounds = {True: -ndtri(2.0**-54), False: -ndtri(2.0**-33)}
    for sequence, scramble, d, k in itertools.product(
        ("sobol", "halton"), (True, False), range(1, 9), (0, 3, 6)
    ):
        law = QuasiMonteCarlo(d, std=2.0, sequence=sequence, scramble=scramble)
        w = law.sample(2**k, torch.Generator().manual_seed(d + k), batch=2)
        assert bool(torch.isfinite(w).all()), (sequence, scramble, d, k)
        assert float(w.abs().max()) <= 2.0 * bounds[scramble] * (1 + 1e-12)
    # The unscrambled sequences start at t = 0, which snaps to the first cell's centre.
    w = QuasiMonteCarlo(3, sequence="sobol", scramble=False).sample(4, torch.Generator().manual_seed(0))
    assert float(w.min()) == pytest.approx(-bounds[False], rel=1e-12)
    t = np.array([0.0, 0.5, 1.0 - 2.0**-40, 1.0])
    snapped = QuasiMonteCarlo.snap(t)
    np.testing.assert_array_equal(snapped, [2.0**-33, 0.5 + 2.0**-33, 1 - 2.0**-33, 1 - 2.0**-33])
    # A jitter offset (k + ½)/2^21 moves the point inside its own cell, onto the 2^-53 grid.
    jitter = (np.array([0, 5, 2**21 - 1]) + 0.5) / 2**21
    np.testing.assert_array_equal(
        QuasiMonteCarlo.snap(np.array([0.0, 0.25 + 2.0**-35, 0.5 - 2.0**-40]), jitter),
        [2.0**-54, 0.25 + 11 * 2.0**-54, 0.5 - 2.0**-54],
    )


def test_qmc_warning_silenced_locally_only(seed):
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        QuasiMonteCarlo(3).sample(6, gen(seed), batch=2)  # 6 is not a power of two
    assert not caught, [str(c.message) for c in caught]
    assert warnings.filters == before


@pytest.mark.statistical
def test_qmc_rows_marginally_gaussian_when_scrambled(seed):
    r, std = 1500, 0.7
    sob = QuasiMonteCarlo(3, std=std).sample(8, gen(seed), batch=r).numpy()
    hal = QuasiMonteCarlo(3, std=std, sequence="halton").sample(6, gen(seed, 1), batch=r).numpy()
    cdf = scipy.stats.norm(scale=std).cdf
    checks = [
        (sob[:, 0, 0], "sobol (0, 0)"),
        (sob[:, 5, 2], "sobol (5, 2)"),
        (hal[:, 0, 1], "halton (0, 1)"),
        (hal[:, 4, 2], "halton (4, 2)"),
    ]
    for samples, what in checks:
        assert_ks(samples, cdf, ALPHA / len(checks), seed, what)
    # Draws are independent scrambles; without scrambling every draw is the same point set (power check).
    assert not np.array_equal(sob[0], sob[1])
    det = QuasiMonteCarlo(3, std=std, scramble=False).sample(8, gen(seed), batch=r).numpy()
    assert np.array_equal(det[0], det[-1])
    assert scipy.stats.kstest(det[:, 5, 2], cdf).pvalue < ALPHA


# ---------------------------------------------------------------------------------------------------------
# Moment matching
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["f64", "f32"])
def test_moment_matched_exact_moments(dtype, tol, seed):
    d, m, r, std = 4, 9, 5, 1.7
    w = MomentMatched(d, std=std, dtype=dtype).sample(m, gen(seed), batch=r).to(F64)
    torch.testing.assert_close(w.mean(-2), torch.zeros(r, d, dtype=F64), rtol=0, atol=tol * std)
    cov = w.transpose(-1, -2) @ w / m
    torch.testing.assert_close(
        cov, std**2 * torch.eye(d, dtype=F64).expand(r, d, d), rtol=0, atol=tol * std**2 * 10
    )
    with pytest.raises(ValueError, match="num_features"):
        MomentMatched(d).sample(d, gen(seed))


# ---------------------------------------------------------------------------------------------------------
# Gauss–Hermite
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2])
def test_gauss_hermite_closed_forms_by_enumeration(d, seed):
    law = GaussHermite(d, std=0.9, nodes=4)
    v, p = law.values.numpy(), law.probs.numpy()
    assert p.sum() == pytest.approx(1.0, abs=1e-14)
    z = torch.randn(3, d, generator=gen(seed), dtype=F64)
    mgf, cf = np.zeros(3), np.zeros(3)
    for idx in itertools.product(range(4), repeat=d):
        omega, prob = v[list(idx)], np.prod(p[list(idx)])
        mgf += prob * np.exp(z.numpy() @ omega)
        cf += prob * np.cos(z.numpy() @ omega)
    np.testing.assert_allclose(law.exact_mgf(z).numpy(), mgf, rtol=1e-13)
    np.testing.assert_allclose(law.exact_char_fn(z).numpy(), cf, rtol=0, atol=1e-14)
    torch.testing.assert_close(law.mgf(z), law.exact_mgf(z))
    torch.testing.assert_close(law.char_fn(z), law.exact_char_fn(z))


def double_factorial(k: int) -> int:
    """k!! with (−1)!! = 0!! = 1: E N(0, 1)^{2j} = (2j − 1)!!."""
    return math.prod(range(k, 0, -2))


def test_gauss_hermite_matches_gaussian_to_the_rule_order():
    n, std = 3, 1.2
    law = GaussHermite(1, std=std, nodes=n)
    v, p = law.values.numpy(), law.probs.numpy()
    for k in range(2 * n):  # degree ≤ 2n − 1 exact
        gauss_moment = 0.0 if k % 2 else std**k * double_factorial(k - 1)
        assert float(p @ v**k) == pytest.approx(gauss_moment, rel=1e-12, abs=1e-12)
    # M_GH(z) − M_N(z) = (m_2n^GH − m_2n^N) z^{2n}/(2n)! + O(z^{2n+2}).
    lead = (float(p @ v ** (2 * n)) - std ** (2 * n) * double_factorial(2 * n - 1)) / math.factorial(2 * n)
    assert lead != 0.0
    for z in (0.05, 0.1):
        zt = torch.tensor([[z]], dtype=F64)
        diff = float(law.exact_mgf(zt) - law.reference.mgf(zt))
        assert diff / (lead * z ** (2 * n)) == pytest.approx(1.0, abs=0.01)


@pytest.mark.statistical
def test_gauss_hermite_sampler_matches_its_closed_forms(seed):
    d, m, r = 2, 50, 400
    law = GaussHermite(d, std=0.8, nodes=5)
    w = law.sample(m, gen(seed), batch=r).reshape(-1, d)  # r·m iid rows
    n = w.shape[0]
    z = torch.tensor([0.6, -0.4], dtype=F64)
    vals = torch.exp(w @ z)
    var = float(law.exact_mgf(2 * z) - law.exact_mgf(z) ** 2)
    assert_z(
        float(vals.mean()), float(law.exact_mgf(z)), math.sqrt(var / n), ALPHA / 2, seed, "mean exp(ωᵀz)"
    )
    tau = torch.tensor([1.1, 0.7], dtype=F64)
    var_c = float((1 + law.exact_char_fn(2 * tau)) / 2 - law.exact_char_fn(tau) ** 2)
    mean_c = float(torch.cos(w @ tau).mean())
    assert_z(mean_c, float(law.exact_char_fn(tau)), math.sqrt(var_c / n), ALPHA / 2, seed, "mean cos(ωᵀτ)")
    assert set(torch.unique(w).tolist()) <= set(law.values.tolist())


# ---------------------------------------------------------------------------------------------------------
# Gaussian mixture
# ---------------------------------------------------------------------------------------------------------

MIX1 = {"means": [[0.7], [-1.2]], "covs": [[[0.5]], [[1.3]]], "weights": [0.3, 0.7]}


def _normal_pdf(x, mean, sd):
    """N(mean, sd²)'s density in plain floats (quad calls the integrand thousands of times; scipy.stats.norm.pdf
    per point dominated these tests): checked against scipy in test_mixture_closed_forms_by_quadrature_1d."""
    return math.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def mixture_density_1d(omega, antithetic=False, pdf=_normal_pdf):
    dens = 0.0
    for mu, var, w in zip(MIX1["means"], MIX1["covs"], MIX1["weights"], strict=True):
        sd = math.sqrt(var[0][0])
        if antithetic:
            dens += w * 0.5 * (pdf(omega, mu[0], sd) + pdf(omega, -mu[0], sd))
        else:
            dens += w * pdf(omega, mu[0], sd)
    return dens


@pytest.mark.parametrize("antithetic", [False, True])
def test_mixture_closed_forms_by_quadrature_1d(antithetic):
    law = GaussianMixture(1, 2, antithetic=antithetic, **MIX1)
    for o in (-7.0, -1.2, -0.3, 0.0, 0.7, 2.5, 9.0):
        ref = mixture_density_1d(o, antithetic, pdf=scipy.stats.norm.pdf)
        assert mixture_density_1d(o, antithetic) == pytest.approx(ref, rel=1e-13, abs=0.0)
    for t in (0.0, 0.4, 1.7, -3.0):
        val, err = scipy.integrate.quad(
            lambda o, t=t: mixture_density_1d(o, antithetic) * math.cos(o * t),
            -20,
            20,
            epsabs=1e-13,
            epsrel=1e-13,
            limit=200,
        )
        got = float(law.char_fn(torch.tensor([t], dtype=F64)).detach())
        assert abs(got - val) <= max(10 * err, 1e-10), (t, got, val, err)
    for z in (0.0, 0.3, -0.8, 1.5):
        val, err = scipy.integrate.quad(
            lambda o, z=z: mixture_density_1d(o, antithetic) * math.exp(o * z),
            -30,
            30,
            epsabs=1e-13,
            epsrel=1e-13,
            limit=200,
        )
        got = float(law.mgf(torch.tensor([z], dtype=F64)).detach())
        assert abs(got - val) <= max(10 * err, 1e-10 * val), (z, got, val, err)


def test_mixture_closed_forms_by_quadrature_2d():
    means = torch.tensor([[0.5, -0.3], [-0.2, 0.9]], dtype=F64)
    covs = torch.tensor([[[0.6, 0.2], [0.2, 0.4]], [[0.3, -0.1], [-0.1, 0.8]]], dtype=F64)
    weights = torch.tensor([0.45, 0.55], dtype=F64)
    law = GaussianMixture(2, 2, means=means, covs=covs, weights=weights)
    comps = [scipy.stats.multivariate_normal(means[q].numpy(), covs[q].numpy()) for q in range(2)]
    # the bivariate normal densities in plain floats (dblquad calls the integrand ~10⁵ times: scipy's pdf and a
    # numpy product per point cost 1.5 s), checked against scipy's pdf on a grid
    terms = [(float(weights[q]) / (2 * math.pi * math.sqrt(np.linalg.det(covs[q].numpy()))),
              *means[q].tolist(), *np.linalg.inv(covs[q].numpy())[[0, 0, 1], [0, 1, 1]].tolist()) for q in range(2)]

    def density(a, b):
        return sum(c * math.exp(-0.5 * (p * (a - m0) ** 2 + 2 * r * (a - m0) * (b - m1) + s * (b - m1) ** 2))
                   for c, m0, m1, p, r, s in terms)

    for a, b in itertools.product((-2.0, -0.3, 0.0, 0.5, 1.7), repeat=2):
        ref = sum(float(weights[q]) * comps[q].pdf([a, b]) for q in range(2))
        assert density(a, b) == pytest.approx(ref, rel=1e-13, abs=0.0)

    tau, z = [0.8, -0.5], [0.4, 0.3]
    cf, cf_err = scipy.integrate.dblquad(
        lambda b, a: density(a, b) * math.cos(tau[0] * a + tau[1] * b), -9, 9, -9, 9, epsabs=1e-10, epsrel=1e-10
    )
    mg, mg_err = scipy.integrate.dblquad(
        lambda b, a: density(a, b) * math.exp(z[0] * a + z[1] * b), -9, 9, -9, 9, epsabs=1e-10, epsrel=1e-10
    )
    assert abs(float(law.char_fn(torch.tensor(tau, dtype=F64)).detach()) - cf) <= max(10 * cf_err, 1e-8)
    assert abs(float(law.mgf(torch.tensor(z, dtype=F64)).detach()) - mg) <= max(10 * mg_err, 1e-8)
    torch.testing.assert_close(law.covs.detach(), covs, rtol=0, atol=1e-14)
    torch.testing.assert_close(law.weights.detach(), weights, rtol=0, atol=1e-14)


def test_mixture_antithetic_pairs_share_noise(seed):
    d, m, r = 3, 10, 4
    kw = {"generator": gen(seed, 1), "components": 3}
    anti = GaussianMixture(d, antithetic=True, **kw)
    plain = GaussianMixture(d, **{**kw, "generator": gen(seed, 1)})
    plain.load_state_dict(anti.state_dict())
    w = anti.sample(m, gen(seed), batch=r).detach()
    half = plain.sample(m // 2, gen(seed), batch=r).detach()  # same q and ε (same generator stream)
    torch.testing.assert_close(w[:, 0::2], half, rtol=0, atol=1e-14)
    means = anti.means.detach()
    diff = (w[:, 0::2] - w[:, 1::2]) / 2  # = μ_q for the pair's component q
    dist = (diff.unsqueeze(-2) - means).abs().amax(-1).amin(-1)
    assert float(dist.max()) < 1e-14
    with pytest.raises(ValueError, match="num_features"):
        anti.sample(7, gen(seed))


@pytest.mark.statistical
@pytest.mark.parametrize("antithetic", [False, True])
def test_mixture_sampler_matches_closed_forms(antithetic, seed):
    law = GaussianMixture(2, 3, generator=gen(seed, 1), init_std=0.6, antithetic=antithetic)
    with torch.no_grad():
        law.means.mul_(10.0)
        law.logits.copy_(torch.tensor([0.0, 0.5, -0.5]))
    r = 20000
    w = law.sample(2, gen(seed), batch=r).detach()  # one pair (or two iid rows) per draw
    z, tau = torch.tensor([0.3, -0.2], dtype=F64), torch.tensor([0.9, 0.4], dtype=F64)
    pair_mgf = torch.exp(w @ z).mean(-1)  # averaging the pair gives the symmetrised MGF
    pair_cos = torch.cos(w @ tau).mean(-1)
    for vals, target, what in (
        (pair_mgf, law.mgf(z).detach(), "mgf"),
        (pair_cos, law.char_fn(tau).detach(), "char_fn"),
    ):
        sd = float(vals.std()) / math.sqrt(r)
        assert_z(float(vals.mean()), float(target), sd, ALPHA / 2, seed, what)


def test_mixture_gradients_and_state_dict(seed):
    law = GaussianMixture(3, 2, generator=gen(seed))
    w = law.sample(6, gen(seed, 1), batch=2)
    (w**2).sum().backward()
    for name in ("means", "chol_lower", "chol_log_diag"):
        grad = getattr(law, name).grad
        assert grad is not None and float(grad.abs().sum()) > 0, name
    assert law.logits.grad is None  # the categorical choice carries no gradient
    law.zero_grad()
    law.mgf(torch.tensor([[0.2, -0.1, 0.4]], dtype=F64)).sum().backward()
    assert law.logits.grad is not None and float(law.logits.grad.abs().sum()) > 0
    other = GaussianMixture(3, 2, generator=gen(seed, 5))
    other.load_state_dict(law.state_dict())
    torch.testing.assert_close(other.sample(6, gen(seed, 2)), law.sample(6, gen(seed, 2)), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------
# Generative
# ---------------------------------------------------------------------------------------------------------


def test_generative_gradients_state_dict_and_explicit_randomness(seed):
    state = torch.get_rng_state()
    law = Generative(3, generator=gen(seed), noise_dim=5, hidden=16)
    w = law.sample(7, gen(seed, 1), batch=2)
    assert torch.equal(torch.get_rng_state(), state), "the global RNG must not be touched"
    assert w.shape == (2, 7, 3)
    w.pow(2).sum().backward()
    for name, p in law.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    other = Generative(3, generator=gen(seed), noise_dim=5, hidden=16)
    torch.testing.assert_close(other.sample(4, gen(seed, 2)), law.sample(4, gen(seed, 2)), rtol=0, atol=0)
    third = Generative(3, generator=gen(seed, 7), noise_dim=5, hidden=16)
    assert not torch.equal(third.sample(4, gen(seed, 2)), law.sample(4, gen(seed, 2)))
    third.load_state_dict(law.state_dict())
    torch.testing.assert_close(third.sample(4, gen(seed, 2)), law.sample(4, gen(seed, 2)), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------
# Discrete laws (DIRF)
# ---------------------------------------------------------------------------------------------------------


def poisson_terms(rate: float, z: float, rel: float = 1e-15) -> np.ndarray:
    """e^{−λ}(λe^z)^k/k! for k < K, with K the least index where the tail bound
    Σ_{k≥K} e^{−λ}μ^k/k! ≤ e^{−λ}μ^K/K! · (K+1)/(K+1−μ) (μ = λe^z, K+1 > μ) falls below rel·M(z)."""
    mu, total = rate * math.exp(z), math.exp(rate * math.expm1(z))
    k = 0
    while True:
        log_term = -rate + k * math.log(mu) - math.lgamma(k + 1)
        if k + 1 > mu and math.exp(log_term) * (k + 1) / (k + 1 - mu) < rel * total:
            break
        k += 1
    ks = np.arange(k)
    return np.exp(-rate + ks * math.log(mu) - scipy.special.gammaln(ks + 1))


def geometric_count(p: float, z: float, rel: float = 1e-15) -> int:
    """K with Σ_{k≥K} p r^k = p r^K/(1 − r) ≤ rel·M(z), r = (1 − p)e^z < 1."""
    ratio = (1 - p) * math.exp(z)
    total = p / (1 - ratio)
    return math.ceil(math.log(rel * total * (1 - ratio) / p) / math.log(ratio))


def test_discrete_mgfs_equal_truncated_series():
    rate, p = 2.5, 0.3
    pois, geom = PoissonLaw(2, rate=rate), GeometricLaw(2, p=p)
    for z in ([0.3, -0.7], [1.2, 0.0], [-2.0, 0.5]):
        zt = torch.tensor(z, dtype=F64)
        series = np.prod([poisson_terms(rate, zl).sum() for zl in z])
        assert float(pois.mgf(zt)) == pytest.approx(series, rel=1e-13)
    for z in ([0.3, -0.7], [0.2, 0.0], [-2.0, 0.1]):  # the geometric MGF needs (1 − p)e^{z_l} < 1
        zt = torch.tensor(z, dtype=F64)
        g_series = 1.0
        for zl in z:
            ks = np.arange(geometric_count(p, zl))
            g_series *= np.sum(p * (1 - p) ** ks * np.exp(zl * ks))
        assert float(geom.mgf(zt)) == pytest.approx(g_series, rel=1e-13)
    # 1-D checks of the same series.
    assert float(PoissonLaw(1, rate=rate).mgf(torch.tensor([0.4], dtype=F64))) == pytest.approx(
        poisson_terms(rate, 0.4).sum(), rel=1e-13
    )


def test_discrete_char_fns_equal_truncated_double_series():
    """Re ψ of the product law (a double sum over (k₁, k₂)), not the product of 1-D real parts."""
    rate, p = 1.5, 0.4
    tau = np.array([0.9, -2.1])
    kp = np.arange(60)
    pmf_p = scipy.stats.poisson.pmf(kp, rate)
    kg = np.arange(geometric_count(p, 0.0))
    pmf_g = p * (1 - p) ** kg
    for law, ks, pmf in ((PoissonLaw(2, rate=rate), kp, pmf_p), (GeometricLaw(2, p=p), kg, pmf_g)):
        joint = np.outer(pmf, pmf) * np.cos(tau[0] * ks[:, None] + tau[1] * ks[None, :])
        got = float(law.char_fn(torch.tensor(tau)))
        assert got == pytest.approx(joint.sum(), abs=1e-13)
        prod_of_real = np.prod([np.sum(pmf * np.cos(t * ks)) for t in tau])
        assert abs(got - prod_of_real) > 1e-3  # the naive product is wrong for these asymmetric laws


@pytest.mark.statistical
@pytest.mark.parametrize("name", ["poisson", "geometric"])
def test_discrete_sample_moments(name, seed):
    law = PoissonLaw(3, rate=2.5) if name == "poisson" else GeometricLaw(3, p=0.3)
    w = law.sample(100, gen(seed), batch=100).reshape(-1).numpy()
    n = w.size
    assert np.array_equal(w, np.round(w)) and w.min() >= 0
    if name == "poisson":
        mean, var, dist = 2.5, 2.5, scipy.stats.poisson(2.5)
    else:
        mean, var, dist = 0.7 / 0.3, 0.7 / 0.09, scipy.stats.geom(0.3, loc=-1)  # scipy's geom starts at 1
    assert_z(float(w.mean()), mean, math.sqrt(var / n), ALPHA / 3, seed, "sample mean")
    z = torch.tensor([0.1, 0.0, 0.0], dtype=F64)
    m1, m2 = float(law.mgf(z)), float(law.mgf(2 * z))
    vals = np.exp(0.1 * w.reshape(-1, 3)[:, 0])
    assert_z(float(vals.mean()), m1, math.sqrt((m2 - m1**2) / vals.size), ALPHA / 3, seed, "mean exp(0.1 ω₁)")
    # χ² goodness of fit on the cells 0..K−1 and {≥ K}, the tail cell expecting ≥ 50 draws (every cell ≥ 20).
    k_max = int(dist.isf(50 / n))
    counts = np.bincount(np.minimum(w.astype(np.int64), k_max), minlength=k_max + 1)
    probs = np.append(dist.pmf(np.arange(k_max)), dist.sf(k_max - 1))
    res = scipy.stats.chisquare(counts, probs * n)
    assert res.pvalue > ALPHA / 3, f"χ² = {res.statistic:.4g}, p = {res.pvalue:.3g} (seed = {seed})"


# ---------------------------------------------------------------------------------------------------------
# Validation: errors name the argument
# ---------------------------------------------------------------------------------------------------------

STD_LAWS = ["orthogonal", "sorf", "fastfood", "fastfood_learnable", "qmc", "moment_matched", "gauss_hermite"]


@pytest.mark.parametrize("name", sorted(LAWS))
def test_bad_sample_arguments(name, seed):
    law = make_law(name, 3, seed)
    for bad in (0, -2):
        with pytest.raises(ValueError, match="num_features"):
            law.sample(bad, gen(seed))
    with pytest.raises(TypeError, match="num_features"):
        law.sample(2.5, gen(seed))
    for bad_gen in (0, np.random.default_rng(0), None):
        with pytest.raises(TypeError, match="generator"):
            law.sample(12, bad_gen)
    with pytest.raises(ValueError, match="batch"):
        law.sample(12, gen(seed), batch=0)
    with pytest.raises(ValueError, match="dim"):
        make_law(name, 0, seed)
    if law.reference is not None:
        with pytest.raises(ValueError, match="tau"):
            law.reference.char_fn(torch.zeros(2, 4, dtype=F64))
        with pytest.raises(ValueError, match="z"):
            law.reference.mgf(torch.zeros(4, dtype=F64))


@pytest.mark.parametrize("name", STD_LAWS)
def test_bad_std(name, seed):
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="std"):
            make_law(name, 3, seed, std=bad)


def test_bad_law_specific_arguments(seed):
    with pytest.raises(ValueError, match="nodes"):
        GaussHermite(2, nodes=0)
    with pytest.raises(TypeError, match="nodes"):
        GaussHermite(2, nodes=2.5)
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="p"):
            GeometricLaw(2, p=bad)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="rate"):
            PoissonLaw(2, rate=bad)
    with pytest.raises(ValueError, match="z"):
        GeometricLaw(2, p=0.3).mgf(torch.tensor([0.1, -math.log(0.7) + 1e-9], dtype=F64))
    with pytest.raises(ValueError, match="scaling"):
        Orthogonal(3, scaling="unit")
    with pytest.raises(ValueError, match="sequence"):
        QuasiMonteCarlo(3, sequence="lattice")
    with pytest.raises(ValueError, match="dtype"):
        Orthogonal(3, dtype=torch.float16)
    with pytest.raises(TypeError, match="generator"):
        Generative(3, generator=0)
    with pytest.raises(TypeError, match="generator"):
        LearnableFastfood(3, 4, generator=None)
    with pytest.raises(TypeError, match="generator"):
        GaussianMixture(3, 2, generator=1)
    with pytest.raises(ValueError, match="means"):
        GaussianMixture(2, 2, means=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="covs"):
        GaussianMixture(2, 1, covs=torch.tensor([[[1.0, 2.0], [2.0, 1.0]]]))
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(2, 2, weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="components"):
        GaussianMixture(2, 0)
    with pytest.raises(ValueError, match="x"):
        Fastfood(3).project(torch.zeros(2, 4, dtype=F64), Fastfood(3).sample_structured(4, gen(seed)))
    with pytest.raises(ValueError, match="num_features"):
        Fastfood(3).sample_structured(0, gen(seed))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(LAWS))
def test_cuda_device(name, seed):
    law = make_law(name, 5, seed, dtype=torch.float32, device="cuda")
    w = law.sample(12, gen(seed), batch=2)
    cpu = make_law(name, 5, seed, dtype=torch.float32, device="cpu").sample(12, gen(seed), batch=2)
    assert w.device.type == "cuda" and w.shape == (2, 12, 5) and bool(torch.isfinite(w).all())
    if name not in (
        "orthogonal",
        "moment_matched",
    ):  # these factorise on the device (results differ by rounding)
        torch.testing.assert_close(w.cpu(), cpu, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(LAWS))
def test_cuda_generators_draw_on_the_device_or_are_refused(name, seed):
    """A law with device_generator draws from a CUDA generator on the GPU, reproducibly per seed; any other law
    refuses it by name (it would otherwise fail inside torch, or silently use another stream)."""
    law = make_law(name, 5, seed, device="cuda")
    g = torch.Generator(device="cuda")
    if not law.device_generator:
        with pytest.raises(ValueError, match="CPU generator only"):
            law.sample(12, g.manual_seed(seed), batch=2)
        return
    w = law.sample(12, g.manual_seed(seed), batch=2)
    assert w.device.type == "cuda" and w.shape == (2, 12, 5) and bool(torch.isfinite(w).all())
    assert torch.equal(w, law.sample(12, g.manual_seed(seed), batch=2))
    with pytest.raises(ValueError, match="must be on the device"):
        make_law(name, 5, seed).sample(12, g.manual_seed(seed))


def test_device_generators_are_declared_only_by_laws_that_draw_through_the_generators_device():
    """The laws that accept a generator off the CPU; every other law refuses one (tested where CUDA is)."""
    assert sorted(n for n in LAWS if make_law(n, 3, 0).device_generator) == [
        "gaussian", "geometric", "mixture", "orthogonal", "poisson"
    ]


def test_dtype_and_device_follow_module_to():
    """A law moved with .to() samples in its new dtype (the dtype lives in a buffer, not a plain attribute)."""
    from kerneltheory.spectral import Gaussian, Orthogonal

    gen = torch.Generator().manual_seed(0)
    for law in (Gaussian(3), Orthogonal(3)):
        law.to(torch.float32)
        assert law.dtype == torch.float32 and law.device == torch.device("cpu")
        assert law.sample(4, gen, batch=2).dtype == torch.float32


@pytest.mark.parametrize("d, m, std, scaling",
                         [(4, 6, 1.0, "chi"), (3, 3, 0.7, "chi"), (4, 2, 1.0, "chi"), (5, 12, 1.3, "fixed")])
def test_orthogonal_sample_is_bitwise_the_construction(d, m, std, scaling, kt_seed):
    """The sampler equals, bit for bit, the construction of its docstring written out plainly from the same stream:
    Q of G = QR, Q·diag(sign R_jj), rows times std·χ_d norms (or √d), blocks stacked, first m rows kept."""
    w = Orthogonal(d, std=std, scaling=scaling).sample(m, torch.Generator().manual_seed(kt_seed), batch=3)
    gen = torch.Generator().manual_seed(kt_seed)
    blocks = -(-m // d)
    q, rr = torch.linalg.qr(standard_normal((3, blocks, d, d), gen))
    q = q * torch.where(torch.diagonal(rr, dim1=-2, dim2=-1) >= 0, 1.0, -1.0).to(F64).unsqueeze(-2)
    if scaling == "chi":
        norms = torch.linalg.vector_norm(standard_normal((3, blocks, d, d), gen), dim=-1)
    else:
        norms = torch.full((3, blocks, d), math.sqrt(d), dtype=F64)
    want = (q * (std * norms).unsqueeze(-1)).reshape(3, blocks * d, d)[:, :m]
    assert torch.equal(w, want) and w.stride() == want.stride()  # the layout too: products that use W see the same


@pytest.mark.parametrize("std", [1.0, 0.5])
def test_isotropic_gaussian_sample_is_bitwise_the_scaled_stream(std, kt_seed):
    w = Gaussian(4, std=std).sample(5, torch.Generator().manual_seed(kt_seed), batch=2)
    eps = standard_normal((2, 5, 4), torch.Generator().manual_seed(kt_seed))
    assert torch.equal(w, eps * std)
