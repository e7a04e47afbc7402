r"""The construction of Pérez, Marinković & Barceló (2021, "Attention is Turing Complete", JMLR 22, §4 and
App. B) with exact rational arithmetic: a Transformer with one encoder layer and three decoder layers whose
decoder, run autoregressively, emits one machine configuration per step (MATH.md §6, proofs/turing.md).

Width d = 2|Q| + 4|Γ| + 11 (Γ the tape alphabet, blank and marker included). Decoder position t carries

    q1 = ⟦q(t)⟧  s1 = ⟦s(t)⟧  x1 = m(t−1)  |  q2  s2  x2  |  x3  x4  |  s3  x5  |  s4  x6  x7  |  x8..x11

with x8 = t + 1, x9 = 1/(t+1), x10 = 1/(t+1)², x11 = 1 (positional values i, 1/i, 1/i² and a constant),
⟦·⟧ one-hot, m ∈ {−1, +1} the move and c(t) = Σ_{k<t} m(k) the head position.

* Encoder (one layer): position j = 0..n − 1 holds ⟦w_j⟧ in s1 and the positional values of i = j + 1. Its
  attention and feed-forward are zero: the encoder only exposes the input to the decoder, through the
  keys K^e and values V^e of the encoder–decoder attention.
* Decoder layer 1: encoder–decoder attention with q = [x8, x11] = [t + 1, 1] and k_j = [1, −j], so
  score = −|t + 1 − j| (gap 1): it copies ⟦w_{t+1}⟧ into s3 and j into x5 (the last cell n − 1 when t + 1 ≥ n).
  Feed-forward: δ as a two-layer σ-network, one hidden unit σ(⟦q⟧_a + ⟦s⟧_b − 1) per pair (a, b), writing
  ⟦q(t+1)⟧ into q2, the written symbol ⟦v(t)⟧ into s2 and m(t) into x2.
* Decoder layer 2: self-attention with Q = K = 0, so all scores tie and hardmax averages over j ≤ t:
  x3 = Σ_{j≤t} m(j)/(t+1) = c(t+1)/(t+1) and x4 = Σ_{j≤t} m(j−1)/(t+1) = c(t)/(t+1).
* Decoder layer 3: self-attention with q = [x3, x9, x10/3] = [c(t+1)/(t+1), 1/(t+1), 1/(3(t+1)²)] and
  k_j = [x9, −x4, x10] = [1/(j+1), −c(j)/(j+1), 1/(j+1)²], so ⟨q, k_j⟩ = (c(t+1) − c(j))/((t+1)(j+1))
  + 1/(3(t+1)²(j+1)²): the maximiser of −|⟨q, k_j⟩| is the last step ℓ ≤ t at cell c(t+1) when there is one
  (score gap Θ(t⁻⁵)), and otherwise j = t itself (a first visit arrives from c(t) = c(t+1) − 1). It copies
  ⟦v(j*)⟧ into s4 and j* + 1 into x6. Feed-forward (two hidden σ-layers): u = σ(x8 − x5) = [not reading
  the input], w = σ(x8 − x6) = [visited before, i.e. j* ≠ t]; it overwrites s4 with ⟦s(t+1)⟧, which is
  ⟦w_{t+1}⟧ if u = 0, ⟦v(ℓ)⟧ if u = w = 1 and ⟦⊔⟧ if u = 1, w = 0, and sets x7 = 1 − w (first visit).
* Output: y_{t+1} = F(z_t) + pos(t + 1) with the linear F: q2 → q1, s4 → s1, x2 → x1 (Pérez's final map).

Deviations. This follows MATH.md §6's summary of the paper (layer structure, score −|⟨q, k⟩|, hardmax with
ties averaged, positional values i, 1/i, 1/i², width, the three lookups and their queries and keys), not the
paper's appendix entry by entry. Where the encoding may differ (proofs/turing.md §2): (1) the normal form is
made structural by a left-end marker ⊢ at cell 0 and read states (:mod:`kerneltheory.turing.machine`);
(2) a first visit is recognised by the layer-3 hardmax landing on the query position itself (j* = t),
tested through the positional value x8 = t + 1 carried as a value; (3) layer 3's feed-forward has two
hidden σ-layers (δ's has one); (4) the decoder's output token is read off z_t and re-embedded: in exact
arithmetic this *is* y_{t+1} = F(z_t) + pos(t+1), which is checked at every step; (5) decoder layer 1 has
no self-attention and layers 2–3 no encoder–decoder attention (zero sublayers).
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


class ConstructionError(AssertionError):
    """An exact construction produced a vector that is not an exact embedding (a bug, never expected)."""


@dataclass(frozen=True)
class Layout:
    """Named coordinates of the width-d vectors (one-hot blocks as ranges, scalars as indices)."""

    num_states: int
    num_symbols: int

    def __post_init__(self):
        q, g = self.num_states, self.num_symbols
        names = [("q1", q), ("s1", g), ("x1", 1), ("q2", q), ("s2", g), ("x2", 1), ("x3", 1), ("x4", 1),
                 ("s3", g), ("x5", 1), ("s4", g), ("x6", 1), ("x7", 1), ("x8", 1), ("x9", 1), ("x10", 1),
                 ("x11", 1)]  # fmt: skip
        start = 0
        for name, size in names:
            object.__setattr__(
                self, name, range(start, start + size) if size > 1 or name[0] in "qs" else start
            )
            start += size
        object.__setattr__(self, "width", start)


def _matrix(rows: int, cols: int) -> np.ndarray:
    return np.array([[Fraction(0)] * cols for _ in range(rows)], dtype=object)


def delta_network(machine: TuringMachine, lay: Layout) -> SigmaNetwork:
    """δ as a two-layer σ-network: h_{a,b} = σ(q1_a + s1_b − 1) = [q = a and s = b];
    q2 += Σ h ⟦δ_q⟧, s2 += Σ h ⟦δ_s⟧, x2 += Σ h δ_m."""
    pairs = [(a, b) for a in range(machine.num_states) for b in range(machine.num_symbols)]
    w1, b1 = _matrix(len(pairs), lay.width), np.array([Fraction(-1)] * len(pairs), dtype=object)
    w2 = _matrix(lay.width, len(pairs))
    for h, (a, b) in enumerate(pairs):
        w1[h, lay.q1[a]] = w1[h, lay.s1[b]] = Fraction(1)
        q2, s2, m = machine.delta(a, b)
        w2[lay.q2[q2], h] = w2[lay.s2[s2], h] = Fraction(1)
        w2[lay.x2, h] = Fraction(m)
    return SigmaNetwork([Linear(w1, b1), Linear(w2)])


def symbol_network(lay: Layout, num_symbols: int) -> SigmaNetwork:
    """Layer 3's feed-forward: the symbol under the head at t + 1 from the input lookup (s3, x5) and the
    last-write lookup (s4, x6), written into s4 (its old content subtracted), and the first-visit flag x7."""
    g = num_symbols
    # hidden 1: u = σ(x8 − x5), w = σ(x8 − x6), pass-throughs σ(s3), σ(s4)
    n1 = 2 + 2 * g
    w1 = _matrix(n1, lay.width)
    w1[0, lay.x8], w1[0, lay.x5] = Fraction(1), Fraction(-1)
    w1[1, lay.x8], w1[1, lay.x6] = Fraction(1), Fraction(-1)
    for a in range(g):
        w1[2 + a, lay.s3[a]] = Fraction(1)
        w1[2 + g + a, lay.s4[a]] = Fraction(1)
    # hidden 2: A_a = σ(s3_a − u), B_a = σ(s4_a + u + w − 2), C = σ(u − w), P_a = σ(s4_a), N = σ(1 − w)
    n2 = 3 * g + 2
    w2, b2 = _matrix(n2, n1), np.array([Fraction(0)] * n2, dtype=object)
    u, w = 0, 1
    for a in range(g):
        w2[a, 2 + a], w2[a, u] = Fraction(1), Fraction(-1)
        w2[g + a, 2 + g + a] = w2[g + a, u] = w2[g + a, w] = Fraction(1)
        b2[g + a] = Fraction(-2)
        w2[2 * g + a, 2 + g + a] = Fraction(1)
    c_unit, n_unit = 3 * g, 3 * g + 1
    w2[c_unit, u], w2[c_unit, w] = Fraction(1), Fraction(-1)
    w2[n_unit, w], b2[n_unit] = Fraction(-1), Fraction(1)
    # output: s4 += A + B + [a = ⊔]·C − P; x7 += N
    w3 = _matrix(lay.width, n2)
    for a in range(g):
        w3[lay.s4[a], a] = w3[lay.s4[a], g + a] = Fraction(1)
        w3[lay.s4[a], 2 * g + a] = Fraction(-1)
    w3[lay.s4[BLANK], c_unit] += Fraction(1)
    w3[lay.x7, n_unit] = Fraction(1)
    return SigmaNetwork([Linear(w1), Linear(w2, b2), Linear(w3)])


def _linear(lay: Layout, rows: int, entries: Sequence[tuple[int, int, Fraction]]) -> Linear:
    w = _matrix(rows, lay.width)
    for r, c, v in entries:
        w[r, c] = Fraction(v)
    return Linear(w)


def _value(lay: Layout, entries: Sequence[tuple[int, int, Fraction]]) -> Linear:
    """A d → d value map writing column c of the input into row r of the residual stream."""
    return _linear(lay, lay.width, entries)


def build_layers(machine: TuringMachine, lay: Layout) -> tuple[list[EncoderLayer], list[DecoderLayer]]:
    """The exact (Fraction) encoder and decoder layers, every selection a hardmax."""
    g = machine.num_symbols
    zero_value = _value(lay, [])
    encoder = [EncoderLayer(Attention(_linear(lay, 1, []), _linear(lay, 1, []), zero_value), None)]
    # layer 1: read input cell t + 1 (encoder–decoder), then δ
    cross1 = Attention(
        query=_linear(lay, 2, [(0, lay.x8, 1), (1, lay.x11, 1)]),
        key=_linear(lay, 2, [(0, lay.x11, 1), (1, lay.x11, 1), (1, lay.x8, -1)]),
        value=_value(
            lay, [*((lay.s3[a], lay.s1[a], 1) for a in range(g)), (lay.x5, lay.x8, 1), (lay.x5, lay.x11, -1)]
        ),
    )
    layer1 = DecoderLayer(None, cross1, delta_network(machine, lay))
    # layer 2: average the moves over all positions (all queries and keys 0)
    avg = Attention(
        query=_linear(lay, 1, []),
        key=_linear(lay, 1, []),
        value=_value(lay, [(lay.x3, lay.x2, 1), (lay.x4, lay.x1, 1)]),
    )
    layer2 = DecoderLayer(avg, None, None)
    # layer 3: last step that visited cell c(t + 1), then the symbol logic
    last = Attention(
        query=_linear(lay, 3, [(0, lay.x3, 1), (1, lay.x9, 1), (2, lay.x10, Fraction(1, 3))]),
        key=_linear(lay, 3, [(0, lay.x9, 1), (1, lay.x4, -1), (2, lay.x10, 1)]),
        value=_value(lay, [*((lay.s4[a], lay.s2[a], 1) for a in range(g)), (lay.x6, lay.x8, 1)]),
    )
    layer3 = DecoderLayer(last, None, symbol_network(lay, g))
    return encoder, [layer1, layer2, layer3]


def readout_matrix(lay: Layout, num_states: int, num_symbols: int) -> Linear:
    """Pérez's final linear map F: q2 → q1, s4 → s1, x2 → x1 (positional values are added separately)."""
    entries = [(lay.q1[a], lay.q2[a], 1) for a in range(num_states)]
    entries += [(lay.s1[a], lay.s4[a], 1) for a in range(num_symbols)]
    entries.append((lay.x1, lay.x2, 1))
    return _value(lay, entries)


