r"""Softmax, exact-kernel and linear attention (MATH.md §5).

Generalised attention (Katharopoulos et al. 2020, "Transformers are RNNs: Fast Autoregressive Transformers
with Linear Attention", eq. (4)) normalises a similarity κ over the keys of each query,

.. math::
    \mathrm{out}_i = \frac{\sum_j \kappa(q_i, k_j)\, v_j}{\sum_j \kappa(q_i, k_j)},

softmax attention being κ(q, k) = exp(qᵀk/√d) = SM(q̃, k̃) with q̃ = q·d^{-1/4}, k̃ = k·d^{-1/4}. When
κ(q, k) = φ(q)ᵀφ(k) (eq. (5)) the sums factor (eq. (6)):

.. math::
    \mathrm{out}_i = \frac{\varphi(q_i)^\top \sum_j \varphi(k_j) v_j^\top}{\varphi(q_i)^\top \sum_j \varphi(k_j)},

O(n·D·d_v) time and an O(D·d_v) state instead of the O(n²) attention matrix; with random features φ this is
Performer's FAVOR+ (Choromanski et al. 2021, "Rethinking Attention with Performers", §2–3). Causal attention
(Katharopoulos et al. §3.3) replaces the sums by prefix sums S_i = Σ_{j≤i} φ(k_j)v_jᵀ, z_i = Σ_{j≤i} φ(k_j);
here they are evaluated by chunks of L positions: the state from earlier chunks plus the lower-triangular
L×L block of the current chunk, O(n·(L·(D + d_v) + D·d_v)) time, O(L² + L·D + D·d_v) memory per step and
never an n×D×d_v cumulative sum (proofs/linear_attention.md). Both modes compute the features chunk by
chunk (never φ of all n at once): peak memory O(L·D + D·d_v) per head besides inputs and outputs, and the
elementwise work stays in cache. One product with [v | 1] gives numerator and denominator together.

Legal stabilisers (MATH.md §5, proofs/stabiliser_legality.md). Exponential features overflow or underflow
long before the attention they define does. Three transformations leave attention unchanged: multiplying
φ(q_i) by any c_i > 0 (it cancels between numerator and denominator of row i); multiplying *every* key's
features by one constant C > 0 (it cancels in every row); and moving a positive per-feature factor λ_f
from the keys to the queries, φ(q)_f·λ_f and φ(k)_f/λ_f (every product φ(q_i)_fφ(k_j)_f is unchanged, so
the kernel itself is). ``stabilise=True`` works in log space (``FeatureMap.log_query``/``log_key``): it
sets λ_f = exp(M_f), M_f = max over the kept keys of log φ(k_j)_f (per batch/head entry), then subtracts
each query's max over features (:func:`default_stabiliser`). In one pass over the key chunks M is the running
max, the accumulated state rescaled by exp(M_old − M_new) when it grows (the same Λ for every key in the
end). Every key feature is then ≤ 1 with a 1 in
each column and every query feature ≤ 1 with a 1 in each row, so a positive map's non-causal denominator
lies in [1, n_k·D]. (The two textbook stabilisers, :func:`per_query_max` and :func:`shared_key_max`, are
also provided; with them a denominator can underflow where the raw one does not, e.g. log φ(q) = [60, −60],
log φ(k) = [−60, 60].) In causal mode M_f is the running max over the keys seen so far, the state rescaled
when it grows: row i still sees one Λ for all its keys j ≤ i (a chunk whose denominators underflow because
a later key of the same chunk set M is halved and redone, down to single positions, where a positive
map's denominator is again ≥ 1). A per-key constant is *not* legal: it
reweights key j inside every row and biases attention (the planted defect
``kerneltheory.testing.attention_checks.per_key_max``). The constants are detached from autograd; they
cancel exactly, so gradients are unchanged.

Padding: a key mask sets the masked keys' *features* to 0 (not the inputs: φ(0) ≠ 0), so they add nothing
to numerator or denominator. Data-dependent maps (OPRF, SADERF) are bound to the kept keys only (and, in
causal mode, the queries at kept positions). Their parameters (OPRF's A*) are statistics of the whole
sequence, so in causal mode out_i depends on later positions through them, though not through the weights.

The denominator of a non-positive map (trig, DIRF) can vanish or change sign (MATH.md §5). No ε is added by
default (an ε biases attention); a zero or non-finite denominator raises :class:`ValueError` naming the query
unless ``check_denominator=False``. A negative denominator is returned as computed.

The attention matrix diag(z)⁻¹Φ(Q)Φ(K)ᵀ (:func:`attention_matrix`) has rank ≤ D (proofs/rank_bound.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._validation import all_finite, check_int, check_points, check_real
from .features.base import Component, FeatureMap

Stabiliser = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
DEFAULT_CHUNK_SIZE = 128
# Off the CPU a chunk is a few kernel launches and host synchronisations, not a cache-sized piece of work:
# on an H200 at n = 65536 (D = 256, d = 64) chunks of 128 cost 475 µs each non-causal and 1.1 ms causal,
# 376× and 6.6× the minimal implementations (experiments/bench/cuda, docs/benchmarks.md). Larger chunks there,
# still O(L·D + D·d_v) memory per head (causal: the L×L block too).
ACCELERATOR_CHUNK_SIZE = {False: 8192, True: 1024}


def default_chunk_size(device: torch.device, causal: bool) -> int:
    """The chunk length L used when ``chunk_size`` is None: 128 positions on the CPU (the per-chunk n×D work
    stays in cache), :data:`ACCELERATOR_CHUNK_SIZE` elsewhere (8192 non-causal, 1024 causal)."""
    return DEFAULT_CHUNK_SIZE if torch.device(device).type == "cpu" else ACCELERATOR_CHUNK_SIZE[bool(causal)]

__all__ = [
    "attention_matrix",
    "default_chunk_size",
    "default_stabiliser",
    "kernel_attention",
    "linear_attention",
    "per_feature_balance",
    "per_query_max",
    "shared_key_max",
    "softmax_attention",
    "stabilised_features",
]


# ---------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------


def _check_qkv(q, k, v, causal) -> None:
    check_points(q, "q")
    check_points(k, "k", dim=q.shape[-1])
    check_points(v, "v")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k and v must share a dtype, got {q.dtype}, {k.dtype} and {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k and v must be on one device, got {q.device}, {k.device} and {v.device}")
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(
            "q, k and v must share their leading (batch, head) dimensions, got "
            f"{tuple(q.shape[:-2])}, {tuple(k.shape[:-2])} and {tuple(v.shape[:-2])}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"v must have one row per key: k has {k.shape[-2]} rows, v has {v.shape[-2]}")
    _check_keys(k)
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"causal attention needs as many queries as keys, got n_q = {q.shape[-2]} and n_k = {k.shape[-2]}"
        )


def _check_keys(k: torch.Tensor) -> None:
    """n_q = 0 is fine (an empty output); a normalisation over no key is undefined."""
    if k.shape[-2] == 0:
        raise ValueError("k must have at least one row (n_k >= 1): attention over no key is undefined")


def _check_mask(mask, k: torch.Tensor) -> torch.Tensor | None:
    """The key mask as ``[B, n_k]`` (``[n_k]`` when k has no batch dimension), or None."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor of dtype bool, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must have dtype torch.bool (True = keep), got {mask.dtype}")
    n_k = k.shape[-2]
    if k.dim() == 2:
        if mask.shape not in ((n_k,), (1, n_k)):
            raise ValueError(f"mask must have shape [n_k] = [{n_k}] for unbatched k, got {tuple(mask.shape)}")
        return mask.reshape(n_k).to(k.device)
    if mask.shape != (k.shape[0], n_k):
        raise ValueError(
            f"mask must have shape [batch, n_k] = [{k.shape[0]}, {n_k}] (a key mask, broadcast over heads "
            f"and queries), got {tuple(mask.shape)}"
        )
    return mask.to(k.device)


