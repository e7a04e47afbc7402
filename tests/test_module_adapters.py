"""The nn.Module adapters against three module defects: attention_from_module puts the audited sequence on one of
several heads (a layer that mixes heads, ``reshape`` for ``transpose``, fails; one head hid it); module calls run
seeded from the check's generator (a projection drawn lazily at the first forward is replayed, a module that
redraws on every call is still refused); from_module refuses a redraw that the module's forward does not see (a
stale cache, a redraw that changes only a counter) instead of reporting a biased map. Exact checks (padding,
rounding floors) or ValueErrors only; the statistical rows run at α = 1e-6 on the test's seed.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from kerneltheory import kernels
from kerneltheory._audit_args import global_rng_factory
from kerneltheory.testing import check_feature_map
from kerneltheory.testing.adapters import attention_from_module, from_module
from kerneltheory.testing.attention_audit import check_attention, rounding_floor_attention

D, ALPHA = 8, 1e-6
pytestmark = pytest.mark.usefixtures("one_thread")


def _favor(q, k, v, w, keep):
    """Positive-feature linear attention on [..., L, d] with per-query and one shared key stabiliser."""
    d = q.shape[-1]
    f = lambda x: (x * d**-0.25) @ w.t() - (x * x * d**-0.5).sum(-1, keepdim=True) / 2  # noqa: E731
    lq, lk = f(q), f(k)
    pq = (lq - lq.amax(-1, keepdim=True)).exp()
    pk = (lk - lk.masked_fill(~keep[..., None], -math.inf).amax((-2, -1), keepdim=True)).exp() * keep[..., None]
    return (pq @ (pk.transpose(-1, -2) @ v)) / (pq @ pk.sum(-2)[..., None])


class Heads(nn.Module):
    """[B, L, H, d] multi-head attention; ``transpose=False`` splits the heads with ``reshape`` (the classic bug)."""

    def __init__(self, m, transpose=True):
        super().__init__()
        self.transpose = transpose
        self.register_buffer("projection", torch.randn(m, D, dtype=torch.float64))

    def split(self, x):
        b, n, h, d = x.shape
        return x.transpose(1, 2) if self.transpose else x.reshape(b, h, n, d)

    def forward(self, q, k, v, key_padding_mask=None):
        b, n, h, d = q.shape
        keep = torch.ones(b, n, dtype=torch.bool) if key_padding_mask is None else ~key_padding_mask
        out = _favor(self.split(q), self.split(k), self.split(v), self.projection, keep[:, None])
        return out.transpose(1, 2) if self.transpose else out.reshape(b, n, h, d)


def heads_attention(transpose, **kw):
    return attention_from_module(lambda m: Heads(m, transpose), layout="BLHd", mask="key_padding_mask",
                                 mask_keeps=False, **kw)


def test_a_layer_that_mixes_heads_fails_and_a_correct_one_passes(kt_seed):
    """With one head inserted reshape equals transpose, so no check could see the bug; with two heads (the default)
    the audited head receives distractor tokens and fails; one head still hides it."""
    for kw, status in (({}, "FAILED"), ({"heads": 3}, "FAILED"), ({"heads": 1}, "PASSED")):
        report = check_attention(heads_attention(False, **kw), dim=D, checks=["padding"], seed=kt_seed)
        assert report.status == status, (kw, str(report))
    assert check_attention(heads_attention(True, heads=3), dim=D, checks=["padding"], seed=kt_seed).passed


class FusedHeads(nn.Module):
    """Multi-head attention on fused ``[B, L, H·d]`` q, k, v, split into heads by ``view(B, L, H, d)`` (or, the bug,
    ``view(B, L, d, H)``), merged back the same way."""

    def __init__(self, m, heads, bug=False):
        super().__init__()
        self.heads, self.bug = heads, bug
        self.register_buffer("projection", torch.randn(m, D, dtype=torch.float64))

    def forward(self, q, k, v, key_padding_mask=None):
        b, n, _ = q.shape
        h = self.heads
        split = (lambda t: t.view(b, n, D, h).transpose(-1, -2)) if self.bug else (lambda t: t.view(b, n, h, D))
        keep = torch.ones(b, n, dtype=torch.bool) if key_padding_mask is None else ~key_padding_mask
        out = _favor(*(split(t).transpose(1, 2) for t in (q, k, v)), self.projection, keep[:, None])
        return out.transpose(1, 2).reshape(b, n, h * D)


class Unfused(nn.Module):
    """The wrapper docs/auditing.md describes: ``[B, L, H, d]`` in, the module's fused ``[B, L, H·d]`` through."""

    def __init__(self, inner, heads):
        super().__init__()
        self.inner, self.heads = inner, heads

    def forward(self, q, k, v, key_padding_mask=None):
        out = self.inner(*(t.flatten(-2) for t in (q, k, v)), key_padding_mask=key_padding_mask)
        return out.unflatten(-1, (self.heads, -1))


def test_a_fused_head_layout_is_audited_through_a_flattening_wrapper(kt_seed):
    """A module on fused [B, L, H·d] inputs has no layout of its own: wrapped to take [B, L, H, d] (flatten in,
    unflatten out), its own head split is what the audit runs, so a split of the fused axis as (d, H) mixes the heads
    and fails the padding rows, and the correct split passes them (docs/auditing.md, section 4)."""
    for bug, status in ((False, "PASSED"), (True, "FAILED")):
        factory = attention_from_module(lambda m, b=bug: Unfused(FusedHeads(m, 2, b), 2), layout="BLHd", heads=2,
                                        mask="key_padding_mask", mask_keeps=False)
        report = check_attention(factory, dim=D, checks=["padding"], seed=kt_seed)
        assert report.status == status, (bug, str(report))


class GroupedQuery(nn.Module):
    """Grouped-query attention on ``[B, L, H, d]``: 4 query heads, 2 key/value heads, query head i reading key/value
    head i // 2 (``repeat_interleave``); ``bug="tile"`` repeats them as a tile (query head i reads head i % 2)."""

    def __init__(self, m, bug=None):
        super().__init__()
        self.bug = bug
        self.register_buffer("projection", torch.randn(m, D, dtype=torch.float64))

    def forward(self, q, k, v, key_padding_mask=None):
        k, v = ((t.repeat(1, 1, 2, 1) if self.bug == "tile" else t.repeat_interleave(2, 2)) for t in (k, v))
        keep = torch.ones(q.shape[:2], dtype=torch.bool) if key_padding_mask is None else ~key_padding_mask
        return _favor(*(t.transpose(1, 2) for t in (q, k, v)), self.projection, keep[:, None]).transpose(1, 2)


