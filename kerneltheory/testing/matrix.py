"""The claim matrix: every registered estimator × every claim, with a verdict.

Verdicts:

* ``verified`` — the estimator claims the property and every check of it passed;
* ``FAILED`` — it claims the property and a check rejected it (a bug, or a false claim);
* ``refused`` — it claims the property but the budget was too small for a meaningful test (never a pass);
* ``refuted`` — it does not claim the property and a check found a counterexample (reported with its size);
* ``not refuted`` — it does not claim the property and no counterexample was found at this budget;
* ``n/a`` — nothing to check (no closed-form variance).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch

from .. import estimators as E
from .._validation import check_alpha, check_int, check_real
from ..estimators import CLAIM_NAMES, RandomFeatureEstimator, pair_segments
from ..spectral.base import ClosedFormUnavailable
from .checks import ROUNDING_ULPS, CheckResult, feature_example, pair_rounding_floor, property_check
from .inputs import InputFamily, cross_family, direction_families, extreme_points, moderate_families
from .replay import estimates_follow_their_generator
from .seeds import seed_for
from .user_calls import _difference, cauchy_schwarz_scale
from .verify import (
    BUDGETS,
    Report,
    _budget,
    _pilot_failure,
    _tested_norms,
    run_mean_variance_checks,
    sweep_radii,
)

MATRIX_DIM = 4
MATRIX_FEATURES = 16
RADIUS = 0.5  # ‖x‖, ‖y‖ ≤ 0.5 so ‖x + y‖² ≤ 1: moderate fourth moments for exponential features (MATH.md §4)


@dataclass
class Verdict:
    estimator: str
    claim: str
    claimed: str
    verdict: str
    p_value: float
    effect_size: float
    method: str
    evidence: str
    proof: str
    checks: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _stress_families(dim: int, gen: torch.Generator) -> list[InputFamily]:
    """Where biases of structured or discrete laws are largest: larger norms along directions and axes."""
    fams = moderate_families(dim, gen, radius=1.5, pairs=8)
    return [
        InputFamily(f"stress: {f.name} (‖·‖ ≤ 1.5)", f.x, f.y)
        for f in fams
        if f.name in ("directions", "collinear", "axes")
    ]


def _families(est: RandomFeatureEstimator, base: int, draws: int) -> tuple[list[InputFamily], tuple | None, int]:
    """The moderate and spread-direction families, the cross family as its L² pairs (a registered map has no
    per-position state, so the pairs carry the same information), and the norm sweep that a pilot allows, last; with
    :attr:`~kerneltheory.testing.verify.Sweep.nonfinite` (a non-finite pilot estimate where the kernel is finite) and
    the number of the sweep's families."""
    gen = torch.Generator().manual_seed(base)
    fams = moderate_families(est.dim, gen, radius=RADIUS) + direction_families(est.dim, radius=RADIUS)
    cross = cross_family(est.dim, gen, length=4, radius=RADIUS)
    fams.append(InputFamily("cross", *cross.pairs()))
    if est.has_closed_form:
        pilot_gen = torch.Generator().manual_seed(base + 7)  # recorded by a pilot-failure row

        def pilot(x, y, r):
            with torch.no_grad():
                return est.sample_estimates(x.to(est.dtype), y.to(est.dtype), pilot_gen, r).to(torch.float64)

        swept = sweep_radii(pilot, lambda x, y: est.kernel(x.to(est.dtype), y.to(est.dtype)), est.dim,
                            torch.Generator().manual_seed(base + 8), draws=draws)
        return fams + swept, swept.nonfinite, len(swept)
    return fams, None, 0


