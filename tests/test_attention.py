"""Attention: linear attention equals exact-kernel attention with the same features (non-causal, causal,
masked, batched), exact prefix averages, padding invariance, legal and illegal stabilisers, chunking and
memory, gradients, softmax attention, and input validation.

No assertion here is statistical: each holds for every seed (``kt_generator`` fixes one per test; hypothesis
draws its own).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from torch import nn

import kerneltheory.estimators as E
from kerneltheory import kernels
from kerneltheory.attention import (
    attention_matrix,
    default_stabiliser,
    kernel_attention,
    linear_attention,
    per_feature_balance,
    per_query_max,
    shared_key_max,
    softmax_attention,
    stabilised_features,
)
from kerneltheory.features.base import FeatureMap
from kerneltheory.testing import strategies as kts
from kerneltheory.testing.attention_checks import per_key_max

F64 = torch.float64
B, H, N, D_IN = 2, 3, 9, 4
MAPS = ["positive/orthogonal", "positive/gaussian", "oprf/gaussian", "saderf/orthogonal", "elu", "hedgehog"]
SIGNED_MAPS = ["trig/gaussian", "relu/gaussian"]


def _qkv(g, *lead, n=N, d=D_IN, dv=5, std=0.5, dtype=F64):
    q = torch.randn(*lead, n, d, generator=g, dtype=dtype) * std
    k = torch.randn(*lead, n, d, generator=g, dtype=dtype) * std
    v = torch.randn(*lead, n, dv, generator=g, dtype=dtype)
    return q, k, v


def _gram(fm, q, k):
    """κ(x, y) = φ(x)ᵀφ(y) with the map bound to (q, k): the exact kernel of the same features."""
    bound = fm.bind(q, k)
    return lambda x, y: bound.query(x) @ bound.key(y).transpose(-1, -2)


def _draw(name, g, d=D_IN, m=8):
    return E.get(name, d, m).draw(g)


# ---------------------------------------------------------------------------------------------------
# Linear attention = exact-kernel attention with the same features
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", MAPS)
def test_linear_equals_kernel_attention(name, causal, kt_generator):
    q, k, v = _qkv(kt_generator, B, H)
    fm = _draw(name, kt_generator)
    ref = kernel_attention(q, k, v, _gram(fm, q, k), causal=causal)
    for chunk in (None, 2):
        out = linear_attention(q, k, v, fm, causal=causal, chunk_size=chunk)
        assert out.shape == (B, H, N, 5)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["trig/gaussian", "hyperbolic/gaussian", "positive/mixture"])
def test_linear_equals_kernel_attention_other_maps(name, kt_generator):
    q, k, v = _qkv(kt_generator, B, n=6, std=0.3)
    fm = _draw(name, kt_generator)
    for causal in (False, True):
        ref = kernel_attention(q, k, v, _gram(fm, q, k), causal=causal)
        torch.testing.assert_close(linear_attention(q, k, v, fm, causal=causal), ref, rtol=0, atol=1e-10)


def test_plain_callable_feature_map(kt_generator):
    q, k, v = _qkv(kt_generator, B, H)

    def phi(x):
        return torch.nn.functional.elu(x) + 1

    for causal in (False, True):
        ref = kernel_attention(q, k, v, lambda x, y: phi(x) @ phi(y).transpose(-1, -2), causal=causal)
        torch.testing.assert_close(linear_attention(q, k, v, phi, causal=causal), ref, rtol=0, atol=1e-12)


def test_per_head_draws_broadcast(kt_generator):
    """W with a head dimension [H, m, d] gives each head its own map."""
    q, k, v = _qkv(kt_generator, B, H)
    fm = E.get("positive/gaussian", D_IN, 8).draw(kt_generator, batch=H)
    out = linear_attention(q, k, v, fm)
    for h in range(H):
        one = FeatureMap(fm.component, fm.w[h], dim=D_IN, num_features=8)
        torch.testing.assert_close(
            out[:, h], linear_attention(q[:, h], k[:, h], v[:, h], one), rtol=0, atol=1e-12
        )


def test_causal_kernel_attention_is_lower_triangular_sum(kt_generator):
    q, k, v = _qkv(kt_generator, B)
    gram = torch.exp(q @ k.transpose(-1, -2))
    expect = torch.stack(
        [
            (gram[:, i, : i + 1, None] * v[:, : i + 1]).sum(1) / gram[:, i, : i + 1].sum(-1, keepdim=True)
            for i in range(N)
        ],
        dim=1,
    )
    out = kernel_attention(q, k, v, kernels.softmax, causal=True)
    torch.testing.assert_close(out, expect, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["elu", "positive/gaussian", "hedgehog"])
@pytest.mark.parametrize("chunk", [1, 3, 128])
def test_causal_prefix_average_exact(name, chunk, kt_generator):
    """q = k = 1: all weights equal, so with v_j = e₀·[j = 0] the causal output is 1/(i+1) on coordinate 0."""
    n = 20
    q = torch.ones(n, D_IN, dtype=F64)
    v = torch.zeros(n, 3, dtype=F64)
    v[0, 0] = 1.0
    out = linear_attention(q, q.clone(), v, _draw(name, kt_generator), causal=True, chunk_size=chunk)
    expect = torch.zeros(n, 3, dtype=F64)
    expect[:, 0] = 1.0 / torch.arange(1, n + 1, dtype=F64)
    torch.testing.assert_close(out, expect, rtol=0, atol=1e-12)


@settings(deadline=None, max_examples=25)
@given(q=kts.points(3, max_norm=3.0, min_rows=1, max_rows=7, dtype=F64), seed=kts.seeds())
def test_linear_equals_kernel_attention_hypothesis(q, seed):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(q.shape, generator=g, dtype=F64)
    v = torch.randn(q.shape[0], 2, generator=g, dtype=F64)
    fm = E.get("positive/gaussian", 3, 6).draw(g)
    for causal in (False, True):
        ref = kernel_attention(q, k, v, _gram(fm, q, k), causal=causal)
        out = linear_attention(q, k, v, fm, causal=causal, chunk_size=2)
        torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-10)


# ---------------------------------------------------------------------------------------------------
# Masks and padding
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MAPS)
def test_padding_invariance_noncausal(name, kt_generator):
    """Padded keys (mask False), wherever they sit and whatever they hold, change nothing."""
    q, k, v = _qkv(kt_generator, B, H)
    fm = _draw(name, kt_generator)
    ref = linear_attention(q, k, v, fm)
    pad_k = torch.randn(B, H, 4, D_IN, generator=kt_generator, dtype=F64) * 5
    pad_v = torch.randn(B, H, 4, 5, generator=kt_generator, dtype=F64) * 100
    k2 = torch.cat([k[..., :3, :], pad_k, k[..., 3:, :]], dim=-2)
    v2 = torch.cat([v[..., :3, :], pad_v, v[..., 3:, :]], dim=-2)
    mask = torch.ones(B, N + 4, dtype=torch.bool)
    mask[:, 3:7] = False
    out = linear_attention(q, k2, v2, fm, mask=mask)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        softmax_attention(q, k2, v2, mask=mask), softmax_attention(q, k, v), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("name", MAPS)
def test_padding_invariance_causal(name, kt_generator):
    q, k, v = _qkv(kt_generator, B, H)
    fm = _draw(name, kt_generator)
    ref = linear_attention(q, k, v, fm, causal=True, chunk_size=4)
    pq, pk, pv = _qkv(kt_generator, B, H, n=5, std=5.0)
    mask = torch.ones(B, N + 5, dtype=torch.bool)
    mask[:, N:] = False
    cat = lambda a, b: torch.cat([a, b], dim=-2)  # noqa: E731
    out = linear_attention(cat(q, pq), cat(k, pk), cat(v, pv), fm, causal=True, mask=mask, chunk_size=4)
    torch.testing.assert_close(out[..., :N, :], ref, rtol=0, atol=1e-12)


def test_mask_differs_per_batch_element(kt_generator):
    q, k, v = _qkv(kt_generator, B, H)
    fm = _draw("positive/gaussian", kt_generator)
    mask = torch.tensor([[True] * N, [True] * 4 + [False] * (N - 4)])
    out = linear_attention(q, k, v, fm, mask=mask)
    torch.testing.assert_close(out[0], linear_attention(q[0], k[0], v[0], fm), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        out[1], linear_attention(q[1], k[1, :, :4], v[1, :, :4], fm), rtol=0, atol=1e-12
    )
    ref = kernel_attention(q, k, v, _gram(fm, q, k), mask=mask)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_mask_broadcast_shapes(kt_generator):
    """[B, n] for [B, n, d] and [B, H, n, d]; [n] for unbatched inputs."""
    q, k, v = _qkv(kt_generator, B)
    mask = torch.rand(B, N, generator=kt_generator) > 0.3
    mask[:, 0] = True
    s = softmax_attention(q, k, v, mask=mask)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(D_IN)
    direct = torch.softmax(scores.masked_fill(~mask[:, None, :], -math.inf), -1) @ v
    torch.testing.assert_close(s, direct, rtol=0, atol=1e-12)
    s4 = softmax_attention(
        q[:, None].expand(B, H, N, D_IN),
        k[:, None].expand(B, H, N, D_IN),
        v[:, None].expand(B, H, N, 5),
        mask=mask,
    )
    torch.testing.assert_close(s4, direct[:, None].expand(B, H, N, 5), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        softmax_attention(q[0], k[0], v[0], mask=mask[0]), direct[0], rtol=0, atol=1e-12
    )


def test_a_query_with_no_kept_key_has_output_zero(kt_generator):
    """Every key masked, or (causal) every key up to the query: output 0 in all three attentions, never a NaN and
    never an error; the other batch entries are unchanged by it (tests/test_attention_chunked.py compares them)."""
    q, k, v = _qkv(kt_generator, B)
    fm = _draw("positive/gaussian", kt_generator)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[1] = False
    for fn in (softmax_attention, lambda *a, **kw: linear_attention(*a[:3], fm, **kw),
               lambda *a, **kw: kernel_attention(*a[:3], kernels.softmax, **kw)):
        out = fn(q, k, v, mask=mask)
        assert bool((out[1] == 0).all()) and bool(torch.isfinite(out).all())
        torch.testing.assert_close(out[0], fn(q[:1], k[:1], v[:1], mask=mask[:1])[0], rtol=0, atol=0)
    left = torch.ones(B, N, dtype=torch.bool)
    left[:, 0] = False  # left padding: causal row 0 has no key
    for out in (linear_attention(q, k, v, fm, causal=True, mask=left),
                softmax_attention(q, k, v, causal=True, mask=left)):
        assert bool((out[..., 0, :] == 0).all()) and bool(torch.isfinite(out).all())


def test_vanishing_denominator_of_a_signed_map_raises():
    """A non-positive map's denominator can vanish (MATH.md §5): named, not a silent inf/NaN."""
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64)
    k = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=F64)
    v = torch.randn(2, 3, dtype=F64, generator=torch.Generator().manual_seed(0))

    def phi(x):
        return x

    with pytest.raises(ValueError, match="query i = 0"):
        linear_attention(q, k, v, phi)
    out = linear_attention(q, k, v, phi, check_denominator=False)
    assert not bool(torch.isfinite(out).all())
    with pytest.raises(ValueError, match="query i = 0"):
        kernel_attention(q, k, v, lambda x, y: x @ y.T)
    with pytest.raises(ValueError, match="negative weight"):
        kernel_attention(q[:1], k, v, lambda x, y: x @ y.T + 0.5, require_positive=True)
    # eps (biased, opt-in) moves the denominator off zero
    assert bool(torch.isfinite(linear_attention(q[1:], k, v, phi, eps=1e-3, check_denominator=False)).all())


