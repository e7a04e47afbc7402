"""Turing completeness and kernelized attention (MATH.md §5–6, proofs/turing.md, proofs/rank_bound.md).

The interpreter and the normal form; the exact Pérez et al. construction against the interpreter for
hypothesis-generated machines (≤ 5 states, ≤ 3 work symbols, ≥ 50 steps); the float64 and bit-position
constructions; kernelized substitutions (a) exp(β·score) and its minimal β, (b) the exact cosh/sinh map,
(c) random positive features, (d) kernel averaging; and the rank obstruction. Every assertion but one holds
for every seed; the random-feature test compares exact-trace counts over 10 draws at m = 8 and m = 2^15 (0–1
against 10 in practice) with a margin of 5, an empirical check rather than a theorem.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import types
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import kerneltheory.estimators as E
from kerneltheory import kernels
from kerneltheory.attention import attention_matrix, linear_attention, softmax_attention
from kerneltheory.turing import kernelized as K
from kerneltheory.turing.bits import BitTransformer, bits, counter_network
from kerneltheory.turing.layers import ExpScore, Hardmax, Linear, RationalExpScore
from kerneltheory.turing.machine import (
    BLANK,
    MARKER,
    TuringMachine,
    machine_inputs,
    random_machine,
    random_word,
)
from kerneltheory.turing.perez import ConstructionError, PerezTransformer

F64 = torch.float64
A, B = 2, 3  # the letters of a 4-symbol tape alphabet {⊔, ⊢, a, b}


@contextlib.contextmanager
def single_thread():
    """Tiny tensors: one torch thread is much faster than two on shared cores (restored afterwards)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@pytest.fixture
def one_thread():
    with single_thread():
        yield


def bouncer() -> TuringMachine:
    """Read state 0 sweeps right; at the first blank it writes b and turns into state 1, which swaps a ↔ b
    moving left until the marker, then bounces back right."""
    table = (
        ((1, B, -1), (0, MARKER, 1), (0, A, 1), (0, B, 1)),
        ((1, A, 1), (1, MARKER, 1), (1, B, -1), (1, A, -1)),
    )
    return TuringMachine(2, 4, table, num_read_states=1)


# ---------------------------------------------------------------------------------------------------
# Machines and the interpreter
# ---------------------------------------------------------------------------------------------------


def test_interpreter_hand_checked_trace():
    trace = bouncer().run((A,), 6)
    assert trace.heads == (0, 1, 2, 1, 0, 1, 0)
    assert trace.states == (0, 0, 0, 1, 1, 1, 1)
    assert trace.symbols == (MARKER, A, BLANK, A, MARKER, B, MARKER)
    assert trace.writes == (MARKER, A, B, B, MARKER, A)
    assert trace.moves == (1, 1, -1, -1, 1, -1)


@pytest.mark.parametrize(
    "row, col, bad, match",
    [
        (1, MARKER, (1, MARKER, -1), "not in normal form"),  # moves left on the marker
        (1, A, (1, MARKER, -1), "not in normal form"),  # writes the marker
        (0, A, (0, A, -1), "not in normal form"),  # a read state moving left on a letter
        (0, B, (1, B, 1), "not in normal form"),  # a read state leaving the read states on a letter
        (1, A, (2, A, 1), "not in normal form"),  # no state 2
    ],
    ids=["marker-left", "writes-marker", "read-left", "read-leaves", "no-such-state"],
)
def test_normal_form_is_enforced(row, col, bad, match):
    table = [list(r) for r in bouncer().transitions]
    table[row][col] = bad
    with pytest.raises(ValueError, match=match):
        TuringMachine(2, 4, tuple(tuple(r) for r in table), num_read_states=1)


def test_machine_arguments_are_validated():
    table = bouncer().transitions
    with pytest.raises(ValueError, match="transitions must be"):
        TuringMachine(2, 4, table[:1])
    with pytest.raises(ValueError, match="halting"):
        TuringMachine(2, 4, table, num_read_states=1, halting=frozenset({0}))
    with pytest.raises(ValueError, match="num_read_states"):
        TuringMachine(2, 4, table, num_read_states=3)
    with pytest.raises(ValueError, match="word must consist of letters"):
        bouncer().run((BLANK,), 3)


