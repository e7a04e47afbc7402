"""The two exact checks a feature map passes before any draw is counted (proofs/verification.md, items 5 and 13(d)):
one draw replays from its seed (:func:`_check_replayable`; a map drawing from the global generators raises), and
each row is mapped by itself (:func:`_check_row_wise`; a map whose rows depend on the batch fails the row
``row-wise``).
"""

from __future__ import annotations

import math

import torch

from .checks import CheckResult, pair_rounding_floor
from .inputs import InputFamily
from .seeds import seed_for
from .user_calls import DROPOUT_OFF, _difference, _Evaluator, _one_number, _same_values

LONG_BATCH = 2048  # rows ahead of the tested ones in the row-wise check's long batch (past a first chunk of 2048)
LONG_VALUES = 1 << 25  # at most this many feature values per side in that batch (256 MiB of float64): fewer rows at a
# large D (512 rows at D = 65 536, as the former 512-row batch had; never fewer than 64)
#: the error of a map that does not replay from its seed (:func:`_check_replayable`, :func:`_repeated_draws`)
NOT_REPLAYABLE = (
    "sample(generator) called twice with identically seeded generators gives different feature maps: it must draw "
    "only from the generator it is given (torch.randn(..., generator=generator)); code that draws from the global "
    "generators goes through adapters.global_rng or from_module. Code already wrapped so draws from a source they do "
    "not seed: a torch.Generator of its own, numpy.random.default_rng() (global_rng seeds numpy's legacy global state "
    "only), or torch's, numpy's or random's global generators when the feature function runs rather than when sample "
    "returns it (wrap that function in adapters.global_rng_calls for torch's; it does not seed numpy's or random's: "
    "run such a function inside adapters.global_rng(generator))")
REPEAT_DRAWS = 24  # consecutive draws the repeated-draws check evaluates (a redraw every N < 24 calls shows)
REPEAT_TIES = 6  # of their 23 consecutive pairs, how many identical ones mean the draws repeat


def _replayed(ev: _Evaluator, x: torch.Tensor, y: torch.Tensor, seed: int, min_eps: float = 0.0):
    """The draw replayed from ``seed`` on the pairs (x, y): (query features, key features, estimates, their rounding
    floors, :func:`~kerneltheory.testing.checks.pair_rounding_floor` of Σ_i |φ_i(x)φ_i(y)| with ε at least
    ``min_eps``)."""
    gen = torch.Generator().manual_seed(seed_for("replay", seed))
    fq, fk = ev.features(gen, x, y, batch=1 if ev.batched else None)
    floor = pair_rounding_floor((fq.abs() * fk.abs()).sum(-1).flatten(), feature_eps=max(ev.eps, min_eps))
    return fq, fk, (fq * fk).sum(-1).flatten(), floor


def _check_replayable(sample, families: list[InputFamily], bind, batched: bool | None, seed: int) -> CheckResult | None:
    """Two draws of ``sample`` from identically seeded generators must give the same estimates at the pairs of
    ``probe``: the same values (:func:`_same_values`), or, NaN at the same places, finite estimates within the sum of
    the two runs' rounding floors (each :func:`~kerneltheory.testing.checks.pair_rounding_floor` of Σ_i |φ_i(x)φ_i(y)|,
    which bounds the terms an estimate is summed from, in the precision of the dtype the features were returned
    in), the bound that
    :func:`~kerneltheory.testing.attention_exact._agree` applies to two runs of one attention. Otherwise ``sample``
    draws from somewhere else (the global generators) and no verdict could be replayed from the seed: ValueError.
    ``probe`` is ``families[0]``. Returns the refused row of :func:`_repeated_draws` or the failed row of
    :func:`_check_row_wise`, or None."""
    probe = families[0]
    repeated = _repeated_draws(sample, probe, bind, batched, seed)
    if repeated is not None:
        return repeated
    ev = _Evaluator(sample, [probe], bind, batched)
    # each draw evaluated before the next (a module's features belong to its latest draw)
    (qa, ka, a, floor_a), (qb, kb, b, floor_b) = (_replayed(ev, probe.x, probe.y, seed) for _ in range(2))
    if not (_same_values(qa, qb) and _same_values(ka, kb)) and not _one_number(a, b, floor_a, floor_b):
        raise ValueError(NOT_REPLAYABLE)
    # a bound map's parameters depend on the rows it is bound to: bind= is exempt
    return None if bind is not None else _check_row_wise(sample, families, batched, seed)


