"""Turning claims into checks: ``check_feature_map`` for any user's map, ``verify_estimator`` for ours.

A report is a list of :class:`~kerneltheory.testing.checks.CheckResult` rows. The false-failure budget α of a
report is split evenly across its statistical checks (Bonferroni), and each check's share across its sequential
looks (:mod:`~kerneltheory.testing.sequential`), so a correct map fails a whole report with probability at most
α, and a clear defect is rejected after a few hundred draws.

The inputs of a check are chosen per map and kernel: the moderate families at ‖x‖ ≤ 0.5, the spread directions
(diagonal, every axis ±e_i, first/last coordinate), a cross family (one sequence, every query against every
key), and norm sweeps out to the largest radius where a pilot run finds the estimator's tails still light
enough for the budget (:func:`sweep_radii`; a pilot estimate that is not finite there fails the claim). Before
any draw is counted, two draws from identically seeded generators must agree and each row must be mapped by itself
(:mod:`~kerneltheory.testing.replay`); the map is called as :mod:`~kerneltheory.testing.user_calls` says.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch

from .._validation import all_finite, check_alpha, check_flag, check_int, check_real
from ..montecarlo import Moments
from ._heads import declared_deterministic, joining, noting_heads, one_head_note, per_head
from .checks import (
    GUARD,
    LEFT_OUT,
    MIN_DRAWS,
    CheckResult,
    binade_exponents,
    clt_guard,
    coarse_format_refusal,
    feature_example,
    mean_check,
    one_map,
    pair_rounding_floor,
    property_check,
    unresolved_pairs,
    variance_check,
)
from .dependence import block_segments, dependence_refusal, fresh_blocks
from .inputs import (
    InputFamily,
    check_families_fit,
    cross_family,
    direction_families,
    extreme_points,
    moderate_families,
    norm_family,
    user_families,
)
from .reliance import settle_claimed_variances, variance_backing
from .replay import _check_replayable
from .seeds import seed_for
from .sequential import (
    FUTILITY_FROM,
    FUTILITY_MISS,
    Futility,
    alpha_spending,
    block_sizes,
    futility_plan,
    looks,
    sequential_draws,
)
from .user_calls import _Evaluator, _kernel_scale, _pair_values

RADIUS = 0.5  # ‖x‖, ‖y‖ ≤ 0.5 so ‖x + y‖² ≤ 1: moderate fourth moments for exponential features (MATH.md §4)
SWEEP_RADII = (1.0, 2.0, 4.0, 8.0)  # candidate radii of the norm sweep, tried in order by the pilot
PILOT_DRAWS = 256
CLAIMS = frozenset({"unbiased", "positive", "variance", "finite", "proportional"})
BUDGETS = {
    "quick": {"draws": 4096, "block": 256, "property_draws": 16},
    "thorough": {"draws": 65536, "block": 256, "property_draws": 128},
}


@dataclass
class Report:
    """The result of a set of checks: ``passed`` iff every row passed.

    ``status`` is ``"PASSED"``, ``"FAILED"`` (some check rejected its claim) or ``"REFUSED"`` (no check rejected,
    but some could not be run meaningfully: never a pass).
    """

    subject: str
    checks: list[CheckResult] = field(default_factory=list)
    alpha: float = 1e-6
    budget: str = "quick"
    seed: int = 0
    notes: list[str] = field(default_factory=list)  # what the verdict covers (e.g. the input norms tested)
    domain: str = ""  # where the statistical claims were tested ("‖x‖, ‖y‖ ≤ 0.5 (‖x + y‖ ≤ …)"), named beside a PASSED

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        """The rows that rejected their claim (not the refused or stopped ones)."""
        return [c for c in self.checks if c.status == "failed"]

    @property
    def refusals(self) -> list[CheckResult]:
        return [c for c in self.checks if c.refused]

    @property
    def status(self) -> str:
        if self.passed:
            return "PASSED"
        return "FAILED" if self.failures or not self.checks else "REFUSED"

    def as_dict(self) -> dict:
        return {
            "subject": self.subject,
            "passed": self.passed,
            "status": self.status,
            "alpha": self.alpha,
            "budget": self.budget,
            "seed": self.seed,
            "notes": list(self.notes),
            "domain": self.domain,
            "checks": [c.as_dict() for c in self.checks],
        }

    def __str__(self) -> str:
        where = f" at {self.domain}" if self.domain and self.status == "PASSED" else ""
        head = (
            f"{self.subject}: {self.status}{where} "
            f"({sum(c.passed for c in self.checks)}/{len(self.checks)} checks passed; total α = {self.alpha:g}, "
            f"budget {self.budget}, seed {self.seed})"
        )
        lines = [head] + [f"  note: {note}" for note in self.notes]
        marks = {"passed": "ok", "failed": "FAIL", "refused": "REFUSED", "stopped": "STOPPED"}
        for c in self.checks:
            lines.append(
                f"  {marks[c.status]:7s} {c.name:34s} {c.method:22s} stat={c.statistic:<10.4g} p={c.p_value:<9.3g} "
                f"α={c.alpha:<8.2g} effect={c.effect_size:<9.3g} n={c.sample_size:<6d} seed={c.seed}"
            )
            if c.detail and not c.passed:
                lines.append(f"          {c.detail}")
        return "\n".join(lines)


def _budget(budget: str) -> dict:
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    return BUDGETS[budget]


def _claims(claims) -> set[str]:
    if isinstance(claims, str):
        claims = {claims}
    if isinstance(claims, Mapping):
        raise TypeError(f"claims must be a claim name or a set of names from {sorted(CLAIMS)}, got a "
                        f"{type(claims).__name__}: its keys would be read as claims whatever their values; pass the "
                        "set of the claims the map makes")
    if not isinstance(claims, Iterable):
        raise TypeError(f"claims must be a claim name or a set of names from {sorted(CLAIMS)}, "
                        f"got {type(claims).__name__}")
    claims = set(claims)
    unknown = claims - CLAIMS
    if unknown:
        raise ValueError(f"claims must be a subset of {sorted(CLAIMS)}, got unknown: "
                         f"{', '.join(sorted(map(repr, unknown)))}")
    if not claims:
        raise ValueError("claims must name at least one claim")
    return claims


class Sweep(list):
    """The families of a norm sweep (a ``list`` of :class:`~kerneltheory.testing.inputs.InputFamily`) and how it
    ended: ``stopped`` says why it stopped before the last candidate radius ("" when it reached it), and
    ``nonfinite`` holds ``(family, pilot estimates)`` when the pilot saw an estimate that is not finite where the
    kernel is (that family is not in the list: it is a failure, not a family to test)."""

    def __init__(self, families=(), *, stopped: str = "", nonfinite: tuple | None = None):
        super().__init__(families)
        self.stopped, self.nonfinite = stopped, nonfinite


def sweep_radii(
    estimate_pairs: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    kernel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    dim: int,
    generator: torch.Generator,
    *,
    draws: int,
    radii: Sequence[float] = SWEEP_RADII,
    pilot: int | None = None,
    statistic: Callable | None = None,
) -> Sweep:
    """The norm-sweep families for one map and kernel: one :func:`~kerneltheory.testing.inputs.norm_family` per
    radius of ``radii``, in order, while a pilot of ``pilot`` independent draws (``estimate_pairs(x, y, r) → [r,
    P]``) finds the estimator informative and its tails light enough for ``draws`` draws: every target finite, the
    CLT guard of the pilot's own draws within its limit and the guard predicted for the full budget
    (worst·√(pilot/draws)) at most half of it, and the predicted standard error of the mean below the kernel's
    magnitude. The pilot draws a quarter of the budget (``pilot`` None, :func:`pilot_draws`), so the two guard
    conditions ask the same (worst ≤ GUARD gives worst·√(1/4) ≤ GUARD/2); with 256 draws against 4096 the first decided
    alone and stopped correct bounded maps by chance (:func:`pilot_draws`). How far the sweep reaches is still
    random from seed to seed near a radius where the tails become too heavy, and a defect that shows only at the
    largest radii is not tested at a seed whose sweep stops before them (the note of every report names the radii
    tested). The sweep stops at the first radius that fails, and
    :attr:`Sweep.stopped` says why. A pilot estimate that is not finite where the kernel is also stops it, and is
    kept in :attr:`Sweep.nonfinite`: it is no heavy tail but a map that is wrong at that input, which the caller
    must report as a failure (proofs/verification.md, item 13). The pilot's draws are independent of the
    check's, so choosing the inputs from them costs no α.

    ``statistic(est, target, at)``: what the rules read in place of the estimates and the kernel's magnitude, for a
    test of another statistic (the proportional rows' ratio differences,
    :func:`~kerneltheory.testing.proportional.proportional_sweep`, which also need the kernel > 0 at every pair):
    ``(samples [r, P'], scale, what, noisy)`` with ``noisy`` ending the message "the predicted standard error of …",
    or a string saying why the sweep stops there.
    """
    pilot = pilot_draws(draws) if pilot is None else check_int(pilot, "pilot", minimum=MIN_DRAWS)
    chosen = []
    for r in radii:
        at = f"‖x‖ = ‖y‖ = {r:g}"
        fam = norm_family(dim, generator, r)
        target = _pair_values(kernel, [fam], "kernel")
        if not bool(torch.isfinite(target).all()) or (statistic is not None and not bool((target > 0).all())):
            return Sweep(chosen, stopped=f"the kernel is not finite{'' if statistic is None else ' and > 0'} at "
                                         f"every pair at {at}")
        est = estimate_pairs(fam.x.clone(), fam.y.clone(), pilot)  # copies: user code may write into its input
        if not bool(torch.isfinite(est).all()):
            return Sweep(chosen, stopped=f"a pilot estimate is not finite at {at}", nonfinite=(fam, est))
        read = ((est, target.abs().clamp_min(1e-300), "estimates", "the mean exceeds the kernel")
                if statistic is None else statistic(est, target, at))
        if isinstance(read, str):
            return Sweep(chosen, stopped=read)
        samples, scale, what, noisy = read
        m = Moments.from_samples(samples)
        why = pilot_tails(m, at, draws, what)
        if why:
            return Sweep(chosen, stopped=why)
        if bool((torch.sqrt(m.variance / draws) > scale).any()):
            return Sweep(chosen, stopped=f"at {at} the predicted standard error of {noisy}")
        chosen.append(fam)
    return Sweep(chosen)


def pilot_draws(draws: int) -> int:
    """The draws of a norm sweep's pilot for a budget of ``draws``: a quarter of it, at least :data:`PILOT_DRAWS`.
    The pilot's own guard then asks no more than the guard predicted for the budget; with 256 pilot draws against
    4096 it decided alone, √((κ − 1)/256) ≤ 0.1, a sample kurtosis κ ≤ 3.56, which near-normal estimates exceed by
    chance (the sample kurtosis of 256 normal draws has a standard deviation of about 0.3): the sweep of a correct
    trigonometric map (d = 8, m = 64) admitted no radius at 10 of 40 seeds, at 0 of 40 with 1024."""
    return max(PILOT_DRAWS, draws // 4)


def pilot_tails(m: Moments, at: str, draws: int, what: str) -> str:
    """Why a norm sweep stops at the radius ``at`` for the tails of a pilot's draws (moments ``m``), or "" where they
    are light enough for ``draws`` draws: the CLT guard of the pilot's own draws within its limit and the guard
    predicted for ``draws`` (worst·√(pilot/draws)) at most half of it (:func:`sweep_radii`)."""
    ok, worst = clt_guard(m)
    predicted = worst * math.sqrt(m.count / draws)
    if ok and predicted <= GUARD / 2:
        return ""
    return (f"the moments of the pilot's {what} at {at} are not representable in float64" if not math.isfinite(worst)
            else f"the tails at {at} are too heavy (the pilot's guard {worst:.3g} > {GUARD:g})" if not ok else
            f"the tails at {at} are too heavy for {draws} draws (guard predicted from the pilot "
            f"{predicted:.3g} > {GUARD / 2:g})")


def _binary_exponents(samples: torch.Tensor, group: dict, sl: slice) -> torch.Tensor:
    """Per pair of ``samples`` ``[n, q]``, the exponent k with which ``ldexp(·, k)`` brings the largest magnitude among
    the pair's estimates, its target, bound, kernel scale, target standard error and the square root of its claimed
    variance into [1/2, 1) (so that none of them overflows); the non-finite ones are left out (frexp(inf) is 0, which
    left a pair with an infinite kernel scale unscaled; a non-finite estimate, target, variance or reference error
    fails the check and an infinite bound or scale is none); 0 for pairs already within
    2^±:data:`~kerneltheory.testing.checks.SAFE_BINADE` and pairs where all of them are 0
    (:func:`~kerneltheory.testing.checks.binade_exponents`). Multiplying by 2^k is exact in binary floating point
    (barring underflow of values 2^1000 smaller than the largest), so a check of the rescaled pair is the check of
    the pair: every statistic it computes is scale-free (proofs/verification.md, item 11)."""
    finite = lambda v: torch.where(torch.isfinite(v), v, torch.zeros_like(v))  # noqa: E731
    ref = finite(samples.abs().amax(0))
    for key, power in (("target", 1), ("variance", 2), ("bound", 1), ("scale", 1), ("target_stderr", 1)):
        value = group.get(key)
        if value is not None:
            v = value[sl].to(samples).abs()
            ref = torch.maximum(ref, finite(v.sqrt() if power == 2 else v))
    return binade_exponents(ref)


def _scaled(value: torch.Tensor | None, sl: slice, e: torch.Tensor, key: str) -> torch.Tensor | None:
    """``value[sl]`` in the units of :func:`_binary_exponents` (a variance scales with the square)."""
    if value is None:
        return None
    return torch.ldexp(value[sl].to(torch.float64), 2 * e if key == "variance" else e)


def _unit_note(detail: str, e: torch.Tensor, labels: list[str], kind: str) -> str:
    """What the rescaling of :func:`_binary_exponents` (exponents ``e``, not all 0) did to the numbers of ``detail``:
    the unit of every pair the detail names (by its label; the numbers shown for that pair are in that unit, a
    variance in its square), then how many pairs were rescaled."""
    units = []
    for j, label in enumerate(labels):
        if f"({label})" not in detail:
            continue
        k = -int(e[j])
        if k == 0:
            units.append(f"values at {label} as they are")
        elif kind == "variance":
            units.append(f"estimates at {label} in units of 2^{k} (variances in units of 2^{2 * k})")
        else:
            units.append(f"values at {label} in units of 2^{k}")
    return "; ".join(units + [f"{int((e != 0).sum())} pair(s) checked after an exact rescaling by a power of two, so "
                              "that their moments are representable in float64"])


def _constant_factor_note(m: Moments, target: torch.Tensor) -> str | None:
    """For the failed rows of an unbiasedness claim: where the mean of every pair of every tested family is within 4
    standard errors of c·target, one multiple c ≠ 1 of its nonzero target, a note that the bias is consistent with a
    constant factor: a normalisation left out or doubled (1/√m missing on both sides gives c = m), or an estimator's
    own constant factor (saderf/moment_matched: 0.98); None otherwise. c is the ratio mean/target at the pair whose
    ratio has the least standard error (a pair estimated exactly, such as φ(0)ᵀφ(0), gives c exactly); each pair's
    standard error combines its mean's with c's. (c was the median of the P ratios, its error taken as √(π/2)·s̃/√P,
    the large-sample error of a median of equally precise ratios; with ratios of very unequal precision that
    understated it, and features missing their 1/√m, c = 64, lost the note at 3 of 60 seeds: the exact pair at x = 0
    sat 4.5 such errors from the median.) Over all families, not one: within a family of pairs of one ‖x + y‖ a
    frequency-scale error is one factor too. A hint, not a verdict, read from the moments the run already has: the
    rows failed on their own tests, and the calibrated test of one factor is
    :func:`~kerneltheory.testing.proportional.proportional_check`, to which the note points."""
    target = target.to(m.mean.dtype)
    if m.count < 2 or target.numel() == 0 or not bool((target != 0).all()):
        return None
    ratio = m.mean / target
    se = (m.variance / m.count).clamp(min=0).sqrt()
    relative = se / target.abs()
    j = int(torch.argmin(torch.where(torch.isfinite(relative), relative, math.inf)))
    c, se_c = float(ratio[j]), float(relative[j])
    slack = 4 * (se**2 + (target * se_c) ** 2).sqrt()
    if not (math.isfinite(c) and abs(c - 1) > 4 * se_c and bool((m.mean - c * target).abs().le(slack).all())):
        return None
    return (f"every pair's mean is within 4 standard errors of {c:.4g}× its target: consistent with a constant factor "
            "(e.g. a normalisation: 1/√m missing on both sides gives m), which the claim 'proportional' tests at its "
            "level (kerneltheory audit: --claims proportional)")


def _nonfinite_row(samples: torch.Tensor, base: dict, labels: list[str]) -> CheckResult | None:
    if all_finite(samples):
        return None
    bad = ~torch.isfinite(samples)
    draw, pair = (int(i) for i in torch.nonzero(bad)[0])
    return CheckResult.certain_failure(
        "non-finite estimate",
        f"the estimate is {float(samples[draw, pair])} at pair {pair} ({labels[pair]}), draw {draw}: "
        "a map that is not finite cannot estimate a finite kernel",
        **base,
    )


def _retested(prev: CheckResult, row: CheckResult, dependent: bool, claim: str, i: int, rows, backing,
              rejected_without) -> CheckResult:
    """A row accepted early (``prev``) after its test ran again at a later look (``row``): the later look's rejection
    replaces it, or a failure that dependent draws explain. A mean row that used a claimed variance keeps two
    tests (proofs/verification.md, item 12): the test without the variance, W, takes a later rejection (recorded as
    the run's first rejection of W where it is, for the settling of the claimed variances), else keeps its earlier
    accept; the test with it replaces the row only while the family's variance row has not failed (a rejection under
    a variance this run refuted is the variance's failure, which the settling reads, not the mean's)."""
    fallback = prev.without_variance
    w_new = row.without_variance
    if w_new is not None and w_new.status == "failed":
        rejected_without.setdefault((claim, i), w_new)
        fallback = w_new
    vclaim = backing.get(claim, {}).get(i)
    vrow = rows.get(vclaim, {}).get(i) if vclaim is not None else None
    refuted = prev.without_variance is not None and vrow is not None and vrow.status == "failed"
    if (row.status == "failed" or dependent) and not refuted:
        certain = row.method in ("non-finite estimate", "bounded")  # no variance involved: the settling keeps it
        return replace(row, without_variance=None if certain else fallback, detail=f"{row.detail}; after accepting "
                       f"early at {prev.sample_size} draws (the run went on for other claims)")
    return prev if fallback is prev.without_variance else replace(prev, without_variance=fallback)


def _atoms(g: dict, samples: torch.Tensor, offsets: list[int], eps, final: bool) -> bool:
    """Whether a mean group's estimates may have an atom off their target (``mean_check``'s ``atoms``): the group's
    ``atoms`` when it declares one, else True unless, at the ``final`` look, every pair of its families agreed at every
    draw, up to rounding (:func:`~kerneltheory.testing.checks.one_map`: a deterministic map, tested as one). Judged
    on the whole budget only: a map that is a rare event at every pair at once agrees over the first 256 draws far
    more often than over all of them, and an early look's rejection would be final."""
    if g["kind"] != "mean":
        return True
    if g.get("atoms") is not None:
        return bool(g["atoms"])
    if not final:
        return True
    cols = torch.cat([torch.arange(offsets[i], offsets[i + 1]) for i in g["families"]])
    values = [g[key][cols].to(torch.float64) for key in ("target", "scale") if g.get(key) is not None]
    return not one_map(samples[:, cols], *values, feature_eps=eps)


def run_mean_variance_checks(
    estimates: Callable[[torch.Generator, int], torch.Tensor],
    families: list[InputFamily],
    groups: dict[str, dict],
    *,
    draws: int,
    block: int,
    seed: int,
    first: int | None = None,
    futility_miss: float = FUTILITY_MISS,
    futility_from: float = FUTILITY_FROM,
    feature_eps: float | None = None,
) -> dict[str, list[CheckResult]]:
    """Sequential mean and variance checks over ``families``, all drawn together.

    ``feature_eps``: ε of the coarsest dtype the estimates were computed in, which sets the rounding floors
    (:func:`~kerneltheory.testing.checks.pair_rounding_floor`); None reads it, at every look, from ``estimates.eps``
    when it has one (:class:`_Evaluator` records the dtypes a user's map returns), else float64's.

    ``groups`` maps a claim to its checks: ``{"kind": "mean" | "variance", "families": [indices], "alpha": α per
    check, "target": [P] tensor, "variance": [P] tensor | None, "bound": [P] tensor | None, "target_stderr": ...,
    "prefix": name, "scale": [P] tensor | None, "claim": str, "certain_only": bool, "atoms": bool | None}``
    (``atoms``: :func:`~kerneltheory.testing.checks.mean_check`'s, for a law known to have or not to have an atom off
    the target; None or absent: True unless, at the last look, every pair of the group's families agreed at every
    draw, a map that was one function at every draw; ``claim``: the claim a mean
    group's rows name, by default its key, so that two groups can check one claim apart; ``certain_only``: only a
    certain failure (:attr:`~kerneltheory.testing.checks.CheckResult.certain`) decides a row before the last look,
    and no dependence test runs, for checks whose level is not calibrated and whose other failures the caller
    discards; ``scale``: the magnitude of the kernel at each pair, √|k(x, x)·k(y, y)|, which bounds |k(x, y)| for a
    positive-definite kernel and sets the pair's rounding floor even where the target itself is rounding noise). At
    each look of :func:`~kerneltheory.testing.sequential.looks` every undecided check is run at its spent level. A
    check is decided when it rejects, when it accepts early (at the looks of
    :func:`~kerneltheory.testing.sequential.futility_plan` with ``futility_miss``, from the looks with n_k ≥
    ``futility_from``·N; a miss of 0 turns this off) or at the last
    look; a group (a claim) is decided when one of its checks rejects or all of them are decided, and the draws stop
    when every group is decided. A check accepted early is tested once more on every draw taken, at the level of the
    run's last look, when the draws end: a rejection there (a certain failure included) replaces the accept. A
    check whose claim was decided before the check was (another check rejected first) gets a "stopped" row. Returns
    the rows per claim, in family order.
    A mean group's claimed ``variance`` is used only at the families where a variance group of the same run tests
    that variance (:func:`~kerneltheory.testing.reliance.variance_backing`), and there the mean rows are settled by
    the variance rows (:func:`~kerneltheory.testing.reliance.settle_claimed_variances`).
    """
    futility_miss = check_real(futility_miss, "futility_miss", minimum=0.0, maximum=0.5)
    sizes = [f.size for f in families]
    offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    labels_all = [lab for f in families for lab in f.labels()]
    first = block if first is None else first
    points = looks(draws, first)
    rows: dict[str, dict[int, CheckResult]] = {c: {} for c in groups}
    spent = {c: alpha_spending(g["alpha"], len(points)) for c, g in groups.items()}
    margins = futility_plan(points, futility_miss, futility_from)
    decided = set()
    last: dict[str, dict[int, CheckResult]] = {c: {} for c in groups}
    # the first rejection, at some look, of a mean row's test without its claimed variance: settling reads it even
    # where later looks of that test passed (each look's rejection is at its spent level: the union stays ≤ α)
    rejected_without: dict[tuple[str, int], CheckResult] = {}
    backing = variance_backing(groups)  # a claimed variance serves a mean test only where this run tests it
    blocks, split = block_sizes(draws, block, first), getattr(estimates, "split", None)
    # fresh blocks look for draws shared within a batch; a map drawn one call at a time has no batch to share, and
    # dependence between its calls (a module's state) is the serial test's (drawing them cost a second per failure)
    batched_draws = getattr(estimates, "batched", True)
    drawn: list = []

    def fresh(columns: torch.Tensor):  # the dependence tests' fresh draws of these columns (indices among all)
        # an evaluator of a user's sampler draws them at those pairs alone and through the batched path alone
        # (_Evaluator.at_columns, draw_batched): a batch is what can share draws, and the other points and plain calls
        # one at a time cost most of the fresh draws; other estimates are drawn once, at the first failure, for every
        # pair
        narrow = getattr(estimates, "at_columns", None)
        ev = narrow(columns) if narrow is not None else None
        if ev is not None:
            return fresh_blocks(ev.draw_batched, seed)
        if not drawn:
            watch = getattr(estimates, "watch", None)  # the positive/finite rows read the checks' draws, not these
            if watch is not None:
                estimates.watch = None
            try:
                drawn.append(fresh_blocks(estimates, seed, split))
            finally:
                if watch is not None:
                    estimates.watch = watch
        return drawn[0][0][:, columns], drawn[0][1]

    def test(claim: str, g: dict, i: int, k: int, samples: torch.Tensor, segments, eps_k, fut, atoms=True):
        """Family i's check of ``claim`` at look k on the draws so far: (row, whether a dependence refusal)."""
        n = samples.shape[0]
        a_k = spent[claim][k]
        sl = slice(offsets[i], offsets[i + 1])
        smp = samples[:, sl]
        labels = labels_all[sl]
        name = f"{g['prefix']}[{families[i].name}]"
        base = dict(name=name, claim=g.get("claim", claim) if g["kind"] == "mean" else "variance", alpha=a_k,
                    sample_size=n, seed=seed)
        row, dependent = _nonfinite_row(smp, base, labels), None
        if row is None:
            e = _binary_exponents(smp, g, sl)
            pick = lambda key: _scaled(g.get(key), sl, e, key)  # noqa: E731
            smp = torch.ldexp(smp, e)
            m = Moments._from_samples(smp)
            if g["kind"] == "mean":
                scale = [] if g.get("scale") is None else [pick("scale")]
                values = (pick("target"), m.mean, smp, *scale)
                atol = pair_rounding_floor(*values, feature_eps=eps_k)
                row = mean_check(m, pick("target"), alpha=a_k, name=name, seed=seed, bound=pick("bound"),
                                 variance=pick("variance") if i in backing.get(claim, {}) else None,
                                 samples=smp, atol=atol,
                                 target_stderr=pick("target_stderr"), labels=labels,
                                 claim=g.get("claim", claim), futility=fut,
                                 carry_without_variance=g.get("variance_known") is not True, atoms=atoms)
                reference, what = torch.stack([v.abs() for v in (pick("target"), *scale)]).amax(0), "the mean"
            else:
                row = variance_check(m, pick("variance"), alpha=a_k, name=name, seed=seed, samples=smp,
                                     bound=pick("bound"), labels=labels, futility=fut,
                                     atol=pair_rounding_floor(smp, feature_eps=eps_k))
                values, reference = (smp,), pick("variance").clamp(min=0).sqrt()
                what = "the standard deviation"
            # a pass that the features' rounding could produce is no pass (checks.coarse_format_refusal)
            without = row.without_variance
            row = coarse_format_refusal(row, values, reference, eps_k, labels, what)
            if without is not None:
                row.without_variance = coarse_format_refusal(without, values, reference, eps_k, labels, what)
            if g["kind"] == "mean":  # pairs whose floor hides 1 % of the target are no evidence (item 9)
                without, zero = row.without_variance, g["target"][sl] == 0  # zero before rescaling
                row = unresolved_pairs(row, atol, pick("target"), labels, zero)
                if without is not None:
                    row.without_variance = unresolved_pairs(without, atol, pick("target"), labels, zero)
            for r in (row, row.without_variance):  # the test without a claimed variance may decide instead
                if r is not None and bool((e != 0).any()):
                    r.detail = (r.detail + "; " if r.detail else "") + _unit_note(r.detail, e, labels, g["kind"])
            # a failure that dependent draws could make is no verdict (proofs/verification.md, item 13(g)); a group
            # decided by certain failures only has no statistical failure to explain
            dependent = None if g.get("certain_only") else dependence_refusal(
                row, smp, segments, labels, (lambda c: fresh(c + sl.start)) if batched_draws else None, whole=samples)
            row = dependent or row
        for r in (row, row.without_variance):
            if r is not None and len(points) > 1:
                r.detail = (r.detail + "; " if r.detail else "") + f"look {k + 1}/{len(points)}"
        return row, dependent is not None

    for k, samples in sequential_draws(estimates, draws, seed=seed, block=block, first=first):
        if samples.shape[1] != offsets[-1]:  # wider estimates were read by their first columns, narrower failed inside
            raise ValueError(f"estimates must have one column per pair of the families ({offsets[-1]}), got "
                             f"{samples.shape[1]}")
        final = k == len(points) - 1
        eps_k = feature_eps if feature_eps is not None else getattr(estimates, "eps", None)
        segments = block_segments(samples.shape[0], blocks, split)
        for claim, g in groups.items():
            if claim in decided:
                continue
            fut = Futility(points[-1], spent[claim][-1], margins[k]) if k in margins else None
            atoms = _atoms(g, samples, offsets, eps_k, final)
            for i in g["families"]:
                if i in rows[claim]:  # decided: rejected, or accepted early (tested again once the draws end)
                    continue
                row, dependent = test(claim, g, i, k, samples, segments, eps_k, fut, atoms)
                earlier = rejected_without.get((claim, i))
                if row.without_variance is not None:
                    if row.without_variance.status == "failed":
                        rejected_without.setdefault((claim, i), row.without_variance)
                    elif earlier is not None:  # a later look's pass does not undo an earlier rejection
                        row.without_variance = earlier
                last[claim][i] = row
                # (a group decided by certain failures only keeps drawing past a rejection: a later look may show one)
                fails = row.certain if g.get("certain_only") else row.status == "failed"
                if fails or row.accepted_early or final or dependent:
                    rows[claim][i] = row
            if any(r.status == "failed" for r in rows[claim].values()) or final or \
                    len(rows[claim]) == len(g["families"]):
                decided.add(claim)
        if len(decided) == len(groups):
            break
    # rows accepted early are tested once more on every draw the run took after their accept (for other claims), at
    # the level of the run's last look, which they have not spent (proofs/verification.md, item 8(c)): a rejection,
    # a certain failure (a non-finite estimate, one outside its bound) or a dependence refusal replaces the accept
    for claim, g in groups.items():  # a claim with a failed row too: the settling may yet turn that row into a pass
        held = rows[claim]
        for i in g["families"]:
            if i in held and held[i].accepted_early and held[i].sample_size < samples.shape[0]:
                row, dependent = test(claim, g, i, k, samples, segments, eps_k, None,
                                      _atoms(g, samples, offsets, eps_k, True))
                held[i] = _retested(held[i], row, dependent, claim, i, rows, backing, rejected_without)
    out = {}
    for claim, g in groups.items():
        out[claim] = []
        for i in g["families"]:
            if i in rows[claim]:
                out[claim].append(rows[claim][i])
            else:
                prev = last[claim].get(i)
                out[claim].append(CheckResult(
                    name=f"{g['prefix']}[{families[i].name}]", claim=g.get("claim", claim), statistic=math.nan,
                    p_value=math.nan,
                    alpha=g["alpha"], effect_size=math.nan, sample_size=0 if prev is None else prev.sample_size,
                    seed=seed, method="stopped", passed=False,
                    detail="not decided: the claim was already refuted by another check, so the draws stopped",
                ))
    settle_claimed_variances(out, groups, backing, draws=points[-1])
    for claim, g in groups.items():  # a hint on failed unbiasedness rows: one factor over every tested pair
        if g["kind"] == "mean" and any(r.status == "failed" for r in out[claim]):
            columns = torch.cat([torch.arange(offsets[i], offsets[i + 1]) for i in g["families"]])
            note = _constant_factor_note(Moments._from_samples(samples[:, columns]), g["target"][columns])
            for r in out[claim]:
                if r.status == "failed" and note is not None:
                    r.detail = (r.detail + "; " if r.detail else "") + note
    return out


@noting_heads("from_module", "head_samplers")
def check_feature_map(
    sample: Callable[..., object],
    kernel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    dim: int,
    claims,
    variance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    inputs: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
    alpha: float = 1e-6,
    seed: int = 0,
    budget: str = "quick",
    bind: Callable[[object, torch.Tensor, torch.Tensor], object] | None = None,
    batched: bool | None = None,
    sweep: bool = True,
    sequential: bool = True,
    accept_early: bool = True,
) -> Report:
    """Verify the claims of a user's random feature map against an exact kernel.

    Args:
        sample: ``sample(generator)`` draws one feature map: a function ``[n, d] → [n, D]`` or a
            ``(query_fn, key_fn)`` pair; called once per draw with a CPU generator seeded from ``seed``. If it
            takes a ``batch`` keyword, ``sample(generator, batch=r)`` draws r maps at once, each function mapping
            ``[n, d] → [r, n, D]`` (much faster; ``batched=False`` turns this off); where ``batch`` defaults to
            None, a quarter of the draws still go through ``sample(generator)``, so that both paths are tested (one law
            under the claim, so the draws stay iid; a defect in either biases the estimates). The rounding the
            checks allow
            follows the dtype of the features returned; a function that computes in a coarser dtype and casts
            its result declares it as an attribute, ``fn.feature_dtype = torch.float32``. Where that rounding could
            hide more than 1 % of the claim (bfloat16 and float16 features), a mean or variance row that does not
            reject is refused, not passed (:func:`~kerneltheory.testing.checks.coarse_format_refusal`).
        kernel: ``kernel(x, y) → [n, n']``, the exact Gram matrix the map claims to estimate, or the name of a
            built-in kernel (:data:`kerneltheory.kernels.KERNELS`, e.g. ``"softmax"``). ``kernel``,
            ``variance`` and ``bind`` get copies of the tested points (as the feature functions do), so writing into
            them in place moves nothing.
        dim: input dimension d.
        claims: a subset of ``{"unbiased", "positive", "variance", "finite", "proportional"}``; ``"proportional"``
            claims E[φ(x)ᵀφ(y)] = c·k(x, y) for one unknown c > 0
            (:func:`~kerneltheory.testing.proportional.proportional_check`); ``"positive"`` claims every feature
            value strictly > 0 (a map whose features can be exactly 0, ReLU features or a feature dropout, fails it),
            ``"finite"`` every feature value finite.
        variance: ``variance(x, y) → [n, n']``, the claimed variance of one draw's estimate φ(x)ᵀφ(y);
            required for the ``"variance"`` claim. The unbiasedness test uses it only when ``"variance"`` is
            claimed too, and then passes on it only where the variance check confirms it.
        inputs: extra ``(x, y)`` pairs of ``[P, d]`` tensors tested on top of the built-in input families.
        alpha: the report's total false-failure rate, split across its checks and their sequential looks.
        seed: base seed; every check's seed is derived from it and the check's name.
        budget: ``"quick"`` (at most 4096 draws per check) or ``"thorough"`` (65536). The rows of a map declared
            deterministic by :func:`~kerneltheory.testing.from_module` (``redraw=False``: every draw is the one
            module) may accept from the first look (256 draws) instead of the budget's quarter, and its norm
            sweep's pilot draws 256.
        bind: for data-dependent maps (OPRF/SADERF-style parameters computed from the sequence):
            ``bind(drawn_map, queries, keys)`` is called once per draw with the drawn map and all the query and
            key rows of the check, and returns the map (a function or a ``(query_fn, key_fn)`` pair) to evaluate
            on them. The parameters may depend on the inputs but not on the draw's randomness beyond the map.
        batched: force (True: every draw batched) or forbid (False) the batched call of ``sample``; None detects a
            ``batch`` keyword, and where it defaults to None draws a quarter of the draws through ``sample(generator)``
            as well.
        sweep: add norm-sweep families out to the radius a pilot run allows (see :func:`sweep_radii`); a pilot
            estimate that is not finite where the kernel is fails every statistical claim at that radius.
        sequential: look at the draws at 256, 512, ... and stop once every claim is decided (α-spending keeps
            the error rate; a check may accept early from N/4 on, from the first look for a map declared
            deterministic); False looks once, after the whole budget.
        accept_early: let a check stop to accept once its draws exclude every effect the full budget detects with
            power 0.9 (see below); False keeps drawing to the budget unless a check rejects (early rejection
            stays). Turn it off for a sampler whose behaviour may change after some number of calls (a warm-up, a
            schedule, a cache, a counter): once every check has accepted, no later draw is taken, so a change after
            the accepting look (from N/4 on, or from the first look for a map declared deterministic) is never
            seen.

    Returns:
        a :class:`Report`; ``report.passed`` is True iff every claimed property held; ``report.status`` says
        PASSED, FAILED or REFUSED; ``report.domain`` ("‖x‖, ‖y‖ ≤ 0.5 (‖x + y‖ ≤ …, ‖x − y‖ ≤ … at the tested
        pairs)"), which a PASSED names in the report's first line, and ``report.notes`` say up to which input norm
        the statistical claims were tested and why the norm sweep stopped there.

    Raises ``ValueError`` when two draws of ``sample`` from identically seeded generators give different estimates
    beyond rounding (a sampler that draws from the global generators: no verdict could be replayed from ``seed``;
    proofs/verification.md, item 13), and ``TypeError``/``ValueError`` naming the argument for a bad argument, a map
    that does not return a real ``torch.Tensor``, or a kernel that fails or returns a complex matrix.

    Features may be returned in any floating dtype; the estimates are computed in float64 and a pair whose draws
    agree up to rounding is compared with a floor in the precision of the coarsest dtype returned
    (:func:`~kerneltheory.testing.checks.pair_rounding_floor`).

    The mean and variance checks are sequential: a claim whose check rejects at an early look (256, 512, ...
    draws) is decided there; a check normally approximated may also accept at the looks from N/4 on, once its
    draws exclude every effect the full budget N detects with power 0.9 (at most 0.01 of that power is lost:
    :mod:`~kerneltheory.testing.sequential`); the draws stop once every claim is decided.

    Example (a correct positive random feature map for the softmax kernel)::

        import math, torch
        from kerneltheory import kernels
        from kerneltheory.testing import check_feature_map

        def sample(g, d=8, m=64):
            w = torch.randn(m, d, generator=g, dtype=torch.float64)
            return lambda x: torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(m)

        report = check_feature_map(sample, kernels.softmax, dim=8, claims={"unbiased", "positive", "finite"})
        assert report.passed, str(report)

    A sampler with a ``head_samplers`` attribute (one sampler per head of a multi-head module,
    :func:`~kerneltheory.testing.adapters.from_module`) is tested on every head in turn, each at α/heads with the
    same seed, and the report gives each row its worst head (:func:`join_head_reports`).
    """
    arguments = dict(locals())  # the call's arguments, for the test of each head
    d = check_int(dim, "dim", minimum=1)
    check_families_fit(d)
    claims = _claims(claims)
    alpha = check_alpha(alpha)
    seed = check_int(seed, "seed", minimum=0)
    batched = check_flag(batched, "batched", allow_none=True)
    sweep, sequential = check_flag(sweep, "sweep"), check_flag(sequential, "sequential")
    accept_early = check_flag(accept_early, "accept_early")
    cfg = _budget(budget)
    if "variance" in claims and variance is None:
        raise ValueError("the 'variance' claim needs variance=callable(x, y) giving the claimed variance")
    if isinstance(kernel, str):  # a built-in kernel by name, as `kerneltheory audit --kernel` takes it
        from ..kernels import get_kernel

        kernel = get_kernel(kernel)  # a ValueError naming the built-in kernels otherwise
    for name, fn in (("sample", sample), ("kernel", kernel), ("variance", variance), ("bind", bind)):
        if (fn is not None or name in ("sample", "kernel")) and not callable(fn):
            raise TypeError(f"{name} must be a callable, got {type(fn).__name__}")
    joined = audit_each_head(sample, "head_samplers", lambda h, a: check_feature_map(
        **{**arguments, "sample": h, "alpha": a}), alpha, "from_module")
    if joined is not None:
        return joined
    deterministic = declared_deterministic(sample)  # rows may accept from the first look (proofs/module_adapters.md)
    user = user_families(inputs, d, min_pairs=2 if "proportional" in claims else 1)  # the ratio test needs 2
    fam_gen = torch.Generator().manual_seed(seed_for("inputs", seed))
    families = moderate_families(d, fam_gen, radius=RADIUS) + direction_families(d, radius=RADIUS)
    families.append(cross_family(d, fam_gen, radius=RADIUS))
    families += user
    row_wise = _check_replayable(sample, families, bind, batched, seed)

    statistical = [c for c in ("unbiased", "variance") if c in claims]
    report = Report("check_feature_map", alpha=alpha, budget=budget, seed=seed)
    if row_wise is not None:  # an exact failure (or repeated draws) before any draw of the checks
        report.checks.append(row_wise)
        report.notes.append("no claim was tested: " + ("the map's draws repeat" if row_wise.refused else
                                                         "the features of a row depend on the other rows of the batch"))
        return report
    swept, prop_swept = Sweep(), Sweep()
    with torch.no_grad():
        if statistical and sweep:
            pilot_gen = torch.Generator().manual_seed(seed_for("pilot", seed))

            def pilot(x, y, r):
                return _Evaluator(sample, [InputFamily("pilot", x, y)], bind, batched)(pilot_gen, r)

            # a declared deterministic map's pilot draws the first look: its draws are one map, so more repeat it
            swept = sweep_radii(pilot, kernel, d, torch.Generator().manual_seed(seed_for("sweep", seed)),
                                draws=cfg["draws"], pilot=cfg["block"] if deterministic else None)
            families += swept
        n_prop, prop_families = 0, []
        if "proportional" in claims:  # one row per family of proportional_check
            from .proportional import proportional_families

            prop_families = proportional_families(d, seed, inputs)
            n_prop = len(prop_families)
        n_checks = len(statistical) * len(families) + sum(c in claims for c in ("positive", "finite")) + n_prop
        a = alpha / n_checks
        if n_prop:
            from .proportional import _proportional_rows

            prop_rows, prop_families, prop_swept = _proportional_rows(
                sample, kernel, dim=d, alpha=a * n_prop, seed=seed, budget=budget, inputs=inputs, bind=bind,
                batched=batched, sweep=sweep)
            report.checks += prop_rows
            if not statistical:  # the domain a PASSED names: where the ratio was tested
                tested = [f for f in prop_families if any(r.name == f"proportional[{f.name}]" and not r.refused
                                                          for r in prop_rows)]
                report.domain = _tested_norms(tested) if tested else "nowhere (every proportional row was refused)"
                radii = ", ".join(f.name for f in prop_swept) or "none (its pilot draws admitted no radius)"
                report.notes.append(
                    f"proportional was tested at inputs with {report.domain} (the moderate and spread-direction "
                    "families, any inputs=, and " + (f"the norm sweep: {radii}" + (
                        f"; it stopped: {prop_swept.stopped}" if prop_swept.stopped else "") if sweep
                        else "no norm sweep: sweep=False") + ")")
        if statistical:
            s = seed_for("draws", seed)
            groups = {}
            target = _pair_values(kernel, families, "kernel")
            var = None if variance is None else _pair_values(variance, families, "variance")
            idx = list(range(len(families)))
            if "unbiased" in claims:
                groups["unbiased"] = dict(kind="mean", families=idx, alpha=a, target=target, variance=var,
                                          prefix="unbiased", scale=_kernel_scale(kernel, families))
            if "variance" in claims:
                groups["variance"] = dict(kind="variance", families=idx, alpha=a, variance=var, prefix="variance")
            evaluate = _Evaluator(sample, families, bind, batched)
            if {"positive", "finite"} & claims:  # their rows read every map drawn here too
                watched = evaluate.watch = dict(claims={"positive", "finite"} & claims, draws=0, values=0, finite=0,
                                                positive=0, finite_example=None, positive_example=None)
            rows = run_mean_variance_checks(evaluate, families, groups, draws=cfg["draws"], block=cfg["block"],
                                            seed=s, first=cfg["block"] if sequential else cfg["draws"],
                                            futility_miss=FUTILITY_MISS if accept_early else 0.0,
                                            futility_from=0.0 if deterministic else FUTILITY_FROM)
            shorter = [f"its rows may accept from the first look ({cfg['block']} draws), not from the budget's "
                       "quarter"] if accept_early and sequential else []
            shorter += [f"the norm sweep's pilot draws {cfg['block']}"] if sweep else []
            if deterministic and shorter:
                report.notes.append(
                    "a deterministic map (from_module(..., redraw=False)): every draw is the one module, so "
                    + "; ".join(shorter) + "; draws that all agree off the kernel fail only on the whole budget "
                    f"({cfg['draws']}), as for any map")
            for claim in groups:
                report.checks += rows[claim]
                if swept.nonfinite is not None:
                    report.checks.append(_pilot_failure(swept.nonfinite, claim, alpha=a, seed=seed_for("pilot", seed)))
            # where every statistical row of a family was refused, nothing was tested at its inputs
            decided = {_family_of(r.name) for claim in groups for r in rows[claim] if not r.refused}
            tested = [f for f in families if f.name in decided]
            report.notes.append(_domain_note(statistical, tested, swept, sweep,
                                             refused=[f.name for f in families if f.name not in decided]))
            report.domain = _tested_norms(tested) if tested else "nowhere (every statistical row was refused)"
            if evaluate.batched and evaluate.mixed and evaluate.plain_drawn:  # proofs/verification.md, item 13(h)
                report.notes.append(
                    "the plain path sample(generator), the one a model calls, drew a quarter of the draws beside the "
                    "batched path sample(generator, batch=r): a bias confined to it moves the mean by a quarter of "
                    "itself, so it is detected only at about four times the bias detected in a map of one path; "
                    "check_feature_map(..., batched=False) tests that path alone at full power")
            carried = evaluate.carried
            if carried not in (None, torch.float64) and evaluate.eps == torch.finfo(torch.float64).eps and any(
                    r.status in ("failed", "refused") for claim in groups for r in rows[claim]):
                name = str(carried).removeprefix("torch.")
                report.notes.append(
                    f"the map returned float64 features that are all {name} numbers: if it computes in {name} and "
                    f"casts, its rounding is {name}'s, while the checks allowed float64's; set feature_dtype = "
                    f"torch.{name} on its feature function (or return {name}) to have {name}'s rounding allowed")

        if {"positive", "finite"} & claims:
            s = seed_for("properties", seed)
            pts = torch.cat([extreme_points(d, torch.Generator().manual_seed(s)),
                             *(f.x for f in families), *(f.y for f in families if not f.cross)])
            evaluate = _Evaluator(sample, [InputFamily("points", pts, pts)], bind, batched)
            gen = torch.Generator().manual_seed(s)
            feats, n = [], cfg["property_draws"]
            # a sampler with a plain path draws half of them through it; a batched one the others in one call (every
            # map of that batch is read: the maps after the first of a batch had never been)
            target, plain = (n if not evaluate.batched else n // 2 if evaluate.mixed else 0), 0
            # each draw's features are copied: a map that returns one buffer it overwrites at every call (preallocated
            # outputs) would otherwise leave only its last draw to be read
            while plain < target and (not evaluate.batched or evaluate.mixed):  # a first plain call that raises: none
                feats += [f.clone() for f in evaluate.one_draw(gen, pts, pts)]
                plain += 1
            if plain < n:
                fq, fk = evaluate.features(gen, pts, pts, batch=n - plain)
                for i in range(n - plain):
                    feats += [fq[i], fk[i]]
            allf = torch.cat([f.flatten() for f in feats])
            seen = watched if statistical else None
            where = (f"every feature value of {n} draws at norms 0 … 10 and the tested inputs" +
                     (f", and of the {seen['draws']} draws of the statistical checks at their inputs" if seen else ""))
            for claim, bad in (("finite", ~torch.isfinite(allf)), ("positive", ~(allf > 0))):
                if claim in claims:
                    example = _example(bad, feats, pts) or (
                        f"e.g. {seen[claim + '_example']} of the statistical checks" if seen and seen[claim] else "")
                    row = property_check(int(bad.sum()) + (seen[claim] if seen else 0),
                                         allf.numel() + (seen["values"] if seen else 0), claim=claim,
                                         name=f"{claim}[norms ≤ 10]", seed=s, alpha=a, example=example)
                    row.detail = f"{row.detail}; {where}" if row.detail else where
                    report.checks.append(row)
    _leave_out_swept_refusals(report, {f.name for f in (*swept, *prop_swept)})
    left = [r for r in report.checks if r.passed and LEFT_OUT in r.detail]
    if left:  # a pass's detail is not printed: say here which pairs it does not speak for
        report.notes.append(
            "pairs left out of passes (their rounding floor hides half the target, or of ĉ, or their test resolves no "
            "effect as large as the target, so they tested nothing about it): "
            + "; ".join(f"{r.name}: " + ", ".join(part for part in r.detail.split("; ") if LEFT_OUT in part)
                        for r in left))
    return report


def _leave_out_swept_refusals(report: Report, swept: set[str]) -> None:
    """Rows of the norm sweep's families (``swept``: their names) that were refused because their draws could not decide
    (:attr:`~kerneltheory.testing.checks.CheckResult.no_evidence`: tails or skewness too heavy for the normal test, too
    few draws, moments beyond float64) leave the report's rows for a note: the sweep adds a radius on a pilot's forecast
    that its checks can decide there, and where the full draws cannot (tails heavier than the pilot showed) nothing was
    tested at that radius, which the domain note already leaves out. Kept as rows they made a correct map's report
    REFUSED where the same audit without the sweep passed (the documented ``bind=`` example at seed 0: the guard 0.24 >
    0.1 at ‖x‖ = 1 after a pilot that admitted it). Every other row stays: failures, rows of the other families, and
    refusals that stand for a reclassified rejection (draws not independent, a rejection the claimed variance explains,
    a p-value that is not a probability), which a first review's map with both a bias past ‖x‖ = 0.75 and dependent
    draws turned into a PASSED at 4 of 10 seeds when every refusal at a swept radius was left out."""
    left = [r for r in report.checks if r.refused and r.no_evidence and _family_of(r.name) in swept]
    if not left:
        return
    report.checks = [r for r in report.checks if not any(r is x for x in left)]
    report.notes.append("rows of the norm sweep whose full draws could not decide, left out of the verdict "
                        "(nothing was tested at their radius, which the tested domain leaves out): " +
                        "; ".join(f"{r.name}: {r.detail}" for r in left))


def _pilot_failure(nonfinite: tuple, claim: str, *, alpha: float, seed: int) -> CheckResult:
    """The failed row of ``claim`` at the family where the norm-sweep pilot saw an estimate that is not finite (a
    certain failure, not a statistical one: it spends none of the budget; proofs/verification.md, item 13)."""
    fam, est = nonfinite
    row = _nonfinite_row(est, dict(name=f"{claim}[{fam.name}]", claim=claim, alpha=alpha, sample_size=est.shape[0],
                                   seed=seed), fam.labels())
    row.detail += f" (seen in the norm-sweep pilot at {fam.name}, where the kernel is finite)"
    return row


def _family_of(name: str) -> str:
    """The family of a row named ``claim[family]`` (a family's own name may hold brackets: ``inputs[0]``)."""
    return name[name.index("[") + 1 : -1] if "[" in name and name.endswith("]") else name


def _tested_norms(families: list[InputFamily]) -> str:
    """The reach of the tested pairs: their largest ‖x‖, ‖y‖, and ‖x + y‖ and ‖x − y‖, on which the kernels and the
    variances of positive and trigonometric features depend (a radius alone overstated it: pairs of norm ≤ 0.5 reached
    ‖x + y‖² ≤ 0.79 at some seeds, and a variance formula 3× too large beyond 0.9 passed there)."""
    pairs = [f.pairs() for f in families]
    x, y = torch.cat([p[0] for p in pairs]).to(torch.float64), torch.cat([p[1] for p in pairs]).to(torch.float64)
    norm = float(torch.cat([x, y]).norm(dim=-1).max())
    return (f"‖x‖, ‖y‖ ≤ {norm:.4g} (‖x + y‖ ≤ {float((x + y).norm(dim=-1).max()):.4g}, ‖x − y‖ ≤ "
            f"{float((x - y).norm(dim=-1).max()):.4g} at the tested pairs)")


def _domain_note(statistical: list[str], families: list[InputFamily], swept: Sweep, sweep: bool,
                 refused: list[str] = ()) -> str:
    """Where the statistical claims were tested: the largest input norm of the families with a decided row, those
    whose every row was refused, the sweep radii and why the sweep stopped."""
    where = f"at inputs with {_tested_norms(families)}" if families else "nowhere"
    note = f"{' and '.join(statistical)} tested {where}"
    if refused:
        note += f" (every row refused at the families {', '.join(refused)})"
    if not sweep:
        return note + " (no norm sweep: sweep=False)"
    radii = ", ".join(f.name.rsplit("= ", 1)[-1] for f in swept)
    none = "; the norm sweep added no radius (its pilot draws admitted none)"
    note += f"; norm sweep at ‖x‖ = ‖y‖ ∈ {{{radii}}}" if radii else none
    return note + (f"; the sweep stopped: {swept.stopped}" if swept.stopped else "")


def _example(bad: torch.Tensor, feats: list[torch.Tensor], pts: torch.Tensor) -> str:
    if not bool(bad.any()):
        return ""
    n_per = feats[0].numel()
    idx = int(torch.nonzero(bad)[0])
    which, off = divmod(idx, n_per)
    row = off // feats[0].shape[1]
    value = float(feats[which].flatten()[off])
    side = "query" if which % 2 == 0 else "key"
    return "e.g. " + feature_example(value, float(pts[row].norm()), side=side, draw=which // 2)


_SEVERITY = {"failed": 0, "refused": 1, "stopped": 2, "passed": 3}


def audit_each_head(audited, attribute: str, audit: Callable[[object, float], Report], alpha: float,
                    adapter: str) -> Report | None:
    """The audits ``audit(head's object, α/H)`` of every head of a multi-head ``adapter``'s sampler or factory
    (``audited.attribute``, :func:`~kerneltheory.testing._heads.per_head`), joined (:func:`join_head_reports`); None
    where ``audited`` carries no heads of its own. The one branch of ``check_feature_map``, ``check_attention`` and
    ``proportional_check``."""
    heads = per_head(audited, attribute)
    if heads is None:
        return None
    with joining():
        reports = [audit(h, alpha / len(heads)) for h in heads]
    return join_head_reports(reports, alpha, adapter)


def join_head_reports(reports: list[Report], alpha: float, adapter: str) -> Report:
    """The reports of each head of a multi-head module (one per head, each at α/len(reports), the same seed) as one:
    each row, by name, is its worst head's (failed before refused before stopped before passed, then the least
    p-value, a NaN last), its detail naming that head; the notes of every head, once each, less their one-head notes
    (``adapter``: the adapter that made the heads, :func:`one_head_note`). A module with a projection per head may be
    wrong on one head only (an initialisation loop from 1, a mask applied to all heads but the last), which a test of
    one head passes; the report fails iff some head's does, and its false-failure rate is at most the sum of the
    heads', α (proofs/module_adapters.md, item 1)."""
    count = len(reports)
    rows: dict[str, list] = {}
    for head, rep in enumerate(reports):
        for row in rep.checks:
            rows.setdefault(row.name, []).append((head, row))
    first = reports[0]
    joined = Report(first.subject, alpha=alpha, budget=first.budget, seed=first.seed, domain=first.domain)
    for seen in rows.values():
        head, row = min(seen, key=lambda t: (_SEVERITY[t[1].status], math.inf if not t[1].p_value >= 0 else
                                             t[1].p_value, t[0]))
        ran = f"{len(seen)} of {count} heads" if len(seen) < count else f"all {count} heads"
        joined.checks.append(replace(  # the row fails where any head's does: its level is the sum of theirs
            row, alpha=sum(r.alpha for _, r in seen),
            detail=f"head {head} (the worst of {ran})" + (f": {row.detail}" if row.detail else "")))
    joined.notes.append(f"every head of {count} tested in turn (the tested inputs on it, fixed distractors on the "
                        f"others), each at α/{count}; each row is its worst head's ({count} heads: the adapter's "
                        "heads=, as given or its default)")
    alone = {one_head_note(h, count, adapter) for h in range(count)}
    for rep in reports:
        joined.notes += [n for n in rep.notes if n not in joined.notes and n not in alone]
    if any(rep.domain != first.domain for rep in reports):  # each head's sweep reached its own radii
        joined.domain = "each head's domain (notes)"
        joined.notes += [f"head {h}: tested at {rep.domain}" for h, rep in enumerate(reports)]
    return joined


def assert_feature_map(*args, **kwargs) -> Report:
    """:func:`check_feature_map`, raising ``AssertionError`` with the report when a claim fails."""
    report = check_feature_map(*args, **kwargs)
    if not report.passed:
        raise AssertionError(str(report))
    return report
