"""``kerneltheory train``: the kernel-learning experiment (:mod:`kerneltheory.nn.experiment`).

Trains every kernel (softmax, Performer, RFF, elu+1, the six learned spectra, feed-forward, Hedgehog) on the
synthetic ListOps and sparse-retrieval tasks and writes tidy parquet tables, a Markdown summary and seaborn
figures; an interrupted run resumes. ``kerneltheory train --scale quick`` finishes in minutes on a CPU;
``--scale full --device cuda`` is the scale-up.
"""

from __future__ import annotations

import argparse

from ..nn import experiment
from . import check_device


def run(args: argparse.Namespace) -> int:
    check_device(args.device)  # a ValueError naming --device, not torch's RuntimeError
    return experiment.run_from_args(args)


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``subparsers`` (an ``argparse`` subparsers action)."""
    parser = subparsers.add_parser(
        "train",
        help="the kernel-learning experiment: every kernel on ListOps and sparse retrieval",
        description=experiment.__doc__.split("\n\n")[0],
    )
    experiment.build_parser(parser)
    parser.set_defaults(func=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``train`` as if it were ``kerneltheory train ARGV`` (for tests and scripts)."""
    parser = argparse.ArgumentParser(prog="kerneltheory")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["train", *(argv or [])])
    try:
        return args.func(args)
    except ValueError as exc:
        parser.exit(2, f"kerneltheory train: error: {exc}\n")
