"""The numbers quoted in proofs/sampler_independence.md (items 6 and 7) and docs/auditing.md, recomputed.

Run from the repository root (about 5 s of CPU):

    OMP_NUM_THREADS=1 python experiments/samplers/quoted_numbers.py experiments/samplers/quoted_numbers.json

* ``tie_bound``: :func:`kerneltheory.testing.sampler_rounding.tie_bound` at d = 8, σ = 1, per format.
* ``tie_rate``: the rate at which the norms of two independent float32 N(0, I_8) rows, rounded to the format,
  tie under :func:`~kerneltheory.testing.sampler_rounding.tie_tolerance`'s rule (200 000 pairs, generator seed 0;
  the rule of tests/test_sampler_audit_fixes.py::test_the_tie_bound_holds).
* ``favor_variance``: the variance of the FAVOR+ (positive features) estimate of exp(xᵀy), d = 8, m = 16,
  ‖x‖ = ‖y‖ = 0.7, for ORF and for Haar blocks sharing one χ_8 norm per block: Monte Carlo over 20 000 draws of
  each sampler from one generator seeded 0 (x, y drawn from it first), beside the closed forms of the two laws
  (ORF: :func:`kerneltheory.theory.orf_positive_variance`; one norm per block has the iid variance,
  :func:`kerneltheory.theory.softmax_positive_variance`, proofs/orthogonal_variance.md item 1).
"""

from __future__ import annotations

import json
import os
import tempfile

import torch

from kerneltheory import theory
from kerneltheory.features.positive import Positive
from kerneltheory.testing.sampler_rounding import tie_bound, tie_tolerance

D, M, PAIRS, DRAWS, NORM = 8, 16, 200_000, 20_000, 0.7
FORMATS = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def tie_rates() -> dict:
    out = {}
    for name, fmt in FORMATS.items():
        g = torch.Generator().manual_seed(0)
        a, b = (torch.randn(PAIRS, D, generator=g).to(fmt).double().norm(dim=-1) for _ in range(2))
        delta, c = tie_tolerance(fmt, D)
        rate = float(((b - a).abs() <= delta * a + c).double().mean())
        out[name] = {"tie_bound": tie_bound(fmt, D, 1.0), "tie_rate": rate}
    return out


def _haar(g: torch.Generator, r: int) -> torch.Tensor:
    q, rr = torch.linalg.qr(torch.randn(r, M // D, D, D, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(rr, dim1=-2, dim2=-1)).unsqueeze(-2)  # Haar: rows of q.mT, columns here


def favor_variance() -> dict:
    g = torch.Generator().manual_seed(0)
    x, y = (NORM * torch.nn.functional.normalize(torch.randn(1, D, generator=g, dtype=torch.float64), dim=-1)
            for _ in range(2))
    blocks = _haar(g, DRAWS).mT  # [R, blocks, d, d], orthonormal rows
    own = torch.randn(DRAWS, M // D, D, D, generator=g, dtype=torch.float64).norm(dim=-1)  # a χ_d norm per row
    shared = torch.randn(DRAWS, M // D, 1, D, generator=g, dtype=torch.float64).norm(dim=-1)  # one per block
    comp = Positive()
    out = {}
    for name, norms in (("orf", own), ("one_norm_per_block", shared)):
        w = (blocks * norms.unsqueeze(-1)).reshape(DRAWS, M, D)
        e = comp.pair_estimates(x, y, w, {}, {})[:, 0]
        out[name] = {"monte_carlo": float(e.var())}
    out["orf"]["closed_form"] = float(theory.orf_positive_variance(x, y, M)[0])
    out["one_norm_per_block"]["closed_form"] = float(theory.softmax_positive_variance(x, y, M)[0])
    out["cos_angle"] = float((x * y).sum() / NORM**2)
    return out


def main(path: str) -> None:
    torch.set_num_threads(1)
    result = {"d": D, "m": M, "ties": tie_rates(), "favor_variance": favor_variance()}
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)) or ".")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, path)  # atomic
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="quoted_numbers.json", help="JSON file to write (atomically)")
    main(parser.parse_args().out)
