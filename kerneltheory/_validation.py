"""Input validation shared by the whole package.

Every public function checks its arguments here and raises a :class:`ValueError` (or :class:`TypeError`)
that names the argument and the allowed range. Nothing is clamped or silently repaired.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from collections.abc import Callable
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


MIN_ALPHA = 1e-100  # a report splits its α over hundreds of checks and their looks: the shares stay normal floats


def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits_memory(nbytes: float, what: str, fix: str) -> None:
    """Refuse, before anything is allocated, a request whose data alone needs more than half of this machine's
    physical memory: a ValueError that says what needs it and which argument to change (``fix``), where the
    allocation would otherwise end in the allocator's error, or in swapping, far into the run."""
    total = physical_memory()
    if total is not None and nbytes > total / 2:
        raise ValueError(f"{what} needs about {nbytes / 2**30:.3g} GiB, more than half of this machine's "
                         f"{total / 2**30:.3g} GiB of memory: {fix}")


def check_alpha(value, name: str = "alpha") -> float:
    """A false-failure rate: a real number in [MIN_ALPHA, 1). Below MIN_ALPHA the levels a report splits it into
    (per check, per look, per pair) approach float64's underflow, where a level of 0 would refuse every check."""
    alpha = check_real(value, name, maximum=1.0, strict_max=True)
    if not alpha >= MIN_ALPHA:
        raise ValueError(f"{name} must be >= {MIN_ALPHA:g} (it is split over a report's checks and looks), got "
                         f"{alpha:g}")
    return alpha


def check_flag(value, name: str, *, allow_none: bool = False) -> bool | None:
    """A switch: True or False (or None where ``allow_none``); a string such as "no" is not read as True."""
    if not (isinstance(value, bool) or (allow_none and value is None)):
        raise TypeError(f"{name} must be True{', False or None' if allow_none else ' or False'}, got {value!r}")
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


def check_generator_device(generator: torch.Generator, device, what: str, *, allowed: bool) -> None:
    """A generator off the CPU is accepted only where ``allowed`` (``what`` draws through its generator's device)
    and only on ``what``'s own device type (``device``; None is the CPU); ``ValueError`` naming both otherwise."""
    if generator.device.type == "cpu":
        return
    if not allowed:
        raise ValueError(f"{what} draws from a CPU generator only, got a generator on {generator.device}")
    home = torch.device(device if device is not None else "cpu")
    if generator.device.type != home.type:
        raise ValueError(f"generator is on {generator.device} but {what} on {home}: a generator off the CPU must be "
                         "on the device of what it draws")


