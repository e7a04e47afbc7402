r"""Attention-level conformance of any outside attention function built on a feature map (docs/auditing.md).

Many defects that matter live in the attention, not in φ(x)ᵀφ(y): a stabiliser that rescales each key,
padding masked before the feature map (φ(0) ≠ 0), a parameter computed per position, a causal prefix sum off
by one. :func:`check_attention` tests the real function as a black box. It calls the factory

    ``attention(num_features, generator) → fn(q, k, v, mask=None) → out``

with ``q, k, v`` of shape ``[B, L, d]`` and ``mask`` a boolean key mask ``[B, L]`` (True = keep), so that the
check can set m and the draw (:func:`~kerneltheory.testing.adapters.attention_from_module` builds it for a
module). Each check is one or more :class:`~kerneltheory.testing.checks.CheckResult` rows of a
:class:`~kerneltheory.testing.verify.Report`; the report's α is split evenly over its rows (Bonferroni): one row
each for consistency, bias, batch, causality and order, two for the stabiliser, three for padding, one for precision
(float32 in ``dtypes``), one per dtype for finiteness, so a report of n rows gives each α/n. The bias expansion
behind the bias test, the rounding floor of the exact checks and the padding comparison are proved in
proofs/attention_audit.md (items 2, 3 and 6). The function is
always called on copies of the check's tensors (``fn(q.clone(), k.clone(), v.clone(), mask=mask.clone())``): one
that works in place (``q *= scale``) changes nothing the check reuses.

* **consistency** — linear attention is a ratio estimator: out − exact = O_p(m^{-1/2}) with a bias O(1/m), so
  MSE = A/m + B/m² + O(m⁻³) (proofs/attention_audit.md, items 2 and 13). The curvature-corrected slope test of
  :func:`~kerneltheory.testing.attention_checks.mse_slope_check` fits log MSE = a + g·log m + c/m and tests
  g = −1 against g > −1, with a bound D on the neglected O(m⁻²) terms subtracted (the slope-only test drifted
  like √R·(B/A)/m with the draws R and failed correct attentions). Only m ≥ ρ², ρ = max exp(‖q̃ + k̃‖²) of the
  inputs, enter the fit (item 11), and a row is refused where fewer than three counts remain or D exceeds the
  standard error (0.3–0.9 % of each row over 1000 default audits); a non-finite output fails it, naming the
  position (item 12). A defect that does not cancel in the ratio (a per-key constant, a per-position parameter,
  an illegal stabiliser) leaves a bias that does not shrink: the MSE flattens (g > −1) and the test rejects.
  ``reference`` is ``"softmax"`` (exp(qᵀk/√d)) or any Gram-matrix kernel κ (exact kernel attention).
* **bias** (opt-in: ``checks=[..., "bias"]``) — the bias tested directly, far more powerful than the slope
  against a small persistent bias: for iid features the delta-method bias of the ratio,
  (out·Var Ẑ − Cov(N̂, Ẑ))/Z², is exactly ∝ 1/m at first order, so with e_m = out_m − exact,
  t = e_{m₂} − (m₁/m₂)·e_{m₁} (independent draws at the two largest m of the grid) has mean O(m₁⁻²) under H₀
  and (1 − m₁/m₂)·β under a bias β that does not shrink; tested per output entry by
  :func:`~kerneltheory.testing.checks.mean_check` (CLT under its fourth-moment guard, which needs a few hundred
  draws, hence ``bias_draws``; Bonferroni over the entries).
* **stabiliser[scale]**, **stabiliser[shift]** — the same test where stabilisers act differently: queries
  scaled by 1.25 and keys by 1/1.25, and a common vector added to every key (the keys' statistics shift); both
  leave softmax attention exactly unchanged (qᵀk is kept; qᵀc is a constant per query), not the features.
  A legal stabiliser (a constant per query, one constant shared by every key, per-feature rebalancing) leaves
  attention unchanged and passes; an illegal one biases it at some scale.
* **batch** — ``fn`` on a batch of nine sequences (three at the longer length) gives, for each, what it gives on
  that sequence alone (a sum
  over the batch axis shows); it needs no mask, so it runs with ``mask=False`` too.
* **padding[right]**, **padding[left]**, **padding[gap]** — with a key mask, outputs at kept positions equal those
  of the sequences of the kept tokens alone, in order (:func:`padding_masks`: right padding, left padding as in a
  batch prepared for generation, masked keys between kept ones); masked positions hold large random values so that
  a leak into the numerator or the denominator shows. Right padding alone is empty for causal attention (a kept
  output never sees the later keys; proofs/attention_audit.md, item 6); left padding and gaps are not, and catch a
  mask read as a length. In a left-padded causal batch the queries before the first kept key have no key (0/0):
  a function that raises there gets padding[left] refused (nothing to compare), never passed.
* **padding[empty]** — at both lengths, a fully padded sequence (every key masked) beside an unpadded one
  leaves the unpadded one's outputs those it has alone (a batch statistic that the empty sequence's 0/0 makes NaN
  shows); the empty sequence's own outputs are never read; a function that raises on such a batch and on the empty
  sequence alone gets a note, one that raises on the batch only gets the row refused.
* **causality** (``causal=True``) — replacing the tokens from position t on leaves the outputs before t
  unchanged (t = 1, ⌊L/2⌋ + 1, L − 1), and appending tokens (L = 16 inside 513, 513 inside 1024) leaves the first L
  outputs unchanged (proofs/attention_audit.md, item 16).
* **order** — attention sums over a set of keys, so the order of the tokens carries nothing: permuting them permutes
  the outputs; for causal attention, shuffling the tokens within the stretches between fixed odd positions near
  L/4, L/2 and L − 2 leaves the outputs at those t unchanged (:func:`~kerneltheory.testing.attention_exact.order_row`).
  The key just before each t is always replaced, so a chunked state that drops its normaliser fails at L = 513
  without a mask (proofs/attention_audit.md, item 14), as does a parameter tied to a position; for causal attention,
  each prefix of n = 2, 4, … tokens written twice gives at 2n − 1 the output at n − 1 up to one factor per query
  (item 14(f): a query treated by its position fails it). Then the keys and
  values are moved with the queries kept: every output is unchanged (non-causal), or for causal attention those at
  t = 2, 4, 8, …, L − 1, where the same keys are seen (item 14(d)): a chunk's first query missing its own key or a
  carried state missing a chunk's last key (chunks up to 512) fails. It needs no mask; a length of 1 is left out,
  and the row refused if every length is.
* **precision[float32]** (opt-in: ``checks=[..., "precision"]``, with float32 in ``dtypes``) — one draw's outputs
  from float32 inputs against those from the same numbers in float64, on one sequence at each length and on a batch
  at the shortest (six padded sequences with their key mask, at the kept positions; two sequences without a mask for
  ``mask=False``), to the sum
  of the two runs' rounding floors:
  the statistical rows run in float64, so a float32 path that computes another attention (a separate, illegal
  stabiliser for low precision) is seen only here (:func:`~kerneltheory.testing.attention_exact.precision_row`;
  proofs/attention_audit.md, item 15). Opt-in because a correct float32 path that computes in a coarser format
  inside (matrix products under ``torch.autocast`` to bfloat16, TF32) returns float32 numbers and differs by more
  than float32's floor; a correct signed (trigonometric) map whose sums cancel differs by more too, and is refused.
* **finite[float32]**, **finite[float64]** — every output is finite at sequence length ``long_length`` with
  query and key norms up to ``max_norm``: a batch of one sequence of norms uniform in [0, ``max_norm``] and one with
  every norm ``max_norm`` (a stabiliser shared by the batch underflows the second). An exception there is a failure,
  unless the same draw raises in that
  dtype on the ordinary inputs (those every other check ran in float64) as well: then what it rejects is the
  dtype, not the length or the norms, and the row is refused, naming the exception and ``dtypes=``.

The exact rows (batch, padding, causality, order, precision; first a determinism check, since an attention that
redraws on every call cannot be compared: one function called :data:`CALL_REPEATS` times on the same inputs, a
difference beyond rounding adding the refused row ``calls`` (:func:`_unstable_calls`; a redraw inside ``forward``
every N calls), and each row's own two calls) run at ``length`` and again at ``exact_length`` (513: chunked
implementations carry a state between chunks of 64, 128 or 256 tokens, wrong only past the first chunk), and pass
iff every entry differs by at most the rounding floor of two evaluations of a normalised positive-weight attention,
in the precision the outputs were computed in (read from them, or ``output_dtype``); where that floor does not exist
or could not fail (bfloat16 sums of hundreds of terms), outputs that differ are refused, never passed or failed
(:mod:`~kerneltheory.testing.attention_exact`; proofs/attention_audit.md, items 3, 9 and 10). The floor assumes
non-negative weights; a signed map can differ by more through cancellation, and a row that exceeds it is refused, not
failed, where its attention matrix on one sequence without a mask has material negative weights. In every comparison NaN
equals only NaN: a NaN where the other output gives a number is a difference, NaN in both is none (an exclusive causal
sum's 0/0 at position 0 is the finiteness check's failure, not a causality one).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import torch

from .._validation import check_alpha, check_fits_memory, check_int, check_points, check_real
from ..attention import AttentionNotFinite, kernel_attention, softmax_attention
from ..montecarlo import Moments
from ._heads import noting_heads
from .attention_checks import MIN_POINTS, _exact_refusal, mse_slope_check, tail_weight
from .attention_exact import (
    BATCH_SIZES,
    FORMATS,
    GLOBAL_FIX,
    PADDINGS,
    CallFailed,
    NoRoundingBound,
    _agree,  # named here by verify.check_feature_map's docstring and proofs/verification.md as well
    _call,
    _check_reproducible,
    _inputs,
    batch_row,
    beside_alone_row,
    causality_row,
    empty_padding_row,
    gamma_delta,
    matrix_fits,
    order_row,
    output_format,
    padded_batch,
    padding_masks,
    padding_rows,
    precision_row,
    rounding_floor_attention,
)
from .checks import CheckResult, mean_check, property_check, rounding_floor
from .replay import REPEAT_DRAWS, repeated_ties, tie_positions
from .seeds import seed_for
from .user_calls import DROPOUT_OFF
from .verify import Report, audit_each_head

__all__ = ["ATTENTION_CHECKS", "DEFAULT_CHECKS", "PADDINGS", "check_attention", "padding_masks",
           "rounding_floor_attention"]

ATTENTION_CHECKS = ("consistency", "bias", "stabiliser", "batch", "padding", "causality", "order", "precision",
                    "finite")
EXACT_FLOOR = 1e-3  # the largest relative floor at which outputs may count as exact (_exact_up_to_rounding)
DEFAULT_CHECKS = ("consistency", "stabiliser", "batch", "padding", "causality", "order", "finite")
SCALE, SHIFT = 1.25, 0.5  # stabiliser inputs: q × 1.25 with k / 1.25; keys shifted by a vector of norm SHIFT·std·√d
_F64 = torch.float64


def _exact(reference, q, k, v, causal, mask=None) -> torch.Tensor:
    if reference == "softmax":
        return softmax_attention(q, k, v, causal=causal, mask=mask)
    return kernel_attention(q, k, v, _per_sequence(reference), causal=causal, mask=mask)


def _without_grad(kernel):
    """A reference kernel whose output is detached: a kernel that closes over a module's parameters (a learned
    spectrum) would otherwise carry their graph into every reduction of the checks (and warn where one is read as a
    number). It runs as written (a kernel that uses autograd inside still can). Its name is kept for the messages."""
    @functools.wraps(kernel)
    def plain(x, y):
        out = kernel(x, y)
        return out.detach() if isinstance(out, torch.Tensor) else out

    plain.__name__ = getattr(kernel, "__name__", type(kernel).__name__)
    return plain


def _per_sequence(kernel):
    """The Gram matrices ``[..., L, L']`` of a reference kernel ``κ(x, y) → [n, n']``, called on copies of one
    sequence's ``[L, d]`` queries and ``[L', d]`` keys at a time (user code: it may write into them), its errors
    named as the reference's."""

    def gram(x, y):
        xs, ys = x.reshape(-1, *x.shape[-2:]), y.reshape(-1, *y.shape[-2:])
        out = []
        for a, b in zip(xs, ys, strict=True):
            try:
                g = kernel(a.clone(), b.clone())
            except Exception as exc:
                raise ValueError(f"reference(x, y) failed on x {tuple(a.shape)} and y {tuple(b.shape)}: "
                                 f"{type(exc).__name__}: {exc}") from exc
            if not isinstance(g, torch.Tensor) or tuple(g.shape) != (a.shape[0], b.shape[0]):
                got = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
                raise ValueError(f"reference(x, y) must return the [n, n'] = [{a.shape[0]}, {b.shape[0]}] Gram matrix "
                                 f"for x {tuple(a.shape)} and y {tuple(b.shape)}, got {got}")
            out.append(g)
        return torch.stack(out).reshape(*x.shape[:-1], y.shape[-2])

    return gram


