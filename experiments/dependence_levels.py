"""The levels of the between-blocks dependence test on tied estimates, quoted in proofs/verification.md, item 13(g).

    OMP_NUM_THREADS=1 python experiments/dependence_levels.py experiments/dependence_levels.json

For each law (iid Bernoulli(0.12, 0.3, 0.5), Binomial(16, 0.3), Poisson(0.5): estimates with few values, none taking
more than 90 % of the draws) and each segment layout (32 blocks of 64, the fresh draws of
:func:`kerneltheory.testing.dependence.fresh_blocks`; two blocks of 256 split 64 plain + 192 batched, a mixed
sampler's first look), 20 000 columns of iid draws go through
:func:`~kerneltheory.testing.dependence.between_segments_p`; the counts of p-values below 10⁻², 10⁻³, 10⁻⁴ and 10⁻⁵
are written beside their expectations (a calibrated test rejects at most α′ of them). Then the repeated-draws
rule's refusals of 100 000 runs of 256 independent draws uniform on K values each, K = 16 … 1024 (ties from dense to
sparse). Seeded; about a minute of CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import torch

from kerneltheory.testing.checks import CheckResult
from kerneltheory.testing.dependence import (
    FRESH_BLOCKS,
    FRESH_SIZE,
    _repeated_draws,
    between_segments_p,
    block_segments,
)

LEVELS = (1e-2, 1e-3, 1e-4, 1e-5)
COLUMNS = 20_000
REPEAT_RUNS = 100_000


def main(out: str) -> dict:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    laws = {
        "bernoulli(0.12)": lambda n: (torch.rand(n, COLUMNS, generator=g) < 0.12).double(),
        "bernoulli(0.3)": lambda n: (torch.rand(n, COLUMNS, generator=g) < 0.3).double(),
        "bernoulli(0.5)": lambda n: (torch.rand(n, COLUMNS, generator=g) < 0.5).double(),
        "binomial(16, 0.3)": lambda n: (torch.rand(n, COLUMNS, 16, generator=g) < 0.3).sum(-1).double(),
        "poisson(0.5)": lambda n: torch.poisson(torch.full((n, COLUMNS), 0.5), generator=g).double(),
    }
    fresh = FRESH_BLOCKS * FRESH_SIZE
    layouts = {f"{FRESH_BLOCKS} blocks of {FRESH_SIZE}": (fresh, block_segments(fresh, [FRESH_SIZE] * FRESH_BLOCKS)),
               "2 blocks of 256, 64 plain + 192 batched": (512, block_segments(512, [256] * 2,
                                                                               lambda r: [r // 4, r - r // 4]))}
    rows = []
    for law, draw in laws.items():
        for layout, (n, (sizes, paths)) in layouts.items():
            p = between_segments_p(draw(n), sizes, paths)
            rows.append({"law": law, "layout": layout, "columns": COLUMNS,
                         "rejected": {str(a): int((p < a).sum()) for a in LEVELS},
                         "expected": {str(a): a * COLUMNS for a in LEVELS}})
            print(rows[-1], flush=True)
    # the repeated-draws rule (dependence._repeated_draws) under independent draws with ties: 256 draws uniform on K
    # values, REPEAT_RUNS runs each; it refuses at a nominal 1e-6, and where ties are sparse (K near the number of
    # draws) the normal tail alone refused 4.4e-4 of them
    row = CheckResult.refusal("a failed row", name="r", claim="unbiased", alpha=1e-6, sample_size=256, seed=0)
    repeated = []
    for k in (16, 64, 128, 256, 400, 1024):
        refused = sum(_repeated_draws(row, torch.randint(0, k, (256, 1), generator=g).double()) is not None
                      for _ in range(REPEAT_RUNS))
        repeated.append({"values": k, "draws": 256, "runs": REPEAT_RUNS, "refused": refused})
        print(repeated[-1], flush=True)
    record = {"rows": rows, "repeated_draws": repeated, "torch": torch.__version__}
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(out)) or ".")
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, out)  # atomic
    return record


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="JSON file to write (atomically)")
    main(parser.parse_args().out)
