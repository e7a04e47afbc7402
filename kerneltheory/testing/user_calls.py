"""How the checks call a user's feature map, kernel and variance: on copies of the points, with their errors
named, their outputs checked to be real tensors of the right shape, and estimates evaluated row-wise for pair families
and as φ_q(X)φ_k(X)ᵀ for cross families (:class:`_Evaluator`); and how two evaluations of one draw are compared
(:func:`_same_values`, :func:`_difference`, :func:`_one_number`), the rule every reproducibility check of maps,
samplers and attentions uses (proofs/verification.md, items 5 and 13).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch

from ._global_states import kept_global_states
from .inputs import InputFamily

#: how to switch dropout off for an audit (the messages that may meet dropout left on: the attention audit's
#: calls row and reproducibility error, from_module's unstable features, the row-wise failure)
DROPOUT_OFF = ("switch dropout off in the audit (torch.nn.functional.dropout's training argument defaults to True): "
               "training=self.training in a module (the adapters put modules in eval mode), training=False in a "
               "function")


def _split_sides(fm) -> tuple[Callable, Callable]:
    if isinstance(fm, tuple):
        if len(fm) != 2 or not all(callable(f) for f in fm):
            raise ValueError("sample(generator) must return a feature function or a (query_fn, key_fn) pair")
        return fm
    if not callable(fm):
        raise ValueError("sample(generator) must return a feature function or a (query_fn, key_fn) pair")
    return fm, fm


def _features(fn, x: torch.Tensor, name: str, batch: int | None = None) -> torch.Tensor:
    """``fn`` applied to a copy of ``x`` (a map that writes into its input cannot change the tested points), checked
    to be a real ``[n, D]`` (``[batch, n, D]``) tensor, in float64."""
    out = fn(x.clone())
    if batch is None and isinstance(out, torch.Tensor) and out.dim() == 3 and out.shape[0] == 1:
        out = out[0]  # one draw in the batched shape (a sampler that reads batch=None as 1)
    want = 2 if batch is None else 3
    lead = (x.shape[0],) if batch is None else (batch, x.shape[0])
    if not isinstance(out, torch.Tensor) or out.dim() != want or tuple(out.shape[:-1]) != lead:
        shape = getattr(out, "shape", type(out).__name__)
        form = "[n, D]" if batch is None else f"[batch={batch}, n, D]"
        hint = ("" if batch is None else "; the sampler takes batch=, so it was drawn as a batched sampler (if its "
                "batch argument means something else, pass batched=False)")
        raise ValueError(f"{name} must map [n, d] to {form}, got {shape} for input {tuple(x.shape)}{hint}")
    if out.shape[-1] == 0:  # 0 of 0 values would pass every check vacuously
        raise ValueError(f"{name} returned no features ({tuple(out.shape)} for input {tuple(x.shape)}): a feature map "
                         "needs D ≥ 1")
    if out.is_complex():
        raise TypeError(
            f"{name} returned complex features ({out.dtype}); the checks compare real estimates φ(x)ᵀφ(y) with a real "
            "kernel: return the real features, e.g. [cos, sin] instead of exp(iωᵀx)"
        )
    if out.requires_grad:
        out = out.detach()
    return out if out.dtype == torch.float64 else out.to(torch.float64)


def _gram(fn, x: torch.Tensor, y: torch.Tensor, name: str) -> torch.Tensor:
    """``fn`` applied to copies of ``x`` and ``y`` (a kernel that scales its arguments in place cannot move the tested
    points), checked to be a real [n, n'] tensor (the kernel or the claimed variance); its own errors are re-raised
    as a ValueError that names it and the input shapes."""
    try:
        out = fn(x.clone(), y.clone())
    except Exception as exc:
        raise ValueError(f"{name}(x, y) failed on x {tuple(x.shape)} and y {tuple(y.shape)} (is dim = {x.shape[-1]} "
                         f"its input dimension?): {type(exc).__name__}: {exc}") from exc
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name}(x, y) must return a torch.Tensor, got {type(out).__name__}")
    if tuple(out.shape) != (x.shape[0], y.shape[0]):
        raise ValueError(
            f"{name}(x, y) must return the [n, n'] = [{x.shape[0]}, {y.shape[0]}] matrix for x {tuple(x.shape)} "
            f"and y {tuple(y.shape)}, got {tuple(out.shape)}"
        )
    if out.is_complex():
        raise TypeError(f"{name}(x, y) returned a complex matrix ({out.dtype}); the checks compare real estimates "
                        "φ(x)ᵀφ(y) with a real kernel: return its real part if that is the kernel meant")
    if out.is_floating_point() and torch.finfo(out.dtype).eps > torch.finfo(x.dtype).eps:
        raise ValueError(f"{name}(x, y) returned {out.dtype} values for {x.dtype} inputs: it is the checks' exact "
                         f"target, whose own rounding no check allows for, so a coarser {name} would count its "
                         f"rounding against the map: compute it in {x.dtype}")
    return out.detach().to(torch.float64).cpu()


def _pair_values(fn, families: list[InputFamily], name: str) -> torch.Tensor:
    """``fn`` at every tested pair of ``families``, concatenated: the diagonal for pair families, the whole matrix
    (row-major) for cross families."""
    vals = []
    for f in families:
        g = _gram(fn, f.x, f.y, name)
        vals.append(g.flatten() if f.cross else torch.diagonal(g))
    return torch.cat(vals)


def cauchy_schwarz_scale(kx: torch.Tensor, ky: torch.Tensor) -> torch.Tensor:
    """√|k(x, x)|·√|k(y, y)| from the diagonal values ``kx``, ``ky`` (the Cauchy–Schwarz bound on |k(x, y)|), in
    float64, as a product of square roots: √|k(x, x)·k(y, y)| overflowed to inf once k(x, x)·k(y, y) > 1.8·10³⁰⁸
    (softmax at ‖x‖ = ‖y‖ ≈ 19), and an infinite scale switched off the pair's rescaling (proofs/verification.md,
    item 11)."""
    return kx.to(torch.float64).abs().sqrt() * ky.to(torch.float64).abs().sqrt()


def _kernel_scale(kernel, families: list[InputFamily]) -> torch.Tensor:
    """:func:`cauchy_schwarz_scale` at every tested pair."""
    kx = _pair_values(kernel, [InputFamily(f.name, f.pairs()[0], f.pairs()[0]) for f in families], "kernel")
    ky = _pair_values(kernel, [InputFamily(f.name, f.pairs()[1], f.pairs()[1]) for f in families], "kernel")
    return cauchy_schwarz_scale(kx, ky)


def _hint(exc: BaseException, x: torch.Tensor) -> str:
    """A guess at the cause of a user map's error, from its message: a dtype mismatch (the checks' inputs are
    float64), a shape mismatch (the dimension the audit was given), or nothing."""
    text = str(exc).lower()
    if "dtype" in text or ("expected" in text and any(t in text for t in ("float", "double", "half"))):
        return (f" (the checks' inputs are {str(x.dtype).removeprefix('torch.')}: does the map mix dtypes? from_module "
                "takes dtype=)")
    if any(t in text for t in ("shape", "size", "dimension", "mat1", "broadcast")):
        return f" (is dim = {x.shape[-1]} the map's input dimension?)"
    return ""


def _named(fn, name: str):
    """``fn`` whose own errors are re-raised as a ValueError that says which function failed on what input."""

    def call(x):
        try:
            out = fn(x)
        except Exception as exc:
            raise ValueError(f"{name} failed on an input of shape {tuple(x.shape)}{_hint(exc, x)}: "
                             f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{name} must return a torch.Tensor, got {type(out).__name__} (convert it, e.g. "
                            "torch.as_tensor(features))")
        return out

    return call


def generator_misused(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a call ``sample(generator)``, is about the generator's own type: a function of the
    inputs handed the generator as its x, code that takes no argument (it draws from the global generators), or a
    sampler that takes an int seed."""
    return isinstance(exc, AttributeError | TypeError | RuntimeError) and any(
        k in str(exc) for k in ("torch._C.Generator", "'Generator' object",
                                "takes 0 positional arguments but 1 was given"))


