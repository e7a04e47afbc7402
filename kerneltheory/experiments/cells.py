r"""Cells: the unit of work of a variance sweep, a pure function of its specification.

A cell is (estimator with its arguments, point, draws, block, seed): R = ``draws`` seeded draws of the P
estimates φ(x_p)ᵀφ(y_p) at the point's input pairs, reduced by :func:`kerneltheory.montecarlo.moments_of_blocks`
to mergeable :class:`~kerneltheory.montecarlo.BlockMoments`. Its specification is a JSON-serialisable dict
(:func:`cell_spec`), and everything in it is derived deterministically:

* the input pairs from ``inputs_seed`` = H(figure seed, "inputs", point) — shared by every series at the same
  point, so curves are compared on the same inputs;
* the draws from ``seed`` = H(figure seed, "cell", estimator, arguments, point), independent of the draw count
  and of the figure's name, so one cell shared by two figures is computed once;

with H the first 63 bits of SHA-256 of the canonical JSON of its arguments. :func:`evaluate_cell` on a block
range ``[a, b)`` is what a worker runs; the block ranges of a cell merge bitwise into the whole cell
(:class:`~kerneltheory.montecarlo.BlockMoments`), so a cell may be split across workers or resumed from a
checkpoint without changing a bit. :class:`CellStore` writes cells, checkpoints and shards atomically.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from .. import __version__, estimators, theory
from ..montecarlo import BlockMoments, Moments, moments_of_blocks, num_blocks
from ..report import source_digest
from .config import FigureConfig, Series
from .study import read_checked_json, write_checked_json

Z95 = 1.959963984540054  # the 97.5% quantile of N(0, 1)


def derive_seed(*tokens) -> int:
    """A 63-bit seed from any JSON-serialisable tokens: SHA-256 of their canonical JSON (stable everywhere)."""
    text = json.dumps(tokens, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def _input_point(point: Mapping) -> dict:
    return {k: point[k] for k in ("dim", "norm", "norm_ratio", "angle", "pairs")}


def cell_spec(
    config: FigureConfig,
    series: Series,
    value,
    *,
    draws: int,
    block: int,
    device: str = "cpu",
    rng: str = "cpu",
) -> dict:
    """The specification of the cell of ``series`` at axis value ``value`` (a JSON-serialisable dict).

    ``rng="device"``: the RNG blocks' generators live on ``device`` (frequencies drawn on the GPU; another
    stream, so the spec, and with it the cache key, says so). The default ``"cpu"`` adds nothing to the spec."""
    if rng not in ("cpu", "device"):
        raise ValueError(f"rng must be 'cpu' or 'device', got {rng!r}")
    if rng == "device" and torch.device(device).type == "cpu":
        raise ValueError("rng='device' draws on the GPU: it needs device='cuda' (on the CPU use rng='cpu')")
    point = config.point(series, value)
    estimator = estimators.resolve(series.estimator)
    args = {
        "estimator": estimator,
        "kwargs": dict(series.kwargs),
        "perturb": series.perturb,
        "init_seed": series.init_seed,
    }
    return {
        **args,
        "point": point,
        "draws": int(draws),
        "block": int(block),
        "seed": derive_seed(config.seed, "cell", args, point),
        "inputs_seed": derive_seed(config.seed, "inputs", _input_point(point)),
        "device": torch.device(device).type,
        **({"rng": "device"} if rng == "device" else {}),
        "version": __version__,
        # the package's source: a cell computed by other code is recomputed (a report after a change to the
        # sampling code showed the old code's figures beside new verdicts); its file stays, under its own digest
        "source": source_digest(),
    }


def cell_digest(spec: Mapping) -> str:
    """A file-name-safe digest of the whole specification (the cache key)."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def make_inputs(point: Mapping, seed: int, *, dtype=torch.float64, device=None):
    r"""P pairs (x_p, y_p) with ‖x_p‖ = norm, ‖y_p‖ = norm_ratio·norm and ∠(x_p, y_p) = angle, in random
    directions: u uniform on the sphere, v ⊥ u uniform, x = norm·u, y = ‖y‖(cos θ u + sin θ v).
    Drawn in float64 on the CPU from ``seed``, then moved to ``dtype``/``device``. Returns ``([P, d], [P, d])``."""
    d, count = point["dim"], point["pairs"]
    g = torch.Generator().manual_seed(int(seed))
    a = torch.randn(count, d, generator=g, dtype=torch.float64)
    b = torch.randn(count, d, generator=g, dtype=torch.float64)
    u = a / torch.linalg.vector_norm(a, dim=-1, keepdim=True)
    theta = math.radians(point["angle"])
    if d == 1:
        direction = math.cos(theta) * u
    else:
        b = b - (b * u).sum(-1, keepdim=True) * u
        v = b / torch.linalg.vector_norm(b, dim=-1, keepdim=True)
        direction = math.cos(theta) * u + math.sin(theta) * v
    x = point["norm"] * u
    y = point["norm"] * point["norm_ratio"] * direction
    return x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)


