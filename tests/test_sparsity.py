"""Sparsity measures, inputs with controllable sparsity, floors, the rank ceiling and Performer's small-weight
prediction (kerneltheory/sparsity.py, kerneltheory/testing/sparsity_checks.py; proofs/sparsity.md).

Deterministic assertions use tolerances derived from machine epsilon (``_floor``); the statistical checks declare
α and are shown to reject planted defects and to keep their false-failure rate (binomial test over seeds).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch
from _planted import no_norm
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

import kerneltheory.estimators as E
from kerneltheory import sparsity as S
from kerneltheory.attention import attention_matrix
from kerneltheory.features.feedforward import Feedforward
from kerneltheory.features.hedgehog import Hedgehog
from kerneltheory.testing import sparsity_checks as SC

EPS = torch.finfo(torch.float64).eps
F64 = torch.float64
HYP = settings(deadline=None, max_examples=30)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tests are many small tensor ops: one thread avoids oversubscription on shared cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _floor(n: int, scale: float = 1.0) -> float:
    """Rounding floor of a length-n float64 reduction of terms of size ≤ scale (γ_n with a factor 4 slack)."""
    return 4 * (n + 2) * EPS * scale


def _rows(draw_arrays, n, k):
    a = torch.from_numpy(draw_arrays)
    return a / a.sum(-1, keepdim=True)


prob_rows = arrays(np.float64, (3, 7), elements=st.floats(1e-6, 1.0, allow_nan=False, allow_infinity=False))


# ---------------------------------------------------------------------------------------------------
# Measures: known answers
# ---------------------------------------------------------------------------------------------------


def test_row_entropy_known_answers():
    one_hot = torch.eye(5, dtype=F64)
    assert torch.equal(S.row_entropy(one_hot), torch.zeros(5, dtype=F64))
    uniform = torch.full((2, 8), 1 / 8, dtype=F64)
    assert (S.row_entropy(uniform) - 1).abs().max() <= _floor(8)
    assert (S.row_entropy(uniform, normalised=False) - math.log(8)).abs().max() <= _floor(8, math.log(8))
    half = torch.tensor([[0.5, 0.5, 0.0, 0.0]], dtype=F64)
    assert abs(float(S.row_entropy(half)) - 0.5) <= _floor(4)
    assert torch.equal(S.row_entropy(torch.ones(3, 1, dtype=F64)), torch.zeros(3, dtype=F64))  # one key: 0


def test_top_k_mass_known_answers():
    one_hot = torch.eye(6, dtype=F64)
    uniform = torch.full((1, 6), 1 / 6, dtype=F64)
    row = torch.tensor([[0.1, 0.4, 0.2, 0.3]], dtype=F64)
    for k in range(1, 7):
        assert torch.equal(S.top_k_mass(one_hot, k), torch.ones(6, dtype=F64))
        assert abs(float(S.top_k_mass(uniform, k)) - k / 6) <= _floor(6)
    assert [round(float(S.top_k_mass(row, k)), 12) for k in (1, 2, 3, 4)] == [0.4, 0.7, 0.9, 1.0]
    with pytest.raises(ValueError, match="k must be <= 4"):
        S.top_k_mass(row, 5)


def test_kl_known_answers():
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.25, 0.75]], dtype=F64)
    q = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.75, 0.25]], dtype=F64)
    want = [math.log(2), 0.0, 0.25 * math.log(1 / 3) + 0.75 * math.log(3)]
    assert torch.allclose(S.kl_rows(p, q), torch.tensor(want, dtype=F64), rtol=0, atol=_floor(2, 2.0))
    assert torch.equal(S.kl_rows(q, q), torch.zeros(3, dtype=F64))
    assert math.isinf(float(S.kl_rows(q[:1], p[:1])[0]))  # q puts 0 where p does not


@HYP
@given(a=prob_rows, b=prob_rows)
def test_kl_nonnegative_and_pinsker(a, b):
    p, q = _rows(a, 3, 7), _rows(b, 3, 7)
    kl = S.kl_rows(p, q)
    tv = 0.5 * (p - q).abs().sum(-1)
    assert bool((kl >= 0).all())
    assert bool((kl >= 2 * tv**2 - _floor(7, 10.0)).all())  # Pinsker: KL ≥ 2 TV²


def test_argmax_agreement_known_answers():
    ref = torch.tensor([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [0.1, 0.1, 0.8]], dtype=F64)
    approx = torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], dtype=F64)
    assert S.argmax_agreement(ref, approx).tolist() == [
        1.0,
        1.0,
        0.0,
    ]  # a tie in ref: either maximiser agrees
    signed = torch.tensor([[-1.0, 2.0, 0.0]], dtype=F64)
    assert S.argmax_agreement(torch.tensor([[0.2, 0.5, 0.3]], dtype=F64), signed).tolist() == [1.0]


def test_rank_correlation_known_answers():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4, 9, generator=g, dtype=F64)
    assert torch.allclose(S.rank_correlation(s, torch.softmax(s, -1)), torch.ones(4, dtype=F64), atol=1e-12)
    assert torch.allclose(S.rank_correlation(s, torch.softmax(-s, -1)), -torch.ones(4, dtype=F64), atol=1e-12)
    w = torch.tensor([[1.0, 1.0, 2.0, 3.0, 3.0]], dtype=F64)  # ties: average ranks, as scipy
    x = torch.tensor([[0.1, 0.5, 0.2, 0.9, 0.3]], dtype=F64)
    rho = stats.spearmanr(x[0].numpy(), w[0].numpy()).statistic
    assert abs(float(S.rank_correlation(x, w)) - rho) <= 1e-12
    const = torch.ones(1, 5, dtype=F64) / 5
    with pytest.raises(ValueError, match="undefined for row"):
        S.rank_correlation(x, const)
    assert math.isnan(float(S.rank_correlation(x, const, undefined="nan")))


def test_kernel_floor_and_top_k_ceiling_known_answers():
    assert torch.equal(S.kernel_floor(torch.full((2, 4), 0.25, dtype=F64)), torch.ones(2, dtype=F64))
    assert torch.equal(S.kernel_floor(torch.eye(3, dtype=F64)), torch.zeros(3, dtype=F64))
    assert float(S.kernel_floor(torch.tensor([[2.0, 8.0, 4.0]], dtype=F64))) == 0.25
    assert S.top_k_ceiling(1.0, 10, 3) == pytest.approx(0.3, abs=EPS) and S.top_k_ceiling(0.0, 10, 3) == 1.0
    with pytest.raises(ValueError, match="non-negative"):
        S.kernel_floor(torch.tensor([[1.0, -1.0]], dtype=F64))
    with pytest.raises(ValueError, match="identically 0"):
        S.kernel_floor(torch.zeros(1, 3, dtype=F64))


@HYP
@given(a=prob_rows, k=st.integers(1, 7))
def test_floor_caps_top_k_mass(a, k):
    p = _rows(a, 3, 7)
    f = S.kernel_floor(p)
    assert bool((S.top_k_mass(p, k) <= S.top_k_ceiling(f, 7, k) + _floor(7)).all())


def test_small_weight_relative_error_known_answers():
    ref = torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=F64)
    assert float(S.small_weight_relative_error(ref, ref)) == 0.0
    approx = torch.tensor([[0.15, 0.2, 0.25, 0.4]], dtype=F64)  # the smallest weight (quantile 0.25) is 0.1
    assert abs(float(S.small_weight_relative_error(ref, approx)) - 0.5) <= 1e-15
    assert abs(float(S.small_weight_relative_error(ref, approx, quantile=0.5)) - 0.25) <= 1e-15
    with pytest.raises(ValueError, match="underflow"):
        S.small_weight_relative_error(torch.tensor([[0.0, 1.0]], dtype=F64), approx[:, :2])


def test_effective_and_stable_rank_known_answers():
    n = 6
    assert abs(float(S.effective_rank(torch.eye(n, dtype=F64))) - n) <= _floor(n, n)
    assert abs(float(S.stable_rank(torch.eye(n, dtype=F64))) - n) <= _floor(n, n)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(1), dtype=F64))
    assert abs(float(S.effective_rank(3 * q)) - n) <= 1e-12
    u = torch.arange(1.0, 5.0, dtype=F64)
    assert abs(float(S.effective_rank(torch.outer(u, u))) - 1) <= 1e-12
    d = torch.diag(torch.tensor([3.0, 1.0], dtype=F64))
    assert (
        abs(float(S.effective_rank(d)) - math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))) <= 1e-14
    )
    assert abs(float(S.stable_rank(d)) - 10 / 9) <= 1e-15
    with pytest.raises(ValueError, match="zero matrix"):
        S.effective_rank(torch.zeros(3, 3, dtype=F64))


@HYP
@given(a=arrays(np.float64, (5, 8), elements=st.floats(-10, 10, allow_nan=False)), r=st.integers(1, 5))
def test_ranks_below_rank_and_eckart_young(a, r):
    a = torch.from_numpy(a)
    rank = int(torch.linalg.matrix_rank(a))
    if rank == 0:
        return
    assert 1 - 1e-9 <= float(S.effective_rank(a)) <= rank * (1 + 1e-9)
    assert 1 - 1e-9 <= float(S.stable_rank(a)) <= rank * (1 + 1e-9)
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    best = (u[:, :r] * s[:r]) @ vh[:r]  # the truncated SVD attains the floor
    floor = float(S.rank_floor(a, r))
    assert abs(float(torch.linalg.matrix_norm(a - best)) - floor) <= 1e-9 * (1 + float(s[0]))
    g = torch.Generator().manual_seed(r)
    other = torch.randn(5, r, generator=g, dtype=F64) @ torch.randn(r, 8, generator=g, dtype=F64)
    assert float(torch.linalg.matrix_norm(a - other)) >= floor - 1e-9 * (1 + float(s[0]))


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match="a must have non-negative entries"):
        S.row_entropy(torch.tensor([[1.5, -0.5]], dtype=F64))
    with pytest.raises(ValueError, match=r"rows of a must sum to 1.*row \(1,\)"):
        S.row_entropy(torch.tensor([[0.5, 0.5], [0.5, 0.6]], dtype=F64))
    with pytest.raises(ValueError, match="q contains NaN"):
        S.kl_rows(torch.ones(1, 2, dtype=F64) / 2, torch.tensor([[math.nan, 1.0]], dtype=F64))
    with pytest.raises(ValueError, match=r"shape \[\.\.\., n, n'\]"):
        S.row_entropy(torch.ones(3, dtype=F64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        S.top_k_mass([[1.0]], 1)
    # float32 softmax rows are accepted: their row sums lie within the stated rounding floor
    x = torch.randn(50, 300, generator=torch.Generator().manual_seed(2)) * 5
    S.check_attention(torch.softmax(x, -1))
    off = torch.full((1, 300), 1 / 300, dtype=F64)
    off[0, 0] += 10 * float(S.row_sum_tolerance(off)[0])
    with pytest.raises(ValueError, match="must sum to 1"):
        S.check_attention(off)
    with pytest.raises(ValueError, match="no positive entry"):
        S.clip_renormalise(torch.tensor([[-1.0, 0.0]], dtype=F64))


# ---------------------------------------------------------------------------------------------------
# Inputs with controllable sparsity
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,d,k,margin,extra", [(4, 8, 1, 3.0, 10), (8, 8, 2, 1.5, 0), (3, 16, 4, 0.0, 5)])
def test_planted_keys_exact_scores_mass_and_entropy(n, d, k, margin, extra, kt_generator):
    p = S.planted_keys(n, d, k, margin, kt_generator, distractors=extra)
    scores = p.q @ p.k.T / math.sqrt(d)
    want = torch.where(p.support, margin, 0.0).to(F64)
    assert (scores - want).abs().max() <= _floor(d, max(margin, 1.0))
    a = p.softmax()
    assert p.support.sum(-1).eq(k).all() and not bool((p.support.sum(0) > 1).any())  # disjoint supports
    assert ((a * p.support).sum(-1) - p.mass).abs().max() <= 1e-12
    assert (S.row_entropy(a) - p.entropy).abs().max() <= 1e-12
    assert p.mass == pytest.approx(S.planted_mass(n * k + extra, k, margin), abs=0)
    if margin > 0:
        assert S.margin_for_mass(p.mass, n * k + extra, k) == pytest.approx(margin, rel=1e-12)


def test_planted_keys_validation(kt_generator):
    with pytest.raises(ValueError, match="n must be <= d"):
        S.planted_keys(9, 8, 1, 1.0, kt_generator)
    with pytest.raises(ValueError, match="need n < d"):
        S.planted_keys(8, 8, 1, 1.0, kt_generator, distractors=3)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        S.planted_keys(2, 8, 1, -1.0, kt_generator)
    with pytest.raises(ValueError, match="mass must be >= 0.25"):
        S.margin_for_mass(0.1, 4, 1)


@pytest.mark.parametrize("n,nk,k,margin", [(6, 20, 1, 2.0), (4, 16, 4, 0.7), (5, 5, 1, 3.0), (3, 9, 2, 0.0)])
def test_planted_singular_values_and_rank_floor(n, nk, k, margin, kt_generator):
    d = max(n + 1, 2) if nk > n * k else n
    p = S.planted_keys(n, d, k, margin, kt_generator, distractors=nk - n * k)
    a = p.softmax()
    s = torch.linalg.svdvals(a)
    s1, rest = S.planted_singular_values(n, nk, k, margin)
    assert abs(float(s[0]) - s1) <= 1e-12 and (s[1:n] - rest).abs().max() <= 1e-12
    for rank in range(0, n + 2):
        assert abs(float(S.rank_floor(a, rank)) - S.planted_rank_floor(n, nk, k, margin, rank)) <= 1e-12


@pytest.mark.parametrize("target", [0.95, 0.6, 0.25, 0.05])
@pytest.mark.parametrize("split", ["symmetric", "query"])
def test_temperature_inputs_hit_the_target(target, split, kt_generator):
    t = S.temperature_inputs(16, 8, target, kt_generator, n_keys=24, tol=1e-7, split=split)
    assert t.bracket <= 1e-7
    assert abs(t.entropy - target) <= t.bracket + _floor(24, 10.0)
    assert abs(float(S.row_entropy(t.softmax()).mean()) - t.entropy) <= _floor(24, 10.0)


def test_temperature_inputs_edges(kt_generator):
    t = S.temperature_inputs(4, 3, 1.0, kt_generator)
    assert t.beta == 0.0 and not bool(t.q.any())
    with pytest.raises(ValueError, match="target_entropy must be > 0"):
        S.temperature_inputs(4, 3, 0.0, kt_generator)
    with pytest.raises(ValueError, match="tol must be >= 1e-12"):
        S.temperature_inputs(4, 3, 0.5, kt_generator, tol=1e-15)


@HYP
@given(
    s=arrays(np.float64, (3, 6), elements=st.floats(-5, 5, allow_nan=False)),
    b=st.floats(0, 20),
    c=st.floats(0, 20),
)
def test_row_entropy_is_nonincreasing_in_beta(s, b, c):
    """dH/dβ = −β Var_p(s) ≤ 0 (proofs/sparsity.md, item 2): the bisection's bracket is certified."""
    s = torch.from_numpy(s)
    lo, hi = min(b, c), max(b, c)
    h_lo = S.row_entropy(torch.softmax(lo * s, -1))
    h_hi = S.row_entropy(torch.softmax(hi * s, -1))
    assert bool((h_hi <= h_lo + _floor(6, 10.0)).all())


