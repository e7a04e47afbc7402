"""Chunked linear attention (kerneltheory.attention.linear_attention): features per chunk, float tolerance.

The float32 result is compared with a float64 oracle (the same features, kernel_attention in float64) under a
bound derived from rounding: with unit roundoff u = 2⁻²⁴,

* each feature is exp(a) for an argument a = ωᵀx + log h(x) − M_f − c_i computed with absolute error at most
  u·(d + 3)·A, where A bounds every |term| entering it (|ω_l x_l| summed, |log h|, |M|, |c|), so the feature
  has relative error at most e_φ = u·((d + 3)·A + 1) (exp adds one rounding);
* a sum of n nonnegative terms has relative error at most γ_n ≈ n·u (recursive summation; blocked GEMMs
  do better); the numerator's terms a_ij v_j are bounded by a_ij·max|v|;
* so |out − out₆₄| ≤ 2·(2 e_φ + (n + D)·u)·max|v| + u·max|v| (numerator and denominator, then one division).

The bound is loose by design (it is a worst case), so the test also checks that a defect moves the output past
it (the illegal per-key stabiliser), and that chunk size changes nothing beyond rounding.
"""

from __future__ import annotations

import pytest
import torch

import kerneltheory.estimators as E
from kerneltheory.attention import default_chunk_size, kernel_attention, linear_attention
from kerneltheory.testing.attention_checks import per_key_max

U32 = 2.0**-24


def _inputs(g, n, d=8, dv=5, heads=2, std=0.6):
    q, k = (torch.randn(1, heads, n, d, generator=g, dtype=torch.float64) * std for _ in range(2))
    v = torch.randn(1, heads, n, dv, generator=g, dtype=torch.float64)
    return q, k, v


def _bound(fm, q, k, v) -> float:
    """The rounding bound of the module docstring for FAVOR+ features (log h = −‖x‖²/2)."""
    w = fm.w.to(torch.float64)
    x = torch.cat([q, k], dim=-2)
    proj = (x.abs() @ w.abs().transpose(-1, -2)).max()  # Σ_l |ω_l x_l|
    logh = 0.5 * (x * x).sum(-1).max()
    a_max = float(proj + logh) * 3  # |M| and |c| are bounded by the same terms (maxima of such arguments)
    e_phi = U32 * ((q.shape[-1] + 3) * a_max + 1)
    n, dfeat = k.shape[-2], fm.w.shape[-2]
    vmax = float(v.abs().max())
    return 2 * (2 * e_phi + (n + dfeat) * U32) * vmax + U32 * vmax


def _oracle(fm, q, k, v, causal, mask=None):
    """float64 attention with the same features, through the quadratic kernel_attention."""
    return kernel_attention(
        q, k, v, lambda x, y: fm.query(x) @ fm.key(y).transpose(-1, -2), causal=causal, mask=mask
    )


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_float32_within_rounding_bound_of_float64_oracle(causal, masked, kt_generator):
    n = 300
    q, k, v = _inputs(kt_generator, n)
    fm = E.get("positive/orthogonal", dim=8, num_features=16).draw(kt_generator)
    mask = None
    if masked:
        mask = torch.rand(1, n, generator=kt_generator) < 0.7
        mask[:, 0] = True  # causal: the first query keeps its own key
    ref = _oracle(fm, q, k, v, causal, mask)
    tol = _bound(fm, q, k, v)
    for chunk in (None, 1, 7, 64, n):
        out = linear_attention(
            q.float(), k.float(), v.float(), fm, causal=causal, mask=mask, chunk_size=chunk
        )
        assert out.dtype == torch.float32
        err = float((out.double() - ref).abs().max())
        assert err <= tol, (chunk, err, tol)
        out64 = linear_attention(q, k, v, fm, causal=causal, mask=mask, chunk_size=chunk)
        assert float((out64 - ref).abs().max()) <= tol * 2.0**-29  # the same bound with u = 2^-53
    # Power: an illegal stabiliser (a constant per key) changes attention by far more than the bound.
    bad = linear_attention(
        q.float(), k.float(), v.float(), fm, causal=causal, mask=mask, stabilise=per_key_max
    )
    assert float((bad.double() - ref).abs().max()) > tol


