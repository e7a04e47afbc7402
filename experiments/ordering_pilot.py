"""An independent pilot sample for the ordering check's guard and studentiser, measured and not adopted
(kerneltheory/testing/ordering.py, "Heavy tails at small m").

Run from the repository root (about 4 minutes of CPU):

    OMP_NUM_THREADS=1 python experiments/ordering_pilot.py experiments/ordering_pilot.json

The claim is "A ≤ B" in variance between Gaussian noise and positive features of SM at one pair x = y, ‖x + y‖ = 1,
m = 4, d = 8 (tests/test_ordering_checks.py, ``_noise_against_positive``): at equal variances (ratio 1) a true claim
on its boundary, forward (noise ≤ positive) and reversed (positive ≤ noise); at ratio 2 (the noise's variance twice
the features') a false one. Each seed draws both sides (child seeds 0, 1 of the seed, as the check does) and an
independent pilot of the same size per side (child seeds 2, 3). Three statistics, each the check's one-sided
skew-corrected z on log s² (``ordering.variance_ordering_check``) with the guard applied to the samples named:

* ``plain``: v, skewness and guard from the sample (the check as it is);
* ``pilot_v``: v and skewness from the pilot, guard on the pilot;
* ``larger_v``: per side the larger of the sample's and the pilot's v and skewness term, guards on both.

Recorded: per setting and statistic, the number of runs rejected at α′ = 0.05, 10⁻², 10⁻³, 10⁻⁴ (refused runs count
as not rejected) out of the seeds run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from test_ordering_checks import _noise_against_positive  # noqa: E402

from kerneltheory.testing import ordering as O  # noqa: E402
from kerneltheory.testing.checks import clt_guard  # noqa: E402
from kerneltheory.testing.pvalues import normal_p_values  # noqa: E402

LEVELS = (0.05, 1e-2, 1e-3, 1e-4)
SETTINGS = [  # (draws, seeds, variance ratio, reversed)
    (2000, 1000, 1.0, False), (2000, 1000, 1.0, True), (20_000, 500, 1.0, False), (20_000, 500, 1.0, True),
    (2000, 300, 2.0, False),
]
COEF = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)


def _side(est, x, draws, seed):
    """(moments, relative variance v of s², w, γ of the squared deviations, guard) of one side's sample."""
    mom, samples = O._draw(est, x, x, draws, seed, 256, "side")
    v = O._var_of_s2(mom) / mom.variance**2
    w, g = O._deviation_shape(samples, mom.mean)
    return mom, v, w, g, clt_guard(mom)[0]


def _p(ma, va, mb, vb, v_a, v_b, wa, ga, wb, gb, draws):
    """The check's one-sided p-value with the denominators v_a, v_b and the skewness terms (w, γ) given."""
    z = (torch.log(ma.variance) + va / 2 - torch.log(mb.variance) - vb / 2) / (v_a + v_b).sqrt()
    skew = O._combined_skewness(COEF, torch.stack([wa, wb]), torch.stack([ga, gb]))
    return float(normal_p_values(z, skew, draws, studentised=True)[0] / 2) if float(z) > 0 else 1.0


def _larger(w, g, pw, pg):
    """The (w, γ) pair of the larger skewness term |γ|·w³."""
    take = (w**3 * g).abs() >= (pw**3 * pg).abs()
    return torch.where(take, w, pw), torch.where(take, g, pg)


def run(draws: int, seeds: int, ratio: float, reverse: bool) -> dict:
    pos, noise, x = _noise_against_positive(m=4, ratio=ratio)
    a, b = (pos, noise) if reverse else (noise, pos)
    ps = {"plain": [], "pilot_v": [], "larger_v": []}
    for s in range(seeds):
        ma, va, wa, ga, oka = _side(a, x, draws, O.child_seed(s, 0))
        mb, vb, wb, gb, okb = _side(b, x, draws, O.child_seed(s, 1))
        _, pva, pwa, pga, pok_a = _side(a, x, draws, O.child_seed(s, 2))
        _, pvb, pwb, pgb, pok_b = _side(b, x, draws, O.child_seed(s, 3))
        ps["plain"].append(_p(ma, va, mb, vb, va, vb, wa, ga, wb, gb, draws) if oka and okb else 1.0)
        ps["pilot_v"].append(_p(ma, va, mb, vb, pva, pvb, pwa, pga, pwb, pgb, draws) if pok_a and pok_b else 1.0)
        (la_w, la_g), (lb_w, lb_g) = _larger(wa, ga, pwa, pga), _larger(wb, gb, pwb, pgb)
        ps["larger_v"].append(_p(ma, va, mb, vb, torch.maximum(va, pva), torch.maximum(vb, pvb), la_w, la_g, lb_w,
                                 lb_g, draws) if oka and okb and pok_a and pok_b else 1.0)
    return {"draws": draws, "seeds": seeds, "ratio": ratio, "claim": "positive ≤ noise" if reverse else
            "noise ≤ positive", "rejected": {k: [sum(p <= lv for p in v) for lv in LEVELS] for k, v in ps.items()},
            "levels": list(LEVELS)}


def main(out: str) -> None:
    torch.set_num_threads(1)
    rows = [run(*setting) for setting in SETTINGS]
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(out)), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(rows, f, indent=1, ensure_ascii=False)
    os.replace(tmp, out)
    for r in rows:
        print(r["draws"], r["ratio"], r["claim"], r["rejected"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the JSON file to write (atomically)")
    main(parser.parse_args().out)
