"""The claims positive, finite and proportional of check_feature_map, against defects a review built: the
proportional rows ignored ``bind`` and ``batched``, were tested on four moderate families only and named no domain;
positive and finite read 16 draws (and a batched sampler's first map of a batch only); the extreme points held the
first four axes only."""

import math
import re

import pytest
import torch

from kerneltheory import kernels
from kerneltheory.testing import check_feature_map
from kerneltheory.testing.inputs import extreme_points

D, M = 8, 64


def pf(x, w):
    return torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(M)


def frequencies(g):
    return torch.randn(M, D, generator=g, dtype=torch.float64)


def plain(g):
    w = frequencies(g)
    return lambda x: pf(x, w)


@pytest.mark.statistical
def test_proportional_tests_the_bound_map_and_the_selected_path(kt_seed):
    """bind returns the map that is evaluated: drawn frequencies bound into a correct map pass (the audit crashed),
    a bound map scaling the query features by 1 + ‖x‖ fails (the unbound map was tested and passed); batched=False
    draws through sample(generator) alone (a crash naming batched=False before)."""
    ok = check_feature_map(frequencies, kernels.softmax, dim=D, claims={"proportional"}, seed=kt_seed,
                           bind=lambda w, q, k: (lambda x: pf(x, w)))
    assert ok.passed, str(ok)
    bad = check_feature_map(plain, kernels.softmax, dim=D, claims={"proportional"}, seed=kt_seed,
                            bind=lambda fm, q, k: (lambda x: fm(x) * (1 + x.norm(dim=-1, keepdim=True)), fm))
    assert bad.status == "FAILED", str(bad)
    calls = []

    def both(g, batch=None):
        calls.append(batch)
        w = frequencies(g) if batch is None else torch.randn(batch, M, D, generator=g, dtype=torch.float64)
        return (lambda x: pf(x, w)) if batch is None else (lambda x: torch.exp(
            torch.einsum("nd,bmd->bnm", x, w) - (x * x).sum(-1)[None, :, None] / 2) / math.sqrt(M))

    one_path = check_feature_map(both, kernels.softmax, dim=D, claims={"proportional"}, seed=kt_seed, batched=False)
    assert one_path.passed and set(calls) == {None}, (str(one_path), set(calls))


@pytest.mark.statistical
def test_proportional_reads_the_spread_directions_and_names_its_domain(kt_seed):
    """At d = 12, key features doubled on the axes e_10 … e_12 (c = 2 there, 1 elsewhere), which no moderate family
    reaches (their axes pair e_i with e_{i+1} for i < 8), passed on the moderate families alone; the spread
    directions' axes ±e_i see it. A pass names where the ratio was tested."""
    d = 12

    def axis_defect(g):
        w = torch.randn(M, d, generator=g, dtype=torch.float64)

        def key(x):
            on_axis = (x[:, 9:].abs().amax(-1) >= 0.999 * x.norm(dim=-1)) & (x.norm(dim=-1) > 0)
            return pf(x, w) * torch.where(on_axis, 2.0, 1.0)[:, None]
        return (lambda x: pf(x, w), key)

    bad = check_feature_map(axis_defect, kernels.softmax, dim=d, claims={"proportional"}, seed=kt_seed)
    assert bad.status == "FAILED" and any("±e_i" in r.name for r in bad.failures), str(bad)
    good = check_feature_map(plain, kernels.softmax, dim=D, claims={"proportional"}, seed=kt_seed)
    assert good.passed and good.domain.startswith("‖x‖, ‖y‖ ≤ 0.5"), (str(good), good.domain)
    assert "proportional was tested at inputs with" in good.notes[-1]


def test_positive_and_finite_read_every_draw_of_the_statistical_checks(kt_seed):
    """One feature column negated on both sides in 1 draw of 64 (every estimate unchanged, so unbiased holds): the
    positive row read 16 draws and passed at 29 of 40 seeds; it now reads the 4096 draws of the unbiasedness check
    too (all it takes, up to 4096). Its detail says which draws it read."""
    def rare_negative(g):
        w = frequencies(g)
        flip = bool(torch.rand((), generator=g) < 1 / 64)

        def phi(x):
            f = pf(x, w)
            if flip:
                f = f.clone()
                f[:, 0] = -f[:, 0]
            return f
        return phi

    report = check_feature_map(rare_negative, kernels.softmax, dim=D, claims={"unbiased", "positive"}, seed=kt_seed)
    row = next(r for r in report.checks if r.claim == "positive")
    alone = next(r for r in check_feature_map(rare_negative, kernels.softmax, dim=D, claims={"positive"},
                                              seed=kt_seed).checks if r.claim == "positive")
    # the statistical draws add violations to those of the 16 property draws (which may hold none)
    assert row.status == "failed" and row.statistic > alone.statistic, (row, alone)
    ok = next(r for r in check_feature_map(plain, kernels.softmax, dim=D, claims={"unbiased", "positive", "finite"},
                                           seed=kt_seed).checks if r.claim == "positive")
    assert ok.passed and re.search(r"and of the \d+ draws of the statistical checks", ok.detail), ok


def test_every_map_of_a_batch_is_read_for_positive_and_finite(kt_seed):
    """A batched sampler filling only the first map of its batch (the others NaN): the property rows drew batch=1
    and passed; they now draw the batched path in one call of several maps."""
    def first_only(g, batch=None):
        r = 1 if batch is None else batch
        w = torch.randn(r, M, D, generator=g, dtype=torch.float64)

        def phi(x):
            f = torch.exp(torch.einsum("nd,bmd->bnm", x, w) - (x * x).sum(-1)[None, :, None] / 2) / math.sqrt(M)
            f[1:] = math.nan
            return f[0] if batch is None else f
        return phi

    report = check_feature_map(first_only, kernels.softmax, dim=D, claims={"positive", "finite"}, seed=kt_seed)
    assert {r.claim for r in report.failures} == {"positive", "finite"}, str(report)


def test_extreme_points_hold_every_axis():
    pts = extreme_points(D, torch.Generator().manual_seed(0))
    big = pts[pts.norm(dim=-1) > 9.99]
    on_axes = {int(i) for i in (big.abs() > 9.99).nonzero()[:, 1]}
    assert on_axes == set(range(D))
