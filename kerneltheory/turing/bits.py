r"""A float64 construction with positions as ±1 bit vectors: every attention score is an integer and every
score gap is ≥ 2, so softmax(β·score) with a moderate β reproduces the hardmax trace (MATH.md §6; the
binary positional encodings of Wei, Chen & Ma 2022, "Statistically Meaningful Approximation: a Case Study on
Approximating Turing Machines with Transformers", NeurIPS; proofs/turing.md §3).

bits(i) ∈ {±1}^b is i in binary, least significant bit first, 1 ↦ +1 and 0 ↦ −1. Positions and cells are
< 2^b, so a Transformer with b bits simulates T ≤ 2^b − 2 steps. Decoder position t carries

    q1 = ⟦q(t)⟧  s1 = ⟦s(t)⟧  x1 = m(t−1)  cb = bits(c(t))  tb = bits(t)  nb = bits(t+1)  one = 1
    q2  s2  x2  cn  |  s3  e  |  s4  r4  x7

(width 2|Q| + 4|Γ| + 5b + 5). The encoder holds 2^b positions: ⟦w_j⟧ for j < n and ⟦⊔⟧ with the end flag
e = 1 for n ≤ j < 2^b (the blank tape after the input), with tb = bits(j).

* Decoder layer 1: encoder–decoder attention, q = nb = bits(t+1), k_j = bits(j), score ⟨q, k_j⟩ = b − 2·
  Hamming(t+1, j) (max b at j = t + 1, gap 2): copies ⟦w_{t+1}⟧ into s3 and the end flag into e.
  Feed-forward: δ (the two-layer σ-network of :func:`kerneltheory.turing.perez.delta_network`).
* Decoder layer 2: no attention; a σ-network adds m(t) = ±1 to the binary counter: cn = bits(c(t) + m(t))
  (bit l flips iff all lower bits are 1 when moving right, all 0 when moving left). This replaces Pérez's
  averaging layer (c(t+1)/(t+1) cannot be compared bitwise); the head position travels in the token.
* Decoder layer 3: self-attention, q = [A·cn, w] with A = 2^b and w_l = 2^l, k_j = [bits(c(j)), bits(j)]:
  score = A(b − 2·Hamming(c(t+1), c(j))) + 2j − (2^b − 1). A matching cell beats every other by
  2A − 2(2^b − 1) = 2, and among the visits of one cell the latest wins by 2(ℓ − j) ≥ 4. Copies ⟦v(j*)⟧
  into s4 and bits(c(j*)) into r4. Feed-forward (two hidden σ-layers): a first visit is r4 ≠ cn (a bitwise
  comparison), and s(t+1) = ⟦w_{t+1}⟧ if e = 0 (still reading), ⟦v(ℓ)⟧ if e = 1 and r4 = cn, ⟦⊔⟧ otherwise.
* Output token (q(t+1), s(t+1), v(t), m(t), c(t+1)), re-embedded at t + 1.

Every selection (layers 1 and 3) may be replaced: ``selections={1: ..., 3: ...}`` takes a
:class:`~kerneltheory.turing.layers.Selection` (hardmax, exp(β·score), a feature map from
:mod:`kerneltheory.turing.kernelized`). ``exact=True`` runs the same network in rational arithmetic (then
soft selections must be exact too: :class:`~kerneltheory.turing.layers.RationalExpScore` or an exact
feature map).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .._validation import check_int
from .layers import (
    Attention,
    DecoderLayer,
    Decoding,
    EncoderLayer,
    Hardmax,
    Linear,
    Selection,
    SigmaNetwork,
    Transformer,
    zeros,
)
from .machine import BLANK, Trace, TuringMachine
from .perez import Construction, ConstructionError, _matrix, check_construction, delta_network


def bits(i: int, b: int) -> tuple[int, ...]:
    """i in binary as ±1, least significant bit first (raises if i ∉ [0, 2^b))."""
    if not 0 <= i < 2**b:
        raise ValueError(f"{i} does not fit in b = {b} bits (positions and cells must be < 2^b)")
    return tuple(1 if (i >> l) & 1 else -1 for l in range(b))


def from_bits(v: Sequence) -> int:
    return sum(1 << l for l, x in enumerate(v) if x > 0)


@dataclass(frozen=True)
class BitLayout:
    num_states: int
    num_symbols: int
    b: int

    def __post_init__(self):
        q, g, b = self.num_states, self.num_symbols, self.b
        names = [("q1", q), ("s1", g), ("x1", 0), ("cb", b), ("tb", b), ("nb", b), ("one", 0),
                 ("q2", q), ("s2", g), ("x2", 0), ("cn", b), ("s3", g), ("e", 0),
                 ("s4", g), ("r4", b), ("x7", 0)]  # fmt: skip
        start = 0
        for name, size in names:
            if size == 0:  # a scalar
                object.__setattr__(self, name, start)
                start += 1
            else:
                object.__setattr__(self, name, range(start, start + size))
                start += size
        object.__setattr__(self, "width", start)


def _lin(lay: BitLayout, rows: int, entries) -> Linear:
    w = _matrix(rows, lay.width)
    for r, c, v in entries:
        w[r, c] += Fraction(v)
    return Linear(w)


def counter_network(lay: BitLayout) -> SigmaNetwork:
    """cn = bits(c + m) from cb = bits(c) and x2 = m ∈ {±1}: F±_l = σ(Σ_{l'<l} β±_{l'} − l + [m = ±1])
    (β+ = (1 + cb)/2, β− = (1 − cb)/2), B_l = σ(β+_l); flip f_l = F+_l + F−_l; new bit = B XOR f =
    σ(B − f) + σ(f − B), mapped back to ±1."""
    b = lay.b
    w1, b1 = _matrix(3 * b, lay.width), np.array([Fraction(0)] * (3 * b), dtype=object)
    half = Fraction(1, 2)
    for bit in range(b):
        up, down, keep = bit, b + bit, 2 * b + bit
        for low in range(bit):
            w1[up, lay.cb[low]] += half
            w1[down, lay.cb[low]] -= half
        b1[up] = b1[down] = Fraction(bit, 2) - bit + half  # Σ_{l'<l} 1/2 − l + 1/2
        w1[up, lay.x2] += half
        w1[down, lay.x2] -= half
        w1[keep, lay.cb[bit]], b1[keep] = half, half
    w2 = _matrix(2 * b, 3 * b)
    for bit in range(b):
        up, down, keep = bit, b + bit, 2 * b + bit
        w2[bit, keep], w2[bit, up], w2[bit, down] = Fraction(1), Fraction(-1), Fraction(-1)
        w2[b + bit, keep], w2[b + bit, up], w2[b + bit, down] = Fraction(-1), Fraction(1), Fraction(1)
    w3, b3 = _matrix(lay.width, 2 * b), np.array([Fraction(0)] * lay.width, dtype=object)
    for bit in range(b):
        w3[lay.cn[bit], bit] = w3[lay.cn[bit], b + bit] = Fraction(2)
        b3[lay.cn[bit]] = Fraction(-1)
    return SigmaNetwork([Linear(w1, b1), Linear(w2), Linear(w3, b3)])


def bit_symbol_network(lay: BitLayout) -> SigmaNetwork:
    """Layer 3's feed-forward: mismatches D±_l = σ(±(cn_l − r4_l)/2), gated E±_l = σ(e ± (cn_l − r4_l)/2 − 1);
    then A_a = σ(s3_a − e), B_a = σ(s4_a + e − 1 − Σ D), C = σ(Σ E), P_a = σ(s4_a), N = σ(Σ D);
    s4 += A + B + [a = ⊔]C − P and x7 += N (first visit)."""
    g, b = lay.num_symbols, lay.b
    half = Fraction(1, 2)
    # hidden 1: u, D+ (b), D− (b), E+ (b), E− (b), p3 (g), p4 (g)
    n1 = 1 + 4 * b + 2 * g
    u, dp, dm, ep, em, p3, p4 = 0, 1, 1 + b, 1 + 2 * b, 1 + 3 * b, 1 + 4 * b, 1 + 4 * b + g
    w1, b1 = _matrix(n1, lay.width), np.array([Fraction(0)] * n1, dtype=object)
    w1[u, lay.e] = Fraction(1)
    for bit in range(b):
        for row, sign, gated in (
            (dp + bit, 1, False),
            (dm + bit, -1, False),
            (ep + bit, 1, True),
            (em + bit, -1, True),
        ):
            w1[row, lay.cn[bit]] += sign * half
            w1[row, lay.r4[bit]] -= sign * half
            if gated:
                w1[row, lay.e] += Fraction(1)
                b1[row] = Fraction(-1)
    for a in range(g):
        w1[p3 + a, lay.s3[a]] = Fraction(1)
        w1[p4 + a, lay.s4[a]] = Fraction(1)
    # hidden 2: A (g), B (g), P (g), C, N
    n2 = 3 * g + 2
    c_unit, n_unit = 3 * g, 3 * g + 1
    w2, b2 = _matrix(n2, n1), np.array([Fraction(0)] * n2, dtype=object)
    for a in range(g):
        w2[a, p3 + a], w2[a, u] = Fraction(1), Fraction(-1)
        w2[g + a, p4 + a], w2[g + a, u], b2[g + a] = Fraction(1), Fraction(1), Fraction(-1)
        w2[2 * g + a, p4 + a] = Fraction(1)
    for bit in range(b):
        for a in range(g):
            w2[g + a, dp + bit] = w2[g + a, dm + bit] = Fraction(-1)
        w2[c_unit, ep + bit] = w2[c_unit, em + bit] = Fraction(1)
        w2[n_unit, dp + bit] = w2[n_unit, dm + bit] = Fraction(1)
    w3 = _matrix(lay.width, n2)
    for a in range(g):
        w3[lay.s4[a], a] = w3[lay.s4[a], g + a] = Fraction(1)
        w3[lay.s4[a], 2 * g + a] = Fraction(-1)
    w3[lay.s4[BLANK], c_unit] += Fraction(1)
    w3[lay.x7, n_unit] = Fraction(1)
    return SigmaNetwork([Linear(w1, b1), Linear(w2, b2), Linear(w3)])


def build_bit_layers(machine: TuringMachine, lay: BitLayout) -> tuple[list[EncoderLayer], list[DecoderLayer]]:
    g, b = machine.num_symbols, lay.b
    encoder = [EncoderLayer(None, None)]
    cross1 = Attention(
        query=_lin(lay, b, [(l, lay.nb[l], 1) for l in range(b)]),
        key=_lin(lay, b, [(l, lay.tb[l], 1) for l in range(b)]),
        value=_lin(lay, lay.width, [*((lay.s3[a], lay.s1[a], 1) for a in range(g)), (lay.e, lay.e, 1)]),
        score="dot",
    )
    layer1 = DecoderLayer(None, cross1, delta_network(machine, lay))
    layer2 = DecoderLayer(None, None, counter_network(lay))
    big = 2**b
    last = Attention(
        query=_lin(
            lay,
            2 * b,
            [*((l, lay.cn[l], big) for l in range(b)), *((b + l, lay.one, 2**l) for l in range(b))],
        ),
        key=_lin(
            lay, 2 * b, [*((l, lay.cb[l], 1) for l in range(b)), *((b + l, lay.tb[l], 1) for l in range(b))]
        ),
        value=_lin(
            lay,
            lay.width,
            [*((lay.s4[a], lay.s2[a], 1) for a in range(g)), *((lay.r4[l], lay.cb[l], 1) for l in range(b))],
        ),
        score="dot",
    )
    layer3 = DecoderLayer(last, None, bit_symbol_network(lay))
    return encoder, [layer1, layer2, layer3]


class BitTransformer(Construction):
    """The bit-position construction for one machine and ``b`` bits (T ≤ 2^b − 2 steps).

    ``exact=False`` (default): float64; ``exact=True``: Fractions. ``selections`` maps decoder layer 1
    (input lookup) and 3 (last-write lookup) to a selection rule (default hardmax).
    """

    def __init__(
        self,
        machine: TuringMachine,
        b: int,
        exact: bool = False,
        selections: Mapping[int, Selection] | None = None,
    ):
        selections = check_construction(machine, exact, selections, (1, 3))
        b = check_int(b, "b", minimum=1)
        self.machine, self.b, self.exact = machine, b, exact
        self.layout = lay = BitLayout(machine.num_states, machine.num_symbols, b)
        encoder, decoder = build_bit_layers(machine, lay)
        self.strict = self.exact and all(isinstance(s, Hardmax) for s in selections.values())
        for i, layer in enumerate(decoder):
            sel = selections.get(i + 1)
            for name in ("self_attention", "cross_attention"):
                att = getattr(layer, name)
                if att is not None:
                    new = att if self.exact else att.to_float()
                    if sel is not None:
                        new = Attention(new.query, new.key, new.value, new.score, sel)
                    setattr(layer, name, new)
            if not self.exact and layer.feed_forward is not None:
                layer.feed_forward = layer.feed_forward.to_float()
        self.transformer = Transformer(encoder, decoder)

    @property
    def width(self) -> int:
        return self.layout.width

    @property
    def max_steps(self) -> int:
        return 2**self.b - 2

    def _vec(self) -> np.ndarray:
        return zeros(self.layout.width, self.exact)

    def _num(self, v):
        return Fraction(v) if self.exact else float(v)

    def embed(self, state: int, symbol: int, move: int, head: int, t: int) -> np.ndarray:
        lay, y = self.layout, self._vec()
        y[lay.q1[state]] = y[lay.s1[symbol]] = y[lay.one] = self._num(1)
        y[lay.x1] = self._num(move)
        for block, value in ((lay.cb, head), (lay.tb, t), (lay.nb, t + 1)):
            for l, v in enumerate(bits(value, self.b)):
                y[block[l]] = self._num(v)
        return y

    def encoder_inputs(self, word: Sequence[int]) -> list[np.ndarray]:
        lay, tape = self.layout, self.machine.tape(word)
        out = []
        for j in range(2**self.b):
            x = self._vec()
            x[lay.s1[tape[j] if j < len(tape) else BLANK]] = self._num(1)
            x[lay.e] = self._num(0 if j < len(tape) else 1)
            x[lay.one] = self._num(1)
            for l, v in enumerate(bits(j, self.b)):
                x[lay.tb[l]] = self._num(v)
            out.append(x)
        return out

    def _onehot(self, z, block, name, t) -> int:
        vals = z[list(block)]
        if self.strict:
            ones = [i for i, v in enumerate(vals) if v == 1]
            if len(ones) != 1 or any(v != 0 for i, v in enumerate(vals) if i != ones[0]):
                raise ConstructionError(f"step {t}: block {name} is not one-hot: {list(vals)}")
            return ones[0]
        return int(np.argmax(np.array(vals, dtype=np.float64)))

    def _next(self, z: np.ndarray, t: int):
        lay = self.layout
        q = self._onehot(z, lay.q2, "q2", t)
        written = self._onehot(z, lay.s2, "s2", t)
        s = self._onehot(z, lay.s4, "s4", t)
        m = 1 if z[lay.x2] > 0 else -1
        cn = [z[i] for i in lay.cn]
        if self.strict and (z[lay.x2] not in (-1, 1) or any(v not in (-1, 1) for v in cn)):
            raise ConstructionError(f"step {t}: move or counter bits not ±1: {z[lay.x2]}, {cn}")
        head = from_bits(cn)
        y = self.embed(q, s, m, head, t + 1) if t + 2 < 2**self.b else None
        return (q, s, written, m), (None if q in self.machine.halting else y)

    def first_input(self, word: Sequence[int]) -> np.ndarray:
        return self.embed(0, self.machine.tape(word)[0], 0, 0, 0)

    def decode(
        self, word: Sequence[int], steps: int, record: bool = False, reference: Trace | None = None
    ) -> Decoding:
        if steps > self.max_steps:
            raise ValueError(
                f"steps must be ≤ 2^b − 2 = {self.max_steps} with b = {self.b} bits, got {steps}"
            )
        return super().decode(word, steps, record, reference)
