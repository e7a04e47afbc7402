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

import contextvars
import functools
import inspect
from collections.abc import Callable

_SEEN: contextvars.ContextVar[set | None] = contextvars.ContextVar("kerneltheory_heads_seen", default=None)


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
            one = getattr(audited, "tested_head", None)
            if one is not None and one[1] > 1 and not hasattr(audited, carried):
                report.notes.append(one_head_note(*one, adapter))
            named = any(n.startswith(("head ", "every head of ")) for n in report.notes)
            partial = sorted(s for s in seen if s[1] > 1)
            if partial and not named:  # and in the first line, which a PASSED reads "at <domain>"
                heads = ", ".join(f"head {head} of {count}" for head, count in partial)
                report.domain = f"{report.domain}; {heads} only" if report.domain else f"{heads} only"
                report.notes.append(
                    f"{heads} tested only: the functions tested come from {adapter} with {partial[0][1]} heads, but "
                    f"what was audited does not carry its {carried} (a wrapper of its own?): pass {adapter}'s object "
                    f"on, or copy {carried} onto the wrapper, to test every head")
            return report

        return audit

    return wrap
