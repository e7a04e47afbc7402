r"""A small Transformer over exact rationals or float64: affine maps, σ-networks, attention with a pluggable
selection rule, encoder and decoder layers, autoregressive decoding.

Conventions of Pérez, Marinković & Barceló (2021, JMLR 22, §3): vectors are rows of width d; an attention
sublayer computes q = Q(x), k_j = K(x_j), v_j = V(x_j) with linear Q, K, V, a score per key (here
``"neg_abs"``: score(q, k) = −|⟨q, k⟩|, their choice, or ``"dot"``: ⟨q, k⟩), a *selection* turning the
scores into weights (hardmax: uniform over the maximising keys, ties averaged; or a normalised kernel), and
adds Σ_j a_j v_j to x (residual). A feed-forward sublayer adds O(x), O a σ-network with σ(x) = min(max(x, 0),
1) (the clamp of Pérez et al., their "piecewise-linear sigmoid"). A decoder layer is self-attention over
positions ≤ t, encoder–decoder attention, feed-forward, each with a residual connection; absent sublayers
are the zero map.

Numbers: a ``Linear`` holds a numpy array of ``fractions.Fraction`` (dtype object; exact arithmetic) or of
float64. Exact matrices are applied through their nonzero pattern (the constructions' matrices are sparse;
the result is the same as ``W @ x``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .._validation import check_real


def is_exact(x: np.ndarray) -> bool:
    return x.dtype == object


def zeros(n: int, exact: bool) -> np.ndarray:
    return np.array([Fraction(0)] * n, dtype=object) if exact else np.zeros(n)


def as_array(values: Sequence, exact: bool) -> np.ndarray:
    if exact:
        return np.array([Fraction(v) for v in values], dtype=object)
    return np.array([float(v) for v in values], dtype=np.float64)


def sigma(x: np.ndarray) -> np.ndarray:
    """σ(x) = min(max(x, 0), 1), elementwise (exact on Fractions)."""
    if is_exact(x):
        zero, one = Fraction(0), Fraction(1)
        return np.array([zero if v < 0 else one if v > 1 else v for v in x], dtype=object)
    return np.clip(x, 0.0, 1.0)


class Linear:
    """x ↦ W x + b with W of shape [out, in] (Fractions or float64)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None = None):
        weight = np.asarray(weight)
        if weight.ndim != 2:
            raise ValueError(f"weight must be a matrix [out, in], got shape {weight.shape}")
        self.weight = weight
        self.bias = zeros(weight.shape[0], is_exact(weight)) if bias is None else np.asarray(bias)
        if self.bias.shape != (weight.shape[0],):
            raise ValueError(f"bias must have shape ({weight.shape[0]},), got {self.bias.shape}")
        self.exact = is_exact(weight)
        # output rows that can be nonzero, and each row's nonzero columns (for exact sparse products); the entries
        # are compared with 0 once (for Fractions each comparison is a Python call)
        nonzero = np.asarray(weight != 0, dtype=bool).reshape(weight.shape)
        self.support = np.array(
            [i for i in range(weight.shape[0]) if nonzero[i].any() or self.bias[i] != 0],
            dtype=int,
        )
        self._rows = [(np.nonzero(nonzero[i])[0], weight[i][nonzero[i]]) for i in range(weight.shape[0])]

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape != (self.weight.shape[1],):
            raise ValueError(f"input must have shape ({self.weight.shape[1]},), got {x.shape}")
        if not self.exact:
            return self.weight @ x + self.bias
        out = self.bias.copy()
        for i in self.support:
            cols, vals = self._rows[i]
            acc = out[i]
            for c, v in zip(cols, vals, strict=True):
                acc = acc + v * x[c]
            out[i] = acc
        return out

    def compact(self, x: np.ndarray) -> np.ndarray:
        """(W x + b) restricted to :attr:`support` (the rows that can be nonzero)."""
        return self(x)[self.support]

    def to_float(self) -> Linear:
        return Linear(self.weight.astype(np.float64), self.bias.astype(np.float64))


