"""``kerneltheory sparsity``: the sparsity study (:mod:`kerneltheory.experiments.sparsity`, docs/sparsity.md).

    kerneltheory sparsity [--scale smoke|quick|full] [--parts PART ...] [--out DIR | --regenerate]
                          [--threads T] [--workers W] [--quiet]

Writes ``<out>/<scale>/``: one tidy parquet table per part, the figures ``fig_*.png`` and ``summary.md``;
``<out>`` defaults to ``./kerneltheory-results/sparsity``, ``--regenerate`` rewrites the committed
``experiments/sparsity`` of a source checkout. An interrupted run resumes from its cached chunks.
"""

from __future__ import annotations

import argparse
import sys

from ..experiments.study import add_output_arguments, output_dir


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..experiments.sparsity import PARTS, SCALES

    parser.add_argument("--scale", choices=sorted(SCALES), default="quick", help="study size (default quick)")
    add_output_arguments(parser, "sparsity", per_scale=True)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="parts to run (default all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in this process (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the retrieval training runs")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..experiments import sparsity

    out = output_dir("sparsity", args.out, regenerate=args.regenerate)
    res = sparsity.run(args.scale, out, parts=args.parts, threads=args.threads, workers=args.workers,
                       progress=not args.quiet)
    print(f"wrote {len(res['tables'])} tables, redrew {len(res['figures'])} figures, {res['summary']}",
          file=sys.stderr)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``sparsity`` to the ``kerneltheory`` subcommands."""
    parser = subparsers.add_parser("sparsity", help="how estimators cope with peaked attention (docs/sparsity.md)",
                                   description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser
