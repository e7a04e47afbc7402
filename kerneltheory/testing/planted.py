r"""Planted defects: random feature maps with a defect of controllable size, for power studies of the checks.

Each factory returns ``sample(generator, batch=None)`` for :func:`~kerneltheory.testing.check_feature_map`:
positive random features for the softmax kernel, φ(x) = exp(ωᵀx − ‖x‖²/2)/√m with ω ~ N(0, I_d) (FAVOR+,
proofs/positive_unbiased.md), or trigonometric features for the Gaussian kernel, φ(x) = (cos ωᵀx, sin ωᵀx)/√m
(proofs/trig_unbiased.md). ``size = 0`` is the correct map; the defects are the ones real code has:

* ``scale`` — every feature multiplied by √(1 + size) (the estimate by 1 + size);
* ``bandwidth`` — frequencies (1 + size)·ω;
* ``norm law`` — ω = ρ·u with u uniform on the sphere and ρ = (1 − size)·χ_d + size·√d, i.e. norms pulled
  towards the constant √d (at size 1, a sampler that normalises the rows);
* ``sign bias`` — the first coordinate of ω made positive with probability ``size`` (a per-coordinate bias);
* ``coupling`` — ρ multiplied by (1 + size·sign(u₁))/√(1 + size²): the norms depend on the direction (E‖ω‖²
  unchanged);
* ``per position`` — the key features of row i of the input multiplied by exp(size·(−1)^i): a per-position
  parameter.

These are tools for the meta-tests and the power table (docs/power.md); they are not estimators.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .._validation import check_int, check_real

DEFECTS = ("scale", "bandwidth", "norm law", "sign bias", "coupling", "per position")

__all__ = ["DEFECTS", "planted_map"]


def _frequencies(g: torch.Generator, shape: tuple[int, ...], defect: str, size: float) -> torch.Tensor:
    w = torch.randn(*shape, generator=g, dtype=torch.float64)
    d = shape[-1]
    if defect == "bandwidth":
        return w * (1 + size)
    if defect in ("norm law", "coupling"):
        rho = w.norm(dim=-1, keepdim=True)
        u = w / rho
        if defect == "norm law":
            return u * ((1 - size) * rho + size * math.sqrt(d))
        return u * rho * (1 + size * torch.sign(u[..., :1])) / math.sqrt(1 + size**2)
    if defect == "sign bias":
        flip = torch.rand(*shape[:-1], generator=g, dtype=torch.float64) < size
        w[..., 0] = torch.where(flip, w[..., 0].abs(), w[..., 0])
    return w


def planted_map(
    defect: str, size: float, *, dim: int, num_features: int = 64, component: str = "positive"
) -> Callable[..., object]:
    """``sample(generator, batch=None)`` for a map with the planted ``defect`` of relative ``size``.

    ``component`` is ``"positive"`` (softmax kernel, :func:`kerneltheory.kernels.softmax`) or ``"trig"``
    (Gaussian kernel of σ = 1, :func:`kerneltheory.kernels.gaussian`). With ``batch=r`` the functions map
    ``[n, d] → [r, n, D]``. The ``per position`` defect returns a ``(query_fn, key_fn)`` pair.
    """
    if defect not in DEFECTS:
        raise ValueError(f"defect must be one of {DEFECTS}, got {defect!r}")
    if component not in ("positive", "trig"):
        raise ValueError(f"component must be 'positive' or 'trig', got {component!r}")
    s = check_real(size, "size", minimum=0.0)
    if defect in ("sign bias", "norm law") and s > 1:
        raise ValueError(f"size of the {defect!r} defect must be in [0, 1], got {s}")
    d = check_int(dim, "dim", minimum=1)
    m = check_int(num_features, "num_features", minimum=1)
    scale = math.sqrt(1 + s) if defect == "scale" else 1.0

    def sample(g: torch.Generator, batch: int | None = None):
        shape = (m, d) if batch is None else (batch, m, d)
        w = _frequencies(g, shape, defect, s)

        def phi(x: torch.Tensor) -> torch.Tensor:
            proj = x @ w.transpose(-1, -2)
            if component == "positive":
                out = torch.exp(proj - (x * x).sum(-1, keepdim=True) / 2)
            else:
                out = torch.cat([torch.cos(proj), torch.sin(proj)], -1)
            return scale * out / math.sqrt(m)

        if defect != "per position":
            return phi

        def key(x: torch.Tensor) -> torch.Tensor:
            sign = 1.0 - 2.0 * (torch.arange(x.shape[0], dtype=torch.float64) % 2)
            return phi(x) * torch.exp(s * sign)[:, None]

        return phi, key

    return sample
