r"""Diagnostics of trained kernels: how far learning moved the kernel, and whether positive maps stay positive.

**Kernel distance.** For one attention layer, with head h's kernel κ_h (a function on R^{d_h}), initial
κ_h⁰ and learned κ_h¹, on held-out pairs (x_p, y_p) (the layer's scaled queries and keys on held-out data):

.. math::
    \Delta = \frac{\operatorname{mean}_{h,p} |\kappa^1_h(x_p, y_p) - \kappa^0_h(x_p, y_p)|}
                  {\operatorname{mean}_{h,p} |\kappa^0_h(x_p, y_p)|} .

κ is the *target* kernel of the head's estimator: the closed form where one exists (the mixture's ψ or M,
MATH.md §1; a deterministic map's φ(x)ᵀφ(y)), otherwise (learnable Fastfood, generator) a Monte Carlo
estimate over ``draws`` draws with common random numbers (the same seed for κ⁰ and κ¹), whose standard
error is returned with it. The query/key projections are not part of κ: Δ measures the kernel alone, so
fixed kernels (softmax, Performer, RFF, elu+1) have Δ = 0 exactly.

Δ is dominated by the pairs with the largest kernel values, and exponential kernels (PRF, the mixture's
M(z) = Σ w exp(μᵀz + zᵀΣz/2)) change by orders of magnitude where a learned Σ grows, so Δ can be huge.
:func:`attention_distance` is the bounded, scale-free companion: the total variation between the attention
rows a_i = κ(q_i, ·)/Σ_j κ(q_i, k_j) the two kernels induce on a held-out sequence (what attention sees).

:func:`spectrum_shift` measures the frequency law itself: E‖ω₁ − ω₀‖ / E‖ω₀‖ with shared noise, a low-noise
bound on how far the learned spectrum moved, where a Monte Carlo Δ of a signed kernel is too noisy to resolve.

**Feature floor.** :func:`feature_floor` evaluates a layer's frozen evaluation draw on held-out queries and
keys in log space (``log_query``/``log_key``): the minimum of log|φ|, whether every sign is +1 and every log
finite (positivity that survives underflow), and min φ in float64.
"""

from __future__ import annotations

import copy
import math

import torch

from .._validation import check_int, check_points
from ..features.base import Component
from .attention import KernelizedAttention
from .transformer import KLTransformer

__all__ = [
    "attention_distance",
    "feature_floor",
    "held_out_pairs",
    "kernel_distance",
    "model_diagnostics",
    "spectrum_shift",
]