# ---------------------------------------------------------------------------------------------------
# Floors and temperature saturation
# ---------------------------------------------------------------------------------------------------


def _ball(g, n, d, radius):
    u = torch.randn(n, d, generator=g, dtype=F64)
    return radius * torch.rand(n, 1, generator=g, dtype=F64) * u / u.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("radius", [0.1, 1.0, 3.0, 10.0])
def test_floor_bounds_hold(radius, kt_generator, kt_seed):
    d = 5
    x, y = _ball(kt_generator, 40, d, radius), _ball(kt_generator, 40, d, radius)
    x[0] = radius * torch.ones(d, dtype=F64) / math.sqrt(d)  # a point on the boundary
    assert float(S.kernel_floor(torch.exp(x @ y.T)).min()) >= S.softmax_floor_bound(radius) * (1 - 1e-12)
    elu = E.get("elu", d, 1).draw(kt_generator)
    assert float(S.kernel_floor(elu.estimate(x, y)).min()) >= S.elu_floor_bound(radius) * (1 - 1e-12)
    for glu in (False, True):
        for act in ("gelu", "relu", "tanh"):
            ff = Feedforward(d, 8, 6, glu=glu, activation=act, seed=kt_seed % 1000)
            with torch.no_grad():
                kappa = ff(x) @ ff(y).T
            assert float(S.kernel_floor(kappa).min()) >= S.feedforward_floor_bound(ff, radius) * (1 - 1e-12)
    hh = Hedgehog(d)
    with torch.no_grad():
        hh.weight.add_(0.3 * torch.randn(d, d, generator=kt_generator, dtype=F64))
        hh.bias.add_(0.3 * torch.randn(d, generator=kt_generator, dtype=F64))
        kappa = hh(x) @ hh(y).T
    assert float(S.kernel_floor(kappa).min()) >= S.hedgehog_floor_bound(hh, radius) * (1 - 1e-12)
    with pytest.raises(ValueError, match="normalize=False"):
        S.hedgehog_floor_bound(Hedgehog(d, normalize=True), radius)


