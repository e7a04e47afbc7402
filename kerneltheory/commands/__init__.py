"""Subcommands of the ``kerneltheory`` CLI beyond ``report`` and ``audit``.

Each module here exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a function
``(args) -> int`` (the exit status). :data:`COMMANDS` lists the modules :mod:`kerneltheory.cli` loads.
"""

COMMANDS: tuple[str, ...] = ("bench", "sparsity", "train", "turing", "variance")


def check_device(device: str) -> str:
    """``--device`` of a command: ``cpu`` or ``cuda[:i]`` (CUDA only when torch sees it); a ``ValueError``
    naming the option otherwise. Returns the canonical device string."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device must be cpu or cuda[:i], got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda[:i], got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch.cuda.is_available() is False")
    return str(dev)
