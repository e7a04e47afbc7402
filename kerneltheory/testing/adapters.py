r"""Adapters that put outside random-feature code under the checks (docs/auditing.md).

Real code is not written for ``sample(generator)``: it draws from torch's or numpy's *global* generator, lives
in ``nn.Module`` s that redraw their frequencies every N calls, takes ``[B, L, H, d]`` or ``[B, H, L, d]``
float32 tensors, treats queries and keys differently, or computes its parameters from the sequence. Each
adapter here turns one such style into what :func:`~kerneltheory.testing.check_feature_map`,
:func:`~kerneltheory.testing.samplers.callable_sampler_checks` and
:func:`~kerneltheory.testing.attention_audit.check_attention` call:

* :func:`global_rng` / :func:`global_rng_sampler` — run code that draws from the global generators (torch,
  numpy, :mod:`random`) reproducibly from our ``torch.Generator``, restoring the caller's global state after,
  even when the code raises;
* :func:`from_module` — an ``nn.Module`` feature map (its redraw method, its input layout and dtype, separate
  query/key calls) as ``sample(generator)``; the module is copied, so the caller's module is untouched, and a
  redraw that changes a learned parameter (one with ``requires_grad``) is refused;
* :func:`module_frequencies` — the frequency matrix a module holds after each redraw, for the sampler checks;
* :func:`attention_from_module` — an attention module as the factory ``attention(num_features, generator)``
  that :func:`~kerneltheory.testing.attention_audit.check_attention` calls (several heads, each audited in turn);
* :func:`global_rng_calls` — a function whose calls draw from torch's global generator (lazily drawn features),
  each call run with it seeded from a private generator seeded from the check's;
* :func:`bind_statistics` — a data-dependent map (OPRF-style statistics of the sequence) bound to the
  statistics of one reference sequence, so that every draw shares them;
* :func:`proportional_check` — the calibrated test of the claim "E[φ(x)ᵀφ(y)] = c·k(x, y) for one unknown c"
  (:mod:`~kerneltheory.testing.proportional`, re-exported here).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import math
import random
from collections.abc import Callable, Iterator

import numpy as np
import torch

from .._validation import check_generator, check_int, check_points
from ._global_states import inside_global_rng, save_once
from ._heads import declare_deterministic, mark, saw_head
from .checks import pair_rounding_floor
from .proportional import proportional_check
from .seeds import seed_for
from .user_calls import DROPOUT_OFF, _one_number, _same_values

__all__ = [
    "LAYOUTS",
    "attention_from_module",
    "bind_statistics",
    "from_module",
    "global_rng",
    "global_rng_calls",
    "global_rng_sampler",
    "module_frequencies",
    "proportional_check",
]

# where the sequence and feature axes of a [n, d] input go: "nd" as is, "BLd" [1, n, d],
# "BHLd" [1, 1, n, d] (batch, heads, length, dim), "BLHd" [1, n, 1, d] (batch, length, heads, dim)
LAYOUTS = {"nd": (), "BLd": (0,), "BHLd": (0, 1), "BLHd": (0, 2)}


# ---------------------------------------------------------------------------------------------------
# Global generators
# ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _seeded_torch(seed: int) -> Iterator[None]:
    """torch's global generators (the CPU one, and every initialised CUDA device's) seeded with ``seed``; the
    caller's states restored on exit, also when the body raises."""
    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        torch.default_generator.manual_seed(seed)  # the CPU generator (torch.manual_seed also seeds devices)
        if cuda_states is not None:
            torch.cuda.manual_seed_all(seed)
        yield
    finally:
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


@contextlib.contextmanager
def global_rng(generator: torch.Generator) -> Iterator[None]:
    """Seed torch's, numpy's and :mod:`random`'s global generators from ``generator``; restore them after.

    Three seeds are drawn from ``generator`` (so the same generator state gives the same global draws, and the
    generator advances like any other draw); the caller's global states (torch CPU, every initialised CUDA
    device, ``numpy.random``'s legacy global state, :mod:`random`) are saved first and restored on exit, also
    when the body raises. Inside :func:`~kerneltheory.testing._global_states.kept_global_states` (the checks' blocks
    of draws) numpy's and :mod:`random`'s states are saved by the block's first call and restored when it ends; a
    call nested in another's body saves and restores them itself.
    """
    check_generator(generator)
    seeds = torch.randint(0, 2**62, (3,), generator=generator, dtype=torch.int64).tolist()
    if save_once():  # an enclosing block of draws saved numpy's and random's states, and restores them once
        with _seeded_torch(seeds[0]), inside_global_rng():
            np.random.seed(seeds[1] % 2**32)  # noqa: NPY002
            random.seed(seeds[2])
            yield
        return
    np_state = np.random.get_state()  # noqa: NPY002 (the global state is the point)
    py_state = random.getstate()
    try:
        with _seeded_torch(seeds[0]), inside_global_rng():
            np.random.seed(seeds[1] % 2**32)  # noqa: NPY002
            random.seed(seeds[2])
            yield
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)


@contextlib.contextmanager
def _torch_rng(generator: torch.Generator) -> Iterator[None]:
    """The per-call form of :func:`global_rng`: torch's global generators seeded from one draw of ``generator`` and
    restored after. numpy's and :mod:`random`'s are left alone: saving and restoring numpy's state costs about
    60 µs, which a module called once per draw and side pays thousands of times per check (a module draws its
    features from torch; what a module draws lazily from numpy in ``forward`` is not seeded by the check)."""
    with _seeded_torch(_private_seed(generator)):
        yield