@pytest.mark.parametrize("beta", [1.0, 1e2, 1e4, 1e8])
def test_elu_kernel_tends_to_the_relu_kernel(beta, kt_generator):
    """φ(√β x) = √β relu(x) + c(x), c ∈ (0, 1]^d, so 0 ≤ κ_β/β − relu(q)ᵀrelu(k) ≤ (‖relu q‖₁ + ‖relu k‖₁)/√β
    + d/β (proofs/sparsity.md, item 4): elu + 1 attention cannot be sharpened by scaling its inputs."""
    d = 6
    q, k = (
        torch.randn(7, d, generator=kt_generator, dtype=F64),
        torch.randn(9, d, generator=kt_generator, dtype=F64),
    )
    fm = E.get("elu", d, 1).draw(kt_generator)
    gap = fm.estimate(math.sqrt(beta) * q, math.sqrt(beta) * k) / beta - torch.relu(q) @ torch.relu(k).T
    bound = (torch.relu(q).sum(-1, keepdim=True) + torch.relu(k).sum(-1)) / math.sqrt(beta) + d / beta
    slack = _floor(d, float((fm.estimate(math.sqrt(beta) * q, math.sqrt(beta) * k) / beta).abs().max()))
    assert bool((gap >= -slack).all()) and bool((gap <= bound + slack).all())


