"""The SORF bias quoted in proofs/structured_bias.md (item 3) and the README, recomputed.

Run from the repository root (about 10 s of CPU):

    OMP_NUM_THREADS=1 python experiments/sorf_bias.py experiments/sorf_bias.json

For d = 8, 16, 32, 64, 128: trig features with SORF frequencies, m = d, σ = 1
(``E.get("trig/sorf", d, d, weighted=False)``), estimate e^{−‖τ‖²/2} at ‖τ‖ = 1 (x = τ, y = 0) for six directions
of τ (e_1, the diagonal and four uniform directions drawn from a generator seeded 0), over 4·10⁵/d draws from a
generator seeded d. Recorded per d: each direction's bias (mean estimate − e^{−1/2}) and its standard error, their
median, d times the median, and the bias of a row of fixed norm √d in a uniform direction,
Γ(d/2)(2/a)^{d/2−1}J_{d/2−1}(a) − e^{−1/2} with a = √d (the part of the bias that SORF's deterministic row norm
explains; proofs/structured_bias.md item 1).
"""

from __future__ import annotations

import json
import math
import os
import tempfile

import torch
from scipy import special

import kerneltheory.estimators as E

DIMS, DRAWS, CHUNK = (8, 16, 32, 64, 128), 400_000, 5_000


def directions(d: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    rand = torch.nn.functional.normalize(torch.randn(4, d, generator=g, dtype=torch.float64), dim=-1)
    axis = torch.zeros(1, d, dtype=torch.float64)
    axis[0, 0] = 1.0
    diagonal = torch.full((1, d), d**-0.5, dtype=torch.float64)
    return torch.cat([axis, diagonal, rand])


def fixed_norm_bias(d: int) -> float:
    a = math.sqrt(d)
    nu = d / 2 - 1
    return math.exp(math.lgamma(d / 2) + nu * math.log(2 / a)) * float(special.jv(nu, a)) - math.exp(-0.5)


def one_dim(d: int) -> dict:
    est = E.get("trig/sorf", d, d, weighted=False)
    x = directions(d)
    y = torch.zeros_like(x)
    g = torch.Generator().manual_seed(d)
    total, total_sq, n = torch.zeros(x.shape[0], dtype=torch.float64), torch.zeros(x.shape[0], dtype=torch.float64), 0
    while n < DRAWS // d:
        r = min(CHUNK, DRAWS // d - n)
        e = est.sample_estimates(x, y, g, r)
        total += e.sum(0)
        total_sq += (e * e).sum(0)
        n += r
    mean = total / n
    se = ((total_sq / n - mean**2) * n / (n - 1) / n).sqrt()
    bias = mean - math.exp(-0.5)
    median = float(bias.median())
    return {"d": d, "draws": n, "bias": bias.tolist(), "standard_error": se.tolist(), "median_bias": median,
            "d_times_median": d * median, "fixed_norm_bias": fixed_norm_bias(d)}


def main(out: str) -> None:
    records = [one_dim(d) for d in DIMS]
    for r in records:
        print(f"d = {r['d']:3d}: median bias {r['median_bias']:+.4f} (max SE {max(r['standard_error']):.1e}), "
              f"d·bias {r['d_times_median']:+.3f}, fixed-norm part {r['fixed_norm_bias']:+.4f}")
    folder = os.path.dirname(os.path.abspath(out))
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as f:
        json.dump({"records": records}, f, indent=1)
    os.replace(f.name, out)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="JSON file to write (atomically)")
    main(parser.parse_args().out)
