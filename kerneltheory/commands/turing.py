"""``kerneltheory turing``: minimal β against T and success against m for the kernelized Turing constructions
(:mod:`kerneltheory.experiments.turing`; proofs/turing.md).

    kerneltheory turing [--scale smoke|quick|full] [--parts PART ...] [--out DIR | --regenerate] [--quiet]

Writes ``<out>/<scale>/``: ``beta_min``, ``success`` and ``slopes`` tables (parquet), ``beta_min.png``,
``success.png``, ``summary.md`` and ``config.json``; ``<out>`` defaults to ``./kerneltheory-results/turing``,
``--regenerate`` rewrites the committed ``experiments/turing`` of a source checkout.
"""

from __future__ import annotations

import argparse
import sys

from ..experiments.study import add_output_arguments, output_dir


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..experiments.turing import PARTS, SCALES

    parser.add_argument("--scale", choices=sorted(SCALES), default="quick", help="study size (default quick)")
    add_output_arguments(parser, "turing", per_scale=True)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="parts to run (default all)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..experiments import turing

    out = output_dir("turing", args.out, regenerate=args.regenerate)
    res = turing.run(args.scale, out, parts=args.parts, progress=not args.quiet)
    print(f"wrote {len(res['tables'])} tables, redrew {len(res['figures'])} figures, {res['summary']}",
          file=sys.stderr)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``turing`` to the ``kerneltheory`` subcommands."""
    parser = subparsers.add_parser(
        "turing", help="kernelized Turing constructions: minimal beta against T, success against m",
        description=__doc__.split("\n\n")[0],
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser
