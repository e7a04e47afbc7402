"""The estimator registry: names, aliases, claims, targets derived from the laws, and the foundation's
'done when' guarantees (every estimator draws for d = 16, m = 64 in both dtypes, finite features for norms up
to 10, strictly positive where positivity is claimed)."""

import math

import pytest
import torch

import kerneltheory.estimators as E
from kerneltheory import kernels
from kerneltheory.features.base import FeatureMap, IncompatibleLaw
from kerneltheory.spectral.base import ClosedFormUnavailable
from kerneltheory.testing.checks import ROUNDING_ULPS

NAMES = E.list()
D, M = 16, 64


def test_registry_size_and_required_entries():
    assert len(NAMES) >= 50
    assert len(set(NAMES)) == len(NAMES)
    for comp in ("trig", "positive", "oprf", "saderf", "gerf"):
        for law in E.GRID_LAWS:
            assert f"{comp}/{law}" in NAMES
    for name in ("poisrf/poisson", "geomrf/geometric", "elu", "feedforward", "hedgehog", "relu/gaussian"):
        assert name in NAMES


@pytest.mark.parametrize(
    "alias, name",
    [
        ("GMM-RKS", "trig/mixture"),
        ("GMM-PRF", "positive/mixture"),
        ("FastFood-RKS", "trig/fastfood_learnable"),
        ("FastFood-PRF", "positive/fastfood_learnable"),
        ("Generative-RKS", "trig/generative"),
        ("Generative-PRF", "positive/generative"),
        ("gmm-prf", "positive/mixture"),
        ("PoisRF", "poisrf/poisson"),
    ],
)
def test_paper_aliases(alias, name):
    est = E.get(alias, 4, 8)
    assert est.name == name
    assert E.resolve(alias) == name


def _inputs(gen, dtype):
    """Directions at norms 0 … 10, coordinate axes ±e_i at norm 10, a collinear and an anti-collinear pair."""
    u = torch.randn(6, D, generator=gen, dtype=torch.float64)
    u = u / u.norm(dim=-1, keepdim=True)
    norms = torch.tensor([0.0, 1e-3, 1.0, 3.0, 7.0, 10.0], dtype=torch.float64)[:, None]
    axes = 10.0 * torch.cat([torch.eye(D, dtype=torch.float64)[:2], -torch.eye(D, dtype=torch.float64)[:2]])
    x = torch.cat([u * norms, axes, 10 * u[:1], -10 * u[:1]])
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_every_estimator_draws_finite_features(name, dtype, kt_generator):
    est = E.get(name, D, M, dtype=dtype)
    fm = est.draw(kt_generator)
    assert isinstance(fm, FeatureMap)
    x = _inputs(kt_generator, dtype)
    fx, fy = fm.pair(x, x.flip(0))
    assert fx.shape == (x.shape[0], est.feature_dim) == fy.shape
    assert fx.dtype == dtype and fy.dtype == dtype
    assert bool(torch.isfinite(fx).all()) and bool(torch.isfinite(fy).all()), f"{name}: non-finite features"
    if est.claims.positive:
        # Positive in exact arithmetic, checked where it is carried: in log space every feature has sign +1
        # and a finite log; its value is > 0 unless log φ lies below the dtype's smallest normal number
        # (float32 exp underflows there; see Claims.notes["positive"]).
        bound = fm.bind(x, x.flip(0))
        floor = torch.log(torch.tensor(torch.finfo(dtype).tiny, dtype=torch.float64))
        for feats, (logs, signs) in ((fx, bound.log_query(x)), (fy, bound.log_key(x.flip(0)))):
            assert bool((signs > 0).all()) and bool(torch.isfinite(logs).all()), f"{name} claims positivity"
            assert bool(((feats > 0) | (logs.to(torch.float64) < floor)).all()), (
                f"{name}: zero feature above underflow"
            )
        if dtype == torch.float64:
            assert bool((fx > 0).all()) and bool((fy > 0).all()), f"{name} claims positivity"


@pytest.mark.parametrize("name", NAMES)
def test_every_estimator_has_claims_with_proofs(name):
    est = E.get(name, 8, 16)
    c = est.claims
    assert c.unbiased in ("exact", "asymptotic", "no")
    for claim in c.asserted():
        assert claim in c.proofs, f"{name}: claim {claim!r} names no proof"
        assert c.proofs[claim].startswith("proofs/") and c.proofs[claim].endswith(".md")
    row = est.describe()
    assert row["estimator"] == name and row["target"]


