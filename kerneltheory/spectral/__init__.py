"""Frequency laws: distributions over the rows ω_i of a frequency matrix W ∈ R^{m×d} (MATH.md §3).

Every law is a :class:`SpectralLaw` with ``sample(num_features, generator, batch=None)`` and, where a closed
form exists, ``char_fn``/``mgf``; :data:`LAWS` maps each registry name to its class.
"""

from .base import ClosedFormUnavailable, SpectralLaw
from .countsketch import CountSketch
from .discrete import GeometricLaw, PoissonLaw
from .fastfood import Fastfood
from .fastfood_learnable import LearnableFastfood
from .gauss_hermite import GaussHermite
from .gaussian import Gaussian
from .generative import Generative
from .hadamard import fwht, hadamard_matrix, next_power_of_two
from .mixture import GaussianMixture
from .moment_matched import MomentMatched
from .orthogonal import Orthogonal
from .qmc import QuasiMonteCarlo
from .simplex import Simplex, SimplexPlus
from .sorf import SORF

LAWS: dict[str, type[SpectralLaw]] = {
    law.name: law
    for law in (
        Gaussian,
        Orthogonal,
        SORF,
        Fastfood,
        LearnableFastfood,
        QuasiMonteCarlo,
        MomentMatched,
        GaussHermite,
        GaussianMixture,
        Generative,
        PoissonLaw,
        GeometricLaw,
        Simplex,
        SimplexPlus,
        CountSketch,
    )
}

__all__ = [
    "LAWS",
    "SORF",
    "ClosedFormUnavailable",
    "CountSketch",
    "Fastfood",
    "GaussHermite",
    "Gaussian",
    "GaussianMixture",
    "Generative",
    "GeometricLaw",
    "LearnableFastfood",
    "MomentMatched",
    "Orthogonal",
    "PoissonLaw",
    "QuasiMonteCarlo",
    "Simplex",
    "SimplexPlus",
    "SpectralLaw",
    "fwht",
    "hadamard_matrix",
    "next_power_of_two",
]
