"""``kerneltheory bench [attention|engine|fastfood|all]``: run the benchmarks of :mod:`kerneltheory.bench`.

Writes ``<name>.parquet`` (tidy, one row per timed repeat), ``<name>.png`` (seaborn), ``<name>.json`` (the
summary with the ratios) and ``<name>.txt`` (the printed table) under ``--out`` (default
``./kerneltheory-results/bench``; ``--regenerate``: the committed ``experiments/bench`` of a source checkout),
each atomically, and prints the tables. Every ratio is against a baseline measured in the same run.
``--scale smoke`` is for tests (tiny sizes, meaningless timings); ``quick`` keeps each benchmark to a few
minutes on a small CPU; ``full`` is the sweep for a quiet machine or a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from ..experiments.study import OutputLock, add_output_arguments, output_dir

CHOICES = ("attention", "engine", "fastfood", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..bench import SCALES

    parser.add_argument("which", nargs="?", choices=CHOICES, default="all", metavar="BENCHMARK",
                        help=f"benchmark to run: {', '.join(CHOICES)} (default: all)")
    parser.add_argument("--scale", choices=SCALES, default="quick", help="problem sizes (default: quick)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    add_output_arguments(parser, "bench")
    parser.add_argument("--repeats", type=int, help="timed repeats per configuration (default: per scale)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads during the run (default: 1)")
    parser.add_argument("--memory-cap-gib", type=float, help="attention: memory cap for softmax's n×n scores")
    parser.add_argument("--time-cap", type=float, help="attention: per-call time cap (s) for quadratic methods")
    parser.add_argument("--seed", type=int, default=0, help="seed of inputs and draws (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run_command(args: argparse.Namespace) -> int:
    from ..bench import BENCHMARKS, GiB, _stderr, resolve_device, run

    resolve_device(args.device)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    names = tuple(BENCHMARKS) if args.which == "all" else (args.which,)
    common = {"seed": args.seed} | ({"repeats": args.repeats} if args.repeats is not None else {})
    overrides = {name: dict(common) for name in names}
    if "attention" in overrides:
        if args.memory_cap_gib is not None:
            if args.memory_cap_gib <= 0:
                raise ValueError(f"--memory-cap-gib must be > 0, got {args.memory_cap_gib}")
            overrides["attention"]["memory_cap"] = int(args.memory_cap_gib * GiB)
        if args.time_cap is not None:
            if args.time_cap <= 0:
                raise ValueError(f"--time-cap must be > 0, got {args.time_cap}")
            overrides["attention"]["time_cap"] = args.time_cap
    out = output_dir("bench", args.out, regenerate=args.regenerate)
    with OutputLock(out):
        results = run(names, scale=args.scale, device=args.device, out=out, threads=args.threads,
                      log=None if args.quiet else _stderr, **overrides)
    for name, res in results.items():
        print(f"\n## {name} ({args.scale}, {args.device}, torch threads {torch.get_num_threads()})")
        print(res.table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(json.dumps(_headline(name, res.summary), default=str))
        print(f"wrote {', '.join(str(p) for p in res.paths.values())}", file=sys.stderr)
    return 0


def _headline(name: str, s: dict) -> dict:
    """The ratios of a summary, for the terminal."""
    if name == "attention":
        return {"exponents": {m: round(e["exponent"], 3) if e["exponent"] is not None else None
                              for m, e in s["exponents"].items()},
                "crossover_n": s["crossover_n_linear_faster"], "stopped": s["stopped"]}
    if name == "engine":
        return {"engine/gemm": {f"d={t['dim']},m={t['num_features']},P={t['pairs']}": round(t["ratio"], 3)
                                for t in s["throughput"]},
                "speedup_vs_loop": [round(v["speedup_vs_loop"], 1) for v in s["vs_loop"]],
                "speedup_vs_rbf": [round(v["speedup_vs_rbf"], 1) for v in s["vs_loop"]]}
    return {"crossover_d": s["crossover_d"], "crossover_m": s["crossover_m"]}


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand to the ``kerneltheory`` parser."""
    parser = subparsers.add_parser("bench", help="benchmarks: attention, moment engine, Fastfood",
                                   description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.set_defaults(func=run_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``kerneltheory bench`` on its own (for tests and before the integrator wires it into the CLI)."""
    parser = argparse.ArgumentParser(prog="kerneltheory bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_command(args)
    except ValueError as exc:
        parser.exit(2, f"kerneltheory bench: error: {exc}\n")


if __name__ == "__main__":
    raise SystemExit(main())
