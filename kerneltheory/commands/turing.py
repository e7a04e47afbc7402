"""``kerneltheory turing [--scale quick|full] [--out DIR]``: minimal β against T and success against m for the
kernelized Turing constructions (experiments/turing_beta.py; proofs/turing.md)."""

from ._scripts import register_script


def register(subparsers) -> None:
    register_script(subparsers, "turing", "kernelized Turing constructions: minimal beta against T, success against m")