class QueryOfGroup(nn.Module):
    """The wrapper docs/auditing.md describes for grouped-query attention, audited with ``heads`` = the key/value
    heads: each audited query repeated over its group's query heads, the output of the group's query head ``j``."""

    def __init__(self, inner, group, j):
        super().__init__()
        self.inner, self.group, self.j = inner, group, j

    def forward(self, q, k, v, key_padding_mask=None):
        out = self.inner(q.repeat_interleave(self.group, 2), k, v, key_padding_mask=key_padding_mask)
        return out[:, :, self.j :: self.group]


class EveryOtherKeyHead(nn.Module):
    """The wrapper a user trial wrote first, audited with ``heads`` = the query heads: key/value heads 0 and 2 of the
    four inserted, so the audited query on head 1 or 3 reads distractor keys."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, q, k, v, key_padding_mask=None):
        return self.inner(q, k[:, :, ::2], v[:, :, ::2], key_padding_mask=key_padding_mask)


class CrossAttention(nn.Module):
    """Positive-feature cross-attention on ``[B, L, H, d]`` with a key padding mask (True pads); ``sliced``: the
    bug of a user trial, the key mask sliced to the query length (every key past it kept)."""

    def __init__(self, m, sliced=False):
        super().__init__()
        self.sliced = sliced
        self.register_buffer("w", torch.randn(m, D, dtype=torch.float64))

    def forward(self, q, k, v, key_padding_mask=None):
        s = D**-0.25
        lq, lk = ((x * s) @ self.w.T - (x * s).pow(2).sum(-1, keepdim=True) / 2 for x in (q, k))
        pq, pk = (lq - lq.amax(-1, keepdim=True)).exp(), (lk - lk.amax((1, 3), keepdim=True)).exp()
        if key_padding_mask is not None:
            keep = ~key_padding_mask
            if self.sliced:
                keep = torch.cat([keep[:, : q.shape[1]], torch.ones_like(keep[:, q.shape[1]:])], 1)
            pk = pk * keep[:, :, None, None]
        num = torch.einsum("blhm,bhmd->blhd", pq, torch.einsum("blhm,blhd->bhmd", pk, v))
        return num / torch.einsum("blhm,bhm->blh", pq, pk.sum(1)).unsqueeze(-1)


class MoreKeys(nn.Module):
    """The audit wrapper of docs/auditing.md, section 4: five more keys, drawn like the audit's (std 0.3), with
    values far from the others (std 3), marked padded in the key mask passed on."""

    def __init__(self, inner, extra=5):
        super().__init__()
        self.inner, self.extra = inner, extra

    def forward(self, q, k, v, key_padding_mask=None):
        g = torch.Generator().manual_seed(1)
        b, n, h, _ = k.shape
        more = [torch.cat([t, std * torch.randn(b, self.extra, h, t.shape[-1], generator=g, dtype=t.dtype)], 1)
                for t, std in ((k, 0.3), (v, 3.0))]
        pad = torch.zeros(b, n, dtype=torch.bool) if key_padding_mask is None else key_padding_mask
        return self.inner(q, *more, key_padding_mask=torch.cat([pad, torch.ones(b, self.extra, dtype=torch.bool)], 1))


def test_cross_attention_is_audited_with_more_keys_than_queries(kt_seed):
    """Every row calls the attention with as many keys as queries, so a cross-attention that slices its key mask to
    the query length passes them (a user trial; docs/auditing.md, 'What a pass does not cover'). Through a wrapper
    that appends padded keys a correct module passes every row and the sliced mask fails the padding rows."""
    def audit(build, checks=("padding",)):
        return check_attention(attention_from_module(build, layout="BLHd", heads=2, mask="key_padding_mask",
                                                     mask_keeps=False), dim=D, checks=checks, seed=kt_seed)

    assert audit(lambda m: CrossAttention(m, sliced=True)).passed  # the limit: equal lengths never take the bug
    good = audit(lambda m: MoreKeys(CrossAttention(m)), checks=None)
    assert good.passed and len(good.checks) > 5, str(good)
    bad = audit(lambda m: MoreKeys(CrossAttention(m, sliced=True)))
    assert bad.status == "FAILED" and all(c.name.startswith("padding") for c in bad.failures), str(bad)


class HiddenStatesLayer(nn.Module):
    """A Hugging Face-style layer: forward(hidden_states, attention_mask=None, head_mask=None), q, k, v projected
    inside."""

    def __init__(self, m):
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(D, D, dtype=torch.float64) for _ in range(3))
        self.register_buffer("w", torch.randn(m, D, dtype=torch.float64))

    def forward(self, hidden_states, attention_mask=None, head_mask=None):
        q, k, v = self.q(hidden_states), self.k(hidden_states), self.v(hidden_states)
        lq, lk = (x @ self.w.T - (x * x).sum(-1, keepdim=True) / 2 for x in (q, k))
        if attention_mask is not None:
            lk = lk + attention_mask[:, 0, 0, :, None]
        pq, pk = lq.exp(), lk.exp()
        return (pq @ (pk.transpose(1, 2) @ v)) / (pq @ pk.sum(1).unsqueeze(-1))


def test_a_layer_that_takes_hidden_states_is_named(kt_seed):
    """A user trial: a layer whose forward takes hidden states (projecting q, k, v itself) was passed to
    attention_from_module as it is, and the error blamed dim, layout and heads; it now names the arguments the
    forward takes and the wrapper that audits such a layer."""
    factory = attention_from_module(HiddenStatesLayer, layout="BLd")
    with pytest.raises(ValueError, match=r"Its forward takes \(hidden_states, attention_mask, head_mask\)"):
        check_attention(factory, dim=D, mask=False, checks=["batch"], seed=kt_seed)


def test_grouped_query_attention_is_audited_on_its_key_value_heads(kt_seed):
    """Grouped-query attention has fewer key/value heads than query heads, and the adapters give q, k and v one head
    count: audited on its key/value heads, with each query repeated over its group and one query head of the group
    returned, a correct module passes and one that maps query heads to the wrong group (a tile for an interleave)
    fails; a wrapper that inserts the query heads and drops key/value heads fails a correct module, its audited
    query reading distractor keys (a user trial; docs/auditing.md, section 4)."""
    def audit(build, heads, head=None):
        return check_attention(attention_from_module(build, layout="BLHd", heads=heads, head=head,
                                                     mask="key_padding_mask", mask_keeps=False),
                               dim=D, checks=["padding"], seed=kt_seed)

    # the second query head of each group (this module's query heads share one projection, so the first gives the
    # same report: experiments/bench/suite_audits.py found the two audits identical)
    assert audit(lambda m: QueryOfGroup(GroupedQuery(m), 2, 1), 2).passed
    assert audit(lambda m: QueryOfGroup(GroupedQuery(m, bug="tile"), 2, 0), 2).status == "FAILED"
    assert audit(lambda m: EveryOtherKeyHead(GroupedQuery(m)), 4, head=1).status == "FAILED"


def test_the_audited_head_is_the_modules_head_and_calls_are_deterministic(kt_seed):
    """A correct module's audited head gives what the same draw gives with one head (up to both runs' rounding
    floors, proofs/attention_audit.md), and two calls on one input are the same (the distractors are fixed)."""
    g = torch.Generator().manual_seed(kt_seed)
    q, k, v = (torch.randn(2, 6, D, generator=g, dtype=torch.float64) for _ in range(3))
    for layout, heads in (("BLHd", 2), ("BLHd", 3), ("BHLd", 4)):
        build = BHLd if layout == "BHLd" else Heads
        one, many = (attention_from_module(build, layout=layout, heads=h)(16, torch.Generator().manual_seed(kt_seed))
                     for h in (1, heads))
        a, b = one(q, k, v), many(q, k, v)
        assert torch.equal(b, many(q, k, v))
        floor = rounding_floor_attention(one, q, k, v, a, 16) + rounding_floor_attention(many, q, k, v, b, 16)
        assert b.shape == q.shape and bool(((a - b).abs() <= floor).all()), (layout, heads)


class HeadFeatures(nn.Module):
    """FAVOR+ features of exp(xᵀy) on [B, L, H, d] (``layout="BLHd"``) or [B, H, L, d]; ``transpose=False`` goes from
    [B, L, H, d] to [B, H, L, d] by ``reshape`` (the bug); ``heads`` > 0: one projection per head (a fixed number)."""

    def __init__(self, transpose=True, heads=0, blhd=True):
        super().__init__()
        self.transpose, self.blhd = transpose, blhd
        self.register_buffer("projection", torch.randn(*((heads,) if heads else ()), 64, D, dtype=torch.float64))

    @torch.no_grad()
    def redraw(self):
        self.projection.normal_()

    def forward(self, x):
        if self.blhd:
            b, n, h, d = x.shape
            x = x.transpose(1, 2) if self.transpose else x.reshape(b, h, n, d)
        w = self.projection if self.projection.dim() == 2 else self.projection[None]
        f = torch.exp(x @ w.transpose(-1, -2) - (x * x).sum(-1, keepdim=True) / 2) / 8
        return f.transpose(1, 2) if self.blhd else f


def test_a_redraw_that_skips_the_tested_head_is_named(kt_seed):
    """A per-head redraw loop that starts at head 1 leaves head 0's map fixed: its audit raised that the redraw changed
    the state but not the features, naming counters and caches only (a user trial); the error now names the head and
    that reading."""

    class SkipsHeadZero(HeadFeatures):
        @torch.no_grad()
        def redraw(self):
            self.projection[1:].normal_()

    sample = from_module(SkipsHeadZero(heads=4), redraw="redraw", layout="BLHd", heads=4, head=0)
    with pytest.raises(ValueError, match=r"not the features of head 0 of 4, the head tested.*skips this one"):
        check_feature_map(sample, kernels.softmax, dim=D, claims={"unbiased"}, seed=kt_seed)


def test_a_feature_module_that_mixes_heads_fails_and_a_correct_one_passes(kt_seed):
    """from_module inserted one head, where reshape equals transpose: a module that mixed heads passed every row (an
    adversarial trial), while a layer of H heads gives the tokens of one head other tokens' features (2–26 % off at
    norms ≤ 0.5 with H = 4, L = 16). With two heads (the default) the tested rows sit on head 1 beside fixed
    distractor rows, and the row-wise check fails the mix with certainty; one head still hides it. A module with a
    fixed number of heads is audited with heads= that number (one of its heads' maps), and fails with a message
    naming heads= otherwise."""
    audit = lambda module, **kw: check_feature_map(  # noqa: E731
        from_module(module, redraw="redraw", **kw), kernels.softmax, dim=D, claims={"unbiased"}, seed=kt_seed)
    for kw, status in (({"layout": "BLHd"}, "FAILED"), ({"layout": "BLHd", "heads": 3}, "FAILED"),
                       ({"layout": "BLHd", "heads": 1}, "PASSED")):
        report = audit(HeadFeatures(transpose=False), **kw)
        assert report.status == status, (kw, str(report))
        assert status == "PASSED" or [c.name for c in report.checks if c.status == "failed"] == ["row-wise"], \
            str(report)
    assert audit(HeadFeatures(), layout="BLHd").passed
    # one head each (head= the former default): a correct module on every head is test_every_head_of_a_feature_...
    assert audit(HeadFeatures(blhd=False), layout="BHLd", heads=3, head=1).passed
    assert audit(HeadFeatures(heads=4), layout="BLHd", heads=4, head=2).passed
    with pytest.raises(ValueError, match="the module failed on BLHd tensors of shape .* heads=default 2"):
        audit(HeadFeatures(heads=4), layout="BLHd")
    with pytest.raises(ValueError, match="heads applies to a layout with a head axis"):
        from_module(HeadFeatures(), layout="BLd", heads=2)


class BHLd(Heads):
    def forward(self, q, k, v, mask=None):
        return _favor(q, k, v, self.projection, torch.ones(q.shape[0], 1, q.shape[2], dtype=torch.bool))


def test_a_mask_keyword_the_module_lacks_names_the_fix(kt_seed):
    """mask= names a keyword the module does not take: the error said only that a function without a mask is audited
    with mask=False, which would drop the padding rows; it now names mask= the module's own argument first."""
    wrong = attention_from_module(lambda m: Heads(m), layout="BLHd", mask="mask", mask_keeps=False)
    with pytest.raises(ValueError, match="takes mask= the name of its mask argument"):
        check_attention(wrong, dim=D, checks=["padding"], seed=kt_seed)


def test_a_factory_returning_a_module_in_training_mode_is_told_to_call_eval(kt_seed):
    """A factory attention(m, generator) that returns a module with dropout, in training mode, is refused as drawing
    from elsewhere (its calls differ); the error now says why (a review of the command line)."""

    class Dropped(nn.Module):
        def __init__(self, m, generator):
            super().__init__()
            self.register_buffer("projection", torch.randn(m, D, generator=generator, dtype=torch.float64))
            self.drop = nn.Dropout(0.1)

        def forward(self, q, k, v, mask=None):
            return self.drop(_favor(q, k, v, self.projection, torch.ones(q.shape[:2], dtype=torch.bool)))

    with pytest.raises(ValueError, match="an nn.Module in training mode, where dropout draws on every call"):
        check_attention(lambda m, g: Dropped(m, g), dim=D, mask=False, checks=["batch"], seed=kt_seed)
    assert check_attention(lambda m, g: Dropped(m, g).eval(), dim=D, mask=False, checks=["batch"], seed=kt_seed).passed


def test_attention_from_module_validates_heads_and_mask_keeps():
    build = lambda m: Heads(m)  # noqa: E731
    with pytest.raises(ValueError, match="heads must be >= 1"):
        attention_from_module(build, layout="BLHd", heads=0)
    with pytest.raises(TypeError, match="heads must be an integer"):
        attention_from_module(build, layout="BHLd", heads=2.0)
    with pytest.raises(ValueError, match="heads applies to a layout with a head axis"):
        attention_from_module(build, layout="BLd", heads=2)
    with pytest.raises(TypeError, match="mask_keeps must be a bool"):
        attention_from_module(build, layout="BLHd", mask="key_padding_mask", mask_keeps="False")
    with pytest.raises(TypeError, match="mask must be None or the name"):
        attention_from_module(build, layout="BLHd", mask=True)
    fixed = attention_from_module(lambda m: Heads(m), layout="BLHd", heads=2)(16, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="expected size heads = 2"):
        attention_from_module(lambda m: Squeezed(m), layout="BLHd", heads=2)(16, torch.Generator().manual_seed(0))(
            *(torch.zeros(1, 4, D, dtype=torch.float64),) * 3)
    assert fixed(*(torch.zeros(1, 4, D, dtype=torch.float64),) * 3).shape == (1, 4, D)


class Squeezed(Heads):
    def forward(self, q, k, v):
        return super().forward(q, k, v)[:, :, 0]


class Lazy(nn.Module):
    """Draws its projection at the first forward, from torch's global generator (d read from the input)."""

    def __init__(self, m, every_call=False):
        super().__init__()
        self.m, self.every_call, self.projection = m, every_call, None

    def forward(self, q, k, v, key_padding_mask=None):
        if self.projection is None or self.every_call:
            self.projection = torch.randn(self.m, q.shape[-1], dtype=q.dtype)
        keep = torch.ones(k.shape[:2], dtype=torch.bool) if key_padding_mask is None else ~key_padding_mask
        return _favor(q, k, v, self.projection, keep)


def test_a_projection_drawn_at_the_first_forward_is_replayed(kt_seed):
    """It was refused ("built twice from identically seeded generators gives different outputs ... goes through
    attention_from_module") although it came through attention_from_module; a module that draws on every call is
    refused by the determinism of the exact checks."""
    lazy = attention_from_module(lambda m: Lazy(m), mask="key_padding_mask", mask_keeps=False)
    assert check_attention(lazy, dim=D, checks=["padding"], seed=kt_seed).passed
    every = attention_from_module(lambda m: Lazy(m, every_call=True), mask="key_padding_mask", mask_keeps=False)
    report = check_attention(every, dim=D, checks=["padding"], seed=kt_seed)
    calls, *rows = report.checks  # the calls row first: one function called again on the same inputs differs
    assert calls.name == "calls" and calls.refused and "call 2 of one function" in calls.detail, report
    assert report.status == "REFUSED" and all("two calls with one draw" in c.detail for c in rows), report
    for every_call, status in ((False, "PASSED"), (True, "REFUSED")):  # --global-rng --attention: attention(m)
        factory = global_rng_factory(lambda m, e=every_call: lazy_function(m, e), attention=True)
        assert check_attention(factory, dim=D, checks=["padding"], seed=kt_seed).status == status


def lazy_function(m, every_call):
    module = Lazy(m, every_call)
    return lambda q, k, v, mask=None: module(q, k, v, None if mask is None else ~mask)


class LazyFeatures(nn.Module):
    """Positive features whose redraw forgets the projection; forward draws it (global generator) when missing."""

    def __init__(self, m=64, every_call=False):
        super().__init__()
        self.m, self.every_call, self.projection = m, every_call, None

    def redraw(self):
        self.projection = None

    def forward(self, x):
        if self.projection is None or self.every_call:
            self.projection = torch.randn(self.m, x.shape[-1], dtype=x.dtype)
        return torch.exp(x @ self.projection.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(self.m)


def test_from_module_replays_features_drawn_at_the_first_call(kt_seed):
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(kt_seed), dtype=torch.float64)
    runs = [from_module(LazyFeatures(), redraw="redraw", dtype=torch.float64)(torch.Generator().manual_seed(kt_seed))
            for _ in range(2)]
    assert torch.equal(runs[0](x), runs[1](x)) and torch.equal(runs[0](x), runs[0](x))
    report = check_feature_map(from_module(LazyFeatures(), redraw="redraw", dtype=torch.float64), kernels.softmax,
                               dim=4, claims={"unbiased"}, sweep=False, alpha=ALPHA, seed=kt_seed)
    assert report.passed, str(report)
    every = from_module(LazyFeatures(every_call=True), redraw="redraw", dtype=torch.float64)
    g = torch.Generator().manual_seed(kt_seed)
    every(g)(x)
    with pytest.raises(ValueError, match="different features on 3 calls with one draw"):
        every(g)


class DroppedFeatures(nn.Module):
    """Positive features with dropout; ``always``: F.dropout's default training=True, on in eval mode too (the bug)."""

    def __init__(self, always, m=16):
        super().__init__()
        self.m, self.always = m, always
        self.register_buffer("projection", torch.randn(m, 4, dtype=torch.float64))

    def redraw(self):
        self.projection = torch.randn(self.m, 4, dtype=torch.float64)

    def forward(self, x):
        phi = torch.exp(x @ self.projection.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(self.m)
        return nn.functional.dropout(phi, 0.1, training=self.always or self.training)


def test_dropout_left_on_in_a_feature_module_is_named(kt_seed):
    """A user trial: a feature module with dropout left on was refused with a message naming only new frequencies
    drawn in forward; it now names dropout and the fix. With training=self.training (the module runs in eval mode
    here) the same module passes."""
    g = torch.Generator().manual_seed(kt_seed)
    sample = from_module(DroppedFeatures(True), redraw="redraw")
    sample(g)(torch.randn(6, 4, generator=g, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"different features on 3 calls.*dropout left on.*training=self\.training"):
        sample(g)
    good = check_feature_map(from_module(DroppedFeatures(False), redraw="redraw"), kernels.softmax, dim=4,
                             claims={"unbiased"}, sweep=False, alpha=ALPHA, seed=kt_seed)
    assert good.passed, str(good)


class Cached(nn.Module):
    """redraw() draws a new projection, but forward reads a copy made at its first call (a stale cache); with
    ``counter`` the redraw instead changes only a step counter after the first."""

    def __init__(self, counter=False, m=16):
        super().__init__()
        self.m, self.counter, self._cache = m, counter, None
        g = torch.Generator().manual_seed(0)
        self.register_buffer("projection", torch.randn(m, 4, dtype=torch.float64, generator=g))
        self.register_buffer("steps", torch.tensor(0.0, dtype=torch.float64))

    def redraw(self):
        self.steps += 1
        if not self.counter or self.steps == 1:
            self.projection = torch.randn(self.m, 4, dtype=torch.float64)

    def forward(self, x):
        if self._cache is None or self.counter:
            self._cache = self.projection.clone()
        return torch.exp(x @ self._cache.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(self.m)


@pytest.mark.parametrize("counter", [False, True])
def test_a_redraw_the_forward_does_not_see_is_refused(kt_seed, counter):
    """Reported FAILED unbiased (a biased map) before: the state changed, so the redraw was taken as a real one."""
    g = torch.Generator().manual_seed(kt_seed)
    sample = from_module(Cached(counter), redraw="redraw")
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    x[0] = 0.0  # a zero row: its features need not depend on the frequencies, and is left out
    sample(g)(x)
    changed = "steps" if counter else "projection"
    with pytest.raises(ValueError, match=rf"redraw='redraw' changed the module's state \({changed}.*5 nonzero.*cache"):
        for _ in range(6):
            sample(g)


class Taylor(nn.Module):
    """Based's second-order Taylor features of exp(xᵀy) (kernel 1 + s + s²/2), a deterministic map; ``divisor``
    √2 is correct, 2 the bug."""

    def __init__(self, divisor):
        super().__init__()
        self.divisor = divisor

    def forward(self, x):
        outer = (x[..., :, None] * x[..., None, :]).flatten(-2) / self.divisor
        return torch.cat([torch.ones_like(x[..., :1]), x, outer], -1)


def test_a_deterministic_module_is_audited_with_redraw_false(kt_seed):
    """A deterministic feature module (Based's second-order Taylor features, kernel 1 + s + s²/2) had no way through
    from_module: redraw=None refuses a second draw, and a no-op redraw is refused as a redraw that changed nothing.
    redraw=False declares it: the correct module passes, one that divides by 2 instead of √2 fails."""

    claims = {"unbiased"}
    good = check_feature_map(from_module(Taylor(math.sqrt(2)), redraw=False), kernels.exp_taylor2, dim=4,
                             claims=claims, sweep=False, alpha=ALPHA, seed=kt_seed)
    assert good.passed, str(good)
    bad = check_feature_map(from_module(Taylor(2.0), redraw=False), kernels.exp_taylor2, dim=4, claims=claims,
                            sweep=False, alpha=ALPHA, seed=kt_seed)
    assert bad.status == "FAILED", str(bad)
    with pytest.raises(ValueError, match="redraw=False for a deterministic map"):
        check_feature_map(from_module(Taylor(math.sqrt(2))), kernels.exp_taylor2, dim=4, claims=claims)


def test_a_declared_deterministic_modules_sweep_pilot_draws_the_first_look(kt_seed, monkeypatch):
    """The norm sweep's pilot of a declared deterministic map draws 256 maps (its draws are one map), where a map
    that declares nothing draws the budget's quarter (pilot None: verify.pilot_draws)."""
    from kerneltheory.testing import verify

    seen, sweep = [], verify.sweep_radii

    def recording(*args, **kw):
        seen.append(kw.get("pilot"))
        return sweep(*args, **kw)

    monkeypatch.setattr(verify, "sweep_radii", recording)
    module = Taylor(math.sqrt(2))
    for sample in (from_module(Taylor(math.sqrt(2)), redraw=False), lambda g: lambda x: module(x)):
        report = check_feature_map(sample, kernels.exp_taylor2, dim=4, claims={"unbiased"}, alpha=ALPHA, seed=kt_seed)
        assert report.passed, str(report)
    assert seen == [256, None], seen


def test_a_declared_deterministic_module_accepts_from_the_first_look(kt_seed):
    """A map declared deterministic (redraw=False) is the one module at every draw, so its rows may accept at the
    first look (256 draws) where a map that declares nothing accepts from the budget's quarter (1024): an elu + 1
    audit took 5–6 s. A failure still needs the whole budget (a draw-256 version failed correct modules that draw a
    rare event at random, a review finding: agreement off the kernel is read as a bias only on the whole budget,
    proofs/verification.md item 3(a)); accept_early=False draws the budget; every head of a multi-head layout is
    declared; a functools.wraps wrapper is not (its own code may draw at random)."""
    from kerneltheory.testing import proportional_check
    from kerneltheory.testing._heads import declared_deterministic

    def audit(sample, **kw):
        return check_feature_map(sample, kernels.exp_taylor2, dim=4, claims={"unbiased"}, sweep=False, alpha=ALPHA,
                                 seed=kt_seed, **kw)

    def sizes(report):
        return {c.sample_size for c in report.checks if c.claim == "unbiased"}

    declared = from_module(Taylor(math.sqrt(2)), redraw=False)
    assert declared_deterministic(declared)
    assert not declared_deterministic(from_module(Taylor(1.0), redraw=lambda m: None))
    good = audit(declared)
    assert good.passed and sizes(good) == {256}, str(good)
    assert any("may accept from the first look (256 draws)" in n for n in good.notes), good.notes
    bad = audit(from_module(Taylor(2.0), redraw=False))
    assert bad.status == "FAILED" and {c.sample_size for c in bad.checks if c.status == "failed"} == {4096}, str(bad)
    held = audit(from_module(Taylor(math.sqrt(2)), redraw=False), accept_early=False)
    assert held.passed and sizes(held) == {4096} and not any("first look" in n for n in held.notes), str(held)
    module = Taylor(math.sqrt(2))
    plain = audit(lambda g: lambda x: module(x))  # the same map, declared by nobody
    assert plain.passed and sizes(plain) == {1024}, str(plain)
    heads = audit(from_module(Taylor(math.sqrt(2)), layout="BLHd", redraw=False))  # two heads, each audited
    assert heads.passed and sizes(heads) == {256} and all(declared_deterministic(h) for h in
                                                           from_module(Taylor(1.0), layout="BLHd",
                                                                       redraw=False).head_samplers), str(heads)

    @functools.wraps(declared)
    def wrapper(g):
        return declared(g)

    assert not declared_deterministic(wrapper)
    wrapped = audit(wrapper)
    assert wrapped.passed and sizes(wrapped) == {1024} and not any("first look" in n for n in wrapped.notes)
    # proportional_check's rows have one look, where agreement off the kernel is read as a bias: the whole budget
    rows = proportional_check(from_module(Taylor(math.sqrt(2)), redraw=False), kernels.exp_taylor2, dim=4,
                              alpha=ALPHA, seed=kt_seed, sweep=False)
    assert all(r.passed for r in rows) and {r.sample_size for r in rows} == {4096}, [str(r) for r in rows]


class PerHead(nn.Module):
    """[B, H, L, d] FAVOR+ layer with one projection per head; ``bug``: ``"scale"`` draws head 0's projection at
    std 1/√d (a per-head initialisation with the wrong scale), ``"mask"`` applies the key mask to every head but the
    last (a per-head loop ``range(H - 1)``)."""

    def __init__(self, m, heads, bug=None):
        super().__init__()
        self.heads, self.bug = heads, bug
        w = torch.randn(heads, m, D, dtype=torch.float64)
        if bug == "scale":
            w[0] = w[0] / math.sqrt(D)
        self.register_buffer("projection", w)

    def forward(self, q, k, v, key_padding_mask=None):
        keep = torch.ones(q.shape[0], q.shape[2], dtype=torch.bool) if key_padding_mask is None else ~key_padding_mask
        outs = []
        for h in range(self.heads):
            masked = keep if self.bug != "mask" or h < self.heads - 1 else torch.ones_like(keep)
            outs.append(_favor(q[:, h], k[:, h], v[:, h], self.projection[h], masked))
        return torch.stack(outs, 1)


def per_head(bug=None, heads=4, **kw):
    return attention_from_module(lambda m: PerHead(m, heads, bug), layout="BHLd", heads=heads,
                                 mask="key_padding_mask", mask_keeps=False, **kw)


def test_every_head_of_a_module_with_a_projection_per_head_is_audited(kt_seed):
    """A module wrong on one head only passed every row while one head was audited (an adversarial trial: head 0's
    projection at the wrong scale, a mask applied to all heads but the last); each head is now audited in turn and
    the row names the worst one. head= audits one head, and the report says so."""
    masked = check_attention(per_head("mask"), dim=D, checks=["padding"], seed=kt_seed)
    assert masked.status == "FAILED", str(masked)
    failed = [c for c in masked.checks if c.status == "failed"]
    assert failed and all(c.detail.startswith("head 3 (the worst of all 4 heads)") for c in failed), str(masked)
    assert any("every head of 4 tested" in n for n in masked.notes)
    scaled = check_attention(per_head("scale", heads=2), dim=D, checks=["consistency"], seed=kt_seed)
    assert scaled.status == "FAILED" and scaled.checks[0].detail.startswith("head 0 "), str(scaled)
    assert scaled.checks[0].alpha == pytest.approx(ALPHA)  # one row, α/2 on each head
    # one head alone: the head the bug spares passes, and the report names the head it covers
    alone = check_attention(per_head("mask", head=1), dim=D, checks=["padding"], seed=kt_seed)
    assert alone.passed and any("head 1 of 4 tested" in n for n in alone.notes), str(alone)
    assert check_attention(per_head("mask", head=3), dim=D, checks=["padding"], seed=kt_seed).status == "FAILED"
    assert check_attention(per_head(heads=2), dim=D, checks=["padding", "consistency"], seed=kt_seed).passed


def test_head_is_validated():
    build = lambda m: PerHead(m, 4)  # noqa: E731
    with pytest.raises(ValueError, match=r"head must be one of the 4 heads, 0 to 3"):
        attention_from_module(build, layout="BHLd", heads=4, head=4)
    with pytest.raises(ValueError, match="head must be >= 0"):
        attention_from_module(build, layout="BHLd", heads=4, head=-1)
    with pytest.raises(ValueError, match="head applies to a layout with a head axis"):
        attention_from_module(build, layout="BLd", head=0)
    one = attention_from_module(build, layout="BHLd", heads=4, head=2)
    assert not hasattr(one, "head_factories") and one.tested_head == (2, 4)
    every = attention_from_module(build, layout="BHLd", heads=4)
    assert [f.tested_head for f in every.head_factories] == [(h, 4) for h in range(4)]
    assert every.tested_head == (2, 4)  # called directly, the factory gives head heads // 2 as before


class FloatMask(nn.Module):
    """[B, L, d] FAVOR+ taking HuggingFace's float ``attention_mask`` (1.0 = keep), added to the key logits as
    (1 − mask)·finfo.min."""

    def __init__(self, m):
        super().__init__()
        self.register_buffer("projection", torch.randn(m, D, dtype=torch.float64))

    def forward(self, q, k, v, attention_mask=None):
        keep = torch.ones(k.shape[:2], dtype=torch.bool) if attention_mask is None else attention_mask > 0.5
        if attention_mask is not None and attention_mask.dtype == torch.bool:
            raise TypeError("Subtraction, the `-` operator, with a bool tensor is not supported")
        return _favor(q, k, v, self.projection, keep)


def test_a_float_keep_mask_is_passed_as_one_and_zero(kt_seed):
    """A correct module taking a 1.0/0.0 keep-mask could not be audited: given the boolean mask it raised (the error
    did not mention the mask's format), given the additive one it failed padding. mask_float=True passes 1.0/0.0."""
    with pytest.raises(ValueError, match=r"It was given a bool mask, True at a kept key \(mask_keeps=True\)"):
        check_attention(attention_from_module(FloatMask, mask="attention_mask"), dim=D, checks=["padding"],
                        seed=kt_seed)
    report = check_attention(attention_from_module(FloatMask, mask="attention_mask", mask_float=True), dim=D,
                             checks=["padding"], seed=kt_seed)
    assert report.passed, str(report)
    with pytest.raises(ValueError, match="pass at most one"):
        attention_from_module(FloatMask, mask="attention_mask", mask_float=True, mask_additive=True)
    with pytest.raises(TypeError, match="mask_float must be a bool"):
        attention_from_module(FloatMask, mask="attention_mask", mask_float=1)


def test_a_module_given_inputs_of_another_dtype_than_its_parameters_is_told(kt_seed):
    """from_module(..., dtype=torch.float16) cast the inputs and the float64 module failed with a dtype mismatch; the
    error asked about layout= and heads= (a new user's trial). It now names both dtypes."""
    with pytest.raises(ValueError, match=r"cast to torch.float16 while its parameters are torch.float64: dtype= casts "
                                         r"the inputs only"):
        check_feature_map(from_module(HeadFeatures(), layout="BLHd", redraw="redraw", dtype=torch.float16),
                          kernels.softmax, dim=D, claims={"unbiased"}, seed=kt_seed)


class OneHeadOff(HeadFeatures):
    """A projection per head whose redraw leaves head 0 at std 1/√d (a per-head initialisation with the wrong scale)."""

    @torch.no_grad()
    def redraw(self):
        super().redraw()
        self.projection[0] /= math.sqrt(D)


def test_every_head_of_a_feature_module_with_a_projection_per_head_is_tested(kt_seed):
    """from_module tested head heads // 2 only, so a feature module wrong on head 0 alone passed; every head is now
    tested in turn (each at α/H) and the failed row names the head; head= tests one, and the report says so."""
    wrong = from_module(OneHeadOff(heads=2), layout="BLHd", heads=2, redraw="redraw")
    report = check_feature_map(wrong, kernels.softmax, dim=D, claims={"unbiased"}, seed=kt_seed)
    assert report.status == "FAILED", str(report)
    assert report.failures and all(c.detail.startswith("head 0 ") for c in report.failures)
    alone = check_feature_map(from_module(OneHeadOff(heads=2), layout="BLHd", heads=2, redraw="redraw", head=1),
                              kernels.softmax, dim=D, claims={"unbiased"}, seed=kt_seed)
    assert alone.passed and any("head 1 of 2 tested (from_module(..., head=1))" in n for n in alone.notes), str(alone)
    right = from_module(HeadFeatures(heads=2), layout="BLHd", heads=2, redraw="redraw")
    assert check_feature_map(right, kernels.softmax, dim=D, claims={"unbiased"}, seed=kt_seed).passed
    with pytest.raises(ValueError, match="head must be one of the 4 heads"):
        from_module(HeadFeatures(heads=4), layout="BLHd", heads=4, redraw="redraw", head=7)


class FloatPadding(FloatMask):
    """FloatMask taking a float ``key_padding_mask`` instead: 1.0 at a padded key; ``wrong``: read as a keep mask."""

    wrong = False

    def forward(self, q, k, v, key_padding_mask=None):
        keep = None if key_padding_mask is None else key_padding_mask if self.wrong else 1.0 - key_padding_mask
        return super().forward(q, k, v, keep)


class FloatPaddingReadAsKeep(FloatPadding):
    wrong = True


def test_a_float_padding_mask_honours_mask_keeps(kt_seed):
    """mask_float=True ignored mask_keeps=False (a review finding): a correct module taking a float padding mask
    failed, and one reading it as a keep mask passed."""
    def audit(module, **kw):
        return check_attention(attention_from_module(module, mask="key_padding_mask", mask_float=True, **kw), dim=D,
                               checks=["padding"], seed=kt_seed)

    assert audit(FloatPadding, mask_keeps=False).passed
    assert audit(FloatPaddingReadAsKeep, mask_keeps=False).status == "FAILED"


def test_joined_head_rows_carry_the_sum_of_the_heads_levels(kt_seed):
    """A joined row fails where any head's does, so its level is the sum of the heads' (a review finding: each row
    printed one head's α/(H·n), and the rows summed to a quarter of the report's α at H = 4)."""
    report = check_attention(per_head(heads=4), dim=D, checks=["padding"], seed=kt_seed)
    assert report.passed and math.isclose(sum(c.alpha for c in report.checks), ALPHA), str(report)


def test_a_wrapped_factory_or_sampler_that_lost_its_heads_is_named(kt_seed):
    """A factory or sampler wrapped in a function of the user's own (a map rescaling its inputs) loses head_factories
    or head_samplers and is audited on head heads // 2 only (two review findings: silently; a module wrong on head 0
    PASSED at 3 of 3 seeds); the report now says so in its first line and a note, from the head its functions report
    when called (kerneltheory.testing._heads)."""
    inner = per_head("mask", heads=4)
    report = check_attention(lambda m, g: inner(m, g), dim=D, checks=["padding"], seed=kt_seed)
    assert report.passed, str(report)  # head 2 is masked correctly: only head 3 is wrong
    assert any(n.startswith("head 2 of 4 tested only") and "head_factories" in n for n in report.notes), report.notes
    assert str(report).splitlines()[0].startswith("check_attention: PASSED at head 2 of 4 only"), str(report)
    sampler = from_module(OneHeadOff(heads=2), layout="BLHd", heads=2, redraw="redraw")

    def rescaled(g):  # the user's wrapper: the map of x/2 (kernel exp(xᵀy/4))
        phi = sampler(g)
        return lambda x: phi(x / 2)

    wrapped = check_feature_map(rescaled, kernels.input_scaled(kernels.softmax, 0.5), dim=D, claims={"unbiased"},
                                seed=kt_seed)
    assert any(n.startswith("head 1 of 2 tested only") and "head_samplers" in n for n in wrapped.notes), str(wrapped)
    assert wrapped.domain.endswith("; head 1 of 2 only"), wrapped.domain


def test_proportional_check_tests_every_head(kt_seed):
    """proportional_check ignored head_samplers: every row passed for a feature module wrong on head 0 (3 of 3 seeds,
    a review finding) while check_feature_map(claims={"proportional"}) failed it. Each row is now its worst head's."""
    from kerneltheory.testing.adapters import proportional_check

    rows = proportional_check(from_module(OneHeadOff(heads=2), layout="BLHd", heads=2, redraw="redraw"),
                              kernels.softmax, dim=D, seed=kt_seed)
    failed = [r for r in rows if r.status == "failed"]
    assert failed and all(r.detail.startswith("head 0 ") for r in failed), [r.detail for r in rows]
    right = proportional_check(from_module(HeadFeatures(heads=2), layout="BLHd", heads=2, redraw="redraw"),
                               kernels.softmax, dim=D, seed=kt_seed)
    assert all(r.passed for r in right), [r.detail for r in right if not r.passed]


def test_a_functools_wraps_wrapper_is_audited_itself(kt_seed):
    """functools.wraps copies a function's __dict__, so a wrapper carried the adapter's head_factories or
    head_samplers, and the audit tested those inner heads without calling the wrapper (a review finding: a wrapper
    averaging the keys over the batch PASSED, a correct wrapper rescaling x FAILED). A wrapper carrying the adapter's
    own heads unwrapped is audited itself, on one head; one whose heads the user wrapped alike is audited on each."""
    import functools

    inner = heads_attention(True)

    @functools.wraps(inner)
    def averaged(m, g):  # the wrapper's own defect: keys averaged over the batch
        fn = inner(m, g)
        return lambda q, k, v, mask=None: fn(q, k.mean(0, keepdim=True).expand_as(k).clone(), v, mask)

    report = check_attention(averaged, dim=D, checks=["batch"], seed=kt_seed)
    assert report.status == "FAILED" and report.domain == "head 1 of 2 only", str(report)
    averaged.head_factories = inner.head_factories  # copied by hand: the same, audited on one head
    assert check_attention(averaged, dim=D, checks=["batch"], seed=kt_seed).status == "FAILED"

    def wrap(factory):
        def rescaled(m, g):  # a correct wrapper of each head: the inputs moved to and fro
            fn = factory(m, g)
            return lambda q, k, v, mask=None: fn(q * 2 / 2, k, v, mask)
        return rescaled

    every = wrap(inner)
    every.head_factories = tuple(wrap(f) for f in inner.head_factories)
    joined = check_attention(every, dim=D, checks=["batch"], seed=kt_seed)
    assert joined.passed and joined.notes[0].startswith("every head of 2") and joined.domain == "", str(joined)
    assert not any(n.startswith("head ") for n in joined.notes), joined.notes  # no one-head notes of the heads


def test_join_head_reports_keeps_rows_of_some_heads_and_differing_domains():
    """A row some heads lack says how many heads ran it; where the heads' domains differ, each is in the notes."""
    from kerneltheory.testing.checks import CheckResult
    from kerneltheory.testing.verify import Report, join_head_reports

    def row(name, passed=True):
        return CheckResult(name=name, claim="unbiased", statistic=0.0, p_value=0.5 if passed else 0.0, alpha=5e-7,
                           effect_size=0.0, sample_size=8, seed=0, method="clt", passed=passed)

    a = Report("check_feature_map", checks=[row("unbiased[axes]"), row("unbiased[‖x‖ = ‖y‖ = 1]")], domain="‖x‖ ≤ 1")
    b = Report("check_feature_map", checks=[row("unbiased[axes]", passed=False)], domain="‖x‖ ≤ 0.5")
    joined = join_head_reports([a, b], 1e-6, "from_module")
    assert [c.name for c in joined.checks] == ["unbiased[axes]", "unbiased[‖x‖ = ‖y‖ = 1]"]
    assert joined.checks[0].detail.startswith("head 1 (the worst of all 2 heads)") and joined.status == "FAILED"
    assert joined.checks[1].detail.startswith("head 0 (the worst of 1 of 2 heads)")
    assert joined.checks[0].alpha == pytest.approx(1e-6) and joined.checks[1].alpha == pytest.approx(5e-7)
    assert joined.domain == "each head's domain (notes)"
    assert "head 0: tested at ‖x‖ ≤ 1" in joined.notes and "head 1: tested at ‖x‖ ≤ 0.5" in joined.notes


def test_malformed_head_attributes_and_a_parameterless_module_are_told(kt_seed):
    """head_factories / head_samplers must be tuples of callables; a module without floating tensors gets no dtype
    advice, and attention_from_module names a dtype mismatch like from_module."""
    fn = lambda m, g: (lambda q, k, v, mask=None: v)  # noqa: E731
    fn.head_factories = ()
    with pytest.raises(TypeError, match="head_factories must be a non-empty tuple of callables"):
        check_attention(fn, dim=D, checks=["batch"], seed=kt_seed)
    sampler = lambda g: (lambda x: x)  # noqa: E731
    sampler.head_samplers = (3,)
    with pytest.raises(TypeError, match="head_samplers must be a non-empty tuple of callables"):
        check_feature_map(sampler, kernels.softmax, dim=D, claims={"unbiased"}, seed=kt_seed)

    class NoParameters(nn.Module):
        def forward(self, q, k, v):
            raise RuntimeError("a layout problem")

    with pytest.raises(ValueError, match="a layout problem") as caught:
        check_attention(attention_from_module(lambda m: NoParameters(), layout="BLd", dtype=torch.float32), dim=D,
                        mask=False, checks=["batch"], seed=kt_seed)
    assert "its parameters are" not in str(caught.value)
    with pytest.raises(ValueError, match=r"cast to torch.float16 while its parameters are torch.float64"):
        check_attention(attention_from_module(lambda m: Heads(m), layout="BLHd", dtype=torch.float16), dim=D,
                        mask=False, checks=["batch"], seed=kt_seed)
