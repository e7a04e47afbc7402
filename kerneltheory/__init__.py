"""kerneltheory: the theory of kernelized attention, executable.

Frequency laws (:mod:`kerneltheory.spectral`) × component functions (:mod:`kerneltheory.features`) make
random-feature estimators (:mod:`kerneltheory.estimators`) of exact kernels (:mod:`kerneltheory.kernels`);
their closed-form variances and optimal parameters live in :mod:`kerneltheory.theory`, their proofs in
``proofs/``.
"""

__version__ = "0.1.0"

__all__ = ["estimators", "kernels", "theory", "__version__"]


def __getattr__(name: str):
    """Import ``estimators``, ``kernels`` and ``theory`` on first use (PEP 562): they import torch, which the
    command line's help and the report's console need not wait for."""
    if name in ("estimators", "kernels", "theory"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