# ---------------------------------------------------------------------------------------------------
# The rank ceiling
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,m",
    [("positive/gaussian", 6), ("trig/gaussian", 4), ("hyperbolic/orthogonal", 5), ("oprf/gaussian", 8)],
)
def test_linear_attention_has_rank_at_most_d_and_misses_the_floor(name, m, kt_generator):
    n, d, margin = 14, 16, 3.0
    p = S.planted_keys(n, d, 1, margin, kt_generator, distractors=6)
    est = E.get(name, d, m)
    s = d**-0.25
    ahat = attention_matrix(p.q * s, p.k * s, est.draw(kt_generator))
    dim = est.feature_dim
    assert dim < n
    assert int(torch.linalg.matrix_rank(ahat)) <= dim
    floor = S.planted_rank_floor(n, p.k.shape[0], 1, margin, dim)
    err = float(torch.linalg.matrix_norm(p.softmax() - ahat))
    assert floor > 0 and err >= floor * (1 - 1e-9)


# ---------------------------------------------------------------------------------------------------
# Performer's small-weight prediction: identities (sympy) and the calibrated check
# ---------------------------------------------------------------------------------------------------


def test_relative_variance_identities_sympy():
    """With Z = ‖z‖², T = ‖τ‖², xᵀy = (Z − T)/4: MATH.md §4's variances over SM² are (e^Z − 1)/m and
    2 sinh²(T/2)/m; trig ≥ (SM⁻² − SM²)²/(2m); trig > positive ⟺ cosh T > e^Z (proofs/sparsity.md, item 6)."""
    z, t, m = sp.symbols("Z T m", positive=True)
    sm = sp.exp((z - t) / 4)
    pos = sp.exp(z) * sm**2 * (1 - sp.exp(-z)) / m / sm**2
    trig = sp.exp(z) * sm**-2 * (1 - sp.exp(-t)) ** 2 / (2 * m) / sm**2
    assert sp.simplify(pos - (sp.exp(z) - 1) / m) == 0
    assert sp.simplify((trig - 2 * sp.sinh(t / 2) ** 2 / m).rewrite(sp.exp)) == 0
    lower = (sm**-2 - sm**2) ** 2 / (2 * m)
    # T = Z − 4 log SM ≥ −4 log SM and sinh² is increasing on [0, ∞): at Z = 0 the bound is attained
    assert sp.simplify((trig - lower).subs(z, 0).rewrite(sp.exp)) == 0
    diff = sp.simplify((2 * m * (trig - pos)).rewrite(sp.exp))
    assert sp.simplify(diff - 2 * (sp.cosh(t) - sp.exp(z)).rewrite(sp.exp)) == 0


