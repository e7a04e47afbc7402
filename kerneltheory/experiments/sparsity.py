r"""Sparsity of kernelized attention (MATH.md §7; docs/sparsity.md; proofs/sparsity.md).

One command runs every part and writes every table and figure::

    kerneltheory sparsity --scale quick                # into ./kerneltheory-results/sparsity/quick
    kerneltheory sparsity --scale quick --regenerate   # the committed experiments/sparsity/quick

Parts (``--parts``, default all):

* ``temperature`` — every representative estimator against softmax attention whose mean normalised row entropy
  is swept by temperature (:func:`kerneltheory.sparsity.temperature_inputs`), for several m: KL(softmax row ‖
  approximate row), argmax agreement, entropy gap, relative error of the smallest weights, effective rank;
* ``planted`` — planted k-sparse targets (:func:`kerneltheory.sparsity.planted_keys`) swept by margin: mass on the
  planted keys, Frobenius error against the Eckart–Young floor of a rank-D map (the rank ceiling);
* ``performer`` — Performer's small-weight prediction: the relative MSE of SM estimates along ‖x + y‖ = ζ fixed,
  SM → 0, next to the closed forms, and the calibrated checks of kerneltheory.testing.sparsity_checks;
* ``floors`` — min κ / max κ of elu + 1, the feed-forward kernel, Hedgehog and softmax on bounded inputs, with
  the proved lower bounds; the mean row entropy as the inputs are scaled (temperature → 0);
* ``retrieval`` — the controllable-sparsity retrieval task of kerneltheory.nn.tasks (k planted tokens among n,
  label = parity of their values) learned by a one-layer KLTransformer with fixed and learned kernels.

Results are tidy parquet tables written atomically per chunk (one estimator or one training run) under
``OUT/<scale>/chunks/``; a rerun skips the chunks already on disk (their names carry a digest of their
configuration, so a changed configuration is recomputed; each is checked before it is reused,
:mod:`kerneltheory.experiments.study`). Then ``OUT/<scale>/<part>.parquet``, the figures ``OUT/<scale>/fig_*.png``
(redrawn only when their data changed) and ``OUT/<scale>/summary.md`` are written. Every seed derives from a
cell's name (kerneltheory.testing.seeds.seed_for), so a run is deterministic. The parts live in
:mod:`~kerneltheory.experiments.sparsity_attention` and :mod:`~kerneltheory.experiments.sparsity_kernels`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..io import write_parquet_atomic
from .sparsity_attention import part_planted, part_temperature
from .sparsity_figures import figures
from .sparsity_kernels import part_floors, part_performer, part_retrieval
from .sparsity_summary import summary
from .study import Chunks, MissingChunk, OutputLock

PARTS = ("temperature", "planted", "performer", "floors", "retrieval")

SCALES = {
    "quick": {
        "temperature": dict(
            n=64, n_keys=64, d=16, entropies=[0.9, 0.7, 0.5, 0.3, 0.15], ms=[16, 64, 256], draws=3
        ),
        "planted": dict(
            d=64,
            configs=[[48, 1, 16], [16, 4, 0]],
            margins=[0.5, 1.0, 2.0, 3.0, 4.0],
            ms=[8, 32, 128],
            draws=2,
        ),
        "performer": dict(
            d=8,
            m=64,
            zeta=0.5,
            taus=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5],
            radius=1.0,
            angles=[0, 45, 90, 135, 160, 180],
            draws=4096,
            check_draws=8192,
        ),
        "floors": dict(
            d=16,
            n=64,
            radii=[0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
            ff_seeds=3,
            betas=[0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0],
        ),
        "retrieval": dict(
            kernels=["softmax", "positive/orthogonal", "GMM-PRF", "elu", "hedgehog", "feedforward"],
            lengths=[16, 48],
            planted=2,
            classes=2,
            distractors=8,
            d_model=32,
            heads=2,
            steps=300,
            batch=64,
            lr=3e-3,
            seeds=[0],
            eval_size=1024,
        ),
    },
    "full": {
        "temperature": dict(
            n=128,
            n_keys=128,
            d=32,
            entropies=[0.95, 0.85, 0.7, 0.55, 0.4, 0.3, 0.2, 0.1],
            ms=[8, 16, 32, 64, 128, 256, 512],
            draws=16,
        ),
        "planted": dict(
            d=64,
            configs=[[48, 1, 16], [16, 4, 0], [8, 8, 0]],
            margins=[0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0],
            ms=[4, 8, 16, 32, 64, 128, 256],
            draws=8,
        ),
        "performer": dict(
            d=8,
            m=64,
            zeta=0.5,
            taus=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0],
            radius=1.0,
            angles=[0, 30, 60, 90, 120, 150, 165, 180],
            draws=32768,
            check_draws=16384,
        ),
        "floors": dict(
            d=16,
            n=128,
            radii=[0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
            ff_seeds=8,
            betas=list(np.logspace(-1, 4, 16)),
        ),
        "retrieval": dict(
            kernels=[
                "softmax",
                "positive/orthogonal",
                "trig/orthogonal",
                "GMM-PRF",
                "GMM-RKS",
                "elu",
                "hedgehog",
                "feedforward",
            ],
            lengths=[16, 32, 64, 128],
            planted=2,
            classes=2,
            distractors=8,
            d_model=32,
            heads=2,
            steps=1500,
            batch=64,
            lr=3e-3,
            seeds=[0, 1, 2],
            eval_size=2048,
        ),
    },
    # seconds: every code path at toy sizes (the tests and the installed-wheel check); nothing to read into it
    "smoke": {
        "temperature": dict(n=8, n_keys=8, d=4, entropies=[0.7, 0.3], ms=[4], draws=1),
        "planted": dict(d=8, configs=[[6, 1, 2]], margins=[1.0, 2.0], ms=[4], draws=1),
        "performer": dict(
            d=4, m=8, zeta=0.5, taus=[0.5, 1.0], radius=1.0, angles=[0, 90], draws=64, check_draws=256
        ),
        "floors": dict(d=4, n=8, radii=[0.5, 1.0], ff_seeds=1, betas=[0.1, 1.0]),
        "retrieval": dict(
            kernels=["softmax", "elu"],
            lengths=[8],
            planted=2,
            classes=2,
            distractors=4,
            d_model=8,
            heads=2,
            steps=2,
            batch=4,
            lr=3e-3,
            seeds=[0],
            eval_size=16,
        ),
    },
}


def run(
    scale: str = "quick",
    out: str | Path = "kerneltheory-results/sparsity",
    *,
    parts=PARTS,
    threads: int = 1,
    workers: int = 2,
    progress: bool = True,
) -> dict:
    """Run (or resume) ``parts`` at ``scale`` into ``out/<scale>``; returns ``{"tables", "figures", "summary"}``
    (the tables written, the figures redrawn, the summary's path). The tables, figures and summary also hold every
    other part whose chunks are all on disk, read from them (a run of some parts had cut the summary to those)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"parts must be among {list(PARTS)}, got {unknown}")
    for name, value in (("threads", threads), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"--{name} must be an integer >= 1, got {value!r}")
    cfg = SCALES[scale]
    root = Path(out) / scale
    with OutputLock(root):
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        results = {}
        grad = torch.is_grad_enabled()
        try:
            for part in PARTS:
                chunks = Chunks(root, part, cached_only=part not in parts)
                torch.set_grad_enabled(part == "retrieval")  # analysis only; training needs gradients
                try:
                    if part == "temperature":
                        results[part] = part_temperature(cfg[part], chunks, progress and part in parts)
                    elif part == "planted":
                        results[part] = part_planted(cfg[part], chunks, progress and part in parts)
                    elif part == "performer":
                        results[part], results["performer_checks"] = part_performer(cfg[part], chunks,
                                                                                    progress and part in parts)
                    elif part == "floors":
                        results["floors"], results["saturation"] = part_floors(cfg[part], chunks,
                                                                               progress and part in parts)
                    else:
                        results[part] = part_retrieval(cfg[part], chunks, progress and part in parts, workers)
                except MissingChunk:  # a part not run here and not complete on disk: left out
                    continue
                print(f"{part}: {chunks.computed} chunks computed, {chunks.reused} reused" if part in parts else
                      f"{part}: not run now; its {chunks.reused} chunks read for the tables", file=sys.stderr)
        finally:
            torch.set_grad_enabled(grad)
        tables = [write_parquet_atomic(frame, root / f"{name}.parquet") for name, frame in results.items()]
        drawn = figures(root, results)
        path = summary(root, scale, results, time.perf_counter() - t0)
    return {"tables": tables, "figures": drawn, "summary": path}