def global_rng_sampler(draw: Callable[[], object]) -> Callable[[torch.Generator], object]:
    """``draw()`` reads the global generators; the result is ``sample(generator)`` calling it inside
    :func:`global_rng` (numpy arrays are returned as tensors, so a numpy frequency sampler fits the sampler
    checks: float16/32/64 arrays keep their dtype; other arrays become float64). Arrays and tensors are returned
    as copies: a ``draw`` that refills one buffer and returns it would otherwise make every draw the last one."""
    if not callable(draw):
        raise TypeError(f"draw must be a zero-argument callable, got {type(draw).__name__}")

    def sample(generator: torch.Generator):
        with global_rng(generator):
            out = draw()
        if isinstance(out, torch.Tensor):
            return out.clone()
        if not isinstance(out, np.ndarray):
            return out
        kept = out.dtype in (np.float16, np.float32, np.float64)
        return torch.from_numpy(np.array(out, dtype=out.dtype if kept else np.float64, order="C", copy=True))

    return sample


def _private_seed(generator: torch.Generator) -> int:
    """One draw of ``generator``: the seed of a private generator from which a module's calls seed torch's global
    generator (:func:`_torch_rng`), so that what a module draws while it runs (lazily, at its first call) is
    replayed by the check's seed, and a module that draws on every call still gives different outputs on two calls
    (the generator advances)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator))


def global_rng_calls(fn: Callable, generator: torch.Generator, *, same_seed: bool = False) -> Callable:
    """``fn`` with every call run with torch's global generator seeded from one private generator, itself seeded
    from ``generator`` now (:func:`_private_seed`, :func:`_torch_rng`): code built from the check's generator that
    draws from torch's global generator when it runs, not when it is built (a projection drawn at the first
    forward), is reproducible from the seed. ``same_seed=True`` seeds every call with one seed drawn now instead:
    code that draws its features afresh on every call (a redraw inside ``forward``) then draws the same features on
    every call of this ``fn``, one draw of its law, and a new ``fn`` (the next draw) draws new ones
    (proofs/module_adapters.md, item 4). numpy's and :mod:`random`'s global generators are not seeded per call
    (that costs 60 µs a call); code that builds inside :func:`global_rng` is seeded in all three."""
    if not isinstance(same_seed, bool):
        raise TypeError(f"same_seed must be a bool, got {type(same_seed).__name__}")
    if same_seed:
        seed = _private_seed(generator)

        def same(*args, **kwargs):
            with _seeded_torch(seed):
                return fn(*args, **kwargs)

        return same
    calls = torch.Generator().manual_seed(_private_seed(generator))

    def seeded(*args, **kwargs):
        with _torch_rng(calls):
            return fn(*args, **kwargs)

    return seeded


# ---------------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------------


def _layout(layout: str) -> tuple[int, ...]:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
    return LAYOUTS[layout]


def _to_layout(x: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """``[..., n, d]`` → the module's layout: a singleton axis inserted at each position of ``axes``."""
    for a in axes:
        x = x.unsqueeze(a)
    return x