def test_small_weight_pairs_geometry_and_closed_forms(kt_generator):
    taus = [0.5, 1.0, 2.0, 3.0]
    x, y = SC.small_weight_pairs(5, 0.7, taus, kt_generator)
    assert torch.allclose((x + y).norm(dim=-1), torch.full((4,), 0.7, dtype=F64), atol=1e-15)
    assert torch.allclose((x - y).norm(dim=-1), torch.tensor(taus, dtype=F64), atol=1e-15)
    assert torch.allclose(x.norm(dim=-1), y.norm(dim=-1), atol=1e-15)
    tt = torch.tensor(taus, dtype=F64) ** 2
    sm = SC.softmax_pairs(x, y)
    assert torch.allclose(sm, torch.exp((0.49 - tt) / 4), rtol=1e-14)
    assert torch.allclose(
        SC.positive_relative_variance(x, y, 8), torch.full((4,), math.expm1(0.49) / 8, dtype=F64), rtol=1e-12
    )
    assert torch.allclose(SC.trig_relative_variance(x, y, 8), 2 * torch.sinh(tt / 2) ** 2 / 8, rtol=1e-12)
    assert bool((SC.trig_relative_variance(x, y, 8) >= (sm**-2 - sm**2) ** 2 / 16 * (1 - 1e-12)).all())


ALPHA = 1e-6


def _no_norm(m):
    return no_norm(4, m)


