"""The ``kerneltheory`` command.

* ``kerneltheory report`` — the main job: the claim matrix (every estimator × claim verified at the quick
  budget), the quick variance sweeps with their figures, and the registry, written to ``report/report.html``
  (figures embedded), ``report/report.md`` and ``report/report.json``, with progress; an interrupted run
  resumes from its cached results. It prints a summary and exits 0 (every claimed property verified), 1 (a
  claimed property FAILED; with ``--fail-on refused`` also refused) or 2 (the command could not run).
* ``kerneltheory audit MODULE:FACTORY --kernel NAME --dim D --claims ...`` — the conformance check for an
  outside feature map (``--sampler PRESET`` for a frequency sampler, ``--attention`` for an attention function;
  docs/auditing.md; FACTORY's signatures and the options of each kind of audit: ``_audit_args``); exit status 0
  when every claim is verified, 1 when a claim is refuted, 2 when the code or the command fails to run (a message;
  ``--traceback`` shows the traceback), 3 when no check failed but some were refused (nothing decided).
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import importlib.util
import os
import re
import sys
import warnings
from pathlib import Path

from . import __version__
from ._audit_args import as_factory, check_options, global_rng_factory
from .report_matrix import FAIL_ON

CLAIM_CHOICES = ("unbiased", "positive", "variance", "finite")
# attention_audit.ATTENTION_CHECKS, written here so that building the parser does not import torch
ATTENTION_CHECKS = ("consistency", "bias", "stabiliser", "batch", "padding", "causality", "order", "precision",
                    "finite")


def _report(args) -> int:
    """Run the report; exit status 0 (every claimed property held), 1 (a claimed property FAILED, or was
    refused under ``--fail-on refused``) or 2 (the command itself failed: bad argument, unwritable directory,
    any other error; a message, no traceback unless ``--traceback``)."""
    threads = None
    try:
        _check_threads(args.threads)
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
        from .commands import check_device
        from .experiments.runner import check_scheduler

        check_device(args.device)
        check_scheduler(args.scheduler)
        _check_only(args.only)
        _check_out(args.out)
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(args.threads)
        from .report import run_report
        from .report_matrix import console_summary, exit_status

        result = run_report(
            args.out, budget=args.budget, seed=args.seed, alpha=args.alpha, names=args.only or None,
            matrix=not args.registry_only, dim=args.dim, num_features=args.num_features,
            progress=not args.quiet, variance=False if args.no_variance else None,
            variance_scale=args.variance_scale, device=args.device, scheduler=args.scheduler,
        )
    except KeyboardInterrupt:
        print("kerneltheory report: interrupted; run it again to resume from the cached results", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.traceback:
            raise
        message = _out_error(exc, args.out) or (
            str(exc) if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {exc}")
        where = "" if isinstance(exc, ValueError) else " (--traceback shows where)"  # an argument needs no traceback
        message = _as_option(message, getattr(args, "options", set()))
        print(f"kerneltheory report: error: {message}{where}", file=sys.stderr)
        return 2
    finally:
        if threads is not None:  # in-process callers get their thread count back
            import torch

            torch.set_num_threads(threads)
    if result["summary"] is None:  # --registry-only: the registry is the whole result
        print(result["text"])
    print(console_summary(result["summary"], result, fail_on=args.fail_on))
    return exit_status(result["summary"], args.fail_on)


def _out_error(exc: BaseException, out) -> str | None:
    """The message of an ``OSError`` at ``--out`` (where a command writes) or at a folder above it, naming the
    option; None for any other error."""
    failed_at = str(getattr(exc, "filename", "") or "") if isinstance(exc, OSError) else ""
    if out is None or not failed_at or not (failed_at.startswith(str(out)) or str(out).startswith(failed_at)):
        return None
    return f"--out {out}: {exc.strerror or exc} ({failed_at})"


def _check_out(out: str) -> None:
    """``--out`` names a directory or one that can be created: an existing file, or a first existing ancestor that
    is not a writable directory, is named before any work (nothing is created here;
    :func:`~kerneltheory.experiments.study.check_out`)."""
    from .experiments.study import check_out

    check_out(out)


def _check_only(names) -> None:
    """Every ``--only`` name is a registered estimator or alias; an unknown one is named with the closest names."""
    if not names:
        return
    import difflib

    from . import estimators

    known = [*estimators.list(), *estimators.aliases()]
    for name in names:
        try:
            estimators.resolve(name)
        except ValueError:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"--only {name}: not a registered estimator or alias{hint} (kerneltheory report "
                             "--registry-only lists them)") from None


def load_object(spec: str):
    """``MODULE:NAME`` → the object; MODULE is a dotted module name or a path to a ``.py`` file."""
    if ":" not in spec:
        raise ValueError(f"expected MODULE:NAME (a module or a .py file, then an attribute), got {spec!r}")
    module_part, _, attr = spec.rpartition(":")
    if not module_part or not attr:
        raise ValueError(f"expected MODULE:NAME (a module or a .py file, then an attribute), got {spec!r}")
    path = Path(module_part)
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part or path.exists():
        if path.is_dir():
            raise ValueError(f"{module_part} is a directory; MODULE:NAME takes a .py file or a dotted module name")
        if not path.is_file():
            raise ValueError(f"no such file: {module_part}")
        if path.suffix != ".py":
            raise ValueError(f"{module_part} is not a Python file (.py); MODULE:NAME takes a .py file or a dotted "
                             "module name")
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(mod_spec)
        # registered as a module (dataclasses and pickling look the module up by name) and its folder kept on the path
        # for the whole command (the file may import its neighbours, at import or inside a function called later)
        sys.modules.setdefault(mod_spec.name, module)
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        try:
            mod_spec.loader.exec_module(module)
        except BaseException as exc:
            if sys.modules.get(mod_spec.name) is module:
                del sys.modules[mod_spec.name]
            if isinstance(exc, Exception):  # said to come from the import (SystemExit and interrupts pass as they are)
                raise ValueError(f"importing {module_part} failed: {type(exc).__name__}: {exc}") from exc
            raise
    else:  # from the current directory first, as `python -m kerneltheory` has it (the console script did not)
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_part)
        except ImportError as exc:
            raise ValueError(f"cannot import module {module_part!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"{module_part} has no attribute {attr!r}") from None


def _kernel(spec: str, sigma: float):
    """A built-in kernel name (gaussian with ``--sigma``) or ``MODULE:FUNCTION``."""
    from .kernels import KERNELS, get_kernel

    if sigma != 1.0 and spec != "gaussian":  # not silently ignored
        raise ValueError(f"--sigma is the bandwidth of --kernel gaussian; it does not apply to --kernel {spec}")
    if not 0.0 < sigma < float("inf"):
        raise ValueError(f"--sigma must be a finite number > 0, got {sigma}")
    if spec in KERNELS:
        kernel = get_kernel(spec)
        if spec == "gaussian" and sigma != 1.0:
            return lambda x, y: kernel(x, y, sigma=sigma)
        return kernel
    if ":" in spec:
        kernel = _named(load_object, "--kernel", spec)
        if not callable(kernel):
            raise ValueError(f"--kernel {spec}: not a callable kernel(x, y)")
        return kernel
    return _named(get_kernel, "--kernel", spec)  # raises, naming the built-in kernels


def _named(load, option: str, spec: str):
    """``load(spec)``, its ValueError prefixed with the option that gave ``spec``."""
    try:
        return load(spec)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None


def _run_audit(args):
    from ._validation import check_alpha
    from .testing import Report, check_feature_map
    from .testing.seeds import seed_global_generators

    args.alpha = check_alpha(args.alpha, "--alpha")  # as given, before the claims split it

    for option, value in (("--dim", args.dim), ("--draws", args.draws)):
        if value is not None and value < 1:
            raise ValueError(f"{option} must be an integer >= 1, got {value}")
    kind = check_options(args)
    # the audited file is imported with the global generators seeded from --seed: a module built at import from torch's
    # global generator (which starts from a fresh seed in every process) gave one command and one printed seed
    # different verdicts from run to run
    seed_global_generators(args.seed)
    obj = load_object(args.factory)
    if kind == "attention":  # the reference first: --sigma and --kernel are named before the factory's signature
        plain = args.kernel in (None, "softmax") and args.sigma == 1.0
        reference = "softmax" if plain else _kernel(args.kernel or "softmax", args.sigma)
    if args.global_rng:
        sample = global_rng_factory(obj, kind == "attention")
    elif kind == "attention":
        sample = as_factory(obj, 2, "attention(m, generator) -> fn(q, k, v, mask=None)")
    else:
        sample = as_factory(obj, 1, "sample(generator)")
    if args.sampler:
        from .testing.samplers import callable_sampler_checks

        draws = 1024 if args.draws is None else args.draws
        rows = callable_sampler_checks(sample, claims=args.sampler, draws=draws, seed=args.seed, alpha=args.alpha,
                                       std=1.0 if args.std is None else args.std, redraws=args.redraws)
        return Report(f"sampler checks ({args.sampler})", checks=rows, alpha=args.alpha, budget=f"{draws} draws",
                      seed=args.seed)
    if args.dim is None:
        raise ValueError("--dim is required (the input dimension d)")
    if args.attention:
        import torch

        from .testing.attention_audit import check_attention

        dtypes = {} if args.dtypes is None else {"dtypes": tuple(getattr(torch, t) for t in dict.fromkeys(args.dtypes))}
        # validated by check_attention, whose errors name the argument (length for --length)
        sizes = {n: getattr(args, n) for n in ("length", "exact_length", "long_length") if getattr(args, n) is not None}
        if args.output_dtype is not None:
            sizes["output_dtype"] = getattr(torch, args.output_dtype)
        return check_attention(sample, dim=args.dim, reference=reference, causal=args.causal, mask=not args.no_mask,
                               checks=args.checks, alpha=args.alpha, seed=args.seed, **dtypes, **sizes)
    missing = [option for option, value in (("--kernel", args.kernel), ("--claims", args.claims)) if not value]
    if missing:
        raise ValueError(f"a feature-map audit needs {' and '.join(missing)} (or pass --sampler or --attention)")
    kernel = _kernel(args.kernel, args.sigma)
    claims = set(args.claims)
    if "variance" in claims and args.variance is None:
        raise ValueError("--claims variance needs --variance MODULE:FUNCTION, the claimed variance(x, y) of one draw")
    if args.variance is not None and "variance" not in claims:
        raise ValueError("--variance is the claimed variance of --claims variance: add variance to --claims, or leave "
                         "--variance out (it would be ignored)")
    variance = _named(load_object, "--variance", args.variance) if args.variance else None
    # every claim through check_feature_map, proportional included: its replay, repeated-draw and row-wise checks
    # run first (a map that ignores its generator, or reads other rows of the batch, passed "proportional" alone)
    return check_feature_map(sample, kernel, dim=args.dim, claims=claims, variance=variance, alpha=args.alpha,
                             seed=args.seed, budget=args.budget or "quick", accept_early=not args.no_accept_early)


def _check_threads(threads: int) -> None:
    """``--threads``: 1 to 4 × the machine's CPUs (beyond, torch's thread pool only oversubscribes; 10⁵ threads
    crashed the process with a segmentation fault)."""
    most = 4 * (os.cpu_count() or 1)
    if not 1 <= threads <= most:
        raise ValueError(f"--threads must be an integer in [1, {most}] (4 × this machine's {os.cpu_count() or 1} "
                         f"CPUs), got {threads}")


def _audit(args) -> int:
    """Exit status 0: every claim verified; 1: a claim refuted; 2: the code or the command failed to run; 3: no
    check failed but some were refused, so nothing was decided (never a pass, and not an error of the code)."""
    import torch

    threads = torch.get_num_threads()
    try:
        _check_threads(args.threads)
        torch.set_num_threads(args.threads)
        report = _run_audit(args)
    except (Exception, SystemExit) as exc:  # the audited code's sys.exit(0) was the process's exit status 0, no report
        if args.traceback:
            import traceback

            traceback.print_exc()
        if isinstance(exc, SystemExit):
            message = (f"the audited code raised SystemExit({exc.code!r}) (sys.exit) while it was imported or "
                       "called: nothing was checked")
        else:
            message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        print(f"kerneltheory audit: error: {_as_option(message, getattr(args, 'options', set()))}", file=sys.stderr)
        return 2
    finally:  # in-process callers get their thread count back
        torch.set_num_threads(threads)
    print(report)
    if report.status == "REFUSED":
        first = next(c for c in report.checks if not c.passed)
        print("kerneltheory audit: refused: no check failed, but some could not decide (never a pass); "
              f"the first: {first.name}: {first.detail}", file=sys.stderr)
        return 3
    return 0 if report.passed else 1


def plain(text: str | None) -> str | None:
    """Help text without reST markup: of an inline literal (double backquotes) or a cross-reference role
    (func, mod, class, ... with or without an explicit target) only the text is kept."""
    if text is None:
        return None
    text = re.sub(r":[a-z]+(?::[a-z]+)?:`~?([^`<]*?)\s*(?:<[^`>]*>)?`", r"\1", text)
    return re.sub(r"``([^`]*)``", r"\1", text)


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Strip reST markup from the descriptions and option help of ``parser`` and its subcommands."""
    parser.description = plain(parser.description)
    for action in parser._actions:
        action.help = plain(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = plain(choice.help)
            for sub in set(action.choices.values()):
                _plain_help(sub)


@functools.cache
def _summary(name: str) -> str:
    """One line on the experiment subcommand ``name`` for the top-level help, read from its module's docstring
    without importing the module (which imports torch); parsed once per process (every parser built asks again)."""
    spec = importlib.util.find_spec(f"kerneltheory.commands.{name}")
    doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))) or ""
    first = plain(" ".join(doc.split("\n\n")[0].split()))
    return first.split(": ", 1)[-1].rstrip(".") if first.startswith("kerneltheory ") else first.rstrip(".")


