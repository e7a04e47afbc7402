"""Which reference laws a component accepts (shared by GERF/OPRF/SADERF and ReLU).

A component whose target comes from transforms only an isotropic Gaussian has (the tilted MGF of GERF, the
arc-cosine kernel of ReLU) checks the law's *reference*: laws whose rows are marginally that Gaussian (ORF,
Fastfood, QMC, ...) name it as their reference and are accepted; laws with no closed form (reference None:
learnable Fastfood, generative) are accepted too, their target being a Monte Carlo reference.
"""

from __future__ import annotations

from ..spectral.base import SpectralLaw


def isotropic_gaussian_reference(law: SpectralLaw | None) -> bool:
    """Whether ``law``'s reference is N(0, std² I) (zero mean, isotropic covariance)."""
    ref = getattr(law, "reference", None)
    return (
        ref is not None
        and bool(getattr(ref, "isotropic", False))
        and bool(getattr(ref, "rows_marginally_gaussian", False))
        and hasattr(ref, "std")
    )


def standard_gaussian_reference(law: SpectralLaw | None) -> bool:
    """Whether ``law``'s reference is exactly N(0, I)."""
    return isotropic_gaussian_reference(law) and law.reference.std == 1.0
