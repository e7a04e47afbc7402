"""How ``kerneltheory audit`` reads FACTORY and its options (kerneltheory.cli; docs/auditing.md, "From the shell").

FACTORY is the callable an audit calls: ``sample(generator)`` for a feature map or a frequency sampler,
``attention(m, generator)`` with ``--attention``. It is used as it is when it accepts that many positional
arguments, defaults included (``def sample(generator=None, d=8)`` is sample(generator)); a callable taking no argument
at all is a factory, called once, whose result must accept them; anything else is a ValueError naming the expected
signatures. With ``--global-rng`` FACTORY draws from the global generators and is called inside
:func:`~kerneltheory.testing.adapters.global_rng`: ``draw()``, or ``attention(m)`` with ``--attention``. An option of
one kind of audit given to another kind would be ignored; it is refused instead, naming the option.
"""

from __future__ import annotations

import inspect


def _arity(obj) -> tuple[int | None, int]:
    """(how many positional arguments ``obj`` accepts, None for any number; how many it requires, keyword-only
    ones without a default included); (None, 0) when its signature cannot be read."""
    try:
        params = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        return None, 0
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return None if any(p.kind == p.VAR_POSITIONAL for p in params) else len(positional), len(required)


def _fits(obj, n: int) -> bool:
    """Whether ``obj`` can be called with ``n`` positional arguments and nothing else."""
    most, required = _arity(obj)
    return callable(obj) and (most is None or most >= n) and required <= n


def _signature(obj) -> str:
    try:
        return f"{getattr(obj, '__name__', type(obj).__name__)}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        return type(obj).__name__


#: Parameter names read as a generator: a FACTORY callable both with and without arguments is taken as the audited
#: function when its generator's position holds one of them (or a name ending in one of GENERATOR_SUFFIXES, such as
#: ``torch_gen``), else as a zero-argument factory.
GENERATOR_NAMES = ("generator", "gen", "g", "rng", "random_state", "seed")
GENERATOR_SUFFIXES = ("_generator", "_gen", "_rng", "_seed")


def _generator_at(obj, n: int) -> bool:
    """Whether the ``n``-th positional parameter of ``obj`` (the generator's place in the audited form) is named like
    a generator."""
    try:
        params = [p for p in inspect.signature(obj).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return True
    name = params[n - 1].name.lower() if len(params) >= n else ""
    return name in GENERATOR_NAMES or name.endswith(GENERATOR_SUFFIXES)


def as_factory(obj, n: int, form: str):
    """FACTORY as the callable the audit calls with ``n`` positional arguments (``form``, e.g. "sample(generator)"):
    ``obj`` itself when it accepts them (defaults included: ``sample(generator=None)`` is sample(generator)), else,
    when it takes no argument at all, what one call ``obj()`` returns (a zero-argument factory); anything else is
    a ValueError naming the expected signatures. A FACTORY that accepts both (every parameter has a default) is the
    audited function when its generator's parameter has a generator's name (:data:`GENERATOR_NAMES`), else a
    zero-argument factory (``def make(dim=4): return sample``)."""
    expected = f"expected {form}, or a zero-argument factory returning it"
    if not callable(obj):
        raise ValueError(f"FACTORY must be callable ({expected}), got {type(obj).__name__}")
    if _fits(obj, n) and (not _fits(obj, 0) or _generator_at(obj, n)):
        return obj
    if not _fits(obj, 0):
        raise ValueError(f"FACTORY {_signature(obj)} cannot be called as {form}: {expected} (code that draws from "
                         "the global generators takes --global-rng)")
    made = obj()
    if not _fits(made, n):
        if _fits(obj, n):  # callable both ways, and what it returns is no audited function: FACTORY is one
            return obj
        raise ValueError(f"FACTORY {_signature(obj)} takes no argument, so it was called once as a factory, but it "
                         f"returned {_signature(made) if callable(made) else type(made).__name__}: {expected} (a "
                         "function that draws from the global generators takes --global-rng)")
    return made


def _torch_module():
    import torch

    return torch.nn.Module


def global_rng_factory(obj, attention: bool):
    """``--global-rng``: FACTORY draws from the global generators; it is called inside
    :func:`~kerneltheory.testing.adapters.global_rng` seeded from the check's generator, as ``draw()`` (a feature
    map or frequencies) or, with ``--attention``, as ``attention(m)`` building the function for m features, whose
    calls run inside :func:`~kerneltheory.testing.adapters.global_rng_calls` (features drawn lazily, at the first
    call, are drawn from the check's seed too)."""
    from .testing.adapters import global_rng, global_rng_calls, global_rng_sampler

    if not attention:
        if not _fits(obj, 0):
            raise ValueError(f"--global-rng: FACTORY must take no argument (it draws from the global generators), got "
                             f"{_signature(obj)}")
        return global_rng_sampler(obj)
    if not _fits(obj, 1):
        raise ValueError("--global-rng --attention: FACTORY must be attention(m), building the function for m features "
                         f"from the global generators, got {_signature(obj)}")

    def factory(num_features, generator):
        with global_rng(generator):
            fn = obj(num_features)
        if isinstance(fn, _torch_module()):  # audited as attention_from_module does: dropout and friends off
            fn.eval()
        return global_rng_calls(fn, generator) if callable(fn) else fn

    return factory


# Options of one kind of audit only (feature map, --sampler, --attention): with another kind they would be ignored,
# so they are refused. Their defaults are None or False, so "given" is "not None and not False".
ONLY_FOR = {"--claims": "map", "--budget": "map", "--variance": "map", "--no-accept-early": "map",
            "--draws": "sampler", "--std": "sampler",
            "--redraws": "sampler", "--causal": "attention", "--no-mask": "attention", "--checks": "attention",
            "--dtypes": "attention", "--length": "attention", "--exact-length": "attention",
            "--long-length": "attention", "--output-dtype": "attention"}
KIND = {"map": "a feature-map audit", "sampler": "--sampler", "attention": "--attention"}


def check_options(args) -> str:
    """The kind of audit ("map", "sampler" or "attention"); a ValueError naming an option that does not apply."""
    if args.sampler and args.attention:
        raise ValueError("--sampler and --attention are two kinds of audit: pass one")
    kind = "sampler" if args.sampler else "attention" if args.attention else "map"
    for option, only in ONLY_FOR.items():
        value = getattr(args, option[2:].replace("-", "_"))
        if only != kind and value is not None and value is not False:
            raise ValueError(f"{option} applies to {KIND[only]} only; {KIND[kind]} would ignore it")
    if kind == "sampler":  # the map's and the attention's options: a sampler audit has no kernel and no inputs
        for option, given in (("--dim", args.dim is not None), ("--kernel", args.kernel is not None),
                              ("--sigma", args.sigma != 1.0)):
            if given:
                raise ValueError(f"{option} applies to a feature-map or --attention audit only; --sampler would "
                                 "ignore it")
    return kind
