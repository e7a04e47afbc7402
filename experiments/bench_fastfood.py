"""The fastfood benchmark (docs/benchmarks.md): a thin wrapper of ``kerneltheory bench fastfood``.

    python experiments/bench_fastfood.py --scale quick --device cpu --out experiments/bench
"""

import sys

from kerneltheory.commands.bench import main

if __name__ == "__main__":
    raise SystemExit(main(["fastfood", *sys.argv[1:]]))