# ---------------------------------------------------------------------------------------------------
# Stabilisers
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", MAPS + SIGNED_MAPS)
def test_stabilised_equals_unstabilised(name, causal, kt_generator):
    q, k, v = _qkv(kt_generator, B, H, std=1.0)
    fm = _draw(name, kt_generator)
    raw = linear_attention(q, k, v, fm, causal=causal, stabilise=False, check_denominator=False)
    if name == "relu/gaussian":  # relu features can all be 0 for a query: compare where finite
        keep = torch.isfinite(raw).all(-1)
        assert bool(keep.any())
        out = linear_attention(q, k, v, fm, causal=causal, chunk_size=3, check_denominator=False)
        torch.testing.assert_close(out[keep], raw[keep], rtol=0, atol=1e-10)
        return
    assert bool(torch.isfinite(raw).all())
    out = linear_attention(q, k, v, fm, causal=causal, chunk_size=3)
    # within the rounding of the two evaluations (the first-order bound of attention_checks._bound, twice the sum:
    # proofs/stabiliser_legality.md), not a fixed 1e-10: trig features at std 1 have denominators near 0, where
    # rounding alone reached 3.2e-9 at some random seeds
    fq, fk = (f.detach() for f in fm.pair(q, k))
    out = out.detach()
    weights = fq.abs() @ fk.abs().transpose(-1, -2)
    z = fq @ fk.transpose(-1, -2)
    if causal:
        lower = torch.ones(N, N, dtype=torch.bool).tril()
        weights, z = weights * lower, z * lower
    eps = torch.finfo(F64).eps
    logs = fq.abs().log().nan_to_num(0.0, 0.0, 0.0).abs().amax() + fk.abs().log().nan_to_num(0.0, 0.0, 0.0).abs().amax()
    gamma = (N + fq.shape[-1] + 1) * eps / (1 - (N + fq.shape[-1] + 1) * eps) + 2 * eps * (float(logs) + 1)
    bound = sum(gamma * (weights @ v.abs() + a.abs() * weights.sum(-1, keepdim=True)) / z.sum(-1, keepdim=True).abs()
                + eps * a.abs() for a in (out, raw))
    assert bool(((out - raw).abs() <= 2 * bound).all()), float(((out - raw).abs() / bound).max())


