"""The ``kerneltheory`` command.

``kerneltheory report`` — the main job: the registry table of every estimator × claim with its proof files,
written as Markdown and JSON (``--out``, default ``report/``) and printed.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__


def _report(args) -> int:
    from .report import registry_report

    result = registry_report(args.out, dim=args.dim, num_features=args.num_features)
    print(result["text"])
    print(f"wrote {result['markdown']} and {result['json']}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kerneltheory", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"kerneltheory {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="the registry of estimators, their claims and proofs")
    rep.add_argument("--out", default="report", help="output directory (default: report/)")
    rep.add_argument(
        "--dim", type=int, default=16, help="dimension d the estimators are built at (default 16)"
    )
    rep.add_argument("--num-features", type=int, default=64, help="number of frequencies m (default 64)")
    rep.set_defaults(func=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
