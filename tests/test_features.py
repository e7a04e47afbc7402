"""Component functions: shapes, targets derived from the laws, special cases, data-dependent parameters,
exact DIRF expectations, positivity and finiteness (hypothesis), log-space consistency, validation, gradients.

Every random draw comes from a seeded generator (``kt_generator``: a fixed seed per test, derived from its
node id; hypothesis draws its own seeds). No assertion here is statistical: each holds for every seed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kerneltheory import theory
from kerneltheory.features import (
    COMPONENTS,
    GERF,
    OPRF,
    SADERF,
    Component,
    EluPlusOne,
    FeatureMap,
    Feedforward,
    GeomRF,
    Hedgehog,
    Hyperbolic,
    IncompatibleLaw,
    PoisRF,
    Positive,
    ReLU,
    Trig,
    TrigPhase,
    arccos1,
    draw_feature_map,
)
from kerneltheory.spectral.discrete import GeometricLaw, PoissonLaw
from kerneltheory.spectral.gaussian import Gaussian
from kerneltheory.spectral.generative import Generative
from kerneltheory.spectral.mixture import GaussianMixture
from kerneltheory.spectral.orthogonal import Orthogonal

D, M = 4, 8
F64 = torch.float64


def _law(kind: str, d: int = D):
    return {
        "gaussian": Gaussian(d),
        "poisson": PoissonLaw(d, rate=1.5),
        "geometric": GeometricLaw(d, p=0.4),
        None: None,
    }[kind]


def _cases(d: int = D):
    """(id, component factory, law kind): every component, the GERF family in several settings."""
    return [
        ("trig", lambda: Trig(), "gaussian"),
        ("trig_phase", lambda: TrigPhase(), "gaussian"),
        ("positive", lambda: Positive(), "gaussian"),
        ("hyperbolic", lambda: Hyperbolic(), "gaussian"),
        ("gerf+", lambda: GERF(a=-0.2), "gaussian"),
        ("gerf-", lambda: GERF(a=0.05, s=-1), "gaussian"),
        ("gerf_k1", lambda: GERF(a=0.1, target="gaussian"), "gaussian"),
        ("oprf", lambda: OPRF(), "gaussian"),
        ("saderf", lambda: SADERF(), "gaussian"),
        ("poisrf", lambda: PoisRF(), "poisson"),
        ("geomrf", lambda: GeomRF(), "geometric"),
        ("relu", lambda: ReLU(), "gaussian"),
        ("elu", lambda: EluPlusOne(d), None),
        ("feedforward", lambda: Feedforward(d, seed=0), None),
        ("feedforward_glu", lambda: Feedforward(d, glu=True, seed=1), None),
        ("hedgehog", lambda: Hedgehog(d), None),
        ("hedgehog_norm", lambda: Hedgehog(d, normalize=True), None),
    ]


CASES = _cases()
IDS = [c[0] for c in CASES]
POSITIVE_IDS = [
    "positive",
    "hyperbolic",
    "gerf+",
    "gerf_k1",
    "oprf",
    "saderf",
    "elu",
    "feedforward",
    "feedforward_glu",
    "hedgehog",
    "hedgehog_norm",
]


def _build(case_id: str, d: int = D):
    _, factory, kind = next(c for c in _cases(d) if c[0] == case_id)
    comp, law = factory(), _law(kind, d)
    comp.check_law(law)
    return comp, law


def _draw(comp, law, gen, batch=None, d=D, m=M, dtype=F64):
    return draw_feature_map(comp, law, m, gen, batch, dim=d, dtype=dtype, device="cpu")


def _pair(fm: FeatureMap, x, y):
    return fm.pair(x, y)


# -- shapes, dtypes, batch dimensions ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("case_id", IDS)
def test_shapes_dtypes_and_batch_dims(case_id, dtype, kt_generator):
    comp, law = _build(case_id)
    big_d = comp.feature_dim(M)
    x = torch.randn(5, D, generator=kt_generator, dtype=F64).to(dtype) / 2
    y = torch.randn(3, D, generator=kt_generator, dtype=F64).to(dtype) / 2
    fx, fy = _pair(_draw(comp, law, kt_generator, dtype=dtype), x, y)
    assert fx.shape == (5, big_d) and fy.shape == (3, big_d) and fx.dtype == dtype == fy.dtype
    # W [R, m, d] against x [n, d]
    fx, fy = _pair(_draw(comp, law, kt_generator, batch=6, dtype=dtype), x, y)
    lead = (6,) if law is not None else ()
    assert fx.shape == (*lead, 5, big_d) and fy.shape == (*lead, 3, big_d)
    # W [H, m, d] against x [B, H, n, d]
    xb = torch.randn(2, 3, 5, D, generator=kt_generator, dtype=F64).to(dtype) / 2
    fm = _draw(comp, law, kt_generator, batch=3, dtype=dtype)
    fx, fy = _pair(fm, xb, xb[..., :4, :])
    assert fx.shape == (2, 3, 5, big_d) and fy.shape == (2, 3, 4, big_d) and fx.dtype == dtype
    # each head uses its own W: head h of the batched map equals the map drawn with W[h]
    if law is not None:
        single = FeatureMap(comp, fm.w[1], {k: v[1] for k, v in fm.extra.items()}, dim=D, num_features=M)
        one_x, _ = _pair(single, xb[:, 1], xb[:, 1, :4])
        torch.testing.assert_close(fx[:, 1], one_x, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=0)


def test_registry_names_every_component():
    assert set(COMPONENTS) == {
        "trig",
        "trig_phase",
        "positive",
        "hyperbolic",
        "gerf",
        "oprf",
        "saderf",
        "poisrf",
        "geomrf",
        "relu",
        "elu",
        "feedforward",
        "hedgehog",
        "sderf",
        "aderf",
        "hrf",
        "based",
        "rebased",
        "tensorsketch",
        "polysketch",
    }
    for name, cls in COMPONENTS.items():
        assert issubclass(cls, Component) and cls.name == name


def test_trig_phase_draws_uniform_phases_from_the_generator():
    comp = TrigPhase()
    a = comp.draw_extra(64, torch.Generator().manual_seed(3), 5, torch.float32, "cpu")["phase"]
    b = comp.draw_extra(64, torch.Generator().manual_seed(3), 5, torch.float32, "cpu")["phase"]
    assert a.shape == (5, 64) and a.dtype == torch.float32 and torch.equal(a, b)
    assert bool((a >= 0).all()) and bool((a <= 2 * math.pi).all())
    assert comp.draw_extra(7, torch.Generator().manual_seed(3), None, F64, None)["phase"].shape == (7,)


# -- targets derived from the laws equal the closed-form kernels ------------------------------------


def _sm(x, y):
    return torch.exp(x @ y.T)


def _k(x, y, std=1.0):
    return torch.exp(-0.5 * std**2 * ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))


def _arccos_reference(x, y, std=1.0):
    """(std²/2π)‖x‖‖y‖(sin θ + (π − θ) cos θ), written out in numpy, 0 when x or y is 0."""
    x, y = x.numpy(), y.numpy()
    out = np.zeros((len(x), len(y)))
    for i, xi in enumerate(x):
        for j, yj in enumerate(y):
            nx, ny = np.linalg.norm(xi), np.linalg.norm(yj)
            if nx == 0 or ny == 0:
                continue
            theta = math.acos(min(1.0, max(-1.0, float(xi @ yj) / (nx * ny))))
            j1 = math.sin(theta) + (math.pi - theta) * math.cos(theta)
            out[i, j] = std**2 * nx * ny * j1 / (2 * math.pi)
    return torch.from_numpy(out)


@pytest.mark.parametrize(
    "comp, exact",
    [
        (Trig(), _sm),
        (Trig(weighted=False), _k),
        (TrigPhase(), _k),
        (Positive(), _sm),
        (Positive(h="gaussian"), _k),
        (Hyperbolic(), _sm),
        (Hyperbolic(h="gaussian"), _k),
        *[
            (GERF(a=a, s=s, target=t), _sm if t == "softmax" else _k)
            for a in (-0.7, 0.0, 0.1)
            for s in (1, -1)
            for t in ("softmax", "gaussian")
        ],
        (OPRF(), _sm),
        (SADERF(), _sm),
    ],
    ids=lambda v: getattr(v, "name", "") + (f"(a={v.a},s={v.s},{v.kernel})" if isinstance(v, GERF) else ""),
)
def test_targets_from_the_gaussian_law(comp, exact, kt_generator):
    x = torch.randn(4, D, generator=kt_generator, dtype=F64) / 2
    y = torch.randn(5, D, generator=kt_generator, dtype=F64) / 2
    law = Gaussian(D)
    comp.check_law(law)
    got = comp.target(law, x, y, comp.statistics(x, y))
    torch.testing.assert_close(got, exact(x, y), rtol=1e-12, atol=0)


def test_trig_phase_target_follows_the_bandwidth(kt_generator):
    x = torch.randn(4, D, generator=kt_generator, dtype=F64)
    got = TrigPhase().target(Gaussian(D, std=2.0), x, x, {})
    torch.testing.assert_close(got, _k(x, x, 2.0), rtol=1e-12, atol=0)


@pytest.mark.parametrize("std", [1.0, 2.0])
def test_relu_target_is_the_scaled_arccos_kernel(std, kt_generator):
    x = torch.randn(5, D, generator=kt_generator, dtype=F64)
    x[0] = 0.0
    x[1] = 3.0 * x[2]  # collinear (θ = 0)
    x[3] = -0.5 * x[4]  # anti-collinear (θ = π)
    law = Gaussian(D, std=std)
    ReLU().check_law(law)
    got = ReLU().target(law, x, x, {})
    torch.testing.assert_close(got, _arccos_reference(x, x, std), rtol=1e-10, atol=1e-14)
    assert bool((got[0] == 0).all()) and bool((got[:, 0] == 0).all())
    torch.testing.assert_close(arccos1(x, x), _arccos_reference(x, x), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("case_id", ["elu", "feedforward", "feedforward_glu", "hedgehog", "hedgehog_norm"])
def test_deterministic_targets_are_their_own_gram(case_id, kt_generator):
    comp, _ = _build(case_id)
    x = torch.randn(4, D, generator=kt_generator, dtype=F64)
    fm = _draw(comp, None, kt_generator)
    torch.testing.assert_close(comp.target(None, x, x, {}), fm(x) @ fm(x).T, rtol=1e-14, atol=0)


def test_hedgehog_at_initialisation():
    x = torch.tensor([[0.3, -1.2, 0.0, 2.0]], dtype=F64)
    y = torch.tensor([[-0.1, 0.4, 1.0, -2.5]], dtype=F64)
    comp = Hedgehog(D)
    torch.testing.assert_close(comp.target(None, x, y, {}), 2 * torch.cosh(x + y).sum(-1, keepdim=True))
    torch.testing.assert_close(comp.features(x, None, {}, {}, "query"), torch.cat([x.exp(), (-x).exp()], -1))
    halves = Hedgehog(D, normalize=True).features(x, None, {}, {}, "query")
    torch.testing.assert_close(halves[:, :D].sum(-1), torch.ones(1, dtype=F64))
    torch.testing.assert_close(halves[:, D:].sum(-1), torch.ones(1, dtype=F64))


# -- GERF special cases ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, h, weighted", [("softmax", "softmax", True), ("gaussian", "gaussian", False)]
)
def test_gerf_at_a_zero_reduces_to_positive_and_trig(target, h, weighted, kt_generator):
    x = torch.randn(2, 3, 5, D, generator=kt_generator, dtype=F64)
    w = Gaussian(D).sample(M, kt_generator, batch=3)
    plus = GERF(a=0.0, s=1, target=target).features(x, w, {}, {}, "query")
    torch.testing.assert_close(plus, Positive(h=h).features(x, w, {}, {}, "query"), rtol=1e-13, atol=0)
    minus = GERF(a=0.0, s=-1, target=target).features(x, w, {}, {}, "key")
    trig = Trig(weighted=weighted).features(x, w, {}, {}, "key")
    torch.testing.assert_close(minus, trig, rtol=1e-13, atol=1e-300)


def test_gerf_positive_is_an_instance_property():
    assert GERF(s=1).positive and not GERF(s=-1).positive and OPRF().positive and SADERF().positive
    assert GERF(s=1).feature_dim(M) == M and GERF(s=-1).feature_dim(M) == 2 * M


# -- OPRF and SADERF statistics -------------------------------------------------------------------


def _mean_log_second_moment(a: float, x: np.ndarray, y: np.ndarray) -> float:
    """Mean over all pairs of log E[(f₁f₂)²] for GERF(A, +1), softmax (MATH.md §4), written out."""
    d = x.shape[-1]
    z2 = ((x[:, None, :] + y[None, :, :]) ** 2).sum(-1)
    c = -0.5
    norms = (x**2).sum(-1)[:, None] + (y**2).sum(-1)[None, :]
    logs = (
        d * math.log(1 - 4 * a)
        - 0.5 * d * math.log(1 - 8 * a)
        + 2 * c * norms
        + 2 * (1 - 4 * a) / (1 - 8 * a) * z2
    )
    return float(logs.mean())


def test_oprf_a_star_minimises_the_mean_log_second_moment(kt_generator):
    scale = torch.tensor([0.2, 0.7, 1.5], dtype=F64)[:, None, None]
    x = torch.randn(2, 3, 6, D, generator=kt_generator, dtype=F64) * scale
    y = torch.randn(2, 3, 5, D, generator=kt_generator, dtype=F64) * 0.8 + 0.3
    a_star = OPRF().statistics(x, y)["a"]
    assert a_star.shape == (2, 3, 1, 1) and bool((a_star <= 0).all())
    for b in range(2):
        for h in range(3):
            xs, ys = x[b, h].numpy(), y[b, h].numpy()
            res = scipy.optimize.minimize_scalar(
                lambda a, xs=xs, ys=ys: _mean_log_second_moment(a, xs, ys),
                bounds=(-20.0, 0.125 - 1e-9),
                method="bounded",
                options={"xatol": 1e-12},
            )
            assert abs(res.x - a_star[b, h, 0, 0].item()) < 1e-6


def test_oprf_zero_sequences_give_a_zero():
    z = torch.zeros(3, D, dtype=F64)
    assert OPRF().statistics(z, z)["a"].item() == 0.0


def _saderf_objective(log_psi: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    psi = np.exp(log_psi)
    return float((((x * psi)[:, None, :] + (y / psi)[None, :, :]) ** 2).sum(-1).mean())


def test_saderf_scales_keep_x_dot_y_and_minimise_the_objective(kt_generator):
    x = torch.randn(7, D, generator=kt_generator, dtype=F64) * torch.tensor([0.1, 1.0, 3.0, 0.5], dtype=F64)
    y = torch.randn(6, D, generator=kt_generator, dtype=F64) * torch.tensor([2.0, 0.3, 1.0, 0.5], dtype=F64)
    comp = SADERF()
    stats = comp.statistics(x, y)
    qx, ky = comp._transform(x, stats, "query"), comp._transform(y, stats, "key")
    torch.testing.assert_close(qx @ ky.T, x @ y.T, rtol=1e-12, atol=1e-14)
    psi = stats["scale_query"][0].numpy()
    torch.testing.assert_close(stats["scale_key"], 1 / stats["scale_query"], rtol=1e-15, atol=0)
    xs, ys = x.numpy(), y.numpy()
    best = _saderf_objective(np.log(psi), xs, ys)
    res = scipy.optimize.minimize(
        _saderf_objective, np.zeros(D), args=(xs, ys), method="BFGS", options={"gtol": 1e-12}
    )
    assert best <= res.fun * (1 + 1e-12)
    np.testing.assert_allclose(np.exp(res.x), psi, rtol=1e-5)
    # and A* is OPRF's A* of the transformed sequences
    torch.testing.assert_close(stats["a"], OPRF().statistics(qx, ky)["a"], rtol=1e-12, atol=1e-15)


def test_saderf_zero_columns_drop_the_coordinate(kt_generator):
    x = torch.randn(5, D, generator=kt_generator, dtype=F64)
    y = torch.randn(4, D, generator=kt_generator, dtype=F64)
    x[:, 1] = 0.0  # ψ_1 = ∞ in the limit
    y[:, 2] = 0.0  # ψ_2 = 0 in the limit
    comp, law = SADERF(), Gaussian(D)
    stats = comp.statistics(x, y)
    for key in ("scale_query", "scale_key"):
        assert bool(torch.isfinite(stats[key]).all()) and stats[key][0, 1] == 0 and stats[key][0, 2] == 0
    assert bool(torch.isfinite(stats["a"]).all())
    qx, ky = comp._transform(x, stats, "query"), comp._transform(y, stats, "key")
    torch.testing.assert_close(qx @ ky.T, x @ y.T, rtol=1e-12, atol=1e-14)
    # the limit value attains the infimum of the objective
    psi = stats["scale_query"][0].clone()
    psi[1], psi[2] = 1e8, 1e-8
    limit = _saderf_objective(np.zeros(D), qx.numpy(), ky.numpy())
    assert abs(_saderf_objective(np.log(psi.numpy()), x.numpy(), y.numpy()) - limit) < 1e-10 * (1 + limit)
    torch.testing.assert_close(comp.target(law, x, y, stats), _sm(x, y), rtol=1e-12, atol=0)
    fm = _draw(comp, law, kt_generator)
    fx, fy = fm.pair(x, y)
    assert bool(torch.isfinite(fx).all()) and bool(torch.isfinite(fy).all()) and bool((fx > 0).all())
    # all-zero sequences: every coordinate dropped, A* = 0, the estimate is exactly SM(0, y) = 1
    z = torch.zeros(3, D, dtype=F64)
    fx, fy = fm.pair(z, y)
    assert fm.bind(z, y).stats["a"].item() == 0.0
    torch.testing.assert_close(fx @ fy.T, torch.ones(3, 4, dtype=F64), rtol=1e-12, atol=0)


# -- DIRF: exact expectation by enumerating ω --------------------------------------------------------


def _truncation(t_max: float, tol: float) -> int:
    """Smallest K with Σ_{k>K} t^k/k! ≤ t^{K+1}/(K+1)! / (1 − t/(K+2)) ≤ tol, for |x_l y_l| ≤ t_max."""
    k = 0
    while True:
        if k + 2 > t_max:
            bound = t_max ** (k + 1) / math.factorial(k + 1) / (1 - t_max / (k + 2))
            if bound <= tol:
                return k
        k += 1


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("kind", ["poisson", "geometric"])
def test_dirf_exact_expectation_by_enumeration(kind, d, kt_generator):
    # Enumerating ω over {0..K}^d gives Π_l S_l with S_l the K-term series of e^{x_l y_l}; with |x_l y_l| ≤ 1,
    # |S_l − e^{t_l}| ≤ T and |S_l| ≤ e, so the product is off by ≤ d·e^{d−1}·T ≤ 2e·T: T = 1e-13 gives
    # an error < 1e-12.
    x = 2 * torch.rand(5, d, generator=kt_generator, dtype=F64) - 1
    y = 2 * torch.rand(4, d, generator=kt_generator, dtype=F64) - 1
    x[0, 0], x[1] = 0.0, -x[1]  # 0⁰ = 1 and 0^k = 0; negative coordinates keep their sign
    k_max = _truncation(1.0, 1e-13)
    grid = torch.cartesian_prod(*[torch.arange(k_max + 1, dtype=F64)] * d).reshape(-1, d)
    if kind == "poisson":
        comp, law, pmf = PoisRF(rate=1.7), PoissonLaw(d, rate=1.7), scipy.stats.poisson(1.7).pmf
    else:
        comp, law, pmf = GeomRF(p=0.3), GeometricLaw(d, p=0.3), scipy.stats.geom(0.3, loc=-1).pmf
    comp.check_law(law)
    prob = torch.from_numpy(pmf(grid.numpy()).prod(-1))
    fm = FeatureMap(comp, grid, dim=d, num_features=grid.shape[0])
    fx, fy = fm(x), fm(y)
    exact = (fx * (prob * grid.shape[0])) @ fy.T
    torch.testing.assert_close(exact, _sm(x, y), rtol=0, atol=1e-12)
    torch.testing.assert_close(comp.target(law, x, y, {}), _sm(x, y), rtol=1e-15, atol=0)


def test_dirf_signs_and_zeros():
    w = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 3.0], [0.0, 1.0]], dtype=F64)
    x = torch.tensor([[0.0, 0.0], [-2.0, 0.5], [0.0, -1.0]], dtype=F64)
    got = FeatureMap(GeomRF(p=0.5), w, dim=2, num_features=4)(x)
    # √(ω₁! ω₂! P(ω₁)P(ω₂)) with P(k) = ½·½^k
    norm = [
        math.sqrt(math.factorial(int(a)) * math.factorial(int(b)) * 0.25 * 0.5 ** (a + b))
        for a, b in w.tolist()
    ]
    rows = [
        [xi[0] ** int(a) * xi[1] ** int(b) / n for (a, b), n in zip(w.tolist(), norm, strict=True)]
        for xi in x.tolist()
    ]
    expect = torch.tensor(rows, dtype=F64) / 2.0  # 1/√m, m = 4
    torch.testing.assert_close(got, expect, rtol=1e-14, atol=0)
    assert got[0, 0] > 0 and got[0, 1] == 0 and got[1, 1] < 0 and got[2, 3] < 0
    with pytest.raises(ValueError, match="nonnegative integers"):
        FeatureMap(GeomRF(p=0.5), w + 0.5, dim=2, num_features=4)(x)


def test_dirf_adopts_the_law_parameter():
    comp = PoisRF()
    with pytest.raises(ValueError, match="rate"):
        comp.features(torch.ones(1, 2, dtype=F64), torch.ones(1, 2, dtype=F64), {}, {}, "query")
    comp.check_law(PoissonLaw(2, rate=2.5))
    assert comp.rate == 2.5
    with pytest.raises(IncompatibleLaw, match="rate"):
        comp.check_law(PoissonLaw(2, rate=1.0))


# -- positivity and finiteness (hypothesis) ---------------------------------------------------------

BOUND = 10.0 / math.sqrt(D)  # every coordinate in [−10/√d, 10/√d]: norms up to 10
POINTS = arrays(np.float64, (6, D), elements=st.floats(-BOUND, BOUND, allow_nan=False, allow_infinity=False))


def _log_tiny(dtype) -> float:
    """log of the smallest positive subnormal of ``dtype``."""
    return math.log(torch.finfo(dtype).tiny) + math.log(torch.finfo(dtype).eps)


@pytest.mark.parametrize("case_id", POSITIVE_IDS)
@settings(max_examples=20, deadline=None)
@given(xs=POINTS, ys=POINTS, seed=st.integers(0, 2**31 - 1))
def test_positive_features_are_strictly_positive(case_id, xs, ys, seed):
    comp, law = _build(case_id)
    fm = _draw(comp, law, torch.Generator().manual_seed(seed))
    x64, y64 = torch.from_numpy(xs), torch.from_numpy(ys)
    bound = fm.bind(x64, y64)
    log64 = torch.cat([bound.log_query(x64)[0], bound.log_key(y64)[0]])
    assert bool(torch.isfinite(log64).all())
    f64 = torch.cat(fm.pair(x64, y64))
    # strictly positive wherever the true value is representable: log φ above the log of the smallest
    # subnormal, with a margin of 1 for the rounding of the exponent (OPRF's A* ≈ −φ̄/(4d) can push a few
    # features of norm-10 inputs below e^{−745}; everywhere else the mask is all True)
    assert bool((f64[log64 > _log_tiny(F64) + 1.0] > 0).all())
    x32, y32 = x64.float(), y64.float()
    b32 = fm.bind(x32, y32)
    log32 = torch.cat([b32.log_query(x32)[0], b32.log_key(y32)[0]])
    assert bool(torch.isfinite(log32).all())
    f32 = torch.cat(fm.pair(x32, y32))
    representable = log64 > _log_tiny(torch.float32) + 1.0
    assert bool((f32[representable] > 0).all())


@pytest.mark.parametrize("case_id", IDS)
@settings(max_examples=15, deadline=None)
@given(xs=POINTS, seed=st.integers(0, 2**31 - 1))
def test_features_are_finite_up_to_norm_ten(case_id, xs, seed):
    comp, law = _build(case_id)
    fm = _draw(comp, law, torch.Generator().manual_seed(seed))
    for dtype in (torch.float32, F64):
        x = torch.from_numpy(xs).to(dtype)
        fx, fy = fm.pair(x, x.flip(0))
        assert bool(torch.isfinite(fx).all()) and bool(torch.isfinite(fy).all())


@pytest.mark.parametrize("case_id", IDS)
def test_log_features_agree_with_features(case_id, kt_generator):
    comp, law = _build(case_id)
    fm = _draw(comp, law, kt_generator, batch=2)
    x = torch.randn(6, D, generator=kt_generator, dtype=F64)
    x[0] = 0.0
    x[1, 0] = 0.0
    bound = fm.bind(x, x.flip(0))
    for log_side, side in ((bound.log_query, bound.query), (bound.log_key, bound.key)):
        logs, sign = log_side(x)
        torch.testing.assert_close(sign * torch.exp(logs), side(x), rtol=1e-12, atol=0)


def test_log_features_stay_finite_where_features_underflow():
    x = torch.full((1, D), -400.0, dtype=F64)
    logs, _ = EluPlusOne(D).log_features(x.float(), None, {}, {}, "query")
    assert bool(torch.isfinite(logs).all()) and bool((logs == -400.0).all())
    # elu(x) + 1 written literally rounds to 0 in float32 from x ≈ −17; the piecewise form does not
    x20 = torch.full((1, D), -20.0, dtype=torch.float32)
    assert bool((EluPlusOne(D).features(x20, None, {}, {}, "query") > 0).all())
    assert float(torch.nn.functional.elu(x20)[0, 0] + 1) == 0.0
    comp = Feedforward(D, seed=0)
    with torch.no_grad():
        comp.b2.fill_(-2000.0)
    logs, _ = comp.log_features(x, None, {}, {}, "query")
    assert bool(torch.isfinite(logs).all()) and bool((logs < -1000).all())


# -- validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: GERF(a=0.125), "a must satisfy"),
        (lambda: GERF(a=0.3), "a must satisfy"),
        (lambda: GERF(a=math.nan), "a must be finite"),
        (lambda: GERF(s=0), "s must be"),
        (lambda: GERF(s=2), "s must be"),
        (lambda: GERF(s=True), "s must be"),
        (lambda: GERF(target="laplace"), "target must be"),
        (lambda: Positive(h="cauchy"), "h must be"),
        (lambda: Hyperbolic(h="cauchy"), "h must be"),
        (lambda: PoisRF(rate=0.0), "rate"),
        (lambda: GeomRF(p=1.0), "p must be"),
        (lambda: Feedforward(D), "generator"),
        (lambda: Feedforward(D, seed=0, generator=torch.Generator()), "generator"),
        (lambda: Feedforward(D, seed=0, activation="swish"), "activation"),
        (lambda: Feedforward(D, seed=0, feature_dim=0), "feature_dim"),
        (lambda: Hedgehog(0), "dim"),
    ],
)
def test_bad_parameters_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("case_id", IDS)
def test_bad_inputs_raise(case_id, kt_generator):
    comp, law = _build(case_id)
    fm = _draw(comp, law, kt_generator)
    good = torch.zeros(2, D, dtype=F64)
    with pytest.raises(ValueError, match="last dimension d = 4"):
        fm.pair(torch.zeros(2, D + 1, dtype=F64), good)
    with pytest.raises(ValueError, match="NaN"):
        fm.pair(torch.full((2, D), math.nan, dtype=F64), good)
    if comp.data_dependent:
        with pytest.raises(ValueError, match="bind"):
            fm.query(good)
    if not comp.symmetric:
        with pytest.raises(ValueError, match="query"):
            fm.bind(good, good)(good)


@pytest.mark.parametrize(
    "comp, law, match",
    [
        (GERF(), GaussianMixture(D, components=2, generator=torch.Generator().manual_seed(0)), "gerf"),
        (GERF(), Gaussian(D, std=2.0), "standard Gaussian"),
        (GERF(), Gaussian(D, mean=[0.1] * D), "standard Gaussian"),
        (OPRF(), GaussianMixture(D, components=2, generator=torch.Generator().manual_seed(0)), "oprf"),
        (SADERF(), Orthogonal(D, std=2.0), "saderf"),
        (GERF(), PoissonLaw(D), "gerf"),
        (PoisRF(), Gaussian(D), "poisson"),
        (GeomRF(), PoissonLaw(D), "geometric"),
        (ReLU(), GaussianMixture(D, components=2, generator=torch.Generator().manual_seed(0)), "relu"),
        (ReLU(), Gaussian(D, mean=[0.5] * D), "relu"),
        (EluPlusOne(D), Gaussian(D), "no frequency law"),
        (Positive(), None, "needs a frequency law"),
    ],
    ids=lambda v: getattr(v, "name", None) if isinstance(v, (Component, torch.nn.Module)) else None,
)
def test_incompatible_laws_are_refused(comp, law, match):
    with pytest.raises(IncompatibleLaw, match=match):
        comp.check_law(law)


def test_compatible_laws_are_accepted():
    gen = Generative(D, generator=torch.Generator().manual_seed(0))
    for comp in (GERF(), OPRF(), SADERF(), ReLU()):
        comp.check_law(Orthogonal(D))
        comp.check_law(gen)  # no closed form: Monte Carlo reference
    ReLU().check_law(Gaussian(D, std=2.0))
    assert not GERF().has_variance(Orthogonal(D)) and GERF().has_variance(Gaussian(D))


# -- gradients ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", ["feedforward", "feedforward_glu", "hedgehog", "hedgehog_norm"])
def test_gradcheck_through_parameters(case_id, kt_generator):
    comp, _ = _build(case_id, d=2)
    with torch.no_grad():  # move Hedgehog off its identity initialisation
        for p in comp.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=kt_generator, dtype=F64))
    names = [n for n, _ in comp.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for _, p in comp.named_parameters())
    x = torch.randn(3, 2, generator=kt_generator, dtype=F64)

    def fn(*ps):
        return torch.func.functional_call(comp, dict(zip(names, ps, strict=True)), (x,))

    assert torch.autograd.gradcheck(fn, params)
    comp.zero_grad()
    comp(x).sum().backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in comp.parameters())


@pytest.mark.parametrize("case_id", ["positive", "hyperbolic", "gerf+", "gerf_k1", "oprf", "saderf", "elu"])
def test_gradcheck_through_positive_features(case_id, kt_generator):
    comp, law = _build(case_id, d=2)
    fm = _draw(comp, law, kt_generator, d=2, m=3)
    x = (0.5 * torch.randn(2, 2, generator=kt_generator, dtype=F64)).requires_grad_(True)
    y = 0.5 * torch.randn(3, 2, generator=kt_generator, dtype=F64)

    def fn(x):
        fx, fy = fm.pair(x, y)
        return fx @ fy.T

    assert torch.autograd.gradcheck(fn, (x,))


def test_feedforward_orthogonality_penalty_and_seeding():
    a, b = Feedforward(3, seed=5), Feedforward(3, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    w = a.w1.detach()
    expected = ((w @ w.T - torch.eye(w.shape[0], dtype=F64)) ** 2).sum()
    torch.testing.assert_close(a.orthogonality_penalty(), expected)
    square = Feedforward(3, feature_dim=4, hidden_dim=3, seed=0)
    with torch.no_grad():
        square.w1.copy_(
            torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=F64))[0]
        )
    assert square.orthogonality_penalty().item() < 1e-24
    wide = Feedforward(2, hidden_dim=5, seed=0)  # 5 rows in R²: the penalty is at least 5 − 2
    assert wide.orthogonality_penalty().item() >= 3.0
    glu = Feedforward(3, glu=True, seed=0)
    parts = [((m @ m.T - torch.eye(m.shape[0], dtype=F64)) ** 2).sum() for m in (glu.w_a, glu.w_g)]
    torch.testing.assert_close(glu.orthogonality_penalty(), parts[0] + parts[1])
    assert a.feature_dim(123) == 6 and Feedforward(3, feature_dim=7, seed=0).feature_dim(1) == 7


def test_variance_hooks_use_theory(kt_generator):
    x = torch.randn(3, D, generator=kt_generator, dtype=F64) / 3
    y = torch.randn(2, D, generator=kt_generator, dtype=F64) / 3
    law = Gaussian(D)
    xp, yp = x[:, None, :], y[None, :, :]
    pairs = [
        (Hyperbolic(), theory.softmax_hyperbolic_variance),
        (GERF(a=0.0, s=-1), theory.softmax_trig_variance),
        (GERF(), theory.softmax_positive_variance),
        (Positive(), theory.softmax_positive_variance),
        (Trig(), theory.softmax_trig_variance),
    ]
    for comp, formula in pairs[1:]:
        torch.testing.assert_close(comp.variance(law, x, y, M, {}), formula(xp, yp, M), rtol=1e-12, atol=0)
    # the hyperbolic hook evaluates the general bracket A − B, A = (M(2z) + M(−2z) + 2)/4, B = ((M(z) + M(−z))/2)²,
    # which for ω ~ N(0, I) is (e^{2s} + 1)/2 − e^s = (e^s − 1)²/2 (s = ‖x + y‖²): each of A, B within 4u of its value,
    # the difference within 4u(A + B) + u|A − B|, a relative error of 4u·((e^s + 1)/(e^s − 1))² + u, and the
    # specialised formula's own few u (a fixed rtol of 1e-12 failed at s ≈ 0.026: 1.29e-12 at a random seed)
    sq = ((xp + yp) ** 2).sum(-1)
    bound = 8 * torch.finfo(F64).eps * (((sq.exp() + 1) / sq.expm1()) ** 2 + 1)
    general, special = pairs[0][0].variance(law, x, y, M, {}), pairs[0][1](xp, yp, M)
    assert bool(((general - special).abs() <= bound * special.abs()).all()), (general, special)
    psi = law.char_fn(xp - yp)
    torch.testing.assert_close(
        TrigPhase().variance(law, x, y, M, {}), (1 + psi**4 / 2 - psi**2) / M, rtol=1e-12, atol=0
    )
    stats = OPRF().statistics(x, y)
    v = OPRF().variance(law, x, y, M, stats)
    assert v.shape == (3, 2) and bool((v > 0).all())


@pytest.mark.parametrize("n, c, m, d", [(5, 7, 3, 2), (64, 4, 64, 16), (300, 2, 16, 16)])
def test_project_flat_and_batched_products_agree(n, c, m, d, kt_generator):
    """project() takes one flat product for small draws and the batched one otherwise: both are x_i·ω_j + b_j."""
    from kerneltheory.features.base import project

    x = torch.randn(n, d, generator=kt_generator, dtype=F64)
    w = torch.randn(c, m, d, generator=kt_generator, dtype=F64)
    b = torch.rand(c, m, generator=kt_generator, dtype=F64)
    want = torch.einsum("nd,cmd->cnm", x, w)
    got = project(x, w)
    assert got.shape == (c, n, m)
    torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(project(x, w, b), want + b[:, None, :], rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(project(x[None], w, b), want + b[:, None, :], rtol=1e-13, atol=1e-13)  # batched
