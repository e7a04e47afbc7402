"""``kerneltheory sparsity [--scale quick|full] [--out DIR]``: the sparsity study (experiments/sparsity.py)."""

from ._scripts import register_script


def register(subparsers) -> None:
    register_script(subparsers, "sparsity", "how estimators cope with peaked attention (docs/sparsity.md)")