DESCRIPTION = """The theory of kernelized attention, executable: random-feature estimators next to the exact kernels
they estimate, every claim proved (proofs/) and checked by calibrated statistical tests.
'kerneltheory COMMAND --help' describes a command."""

EPILOG = """exit status of report and audit: 0 every claimed property held; 1 a claimed property FAILED (report:
or was refused, with --fail-on refused); 2 the command could not run (bad arguments, an error); 3 (audit) no
check failed, but some were refused, so nothing was decided; 130 interrupted (Ctrl-C; the report and the studies
resume from their cached results when run again); 141 the output's reader closed the pipe before the end (`| head`),
as for other Unix tools."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``kerneltheory``. ``command``: the subcommand about to run; the experiment subcommands
    other than it are listed by name and summary only, so that ``kerneltheory --help`` and ``kerneltheory
    report`` do not import what those need (torch and more). None builds every subcommand."""
    parser = argparse.ArgumentParser(prog="kerneltheory", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kerneltheory {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rep = sub.add_parser(
        "report", help="the main job: claim matrix, variance sweeps, attention theory and registry, as HTML, "
        "Markdown and JSON",
        description="Verify every registered estimator x claim with calibrated checks, run the quick variance "
        "sweeps, and write report.html (figures embedded), report.md and report.json under --out. Cached "
        "results are reused: an interrupted run resumes. Prints a summary: counts per verdict, the FAILED and "
        "refused cells with their evidence, and where the files are.",
        epilog="exit status: 0 every claimed property verified (refusals are listed, not counted, unless "
        "--fail-on refused); 1 a claimed property FAILED (or was refused, with --fail-on refused); "
        "2 the command could not run.",
    )
    rep.add_argument("--out", default="report", metavar="DIR", help="output directory (default: report)")
    rep.add_argument("--budget", choices=("quick", "thorough"), default="quick",
                     help="draws per check: quick (at most 4096, a refused check re-run on fresh draws up to "
                     "65536; default) or thorough (at most 65536)")
    rep.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    rep.add_argument("--alpha", type=float, default=1e-6,
                     help="total false-failure rate of each estimator's report, split across its checks "
                     "(default 1e-6)")
    rep.add_argument("--only", nargs="+", metavar="NAME",
                     help="verify only these estimators (registry names or aliases); skips the variance sweeps, the "
                     "attention error theory and the timings")
    rep.add_argument("--registry-only", action="store_true", help="write the registry table without verifying")
    rep.add_argument("--dim", type=int, default=16, help="dimension d of the registry table (default 16)")
    rep.add_argument("--num-features", type=int, default=64, help="m of the registry table (default 64)")
    rep.add_argument("--no-variance", action="store_true", help="skip the variance sweeps and their figures")
    rep.add_argument("--variance-scale", choices=("quick", "full"), default="quick",
                     help="scale of the variance sweeps (default quick)")
    rep.add_argument("--device", default="cpu", help="device of the variance sweeps: cpu (default) or cuda")
    rep.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="Dask scheduler of the sweeps: local:N or tcp://host:port (default: in process)")
    rep.add_argument("--fail-on", choices=tuple(FAIL_ON), default="failed",
                     help="which claimed verdicts give exit status 1: failed (FAILED only, default) or refused "
                     "(FAILED or refused)")
    rep.add_argument("--threads", type=int, default=1, metavar="N",
                     help="torch CPU threads (default 1: the report's tensors are small, so more threads spend CPU "
                          "time without saving wall time)")
    rep.add_argument("--quiet", action="store_true", help="no progress bars")
    rep.add_argument("--traceback", action="store_true", help="on an error, show the traceback (default: a "
                     "one-line message)")
    rep.set_defaults(func=_report)

    aud = sub.add_parser(
        "audit", help="verify the claims of an outside feature map, sampler or attention function",
        description="Verify the claims of an outside feature map (--kernel, --dim, --claims), frequency sampler "
        "(--sampler) or attention function (--attention, --dim) with calibrated checks; docs/auditing.md.",
        epilog="exit status: 0 every claim verified; 1 a claim refuted (FAILED); 2 the code or the command could not "
        "run (bad arguments, an error in the audited code); 3 no check failed but some were refused, so nothing was "
        "decided (a refusal is never a pass); 130 interrupted.",
    )
    aud.add_argument("factory", metavar="MODULE:FACTORY",
                     help="sample(generator) -> feature map (or a zero-argument factory returning it); with "
                     "--sampler, sample(generator) -> [m, d] frequencies; with --attention, attention(m, generator) -> "
                     "fn(q, k, v, mask=None); MODULE is a dotted module or a .py file")
    aud.add_argument("--kernel", help="exact kernel (required for a feature-map audit): softmax (exp(xᵀy)), gaussian, "
                     "arccos1, polynomial ((xᵀy)²; another degree or constant through MODULE:FUNCTION), exp_taylor2 "
                     "(1 + xᵀy + (xᵀy)²/2) or MODULE:FUNCTION (with "
                     "--attention: the reference attention's kernel, default softmax, which there is scaled "
                     "dot-product attention, exp(qᵀk/√d))")
    aud.add_argument("--sigma", type=float, default=1.0,
                     help="bandwidth of --kernel gaussian (default 1; refused with any other kernel)")
    aud.add_argument("--dim", type=int, help="input dimension d of the map")
    aud.add_argument("--claims", nargs="+", choices=(*CLAIM_CHOICES, "proportional"),
                     help="the properties to verify (required for a feature-map audit)")
    aud.add_argument("--variance", metavar="MODULE:FUNCTION", help="claimed variance(x, y) of one draw")
    aud.add_argument("--budget", choices=("quick", "thorough"),
                     help="draws per check of a feature-map audit: quick (at most 4096, default) or thorough (at most "
                     "65536)")
    aud.add_argument("--no-accept-early", action="store_true",
                     help="a feature-map audit draws to the budget unless a check rejects (for a sampler whose "
                     "behaviour may change after some number of calls: a warm-up, a schedule, a cache)")
    aud.add_argument("--alpha", type=float, default=1e-6, help="the report's total false-failure rate")
    aud.add_argument("--seed", type=int, default=0, help="base seed (default 0); the audited file is imported with "
                     "torch's, numpy's and random's global generators seeded from it")
    aud.add_argument("--global-rng", action="store_true",
                     help="FACTORY draws from torch's/numpy's global generators: draw() with no argument, or with "
                     "--attention attention(m)")
    aud.add_argument("--sampler", choices=("gaussian", "orthogonal"),
                     help="audit a frequency sampler against these claims (rows N(0, std²I); orthogonal blocks)")
    aud.add_argument("--draws", type=int, help="draws of the sampler checks (default 1024)")
    aud.add_argument("--std", type=float, help="claimed std of the frequencies (--sampler; default 1)")
    aud.add_argument("--redraws", action="store_true", help="--sampler: check that row norms change between draws")
    aud.add_argument("--attention", action="store_true", help="audit an attention function (check_attention)")
    aud.add_argument("--causal", action="store_true", help="--attention: the function claims causal attention")
    aud.add_argument("--no-mask", action="store_true", help="--attention: the function takes no key mask")
    aud.add_argument("--checks", nargs="+", choices=ATTENTION_CHECKS,
                     help="--attention: run only these checks (bias and precision are opt-in)")
    aud.add_argument("--dtypes", nargs="+", choices=("float32", "float64"),
                     help="--attention: the dtypes of the finiteness checks (default both): those the function accepts")
    aud.add_argument("--length", type=int, help="--attention: L of the statistical and exact checks (default 16)")
    aud.add_argument("--exact-length", type=int,
                     help="--attention: the exact rows (batch, padding, causality, order, precision) also run at "
                     "this L (default 513, past chunks of 64, 128, 256)")
    aud.add_argument("--long-length", type=int,
                     help="--attention: L of the finiteness checks, the order row's longest sequence and the longest "
                     "the causality row appends to (default 1024)")
    aud.add_argument("--output-dtype", choices=("bfloat16", "float16", "float32", "float64"),
                     help="--attention: the dtype the function computes its outputs in, for the exact rows' rounding "
                     "floor (default: read from the outputs)")
    aud.add_argument("--threads", type=int, default=1, metavar="N",
                     help="torch CPU threads (default 1: the checks' tensors are small, and more threads cost CPU "
                          "time without saving wall time; docs/auditing.md, Threads)")
    aud.add_argument("--traceback", action="store_true", help="show the traceback when the code fails to run")
    aud.set_defaults(func=_audit)

    from .commands import COMMANDS

    for name in COMMANDS:
        if command is None or name == command:
            importlib.import_module(f"kerneltheory.commands.{name}").register(sub)
        else:
            sub.add_parser(name, help=_summary(name), add_help=False)
    _plain_help(parser)
    return parser


def _command_options(parser: argparse.ArgumentParser, command: str) -> set[str]:
    """The long option strings of ``command``'s subparser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return {s for s in action.choices[command]._option_string_actions if s.startswith("--")}
    return set()


def _as_option(message: str, options: set[str]) -> str:
    """A library error naming a Python argument (``dim must be >= 1``) names the command-line option instead
    (``--dim must be >= 1``) when the command has that option."""
    match = re.match(r"([a-z][a-z_]*) (must|is|has)\b", message)
    if match and "--" + match.group(1).replace("_", "-") in options:
        return "--" + match.group(1).replace("_", "-") + message[len(match.group(1)):]
    return message


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else "")
    args = parser.parse_args(argv)
    args.options = _command_options(parser, args.command)
    original = warnings.formatwarning

    def plain(message, category, filename, lineno, line=None):  # the package's own warnings as one line, not code
        if issubclass(category, UserWarning) and Path(filename).resolve().is_relative_to(Path(__file__).parent):
            return f"kerneltheory {args.command}: warning: {message}\n"
        return original(message, category, filename, lineno, line)

    warnings.formatwarning = plain
    try:
        status = args.func(args)
        if sys.stdout is not None:  # None where stdout was closed before the start (`>&-`): nothing to flush
            sys.stdout.flush()  # a reader that closed the pipe is met here, not in the interpreter's last flush
        return status
    except BrokenPipeError:  # `| head` read what it wanted: no error line (the output was cut by its reader)
        try:  # the interpreter flushes stdout again at exit: point it at the null device
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, sys.stdout.fileno())
            finally:
                os.close(null)
        except (OSError, ValueError, AttributeError):  # a stdout without a descriptor (a test's capture)
            pass
        return 141  # 128 + SIGPIPE, the status of a Unix tool stopped by a closed pipe
    except (ValueError, TypeError, OSError) as exc:  # bad arguments, a bad config file, an unwritable --out
        message = _out_error(exc, getattr(args, "out", None)) or (
            str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}")
        message = _as_option(message, args.options)
        parser.exit(2, f"kerneltheory {args.command}: error: {message}\n")
    except KeyboardInterrupt:  # the studies cache their cells, so a rerun resumes; a benchmark or an audit starts over
        then = "" if args.command in ("bench", "audit") else "; run it again to resume from the cached results"
        parser.exit(130, f"kerneltheory {args.command}: interrupted{then}\n")
    finally:
        warnings.formatwarning = original


if __name__ == "__main__":
    raise SystemExit(main())