def _mean_checks(
    est: RandomFeatureEstimator,
    families,
    *,
    draws,
    block,
    alpha,
    seed,
    mean_families: list[int],
    variance_families: list[int],
    uncalibrated_mean_families: list[int] = (),
    compute_dtype: torch.dtype | None = None,
) -> tuple[list[CheckResult], list[CheckResult], list[CheckResult]]:
    """The unbiasedness checks of ``families[i]`` for i in ``mean_families`` and the variance checks for i in
    ``variance_families`` (none when the estimator has no closed-form variance), drawn together; the rows in
    the order of those lists; and the unbiasedness checks at ``uncalibrated_mean_families`` (beyond a component's
    calibrated radius: without the claimed variance, in a group of their own that only a certain failure decides, so
    that their rejections stop no row). A family in no list is not drawn."""
    pairs = [f.pairs() for f in families]
    x = torch.cat([p[0] for p in pairs]).to(est.dtype)
    y = torch.cat([p[1] for p in pairs]).to(est.dtype)
    # a data-dependent map (OPRF, SADERF) is fitted to each family alone, as to its own sequence: one draw of W
    # serves every family, and the targets, variances and bounds are those of each family's own statistics
    segments = [p[0].shape[0] for p in pairs] if est.component.data_dependent else None

    def each(fn):
        """``fn(x, y)``, or for a data-dependent map ``fn`` at each family's pairs alone, joined (None if any is)."""
        parts = [fn(x[a:b], y[a:b]) for a, b in pair_segments(segments, x.shape[0])]
        return None if any(p is None for p in parts) else parts[0] if len(parts) == 1 else torch.cat(parts)

    fitted = est.fit_statistics(x, y, segments)  # once: every block of draws is evaluated on these pairs

    def estimates(gen, r):
        with torch.no_grad():
            return est.sample_estimates(x, y, gen, r, compute_dtype=compute_dtype, segments=segments,
                                        statistics=fitted).to(torch.float64)

    target_se = scale = None
    with torch.no_grad():
        if est.has_closed_form:
            target = each(est.kernel_pairs).to(torch.float64)
            scale = each(lambda a, b: cauchy_schwarz_scale(est.kernel_pairs(a, a), est.kernel_pairs(b, b)))
        else:
            target, target_se = est.reference_kernel(x, y, draws=4 * draws, seed=seed_for("reference", seed),
                                                     segments=segments)
        # unchecked: a claimed variance that is NaN or infinite at a pair fails there (invalid claim), where the
        # estimator's own check stopped the run with an overflow message naming no pair (a review finding)
        var = each(lambda a, b: est.variance_pairs(a, b, checked=False)).to(torch.float64) \
            if est.claims.variance else None
        bound_fn: Callable | None = getattr(est.component, "estimate_bound", None)
        bound = None if bound_fn is None else each(bound_fn)
    bound = None if bound is None else bound.to(torch.float64)
    groups = {}
    if mean_families:
        groups["unbiased"] = dict(kind="mean", families=list(mean_families), alpha=alpha, target=target,
                                  variance=var, bound=bound, target_stderr=target_se, prefix="unbiased", scale=scale)
    if variance_families and var is not None:
        groups["variance"] = dict(kind="variance", families=list(variance_families), alpha=alpha, variance=var,
                                  bound=bound, prefix="variance")
    if uncalibrated_mean_families:  # only a certain failure decides these rows (their other rows are discarded)
        groups["unbiased, uncalibrated"] = dict(kind="mean", claim="unbiased", certain_only=True, alpha=alpha,
                                                target=target, families=list(uncalibrated_mean_families),
                                                variance=None, bound=bound, target_stderr=target_se,
                                                prefix="unbiased", scale=scale)
    # the rounding floors in the precision the features are evaluated in (float32 where compute_dtype allows it)
    eps = torch.finfo(est.evaluation_dtype(x.dtype, compute_dtype)).eps
    rows = run_mean_variance_checks(estimates, families, groups, draws=draws, block=block, seed=seed, feature_eps=eps)
    return rows.get("unbiased", []), rows.get("variance", []), rows.get("unbiased, uncalibrated", [])