def build_estimator(spec: Mapping, *, device=None, estimator: str | None = None):
    """The estimator of a cell (on ``device``), learnable parameters initialised and perturbed from the spec."""
    p = spec["point"]
    est = estimators.get(
        estimator or spec["estimator"],
        p["dim"],
        p["num_features"],
        device=device,
        init_seed=spec["init_seed"],
        **spec["kwargs"],
    )
    if spec["perturb"]:
        g = torch.Generator().manual_seed(derive_seed(spec["init_seed"], "perturb"))
        with torch.no_grad():
            for module in (est.law, est.component):
                if module is None:
                    continue
                for param in module.parameters():
                    noise = torch.randn(param.shape, generator=g, dtype=torch.float64)
                    param.add_(spec["perturb"] * noise.to(param.device, param.dtype))
    return est


def evaluate_cell(
    spec: Mapping,
    blocks: range | None = None,
    *,
    progress: bool = False,
    callback: Callable[[BlockMoments], None] | None = None,
    chunk: int | None = None,
) -> BlockMoments:
    """The moments of RNG blocks ``blocks`` (default: all) of the cell, on the cell's device.

    A pure function of (``spec``, ``blocks``): what a worker runs. Any partition of the blocks into
    consecutive ranges merges (``+``) bitwise into the result for all of them.
    """
    device = torch.device(spec["device"])
    est = build_estimator(spec, device=device)
    x, y = make_inputs(spec["point"], spec["inputs_seed"], device=device)
    with torch.no_grad():  # learnable laws: measure, do not build autograd graphs
        return moments_of_blocks(
            lambda g, r: est.sample_estimates(x, y, g, r),
            spec["draws"],
            seed=spec["seed"],
            block=spec["block"],
            blocks=blocks,
            device=device,
            progress=progress,
            callback=callback,
            chunk=chunk,
            rng_device=device if spec.get("rng") == "device" else None,
        )


def shard_task(spec: dict, start: int, stop: int) -> dict:
    """Blocks ``[start, stop)`` of a cell as a :meth:`BlockMoments.to_dict` dict (the task sent to workers)."""
    return evaluate_cell(spec, range(start, stop)).to_dict()


def cell_blocks(spec: Mapping) -> int:
    return num_blocks(spec["draws"], spec["block"])


# -- closed forms -----------------------------------------------------------------------------------------


