"""Calibration of the engine's checks on every registered estimator family (CONVENTIONS.md; issue #12).

For one estimator of each random family that claims exact unbiasedness (FAMILIES), the unbiasedness check (with the
family's exact variance and bound where it has them, as the claim matrix runs it) and the variance check (where a
closed form is claimed) are run on many independent seeds of correct draws at small levels α′. The observed
rejection rate among the applied checks must be within its one-sided binomial bound (level 10⁻³) at every α′:
the declared α holds in the tail, not only on average. The quick tier runs OPRF at α′ = 10⁻² (trig and positive
features are calibrated in the quick tier by tests/test_verification.py); the slow tier runs every family with
1000 seeds at α′ ∈ {10⁻², 10⁻³}.
"""

from __future__ import annotations

import pytest
import torch
from scipy import stats

import kerneltheory.estimators as E
from kerneltheory.montecarlo import Moments
from kerneltheory.testing.checks import mean_check, pair_rounding_floor, variance_check
from kerneltheory.testing.inputs import direction_families, moderate_families
from kerneltheory.testing.user_calls import cauchy_schwarz_scale

FAMILIES = [
    "trig/gaussian", "trig_phase/gaussian", "positive/gaussian", "hyperbolic/gaussian", "oprf/gaussian",
    "saderf/gaussian", "gerf/gaussian", "relu/gaussian", "poisrf/poisson", "geomrf/geometric",
    "sderf/gaussian", "aderf/gaussian", "hrf/gaussian", "positive/simplex", "tensorsketch/countsketch",
]
# The deterministic maps (elu, feedforward, hedgehog, based, rebased) have variance 0: their checks are exact
# comparisons up to rounding, with no false-failure rate to calibrate (tests/test_claim_matrix.py runs them).
LEVELS = (1e-2, 1e-3)
MAX_REFUSED = 0.1  # a check whose tails are too heavy for the budget refuses; if it did so often, its
# calibration would only speak for the seeds it accepts, so refusals must stay rare


