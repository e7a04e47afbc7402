"""OPRF, SADERF and GERF with A < 0 have bounded estimates (proofs/oprf.md, item 5): every drawn estimate lies
within ``estimate_bound``, the bound is attained in the limit (so it is the supremum, not a loose number), it
is None where the estimate is unbounded, and the claim matrix then tests unbiasedness with the exact bounded
(Hoeffding / empirical-Bernstein) method."""

import math

import pytest
import torch

import kerneltheory.estimators as E
from kerneltheory.features.gerf import GERF, OPRF, SADERF
from kerneltheory.testing.inputs import moderate_families

F64 = torch.float64
SLACK = 1 + 64 * torch.finfo(F64).eps  # rounding of exp and of the sum of m = 8 products (x = y = 0 hits 1 exactly)


def _pairs(d: int, radius: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    fams = moderate_families(d, torch.Generator().manual_seed(seed), radius=radius)
    return torch.cat([f.x for f in fams]), torch.cat([f.y for f in fams])


@pytest.mark.parametrize("name", ["oprf/gaussian", "saderf/gaussian", "oprf/orthogonal", "saderf/orthogonal"])
@pytest.mark.parametrize(("d", "radius"), [(4, 0.5), (4, 1.5), (16, 1.0)])
def test_every_estimate_lies_within_the_bound(name, d, radius, kt_seed, one_thread):
    est = E.get(name, d, 8)
    x, y = _pairs(d, radius, kt_seed)
    bound = est.component.estimate_bound(x, y)
    assert bound is not None and bound.shape == (x.shape[0],) and bool(torch.isfinite(bound).all())
    est_values = est.sample_estimates(x, y, torch.Generator().manual_seed(kt_seed), 2000)
    assert bool((est_values > 0).all()) and bool((est_values <= bound * SLACK).all())
    assert bool((est.kernel_pairs(x, y) <= bound).all())  # the mean of bounded draws is bounded too


@pytest.mark.parametrize(("a", "s"), [(-0.3, 1), (-0.3, -1), (0.0, -1), (-2.0, 1)])
def test_gerf_with_nonpositive_a_is_bounded(a, s, kt_seed):
    est = E.RandomFeatureEstimator("gerf-a", GERF(a=a, s=s), E.get("positive/gaussian", 4, 8).law, dim=4,
                                   num_features=8)
    x, y = _pairs(4, 1.0, kt_seed)
    bound = est.component.estimate_bound(x, y)
    values = est.sample_estimates(x, y, torch.Generator().manual_seed(kt_seed), 2000)
    assert bound is not None and bool((values.abs() <= bound * SLACK).all())


def test_the_bound_is_the_supremum():
    """At ω* = −Bz/(4A) (the maximiser of 2A‖ω‖² + Bωᵀz) every product f₁f₂ equals the bound: a frequency
    matrix with all m rows at ω* gives an estimate equal to the bound up to rounding."""
    comp = OPRF()
    x = torch.tensor([[0.3, -0.2, 0.5], [0.1, 0.4, 0.0]], dtype=F64)
    y = torch.tensor([[0.2, 0.2, -0.1], [-0.3, 0.1, 0.6]], dtype=F64)
    stats = comp.statistics(x, y)
    a = float(stats["a"])
    assert a < 0
    bound = comp.estimate_bound(x, y)
    for p in range(2):
        z = x[p] + y[p]
        w = (-math.sqrt(1 - 4 * a) * z / (4 * a)).expand(5, 3)
        fx = comp.features(x[p : p + 1], w, {}, stats, "query")
        fy = comp.features(y[p : p + 1], w, {}, stats, "key")
        assert abs(float((fx * fy).sum()) / float(bound[p]) - 1) <= 64 * torch.finfo(F64).eps


def test_unbounded_maps_declare_no_bound():
    x, y = _pairs(4, 0.5)
    assert GERF(a=0.0, s=1).estimate_bound(x, y) is None  # FAVOR+: e^{ωᵀz} is unbounded for z ≠ 0
    assert GERF(a=0.05, s=1).estimate_bound(x, y) is None
    assert GERF(a=0.05, s=-1).estimate_bound(x, y) is None
    zero = torch.zeros(3, 4, dtype=F64)
    assert float(OPRF().statistics(zero, zero)["a"]) == 0.0
    torch.testing.assert_close(OPRF().estimate_bound(zero, zero), torch.ones(3, dtype=F64))  # φ̄ = 0: constant 1
    sad = SADERF().estimate_bound(x, y)
    assert sad is not None and bool(torch.isfinite(sad).all())


@pytest.mark.statistical
@pytest.mark.parametrize("name", ["oprf/gaussian", "saderf/gaussian"])
def test_matrix_uses_the_bounded_method(name, matrix_row):
    """The claim matrix's row (conftest.matrix_row: the run tests/test_claim_matrix.py checks) decides
    unbiasedness by the exact bound, alone or Bonferroni-combined with the CLT."""
    verdicts, _ = matrix_row(name)
    unbiased = next(v for v in verdicts if v.claim == "unbiased")
    assert unbiased.verdict == "verified", unbiased
    assert {c["method"] for c in unbiased.checks} <= {"bounded", "bounded + clt"}, unbiased.checks
