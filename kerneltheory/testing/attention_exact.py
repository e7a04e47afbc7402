r"""The exact rows of :func:`~kerneltheory.testing.attention_audit.check_attention`: batch, padding, causality, order,
and the determinism and reproducibility they rest on (proofs/attention_audit.md, items 3, 6, 9, 10 and 14).

Each row compares two computations of one exact number by the same function with one draw, at the check's short
length L and again at ``exact_length`` (513 by default, past the chunk sizes 64, 128 and 256 of chunked
implementations, where a state carried between chunks can be wrong while the first chunk is right):

* **batch** — ``fn`` on a batch of nine sequences (three at the longer length, :data:`BATCH_SIZES`) against ``fn`` on
  each sequence alone (a sum over the batch axis, a statistic of the whole batch, a state carried between chunks of
  the batch, shows); no mask, so it runs with ``mask=False`` as well.
* **padding[right]**, **padding[left]**, **padding[gap]** — outputs at kept positions against those of the sequences
  of the kept tokens alone (:func:`padding_masks`); masked tokens hold large random values.
* **causality** — replacing the tokens from position t on (t = 1, ⌊L/2⌋ + 1, L − 1: the middle one off the
  chunk boundaries) leaves the outputs before t unchanged, and the attention matrix, read at the first length and on
  the longest sequence called, puts no weight above a rounding floor on a later key (:func:`_later_weights_row`);
  the queries whose weights there do not sum to 1 (a later key counted in a normaliser alone) are compared with
  their later tokens replaced (:func:`_normaliser_cases`).
* **order** — attention sums over a set of keys: permuting the tokens permutes the outputs (non-causal); for causal
  attention, shuffling the tokens within the stretches between the fixed odd positions of :func:`order_points`
  leaves the outputs at those t unchanged (each sees the same set of earlier keys). The key just before each t is
  always replaced, so a chunked state that drops its normaliser fails at L = 513 (chunks of 64, 128 or 256) without a
  mask, as does a parameter tied to a position. Then the keys and values moved with the queries kept
  (:func:`key_cycle`): every output unchanged, or for causal attention those at the powers of two and L − 1
  (:func:`key_points`), which a chunk's first query missing its own key or a state missing a chunk's last key
  changes. A length of 1 is left out, and the row refused if every length is. The order row runs at
  ``long_length`` (1024) as well, where the keys moved before L − 1 cross the boundary of chunks of 514 to 1023
  tokens (proofs/attention_audit.md, item 14(e)).

They pass iff every entry differs by at most the rounding floor of two evaluations of a normalised positive-weight
attention (Higham 2002, §3): out_ic = Σ_j a_ij v_jc with a_ij ≥ 0, Σ_j a_ij = 1, so Σ_j |a_ij||v_jc| = fn(q, k, |v|)_ic,
and

    |Δout_ic| ≤ 2 Σ_{both runs} [(γ_N + 2δ)(fn(q, k, |v|)_ic + |out_ic|) + u|out_ic|],

γ_N = Nu/(1 − Nu), N = L + 2m + 1 (sums over keys and over up to 2m features), δ = u(1 + (√d + 6)·max‖x‖ +
max‖x‖²) the rounding of exp at the largest argument of an exponential feature with Gaussian frequencies. u is the
unit roundoff of the format the outputs were computed in (:func:`output_format`): the declared ``output_dtype``, else
the coarsest of bfloat16, float16 and float32 narrower than the returned dtype that holds every output entry (a
function that computes in float32 and returns ``.to(q.dtype)`` returns float32 numbers), else the returned dtype.
Where the bound does not exist (N·u ≥ 1) or cannot fail (γ_N + 2δ ≥ 1/4: the compared floor, twice the two runs'
floors, each at least 2(γ_N + 2δ)|out|, exceeds |a| + |b| ≥ |a − b|), a comparison whose outputs differ decides
nothing, naming the dtype and N (:class:`NoRoundingBound`): the row fails on its comparisons that have a floor and is
refused only when none of them fails; outputs that are equal need no bound. NaN equals only NaN. The floor holds for
non-negative weights only: a row whose outputs differ by more is refused, not failed, where the function's attention
matrix on one sequence without a mask has material negative weights (signed features, whose sums cancel;
:func:`_signed_weights`).
The function is always called on copies of the check's tensors.
"""

from __future__ import annotations

import math

import torch

from .._validation import check_fits_memory
from .checks import CheckResult, property_check
from .sampler_rounding import FORMATS, _name, carried_format
from .user_calls import DROPOUT_OFF, _difference, _one_number, _same_values

__all__ = ["BATCH_SIZES", "FORMATS", "PADDINGS", "NoRoundingBound", "gamma_delta", "output_format", "padding_masks",
           "rounding_floor_attention"]

PADDINGS = ("right", "left", "gap")  # the padding rows, padding[right] ... (padding_masks)
VACUOUS = 0.25  # γ_N + 2δ from which the compared floor exceeds |a| + |b| (proofs/attention_audit.md, item 3)
_F64 = torch.float64


class NoRoundingBound(ValueError):
    """The rounding floor of an exact comparison does not exist (N·u ≥ 1) or could not fail (γ_N + 2δ ≥ 1/4)."""


class CallFailed(ValueError):
    """The attention function raised on the inputs it was given (:func:`_call`; its own error is the cause)."""


def _inputs(b: int, length: int, d: int, std: float, g: torch.Generator):
    q = torch.randn(b, length, d, generator=g, dtype=_F64) * std
    k = torch.randn(b, length, d, generator=g, dtype=_F64) * std
    v = torch.randn(b, length, d, generator=g, dtype=_F64)
    return q, k, v


def _call(fn, q, k, v, mask=None) -> torch.Tensor:
    """fn(q, k, v[, mask]) on copies, returning a copy of its output: a function that works in place (``q *= scale``)
    must not change the check's own tensors, which later calls and the exact reference reuse, and one that returns a
    buffer it overwrites at every call (preallocated outputs) must not change an output already returned."""
    q, k, v = q.clone(), k.clone(), v.clone()
    try:
        out = fn(q, k, v) if mask is None else fn(q, k, v, mask=mask.clone())
    except Exception as exc:  # say which call failed; the function's own message follows
        with_mask = " and a key mask" if mask is not None else ""
        hint = (" (a module audited through attention_from_module takes mask= the name of its mask argument; a "
                "function that takes no key mask is audited with mask=False; kerneltheory audit: --no-mask)"
                if mask is not None and isinstance(exc, TypeError) and "mask" in str(exc) else "")
        raise CallFailed(f"the attention function failed on q, k, v of shape {tuple(q.shape)}{with_mask} (is dim = "
                         f"{q.shape[-1]} its head dimension? a module that takes [B, L, H, d] or [B, H, L, d] goes "
                         f"through adapters.attention_from_module(..., layout=...)): {type(exc).__name__}: {exc}"
                         f"{hint}") from exc
    want = f"[B, L, d_v] = {(*q.shape[:-1], v.shape[-1])} for q of shape {tuple(q.shape)} and v of {tuple(v.shape)}"
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"the attention function must return a torch.Tensor {want}, got {type(out).__name__}"
                         f"{' of shape ' + str(tuple(out.shape)) if hasattr(out, 'shape') else ''}")
    if out.shape[:-1] != q.shape[:-1] or out.shape[-1] != v.shape[-1]:
        raise ValueError(f"the attention function must return {want}, got {tuple(out.shape)}")
    if not out.is_floating_point():
        raise ValueError(f"the attention function must return floating-point outputs, got {out.dtype}")
    return out.detach().clone()


#: Entries with at most this many significant bits (0 included) are numbers of every format: they say nothing about
#: the format a function computed in, and :func:`output_format` leaves them out of its reading.
TRIVIAL_BITS = 4


def output_format(out: torch.Tensor, declared: torch.dtype | None = None) -> torch.dtype:
    """The format whose rounding bounds ``out``: ``declared`` when given, else the coarsest of bfloat16, float16 and
    float32 with a larger unit roundoff than ``out.dtype`` in which every entry of ``out`` (NaN aside) is a number,
    else ``out.dtype``. A function that computes in float32 and returns float64 returns float32 numbers, whose
    rounding is float32's; reading a coarser format than the one used only enlarges the floor. Entries of at most
    :data:`TRIVIAL_BITS` significant bits (zeros, small integers, halves) are left out of the reading: every format
    holds them, and outputs of a defect that are all such (all zeros) were read as bfloat16 and refused instead of
    failed (proofs/attention_audit.md, item 9)."""
    if declared is not None:
        return declared
    kept = out.detach().to(torch.float64).cpu()
    if out.dtype == torch.float64:  # a float64 result: one of its first entries is usually no float32 number, and
        # bfloat16's and float16's numbers are float32 numbers too, so such an entry settles the reading at once
        head = kept.flatten()[:HEAD]
        head = _nontrivial(head[torch.isfinite(head)])
        if bool((head.to(torch.float32).to(torch.float64) != head).any()):
            return out.dtype
    kept = _nontrivial(kept[torch.isfinite(kept)])  # NaN and infinities are numbers of every format too
    if kept.numel() == 0:
        return out.dtype
    fmt = FORMATS[int(carried_format(kept.reshape(1, -1))[0])]  # the one reading of the samplers' checks
    return fmt if torch.finfo(fmt).eps > torch.finfo(out.dtype).eps else out.dtype


HEAD = 4096  # the entries output_format reads first


def _nontrivial(values: torch.Tensor) -> torch.Tensor:
    """The entries of ``values`` (finite, float64) with more than :data:`TRIVIAL_BITS` significant bits."""
    mantissa, _ = torch.frexp(values)
    scaled = mantissa * 2.0**TRIVIAL_BITS
    return values[scaled != torch.round(scaled)]


def matrix_fits(length: int) -> None:
    """Refuse (ValueError) an [L, L] attention matrix read in float64 (kept twice while its columns are joined) that
    would need more than half of the machine's memory, naming the lengths to lower."""
    check_fits_memory(16.0 * length * length, f"the attention matrix of the causality row at L = {length}",
                      "a smaller long_length or exact_length (kerneltheory audit: --long-length, --exact-length)")


