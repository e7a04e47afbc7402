"""The attention benchmark (docs/benchmarks.md): a thin wrapper of ``kerneltheory bench attention``.

    python experiments/bench_attention.py --scale quick --device cpu --out experiments/bench
"""

import sys

from kerneltheory.commands.bench import main

if __name__ == "__main__":
    raise SystemExit(main(["attention", *sys.argv[1:]]))
