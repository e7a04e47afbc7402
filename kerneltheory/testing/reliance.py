r"""A claimed variance in a mean test: used only where it is tested, and trusted only where it is confirmed.

:func:`~kerneltheory.testing.checks.mean_check` given a claimed per-draw variance σ² tests the *joint* hypothesis
E = target and Var = σ² (the exact-variance z-test, median of means). An inflated σ² makes it lenient: a biased
estimator with a variance claimed 10⁶ times too large passes. So in a run of
:func:`~kerneltheory.testing.verify.run_mean_variance_checks`:

* a mean group uses its claimed variance only at the families where a variance group of the same run tests that
  same variance (:func:`variance_backing`); elsewhere the mean test is studentised under H₀ as without a variance;
* where it does, each mean row carries the same test without the variance (``without_variance``), and once the
  run is over :func:`settle_on_variance` lets the row stand only where the variance row of its family passed (and a
  pass only where the test without the variance did not reject); elsewhere the test without the variance decides,
  and where it cannot, the row is refused.

proofs/verification.md, item 12.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from .checks import CheckResult


def variance_backing(groups: dict[str, dict]) -> dict[str, dict[int, str | None]]:
    """Where a claimed variance may serve a mean test: for each mean group of
    :func:`~kerneltheory.testing.verify.run_mean_variance_checks`, the families at which a variance group of the
    same run tests that same variance (``{mean claim: {family: variance claim}}``). Elsewhere the mean test must
    not use it: nothing in the run would catch an inflated claim, which makes the mean test lenient.

    A mean group with ``"variance_known": True`` declares its variance a proven fact rather than a claim (the
    engine's own meta-tests of the exact-variance path, on draws of a known law): it serves every family of the
    group, unsettled (``{family: None}``). Neither :func:`~kerneltheory.testing.check_feature_map` nor the claim
    matrix sets it: there every variance is a claim."""
    out: dict[str, dict[int, str | None]] = {}
    for claim, g in groups.items():
        var = g.get("variance")
        if g["kind"] != "mean" or var is None:
            continue
        if g.get("variance_known") is True:
            out[claim] = dict.fromkeys(g["families"])
            continue
        out[claim] = {}
        for vclaim, h in groups.items():
            v = h.get("variance")
            if h["kind"] == "variance" and v is not None and (v is var or (v.shape == var.shape and
                                                                          bool(torch.equal(v, var)))):
                for i in h["families"]:
                    out[claim].setdefault(i, vclaim)
    return out


def settle_on_variance(row: CheckResult, variance_row: CheckResult | None, *, draws: int) -> CheckResult:
    r"""The verdict of a mean row that used a claimed variance (``row.without_variance`` set), once the variance
    check of the same family (``variance_row``) is known; ``draws``: the run's budget (its last look).

    * The variance row passed: ``row`` stands (the joint hypothesis E = target, Var = claimed was tested and its
      second half confirmed), unless W = ``row.without_variance`` rejected while ``row`` passed: the data then reject
      the mean by its own spread and accept it only under the claimed variance, a variance that a test of little
      power (a loose declared bound on heavy-tailed estimates) confirmed, and the row is refused, never passed (a
      biased estimate with a variance claimed 10⁴ times too large passed when its variance row could not reject).
    * Otherwise the claimed variance may be wrong, and an inflated one makes ``row`` lenient, so ``row``'s pass
      means nothing. The test without it (W = ``row.without_variance``, valid on its own) decides: W passed at the
      last look or accepted early → W's pass; W rejected and the variance claim was refuted in this run (the
      variance row failed, or stopped because another one did) → W's failure (it can only add a false failure to
      a report that a false failure of the variance claim already fails); W and ``row`` both rejected → failed,
      with p = max of the two (an intersection test: no more likely than ``row`` alone to fail a true claim);
      anything else → refused, saying why.

    A row without ``without_variance`` (it never used a variance) is returned unchanged
    (proofs/verification.md, item 12).
    """
    fallback = row.without_variance
    if fallback is None:
        return row
    if variance_row is not None and variance_row.passed:
        if not (row.passed and fallback.status == "failed"):
            return row
        return CheckResult.refusal(
            f"without the claimed variance the test rejects ({fallback.method}, p = {fallback.p_value:.3g} at "
            f"{fallback.sample_size} draws) and with it passes ({row.method}, p = {row.p_value:.3g} at "
            f"{row.sample_size}): the mean is accepted only under a variance larger than "
            f"the draws show, which {variance_row.name} passed without the power to refute it",
            name=row.name, claim=row.claim, alpha=row.alpha, sample_size=row.sample_size, seed=row.seed,
            effect_size=fallback.effect_size,
        )
    status = "missing" if variance_row is None else variance_row.status
    why = ("the claimed variance it used was not confirmed" +
           ("" if variance_row is None else f" ({variance_row.name}: {status})"))
    if fallback.passed and (fallback.accepted_early or fallback.sample_size >= draws):
        return replace(fallback, detail=f"{fallback.detail}; {why}, so the test without it decides")
    if fallback.status == "failed" and status in ("failed", "stopped"):
        return replace(fallback, detail=f"{fallback.detail}; {why}, so the test without it decides")
    if fallback.status == "failed" and row.status == "failed":
        return replace(fallback, p_value=max(row.p_value, fallback.p_value),
                       detail=f"{fallback.detail}; {why}; rejected both with it ({row.method}, p = {row.p_value:.3g}) "
                       f"and without it")
    undecided = "did not decide at this look" if fallback.passed else fallback.status
    return CheckResult.refusal(
        f"{why}, and without it the test {undecided} ({fallback.method}, p = {fallback.p_value:.3g}); with it: "
        f"{row.status} ({row.method}, p = {row.p_value:.3g})",
        name=row.name, claim=row.claim, alpha=row.alpha, sample_size=row.sample_size, seed=row.seed,
        effect_size=fallback.effect_size,
    )


def settle_claimed_variances(rows: dict[str, list[CheckResult]], groups: dict[str, dict],
                             backing: dict[str, dict[int, str | None]], *, draws: int) -> None:
    """Apply :func:`settle_on_variance` in place to the mean rows of a run (``rows`` per claim in the order of
    ``groups[claim]["families"]``, ``backing`` from :func:`variance_backing`). A "stopped" row of a claim whose
    failures all turned into refusals says so: the draws stopped on a rejection that no longer stands."""
    for claim, where in backing.items():
        if not where:
            continue
        fams = groups[claim]["families"]
        settled = []
        for i, row in zip(fams, rows[claim], strict=True):
            vclaim = where.get(i)
            vrow = None if vclaim is None else rows[vclaim][list(groups[vclaim]["families"]).index(i)]
            settled.append(row if vclaim is None else settle_on_variance(row, vrow, draws=draws))
        if not any(r.status == "failed" for r in settled):
            settled = [replace(r, detail="not decided: the draws stopped when a check of this claim rejected it "
                                         "with a claimed variance that was not confirmed (that row is refused)")
                       if r.stopped else r for r in settled]
        rows[claim] = settled