def check_theory(spec: Mapping, kinds, label: str) -> None:
    """Refuse a closed form that does not apply to the series (``ValueError`` naming it)."""
    est = build_estimator(spec)
    comp = est.component
    for kind in kinds:
        if kind == "closed_form" and not est.claims.variance:
            raise ValueError(
                f'series {label!r}: {est.name} has no closed-form variance; use theory = ["iid"]'
            )
        if kind == "iid" and est.law is None:
            raise ValueError(f"series {label!r}: {est.name} has no frequency law to replace by iid Gaussian")
        if kind == "orf_bound" and not (comp.name == "positive" and comp.h == "softmax" and _standard(est)):
            raise ValueError(
                f"series {label!r}: orf_bound (Performer Thm 2) is for positive features of SM "
                "with N(0, I) rows"
            )
        if kind == "orf_leading" and not (
            comp.name == "trig" and not comp.weighted and getattr(est.law, "std", None) is not None
        ):
            raise ValueError(
                f"series {label!r}: orf_leading (Yu et al.) is for unweighted trig features "
                "(kwargs weighted = false) of a Gaussian kernel"
            )


def _standard(est) -> bool:
    law = est.law
    return law is not None and getattr(law, "std", None) == 1.0 and law.rows_marginally_gaussian


def _iid_name(est) -> str:
    return f"{est.component.name}/gaussian"


def cell_theory(spec: Mapping, kinds) -> dict[str, np.ndarray]:
    """The target kernel and the closed forms ``kinds`` at the cell's P pairs (float64 on the CPU), ``[P]``
    each; a closed form outside its range of validity (the ORF bound for m > d) is NaN."""
    est = build_estimator(spec)
    x, y = make_inputs(spec["point"], spec["inputs_seed"])
    count = x.shape[0]
    with torch.no_grad():
        return _theory(est, spec, x, y, kinds, count)


def _theory(est, spec, x, y, kinds, count) -> dict[str, np.ndarray]:
    nan = np.full(count, np.nan)
    out = {"kernel": est.kernel_pairs(x, y).numpy()}
    m = spec["point"]["num_features"]
    for kind in kinds:
        if kind == "closed_form":
            out[kind] = est.variance_pairs(x, y).numpy()
        elif kind == "iid":
            iid = build_estimator(spec, estimator=_iid_name(est))
            out[kind] = iid.variance_pairs(x, y).numpy()
        elif kind == "orf_bound":
            out[kind] = theory.orf_positive_mse_bound(x, y, m).numpy() if m <= x.shape[-1] else nan
        elif kind == "orf_leading":
            out[kind] = theory.orf_trig_variance_leading(x, y, m, std=est.law.std).numpy()
    return out


def moment_columns(m: Moments, kernel: np.ndarray) -> dict[str, np.ndarray]:
    r"""Per-pair statistics of a cell's moments against the target ``kernel``:

    mean and its standard error; the unbiased variance s² = M₂/(n−1) and its asymptotic standard error
    √((μ₄ − μ₂²(n−3)/(n−1))/n) with μ_k = M_k/n (the variance of s²; ≥ √(2/(n−1))·μ₂ since μ₄ ≥ μ₂²), with
    the 95% normal interval s² ± 1.96·SE (its lower end may be negative); the MSE M₂/n + (x̄ − K)².
    Heavy tails make the interval too narrow: see docs/variance.md.
    """
    n = m.count
    mean = m.mean.numpy()
    mu2 = (m.m2 / n).numpy()
    mu4 = (m.m4 / n).numpy()
    var = m.variance.numpy()
    var_se = np.sqrt((mu4 - mu2**2 * (n - 3) / (n - 1)) / n)
    return {
        "mean": mean,
        "mean_se": m.stderr.numpy(),
        "bias": mean - kernel,
        "variance": var,
        "variance_se": var_se,
        "variance_lo": var - Z95 * var_se,
        "variance_hi": var + Z95 * var_se,
        "mse": mu2 + (mean - kernel) ** 2,
        "kurtosis": m.kurtosis.numpy(),
    }


# -- storage ----------------------------------------------------------------------------------------------