def one_map(a: torch.Tensor, b: torch.Tensor, u: float) -> bool:
    """Whether two draws' values ``a``, ``b`` (features, or attention outputs) are one map up to the rounding of a
    computation in unit roundoff ``u``: NaN at the same places, and every other entry within 8u(|a| + |b| + s), s
    the largest finite magnitude of either (entries near 0 of signed features round on the scale of the row, not
    their own). Two calls of one deterministic map may differ so (another path, a reduction that differs by an ulp
    from call to call); two independent draws of a random map usually differ by more, but not always in bfloat16 or
    float16, whose rounding can exceed the Monte Carlo spread (so a random map there may pass for a deterministic
    one, and is then tested as an ordinary map without this check)."""
    if a.shape != b.shape:
        return False
    a, b = a.to(torch.float64), b.to(torch.float64)
    nan_a, nan_b = torch.isnan(a), torch.isnan(b)
    if not torch.equal(nan_a, nan_b):
        return False
    finite = torch.isfinite(a) & torch.isfinite(b)
    if not torch.equal(a[~finite & ~nan_a], b[~finite & ~nan_b]):  # infinities must agree
        return False
    if not bool(finite.any()):
        return True
    scale = float(torch.maximum(a[finite].abs().max(), b[finite].abs().max()))
    return bool(((a - b).abs()[finite] <= 8 * u * (a.abs() + b.abs() + scale)[finite]).all())


def repeated_ties(paths: list[tuple[str, list[torch.Tensor]]], u: float) -> tuple[str, list[bool]] | None:
    """The repeated-draws rule shared by the feature-map and attention audits (proofs/verification.md, item 13(f)):
    ``paths`` = [(name, the values of consecutive draws through it)], ``u`` the unit roundoff of their format. None
    where every draw of every path is one map up to rounding (:func:`one_map`: a deterministic map) or no path has
    :data:`REPEAT_TIES` exactly equal consecutive pairs; else (the first such path, its ties)."""
    first = paths[0][1][0]
    if all(one_map(f, first, u) for _, values in paths for f in values):
        return None
    for path, values in paths:
        ties = [bool(a.shape == b.shape and torch.equal(a, b)) for a, b in zip(values, values[1:], strict=False)]
        if sum(ties) >= REPEAT_TIES:
            return path, ties
    return None


def tie_positions(ties: list[bool]) -> str:
    """'1–2, 4–5, …': the first six tied pairs of consecutive draws."""
    at = ", ".join([f"{i + 1}–{i + 2}" for i, t in enumerate(ties) if t][:6])
    return at + (", …" if sum(ties) > 6 else "")


