r"""The proportionality test: the claim "E[φ(x)ᵀφ(y)] = c·k(x, y) for one unknown c > 0" (docs/auditing.md,
re-exported by :mod:`~kerneltheory.testing.adapters`).

Proportionality (proofs/attention_audit.md, item 1). For pairs p with
k_p = k(x_p, y_p) > 0 and per-draw estimates e_{r,p} = φ_r(x_p)ᵀφ_r(y_p), the claim says E[e_p]/k_p is the
same for every p. With a reference pair 0, the per-draw statistic t_{r,p} = e_{r,p}/k_p − e_{r,0}/k_0 has mean
exactly 0 for every p under the claim, whatever c, and the t_{r,·} of independent draws are iid; so the claim is
the mean claim E[t_p] = 0, tested by :func:`~kerneltheory.testing.checks.mean_check` (CLT under the
fourth-moment guard, Bonferroni over the pairs, refusal when the tails are too heavy). A map with a constant
offset (φ(x)ᵀφ(y) estimating k + s²) is proportional to no kernel but the shifted one,
:func:`kerneltheory.kernels.shifted`. The t-test holds for c = 0 too (a map that returns zeros, or noise of mean 0,
is "proportional" to every kernel), so one more row tests c > 0 (item 5): the per-draw mean ĉ_r of e_{r,p}/k_p
over all pairs has mean c; the row fails when ĉ is 0 on every draw up to rounding or its upper confidence limit
is below 0, passes when the lower limit is above 0, and is refused in between (the draws cannot tell c from 0).
Ratios e/k outside 2^±40 are tested after an exact power-of-two rescaling (every statistic is scale-free); where
every estimate is finite but some e/k overflows float64 (a tiny, e.g. subnormal, k), the rows are refused: a
quantity that cannot be computed is no evidence against the claim.

Each family's statistic is taken against its best-conditioned pair (the least rounding floor of e/k): a first pair
whose kernel is far below the scale of the terms its estimate sums (‖x‖ = ‖y‖ = 4.5, antipodal, under softmax:
√(k(x, x)k(y, y))/k = e^40.5) carried a floor of thousands of ĉ into every comparison of the family, and a map off by
6·10⁸ passed. Pairs whose compared floors still reach half of ĉ are left out of a pass, which names them, and a
row whose every pair is such is refused unless it fails (checks.unresolved_pairs, as for the mean rows).
The families' rows test one c within each family; the row ``proportional[families]`` tests that it is one c across
them (t = ratio at a family's reference pair − ratio at the first family's), which no family row sees: a map with
c = 1 inside the built-in radius and c = 2 on the user's inputs passed every row.

A norm sweep (:func:`proportional_sweep`) adds families at ‖x‖ = ‖y‖ = 1, 2, 4, 8 while a pilot of independent draws
finds the ratio test's statistic light-tailed enough for the budget, as the unbiasedness rows' sweep does: without it
trigonometric features of inputs clamped at ±0.6 (exact wherever no coordinate exceeds 0.6, so at every pair of norm
≤ 0.5) passed every row. Where the ratios' tails are heavy already at ‖x‖ = 1 (positive features at m = 64) the sweep
adds no radius, and the domain note says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .._validation import check_alpha, check_int
from ..montecarlo import Moments
from .checks import (
    GUARD,
    UNRESOLVED_SHARE,
    CheckResult,
    agreeing_pairs,
    clt_guard,
    coarse_format_refusal,
    exact_reading_rejects,
    mean_check,
    one_map,
    pair_rounding_floor,
    rounding_floor,
)
from .inputs import InputFamily, direction_families, moderate_families, user_families
from .pvalues import normal_p_values
from .seeds import seed_for
from .user_calls import _Evaluator, _kernel_scale, _pair_values
from .verify import (
    RADIUS,
    SWEEP_RADII,
    Report,
    Sweep,
    _binary_exponents,
    _budget,
    _nonfinite_row,
    audit_each_head,
    sweep_radii,
)

__all__ = ["proportional_check", "proportional_families", "proportional_sweep"]


def _estimates(sample, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, draws: int, bind=None,
               batched: bool | None = None) -> tuple[torch.Tensor, float]:
    """``[draws, P]`` estimates at the pairs (x_p, y_p), drawn as :func:`~kerneltheory.testing.check_feature_map`
    draws them (one batch of ``draws`` maps when ``sample`` takes ``batch=``, else one map per draw; ``bind`` and
    ``batched`` as there), and the machine epsilon of the coarsest dtype the features came in (for the rounding
    floors)."""
    evaluate = _Evaluator(sample, [InputFamily("pairs", x, y)], bind, batched)
    return evaluate(generator, draws), evaluate.eps


def proportional_check(
    sample: Callable[[torch.Generator], object],
    kernel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    dim: int,
    alpha: float = 1e-6,
    seed: int = 0,
    budget: str = "quick",
    inputs: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
    bind: Callable[[object, torch.Tensor, torch.Tensor], object] | None = None,
    batched: bool | None = None,
    sweep: bool = True,
) -> list[CheckResult]:
    """Test the claim E[φ(x)ᵀφ(y)] = c·k(x, y) for one unknown constant c > 0 (module docstring).

    ``bind`` and ``batched`` are :func:`~kerneltheory.testing.check_feature_map`'s: a data-dependent map is bound to
    all the tested points, and a sampler is drawn through the path(s) they select. ``sweep`` adds the norm-sweep
    families of :func:`proportional_sweep` (one row each, in the same test of one c across the families); a pilot
    estimate that is not finite there, where the kernel is, fails the row of that radius.

    One :class:`CheckResult` per input family (:func:`proportional_families`: the built-in moderate and
    spread-direction families with k > 0 on every pair, the others left out and named on the last row, and the
    extra ``inputs``), claim ``"proportional"``, each at α/(number of rows); the statistic t_p is taken
    against the family's best-conditioned pair (module docstring). The estimated ratio ĉ there is given in the
    detail. Then ``proportional[families]``: one c across the families. A non-finite
    estimate fails its family's row (and the last row); an e/k that overflows float64 although e is finite
    refuses them. The last row, ``proportional[c > 0]``, tests the sign of c (a map of zeros
    or of mean-zero noise passes every t-test); it is refused when the draws cannot tell c from 0. A family
    with a pair where k ≤ 0 or k is not finite is refused with a ``ValueError`` naming it (a ratio to 0 means
    nothing). Each draw's map is called once on all the pairs together, so a factor that depends on the batch (features
    divided by √(batch size)) is one constant here and passes: ``check_feature_map(..., claims={"proportional"})``
    adds the row-wise and replay rows that fail it. A sampler with ``head_samplers`` (every head of a multi-head module,
    :func:`~kerneltheory.testing.adapters.from_module`) is tested on each head at α/heads, and each row is its worst
    head's, named in its detail (:func:`~kerneltheory.testing.verify.join_head_reports`).
    """
    alpha = check_alpha(alpha)

    def one_head(head_sample, a: float) -> Report:
        rows = proportional_check(head_sample, kernel, dim=dim, alpha=a, seed=seed, budget=budget, inputs=inputs,
                                  bind=bind, batched=batched, sweep=sweep)
        return Report("proportional_check", checks=rows, alpha=a, seed=seed)

    joined = audit_each_head(sample, "head_samplers", one_head, alpha, "from_module")
    if joined is not None:  # a module wrong on one head passed every row when only head heads // 2 was tested
        return joined.checks
    return _proportional_rows(sample, kernel, dim=dim, alpha=alpha, seed=seed, budget=budget, inputs=inputs, bind=bind,
                              batched=batched, sweep=sweep)[0]


def _proportional_rows(sample, kernel, *, dim, alpha, seed, budget, inputs, bind, batched, sweep
                       ) -> tuple[list[CheckResult], list[InputFamily], Sweep]:
    """:func:`proportional_check`'s rows, its families with a kernel > 0 at every pair (the built-in ones, the user's,
    then the swept ones) and the norm sweep (for the domain a report names)."""
    d = check_int(dim, "dim", minimum=1)
    alpha = check_alpha(alpha)
    seed = check_int(seed, "seed", minimum=0)
    draws = _budget(budget)["draws"]
    if not callable(sample) or not callable(kernel) or (bind is not None and not callable(bind)):
        raise TypeError("sample, kernel and bind must be callables")
    if not isinstance(sweep, bool):
        raise TypeError(f"sweep must be True or False, got {sweep!r}")
    families = proportional_families(d, seed, inputs)
    n_user = len(families) - len(proportional_families(d, seed, None))
    targets, skipped = [], []
    for j, f in enumerate(families):
        k = _pair_values(kernel, [f], "kernel").to(torch.float64)  # on copies, a real tensor, as check_feature_map
        if not bool((torch.isfinite(k) & (k > 0)).all()):
            if j >= len(families) - n_user:  # the user's own pairs: an error naming them
                raise ValueError(f"kernel must be finite and > 0 on every pair of a proportionality test; "
                                 f"family {f.name!r} has k = {k.tolist()}")
            skipped.append(f)  # a built-in family where k is 0 somewhere (the arc-cosine kernel at y = −x)
            continue
        targets.append(k)
    families = [f for f in families if f not in skipped]
    if not families:
        raise ValueError("kernel must be finite and > 0 on every pair of some family of the proportionality test; "
                         f"it is not on any ({', '.join(f.name for f in skipped)})")
    swept = (proportional_sweep(sample, kernel, d, seed, draws=draws, bind=bind, batched=batched) if sweep
             else Sweep(stopped="sweep=False"))
    families += swept
    targets += [_pair_values(kernel, [f], "kernel").to(torch.float64) for f in swept]
    scales = {f.name: _kernel_scale(kernel, [f]) for f in families}  # √(k(x, x)k(y, y)) at each pair
    s = seed_for("proportional", seed)
    e, feature_eps = _estimates(sample, torch.cat([f.x for f in families]), torch.cat([f.y for f in families]),
                                torch.Generator().manual_seed(s), draws, bind, batched)
    a = alpha / (len(families) + 2)
    rows, start, refs = [], 0, []
    # a map whose every estimate agreed at every draw is one function: its ratios are tested as a deterministic map's;
    # otherwise draws that agree off their target are no evidence by themselves (checks.mean_check's atoms). Judged
    # on the estimates' own floors: the kernel's scale would read a map with a tiny constant c as one function
    atoms = not one_map(e, feature_eps=feature_eps)
    if swept.nonfinite is not None:  # a certain failure seen by the pilot: it spends none of the level
        fam, est = swept.nonfinite
        base = dict(name=f"proportional[{fam.name}]", claim="proportional", alpha=a, sample_size=est.shape[0],
                    seed=seed_for("proportional pilot", seed))
        row = _nonfinite_row(est, base, fam.labels())
        row.detail += f" (seen in the norm-sweep pilot at {fam.name}, where the kernel is finite and > 0)"
        rows.append(row)
    for f, k in zip(families, targets, strict=True):
        ef = e[:, start : start + f.size]
        start += f.size
        name = f"proportional[{f.name}]"
        base = dict(name=name, claim="proportional", alpha=a, sample_size=ef.shape[0], seed=s)
        row = _nonfinite_row(ef, base, f.labels())  # a non-finite estimate fails, as in check_feature_map
        ratio = ef / k
        if row is None and not bool(torch.isfinite(ratio).all()):
            row = _overflow_refusal(ef, k, f.labels(), base)
        if row is None:
            unit = _unit(ratio)
            ratio = torch.ldexp(ratio, torch.tensor(unit))  # exact: the t-test is scale-free
            # each ratio carries its pair's rounding, in the features' precision (proof item 9), on the scale of the
            # terms an estimate sums: |ĉ|·√(k(x, x)k(y, y)) as the unbiasedness check's kernel scale (a cancelling
            # estimate, k far below that scale, rounds far above |e|), divided by k like the ratio; t_p both pairs'
            c_hat = ratio.mean().abs()
            floor = pair_rounding_floor(ratio, c_hat * scales[f.name] / k, feature_eps=feature_eps)
            # pairs whose ratios agree at every draw, where the law may have atoms (a rare event can make them agree):
            # never the reference, and left out of the differences, whose other column's noise the test would read
            agree = _agreeing_columns(ratio, feature_eps) if atoms else torch.zeros(f.size, dtype=torch.bool)
            agree &= floor < UNRESOLVED_SHARE * c_hat  # a floor that hides half of ĉ: unresolved_pairs names the pair
            if bool(agree.all()):
                agree[:] = False  # every pair agrees: the differences agree too, and mean_check reads them so
            j = int(torch.argmin(torch.where(agree, math.inf, floor)))  # the reference: the best-conditioned pair
            others = [i for i in range(f.size) if i != j and not bool(agree[i])]
            aside = [i for i in range(f.size) if i != j and bool(agree[i])]
            labels = [f.labels()[i] for i in others]
            row = _differences_row(ratio, j, floor, c_hat * scales[f.name] / k, feature_eps, name, a, s, labels,
                                   atoms, others)
            if aside and row.status != "failed":
                row = _agreeing_refusal(row, ratio, j, aside, floor, a, f.labels(), f.size - 1, unit) or row
                if row.passed:  # a pass does not speak for the pairs left out: its detail names them
                    row.detail = (f"{len(aside)} of {f.size} pairs left out (their ratios one value at every draw, "
                                  f"which a rare event can make; e.g. pair {aside[0]} ({f.labels()[aside[0]]})): "
                                  + row.detail)
            row.detail = f"ĉ = {math.ldexp(float(ratio[:, j].mean()), -unit):.6g} (pair {j}); " + row.detail + (
                f"; t in units of 2^{-unit} (an exact rescaling)" if unit else "")
            refs.append((ef[:, j] / k[j], float(c_hat) * math.ldexp(1.0, -unit) * float(scales[f.name][j] / k[j])))
            # pairs whose floors hide half of ĉ say nothing about c: left out, the row refused if all are (the mean
            # rows' rule, checks.unresolved_pairs against ĉ, applied by mean_check given ĉ as the magnitude;
            # proofs/verification.md, items 3(b) and 9)
        rows.append(row)
    across = dict(name="proportional[families]", claim="proportional", alpha=a, sample_size=e.shape[0], seed=s)
    rows.append(_across_families(refs, [f.name for f in families], feature_eps, a, s, atoms)
                if len(refs) == len(families)
                else _nonfinite_row(e, across, [lab for f in families for lab in f.labels()]) or CheckResult.refusal(
                    "a family's ratios could not be computed (see its row): no constant to compare across the "
                    "families", **across))
    rows.append(_positive_constant(e, torch.cat(targets), [lab for f in families for lab in f.labels()], a, s,
                                   [r for r, _ in refs]))
    if skipped:  # not applicable there, not untested: a note on the last row (a pass's detail lists it too)
        names = ", ".join(f.name for f in skipped)
        rows[-1].detail = (rows[-1].detail + "; " if rows[-1].detail else "") + (
            f"left out: {names} (the kernel is not > 0 at every pair, and a ratio e/k to 0 means nothing)")
    return rows, families, swept


def proportional_sweep(
    sample: Callable[[torch.Generator], object],
    kernel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    dim: int,
    seed: int,
    *,
    draws: int,
    bind: Callable[[object, torch.Tensor, torch.Tensor], object] | None = None,
    batched: bool | None = None,
    radii: Sequence[float] = SWEEP_RADII,
    pilot: int | None = None,
) -> Sweep:
    """The norm-sweep families of :func:`proportional_check`: one
    :func:`~kerneltheory.testing.inputs.norm_family` per radius of ``radii``, in order, while the kernel is finite and
    > 0 at every pair and a pilot of ``pilot`` independent draws finds the ratio test informative and its statistic
    light-tailed enough for ``draws`` draws, by :func:`~kerneltheory.testing.verify.sweep_radii`'s rules read on
    the differences t_p = e_p/k_p − e_j/k_j of the ratio test (j the pair of least spread): the CLT guard of the
    pilot's t within its limit and the guard predicted for ``draws`` at most half of it, and the predicted standard
    error of the mean of t below the pilot's |ĉ| (the test is scale-free, so the unknown c sets the scale where the
    unbiasedness sweep reads the kernel). The pilot draws
    :func:`~kerneltheory.testing.verify.pilot_draws` (a quarter of the budget; with 256 draws, the sweep of a correct
    trigonometric map of m = 64 admitted no radius at 6 of 40 seeds, at 0 of 40 with 1024). The sweep stops at the
    first radius that fails (:attr:`Sweep.stopped` says why); a pilot estimate that is not finite where the kernel is
    finite and > 0 stops it and is kept in :attr:`Sweep.nonfinite`, a failure of the claim at that radius. The
    pilot's draws are independent of the test's
    (own seeds), so choosing the inputs from them costs no α."""
    pilot_gen = torch.Generator().manual_seed(seed_for("proportional pilot", seed))

    def estimates(x, y, r):
        return _Evaluator(sample, [InputFamily("pilot", x, y)], bind, batched)(pilot_gen, r)

    return sweep_radii(estimates, kernel, dim, torch.Generator().manual_seed(seed_for("proportional sweep", seed)),
                       draws=draws, radii=radii, pilot=pilot, statistic=_ratio_differences)


def _ratio_differences(est: torch.Tensor, k: torch.Tensor, at: str):
    """What :func:`proportional_sweep`'s pilot reads (:func:`~kerneltheory.testing.verify.sweep_radii`'s
    ``statistic``): the differences t_p = e_p/k_p − e_j/k_j from the pair j of least spread, on the scale |ĉ|, after
    an exact power-of-two rescaling (every rule is scale-free); or why the sweep stops where e/k overflows."""
    ratio = est.to(torch.float64) / k.to(torch.float64)
    if not bool(torch.isfinite(ratio).all()):
        return f"a pilot ratio e/k overflows float64 at {at}"
    ratio = torch.ldexp(ratio, torch.tensor(_unit(ratio)))
    j = int(torch.argmin(ratio.var(0)))
    t = torch.cat([ratio[:, :j], ratio[:, j + 1 :]], 1) - ratio[:, j : j + 1]
    return t, ratio.mean().abs(), "ratio differences", "the ratio test exceeds ĉ"


def proportional_families(dim: int, seed: int, inputs=None) -> list[InputFamily]:
    """The families of :func:`proportional_check`: the moderate families of at least two pairs but "zero" (a ratio
    needs two pairs), the spread directions (the diagonal, every axis ±e_i, the first and last coordinates; an
    error confined to some axes had passed on the moderate families alone), all at norm ≤ :data:`RADIUS`, and the
    extra ``inputs``."""
    fams = moderate_families(dim, torch.Generator().manual_seed(seed_for("inputs", seed)), radius=RADIUS)
    fams += direction_families(dim, radius=RADIUS)
    return [f for f in fams if f.size >= 2 and f.name != "zero"] + user_families(inputs, dim, min_pairs=2)


def _across_families(refs, names: list[str], feature_eps: float, alpha: float, seed: int, atoms: bool) -> CheckResult:
    """The row ``proportional[families]``: E[ratio at family f's reference pair − ratio at the first family's] = 0
    for every other family f (one c across the families), the mean test with each reference ratio's rounding floor
    (``refs``: per family the [R] ratios e/k at its reference pair and that floor's scale ĉ·√(k(x, x)k(y, y))/k)."""
    name = "proportional[families]"
    if len(refs) < 2:
        return CheckResult.refusal("one family: nothing to compare across", name=name, claim="proportional",
                                   alpha=alpha, sample_size=refs[0][0].shape[0] if refs else 0, seed=seed)
    ratio = torch.stack([r for r, _ in refs], 1)
    unit = _unit(ratio)
    ratio = torch.ldexp(ratio, torch.tensor(unit))
    scale = torch.tensor([math.ldexp(sc, unit) for _, sc in refs], dtype=torch.float64)
    floor = pair_rounding_floor(ratio, scale, feature_eps=feature_eps)
    row = _differences_row(ratio, 0, floor, scale, feature_eps, name, alpha, seed,
                           [f"{n} against {names[0]}" for n in names[1:]], atoms)
    c = [math.ldexp(float(ratio[:, i].mean()), -unit) for i in range(ratio.shape[1])]
    row.detail = "ĉ per family " + ", ".join(f"{n} {v:.4g}" for n, v in zip(names, c, strict=True)) + "; " + row.detail
    return row


def _agreeing_columns(ratio: torch.Tensor, feature_eps: float | None) -> torch.Tensor:
    """[P] bool: the columns of ``ratio`` [R, P] whose draws have no spread at their own scale: the guard's degenerate
    pairs, or a spread within twice the rounding floor of their own magnitude in the features' precision (not the
    kernel's scale, whose floor can hide half of ĉ: such pairs stay in the differences, where
    ``checks.unresolved_pairs`` names them)."""
    return agreeing_pairs(ratio, pair_rounding_floor(ratio, feature_eps=feature_eps))


def _agreeing_refusal(row: CheckResult, ratio: torch.Tensor, j: int, aside: list[int], floor: torch.Tensor,
                      alpha: float, labels: list[str], pairs: int, unit: int) -> CheckResult | None:
    """The refusal of a family's row where a pair left out of the differences (its ratios one value at every draw,
    ``aside``) differs from the reference pair ``j``'s mean ratio by more than a normal test at the row's level
    (Bonferroni over its ``pairs`` differences) would allow: agreement is no evidence against the claim (a rare
    event can make it, proofs/verification.md, item 3a), and a pass would not speak for that pair. None where every
    such pair agrees with the reference. The comparison reads the reference's spread, so a reference whose tails the
    guard rejects refuses the row. ``unit``: the power of two the ratios were scaled by (undone in the message)."""
    ref = ratio[:, j]
    value = lambda t: math.ldexp(float(t), -unit)  # noqa: E731
    base = dict(name=row.name, claim=row.claim, alpha=row.alpha, sample_size=row.sample_size, seed=row.seed)
    light, worst = clt_guard(Moments.from_samples(ref[:, None]))
    if not light:  # the reference's own spread is what the pairs left out are compared by: it must be a normal one
        return CheckResult.refusal(
            f"{len(aside)} pair(s) whose ratios are one value at every draw (e.g. pair {aside[0]} "
            f"({labels[aside[0]]}), {value(ratio[:, aside[0]].mean()):.6g}) are left out of the differences, and the "
            f"reference pair {j}'s "
            f"ratios have tails too heavy to compare them with (guard {worst:.3g} > {GUARD}); {row.detail}", **base)
    se = ref.std() / math.sqrt(ratio.shape[0])
    for i in aside:
        near = ((ratio[:, i].mean() - ref.mean()).abs() - floor[i] - floor[j]).clamp_min(0.0)
        if bool(exact_reading_rejects(near, se, pairs, alpha)):
            return CheckResult.refusal(
                f"at pair {i} ({labels[i]}) every draw gave the ratio {value(ratio[:, i].mean()):.6g} (up to rounding) "
                f"against the reference pair {j}'s mean {value(ref.mean()):.6g}: "
                "a map that does not draw from its "
                "generator does that, and so does a map that is one value except on a rare event (sparse or binning "
                f"features), so agreement is no evidence against the claim; {row.detail}", **base)
    return None


def _differences_row(ratio: torch.Tensor, j: int, floor: torch.Tensor, scale: torch.Tensor, feature_eps: float,
                     name: str, alpha: float, seed: int, labels: list[str], atoms: bool,
                     others: list[int] | None = None) -> CheckResult:
    """The mean test of E[ratio_p − ratio_j] = 0 for every column p ≠ j of ``ratio`` [R, P] (item 1 of
    proofs/attention_audit.md), each difference compared with the two columns' rounding floors ``floor`` [P]; then,
    for a bfloat16 or float16 map, the refusal of a pass that rounding on the scale ``scale`` [P] of the terms summed
    could hide 1 % of ĉ (:func:`~kerneltheory.testing.checks.coarse_format_refusal`). ``atoms``: the mean test's
    (False for a map that was one function at every draw). ``others``: the columns differenced (by default every
    p ≠ j)."""
    if others is None:
        others = [i for i in range(ratio.shape[1]) if i != j]
    if not others:
        return CheckResult.refusal(f"no pair of the family other than the reference pair {j} has ratios that vary: "
                                   "nothing to difference", name=name, claim="proportional", alpha=alpha,
                                   sample_size=ratio.shape[0], seed=seed)
    t = ratio[:, others] - ratio[:, j : j + 1]
    c_hat = ratio.mean().abs()
    # a difference of ratios has target 0: a pass must resolve a pair off by as much as ĉ itself
    # (proofs/verification.md, item 3(b)); a ĉ of 0 leaves nothing to resolve, which the row c > 0 tests
    size = (dict(magnitude=c_hat, magnitude_of="ĉ, the ratios' mean") if 0 < float(c_hat) < math.inf else {})
    row = mean_check(Moments.from_samples(t), torch.zeros(t.shape[1], dtype=torch.float64), alpha=alpha, name=name,
                     seed=seed, samples=t, atol=floor[others] + floor[j], claim="proportional", labels=labels,
                     atoms=atoms, **size)
    return coarse_format_refusal(row, (ratio[:, others], scale[others].expand(ratio.shape[0], -1)),
                                 c_hat.expand(t.shape[1]), feature_eps, labels, "the ratio to the kernel")


def _unit(ratio: torch.Tensor) -> int:
    """The exponent k with 2^k·max|ratio| in [1/2, 1) when max|ratio| lies outside 2^±SAFE_BINADE, else 0: the
    moments of the rescaled ratios (up to the fourth, for the guard) stay representable in float64, and the
    multiplication by 2^k is exact (proofs/verification.md, item 11)."""
    return int(_binary_exponents(ratio.reshape(-1, 1), {}, slice(None))[0])


def _overflow_refusal(e: torch.Tensor, k: torch.Tensor, labels: list[str], base: dict) -> CheckResult:
    """The refusal of a row where every estimate is finite but some e/k overflows float64 (k tiny, e.g.
    subnormal): no ratio can be computed, which says nothing for or against the claim."""
    draw, pair = (int(i) for i in torch.nonzero(~torch.isfinite(e / k))[0])
    tiny = " (subnormal)" if float(k[pair]) < torch.finfo(torch.float64).tiny else ""
    return CheckResult.refusal(
        f"e/k overflows float64 at pair {pair} ({labels[pair]}), draw {draw}: e = {float(e[draw, pair]):.6g}, "
        f"k = {float(k[pair]):.6g}{tiny}; with no ratio to test, the draws are no evidence about c", **base)


def _positive_constant(e: torch.Tensor, k: torch.Tensor, labels: list[str], alpha: float, seed: int,
                       references: list[torch.Tensor] | None = None) -> CheckResult:
    """The row "c > 0" (module docstring; proofs/attention_audit.md, item 5) from the estimates e_{r,p} [R, P] and
    the kernel values k_p [P]: it fails when an estimate is not finite, and is refused when every estimate is
    finite but some e/k overflows float64 (an undecidable quantity is no evidence of failure). ĉ is read at
    ``references`` where given (the [R] ratios e/k at each family's best-conditioned pair): a pair whose kernel is
    far below its own rounding (the polynomial kernel (1 + xᵀy)² at y = −x with ‖x‖ = 1, 1e-32 instead of 0) gave
    ratios of ±10¹⁵ that set the sign of a mean over all pairs and failed a proportional map (a random-seed run,
    once the norm sweep reached ‖x‖ = 1)."""
    name = "proportional[c > 0]"
    base = dict(name=name, claim="proportional", alpha=alpha, sample_size=e.shape[0], seed=seed)
    if not bool(torch.isfinite(e).all()):
        return CheckResult.invalid_claim("an estimate e = φ(x)ᵀφ(y) is not finite: no constant c", **base)
    ratio = e / k
    if not bool(torch.isfinite(ratio).all()):
        return _overflow_refusal(e, k, labels, base)
    where = "all pairs"
    if references:
        ratio, where = torch.stack(references, 1), "each family's best-conditioned pair"
    unit = _unit(ratio)
    ratio = torch.ldexp(ratio, torch.tensor(unit))  # exact; z, p and the rounding comparison are scale-free
    c = ratio.mean(1, keepdim=True)
    if bool((c.abs() <= rounding_floor(ratio)).all()):
        return CheckResult.invalid_claim("ĉ = 0 on every draw up to rounding: the map estimates 0, not c·k with "
                                         "c > 0", **base)
    m = Moments.from_samples(c)
    ok, worst = clt_guard(m)
    if not ok:
        return CheckResult.refusal(f"tails of ĉ too heavy for {m.count} draws (guard {worst:.3g})", **base)
    mean, se = float(m.mean[0]), math.sqrt(float(m.variance[0]) / m.count)
    z = torch.tensor([mean / se if se > 0 else math.copysign(math.inf, mean)], dtype=torch.float64)
    p = float(normal_p_values(z, m.skewness, m.count, studentised=True)[0])  # two-sided: conservative each way
    detail = f"ĉ = {math.ldexp(mean, -unit):.6g} ± {math.ldexp(se, -unit):.3g} (mean of e/k over {where})"
    if p > alpha:
        return CheckResult.refusal(detail + ": not distinguishable from 0 at this α", **base)
    return CheckResult(statistic=float(z[0]), p_value=p, effect_size=abs(mean) / max(se, 1e-300),
                       method="clt (one-sided, c > 0)", passed=mean > 0,
                       detail="" if mean > 0 else detail + ": c < 0", **base)