def _score_mask(mask: torch.Tensor | None, rank: int) -> torch.Tensor | None:
    """``[B, n_k]`` → ``[B, 1, ..., 1, n_k]`` broadcasting against scores ``[B, H.., n_q, n_k]`` of ``rank``."""
    if mask is None or mask.dim() == 1:
        return mask
    return mask.reshape(mask.shape[0], *([1] * (rank - 2)), mask.shape[-1])


def _feature_mask(mask: torch.Tensor | None, rank: int) -> torch.Tensor | None:
    """``[B, n_k]`` → ``[B, 1, ..., 1, n_k, 1]`` broadcasting against key features ``[B, H.., n_k, D]``."""
    if mask is None:
        return None
    if mask.dim() == 1:
        return mask[:, None]
    return mask.reshape(mask.shape[0], *([1] * (rank - 3)), mask.shape[-1], 1)


def _allowed(mask, causal, n_q, n_k, rank, device) -> torch.Tensor | None:
    """Boolean ``[.., n_q, n_k]`` of the (query, key) pairs that may interact, or None for all."""
    allowed = _score_mask(mask, rank)
    if causal:
        tril = torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril()
        allowed = tril if allowed is None else allowed & tril
    return allowed


def _keyless(mask: torch.Tensor | None, causal: bool, rank: int) -> torch.Tensor | None:
    """The queries with no key to attend to (every key masked; causal: every key j ≤ i masked, as for the first
    positions of a left-padded batch), broadcasting against denominators ``[B, H.., n_q]`` (the last dimension 1
    when not causal), or None when every query has a key."""
    if mask is None:  # causal without a mask: query i sees key i
        return None
    empty = mask.cumsum(-1) == 0 if causal else ~mask.any(-1, keepdim=True)
    if not bool(empty.any()):
        return None
    return empty if empty.dim() == 1 else empty.reshape(empty.shape[0], *([1] * (rank - 3)), empty.shape[-1])


def _rows(empty: torch.Tensor | None, sl: slice) -> torch.Tensor | None:
    """The keyless flags of the queries in ``sl`` (the flag itself when it is one per batch entry)."""
    return None if empty is None else (empty if empty.shape[-1] == 1 else empty[..., sl])


class AttentionNotFinite(ValueError):
    """An attention whose value does not exist in floating point at some query (a non-finite score, weight, output,
    or a denominator of 0): the inputs, not the arguments, are the cause."""