def _errors(attention, reference, causal, q, k, v, ms, draws, seed, exact=None, formats=None) -> list[torch.Tensor]:
    """For each m, the ``[draws, L, d_v]`` errors out_m − exact of independent draws (``exact``: the reference
    attention, when the caller has it; ``formats``: a list that receives the unit roundoff of the format of each m's
    first output, :func:`~kerneltheory.testing.attention_exact.output_format`)."""
    g = torch.Generator().manual_seed(seed)
    exact = _exact(reference, q, k, v, causal) if exact is None else exact

    def error(m, first):
        out = _call(attention(m, g), q, k, v)
        if formats is not None and first:  # one reading per m: a function computes every draw in one format
            formats.append(torch.finfo(output_format(out)).eps / 2)
        return (out.to(_F64) - exact)[0]

    return [torch.stack([error(m, r == 0) for r in range(draws)]) for m in ms]


def _exact_up_to_rounding(errors, exact, q, k, v, ms, u: float, gate: bool = True) -> float | None:
    """max |out − exact| at the largest m where every output of every draw there is within the typical rounding of
    the outputs, 2(√N·u + 2δ)(|exact| + mean_j |v_j|) (N = L + 2m + 1, u the outputs' unit roundoff, δ item 3's
    rounding of exp at the largest argument; √N·u the size of the rounding of N-term sums of weights near uniform,
    which is where errors get this small), else None; None too where 2(√N·u + 2δ) exceeds :data:`EXACT_FLOOR`
    (bfloat16 and float16 always). There the Monte Carlo error has reached the size
    of rounding, which does not fall as 1/m: the slope and bias rows cannot follow the law (inputs exact up to
    rounding, keys equal but for the last bits or once cast to float32; or inputs so small, std 1e-4 in float32, that
    the Monte Carlo error is that small), and a bias below that size cannot be told from rounding. The second trigger
    of item 13(f), after :func:`~kerneltheory.testing.attention_checks._exact_inputs`."""
    m, e = max(zip(ms, errors, strict=True), key=lambda t: t[0])
    _, delta = gamma_delta(u, 1, q, k)  # the rounding of exp at the largest argument (item 3's δ)
    scale = 2 * (math.sqrt(q.shape[-2] + 2 * m + 1) * u + 2 * delta)
    if gate and not scale <= EXACT_FLOOR:
        return None
    floor = scale * (exact[0].abs() + v[0].to(_F64).abs().mean(0))
    if not bool(torch.isfinite(e).all()) or not bool((e.abs() <= floor).all()):
        return None
    return float(e.abs().max())