def _property(est: RandomFeatureEstimator, claim: str, *, draws: int, alpha: float, seed: int) -> CheckResult:
    gen = torch.Generator().manual_seed(seed)
    pts = extreme_points(est.dim, torch.Generator().manual_seed(seed + 1)).to(est.dtype)
    with torch.no_grad():
        fm = est.draw(gen, batch=draws)
        fx, fy = fm.pair(pts, pts.flip(0))
        logs = []
        if claim == "positive":  # the claim's note: positive in log space too (sign +1, finite log φ), which the
            # stabilisers of linear attention read; a log_features returning sign −1 was verified (a review finding)
            bound = fm.bind(pts, pts.flip(0))
            for log, sign in (bound.log_query(pts), bound.log_key(pts.flip(0))):
                logs.append(~(torch.isfinite(log) & (sign == 1)).expand(log.shape).flatten())
    allf = torch.cat([fx.flatten(), fy.flatten()])
    bad = ~torch.isfinite(allf) if claim == "finite" else ~(allf > 0)
    bad_logs = int(torch.cat(logs).sum()) if logs else 0
    example = ""
    if bad_logs and not bool(bad.any()):
        example = (f"in log space, {bad_logs} of the log-features have a sign other than +1 or a log that is not "
                   "finite (Component.log_features), though every feature value is > 0")
    if bool(bad.any()):  # the most negative value (a zero only where there is none): a 0 at an input of norm 0
        # (sin 0) was the example of 29 positivity refutations whose features are strictly negative elsewhere
        i = int(torch.nonzero(bad)[0]) if claim == "finite" else int(torch.argmin(torch.where(bad, allf, math.inf)))
        half = fx.numel()
        src = fx if i < half else fy
        flat = i if i < half else i - half
        row = (flat // src.shape[-1]) % pts.shape[0]
        p = pts[row] if i < half else pts.flip(0)[row]
        example = feature_example(float(src.flatten()[flat]), float(p.norm()))
    return property_check(
        int(bad.sum()) + bad_logs,
        allf.numel() + sum(t.numel() for t in logs),
        claim=claim,
        name=f"{claim}[norms ≤ 10]",
        seed=seed,
        alpha=alpha,
        example=example,
    )


def _yes_no(claimed: bool) -> str:
    """How a yes/no claim reads in a verdict's ``claimed`` field (the unbiasedness claim reads "exact", "no", …)."""
    return "yes" if claimed else "no"


def _any_failed(rows: list[CheckResult]) -> bool:
    return any(c.status == "failed" for c in rows)


def _verdict(est, claim, claimed_level, claimed: bool, checks: list[CheckResult]) -> Verdict:
    proof = est.claims.proofs.get(claim, "")
    if not checks:
        return Verdict(est.name, claim, claimed_level, "n/a", float("nan"), float("nan"), "", "", proof)
    failed = [c for c in checks if c.status == "failed"]
    undecided = [c for c in checks if not c.passed and c.status != "failed"]  # refused or stopped rows
    worst = min(checks, key=lambda c: c.p_value if c.p_value == c.p_value else 2.0)
    if claimed:  # verified only when every row passed: a stopped row is no pass
        verdict = "FAILED" if failed else ("refused" if undecided else "verified")
    else:
        verdict = "refuted" if failed else "not refuted"
    pick = failed[0] if failed else (undecided[0] if claimed and undecided else worst)  # the row behind it
    evidence = f"{pick.name}: {pick.detail}" if pick.detail else pick.name
    return Verdict(
        est.name,
        claim,
        claimed_level,
        verdict,
        pick.p_value,
        pick.effect_size,
        pick.method,
        evidence,
        proof,
        [c.as_dict() for c in checks],
    )


PATH_DRAWS = 8  # draws on which the estimates the checks read are compared with the features' products


def _law_forms_agree(law, seed: int) -> None:
    """A law's closed forms in their two spellings must agree: mgf with exp(log_mgf), char_fn with exp(log_char_fn)
    where the law has it, at a few points of norm ≤ 1/2 (within the rounding of exp(log M); points outside a form's
    domain are skipped). The components read the log forms (and a Gaussian's ``quadratic``); a subclass of a
    built-in law that overrode char_fn and mgf only kept its parent's log forms, and a correct law FAILED against a
    target it never claimed (a review finding): ValueError naming the methods."""
    if law is None or law.reference is not law:
        return
    g = torch.Generator().manual_seed(seed_for("law forms", seed))
    z = torch.randn(6, law.dim, generator=g, dtype=torch.float64)
    z = (z / z.norm(dim=-1, keepdim=True) * torch.linspace(0.05, 0.5, 6, dtype=torch.float64)[:, None]).to(law.dtype)
    for plain, log in (("mgf", "log_mgf"), ("char_fn", "log_char_fn")):
        if not hasattr(law, log):
            continue
        try:
            a, b = getattr(law, plain)(z).to(torch.float64), getattr(law, log)(z).to(torch.float64).exp()
        except (ClosedFormUnavailable, ValueError):  # no such form, or z outside its domain
            continue
        # exp of a log carries the log's absolute rounding as a relative one: ROUNDING_ULPS·ε·(1 + |log M|)·M
        tol = ROUNDING_ULPS * torch.finfo(law.dtype).eps * (1 + b.log().abs()) * torch.maximum(a.abs(), b.abs())
        if not bool(((a - b).abs() <= tol).all()):
            i = int(((a - b).abs() / torch.maximum(a.abs(), b.abs())).argmax())
            raise ValueError(f"the {law.name} law ({type(law).__name__}) gives {plain}(z) = {float(a[i]):.6g} but "
                             f"exp({log}(z)) = {float(b[i]):.6g} at ‖z‖ = {float(z[i].norm()):.3g}: the estimators "
                             f"read {log} (a subclass that overrides {plain} must override {log} too)")


def _paths_row(est: RandomFeatureEstimator, family: InputFamily, alpha: float, seed: int,
               compute_dtype: torch.dtype | None) -> CheckResult | None:
    """The checks read ``est.sample_estimates`` (``Component.pair_estimates``, which may be a cheaper expression than
    the features' dot product), while a model reads the features of ``est.draw``: on :data:`PATH_DRAWS` draws from
    one seed (the same W: sample_estimates draws as draw(generator, batch=r) does) the two must be one number by the
    reproducibility checks' rule (within 2·(F + F), F the rounding floor of Σ_i |φ_i(x)ψ_i(y)| in the evaluation
    dtype, NaN only with NaN). A component whose pair_estimates was right and whose features were 10 % off per side
    was "verified unbiased" (a review finding): the row fails it. Before that, the estimates must come from the
    generator they are given (:func:`~kerneltheory.testing.replay.estimates_follow_their_generator`: a law drawing
    from torch's global generator, or reseeding its own, got verified or random verdicts): a ValueError naming the
    estimator."""
    x, y = (t.to(est.dtype) for t in family.pairs())
    with torch.no_grad():
        estimates_follow_their_generator(
            lambda g, r: est.sample_estimates(x, y, g, r, compute_dtype=compute_dtype), est.name, seed)
        g = seed_for("paths", seed)
        got = est.sample_estimates(x, y, torch.Generator().manual_seed(g), PATH_DRAWS,
                                   compute_dtype=compute_dtype).to(torch.float64)
        fq, fk = est.draw(torch.Generator().manual_seed(g), batch=PATH_DRAWS).pair(x, y)
        fq, fk = fq.to(torch.float64), fk.to(torch.float64)
    ref, size = (fq * fk).sum(-1), (fq.abs() * fk.abs()).sum(-1)
    # two evaluations of one draw: the reproducibility checks' rule (user_calls._one_number), each within the rounding
    # floor of Σ|φ_iψ_i| at its pair in the evaluation dtype (as the replay of a feature map, replay._replayed)
    floor = pair_rounding_floor(size, feature_eps=torch.finfo(est.evaluation_dtype(x.dtype, compute_dtype)).eps)
    gap = _difference(got, ref)
    bad = ~((gap == 0) | (torch.isfinite(gap) & (gap <= 4 * floor)))
    if not bool(bad.any()):
        return None
    r, p = (int(i) for i in torch.nonzero(bad)[0])
    return CheckResult.certain_failure(
        "estimates against the features", f"sample_estimates gives {float(got[r, p]):.6g} at pair {p} of "
        f"{family.name} in draw {r}, where the features of the same draw give φ(x)ᵀψ(y) = {float(ref[r, p]):.6g} "
        f"(Σ|φ_iψ_i| = {float(size[r, p]):.3g}): {type(est.component).__name__}.pair_estimates is not the dot "
        "product of its features, so the checks read other numbers than a model computes",
        name="unbiased[estimates = features' products]", claim="unbiased", alpha=alpha, sample_size=PATH_DRAWS,
        seed=seed)


def verify_estimator(
    est: RandomFeatureEstimator | str,
    *,
    budget: str = "quick",
    alpha: float = 1e-6,
    seed: int = 0,
    dim: int | None = None,
    num_features: int | None = None,
    compute_dtype: torch.dtype | None = None,
) -> tuple[list[Verdict], Report]:
    """Check every claim of ``est`` (an estimator, or a registry name built at ``dim``, ``num_features``: default
    :data:`MATRIX_DIM`, :data:`MATRIX_FEATURES`; an estimator has its own, and giving others is an error).
    ``compute_dtype`` is passed to ``est.sample_estimates`` (float32 evaluation where it is allowed).

    The report's α is split evenly across its checks, and each check's share across its sequential looks. The
    inputs are the moderate, spread-direction and cross families and the norm sweep a pilot allows
    (:mod:`~kerneltheory.testing.verify`). Unclaimed properties are tested too, on harder inputs,
    to look for a counterexample. Returns the verdicts (one per claim, claimed or not) and the report of the
    claimed properties (``report.passed`` iff every claim held).
    """
    if isinstance(est, str):
        est = E.get(est, check_int(MATRIX_DIM if dim is None else dim, "dim", minimum=1),
                    check_int(MATRIX_FEATURES if num_features is None else num_features, "num_features", minimum=1))
    if not isinstance(est, RandomFeatureEstimator):
        raise TypeError(f"est must be a RandomFeatureEstimator or a registered name, got {type(est).__name__}")
    for given, own, what in ((dim, est.dim, "dim"), (num_features, est.num_features, "num_features")):
        if given is not None and given != own:  # it was ignored
            raise ValueError(f"{what} = {given} applies to a registry name; the estimator {est.name} has {what} = "
                             f"{own} (build it at the size to test)")
    alpha = check_alpha(alpha)
    seed = check_int(seed, "seed", minimum=0)
    cfg = _budget(budget)
    base = seed_for(est.name, seed)
    _law_forms_agree(est.law, base)
    fam, nonfinite, _ = _families(est, base, cfg["draws"])
    exact = est.claims.unbiased == "exact"
    stress = [] if exact else _stress_families(est.dim, torch.Generator().manual_seed(base + 1))
    want_var = est.claims.variance
    # a component whose tails the variance check is measured not to cover (tests/test_calibration.py) gets a
    # refusal instead of a check that could fail a true claim more often than its α
    uncalibrated = want_var and getattr(est.component, "variance_check_uncalibrated", "")
    checked_var = want_var and not uncalibrated
    families = fam + stress
    # a component whose checks are measured to hold their level only up to a radius (features/hybrid.py) gets refused
    # rows, naming why, at the families beyond it for the claims it names (``beyond_calibrated_radius``), not checks
    # that could fail a true claim more often than their α. Its mean rows there are drawn, apart (their failures stop
    # no other row) and without the claimed variance, for their certain failures only (CheckResult.certain: a
    # non-finite estimate, one outside its declared bound, a target that is no number); they take no share of α (their
    # group is decided by certain failures only) and are not re-run. Its variance rows there are not drawn.
    far = _beyond_calibrated_radius(est.component, families)
    # (the stress families carry no variance row: nothing to refuse there)
    far_mean, far_var = far.get("unbiased", {}), {i: w for i, w in far.get("variance", {}).items() if i < len(fam)}
    mean_idx = [i for i in range(len(families)) if i not in far_mean]
    var_idx = [i for i in range(len(fam)) if i not in far_var] if checked_var else []
    n_checks = len(mean_idx) + (len(var_idx) if checked_var else len(fam) * want_var) + 2
    a = alpha / n_checks
    # A check refused for heavy tails is re-run on 4× as many *fresh* draws (a new seed), up to the thorough
    # budget; the verdict uses the new draws only. The attempts split the check's level a (a/2 for the first,
    # the other half evenly over the possible re-runs), so a check's false-failure bound stays a whatever the
    # re-runs (proofs/verification.md item 7).
    reruns = 0
    while cfg["draws"] * 4 ** (reruns + 1) <= BUDGETS["thorough"]["draws"]:
        reruns += 1
    levels = [a / 2] + [a / (2 * reruns)] * reruns if reruns else [a]
    means, variances, far_means = _mean_checks(  # the stress families carry no variance check
        est,
        families,
        draws=cfg["draws"],
        block=cfg["block"],
        alpha=levels[0],
        seed=base,
        mean_families=mean_idx,
        variance_families=var_idx,
        uncalibrated_mean_families=sorted(far_mean),
        compute_dtype=compute_dtype,
    )
    draws, level = cfg["draws"], 0
    while any(c.refused for c in means + variances) and draws * 4 <= BUDGETS["thorough"]["draws"]:
        draws, level = draws * 4, level + 1
        # only the refused checks are re-run (a row that is not kept must not be computed: a failure in it would
        # otherwise decide its claim and leave the kept rows "stopped"), and only while their claim has no failed
        # row (a failure decides the verdict; more draws could not change it)
        # (k indexes a claim's rows, mean_idx[k] or var_idx[k] the row's family)
        redo = [k for k, c in enumerate(means) if c.refused and not _any_failed(means)]
        redo_var = [k for k, c in enumerate(variances) if c.refused and not _any_failed(variances)]
        if not redo and not redo_var:
            break
        idx = sorted({mean_idx[k] for k in redo} | {var_idx[k] for k in redo_var})
        at = {i: j for j, i in enumerate(idx)}
        new_means, new_vars, _ = _mean_checks(
            est,
            [families[i] for i in idx],
            draws=draws,
            block=cfg["block"],
            alpha=levels[level],
            seed=base + 100 * level,
            mean_families=[at[mean_idx[k]] for k in redo],
            variance_families=[at[var_idx[k]] for k in redo_var],
            compute_dtype=compute_dtype,
        )
        for k, row in zip(redo, new_means, strict=True):
            means[k] = row
        for k, row in zip(redo_var, new_vars, strict=True):
            variances[k] = row
    # each claim's rows in the families' order, the refusals beyond the calibrated radius in their place (after the
    # re-runs, which must not redraw them)
    means = _in_family_order(means, mean_idx, far_mean, families, "unbiased", a, base,
                             dict(zip(sorted(far_mean), far_means, strict=True)))
    if checked_var:
        variances = _in_family_order(variances, var_idx, far_var, families, "variance", a, base, {})
    paths = _paths_row(est, fam[0], a, base + 9, compute_dtype)
    if paths is not None:  # the checks read sample_estimates; a model reads the features
        means.append(paths)
    if nonfinite is not None:  # a certain failure of the sweep's pilot, as in check_feature_map (verify item 13)
        means.append(_pilot_failure(nonfinite, "unbiased", alpha=a, seed=base + 7))
        if checked_var:
            variances.append(_pilot_failure(nonfinite, "variance", alpha=a, seed=base + 7))
    if uncalibrated:
        variances = [
            CheckResult.refusal(uncalibrated, name=f"variance[{f.name}]", claim="variance", alpha=a, sample_size=0,
                                seed=base)
            for f in fam
        ]
    positive = _property(est, "positive", draws=cfg["property_draws"], alpha=a, seed=base + 2)
    finite = _property(est, "finite", draws=cfg["property_draws"], alpha=a, seed=base + 3)
    c = est.claims
    unbiased = _verdict(est, "unbiased", c.unbiased, exact, means)
    if est.own_target and unbiased.verdict == "verified":  # rows that cannot fail verify nothing (a review finding)
        unbiased = replace(unbiased, verdict="n/a", evidence=f"{est.own_target}; {unbiased.evidence}")
    variance = _verdict(est, "variance", "closed form" if c.variance else "none", c.variance, variances)
    # where a verified statistical claim was tested: the reach of the pairs of its decided rows (the sweep's radius
    # included), as check_feature_map's report names it (a variance formula wrong only past ‖x + y‖ ≈ 1.05 was
    # verified for positive features, and the verdict did not say how far the pairs reached)
    unbiased, variance, domain = _with_domain(unbiased, means, variance, variances, fam, exact)
    verdicts = [
        unbiased,
        _verdict(est, "positive", _yes_no(c.positive), c.positive, [positive]),
        variance,
        _verdict(est, "finite", _yes_no(c.finite), c.finite, [finite]),
    ]
    assert [v.claim for v in verdicts] == list(CLAIM_NAMES)
    claimed = [*(means if exact else []), *variances, *([positive] if c.positive else []), finite]
    report = Report(est.name, checks=claimed, alpha=alpha, budget=budget, seed=seed, domain=domain)
    return verdicts, report


def _beyond_calibrated_radius(component, families: list[InputFamily]) -> dict[str, dict[int, str]]:
    """For each claim the component names in ``calibrated_radius`` (a dict claim → radius, the claims "unbiased" and
    "variance") and ``beyond_calibrated_radius`` (the same claims → the reason), the indices of the families past the
    claim's radius (largest ‖x‖ or ‖y‖ above it), each with its refusal's detail; {} for a component without the
    attributes or with both None (a subclass's way out of its parent's). A family at exactly a radius (norms
    r(1 ± ε)) stays. Malformed attributes: ValueError naming them."""
    radii = getattr(component, "calibrated_radius", None)
    owner = type(component).__name__
    stale = [a for a in ("variance_check_radius", "variance_check_beyond") if hasattr(component, a)]
    if radii is None and getattr(component, "beyond_calibrated_radius", None) is not None:
        stale.append("beyond_calibrated_radius without calibrated_radius")
    if stale:  # a declaration that would be ignored
        raise ValueError(f"{owner} declares {', '.join(stale)}: declare calibrated_radius (a dict claim → radius) and "
                         "beyond_calibrated_radius (claim → reason) instead")
    if radii is None:
        return {}
    reasons = getattr(component, "beyond_calibrated_radius", None)
    what = {"unbiased": "unbiasedness", "variance": "variance"}
    if not isinstance(radii, dict) or not radii or not set(radii) <= set(what):
        raise ValueError(f"{owner}.calibrated_radius must map 'unbiased' and/or 'variance' to the norm up to which "
                         f"their checks hold their level, got {radii!r}")
    if not isinstance(reasons, dict) or set(reasons) != set(radii) or \
            not all(isinstance(r, str) and r for r in reasons.values()):
        raise ValueError(f"{owner}.beyond_calibrated_radius must map the claims of calibrated_radius ({sorted(radii)}) "
                         f"to the reason their checks are not calibrated beyond it, got {reasons!r}")
    out = {}
    for claim, radius in radii.items():
        r = check_real(radius, f"{owner}.calibrated_radius[{claim!r}]", minimum=0.0, strict_min=True)
        out[claim] = {i: f"the {what[claim]} check is not calibrated here (‖x‖, ‖y‖ > {r:g}): {reasons[claim]}"
                      for i, f in enumerate(families) if _largest_norm(f) > r * (1 + 1e-12)}
    return out


def _in_family_order(rows: list[CheckResult], idx: list[int], far: dict[int, str], families: list[InputFamily],
                     claim: str, alpha: float, seed: int, far_rows: dict[int, CheckResult]) -> list[CheckResult]:
    """A claim's checked ``rows`` (of ``families[i]`` for i in ``idx``) and, at the families ``far`` (index →
    detail), the row checked there (``far_rows``) where it is a certain failure
    (:attr:`~kerneltheory.testing.checks.CheckResult.certain`; shown at the check's level ``alpha``), else a refusal
    naming the detail; in the families' order."""
    out = dict(zip(idx, rows, strict=True))
    for i, why in far.items():
        row = far_rows.get(i)
        out[i] = replace(row, alpha=alpha) if row is not None and row.certain else CheckResult.refusal(
            why, name=f"{claim}[{families[i].name}]", claim=claim, alpha=alpha, sample_size=0, seed=seed)
    return [out[i] for i in sorted(out)]


def _largest_norm(family: InputFamily) -> float:
    """The largest ‖x‖ or ‖y‖ among the pairs of ``family`` (a norm family's radius, up to rounding)."""
    x, y = family.pairs()
    return float(torch.cat([x, y]).norm(dim=-1).max())


def _with_domain(unbiased: Verdict, means: list[CheckResult], variance: Verdict, variances: list[CheckResult],
                 fam: list[InputFamily], exact: bool) -> tuple[Verdict, Verdict, str]:
    """The unbiasedness and variance verdicts with the reach of their tested pairs appended to a verified one's
    evidence (:func:`~kerneltheory.testing.verify._tested_norms` of the families whose row was decided, i.e. passed or
    failed; ``means`` and ``variances`` begin with ``fam``'s rows, in its order), and the report's domain: the pairs of
    every decided row in the report, i.e. of the variance rows and, where unbiasedness is claimed (``exact``), the
    mean rows (the unclaimed mean rows are not in the report: a PASSED of the finiteness row alone named the reach of
    the mean rows that refuted unbiasedness); "" when the report holds no such row."""
    def decided(rows: list[CheckResult]) -> set[int]:
        return {i for i, row in zip(range(len(fam)), rows, strict=False) if row.status in ("passed", "failed")}

    def stated(v: Verdict, rows: list[CheckResult]) -> Verdict:
        tested = [fam[i] for i in sorted(decided(rows))]
        if v.verdict != "verified" or not tested:
            return v
        return replace(v, evidence=f"{v.evidence}; tested at {_tested_norms(tested)}")

    both = [fam[i] for i in sorted((decided(means) if exact else set()) | decided(variances))]
    return stated(unbiased, means), stated(variance, variances), _tested_norms(both) if both else ""
