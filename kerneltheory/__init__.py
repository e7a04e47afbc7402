"""kerneltheory: the theory of kernelized attention, executable.

Frequency laws (:mod:`kerneltheory.spectral`) × component functions (:mod:`kerneltheory.features`) make
random-feature estimators (:mod:`kerneltheory.estimators`) of exact kernels (:mod:`kerneltheory.kernels`);
their closed-form variances and optimal parameters live in :mod:`kerneltheory.theory`, their proofs in
``proofs/``.
"""

__version__ = "0.1.0"

from . import estimators, kernels, theory  # noqa: E402

__all__ = ["estimators", "kernels", "theory", "__version__"]