@settings(deadline=None, max_examples=40)
@given(machine_inputs(halting=True), st.integers(0, 80))
def test_random_machines_read_their_input_first(case, steps):
    machine, word = case
    trace = machine.run(word, steps)
    n = len(word) + 1
    assert all(c >= 0 for c in trace.heads)
    assert all(abs(m) == 1 for m in trace.moves)
    assert trace.heads[: n + 1] == tuple(range(min(n, trace.steps) + 1))


def test_random_machine_generator(kt_seed):
    m = random_machine(kt_seed, num_states=5, num_symbols=4, num_halting=1)
    assert m == random_machine(kt_seed, num_states=5, num_symbols=4, num_halting=1)
    assert m.halting == frozenset({4}) and m.num_read_states <= 4
    assert len(random_word(kt_seed, m, 7)) == 7


# ---------------------------------------------------------------------------------------------------
# The exact Pérez et al. construction
# ---------------------------------------------------------------------------------------------------


@settings(deadline=None, max_examples=15)
@given(machine_inputs(max_states=5, max_symbols=3, max_length=6), st.integers(50, 60))
def test_perez_trace_matches_interpreter(case, steps):
    machine, word = case
    assert PerezTransformer(machine).run(word, steps) == machine.run(word, steps)


@settings(deadline=None, max_examples=5)
@given(machine_inputs(max_states=5, max_symbols=3, max_length=4, halting=True))
def test_perez_stops_at_halting_states(case):
    machine, word = case
    assert PerezTransformer(machine).run(word, 50) == machine.run(word, 50)


def test_perez_is_a_transformer_of_width_2q_4s_11():
    m = random_machine(3, num_states=4, num_symbols=4)
    model = PerezTransformer(m)
    assert model.width == 2 * 4 + 4 * 4 + 11
    tr = model.transformer
    assert len(tr.encoder) == 1 and len(tr.decoder) == 3
    attentions = [tr.decoder[0].cross_attention, tr.decoder[1].self_attention, tr.decoder[2].self_attention]
    for att in attentions:
        for lin in (att.query, att.key, att.value):
            assert isinstance(lin, Linear) and lin.weight.dtype == object
            assert all(isinstance(v, Fraction) for v in lin.weight.ravel())
        assert isinstance(att.selection, Hardmax) and att.score == "neg_abs"
    assert len(tr.decoder[0].feed_forward.layers) == 2  # δ: one hidden σ-layer
    assert not np.any(tr.decoder[1].self_attention.query.weight != 0)  # layer 2: Q = K = 0
    assert not np.any(tr.decoder[1].self_attention.key.weight != 0)


def test_perez_intermediate_values_are_exact(kt_seed):
    machine = random_machine(kt_seed, num_states=5, num_symbols=4)
    word = random_word(kt_seed, machine, 5)
    steps = 40
    ref = machine.run(word, steps)
    model = PerezTransformer(machine)
    lay = model.layout
    dec = model.decode(word, steps, record=True)
    n = len(word) + 1
    for t, (z1, z2, z3) in enumerate(dec.layers):
        assert z1[lay.x5] == min(t + 1, n - 1)  # layer 1 read input cell t + 1 (or the last one)
        assert z2[lay.x3] == Fraction(ref.heads[t + 1], t + 1)  # layer 2: c(t+1)/(t+1)
        assert z2[lay.x4] == Fraction(ref.heads[t], t + 1)  # and c(t)/(t+1)
        visits = [j for j in range(t + 1) if ref.heads[j] == ref.heads[t + 1]]
        assert z3[lay.x6] == (visits[-1] if visits else t) + 1  # layer 3: last visit, or t on a first visit
        assert z3[lay.x7] == (0 if visits else 1)