def _repeated_attention_draws(attention, q, k, v, m: int, seed: int) -> CheckResult | None:
    """:data:`~kerneltheory.testing.replay.REPEAT_DRAWS` consecutive factories ``attention(m, g)`` from one generator,
    each called on the check's inputs: where at least :data:`~kerneltheory.testing.replay.REPEAT_TIES` consecutive
    pairs give identical outputs while the outputs are not all one up to rounding
    (:func:`~kerneltheory.testing.replay.one_map`, in the outputs' format), the factory's draws repeat (a cache keyed
    on a counter, a redraw every N calls), and the refused row ``independent draws`` is returned: the slope rows
    would treat them as independent (proofs/verification.md, item 13(f), whose bound holds for the outputs as for
    features)."""
    g = torch.Generator().manual_seed(seed_for("repeats", seed))
    outs = [_call(attention(m, g), q, k, v) for _ in range(REPEAT_DRAWS)]
    found = repeated_ties([("attention(m, generator)", outs)], max(torch.finfo(output_format(o)).eps for o in outs) / 2)
    if found is None:  # no repeats, or one output whatever the draw (_frozen then refuses the slope rows)
        return None
    ties = found[1]
    return CheckResult.refusal(
        f"{sum(ties)} of {REPEAT_DRAWS - 1} consecutive factories attention(m = {m}, generator) gave identical outputs "
        f"(draws {tie_positions(ties)}) while others differ: the factory's draws repeat (a cache keyed "
        "on a counter, a redraw only every few calls), so they are not independent, and the slope rows (consistency, "
        "bias, stabiliser), which average independent draws, were not run; each call attention(m, generator) must "
        "draw afresh from its generator", name="independent draws", claim="independent draws", alpha=0.0,
        sample_size=REPEAT_DRAWS, seed=seed)


REPLAY_FACTORIES = 16  # factories built twice from identically seeded generators at the largest m and compared


def _factories_replay(attention, q, k, v, m: int, seed: int, precision=None) -> None:
    """:data:`REPLAY_FACTORIES` consecutive factories ``attention(m, g)`` from one generator, then again from an
    identically seeded one: the outputs at each draw must agree up to the two evaluations' rounding (:func:`_agree`,
    as in ``_check_reproducible``: a kernel may reassociate its sums from call to call), else ValueError.
    ``_check_reproducible`` compares one factory; a factory that reads torch's global generator only now and then (a
    rejection branch without ``generator=g``, at |w| > 4.5: a fifth of the factories at m = 4096, d = 8) passed it
    at 4 of 4 seeds, and its reports moved with the caller's global seed."""
    runs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(seed_for("replay factories", seed))
        built = []
        for _ in range(REPLAY_FACTORIES):
            fn = attention(m, g)
            built.append((fn, _call(fn, q, k, v)))
        runs.append(built)
    for i, ((fa, a), (fb, b)) in enumerate(zip(*runs, strict=True)):
        try:
            same = _agree(fa, fb, q, k, v, a, b, m, precision=precision)
        except NoRoundingBound as exc:
            raise ValueError(f"attention({m}, generator), draw {i + 1} of {REPLAY_FACTORIES} from one generator and "
                             "from an identically seeded one, gives outputs that differ, and whether by rounding "
                             f"alone cannot be decided: {exc}") from exc
        if not same:
            raise ValueError(f"attention({m}, generator), draw {i + 1} of {REPLAY_FACTORIES} from one generator and "
                             "from an identically seeded one, gives different outputs: it must draw its features only "
                             "from the generator it is given (a rejection or fallback branch without "
                             "generator=generator reads torch's global generator only now and then). " + GLOBAL_FIX)


CALL_REPEATS = 64  # calls of one function on the same inputs before the exact rows (periods up to 63 calls seen)
CALL_ROWS = ("batch", "padding", "causality", "order", "precision")  # the rows that compare calls of one function


def _unstable_calls(attention, q, k, v, m: int, seed: int, precision=None) -> CheckResult | None:
    """One function ``attention(m, g)`` called :data:`CALL_REPEATS` times on the check's inputs: where a call's outputs
    differ from the first call's beyond the two evaluations' rounding (:func:`_agree`), the function changes from call
    to call (a redraw inside ``forward`` every N calls in eval mode), and the refused row ``calls`` is returned, naming
    the call: the exact rows compare calls of one function, and a difference they find may be this redraw rather than
    the defect they name (a period of 50 calls passed every row before; proofs/attention_audit.md, item 10(c)).
    None where every call agrees, or a difference has no rounding floor to be judged by."""
    fn = attention(m, torch.Generator().manual_seed(seed_for("calls", seed)))
    first = _call(fn, q, k, v)
    for c in range(1, CALL_REPEATS):
        out = _call(fn, q, k, v)
        try:
            same = _agree(fn, fn, q, k, v, first, out, m, None, precision)
        except NoRoundingBound:
            return None
        if not same:
            return CheckResult.refusal(
                f"call {c + 1} of one function attention(m = {m}, generator) on the same inputs (L = {q.shape[-2]}) "
                "differs from its first call beyond their rounding: the function changes from call to call (a redraw "
                f"inside forward, {'on every call' if c == 1 else f'every {c} calls or so'}, or other random numbers "
                f"drawn at each call, such as dropout left on); the rows {', '.join(CALL_ROWS)} compare calls of one "
                "function, so a difference they report may be this change rather than the defect they name. Make "
                "the forward of one draw give one output (redraw in a method; audit a module through "
                "attention_from_module(..., forward_redraws=True), which seeds every call alike). That cannot help "
                "dropout, whose mask follows each call's shape: " + DROPOUT_OFF,
                name="calls", claim="calls", alpha=0.0, sample_size=c + 1, seed=seed)
    return None