def check_points(x, name: str, *, dim: int | None = None, min_rank: int = 2) -> torch.Tensor:
    """Check a ``[..., n, d]`` floating tensor of finite points whose last dimension is ``dim``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must have dtype float32 or float64, got {x.dtype}")
    check_tensor_device(x, name)
    if x.dim() < min_rank:
        shape = "[..., n, d]" if min_rank >= 2 else "[..., d]"
        raise ValueError(
            f"{name} must have shape {shape} (at least {min_rank} dimensions), got {tuple(x.shape)}"
        )
    if dim is not None and x.shape[-1] != dim:
        raise ValueError(f"{name} must have last dimension d = {dim}, got {x.shape[-1]}")
    if not all_finite(x):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def all_finite(x: torch.Tensor) -> bool:
    """Whether every entry of the floating tensor ``x`` is finite, in one reduction: a sum is finite only if every
    term is (a NaN or an infinity makes it NaN or infinite); only when the sum is not finite (a non-finite entry,
    or finite entries whose sum overflows) does the elementwise test run, and it decides exactly."""
    if bool(torch.isfinite(x.detach().sum())):
        return True
    return bool(torch.isfinite(x).all())


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


def check_tensor_device(x: torch.Tensor, name: str) -> torch.Tensor:
    """Refuse tensors without data (the ``meta`` device): no value of theirs can be checked or computed."""
    if x.device.type == "meta":
        raise ValueError(
            f"{name} is on the meta device (a tensor without data); pass a tensor on 'cpu' or an available "
            "accelerator"
        )
    return x


def check_device(device, name: str = "device") -> torch.device:
    """``None`` (the CPU), ``"cpu"``, ``"cuda"``/``"cuda:i"`` (CUDA available, i < device count) or
    ``"mps"`` (MPS available), as a :class:`torch.device`. ``"meta"`` is refused: nothing can be computed
    on it."""
    if device is None:
        return torch.device("cpu")
    if not isinstance(device, str | torch.device):
        raise TypeError(f"{name} must be a str or torch.device such as 'cpu' or 'cuda', got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name} must name a device such as 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={str(device)!r} but CUDA is not available (torch.cuda.is_available() is False)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"{name}={str(device)!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return dev
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"{name}={str(device)!r} but MPS is not available")
        return dev
    raise ValueError(f"{name} must be 'cpu', 'cuda' (when available) or 'mps' (when available), got {device!r}")


def _max_norm(t: torch.Tensor) -> float:
    """The largest row norm of t (|t| for a scalar), in float64 and scaled so that it does not overflow."""
    t = t.detach().double()
    c = float(t.abs().max())
    if not (math.isfinite(c) and c > 0):
        return c
    return c * float((t / c).norm(dim=-1).max()) if t.dim() >= 1 else c


class NotRepresentableError(ValueError):
    """A value is not finite: it overflowed its dtype's range, or an argument already had (the overflow of
    an intermediate, when the function is called from another); a :class:`ValueError`."""


def representable(out, what: str, names: dict[str, object]) -> None:
    """Raise a ValueError when ``out`` (a tensor or a tuple of tensors) holds inf or NaN although every
    argument in ``names`` was finite: the value overflowed the floating-point range of its dtype.

    The message names the arguments (with their largest row norm), the dtype and its representable range
    (|value| ≤ finfo.max, that is exponents exp(t) with t ≤ log(finfo.max)). Nothing is clamped."""
    outs = out if isinstance(out, tuple | list) else (out,)
    for o in outs:
        if not isinstance(o, torch.Tensor) or not o.is_floating_point() or o.device.type == "meta":
            continue
        if bool(torch.isfinite(o).all()):
            continue
        for n, v in names.items():
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
                raise NotRepresentableError(f"{n} contains NaN or infinite values")
            if isinstance(v, float) and not math.isfinite(v):
                raise NotRepresentableError(f"{n} must be finite, got {v}")
        raise NotRepresentableError(overflow_message(what, o.dtype, names))


def overflow_message(what: str, dtype: torch.dtype, names: dict[str, object]) -> str:
    """The message of :class:`NotRepresentableError`: what overflowed, the arguments, the dtype's range."""
    fi = torch.finfo(dtype)
    args = ", ".join(
        f"{n} (max norm {_max_norm(v):.4g})" if isinstance(v, torch.Tensor) and v.numel() else n
        for n, v in names.items()
    )
    return (
        f"{what} is not finite: not representable in {dtype} at these inputs, it overflows (|value| must stay "
        f"≤ {fi.max:.4g}, exponents exp(t) need t ≤ {math.log(fi.max):.2f}) for {args}; use smaller "
        f"inputs{'' if fi.max >= torch.finfo(torch.float64).max else ' or float64'}"
    )


def finite_result(*arg_names: str, points: tuple[str, ...] = ()) -> Callable:
    """Decorator: the wrapped function's tensor result must be finite (see :func:`representable`); the
    error names the arguments ``arg_names`` of the call. The arguments named in ``points`` are first checked
    as ``[..., d]`` points (:func:`check_points`) sharing d; a shape mismatch among them (a RuntimeError from
    torch) becomes a ValueError naming them."""

    def wrap(fn: Callable) -> Callable:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as err:  # Python's own message names the function and an unknown keyword first
                fn(*args, **kwargs)
                raise TypeError(f"{fn.__name__}(): {err}") from err
            pts = [(n, check_points(bound.arguments.get(n), n, min_rank=1)) for n in points]
            for (n0, p0), (n1, p1) in zip(pts, pts[1:], strict=False):
                check_same_dim(p0, p1, (n0, n1))
            try:
                out = fn(*args, **kwargs)
            except RuntimeError as err:  # the points are checked: what is left is a shape mismatch
                if not pts:
                    raise
                shapes = ", ".join(f"{n} {tuple(p.shape)}" for n, p in pts)
                raise ValueError(f"{fn.__name__}: the shapes of {shapes} do not fit together ({err})") from err
            names = {n: bound.arguments.get(n) for n in arg_names}
            representable(out, f"{fn.__name__}({', '.join(arg_names)})", names)
            return out

        return inner

    return wrap
