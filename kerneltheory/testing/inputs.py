"""Input families for checks (CONVENTIONS.md: "not only random Gaussian directions").

Each family is a pair of ``[P, d]`` float64 tensors (x_p, y_p), or, for a *cross* family, one sequence X of
L points whose L² pairs (X_i, X_j) are all tested (query i against key j), so a defect that depends on the
position of a row in the sequence (a per-position parameter) shows. Families:

* :func:`moderate_families` — random directions, axes, collinear, anti-collinear and zero pairs, every point of
  norm ≤ ``radius`` (where the fourth moment of exponential features is moderate, MATH.md §4);
* :func:`direction_families` — the spread directions a random draw rarely visits: the all-ones diagonal
  (1,…,1)/√d, every axis ±e_i, and pairs that stress the first and the last coordinate;
* :func:`norm_family` — pairs whose points all have one norm r, for the norm sweeps (the radii are chosen per
  map and kernel by a pilot run, :func:`kerneltheory.testing.verify.sweep_radii`);
* :func:`cross_family` — one sequence, all L² pairs;
* :func:`extreme_points` — points for positivity and finiteness, up to norm 10;
* :func:`user_families` — a user's own ``inputs=[(x, y), ...]``, validated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._validation import check_int, check_points, check_real


@dataclass(frozen=True)
class InputFamily:
    """Pairs (x_p, y_p) of one kind; with ``cross=True``, ``x`` is a sequence and every pair (x_i, x_j) is tested
    (``y`` is then the same tensor)."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    cross: bool = False

    @property
    def size(self) -> int:
        return self.x.shape[0] ** 2 if self.cross else self.x.shape[0]

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The tested pairs as two ``[size, d]`` tensors (row i·L + j of a cross family is (x_i, x_j))."""
        if not self.cross:
            return self.x, self.y
        n = self.x.shape[0]
        return self.x.repeat_interleave(n, 0), self.x.repeat(n, 1)

    def labels(self) -> list[str]:
        if self.cross:
            n = self.x.shape[0]
            return [f"{self.name}[q{i}, k{j}]" for i in range(n) for j in range(n)]
        return [f"{self.name}[{i}]" for i in range(self.size)]


def user_families(inputs, dim: int, *, min_pairs: int = 1) -> list[InputFamily]:
    """The families ``inputs[i]`` of a user's list of ``(x, y)`` pairs of ``[P, d]`` tensors (float64 copies on the
    CPU, detached), P ≥ ``min_pairs``; a ``TypeError``/``ValueError`` names the bad entry. ``None`` gives []."""
    if inputs is None:
        return []
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"inputs must be a list of (x, y) pairs of [P, d] tensors, got {type(inputs).__name__}")
    families = []
    for i, pair in enumerate(inputs):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ValueError(f"inputs[{i}] must be an (x, y) pair of [P, d] tensors")
        x = check_points(pair[0], f"inputs[{i}][0]", dim=dim).detach().to(torch.float64).cpu()
        y = check_points(pair[1], f"inputs[{i}][1]", dim=dim).detach().to(torch.float64).cpu()
        if x.shape != y.shape or x.dim() != 2 or x.shape[0] < min_pairs:
            raise ValueError(
                f"inputs[{i}] must hold two tensors of one shape [P, d] with P ≥ {min_pairs}, got "
                f"{tuple(x.shape)}, {tuple(y.shape)}"
            )
        families.append(InputFamily(f"inputs[{i}]", x, y))
    return families


def _available_bytes() -> int | None:
    """The memory this machine has available now (Linux: MemAvailable of /proc/meminfo), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


FAMILY_VECTORS = 6  # d-vectors per dimension the built-in families hold at once: two identities, the axes ±e_i (2d)
# against e_i/2 (2d)


def check_families_fit(dim: int) -> None:
    """Raise a ValueError naming ``dim`` where the built-in input families (every axis ±e_i against e_i/2, beside
    two d × d identities: about :data:`FAMILY_VECTORS`·d² float64 numbers) would not fit in the memory this machine
    has available, instead of an allocator error deep inside the check. Nothing is checked where the available memory
    is unknown."""
    need, have = FAMILY_VECTORS * 8 * dim * dim, _available_bytes()
    if have is not None and need > have:
        raise ValueError(f"dim = {dim}: the built-in input families hold every axis ±e_i of R^d against e_i/2 (2d "
                         f"pairs of d-vectors, about {need / 2**30:.3g} GiB of float64), and this machine has "
                         f"{have / 2**30:.3g} GiB available; audit the map at its head dimension")


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