def _rounding_only(errors, exact, q, k, v, ms, u: float, base: dict) -> CheckResult | None:
    """The refusal of :func:`_exact_up_to_rounding`, or None."""
    worst = _exact_up_to_rounding(errors, exact, q, k, v, ms, u)
    if worst is None:
        return None
    return CheckResult.refusal(f"at the largest m every output of every draw is within the typical rounding of the "
                               f"exact attention (max |out − exact| = {worst:.3g}, within 2√N·u of the outputs' "
                               "scale): the Monte Carlo error is no larger than rounding there (inputs exact up to "
                               "rounding, or inputs this small), so neither the 1/m law nor a bias of that size can be "
                               "told from rounding; a larger input scale or fewer features would show it. An "
                               "attention with no random features (elu + 1, cosFormer) is exact at every m: its rows "
                               "that average draws test nothing, and the rows that compare calls audit it "
                               "(checks=['batch', 'padding', 'order', 'finite'], with 'causality' for a causal one)",
                               **base)


HALF_FORMATS = (torch.bfloat16, torch.float16)  # the formats whose rows are read against rounded inputs (item 13(h))


def _rounded_shift(reference, causal, q, k, v, exact, u: float) -> tuple[torch.Tensor, str] | None:
    """For outputs computed in bfloat16 or float16 (unit roundoff ``u``): exact − exact attention of the inputs rounded
    to that format (what a function that casts its inputs computes in exact arithmetic), and the format's name; None
    for finer formats. A half-precision module rounds q, k and v before anything else, which moves exact attention
    by as much as its Monte Carlo error at large m (8.3e-4 in bfloat16 at the default inputs), so its estimates
    converge to the second reference, not the first (proofs/attention_audit.md, item 13(h))."""
    fmt = next((f for f in HALF_FORMATS if torch.finfo(f).eps / 2 == u), None)
    if fmt is None:
        return None
    try:
        rounded = _exact(reference, *(t.to(fmt).to(_F64) for t in (q, k, v)), causal)
    except AttentionNotFinite:
        return None
    return exact - rounded, str(fmt).removeprefix("torch.")


def _either_reference(row: CheckResult, other, fmt: str) -> CheckResult:
    """A failure stands only if the same test against the rounded inputs' exact attention (``other()``, a row) fails
    too; otherwise that row is the verdict, saying which reference it used. Under H₀ one of the two references is the
    function's limit, and failing only when both reject keeps the level α."""
    if row.status != "failed":
        return row
    second = other()
    if second.status == "failed":
        second.detail = (f"fails against exact attention both of the inputs and of the inputs rounded to {fmt}; "
                         + second.detail)
        return second
    second.detail = (f"against exact attention of the inputs rounded to {fmt}, the format the outputs were "
                     f"computed in (against the unrounded inputs' it fails: {row.detail}); " + second.detail)
    return second


def _frozen(errors: list[torch.Tensor], ms, base: dict) -> CheckResult | None:
    """A refusal when every draw at some m gives the same output up to rounding: the factory ignores its
    generator (a fixed seed inside, a cached draw, no random features), so there is no Monte Carlo error whose
    law could be tested."""
    same = lambda e, ref: bool(torch.isfinite(e).all()) and bool(((e - ref).abs() <= rounding_floor(e)).all())  # noqa: E731
    for m, e in zip(ms, errors, strict=True):
        if same(e, e[:1]):
            what = (f"all {e.shape[0]} draws at m = {m} give the same output: the function does not draw its "
                    "features from the generator it is given (a fixed seed inside? a cached draw?)")
            if all(same(f, e[:1]) for f in errors):
                what = (f"the output depends neither on the draw nor on m (max |out − exact| = "
                        f"{float(e.abs().max()):.3g}): not a random-feature attention, or one module that every "
                        "draw reuses and never redraws (a redraw gated on self.training does nothing in the eval mode "
                        "attention_from_module runs modules in)")
            return CheckResult.refusal(what + ", so nothing can be averaged", **base)
    return None


def _consistency(attention, reference, causal, q, k, v, ms, draws, name, claim, alpha, seed, replay) -> CheckResult:
    """The curvature-corrected slope test of :func:`~kerneltheory.testing.attention_checks.mse_slope_check` (log MSE =
    a + g·log m + c/m, H₀: g = −1 against g > −1; proofs/attention_audit.md, item 13) on ``draws`` errors per m: a
    non-finite output fails the row (naming the first position), a non-finite reference refuses it, and the m below
    ρ² are left out (refused when fewer than three remain; ρ of the softmax reference or of the kernel, item 11).
    ``replay(m)`` probes the factories at a count the grid's extension adds (:func:`_extend_grid`)."""
    base = dict(name=f"{name}: MSE ∝ 1/m", claim=claim, alpha=alpha, sample_size=draws * len(ms), seed=seed)
    exact_inputs = _exact_refusal(q, k, v, base)
    if exact_inputs is not None:
        return exact_inputs
    try:  # the library raises AttentionNotFinite naming the position; other errors (a user kernel's) propagate
        exact = _exact(reference, q, k, v, causal)
    except AttentionNotFinite as exc:
        return CheckResult.refusal(f"the reference attention is not finite ({exc}): nothing to compare with", **base)
    formats = []
    regime = (q, k) if reference == "softmax" else (q, k, reference)
    errors = _errors(attention, reference, causal, q, k, v, ms, draws, seed, exact, formats)
    ms, errors, extended = _extend_grid(attention, reference, causal, q, k, v, ms, draws, seed, exact, formats, regime,
                                        errors, replay)
    base["sample_size"] = draws * len(ms)
    if all(bool(torch.isfinite(e).all()) for e in errors):
        frozen = _rounding_only(errors, exact, q, k, v, ms, max(formats), base) or _frozen(errors, ms, base)
        if frozen is not None:
            frozen.detail = extended + frozen.detail
            return frozen
    shift = _rounded_shift(reference, causal, q, k, v, exact, max(formats))
    # in half precision the outputs' rounding, |out − fl(out)| ≤ u|out|, adds up to (u·|exact|)² to each MSE
    floor = 0.0 if shift is None else float(((max(formats) * exact).abs() ** 2).mean())
    # a pass must resolve an error as large as the outputs that does not fall with m (item 13(j))
    square = float((exact.double() ** 2).mean())
    size = square if 0 < square < math.inf else None
    row = mse_slope_check(ms, errors, alpha=alpha, base=base, regime=regime, floor=floor, magnitude=size)
    if shift is not None:
        row = _either_reference(row, lambda: mse_slope_check(ms, [e + shift[0] for e in errors], alpha=alpha,
                                                             base=base, regime=regime, floor=floor, magnitude=size),
                                shift[1])
    what = ("softmax attention, weights exp(qᵀk/√d)" if reference == "softmax" else
            f"exact attention with the kernel {getattr(reference, '__name__', type(reference).__name__)}")
    row.detail = f"reference: {what}; {extended}{row.detail}"
    return row


