"""Turing completeness and kernelized attention (MATH.md §5–6, proofs/turing.md, proofs/rank_bound.md).

* :mod:`~kerneltheory.turing.machine` — normal-form Turing machines, the reference interpreter, random
  machines and hypothesis strategies.
* :mod:`~kerneltheory.turing.layers` — a small exact/float64 Transformer (affine maps, σ-networks, attention
  with a pluggable selection, autoregressive decoding).
* :mod:`~kerneltheory.turing.perez` — the Pérez, Marinković & Barceló construction in rational arithmetic.
* :mod:`~kerneltheory.turing.bits` — the ±1 bit-position construction (float64 or rational).
* :mod:`~kerneltheory.turing.kernelized` — kernel substitutions: exp(β·score), the exact cosh/sinh map,
  random features, kernel averaging, and the rank obstruction.
"""

from .bits import BitTransformer
from .layers import ExpScore, Hardmax, RationalExpScore
from .machine import (
    BLANK,
    MARKER,
    Trace,
    TuringMachine,
    machine_inputs,
    machines,
    random_machine,
    random_word,
)
from .perez import PerezTransformer

__all__ = [
    "BLANK",
    "MARKER",
    "BitTransformer",
    "ExpScore",
    "Hardmax",
    "PerezTransformer",
    "RationalExpScore",
    "Trace",
    "TuringMachine",
    "machine_inputs",
    "machines",
    "random_machine",
    "random_word",
]
