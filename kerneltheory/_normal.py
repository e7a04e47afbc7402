"""Standard normal draws for the package's own samplers (spectral laws, Fastfood, sketches).

On a CPU generator, ``torch.randn`` in float64 costs about 13 ns a normal (a scalar Box–Muller loop), against about
3 ns for a float64 uniform: it was the largest single cost of ``kerneltheory report``. :func:`standard_normal`
draws the same law by a vectorised Box–Muller transform that spends float64 where the distribution needs it and
float32 where it does not:

* the radius R = √(−2 log(1 − U)) from a float64 uniform U on the 53-bit grid {k 2⁻⁵³}, so |Z| reaches
  √(106 log 2) ≈ 8.57, as with ``torch.randn``'s float64 normals (a float32 uniform, 24 bits, would cut the tail at
  ≈ 5.8 and bias exponential features);
* the angle Θ = 2π V from a float32 uniform V on the grid {k 2⁻²⁴}, with cos and sin in float32: cos Θ and sin Θ
  are within δ < 1.2·10⁻⁶ of those of an exactly uniform angle, so each draw is within δR of the coordinate of a
  normal pair with the same radius and an exact direction (proofs/normal_sampler.md states and proves the bound).

The float64 ``log1p`` of the radius runs in PyTorch's vectorised kernels, which the AVX2 and AVX-512 builds share:
the draws are bitwise the same on every x86-64 machine that runs them, but under ``ATEN_CPU_CAPABILITY=default``
(scalar kernels) about 4 % of the radii differ in their last bit (``torch.randn``'s scalar loop does not depend on
it; other architectures are not verified).

The grid point V = 0 is read as V = 2⁻²⁵ (Θ = fl₃₂(2π·2⁻²⁵)): otherwise sin Θ = 0 would make that pair's second
normal exactly 0 with probability 2⁻²⁴, an atom the exact law does not have (cos Θ is never exactly 0 in float32).
The sampler checks' magnitude test scores |z| by Φ⁻¹, −∞ at 0, and refused a correct law at a fraction of a percent
of random seeds (tests/test_sampler_checks.py::test_correct_laws_pass). Every other draw is unchanged, and the moved
point is nearer every exact angle of its cell than 0 was (proofs/normal_sampler.md).

Each pair (U, V) gives two independent normals R cos Θ and R sin Θ. The result is a deterministic function of the
generator's state: the first ⌈n/2⌉ float64 uniforms, then ⌈n/2⌉ float32 uniforms, for n normals; the cosines fill
the first half and the sines the second (the first n kept). About 2.4× faster than ``torch.randn`` at the sizes the
report draws (``python experiments/bench/normal_sampler.py``). Fewer than :data:`MIN_TRANSFORM` normals, and draws on
other devices, come from ``torch.randn`` in float64 (Box–Muller in float64 from 53-bit uniforms: the same radius, an
angle exact to float64 rounding).
"""

from __future__ import annotations

import math
from numbers import Integral

import torch

_TWO_PI = 2.0 * math.pi
#: Θ for the grid point V = 0, read as V = 2⁻²⁵ (fl₃₂(2π·2⁻²⁵), half a grid step in): no normal is exactly 0
_NEAR_ZERO = float(torch.tensor(_TWO_PI * 2.0**-25, dtype=torch.float32))
#: pairs transformed at a time: the temporaries of one block stay in cache (large draws were memory-bound)
_BLOCK = 1 << 16
#: fewer normals than this come from ``torch.randn``: the transform's fixed cost (about 20 µs a call, a dozen
#: tensor operations) exceeds what it saves below about 3000 normals
MIN_TRANSFORM = 3072


def box_muller(u: torch.Tensor, v: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """The transform of :func:`standard_normal`: ``[R cos Θ, R sin Θ]`` (length 2h) for h float64 uniforms ``u``
    in [0, 1) and h float32 uniforms ``v`` in [0, 1), R = √(−2 log(1 − u)), Θ = 2π v computed in float32 (v = 0 read
    as 2⁻²⁵).

    ``u`` is overwritten (it holds R afterwards); ``out`` (float64, length 2h) receives the result if given.
    """
    if u.dtype != torch.float64 or v.dtype != torch.float32:
        raise TypeError(f"u must be float64 and v float32, got {u.dtype} and {v.dtype}")
    if u.dim() != 1 or u.shape != v.shape:
        raise ValueError(f"u and v must be 1-d of one length, got shapes {tuple(u.shape)} and {tuple(v.shape)}")
    h = u.shape[0]
    if out is None:
        out = torch.empty(2 * h, dtype=torch.float64, device=u.device)
    elif out.dtype != torch.float64 or out.shape != (2 * h,):
        raise ValueError(f"out must be float64 of shape ({2 * h},), got {out.dtype} {tuple(out.shape)}")
    first, second = out[:h], out[h:]
    theta = torch.empty(min(h, _BLOCK), dtype=torch.float32, device=u.device)
    for s in range(0, h, _BLOCK):
        e = min(h, s + _BLOCK)
        r = u[s:e].neg_().log1p_().mul_(-2.0).sqrt_()
        t = torch.mul(v[s:e], _TWO_PI, out=theta[: e - s])
        t.clamp_(min=_NEAR_ZERO)  # V = 0: sin Θ would be exactly 0 (module docstring); V ≥ 2⁻²⁴ stays
        torch.cos(t, out=first[s:e]).mul_(r)
        torch.sin(t, out=second[s:e]).mul_(r)
    return out


def standard_normal(shape, generator: torch.Generator) -> torch.Tensor:
    """iid N(0, 1) draws of ``shape`` (an int or a sequence of ints ≥ 0) in float64 on ``generator``'s device (see
    the module docstring)."""
    shape = (shape,) if isinstance(shape, Integral) else tuple(shape)
    if any(isinstance(s, bool) or not isinstance(s, Integral) or s < 0 for s in shape):
        raise ValueError(f"shape must be integers >= 0, got {shape}")
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)
    if generator.device.type != "cpu" or n < MIN_TRANSFORM:
        return torch.randn(shape, generator=generator, dtype=torch.float64, device=generator.device)
    h = (n + 1) // 2
    u = torch.rand(h, generator=generator, dtype=torch.float64)
    v = torch.rand(h, generator=generator, dtype=torch.float32)
    return box_muller(u, v)[:n].view(shape)