def _unit_rows(g, *shape):
    x = torch.randn(*shape, generator=g, dtype=F64)
    return x / x.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("name,kw", [("trig/gaussian", {}), ("positive/gaussian", {"h": "gaussian"})])
@pytest.mark.parametrize("causal", [False, True])
def test_stabiliser_keeps_float32_finite_at_norm_10(name, kw, causal, kt_generator):
    """Norm-10 inputs in float32: trig weights exp(‖x‖²/2) = e⁵⁰ overflow in φ(q)ᵀφ(k); exp(ωᵀx − ‖x‖²)
    underflows. Unstabilised attention raises; the stabilised one is finite and matches float64."""
    q, k = _unit_rows(kt_generator, B, 16, 8) * 10, _unit_rows(kt_generator, B, 16, 8) * 10
    v = torch.randn(B, 16, 3, generator=kt_generator, dtype=F64)
    fm = E.get(name, 8, 64, **kw).draw(kt_generator)
    q32, k32, v32 = q.float(), k.float(), v.float()
    with pytest.raises(ValueError, match="not finite|is 0"):
        linear_attention(q32, k32, v32, fm, causal=causal, stabilise=False)
    out = linear_attention(q32, k32, v32, fm, causal=causal)
    assert out.dtype == torch.float32 and bool(torch.isfinite(out).all())
    if name.startswith("positive"):  # positive maps: no cancellation, so float32 keeps ~6 digits
        ref = linear_attention(q, k, v, fm, causal=causal)
        torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-4 * float(ref.abs().max()))


