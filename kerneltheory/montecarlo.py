r"""The Monte Carlo moment engine: R seeded draws × P input pairs → per-pair moments in float64.

A check draws R independent copies of an estimate for each of P input pairs (one draw = one frequency
matrix W, whose estimate for pair p is φ_W(x_p)ᵀφ_W(y_p)) and needs, per pair, the count n, the mean x̄,
the unbiased variance s², the standard error s/√n and the third and fourth central moments. They are kept
as sums of centred powers

    M_k = Σᵢ (xᵢ − x̄)^k,  k = 2, 3, 4,

which merge exactly (in exact arithmetic) across disjoint samples, so a sweep can be cut into pieces, run
in several processes, written to disk (:meth:`Moments.to_dict`) and combined.

Reproducibility. The R draws are grouped into RNG blocks of ``block`` draws (the last may be partial).
Block b is drawn by one call ``estimates(g_b, r_b)`` with its own CPU generator seeded by
:func:`block_seed`, ``numpy.random.SeedSequence(seed, spawn_key=(b,))`` (the b-th child of
``SeedSequence(seed).spawn``), so block b's draws depend on (seed, b) only. Each block is reduced at once
by :meth:`Moments.from_samples`, and the block moments are combined in block order along a fixed binary
tree over the block indices: node (j, k) holds blocks [k·2^j, (k+1)·2^j) and is the merge of nodes
(j−1, 2k) and (j−1, 2k+1); the moments of a block range [a, b) are those of its unique minimal cover by
such nodes, folded left to right. The tree depends on the block indices only, so the result for a seed is
bitwise the same whatever ``chunk`` is, and the :class:`BlockMoments` of adjacent block ranges merge into
exactly (bitwise) the result of their union: a sweep split across processes reproduces :func:`moments`.
(A plain left fold could not promise that, since floating-point merge is not associative; the tree also
accumulates rounding like pairwise summation, O(log #blocks) instead of O(#blocks).)

References: T. F. Chan, G. H. Golub, R. J. LeVeque, "Updating formulae and a pairwise algorithm for
computing sample variances", Stanford report STAN-CS-79-773 (1979); P. Pébay, "Formulas for robust,
one-pass parallel computation of covariances and arbitrary-order statistical moments", Sandia report
SAND2008-6212 (2008). The merge identities are checked against direct two-pass moments in
tests/test_montecarlo.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ._validation import check_device, check_int, check_tensor_device

__all__ = [
    "BlockMoments",
    "Moments",
    "block_seed",
    "mean_test_statistic",
    "moments",
    "moments_of_blocks",
    "num_blocks",
]

Estimates = Callable[[torch.Generator, int], torch.Tensor]
_F64 = torch.float64
_FIELDS = ("mean", "m2", "m3", "m4")


@dataclass(eq=False)
class Moments:
    r"""Per-pair count, mean and sums of centred powers M_k = Σᵢ (xᵢ − x̄)^k (float64, CPU, shape [P]).

    ``count == 0`` is the empty sample, the identity of :meth:`merge` (its tensors may have any length).
    Combine partial results with ``a.merge(b)`` or ``a + b``; ``sum(parts, Moments.empty())`` folds a list.
    """

    count: int
    mean: torch.Tensor
    m2: torch.Tensor
    m3: torch.Tensor
    m4: torch.Tensor

    def __post_init__(self) -> None:
        self.count = check_int(self.count, "count", minimum=0)
        for name in _FIELDS:
            value = torch.as_tensor(getattr(self, name), dtype=_F64, device="cpu")
            if value.dim() != 1 or (name != "mean" and value.shape != self.mean.shape):
                raise ValueError(f"{name} must be a 1-D tensor [P] like mean, got {tuple(value.shape)}")
            setattr(self, name, value)

    @classmethod
    def empty(cls, num_pairs: int = 0) -> Moments:
        """The moments of no draws (count 0): the identity element of :meth:`merge`."""
        z = torch.zeros(check_int(num_pairs, "num_pairs", minimum=0), dtype=_F64)
        return cls(0, z, z.clone(), z.clone(), z.clone())

    @classmethod
    def from_samples(cls, x: torch.Tensor) -> Moments:
        r"""Two-pass moments of ``x`` [n, P] in float64: x̄ = (1/n) Σᵢ xᵢ, then M_k = Σᵢ (xᵢ − x̄)^k.

        The reductions run on ``x``'s device; only the four [P] results are moved to the CPU.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor [n, P], got {type(x).__name__}")
        if x.dim() != 2:
            raise ValueError(f"x must have shape [n, P] (draws × pairs), got {tuple(x.shape)}")
        if not (x.dtype.is_floating_point or x.dtype in (torch.int32, torch.int64)):
            raise ValueError(f"x must be a real (floating or integer) tensor, got {x.dtype}")
        _check_finite(x, "x", "")
        return cls._from_samples(x)

    @classmethod
    def _from_samples(cls, x: torch.Tensor) -> Moments:
        if x.shape[0] == 0:
            return cls.empty(x.shape[1])
        x = x.to(_F64)
        mean = x.mean(0)
        # a column whose draws all agree: its mean is that value, exactly (x.mean rounds: 1000 copies of 0.1 gave
        # M₂ = 1.7e-31, a z-score of √(n − 1) for a deterministic estimate equal to its target)
        mean = torch.where((x == x[:1]).all(0), x[0], mean)
        d = x - mean
        d2 = d * d
        stats = torch.stack([mean, d2.sum(0), (d2 * d).sum(0), (d2 * d2).sum(0)]).cpu()
        return cls(int(x.shape[0]), *stats)

    def merge(self, other: Moments) -> Moments:
        r"""The moments of the union of two disjoint samples A (``self``) and B (``other``).

        With n = n_A + n_B, δ = x̄_B − x̄_A (Chan, Golub & LeVeque 1979 for M₂; Pébay 2008 for M₃, M₄):

            x̄  = x̄_A + δ n_B / n
            M₂ = M₂,A + M₂,B + δ² n_A n_B / n
            M₃ = M₃,A + M₃,B + δ³ n_A n_B (n_A − n_B) / n² + 3δ (n_A M₂,B − n_B M₂,A) / n
            M₄ = M₄,A + M₄,B + δ⁴ n_A n_B (n_A² − n_A n_B + n_B²) / n³
                 + 6δ² (n_A² M₂,B + n_B² M₂,A) / n² + 4δ (n_A M₃,B − n_B M₃,A) / n

        Exact in exact arithmetic; in floating point commutative but associative only up to rounding.
        An empty operand (count 0) returns the other one unchanged.
        """
        if not isinstance(other, Moments):
            raise TypeError(f"other must be a Moments, got {type(other).__name__}")
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        if self.mean.shape != other.mean.shape:
            p, q = self.mean.numel(), other.mean.numel()
            raise ValueError(f"other must have P = {p} pairs like self, got {q}")
        na, nb = float(self.count), float(other.count)
        n = na + nb
        delta = other.mean - self.mean
        dn = delta / n
        dn2 = dn * dn
        mean = self.mean + nb * dn
        m2 = self.m2 + other.m2 + delta * dn * (na * nb)
        m3 = (
            self.m3
            + other.m3
            + delta * dn2 * (na * nb * (na - nb))
            + 3.0 * dn * (na * other.m2 - nb * self.m2)
        )
        m4 = (
            self.m4
            + other.m4
            + delta * dn2 * dn * (na * nb * (na * na - na * nb + nb * nb))
            + 6.0 * dn2 * (na * na * other.m2 + nb * nb * self.m2)
            + 4.0 * dn * (na * other.m3 - nb * self.m3)
        )
        return Moments(self.count + other.count, mean, m2, m3, m4)

    def __add__(self, other: Moments) -> Moments:
        return self.merge(other)

    def __radd__(self, other) -> Moments:  # lets sum(parts) start from 0
        if isinstance(other, int) and other == 0:
            return self
        return NotImplemented

    def _need(self, n: int, what: str) -> None:
        if self.count < n:
            raise ValueError(f"{what} needs count >= {n} draws, got count = {self.count}")

    @property
    def variance(self) -> torch.Tensor:
        """Unbiased sample variance s² = M₂ / (n − 1) (needs n ≥ 2)."""
        self._need(2, "variance")
        return self.m2 / (self.count - 1)

    @property
    def population_variance(self) -> torch.Tensor:
        """Biased (population) variance M₂ / n."""
        self._need(1, "population_variance")
        return self.m2 / self.count

    @property
    def stderr(self) -> torch.Tensor:
        """Standard error of the mean √(s² / n) (needs n ≥ 2)."""
        return (self.variance / self.count).sqrt()

    @property
    def skewness(self) -> torch.Tensor:
        """Sample skewness g₁ = √n M₃ / M₂^{3/2} (scipy.stats.skew with bias=True; NaN where M₂ = 0)."""
        self._need(1, "skewness")
        return math.sqrt(self.count) * self.m3 / self.m2.pow(1.5)

    @property
    def kurtosis(self) -> torch.Tensor:
        """Sample excess kurtosis g₂ = n M₄ / M₂² − 3 (scipy.stats.kurtosis, bias=True; NaN where M₂ = 0)."""
        self._need(1, "kurtosis")
        return self.count * self.m4 / (self.m2 * self.m2) - 3.0

    @property
    def fourth_central(self) -> torch.Tensor:
        """Fourth central sample moment M₄ / n."""
        self._need(1, "fourth_central")
        return self.m4 / self.count

    def select(self, index) -> Moments:
        """The moments of a subset of the pairs (``index``: a slice, an index tensor or a boolean mask), as a
        plain :class:`Moments` with the same count."""
        return Moments(
            count=self.count, mean=self.mean[index], m2=self.m2[index], m3=self.m3[index], m4=self.m4[index]
        )

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (float64 values round-trip exactly through ``json``)."""
        return {"count": self.count, **{name: getattr(self, name).tolist() for name in _FIELDS}}

    @classmethod
    def from_dict(cls, d: dict) -> Moments:
        """Inverse of :meth:`to_dict` (a :class:`BlockMoments` dict gives a :class:`BlockMoments`).

        What no sample can have is an error naming the field (a resumed run must not build on it): values that are
        not finite numbers, M₂ or M₄ below 0, sums other than 0 for fewer than two draws, or sums that break
        Cauchy–Schwarz, M₂² ≤ n·M₄ and M₃² ≤ M₂·M₄ (up to a relative 10⁻⁶ for the rounding of merges, and not
        tested where (M₂/n)² is within 2⁻⁹⁰⁰ of 0, where the fourth powers underflow)."""
        if not isinstance(d, dict) or not {"count", *_FIELDS} <= d.keys():
            raise ValueError(f"d must be a dict with keys count, {', '.join(_FIELDS)}")
        if "nodes" in d and cls is Moments:
            return BlockMoments.from_dict(d)
        values = {}
        for name in _FIELDS:
            v = d[name]
            if not isinstance(v, list) or not all(isinstance(t, int | float) and not isinstance(t, bool) for t in v):
                what = type(v).__name__ if not isinstance(v, list) else "a list holding other things"
                raise ValueError(f"d[{name!r}] must be a list of numbers (one per pair), got {what}")
            values[name] = torch.tensor(v, dtype=_F64)
            if not bool(torch.isfinite(values[name]).all()):
                raise ValueError(f"d[{name!r}] holds a value that is not a finite number")
        m = Moments(d["count"], *(values[name] for name in _FIELDS))
        why = _impossible_sums(m)
        if why:
            raise ValueError(f"d is not the moments of any sample: {why}")
        return m


def _impossible_sums(m: Moments) -> str | None:
    """Why the sums of ``m`` belong to no sample of ``m.count`` draws, or None (see :meth:`Moments.from_dict`)."""
    n, m2, m3, m4 = m.count, m.m2, m.m3, m.m4
    if bool((m2 < 0).any()) or bool((m4 < 0).any()):
        return "m2 or m4 below 0 (sums of even powers)"
    if n < 2:
        if bool((m2 != 0).any() | (m3 != 0).any() | (m4 != 0).any()):
            return f"nonzero centred sums for {n} draw{'' if n == 1 else 's'}"
        return None
    # merges round (±0.3 around 10⁸ overshot by 6·10⁻⁹), and where (M₂/n)² nears float64's underflow the fourth
    # powers of the deviations do underflow (M₄ = 0 beside a nonzero M₂): no test there
    slack, testable = 1 + 1e-6, (m2 / n) ** 2 > 2.0**-900
    if bool((testable & (m2 * m2 > n * m4 * slack)).any()):
        return "m2² > count·m4 (Cauchy–Schwarz)"
    if bool((testable & (m3 * m3 > m2 * m4 * slack)).any()):
        return "m3² > m2·m4 (Cauchy–Schwarz)"
    return None


Node = tuple[int, int, Moments]  # (level j, index k, moments of blocks [k·2^j, (k+1)·2^j))


@dataclass(eq=False)
class BlockMoments(Moments):
    """The :class:`Moments` of RNG blocks ``blocks`` of the sweep (seed, block, draws), with its tree nodes.

    ``a.merge(b)`` for adjacent block ranges of the same sweep (in either order) combines the tree nodes,
    so the result is bitwise the one :func:`moments_of_blocks` gives for the union; any other merge (another
    sweep, a gap between the ranges, a plain :class:`Moments`) falls back to :meth:`Moments.merge`.
    Overlapping ranges of one sweep count the same draws twice and raise ``ValueError``.
    """

    seed: int
    block: int
    draws: int
    blocks: range
    nodes: tuple[Node, ...] = field(repr=False)

    @classmethod
    def _from_nodes(cls, seed: int, block: int, draws: int, blocks: range, nodes) -> BlockMoments:
        total: Moments = Moments.empty()
        for _, _, node in nodes:  # the fixed left-to-right fold of the cover
            total = Moments.merge(total, node)
        stats = (total.count, total.mean, total.m2, total.m3, total.m4)
        return cls(*stats, seed, block, draws, blocks, tuple(nodes))

    def merge(self, other: Moments) -> Moments:
        if (
            not (
                isinstance(other, BlockMoments)
                and (self.seed, self.block, self.draws) == (other.seed, other.block, other.draws)
            )
            or self.count == 0
            or other.count == 0
        ):
            return Moments.merge(self, other)
        left, right = (self, other) if self.blocks.start <= other.blocks.start else (other, self)
        if left.blocks.stop > right.blocks.start:
            raise ValueError(f"other: block ranges {left.blocks} and {right.blocks} of one sweep overlap")
        if left.blocks.stop < right.blocks.start:
            return Moments.merge(left, right)
        stack = list(left.nodes)
        for node in right.nodes:
            _push(stack, node)
        return BlockMoments._from_nodes(
            self.seed, self.block, self.draws, range(left.blocks.start, right.blocks.stop), stack
        )

    def to_dict(self) -> dict:
        return {
            **super().to_dict(),
            "seed": self.seed,
            "block": self.block,
            "draws": self.draws,
            "blocks": [self.blocks.start, self.blocks.stop],
            "nodes": [{"level": j, "index": k, "moments": m.to_dict()} for j, k, m in self.nodes],
        }

    @classmethod
    def from_dict(cls, d: dict) -> BlockMoments:
        """Inverse of :meth:`to_dict`. Besides what :meth:`Moments.from_dict` refuses, a ``ValueError`` for a sweep
        that cannot be (seed, block or draws not integers ≥ 0, 1 and 1), blocks outside the sweep, or tree nodes that
        do not cover ``blocks`` left to right, each with the draws of its blocks; the totals are recomputed from the
        nodes."""
        try:
            seed, block, draws = (check_int(d[k], k, minimum=lo) for k, lo in (("seed", 0), ("block", 1), ("draws", 1)))
            if not isinstance(d["blocks"], list) or len(d["blocks"]) != 2:
                raise ValueError(f"d['blocks'] must be [start, stop], got {d['blocks']!r}")
            start, stop = (check_int(b, "blocks[i]", minimum=0) for b in d["blocks"])
            raw = d["nodes"]
            nodes = [(check_int(n["level"], "level", minimum=0, maximum=62), check_int(n["index"], "index", minimum=0),
                      Moments.from_dict(n["moments"])) for n in raw]
        except (KeyError, TypeError) as err:
            raise ValueError(f"d is not a BlockMoments dict ({err!r})") from None
        total = num_blocks(draws, block)
        if not start <= stop <= total:
            raise ValueError(f"d['blocks'] = [{start}, {stop}] is not within the sweep's {total} blocks")
        at = start
        for level, index, m in nodes:
            first, last = index << level, min((index + 1) << level, total)
            if first != at or last > stop:
                raise ValueError(f"d['nodes'] do not cover blocks [{start}, {stop}) left to right (node level "
                                 f"{level}, index {index} covers [{first}, {last}) at block {at})")
            expected = min(last * block, draws) - first * block
            if m.count != expected:
                raise ValueError(f"d['nodes']: node level {level}, index {index} holds {m.count} draws, its blocks "
                                 f"{expected}")
            at = last
        if at != stop:
            raise ValueError(f"d['nodes'] cover blocks [{start}, {at}), not [{start}, {stop})")
        return cls._from_nodes(seed, block, draws, range(start, stop), nodes)


def _push(stack: list[Node], node: Node) -> None:
    """Push a tree node, merging the top two while they are siblings (2k, 2k+1) of one level."""
    stack.append(node)
    while (
        len(stack) >= 2
        and stack[-2][0] == stack[-1][0]
        and stack[-2][1] % 2 == 0
        and stack[-1][1] == stack[-2][1] + 1
    ):
        (j, k, a), (_, _, b) = stack[-2], stack.pop()
        stack[-1] = (j + 1, k // 2, Moments.merge(a, b))


def num_blocks(draws: int, block: int) -> int:
    """Number of RNG blocks ⌈draws / block⌉ of a sweep (the last one holds draws − (nb − 1)·block draws)."""
    return -(-check_int(draws, "draws", minimum=1) // check_int(block, "block", minimum=1))


def block_seed(seed: int, b: int) -> int:
    """The 64-bit seed of RNG block b: ``SeedSequence(seed, spawn_key=(b,)).generate_state(1, uint64)``."""
    seed, b = check_int(seed, "seed", minimum=0), check_int(b, "b", minimum=0)
    return int(np.random.SeedSequence(seed, spawn_key=(b,)).generate_state(1, dtype=np.uint64)[0])


def _check_finite(x: torch.Tensor, name: str, where: str) -> None:
    bad = ~torch.isfinite(x)
    count = int(bad.sum())
    if count:
        pairs = torch.nonzero(bad.any(0)).flatten().tolist()
        shown = ", ".join(map(str, pairs[:10])) + (", ..." if len(pairs) > 10 else "")
        raise ValueError(
            f"{name} returned {count} non-finite value(s) (NaN or ±inf){where} "
            f"at {len(pairs)} pair(s): [{shown}]"
        )


def moments_of_blocks(
    estimates: Estimates,
    draws: int,
    *,
    seed: int,
    block: int = 256,
    blocks: range | None = None,
    chunk: int | None = None,
    memory_budget: int = 2**28,
    device: torch.device | str | None = None,
    progress: bool = False,
    callback: Callable[[BlockMoments], None] | None = None,
    rng_device: torch.device | str | None = None,
) -> BlockMoments:
    """The moments of RNG blocks ``blocks`` (default: all ⌈draws/block⌉) of the sweep (seed, block, draws).

    For any partition of ``range(num_blocks(draws, block))`` into consecutive ranges, the results merged with
    ``+`` (in any grouping) equal :func:`moments` bitwise; see the module docstring. Arguments as in
    :func:`moments`.
    """
    if not callable(estimates):
        raise TypeError(f"estimates must be callable estimates(generator, r), got {type(estimates).__name__}")
    seed = check_int(seed, "seed", minimum=0)
    nb = num_blocks(draws, block)
    if blocks is None:
        blocks = range(nb)
    if not isinstance(blocks, range) or blocks.step != 1 or not 0 <= blocks.start <= blocks.stop <= nb:
        raise ValueError(f"blocks must be a range(a, b) with 0 <= a <= b <= {nb} (step 1), got {blocks!r}")
    chunk_blocks = None if chunk is None else -(-check_int(chunk, "chunk", minimum=1) // block)
    memory_budget = check_int(memory_budget, "memory_budget", minimum=1)
    device = None if device is None else check_device(device)
    rng_device = torch.device("cpu") if rng_device is None else check_device(rng_device, "rng_device")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=min(draws, blocks.stop * block) - blocks.start * block, unit="draw", desc="moments")
    stack: list[Node] = []
    num_pairs = None
    try:
        for i, b in enumerate(blocks):
            r = min(block, draws - b * block)
            x = estimates(torch.Generator(device=rng_device).manual_seed(block_seed(seed, b)), r)
            where = f" in block {b} (seed={seed}, block={block})"
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"estimates must return a torch.Tensor [r, P], got {type(x).__name__}{where}")
            if x.dim() != 2 or x.shape[0] != r or (num_pairs is not None and x.shape[1] != num_pairs):
                want = f"[{r}, {'P' if num_pairs is None else num_pairs}]"
                raise ValueError(
                    f"estimates(generator, r={r}) must return shape [r, P] = {want}, "
                    f"got {tuple(x.shape)}{where}"
                )
            if not x.dtype.is_floating_point:
                raise ValueError(f"estimates must return a floating-point tensor, got {x.dtype}{where}")
            if device is not None and (
                x.device.type != device.type or (device.index is not None and x.device.index != device.index)
            ):
                raise ValueError(f"estimates returned a tensor on {x.device}, not device={device}{where}")
            check_tensor_device(x, "the tensor estimates returned")
            _check_finite(x, "estimates", where)
            num_pairs = x.shape[1]
            _push(stack, (0, b, Moments._from_samples(x)))
            if chunk_blocks is None:  # as many draws as a float64 [r, P] tensor within memory_budget
                chunk_blocks = max(1, memory_budget // (8 * max(num_pairs, 1) * block))
            if (i + 1) % chunk_blocks == 0 or b == blocks.stop - 1:
                if bar is not None:
                    bar.update(min(draws, (b + 1) * block) - bar.n - blocks.start * block)
                if callback is not None:
                    callback(BlockMoments._from_nodes(seed, block, draws, range(blocks.start, b + 1), stack))
    finally:
        if bar is not None:
            bar.close()
    return BlockMoments._from_nodes(seed, block, draws, blocks, stack)


def moments(
    estimates: Estimates,
    draws: int,
    *,
    seed: int,
    block: int = 256,
    chunk: int | None = None,
    memory_budget: int = 2**28,
    device: torch.device | str | None = None,
    progress: bool = False,
    callback: Callable[[BlockMoments], None] | None = None,
    rng_device: torch.device | str | None = None,
) -> BlockMoments:
    """Per-pair moments of ``draws`` independent draws of ``estimates``, reproducible from ``seed``.

    Args:
        estimates: ``estimates(generator, r) -> [r, P]``, r independent draws of the P per-pair estimates,
            batched by the caller into one tensor op; it must draw all its randomness from ``generator``.
        draws: total number of draws R ≥ 1.
        seed: integer ≥ 0; RNG block b uses the generator seeded with :func:`block_seed` (seed, b).
        block: draws per RNG block and per ``estimates`` call (the last block holds the remainder). It fixes
            the random stream (changing it changes the draws) and the peak memory, which is that of one
            ``estimates(generator, block)`` call: choose it so the caller's r × P × D intermediates fit.
        chunk: draws between progress updates and ``callback`` calls, rounded up to whole blocks. It changes
            neither the result (bitwise) nor the memory, since every block is reduced as soon as it is drawn.
        memory_budget: bytes; when ``chunk`` is None a chunk is as many blocks as fit a float64 [r, P] tensor
            within it (at least one): it only sets the default cadence of progress and checkpoints.
        device: where ``estimates`` is expected to return (a tensor elsewhere raises ``ValueError``); nothing
            is moved there. The moments are reduced on that device and returned on the CPU in float64.
        progress: show a tqdm bar, updated once per chunk.
        callback: called after every chunk with the running :class:`BlockMoments` of the blocks so far, e.g.
            to write a checkpoint (``json.dump(m.to_dict(), f)``); finish it later with
            :func:`moments_of_blocks` on the remaining blocks and ``+``, which reproduces this result bitwise.
        rng_device: the device of the blocks' generators (default the CPU, whose streams are the same on every
            machine running PyTorch's AVX2 or AVX-512 kernels: see :mod:`kerneltheory._normal`). ``"cuda"`` draws
            on the GPU where the estimator's law allows it
            (:attr:`~kerneltheory.spectral.base.SpectralLaw.device_generator`): another stream for the same seed,
            reproducible on the same device type and PyTorch version only.

    Returns:
        :class:`BlockMoments` (a :class:`Moments`) of all ⌈draws / block⌉ blocks.
    """
    return moments_of_blocks(
        estimates,
        draws,
        seed=seed,
        block=block,
        chunk=chunk,
        memory_budget=memory_budget,
        device=device,
        progress=progress,
        callback=callback,
        rng_device=rng_device,
    )


def mean_test_statistic(m: Moments, target) -> torch.Tensor:
    r"""The per-pair z statistic z_p = (x̄_p − t_p) / SE_p with SE_p = √(s_p² / n).

    Under H₀: E x = t and a finite variance, z_p → N(0, 1) as n → ∞ (CLT). A pair whose draws are all equal
    (SE = 0) gets z = 0 if x̄ = t exactly and ±inf otherwise. ``target`` is a scalar or a [P] tensor.
    """
    if not isinstance(m, Moments):
        raise TypeError(f"m must be a Moments, got {type(m).__name__}")
    if m.count < 2:
        raise ValueError(f"m must hold count >= 2 draws for a standard error, got count = {m.count}")
    target = torch.as_tensor(target, dtype=_F64, device="cpu")
    if target.dim() > 1 or (target.dim() == 1 and target.shape != m.mean.shape):
        raise ValueError(f"target must be a scalar or of shape [{m.mean.numel()}], got {tuple(target.shape)}")
    if not bool(torch.isfinite(target).all()):
        raise ValueError("target contains NaN or infinite values")
    diff = m.mean - target
    se = m.stderr
    z = diff / se
    return torch.where(se > 0, z, torch.where(diff == 0, torch.zeros_like(z), diff.sign() * math.inf))