@pytest.mark.statistical
@pytest.mark.parametrize("name", ["positive/gaussian", "positive/orthogonal"])
def test_positive_relative_error_stays_bounded(name, kt_seed):
    r = SC.small_weight_check(name, claim="bounded", seed=kt_seed, alpha=ALPHA, draws=8192)
    assert r.passed, r


@pytest.mark.statistical
@pytest.mark.parametrize(
    "label,estimator",
    [
        pytest.param("trig claimed bounded", "trig/gaussian", id="trig-claimed-bounded"),
        pytest.param("positive without exp(−‖x‖²/2)", _no_norm, id="positive-without-norm-term"),
    ],
)
def test_bounded_claim_rejects_planted_defects(label, estimator, kt_seed):
    r = SC.small_weight_check(estimator, claim="bounded", seed=kt_seed, alpha=ALPHA, draws=8192)
    assert not r.refused and not r.passed, f"{label} not detected: {r}"
    assert r.effect_size > 10, r  # the relative MSE exceeds the positive bound many times over


@pytest.mark.statistical
def test_trig_relative_error_grows(kt_seed):
    r = SC.small_weight_check("trig/gaussian", claim="grows", seed=kt_seed, alpha=ALPHA, draws=8192)
    assert r.passed, r


@pytest.mark.statistical
def test_grows_claim_rejects_positive_features(kt_seed):
    r = SC.small_weight_check("positive/gaussian", claim="grows", seed=kt_seed, alpha=ALPHA, draws=8192)
    assert not r.refused and not r.passed, r


def test_exact_pairs_pass_bounded_and_fail_grows():
    """At ‖x + y‖ = 0 positive features are exact (ωᵀz = 0): zero variance, compared with the rounding floor."""
    x, y = SC.small_weight_pairs(4, 0.0, [1.0, 2.0], torch.Generator().manual_seed(0))
    est = E.get("positive/gaussian", 4, 16)
    bounded = SC.relative_error_check(
        est, x, y, claim="bounded", bound=SC.positive_relative_variance(x, y, 16), draws=128
    )
    grows = SC.relative_error_check(
        est, x, y, claim="grows", bound=SC.trig_relative_variance(x, y, 16), draws=128
    )
    assert bounded.passed and bounded.effect_size <= 1e-20, bounded
    assert not grows.passed, grows


def _false_failures(name: str, claim: str, seeds) -> int:
    m = 256 if name.startswith("positive") else 64  # trig estimates are bounded: no log-normal tail to tame
    est = E.get(name, 4, m)
    fails = 0
    for s in seeds:
        x, y = SC.small_weight_pairs(4, 0.5, [2.0], torch.Generator().manual_seed(int(s)))
        bound = (
            SC.positive_relative_variance(x, y, m)
            if claim == "bounded"
            else SC.trig_relative_variance(x, y, m)
        )
        r = SC.relative_error_check(est, x, y, claim=claim, bound=bound, draws=8192, alpha=0.05, seed=int(s))
        assert not r.refused, r
        fails += not r.passed
    return fails


CALIBRATED = [("positive/gaussian", "bounded"), ("trig/gaussian", "grows")]


@pytest.mark.statistical
@pytest.mark.parametrize("name,claim", CALIBRATED)
def test_small_weight_check_calibration(name, claim, kt_seed):
    """One pair (no Bonferroni slack), the bound exactly the truth, 20 seeds at α = 0.05: the number of false
    failures is consistent with the level (binomial tail p > 1e-6); 200 seeds in the slow test below."""
    seeds = np.random.default_rng(kt_seed).integers(0, 2**31 - 1, size=20)
    fails = _false_failures(name, claim, seeds)
    assert stats.binom.sf(fails - 1, len(seeds), 0.05) > 1e-6, fails


@pytest.mark.slow
@pytest.mark.statistical
@pytest.mark.parametrize("name,claim", CALIBRATED)
def test_small_weight_check_calibration_thorough(name, claim, kt_seed):
    seeds = np.random.default_rng(kt_seed).integers(0, 2**31 - 1, size=200)
    fails = _false_failures(name, claim, seeds)
    assert stats.binom.sf(fails - 1, len(seeds), 0.05) > 1e-6, fails