def test_textbook_stabilisers_can_underflow_where_balance_does_not():
    """log φ(q) = [60, −60], log φ(k) = [−60, 60]: the raw product is e⁰; per-query and shared-key maxima
    leave e^{−120} (0 in float32); the per-feature balance keeps it at 1."""

    class Fixed:
        def query(self, x):
            return torch.exp(self.log_query(x)[0])

        def key(self, x):
            return torch.exp(self.log_key(x)[0])

        def log_query(self, x):
            logs = torch.tensor([60.0, -60.0], dtype=x.dtype).expand(x.shape[0], 2)
            return logs, torch.ones_like(logs)

        def log_key(self, x):
            logs = torch.tensor([-60.0, 60.0], dtype=x.dtype).expand(x.shape[0], 2)
            return logs, torch.ones_like(logs)

    x = torch.zeros(3, 2)
    v = torch.arange(6.0).reshape(3, 2)
    textbook = lambda lq, lk: per_query_max(*shared_key_max(lq, lk))  # noqa: E731
    with pytest.raises(ValueError, match="is 0"):
        linear_attention(x, x, v, Fixed(), stabilise=textbook)
    out = linear_attention(x, x, v, Fixed())
    torch.testing.assert_close(out, v.mean(0).expand(3, 2), rtol=0, atol=1e-6)