def test_default_chunk_size_is_per_device():
    """128 positions on the CPU (cache-sized work), larger chunks off it (fewer launches and synchronisations)."""
    assert default_chunk_size(torch.device("cpu"), False) == default_chunk_size("cpu", True) == 128
    assert default_chunk_size(torch.device("cuda"), False) == 8192
    assert default_chunk_size(torch.device("cuda", 0), True) == 1024


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("causal", [False, True])
def test_cuda_default_chunks_within_rounding_bound_of_the_cpu_oracle(causal, kt_generator):
    """On CUDA, with the accelerator's default chunk (several chunks: n > 1024 causal), float32 output within
    the float32 rounding bound of the float64 CPU oracle."""
    n = 2500
    q, k, v = _inputs(kt_generator, n)
    seed = int(torch.randint(2**31, (), generator=kt_generator))
    fm = E.get("positive/orthogonal", dim=8, num_features=16).draw(torch.Generator().manual_seed(seed))
    on_gpu = E.get("positive/orthogonal", dim=8, num_features=16, device="cuda")
    fm_gpu = on_gpu.draw(torch.Generator().manual_seed(seed))  # the same W: drawn on the CPU, then moved
    ref = _oracle(fm, q, k, v, causal)
    out = linear_attention(q.float().cuda(), k.float().cuda(), v.float().cuda(), fm_gpu, causal=causal)
    assert out.device.type == "cuda" and out.dtype == torch.float32
    assert float((out.cpu().double() - ref).abs().max()) <= _bound(fm, q, k, v)


def test_features_are_computed_per_chunk(kt_generator):
    """No feature call sees more than chunk_size rows (peak memory O(L·D)), causal or not, for log-feature
    maps and plain callables alike."""
    n, chunk = 200, 32
    q, k, v = _inputs(kt_generator, n)
    fm = E.get("positive/gaussian", dim=8, num_features=16).draw(kt_generator)
    rows: list[int] = []

    class Spy:
        """fm's four sides, recording the rows of every call."""

        def __getattr__(self, name):
            if name not in ("query", "key", "log_query", "log_key"):
                raise AttributeError(name)
            side = getattr(fm, name)

            def call(x):
                rows.append(x.shape[-2])
                return side(x)

            return call

    for causal in (False, True):
        for stabilise in (True, False):
            rows.clear()
            out = linear_attention(q, k, v, Spy(), causal=causal, stabilise=stabilise, chunk_size=chunk)
            assert rows and max(rows) <= chunk
            ref = linear_attention(q, k, v, fm, causal=causal, stabilise=stabilise, chunk_size=n)
            torch.testing.assert_close(out, ref, rtol=0, atol=_bound(fm, q, k, v) * 2.0**-29)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("stabilise", [True, False])
def test_feature_dimension_mismatch_is_refused(causal, stabilise, kt_generator):
    """φ(q) with D = 16 and φ(k) with D = 8 would broadcast in some products: refused, naming both D."""
    q, k, v = _inputs(kt_generator, 20)
    big = E.get("positive/gaussian", dim=8, num_features=16).draw(kt_generator)
    small = E.get("positive/gaussian", dim=8, num_features=8).draw(kt_generator)

    class Mismatched:
        query, log_query = big.query, big.log_query
        key, log_key = small.key, small.log_key

    with pytest.raises(ValueError, match=r"D_q = 16.*D_k = 8"):
        linear_attention(q, k, v, Mismatched(), causal=causal, stabilise=stabilise)


def test_one_column_key_features_do_not_broadcast(kt_generator):
    """D_k = 1 against D_q = 16 is the case that broadcasts silently in a product: refused too."""
    q, k, v = _inputs(kt_generator, 12)
    fm = E.get("positive/gaussian", dim=8, num_features=16).draw(kt_generator)

    class OneColumn:
        def query(self, x):
            return fm.query(x)

        def key(self, x):
            return fm.key(x)[..., :1]

    for causal in (False, True):
        with pytest.raises(ValueError, match=r"D_q = 16.*D_k = 1"):
            linear_attention(q, k, v, OneColumn(), causal=causal, stabilise=False)