def expected_tokens(reference: Trace) -> list[tuple[int, int, int, int]]:
    """The tokens (q(t+1), s(t+1), v(t), m(t)) a construction must emit to reproduce ``reference``."""
    return list(
        zip(reference.states[1:], reference.symbols[1:], reference.writes, reference.moves, strict=True)
    )


def check_construction(machine, exact, selections, layers: tuple[int, ...]) -> dict[int, Selection]:
    """Validate a construction's arguments: a :class:`TuringMachine`, a bool ``exact`` and ``selections``
    (None or a mapping from the decoder layers ``layers`` to :class:`Selection` rules), as a dict."""
    if not isinstance(machine, TuringMachine):
        raise TypeError(f"machine must be a TuringMachine, got {type(machine).__name__}")
    if not isinstance(exact, bool):
        raise TypeError(f"exact must be a bool, got {type(exact).__name__}")
    if selections is None:
        return {}
    if not isinstance(selections, Mapping):
        raise TypeError(f"selections must be a mapping {{layer: Selection}}, got {type(selections).__name__}")
    bad = sorted((k for k in selections if k not in layers), key=repr)
    if bad:
        raise ValueError(f"selections keys must be the decoder layers {layers}, got {bad}")
    for k, sel in selections.items():
        if not isinstance(sel, Selection):
            raise TypeError(f"selections[{k}] must be a Selection (e.g. Hardmax()), got {type(sel).__name__}")
    return dict(selections)


