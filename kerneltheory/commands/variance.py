"""``kerneltheory variance``: the variance sweeps, empirical against closed form (docs/variance.md).

    kerneltheory variance [--scale quick|full] [--only FIGURE ...] [--config FILE_OR_DIR ...] [--out DIR | --regenerate]
                          [--device cpu|cuda] [--rng cpu|device] [--draws R] [--block B] [--seed S]
                          [--scheduler local:N|tcp://host:port] [--shard-blocks K] [--list] [--write-configs DIR]

Every figure writes ``<out>/<figure>.parquet`` (tidy) and ``<out>/<figure>.png``; cells are cached under
``<out>/cells/`` and an interrupted run resumes where it stopped. ``<out>`` defaults to
``./kerneltheory-results/variance``; ``--regenerate`` rewrites the committed ``experiments/variance`` of a source
checkout from its configurations ``experiments/configs/[0-9][0-9]_*.toml``.
``--draws 100000000 --device cuda --rng device`` streams 10⁸ draws per point through the moment engine on a GPU,
the frequencies drawn there too.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..experiments.runner import SCHEDULER_HELP, check_scheduler
from ..experiments.study import add_output_arguments, output_dir, source_checkout
from . import check_device


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--scale", choices=("quick", "full"), default="quick", help="sweep scale (default quick)")
    p.add_argument("--only", nargs="+", metavar="FIGURE", help="run only these figures (see --list)")
    p.add_argument(
        "--config",
        nargs="+",
        metavar="PATH",
        help="figure configurations (.toml/.json files or directories); default: the shipped ones",
    )
    add_output_arguments(p, "variance")
    p.add_argument("--cells", default=None, help="cell cache directory (default <out>/cells)")
    p.add_argument("--device", default="cpu", help="torch device of the draws: cpu (default) or cuda[:i]")
    p.add_argument(
        "--rng",
        choices=("cpu", "device"),
        default="cpu",
        help="where the frequencies are drawn: cpu (default; the same draws on every machine with AVX2 or "
        "AVX-512) or device (on the GPU with --device cuda: another stream, reproducible on the same GPU type and "
        "torch version)",
    )
    p.add_argument(
        "--draws", type=int, default=None, help="draws R per point, overriding the scale's (≤ 10^8+)"
    )
    p.add_argument("--block", type=int, default=None, help="draws per RNG block, overriding the scale's")
    p.add_argument("--seed", type=int, default=None, help="base seed of every figure (default: the config's)")
    p.add_argument(
        "--scheduler", default=None, metavar="ADDRESS", help=f"run on Dask distributed: {SCHEDULER_HELP}"
    )
    p.add_argument(
        "--shard-blocks",
        type=int,
        default=None,
        help="RNG blocks per distributed task (default: one task per cell)",
    )
    p.add_argument(
        "--checkpoint-seconds",
        type=float,
        default=30.0,
        help="seconds between checkpoints inside a cell (default 30)",
    )
    p.add_argument("--no-plot", action="store_true", help="write the parquet tables only")
    p.add_argument("--list", action="store_true", help="list the figures and exit")
    p.add_argument(
        "--write-configs", metavar="DIR", help="write the configurations as TOML files to DIR and exit"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _configs(args):
    from ..experiments import default_configs, load_configs

    if args.config:
        configs = load_configs(args.config)
    elif args.regenerate and source_checkout() is not None:  # the committed configurations, numbered
        configs = load_configs(sorted((source_checkout() / "experiments" / "configs").glob("[0-9][0-9]_*.toml")))
    else:
        configs = default_configs()
    if args.seed is not None:
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
        configs = [dataclasses.replace(c, seed=args.seed) for c in configs]
    return configs


def run(args) -> int:
    from ..experiments import run_sweeps, summary_table, to_toml
    from ..experiments.runner import plan
    from ..io import write_text_atomic
    from ..report import markdown_table

    configs = _configs(args)
    if args.list:
        for c in configs:
            print(f"{c.name}: {c.title} ({len(c.series)} series, scales {', '.join(c.scales)})")
        return 0
    if args.write_configs:
        for i, c in enumerate(configs, 1):  # numbered, so a directory loads in this order
            path = write_text_atomic(Path(args.write_configs) / f"{i:02d}_{c.name}.toml", to_toml(c))
            print(f"wrote {path}", file=sys.stderr)
        return 0
    device = check_device(args.device)
    if args.rng == "device" and device == "cpu":
        raise ValueError(
            "--rng device draws the frequencies on the GPU: it needs --device cuda (on the CPU use --rng cpu)"
        )
    check_scheduler(args.scheduler)
    if args.shard_blocks is not None and args.shard_blocks < 1:
        raise ValueError(f"--shard-blocks must be an integer >= 1, got {args.shard_blocks}")
    if not args.checkpoint_seconds >= 0 or args.checkpoint_seconds == float("inf"):
        raise ValueError(f"--checkpoint-seconds must be a finite number >= 0, got {args.checkpoint_seconds}")
    for c in configs:  # --draws, --block and --scale checked before the output folder is made
        plan(c, args.scale, draws=args.draws, block=args.block, device=device, rng=args.rng)
    out = output_dir("variance", args.out, regenerate=args.regenerate)
    results = run_sweeps(
        configs,
        scale=args.scale,
        out_dir=out,
        scheduler=args.scheduler,
        only=args.only,
        cells_dir=args.cells,
        device=device,
        rng=args.rng,
        draws=args.draws,
        block=args.block,
        shard_blocks=args.shard_blocks,
        progress=not args.quiet,
        plot=not args.no_plot,
        checkpoint_seconds=args.checkpoint_seconds,
    )
    for r in results:
        files = ", ".join(str(p) for p in (r.parquet, r.png) if p is not None)
        print(
            f"## {r.config.name} ({r.seconds:.1f} s; {r.computed} cells computed, {r.cached} reused from the cache, "
            f"an earlier figure's or run's): {files}"
        )
        print()
        print(markdown_table(summary_table(r.summary), list(summary_table(r.summary)[0])))
        print()
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``variance`` to the ``kerneltheory`` subcommands."""
    p = subparsers.add_parser(
        "variance",
        help="variance sweeps: empirical against closed form, with figures",
        description=__doc__.split("\n\n")[0],
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def main(argv: list[str] | None = None, **defaults) -> int:
    """``kerneltheory variance`` as a stand-alone command (``defaults`` override option defaults, e.g.
    ``config=["my_configs"]``)."""
    parser = add_arguments(argparse.ArgumentParser(prog="kerneltheory variance", description=__doc__))
    parser.set_defaults(**defaults)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ValueError as exc:
        parser.exit(2, f"kerneltheory variance: error: {exc}\n")
