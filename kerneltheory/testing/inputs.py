"""Input families for checks (CONVENTIONS.md: "not only random Gaussian directions").

Each family is a pair of ``[P, d]`` float64 tensors (x_p, y_p). Norms are chosen per purpose: unbiasedness
and variance checks stay where the fourth moment of exponential features is moderate (‖x‖, ‖y‖ ≤ ``radius``,
MATH.md §4: ‖z‖² ≲ 2), while positivity and finiteness are checked up to norm 10.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._validation import check_int, check_real


@dataclass(frozen=True)
class InputFamily:
    name: str
    x: torch.Tensor
    y: torch.Tensor

    @property
    def size(self) -> int:
        return self.x.shape[0]


def _unit(gen: torch.Generator, n: int, d: int) -> torch.Tensor:
    u = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return u / u.norm(dim=-1, keepdim=True)


def moderate_families(
    dim: int, generator: torch.Generator, *, radius: float = 0.7, pairs: int = 8
) -> list[InputFamily]:
    """Families for mean and variance checks, every point of norm ≤ ``radius``.

    directions (random directions, random norms in [radius/4, radius]), axes (±e_i against e_j),
    collinear (y = c·x), anti-collinear (y = −c·x), zero (x = 0 against random y, and 0 against 0).
    """
    d = check_int(dim, "dim", minimum=1)
    r = check_real(radius, "radius", minimum=0.0, strict_min=True)
    p = check_int(pairs, "pairs", minimum=1)
    norms = lambda n: r * (0.25 + 0.75 * torch.rand(n, 1, generator=generator, dtype=torch.float64))  # noqa: E731
    fams = [InputFamily("directions", _unit(generator, p, d) * norms(p), _unit(generator, p, d) * norms(p))]
    eye = torch.eye(d, dtype=torch.float64)
    i = torch.arange(min(p, d))
    j = (i + 1) % d
    sign = torch.where(i % 2 == 0, 1.0, -1.0).to(torch.float64)[:, None]
    fams.append(InputFamily("axes", r * sign * eye[i], r * eye[j]))
    u = _unit(generator, p, d)
    c = 0.25 + 0.75 * torch.rand(p, 1, generator=generator, dtype=torch.float64)
    fams.append(InputFamily("collinear", r * u, r * c * u))
    fams.append(InputFamily("anti-collinear", r * u, -r * c * u))
    zero = torch.zeros(2, d, dtype=torch.float64)
    fams.append(
        InputFamily(
            "zero", zero, torch.cat([torch.zeros(1, d, dtype=torch.float64), r * _unit(generator, 1, d)])
        )
    )
    return fams


def extreme_points(dim: int, generator: torch.Generator, *, max_norm: float = 10.0) -> torch.Tensor:
    """Points for positivity/finiteness: 0, tiny and large norms up to ``max_norm``, axes ±e_i, random directions."""
    d = check_int(dim, "dim", minimum=1)
    big = check_real(max_norm, "max_norm", minimum=0.0, strict_min=True)
    norms = torch.tensor([0.0, 1e-6, 1e-3, 0.1, 1.0, 3.0, big / 2, big], dtype=torch.float64)[:, None]
    u = _unit(generator, norms.shape[0], d)
    eye = torch.eye(d, dtype=torch.float64)[: min(d, 4)]
    return torch.cat([u * norms, big * eye, -big * eye, big * _unit(generator, 4, d)])
