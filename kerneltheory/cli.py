"""The ``kerneltheory`` command.

* ``kerneltheory report`` — the main job: the claim matrix (every estimator × claim verified at the quick
  budget), the quick variance sweeps with their figures, and the registry, written to ``report/report.html``
  (figures embedded), ``report/report.md`` and ``report/report.json``, with progress; an interrupted run
  resumes from its cached results.
* ``kerneltheory audit MODULE:FACTORY --kernel NAME --dim D --claims ...`` — the conformance check for an
  outside feature map; exit status 0 when every claimed property holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

from . import __version__

CLAIM_CHOICES = ("unbiased", "positive", "variance", "finite")


def _report(args) -> int:
    from .report import run_report

    result = run_report(
        args.out, budget=args.budget, seed=args.seed, alpha=args.alpha, names=args.only or None,
        matrix=not args.registry_only, dim=args.dim, num_features=args.num_features, progress=not args.quiet,
        variance=False if args.no_variance else None, variance_scale=args.variance_scale, device=args.device,
        scheduler=args.scheduler,
    )
    print(result["text"])
    written = ", ".join(str(result[k]) for k in ("html", "markdown", "json") if result.get(k))
    print(f"wrote {written}", file=sys.stderr)
    return 0


def load_object(spec: str):
    """``MODULE:NAME`` → the object; MODULE is a dotted module name or a path to a ``.py`` file."""
    if ":" not in spec:
        raise ValueError(f"expected MODULE:NAME (a module or a .py file, then an attribute), got {spec!r}")
    module_part, _, attr = spec.rpartition(":")
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        path = Path(module_part)
        if not path.is_file():
            raise ValueError(f"no such file: {module_part}")
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_part)
        except ImportError as exc:
            raise ValueError(f"cannot import module {module_part!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"{module_part} has no attribute {attr!r}") from None


def _as_sample(obj):
    """The object is ``sample(generator)``, or a zero-argument factory returning it."""
    if not callable(obj):
        raise ValueError("FACTORY must be callable: sample(generator) or a zero-argument factory returning it")
    params = [p for p in inspect.signature(obj).parameters.values()
              if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return obj() if not params else obj


def _audit(args) -> int:
    from .kernels import get_kernel
    from .testing import check_feature_map

    sample = _as_sample(load_object(args.factory))
    kernel = get_kernel(args.kernel)
    if args.kernel == "gaussian" and args.sigma != 1.0:
        base = kernel
        kernel = lambda x, y: base(x, y, sigma=args.sigma)  # noqa: E731
    variance = load_object(args.variance) if args.variance else None
    report = check_feature_map(
        sample, kernel, dim=args.dim, claims=set(args.claims), variance=variance, alpha=args.alpha,
        seed=args.seed, budget=args.budget,
    )
    print(report)
    return 0 if report.passed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kerneltheory", description="The theory of kernelized attention, executable.")
    parser.add_argument("--version", action="version", version=f"kerneltheory {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("report", help="the registry and the claim matrix of every estimator")
    rep.add_argument("--out", default="report", help="output directory (default: report/)")
    rep.add_argument("--budget", choices=("quick", "thorough"), default="quick", help="draws per check")
    rep.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    rep.add_argument("--alpha", type=float, default=1e-6, help="false-failure rate of each estimator's report")
    rep.add_argument("--only", nargs="*", metavar="NAME", help="verify only these estimators")
    rep.add_argument("--registry-only", action="store_true", help="write the registry table without verifying")
    rep.add_argument("--dim", type=int, default=16, help="dimension of the registry table (default 16)")
    rep.add_argument("--num-features", type=int, default=64, help="m of the registry table (default 64)")
    rep.add_argument("--no-variance", action="store_true", help="skip the variance sweeps and their figures")
    rep.add_argument("--variance-scale", choices=("quick", "full"), default="quick", help="scale of the sweeps")
    rep.add_argument("--device", default="cpu", help="device of the variance sweeps (cpu or cuda)")
    rep.add_argument("--scheduler", default=None, help="Dask scheduler for the sweeps: local:N or tcp://host:port")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    rep.set_defaults(func=_report)

    aud = sub.add_parser("audit", help="verify the claims of an outside feature map")
    aud.add_argument("factory", metavar="MODULE:FACTORY",
                     help="sample(generator) -> feature map (or a zero-argument factory returning it); MODULE is a "
                     "dotted module or a .py file")
    aud.add_argument("--kernel", required=True, help="exact kernel: softmax, gaussian or arccos1")
    aud.add_argument("--sigma", type=float, default=1.0, help="bandwidth of the gaussian kernel")
    aud.add_argument("--dim", type=int, required=True, help="input dimension d of the map")
    aud.add_argument("--claims", nargs="+", choices=CLAIM_CHOICES, required=True)
    aud.add_argument("--variance", metavar="MODULE:FUNCTION", help="claimed variance(x, y) of one draw")
    aud.add_argument("--budget", choices=("quick", "thorough"), default="quick")
    aud.add_argument("--alpha", type=float, default=1e-6, help="the report's total false-failure rate")
    aud.add_argument("--seed", type=int, default=0)
    aud.set_defaults(func=_audit)

    from .commands import COMMANDS

    for name in COMMANDS:
        importlib.import_module(f"kerneltheory.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        parser.exit(2, f"kerneltheory {args.command}: error: {exc}\n")


if __name__ == "__main__":
    raise SystemExit(main())
