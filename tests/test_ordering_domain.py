"""Ordering checks refuse, never pass, when what they order is outside its domain (#12): negative "variances"
(e.g. the single-block ORF leading term at m > d), NaN, ±inf, magnitudes whose squares overflow, formulas that
reject their parameters, and non-finite or huge sample moments."""

from __future__ import annotations

import math

import pytest
import torch

from kerneltheory import theory
from kerneltheory.testing.ordering import (
    HUGE,
    OrderingClaim,
    closed_form_ordering_check,
    domain_refusal,
    one_over_m_check,
    variance_ordering_check,
)

F64 = torch.float64
P = 5


def _ok(n: int = P) -> torch.Tensor:
    return torch.linspace(0.1, 0.5, n, dtype=F64)


def _with(value: float) -> torch.Tensor:
    t = _ok()
    t[2] = value
    return t


BAD = {"negative": -0.3, "nan": math.nan, "inf": math.inf, "-inf": -math.inf, "huge": 4.0 * HUGE}


@pytest.mark.parametrize("side", ["better", "worse"])
@pytest.mark.parametrize("kind", sorted(BAD))
@pytest.mark.parametrize("aggregate", ["pairs", "mean"])
def test_closed_form_check_refuses_out_of_domain_values(kind, side, aggregate):
    bad, good = _with(BAD[kind]), _ok() + 1.0  # "worse" larger everywhere: in-domain values would pass
    better, worse = (bad, good) if side == "better" else (_ok(), bad)
    row = closed_form_ordering_check(better, worse, name="x", aggregate=aggregate)
    assert row.refused and not row.passed, row
    if kind != "negative":  # log second moments may be negative, nothing else is allowed
        row = closed_form_ordering_check(better, worse, name="x", aggregate=aggregate, quantity="log")
        assert row.refused and not row.passed, row


def test_closed_form_check_accepts_in_domain_values():
    assert closed_form_ordering_check(_ok(), _ok() + 1, name="x").passed
    assert closed_form_ordering_check(_ok() - 5, _ok() - 4, name="x", quantity="log").passed  # negative logs
    rounding = _ok()
    rounding[0] = -1e-18  # below the rounding floor of values ≈ 0.5: a computed 0
    assert closed_form_ordering_check(rounding, _ok() + 1, name="x").passed
    assert domain_refusal(_ok(), quantity="variance") is None
    with pytest.raises(ValueError, match="quantity"):
        domain_refusal(_ok(), quantity="std")


@pytest.mark.parametrize("aggregate", ["pairs", "mean"])
def test_rows_that_compare_nothing_are_refused_not_passed(aggregate):
    """Review finding: where both sides are 0 at every pair (closed forms of exact estimators, or closed forms that
    underflowed; sample variances of estimators exact at every pair, e.g. positive features at x = y = 0) the row
    passed having compared nothing. It is refused; one pair that varies makes it a test again, and 0 against a
    positive value still fails the reversed claim."""
    zero = torch.zeros(P, dtype=F64)
    row = closed_form_ordering_check(zero, zero.clone(), name="x", aggregate=aggregate)
    assert row.refused and not row.passed and "orders nothing" in row.detail, row
    assert closed_form_ordering_check(zero, _with(0.3), name="x", aggregate=aggregate).passed
    assert closed_form_ordering_check(_with(0.3), zero, name="x", aggregate=aggregate).status == "failed"
    x = torch.zeros(3, 4, dtype=F64)
    exact = lambda g, r: torch.ones(r, 3, dtype=F64)  # noqa: E731
    row = variance_ordering_check(exact, exact, x, x, draws=512, seed=0, aggregate=aggregate)
    assert row.refused and not row.passed and "orders nothing" in row.detail, row

    def noisy(g, r):  # pair 1 varies
        out = torch.ones(r, 3, dtype=F64)
        out[:, 1] += torch.randn(r, generator=g, dtype=F64)
        return out

    assert variance_ordering_check(exact, noisy, x, x, draws=4096, seed=0, aggregate=aggregate).passed
    assert variance_ordering_check(noisy, exact, x, x, draws=4096, seed=0, aggregate=aggregate).status == "failed"


def test_a_reversal_below_the_largest_pairs_rounding_is_not_passed():
    """Review findings: one rounding floor for the whole row (scaled by its largest value) passed a 2-fold reversal at
    a pair of size 1 beside one of 10¹⁶ as "0 vs 0", and let a variance of −1 through beside it; each pair's closed
    form is computed from that pair alone. Such rows are refused (the reversal cannot be told from rounding of terms
    of 10¹⁶) unless another pair fails; alone, the pair fails. Complex values (sqrt of a negative argument) were read
    as their real parts and passed; arguments of another type or an unknown aggregate were unclear errors."""
    big = torch.tensor([1e16, 2.0], dtype=F64), torch.tensor([2e16, 1.0], dtype=F64)
    row = closed_form_ordering_check(*big, name="x")
    assert row.refused and not row.passed and "pair 1" in row.detail, row
    assert closed_form_ordering_check(big[0][1:], big[1][1:], name="x").status == "failed"
    assert closed_form_ordering_check(big[0], torch.tensor([0.5e16, 1.0], dtype=F64), name="x").status == "failed"
    assert closed_form_ordering_check(torch.tensor([1e16, 1.0], dtype=F64), torch.tensor([2e16, 2.0], dtype=F64),
                                      name="x").passed  # 1 ≤ 2 at pair 1: a true claim passes
    row = closed_form_ordering_check(torch.tensor([1e16, -1.0], dtype=F64), big[1], name="x")
    assert row.refused and "negative at pair 1" in row.detail, row
    for value in (torch.sqrt(torch.tensor([-4.0 + 0j])), torch.tensor([1.0 + 5j])):
        row = closed_form_ordering_check(value, torch.tensor([2.0 + 0j]), name="x")
        assert row.refused and "complex" in row.detail, row
    with pytest.raises(TypeError, match="better must be a torch.Tensor"):
        closed_form_ordering_check([1.0], torch.ones(1), name="x")
    with pytest.raises(ValueError, match="aggregate"):
        closed_form_ordering_check(_ok(), _ok() + 1, name="x", aggregate="sum")