def direction_families(dim: int, *, radius: float = 0.5) -> list[InputFamily]:
    """Deterministic spread directions at norm ``radius``.

    diagonal: u = (1,…,1)/√d against u/2, −u/2 and e_1; axes ±e_i: for every i, +r e_i and −r e_i against r e_i/2
    (collinear and anti-collinear along each axis), so a sampler biased on one coordinate or one sign is seen;
    first/last: r e_1 against r e_d, r e_d against r e_d/2, and r(e_1 + e_d)/√2 against r(e_1 − e_d)/√2.
    Collinear partners have half the norm, so ‖x + y‖ ≤ 1.5r: at r = 0.5 the eighth moment of exponential
    features stays moderate enough for the variance check.
    """
    d = check_int(dim, "dim", minimum=1)
    r = check_real(radius, "radius", minimum=0.0, strict_min=True)
    eye = torch.eye(d, dtype=torch.float64)
    u = torch.full((d,), 1 / d**0.5, dtype=torch.float64)
    diag = InputFamily("diagonal", r * torch.stack([u, u, u]), r * torch.stack([u / 2, -u / 2, eye[0]]))
    axes = InputFamily("axes ±e_i", r * torch.cat([eye, -eye]), r * torch.cat([eye, eye]) / 2)
    first, last = eye[0], eye[-1]
    mix_p, mix_m = (first + last) / 2**0.5, (first - last) / 2**0.5
    if d == 1:
        mix_p, mix_m = first, -first
    ends = InputFamily(
        "first/last", r * torch.stack([first, last, mix_p]), r * torch.stack([last, last / 2, mix_m])
    )
    return [diag, axes, ends]


def norm_family(dim: int, generator: torch.Generator, radius: float, *, pairs: int = 6) -> InputFamily:
    """``pairs`` pairs with ‖x‖ = ‖y‖ = ``radius``: half in random directions, then collinear, then anti-collinear."""
    d = check_int(dim, "dim", minimum=1)
    r = check_real(radius, "radius", minimum=0.0, strict_min=True)
    p = check_int(pairs, "pairs", minimum=3)
    h = p - 2 * (p // 3)
    u = _unit(generator, p, d)
    v = torch.cat([_unit(generator, h, d), u[h : h + p // 3], -u[h + p // 3 :]])
    return InputFamily(f"‖x‖ = ‖y‖ = {r:g}", r * u, r * v)


def cross_family(dim: int, generator: torch.Generator, *, length: int = 6, radius: float = 0.5) -> InputFamily:
    """A sequence of ``length`` points of norms in [radius/4, radius] (random directions, the first one along e_1
    and the last one along −e_d), tested on all length² (query, key) pairs."""
    d = check_int(dim, "dim", minimum=1)
    n = check_int(length, "length", minimum=2)
    r = check_real(radius, "radius", minimum=0.0, strict_min=True)
    u = _unit(generator, n, d)
    u[0] = torch.eye(d, dtype=torch.float64)[0]
    u[-1] = -torch.eye(d, dtype=torch.float64)[-1]
    norms = r * (0.25 + 0.75 * torch.rand(n, 1, generator=generator, dtype=torch.float64))
    x = u * norms
    return InputFamily("cross", x, x, cross=True)


EXTREME_GRID = 64  # norms of extreme_points between 0 and max_norm, evenly spaced


def extreme_points(dim: int, generator: torch.Generator, *, max_norm: float = 10.0) -> torch.Tensor:
    """Points for positivity/finiteness: 0, tiny norms (10⁻⁶ … 10⁻²), a grid of EXTREME_GRID norms evenly spaced
    from ``max_norm``/EXTREME_GRID to ``max_norm`` (each in its own random direction), axes ±e_i at ``max_norm``
    and random directions there. A defect confined to a band of norms narrower than the grid's step
    (``max_norm``/EXTREME_GRID) can fall between the points: the rows say what they probed, not every norm."""
    d = check_int(dim, "dim", minimum=1)
    big = check_real(max_norm, "max_norm", minimum=0.0, strict_min=True)
    grid = torch.arange(1, EXTREME_GRID + 1, dtype=torch.float64) * (big / EXTREME_GRID)
    norms = torch.cat([torch.tensor([0.0, 1e-6, 1e-4, 1e-2], dtype=torch.float64), grid])[:, None]
    u = _unit(generator, norms.shape[0], d)
    eye = torch.eye(d, dtype=torch.float64)  # every axis (the first four only let a defect along e_5 … e_d pass)
    return torch.cat([u * norms, big * eye, -big * eye, big * _unit(generator, 4, d)])