def test_incremental_decoding_equals_recomputing_the_prefix(kt_seed):
    """The cached decoder (keys and values of earlier positions) equals running the decoder afresh on each
    prefix y_0..y_t: causal attention, nothing leaks from later positions."""
    machine = random_machine(kt_seed, num_states=4, num_symbols=4)
    word = random_word(kt_seed, machine, 3)
    model = PerezTransformer(machine)
    dec = model.decode(word, 12)
    tr, memory = model.transformer, model.encoder_inputs(word)
    for t in range(len(dec.outputs)):
        zs = list(dec.inputs[: t + 1])
        for layer in tr.decoder:
            att = layer.self_attention
            if att is not None:
                keys = np.array([att.key(z) for z in zs])
                values = np.array([att.value.compact(z) for z in zs])
                zs = [z + att.attend(z, keys[: i + 1], values[: i + 1]) for i, z in enumerate(zs)]
            if layer.cross_attention is not None:
                c = layer.cross_attention
                ck = np.array([c.key(x) for x in memory])
                cv = np.array([c.value.compact(x) for x in memory])
                zs = [z + c.attend(z, ck, cv) for z in zs]
            if layer.feed_forward is not None:
                zs = [z + layer.feed_forward(z) for z in zs]
        assert np.array_equal(zs[t], dec.outputs[t])


def test_exact_construction_refuses_soft_selections():
    with pytest.raises(ValueError, match="exact construction uses hardmax"):
        PerezTransformer(bouncer(), selections={3: ExpScore(1.0)})
    with pytest.raises(ValueError, match="decoder layers"):
        PerezTransformer(bouncer(), exact=False, selections={4: ExpScore(1.0)})


def test_construction_error_on_a_broken_matrix():
    """The exactness checks are live: corrupt one weight of δ and the next embedding is not one-hot."""
    model = PerezTransformer(bouncer())
    ffn = model.transformer.decoder[0].feed_forward
    weight = ffn.layers[1].weight.copy()
    weight[model.layout.q2[0], 0] = Fraction(1, 2)  # δ(0, ⊔) now half-enters state 0
    ffn.layers[1] = Linear(weight)
    with pytest.raises(ConstructionError):
        model.run((A, B), 10)


# ---------------------------------------------------------------------------------------------------
# Float64: Pérez matrices with exp(β·score), and the bit construction
# ---------------------------------------------------------------------------------------------------


def test_perez_float64_hardmax_and_large_beta(kt_seed):
    machine = random_machine(kt_seed, num_states=5, num_symbols=4)
    word = random_word(kt_seed, machine, 4)
    ref = machine.run(word, 120)
    assert PerezTransformer(machine, exact=False).run(word, 120) == ref
    beta3 = 2 * K.layer3_sufficient_beta(ref) + 1.0
    sel = {1: ExpScore(3.0), 2: ExpScore(1.0), 3: ExpScore(beta3)}
    assert PerezTransformer(machine, exact=False, selections=sel).run(word, 120) == ref


@settings(deadline=None, max_examples=15)
@given(machine_inputs(max_states=5, max_symbols=3, max_length=8))
def test_bit_trace_matches_interpreter(case):
    machine, word = case
    ref = machine.run(word, 62)
    assert BitTransformer(machine, 6).run(word, 62) == ref
    assert BitTransformer(machine, 6, selections={1: ExpScore(3.0), 3: ExpScore(3.0)}).run(word, 62) == ref


@settings(deadline=None, max_examples=4)
@given(machine_inputs(max_states=5, max_symbols=3, max_length=6))
def test_bit_construction_is_exact_in_rationals(case):
    machine, word = case
    model = BitTransformer(machine, 5, exact=True)
    assert model.strict
    assert model.run(word, 30) == machine.run(word, 30)


def test_bit_counter_network_adds_the_move():
    model = BitTransformer(bouncer(), 4, exact=True)
    lay, net = model.layout, counter_network(model.layout)
    for c, m in itertools.product(range(16), (-1, 1)):
        if not 0 <= c + m < 16:
            continue
        y = model.embed(0, 0, 0, c, 0)
        y[lay.x2] = Fraction(m)
        out = net(y)
        assert [out[i] for i in lay.cn] == list(bits(c + m, 4))