def gamma_delta(u: float, n: int, q: torch.Tensor, k: torch.Tensor) -> tuple[float, float]:
    """γ_N = Nu/(1 − Nu) (∞ where Nu ≥ 1) and δ = u(1 + (√d + 6)·max‖x‖ + max‖x‖²) over the rows of ``q`` and ``k``:
    the rounding of N-term sums and of exp at the largest argument of an exponential feature (module docstring)."""
    gamma = n * u / (1 - n * u) if n * u < 1 else math.inf
    norm = float(torch.cat([q, k], -2).norm(dim=-1).max())
    return gamma, u * (1 + (math.sqrt(q.shape[-1]) + 6) * norm + norm**2)


def rounding_floor_attention(fn, q, k, v, out, num_features: int, mask=None, *, precision=None) -> torch.Tensor:
    """One evaluation's rounding bound (γ_N + 2δ)(fn(q, k, |v|) + |out|) + u|out| (module docstring), float64, with u
    that of :func:`output_format` (``precision``: the declared format). Raises :class:`NoRoundingBound` where the
    bound does not exist (N·u ≥ 1) or could not fail (γ_N + 2δ ≥ 1/4)."""
    fmt = output_format(out, precision)
    u = torch.finfo(fmt).eps / 2
    n = q.shape[-2] + 2 * num_features + 1
    gamma, delta = gamma_delta(u, n, q, k)
    if not gamma + 2 * delta < VACUOUS:
        read = "" if fmt == out.dtype else f", read from {_name(out.dtype)} outputs that are all {_name(fmt)} numbers"
        why = (f"N·u = {n * u:.3g} ≥ 1, where Higham's γ_N does not exist" if n * u >= 1 else
               f"γ_N + 2δ = {gamma + 2 * delta:.3g} ≥ 1/4, where the compared floor exceeds |a| + |b| ≥ |a − b| and no "
               "difference could fail")
        if 2 * delta >= VACUOUS:  # the inputs' norms alone: fewer terms cannot help
            norm = float(torch.cat([q, k], -2).norm(dim=-1).max())
            fix = (f"the exponential's rounding at inputs of norm up to {norm:.3g} alone gives 2δ = {2 * delta:.3g} ≥ "
                   "1/4, so fewer terms would not help: smaller inputs (check_attention's input_std) or outputs "
                   "computed in a wider dtype give a verdict")
        else:
            fix = (f"a verdict needs at least N < {int(1 / (5 * u))} (a smaller length, exact_length, long_length or "
                   "num_features[1]; kerneltheory audit: --length, --exact-length, --long-length), smaller inputs "
                   "(check_attention's input_std, which lowers δ) or outputs computed in a wider dtype")
        raise NoRoundingBound(
            f"no rounding floor for {_name(fmt)} outputs (u = {u:.3g}{read}) summing N = {n} terms (L = "
            f"{q.shape[-2]} keys + 2·{num_features} features + 1): {why}; {fix}")
    mag = _call(fn, q, k, v.abs(), mask).to(_F64).abs()
    o = out.to(_F64).abs()
    return (gamma + 2 * delta) * (mag + o) + u * o


class _Run:
    """One evaluation ``out = fn(q, k, v, mask)`` and, computed once when a comparison needs it, its rounding floor."""

    def __init__(self, fn, q, k, v, m: int, mask=None, precision=None, out=None, least=None):
        self.fn, self.q, self.k, self.v, self.m, self.mask, self.precision = fn, q, k, v, m, mask, precision
        self.out = _call(fn, q, k, v, mask) if out is None else out
        self.least = least  # a format the floor is at least as coarse as (the dtype the inputs came in)
        self.doubled = False  # a prefix of another run written twice (the order row), which _signed_weights skips
        self._floors: dict = {}

    def floor(self, fmt: torch.dtype | None = None) -> torch.Tensor:
        """The floor at ``precision`` (declared, or None: read from the outputs by rounding_floor_attention), or at
        ``fmt`` in its place (what :func:`_within_float32` asks); each computed once."""
        if fmt not in self._floors:
            declared = self.precision if fmt is None else fmt
            if self.least is not None:  # the coarsest of the declared, the read and the least format
                declared = max((output_format(self.out), self.least, *([declared] if declared else [])),
                               key=lambda f: torch.finfo(f).eps)
            self._floors[fmt] = rounding_floor_attention(self.fn, self.q, self.k, self.v, self.out, self.m, self.mask,
                                                         precision=declared)
        return self._floors[fmt]


def _agree(fn_a, fn_b, q, k, v, a, b, m: int, mask=None, precision=None) -> bool:
    """Whether two outputs of one draw, ``a`` = fn_a(q, k, v) and ``b`` = fn_b(q, k, v), are the same number: NaN at
    the same positions (NaN equals only NaN), and every other entry equal or, both finite, within the bound of the
    module docstring, 2·(floor(a) + floor(b)) with each run's own floor (:func:`rounding_floor_attention`): two
    evaluations of one exact number differ by at most the sum of their errors, a bound symmetric in the runs. The
    floors are computed only when the outputs differ (:class:`NoRoundingBound` may then be raised)."""
    if _same_values(a, b):
        return True
    if a.shape != b.shape or not torch.equal(torch.isnan(a), torch.isnan(b)):
        return False
    return _one_number(a, b, rounding_floor_attention(fn_a, q, k, v, a, m, mask, precision=precision),
                       rounding_floor_attention(fn_b, q, k, v, b, m, mask, precision=precision))


def _determined(fn, q, k, v, m, mask, name, alpha, seed, precision) -> tuple[_Run | None, CheckResult | None]:
    """The run of ``fn`` on these inputs, after a determinism check (two calls with one draw agree, :func:`_agree`),
    or a refusal: a function that redraws on every call cannot be compared."""
    a, b = _call(fn, q, k, v, mask), _call(fn, q, k, v, mask)
    try:
        if _agree(fn, fn, q, k, v, a, b, m, mask, precision):
            return _Run(fn, q, k, v, m, mask, precision, out=a), None
        why = "(does it redraw on every call?)"
    except NoRoundingBound as exc:
        why = f"by more than 0, and {exc}"
    return None, CheckResult.refusal(f"the attention function gives different outputs on two calls with one draw "
                                     f"at L = {q.shape[-2]} {why}: nothing to compare", name=name,
                                     claim=name.split("[")[0], alpha=alpha, sample_size=a.numel(), seed=seed)


def _check_reproducible(attention, q, k, v, m: int, seed: int, precision=None) -> None:
    """Two factories built from identically seeded generators must give the same output (:func:`_agree`: up to the
    rounding of one evaluation each, since a kernel whose reductions are not deterministic, as some CUDA kernels are,
    reassociates its sums from call to call); otherwise the function draws from somewhere else (the global
    generators), and no verdict could be replayed from the seed."""
    try:
        fn_a, fn_b = (attention(m, torch.Generator().manual_seed(seed)) for _ in range(2))
    except Exception as exc:
        raise ValueError(f"attention(num_features, generator) raised when called as attention({m}, generator): "
                         f"{type(exc).__name__}: {exc}. check_attention takes a factory that builds the attention "
                         "function fn(q, k, v, mask=None) from m random features drawn from the generator; a module "
                         "goes through adapters.attention_from_module(lambda m: Module(..., m)), and a feature-map "
                         "sampler sample(generator) through check_feature_map (kerneltheory audit without "
                         "--attention)") from exc
    for fn in (fn_a, fn_b):
        if not callable(fn):
            raise ValueError(f"attention(m, generator) must return the attention function fn(q, k, v, mask=None), got "
                             f"{type(fn).__name__}")
    a, b = _call(fn_a, q, k, v), _call(fn_b, q, k, v)
    try:
        same = _agree(fn_a, fn_b, q, k, v, a, b, m, precision=precision)
    except NoRoundingBound as exc:
        raise ValueError("attention(m, generator) built twice from identically seeded generators gives outputs that "
                         f"differ, and whether by rounding alone cannot be decided: {exc}") from exc
    if not same:
        raise ValueError("attention(m, generator) built twice from identically seeded generators gives different "
                         "outputs: it must draw its features only from the generator it is given. " + GLOBAL_FIX
                         + _training_hint(fn_a))


#: how code that draws from torch's global generator is audited (the errors of a factory that does not replay)
GLOBAL_FIX = ("Code that draws from torch's global generator when the factory builds it goes through "
              "adapters.global_rng (or attention_from_module for a module); a function that draws from it on every "
              "call (a redraw in forward), through adapters.global_rng_calls(fn, generator, same_seed=True), which "
              "seeds every call of one draw alike (attention_from_module(..., forward_redraws=True) for a module). "
              "Those seed torch's generator only: code that draws from numpy's or random's global generators when it "
              "runs is seeded by running each call inside adapters.global_rng(generator), or by drawing from torch. "
              "Dropout left on is no redraw: its mask follows each call's shape, so calls seeded alike still differ "
              "between shapes; " + DROPOUT_OFF)


def _training_hint(fn) -> str:
    """A hint for a factory that returned an ``nn.Module`` left in training mode (dropout draws on every call)."""
    if isinstance(fn, torch.nn.Module) and any(mod.training for mod in fn.modules()):
        return ("; the factory returned an nn.Module in training mode, where dropout draws on every call: return "
                "module.eval(), or build it through attention_from_module, which does")
    return ""


def _keys(positions: list[int]) -> str:
    if len(positions) <= 6:
        return str(positions)
    return f"[{positions[0]}, {positions[1]}, {positions[2]}, …, {positions[-1]}] ({len(positions)} keys)"


def _precision_note(runs) -> str:
    """What the floors' unit roundoff was read from, where it is not the returned dtype's."""
    declared = {r.precision for r in runs} - {None}
    if declared:
        return "".join(f"; {_name(p)}'s rounding (output_dtype)" for p in declared)
    read = sorted({(_name(r.out.dtype), _name(output_format(r.out))) for r in runs})
    return "".join(f"; the {t} outputs are all {f} numbers: {f}'s rounding" for t, f in read if t != f)