def _repeated_draws(sample, probe, bind, batched: bool | None, seed: int) -> CheckResult | None:
    """:data:`REPEAT_DRAWS` consecutive draws (one generator, as the checks draw them; through each path a batched
    sampler has) evaluated on the rows of ``probe``: where at least :data:`REPEAT_TIES` of the consecutive pairs of
    one path have identical features while the draws are not all one map, the map's draws repeat (a redraw every N
    calls, a cache keyed on a counter, one matrix shared by a whole batch, a path that ignores its generator), and
    the refused row ``independent draws`` is returned. Repeated draws are positively correlated: every standard error
    computed as if they were independent is too small (the level of no check holds), so the claims are not tested.
    Features, not estimates, are compared: a law with atoms gives equal estimates far more often than equal maps (the
    products φ_i(x)φ_i(y) of a Rademacher row do not see its sign). Under iid draws whose features on the probe take
    their most likely value with probability p, ≥ 6 of one path's 23 consecutive pairs tie with probability at most
    C(23, 6)·p⁶, so at most 2·C(23, 6)·p⁶ with two paths (< 1.3·10⁻⁵ for p ≤ 0.02, 7·10⁻¹⁰ for 2⁸ equally likely
    maps). Ties are exact equality, for which that bound holds (a tie within a tolerance would let independent draws
    of a bfloat16 map tie: its rounding exceeds the Monte Carlo spread at moderate m). Draws that all agree through
    every path up to the rounding of the features' dtype (:func:`one_map`) are a deterministic map, tested as such:
    the paths of one deterministic map may round differently (a matrix product against an einsum), and a reduction
    may differ by an ulp from call to call (proofs/verification.md, item 13(f))."""
    ev = _Evaluator(sample, [probe], bind, batched)

    def draw_paths():
        gen = torch.Generator().manual_seed(seed_for("repeats", seed))
        paths = []
        if ev.mixed or not ev.batched:
            drawn = []
            for _ in range(REPEAT_DRAWS):
                one = ev._plain(gen, probe.x, probe.y)
                if one is None:  # no plain path after all: drawn batched only
                    break
                drawn.append(torch.cat([one[0].flatten(), one[1].flatten()]))
            if drawn:
                paths.append(("sample(generator)", drawn))
        if ev.batched:
            fq, fk = ev.features(gen, probe.x, probe.y, batch=REPEAT_DRAWS)
            paths.append((f"sample(generator, batch={REPEAT_DRAWS})",
                          list(torch.cat([fq.flatten(1), fk.flatten(1)], 1))))
        return paths

    paths = draw_paths()
    found = repeated_ties(paths, ev.eps / 2)
    if found is None:
        # all REPEAT_DRAWS draws replayed from the same seed (_check_replayable compares one): a sampler that reads the
        # global generator now and then (a rejection branch without generator=g, at |w| > 3.5) passed a one-draw
        # replay at 7 of 10 seeds and gave verdicts that moved with the caller's global seed (draws that repeat are
        # refused above first: a redraw every N calls does not replay either, and its refusal says more)
        for (path, drawn), (_, redrawn) in zip(paths, draw_paths(), strict=True):
            if len(drawn) != len(redrawn) or not all(map(lambda a, b: one_map(a, b, ev.eps / 2), drawn, redrawn)):
                raise ValueError(NOT_REPLAYABLE + f" (through {path}, {REPEAT_DRAWS} draws replayed from one seed; a "
                                 "map that carries state from one draw to the next, such as a module whose redraw "
                                 "replaces only part of its features, does not replay either)")
        return None
    path, ties = found
    why = (f"every draw through {path} gave the same features while the other path's differ: that path ignores "
           "its generator (a fixed seed inside, a cached map, one matrix expanded over the batch), or the two "
           "paths of one deterministic map differ by more than rounding (pass batched=False to audit one path)"
           if all(ties)
           else "the map's draws repeat (a redraw only every few calls, a cache keyed on a counter), or its law "
           "puts a large probability on one map (a Rademacher or sparse projection with very few entries, "
           "whose ties more features or dimensions make rare)")
    return CheckResult.refusal(
        f"{sum(ties)} of {REPEAT_DRAWS - 1} consecutive draws through {path} gave identical features on the "
        f"{probe.size} probe pairs (draws {tie_positions(ties)}): {why}. Repeated draws are not independent, and no "
        "check could hold its level; each call (and each map of a batch) must be a fresh draw",
        name="independent draws", claim="independent draws", alpha=0.0, sample_size=REPEAT_DRAWS, seed=seed)