@dataclass
class SigmaNetwork:
    """O(x) = A_L σ(A_{L−1} … σ(A_1 x)): L affine maps with σ between them (L − 1 hidden layers)."""

    layers: list[Linear]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = sigma(x)
        return x

    def to_float(self) -> SigmaNetwork:
        return SigmaNetwork([lay.to_float() for lay in self.layers])


# ---------------------------------------------------------------------------------------------------
# Selection rules: scores (or raw queries and keys) → weights over the keys
# ---------------------------------------------------------------------------------------------------


class Selection(abc.ABC):
    """Turns one query and the keys so far into the attended value. ``uses_scores``: whether it works on
    the scores (hardmax, exp(β·score)) or on the raw query/key vectors (kernels, feature maps)."""

    uses_scores = True

    @abc.abstractmethod
    def __call__(self, q: np.ndarray, keys: np.ndarray, scores: np.ndarray | None, values: np.ndarray):
        """The attended value for query ``q`` over ``keys``/``values`` (``scores`` when ``uses_scores``)."""


class Hardmax(Selection):
    """Uniform weights over the keys of maximal score (ties averaged; Pérez et al. §3)."""

    def __call__(self, q, keys, scores, values):
        best = scores == scores.max()
        chosen = values[best]
        total = chosen.sum(axis=0)
        count = int(best.sum())
        return total / (Fraction(count) if is_exact(values) else count)

    def __repr__(self):
        return "Hardmax()"


class ExpScore(Selection):
    """Weights ∝ exp(β·score), the exact softmax kernel of the scores (float64; computed stably as
    softmax(β·score))."""

    def __init__(self, beta: float):
        self.beta = check_real(beta, "beta", minimum=0.0, strict_min=True)

    def __call__(self, q, keys, scores, values):
        s = np.asarray(scores, dtype=np.float64)
        w = np.exp(self.beta * (s - s.max()))
        return (w / w.sum()) @ np.asarray(values, dtype=np.float64)

    def __repr__(self):
        return f"ExpScore(beta={self.beta:g})"


class RationalExpScore(Selection):
    """Weights ∝ r^score = exp(β·score) with β = log r, r > 1 rational and integer scores: the softmax
    kernel in exact arithmetic (used with the bit construction, whose scores are integers)."""

    def __init__(self, ratio: Fraction | int):
        if isinstance(ratio, bool) or not isinstance(ratio, Fraction | int):
            raise TypeError(f"ratio must be a Fraction or an int (exact arithmetic), got {type(ratio).__name__}")
        ratio = Fraction(ratio)
        if ratio <= 1:
            raise ValueError(f"ratio must be > 1, got {ratio}")
        self.ratio = ratio

    def __call__(self, q, keys, scores, values):
        top = scores.max()
        w = []
        for s in scores:
            e = top - s
            if e.denominator != 1:
                raise ValueError(f"RationalExpScore needs integer scores, got {s}")
            w.append(1 / self.ratio ** int(e))
        w = np.array(w, dtype=object)
        return (w @ values) / w.sum()

    def __repr__(self):
        return f"RationalExpScore(ratio={self.ratio})"


# ---------------------------------------------------------------------------------------------------
# Attention, layers, decoding
# ---------------------------------------------------------------------------------------------------


