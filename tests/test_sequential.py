"""Sequential testing (kerneltheory.testing.sequential): α holds for any stopping time, a clear defect is
rejected after a few hundred draws, a correct map uses the whole budget; batched samplers and bound maps."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from kerneltheory import kernels
from kerneltheory.montecarlo import block_seed
from kerneltheory.testing import check_feature_map
from kerneltheory.testing.planted import planted_map
from kerneltheory.testing.sequential import alpha_spending, looks, sequential_draws

D = 4


def test_looks_and_spending():
    assert looks(4096) == [256, 512, 1024, 2048, 4096]
    assert looks(100) == [100] and looks(4096, first=4096) == [4096]
    a = alpha_spending(1e-6, 5)
    assert math.isclose(sum(a), 1e-6) and math.isclose(a[-1], 0.8e-6) and all(x > 0 for x in a)
    assert alpha_spending(0.01, 1) == [0.01]
    with pytest.raises(ValueError, match="alpha"):
        alpha_spending(0.0, 3)
    with pytest.raises(ValueError, match="block"):
        list(sequential_draws(lambda g, r: torch.zeros(r, 1), 4096, seed=0, block=300))


def test_draws_are_a_prefix_of_the_full_run_and_use_the_engine_block_seeds():
    def est(g, r):
        return torch.randn(r, 3, generator=g, dtype=torch.float64)

    seen = list(sequential_draws(est, 1024, seed=7, block=256))
    assert [s.shape[0] for _, s in seen] == [256, 512, 1024]
    full = seen[-1][1]
    for _, s in seen:
        assert torch.equal(s, full[: s.shape[0]])
    assert torch.equal(full[256:512], est(torch.Generator().manual_seed(block_seed(7, 1)), 256))


@pytest.mark.statistical
def test_spent_levels_hold_alpha_over_all_looks(kt_seed):
    """Exactly normal estimates with known variance, five looks, stopping at the first rejection: over 400
    seeds at α = 0.05 the rejection rate is not significantly above α (the union bound over looks)."""
    from kerneltheory.testing.inputs import InputFamily
    from kerneltheory.testing.verify import run_mean_variance_checks

    fam = [InputFamily("f", torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64))]
    fails = 0
    for s in range(kt_seed, kt_seed + 400):
        groups = {"unbiased": dict(kind="mean", families=[0], alpha=0.05, target=torch.zeros(4, dtype=torch.float64),
                                   variance=torch.ones(4, dtype=torch.float64), prefix="u")}
        rows = run_mean_variance_checks(lambda g, r: torch.randn(r, 4, generator=g, dtype=torch.float64), fam,
                                        groups, draws=4096, block=256, seed=s)
        fails += rows["unbiased"][0].status == "failed"
    assert stats.binomtest(fails, 400, 0.05, alternative="greater").pvalue > 1e-3, fails


@pytest.mark.slow
@pytest.mark.statistical
def test_sequential_false_failure_rate_within_alpha(kt_seed):
    """60 seeds of a correct map at α = 0.05 over all looks and checks: not significantly above α."""
    fails = sum(
        not check_feature_map(good_batched, kernels.softmax, dim=D, claims={"unbiased"}, alpha=0.05, seed=s,
                              sweep=False).passed
        for s in range(kt_seed, kt_seed + 60)
    )
    assert stats.binomtest(fails, 60, 0.05, alternative="greater").pvalue > 1e-3, fails


def good_batched(g, batch=None):
    return planted_map("scale", 0.0, dim=D)(g, batch=batch)


@pytest.mark.statistical
@pytest.mark.parametrize("defect, size", [("scale", 0.02), ("norm law", 0.5)])
def test_clear_defects_are_rejected_early_and_correct_maps_use_the_budget(defect, size, kt_seed):
    bad = check_feature_map(planted_map(defect, size, dim=D), kernels.softmax, dim=D, claims={"unbiased"},
                            seed=kt_seed)
    assert bad.status == "FAILED"
    assert min(c.sample_size for c in bad.failures) <= 1024, str(bad)
    assert any(c.status == "stopped" for c in bad.checks)  # the other families were not run to the end
    ok = check_feature_map(good_batched, kernels.softmax, dim=D, claims={"unbiased"}, seed=kt_seed)
    assert ok.passed and all(c.sample_size == 4096 for c in ok.checks), str(ok)


def test_batched_sampler_is_called_once_per_block():
    calls = []

    def sample(g, batch=None):
        calls.append(batch)
        return planted_map("scale", 0.0, dim=D)(g, batch=batch)

    report = check_feature_map(sample, kernels.softmax, dim=D, claims={"unbiased"}, sweep=False)
    assert report.passed, str(report)
    assert set(calls) == {256} and len(calls) == 4096 // 256
    calls.clear()
    check_feature_map(sample, kernels.softmax, dim=D, claims={"unbiased"}, sweep=False, batched=False,
                      budget="quick")
    assert set(calls) == {None} and len(calls) == 4096


def _stabilised(g, m=64):
    """A data-dependent map: the query features are divided by exp(s) and the key features multiplied by it,
    with s = max‖x_q‖² over the sequence (a legal stabiliser: it cancels in φ(x)ᵀφ(y))."""
    w = torch.randn(m, D, generator=g, dtype=torch.float64)

    def base(x):
        return torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(m)

    def bound(queries, keys):
        s = float((queries * queries).sum(-1).max())
        return (lambda x: base(x) * math.exp(-s)), (lambda x: base(x) * math.exp(s))

    return bound


def test_bind_step_for_data_dependent_maps():
    report = check_feature_map(_stabilised, kernels.softmax, dim=D, claims={"unbiased", "positive"},
                               bind=lambda fm, q, k: fm(q, k), sweep=False)
    assert report.passed, str(report)
    with pytest.raises(TypeError, match="bind"):
        check_feature_map(_stabilised, kernels.softmax, dim=D, claims={"unbiased"}, bind=3)


def test_per_position_defect_is_seen_by_the_cross_family():
    report = check_feature_map(planted_map("per position", 0.05, dim=D), kernels.softmax, dim=D,
                               claims={"unbiased"}, sequential=False, sweep=False)
    assert any(c.name == "unbiased[cross]" for c in report.failures), str(report)