def _raise_at(bad: torch.Tensor, what: str, values: torch.Tensor | None = None, offset: int = 0) -> None:
    """Raise :class:`AttentionNotFinite` naming the first query index where ``bad`` (``[..., n_q]``) holds (``bad``
    may be a chunk of the queries starting at ``offset``)."""
    if not bool(bad.any()):
        return
    idx = tuple(int(i) for i in bad.nonzero()[0])
    lead = f" (leading index {idx[:-1]})" if len(idx) > 1 else ""
    val = "" if values is None else f" = {float(values[idx].detach()):.6g}"
    raise AttentionNotFinite(f"{what} at query i = {idx[-1] + offset}{lead}{val}")


# ---------------------------------------------------------------------------------------------------
# Exact attention
# ---------------------------------------------------------------------------------------------------


def finite_scores(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """scale·QKᵀ (scale = 1/√d by default) for checked q, k of one dtype: in their dtype, or in float64 when
    that overflows (float32 beyond 3.4e38); beyond float64's range a ValueError names q, k and scale."""
    if q.dtype != k.dtype:
        raise ValueError(f"q and k must share a dtype, got {q.dtype} and {k.dtype}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else check_real(scale, "scale")
    scores = (q @ k.transpose(-1, -2)) * scale
    if not bool(torch.isfinite(scores).all()):
        scores = (q.double() @ k.double().transpose(-1, -2)) * scale
        if not bool(torch.isfinite(scores).all()):
            raise AttentionNotFinite(
                "the scores scale·q_iᵀk_j overflow float64 (|score| must stay <= 1.8e308): reduce q and k "
                f"(largest entries {float(q.detach().abs().max()):.4g} and "
                f"{float(k.detach().abs().max()):.4g}) or scale (= {scale:.4g})"
            )
    return scores


def softmax_attention(q, k, v, causal: bool = False, mask=None, scale: float | None = None) -> torch.Tensor:
    """out_i = Σ_j softmax_j(scale·q_iᵀk_j) v_j over the kept (and, if causal, earlier) keys; scale = 1/√d.

    ``mask`` is a boolean key mask ``[batch, n_k]`` (True = keep). A query with no kept key (every key masked; in
    causal mode every key up to it, as at the first positions of a left-padded batch) has output 0, as in every
    attention of this module (never a NaN). ``n_q = 0`` gives an empty ``[..., 0, d_v]`` output; ``n_k = 0`` raises.

    The softmax subtracts each row's max score (exact: a constant per row cancels), so finite scores never
    overflow. Scores that overflow the dtype itself (float32 beyond 3.4e38, e.g. norms ~1e20) are recomputed
    in float64 and the output cast back; scores beyond float64's range raise ValueError naming q, k and scale.
    """
    _check_qkv(q, k, v, causal)
    mask = _check_mask(mask, k)
    scores = finite_scores(q, k, scale)
    allowed = _allowed(mask, causal, q.shape[-2], k.shape[-2], scores.dim(), q.device)
    keyless = _keyless(mask, causal, q.dim())
    if keyless is not None:
        keyless = keyless.unsqueeze(-1)
        allowed = allowed | keyless  # a keyless row stays finite; its output is zeroed below
    if allowed is not None:
        scores = scores.masked_fill(~allowed, -math.inf)
    out = (torch.softmax(scores, dim=-1) @ v.to(scores.dtype)).to(v.dtype)
    if keyless is not None:
        out = out.masked_fill(keyless, 0.0)
    _raise_at(~torch.isfinite(out).all(-1), "the output Σ_j softmax_j·v_j overflows the dtype of v")
    return out


def kernel_attention(
    q, k, v, kernel: Callable, causal: bool = False, mask=None, *, require_positive: bool = False
) -> torch.Tensor:
    """The quadratic reference out_i = Σ_j κ(q_i, k_j) v_j / Σ_j κ(q_i, k_j) for any Gram-matrix callable
    ``kernel(x, y) -> [..., n, n']`` (Katharopoulos et al. 2020, eq. (4)).

    Raises ValueError if a denominator of a query with a kept key is 0 or not finite, or, with
    ``require_positive=True``, if the kernel gives a negative weight to a kept key. A query with no kept key has
    output 0 (as in :func:`softmax_attention`).
    """
    _check_qkv(q, k, v, causal)
    mask = _check_mask(mask, k)
    if not callable(kernel):
        raise TypeError(
            f"kernel must be a callable kernel(x, y) -> [..., n, n'], got {type(kernel).__name__}"
        )
    gram = kernel(q, k)
    want = (*q.shape[:-1], k.shape[-2])
    if not isinstance(gram, torch.Tensor) or tuple(gram.shape) != want:
        got = tuple(gram.shape) if isinstance(gram, torch.Tensor) else type(gram).__name__
        raise ValueError(f"kernel(q, k) must return a tensor of shape {want}, got {got}")
    allowed = _allowed(mask, causal, q.shape[-2], k.shape[-2], gram.dim(), q.device)
    if allowed is not None:
        gram = torch.where(allowed, gram, torch.zeros((), dtype=gram.dtype, device=gram.device))
    _raise_at(~torch.isfinite(gram).all(-1), "kernel(q, k) returned a non-finite weight")
    if require_positive:
        _raise_at((gram < 0).any(-1), "kernel(q, k) returned a negative weight (require_positive=True)")
    den = gram.sum(-1)
    keyless = _keyless(mask, causal, q.dim())
    if keyless is not None:  # no kept key: numerator 0, denominator taken as 1
        den = torch.where(keyless, torch.ones((), dtype=den.dtype, device=den.device), den)
    _raise_at((den == 0) | ~torch.isfinite(den), "the denominator Σ_j κ(q_i, k_j) is 0 or not finite", den)
    out = (gram @ v) / den.unsqueeze(-1)
    _raise_at(~torch.isfinite(out).all(-1), "the output Σ_j κ(q_i, k_j) v_j / Σ_j κ(q_i, k_j) overflows (v too large)")
    return out


# ---------------------------------------------------------------------------------------------------
# Feature maps: resolution, binding, legal stabilisers
# ---------------------------------------------------------------------------------------------------


def per_query_max(log_phi_q: torch.Tensor, log_phi_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Legal: log φ(q_i) − max_f log φ(q_i)_f (a constant per query cancels in row i). Keys unchanged."""
    return log_phi_q - _finite_or_zero(log_phi_q.detach().amax(-1, keepdim=True)), log_phi_k


def shared_key_max(log_phi_q: torch.Tensor, log_phi_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Legal: log φ(k_j) − max_{j', f} log φ(k_{j'})_f, one constant shared by every key of a sequence
    (per batch/head entry), which cancels in every row. Queries unchanged."""
    return log_phi_q, log_phi_k - _finite_or_zero(log_phi_k.detach().amax((-2, -1), keepdim=True))


def per_feature_balance(
    log_phi_q: torch.Tensor, log_phi_k: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Legal: move each feature's key maximum M_f = max_j log φ(k_j)_f from the keys to the queries,
    log φ(k_j)_f − M_f and log φ(q_i)_f + M_f. Every product φ(q_i)_f φ(k_j)_f, hence the kernel itself,
    is unchanged (a diagonal Λ with ΦΛ·Λ⁻¹Ψᵀ = ΦΨᵀ)."""
    m = _finite_or_zero(log_phi_k.detach().amax(-2, keepdim=True))
    return log_phi_q + m, log_phi_k - m


def default_stabiliser(log_phi_q: torch.Tensor, log_phi_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``stabilise=True`` does (unmasked, non-causal): :func:`per_feature_balance`, then
    :func:`per_query_max`. Every key feature is then ≤ 1 with max_j = 1 in each column, every query feature
    ≤ 1 with max_f = 1, so each non-causal denominator lies in [1, n_k·D] (for positive maps): it can
    neither overflow nor underflow, whatever the scale of log φ."""
    return per_query_max(*per_feature_balance(log_phi_q, log_phi_k))


def _finite_or_zero(c: torch.Tensor) -> torch.Tensor:
    """A stabilising constant; −∞ (every feature 0 or masked) becomes 0, which changes nothing."""
    return torch.nan_to_num(c, nan=0.0, posinf=0.0, neginf=0.0)  # one op: every non-finite entry becomes 0


@dataclass
class _Resolved:
    query: Callable
    key: Callable
    log_query: Callable | None
    log_key: Callable | None
    positive: bool = False  # every feature > 0 (the component's claim): its sign is never formed or applied
    owned: bool = False  # the log features are fresh tensors of this call (a registered component's), so they
    # may be updated in place; a user's log_query/log_key may return tensors it keeps, which are never written


def _direct(fm: FeatureMap, x: torch.Tensor) -> _Resolved:
    """A bound FeatureMap's sides as calls of its component on chunks of already validated q, k (W moved to
    their dtype and device once, no per-chunk re-validation)."""
    if fm.dim != x.shape[-1]:
        raise ValueError(
            f"the feature map expects inputs of dimension d = {fm.dim}, got q, k with d = {x.shape[-1]}"
        )
    comp = fm.component
    w = None if fm.w is None else fm.w.to(device=x.device, dtype=x.dtype)
    extra = {name: t.to(device=x.device, dtype=x.dtype) for name, t in fm.extra.items()}
    stats = fm.stats or {}
    has_logs = type(comp).log_features is not Component.log_features
    return _Resolved(
        lambda y: comp.features(y, w, extra, stats, "query"),
        lambda y: comp.features(y, w, extra, stats, "key"),
        (lambda y: comp.log_features(y, w, extra, stats, "query")) if has_logs else None,
        (lambda y: comp.log_features(y, w, extra, stats, "key")) if has_logs else None,
        positive=bool(comp.positive),
        owned=True,
    )


def _bind_masked(fm: FeatureMap, q, k, mask, causal) -> FeatureMap:
    """Bind a data-dependent map to the kept keys (and, when causal, the queries at kept positions)."""
    if mask is None or bool(mask.all()):
        return fm.bind(q, k)
    if mask.dim() == 1:
        qs, ks, ms = [q], [k], [mask]
    else:
        qs, ks, ms = list(q), list(k), list(mask)
    stats = []
    for b, (qb, kb, mb) in enumerate(zip(qs, ks, ms, strict=True)):
        if not bool(mb.any()):
            raise ValueError(f"mask removes every key of batch element {b}: nothing to attend to")
        stats.append(fm.component.statistics(qb[..., mb, :] if causal else qb, kb[..., mb, :]))
    if mask.dim() == 1:
        merged = stats[0]
    else:
        merged = {name: torch.stack([s[name] for s in stats]) for name in stats[0]}
    return FeatureMap(fm.component, fm.w, fm.extra, dim=fm.dim, num_features=fm.num_features, stats=merged)


def _resolve(feature_map, q, k, mask, causal) -> _Resolved:
    if isinstance(feature_map, FeatureMap):
        fm = _bind_masked(feature_map, q, k, mask, causal) if feature_map.needs_binding else feature_map
        return _direct(fm, q)
    if hasattr(feature_map, "query") and hasattr(feature_map, "key"):  # a FeatureMap-like object
        if getattr(feature_map, "needs_binding", False):
            feature_map = feature_map.bind(q, k)
        lq, lk = getattr(feature_map, "log_query", None), getattr(feature_map, "log_key", None)
        logs = callable(lq) and callable(lk)
        return _Resolved(feature_map.query, feature_map.key, lq if logs else None, lk if logs else None)
    if callable(feature_map):
        return _Resolved(feature_map, feature_map, None, None)
    raise TypeError(
        f"feature_map must be a callable on [..., n, d] or a FeatureMap, got {type(feature_map).__name__}"
    )


def _check_features(phi: torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(phi, torch.Tensor) or phi.dim() < 2 or phi.shape[-2] != x.shape[-2]:
        got = tuple(phi.shape) if isinstance(phi, torch.Tensor) else type(phi).__name__
        raise ValueError(
            f"the feature map must map {name} [..., {x.shape[-2]}, d] to [..., {x.shape[-2]}, D], got {got}"
        )
    return phi


def _logs(res: _Resolved, q, k):
    """(log|φ(q)|, sign, φ(q) or None), the same for k: from the map's log features when it has them (then
    φ is never formed unstabilised), else from φ itself (then the constants scale φ directly)."""
    if res.log_query is not None:
        (lq, sq), (lk, sk) = res.log_query(q), res.log_key(k)
        if res.positive:
            sq = sk = None
        return (lq, sq, None), (lk, sk, None)
    pq = _check_features(res.query(q), q, "q")
    pk = _check_features(res.key(k), k, "k")
    return (torch.log(pq.abs()), torch.sign(pq), pq), (torch.log(pk.abs()), torch.sign(pk), pk)


def _mask_logs(log_k: torch.Tensor, fmask: torch.Tensor | None) -> torch.Tensor:
    if fmask is None:
        return log_k
    return torch.where(fmask, log_k, torch.full((), -math.inf, dtype=log_k.dtype, device=log_k.device))


def _zero_masked(phi_k: torch.Tensor, fmask: torch.Tensor | None) -> torch.Tensor:
    if fmask is None:
        return phi_k
    return torch.where(fmask, phi_k, torch.zeros((), dtype=phi_k.dtype, device=phi_k.device))


def _scaled(side, shift: torch.Tensor) -> torch.Tensor:
    """sign·exp(log|φ| + shift) from log features, or φ·exp(shift) for maps without them."""
    log_abs, sign, raw = side
    if raw is not None:
        return raw * torch.exp(shift)
    return torch.exp(log_abs + shift) if sign is None else sign * torch.exp(log_abs + shift)


def _legal_shifts(lq: torch.Tensor, lk_masked: torch.Tensor):
    """(query shift, key shift) of the default stabiliser from detached logs (masked keys at −∞)."""
    m = _finite_or_zero(lk_masked.detach().amax(-2, keepdim=True))  # [..., 1, D]: per-feature key max
    c = _finite_or_zero((lq.detach() + m).amax(-1, keepdim=True))  # [..., n, 1]: per-query max
    return m - c, -m


def _features(res: _Resolved, q, k, mask, stabilise):
    """The features of all of q and k at once, as ``("phi", φ_q, φ_k)`` (masked keys' features 0), for
    :func:`stabilised_features`, :func:`attention_matrix` and callable stabilisers (which see every log)."""
    fmask = _feature_mask(mask, k.dim())
    if stabilise is False:
        pq = _check_features(res.query(q), q, "q")
        pk = _check_features(res.key(k), k, "k")
        return "phi", pq, _zero_masked(pk, fmask)
    q_side, k_side = _logs(res, q, k)
    _check_features(q_side[0], q, "q")
    _check_features(k_side[0], k, "k")
    if callable(stabilise):  # a user's (or a planted) stabiliser acting on the raw logs
        lq2, lk2 = stabilise(q_side[0], k_side[0])
        return (
            "phi",
            _scaled((lq2, q_side[1], None), 0.0),
            _zero_masked(_scaled((lk2, k_side[1], None), 0.0), fmask),
        )
    if stabilise is not True:
        raise TypeError(f"stabilise must be a bool or a callable stabiliser, got {type(stabilise).__name__}")
    shift_q, shift_k = _legal_shifts(q_side[0], _mask_logs(k_side[0], fmask))
    return "phi", _scaled(q_side, shift_q), _zero_masked(_scaled(k_side, shift_k), fmask)


def stabilised_features(
    feature_map, q: torch.Tensor, k: torch.Tensor, mask=None, *, stabiliser: bool | Stabiliser = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """(φ(q)Λ·c_q, φ(k)Λ⁻¹): the features non-causal linear attention uses, masked keys' features set to 0.

    ``stabiliser=True``: the default legal stabiliser (:func:`default_stabiliser`): Λ = diag(exp(M_f)) with
    M_f = max over the *kept* keys j of log φ(k_j)_f, then c_q = exp(−max_f log(φ(q_i)Λ)_f) per query;
    ``False``: the raw features; a callable ``(log φ_q, log φ_k) -> (log φ_q', log φ_k')``: that stabiliser,
    applied to the raw logs (e.g. :func:`per_query_max`, :func:`shared_key_max`). A data-dependent map is
    bound to (q, kept k) first.
    """
    check_points(q, "q")
    check_points(k, "k", dim=q.shape[-1])
    _check_keys(k)
    mask = _check_mask(mask, k)
    res = _resolve(feature_map, q, k, mask, False)
    _, phi_q, phi_k = _features(res, q, k, mask, stabiliser)
    return phi_q, phi_k


# ---------------------------------------------------------------------------------------------------
# Linear attention
# ---------------------------------------------------------------------------------------------------


def _noncausal(phi_q, phi_k, v):
    """(numerator [.., n, d_v], denominator [.., n]) of eq. (6): φ(q_i)ᵀ(Σ_j φ(k_j)v_jᵀ), φ(q_i)ᵀΣ_j φ(k_j)."""
    kv = phi_k.transpose(-1, -2) @ v
    z = phi_k.sum(-2)
    return phi_q @ kv, (phi_q @ z.unsqueeze(-1)).squeeze(-1)


class _Chunks:
    """The features of slices of (q, k) for one call, computed chunk by chunk (never for all n at once).

    ``stable``: the default legal stabiliser, from log features (the map's, or log|φ| and sign φ for maps
    without them): keys scaled by Λ⁻¹ = diag(exp(−M_f)), M the running max of the kept keys' log features,
    each query by Λ and its own exp(−c_i). Otherwise the features are φ itself (``stabilise=False``) or slices
    of features given in full (a callable stabiliser, which sees every log at once). Masked keys' features are 0.
    """

    def __init__(self, res: _Resolved, q, k, fmask, stabilise, given=None):
        self.res, self.q, self.k, self.fmask = res, q, k, fmask
        self.stable = stabilise is True and given is None
        self.given = given
        self.dim_q = self.dim_k = None

    def _side(self, x, side: str, name: str):
        """(log|φ(x)|, sign φ(x) or None when known positive) for one chunk."""
        res = self.res
        if res.log_query is not None:
            la, sg = (res.log_query if side == "query" else res.log_key)(x)
            return self._dims(_check_features(la, x, name), name), (None if res.positive else sg)
        phi = self._dims(_check_features((res.query if side == "query" else res.key)(x), x, name), name)
        return torch.log(phi.abs()), torch.sign(phi)

    def _dims(self, phi: torch.Tensor, side: str) -> torch.Tensor:
        """Record D of one side and refuse a mismatch (broadcasting would hide it)."""
        if side == "q":
            self.dim_q = phi.shape[-1]
        else:
            self.dim_k = phi.shape[-1]
        if self.dim_q is not None and self.dim_k is not None and self.dim_q != self.dim_k:
            raise ValueError(
                f"query and key features must have the same dimension D, got D_q = {self.dim_q} (φ(q)) "
                f"and D_k = {self.dim_k} (φ(k))"
            )
        return phi

    def keys(self, sl: slice, m: torch.Tensor | None):
        """(φ(k_j)Λ⁻¹ for j in ``sl`` [.., L, D], the running max M after these keys [.., 1, D] or None)."""
        fm_c = None if self.fmask is None else self.fmask[..., sl, :]
        if self.given is not None:
            return self._dims(self.given[1][..., sl, :], "k"), None
        if not self.stable:
            phi = _check_features(self.res.key(self.k[..., sl, :]), self.k[..., sl, :], "k")
            return self._dims(_zero_masked(phi, fm_c), "k"), None
        la, sg = self._side(self.k[..., sl, :], "key", "k")
        la = _mask_logs(la, fm_c)
        cm = la.detach().amax(-2, keepdim=True)
        m = cm if m is None else torch.maximum(m, cm)
        mf = _finite_or_zero(m)
        fk = (la.sub_(mf) if self.res.owned else la - mf).exp_()  # masked keys: exp(−∞) = 0
        return (fk if sg is None else fk * sg), m

    def queries(self, sl: slice, m: torch.Tensor | None) -> torch.Tensor:
        """φ(q_i)Λ·c_i for i in ``sl``, c_i = exp(−max_f log(φ(q_i)Λ)_f) (one constant per query: legal)."""
        if self.given is not None:
            return self._dims(self.given[0][..., sl, :], "q")
        if not self.stable:
            return self._dims(
                _check_features(self.res.query(self.q[..., sl, :]), self.q[..., sl, :], "q"), "q"
            )
        la, sg = self._side(self.q[..., sl, :], "query", "q")
        if m is not None:
            t = la.add_(_finite_or_zero(m)) if self.res.owned else la + _finite_or_zero(m)
        else:
            t = la if self.res.owned else la.clone()
        c = _finite_or_zero(t.detach().amax(-1, keepdim=True))
        fq = t.sub_(c).exp_()
        return fq if sg is None else fq * sg


def _rescale(state: torch.Tensor | None, m_old: torch.Tensor | None, m_new: torch.Tensor | None):
    """The state [.., D, d_v + 1] accumulated under Λ_old⁻¹, re-expressed under Λ_new⁻¹: rows × exp(M_old − M_new)
    (a feature whose old max is −∞ has only zero rows)."""
    if state is None or m_old is None or m_new is m_old:
        return state
    # M_old = −∞ (a feature no key has reached) gives exp(−∞) = 0, or exp(NaN) when M_new = −∞ too: 0 either way
    factor = torch.exp(m_old - m_new).nan_to_num_(0.0)
    return state * factor.transpose(-1, -2)


def _with_ones(v: torch.Tensor) -> torch.Tensor:
    """[v | 1]: one product then gives Σ_j φ(k_j)v_jᵀ and Σ_j φ(k_j) together (numerator and denominator)."""
    return torch.cat([v, v.new_ones(()).expand(*v.shape[:-1], 1)], dim=-1)


def _noncausal_chunked(src: _Chunks, v: torch.Tensor, chunk: int):
    """Eq. (6) by chunks: one pass over key chunks accumulating the state [S | z] = Σ_j φ(k_j)Λ⁻¹[v_j | 1]
    (rescaled when the running max M grows), then, per query chunk, yields (its slice, φ(q_i)Λc_i [S | z]: the
    numerators and the denominator as a last column). Peak memory O(L·D + D·d_v) besides inputs and outputs."""
    state, m = None, None
    for a in range(0, src.k.shape[-2], chunk):
        sl = slice(a, a + chunk)
        fk, m_new = src.keys(sl, m)
        state = _rescale(state, m, m_new)
        m = m_new
        part = fk.transpose(-1, -2) @ _with_ones(v[..., sl, :])
        state = part if state is None else state + part
    for a in range(0, src.q.shape[-2], chunk):
        sl = slice(a, a + chunk)
        fq = src.queries(sl, m)
        if state is None:  # no keys
            state = fq.new_zeros(*fq.shape[:-2], fq.shape[-1], v.shape[-1] + 1)
        yield sl, fq @ state


def _causal(src: _Chunks, v: torch.Tensor, chunk: int, empty: torch.Tensor | None = None):
    """Chunked prefix sums: the state [S | z] = Σ_{j<start} φ(k_j)[v_j | 1] of earlier chunks plus the
    lower-triangular L×L block of the current one; features computed per chunk, O(L² + L·D + D·d_v) memory.

    With the default stabiliser the per-feature key maxima M_f are running maxima over the keys seen so far
    (the state's rows rescaled by exp(M_old − M_new) when they grow) and each query of the chunk takes its
    max with the current M: row i sees keys j ≤ i all with the same Λ, and its own constant (legal). A later
    key of the same chunk can still raise M_f far above every key j ≤ i; if a denominator of the chunk then
    underflows (below tiny/ε) the chunk is halved and redone, down to one position, where Λ comes from keys
    j ≤ i only and a positive map's denominator is ≥ 1. Queries with no key (``empty``, :func:`_keyless`) have a
    zero denominator by construction and are left out of that test. Yields (the chunk's slice, [numerators |
    denominator]).
    """
    n = v.shape[-2]
    small = torch.finfo(v.dtype).tiny / torch.finfo(v.dtype).eps

    def step(sl, state, m):
        fk, m_new = src.keys(sl, m)
        state = _rescale(state, m, m_new)
        fq = src.queries(sl, m_new)
        v_aug = _with_ones(v[..., sl, :])
        block = (fq @ fk.transpose(-1, -2)).tril_()
        out = block @ v_aug
        if state is not None:
            out = out + fq @ state
        part = fk.transpose(-1, -2) @ v_aug
        return out, (part if state is None else state + part), m_new

    state, m, start = None, None, 0
    while start < n:
        length = min(chunk, n - start)
        while True:
            out, state_new, m_new = step(slice(start, start + length), state, m)
            # the smallest |denominator| ≥ small (a NaN fails the comparison): one reduction
            den = out[..., -1].detach()
            keyless = _rows(empty, slice(start, start + length))
            if keyless is not None:
                den = torch.where(keyless, 1.0, den)
            if not src.stable or length == 1 or not den.numel() or bool(den.abs().amin() >= small):
                break
            length = (length + 1) // 2
        yield slice(start, start + length), out
        state, m = state_new, m_new
        start += length


def _finish(num, den, eps, check_denominator, offset: int = 0, keyless: torch.Tensor | None = None):
    """num / (den + eps) for queries offset, offset + 1, ..., checked when ``check_denominator``; a query with no
    key to attend to (``keyless``) has output 0."""
    den = den + eps if eps else den
    if keyless is not None:
        den = torch.where(keyless, 1.0, den)
        num = num.masked_fill(keyless.unsqueeze(-1), 0.0)
    if check_denominator and den.numel() and not (all_finite(den) and bool(den.detach().abs().amin() > 0)):
        _raise_at(
            (den == 0) | ~torch.isfinite(den),
            "the denominator φ(q_i)ᵀΣ_j φ(k_j) is 0 or not finite (features that overflowed without "
            "stabilise=True, or a non-positive map's denominator vanishing: MATH.md §5)",
            den,
            offset,
        )
    out = num / den.unsqueeze(-1)
    if check_denominator and not all_finite(out):
        _raise_at(~torch.isfinite(out).all(-1), "the output is not finite", offset=offset)
    return out


def _assemble(chunks, n_q: int, v: torch.Tensor, eps, check_denominator, empty=None) -> torch.Tensor:
    """Normalise each yielded (slice, [num | den]) chunk and write it into one ``[.., n_q, d_v]`` output (no
    list of chunks and no concatenation: the output is the only n-sized tensor; gradients flow through the
    slice writes)."""
    out = None
    for sl, aug in chunks:
        part = _finish(aug[..., :-1], aug[..., -1], eps, check_denominator, sl.start, _rows(empty, sl))
        if out is None:
            out = part.new_empty(*part.shape[:-2], n_q, part.shape[-1])
        out[..., sl, :] = part
    return v.new_zeros(*v.shape[:-2], 0, v.shape[-1]) if out is None else out


def linear_attention(
    q,
    k,
    v,
    feature_map,
    causal: bool = False,
    mask=None,
    *,
    stabilise: bool | Stabiliser = True,
    chunk_size: int | None = None,
    eps: float = 0.0,
    check_denominator: bool = True,
) -> torch.Tensor:
    """Linear attention out_i = φ(q_i)ᵀ(Σ_j φ(k_j)v_jᵀ) / (φ(q_i)ᵀΣ_j φ(k_j) + eps) (Katharopoulos et al.
    2020, eq. (6)); prefix sums over j ≤ i when ``causal``. Both modes work by chunks of
    ``chunk_size`` positions; the default is :func:`default_chunk_size` (128 on the CPU, larger on a GPU).

    ``feature_map``: a callable on ``[..., n, d]`` (used for both sides) or a :class:`FeatureMap` (its
    ``.query``/``.key``; bound to the sequences first when data-dependent; its ``log_query``/``log_key`` give
    the legal stabilisers when ``stabilise=True``). ``stabilise`` may also be a callable
    ``(log φ_q, log φ_k) -> (log φ_q', log φ_k')`` applied to the raw logs (for legality checks).
    ``mask``: boolean key mask ``[batch, n_k]``; masked keys' features are 0. ``eps`` ≥ 0 biases the output
    (default 0). ``check_denominator``: raise ValueError naming the query where the denominator is 0 or
    not finite, or the output is not finite. A query with no key to attend to (every key masked; in causal mode
    every key up to it, as at the first positions of a left-padded batch) has output 0, as in
    :func:`softmax_attention` and :func:`kernel_attention`, and is not checked.

    Note: a data-dependent map's parameters (OPRF's A*) are statistics of the whole sequence, so in causal
    mode out_i depends on later positions through them (not through the attention weights).
    """
    _check_qkv(q, k, v, causal)
    mask = _check_mask(mask, k)
    if chunk_size is None:
        chunk = default_chunk_size(q.device, causal)
    else:
        chunk = check_int(chunk_size, "chunk_size", minimum=1)
    eps = check_real(eps, "eps", minimum=0.0)
    if not isinstance(check_denominator, bool):
        raise TypeError(f"check_denominator must be a bool, got {type(check_denominator).__name__}")
    res = _resolve(feature_map, q, k, mask, causal)
    if not (isinstance(stabilise, bool) or callable(stabilise)):
        raise TypeError(f"stabilise must be a bool or a callable stabiliser, got {type(stabilise).__name__}")
    given = None
    if callable(stabilise):  # a user's stabiliser sees every log at once: features in full, then sliced
        _, phi_q, phi_k = _features(res, q, k, mask, stabilise)
        given = (phi_q, phi_k)
    src = _Chunks(res, q, k, _feature_mask(mask, k.dim()), stabilise, given)
    empty = _keyless(mask, causal, q.dim())
    chunks = _causal(src, v, chunk, empty) if causal else _noncausal_chunked(src, v, chunk)
    return _assemble(chunks, q.shape[-2], v, eps, check_denominator, empty)


def attention_matrix(
    q, k, feature_map, causal: bool = False, mask=None, *, stabilise: bool | Stabiliser = True
) -> torch.Tensor:
    """The normalised ``[.., n_q, n_k]`` matrix diag(z)⁻¹Φ(Q)Φ(K)ᵀ of linear attention (quadratic; for
    analysis and tests). Its rank is at most D (proofs/rank_bound.md)."""
    check_points(q, "q")
    check_points(k, "k", dim=q.shape[-1])
    _check_keys(k)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal attention needs n_q = n_k, got {q.shape[-2]} and {k.shape[-2]}")
    mask = _check_mask(mask, k)
    res = _resolve(feature_map, q, k, mask, causal)
    _, phi_q, phi_k = _features(res, q, k, mask, stabilise)
    a = phi_q @ phi_k.transpose(-1, -2)
    if causal:
        a = a.tril()
    den = a.sum(-1)
    keyless = _keyless(mask, causal, q.dim())
    if keyless is not None:  # a query with no kept key: a zero row
        den = torch.where(keyless, 1.0, den)
    _raise_at((den == 0) | ~torch.isfinite(den), "the denominator φ(q_i)ᵀΣ_j φ(k_j) is 0 or not finite", den)
    return a / den.unsqueeze(-1)
