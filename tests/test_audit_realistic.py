"""Realistic user code under the audit: a Performer-style module ([B, H, L, d], float32, orthogonal frequencies
from the global generator, examples/performer_style.py) and samplers written against numpy's and Python's global
generators pass; realistic bugs (tests/_planted_realistic.py) fail or are refused, never pass; hostile outputs
(shape changes, overflow, a map of zeros, a negative constant) give a clear error or a failed row. Every
statistical check runs at a declared total false-failure rate α = 1e-6 on the test's seed (``kt_seed``).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from _planted_realistic import (
    ExclusiveCausal,
    MaskAfterNormalisation,
    MissingDiagAttention,
    MissingDiagFeatures,
    RedrawInForward,
    SeededFastAttention,
    SeededRedraw,
    ValuesOnlyMask,
)
from _rows import passed_or_unresolved
from performer_style import FastAttention, FeatureMap

from kerneltheory import kernels
from kerneltheory.testing import check_feature_map
from kerneltheory.testing.adapters import (
    attention_from_module,
    from_module,
    global_rng_sampler,
    module_frequencies,
    proportional_check,
)
from kerneltheory.testing.attention_audit import check_attention
from kerneltheory.testing.samplers import callable_sampler_checks

D, ALPHA = 8, 1e-6
CLAIMS = {"unbiased", "positive", "finite"}
KERNEL = kernels.input_scaled(kernels.softmax, D**-0.25)  # the module scales its inputs by d^(-1/4)
pytestmark = pytest.mark.usefixtures("one_thread")


# The modules of this file share one projection over their heads: one head is audited, head 1 of the default 2 (every
# head is audited by default, tests/test_module_adapters.py; these tests are about the defects of one head's map)
def audit_features(module, redraw="redraw_projection_matrix", seed=0):
    sample = from_module(module, layout="BHLd", redraw=redraw, query={"is_query": True}, key={"is_query": False},
                         head=1)
    return check_feature_map(sample, KERNEL, dim=D, claims=CLAIMS, alpha=ALPHA, seed=seed)


def attention(cls, causal=False):
    return attention_from_module(lambda m: cls(D, m, causal=causal), layout="BHLd", mask="mask", head=1)


def names(report, status) -> set[str]:
    return {c.name.split(":")[0] for c in report.checks if c.status == status}


@pytest.mark.statistical
def test_performer_feature_map_passes_and_its_bugs_fail(kt_seed):
    report = audit_features(FeatureMap(D), seed=kt_seed)
    assert report.passed, str(report)
    # a missing −‖x‖²/2
    report = audit_features(MissingDiagFeatures(D), "redraw_projection_matrix", seed=kt_seed)
    assert report.status == "FAILED" and report.failures[0].claim == "unbiased", str(report)
    # a redraw inside forward (every second call): the query and the key features of one draw need not share their
    # frequencies; the calls run seeded (a projection drawn lazily is replayed), so it is the call check that refuses
    with pytest.raises(ValueError, match="different features on 3 calls with one draw"):
        audit_features(RedrawInForward(D), seed=kt_seed)
    with pytest.raises(ValueError, match="left the map unchanged"):  # a redraw that reseeds: one fixed map
        audit_features(SeededRedraw(D), seed=kt_seed)
    with pytest.raises(ValueError, match="redraw=None"):  # a module never redrawn is one fixed map
        audit_features(FeatureMap(D), None, seed=kt_seed)


class FrozenParameterMap(torch.nn.Module):
    """Frequencies in an ``nn.Parameter(..., requires_grad=False)`` redrawn in place: not a learned parameter."""

    def __init__(self, m=64):
        super().__init__()
        self.omega = torch.nn.Parameter(torch.randn(m, D), requires_grad=False)

    def resample(self):
        with torch.no_grad():
            self.omega.normal_()

    def forward(self, x):
        return torch.exp(x @ self.omega.T - (x * x).sum(-1, keepdim=True) / 2) / self.omega.shape[0] ** 0.5


@pytest.mark.statistical
def test_frequencies_in_a_frozen_parameter(kt_seed):
    report = check_feature_map(from_module(FrozenParameterMap(), redraw="resample"), kernels.softmax, dim=D,
                               claims=CLAIMS, alpha=ALPHA, seed=kt_seed)
    assert report.passed, str(report)
    rows = callable_sampler_checks(module_frequencies(FrozenParameterMap(16), "omega", redraw="resample"),
                                   claims="gaussian", draws=512, seed=kt_seed, alpha=ALPHA, redraws=True)
    assert all(passed_or_unresolved(r) for r in rows), rows


@pytest.mark.statistical
def test_samplers_on_numpy_and_python_global_generators(kt_seed):
    numpy_rows = global_rng_sampler(lambda: np.random.randn(16, D))  # noqa: NPY002
    python_rows = global_rng_sampler(lambda: [[random.gauss(0.0, 1.0) for _ in range(D)] for _ in range(16)])
    for sample in (numpy_rows, python_rows):
        rows = callable_sampler_checks(sample, claims="gaussian", draws=1024, seed=kt_seed, alpha=ALPHA)
        assert all(passed_or_unresolved(r) for r in rows), rows
    cache = {}
    cached = global_rng_sampler(lambda: cache.setdefault("w", torch.randn(16, D)))  # the first draw, every time
    rows = {r.name.split(": ")[1]: r for r in callable_sampler_checks(cached, claims="gaussian", draws=256,
                                                                     seed=kt_seed, alpha=ALPHA)}
    # one correct draw repeated: its largest coordinate is a correct draw's (that row passes); every other row fails
    assert rows.pop("largest |coordinate|").passed, rows
    assert rows["norms independent of directions"].refused  # τ is undefined for a constant, not a pass
    assert all(r.status == "failed" for n, r in rows.items() if n != "norms independent of directions"), rows


@pytest.mark.filterwarnings("ignore:overflow encountered")  # numpy's norm of the 1e300 rows
def test_hostile_samplers_error_or_fail(kt_seed):
    def growing(g):
        return torch.randn(16 + int(torch.randint(0, 2, (1,), generator=g)), D, generator=g)

    with pytest.raises(ValueError, match="shape of the first"):
        callable_sampler_checks(growing, claims="gaussian", draws=256, seed=kt_seed)
    with pytest.raises(ValueError, match="list that is not"):
        callable_sampler_checks(lambda g: [[1.0, 2.0], [3.0]], claims="gaussian", draws=256, seed=kt_seed)
    with pytest.raises(ValueError, match="floating"):
        callable_sampler_checks(lambda g: torch.randint(0, 3, (16, D), generator=g), claims="gaussian", draws=256,
                                seed=kt_seed)
    huge = callable_sampler_checks(lambda g: 1e300 * torch.randn(16, D, generator=g, dtype=torch.float64),
                                   claims="gaussian", draws=256, seed=kt_seed)  # ‖z‖² overflows: a failed row
    assert {r.name.split(": ")[1] for r in huge if r.status == "failed"} >= {"norms ~ χ_d", "scale E‖z‖² = d"}


def prf(g, sign=1.0):
    w = torch.randn(64, D, generator=g, dtype=torch.float64)
    q = lambda x: torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / 8.0  # noqa: E731
    return q, (lambda x: sign * q(x))


@pytest.mark.statistical
def test_proportionality_needs_a_positive_constant(kt_seed):
    """E[t_p] = 0 holds for c = 0 and c < 0 too: the row "c > 0" fails a map of zeros and a negated side, and
    refuses a map whose products are noise of mean 0 (proofs/attention_audit.md, item 5)."""
    rows = lambda sample: {r.name: r for r in proportional_check(sample, kernels.softmax, dim=D, alpha=ALPHA,  # noqa: E731
                                                                 seed=kt_seed)}
    good = rows(prf)
    assert all(r.passed for r in good.values()), good
    negated = rows(lambda g: prf(g, -1.0))
    assert negated["proportional[c > 0]"].status == "failed", negated
    assert all(r.passed for n, r in negated.items() if n != "proportional[c > 0]")  # proportional, with c = −1
    coin = rows(lambda g: prf(g, float(torch.randint(0, 2, (1,), generator=g)) * 2 - 1))  # ± φ(x)ᵀφ(y), mean 0
    assert coin["proportional[c > 0]"].refused, coin
    zeros = check_feature_map(lambda g: (lambda x: torch.zeros(x.shape[0], 4, dtype=torch.float64)), kernels.softmax,
                              dim=D, claims={"proportional"}, alpha=ALPHA, seed=kt_seed)
    assert zeros.status == "FAILED" and "estimates 0" in zeros.failures[0].detail, str(zeros)
    nan = rows(lambda g: (lambda x: prf(g)[0](x) * float("nan")))
    assert all(r.status == "failed" for r in nan.values()), nan


# The slope rows are refused where the bound on their O(m⁻²) remainder exceeds the slope's standard error
# (proofs/attention_audit.md, item 13), and that bound grows with the inputs' largest ‖q̃ + k̃‖²: at the default
# input_std 0.3 the audit of this module refused a slope row at 3 of 100 seeds (causal and not: seeds 5000–5099)
# before the grid's extension (item 13(i)), at 1 of those 200 cases with it; at 0.25 at none of 100 (before it), so
# this test, which asserts a pass, reads the module at 0.25
PASS_INPUT_STD = 0.25


@pytest.mark.statistical
@pytest.mark.parametrize("causal", [False, True])
def test_performer_attention_passes(kt_seed, causal):
    report = check_attention(attention(FastAttention, causal), dim=D, causal=causal, alpha=ALPHA, seed=kt_seed,
                             checks=["consistency", "stabiliser", "padding"] + ["causality"] * causal,
                             input_std=PASS_INPUT_STD)
    assert report.passed, str(report)


def test_performer_attention_padding_bugs_fail(kt_seed):
    for cls in (ValuesOnlyMask, MaskAfterNormalisation):
        report = check_attention(attention(cls), dim=D, checks=["padding"], alpha=ALPHA, seed=kt_seed)
        assert report.status == "FAILED" and report.checks[0].statistic > 100, str(report)


@pytest.mark.statistical
def test_performer_attention_bias_and_seeding_bugs(kt_seed):
    missing = check_attention(attention(MissingDiagAttention), dim=D, checks=["consistency"], mask=False,
                              alpha=ALPHA, seed=kt_seed)
    assert missing.status == "FAILED", str(missing)  # exp(‖k̃‖²/2) is a per-key factor: it does not cancel
    seeded = check_attention(attention(SeededFastAttention), dim=D, checks=["consistency"], mask=False, alpha=ALPHA,
                             seed=kt_seed)
    assert seeded.status == "REFUSED" and "does not draw" in seeded.checks[0].detail, str(seeded)
    exclusive = check_attention(attention(ExclusiveCausal, causal=True), dim=D, causal=True, mask=False,
                                checks=["causality", "finite"], long_length=64, alpha=ALPHA, seed=kt_seed)
    assert names(exclusive, "failed") == {"finite[float32]", "finite[float64]"}, str(exclusive)
    # the 0/0 at position 0 is NaN in every run (at any long_length), and NaN equals NaN: the sums are causal
    # (exclusive, not leaking)
    assert names(exclusive, "passed") == {"causality"}, str(exclusive)


def test_attention_errors_name_the_call(kt_seed):
    wrong_dim = attention_from_module(lambda m: FastAttention(2 * D, m), layout="BHLd", mask="mask")
    with pytest.raises(ValueError, match=r"failed on q, k, v of shape \(1, 16, 8\).*is dim = 8.*RuntimeError"):
        check_attention(wrong_dim, dim=D, checks=["padding"], seed=kt_seed)
    no_mask = attention_from_module(lambda m: FastAttention(D, m), layout="BHLd")
    with pytest.raises(ValueError, match="mask=False to check_attention"):
        check_attention(no_mask, dim=D, checks=["padding"], seed=kt_seed)


def test_code_that_ignores_its_generator_is_an_error(kt_seed):
    """sample(generator) that calls torch.randn without generator= draws fresh values, but no seed replays them."""
    with pytest.raises(ValueError, match="identically seeded"):
        callable_sampler_checks(lambda g: torch.randn(16, D), claims="gaussian", draws=256, seed=kt_seed)

    def attention(m, g):
        fm = FastAttention(D, m)  # built outside global_rng: the global generator's current state
        return lambda q, k, v, mask=None: fm(q[:, None].float(), k[:, None].float(), v[:, None].float())[:, 0]

    with pytest.raises(ValueError, match="identically seeded"):
        check_attention(attention, dim=D, checks=["consistency"], seed=kt_seed)


@pytest.mark.statistical
def test_a_parameter_fitted_per_side_needs_sides_with_different_statistics(kt_seed):
    """FAVOR++ with one A per side (A from the queries for the queries, from the keys for the keys) is unbiased only
    where the two A agree: bound to queries and keys of different scales (docs/auditing.md, section 3, whose snippet
    passes the correct map at the same scales) it fails."""
    from oprf_style import OPRFFeatures

    from kerneltheory.testing.adapters import bind_statistics

    class PerSide(OPRFFeatures):
        def fit(self, q, k):
            OPRFFeatures.fit(self, q, q)
            self.a_q = self.a
            OPRFFeatures.fit(self, k, k)
            self.a_k = self.a
            return self

        def query(self, x):
            self.a = self.a_q
            return self._features(x)

        def key(self, x):
            self.a = self.a_k
            return self._features(x)

    g = torch.Generator().manual_seed(kt_seed)
    queries = 0.15 * torch.randn(32, D, generator=g, dtype=torch.float64)
    keys = 0.45 * torch.randn(32, D, generator=g, dtype=torch.float64)
    claims = {"unbiased"}
    # the correct OPRFFeatures passes at these statistics: the docs' snippet (tests/test_auditing_docs.py, slow tier)
    sample = bind_statistics(global_rng_sampler(lambda: PerSide(D, 64)), queries, keys, fit="fit")
    report = check_feature_map(sample, kernels.softmax, dim=D, claims=claims, alpha=ALPHA, seed=kt_seed, sweep=False)
    assert report.status == "FAILED", str(report)


def test_proportionality_holds_one_constant_across_families_and_refuses_unresolvable_pairs(kt_seed):
    """Review findings. (1) Each family was tested against its own first pair, so a map with c = 1 inside the built-in
    radius and c = 2 on the user's inputs passed every row: the row proportional[families] compares the families'
    constants. (2) A first pair whose kernel is far below the scale of its terms (‖x‖ = ‖y‖ = 4.5, antipodal:
    e^40.5) carried a floor of thousands of ĉ into every comparison of its family, and a map doubled there passed:
    the reference is now the best-conditioned pair, and pairs whose floors reach half of ĉ are left out of a pass
    (checks.unresolved_pairs, the mean rows' rule), the row refused when every pair is one."""
    g = torch.Generator().manual_seed(kt_seed)
    unit = lambda n: torch.nn.functional.normalize(torch.randn(n, D, generator=g, dtype=torch.float64), dim=-1)  # noqa: E731

    def doubled_beyond(radius):
        def sample(gen):
            q, _ = prf(gen)
            return lambda x: q(x) * torch.where(x.norm(dim=-1, keepdim=True) > radius, 2**0.5, 1.0)
        return sample

    rows = lambda sample, inputs: {r.name: r for r in proportional_check(  # noqa: E731
        sample, kernels.softmax, dim=D, alpha=ALPHA, seed=kt_seed, inputs=inputs)}
    outside = [(0.7 * unit(8), 0.7 * unit(8))]
    good = rows(lambda gen: prf(gen)[0], outside)
    # the user's pairs at ‖x‖ = 0.7 may be refused for tails too heavy for 4096 draws (a random-seed run met one):
    # never failed; the built-in families' rows and the constant across families pass
    assert not any(r.status == "failed" for r in good.values()), good
    assert all(r.passed for n, r in good.items() if n != "proportional[inputs[0]]"), good
    two = rows(doubled_beyond(0.55), outside)
    assert two["proportional[families]"].status == "failed", two
    assert all(r.passed for n, r in two.items() if n not in ("proportional[families]", "proportional[inputs[0]]")), two
    assert two["proportional[inputs[0]]"].status != "failed", two
    e1 = torch.zeros(1, D, dtype=torch.float64)
    e1[0, 0] = 4.5
    far = [(torch.cat([e1, 0.4 * unit(7)]), torch.cat([-e1, 0.4 * unit(7)]))]  # pair 0: k = e^-20.25, scale e^20.25
    hidden = rows(doubled_beyond(1.0), far)["proportional[inputs[0]]"]
    assert hidden.passed and "1 of 7 pairs left out" in hidden.detail and "pair 0" in hidden.detail, hidden
    assert hidden.detail.count("left out") == 1, hidden  # named once, by the floor rule
    # and check_feature_map's note names those pairs, wherever in the row's detail they are named (the note read the
    # detail's first part, which is ĉ's since mean_check names the pairs itself)
    report = check_feature_map(doubled_beyond(1.0), kernels.softmax, dim=D, claims={"proportional"}, alpha=ALPHA,
                               seed=kt_seed, inputs=far)
    note = next(n for n in report.notes if n.startswith("pairs left out of passes"))
    assert "proportional[inputs[0]]: 1 of 7 pairs left out" in note, note
    e2 = torch.zeros(1, D, dtype=torch.float64)
    e2[0, 1] = 4.5
    only_far = [(torch.cat([e1, e2]), torch.cat([-e1, -e2]))]
    refused = rows(doubled_beyond(1.0), only_far)["proportional[inputs[0]]"]
    assert refused.refused and "rounding floor of every pair reaches 0.5 of ĉ" in refused.detail, refused
