"""A check never passes vacuously (issue #12): non-finite, huge, negative and out-of-domain claims and maps.

Each test plants one way a check could pass without testing anything and asserts that it fails or refuses,
naming the pair where the claim breaks."""

from __future__ import annotations

import math
import re

import pytest
import torch
from scipy import stats

from kerneltheory import kernels, theory
from kerneltheory.montecarlo import Moments
from kerneltheory.testing import check_feature_map, checks
from kerneltheory.testing.checks import _bonferroni, mean_check, one_map, pair_rounding_floor, variance_check
from kerneltheory.testing.planted import planted_map
from kerneltheory.testing.seeds import seed_for
from kerneltheory.testing.sequential import Futility

D = 4


def good(g):
    return planted_map("scale", 0.0, dim=D)(g)


def broken(g):
    return planted_map("scale", 0.5, dim=D)(g)


def nan_at_one_pair(x, y):
    """The softmax kernel, but NaN at the first pair of every Gram matrix (one pair per family)."""
    k = kernels.softmax(x, y).clone()
    k[0, 0] = math.nan
    return k


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_target_fails_and_names_the_pair(bad):
    x = torch.randn(256, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.zeros(3, dtype=torch.float64)
    target[1] = bad
    res = mean_check(Moments.from_samples(x), target, alpha=1e-6, name="m", seed=0)
    assert not res.passed and res.status == "failed" and res.p_value == 0.0
    assert "pair 1" in res.detail and "target" in res.detail


def test_a_kernel_that_is_nan_at_one_pair_cannot_make_a_broken_map_pass():
    for sample in (good, broken):
        report = check_feature_map(sample, nan_at_one_pair, dim=D, claims={"unbiased"}, sweep=False)
        assert not report.passed and report.status == "FAILED"
        assert any("NaN" in c.detail or "nan" in c.detail for c in report.failures)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_claimed_variance_fails(bad):
    x = torch.randn(512, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    claimed = torch.tensor([1.0, bad], dtype=torch.float64)
    m = Moments.from_samples(x)
    for res in (variance_check(m, claimed, alpha=1e-6, name="v", seed=0, samples=x),
                mean_check(m, torch.zeros(2, dtype=torch.float64), alpha=1e-6, name="m", seed=0, variance=claimed,
                           samples=x)):
        assert res.status == "failed" and "pair 1" in res.detail and "variance" in res.detail


def test_clearly_negative_variance_fails_but_rounding_is_zero():
    x = torch.ones(512, 2, dtype=torch.float64)  # a deterministic estimate
    m = Moments.from_samples(x)
    eps = torch.finfo(torch.float64).eps
    res = variance_check(m, torch.tensor([-1e-3, 0.0], dtype=torch.float64), alpha=1e-6, name="v", seed=0, samples=x)
    assert res.status == "failed" and "negative" in res.detail and "pair 0" in res.detail
    # −ε is rounding of a zero variance (nearly coincident points): the pair is then checked exactly
    ok = variance_check(m, torch.tensor([-eps, 0.0], dtype=torch.float64), alpha=1e-6, name="v", seed=0, samples=x)
    assert ok.passed and ok.method == "exhaustive"
    x2 = x.clone()
    x2[0, 0] = 1.5  # but a pair that varies cannot have variance 0
    bad = variance_check(Moments.from_samples(x2), torch.tensor([-eps, 0.0], dtype=torch.float64), alpha=1e-6,
                         name="v", seed=0, samples=x2)
    assert bad.status == "failed"


def test_rounding_floor_is_per_pair_so_a_huge_pair_does_not_switch_off_the_others():
    # pair 0: a huge deterministic target; pair 1: a deterministic estimate that misses its target by 1e-6
    x = torch.tensor([[1e200, 1.0]], dtype=torch.float64).repeat(300, 1)
    target = torch.tensor([1e200, 1.0 + 1e-6], dtype=torch.float64)
    floor = pair_rounding_floor(target, x)
    assert float(floor[1]) < 1e-12 < float(floor[0])
    res = mean_check(Moments.from_samples(x), target, alpha=1e-6, name="m", seed=0, samples=x)
    assert not res.passed and "pair 1" in res.detail


def test_huge_user_input_pair_does_not_hide_a_defect():
    """An inputs= pair whose kernel is 1e173 sits beside the built-in families: a 2% scale error still fails."""
    big = torch.full((1, D), 10.0, dtype=torch.float64)
    report = check_feature_map(lambda g: planted_map("scale", 0.02, dim=D)(g), kernels.softmax, dim=D,
                               claims={"unbiased"}, inputs=[(big, big)], sweep=False)
    assert report.status == "FAILED"
    assert any(not c.name.startswith("unbiased[inputs") for c in report.failures)


def test_non_finite_estimates_fail_with_a_message_not_a_traceback():
    def nan_map(g):
        w = torch.randn(8, D, generator=g, dtype=torch.float64)
        return lambda x: torch.exp(x @ w.T) / (x.norm(dim=-1, keepdim=True) - x.norm(dim=-1, keepdim=True))

    report = check_feature_map(nan_map, kernels.softmax, dim=D, claims={"unbiased", "positive"}, sweep=False)
    assert report.status == "FAILED"
    assert any(c.method == "non-finite estimate" and "draw" in c.detail for c in report.failures)


def test_requires_grad_inputs_and_wrong_kernel_shape():
    x = torch.randn(3, D, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    report = check_feature_map(good, kernels.softmax, dim=D, claims={"unbiased"}, inputs=[(x / 4, x / 4)],
                               sweep=False)
    assert report.passed, str(report)
    with pytest.raises(ValueError, match="kernel"):
        check_feature_map(good, lambda a, b: kernels.softmax(a, b)[:, :1], dim=D, claims={"unbiased"})
    with pytest.raises(ValueError, match="variance"):
        check_feature_map(good, kernels.softmax, dim=D, claims={"variance"}, variance=lambda a, b: torch.ones(2))


def test_a_report_whose_only_problem_is_a_refusal_says_refused():
    """Lognormal-tailed estimates without a claimed variance: the mean check refuses; REFUSED, never PASSED."""

    def heavy(g):
        w = torch.randn(1, D, generator=g, dtype=torch.float64) * 3.0

        def phi(x):
            return torch.exp(x @ w.T - 4.5 * (x * x).sum(-1, keepdim=True))

        return phi

    report = check_feature_map(heavy, lambda a, b: torch.exp(9 * a @ b.T), dim=D, claims={"unbiased"},
                               sweep=False)
    assert not report.passed
    assert report.status == "REFUSED" and str(report).splitlines()[0].split(": ")[1].startswith("REFUSED")


def test_the_row_constructors_never_make_a_pass():
    """refusal, invalid_claim and certain_failure are the rows no draw decides: none of them is passed, and only
    the refusal is refused (a failure without a statistic still counts as a failure)."""
    base = dict(name="row", claim="unbiased", alpha=1e-3, sample_size=1, seed=0)
    rows = [checks.CheckResult.refusal("r", **base), checks.CheckResult.invalid_claim("i", **base),
            checks.CheckResult.certain_failure("non-finite estimate", "c", **base)]
    assert [r.passed for r in rows] == [False, False, False]
    assert [r.refused for r in rows] == [True, False, False]
    assert rows[2].p_value == 0.0 and rows[2].statistic == math.inf and rows[2].effect_size == math.inf


def test_a_variance_row_names_the_callers_pair_after_setting_aside_deterministic_ones(kt_generator):
    """Pair 0 is deterministic and claimed so (set aside before testing); the row must name pair 1 by its own index
    and label, as the mean check does, not by its position among the pairs left."""
    x = torch.randn(4096, 2, generator=kt_generator, dtype=torch.float64)
    x[:, 0] = 1.0
    row = variance_check(Moments.from_samples(x), torch.tensor([0.0, 0.5], dtype=torch.float64), alpha=1e-6,
                         name="variance", seed=0, samples=x, labels=["zero[0]", "zero[1]"])
    assert not row.passed and row.detail.startswith("worst pair 1 (zero[1])"), row.detail


def test_variance_claim_that_is_too_small_fails():
    """A variance claimed for twice the features (half the true variance) is rejected."""
    m = 32
    report = check_feature_map(
        lambda g: planted_map("scale", 0.0, dim=D, num_features=m)(g), kernels.softmax, dim=D,
        claims={"variance"}, variance=lambda x, y: theory.softmax_positive_variance(x[:, None], y[None], 2 * m),
        sweep=False,
    )
    assert report.status == "FAILED"


def test_p_values_fall_with_the_deviation_however_skewed():
    """The skewness factor is applied up to z_t = √n/(3c|γ|): beyond it the p-value keeps its value at z_t, so a
    larger deviation never gets a larger p-value (the one-term factor alone would turn p back up to 1)."""
    from kerneltheory.testing.pvalues import normal_p_values, p_value_floor

    z = torch.linspace(0.0, 400.0, 4001, dtype=torch.float64)
    for studentised in (False, True):
        g = torch.full_like(z, 7.0)
        p = normal_p_values(z, g, 4096, studentised=studentised)
        assert bool((p[1:] <= p[:-1]).all())
        k = 7.0 / ((3 if studentised else 6) * 64)
        z_t = 1 / (3 * k)  # derived: log p falls while z(3kz − 1) ≤ 0
        at_turn = 2 * math.exp(math.log(0.5 * math.erfc(z_t / math.sqrt(2))) + k * z_t**3)
        floor = p_value_floor(torch.tensor([7.0], dtype=torch.float64), 4096, studentised=studentised)
        assert math.isclose(float(floor), at_turn, rel_tol=1e-9)
        assert math.isclose(float(p[-1]), at_turn, rel_tol=1e-9)


def test_a_pair_the_normal_test_cannot_reject_never_passes():
    """Log-normal estimates: at 4096 draws the sample skewness of (x − x̄)² is so large that the normal test of s²
    could not reach 10⁻⁹ at any deviation. A claimed variance off by a factor 2 must then fail or be refused, never
    pass; the true variance is refused with the reason, not passed."""
    from kerneltheory.testing.checks import _skewness
    from kerneltheory.testing.pvalues import p_value_floor

    g = torch.Generator().manual_seed(11)
    x = torch.exp(1.3 * torch.randn(4096, 2, generator=g, dtype=torch.float64))
    n = x.shape[0]
    y = Moments.from_samples((x - x.mean(0)) ** 2 * (n / (n - 1)))
    assert bool((p_value_floor(_skewness(y), n, studentised=True) * 2 > 1e-9).all())  # the blind regime
    m = Moments.from_samples(x)
    true_var = torch.full((2,), math.exp(1.3**2) * (math.exp(1.3**2) - 1), dtype=torch.float64)
    for claimed in (true_var, 0.5 * true_var, 2.0 * true_var):
        row = variance_check(m, claimed, alpha=1e-9, name="v", seed=0, samples=x)
        assert not row.passed, row
    right = variance_check(m, true_var, alpha=1e-9, name="v", seed=0, samples=x)
    assert right.refused and "skewness of (x − x̄)²" in right.detail, right


def test_a_mean_check_that_cannot_reach_its_level_falls_back():
    """Gamma(0.2) draws pass the CLT guard at 4096 draws, but below the smallest p-value the skew-corrected
    normal test can give, no deviation could be rejected: without a claimed variance the row is then refused
    (saying why), with one it falls back to median of means (which at that level resolves nothing as large as the
    target, and says so); at 10⁻⁶ the normal test is used."""
    from kerneltheory.testing.checks import _skewness, clt_guard
    from kerneltheory.testing.pvalues import p_value_floor

    law = torch.distributions.Gamma(torch.tensor(0.2, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    with torch.random.fork_rng():  # Gamma samples only from the global generator: seed it without leaking the state
        torch.manual_seed(5)
        draws = law.sample((4096, 3))
    m = Moments.from_samples(draws)
    assert clt_guard(m)[0]
    target = variance = torch.full((3,), 0.2, dtype=torch.float64)  # Gamma(k, 1): mean = variance = k
    for studentised, extra in ((True, {}), (False, {"variance": variance})):
        level = float((p_value_floor(_skewness(m), 4096, studentised=studentised) * 3).min()) / 10
        row = mean_check(m, target, alpha=level, name="u", seed=0, samples=draws, **extra)
        if studentised:
            assert row.refused and "skewness is too large" in row.detail, row
        else:  # the median of means decides; at this level (≈ 10⁻⁶⁷) it resolves no deviation as large as the
            # target, so its pass is refused (item 3(b)), its detail the median's
            assert row.refused and "no pair resolves" in row.detail and "median −" in row.detail, row
    assert mean_check(m, target, alpha=1e-6, name="u", seed=0, samples=draws).method == "clt"


def test_without_skewness_the_p_value_floor_is_zero_and_false_variances_fail():
    """γ = 0 (a symmetric ±1 estimate has (x − x̄)² constant): the floor is 0, not NaN, so a variance claimed 4×
    too large is rejected, not refused."""
    from kerneltheory.testing.pvalues import p_value_floor

    assert p_value_floor(torch.zeros(3, dtype=torch.float64), 4096).tolist() == [0.0, 0.0, 0.0]
    g = torch.Generator().manual_seed(2)
    x = torch.where(torch.rand(4096, 2, generator=g, dtype=torch.float64) < 0.5, -1.0, 1.0)
    row = variance_check(Moments.from_samples(x), torch.full((2,), 4.0, dtype=torch.float64), alpha=1e-6, name="v",
                         seed=0, samples=x)
    assert row.status == "failed", row


def _scaled_run(shift: int, seed: int, mean: float = 0.0):
    """A mean and a variance check of skewed (exponential) estimates of 3 pairs, all multiplied by 2^shift."""
    from kerneltheory.testing.inputs import InputFamily
    from kerneltheory.testing.verify import run_mean_variance_checks

    fam = [InputFamily("f", torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64))]
    unit = torch.ldexp(torch.ones(3, dtype=torch.float64), torch.tensor(shift))
    groups = {
        "unbiased": dict(kind="mean", families=[0], alpha=1e-3, target=unit * (1.0 + mean), prefix="u"),
        "variance": dict(kind="variance", families=[0], alpha=1e-3, variance=unit * unit, prefix="v"),
    }

    def estimates(g, r):
        return torch.ldexp(torch.empty(r, 3, dtype=torch.float64).exponential_(generator=g), torch.tensor(shift))

    return run_mean_variance_checks(estimates, fam, groups, draws=4096, block=256, seed=seed)


@pytest.mark.parametrize("shift", [-500, -300, 300, 500])  # 2^(2·shift), the variance, still a float64
def test_rescaling_by_a_power_of_two_is_exact(shift):
    """Estimates, target and variance multiplied by 2^shift give the same statistics and verdicts as at scale 1
    (proofs/verification.md, item 11), also where float64 moments of the unscaled values would under- or overflow;
    at scale 1 (within 2^±40) nothing is rescaled."""
    for mean in (0.0, 0.2):  # a correct claim and a biased target
        ref = _scaled_run(0, seed=3, mean=mean)
        got = _scaled_run(shift, seed=3, mean=mean)
        for claim in ref:
            a, b = ref[claim][0], got[claim][0]
            same = ("status", "p_value", "statistic", "sample_size")
            assert [getattr(a, f) for f in same] == [getattr(b, f) for f in same]
            assert "units of" not in a.detail
            unit = int(re.search(r"units of 2\^(-?\d+)", b.detail).group(1))
            assert 0 <= unit - shift <= 8, b.detail  # the largest estimate, an Exp(1) draw times 2^shift, in [1/2, 1)
        assert ref["unbiased"][0].status == ("passed" if mean == 0.0 else "failed")


def test_the_unit_shown_is_that_of_the_pair_whose_numbers_are_shown():
    """Pairs at scales 2^100, 2^300, 2^450, each rescaled by its own power of two; the last pair has a biased target
    and a variance claimed twice too large, so it is the worst pair of both rows. The detail's unit for that pair
    turns the numbers it shows back into the pair's own (the mean of Exp(1) draws times 2^450, the variance times
    2^900); it used to name the unit of the first rescaled pair (2^100)."""
    from kerneltheory.testing.inputs import InputFamily
    from kerneltheory.testing.verify import run_mean_variance_checks

    shifts = torch.tensor([100, 300, 450])
    unit = torch.ldexp(torch.ones(3, dtype=torch.float64), shifts)
    fam = [InputFamily("f", torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64))]
    groups = {
        "unbiased": dict(kind="mean", families=[0], alpha=1e-3, target=unit * torch.tensor([1.0, 1.0, 1.5]),
                         prefix="u"),
        "variance": dict(kind="variance", families=[0], alpha=1e-3, variance=unit * unit * torch.tensor([1, 1, 2.0]),
                         prefix="v"),
    }

    def estimates(g, r):
        return torch.ldexp(torch.empty(r, 3, dtype=torch.float64).exponential_(generator=g), shifts)

    rows = run_mean_variance_checks(estimates, fam, groups, draws=4096, block=256, seed=0)
    for claim, shown, power in (("unbiased", r"mean (\S+)", 1), ("variance", r"s² (\S+)", 2)):
        row = rows[claim][0]
        assert row.status == "failed" and "worst pair 2 (f[2])" in row.detail, row
        named = re.search(r"at f\[2\] in units of 2\^(-?\d+)", row.detail) or re.search(r"units of 2\^(-?\d+)",
                                                                                          row.detail)
        k = int(named.group(1))
        value = float(re.search(shown, row.detail).group(1).rstrip(","))
        assert abs(math.log2(value) + power * k - power * 450) < 0.2, row.detail  # Exp(1): mean 1, variance 1


@pytest.mark.parametrize("scale", [1e-150, 1e150, 1e-250])
def test_tiny_and_huge_correct_maps_do_not_fail(scale):
    """A correct positive map whose estimates and kernel are multiplied by ``scale``: its moments under- or overflow
    float64 unscaled (at 1e-250 the sample variance was 0 and the check FAILED); it now passes, or is refused where
    the user's own features reach float64's subnormal range (the norm sweep at 1e-250), never FAILED."""
    root = math.sqrt(scale)

    def sample(g):
        fm = good(g)
        return lambda x: fm(x) * root

    report = check_feature_map(sample, lambda x, y: kernels.softmax(x, y) * scale, dim=D,
                               claims={"unbiased", "finite"}, seed=0)
    assert not report.failures, [c.detail for c in report.failures]
    assert report.passed or scale < 1e-200


def test_complex_features_are_refused_with_a_type_error():
    """exp(iωᵀx) features: their real part alone is not the map; the check says so instead of dropping the
    imaginary part with a warning."""

    def sample(g):
        w = torch.randn(8, D, generator=g, dtype=torch.float64)
        return lambda x: torch.exp(1j * (x @ w.T)) / math.sqrt(8)

    with pytest.raises(TypeError, match="complex features"):
        check_feature_map(sample, kernels.gaussian, dim=D, claims={"unbiased"}, seed=0)


def test_a_map_that_writes_into_its_input_cannot_move_the_tested_points():
    """A correct map that zeroes its input after use (in place) still passes: every call gets a copy of the
    points, so neither the other draws nor the norm sweep see the overwritten values."""

    def sample(g):
        fm = good(g)

        def fn(x):
            out = fm(x)
            x.zero_()
            return out

        return fn

    report = check_feature_map(sample, kernels.softmax, dim=D, claims={"unbiased"}, seed=0)
    assert report.passed, [c.detail for c in report.checks if not c.passed]


def test_a_loose_bound_cannot_overflow_into_a_pass():
    """Estimates near 1e-300 with a valid but loose bound 1e10 and a wrong target: the rescaling must not turn the
    bound into inf (whose NaN p-value read as 1, a pass); the exponent accounts for the bound, so the row fails."""
    from kerneltheory.testing.inputs import InputFamily
    from kerneltheory.testing.verify import run_mean_variance_checks

    fam = [InputFamily("f", torch.zeros(2, 1, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64))]
    full = lambda v: torch.full((2,), v, dtype=torch.float64)  # noqa: E731
    groups = {"unbiased": dict(kind="mean", families=[0], alpha=1e-6, target=full(2e-300), bound=full(1e10),
                               prefix="u")}

    def estimates(g, r):
        return (1 + 0.1 * torch.randn(r, 2, generator=g, dtype=torch.float64)) * 1e-300

    row = run_mean_variance_checks(estimates, fam, groups, draws=4096, block=256, seed=0)["unbiased"][0]
    assert row.status == "failed", row.detail


F64 = torch.float64


@pytest.mark.parametrize("bad", [math.nan, 1.5, -0.25, math.inf])
def test_bonferroni_never_reads_a_non_probability_as_a_pass(bad):
    """min(1, NaN·P) is 1 in Python: a NaN p-value read as a pass. Any value outside [0, 1] now gives NaN and the
    pair (proofs/verification.md, item 6(d))."""
    p, idx = _bonferroni(torch.tensor([0.5, 0.9, bad, 0.7], dtype=F64))
    assert math.isnan(p) and idx == 2
    assert _bonferroni(torch.tensor([0.5, 0.01], dtype=F64)) == (0.02, 1)


def _nan_at_pair_1(real):
    def patched(*args, **kwargs):
        p = real(*args, **kwargs).clone()
        p[1] = math.nan
        return p
    return patched


def test_a_nan_p_value_makes_the_mean_and_variance_checks_refuse(monkeypatch):
    """A p-value that came out NaN at pair 1 (before: a pass) refuses the row and names pair 1."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 3, generator=g, dtype=F64)
    m = Moments.from_samples(x)
    monkeypatch.setattr(checks, "normal_p_values", _nan_at_pair_1(checks.normal_p_values))
    row = mean_check(m, torch.zeros(3, dtype=F64), alpha=1e-6, name="m", seed=0, samples=x, labels=["a", "b", "c"])
    assert row.status == "refused" and "pair 1 (b)" in row.detail and "not a probability" in row.detail, row
    row = variance_check(m, torch.ones(3, dtype=F64), alpha=1e-6, name="v", seed=0, samples=x)
    assert row.status == "refused" and "pair 1" in row.detail, row


def test_an_infinite_bound_is_no_bound_and_a_nan_bound_no_claim():
    """An infinite declared bound made Hoeffding's p-value inf/inf = NaN, which PASSED a mean 0.5 off its target
    (|z| ≈ 60), and gave the variance check a vacuous exact test that PASSED s² ≈ 64 against a claimed 1 at pairs
    whose tails are too heavy for the normal test; it now means no bound. A NaN or negative bound is not a bound:
    the check fails it as an invalid claim (proofs/verification.md, item 9)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 3, generator=g, dtype=F64) * 0.1 + 0.5
    mx = Moments.from_samples(x)
    inf = torch.full((3,), math.inf, dtype=F64)
    row = mean_check(mx, torch.zeros(3, dtype=F64), alpha=1e-6, name="m", seed=0, bound=inf, samples=x)
    assert row.status == "failed" and row.method == "clt", row
    heavy = torch.exp(1.5 * torch.randn(4096, 3, generator=g, dtype=F64))  # lognormal: Var = (e^2.25 − 1)e^2.25 ≈ 81
    row = variance_check(Moments.from_samples(heavy), torch.ones(3, dtype=F64), alpha=1e-6, name="v", seed=0,
                         samples=heavy, bound=inf)
    assert not row.passed, row
    for bad in (math.nan, -1.0):
        b = torch.tensor([1.0, bad, 1.0], dtype=F64)
        row = mean_check(mx, torch.full((3,), 0.5, dtype=F64), alpha=1e-6, name="m", seed=0, bound=b, samples=x)
        assert row.method == "invalid claim" and "pair 1" in row.detail, row
        row = variance_check(mx, torch.full((3,), 0.01, dtype=F64), alpha=1e-6, name="v", seed=0, samples=x, bound=b)
        assert row.method == "invalid claim" and "pair 1" in row.detail, row


def test_draws_that_are_all_equal_do_not_refute_a_positive_variance():
    """Review finding: at a rare-event pair (binning features, P(estimate ≠ 0) ≈ 6e-5) every one of 256 draws is 0,
    and the variance check failed s² = 0 against the claimed 6.4e-5, although a law with nearly all of its mass on one
    value gives that with probability ≈ 0.98 (at 4096 draws, ≈ 0.77). Without a bound the pair is untested (the row
    refused if nothing else rejects); a claim of 0 is met."""
    from kerneltheory.montecarlo import Moments
    from kerneltheory.testing.checks import variance_check

    x = torch.zeros(4096, 2, dtype=torch.float64)  # pair 0 all zero; pair 1 N(0, 1), enough draws to test it
    x[:, 1] = torch.randn(4096, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    claimed = torch.tensor([6.4e-5, 1.0], dtype=torch.float64)
    row = variance_check(Moments.from_samples(x), claimed, alpha=1e-6, name="v", seed=0, samples=x)
    assert row.refused and "same estimate" in row.detail, row.detail
    wrong = variance_check(Moments.from_samples(x), torch.tensor([6.4e-5, 4.0], dtype=torch.float64), alpha=1e-6,
                           name="v", seed=0, samples=x)
    assert wrong.status == "failed", wrong.detail  # the other pair's claim is off by 4×: still a failure
    met = variance_check(Moments.from_samples(x), torch.tensor([0.0, 1.0], dtype=torch.float64), alpha=1e-6,
                         name="v", seed=0, samples=x)
    assert met.passed, met.detail


def test_an_untested_constant_pair_names_the_variance_refusal_wherever_it_is():
    """variance_check read the first untested pair alone: heavy tails there labelled the refusal a want of evidence
    (no_evidence, which a norm-sweep row may leave out of a report) while a later pair's draws were all equal, a sign
    of a map that does not draw (a review finding). The constant pair now names the refusal in either order."""
    g = torch.Generator().manual_seed(0)
    heavy = torch.exp(2.5 * torch.randn(2048, generator=g, dtype=torch.float64))  # lognormal(0, 2.5²)
    claimed_heavy = float((math.exp(2 * 6.25) - 1) * math.exp(6.25))  # its exact variance
    const = torch.ones(2048, dtype=torch.float64)
    for cols, claimed, at in (([heavy, const], [claimed_heavy, 1.0], 1), ([const, heavy], [1.0, claimed_heavy], 0)):
        x = torch.stack(cols, 1)
        row = variance_check(Moments.from_samples(x), torch.tensor(claimed, dtype=torch.float64), alpha=1e-7,
                             name="variance[‖x‖ = ‖y‖ = 1]", seed=0, samples=x)
        assert row.refused and not row.no_evidence, row.detail
        assert f"at pair {at} every one of the 2048 draws gave the same estimate" in row.detail, row.detail
    x = heavy[:, None]  # the heavy pair alone: a want of evidence, which a swept row may leave out
    row = variance_check(Moments.from_samples(x), torch.tensor([claimed_heavy], dtype=torch.float64), alpha=1e-7,
                         name="variance[‖x‖ = ‖y‖ = 1]", seed=0, samples=x)
    assert row.refused and row.no_evidence and "sixth and eighth moments too large" in row.detail, row.detail



def _regions(x):
    """ψ(x): feature 0 covers the inputs with x₁ ≥ 0, feature 1 those with x₁ < 0."""
    up = (x[:, :1] >= 0).to(x.dtype)
    return torch.cat([up * torch.exp(x[:, :1]), (1 - up) * torch.exp(-x[:, :1])], 1) / 2


def _sparse_sample(keep=1e-5, factor=1.0, frozen=False, dtype=torch.float64, tilt=1.0):
    """A sparse map: φ = ψ·√(W, B/p)·√factor with W ~ Exp(1) and B ~ Bernoulli(p) shared by queries and keys, so
    φ(x)ᵀφ(y) = W ψ₀(x)ψ₀(y) + (B/p) ψ₁(x)ψ₁(y) is unbiased for ψ(x)ᵀψ(y) (times ``factor``). Feature 1 is kept with
    probability p = 1e-5: at a pair with x₁, y₁ < 0 the estimate is 0 except on that rare event, while feature 0's
    pairs vary. ``frozen``: W = B/p = 1 at every draw, a deterministic map. ``dtype``: the features' dtype.
    ``tilt``: a factor on feature 0's weight alone (the map is then not proportional to ψ(x)ᵀψ(y))."""

    def sample(g):
        u = torch.rand(2, generator=g, dtype=torch.float64)
        weights = torch.ones(2, dtype=torch.float64) if frozen else torch.stack([-torch.log1p(-u[0]),
                                                                                  (u[1] < keep) / keep])
        tilted = weights * torch.tensor([tilt, 1.0], dtype=torch.float64)
        return lambda x: (_regions(x) * (tilted * factor).sqrt()).to(dtype)

    return sample


def _sparse_kernel(x, y):
    return _regions(x) @ _regions(y).T


def _sparse_variance(keep=1e-5):
    def variance(x, y):  # Var W = 1, Var(B/p) = (1 − p)/p, independent
        a, b = _regions(x), _regions(y)
        return (a * a * torch.tensor([1.0, (1 - keep) / keep], dtype=torch.float64)) @ (b * b).T

    return variance

def test_agreeing_draws_of_a_rare_event_are_no_evidence_against_the_mean(kt_seed):
    """Found case: draws that all agree off their target counted as exact (z = ∞), so an unbiased estimate that is
    one value except on a rare event was FAILED whenever no draw hit the event: Bernoulli(6e-5) beside Bernoulli(½),
    4096 draws, α = 1e-6, at 146 of the seeds 0–199, with its claimed variance, without it, or with the bound 1
    (proofs/verification.md, item 3a). Such a pair is now untested without a claimed variance (the row refused,
    naming it), and with one takes Cantelli's (σ²/(σ² + d²))ⁿ, which keeps a deterministic pair off its target
    (claimed variance 0) and a map that ignores its generator (every draw one estimate a standard deviation off)
    failed."""
    p = torch.tensor([6e-5, 0.5], dtype=torch.float64)
    claims = ({}, dict(variance=p * (1 - p)), dict(bound=torch.ones(2, dtype=torch.float64)))
    agreeing = 0
    for s in range(40):
        g = torch.Generator().manual_seed(seed_for(f"rare {s}", kt_seed))
        x = (torch.rand(4096, 2, generator=g, dtype=torch.float64) < p).to(torch.float64)
        agreeing += int(bool((x[:, 0] == 0).all()))
        for kw in claims:
            row = mean_check(Moments.from_samples(x), p, alpha=1e-6, name="m", seed=s, samples=x, **kw)
            assert row.status != "failed", (s, kw, row.detail)
            if not kw and bool((x[:, 0] == 0).all()):
                assert row.refused and not row.no_evidence and "at pair 0 every one of the 4096 draws" in row.detail
    assert agreeing >= 10, agreeing  # P(no event in 4096 draws) = 0.78: the found case is exercised, not vacuous
    x = torch.zeros(4096, 2, dtype=torch.float64)
    x[:, 1] = torch.randn(4096, generator=torch.Generator().manual_seed(kt_seed), dtype=torch.float64)
    m = Moments.from_samples(x)
    target = torch.tensor([1e-3, 0.0], dtype=torch.float64)
    # power kept where a claim makes agreement evidence: a claimed variance 0 (a deterministic pair off its target) ...
    row = mean_check(m, target, alpha=1e-6, name="m", seed=0, samples=x,
                     variance=torch.tensor([0.0, 1.0], dtype=torch.float64), carry_without_variance=False)
    assert row.status == "failed" and row.p_value == 0.0 and "Cantelli" in row.detail, row.detail
    # ... and a map that ignores its generator: every draw the same estimate, one claimed standard deviation off
    row = mean_check(m, target, alpha=1e-6, name="m", seed=0, samples=x,
                     variance=torch.tensor([1e-6, 1.0], dtype=torch.float64))
    assert row.status == "failed" and row.p_value < 1e-300, row.detail
    assert row.without_variance.refused, row.without_variance.detail  # without the variance: no evidence either way
    # a variance that makes agreement likely is no evidence: 4096 draws all 0 under mean 1e-3 and variance 1e-3 (the
    # row is refused rather than passed: with that variance no pair resolves an effect as large as 1e-3, item 3(b))
    row = mean_check(m, target, alpha=1e-6, name="m", seed=0, samples=x,
                     variance=torch.tensor([1e-3, 1.0], dtype=torch.float64))
    assert row.status != "failed", row.detail
    # the exact p-value 2(σ²/(σ² + d²))ⁿ, d the distance beyond the rounding floor, at the pair and for the row
    row = mean_check(m, target, alpha=1e-6, name="m", seed=0, samples=x, atol=torch.zeros(2, dtype=torch.float64),
                     variance=torch.tensor([1e-4, 1.0], dtype=torch.float64))
    expected = 2 * (1e-4 / (1e-4 + 1e-6)) ** 4096
    assert row.pair_p[0].item() == pytest.approx(expected, rel=1e-9), (row.pair_p, expected)
    # a declared bound B tests such a pair exactly (Markov: all n draws d below K under |X| ≤ B has probability
    # ≤ ((B + |K|)/(B + |K| + d))ⁿ): one 10 % off with a loose bound 10 fails (it passed on Hoeffding and Bernstein
    # alone, a review finding), while the rare-event pairs above pass with the bound 1
    const = torch.stack([torch.full((4096,), 0.5, dtype=torch.float64), x[:, 1]], 1)
    row = mean_check(Moments.from_samples(const), torch.tensor([0.55, 0.0], dtype=torch.float64), alpha=1e-6,
                     name="m", seed=0, samples=const, bound=torch.tensor([10.0, 10.0], dtype=torch.float64))
    markov = 2 * (10.55 / 10.6) ** 4096  # Bonferroni with the CLT half of "bounded + clt": twice it
    assert row.status == "failed" and row.pair_p[0] == pytest.approx(2 * markov, rel=1e-6), row
    # atoms=False declares a law without atoms off the target (a continuous or deterministic one): agreement is a bias
    row = mean_check(m, target, alpha=1e-6, name="m", seed=0, samples=x, atoms=False)
    assert row.status == "failed" and math.isinf(row.statistic) and not row.certain, row
    assert one_map(x[:, :1]) and not one_map(x) and not one_map(torch.full((4, 1), math.nan, dtype=torch.float64))
    with pytest.raises(TypeError, match="atoms"):
        mean_check(m, target, alpha=1e-6, name="m", seed=0, samples=x, atoms="no")
    # the level where Cantelli is tight: a two-point law of mean 0, value 1 except with probability ε, has
    # σ²/(σ² + 1) = 1 − ε, so all n draws agree with probability (1 − ε)ⁿ = p/2; at α' = 0.05 with (1 − ε)ⁿ = 0.4α'
    # every agreeing sample (20 expected) is rejected and the rate stays below α' (one-sided binomial bound at 1e-6)
    n, runs, level = 256, 1000, 0.05
    eps = 1 - (0.4 * level) ** (1 / n)
    var = torch.tensor([(1 - eps) / eps], dtype=torch.float64)
    g = torch.Generator().manual_seed(seed_for("two-point", kt_seed))
    rejected = agreed = 0
    for s in range(runs):
        hit = torch.rand(n, 1, generator=g, dtype=torch.float64) < eps
        x = torch.where(hit, -(1 - eps) / eps, 1.0)
        row = mean_check(Moments.from_samples(x), torch.zeros(1, dtype=torch.float64), alpha=level, name="m", seed=s,
                         samples=x, variance=var, carry_without_variance=False)
        rejected += row.status == "failed"
        if not bool(hit.any()):
            agreed += 1
            assert row.status == "failed" and row.p_value == pytest.approx(0.8 * level, rel=1e-6), row
    assert agreed > 0 and rejected <= stats.binom.isf(1e-6, runs, level), (rejected, agreed)



def test_a_correct_sparse_map_is_never_failed(kt_seed):
    """An unbiased map that is 0 except on a rare event at some pairs (feature 1 kept with probability 1e-5: at the
    pairs with x₁, y₁ < 0 even 4096 draws are all 0 with probability 0.96) and varies at the others: with the earlier
    rule the rows holding such a pair were FAILED. They are refused (no claimed variance, or one that the all-zero
    draws cannot confirm), never failed; the same map off by a factor 2 still fails, and a map whose every draw is
    the same function is still tested as deterministic (proofs/verification.md, item 3a)."""
    zero_runs = 0
    for s in range(2):
        seed = seed_for(f"sparse {s}", kt_seed)
        for claims, variance, dtype in (({"unbiased"}, None, torch.float64),
                                        ({"unbiased", "variance"}, _sparse_variance(), torch.float64),
                                        ({"unbiased"}, None, torch.float32)):  # float32 rounding of 0 is no spread
            report = check_feature_map(_sparse_sample(dtype=dtype), _sparse_kernel, dim=D, claims=claims,
                                       variance=variance, seed=seed, sweep=False)
            assert not report.failures, [c.detail for c in report.failures]
            zero_runs += any("every one of the" in c.detail and "gave 0" in c.detail
                             for c in report.checks + [c.without_variance for c in report.checks
                                                       if c.without_variance is not None])
    assert zero_runs >= 1  # the found case (every draw 0 at a pair) is exercised
    double = check_feature_map(_sparse_sample(factor=2.0), _sparse_kernel, dim=D, claims={"unbiased"}, seed=kt_seed,
                               sweep=False)
    assert double.status == "FAILED", str(double)
    frozen = check_feature_map(_sparse_sample(factor=1.01, frozen=True), _sparse_kernel, dim=D, claims={"unbiased"},
                               seed=kt_seed, sweep=False)  # deterministic, 1 % off
    assert frozen.status == "FAILED" and not frozen.refusals, str(frozen)  # tested as the deterministic map it is
    # the proportionality rows: a rare pair was the reference, or was differenced against a varying one, and the
    # correct sparse map FAILED its proportional claim (a review finding); such pairs are now left out of the
    # differences (the row refused where one disagrees with the reference). A deterministic map that is not
    # proportional still fails
    for s in range(2):
        report = check_feature_map(_sparse_sample(), _sparse_kernel, dim=D, claims={"proportional"},
                                   seed=seed_for(f"sparse proportional {s}", kt_seed), sweep=False)
        assert not report.failures, [c.detail for c in report.failures]
    tilted = check_feature_map(_sparse_sample(frozen=True, tilt=1.5), _sparse_kernel, dim=D, claims={"proportional"},
                               seed=kt_seed, sweep=False)
    assert tilted.status == "FAILED", str(tilted)

    def masked(g):  # feature 1 zeroed at every draw (a mask bug): 0 where x₁, y₁ < 0 although k > 0
        w = -torch.log1p(-torch.rand(1, generator=g, dtype=torch.float64))
        return lambda x: _regions(x) * torch.cat([w.sqrt(), torch.zeros(1, dtype=torch.float64)])

    # a random map wrong only at pairs that agree is refused, not failed (power given up: a rare event can make those
    # pairs agree), and never passed
    bug = check_feature_map(masked, _sparse_kernel, dim=D, claims={"proportional"}, seed=kt_seed, sweep=False)
    assert not bug.passed and not bug.failures, str(bug)


def test_rounding_jitter_far_below_the_target_is_no_evidence_and_no_early_accept(kt_seed):
    """Review findings on the agreeing-draws rule: draws of 1e-3 with one draw an ulp above it (a pair the guard reads
    as tail-free, spread beyond its own floor) against the target 1 got |z| = √n, and rounding jitter of 0.5 against
    the target 1000, skewed enough that the normal test could not reject it, was passed and accepted early. Both are
    draws with no spread at their own scale: refused where the law may have an atom, failed where it may not."""
    x = torch.full((4096, 2), 1e-3, dtype=torch.float64)
    x[7, 0] += 1e-16
    x[:, 1] = torch.randn(4096, generator=torch.Generator().manual_seed(kt_seed), dtype=torch.float64)
    target = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert mean_check(Moments.from_samples(x), target, alpha=1e-6, name="m", seed=0, samples=x).refused
    assert mean_check(Moments.from_samples(x), target, alpha=1e-6, name="m", seed=0, samples=x,
                      atoms=False).status == "failed"
    g = torch.Generator().manual_seed(seed_for("jitter", kt_seed))
    futility = Futility(final_draws=4096, final_alpha=1e-6, margin=0.5)
    for n, share in ((256, 0.15), (4096, 0.01)):
        x = torch.empty(n, 2, dtype=torch.float64)
        x[:, 1] = torch.randn(n, generator=g, dtype=torch.float64)
        x[:, 0] = 0.5 + (torch.rand(n, generator=g, dtype=torch.float64) < share).to(torch.float64) * 1.6e-14
        row = mean_check(Moments.from_samples(x), torch.tensor([1e3, 0.0], dtype=torch.float64), alpha=1e-6,
                         name="m", seed=0, samples=x, futility=futility)
        assert row.refused and not row.accepted_early, row


def test_one_map_is_judged_on_the_whole_budget():
    """Review finding: "every pair agreed at every draw" (checks.one_map, a deterministic map) was judged at every
    look, so an unbiased map that is 0 except on one rare event shared by every pair was FAILED at the first look
    (256 draws all 0) although its event came later. It is judged on the whole budget now: here the event falls at
    draw 1000, the map is no longer one function, and its rows are never failed; a map 0 at every draw is."""
    from kerneltheory.testing.inputs import InputFamily
    from kerneltheory.testing.verify import run_mean_variance_checks

    fams = [InputFamily("a", torch.zeros(2, 4), torch.zeros(2, 4)),
            InputFamily("b", torch.ones(2, 4), torch.ones(2, 4))]
    target = torch.full((4,), 1e-3, dtype=torch.float64)

    def run(event):
        def estimates(gen, r):
            z = torch.zeros(r, 4, dtype=torch.float64)
            if event and estimates.drawn <= 1000 < estimates.drawn + r:
                z[1000 - estimates.drawn] = 4.096  # unbiased over the 4096 draws: 4.096/4096 = 1e-3
            estimates.drawn += r
            return z

        estimates.drawn = 0
        group = dict(kind="mean", claim="unbiased", alpha=1e-6, target=target, families=[0, 1], prefix="unbiased",
                     scale=target.abs())
        return run_mean_variance_checks(estimates, fams, {"unbiased": group}, draws=4096, block=256, seed=0)["unbiased"]

    rows = run(True)
    assert all(r.status != "failed" for r in rows), rows
    assert all(r.status == "failed" and math.isinf(r.statistic) for r in run(False))


def _mean_row(x, target, **kw):
    return mean_check(Moments.from_samples(x), target, alpha=1e-6, name="m", seed=0, samples=x, **kw)


def test_a_row_of_zero_targets_resolves_the_magnitude_it_is_given(kt_seed):
    """A row whose targets are all 0 by construction (a difference of two estimates of one quantity: the
    proportionality rows' ratios, the attention audit's bias row) had no magnitude to be blind against, so any noise
    passed it (review finding: ratios 2 ± 30 differenced against a reference 1 ± 0.01 PASSED `proportional`).
    ``magnitude`` gives the size a pass must resolve there (proofs/verification.md, item 3(b)): noise that hides it
    is refused, naming it; noise well below it passes; without it the row keeps its documented gap."""
    g = torch.Generator().manual_seed(seed_for("zero targets", kt_seed))
    zero = torch.zeros(4, dtype=torch.float64)
    noisy = 30 * torch.randn(2048, 4, generator=g, dtype=torch.float64)
    named = dict(magnitude=1.0, magnitude_of="ĉ, the ratios' mean")
    assert _mean_row(noisy, zero).passed  # nothing to resolve without a magnitude (the gap a caller closes)
    row = _mean_row(noisy, zero, **named)
    assert row.refused and row.no_evidence, row
    assert "no pair resolves an effect as large as ĉ, the ratios' mean where its target is 0" in row.detail, row
    assert _mean_row(noisy / 3000, zero, **named).passed  # an SE of 2e-4 resolves 1
    assert _mean_row(noisy / 3000 + 0.01, zero, **named).status == "failed"
    # one magnitude per pair: the resolved pair speaks, the blind one is named as left out
    row = _mean_row(torch.cat([noisy[:, :1] / 3000, noisy[:, 1:]], 1), zero,
                    magnitude=torch.tensor([1.0, 1.0, 1.0, 1.0]), magnitude_of="ĉ")
    assert row.passed and "3 of 4 pairs" in row.detail, row
    for bad in (0.0, -1.0, math.nan, math.inf, torch.tensor([1.0, 0.0, 1.0, 1.0])):
        with pytest.raises(ValueError, match="magnitude must be finite and > 0"):
            _mean_row(noisy, zero, magnitude=bad, magnitude_of="ĉ")
    with pytest.raises(ValueError, match="magnitude_of must name"):
        _mean_row(noisy, zero, magnitude=1.0)


def test_a_row_given_a_magnitude_names_each_pair_once_against_what_it_must_resolve(kt_seed):
    """Review findings on the first version of ``magnitude``: a non-finite floor was named twice (by the floor rule and
    by the resolution note), a zero-target pair's note said "as large as their target" (0), a nonzero-target pair's
    floor was measured "against ĉ" though its own target is what it resolves, and ``magnitude_of`` without
    ``magnitude`` was silently ignored."""
    g = torch.Generator().manual_seed(seed_for("named", kt_seed))
    x = 1e-3 * torch.randn(2048, 4, generator=g, dtype=torch.float64)
    zero = torch.zeros(4, dtype=torch.float64)
    named = dict(magnitude=1.0, magnitude_of="ĉ")
    row = _mean_row(x, zero, atol=torch.tensor([math.inf, 0.6, 0.0, 0.0], dtype=torch.float64), **named)
    assert row.passed and row.detail.count("left out") == 1 and "2 of 4 pairs left out" in row.detail, row
    noisy = x.clone()
    noisy[:, 1] *= 30000
    row = _mean_row(noisy, zero, **named)
    assert row.passed and "1 of 4 pairs left out" in row.detail and "as large as their target (ĉ where it is 0)" \
        in row.detail, row
    t = torch.tensor([0.0, 2.0, 0.0, 0.0], dtype=torch.float64)
    row = _mean_row(x + t, t, atol=torch.tensor([0.0, 1.5, 0.0, 0.0], dtype=torch.float64), **named)
    assert row.passed and "against the target (ĉ where it is 0) 2" in row.detail, row
    with pytest.raises(ValueError, match="magnitude_of='ĉ' names a magnitude, but magnitude is None"):
        _mean_row(x, zero, magnitude_of="ĉ")


def test_differences_of_noisy_ratios_do_not_pass_proportional(kt_seed):
    """The review's case, on the rows' own path: ratios 2 ± 30 at three pairs against a reference pair at 1 ± 0.01
    (a map off by 100 % of ĉ there, hidden by its noise) PASSED the differences row; it is refused now, measured
    against ĉ. The same pairs at 1 ± 0.01 pass, and at 2 ± 0.01 fail."""
    from kerneltheory.testing.proportional import _differences_row

    g = torch.Generator().manual_seed(seed_for("ratios", kt_seed))
    noise = torch.randn(2048, 4, generator=g, dtype=torch.float64)
    floor, scale = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)

    def row(others):
        ratio = torch.cat([1 + 0.01 * noise[:, :1], others], 1)
        return _differences_row(ratio, 0, floor, scale, 2.0**-53, "proportional[t]", 1e-6, 0, ["a", "b", "c"], True)

    blind = row(2 + 30 * noise[:, 1:])
    assert blind.refused and "as large as ĉ, the ratios' mean" in blind.detail, blind
    assert row(1 + 0.01 * noise[:, 1:]).passed
    assert row(2 + 0.01 * noise[:, 1:]).status == "failed"


def test_a_failing_pairs_plus_minus_is_its_own_standard_error(kt_seed):
    """Without a claimed variance the normal test studentises under the claim, adding the distance to the target to
    the spread: a mean 0.0159 of draws spreading by 2e-4, target 1, read "± 0.0615", which a user trial took for the
    mean's own error. The detail gives the mean's standard error and names the test's beside it; where the two agree
    (a pair near its target) one number is given, as before."""
    g = torch.Generator().manual_seed(kt_seed)
    x = 0.0159 + 2e-4 * torch.randn(256, 3, generator=g, dtype=torch.float64)
    row = mean_check(Moments.from_samples(x), torch.ones(3, dtype=torch.float64), alpha=1e-6, name="m", seed=0,
                     samples=x)
    own = float(x.std(0, unbiased=False).max()) / 16
    shown = float(re.search(r"± ([0-9.e+-]+) \(its standard error; the test's", row.detail).group(1))
    assert row.status == "failed" and shown <= 1.01 * own and "the test's, which under the claim" in row.detail, row
    x = 1 + 0.01 * torch.randn(256, 3, generator=g, dtype=torch.float64)
    row = mean_check(Moments.from_samples(x), torch.ones(3, dtype=torch.float64), alpha=1e-6, name="m", seed=0,
                     samples=x)
    assert row.passed and "its standard error" not in row.detail and " ± " in row.detail, row


def test_agreeing_draws_off_by_a_coarser_formats_rounding_name_it(kt_seed):
    """A correct map checked against a kernel computed in float32 and returned in float64 (a Gaussian kernel scaled by
    float32 mixture weights summing to 1 − 3·10⁻⁸, a user trial) was refused with a message blaming the map's law:
    its draws at x = y agree, 3·10⁻⁸ off the target. The refusal now names the target's float32 rounding (nothing for a
    distance beyond it: float16's and bfloat16's would name a format for maps off by a real per cent, a review
    finding; nor for a target outside float32's range); neither a pair whose draws vary nor one that agrees within the
    rounding floor gets such a reading."""
    g = torch.Generator().manual_seed(kt_seed)
    x = torch.ones(4096, 3, dtype=torch.float64)
    x[:, 2] += 0.1 * torch.randn(4096, generator=g, dtype=torch.float64)

    def row(off):
        target = torch.tensor([1.0 - off, 1.0, float(x[:, 2].mean())], dtype=torch.float64)
        return mean_check(Moments.from_samples(x), target, alpha=1e-6, name="m", seed=0, samples=x)

    for off, named in ((3e-8, "float32"), (2e-4, None), (0.1, None)):
        r = row(off)
        assert r.refused and "every one of the 4096 draws gave 1" in r.detail, r
        assert (f"within {named}'s rounding of the target" in r.detail) if named else \
            "rounding of the target" not in r.detail, (off, r.detail)
    # agreeing draws within float64's rounding floor of the target pass, with no reading of a coarser format (a review
    # finding: the hint was given to such a passing row), and a format that cannot hold the target is never named
    within = row(5 * torch.finfo(torch.float64).eps)
    assert within.passed and "rounding of the target" not in within.detail, within
    for diff, target in ((-1e293, 1e300), (1e-307, 1e-300), (1e32, 1e39)):  # float32's range ends at 3.4e38
        assert "rounding of the target" not in checks._off(torch.tensor(diff), target=torch.tensor(target))
    assert "within float32's" in checks._off(torch.tensor(1e31), target=torch.tensor(1e38))
    varying = x[:, 2:] * (1 + 1e-9)
    near = mean_check(Moments.from_samples(varying), torch.tensor([float(x[:, 2].mean())], dtype=torch.float64),
                      alpha=1e-6, name="m", seed=0, samples=varying)
    assert near.passed and "rounding of the target" not in near.detail, near


def test_the_exact_reading_rule_is_a_bonferroni_normal_test():
    """checks.exact_reading_rejects, shared by mean_check's agreeing pairs and the proportionality rows' pairs left out
    of their differences: 2Φ̄(near/se)·tests ≤ α, with z = ∞ where se = 0 and near ≠ 0, and no rejection at near = 0."""
    near = torch.tensor([3.0, 3.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    se = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    p3 = 2 * stats.norm.sf(3.0)  # 0.0027
    assert checks.exact_reading_rejects(near, se, 1, 0.01).tolist() == [True, True, False, True, False]
    assert checks.exact_reading_rejects(near, se, 1, p3 * 0.99).tolist() == [False, True, False, True, False]
    assert checks.exact_reading_rejects(near, se, 10, 0.01).tolist() == [False, True, False, True, False]
    assert bool(checks.exact_reading_rejects(torch.tensor(3.0, dtype=torch.float64),
                                             torch.tensor(1.0, dtype=torch.float64), 1, p3 * 1.01))


def test_a_pass_that_resolves_no_effect_as_large_as_the_target_is_refused(kt_seed):
    """Found case: estimates 2·exp(xᵀy) plus zero-mean noise a²·r·r′ (random signs, a² = 100, one extra feature per
    side) PASSED `unbiased` at the moderate families (8 of 8 seeds): a standard error of 100/64 against a kernel of
    about 1 detects no 100 % bias. A row whose every pair detects (with power 0.9) only deviations as large as its
    target, or whose rounding floor reaches half of it, or a reference known only to that error, is refused, never
    passed; noise a hundredth of that still fails the bias."""
    g = torch.Generator().manual_seed(seed_for("noise", kt_seed))
    target = torch.ones(4, dtype=torch.float64)
    noisy = 2 + 100 * torch.randn(4096, 4, generator=g, dtype=torch.float64)
    row = _mean_row(noisy, target)
    assert row.refused and row.no_evidence and "no pair resolves an effect as large as its target" in row.detail, row
    assert _mean_row(2 + torch.randn(4096, 4, generator=g, dtype=torch.float64), target).status == "failed"
    correct = 1 + 0.5 * torch.randn(4096, 4, generator=g, dtype=torch.float64)
    assert _mean_row(correct, target).passed
    for kw, why in ((dict(atol=1e300), "the rounding floor of every pair reaches 0.5 of the target"),
                    (dict(atol=math.inf), "no pair resolves"),
                    (dict(target_stderr=torch.full((4,), 1e300, dtype=torch.float64)), "no pair resolves")):
        row = _mean_row(correct + 1, target, **kw)
        assert row.refused and why in row.detail, (kw, row)
    # one resolved pair is enough for the row to speak (the others stay tested: a rejection there still fails)
    mixed = torch.cat([correct[:, :1], noisy[:, 1:] - 1], 1)
    assert _mean_row(mixed, target).passed

    def sample(gen, a=10.0, m=64):
        w = torch.randn(m, D, generator=gen, dtype=torch.float64)
        r, s = (1.0 if bool(torch.rand((), generator=gen) < 0.5) else -1.0 for _ in range(2))

        def side(sign):
            return lambda x: torch.cat([math.sqrt(2 / m) * torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2),
                                        torch.full_like(x[:, :1], a * sign)], -1)
        return side(r), side(s)

    report = check_feature_map(sample, kernels.softmax, dim=D, claims={"unbiased"}, seed=kt_seed)
    assert report.status != "PASSED", str(report)


def test_agreeing_draws_support_a_pass_only_where_an_exact_bound_rejects_them():
    """Found case: every draw 1.05 against a target of 1 is refused without claims, but PASSED with a true, loose
    declared bound (Markov at B = 100 resolves only deviations beyond ≈ (B + |K|)·ln(2P/α)/n; a 100 % bias passed at
    B = 10⁶), and all-equal draws against a claimed variance σ² > 0 PASSED with a bound B ≥ 5σ (Maurer–Pontil). Such
    pairs are now untested unless the exact test rejects them; where it does, the row still fails."""
    x = torch.full((4096, 4), 1.05, dtype=torch.float64)
    target = torch.ones(4, dtype=torch.float64)
    for b in (100.0, 1e6):
        row = _mean_row(x, target, bound=torch.full((4,), b, dtype=torch.float64))
        assert row.refused and "Markov" in row.detail and "untested" in row.detail, (b, row)
    row = _mean_row(x, target, bound=torch.full((4,), 1.1, dtype=torch.float64))  # 2(2.1/2.15)^4096 ≈ e⁻⁹⁶
    assert row.status == "failed", row
    row = _mean_row(x, target, variance=torch.full((4,), 0.01, dtype=torch.float64), carry_without_variance=False)
    assert row.status == "failed" and "Cantelli" in row.detail, row  # 2(σ²/(σ² + d²))ⁿ = 2·0.8⁴⁰⁹⁶
    const = torch.full((4096, 3), 0.5, dtype=torch.float64)
    for b, var in ((1.0, 0.03), (10.0, 0.09)):
        row = variance_check(Moments.from_samples(const), torch.full((3,), var, dtype=torch.float64), alpha=1e-6,
                             name="v", seed=0, samples=const, bound=torch.full((3,), b, dtype=torch.float64))
        assert row.refused and "exact test does not reject" in row.detail, (b, var, row)
    row = variance_check(Moments.from_samples(const), torch.ones(3, dtype=torch.float64), alpha=1e-6, name="v",
                         seed=0, samples=const, bound=torch.ones(3, dtype=torch.float64))
    assert row.status == "failed", row


def test_a_bound_that_cannot_reject_at_a_tiny_budget_refuses():
    """Found case: with 1–5 draws the normal test does not apply and Hoeffding/Bernstein cannot reach α = 10⁻⁶ however
    far off the mean is; the row PASSED (p = 1) at a mean 6 against a target 0 with the bound 10. It is refused."""
    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 5, 8):
        x = 6 + torch.rand(n, 3, generator=g, dtype=torch.float64)
        row = _mean_row(x, torch.zeros(3, dtype=torch.float64), bound=torch.full((3,), 10.0, dtype=torch.float64))
        assert row.refused and row.no_evidence and "cannot reject" in row.detail, (n, row)
    x = 6 + torch.rand(512, 3, generator=g, dtype=torch.float64)
    assert _mean_row(x, torch.zeros(3, dtype=torch.float64), bound=torch.full((3,), 10.0, dtype=torch.float64)).status \
        == "failed"


def test_the_mean_and_variance_checks_name_a_bad_argument():
    """α of 0 passed a 7.7σ bias; complex claims were read by their real part; shapes that broadcast ([P, 1]) and a
    Python float raised torch's own errors (or read other pairs); a negative floor was accepted; 0 draws raised an
    IndexError and 1–2 draws with a claimed variance a reshape error. Each is now an error naming the argument, or a
    refusal where the draws are too few."""
    g = torch.Generator().manual_seed(0)
    x = 1 + torch.randn(4096, 4, generator=g, dtype=torch.float64)
    m, t = Moments.from_samples(x), torch.ones(4, dtype=torch.float64)
    for alpha in (0.0, 1.0, math.nan, -1e-6):
        with pytest.raises(ValueError, match="alpha"):
            mean_check(m, t, alpha=alpha, name="m", seed=0, samples=x)
        with pytest.raises(ValueError, match="alpha"):
            variance_check(m, t, alpha=alpha, name="v", seed=0, samples=x)
    bad = {"target": t[:, None], "variance": t[:, None], "bound": 5 * t[:, None], "atol": t[None, :],
           "target_stderr": t[:, None]}
    for arg, value in bad.items():
        kw = dict(dict(target=t, samples=x), **{arg: value})
        with pytest.raises(ValueError, match=f"^{arg} must have one value per pair"):
            mean_check(m, alpha=1e-6, name="m", seed=0, **kw)
    for arg in ("target", "variance", "bound"):
        with pytest.raises(TypeError, match=f"^{arg} must be real"):
            mean_check(m, alpha=1e-6, name="m", seed=0, samples=x, **dict({"target": t}, **{arg: t + 1j}))
    with pytest.raises(ValueError, match="^atol must be a rounding floor ≥ 0"):
        mean_check(m, t, alpha=1e-6, name="m", seed=0, samples=x, atol=-1.0)
    with pytest.raises(ValueError, match="^atol must be a rounding floor ≥ 0"):
        variance_check(m, t, alpha=1e-6, name="v", seed=0, samples=x, atol=-1.0)
    # a NaN floor was read further on as "the standard error of the mean at pair 2 is nan" (a review finding)
    nan_at_2 = torch.tensor([0.0, 0.0, math.nan, 0.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="^atol must be a rounding floor ≥ 0 at every pair, got nan at pair 2"):
        mean_check(m, t, alpha=1e-6, name="m", seed=0, samples=x, atol=nan_at_2)
    with pytest.raises(ValueError, match="^atol must be a rounding floor ≥ 0 at every pair, got nan at pair 2"):
        variance_check(m, t, alpha=1e-6, name="v", seed=0, samples=x, atol=nan_at_2)
    with pytest.raises(ValueError, match="^samples must be the"):
        mean_check(m, t, alpha=1e-6, name="m", seed=0, samples=x[:, :1])
    with pytest.raises(ValueError, match="^claimed must have one value per pair"):
        variance_check(m, t[:, None], alpha=1e-6, name="v", seed=0, samples=x)
    with pytest.raises(ValueError, match="no draws"):
        mean_check(Moments.from_samples(x[:0]), t, alpha=1e-6, name="m", seed=0)
    assert mean_check(m, 1.0, alpha=1e-6, name="m", seed=0, samples=x).passed  # one number is every pair's target
    for n in (1, 2):
        row = mean_check(Moments.from_samples(x[:n]), t, alpha=1e-6, name="m", seed=0, samples=x[:n], variance=t)
        assert row.refused and "too few draws" in row.detail, row


def test_a_claimed_variance_within_its_rounding_of_zero_is_zero():
    """Found case (a user trial): random Fourier features' exact variance formula, evaluated in another order, gives
    2·10⁻¹⁸ instead of 0 at x = y, where every draw is 1 up to rounding; the row was refused ("sixth and eighth
    moments too large": the rounding jitter's shape), while the same formula 2·10⁻¹⁸ below 0 passed (read as 0). A
    claim within its own rounding τ of 0 is a claim of 0 on both sides; where the draws vary, such a claim fails."""
    g = torch.Generator().manual_seed(0)
    one = torch.ones(4096, 1, dtype=torch.float64)  # 1 at every draw, one ulp above at 1 % of them (rounding)
    at_x_eq_y = torch.where(torch.rand(4096, 1, generator=g) < 0.01, torch.nextafter(one, 2 * one), one)
    x = torch.cat([at_x_eq_y, torch.cos(torch.randn(4096, 1, generator=g, dtype=torch.float64))], 1)
    exact = torch.tensor([0.0, float(x[:, 1].var())], dtype=torch.float64)
    for off in (2e-18, -2e-18, 1e-15, 0.0):
        row = variance_check(Moments.from_samples(x), exact + torch.tensor([off, 0.0], dtype=torch.float64),
                             alpha=1e-6, name="v", seed=0, samples=x)
        assert row.passed, (off, row)
    varying = x.flip(1)  # the claim ≈ 0 now sits at the pair whose draws vary
    row = variance_check(Moments.from_samples(varying), exact + 2e-18, alpha=1e-6, name="v", seed=0, samples=varying)
    assert row.status == "failed", row


def test_every_deciding_test_must_resolve_the_target():
    """Review findings on the first version of the resolution rule: it read the normal test's reach in every branch
    and exempted every pair of target 0, so a 100 % bias still passed where a loose bound decided (B = 1000, the guard
    failing), where a median of means decided (heavy-tailed noise of sd 100 under its true variance), beside a pair of
    target exactly 0 (a polynomial kernel's orthogonal pairs), and below 64 draws (every draw 1.2 against 1 under the
    bound 2). Each branch now measures what its own test rejects; a zero target is measured against the row's largest;
    a row with some blind pairs passes for the others and names them."""
    g = torch.Generator().manual_seed(0)
    target = torch.ones(3, dtype=torch.float64)
    x = 2.0 + 0.01 * torch.randn(4096, 3, generator=g, dtype=torch.float64)
    spike = torch.rand(4096, 3, generator=g) < 0.002  # rare ±0.5: the guard fails, the bound decides alone
    x = torch.where(spike, x + 0.5 * torch.sign(torch.randn(4096, 3, generator=g, dtype=torch.float64)), x)
    row = _mean_row(x, target, bound=torch.full((3,), 1000.0, dtype=torch.float64))
    assert row.refused and "no pair resolves" in row.detail, row
    assert _mean_row(x, target, bound=torch.full((3,), 3.0, dtype=torch.float64)).status == "failed"
    z, chi2 = (torch.randn(4096, 3, *shape, generator=g, dtype=torch.float64) for shape in ((), (3,)))
    heavy = 2.0 + 100 / 3**0.5 * z / (chi2.square().sum(-1) / 3).sqrt()  # Student t₃: sd 100, no fourth moment
    row = _mean_row(heavy, target, variance=torch.full((3,), 1e4, dtype=torch.float64), carry_without_variance=False)
    assert row.method != "clt (exact variance)" and row.refused and "no pair resolves" in row.detail, row
    noisy = 2 + 100 * torch.randn(4096, 4, generator=g, dtype=torch.float64)
    row = _mean_row(noisy, torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    assert row.refused and "no pair resolves" in row.detail, row
    for n in (16, 24):
        x = torch.full((n, 1), 1.2, dtype=torch.float64)
        row = _mean_row(x, torch.ones(1, dtype=torch.float64), bound=torch.full((1,), 2.0, dtype=torch.float64))
        assert row.refused, (n, row)
    mixed = torch.cat([1 + 0.5 * torch.randn(4096, 1, generator=g, dtype=torch.float64), noisy[:, 1:]], 1)
    row = _mean_row(mixed, torch.ones(4, dtype=torch.float64))
    assert row.passed and row.detail.startswith(f"3 of 4 pairs {checks.LEFT_OUT}"), row
    row = _mean_row(mixed, torch.ones(4, dtype=torch.float64), atol=math.inf)
    assert row.refused, row  # a floor that is not finite resolves nothing, whatever the target
    zeros = torch.zeros(4096, 2, dtype=torch.float64)
    assert _mean_row(zeros + 5, torch.zeros(2, dtype=torch.float64), atol=math.inf).refused
    # a pair that cannot deviate (B = 0, K = 0) is decided, not blind; numpy numbers are read as torch reads them
    exact = torch.cat([zeros[:, :1], 0.5 + 0.01 * torch.randn(4096, 1, generator=g, dtype=torch.float64)], 1)
    row = _mean_row(exact, torch.tensor([0.0, 0.5], dtype=torch.float64), bound=torch.tensor([0.0, 1.0]))
    assert row.passed, row
    import numpy as np
    assert _mean_row(exact, np.array([0.0, 0.5]), atol=np.float32(0.0)).passed


def test_a_loose_bound_does_not_test_a_variance_it_cannot_resolve():
    """Review finding: a heavy-tailed pair whose guard fails counted as tested by Maurer–Pontil alone, so under a loose
    true bound (B = 10) a claimed variance 3.5 times too small passed where, without the bound, the row is refused.
    Such a pair is tested only where the bound's test rejects or resolves a standard deviation below the claimed one."""
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(4096, 2, generator=g, dtype=torch.float64)
    spike = torch.rand(4096, 2, generator=g) < 0.001
    x = torch.where(spike, x + 5.0 * torch.sign(torch.randn(4096, 2, generator=g, dtype=torch.float64)), x)
    claimed = torch.full((2,), 0.01, dtype=torch.float64)
    for bound in (None, torch.full((2,), 10.0, dtype=torch.float64)):
        row = variance_check(Moments.from_samples(x), claimed, alpha=1e-6, name="v", seed=0, samples=x, bound=bound)
        assert row.refused, (bound, row)
    assert "Maurer–Pontil" in row.detail, row
    light = 0.1 * torch.randn(4096, 2, generator=g, dtype=torch.float64)  # the guard holds: the normal test decides
    row = variance_check(Moments.from_samples(light), claimed, alpha=1e-6, name="v", seed=0, samples=light,
                         bound=torch.full((2,), 10.0, dtype=torch.float64))
    assert row.passed, row


def test_the_reaches_are_where_the_p_values_reach_the_level():
    """The resolution rule's reaches (proofs/verification.md, item 3(b)) in closed form: the bound test's p-value is
    above the level just below its reach and at or below it at the reach (and above it at B + |K| where the reach is
    infinite); the median of means' q* puts the binomial tail exactly at the level."""
    from scipy import special, stats

    from kerneltheory.testing.pvalues import bounded_p_values, bounded_reach

    g = torch.Generator().manual_seed(0)
    for n in (8, 64, 4096):
        b = 10 * torch.rand(50, generator=g, dtype=torch.float64)
        k = torch.randn(50, generator=g, dtype=torch.float64)
        v = torch.rand(50, generator=g, dtype=torch.float64) * b**2 / 4
        for level in (1e-3, 1e-8):
            reach = bounded_reach(b, k, v, n, level)
            f = torch.isfinite(reach)
            assert bool((bounded_p_values(reach[f] * (1 + 1e-9), b[f], v[f], n) <= level).all())
            assert bool((bounded_p_values(reach[f] * (1 - 1e-6), b[f], v[f], n) > level).all())
            assert bool((bounded_p_values((b + k.abs())[~f], b[~f], v[~f], n) > level).all())
    zero = torch.zeros(1, dtype=torch.float64)
    assert bounded_reach(zero, zero, zero, 16, 1e-6).item() == 0.0  # nothing can deviate
    q = special.betaincinv(32, 33, 1e-9)
    assert stats.binom.sf(31, 64, q) == pytest.approx(1e-9, rel=1e-9)


def test_a_residue_of_exact_zeros_is_no_magnitude():
    """Second review: a polynomial kernel at pairs orthogonal in exact arithmetic leaves 2.8e-32 beside exact zeros,
    and every zero pair was measured against that residue, so a correct map was refused. A zero target is measured
    against the row's largest target above its own floor; a zero pair whose draws agree within a floor of half that
    magnitude or more resolves nothing either."""
    g = torch.Generator().manual_seed(0)
    x = 0.01 * torch.randn(4096, 4, generator=g, dtype=torch.float64)
    residue = torch.tensor([0.0, 0.0, 0.0, 1e-36], dtype=torch.float64)
    assert _mean_row(x, residue).passed
    assert _mean_row(x, torch.zeros(4, dtype=torch.float64)).passed
    noisy = 1e-6 + 1e-5 * torch.randn(4096, 1, generator=g, dtype=torch.float64)  # blind: SE 1.6e-7 against 1e-6
    agreeing_zero = torch.cat([torch.zeros(4096, 1, dtype=torch.float64), noisy], 1)
    target = torch.tensor([0.0, 1e-6], dtype=torch.float64)
    row = _mean_row(agreeing_zero, target, atol=torch.tensor([1e-3, 1e-12], dtype=torch.float64))
    assert row.refused and "no pair resolves" in row.detail, row
    assert _mean_row(agreeing_zero, target, atol=torch.tensor([0.0, 1e-12], dtype=torch.float64)).passed