def _from_layout(y: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    for a in reversed(axes):
        if y.shape[a] != 1:
            raise ValueError(f"the module's output has size {y.shape[a]} on axis {a}, expected 1 (the layout's "
                             f"singleton axis): is layout right?")
        y = y.squeeze(a)
    return y


def _module_dtype(module: torch.nn.Module, dtype) -> torch.dtype:
    if dtype is not None:
        if dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            raise ValueError(f"dtype must be a floating torch dtype, got {dtype}")
        return dtype
    for t in [*module.parameters(), *module.buffers()]:
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def _redraw(module: torch.nn.Module, redraw) -> None:
    if redraw is None or redraw is False:
        return
    if isinstance(redraw, str):
        fn = getattr(module, redraw, None)
        if not callable(fn):
            raise ValueError(f"redraw={redraw!r}: the module has no such method")
        fn()
    elif callable(redraw):
        redraw(module)
    else:
        raise TypeError(f"redraw must be a method name, a callable(module), None or False (a deterministic map), got "
                        f"{type(redraw).__name__}")


def _learned(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The learned parameters: those with ``requires_grad`` (frequencies are often kept in an
    ``nn.Parameter(..., requires_grad=False)``, which a redraw may change)."""
    return {k: p.detach().clone() for k, p in module.named_parameters() if p.requires_grad}


def _check_learned(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    for k, p in module.named_parameters():
        if k in before and not torch.equal(p.detach(), before[k]):
            raise ValueError(f"redrawing changed the learned parameter {k!r}: only frequencies (buffers or "
                             "non-learned state) may change between draws; frequencies kept in an nn.Parameter are "
                             "audited with requires_grad=False (module.<name>.requires_grad_(False) before the audit), "
                             "a learned projection by a redraw that leaves it unchanged")


def _side(module: torch.nn.Module, side, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """None → module(x); a method name → module.<name>(x); a dict → module(x, **dict); a callable(module, x)."""
    if side is None:
        return module
    if isinstance(side, str):
        fn = getattr(module, side, None)
        if not callable(fn):
            raise ValueError(f"{name}={side!r}: the module has no such method")
        return fn
    if isinstance(side, dict):
        return lambda x: module(x, **side)
    if callable(side):
        return lambda x: side(module, x)
    raise TypeError(f"{name} must be None, a method name, a dict of keyword arguments or a callable(module, x)")


def from_module(
    module: torch.nn.Module,
    *,
    layout: str = "nd",
    heads: int | None = None,
    redraw=None,
    dtype: torch.dtype | None = None,
    query=None,
    key=None,
    head: int | None = None,
) -> Callable[[torch.Generator], object]:
    """``sample(generator)`` for a feature map that lives in an ``nn.Module``.

    Each draw calls ``redraw`` (a method name such as ``"redraw_projection_matrix"``, or ``callable(module)``)
    inside :func:`global_rng` on a private copy of the module in eval mode, and returns the feature function
    ``[n, d] → [n, D]`` (or a ``(query_fn, key_fn)`` pair when ``query``/``key`` are given: a method name, a
    dict of keyword arguments for ``forward``, e.g. ``{"is_query": True}``, or ``callable(module, x)``).
    ``layout`` says where the module wants the sequence: ``"nd"``, ``"BLd"``, ``"BHLd"`` or ``"BLHd"`` (one batch is
    inserted; a layout with a head axis gets ``heads`` heads, default :data:`DEFAULT_HEADS`: the tested rows on one head
    and fixed distractor rows on the others, of which only the tested head's features are read, as in
    :func:`attention_from_module`: the sampler tests head ``heads // 2``, and its attribute ``head_samplers`` holds one
    sampler per head (each on its own copy of the module, made at its first draw), which
    :func:`~kerneltheory.testing.verify.check_feature_map` tests in turn, each at α/heads (a module with a projection
    per head may be wrong on one head only); ``head=h`` tests head h alone; a module that mixes heads, ``x.reshape(B, H,
    L, d)`` for ``x.transpose(1, 2)``, then gives the tested rows other rows' features, which the checks see, where one
    inserted head hid it; pass the module's own number of heads when it has a fixed one); inputs are cast to ``dtype``
    (default: the module's own) and features back to float64.
    Learned parameters stay fixed: a redraw that changes one raises
    ``ValueError``; without ``redraw`` only one draw is allowed (a second raises ``ValueError``: it would be the
    same map), unless ``redraw=False`` declares a deterministic map (no random features: every draw is the module,
    which the checks test as a deterministic map, estimate equal to its kernel at every draw; the rows of
    :func:`~kerneltheory.testing.check_feature_map` may then accept from the first look, 256 draws, and its norm
    sweep's pilot draws 256, since more draws would repeat it:
    :func:`~kerneltheory.testing._heads.declared_deterministic`), and a redraw
    that leaves the map unchanged raises ``ValueError`` naming ``redraw`` (no floating-point state of the module
    changed and the features on the first input seen are those of the draw before, NaN equal only to NaN: e.g. a
    redraw gated on ``self.training``, which does nothing in eval mode; proofs/sampler_independence.md; or the
    state changed but the features on every nonzero row of that input did not: a forward that reads a cache built
    at its first call, a redraw that changes only a counter; proofs/module_adapters.md, item 3). The module's calls
    run with torch's global generator seeded from a private generator seeded from the draw's generator (as in
    :func:`global_rng_calls`), so a projection drawn lazily from torch at the first forward is replayed by the
    seed; a module whose features change from call to call within one draw (a redraw inside ``forward``) raises
    ``ValueError``
    (item 2 there). A draw
    from a generator in the state of the previous draw's (the replay check of :func:`check_feature_map` reseeds it)
    must give the same map, and is not compared. A feature
    function must be evaluated before the next draw (it raises ``RuntimeError`` otherwise), which is how the
    checks use it. After each call a feature function's ``feature_dtype`` names the dtype the module computed in,
    from which the checks set their rounding floor.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    axes = _layout(layout)
    n_heads, head_axis = _head_axis(axes, layout, heads)
    head = _head_index(head, n_heads, head_axis, layout)

    def on_head(tested: int):
        return mark(_module_sampler(module, tested, axes, layout, n_heads, head_axis, heads, redraw, dtype, query,
                                    key), tested, n_heads)

    def lazily(tested: int):
        built = []

        def sample(generator: torch.Generator):
            if not built:  # its own copy of the module, made when the head is first drawn
                built.append(on_head(tested))
            return built[0](generator)
        return mark(declare_deterministic(sample, redraw is False), tested, n_heads)

    sample = on_head(n_heads // 2 if head is None else head)
    if head is None and n_heads > 1:
        mark(sample, n_heads // 2, n_heads, "head_samplers", tuple(lazily(h) for h in range(n_heads)))
    return sample


def _head_index(head, n_heads: int, head_axis: int | None, layout: str) -> int | None:
    """``head=`` of the module adapters: None, or a head of the layout's ``n_heads`` (an error otherwise)."""
    if head is None:
        return None
    if head_axis is None:
        raise ValueError(f"head applies to a layout with a head axis ('BHLd', 'BLHd'); layout {layout!r} has none")
    head = check_int(head, "head", minimum=0)
    if head >= n_heads:
        raise ValueError(f"head must be one of the {n_heads} heads, 0 to {n_heads - 1} (heads={n_heads}), got {head}")
    return head


def _module_sampler(module, tested, axes, layout, n_heads, head_axis, heads, redraw, dtype, query, key):
    """:func:`from_module`'s sampler of head ``tested``, on its own copy of ``module``."""
    work = copy.deepcopy(module).eval()
    dt = _module_dtype(work, dtype)
    learned = _learned(work)
    sides = None if query is None and key is None else (_side(work, query, "query"), _side(work, key, "key"))
    draws = [0]
    probe: list = []  # [input, features of the latest draw on it]: the first input any feature function saw
    last_state: list = []  # [the generator's state before the latest draw]
    unchanged = [0]  # consecutive redraws that left the map unchanged; -1 once one changed it (checks end)
    stable = [0]  # draws whose features were found the same on two calls (_check_stable)

    def run(fn, x: torch.Tensor, calls: torch.Generator) -> tuple[torch.Tensor, torch.dtype | None]:
        """(the features in float64, in the checks' layout; the dtype the module returned them in); the module runs
        with torch's global generator seeded from calls (_torch_rng), so that what it draws when it runs (a
        projection drawn lazily) is replayed"""
        x = x.to(dt)
        inputs = (_to_layout(x, axes) if head_axis is None else
                  _with_heads(x.unsqueeze(0), head_axis, n_heads, tested, "features"))
        try:
            with torch.no_grad(), _torch_rng(calls):
                out = fn(inputs)
        except Exception as exc:
            raise _module_failure(exc, layout, tuple(inputs.shape), n_heads if head_axis else None, heads,
                                  module=work, input_dtype=dt) from exc
        features = (_from_layout(out, axes) if head_axis is None else
                    _from_layout(_audited_head(out, head_axis, n_heads, tested), axes[:1]))
        return features.to(torch.float64), getattr(out, "dtype", None)

    def wrap(fn, n_draw, calls):
        def features(x: torch.Tensor) -> torch.Tensor:
            if draws[0] != n_draw:
                raise RuntimeError("this feature function belongs to an earlier draw of the module")
            saw_head(tested, n_heads)  # the head an audit reached, whatever wraps this function (_heads)
            out, features.feature_dtype = run(fn, x, calls)  # the dtype computed in: the rounding floor's precision
            if not probe and fn is (work if sides is None else sides[0]):
                probe.extend([x.detach().clone(), out.detach().clone()])
            return out

        return features

    def sample(generator: torch.Generator):
        if redraw is None and draws[0] >= 1:
            raise ValueError("redraw=None: every draw would be the same module, and the checks would average one "
                             "fixed map; pass redraw='<method>' or a callable(module) that draws new frequencies, or "
                             "redraw=False for a deterministic map (elu + 1, Hedgehog, Based: no random features)")
        # a generator in the state of the previous draw's (the replay check reseeds it) must give the same map
        state = generator.get_state()
        replay = last_state and torch.equal(state, last_state[0])
        last_state[:] = [state]
        before = (_float_state(work) if probe and not replay and unchanged[0] >= 0 and redraw is not False
                  else None)  # a deterministic map (redraw=False) is the same map at every draw by design
        with global_rng(generator):
            _redraw(work, redraw)
        seed = _private_seed(generator)  # the calls' global generators (global_rng_calls), one seed per draw
        _check_learned(work, learned)
        draws[0] += 1
        probe_calls = torch.Generator().manual_seed(seed)  # as the draw's first call sees it: a replay skips these
        if probe and before is not None:
            now, _ = run(work if sides is None else sides[0], probe[0], probe_calls)
            _check_redrawn(before, _float_state(work), probe, now, redraw, draws[0], unchanged, (tested, n_heads))
        if probe and not replay and stable[0] < UNCHANGED_REDRAWS:
            for name, fn in [("features", work)] if sides is None else [("query", sides[0]), ("key", sides[1])]:
                _check_stable(name, [run(fn, probe[0], probe_calls) for _ in range(3)], draws[0])
            stable[0] += 1
        calls = torch.Generator().manual_seed(seed)
        if sides is None:
            return wrap(work, draws[0], calls)
        return wrap(sides[0], draws[0], calls), wrap(sides[1], draws[0], calls)

    return declare_deterministic(sample, redraw is False)


def _float_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the module's floating-point state that a redraw may change: non-learned parameters, buffers and
    plain tensor or numpy attributes of every submodule (learned parameters must not change: :func:`_check_learned`)."""
    state = {}
    for prefix, mod in module.named_modules():
        for k, v in vars(mod).items():
            if isinstance(v, np.ndarray) and v.dtype.kind == "f":
                v = torch.from_numpy(np.array(v, dtype=np.float64))  # a copy (longdouble too)
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                state[f"{prefix}.{k}"] = v.detach().clone()
        for k, v in [*mod.named_parameters(recurse=False), *mod.named_buffers(recurse=False)]:
            if v.is_floating_point() and not (isinstance(v, torch.nn.Parameter) and v.requires_grad):
                state[f"{prefix}.{k}"] = v.detach().clone()
    return state


def _check_stable(side: str, runs: list[tuple[torch.Tensor, torch.dtype | None]], n_draw: int) -> None:
    """Raise ``ValueError`` when three calls of one draw's feature function on the probe (the same input, one after
    the other, with torch's global generator seeded from the draw's private generator, :func:`_torch_rng`) do not
    all give the same features: the module draws when it runs (a redraw in forward on every call or every second
    call: three calls see it whatever its phase; longer periods are caught only where the first
    :data:`UNCHANGED_REDRAWS` draws happen to straddle a redraw), so the query and the key features, or two batches,
    of one draw need not share their frequencies, and no single map is tested. A module that draws once, lazily at
    its first call, gives the same features on every later call and passes. ``runs``: (features, the dtype computed
    in); two runs are the same when equal, or within the sum of their rounding floors
    (:func:`~kerneltheory.testing.user_calls._one_number`, the bound of the replay checks: a kernel whose reductions are
    not deterministic, as some CUDA kernels are, rounds differently)."""
    floors = []
    for out, dt in runs:
        eps = torch.finfo(dt).eps if isinstance(dt, torch.dtype) and dt.is_floating_point else None
        floors.append(pair_rounding_floor(out.reshape(-1, out.shape[-1]), feature_eps=eps))
    first = runs[0][0]
    if not all(_one_number(first, out, floors[0], f) for (out, _), f in zip(runs[1:], floors[1:], strict=True)):
        raise ValueError(
            f"the module's {side} gave different features on {len(runs)} calls with one draw (draw {n_draw}, the same "
            "input): it draws new frequencies when it runs (a redraw inside forward, on every call or every N calls), "
            "so the query and key features of one draw need not share them; draw them in the redraw (redraw=...) only. "
            "Or it draws other random numbers at each call, such as dropout left on: " + DROPOUT_OFF)


#: Consecutive redraws, from the first, that must leave the map unchanged before :func:`from_module` refuses it.
UNCHANGED_REDRAWS = 3


def _check_redrawn(before: dict, after: dict, probe: list, now: torch.Tensor, redraw, n_draw: int,
                   unchanged: list, head: tuple[int, int] = (0, 1)) -> None:
    """Raise ``ValueError`` when the first :data:`UNCHANGED_REDRAWS` redraws all left the map unchanged (a law with
    few outcomes repeats a draw by chance; a redraw that does nothing repeats it every time, from the first).
    The probe is the first input a feature function of this sampler saw, ``probe[0]``; ``probe[1]`` its features in
    the previous draw, ``now`` in this one (NaN equals only NaN). A redraw left the map unchanged when either

    * no floating-point state of the module changed (``before``/``after``, :func:`_float_state`) and the features
      on the probe are the previous draw's (both must agree: frequencies kept where the state does not look, a
      Python list or a closure, change the features), or
    * the features are the previous draw's, finite and the same on every probe row x ≠ 0, although the state
      changed: a redraw that changes only a counter, or a forward that reads a copy of the frequencies (a cache
      built on the first call) which the redraw does not update. At x = 0 features need not depend on the
      frequencies (positive features are 1/√m there), so rows x = 0 are not used, and a probe without such a row
      leaves only the first test.

    Averaging one fixed map over draws tests nothing, and reads as a biased map. ``head``: the tested head of the
    module's heads, (h, H), named in the message where H > 1. ``probe[1]`` becomes ``now``;
    ``unchanged[0]`` counts the unchanged redraws, and becomes -1 (no more checks) at the first that changed the
    map."""
    same_state = after.keys() == before.keys() and all(_same_values(after[k], before[k]) for k in before)
    x, prev = probe[0], probe[1]
    moving = (x.reshape(x.shape[0], -1) != 0).any(-1) & torch.isfinite(prev.reshape(prev.shape[0], -1)).all(-1)
    stale = bool(moving.any()) and _same_values(now[moving], prev[moving])
    unchanged[0] = unchanged[0] + 1 if stale or (same_state and _same_values(now, prev)) else -1
    if unchanged[0] >= UNCHANGED_REDRAWS and same_state:
        raise ValueError(
            f"redraw={redraw!r} left the map unchanged: draws 1 to {n_draw} have one floating-point module state "
            "(the floating buffers, parameters not learned, and tensor and numpy attributes it reads; integer ones, "
            "such as a counter of calls, are not read) and the same features on a probe of "
            f"{tuple(x.shape)} inputs, so every draw would be one fixed map. "
            "The module runs in eval mode: a redraw that acts only in training mode (gated on self.training) or only "
            "every N calls does nothing here; pass a redraw that always draws new frequencies")
    if unchanged[0] >= UNCHANGED_REDRAWS:
        changed = sorted(k.lstrip(".") for k in before if k in after and not _same_values(after[k], before[k]))
        whose, skipped = "its features", ""
        if head[1] > 1:
            whose = f"the features of head {head[0]} of {head[1]}, the head tested"
            skipped = (f", or it leaves head {head[0]}'s frequencies as they were while it redraws other heads' (a "
                       "loop over the heads that skips this one)")
        raise ValueError(
            f"redraw={redraw!r} changed the module's state ({', '.join(changed) or 'its keys'}) but not {whose}: "
            f"draws 1 to {n_draw} give the same features on the {int(moving.sum())} nonzero inputs of a probe of "
            f"{tuple(x.shape)}, so every draw would be one fixed map. Either the redraw does not draw new frequencies "
            f"(it changes only a counter, or acts only every N calls){skipped}, or forward reads a copy of them that "
            "the redraw does not update (a cache built on the first call): have the redraw invalidate that cache, or "
            "pass a redraw that does")
    probe[1] = now


def module_frequencies(module: torch.nn.Module, attribute: str, *, redraw) -> Callable[[torch.Generator], torch.Tensor]:
    """``sample(generator) → [m, d]``: redraw a copy of ``module`` (inside :func:`global_rng`) and return a copy
    of its frequency matrix ``module.<attribute>`` (in the module's dtype, which sets the rounding floors), the
    input of :func:`~kerneltheory.testing.samplers.callable_sampler_checks`, which then tests the frequencies *as the
    module redraws them* (e.g. that row norms really change between redraws)."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if redraw is None:
        raise ValueError("redraw must name the method (or be a callable(module)) that draws new frequencies")
    work = copy.deepcopy(module)
    learned = _learned(work)

    def sample(generator: torch.Generator) -> torch.Tensor:
        with global_rng(generator):
            _redraw(work, redraw)
        _check_learned(work, learned)
        w = getattr(work, attribute, None)
        if not isinstance(w, torch.Tensor):
            raise ValueError(f"the module has no tensor attribute {attribute!r}")
        return w.detach().to("cpu").clone()

    return sample


#: The heads :func:`attention_from_module` gives a layout with a head axis by default: the audited one and a distractor.
DEFAULT_HEADS = 2


@functools.lru_cache(maxsize=32)
def _distractors(shape: tuple[int, ...], count: int, what: str, std: float) -> torch.Tensor:
    """``[count, *shape]`` tokens of N(0, std²), fixed given the shape (seeded by it): the other heads' inputs.
    Cached (an audit's every call of a module builds them, up to thousands of times at a few shapes): callers copy
    them (:func:`_with_heads` stacks them into a new tensor) and never write into the cached tensor."""
    g = torch.Generator().manual_seed(seed_for(f"attention_from_module distractors {what} {shape} {count}"))
    return torch.randn(count, *shape, generator=g, dtype=torch.float64) * std


def _with_heads(t: torch.Tensor, axis: int, heads: int, audited: int, what: str) -> torch.Tensor:
    """``[B, L, d]`` → the audited sequence at index ``audited`` of a head axis of size ``heads`` at ``axis``, the
    other heads holding :func:`_distractors` (q and k of std 0.3, v of std 1: check_attention's default inputs)."""
    if heads == 1:
        return t.unsqueeze(axis)
    others = list(_distractors(tuple(t.shape), heads - 1, what, 1.0 if what == "v" else 0.3).to(t.dtype))
    return torch.stack([*others[:audited], t, *others[audited:]], dim=axis)


def _audited_head(out: torch.Tensor, axis: int, heads: int, audited: int) -> torch.Tensor:
    if out.dim() <= axis or out.shape[axis] != heads:
        raise ValueError(f"the module's output has shape {tuple(out.shape)}, expected size heads = {heads} on axis "
                         f"{axis} (the layout's head axis): is layout right?")
    return out.select(axis, audited)


def attention_from_module(
    build: Callable[[int], torch.nn.Module],
    *,
    layout: str = "BLd",
    heads: int | None = None,
    mask: str | None = None,
    mask_keeps: bool = True,
    redraw=None,
    dtype: torch.dtype | None = None,
    mask_additive: bool = False,
    forward_redraws: bool = False,
    head: int | None = None,
    mask_float: bool = False,
) -> Callable[[int, torch.Generator], Callable]:
    """The factory ``attention(num_features, generator) → fn(q, k, v, mask=None)`` of
    :func:`~kerneltheory.testing.attention_audit.check_attention`, for an attention module.

    ``build(m)`` constructs the module with m random features; it runs inside :func:`global_rng`, as does
    ``redraw`` (a method name or ``callable(module)``) after it, so the module's frequencies come from the
    check's generator. The module is put in eval mode, and every call of ``fn`` runs the module with torch's
    global generator seeded from a private generator seeded from the check's generator when the factory is called
    (:func:`global_rng_calls`): a module that draws its features lazily from torch, at its first call, draws them
    reproducibly; one that redraws on every call gives
    different outputs on two calls, which the exact checks refuse. ``fn`` takes ``[B, L, d]`` tensors, moves them to
    ``layout`` (``"BLd"``, ``"BHLd"`` or ``"BLHd"``), casts them to ``dtype`` (default: the module's own;
    ``"input"`` follows the inputs' dtype by converting the module) and returns the module's output in the module's
    dtype. A layout with a head axis gets ``heads`` heads (default :data:`DEFAULT_HEADS`; pass the module's own
    number when it has a fixed one): the audited sequence on one head, and on the others distractor tokens fixed
    given the shape (so that two calls on one input are the same), of which only the audited head's output is
    returned. Every head is audited: the factory calls head ``heads // 2``, and its attribute ``head_factories``
    holds one factory per head, which :func:`~kerneltheory.testing.attention_audit.check_attention` audits in turn
    (each at α/heads; a module with a projection per head may be wrong on one head only); ``head=h`` audits head h
    alone. In a correct module a head's output depends on its own inputs alone; a module that mixes
    heads (``x.reshape(B, H, L, d)`` for ``x.transpose(1, 2)``) gives the audited head other tokens' values, which
    the checks see (proofs/module_adapters.md, item 1). ``heads=1`` inserts one head, where such a bug is invisible.
    A key mask ``[B, L]`` (True = keep) is passed as the keyword ``mask`` names, inverted when the module's mask
    marks padding (``mask_keeps=False``, PyTorch's ``key_padding_mask``); ``mask_additive=True`` passes it as the
    additive float mask some modules take instead (0 at a kept key, −inf at a masked one, in the module's dtype);
    ``mask_float=True`` as 1.0 at a kept key and 0.0 at a masked one in the module's dtype (HuggingFace's
    ``attention_mask``; with ``mask_keeps=False``, 1.0 at a masked key). A module that fails on its inputs raises a
    ValueError naming the shape it was given and ``layout``/``heads``, and, on a call with a mask, the mask's format.
    ``forward_redraws=True``, for a module that redraws its features from torch's global generator inside
    ``forward``: every call of one ``fn`` runs with the same seed (:func:`global_rng_calls` with ``same_seed``), so
    its calls share one draw of the features, as a module whose redraw happens once per draw would, and the exact
    checks can compare them; each factory call (a new draw) gets a new seed.
    """
    if not callable(build):
        raise TypeError(f"build must be a callable num_features -> nn.Module, got {type(build).__name__}")
    if not isinstance(forward_redraws, bool):
        raise TypeError(f"forward_redraws must be a bool (True: the module redraws its features in forward), got "
                        f"{type(forward_redraws).__name__}")
    axes = _layout(layout)
    mask_keyword = mask
    if layout == "nd":
        raise ValueError("an attention module takes batched sequences: layout must be 'BLd', 'BHLd' or 'BLHd'")
    if not isinstance(mask_additive, bool):
        raise TypeError(f"mask_additive must be a bool (True: an additive 0/−inf float mask), got "
                        f"{type(mask_additive).__name__}")
    if not isinstance(mask_keeps, bool):
        raise TypeError(f"mask_keeps must be a bool (True: the module's mask marks the keys kept), got "
                        f"{type(mask_keeps).__name__}")
    if not isinstance(mask_float, bool):
        raise TypeError(f"mask_float must be a bool (True: a 1.0/0.0 float keep-mask), got {type(mask_float).__name__}")
    if mask_additive and mask_float:
        raise ValueError("mask_additive=True and mask_float=True name two formats of one mask: pass at most one")
    if mask_additive and not mask_keeps:
        raise ValueError("mask_keeps=False has no meaning with mask_additive=True: an additive mask is 0 at a kept key "
                         "and −inf at a masked one whatever a boolean mask would mark")
    if mask_keyword is not None and not isinstance(mask_keyword, str):
        raise TypeError(f"mask must be None or the name of the module's mask keyword, got {type(mask).__name__}")
    n_heads, head_axis = _head_axis(axes, layout, heads)
    head = _head_index(head, n_heads, head_axis, layout)
    marks = f"at a {'kept' if mask_keeps else 'padded'} key (mask_keeps={mask_keeps})"
    mask_format = ("an additive 0/−inf float mask (mask_additive=True)" if mask_additive else
                   f"a 1.0/0.0 float mask, 1.0 {marks}, mask_float=True" if mask_float else
                   f"a bool mask, True {marks}")

    def module_mask(mask, dt):
        if mask_additive:
            return torch.zeros(mask.shape, dtype=dt).masked_fill(~mask, -math.inf)
        marked = mask if mask_keeps else ~mask
        return marked.to(dt) if mask_float else marked

    def on_head(audited: int):
        def factory(num_features: int, generator: torch.Generator):
            return _head_function(num_features, generator, audited)
        return mark(factory, audited, n_heads)

    def _head_function(num_features: int, generator: torch.Generator, audited: int):
        m = check_int(num_features, "num_features", minimum=1)
        with global_rng(generator):
            module = build(m)
            if not isinstance(module, torch.nn.Module):
                raise TypeError(f"build(m) must return an nn.Module, got {type(module).__name__}")
            _redraw(module, redraw)
        module.eval()

        def fn(q, k, v, mask=None):
            saw_head(audited, n_heads)  # the head an audit reached, whatever wraps this function (_heads)
            dt = q.dtype if dtype == "input" else _module_dtype(module, dtype)
            if dtype == "input":
                module.to(dt)
            if head_axis is None:
                args = [t.to(dt) for t in (q, k, v)]
            else:
                args = [_with_heads(t.to(dt), head_axis, n_heads, audited, w)
                        for t, w in zip((q, k, v), "qkv", strict=True)]
            extra = {}
            if mask is not None:
                if mask_keyword is None:
                    raise ValueError("the module takes no mask: pass mask='<keyword>' to attention_from_module, or "
                                     "mask=False to check_attention")
                extra[mask_keyword] = module_mask(mask, dt)
            try:
                with torch.no_grad():
                    out = module(*args, **extra)
                return out if head_axis is None else _audited_head(out, head_axis, n_heads, audited)
            except Exception as exc:
                if isinstance(exc, TypeError) and mask_keyword is not None and mask_keyword in str(exc):
                    raise  # a module without that mask keyword: the check's message names mask=False
                raise _module_failure(exc, layout, tuple(args[0].shape), n_heads if head_axis else None,
                                      heads, mask_format if mask is not None else None, module, dt,
                                      attention=True) from exc

        return global_rng_calls(fn, generator, same_seed=forward_redraws)

    factory = on_head(n_heads // 2 if head is None else head)
    if head is None and n_heads > 1:
        mark(factory, n_heads // 2, n_heads, "head_factories", tuple(on_head(h) for h in range(n_heads)))
    return factory


def _head_axis(axes: tuple[int, ...], layout: str, heads: int | None) -> tuple[int, int | None]:
    """(the number of heads, the head axis or None) of a layout: :data:`DEFAULT_HEADS` (or ``heads``) on the second
    inserted axis of ``"BHLd"``/``"BLHd"``; one head and no head axis otherwise, where ``heads`` is an error."""
    if len(axes) < 2:
        if heads is not None:
            raise ValueError(f"heads applies to a layout with a head axis ('BHLd', 'BLHd'); layout {layout!r} has none")
        return 1, None
    return (DEFAULT_HEADS if heads is None else check_int(heads, "heads", minimum=1)), axes[1]


def _module_failure(exc: Exception, layout: str, shape: tuple, n_heads: int | None, heads: int | None,
                    mask_format: str | None = None, module: torch.nn.Module | None = None,
                    input_dtype: torch.dtype | None = None, attention: bool = False) -> ValueError:
    """The error of a module that failed on the tensors :func:`attention_from_module` or :func:`from_module` gave it,
    naming them (on a call with a key mask, the mask's format; where ``input_dtype`` is not the dtype of
    the ``module``'s floating parameters, both; for an ``attention`` module whose forward does not take q, k and v
    first, its parameters: :func:`_forward_hint`)."""
    given = f"{layout} tensors of shape {shape}" + (
        f" ({n_heads} heads, heads={'default ' if heads is None else ''}{n_heads})" if n_heads is not None else "")
    masked = ("" if mask_format is None else
              f" It was given {mask_format}: does it take its mask in another format (mask_keeps=, mask_additive=, "
              "mask_float=)?")
    tensors = [] if module is None else [*module.parameters(), *module.buffers()]
    floating = [t for t in tensors if t.is_floating_point()]
    own = floating[0].dtype if floating else None  # a module without floating tensors has no dtype to name
    if input_dtype is not None and own is not None and input_dtype != own:
        masked += (f" Its inputs were cast to {input_dtype} while its parameters are {own}: dtype= casts the inputs "
                   "only; convert the module to that dtype, or leave dtype= out to use the module's own.")
    if attention and module is not None:
        masked += _forward_hint(module)
    return ValueError(f"the module failed on {given}: {type(exc).__name__}: {exc} (is layout= the order of its "
                      f"input axes, and, for a module with a fixed number of heads, heads= that number?{masked})")


def _forward_hint(module: torch.nn.Module) -> str:
    """Where an attention module's ``forward`` takes fewer than three positional arguments, or hidden states first
    (a layer that projects q, k and v itself, as Hugging Face's do), the arguments it takes: the adapter passes
    q, k and v (a user trial: such a layer's error blamed dim, layout and heads)."""
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return ""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = [p.name for p in params if p.kind in kinds]
    if len(names) >= 3 and "hidden" not in names[0]:
        return ""
    return (f" Its forward takes ({', '.join(names)}) where the adapter passes q, k and v: a layer that takes hidden "
            "states and projects q, k and v itself is audited through a wrapper module that takes q, k and v "
            "(docs/auditing.md, section 4).")


# ---------------------------------------------------------------------------------------------------
# Data-dependent maps
# ---------------------------------------------------------------------------------------------------


def _as_feature_function(obj, what: str):
    if isinstance(obj, tuple):
        return obj
    q, k = getattr(obj, "query", None), getattr(obj, "key", None)
    if callable(q) and callable(k):
        return q, k
    if callable(obj):
        return obj
    raise TypeError(f"{what} must give a feature function, a (query_fn, key_fn) pair or an object with "
                    f".query/.key, got {type(obj).__name__}")


def bind_statistics(
    sample: Callable[[torch.Generator], object],
    queries: torch.Tensor,
    keys: torch.Tensor,
    *,
    fit: str | None = None,
) -> Callable[[torch.Generator], object]:
    """Bind a data-dependent map to the statistics of one reference sequence.

    ``sample(generator)`` draws the map; its parameters are then computed from ``(queries, keys)``, the
    reference sequence: by ``obj.<fit>(queries, keys)`` when ``fit`` names a method, else by calling
    ``obj(queries, keys)``. What that returns (or ``obj`` itself when it returns None) is the bound map: a
    feature function, a ``(query_fn, key_fn)`` pair or an object with ``.query``/``.key``. Every draw binds to
    the same sequence, so both sides share one parameter (OPRF's A*, SADERF's Ψ) and the claims are about the
    map at those statistics.
    """
    if not callable(sample):
        raise TypeError(f"sample must be a callable sample(generator), got {type(sample).__name__}")
    queries = check_points(queries, "queries")
    keys = check_points(keys, "keys", dim=queries.shape[-1])

    def bound(generator: torch.Generator):
        obj = sample(generator)
        if fit is None:
            out = obj(queries, keys)
        else:
            method = getattr(obj, fit, None)
            if not callable(method):
                raise ValueError(f"fit={fit!r}: the sampled map has no such method")
            out = method(queries, keys)
        return _as_feature_function(obj if out is None else out, "the bound map")

    return bound