@pytest.mark.statistical
def test_an_estimator_object_is_checked_at_its_own_number_of_features(kt_seed):
    """Review finding: an estimator object was checked against the bounds of the default m = 256, not its own:
    positive features at m = 16 passed the false claim "grows" (their relative MSE, 0.017, is below the trig floor at
    m = 16, 0.034, but above the one at m = 256), and failed their true bound; trig features at m = 4096 failed
    "grows" (here m = 512, whose floor is half of m = 256's)."""
    pos16, trig = E.get("positive/gaussian", 4, 16), E.get("trig/gaussian", 4, 512)
    def more_draws_if_refused(est, **kw):  # the guard refused 8192 draws of pos16 at 2 of 60 seeds: draw more
        for draws in (8192, 16384, 32768):
            row = SC.small_weight_check(est, draws=draws, seed=kt_seed, alpha=ALPHA, **kw)
            if not row.refused:
                break
        return row

    assert more_draws_if_refused(pos16, claim="bounded").passed
    assert SC.small_weight_check(trig, claim="grows", seed=kt_seed, alpha=ALPHA).passed
    wrong = more_draws_if_refused(pos16, claim="grows", tau_norms=(1.0,))
    assert wrong.status == "failed", wrong  # positive features at m = 16 stay below the trig floor
    with pytest.raises(ValueError, match="num_features = 32 differs from the estimator's own num_features = 16"):
        SC.small_weight_check(pos16, num_features=32)

    class Bare:  # no num_features, no dim: the bounds need them given
        def sample_estimates(self, x, y, generator, draws):
            return pos16.sample_estimates(x, y, generator, draws)

    with pytest.raises(ValueError, match="num_features: the estimator has no num_features attribute"):
        SC.small_weight_check(Bare())
    assert more_draws_if_refused(Bare(), num_features=16, dim=4).passed


def test_relative_variances_are_the_closed_forms_where_sm_underflows():
    """(e^{‖z‖²} − 1)/m and 2 sinh²(‖τ‖²/2)/m were computed as Var/SM², whose terms underflow together: from ‖τ‖ ≈ 38.5
    at ζ = 0.5 the positive bound was 0 (a true claim failed), then NaN. They agree with the ratio where it is finite;
    past SM's normal range the check is an error naming z_norm and tau_norms."""
    from kerneltheory import theory

    x, y = SC.small_weight_pairs(4, 0.5, [0.5, 2.0, 5.0, 38.5, 45.0], torch.Generator().manual_seed(0))
    xs, ys = x[:3], y[:3]  # where the ratio's terms are finite
    sm2 = SC.softmax_pairs(xs, ys) ** 2
    assert torch.allclose(SC.positive_relative_variance(xs, ys, 8), theory.softmax_positive_variance(xs, ys, 8) / sm2,
                          rtol=1e-12)
    assert torch.allclose(SC.trig_relative_variance(xs, ys, 8), theory.softmax_trig_variance(xs, ys, 8) / sm2,
                          rtol=1e-12)
    assert torch.allclose(SC.positive_relative_variance(x, y, 8), torch.full((5,), math.expm1(0.25) / 8, dtype=F64))
    assert SC.small_weight_check("positive/gaussian", tau_norms=(38.5,), alpha=ALPHA).passed
    with pytest.raises(ValueError, match="z_norm = 0.5, tau_norms = \\[60.0\\].*normal range"):
        SC.small_weight_check("positive/gaussian", tau_norms=(60.0,))


def _signed(size: float):
    """Estimates SM·(1 ± size) at pair 0 (an error of fixed size, random sign: e constant, r not) and SM·(1 + 3ε),
    ε ~ N(0, 1), at pair 1 (relative MSE 9), for pairs with SM = 1."""

    def estimates(x, y, g, n):
        sign = torch.randint(0, 2, (n,), generator=g).to(F64) * 2 - 1
        return torch.stack([1 + size * sign, 1 + 3 * torch.randn(n, generator=g, dtype=F64)], 1)

    return estimates


def test_a_pair_of_constant_squared_error_is_compared_up_to_rounding():
    """Review finding: at a pair whose e = (Ŝ/SM − 1)² is the same in every draw but r = Ŝ/SM − 1 is not, the standard
    error is 0 and the z-score was 0/0 = NaN, read as p = 1: a relative MSE of 9 at another pair against a bound of 0.25
    passed. Such a pair is now compared with its bound up to rounding."""
    x, y = torch.tensor([[1.0, 0.0]] * 2, dtype=F64), torch.tensor([[0.0, 1.0]] * 2, dtype=F64)
    hidden = SC.relative_error_check(_signed(0.5), x, y, claim="bounded", bound=0.25, draws=8192)
    assert hidden.status == "failed" and "worst pair 1" in hidden.detail, hidden

    def constant(x, y, g, n):
        return _signed(0.1)(x, y, g, n)[:, :1].expand(n, 2)

    for claim, bound, status in (("bounded", 0.01, "passed"), ("grows", 0.01, "passed"),
                                 ("bounded", 0.0099, "failed"), ("grows", 0.0101, "failed")):
        row = SC.relative_error_check(constant, x, y, claim=claim, bound=bound, draws=8192)
        assert row.status == status, (claim, bound, row)