def _exact_row(name, claim, pairs, runs, alpha, seed, what) -> CheckResult:
    """The row of comparisons ``pairs`` = [(|Δout|, floor thunk)] (the thunk takes an optional format to read the
    floor at, :meth:`_Run.floor`): a floor is computed only for a comparison whose
    outputs differ (equal outputs need no bound), and none when some difference is not finite (NaN against a number
    fails whatever the floor). A comparison whose floor does not exist (:class:`NoRoundingBound`) decides nothing: the
    row fails on the comparisons that have one, and is refused when none of those fails and one without differs."""
    diff = torch.cat([d.flatten() for d, _ in pairs])
    finite = bool(torch.isfinite(diff).all())
    floors, missing = [], None
    for d, f in pairs:
        floor = torch.zeros(d.numel(), dtype=_F64)
        if finite and bool((d != 0).any()):
            try:
                floor = 2 * f().flatten()
            except NoRoundingBound as exc:  # this comparison has no floor; the others still decide
                floor, missing = torch.full((d.numel(),), math.nan, dtype=_F64), missing or exc
        floors.append(floor)
    floor = torch.cat(floors)
    bounded = ~torch.isnan(floor)
    ratio = torch.where(floor > 0, diff / floor, torch.where(diff > 0, math.inf, 0.0))
    ratio = torch.where(bounded, ratio, torch.zeros_like(ratio))
    bad = int((ratio > 1).sum()) if finite else diff.numel()
    signed = _signed_weights(runs) if finite and bad else None
    if signed is not None:  # the floor is proved for non-negative weights only: exceeding it decides nothing
        return CheckResult.refusal(
            f"{what}: the outputs differ by up to {float(ratio.max()):.3g}× the rounding floor, but {signed}; the "
            "floor is proved for non-negative weights (proofs/attention_audit.md, item 3), so the difference decides "
            "nothing", name=name, claim=claim, alpha=alpha, sample_size=diff.numel(), seed=seed)
    if missing is not None and bad == 0:
        return CheckResult.refusal(f"{what}: the outputs differ (max |Δout| = {float(diff.max()):.3g}), and {missing}",
                                   name=name, claim=claim, alpha=alpha, sample_size=diff.numel(), seed=seed)
    worst = float(ratio.max()) if ratio.numel() else 0.0
    if finite and bad and missing is None and _within_float32(pairs, runs):
        return CheckResult.refusal(
            f"{what}: the outputs differ by up to {worst:.3g}× the rounding floor of their format, but within the "
            "floor of outputs computed in float32, and the function reads q and k through a float32 step (their "
            "entries changed by ±2⁻⁴⁰ in turn leave its outputs as they are, by ±2⁻²⁰ do not): with part of its work "
            "in float32 and wider outputs, its rounding cannot be told from a defect this small "
            "(proofs/attention_audit.md, item 9); declare output_dtype=torch.float32 (kerneltheory audit "
            "--output-dtype float32) to compare at float32's rounding",
            name=name, claim=claim, alpha=alpha, sample_size=diff.numel(), seed=seed)
    note = _precision_note(runs) + ("" if missing is None else f"; comparisons without a floor left out ({missing})")
    if finite:
        size = f"max |Δout| = {float(diff.max()):.3g}, {worst:.3g}× the rounding floor"
    else:  # NaN against a number, or a number against an infinity: no size and no floor (it read "nan, 0×")
        size = (f"{int((~torch.isfinite(diff)).sum())} of {diff.numel()} outputs are not finite in one run and finite "
                "or another infinity in the other (NaN against a number, a number against ±∞)")
    row = property_check(bad, diff.numel(), claim=claim, name=name, seed=seed, alpha=alpha,
                         example=f"{what}: {size}{note}")
    row.method, row.statistic = "rounding floor", worst
    return row


FLOAT32_PROBE = 2.0**-40  # a relative change of q and k far below float32's resolution 2⁻²⁴ and far above float64's
FLOAT32_VISIBLE = 2.0**-20  # one above float32's resolution: a float32 step carries it to the outputs


def _float32_step(run) -> bool:
    """Whether ``run``'s function reads q and k through a float32 (or coarser) step: with the entries of q and k
    scaled by 1 ± :data:`FLOAT32_PROBE` in turn, which a float32 rounding of them (or of anything computed from them
    at a relative precision ≥ 2⁻²⁴) erases and a float64 computation carries to its outputs, at least half of the
    outputs stay bitwise the same; and with them scaled by 1 ± :data:`FLOAT32_VISIBLE`, above float32's resolution,
    at least half change (a function whose outputs depend on q and k only through a discrete step, or not at all,
    has no float32 step to blame)."""
    if run.q.dtype != _F64:
        return False

    def alternate(x: torch.Tensor, rel: float) -> torch.Tensor:  # entries scaled by 1 ± rel in turn: no pure scaling,
        sign = 1 - 2 * (torch.arange(x.numel(), dtype=_F64) % 2)  # which a function normalising q and k would erase
        return x * (1 + rel * sign.reshape(x.shape))

    def same_share(rel: float) -> float | None:
        out = _call(run.fn, alternate(run.q, rel), alternate(run.k, rel), run.v, run.mask)
        if out.shape != run.out.shape:
            return None
        return float(((out == run.out) | (torch.isnan(out) & torch.isnan(run.out))).to(_F64).mean())

    below = same_share(FLOAT32_PROBE)
    if below is None or below < 0.5:
        return False
    above = same_share(FLOAT32_VISIBLE)
    return above is not None and above <= 0.5


def _within_float32(pairs, runs) -> bool:
    """Whether a failed row is explained by a float32 step inside a function with float64 outputs: its floors were
    read at a format finer than float32 (nothing declared), the function reads q and k through a float32 step
    (:func:`_float32_step`), and every difference of ``pairs`` is within the floors of the same runs at float32's unit
    roundoff. Such a function returns numbers that are not float32 numbers, so its floor is read at float64 while its
    rounding is float32's: its differences within that floor are refused, not failed (never passed). A float64
    function's small defects still fail."""
    eps32 = torch.finfo(torch.float32).eps
    if any(r.precision is not None for r in runs) or not any(
            torch.finfo(output_format(r.out)).eps < eps32 and (r.least is None or torch.finfo(r.least).eps < eps32)
            for r in runs):
        return False
    try:
        within = all(bool((d.flatten() <= 2 * f(torch.float32).flatten()).all()) for d, f in pairs
                     if bool((d != 0).any()))
    except NoRoundingBound:
        within = False
    return within and _float32_step(next((r for r in runs if r.mask is None), runs[0]))


NEGATIVE_SHARE = 1e-3  # a row's negative weights, as a share of Σ_j |a_ij|, from which the weights count as signed


def _attention_matrix(fn, q, k, width: int) -> torch.Tensor | None:
    """The ``[L, L]`` attention matrix of ``fn`` on one sequence without a mask: values the unit vectors, ``width``
    keys at a time (out_ic = a_i,j for the value e_c at key j), once the outputs at values 0 are 0 (an attention is
    linear in its values; a function that is not, one that mixes in other heads' tokens, has no such matrix).
    None where there is none, or the function does not take those values. A matrix whose float64 entries (kept
    twice while the columns are joined) would need more than half of the machine's memory is refused before any call,
    naming the lengths to lower."""
    length = q.shape[-2]
    matrix_fits(length)
    try:
        blocks = _unit_value_blocks(fn, q, k, width)
        return None if blocks is None else torch.cat([out[0] for _, out in blocks], -1)
    except ValueError:
        return None


def _unit_value_blocks(fn, q, k, width: int):
    """The attention matrix of ``fn`` on each sequence of ``q, k`` ``[B, L, d]`` in blocks of ``width`` keys, read
    with values the unit vectors (out_b,i,c = a_b,i,j for the value e_c at key j): an iterator of
    ``(keys, a[:, :, keys])``, float64, one call a block (one block held at a time); None where the outputs at values
    0 are not all 0 (no matrix). A ValueError where the function does not take those values propagates, from this
    call or from the iteration (the one reading of :func:`_attention_matrix` and :func:`_later_rounding`)."""
    batch, length = q.shape[0], q.shape[-2]
    if bool((_call(fn, q, k, torch.zeros(batch, length, width, dtype=q.dtype)) != 0).any()):
        return None

    def blocks():
        for start in range(0, length, width):
            keys = torch.arange(start, min(start + width, length))
            unit = torch.zeros(batch, length, width, dtype=q.dtype)
            unit[:, keys, torch.arange(keys.numel())] = 1
            yield keys, _call(fn, q, k, unit)[..., : keys.numel()].to(_F64)
    return blocks()


def _signed_weights(runs) -> str | None:
    """Where the attention's weights are signed: on one sequence without a mask, the tokens of a run of the row cut
    to the row's shortest length, some row of the attention matrix (:func:`_attention_matrix`) has negative weights
    of more than :data:`NEGATIVE_SHARE` of its Σ_j |a_ij| (signed features, trigonometric ones, whose products
    cancel). Material, not any negative entry: a positive-feature attention with an ε in its denominator on shifted
    values, A(v + C) − C, has entries of −ε·C/Z. Those conditions (one sequence, no mask, a short length) are the
    ones the statistical rows test against the reference, so that a defect acting only with a mask, a batch or past
    a first chunk (``masked_fill`` of a weight, a normaliser dropped from a carried state) cannot make a weight
    negative there; each input set of the row (those of ``input_std`` as well as the user's ``inputs``) is probed.
    A normalised attention with non-negative weights computes non-negative entries in any floating-point format
    (products and sums of non-negative numbers, and their quotient). None when no run qualifies, or no matrix can
    be read (then item 3's floor stays the one applied). The order row's doubled prefixes are not probed (their
    tokens are the base run's; cut to their length, 4 at n = 2, the probe saw trigonometric attention's signed
    weights at 8 of 40 seeds at input std 0.7, against 37 of 40 at L = 16)."""
    probes = [r for r in runs if r.mask is None and r.q.shape[0] == 1 and r.q.shape[-2] >= 2 and not r.doubled]
    if not probes:
        return None
    length = min(r.q.shape[-2] for r in probes)
    seen = set()
    for run in sorted(probes, key=lambda r: r.q.shape[-2]):
        q, k = run.q[:, :length], run.k[:, :length]
        # keys as a set: moving the keys (order row) permutes the matrix's columns, whose signs it keeps
        key = (q.dtype, q.contiguous().numpy().tobytes(), torch.unique(k[0], dim=0).contiguous().numpy().tobytes())
        if key in seen:  # the same tokens (a variant, a longer run of the same set): probed already
            continue
        seen.add(key)
        a = _attention_matrix(run.fn, q, k, run.v.shape[-1])
        if a is None:
            continue
        negative = (-a).clamp_min(0).sum(-1)
        if bool((negative > NEGATIVE_SHARE * a.abs().sum(-1)).any()):
            return (f"its weights are signed: its attention matrix on one sequence of L = {length} without a mask "
                    f"has negative entries (the least {float(a.min()):.3g}), as signed features (trigonometric ones) "
                    "give")
    return None