class Construction:
    """Autoregressive decoding shared by the constructions: subclasses provide ``machine``,
    ``transformer``, ``encoder_inputs(word)``, ``first_input(word)`` and ``_next(z_t, t) -> (token, y_{t+1})``."""

    machine: TuringMachine
    transformer: Transformer

    def decode(
        self, word: Sequence[int], steps: int, record: bool = False, reference: Trace | None = None
    ) -> Decoding:
        """Decode ``steps`` steps; with a ``reference`` trace, stop at the first token that differs from it."""
        steps = check_int(steps, "steps", minimum=0)
        if reference is not None and not isinstance(reference, Trace):
            raise TypeError(f"reference must be a Trace or None, got {type(reference).__name__}")
        expected = None if reference is None else expected_tokens(reference)

        def step(z, t):
            tok, y = self._next(z, t)
            if expected is not None and (t >= len(expected) or tok != expected[t]):
                return tok, None
            return tok, y

        return self.transformer.decode(self.encoder_inputs(word), self.first_input(word), steps, step, record)

    def run(self, word: Sequence[int], steps: int) -> Trace:
        """The trace the Transformer computes, comparable with ``machine.run(word, steps)``."""
        return trace_from_tokens(self.machine.tape(word), self.decode(word, steps).tokens)

    def first_error(self, word: Sequence[int], reference: Trace) -> int | None:
        """The first step whose emitted token differs from ``reference`` (None: the trace is exact)."""
        expected = expected_tokens(reference)
        tokens = self.decode(word, reference.steps, reference=reference).tokens
        for t, tok in enumerate(tokens):
            if tok != expected[t]:
                return t
        return None if len(tokens) == len(expected) else len(tokens)