def _check_row_wise(sample, families: list[InputFamily], batched: bool | None, seed: int) -> CheckResult | None:
    """One draw (replayed from the seed) evaluated on every pair family's rows in one batch, as the checks evaluate
    them, and on the first family's rows alone, in reverse order, its first row alone and behind :data:`LONG_BATCH`
    other rows (a path taken only in long batches, past a first chunk; for a map that raises on a batch that long,
    such as one with a maximum sequence length, behind 1024, 512, 256, 128 or 64), must give the same
    estimates up to both evaluations' rounding (:func:`_one_number`): a feature map maps each row by itself.
    Features that depend on the other rows of the batch or on their place in it (a statistic of the batch, a
    separate path for short batches, a per-position parameter, a position encoding, a dropout mask drawn per call)
    give no φ(x)ᵀφ(y) of their own, and the checks would test a map that no
    caller uses: the failed row ``row-wise`` is returned (None when the rows agree). Maps whose parameters depend on
    the sequence (OPRF-style) compute them in ``bind=`` and are not checked here."""
    pairs = [f for f in families if not f.cross]
    if not pairs:
        return None
    ev = _Evaluator(sample, pairs, None, batched)

    def estimates(x, y):
        # float32's rounding at least: code that computes in float32 and casts its result (undeclared) rounds
        # differently in batches of different shapes (another BLAS kernel); a dependence on the batch that matters
        # is far larger
        return _replayed(ev, x, y, seed, min_eps=torch.finfo(torch.float32).eps)

    fq, _, whole, floor = estimates(ev.xq, ev.xk)
    width = fq.shape[-1]  # D: the long batch holds at most LONG_VALUES feature values per side
    p, n = pairs[0].size, ev.xq.shape[0]
    first = torch.arange(p)
    # the first family's rows behind LONG_BATCH others (tested rows picked at random, so that no row ahead sits a
    # whole number of chunks before the copy of itself): a path taken only past the first chunk of a long batch
    # (chunks of 64 to 2048 rows, as sequences and memory-saving loops are) maps them differently; behind 512 rows a
    # map computed in chunks of 1024 that read the first chunk's norms in every later one passed (a review)
    ahead = torch.randint(n, (LONG_BATCH,), generator=torch.Generator().manual_seed(seed_for("long batch", seed)))
    variants = [(f"the first {p} alone", first, first), ("in reverse order", torch.arange(p - 1, -1, -1), None),
                ("the first alone", torch.arange(1), None)]
    for size in (LONG_BATCH, 1024, 512, 256, 128, 64):  # the longest batch the map accepts (a maximum length)
        if size > 64 and size * width > LONG_VALUES:
            continue
        taken = torch.cat([ahead[:size], first])
        try:
            long = (t[-p:] for t in estimates(ev.xq[taken], ev.xk[taken])[2:])
        except Exception:
            if taken.numel() <= n:  # the checks' own batch sizes: the map's failure is the audit's error
                raise
            continue
        variants.append((f"the first {p} behind {size} other rows", taken, first, long))
        break
    for label, taken, rows, *done in variants:
        rows = taken if rows is None else rows
        part, part_floor = done[0] if done else (t[-rows.numel():] for t in estimates(ev.xq[taken],
                                                                                        ev.xk[taken])[2:])
        if not _one_number(part, whole[rows], part_floor, floor[rows]):
            i = int(torch.nan_to_num(_difference(part, whole[rows]), nan=math.inf).argmax())
            return CheckResult.certain_failure(
                "exact (one draw)", name="row-wise", claim="row-wise", alpha=0.0, sample_size=1,
                seed=seed_for("replay", seed),
                detail=f"the feature map's rows depend on the other rows of the batch or on their place in it: one "
                f"draw evaluated on all {n} tested pairs and on {label} gives {float(whole[rows][i]):.6g} and "
                f"{float(part[i]):.6g} at pair {int(rows[i])}; a feature map must map each row by itself "
                "(parameters computed from the sequence go in bind=; a position encoding, such as a rotary one, or "
                "random numbers drawn at each call, such as dropout left on, make a row's features depend on its "
                "place: audit the map with the encoding off, and " + DROPOUT_OFF + "), and no claim about "
                "φ(x)ᵀφ(y) can hold")
    return None


