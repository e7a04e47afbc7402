"""Subcommands of the ``kerneltheory`` CLI beyond ``report`` and ``audit``.

Each module here exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a function
``(args) -> int`` (the exit status). :data:`COMMANDS` lists the modules :mod:`kerneltheory.cli` loads.
"""

COMMANDS: tuple[str, ...] = ("bench", "sparsity", "train", "turing", "variance")
