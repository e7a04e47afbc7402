"""Committed quick-scale variance results against a regeneration of them, point by point: the difference of the
measured variances over their two standard errors, z = (v_a − v_b)/√(se_a² + se_b²), and the ratio v_b/v_a. Run
from the repository root after regenerating into a copy (``kerneltheory variance --scale quick --regenerate`` in a
clone), giving the two ``experiments/variance`` folders:

    python experiments/bench/variance_regeneration_compare.py experiments/variance CLONE/experiments/variance
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FIGURES = ["variance_vs_m", "variance_vs_norm", "variance_vs_angle", "variance_vs_dim", "oprf_saderf",
           "learned_spectra"]


def main(old: str, new: str) -> None:
    every = []
    for name in FIGURES:
        a, b = pd.read_parquet(f"{old}/{name}.parquet"), pd.read_parquet(f"{new}/{name}.parquet")
        key = [c for c in ("panel", "label", "estimator", "x", "pair") if c in a.columns]
        m = a.merge(b, on=key, suffixes=("_a", "_b"), validate="one_to_one")
        if len(m) != len(a) or len(m) != len(b):
            raise ValueError(f"{name}: the two runs do not have the same points")
        z = ((m.variance_a - m.variance_b) / np.sqrt(m.variance_se_a**2 + m.variance_se_b**2)).abs()
        r = m.variance_b / m.variance_a
        every.append(z)
        print(f"{name}: {len(m)} points, max |z| {z.max():.2f}, median |z| {z.median():.2f}, "
              f"ratio {r.min():.3g}–{r.max():.3g}")
    z = pd.concat(every)
    print(f"all: {len(z)} points, max |z| {z.max():.2f}, median |z| {z.median():.2f} (0.67 for independent normal "
          f"errors), |z| > 2 at {100 * (z > 2).mean():.1f} % (4.6 %)")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", help="the committed experiments/variance folder")
    parser.add_argument("new", help="the regenerated experiments/variance folder (in a clone)")
    args = parser.parse_args()
    main(args.old, args.new)