def test_stabilised_features_are_bounded_and_legal(kt_generator):
    q, k, v = _qkv(kt_generator, B, H, std=2.0)
    fm = _draw("positive/gaussian", kt_generator)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[:, -2:] = False
    pq, pk = stabilised_features(fm, q, k, mask)
    torch.testing.assert_close(pq.amax(-1), torch.ones(B, H, N, dtype=F64))  # per-query max is 1
    torch.testing.assert_close(pk[..., :-2, :].amax(-2), torch.ones(B, H, 8, dtype=F64))  # per-feature max 1
    assert bool((pk[..., -2:, :] == 0).all())  # masked features are 0
    raw_q, raw_k = stabilised_features(fm, q, k, mask, stabiliser=False)
    # legality: every row of Φ(Q)Φ(K)ᵀ is rescaled by one positive constant
    ratio = (pq @ pk.transpose(-1, -2))[..., :-2] / (raw_q @ raw_k.transpose(-1, -2))[..., :-2]
    torch.testing.assert_close(ratio, ratio[..., :1].expand_as(ratio), rtol=1e-12, atol=0)
    for stab in (per_query_max, shared_key_max, per_feature_balance, default_stabiliser):
        out = linear_attention(q, k, v, fm, mask=mask, stabilise=stab)
        torch.testing.assert_close(out, linear_attention(q, k, v, fm, mask=mask), rtol=0, atol=1e-12)


def test_illegal_per_key_stabiliser_changes_attention_by_hand(kt_generator):
    """The planted defect: subtracting each key's own max reweights key j by exp(−max_f log φ(k_j)_f)."""
    q, k, v = _qkv(kt_generator, B, std=1.0)
    fm = _draw("positive/gaussian", kt_generator, m=16)
    lq, lk = fm.log_query(q)[0], fm.log_key(k)[0]
    phi_q = torch.exp(lq - lq.amax(-1, keepdim=True))  # legal
    phi_k = torch.exp(lk - lk.amax(-1, keepdim=True))  # ILLEGAL: one constant per key
    illegal = (phi_q @ (phi_k.transpose(-1, -2) @ v)) / (
        phi_q @ phi_k.sum(-2, keepdim=True).transpose(-1, -2)
    )
    correct = linear_attention(q, k, v, fm)
    exact_kernel = kernel_attention(q, k, v, _gram(fm, q, k))
    torch.testing.assert_close(correct, exact_kernel, rtol=0, atol=1e-12)
    assert float((illegal - correct).abs().max()) > 1e-2
    # the same defect through the stabilise= hook, and its explicit reweighting
    torch.testing.assert_close(
        linear_attention(q, k, v, fm, stabilise=per_key_max), illegal, rtol=0, atol=1e-12
    )
    w = torch.exp(-lk.amax(-1))  # [B, n]: the per-key weights the defect introduces
    reweighted = kernel_attention(q, k, v, lambda x, y: _gram(fm, q, k)(x, y) * w[:, None, :])
    torch.testing.assert_close(illegal, reweighted, rtol=0, atol=1e-12)