def test_bit_scores_are_integers_with_gaps_at_least_two(kt_seed):
    machine = random_machine(kt_seed, num_states=5, num_symbols=4)
    word = random_word(kt_seed, machine, 4)
    model = BitTransformer(machine, 5, exact=True)
    dec = model.decode(word, 30, record=True)
    memory = model.encoder_inputs(word)
    cross, last = model.transformer.decoder[0].cross_attention, model.transformer.decoder[2].self_attention
    enc_keys = np.array([cross.key(x) for x in memory])
    layer3_inputs = [layers[1] for layers in dec.layers]
    for t, z in enumerate(dec.inputs[: len(dec.outputs)]):
        for att, q_in, keys in (
            (cross, z, enc_keys),
            (last, layer3_inputs[t], np.array([last.key(x) for x in layer3_inputs[: t + 1]])),
        ):
            s = sorted(att.scores(att.query(q_in), keys), reverse=True)
            assert all(v.denominator == 1 for v in s)
            if len(s) > 1:
                assert s[0] - s[1] >= 2


def test_bit_construction_refuses_long_runs():
    with pytest.raises(ValueError, match="2\\^b − 2"):
        BitTransformer(bouncer(), 3).run((A,), 7)


# ---------------------------------------------------------------------------------------------------
# (a) minimal β of exp(β·score)
# ---------------------------------------------------------------------------------------------------


def test_minimal_beta_bisection():
    assert K.minimal_beta(lambda beta: beta >= 3.7, rel_tol=1e-3) == pytest.approx(3.7, rel=2e-3)
    assert K.minimal_beta(lambda beta: True) == 1e-2
    assert K.minimal_beta(lambda beta: False, max_beta=1e6) == math.inf


def test_perez_layer1_needs_only_a_constant_beta(kt_seed):
    """Score −|t + 1 − j|: the softmax tail is geometric, so β > 2.25 suffices for every input length
    (proofs/turing.md, Proposition 3); the prediction O(log n) is not tight."""
    machine = random_machine(kt_seed, num_states=5, num_symbols=4)
    for n in (8, 32):
        word = random_word(kt_seed + n, machine, n - 1)
        beta = K.perez_minimal_beta(machine, word, n + 8, layer=1, rel_tol=0.05)
        assert beta <= K.PEREZ_LAYER1_BETA


def test_perez_layer3_minimal_beta_below_the_sufficient_bound(kt_seed):
    machine = random_machine(kt_seed, num_states=5, num_symbols=4)
    word = random_word(kt_seed, machine, 4)
    for steps in (16, 40):
        beta = K.perez_minimal_beta(machine, word, steps, layer=3, rel_tol=0.05)
        assert beta <= 1.05 * max(K.layer3_sufficient_beta(machine.run(word, steps)), 1e-2)


def test_perez_layer3_minimal_beta_grows_like_a_power_of_T():
    """A machine that keeps revisiting a bounded region (seed 6): β_min grows faster than T⁴ between
    T = 16 and T = 48, as the Θ(T⁻⁵) gap predicts; a small β breaks the trace (the check can fail)."""
    machine = random_machine(6, num_states=5, num_symbols=4)
    word = random_word(6, machine, 4)
    b16 = K.perez_minimal_beta(machine, word, 16, layer=3, rel_tol=0.05)
    b48 = K.perez_minimal_beta(machine, word, 48, layer=3, rel_tol=0.05)
    assert b48 / b16 > 3.0**4
    small = PerezTransformer(machine, exact=False, selections={3: ExpScore(b48 / 2)})
    assert small.first_error(word, machine.run(word, 48)) is not None


