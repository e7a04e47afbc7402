r"""Turing machines in the normal form of Pérez, Marinković & Barceló, and their reference interpreter.

Pérez et al. (2021, "Attention is Turing Complete", JMLR 22, §4 and App. B) simulate a machine that (i) always
moves, (ii) never moves left of cell 0, and (iii) first reads its whole input, moving right. The Transformer
constructions of :mod:`kerneltheory.turing.perez` and :mod:`kerneltheory.turing.bits` rely on all three: (i)
and (ii) make the visited cells the interval [0, max c] so that a first visit is recognisable, (iii) lets the
decoder read input cell t + 1 at step t without knowing the head position. This module fixes one concrete,
*structurally checked* normal form (MATH.md §6, proofs/turing.md §1):

* tape alphabet Γ = {0, 1, ..., k − 1} with ``BLANK = 0`` and the left-end marker ``MARKER = 1`` (⊢); the
  letters 2..k − 1 are the input alphabet. The tape initially holds ⊢ w ⊔ ⊔ ..., so the input cells are
  0..n − 1 with n = |w| + 1;
* states Q = {0, ..., |Q| − 1}, initial state 0; the *read states* are 0..r − 1 (r ≥ 1);
* δ(q, s) = (q', s', m) with m ∈ {−1, +1} (always moves), and
  - δ(q, ⊢) = (q', ⊢, +1) for every q, and no other transition writes ⊢: the marker never moves, and the head,
    which turns right on it, never leaves the tape (never left of cell 0);
  - for a read state q and a letter or ⊢ s: δ(q, s) = (q', s', +1) with q' a read state: from the initial
    configuration the machine sweeps its input left to right in read states, so c(t) = t for t ≤ n
    (reads its input first). Read states may write; on the first blank (cell n) anything may happen;
* halting states (optional) are non-read states; the run stops when one is entered.

Any machine can be put in this form (a left-end marker and an input sweep cost O(|Q|·|Γ|) extra states and
symbols), so nothing is lost for Turing completeness; the random machines below are drawn directly in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .._validation import check_int

BLANK = 0
MARKER = 1
LEFT, RIGHT = -1, 1

Transition = tuple[int, int, int]


def _allowed(q: int, s: int, num_states: int, num_symbols: int, num_read: int) -> tuple:
    """(allowed next states, allowed written symbols, allowed moves) of δ(q, s) in the normal form."""
    all_states = tuple(range(num_states))
    read_states = tuple(range(num_read))
    non_marker = tuple(c for c in range(num_symbols) if c != MARKER)
    if s == MARKER:
        return (read_states if q < num_read else all_states), (MARKER,), (RIGHT,)
    if q < num_read and s != BLANK:
        return read_states, non_marker, (RIGHT,)
    return all_states, non_marker, (LEFT, RIGHT)


@dataclass(frozen=True)
class TuringMachine:
    """A deterministic machine in the normal form above; ``transitions[q][s] = (q', s', m)``.

    Raises ``ValueError`` naming the offending argument and transition when the table is not in normal form.
    """

    num_states: int
    num_symbols: int
    transitions: tuple[tuple[Transition, ...], ...]
    num_read_states: int = 1
    halting: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self):
        if not isinstance(self.num_states, int) or self.num_states < 1:
            raise ValueError(f"num_states must be an integer ≥ 1, got {self.num_states!r}")
        if not isinstance(self.num_symbols, int) or self.num_symbols < 2:
            raise ValueError(
                f"num_symbols must be an integer ≥ 2 (blank and marker), got {self.num_symbols!r}"
            )
        if not isinstance(self.num_read_states, int) or not 1 <= self.num_read_states <= self.num_states:
            raise ValueError(
                f"num_read_states must be in [1, num_states = {self.num_states}], got {self.num_read_states!r}"
            )
        halting = frozenset(self.halting)
        object.__setattr__(self, "halting", halting)
        bad = sorted(h for h in halting if not (self.num_read_states <= h < self.num_states))
        if bad:
            raise ValueError(
                f"halting states must be non-read states in [{self.num_read_states}, "
                f"{self.num_states}), got {bad}"
            )
        table = tuple(tuple(tuple(int(v) for v in tr) for tr in row) for row in self.transitions)
        object.__setattr__(self, "transitions", table)
        if len(table) != self.num_states or any(len(row) != self.num_symbols for row in table):
            raise ValueError(
                f"transitions must be a {self.num_states} × {self.num_symbols} table of (q', s', m), "
                f"got {len(table)} rows of lengths {[len(r) for r in table]}"
            )
        for q, row in enumerate(table):
            for s, tr in enumerate(row):
                if len(tr) != 3:
                    raise ValueError(f"transitions[{q}][{s}] must be (q', s', m), got {tr}")
                states, symbols, moves = _allowed(
                    q, s, self.num_states, self.num_symbols, self.num_read_states
                )
                q2, s2, m = tr
                if q2 not in states or s2 not in symbols or m not in moves:
                    raise ValueError(
                        f"transitions[{q}][{s}] = {tr} is not in normal form: q' ∈ {states}, "
                        f"s' ∈ {symbols}, m ∈ {moves} (MARKER = 1 is written only on itself and moves right; "
                        f"read states 0..{self.num_read_states - 1} sweep letters rightwards)"
                    )

    @property
    def letters(self) -> tuple[int, ...]:
        """The input alphabet Γ \\ {⊔, ⊢}."""
        return tuple(range(2, self.num_symbols))

    def delta(self, q: int, s: int) -> Transition:
        return self.transitions[q][s]

    def tape(self, word: Sequence[int]) -> tuple[int, ...]:
        """The input cells 0..n − 1: ⊢ followed by the word (validated)."""
        word = tuple(int(a) for a in word)
        bad = [a for a in word if a not in self.letters]
        if bad:
            raise ValueError(f"word must consist of letters {self.letters} (not blank or marker), got {bad}")
        return (MARKER, *word)

    def run(self, word: Sequence[int], steps: int) -> Trace:
        """The reference interpreter: ``steps`` steps (fewer if a halting state is entered)."""
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be an integer ≥ 0, got {steps!r}")
        cells = dict(enumerate(self.tape(word)))
        q, c = 0, 0
        states, symbols, heads, writes, moves = [q], [cells[0]], [0], [], []
        for _ in range(steps):
            if q in self.halting:
                break
            q, written, m = self.delta(q, cells.get(c, BLANK))
            cells[c] = written
            c += m
            if c < 0:  # impossible in normal form; kept as an assertion of the invariant
                raise AssertionError("the head moved left of cell 0")
            states.append(q)
            symbols.append(cells.get(c, BLANK))
            heads.append(c)
            writes.append(written)
            moves.append(m)
        return Trace(
            tuple(self.tape(word)), tuple(states), tuple(symbols), tuple(heads), tuple(writes), tuple(moves)
        )


@dataclass(frozen=True)
class Trace:
    """A run: ``states[t]``, ``symbols[t]`` (under the head), ``heads[t]`` = c(t) for t = 0..T, and the
    symbol ``writes[t]`` written and move ``moves[t]`` made at step t, for t = 0..T − 1."""

    tape: tuple[int, ...]
    states: tuple[int, ...]
    symbols: tuple[int, ...]
    heads: tuple[int, ...]
    writes: tuple[int, ...]
    moves: tuple[int, ...]

    @property
    def steps(self) -> int:
        return len(self.moves)

    @property
    def pairs(self) -> tuple[tuple[int, int], ...]:
        """(state, symbol under the head) per step: what the constructions must reproduce."""
        return tuple(zip(self.states, self.symbols, strict=True))


def _as_generator(generator) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(check_int(generator, "generator", minimum=0))
    raise TypeError(f"generator must be a torch.Generator or an int seed, got {type(generator).__name__}")


def _pick(options: Sequence, gen: torch.Generator):
    return options[int(torch.randint(len(options), (1,), generator=gen))]


def random_machine(
    generator: torch.Generator | int,
    num_states: int,
    num_symbols: int,
    num_read_states: int | None = None,
    num_halting: int = 0,
) -> TuringMachine:
    """A machine drawn uniformly among normal-form tables (each δ(q, s) uniform over its allowed
    (q', s', m)); ``num_read_states`` uniform in [1, num_states − num_halting] when None; ``num_halting`` halting states
    taken from the last non-read states."""
    gen = _as_generator(generator)
    num_states = check_int(num_states, "num_states", minimum=1)
    num_symbols = check_int(num_symbols, "num_symbols", minimum=2)
    num_halting = check_int(num_halting, "num_halting", minimum=0, maximum=num_states - 1)
    if num_read_states is None:
        num_read_states = 1 + int(torch.randint(num_states - num_halting, (1,), generator=gen))
    num_read_states = check_int(num_read_states, "num_read_states", minimum=1, maximum=num_states)
    if not 0 <= num_halting <= num_states - num_read_states:
        raise ValueError(f"num_halting must be in [0, num_states − num_read_states], got {num_halting}")
    halting = frozenset(range(num_states - num_halting, num_states))
    table = []
    for q in range(num_states):
        row = []
        for s in range(num_symbols):
            states, symbols, moves = _allowed(q, s, num_states, num_symbols, num_read_states)
            row.append((_pick(states, gen), _pick(symbols, gen), _pick(moves, gen)))
        table.append(tuple(row))
    return TuringMachine(num_states, num_symbols, tuple(table), num_read_states, halting)


def random_word(generator: torch.Generator | int, machine: TuringMachine, length: int) -> tuple[int, ...]:
    """A uniform word of ``length`` letters (empty when the machine has no letters)."""
    gen = _as_generator(generator)
    if not isinstance(machine, TuringMachine):
        raise TypeError(f"machine must be a TuringMachine, got {type(machine).__name__}")
    length = check_int(length, "length", minimum=0)
    if not machine.letters:
        return ()
    return tuple(_pick(machine.letters, gen) for _ in range(length))


def machines(max_states: int = 5, max_symbols: int = 3, halting: bool = False):
    """Hypothesis strategy of normal-form machines with ≤ ``max_states`` states and ≤ ``max_symbols`` work
    symbols (blank included; the marker ⊢ is added on top, so |Γ| ≤ max_symbols + 1)."""
    from hypothesis import strategies as st

    check_int(max_states, "max_states", minimum=1)
    check_int(max_symbols, "max_symbols", minimum=2)
    if not isinstance(halting, bool):
        raise TypeError(f"halting must be a bool, got {type(halting).__name__}")

    @st.composite
    def build(draw):
        num_states = draw(st.integers(1, max_states))
        num_symbols = draw(st.integers(2, max_symbols)) + 1
        num_read = draw(st.integers(1, num_states))
        num_halting = draw(st.integers(0, num_states - num_read)) if halting else 0
        halt = frozenset(range(num_states - num_halting, num_states))
        table = tuple(
            tuple(
                tuple(
                    draw(st.sampled_from(opts)) for opts in _allowed(q, s, num_states, num_symbols, num_read)
                )
                for s in range(num_symbols)
            )
            for q in range(num_states)
        )
        return TuringMachine(num_states, num_symbols, table, num_read, halt)

    return build()


def machine_inputs(max_states: int = 5, max_symbols: int = 3, max_length: int = 8, halting: bool = False):
    """Hypothesis strategy of (machine, word) pairs."""
    from hypothesis import strategies as st

    check_int(max_length, "max_length", minimum=0)
    strategy = machines(max_states, max_symbols, halting)

    @st.composite
    def build(draw):
        machine = draw(strategy)
        if not machine.letters:
            return machine, ()
        word = draw(st.lists(st.sampled_from(machine.letters), max_size=max_length))
        return machine, tuple(word)

    return build()
