"""Input validation shared by the whole package.

Every public function checks its arguments here and raises a :class:`ValueError` (or :class:`TypeError`)
that names the argument and the allowed range. Nothing is clamped or silently repaired.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch

FLOAT_DTYPES = (torch.float32, torch.float64)


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an ``int`` after checking its type and range."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_real(
    value,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_min: bool = False,
    strict_max: bool = False,
) -> float:
    """Return ``value`` as a finite ``float`` after checking its range (strict or not at each end)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if strict_min else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict_min else '>='} {minimum}, got {value}")
    if maximum is not None and (value >= maximum if strict_max else value > maximum):
        raise ValueError(f"{name} must be {'<' if strict_max else '<='} {maximum}, got {value}")
    return value


def check_dtype(dtype, name: str = "dtype") -> torch.dtype:
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be torch.float32 or torch.float64, got {dtype}")
    return dtype


def check_generator(generator, name: str = "generator") -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{name} must be a torch.Generator (all randomness is explicit; seed one with "
            f"torch.Generator().manual_seed(seed)), got {type(generator).__name__}"
        )
    return generator


def check_points(x, name: str, *, dim: int | None = None, min_rank: int = 2) -> torch.Tensor:
    """Check a ``[..., n, d]`` floating tensor of finite points whose last dimension is ``dim``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must have dtype float32 or float64, got {x.dtype}")
    if x.dim() < min_rank:
        shape = "[..., n, d]" if min_rank >= 2 else "[..., d]"
        raise ValueError(
            f"{name} must have shape {shape} (at least {min_rank} dimensions), got {tuple(x.shape)}"
        )
    if dim is not None and x.shape[-1] != dim:
        raise ValueError(f"{name} must have last dimension d = {dim}, got {x.shape[-1]}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_same_dim(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("x", "y")) -> None:
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must share the last dimension d, got {x.shape[-1]} and {y.shape[-1]}"
        )


def generator_for(seed: int | torch.Generator | None, name: str = "seed") -> torch.Generator:
    """Turn a seed into a CPU generator (a generator passes through). ``None`` is refused: be explicit."""
    if isinstance(seed, torch.Generator):
        return seed
    seed = check_int(seed, name, minimum=0)
    return torch.Generator().manual_seed(seed)


def pairwise(x: torch.Tensor, y: torch.Tensor, sign: float = 1.0) -> torch.Tensor:
    """``x[..., i, None, :] + sign * y[..., None, j, :]``: the ``[..., n, n', d]`` tensor of sums or differences."""
    return x.unsqueeze(-2) + sign * y.unsqueeze(-3)