#: the slope rows' grid is extended by 4·max(m) when fewer than three of its feature counts reach EXTEND_AT·ρ², where
#: the O(m⁻²) remainder's bound per count, t²/(1 − t) with t = ρ²/m, is at most 1/(EXTEND_AT·(EXTEND_AT − 1)) = 1/6,
#: about the slope's standard error at 64 draws (0.14–0.15): on the default grid from ρ² > 256/3, where the rows were
#: refused for that bound (3 of 100 seeds of a Performer module at the default inputs, mostly with ρ² ≈ 100–160). A cost
#: trade-off, not a level: the choice reads the inputs, not the draws
EXTEND_AT = 3
#: ... and only where the extended grid has three counts ≥ 2ρ² (t ≤ 1/2): with ρ² in (512, 1024] on the default grid
#: every extended row was still refused (56 of 56 in a review's trial), in (256, 512] 70 of 84 were decided
EXTEND_REACH = 2
#: the largest 4·max(m)·L·d_v (the feature-times-value entries per sequence of one call, as a causal prefix holds
#: them) an extension may cost: L = 16, d_v = 64 at m = 16384; a Performer module's causal row at L = 256, d_v = 8
#: took 100 s and 1.6 GB extended against 20 s and 0.7 GB
EXTEND_LIMIT = 2**24


def _extend_grid(attention, reference, causal, q, k, v, ms, draws, seed, exact, formats, regime, errors, replay):
    """``(ms, errors, note)``: the grid and the errors, with 4·max(ms) added (its ``draws`` errors drawn after the
    others', from a generator of its own) when the grid has at least three distinct counts, fewer than three of them
    reach :data:`EXTEND_AT`·ρ², the extended grid has three that reach :data:`EXTEND_REACH`·ρ² (ρ:
    :func:`~kerneltheory.testing.attention_checks.tail_weight` of the row's inputs), the cost stays within
    :data:`EXTEND_LIMIT`, and the grid's errors are finite (a non-finite one fails the row whatever the grid). The
    choice reads the inputs, not the draws' values, so the row's test keeps its level (proofs/attention_audit.md, item
    13(i)); a function that raises at the new count keeps the grid it was given, and the note says so. The factories
    at the new count are probed as those at the grid's largest count are before any row (``replay``: a ValueError
    where their draws do not replay from an identically seeded generator); a factory reading torch's global
    generator only past the given grid drew the new count's errors outside the check's seed, and passed before."""
    rho2 = tail_weight(*regime) ** 2
    grid = sorted(set(ms))
    new = 4 * grid[-1]
    cost = new * q.shape[-2] * v.shape[-1]
    if (len(grid) < MIN_POINTS or sum(m >= EXTEND_AT * rho2 for m in grid) >= MIN_POINTS
            or sum(m >= EXTEND_REACH * rho2 for m in [*grid, new]) < MIN_POINTS or cost > EXTEND_LIMIT
            or not all(bool(torch.isfinite(e).all()) for e in errors)):
        return ms, errors, ""
    try:
        more = _errors(attention, reference, causal, q, k, v, [new], draws, seed_for("extended grid", seed), exact,
                       formats)
    except Exception as exc:  # noqa: BLE001 - the grid it was given is still a test; the note names the error
        own = exc.__cause__ if isinstance(exc, CallFailed) and exc.__cause__ is not None else exc
        return ms, errors, f"m = {new} not added (the call at it raised {type(own).__name__}: {own}); "
    replay(new)
    why = f"fewer than {MIN_POINTS} feature counts ≥ {EXTEND_AT}ρ² = {EXTEND_AT * rho2:.3g}"
    return [*ms, new], [*errors, *more], f"m = {new} added to the grid ({why}); "


def _bias(attention, reference, causal, q, k, v, ms, draws, alpha, seed) -> CheckResult:
    """t = e_{m₂} − (m₁/m₂)·e_{m₁} per output entry at the two largest m (module docstring)."""
    m1, m2 = sorted(set(ms))[-2:]
    base = dict(name="bias ∝ 1/m", claim="consistency", alpha=alpha, sample_size=2 * draws, seed=seed)
    frozen = _exact_refusal(q, k, v, base)
    if frozen is None:
        formats, exact = [], _exact(reference, q, k, v, causal)
        e1, e2 = _errors(attention, reference, causal, q, k, v, (m1, m2), draws, seed, exact, formats)
        frozen = _rounding_only([e1, e2], exact, q, k, v, (m1, m2), max(formats), base) or \
            _frozen([e1, e2], (m1, m2), base)
    if frozen is not None:
        return frozen
    shift = _rounded_shift(reference, causal, q, k, v, exact, max(formats))
    atol = rounding_floor(e1, e2)
    if shift is not None:  # half precision: a bias below u·|out|, as features rounded inside make, is rounding's
        atol = atol + (1 - m1 / m2) * max(formats) * exact[0].abs().flatten()

    # t has target 0 at every entry: a pass must resolve a bias that does not fall with m as large as the outputs
    # themselves, (1 − m₁/m₂)·max|out| (proofs/verification.md, item 3(b)); outputs all 0 leave nothing to resolve
    top = (1 - m1 / m2) * float(exact.abs().max())
    size = dict(magnitude=top, magnitude_of=f"(1 − {m1}/{m2})·max|output| (a bias as large as the outputs that "
                "does not fall with m)") if top > 0 and math.isfinite(top) else {}

    def test(d):
        t = (e2 - (m1 / m2) * e1 + (1 - m1 / m2) * d).flatten(1)
        row = mean_check(Moments.from_samples(t), torch.zeros(t.shape[1], dtype=_F64), alpha=alpha,
                         name="bias ∝ 1/m", seed=seed, samples=t, atol=atol, claim="consistency", **size)
        row.detail = f"e(m={m2}) − ({m1}/{m2})·e(m={m1}) per output entry; " + row.detail
        return row

    row = test(0.0)
    if shift is not None:
        row = _either_reference(row, lambda: test(shift[0][0]), shift[1])
    return row