@pytest.mark.parametrize("causal", [False, True])
def test_no_allocation_larger_than_the_output(causal, kt_generator):
    """n = 4096, D = 64 > d_v = 16: an n×D feature matrix (2 MiB) or a copy of the output with its denominator
    column would be the largest allocation; chunked, nothing exceeds the output [n, d_v] itself."""
    from torch.profiler import ProfilerActivity, profile

    n, m, dv = 4096, 64, 16
    q, k, _ = _inputs(kt_generator, n, heads=1)
    v = torch.randn(1, 1, n, dv, generator=kt_generator, dtype=torch.float64)
    fm = E.get("positive/gaussian", dim=8, num_features=m).draw(kt_generator)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = linear_attention(q, k, v, fm, causal=causal, chunk_size=128)
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert largest <= out.numel() * out.element_size(), f"an allocation of {largest} bytes"


@pytest.mark.parametrize("causal", [False, True])
def test_a_users_log_features_are_never_written(causal, kt_generator):
    """Linear attention updates a registered component's fresh log features in place; a user's log_query/log_key
    may return tensors they keep (here: precomputed tables), which must come back unchanged, and the output must
    equal the registered map's."""
    fm = E.get("positive/gaussian", dim=8, num_features=32).draw(kt_generator)
    q, k, v = (torch.randn(2, 40, 8, generator=kt_generator, dtype=torch.float64) * 0.5 for _ in range(3))
    table_q, table_k = fm.log_query(q), fm.log_key(k)
    kept = [t.clone() for t in (*table_q, *table_k)]

    def _rows(t, full, x):  # the rows of the table whose inputs are the chunk x
        start = next(i for i in range(full.shape[-2] - x.shape[-2] + 1)
                     if torch.equal(full[..., i : i + x.shape[-2], :], x))
        return t[..., start : start + x.shape[-2], :]

    class Tables:
        query, key = fm.query, fm.key

        def log_query(self, x):
            return tuple(_rows(t, q, x) for t in table_q)

        def log_key(self, x):
            return tuple(_rows(t, k, x) for t in table_k)

    out = linear_attention(q, k, v, Tables(), causal=causal, chunk_size=16)
    for before, after in zip(kept, (*table_q, *table_k), strict=True):
        assert torch.equal(before, after)
    ref = linear_attention(q, k, v, fm, causal=causal, chunk_size=16)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_a_query_with_no_kept_key_has_output_zero_in_every_attention(causal, kt_generator):
    """Left padding (causal: the first positions see only masked keys) and a fully masked sequence: those queries
    have output 0 in linear, kernel and softmax attention alike; every other query is the attention over its kept
    keys, within the rounding bound of the oracle, whatever the chunk (several chunks hold keyless queries)."""
    n, pad = 40, 13
    q, k, v = _inputs(kt_generator, n)
    q, k, v = (t.expand(3, *t.shape[1:]).clone() for t in (q, k, v))
    mask = torch.ones(3, n, dtype=torch.bool)
    mask[0, :pad] = False  # left padding
    mask[1] = False  # nothing kept
    fm = E.get("positive/orthogonal", dim=8, num_features=16).draw(kt_generator)
    keyless = torch.zeros(3, n, dtype=torch.bool)
    keyless[1] = True
    if causal:
        keyless[0, :pad] = True
    ref = _oracle(fm, q, k, v, causal, mask)
    soft = kernel_attention(q, k, v, lambda x, y: torch.exp(x @ y.transpose(-1, -2) / 8**0.5), causal, mask)
    from kerneltheory.attention import attention_matrix, softmax_attention

    sdp = softmax_attention(q, k, v, causal, mask)
    mat = attention_matrix(q, k, fm, causal, mask)
    for out in (ref, soft, sdp, mat):
        assert bool((out[keyless[:, None, :].expand(out.shape[:-1])] == 0).all())
    for chunk in (None, 1, 5, 16, n):
        out = linear_attention(q, k, v, fm, causal=causal, mask=mask, chunk_size=chunk)
        assert bool((out[keyless[:, None, :].expand(out.shape[:-1])] == 0).all())
        assert float((out - ref).abs().max()) <= _bound(fm, q, k, v) * 2.0**-29
        torch.testing.assert_close(out, mat @ v, rtol=0, atol=_bound(fm, q, k, v) * 2.0**-29)