def test_key_only_constant_scale_is_legal(kt_generator):
    """φ(k) ↦ 1.05·φ(k) for every key cancels in the ratio: not a defect of attention."""
    q, k, v = _qkv(kt_generator, B, H)
    fm = _draw("positive/gaussian", kt_generator)
    scaled = SimpleNamespace(query=fm.query, key=lambda x: 1.05 * fm.key(x))
    torch.testing.assert_close(
        linear_attention(q, k, v, scaled), linear_attention(q, k, v, fm), rtol=0, atol=1e-12
    )


# ---------------------------------------------------------------------------------------------------
# Chunking, memory, causality of data-dependent maps
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["positive/orthogonal", "oprf/gaussian", "trig/gaussian"])
def test_chunk_size_invariance(name, kt_generator):
    q, k, v = _qkv(kt_generator, B, H, n=37)
    fm = _draw(name, kt_generator)
    ref = linear_attention(q, k, v, fm, causal=True, chunk_size=1)
    for chunk in (2, 5, 16, 37, 1000):
        out = linear_attention(q, k, v, fm, causal=True, chunk_size=chunk)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)


def test_causal_memory_is_chunked(kt_generator):
    """n = 4096, D = 64, d_v = 16: no single allocation reaches n·D·d_v (an n×D×d cumsum would be 32 MiB);
    the largest are the n×D feature matrices (2 MiB)."""
    from torch.profiler import ProfilerActivity, profile

    n, d, m, dv = 4096, 16, 64, 16
    q, k, v = _qkv(kt_generator, 1, n=n, d=d, dv=dv, std=0.3)
    fm = E.get("positive/gaussian", d, m).draw(kt_generator)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = linear_attention(q, k, v, fm, causal=True, chunk_size=128)
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert largest < n * m * dv * 8 / 4, f"an allocation of {largest} bytes"
    assert out.shape == (1, n, dv) and bool(torch.isfinite(out).all())
    # spot-check a few rows against the quadratic formula
    rows = torch.tensor([0, 127, 128, 2049, n - 1])
    weights = (fm.query(q[0, rows]) @ fm.key(k[0]).T).masked_fill(torch.arange(n) > rows[:, None], 0.0)
    ref = (weights @ v[0]) / weights.sum(-1, keepdim=True)
    torch.testing.assert_close(out[0, rows], ref, rtol=0, atol=1e-10)


def test_positive_causal_output_ignores_the_future(kt_generator):
    q, k, v = _qkv(kt_generator, 1)
    fm = _draw("positive/gaussian", kt_generator)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    q2[:, 5:], k2[:, 5:], v2[:, 5:] = 3.0, -3.0, 7.0
    a = linear_attention(q, k, v, fm, causal=True)[:, :5]
    b = linear_attention(q2, k2, v2, fm, causal=True)[:, :5]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_data_dependent_maps_see_the_future_through_their_statistics(kt_generator):
    """OPRF's A* is a statistic of the whole sequence, so causal out_i depends on later positions (a known
    property of FAVOR++-style maps, documented in linear_attention); the attention *target* does not."""
    q, k, v = _qkv(kt_generator, 1)
    fm = _draw("oprf/gaussian", kt_generator)
    q2, k2 = q.clone(), k.clone()
    q2[:, 5:], k2[:, 5:] = 3.0, -3.0
    a = linear_attention(q, k, v, fm, causal=True)[:, :5]
    b = linear_attention(q2, k2, v, fm, causal=True)[:, :5]
    assert float((a - b).abs().max()) > 1e-6


# ---------------------------------------------------------------------------------------------------
# Attention matrix
# ---------------------------------------------------------------------------------------------------