@pytest.mark.parametrize("name", [n for n in NAMES if E.get(n, 4, 8).has_closed_form])
def test_kernel_and_batched_draws_shapes(name, kt_generator):
    est = E.get(name, 4, 8)
    x = torch.randn(3, 4, generator=kt_generator, dtype=torch.float64) / 2
    y = torch.randn(5, 4, generator=kt_generator, dtype=torch.float64) / 2
    k = est.kernel(x, y)
    assert k.shape == (3, 5) and bool(torch.isfinite(k).all())
    est_pairs = est.sample_estimates(x, y[:3], kt_generator, draws=7)
    assert est_pairs.shape == (7, 3)
    torch.testing.assert_close(
        est.kernel_pairs(x, y[:3]), torch.diagonal(est.kernel(x, y[:3])), rtol=1e-12, atol=0
    )


@pytest.mark.parametrize("name", NAMES)
def test_sample_estimates_is_one_draw_at_a_time_whatever_the_chunking(name, kt_generator):
    """The engine's batched, chunked path gives, draw by draw, the estimate of the drawn map φ(x_p)ᵀφ(y_p)."""
    est = E.get(name, 4, 8)
    x = torch.randn(5, 4, generator=kt_generator, dtype=torch.float64) / 2
    y = torch.randn(5, 4, generator=kt_generator, dtype=torch.float64) / 2
    seed = int(torch.randint(0, 2**31, (1,), generator=kt_generator))
    fm = est.draw(torch.Generator().manual_seed(seed), batch=6)  # the same stream sample_estimates draws
    fx, fy = fm.pair(x, y)
    reference = (fx * fy).sum(-1).expand(6, 5)
    # up to the rounding of the sum in another order: ROUNDING_ULPS·ε·Σ|terms| per entry (a fixed rtol of 1e-12 failed
    # a trig_phase estimate near 0 whose terms were of size 0.1, at a random seed: 4.4e-16 absolute)
    floor = ROUNDING_ULPS * torch.finfo(torch.float64).eps * (fx * fy).abs().sum(-1).expand(6, 5).detach()
    if est.component.name == "relu":  # relu(u)/√m is 1-Lipschitz in u = ωᵀx, and a projection that cancels to near 0
        # is computed to γ_d·Σ_j|ω_j x_j| in any order (γ_d = dε/(1 − dε)), far above ε·|φ|: |δφ_i| ≤ γ_d(|W||x|)_i/√m,
        # so the products' sum moves by at most Σ_i |δφ_i||ψ_i| + |φ_i||δψ_i| + |δφ_i||δψ_i| (chunks of one pair
        # failed the floor above at 110 of 3000 seeds, by up to 6×)
        eps, d, m = torch.finfo(torch.float64).eps, x.shape[-1], est.num_features
        gamma = d * eps / (1 - d * eps)
        dx, dy = (gamma * (t.abs() @ fm.w.abs().transpose(-1, -2)) / m**0.5 for t in (x, y))  # [6, 5, m]
        floor = floor + (dx * fy.abs() + fx.abs() * dy + dx * dy).sum(-1).detach()
    with torch.no_grad():
        for chunk_bytes in (1, 3 * 8 * max(est.feature_dim, est.num_features), 2**19):  # 1 draw × 1 pair, 3 pairs, all
            got = est.sample_estimates(x, y, torch.Generator().manual_seed(seed), 6, chunk_bytes=chunk_bytes)
            assert bool(((got - reference.detach()).abs() <= floor).all()), (got - reference).abs().max()


def test_sample_estimates_keeps_gradients_to_learnable_laws(kt_generator):
    est = E.get("positive/mixture", 4, 8)
    x = torch.randn(3, 4, generator=kt_generator, dtype=torch.float64) / 2
    out = est.sample_estimates(x, x, kt_generator, 5, chunk_bytes=1)  # 5 × 3 chunks, concatenated
    params = [p for p in est.law.parameters() if p.requires_grad]
    assert params and out.requires_grad
    grads = [g for g in torch.autograd.grad(out.sum(), params, allow_unused=True) if g is not None]  # the
    # mixture weights pick components discretely, so only the means and scales receive a gradient
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads) and any(bool((g != 0).any()) for g in grads)


DATA_DEPENDENT = [n for n in NAMES if E.get(n, 4, 8).component.data_dependent]


