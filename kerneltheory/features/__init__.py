"""Component functions φ(x) = f(Wx, x) (MATH.md §2) and drawn feature maps.

Every component derives its target kernel from the frequency law's closed forms (:meth:`Component.target`);
:data:`COMPONENTS` maps each registry name to its class.
"""

from .base import Component, FeatureMap, IncompatibleLaw, draw_feature_map
from .dense_exp import ADERF, SDERF
from .dirf import GeomRF, PoisRF
from .elu import EluPlusOne
from .feedforward import Feedforward
from .gerf import GERF, OPRF, SADERF
from .hedgehog import Hedgehog
from .hybrid import HRF
from .hyperbolic import Hyperbolic
from .positive import Positive
from .relu import ReLU, arccos1
from .sketch import PolySketch, TensorSketch
from .taylor import Based, ReBased
from .trig import Trig
from .trig_phase import TrigPhase

COMPONENTS: dict[str, type[Component]] = {
    c.name: c
    for c in (
        Trig,
        TrigPhase,
        Positive,
        Hyperbolic,
        GERF,
        OPRF,
        SADERF,
        PoisRF,
        GeomRF,
        ReLU,
        EluPlusOne,
        Feedforward,
        Hedgehog,
        SDERF,
        ADERF,
        HRF,
        Based,
        ReBased,
        TensorSketch,
        PolySketch,
    )
}

__all__ = [
    "ADERF",
    "COMPONENTS",
    "GERF",
    "HRF",
    "OPRF",
    "SADERF",
    "SDERF",
    "Based",
    "Component",
    "EluPlusOne",
    "FeatureMap",
    "Feedforward",
    "GeomRF",
    "Hedgehog",
    "Hyperbolic",
    "IncompatibleLaw",
    "PoisRF",
    "PolySketch",
    "Positive",
    "ReBased",
    "ReLU",
    "TensorSketch",
    "Trig",
    "TrigPhase",
    "arccos1",
    "draw_feature_map",
]