def moments_problem(m: BlockMoments, spec: Mapping) -> str | None:
    """Why ``m`` cannot be the moments of blocks ``m.blocks`` of the cell ``spec`` (None if it can): another
    sweep, a block range outside the cell, or moments of another shape than the cell's pairs. What no sweep can
    have (tree nodes that do not cover the range, counts that are not its draws, sums that are not finite or break
    Cauchy–Schwarz) is refused before, when the file is read
    (:meth:`~kerneltheory.montecarlo.BlockMoments.from_dict`)."""
    nb = cell_blocks(spec)
    if (m.seed, m.block, m.draws) != (spec["seed"], spec["block"], spec["draws"]):
        return "moments of another sweep (seed, block or draws)"
    a, b = m.blocks.start, m.blocks.stop
    if m.blocks.step != 1 or not 0 <= a < b <= nb:
        return f"block range {m.blocks} is not inside range(0, {nb})"
    pairs = spec["point"]["pairs"]
    for j, k, node in [(None, None, m), *m.nodes]:
        if any(t.shape != (pairs,) for t in (node.mean, node.m2, node.m3, node.m4)):
            return f"{'the cell' if j is None else f'node ({j}, {k})'}: moments of shape other than [{pairs}]"
    return None


class CellStore:
    """Cells on disk under ``root``, one JSON file per cell named by its digest, each holding its spec (the
    key: a file whose spec differs is ignored), its :class:`BlockMoments` and a checksum. All writes are
    atomic; every read is checked (:func:`kerneltheory.experiments.study.read_checked_json`, then
    :func:`moments_problem` and the expected block range): a corrupt, truncated or tampered file is
    recomputed with a :class:`~kerneltheory.experiments.study.CacheWarning`, never used.

    ``<digest>.json`` — a finished cell; ``<digest>.partial.json`` — a checkpoint of its first blocks;
    ``<digest>.shard-<a>-<b>.json`` — blocks [a, b) computed by a worker.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, spec: Mapping, suffix: str = "") -> Path:
        return self.root / f"{cell_digest(spec)}{suffix}.json"

    def _read(self, path: Path, spec: Mapping, blocks: Callable[[range], bool]) -> BlockMoments | None:
        found: list[BlockMoments] = []

        def validate(data: dict) -> str | None:
            if data.get("spec") != json.loads(json.dumps(dict(spec))):
                return "written for another cell specification"
            try:
                m = BlockMoments.from_dict(data["moments"])
            except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
                return f"malformed moments ({type(exc).__name__}: {exc})"
            problem = moments_problem(m, spec)
            if problem is None and not blocks(m.blocks):
                problem = f"block range {m.blocks} is not the one expected here"
            found.append(m)
            return problem

        return found[0] if read_checked_json(path, validate) is not None else None

    def _write(self, path: Path, spec: Mapping, m: BlockMoments, **extra) -> Path:
        return write_checked_json(path, {"spec": dict(spec), "moments": m.to_dict(), **extra})

    def load(self, spec: Mapping) -> BlockMoments | None:
        return self._read(self._path(spec), spec, lambda r: r == range(cell_blocks(spec)))

    def save(self, spec: Mapping, m: BlockMoments, seconds: float | None = None) -> Path:
        if m.blocks != range(cell_blocks(spec)):
            raise ValueError(
                f"m must hold every block of the cell, range(0, {cell_blocks(spec)}); got {m.blocks}"
            )
        path = self._write(self._path(spec), spec, m, seconds=seconds)
        for stale in [self._path(spec, ".partial"), *self.root.glob(f"{cell_digest(spec)}.shard-*.json")]:
            stale.unlink(missing_ok=True)
        return path

    def load_partial(self, spec: Mapping) -> BlockMoments | None:
        return self._read(self._path(spec, ".partial"), spec, lambda r: r.start == 0)

    def save_partial(self, spec: Mapping, m: BlockMoments) -> Path:
        return self._write(self._path(spec, ".partial"), spec, m)

    def load_shard(self, spec: Mapping, start: int, stop: int) -> BlockMoments | None:
        return self._read(self._path(spec, f".shard-{start}-{stop}"), spec, lambda r: r == range(start, stop))

    def save_shard(self, spec: Mapping, m: BlockMoments) -> Path:
        return self._write(self._path(spec, f".shard-{m.blocks.start}-{m.blocks.stop}"), spec, m)