@pytest.mark.parametrize("name", DATA_DEPENDENT)
def test_segments_fit_each_stretch_as_its_own_sequence(name, kt_generator):
    """With ``segments`` a data-dependent map is fitted to each stretch of pairs alone: the estimates are, draw by
    draw, those of separate calls on each stretch from the same generator state (one W, each stretch's own A*, Ψ*),
    to the rounding of the per-pair broadcast, whatever the chunking; and they differ from one fit to all pairs
    (the stretches have different norms, so different statistics)."""
    est = E.get(name, 4, 8)
    x = torch.randn(12, 4, generator=kt_generator, dtype=torch.float64) / 2
    y = torch.randn(12, 4, generator=kt_generator, dtype=torch.float64) / 2
    x[3:7] *= 3  # the second stretch has other statistics
    y[7:] /= 3
    segments, seed = [3, 4, 5], int(torch.randint(0, 2**31, (1,), generator=kt_generator))
    parts, start = [], 0
    for n in segments:
        parts.append(est.sample_estimates(x[start : start + n], y[start : start + n],
                                          torch.Generator().manual_seed(seed), 6))
        start += n
    alone = torch.cat(parts, 1)
    fitted = est.fit_statistics(x, y, segments)
    assert len(fitted) == 3
    for chunk_bytes in (1, 2**19):
        for statistics in (None, fitted):
            got = est.sample_estimates(x, y, torch.Generator().manual_seed(seed), 6, chunk_bytes=chunk_bytes,
                                       segments=segments, statistics=statistics)
            torch.testing.assert_close(got, alone, rtol=64 * torch.finfo(torch.float64).eps, atol=0)
    together = est.sample_estimates(x, y, torch.Generator().manual_seed(seed), 6)
    assert not torch.allclose(together, alone, rtol=1e-6, atol=0)


def test_segments_are_ignored_by_maps_that_are_not_data_dependent_and_checked(kt_generator):
    est = E.get("positive/gaussian", 4, 8)
    x = torch.randn(5, 4, generator=kt_generator, dtype=torch.float64) / 2
    one = est.sample_estimates(x, x.flip(0), torch.Generator().manual_seed(3), 4)
    assert torch.equal(one, est.sample_estimates(x, x.flip(0), torch.Generator().manual_seed(3), 4, segments=[2, 3]))
    oprf = E.get("oprf/gaussian", 4, 8)
    for bad, kind, match in (([2, 2], ValueError, "sum to the number of pairs P = 5"),
                             ([5, 0], ValueError, r"segments\[1\] must be >= 1"),
                             ([2.0, 3], TypeError, r"segments\[0\]"), ("23", TypeError, "sequence of pair counts"),
                             (torch.tensor([2, 3]), TypeError, "sequence of pair counts")):
        for e in (est, oprf):
            with pytest.raises(kind, match=match):
                e.sample_estimates(x, x, kt_generator, 2, segments=bad)
    with pytest.raises(ValueError, match="one fit per stretch"):
        oprf.sample_estimates(x, x, kt_generator, 2, segments=[2, 3], statistics=oprf.fit_statistics(x, x))


def test_sample_estimates_refuses_bad_chunk_bytes(kt_generator):
    est = E.get("trig/gaussian", 4, 8)
    x = torch.zeros(2, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="chunk_bytes"):
        est.sample_estimates(x, x, kt_generator, 3, chunk_bytes=0)


@pytest.mark.parametrize(
    "name, exact",
    [
        ("trig/gaussian", kernels.softmax),
        ("positive/gaussian", kernels.softmax),
        ("positive/orthogonal", kernels.softmax),
        ("hyperbolic/gaussian", kernels.softmax),
        ("oprf/gaussian", kernels.softmax),
        ("saderf/fastfood", kernels.softmax),
        ("gerf/qmc", kernels.softmax),
        ("trig_phase/gaussian", kernels.gaussian),
        ("relu/gaussian", kernels.arccos1),
    ],
)
def test_targets_derived_from_laws_match_exact_kernels(name, exact, kt_generator):
    est = E.get(name, 4, 8)
    x = torch.randn(3, 4, generator=kt_generator, dtype=torch.float64) / 2
    y = torch.randn(5, 4, generator=kt_generator, dtype=torch.float64) / 2
    torch.testing.assert_close(est.kernel(x, y), exact(x, y), rtol=1e-12, atol=1e-15)


def test_trig_unweighted_targets_gaussian_kernel_with_bandwidth(kt_generator):
    sigma = 0.5
    est = E.get("trig/gaussian", 3, 8, std=1 / sigma, weighted=False)
    x = torch.randn(4, 3, generator=kt_generator, dtype=torch.float64)
    torch.testing.assert_close(est.kernel(x, x), kernels.gaussian(x, x, sigma=sigma), rtol=1e-12, atol=1e-15)