GENERATOR_PROBE = 32  # draws of each call by which estimates_follow_their_generator probes an estimator
GENERATOR_SEEDS = 6  # generators seeded differently that it calls (one of them twice)


def estimates_follow_their_generator(call, role: str, seed: int) -> None:
    """The estimates ``call(generator, r) → [r, P]`` of an estimator (its ``sample_estimates``, or a callable
    ``estimates(generator, r)``) must come from the generator they are given: two calls with identically seeded
    generators agree (else they draw from elsewhere, and no verdict replays from the seed), and calls with other
    seeds do not all give the first call's draws, unless its draws all agree (a deterministic estimator). An
    estimator that seeds a generator of its own on every call repeats the same draws in every block of the check,
    which then reads them as independent (a review: two identically distributed estimators, so wrapped, FAILED
    "A ≤ B" at 35 of 100 seeds at α = 10⁻⁶): ValueError naming ``role``.

    :data:`GENERATOR_SEEDS` + 1 calls of :data:`GENERATOR_PROBE` draws on generators of their own (the check's
    stream is not touched). The replay agrees within rounding (:func:`_within_rounding`: a reduction whose order
    changes from call to call moves the last bits); draws repeated across seeds are the same values bit for bit (the
    rounding floor of a half format can exceed the spread of independent draws, which then read as repeats; a
    deterministic estimator whose draws differ by an ulp is not constant, and its other seeds' draws differ too). A
    correct estimator whose law has atoms makes GENERATOR_SEEDS − 1 further calls reproduce a first draw that is not
    constant with probability at most (max over non-constant sequences of their probability)⁵ ≤ (1/(e·32))⁵ ≈
    2·10⁻¹⁰ (a sequence with r − 1 draws at an atom of probability p and one elsewhere has probability p^(r−1)(1 − p) ≤
    1/(e·r)); with one comparison it was about 0.4 % for an atom of probability 0.97 (a review measured 82 of
    20 000 seeds of a Poisson-degree estimator)."""
    seeds = [seed_for(f"generator probe {role} {k}", seed) for k in range(GENERATOR_SEEDS)]
    draws = [call(torch.Generator().manual_seed(s), GENERATOR_PROBE) for s in seeds]
    again = call(torch.Generator().manual_seed(seeds[0]), GENERATOR_PROBE)
    first = draws[0]
    if not _within_rounding(first, again):
        raise ValueError(f"{role}: two draws of its estimates from identically seeded generators differ beyond "
                         "rounding: it must draw only from the generator it is given "
                         "(torch.randn(..., generator=generator)); code that draws from the global generators runs "
                         "inside adapters.global_rng(generator)")
    constant = all(_same_values(first[0], row) for row in first[1:])
    if not constant and all(_same_values(first, other) for other in draws[1:]):
        raise ValueError(f"{role}: its estimates are the same {GENERATOR_PROBE} draws for {GENERATOR_SEEDS} generators "
                         "seeded differently: it ignores the generator it is given (a generator of its own, seeded on "
                         "every call?), so every block of draws would repeat the first while the standard errors "
                         "assume independent draws; draw from the generator passed")


def _within_rounding(a: torch.Tensor, b: torch.Tensor) -> bool:
    """``a`` and ``b`` [r, P] are one draw's numbers (:func:`~kerneltheory.testing.user_calls._one_number`, the
    reproducibility checks' rule), each with the rounding floor of its pairs
    (:func:`~kerneltheory.testing.checks.pair_rounding_floor`, ε of the coarser dtype)."""
    eps = max(torch.finfo(t.dtype).eps if t.is_floating_point() else 0.0 for t in (a, b))
    x, y = a.detach().to("cpu", torch.float64), b.detach().to("cpu", torch.float64)
    if x.shape != y.shape:
        return False
    return _one_number(x, y, pair_rounding_floor(x, feature_eps=eps), pair_rounding_floor(y, feature_eps=eps))