def _finite(attention, d, m, long_length, max_norm, dtype, alpha, seed, ordinary) -> CheckResult:
    """Every output finite at L = ``long_length``, norms up to ``max_norm``, in ``dtype``, for a batch of two
    sequences: one with norms uniform in [0, ``max_norm``], one with every norm ``max_norm`` (whose exponential
    features' logits, −‖k‖²/2 + ωᵀk, all lie far below the first one's: a stabiliser or a rescaling shared by the
    whole batch underflows its weights to 0/0, while each sequence computed as if alone is finite). An exception
    there fails the row, unless the same draw raises in ``dtype`` on the ``ordinary`` inputs (those every other check
    ran in float64) as well: then the dtype itself, not the length or the norms, is what it rejects, and the row is
    refused (the function does not accept this dtype; its finiteness in it is no claim it makes)."""
    name = f"finite[{str(dtype).removeprefix('torch.')}]"
    g = torch.Generator().manual_seed(seed)
    norms = lambda: max_norm * torch.rand(1, long_length, 1, generator=g, dtype=_F64)  # noqa: E731
    unit = lambda: torch.nn.functional.normalize(torch.randn(1, long_length, d, generator=g, dtype=_F64), dim=-1)  # noqa: E731
    q, k = unit() * norms(), unit() * norms()
    v = torch.randn(1, long_length, d, generator=g, dtype=_F64)
    fn = attention(m, g)
    # the second sequence, drawn after the map (the first one's stream is unchanged): every token at max_norm
    q, k = torch.cat([q, unit() * max_norm]), torch.cat([k, unit() * max_norm])
    v = torch.cat([v, torch.randn(1, long_length, d, generator=g, dtype=_F64)])
    inputs = f"L = {long_length}, norms ≤ {max_norm} (one sequence of norms in [0, {max_norm}], one at {max_norm})"
    per_call = False  # the function took the two sequences one per call (below)
    benign = min(1.0, 0.5 / max_norm)  # the same inputs at norms ≤ 0.5: what fails there is not the norms
    try:
        out = _call(fn, q.to(dtype), k.to(dtype), v.to(dtype))
    except Exception as exc:  # the function's own refusal at these inputs fails the claim, unless (below)
        cause = exc.__cause__ or exc
        raised = f"raised {type(cause).__name__}: {cause}"
        out = None
        try:  # a function that takes one sequence per call (or a token budget) raises on that batch as well
            _call(fn, (q * benign).to(dtype), (k * benign).to(dtype), v.to(dtype))
        except Exception:  # it does: finiteness of each sequence alone
            try:
                out = torch.cat([_call(fn, q[i:i + 1].to(dtype), k[i:i + 1].to(dtype), v[i:i + 1].to(dtype))
                                 for i in range(2)])
                inputs += f" (one sequence per call: a batch of two {raised})"
                per_call = True
            except Exception:
                out = None
    if out is None:
        try:
            _call(fn, *(t.to(dtype) for t in ordinary))
        except Exception:  # it rejects the dtype itself
            return CheckResult.refusal(
                f"the function does not run in {name[7:-1]}: it {raised}, on the ordinary inputs (L = "
                f"{ordinary[0].shape[-2]}) too, which it computes in float64; a dtype it does not accept says "
                "nothing of finiteness: pass dtypes= the dtypes it supports (kerneltheory audit: --dtypes)",
                name=name, claim="finite", alpha=alpha, sample_size=1, seed=seed)
        return property_check(1, 1, claim="finite", name=name, seed=seed, alpha=alpha,
                              example=f"{inputs}: {raised} (it runs in {name[7:-1]} on the ordinary inputs)")
    bad = ~torch.isfinite(out)
    where = ""
    if bool(bad.any()):
        b, pos = (int(i) for i in bad.nonzero()[0][:2])
        which = ("of norms in [0, max_norm]", "at max_norm")[b]
        where = f", first non-finite output at position {pos} of the sequence {which}"
        if not bool(bad[1 - b].any()):
            try:  # the failing sequence alone: finite there means the batch is shared; not finite, the format
                alone = _call(fn, q[b : b + 1].to(dtype), k[b : b + 1].to(dtype), v[b : b + 1].to(dtype))
                alone_finite = bool(torch.isfinite(alone).all())
            except Exception:
                alone_finite = None
            if alone_finite:
                where += (" (the other sequence's outputs are finite, and this one's are finite when it is computed "
                          "alone: is a stabiliser or a rescaling shared by the batch? each sequence must be computed "
                          "as if alone)")
            elif alone_finite is False:
                where += (" (not finite when computed alone either: the features overflow or underflow in the format "
                          "the function computes in at these norms; a stabiliser per sequence, or a wider format)")
        else:  # both sequences: the norms, if the same batch at norms ≤ 0.5 is finite (a helper's trial: a query
            # stabiliser without −‖q‖²/2); else the length or the batch (a review: NaN past L = 512 at any norm)
            try:
                low = _call(fn, (q * benign).to(dtype), (k * benign).to(dtype), v.to(dtype))
                low_finite = bool(torch.isfinite(low).all())
            except Exception:
                low_finite = None
            if low_finite:
                where += (f" (in both sequences, and finite at norms ≤ 0.5: the features overflow or underflow in the "
                          f"format the function computes in at norms up to max_norm = {max_norm:g}; exponential "
                          "features stay within it when each query's logits, and each sequence's keys', have their "
                          "largest subtracted, −‖x‖²/2 included; or a wider format)")
            elif low_finite is False:
                where += (f" (in both sequences, and at norms ≤ 0.5 too: not the norms but the length L = "
                          f"{long_length} or the batch)")
    if out.dtype != dtype:  # e.g. a module that keeps its own dtype (attention_from_module's default)
        where += f" (the function computed in {str(out.dtype).removeprefix('torch.')})"
    if not bool(bad.any()) and not per_call:  # finite: is each sequence what it is alone? (a clamp hides 0/0)
        row = beside_alone_row(fn, q.to(dtype), k.to(dtype), v.to(dtype), out, m, name, alpha, seed,
                               f"{inputs}: the sequence at max_norm computed beside the other against it alone "
                               "(finite, but a stabiliser or a rescaling shared by the batch changes its outputs: each "
                               "sequence must be computed as if alone)" + where)
        if row is not None:
            return row
    return property_check(int(bad.sum()), out.numel(), claim="finite", name=name, seed=seed, alpha=alpha,
                          example=inputs + where)


