"""Regenerate the variance figures: ``python experiments/variance.py [--scale quick|full] [options]``.

A thin wrapper around ``kerneltheory variance`` (same options) that reads the committed configurations in
``experiments/configs/`` and writes ``experiments/variance/<figure>.{parquet,png}``. The cell cache
(``experiments/variance/cells/``) makes a second run, or an interrupted one, resume where it stopped.
"""

import sys
from pathlib import Path

from kerneltheory.commands.variance import main

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    configs = [str(p) for p in sorted((HERE / "configs").glob("[0-9][0-9]_*.toml"))]  # the numbered figures
    sys.exit(main(sys.argv[1:], config=configs, out=str(HERE / "variance")))