def test_layer3_gap_formulas():
    # a revisit two steps after the previous visit, and a first visit against c(t)'s earlier visit
    t = 50
    assert K.revisit_gap(t, t - 1, t - 3) == pytest.approx(4 / (3 * t**5), rel=0.15)
    assert K.first_visit_gap(t, t - 2) == pytest.approx(2 / t**3, rel=0.1)
    # exactly the gap of layer3_products for a head that stepped back from cell 5 at t − 2, returned at t, and moves
    # on to a cell it never visited (c(t + 1) = 5 + move; the cells before t − 2 lie far away)
    for move in (1, -1):
        heads = [-100] * (t - 2) + [5, 5 - move, 5, 5 + move]
        products = K.layer3_products(types.SimpleNamespace(heads=heads), t)
        gap = abs(products[t - 2]) - abs(products[t])
        assert K.first_visit_gap(t, t - 2, move) == pytest.approx(gap, rel=1e-12), move
    # and the revisit gap: cell 5 visited at t − 3 and t − 1, the head back on it at t + 1
    heads = [-100] * (t - 3) + [5, 6, 5, 6, 5]
    products = K.layer3_products(types.SimpleNamespace(heads=heads), t)
    assert K.revisit_gap(t, t - 1, t - 3) == pytest.approx(abs(products[t - 3]) - abs(products[t - 1]), rel=1e-12)


def test_bit_minimal_beta_stays_small(kt_seed):
    machine = random_machine(kt_seed, num_states=5, num_symbols=4)
    word = random_word(kt_seed, machine, 5)
    for b in (4, 6):
        steps = 2**b - 2
        assert K.bit_minimal_beta(machine, word, steps, b, rel_tol=0.05) <= 2.0


