"""``Component.pair_estimates``: the moment engine's estimate of one (draw, pair) equals φ_query(x)ᵀφ_key(y), the dot
product of the drawn features, for every component; HRF and PolySketch evaluate it by a cheaper expression whose
difference from the dot product is bounded by float64 rounding.

The bound. For a sum of K computed products, |fl(Σ aᵢbᵢ) − Σ aᵢbᵢ| ≤ γ_K Σ|aᵢbᵢ| with γ_K = Ku/(1 − Ku), u = 2⁻⁵³
(Higham, "Accuracy and Stability of Numerical Algorithms", §3.1). The dot product of the D features is such a sum,
each feature a product of at most five rounded factors of the shared base quantities (positive and trig features,
signs, sketch coordinates), so it lies within γ_{D+12} Σ|φᵢφ'ᵢ| of the exact value E of the expansion on those
quantities. HRF's ½[(1 − s)Â + (1 + s)B̂] rounds Â, B̂ (sums of m and 2m products), s and five more operations,
and ½[|1 − s|Σ|pp'| + |1 + s|Σ|tt'|] ≤ Σ|E_i| since |s| ≤ Σ|ψψ'|; PolySketch's fl(Σ zz')² is within
γ_{2m+3}(Σ|zz'|)² = γ_{2m+3}Σ|E_i| of E. Both paths are within γ_K Σ|E_i| of E for K = D + 2W + 16 (W the pair
width), so |fast − dot| ≤ 2γ_K(1 + γ_K) Σ|φᵢφ'ᵢ| (the computed Σ|φφ'| is within a factor 1 + γ_K of Σ|E_i|).
"""

import pytest
import torch

import kerneltheory.estimators as E
from kerneltheory.features.base import Component, project
from kerneltheory.features.hybrid import HRF

U = 2.0**-53
FAST = ("hrf/gaussian", "hrf/orthogonal", "polysketch/gaussian")


def _gamma(k: int) -> float:
    return k * U / (1 - k * U)


def _inputs(gen: torch.Generator, dim: int, pairs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Moderate random pairs plus the corner cases: x = 0 (ψ = 0, λ̂ = ½), x = y and x = −y."""
    x = torch.randn(pairs, dim, generator=gen, dtype=torch.float64) / 2
    y = torch.randn(pairs, dim, generator=gen, dtype=torch.float64) / 2
    x[0] = 0.0
    y[1] = x[1]
    y[2] = -x[2]
    return x, y


def _dot_and_bound(est, comp, x, y, fm, stats=None) -> tuple[torch.Tensor, torch.Tensor]:
    """φ_query(x)ᵀφ_key(y) of the draws ``fm`` and the rounding bound 2γ_K(1 + γ_K)Σ|φᵢφ'ᵢ| (module docstring)."""
    stats = stats or {}
    fx, fy = comp.features(x, fm.w, fm.extra, stats, "query"), comp.features(y, fm.w, fm.extra, stats, "key")
    g = _gamma(est.feature_dim + 2 * comp.pair_width(est.num_features) + 16)
    return torch.linalg.vecdot(fx, fy), 2 * g * (1 + g) * (fx * fy).abs().sum(-1)


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("m", [1, 3, 16])
def test_fast_pair_estimates_equal_the_feature_dot_product_to_rounding(name, m, kt_generator):
    est = E.get(name, 4, m)
    x, y = _inputs(kt_generator, 4, 7)
    fm = est.draw(kt_generator, batch=5)
    fast = est.component.pair_estimates(x, y, fm.w, fm.extra, {})
    dot, bound = _dot_and_bound(est, est.component, x, y, fm)
    assert fast.shape == dot.shape == (5, 7)
    assert bool(torch.isfinite(fast).all()) and bool((bound < 1e-9 * (1 + dot.abs())).all())  # a tight bound
    assert bool(((fast - dot).abs() <= bound).all()), float(((fast - dot).abs() / bound).max())


def test_hrf_pair_estimates_with_fewer_angular_features(kt_generator):
    est = E.get("hrf/gaussian", 4, 8, angular_features=3)
    x, y = _inputs(kt_generator, 4, 6)
    fm = est.draw(kt_generator, batch=4)
    dot, bound = _dot_and_bound(est, est.component, x, y, fm)
    assert bool(((est.component.pair_estimates(x, y, fm.w, fm.extra, {}) - dot).abs() <= bound).all())


def test_a_wrong_expansion_would_be_caught(kt_generator):
    """The bound is not vacuous: swapping the mixing weights (λ̂ ↔ 1 − λ̂) exceeds it."""
    est = E.get("hrf/gaussian", 4, 8)
    comp = est.component
    x, y = _inputs(kt_generator, 4, 7)
    fm = est.draw(kt_generator, batch=5)
    u = fm.extra["angular"]
    s = torch.linalg.vecdot(torch.sign(project(x, u)), torch.sign(project(y, u))) / u.shape[-2]
    a = torch.linalg.vecdot(comp._positive.features(x, fm.w, {}, {}, "query"),
                            comp._positive.features(y, fm.w, {}, {}, "key"))
    b = torch.linalg.vecdot(comp._trig.features(x, fm.w, {}, {}, "query"), comp._trig.features(y, fm.w, {}, {}, "key"))
    dot, bound = _dot_and_bound(est, comp, x, y, fm)
    assert bool(((0.5 * ((1.0 + s) * a + (1.0 - s) * b) - dot).abs() > bound).any())


def test_a_subclass_that_changes_the_features_gets_their_dot_product(kt_generator):
    class Doubled(HRF):
        def features(self, x, w, extra, stats, side):
            return 2.0 * super().features(x, w, extra, stats, side)

    est = E.get("hrf/gaussian", 4, 8)
    x, y = _inputs(kt_generator, 4, 5)
    fm = est.draw(kt_generator, batch=3)
    comp = Doubled(4)
    assert torch.equal(comp.pair_estimates(x, y, fm.w, fm.extra, {}), _dot_and_bound(est, comp, x, y, fm)[0])


@pytest.mark.parametrize("name", ["trig/gaussian", "positive/orthogonal", "oprf/gaussian", "tensorsketch/countsketch"])
def test_the_default_is_bitwise_the_feature_dot_product(name, kt_generator):
    est = E.get(name, 4, 8)
    comp = est.component
    x, y = _inputs(kt_generator, 4, 6)
    fm = est.draw(kt_generator, batch=4)
    stats = comp.statistics(x, y) if comp.data_dependent else {}
    assert torch.equal(comp.pair_estimates(x, y, fm.w, fm.extra, stats), _dot_and_bound(est, comp, x, y, fm, stats)[0])
    assert comp.pair_width(8) == max(est.feature_dim, 8)
    assert type(comp).pair_estimates is Component.pair_estimates
