r"""Variance experiments: empirical variance of every estimator family against its closed form.

Each figure is a :class:`FigureConfig` (axis, fixed point, scales, series); the shipped ones are
:func:`default_configs` (written to ``experiments/configs/*.toml``). A sweep is a set of cells, each a pure
function of its specification (estimator, point, draws, block, seed) returning mergeable moments
(:mod:`kerneltheory.experiments.cells`); :func:`run_sweeps` computes them locally or on Dask distributed,
caches and resumes them, and writes a tidy parquet table and a seaborn figure per figure::

    >>> from kerneltheory.experiments import default_configs, run_sweeps
    >>> results = run_sweeps(default_configs(), out_dir="kerneltheory-results/variance")  # doctest: +SKIP
    >>> results[0].frame.columns[:6].tolist()  # doctest: +SKIP
    ['figure', 'scale', 'panel', 'label', 'estimator', 'x_name']

Command line: ``kerneltheory variance --scale quick|full [--device cuda] [--scheduler local:N|tcp://...]``.
Results: docs/variance.md.

The other studies live beside it, each a module of this package: :mod:`~kerneltheory.experiments.sparsity` and
:mod:`~kerneltheory.experiments.turing`; every study shares :mod:`~kerneltheory.experiments.study` (output
folders, the lock, checked caches, figure digests).
"""

from .cells import (
    CellStore,
    build_estimator,
    cell_digest,
    cell_spec,
    cell_theory,
    derive_seed,
    evaluate_cell,
    make_inputs,
    moment_columns,
    shard_task,
)
from .config import (
    AXES,
    POINT_KEYS,
    THEORY,
    FigureConfig,
    ScaleSpec,
    Series,
    load_config,
    load_configs,
    to_toml,
)
from .defaults import default_configs
from .runner import FigureResult, compute_cells, open_client, plan, run_figure, run_sweeps, tidy_frame
from .summary import aggregate, summarize, summary_table

__all__ = [
    "AXES",
    "POINT_KEYS",
    "THEORY",
    "CellStore",
    "FigureConfig",
    "FigureResult",
    "ScaleSpec",
    "Series",
    "aggregate",
    "build_estimator",
    "cell_digest",
    "cell_spec",
    "cell_theory",
    "compute_cells",
    "default_configs",
    "derive_seed",
    "evaluate_cell",
    "load_config",
    "load_configs",
    "make_inputs",
    "moment_columns",
    "open_client",
    "plan",
    "run_figure",
    "run_sweeps",
    "shard_task",
    "summarize",
    "summary_table",
    "tidy_frame",
    "to_toml",
]