def _wanted(checks, causal: bool, mask: bool) -> list[str]:
    """The checks to run: ``checks``, or by default those of :data:`DEFAULT_CHECKS` that apply (causality with
    ``causal``, padding with ``mask``); a check named explicitly that cannot run is a ValueError naming what it
    needs."""
    if checks is None:
        return [c for c in DEFAULT_CHECKS if (c != "causality" or causal) and (c != "padding" or mask)]
    wanted = list(checks)
    if set(wanted) - set(ATTENTION_CHECKS) or not wanted:
        raise ValueError(f"checks must be a non-empty subset of {list(ATTENTION_CHECKS)}, got {wanted}")
    if "causality" in wanted and not causal:
        raise ValueError("checks: causality needs causal=True (kerneltheory audit: --causal), the function's claim "
                         "of causal attention")
    if "padding" in wanted and not mask:
        raise ValueError("checks: padding needs mask=True, a function that takes a key mask (kerneltheory audit: "
                         "without --no-mask)")
    return wanted


@noting_heads("attention_from_module", "head_factories")
def check_attention(
    attention: Callable[[int, torch.Generator], Callable],
    *,
    dim: int,
    reference="softmax",
    causal: bool = False,
    mask: bool = True,
    checks: Sequence[str] | None = None,
    num_features: Sequence[int] = (64, 256, 1024, 4096),
    draws: int = 64,
    bias_draws: int = 512,
    length: int = 16,
    exact_length: int = 513,
    input_std: float = 0.3,
    long_length: int = 1024,
    max_norm: float = 20.0,
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    output_dtype: torch.dtype | None = None,
    alpha: float = 1e-6,
    seed: int = 0,
) -> Report:
    """Audit an attention function built on m random features (module docstring).

    Args:
        attention: ``attention(m, generator) → fn(q, k, v, mask=None)``; ``fn`` maps ``[B, L, d]`` tensors
            (and a key mask ``[B, L]``, True = keep) to ``[B, L, d_v]``, causal or not as it claims.
        dim: d. reference: ``"softmax"`` or a kernel ``κ(x, y) → [n, n']`` (exact kernel attention).
        causal: the function claims causal attention (the reference is causal too; adds "causality").
        mask: the function accepts a key mask (runs "padding": rows padding[right], padding[left], padding[gap]).
        checks: a subset of :data:`ATTENTION_CHECKS` (default :data:`DEFAULT_CHECKS`, those that apply; the
            "bias" test costs ``bias_draws`` calls at each of the two largest m and is opted into, as is "precision",
            which fails a float32 path computing in a coarser format inside). Named
            explicitly, "causality" needs ``causal=True`` and "padding" ``mask=True`` (a ValueError otherwise).
        num_features: the grid of m for the slope tests (the second one serves the exact checks).
        draws: draws per m of the slope tests (below 64 the consistency and stabiliser rows are refused);
            bias_draws: draws per m of the bias test.
        length: L of the statistical and exact checks (≥ 4 with padding); input_std: std of q and k.
        exact_length: the exact rows (batch, padding, causality, order, precision) run at ``length`` and again at
            this L (≥ 4 with padding; default 2·256 + 1, past the chunk sizes of chunked implementations).
        long_length, max_norm, dtypes: the finiteness checks (``dtypes``: those the function accepts; a dtype it
            rejects even on the ordinary inputs refuses its row); the order row runs at ``long_length`` as well (a
            state wrong past a first chunk longer than ``exact_length``), and the causality row appends up to it.
        inputs: ``(q, k, v)`` of shape ``[1, L, d]`` for the consistency, stabiliser, causality and order checks instead
            of q, k ~ N(0, input_std²), v ~ N(0, 1) (e.g. tokens of very different norms, where a per-position
            parameter shows).
        output_dtype: the format the function computes its outputs in, for the exact rows' rounding floor;
            default: read from the outputs (the coarsest of bfloat16, float16, float32 holding them all, else
            their dtype: a function computing in float32 that returns float64 gets float32's rounding).
        alpha: the report's total false-failure rate; seed: base seed of every check.

    A factory with a ``head_factories`` attribute (one factory per head of a multi-head module,
    :func:`~kerneltheory.testing.adapters.attention_from_module`) is audited on every head in turn, each at
    α/heads with the same seed, and the report gives each row its worst head
    (:func:`~kerneltheory.testing.verify.join_head_reports`).

    Raises ``ValueError`` when two factories built from identically seeded generators give different outputs
    (the function draws from the global generators, so its verdict could not be replayed), and on bad arguments.
    """
    arguments = dict(locals())  # the call's arguments, for the audit of each head
    d = check_int(dim, "dim", minimum=1)
    if not callable(attention):
        raise TypeError(f"attention must be a factory (num_features, generator) -> fn, got {type(attention).__name__}")
    if not (reference == "softmax" or callable(reference)):
        raise ValueError(f"reference must be 'softmax' or a kernel callable, got {reference!r}")
    if reference != "softmax":
        reference = _without_grad(reference)
    for flag, nm in ((causal, "causal"), (mask, "mask")):
        if not isinstance(flag, bool):
            raise TypeError(f"{nm} must be a bool, got {type(flag).__name__}")
    wanted = _wanted(checks, causal, mask)
    ms = [check_int(m, "num_features[i]", minimum=1) for m in num_features]
    if len(set(ms)) < 2:
        raise ValueError(f"num_features must hold at least two distinct feature counts, got {ms}")
    draws = check_int(draws, "draws", minimum=2)
    bias_draws = check_int(bias_draws, "bias_draws", minimum=2)
    length = check_int(length, "length", minimum=2)
    exact_length = check_int(exact_length, "exact_length", minimum=2)
    long_length = check_int(long_length, "long_length", minimum=2)
    std = check_real(input_std, "input_std", minimum=0.0, strict_min=True)
    max_norm = check_real(max_norm, "max_norm", minimum=0.0, strict_min=True)
    alpha = check_alpha(alpha)
    seed = check_int(seed, "seed", minimum=0)
    for dt in dtypes:
        if dt not in (torch.float32, torch.float64):
            raise ValueError(f"dtypes must hold torch.float32 and/or torch.float64, got {dt}")
    if output_dtype is not None and output_dtype not in FORMATS:
        raise ValueError(f"output_dtype must be None or one of {[str(f) for f in FORMATS]}, got {output_dtype!r}")
    for value, nm in ((length, "length"), (exact_length, "exact_length")):
        if "padding" in wanted and value < 4:
            raise ValueError(f"{nm} must be >= 4 for the padding checks (a gap needs kept keys on both sides; "
                             f"kerneltheory audit: --{nm.replace('_', '-')}), got {value}")
    coarse = sum(dt != _F64 for dt in dtypes)
    n_rows = sum({"stabiliser": 2, "padding": len(PADDINGS) + 1, "finite": len(dtypes), "precision": coarse}.get(c, 1)
                 for c in wanted)
    if n_rows == 0:
        raise ValueError("no check to run: finite needs at least one dtype in dtypes, precision one besides float64")
    # the audit's own tensors, before any is allocated: q, k, v and the outputs of the widest batch
    # at the longest length, and the causality row's [L, L] matrix (a length of 10⁸ ended in the allocator's error)
    longest = max(length, exact_length, long_length)
    widest = max(2 * len(PADDINGS), *BATCH_SIZES)  # the padding rows' batch, the batch row's
    check_fits_memory(4 * widest * 8.0 * longest * d, f"a batch of {widest} sequences of "
                      f"{longest} tokens of dimension {d} (q, k, v and the outputs)", "smaller lengths or dim "
                      "(kerneltheory audit: --length, --exact-length, --long-length, --dim)")
    if "causality" in wanted:
        matrix_fits(max(exact_length, long_length))
    joined = audit_each_head(attention, "head_factories", lambda h, a: check_attention(
        **{**arguments, "attention": h, "alpha": a}), alpha, "attention_from_module")
    if joined is not None:
        return joined
    a = alpha / n_rows
    m_exact = ms[1] if len(ms) > 1 else ms[0]
    report = Report("check_attention", alpha=alpha, budget=f"{draws} draws × m ∈ {ms}", seed=seed)
    if inputs is None:
        q, k, v = _inputs(1, length, d, std, torch.Generator().manual_seed(seed_for("attention inputs", seed)))
    else:
        q, k, v = (check_points(t, f"inputs[{i}]", min_rank=3).to(_F64) for i, t in enumerate(inputs))
        if (q.shape != k.shape or q.shape[0] != 1 or q.shape[-1] != d or v.shape[:-1] != q.shape[:-1]
                or q.shape[-2] < 1 or v.shape[-1] < 1):
            raise ValueError(f"inputs must be (q, k, v) of shape [1, L, d] with d = {d} and L ≥ 1, got "
                             f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    _check_reproducible(attention, q, k, v, ms[0], seed, output_dtype)
    lengths = sorted({length, exact_length})
    statistical = [c for c in wanted if c in ("consistency", "bias", "stabiliser")]
    repeated = _repeated_attention_draws(attention, q, k, v, ms[0], seed) if statistical else None
    replayed = set()

    def replay(m: int) -> None:  # once per count: the up-front probe, then a count a slope row's grid extension adds
        if m not in replayed:
            _factories_replay(attention, q, k, v, m, seed, output_dtype)
            replayed.add(m)

    if statistical and repeated is None:  # the rows that average draws (refused where the draws repeat; a cache
        replay(ms[-1])  # keyed on a counter would not replay either), where a rare read of the global generator
        # acts most; the exact rows hold for every draw
    if repeated is not None:  # the slope rows would treat repeated draws as independent
        report.checks.append(repeated)
        report.notes.append(f"not run: {', '.join(statistical)} (the factory's draws repeat)")
        wanted = [c for c in wanted if c not in statistical]
    unstable = (_unstable_calls(attention, q, k, v, m_exact, seed, output_dtype)
                if any(c in CALL_ROWS for c in wanted) else None)
    if unstable is not None:  # the exact rows still run: a failure they find may be this change (the row says so)
        report.checks.append(unstable)
    for c in wanted:
        s = seed_for(c, seed)
        if c == "consistency":
            report.checks.append(_consistency(attention, reference, causal, q, k, v, ms, draws, "consistency",
                                              "consistency", a, s, replay))
        elif c == "bias":
            report.checks.append(_bias(attention, reference, causal, q, k, v, ms, bias_draws, a, s))
        elif c == "stabiliser":
            shift = torch.nn.functional.normalize(torch.ones(d, dtype=_F64), dim=0) * SHIFT * std * math.sqrt(d)
            for label, (q2, k2) in (("scale", (q * SCALE, k / SCALE)), ("shift", (q, k + shift))):
                report.checks.append(_consistency(attention, reference, causal, q2, k2, v, ms, draws,
                                                  f"stabiliser[{label}]", "stabiliser", a,
                                                  seed_for(f"stabiliser {label}", seed), replay))
        elif c in ("batch", "padding"):  # BATCH_SIZES sequences per batch, a pair per padding pattern, at each length
            g = torch.Generator().manual_seed(s)
            sets = [_inputs(BATCH_SIZES[n > min(lengths)] if c == "batch" else 2 * len(PADDINGS), n, d, std, g)
                    for n in lengths]
            if c == "batch":
                report.checks.append(batch_row(attention, sets, m_exact, a, s, output_dtype))
            else:  # and at long_length: a path that drops the mask at long sequences, a state carried past a first
                # chunk longer than exact_length that sums masked keys
                optional = len(sets)
                long_sets = ([_inputs(2 * len(PADDINGS), long_length, d, std, g)] if long_length > max(lengths)
                             else [])
                report.checks.extend(padding_rows(attention, sets + long_sets, m_exact, a, s, causal, output_dtype,
                                                  optional_from=optional))
                row, note = empty_padding_row(attention, sets, m_exact, a, seed_for("padding empty", seed),
                                              output_dtype)
                report.checks += [row] if row is not None else []
                report.notes += [note] if note is not None else []
        elif c == "precision":  # one row per coarser dtype the function accepts, at both lengths
            g = torch.Generator().manual_seed(s)
            sets = [(q, k, v)] + ([_inputs(1, exact_length, d, std, g)] if exact_length != q.shape[-2] else [])
            # and a batch at the shortest length: six padded sequences with a key mask, or two without one (a float32
            # path that ignores the mask or mixes the batch does so at any length; the padding and batch rows test the
            # long lengths' masks and batches in float64)
            n = min(lengths)
            batches = [padded_batch(*_inputs(2 * len(PADDINGS), n, d, std, g), g) if mask and n >= 4 else
                       (*_inputs(2, n, d, std, g), None)]
            for dt in dtypes:
                if dt != _F64:
                    report.checks.append(precision_row(attention, sets, m_exact, a, s, dt, output_dtype, batches))
        elif c in ("causality", "order"):
            g = torch.Generator().manual_seed(s)
            sets = [(q, k, v)] + ([_inputs(1, exact_length, d, std, g)] if exact_length != q.shape[-2] else [])
            if c == "causality":
                report.checks.append(causality_row(attention, sets, m_exact, a, s, output_dtype,
                                                   longest=long_length, m_matrix=ms[0]))
            else:  # and at long_length: a state wrong past a first chunk longer than exact_length shows there
                optional = len(sets)
                if long_length > max(exact_length, q.shape[-2]):
                    sets.append(_inputs(1, long_length, d, std, g))
                report.checks.append(order_row(attention, sets, m_exact, a, s, causal, output_dtype,
                                               optional_from=optional))
        else:
            for dt in dtypes:
                report.checks.append(_finite(attention, d, m_exact, long_length, max_norm, dt, a, s, (q, k, v)))
    return report