def _p_values(name: str, seeds: range, draws: int = 4096) -> dict[str, list[float]]:
    """The p-values (NaN when refused) of the unbiasedness and variance checks of ``name`` over ``seeds``."""
    est = E.get(name, 4, 16)
    fams = moderate_families(4, torch.Generator().manual_seed(20261203), radius=0.5) + direction_families(4)
    x = torch.cat([f.x for f in fams]).to(est.dtype)
    y = torch.cat([f.y for f in fams]).to(est.dtype)
    with torch.no_grad():
        target = est.kernel_pairs(x, y).to(torch.float64)
        # the pair's magnitude for its rounding floor, as the engine computes it (verify.run_mean_variance_checks)
        scale = cauchy_schwarz_scale(est.kernel_pairs(x, x), est.kernel_pairs(y, y))
        var = est.variance_pairs(x, y).to(torch.float64) if est.claims.variance else None
        bound_fn = getattr(est.component, "estimate_bound", None)
        bound = None if bound_fn is None else bound_fn(x, y)
    out: dict[str, list[float]] = {"unbiased": [], "variance": []}
    cols = range(x.shape[0])
    edges = [0, *torch.tensor([f.size for f in fams]).cumsum(0).tolist()]
    slices = [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    for s in seeds:
        with torch.no_grad():
            smp = est.sample_estimates(x, y, torch.Generator().manual_seed(s), draws).to(torch.float64)
        m = Moments.from_samples(smp)
        for sl in slices:  # one check per input family, as the engine runs them
            r = mean_check(m.select(sl), target[sl], alpha=1e-2, name="c", seed=s,
                           variance=None if var is None else var[sl], samples=smp[:, sl],
                           atol=pair_rounding_floor(target[sl], m.mean[sl], smp[:, sl], scale[sl]),
                           bound=None if bound is None else bound[sl].to(torch.float64))
            out["unbiased"].append(float("nan") if r.refused else r.p_value)
        if var is not None:  # per pair: the guard of the variance check decides pair by pair
            for j in cols:
                r = variance_check(m.select(slice(j, j + 1)), var[j : j + 1], alpha=1e-2, name="c", seed=s,
                                   samples=smp[:, j : j + 1],
                                   bound=None if bound is None else bound[j : j + 1].to(torch.float64))
                if r.method != "exhaustive":  # pairs of claimed variance 0 are checked exactly
                    out["variance"].append(float("nan") if r.refused else r.p_value)
    return out


def _assert_calibrated(name: str, p_values: dict[str, list[float]], levels) -> None:
    for claim, ps in p_values.items():
        if not ps:
            continue
        applied = [p for p in ps if p == p]
        assert len(ps) - len(applied) <= MAX_REFUSED * len(ps), (name, claim, "refused", len(ps) - len(applied))
        for a in levels:
            fails = sum(p <= a for p in applied)
            bound = stats.binomtest(fails, len(applied), a, alternative="greater").pvalue
            assert bound > 1e-3, (name, claim, a, fails, len(applied))


def _sweep_p_values(name: str, seeds: range, draws: int = 4096) -> list[tuple[str, float]]:
    """The variance check's p-values at α′ = 10⁻² (NaN when refused) at the pairs of the claim matrix's norm-sweep
    families of ``name``, with the family's name: the radii its pilot admits at each seed (matrix._families), on
    ``draws`` fresh draws."""
    from kerneltheory.testing.matrix import _families
    from kerneltheory.testing.seeds import seed_for

    est = E.get(name, 4, 16)
    out = []
    for s in seeds:
        fams, _, swept = _families(est, seed_for(est.name, s), draws)
        for f in fams[len(fams) - swept:]:
            x, y = f.pairs()
            with torch.no_grad():
                var = est.variance_pairs(x, y).to(torch.float64)
                smp = est.sample_estimates(x, y, torch.Generator().manual_seed(10**6 + s), draws).to(torch.float64)
            m = Moments.from_samples(smp)
            for j in range(x.shape[0]):
                r = variance_check(m.select(slice(j, j + 1)), var[j : j + 1], alpha=1e-2, name="c", seed=s,
                                   samples=smp[:, j : j + 1])
                if r.method != "exhaustive":
                    out.append((f.name, float("nan") if r.refused else r.p_value))
    return out


@pytest.mark.statistical
@pytest.mark.parametrize("name", ["oprf/gaussian"])
def test_calibration_quick(name, kt_seed):
    """The quick tier's calibration of the checks on trig (bounded) and positive features (CLT, with and without
    the claimed variance, and the variance check) is tests/test_verification.py's false-failure tests; this one
    adds the data-dependent OPRF, which those do not run."""
    _assert_calibrated(name, _p_values(name, range(kt_seed, kt_seed + 60)), (1e-2,))


@pytest.mark.slow
@pytest.mark.statistical
@pytest.mark.parametrize("name", [f for f in FAMILIES if f != "geomrf/geometric"])
def test_calibration_every_family_1000_seeds(name, kt_seed):
    _assert_calibrated(name, _p_values(name, range(kt_seed, kt_seed + 1000)), LEVELS)


@pytest.mark.slow
@pytest.mark.statistical
def test_geomrf_variance_check_is_not_calibrated_and_the_matrix_refuses_it(kt_seed):
    """A finding: on GeomRF the variance check rejected the true closed form 96 times in 43956 applied pair-checks
    at α′ = 10⁻³ (2.2×; binomial p ≈ 8e-12), always with the sample variance below the claim. Its unbiasedness
    check is calibrated; its variance claim is refused by the claim matrix (features/dirf.py,
    ``variance_check_uncalibrated``) rather than tested at a level it does not hold."""
    from kerneltheory.testing import verify_estimator

    p = _p_values("geomrf/geometric", range(kt_seed, kt_seed + 1000))
    _assert_calibrated("geomrf/geometric", {"unbiased": p["unbiased"]}, LEVELS)
    verdicts, _ = verify_estimator("geomrf/geometric", seed=kt_seed)
    assert {v.claim: v.verdict for v in verdicts}["variance"] == "refused"


def _family_mean_checks(name: str, seed: int, family: str, samples: range, base: int,
                        draws: int = 4096) -> tuple[list[float], list[float]]:
    """The unbiasedness check without a claimed variance (the studentised test, as the claim matrix runs it where no
    variance row backs it) at one family of the claim matrix's families for ``name`` at ``seed``
    (matrix._families), on independent samples of ``draws`` draws (sample s from the generator seeded
    seed_for(f"sample {s}", base)): the p-values at α′ = 10⁻² (NaN when refused) and, for each sample the check
    accepted, the ratio s²/σ² of the sample variance to the closed-form variance at the family's pair of largest σ²."""
    from kerneltheory.testing.matrix import _families
    from kerneltheory.testing.seeds import seed_for

    est = E.get(name, 4, 16)
    fams, _, _ = _families(est, seed_for(est.name, seed), draws)
    x, y = next(f for f in fams if f.name == family).pairs()
    with torch.no_grad():
        target = est.kernel_pairs(x, y).to(torch.float64)
        scale = cauchy_schwarz_scale(est.kernel_pairs(x, x), est.kernel_pairs(y, y))
        var = est.variance_pairs(x, y).to(torch.float64)
    j = int(var.argmax())
    ps, ratios = [], []
    for s in samples:
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed_for(f"sample {s}", base))
            smp = est.sample_estimates(x, y, g, draws).to(torch.float64)
        m = Moments.from_samples(smp)
        r = mean_check(m, target, alpha=1e-2, name="c", seed=s, samples=smp,
                       atol=pair_rounding_floor(target, m.mean, smp, scale))
        ps.append(float("nan") if r.refused else r.p_value)
        if not r.refused:
            ratios.append(float(m.population_variance[j] / var[j]))
    return ps, ratios