def _refused_unless_failed(refused: CheckResult, name, claim, pairs, runs, alpha, seed, whats) -> CheckResult:
    """A length that could not be compared (``refused``) hides no failure found at the lengths before it."""
    if pairs:
        row = _exact_row(name, claim, pairs, runs, alpha, seed, "; ".join(whats))
        if not row.passed and not row.refused:
            row.detail += f"; at a further length: {refused.detail}"
            return row
    return refused


def padding_masks(length: int) -> dict[str, torch.Tensor]:
    """The key masks ``[2, L]`` (True = keep) of the padding rows: right padding (L − 3 and L/2 keys kept), left
    padding (the first 3 and the first L/2 keys masked: a batch prepared for generation) and gaps (three interior
    keys; every third key but the last). Each masks at least one key and keeps at least one; L ≥ 4."""
    j = torch.arange(length)
    a = max(1, length // 4)
    return {"right": torch.stack([j < max(1, length - 3), j < length // 2]),
            "left": torch.stack([j >= min(3, length - 1), j >= length // 2]),
            "gap": torch.stack([(j < a) | (j >= min(a + 3, length - 1)), (j % 3 != 1) | (j == length - 1)])}


def _keyless_failure(fn, q, k, v, mask) -> BaseException | None:
    """The exception of ``fn(q, k, v, mask)`` when the queries before the first kept key (none to attend to under
    causality) are its cause: the call raises, and the same call with every sequence's first key kept as well runs.
    None when the call runs; a failure for another reason (it raises either way) propagates, naming the call."""
    try:
        _call(fn, q, k, v, mask)
    except ValueError as exc:
        with_first = mask.clone()
        with_first[:, 0] = True
        try:
            _call(fn, q, k, v, with_first)
        except ValueError:
            raise exc from exc.__cause__
        return exc.__cause__ or exc
    return None


def _padding_tokens(kept: torch.Tensor, count: int, g: torch.Generator) -> torch.Tensor:
    """``count`` random tokens for masked positions, 3× the standard deviation of the ``kept`` tokens ``[n, d]`` (at
    least 0.3), so that a leak of a masked token into the kept outputs shows."""
    scale = 3 * kept.std(correction=0).clamp_min(0.1)
    return torch.randn(count, kept.shape[-1], generator=g, dtype=_F64) * scale


def _pad(qp: torch.Tensor, kp: torch.Tensor, vp: torch.Tensor, mask: torch.Tensor, g: torch.Generator) -> None:
    """Replace, in place, the tokens of ``qp, kp, vp`` ``[B, L, ·]`` that ``mask`` ``[B, L]`` masks (False) by
    :func:`_padding_tokens` of each sequence's kept ones (sequence by sequence, q, k then v)."""
    for i in range(mask.shape[0]):
        for t in (qp, kp, vp):
            t[i, ~mask[i]] = _padding_tokens(t[i, mask[i]], int((~mask[i]).sum()), g)


def padded_batch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Generator):
    """``(q', k', v', mask)``: the six sequences of ``q, k, v`` ``[6, L, d]`` with the masks of :func:`padding_masks`
    (right, left, gap on sequences 2p, 2p + 1) stacked ``[6, L]`` and the masked tokens replaced as in
    :func:`padding_rows`; L ≥ 4."""
    masks = padding_masks(q.shape[-2])
    mask = torch.cat([masks[label] for label in PADDINGS])
    qp, kp, vp = q.clone(), k.clone(), v.clone()
    _pad(qp, kp, vp, mask, g)
    return qp, kp, vp, mask


def padding_rows(attention, sets, m: int, alpha: float, seed: int, causal: bool, precision=None,
                 optional_from: int | None = None) -> list[CheckResult]:
    """One row per pattern of :func:`padding_masks`, each at every length of ``sets`` (``q, k, v`` ``[6, L, d]``: the
    pattern p on sequences 2p, 2p + 1); the masked tokens are replaced by large values (3× the kept tokens' std) so
    that a leak shows. Outputs at the kept positions are compared with those of the sequences of the kept tokens
    alone, in order (for causal attention too: the kept keys before a kept position are the same in both). The sets
    from index ``optional_from`` on (``long_length``: a path taken only at long sequences, a state carried past a
    first chunk longer than ``exact_length``) are run by left padding alone, which masks keys before kept ones in
    both sequences (a mask dropped anywhere shows there, causal or not), and are optional: where the function
    raises there, that length is left out and the description says so (the finiteness rows, at that length, report
    the error)."""
    g = torch.Generator().manual_seed(seed)
    fn = attention(m, g)
    rows, probe = [], None
    for p, label in enumerate(PADDINGS):
        name = f"padding[{label}]"
        pairs, runs, whats, refused = [], [], [], None
        for index, (q, k, v) in enumerate(sets):
            length, d = q.shape[1:]
            mask = padding_masks(length)[label]
            qp, kp, vp = (t[2 * p : 2 * p + 2].clone() for t in (q, k, v))
            _pad(qp, kp, vp, mask, g)
            optional = optional_from is not None and index >= optional_from
            if optional and label != "left":
                continue
            try:
                keyless = _keyless_failure(fn, qp, kp, vp, mask) if causal and label == "left" else None
                if keyless is not None:
                    refused = CheckResult.refusal(
                        f"the function raised {type(keyless).__name__}: {keyless} on a left-padded causal batch (L = "
                        f"{length}), where a query before the first kept key has no key to attend to (0/0), and ran "
                        "when the first key was kept too; the outputs at the kept positions could not be compared: "
                        "return any value (0, NaN) at such queries to have them checked",
                        name=name, claim="padding", alpha=alpha, sample_size=int(mask.sum()), seed=seed)
                    refused = _refused_unless_failed(refused, name, "padding", pairs, runs, alpha, seed, whats)
                    break
                full, refused = _determined(fn, qp, kp, vp, m, mask, name, alpha, seed, precision)
                if refused is not None:
                    refused = _refused_unless_failed(refused, name, "padding", pairs, runs, alpha, seed, whats)
                    break
                shorts = [_Run(fn, qp[i : i + 1, keep], kp[i : i + 1, keep], vp[i : i + 1, keep], m, None, precision)
                          for i, keep in enumerate(mask)]
            except ValueError as exc:  # the function raised at an optional length: left out
                if not optional:
                    raise
                cause = exc.__cause__ if exc.__cause__ is not None else exc
                whats.append(f"L = {length} left out: the function raised there ({type(cause).__name__})")
                continue
            runs += [full, *shorts]
            for i, (keep, short) in enumerate(zip(mask, shorts, strict=True)):
                pairs.append((_difference(full.out[i, keep], short.out[0]),
                              lambda fmt=None, full=full, short=short, i=i, keep=keep:
                              full.floor(fmt)[i, keep] + short.floor(fmt)[0]))
            if probe is None:
                probe = (qp, kp, vp, mask, shorts)
            masked = [_keys([int(j) for j in (~keep).nonzero().flatten()]) for keep in mask]
            whats.append(f"L = {length}: masked keys {masked[0]} and {masked[1]}")
        rows.append(refused or _exact_row(name, "padding", pairs, runs, alpha, seed, "; ".join(whats)))
    # a hint, not a verdict (the failures stand either way): named only where the inverted mask does match
    if all(r.status == "failed" for r in rows) and probe is not None and _reads_mask_inverted(fn, probe, m, precision):
        for r in rows:
            r.detail += ("; every padding row failed, and with the mask inverted the kept positions match the "
                         "sequences of the kept tokens alone: the function reads the mask the other way round "
                         "from the one it is given (the audit passes True = keep): a module audited through "
                         "attention_from_module takes the other mask_keeps (False for a module whose mask marks "
                         "padding, as PyTorch's key_padding_mask does; True for one that marks the kept keys), a "
                         "function of your own inverts the mask in a wrapper. Where the convention passed already is "
                         "the one the module documents (or that a wrapper converts to), the module itself reads its "
                         "mask inverted: that is the defect, and inverting the audit's mask would hide it")
    return rows


def empty_padding_row(attention, sets, m: int, alpha: float, seed: int, precision=None
                      ) -> tuple[CheckResult | None, str | None]:
    """The row padding[empty]: at every length of ``sets``, a batch of a fully padded sequence (every key masked,
    large random tokens) and an unpadded one, whose outputs must be those of the unpadded sequence alone (the fully
    padded sequence's own outputs, 0/0, are not compared, nor read: they may be anything, uninitialised memory
    included). A statistic of the whole batch that the empty sequence makes NaN, or a batch-wide rescaling it moves,
    shows here (proofs/attention_audit.md, item 6(f)). A function that raises on such a batch and on the fully padded
    sequence alone refuses a sequence without keys: no row, a note (None, note). One that raises on the batch but runs
    on the fully padded sequence alone gets the row refused: a NaN guard behind a batch statistic and a function that
    rejects keyless queries only inside a batch both do that."""
    g = torch.Generator().manual_seed(seed)
    fn = attention(m, g)
    name = "padding[empty]"
    pairs, runs, whats = [], [], []
    for q, k, v in sets:
        length, d = q.shape[1:]
        mask = torch.stack([torch.zeros(length, dtype=torch.bool), torch.ones(length, dtype=torch.bool)])
        qp, kp, vp = (t[:2].clone() for t in (q, k, v))
        for t in (qp, kp, vp):
            t[0] = _padding_tokens(t[1], length, g)
        try:
            a, b = _call(fn, qp, kp, vp, mask), _call(fn, qp, kp, vp, mask)
        except ValueError as exc:
            raised = f"{type(exc.__cause__ or exc).__name__}: {exc.__cause__ or exc}"
            try:
                _call(fn, qp[:1], kp[:1], vp[:1], mask[:1])
            except ValueError:  # it refuses a sequence without keys, alone too
                return None, (f"padding[empty] not run: the function raised on a fully padded sequence (every key "
                              f"masked), alone and beside an unpadded one, at L = {length} ({raised}); whether such a "
                              "sequence leaves the others unchanged was not tested")
            refused = CheckResult.refusal(
                f"the function raised {raised} on a batch of a fully padded sequence and an unpadded one at L = "
                f"{length}, and runs on the fully padded one alone: either it refuses a query without keys only "
                "inside a batch, or the fully padded sequence breaks the other (a statistic of the whole batch "
                "behind a NaN guard); which one is not decided", name=name, claim="padding", alpha=alpha,
                sample_size=0, seed=seed)
            return _refused_unless_failed(refused, name, "padding", pairs, runs, alpha, seed, whats), None
        a, b = a.clone(), b.clone()
        a[0], b[0] = a[1], b[1]  # the empty sequence's outputs are never read (nor its format, nor their repeats)
        try:
            same = _agree(fn, fn, qp, kp, vp, a, b, m, mask, precision)
            why = "(does it redraw on every call?)"
        except NoRoundingBound as exc:
            same, why = False, f"by more than 0, and {exc}"
        if not same:
            refused = CheckResult.refusal(
                f"the attention function gives the unpadded sequence different outputs on two calls with one draw at "
                f"L = {length} {why}: nothing to compare", name=name, claim="padding", alpha=alpha,
                sample_size=a[1].numel(), seed=seed)
            return _refused_unless_failed(refused, name, "padding", pairs, runs, alpha, seed, whats), None
        full = _Run(fn, qp, kp, vp, m, mask, precision, out=a)
        alone = _Run(fn, qp[1:], kp[1:], vp[1:], m, None, precision)
        runs += [full, alone]
        pairs.append((_difference(full.out[1], alone.out[0]),
                      lambda fmt=None, full=full, alone=alone: full.floor(fmt)[1] + alone.floor(fmt)[0]))
        whats.append(f"L = {length}")
    what = "an unpadded sequence beside a fully padded one against it alone, " + ", ".join(whats)
    return _exact_row(name, "padding", pairs, runs, alpha, seed, what), None


def _reads_mask_inverted(fn, probe, m: int, precision) -> bool:
    """Whether ``fn`` given the inverted mask ~mask of the first padding batch matches, at the positions ``mask``
    keeps, the sequences of those tokens alone within both runs' rounding floors (a function that reads True as
    padding). Any failure to decide (an exception, no rounding floor) counts as no."""
    qp, kp, vp, mask, shorts = probe
    try:
        inverted = _Run(fn, qp, kp, vp, m, ~mask, precision)
        return all(bool((_difference(inverted.out[i, keep], shorts[i].out[0])
                         <= inverted.floor()[i, keep] + shorts[i].floor()[0]).all()) for i, keep in enumerate(mask))
    except Exception:
        return False


def _sequence_cases(attention, sets, m: int, alpha: float, seed: int, precision, name: str, variants,
                    variant_least=None, optional_from: int | None = None, sources: list | None = None):
    """The comparisons of :func:`_sequence_row`: ``(pairs, runs, whats, refused)``, ``refused`` the refusal of the
    first length whose function could not be compared (the pairs of the lengths before it kept). The sets from index
    ``optional_from`` on are optional: where the function raises on one, that length is left out and the description
    says so (the finiteness rows, at the same length, report the error). ``sources``: a list that receives, for each
    pair, the runs and positions it compares, ``(new, at', base, at)``."""
    g = torch.Generator().manual_seed(seed)
    fn = attention(m, g)
    pairs, runs, whats = [], [], []
    for index, (q, k, v) in enumerate(sets):
        set_pairs, set_runs, set_sources = [], [], []
        try:
            base, refused = _determined(fn, q, k, v, m, None, name, alpha, seed, precision)
            if refused is not None:
                return pairs, runs, whats, refused
            set_runs.append(base)
            described, cases = variants(q, k, v, g)
            for (q2, k2, v2), at2, at, *scaled in cases:
                new = _Run(fn, q2, k2, v2, m, None, precision, least=variant_least)
                set_runs.append(new)
                if scaled and scaled[0]:  # equal up to one factor per query (a normaliser's ε): the fitted residual
                    new.doubled = True  # a prefix of the base run written twice: no signed-weight probe
                    diff, c = scaled_difference(new.out[:, at2], base.out[:, at])
                    set_pairs.append((diff, lambda fmt=None, base=base, new=new, at2=at2, at=at, c=c: scaled_floor(
                        new.floor(fmt)[:, at2] + c.abs() * base.floor(fmt)[:, at], base.out[:, at])))
                else:
                    set_pairs.append((_difference(new.out[:, at2], base.out[:, at]),
                                      lambda fmt=None, base=base, new=new, at2=at2, at=at:
                                      new.floor(fmt)[:, at2] + base.floor(fmt)[:, at]))
                set_sources.append((new, at2, base, at))
        except ValueError as exc:
            if optional_from is None or index < optional_from:
                raise
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            whats.append(f"L = {q.shape[-2]} left out: the function raised there ({type(cause).__name__})")
            continue
        pairs, runs = pairs + set_pairs, runs + set_runs
        if sources is not None:
            sources.extend(set_sources)
        whats.append(described)
    return pairs, runs, whats, None


def scaled_difference(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|a − c·b| entry by entry, with c = ⟨a, b⟩/⟨b, b⟩ over the last axis (the value columns of one query; c = 1 where
    b is 0), and c (shape ``[..., 1]``): a and b compared up to one factor per query, in float64, NaN equal only to
    NaN (:func:`~kerneltheory.testing.user_calls._difference`)."""
    a, b = a.to(torch.float64), b.to(torch.float64)
    bb = (b * b).sum(-1, keepdim=True)
    c = torch.where(bb > 0, (a * b).sum(-1, keepdim=True) / torch.where(bb > 0, bb, 1.0), 1.0)
    return _difference(a, c * b), c


def scaled_floor(f: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The floor of :func:`scaled_difference`'s residual: f + |b|·‖f‖₂/‖b‖₂ over the last axis, with f = F_a + |c|F_b
    the runs' floors. For exact outputs a* = c*b* and computed ones within their floors, a − c*b lies within f entry
    by entry, and the fitted c = ⟨a, b⟩/⟨b, b⟩ differs from c* by ⟨a − c*b, b⟩/⟨b, b⟩, at most ‖f‖₂/‖b‖₂ (Cauchy–
    Schwarz), which moves entry i of the residual by at most |b_i| times that (proofs/attention_audit.md, item 14(f));
    f alone does not bound it (a review: 2.25× at value width 64 with every error at its floor)."""
    f = f.to(torch.float64)
    b = b.to(torch.float64)
    norm_b = b.norm(dim=-1, keepdim=True)
    extra = torch.where(norm_b > 0, b.abs() * f.norm(dim=-1, keepdim=True) / torch.where(norm_b > 0, norm_b, 1.0),
                        torch.zeros_like(b))
    return f + extra


def doubling_points(length: int) -> list[int]:
    """The prefix lengths n of the causal doubling comparison: 2, 4, 8, … up to L/2. The output at 2n − 1 of the
    prefix written twice over sees every key of the prefix twice, the query of n − 1: a correct attention gives the
    output at n − 1 again (every weight doubled, the normalised sum unchanged), so a treatment of queries that depends
    on their position and changes between n − 1 and 2n − 1 shows; the n cover every change at a position 2 … L − 1."""
    return [2**j for j in range(1, max(length, 2).bit_length()) if 2 ** (j + 1) <= length]


def _sequence_row(attention, sets, m: int, alpha: float, seed: int, precision, name: str, variants, what: str,
                  variant_least=None, optional_from: int | None = None):
    """The row ``name`` of one-sequence comparisons: at every length of ``sets`` (``q, k, v`` ``[1, L, d]``), ``fn`` on
    each variant of the tokens against ``fn`` on them as they are. ``variants(q, k, v, g)`` returns (a description,
    the cases ``((q', k', v'), at', at)``: the outputs at positions ``at'`` of the variant against those at ``at``).
    ``variant_least``: a format the variants' floors are at least as coarse as (besides ``precision`` or the format
    read from their outputs)."""
    pairs, runs, whats, refused = _sequence_cases(attention, sets, m, alpha, seed, precision, name, variants,
                                                  variant_least, optional_from)
    if refused is not None:
        return _refused_unless_failed(refused, name, name, pairs, runs, alpha, seed, whats)
    return _exact_row(name, name, pairs, runs, alpha, seed, f"{what} ({'; '.join(whats)})")


MATRIX_WIDTH = 64  # keys per call when the causality row reads an attention matrix


def _later_weights_row(attention, sets, m: int, name: str, alpha: float, seed: int, precision=None
                       ) -> tuple[CheckResult | None, str, bool, list]:
    """The causality row's reading of the attention matrix of ``fn`` built with ``m`` features (the grid's smallest:
    causality does not depend on m, and reading all L columns costs L/64 calls) on each sequence of ``sets``, without
    a mask (proofs/attention_audit.md, item 17). A causal output depends on no later key: in item 3's model the weight
    a_ij of a key j > i is an exact 0; a function that sums the later terms and cancels them (prefix sums by FFT,
    values centred on a mean over the whole sequence) leaves rounding-sized weights there. The row allows
    (γ_N + 2δ)·Σ_j' |a_ij'| over the row's keys (γ_N, δ of :func:`gamma_delta` at the outputs' format,
    N = L + 2m + 1: item 3's bound for a sum in any order over all of them; FFTs and centrings are admitted by
    measurement, not by proof). A weight above twice that fails the row; where the floor does not exist
    (γ_N + 2δ ≥ 1/4) a non-zero weight cannot be told from rounding and refuses it. Returns (a failing or refused
    row, or None; a description of what was read; whether non-zero weights within the floor were seen: later terms
    summed and cancelled, whose rounding :func:`_later_terms_row` weighs in the comparisons; the normaliser probes
    ``(fn, m, q, k, v, rows, count)``: the ``count`` queries of each read, before its last, whose weights sum to
    something other than 1 beyond the same floor, ``rows`` the :data:`NORMALISER_ROWS` furthest from 1 of them,
    which :func:`_normaliser_cases` compares with their later tokens replaced)."""
    fn = attention(m, torch.Generator().manual_seed(seed))
    read, unread, rounded, refusal, probes = [], [], 0.0, None, []
    for q, k, v in sets:
        length = q.shape[-2]
        a = _attention_matrix(fn, q, k, max(v.shape[-1], MATRIX_WIDTH))
        if a is None and v.shape[-1] < MATRIX_WIDTH:  # a function that takes values of its own width only
            a = _attention_matrix(fn, q, k, v.shape[-1])
        if a is None:
            unread.append(length)
            continue
        read.append(length)
        later = torch.triu(a, 1)
        u = torch.finfo(output_format(a, precision)).eps / 2
        gamma, delta = gamma_delta(u, length + 2 * m + 1, q, k)
        if gamma + 2 * delta < VACUOUS:
            off = (a.sum(-1) - 1).abs()[:-1]
            rows = (~(off <= 2 * (gamma + 2 * delta) * a.abs().sum(-1)[:-1])).nonzero().flatten()
            if rows.numel():
                furthest = rows[off[rows].argsort(descending=True)][:NORMALISER_ROWS]
                probes.append((fn, m, q, k, v, furthest.sort().values, rows.numel()))
        if bool((later == 0).all()):
            continue
        if not gamma + 2 * delta < VACUOUS:  # no floor: a non-zero weight decides nothing
            refusal = refusal or (f"at L = {length} the attention matrix has non-zero weights on later keys (up to "
                                  f"{float(later.abs().max()):.3g}), and its format has no rounding floor there "
                                  f"(γ_N + 2δ = {gamma + 2 * delta:.3g} ≥ 1/4): a leak cannot be told from rounding")
            continue
        floor = 2 * (gamma + 2 * delta) * a.abs().sum(-1, keepdim=True)
        bad = ~(later.abs() <= floor)  # NaN is bad
        if bool(bad.any()):
            i, j = (int(x) for x in bad.nonzero()[0])
            pairs = length * (length - 1) // 2
            row = property_check(int(bad.sum()), pairs, claim=name, name=name, seed=seed, alpha=alpha, example=(
                f"at L = {length} the attention matrix (values the unit vectors) puts weight on later keys: "
                f"{int(bad.sum())} of the {pairs} weights a_ij with j > i exceed the rounding floor, the first at "
                f"query i = {i}, key j = {j}: a_ij = {float(later[i, j]):.3g} against a floor of "
                f"{float(floor[i, 0]):.3g} (a causal output depends on no later key)"))
            row.method, row.statistic = "later weights", float((later.abs() / floor)[bad].max())
            return row, "", False, []
        rounded = max(rounded, float(later.abs().max()))
    parts = [f"no weight on a later key at L = {read} (m = {m})"] if read else []
    if rounded:
        parts.append(f"rounding-sized weights on later keys, up to {rounded:.3g}, within the floor (later terms "
                     "summed and cancelled)")
    if unread:
        parts.append(f"attention matrix not read at L = {unread} (its outputs at values 0 are not all 0: not linear "
                     "in the values, or not finite)")
    if refusal is not None:
        return CheckResult.refusal(f"{refusal}; {'; '.join(parts)}", name=name, claim=name, alpha=alpha,
                                   sample_size=0, seed=seed), "; ".join(parts), bool(rounded), probes
    return None, "; ".join(parts), bool(rounded), probes


NORMALISER_ROWS = 64  # queries a normaliser probe compares at most, one call (those whose weights sum furthest from 1)


def _normaliser_cases(probes, seed: int, precision) -> tuple[list, list, list, list, str]:
    """The causality row's normaliser probe (proofs/attention_audit.md, item 17(f)). A key that enters a query's
    normaliser alone changes no weight's sign and puts none on a later key in the attention matrix, but scales the
    query's row, whose weights then sum to something other than 1. For each probe of :func:`_later_weights_row`
    (a read sequence, the queries i whose weights sum to something other than 1 beyond rounding, at most
    :data:`NORMALISER_ROWS` of them): one batch of copies of the sequence, copy r with its tokens from i_r + 1 on
    replaced by fresh ones (three times their spread, as the row's cuts), the output at i_r against the sequence's;
    a causal output changes by rounding at most. Returns (pairs, runs, allowance thunks for
    :func:`_later_terms_row`, the queries compared in the order of the pairs' entries, a description)."""
    g = torch.Generator().manual_seed(seed + 1)
    pairs, runs, allowances, queries, parts = [], [], [], [], []
    for fn, m, q, k, v, rows, off in probes:
        length, count = q.shape[-2], rows.numel()
        base = _Run(fn, q, k, v, m, None, precision)
        after = (torch.arange(length)[None, :] > rows[:, None])[..., None]  # [count, L, 1]
        q2, k2, v2 = (torch.where(after, torch.randn((count, *x.shape[1:]), generator=g, dtype=_F64)
                                  * 3 * x.std().clamp_min(0.1), x.expand(count, -1, -1)) for x in (q, k, v))
        try:
            new = _Run(fn, q2, k2, v2, m, None, precision)
        except ValueError as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            parts.append(f"normalisers at L = {length} not probed: the function raised on a batch of {count} "
                         f"sequences ({type(cause).__name__})")
            continue
        each = torch.arange(count)
        runs += [base, new]
        pairs.append((_difference(new.out[each, rows], base.out[0, rows]),
                      lambda fmt=None, new=new, base=base, rows=rows, each=each:
                      new.floor(fmt)[each, rows] + base.floor(fmt)[0, rows]))

        def allowance(over, new=new, base=base, rows=rows):
            """The measured later rounding of the copies with an entry beyond item 3's floor (``over``), read on a
            batch of those copies alone (0 elsewhere: those entries are within the floor already)."""
            picked = over.any(-1)
            try:
                copies = new if bool(picked.all()) else _Run(new.fn, new.q[picked], new.k[picked], new.v[picked],
                                                             new.m, None, new.precision)
            except ValueError:  # nothing measured: the failure stands
                return None
            mine, theirs = _later_rounding(copies, rows[picked]), _later_rounding(base)
            if mine is None or theirs is None:
                return None
            later = torch.zeros(over.shape, dtype=_F64)
            later[picked] = mine + theirs[0, rows[picked]]
            return later
        allowances.append(allowance)
        queries.append((rows, length))
        shown = f"{count} of the {off}" if count < off else f"the {off}"
        parts.append(f"at L = {length} {shown} queries whose weights do not sum to 1, with their later tokens "
                     "replaced")
    return pairs, runs, allowances, queries, "; ".join(parts)


def _later_rounding(run: _Run, rows: torch.Tensor | None = None) -> torch.Tensor | None:
    """Σ_{j>i} |a_ij|·|v_j| of each sequence b of the run, at every query i (``rows`` None: ``[B, L, d_v]``) or at
    query ``rows[b]`` alone (``[B, d_v]``): the weights its function puts on later keys, read as
    :func:`_attention_matrix` reads them (values the unit vectors, a block of keys a call, for the whole batch at
    once), against the run's own values. None where the outputs at values 0 are not all 0 or the function does not
    take those values."""
    fn, q, k, v = run.fn, run.q, run.k, run.v.abs().to(_F64)
    batch, length = q.shape[0], q.shape[-2]
    at = torch.arange(length)[None, :, None] if rows is None else rows[:, None, None]
    for width in dict.fromkeys((max(v.shape[-1], MATRIX_WIDTH), v.shape[-1])):
        try:
            blocks = _unit_value_blocks(fn, q, k, width)
            if blocks is None:
                return None
            total = v.new_zeros(batch, length if rows is None else 1, v.shape[-1])
            for keys, out in blocks:  # out [B, L, keys]: a_b,i,j
                out = out.abs() if rows is None else out[torch.arange(batch), rows][:, None].abs()
                total += torch.where(keys[None, None, :] > at, out, 0.0) @ v[:, keys]
            return total if rows is None else total[:, 0]
        except ValueError:
            continue
    return None


def _later_terms_row(failed: CheckResult, pairs, allowances, alpha: float, seed: int, what: str) -> CheckResult:
    """The causality row of a function seen to sum later keys' terms and cancel them (rounding-sized weights on later
    keys, :func:`_later_weights_row`), whose comparisons ``failed`` item 3's floor. That floor counts the terms of the
    earlier keys only; the later terms' rounding reaches the outputs before t as well. Each failing comparison is
    read again with both runs' measured later rounding, Σ_{j>i} |a_ij|·|v_j| (:func:`_later_rounding`; the thunks
    ``allowances``, one per pair, given the entries beyond the floor), added to its floor (proofs/attention_audit.md,
    item 17(c)): where every difference is within that, the row is refused (the rounding of an FFT or a centring is
    measured here, not bounded: not a pass), else the failure stands."""
    name = failed.name
    above = []  # (ratio to item 3's floor, pair index) of the comparisons beyond it, the largest read first
    for index, (d, f) in enumerate(pairs):
        if not bool((d != 0).any()):
            continue
        try:
            floor = f()  # computed (and kept) by the row already
        except NoRoundingBound:
            continue
        if not bool((d <= 2 * floor).all()):
            above.append((float((d / (2 * floor)).nan_to_num(math.inf).max()), index))
    worst = max(above)[0] if above else 0.0
    for _, index in sorted(above, reverse=True):
        (d, f) = pairs[index]
        later = allowances[index](~(d <= 2 * f()))
        if later is None or not bool((d <= 2 * (f() + later)).all()):
            return failed
    return CheckResult.refusal(
        f"{what}: the outputs before t differ by up to {worst:.3g}× the rounding floor of item 3, which counts the "
        "earlier keys' terms only, and this function sums the later keys' terms and cancels them (non-zero weights "
        "on later keys within their floor); every difference is within that floor plus each run's measured rounding "
        "on its later keys, Σ_(j>i) |a_ij|·|v_j| (proofs/attention_audit.md, item 17(c)): measured, not bounded, so "
        "not decided", name=name, claim=name, alpha=alpha, sample_size=failed.sample_size, seed=seed)


def causality_row(attention, sets, m: int, alpha: float, seed: int, precision=None, longest: int | None = None,
                  m_matrix: int | None = None) -> CheckResult:
    """At every length L of ``sets`` (``q, k, v`` ``[1, L, d]``): the tokens from position t on replaced by fresh ones
    (t = 1, ⌊L/2⌋ + 1, L − 1), the outputs before t against those of the unchanged sequence; and fresh tokens appended
    up to L' (:func:`extended_lengths`), the first L outputs, the last one included, against those of the sequence
    alone: a causal output depends on no later token, so a code path taken only at longer lengths (a chunked one past
    64 tokens) or a last partial chunk computed otherwise (left out, or without the carried state) shows. ``longest``:
    the longest sequence the row may call the function on (the finiteness rows' ``long_length``, which the function
    is already asked to take). ``m_matrix``: with it, the attention matrix as well, of the function built with
    that many features, at the first length and on the longest sequence the row calls the function on
    (:func:`_later_weights_row`; 16 and 1024 by default): no weight on a later key, at every position (a query that
    sees one later key at a single chunk boundary)."""
    longer = extended_lengths([q.shape[-2] for q, _, _ in sets], longest)

    def variants(q, k, v, g):
        length = q.shape[-2]
        cuts = sorted({1, length // 2 + 1, length - 1} & set(range(1, length)))

        def changed(t):
            q2, k2, v2 = (x.clone() for x in (q, k, v))
            for x in (q2, k2, v2):
                x[:, t:] = torch.randn(x[:, t:].shape, generator=g, dtype=_F64) * 3 * x[:, :t].std().clamp_min(0.1)
            return (q2, k2, v2), slice(None, t), slice(None, t)

        def extended(more):
            q2, k2, v2 = (torch.cat([x, torch.randn(x.shape[0], more, x.shape[-1], generator=g, dtype=_F64)
                                     * x.std().clamp_min(0.1)], -2) for x in (q, k, v))
            return (q2, k2, v2), slice(None, length), slice(None, length)

        cases = [changed(t) for t in cuts]
        if longer[length] > length:
            cases.append(extended(longer[length] - length))
            return f"L = {length}, t ∈ {cuts}, appended up to L' = {longer[length]}", cases
        return f"L = {length}, t ∈ {cuts}", cases

    name = "causality"
    what = "outputs before the tokens changed from t on, and the first L outputs of the tokens appended to"
    sources: list = []
    pairs, runs, whats, refused = _sequence_cases(attention, sets, m, alpha, seed, precision, name, variants,
                                                  sources=sources)
    later: dict[int, torch.Tensor | None] = {}

    def rounding(run):
        if id(run) not in later:
            later[id(run)] = _later_rounding(run)
        return later[id(run)]

    def allowance(new, at2, base, at):
        mine, theirs = rounding(new), rounding(base)
        return None if mine is None or theirs is None else mine[:, at2] + theirs[:, at]

    allowances = [lambda over, s=s: allowance(*s) for s in sources]
    cancelled, probed, queries = False, [], []
    if refused is None and m_matrix is not None:  # read at the shortest length and the longest sequence called
        longest = max(runs, key=lambda r: r.q.shape[-2])
        reads = [sets[0]] + ([(longest.q, longest.k, longest.v)] if longest.q.shape[-2] > sets[0][0].shape[-2] else [])
        matrix_row, described, cancelled, probes = _later_weights_row(attention, reads, m_matrix, name, alpha, seed,
                                                                      precision)
        if matrix_row is not None and not matrix_row.refused:
            return matrix_row
        whats.append(described)
        probed, probe_runs, probe_allowances, queries, described = _normaliser_cases(probes, seed, precision)
        pairs, runs, allowances = pairs + probed, runs + probe_runs, allowances + probe_allowances
        if described:
            whats.append(described)
        if matrix_row is not None:  # refused: the comparisons may still fail
            return _refused_unless_failed(matrix_row, name, name, pairs, runs, alpha, seed, whats)
    if refused is not None:
        return _refused_unless_failed(refused, name, name, pairs, runs, alpha, seed, whats)
    described = f"{what} ({'; '.join(whats)})"
    row = _exact_row(name, name, pairs, runs, alpha, seed, described)
    if cancelled and row.status == "failed":
        row = _later_terms_row(row, pairs, allowances, alpha, seed, described)
    if row.status == "failed":
        row.detail += _first_probed(probed, queries)
    return row


def _first_probed(probed, queries) -> str:
    """The first query of the normaliser probes (:func:`_normaliser_cases`) whose output exceeds its floor, as the
    failing row says it (the pairs' floors are computed already); "" where none does."""
    for (d, f), (rows, length) in zip(probed, queries, strict=True):
        if not bool((d != 0).any()):
            continue
        try:
            bad = ~(d <= 2 * f()).all(-1)  # NaN is bad
        except NoRoundingBound:
            continue
        if bool(bad.any()):
            i = int(rows[bad][0])
            return (f"; at L = {length} the output of query i = {i} changed with its later tokens alone (those from "
                    f"t = {i + 1} on replaced)")
    return ""


def extended_lengths(lengths: list[int], longest: int | None = None) -> dict[int, int]:
    """L' of the causality row's appended tokens for each length L: the next longer of ``lengths`` (the check's L = 16
    inside the ``exact_length`` = 513 sequence, past the chunks of 64, 128 and 256 tokens of chunked implementations),
    and 2(L − 1) for the longest, where the last position t = L − 1 lies inside a whole chunk of any size C ≤ t in the
    longer run (⌊t/C⌋·C + C ≤ 2t), so that a partial last chunk computed otherwise differs at L (1024 for 513, the
    finiteness rows' default length). Never past ``longest`` (the finiteness rows' length, which the function is
    asked to take anyway): a function with a maximum length below 2(L − 1) is compared up to that length, or, where
    that is not past L, not appended to (L' = L)."""
    ordered = sorted(set(lengths))
    out = {n: (ordered[i + 1] if i + 1 < len(ordered) else 2 * (n - 1)) for i, n in enumerate(ordered)}
    if longest is not None:
        out = {n: max(n, min(ext, longest)) for n, ext in out.items()}
    return out


def order_points(length: int) -> list[int]:
    """The positions the causal order row holds fixed: ⌊L/4⌋, ⌊L/2⌋ and L − 2, each made odd (x | 1), those in
    1 … L − 1. An odd position is never the first of a chunk of an even size (64, 128, 256), so a key of its own
    chunk precedes it, which the shuffle can replace by one from an earlier chunk."""
    return sorted({x | 1 for x in (length // 4, length // 2, length - 2)} & set(range(1, length)))


def _reorderable(length: int, causal: bool) -> bool:
    """Whether :func:`order_permutation` moves anything: some stretch has two positions or more."""
    if not causal:
        return length >= 2
    bounds = [-1, *order_points(length), length]
    return any(b - a - 1 >= 2 for a, b in zip(bounds[:-1], bounds[1:], strict=True))


def order_permutation(length: int, causal: bool, g: torch.Generator) -> torch.Tensor:
    """A random permutation π of the L positions. Non-causal: uniform, then, if it fixes the last position, that one
    swapped with another drawn uniformly (L ≥ 2). Causal: one that fixes every t of :func:`order_points` and maps
    each stretch between them (and the one before the first) onto itself, drawn the same way per stretch of two or
    more positions, so that the key just before each fixed t is always replaced (proofs/attention_audit.md, item 14).
    The identity where no stretch has two positions (causal L ≤ 7, or L = 1)."""
    pi, start = torch.arange(length), 0
    for t in ([*order_points(length), length] if causal else [length]):
        n = t - start
        if n >= 2:
            part = torch.randperm(n, generator=g)
            if int(part[-1]) == n - 1:  # the last position kept its key: swap it with another
                j = int(torch.randint(n - 1, (1,), generator=g))
                part[-1], part[j] = part[j].clone(), part[-1].clone()
            pi[start:t] = start + part
        start = t + 1
    return pi


def key_points(length: int) -> list[int]:
    """The positions the causal keys-moved comparison reads: the powers of two 2, 4, 8, … below L and L − 1 (the
    starts of every chunk of a power-of-two size up to L − 1, which a chunked state or a chunk's first query can get
    wrong, and the last position)."""
    powers = {2**j for j in range(1, max(length, 2).bit_length()) if 2**j < length}
    return sorted(powers | ({length - 1} if length >= 2 else set()))


def key_cycle(length: int, causal: bool, g: torch.Generator) -> torch.Tensor:
    """σ for the keys-moved comparison: a uniformly random cycle through the positions of each stretch, so that no
    position keeps its key. Non-causal: one stretch, all L positions; causal: [0, t₀] and (tᵢ₋₁, tᵢ] for the t of
    :func:`key_points` (σ maps every {0, …, t} onto itself). A stretch of one position keeps its key; the identity at
    L = 1 (proofs/attention_audit.md, item 14(d))."""
    sigma, start = torch.arange(length), 0
    for t in (key_points(length) if causal else [length - 1] if length else []):
        n = t + 1 - start
        if n >= 2:  # a random cyclic order p₀ → p₁ → … → p_{n−1} → p₀ moves every position
            p = start + torch.randperm(n, generator=g)
            sigma[p] = torch.roll(p, -1)
        start = t + 1
    return sigma


def order_row(attention, sets, m: int, alpha: float, seed: int, causal: bool, precision=None,
              optional_from: int | None = None) -> CheckResult:
    """At every length of ``sets`` (``q, k, v`` ``[1, L, d]``), two comparisons with ``fn`` on the tokens in order.
    (1) The tokens reordered by π (:func:`order_permutation`). Non-causal: out(π·x)_i = out(x)_{π(i)} at every i;
    causal: at the fixed positions of :func:`order_points`, where the set of earlier keys is the same. (2) The keys
    and values moved by σ (:func:`key_cycle`), the queries kept: every output unchanged (non-causal), those at the t
    of :func:`key_points` (causal), where σ keeps the set of keys up to t; a position-dependent treatment of a key (a
    chunk's first query missing its own key, a carried state missing a chunk's last key) changes them. (3) Causal
    only: each prefix of n ∈ :func:`doubling_points` tokens written twice, its output at 2n − 1 against the output
    at n − 1 up to one factor per query (:func:`scaled_difference`; an ε in the normaliser, Z + ε against 2Z + ε,
    scales the output and nothing else): the only way a causal layer's query moves to a later position with the same
    keys, so a query treated by its position (a branch from position 64 on) changes it; each n is compared at the
    shortest length that has it. A comparison that would move nothing is left out; the row is refused if every one
    is (L = 1). ``optional_from``: the index of
    the first set the function may refuse to take (the one at ``long_length``), left out where it raises."""
    name = "order"
    if all(q.shape[-2] < 2 for q, _, _ in sets):
        lengths = ", ".join(str(q.shape[-2]) for q, _, _ in sets)
        return CheckResult.refusal(f"at L = {lengths} the tokens cannot be reordered (a single position): nothing to "
                                   "compare; a longer length or exact_length tests it", name=name, claim="order",
                                   alpha=alpha, sample_size=0, seed=seed)

    def variants(q, k, v, g):
        length = q.shape[-2]
        if length < 2:
            return f"L = {length}: cannot be reordered, left out", []
        cases, described = [], [f"L = {length}"]
        if _reorderable(length, causal):
            pi = order_permutation(length, causal, g)
            at = torch.tensor(order_points(length), dtype=torch.long) if causal else torch.arange(length)
            cases.append(((q[:, pi], k[:, pi], v[:, pi]), at, pi[at]))
            described.append(f"tokens shuffled, outputs at t ∈ {order_points(length)}" if causal else
                             "tokens permuted")
        sigma = key_cycle(length, causal, g)
        at = torch.tensor(key_points(length), dtype=torch.long) if causal else torch.arange(length)
        cases.append(((q, k[:, sigma], v[:, sigma]), at, at))
        described.append(f"keys moved, outputs at t ∈ {key_points(length)}" if causal else "keys moved")
        fresh = [n for n in doubling_points(length) if n not in doubled] if causal else []
        for n in fresh:  # the prefix twice over: the query of n − 1 at 2n − 1 with every key twice
            twice = tuple(torch.cat([x[:, :n], x[:, :n]], 1) for x in (q, k, v))
            cases.append((twice, torch.tensor([2 * n - 1]), torch.tensor([n - 1]), True))
        if fresh:
            doubled.update(fresh)
            described.append(f"prefixes of n ∈ {fresh} written twice, output at 2n − 1 against n − 1 up to a factor")
        return ", ".join(described), cases

    doubled: set[int] = set()  # the prefix lengths already compared at a shorter length

    what = ("tokens shuffled between the fixed t, keys and values moved among the positions up to other fixed t "
            "with the queries kept, and prefixes written twice (a query moved to a later position with the same "
            "keys, each twice)" if causal else
            "tokens permuted, outputs against the permuted outputs; keys and values moved with the queries kept")
    return _sequence_row(attention, sets, m, alpha, seed, precision, name, variants, what,
                         optional_from=optional_from)


#: the batch row's batch sizes, at the shortest length and at the longer ones: a function that takes its batch in
#: chunks of B_c sequences and carries a state from chunk to chunk is wrong only in batches of more than B_c
#: (chunks of 2 passed a batch of two at every seed of an adversarial trial); nine sequences cross chunks of 1 to 8
BATCH_SIZES = (9, 3)


def batch_row(attention, sets, m: int, alpha: float, seed: int, precision=None) -> CheckResult:
    """At every length of ``sets`` (``q, k, v`` ``[B, L, d]``, :data:`BATCH_SIZES`): ``fn`` on the batch against
    ``fn`` on each sequence alone, without a mask: attention acts on each sequence by itself."""
    name = "batch"
    fn = attention(m, torch.Generator().manual_seed(seed))
    pairs, runs = [], []
    for q, k, v in sets:
        try:
            both, refused = _determined(fn, q, k, v, m, None, name, alpha, seed, precision)
        except CallFailed as exc:  # calls on one sequence ran before: the batch itself is what the function refuses
            # (outputs of the wrong shape or type are errors, as before: only the function's own raising is refused)
            return CheckResult.refusal(
                f"the function failed on a batch of {q.shape[0]} sequences at L = {q.shape[-2]} ({exc}); the batch "
                f"row compares such a batch (BATCH_SIZES: {BATCH_SIZES[0]} at the shortest length, {BATCH_SIZES[1]} "
                "at the others) with each sequence alone, and could not run", name=name, claim="batch", alpha=alpha,
                sample_size=0, seed=seed)
        if refused is not None:
            return refused
        runs.append(both)
        for i in range(q.shape[0]):
            one = _Run(fn, q[i : i + 1], k[i : i + 1], v[i : i + 1], m, None, precision)
            runs.append(one)
            pairs.append((_difference(both.out[i], one.out[0]),
                          lambda fmt=None, both=both, one=one, i=i: both.floor(fmt)[i] + one.floor(fmt)[0]))
    sizes = ", ".join(f"{q.shape[0]} at L = {q.shape[-2]}" for q, _, _ in sets)
    return _exact_row(name, "batch", pairs, runs, alpha, seed, f"a batch of sequences against each alone ({sizes})")


def beside_alone_row(fn, q, k, v, out, m: int, name: str, alpha: float, seed: int, what: str) -> CheckResult | None:
    """The finiteness rows' batch (``q, k, v`` ``[2, L, d]`` in the dtype tested, ``out`` = fn(q, k, v), all finite):
    its last sequence, every token at the largest norm, computed beside the other against it alone, as the batch row
    compares sequences at the ordinary inputs (proofs/attention_audit.md, items 10(a) and 8): a stabiliser or a
    rescaling shared by the batch is set by the other sequence's small-norm keys and underflows this one's weights,
    which a clamped or ε-shifted denominator leaves finite. The failed row, or None
    where the comparison does not fail (passes, is refused, or the function is not deterministic here: the finiteness
    row then stands on its own). Floors at least those of the inputs' dtype."""
    i = q.shape[0] - 1  # the sequence at the largest norms, whose weights a stabiliser shared with the other underflows
    one = _Run(fn, q[i:], k[i:], v[i:], m, least=q.dtype)
    if _same_values(out[i:], one.out):
        return None  # the same numbers: nothing to bound, nothing to decide
    try:  # deterministic? two consecutive calls on the sequence alone, then the batch once more
        if not _agree(fn, fn, q[i:], k[i:], v[i:], one.out, _call(fn, q[i:], k[i:], v[i:]), m):
            return None
        if not _agree(fn, fn, q, k, v, out, _call(fn, q, k, v), m):
            return None
    except NoRoundingBound:
        return None
    both = _Run(fn, q, k, v, m, out=out, least=q.dtype)
    pairs = [(_difference(both.out[i], one.out[0]), lambda fmt=None: both.floor(fmt)[i] + one.floor(fmt)[0])]
    row = _exact_row(name, "finite", pairs, [both, one], alpha, seed, what)
    return row if not row.passed and not row.refused else None


def precision_row(attention, sets, m: int, alpha: float, seed: int, dtype: torch.dtype,
                  precision=None, batches=()) -> CheckResult:
    """At every length of ``sets`` (``q, k, v`` ``[1, L, d]``): ``fn`` on the inputs in ``dtype`` against ``fn`` on the
    same numbers in float64, one draw: a function whose ``dtype`` path computes something else than its float64 path
    (a separate stabiliser for low precision, an illegal one among them) differs by more than the two evaluations'
    rounding floors, while the statistical rows, which run in float64, cannot see it (proofs/attention_audit.md,
    item 15). Then the same on each of ``batches`` (``(q, k, v, mask)``, ``[B, L, ·]`` with a key mask ``[B, L]`` or
    None), at the kept positions: a ``dtype`` path that ignores the mask or mixes the sequences of a batch differs
    there from the float64 path, which the padding and batch rows check against the sequences alone. The ``dtype``
    run's floor is in the coarsest of ``dtype``, ``precision`` (declared) and the format read from its outputs (a
    half-precision path inside); the float64 run's is ``precision``'s or read from its outputs.
    Refused when the function does not run in ``dtype`` on these inputs (it does not accept the dtype).
    Opt-in. The floor assumes non-negative weights: a signed map (trigonometric features) whose sums cancel can
    differ by more, and is then refused (:func:`_signed_weights`)."""
    fmt = _name(dtype)
    name = f"precision[{fmt}]"
    rounded = [tuple(t.to(dtype).to(_F64) for t in s) for s in sets]  # both runs see the numbers dtype can hold
    try:
        _call(attention(m, torch.Generator().manual_seed(seed)), *(t.to(dtype) for t in sets[0]))
    except Exception as exc:  # it rejects the dtype: nothing to compare
        cause = exc.__cause__ or exc
        return CheckResult.refusal(f"the function does not run in {fmt}: it raised {type(cause).__name__}: {cause}; "
                                   "pass dtypes= the dtypes it supports (kerneltheory audit: --dtypes)", name=name,
                                   claim="precision", alpha=alpha, sample_size=0, seed=seed)

    def variants(q, k, v, g):
        return f"L = {q.shape[-2]}", [((q.to(dtype), k.to(dtype), v.to(dtype)), slice(None), slice(None))]

    what = f"outputs from {fmt} inputs against float64 ones"
    pairs, runs, whats, refused = _sequence_cases(attention, rounded, m, alpha, seed, precision, name, variants,
                                                  variant_least=dtype)
    fn = attention(m, torch.Generator().manual_seed(seed))  # the draw of the sequence cases
    for q, k, v, mask in batches if refused is None else ():
        q, k, v = (t.to(dtype).to(_F64) for t in (q, k, v))
        keyless = None if mask is None else _keyless_failure(fn, q, k, v, mask)
        if keyless is not None:  # a causal function that raises on a query before the first kept key: keep every
            mask = mask.clone()   # first key
            mask[:, 0] = True
        keyless = "" if keyless is None else f", each first key kept: {type(keyless).__name__} without it"
        base, refused = _determined(fn, q, k, v, m, mask, name, alpha, seed, precision)
        if refused is not None:
            break
        new = _Run(fn, q.to(dtype), k.to(dtype), v.to(dtype), m, mask, precision, least=dtype)
        keep = torch.ones(q.shape[:2], dtype=torch.bool) if mask is None else mask
        pairs.append((_difference(new.out[keep], base.out[keep]),
                      lambda fmt=None, base=base, new=new, keep=keep: new.floor(fmt)[keep] + base.floor(fmt)[keep]))
        runs += [base, new]
        whats.append(f"a batch of {q.shape[0]} sequences of L = {q.shape[-2]}"
                     + (" without a mask" if mask is None else
                        f" with a key mask ({int((~mask).sum())} keys masked{keyless})"))
    if refused is not None:
        return _refused_unless_failed(refused, name, name, pairs, runs, alpha, seed, whats)
    return _exact_row(name, name, pairs, runs, alpha, seed, f"{what} ({'; '.join(whats)})")
