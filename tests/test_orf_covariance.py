"""Covariances of one draw's estimates at pairs sharing the query, Cov(K̂(x, y_j), K̂(x, y_k)), for every registered
estimator: where :func:`key_covariance` answers, its diagonal is the estimator's claimed variance; where the law's
rows are dependent and no formula covers them, it refuses (#15: it used to return the iid formula for ORF)."""

import pytest
import torch

import kerneltheory.estimators as E
from kerneltheory.spectral.base import ClosedFormUnavailable
from kerneltheory.testing.attention_theory import key_covariance

F64 = torch.float64
DIM, M = 4, 6


def _inputs(g: torch.Generator, dim: int = DIM, nq: int = 2, n: int = 4, std: float = 0.4):
    q = torch.randn(nq, dim, generator=g, dtype=F64) * std
    k = torch.randn(n, dim, generator=g, dtype=F64) * std
    return q, k


def test_covariance_diagonal_is_the_claimed_variance_for_every_estimator(kt_generator):
    """For every registered estimator: key_covariance either refuses (ClosedFormUnavailable) or returns a symmetric
    [nq, n, n] tensor whose diagonal is estimator.variance (the same formula at y_k = y_j: equal up to rounding).
    Refusing is always allowed; returning the iid formula for dependent rows is what this catches."""
    q, k = _inputs(kt_generator)
    answered = []
    for name in E.list():
        est = E.get(name, DIM, M)
        try:
            cov = key_covariance(est, q, k)
        except ClosedFormUnavailable:
            continue
        answered.append(name)
        assert est.law.iid_rows, f"{name}: a covariance for dependent rows"
        assert cov.shape == (2, 4, 4) and bool(torch.isfinite(cov).all()), name
        var = est.variance(q, k).detach()
        cov = cov.detach()
        scale = 1e-12 * float(var.abs().max())  # rounding of sums of terms of the size of the variances
        torch.testing.assert_close(torch.diagonal(cov, dim1=-2, dim2=-1), var, rtol=1e-12, atol=scale, msg=name)
        torch.testing.assert_close(cov, cov.transpose(-1, -2), rtol=1e-12, atol=scale, msg=name)
    assert {"positive/gaussian", "trig/gaussian", "trig_phase/gaussian", "hyperbolic/gaussian", "oprf/gaussian",
            "poisrf/poisson"} <= set(answered)


@pytest.mark.parametrize("name", ["positive/orthogonal", "trig/orthogonal"])
def test_dependent_rows_without_a_formula_refuse(name, kt_generator):
    """ORF claims a variance (the exact one, proofs/orthogonal_variance.md) but its rows are dependent: the iid
    covariance formula does not apply and key_covariance refuses instead of returning it."""
    est = E.get(name, DIM, M)
    assert est.claims.variance and not est.law.iid_rows
    q, k = _inputs(kt_generator)
    with pytest.raises(ClosedFormUnavailable, match="not iid"):
        key_covariance(est, q, k)
