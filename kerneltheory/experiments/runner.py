r"""Running sweeps: cells computed locally or on Dask distributed, cached and resumed, assembled into tidy
tables (parquet) and figures.

Local runs evaluate each pending cell in this process, writing a checkpoint of its finished blocks every
``checkpoint_seconds`` (atomically), so an interrupted run resumes inside a cell; a finished cell is one file.
Distributed runs (``scheduler="local:N"`` starts a :class:`distributed.LocalCluster` of N single-threaded
worker processes, ``"tcp://host:port"`` connects to a running scheduler, or pass a ``distributed.Client``)
split every cell into shards of ``shard_blocks`` RNG blocks, submit each shard as the pure task
:func:`~kerneltheory.experiments.cells.shard_task` (spec, a, b), write each returned shard atomically and
merge a cell's shards in block order. Because :class:`~kerneltheory.montecarlo.BlockMoments` of adjacent
block ranges merge bitwise into the moments of their union, the result is identical, bit for bit, to the
local run (tests/test_variance_experiments.py checks it with a 2-worker cluster), provided the workers'
torch kernels give the same bits as the local ones (same build and hardware, and the same torch thread count:
torch's CPU reductions over a block split their work by thread from some size on, measured at blocks of 50 000
draws, where 1 and 4 threads differed in the last bit in 12 of 20 rows of variance_vs_dim; at the default blocks,
8192 draws at most, they agreed). The thread count is not part of a cell's key, so resume a run with the threads it
started with (``kerneltheory report`` runs with one unless ``--threads`` says otherwise; ``kerneltheory variance``
with torch's default, set by ``OMP_NUM_THREADS``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import write_parquet_atomic
from ..montecarlo import BlockMoments
from .cells import (
    CellStore,
    cell_blocks,
    cell_digest,
    cell_spec,
    cell_theory,
    check_theory,
    evaluate_cell,
    moment_columns,
    shard_task,
)
from .config import THEORY, FigureConfig
from .study import OutputLock, draw_if_changed

SCHEDULER_HELP = "local:N (a local cluster of N worker processes) or tcp://host:port (a running scheduler)"


@dataclass
class FigureResult:
    """The outcome of one figure: its tidy table, files and timings."""

    config: FigureConfig
    scale: str
    frame: pd.DataFrame
    parquet: Path
    png: Path | None
    seconds: float
    computed: int
    cached: int
    summary: list[dict] = field(default_factory=list)


def plan(
    config: FigureConfig,
    scale: str = "quick",
    *,
    draws: int | None = None,
    block: int | None = None,
    device: str = "cpu",
    rng: str = "cpu",
) -> list[tuple[int, object, dict]]:
    """Every cell of the figure at ``scale``: ``(series index, axis value, spec)``, series-major."""
    spec_scale = config.scale(scale)
    draws = spec_scale.draws if draws is None else draws
    block = spec_scale.block if block is None else block
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 2:
        raise ValueError(f"draws must be an integer >= 2, got {draws!r}")
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be an integer >= 1, got {block!r}")
    return [
        (i, v, cell_spec(config, s, v, draws=draws, block=block, device=device, rng=rng))
        for i, s in enumerate(config.series)
        for v in spec_scale.values
    ]


# -- execution ---------------------------------------------------------------------------------------------


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="cell", file=sys.stderr, disable=not progress, leave=True)


def _run_local(spec: dict, store: CellStore, checkpoint_seconds: float, progress: bool) -> BlockMoments:
    nb = cell_blocks(spec)
    done = store.load_partial(spec)
    start = 0 if done is None else done.blocks.stop
    if start >= nb:
        return done
    last = [time.monotonic()]

    def checkpoint(m: BlockMoments) -> None:
        if time.monotonic() - last[0] >= checkpoint_seconds and m.blocks.stop < nb:
            store.save_partial(spec, m if done is None else done + m)
            last[0] = time.monotonic()

    rest = evaluate_cell(
        spec,
        range(start, nb),
        callback=checkpoint,
        chunk=spec["block"] * max(1, min(64, nb // 16 or 1)),
        progress=progress and spec["draws"] >= 2**22,
    )
    return rest if done is None else done + rest


def compute_cells(
    specs: list[dict],
    store: CellStore,
    *,
    client=None,
    shard_blocks: int | None = None,
    progress: bool = True,
    checkpoint_seconds: float = 30.0,
    desc: str = "cells",
) -> dict:
    """``{digest: BlockMoments}`` for every spec (duplicates computed once): read from the store where a cell
    is finished, otherwise computed — locally (resuming from its checkpoint), or on ``client`` in shards of
    ``shard_blocks`` RNG blocks — and stored."""
    unique: dict[str, dict] = {}
    for spec in specs:
        unique.setdefault(cell_digest(spec), spec)
    results: dict[str, BlockMoments] = {}
    todo = []
    for digest, spec in unique.items():
        m = store.load(spec)
        if m is None:
            todo.append((digest, spec))
        else:
            results[digest] = m
    bar = _bar(len(unique), desc, progress)
    bar.update(len(results))
    try:
        if client is None:
            for digest, spec in todo:
                start = time.perf_counter()
                m = _run_local(spec, store, checkpoint_seconds, progress)
                store.save(spec, m, seconds=round(time.perf_counter() - start, 3))
                results[digest] = m
                bar.update()
        elif todo:
            results.update(_run_distributed(client, todo, store, shard_blocks, bar))
    finally:
        bar.close()
    return results


def _shards(nb: int, shard_blocks: int | None) -> list[tuple[int, int]]:
    size = nb if shard_blocks is None else shard_blocks
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"shard_blocks must be an integer >= 1, got {shard_blocks!r}")
    return [(a, min(a + size, nb)) for a in range(0, nb, size)]


def _run_distributed(client, todo, store: CellStore, shard_blocks, bar) -> dict:
    """The cells ``todo`` in shards: those stored already are read, the rest submitted to ``client`` (an
    :class:`OnDemandClient` is opened at the first submission: a cell whose shards are all stored but not yet merged
    needs no scheduler), and each cell is merged and stored once all its shards are in."""
    pieces: dict[str, dict[tuple[int, int], BlockMoments]] = {}
    futures = {}
    specs = dict(todo)
    for digest, spec in todo:
        pieces[digest] = {}
        for a, b in _shards(cell_blocks(spec), shard_blocks):
            m = store.load_shard(spec, a, b)
            if m is not None:
                pieces[digest][(a, b)] = m
            else:
                client = client.get() if isinstance(client, OnDemandClient) else client
                fut = client.submit(
                    shard_task, spec, a, b, key=f"kerneltheory-shard-{digest}-{a}-{b}", pure=True
                )
                futures[fut] = (digest, (a, b))
    results = {}

    def finish(digest: str) -> None:
        spec = specs[digest]
        shards = _shards(cell_blocks(spec), shard_blocks)
        if len(pieces[digest]) < len(shards):
            return
        total = pieces[digest][shards[0]]
        for r in shards[1:]:
            total = total + pieces[digest][r]  # adjacent ranges of one sweep: the bitwise tree merge
        store.save(spec, total)
        results[digest] = total
        bar.update()

    for digest in list(pieces):
        finish(digest)
    if not futures:
        return results
    from distributed import as_completed

    for fut in as_completed(list(futures)):
        digest, r = futures[fut]
        m = BlockMoments.from_dict(fut.result())
        store.save_shard(specs[digest], m)
        pieces[digest][r] = m
        finish(digest)
    return results


def check_scheduler(scheduler: str | None) -> str | None:
    """``scheduler`` if it is None, ``"local:N"`` with N ≥ 1 or an address with a ``://`` scheme, else a
    ``ValueError`` naming the allowed forms (checked before any work, also when no sweep will need it)."""
    if scheduler is None:
        return None
    ok = isinstance(scheduler, str) and (
        "://" in scheduler
        or (scheduler.startswith("local:") and scheduler[6:].isdigit() and int(scheduler[6:]) >= 1)
    )
    if not ok:
        raise ValueError(f"scheduler must be {SCHEDULER_HELP}, got {scheduler!r}")
    return scheduler


@contextlib.contextmanager
def open_client(scheduler):
    """A ``distributed.Client`` for ``scheduler``: None (yields None: run locally), ``"local:N"`` (a new
    LocalCluster of N worker processes, one thread each, closed on exit), ``"tcp://host:port"`` (connect),
    or an existing Client (used as is)."""
    if scheduler is None:
        yield None
        return
    if not isinstance(scheduler, str):
        yield scheduler
        return
    check_scheduler(scheduler)
    from distributed import Client, LocalCluster

    if scheduler.startswith("local:"):
        workers = int(scheduler[6:])
        with LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            with Client(cluster) as client:
                yield client
    else:
        with Client(scheduler) as client:
            yield client


# -- assembly ----------------------------------------------------------------------------------------------


def tidy_frame(
    config: FigureConfig, scale: str, cells: list[tuple[int, object, dict]], moments: dict
) -> pd.DataFrame:
    """One row per (series, axis value, pair): the point, the measurement and the closed forms (NaN where a
    closed form is not drawn for the series)."""
    frames = []
    for i, value, spec in cells:
        series = config.series[i]
        theory = cell_theory(spec, series.theory)
        m = moments[cell_digest(spec)]
        cols = moment_columns(m, theory["kernel"])
        p = spec["point"]
        count = p["pairs"]
        row = {
            "figure": config.name,
            "scale": scale,
            "panel": series.panel,
            "label": series.label,
            "estimator": spec["estimator"],
            "x_name": config.x,
            "x": float(value),
            "dim": p["dim"],
            "num_features": p["num_features"],
            "norm_x": p["norm"],
            "norm_y": p["norm"] * p["norm_ratio"],
            "angle": p["angle"],
            "pairs": count,
            "pair": np.arange(count),
            "draws": m.count,
            "block": spec["block"],
            "seed": str(spec["seed"]),
            "device": spec["device"],
            "cell": cell_digest(spec),
            "kernel": theory["kernel"],
            **cols,
        }
        for kind in THEORY:
            row[kind] = theory.get(kind, np.full(count, np.nan))
        frames.append(pd.DataFrame(row))
    return pd.concat(frames, ignore_index=True)


def run_figure(
    config: FigureConfig,
    *,
    scale: str = "quick",
    out_dir: str | Path = "kerneltheory-results/variance",
    cells_dir: str | Path | None = None,
    device: str = "cpu",
    rng: str = "cpu",
    draws: int | None = None,
    block: int | None = None,
    client=None,
    shard_blocks: int | None = None,
    progress: bool = True,
    plot: bool = True,
    checkpoint_seconds: float = 30.0,
) -> FigureResult:
    """Compute (or resume) every cell of ``config`` at ``scale`` and write ``<out_dir>/<name>.parquet`` and,
    with ``plot``, ``<out_dir>/<name>.png`` (redrawn only when its data or configuration changed). Cells are
    cached under ``cells_dir`` (default ``<out_dir>/cells``)."""
    from .summary import summarize

    start = time.perf_counter()
    out = Path(out_dir)
    store = CellStore(Path(cells_dir) if cells_dir is not None else out / "cells")
    cells = plan(config, scale, draws=draws, block=block, device=device, rng=rng)
    checked = set()
    for i, _, spec in cells:
        if i not in checked:
            label = config.series[i].label
            try:  # builds the series' estimator: a bad estimator argument is named with its figure and series
                check_theory(spec, config.series[i].theory, label)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"figure {config.name!r}, series[{i}] {label!r} ({spec['estimator']}): {exc}") from exc
            checked.add(i)
    cached = sum(
        store.load(spec) is not None for _, _, spec in {cell_digest(c[2]): c for c in cells}.values()
    )
    moments = compute_cells(
        [c[2] for c in cells],
        store,
        client=client,
        shard_blocks=shard_blocks,
        progress=progress,
        checkpoint_seconds=checkpoint_seconds,
        desc=config.name,
    )
    frame = tidy_frame(config, scale, cells, moments)
    parquet = write_parquet_atomic(frame, out / f"{config.name}.parquet")
    png = None
    if plot:
        from .plots import PLOT_STYLE, plot_figure

        png, _ = draw_if_changed(
            out / f"{config.name}.png",
            {"frame": frame},
            {"config": config.to_dict(), **PLOT_STYLE},
            lambda path: plot_figure(frame, config, path),
        )
    unique = len({cell_digest(c[2]) for c in cells})
    return FigureResult(
        config,
        scale,
        frame,
        parquet,
        png,
        time.perf_counter() - start,
        unique - cached,
        cached,
        summarize(frame),
    )


def run_sweeps(
    configs: list[FigureConfig] | None = None,
    *,
    scale: str = "quick",
    out_dir: str | Path = "kerneltheory-results/variance",
    scheduler=None,
    only: list[str] | None = None,
    **kw,
) -> list[FigureResult]:
    """Run every figure of ``configs`` (default: the shipped ones), optionally ``only`` the named ones, on
    ``scheduler`` (None: this process), holding ``out_dir``'s :class:`~kerneltheory.experiments.study.OutputLock`.
    Keyword arguments go to :func:`run_figure`."""
    with OutputLock(out_dir):
        return sweeps_locked(configs, scale=scale, out_dir=out_dir, scheduler=scheduler, only=only, **kw)


def sweeps_locked(configs=None, *, scale="quick", out_dir="kerneltheory-results/variance", scheduler=None, only=None,
                  **kw) -> list[FigureResult]:
    """:func:`run_sweeps` for a caller that holds ``out_dir``'s lock itself (``kerneltheory report`` holds it from
    the sweeps until its report, which embeds their figures, is written)."""
    from .defaults import default_configs

    configs = default_configs() if configs is None else list(configs)
    if only:
        names = {c.name for c in configs}
        unknown = sorted(set(only) - names)
        if unknown:
            raise ValueError(f"unknown figure(s) {unknown}; figures are {sorted(names)}")
        configs = [c for c in configs if c.name in set(only)]
    if isinstance(scheduler, str):  # a bad address is an error before any figure is written, cached or not
        check_scheduler(scheduler)
    with contextlib.ExitStack() as stack:
        # connected when a figure has a cell to compute: a run whose every cell is cached needs no scheduler (one
        # that could not be reached failed after its connection timeout though nothing was left to compute)
        client = None if scheduler is None else OnDemandClient(lambda: stack.enter_context(open_client(scheduler)))
        return [run_figure(c, scale=scale, out_dir=out_dir, client=client, **kw) for c in configs]


class OnDemandClient:
    """A scheduler's client opened by ``open`` on the first :meth:`get` and reused after it (closed by whoever
    ``open`` hands it to): :func:`compute_cells` calls :meth:`get` only when it has cells to compute."""

    def __init__(self, open: Callable[[], object]):
        self._open, self._client, self._opened = open, None, False

    def get(self):
        if not self._opened:
            self._client, self._opened = self._open(), True
        return self._client
