"""The engine benchmark (docs/benchmarks.md): a thin wrapper of ``kerneltheory bench engine``.

    python experiments/bench_engine.py --scale quick --device cpu --out experiments/bench
"""

import sys

from kerneltheory.commands.bench import main

if __name__ == "__main__":
    raise SystemExit(main(["engine", *sys.argv[1:]]))