@dataclass
class Attention:
    """One attention sublayer: linear Q (d → d_k), K (d → d_k), V (d → d), a score and a selection."""

    query: Linear
    key: Linear
    value: Linear
    score: str = "neg_abs"
    selection: Selection = field(default_factory=Hardmax)

    def __post_init__(self):
        if self.score not in ("neg_abs", "dot"):
            raise ValueError(f"score must be 'neg_abs' or 'dot', got {self.score!r}")
        if self.query.shape[0] != self.key.shape[0]:
            raise ValueError(f"Q and K must share d_k, got {self.query.shape[0]} and {self.key.shape[0]}")

    def scores(self, q: np.ndarray, keys: np.ndarray) -> np.ndarray:
        dots = keys @ q
        return -abs(dots) if self.score == "neg_abs" else dots

    def attend(self, x: np.ndarray, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
        """The residual increment for the vector x given the cached keys [n, d_k] and compact values."""
        q = self.query(x)
        scores = self.scores(q, keys) if self.selection.uses_scores else None
        out = zeros(self.value.shape[0], is_exact(x))
        out[self.value.support] = self.selection(q, keys, scores, values)
        return out

    def to_float(self, selection: Selection | None = None) -> Attention:
        sel = self.selection if selection is None else selection
        return Attention(self.query.to_float(), self.key.to_float(), self.value.to_float(), self.score, sel)


@dataclass
class EncoderLayer:
    self_attention: Attention | None = None
    feed_forward: SigmaNetwork | None = None


@dataclass
class DecoderLayer:
    self_attention: Attention | None = None
    cross_attention: Attention | None = None
    feed_forward: SigmaNetwork | None = None


@dataclass
class Decoding:
    """What autoregressive decoding produced: the decoder inputs y_0..y_T, the outputs z_0..z_{T−1} and,
    with ``record=True``, every layer's output per step (``layers[t][l]``)."""

    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    tokens: list
    layers: list[list[np.ndarray]]


class Transformer:
    """Encoder layers and decoder layers; :meth:`decode` runs the decoder autoregressively with a cache of
    each layer's keys and values (causal attention, so this equals recomputing the prefix)."""

    def __init__(self, encoder: list[EncoderLayer], decoder: list[DecoderLayer]):
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        xs = [np.array(x) for x in inputs]
        for layer in self.encoder:
            att = layer.self_attention
            if att is not None:
                keys = np.array([att.key(x) for x in xs])
                values = np.array([att.value.compact(x) for x in xs])
                xs = [x + att.attend(x, keys, values) for x in xs]
            if layer.feed_forward is not None:
                xs = [x + layer.feed_forward(x) for x in xs]
        return xs

    def decode(
        self,
        encoder_inputs: Sequence[np.ndarray],
        first: np.ndarray,
        steps: int,
        next_input: Callable[[np.ndarray, int], tuple[object, np.ndarray | None]],
        record: bool = False,
    ) -> Decoding:
        """Run ``steps`` decoder steps from y_0 = ``first``. ``next_input(z_t, t)`` maps the decoder output at
        step t to (token, y_{t+1}), y_{t+1} None to stop."""
        memory = self.encode(encoder_inputs)
        cross = []
        for layer in self.decoder:
            att = layer.cross_attention
            if att is None:
                cross.append(None)
            else:
                cross.append(
                    (np.array([att.key(x) for x in memory]), np.array([att.value.compact(x) for x in memory]))
                )
        key_cache: list[list] = [[] for _ in self.decoder]
        value_cache: list[list] = [[] for _ in self.decoder]
        y = first
        result = Decoding([first], [], [], [])
        for t in range(steps):
            z = y
            per_layer = []
            for i, layer in enumerate(self.decoder):
                att = layer.self_attention
                if att is not None:
                    key_cache[i].append(att.key(z))
                    value_cache[i].append(att.value.compact(z))
                    z = z + att.attend(z, np.array(key_cache[i]), np.array(value_cache[i]))
                if layer.cross_attention is not None:
                    z = z + layer.cross_attention.attend(z, *cross[i])
                if layer.feed_forward is not None:
                    z = z + layer.feed_forward(z)
                if record:
                    per_layer.append(z)
            result.outputs.append(z)
            result.layers.append(per_layer)
            token, y = next_input(z, t)
            result.tokens.append(token)
            if y is None:
                break
            result.inputs.append(y)
        return result
