"""Which head of a multi-head module an audit reached, read where the adapters' functions are called.

``from_module`` and ``attention_from_module`` test one head per sampler or factory and carry one per head
(``head_samplers``, ``head_factories``), which :func:`~kerneltheory.testing.verify.check_feature_map` and
:func:`~kerneltheory.testing.attention_audit.check_attention` test in turn. A sampler or factory wrapped in a function
of the user's own (``lambda g: inner(g)``, a map rescaling its inputs) loses those attributes, and the wrapped
functions those of the head they test; what survives any wrapper is the call itself: each adapter function reports its
head (:func:`saw_head`) to the audit running (:func:`noting_heads`), which names the one head tested where its report
does not already say which heads it covers.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
from collections.abc import Callable

_SEEN: contextvars.ContextVar[set | None] = contextvars.ContextVar("kerneltheory_heads_seen", default=None)
_JOINING: contextvars.ContextVar[bool] = contextvars.ContextVar("kerneltheory_heads_joining", default=False)


def mark(obj, tested: int, count: int, attribute: str | None = None, heads: tuple | None = None):
    """Give an adapter's sampler or factory ``obj`` its head ``tested_head = (tested, count)`` and, where ``heads``
    is given, the tuple of every head's on ``attribute``, with a private record of whose they are: ``functools.wraps``
    copies a function's ``__dict__``, so a wrapper would carry them, and auditing the inner heads in its place would
    skip the wrapper's own code (a review finding: a wrapper averaging keys over the batch passed)."""
    obj.tested_head = (tested, count)
    if attribute is not None:
        setattr(obj, attribute, heads)
    obj._kt_heads_owner = (obj, heads)
    return obj


def declare_deterministic(sample, declared: bool):
    """``sample``, marked as a deterministic map where ``declared`` (:func:`declared_deterministic`)."""
    if declared:
        sample._kt_deterministic = sample  # the sampler itself: a wrapper that copies the mark is not declared
    return sample


def declared_deterministic(sample) -> bool:
    """Whether ``sample`` is a sampler of :func:`~kerneltheory.testing.from_module` declared deterministic
    (``redraw=False``): every draw is the one module, never redrawn, whose calls ``from_module`` checks to agree (three
    on its first input, for the first draws). Not a wrapper of one (``functools.wraps`` copies the mark, while the
    wrapper's own code may draw at random). :func:`~kerneltheory.testing.check_feature_map` lets the rows of such a
    map accept from the first look (256 draws) instead of the budget's quarter, and its norm sweep's pilot draw 256;
    draws that all agree off the kernel still fail only on the whole budget (proofs/module_adapters.md, item 3)."""
    return getattr(sample, "_kt_deterministic", None) is sample


def own_tested_head(obj) -> tuple[int, int] | None:
    """``obj.tested_head`` where ``obj`` is the adapter's own object (not a wrapper that copied it), else None."""
    owner = getattr(obj, "_kt_heads_owner", None)
    return getattr(obj, "tested_head", None) if owner is not None and owner[0] is obj else None


def per_head(obj, attribute: str) -> tuple | None:
    """The objects of every head on ``obj.attribute``: the adapter's own, or a tuple the user set on a wrapper (each
    head's object wrapped alike); None where there is none, or where a wrapper carries the adapter's own heads
    unwrapped (copied by ``functools.wraps``, or by hand): auditing those would skip the wrapper's code (a review
    finding: a wrapper averaging keys over the batch passed), so the wrapper is audited itself, on one head, which the
    report names. ``TypeError`` for anything but a non-empty tuple or list of callables."""
    heads = getattr(obj, attribute, None)
    if heads is None:
        return None
    if not isinstance(heads, (list, tuple)) or not heads or not all(callable(h) for h in heads):
        raise TypeError(f"{attribute} must be a non-empty tuple of callables, one per head, got {heads!r}")
    owner = getattr(obj, "_kt_heads_owner", None)
    if not (owner is not None and owner[0] is obj) and any(own_tested_head(h) is not None for h in heads):
        return None
    return tuple(heads)


@contextlib.contextmanager
def joining():
    """Inside, the audits of each head of a join: they name no heads of their own (the join does)."""
    token = _JOINING.set(True)
    try:
        yield
    finally:
        _JOINING.reset(token)


def saw_head(head: int, count: int) -> None:
    """Record that a function of an adapter's head ``head`` of ``count`` ran inside the audit running, if any."""
    seen = _SEEN.get()
    if seen is not None:
        seen.add((head, count))


def one_head_note(head: int, count: int, adapter: str) -> str:
    """The note of a report that covers one head of a multi-head module (``adapter``'s ``head=``)."""
    return f"head {head} of {count} tested ({adapter}(..., head={head})); the other heads are not"


def noting_heads(adapter: str, carried: str) -> Callable:
    """Decorator of an audit whose first argument is the sampler or factory audited: an object of one head of a
    multi-head ``adapter`` (its ``tested_head`` (h, H), without ``carried``, the attribute of every head's) gets
    :func:`one_head_note`; where functions of such an adapter ran inside the audit and its report names no heads (the
    object lost both attributes to a wrapper), a note names the head tested and the attribute to pass on, and the
    report's domain, which a PASSED names in its first line, says "head h of H only"."""

    def wrap(check: Callable) -> Callable:
        first = next(iter(inspect.signature(check).parameters))

        @functools.wraps(check)
        def audit(*args, **kwargs):
            audited = args[0] if args else kwargs.get(first)
            seen: set = set()
            token = _SEEN.set(seen)
            try:
                report = check(*args, **kwargs)
            finally:
                _SEEN.reset(token)
            if _JOINING.get():  # one head of a join, which names the heads
                return report
            one = own_tested_head(audited)
            if one is not None and one[1] > 1 and per_head(audited, carried) is None:
                report.notes.append(one_head_note(*one, adapter))
            named = any(n.startswith(("head ", "every head of ")) for n in report.notes)
            partial = sorted(s for s in seen if s[1] > 1)
            if partial and not named:  # and in the first line, which a PASSED reads "at <domain>"
                heads = ", ".join(f"head {head} of {count}" for head, count in partial)
                report.domain = f"{report.domain}; {heads} only" if report.domain else f"{heads} only"
                report.notes.append(
                    f"{heads} tested only: the functions tested come from {adapter} with {partial[0][1]} heads, but "
                    f"what was audited carries no {carried} of its own (a wrapper?): pass {adapter}'s object on, or "
                    f"set the wrapper's {carried} to a tuple of every head's object wrapped alike, to test every head")
            return report

        return audit

    return wrap