def test_attention_matrix_rows_rank_and_product(kt_generator):
    q, k, v = _qkv(kt_generator, B, H, n=12, d=2)
    fm = E.get("elu", 2, 2).draw(kt_generator)  # D = 2
    for causal in (False, True):
        a = attention_matrix(q, k, fm, causal=causal)
        torch.testing.assert_close(a.sum(-1), torch.ones(B, H, 12, dtype=F64), rtol=0, atol=1e-12)
        torch.testing.assert_close(a @ v, linear_attention(q, k, v, fm, causal=causal), rtol=0, atol=1e-12)
        if causal:
            assert bool((a.triu(1) == 0).all())
    a = attention_matrix(q, k, fm)
    assert int(torch.linalg.matrix_rank(a).max()) <= 2  # rank ≤ D (proofs/rank_bound.md)


# ---------------------------------------------------------------------------------------------------
# Softmax attention
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_attention_direct_and_as_kernel_attention(causal, kt_generator):
    q, k, v = _qkv(kt_generator, B, H, std=1.0)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[1, 4:6] = False
    out = softmax_attention(q, k, v, causal=causal, mask=mask)
    scores = q @ k.transpose(-1, -2) / math.sqrt(D_IN)
    allowed = mask[:, None, None, :].expand(B, H, N, N)
    if causal:
        allowed = allowed & torch.ones(N, N, dtype=torch.bool).tril()
    w = torch.exp(scores) * allowed
    direct = (w / w.sum(-1, keepdim=True)) @ v
    torch.testing.assert_close(out, direct, rtol=0, atol=1e-12)
    s = D_IN**-0.25
    via_kernel = kernel_attention(
        q * s, k * s, v, kernels.softmax, causal=causal, mask=mask, require_positive=True
    )
    torch.testing.assert_close(out, via_kernel, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        softmax_attention(q, k, v, scale=0.3), softmax_attention(q * 0.3, k, v, scale=1.0), rtol=0, atol=1e-12
    )


def test_softmax_attention_large_scores_finite():
    q = torch.full((1, 4, 2), 30.0)
    k = torch.full((1, 4, 2), 30.0)
    v = torch.arange(8.0).reshape(1, 4, 2)
    out = softmax_attention(q, k, v, scale=1.0)  # scores 1800: exp overflows, softmax does not
    torch.testing.assert_close(out, v.mean(1, keepdim=True).expand(1, 4, 2))


# ---------------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", ["positive/gaussian", "elu", "oprf/gaussian"])
def test_gradcheck_inputs(name, causal, kt_generator):
    q, k, v = (t.requires_grad_() for t in _qkv(kt_generator, 1, 2, n=4, d=3, dv=2))
    fm = _draw(name, kt_generator, d=3, m=4)
    fn = lambda q, k, v: linear_attention(q, k, v, fm, causal=causal, chunk_size=3)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (q, k, v))


class _Run(nn.Module):
    """Linear attention as a module of the feature map's learnable parts, for functional_call."""

    def __init__(self, part: nn.Module, build):
        super().__init__()
        self.part = part
        self.build = build

    def forward(self, q, k, v, causal):
        return linear_attention(q, k, v, self.build(), causal=causal)


@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck_mixture_law_parameters(causal, kt_generator):
    """positive/mixture (GMM-PRF): W = μ_q + L_q ε is reparameterised, so attention is differentiable in
    the means and the Cholesky factors (ε and the component choice fixed by a seed). The weights (logits)
    enter only through the discrete choice: they have no pathwise gradient (documented in spectral/mixture)."""
    d, m = 2, 4
    est = E.get("positive/mixture", d, m, components=2)
    law = est.law
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=kt_generator))

    def build():
        w = law.sample(m, torch.Generator().manual_seed(seed))  # ε and the component choice fixed
        return FeatureMap(est.component, w, dim=d, num_features=m)

    run = _Run(law, build)
    q, k, v = _qkv(kt_generator, 1, n=3, d=d, dv=2)
    names = ["part.means", "part.chol_lower", "part.chol_log_diag"]
    params = [getattr(law, n.split(".")[1]).detach().clone().requires_grad_() for n in names]

    def fn(*ps):
        return torch.func.functional_call(run, dict(zip(names, ps, strict=True)), (q, k, v, causal))

    assert torch.autograd.gradcheck(fn, tuple(params))


