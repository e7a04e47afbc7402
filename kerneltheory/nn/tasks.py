r"""Synthetic long-sequence classification tasks, generated locally and deterministically from a seed.

**ListOps** (Nangia & Bowman 2018, "ListOps: A Diagnostic Dataset for Latent Tree Learning"; the long
version of Tay et al. 2021, "Long Range Arena", §3.1). Nested prefix expressions over the digits 0–9 with
four operators,

    MAX, MIN: the largest / smallest argument;
    MED:      the median, ``int(median)`` as in LRA (the mean of the two middle values rounded down for an
              even number of arguments);
    SM:       the sum of the arguments modulo 10,

e.g. ``[MAX 2 9 [MIN 4 7 ] 0 ]`` = 9. The label is the value, 0..9. :func:`listops_expression` grows a random
tree into a token budget of ``length`` (≤ 2,000 in the experiments; any length works): a node of budget b ≥ 4
takes k ∈ [2, max_args] arguments and splits its remaining b − 2 tokens among them at random cut points, so the
expression fills most of the budget (≥ 60 % typically) and is padded to exactly ``length``.

**Retrieval with controllable sparsity** (:func:`retrieval_task`). A sequence of n tokens drawn uniformly from
``num_distractors`` distractor symbols, with k *planted* tokens at distinct random positions; a planted token
carries a value v ∈ {0, …, C − 1} (its own symbol), and the label is a function of the planted values only:
``rule="sum"``: (Σ v_i) mod C (with C = 2 the parity of the planted bits); ``rule="max"``: max_i v_i (the
experiment's default, C = 4, k = 2). The label depends only on the planted tokens (their values, not their
positions, nor the distractors); the sparsity is k/n. The planted tokens must find each other among n − k
distractors: with sharp attention (softmax) a planted token can attend to the other planted ones, with a
flat kernel their signal is averaged with the distractors'.

Token ids (shared by both tasks' conventions): 0 is padding (masked out).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._validation import check_device, check_int, check_tensor_device

__all__ = [
    "LISTOPS_OPERATORS",
    "LISTOPS_VOCAB",
    "RETRIEVAL_RULES",
    "Batch",
    "entropy_bits",
    "evaluate_listops",
    "listops_batch",
    "listops_expression",
    "majority_rate",
    "retrieval_label",
    "retrieval_task",
    "retrieval_vocab_size",
    "task_batch",
]

LISTOPS_OPERATORS = ("MAX", "MIN", "MED", "SM")
_TOKENS = ("<pad>", *(str(i) for i in range(10)), *(f"[{op}" for op in LISTOPS_OPERATORS), "]")
LISTOPS_VOCAB: dict[str, int] = {t: i for i, t in enumerate(_TOKENS)}
_DIGITS = tuple(str(i) for i in range(10))
_OPEN = tuple(f"[{op}" for op in LISTOPS_OPERATORS)


@dataclass(frozen=True)
class Batch:
    """``tokens`` ``[B, n]`` int64 (0 = padding), ``mask`` ``[B, n]`` bool (True = real token), ``labels``
    ``[B]`` int64."""

    tokens: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor

    def to(self, device) -> Batch:
        device = check_device(device)
        return Batch(self.tokens.to(device), self.mask.to(device), self.labels.to(device))


# ---------------------------------------------------------------------------------------------------
# ListOps
# ---------------------------------------------------------------------------------------------------


def _apply(op: str, args: list[int]) -> int:
    if not args:
        raise ValueError(f"operator [{op} has no arguments")
    if op == "MAX":
        return max(args)
    if op == "MIN":
        return min(args)
    if op == "MED":
        s = sorted(args)
        k = len(s)
        return s[k // 2] if k % 2 else (s[k // 2 - 1] + s[k // 2]) // 2
    if op == "SM":
        return sum(args) % 10
    raise ValueError(f"unknown ListOps operator {op!r}; operators are {LISTOPS_OPERATORS}")


def evaluate_listops(expression: str | Sequence[str]) -> int:
    """The value (0..9) of a ListOps expression, a string ``"[MAX 2 9 [MIN 4 7 ] 0 ]"`` or its token list.

    Evaluated with an explicit stack (no recursion limit at depth or length 2,000). Raises ValueError on a
    malformed expression (unbalanced brackets, unknown token, an operator without arguments).
    """
    tokens = expression.split() if isinstance(expression, str) else list(expression)
    for tok in tokens:
        if not isinstance(tok, str):
            raise TypeError(f"expression tokens must be strings, got {type(tok).__name__}")
    if not tokens:
        raise ValueError("expression is empty")
    stack: list[tuple[str, list[int]]] = []
    result: int | None = None
    for tok in tokens:
        if result is not None:
            raise ValueError(f"tokens after the end of the expression: {tok!r}")
        if tok.startswith("[") and tok[1:] in LISTOPS_OPERATORS:
            stack.append((tok[1:], []))
        elif tok == "]":
            if not stack:
                raise ValueError("unbalanced ']'")
            op, args = stack.pop()
            value = _apply(op, args)
            if stack:
                stack[-1][1].append(value)
            else:
                result = value
        elif tok.isdigit() and len(tok) == 1:
            if stack:
                stack[-1][1].append(int(tok))
            else:
                result = int(tok)
        else:
            raise ValueError(f"unknown ListOps token {tok!r}")
    if stack or result is None:
        raise ValueError("unbalanced expression: missing ']'")
    return result


def listops_expression(
    rng: random.Random | int, length: int, *, max_depth: int = 10, max_args: int = 5
) -> list[str]:
    """A random ListOps expression of at most ``length`` tokens (an operator at the root when length ≥ 4).

    ``rng`` is a :class:`random.Random` (or an int seeding one): scalar draws from the standard library's
    Mersenne Twister are an order of magnitude cheaper than numpy's per-call overhead here.
    """
    if not isinstance(rng, random.Random):
        rng = random.Random(check_int(rng, "rng", minimum=0))
    length = check_int(length, "length", minimum=1)
    check_int(max_depth, "max_depth", minimum=1)
    check_int(max_args, "max_args", minimum=2)
    out: list[str] = []
    # explicit stack of pending work: ("node", budget, depth) or ("close",)
    work: list[tuple] = [("node", length, 0)]
    while work:
        item = work.pop()
        if item[0] == "close":
            out.append("]")
            continue
        _, budget, depth = item
        if budget < 4 or depth >= max_depth:
            out.append(_DIGITS[rng.randrange(10)])
            continue
        k = rng.randint(2, min(max_args, budget - 2))
        inner = budget - 2
        cuts = sorted(rng.sample(range(1, inner), k - 1))
        shares = [b - a for a, b in zip([0, *cuts], [*cuts, inner], strict=True)]
        out.append(_OPEN[rng.randrange(len(LISTOPS_OPERATORS))])
        work.append(("close",))
        for s in reversed(shares):
            work.append(("node", s, depth + 1))
    return out


def listops_batch(
    batch_size: int, length: int, seed: int, *, max_depth: int = 10, max_args: int = 5
) -> Batch:
    """``batch_size`` ListOps examples padded to ``length`` tokens; deterministic from ``seed``."""
    b = check_int(batch_size, "batch_size", minimum=1)
    n = check_int(length, "length", minimum=1)
    rng = random.Random(check_int(seed, "seed", minimum=0) * 1_000_003 + 0x115705)
    tokens = np.zeros((b, n), dtype=np.int64)
    labels = np.zeros(b, dtype=np.int64)
    for i in range(b):
        expr = listops_expression(rng, n, max_depth=max_depth, max_args=max_args)
        tokens[i, : len(expr)] = [LISTOPS_VOCAB[t] for t in expr]
        labels[i] = evaluate_listops(expr)
    t = torch.from_numpy(tokens)
    return Batch(t, t != 0, torch.from_numpy(labels))


# ---------------------------------------------------------------------------------------------------
# Retrieval with controllable sparsity
# ---------------------------------------------------------------------------------------------------


def retrieval_vocab_size(num_classes: int = 2, num_distractors: int = 16) -> int:
    """Padding + distractors + one symbol per planted value."""
    return 1 + num_distractors + num_classes


RETRIEVAL_RULES = ("sum", "max")


def retrieval_label(values: torch.Tensor, num_classes: int, rule: str = "sum") -> torch.Tensor:
    """The label of planted values ``[..., k]``: (Σ v_i) mod C (``rule="sum"``) or max_i v_i (``"max"``)."""
    c = check_int(num_classes, "num_classes", minimum=2)
    values = _check_labels(values, "values", num_classes=c)
    if values.dim() < 1 or values.shape[-1] == 0:
        raise ValueError(f"values must have shape [..., k] with k >= 1, got {tuple(values.shape)}")
    if rule == "sum":
        return values.sum(-1) % num_classes
    if rule == "max":
        return values.amax(-1)
    raise ValueError(f"rule must be one of {RETRIEVAL_RULES}, got {rule!r}")


def retrieval_task(
    batch_size: int,
    length: int,
    planted: int,
    seed: int,
    *,
    num_classes: int = 2,
    num_distractors: int = 16,
    rule: str = "sum",
) -> Batch:
    """n = ``length`` tokens, k = ``planted`` of them planted; label (Σ planted values) mod C.

    Token ids: 0 padding (unused: every sequence is full), 1..num_distractors distractors,
    num_distractors + 1 + v the planted value v. Deterministic from ``seed``.
    """
    b = check_int(batch_size, "batch_size", minimum=1)
    n = check_int(length, "length", minimum=1)
    k = check_int(planted, "planted", minimum=1, maximum=n)
    c = check_int(num_classes, "num_classes", minimum=2)
    nd = check_int(num_distractors, "num_distractors", minimum=1)
    g = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0) * 2 + 1)
    tokens = torch.randint(1, nd + 1, (b, n), generator=g)
    values = torch.randint(0, c, (b, k), generator=g)
    positions = torch.argsort(torch.rand(b, n, generator=g), dim=-1)[:, :k]
    tokens.scatter_(1, positions, nd + 1 + values)
    return Batch(tokens, torch.ones(b, n, dtype=torch.bool), retrieval_label(values, c, rule))


def task_batch(task: str, batch_size: int, length: int, seed: int, **kw) -> Batch:
    """Dispatch: ``task`` is ``"listops"`` or ``"retrieval"`` (keyword arguments go to the generator)."""
    if task == "listops":
        return listops_batch(batch_size, length, seed, **kw)
    if task == "retrieval":
        kw = dict(kw)
        planted = kw.pop("planted", 2)
        return retrieval_task(batch_size, length, planted, seed, **kw)
    raise ValueError(f"task must be 'listops' or 'retrieval', got {task!r}")


def _check_labels(labels, name: str = "labels", *, num_classes: int | None = None) -> torch.Tensor:
    """An integer tensor of class indices in [0, num_classes) (or >= 0); empty tensors are refused."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer class indices, got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"{name} must have an integer dtype, got {labels.dtype}")
    check_tensor_device(labels, name)
    if labels.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or (num_classes is not None and hi >= num_classes):
        allowed = "[0, ∞)" if num_classes is None else f"[0, {num_classes})"
        raise ValueError(f"{name} must lie in {allowed}, got values in [{lo}, {hi}]")
    return labels


def majority_rate(labels: torch.Tensor) -> float:
    """The accuracy of always predicting the most frequent label (the chance baseline)."""
    labels = _check_labels(labels).reshape(-1)
    counts = torch.bincount(labels)
    return float(counts.max()) / max(1, labels.numel())


def entropy_bits(labels: torch.Tensor) -> float:
    """The entropy (bits) of the empirical label distribution."""
    labels = _check_labels(labels).reshape(-1)
    p = torch.bincount(labels).double() / labels.numel()
    p = p[p > 0]
    return float(-(p * torch.log2(p)).sum())