def test_claims_follow_the_laws():
    assert E.get("positive/orthogonal", 8, 16).claims.unbiased == "exact"
    assert E.get("positive/fastfood", 8, 16).claims.unbiased == "exact"
    assert E.get("trig/sorf", 8, 16).claims.unbiased == "no"
    assert E.get("trig/moment_matched", 8, 16).claims.unbiased == "asymptotic"
    assert E.get("positive/gauss_hermite", 8, 16).claims.unbiased == "no"
    assert E.get("positive/gaussian", 8, 16).claims.positive
    assert not E.get("trig/gaussian", 8, 16).claims.positive
    assert E.get("positive/gaussian", 8, 16).claims.variance
    # ORF with χ_d norms has the exact variance of proofs/orthogonal_variance.md; with fixed norms it has none
    orf = E.get("positive/orthogonal", 8, 16)
    assert orf.claims.variance and orf.claims.proofs["variance"] == "proofs/orthogonal_variance.md"
    assert not E.get("hyperbolic/orthogonal", 8, 16).claims.variance


def test_laws_without_closed_form_use_a_monte_carlo_reference(kt_generator):
    est = E.get("positive/generative", 3, 8)
    x = torch.randn(4, 3, generator=kt_generator, dtype=torch.float64) / 3
    with pytest.raises(ClosedFormUnavailable, match="reference_kernel"):
        est.kernel(x, x)
    mean, se = est.reference_kernel(x, x, draws=512)
    assert mean.shape == (4,) and bool((se > 0).all()) and bool(torch.isfinite(mean).all())


def test_variance_matches_theory_for_positive_gaussian(kt_generator):
    from kerneltheory import theory

    est = E.get("positive/gaussian", 3, 32)
    x = torch.randn(4, 3, generator=kt_generator, dtype=torch.float64) / 2
    y = torch.randn(4, 3, generator=kt_generator, dtype=torch.float64) / 2
    torch.testing.assert_close(
        est.variance_pairs(x, y), theory.softmax_positive_variance(x, y, 32), rtol=1e-12, atol=0
    )


@pytest.mark.parametrize(
    "name, match",
    [
        ("gerf/mixture", "gerf"),
        ("poisrf/gaussian", "poisrf"),
        ("relu/mixture", "relu"),
        ("trig/nonexistent", "unknown law"),
        ("banana/gaussian", "unknown component"),
        ("positive", "needs a law"),
        ("elu/gaussian", "takes no frequency law"),
    ],
)
def test_meaningless_pairs_are_refused(name, match):
    with pytest.raises((IncompatibleLaw, ValueError), match=match):
        E.get(name, 4, 8)


def test_the_registry_builds_gerf_as_the_member_no_other_entry_covers():
    est = E.get("gerf/gaussian", 3, 8)  # GERF(A = 0, s = +1) would be positive/gaussian again
    assert (est.component.a, est.component.s) == (E.REGISTRY_PARAMETERS["gerf"]["a"], -1)
    assert est.component.a != 0 and not est.claims.positive and est.feature_dim == 16
    mine = E.get("gerf/gaussian", 3, 8, a=0.0, s=1)  # arguments given override the registry's
    assert (mine.component.a, mine.component.s) == (0.0, 1) and mine.feature_dim == 8
    oprf = E.get("oprf/gaussian", 3, 8)  # the subclasses keep their own parameters
    assert oprf.component.s == 1


def test_unknown_name_and_kwargs():
    with pytest.raises(ValueError, match="unknown estimator"):
        E.resolve("nope")
    with pytest.raises(TypeError, match="bandwidth"):
        E.get("trig/gaussian", 4, 8, bandwidth=2.0)
    with pytest.raises(ValueError, match="num_features"):
        E.get("trig/gaussian", 4, 0)
    with pytest.raises(ValueError, match="dim"):
        E.get("trig/gaussian", 0, 4)


def test_dimension_mismatch_is_refused(kt_generator):
    est = E.get("positive/gaussian", 4, 8)
    fm = est.draw(kt_generator)
    with pytest.raises(ValueError, match="last dimension d = 4"):
        fm(torch.zeros(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN"):
        fm(torch.full((2, 4), math.inf, dtype=torch.float64))


def test_data_dependent_map_needs_binding(kt_generator):
    fm = E.get("oprf/gaussian", 4, 8).draw(kt_generator)
    with pytest.raises(ValueError, match="bind"):
        fm.query(torch.zeros(2, 4, dtype=torch.float64))