class PerezTransformer(Construction):
    """The Pérez et al. Transformer for one machine.

    ``exact=True`` (default): Fractions and hardmax everywhere (the construction proper). ``exact=False``:
    the same matrices in float64, with ``selections`` = {1: ..., 2: ..., 3: ...} replacing the hardmax of
    decoder layer 1 (input lookup), 2 (averaging) or 3 (last-write lookup), e.g. by
    :class:`~kerneltheory.turing.layers.ExpScore` or a kernel from :mod:`kerneltheory.turing.kernelized`.
    In float mode the emitted token is the argmax of each one-hot block and the sign of the move.

    >>> from kerneltheory.turing.machine import random_machine
    >>> m = random_machine(0, num_states=3, num_symbols=3)
    >>> PerezTransformer(m).run((2, 2), steps=20) == m.run((2, 2), steps=20)
    True
    """

    def __init__(
        self,
        machine: TuringMachine,
        exact: bool = True,
        selections: Mapping[int, Selection] | None = None,
    ):
        selections = check_construction(machine, exact, selections, (1, 2, 3))
        self.machine = machine
        self.exact = exact
        self.layout = lay = Layout(machine.num_states, machine.num_symbols)
        encoder, decoder = build_layers(machine, lay)
        self.readout = readout_matrix(lay, machine.num_states, machine.num_symbols)
        if self.exact and any(not isinstance(s, Hardmax) for s in selections.values()):
            raise ValueError("the exact construction uses hardmax; pass exact=False to substitute selections")
        if not self.exact:
            encoder = [EncoderLayer(layer.self_attention.to_float(), None) for layer in encoder]
            decoder = [
                DecoderLayer(
                    None if d.self_attention is None else d.self_attention.to_float(selections.get(i + 1)),
                    None if d.cross_attention is None else d.cross_attention.to_float(selections.get(i + 1)),
                    None if d.feed_forward is None else d.feed_forward.to_float(),
                )
                for i, d in enumerate(decoder)
            ]
            self.readout = self.readout.to_float()
        self.transformer = Transformer(encoder, decoder)

    @property
    def width(self) -> int:
        return self.layout.width

    def _num(self, v):
        return Fraction(v) if self.exact else float(v)

    def positional(self, t: int) -> np.ndarray:
        """pos(t): x8 = t + 1, x9 = 1/(t+1), x10 = 1/(t+1)², x11 = 1."""
        lay, i = self.layout, Fraction(t + 1)
        y = zeros(lay.width, self.exact)
        y[lay.x8], y[lay.x9], y[lay.x10], y[lay.x11] = (self._num(v) for v in (i, 1 / i, 1 / i**2, 1))
        return y

    def embed(self, state: int, symbol: int, move: int, t: int) -> np.ndarray:
        """y_t = [⟦q⟧, ⟦s⟧, m(t−1), 0, ..., 0] + pos(t)."""
        lay = self.layout
        y = self.positional(t)
        y[lay.q1[state]] = self._num(1)
        y[lay.s1[symbol]] = self._num(1)
        y[lay.x1] = self._num(move)
        return y

    def encoder_inputs(self, word: Sequence[int]) -> list[np.ndarray]:
        lay = self.layout
        out = []
        for j, a in enumerate(self.machine.tape(word)):
            x = self.positional(j)
            x[lay.s1[a]] = self._num(1)
            out.append(x)
        return out

    def _block(self, y: np.ndarray, block: range, name: str, t: int) -> int:
        vals = y[list(block)]
        if self.exact:
            ones = [i for i, v in enumerate(vals) if v == 1]
            if len(ones) != 1 or any(v != 0 for i, v in enumerate(vals) if i != ones[0]):
                raise ConstructionError(f"step {t}: block {name} is not one-hot: {list(vals)}")
            return ones[0]
        return int(np.argmax(vals))

    def token(self, z: np.ndarray, t: int) -> tuple[int, int, int, int]:
        """(q(t+1), s(t+1), v(t), m(t)) read off the decoder output z_t."""
        lay = self.layout
        q = self._block(z, lay.q2, "q2", t)
        written = self._block(z, lay.s2, "s2", t)
        f = self.readout(z)
        s = self._block(f, lay.s1, "F(z)[s1]", t)
        m = f[lay.x1]
        if self.exact and m not in (-1, 1):
            raise ConstructionError(f"step {t}: the move {m} is not ±1")
        return q, s, written, (1 if m > 0 else -1)

    def _next(self, z: np.ndarray, t: int):
        q, s, written, m = tok = self.token(z, t)
        y = self.embed(q, s, m, t + 1)
        if self.exact and not np.array_equal(self.readout(z) + self.positional(t + 1), y):
            raise ConstructionError(f"step {t}: F(z_t) + pos(t+1) is not the embedding of {tok}")
        return tok, (None if q in self.machine.halting else y)

    def first_input(self, word: Sequence[int]) -> np.ndarray:
        return self.embed(0, self.machine.tape(word)[0], 0, 0)


def trace_from_tokens(tape: Sequence[int], tokens: Sequence[tuple[int, int, int, int]]) -> Trace:
    """Assemble a :class:`Trace` from the emitted tokens (q(t+1), s(t+1), v(t), m(t)); c(t) = Σ_{k<t} m(k)."""
    states, symbols, heads, writes, moves = [0], [tape[0]], [0], [], []
    for q, s, written, m in tokens:
        states.append(q)
        symbols.append(s)
        writes.append(written)
        moves.append(m)
        heads.append(heads[-1] + m)
    return Trace(tuple(tape), tuple(states), tuple(symbols), tuple(heads), tuple(writes), tuple(moves))