@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck_hedgehog_weight(causal, kt_generator):
    fm = E.get("hedgehog", 3, 1).draw(kt_generator)
    run = _Run(fm.component, lambda: fm)
    q, k, v = _qkv(kt_generator, 1, n=4, d=3, dv=2)
    w0 = torch.eye(3, dtype=F64) + 0.1 * torch.randn(3, 3, generator=kt_generator, dtype=F64)
    b0 = 0.1 * torch.randn(3, generator=kt_generator, dtype=F64)

    def fn(w, b):
        return torch.func.functional_call(run, {"part.weight": w, "part.bias": b}, (q, k, v, causal))

    assert torch.autograd.gradcheck(fn, (w0.requires_grad_(), b0.requires_grad_()))


# ---------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------


def test_bad_inputs_raise(kt_generator):
    q, k, v = _qkv(kt_generator, B)
    fm = _draw("positive/gaussian", kt_generator)
    bad_q = q.clone()
    bad_q[0, 0, 0] = math.nan
    inf_k = k.clone()
    inf_k[1, 2, 0] = math.inf
    cases = [
        (lambda: linear_attention(bad_q, k, v, fm), ValueError, "q contains NaN"),
        (lambda: softmax_attention(q, inf_k, v), ValueError, "k contains NaN or infinite"),
        (lambda: linear_attention(q, k[..., :3], v, fm), ValueError, "k must have last dimension"),
        (lambda: softmax_attention(q, k, v[:, :-1]), ValueError, "v must have one row per key"),
        (lambda: softmax_attention(q, k[:1], v[:1]), ValueError, "leading"),
        (lambda: softmax_attention(q, k.float(), v), ValueError, "dtype"),
        (lambda: linear_attention(q[:, :-1], k, v, fm, causal=True), ValueError, "causal"),
        (lambda: linear_attention(q, k, v, fm, mask=torch.ones(B, N)), ValueError, "mask must have dtype"),
        (
            lambda: linear_attention(q, k, v, fm, mask=torch.ones(B, N + 1, dtype=torch.bool)),
            ValueError,
            "mask must have shape",
        ),
        (lambda: softmax_attention(q, k, v, mask=[True] * N), TypeError, "mask"),
        (lambda: linear_attention(q, k, v, fm, chunk_size=0), ValueError, "chunk_size"),
        (lambda: linear_attention(q, k, v, fm, eps=-1e-3), ValueError, "eps"),
        (lambda: linear_attention(q, k, v, 3), TypeError, "feature_map"),
        (lambda: linear_attention(q, k, v, fm, stabilise="yes"), TypeError, "stabilise"),
        (lambda: linear_attention(q, k, v, fm, causal=1), TypeError, "causal"),
        (lambda: softmax_attention(q, k, v, scale=math.inf), ValueError, "scale"),
        (
            lambda: kernel_attention(q, k, v, lambda x, y: x @ y.transpose(-1, -2)[..., :2]),
            ValueError,
            "shape",
        ),
        (lambda: kernel_attention(q, k, v, "softmax"), TypeError, "kernel"),
        (lambda: linear_attention(q, k, v, lambda x: x[..., :2, :]), ValueError, "feature map must map"),
        (lambda: linear_attention(q[0, 0], k, v, fm), ValueError, "at least 2|shape"),
        (lambda: softmax_attention(torch.zeros(N), k, v), ValueError, r"\[\.\.\., n, d\]"),
    ]
    for fn, exc, match in cases:
        with pytest.raises(exc, match=match):
            fn()
    with pytest.raises(ValueError, match="bind|data-dependent"):
        _draw("oprf/gaussian", kt_generator).query(q)  # the map alone needs binding; attention binds it