def test_the_single_block_leading_term_at_m_above_d_is_refused():
    """Before the fix, orf_trig_variance_leading used (m−1)/m for m > d: at d = 4, m = 16 it was negative and
    "ORF ≤ iid" passed on it. A claim built on that formula is refused; the corrected one is ≥ 0 and passes."""
    d, m = 4, 16
    x = torch.zeros(40, d, dtype=F64)
    y = torch.zeros(40, d, dtype=F64)
    y[:, 0] = torch.linspace(0.05, 2.0, 40, dtype=F64)
    zeta2 = (y**2).sum(-1)
    iid = theory.gaussian_kernel_trig_variance(torch.exp(-zeta2 / 2), m)
    single_block = iid - (m - 1) / m * torch.exp(-zeta2) * zeta2**2 / (2 * d)
    assert float(single_block.min()) < 0
    old = OrderingClaim("old leading term", ("trig/orthogonal", m, {}), ("trig/gaussian", m, {}), "Yu et al.",
                        closed_form=lambda a, b: (single_block, iid))
    row = old.check(x, y)
    assert row.refused and not row.passed and "negative" in row.detail, row
    new = OrderingClaim("leading term", ("trig/orthogonal", m, {}), ("trig/gaussian", m, {}), "Yu et al.",
                        closed_form=lambda a, b: (theory.orf_trig_variance_leading(a, b, m), iid))
    assert new.check(x, y).passed


def test_claim_check_refuses_a_formula_outside_its_parameters_and_a_missing_one():
    x = torch.zeros(3, 2, dtype=F64)

    def rejects(a, b):
        return theory.oprf_optimal_a(torch.tensor(-1.0, dtype=F64), 2), _ok(3)

    c = OrderingClaim("bad parameters", ("positive/gaussian", 4, {}), ("positive/gaussian", 4, {}), "-",
                      closed_form=rejects)
    row = c.check(x, x)
    assert row.refused and not row.passed and "phi_bar" in row.detail, row
    none = OrderingClaim("none", ("positive/gaussian", 4, {}), ("positive/gaussian", 4, {}), "-")
    assert none.check(x, x).refused


def _constant(value: float, good: bool = False):
    """An estimates(generator, r) callable: N(0, 0.01) noise (variance 0.01), one pair set to ``value``."""

    def estimates(gen, r):
        out = 0.1 * torch.randn(r, P, generator=gen, dtype=F64)
        if not good:
            out[:, 2] = value * (1.0 + torch.rand(r, generator=gen, dtype=F64))
        return out

    return estimates


def _refused_or_raises(run, kind: str) -> None:
    """Non-finite estimates stop the moment engine with a ValueError (montecarlo.moments); finite but huge ones
    reach the check, which must refuse."""
    if kind in ("nan", "inf"):
        with pytest.raises(ValueError, match="non-finite"):
            run()
    else:
        row = run()
        assert row.refused and not row.passed and "sample moments" in row.detail, row


SAMPLE_BAD = {"nan": math.nan, "inf": math.inf, "huge": 1e100}


@pytest.mark.parametrize("kind", sorted(SAMPLE_BAD))
@pytest.mark.parametrize("side", ["better", "worse"])
@pytest.mark.parametrize("aggregate", ["pairs", "mean"])
def test_variance_ordering_check_refuses_non_finite_or_huge_samples(kind, side, aggregate, kt_seed):
    x = torch.zeros(P, 2, dtype=F64)
    bad, good = _constant(SAMPLE_BAD[kind]), _constant(0.0, good=True)
    better, worse = (bad, good) if side == "better" else (good, bad)
    _refused_or_raises(lambda: variance_ordering_check(better, worse, x, x, draws=512, seed=kt_seed,
                                                       aggregate=aggregate), kind)


@pytest.mark.parametrize("kind", sorted(SAMPLE_BAD))
def test_one_over_m_check_refuses_non_finite_or_huge_samples(kind, kt_seed):
    x = torch.zeros(P, 2, dtype=F64)
    _refused_or_raises(lambda: one_over_m_check(lambda m: _constant(SAMPLE_BAD[kind]), x, x, ms=(2, 4),
                                                draws=512, seed=kt_seed), kind)