def generator_misuse_message(exc: BaseException, what: str, global_code: str) -> str:
    """The error for a sampler whose call ``sample(generator)`` raised ``exc`` about the generator
    (:func:`generator_misused`): it must draw ``what`` from the generator; ``global_code`` (code drawing from the global
    generators) goes through ``global_rng_sampler``, a sampler taking an int seed through a wrapper."""
    return (f"sample(generator) raised {type(exc).__name__}: {exc}; it was called with a torch.Generator, so it must "
            f"draw {what} from it; {global_code} goes through adapters.global_rng_sampler (kerneltheory audit: "
            "--global-rng); a sampler that takes an int seed goes through a wrapper, lambda g: "
            "sample(int(torch.randint(2**62, (), generator=g)))")


class _NoPlainPath(Exception):
    """The first plain call ``sample(generator)`` of a sampler with a batched path raised: it has no plain path."""


class _Evaluator:
    """Draws feature maps from ``sample`` (batched when it takes ``batch=``) and evaluates the estimates of
    every tested pair: row-wise for pair families, φ_q(X) φ_k(X)ᵀ for a cross family."""

    def __init__(self, sample, families: list[InputFamily], bind, batched: bool | None):
        self.sample, self.bind = sample, bind
        detected = batched is None
        if batched is None:
            try:
                batched = "batch" in inspect.signature(sample).parameters
            except (TypeError, ValueError):
                batched = False
        self.batched = bool(batched)
        # a batched sampler detected by its batch=None keyword has a plain path too, sample(generator): tested as
        # well (another default, batch=1, may mean "one draw, batched shape"; batched=True asks for batched draws only)
        try:
            param = inspect.signature(sample).parameters.get("batch")
        except (TypeError, ValueError):
            param = None
        self.mixed = self.batched and detected and param is not None and param.default is None
        self.plain_drawn = False  # whether a plain call has given a map (one that raises at once has no plain path)
        pair_fams = [f for f in families if not f.cross]
        self.cross = [f for f in families if f.cross]
        self.order = families
        xs = [f.x for f in pair_fams] + [f.x for f in self.cross]
        ys = [f.y for f in pair_fams] + [f.x for f in self.cross]
        self.xq, self.xk = torch.cat(xs), torch.cat(ys)
        self.num_pairs = sum(f.size for f in pair_fams)
        # the estimates are computed pair families first, then each cross family; _columns lists those columns in
        # the families' order (None where it is already that order)
        self._cross_sizes = [f.x.shape[0] for f in self.cross]
        starts, pair_at, cross_at = [], 0, self.num_pairs
        for f in families:
            starts.append(cross_at if f.cross else pair_at)
            if f.cross:
                cross_at += f.size
            else:
                pair_at += f.size
        columns = torch.cat([torch.arange(a, a + f.size) for a, f in zip(starts, families, strict=True)]) if \
            families else torch.zeros(0, dtype=torch.long)
        self._columns = None if torch.equal(columns, torch.arange(len(columns))) else columns
        # ε of the coarsest floating dtype the map has returned features in (float64's until it returns any): the
        # rounding floor of the checks is set from it (checks.pair_rounding_floor)
        self.eps = torch.finfo(torch.float64).eps
        self._dtypes_seen: set[torch.dtype] = set()  # the floating dtypes already read into eps
        # the coarsest format holding every entry of the first float64 features returned, entries every format holds
        # (zeros, small integers) aside (attention_exact.output_format): a map computing in float32 or float16 and
        # casting its result; a hint in the report if it fails, never a change of floor
        self.carried: torch.dtype | None = None
        # set to a dict by check_feature_map when "positive" or "finite" is claimed beside a statistical claim: every
        # drawn map's features are read for those claims too (:meth:`_watch`)
        self.watch: dict | None = None

    def _maps(self, gen, batch):
        if batch is None:
            try:
                fm = self.sample(gen)
            except Exception as exc:
                if self.mixed and not self.plain_drawn:  # its first plain call raises: it has no plain path
                    raise _NoPlainPath from exc
                if not generator_misused(exc):
                    raise  # not an error about the generator's own type
                raise TypeError(generator_misuse_message(exc, "its feature map", "a function of the inputs, or code "
                                                         "returning one that draws from the global generators")) \
                    from exc
        else:
            try:
                fm = self.sample(gen, batch=batch)
            except TypeError as exc:  # e.g. batched=True for a sampler without batch=: say which call failed
                raise TypeError(f"sample(generator, batch={batch}) raised TypeError: {exc}; a sampler that takes no "
                                "batch= argument is called with batched=False (or None, to detect it)") from exc
        if self.bind is not None:  # copies: a bind step that centres its arguments in place cannot move the points
            fm = self.bind(fm, self.xq.clone(), self.xk.clone())
        return _split_sides(fm)

    def _seen(self, fn, raw):
        """``fn``, recording in ``self.eps`` the precision of the features it returns: their dtype, or the coarser
        ``feature_dtype`` that the feature function ``raw`` declares after the call (:func:`~kerneltheory.testing.
        adapters.from_module` computes in the module's dtype and returns float64)."""

        def call(x):
            out = fn(x)
            declared = getattr(raw, "feature_dtype", None)
            if declared is not None and not (isinstance(declared, torch.dtype) and declared.is_floating_point):
                raise ValueError(f"feature_dtype must be a floating torch.dtype (torch.float32, torch.float16, "
                                 f"torch.bfloat16): the format the features were computed in; got {declared!r}")
            for dt in (getattr(out, "dtype", None), declared):
                if isinstance(dt, torch.dtype) and dt.is_floating_point and dt not in self._dtypes_seen:
                    self._dtypes_seen.add(dt)
                    self.eps = max(self.eps, torch.finfo(dt).eps)
            if self.carried is None and isinstance(out, torch.Tensor) and out.dtype == torch.float64:
                # attention_exact imports this module: its reading is imported here, at the first call
                from .attention_exact import output_format

                self.carried = output_format(out)  # the attention audit's reading of the same question
            return out

        return call

    def features(self, gen, x_q, x_k, batch=None):
        q, k = self._maps(gen, batch)
        # a single feature function serves both sides: its errors name it so (a user trial read "query_fn" as a
        # function it had not written)
        qn, kn = ("the feature function",) * 2 if q is k else ("query_fn", "key_fn")
        out = (_features(self._seen(_named(q, qn), q), x_q, qn, batch),
               _features(self._seen(_named(k, kn), k), x_k, kn, batch))
        if out[0].shape[-1] != out[1].shape[-1]:
            raise ValueError(f"query and key features must have one size D (φ(x)ᵀφ(y) needs it): {qn} returned "
                             f"{tuple(out[0].shape)} and {kn} {tuple(out[1].shape)}")
        if batch is None:
            self.plain_drawn = True
        if self.watch is not None:
            self._watch(out, x_q, x_k, batch)
        return out

    def _watch(self, out, x_q: torch.Tensor, x_k: torch.Tensor, batch: int | None) -> None:
        """Count the non-finite and the non-positive values of a draw's features (``[n, D]``, or ``[batch, n, D]``)
        in ``self.watch`` ({"claims", "draws", "values", "finite", "positive", "finite_example",
        "positive_example"}; only the properties in "claims" are read), keeping the first example of each: the positive
        and finite claims read every map the statistical checks draw."""
        from .checks import feature_example  # checks imports this module

        w = self.watch
        first = w["draws"]
        w["draws"] += 1 if batch is None else batch
        for side, f, pts in (("query", out[0], x_q), ("key", out[1], x_k)):
            w["values"] += f.numel()
            if f.numel() == 0:
                continue
            lo, hi = (float(t) for t in torch.aminmax(f))  # one pass; NaN fails both comparisons below
            holds = {"finite": lo > -math.inf and hi < math.inf, "positive": lo > 0}
            for claim in w["claims"]:
                if holds[claim]:
                    continue
                bad = ~torch.isfinite(f) if claim == "finite" else ~(f > 0)
                count = int(bad.sum())
                if count:
                    w[claim] += count
                    if w[f"{claim}_example"] is None:
                        idx = [int(i) for i in torch.nonzero(bad)[0]]
                        draw = first + (idx[0] if batch is not None else 0)
                        w[f"{claim}_example"] = feature_example(float(f[tuple(idx)]), float(pts[idx[-2]].norm()),
                                                                side=side, draw=draw)

    def _plain(self, gen, x_q, x_k):
        """One draw's features through the plain path ``sample(generator)``, or None where that path turns out not
        to exist (its first call raised, :class:`_NoPlainPath`): the sampler is drawn batched only from then on. A
        later failure of the plain path of a mixed sampler names the path and the exception, as a ValueError or a
        TypeError whatever subclass was raised (a subclass may take other arguments)."""
        try:
            return self.features(gen, x_q, x_k)
        except _NoPlainPath:  # no plain path at all ("use batch="): every draw batched
            self.mixed = False
            return None
        except Exception as exc:
            if not self.mixed:
                raise
            kind = TypeError if isinstance(exc, TypeError) else ValueError
            raise kind(f"the plain path sample(generator) of a sampler whose batch defaults to None (drawn beside "
                       f"its batched path; batched=True draws every draw batched): {type(exc).__name__}: {exc}"
                       ) from exc

    def one_draw(self, gen, x_q, x_k, plain: bool = True):
        """One draw's ``[n, D]`` features: through ``sample(generator)`` when ``plain`` (and the sampler has a plain
        path), else through ``sample(generator, batch=1)`` for a batched sampler."""
        if plain or not self.batched:
            drawn = self._plain(gen, x_q, x_k)
            if drawn is not None:
                return drawn
        fq, fk = self.features(gen, x_q, x_k, batch=1)
        return fq[0], fk[0]

    def split(self, r: int) -> list[int]:
        """The stretches of a block of r draws through each path, in order (:meth:`__call__`): ⌈r/4⌉ plain, then the
        rest batched, for a sampler with both paths; one stretch otherwise. Under the claim each stretch is iid, while a
        path that draws another law shifts its own stretch only (dependence.serial_z reads each stretch alone)."""
        plain = self._plain_count(r)
        return [s for s in (plain, r - plain) if s]

    def _plain_count(self, r: int) -> int:
        """How many of a block of r draws go through the plain path: ⌈r/4⌉ for a sampler with both paths, none for a
        batched-only one, all for a sampler without a batched path."""
        return (-(-r // 4) if self.mixed else 0) if self.batched else r

    def __call__(self, gen: torch.Generator, r: int) -> torch.Tensor:
        """``[r, P]`` estimates of r independent draws. A batched sampler with a plain path (``batch=None`` by
        default) draws ⌈r/4⌉ of them through ``sample(generator)`` and the rest at once through
        ``sample(generator, batch=…)``: both paths claim one law, so under the claim the r draws are still iid from
        it, while a defect in either path (the plain one is the path a model calls) biases the estimates the checks
        test. One whose ``batch`` is required or defaults to a number, whose first call ``sample(generator)``
        raises (no plain path; a map it returns is checked as any other), or ``batched=True``, draws them all
        batched."""
        with torch.no_grad(), kept_global_states():
            plain = self._plain_count(r)
            # one draw at a time, each reduced to its estimates at once: memory O(n·D) whatever r
            rows = []
            for _ in range(plain):
                drawn = self._plain(gen, self.xq, self.xk)
                if drawn is None:
                    break
                rows.append(self._estimates(drawn[0].unsqueeze(0), drawn[1].unsqueeze(0)))
            plain = len(rows)
            if r > plain:
                rows.append(self._estimates(*self.features(gen, self.xq, self.xk, batch=r - plain)))
            return torch.cat(rows)

    def at_columns(self, columns: torch.Tensor) -> _Evaluator | None:
        """An evaluator of the same sampler at the pairs of the given estimate columns alone (one pair family of
        their query and key points: a cross family's column i·L + j is (x_i, x_j)), or None where a bind step ties the
        estimates to all the points. The dependence tests' fresh draws need those pairs only: a draw's estimate at a
        pair does not depend on the other points of a row-wise map, and the fresh blocks' test is valid at any points
        (it compares fresh blocks with each other)."""
        if self.bind is not None:
            return None
        q = torch.cat([f.pairs()[0] for f in self.order])[columns]
        k = torch.cat([f.pairs()[1] for f in self.order])[columns]
        return _Evaluator(self.sample, [InputFamily("fresh", q, k)], None, self.batched)

    def draw_batched(self, gen: torch.Generator, r: int) -> torch.Tensor:
        """``[r, P]`` estimates of r draws through the batched path alone, one call ``sample(generator, batch=r)``
        (a sampler with a batched path): the fresh blocks of the dependence tests look for draws shared within a
        batch, which only this path can share (dependence between plain calls is the serial test's)."""
        with torch.no_grad(), kept_global_states():
            return self._estimates(*self.features(gen, self.xq, self.xk, batch=r))

    def _estimates(self, fq: torch.Tensor, fk: torch.Tensor) -> torch.Tensor:
        """``[r, P]`` estimates from the query and key features ``[r, n, D]`` of r draws."""
        n = self.num_pairs
        if not self.cross:  # pair families only: their estimates are the row-wise products, in family order
            return (fq * fk).sum(-1)
        parts, start = [(fq[:, :n] * fk[:, :n]).sum(-1)], n
        for size in self._cross_sizes:
            parts.append((fq[:, start : start + size] @ fk[:, start : start + size].transpose(1, 2)).flatten(1))
            start += size
        out = torch.cat(parts, 1)  # pair families' columns, then each cross family's: _columns puts them in order
        return out if self._columns is None else out[:, self._columns]


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` hold the same values: one shape, NaN at the same positions (NaN equals only NaN) and
    every other entry equal (±inf included). The reproducibility checks compare two runs with it; ``nan_to_num``
    would read NaN as 0, so a run giving NaN where the other gives 0 would pass as the same."""
    if a.shape != b.shape:
        return False
    nan = torch.isnan(a)
    return torch.equal(nan, torch.isnan(b)) and bool((a[~nan] == b[~nan]).all())


def _difference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """|x − y| in float64, entry by entry, with NaN equal only to NaN: 0 where the entries are equal or both NaN,
    NaN where only one is (a difference no floor covers), ∞ between a number and an infinity."""
    x, y = x.to(torch.float64), y.to(torch.float64)
    return torch.where((x == y) | (torch.isnan(x) & torch.isnan(y)), 0.0, (x - y).abs())


def _one_number(a: torch.Tensor, b: torch.Tensor, floor_a, floor_b) -> bool:
    """Whether two evaluations ``a``, ``b`` of one draw are the same numbers: equal (:func:`_same_values`), or, NaN at
    the same places, every entry within 2·(floor_a + floor_b) (each run's own rounding floor, broadcasting against
    the entries): two evaluations of one exact number differ by at most the sum of their errors, a bound symmetric in
    the runs, with a factor 2 of margin. The reproducibility checks of maps, samplers and attentions all use it."""
    if _same_values(a, b):
        return True
    if a.shape != b.shape or not torch.equal(torch.isnan(a), torch.isnan(b)):
        return False
    gap = _difference(a, b)
    return bool(((gap == 0) | (torch.isfinite(gap) & (gap <= 2 * (floor_a + floor_b)))).all())
