"""float32 evaluation in RandomFeatureEstimator.sample_estimates (compute_dtype): where it is allowed, the same
verdicts as float64; where it is not, float64 is kept; overflow falls back to float64 per chunk."""

from __future__ import annotations

import pytest
import torch

import kerneltheory.estimators as E
from kerneltheory.testing.matrix import verify_estimator

FAST = ["positive/gaussian", "positive/orthogonal", "trig/gaussian"]


def _pairs(seed: int, p: int = 6, d: int = 4, scale: float = 0.5):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(p, d, generator=g, dtype=torch.float64) * scale for _ in range(2))


def _verdicts(name: str, compute_dtype) -> list[tuple[str, bool]]:
    verdicts, _ = verify_estimator(name, budget="quick", seed=3, compute_dtype=compute_dtype)
    return [(v.claim, v.verdict) for v in verdicts]


@pytest.mark.parametrize("name", FAST)
def test_float32_verdicts_agree_fast(name, matrix_row):
    """At the claim matrix row's seed, float32 evaluation reaches the row's verdicts (the float64 run of
    tests/test_claim_matrix.py, reused: conftest.matrix_row); every estimator: the slow test below."""
    verdicts, report = matrix_row(name)
    f32, _ = verify_estimator(name, budget="quick", seed=report.seed, compute_dtype=torch.float32)
    assert [(v.claim, v.verdict) for v in f32] == [(v.claim, v.verdict) for v in verdicts]


@pytest.mark.slow
@pytest.mark.parametrize("name", E.list())
def test_float32_verdicts_agree_on_every_estimator(name):
    assert _verdicts(name, torch.float32) == _verdicts(name, None)


def test_float32_same_draws_and_close_values(kt_seed):
    """Same stream (W drawn as usual, then rounded): estimates within float32 rounding of float64's, relative
    error ≤ 8·(D + d·max|log φ| + 1)·2⁻²⁴ for positive features (no cancellation: a sum of positive terms)."""
    est = E.get("positive/gaussian", dim=4, num_features=32)
    x, y = _pairs(kt_seed)
    a = est.sample_estimates(x, y, torch.Generator().manual_seed(kt_seed), 50)
    b = est.sample_estimates(x, y, torch.Generator().manual_seed(kt_seed), 50, compute_dtype=torch.float32)
    assert b.dtype == torch.float64 and est.float32_allowed
    fm = est.draw(torch.Generator().manual_seed(kt_seed), batch=50)
    log_max = max(float(fm.component.log_features(z, fm.w, {}, {}, "query")[0].abs().max()) for z in (x, y))
    tol = 8 * (est.feature_dim + 4 * log_max + 1) * 2.0**-24
    rel = ((b - a).abs() / a.abs()).max()
    assert 0 < float(rel) <= tol  # 0 would mean float32 was not used


def test_signed_maps_keep_float64(kt_seed):
    est = E.get("trig/gaussian", dim=4, num_features=32)
    x, y = _pairs(kt_seed)
    a = est.sample_estimates(x, y, torch.Generator().manual_seed(kt_seed), 20)
    b = est.sample_estimates(x, y, torch.Generator().manual_seed(kt_seed), 20, compute_dtype=torch.float32)
    assert not est.float32_allowed and torch.equal(a, b)


def test_overflow_falls_back_to_float64(kt_seed):
    """Inputs of norm 14 give exp features beyond float32's range (e^88): the chunk is redone in float64, so
    the estimates equal float64's exactly and are finite."""
    est = E.get("positive/gaussian", dim=4, num_features=16)
    x, y = _pairs(kt_seed, scale=7.0)
    a = est.sample_estimates(x, y, torch.Generator().manual_seed(kt_seed), 10)
    b = est.sample_estimates(x, y, torch.Generator().manual_seed(kt_seed), 10, compute_dtype=torch.float32)
    fm = est.draw(torch.Generator().manual_seed(kt_seed), batch=10)
    f32 = fm.component.features(x.float(), fm.w.float(), {}, {}, "query")
    assert not bool(torch.isfinite(f32).all()) or bool((f32 == 0).any())  # float32 alone would fail here
    assert torch.equal(a, b) and bool(torch.isfinite(b).all())


def test_compute_dtype_refuses_other_types():
    est = E.get("positive/gaussian", dim=4, num_features=8)
    x, y = _pairs(0)
    with pytest.raises(ValueError, match="compute_dtype"):
        est.sample_estimates(x, y, torch.Generator().manual_seed(0), 2, compute_dtype=torch.float16)


def test_evaluation_dtype_is_float32_only_where_allowed_and_for_float64_inputs():
    """The one rule sample_estimates and the claim matrix's rounding floors read."""
    pos, trig = E.get("positive/gaussian", 4, 8), E.get("trig/gaussian", 4, 8)
    assert pos.float32_allowed and not trig.float32_allowed
    assert pos.evaluation_dtype(torch.float64, torch.float32) == torch.float32
    assert pos.evaluation_dtype(torch.float64, None) == torch.float64
    assert pos.evaluation_dtype(torch.float64, torch.float64) == torch.float64
    assert pos.evaluation_dtype(torch.float32, torch.float32) == torch.float32
    assert trig.evaluation_dtype(torch.float64, torch.float32) == torch.float64