def test_exact_pairs_in_float32_get_float32s_rounding():
    """Positive features at z = 0 from float32 inputs are exact up to float32's rounding (relative MSE 5e-15): the
    exactness floor took float64's ε and failed the true claim at 8192 draws."""
    x, y = SC.small_weight_pairs(4, 0.0, [1.0, 2.0], torch.Generator().manual_seed(0))
    est = E.get("positive/gaussian", 4, 16, dtype=torch.float32)
    row = SC.relative_error_check(est, x.float(), y.float(), claim="bounded",
                                  bound=SC.positive_relative_variance(x, y, 16), draws=8192)
    assert row.passed, row


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_estimates_in_a_half_format_are_refused_not_passed(dtype, kt_seed):
    """Review finding: estimates returned in float16 or bfloat16 made δ = 64 ulps 6–50 % of Ŝ/SM, so every pair
    counted as exact and a 30 % error on every draw (relative MSE 0.09, 81× the bound) passed "bounded" with p = 1,
    as did positive features with 16 of their claimed 256 frequencies. Such rows are refused now; the same
    estimators in float32 fail."""
    x, y = SC.small_weight_pairs(4, 0.5, [1.0, 2.0, 3.0], torch.Generator().manual_seed(kt_seed))
    bound = SC.positive_relative_variance(x, y, 256)
    sm = SC.softmax_pairs(x, y)

    def noisy(fmt):
        def estimates(a, b, g, r):
            sign = torch.randint(0, 2, (r, a.shape[0]), generator=g).to(F64) * 2 - 1
            return (sm * (1 + 0.3 * sign)).to(fmt)
        return estimates

    few = E.get("positive/gaussian", 4, 16)

    def cast(fmt):
        return lambda a, b, g, r: few.sample_estimates(a, b, g, r).to(fmt)

    for make in (noisy, cast):
        row = SC.relative_error_check(make(dtype), x, y, claim="bounded", bound=bound, draws=4096, seed=kt_seed)
        assert not row.passed, row  # the 30 % error in float16: decided by the draws that leave the rounding
        assert row.status == "failed" if make is noisy and dtype == torch.float16 else row.refused, row
        assert row.status == "failed" or "returned in" in row.detail, row
        row = SC.relative_error_check(make(torch.float32), x, y, claim="bounded", bound=bound, draws=16384,
                                      seed=kt_seed)  # (at 4096 draws the guard refused m = 16 at some seeds)
        assert row.status == "failed", row


def test_bad_arguments_are_errors_naming_them():
    x, y = SC.small_weight_pairs(4, 0.5, [1.0, 2.0], torch.Generator().manual_seed(0))
    est = E.get("positive/gaussian", 4, 8)
    for bad, match in ((torch.ones(3), r"shape \[P\] = \[2\]"), (torch.ones(2, 2), r"shape \[P\] = \[2\]"),
                       (torch.tensor([1 + 1j]), "real"), (1 + 1j, "real"), ("a", "real")):
        with pytest.raises(ValueError, match="bound must be .*" + match):
            SC.relative_error_check(est, x, y, claim="bounded", bound=bad, draws=256)
    with pytest.raises(ValueError, match=r"estimator must return .*\[(\d+), 2\] \(a call for \1 draws\), got "
                                         r"torch.float64 tensor of shape \(\1, 1\)"):
        SC.relative_error_check(lambda a, b, g, n: torch.ones(n, 1, dtype=F64), x, y, claim="bounded", bound=1.0,
                                draws=256)
    with pytest.raises(ValueError, match="tau_norms must be a sequence"):
        SC.small_weight_check("positive/gaussian", tau_norms=2.0)
    assert SC.small_weight_check("positive/gaussian", draws=256, seed=2**64).refused  # any seed ≥ 0 runs
    far = SC.small_weight_check("trig/gaussian", tau_norms=(14.0,), draws=512)
    assert far.refused and "overflow float64" in far.detail, far


def test_relative_error_check_refuses_and_validates():
    r = SC.small_weight_check("positive/gaussian", draws=16)
    assert r.refused and not r.passed
    x, y = SC.small_weight_pairs(4, 0.5, [1.0], torch.Generator().manual_seed(0))
    est = E.get("positive/gaussian", 4, 8)
    with pytest.raises(ValueError, match="claim must be one of"):
        SC.relative_error_check(est, x, y, claim="smaller", bound=1.0)
    with pytest.raises(ValueError, match="bound must be finite and >= 0"):
        SC.relative_error_check(est, x, y, claim="bounded", bound=-1.0)
    with pytest.raises(TypeError, match="sample_estimates"):
        SC.relative_error_check(3, x, y, claim="bounded", bound=1.0)
