"""Component functions and drawn feature maps.

A *component* turns a frequency matrix W (rows ω_i) and an input x into features, φ(x) = f(Wx, x)
(MATH.md §2). It knows which kernel it estimates *in terms of the law's closed forms* (MATH.md §1,
proofs/one_rule.md): :meth:`Component.target` receives the law (its reference law) and derives the Gram
matrix from ψ or M, so no (component, law) pair has a hand-written target.

A :class:`FeatureMap` is one draw: the component with W (and any extra randomness such as phases) fixed.
``fm(x)``, ``fm.query(x)`` and ``fm.key(x)`` map ``[..., n, d]`` to ``[..., n, D]``. W may carry leading
batch dimensions (R independent draws, or one draw per head) that broadcast against those of x.

Data-dependent maps (OPRF, SADERF) compute statistics from the queries *and* keys of a sequence; call
``fm.bind(queries, keys)`` (or ``fm.pair(queries, keys)``) first, so both sides share one parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from .._validation import (
    all_finite,
    check_generator,
    check_generator_device,
    check_int,
    check_points,
    representable,
)
from ..spectral.base import ClosedFormUnavailable, SpectralLaw

Side = str  # "query" or "key"


class IncompatibleLaw(ValueError):
    """A (component, law) pair that has no meaning, e.g. GERF with a Gaussian-mixture law."""


class Component(nn.Module):
    """Base class of component functions.

    Attributes:
        name: registry name (``"trig"``, ``"positive"``, ...).
        positive: whether every feature is strictly positive for every input (a claim, proved in :attr:`proofs`).
        requires_law: False for deterministic maps (elu+1, feedforward, Hedgehog).
        data_dependent: True when features depend on statistics of the whole sequence (OPRF, SADERF).
        pairwise_statistics: True when every statistic has the shape ``[1, k]`` (the sequence dimension −2 reduced)
            and the features broadcast it along that dimension, so that a stack ``[n, k]`` gives each input its
            own fit (OPRF, SADERF; not the dense DERFs, whose statistics are matrices).
        symmetric: True when queries and keys use the same map.
        proofs: claim name → proof file.
        device_generator: whether :meth:`draw_extra` (when it draws anything) accepts a generator off the CPU.
    """

    name: ClassVar[str] = "component"
    positive: ClassVar[bool] = False
    requires_law: ClassVar[bool] = True
    data_dependent: ClassVar[bool] = False
    pairwise_statistics: ClassVar[bool] = False
    symmetric: ClassVar[bool] = True
    proofs: ClassVar[Mapping[str, str]] = {}
    device_generator: ClassVar[bool] = False

    # -- structure --------------------------------------------------------------------------------
    def feature_dim(self, num_features: int) -> int:
        """D, the output dimension, for m frequencies (m for most maps, 2m for paired ones)."""
        return num_features

    def check_law(self, law: SpectralLaw | None) -> None:
        """Raise :class:`IncompatibleLaw` if this component has no meaning with ``law``."""
        if self.requires_law and law is None:
            raise IncompatibleLaw(f"the {self.name} component needs a frequency law")
        if not self.requires_law and law is not None:
            raise IncompatibleLaw(f"the {self.name} component is deterministic and takes no frequency law")

    # -- randomness beyond W ----------------------------------------------------------------------
    def draw_extra(
        self, num_features: int, generator: torch.Generator, batch: int | None, dtype, device
    ) -> dict[str, torch.Tensor]:
        """Extra random quantities of one draw (e.g. the phases b of trig-with-phase). Default: none.

        With ``batch`` given, every tensor carries the batch of draws as its *first* dimension (draw i's
        quantities are ``t[i]``): the moment engine slices draws along it.
        """
        return {}

    # -- data dependence --------------------------------------------------------------------------
    def statistics(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Statistics of the query sequence x and key sequence y shared by both sides (OPRF's A*)."""
        return {}

    # -- features ---------------------------------------------------------------------------------
    def features(self, x: torch.Tensor, w: torch.Tensor | None, extra: Mapping, stats: Mapping, side: Side):
        """φ(x) for ``x`` of shape ``[..., n, d]`` and ``w`` of shape ``[..., m, d]``: returns ``[..., n, D]``."""
        raise ClosedFormUnavailable(f"{type(self).__name__} defines no features")

    def pair_width(self, num_features: int) -> int:
        """How many values one (draw, pair) holds while :meth:`pair_estimates` runs, for m frequencies: the moment
        engine sizes its chunks by it. Default: D or m, whichever is larger (the features, the projections)."""
        return max(self.feature_dim(num_features), num_features)

    def pair_estimates(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, extra: Mapping,
                       stats: Mapping) -> torch.Tensor:
        """φ_query(x_p)ᵀφ_key(y_p) for the pairs (x_p, y_p) of ``x``, ``y`` ``[..., q, d]``: ``[..., q]`` (leading
        dimensions, the draws of W, broadcast). Default: the dot product of the two sides' features. A map whose
        estimate has a cheaper expression overrides it (HRF, PolySketch: the same value up to float64 rounding,
        tests/test_pair_estimates.py)."""
        return torch.linalg.vecdot(self.features(x, w, extra, stats, "query"), self.features(y, w, extra, stats, "key"))

    def log_features(self, x, w, extra, stats, side: Side) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log|φ(x)|, sign φ(x))``. Exponential maps override this to stay finite where φ itself overflows;
        attention uses it for the legal stabilisers of MATH.md §5, and may update the returned log|φ| in place: an
        override returns a tensor computed by the call (never its input or a stored tensor)."""
        phi = self.features(x, w, extra, stats, side)
        return torch.log(phi.abs()), torch.sign(phi)

    def estimate_bound(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """B_p with |φ(x_p)ᵀφ(y_p)| ≤ B_p for every draw, for pairs ``x``, ``y`` of shape ``[P, d]``; None when the
        estimate is unbounded. A bound enables the exact (Hoeffding) unbiasedness test."""
        return None

    # -- theory -----------------------------------------------------------------------------------
    def target(
        self, law: SpectralLaw | None, x: torch.Tensor, y: torch.Tensor, stats: Mapping
    ) -> torch.Tensor:
        """The kernel E[φ(x)ᵀφ(y)] as a ``[..., n, n']`` Gram matrix, derived from ``law``'s closed forms."""
        raise ClosedFormUnavailable(f"the {self.name} component has no closed-form target")

    def target_name(self, law: SpectralLaw | None) -> str:
        """A short human-readable name of the target kernel for ``law`` (for tables)."""
        return "E[φ(x)ᵀφ(y)]"

    def variance(
        self, law: SpectralLaw | None, x: torch.Tensor, y: torch.Tensor, num_features: int, stats: Mapping
    ) -> torch.Tensor:
        """Var[φ(x)ᵀφ(y)] of one draw with m iid frequencies, from kerneltheory.theory."""
        raise ClosedFormUnavailable(f"the {self.name} component has no closed-form variance")

    def has_variance(self, law: SpectralLaw | None) -> bool:
        """Whether :meth:`variance` has a closed form for ``law``."""
        return False


class FeatureMap:
    """One draw of a random feature map: a component with its frequencies (and extra randomness) fixed.

    ``w`` has shape ``[..., m, d]`` (None for deterministic maps). Calling the map on ``x`` of shape
    ``[..., n, d]`` returns ``[..., n, D]`` in the dtype of ``x``.
    """

    def __init__(
        self,
        component: Component,
        w: torch.Tensor | None,
        extra: Mapping[str, torch.Tensor] | None = None,
        *,
        dim: int,
        num_features: int,
        stats: Mapping[str, torch.Tensor] | None = None,
    ):
        self.component = component
        self.w = w
        self.extra = dict(extra or {})
        self.dim = dim
        self.num_features = num_features
        self.stats = None if stats is None else dict(stats)

    @property
    def feature_dim(self) -> int:
        return self.component.feature_dim(self.num_features)

    @property
    def symmetric(self) -> bool:
        return self.component.symmetric and not self.component.data_dependent

    @property
    def needs_binding(self) -> bool:
        return self.component.data_dependent and self.stats is None

    def _prepare(self, x: torch.Tensor, name: str):
        x = check_points(x, name, dim=self.dim)
        if self.needs_binding:
            raise ValueError(
                f"the {self.component.name} map is data-dependent: call .bind(queries, keys) or "
                ".pair(queries, keys) so that both sides share one parameter"
            )
        w = None if self.w is None else self.w.to(device=x.device, dtype=x.dtype)
        extra = {k: v.to(device=x.device, dtype=x.dtype) for k, v in self.extra.items()}
        stats = self.stats or {}
        return x, w, extra, stats

    def bind(self, x: torch.Tensor, y: torch.Tensor) -> FeatureMap:
        """Fix the sequence statistics from queries ``x`` and keys ``y`` (a no-op for data-free maps)."""
        if not self.component.data_dependent:
            return self
        x = check_points(x, "queries", dim=self.dim)
        y = check_points(y, "keys", dim=self.dim)
        stats = self.component.statistics(x, y)
        return FeatureMap(
            self.component, self.w, self.extra, dim=self.dim, num_features=self.num_features, stats=stats
        )

    def query(self, x: torch.Tensor) -> torch.Tensor:
        x, w, extra, stats = self._prepare(x, "x")
        return self._finite(self.component.features(x, w, extra, stats, "query"), x)

    def key(self, x: torch.Tensor) -> torch.Tensor:
        x, w, extra, stats = self._prepare(x, "x")
        return self._finite(self.component.features(x, w, extra, stats, "key"), x)

    def _finite(self, phi: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """φ(x), or a ValueError naming x when the features overflowed (use log_query/log_key, or linear
        attention's stabilise=True, which never forms them unstabilised)."""
        if not all_finite(phi):  # one sum in the common case; the elementwise test only when it is not finite
            representable(phi, f"the {self.component.name} features φ(x)", {"x": x})
        return phi

    def log_query(self, x: torch.Tensor):
        x, w, extra, stats = self._prepare(x, "x")
        return self.component.log_features(x, w, extra, stats, "query")

    def log_key(self, x: torch.Tensor):
        x, w, extra, stats = self._prepare(x, "x")
        return self.component.log_features(x, w, extra, stats, "key")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.component.symmetric:
            raise ValueError(
                f"the {self.component.name} map differs between queries and keys: use .query(x) and .key(x)"
            )
        return self.query(x)

    def pair(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(φ_query(x), φ_key(y)), binding sequence statistics first where the map needs them."""
        bound = self.bind(x, y)
        return bound.query(x), bound.key(y)

    def estimate(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The kernel estimate φ(x)ᵀφ(y) as a ``[..., n, n']`` Gram matrix."""
        fx, fy = self.pair(x, y)
        return fx @ fy.transpose(-1, -2)

    def __repr__(self) -> str:
        shape = None if self.w is None else tuple(self.w.shape)
        return f"FeatureMap({self.component.name}, w={shape}, D={self.feature_dim})"


def draw_feature_map(
    component: Component,
    law: SpectralLaw | None,
    num_features: int,
    generator: torch.Generator,
    batch: int | None = None,
    *,
    dim: int,
    dtype=torch.float64,
    device=None,
) -> FeatureMap:
    """Draw W from ``law`` (and the component's extra randomness) and wrap it as a :class:`FeatureMap`."""
    m = check_int(num_features, "num_features", minimum=1)
    check_generator(generator)
    extra_random = type(component).draw_extra is not Component.draw_extra
    check_generator_device(generator, device, f"the {component.name} component",
                           allowed=component.device_generator or not extra_random)
    w = None if law is None else law.sample(m, generator, batch=batch)
    extra = component.draw_extra(m, generator, batch, dtype, device)
    return FeatureMap(component, w, extra, dim=dim, num_features=m)


def unit_sign(logs: torch.Tensor) -> torch.Tensor:
    """The sign of a positive map's features, +1 everywhere, as a broadcast view of one element: nothing of the
    size of ``logs`` is written (a consumer multiplies by it; writing into it in place raises)."""
    return logs.new_ones(()).expand_as(logs)


def sq_norm(x: torch.Tensor) -> torch.Tensor:
    """‖x‖² over the last dimension, keeping it: ``[..., n, 1]``."""
    return (x * x).sum(-1, keepdim=True)


def project(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Wx (+ b) for every row: ``[..., n, d] × [..., m, d] (+ [..., m]) → [..., n, m]`` (leading dimensions
    broadcast); the bias b, one value per frequency, is added inside the product.

    For one set of points ``[n, d]`` against a batch of small draws ``[c, m, d]`` (the moment engine's case,
    n·m·d ≤ 2¹⁶) this is one ``[n, d] × [d, c·m]`` product returned as a ``[c, n, m]`` view of its
    ``[n, c, m]`` result, instead of c small batched products: the same dot products, with one kernel call
    instead of c. Larger draws use the batched product, whose contiguous output keeps the elementwise work
    that follows fast.
    """
    if x.dim() == 2 and w.dim() == 3 and x.shape[0] * w.shape[1] * w.shape[2] <= 2**16:
        c, m, d = w.shape
        flat = w.reshape(c * m, d).T
        u = x @ flat if bias is None else torch.addmm(bias.reshape(c * m), x, flat)
        return u.view(x.shape[0], c, m).transpose(0, 1)
    u = x @ w.transpose(-1, -2)
    return u if bias is None else u.add_(bias.unsqueeze(-2))