def held_out_pairs(q: torch.Tensor, k: torch.Tensor, num_pairs: int, seed: int = 0):
    """``num_pairs`` (query, key) pairs per head from ``[B, H, n, d]`` tensors: ``x, y`` of shape ``[H, P, d]``
    (each pair a query and a key at independent random (batch, position) indices)."""
    check_points(q, "q", min_rank=4)
    check_points(k, "k", min_rank=4)
    if q.dim() != 4 or q.shape != k.shape or q.shape[2] == 0:
        raise ValueError(
            f"q and k must share one shape [B, H, n, d] with n >= 1, got {tuple(q.shape)} and {tuple(k.shape)}"
        )
    num_pairs = check_int(num_pairs, "num_pairs", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    b, h, n, d = q.shape
    g = torch.Generator().manual_seed(seed)
    bi, qi, ki = (torch.randint(0, hi, (num_pairs,), generator=g) for hi in (b, n, n))
    return q[bi, :, qi].transpose(0, 1), k[bi, :, ki].transpose(0, 1)


def _head_difference(e0, e1, x: torch.Tensor, y: torch.Tensor, draws: int, seed: int, chunk: int = 1024):
    """(κ⁰(x_p, y_p), κ¹ − κ⁰, Monte Carlo stderr of the difference), each ``[P]``, for one head.

    Without closed forms both kernels are estimated from the *same* noise (one generator seed per chunk of
    draws for both laws: common random numbers), so the difference is estimated draw by draw, with its own
    stderr; the draws are taken ``chunk`` at a time (memory O(chunk · P · D))."""
    if e1.has_closed_form and e0.has_closed_form:
        k0 = e0.kernel_pairs(x, y)
        return k0, e1.kernel_pairs(x, y) - k0, torch.zeros_like(k0)
    s0s, ds = [], []
    for i, start in enumerate(range(0, draws, chunk)):
        r = min(chunk, draws - start)
        s0 = e0.sample_estimates(x, y, torch.Generator().manual_seed(seed + 7919 * i), r)
        s1 = e1.sample_estimates(x, y, torch.Generator().manual_seed(seed + 7919 * i), r)
        s0s.append(s0.sum(0))
        ds.append(s1 - s0)
    d = torch.cat(ds)
    return torch.stack(s0s).sum(0) / draws, d.mean(0), d.std(0) / math.sqrt(draws)


@torch.no_grad()
def kernel_distance(
    initial: KernelizedAttention,
    learned: KernelizedAttention,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    draws: int = 256,
    seed: int = 12345,
) -> dict:
    """Δ (module docstring) between two copies of one attention layer on pairs ``x, y`` ``[H, P, d_h]``.

    Returns ``{"distance", "stderr", "exact"}``: ``stderr`` is the mean Monte Carlo standard error of the
    per-pair differences relative to the denominator (0 for closed forms; Δ from noise alone is of that
    order), ``exact`` whether both kernels were closed-form. Evaluated in float64 on copies.
    """
    _check_copies(initial, learned, draws=draws, seed=seed)
    if not learned.estimators or not learned.learnable:  # softmax or no kernel parameter: κ cannot move
        return {"distance": 0.0, "stderr": 0.0, "exact": True}
    a = copy.deepcopy(initial).double().cpu()
    b = copy.deepcopy(learned).double().cpu()
    x, y = x.detach().double().cpu(), y.detach().double().cpu()
    k0, diff, err = zip(
        *(
            _head_difference(e0, e1, x[h], y[h], draws, seed + h)
            for h, (e0, e1) in enumerate(zip(a.estimators, b.estimators, strict=True))
        ),
        strict=True,
    )
    k0, diff, err = torch.stack(k0), torch.stack(diff), torch.stack(err)
    den = k0.abs().mean()
    exact = bool((err == 0).all())
    return {"distance": float(diff.abs().mean() / den), "stderr": float(err.mean() / den), "exact": exact}


def _check_copies(initial, learned, *, draws: int, seed: int) -> None:
    """Two copies of one attention layer (same kernel and heads), ``draws`` ≥ 1 and ``seed`` ≥ 0."""
    for name, attn in (("initial", initial), ("learned", learned)):
        if not isinstance(attn, KernelizedAttention):
            raise TypeError(f"{name} must be a KernelizedAttention, got {type(attn).__name__}")
    if (initial.kernel, initial.num_heads, initial.head_dim) != (learned.kernel, learned.num_heads, learned.head_dim):
        raise ValueError("initial and learned must be copies of one layer (same kernel, heads and head size)")
    check_int(draws, "draws", minimum=1)
    check_int(seed, "seed", minimum=0)


def _gram(est, x: torch.Tensor, y: torch.Tensor, draws: int, seed: int) -> torch.Tensor:
    """κ(x_i, y_j) ``[n_x, n_y]``: closed form, else the mean of ``draws`` draws (seeded: common random numbers)."""
    if est.has_closed_form:
        return est.kernel(x, y)
    fm = est.draw(torch.Generator().manual_seed(seed), batch=draws)
    return fm.estimate(x, y).mean(0)


@torch.no_grad()
def attention_distance(
    initial: KernelizedAttention,
    learned: KernelizedAttention,
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    draws: int = 128,
    seed: int = 12345,
) -> float:
    r"""Mean total variation between the attention rows the two kernels induce on one sequence,

    .. math::
        \mathrm{TV} = \operatorname{mean}_{h,i}\ \tfrac12 \sum_j |a^1_{ij} - a^0_{ij}|, \qquad
        a_{ij} = \kappa(q_i, k_j) / \textstyle\sum_{j'} \kappa(q_i, k_{j'}),

    for queries and keys ``[H, n_q, d_h]``, ``[H, n_k, d_h]`` (κ exact or Monte Carlo as in
    :func:`kernel_distance`). Unlike Δ it ignores every factor attention cancels (a constant per query) and
    is bounded by 1 for positive kernels; a signed kernel's rows can have near-zero sums, and then TV > 1.
    """
    _check_copies(initial, learned, draws=draws, seed=seed)
    if not learned.estimators or not learned.learnable:
        return 0.0
    a = copy.deepcopy(initial).double().cpu()
    b = copy.deepcopy(learned).double().cpu()
    q, k = q.detach().double().cpu(), k.detach().double().cpu()
    tvs = []
    for h, (e0, e1) in enumerate(zip(a.estimators, b.estimators, strict=True)):
        g0 = _gram(e0, q[h], k[h], draws, seed + h)
        g1 = _gram(e1, q[h], k[h], draws, seed + h)
        a0 = g0 / g0.sum(-1, keepdim=True)
        a1 = g1 / g1.sum(-1, keepdim=True)
        tvs.append(0.5 * (a1 - a0).abs().sum(-1).mean())
    return float(torch.stack(tvs).mean())


@torch.no_grad()
def spectrum_shift(
    initial: KernelizedAttention, learned: KernelizedAttention, *, draws: int = 256, seed: int = 4242
) -> float:
    """How far the learned frequency laws moved: E‖ω₁ − ω₀‖ / E‖ω₀‖ over rows drawn with the *same* noise
    (ε, permutations, uniforms) from the initial and the learned law of each head, averaged over heads.

    E‖ω₁ − ω₀‖ under any coupling bounds the Wasserstein-1 distance between the two laws, so this is a
    low-noise upper bound on how far the spectrum moved (it can be > 0 for a move that leaves the kernel
    unchanged, e.g. ω → −ω under a trigonometric map). 0 for fixed laws; NaN when the map has no law.
    """
    _check_copies(initial, learned, draws=draws, seed=seed)
    if not learned.estimators or learned.estimators[0].law is None:
        return math.nan
    a = copy.deepcopy(initial).double().cpu()
    b = copy.deepcopy(learned).double().cpu()
    shifts = []
    for h, (e0, e1) in enumerate(zip(a.estimators, b.estimators, strict=True)):
        w0 = e0.law.sample(a.num_features, torch.Generator().manual_seed(seed + h), batch=draws)
        w1 = e1.law.sample(b.num_features, torch.Generator().manual_seed(seed + h), batch=draws)
        shifts.append((w1 - w0).norm(dim=-1).mean() / w0.norm(dim=-1).mean())
    return float(torch.stack(shifts).mean())


@torch.no_grad()
def feature_floor(attn: KernelizedAttention, q: torch.Tensor, k: torch.Tensor) -> dict:
    """Positivity of the frozen evaluation draw on scaled queries/keys ``[B, H, n, d_h]`` (float64 logs).

    Returns ``{"min_log_feature", "min_feature", "all_positive"}``; ``all_positive`` is True when every
    feature has sign +1 and a finite log (strict positivity in exact arithmetic, even where exp underflows).
    """
    if not attn.estimators:
        return {"min_log_feature": math.nan, "min_feature": math.nan, "all_positive": True}
    maps = attn.draw()
    q, k = q.detach(), k.detach()
    mins, signs_ok, vals = [], True, []
    for h, fm in enumerate(maps.per_head):
        comp = fm.component
        qh, kh = q[:, h], k[:, h]
        if type(comp).log_features is Component.log_features:
            feats = [fm.query(qh).double(), fm.key(kh).double()]
            logs = [torch.log(f.abs()) for f in feats]
            sgn = [torch.sign(f) for f in feats]
        else:
            (lq, sq), (lk, sk) = fm.log_query(qh), fm.log_key(kh)
            logs, sgn = [lq.double(), lk.double()], [sq, sk]
        for lg, s in zip(logs, sgn, strict=True):
            signs_ok = signs_ok and bool((s > 0).all()) and bool(torch.isfinite(lg).all())
            mins.append(float(lg.min()))
            vals.append(float((s.double() * torch.exp(lg)).min()))
    return {"min_log_feature": min(mins), "min_feature": min(vals), "all_positive": signs_ok}


@torch.no_grad()
def model_diagnostics(
    initial: KLTransformer,
    model: KLTransformer,
    tokens: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    num_pairs: int = 256,
    draws: int = 256,
    tv_draws: int = 128,
    seed: int = 0,
) -> dict:
    """Δ (``draws`` Monte Carlo draws where needed) and the attention distance (``tv_draws``) averaged over
    layers, pairs from ``model``'s own held-out queries/keys, and the feature floor over layers, for a
    :class:`KLTransformer` and a copy of it at initialisation."""
    was_training = model.training
    model.eval()
    try:
        inputs = model.layer_inputs(tokens, mask)
        dists, errs, tvs, shifts, exact, mins, mins_log, positive = [], [], [], [], True, [], [], True
        for layer, (a0, a1, h) in enumerate(
            zip(initial.attention_layers, model.attention_layers, inputs, strict=True)
        ):
            q, k, _ = a1.project(h)
            if mask is not None:  # keep real positions only: take pairs from the first sequence's real part
                n_real = int(mask.sum(1).min())
                q, k = q[:, :, :n_real], k[:, :, :n_real]
            if a1.estimators:
                x, y = held_out_pairs(q, k, num_pairs, seed + layer)
                d = kernel_distance(a0, a1, x, y, draws=draws, seed=seed + 1000 + layer)
                # attention rows of the first sequence: its first 32 queries against its first 128 keys
                tvs.append(
                    attention_distance(
                        a0, a1, q[0, :, :32], k[0, :, :128], draws=draws, seed=seed + 2000 + layer
                    )
                )
                shifts.append(spectrum_shift(a0, a1, seed=seed + 3000 + layer))
                dists.append(d["distance"])
                errs.append(d["stderr"])
                exact = exact and d["exact"]
            f = feature_floor(a1, q, k)
            mins.append(f["min_feature"])
            mins_log.append(f["min_log_feature"])
            positive = positive and f["all_positive"]
    finally:
        model.train(was_training)
    return {
        "kernel_distance": sum(dists) / len(dists) if dists else 0.0,
        "kernel_distance_stderr": sum(errs) / len(errs) if errs else 0.0,
        "kernel_distance_exact": exact,
        "attention_distance": sum(tvs) / len(tvs) if tvs else 0.0,
        "spectrum_shift": sum(shifts) / len(shifts) if shifts else math.nan,
        "min_feature": min(mins),
        "min_log_feature": min(mins_log),
        "all_positive": positive,
    }