@pytest.mark.slow
@pytest.mark.statistical
def test_hrf_checks_are_not_calibrated_at_the_sweep_and_the_matrix_refuses_them_there(kt_seed):
    """A finding: at the claim matrix's norm sweep HRF's variance check rejects the true closed form too often: at
    ‖x‖ = ‖y‖ = 2, 28 of 260 applied pair-checks at α′ = 10⁻³ (seeds 0–2999), at norm 1 32 of 1568 at α′ = 10⁻² where
    15.7 are expected (13 of 894 at seeds 0–2999, 19 of 674 at the 2000 seeds from 24326475; the pairs of a family
    share their draws, so binomial p-values are only indicative, and the assertion reads the pooled sweep): a share
    of the variance (the positive part's log-normal tail) sits in draws the sample misses. At the moderate
    families it holds (test_calibration_every_family_1000_seeds), and SDERF's holds at the same sweep (44 of 6832 at
    10⁻², 5 at 10⁻³, seeds 0–999). The studentised mean test, which reads the sample's variance, fails at norm 2 for
    the same reason: at the family ‖x‖ = ‖y‖ = 2 of seed 16 (base 0, samples 0–2999) every sample of 4096 draws it
    accepted (544) had s² < σ²/2 at the pair of largest σ² (median 0.075 in another run), and it rejected the true
    kernel at 23 of them at α′ = 10⁻², 6 at 10⁻³ and 3 at 10⁻⁴ (5.4, 0.5 and 0.05 expected); at that seed's norm-1
    family it holds (11 of 2972 at 10⁻², none at 10⁻³, none with s² < σ²/2). The matrix refuses HRF's variance rows
    beyond norm 0.5 and its unbiasedness rows beyond norm 1 (features/hybrid.py, ``calibrated_radius``), keeping a
    mean row's certain failure."""
    from kerneltheory.testing import verify_estimator

    ps = [p for _, p in _sweep_p_values("hrf/gaussian", range(kt_seed, kt_seed + 2000)) if p == p]
    bounds = [stats.binomtest(sum(p <= a for p in ps), len(ps), a, alternative="greater").pvalue for a in LEVELS]
    assert min(bounds) < 1e-3, (bounds, len(ps))
    # the mechanism, at norm 2: the samples the mean test accepts are those that missed the tail (about 1 in 6)
    _, ratios = _family_mean_checks("hrf/gaussian", 16, "‖x‖ = ‖y‖ = 2", range(600), kt_seed)
    assert len(ratios) >= 40 and sum(r < 0.5 for r in ratios) >= 0.9 * len(ratios), ratios
    ps, ratios = _family_mean_checks("hrf/gaussian", 16, "‖x‖ = ‖y‖ = 1", range(1000), kt_seed)
    _assert_calibrated("hrf/gaussian", {"unbiased": ps}, LEVELS)
    assert sum(r < 0.5 for r in ratios) <= 0.01 * len(ratios), sorted(ratios)[:20]
    _assert_calibrated("sderf/gaussian", {"variance": [p for _, p in _sweep_p_values(
        "sderf/gaussian", range(kt_seed, kt_seed + 1000))]}, LEVELS)
    verdicts, _ = verify_estimator("hrf/gaussian", seed=16)  # a seed whose sweep reaches 2
    rows = {v.claim: {c["name"]: c for c in v.checks} for v in verdicts}
    assert all(rows["variance"][f"variance[‖x‖ = ‖y‖ = {r}]"]["method"] == "refused" for r in (1, 2)), rows
    assert rows["unbiased"]["unbiased[‖x‖ = ‖y‖ = 2]"]["method"] == "refused", rows
    assert rows["unbiased"]["unbiased[‖x‖ = ‖y‖ = 1]"]["passed"], rows