# ---------------------------------------------------------------------------------------------------
# (b) the exact cosh/sinh feature map
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("b", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("beta", [0.3, 1.0, 2.5])
def test_cosh_sinh_map_is_exact(b, beta):
    x = torch.tensor([bits(i, b) for i in range(2**b)], dtype=F64)
    target = torch.exp(beta * x @ x.T)
    fm = K.CoshSinhMap(beta)
    assert fm.query(x).shape == (2**b, 2**b)
    sym = K.symmetric_features(x, beta)
    # float64: the 2^b signed terms cancel, so the error is relative to the largest entry e^{βb}
    # (an entry e^{−βb} carries a relative error ~ 1e-16·e^{2βb}); attention weights are normalised by it
    for gram in (fm.query(x) @ fm.key(x).T, sym @ sym.T):
        assert float((gram - target).abs().max()) <= 1e-13 * float(target.max())
        assert bool((gram.diagonal() / target.diagonal() - 1).abs().max() < 1e-12)


def test_cosh_sinh_map_with_real_queries(kt_generator):
    k = torch.tensor([bits(i, 5) for i in range(32)], dtype=F64)
    q = torch.randn(7, 5, generator=kt_generator, dtype=F64)
    fm = K.CoshSinhMap(0.7)
    # exact up to the rounding of a sum of 2⁵ signed terms: |error| ≤ 2·32·ε·Σ|terms| (+ ε of the exponential), not a
    # fixed rtol 1e-12: where q·k < 0 the terms, up to e^{0.7 Σ|q_l|}, cancel to e^{0.7 q·k} (a random seed failed it)
    fq, fk = fm.query(q), fm.key(k)
    eps = torch.finfo(F64).eps
    exact = torch.exp(0.7 * q @ k.T)
    bound = 2 * 32 * eps * (fq.abs() @ fk.abs().T) + 4 * eps * exact
    assert bool(((fq @ fk.T - exact).abs() <= bound).all())
    assert not bool(((K.CoshSinhMap(0.71).query(q) @ fk.T - exact).abs() <= bound).all())  # a 1.4 % β error is not
    with pytest.raises(ValueError, match="±1"):
        fm.key(q)


@pytest.mark.parametrize("beta", [0.5, 2.0, 6.0])
def test_cosh_sinh_linear_attention_equals_softmax_attention(beta, kt_generator):
    x = torch.tensor([bits(i, 5) for i in range(32)], dtype=F64)
    v = torch.randn(32, 4, generator=kt_generator, dtype=F64)
    exact = softmax_attention(x, x, v, scale=beta)
    torch.testing.assert_close(linear_attention(x, x, v, K.CoshSinhMap(beta)), exact, rtol=0, atol=1e-12)
    # ... and it selects: at β = 6 each query puts > 99% of its mass on its own position
    a = attention_matrix(x, x, K.CoshSinhMap(beta))
    assert bool((a.argmax(-1) == torch.arange(32)).all())


@settings(deadline=None, max_examples=8)
@given(machine_inputs(max_states=5, max_symbols=3, max_length=8))
def test_bit_input_lookup_by_linear_attention_is_exact(case):
    machine, word = case
    model = BitTransformer(machine, 5, selections={1: K.LinearSelection(K.CoshSinhMap(3.0))})
    with single_thread():
        assert model.run(word, 30) == machine.run(word, 30)


def test_rational_cosh_sinh_equals_rational_softmax_exactly():
    keys = np.array(
        [[Fraction(v) for v in bits(i, 3) + bits(j, 3)] for i in range(8) for j in range(0, 8, 3)],
        dtype=object,
    )
    values = np.array([[Fraction(i), Fraction(1)] for i in range(len(keys))], dtype=object)
    q = np.array([Fraction(v) for v in (8, -8, 8, 1, 2, 4)], dtype=object)  # [A·bits(c), w]: not ±1
    ratio = Fraction(3)
    scores = keys @ q
    linear = K.rational_cosh_sinh(ratio)(q, keys, None, values)
    soft = RationalExpScore(ratio)(q, keys, scores, values)
    assert list(linear) == list(soft)


def test_bit_construction_with_exact_finite_feature_maps():
    """Both selection layers as linear attention with the finite cosh/sinh maps (D = 2^b for the input
    lookup, 4^b for the last-write lookup), in rational arithmetic with e^β = 8: the trace is exact."""
    machine = random_machine(6, num_states=5, num_symbols=4)
    word = random_word(6, machine, 6)
    sel = {1: K.rational_cosh_sinh(8), 3: K.rational_cosh_sinh(8)}
    assert BitTransformer(machine, 4, exact=True, selections=sel).run(word, 14) == machine.run(word, 14)


# ---------------------------------------------------------------------------------------------------
# (c) random positive features
# ---------------------------------------------------------------------------------------------------


def test_random_positive_features_succeed_only_with_many_features(kt_seed, one_thread):
    machine = random_machine(kt_seed, num_states=4, num_symbols=4)
    word = random_word(kt_seed, machine, 4)
    seeds = range(kt_seed, kt_seed + 10)
    few = sum(K.random_feature_success(machine, word, 6, 3, 2.0, 8, seeds))
    many = sum(K.random_feature_success(machine, word, 6, 3, 2.0, 2**15, seeds))
    assert many >= few + 5


# ---------------------------------------------------------------------------------------------------
# (d) the averaging layer is exact for any normalised kernel
# ---------------------------------------------------------------------------------------------------


def _draw(name, dim, m, seed):
    return E.get(name, dim=dim, num_features=m).draw(torch.Generator().manual_seed(seed))


AVERAGING = {
    "exp_beta_score": lambda seed: ExpScore(0.7),
    "softmax_kernel": lambda seed: K.KernelSelection(kernels.softmax),
    "gaussian_kernel": lambda seed: K.KernelSelection(kernels.gaussian),
    "positive/orthogonal": lambda seed: K.LinearSelection(_draw("positive/orthogonal", 1, 16, seed)),
    "trig/gaussian": lambda seed: K.LinearSelection(_draw("trig/gaussian", 1, 16, seed), stabilise=False),
    "hyperbolic/gaussian": lambda seed: K.LinearSelection(_draw("hyperbolic/gaussian", 1, 4, seed)),
    "elu": lambda seed: K.LinearSelection(_draw("elu", 1, 1, seed)),
}


@pytest.mark.parametrize("name", list(AVERAGING))
def test_averaging_layer_is_exact_for_any_normalised_kernel(name, kt_seed, one_thread):
    machine = random_machine(kt_seed, num_states=5, num_symbols=4)
    word = random_word(kt_seed, machine, 4)
    ref = machine.run(word, 40)
    model = PerezTransformer(machine, exact=False, selections={2: AVERAGING[name](kt_seed)})
    dec = model.decode(word, 40, record=True)
    lay = model.layout
    for t, layers in enumerate(dec.layers):
        assert layers[1][lay.x3] == pytest.approx(ref.heads[t + 1] / (t + 1), abs=1e-12)
        assert layers[1][lay.x4] == pytest.approx(ref.heads[t] / (t + 1), abs=1e-12)
    assert model.run(word, 40) == ref


def test_averaging_needs_a_nonzero_kernel_at_the_common_key(kt_seed):
    """All keys are 0, so the weights are κ(0, 0)/Σ: a map with φ(0) = 0 (ReLU) leaves 0/0, refused."""
    sel = K.LinearSelection(_draw("relu/gaussian", 1, 8, kt_seed), stabilise=False)
    with pytest.raises(ValueError, match="denominator"):
        PerezTransformer(bouncer(), exact=False, selections={2: sel}).run((A,), 5)


# ---------------------------------------------------------------------------------------------------
# The rank obstruction (proofs/rank_bound.md)
# ---------------------------------------------------------------------------------------------------

RANK_MAPS = ["positive/orthogonal", "positive/gaussian", "trig/gaussian", "hyperbolic/gaussian"]


@pytest.mark.parametrize("name", RANK_MAPS)
@pytest.mark.parametrize("m", [2, 5])
def test_attention_matrix_rank_at_most_D(name, m, kt_generator):
    fm = E.get(name, dim=3, num_features=m).draw(kt_generator)
    n = 24
    q = torch.randn(n, 3, generator=kt_generator, dtype=F64)
    k = torch.randn(n, 3, generator=kt_generator, dtype=F64)
    a = attention_matrix(q, k, fm)
    feature_dim = fm.feature_dim
    assert int(torch.linalg.matrix_rank(a)) <= feature_dim < n
    for _ in range(5):
        perm = torch.randperm(n, generator=kt_generator)
        p = torch.eye(n, dtype=F64)[perm]
        assert float(torch.linalg.norm(a - p)) >= K.permutation_distance_bound(n, feature_dim) - 1e-9
        if E.get(name, 3, m).claims.positive:
            assert K.target_mass(a, perm.tolist()) <= feature_dim + 1e-9


@pytest.mark.parametrize("n, rank", [(8, 3), (16, 15), (10, 1)])
def test_eckart_young_bound_is_attained(n, rank, kt_generator):
    p = torch.eye(n, dtype=F64)[torch.randperm(n, generator=kt_generator)]
    assert K.best_rank_error(p, rank) == pytest.approx(math.sqrt(n - rank), rel=1e-12)
    assert K.permutation_distance_bound(n, rank) == pytest.approx(math.sqrt(n - rank))


def test_target_mass_bound_is_attained():
    """One-hot features: the first D queries select their keys exactly, the others all attend to key 0, so
    Σ_i a_{i,i} = D (the bound of proofs/rank_bound.md is tight)."""
    n, d = 10, 4
    idx = torch.tensor([i if i < d else 0 for i in range(n)])
    phi = torch.nn.functional.one_hot(idx, d).to(F64)
    keys = torch.nn.functional.one_hot(torch.tensor([j if j < d else 0 for j in range(n)]), d).to(F64)
    fm = type("OneHot", (), {"query": staticmethod(lambda x: phi), "key": staticmethod(lambda x: keys)})()
    a = attention_matrix(torch.zeros(n, 1, dtype=F64), torch.zeros(n, 1, dtype=F64), fm, stabilise=False)
    assert int(torch.linalg.matrix_rank(a)) == d
    assert K.target_mass(a, range(n)) == pytest.approx(d)


def test_cosh_sinh_map_has_full_rank_on_all_positions():
    """The exact map needs, and has, D = 2^b = n: its attention matrix over all 2^b positions is full rank."""
    x = torch.tensor([bits(i, 4) for i in range(16)], dtype=F64)
    a = attention_matrix(x, x, K.CoshSinhMap(2.0))
    assert int(torch.linalg.matrix_rank(a)) == 16
