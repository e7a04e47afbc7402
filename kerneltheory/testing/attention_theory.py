r"""Calibrated checks of two theorems about kernelized attention (CONVENTIONS.md), each returning
:class:`~kerneltheory.testing.checks.CheckResult` rows.

**Linear attention is a ratio estimator** (:func:`attention_ratio_check`; proofs/attention_ratio.md). For one
query x, keys y_j and values v_j, one draw of the features gives ô = N̂/D̂ with N̂ = Σ_j K̂_j v_j, D̂ = Σ_j K̂_j;
the K̂_j share the draw and are correlated. The delta method gives E ô − o = b/m + O(m^{-2}) and
E(ô − o)² = s/m + O(m^{-2}) with b, s from the covariances Cov(K̂_j, K̂_k)
(:func:`key_covariance`, :func:`kerneltheory.theory.attention_ratio_bias_mse`). The check measures, at each
m of a grid and over R independent draws,

* m·Q with Q = ô − o − L, L = (δN̂ − o δD̂)/D the linear term (E L = 0 exactly, so Q has mean E ô − o
  and a standard deviation O(1/m) instead of O(1/√m): a control variate);
* m·(ô − o)²;

fits each against a + c/m by weighted least squares and tests H₀: a = b (resp. s), Bonferroni over the
outputs and the two statistics. Both statistics have heavy tails (products and squares of near-normal
errors: sample kurtosis up to ~90 at m = 32), which makes a variance estimated from the draws unreliable;
so the standard errors come from 40 batch means (each a mean of R/40 draws, close to normal) and the test
is Student's t with 39 degrees of freedom. The guard refuses when the Berry–Esseen term |skew|/√R exceeds
:data:`~kerneltheory.testing.checks.GUARD`. For maps that are not
positive, D̂ can vanish and ô has no moments: the check then measures the estimator on the event D̂ > D/2
(whose complement has exponentially small probability for bounded features) and reports how many draws fell
outside it.

**Uniform convergence** (:func:`rks_uniform_check`, :func:`finite_set_uniform_check`;
proofs/uniform_convergence.md). R independent feature maps; for each, the sup of |K̂ − K| over all pairs of a
grid of points in a ball (plus random points). At each ε where the bound B(ε) is < 1, a one-sided binomial test
of H₀: P(sup ≥ ε) ≤ B(ε) from the number of exceedances. Where B(ε) ≥ 1 the bound says nothing and the row is a
refusal. The grid sup is ≤ the sup over the ball, so exceeding the bound on the grid refutes the theorem;
passing does not prove it. Each row reports how loose the bound is: the empirical (1 − δ)-quantile of the sup
over the ε at which the bound equals δ.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from scipy import stats

from .. import estimators as E
from .. import theory
from .._validation import check_alpha, check_int, check_points, check_real, generator_for
from ..features.positive import _is_chi_orf
from ..features.trig import centred_gaussian
from ..spectral.base import ClosedFormUnavailable
from .attention_checks import weighted_fit
from .checks import GUARD, CheckResult, binade_exponents
from .seeds import seed_for

__all__ = [
    "attention_ratio_check",
    "attention_theory_rows",
    "ball_points",
    "finite_set_uniform_check",
    "key_covariance",
    "rks_uniform_check",
    "sup_errors",
]

MIN_DRAWS = 64
BATCHES = 40  # batch means of the ratio check
CHUNK = 64  # draws evaluated at once


# ---------------------------------------------------------------------------------------------------
# Covariances of one draw's estimates at pairs sharing the query
# ---------------------------------------------------------------------------------------------------


def _pair_sums(a: torch.Tensor) -> torch.Tensor:
    """``a`` ``[nq, n, d]`` → ``[nq, n, n, d]`` with entries a_j + a_k."""
    return a.unsqueeze(-2) + a.unsqueeze(-3)


def key_covariance(estimator, x: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    r"""C[i, j, k] = Cov(K̂(x_i, y_j), K̂(x_i, y_k)) of one draw of ``estimator`` (m iid frequencies, or ORF
    blocks), for queries ``x`` ``[nq, d]`` and keys ``keys`` ``[n, d]``: ``[nq, n, n]``; its diagonal is
    ``estimator.variance``.

    Each component's formula is in :mod:`kerneltheory.theory` (``*_covariance``); data-dependent maps (OPRF,
    SADERF, ADERF, SDERF) use the statistics of the sequences ``x`` and ``keys``. Raises
    :class:`ClosedFormUnavailable` where the estimator has no closed-form variance, or where its law's rows are
    dependent (``law.iid_rows`` false) and no formula covers them; ORF with χ_d norms (positive features for SM,
    paired trig features) has the exact formula of :func:`kerneltheory.theory.orf_positive_covariance` /
    :func:`~kerneltheory.theory.orf_trig_covariance` (proofs/orthogonal_variance.md, Cross pairs).
    A deterministic map (no law: elu + 1, Based, ReBased, ...) has C = 0: its linear attention is exact.
    Proof: proofs/attention_ratio.md.
    """
    if isinstance(estimator, str) or not all(hasattr(estimator, a) for a in ("dim", "claims", "law")):
        hint = (f" (a registry name has no m: pass kerneltheory.estimators.get({estimator!r}, dim, num_features))"
                if isinstance(estimator, str) else "")
        raise TypeError(f"estimator must be a RandomFeatureEstimator (or an object with its dim, claims and law), "
                        f"got {type(estimator).__name__}{hint}")
    x = check_points(x, "x", dim=estimator.dim)
    keys = check_points(keys, "keys", dim=estimator.dim)
    if x.dim() != 2 or keys.dim() != 2:
        raise ValueError(f"x and keys must have shape [n, d], got {tuple(x.shape)} and {tuple(keys.shape)}")
    if not estimator.claims.variance:
        raise ClosedFormUnavailable(f"{estimator.name} has no closed-form covariance")
    if estimator.law is None:  # a deterministic map (elu + 1, Based, ...): K̂ = K for every draw, so C = 0
        return torch.zeros(x.shape[0], keys.shape[0], keys.shape[0], dtype=x.dtype, device=x.device)
    comp, law, m = estimator.component, estimator.law, estimator.num_features
    if not law.iid_rows:  # every formula below assumes iid frequencies; ORF (χ_d norms) has its own
        xq, y1, y2 = x[:, None, None, :], keys[None, :, None, :], keys[None, None, :, :]
        if estimator.dim > theory.ORF_CROSS_MAX_DIM and _is_chi_orf(law):
            raise ClosedFormUnavailable(f"{estimator.name}: the ORF cross-pair quadrature is measured for "
                                        f"d ≤ {theory.ORF_CROSS_MAX_DIM}, got d = {estimator.dim}")
        if comp.name == "positive" and comp.h == "softmax" and _is_chi_orf(law, std=1.0):
            return theory.orf_positive_covariance(xq, y1, y2, m)
        if comp.name == "trig" and _is_chi_orf(law):
            lw = comp.log_weight(x) + comp.log_weight(keys).transpose(-1, -2)  # log w(x)w(y_j): [nq, n]
            cov = theory.orf_trig_covariance(xq, y1, y2, m, std=law.std)
            return cov * torch.exp(lw.unsqueeze(-1) + lw.unsqueeze(-2))
        raise ClosedFormUnavailable(f"{estimator.name}: the {law.name} law's rows are not iid, and no covariance "
                                    "formula covers its dependent rows")
    name = comp.name
    if name == "trig" and centred_gaussian(law):  # the stable closed form (the general one cancels as x → y)
        tau = x.unsqueeze(-2) - keys.unsqueeze(-3)  # [nq, n, d]
        q = law.quadratic(tau, tau)
        lw = comp.log_weight(x) + comp.log_weight(keys).transpose(-1, -2)
        return theory.gaussian_trig_covariance(q.unsqueeze(-1), q.unsqueeze(-2),
                                               law.quadratic(tau.unsqueeze(-2), tau.unsqueeze(-3)), m,
                                               lw.unsqueeze(-1), lw.unsqueeze(-2))
    if name in ("trig", "trig_phase"):
        tau = x.unsqueeze(-2) - keys.unsqueeze(-3)  # [nq, n, d]
        psi = law.char_fn(tau)
        args = (psi.unsqueeze(-1), psi.unsqueeze(-2), law.char_fn(_pair_sums(tau)),
                law.char_fn(keys.unsqueeze(-2) - keys.unsqueeze(-3)))
        if name == "trig_phase":
            return theory.trig_phase_covariance(*args, m)
        lw = comp.log_weight(x) + comp.log_weight(keys).transpose(-1, -2)  # log w(x)w(y_j): [nq, n]
        return theory.trig_paired_covariance(*args, m, lw.unsqueeze(-1), lw.unsqueeze(-2))
    if name in ("positive", "hyperbolic"):
        z = x.unsqueeze(-2) + keys.unsqueeze(-3)
        lhh = comp.log_h(x) + comp.log_h(keys).transpose(-1, -2)
        lm = law.log_mgf(z)
        zz = _pair_sums(z)
        if name == "positive":
            return theory.positive_covariance(lhh.unsqueeze(-1), lm.unsqueeze(-1), lhh.unsqueeze(-2),
                                              lm.unsqueeze(-2), law.log_mgf(zz), m)
        if centred_gaussian(law):
            q = law.quadratic(z, z)
            return theory.gaussian_hyperbolic_covariance(lhh.unsqueeze(-1), lhh.unsqueeze(-2), q.unsqueeze(-1),
                                                         q.unsqueeze(-2), law.quadratic(z.unsqueeze(-2),
                                                                                        z.unsqueeze(-3)), m)
        lmn = law.log_mgf(-z)
        diff = (keys.unsqueeze(-2) - keys.unsqueeze(-3)).expand_as(zz)
        return theory.hyperbolic_covariance(
            lhh.unsqueeze(-1), lm.unsqueeze(-1), lmn.unsqueeze(-1), lhh.unsqueeze(-2), lm.unsqueeze(-2),
            lmn.unsqueeze(-2), law.log_mgf(zz), law.log_mgf(-zz), law.log_mgf(diff), law.log_mgf(-diff), m,
        )
    if name in ("gerf", "oprf", "saderf", "aderf"):  # ADERF is OPRF on (Ψx, Ψ⁻¹y), a dense Ψ
        st = comp.statistics(x, keys) if comp.data_dependent else {}
        xt, kt = comp._transform(x, st, "query"), comp._transform(keys, st, "key")
        a = comp._a(st, xt)
        xq, y1, y2 = xt[:, None, None, :], kt[None, :, None, :], kt[None, None, :, :]
        if comp.kernel == "softmax":
            lk = (xt.unsqueeze(-2) * kt.unsqueeze(-3)).sum(-1)
        else:
            lk = -0.5 * ((xt.unsqueeze(-2) - kt.unsqueeze(-3)) ** 2).sum(-1)
        return theory.gerf_covariance(xq, y1, y2, a, comp.s, comp.c, m, lk.unsqueeze(-1), lk.unsqueeze(-2))
    xq, y1, y2 = x[:, None, None, :], keys[None, :, None, :], keys[None, None, :, :]
    if name == "poisrf":
        return theory.poisrf_covariance(xq, y1, y2, comp.rate, m)
    if name == "geomrf":
        return theory.geomrf_covariance(xq, y1, y2, comp.p, m)
    if name == "sderf":
        v, t = comp._params(comp.statistics(x, keys), x)
        return theory.sderf_covariance(xq, y1, y2, v, t, m)
    if name == "hrf":
        return theory.hrf_covariance(xq, y1, y2, m, comp._n(m))
    raise ClosedFormUnavailable(f"no covariance formula for the {name} component")


# ---------------------------------------------------------------------------------------------------
# The ratio estimator
# ---------------------------------------------------------------------------------------------------


def _default_inputs(dim: int, nq: int, n: int, dv: int, norm: float, g: torch.Generator):
    """Queries in random directions with norm exactly ``norm``, keys in random directions with norms spread evenly over
    [norm/2, norm] (so ‖x + y‖ ≤ 2·norm bounds the tails of exponential features for every seed), values N(0, 1).
    Keys of one norm made any factor of the key features that depends on ‖y‖ alone (a wrong h(y), a wrong weight)
    common to every key, where it cancels in the ratio: such a defect passed."""

    def sphere(count: int, norms) -> torch.Tensor:
        u = torch.randn(count, dim, generator=g, dtype=torch.float64)
        return norms * u / u.norm(dim=-1, keepdim=True)

    q = sphere(nq, norm)
    k = sphere(n, norm * torch.linspace(0.5, 1.0, n, dtype=torch.float64)[:, None])
    return q, k, torch.randn(n, dv, generator=g, dtype=torch.float64)


def _batch_moments(x: torch.Tensor, floor: torch.Tensor | float = 0.0) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(mean, standard error, Berry–Esseen term |skew|/√R) over dimension 0, the standard error from
    :data:`BATCHES` batch means (Student t with BATCHES − 1 degrees of freedom; module docstring). Entries whose
    spread is within ``floor`` (rounding: a constant value column) have no tails to guard."""
    r = x.shape[0] - x.shape[0] % BATCHES
    x = x[:r]
    means = x.reshape(BATCHES, r // BATCHES, *x.shape[1:]).mean(1)
    c = x - x.mean(0)
    var = (c * c).mean(0)
    spread = var > torch.as_tensor(floor, dtype=var.dtype) ** 2
    skew = torch.where(spread, (c**3).mean(0) / torch.where(spread, var, 1.0) ** 1.5, torch.zeros_like(var))
    return means.mean(0), means.std(0) / math.sqrt(BATCHES), float(skew.abs().max()) / math.sqrt(r)


def attention_ratio_check(
    estimator: str | Callable[[int], object],
    *,
    dim: int = 4,
    ms: Sequence[int] = (64, 256, 1024),
    draws: int = 4000,
    seed: int,
    alpha: float = 1e-6,
    inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    input_norm: float = 0.3,
    covariance: Callable = key_covariance,
    estimator_kw: Mapping | None = None,
) -> CheckResult:
    """Test that m·bias and m·MSE of linear attention (one draw of features, every key) tend to the delta
    method's constants (module docstring). ``estimator``: a registry name or a factory ``m -> estimator``
    (with ``.kernel``, ``.draw(generator, batch)``, ``.claims``; planted defects go through it); ``inputs``
    ``(queries [nq, d], keys [n, d], values [n, d_v])``, else 2 queries, 8 keys, 2 value columns from ``seed``
    (queries and keys in random directions, the queries of norm ``input_norm``, the keys of norms from half of it
    to it); ``covariance(estimator, queries, keys)``
    gives the predicted covariances (a planted wrong one goes through it); ``estimator_kw`` goes to
    :func:`kerneltheory.estimators.get` with a registry name (e.g. HRF's ``angular_features``). Refused when
    more than 1% of the draws of a map that is not positive fall outside D̂ > D/2 (the expansion is then not
    the estimator's), for a deterministic map (no draws: its ratio is exact) and where fewer than
    ``4·BATCHES`` draws at some m remain; failed when an output or a moment is not finite. ``ms`` start at
    m = 2: at m = 1 the O(m⁻²) remainder of the a + c/m model is not small (ms = (1, 2, 3) failed positive
    features at 31 of 156 seeds at α′ = 0.05; (2, 4, 8): 9 of 174). Each output is compared with its prediction up
    to a rounding floor (2·max(ms)·ρ for m·bias, ρ = 2(n + 2)ε·max_j |v_j| the rounding of one output, and 2·max_m
    m·(2(e_m + ρ)ρ + ρ²) for m·MSE, e_m the largest |ô − o| drawn at m): a constant value column, whose ratio is
    exact, failed on rounding noise; an output whose draws all agree (no spread) passes only within it. (A bound
    2·max|v| in place of e_m grew with a constant added to the values, which moves no error, and passed an m·MSE
    prediction 6× off at an offset of 10⁶.) Each m is compared with its own prediction (a covariance that is not ∝ 1/m
    was read at the largest m only and passed), and values beyond 2^±40 in magnitude are rescaled by a power of two,
    exactly (proofs/attention_ratio.md)."""
    dim = check_int(dim, "dim", minimum=1)
    r = check_int(draws, "draws", minimum=2)
    alpha = check_alpha(alpha)
    seed = check_int(seed, "seed", minimum=0)
    ms = sorted({check_int(m, "ms[i]", minimum=2) for m in ms})
    if len(ms) < 3:
        raise ValueError(f"ms must hold at least three distinct feature counts (a + c/m fit), got {ms}")
    if estimator_kw and not isinstance(estimator, str):
        raise ValueError("estimator_kw goes to kerneltheory.estimators.get with a registry name; a factory takes its "
                         "own arguments")
    g = generator_for(seed)
    if inputs is None:
        norm = check_real(input_norm, "input_norm", minimum=0.0, strict_min=True)
        q, k, v = _default_inputs(dim, 2, 8, 2, norm, g)
    else:
        q, k, v = (check_points(t, f"inputs[{i}]").to(torch.float64) for i, t in enumerate(inputs))
        if not (q.dim() == k.dim() == v.dim() == 2) or v.shape[0] != k.shape[0] or min(v.shape) == 0:
            raise ValueError("inputs must be (queries [nq, d], keys [n, d], values [n, d_v]), n, d_v ≥ 1, got shapes "
                             f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    # the claim is linear in the values: values far from 1 are rescaled by a power of two, which scales every output,
    # error, prediction and floor exactly (bias by 2^-e, MSE by 2^-2e) and leaves every statistic's bits alone; values
    # of 10⁷⁸ made m·(ô − o)²'s moments overflow and failed a correct map, where values up to 10¹⁰⁰ were accepted
    # (the checks' one rule, binade_exponents: only outside 2^±40)
    shift = -int(binade_exponents(v.abs().max().to(torch.float64)))
    v = torch.ldexp(v, torch.tensor(-shift)) if shift else v
    kw = dict(estimator_kw or {})
    factory = (lambda m: E.get(estimator, dim, m, **kw)) if isinstance(estimator, str) else estimator
    label = estimator if isinstance(estimator, str) else getattr(estimator, "__name__", "custom")
    label += f" ({', '.join(f'{key}={val}' for key, val in kw.items())})" if kw else ""
    base = dict(name=f"attention ratio bias/MSE ~ 1/m: {label}", claim="attention ratio", alpha=alpha,
                sample_size=r * len(ms), seed=int(seed))
    need = max(MIN_DRAWS, 4 * BATCHES)
    if r < need:
        return CheckResult.refusal(f"{r} draws per m is too few (need ≥ {need})", **base)
    with torch.no_grad():  # learnable maps hold parameters that require gradients; nothing here differentiates
        row = _ratio_rows(factory, q, k, v, ms, r, g, covariance, need, base, alpha)
    if shift:
        row.detail += f"; the values were rescaled by 2^{-shift} (exactly: the claim is linear in them)"
    return row


def _ratio_rows(factory, q, k, v, ms, r, g, covariance, need, base, alpha) -> CheckResult:
    """The body of :func:`attention_ratio_check` (its arguments validated)."""
    # rounding of one output, an n-term weighted sum of values: ρ_c = 2(n + 2)ε·max_j |v_jc|; m·bias moves by m·ρ,
    # m·MSE by m·(2|ô − o|ρ + ρ²) with |ô − o| ≤ e + ρ, e the largest computed |ô − o| drawn at that m (a bound
    # 2·max|v| made the floor grow with a constant added to the values, which moves no error: at an offset of 10⁶ the
    # floor of m·MSE was 36 against a true 0.01, and a prediction 6× off passed); the intercept's weights stay below 2
    vmax = v.abs().amax(0)
    rho = 2 * (k.shape[0] + 2) * torch.finfo(torch.float64).eps * vmax  # [dv]
    floor_b, floors_s = rho, []  # per unit of m; m·MSE's per m
    stats_b, stats_s, preds_b, preds_s, outside, worst = [], [], [], [], 0, 0.0
    exact_everywhere = True  # every output of every draw exact up to its rounding ρ: the inputs test no map
    for m in ms:
        est = factory(m)
        if getattr(est, "law", True) is None:
            return CheckResult.refusal(f"{getattr(est, 'name', 'the map')} is deterministic (no random features): its "
                                       "linear attention is exact, with no 1/m law to test", **base)
        kern = est.kernel(q, k)  # [nq, n]
        cov = covariance(est, q, k)
        if not isinstance(cov, torch.Tensor) or not cov.is_floating_point():
            raise TypeError(f"covariance must return a real floating-point tensor [nq, n, n], got "
                            f"{getattr(cov, 'dtype', type(cov).__name__)}")
        want = (q.shape[0], k.shape[0], k.shape[0])
        if tuple(cov.shape) != want:  # an [n, n] one was broadcast over the queries and failed a correct map
            raise ValueError(f"covariance must return the [nq, n, n] = {list(want)} covariances of the estimated "
                             f"kernel row of each query, got shape {list(cov.shape)} at m = {m}")
        out, bias, mse = theory.attention_ratio_bias_mse(kern, cov.to(torch.float64), v)
        preds_b.append(m * bias)
        preds_s.append(m * mse)
        den = kern.sum(-1)
        samples_b, samples_s = [], []
        for s0 in range(0, r, CHUNK):
            fq, fk = est.draw(g, batch=min(CHUNK, r - s0)).pair(q, k)
            khat = fq @ fk.transpose(-1, -2)  # [c, nq, n]
            dhat, nhat = khat.sum(-1), khat @ v
            if not est.claims.positive:  # ô has no moments where D̂ can vanish: restrict to D̂ > D/2
                keep = (dhat > den / 2).all(-1)
                outside += int((~keep).sum())
                dhat, nhat = dhat[keep], nhat[keep]
            err = nhat / dhat.unsqueeze(-1) - out
            lin = (nhat - kern @ v - out * (dhat - den).unsqueeze(-1)) / den.unsqueeze(-1)
            samples_b.append(m * (err - lin))
            samples_s.append(m * err**2)
        kept = sum(t.shape[0] for t in samples_b)
        if kept < need:
            return CheckResult.refusal(f"at m = {m} only {kept} of {r} draws have D̂ > D/2 (need ≥ {need}): the "
                                       "expansion does not apply", **base)
        err_max = (torch.cat(samples_s) / m).amax((0, 1)).sqrt()  # [dv]: the largest |ô − o| drawn
        exact_everywhere = exact_everywhere and bool((err_max <= rho).all())
        floors_s.append(m * (2 * (err_max + rho) * rho + rho**2))
        mb, sb, wb = _batch_moments(torch.cat(samples_b), m * floor_b)
        ms_, ss, ws = _batch_moments(torch.cat(samples_s), floors_s[-1])
        stats_b.append((mb, sb))
        stats_s.append((ms_, ss))
        worst = max(worst, wb, ws)
    if not all(bool(torch.isfinite(t).all()) for st in (stats_b, stats_s) for pair in st for t in pair):
        return CheckResult.certain_failure("non-finite estimates", "non-finite attention outputs or moments", **base)
    if exact_everywhere:  # constant values, one key, or keys at one point: the output is exact for any map
        return CheckResult.refusal("every draw's output is exact up to rounding at every m (the values are constant "
                                   "over the keys, there is one key, or the keys are one point): at these inputs any "
                                   "map, biased or not, "
                                   "gives the exact attention, so the check would test nothing; give values that "
                                   "vary over two keys or more", **base)
    if outside > r * len(ms) // 100:
        return CheckResult.refusal(f"{outside} draws with D̂ ≤ D/2: the expansion does not apply", **base)
    if not worst <= GUARD:
        return CheckResult.refusal(f"skewness term {worst:.3g} > {GUARD}: tails too heavy for {r} draws", **base)
    inv_m = np.array([1.0 / m for m in ms])
    floors = {"m·bias": 2 * ms[-1] * floor_b.numpy(), "m·MSE": 2 * torch.stack(floors_s).amax(0).numpy()}
    zs, lines = [], []
    for what, st, pr in (("m·bias", stats_b, preds_b), ("m·MSE", stats_s, preds_s)):
        mean = torch.stack([s[0] for s in st]).numpy()  # [len(ms), nq, dv]
        se = torch.stack([s[1] for s in st]).numpy()
        # each m against its own prediction: for C ∝ 1/m they are one constant, but a covariance that is not (2× off
        # at the smaller m) was read at the largest m only and passed; y_m − pred_m ≈ a + c/m, H₀: a = 0
        preds = torch.stack(pr).numpy()  # [len(ms), nq, dv]
        pred = preds[-1]
        for idx in np.ndindex(pred.shape):
            y, var = mean[(slice(None), *idx)], se[(slice(None), *idx)] ** 2
            own = preds[(slice(None), *idx)]
            floor = float(floors[what][idx[-1]])
            varies = "" if np.ptp(own) <= floor else f" (predicted {own.min():.4g} to {own.max():.4g} over the ms)"
            if not bool((var > 0).all()):  # every draw at some m agrees: no spread to fit by, compare each m
                gap = float(np.abs(y - own).max())
                zs.append(0.0 if gap <= floor else math.copysign(math.inf, float(y[-1] - own[-1])))
                lines.append(f"{what}{list(idx)}: {y[-1]:.4g} in every draw at some m vs {pred[idx]:.4g}{varies}")
                continue
            a, se_a = _wls_intercept(inv_m, y - own, var)
            gap = max(abs(a) - floor, 0.0)  # the distance from [pred − floor, pred + floor]
            zs.append(math.copysign(gap, a) / se_a)
            shown = a + pred[idx] if varies else _wls_intercept(inv_m, y, var)[0]  # (a + pred loses digits if pred ≫ y)
            lines.append(f"{what}{list(idx)}: {shown:.4g} ± {se_a:.2g} vs {pred[idx]:.4g}{varies}")
    z = np.asarray(zs, dtype=np.float64)
    if not bool(np.isfinite(z[~np.isinf(z)]).all()):  # a NaN must never read as p = 1
        return CheckResult.refusal(f"a t-statistic is not a number ({lines[int(np.isnan(z).argmax())]})", **base)
    worst_i = int(np.argmax(np.abs(z)))
    p = min(1.0, float(2.0 * stats.t.sf(abs(z[worst_i]), BATCHES - 1)) * len(z))
    return CheckResult(
        statistic=float(z[worst_i]), p_value=p, effect_size=float(abs(z[worst_i])) / math.sqrt(r),
        method="a + c/m WLS intercept t-test (batch means), Bonferroni", passed=p > alpha,
        detail=f"worst {lines[worst_i]}; draws outside D̂ > D/2: {outside}; " + "; ".join(lines[:4]), **base,
    )


def _wls_intercept(x: np.ndarray, y: np.ndarray, var: np.ndarray) -> tuple[float, float]:
    """(intercept, its standard error) of the WLS line y ≈ a + c·x with weights 1/var."""
    x = np.asarray(x, dtype=np.float64)
    a, se_a, _, _ = weighted_fit(np.stack([np.ones_like(x), x], axis=1), y, var, 0)
    return a, se_a


# ---------------------------------------------------------------------------------------------------
# Uniform convergence
# ---------------------------------------------------------------------------------------------------


def ball_points(dim: int, radius: float, *, rings: int = 4, per_ring: int = 12, random: int = 16,
                generator: torch.Generator) -> torch.Tensor:
    """Points of the closed ball B(0, radius) in R^dim: the centre, ``rings`` concentric spheres (radius·i/rings)
    of ``per_ring`` points each (in d = 2 a circle grid of ``per_ring`` equally spaced directions, which contains
    −e_1 only for an even ``per_ring``; otherwise fixed pseudo-random directions containing ±e_1, so that the
    diameter is attained), and ``random`` uniform points of the ball. (The bounds use the diameter 2·radius of the
    ball, whatever the grid attains.)"""
    dim = check_int(dim, "dim", minimum=1)
    radius = check_real(radius, "radius", minimum=0.0, strict_min=True)
    rings, per_ring = check_int(rings, "rings", minimum=1), check_int(per_ring, "per_ring", minimum=2)
    random = check_int(random, "random", minimum=0)
    if dim == 2:
        t = torch.arange(per_ring, dtype=torch.float64) * (2 * math.pi / per_ring)
        dirs = torch.stack([torch.cos(t), torch.sin(t)], -1)
    else:
        dirs = torch.randn(per_ring, dim, generator=generator, dtype=torch.float64)
        dirs[0], dirs[1] = 0.0, 0.0
        dirs[0, 0], dirs[1, 0] = 1.0, -1.0
        dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    shells = [dirs * (radius * i / rings) for i in range(1, rings + 1)]
    u = torch.randn(random, dim, generator=generator, dtype=torch.float64)
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    rad = radius * torch.rand(random, 1, generator=generator, dtype=torch.float64) ** (1.0 / dim)
    return torch.cat([torch.zeros(1, dim, dtype=torch.float64), *shells, u * rad])


def sup_errors(estimator, points: torch.Tensor, draws: int, generator: torch.Generator, kernel=None) -> torch.Tensor:
    """``[draws]``: for each of ``draws`` independent maps of ``estimator``, max over all pairs of ``points`` of
    |K̂ − K|, K = ``kernel(points, points)`` (default: the estimator's own target)."""
    kern = (estimator.kernel if kernel is None else kernel)(points, points)
    out = []
    for s0 in range(0, draws, CHUNK):
        fx, fy = estimator.draw(generator, batch=min(CHUNK, draws - s0)).pair(points, points)
        out.append((fx @ fy.transpose(-1, -2) - kern).abs().amax((-2, -1)))
    return torch.cat(out)


def _exceedance_rows(errors, epsilons, bound, eps_at, *, name, claim, alpha, seed, delta) -> list[CheckResult]:
    """One row per ε: one-sided binomial test of H₀: P(sup ≥ ε) ≤ bound(ε); a refusal where bound(ε) ≥ 1."""
    r = errors.numel()
    if not bool(torch.isfinite(errors).all()):
        bad = int((~torch.isfinite(errors)).sum())
        what = f"{bad}/{r} draws give a non-finite estimate on the grid"
        return [CheckResult.certain_failure("non-finite estimates", what, name=f"{name}, ε = {float(e):g}", claim=claim,
                                            alpha=alpha, sample_size=r, seed=int(seed))
                for e in epsilons]
    loose = f"empirical {1 - delta:g}-quantile of the sup {float(errors.quantile(1 - delta)):.4g}"
    eps_d = eps_at(delta)
    loose += f" vs the bound's ε({delta:g}) = {eps_d:.4g}: ratio {float(errors.quantile(1 - delta)) / eps_d:.3g}"
    rows = []
    for eps in epsilons:
        eps = check_real(eps, "epsilons[i]", minimum=0.0, strict_min=True)
        b = bound(eps)
        base = dict(name=f"{name}, ε = {eps:g}", claim=claim, alpha=alpha, sample_size=r, seed=int(seed))
        if not b < 1.0:
            rows.append(CheckResult.refusal(f"bound {b:.3g} ≥ 1 at ε = {eps:g}: vacuous, nothing to test; {loose}",
                                            **base))
            continue
        k = int((errors >= eps).sum())
        p = float(stats.binom.sf(k - 1, r, b)) if k > 0 else 1.0
        rows.append(CheckResult(
            statistic=k / r, p_value=p, effect_size=k / r - b, method="one-sided binomial (exceedances ≤ bound)",
            passed=p > alpha, detail=f"{k}/{r} draws with sup ≥ ε, bound {b:.3g}; {loose}", **base,
        ))
    return rows


def _check_uniform_args(epsilons, delta) -> None:
    """``epsilons``: a non-empty sequence (each checked where it is used); ``delta`` in (0, 1)."""
    if isinstance(epsilons, (str, bytes)) or not isinstance(epsilons, Sequence | torch.Tensor | np.ndarray):
        raise ValueError(f"epsilons must be a sequence of ε > 0, got {type(epsilons).__name__}")
    if len(epsilons) == 0:
        raise ValueError("epsilons must hold at least one ε (no ε: no row, nothing tested)")
    delta = check_real(delta, "delta", minimum=0.0, strict_min=True)
    if not delta < 1:
        raise ValueError(f"delta must be in (0, 1) (the quantile 1 − delta of the sup is reported), got {delta}")


def rks_uniform_check(
    *, dim: int = 2, radius: float = 0.5, std: float = 1.0, num_features: int = 2000, draws: int = 256,
    epsilons: Sequence[float] = (0.25, 0.3, 0.4), seed: int, alpha: float = 1e-6, delta: float = 0.1,
    estimator=None,
) -> list[CheckResult]:
    """Rahimi & Recht's Claim 1 for the random-phase map √(2/D) cos(ωᵀx + b), ω ~ N(0, std²I) (the Gaussian
    kernel exp(−std²‖x − y‖²/2), σ_p = std·√d) on the ball of ``radius`` (diameter 2·radius), D =
    ``num_features``. ``estimator`` replaces the registry's ``trig_phase/gaussian``
    for the draws (a planted defect); the target stays the Gaussian kernel."""
    dim = check_int(dim, "dim", minimum=1)
    dd = check_int(num_features, "num_features", minimum=1)
    std = check_real(std, "std", minimum=0.0, strict_min=True)
    if not std * std >= sys.float_info.min:  # the law's covariance std²·I would be 0 or subnormal
        raise ValueError(f"std must have a square of at least float64's smallest normal number (std ≥ 1.5e-154), "
                         f"got {std:g}")
    radius = check_real(radius, "radius", minimum=0.0, strict_min=True)
    alpha = check_alpha(alpha)
    r = check_int(draws, "draws", minimum=1)
    _check_uniform_args(epsilons, delta)
    g = generator_for(check_int(seed, "seed", minimum=0))
    ref = E.get("trig_phase/gaussian", dim, dd, std=std)
    errors = sup_errors(ref if estimator is None else estimator, ball_points(dim, radius, generator=g), r, g,
                        ref.kernel)
    sigma_p, diam = std * math.sqrt(dim), 2 * radius
    return _exceedance_rows(
        errors, epsilons, lambda e: theory.rks_uniform_bound(e, dd, dim, sigma_p, diam),
        lambda dl: theory.rks_uniform_epsilon(dl, dd, dim, sigma_p, diam),
        name=f"Rahimi–Recht sup bound (D = {dd}, d = {dim}, diam = {diam:g})", claim="uniform convergence",
        alpha=alpha, seed=seed, delta=delta,
    )


def finite_set_uniform_check(
    name: str = "positive/gaussian", *, dim: int = 2, radius: float = 0.5, num_features: int = 4096,
    draws: int = 256, epsilons: Sequence[float] = (0.1, 0.2, 0.3), seed: int, alpha: float = 1e-6,
    delta: float = 0.1, estimator=None,
) -> list[CheckResult]:
    """Chebyshev and the union bound over the pairs of a finite grid G of the ball (proofs/uniform_convergence.md):
    P(max_G |K̂ − K| ≥ ε) ≤ Σ_G Var K̂/ε², for any unbiased estimator with a closed-form variance (positive
    features by default). ``estimator`` replaces the registry's for the draws (a planted defect); the
    target and the bound stay the registry estimator's."""
    dim = check_int(dim, "dim", minimum=1)
    dd = check_int(num_features, "num_features", minimum=1)
    alpha = check_alpha(alpha)
    r = check_int(draws, "draws", minimum=1)
    _check_uniform_args(epsilons, delta)
    g = generator_for(check_int(seed, "seed", minimum=0))
    ref = E.get(name, dim, dd)
    if ref.law is None:
        return [CheckResult.refusal(f"{name} is deterministic (no random features): its estimate is its kernel, with "
                                    "nothing to converge", name=f"Chebyshev–union bound: {name}, ε = {float(e):g}",
                                    claim="uniform convergence", alpha=alpha, sample_size=0, seed=int(seed))
                for e in epsilons]
    pts = ball_points(dim, radius, rings=2, per_ring=6, random=4, generator=g)
    var = ref.variance(pts, pts)
    errors = sup_errors(ref if estimator is None else estimator, pts, r, g, ref.kernel)
    return _exceedance_rows(
        errors, epsilons, lambda e: theory.finite_set_uniform_bound(var, e),
        lambda dl: theory.finite_set_uniform_epsilon(var, dl),
        name=f"Chebyshev–union bound on {pts.shape[0]}² grid pairs: {name} (m = {dd})",
        claim="uniform convergence", alpha=alpha, seed=seed, delta=delta,
    )


# ---------------------------------------------------------------------------------------------------
# Rows for the report
# ---------------------------------------------------------------------------------------------------

RATIO_ESTIMATORS = ("positive/gaussian", "hyperbolic/gaussian", "oprf/gaussian", "trig/gaussian",
                    "trig_phase/gaussian", "sderf/gaussian", "aderf/gaussian", "hrf/gaussian",
                    "positive/orthogonal", "trig/orthogonal")  # ORF: d = 4 divides every m of the grids
# HRF with n = m angular features has 3m(m + 1) features and a covariance that is not Σ/m (its c/(nm) term): a
# fixed n keeps C = Σ/m, the check's model, and the feature count 3m(n + 1) small
RATIO_ESTIMATOR_KW = {"hrf/gaussian": {"angular_features": 4}}


def attention_theory_rows(quick: bool = True, *, base_seed: int = 0, alpha: float = 1e-6) -> list[CheckResult]:
    """Every check of this module as report rows: the ratio estimator for :data:`RATIO_ESTIMATORS` (quick: the
    first four), the Rahimi–Recht bound and the Chebyshev–union bound for positive features. Rows refused as
    vacuous (bound ≥ 1) are expected and are not failures of the theory.
    ``quick`` takes a few seconds per row; ``quick=False`` uses 4× the draws and a wider grid of m."""
    names = RATIO_ESTIMATORS[:4] if quick else RATIO_ESTIMATORS
    ratio_kw = dict(draws=4000) if quick else dict(draws=16000, ms=(64, 256, 1024, 4096))
    rows = [
        attention_ratio_check(n, seed=seed_for(f"attention_ratio:{n}", base_seed), alpha=alpha,
                              estimator_kw=RATIO_ESTIMATOR_KW.get(n), **ratio_kw)
        for n in names
    ]
    draws = 128 if quick else 512
    rows += rks_uniform_check(draws=draws, seed=seed_for("rks_uniform", base_seed), alpha=alpha)
    rows += finite_set_uniform_check(draws=draws, seed=seed_for("finite_set_uniform", base_seed), alpha=alpha)
    return rows
